//! FlightData → RecordBatch: strict checks, then arrays built over the received bytes.
//!
//! The body arrives as one contiguous `Bytes`; it becomes an `arrow_buffer::Buffer` without a
//! copy and arrow-ipc's reader builds the arrays over it, copying only buffers whose address is
//! not aligned for their type (`require_alignment = false`).
//!
//! Everything in a message is the peer's claim, and arrow-ipc's reader is third-party parsing
//! code that may panic or allocate on claims it does not check. So before it runs, this module
//! verifies the flatbuffer, then walks the schema alongside the message's field nodes and
//! buffers ([`Preflight`]) and rejects anything inconsistent: negative or huge lengths, buffers
//! outside the body, too few or too many nodes and buffers, buffers too small for the rows they
//! claim, dictionaries never sent, implausible decompressed sizes. Only then is the reader
//! called, with full validation of the resulting arrays on, and under `catch_unwind` as a last
//! line of defence. Every problem is an `INVALID_ARGUMENT` error naming what was wrong.

use super::{CONTINUATION_MARKER, MAX_ROWS};
use crate::data::FlightData;
use crate::error::{FlightCode, FlightError, Result};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_data::UnsafeFlag;
use arrow_ipc::reader::{read_dictionary_impl, RecordBatchDecoder};
use arrow_ipc::{Buffer as IpcBuffer, FieldNode, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, UnionMode};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A compressed buffer whose exact decompressed size cannot be derived from the row count
/// (the values of strings and binaries) may claim at most this many bytes per compressed byte,
/// or [`MIN_DECOMPRESSED_LIMIT`], whichever is larger. The claim sizes an allocation, so it
/// must be bounded; real data rarely compresses beyond a few hundred to one.
const MAX_COMPRESSION_RATIO: usize = 4096;

/// Claims up to this size are always accepted for buffers of unknown decompressed size.
const MIN_DECOMPRESSED_LIMIT: usize = 16 << 20;

/// What one `FlightData` turned out to carry.
#[derive(Debug, Clone)]
pub enum DecodedPayload {
    /// No IPC message: an empty `data_header`, e.g. a metadata-only message.
    None,
    /// A schema; it replaces the previous one and clears the dictionaries.
    Schema(SchemaRef),
    /// A batch of rows in the current schema.
    RecordBatch(RecordBatch),
    /// A dictionary (new, replacement or delta), absorbed into the decoder's state for the
    /// batches that follow.
    DictionaryBatch,
}

/// Decodes a stream of Flight data messages, synchronously, keeping the schema and the
/// dictionaries the stream has sent so far. One decoder per stream.
#[derive(Debug, Default)]
pub struct FlightDataDecoder {
    schema: Option<SchemaRef>,
    dictionaries: HashMap<i64, ArrayRef>,
}

impl FlightDataDecoder {
    /// A decoder that has seen nothing yet.
    pub fn new() -> Self {
        FlightDataDecoder::default()
    }

    /// The schema of the stream, once its Schema message has been decoded.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// Decodes one message. Errors are `INVALID_ARGUMENT` (`UNIMPLEMENTED` for valid data this
    /// side cannot handle, e.g. big-endian); the decoder stays usable after an error, but the
    /// stream it came from usually is not.
    pub fn decode(&mut self, data: &FlightData) -> Result<DecodedPayload> {
        if data.data_header.is_empty() {
            if !data.data_body.is_empty() {
                return Err(FlightError::invalid_argument(format!(
                    "FlightData has a {}-byte body but no IPC header",
                    data.data_body.len()
                )));
            }
            return Ok(DecodedPayload::None);
        }
        let message = arrow_ipc::root_as_message(&data.data_header).map_err(|err| {
            FlightError::invalid_argument(format!("invalid IPC message header: {err}"))
        })?;
        let version = message.version();
        if version != MetadataVersion::V4 && version != MetadataVersion::V5 {
            return Err(FlightError::invalid_argument(format!(
                "unsupported IPC metadata version {version:?} (V4 and V5 are supported)"
            )));
        }

        match message.header_type() {
            MessageHeader::Schema => {
                let schema = message.header_as_schema().ok_or_else(|| {
                    FlightError::invalid_argument("Schema message without schema")
                })?;
                let schema = Arc::new(schema_from_flatbuffer(schema)?);
                self.schema = Some(Arc::clone(&schema));
                self.dictionaries.clear();
                Ok(DecodedPayload::Schema(schema))
            }
            MessageHeader::RecordBatch => {
                let schema = self
                    .schema
                    .clone()
                    .ok_or_else(|| FlightError::invalid_argument("record batch before schema"))?;
                let batch = message.header_as_record_batch().ok_or_else(|| {
                    FlightError::invalid_argument("RecordBatch message without record batch")
                })?;
                let body = message_body(data, message.bodyLength())?;
                Preflight::new(batch, &body, version, &self.dictionaries)?
                    .check_fields(schema.fields().iter().map(|f| f.as_ref()), "record batch")?;
                let dictionaries = &self.dictionaries;
                let batch = guard("record batch", || {
                    RecordBatchDecoder::try_new(&body, batch, schema, dictionaries, &version)?
                        .with_require_alignment(false)
                        // Full validation (offsets, UTF-8, nulls, dictionary keys) stays on:
                        // the data came from outside the process.
                        .with_skip_validation(UnsafeFlag::new())
                        .read_record_batch()
                })?;
                Ok(DecodedPayload::RecordBatch(batch))
            }
            MessageHeader::DictionaryBatch => {
                let schema = self.schema.clone().ok_or_else(|| {
                    FlightError::invalid_argument("dictionary batch before schema")
                })?;
                let dictionary = message.header_as_dictionary_batch().ok_or_else(|| {
                    FlightError::invalid_argument("DictionaryBatch message without dictionary")
                })?;
                let id = dictionary.id();
                let value_type = dictionary_value_type(&schema, id)?;
                if dictionary.isDelta() && !self.dictionaries.contains_key(&id) {
                    return Err(FlightError::invalid_argument(format!(
                        "delta for dictionary id {id}, which was never sent"
                    )));
                }
                let data_batch = dictionary.data().ok_or_else(|| {
                    FlightError::invalid_argument(format!("dictionary id {id} has no data"))
                })?;
                let body = message_body(data, message.bodyLength())?;
                let values = Field::new("", value_type, true);
                Preflight::new(data_batch, &body, version, &self.dictionaries)?
                    .check_fields(std::iter::once(&values), "dictionary batch")?;
                let dictionaries = &mut self.dictionaries;
                guard("dictionary batch", || {
                    read_dictionary_impl(
                        &body,
                        dictionary,
                        &schema,
                        dictionaries,
                        &version,
                        false,
                        UnsafeFlag::new(),
                    )
                })?;
                Ok(DecodedPayload::DictionaryBatch)
            }
            other => Err(FlightError::invalid_argument(format!(
                "unsupported IPC message type {} (Flight carries Schema, DictionaryBatch \
                 and RecordBatch)",
                other.variant_name().unwrap_or("unknown")
            ))),
        }
    }
}

/// Reads the IPC-encapsulated schema of `FlightInfo.schema` / `SchemaResult.schema`: an
/// optional `0xFFFFFFFF` continuation marker, the little-endian `i32` length, the Schema
/// `Message` flatbuffer. Empty input is an `INVALID_ARGUMENT` error ("empty schema").
pub fn decode_schema(bytes: &[u8]) -> Result<Schema> {
    if bytes.is_empty() {
        return Err(FlightError::invalid_argument("empty schema"));
    }
    let rest = bytes
        .strip_prefix(&CONTINUATION_MARKER[..])
        .unwrap_or(bytes);
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| {
        FlightError::invalid_argument(format!("schema of {} bytes lacks its length", bytes.len()))
    })?;
    let len = usize::try_from(i32::from_le_bytes(*len))
        .map_err(|_| FlightError::invalid_argument("schema message length is negative"))?;
    let flatbuffer = rest.get(..len).ok_or_else(|| {
        FlightError::invalid_argument(format!(
            "schema message declares {len} bytes but {} follow",
            rest.len()
        ))
    })?;
    if flatbuffer.is_empty() {
        return Err(FlightError::invalid_argument("empty schema"));
    }
    let message = arrow_ipc::root_as_message(flatbuffer).map_err(|err| {
        FlightError::invalid_argument(format!("invalid IPC schema message: {err}"))
    })?;
    let schema = message.header_as_schema().ok_or_else(|| {
        FlightError::invalid_argument(format!(
            "expected a Schema message, got {}",
            message
                .header_type()
                .variant_name()
                .unwrap_or("an unknown type")
        ))
    })?;
    schema_from_flatbuffer(schema)
}

fn schema_from_flatbuffer(schema: arrow_ipc::Schema<'_>) -> Result<Schema> {
    if !schema.endianness().equals_to_target_endianness() {
        return Err(FlightError::unimplemented(
            "the peer's data is in the other byte order, which is not supported",
        ));
    }
    guard("schema", || arrow_ipc::convert::try_fb_to_schema(schema))
}

/// The value type of the dictionary field with `id`, which may be nested anywhere.
fn dictionary_value_type(schema: &Schema, id: i64) -> Result<DataType> {
    // arrow-ipc keys dictionaries by the id stored on the schema's fields; that API is
    // deprecated in favour of ids assigned by position, but it is what the reader uses.
    #[allow(deprecated)]
    let fields = schema.fields_with_dict_id(id);
    match fields.first().map(|field| field.data_type()) {
        Some(DataType::Dictionary(_, value_type)) => Ok(value_type.as_ref().clone()),
        _ => Err(FlightError::invalid_argument(format!(
            "dictionary batch for unknown dictionary id {id}"
        ))),
    }
}

/// The body as one buffer, checked against the header's `bodyLength`. Free when the body is
/// one segment, as received bodies are.
fn message_body(data: &FlightData, declared: i64) -> Result<Buffer> {
    let declared = usize::try_from(declared).map_err(|_| {
        FlightError::invalid_argument(format!("IPC header declares a body of {declared} bytes"))
    })?;
    if data.data_body.len() < declared {
        return Err(FlightError::invalid_argument(format!(
            "IPC body is {} bytes but the header declares {declared}",
            data.data_body.len()
        )));
    }
    let body = data.data_body.to_contiguous().slice(..declared);
    if (body.as_ptr() as usize).is_multiple_of(8) {
        return Ok(Buffer::from(body));
    }
    // The transport handed us bytes at an odd address. The reader would copy each misaligned
    // buffer anyway (nearly all of them, then), and one of its paths (dense union offsets)
    // cannot cope with misalignment at all, so copy the body once into an aligned allocation.
    Ok(Buffer::from(body.as_ref()))
}

/// Runs a call into arrow-ipc's reader. Its errors become `INVALID_ARGUMENT` (the data came
/// from the peer). A panic in it, which our checks should have made impossible, is caught and
/// reported the same way: one bad message must not take down a server.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, ArrowError>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(ArrowError::NotYetImplemented(message))) => Err(FlightError::unimplemented(
            format!("{what}: not supported: {message}"),
        )),
        Ok(Err(err)) => Err(FlightError::new(
            FlightCode::InvalidArgument,
            format!("invalid {what}: {err}"),
        )),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(FlightError::invalid_argument(format!(
                "invalid {what}: malformed IPC data ({detail})"
            )))
        }
    }
}

fn invalid(message: String) -> FlightError {
    FlightError::invalid_argument(message)
}

/// Walks a schema alongside a RecordBatch header's field nodes and buffers, checking that the
/// header describes exactly that schema and that every buffer lies inside the body and is
/// large enough for the rows it claims, before arrow-ipc's reader sees any of it.
struct Preflight<'a> {
    nodes: flatbuffers::Vector<'a, FieldNode>,
    buffers: flatbuffers::Vector<'a, IpcBuffer>,
    variadic_counts: Vec<i64>,
    next_node: usize,
    next_buffer: usize,
    next_variadic: usize,
    body: &'a [u8],
    compressed: bool,
    /// Metadata V4 gives unions a validity buffer; V5 does not.
    union_validity: bool,
    dictionaries: &'a HashMap<i64, ArrayRef>,
}

/// What a buffer must hold, from the field node's row count.
#[derive(Clone, Copy)]
enum Need {
    /// At least this many bytes (bitmaps).
    AtLeast(usize),
    /// At least `count` elements of `width` bytes, and whole elements only: arrow's
    /// validation views such buffers as typed slices, which panics on a partial element.
    Elements { count: usize, width: usize },
    /// Nothing can be said without reading other buffers (values of strings and binaries,
    /// the data buffers of views, validity of arrays without nulls).
    Unknown,
}

impl<'a> Preflight<'a> {
    fn new(
        batch: arrow_ipc::RecordBatch<'a>,
        body: &'a Buffer,
        version: MetadataVersion,
        dictionaries: &'a HashMap<i64, ArrayRef>,
    ) -> Result<Self> {
        let nodes = batch
            .nodes()
            .ok_or_else(|| invalid("record batch header has no field nodes".into()))?;
        let buffers = batch
            .buffers()
            .ok_or_else(|| invalid("record batch header has no buffers".into()))?;
        let length = batch.length();
        if !(0..=MAX_ROWS).contains(&length) {
            return Err(invalid(format!(
                "record batch length {length} is outside 0..={MAX_ROWS}"
            )));
        }
        for (index, buffer) in buffers.iter().enumerate() {
            let end = buffer.offset().checked_add(buffer.length());
            let inside = buffer.offset() >= 0
                && buffer.length() >= 0
                && end
                    .and_then(|end| usize::try_from(end).ok())
                    .is_some_and(|end| end <= body.len());
            if !inside {
                return Err(invalid(format!(
                    "buffer {index} (offset {}, length {}) lies outside the {}-byte body",
                    buffer.offset(),
                    buffer.length(),
                    body.len()
                )));
            }
        }
        let compressed = match batch.compression() {
            None => false,
            Some(compression) => {
                if compression.method() != arrow_ipc::BodyCompressionMethod::BUFFER {
                    return Err(invalid(format!(
                        "unsupported body compression method {:?}",
                        compression.method()
                    )));
                }
                true
            }
        };
        Ok(Preflight {
            nodes,
            buffers,
            variadic_counts: batch.variadicBufferCounts().into_iter().flatten().collect(),
            next_node: 0,
            next_buffer: 0,
            next_variadic: 0,
            body: body.as_slice(),
            compressed,
            union_validity: version < MetadataVersion::V5,
            dictionaries,
        })
    }

    /// Checks every field, then that nothing in the header was left over.
    fn check_fields<'f>(
        mut self,
        fields: impl Iterator<Item = &'f Field>,
        what: &str,
    ) -> Result<()> {
        let mut count = 0;
        for field in fields {
            self.field(field)?;
            count += 1;
        }
        if self.next_node != self.nodes.len() {
            return Err(invalid(format!(
                "{what} has {} field nodes but the schema's {count} columns use {}",
                self.nodes.len(),
                self.next_node
            )));
        }
        if self.next_buffer != self.buffers.len() {
            return Err(invalid(format!(
                "{what} has {} buffers but the schema's {count} columns use {}",
                self.buffers.len(),
                self.next_buffer
            )));
        }
        if self.next_variadic != self.variadic_counts.len() {
            return Err(invalid(format!(
                "{what} has {} variadic buffer counts but the schema uses {}",
                self.variadic_counts.len(),
                self.next_variadic
            )));
        }
        Ok(())
    }

    /// The next field node: `(length, null_count)`, both within `0..=MAX_ROWS`, nulls ≤ rows.
    fn node(&mut self, field: &Field) -> Result<(usize, usize)> {
        if self.next_node >= self.nodes.len() {
            return Err(invalid(format!(
                "the header has {} field nodes, too few for the schema (column {:?})",
                self.nodes.len(),
                field.name()
            )));
        }
        let node = self.nodes.get(self.next_node);
        self.next_node += 1;
        let (length, null_count) = (node.length(), node.null_count());
        if !(0..=MAX_ROWS).contains(&length) || !(0..=length).contains(&null_count) {
            return Err(invalid(format!(
                "column {:?}: field node with length {length} and null count {null_count}",
                field.name()
            )));
        }
        // Both are within 0..=i32::MAX, so they convert.
        Ok((length as usize, null_count as usize))
    }

    /// The next buffer, checked against what it must hold; returns its (decompressed) size.
    fn buffer(&mut self, field: &Field, role: &str, need: Need) -> Result<usize> {
        if self.next_buffer >= self.buffers.len() {
            return Err(invalid(format!(
                "the header has {} buffers, too few for the schema (column {:?}, {role})",
                self.buffers.len(),
                field.name()
            )));
        }
        let buffer = self.buffers.get(self.next_buffer);
        self.next_buffer += 1;
        // Both were checked against the body in `new`.
        let (offset, length) = (buffer.offset() as usize, buffer.length() as usize);
        let size = if self.compressed && length > 0 {
            self.decompressed_size(field, role, offset, length, need)?
        } else {
            length
        };
        let (min, width) = match need {
            Need::AtLeast(min) => (min, 1),
            Need::Elements { count, width } => (count.saturating_mul(width), width),
            Need::Unknown => (0, 1),
        };
        if size < min {
            return Err(invalid(format!(
                "column {:?}: {role} buffer is {size} bytes, the rows need {min}",
                field.name()
            )));
        }
        if !size.is_multiple_of(width) {
            return Err(invalid(format!(
                "column {:?}: {role} buffer is {size} bytes, not a whole number of \
                 {width}-byte elements",
                field.name()
            )));
        }
        Ok(size)
    }

    /// A compressed buffer starts with its decompressed length (i64 LE; -1 = stored raw).
    /// That number sizes an allocation in the reader, so it must be plausible.
    fn decompressed_size(
        &self,
        field: &Field,
        role: &str,
        offset: usize,
        length: usize,
        need: Need,
    ) -> Result<usize> {
        let prefix = self
            .body
            .get(offset..offset + length)
            .and_then(|bytes| bytes.first_chunk::<8>())
            .ok_or_else(|| {
                invalid(format!(
                    "column {:?}: compressed {role} buffer of {length} bytes lacks its length prefix",
                    field.name()
                ))
            })?;
        let claimed = i64::from_le_bytes(*prefix);
        if claimed == -1 {
            return Ok(length - 8);
        }
        let limit = match need {
            // Writers compress exactly the bytes the rows use; allow for padding.
            Need::AtLeast(min) => min.next_multiple_of(64) + 64,
            Need::Elements { count, width } => count
                .saturating_mul(width)
                .next_multiple_of(64)
                .saturating_add(64),
            Need::Unknown => length
                .saturating_mul(MAX_COMPRESSION_RATIO)
                .max(MIN_DECOMPRESSED_LIMIT),
        };
        match usize::try_from(claimed) {
            Ok(size) if size <= limit => Ok(size),
            _ => Err(invalid(format!(
                "column {:?}: compressed {role} buffer of {length} bytes claims to hold \
                 {claimed} bytes (at most {limit} accepted)",
                field.name()
            ))),
        }
    }

    /// The validity bitmap: required only when the node has nulls.
    fn validity(&mut self, field: &Field, length: usize, null_count: usize) -> Result<()> {
        let need = if null_count > 0 {
            Need::AtLeast(length.div_ceil(8))
        } else {
            Need::Unknown
        };
        self.buffer(field, "validity", need).map(|_| ())
    }

    fn field(&mut self, field: &Field) -> Result<()> {
        let data_type = field.data_type();
        match data_type {
            DataType::Null => {
                self.node(field)?;
            }
            DataType::Boolean => {
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "values", Need::AtLeast(length.div_ceil(8)))?;
            }
            DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary => {
                let width = if matches!(data_type, DataType::Utf8 | DataType::Binary) {
                    4
                } else {
                    8
                };
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "offsets", offsets_need(length, width))?;
                self.buffer(field, "values", Need::Unknown)?;
            }
            DataType::Utf8View | DataType::BinaryView => {
                let count = self.variadic_count(field)?;
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "views", elements(length, 16))?;
                for _ in 0..count {
                    self.buffer(field, "view data", Need::Unknown)?;
                }
            }
            DataType::FixedSizeBinary(width) => {
                let width = usize::try_from(*width).unwrap_or(usize::MAX);
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "values", elements(length, width))?;
            }
            DataType::List(child) | DataType::LargeList(child) | DataType::Map(child, _) => {
                let width = if matches!(data_type, DataType::LargeList(_)) {
                    8
                } else {
                    4
                };
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "offsets", offsets_need(length, width))?;
                self.field(child)?;
            }
            DataType::ListView(child) | DataType::LargeListView(child) => {
                let width = if matches!(data_type, DataType::ListView(_)) {
                    4
                } else {
                    8
                };
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "offsets", elements(length, width))?;
                self.buffer(field, "sizes", elements(length, width))?;
                self.field(child)?;
            }
            DataType::FixedSizeList(child, _) => {
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.field(child)?;
            }
            DataType::Struct(children) => {
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                for child in children {
                    self.field(child)?;
                }
            }
            DataType::Union(children, mode) => {
                let (length, _) = self.node(field)?;
                if self.union_validity {
                    self.buffer(field, "validity", Need::Unknown)?;
                }
                // The reader slices these to the row count without checking: they must hold it.
                self.buffer(field, "type ids", Need::AtLeast(length))?;
                if let UnionMode::Dense = mode {
                    // The reader views these as i32 without realigning them (a panic if
                    // misaligned); the body is 8-aligned, so their offset in it must be too.
                    let next = (self.next_buffer < self.buffers.len())
                        .then(|| self.buffers.get(self.next_buffer).offset());
                    if let Some(at) = next.filter(|at| !self.compressed && at % 4 != 0) {
                        return Err(invalid(format!(
                            "column {:?}: union offsets at body offset {at}, not a multiple of 4",
                            field.name()
                        )));
                    }
                    self.buffer(field, "offsets", elements(length, 4))?;
                }
                for (_, child) in children.iter() {
                    self.field(child)?;
                }
            }
            DataType::RunEndEncoded(run_ends, values) => {
                self.node(field)?;
                self.field(run_ends)?;
                self.field(values)?;
            }
            DataType::Dictionary(key_type, _) => {
                let (length, nulls) = self.node(field)?;
                // See `dictionary_value_type`: the reader looks dictionaries up by this id.
                #[allow(deprecated)]
                let id = field.dict_id().unwrap_or_default();
                // A dictionary may be omitted when every key is null (the IPC spec allows it).
                if !self.dictionaries.contains_key(&id) && nulls < length {
                    return Err(invalid(format!(
                        "column {:?} uses dictionary id {id}, which was never sent",
                        field.name()
                    )));
                }
                let width = key_type.primitive_width().unwrap_or(8);
                self.validity(field, length, nulls)?;
                self.buffer(field, "keys", elements(length, width))?;
            }
            _ => {
                let width = data_type.primitive_width().ok_or_else(|| {
                    FlightError::unimplemented(format!(
                        "column {:?}: type {data_type} is not supported",
                        field.name()
                    ))
                })?;
                let (length, nulls) = self.node(field)?;
                self.validity(field, length, nulls)?;
                self.buffer(field, "values", elements(length, width))?;
            }
        }
        Ok(())
    }

    /// The number of data buffers of the next view column.
    fn variadic_count(&mut self, field: &Field) -> Result<usize> {
        let count = self
            .variadic_counts
            .get(self.next_variadic)
            .copied()
            .ok_or_else(|| {
                invalid(format!(
                    "column {:?} is a view type but the header lacks its variadic buffer count",
                    field.name()
                ))
            })?;
        self.next_variadic += 1;
        let remaining = self.buffers.len().saturating_sub(self.next_buffer);
        match usize::try_from(count) {
            Ok(count) if count <= remaining => Ok(count),
            _ => Err(invalid(format!(
                "column {:?}: variadic buffer count {count}, but only {remaining} buffers remain",
                field.name()
            ))),
        }
    }
}

fn elements(count: usize, width: usize) -> Need {
    Need::Elements { count, width }
}

/// n + 1 offsets, or none at all for n = 0 (writers differ; both are valid).
fn offsets_need(length: usize, width: usize) -> Need {
    let count = if length == 0 { 0 } else { length + 1 };
    elements(count, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{
        all_types_batch, decode_all, encode_all, from_ipc_stream, to_ipc_stream,
    };
    use crate::codec::{EncodeOptions, FlightDataEncoder};
    use crate::data::DataBody;
    use arrow_array::types::Int32Type;
    use arrow_array::{Array, DictionaryArray, Int32Array, Int64Array, StringArray};
    use arrow_ipc::reader::StreamReader;
    use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
    use bytes::Bytes;
    use flatbuffers::FlatBufferBuilder;

    fn int_batch(rows: i64) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from_iter_values(0..rows)) as ArrayRef,
        )])
        .unwrap()
    }

    fn assert_invalid(result: Result<DecodedPayload>, needle: &str) {
        let err = result.expect_err("must fail");
        assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
        assert!(err.message().contains(needle), "{err:?} lacks {needle:?}");
        assert!(
            !err.message().contains("malformed IPC data"),
            "reader panicked: {err}"
        );
    }

    /// A decoder that has seen the schema of `batch`, and the messages for `batch`.
    fn primed(batch: &RecordBatch) -> (FlightDataDecoder, Vec<FlightData>) {
        let mut messages = encode_all(EncodeOptions::default(), std::slice::from_ref(batch));
        let mut decoder = FlightDataDecoder::new();
        decoder.decode(&messages.remove(0)).unwrap();
        (decoder, messages)
    }

    /// A RecordBatch message header with whatever the test wants in it.
    fn batch_header(
        length: i64,
        nodes: &[(i64, i64)],
        buffers: &[(i64, i64)],
        body_len: i64,
        variadic: Option<&[i64]>,
    ) -> Bytes {
        let mut fbb = FlatBufferBuilder::new();
        let nodes: Vec<FieldNode> = nodes.iter().map(|(l, n)| FieldNode::new(*l, *n)).collect();
        let buffers: Vec<IpcBuffer> = buffers
            .iter()
            .map(|(o, l)| IpcBuffer::new(*o, *l))
            .collect();
        let nodes = fbb.create_vector(&nodes);
        let buffers = fbb.create_vector(&buffers);
        let variadic = variadic.map(|v| fbb.create_vector(v));
        let mut batch = arrow_ipc::RecordBatchBuilder::new(&mut fbb);
        batch.add_length(length);
        batch.add_nodes(nodes);
        batch.add_buffers(buffers);
        if let Some(v) = variadic {
            batch.add_variadicBufferCounts(v);
        }
        let batch = batch.finish().as_union_value();
        let mut message = arrow_ipc::MessageBuilder::new(&mut fbb);
        message.add_version(MetadataVersion::V5);
        message.add_header_type(MessageHeader::RecordBatch);
        message.add_header(batch);
        message.add_bodyLength(body_len);
        let root = message.finish();
        fbb.finish(root, None);
        Bytes::copy_from_slice(fbb.finished_data())
    }

    fn message(header: Bytes, body: Vec<u8>) -> FlightData {
        FlightData {
            data_header: header,
            data_body: DataBody::from(body),
            ..FlightData::default()
        }
    }

    #[test]
    fn stream_reader_reads_our_messages() {
        let values = Arc::new(StringArray::from(vec!["a", "b"]));
        let dict =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(vec![1, 0]), values).unwrap();
        let mut batches = vec![all_types_batch(40), all_types_batch(60).slice(9, 33)];
        batches.push(all_types_batch(0));
        let messages = encode_all(EncodeOptions::default(), &batches);
        let reader =
            StreamReader::try_new(std::io::Cursor::new(to_ipc_stream(&messages)), None).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(read, batches);

        // Dictionary replacement and delta, as arrow-ipc sees them.
        let d1 = RecordBatch::try_from_iter([("d", Arc::new(dict) as ArrayRef)]).unwrap();
        let values = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        let d2 = DictionaryArray::<Int32Type>::try_new(Int32Array::from(vec![2]), values).unwrap();
        let d2 = RecordBatch::try_from_iter([("d", Arc::new(d2) as ArrayRef)]).unwrap();
        let values = Arc::new(StringArray::from(vec!["q"]));
        let d3 = DictionaryArray::<Int32Type>::try_new(Int32Array::from(vec![0]), values).unwrap();
        let d3 = RecordBatch::try_from_iter([("d", Arc::new(d3) as ArrayRef)]).unwrap();
        let batches = vec![d1, d2, d3];
        let messages = encode_all(EncodeOptions::default(), &batches);
        let reader =
            StreamReader::try_new(std::io::Cursor::new(to_ipc_stream(&messages)), None).unwrap();
        assert_eq!(reader.map(|b| b.unwrap()).collect::<Vec<_>>(), batches);
    }

    #[test]
    fn we_read_stream_writer_output() {
        let batches = vec![all_types_batch(50), all_types_batch(70).slice(3, 60)];
        let plain = IpcWriteOptions::default();
        let compressed = IpcWriteOptions::default()
            .try_with_compression(Some(arrow_ipc::CompressionType::ZSTD))
            .unwrap();
        for options in [plain, compressed] {
            let mut bytes = Vec::new();
            let mut writer =
                StreamWriter::try_new_with_options(&mut bytes, batches[0].schema_ref(), options)
                    .unwrap();
            for batch in &batches {
                writer.write(batch).unwrap();
            }
            writer.finish().unwrap();
            drop(writer);
            assert_eq!(decode_all(&from_ipc_stream(&bytes)), batches);
        }
    }

    #[test]
    fn decoded_arrays_point_into_the_received_body() {
        let (mut decoder, messages) = primed(&int_batch(1000));
        // Received bodies are one contiguous buffer; an Arrow allocation is 64-byte aligned.
        let contiguous = Buffer::from_vec(messages[0].data_body.to_contiguous().to_vec());
        let body = Bytes::from(contiguous);
        let received = FlightData {
            data_body: DataBody::from(body.clone()),
            ..messages[0].clone()
        };
        let DecodedPayload::RecordBatch(batch) = decoder.decode(&received).unwrap() else {
            panic!("a batch")
        };
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let values = column.values().inner().as_ptr() as usize;
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(range.contains(&values), "values were copied");
        assert_eq!(column.value(999), 999);

        // A misaligned body still decodes: the reader copies what it must.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&body);
        let shifted = Bytes::from(shifted).slice(1..);
        let received = FlightData {
            data_body: DataBody::from(shifted),
            ..messages[0].clone()
        };
        let DecodedPayload::RecordBatch(again) = decoder.decode(&received).unwrap() else {
            panic!("a batch")
        };
        assert_eq!(again, batch);
    }

    #[test]
    fn metadata_only_messages_decode_to_none() {
        let mut decoder = FlightDataDecoder::new();
        let payload = decoder
            .decode(&FlightData::metadata_only(&b"hi"[..]))
            .unwrap();
        assert!(matches!(payload, DecodedPayload::None));
        let bad = FlightData {
            data_body: DataBody::from(vec![1, 2, 3]),
            ..FlightData::default()
        };
        assert_invalid(decoder.decode(&bad), "no IPC header");
    }

    #[test]
    fn garbage_headers_are_rejected() {
        let mut decoder = FlightDataDecoder::new();
        for garbage in [&b"\x01"[..], b"not a flatbuffer at all", &[0xff; 64]] {
            let data = message(Bytes::copy_from_slice(garbage), vec![]);
            assert_invalid(decoder.decode(&data), "invalid IPC message header");
        }
    }

    #[test]
    fn tensors_and_other_types_are_rejected_by_name() {
        let mut fbb = FlatBufferBuilder::new();
        let mut int = arrow_ipc::IntBuilder::new(&mut fbb);
        int.add_bitWidth(32);
        int.add_is_signed(true);
        let int = int.finish().as_union_value();
        let mut dim = arrow_ipc::TensorDimBuilder::new(&mut fbb);
        dim.add_size(4);
        let dim = dim.finish();
        let shape = fbb.create_vector(&[dim]);
        let mut tensor = arrow_ipc::TensorBuilder::new(&mut fbb);
        tensor.add_type_type(arrow_ipc::Type::Int);
        tensor.add_type_(int);
        tensor.add_shape(shape);
        tensor.add_data(&IpcBuffer::new(0, 16));
        let tensor = tensor.finish().as_union_value();
        let mut message = arrow_ipc::MessageBuilder::new(&mut fbb);
        message.add_version(MetadataVersion::V5);
        message.add_header_type(MessageHeader::Tensor);
        message.add_header(tensor);
        message.add_bodyLength(16);
        let root = message.finish();
        fbb.finish(root, None);
        let data = self::message(Bytes::copy_from_slice(fbb.finished_data()), vec![0; 16]);
        assert_invalid(FlightDataDecoder::new().decode(&data), "Tensor");
    }

    #[test]
    fn batches_and_dictionaries_before_the_schema_are_rejected() {
        let batch = int_batch(3);
        let messages = encode_all(EncodeOptions::default(), std::slice::from_ref(&batch));
        assert_invalid(
            FlightDataDecoder::new().decode(&messages[1]),
            "record batch before schema",
        );

        let dict: DictionaryArray<Int32Type> = vec!["a"].into_iter().collect();
        let batch = RecordBatch::try_from_iter([("d", Arc::new(dict) as ArrayRef)]).unwrap();
        let messages = encode_all(EncodeOptions::default(), std::slice::from_ref(&batch));
        assert_invalid(
            FlightDataDecoder::new().decode(&messages[1]),
            "before schema",
        );
    }

    #[test]
    fn short_bodies_are_rejected_with_sizes() {
        let (mut decoder, messages) = primed(&int_batch(100));
        let body = messages[0].data_body.to_contiguous();
        let short = message(
            messages[0].data_header.clone(),
            body[..body.len() - 8].to_vec(),
        );
        assert_invalid(
            decoder.decode(&short),
            "IPC body is 792 bytes but the header declares 800",
        );
    }

    #[test]
    fn lying_headers_are_rejected_before_allocating() {
        let (mut decoder, _) = primed(&int_batch(1));
        let body = vec![0u8; 64];
        let cases: Vec<(Bytes, &str)> = vec![
            // Buffer beyond the body.
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (0, 1 << 40)], 64, None),
                "outside the 64-byte body",
            ),
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (60, 8)], 64, None),
                "outside",
            ),
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (-8, 8)], 64, None),
                "outside",
            ),
            // Huge or negative lengths and counts.
            (
                batch_header(1 << 62, &[(1, 0)], &[(0, 0), (0, 8)], 64, None),
                "record batch length",
            ),
            (
                batch_header(-1, &[(1, 0)], &[(0, 0), (0, 8)], 64, None),
                "record batch length",
            ),
            (
                batch_header(1, &[(1 << 62, 0)], &[(0, 0), (0, 8)], 64, None),
                "field node with length",
            ),
            (
                batch_header(1, &[(1, 5)], &[(0, 0), (0, 8)], 64, None),
                "null count 5",
            ),
            (
                batch_header(1, &[(-1, 0)], &[(0, 0), (0, 8)], 64, None),
                "field node",
            ),
            // Buffers too small for the rows claimed.
            (
                batch_header(100, &[(100, 0)], &[(0, 0), (0, 64)], 64, None),
                "values buffer is 64 bytes, the rows need 800",
            ),
            // Column count mismatches.
            (batch_header(1, &[], &[], 64, None), "too few"),
            (
                batch_header(
                    1,
                    &[(1, 0), (1, 0)],
                    &[(0, 0), (0, 8), (0, 0), (8, 8)],
                    64,
                    None,
                ),
                "2 field nodes",
            ),
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (0, 8), (8, 8)], 64, None),
                "3 buffers",
            ),
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (0, 8)], 64, Some(&[1])),
                "variadic",
            ),
            // Body length itself.
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (0, 8)], -5, None),
                "body of -5 bytes",
            ),
            (
                batch_header(1, &[(1, 0)], &[(0, 0), (0, 8)], 1 << 62, None),
                "header declares",
            ),
        ];
        for (header, needle) in cases {
            assert_invalid(decoder.decode(&message(header, body.clone())), needle);
        }
        // The decoder is still usable.
        let (_, messages) = primed(&int_batch(1));
        assert!(matches!(
            decoder.decode(&messages[0]).unwrap(),
            DecodedPayload::RecordBatch(_)
        ));
    }

    #[test]
    fn view_and_union_claims_are_checked() {
        let views = arrow_array::StringViewArray::from_iter_values(["a", "b"]);
        let batch = RecordBatch::try_from_iter([("v", Arc::new(views) as ArrayRef)]).unwrap();
        let (mut decoder, _) = primed(&batch);
        let body = vec![0u8; 64];
        let header = batch_header(2, &[(2, 0)], &[(0, 0), (0, 32)], 64, Some(&[1 << 40]));
        assert_invalid(
            decoder.decode(&message(header, body.clone())),
            "variadic buffer count",
        );
        let header = batch_header(2, &[(2, 0)], &[(0, 0), (0, 32)], 64, None);
        assert_invalid(decoder.decode(&message(header, body.clone())), "variadic");

        let batch = all_types_batch(4);
        let sparse = batch
            .project(&[batch.schema().index_of("sparse_union").unwrap()])
            .unwrap();
        let (mut decoder, _) = primed(&sparse);
        // Type ids buffer of 2 bytes for 4 rows: arrow-ipc would slice out of bounds.
        let header = batch_header(
            4,
            &[(4, 0), (4, 0), (4, 0)],
            &[(0, 2), (8, 0), (8, 16), (24, 0), (24, 20), (48, 8)],
            64,
            None,
        );
        assert_invalid(
            decoder.decode(&message(header, body)),
            "type ids buffer is 2 bytes",
        );
    }

    #[test]
    fn unknown_dictionary_ids_are_rejected() {
        let dict: DictionaryArray<Int32Type> = vec!["a", "b"].into_iter().collect();
        let batch = RecordBatch::try_from_iter([("d", Arc::new(dict) as ArrayRef)]).unwrap();
        let (mut decoder, messages) = primed(&batch);
        // The batch without its dictionary.
        assert_invalid(
            decoder.decode(&messages[1]),
            "dictionary id 0, which was never sent",
        );
        // A dictionary for an id the schema does not have.
        let mut fbb = FlatBufferBuilder::new();
        let data = arrow_ipc::RecordBatchBuilder::new(&mut fbb).finish();
        let mut dictionary = arrow_ipc::DictionaryBatchBuilder::new(&mut fbb);
        dictionary.add_id(42);
        dictionary.add_data(data);
        let dictionary = dictionary.finish().as_union_value();
        let mut message = arrow_ipc::MessageBuilder::new(&mut fbb);
        message.add_version(MetadataVersion::V5);
        message.add_header_type(MessageHeader::DictionaryBatch);
        message.add_header(dictionary);
        let root = message.finish();
        fbb.finish(root, None);
        let data = self::message(Bytes::copy_from_slice(fbb.finished_data()), vec![]);
        assert_invalid(decoder.decode(&data), "unknown dictionary id 42");
        // In order, all is well.
        decoder.decode(&messages[0]).unwrap();
        assert!(matches!(
            decoder.decode(&messages[1]).unwrap(),
            DecodedPayload::RecordBatch(_)
        ));
    }

    #[test]
    fn implausible_decompressed_sizes_are_rejected() {
        let options = EncodeOptions {
            compression: Some(arrow_ipc::CompressionType::LZ4_FRAME),
            ..EncodeOptions::default()
        };
        let batch = int_batch(100);
        let mut encoder = FlightDataEncoder::new(options);
        let schema = encoder.encode_schema(batch.schema_ref()).unwrap();
        let mut messages = encoder.encode_batch(&batch).unwrap();
        let mut decoder = FlightDataDecoder::new();
        decoder.decode(&schema).unwrap();
        let header = arrow_ipc::root_as_message(&messages[0].data_header).unwrap();
        let values = header
            .header_as_record_batch()
            .unwrap()
            .buffers()
            .unwrap()
            .get(1);
        let mut body = messages[0].data_body.to_contiguous().to_vec();
        let at = values.offset() as usize;
        body[at..at + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
        messages[0].data_body = DataBody::from(body);
        assert_invalid(
            decoder.decode(&messages[0]),
            "claims to hold 1125899906842624 bytes",
        );
    }

    #[test]
    fn schema_bytes_are_checked() {
        assert_invalid(
            decode_schema(b"").map(|_| DecodedPayload::None),
            "empty schema",
        );
        assert_invalid(
            decode_schema(&[0xff; 4]).map(|_| DecodedPayload::None),
            "lacks its length",
        );
        let eos = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_invalid(
            decode_schema(&eos).map(|_| DecodedPayload::None),
            "empty schema",
        );
        let mut long = crate::codec::encode_schema(&int_batch(1).schema()).to_vec();
        long.truncate(20);
        assert_invalid(
            decode_schema(&long).map(|_| DecodedPayload::None),
            "declares",
        );
        let messages = encode_all(EncodeOptions::default(), &[int_batch(1)]);
        let mut framed = vec![0xff, 0xff, 0xff, 0xff];
        framed.extend_from_slice(&(messages[1].data_header.len() as i32).to_le_bytes());
        framed.extend_from_slice(&messages[1].data_header);
        assert_invalid(
            decode_schema(&framed).map(|_| DecodedPayload::None),
            "expected a Schema message",
        );
    }

    /// A deterministic xorshift generator, enough to scramble bytes.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn scrambled_messages_never_panic() {
        let batches = [all_types_batch(30), all_types_batch(12).slice(1, 9)];
        let compressed = EncodeOptions {
            compression: Some(arrow_ipc::CompressionType::LZ4_FRAME),
            ..EncodeOptions::default()
        };
        let plain = encode_all(EncodeOptions::default(), &batches);
        let packed = encode_all(compressed, &batches);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut outcomes = [0usize; 2];
        for streams in [&plain, &packed] {
            for _ in 0..1500 {
                // Scramble one message of the stream (the schema too), decode from the start.
                let target = rng.below(streams.len());
                let mut decoder = FlightDataDecoder::new();
                for (index, original) in streams.iter().enumerate().take(target + 1) {
                    let mut data = original.clone();
                    if index == target {
                        let mut header = data.data_header.to_vec();
                        let mut body = data.data_body.to_contiguous().to_vec();
                        for _ in 0..1 + rng.below(4) {
                            let in_header = rng.below(3) == 0 || body.is_empty();
                            let bytes = if in_header { &mut header } else { &mut body };
                            match rng.below(4) {
                                0 => bytes.truncate(rng.below(bytes.len())),
                                _ if !bytes.is_empty() => {
                                    let at = rng.below(bytes.len());
                                    bytes[at] ^= 1 << rng.below(8);
                                }
                                _ => {}
                            }
                        }
                        data.data_header = Bytes::from(header);
                        data.data_body = DataBody::from(body);
                    }
                    let result = decoder.decode(&data);
                    if index == target {
                        if let Err(err) = &result {
                            assert!(
                                !err.message().contains("malformed IPC data"),
                                "the reader panicked: {err}"
                            );
                        }
                        outcomes[usize::from(result.is_ok())] += 1;
                    } else if result.is_err() {
                        break;
                    }
                }
            }
        }
        // Both outcomes happen: flips in padding or values are harmless, others are caught.
        assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
    }
}
