//! One command for the benchmark report:
//!
//! `cargo run --release --example bench_report [-- --quick] [-- --compare] [-- --no-run] [-- --check]`
//!
//! Runs the criterion benchmarks (`cargo bench --bench core --bench srs`),
//! reads their medians from `target/criterion/`, expresses each as a ratio to
//! a baseline measured in the same run (one ristretto255 scalar
//! multiplication; raw ChaCha20-Poly1305 for bulk encryption), checks the
//! targets, and writes `target/sesphr-bench.json` with the CPU model and
//! crate version, and `target/sesphr-bench/index.html`, one self-contained
//! page of charts. `--compare` also runs the side-by-side comparison with
//! umbral-pre (`cargo run --release --manifest-path benches/compare/Cargo.toml
//! --target-dir target`, a crate outside the workspace) and includes it;
//! `--quick` shortens every measurement; `--no-run` only reads earlier
//! results; `--check` exits with status 1, naming each missed target, so a
//! runner's CI can gate on it. Every target is a ratio to a baseline of the
//! same run (see `report.rs`). The page also charts the figures of
//! `cargo run --release --example srs_scale -- report` and
//! `cargo run --release --features postgres --example srs_scale_out` when
//! those were run first (`target/sesphr-bench/scale.json`, `scale-out.json`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

mod report;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The target directory this program was built into
/// (`<target>/<profile>/examples/bench_report`): the one `cargo run` used,
/// whether from `target/`, CARGO_TARGET_DIR or a cargo config.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(ROOT).join("target"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let target = target_dir();
    // Criterion writes where cargo builds: the runs below get this very
    // directory, so the results are found whatever CARGO_TARGET_DIR says.
    let criterion = target.join("criterion");
    if let Err(e) = std::fs::create_dir_all(&criterion) {
        eprintln!(
            "bench_report: cannot write criterion results under {}: {e}",
            criterion.display()
        );
        std::process::exit(2);
    }
    if has("--no-run") && report::read_medians(&criterion).is_empty() {
        eprintln!(
            "bench_report --no-run: no criterion results under {}; run it without --no-run \
             (it measures first), with the same CARGO_TARGET_DIR",
            criterion.display()
        );
        std::process::exit(2);
    }
    if !has("--no-run") {
        let suites: Vec<(&str, Vec<&str>)> = {
            let mut v = vec![
                ("core", vec!["bench", "--bench", "core", "--"]),
                ("srs", vec!["bench", "--bench", "srs", "--"]),
            ];
            if has("--compare") {
                v.push((
                    "umbral-pre comparison",
                    vec![
                        "run",
                        "--release",
                        "-q",
                        "--manifest-path",
                        "benches/compare/Cargo.toml",
                        "--target-dir",
                    ],
                ));
            }
            v
        };
        let n = suites.len();
        for (i, (name, cmd_args)) in suites.into_iter().enumerate() {
            eprintln!("[{}/{n}] {name} ({} left after it)", i + 1, n - i - 1);
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(&cmd_args)
                .current_dir(ROOT)
                .env("CARGO_TARGET_DIR", &target);
            if name == "umbral-pre comparison" {
                cmd.arg(&target).arg("--");
            }
            if has("--quick") {
                if name == "umbral-pre comparison" {
                    cmd.arg("--quick");
                } else {
                    cmd.args(["--warm-up-time", "1", "--measurement-time", "2"]);
                }
            }
            assert!(
                cmd.status().expect("running a suite").success(),
                "{name} failed"
            );
        }
    }

    let medians = report::read_medians(&criterion);
    assert!(
        !medians.is_empty(),
        "the benchmarks ran but left no criterion results under {}",
        criterion.display()
    );
    let compare = std::fs::read_to_string(target.join("sesphr-compare.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok());
    let (mut report, table) = report::build(&medians, compare, &report::Machine::here());
    // The scale figures, when their runs wrote them: `srs_scale report`
    // (open time against audit length, bytes per grant) and `srs_scale_out`
    // (processes on PostgreSQL).
    for (key, file) in [("scale", "scale.json"), ("scale_out", "scale-out.json")] {
        if let Some(v) = std::fs::read_to_string(target.join("sesphr-bench").join(file))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        {
            report[key] = v;
        }
    }
    report["scale_targets"] = report::scale_targets(&report);
    let path = target.join("sesphr-bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let page_dir = target.join("sesphr-bench");
    std::fs::create_dir_all(&page_dir).unwrap();
    let page = page_dir.join("index.html");
    std::fs::write(&page, report::html(&report)).unwrap();
    println!("{}", table.join("\n"));
    println!("\nwritten: {}\nwritten: {}", path.display(), page.display());
    if has("--check") {
        let missed = report::missed(&report);
        if !missed.is_empty() {
            eprintln!("missed targets:");
            for m in &missed {
                eprintln!("  {m}");
            }
            std::process::exit(1);
        }
        eprintln!("every target met");
    }
}
