//! The end of a one-message request, which a server waits for before it ends the response.
//!
//! Every Flight call but Handshake, DoPut and DoExchange sends one request message. A server that
//! ends its response while the request is still open must reset the stream (RST_STREAM
//! NO_ERROR), and h2 forgets reset streams quickly (at most 50 within a second): when the
//! client's END_STREAM arrives later for a forgotten stream, h2 answers it with a reset of its
//! own and counts that against the connection, which it closes (GOAWAY `ENHANCE_YOUR_CALM`)
//! after 1024 of them. Clients that send END_STREAM in a frame of its own (tonic's does) would
//! lose their connection every few thousand calls. So the service gets a stream that ends after
//! the one message ([`OneMessage`]), and the rest of the request stays with the response
//! ([`RequestTail`]), which ends the stream only once the client has ended its side, or after
//! [`TAIL_WAIT`].

use futures::Stream;
use polyflight_core::{Message, MessageStream, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a response waits for its request's end before it resets the stream instead. The
/// end normally follows the message within microseconds; a client that never sends it only
/// delays its own responses by this much.
pub(crate) const TAIL_WAIT: Duration = Duration::from_millis(100);

/// A request body, shared by the service's view of it and the response's.
struct Shared {
    messages: MessageStream,
    /// The service has read the one message (or the end, or an error).
    first_taken: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Nothing panics while holding the lock but a message stream itself; its state is what it
    // is either way.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Splits a one-message request into what the service reads (the message, then the end) and
/// what the response keeps (the rest, read to its end before the trailers).
pub(crate) fn split(messages: MessageStream) -> (OneMessage, RequestTail) {
    let shared = Arc::new(Mutex::new(Shared {
        messages,
        first_taken: false,
    }));
    (
        OneMessage {
            shared: shared.clone(),
            done: false,
        },
        RequestTail {
            shared,
            deadline: None,
        },
    )
}

/// The request as the service sees it: the first item, then the end.
pub(crate) struct OneMessage {
    shared: Arc<Mutex<Shared>>,
    done: bool,
}

impl Stream for OneMessage {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut shared = lock(&self.shared);
        let item = std::task::ready!(shared.messages.as_mut().poll_next(cx));
        shared.first_taken = true;
        drop(shared);
        self.done = true;
        Poll::Ready(item)
    }
}

/// The rest of a one-message request, kept by the response.
pub(crate) struct RequestTail {
    shared: Arc<Mutex<Shared>>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl RequestTail {
    /// Ready once the client has ended the request, or has broken it off, or sent a second
    /// message (nothing to wait for then), or [`TAIL_WAIT`] has passed since the first poll.
    pub(crate) fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = lock(&self.shared);
        loop {
            match shared.messages.as_mut().poll_next(cx) {
                // The service never read the message (it answered from the headers alone).
                Poll::Ready(Some(Ok(_))) if !shared.first_taken => shared.first_taken = true,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        drop(shared);
        self.deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(TAIL_WAIT)))
            .as_mut()
            .poll(cx)
    }

    /// [`poll_end`](Self::poll_end) as a future.
    pub(crate) async fn end(&mut self) {
        std::future::poll_fn(|cx| self.poll_end(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::StreamExt;

    fn message(text: &'static str) -> Result<Message> {
        Ok(Message::Proto(Bytes::from_static(text.as_bytes())))
    }

    #[tokio::test]
    async fn the_service_reads_one_message_and_the_tail_the_end() {
        let (mut service, mut tail) = split(futures::stream::iter([message("a")]).boxed());
        assert!(matches!(service.next().await, Some(Ok(Message::Proto(b))) if b == "a"));
        assert!(service.next().await.is_none());
        let started = tokio::time::Instant::now();
        tail.end().await;
        assert!(started.elapsed() < TAIL_WAIT);
    }

    #[tokio::test]
    async fn the_tail_skips_a_message_the_service_never_read() {
        let (_service, mut tail) = split(futures::stream::iter([message("a")]).boxed());
        let started = tokio::time::Instant::now();
        tail.end().await;
        assert!(started.elapsed() < TAIL_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_never_ends_is_waited_for_briefly() {
        let open = futures::stream::iter([message("a")]).chain(futures::stream::pending());
        let (mut service, mut tail) = split(open.boxed());
        assert!(service.next().await.is_some());
        assert!(service.next().await.is_none());
        let started = tokio::time::Instant::now();
        tail.end().await;
        assert_eq!(started.elapsed(), TAIL_WAIT);
    }

    #[tokio::test]
    async fn a_second_message_ends_the_wait() {
        let (mut service, mut tail) = split(
            futures::stream::iter([message("a"), message("b")])
                .chain(futures::stream::pending())
                .boxed(),
        );
        assert!(service.next().await.is_some());
        assert!(service.next().await.is_none());
        let started = tokio::time::Instant::now();
        tail.end().await;
        assert!(started.elapsed() < TAIL_WAIT);
    }
}
