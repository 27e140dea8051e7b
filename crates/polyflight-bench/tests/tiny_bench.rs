//! A tiny benchmark (a few MB per workload) over grpc in process, end to end: the JSON report
//! has every expected row, every workload, and numbers that make sense.

use polyflight_bench::{run, BenchConfig, BenchReport};
use serde_json::Value;

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn a_tiny_bench_over_grpc_reports_every_row() {
    let mut config = BenchConfig::tiny();
    config.transports = vec!["grpc".into()];
    let mut lines = Vec::new();
    let report = run(&config, &polyflight::default_registry(), &mut |line| {
        lines.push(line.to_string())
    })
    .expect("the run completes");
    assert!(lines.iter().any(|l| l.contains("DoGet")), "{lines:?}");

    let json = report.to_json().expect("serialises");
    let back: BenchReport = serde_json::from_str(&json).expect("parses back");
    assert_eq!(back.rows.len(), report.rows.len());
    let value: Value = serde_json::from_str(&json).expect("valid JSON");
    assert!(value["units"]["mb_per_s"]
        .as_str()
        .unwrap()
        .contains("10^6"));
    let rows = value["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "grpc",
            "arrow-flight (grpc)",
            "pyarrow server (grpc)",
            "pyarrow client, pyarrow server",
            "pyarrow client, grpc server",
            "tonic unary echo",
            "raw tcp",
            "raw unix"
        ],
        "{json}"
    );

    // pyarrow's server read by our client, and pyarrow's client against pyarrow's server:
    // measured where a Python with pyarrow is found (`POLYFLIGHT_PYTHON`, set by `cargo xtask
    // test`), else skipped saying why. pyarrow's client against our server needs our server as
    // a process, which this in-process run does not start.
    assert!(
        rows[4]["skipped"]
            .as_str()
            .is_some_and(|why| why.contains("process") || why.contains("pyarrow")),
        "{}",
        rows[4]
    );
    for pyarrow in &rows[2..4] {
        match pyarrow["skipped"].as_str() {
            Some(why) => assert!(why.contains("pyarrow"), "{pyarrow}"),
            None => check_pyarrow_row(pyarrow),
        }
    }

    // The latency floor: a bare tonic unary echo, latency only.
    let echo = &rows[5];

    assert_eq!(echo["errors"].as_array().map(Vec::len), Some(0), "{echo}");
    assert_eq!(
        echo["throughput"].as_array().map(Vec::len),
        Some(0),
        "{echo}"
    );
    let echo_latency = &echo["latency"][0];
    assert_eq!(echo_latency["call"], "Echo");
    assert_eq!(
        echo_latency["calls"].as_u64(),
        Some(u64::from(config.latency_calls))
    );
    assert!(f(&echo_latency["p50_us"]) > 0.0, "{echo}");

    for row in rows.iter().filter(|r| {
        let name = r["name"].as_str().unwrap_or_default();
        name != "tonic unary echo" && !name.starts_with("pyarrow")
    }) {
        let name = row["name"].as_str().unwrap();
        assert!(row["skipped"].is_null(), "{name}: {}", row["skipped"]);
        assert_eq!(
            row["errors"].as_array().unwrap().len(),
            0,
            "{name}: {}",
            row["errors"]
        );
        let throughput = row["throughput"].as_array().unwrap();
        let workloads: Vec<(String, u64)> = throughput
            .iter()
            .map(|t| {
                (
                    t["workload"].as_str().unwrap().to_string(),
                    t["batch_rows"].as_u64().unwrap(),
                )
            })
            .collect();
        for t in throughput {
            let mb_per_s = f(&t["mb_per_s"]);
            let bytes = t["data_bytes"].as_u64().unwrap();
            let seconds = f(&t["seconds"]);
            assert!(mb_per_s > 1.0 && mb_per_s < 1e6, "{name}: {t}");
            assert!(seconds > 0.0 && seconds < 60.0, "{name}: {t}");
            assert!(
                (bytes as f64 / seconds / 1e6 - mb_per_s).abs() < 1e-6 * mb_per_s,
                "{name}: {t}"
            );
            // At least what was asked for (whole batches round it up), and not wildly more.
            let asked = match t["workload"].as_str().unwrap() {
                "DoPut" => config.put_bytes,
                "DoExchange" => config.exchange_bytes,
                _ => config.doget_bytes,
            };
            assert!(bytes >= asked * 9 / 10 && bytes < asked * 2, "{name}: {t}");
            assert!(f(&t["cpu"]["process_s"]) > 0.0, "{name}: {t}");
            assert!(f(&t["cpu_s_per_gb"]["process"]) > 0.0, "{name}: {t}");
            if cfg!(target_os = "linux") {
                assert!(f(&t["cpu"]["client_s"]) >= 0.0, "{name}: {t}");
                assert!(f(&t["cpu"]["server_s"]) >= 0.0, "{name}: {t}");
            }
        }
        match row["kind"].as_str().unwrap() {
            "ceiling" => {
                assert_eq!(
                    workloads,
                    [("Socket".to_string(), 1024), ("Socket".to_string(), 8192)]
                );
            }
            kind => {
                assert!(matches!(kind, "transport" | "reference"), "{kind}");
                assert_eq!(
                    workloads,
                    [
                        ("DoGet".to_string(), 1024),
                        ("DoGet".to_string(), 8192),
                        ("DoPut".to_string(), 8192),
                        ("DoExchange".to_string(), 8192),
                    ],
                    "{name}"
                );
                assert_eq!(row["ceiling"], "raw tcp");
                for t in throughput {
                    assert!(f(&t["vs_grpc"]) > 0.0, "{name}: {t}");
                    if t["workload"] != "DoExchange" {
                        assert!(f(&t["vs_ceiling"]) > 0.0, "{name}: {t}");
                    }
                }
                let calls: Vec<&str> = row["latency"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["call"].as_str().unwrap())
                    .collect();
                assert_eq!(calls, ["GetFlightInfo", "DoAction"], "{name}");
                for l in row["latency"].as_array().unwrap() {
                    assert_eq!(l["calls"].as_u64(), Some(u64::from(config.latency_calls)));
                    let p = [&l["p50_us"], &l["p95_us"], &l["p99_us"], &l["max_us"]].map(f);
                    assert!(p[0] > 0.0 && p.windows(2).all(|w| w[0] <= w[1]), "{l}");
                }
            }
        }
    }
    let grpc = &rows[0]["throughput"][0];
    assert_eq!(f(&grpc["vs_grpc"]), 1.0);

    // Nothing left behind: the ceilings' socket directories are gone.
    let prefix = format!("polyflight-bench-{}-", std::process::id());
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The renderings take the real report.
    let table = polyflight_bench::render_table(&report);
    assert!(table.contains("arrow-flight (grpc)"), "{table}");
    let svg = polyflight_bench::render_svg(&report);
    assert!(svg.contains("</svg>"));
}

/// With the ucx row, the reference rows include raw UCX measured by `ucx_perftest` (built with
/// UCX beside the test binaries), and the ucx row is compared with it.
#[cfg(target_os = "linux")]
#[test]
fn the_ucx_row_has_raw_ucx_ceilings() {
    let mut config = BenchConfig::tiny();
    config.transports = vec!["ucx".into()];
    config.batch_rows = vec![8192];
    let report = run(&config, &polyflight::default_registry(), &mut |_| {}).expect("runs");
    let value: Value = serde_json::from_str(&report.to_json().expect("JSON")).expect("JSON");
    let rows = value["rows"].as_array().expect("rows");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows:#?}"))
    };
    for name in ["raw ucx am", "raw ucx am, peer errors", "raw ucx put"] {
        let raw = row(name);
        assert_eq!(raw["errors"].as_array().map(Vec::len), Some(0), "{raw:#?}");
        if let Some(why) = raw["skipped"].as_str() {
            assert!(why.contains("ucx_perftest"), "{name}: {why}");
            continue;
        }
        let t = &raw["throughput"][0];
        assert_eq!(t["workload"], "Socket", "{t}");
        assert!(f(&t["mb_per_s"]) > 1.0, "{name}: {t}");
    }
    let ucx = row("ucx");
    assert_eq!(ucx["ceiling"], "raw ucx am, peer errors");
    if row("raw ucx am, peer errors")["skipped"].is_null() {
        let doget = &ucx["throughput"][0];
        assert!(f(&doget["vs_ceiling"]) > 0.0, "{doget}");
    }
}

/// A pyarrow row that ran: every DoGet size, DoPut and DoExchange, each with a figure.
fn check_pyarrow_row(row: &Value) {
    assert_eq!(row["errors"].as_array().map(Vec::len), Some(0), "{row}");
    let workloads: Vec<&str> = row["throughput"]
        .as_array()
        .expect("throughput")
        .iter()
        .map(|t| t["workload"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        workloads,
        ["DoGet", "DoGet", "DoPut", "DoExchange"],
        "{row}"
    );
    for t in row["throughput"].as_array().expect("throughput") {
        assert!(f(&t["mb_per_s"]) > 0.0, "{t}");
    }
}
