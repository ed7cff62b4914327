//! The audit as a verifiable Merkle log (SPEC §6.4): every entry proven in
//! place against signed checkpoints, any two checkpoints proven consistent,
//! with the SRS's public key alone; a tail cut, a fork, an edited or
//! spliced entry never yields a proof; a schema-3 store (hash chain only)
//! is converted, an archived one refused untouched.
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use common::Consenting;
use common::*;
use sesphr::merkle::{ConsistencyProof, InclusionProof};
use sesphr::model::{AuditEntry, Checkpoint};
use sesphr::srs::*;
use sesphr::store::{MemoryStore, SqliteStore, Store};
use sesphr::*;
use std::path::Path;

const KEY: [u8; 32] = [3; 32];

struct Log {
    srs: Srs,
    doc: Identity,
    record: SealedPortion,
}

fn open(store: impl Store + 'static) -> Srs {
    open_at(store, ManualClock::new(T0))
}

fn open_at(store: impl Store + 'static, clock: ManualClock) -> Srs {
    Srs::open(
        SrsConfig::new(store, StorageKey::from_bytes(&KEY))
            .clock(clock)
            .checkpoint_every(1 << 40)
            .checkpoint_interval(core::time::Duration::from_secs(1 << 40)),
    )
    .unwrap()
}

/// A patient, a doctor granted `lab`, one record; entries come from
/// re-encryptions of it.
fn log_on(store: impl Store + 'static) -> Log {
    log_at(store, ManualClock::new(T0))
}

/// [`log_on`] with the SRS reading `clock`.
fn log_at(store: impl Store + 'static, clock: ManualClock) -> Log {
    let srs = open_at(store, clock);
    let p = patient(1);
    let k = p.portion_secret(&label("lab"), 0);
    let doc = Identity::new("dr-house").unwrap();
    if srs.open_report().created {
        srs.add_patient(&p, &[(label("lab"), 0)]).unwrap();
        srs.add_user(&doc, Role::Doctor, &user(1)).unwrap();
        srs.give(
            &p,
            &label("lab"),
            &doc,
            ReKey::generate(&k, user(1).public()),
            Scope::AllRecords,
            None,
        )
        .unwrap();
    }
    let record = SealedPortion::seal_with_rng(
        k.public(),
        RecordId::from_bytes([9; 16]),
        T0,
        b"x",
        &mut rng(4),
    )
    .unwrap();
    Log { srs, doc, record }
}

/// Appends `n` entries (re-encryptions, in batches of up to 64).
fn grow(log: &Log, n: usize) {
    grow_for(log, n, Purpose::Treatment);
}

/// [`grow`] with re-encryptions for `purpose`.
fn grow_for(log: &Log, mut n: usize, purpose: Purpose) {
    while n > 0 {
        let k = n.min(64);
        let headers = vec![log.record.header(); k];
        for r in log
            .srs
            .reencrypt_batch(&log.doc, &headers, purpose)
            .unwrap()
        {
            r.unwrap();
        }
        n -= k;
    }
}

fn key(log: &Log) -> VerifyingKey {
    log.srs.verifying_key()
}

#[test]
fn every_entry_of_a_10000_entry_log_is_proven_against_three_checkpoints() {
    let log = log_on(MemoryStore::new());
    let mut cps = Vec::new();
    for size in [3_000, 7_000, 10_000] {
        let now = log.srs.verify_audit().unwrap() as usize;
        grow(&log, size - now);
        cps.push(log.srs.checkpoint().unwrap());
    }
    assert_eq!(cps[2].seq, 10_000);
    let key = key(&log);
    let mut proven = 0;
    for cp in &cps {
        let mut last: Option<AuditEntry> = None;
        for seq in 1..=cp.seq {
            let (entry, proof) = log.srs.proven_entry(seq, cp).unwrap();
            assert_eq!(entry.seq, seq);
            verify_inclusion(&entry, &proof, cp, &key).unwrap();
            // The proof proves that entry, there, and nothing else.
            if let Some(prev) = &last {
                assert!(verify_inclusion(prev, &proof, cp, &key).is_err());
            }
            last = Some(entry);
            proven += 1;
        }
        // Beyond the checkpoint: no proof.
        assert!(log.srs.inclusion_proof(cp.seq + 1, cp).is_err());
        assert!(log.srs.inclusion_proof(0, cp).is_err());
    }
    assert_eq!(proven, 20_000);
}

#[test]
fn every_pair_of_twenty_checkpoints_is_proven_consistent() {
    let log = log_on(MemoryStore::new());
    let mut cps: Vec<Checkpoint> = Vec::new();
    for i in 0..20 {
        grow(&log, 37 + 11 * i);
        cps.push(log.srs.checkpoint().unwrap());
    }
    let key = key(&log);
    for i in 0..cps.len() {
        for j in i..cps.len() {
            let (old, new) = (&cps[i], &cps[j]);
            let proof = log.srs.consistency_proof(old.seq, new.seq).unwrap();
            verify_consistency(old, new, &proof, &key).unwrap();
            if i < j {
                // Not the other way round, and not for other sizes.
                assert!(verify_consistency(new, old, &proof, &key).is_err());
                if j + 1 < cps.len() {
                    assert!(verify_consistency(old, &cps[j + 1], &proof, &key).is_err());
                }
            }
        }
    }
    // Proofs travel as bytes.
    let p = log.srs.consistency_proof(cps[3].seq, cps[17].seq).unwrap();
    assert_eq!(ConsistencyProof::from_bytes(&p.to_bytes()).unwrap(), p);
}

/// Flips every bit position's byte of `bytes` in turn and asks `accepts`.
fn every_byte_flipped(bytes: &[u8], what: &str, accepts: impl Fn(&[u8]) -> bool) {
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.to_vec();
            b[i] ^= bit;
            assert!(!accepts(&b), "{what}: byte {i} ^ {bit:#x} accepted");
        }
    }
}

/// `accepts` takes the three genuine parts, and none with a byte of one of
/// them flipped (the other two intact).
fn each_part_flipped(parts: [(&str, Vec<u8>); 3], accepts: impl Fn([&[u8]; 3]) -> bool) {
    let whole = [
        parts[0].1.as_slice(),
        parts[1].1.as_slice(),
        parts[2].1.as_slice(),
    ];
    assert!(accepts(whole), "the genuine parts are refused");
    for (k, (what, bytes)) in parts.iter().enumerate() {
        every_byte_flipped(bytes, what, |b| {
            let mut x = whole;
            x[k] = b;
            accepts(x)
        });
    }
}

#[test]
fn every_single_byte_alteration_of_an_entry_a_proof_or_a_checkpoint_is_refused() {
    let log = log_on(MemoryStore::new());
    grow(&log, 90);
    let old = log.srs.checkpoint().unwrap();
    grow(&log, 40);
    let cp = log.srs.checkpoint().unwrap();
    let key = key(&log);
    let (entry, proof) = log.srs.proven_entry(37, &cp).unwrap();
    each_part_flipped(
        [
            ("entry", entry.to_bytes()),
            ("inclusion proof", proof.to_bytes()),
            ("checkpoint", cp.to_bytes()),
        ],
        |[e, p, c]| match (
            AuditEntry::from_bytes(e),
            InclusionProof::from_bytes(p),
            Checkpoint::from_bytes(c),
        ) {
            (Ok(e), Ok(p), Ok(c)) => verify_inclusion(&e, &p, &c, &key).is_ok(),
            _ => false,
        },
    );
    let cons = log.srs.consistency_proof(old.seq, cp.seq).unwrap();
    each_part_flipped(
        [
            ("old checkpoint", old.to_bytes()),
            ("new checkpoint", cp.to_bytes()),
            ("consistency proof", cons.to_bytes()),
        ],
        |[o, n, p]| match (
            Checkpoint::from_bytes(o),
            Checkpoint::from_bytes(n),
            ConsistencyProof::from_bytes(p),
        ) {
            (Ok(o), Ok(n), Ok(p)) => verify_consistency(&o, &n, &p, &key).is_ok(),
            _ => false,
        },
    );
    // Another SRS's key proves nothing.
    let other = Srs::in_memory().unwrap().verifying_key();
    assert!(verify_inclusion(&entry, &proof, &cp, &other).is_err());
    assert!(verify_consistency(&old, &cp, &cons, &other).is_err());
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

/// A witness holding a later checkpoint catches a store cut back (by one
/// entry, or by 4095), and a fork the cut store then grows into, though
/// every checkpoint involved is genuinely signed.
#[test]
fn a_tail_cut_and_a_fork_are_caught_by_a_holder_of_the_later_checkpoint() {
    for cut in [1usize, 4095] {
        let dir = tempfile::tempdir().unwrap();
        let (db, before) = (dir.path().join("srs.db"), dir.path().join("before.db"));
        let log = log_on(SqliteStore::open(&db).unwrap());
        grow(&log, 100);
        let early = log.srs.checkpoint().unwrap();
        drop(log);
        copy(&db, &before);
        let log = log_on(SqliteStore::open(&db).unwrap());
        grow(&log, cut);
        let held = log.srs.checkpoint().unwrap();
        let key = key(&log);
        drop(log);
        // The store is cut back to the copy: it opens (nothing in it is
        // inconsistent) and its latest checkpoint is older than the held one.
        copy(&before, &db);
        let log = log_on(SqliteStore::open(&db).unwrap());
        let latest = log.srs.latest_checkpoint().unwrap();
        assert_eq!(latest, early);
        assert!(latest.seq < held.seq);
        assert!(log.srs.consistency_proof(held.seq, latest.seq).is_err());
        let empty = ConsistencyProof {
            old_size: held.seq,
            new_size: latest.seq,
            path: Vec::new(),
        };
        assert!(verify_consistency(&held, &latest, &empty, &key).is_err());
        assert!(matches!(
            log.srs.require_checkpoint(&held),
            Err(SrsError::RolledBack { .. })
        ));
        // Pinned, it serves nothing more.
        assert!(matches!(
            log.srs
                .reencrypt(&log.doc, log.record.header(), Purpose::Treatment),
            Err(SrsError::RolledBack { .. })
        ));
        // A process that was not handed the checkpoint grows the cut store
        // past the held size with other entries: a fork, signed, and never
        // consistent with what the witness holds.
        drop(log);
        let log = log_on(SqliteStore::open(&db).unwrap());
        grow_for(&log, cut + 10, Purpose::Payment);
        let forked = log.srs.checkpoint().unwrap();
        assert!(forked.seq > held.seq);
        let proof = log.srs.consistency_proof(held.seq, forked.seq).unwrap();
        assert!(
            verify_consistency(&held, &forked, &proof, &key).is_err(),
            "cut {cut}: fork accepted"
        );
        // While its own history stays consistent.
        let own = log.srs.consistency_proof(early.seq, forked.seq).unwrap();
        verify_consistency(&early, &forked, &own, &key).unwrap();
    }
}

/// Every column of sampled `audit` rows, and of `tree` and tile rows (the
/// proofs read a whole block's tile), edited (found through
/// `PRAGMA table_info`, not named by hand), rows deleted, and rows spliced
/// from another database made with the same key: a proof of an entry
/// before the latest checkpoint is an error or the exact true entry.
#[test]
fn an_entry_before_the_checkpoint_edited_deleted_or_spliced_is_never_proven_false() {
    let dir = tempfile::tempdir().unwrap();
    let (db, other) = (dir.path().join("srs.db"), dir.path().join("other.db"));
    for (path, extra) in [(&db, 0), (&other, 3)] {
        let log = log_on(SqliteStore::open(path).unwrap());
        grow(&log, 150 + extra);
        log.srs.checkpoint().unwrap();
        grow(&log, 5);
    }
    let truth: Vec<AuditEntry> = {
        let log = log_on(SqliteStore::open(&db).unwrap());
        log.srs.audit_entries(1, usize::MAX).unwrap()
    };
    let columns = |table: &str| -> Vec<String> {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut q = c
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        q.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let check = |path: &Path, what: &str| {
        let Ok(store) = SqliteStore::open(path) else {
            return;
        };
        let Ok(srs) = Srs::open(SrsConfig::new(store, StorageKey::from_bytes(&KEY))) else {
            return;
        };
        let cp = srs.latest_checkpoint().unwrap();
        for seq in (1..=cp.seq).step_by(3) {
            if let Ok((entry, proof)) = srs.proven_entry(seq, &cp) {
                assert_eq!(entry, truth[seq as usize - 1], "{what}: seq {seq}");
                verify_inclusion(&entry, &proof, &cp, &srs.verifying_key()).unwrap();
            }
        }
    };
    let mut cases = 0;
    let mut tile_cases = 0;
    for table in ["audit", "tree", "tiles_0", "tiles_4"] {
        let cols = columns(table);
        assert!(cols.len() >= 2, "{table}: {cols:?}");
        let keys: Vec<(i64, i64)> = {
            let c = rusqlite::Connection::open(&db).unwrap();
            let sql = match table {
                "audit" => "SELECT seq, 0 FROM audit WHERE seq % 17 = 3".to_string(),
                "tree" => "SELECT level, idx FROM tree".to_string(),
                tiles => format!("SELECT idx, 0 FROM {tiles}"),
            };
            let mut q = c.prepare(&sql).unwrap();
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let row = |k: (i64, i64)| match table {
            "audit" => format!("seq = {}", k.0),
            "tree" => format!("level = {} AND idx = {}", k.0, k.1),
            _ => format!("idx = {}", k.0),
        };
        if table.starts_with("tiles") {
            tile_cases += keys.len();
        }
        for k in keys {
            for col in &cols {
                let case = dir.path().join("case.db");
                copy(&db, &case);
                let c = rusqlite::Connection::open(&case).unwrap();
                let typ: String = c
                    .query_row(
                        &format!("SELECT typeof({col}) FROM {table} WHERE {}", row(k)),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                let set = if typ == "blob" {
                    format!(
                        "{col} = CAST(substr({col}, 1, 10) || X'5A' || substr({col}, 12) AS BLOB)"
                    )
                } else {
                    format!("{col} = {col} + 1000000")
                };
                c.execute(&format!("UPDATE {table} SET {set} WHERE {}", row(k)), [])
                    .unwrap();
                drop(c);
                check(&case, &format!("{table}.{col} at {k:?}"));
                cases += 1;
            }
            // Deleted, and spliced in from the other database.
            for splice in [false, true] {
                let case = dir.path().join("case.db");
                copy(&db, &case);
                let c = rusqlite::Connection::open(&case).unwrap();
                c.execute(&format!("DELETE FROM {table} WHERE {}", row(k)), [])
                    .unwrap();
                if splice {
                    c.execute(&format!("ATTACH '{}' AS o", other.display()), [])
                        .unwrap();
                    c.execute(
                        &format!(
                            "INSERT INTO {table} SELECT * FROM o.{table} WHERE {}",
                            row(k)
                        ),
                        [],
                    )
                    .unwrap();
                }
                drop(c);
                check(&case, &format!("{table} at {k:?} spliced={splice}"));
                cases += 1;
            }
        }
    }
    assert!(
        cases > 40 && tile_cases > 5,
        "only {cases} cases, {tile_cases} tiles"
    );
}

fn fixture(name: &str, dir: &Path) -> std::path::PathBuf {
    let to = dir.join(name);
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/srs")
            .join(name),
        &to,
    );
    to
}

/// A schema-3 database (hash chain, no tree) opens: its tree is rebuilt
/// from the entries once, its nodes kept, a checkpoint signs the root, and
/// every entry is proven. One whose audit was archived cannot have its tree
/// rebuilt: it is refused with a message saying so, the file unchanged.
#[test]
fn a_schema_3_store_is_converted_and_an_archived_one_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture("schema3.db", dir.path());
    let srs = Srs::open(SrsConfig::new(
        SqliteStore::open(&db).unwrap(),
        StorageKey::from_bytes(&KEY),
    ))
    .unwrap();
    let n = srs.verify_audit().unwrap();
    assert!(n >= 50, "{n}");
    let cp = srs.latest_checkpoint().unwrap();
    assert_eq!(cp.seq, n);
    assert!(cp.tree_root.is_some());
    for seq in 1..=n {
        let (e, p) = srs.proven_entry(seq, &cp).unwrap();
        verify_inclusion(&e, &p, &cp, &srs.verifying_key()).unwrap();
    }
    // It still serves, and the next open needs no rebuild.
    let record = SealedPortion::from_bytes(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/srs/schema3.record"),
        )
        .unwrap(),
    )
    .unwrap();
    srs.reencrypt(
        &Identity::new("dr-house").unwrap(),
        record.header(),
        Purpose::Treatment,
    )
    .unwrap();
    drop(srs);
    let c = rusqlite::Connection::open(&db).unwrap();
    let (version, nodes): (i64, i64) = c
        .query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'schema_version'), (SELECT count(*) FROM tree)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(c);
    assert_eq!(version, 6);
    assert!(nodes >= 3, "{nodes} nodes kept");
    let srs = Srs::open(SrsConfig::new(
        SqliteStore::open(&db).unwrap(),
        StorageKey::from_bytes(&KEY),
    ))
    .unwrap();
    assert_eq!(srs.verify_audit().unwrap(), n + 1);

    let archived = fixture("schema3_archived.db", dir.path());
    let bytes = std::fs::read(&archived).unwrap();
    let refused = SqliteStore::open(&archived).map(|_| ());
    let err = refused.unwrap_err();
    assert_eq!(
        err.kind(),
        sesphr::store::StoreErrorKind::UnsupportedVersion
    );
    assert!(err.to_string().contains("archived"), "{err}");
    assert_eq!(std::fs::read(&archived).unwrap(), bytes, "the file changed");
}

/// The accounting of disclosures, read from a store whose audit entries
/// (before the latest checkpoint too) and disclosure index rows were
/// edited, deleted, duplicated or spliced from another database made with
/// the same key — every column found through `PRAGMA table_info`: the
/// listing is an error or exactly the true one, without `verify_audit`.
/// A store of schema 4 (no leaf hashes kept) or 5 (each leaf hash a row
/// of the node table) opened by this version (schema 6: the leaf hashes
/// and the level above the blocks in tiles of sixteen): the tiles are
/// built, the leaf hashes they hold leave the node table, the audit
/// verifies and the accounting is the same. After that, a tile deleted or
/// edited is refused like any other node.
#[test]
fn a_schema_4_or_5_store_gains_its_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("srs.db");
    let log = log_on(SqliteStore::open(&db).unwrap());
    grow(&log, 70);
    log.srs.checkpoint().unwrap();
    let patient = patient(1).patient().clone();
    let listing = |srs: &Srs| -> Vec<sesphr::model::Disclosure> {
        srs.disclosures(&patient, 0, u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let truth = listing(&log.srs);
    let n = log.srs.verify_audit().unwrap();
    drop(log);
    // (leaf hashes kept as rows, tiles of leaf hashes, tiles above)
    let kept = |path: &Path| -> (i64, i64, i64) {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT (SELECT count(*) FROM tree WHERE level = 0), \
                 (SELECT count(*) FROM tiles_0), (SELECT count(*) FROM tiles_4)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let n = i64::try_from(n).unwrap();
    let whole = (n / 16, n % 16, 0);
    assert_eq!(kept(&db), (whole.1, whole.0, whole.2));
    // As a schema-5 store left it: every leaf hash a row, no tiles.
    let c = rusqlite::Connection::open(&db).unwrap();
    let tiles: Vec<(i64, Vec<u8>)> = c
        .prepare("SELECT idx, hashes FROM tiles_0")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (t, bytes) in &tiles {
        for (k, h) in bytes.chunks(32).take(16).enumerate() {
            c.execute(
                "INSERT INTO tree (level, idx, hash) VALUES (0, ?1, ?2)",
                rusqlite::params![t * 16 + k as i64, h],
            )
            .unwrap();
        }
    }
    c.execute_batch(
        "DROP TABLE tiles_0; DROP TABLE tiles_4; \
         UPDATE meta SET value = 5 WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let five = dir.path().join("five.db");
    copy(&db, &five);
    // As a schema-4 store left it: no leaf hashes at all.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "DELETE FROM tree WHERE level = 0; UPDATE meta SET value = 4 WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    for path in [&five, &db] {
        let srs = open(SqliteStore::open(path).unwrap());
        assert_eq!(kept(path), (whole.1, whole.0, whole.2));
        assert_eq!(srs.verify_audit().unwrap(), u64::try_from(n).unwrap());
        assert_eq!(listing(&srs), truth);
    }
    // Once schema 6, a missing or altered tile, or leaf hash, is tampering.
    for alter in [
        "DELETE FROM tiles_0 WHERE idx = 2",
        "UPDATE tiles_0 SET hashes = zeroblob(992) WHERE idx = 2",
        "UPDATE tiles_0 SET hashes = substr(hashes, 1, 512) WHERE idx = 2",
        "DELETE FROM tree WHERE level = 0 AND idx = 65",
        "UPDATE tree SET hash = zeroblob(32) WHERE level = 0 AND idx = 65",
    ] {
        let case = dir.path().join("case.db");
        copy(&db, &case);
        rusqlite::Connection::open(&case)
            .unwrap()
            .execute_batch(alter)
            .unwrap();
        let srs = open(SqliteStore::open(&case).unwrap());
        assert!(
            matches!(srs.verify_audit(), Err(SrsError::Tampered(_))),
            "{alter}"
        );
        // The accounting never lists a wrong disclosure: an edited leaf
        // hash fails the proof of its block; a missing one is read from
        // the entries.
        match srs
            .disclosures(&patient, 0, u64::MAX)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(list) => assert_eq!(list, truth, "{alter}"),
            Err(e) => assert!(matches!(e, SrsError::Tampered(_)), "{alter}: {e}"),
        }
    }
}

#[test]
fn the_accounting_of_disclosures_is_true_or_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (db, other) = (dir.path().join("srs.db"), dir.path().join("other.db"));
    for (path, purpose) in [(&db, Purpose::Treatment), (&other, Purpose::Payment)] {
        let log = log_on(SqliteStore::open(path).unwrap());
        grow_for(&log, 60, purpose);
        log.srs.checkpoint().unwrap();
        grow_for(&log, 6, purpose);
    }
    let patient = patient(1).patient().clone();
    let listing = |srs: &Srs| -> Result<Vec<sesphr::model::Disclosure>, SrsError> {
        srs.disclosures(&patient, 0, u64::MAX).collect()
    };
    let truth = listing(&log_on(SqliteStore::open(&db).unwrap()).srs).unwrap();
    assert_eq!(truth.len(), 66);
    let columns = |table: &str| -> Vec<String> {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut q = c
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        q.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut cases = 0;
    let mut refused = 0;
    let mut run = |what: String, alter: &dyn Fn(&rusqlite::Connection)| {
        let case = dir.path().join("case.db");
        copy(&db, &case);
        let c = rusqlite::Connection::open(&case).unwrap();
        c.execute(&format!("ATTACH '{}' AS o", other.display()), [])
            .unwrap();
        alter(&c);
        drop(c);
        cases += 1;
        let Ok(store) = SqliteStore::open(&case) else {
            refused += 1;
            return;
        };
        let Ok(srs) = Srs::open(SrsConfig::new(store, StorageKey::from_bytes(&KEY))) else {
            refused += 1;
            return;
        };
        match listing(&srs) {
            Ok(list) => assert!(
                list == truth,
                "{what}: a wrong accounting ({} listed)",
                list.len()
            ),
            Err(_) => refused += 1,
        }
    };
    for table in ["audit", "disclosures"] {
        let cols = columns(table);
        let seqs: Vec<i64> = (1..=66).filter(|s| s % 11 == 5).map(|s| s + 3).collect();
        for seq in seqs {
            for col in &cols {
                run(format!("{table}.{col} of seq {seq} edited"), &|c| {
                    let typ: String = c
                        .query_row(
                            &format!("SELECT typeof({col}) FROM {table} WHERE seq = {seq}"),
                            [],
                            |r| r.get(0),
                        )
                        .unwrap();
                    let set = if typ == "blob" {
                        format!(
                            "{col} = CAST(substr({col}, 1, 20) || X'5A' || substr({col}, 22) AS BLOB)"
                        )
                    } else if col == "seq" {
                        format!("{col} = {col} + 1000000")
                    } else {
                        format!("{col} = {col} + 1")
                    };
                    c.execute(&format!("UPDATE {table} SET {set} WHERE seq = {seq}"), [])
                        .unwrap();
                });
            }
            run(format!("{table} row of seq {seq} deleted"), &|c| {
                c.execute(&format!("DELETE FROM {table} WHERE seq = {seq}"), [])
                    .unwrap();
            });
            run(format!("{table} row of seq {seq} spliced"), &|c| {
                c.execute(&format!("DELETE FROM {table} WHERE seq = {seq}"), [])
                    .unwrap();
                c.execute(
                    &format!("INSERT INTO {table} SELECT * FROM o.{table} WHERE seq = {seq}"),
                    [],
                )
                .unwrap();
            });
        }
    }
    // The Merkle nodes the proofs read (leaf hashes, stored subtrees, their
    // tiles): every field of every row edited, and every row deleted.
    let mut node_rows = 0;
    for table in ["tree", "tiles_0", "tiles_4"] {
        let cols = columns(table);
        let keys: Vec<Vec<rusqlite::types::Value>> = {
            let c = rusqlite::Connection::open(&db).unwrap();
            let mut q = c
                .prepare(&format!("SELECT {} FROM {table}", cols.join(", ")))
                .unwrap();
            q.query_map([], |r| (0..cols.len()).map(|i| r.get(i)).collect())
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        node_rows += keys.len();
        // The row's every column, as parameters from `?first` on.
        let matching = |first: usize| {
            cols.iter()
                .enumerate()
                .map(|(i, col)| format!("{col} = ?{}", i + first))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        for row in &keys {
            for (i, col) in cols.iter().enumerate() {
                run(format!("{table}.{col} of {row:?} edited"), &|c| {
                    use rusqlite::types::Value;
                    let new = match &row[i] {
                        Value::Integer(v) => Value::Integer(v + 1_000_000),
                        Value::Blob(b) => {
                            let mut b = b.clone();
                            b[0] ^= 0x5A;
                            Value::Blob(b)
                        }
                        other => panic!("{table}.{col}: {other:?}"),
                    };
                    let mut args = vec![new];
                    args.extend(row.iter().cloned());
                    let n = c
                        .execute(
                            &format!("UPDATE {table} SET {col} = ?1 WHERE {}", matching(2)),
                            rusqlite::params_from_iter(args),
                        )
                        .unwrap();
                    assert_eq!(n, 1);
                });
            }
            run(format!("{table} row {row:?} deleted"), &|c| {
                let n = c
                    .execute(
                        &format!("DELETE FROM {table} WHERE {}", matching(1)),
                        rusqlite::params_from_iter(row.iter().cloned()),
                    )
                    .unwrap();
                assert_eq!(n, 1);
            });
        }
    }
    assert!(node_rows >= 8, "{node_rows} node and tile rows");
    run("an index row duplicated at another time".into(), &|c| {
        c.execute(
            "INSERT INTO disclosures SELECT patient, time + 1, seq FROM disclosures WHERE seq = 20",
            [],
        )
        .unwrap();
    });
    run("the index emptied".into(), &|c| {
        c.execute("DELETE FROM disclosures", []).unwrap();
    });
    assert!(
        cases > 20 && refused > 10,
        "{cases} cases, {refused} refused"
    );
}

/// A listing longer than a page whose times do not follow the sequence
/// numbers (the SRS clock set back twice): every disclosure once, in
/// (time, seq) order, each proven; and with one stored node or leaf hash
/// altered, in each part of the log, the same list or an error (an error
/// where a proof reads it).
#[test]
fn a_long_listing_out_of_sequence_order_is_whole_and_proven() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("srs.db");
    let clock = ManualClock::new(T0);
    let log = log_at(SqliteStore::open(&db).unwrap(), clock.clone());
    for (at, n) in [(T0 + 1000, 500), (T0 + 10, 400), (T0 + 500, 300)] {
        clock.set(at);
        grow(&log, n);
    }
    let patient = patient(1).patient().clone();
    // From the log itself, not the index.
    let mut expected: Vec<(u64, u64)> = log
        .srs
        .audit_entries(1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::ReEncrypt && e.patient.as_ref() == Some(&patient))
        .map(|e| (e.time, e.seq))
        .collect();
    assert_eq!(expected.len(), 1200);
    assert!(
        expected.windows(2).any(|w| w[0].0 > w[1].0),
        "times out of order"
    );
    expected.sort_unstable();
    let listing = |srs: &Srs| -> Result<Vec<(u64, u64)>, SrsError> {
        srs.disclosures(&patient, 0, u64::MAX)
            .map(|d| d.map(|d| (d.time, d.seq)))
            .collect()
    };
    assert_eq!(listing(&log.srs).unwrap(), expected);
    drop(log);
    // Nodes (leaf hashes of the last, partial block; subtrees from level
    // 4 up) and tiles (of leaf hashes; of level 4) at the start, the middle
    // and the end of the log.
    let rows = |sql: &str| -> Vec<(i64, i64)> {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut q = c.prepare(sql).unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // And the tile of the last disclosure listed: on the listing's second
    // page, read while the first is checked.
    let last = (expected[expected.len() - 1].1 - 1) / 16;
    let nodes = rows("SELECT level, idx FROM tree WHERE idx IN (0, 1, 37, 600, 1200)");
    let tiles = rows(&format!(
        "SELECT 0, idx FROM tiles_0 WHERE idx IN (0, 1, 2, 37, 74, {last}) \
         UNION ALL SELECT 4, idx FROM tiles_4 WHERE idx IN (0, 1, 2, 37, 74)"
    ));
    assert!(nodes.len() > 6 && tiles.len() > 7, "{nodes:?} {tiles:?}");
    assert!(tiles.contains(&(0, last as i64)), "{tiles:?}");
    let cases = nodes
        .into_iter()
        .map(|n| ("tree".to_string(), "hash", n))
        .chain(
            tiles
                .into_iter()
                .map(|t| (format!("tiles_{}", t.0), "hashes", t)),
        );
    for (table, col, (level, idx)) in cases {
        let case = dir.path().join("case.db");
        copy(&db, &case);
        let c = rusqlite::Connection::open(&case).unwrap();
        // A node's first byte; in a tile, that of its right subtree of
        // eight (the node at 29, the sibling of its first entry's climb).
        let (at, row) = if table == "tree" {
            (1, "level = ?1 AND idx = ?2")
        } else {
            (29 * 32 + 1, "?1 = ?1 AND idx = ?2")
        };
        c.execute(
            &format!(
                "UPDATE {table} SET {col} = \
                 CAST(substr({col}, 1, {at} - 1) || X'00' || substr({col}, {at} + 1) AS BLOB) \
                 WHERE {row}"
            ),
            [level, idx],
        )
        .unwrap();
        drop(c);
        let srs = open(SqliteStore::open(&case).unwrap());
        match listing(&srs) {
            Err(_) => {}
            // A block's tile gives its first disclosure's siblings.
            Ok(_) if table == "tiles_0" => {
                panic!("tile {idx} of leaf hashes altered: the listing still proven")
            }
            // A leaf hash of the last, partial block is not read (its
            // entries are hashed instead), nor a subtree a climb computed
            // itself: ignored, never trusted.
            Ok(list) => assert_eq!(list, expected, "{table} ({level}, {idx}) altered"),
        }
    }
}

/// The patient's report: each disclosure proven against a checkpoint,
/// signed by the SRS; verified with its public key alone; any byte
/// changed is refused.
#[test]
fn a_disclosure_report_verifies_on_the_patients_side_and_nothing_altered_does() {
    let log = log_on(MemoryStore::new());
    grow(&log, 30);
    // Another patient's disclosures are not in it.
    let bob = patient(2);
    log.srs.add_patient(&bob, &[(label("lab"), 0)]).unwrap();
    let k = bob.portion_secret(&label("lab"), 0);
    log.srs
        .give(
            &bob,
            &label("lab"),
            &log.doc,
            ReKey::generate(&k, user(1).public()),
            Scope::AllRecords,
            None,
        )
        .unwrap();
    let theirs = SealedPortion::seal(k.public(), RecordId::random(), T0, b"y").unwrap();
    log.srs
        .reencrypt(&log.doc, theirs.header(), Purpose::Treatment)
        .unwrap();
    grow(&log, 5);
    let alice = patient(1).patient().clone();
    let report = log.srs.disclosure_report(&alice, 0, u64::MAX).unwrap();
    let key = log.srs.verifying_key();
    let shown = report.verify(&key).unwrap();
    assert_eq!(shown.len(), 35);
    let listed: Vec<_> = log
        .srs
        .disclosures(&alice, 0, u64::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        shown.iter().map(|d| d.seq).collect::<Vec<_>>(),
        listed.iter().map(|d| d.seq).collect::<Vec<_>>()
    );
    let bytes = report.to_bytes();
    let again = DisclosureReport::from_bytes(&bytes).unwrap();
    assert_eq!(again, report);
    assert!(
        report
            .verify(&Srs::in_memory().unwrap().verifying_key())
            .is_err()
    );
    // Every byte of a short report flipped (a window of two disclosures).
    let first = shown[3].time;
    let small = log.srs.disclosure_report(&alice, first, first).unwrap();
    assert!(!small.entries().is_empty());
    let b = small.to_bytes();
    assert!(
        DisclosureReport::from_bytes(&b)
            .unwrap()
            .verify(&key)
            .is_ok()
    );
    every_byte_flipped(&b, "report", |x| {
        DisclosureReport::from_bytes(x).is_ok_and(|r| r.verify(&key).is_ok())
    });
    // Bob's report names only Bob's disclosure.
    let bobs = log
        .srs
        .disclosure_report(bob.patient(), 0, u64::MAX)
        .unwrap();
    assert_eq!(bobs.verify(&key).unwrap().len(), 1);
}

/// Archiving more than once inside one block of 16 entries (the second
/// archive's block starts before the first archive's base, whose entries
/// are gone): every archive succeeds, its segment verifies, and every live
/// entry is still proven against the latest checkpoint, from memory and
/// from SQLite reopened. (The second archive failed with
/// `AuditChainBroken { seq: 1 }` before the fix: found by the model test.)
#[test]
fn archives_inside_one_block_keep_every_live_entry_proven() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    for sqlite in [false, true] {
        let log = if sqlite {
            log_on(SqliteStore::open(&path).unwrap())
        } else {
            log_on(MemoryStore::new())
        };
        let mut base = 0;
        for grow_by in [1usize, 2, 1, 5, 13, 0, 40] {
            grow(&log, grow_by);
            let cp = log.srs.checkpoint().unwrap();
            if cp.seq == base {
                continue;
            }
            let mut segment = Vec::new();
            let n = log.srs.archive_audit(cp.seq, &mut segment).unwrap();
            assert_eq!(n, cp.seq - base);
            let info = verify_segment(&mut &segment[..], &key(&log)).unwrap();
            assert_eq!((info.first_seq, info.last_seq), (base + 1, cp.seq));
            base = cp.seq;
            grow(&log, 3);
            let latest = log.srs.checkpoint().unwrap();
            for seq in base + 1..=latest.seq {
                let (entry, proof) = log.srs.proven_entry(seq, &latest).unwrap();
                verify_inclusion(&entry, &proof, &latest, &key(&log)).unwrap();
            }
            let proof = log.srs.consistency_proof(cp.seq, latest.seq).unwrap();
            verify_consistency(&cp, &latest, &proof, &key(&log)).unwrap();
        }
        assert!(log.srs.verify_audit().unwrap() > 0);
        if sqlite {
            // Reopened, the archived store still proves its live entries.
            let again = log.srs.checkpoint().unwrap();
            drop(log);
            let log = log_on(SqliteStore::open(&path).unwrap());
            let latest = log.srs.checkpoint().unwrap();
            assert!(latest.seq >= again.seq);
            let (entry, proof) = log.srs.proven_entry(latest.seq, &latest).unwrap();
            verify_inclusion(&entry, &proof, &latest, &key(&log)).unwrap();
        }
    }
}
