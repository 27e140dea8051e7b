//! Fuzzing entry point of the Unix `:authority` rewriter (see `polyflight_core::fuzzing`). Not
//! part of the API.

use crate::authority::RequestRewriter;
use bytes::{Buf, BytesMut};

/// What a client sends first on a connection.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The client-to-server byte stream of a Unix socket connection through the rewriter (frame
/// headers, HEADERS/CONTINUATION blocks, the HPACK decoder and its dynamic table): the preface,
/// then the input, fed in chunks whose size the first byte sets.
pub fn authority_rewriter(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + cut as usize * 5;
    let mut rewriter = RequestRewriter::new(64 * 1024);
    let mut out = BytesMut::new();
    let stream: Vec<u8> = PREFACE.iter().chain(rest).copied().collect();
    for piece in stream.chunks(chunk) {
        let mut input = BytesMut::from(piece);
        while !input.is_empty() {
            let forward = rewriter.forwardable().min(input.len());
            if forward > 0 {
                out.extend_from_slice(&input[..forward]);
                input.advance(forward);
                rewriter.forwarded(forward);
                continue;
            }
            if rewriter.feed(&mut input, &mut out).is_err() {
                return;
            }
        }
        // what was rewritten goes on to the server; keep memory flat
        out.clear();
    }
}
