//! The codec as `futures::Stream` adapters: record batches in, `FlightData` out
//! ([`FlightDataEncoderBuilder`]), and `FlightData` in, record batches out
//! ([`FlightRecordBatchStream`]). These are what DoGet, DoPut and DoExchange plug together on
//! both sides; the synchronous [`FlightDataEncoder`] and [`FlightDataDecoder`] do the work.

use super::{DecodedPayload, EncodeOptions, FlightDataDecoder, FlightDataEncoder};
use crate::call::{Response, Trailers};
use crate::data::FlightData;
use crate::error::{FlightError, Result};
use crate::headers::Headers;
use crate::proto::FlightDescriptor;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// One item for [`FlightDataEncoderBuilder::build_messages`].
#[derive(Debug, Clone)]
pub enum EncoderInput {
    /// A batch of rows.
    Batch(RecordBatch),
    /// A batch of rows with app metadata, which travels on the batch's first record batch
    /// message.
    BatchWithMetadata(RecordBatch, Bytes),
    /// App metadata alone: a message with an empty IPC header (DoExchange, DoPut).
    Metadata(Bytes),
}

/// Builds a [`FlightDataEncoderStream`].
///
/// ```
/// # use polyflight_core::codec::FlightDataEncoderBuilder;
/// # use arrow_array::{record_batch, RecordBatch};
/// # use futures::StreamExt;
/// # futures::executor::block_on(async {
/// let batch = record_batch!(("n", Int32, [1, 2, 3])).unwrap();
/// let batches = futures::stream::iter([Ok(batch)]);
/// let messages: Vec<_> = FlightDataEncoderBuilder::new().build(batches).collect().await;
/// assert_eq!(messages.len(), 2); // the schema, then the batch
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct FlightDataEncoderBuilder {
    options: EncodeOptions,
    descriptor: Option<FlightDescriptor>,
    schema: Option<SchemaRef>,
}

impl FlightDataEncoderBuilder {
    /// A builder with default [`EncodeOptions`], no descriptor and no schema.
    pub fn new() -> Self {
        FlightDataEncoderBuilder::default()
    }

    /// Sets the encoding options.
    pub fn with_options(mut self, options: EncodeOptions) -> Self {
        self.options = options;
        self
    }

    /// Puts `descriptor` on the first message of the stream (what DoPut and DoExchange
    /// expect). If the stream would otherwise be empty, a descriptor-only message is sent.
    pub fn with_flight_descriptor(mut self, descriptor: FlightDescriptor) -> Self {
        self.descriptor = Some(descriptor);
        self
    }

    /// Sets the stream's schema. It is sent first, at once, even when no batch ever follows
    /// (an empty DoGet still starts with a Schema message). Without it the first batch's schema
    /// is used. Either way, a batch with a different schema fails the stream with
    /// `INVALID_ARGUMENT`.
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Encodes a stream of batches. An error from `batches` is passed on and ends the stream.
    pub fn build<S>(self, batches: S) -> FlightDataEncoderStream
    where
        S: Stream<Item = Result<RecordBatch>> + Send + 'static,
    {
        self.build_messages(batches.map_ok(EncoderInput::Batch))
    }

    /// Encodes a stream of batches, batches with app metadata and metadata-only messages.
    pub fn build_messages<S>(self, input: S) -> FlightDataEncoderStream
    where
        S: Stream<Item = Result<EncoderInput>> + Send + 'static,
    {
        FlightDataEncoderStream {
            input: Some(input.boxed()),
            encoder: FlightDataEncoder::new(self.options),
            descriptor: self.descriptor,
            pending_schema: self.schema,
            schema_sent: false,
            queue: VecDeque::new(),
        }
    }
}

/// `FlightData` messages for a stream of record batches: the Schema message, then for each
/// batch the dictionaries it needs and its record batch message(s). Ends after the first error.
pub struct FlightDataEncoderStream {
    /// `None` once the input ended or failed.
    input: Option<BoxStream<'static, Result<EncoderInput>>>,
    encoder: FlightDataEncoder,
    /// Goes on the first message out; `None` once sent.
    descriptor: Option<FlightDescriptor>,
    /// A schema given up front, sent on the first poll.
    pending_schema: Option<SchemaRef>,
    schema_sent: bool,
    /// Encoded messages not yet handed out (a batch can produce several).
    queue: VecDeque<FlightData>,
}

impl std::fmt::Debug for FlightDataEncoderStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightDataEncoderStream")
            .field("encoder", &self.encoder)
            .field("queued", &self.queue.len())
            .field("finished", &self.input.is_none())
            .finish_non_exhaustive()
    }
}

impl FlightDataEncoderStream {
    fn send_schema(&mut self, schema: &SchemaRef) -> Result<()> {
        let message = self.encoder.encode_schema(schema)?;
        self.queue.push_back(message);
        self.schema_sent = true;
        Ok(())
    }

    fn encode(&mut self, input: EncoderInput) -> Result<()> {
        let (batch, app_metadata) = match input {
            EncoderInput::Batch(batch) => (batch, Bytes::new()),
            EncoderInput::BatchWithMetadata(batch, app_metadata) => (batch, app_metadata),
            EncoderInput::Metadata(app_metadata) => {
                self.queue
                    .push_back(FlightData::metadata_only(app_metadata));
                return Ok(());
            }
        };
        if !self.schema_sent {
            self.send_schema(batch.schema_ref())?;
        }
        let (dictionaries, mut batches) = self.encoder.encode_batch_parts(&batch)?;
        if let Some(first) = batches.first_mut() {
            first.app_metadata = app_metadata;
        }
        self.queue.extend(dictionaries);
        self.queue.extend(batches);
        Ok(())
    }

    /// Ends the input: what is queued still goes out (and the descriptor, if nothing did).
    fn finish(&mut self) {
        self.input = None;
        self.pending_schema = None;
    }

    /// Ends the stream after an error: nothing more goes out.
    fn fail(&mut self, err: FlightError) -> Poll<Option<Result<FlightData>>> {
        self.finish();
        self.queue.clear();
        self.descriptor = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for FlightDataEncoderStream {
    type Item = Result<FlightData>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(mut message) = this.queue.pop_front() {
                if let Some(descriptor) = this.descriptor.take() {
                    if message.data_header.is_empty() {
                        // Arrow C++ servers read a first message without an IPC header as
                        // descriptor-only and drop its app_metadata: send the descriptor on a
                        // message of its own first, as C++ clients do.
                        this.queue.push_front(message);
                        return Poll::Ready(Some(Ok(FlightData::descriptor_only(descriptor))));
                    }
                    message.flight_descriptor = Some(descriptor);
                }
                return Poll::Ready(Some(Ok(message)));
            }
            if let Some(schema) = this.pending_schema.take() {
                if let Err(err) = this.send_schema(&schema) {
                    return this.fail(err);
                }
                continue;
            }
            let Some(input) = this.input.as_mut() else {
                // Nothing was ever sent: a DoPut/DoExchange peer still needs the descriptor.
                return Poll::Ready(
                    this.descriptor
                        .take()
                        .map(|d| Ok(FlightData::descriptor_only(d))),
                );
            };
            match ready!(input.poll_next_unpin(cx)) {
                None => this.finish(),
                Some(Err(err)) => return this.fail(err),
                Some(Ok(item)) => {
                    if let Err(err) = this.encode(item) {
                        return this.fail(err);
                    }
                }
            }
        }
    }
}

/// One decoded message with what travelled beside it, from
/// [`FlightRecordBatchStream::next_message`].
#[derive(Debug, Clone)]
pub struct DecodedMessage {
    /// The descriptor, when the message carried one (first message of DoPut/DoExchange).
    pub descriptor: Option<FlightDescriptor>,
    /// The message's app metadata (empty when none).
    pub app_metadata: Bytes,
    /// What the IPC part of the message was.
    pub payload: DecodedPayload,
}

/// Record batches from a stream of `FlightData`.
///
/// As a `Stream` it yields only the batches, skipping schema, dictionary and metadata-only
/// messages; [`next_message`](Self::next_message) shows every message with its descriptor
/// and app metadata. Either way the stream ends after the first error (from the inner stream
/// or from decoding): what follows a bad message cannot be trusted.
pub struct FlightRecordBatchStream {
    inner: BoxStream<'static, Result<FlightData>>,
    decoder: FlightDataDecoder,
    done: bool,
    headers: Headers,
    trailers: Trailers,
}

impl std::fmt::Debug for FlightRecordBatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightRecordBatchStream")
            .field("decoder", &self.decoder)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl FlightRecordBatchStream {
    /// Decodes `inner`.
    pub fn new(inner: BoxStream<'static, Result<FlightData>>) -> Self {
        FlightRecordBatchStream {
            inner,
            decoder: FlightDataDecoder::new(),
            done: false,
            headers: Headers::new(),
            trailers: Trailers::default(),
        }
    }

    /// Decodes a call's response, keeping its response headers and trailers.
    pub fn from_response(response: Response<BoxStream<'static, Result<FlightData>>>) -> Self {
        let mut stream = FlightRecordBatchStream::new(response.body);
        stream.headers = response.headers;
        stream.trailers = response.trailers;
        stream
    }

    /// The response headers of the call this stream reads (empty for a stream made with
    /// [`FlightRecordBatchStream::new`]).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The call's trailers received so far: all of them once the stream has ended.
    pub fn trailers(&self) -> Headers {
        self.trailers.get()
    }

    /// The stream's schema, once its Schema message has arrived.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.decoder.schema()
    }

    /// The next message, whatever it carries, or `None` at the end.
    pub async fn next_message(&mut self) -> Option<Result<DecodedMessage>> {
        futures::future::poll_fn(|cx| self.poll_next_message(cx)).await
    }

    /// The undecoded stream (messages already consumed are gone).
    pub fn into_inner(self) -> BoxStream<'static, Result<FlightData>> {
        self.inner
    }

    fn poll_next_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<DecodedMessage>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let result = match ready!(self.inner.poll_next_unpin(cx)) {
            None => {
                self.done = true;
                return Poll::Ready(None);
            }
            Some(Err(err)) => Err(err),
            Some(Ok(data)) => self.decoder.decode(&data).map(|payload| DecodedMessage {
                descriptor: data.flight_descriptor,
                app_metadata: data.app_metadata,
                payload,
            }),
        };
        if result.is_err() {
            self.done = true;
        }
        Poll::Ready(Some(result))
    }
}

impl Stream for FlightRecordBatchStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(self.poll_next_message(cx)) {
                None => return Poll::Ready(None),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                Some(Ok(DecodedMessage {
                    payload: DecodedPayload::RecordBatch(batch),
                    ..
                })) => return Poll::Ready(Some(Ok(batch))),
                Some(Ok(_)) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::all_types_batch;
    use crate::error::FlightCode;
    use arrow_array::{ArrayRef, Int32Array};
    use futures::executor::block_on;
    use std::sync::Arc;

    fn descriptor() -> FlightDescriptor {
        FlightDescriptor {
            r#type: 1,
            cmd: Bytes::new(),
            path: vec!["a".into()],
        }
    }

    fn ints(name: &str, values: Vec<i32>) -> RecordBatch {
        RecordBatch::try_from_iter([(name, Arc::new(Int32Array::from(values)) as ArrayRef)])
            .unwrap()
    }

    fn collect(stream: FlightDataEncoderStream) -> Vec<Result<FlightData>> {
        block_on(stream.collect())
    }

    fn decode(messages: Vec<FlightData>) -> FlightRecordBatchStream {
        FlightRecordBatchStream::new(futures::stream::iter(messages.into_iter().map(Ok)).boxed())
    }

    #[test]
    fn batches_round_trip_through_both_adapters() {
        let batches = vec![all_types_batch(10), all_types_batch(20)];
        let input = futures::stream::iter(batches.clone().into_iter().map(Ok));
        let messages: Vec<FlightData> = collect(FlightDataEncoderBuilder::new().build(input))
            .into_iter()
            .map(|m| m.unwrap())
            .collect();
        let mut decoded = decode(messages);
        let out: Vec<RecordBatch> = block_on((&mut decoded).map(|b| b.unwrap()).collect());
        assert_eq!(out, batches);
        assert_eq!(
            decoded.schema().unwrap().fields(),
            batches[0].schema().fields()
        );
    }

    #[test]
    fn an_empty_stream_with_a_schema_still_sends_it() {
        let schema = ints("n", vec![]).schema();
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema.clone())
            .with_flight_descriptor(descriptor())
            .build(futures::stream::empty());
        let messages: Vec<FlightData> = collect(stream).into_iter().map(|m| m.unwrap()).collect();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].flight_descriptor, Some(descriptor()));
        let mut decoded = decode(messages);
        let message = block_on(decoded.next_message()).unwrap().unwrap();
        assert!(
            matches!(message.payload, DecodedPayload::Schema(ref s) if s.fields() == schema.fields())
        );
        assert!(block_on(decoded.next_message()).is_none());
    }

    #[test]
    fn leading_metadata_gets_a_descriptor_message_of_its_own() {
        let input = futures::stream::iter([
            Ok(EncoderInput::Metadata(Bytes::from_static(b"hello"))),
            Ok(EncoderInput::Batch(ints("n", vec![1, 2, 3]))),
        ]);
        let messages: Vec<FlightData> = collect(
            FlightDataEncoderBuilder::new()
                .with_flight_descriptor(descriptor())
                .build_messages(input),
        )
        .into_iter()
        .map(|m| m.unwrap())
        .collect();
        assert_eq!(messages[0], FlightData::descriptor_only(descriptor()));
        assert_eq!(messages[1].app_metadata.as_ref(), b"hello");
        assert!(messages[1].flight_descriptor.is_none());
        assert!(messages[1].data_header.is_empty());
    }

    #[test]
    fn an_empty_stream_without_schema_still_sends_the_descriptor() {
        let stream = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(descriptor())
            .build(futures::stream::empty());
        let messages: Vec<FlightData> = collect(stream).into_iter().map(|m| m.unwrap()).collect();
        assert_eq!(messages, vec![FlightData::descriptor_only(descriptor())]);
    }

    #[test]
    fn the_descriptor_goes_on_the_first_message_only() {
        let input = futures::stream::iter([Ok(ints("n", vec![1])), Ok(ints("n", vec![2]))]);
        let stream = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(descriptor())
            .build(input);
        let messages: Vec<FlightData> = collect(stream).into_iter().map(|m| m.unwrap()).collect();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0].flight_descriptor, Some(descriptor()));
        assert!(messages[1..].iter().all(|m| m.flight_descriptor.is_none()));
    }

    #[test]
    fn a_batch_with_another_schema_fails_the_stream() {
        let input = futures::stream::iter([Ok(ints("n", vec![1])), Ok(ints("m", vec![2]))]);
        let messages = collect(FlightDataEncoderBuilder::new().build(input));
        assert_eq!(messages.len(), 3);
        let err = messages[2].as_ref().unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);

        let input = futures::stream::iter([Ok(ints("m", vec![2]))]);
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(ints("n", vec![]).schema())
            .build(input);
        let messages = collect(stream);
        assert_eq!(messages.len(), 2);
        assert!(messages[1].is_err());
    }

    #[test]
    fn input_errors_are_passed_on_and_end_the_stream() {
        let input = futures::stream::iter([
            Ok(ints("n", vec![1])),
            Err(FlightError::cancelled("gone")),
            Ok(ints("n", vec![2])),
        ]);
        let messages = collect(FlightDataEncoderBuilder::new().build(input));
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[2].as_ref().unwrap_err().code(),
            FlightCode::Cancelled
        );

        // Nothing follows an error, not even the descriptor.
        let input = futures::stream::iter([Err(FlightError::cancelled("gone"))]);
        let stream = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(descriptor())
            .build(input);
        assert_eq!(collect(stream).len(), 1);
    }

    #[test]
    fn app_metadata_travels_with_batches_and_alone() {
        let options = EncodeOptions {
            max_message_size: 64,
            ..EncodeOptions::default()
        };
        let input = futures::stream::iter([
            Ok(EncoderInput::Metadata(Bytes::from_static(b"hello"))),
            Ok(EncoderInput::BatchWithMetadata(
                ints("n", (0..100).collect()),
                Bytes::from_static(b"first"),
            )),
            Ok(EncoderInput::Batch(ints("n", vec![7]))),
        ]);
        let stream = FlightDataEncoderBuilder::new()
            .with_options(options)
            .with_flight_descriptor(descriptor())
            .build_messages(input);
        let messages: Vec<FlightData> = collect(stream).into_iter().map(|m| m.unwrap()).collect();
        let mut decoded = decode(messages);
        let mut seen = Vec::new();
        while let Some(message) = block_on(decoded.next_message()) {
            let message = message.unwrap();
            let kind = match message.payload {
                DecodedPayload::None => "none".to_string(),
                DecodedPayload::Schema(_) => "schema".to_string(),
                DecodedPayload::DictionaryBatch => "dictionary".to_string(),
                DecodedPayload::RecordBatch(batch) => format!("batch {}", batch.num_rows()),
            };
            seen.push((kind, message.app_metadata, message.descriptor.is_some()));
        }
        // The descriptor goes alone first (Arrow C++ servers drop the metadata of a header-less
        // first message); then the metadata-only message; the 100-row batch is split (64-byte
        // limit), its metadata on the first piece.
        assert_eq!(seen[0], ("none".into(), Bytes::new(), true));
        assert_eq!(
            seen[1],
            ("none".into(), Bytes::from_static(b"hello"), false)
        );
        assert_eq!(seen[2].0, "schema");
        assert_eq!(seen[3].1, Bytes::from_static(b"first"));
        let rows: usize = seen[3..seen.len() - 1]
            .iter()
            .map(|(kind, _, _)| kind.trim_start_matches("batch ").parse::<usize>().unwrap())
            .sum();
        assert_eq!(rows, 100);
        assert!(seen[4..].iter().all(|(_, metadata, _)| metadata.is_empty()));
        assert!(seen[1..].iter().all(|(_, _, descriptor)| !descriptor));
        assert_eq!(seen.last().unwrap().0, "batch 1");
    }

    #[test]
    fn decoding_stops_after_a_bad_message() {
        let bad = FlightData {
            data_header: Bytes::from_static(b"garbage"),
            ..FlightData::default()
        };
        let input = futures::stream::iter([Ok(ints("n", vec![1]))]);
        let mut messages: Vec<FlightData> = collect(FlightDataEncoderBuilder::new().build(input))
            .into_iter()
            .map(|m| m.unwrap())
            .collect();
        messages.insert(1, bad);
        let results: Vec<Result<RecordBatch>> = block_on(decode(messages).collect());
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].as_ref().unwrap_err().code(),
            FlightCode::InvalidArgument
        );
    }

    #[test]
    fn the_streams_are_send_and_unpin() {
        fn check<T: Send + Unpin + 'static>() {}
        check::<FlightDataEncoderStream>();
        check::<FlightRecordBatchStream>();
    }
}
