//! What a benchmark run does: which rows, how much data, how many streams. Two presets:
//! [`BenchConfig::quick`] (the default of `polyflight bench` and `cargo xtask bench`, about a
//! minute for every transport on a 2-core machine) and [`BenchConfig::full`] (≥ 1 GB per DoGet
//! row, for figures worth publishing).

use crate::command::{DataKind, DataSpec, DEFAULT_COLUMNS};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An external server to measure (`--target`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// Its URI.
    pub uri: String,
    /// For a server without the perf protocol: a ticket to DoGet (its bytes as UTF-8).
    pub ticket: Option<String>,
    /// For a server without the perf protocol: a path to DoPut the benchmark's data to.
    pub put_path: Option<String>,
}

/// Which workloads a run measures (all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workloads {
    /// DoGet at every batch size.
    pub doget: bool,
    /// DoPut at the largest.
    pub doput: bool,
    /// DoExchange at the largest.
    pub doexchange: bool,
    /// Small-call round trips (GetFlightInfo, DoAction).
    pub latency: bool,
}

impl Default for Workloads {
    fn default() -> Self {
        Workloads {
            doget: true,
            doput: true,
            doexchange: true,
            latency: true,
        }
    }
}

impl Workloads {
    /// From names (`doget`, `doput`, `doexchange`, `latency`); an unknown name is an error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Workloads, String> {
        let mut chosen = Workloads {
            doget: false,
            doput: false,
            doexchange: false,
            latency: false,
        };
        for name in names {
            match name.as_ref().to_ascii_lowercase().as_str() {
                "doget" => chosen.doget = true,
                "doput" => chosen.doput = true,
                "doexchange" => chosen.doexchange = true,
                "latency" => chosen.latency = true,
                other => {
                    return Err(format!(
                        "unknown workload {other:?} (doget, doput, doexchange, latency)"
                    ))
                }
            }
        }
        Ok(chosen)
    }
}

/// The configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// The preset it started from (`quick`, `full`).
    pub preset: String,
    /// Transports to run, by scheme (`grpc`, `grpc+unix` …); empty: every registered one.
    pub transports: Vec<String>,
    /// Run the reference rows: arrow-flight over TCP and the raw TCP and Unix ceilings.
    pub references: bool,
    /// Transports (by scheme) to serve arrow-flight's perf service on through polyflight's
    /// tonic bridge (`polyflight_tonic::ArrowFlightAdapter`), read by polyflight's client; empty:
    /// no such rows.
    #[serde(default)]
    pub bridge: Vec<String>,
    /// Concurrent streams of each throughput workload.
    pub streams: u32,
    /// Rows per batch: DoGet runs at each; DoPut and DoExchange at the largest.
    pub batch_rows: Vec<u32>,
    /// What the columns hold.
    #[serde(serialize_with = "kind_out", deserialize_with = "kind_in")]
    pub kind: DataKind,
    /// How many columns.
    pub columns: u32,
    /// Data bytes per DoGet measurement (all streams together), per batch size.
    pub doget_bytes: u64,
    /// Data bytes per DoPut measurement.
    pub put_bytes: u64,
    /// Data bytes each way per DoExchange measurement.
    pub exchange_bytes: u64,
    /// Round trips measured per call type.
    pub latency_calls: u32,
    /// Warm each row up before measuring.
    pub warmup: bool,
    /// Decode batches on the client (and, for DoPut, on the server) instead of only counting
    /// bytes.
    pub decode: bool,
    /// Whether each transport's server ran as a process of its own (set by
    /// [`run_with_servers`](crate::runner::run_with_servers)); the reference rows and the bridge
    /// rows always run in the benchmark's process.
    #[serde(default)]
    pub server_processes: bool,
    /// Worker threads of the server runtime (in-process rows).
    pub server_threads: usize,
    /// Worker threads of the client runtime.
    pub client_threads: usize,
    /// Measure this server instead of the local rows.
    pub target: Option<TargetConfig>,
    /// Which workloads to measure.
    #[serde(default)]
    pub workloads: Workloads,
}

fn kind_out<S: Serializer>(kind: &DataKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn kind_in<'de, D: Deserializer<'de>>(d: D) -> Result<DataKind, D::Error> {
    let name = String::deserialize(d)?;
    DataKind::parse(&name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown data kind {name:?}")))
}

const MB: u64 = 1_000_000;

impl BenchConfig {
    /// About a minute for every transport on a 2-core machine: two batch sizes, 800 MB per
    /// DoGet, 800 MB DoPut, 400 MB DoExchange, 1000 round trips per call type.
    pub fn quick() -> BenchConfig {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        BenchConfig {
            preset: "quick".into(),
            transports: Vec::new(),
            references: true,
            bridge: Vec::new(),
            streams: 4,
            batch_rows: vec![4096, 32768],
            kind: DataKind::Int64,
            columns: DEFAULT_COLUMNS,
            doget_bytes: 800 * MB,
            put_bytes: 800 * MB,
            exchange_bytes: 400 * MB,
            latency_calls: 1000,
            warmup: true,
            decode: true,
            server_processes: false,
            server_threads: threads,
            client_threads: threads,
            target: None,
            workloads: Workloads::default(),
        }
    }

    /// Figures worth publishing: three batch sizes, 1 GB per DoGet (a row lasts seconds even
    /// on fast transports), 1 GB DoPut, 500 MB DoExchange, 5000 round trips per call type.
    pub fn full() -> BenchConfig {
        BenchConfig {
            preset: "full".into(),
            batch_rows: vec![1024, 8192, 32768],
            doget_bytes: 1000 * MB,
            put_bytes: 1000 * MB,
            exchange_bytes: 500 * MB,
            latency_calls: 5000,
            ..BenchConfig::quick()
        }
    }

    /// A few megabytes: for tests and smoke runs.
    pub fn tiny() -> BenchConfig {
        BenchConfig {
            preset: "tiny".into(),
            streams: 2,
            batch_rows: vec![1024, 8192],
            doget_bytes: 4 * MB,
            put_bytes: 4 * MB,
            exchange_bytes: 2 * MB,
            latency_calls: 50,
            ..BenchConfig::quick()
        }
    }

    /// The column layout.
    pub fn spec(&self) -> DataSpec {
        DataSpec {
            kind: self.kind,
            columns: self.columns,
        }
    }

    /// The batch size DoPut and DoExchange run at: the largest of `batch_rows`.
    pub fn put_batch_rows(&self) -> u32 {
        self.batch_rows.iter().copied().max().unwrap_or(32768)
    }

    /// Checks the numbers make sense, saying which does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.streams == 0 {
            return Err("streams must be at least 1".into());
        }
        if self.batch_rows.is_empty() || self.batch_rows.contains(&0) {
            return Err("batch sizes must be given and at least 1 row".into());
        }
        if self.columns == 0 {
            return Err("columns must be at least 1".into());
        }
        if self.server_threads == 0 || self.client_threads == 0 {
            return Err("runtimes need at least one worker thread".into());
        }
        let command = crate::command::PerfCommand::new(
            self.spec(),
            i32::try_from(self.streams).map_err(|_| "too many streams")?,
            1,
            i32::try_from(self.put_batch_rows()).map_err(|_| "batch too large")?,
        );
        command.validate().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_serialise() {
        for config in [
            BenchConfig::quick(),
            BenchConfig::full(),
            BenchConfig::tiny(),
        ] {
            config.validate().unwrap();
            let json = serde_json::to_string(&config).unwrap();
            assert!(json.contains("\"kind\":\"int64\""), "{json}");
            let back: BenchConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(back, config);
        }
        let mut bad = BenchConfig::quick();
        bad.streams = 0;
        assert!(bad.validate().is_err());
        bad = BenchConfig::quick();
        bad.columns = 5000;
        bad.batch_rows = vec![1 << 20];
        assert!(bad.validate().is_err());
    }
}
