//! Frame echo over UCX between two processes; also the check that a binary using this crate
//! starts on its own (run it straight from `target/<profile>/examples/`, no `LD_LIBRARY_PATH`).
//!
//! ```text
//! ucx_echo server [ADDR]                 # default 127.0.0.1:0; prints "listening on HOST:PORT"
//! ucx_echo client ADDR [BYTES] [COUNT]   # echoes COUNT bodies of BYTES and reports MB/s
//! ucx_echo probe                         # loads UCX, creates a context and a worker, exits
//! ```
//!
//! `UCX_LOG_LEVEL=info` shows the transports each endpoint uses; `POLYFLIGHT_UCX_PROGRESS=busy`
//! switches to busy-polling.

use bytes::Bytes;
use polyflight_ucx::conn::FrameConn;
use polyflight_ucx::frame::FrameType;
use polyflight_ucx::ucp::{
    run_worker_thread, sys, Context, Endpoint, Listener, ProgressMode, Worker,
};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => server(args.get(1).map(String::as_str).unwrap_or("127.0.0.1:0")),
        Some("client") => match args.get(1) {
            Some(addr) => client(
                addr,
                args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1 << 20),
                args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000),
            ),
            None => Err("client needs an address".into()),
        },
        Some("probe") => probe(),
        _ => Err("usage: ucx_echo server [ADDR] | client ADDR [BYTES] [COUNT] | probe".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ucx_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyResult = Result<(), Box<dyn std::error::Error>>;

fn probe() -> AnyResult {
    let context = Context::new()?;
    let _worker = Worker::new(&context)?;
    println!("UCX loaded from {:?}", sys::library_candidates());
    Ok(())
}

fn server(addr: &str) -> AnyResult {
    let addr: SocketAddr = addr.parse()?;
    let context = Context::new()?;
    let mode = ProgressMode::from_env();
    let conn_context = context.clone();
    let listener = run_worker_thread("listener", context, mode, move |worker| async move {
        let listener = Listener::bind(&worker, addr)?;
        println!("listening on {}", listener.local_addr());
        // serve one client, then exit
        let request = listener.accept().await;
        let mut conn = run_worker_thread("conn", conn_context, mode, move |worker| async move {
            echo(worker, request).await
        })
        .map_err(|e| polyflight_ucx::UcxError::internal(e.to_string()))?;
        conn.finished().await;
        conn.join()?
    })?;
    listener.join()??;
    Ok(())
}

async fn echo(
    worker: std::rc::Rc<Worker>,
    request: polyflight_ucx::ucp::ConnectionRequest,
) -> polyflight_ucx::Result<()> {
    let conn = FrameConn::new(Endpoint::accept(&worker, request)?)?;
    loop {
        let frame = conn.recv().await?;
        if frame.frame_type == FrameType::Disconnect {
            break;
        }
        let send = conn.send(frame.frame_type, vec![frame.body]);
        tokio::task::spawn_local(async move {
            if let Err(e) = send.await {
                eprintln!("echo send failed: {e}");
            }
        });
    }
    conn.close(Duration::from_secs(1)).await;
    Ok(())
}

fn client(addr: &str, bytes: usize, count: usize) -> AnyResult {
    let addr: SocketAddr = addr.parse()?;
    let context: Arc<Context> = Context::new()?;
    let thread = run_worker_thread(
        "client",
        context,
        ProgressMode::from_env(),
        move |worker| async move {
            let conn = FrameConn::connect(&worker, addr)?;
            let body = Bytes::from(vec![7u8; bytes]);
            let start = Instant::now();
            let window = 4;
            let (mut sent, mut received) = (0, 0);
            while received < count {
                while sent < count && sent - received < window {
                    let send = conn.send(FrameType::PayloadBody, vec![body.clone()]);
                    tokio::task::spawn_local(async move {
                        if let Err(e) = send.await {
                            eprintln!("send failed: {e}");
                        }
                    });
                    sent += 1;
                }
                let frame = conn.recv().await?;
                if frame.body.len() != bytes {
                    return Err(polyflight_ucx::UcxError::internal(
                        "echoed body has the wrong size",
                    ));
                }
                received += 1;
            }
            let elapsed = start.elapsed().as_secs_f64();
            let mb = (2 * bytes * count) as f64 / 1e6;
            println!(
                "{count} x {bytes} B echoed in {elapsed:.3} s: {:.0} MB/s both ways",
                mb / elapsed
            );
            conn.disconnect(Duration::from_secs(1)).await;
            Ok(())
        },
    )?;
    thread.join()??;
    Ok(())
}
