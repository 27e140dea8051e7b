//! Dataset paths: descriptors in, validated paths under the root out.
//!
//! A flight is named by a PATH descriptor with one component per directory level, e.g.
//! `["sub", "x.parquet"]` for `ROOT/sub/x.parquet`, or by the CMD descriptor of
//! [`overwrite_descriptor`] (JSON, see the crate docs). Every component is checked before the
//! file system is touched: no empty, `.` or `..` components, none starting with `.` (hidden
//! files, and the temporary files of puts), no `/` or NUL inside one (so no absolute paths).
//! Symbolic links are followed, but a path must still resolve to a place under the root.

use polyflight_core::proto::{flight_descriptor::DescriptorType, FlightDescriptor};
use polyflight_core::{FlightError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The most components a path may have.
pub(crate) const MAX_COMPONENTS: usize = 64;

/// The longest component, in bytes (Linux's `NAME_MAX`).
const MAX_COMPONENT_LEN: usize = 255;

/// The largest CMD descriptor accepted, in bytes.
const MAX_CMD_LEN: usize = 64 * 1024;

/// What kind of file a name is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// The Arrow IPC file format: `.arrow`, `.feather` (Feather v2).
    IpcFile,
    /// The Arrow IPC stream format: `.arrows`.
    IpcStream,
    /// Parquet: `.parquet`.
    Parquet,
}

impl FileFormat {
    /// The format of a file name, from its extension (ASCII case ignored).
    pub(crate) fn of(name: &str) -> Option<FileFormat> {
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "arrow" | "feather" => Some(FileFormat::IpcFile),
            "arrows" => Some(FileFormat::IpcStream),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// A validated path of the dataset: components relative to the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DatasetPath {
    components: Vec<String>,
}

impl DatasetPath {
    /// Checks `components`; INVALID_ARGUMENT naming the problem.
    pub(crate) fn new(components: Vec<String>) -> Result<DatasetPath> {
        if components.is_empty() {
            return Err(FlightError::invalid_argument("the path is empty"));
        }
        if components.len() > MAX_COMPONENTS {
            return Err(FlightError::invalid_argument(format!(
                "the path has {} components; at most {MAX_COMPONENTS} are allowed",
                components.len()
            )));
        }
        for component in &components {
            check_component(component)?;
        }
        Ok(DatasetPath { components })
    }

    /// The components.
    pub(crate) fn components(&self) -> &[String] {
        &self.components
    }

    /// The last component: the file's name.
    pub(crate) fn file_name(&self) -> &str {
        self.components.last().map(String::as_str).unwrap_or("")
    }

    /// The directories above the file.
    pub(crate) fn parents(&self) -> &[String] {
        match self.components.split_last() {
            Some((_, parents)) => parents,
            None => &[],
        }
    }

    /// The format its extension names, or INVALID_ARGUMENT.
    pub(crate) fn format(&self) -> Result<FileFormat> {
        FileFormat::of(self.file_name()).ok_or_else(|| {
            FlightError::invalid_argument(format!(
                "{self}: not a supported file type (.arrow, .feather, .arrows, .parquet)"
            ))
        })
    }

    /// The path under `root`, without resolving links.
    pub(crate) fn under(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        path.extend(&self.components);
        path
    }

    /// The descriptor that names it.
    pub(crate) fn descriptor(&self) -> FlightDescriptor {
        FlightDescriptor::new_path(self.components.iter().cloned())
    }
}

impl std::fmt::Display for DatasetPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

fn check_component(component: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(FlightError::invalid_argument(format!(
            "path component {component:?} {why}"
        )))
    };
    if component.is_empty() {
        return invalid("is empty");
    }
    if component == "." || component == ".." {
        return invalid("is not allowed (no relative steps)");
    }
    if component.starts_with('/') {
        return invalid("is absolute; paths are relative to the dataset root");
    }
    if component.contains('/') {
        return invalid("contains '/'; give one component per directory level");
    }
    if component.contains('\0') {
        return invalid("contains a NUL byte");
    }
    if component.starts_with('.') {
        return invalid("is hidden (starts with '.')");
    }
    if component.len() > MAX_COMPONENT_LEN {
        return invalid("is longer than 255 bytes");
    }
    Ok(())
}

/// The JSON of the CMD descriptor that names a path (see the crate docs).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathCommand {
    path: Vec<String>,
    #[serde(default)]
    overwrite: bool,
}

/// The path a descriptor names, and whether it asks to overwrite.
pub(crate) fn parse_descriptor(descriptor: &FlightDescriptor) -> Result<(DatasetPath, bool)> {
    match DescriptorType::try_from(descriptor.r#type) {
        Ok(DescriptorType::Path) => Ok((DatasetPath::new(descriptor.path.clone())?, false)),
        Ok(DescriptorType::Cmd) => {
            if descriptor.cmd.len() > MAX_CMD_LEN {
                return Err(FlightError::invalid_argument(format!(
                    "CMD descriptor of {} bytes; at most {MAX_CMD_LEN} are accepted",
                    descriptor.cmd.len()
                )));
            }
            let command: PathCommand = serde_json::from_slice(&descriptor.cmd).map_err(|e| {
                FlightError::invalid_argument(format!(
                    "CMD descriptor is not {{\"path\": [...], \"overwrite\": bool}}: {e}"
                ))
            })?;
            Ok((DatasetPath::new(command.path)?, command.overwrite))
        }
        _ => Err(FlightError::invalid_argument(
            "descriptor must be a PATH or a CMD descriptor",
        )),
    }
}

/// The descriptor that asks DoPut to replace an existing file: a CMD descriptor whose command
/// is the JSON `{"path": [...], "overwrite": true}`.
///
/// ```
/// let descriptor = polyflight_dataset::overwrite_descriptor(&["sub", "x.arrow"]);
/// assert_eq!(&descriptor.cmd[..], br#"{"path":["sub","x.arrow"],"overwrite":true}"#);
/// ```
pub fn overwrite_descriptor(path: &[&str]) -> FlightDescriptor {
    let command = PathCommand {
        path: path.iter().map(|c| c.to_string()).collect(),
        overwrite: true,
    };
    // Serializing strings and a bool cannot fail; an empty command would be rejected by DoPut.
    let json = serde_json::to_vec(&command).unwrap_or_default();
    FlightDescriptor::new_cmd(json)
}

/// Resolves an existing file of the dataset (blocking): symbolic links are followed and the
/// result must lie under `root` (canonical). NOT_FOUND when there is no such file.
pub(crate) fn resolve_existing(root: &Path, path: &DatasetPath) -> Result<PathBuf> {
    let joined = path.under(root);
    let resolved = std::fs::canonicalize(&joined).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => FlightError::not_found(format!("no flight {path}")),
        _ => crate::io::io_error(&path.to_string(), "resolving", &err),
    })?;
    if !resolved.starts_with(root) {
        return Err(FlightError::invalid_argument(format!(
            "{path} resolves to a place outside the dataset root"
        )));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyflight_core::FlightCode;

    fn path(components: &[&str]) -> Result<DatasetPath> {
        DatasetPath::new(components.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn components_are_checked() {
        assert!(path(&["a", "b.arrow"]).is_ok());
        for bad in [
            &[][..],
            &[""],
            &["."],
            &[".."],
            &["a", "..", "b"],
            &["/etc", "passwd"],
            &["a/b"],
            &[".hidden"],
            &["a", ".x.arrow.put-1234"],
            &["a\0b"],
        ] {
            let err = path(bad).unwrap_err();
            assert_eq!(err.code(), FlightCode::InvalidArgument, "{bad:?}");
        }
        assert!(path(&[&"x".repeat(256)]).is_err());
        let many: Vec<&str> = std::iter::repeat_n("d", 65).collect();
        assert!(path(&many).is_err());
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(FileFormat::of("x.arrow"), Some(FileFormat::IpcFile));
        assert_eq!(FileFormat::of("x.FEATHER"), Some(FileFormat::IpcFile));
        assert_eq!(FileFormat::of("x.arrows"), Some(FileFormat::IpcStream));
        assert_eq!(FileFormat::of("x.parquet"), Some(FileFormat::Parquet));
        assert_eq!(FileFormat::of("x.csv"), None);
        assert_eq!(FileFormat::of("arrow"), None);
    }

    #[test]
    fn descriptors() {
        let (p, overwrite) =
            parse_descriptor(&FlightDescriptor::new_path(["sub", "x.arrow"])).unwrap();
        assert_eq!(p.to_string(), "sub/x.arrow");
        assert!(!overwrite);
        let (p, overwrite) = parse_descriptor(&overwrite_descriptor(&["x.parquet"])).unwrap();
        assert_eq!(p.components(), ["x.parquet"]);
        assert!(overwrite);
        let (_, overwrite) =
            parse_descriptor(&FlightDescriptor::new_cmd(&br#"{"path":["x.arrow"]}"#[..])).unwrap();
        assert!(!overwrite);
        for bad in [
            &b"not json"[..],
            br#"{"path":["x.arrow"],"overwrit":true}"#,
            br#"{"path":["..","x.arrow"],"overwrite":true}"#,
        ] {
            let err = parse_descriptor(&FlightDescriptor::new_cmd(bad)).unwrap_err();
            assert_eq!(err.code(), FlightCode::InvalidArgument);
        }
    }
}
