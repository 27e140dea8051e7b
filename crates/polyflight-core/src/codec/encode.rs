//! RecordBatch → FlightData, without copying column data.
//!
//! [`FlightDataEncoder`] builds each IPC message's flatbuffer header itself and describes the
//! body as a list of `Bytes` segments that share the arrays' own `arrow_buffer::Buffer`s, with
//! zero padding taken from a static slice. A transport writes those segments with
//! scatter-gather I/O, so the only copy of column data is the one into the socket.
//!
//! What is copied, and why:
//! - validity bitmaps and boolean values of arrays sliced at a bit offset that is not a multiple
//!   of 8 (the wire wants bitmaps that start at bit 0; bitmaps are 1/8 of a byte per row);
//! - offsets of strings, binaries and lists sliced so that they no longer start at zero (they are
//!   rebased to start at 0, as the IPC format recommends; the values themselves are sliced,
//!   not copied);
//! - run ends of sliced run-end-encoded arrays (rebased the same way);
//! - dictionary arrays in [`DictionaryHandling::Hydrate`] mode (unpacking them is the point);
//! - everything when IPC compression is on: compressed buffers are new bytes by nature, so that
//!   path hands the batch to arrow-ipc's own `IpcDataGenerator`.
//!
//! Layout rules follow the Arrow columnar format, metadata V5: every array contributes one field
//! node; a validity buffer (empty when there are no nulls) precedes the type's own buffers for
//! every type except null, union and run-end-encoded; each buffer is padded to the alignment.

use super::{CONTINUATION_MARKER, WRITE_METADATA_VERSION};
use crate::data::{DataBody, FlightData};
use crate::error::{FlightError, Result};
use arrow_array::{cast::AsArray, make_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};
use arrow_ipc::{Buffer as IpcBuffer, FieldNode, MessageHeader};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, UnionMode};
use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use std::collections::HashMap;
use std::sync::Arc;

/// Padding is cut from this; 64 bytes covers the largest alignment we allow.
static ZEROS: [u8; 64] = [0; 64];

/// Default for [`EncodeOptions::max_message_size`]: 2 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 2 * 1024 * 1024;

/// How the encoder sends dictionary-encoded columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DictionaryHandling {
    /// Keep the columns dictionary-encoded and send `DictionaryBatch` messages ahead of the
    /// batches that need them: the whole dictionary the first time, nothing while it stays the
    /// same, a delta (`isDelta`) when the new dictionary extends the one sent before, and a
    /// replacement when it changed otherwise.
    #[default]
    Resend,
    /// Unpack dictionary arrays into plain arrays of their value type; the schema sent says
    /// so too. For peers that cannot handle dictionaries; costs a copy of every such column.
    Hydrate,
}

/// Options for [`FlightDataEncoder`] and the stream adapters.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    /// Upper bound on the size (header + body) of one encoded record batch message. A batch
    /// that encodes larger is split by rows into several messages (slices, no copies of column
    /// data). A single row larger than the limit still goes out, as one message. Dictionary
    /// messages are never split. Default [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub max_message_size: usize,
    /// How dictionary-encoded columns are sent. Default [`DictionaryHandling::Resend`].
    pub dictionary_handling: DictionaryHandling,
    /// Optional IPC body compression (LZ4 frame or ZSTD, per buffer). `None` by default.
    /// Compression produces new bytes, so the encoder then copies (see the module docs).
    pub compression: Option<arrow_ipc::CompressionType>,
    /// Alignment (and padding) of each buffer in the body: 8 (the IPC default) to 64, a power
    /// of two. Default 8.
    pub alignment: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            dictionary_handling: DictionaryHandling::Resend,
            compression: None,
            alignment: 8,
        }
    }
}

impl EncodeOptions {
    fn validate(&self) -> Result<()> {
        if !matches!(self.alignment, 8 | 16 | 32 | 64) {
            return Err(FlightError::invalid_argument(format!(
                "IPC alignment must be 8, 16, 32 or 64, not {}",
                self.alignment
            )));
        }
        Ok(())
    }
}

/// The IPC-encapsulated form of `schema`, as carried in `FlightInfo.schema` and
/// `SchemaResult.schema`: the continuation marker `0xFFFFFFFF`, the little-endian `i32` length
/// of what follows, the Schema `Message` flatbuffer, zero padding to a multiple of 8.
pub fn encode_schema(schema: &Schema) -> Bytes {
    let flatbuffer = schema_header(schema, &mut DictionaryTracker::new(false));
    let padding = pad_len(flatbuffer.len(), 8);
    let mut out = Vec::with_capacity(8 + flatbuffer.len() + padding);
    out.extend_from_slice(&CONTINUATION_MARKER);
    // Flatbuffers are limited to 2 GiB, so the length fits an i32.
    let len = i32::try_from(flatbuffer.len() + padding).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&flatbuffer);
    out.extend_from_slice(&ZEROS[..padding]);
    Bytes::from(out)
}

/// Encodes a stream of record batches into Flight data messages, synchronously.
///
/// Call [`encode_schema`](Self::encode_schema) first, then
/// [`encode_batch`](Self::encode_batch) for each batch, and send the messages in the order
/// returned. The encoder remembers which dictionaries the peer has, so one encoder serves one
/// stream. Column data is not copied (see the module docs for the exceptions).
pub struct FlightDataEncoder {
    options: EncodeOptions,
    /// The schema as given; every batch must match it.
    schema: Option<SchemaRef>,
    /// The schema as sent (differs from `schema` in [`DictionaryHandling::Hydrate`] mode).
    wire_schema: Option<SchemaRef>,
    /// Dictionary ids in the order the schema traversal assigned them (depth first, a
    /// dictionary's nested dictionaries before itself). Batches are walked in the same order.
    dictionary_ids: Vec<i64>,
    /// The dictionary values the peer holds, per id.
    sent_dictionaries: HashMap<i64, ArrayData>,
    /// State of the arrow-ipc writer, used only when compression is on.
    ipc_tracker: DictionaryTracker,
    ipc_context: IpcWriteContext,
}

impl std::fmt::Debug for FlightDataEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightDataEncoder")
            .field("options", &self.options)
            .field("schema", &self.schema)
            .field("dictionaries_sent", &self.sent_dictionaries.len())
            .finish_non_exhaustive()
    }
}

impl Default for FlightDataEncoder {
    fn default() -> Self {
        FlightDataEncoder::new(EncodeOptions::default())
    }
}

impl FlightDataEncoder {
    /// An encoder with these options.
    pub fn new(options: EncodeOptions) -> Self {
        FlightDataEncoder {
            options,
            schema: None,
            wire_schema: None,
            dictionary_ids: Vec::new(),
            sent_dictionaries: HashMap::new(),
            ipc_tracker: DictionaryTracker::new(false),
            ipc_context: IpcWriteContext::default(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &EncodeOptions {
        &self.options
    }

    /// The schema set by the last [`encode_schema`](Self::encode_schema), as given.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// Encodes the Schema message that starts a stream, and makes `schema` the schema every
    /// later batch must have. Forgets which dictionaries were sent: after a new schema the
    /// peer starts from none.
    pub fn encode_schema(&mut self, schema: &SchemaRef) -> Result<FlightData> {
        self.options.validate()?;
        let wire_schema = match self.options.dictionary_handling {
            DictionaryHandling::Resend => {
                for field in schema.fields() {
                    check_no_nested_dictionary(field)?;
                }
                Arc::clone(schema)
            }
            DictionaryHandling::Hydrate => Arc::new(hydrate_schema(schema)),
        };
        let mut tracker = DictionaryTracker::new(false);
        let header = schema_header(&wire_schema, &mut tracker);
        self.dictionary_ids = tracker.dict_id().to_vec();
        self.ipc_tracker = tracker;
        self.sent_dictionaries.clear();
        self.schema = Some(Arc::clone(schema));
        self.wire_schema = Some(wire_schema);
        Ok(FlightData {
            data_header: header,
            ..FlightData::default()
        })
    }

    /// Encodes one batch: first the dictionary messages it needs (new, delta or replaced
    /// dictionaries, in dependency order), then one record batch message, or several when the
    /// batch is larger than [`EncodeOptions::max_message_size`].
    ///
    /// Errors with `INVALID_ARGUMENT` when no schema was encoded yet or the batch's schema
    /// differs from it.
    pub fn encode_batch(&mut self, batch: &RecordBatch) -> Result<Vec<FlightData>> {
        let (mut messages, batches) = self.encode_batch_parts(batch)?;
        messages.extend(batches);
        Ok(messages)
    }

    /// [`encode_batch`](Self::encode_batch), with the dictionary messages and the record
    /// batch messages apart (so app metadata can go on the batch).
    pub(crate) fn encode_batch_parts(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<(Vec<FlightData>, Vec<FlightData>)> {
        self.options.validate()?;
        let (schema, wire_schema) = match (&self.schema, &self.wire_schema) {
            (Some(schema), Some(wire)) => (Arc::clone(schema), Arc::clone(wire)),
            _ => {
                return Err(FlightError::invalid_argument(
                    "a record batch cannot be encoded before the schema",
                ))
            }
        };
        check_batch_schema(&schema, batch)?;
        let rows = batch.num_rows();
        let columns = batch
            .columns()
            .iter()
            .map(|column| {
                let data = column.to_data();
                match self.options.dictionary_handling {
                    DictionaryHandling::Resend => Ok(data),
                    DictionaryHandling::Hydrate => hydrate_data(data),
                }
            })
            .collect::<Result<Vec<_>>>()?;

        if let Some(compression) = self.options.compression {
            return self.encode_compressed(&wire_schema, &columns, rows, compression);
        }

        let mut dictionaries = Vec::new();
        let mut ids = self.dictionary_ids.iter().copied();
        for column in &columns {
            collect_dictionaries(column, &mut ids, &mut dictionaries)?;
        }
        let mut dictionary_messages = Vec::new();
        for (id, values) in dictionaries {
            if let Some((values, is_delta)) = self.dictionary_update(id, values) {
                dictionary_messages.push(self.dictionary_message(id, &values, is_delta)?);
            }
        }

        let mut pieces = Vec::new();
        self.split_batch(&columns, rows, 0, &mut pieces)?;
        let batch_messages = pieces.into_iter().map(|(_, _, message)| message).collect();
        Ok((dictionary_messages, batch_messages))
    }

    /// Decides what the peer needs for dictionary `id` now holding `values`: nothing, a delta
    /// (the rows appended since the last message) or the whole dictionary.
    fn dictionary_update(&mut self, id: i64, values: ArrayData) -> Option<(ArrayData, bool)> {
        let update = match self.sent_dictionaries.get(&id) {
            None => Some((values.clone(), false)),
            Some(sent) if sent.ptr_eq(&values) => return None,
            Some(sent) if sent.len() == values.len() && *sent == values => None,
            Some(sent)
                if values.len() > sent.len()
                    && values.slice(0, sent.len()) == *sent
                    && !sent.is_empty() =>
            {
                let delta = values.slice(sent.len(), values.len() - sent.len());
                Some((delta, true))
            }
            Some(_) => Some((values.clone(), false)),
        };
        // Keep the newest values even when equal, so the pointer check hits next time.
        self.sent_dictionaries.insert(id, values);
        update
    }

    fn dictionary_message(
        &self,
        id: i64,
        values: &ArrayData,
        is_delta: bool,
    ) -> Result<FlightData> {
        let mut body = BodyBuilder::new(self.options.alignment);
        write_array(values, &mut body)?;
        let mut fbb = FlatBufferBuilder::new();
        let data = record_batch_table(&mut fbb, values.len(), &body);
        let mut dictionary = arrow_ipc::DictionaryBatchBuilder::new(&mut fbb);
        dictionary.add_id(id);
        dictionary.add_data(data);
        dictionary.add_isDelta(is_delta);
        let dictionary = dictionary.finish().as_union_value();
        let header = finish_message(fbb, MessageHeader::DictionaryBatch, dictionary, body.len);
        Ok(body.into_flight_data(header))
    }

    fn record_batch_message(&self, columns: &[ArrayData], rows: usize) -> Result<FlightData> {
        let mut body = BodyBuilder::new(self.options.alignment);
        for column in columns {
            write_array(column, &mut body)?;
        }
        let mut fbb = FlatBufferBuilder::new();
        let batch = record_batch_table(&mut fbb, rows, &body).as_union_value();
        let header = finish_message(fbb, MessageHeader::RecordBatch, batch, body.len);
        Ok(body.into_flight_data(header))
    }

    /// Encodes rows `first..first + rows` (given as `columns`, already sliced) into record
    /// batch messages no larger than the limit, pushing `(first row, rows, message)`.
    ///
    /// The batch is encoded whole first (cheap: it is zero-copy), and only if that is too large
    /// split into about `size / limit` slices, each checked again, since rows differ in size.
    fn split_batch(
        &self,
        columns: &[ArrayData],
        rows: usize,
        first: usize,
        out: &mut Vec<(usize, usize, FlightData)>,
    ) -> Result<()> {
        let message = self.record_batch_message(columns, rows)?;
        let size = message.data_len();
        let limit = self.options.max_message_size;
        if size <= limit || rows <= 1 {
            out.push((first, rows, message));
            return Ok(());
        }
        let pieces = size.div_ceil(limit.max(1)).max(2);
        let mut rows_per_piece = rows.div_ceil(pieces);
        if rows_per_piece >= 16 {
            // Slices starting at a multiple of 8 rows keep validity bitmaps byte-aligned, so
            // they are sliced rather than re-packed.
            rows_per_piece -= rows_per_piece % 8;
        }
        if columns.iter().any(|column| column.len() != rows) {
            return Err(FlightError::internal(
                "column length differs from batch row count",
            ));
        }
        let mut start = 0;
        while start < rows {
            let len = rows_per_piece.min(rows - start);
            let slices: Vec<ArrayData> = columns.iter().map(|c| c.slice(start, len)).collect();
            self.split_batch(&slices, len, first + start, out)?;
            start += len;
        }
        Ok(())
    }

    /// The compression path: the split is decided on the uncompressed (zero-copy) encoding,
    /// an upper bound for the compressed size in practice, then each slice is compressed by
    /// arrow-ipc's writer, which also tracks dictionaries for this path.
    fn encode_compressed(
        &mut self,
        wire_schema: &SchemaRef,
        columns: &[ArrayData],
        rows: usize,
        compression: arrow_ipc::CompressionType,
    ) -> Result<(Vec<FlightData>, Vec<FlightData>)> {
        let write_options =
            IpcWriteOptions::try_new(self.options.alignment, false, WRITE_METADATA_VERSION)?
                .try_with_compression(Some(compression))?
                .with_dictionary_handling(arrow_ipc::writer::DictionaryHandling::Delta);
        let mut pieces = Vec::new();
        self.split_batch(columns, rows, 0, &mut pieces)?;
        let generator = IpcDataGenerator::default();
        let (mut dictionary_messages, mut batch_messages) = (Vec::new(), Vec::new());
        for (first, len, _) in pieces {
            let arrays: Vec<ArrayRef> = columns
                .iter()
                .map(|column| make_array(column.slice(first, len)))
                .collect();
            let options = RecordBatchOptions::new().with_row_count(Some(len));
            let batch =
                RecordBatch::try_new_with_options(Arc::clone(wire_schema), arrays, &options)?;
            let (dictionaries, message) = generator.encode(
                &batch,
                &mut self.ipc_tracker,
                &write_options,
                &mut self.ipc_context,
            )?;
            let to_flight_data = |encoded: arrow_ipc::writer::EncodedData| FlightData {
                data_header: Bytes::from(encoded.ipc_message),
                data_body: DataBody::from(encoded.arrow_data),
                ..FlightData::default()
            };
            // Only the first slice can bring new dictionaries; all go before any batch.
            dictionary_messages.extend(dictionaries.into_iter().map(to_flight_data));
            batch_messages.push(to_flight_data(message));
        }
        Ok((dictionary_messages, batch_messages))
    }
}

/// The Schema `Message` flatbuffer for `schema`; `tracker` receives the dictionary ids.
fn schema_header(schema: &Schema, tracker: &mut DictionaryTracker) -> Bytes {
    let write_options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        tracker,
        &write_options,
    );
    Bytes::from(encoded.ipc_message)
}

/// Batches must carry the stream's fields exactly (names, types, nullability, metadata);
/// schema-level metadata may differ (projections and computations often drop it).
fn check_batch_schema(schema: &SchemaRef, batch: &RecordBatch) -> Result<()> {
    let batch_schema = batch.schema_ref();
    if Arc::ptr_eq(schema, batch_schema) || schema.fields() == batch_schema.fields() {
        return Ok(());
    }
    Err(FlightError::invalid_argument(format!(
        "record batch schema does not match the stream schema: expected {schema}, got {batch_schema}"
    )))
}

/// IPC schema metadata cannot describe a dictionary whose values are themselves a dictionary
/// (a field carries one `DictionaryEncoding`), so such a schema would be sent wrong.
fn check_no_nested_dictionary(field: &Field) -> Result<()> {
    let mut result = Ok(());
    visit_child_fields(field.data_type(), &mut |child| {
        if result.is_ok() {
            result = check_no_nested_dictionary(child);
        }
    });
    result?;
    if let DataType::Dictionary(_, value_type) = field.data_type() {
        if let DataType::Dictionary(..) = value_type.as_ref() {
            return Err(FlightError::invalid_argument(format!(
                "field {:?}: a dictionary of dictionaries cannot be sent over IPC \
                 (use DictionaryHandling::Hydrate)",
                field.name()
            )));
        }
        let inner = Field::new(field.name(), value_type.as_ref().clone(), true);
        check_no_nested_dictionary(&inner)?;
    }
    Ok(())
}

fn visit_child_fields(data_type: &DataType, f: &mut dyn FnMut(&Field)) {
    match data_type {
        DataType::List(child)
        | DataType::LargeList(child)
        | DataType::ListView(child)
        | DataType::LargeListView(child)
        | DataType::FixedSizeList(child, _)
        | DataType::Map(child, _) => f(child),
        DataType::Struct(fields) => fields.iter().for_each(|child| f(child)),
        DataType::Union(fields, _) => fields.iter().for_each(|(_, child)| f(child)),
        DataType::RunEndEncoded(run_ends, values) => {
            f(run_ends);
            f(values);
        }
        _ => {}
    }
}

/// Walks `data` in schema order and records `(id, values)` for every dictionary in it, a
/// dictionary's own nested dictionaries first (the order the schema encoder assigned ids in,
/// and the order the peer must receive them in).
fn collect_dictionaries(
    data: &ArrayData,
    ids: &mut impl Iterator<Item = i64>,
    out: &mut Vec<(i64, ArrayData)>,
) -> Result<()> {
    if let DataType::Dictionary(..) = data.data_type() {
        let values = data
            .child_data()
            .first()
            .ok_or_else(|| FlightError::invalid_argument("dictionary array without values"))?;
        collect_dictionaries(values, ids, out)?;
        let id = ids.next().ok_or_else(|| {
            FlightError::internal("batch has more dictionary fields than the schema")
        })?;
        out.push((id, values.clone()));
        return Ok(());
    }
    for child in data.child_data() {
        collect_dictionaries(child, ids, out)?;
    }
    Ok(())
}

fn contains_dictionary(data_type: &DataType) -> bool {
    if let DataType::Dictionary(..) = data_type {
        return true;
    }
    let mut found = false;
    visit_child_fields(data_type, &mut |child| {
        found = found || contains_dictionary(child.data_type())
    });
    found
}

fn hydrate_schema(schema: &Schema) -> Schema {
    let fields: Vec<FieldRef> = schema.fields().iter().map(hydrate_field).collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn hydrate_field(field: &FieldRef) -> FieldRef {
    if !contains_dictionary(field.data_type()) {
        return Arc::clone(field);
    }
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(hydrate_type(field.data_type())),
    )
}

fn hydrate_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(_, values) => hydrate_type(values),
        DataType::List(child) => DataType::List(hydrate_field(child)),
        DataType::LargeList(child) => DataType::LargeList(hydrate_field(child)),
        DataType::ListView(child) => DataType::ListView(hydrate_field(child)),
        DataType::LargeListView(child) => DataType::LargeListView(hydrate_field(child)),
        DataType::FixedSizeList(child, size) => {
            DataType::FixedSizeList(hydrate_field(child), *size)
        }
        DataType::Map(child, sorted) => DataType::Map(hydrate_field(child), *sorted),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(hydrate_field).collect()),
        DataType::Union(fields, mode) => DataType::Union(
            fields
                .iter()
                .map(|(type_id, child)| (type_id, hydrate_field(child)))
                .collect(),
            *mode,
        ),
        DataType::RunEndEncoded(run_ends, values) => {
            DataType::RunEndEncoded(Arc::clone(run_ends), hydrate_field(values))
        }
        other => other.clone(),
    }
}

/// Replaces every dictionary array inside `data` by the plain array of its values (a copy, by
/// `take`); arrays without dictionaries are returned as they are.
fn hydrate_data(data: ArrayData) -> Result<ArrayData> {
    if !contains_dictionary(data.data_type()) {
        return Ok(data);
    }
    if let DataType::Dictionary(..) = data.data_type() {
        let array = make_array(data);
        let dictionary = array
            .as_any_dictionary_opt()
            .ok_or_else(|| FlightError::internal("dictionary type without dictionary array"))?;
        let values = make_array(hydrate_data(dictionary.values().to_data())?);
        let plain = arrow_select::take::take(values.as_ref(), dictionary.keys(), None)?;
        return Ok(plain.to_data());
    }
    let data_type = hydrate_type(data.data_type());
    let children = data
        .child_data()
        .iter()
        .cloned()
        .map(hydrate_data)
        .collect::<Result<Vec<_>>>()?;
    Ok(data
        .into_builder()
        .data_type(data_type)
        .child_data(children)
        .build()?)
}

/// The body of one message under construction, and the header entries that describe it.
struct BodyBuilder {
    alignment: usize,
    nodes: Vec<FieldNode>,
    buffers: Vec<IpcBuffer>,
    variadic_counts: Vec<i64>,
    segments: Vec<Bytes>,
    len: usize,
}

impl BodyBuilder {
    fn new(alignment: usize) -> Self {
        BodyBuilder {
            alignment,
            nodes: Vec::new(),
            buffers: Vec::new(),
            variadic_counts: Vec::new(),
            segments: Vec::new(),
            len: 0,
        }
    }

    fn node(&mut self, length: usize, null_count: usize) {
        self.nodes
            .push(FieldNode::new(to_i64(length), to_i64(null_count)));
    }

    /// Appends one buffer, then zeros up to the alignment.
    fn push(&mut self, bytes: Bytes) {
        let len = bytes.len();
        self.buffers
            .push(IpcBuffer::new(to_i64(self.len), to_i64(len)));
        if len > 0 {
            self.segments.push(bytes);
        }
        let padding = pad_len(len, self.alignment);
        if padding > 0 {
            self.segments.push(Bytes::from_static(&ZEROS[..padding]));
        }
        self.len += len + padding;
    }

    /// Appends an Arrow buffer without copying it: the segment shares the buffer's memory.
    fn push_buffer(&mut self, buffer: Buffer) {
        self.push(Bytes::from_owner(buffer));
    }

    fn into_flight_data(self, data_header: Bytes) -> FlightData {
        FlightData {
            data_header,
            data_body: DataBody::from_segments(self.segments),
            ..FlightData::default()
        }
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn pad_len(len: usize, alignment: usize) -> usize {
    len.next_multiple_of(alignment) - len
}

fn record_batch_table<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    length: usize,
    body: &BodyBuilder,
) -> WIPOffset<arrow_ipc::RecordBatch<'a>> {
    let nodes = fbb.create_vector(&body.nodes);
    let buffers = fbb.create_vector(&body.buffers);
    let variadic_counts =
        (!body.variadic_counts.is_empty()).then(|| fbb.create_vector(&body.variadic_counts));
    let mut batch = arrow_ipc::RecordBatchBuilder::new(fbb);
    batch.add_length(to_i64(length));
    batch.add_nodes(nodes);
    batch.add_buffers(buffers);
    if let Some(counts) = variadic_counts {
        batch.add_variadicBufferCounts(counts);
    }
    batch.finish()
}

fn finish_message(
    mut fbb: FlatBufferBuilder<'_>,
    header_type: MessageHeader,
    header: WIPOffset<UnionWIPOffset>,
    body_len: usize,
) -> Bytes {
    let mut message = arrow_ipc::MessageBuilder::new(&mut fbb);
    message.add_version(WRITE_METADATA_VERSION);
    message.add_header_type(header_type);
    message.add_header(header);
    message.add_bodyLength(to_i64(body_len));
    let root = message.finish();
    fbb.finish(root, None);
    // The builder writes back to front; take its buffer and point past the unused head
    // instead of copying the finished bytes out.
    let (buffer, head) = fbb.collapse();
    Bytes::from(buffer).slice(head..)
}

fn malformed(what: impl std::fmt::Display) -> FlightError {
    FlightError::invalid_argument(format!("malformed array: {what}"))
}

/// `len` bytes of `buffer` from `start`, shared; an error instead of a panic when the array
/// claims more than its buffer holds (possible for arrays built without validation).
fn byte_slice(buffer: &Buffer, start: usize, len: usize) -> Result<Buffer> {
    match start.checked_add(len) {
        Some(end) if end <= buffer.len() => Ok(buffer.slice_with_length(start, len)),
        _ => Err(malformed(format!(
            "needs bytes {start}..{start}+{len} of a {}-byte buffer",
            buffer.len()
        ))),
    }
}

/// Elements `offset..offset + len` of a buffer of `width`-byte elements.
fn element_slice(buffer: &Buffer, offset: usize, len: usize, width: usize) -> Result<Buffer> {
    let start = offset
        .checked_mul(width)
        .ok_or_else(|| malformed("offset overflow"))?;
    let len = len
        .checked_mul(width)
        .ok_or_else(|| malformed("length overflow"))?;
    byte_slice(buffer, start, len)
}

/// Bits `offset..offset + len` of a bitmap, starting at bit 0: shared when `offset` is a
/// multiple of 8, re-packed (copied) otherwise.
fn bit_slice(buffer: &Buffer, offset: usize, len: usize) -> Result<Buffer> {
    let end_bit = offset
        .checked_add(len)
        .ok_or_else(|| malformed("bitmap overflow"))?;
    if end_bit.div_ceil(8) > buffer.len() {
        return Err(malformed(format!(
            "needs {end_bit} bits of a {}-byte bitmap",
            buffer.len()
        )));
    }
    Ok(buffer.bit_slice(offset, len))
}

fn buffer(data: &ArrayData, index: usize) -> Result<&Buffer> {
    data.buffers()
        .get(index)
        .ok_or_else(|| malformed(format!("{} array lacks buffer {index}", data.data_type())))
}

fn child(data: &ArrayData, index: usize) -> Result<&ArrayData> {
    data.child_data()
        .get(index)
        .ok_or_else(|| malformed(format!("{} array lacks child {index}", data.data_type())))
}

/// A child sliced to `offset..offset + len`, checked first (`ArrayData::slice` panics).
fn child_slice(child: &ArrayData, offset: usize, len: usize) -> Result<ArrayData> {
    match offset.checked_add(len) {
        Some(end) if end <= child.len() => {
            if offset == 0 && len == child.len() {
                Ok(child.clone())
            } else {
                Ok(child.slice(offset, len))
            }
        }
        _ => Err(malformed(format!(
            "child of {} rows sliced at {offset}+{len}",
            child.len()
        ))),
    }
}

/// Reads offset number `index` of a little-endian offsets buffer of `width` (4 or 8) bytes.
/// Byte-wise, so a misaligned buffer is no reason to panic.
fn read_int(bytes: &[u8], width: usize, index: usize) -> Result<i64> {
    let start = index
        .checked_mul(width)
        .ok_or_else(|| malformed("offset overflow"))?;
    let chunk = start
        .checked_add(width)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| malformed(format!("offset {index} beyond its buffer")))?;
    Ok(match *chunk {
        [a, b] => i64::from(i16::from_le_bytes([a, b])),
        [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => return Err(malformed(format!("integer width {width}"))),
    })
}

fn write_int(out: &mut Vec<u8>, width: usize, value: i64) -> Result<()> {
    match width {
        2 => out.extend_from_slice(&i16::try_from(value).map_err(malformed)?.to_le_bytes()),
        4 => out.extend_from_slice(&i32::try_from(value).map_err(malformed)?.to_le_bytes()),
        _ => out.extend_from_slice(&value.to_le_bytes()),
    }
    Ok(())
}

/// The offsets of rows `offset..offset + len` of a string/binary/list array, rebased to start
/// at 0, plus the range of values they cover. Shared when they already start at 0; copied
/// (4 or 8 bytes a row, never the values) otherwise.
fn rebased_offsets(
    offsets: &Buffer,
    offset: usize,
    len: usize,
    width: usize,
) -> Result<(Bytes, usize, usize)> {
    if len == 0 {
        // The format wants n + 1 offsets even for n = 0.
        return Ok((Bytes::from_static(&ZEROS[..width]), 0, 0));
    }
    let window = element_slice(offsets, offset, len + 1, width)?;
    let first = read_int(&window, width, 0)?;
    let last = read_int(&window, width, len)?;
    let start = usize::try_from(first).map_err(malformed)?;
    let end = usize::try_from(last).map_err(malformed)?;
    if end < start {
        return Err(malformed(format!(
            "offsets run backwards ({first} > {last})"
        )));
    }
    if first == 0 {
        return Ok((Bytes::from_owner(window), 0, end));
    }
    let mut rebased = Vec::with_capacity(window.len());
    for index in 0..=len {
        write_int(
            &mut rebased,
            width,
            read_int(&window, width, index)? - first,
        )?;
    }
    Ok((Bytes::from(rebased), start, end - start))
}

/// Appends one array (field node, buffers, children) to the body, in IPC order.
fn write_array(data: &ArrayData, body: &mut BodyBuilder) -> Result<()> {
    let data_type = data.data_type();
    let offset = data.offset();
    let len = data.len();

    if let DataType::Null = data_type {
        // A null array has no buffers; every slot is null.
        body.node(len, len);
        return Ok(());
    }
    body.node(len, data.null_count());
    if !matches!(data_type, DataType::Union(..) | DataType::RunEndEncoded(..)) {
        match data.nulls() {
            Some(nulls) if nulls.null_count() > 0 => {
                let bits = nulls.inner();
                body.push_buffer(bit_slice(bits.inner(), bits.offset(), bits.len())?);
            }
            // No nulls: an empty validity buffer, which the format allows.
            _ => body.push(Bytes::new()),
        }
    }

    match data_type {
        DataType::Null => {}
        DataType::Boolean => body.push_buffer(bit_slice(buffer(data, 0)?, offset, len)?),
        DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary => {
            let width = if matches!(data_type, DataType::Utf8 | DataType::Binary) {
                4
            } else {
                8
            };
            let (offsets, start, values_len) =
                rebased_offsets(buffer(data, 0)?, offset, len, width)?;
            body.push(offsets);
            body.push_buffer(byte_slice(buffer(data, 1)?, start, values_len)?);
        }
        DataType::Utf8View | DataType::BinaryView => {
            body.push_buffer(element_slice(buffer(data, 0)?, offset, len, 16)?);
            // Views point into the data buffers by index, so all of them go, whole.
            let data_buffers = &data.buffers()[1..];
            for data_buffer in data_buffers {
                body.push_buffer(data_buffer.clone());
            }
            body.variadic_counts.push(to_i64(data_buffers.len()));
        }
        DataType::FixedSizeBinary(width) => {
            let width = usize::try_from(*width).map_err(malformed)?;
            body.push_buffer(element_slice(buffer(data, 0)?, offset, len, width)?);
        }
        DataType::Dictionary(key_type, _) => {
            // Only the keys: the values travel in DictionaryBatch messages.
            let width = key_type
                .primitive_width()
                .ok_or_else(|| malformed(format!("dictionary key type {key_type}")))?;
            body.push_buffer(element_slice(buffer(data, 0)?, offset, len, width)?);
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::Map(..) => {
            let width = if matches!(data_type, DataType::LargeList(_)) {
                8
            } else {
                4
            };
            let (offsets, start, values_len) =
                rebased_offsets(buffer(data, 0)?, offset, len, width)?;
            body.push(offsets);
            write_array(&child_slice(child(data, 0)?, start, values_len)?, body)?;
        }
        DataType::ListView(_) | DataType::LargeListView(_) => write_list_view(data, body)?,
        DataType::FixedSizeList(_, size) => {
            let size = usize::try_from(*size).map_err(malformed)?;
            let start = offset
                .checked_mul(size)
                .ok_or_else(|| malformed("overflow"))?;
            let count = len.checked_mul(size).ok_or_else(|| malformed("overflow"))?;
            write_array(&child_slice(child(data, 0)?, start, count)?, body)?;
        }
        DataType::Struct(_) => {
            for child in data.child_data() {
                write_array(&child_slice(child, offset, len)?, body)?;
            }
        }
        DataType::Union(_, mode) => {
            body.push_buffer(element_slice(buffer(data, 0)?, offset, len, 1)?);
            match mode {
                UnionMode::Sparse => {
                    for child in data.child_data() {
                        write_array(&child_slice(child, offset, len)?, body)?;
                    }
                }
                UnionMode::Dense => write_dense_union_children(data, body)?,
            }
        }
        DataType::RunEndEncoded(..) => write_run_end_encoded(data, body)?,
        _ => {
            let width = data_type
                .primitive_width()
                .ok_or_else(|| malformed(format!("unsupported type {data_type}")))?;
            body.push_buffer(element_slice(buffer(data, 0)?, offset, len, width)?);
        }
    }
    Ok(())
}

/// List views may point anywhere in their child, in any order. The child is trimmed to the
/// range the rows use, with the offsets rebased (copied) when that range does not start at 0.
fn write_list_view(data: &ArrayData, body: &mut BodyBuilder) -> Result<()> {
    let width = if matches!(data.data_type(), DataType::ListView(_)) {
        4
    } else {
        8
    };
    let (offset, len) = (data.offset(), data.len());
    let offsets = element_slice(buffer(data, 0)?, offset, len, width)?;
    let sizes = element_slice(buffer(data, 1)?, offset, len, width)?;
    let values = child(data, 0)?;
    let (mut start, mut end) = (usize::MAX, 0);
    for row in 0..len {
        let size = usize::try_from(read_int(&sizes, width, row)?).map_err(malformed)?;
        if size > 0 {
            let first = usize::try_from(read_int(&offsets, width, row)?).map_err(malformed)?;
            start = start.min(first);
            end = end.max(
                first
                    .checked_add(size)
                    .ok_or_else(|| malformed("overflow"))?,
            );
        }
    }
    if end == 0 {
        // No row has values: nothing of the child is needed.
        start = 0;
    }
    if start == 0 && end == values.len() {
        body.push_buffer(offsets);
        body.push_buffer(sizes);
        return write_array(values, body);
    }
    let mut rebased = Vec::with_capacity(offsets.len());
    for row in 0..len {
        let size = read_int(&sizes, width, row)?;
        let first = if size > 0 {
            read_int(&offsets, width, row)? - to_i64(start)
        } else {
            0
        };
        write_int(&mut rebased, width, first)?;
    }
    body.push(Bytes::from(rebased));
    body.push_buffer(sizes);
    write_array(&child_slice(values, start, end - start)?, body)
}

/// Dense union rows point into their type's child by offset. Each child is trimmed to the
/// range its rows use, with the offsets rebased (copied) when some child's range does not
/// start at 0 or does not reach its end.
fn write_dense_union_children(data: &ArrayData, body: &mut BodyBuilder) -> Result<()> {
    let DataType::Union(fields, _) = data.data_type() else {
        return Err(malformed("not a union"));
    };
    let (offset, len) = (data.offset(), data.len());
    let type_ids = element_slice(buffer(data, 0)?, offset, len, 1)?;
    let offsets = element_slice(buffer(data, 1)?, offset, len, 4)?;
    // Type ids are 0..=127; map each to its child's position.
    let mut child_of = [usize::MAX; 128];
    for (index, (type_id, _)) in fields.iter().enumerate() {
        let slot = usize::try_from(type_id).map_err(malformed)?;
        child_of[slot.min(127)] = index;
    }
    let children = data.child_data();
    let mut ranges = vec![(usize::MAX, 0usize); children.len()];
    let mut rows = Vec::with_capacity(len);
    for (row, &type_id) in type_ids.iter().enumerate() {
        let index = usize::try_from(type_id as i8)
            .ok()
            .and_then(|slot| child_of.get(slot))
            .copied()
            .filter(|index| *index < children.len())
            .ok_or_else(|| malformed(format!("union type id {type_id} has no child")))?;
        let at = usize::try_from(read_int(&offsets, 4, row)?).map_err(malformed)?;
        let range = &mut ranges[index];
        *range = (range.0.min(at), range.1.max(at + 1));
        rows.push((index, at));
    }
    for range in &mut ranges {
        if range.1 == 0 {
            *range = (0, 0);
        }
    }
    let whole = ranges
        .iter()
        .zip(children)
        .all(|((start, end), child)| *start == 0 && *end == child.len());
    if whole {
        body.push_buffer(offsets);
        for child in children {
            write_array(child, body)?;
        }
        return Ok(());
    }
    let mut rebased = Vec::with_capacity(len * 4);
    for (index, at) in rows {
        write_int(&mut rebased, 4, to_i64(at - ranges[index].0))?;
    }
    body.push(Bytes::from(rebased));
    for ((start, end), child) in ranges.into_iter().zip(children) {
        write_array(&child_slice(child, start, end - start)?, body)?;
    }
    Ok(())
}

/// A run-end-encoded array's logical offset and length say which runs it covers; the wire
/// wants run ends counted from 0 and exactly the covered runs. Unsliced arrays go as they
/// are; sliced ones get new run ends (one integer per run) and a slice of the values.
fn write_run_end_encoded(data: &ArrayData, body: &mut BodyBuilder) -> Result<()> {
    let run_ends = child(data, 0)?;
    let values = child(data, 1)?;
    let width = run_ends
        .data_type()
        .primitive_width()
        .ok_or_else(|| malformed("run ends are not integers"))?;
    let offset = data.offset();
    let len = data.len();
    let ends = element_slice(
        buffer(run_ends, 0)?,
        run_ends.offset(),
        run_ends.len(),
        width,
    )?;
    let runs = run_ends.len();
    let end_of = |index: usize| -> Result<usize> {
        usize::try_from(read_int(&ends, width, index)?).map_err(malformed)
    };

    if len == 0 {
        body.node(0, 0);
        body.push(Bytes::new());
        body.push(Bytes::new());
        return write_array(&child_slice(values, 0, 0)?, body);
    }
    // The first run that ends after `offset`, and the first that ends at or after the end.
    let first_run = partition_point(runs, |i| Ok(end_of(i)? <= offset))?;
    let last_run = partition_point(runs, |i| Ok(end_of(i)? < offset + len))?;
    if last_run >= runs {
        return Err(malformed("run ends do not cover the array"));
    }
    let covered = last_run - first_run + 1;
    if offset == 0 && first_run == 0 && covered == runs && end_of(last_run)? == len {
        write_array(run_ends, body)?;
        return write_array(values, body);
    }
    let mut rebased = Vec::with_capacity(covered * width);
    for run in first_run..last_run {
        write_int(&mut rebased, width, to_i64(end_of(run)? - offset))?;
    }
    write_int(&mut rebased, width, to_i64(len))?;
    body.node(covered, 0);
    body.push(Bytes::new());
    body.push(Bytes::from(rebased));
    write_array(&child_slice(values, first_run, covered)?, body)
}

/// The first index in `0..n` for which `pred` is false (`pred` is true then false).
fn partition_point(n: usize, pred: impl Fn(usize) -> Result<bool>) -> Result<usize> {
    let (mut low, mut high) = (0, n);
    while low < high {
        let mid = low + (high - low) / 2;
        if pred(mid)? {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode::{decode_schema, DecodedPayload, FlightDataDecoder};
    use crate::codec::test_support::{all_types_batch, decode_all, encode_all};
    use crate::error::FlightCode;
    use arrow_array::types::Int32Type;
    use arrow_array::{
        BooleanArray, DictionaryArray, Int32Array, Int64Array, ListArray, StringArray, StructArray,
    };
    use arrow_schema::Fields;

    fn batch_of(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter_with_nullable(
            columns.into_iter().map(|(name, array)| (name, array, true)),
        )
        .unwrap()
    }

    #[test]
    fn every_type_round_trips() {
        for rows in [0, 1, 9, 100] {
            let batch = all_types_batch(rows);
            let messages = encode_all(EncodeOptions::default(), std::slice::from_ref(&batch));
            let decoded = decode_all(&messages);
            assert_eq!(decoded.len(), 1, "{rows} rows");
            assert_eq!(decoded[0], batch, "{rows} rows");
        }
    }

    #[test]
    fn sliced_inputs_round_trip() {
        let batch = all_types_batch(100);
        for (offset, len) in [(1, 50), (3, 20), (8, 64), (13, 0), (97, 3)] {
            let slice = batch.slice(offset, len);
            let messages = encode_all(EncodeOptions::default(), std::slice::from_ref(&slice));
            assert_eq!(decode_all(&messages), vec![slice], "slice {offset}+{len}");
        }
    }

    #[test]
    fn slices_send_only_their_rows() {
        let strings = StringArray::from_iter_values((0..1000).map(|i| format!("value {i:04}")));
        let batch = batch_of(vec![("s", Arc::new(strings) as ArrayRef)]);
        let whole = encode_all(EncodeOptions::default(), std::slice::from_ref(&batch));
        let slice = encode_all(EncodeOptions::default(), &[batch.slice(500, 10)]);
        assert!(slice[1].data_body.len() < whole[1].data_body.len() / 50);
    }

    #[test]
    fn body_segments_share_the_arrays_buffers() {
        let values = Int64Array::from_iter_values(0..1000);
        let strings = StringArray::from_iter_values((0..1000).map(|i| format!("v{i}")));
        let value_ptr = values.values().inner().as_ptr();
        let string_data_ptr = strings.values().as_ptr();
        let batch = batch_of(vec![
            ("n", Arc::new(values) as ArrayRef),
            ("s", Arc::new(strings) as ArrayRef),
        ]);
        let messages = encode_all(EncodeOptions::default(), std::slice::from_ref(&batch));
        let segments = messages[1].data_body.segments();
        assert!(segments
            .iter()
            .any(|s| s.as_ptr() == value_ptr && s.len() == 8000));
        assert!(segments.iter().any(|s| s.as_ptr() == string_data_ptr));

        // A slice at a row offset points into the same allocation, further on.
        let slice = batch.slice(10, 100);
        let messages = encode_all(EncodeOptions::default(), &[slice]);
        let expected = value_ptr.wrapping_add(80);
        assert!(messages[1]
            .data_body
            .segments()
            .iter()
            .any(|s| s.as_ptr() == expected && s.len() == 800));
    }

    #[test]
    fn bodies_are_aligned_and_padded() {
        for alignment in [8, 64] {
            let options = EncodeOptions {
                alignment,
                ..EncodeOptions::default()
            };
            let batch = all_types_batch(13);
            let messages = encode_all(options, std::slice::from_ref(&batch));
            for message in &messages[1..] {
                assert_eq!(message.data_body.len() % alignment, 0);
                let header = arrow_ipc::root_as_message(&message.data_header).unwrap();
                assert_eq!(header.bodyLength() as usize, message.data_body.len());
                let buffers = header
                    .header_as_record_batch()
                    .or_else(|| header.header_as_dictionary_batch().and_then(|d| d.data()))
                    .unwrap()
                    .buffers()
                    .unwrap();
                assert!(buffers
                    .iter()
                    .all(|b| (b.offset() as usize).is_multiple_of(alignment)));
            }
            assert_eq!(decode_all(&messages), vec![batch]);
        }
        let bad = EncodeOptions {
            alignment: 12,
            ..EncodeOptions::default()
        };
        let err = FlightDataEncoder::new(bad).encode_schema(all_types_batch(1).schema_ref());
        assert_eq!(err.unwrap_err().code(), FlightCode::InvalidArgument);
    }

    #[test]
    fn large_batches_are_split_by_rows() {
        let batch = all_types_batch(5000);
        let limit = 64 * 1024;
        let options = EncodeOptions {
            max_message_size: limit,
            ..EncodeOptions::default()
        };
        let messages = encode_all(options, std::slice::from_ref(&batch));
        let decoded = decode_all(&messages);
        assert!(decoded.len() > 5, "{} pieces", decoded.len());
        for message in &messages {
            let header = arrow_ipc::root_as_message(&message.data_header).unwrap();
            if header.header_type() == MessageHeader::RecordBatch {
                assert!(
                    message.data_len() <= limit,
                    "{} > {limit}",
                    message.data_len()
                );
            }
        }
        let joined = arrow_select::concat::concat_batches(batch.schema_ref(), &decoded).unwrap();
        assert_eq!(joined, batch);
    }

    #[test]
    fn a_row_larger_than_the_limit_goes_alone() {
        let big = "x".repeat(10_000);
        let strings = StringArray::from_iter_values([big.as_str(), "a", big.as_str()]);
        let batch = batch_of(vec![("s", Arc::new(strings) as ArrayRef)]);
        let options = EncodeOptions {
            max_message_size: 1000,
            ..EncodeOptions::default()
        };
        let messages = encode_all(options, std::slice::from_ref(&batch));
        let decoded = decode_all(&messages);
        assert_eq!(
            decoded
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [1, 1, 1]
        );
        let joined = arrow_select::concat::concat_batches(batch.schema_ref(), &decoded).unwrap();
        assert_eq!(joined, batch);
    }

    fn dictionary_messages(messages: &[FlightData]) -> Vec<(i64, bool, usize)> {
        messages
            .iter()
            .filter_map(|m| {
                let header = arrow_ipc::root_as_message(&m.data_header).unwrap();
                let dictionary = header.header_as_dictionary_batch()?;
                Some((
                    dictionary.id(),
                    dictionary.isDelta(),
                    dictionary.data()?.length() as usize,
                ))
            })
            .collect()
    }

    #[test]
    fn dictionaries_are_sent_once_then_replaced_or_extended() {
        let values = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        let dict = |keys: Vec<i32>, values: &Arc<StringArray>| {
            let array =
                DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), values.clone())
                    .unwrap();
            batch_of(vec![("d", Arc::new(array) as ArrayRef)])
        };
        let first = dict(vec![0, 1, 2], &values);
        let same = dict(vec![2, 2], &values);
        let same_values_new_array =
            dict(vec![1], &Arc::new(StringArray::from(vec!["a", "b", "c"])));
        let extended = dict(
            vec![3, 0],
            &Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
        );
        let replaced = dict(vec![0, 1], &Arc::new(StringArray::from(vec!["z", "y"])));
        let batches = [first, same, same_values_new_array, extended, replaced];

        let messages = encode_all(EncodeOptions::default(), &batches);
        assert_eq!(
            dictionary_messages(&messages),
            [(0, false, 3), (0, true, 1), (0, false, 2)]
        );
        assert_eq!(decode_all(&messages), batches);
    }

    #[test]
    fn nested_dictionaries_round_trip_across_batches() {
        let batch = all_types_batch(20);
        let second = all_types_batch(30).slice(5, 20);
        let messages = encode_all(EncodeOptions::default(), &[batch.clone(), second.clone()]);
        // Four dictionary fields: top level (2), in a list, in a struct.
        let ids: Vec<i64> = dictionary_messages(&messages).iter().map(|m| m.0).collect();
        assert_eq!(&ids[..4], &[0, 1, 2, 3]);
        assert_eq!(decode_all(&messages), vec![batch, second]);
    }

    #[test]
    fn hydrate_unpacks_dictionaries_and_says_so_in_the_schema() {
        let batch = all_types_batch(25);
        let options = EncodeOptions {
            dictionary_handling: DictionaryHandling::Hydrate,
            ..EncodeOptions::default()
        };
        let messages = encode_all(options, std::slice::from_ref(&batch));
        assert!(dictionary_messages(&messages).is_empty());
        let mut decoder = FlightDataDecoder::new();
        let DecodedPayload::Schema(schema) = decoder.decode(&messages[0]).unwrap() else {
            panic!("schema first")
        };
        assert!(!schema
            .fields()
            .iter()
            .any(|f| contains_dictionary(f.data_type())));
        assert_eq!(
            schema.field_with_name("dict_utf8").unwrap().data_type(),
            &DataType::Utf8
        );
        let decoded = decode_all(&messages).remove(0);
        for (index, field) in batch.schema().fields().iter().enumerate() {
            let expected = arrow_cast_free_hydrate(batch.column(index));
            assert_eq!(decoded.column(index), &expected, "{}", field.name());
        }
    }

    /// The reference for hydration, done the plain way per type used in the test batch.
    fn arrow_cast_free_hydrate(array: &ArrayRef) -> ArrayRef {
        make_array(hydrate_data(array.to_data()).unwrap())
    }

    #[test]
    fn hydrate_matches_a_manual_unpack() {
        let dict: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("b"), Some("a")]
            .into_iter()
            .collect();
        let plain = arrow_cast_free_hydrate(&(Arc::new(dict) as ArrayRef));
        let expected: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some("b"),
            Some("a"),
        ]));
        assert_eq!(&plain, &expected);
    }

    #[test]
    fn compression_round_trips() {
        for codec in [
            arrow_ipc::CompressionType::LZ4_FRAME,
            arrow_ipc::CompressionType::ZSTD,
        ] {
            let options = EncodeOptions {
                compression: Some(codec),
                ..EncodeOptions::default()
            };
            let batches = [all_types_batch(200), all_types_batch(50).slice(7, 30)];
            let messages = encode_all(options, &batches);
            let header =
                arrow_ipc::root_as_message(&messages[messages.len() - 1].data_header).unwrap();
            assert!(header
                .header_as_record_batch()
                .unwrap()
                .compression()
                .is_some());
            assert_eq!(decode_all(&messages), batches);
        }
    }

    #[test]
    fn compressed_large_batches_are_split_too() {
        let batch = all_types_batch(3000);
        let options = EncodeOptions {
            compression: Some(arrow_ipc::CompressionType::LZ4_FRAME),
            max_message_size: 64 * 1024,
            ..EncodeOptions::default()
        };
        let decoded = decode_all(&encode_all(options, std::slice::from_ref(&batch)));
        assert!(decoded.len() > 2);
        let joined = arrow_select::concat::concat_batches(batch.schema_ref(), &decoded).unwrap();
        assert_eq!(joined, batch);
    }

    #[test]
    fn sliced_booleans_structs_and_lists() {
        let bools = BooleanArray::from_iter((0..77).map(|i| (i % 4 != 0).then_some(i % 3 == 0)));
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..77).map(|i| (i % 5 != 0).then(|| vec![Some(i), None, Some(i + 1)])),
        );
        let fields = Fields::from(vec![Field::new("x", DataType::Int32, true)]);
        let structs = StructArray::try_new(
            fields,
            vec![Arc::new(Int32Array::from_iter((0..77).map(Some)))],
            Some((0..77).map(|i| i % 6 != 0).collect()),
        )
        .unwrap();
        let batch = batch_of(vec![
            ("b", Arc::new(bools) as ArrayRef),
            ("l", Arc::new(list) as ArrayRef),
            ("s", Arc::new(structs) as ArrayRef),
        ]);
        for offset in 0..17 {
            // Slice the arrays themselves too (struct children keep their own offsets).
            let slice = batch.slice(offset, 77 - offset - 3).slice(1, 40);
            let messages = encode_all(EncodeOptions::default(), std::slice::from_ref(&slice));
            assert_eq!(decode_all(&messages), vec![slice]);
        }
    }

    #[test]
    fn batches_must_match_the_schema() {
        let mut encoder = FlightDataEncoder::default();
        let batch = batch_of(vec![("a", Arc::new(Int32Array::from(vec![1])) as ArrayRef)]);
        let err = encoder.encode_batch(&batch).unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        encoder.encode_schema(batch.schema_ref()).unwrap();
        let other = batch_of(vec![("b", Arc::new(Int32Array::from(vec![1])) as ArrayRef)]);
        let err = encoder.encode_batch(&other).unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        assert!(err.message().contains("does not match"), "{err}");
    }

    #[test]
    fn dictionary_of_dictionary_needs_hydrate() {
        let inner: DictionaryArray<Int32Type> = vec!["a", "b"].into_iter().collect();
        let outer =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(vec![0, 1, 1]), Arc::new(inner))
                .unwrap();
        let batch = batch_of(vec![("dd", Arc::new(outer) as ArrayRef)]);
        let err = FlightDataEncoder::default()
            .encode_schema(batch.schema_ref())
            .unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        let options = EncodeOptions {
            dictionary_handling: DictionaryHandling::Hydrate,
            ..EncodeOptions::default()
        };
        let decoded = decode_all(&encode_all(options, &[batch]));
        let expected: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "b"]));
        assert_eq!(decoded[0].column(0), &expected);
    }

    #[test]
    fn encapsulated_schema_round_trips() {
        let schema = all_types_batch(1).schema();
        let bytes = encode_schema(&schema);
        assert_eq!(&bytes[..4], &CONTINUATION_MARKER);
        assert_eq!(bytes.len() % 8, 0);
        let len = i32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(len + 8, bytes.len());
        let decoded = decode_schema(&bytes).unwrap();
        assert_eq!(decoded.fields(), schema.fields());
        // The legacy form without the continuation marker is accepted too.
        assert_eq!(
            decode_schema(&bytes[4..]).unwrap().fields(),
            schema.fields()
        );
        // And arrow-ipc reads ours.
        let theirs = arrow_ipc::convert::try_schema_from_ipc_buffer(&bytes).unwrap();
        assert_eq!(theirs.fields(), schema.fields());
    }
}
