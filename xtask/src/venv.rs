//! The Python environment the pyarrow interop tests run their peers in: `<workspace>/.venv-interop`,
//! a plain `python3 -m venv` with a pinned pyarrow.
//!
//! Creating it takes a minute (pyarrow is a large wheel), so it is done once: a stamp file inside
//! the venv records the requirements it was built with, and a later call with the same
//! requirements and a working interpreter returns at once. Changing [`REQUIREMENTS`] rebuilds it.
//!
//! The tests find the interpreter through `POLYFLIGHT_PYTHON` (which `cargo xtask test` sets to
//! the venv's `bin/python`) or, failing that, at `.venv-interop/bin/python`.

use crate::deps;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the interop peers need, pinned so every machine tests against the same Arrow C++.
/// pyarrow bundles gRPC C++. The integration peer also speaks the RPCs pyarrow has no API for
/// (PollFlightInfo) with grpcio, and builds Flight's protobuf messages with grpcio-tools' protoc
/// and the protobuf runtime. The Flight SQL example server is checked against ADBC's Flight SQL
/// driver (Go, packaged as a shared library) through the ADBC driver manager's DB-API.
pub const REQUIREMENTS: &[&str] = &[
    "pyarrow==26.0.1",
    "grpcio==1.85.3",
    "grpcio-tools==1.85.1",
    "protobuf==7.36.2",
    "adbc-driver-manager==1.13.0",
    "adbc-driver-flightsql==1.13.0",
];

/// Directory name of the venv under the workspace root.
pub const VENV_DIR: &str = ".venv-interop";

/// Name of the file inside the venv that records the requirements it was built with.
const STAMP_FILE: &str = "polyflight-requirements.txt";

/// The venv's directory.
pub fn venv_dir() -> PathBuf {
    crate::workspace_root().join(VENV_DIR)
}

/// The venv's interpreter.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The stamp contents for the current requirements (one per line, trailing newline).
fn stamp_contents() -> String {
    let mut contents = REQUIREMENTS.join("\n");
    contents.push('\n');
    contents
}

/// True when `python` runs and can import pyarrow's Flight module.
fn imports_pyarrow_flight(python: &Path) -> bool {
    runs(python, "import pyarrow.flight, grpc, grpc_tools")
}

/// True when `python -c code` runs and succeeds.
fn runs(python: &Path, code: &str) -> bool {
    Command::new(python)
        .args(["-c", code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Why `python3 -m venv` failed.
enum VenvFailure {
    /// No `python3`, or one without the `venv`/`ensurepip` modules (Debian and Ubuntu ship those
    /// in `python3-venv`).
    MissingPackage(String),
    /// Anything else, with the command's output.
    Other(String),
}

/// Runs `python3 -m venv <dir>` in a clean directory.
fn create_venv(venv: &Path) -> Result<std::result::Result<(), VenvFailure>> {
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .with_context(|| format!("removing incomplete {}", venv.display()))?;
    }
    let output = match Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(VenvFailure::MissingPackage(
                "python3 is not installed".into(),
            )))
        }
        Err(err) => return Err(err).context("starting python3"),
    };
    if output.status.success() {
        return Ok(Ok(()));
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Err(
        if text.contains("ensurepip") || text.contains("No module named venv") {
            VenvFailure::MissingPackage(text)
        } else {
            VenvFailure::Other(text)
        },
    ))
}

/// Makes sure `<workspace>/.venv-interop` exists with [`REQUIREMENTS`] installed and returns the
/// path of its interpreter. Quick (one interpreter start) when the venv is already up to date.
pub fn ensure_interop_venv() -> Result<PathBuf> {
    let venv = venv_dir();
    let python = venv_python(&venv);
    let stamp = venv.join(STAMP_FILE);
    let wanted = stamp_contents();

    let stamped = std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted);
    if stamped && imports_pyarrow_flight(&python) {
        return Ok(python);
    }

    // A venv whose interpreter does not run (half made, or its base Python is gone) would make
    // pip fail below with a confusing message: start over.
    if !runs(&python, "pass") {
        eprintln!("xtask: creating {}", venv.display());
        match create_venv(&venv)? {
            Ok(()) => {}
            Err(VenvFailure::Other(output)) => {
                bail!("`python3 -m venv {}` failed:\n{output}", venv.display())
            }
            Err(VenvFailure::MissingPackage(why)) => {
                eprintln!(
                    "xtask: cannot create a venv ({}); installing python3-venv",
                    why.trim()
                );
                deps::ensure_packages(&["python3-venv"])?;
                match create_venv(&venv)? {
                    Ok(()) => {}
                    Err(VenvFailure::MissingPackage(output) | VenvFailure::Other(output)) => {
                        bail!("`python3 -m venv {}` failed:\n{output}", venv.display())
                    }
                }
            }
        }
    }

    eprintln!(
        "xtask: installing {} into {}",
        REQUIREMENTS.join(" "),
        venv.display()
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(REQUIREMENTS)
        .status()
        .with_context(|| format!("starting {}", python.display()))?;
    if !status.success() {
        bail!(
            "`{} -m pip install {}` failed with {status}",
            python.display(),
            REQUIREMENTS.join(" ")
        );
    }
    if !imports_pyarrow_flight(&python) {
        bail!(
            "{} cannot `import pyarrow.flight, grpc, grpc_tools` after installing {}",
            python.display(),
            REQUIREMENTS.join(" ")
        );
    }
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}
