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
    let srs =
        Arc::new(Srs::open(SrsConfig::new(MemoryStore::new(), StorageKey::generate())).unwrap());
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
    let srs = Srs::open(SrsConfig::shared(store.clone(), key.clone())).unwrap();
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
            let (srs, p, lab, id, k, kp, s) = (&srs, &p, &lab, &id, &k, &kp, &s);
            sc.spawn(move || {
                for i in 0..90 {
                    match (i + t) % 3 {
                        0 => {
                            srs.give(
                                p,
                                lab,
                                id,
                                ReKey::generate(k, kp.public()),
                                Scope::AllRecords,
                                None,
                            )
                            .unwrap();
                        }
                        1 => match srs.take(p, lab, id) {
                            Ok(_) | Err(SrsError::NotGranted) => {}
                            Err(e) => panic!("{e:?}"),
                        },
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
