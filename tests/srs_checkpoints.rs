//! Checkpoints, bounded-cost restarts, streaming verification beside live
//! traffic, and archiving of old audit segments.
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use common::Consenting;
use common::*;
use sesphr::srs::*;
use sesphr::store::SqliteStore;
use sesphr::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const KEY: [u8; 32] = [5; 32];

struct World {
    srs: Srs,
    doc: Identity,
    header: PortionHeader,
}

/// An SRS on SQLite at `path` with one granted doctor and one sealed record.
fn world(path: &std::path::Path, every: u64, sink: Option<Arc<Mutex<Vec<Checkpoint>>>>) -> World {
    let mut cfg = SrsConfig::new(
        SqliteStore::open(path).unwrap(),
        StorageKey::from_bytes(&KEY),
    )
    .checkpoint_every(every);
    if let Some(s) = sink {
        cfg = cfg.on_checkpoint(move |cp| s.lock().unwrap().push(*cp));
    }
    let srs = Srs::open(cfg).unwrap();
    let p = patient(7);
    let med = label("medical");
    let k = p.portion_secret(&med, 0);
    let doc = Identity::new("dr").unwrap();
    if srs.open_report().created {
        srs.add_patient(&p, &[(k.public().label().clone(), k.public().epoch())])
            .unwrap();
        srs.add_user(&doc, Role::Doctor, &user(1)).unwrap();
        srs.give(
            &p,
            &med,
            &doc,
            ReKey::generate(&k, user(1).public()),
            Scope::AllRecords,
            None,
        )
        .unwrap();
    }
    let header = SealedPortion::seal(k.public(), RecordId::random(), T0, b"r")
        .unwrap()
        .header()
        .clone();
    World { srs, doc, header }
}

/// Appends `n` re-encryption entries in batches of 256.
fn traffic(w: &World, n: usize) {
    let batch: Vec<&PortionHeader> = std::iter::repeat_n(&w.header, 256).collect();
    let mut left = n;
    while left > 0 {
        let k = left.min(256);
        let out = w
            .srs
            .reencrypt_batch(&w.doc, &batch[..k], sesphr::srs::Purpose::Treatment)
            .unwrap();
        assert!(out.iter().all(Result::is_ok));
        left -= k;
    }
}

#[test]
fn open_verifies_only_what_follows_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let mut verified = Vec::new();
    for total in [2_000usize, 20_000] {
        let w = world(&path, 1_000, None);
        traffic(&w, total - w.srs.verify_audit().unwrap() as usize);
        drop(w);
        let w = world(&path, 1_000, None);
        let r = w.srs.open_report();
        assert!(r.seq >= total as u64);
        // At most one checkpoint interval plus one batch after it.
        assert!(r.entries_verified < 1_000 + 256, "{r:?}");
        verified.push(r.entries_verified);
        // The whole chain still verifies, streaming.
        assert_eq!(w.srs.verify_audit().unwrap(), r.seq);
    }
}

#[test]
fn checkpoints_reach_the_host_and_pin_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let got = Arc::new(Mutex::new(Vec::new()));
    let w = world(&path, 100, Some(got.clone()));
    traffic(&w, 1_000);
    let on_demand = w.srs.checkpoint().unwrap();
    let cps = got.lock().unwrap().clone();
    // The genesis checkpoint, one per commit that crossed 100 entries (each
    // batch of 256 did), and the one asked for.
    assert_eq!(cps.len(), 1 + 4 + 1, "{cps:?}");
    assert_eq!(cps.first().unwrap().seq, 0);
    assert_eq!(*cps.last().unwrap(), on_demand);
    assert_eq!(w.srs.latest_checkpoint(), Some(on_demand));
    for cp in &cps {
        w.srs.verify_checkpoint(cp).unwrap();
        w.srs.require_checkpoint(cp).unwrap();
        // The encoding round-trips.
        assert_eq!(Checkpoint::from_bytes(&cp.to_bytes()).unwrap(), *cp);
    }
    let mut bad = on_demand;
    bad.digest[0] ^= 1;
    assert!(matches!(
        w.srs.verify_checkpoint(&bad),
        Err(SrsError::InvalidCheckpoint)
    ));
    // Signed by the key derived from the storage key, or by the host's.
    drop(w);
    let host_key = SigningKey::from_bytes(&[3; 32]);
    let srs = Srs::open(
        SrsConfig::new(
            SqliteStore::open(dir.path().join("b.db")).unwrap(),
            StorageKey::from_bytes(&KEY),
        )
        .signing_key(host_key.clone()),
    )
    .unwrap();
    let cp = srs.checkpoint().unwrap();
    assert_eq!(srs.verifying_key(), host_key.verifying_key());
    host_key
        .verifying_key()
        .verify_strict(
            &[
                &b"sesphr/v1/checkpoint"[..],
                &cp.to_bytes()[..Checkpoint::LEN - 64],
            ]
            .concat(),
            &sesphr::srs::Signature::from_bytes(&cp.signature),
        )
        .unwrap();
}

#[test]
fn re_encryptions_go_on_while_the_audit_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let w = Arc::new(world(&path, 4096, None));
    traffic(&w, 60_000);
    let verifying = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (w, verifying, during, stop) =
            (w.clone(), verifying.clone(), during.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let was = verifying.load(Ordering::SeqCst);
                w.srs
                    .reencrypt(&w.doc, &w.header, sesphr::srs::Purpose::Treatment)
                    .unwrap();
                if was && verifying.load(Ordering::SeqCst) {
                    during.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    for _ in 0..3 {
        verifying.store(true, Ordering::SeqCst);
        let n = w.srs.verify_audit().unwrap();
        verifying.store(false, Ordering::SeqCst);
        assert!(n >= 60_000);
    }
    stop.store(true, Ordering::SeqCst);
    worker.join().unwrap();
    assert!(
        during.load(Ordering::SeqCst) > 0,
        "no re-encryption completed while verify_audit ran"
    );
}

#[test]
fn archived_segments_verify_on_their_own_and_the_store_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let w = world(&path, 500, None);
    traffic(&w, 3_000);
    let cp = w.srs.checkpoint().unwrap();
    let mut seg = Vec::new();
    let n = w.srs.archive_audit(cp.seq, &mut seg).unwrap();
    assert_eq!(n, cp.seq);
    let info = verify_segment(&mut seg.as_slice(), &w.srs.verifying_key()).unwrap();
    assert_eq!((info.first_seq, info.last_seq, info.end), (1, cp.seq, cp));
    // The live store starts after the archived part, with the entry that
    // records the archiving, and still verifies.
    let live = w.srs.audit_entries(1, 10).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].seq, live[0].action),
        (cp.seq + 1, sesphr::model::AuditAction::Archive)
    );
    traffic(&w, 700);
    assert_eq!(w.srs.verify_audit().unwrap(), cp.seq + 701);
    // A second segment continues from the first one's checkpoint.
    let cp2 = w.srs.checkpoint().unwrap();
    let mut seg2 = Vec::new();
    assert_eq!(w.srs.archive_audit(cp2.seq, &mut seg2).unwrap(), 701);
    let info2 = verify_segment(&mut seg2.as_slice(), &w.srs.verifying_key()).unwrap();
    assert_eq!(info2.first_seq, cp.seq + 1);
    // A restart after pruning works and pins to the kept checkpoints.
    drop(w);
    let w = world(&path, 500, None);
    w.srs.require_checkpoint(&cp).unwrap();
    w.srs.require_checkpoint(&cp2).unwrap();
    assert_eq!(w.srs.verify_audit().unwrap(), cp2.seq + 1);
    // The accounting of what is live still adds up to the authenticated
    // count (the archived disclosures are in the segments).
    traffic(&w, 20);
    let live: Vec<_> = w
        .srs
        .disclosures(patient(7).patient(), 0, u64::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!live.is_empty() && live.iter().all(|d| d.seq > cp2.seq));
    // Any changed byte of a segment is caught.
    for i in [10, seg.len() / 2, seg.len() - 5] {
        let mut bad = seg.clone();
        bad[i] ^= 1;
        assert!(
            verify_segment(&mut bad.as_slice(), &w.srs.verifying_key()).is_err(),
            "byte {i}"
        );
    }
    // Archiving needs a checkpoint past the base.
    assert!(matches!(
        w.srs.archive_audit(cp.seq, &mut Vec::new()),
        Err(SrsError::Diverged { .. })
    ));
}

/// Checkpoints come every N entries and also at the first commit an
/// interval after the last one while entries arrive: a cut back to the
/// latest checkpoint erases a bounded time of history, not up to N − 1
/// entries of any age. An idle SRS makes none.
#[test]
fn checkpoints_come_at_least_every_interval_while_entries_arrive() {
    let clock = ManualClock::new(T0);
    let made = Arc::new(Mutex::new(Vec::<Checkpoint>::new()));
    let sink = made.clone();
    let srs = Srs::open(
        SrsConfig::new(store::MemoryStore::new(), StorageKey::from_bytes(&KEY))
            .clock(clock.clone())
            .checkpoint_every(1_000_000)
            .checkpoint_interval(core::time::Duration::from_secs(30))
            .on_checkpoint(move |cp| sink.lock().unwrap().push(*cp)),
    )
    .unwrap();
    let p = patient(7);
    srs.add_patient(&p, &[(label("medical"), 0)]).unwrap();
    let doc = Identity::new("dr").unwrap();
    srs.add_user(&doc, Role::Doctor, &user(1)).unwrap();
    let made_now = || made.lock().unwrap().len();
    // The genesis checkpoint came from `open`, before the sink saw anything:
    // within the interval, entries make none.
    let base = made_now();
    clock.advance(29);
    srs.add_user(&Identity::new("nurse").unwrap(), Role::Doctor, &user(2))
        .unwrap();
    assert_eq!(made_now(), base);
    // The first commit 30 s on makes one, covering it.
    clock.advance(1);
    srs.add_user(&Identity::new("clerk").unwrap(), Role::Doctor, &user(3))
        .unwrap();
    assert_eq!(made_now(), base + 1);
    let cp = srs.latest_checkpoint().unwrap();
    assert_eq!((cp.seq, cp.time), (srs.verify_audit().unwrap(), T0 + 30));
    assert_eq!(cp, *made.lock().unwrap().last().unwrap());
    // Idle time makes no checkpoint; the next entry after it does.
    clock.advance(3600);
    assert_eq!(made_now(), base + 1);
    srs.add_user(&Identity::new("porter").unwrap(), Role::Doctor, &user(4))
        .unwrap();
    assert_eq!(made_now(), base + 2);
    assert_eq!(srs.latest_checkpoint().unwrap().time, T0 + 3630);
}
