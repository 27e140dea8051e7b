//! `polyflight bench` (the transport benchmark of `polyflight-bench`: every registered transport
//! side by side with arrow-flight and raw-socket ceilings, or one external server with
//! `--target`) and `polyflight report` (a saved report redrawn).

use crate::args::{BenchArgs, Kind, ReportArgs, WorkloadChoice};
use anyhow::{Context, Result};
use polyflight_bench::{BenchConfig, DataKind, TargetConfig, Workloads};
use std::path::Path;

impl From<Kind> for DataKind {
    fn from(kind: Kind) -> DataKind {
        match kind {
            Kind::Int64 => DataKind::Int64,
            Kind::Mixed => DataKind::Mixed,
            Kind::Nested => DataKind::Nested,
        }
    }
}

pub fn bench_config(args: &BenchArgs) -> BenchConfig {
    let mut config = if args.full {
        BenchConfig::full()
    } else {
        BenchConfig::quick()
    };
    config.transports = args.transports.clone();
    config.references = !args.no_references;
    config.bridge = args.bridge.clone();
    if let Some(streams) = args.streams {
        config.streams = streams;
    }
    if !args.batch_rows.is_empty() {
        config.batch_rows = args.batch_rows.clone();
    }
    if let Some(kind) = args.kind {
        config.kind = kind.into();
    }
    if let Some(columns) = args.columns {
        config.columns = columns;
    }
    let mb = |v: u64| v.saturating_mul(1_000_000);
    if let Some(v) = args.doget_mb {
        config.doget_bytes = mb(v);
    }
    if let Some(v) = args.put_mb {
        config.put_bytes = mb(v);
    }
    if let Some(v) = args.exchange_mb {
        config.exchange_bytes = mb(v);
    }
    if let Some(v) = args.latency_calls {
        config.latency_calls = v;
    }
    if !args.workloads.is_empty() {
        let has = |w| args.workloads.contains(&w);
        config.workloads = Workloads {
            doget: has(WorkloadChoice::Doget),
            doput: has(WorkloadChoice::Doput),
            doexchange: has(WorkloadChoice::Doexchange),
            latency: has(WorkloadChoice::Latency),
        };
    }
    config.warmup = !args.no_warmup;
    config.decode = !args.count_only;
    if let Some(v) = args.server_threads {
        config.server_threads = v;
    }
    if let Some(v) = args.client_threads {
        config.client_threads = v;
    }
    config.target = args.target.as_ref().map(|uri| TargetConfig {
        uri: uri.clone(),
        ticket: args.ticket.clone(),
        put_path: args.put_path.clone(),
    });
    config
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let config = bench_config(&args);
    let registry = polyflight::default_registry();
    // Each transport's server runs as `polyflight serve --service perf` in a process of its own
    // (this executable), as users run it, unless --in-process asks for one process.
    let servers = if args.in_process {
        None
    } else {
        Some(polyflight_bench::ServeCommand::current_exe()?)
    };
    let mut report =
        polyflight_bench::run_with_servers(&config, &registry, servers.as_ref(), &mut |line| {
            eprintln!("{line}")
        })?;
    report.command = Some(std::env::args().collect::<Vec<_>>().join(" "));
    print!("{}", polyflight_bench::render_table(&report));
    if let Some(path) = &args.json {
        write_file(path, &report.to_json().context("serialising the report")?)?;
        eprintln!("report written to {}", path.display());
    }
    write_file(&args.svg, &polyflight_bench::render_svg(&report))?;
    eprintln!("chart written to {}", args.svg.display());
    eprintln!("total {:.1} s", report.total_seconds);
    Ok(())
}

pub fn report(args: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.json)
        .with_context(|| format!("reading {}", args.json.display()))?;
    let report = polyflight_bench::BenchReport::from_json(&text)
        .with_context(|| format!("{} is not a benchmark report", args.json.display()))?;
    print!("{}", polyflight_bench::render_table(&report));
    if let Some(path) = &args.svg {
        write_file(path, &polyflight_bench::render_svg(&report))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;
    use std::path::PathBuf;

    /// `cargo xtask bench` passes its own `--json`/`--svg` first; the user's, later, win.
    #[test]
    fn later_options_win_and_presets_apply() {
        let cli = Cli::try_parse_from([
            "polyflight",
            "bench",
            "--svg",
            "target/a.svg",
            "--full",
            "--svg",
            "b.svg",
            "--batch-rows",
            "1024,2048",
            "--transports",
            "grpc,grpc+unix",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(args.svg, PathBuf::from("b.svg"));
        let config = bench_config(&args);
        assert_eq!(config.preset, "full");
        assert_eq!(config.batch_rows, vec![1024, 2048]);
        assert_eq!(config.transports, vec!["grpc", "grpc+unix"]);
        assert_eq!(config.doget_bytes, BenchConfig::full().doget_bytes);
        assert!(config.target.is_none());
    }
}
