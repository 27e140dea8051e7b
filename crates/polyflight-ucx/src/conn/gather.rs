//! When to gather a body into one buffer before sending it.
//!
//! A body normally goes out scatter-gather, straight from the Arrow buffers. But UCX 1.12 sends
//! scatter-gather data by rendezvous only as active-message fragments (its zero-copy rendezvous
//! takes contiguous data only): 8 KiB pieces copied into shared memory and out again, each a
//! hand-over between the two processes' threads. A contiguous body goes by the endpoint's
//! single-copy lane instead, where it has one (CMA: the receiver reads the body with one
//! `process_vm_readv`). Gathering costs the sender one copy. Measured between processes on two
//! vCPUs (docs/ucx.md): with four streams it lifted DoGet of 64 KiB, 256 KiB and 16 MiB batches
//! 1.5–1.8× (1 and 4 MiB level) and DoPut of 16 MiB batches 2.2×; with one stream it lost a
//! quarter to two fifths at 1–16 MiB, because the fragments' copies pipeline through cache-hot
//! pieces on two threads while a gathered body crosses memory twice. So a body is gathered only while more connections of
//! the process are sending large bodies than half its CPUs: when the threads handing fragments
//! over are more than the cores. `POLYFLIGHT_UCX_GATHER=always|never` overrides the choice.

use bytes::{Bytes, BytesMut};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::ucp::{busy_threads_allowed, Endpoint};

/// Bodies smaller than this always go scatter-gather (the smallest size measured; below ~8 KiB
/// UCX copies bodies eagerly anyway).
pub(super) const MIN_BODY: usize = 64 * 1024;

/// What `POLYFLIGHT_UCX_GATHER` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Auto,
    Always,
    Never,
}

fn policy() -> Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    *POLICY.get_or_init(|| {
        match std::env::var("POLYFLIGHT_UCX_GATHER")
            .map(|value| value.trim().to_ascii_lowercase())
            .as_deref()
        {
            Ok("always") => Policy::Always,
            Ok("never") => Policy::Never,
            _ => Policy::Auto,
        }
    })
}

/// Whether a body of `size` bytes in `pieces` pieces should be gathered before it is sent on a
/// connection whose endpoint has (`single_copy`) a single-copy rendezvous lane.
pub(super) fn worthwhile(pieces: usize, size: usize, single_copy: impl FnOnce() -> bool) -> bool {
    if pieces < 2 || size < MIN_BODY {
        return false;
    }
    match policy() {
        Policy::Never => false,
        Policy::Always => single_copy(),
        Policy::Auto => contended() && single_copy(),
    }
}

/// The body's pieces copied into one buffer.
pub(super) fn contiguous(pieces: &[Bytes], size: usize) -> Bytes {
    #[cfg(test)]
    GATHERED.fetch_add(1, Ordering::Relaxed);
    let mut body = BytesMut::with_capacity(size);
    for piece in pieces {
        body.extend_from_slice(piece);
    }
    body.freeze()
}

/// Connections of this process with a large body in flight.
static SENDERS: AtomicUsize = AtomicUsize::new(0);

/// Bodies gathered so far (tests).
#[cfg(test)]
static GATHERED: AtomicUsize = AtomicUsize::new(0);

/// Bodies gathered so far in this process.
#[cfg(test)]
pub(super) fn gathered() -> usize {
    GATHERED.load(Ordering::Relaxed)
}

/// Counts `n` more senders until the guard drops, as if other connections were sending.
#[cfg(test)]
pub(super) fn pretend_senders(n: usize) -> impl Drop {
    struct Pretend(usize);
    impl Drop for Pretend {
        fn drop(&mut self) {
            SENDERS.fetch_sub(self.0, Ordering::Relaxed);
        }
    }
    SENDERS.fetch_add(n, Ordering::Relaxed);
    Pretend(n)
}

/// True while more connections are sending large bodies than half the CPUs (at least one).
fn contended() -> bool {
    SENDERS.load(Ordering::Relaxed) > busy_threads_allowed()
}

/// A connection's large sends in flight; the connection counts among [`SENDERS`] while it has
/// any.
#[derive(Default)]
pub(super) struct Sending {
    in_flight: Cell<usize>,
}

impl Sending {
    /// Counts one send until the returned guard drops.
    pub(super) fn start(self: &std::rc::Rc<Self>) -> InFlight {
        let before = self.in_flight.get();
        self.in_flight.set(before + 1);
        if before == 0 {
            SENDERS.fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            sending: self.clone(),
        }
    }
}

/// One large send in flight.
pub(super) struct InFlight {
    sending: std::rc::Rc<Sending>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let left = self.sending.in_flight.get().saturating_sub(1);
        self.sending.in_flight.set(left);
        if left == 0 {
            SENDERS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Whether an endpoint has a single-copy rendezvous lane (CMA, KNEM or XPMEM), read from UCX's
/// description of the endpoint once its lanes are settled (the peer has been heard from; until
/// then the answer is no, and nothing is cached).
#[derive(Default)]
pub(super) struct SingleCopy {
    settled: Cell<bool>,
    known: Cell<Option<bool>>,
}

impl SingleCopy {
    /// The endpoint's lanes are final from now on.
    pub(super) fn settled(&self) {
        self.settled.set(true);
    }

    pub(super) fn get(&self, endpoint: &Endpoint) -> bool {
        if let Some(known) = self.known.get() {
            return known;
        }
        if !self.settled.get() {
            return false;
        }
        let found = endpoint
            .describe()
            .is_some_and(|description| has_single_copy_lane(&description));
        self.known.set(Some(found));
        found
    }
}

/// Whether a `ucp_ep_print_info` description lists a rendezvous (`rma_bw`) lane on a
/// single-copy shared memory transport.
fn has_single_copy_lane(description: &str) -> bool {
    description.lines().any(|line| {
        line.contains("rma_bw#")
            && ["cma/", "knem/", "xpmem/"]
                .iter()
                .any(|transport| line.contains(transport))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_copy_lanes_are_read_from_the_endpoint_description() {
        let posix = "#   lane[1]:  0:posix/memory.0 md[0]  -> md[0]/posix/sysdev[255] am am_bw#0\n";
        let cma = "#   lane[2]:  2:cma/memory.0 md[2]    -> md[2]/cma/sysdev[255] rma_bw#0\n";
        let summary = "#    rma_bw: mds [2] rndv_rkey_size 9\n";
        let with_cma = format!("#\n#   lane[0]: cm tcp\n{posix}{cma}{summary}");
        let without = format!("{posix}#    rma_bw: mds rndv_rkey_size 9\n");
        let tcp = "#   lane[1]:  1:tcp/lo.0 md[1]  -> md[1]/tcp/sysdev[255] am am_bw#0 rma_bw#0\n";
        assert!(has_single_copy_lane(&with_cma));
        assert!(!has_single_copy_lane(&without));
        assert!(!has_single_copy_lane(tcp));
    }

    #[test]
    fn small_or_single_piece_bodies_are_never_gathered() {
        assert!(!worthwhile(1, 16 << 20, || true));
        assert!(!worthwhile(4, MIN_BODY - 1, || true));
        assert!(!worthwhile(4, 128 << 10, || false));
    }
}
