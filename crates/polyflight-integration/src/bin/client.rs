//! `flight-test-integration-client`: runs the client half of one of Arrow's Flight integration
//! scenarios, or the JSON round trip of one file, against a running server.
//!
//! ```text
//! flight-test-integration-client -host localhost -port=31337 -scenario ordered
//! flight-test-integration-client -host localhost -port=31337 -path generated_primitive.json
//! flight-test-integration-client -uri grpc+unix:///tmp/f.sock -scenario ordered
//! ```
//!
//! Exit status 0 means the scenario passed; otherwise what differed is printed on stderr and the
//! status is 1 (2 for a bad command line). Nothing is retried.

/// The allocator of every binary polyflight ships (see the `polyflight` command).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use polyflight_integration::cli::Args;
use polyflight_integration::peer::Connector;
use polyflight_integration::{json_flight, scenarios, Failure, Outcome};
use std::path::Path;

async fn run(args: Args) -> Outcome<String> {
    let connector = Connector::from_args(&args)?;
    match (args.scenario_name(), &args.path) {
        (Some(name), None) => {
            let scenario = scenarios::find(name).ok_or_else(|| {
                Failure::Usage(format!(
                    "unknown scenario {name:?}; known: {}",
                    scenarios::names().join(", ")
                ))
            })?;
            scenario.run_client(&connector).await?;
            Ok(format!("scenario {name} passed"))
        }
        (None, Some(path)) => {
            json_flight::run_client(&connector, Path::new(path)).await?;
            Ok(format!("JSON round trip of {path} passed"))
        }
        _ => Err(Failure::Usage(
            "give exactly one of -scenario NAME and -path FILE.json".to_string(),
        )),
    }
}

fn main() {
    let result = Args::parse(std::env::args().skip(1)).and_then(|args| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| Failure::Io {
                context: "starting the runtime".to_string(),
                source,
            })?;
        runtime.block_on(run(args))
    });
    let code = match result {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(err @ Failure::Usage(_)) => {
            eprintln!("flight-test-integration-client: {err}");
            2
        }
        Err(err) => {
            eprintln!("flight-test-integration-client: FAILED: {err}");
            1
        }
    };
    std::process::exit(code)
}
