//! System prerequisites: the Debian packages that the build needs and that cargo cannot install.
//!
//! The vendored UCX inside `ucx1-sys` is built from source with autotools and bindgen, so a fresh
//! machine needs a C toolchain plus `autoconf automake libtool pkg-config clang libclang-dev`.
//! As root we install them with apt-get; otherwise we stop with the exact command to run.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Packages the UCX source build needs (autotools for `configure`, clang for bindgen).
pub const UCX_BUILD_PACKAGES: &[&str] = &[
    "autoconf",
    "automake",
    "libtool",
    "pkg-config",
    "clang",
    "libclang-dev",
    "make",
];

/// True when the Debian package is installed (`dpkg-query` says "install ok installed").
fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure every package in `packages` is installed, installing the missing ones with apt-get
/// when running as root.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "xtask: not a Debian-like system (no dpkg-query); assuming {} are installed",
            packages.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!(
            "missing system packages: {}\nrun as root:\n  apt-get update && {command}",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let run = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed with {status}", args.join(" "));
        }
        Ok(())
    };
    run(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run(&args)
}

/// Packages only some tests use (`ip netns` for the network-partition test, which skips
/// without them): installed when running as root, never required.
pub const OPTIONAL_TEST_PACKAGES: &[&str] = &["iproute2"];

/// Installs the optional test packages if this is root and they are missing; any failure is
/// only reported.
pub fn offer_test_packages() {
    let missing: Vec<&str> = OPTIONAL_TEST_PACKAGES
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() || !is_root() {
        return;
    }
    if let Err(error) = ensure_packages(&missing) {
        eprintln!("note: could not install {missing:?} ({error:#}); the tests that need them skip");
    }
}

/// Everything the workspace build needs from the system.
pub fn ensure_build_deps() -> Result<()> {
    ensure_packages(UCX_BUILD_PACKAGES)
}
