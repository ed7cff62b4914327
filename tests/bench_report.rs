//! The benchmark report on a fixed set of criterion results: every operation
//! reaches the JSON with its ratio to the same run's baseline, and `--check`'s
//! list of missed targets is empty exactly when every target is met.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

#[path = "../examples/bench_report/report.rs"]
mod report;

use std::collections::BTreeMap;

use serde_json::json;

/// Writes criterion's layout (`<id>/new/{benchmark,estimates}.json`) for
/// `medians` under `dir`.
fn fixture(dir: &std::path::Path, medians: &[(&str, f64)]) {
    for (id, m) in medians {
        let d = dir.join(id.replace('/', "_")).join("new");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("benchmark.json"), json!({"full_id": id}).to_string()).unwrap();
        std::fs::write(
            d.join("estimates.json"),
            json!({"median": {"point_estimate": m}}).to_string(),
        )
        .unwrap();
    }
}

/// A run where every target is met, with one scalar multiplication = 25 µs.
fn good() -> Vec<(&'static str, f64)> {
    let s = 25_000.0;
    vec![
        ("baseline/scalar_mul", s),
        ("baseline/chacha20poly1305/1MiB", 800_000.0),
        ("seal/32B", 1.7 * s),
        ("seal_table/32B", 1.2 * s),
        ("rekey/generate", 2.5 * s),
        ("reencrypt/single", 2.0 * s),
        ("reencrypt/with_proof", 3.5 * s),
        ("reencrypt/batch_64", 64.0 * 1.5 * s),
        ("reencrypt/batch_256", 256.0 * 1.45 * s),
        ("delegatee_open/first_32B", 3.4 * s),
        ("delegatee_open/cached_32B", 2.1 * s),
        ("threads/seal_1MiB/1", 1.1 * 800_000.0),
        // The fastest AEAD crate of the run, and sealing/opening at 0.91 and
        // 0.95 of its throughput; two threads 1.82 times one on 16 MiB (1.61
        // on 1 MiB, which has no target).
        ("baseline/aws_lc_chacha20poly1305/1MiB", 800_000.0),
        ("threads/open_1MiB/1", 1.05 * 800_000.0),
        ("threads/seal_1MiB/2", 0.62 * 1.1 * 800_000.0),
        ("threads/open_1MiB/2", 0.62 * 1.05 * 800_000.0),
        ("threads/seal_16MiB/1", 16.0 * 1.1 * 800_000.0),
        ("threads/open_16MiB/1", 16.0 * 1.05 * 800_000.0),
        ("threads/seal_16MiB/2", 0.55 * 16.0 * 1.1 * 800_000.0),
        ("threads/open_16MiB/2", 0.55 * 16.0 * 1.05 * 800_000.0),
        // 2 threads: core time = 2 × median; 1.1× the bare re-encryption.
        ("srs_reencrypt/memory/single/2", 1.1 * 2.0 * s / 2.0),
        ("srs_reencrypt/memory/batch64/2", 64.0 * 1.1 * 1.5 * s / 2.0),
        ("srs_reencrypt/sqlite/single/2", 5.0 * s),
        ("consent/verify_grant", 1.6 * s),
        ("log/inclusion_verify_1e6", 0.1 * s),
        ("log/consistency_1e3_1e6_make_verify", 0.2 * s),
        // 0.15 scalar multiplications beyond the hashes measured alone.
        ("log/srs_inclusion_hashes_1e5", 0.3 * s),
        ("log/srs_inclusion_proof_1e5", 0.45 * s),
        ("threshold/node_check_share", 2.5 * s),
        ("threshold/node_reencrypt", 1.2 * s),
        ("threshold/node_reencrypt_with_proof", 2.7 * s),
        ("threshold/open_2_optimistic_32B", 3.0 * s),
        ("threshold/open_3_one_liar_32B", 1.9 * 3.0 * s),
        ("hybrid/seal_32B", 3.8 * s),
        ("hybrid/reencrypt", 3.5 * s),
        ("hybrid/delegatee_open_cached_32B", 3.7 * s),
    ]
}

fn run(medians: &[(&str, f64)]) -> (serde_json::Value, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), medians);
    let read = report::read_medians(dir.path());
    assert_eq!(read.len(), medians.len(), "every fixture file is read");
    let machine = report::Machine {
        cpu_model: "fixture".into(),
        logical_cpus: 2,
        sqlite_fs: "ext4".into(),
    };
    let (json, _) = report::build(&read, None, &machine);
    let missed = report::missed(&json);
    (json, missed)
}

#[test]
fn every_operation_reaches_the_report_with_its_same_run_ratio() {
    let (json, missed) = run(&good());
    assert!(missed.is_empty(), "{missed:?}");
    let ops = json["operations"].as_array().unwrap();
    let ratio = |id: &str| {
        ops.iter()
            .find(|o| o["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))["ratio"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(ratio("reencrypt/single"), 2.0);
    assert_eq!(ratio("reencrypt/batch_256"), 1.45);
    assert_eq!(ratio("threads/seal_1MiB/1"), 1.1);
    assert_eq!(ratio("threads/open_1MiB/1"), 1.05);
    assert_eq!(ratio("threads/seal_1MiB/2"), 0.62);
    assert_eq!(ratio("threads/seal_16MiB/2"), 0.55);
    assert_eq!(ratio("consent/verify_grant"), 1.6);
    assert_eq!(
        ratio("log/srs_inclusion_proof_1e5 beyond log/srs_inclusion_hashes_1e5"),
        0.15
    );
    let srs = json["srs_throughput"].as_array().unwrap();
    let single = srs
        .iter()
        .find(|o| o["id"] == "srs_reencrypt/memory/single/2")
        .unwrap();
    assert_eq!(single["ratio_to_bare"].as_f64().unwrap(), 1.1);
    assert_eq!(single["ratio_to_scalar_mul"].as_f64().unwrap(), 2.2);
    assert_eq!(
        single["per_second"].as_f64().unwrap(),
        (1e9_f64 / (1.1 * 25_000.0)).round()
    );
    assert_eq!(json["sqlite_file_system"], "ext4");
    // The same figures whatever the machine's speed: a run twice as slow
    // everywhere gives the same ratios and the same verdicts.
    let slow: Vec<(&str, f64)> = good().into_iter().map(|(k, v)| (k, 2.0 * v)).collect();
    let (json2, missed2) = run(&slow);
    assert!(missed2.is_empty(), "{missed2:?}");
    let scaled: Vec<serde_json::Value> = json["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if let Some(m) = o["median_ns"].as_f64() {
                o["median_ns"] = json!((2.0 * m).round());
            }
            o
        })
        .collect();
    assert_eq!(json2["operations"], serde_json::Value::Array(scaled));
}

#[test]
fn check_names_each_missed_target() {
    let mut slow_reencrypt = good();
    for (k, v) in &mut slow_reencrypt {
        if *k == "reencrypt/single" {
            *v = 2.3 * 25_000.0;
        }
        if *k == "srs_reencrypt/memory/batch64/2" {
            *v *= 1.2;
        }
        if *k == "log/srs_inclusion_proof_1e5" {
            *v += 0.1 * 25_000.0;
        }
        if *k == "hybrid/reencrypt" {
            *v = 4.6 * 25_000.0;
        }
    }
    let (_, missed) = run(&slow_reencrypt);
    assert_eq!(missed.len(), 4, "{missed:?}");
    assert!(
        missed.iter().any(|m| m.starts_with("hybrid/reencrypt")),
        "{missed:?}"
    );
    assert!(
        missed
            .iter()
            .any(|m| m.starts_with("log/srs_inclusion_proof_1e5 beyond")),
        "{missed:?}"
    );
    assert!(
        missed.iter().any(|m| m.starts_with("reencrypt/single")),
        "{missed:?}"
    );
    assert!(
        missed
            .iter()
            .any(|m| m.starts_with("srs_reencrypt/memory/batch64/2")),
        "{missed:?}"
    );
    // A target without a measurement is missed too.
    let without: Vec<(&str, f64)> = good()
        .into_iter()
        .filter(|(k, _)| *k != "delegatee_open/cached_32B")
        .collect();
    let (_, missed) = run(&without);
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert!(missed[0].contains("not measured"), "{missed:?}");
    let _ = BTreeMap::<String, f64>::new();
}

/// A minimal XML well-formedness check: every tag closed in order,
/// attributes quoted, no stray `<`.
fn well_formed(doc: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = doc.trim_start_matches("<!DOCTYPE html>");
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').ok_or("unclosed tag")?;
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if tag.contains('<') {
            return Err(format!("'<' inside a tag: {tag}"));
        }
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes: {tag}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_owned();
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn the_page_is_self_contained_well_formed_and_shows_the_json_figures() {
    let (json, _) = run(&good());
    let page = report::html(&json);
    well_formed(&page).unwrap();
    assert!(page.matches("<svg").count() >= 2, "no charts");
    for forbidden in ["src=", "href=", "url(", "<script", "<link", "@import"] {
        assert!(!page.contains(forbidden), "{forbidden} in the page");
    }
    // The only URIs are XML namespace names, which are never fetched.
    for (i, _) in page.match_indices("http") {
        let before = &page[i.saturating_sub(7)..i];
        assert!(
            before.contains("xmlns"),
            "an address in the page: {}",
            &page[i..i + 30]
        );
    }
    // Every ratio of the JSON is drawn (as its bar's label) and tabled.
    for o in json["operations"].as_array().unwrap() {
        if let Some(r) = o["ratio"].as_f64() {
            let shown = format!("{r:.2}");
            assert!(page.matches(&shown).count() >= 2, "{} {shown}", o["id"]);
        }
    }
    for o in json["srs_throughput"].as_array().unwrap() {
        if let Some(r) = o["ratio_to_bare"].as_f64() {
            assert!(page.contains(&format!("{r:.2}")), "{}", o["id"]);
        }
    }
    // The scale figures, when present, are charted and tabled with the JSON's
    // numbers; without them the page says how to add them.
    assert!(page.contains("srs_scale -- report"));
    let mut json = json;
    json["scale"] = json!({
        "bytes_per_patient": 385.5, "bytes_per_grant": 175.25, "bytes_per_user": 138.0,
        "open": [{"entries": 10000, "seconds": 0.0331}, {"entries": 1000000, "seconds": 0.0324}]
    });
    json["scale_out"] = json!({"rows": [
        {"store": "postgres", "processes": 2, "batch": 256, "per_second": 40576.0,
         "cpu_per_reencryption_over_scalar_mul": 1.62, "lock_held_us": 5276.0},
        {"store": "sqlite", "processes": 1, "batch": 64, "per_second": 40464.0,
         "cpu_per_reencryption_over_scalar_mul": 1.75, "lock_held_us": null}
    ]});
    let page = report::html(&json);
    well_formed(&page).unwrap();
    for shown in [
        "385.50", "175.25", "33.10", "32.40", "40.58", "40.46", "1.62", "1.75",
    ] {
        assert!(
            page.matches(shown).count() >= 2,
            "{shown} not charted and tabled"
        );
    }
    assert!(page.contains("postgres ×2 batch 256"));
    assert!(!page.contains("srs_scale -- report</code> and"));
    // A scale target missed is named by --check.
    json["scale"]["open"][1]["seconds"] = json!(0.0662);
    json["scale_targets"] = report::scale_targets(&json);
    let missed = report::missed(&json);
    assert!(
        missed
            .iter()
            .any(|m| m.starts_with("open time, longest ÷ shortest")),
        "{missed:?}"
    );
    // A page with a missed target says so.
    let mut slow = good();
    slow[5].1 *= 1.5; // reencrypt/single
    let (json, _) = run(&slow);
    assert!(report::html(&json).contains("missed — reencrypt/single"));
}
