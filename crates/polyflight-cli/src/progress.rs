//! Progress bars on long transfers (indicatif), on stderr and only when stderr is a terminal and
//! `--quiet` was not given, so pipes, logs and scripts see nothing of them. A bar counts rows or
//! bytes against a total when the total is known (then it shows the rate and an ETA), and is a
//! spinner with counts and rate otherwise.

use crate::output::{bytes, count};
use arrow_array::{Array, RecordBatch};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What a bar measures its progress in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// This many rows in all.
    Rows(u64),
    /// This many bytes in all (of a file being read).
    Bytes(u64),
    /// The size is not known: a spinner.
    Unknown,
}

/// Whether progress bars are drawn: on a terminal, without `--quiet`.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// One transfer's progress.
pub struct Progress {
    bar: ProgressBar,
    total: Total,
    rows: u64,
    bytes: u64,
    started: Instant,
}

impl Progress {
    /// A bar labelled `label` (drawn only when `show`).
    pub fn new(show: bool, label: &str, total: Total) -> Progress {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let (length, template) = match total {
            Total::Rows(n) => (
                Some(n),
                "{prefix} [{bar:30}] {human_pos}/{human_len} rows  {msg}  ETA {eta}",
            ),
            Total::Bytes(n) => (
                Some(n),
                "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes}  \
                 {binary_bytes_per_sec}  {msg}  ETA {eta}",
            ),
            Total::Unknown => (None, "{prefix} {spinner} {msg}  {elapsed}"),
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(length, target)
            .with_style(style)
            .with_prefix(label.to_string());
        if show && total == Total::Unknown {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Progress {
            bar,
            total,
            rows: 0,
            bytes: 0,
            started: Instant::now(),
        }
    }

    /// Counts a batch of `rows` rows and `batch_bytes` bytes transferred; `file_position` is
    /// how far into its file the reader is (for a [`Total::Bytes`] bar).
    pub fn add(&mut self, rows: u64, batch_bytes: u64, file_position: Option<u64>) {
        self.rows += rows;
        self.bytes += batch_bytes;
        if self.bar.is_hidden() {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = format!("{}/s", bytes((self.bytes as f64 / seconds) as u64));
        match self.total {
            Total::Rows(_) => {
                self.bar.set_position(self.rows);
                self.bar
                    .set_message(format!("{}  {rate}", bytes(self.bytes)));
            }
            Total::Bytes(_) => {
                if let Some(position) = file_position {
                    self.bar.set_position(position);
                }
                self.bar.set_message(format!("{} rows", count(self.rows)));
            }
            Total::Unknown => {
                self.bar.set_message(format!(
                    "{} rows  {}  {rate}",
                    count(self.rows),
                    bytes(self.bytes)
                ));
            }
        }
    }

    /// Rows counted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes counted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Time since the bar was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Removes the bar (the verb prints its own summary).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// The bytes of data a batch holds: the lengths of its buffers, children included. Not
/// `get_array_memory_size`, which counts capacities: columns decoded over one received message
/// would each count the whole message.
pub fn batch_bytes(batch: &RecordBatch) -> u64 {
    fn data_bytes(data: &arrow_data::ArrayData) -> u64 {
        let own: usize = data.buffers().iter().map(|b| b.len()).sum();
        let nulls = data.nulls().map(|n| n.buffer().len()).unwrap_or(0);
        let children: u64 = data.child_data().iter().map(data_bytes).sum();
        (own + nulls) as u64 + children
    }
    batch
        .columns()
        .iter()
        .map(|column| data_bytes(&column.to_data()))
        .sum()
}
