//! `flight-test-integration-server`: serves one of Arrow's Flight integration scenarios (or,
//! without `-scenario`, the JSON round trip) until SIGTERM or SIGINT.
//!
//! ```text
//! flight-test-integration-server -port=0 [-scenario NAME]
//! flight-test-integration-server -uri grpc+unix:///tmp/f.sock -scenario ordered
//! ```
//!
//! The first line on stdout is `Server listening on localhost:<port>` (port 0 for transports
//! without one), which archery reads; the second is `Server location: <uri>`.

/// The allocator of every binary polyflight ships (see the `polyflight` command).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use polyflight_integration::cli::Args;
use polyflight_integration::json_flight::{self, advertised_location};
use polyflight_integration::peer::ListenSpec;
use polyflight_integration::{scenarios, Failure, Outcome};
use std::io::Write;
use std::process::ExitCode;

/// SIGTERM and SIGINT, caught from before the listening line is printed, so a harness that
/// stops the server right after reading it still gets a clean shutdown.
struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Outcome<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let installing = |e: std::io::Error| Failure::Io {
            context: "installing the signal handlers".to_string(),
            source: e,
        };
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate()).map_err(installing)?,
            interrupt: signal(SignalKind::interrupt()).map_err(installing)?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

async fn serve(args: Args) -> Outcome {
    let signals = ShutdownSignals::install()?;
    let spec = ListenSpec::from_args(&args)?;
    let parts = match args.scenario_name() {
        Some(name) => scenarios::find(name)
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "unknown scenario {name:?}; known: {}",
                    scenarios::names().join(", ")
                ))
            })?
            .server(),
        None => json_flight::server(),
    };
    let server = parts.start(&spec).await?;
    let location = server.location().clone();
    let mut stdout = std::io::stdout().lock();
    let printed = writeln!(
        stdout,
        "Server listening on localhost:{}",
        location.port().unwrap_or(0)
    )
    .and_then(|()| {
        writeln!(
            stdout,
            "Server location: {}",
            advertised_location(&location)
        )
    })
    .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(source) = printed {
        let _ = server.shutdown().await;
        return Err(Failure::Io {
            context: "writing the listening line".to_string(),
            source,
        });
    }
    signals.received().await;
    server.shutdown().await.map_err(|source| Failure::Call {
        context: "shutting down".to_string(),
        source,
    })
}

fn main() -> ExitCode {
    let result = Args::parse(std::env::args().skip(1)).and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Failure::Io {
                context: "starting the runtime".to_string(),
                source,
            })?;
        runtime.block_on(serve(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flight-test-integration-server: {err}");
            ExitCode::FAILURE
        }
    }
}
