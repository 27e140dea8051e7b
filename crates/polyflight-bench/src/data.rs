//! The data a benchmark moves: record batches of each [`DataKind`], generated once per batch
//! size and then cloned for every batch sent. Arrays are `Arc`-backed, so a clone costs a few
//! reference-count increments and generation never shows in a measurement.
//!
//! The same generators feed the criterion codec benches (`benches/codec.rs`).

use crate::command::{DataKind, DataSpec};
use arrow_array::builder::{
    Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use polyflight::codec::{EncodeOptions, FlightDataEncoder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Encoder options for perf data: one IPC message per batch, whatever its size, so the batch
/// size a run asks for is the message size on the wire (the codec's default splits batches
/// above 2 MiB).
pub fn encode_options() -> EncodeOptions {
    EncodeOptions {
        max_message_size: i32::MAX as usize,
        ..EncodeOptions::default()
    }
}

fn struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("tag", DataType::Utf8, false),
    ])
}

fn column_type(kind: DataKind, column: usize) -> DataType {
    match kind {
        DataKind::Int64 => DataType::Int64,
        DataKind::Mixed => match column % 3 {
            0 => DataType::Int64,
            1 => DataType::Float64,
            _ => DataType::Utf8,
        },
        DataKind::Nested => DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(struct_fields()),
            true,
        ))),
    }
}

/// The schema of perf data with this layout: columns `c0`, `c1`, … .
pub fn schema(spec: DataSpec) -> SchemaRef {
    let fields: Vec<Field> = (0..spec.columns as usize)
        .map(|i| Field::new(format!("c{i}"), column_type(spec.kind, i), false))
        .collect();
    Arc::new(Schema::new(fields))
}

fn tag(row: usize) -> String {
    format!("value-{row:08}")
}

fn column(kind: DataKind, column: usize, rows: usize) -> ArrayRef {
    let salt = column as i64 * 1_000_003;
    match column_type(kind, column) {
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| i.wrapping_mul(7).wrapping_add(salt)),
        )),
        DataType::Float64 => Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| i as f64 * 0.25 + salt as f64),
        )),
        DataType::Utf8 => Arc::new(StringArray::from_iter_values((0..rows).map(tag))),
        _ => {
            let entry = StructBuilder::new(
                struct_fields(),
                vec![
                    Box::new(Int64Builder::new()),
                    Box::new(Float64Builder::new()),
                    Box::new(StringBuilder::new()),
                ],
            );
            let mut list = ListBuilder::new(entry);
            for row in 0..rows {
                for j in 0..row % 5 {
                    let s = list.values();
                    let k = row * 5 + j;
                    if let Some(b) = s.field_builder::<Int64Builder>(0) {
                        b.append_value(k as i64 + salt);
                    }
                    if let Some(b) = s.field_builder::<Float64Builder>(1) {
                        b.append_value(k as f64 / 3.0);
                    }
                    if let Some(b) = s.field_builder::<StringBuilder>(2) {
                        b.append_value(tag(k));
                    }
                    s.append(true);
                }
                list.append(true);
            }
            Arc::new(list.finish())
        }
    }
}

/// One batch of `rows` rows with the layout `spec`. Deterministic: the same arguments give
/// the same values.
pub fn generate_batch(spec: DataSpec, rows: usize) -> RecordBatch {
    let columns: Vec<ArrayRef> = (0..spec.columns as usize)
        .map(|i| column(spec.kind, i, rows))
        .collect();
    // The arrays are built to match `schema(spec)` (types, lengths, no nulls), so this cannot
    // fail; an empty batch is the safe answer if it ever did.
    RecordBatch::try_new(schema(spec), columns)
        .unwrap_or_else(|_| RecordBatch::new_empty(schema(spec)))
}

/// A prepared batch and what it encodes to.
#[derive(Debug)]
pub struct PreparedData {
    /// The layout.
    pub spec: DataSpec,
    /// The schema of every batch.
    pub schema: SchemaRef,
    /// The full-size batch every stream sends clones of.
    pub batch: RecordBatch,
    /// IPC bytes (header + body) of one full-size batch message, as [`encode_options`] encodes
    /// it.
    pub message_bytes: u64,
}

impl PreparedData {
    /// Generates the batch for `rows_per_batch` rows and measures its encoded size.
    pub fn new(spec: DataSpec, rows_per_batch: usize) -> PreparedData {
        let schema = schema(spec);
        let batch = generate_batch(spec, rows_per_batch);
        let mut encoder = FlightDataEncoder::new(encode_options());
        let message_bytes = encoder
            .encode_schema(&schema)
            .and_then(|_| encoder.encode_batch(&batch))
            .map(|messages| messages.iter().map(|m| m.data_len() as u64).sum())
            .unwrap_or(0);
        PreparedData {
            spec,
            schema,
            batch,
            message_bytes,
        }
    }

    /// Rows per full batch.
    pub fn rows_per_batch(&self) -> usize {
        self.batch.num_rows()
    }

    /// Batches holding `rows` rows: clones of the prepared batch, the last one a slice of it.
    pub fn batches(self: &Arc<Self>, rows: u64) -> impl Iterator<Item = RecordBatch> + Send {
        let per_batch = self.rows_per_batch().max(1) as u64;
        let full = rows / per_batch;
        let rest = (rows % per_batch) as usize;
        let this = Arc::clone(self);
        (0..full)
            .map(move |_| this.batch.clone())
            .chain((rest > 0).then(|| self.batch.slice(0, rest)))
    }

    /// Rows a stream needs so that it carries at least `bytes` of IPC data (whole batches).
    pub fn rows_for_bytes(&self, bytes: u64) -> u64 {
        let batches = bytes.div_ceil(self.message_bytes.max(1)).max(1);
        batches * self.rows_per_batch() as u64
    }
}

/// Prepared batches by layout and batch size, shared by a server's calls. Holds at most
/// [`DataCache::CAPACITY`] entries (a peer asking for ever new sizes evicts the older ones).
#[derive(Debug, Default)]
pub struct DataCache {
    entries: Mutex<HashMap<(DataSpec, usize), Arc<PreparedData>>>,
}

impl DataCache {
    /// Most prepared batch sizes kept.
    pub const CAPACITY: usize = 16;

    /// An empty cache.
    pub fn new() -> Self {
        DataCache::default()
    }

    /// The prepared batch for `spec` and `rows_per_batch`, generating it on first use.
    pub fn get(&self, spec: DataSpec, rows_per_batch: usize) -> Arc<PreparedData> {
        let key = (spec, rows_per_batch);
        if let Some(found) = self.entries.lock().ok().and_then(|e| e.get(&key).cloned()) {
            return found;
        }
        // Generated outside the lock: a big batch takes a while and other calls need not wait.
        let prepared = Arc::new(PreparedData::new(spec, rows_per_batch));
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY && !entries.contains_key(&key) {
                entries.clear();
            }
            return Arc::clone(entries.entry(key).or_insert(prepared));
        }
        prepared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_generates_its_schema() {
        for kind in DataKind::ALL {
            let spec = DataSpec { kind, columns: 5 };
            let batch = generate_batch(spec, 100);
            assert_eq!(batch.num_rows(), 100);
            assert_eq!(batch.schema(), schema(spec));
            assert_eq!(generate_batch(spec, 100), batch, "deterministic");
        }
    }

    #[test]
    fn prepared_batches_cover_the_rows_asked_for() {
        let prepared = Arc::new(PreparedData::new(DataSpec::default(), 1000));
        // 4 int64 columns × 1000 rows = 32000 body bytes, plus the flatbuffer header.
        assert!(prepared.message_bytes > 32_000 && prepared.message_bytes < 33_000);
        let rows: Vec<usize> = prepared.batches(2500).map(|b| b.num_rows()).collect();
        assert_eq!(rows, vec![1000, 1000, 500]);
        assert_eq!(prepared.batches(0).count(), 0);
        assert_eq!(prepared.rows_for_bytes(1), 1000);
        assert_eq!(prepared.rows_for_bytes(prepared.message_bytes * 3), 3000);
    }

    #[test]
    fn the_cache_reuses_and_bounds() {
        let cache = DataCache::new();
        let a = cache.get(DataSpec::default(), 10);
        assert!(Arc::ptr_eq(&a, &cache.get(DataSpec::default(), 10)));
        for rows in 0..DataCache::CAPACITY * 2 {
            cache.get(DataSpec::default(), rows + 11);
        }
        assert!(cache.entries.lock().unwrap().len() <= DataCache::CAPACITY);
    }
}
