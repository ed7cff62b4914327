//! Registry snapshots: an open that reads the sealed snapshot plus the rows
//! written since gives exactly the registry a full verification gives, and
//! a snapshot that is edited, cut, reordered, stale, ahead of the store or
//! from another database is never trusted: it is ignored (every row is then
//! verified) or, with the rows since, still yields the authenticated
//! registry — and `open_report()` says which.
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use common::Consenting;
use common::*;
use sesphr::srs::*;
use sesphr::store::SqliteStore;
use sesphr::*;
use std::path::{Path, PathBuf};

const KEY: [u8; 32] = [5; 32];

fn config(path: &Path) -> SrsConfig {
    SrsConfig::new(
        SqliteStore::open(path).unwrap(),
        StorageKey::from_bytes(&KEY),
    )
}

fn open(path: &Path) -> Srs {
    Srs::open(config(path)).unwrap()
}

/// The registry as a full verification of every row gives it.
fn verified(path: &Path) -> RegistryView {
    let srs = Srs::open(config(path).use_snapshot(false)).unwrap();
    assert_eq!(srs.open_report().snapshot, SnapshotUse::None);
    srs.registry()
}

/// Opens `path`, which must use the snapshot of checkpoint `seq` and give
/// the registry `want`; returns the SRS and how many rows it read since.
fn opened_from_snapshot(path: &Path, seq: u64, want: &RegistryView) -> (Srs, u64) {
    let srs = open(path);
    let SnapshotUse::Used {
        seq: used,
        rows_since,
    } = srs.open_report().snapshot
    else {
        panic!("{:?}", srs.open_report());
    };
    assert_eq!(used, seq);
    assert_eq!(&srs.registry(), want);
    (srs, rows_since)
}

fn parts(path: &Path) -> Vec<Vec<u8>> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut q = c
        .prepare("SELECT data FROM snapshot ORDER BY part")
        .unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn set_parts(path: &Path, parts: &[Vec<u8>]) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute("DELETE FROM snapshot", []).unwrap();
    for (i, p) in parts.iter().enumerate() {
        c.execute(
            "INSERT INTO snapshot (part, data) VALUES (?1, ?2)",
            rusqlite::params![i as i64, p],
        )
        .unwrap();
    }
}

fn doctor(i: u32) -> Identity {
    Identity::new(format!("doctor-{i}")).unwrap()
}

fn keys_of(i: u32) -> KeyPair {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    KeyPair::from_secret_bytes(&seed).unwrap()
}

fn patient_n(i: u32) -> PatientKeys {
    let mut master = [3u8; 32];
    master[..4].copy_from_slice(&i.to_be_bytes());
    PatientKeys::from_master(Identity::new(format!("patient-{i}")).unwrap(), &master)
}

/// Patients `from..to`, each with two portions, a doctor and a grant on
/// `medical` (every third one scoped, every fifth one expiring).
fn populate(srs: &Srs, from: u32, to: u32) {
    let (med, lab) = (label("medical"), label("lab"));
    for i in from..to {
        let p = patient_n(i);
        srs.add_patient(&p, &[(med.clone(), 0), (lab.clone(), 0)])
            .unwrap();
        srs.add_user(&doctor(i), Role::Doctor, &keys_of(i)).unwrap();
        let rk = ReKey::generate(&p.portion_secret(&med, 0), keys_of(i).public());
        let scope = if i % 3 == 0 {
            Scope::Since(T0)
        } else {
            Scope::AllRecords
        };
        let expiry = (i % 5 == 0).then_some(4_000_000_000);
        srs.give(&p, &med, &doctor(i), rk, scope, expiry).unwrap();
    }
}

fn record(i: u32) -> SealedPortion {
    SealedPortion::seal(
        &patient_n(i).portion_public(&label("medical"), 0),
        RecordId::from_bytes([i as u8; 16]),
        T0 + 10,
        b"HbA1c 5.4%",
    )
    .unwrap()
}

fn served(srs: &Srs, i: u32) -> bool {
    srs.reencrypt(&doctor(i), record(i).header(), Purpose::Treatment)
        .is_ok()
}

/// A store of 150 patients (several parts), with a revoked grant, a removed
/// user, an access request and disclosures, and its snapshot.
fn store() -> (tempfile::TempDir, PathBuf, SnapshotInfo) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let srs = open(&path);
    populate(&srs, 0, 150);
    srs.take(&patient_n(1), &label("medical"), &doctor(1))
        .unwrap();
    srs.drop_user(&doctor(2)).unwrap();
    assert!(served(&srs, 0));
    srs.request_access(
        &doctor(3),
        patient_n(3).patient(),
        &label("lab"),
        Purpose::Research,
        "cohort study",
    )
    .unwrap();
    let info = srs.write_snapshot().unwrap().unwrap();
    assert!(info.parts >= 2, "{info:?}");
    drop(srs);
    (dir, path, info)
}

/// Opens `path`: the snapshot is ignored for `fault` and the registry is
/// the verified one (`what` names the case).
fn assert_ignored(path: &Path, fault: SnapshotFault, want: &RegistryView, what: &str) {
    let srs = open(path);
    assert_eq!(
        srs.open_report().snapshot,
        SnapshotUse::Ignored(fault),
        "{what}: {:?}",
        srs.open_report()
    );
    assert_eq!(&srs.registry(), want, "{what}");
}

#[test]
fn a_snapshot_with_the_rows_since_gives_the_verified_registry() {
    let (_d, path, info) = store();
    let srs = open(&path);
    assert_eq!(
        srs.open_report().snapshot,
        SnapshotUse::Used {
            seq: info.seq,
            rows_since: 0
        }
    );
    assert_eq!(srs.open_report().rows, 0);
    // Changes after the snapshot: new rows, and rows that replace some.
    populate(&srs, 150, 160);
    assert!(served(&srs, 4));
    srs.add_user(&doctor(1000), Role::Other("nurse".into()), &keys_of(1000))
        .unwrap();
    // A removal of a user with no grant deletes no key: the snapshot stays.
    srs.drop_user(&doctor(1000)).unwrap();
    drop(srs);
    let want = verified(&path);
    let (srs, rows_since) = opened_from_snapshot(&path, info.seq, &want);
    assert!(rows_since >= 10 * 5 + 2, "{rows_since}");
    // The sealed keys came back: granted users are served, the revoked,
    // removed and never granted are not.
    assert!(served(&srs, 0));
    assert!(served(&srs, 155));
    assert!(!served(&srs, 1));
    assert!(!served(&srs, 2));
    assert!(
        srs.reencrypt(&doctor(1000), record(0).header(), Purpose::Treatment)
            .is_err()
    );
    // The disclosures counted across the snapshot.
    assert_eq!(
        srs.disclosures(patient_n(4).patient(), 0, u64::MAX)
            .filter(Result::is_ok)
            .count(),
        1
    );
    srs.verify_audit().unwrap();
}

#[test]
fn the_snapshot_is_sealed() {
    let (_d, path, _) = store();
    let all: Vec<u8> = parts(&path).concat();
    for needle in [&b"patient-149"[..], b"doctor-149", b"medical"] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle),
            "a name in clear"
        );
    }
}

#[test]
fn an_edited_cut_or_reordered_snapshot_is_ignored() {
    let (_d, path, _) = store();
    let want = verified(&path);
    let good = parts(&path);
    let n = good.len();
    let mut cases: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    for (i, p) in good.iter().enumerate() {
        for at in [0, 15, 16, 27, 28, p.len() / 2, p.len() - 17, p.len() - 1] {
            let mut v = good.clone();
            v[i][at] ^= 0x20;
            cases.push(("a byte flipped", v));
        }
        let mut v = good.clone();
        v[i].truncate(p.len() - 1);
        cases.push(("a part cut", v));
        let mut v = good.clone();
        v[i].push(0);
        cases.push(("a byte appended", v));
    }
    let mut v = good.clone();
    v.swap(0, 1);
    cases.push(("two parts swapped", v));
    cases.push(("the last part dropped", good[..n - 1].to_vec()));
    cases.push(("a middle part dropped", [&good[..1], &good[2..]].concat()));
    let mut v = good.clone();
    v.push(good[n - 1].clone());
    cases.push(("the last part twice", v));
    cases.push(("only the last part", vec![good[n - 1].clone()]));
    for (what, v) in cases {
        set_parts(&path, &v);
        assert_ignored(&path, SnapshotFault::Unreadable, &want, what);
    }
    set_parts(&path, &[]);
    let srs = open(&path);
    assert_eq!(srs.open_report().snapshot, SnapshotUse::None);
    assert_eq!(srs.registry(), want);
}

#[test]
fn every_byte_of_a_small_snapshot_is_covered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.db");
    let srs = open(&path);
    populate(&srs, 0, 2);
    srs.write_snapshot().unwrap().unwrap();
    drop(srs);
    let want = verified(&path);
    let good = parts(&path);
    assert_eq!(good.len(), 1);
    for at in 0..good[0].len() {
        let mut v = good.clone();
        v[0][at] ^= 0x01;
        set_parts(&path, &v);
        assert_ignored(
            &path,
            SnapshotFault::Unreadable,
            &want,
            &format!("byte {at}"),
        );
    }
}

#[test]
fn an_older_snapshot_replayed_after_a_revocation_does_not_restore_access() {
    let (_d, path, old) = store();
    let stale = parts(&path);
    let srs = open(&path);
    assert!(served(&srs, 7));
    srs.take(&patient_n(7), &label("medical"), &doctor(7))
        .unwrap();
    drop(srs);
    // The revocation deleted the snapshot: it held the revoked key.
    assert!(parts(&path).is_empty());
    let srs = open(&path);
    assert_eq!(srs.open_report().snapshot, SnapshotUse::None);
    srs.write_snapshot().unwrap().unwrap();
    drop(srs);
    let want = verified(&path);
    // A database writer puts back the snapshot from before the revocation.
    set_parts(&path, &stale);
    let (srs, rows_since) = opened_from_snapshot(&path, old.seq, &want);
    assert!(rows_since >= 1);
    assert!(!served(&srs, 7));
    assert!(served(&srs, 8));
}

#[test]
fn a_snapshot_of_another_database_or_ahead_of_the_store_is_ignored() {
    let (_d, path, _) = store();
    let want = verified(&path);
    // Another database under the same storage key.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.db");
    let srs = open(&other);
    populate(&srs, 500, 503);
    srs.write_snapshot().unwrap().unwrap();
    drop(srs);
    set_parts(&path, &parts(&other));
    let srs = open(&path);
    assert!(
        matches!(
            srs.open_report().snapshot,
            SnapshotUse::Ignored(SnapshotFault::OtherStore | SnapshotFault::Mismatch)
        ),
        "{:?}",
        srs.open_report()
    );
    assert_eq!(srs.registry(), want);
    drop(srs);

    // A copy of the store, then a snapshot of a later state put into it.
    let earlier = dir.path().join("earlier.db");
    std::fs::copy(&path, &earlier).unwrap();
    let srs = open(&path);
    populate(&srs, 150, 152);
    srs.write_snapshot().unwrap().unwrap();
    drop(srs);
    set_parts(&earlier, &parts(&path));
    assert_ignored(&earlier, SnapshotFault::Ahead, &want, "a later snapshot");
}

#[test]
fn rows_since_the_snapshot_are_authenticated() {
    let (_d, path, info) = store();
    let srs = open(&path);
    populate(&srs, 150, 151);
    drop(srs);
    let c = rusqlite::Connection::open(&path).unwrap();
    let since: i64 = c
        .query_row(
            "SELECT count(*) FROM registry WHERE generation > ?1",
            [info.seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert!(since > 0);
    // Edited: refused (the rows are verified one by one after the snapshot
    // is set aside, and the edit is found). Deleted: the digest is short
    // of them.
    for (name, edit) in [
        (
            "edited.db",
            "UPDATE registry SET body = CAST(body || x'00' AS BLOB) WHERE generation > ?1",
        ),
        ("deleted.db", "DELETE FROM registry WHERE generation > ?1"),
    ] {
        let copy = path.with_extension(name);
        std::fs::copy(&path, &copy).unwrap();
        rusqlite::Connection::open(&copy)
            .unwrap()
            .execute(edit, [info.seq as i64])
            .unwrap();
        let r = Srs::open(config(&copy)).map(|s| s.open_report());
        assert!(matches!(r, Err(SrsError::Tampered(_))), "{name}: {r:?}");
    }
    // Rows before the snapshot are not read with it; a full open reads
    // them and finds an edit there.
    let copy = path.with_extension("below.db");
    std::fs::copy(&path, &copy).unwrap();
    rusqlite::Connection::open(&copy)
        .unwrap()
        .execute(
            "UPDATE registry SET body = CAST(body || x'00' AS BLOB) WHERE generation <= ?1 AND kind = 2",
            [info.seq as i64],
        )
        .unwrap();
    let srs = open(&copy);
    assert!(matches!(
        srs.open_report().snapshot,
        SnapshotUse::Used { .. }
    ));
    assert_eq!(srs.registry(), verified(&path));
    drop(srs);
    assert!(matches!(
        Srs::open(config(&copy).use_snapshot(false)),
        Err(SrsError::Tampered(_))
    ));
}

#[test]
fn a_memory_store_keeps_a_snapshot_and_a_new_store_has_none() {
    let srs = Srs::in_memory().unwrap();
    assert_eq!(srs.open_report().snapshot, SnapshotUse::None);
    populate(&srs, 0, 3);
    let info = srs.write_snapshot().unwrap().unwrap();
    assert_eq!(info.parts, 1);
    assert!(info.bytes > 0);
}

#[test]
fn on_one_thread_the_snapshot_reads_back_the_same() {
    let (_d, path, info) = store();
    let want = verified(&path);
    sesphr::set_max_threads(1);
    let srs = open(&path);
    sesphr::set_max_threads(0);
    assert_eq!(
        srs.open_report().snapshot,
        SnapshotUse::Used {
            seq: info.seq,
            rows_since: 0
        }
    );
    assert_eq!(srs.registry(), want);
}

#[test]
fn a_snapshot_older_than_an_archive_still_opens_with_the_rows_since() {
    let (_d, path, info) = store();
    let srs = open(&path);
    populate(&srs, 150, 153);
    assert!(served(&srs, 151));
    let cp = srs.checkpoint().unwrap();
    let mut segment = Vec::new();
    assert_eq!(srs.archive_audit(cp.seq, &mut segment).unwrap(), cp.seq);
    drop(srs);
    let want = verified(&path);
    let (srs, rows_since) = opened_from_snapshot(&path, info.seq, &want);
    assert!(rows_since > 0);
    srs.verify_audit().unwrap();
    assert!(served(&srs, 152));
}
