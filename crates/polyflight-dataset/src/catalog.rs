//! The catalog: which files the dataset has, what each holds, and how it splits into endpoints.
//!
//! [`list`] walks the root for the files the service serves. [`FileIndex`] is what a file's
//! metadata says (schema, batches or row groups and their sizes), read once per version of the
//! file and kept in an [`IndexCache`] keyed by the canonical path and the file's
//! [`FileVersion`], so GetFlightInfo followed by the DoGets of its endpoints reads the metadata
//! once. [`parts`] groups batches or row groups into the parts that become endpoints.

use crate::ipc::IpcIndex;
use crate::parquet::ParquetIndex;
use crate::paths::{DatasetPath, FileFormat};
use crate::ticket::FileVersion;
use arrow_schema::SchemaRef;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The most file indexes kept.
const CACHE_ENTRIES: usize = 1024;

/// What a file's metadata says.
#[derive(Debug)]
pub(crate) enum FileIndex {
    Ipc(IpcIndex),
    Parquet(ParquetIndex),
}

/// One part of a file: the batches or row groups `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub start: usize,
    pub end: usize,
}

impl FileIndex {
    /// The flight's schema.
    pub(crate) fn schema(&self) -> &SchemaRef {
        match self {
            FileIndex::Ipc(index) => index.schema(),
            FileIndex::Parquet(index) => index.schema(),
        }
    }

    /// Rows and bytes of each unit (record batch or row group).
    fn units(&self) -> Vec<(u64, u64)> {
        match self {
            FileIndex::Ipc(index) => index.batch_sizes(),
            FileIndex::Parquet(index) => index.row_group_sizes(),
        }
    }

    /// Rows in the whole file.
    pub(crate) fn total_rows(&self) -> u64 {
        self.units().iter().map(|(rows, _)| rows).sum()
    }

    /// The file's parts, the endpoints of its FlightInfo: an IPC stream is one part; IPC
    /// batches are grouped until a part reaches `endpoint_rows` rows when set, else
    /// `endpoint_bytes` bytes; Parquet row groups are one part each, or grouped by
    /// `endpoint_rows` when set. A file with no batches still has one (empty) part, which
    /// carries the schema.
    pub(crate) fn parts(&self, endpoint_rows: Option<u64>, endpoint_bytes: u64) -> Vec<Part> {
        let units = self.units();
        match self {
            FileIndex::Ipc(index) if index.is_stream() => vec![Part {
                start: 0,
                end: units.len(),
            }],
            FileIndex::Ipc(_) => match endpoint_rows {
                Some(rows) => parts(&units, |r, _| r >= rows),
                None => parts(&units, |_, b| b >= endpoint_bytes),
            },
            FileIndex::Parquet(_) => match endpoint_rows {
                Some(rows) => parts(&units, |r, _| r >= rows),
                None => parts(&units, |_, _| true),
            },
        }
    }

    /// Checks a part named by a ticket: INVALID_ARGUMENT unless it is one this file has.
    pub(crate) fn check_part(
        &self,
        path: &DatasetPath,
        start: usize,
        end: usize,
    ) -> Result<(), polyflight_core::FlightError> {
        let count = match self {
            FileIndex::Ipc(index) => index.batch_count(),
            FileIndex::Parquet(index) => index.row_group_sizes().len(),
        };
        let whole_only = matches!(self, FileIndex::Ipc(index) if index.is_stream());
        let valid = start <= end && end <= count && (!whole_only || (start == 0 && end == count));
        if valid {
            Ok(())
        } else {
            Err(polyflight_core::FlightError::invalid_argument(format!(
                "the ticket names part {start}..{end} of {path}, which has {count} batches or \
                 row groups"
            )))
        }
    }
}

/// Groups `units` (rows, bytes) in order, closing a part once `full(rows, bytes)` holds for it.
fn parts(units: &[(u64, u64)], full: impl Fn(u64, u64) -> bool) -> Vec<Part> {
    let mut parts = Vec::new();
    let (mut start, mut rows, mut bytes) = (0, 0u64, 0u64);
    for (i, (unit_rows, unit_bytes)) in units.iter().enumerate() {
        rows = rows.saturating_add(*unit_rows);
        bytes = bytes.saturating_add(*unit_bytes);
        if full(rows, bytes) {
            parts.push(Part { start, end: i + 1 });
            (start, rows, bytes) = (i + 1, 0, 0);
        }
    }
    if start < units.len() || parts.is_empty() {
        parts.push(Part {
            start,
            end: units.len(),
        });
    }
    parts
}

/// File indexes by canonical path, each valid for one version of its file.
#[derive(Default)]
pub(crate) struct IndexCache {
    entries: Mutex<HashMap<PathBuf, (FileVersion, Arc<FileIndex>)>>,
}

impl IndexCache {
    /// The index of this version of the file, if cached.
    pub(crate) fn get(&self, path: &Path, version: FileVersion) -> Option<Arc<FileIndex>> {
        let entries = self.entries.lock().ok()?;
        match entries.get(path) {
            Some((cached, index)) if *cached == version => Some(Arc::clone(index)),
            _ => None,
        }
    }

    /// Keeps an index (replacing that of an older version).
    pub(crate) fn insert(&self, path: PathBuf, version: FileVersion, index: Arc<FileIndex>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_ENTRIES && !entries.contains_key(&path) {
                // Forget an arbitrary half; the cache only saves re-reading metadata.
                let drop: Vec<PathBuf> = entries.keys().step_by(2).cloned().collect();
                for key in drop {
                    entries.remove(&key);
                }
            }
            entries.insert(path, (version, index));
        }
    }
}

/// The files the dataset serves, depth first in name order (blocking): regular files with a
/// known extension, and symbolic links to such files under the root. Hidden names (`.`…),
/// including the temporary files of puts, are skipped, and so are names that are not UTF-8.
/// Symbolic links to directories are not followed (no cycles, no escapes).
pub(crate) fn list(root: &Path) -> Vec<DatasetPath> {
    let mut found = Vec::new();
    walk(root, root, &mut Vec::new(), &mut found);
    found
}

fn walk(root: &Path, dir: &Path, prefix: &mut Vec<String>, found: &mut Vec<DatasetPath>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot list a dataset directory");
            return;
        }
    };
    let mut entries: Vec<(String, std::fs::DirEntry)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            (!name.starts_with('.')).then_some((name, entry))
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in entries {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            if prefix.len() + 1 < crate::paths::MAX_COMPONENTS {
                prefix.push(name);
                walk(root, &path, prefix, found);
                prefix.pop();
            }
            continue;
        }
        if FileFormat::of(&name).is_none() {
            continue;
        }
        let serves = file_type.is_file()
            || (file_type.is_symlink()
                && std::fs::canonicalize(&path)
                    .is_ok_and(|target| target.starts_with(root) && target.is_file()));
        if !serves {
            continue;
        }
        let mut components = prefix.clone();
        components.push(name);
        if let Ok(path) = DatasetPath::new(components) {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        let units = [(10, 100), (10, 100), (10, 100), (5, 50)];
        let spans = |parts: Vec<Part>| -> Vec<(usize, usize)> {
            parts.iter().map(|p| (p.start, p.end)).collect()
        };
        assert_eq!(spans(parts(&units, |r, _| r >= 20)), [(0, 2), (2, 4)]);
        assert_eq!(spans(parts(&units, |_, b| b >= 1000)), [(0, 4)]);
        assert_eq!(
            spans(parts(&units, |_, _| true)),
            [(0, 1), (1, 2), (2, 3), (3, 4)]
        );
        assert_eq!(spans(parts(&[], |_, _| true)), [(0, 0)]);
    }
}
