//! A rate limit for warnings that peers can provoke (refused input, exhausted limits): at most
//! one a second for each kind, with a count of those left out, so a peer cannot flood the log.
//! The transports log through it; one limit per process, shared by all of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

struct Seen {
    last: Instant,
    left_out: u64,
}

static SEEN: Mutex<Option<HashMap<&'static str, Seen>>> = Mutex::new(None);

/// Whether an event of `kind` may be logged now, and how many were left out since the last one.
pub fn allowed(kind: &'static str) -> Option<u64> {
    let now = Instant::now();
    let mut seen = SEEN.lock().ok()?;
    let seen = seen.get_or_insert_with(HashMap::new);
    match seen.get_mut(kind) {
        Some(entry) if now.duration_since(entry.last) < EVERY => {
            entry.left_out += 1;
            None
        }
        Some(entry) => {
            let left_out = entry.left_out;
            entry.last = now;
            entry.left_out = 0;
            Some(left_out)
        }
        None => {
            seen.insert(
                kind,
                Seen {
                    last: now,
                    left_out: 0,
                },
            );
            Some(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_a_second_per_kind() {
        assert_eq!(allowed("test kind a"), Some(0));
        assert_eq!(allowed("test kind a"), None);
        assert_eq!(allowed("test kind a"), None);
        assert_eq!(allowed("test kind b"), Some(0));
    }
}
