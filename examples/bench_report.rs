//! One command for the benchmark report:
//!
//! `cargo run --release --example bench_report [-- --quick] [-- --compare] [-- --no-run]`
//!
//! Runs the criterion benchmarks (`cargo bench --bench core --bench srs`),
//! reads their medians from `target/criterion/`, expresses each as a ratio to
//! a baseline measured in the same run (one ristretto255 scalar
//! multiplication; raw ChaCha20-Poly1305 for bulk encryption), checks the
//! targets, and writes `target/sesphr-bench.json` with the CPU model and
//! crate version. `--compare` also runs the side-by-side comparison with
//! umbral-pre (`cargo run --release -p sesphr-compare`) and includes it;
//! `--quick` shortens every measurement; `--no-run` only reads earlier results.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// (operation, baseline, divisor of the median, target ratio): the ratio is
/// `median / divisor / baseline`; a target is met when the ratio is at most it.
const RATIOS: &[(&str, &str, f64, Option<f64>)] = &[
    ("seal/32B", "baseline/scalar_mul", 1.0, Some(2.5)),
    ("seal_table/32B", "baseline/scalar_mul", 1.0, Some(1.8)),
    ("rekey/generate", "baseline/scalar_mul", 1.0, Some(3.0)),
    ("reencrypt/single", "baseline/scalar_mul", 1.0, Some(2.5)),
    (
        "reencrypt/with_proof",
        "baseline/scalar_mul",
        1.0,
        Some(4.0),
    ),
    ("reencrypt/batch_1", "baseline/scalar_mul", 1.0, None),
    ("reencrypt/batch_16", "baseline/scalar_mul", 16.0, None),
    (
        "reencrypt/batch_256",
        "baseline/scalar_mul",
        256.0,
        Some(1.7),
    ),
    (
        "delegatee_open/first_32B",
        "baseline/scalar_mul",
        1.0,
        Some(4.2),
    ),
    (
        "delegatee_open/cached_32B",
        "baseline/scalar_mul",
        1.0,
        Some(2.6),
    ),
    (
        "delegatee_open/cached_32B_with_proof",
        "baseline/scalar_mul",
        1.0,
        None,
    ),
    ("open_owner/32B", "baseline/scalar_mul", 1.0, None),
    ("decode/header", "baseline/scalar_mul", 1.0, None),
    ("baseline/fixed_base_mul", "baseline/scalar_mul", 1.0, None),
    ("baseline/compress", "baseline/scalar_mul", 1.0, None),
    ("baseline/decompress", "baseline/scalar_mul", 1.0, None),
    (
        "threads/seal_1MiB/1",
        "baseline/chacha20poly1305/1MiB",
        1.0,
        Some(1.1),
    ),
    (
        "threads/seal_1MiB/1",
        "baseline/chacha20poly1305_alloc/1MiB",
        1.0,
        None,
    ),
    ("seal/1MiB", "baseline/chacha20poly1305/1MiB", 1.0, None),
    ("seal/16MiB", "baseline/chacha20poly1305/16MiB", 1.0, None),
    (
        "open_owner/1MiB",
        "baseline/chacha20poly1305/1MiB",
        1.0,
        None,
    ),
    (
        "delegatee_open/cached_1MiB",
        "baseline/chacha20poly1305/1MiB",
        1.0,
        None,
    ),
];

/// (operation, operations per median, target per second).
const THROUGHPUT: &[(&str, f64, Option<f64>)] = &[
    ("srs_reencrypt/memory/single/1", 1.0, None),
    ("srs_reencrypt/memory/single/2", 1.0, Some(28_000.0)),
    ("srs_reencrypt/memory/single/8", 1.0, None),
    ("srs_reencrypt/memory/batch64/2", 64.0, Some(42_000.0)),
    ("srs_reencrypt/sqlite/single/1", 1.0, None),
    ("srs_reencrypt/sqlite/single/2", 1.0, Some(10_000.0)),
    ("srs_reencrypt/sqlite/single/8", 1.0, None),
    ("srs_reencrypt/sqlite/batch64/2", 64.0, Some(10_000.0)),
    ("srs_reencrypt/sqlite-process-crash/single/2", 1.0, None),
    ("srs_reencrypt/sqlite-process-crash/batch64/2", 64.0, None),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let target = PathBuf::from(ROOT).join("target");
    if !has("--no-run") {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["bench", "--bench", "core", "--bench", "srs", "--"])
            .current_dir(ROOT);
        if has("--quick") {
            cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
        }
        assert!(
            cmd.status().expect("running cargo bench").success(),
            "cargo bench failed"
        );
        if has("--compare") {
            let mut cmp = Command::new(env!("CARGO"));
            cmp.args(["run", "--release", "-q", "-p", "sesphr-compare", "--"])
                .current_dir(ROOT);
            if has("--quick") {
                cmp.arg("--quick");
            }
            assert!(
                cmp.status().expect("running sesphr-compare").success(),
                "sesphr-compare failed"
            );
        }
    }

    let medians = read_medians(&target.join("criterion"));
    assert!(
        !medians.is_empty(),
        "no criterion results under target/criterion: run without --no-run"
    );
    let get = |id: &str| medians.get(id).copied();

    let mut operations = Vec::new();
    let mut table = vec![
        "| operation | median | ratio | to | target |".to_owned(),
        "|---|---:|---:|---|---|".to_owned(),
    ];
    for &(id, base, per, tgt) in RATIOS {
        let (Some(m), Some(b)) = (get(id), get(base)) else {
            continue;
        };
        let per_op = m / per;
        let ratio = per_op / b;
        let met = tgt.map(|t| ratio <= t);
        let shown = if per > 1.0 {
            format!("{id} (per capsule)")
        } else {
            id.to_owned()
        };
        table.push(format!(
            "| {shown} | {} | {ratio:.2}× | {} | {} |",
            human(per_op),
            base.trim_start_matches("baseline/"),
            tgt.map_or("—".into(), |t| format!(
                "≤ {t}× {}",
                if ratio <= t { "met" } else { "missed" }
            ))
        ));
        operations.push(
            json!({"id": id, "median_ns": per_op.round(), "per": per, "baseline": base,
                               "ratio": round2(ratio), "target_max_ratio": tgt, "target_met": met}),
        );
    }
    if let (Some(one), Some(two)) = (get("threads/seal_1MiB/1"), get("threads/seal_1MiB/2")) {
        let s = one / two;
        table.push(format!(
            "| seal 1 MiB: 2 threads vs 1 | {} | {s:.2}× faster | 1 thread | ≥ 1.7× {} |",
            human(two),
            if s >= 1.7 { "met" } else { "missed" }
        ));
        operations.push(json!({"id": "threads/seal_1MiB speed-up", "speedup": round2(s), "target_min": 1.7, "target_met": s >= 1.7}));
    }
    if let (Some(one), Some(two)) = (get("threads/open_1MiB/1"), get("threads/open_1MiB/2")) {
        table.push(format!(
            "| open 1 MiB: 2 threads vs 1 | {} | {:.2}× faster | 1 thread | — |",
            human(two),
            one / two
        ));
    }

    let mut throughput = Vec::new();
    table.push(String::new());
    table.push("| SRS re-encryptions | per second | target |".into());
    table.push("|---|---:|---|".into());
    for &(id, per, tgt) in THROUGHPUT {
        let Some(m) = get(id) else { continue };
        let ops = per * 1e9 / m;
        table.push(format!(
            "| {} | {:.0} | {} |",
            id.trim_start_matches("srs_reencrypt/").replace('/', " · ") + " threads",
            ops,
            tgt.map_or("—".into(), |t| format!(
                "≥ {t:.0} {}",
                if ops >= t { "met" } else { "missed" }
            ))
        ));
        throughput.push(json!({"id": id, "per_second": ops.round(), "target_min_per_second": tgt, "target_met": tgt.map(|t| ops >= t)}));
    }

    let mut others = Vec::new();
    table.push(String::new());
    table.push("| other | median |".into());
    table.push("|---|---:|".into());
    for (id, m) in &medians {
        if id.starts_with("srs_admin/")
            || id.starts_with("srs_revoke_vs_records/")
            || id.starts_with("srs_issue_keys/")
        {
            table.push(format!("| {id} | {} |", human(*m)));
            others.push(json!({"id": id, "median_ns": m.round()}));
        }
    }

    // Beside the published SeSPHR figures.
    let paper = [
        ("encrypt 2 MB", "paper_2MB/seal", 1.289),
        ("decrypt 2 MB (owner)", "paper_2MB/open_owner", 0.25),
        (
            "decrypt 2 MB (granted user)",
            "paper_2MB/open_delegatee",
            0.25,
        ),
        ("key issuance, 10 users", "srs_issue_keys/10", 0.6),
        ("key issuance, 10,000 users", "srs_issue_keys/10000", 2.16),
    ];
    let mut paper_json = Vec::new();
    table.push(String::new());
    table.push("| beside the SeSPHR paper | sesphr | paper |".into());
    table.push("|---|---:|---:|".into());
    for (what, id, secs) in paper {
        let Some(m) = get(id) else { continue };
        table.push(format!("| {what} | {} | {secs} s |", human(m)));
        paper_json.push(json!({"what": what, "id": id, "sesphr_s": m / 1e9, "paper_s": secs}));
    }

    let compare = std::fs::read_to_string(target.join("sesphr-compare.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok());

    let report = json!({
        "crate": "sesphr",
        "version": env!("CARGO_PKG_VERSION"),
        "cpu_model": cpu_model(),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "generated_at_unix": sesphr::unix_now(),
        "baselines_ns": {
            "scalar_mul": get("baseline/scalar_mul"),
            "fixed_base_mul": get("baseline/fixed_base_mul"),
            "compress": get("baseline/compress"),
            "decompress": get("baseline/decompress"),
            "chacha20poly1305_1MiB_in_place": get("baseline/chacha20poly1305/1MiB"),
            "chacha20poly1305_1MiB_alloc": get("baseline/chacha20poly1305_alloc/1MiB"),
        },
        "operations": operations,
        "srs_throughput": throughput,
        "srs_other": others,
        "beside_the_paper": paper_json,
        "umbral_comparison": compare,
        "all_medians_ns": medians,
    });
    let path = target.join("sesphr-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("{}", table.join("\n"));
    println!("\nwritten: {}", path.display());
}

/// Every benchmark's median (ns) by its full id, from criterion's output.
fn read_medians(dir: &Path) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    let bench = std::fs::read_to_string(p.join("benchmark.json")).ok();
                    let est = std::fs::read_to_string(p.join("estimates.json")).ok();
                    if let (Some(b), Some(e)) = (bench, est) {
                        let b: Value = serde_json::from_str(&b).unwrap();
                        let e: Value = serde_json::from_str(&e).unwrap();
                        if let (Some(id), Some(m)) = (
                            b["full_id"].as_str(),
                            e["median"]["point_estimate"].as_f64(),
                        ) {
                            out.insert(id.to_owned(), m);
                        }
                    }
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
