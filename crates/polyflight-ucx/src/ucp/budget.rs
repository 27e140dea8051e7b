//! The receive budget of a worker: how many bytes of received messages it may hold before the
//! application takes them.
//!
//! UCX copies nothing for us until our active message callback runs, and an eager message has to
//! be taken (copied) in that callback or dropped: it cannot be refused or deferred. What can be
//! deferred is the next call to `ucp_worker_progress`. So the budget counts the bytes a worker's
//! connection holds — eager data queued in its inbox, frames waiting for their turn, rendezvous
//! bodies being fetched — and while they reach the limit the worker's progress task stops
//! progressing. Nothing more is read from the transport then: TCP's flow control (or a full
//! shared-memory FIFO) holds the sender back, whatever it claims or sends. A worker carries one
//! connection (see `crate::thread`), so this holds back that connection only.
//!
//! One exception keeps a reader from waiting on itself: while a rendezvous body it asked for is
//! being fetched ([`ReceiveBudget::fetching`]), the worker progresses even over the limit, since
//! the fetch completes only through progress. That is how a frame larger than the whole budget
//! gets through: it is fetched when it is the next one the reader needs. Progress then also
//! delivers the eager frames a peer sent behind it (a pipelining sender does; so does the frame
//! that follows the moment the sender learns its body arrived), and eager data cannot be left
//! unread. It is kept up to an overdraft as large again as the limit
//! ([`ReceiveBudget::refuses`]); past that the connection is broken, so even a peer that ignores
//! back-pressure cannot make the worker hold more than twice the limit and one frame.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The bytes a worker holds of received messages, against its limit. Single-threaded (`Rc`).
#[derive(Debug)]
pub struct ReceiveBudget {
    limit: Cell<usize>,
    held: Cell<usize>,
    /// Rendezvous fetches under way: the worker must progress for them to complete.
    fetches: Cell<usize>,
    /// The bytes those fetches bring (part of `held`).
    fetching_bytes: Cell<usize>,
    /// When `held` last reached the limit, while it still does.
    exhausted_since: Cell<Option<Instant>>,
    /// Notified whenever the budget is exhausted or released, or a fetch starts or ends.
    changed: Notify,
}

impl ReceiveBudget {
    /// A budget without a limit (the default until one is set).
    pub(crate) fn unlimited() -> Rc<ReceiveBudget> {
        Rc::new(ReceiveBudget {
            limit: Cell::new(usize::MAX),
            held: Cell::new(0),
            fetches: Cell::new(0),
            fetching_bytes: Cell::new(0),
            exhausted_since: Cell::new(None),
            changed: Notify::new(),
        })
    }

    /// Sets the limit in bytes (at least 1).
    pub fn set_limit(&self, limit: usize) {
        self.limit.set(limit.max(1));
        self.update();
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit.get()
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Whether `bytes` more fit under the limit.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.held.get().saturating_add(bytes) <= self.limit.get()
    }

    /// True while the bytes held reach the limit.
    pub fn exhausted(&self) -> bool {
        self.held.get() >= self.limit.get()
    }

    /// Whether the worker must stop progressing: the limit is reached and no fetch needs it.
    pub fn paused(&self) -> bool {
        self.exhausted() && self.fetches.get() == 0
    }

    /// Whether `bytes` of eager data arriving now must not be kept: the worker progresses over
    /// the limit only to complete a fetch, and what arrives meanwhile may use an overdraft as
    /// large as the limit, no more.
    /// The bodies being fetched do not count here: one of them alone may be over the limit.
    pub fn refuses(&self, bytes: usize) -> bool {
        let overdraft = self.limit.get();
        let other = self.held.get().saturating_sub(self.fetching_bytes.get());
        self.exhausted()
            && self.fetches.get() > 0
            && other.saturating_add(bytes) > self.limit.get().saturating_add(overdraft)
    }

    /// Counts `bytes` as held until the returned token is dropped.
    pub fn charge(self: &Rc<Self>, bytes: usize) -> Held {
        self.held.set(self.held.get().saturating_add(bytes));
        self.update();
        Held {
            budget: self.clone(),
            bytes,
        }
    }

    /// Marks a rendezvous fetch of `bytes` (charged separately) as under way until the returned
    /// guard is dropped.
    pub fn fetching(self: &Rc<Self>, bytes: usize) -> Fetching {
        self.fetches.set(self.fetches.get() + 1);
        self.fetching_bytes
            .set(self.fetching_bytes.get().saturating_add(bytes));
        self.changed.notify_waiters();
        Fetching {
            budget: self.clone(),
            bytes,
        }
    }

    /// Resolves once the budget has been exhausted without a break for `wait`: nobody took
    /// what the connection holds for that long.
    pub async fn stalled(&self, wait: Duration) {
        loop {
            // created before the check, so a change between the two is not missed
            let changed = self.changed.notified();
            match self.exhausted_since.get() {
                Some(since) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(since + wait) => {
                            if self.exhausted_since.get() == Some(since) {
                                return;
                            }
                        }
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// A future for the next change, created now (so a change before it is polled counts).
    pub(crate) fn next_change(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn release(&self, bytes: usize) {
        self.held.set(self.held.get().saturating_sub(bytes));
        self.update();
    }

    fn update(&self) {
        let exhausted = self.exhausted();
        match (exhausted, self.exhausted_since.get()) {
            (true, None) => {
                self.exhausted_since.set(Some(Instant::now()));
                self.changed.notify_waiters();
            }
            (false, Some(_)) => {
                self.exhausted_since.set(None);
                self.changed.notify_waiters();
            }
            _ => {}
        }
    }
}

/// Bytes counted against a [`ReceiveBudget`]; dropping it gives them back.
#[derive(Debug)]
pub struct Held {
    budget: Rc<ReceiveBudget>,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// A rendezvous fetch under way (see [`ReceiveBudget::fetching`]).
#[derive(Debug)]
pub struct Fetching {
    budget: Rc<ReceiveBudget>,
    bytes: usize,
}

impl Drop for Fetching {
    fn drop(&mut self) {
        let fetches = &self.budget.fetches;
        fetches.set(fetches.get().saturating_sub(1));
        let fetching = &self.budget.fetching_bytes;
        fetching.set(fetching.get().saturating_sub(self.bytes));
        self.budget.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_bytes_pause_until_released_and_fetches_override() {
        let budget = ReceiveBudget::unlimited();
        budget.set_limit(100);
        let a = budget.charge(60);
        assert!(!budget.exhausted() && !budget.paused());
        assert!(budget.has_room(40) && !budget.has_room(41));
        let b = budget.charge(40);
        assert!(budget.exhausted() && budget.paused() && !budget.refuses(1));
        let fetch = budget.fetching(0);
        // fetching over the limit: eager data may use an overdraft as large as the limit
        assert!(!budget.paused() && !budget.refuses(100) && budget.refuses(101));
        let over = budget.charge(100);
        assert!(budget.refuses(1));
        drop(over);
        drop(fetch);
        // a body being fetched does not use the overdraft, however large
        let body = budget.charge(1000);
        let fetch = budget.fetching(1000);
        assert!(!budget.refuses(100) && budget.refuses(101));
        drop((fetch, body));
        assert!(budget.paused());
        drop(a);
        assert_eq!(budget.held(), 40);
        assert!(!budget.exhausted() && !budget.paused());
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn stalled_resolves_only_after_an_unbroken_wait() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let budget = ReceiveBudget::unlimited();
            budget.set_limit(10);
            let wait = Duration::from_millis(300);
            let held = budget.charge(10);
            // released and exhausted again part-way: the wait starts over
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(held);
            let _held = budget.charge(10);
            let started = Instant::now();
            budget.stalled(wait).await;
            let waited = started.elapsed();
            assert!(waited >= wait - Duration::from_millis(5), "{waited:?}");
            assert!(waited < Duration::from_secs(2), "{waited:?}");
        });
    }
}
