//! Property 5: grants, revocations and re-encryptions interleaved from many
//! threads. Once `revoke` returns, no re-encryption under that grant succeeds.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::needless_range_loop,
    clippy::map_entry
)]

mod common;
use common::Consenting;
use common::*;
use sesphr::srs::*;
use sesphr::store::MemoryStore;
use sesphr::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const USERS: usize = 6;
const ROUNDS: usize = 8;
const READERS: usize = 3;
/// Operations the readers complete between two revocations: 8 rounds × 7
/// steps × 250 guarantees more than 10,000 interleaved operations.
const PACE: u64 = 250;

#[test]
fn no_reencryption_succeeds_after_revoke_returns() {
    let clock = ManualClock::new(T0);
    let srs = Arc::new(
        Srs::open(SrsConfig::new(MemoryStore::new(), StorageKey::generate()).clock(clock.clone()))
            .unwrap(),
    );
    let p = patient(3);
    let lab = label("lab");
    let k = p.portion_secret(&lab, 0);
    srs.add_patient(&p, &[(k.public().label().clone(), k.public().epoch())])
        .unwrap();
    let ids: Vec<Identity> = (0..USERS)
        .map(|u| Identity::new(format!("u{u}")).unwrap())
        .collect();
    let pairs: Vec<KeyPair> = (0..USERS).map(|u| user(u as u8)).collect();
    for u in 0..USERS {
        srs.add_user(&ids[u], Role::Doctor, &pairs[u]).unwrap();
    }
    let sealed: Vec<SealedPortion> = (0..8)
        .map(|i| SealedPortion::seal(k.public(), RecordId::random(), T0 + i, b"x").unwrap())
        .collect();

    let ops = AtomicU64::new(0);
    let ok_after_revoke = AtomicU64::new(0);
    let successes = AtomicU64::new(0);
    let denials = AtomicU64::new(0);
    for round in 0..ROUNDS {
        // Each round's grants are signed after the last round's revocations.
        clock.advance(1);
        for u in 0..USERS {
            srs.give(
                &p,
                &lab,
                &ids[u],
                ReKey::generate(&k, pairs[u].public()),
                Scope::AllRecords,
                None,
            )
            .unwrap();
        }
        // `revoked[u]` is set only after revoke(u) has returned.
        let revoked: Vec<AtomicBool> = (0..USERS).map(|_| AtomicBool::new(false)).collect();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..READERS {
                let (srs, ids, sealed, revoked, stop) = (&srs, &ids, &sealed, &revoked, &stop);
                let (ops, ok_after_revoke, successes, denials) =
                    (&ops, &ok_after_revoke, &successes, &denials);
                s.spawn(move || {
                    let mut i = t;
                    while !stop.load(Ordering::SeqCst) {
                        let u = i % USERS;
                        let was_revoked = revoked[u].load(Ordering::SeqCst);
                        let res = if i % 7 == 0 {
                            let hs: Vec<&PortionHeader> =
                                sealed.iter().take(3).map(|s| s.header()).collect();
                            srs.reencrypt_batch(&ids[u], &hs, sesphr::srs::Purpose::Treatment)
                                .unwrap()
                                .into_iter()
                                .next()
                                .unwrap()
                                .map_err(SrsError::Denied)
                        } else {
                            srs.reencrypt(
                                &ids[u],
                                sealed[i % sealed.len()].header(),
                                sesphr::srs::Purpose::Treatment,
                            )
                        };
                        ops.fetch_add(1, Ordering::Relaxed);
                        match res {
                            Ok(_) => {
                                successes.fetch_add(1, Ordering::Relaxed);
                                if was_revoked {
                                    ok_after_revoke.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            Err(SrsError::Denied(Denial::Revoked)) => {
                                denials.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                        i += READERS;
                    }
                });
            }
            // The revoker: revokes users one by one while the readers run.
            let (srs, ids, revoked, stop) = (&srs, &ids, &revoked, &stop);
            let p = &p;
            let lab = &lab;
            let ops = &ops;
            s.spawn(move || {
                for u in 0..USERS {
                    let target = ops.load(Ordering::Relaxed) + PACE;
                    while ops.load(Ordering::Relaxed) < target {
                        std::thread::yield_now();
                    }
                    srs.take(p, lab, &ids[u]).unwrap();
                    revoked[u].store(true, Ordering::SeqCst);
                }
                let target = ops.load(Ordering::Relaxed) + PACE;
                while ops.load(Ordering::Relaxed) < target {
                    std::thread::yield_now();
                }
                stop.store(true, Ordering::SeqCst);
            });
        });
        assert_eq!(
            ok_after_revoke.load(Ordering::SeqCst),
            0,
            "round {round}: a re-encryption succeeded after revoke returned"
        );
    }
    let total = ops.load(Ordering::SeqCst);
    assert!(total >= 10_000, "only {total} interleaved operations");
    assert!(successes.load(Ordering::SeqCst) > 0 && denials.load(Ordering::SeqCst) > 0);
    // Every operation is in the audit chain, which still verifies.
    let n = srs.verify_audit().unwrap();
    assert!(n >= total);
}

/// Grants and revocations racing each other on the same grant from several
/// threads leave a state that a restart reproduces, and an audit chain that
/// verifies.
#[test]
fn racing_grants_and_revocations_stay_consistent() {
    let store: Arc<dyn sesphr::store::Store> = Arc::new(MemoryStore::new());
    let key = StorageKey::generate();
    let clock = ManualClock::new(T0);
    let srs =
        Srs::open(SrsConfig::shared(store.clone(), key.clone()).clock(clock.clone())).unwrap();
    let p = patient(4);
    let lab = label("medical");
    let k = p.portion_secret(&lab, 0);
    srs.add_patient(&p, &[(k.public().label().clone(), k.public().epoch())])
        .unwrap();
    let id = Identity::new("shared-user").unwrap();
    let kp = user(9);
    srs.add_user(&id, Role::Family, &kp).unwrap();
    let s = SealedPortion::seal(k.public(), RecordId::random(), T0, b"y").unwrap();
    // A first grant before the race, so that a re-encryption only ever meets
    // a granted or a revoked grant (never none at all).
    srs.give(
        &p,
        &lab,
        &id,
        ReKey::generate(&k, kp.public()),
        Scope::AllRecords,
        None,
    )
    .unwrap();
    std::thread::scope(|sc| {
        for t in 0..4 {
            let (srs, p, lab, id, k, kp, s, clock) = (&srs, &p, &lab, &id, &k, &kp, &s, &clock);
            sc.spawn(move || {
                for i in 0..90 {
                    match (i + t) % 3 {
                        // A grant dated at or before the last revocation,
                        // or a revocation older than the last one (their
                        // dates were read before another thread's), is
                        // refused; nothing else is.
                        0 => match srs.give(
                            p,
                            lab,
                            id,
                            ReKey::generate(k, kp.public()),
                            Scope::AllRecords,
                            None,
                        ) {
                            Ok(()) | Err(SrsError::Replayed) => {}
                            Err(e) => panic!("{e:?}"),
                        },
                        1 => {
                            if t == 0 {
                                clock.advance(1);
                            }
                            match srs.take(p, lab, id) {
                                Ok(_) | Err(SrsError::Replayed) => {}
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                        _ => match srs.reencrypt(id, s.header(), sesphr::srs::Purpose::Treatment) {
                            Ok(rc) => assert_eq!(s.open_as_delegatee(kp, &rc).unwrap(), b"y"),
                            Err(SrsError::Denied(Denial::Revoked)) => {}
                            Err(e) => panic!("{e:?}"),
                        },
                    }
                }
            });
        }
    });
    let view = srs.registry();
    let n = srs.verify_audit().unwrap();
    drop(srs);
    let again = Srs::open(SrsConfig::shared(store, key)).unwrap();
    assert_eq!(again.registry(), view);
    assert_eq!(again.verify_audit().unwrap(), n);
}

/// A SQLite store whose change listener takes a while to set up (as a
/// PostgreSQL connection does): the follower used to hold the store during
/// that time, and after a drop of its SRS.
struct SlowListener(sesphr::store::SqliteStore);

mod slow {
    use super::SlowListener;
    use sesphr::Identity;
    use sesphr::srs::Checkpoint;
    use sesphr::store::*;

    impl Store for SlowListener {
        fn head(&self) -> Result<Option<ChainHead>, StoreError> {
            self.0.head()
        }
        fn rows(
            &self,
            each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            self.0.rows(each)
        }
        fn rows_since(
            &self,
            generation: u64,
            each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            self.0.rows_since(generation, each)
        }
        fn commit(&self, build: &mut Build<'_>) -> Result<bool, StoreError> {
            self.0.commit(build)
        }
        fn is_shared(&self) -> bool {
            true
        }
        fn listener(&self) -> Result<Option<Box<dyn Listener>>, StoreError> {
            std::thread::sleep(std::time::Duration::from_millis(100));
            Ok(None)
        }
        fn audit(&self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
            self.0.audit(from, to, limit)
        }
        fn audit_last_seq(&self) -> Result<Option<u64>, StoreError> {
            self.0.audit_last_seq()
        }
        fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
            self.0.latest_checkpoint()
        }
        fn checkpoint_at(&self, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
            self.0.checkpoint_at(seq)
        }
        fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError> {
            self.0.checkpoints(from, limit)
        }
        fn checkpoint_count(&self) -> Result<u64, StoreError> {
            self.0.checkpoint_count()
        }
        fn disclosure_index(&self, upto: u64, each: &mut IndexVisit<'_>) -> Result<(), StoreError> {
            self.0.disclosure_index(upto, each)
        }
        fn disclosures(
            &self,
            patient: &Identity,
            from: u64,
            to: u64,
            after: Option<(u64, u64)>,
            limit: usize,
        ) -> Result<Vec<AuditRecord>, StoreError> {
            self.0.disclosures(patient, from, to, after, limit)
        }
    }
}

/// Dropping a shared-mode SRS closes its store before the drop returns: its
/// follower thread lets go first (waiting for a listener being set up or a
/// catch-up in flight), so the same SQLite file reopens at once.
#[test]
fn a_dropped_shared_srs_releases_its_store_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let key = [9u8; 32];
    for i in 0..5 {
        let store =
            sesphr::store::SqliteStore::open(&path).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        let store: Arc<dyn sesphr::store::Store> = Arc::new(SlowListener(store));
        let watch = Arc::downgrade(&store);
        let srs = Srs::open(SrsConfig::shared(store, StorageKey::from_bytes(&key))).unwrap();
        if i % 2 == 1 {
            // The follower is setting up its listener now.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(srs);
        assert_eq!(
            watch.strong_count(),
            0,
            "round {i}: the store outlived its SRS"
        );
    }
}
