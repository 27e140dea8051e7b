//! Acceptance of the `:authority` that gRPC C++ clients (so pyarrow) send over Unix sockets.
//!
//! For a `unix:` target, gRPC C++ sends the percent-encoded socket path as `:authority`
//! (`tmp%2Fflight.sock` for `/tmp/flight.sock`). hyper's HTTP/2 layer, h2, parses `:authority` as a URI authority,
//! which may not contain `%` escapes there, and answers every such request with
//! RST_STREAM(PROTOCOL_ERROR) (hyperium/h2#487). h2 (0.4.20) has no option to relax this: the
//! check runs as the request is assembled, before hyper or we see it.
//!
//! So [`AuthorityFix`] sits between the socket and h2, on the bytes the client sends, and
//! rewrites request header blocks:
//! - it follows the HTTP/2 framing (9-byte frame headers); every frame except HEADERS and
//!   CONTINUATION passes through untouched. A payload is read straight into h2's buffer whenever
//!   that buffer is no larger than what remains of the frame — the usual case for bulk DATA,
//!   since h2 reserves room for a frame's length — so it costs no copy of ours; other reads go
//!   through our buffer, one copy (about 2% of the bytes of a large DoPut, from hyper's client
//!   and from pyarrow alike);
//! - it gathers a header block (HEADERS plus any CONTINUATIONs), decodes it with an HPACK
//!   decoder whose dynamic table follows the client's encoder ([`crate::hpack`]), replaces an
//!   `:authority` that is not a valid URI authority with `localhost`, and re-encodes the block
//!   as literals *without indexing*: such a block neither uses nor changes the decoder state of
//!   h2, whose table therefore stays empty, so no encoder state has to be kept in step on our
//!   side. Padding is dropped (flag cleared), priority fields are kept, and the block is split
//!   into frames of at most 16 KiB, the size every HTTP/2 endpoint must accept.
//!
//! Alternatives considered: patching h2 (not ours to patch, and a vendored fork would have to
//! follow every release); rewriting the authority bytes in place (the client indexes the value
//! in its dynamic table, and a replacement of another length or encoding puts the two tables
//! out of step); asking clients for an option (`grpc.default_authority`) — stock clients must
//! work as they are. The adapter is only used on Unix-socket connections, where the peer is
//! local and already trusted by the socket's permissions; its parser is still strict and
//! bounded, since a malformed block would otherwise be a way to crash the server.

use crate::hpack::{self, HeaderField};
use bytes::{Buf, BufMut, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// Largest frame payload written: the minimum SETTINGS_MAX_FRAME_SIZE every endpoint accepts.
const MAX_OUT_FRAME: usize = 16 * 1024;
/// HTTP/2's default SETTINGS_HEADER_TABLE_SIZE, which hyper's server does not change: the
/// largest dynamic table a client may use towards it.
const HEADER_TABLE_SIZE: usize = 4096;
/// What replaces an `:authority` h2 would refuse.
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";
/// Bytes read from the socket at a time while parsing.
const READ_CHUNK: usize = 16 * 1024;

/// A header block being gathered.
#[derive(Debug)]
struct Pending {
    stream_id: u32,
    /// END_STREAM and PRIORITY of the HEADERS frame.
    flags: u8,
    priority: [u8; PRIORITY_LEN],
}

#[derive(Debug)]
enum State {
    /// Bytes of a frame payload (or the preface) to pass on as they are.
    Forward(usize),
    /// Reading a frame header.
    FrameHeader {
        header: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    /// Reading the payload of a HEADERS or CONTINUATION frame.
    HeaderPayload {
        kind: u8,
        flags: u8,
        stream_id: u32,
        payload: Vec<u8>,
        need: usize,
    },
    /// A protocol error was reported; nothing more is parsed.
    Failed,
}

/// The pure state machine behind [`AuthorityFix`]: client-to-server HTTP/2 bytes in, the same
/// bytes with rewritten header blocks out.
#[derive(Debug)]
pub struct RequestRewriter {
    state: State,
    decoder: hpack::Decoder,
    pending: Option<Pending>,
    block: Vec<u8>,
    max_block: usize,
    max_list: usize,
}

impl RequestRewriter {
    /// A rewriter for a new connection; a header block may be at most `max_header_bytes` both
    /// encoded and decoded (give it well above the server's own header-list limit, so the server
    /// gets to answer over-large requests itself).
    pub fn new(max_header_bytes: usize) -> Self {
        RequestRewriter {
            state: State::Forward(PREFACE_LEN),
            decoder: hpack::Decoder::new(HEADER_TABLE_SIZE),
            pending: None,
            block: Vec::new(),
            max_block: max_header_bytes,
            max_list: max_header_bytes,
        }
    }

    /// How many of the next input bytes pass through unchanged (0 while parsing).
    pub fn forwardable(&self) -> usize {
        match self.state {
            State::Forward(n) => n,
            _ => 0,
        }
    }

    /// Records that `n` (at most [`RequestRewriter::forwardable`]) bytes were passed through.
    pub fn forwarded(&mut self, n: usize) {
        if let State::Forward(left) = &mut self.state {
            *left -= n.min(*left);
            if *left == 0 {
                self.state = State::FrameHeader {
                    header: [0; FRAME_HEADER_LEN],
                    have: 0,
                };
            }
        }
    }

    /// Consumes input while parsing (frame headers, header-block payloads), appending what is
    /// to be sent on to `out`; stops when input runs out or bytes can be forwarded as they are.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), ProtocolError> {
        while !input.is_empty() {
            match &mut self.state {
                State::Forward(0) => self.forwarded(0),
                State::Forward(_) => return Ok(()),
                State::Failed => return Err(ProtocolError("connection already failed".into())),
                State::FrameHeader { header, have } => {
                    let n = (FRAME_HEADER_LEN - *have).min(input.len());
                    header[*have..*have + n].copy_from_slice(&input[..n]);
                    input.advance(n);
                    *have += n;
                    if *have == FRAME_HEADER_LEN {
                        let header = *header;
                        if let Err(err) = self.frame_header(header, out) {
                            self.state = State::Failed;
                            return Err(err);
                        }
                    }
                }
                State::HeaderPayload { payload, need, .. } => {
                    let n = (*need).min(input.len());
                    payload.extend_from_slice(&input[..n]);
                    input.advance(n);
                    *need -= n;
                    if *need == 0 {
                        let state = std::mem::replace(&mut self.state, State::Failed);
                        if let State::HeaderPayload {
                            kind,
                            flags,
                            stream_id,
                            payload,
                            ..
                        } = state
                        {
                            self.header_payload(kind, flags, stream_id, &payload, out)?;
                            self.state = State::FrameHeader {
                                header: [0; FRAME_HEADER_LEN],
                                have: 0,
                            };
                        }
                    }
                }
            }
        }
        // A zero-length forward (empty frame payload) ends here without more input.
        if let State::Forward(0) = self.state {
            self.forwarded(0);
        }
        Ok(())
    }

    fn frame_header(
        &mut self,
        header: [u8; FRAME_HEADER_LEN],
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let kind = header[3];
        let flags = header[4];
        let stream_id =
            u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & !(1 << 31);
        let continuing = self.pending.is_some();
        match kind {
            TYPE_HEADERS | TYPE_CONTINUATION => {
                if (kind == TYPE_HEADERS) == continuing {
                    return Err(ProtocolError(if continuing {
                        "HEADERS frame while a header block awaits CONTINUATION".into()
                    } else {
                        "CONTINUATION frame without a header block".into()
                    }));
                }
                if self.block.len() + len > self.max_block {
                    return Err(ProtocolError(format!(
                        "header block larger than {} bytes",
                        self.max_block
                    )));
                }
                self.state = State::HeaderPayload {
                    kind,
                    flags,
                    stream_id,
                    payload: Vec::new(),
                    need: len,
                };
                if len == 0 {
                    // Nothing to wait for: complete the frame now.
                    self.state = State::FrameHeader {
                        header: [0; FRAME_HEADER_LEN],
                        have: 0,
                    };
                    self.header_payload(kind, flags, stream_id, &[], out)?;
                }
            }
            _ if continuing => {
                return Err(ProtocolError(format!(
                    "frame of type {kind} inside a header block (CONTINUATION expected)"
                )))
            }
            _ => {
                out.put_slice(&header);
                self.state = State::Forward(len);
            }
        }
        Ok(())
    }

    fn header_payload(
        &mut self,
        kind: u8,
        flags: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        if kind == TYPE_HEADERS {
            let mut fragment = payload;
            let mut pad = 0usize;
            if flags & FLAG_PADDED != 0 {
                let (&pad_len, rest) = fragment.split_first().ok_or_else(|| {
                    ProtocolError("padded HEADERS frame without a pad length".into())
                })?;
                pad = pad_len as usize;
                fragment = rest;
            }
            let mut priority = [0u8; PRIORITY_LEN];
            if flags & FLAG_PRIORITY != 0 {
                if fragment.len() < PRIORITY_LEN {
                    return Err(ProtocolError(
                        "HEADERS frame too short for its priority".into(),
                    ));
                }
                priority.copy_from_slice(&fragment[..PRIORITY_LEN]);
                fragment = &fragment[PRIORITY_LEN..];
            }
            if pad > fragment.len() {
                return Err(ProtocolError(
                    "HEADERS padding longer than the frame".into(),
                ));
            }
            fragment = &fragment[..fragment.len() - pad];
            self.pending = Some(Pending {
                stream_id,
                flags: flags & (FLAG_END_STREAM | FLAG_PRIORITY),
                priority,
            });
            self.block.extend_from_slice(fragment);
        } else {
            match &self.pending {
                Some(p) if p.stream_id == stream_id => self.block.extend_from_slice(payload),
                _ => {
                    return Err(ProtocolError(
                        "CONTINUATION frame for another stream".to_string(),
                    ))
                }
            }
        }
        if flags & FLAG_END_HEADERS != 0 {
            self.finish_block(out)?;
        }
        Ok(())
    }

    fn finish_block(&mut self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| ProtocolError("header block without HEADERS".into()))?;
        let block = std::mem::take(&mut self.block);
        let mut fields = self
            .decoder
            .decode(&block, self.max_list)
            .map_err(|e| ProtocolError(format!("undecodable request headers: {e}")))?;
        rewrite_authority(&mut fields);
        let mut encoded = Vec::with_capacity(block.len() * 2);
        hpack::encode_literals(&fields, &mut encoded);
        write_header_frames(&pending, &encoded, out);
        Ok(())
    }
}

/// Replaces an `:authority` that is not a valid URI authority (h2 would refuse the request).
fn rewrite_authority(fields: &mut [HeaderField]) {
    for field in fields.iter_mut().filter(|f| f.name == b":authority") {
        if http::uri::Authority::try_from(field.value.as_slice()).is_err() {
            tracing::trace!(
                authority = %String::from_utf8_lossy(&field.value),
                "replacing a request :authority the HTTP/2 server would refuse"
            );
            field.value = REPLACEMENT_AUTHORITY.to_vec();
        }
    }
}

/// Writes a header block as a HEADERS frame and as many CONTINUATION frames as it needs.
fn write_header_frames(pending: &Pending, block: &[u8], out: &mut BytesMut) {
    let priority_len = if pending.flags & FLAG_PRIORITY != 0 {
        PRIORITY_LEN
    } else {
        0
    };
    let first_len = block.len().min(MAX_OUT_FRAME - priority_len);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = pending.flags;
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    frame_header(
        out,
        priority_len + first.len(),
        TYPE_HEADERS,
        flags,
        pending.stream_id,
    );
    out.put_slice(&pending.priority[..priority_len]);
    out.put_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_OUT_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        frame_header(
            out,
            chunk.len(),
            TYPE_CONTINUATION,
            flags,
            pending.stream_id,
        );
        out.put_slice(chunk);
    }
}

fn frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    // `len` is at most MAX_OUT_FRAME, so it fits the 24-bit length field.
    out.put_slice(&(len as u32).to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id);
}

/// A client sent HTTP/2 the rewriter could not process; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP/2 protocol error from the client: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// A server-side connection whose incoming HTTP/2 header blocks are re-encoded so that any
/// `:authority` the HTTP/2 server would refuse is replaced (see the module docs). Writes pass
/// through untouched.
pub struct AuthorityFix<T> {
    inner: T,
    rewriter: RequestRewriter,
    /// Bytes read from `inner` and not yet processed.
    input: BytesMut,
    /// Rewritten bytes ready for the reader.
    output: BytesMut,
    eof: bool,
}

impl<T> AuthorityFix<T> {
    /// Wraps a freshly accepted connection (before any byte was read from it).
    pub fn new(inner: T, max_header_bytes: usize) -> Self {
        AuthorityFix {
            inner,
            rewriter: RequestRewriter::new(max_header_bytes),
            input: BytesMut::new(),
            output: BytesMut::new(),
            eof: false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output.split_to(n));
                return Poll::Ready(Ok(()));
            }
            let forward = this.rewriter.forwardable();
            if forward > 0 {
                if !this.input.is_empty() {
                    let n = forward.min(this.input.len()).min(buf.remaining());
                    buf.put_slice(&this.input.split_to(n));
                    this.rewriter.forwarded(n);
                    return Poll::Ready(Ok(()));
                }
                if this.eof {
                    return Poll::Ready(Ok(()));
                }
                if buf.remaining() <= forward {
                    // The whole read belongs to payload that passes through: read it straight
                    // into the caller's buffer, with no copy of ours. (A larger buffer cannot be
                    // limited to the frame without `unsafe`; such reads take the copying path
                    // below, which measured at about 2% of bulk bytes.)
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let n = buf.filled().len() - before;
                    if n == 0 {
                        this.eof = true;
                    }
                    this.rewriter.forwarded(n);
                    return Poll::Ready(Ok(()));
                }
            } else if !this.input.is_empty() {
                this.rewriter
                    .feed(&mut this.input, &mut this.output)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                continue;
            } else if this.eof {
                // End of stream (possibly inside a frame: the HTTP/2 server reports that).
                return Poll::Ready(Ok(()));
            }
            this.input.reserve(READ_CHUNK);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.input
            ))?;
            if n == 0 {
                this.eof = true;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpack::tests::{IndexingEncoder, XorShift};
    use crate::hpack::Decoder;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame_header(&mut out, payload.len(), kind, flags, stream);
        out.put_slice(payload);
        out.to_vec()
    }

    /// Runs bytes through a rewriter in chunks of `step`, passing forwardable bytes through.
    fn run(input: &[u8], step: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut rewriter = RequestRewriter::new(1 << 20);
        let mut out = BytesMut::new();
        let mut pending = BytesMut::new();
        for chunk in input.chunks(step.max(1)) {
            pending.extend_from_slice(chunk);
            loop {
                let forward = rewriter.forwardable();
                if forward > 0 && !pending.is_empty() {
                    let n = forward.min(pending.len());
                    out.extend_from_slice(&pending.split_to(n));
                    rewriter.forwarded(n);
                } else if forward == 0 && !pending.is_empty() {
                    rewriter.feed(&mut pending, &mut out)?;
                } else {
                    break;
                }
            }
        }
        Ok(out.to_vec())
    }

    /// Splits output into frames: (type, flags, stream, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            out.push((bytes[3], bytes[4], stream, bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    fn grpc_request(authority: &str) -> Vec<(&'static str, String)> {
        vec![
            (":method", "POST".into()),
            (":scheme", "http".into()),
            (":path", "/arrow.flight.protocol.FlightService/DoGet".into()),
            (":authority", authority.into()),
            ("content-type", "application/grpc".into()),
            ("te", "trailers".into()),
            (
                "user-agent",
                "grpc-c++/1.72.0 grpc-c/48.0.0 (linux; chttp2)".into(),
            ),
        ]
    }

    fn encode(encoder: &mut IndexingEncoder, fields: &[(&'static str, String)]) -> Vec<u8> {
        let borrowed: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        encoder.encode(&borrowed)
    }

    fn decoded(decoder: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        decoder
            .decode(block, 1 << 20)
            .unwrap()
            .into_iter()
            .map(|f| {
                (
                    String::from_utf8(f.name).unwrap(),
                    String::from_utf8(f.value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn percent_encoded_authority_is_replaced_and_others_kept() {
        let mut encoder = IndexingEncoder::new();
        let mut input = PREFACE.to_vec();
        let bad = grpc_request("%2Ftmp%2Fflight.sock");
        let good = grpc_request("localhost:1234");
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &encode(&mut encoder, &bad),
        ));
        input.extend(frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x00"));
        // The second request indexes the authority from the dynamic table.
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            3,
            &encode(&mut encoder, &bad),
        ));
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            5,
            &encode(&mut encoder, &good),
        ));
        for step in [1, 7, 4096] {
            let out = run(&input, step).unwrap();
            assert_eq!(&out[..24], PREFACE);
            let frames = frames(&out[24..]);
            assert_eq!(frames.len(), 4);
            // A fresh decoder reads the output: it is literals only.
            let mut decoder = Decoder::new(0);
            let first = decoded(&mut decoder, &frames[0].3);
            assert_eq!(first[3], (":authority".into(), "localhost".into()));
            assert_eq!(first[2].1, "/arrow.flight.protocol.FlightService/DoGet");
            assert_eq!(first.len(), 7);
            assert_eq!((frames[1].0, frames[1].1, frames[1].2), (0x0, 0x1, 1));
            assert_eq!(frames[1].3, b"\x00\x00\x00\x00\x00");
            assert_eq!(frames[2].1, FLAG_END_HEADERS | FLAG_END_STREAM);
            assert_eq!(decoded(&mut decoder, &frames[2].3)[3].1, "localhost");
            assert_eq!(decoded(&mut decoder, &frames[3].3)[3].1, "localhost:1234");
        }
    }

    #[test]
    fn padding_priority_and_continuation() {
        let mut encoder = IndexingEncoder::new();
        let block = encode(&mut encoder, &grpc_request("%2Fa.sock"));
        let (a, b) = block.split_at(10);
        let mut payload = vec![3u8]; // pad length
        payload.extend_from_slice(&[0x80, 0, 0, 0, 0x10]); // exclusive dependency, weight 16
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            7,
            &payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, 0, 7, &b[..5]));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 7, &b[5..]));
        let out = run(&input, 3).unwrap();
        let frames = frames(&out[24..]);
        assert_eq!(frames.len(), 1);
        let (kind, flags, stream, payload) = &frames[0];
        assert_eq!(
            (*kind, *flags, *stream),
            (
                TYPE_HEADERS,
                FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS,
                7
            )
        );
        assert_eq!(&payload[..5], &[0x80, 0, 0, 0, 0x10]);
        let fields = decoded(&mut Decoder::new(0), &payload[5..]);
        assert_eq!(fields[3].1, "localhost");
    }

    #[test]
    fn large_blocks_are_split_into_continuations() {
        let mut encoder = IndexingEncoder::new();
        let mut request = grpc_request("%2Fa.sock");
        let big = "v".repeat(40_000);
        request.push(("x-big", big.clone()));
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &encode(&mut encoder, &request),
        ));
        let out = run(&input, 10_000).unwrap();
        let frames = frames(&out[24..]);
        assert!(frames.len() >= 3, "{} frames", frames.len());
        assert!(frames.iter().all(|f| f.3.len() <= MAX_OUT_FRAME));
        assert_eq!(frames[0].0, TYPE_HEADERS);
        assert_eq!(frames[0].1 & FLAG_END_HEADERS, 0);
        assert!(frames[1..].iter().all(|f| f.0 == TYPE_CONTINUATION));
        assert_eq!(frames.last().unwrap().1, FLAG_END_HEADERS);
        let block: Vec<u8> = frames.iter().flat_map(|f| f.3.clone()).collect();
        let fields = decoded(&mut Decoder::new(0), &block);
        assert_eq!(fields.last().unwrap().1, big);
    }

    #[test]
    fn protocol_violations_are_errors() {
        let block = encode(&mut IndexingEncoder::new(), &grpc_request("a"));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "continuation without headers",
                frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &block),
            ),
            (
                "other frame inside a block",
                [
                    frame(TYPE_HEADERS, 0, 1, &block[..4]),
                    frame(0x0, 0, 1, b"x"),
                ]
                .concat(),
            ),
            (
                "continuation for another stream",
                [
                    frame(TYPE_HEADERS, 0, 1, &block[..4]),
                    frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &block[4..]),
                ]
                .concat(),
            ),
            (
                "padding too long",
                frame(
                    TYPE_HEADERS,
                    FLAG_PADDED | FLAG_END_HEADERS,
                    1,
                    &[200, 0x82],
                ),
            ),
            (
                "priority too short",
                frame(TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_HEADERS, 1, &[1, 2]),
            ),
            (
                "bad hpack",
                frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0x80]),
            ),
            (
                "block too large",
                frame(TYPE_HEADERS, 0, 1, &vec![0u8; (1 << 20) + 1]),
            ),
        ];
        for (name, bytes) in cases {
            let input = [PREFACE.to_vec(), bytes].concat();
            assert!(run(&input, 5).is_err(), "{name}");
        }
    }

    #[test]
    fn random_frames_never_panic() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..5_000 {
            let mut input = PREFACE.to_vec();
            for _ in 0..(rng.next() % 6) {
                let kind =
                    [TYPE_HEADERS, TYPE_CONTINUATION, 0x0, 0x4, 0x8][(rng.next() % 5) as usize];
                let flags = rng.next() as u8;
                let len = (rng.next() % 40) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                input.extend(frame(kind, flags, (rng.next() % 4) as u32, &payload));
            }
            // Sometimes a truncated or lying length.
            if rng.next().is_multiple_of(4) {
                let cut = (rng.next() as usize) % input.len();
                input.truncate(cut.max(24));
            }
            let _ = run(&input, 1 + (rng.next() % 13) as usize);
        }
    }

    #[tokio::test]
    async fn adapter_passes_data_and_rewrites_headers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut encoder = IndexingEncoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            1,
            &encode(&mut encoder, &grpc_request("%2Fx")),
        ));
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        input.extend(frame(0x0, 0x1, 1, &data));
        let (mut client, server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut fixed = AuthorityFix::new(server, 1 << 20);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        drop(writer.await.unwrap());
        let frames = frames(&out[24..]);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            decoded(&mut Decoder::new(0), &frames[0].3)[3].1,
            "localhost"
        );
        assert_eq!(frames[1].3, data);
    }
}
