//! CPU accounting: how much processor time a workload cost, in total and split between the
//! client and the server side.
//!
//! - **Process CPU** is `getrusage(RUSAGE_SELF)` user + system time: every thread of the
//!   process, including threads that ended during the workload.
//! - **The split** (Linux) reads each live thread's CPU time from `/proc/self/task/<tid>`
//!   (`schedstat`, nanoseconds; `stat` clock ticks where schedstat is missing) at the start and
//!   the end of the workload and groups threads by name: the benchmark runs the server on a
//!   runtime whose threads are named [`SERVER_THREAD`] and the client on one named
//!   [`CLIENT_THREAD`] (the thread driving the run counts as client). A thread a transport
//!   starts without naming it inherits the name of the thread that started it, so it lands on
//!   the right side. A thread a transport names itself is attributed by a hint in its name
//!   ([`CLIENT_HINTS`], [`SERVER_HINTS`]: UCX's `ucx-client-…` connection threads are the
//!   client's, its `ucx-listener-…` and `ucx-conn-…` threads the server's). Threads that ended
//!   during the workload, and threads named otherwise, make up **other** = process − client −
//!   server, which the report shows so that an incomplete split is visible.
//! - **A server process**: when a row's server runs as a process of its own
//!   ([`watch_server_process`]), its user + system time (`/proc/PID/stat`) over the workload is
//!   the server figure, and the process figure is both processes together.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Thread-name prefix of the server side of a benchmark.
pub const SERVER_THREAD: &str = "pfb-server";
/// Thread-name prefix of the client side of a benchmark.
pub const CLIENT_THREAD: &str = "pfb-client";

/// Name fragments of threads a transport started and named itself that work for the client.
pub const CLIENT_HINTS: &[&str] = &["client"];
/// Name fragments of threads a transport started and named itself that work for the server
/// (checked after [`CLIENT_HINTS`]).
pub const SERVER_HINTS: &[&str] = &["server", "listen", "conn"];

/// Which side of a benchmark a thread works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
    Other,
}

/// The process's user + system CPU time so far (all threads, live or ended).
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass, which is plain data zeroed beforehand.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The calling thread's kernel id.
pub fn current_tid() -> i64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// The server process whose CPU time snapshots include (0: none).
static SERVER_PROCESS: AtomicU32 = AtomicU32::new(0);

/// Makes [`CpuSnapshot`]s include the CPU time of process `pid` as the server side, until the
/// returned guard is dropped. Rows run one at a time, so one process is watched at a time.
pub fn watch_server_process(pid: u32) -> ServerProcessWatch {
    SERVER_PROCESS.store(pid, Ordering::Release);
    ServerProcessWatch(())
}

/// Ends [`watch_server_process`] when dropped.
pub struct ServerProcessWatch(());

impl Drop for ServerProcessWatch {
    fn drop(&mut self) {
        SERVER_PROCESS.store(0, Ordering::Release);
    }
}

/// The user + system CPU time of another process, from `/proc/PID/stat`.
#[cfg(target_os = "linux")]
fn other_process_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text, clock_ticks_per_second())
}

#[cfg(not(target_os = "linux"))]
fn other_process_cpu(_pid: u32) -> Option<Duration> {
    None
}

/// CPU use at one instant: the process total and, where the platform allows, per thread.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    process: Duration,
    /// tid → (side, CPU time); `None` where per-thread times cannot be read.
    threads: Option<HashMap<i64, (Side, Duration)>>,
    /// A watched server process's CPU time.
    server_process: Option<Duration>,
}

impl CpuSnapshot {
    /// Takes a snapshot; `driver` is the thread running the client side's top-level future.
    pub fn take(driver: i64) -> CpuSnapshot {
        let server = SERVER_PROCESS.load(Ordering::Acquire);
        CpuSnapshot {
            process: process_cpu(),
            threads: thread_times(driver),
            server_process: (server != 0).then(|| other_process_cpu(server)).flatten(),
        }
    }

    /// What was used between `self` and the later snapshot `end`.
    pub fn until(&self, end: &CpuSnapshot) -> CpuUsage {
        let usage = self.until_here(end);
        match (self.server_process, end.server_process) {
            (Some(before), Some(after)) => {
                let server = after.saturating_sub(before).as_secs_f64();
                CpuUsage {
                    process_s: usage.process_s + server,
                    server_s: Some(usage.server_s.unwrap_or(0.0) + server),
                    ..usage
                }
            }
            _ => usage,
        }
    }

    /// What this process used between `self` and `end`.
    fn until_here(&self, end: &CpuSnapshot) -> CpuUsage {
        let process_s = end.process.saturating_sub(self.process).as_secs_f64();
        let (client_s, server_s, other_s) = match (&self.threads, &end.threads) {
            (Some(before), Some(after)) => {
                let mut client = 0.0;
                let mut server = 0.0;
                for (tid, (side, time)) in after {
                    let start = before.get(tid).map(|(_, t)| *t).unwrap_or_default();
                    let used = time.saturating_sub(start).as_secs_f64();
                    match side {
                        Side::Client => client += used,
                        Side::Server => server += used,
                        Side::Other => {}
                    }
                }
                // Thread and process clocks are read at slightly different instants and with
                // different granularity; never report a negative remainder.
                let other = (process_s - client - server).max(0.0);
                (Some(client), Some(server), Some(other))
            }
            _ => (None, None, None),
        };
        CpuUsage {
            process_s,
            client_s,
            server_s,
            other_s,
        }
    }
}

/// CPU seconds a workload used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// The whole process (`getrusage(RUSAGE_SELF)`, user + system), plus a watched server
    /// process.
    pub process_s: f64,
    /// Threads of the client side (see the module docs); `None` where not measurable.
    pub client_s: Option<f64>,
    /// Threads of the server side; `None` where not measurable (e.g. an external server).
    pub server_s: Option<f64>,
    /// The rest of the process: threads named otherwise or ended during the workload.
    pub other_s: Option<f64>,
}

impl CpuUsage {
    /// CPU seconds per GB (10^9 bytes) for `bytes` moved, from `seconds` of CPU.
    pub fn per_gb(seconds: f64, bytes: u64) -> f64 {
        if bytes == 0 {
            0.0
        } else {
            seconds / (bytes as f64 / 1e9)
        }
    }

    /// Drops the server figure (an external server's CPU is not ours to see) and moves
    /// whatever the split put there into `other`.
    pub fn without_server(mut self) -> CpuUsage {
        if let (Some(server), Some(other)) = (self.server_s, self.other_s) {
            self.other_s = Some(other + server);
        }
        self.server_s = None;
        self
    }
}

#[cfg(target_os = "linux")]
fn thread_times(driver: i64) -> Option<HashMap<i64, (Side, Duration)>> {
    let ticks = clock_ticks_per_second();
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        // The thread may end between listing and reading: skip it then.
        let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let side = side_of(tid == driver, &name);
        let time = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| parse_schedstat(&s))
            .or_else(|| {
                std::fs::read_to_string(dir.join("stat"))
                    .ok()
                    .and_then(|s| parse_stat(&s, ticks))
            });
        if let Some(time) = time {
            out.insert(tid, (side, time));
        }
    }
    Some(out)
}

/// The side a thread works for, from its name (see the module docs).
fn side_of(is_driver: bool, name: &str) -> Side {
    let name = name.trim();
    if is_driver || name.starts_with(CLIENT_THREAD) {
        Side::Client
    } else if name.starts_with(SERVER_THREAD) {
        Side::Server
    } else if CLIENT_HINTS.iter().any(|h| name.contains(h)) {
        Side::Client
    } else if SERVER_HINTS.iter().any(|h| name.contains(h)) {
        Side::Server
    } else {
        Side::Other
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_times(_driver: i64) -> Option<HashMap<i64, (Side, Duration)>> {
    None
}

#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// The first field of `/proc/.../schedstat`: nanoseconds spent on a CPU.
fn parse_schedstat(text: &str) -> Option<Duration> {
    text.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_nanos)
}

/// utime + stime (fields 14 and 15) of `/proc/.../stat`, in clock ticks. The thread name
/// (field 2, in parentheses) may contain spaces, so fields are counted after its `)`.
fn parse_stat(text: &str, ticks_per_second: u64) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_sided_by_name() {
        assert_eq!(side_of(false, "pfb-server\n"), Side::Server);
        assert_eq!(side_of(false, "pfb-client"), Side::Client);
        assert_eq!(side_of(true, "main"), Side::Client);
        assert_eq!(side_of(false, "ucx-client-127."), Side::Client);
        assert_eq!(side_of(false, "ucx-listener-12"), Side::Server);
        assert_eq!(side_of(false, "ucx-conn-127.0."), Side::Server);
        assert_eq!(side_of(false, "tokio-runtime-w"), Side::Other);
    }

    #[test]
    fn proc_files_parse() {
        assert_eq!(
            parse_schedstat("123456789 42 7\n"),
            Some(Duration::from_nanos(123_456_789))
        );
        assert_eq!(parse_schedstat(""), None);
        let stat = "4242 (pfb server 1) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat("garbage", 100), None);
    }

    /// CPU time of the calling thread.
    fn thread_cpu() -> Duration {
        // SAFETY: clock_gettime writes only the timespec we pass.
        let ts = unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
            ts
        };
        Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.max(0) as u32)
    }

    #[test]
    fn busy_threads_are_attributed_by_name() {
        let before = CpuSnapshot::take(current_tid());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Arc::new(std::sync::Mutex::new(released));
        let (ready, all_ready) = std::sync::mpsc::channel::<()>();
        let spin = |name: &str| {
            let (released, ready) = (released.clone(), ready.clone());
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    // Burn 100 ms of this thread's own CPU, however busy the machine is.
                    let mut x = 0u64;
                    while thread_cpu() < Duration::from_millis(100) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                    let _ = ready.send(());
                    // Stay alive until the second snapshot so the split can see this thread.
                    let _ = released.lock().map(|r| r.recv());
                })
                .unwrap()
        };
        let threads = [spin(SERVER_THREAD), spin(CLIENT_THREAD)];
        all_ready.recv().unwrap();
        all_ready.recv().unwrap();
        let usage = before.until(&CpuSnapshot::take(current_tid()));
        drop(release);
        for t in threads {
            t.join().unwrap();
        }
        assert!(usage.process_s >= 0.19, "{usage:?}");
        if cfg!(target_os = "linux") {
            assert!(usage.server_s.unwrap() >= 0.09, "{usage:?}");
            assert!(usage.client_s.unwrap() >= 0.09, "{usage:?}");
        }
        assert_eq!(CpuUsage::per_gb(2.0, 500_000_000), 4.0);
        let external = usage.without_server();
        assert!(external.server_s.is_none());
    }
}
