//! Whoever can write the SRS database (a DBA, a backup operator) without the
//! storage key cannot change who may read what, nor the history: every edit,
//! deletion, insertion or replay of a row is refused at open (or, for audit
//! history before the latest checkpoint, by `verify_audit`), and a rollback
//! of the whole file is refused against a kept checkpoint.
//!
//! The cases are generated from the schema (tables and columns as SQLite
//! lists them), so a column added later is covered without touching this
//! file.
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use common::Consenting;
use common::*;
use rusqlite::types::Value;
use sesphr::srs::*;
use sesphr::store::{SqliteStore, StoreErrorKind};
use sesphr::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const KEY: [u8; 32] = [9; 32];

fn open(path: &Path) -> Result<Srs, SrsError> {
    open_with(path, None)
}

fn open_with(path: &Path, required: Option<Checkpoint>) -> Result<Srs, SrsError> {
    let mut cfg =
        SrsConfig::new(SqliteStore::open(path)?, StorageKey::from_bytes(&KEY)).checkpoint_every(4);
    if let Some(cp) = required {
        cfg = cfg.require_checkpoint(cp);
    }
    Srs::open(cfg)
}

/// Refused at open, or (history before the latest checkpoint) by
/// `verify_audit`: never a silent success.
fn refused(path: &Path) -> Result<String, String> {
    match open(path) {
        Err(e) => Ok(format!("open: {e}")),
        Ok(srs) => match srs.verify_audit() {
            Err(e) => Ok(format!("verify_audit: {e}")),
            Ok(_) => Err("accepted".into()),
        },
    }
}

struct History {
    _dir: tempfile::TempDir,
    /// The database as it is at the end.
    current: PathBuf,
    /// Copies taken along the way.
    copies: Vec<(&'static str, PathBuf)>,
    /// Every checkpoint the SRS handed out.
    checkpoints: Arc<Mutex<Vec<Checkpoint>>>,
}

/// A database with users, a patient, grants, re-encryptions, a revocation
/// and a removal, and copies taken after the grants, the revocation and the
/// removal (each with the SRS closed, so the copy is the whole database).
fn history() -> History {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("srs.db");
    let checkpoints = Arc::new(Mutex::new(Vec::new()));
    let sink = checkpoints.clone();
    let open = || {
        let sink = sink.clone();
        Srs::open(
            SrsConfig::new(
                SqliteStore::open(&current).unwrap(),
                StorageKey::from_bytes(&KEY),
            )
            .checkpoint_every(4)
            .on_checkpoint(move |cp| sink.lock().unwrap().push(*cp)),
        )
        .unwrap()
    };
    let mut copies = Vec::new();
    let mut copy = |name: &'static str| {
        let to = dir.path().join(format!("{name}.db"));
        std::fs::copy(&current, &to).unwrap();
        copies.push((name, to));
    };
    let p = patient(3);
    let (med, lab) = (label("medical"), label("lab"));
    let ids: Vec<Identity> = (0..3)
        .map(|u| Identity::new(format!("user-{u}")).unwrap())
        .collect();
    let srs = open();
    srs.add_patient(&p, &[(med.clone(), 0), (lab.clone(), 0)])
        .unwrap();
    for (u, id) in ids.iter().enumerate() {
        srs.add_user(id, Role::Doctor, &user(u as u8)).unwrap();
        for l in [&med, &lab] {
            let rk = ReKey::generate(&p.portion_secret(l, 0), user(u as u8).public());
            srs.give(&p, l, id, rk, Scope::AllRecords, None).unwrap();
        }
    }
    let s = SealedPortion::seal(&p.portion_public(&med, 0), RecordId::random(), T0, b"x").unwrap();
    srs.reencrypt(&ids[0], s.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    drop(srs);
    copy("after-grants");
    let srs = open();
    srs.take(&p, &med, &ids[1]).unwrap();
    drop(srs);
    copy("after-revoke");
    let srs = open();
    srs.drop_user(&ids[2]).unwrap();
    drop(srs);
    copy("after-remove");
    let srs = open();
    srs.reencrypt(&ids[0], s.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    assert!(
        srs.reencrypt(&ids[1], s.header(), sesphr::srs::Purpose::Treatment)
            .is_err()
    );
    srs.checkpoint().unwrap();
    drop(srs);
    History {
        _dir: dir,
        current,
        copies,
        checkpoints,
    }
}

/// Tables and their columns, with which columns form the primary key.
fn schema(path: &Path) -> Vec<(String, Vec<String>, Vec<String>)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut q = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = q
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut q = c.prepare(&format!("PRAGMA table_info({t})")).unwrap();
            let cols: Vec<(String, i64)> = q
                .query_map([], |r| Ok((r.get(1)?, r.get(5)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let pk = cols
                .iter()
                .filter(|(_, k)| *k > 0)
                .map(|(n, _)| n.clone())
                .collect();
            (t, cols.into_iter().map(|(n, _)| n).collect(), pk)
        })
        .collect()
}

fn rows(path: &Path, table: &str, cols: &[String]) -> Vec<Vec<Value>> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut q = c
        .prepare(&format!("SELECT {} FROM {table}", cols.join(", ")))
        .unwrap();
    q.query_map([], |r| {
        (0..cols.len()).map(|i| r.get::<_, Value>(i)).collect()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// `a = ?1 AND b = ?2 …` over `cols`, from parameter `first` on.
fn matching(cols: &[String], first: usize) -> String {
    cols.iter()
        .enumerate()
        .map(|(i, c)| format!("{c} IS ?{}", i + first))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn mutate(v: &Value) -> Value {
    match v {
        Value::Null => Value::Blob(vec![0; 16]),
        Value::Integer(i) => Value::Integer(i.wrapping_add(1)),
        Value::Real(f) => Value::Real(f + 1.0),
        Value::Text(s) => Value::Text(format!("{s}x")),
        Value::Blob(b) if b.is_empty() => Value::Blob(vec![0]),
        Value::Blob(b) => {
            let mut b = b.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x01;
            Value::Blob(b)
        }
    }
}

fn fresh_copy(from: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(name);
    std::fs::copy(from, &to).unwrap();
    (dir, to)
}

#[test]
fn every_field_of_every_table_edited_is_refused() {
    let h = history();
    assert!(open(&h.current).unwrap().verify_audit().is_ok());
    let mut cases = 0;
    for (table, cols, _) in schema(&h.current) {
        for (r, row) in rows(&h.current, &table, &cols).iter().enumerate() {
            for (c, col) in cols.iter().enumerate() {
                let (_d, path) = fresh_copy(&h.current, "t.db");
                let conn = rusqlite::Connection::open(&path).unwrap();
                let mut params: Vec<Value> = vec![mutate(&row[c])];
                params.extend(row.iter().cloned());
                let sql = format!("UPDATE {table} SET {col} = ?1 WHERE {}", matching(&cols, 2));
                let n = conn
                    .execute(&sql, rusqlite::params_from_iter(params.iter()))
                    .or_else(|_| {
                        // A key edit that collides: move it far away instead.
                        params[0] = match &row[c] {
                            Value::Integer(i) => Value::Integer(i + 1_000_000),
                            other => mutate(&mutate(other)),
                        };
                        conn.execute(&sql, rusqlite::params_from_iter(params.iter()))
                    })
                    .unwrap();
                assert_eq!(n, 1, "{table}.{col} row {r}");
                drop(conn);
                let how = refused(&path);
                assert!(how.is_ok(), "{table}.{col} of row {r} edited: {how:?}");
                cases += 1;
            }
        }
    }
    eprintln!("{cases} edit cases");
    assert!(cases > 100, "only {cases} cases");
}

#[test]
fn every_row_deleted_is_refused() {
    let h = history();
    for (table, cols, _) in schema(&h.current) {
        for (r, row) in rows(&h.current, &table, &cols).iter().enumerate() {
            let (_d, path) = fresh_copy(&h.current, "t.db");
            let conn = rusqlite::Connection::open(&path).unwrap();
            let n = conn
                .execute(
                    &format!("DELETE FROM {table} WHERE {}", matching(&cols, 1)),
                    rusqlite::params_from_iter(row.iter()),
                )
                .unwrap();
            assert_eq!(n, 1);
            drop(conn);
            let how = refused(&path);
            assert!(how.is_ok(), "{table} row {r} deleted: {how:?}");
        }
    }
}

/// Each row replaced by (or, where gone, re-inserted as) its own older
/// version from a copy taken after the grants, the revocation and the
/// removal: a revocation cannot be undone, a removed user not reactivated.
#[test]
fn every_older_row_version_replayed_is_refused() {
    let h = history();
    let mut cases = 0;
    for (name, old) in &h.copies {
        for (table, cols, pk) in schema(&h.current) {
            let now = rows(&h.current, &table, &cols);
            for row in rows(old, &table, &cols) {
                if now.contains(&row) {
                    continue;
                }
                let (_d, path) = fresh_copy(&h.current, "t.db");
                let conn = rusqlite::Connection::open(&path).unwrap();
                let key: Vec<Value> = pk
                    .iter()
                    .map(|k| row[cols.iter().position(|c| c == k).unwrap()].clone())
                    .collect();
                conn.execute(
                    &format!("DELETE FROM {table} WHERE {}", matching(&pk, 1)),
                    rusqlite::params_from_iter(key.iter()),
                )
                .unwrap();
                let marks = (1..=cols.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>();
                conn.execute(
                    &format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        cols.join(", "),
                        marks.join(", ")
                    ),
                    rusqlite::params_from_iter(row.iter()),
                )
                .unwrap();
                drop(conn);
                let how = refused(&path);
                assert!(how.is_ok(), "{table} row from {name} replayed: {how:?}");
                cases += 1;
            }
        }
    }
    assert!(cases >= 6, "only {cases} replay cases");
}

#[test]
fn rows_inserted_audit_erased_or_cut_and_keys_moved_are_refused() {
    let h = history();
    let cases: &[&str] = &[
        // A copy of a registry row under another key.
        "INSERT INTO registry SELECT kind, key || x'00', generation, body, secret, mac FROM registry LIMIT 1",
        // An audit entry appended past the head.
        "INSERT INTO audit SELECT seq + 1000, entry, hash FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
        // The whole audit log erased (head kept); then head too.
        "DELETE FROM audit",
        "DELETE FROM audit; DELETE FROM meta WHERE key = 'head'",
        // Everything but the registry erased.
        "DELETE FROM audit; DELETE FROM meta WHERE key = 'head'; DELETE FROM checkpoints",
        // The head erased.
        "DELETE FROM meta WHERE key = 'head'",
        // The latest checkpoint erased.
        "DELETE FROM checkpoints WHERE seq = (SELECT max(seq) FROM checkpoints)",
        // The sealed key of one active grant moved into another active grant's row.
        "UPDATE registry SET secret = (SELECT secret FROM registry WHERE kind = 4 AND secret IS NOT NULL ORDER BY key LIMIT 1) \
         WHERE kind = 4 AND key = (SELECT key FROM registry WHERE kind = 4 AND secret IS NOT NULL ORDER BY key LIMIT 1 OFFSET 1)",
        // A revoked grant given another row's sealed key.
        "UPDATE registry SET secret = (SELECT secret FROM registry WHERE kind = 4 AND secret IS NOT NULL LIMIT 1) WHERE kind = 4 AND secret IS NULL",
    ];
    for sql in cases {
        let (_d, path) = fresh_copy(&h.current, "t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        assert!(conn.total_changes() > 0, "{sql} changed nothing");
        drop(conn);
        let how = refused(&path);
        assert!(how.is_ok(), "{sql}: {how:?}");
    }
    // The audit tail cut back to an older head (as recovered from a WAL or
    // a backup), the registry left as it is: refused by the registry digest
    // when the registry changed since that head; when only re-encryption
    // entries came after it, the result is exactly the older database, a
    // rollback, refused against the kept checkpoint.
    let kept = *h.checkpoints.lock().unwrap().last().unwrap();
    for (name, old) in &h.copies {
        let (_d, path) = fresh_copy(&h.current, "t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(&format!("ATTACH '{}' AS old", old.display()), [])
            .unwrap();
        conn.execute_batch(
            "UPDATE meta SET value = (SELECT value FROM old.meta WHERE key = 'head') WHERE key = 'head';
             DELETE FROM audit WHERE seq > (SELECT max(seq) FROM old.audit);
             DELETE FROM checkpoints WHERE seq NOT IN (SELECT seq FROM old.checkpoints);",
        )
        .unwrap();
        drop(conn);
        if *name != "after-remove" {
            let how = refused(&path);
            assert!(how.is_ok(), "tail cut to the head of {name}: {how:?}");
        }
        let res = open_with(&path, Some(kept));
        assert!(
            matches!(res, Err(SrsError::RolledBack { .. })),
            "tail cut to the head of {name}, kept checkpoint: {res:?}"
        );
    }
}

#[test]
fn a_whole_file_rollback_is_refused_against_a_kept_checkpoint() {
    let h = history();
    let kept = *h.checkpoints.lock().unwrap().last().unwrap();
    let srs = open_with(&h.current, Some(kept)).unwrap();
    srs.require_checkpoint(&kept).unwrap();
    drop(srs);
    for (name, old) in &h.copies {
        let (_d, path) = fresh_copy(old, "t.db");
        // Without the kept checkpoint an older copy is self-consistent...
        assert!(open(&path).is_ok(), "{name}");
        // ...with it, it is refused.
        let res = open_with(&path, Some(kept));
        assert!(
            matches!(res, Err(SrsError::RolledBack { .. })),
            "{name}: {res:?}"
        );
    }
    // A checkpoint of another database (same storage key) diverges.
    let other = history();
    let foreign = *other.checkpoints.lock().unwrap().last().unwrap();
    let res = open_with(&h.current, Some(foreign));
    assert!(
        matches!(
            res,
            Err(SrsError::Diverged { .. } | SrsError::RolledBack { .. })
        ),
        "{res:?}"
    );
    // A forged checkpoint is not this SRS's.
    let mut forged = kept;
    forged.seq += 1;
    assert!(matches!(
        open_with(&h.current, Some(forged)),
        Err(SrsError::InvalidCheckpoint)
    ));
}

#[test]
fn after_revoke_the_sealed_key_is_nowhere_in_the_file_or_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let srs = open(&path).unwrap();
    let p = patient(4);
    let med = label("medical");
    srs.add_patient(&p, &[(med.clone(), 0)]).unwrap();
    let id = Identity::new("dr").unwrap();
    srs.add_user(&id, Role::Doctor, &user(1)).unwrap();
    let rk = ReKey::generate(&p.portion_secret(&med, 0), user(1).public());
    let secret_scalar = rk.to_bytes()[5..37].to_vec();
    srs.give(&p, &med, &id, rk, Scope::AllRecords, None)
        .unwrap();
    let sealed: Vec<u8> = {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row("SELECT secret FROM registry WHERE kind = 4", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let contains = |needle: &[u8]| {
        [&path, &wal].iter().any(|f| {
            std::fs::read(f)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
        })
    };
    assert!(
        contains(&sealed),
        "the test must see the sealed key before revoking"
    );
    assert!(!contains(&secret_scalar), "rk stored in clear");
    srs.take(&p, &med, &id).unwrap();
    // Still open: the revocation itself scrubbed the file and its log.
    for window in sealed.chunks(16).filter(|c| c.len() == 16) {
        assert!(!contains(window), "sealed key bytes left after revocation");
    }
}

#[test]
fn a_second_handle_on_one_file_is_refused_and_the_first_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let srs = open(&path).unwrap();
    let second = open(&path);
    assert!(matches!(second, Err(SrsError::StoreLocked)), "{second:?}");
    let store = SqliteStore::open(&path).unwrap_err();
    assert_eq!(store.kind(), StoreErrorKind::Locked);
    // The message names the file and who holds it.
    let message = store.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("held by this process, {}", std::process::id())),
        "{message}"
    );
    srs.add_user(&Identity::new("u").unwrap(), Role::Doctor, &user(1))
        .unwrap();
    assert_eq!(srs.verify_audit().unwrap(), 1);
    drop(srs);
    // Once the first is closed, the file opens again.
    assert_eq!(open(&path).unwrap().verify_audit().unwrap(), 1);
}

#[test]
fn non_durable_locations_and_old_schemas_are_refused() {
    for p in ["", ":memory:"] {
        let e = SqliteStore::open(p).unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::NotDurable, "{p:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
         INSERT INTO meta VALUES ('schema_version', 1);
         CREATE TABLE users (identity TEXT PRIMARY KEY);",
    )
    .unwrap();
    drop(c);
    let e = SqliteStore::open(&path).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::UnsupportedVersion);
    assert!(e.to_string().contains("schema version 1"), "{e}");
    // Refusing changed nothing in the old file.
    let c = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

/// Opening loads the registry a batch of rows at a time (4,096; opened on
/// all cores and applied on another thread where threads are allowed): a
/// registry of several batches loads whole, and a row edited in the first,
/// a middle or the last batch is refused — whichever stage meets it first.
#[test]
fn a_registry_of_several_load_batches_opens_whole_and_any_bad_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let srs = open(&path).unwrap();
    let labels: Vec<(PortionLabel, u32)> =
        (0..1000).map(|i| (label(&format!("l{i}")), 0)).collect();
    for seed in 0..9u8 {
        let p = patient(seed);
        srs.register_patient(&sesphr::consent::PatientRegistration::new(&p, &labels).unwrap())
            .unwrap();
    }
    drop(srs);
    let srs = open(&path).unwrap();
    let rows = srs.open_report().rows;
    assert!(rows > 2 * 4096 + 1, "{rows} rows: fewer than three batches");
    assert_eq!(srs.registry_size().patient_count, 9);
    assert_eq!(srs.registry_size().portion_count, 9000);
    drop(srs);
    for at in [0, rows / 2, rows - 1] {
        let (_d, copy) = fresh_copy(&path, "t.db");
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let n = conn
            .execute(
                "UPDATE registry SET body = CAST(body || x'00' AS BLOB) WHERE (kind, key) = \
                 (SELECT kind, key FROM registry ORDER BY kind, key LIMIT 1 OFFSET ?1)",
                [i64::try_from(at).unwrap()],
            )
            .unwrap();
        assert_eq!(n, 1);
        drop(conn);
        let r = open(&copy);
        assert!(
            matches!(r, Err(SrsError::Tampered(_))),
            "row {at} of {rows} edited: {:?}",
            r.map(|_| ())
        );
        // The same on the calling thread alone (no threads: the path a
        // host that turned them off takes; other tests of this binary
        // meanwhile just run without threads too).
        sesphr::set_max_threads(1);
        let r = open(&copy);
        let whole = open(&path).map(|s| s.open_report().rows);
        sesphr::set_max_threads(0);
        assert!(
            matches!(r, Err(SrsError::Tampered(_))),
            "row {at}, one thread"
        );
        assert_eq!(whole.unwrap(), rows);
    }
}
