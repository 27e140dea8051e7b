//! pyarrow as the other implementation of the matrix: `python/pyarrow_peer.py` plays every
//! scenario and the JSON round trip with pyarrow.flight (Arrow C++ underneath), with the
//! command lines of our binaries, so the matrix runs polyflight against an implementation it
//! did not write, in both directions.
//!
//! Three things pyarrow cannot do shape what runs:
//! - it has no Flight SQL API (no server base, no client), so it plays neither side of the
//!   Flight SQL scenarios: they are skipped with that reason ([`flight_sql_limits`]), on both
//!   sides of every pair with pyarrow, and run polyflight against polyflight only;
//! - it cannot read Arrow's integration JSON, so each data set also gets an Arrow IPC file
//!   beside it ([`write_ipc_twin`]), made from the JSON file by `arrow-integration-test`'s
//!   reader: the JSON stays the source of truth and the pyarrow client reads its IPC copy;
//! - its servers send batches with per-batch app metadata only through `GeneratorStream`,
//!   which writes no dictionary batches, so the round trip's DoGet of a data set with
//!   dictionaries cannot be served by pyarrow. Those cases are skipped with that reason
//!   ([`server_limits`]); the other direction (polyflight serving, pyarrow reading) covers them.

use crate::failure::{ArrowContext, Failure, Outcome};
use crate::json_flight::read_json_file;
use crate::matrix::{Case, Implementation, Program, Transport};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The interpreter to use, as the pyarrow interop tests take it (`cargo xtask test` sets it to
/// the interop venv's).
pub const PYTHON_ENV: &str = "POLYFLIGHT_PYTHON";

/// The transports pyarrow speaks (it has no UCX).
pub const TRANSPORTS: [Transport; 3] = [Transport::Grpc, Transport::GrpcTls, Transport::GrpcUnix];

/// What pyarrow is asked to import before it is used.
const IMPORTS: &str =
    "import pyarrow, pyarrow.flight, grpc, grpc_tools; print(pyarrow.__version__)";

/// The peer script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("pyarrow_peer.py")
}

/// The workspace's interop venv interpreter, `$POLYFLIGHT_PYTHON` if set.
pub fn default_python() -> PathBuf {
    match std::env::var_os(PYTHON_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join(".venv-interop")
            .join("bin")
            .join("python"),
    }
}

/// Checks that `python` imports what the peer needs; returns pyarrow's version.
pub fn probe(python: &Path) -> Result<String, String> {
    let output = Command::new(python)
        .args(["-c", IMPORTS])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "{} cannot import pyarrow.flight, grpc and grpc_tools: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// pyarrow's server and client, run by `python`.
pub fn implementation(python: &Path) -> Implementation {
    let program = |role: &str| Program {
        path: python.to_path_buf(),
        args: vec![script().display().to_string(), role.to_string()],
        // Keeps `__pycache__` out of the source tree.
        env: vec![("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string())],
    };
    Implementation {
        name: "pyarrow",
        server: program("server"),
        client: program("client"),
        transports: &TRANSPORTS,
        server_limits,
        client_limits: flight_sql_limits,
    }
}

/// The Flight SQL scenarios, which pyarrow plays on neither side: pyarrow exposes no Flight SQL
/// API (Arrow C++'s `FlightSqlServerBase` and `FlightSqlClient` are not in its wheels).
pub fn flight_sql_limits(case: &Case) -> Option<String> {
    match case {
        Case::Scenario(name) if name.starts_with("flight_sql") => Some(
            "pyarrow has no Flight SQL API (no FlightSqlServerBase, no FlightSqlClient); \
             covered by polyflight × polyflight over every transport"
                .to_string(),
        ),
        _ => None,
    }
}

/// The cases a pyarrow server cannot serve: the Flight SQL scenarios
/// ([`flight_sql_limits`]), and the round trip of data sets with dictionaries.
pub fn server_limits(case: &Case) -> Option<String> {
    if let Some(why) = flight_sql_limits(case) {
        return Some(why);
    }
    let Case::Json(path) = case else { return None };
    match json_has_dictionaries(path) {
        Ok(false) => None,
        Ok(true) => Some(
            "pyarrow's GeneratorStream, its only DoGet stream with per-batch app_metadata, sends \
             no dictionary batches; covered by the pyarrow client against a polyflight server"
                .to_string(),
        ),
        // Let the case run and fail with the client's own words about the file.
        Err(_) => None,
    }
}

/// Whether the schema of an integration JSON file has a dictionary-encoded field, at any depth.
pub fn json_has_dictionaries(path: &Path) -> Outcome<bool> {
    let text = std::fs::read_to_string(path).map_err(|source| Failure::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Check(format!("{}: not JSON: {e}", path.display())))?;
    fn walk(fields: &serde_json::Value) -> bool {
        fields.as_array().is_some_and(|fields| {
            fields
                .iter()
                .any(|f| f.get("dictionary").is_some() || f.get("children").is_some_and(walk))
        })
    }
    Ok(walk(&value["schema"]["fields"]))
}

/// Where the IPC copy of an integration JSON file goes: `NAME.arrow_file` beside `NAME.json`.
pub fn ipc_twin_path(json: &Path) -> PathBuf {
    json.with_extension("arrow_file")
}

/// Writes the data of the integration JSON file at `json` as an Arrow IPC file beside it (see
/// [`ipc_twin_path`]), reading the JSON with `arrow-integration-test`, and returns its path.
pub fn write_ipc_twin(json: &Path) -> Outcome<PathBuf> {
    let data = read_json_file(json)?;
    let path = ipc_twin_path(json);
    let file = std::fs::File::create(&path).map_err(|source| Failure::Io {
        context: format!("creating {}", path.display()),
        source,
    })?;
    let context = format!("writing {}", path.display());
    let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &data.schema).arrow(&context)?;
    for batch in &data.batches {
        writer.write(batch).arrow(&context)?;
    }
    writer.finish().arrow(&context)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_are_found_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::datagen::write_all(dir.path()).unwrap();
        let with: Vec<String> = paths
            .iter()
            .filter(|p| json_has_dictionaries(p).unwrap())
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        for name in [
            "generated_dictionary",
            "generated_dictionary_unsigned",
            "generated_nested_dictionary",
        ] {
            assert!(with.iter().any(|n| n == name), "{name} not in {with:?}");
        }
        assert!(!with.iter().any(|n| n.contains("primitive")), "{with:?}");
    }

    #[test]
    fn every_data_set_has_an_ipc_copy_equal_to_its_json() {
        let dir = tempfile::tempdir().unwrap();
        for json in crate::datagen::write_all(dir.path()).unwrap() {
            let twin = write_ipc_twin(&json).unwrap();
            let expected = read_json_file(&json).unwrap();
            let file = std::fs::File::open(&twin).unwrap();
            let reader = arrow_ipc::reader::FileReader::try_new(file, None).unwrap();
            assert_eq!(*reader.schema(), *expected.schema, "{}", json.display());
            let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
            assert_eq!(batches, expected.batches, "{}", json.display());
        }
    }
}
