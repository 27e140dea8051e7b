//! Helpers for tests that run the package's examples as separate processes.

use std::path::PathBuf;
use std::process::Child;

/// `target/<profile>/examples/NAME`, built by a whole `cargo test` run.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: a whole `cargo test` builds the examples (or `cargo build --examples`)",
        path.display()
    );
    path
}

/// Kills the child when dropped (a failing test leaves nothing running).
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
