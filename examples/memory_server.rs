//! Serves the in-memory Flight service on one or more URIs until Ctrl-C.
//!
//! ```text
//! cargo run --example memory_server -- grpc://127.0.0.1:8815 grpc+tcp://[::1]:0
//! ```
//!
//! Then, from any Flight client: DoPut stores a stream under its descriptor, DoGet with the
//! path (joined by `/`) as ticket returns it, ListFlights / GetFlightInfo / GetSchema describe it,
//! DoExchange echoes, DoAction serves the standard actions plus `drop` and `clear`.

use polyflight::memory::MemoryService;

#[tokio::main]
async fn main() -> polyflight::Result<()> {
    let mut uris: Vec<String> = std::env::args().skip(1).collect();
    if uris.is_empty() {
        uris.push("grpc://127.0.0.1:8815".to_string());
    }
    let mut builder = polyflight::server(MemoryService::new());
    for uri in uris {
        builder = builder.listen(uri);
    }
    let server = builder.start().await?;
    for location in server.locations() {
        println!("listening on {location}");
    }
    server
        .serve_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
