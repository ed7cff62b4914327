//! Replays the fuzz targets' committed corpus (`fuzz/corpus/TARGET/`) and
//! their seeds through the same checks libFuzzer runs (`fuzz/src/lib.rs`),
//! on stable: CI exercises every input the fuzzers kept without nightly.
//!
//! `SESPHR_WRITE_SEEDS=1 cargo test --test fuzz_corpus` (re)writes the seed
//! files (`seed-*`) from the vectors and the fixture.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../fuzz/src/lib.rs"]
#[allow(unsafe_code)]
mod fuzz;

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every input; collects the ones whose check panicked.
fn replay(target: &str, inputs: Vec<(String, Vec<u8>)>) -> Vec<String> {
    let check = fuzz::target(target).unwrap();
    let mut failed = Vec::new();
    for (name, data) in inputs {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(format!("{target}/{name}"));
        }
    }
    failed
}

#[test]
fn every_target_has_a_source_file_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<String> = std::fs::read_dir(root.join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = fuzz::TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(files, names, "fuzz/fuzz_targets/ and TARGETS differ");
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for n in &names {
        assert!(
            toml.contains(&format!("name = \"{n}\"")),
            "{n} missing in fuzz/Cargo.toml"
        );
        assert!(
            std::fs::read_dir(corpus_dir(n)).is_ok_and(|mut d| d.next().is_some()),
            "fuzz/corpus/{n} is empty or missing"
        );
    }
}

#[test]
fn seeds_pass_every_check() {
    let write = std::env::var_os("SESPHR_WRITE_SEEDS").is_some();
    let mut failed = Vec::new();
    let mut per_target = std::collections::BTreeMap::<&str, usize>::new();
    for (target, data) in fuzz::seeds() {
        let i = per_target.entry(target).or_default();
        *i += 1;
        if write {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i}")), &data).unwrap();
        }
        failed.extend(replay(target, vec![(format!("seed {i}"), data)]));
    }
    assert!(failed.is_empty(), "seeds failing their check: {failed:?}");
    // Every target has seeds.
    for (t, _) in fuzz::TARGETS {
        assert!(per_target.contains_key(t), "no seed for {t}");
    }
}

#[test]
fn the_committed_corpus_passes_every_check() {
    let mut failed = Vec::new();
    let mut total = 0;
    for (target, _) in fuzz::TARGETS {
        let Ok(dir) = std::fs::read_dir(corpus_dir(target)) else {
            continue;
        };
        let mut inputs: Vec<(String, Vec<u8>)> = dir
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        inputs.sort();
        total += inputs.len();
        failed.extend(replay(target, inputs));
    }
    assert!(total > 0, "no corpus found under fuzz/corpus");
    assert!(
        failed.is_empty(),
        "corpus inputs failing their check: {failed:?}"
    );
}

/// The checks can fail: a wrong plaintext, a forged grant, an altered row
/// accepted would each be caught (here: the property helpers themselves).
#[test]
fn the_edit_helper_changes_what_it_says() {
    let orig = [1u8, 2, 3, 4];
    assert_eq!(fuzz::mutate(&orig, &[]), orig);
    assert_eq!(fuzz::mutate(&orig, &[1, 0, 0, 0xf0]), [1, 0xf3, 3, 4]);
    assert_eq!(fuzz::mutate(&orig, &[0, 0, 1, 9]), [9, 1, 2, 3, 4]);
    assert_eq!(fuzz::mutate(&orig, &[3, 0, 2, 0]), [1, 2, 3]);
    assert_eq!(fuzz::mutate(&orig, &[2, 0, 3, 0]), [1, 2]);
}
