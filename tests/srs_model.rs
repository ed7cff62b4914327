//! The design's properties 1–4 (DESIGN §7) as a state-machine property test:
//! random sequences of register / remove / grant / revoke / seal / re-encrypt
//! / open / clock / restart run against the SRS and against a plain
//! reference model of who may read what; any divergence fails.
//!
//! Property 5 (concurrency) is in `srs_concurrency.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::needless_range_loop,
    clippy::map_entry
)]

mod common;
use common::Consenting;
#[cfg(feature = "postgres")]
#[path = "common/pg.rs"]
mod pg;
use common::*;
use proptest::prelude::*;
use sesphr::srs::*;
use sesphr::store::{MemoryStore, SqliteStore, Store};
use sesphr::*;
use std::collections::HashMap;
use std::sync::Arc;

const USERS: usize = 4; // user 3 is never registered by the generator below unless chosen
const LABELS: [&str; 2] = ["medical", "lab"];
/// Key epochs registered for every label: consent is ordered per (patient,
/// label, user) across them.
const EPOCHS: usize = 2;

#[derive(Clone, Debug)]
enum Op {
    Register(usize),
    Remove(usize),
    Grant {
        user: usize,
        label: usize,
        epoch: usize,
        since: Option<u64>,
        expiry: Option<u64>,
        /// Signed this long before it is filed (a grant the host held back).
        back: u64,
    },
    Revoke {
        user: usize,
        label: usize,
    },
    Seal {
        label: usize,
        epoch: usize,
        age: u64,
    },
    ReEncrypt {
        user: usize,
        record: usize,
        batch: bool,
        purpose: usize,
    },
    Advance(u64),
    Restart,
    /// Archive the audit up to a fresh checkpoint (the segment verified on
    /// its own); the accounting then holds what came after.
    Archive,
    /// The patient's disclosure report, verified with the SRS's public key
    /// alone, must list exactly the model's disclosures since the archive.
    Report,
}

/// Multiples of ten, so that record times, scope starts, expiries and the
/// clock often meet exactly: the boundaries are where bugs live.
fn tens(r: std::ops::Range<u64>) -> impl Strategy<Value = u64> + Clone {
    r.prop_map(|x| x * 10)
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    let label = 0..LABELS.len();
    prop_oneof![
        2 => user.clone().prop_map(Op::Register),
        1 => user.clone().prop_map(Op::Remove),
        4 => (user.clone(), label.clone(), 0..EPOCHS, proptest::option::of(tens(0..20)), proptest::option::of(tens(1..6)), prop_oneof![3 => Just(0u64), 1 => tens(0..4)])
            .prop_map(|(user, label, epoch, since, expiry, back)| Op::Grant { user, label, epoch, since, expiry, back }),
        2 => (user.clone(), label.clone()).prop_map(|(user, label)| Op::Revoke { user, label }),
        3 => (label, 0..EPOCHS, tens(0..15)).prop_map(|(label, epoch, age)| Op::Seal { label, epoch, age }),
        8 => (user, any::<prop::sample::Index>(), any::<bool>(), 0..Purpose::ALL.len())
            .prop_map(|(user, r, batch, purpose)| Op::ReEncrypt { user, record: r.index(1 << 20), batch, purpose }),
        2 => tens(1..4).prop_map(Op::Advance),
        1 => Just(Op::Restart),
        1 => Just(Op::Archive),
        1 => Just(Op::Report),
    ]
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum ModelUser {
    Active,
    Removed,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum ModelGrant {
    Active {
        since: Option<u64>,
        expiry: Option<u64>,
        /// When the patient signed it.
        signed: u64,
    },
    Revoked,
}

/// The reference model: nothing but maps and the rules of DESIGN §6.
#[derive(Default)]
struct Model {
    users: HashMap<usize, ModelUser>,
    /// By (user, label, epoch).
    grants: HashMap<(usize, usize, usize), ModelGrant>,
    /// The date of the last signed grant or revocation accepted for each
    /// (user, label, epoch): an older one is a replay.
    key_at: HashMap<(usize, usize, usize), u64>,
    /// By (user, label): a grant dated at or before this is refused (the
    /// last signed revocation, raised to the dates of the grants it ended).
    bound: HashMap<(usize, usize), u64>,
    /// Every re-encryption served, in order: (time, user, label, record,
    /// purpose) — the patient's accounting of disclosures.
    disclosures: Vec<(u64, usize, usize, RecordId, Purpose)>,
    /// The audit sequence number of each of `disclosures`.
    seqs: Vec<u64>,
    /// Entries up to this one were archived away.
    archived: u64,
}

impl Model {
    /// The disclosures still in the live log, in order.
    fn live(&self) -> Vec<(u64, usize, usize, RecordId, Purpose)> {
        self.disclosures
            .iter()
            .zip(&self.seqs)
            .filter(|(_, s)| **s > self.archived)
            .map(|(d, _)| *d)
            .collect()
    }
}

impl Model {
    fn may_read(
        &self,
        user: usize,
        (label, epoch): (usize, usize),
        created_at: u64,
        now: u64,
    ) -> Result<(), Denial> {
        if self.users.get(&user) != Some(&ModelUser::Active) {
            return Err(Denial::NotRegistered);
        }
        match self.grants.get(&(user, label, epoch)) {
            None => Err(Denial::NotGranted),
            Some(ModelGrant::Revoked) => Err(Denial::Revoked),
            Some(ModelGrant::Active {
                expiry: Some(e), ..
            }) if now >= *e => Err(Denial::Expired),
            Some(ModelGrant::Active { since: Some(s), .. }) if created_at < *s => {
                Err(Denial::OutOfScope)
            }
            Some(ModelGrant::Active { .. }) => Ok(()),
        }
    }
}

struct Record {
    label: usize,
    epoch: usize,
    sealed: SealedPortion,
    plaintext: Vec<u8>,
}

/// Checkpoints this often, so that restarts start from a checkpoint and
/// verify only the few entries after it.
const CHECKPOINT_EVERY: u64 = 3;

/// Runs `ops`; `store` gives the store at start and at every restart (the
/// same one in memory, the file reopened for SQLite). With `twins`, two SRS
/// share the store (two processes on one PostgreSQL database) and take the
/// operations in turn.
fn run(ops: &[Op], twins: bool, store: impl Fn() -> Arc<dyn Store>) {
    let start = 10_000u64;
    let clock = ManualClock::new(start);
    let key = StorageKey::from_bytes(&[42; 32]);
    let open = |clock: &ManualClock| {
        Srs::open(
            SrsConfig::shared(store(), key.clone())
                .clock(clock.clone())
                .checkpoint_every(CHECKPOINT_EVERY),
        )
        .unwrap()
    };
    let mut srs = open(&clock);
    let mut peer = twins.then(|| open(&clock));
    let mut r = rng(1);
    let patient = patient(1);
    let labels: Vec<PortionLabel> = LABELS.iter().map(|l| label(l)).collect();
    let keys: Vec<Vec<PortionSecretKey>> = labels
        .iter()
        .map(|l| {
            (0..EPOCHS)
                .map(|e| patient.portion_secret(l, e as u32))
                .collect()
        })
        .collect();
    srs.add_patient(
        &patient,
        &labels
            .iter()
            .flat_map(|l| (0..EPOCHS).map(move |e| (l.clone(), e as u32)))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let ids: Vec<Identity> = (0..USERS)
        .map(|u| Identity::new(format!("user-{u}")).unwrap())
        .collect();
    let pairs: Vec<KeyPair> = (0..USERS).map(|u| user(u as u8)).collect();
    let mut model = Model::default();
    let mut records: Vec<Record> = Vec::new();
    // The patient's registration: one entry for the patient, one for each
    // portion key.
    let mut entries = 1 + (LABELS.len() * EPOCHS) as u64;

    for (step, op) in ops.iter().enumerate() {
        let now = clock.now();
        let ctx = format!("step {step}: {op:?}");
        let s = match &peer {
            Some(p) if step % 2 == 1 => p,
            _ => &srs,
        };
        match *op {
            Op::Register(u) => {
                let res = s.add_user(&ids[u], Role::Doctor, &pairs[u]);
                if model.users.contains_key(&u) {
                    assert!(
                        matches!(res, Err(SrsError::AlreadyRegistered)),
                        "{ctx}: {res:?}"
                    );
                } else {
                    res.unwrap();
                    model.users.insert(u, ModelUser::Active);
                    entries += 1;
                }
            }
            Op::Remove(u) => {
                let res = s.drop_user(&ids[u]);
                match model.users.get(&u) {
                    None => assert!(matches!(res, Err(SrsError::UnknownUser)), "{ctx}: {res:?}"),
                    Some(ModelUser::Removed) => {
                        assert!(matches!(res, Err(SrsError::UserRemoved)), "{ctx}: {res:?}")
                    }
                    Some(ModelUser::Active) => {
                        res.unwrap();
                        model.users.insert(u, ModelUser::Removed);
                        entries += 1;
                        for ((gu, _, _), g) in &mut model.grants {
                            if *gu == u && matches!(g, ModelGrant::Active { .. }) {
                                *g = ModelGrant::Revoked;
                                entries += 1;
                            }
                        }
                    }
                }
            }
            Op::Grant {
                user: u,
                label: l,
                epoch: e,
                since,
                expiry,
                back,
            } => {
                let rekey = ReKey::generate_with_rng(&keys[l][e], pairs[u].public(), &mut r);
                let scope = since.map_or(Scope::AllRecords, |s| Scope::Since(now - 100 + s));
                let expiry = expiry.map(|e| now + e);
                let signed = now - back;
                let grant = patient
                    .sign_grant_with_rng(
                        &labels[l],
                        e as u32,
                        &ids[u],
                        &rekey,
                        &sesphr::consent::GrantOptions {
                            scope,
                            expiry,
                            issued_at: Some(signed),
                            ..Default::default()
                        },
                        &mut r,
                    )
                    .unwrap();
                let res = s.grant(&grant, rekey);
                let withdrawn = model.bound.get(&(u, l)).is_some_and(|b| signed <= *b)
                    || model.key_at.get(&(u, l, e)).is_some_and(|a| signed < *a);
                match model.users.get(&u) {
                    None => assert!(matches!(res, Err(SrsError::UnknownUser)), "{ctx}: {res:?}"),
                    Some(ModelUser::Removed) => {
                        assert!(matches!(res, Err(SrsError::UserRemoved)), "{ctx}: {res:?}")
                    }
                    Some(ModelUser::Active) if withdrawn => {
                        assert!(matches!(res, Err(SrsError::Replayed)), "{ctx}: {res:?}")
                    }
                    Some(ModelUser::Active) => {
                        res.unwrap();
                        let since = match scope {
                            Scope::AllRecords => None,
                            Scope::Since(t) => Some(t),
                        };
                        model.grants.insert(
                            (u, l, e),
                            ModelGrant::Active {
                                since,
                                expiry,
                                signed,
                            },
                        );
                        model.key_at.insert((u, l, e), signed);
                        entries += 1;
                    }
                }
            }
            Op::Revoke { user: u, label: l } => {
                let res = s.take(&patient, &labels[l], &ids[u]);
                if !model.users.contains_key(&u) {
                    assert!(matches!(res, Err(SrsError::UnknownUser)), "{ctx}: {res:?}");
                } else {
                    // Recorded even when it ends nothing; it ends every
                    // grant of the label signed at or before it (all are,
                    // here: the clock never goes back).
                    let receipt = res.unwrap();
                    let mut bound = now;
                    let mut ended = 0;
                    for e in 0..EPOCHS {
                        if let Some(ModelGrant::Active { signed, .. }) =
                            model.grants.get(&(u, l, e)).copied()
                        {
                            bound = bound.max(signed);
                            model.grants.insert((u, l, e), ModelGrant::Revoked);
                            let at = model.key_at.entry((u, l, e)).or_default();
                            *at = (*at).max(now);
                            ended += 1;
                        }
                    }
                    assert_eq!(receipt.grants(), ended, "{ctx}");
                    let b = model.bound.entry((u, l)).or_default();
                    *b = (*b).max(bound);
                    entries += u64::from(ended.max(1));
                }
            }
            Op::Seal {
                label: l,
                epoch: e,
                age,
            } => {
                let plaintext = plaintext(20 + records.len(), records.len() as u8);
                let sealed = SealedPortion::seal_with_rng(
                    keys[l][e].public(),
                    RecordId::random_with_rng(&mut r),
                    now - age,
                    &plaintext,
                    &mut r,
                )
                .unwrap();
                records.push(Record {
                    label: l,
                    epoch: e,
                    sealed,
                    plaintext,
                });
            }
            Op::ReEncrypt {
                user: u,
                record,
                batch,
                purpose,
            } => {
                if records.is_empty() {
                    continue;
                }
                let purpose = Purpose::ALL[purpose];
                let rec = &records[record % records.len()];
                let created = rec.sealed.header().context().created_at();
                let expected = model.may_read(u, (rec.label, rec.epoch), created, now);
                let rid = |r: &Record| r.sealed.header().context().record_id();
                if expected.is_ok() {
                    model
                        .disclosures
                        .push((now, u, rec.label, rid(rec), purpose));
                    model.seqs.push(entries + 1);
                }
                let got = if batch {
                    // A batch of the chosen record and one more: each judged on its own.
                    let other = &records[(record + 1) % records.len()];
                    let out = s
                        .reencrypt_batch(
                            &ids[u],
                            &[rec.sealed.header(), other.sealed.header()],
                            purpose,
                        )
                        .unwrap();
                    let other_expected = model.may_read(
                        u,
                        (other.label, other.epoch),
                        other.sealed.header().context().created_at(),
                        now,
                    );
                    if other_expected.is_ok() {
                        model
                            .disclosures
                            .push((now, u, other.label, rid(other), purpose));
                        model.seqs.push(entries + 2);
                    }
                    assert_eq!(
                        out[1].as_ref().map(|_| ()).map_err(|d| *d),
                        other_expected,
                        "{ctx}: batch second"
                    );
                    entries += 1;
                    out.into_iter().next().unwrap().map_err(SrsError::Denied)
                } else {
                    s.reencrypt(&ids[u], rec.sealed.header(), purpose)
                };
                entries += 1;
                match (expected, got) {
                    (Ok(()), Ok(rc)) => {
                        // Property 2: the granted user recovers exactly the plaintext.
                        assert_eq!(
                            rec.sealed.open_as_delegatee(&pairs[u], &rc).unwrap(),
                            rec.plaintext,
                            "{ctx}"
                        );
                        // ...and nobody else can use that re-capsule.
                        let other = (u + 1) % USERS;
                        assert!(
                            rec.sealed.open_as_delegatee(&pairs[other], &rc).is_err(),
                            "{ctx}"
                        );
                    }
                    (Err(d), Err(SrsError::Denied(got))) => assert_eq!(d, got, "{ctx}"),
                    (e, g) => panic!("{ctx}: model says {e:?}, SRS says {g:?}"),
                }
                // The patient always reads their own records.
                assert_eq!(
                    rec.sealed
                        .open_as_owner(&keys[rec.label][rec.epoch])
                        .unwrap(),
                    rec.plaintext
                );
            }
            Op::Advance(s) => clock.advance(s),
            Op::Archive => {
                let cp = s.checkpoint().unwrap();
                if cp.seq <= model.archived {
                    continue;
                }
                let mut segment = Vec::new();
                let n = s.archive_audit(cp.seq, &mut segment).unwrap();
                assert_eq!(n, cp.seq - model.archived, "{ctx}");
                let info = verify_segment(&mut &segment[..], &s.verifying_key()).unwrap();
                assert_eq!(
                    (info.first_seq, info.last_seq),
                    (model.archived + 1, cp.seq),
                    "{ctx}"
                );
                model.archived = cp.seq;
                entries += 1;
            }
            Op::Report => {
                let report = s.disclosure_report(patient.patient(), 0, u64::MAX).unwrap();
                let proven: Vec<(u64, usize, usize, RecordId, Purpose)> = report
                    .verify(&s.verifying_key())
                    .unwrap()
                    .into_iter()
                    .map(|d| {
                        let u = ids.iter().position(|i| *i == d.user).unwrap();
                        let l = LABELS.iter().position(|l| *l == d.label.as_str()).unwrap();
                        (d.time, u, l, d.record_id, d.purpose.unwrap())
                    })
                    .collect();
                assert_eq!(proven, model.live(), "{ctx}");
            }
            Op::Restart => {
                if let Some(p) = &peer {
                    srs.sync().unwrap();
                    p.sync().unwrap();
                    assert_eq!(p.registry(), srs.registry(), "{ctx}: the twins differ");
                }
                let before = srs.registry();
                drop(srs);
                drop(peer.take());
                srs = open(&clock);
                peer = twins.then(|| open(&clock));
                assert_eq!(
                    srs.registry(),
                    before,
                    "{ctx}: state changed across a restart"
                );
                // Open verified only what came after the latest checkpoint
                // (a commit adds at most 3 entries here).
                let report = srs.open_report();
                assert!(
                    report.entries_verified < CHECKPOINT_EVERY + 3,
                    "{ctx}: {report:?}"
                );
            }
        }
    }
    srs.sync().unwrap();
    assert_eq!(srs.verify_audit().unwrap(), entries);
    // The accounting of disclosures is exactly what the model served, in
    // order; a window returns exactly the model's entries in that window.
    let listed = |from: u64, to: u64| -> Vec<(u64, usize, usize, RecordId, Purpose)> {
        srs.disclosures(patient.patient(), from, to)
            .map(|d| {
                let d = d.unwrap();
                let u = ids.iter().position(|i| *i == d.user).unwrap();
                let l = LABELS.iter().position(|l| *l == d.label.as_str()).unwrap();
                assert!(!d.emergency && d.role == Some(Role::Doctor));
                (d.time, u, l, d.record_id, d.purpose.unwrap())
            })
            .collect()
    };
    let live = model.live();
    assert_eq!(listed(0, u64::MAX), live);
    let end = clock.now();
    for (from, to) in [
        (start, start),
        (start + 10, end),
        (start, (start + end) / 2),
    ] {
        let want: Vec<_> = live
            .iter()
            .filter(|d| d.0 >= from && d.0 <= to)
            .cloned()
            .collect();
        assert_eq!(listed(from, to), want, "window {from}..={to}");
    }
    assert!(
        srs.disclosures(patient.patient(), end + 1, end)
            .next()
            .is_none()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn srs_agrees_with_the_reference_model_in_memory(ops in proptest::collection::vec(op(), 1..60)) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        run(&ops, false, || store.clone());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn srs_agrees_with_the_reference_model_on_sqlite(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        run(&ops, false, || Arc::new(SqliteStore::open(&path).unwrap()));
    }
}

/// The model on PostgreSQL, with two SRS on one database taking the
/// operations in turn: each sees the other's changes as if they were its
/// own. One throwaway cluster; a fresh database per case.
#[cfg(feature = "postgres")]
#[test]
fn srs_agrees_with_the_reference_model_on_postgres_from_two_processes() {
    let cluster = pg::Cluster::start_with(&["fsync=off"]);
    let cases = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            let db = format!(
                "m{}",
                cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            );
            cluster.createdb(&db);
            let ci = cluster.conninfo(&db);
            run(&ops, true, || {
                Arc::new(sesphr::store::PostgresStore::open(&ci).unwrap())
            });
            Ok(())
        })
        .unwrap();
}

/// The scenario of the design spelled out: backward access for a new user,
/// forward revocation, `Since` scope and expiry.
#[test]
fn backward_access_and_forward_revocation() {
    let clock = ManualClock::new(1_000);
    let srs =
        Srs::open(SrsConfig::new(MemoryStore::new(), StorageKey::generate()).clock(clock.clone()))
            .unwrap();
    let p = patient(2);
    let lab = label("lab");
    let k = p.portion_secret(&lab, 0);
    srs.add_patient(&p, &[(k.public().label().clone(), k.public().epoch())])
        .unwrap();
    let old: Vec<SealedPortion> = (0..5)
        .map(|i| {
            SealedPortion::seal(k.public(), RecordId::random(), 900 + i, b"old result").unwrap()
        })
        .collect();

    let (doc_id, doc) = (Identity::new("new-doctor").unwrap(), user(5));
    srs.add_user(&doc_id, Role::Doctor, &doc).unwrap();
    srs.give(
        &p,
        &lab,
        &doc_id,
        ReKey::generate(&k, doc.public()),
        Scope::AllRecords,
        None,
    )
    .unwrap();
    for s in &old {
        let rc = srs
            .reencrypt(&doc_id, s.header(), sesphr::srs::Purpose::Treatment)
            .unwrap();
        assert_eq!(s.open_as_delegatee(&doc, &rc).unwrap(), b"old result");
    }

    let (res_id, res) = (Identity::new("researcher").unwrap(), user(6));
    srs.add_user(&res_id, Role::Researcher, &res).unwrap();
    srs.give(
        &p,
        &lab,
        &res_id,
        ReKey::generate(&k, res.public()),
        Scope::Since(1_000),
        Some(2_000),
    )
    .unwrap();
    assert!(matches!(
        srs.reencrypt(&res_id, old[0].header(), sesphr::srs::Purpose::Treatment),
        Err(SrsError::Denied(Denial::OutOfScope))
    ));
    let new = SealedPortion::seal(k.public(), RecordId::random(), 1_500, b"new result").unwrap();
    assert!(
        srs.reencrypt(&res_id, new.header(), sesphr::srs::Purpose::Treatment)
            .is_ok()
    );
    clock.set(2_000);
    assert!(matches!(
        srs.reencrypt(&res_id, new.header(), sesphr::srs::Purpose::Treatment),
        Err(SrsError::Denied(Denial::Expired))
    ));

    srs.take(&p, &lab, &doc_id).unwrap();
    for s in old.iter().chain([&new]) {
        assert!(matches!(
            srs.reencrypt(&doc_id, s.header(), sesphr::srs::Purpose::Treatment),
            Err(SrsError::Denied(Denial::Revoked))
        ));
    }
    let view = srs.registry();
    let g = &view.grants[&GrantKey {
        patient: p.patient().clone(),
        label: lab.clone(),
        epoch: 0,
        user: doc_id.clone(),
    }];
    assert_eq!(g.revoked_at, Some(2_000));
    assert!(g.commitment.is_none());
}
