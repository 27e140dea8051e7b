//! Budgets for request bytes the server buffers: what a request stream has received of a message
//! it has not finished counts against its connection's budget and its listener's. A stream that
//! would go over waits — and, because it stops reading, HTTP/2 flow control holds its sender
//! back — until other messages complete; if it still does not fit after the wait limit, its call
//! is refused with UNAVAILABLE (the client may retry later). What peers claim is never counted;
//! only bytes that arrived.

use polyflight_core::{FlightError, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Permits of a semaphore are bytes; a single acquisition is at most this many.
const MAX_ACQUIRE: usize = u32::MAX as usize;

/// A shared pool of bytes (one per connection, one per listener).
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    bytes: Arc<Semaphore>,
    size: usize,
}

impl Pool {
    pub(crate) fn new(size: usize) -> Pool {
        let size = size.min(Semaphore::MAX_PERMITS);
        Pool {
            bytes: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Bytes of this pool in use now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.size - self.bytes.available_permits()
    }
}

/// What one request stream holds of its connection's and listener's budgets.
pub(crate) struct StreamBudget {
    connection: Pool,
    listener: Pool,
    wait: Duration,
    held: usize,
    waiting: Option<Pin<Box<dyn Future<Output = Result<()>> + Send>>>,
}

impl StreamBudget {
    pub(crate) fn new(connection: Pool, listener: Pool, wait: Duration) -> Self {
        StreamBudget {
            connection,
            listener,
            wait,
            held: 0,
            waiting: None,
        }
    }

    /// The largest message a stream can ever complete within these budgets.
    pub(crate) fn largest_message(&self) -> usize {
        self.connection.size.min(self.listener.size)
    }

    /// Takes `n` more bytes; `Pending` while the budgets are spent (the caller must not read
    /// more until this is ready), an error once the wait limit has passed.
    pub(crate) fn poll_take(&mut self, cx: &mut Context<'_>, n: usize) -> Poll<Result<()>> {
        if self.waiting.is_none() {
            if n > MAX_ACQUIRE {
                return Poll::Ready(Err(FlightError::invalid_argument(format!(
                    "a body chunk of {n} bytes"
                ))));
            }
            let count = n as u32;
            if let Ok(connection) = self.connection.bytes.try_acquire_many(count) {
                if let Ok(listener) = self.listener.bytes.try_acquire_many(count) {
                    connection.forget();
                    listener.forget();
                    self.held += n;
                    return Poll::Ready(Ok(()));
                }
            }
            let connection = self.connection.bytes.clone();
            let listener = self.listener.bytes.clone();
            let wait = self.wait;
            self.waiting = Some(Box::pin(async move {
                let both = async {
                    let a = connection.acquire_many_owned(count).await;
                    let b = listener.acquire_many_owned(count).await;
                    match (a, b) {
                        (Ok(a), Ok(b)) => {
                            a.forget();
                            b.forget();
                            Ok(())
                        }
                        _ => Err(FlightError::unavailable("the server is shutting down")),
                    }
                };
                match tokio::time::timeout(wait, both).await {
                    Ok(result) => result,
                    Err(_) => {
                        crate::log::limit_reached(
                            "request memory budget",
                            format_args!("a stream waited {wait:?} for {n} bytes"),
                        );
                        Err(FlightError::unavailable(format!(
                            "the server's memory budget for request data is spent (waited \
                             {wait:?} for room for {n} more bytes); retry later"
                        )))
                    }
                }
            }));
        }
        let Some(waiting) = self.waiting.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = std::task::ready!(waiting.as_mut().poll(cx));
        self.waiting = None;
        if result.is_ok() {
            self.held += n;
        }
        Poll::Ready(result)
    }

    /// Gives back `n` bytes (a message was handed on).
    pub(crate) fn give_back(&mut self, n: usize) {
        let n = n.min(self.held);
        self.held -= n;
        self.connection.bytes.add_permits(n);
        self.listener.bytes.add_permits(n);
    }
}

impl Drop for StreamBudget {
    fn drop(&mut self) {
        let held = self.held;
        self.give_back(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    #[tokio::test]
    async fn a_stream_waits_for_room_and_is_refused_after_the_limit() {
        let connection = Pool::new(100);
        let listener = Pool::new(150);
        let mut a = StreamBudget::new(connection.clone(), listener.clone(), Duration::from_secs(5));
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(a.poll_take(&mut cx, 80), Poll::Ready(Ok(()))));
        // the connection has 20 left: 30 more must wait
        assert!(a.poll_take(&mut cx, 30).is_pending());
        a.give_back(80);
        let taken = futures::future::poll_fn(|cx| a.poll_take(cx, 30)).await;
        assert!(taken.is_ok());
        assert_eq!((connection.used(), listener.used()), (30, 30));

        // the listener's budget binds across connections
        let other = Pool::new(100);
        let mut b = StreamBudget::new(other.clone(), listener.clone(), Duration::from_millis(50));
        assert!(matches!(b.poll_take(&mut cx, 100), Poll::Ready(Ok(()))));
        let refused = futures::future::poll_fn(|cx| b.poll_take(cx, 50)).await;
        let error = refused.unwrap_err();
        assert_eq!(error.code(), polyflight_core::FlightCode::Unavailable);
        assert!(error.message().contains("memory budget"), "{error}");
        // dropping a stream returns what it held, even while it waited
        drop(a);
        drop(b);
        assert_eq!(
            (connection.used(), other.used(), listener.used()),
            (0, 0, 0)
        );
    }
}
