//! Arrow IPC files and streams, served as they are stored.
//!
//! An IPC file is the IPC stream format between the `ARROW1` magic and a footer that lists
//! where each dictionary batch and record batch is ([`Block`]: offset, metadata length, body
//! length). [`index_file`] reads the footer and the metadata of every block (to count rows and
//! to check that each block is what the footer says), and [`index_stream`] walks an `.arrows`
//! stream message by message to build the same list. DoGet ([`stream_part`]) then sends the
//! file's own messages as FlightData with no decoding or re-encoding: each block is read whole,
//! with its body landing 64-byte aligned, the flatbuffer `Message` is sliced out as
//! `data_header` and the body as `data_body`.
//!
//! An IPC file's stream starts with a Schema message that polyflight's codec encodes from the
//! footer's schema, unless that would number the dictionaries differently from the file (the
//! codec numbers them in its own traversal order; the forwarded dictionary batches carry the
//! file's ids), in which case the file's own leading Schema message is sent. Then every
//! dictionary block of the footer (every part of a file needs them), then the part's batches.
//!
//! Everything read from the file is checked before it is used: lengths against the file size,
//! flatbuffers with arrow-ipc's verifier, message kinds and body lengths against the footer. A
//! corrupt file is an INTERNAL error naming the file and the problem.

use crate::io::{Io, IoFile, ReadRange};
use arrow_ipc::{MessageHeader, MetadataVersion};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use polyflight_core::codec::{DecodedPayload, FlightDataDecoder, FlightDataEncoder};
use polyflight_core::{DataBody, FlightData, FlightError, FlightStream, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The magic at both ends of an IPC file.
const MAGIC: &[u8; 6] = b"ARROW1";

/// The continuation marker before each message's length (since Arrow 0.15).
const CONTINUATION: [u8; 4] = [0xff; 4];

/// The largest message metadata accepted. Real metadata is kilobytes (a 10,000-column batch
/// describes itself in about a megabyte); the bound keeps a corrupt length from sizing reads.
const MAX_METADATA: usize = 64 << 20;

/// The most messages a file may have.
const MAX_BLOCKS: usize = 1 << 24;

/// How many block metadata reads run at once while indexing.
const INDEX_READS: usize = 16;

/// How much is read at each message of a stream while indexing, to catch its metadata in one
/// read.
const STREAM_PROBE: usize = 4096;

/// Where one encapsulated message lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// The message's first byte (its continuation marker or length).
    pub offset: u64,
    /// Length prefix, flatbuffer and padding.
    pub meta_len: usize,
    /// The body, after the metadata.
    pub body_len: usize,
}

impl Block {
    /// The whole block, read so that its body is aligned.
    fn range(&self) -> ReadRange {
        ReadRange {
            offset: self.offset,
            len: self.meta_len + self.body_len,
            align_at: self.meta_len,
        }
    }
}

/// What a block must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Schema,
    Dictionary,
    Batch,
    /// A dictionary or a batch (the messages of a stream after its schema).
    Data,
}

impl Expect {
    fn admits(self, header: MessageHeader) -> bool {
        match self {
            Expect::Schema => header == MessageHeader::Schema,
            Expect::Dictionary => header == MessageHeader::DictionaryBatch,
            Expect::Batch => header == MessageHeader::RecordBatch,
            Expect::Data => {
                header == MessageHeader::DictionaryBatch || header == MessageHeader::RecordBatch
            }
        }
    }
}

/// How the DoGet stream of an IPC flight starts.
#[derive(Debug, Clone)]
enum SchemaMessage {
    /// A header encoded by polyflight's codec.
    Encoded(Bytes),
    /// The file's own Schema message.
    Stored(Block),
}

/// What DoGet needs to know about an IPC file or stream.
#[derive(Debug)]
pub(crate) struct IpcIndex {
    schema: SchemaRef,
    schema_message: SchemaMessage,
    /// Dictionary blocks of a file (sent by every part).
    dictionaries: Vec<Block>,
    /// Record batch blocks and their row counts.
    batches: Vec<(Block, u64)>,
    /// For a stream: every message after the schema, in order (dictionaries may be replaced
    /// between batches, so a stream is served whole, in one part).
    stream_messages: Option<Vec<Block>>,
}

impl IpcIndex {
    /// The flight's schema.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows and bytes (metadata + body) of each record batch, in order.
    pub(crate) fn batch_sizes(&self) -> Vec<(u64, u64)> {
        self.batches
            .iter()
            .map(|(block, rows)| (*rows, (block.meta_len + block.body_len) as u64))
            .collect()
    }

    /// True for an IPC stream, which is served in one part.
    pub(crate) fn is_stream(&self) -> bool {
        self.stream_messages.is_some()
    }

    /// Number of record batches.
    pub(crate) fn batch_count(&self) -> usize {
        self.batches.len()
    }
}

fn corrupt(shown: &str, what: impl std::fmt::Display) -> FlightError {
    FlightError::internal(format!("{shown}: corrupt Arrow IPC data: {what}"))
}

/// The schema in a flatbuffer, converted by arrow-ipc under `catch_unwind` (it is third-party
/// parsing of file contents).
fn schema_from_flatbuffer(schema: arrow_ipc::Schema<'_>, shown: &str) -> Result<Schema> {
    if !schema.endianness().equals_to_target_endianness() {
        return Err(FlightError::unimplemented(format!(
            "{shown}: the file is in the other byte order, which is not supported"
        )));
    }
    match catch_unwind(AssertUnwindSafe(|| {
        arrow_ipc::convert::try_fb_to_schema(schema)
    })) {
        Ok(Ok(schema)) => Ok(schema),
        Ok(Err(err)) => Err(corrupt(shown, format!("invalid schema: {err}"))),
        Err(_) => Err(corrupt(shown, "invalid schema")),
    }
}

fn check_version(version: MetadataVersion, shown: &str) -> Result<()> {
    if version == MetadataVersion::V4 || version == MetadataVersion::V5 {
        Ok(())
    } else {
        Err(FlightError::unimplemented(format!(
            "{shown}: IPC metadata version {version:?} is not supported (V4 and V5 are)"
        )))
    }
}

/// The length prefix at the start of an encapsulated message: `(prefix length, flatbuffer
/// length)`; a flatbuffer length of 0 is the end-of-stream marker.
fn message_prefix(bytes: &[u8], shown: &str) -> Result<(usize, usize)> {
    let word = |at: usize| -> Result<i32> {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_le_bytes)
            .ok_or_else(|| corrupt(shown, "a message is cut short in its length prefix"))
    };
    let (prefix, len) = if bytes.starts_with(&CONTINUATION) {
        (8, word(4)?)
    } else {
        // Before Arrow 0.15 messages had no continuation marker.
        (4, word(0)?)
    };
    let len = usize::try_from(len)
        .map_err(|_| corrupt(shown, format!("a message claims a negative length {len}")))?;
    if len > MAX_METADATA {
        return Err(corrupt(
            shown,
            format!("a message claims {len} bytes of metadata (at most {MAX_METADATA} accepted)"),
        ));
    }
    Ok((prefix, len))
}

/// Parses the message at the start of `bytes`, which must hold its prefix and flatbuffer.
fn parse_message<'a>(
    bytes: &'a [u8],
    shown: &str,
) -> Result<(usize, usize, arrow_ipc::Message<'a>)> {
    let (prefix, len) = message_prefix(bytes, shown)?;
    let flatbuffer = bytes
        .get(prefix..prefix + len)
        .ok_or_else(|| corrupt(shown, "a message's metadata is longer than its block"))?;
    let message = arrow_ipc::root_as_message(flatbuffer)
        .map_err(|e| corrupt(shown, format!("invalid message metadata: {e}")))?;
    check_version(message.version(), shown)?;
    Ok((prefix, len, message))
}

/// What [`check_block`] found in a block's metadata.
struct BlockInfo {
    /// Length of the length prefix.
    prefix: usize,
    /// Length of the flatbuffer.
    len: usize,
    /// A record batch's rows.
    rows: Option<u64>,
    /// A dictionary batch's id and whether it is a delta.
    dictionary: Option<(i64, bool)>,
}

/// The block checked against its metadata (`bytes`: at least its first `meta_len` bytes).
fn check_block(bytes: &[u8], block: &Block, expect: Expect, shown: &str) -> Result<BlockInfo> {
    let meta = bytes
        .get(..block.meta_len)
        .ok_or_else(|| corrupt(shown, "a block is shorter than its metadata"))?;
    let (prefix, len, message) = parse_message(meta, shown)?;
    let header = message.header_type();
    if !expect.admits(header) {
        return Err(corrupt(
            shown,
            format!(
                "the block at offset {} holds a {} message where a {expect:?} message belongs",
                block.offset,
                header.variant_name().unwrap_or("unknown")
            ),
        ));
    }
    if usize::try_from(message.bodyLength()).ok() != Some(block.body_len) {
        return Err(corrupt(
            shown,
            format!(
                "the message at offset {} declares a {}-byte body, its block {} bytes",
                block.offset,
                message.bodyLength(),
                block.body_len
            ),
        ));
    }
    let rows = match message.header_as_record_batch() {
        Some(batch) => Some(u64::try_from(batch.length()).map_err(|_| {
            corrupt(
                shown,
                format!("a record batch claims {} rows", batch.length()),
            )
        })?),
        None => None,
    };
    let dictionary = message
        .header_as_dictionary_batch()
        .map(|dictionary| (dictionary.id(), dictionary.isDelta()));
    Ok(BlockInfo {
        prefix,
        len,
        rows,
        dictionary,
    })
}

/// Indexes an Arrow IPC file. A file that turns out to be an IPC stream (as some tools write
/// under `.arrow`) is indexed as one.
pub(crate) async fn index_file(file: &IoFile) -> Result<IpcIndex> {
    let shown = file.shown();
    let len = file.len();
    let head = file.read_at(0, (len as usize).min(8), 0).await?;
    if head.starts_with(&CONTINUATION) {
        return index_stream(file).await;
    }
    if head.starts_with(b"FEA1") {
        return Err(FlightError::unimplemented(format!(
            "{shown}: Feather version 1 files are not supported (only Feather v2, the Arrow IPC \
             file format)"
        )));
    }
    if !head.starts_with(MAGIC) {
        return Err(corrupt(shown, "not an Arrow IPC file (no ARROW1 magic)"));
    }
    // The magic (padded to 8), the footer length and the closing magic.
    if len < 8 + 4 + 6 {
        return Err(corrupt(
            shown,
            format!("an IPC file of {len} bytes is too short"),
        ));
    }
    let tail = file.read_at(len - 10, 10, 0).await?;
    if &tail[4..] != MAGIC {
        return Err(corrupt(
            shown,
            "no ARROW1 magic at the end of the file (truncated, or still being written?)",
        ));
    }
    let footer_len = i32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let footer_start = u64::try_from(footer_len)
        .ok()
        .filter(|&n| n > 0 && n <= len - 18)
        .map(|n| len - 10 - n)
        .ok_or_else(|| corrupt(shown, format!("footer length {footer_len} does not fit")))?;
    let footer_bytes = file.read_at(footer_start, footer_len as usize, 0).await?;
    let footer = arrow_ipc::root_as_footer(&footer_bytes)
        .map_err(|e| corrupt(shown, format!("invalid footer: {e}")))?;
    check_version(footer.version(), shown)?;
    let schema = footer
        .schema()
        .ok_or_else(|| corrupt(shown, "the footer has no schema"))?;
    let schema = Arc::new(schema_from_flatbuffer(schema, shown)?);

    let block = |b: &arrow_ipc::Block| -> Result<Block> {
        let offset = u64::try_from(b.offset()).ok().filter(|&o| o >= 8);
        let meta_len = usize::try_from(b.metaDataLength())
            .ok()
            .filter(|&m| (4..=MAX_METADATA).contains(&m));
        let body_len = u64::try_from(b.bodyLength()).ok();
        let (Some(offset), Some(meta_len), Some(body_len)) = (offset, meta_len, body_len) else {
            return Err(corrupt(
                shown,
                format!(
                    "the footer lists an impossible block (offset {}, metadata {}, body {})",
                    b.offset(),
                    b.metaDataLength(),
                    b.bodyLength()
                ),
            ));
        };
        let end = offset
            .checked_add(meta_len as u64)
            .and_then(|e| e.checked_add(body_len));
        if end.is_none_or(|end| end > footer_start) {
            return Err(corrupt(
                shown,
                format!(
                    "the footer lists a block (offset {offset}, {meta_len} + {body_len} bytes) \
                     beyond the data ({footer_start} bytes)"
                ),
            ));
        }
        Ok(Block {
            offset,
            meta_len,
            // Below footer_start, itself a file length held in memory-sized reads.
            body_len: body_len as usize,
        })
    };
    let blocks = |list: Option<flatbuffers::Vector<'_, arrow_ipc::Block>>| -> Result<Vec<Block>> {
        let list = list
            .map(|l| l.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        if list.len() > MAX_BLOCKS {
            return Err(corrupt(
                shown,
                format!("the footer lists {} blocks", list.len()),
            ));
        }
        list.iter().map(|b| block(b)).collect()
    };
    let dictionaries = blocks(footer.dictionaries())?;
    let batch_blocks = blocks(footer.recordBatches())?;

    // Read every block's metadata: row counts, and proof that each block is what the footer says.
    let mut checks: Vec<(Block, Expect)> =
        Vec::with_capacity(dictionaries.len() + batch_blocks.len());
    checks.extend(dictionaries.iter().map(|b| (*b, Expect::Dictionary)));
    checks.extend(batch_blocks.iter().map(|b| (*b, Expect::Batch)));
    let infos: Vec<BlockInfo> = futures::stream::iter(checks)
        .map(|(block, expect)| async move {
            let meta = file.read_at(block.offset, block.meta_len, 0).await?;
            check_block(&meta, &block, expect, shown)
        })
        .buffered(INDEX_READS)
        .try_collect()
        .await?;
    // Every part is sent all the dictionaries up front, which is right for deltas (they only
    // add values) but not for replacements, which the file format does not allow anyway.
    let mut seen = std::collections::HashSet::new();
    for (id, delta) in infos.iter().filter_map(|info| info.dictionary) {
        if !seen.insert(id) && !delta {
            return Err(FlightError::unimplemented(format!(
                "{shown}: the file replaces dictionary {id} between batches, which the IPC file \
                 format does not allow (an .arrows stream can)"
            )));
        }
    }
    let batches = batch_blocks
        .into_iter()
        .zip(infos.iter().skip(dictionaries.len()))
        .map(|(block, info)| (block, info.rows.unwrap_or(0)))
        .collect();

    let schema_message = match encoded_schema(&schema) {
        Some(header) => SchemaMessage::Encoded(header),
        None => SchemaMessage::Stored(leading_schema(file).await?),
    };
    Ok(IpcIndex {
        schema,
        schema_message,
        dictionaries,
        batches,
        stream_messages: None,
    })
}

/// The Schema message polyflight's codec makes for `schema`, if it numbers the dictionaries as
/// the file does.
fn encoded_schema(schema: &SchemaRef) -> Option<Bytes> {
    let encoded = FlightDataEncoder::default().encode_schema(schema).ok()?;
    let decoded = match FlightDataDecoder::new().decode(&encoded).ok()? {
        DecodedPayload::Schema(decoded) => decoded,
        _ => return None,
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for field in decoded.fields() {
        field_dictionary_ids(field, &mut ours);
    }
    for field in schema.fields() {
        field_dictionary_ids(field, &mut theirs);
    }
    (ours == theirs).then_some(encoded.data_header)
}

/// The dictionary ids of a field and its children, depth first.
fn field_dictionary_ids(field: &Field, ids: &mut Vec<i64>) {
    // arrow-ipc keys dictionaries by the id it stores on the field when it reads a schema;
    // that API is deprecated in favour of ids by position, but it is what the reader and the
    // dictionary batches of the file go by.
    #[allow(deprecated)]
    if let Some(id) = field.dict_id() {
        ids.push(id);
    }
    type_dictionary_ids(field.data_type(), ids);
}

fn type_dictionary_ids(data_type: &DataType, ids: &mut Vec<i64>) {
    match data_type {
        DataType::List(child)
        | DataType::LargeList(child)
        | DataType::ListView(child)
        | DataType::LargeListView(child)
        | DataType::FixedSizeList(child, _)
        | DataType::Map(child, _) => field_dictionary_ids(child, ids),
        DataType::Struct(fields) => fields.iter().for_each(|f| field_dictionary_ids(f, ids)),
        DataType::Union(fields, _) => fields
            .iter()
            .for_each(|(_, f)| field_dictionary_ids(f, ids)),
        DataType::Dictionary(_, values) => type_dictionary_ids(values, ids),
        DataType::RunEndEncoded(_, values) => field_dictionary_ids(values, ids),
        _ => {}
    }
}

/// The Schema message an IPC file starts with, after its magic. The magic is padded to 8 bytes
/// by the format, and to the writer's alignment (up to 64) by some writers (arrow-rs).
async fn leading_schema(file: &IoFile) -> Result<Block> {
    let shown = file.shown();
    let available = (file.len() - 8).min(STREAM_PROBE as u64) as usize;
    let probe = file.read_at(8, available, 0).await?;
    let padding = probe
        .chunks(8)
        .take(7)
        .take_while(|chunk| chunk.iter().all(|&b| b == 0))
        .count()
        * 8;
    let (prefix, len) = message_prefix(&probe[padding.min(probe.len())..], shown)?;
    let block = Block {
        offset: 8 + padding as u64,
        meta_len: prefix + len,
        body_len: 0,
    };
    let meta = if padding + block.meta_len <= probe.len() {
        probe.slice(padding..)
    } else {
        file.read_at(block.offset, block.meta_len, 0).await?
    };
    check_block(&meta, &block, Expect::Schema, shown)?;
    Ok(block)
}

/// Indexes an Arrow IPC stream by walking its messages. A file that turns out to be an IPC
/// file is indexed as one.
pub(crate) async fn index_stream(file: &IoFile) -> Result<IpcIndex> {
    let shown = file.shown();
    let len = file.len();
    let mut offset = 0u64;
    let mut schema: Option<(SchemaRef, Block)> = None;
    let mut messages = Vec::new();
    let mut batches = Vec::new();
    while offset < len {
        let available = (len - offset).min(STREAM_PROBE as u64) as usize;
        let probe = file.read_at(offset, available, 0).await?;
        if offset == 0 && probe.starts_with(MAGIC) {
            return Box::pin(index_file(file)).await;
        }
        let (prefix, flatbuffer_len) = message_prefix(&probe, shown)?;
        if flatbuffer_len == 0 {
            break; // end-of-stream marker
        }
        let meta_len = prefix + flatbuffer_len;
        if offset + meta_len as u64 > len {
            return Err(corrupt(
                shown,
                format!("the message at offset {offset} is cut short (truncated file?)"),
            ));
        }
        let meta = if meta_len <= probe.len() {
            probe
        } else {
            file.read_at(offset, meta_len, 0).await?
        };
        let (_, _, message) = parse_message(&meta, shown)?;
        let body_len = u64::try_from(message.bodyLength())
            .ok()
            .filter(|&b| b <= len - offset - meta_len as u64)
            .ok_or_else(|| {
                corrupt(
                    shown,
                    format!(
                        "the message at offset {offset} declares a {}-byte body that the file \
                         does not hold (truncated file?)",
                        message.bodyLength()
                    ),
                )
            })?;
        let block = Block {
            offset,
            meta_len,
            body_len: body_len as usize,
        };
        match (message.header_type(), &schema) {
            (MessageHeader::Schema, None) => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| corrupt(shown, "a Schema message without a schema"))?;
                schema = Some((Arc::new(schema_from_flatbuffer(fb, shown)?), block));
            }
            (MessageHeader::Schema, Some(_)) => {
                return Err(FlightError::unimplemented(format!(
                    "{shown}: the stream changes its schema at offset {offset}, which a flight \
                     cannot carry"
                )))
            }
            (_, None) => {
                return Err(corrupt(
                    shown,
                    "the stream does not start with a Schema message",
                ))
            }
            (MessageHeader::DictionaryBatch, Some(_)) => messages.push(block),
            (MessageHeader::RecordBatch, Some(_)) => {
                let rows = check_block(&meta, &block, Expect::Batch, shown)?.rows;
                batches.push((block, rows.unwrap_or(0)));
                messages.push(block);
            }
            (other, Some(_)) => {
                return Err(corrupt(
                    shown,
                    format!(
                        "unsupported {} message at offset {offset}",
                        other.variant_name().unwrap_or("unknown")
                    ),
                ))
            }
        }
        if messages.len() > MAX_BLOCKS {
            return Err(corrupt(shown, "the stream has too many messages"));
        }
        offset += meta_len as u64 + body_len;
    }
    let (schema, schema_block) =
        schema.ok_or_else(|| corrupt(shown, "the stream has no Schema message"))?;
    Ok(IpcIndex {
        schema,
        schema_message: SchemaMessage::Stored(schema_block),
        dictionaries: Vec::new(),
        batches,
        stream_messages: Some(messages),
    })
}

/// Turns a block read whole into FlightData: the flatbuffer as header, the body uncopied.
fn flight_data(bytes: Bytes, block: &Block, expect: Expect, shown: &str) -> Result<FlightData> {
    if bytes.len() != block.meta_len + block.body_len {
        return Err(corrupt(shown, "a block was read short"));
    }
    let BlockInfo { prefix, len, .. } = check_block(&bytes, block, expect, shown)?;
    Ok(FlightData {
        data_header: bytes.slice(prefix..prefix + len),
        data_body: DataBody::from(bytes.slice(block.meta_len..)),
        ..FlightData::default()
    })
}

/// The DoGet stream of batches `start..end` (a stream: all of it): the schema, the
/// dictionaries, the batches, read ahead within `io`'s budget. Ends after the first error.
pub(crate) fn stream_part(
    index: &IpcIndex,
    file: IoFile,
    start: usize,
    end: usize,
    io: &Io,
) -> FlightStream<FlightData> {
    let mut blocks: Vec<(Block, Expect)> = Vec::new();
    let first = match &index.schema_message {
        SchemaMessage::Encoded(header) => Some(FlightData {
            data_header: header.clone(),
            ..FlightData::default()
        }),
        SchemaMessage::Stored(block) => {
            blocks.push((*block, Expect::Schema));
            None
        }
    };
    match &index.stream_messages {
        Some(messages) => blocks.extend(messages.iter().map(|b| (*b, Expect::Data))),
        None => {
            blocks.extend(index.dictionaries.iter().map(|b| (*b, Expect::Dictionary)));
            let part = index.batches.get(start..end).unwrap_or_default();
            blocks.extend(part.iter().map(|(b, _)| (*b, Expect::Batch)));
        }
    }
    let shown = file.shown().to_string();
    let ranges = blocks.iter().map(|(block, _)| block.range()).collect();
    let reads = io.read_ahead(file, ranges);
    let messages = reads
        .zip(futures::stream::iter(blocks))
        .map(move |(read, (block, expect))| {
            read.and_then(|bytes| flight_data(bytes, &block, expect, &shown))
        });
    futures::stream::iter(first.map(Ok))
        .chain(messages)
        .scan(false, |failed, item| {
            let item = (!*failed).then(|| {
                *failed = item.is_err();
                item
            });
            std::future::ready(item)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Io, IoMode};
    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Int32Array, RecordBatch, StringArray};
    use futures::TryStreamExt;

    fn batches() -> Vec<RecordBatch> {
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        (0..4)
            .map(|b| {
                let keys = Int32Array::from_iter((0..100).map(|i| Some((i + b) % 3)));
                let dictionary =
                    DictionaryArray::<Int32Type>::try_new(keys, values.clone()).unwrap();
                let numbers = Int32Array::from_iter_values((0..100).map(|i| i * b));
                RecordBatch::try_from_iter([
                    ("n", Arc::new(numbers) as ArrayRef),
                    ("d", Arc::new(dictionary) as ArrayRef),
                ])
                .unwrap()
            })
            .collect()
    }

    async fn indexed(
        dir: &std::path::Path,
        batches: &[RecordBatch],
        read_ahead: usize,
    ) -> (Io, IoFile, IpcIndex) {
        let path = dir.join("t.arrow");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            arrow_ipc::writer::FileWriter::try_new(file, &batches[0].schema()).unwrap();
        for batch in batches {
            writer.write(batch).unwrap();
        }
        writer.finish().unwrap();
        let io = Io::start(IoMode::Plain, 1, read_ahead).unwrap();
        let file = io.open(&path, "t.arrow").await.unwrap();
        let index = index_file(&file).await.unwrap();
        (io, file, index)
    }

    async fn decode(stream: FlightStream<FlightData>) -> Vec<RecordBatch> {
        let messages: Vec<FlightData> = stream.try_collect().await.unwrap();
        let mut decoder = FlightDataDecoder::new();
        let mut out = Vec::new();
        for message in &messages {
            if let Some(body) = message.data_body.segments().first() {
                assert_eq!(body.as_ptr() as usize % 64, 0, "bodies are 64-byte aligned");
            }
            if let DecodedPayload::RecordBatch(batch) = decoder.decode(message).unwrap() {
                out.push(batch);
            }
        }
        out
    }

    #[tokio::test]
    async fn parts_and_both_schema_messages() {
        let dir = tempfile::tempdir().unwrap();
        let batches = batches();
        let (io, file, mut index) = indexed(dir.path(), &batches, 1000).await;
        assert!(matches!(index.schema_message, SchemaMessage::Encoded(_)));
        assert_eq!(index.batch_count(), 4);
        assert_eq!(index.dictionaries.len(), 1);

        // A part in the middle still gets the dictionary.
        let got = decode(stream_part(&index, file.clone(), 1, 3, &io)).await;
        assert_eq!(got, batches[1..3]);

        // The file's own Schema message serves the same.
        index.schema_message = SchemaMessage::Stored(leading_schema(&file).await.unwrap());
        let got = decode(stream_part(&index, file, 0, 4, &io)).await;
        assert_eq!(got, batches);
    }

    #[test]
    fn schemas_numbering_dictionaries_otherwise_are_sent_as_stored() {
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        // Files may number dictionaries as they like; the codec numbers them from 0.
        #[allow(deprecated)] // the only way to give a field a dictionary id of one's choosing
        let fields = vec![
            Field::new_dict("a", dictionary.clone(), true, 7, false),
            Field::new_dict("b", dictionary.clone(), true, 3, false),
        ];
        assert!(encoded_schema(&Arc::new(Schema::new(fields))).is_none());
        #[allow(deprecated)] // as above
        let fields = vec![
            Field::new_dict("a", dictionary.clone(), true, 0, false),
            Field::new_dict("b", dictionary, true, 1, false),
        ];
        assert!(encoded_schema(&Arc::new(Schema::new(fields))).is_some());
    }
}
