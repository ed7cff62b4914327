//! Several SRS processes on one PostgreSQL database (feature `postgres`).
//!
//! Each test starts its own throwaway cluster (see `common/pg.rs`). The
//! multi-process tests run this test binary again as child processes (the
//! ignored test `child`, told its role through the environment), so that
//! each SRS has its own process, registry and connections.
#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

mod common;
use common::Consenting;
#[path = "common/pg.rs"]
mod pg;

use common::*;
use pg::Cluster;
use sesphr::srs::*;
use sesphr::store::{PostgresStore, StoreErrorKind};
use sesphr::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: [u8; 32] = [7; 32];
const READERS: usize = 3;
/// Threads per reader process.
const THREADS: usize = 4;

/// A throwaway cluster (fsync off: these tests kill SRS processes, never
/// the server) with an empty database `srs`, and its connection string.
fn fresh() -> (Cluster, String) {
    let cluster = Cluster::start_with(&["fsync=off"]);
    cluster.createdb("srs");
    let ci = cluster.conninfo("srs");
    (cluster, ci)
}

fn key() -> StorageKey {
    StorageKey::from_bytes(&KEY)
}

/// The system clock `ahead` seconds on, but never the same second twice in
/// this process: the grants and revocations these tests sign in quick
/// succession are dated in the order they are made (SPEC §7.5 gives a tie
/// to the revocation).
struct Ticking {
    ahead: u64,
}

impl Clock for Ticking {
    fn now(&self) -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static LAST: AtomicU64 = AtomicU64::new(0);
        let system = SystemClock.now() + self.ahead;
        let prev = LAST
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(system.max(last + 1))
            })
            .unwrap_or(0);
        system.max(prev + 1)
    }
}

fn open_ahead(conninfo: &str, ahead: u64) -> Srs {
    Srs::open(
        SrsConfig::new(PostgresStore::open(conninfo).unwrap(), key()).clock(Ticking { ahead }),
    )
    .unwrap()
}

fn open(conninfo: &str) -> Srs {
    open_ahead(conninfo, 0)
}

fn reader_id(i: usize) -> Identity {
    Identity::new(format!("reader-{i}")).unwrap()
}

/// The patient, its `lab` portion key and the readers, registered and
/// granted.
fn setup(srs: &Srs) {
    let p = patient(3);
    let k = portion(&p, "lab");
    srs.add_patient(&p, &[(k.public().label().clone(), k.public().epoch())])
        .unwrap();
    for i in 0..READERS {
        let u = user(i as u8);
        srs.add_user(&reader_id(i), Role::Doctor, &u).unwrap();
        grant(srs, i);
    }
}

fn grant(srs: &Srs, i: usize) {
    let p = patient(3);
    let k = portion(&p, "lab");
    srs.give(
        &p,
        &label("lab"),
        &reader_id(i),
        ReKey::generate(&k, user(i as u8).public()),
        Scope::AllRecords,
        None,
    )
    .unwrap();
}

fn revoke(srs: &Srs, i: usize) {
    srs.take(&patient(3), &label("lab"), &reader_id(i)).unwrap();
}

fn record() -> SealedPortion {
    let k = portion(&patient(3), "lab");
    SealedPortion::seal(k.public(), RecordId::random(), T0, b"result: 5.4 mmol/L").unwrap()
}

/// Nanoseconds on the machine's clock (shared by every process).
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Runs this test binary as a child process in `role`.
fn spawn(role: &str, conninfo: &str, extra: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SESPHR_PG_ROLE", role)
    .env("SESPHR_PG_CONNINFO", conninfo)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// The lines a child reported (prefixed `@@ `), as it prints them.
fn report_lines(child: &mut Child) -> impl Iterator<Item = String> + use<> {
    let out = child.stdout.take().unwrap();
    BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        // The harness may print on the same line before a report.
        .filter_map(|l| l.find("@@ ").map(|i| l[i + 3..].to_owned()))
}

/// The child processes' entry point (run only by the tests below).
#[test]
#[ignore = "a child process of the multi-process tests"]
fn child() {
    let Ok(role) = std::env::var("SESPHR_PG_ROLE") else {
        return;
    };
    let conninfo = std::env::var("SESPHR_PG_CONNINFO").unwrap();
    let env_usize = |k: &str| -> usize {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // The revoker signs after everything the parent signed at setup (whose
    // ticking clock ran ahead of the system's meanwhile), as a patient's
    // later decisions are.
    let srs = open_ahead(&conninfo, if role == "revoker" { 3600 } else { 0 });
    let out = std::io::stdout();
    let say = |line: String| {
        let mut o = out.lock();
        // The parent stopped listening: this child's work is over.
        if writeln!(o, "@@ {line}").and_then(|()| o.flush()).is_err() {
            std::process::exit(0);
        }
    };
    match role.as_str() {
        // Re-encrypts one record for one reader in a loop, from several
        // threads (so that requests are in flight while other processes
        // commit).
        "reader" => {
            let i = env_usize("SESPHR_PG_READER");
            let ops = env_usize("SESPHR_PG_OPS");
            let rec = record();
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        for _ in 0..ops / THREADS {
                            // Short idle gaps: a request may then arrive
                            // before this process has heard of the others'
                            // latest changes.
                            let gap = (now_ns() % 700) as u64;
                            std::thread::sleep(Duration::from_micros(gap));
                            let start = now_ns();
                            let r = srs.reencrypt(
                                &reader_id(i),
                                rec.header(),
                                sesphr::srs::Purpose::Treatment,
                            );
                            let end = now_ns();
                            let verdict = match r {
                                Ok(_) => "ok",
                                Err(SrsError::Denied(_)) => "denied",
                                Err(e) => panic!("reader {i}: {e}"),
                            };
                            say(format!("op {i} {start} {end} {verdict}"));
                        }
                    });
                }
            });
        }
        // Revokes and grants again, round-robin over the readers, until
        // the stop file exists.
        "revoker" => {
            let stop = std::env::var("SESPHR_PG_STOP").unwrap();
            let mut round = 0usize;
            while !Path::new(&stop).exists() {
                let i = round % READERS;
                let s = now_ns();
                revoke(&srs, i);
                say(format!("revoked {i} {s} {}", now_ns()));
                std::thread::sleep(Duration::from_millis(20));
                let s = now_ns();
                grant(&srs, i);
                say(format!("granted {i} {s} {}", now_ns()));
                std::thread::sleep(Duration::from_millis(5));
                round += 1;
            }
        }
        // Registers users one by one, reporting each once acknowledged.
        "registrar" => {
            let from = env_usize("SESPHR_PG_FROM");
            for n in from.. {
                let kp = KeyPair::generate();
                let id = Identity::new(format!("late-{n}")).unwrap();
                srs.add_user(&id, Role::Researcher, &kp).unwrap();
                say(format!("ack {n}"));
            }
        }
        // Re-encrypts batches of 64 for reader 0, reporting each batch.
        "batcher" => {
            let recs: Vec<SealedPortion> = (0..64).map(|_| record()).collect();
            let headers: Vec<&PortionHeader> = recs.iter().map(SealedPortion::header).collect();
            let batches = env_usize("SESPHR_PG_OPS");
            for b in 0..batches {
                let out = srs
                    .reencrypt_batch(&reader_id(0), &headers, sesphr::srs::Purpose::Treatment)
                    .unwrap();
                assert!(out.iter().all(Result::is_ok));
                say(format!("batch {b}"));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn two_srs_on_one_database_see_each_others_changes_at_once() {
    let (_cluster, ci) = fresh();
    let a = open(&ci);
    let b = open(&ci);
    setup(&a);
    let rec = record();
    // B learns of A's grants at its first request (a denial looks again).
    let rc = b
        .reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    assert_eq!(
        rec.open_as_delegatee(&user(0), &rc).unwrap(),
        b"result: 5.4 mmol/L"
    );
    // A revokes; B, which served this grant a moment ago, refuses at once.
    revoke(&a, 0);
    let r = b.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment);
    assert!(matches!(r, Err(SrsError::Denied(Denial::Revoked))), "{r:?}");
    let r = b.reencrypt_batch(
        &reader_id(0),
        &[rec.header(), rec.header()],
        sesphr::srs::Purpose::Treatment,
    );
    assert!(r.unwrap().iter().all(|x| matches!(x, Err(Denial::Revoked))),);
    // Unique identities and keys hold across processes.
    let kp = user(1);
    assert!(matches!(
        b.add_user(&reader_id(1), Role::Doctor, &kp),
        Err(SrsError::AlreadyRegistered)
    ));
    // Both registries and audits agree; a third opens to the same state.
    b.sync().unwrap();
    a.sync().unwrap();
    assert_eq!(a.registry(), b.registry());
    let n = a.verify_audit().unwrap();
    assert_eq!(b.verify_audit().unwrap(), n);
    let c = open(&ci);
    assert_eq!(c.registry(), a.registry());
    // Checkpoints from either process verify and are on the chain.
    let cp = b.checkpoint().unwrap();
    a.require_checkpoint(&cp).unwrap();
    assert_eq!(c.verify_audit().unwrap(), cp.seq);
}

#[test]
fn the_follower_applies_other_processes_changes_without_a_request() {
    let (_cluster, ci) = fresh();
    let a = open(&ci);
    let b = open(&ci);
    setup(&a);
    // No call on B: its follower (LISTEN/NOTIFY) catches up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.registry() != a.registry() {
        assert!(Instant::now() < deadline, "B never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One reported operation of a reader.
struct Op {
    reader: usize,
    start: u128,
    end: u128,
    ok: bool,
}

#[test]
fn after_revoke_returns_on_any_process_no_process_reencrypts() {
    let (cluster, ci) = fresh();
    setup(&open(&ci));
    let stop = cluster.socket_dir().join("stop");
    let ops_each = 3_400 / THREADS * THREADS + THREADS;
    let mut readers: Vec<Child> = (0..READERS)
        .map(|i| {
            spawn(
                "reader",
                &ci,
                &[
                    ("SESPHR_PG_READER", i.to_string()),
                    ("SESPHR_PG_OPS", ops_each.to_string()),
                ],
            )
        })
        .collect();
    let mut revoker = spawn(
        "revoker",
        &ci,
        &[("SESPHR_PG_STOP", stop.display().to_string())],
    );
    let revoker_lines = std::thread::spawn({
        let lines: Vec<String> = Vec::new();
        let mut it = report_lines(&mut revoker);
        move || {
            let mut lines = lines;
            lines.extend(&mut it);
            lines
        }
    });
    let reader_threads: Vec<_> = readers
        .iter_mut()
        .map(|c| {
            let it = report_lines(c);
            std::thread::spawn(move || it.collect::<Vec<String>>())
        })
        .collect();
    let mut ops = Vec::new();
    for t in reader_threads {
        for l in t.join().unwrap() {
            let f: Vec<&str> = l.split(' ').collect();
            ops.push(Op {
                reader: f[1].parse().unwrap(),
                start: f[2].parse().unwrap(),
                end: f[3].parse().unwrap(),
                ok: f[4] == "ok",
            });
        }
    }
    for mut c in readers {
        assert!(c.wait().unwrap().success(), "a reader failed");
    }
    std::fs::write(&stop, b"").unwrap();
    let rev = revoker_lines.join().unwrap();
    assert!(revoker.wait().unwrap().success(), "the revoker failed");

    // Per reader: (revoke returned, next grant started) windows.
    let mut windows: Vec<Vec<(u128, u128)>> = vec![Vec::new(); READERS];
    let mut open_revoke: Vec<Option<u128>> = vec![None; READERS];
    for l in &rev {
        let f: Vec<&str> = l.split(' ').collect();
        let i: usize = f[1].parse().unwrap();
        let (start, end): (u128, u128) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        match f[0] {
            "revoked" => open_revoke[i] = Some(end),
            "granted" => {
                if let Some(r) = open_revoke[i].take() {
                    windows[i].push((r, start));
                }
            }
            _ => unreachable!(),
        }
    }
    for (i, r) in open_revoke.iter().enumerate() {
        if let Some(r) = r {
            windows[i].push((*r, u128::MAX));
        }
    }
    let revocations: usize = windows.iter().map(Vec::len).sum();
    assert!(revocations >= 10, "only {revocations} revocations");
    assert!(ops.len() >= 10_000, "only {} operations", ops.len());
    // A request that started after a revoke returned, and ended before the
    // next grant started, never succeeds.
    let mut inside = 0;
    let mut denied = 0;
    for op in &ops {
        denied += usize::from(!op.ok);
        for &(revoked, regranted) in &windows[op.reader] {
            if op.start > revoked && op.end < regranted {
                inside += 1;
                assert!(
                    !op.ok,
                    "reader {} was served at {}..{} after its revoke returned at {revoked}",
                    op.reader, op.start, op.end
                );
            }
        }
    }
    assert!(
        inside >= 10,
        "only {inside} requests fell inside revoked windows"
    );
    assert!(denied > 0 && denied < ops.len());
    // The audit holds every request, and verifies.
    let srs = open(&ci);
    srs.verify_audit().unwrap();
    let n = cluster.psql("srs", "SELECT count(*) FROM sesphr_audit");
    assert!(n.parse::<usize>().unwrap() >= ops.len());
}

#[test]
fn a_killed_process_loses_nothing_acknowledged_and_a_restarted_one_catches_up() {
    let (_cluster, ci) = fresh();
    let srs = open(&ci);
    setup(&srs);
    let mut batcher = spawn("batcher", &ci, &[("SESPHR_PG_OPS", "1000000".into())]);
    let mut registrar = spawn("registrar", &ci, &[("SESPHR_PG_FROM", "0".into())]);
    let mut acked = report_lines(&mut registrar);
    let mut last = 0usize;
    for l in acked.by_ref().take(200) {
        last = l.strip_prefix("ack ").unwrap().parse().unwrap();
    }
    // Killed in the middle of its work (and of the batcher's batches).
    registrar.kill().unwrap();
    registrar.wait().unwrap();
    // Lines it printed before dying were acknowledged too.
    for l in acked {
        last = l.strip_prefix("ack ").unwrap().parse().unwrap();
    }
    // The other process goes on.
    let mut batches = report_lines(&mut batcher);
    let before = batches.next().unwrap();
    let after = batches.nth(3).unwrap();
    assert_ne!(before, after);
    // Every acknowledged registration is there, seen by the surviving SRS
    // and by a restarted one.
    srs.sync().unwrap();
    for n in 0..=last {
        let id = Identity::new(format!("late-{n}")).unwrap();
        assert!(srs.user(&id).is_some(), "acknowledged user {n} lost");
    }
    let mut restarted = spawn("registrar", &ci, &[("SESPHR_PG_FROM", "100000".into())]);
    let first = report_lines(&mut restarted).next().unwrap();
    assert_eq!(first, "ack 100000");
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    batcher.kill().unwrap();
    batcher.wait().unwrap();
    let reopened = open(&ci);
    for n in 0..=last {
        let id = Identity::new(format!("late-{n}")).unwrap();
        assert!(reopened.user(&id).is_some(), "acknowledged user {n} lost");
    }
    reopened.verify_audit().unwrap();
    srs.sync().unwrap();
    assert_eq!(reopened.registry(), srs.registry());
}

/// A database built up by a short history, with a checkpoint kept outside.
fn history(cluster: &Cluster, db: &str) -> Checkpoint {
    cluster.createdb(db);
    let srs = open(&cluster.conninfo(db));
    setup(&srs);
    let rec = record();
    srs.reencrypt(&reader_id(1), rec.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    revoke(&srs, 2);
    srs.drop_user(&reader_id(1)).unwrap();
    srs.checkpoint().unwrap()
}

/// Refused at open, or (for history before the latest checkpoint, which
/// open does not walk) by the full audit verification.
fn refused(ci: &str) -> Result<SrsError, String> {
    let r = Srs::open_postgres(ci, key()).and_then(|s| s.verify_audit());
    match r {
        Ok(_) => Err("opened and verified".into()),
        Err(e @ (SrsError::Tampered(_) | SrsError::AuditChainBroken { .. })) => Ok(e),
        Err(e) => Err(format!("{e:?}")),
    }
}

#[test]
fn edited_replayed_and_deleted_rows_and_a_restored_dump_are_refused() {
    let cluster = Cluster::start_with(&["fsync=off"]);
    let kept = history(&cluster, "base");
    let old = cluster.dump("base", "old.sql");
    // More history after the dump; then the latest checkpoint is kept.
    {
        let srs = open(&cluster.conninfo("base"));
        grant(&srs, 2);
        srs.reencrypt(
            &reader_id(2),
            record().header(),
            sesphr::srs::Purpose::Treatment,
        )
        .unwrap();
    }
    let newest = open(&cluster.conninfo("base")).checkpoint().unwrap();
    let current = cluster.dump("base", "current.sql");
    // Every column of every table edited (one row at a time), rows deleted,
    // an older version of a row replayed, rows inserted.
    let cases: Vec<String> = {
        let mut v = Vec::new();
        for col in ["kind", "key", "generation", "body", "secret", "mac"] {
            let set = match col {
                "kind" => "kind = kind + 10".to_owned(),
                "generation" => "generation = generation + 1".to_owned(),
                "secret" => "secret = overlay(secret placing '\\xff'::bytea from 20)".to_owned(),
                c => format!("{c} = overlay({c} placing '\\xff'::bytea from 3)"),
            };
            let only = if col == "secret" {
                "secret IS NOT NULL"
            } else {
                "true"
            };
            v.push(format!(
                "UPDATE sesphr_registry SET {set} WHERE (kind, key) = \
                 (SELECT kind, key FROM sesphr_registry WHERE {only} ORDER BY kind DESC, key LIMIT 1)"
            ));
        }
        for col in ["entry", "hash"] {
            v.push(format!(
                "UPDATE sesphr_audit SET {col} = overlay({col} placing '\\xee'::bytea from 12) \
                 WHERE seq = (SELECT max(seq) - 1 FROM sesphr_audit)"
            ));
        }
        v.push("UPDATE sesphr_checkpoints SET checkpoint = overlay(checkpoint placing '\\x00'::bytea from 100) WHERE seq = (SELECT max(seq) FROM sesphr_checkpoints)".into());
        v.push("UPDATE sesphr_meta SET value = overlay(value placing '\\x01'::bytea from 5) WHERE name = 'head'".into());
        for kind in 1..=4 {
            v.push(format!(
                "DELETE FROM sesphr_registry WHERE (kind, key) = \
                 (SELECT kind, key FROM sesphr_registry WHERE kind = {kind} ORDER BY key DESC LIMIT 1)"
            ));
        }
        v.push(
            "DELETE FROM sesphr_audit WHERE seq = (SELECT max(seq) - 2 FROM sesphr_audit)".into(),
        );
        v.push("DELETE FROM sesphr_meta WHERE name = 'head'".into());
        v.push("INSERT INTO sesphr_registry SELECT kind, key || '\\x00'::bytea, generation, body, secret, mac FROM sesphr_registry WHERE kind = 4 LIMIT 1".into());
        v
    };
    for (i, sql) in cases.iter().enumerate() {
        let db = format!("t{i}");
        cluster.createdb(&db);
        cluster.restore(&db, &current);
        let changed = cluster.psql(
            &db,
            &format!("WITH x AS ({sql} RETURNING 1) SELECT count(*) FROM x"),
        );
        assert_ne!(changed, "0", "{sql} changed nothing");
        let how = refused(&cluster.conninfo(&db));
        assert!(how.is_ok(), "{sql}: {how:?}");
    }
    // An older version of the rows replayed: the registry as of the old dump
    // under the current head.
    cluster.createdb("replay");
    cluster.restore("replay", &current);
    cluster.createdb("old");
    cluster.restore("old", &old);
    let old_rows = cluster.psql(
        "old",
        "SELECT string_agg(format('UPDATE sesphr_registry SET generation = %s, body = %L, secret = %L, mac = %L WHERE kind = %s AND key = %L', generation, body, secret, mac, kind, key), '; ') FROM sesphr_registry",
    );
    cluster.psql("replay", &old_rows);
    let how = refused(&cluster.conninfo("replay"));
    assert!(how.is_ok(), "older rows replayed: {how:?}");
    // The whole database restored from the older dump: it verifies on its
    // own, and is refused against the checkpoint kept since.
    let ci = cluster.conninfo("old");
    Srs::open_postgres(&ci, key()).unwrap();
    let r = Srs::open(
        SrsConfig::new(PostgresStore::open(&ci).unwrap(), key()).require_checkpoint(newest),
    );
    assert!(matches!(r, Err(SrsError::RolledBack { .. })), "{r:?}");
    let srs = open(&ci);
    srs.require_checkpoint(&kept).unwrap();
    assert!(matches!(
        srs.require_checkpoint(&newest),
        Err(SrsError::RolledBack { .. })
    ));
    // A running SRS whose database is rolled back under it refuses to go on.
    let live = open(&cluster.conninfo("base"));
    cluster.restore("base", &old);
    // The first calls may meet the connections the dropped database lost;
    // then every call is refused, the reload included: never accepted.
    let mut rolled_back = 0;
    for attempt in 0..6 {
        let r = live.add_user(
            &Identity::new(format!("after-{attempt}")).unwrap(),
            Role::Researcher,
            &KeyPair::generate(),
        );
        match r {
            Err(SrsError::RolledBack { .. }) => rolled_back += 1,
            Err(SrsError::Store(e)) if rolled_back == 0 => {
                assert_eq!(e.kind(), StoreErrorKind::Connection, "{e}");
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert!(rolled_back >= 3, "{rolled_back}");
    let r = live.reencrypt(
        &reader_id(0),
        record().header(),
        sesphr::srs::Purpose::Treatment,
    );
    assert!(matches!(r, Err(SrsError::RolledBack { .. })), "{r:?}");
}

fn assert_connection_error<T: std::fmt::Debug>(r: &Result<T, SrsError>) {
    match r {
        Err(SrsError::Store(e)) => assert_eq!(e.kind(), StoreErrorKind::Connection, "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_terminated_backend_or_a_timeout_is_a_typed_error_and_nothing_is_half_applied() {
    let cluster = Cluster::start_with(&["fsync=off"]);
    cluster.createdb("srs");
    let ci = format!("{} options='-c lock_timeout=300'", cluster.conninfo("srs"));
    let srs = open(&ci);
    setup(&srs);
    let before = srs.registry();
    let entries = srs.verify_audit().unwrap();
    // Another session holds the head row's lock: the SRS's commit waits in
    // its transaction.
    let mut holder = Command::new(pg::bin_dir().unwrap().join("psql"))
        .args([
            "-h",
            cluster.socket_dir().to_str().unwrap(),
            "-U",
            "postgres",
            "-d",
            "srs",
            "-q",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(
        stdin,
        "BEGIN; SELECT value FROM sesphr_meta WHERE name = 'head' FOR UPDATE;"
    )
    .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // A lock timeout: typed, nothing applied.
    let r = srs.take(&patient(3), &label("lab"), &reader_id(0));
    assert_connection_error(&r);
    assert_eq!(srs.registry(), before);
    // The backend terminated while it waits in its transaction.
    drop(srs);
    let srs = std::sync::Arc::new(open(&cluster.conninfo("srs")));
    let t = std::thread::spawn({
        let srs = srs.clone();
        move || srs.take(&patient(3), &label("lab"), &reader_id(0))
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.is_finished() {
        cluster.psql(
            "srs",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'",
        );
        assert!(Instant::now() < deadline, "the commit never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = t.join().unwrap();
    assert_connection_error(&r);
    writeln!(stdin, "ROLLBACK;").unwrap();
    drop(stdin);
    holder.wait().unwrap();
    // Nothing half-applied: the registry and the chain are as before, in
    // this SRS (reloaded) and in a fresh one; the next call reconnects.
    srs.sync().unwrap();
    assert_eq!(srs.registry(), before);
    assert_eq!(open(&ci).registry(), before);
    assert_eq!(srs.verify_audit().unwrap(), entries);
    revoke(&srs, 0);
    let r = srs.reencrypt(
        &reader_id(0),
        record().header(),
        sesphr::srs::Purpose::Treatment,
    );
    assert!(matches!(r, Err(SrsError::Denied(Denial::Revoked))), "{r:?}");
}

#[test]
fn a_missing_server_is_a_connection_error_and_newer_schemas_are_refused() {
    let (cluster, ci) = fresh();
    drop(open(&ci));
    cluster.psql(
        "srs",
        "UPDATE sesphr_meta SET value = '\\x00000063'::bytea WHERE name = 'schema'",
    );
    let e = PostgresStore::open(&ci).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::UnsupportedVersion, "{e}");
    let nowhere = format!(
        "host={} user=postgres dbname=srs port=1",
        cluster.socket_dir().display()
    );
    let e = PostgresStore::open(&nowhere).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Connection, "{e}");
}

/// A clock that, when armed, makes another SRS revoke reader 0 the moment
/// this SRS reads the time to decide a request: the revocation lands after
/// the request started, before it is served and committed.
/// B's clock: armed, the next reading *on the test's thread* revokes on A
/// (B's follower also reads the clock, inside its commits: revoking from
/// there would wait for the head row B itself holds).
struct RevokingClock {
    other: std::sync::OnceLock<std::sync::Arc<Srs>>,
    armed: std::sync::atomic::AtomicBool,
    on: std::thread::ThreadId,
}

struct ClockHandle(std::sync::Arc<RevokingClock>);

impl Clock for ClockHandle {
    fn now(&self) -> u64 {
        if std::thread::current().id() == self.0.on
            && self
                .0
                .armed
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Some(a) = self.0.other.get()
        {
            revoke(a, 0);
        }
        T0 + 10
    }
}

#[test]
fn a_request_whose_grant_is_revoked_elsewhere_before_it_commits_is_denied() {
    let (_cluster, ci) = fresh();
    let a = std::sync::Arc::new(open(&ci));
    setup(&a);
    let clock = std::sync::Arc::new(RevokingClock {
        other: std::sync::OnceLock::new(),
        armed: std::sync::atomic::AtomicBool::new(false),
        on: std::thread::current().id(),
    });
    let _ = clock.other.set(a.clone());
    let b = Srs::open(
        SrsConfig::new(PostgresStore::open(&ci).unwrap(), key()).clock(ClockHandle(clock.clone())),
    )
    .unwrap();
    let rec = record();
    b.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    for batch in [false, true] {
        clock.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        // The revocation returned on A while B was deciding: B served the
        // request from a registry that had not heard of it yet, and the
        // commit's re-check (after catching up) refuses it.
        let r = if batch {
            b.reencrypt_batch(
                &reader_id(0),
                &[rec.header()],
                sesphr::srs::Purpose::Treatment,
            )
            .unwrap()
            .remove(0)
            .map_err(SrsError::Denied)
        } else {
            b.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment)
        };
        assert!(matches!(r, Err(SrsError::Denied(Denial::Revoked))), "{r:?}");
        let last = b.audit_entries(0, usize::MAX).unwrap().pop().unwrap();
        assert_eq!(last.outcome, AuditOutcome::Denied(Denial::Revoked));
        grant(&a, 0);
    }
}

#[test]
fn an_archive_made_by_one_process_is_followed_by_the_others() {
    let (_cluster, ci) = fresh();
    let a = open(&ci);
    let b =
        Srs::open(SrsConfig::new(PostgresStore::open(&ci).unwrap(), key()).follow_changes(false))
            .unwrap();
    setup(&a);
    let rec = record();
    for _ in 0..5 {
        a.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment)
            .unwrap();
    }
    let cp = a.checkpoint().unwrap();
    let mut segment = Vec::new();
    let n = a.archive_audit(cp.seq, &mut segment).unwrap();
    assert_eq!(n, cp.seq);
    verify_segment(&mut segment.as_slice(), &a.verifying_key()).unwrap();
    // B, which never looked since before the archive, commits and verifies
    // from the new base (after the entry that records the archiving); a
    // third process opens.
    b.reencrypt(&reader_id(1), rec.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    assert_eq!(b.verify_audit().unwrap(), cp.seq + 2);
    a.sync().unwrap();
    assert_eq!(a.verify_audit().unwrap(), cp.seq + 2);
    // The accounting still adds up on both, and proofs cross the base.
    for s in [&a, &b] {
        let listed: Vec<_> = s
            .disclosures(patient(3).patient(), 0, u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(listed.len(), 1);
        let latest = s.checkpoint().unwrap();
        s.proven_entry(latest.seq, &latest).unwrap();
    }
    assert_eq!(open(&ci).registry(), a.registry());
}

/// A database writer restores the store right after process A acknowledged
/// a revocation and before process B caught up. What the design
/// guarantees: the revocation made a checkpoint, handed to the host's
/// sink; every process pinned to it (`require_checkpoint`, as a host hands
/// its processes each other's checkpoints) refuses the restored store at
/// its next commit — B serves nothing — and A, which saw the revocation,
/// refuses on its own. A process given neither cannot tell the restored
/// store from the real one (stated in the README).
#[test]
fn a_store_restored_under_running_processes_serves_no_revoked_grant_where_pinned() {
    let cluster = Cluster::start_with(&["fsync=off"]);
    cluster.createdb("srs");
    let ci = cluster.conninfo("srs");
    let kept: std::sync::Arc<std::sync::Mutex<Vec<Checkpoint>>> = Default::default();
    let sink = kept.clone();
    let a = Srs::open(
        SrsConfig::new(PostgresStore::open(&ci).unwrap(), key())
            .clock(Ticking { ahead: 0 })
            .on_checkpoint(move |cp| sink.lock().unwrap().push(*cp)),
    )
    .unwrap();
    setup(&a);
    let b =
        Srs::open(SrsConfig::new(PostgresStore::open(&ci).unwrap(), key()).follow_changes(false))
            .unwrap();
    let rec = record();
    b.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment)
        .unwrap();
    let before = cluster.dump("srs", "before.sql");
    let receipt = a.take(&patient(3), &label("lab"), &reader_id(0)).unwrap();
    assert_eq!(receipt.grants(), 1);
    let at_revocation = *kept.lock().unwrap().last().unwrap();
    assert!(at_revocation.seq >= receipt.seq());
    // The restore: the revocation is gone from the database.
    cluster.restore("srs", &before);
    // The restore dropped every connection: a call may meet that first
    // (a typed connection error, nothing done) and the next reconnects.
    fn again<T>(f: impl Fn() -> Result<T, SrsError>) -> Result<T, SrsError> {
        // Each of a process's connections (reader, writer) meets it once.
        let mut r = f();
        for _ in 0..3 {
            match r {
                Err(SrsError::Store(ref e)) if e.kind() == StoreErrorKind::Connection => r = f(),
                _ => break,
            }
        }
        r
    }
    // B, handed the revocation's checkpoint, refuses the restored store
    // there and then, and serves nothing after.
    let pinned = again(|| b.require_checkpoint(&at_revocation));
    assert!(
        matches!(pinned, Err(SrsError::RolledBack { .. })),
        "{pinned:?}"
    );
    for _ in 0..3 {
        let r = again(|| b.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment));
        assert!(
            matches!(r, Err(SrsError::RolledBack { .. })),
            "B served from the restored store: {r:?}"
        );
    }
    // A saw the revocation: it refuses too.
    let r = again(|| a.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment));
    assert!(
        matches!(r, Err(SrsError::RolledBack { .. })),
        "A served from the restored store: {r:?}"
    );
    // A third process opened with the checkpoint refuses to open.
    let c = Srs::open(
        SrsConfig::new(PostgresStore::open(&ci).unwrap(), key()).require_checkpoint(at_revocation),
    );
    assert!(matches!(c, Err(SrsError::RolledBack { .. })));
}

/// The accounting of disclosures on PostgreSQL, read by a fresh process
/// from a database whose audit entries (before the latest checkpoint too)
/// and disclosure index rows were edited, deleted or duplicated — every
/// column found in the catalog (`information_schema.columns`), not named by
/// hand: the listing is an error or exactly the true one, without
/// `verify_audit`.
#[test]
fn the_accounting_of_disclosures_is_true_or_an_error_on_postgres() {
    let cluster = Cluster::start_with(&["fsync=off"]);
    cluster.createdb("srs");
    let ci = cluster.conninfo("srs");
    let patient_id = patient(3).patient().clone();
    let truth = {
        let a = open(&ci);
        setup(&a);
        let rec = record();
        for i in 0..30 {
            a.reencrypt(
                &reader_id(i % READERS),
                rec.header(),
                sesphr::srs::Purpose::Treatment,
            )
            .unwrap();
        }
        a.checkpoint().unwrap();
        for _ in 0..4 {
            a.reencrypt(&reader_id(0), rec.header(), sesphr::srs::Purpose::Treatment)
                .unwrap();
        }
        let t: Vec<_> = a
            .disclosures(&patient_id, 0, u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(t.len(), 34);
        t
    };
    let dump = cluster.dump("srs", "accounting.sql");
    let seqs: Vec<u64> = truth.iter().map(|d| d.seq).filter(|s| s % 9 == 2).collect();
    assert!(seqs.len() >= 3);
    let mut cases = Vec::new();
    for table in ["sesphr_audit", "sesphr_disclosures"] {
        let cols = cluster.psql(
            "srs",
            &format!(
                "SELECT column_name || ':' || data_type FROM information_schema.columns \
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            ),
        );
        let cols: Vec<(String, String)> = cols
            .lines()
            .map(|l| {
                let (c, t) = l.split_once(':').unwrap();
                (c.to_owned(), t.to_owned())
            })
            .collect();
        assert!(cols.len() >= 3, "{table}: {cols:?}");
        for &seq in &seqs {
            for (col, typ) in &cols {
                let set = match (col.as_str(), typ.as_str()) {
                    (_, "bytea") => {
                        format!("{col} = overlay({col} placing '\\x5a'::bytea from 21)")
                    }
                    ("seq", _) => format!("{col} = {col} + 1000000"),
                    _ => format!("{col} = {col} + 1"),
                };
                cases.push(format!("UPDATE {table} SET {set} WHERE seq = {seq}"));
            }
            cases.push(format!("DELETE FROM {table} WHERE seq = {seq}"));
        }
    }
    cases.push(format!(
        "INSERT INTO sesphr_disclosures SELECT patient, time + 1, seq FROM sesphr_disclosures \
         WHERE seq = {}",
        seqs[0]
    ));
    cases.push("DELETE FROM sesphr_disclosures".into());
    let mut refused = 0;
    for sql in &cases {
        cluster.restore("srs", &dump);
        cluster.psql("srs", sql);
        let Ok(srs) = Srs::open(SrsConfig::new(PostgresStore::open(&ci).unwrap(), key())) else {
            refused += 1;
            continue;
        };
        match srs
            .disclosures(&patient_id, 0, u64::MAX)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(list) => assert!(
                list == truth,
                "{sql}: a wrong accounting ({} listed)",
                list.len()
            ),
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused * 2 > cases.len(),
        "{refused} of {} refused",
        cases.len()
    );
}

/// Hybrid (post-quantum) headers across processes: a user's ML-KEM key
/// registered on one process and the SRS key rotated there are what the
/// other serves with; every process derives the same ML-KEM keys from the
/// shared storage key.
#[test]
fn hybrid_keys_and_rotation_hold_across_processes() {
    let (_cluster, ci) = fresh();
    let a = open(&ci);
    let b = open(&ci);
    setup(&a);
    let reader = user(0).with_pq(PqSecretKey::from_seed(&[40; 64]));
    a.register_pq_key(&reader_id(0), reader.pq_public().unwrap())
        .unwrap();
    let lab = portion(&patient(3), "lab");
    let v1 = b.pq_public_key().unwrap();
    assert_eq!(v1, a.pq_public_key().unwrap());
    let old = SealedPortion::seal(
        &lab.hybrid_public(&v1).unwrap(),
        RecordId::random(),
        T0,
        b"old",
    )
    .unwrap();
    let v2 = a.rotate_pq_key().unwrap();
    b.sync().unwrap();
    assert_eq!(b.pq_public_key().unwrap(), v2);
    let new = SealedPortion::seal(
        &lab.hybrid_public(&v2).unwrap(),
        RecordId::random(),
        T0,
        b"new",
    )
    .unwrap();
    for (sealed, text) in [(&old, &b"old"[..]), (&new, &b"new"[..])] {
        let rc = b
            .reencrypt(
                &reader_id(0),
                sealed.header(),
                sesphr::srs::Purpose::Treatment,
            )
            .unwrap();
        assert_eq!(sealed.open_as_delegatee(&reader, &rc).unwrap(), text);
    }
    // A reader without a registered ML-KEM key is denied on either process.
    let r = b.reencrypt(&reader_id(1), new.header(), sesphr::srs::Purpose::Treatment);
    assert!(matches!(r, Err(SrsError::Denied(Denial::NoPqKey))), "{r:?}");
    a.sync().unwrap();
    assert_eq!(a.registry(), b.registry());
    assert_eq!(a.verify_audit().unwrap(), b.verify_audit().unwrap());
}

#[test]
fn a_registry_snapshot_restarts_a_process_and_an_edited_one_is_ignored() {
    let (cluster, ci) = fresh();
    let srs = open(&ci);
    setup(&srs);
    let info = srs.write_snapshot().unwrap().unwrap();
    // Another process's changes after the snapshot.
    let other = open(&ci);
    other
        .add_user(&reader_id(9), Role::Researcher, &user(9))
        .unwrap();
    drop(other);
    drop(srs);
    let want =
        Srs::open(SrsConfig::new(PostgresStore::open(&ci).unwrap(), key()).use_snapshot(false))
            .unwrap()
            .registry();
    let srs = open(&ci);
    let SnapshotUse::Used { seq, rows_since } = srs.open_report().snapshot else {
        panic!("{:?}", srs.open_report());
    };
    assert_eq!(seq, info.seq);
    assert!(rows_since >= 1);
    assert_eq!(srs.registry(), want);
    assert!(
        srs.reencrypt(&reader_id(1), record().header(), Purpose::Treatment)
            .is_ok()
    );
    drop(srs);
    // A byte of a part flipped: ignored, every row verified instead.
    cluster.psql(
        "srs",
        "UPDATE sesphr_snapshot SET data = set_byte(data, 40, get_byte(data, 40) # 1) WHERE part = 0",
    );
    let srs = open(&ci);
    assert_eq!(
        srs.open_report().snapshot,
        SnapshotUse::Ignored(SnapshotFault::Unreadable)
    );
    assert_eq!(srs.registry(), want);
    // A revocation deletes it (it holds the revoked key).
    srs.write_snapshot().unwrap().unwrap();
    revoke(&srs, 0);
    drop(srs);
    assert_eq!(
        cluster
            .psql("srs", "SELECT count(*) FROM sesphr_snapshot")
            .trim(),
        "0"
    );
    assert_eq!(open(&ci).open_report().snapshot, SnapshotUse::None);
}
