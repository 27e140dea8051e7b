//! Tickets: which part of which file, of which version of it.
//!
//! Tickets are opaque to clients; inside they are JSON:
//! `{"v":1,"path":["sub","x.arrow"],"part":[2,5],"version":{"len":…,"mtime_ns":…,"ino":…}}`.
//! `part` is a range of record batches (IPC files) or row groups (Parquet); IPC streams have
//! one part, `[0,0]`. `version` identifies the file the FlightInfo described, so a file replaced
//! since then fails the DoGet (NOT_FOUND, asking for a new FlightInfo) instead of mixing parts of
//! two files. A ticket comes back from a client, so DoGet checks all of it again: its size, its
//! path (as strictly as a descriptor's) and its range against the file.

use crate::paths::DatasetPath;
use polyflight_core::{FlightError, Result};
use serde::{Deserialize, Serialize};

/// The largest ticket accepted, in bytes.
const MAX_TICKET_LEN: usize = 64 * 1024;

/// Identifies one version of a file: length, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct FileVersion {
    pub len: u64,
    pub mtime_ns: u64,
    pub ino: u64,
}

impl FileVersion {
    /// The version of a file with this metadata.
    pub(crate) fn of(metadata: &std::fs::Metadata) -> FileVersion {
        use std::os::unix::fs::MetadataExt;
        let mtime_ns = (metadata.mtime() as i128 * 1_000_000_000 + metadata.mtime_nsec() as i128)
            .clamp(0, u64::MAX as i128) as u64;
        FileVersion {
            len: metadata.len(),
            mtime_ns,
            ino: metadata.ino(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketJson {
    v: u32,
    path: Vec<String>,
    part: [u64; 2],
    version: FileVersion,
}

/// A decoded ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatasetTicket {
    pub path: DatasetPath,
    /// The part: `start..end` of the file's batches or row groups.
    pub start: usize,
    pub end: usize,
    pub version: FileVersion,
}

impl DatasetTicket {
    /// The ticket's bytes.
    pub(crate) fn encode(&self) -> bytes::Bytes {
        let json = TicketJson {
            v: 1,
            path: self.path.components().to_vec(),
            part: [self.start as u64, self.end as u64],
            version: self.version,
        };
        // Strings and integers always serialize.
        bytes::Bytes::from(serde_json::to_vec(&json).unwrap_or_default())
    }

    /// Reads a ticket from a client: INVALID_ARGUMENT when it is not one of ours.
    pub(crate) fn decode(bytes: &[u8]) -> Result<DatasetTicket> {
        if bytes.len() > MAX_TICKET_LEN {
            return Err(FlightError::invalid_argument(format!(
                "ticket of {} bytes is not one of this service's tickets",
                bytes.len()
            )));
        }
        let json: TicketJson = serde_json::from_slice(bytes).map_err(|e| {
            FlightError::invalid_argument(format!("not a ticket of this service: {e}"))
        })?;
        if json.v != 1 {
            return Err(FlightError::invalid_argument(format!(
                "ticket version {} is not supported",
                json.v
            )));
        }
        let [start, end] = json.part;
        if start > end {
            return Err(FlightError::invalid_argument(format!(
                "ticket names the empty part {start}..{end}"
            )));
        }
        let index = |n: u64| {
            usize::try_from(n)
                .map_err(|_| FlightError::invalid_argument(format!("ticket part {n} is too large")))
        };
        Ok(DatasetTicket {
            path: DatasetPath::new(json.path)?,
            start: index(start)?,
            end: index(end)?,
            version: json.version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let ticket = DatasetTicket {
            path: DatasetPath::new(vec!["a".into(), "b.arrow".into()]).unwrap(),
            start: 2,
            end: 5,
            version: FileVersion {
                len: 10,
                mtime_ns: 20,
                ino: 30,
            },
        };
        assert_eq!(DatasetTicket::decode(&ticket.encode()).unwrap(), ticket);
        let v = r#""version":{"len":1,"mtime_ns":1,"ino":1}"#;
        for bad in [
            String::from("garbage"),
            format!(r#"{{"v":2,"path":["a.arrow"],"part":[0,1],{v}}}"#),
            format!(r#"{{"v":1,"path":["..","a.arrow"],"part":[0,1],{v}}}"#),
            format!(r#"{{"v":1,"path":["a.arrow"],"part":[3,1],{v}}}"#),
            r#"{"v":1,"path":["a.arrow"],"part":[0,1]}"#.to_string(),
            format!(r#"{{"v":1,"path":["a.arrow"],"part":[0,-1],{v}}}"#),
        ] {
            assert!(DatasetTicket::decode(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(DatasetTicket::decode(&vec![b' '; MAX_TICKET_LEN + 1]).is_err());
    }
}
