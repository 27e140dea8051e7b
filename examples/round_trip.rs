//! Uploads record batches to a Flight service and reads them back, over whatever transport the
//! URI names (start `memory_server` first, or point it at any Flight server that stores DoPut
//! streams by path).
//!
//! ```text
//! cargo run --example round_trip -- grpc://127.0.0.1:8815
//! ```

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use polyflight::proto::FlightDescriptor;
use std::sync::Arc;

#[tokio::main]
async fn main() -> polyflight::Result<()> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "grpc://127.0.0.1:8815".to_string());
    let client = polyflight::connect(&uri).await?;

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
        ],
    )?;

    let descriptor = FlightDescriptor::new_path(["example"]);
    let acks: Vec<_> = client
        .do_put(
            descriptor.clone(),
            futures::stream::iter([Ok(batch.clone())]),
        )
        .await?
        .try_collect()
        .await?;
    println!("uploaded, {} acknowledgement(s)", acks.len());

    let info = client.get_flight_info(descriptor).await?;
    let batches: Vec<RecordBatch> = client.read_flight(&info).await?.try_collect().await?;
    println!(
        "read back {} batch(es), {} rows; equal: {}",
        batches.len(),
        batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        batches == [batch]
    );
    Ok(())
}
