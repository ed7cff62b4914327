//! Scale measurements of the SRS: memory per patient and per grant, and the
//! cost of opening a SQLite store with long histories and large registries.
//!
//! ```text
//! cargo run --release --example srs_scale -- memory 100000
//! cargo run --release --example srs_scale -- build DB --patients P --entries E
//! cargo run --release --example srs_scale -- open DB
//! cargo run --release --example srs_scale -- snapshot DB
//! cargo run --release --example srs_scale -- build DB --entries E --disclose 3
//! cargo run --release --example srs_scale -- build DB --entries E --disclose 1 --every 99
//! cargo run --release --example srs_scale -- served DB
//! cargo run --release --example srs_scale -- disclosures
//! cargo run --release --example srs_scale -- report
//! ```
//! `disclosures` times one patient's accounting of disclosures (10⁵ of
//! them) in SQLite logs of 10⁶ and 10⁷ entries: the index makes it
//! independent of the log's length.
//! `report` measures memory per patient, grant and user (20,000 patients)
//! and the open time of one database (1,000 patients) as its audit log grows
//! to 10⁴, 10⁵ and 10⁶ entries, on a file under `target/`, runs
//! `disclosures`, times the open of 20,000 patients with and without the
//! registry snapshot, and writes
//! `target/sesphr-bench/scale.json` for the benchmark report's page.
//! `open` prints the time to open, what open verified (and whether it read
//! the registry snapshot), and the process's peak resident memory; time it
//! as a whole process to compare sizes. `snapshot` writes the registry
//! snapshot that the next `open` reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

#[path = "../tests/common/consenting.rs"]
mod consenting;
use consenting::Consenting;

use std::time::Instant;

use sesphr::srs::{Role, Scope, Srs, SrsConfig, SrsError, StorageKey};
use sesphr::store::{Durability, MemoryStore, SqliteStore};
use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, ReKey, RecordId, SealedPortion};

const LABELS: [&str; 6] = [
    "personal",
    "medical",
    "insurance",
    "prescription",
    "lab",
    "imaging",
];
const KEY: [u8; 32] = [1; 32];
const THREADS: usize = 32;

fn usage() -> ! {
    eprintln!(
        "usage: srs_scale memory N | build DB [--patients P] [--entries E] [--disclose N] [--every M] | open DB | snapshot DB | served DB | disclosures | report"
    );
    std::process::exit(2)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Registers patients `from..to` (six portions each) and, for each, a user
/// with a grant on `medical`. Patients' keys come from a fixed master so
/// that the run is reproducible.
fn populate(srs: &Srs, from: usize, to: usize) {
    let labels: Vec<PortionLabel> = LABELS
        .iter()
        .map(|l| PortionLabel::new(*l).unwrap())
        .collect();
    let med = &labels[1];
    for i in from..to {
        let mut master = [0u8; 32];
        master[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let p =
            PatientKeys::from_master(Identity::new(format!("patient-{i:08}")).unwrap(), &master);
        let keys: Vec<_> = labels.iter().map(|l| (l.clone(), 0)).collect();
        srs.add_patient(&p, &keys).unwrap();
        let u = Identity::new(format!("doctor-{i:08}")).unwrap();
        let kp = KeyPair::generate();
        srs.add_user(&u, Role::Doctor, &kp).unwrap();
        let rk = ReKey::generate(&p.portion_secret(med, 0), kp.public());
        srs.give(&p, med, &u, rk, Scope::AllRecords, None).unwrap();
    }
}

fn populate_parallel(srs: &Srs, n: usize) {
    let per = n.div_ceil(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (from, to) = ((t * per).min(n), ((t + 1) * per).min(n));
            s.spawn(move || populate(srs, from, to));
        }
    });
}

/// Bytes per patient (six portions), per grant and per user.
fn memory(n: usize) -> (f64, f64, f64) {
    let srs = Srs::open(SrsConfig::new(
        MemoryStore::new(),
        StorageKey::from_bytes(&KEY),
    ))
    .unwrap();
    populate_parallel(&srs, n);
    let s = srs.registry_size();
    let sizes = (
        s.patients as f64 / s.patient_count as f64,
        s.grants as f64 / s.grant_count as f64,
        s.users as f64 / n as f64,
    );
    println!(
        "patients={} portions={} grants={} users={}",
        s.patient_count, s.portion_count, s.grant_count, n
    );
    println!(
        "bytes/patient (six portions, names, indexes)={:.0}",
        s.patients as f64 / s.patient_count as f64
    );
    println!(
        "bytes/grant (key, terms, index)={:.0}",
        s.grants as f64 / s.grant_count as f64
    );
    println!("bytes/user={:.0}", s.users as f64 / n as f64);
    sizes
}

/// The patient whose disclosures `build --disclose` serves, and the doctor
/// they are served to.
const TARGET: &str = "patient-target";
const TARGET_DOCTOR: &str = "dr-target";

fn build(path: &str, patients: usize, entries: u64, disclose: u64, every: usize) {
    let srs = Srs::open(SrsConfig::new(
        SqliteStore::open_with(path, Durability::ProcessCrash).unwrap(),
        StorageKey::from_bytes(&KEY),
    ))
    .unwrap();
    let t = Instant::now();
    populate_parallel(&srs, patients);
    eprintln!("registered {patients} patients in {:.1?}", t.elapsed());
    // Audit traffic: denied re-encryptions of a well-formed header (the
    // capsule proofs are checked in batches; each request is one entry).
    let p = PatientKeys::from_master(Identity::new("traffic").unwrap(), &[9; 32]);
    let lab = PortionLabel::new("lab").unwrap();
    // Topping up an existing database finds them registered already.
    let again = |r: Result<(), SrsError>| match r {
        Ok(()) | Err(SrsError::AlreadyRegistered) => {}
        Err(e) => panic!("{e}"),
    };
    again(srs.add_patient(&p, &[(lab.clone(), 0)]));
    let who = Identity::new("traffic-user").unwrap();
    again(srs.add_user(&who, Role::Researcher, &KeyPair::generate()));
    let sealed =
        SealedPortion::seal(&p.portion_public(&lab, 0), RecordId::random(), 1, b"x").unwrap();
    // With `--disclose N`: N served re-encryptions of one patient's record
    // for every `every` entries of traffic (256 unless `--every` says; the
    // patient's accounting of disclosures in a long log).
    let every = if every == 0 { 256 } else { every };
    let target = PatientKeys::from_master(Identity::new(TARGET).unwrap(), &[7; 32]);
    let doctor = Identity::new(TARGET_DOCTOR).unwrap();
    let doctor_keys = KeyPair::from_secret_bytes(&[3; 32]).unwrap();
    let served =
        SealedPortion::seal(&target.portion_public(&lab, 0), RecordId::random(), 1, b"y").unwrap();
    if disclose > 0 {
        again(srs.add_patient(&target, &[(lab.clone(), 0)]));
        again(srs.add_user(&doctor, Role::Doctor, &doctor_keys));
        let rekey = ReKey::generate(&target.portion_secret(&lab, 0), doctor_keys.public());
        match srs.give(&target, &lab, &doctor, rekey, Scope::AllRecords, None) {
            Ok(()) | Err(SrsError::Replayed) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let t = Instant::now();
    let have = srs.verify_audit().unwrap();
    let want = entries.saturating_sub(have);
    let per = want.div_ceil(THREADS as u64);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let (srs, who, h) = (&srs, &who, sealed.header());
            let (doctor, th) = (&doctor, served.header());
            s.spawn(move || {
                let batch: Vec<_> = std::iter::repeat_n(h, every).collect();
                let to_target: Vec<_> = std::iter::repeat_n(th, disclose as usize).collect();
                let mut left = per;
                while left > 0 {
                    let k = left.min(every as u64) as usize;
                    srs.reencrypt_batch(who, &batch[..k], sesphr::srs::Purpose::Treatment)
                        .unwrap();
                    if !to_target.is_empty() {
                        for r in srs
                            .reencrypt_batch(doctor, &to_target, sesphr::srs::Purpose::Treatment)
                            .unwrap()
                        {
                            r.unwrap();
                        }
                    }
                    left -= k as u64;
                }
            });
        }
    });
    srs.checkpoint().unwrap();
    eprintln!("wrote {want} audit entries in {:.1?}", t.elapsed());
}

/// The median of three opens of `path`, in seconds.
fn time_open(path: &str) -> f64 {
    time_open_with(path, true)
}

/// [`time_open`], reading the registry snapshot if `snapshot` (and one is
/// kept), else verifying every row.
fn time_open_with(path: &str, snapshot: bool) -> f64 {
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let cfg = SrsConfig::new(
                SqliteStore::open(path).unwrap(),
                StorageKey::from_bytes(&KEY),
            )
            .use_snapshot(snapshot);
            let srs = Srs::open(cfg).unwrap();
            let took = t.elapsed().as_secs_f64();
            assert_eq!(
                matches!(
                    srs.open_report().snapshot,
                    sesphr::srs::SnapshotUse::Used { .. }
                ),
                snapshot
            );
            took
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[1]
}

/// Patients in the restart measurement of `report`.
const RESTART_PATIENTS: usize = 20_000;

/// Opens of one store of [`RESTART_PATIENTS`] patients without and with its
/// registry snapshot, in one run: `(full, snapshot, snapshot bytes)`.
fn restart(dir: &std::path::Path) -> (f64, f64, u64) {
    let db = dir.join("restart.db");
    let db = db.to_str().unwrap();
    build(db, RESTART_PATIENTS, 0, 0, 0);
    let srs = Srs::open_sqlite(db, StorageKey::from_bytes(&KEY)).unwrap();
    let info = srs.write_snapshot().unwrap().unwrap();
    drop(srs);
    let full = time_open_with(db, false);
    let snap = time_open_with(db, true);
    eprintln!("open of {RESTART_PATIENTS} patients: {full:.3} s, with the snapshot {snap:.3} s");
    (full, snap, info.bytes)
}

fn report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let (patient, grant, user) = memory(20_000);
    let dir = tempfile::tempdir_in(&root).unwrap();
    let db = dir.path().join("scale.db");
    let db = db.to_str().unwrap();
    let mut open = Vec::new();
    for entries in [10_000u64, 100_000, 1_000_000] {
        build(db, if open.is_empty() { 1_000 } else { 0 }, entries, 0, 0);
        let secs = time_open(db);
        eprintln!("open at {entries} audit entries: {secs:.3} s");
        open.push(format!("{{\"entries\":{entries},\"seconds\":{secs:.4}}}"));
    }
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir.path())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let disclosed = disclosures();
    let (full, snap, snap_bytes) = restart(dir.path());
    let json = format!(
        "{{\"patients_for_memory\":20000,\"bytes_per_patient\":{patient:.1},\"bytes_per_grant\":{grant:.1},\"bytes_per_user\":{user:.1},\"open_patients\":1000,\"file_system\":\"{fs}\",\"open\":[{}],\"disclosures\":{disclosed},\"restart\":{{\"patients\":{RESTART_PATIENTS},\"full_seconds\":{full:.4},\"snapshot_seconds\":{snap:.4},\"snapshot_bytes\":{snap_bytes}}}}}\n",
        open.join(",")
    );
    let out = root.join("sesphr-bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("scale.json"), json).unwrap();
    println!("written: {}", out.join("scale.json").display());
}

/// Disclosures of the patient under test in every log built below.
const TARGET_DISCLOSURES: u64 = 100_000;

/// A SQLite store holding `entries` served re-encryptions of 1,001 patients,
/// `TARGET_DISCLOSURES` of them of `patient-target`, spread evenly; written
/// through the store API directly (the query under test reads the store's
/// index and the audit rows; no SRS is needed to lay them down fast).
fn build_disclosures(path: &std::path::Path, entries: u64) {
    use sesphr::srs::{AuditAction, AuditEntry, AuditOutcome, Purpose};
    use sesphr::store::{AuditRecord, ChainHead, Commit, Store};
    let store = SqliteStore::open_with(path, Durability::ProcessCrash).unwrap();
    let target = Identity::new("patient-target").unwrap();
    let others: Vec<Identity> = (0..1000)
        .map(|i| Identity::new(format!("patient-{i:04}")).unwrap())
        .collect();
    let users: Vec<Identity> = (0..50)
        .map(|i| Identity::new(format!("doctor-{i:02}")).unwrap())
        .collect();
    let lab = PortionLabel::new("lab").unwrap();
    let every = entries / TARGET_DISCLOSURES;
    let t = Instant::now();
    let mut seq = 0u64;
    while seq < entries {
        let n = (entries - seq).min(50_000);
        let audit: Vec<AuditRecord> = (seq + 1..=seq + n)
            .map(|s| {
                let patient = if s % every == 0 {
                    target.clone()
                } else {
                    others[(s % 1000) as usize].clone()
                };
                let u = users[(s % 50) as usize].clone();
                AuditEntry {
                    seq: s,
                    time: 1_800_000_000 + s / 100,
                    actor: u.as_str().to_owned(),
                    action: AuditAction::ReEncrypt,
                    patient: Some(patient),
                    label: Some(lab.clone()),
                    user: Some(u),
                    record_id: Some(RecordId::from_bytes(
                        s.to_be_bytes().repeat(2).try_into().unwrap(),
                    )),
                    outcome: AuditOutcome::Ok,
                    detail: String::new(),
                    purpose: Some(Purpose::Treatment),
                    emergency: false,
                    evidence: Vec::new(),
                }
            })
            .map(|entry| AuditRecord {
                entry,
                hash: [0; 32],
            })
            .collect();
        seq += n;
        let commit = Commit {
            rows: Vec::new(),
            audit,
            nodes: Vec::new(),
            head: ChainHead {
                seq,
                hash: [0; 32],
                digest: [0; 32],
                base_seq: 0,
                base_hash: [0; 32],
                checkpoints: 0,
                tree: None,
                mac: [0; 32],
            },
            checkpoint: None,
            prune: None,
            scrub: false,
            sync: false,
        };
        store.commit(&mut |_| Ok(Some(commit.clone()))).unwrap();
    }
    eprintln!("laid down {entries} disclosures in {:.1?}", t.elapsed());
}

/// Seconds to stream every disclosure of `patient-target` in pages of 1024
/// (as `Srs::disclosures` does), and to read the first page of a one-hour
/// window in the middle: the median of five runs each.
fn time_disclosures(path: &std::path::Path, entries: u64) -> (f64, f64, u64, u64) {
    use sesphr::store::Store;
    let store = SqliteStore::open(path).unwrap();
    let target = Identity::new("patient-target").unwrap();
    let median = |f: &mut dyn FnMut() -> u64| -> (f64, u64) {
        let mut v: Vec<(f64, u64)> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let n = f();
                (t.elapsed().as_secs_f64(), n)
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[2]
    };
    let (all, n) = median(&mut || {
        let mut after = None;
        let mut n = 0u64;
        loop {
            let page = store
                .disclosures(&target, 0, u64::MAX, after, 1024)
                .unwrap();
            n += page.len() as u64;
            match page.last() {
                Some(r) if page.len() == 1024 => after = Some((r.entry.time, r.entry.seq)),
                _ => break,
            }
        }
        n
    });
    // The log spans entries / 100 seconds; a one-hour window in its middle.
    let (window, w) = median(&mut || {
        let mid = 1_800_000_000 + entries / 200;
        store
            .disclosures(&target, mid, mid + 3600, None, 1024)
            .unwrap()
            .len() as u64
    });
    (all, window, n, w)
}

/// The accounting-of-disclosures benchmark: one patient with 10⁵
/// disclosures in logs of 10⁶ and 10⁷ entries (SQLite on the file system of
/// `target/`). Returns the JSON section.
fn disclosures() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let mut rows = Vec::new();
    for entries in [1_000_000u64, 10_000_000] {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let db = dir.path().join("disclosures.db");
        build_disclosures(&db, entries);
        let (all, window, n, w) = time_disclosures(&db, entries);
        assert_eq!(n, TARGET_DISCLOSURES);
        assert!(w > 0, "the window holds disclosures");
        eprintln!(
            "log of {entries}: all {n} disclosures of one patient in {all:.3} s ({:.2} µs each); the first page ({w}) of a one-hour window in {:.2} ms",
            all * 1e6 / n as f64,
            window * 1e3
        );
        rows.push(format!(
            "{{\"entries\":{entries},\"patient_disclosures\":{n},\"all_seconds\":{all:.4},\"window_page\":{w},\"window_page_seconds\":{window:.6}}}"
        ));
    }
    format!("[{}]", rows.join(","))
}

/// Opens `path` and times the SRS's accounting of disclosures of the
/// patient `build --disclose` served: every disclosure, each checked
/// against the log (proofs included), best of three.
fn served(path: &str) {
    {
        use sesphr::store::Store;
        let store = SqliteStore::open(path).unwrap();
        let target = Identity::new(TARGET).unwrap();
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut after = None;
            loop {
                let page = store
                    .disclosures(&target, 0, u64::MAX, after, 1024)
                    .unwrap();
                match page.last() {
                    Some(r) if page.len() == 1024 => after = Some((r.entry.time, r.entry.seq)),
                    _ => break,
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("listing_only={best:.3}s");
    }
    let t = Instant::now();
    let srs = Srs::open_sqlite(path, StorageKey::from_bytes(&KEY)).unwrap();
    let opened = t.elapsed().as_secs_f64();
    let patient = Identity::new(TARGET).unwrap();
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..3 {
        let t = Instant::now();
        n = srs
            .disclosures(&patient, 0, u64::MAX)
            .map(Result::unwrap)
            .count();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "open={opened:.3}s seq={} disclosures={n} all_disclosures={best:.3}s peak_rss_kib={}",
        srs.open_report().seq,
        peak_rss_kib()
    );
    // The patient's report: every disclosure up to the latest checkpoint
    // with its inclusion proof, signed (once: it is long).
    let t = Instant::now();
    let report = srs.disclosure_report(&patient, 0, u64::MAX).unwrap();
    println!(
        "report={:.3}s proven={} bytes={}",
        t.elapsed().as_secs_f64(),
        report.entries().len(),
        report.to_bytes().len()
    );
}

fn open(path: &str) {
    let t = Instant::now();
    let srs = Srs::open_sqlite(path, StorageKey::from_bytes(&KEY)).unwrap();
    let took = t.elapsed();
    let r = srs.open_report();
    let s = srs.registry_size();
    println!(
        "open={:.3}s seq={} entries_verified={} rows={} patients={} grants={} snapshot={:?} registry_mib={:.1} peak_rss_kib={}",
        took.as_secs_f64(),
        r.seq,
        r.entries_verified,
        r.rows,
        s.patient_count,
        s.grant_count,
        r.snapshot,
        (s.users + s.patients + s.grants) as f64 / (1 << 20) as f64,
        peak_rss_kib()
    );
}

/// Writes the registry snapshot of the store at `path`.
fn snapshot(path: &str) {
    let srs = Srs::open_sqlite(path, StorageKey::from_bytes(&KEY)).unwrap();
    let t = Instant::now();
    let info = srs.write_snapshot().unwrap().unwrap();
    println!(
        "snapshot={:.3}s seq={} parts={} bytes={}",
        t.elapsed().as_secs_f64(),
        info.seq,
        info.parts,
        info.bytes
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(0, |v| v.parse().unwrap_or_else(|_| usage()))
    };
    match args.first().map(String::as_str) {
        Some("memory") => {
            memory(
                args.get(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage()),
            );
        }
        Some("report") => report(),
        Some("build") => build(
            args.get(1).unwrap_or_else(|| usage()),
            flag("--patients") as usize,
            flag("--entries"),
            flag("--disclose"),
            flag("--every") as usize,
        ),
        Some("served") => served(args.get(1).unwrap_or_else(|| usage())),
        Some("open") => open(args.get(1).unwrap_or_else(|| usage())),
        Some("snapshot") => snapshot(args.get(1).unwrap_or_else(|| usage())),
        Some("disclosures") => println!("{}", disclosures()),
        _ => usage(),
    }
}
