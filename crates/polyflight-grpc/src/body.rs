//! HTTP/2 bodies of gRPC calls, both directions: reading a body as a stream of gRPC messages
//! (with the call's status from the trailers), and writing a stream of encoded messages followed
//! by status trailers.

use crate::wire::{self, MessageDecoder, SegmentedBuf};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body::Frame;
use http_body_util::BodyExt;
use polyflight_core::{FlightError, Result, Trailers};

/// Error type of our outgoing bodies; an error aborts the HTTP/2 stream (RST_STREAM).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type FrameStream = BoxStream<'static, Result<Frame<Bytes>, BoxError>>;

/// An outgoing body: encoded gRPC messages, then (for responses) trailers; or no body at all.
///
/// The empty form reports itself ended, so a trailers-only response (an error before any
/// message) goes out as one HEADERS frame carrying END_STREAM, as gRPC requires: an empty DATA
/// frame after it makes gRPC C++ clients fail with a protocol error instead of the real status.
pub struct OutBody(Option<FrameStream>);

impl http_body::Body for OutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.as_mut() {
            Some(frames) => frames.as_mut().poll_next(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// A body with no frames at all.
pub fn empty_body() -> OutBody {
    OutBody(None)
}

/// Pieces smaller than this are gathered into one buffer before they are handed to HTTP/2, so a
/// batch with many small buffers (and their padding) does not become hundreds of tiny DATA
/// frames. Larger pieces — the column data — go out as they are, uncopied.
const COALESCE_BELOW: usize = 16 * 1024;

/// Turns encoded messages (each a list of pieces) into body frames, coalescing small pieces.
pub fn frames(pieces: Vec<Bytes>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut small = BytesMut::new();
    for piece in pieces {
        if piece.len() < COALESCE_BELOW {
            small.extend_from_slice(&piece);
            if small.len() >= COALESCE_BELOW {
                out.push(small.split().freeze());
            }
        } else {
            if !small.is_empty() {
                out.push(small.split().freeze());
            }
            out.push(piece);
        }
    }
    if !small.is_empty() {
        out.push(small.freeze());
    }
    out
}

/// A body that sends each encoded message of `messages`; when `with_trailers`, ends with status
/// trailers plus `extra_trailers` (a response), else an `Err` item aborts the stream (a request:
/// the server must not mistake it for a clean end).
pub fn out_body(
    messages: BoxStream<'static, Result<Vec<Bytes>>>,
    with_trailers: bool,
    extra_trailers: Option<Trailers>,
) -> OutBody {
    let frames = futures::stream::unfold((messages, false), move |(mut messages, done)| {
        let extra = extra_trailers.clone();
        async move {
            if done {
                return None;
            }
            match messages.next().await {
                Some(Ok(pieces)) => {
                    let items: Vec<Result<Frame<Bytes>, BoxError>> = frames(pieces)
                        .into_iter()
                        .map(|b| Ok(Frame::data(b)))
                        .collect();
                    Some((futures::stream::iter(items).boxed(), (messages, false)))
                }
                Some(Err(err)) if with_trailers => {
                    let trailers = final_trailers(&Err(err), extra.as_ref());
                    Some((single(Ok(Frame::trailers(trailers))), (messages, true)))
                }
                Some(Err(err)) => Some((single(Err(Box::new(err) as BoxError)), (messages, true))),
                None if with_trailers => {
                    let trailers = final_trailers(&Ok(()), extra.as_ref());
                    Some((single(Ok(Frame::trailers(trailers))), (messages, true)))
                }
                None => None,
            }
        }
    })
    .flatten();
    OutBody(Some(frames.boxed()))
}

/// The status trailers plus the application's own (which may not override the status keys).
fn final_trailers(
    status: &std::result::Result<(), FlightError>,
    extra: Option<&Trailers>,
) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    if let Some(extra) = extra {
        if let Err(err) = wire::headers_to_http(&extra.get(), &mut map) {
            tracing::warn!(error = %err, "dropping invalid response trailers");
            map.clear();
        }
    }
    for (key, value) in wire::status_headers(status) {
        if let Some(key) = key {
            map.insert(key, value);
        }
    }
    map
}

fn single(
    item: Result<Frame<Bytes>, BoxError>,
) -> BoxStream<'static, Result<Frame<Bytes>, BoxError>> {
    futures::stream::iter([item]).boxed()
}

/// Reads `body` as gRPC messages. For a response body (`expect_status`), the trailers' status
/// ends the stream: OK ends it cleanly, an error is yielded as the last item, and a body that ends
/// with no status is an error. `on_error` maps a transport error of the body (peer reset).
pub fn in_messages<B>(
    body: B,
    max_message_size: usize,
    expect_status: bool,
    on_error: fn(String) -> FlightError,
    trailers_sink: Option<Trailers>,
) -> BoxStream<'static, Result<SegmentedBuf>>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    struct State<B> {
        body: B,
        decoder: MessageDecoder,
        done: bool,
        trailers_sink: Option<Trailers>,
    }
    let state = State {
        body,
        decoder: MessageDecoder::new(max_message_size),
        done: false,
        trailers_sink,
    };
    futures::stream::unfold(state, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            match st.decoder.next_message() {
                Ok(Some(message)) => return Some((Ok(message), st)),
                Ok(None) => {}
                Err(err) => {
                    st.done = true;
                    return Some((Err(err), st));
                }
            }
            match st.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => st.decoder.push(data),
                    Err(frame) => {
                        st.done = true;
                        let leftover = st.decoder.finish();
                        let trailers = frame.into_trailers().ok();
                        if let (Some(sink), Some(trailers)) = (&st.trailers_sink, &trailers) {
                            sink.extend(wire::headers_from_http(trailers));
                        }
                        let status = trailers.and_then(|t| wire::status_from_headers(&t));
                        let outcome = match (leftover, status) {
                            (Err(err), _) => Err(err),
                            (Ok(()), Some(result)) => result,
                            (Ok(()), None) if expect_status => Err(FlightError::internal(
                                "gRPC response trailers carried no grpc-status",
                            )),
                            (Ok(()), None) => Ok(()),
                        };
                        return outcome.err().map(|err| (Err(err), st));
                    }
                },
                Some(Err(err)) => {
                    st.done = true;
                    return Some((Err(on_error(err.to_string())), st));
                }
                None => {
                    st.done = true;
                    if let Err(err) = st.decoder.finish() {
                        return Some((Err(err), st));
                    }
                    if expect_status {
                        return Some((
                            Err(FlightError::unavailable(
                                "gRPC response ended without a status (connection lost?)",
                            )),
                            st,
                        ));
                    }
                    return None;
                }
            }
        }
    })
    .boxed()
}

/// Maps a stream of received messages through a decoder function.
pub fn decode_each<T: Send + 'static>(
    messages: BoxStream<'static, Result<SegmentedBuf>>,
    decode: fn(SegmentedBuf) -> Result<T>,
) -> BoxStream<'static, Result<T>> {
    messages.map(move |m| m.and_then(decode)).boxed()
}
