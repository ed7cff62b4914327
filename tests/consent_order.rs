//! Consent is one sequence per (patient, label, user), across every key
//! epoch (SPEC §7.5): a host that delays, withholds or reorders what the
//! patient signed never gets more access than the patient's last word.
//! Each test is a seam a review reproduced: a held-back grant of another
//! epoch filed after a revocation, a revocation that ended nothing, a grant
//! dated in the SRS's future, a stale grant filed weeks later.
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
use common::*;
use sesphr::consent::*;
use sesphr::srs::*;
use sesphr::*;

const T0: u64 = 1_800_000_000;

struct World {
    srs: Srs,
    clock: ManualClock,
    alice: PatientKeys,
    doc: Identity,
    doc_keys: KeyPair,
    /// One record of `lab` under each key epoch.
    records: [SealedPortion; 2],
}

fn open(store: impl store::Store + 'static, clock: &ManualClock) -> Srs {
    Srs::open(
        SrsConfig::new(store, StorageKey::from_bytes(&[5; 32]))
            .clock(clock.clone())
            .checkpoint_every(2),
    )
    .unwrap()
}

fn world_on(store: impl store::Store + 'static) -> World {
    let clock = ManualClock::new(T0);
    let srs = open(store, &clock);
    let alice = patient(1);
    srs.add_patient(&alice, &[(label("lab"), 0), (label("lab"), 1)])
        .unwrap();
    let (doc, doc_keys) = (Identity::new("dr-house").unwrap(), user(1));
    srs.add_user(&doc, Role::Doctor, &doc_keys).unwrap();
    let records = [0, 1].map(|e| {
        SealedPortion::seal(
            &alice.portion_public(&label("lab"), e),
            RecordId::random(),
            T0 - 10,
            format!("lab result, epoch {e}").as_bytes(),
        )
        .unwrap()
    });
    World {
        srs,
        clock,
        alice,
        doc,
        doc_keys,
        records,
    }
}

fn world() -> World {
    world_on(store::MemoryStore::new())
}

impl World {
    /// The patient signs a grant of `lab` at `epoch`, dated `at`.
    fn sign(&self, epoch: u32, at: u64, seed: u8) -> (SignedGrant, ReKey) {
        let rk = ReKey::generate(
            &self.alice.portion_secret(&label("lab"), epoch),
            self.doc_keys.public(),
        );
        let options = GrantOptions {
            issued_at: Some(at),
            ..GrantOptions::default()
        };
        let g = self
            .alice
            .sign_grant_with_rng(
                &label("lab"),
                epoch,
                &self.doc,
                &rk,
                &options,
                &mut rng(seed),
            )
            .unwrap();
        (g, rk)
    }

    fn revocation(&self, at: u64, seed: u8) -> SignedRevocation {
        self.alice
            .sign_revocation_with_rng(&label("lab"), &self.doc, at, &mut rng(seed))
            .unwrap()
    }

    fn reads(&self, epoch: usize) -> Result<Vec<u8>, SrsError> {
        let r = &self.records[epoch];
        let rc = self
            .srs
            .reencrypt(&self.doc, r.header(), Purpose::Treatment)?;
        Ok(r.open_as_delegatee(&self.doc_keys, &rc)?)
    }

    /// `grant` is refused as withdrawn and changes nothing.
    fn withdrawn(&self, grant: &SignedGrant, rk: ReKey) {
        let before = (self.srs.registry(), self.srs.verify_audit().unwrap());
        assert!(
            matches!(self.srs.grant(grant, rk), Err(SrsError::Replayed)),
            "a withdrawn grant was filed"
        );
        assert_eq!(
            (self.srs.registry(), self.srs.verify_audit().unwrap()),
            before
        );
    }
}

fn revoked_or_never(r: Result<Vec<u8>, SrsError>) -> bool {
    matches!(
        r,
        Err(SrsError::Denied(Denial::Revoked | Denial::NotGranted))
    )
}

/// Item 1: the revocation of (patient, label, user) covers every epoch,
/// including a grant the patient signed before revoking and the host held
/// back.
#[test]
fn a_revocation_refuses_a_held_back_grant_of_another_epoch() {
    let w = world();
    let (g0, rk0) = w.sign(0, T0, 1);
    let (g1, rk1) = w.sign(1, T0 + 1, 2);
    w.srs.grant(&g0, rk0).unwrap();
    assert!(w.reads(0).is_ok());
    w.clock.advance(10);
    let receipt = w.srs.revoke(&w.revocation(T0 + 10, 3)).unwrap();
    assert_eq!(receipt.grants(), 1);
    // The host now files the epoch-1 grant it held back.
    w.withdrawn(&g1, rk1);
    assert!(revoked_or_never(w.reads(0)) && revoked_or_never(w.reads(1)));
    w.srs.verify_consent().unwrap();
    // The patient's next word, signed after the revocation, is honoured.
    let (g2, rk2) = w.sign(1, T0 + 11, 4);
    w.srs.grant(&g2, rk2).unwrap();
    assert_eq!(w.reads(1).unwrap(), b"lab result, epoch 1");
    assert!(revoked_or_never(w.reads(0)));
}

/// Item 2: a revocation that ends nothing is still recorded (audit entry,
/// replay state, receipt), and refuses every older grant of the triple —
/// whichever order the host delivers them in, and across a restart.
#[test]
fn a_revocation_that_ends_nothing_is_recorded_and_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.db");
    let w = world_on(store::SqliteStore::open(&path).unwrap());
    let (g, rk) = w.sign(0, T0, 1);
    w.clock.advance(5);
    let revocation = w.revocation(T0 + 5, 2);
    let entries = w.srs.verify_audit().unwrap();
    let receipt = w.srs.revoke(&revocation).unwrap();
    receipt.verify(&w.srs.verifying_key()).unwrap();
    assert!(receipt.is_for(&revocation));
    assert_eq!(receipt.grants(), 0);
    assert_eq!(w.srs.verify_audit().unwrap(), entries + 1);
    let entry = &w.srs.audit_entries(receipt.seq(), 1).unwrap()[0];
    assert_eq!(entry.action, sesphr::model::AuditAction::Revoke);
    assert_eq!(entry.evidence, revocation.to_bytes());
    // Sent again: a replay.
    assert!(matches!(w.srs.revoke(&revocation), Err(SrsError::Replayed)));
    // The grant signed before it, filed late: refused, also after a restart.
    w.withdrawn(&g, rk.clone());
    let World {
        srs,
        clock,
        records,
        alice,
        doc,
        doc_keys,
    } = w;
    drop(srs);
    let w = World {
        srs: open(store::SqliteStore::open(&path).unwrap(), &clock),
        clock,
        alice,
        doc,
        doc_keys,
        records,
    };
    w.withdrawn(&g, rk);
    assert!(revoked_or_never(w.reads(0)));
    w.srs.verify_consent().unwrap();
}

/// Item 3: a grant dated ahead of the SRS's clock does not outrank a
/// revocation signed after it was filed; nor can it be filed again.
#[test]
fn a_future_dated_grant_does_not_outrank_a_revocation() {
    let w = world();
    let (g, rk) = w.sign(0, T0 + 250, 1);
    w.srs.grant(&g, rk.clone()).unwrap();
    assert!(w.reads(0).is_ok());
    w.clock.advance(10);
    // Signed on a device whose clock is right: earlier than the grant's date.
    let receipt = w.srs.revoke(&w.revocation(T0 + 10, 2)).unwrap();
    assert_eq!(receipt.grants(), 1);
    assert!(matches!(w.reads(0), Err(SrsError::Denied(Denial::Revoked))));
    // The same grant again, or another epoch's dated before the ended
    // grant: refused.
    w.withdrawn(&g, rk);
    let (g1, rk1) = w.sign(1, T0 + 200, 3);
    w.withdrawn(&g1, rk1);
    // Once the clock passes the ended grant's date, the patient grants anew.
    w.clock.advance(300);
    let (g2, rk2) = w.sign(0, T0 + 300, 4);
    w.srs.grant(&g2, rk2).unwrap();
    assert!(w.reads(0).is_ok());
}

/// A revocation signed before a grant and delivered after it ends nothing
/// of that grant, yet still refuses an older grant of another epoch.
#[test]
fn a_late_revocation_keeps_the_later_grant_and_refuses_older_ones() {
    let w = world();
    let (old, old_rk) = w.sign(1, T0, 1);
    let revocation = w.revocation(T0 + 1, 2);
    let (later, later_rk) = w.sign(0, T0 + 2, 3);
    w.clock.advance(3);
    w.srs.grant(&later, later_rk).unwrap();
    assert_eq!(w.srs.revoke(&revocation).unwrap().grants(), 0);
    assert!(w.reads(0).is_ok());
    w.withdrawn(&old, old_rk);
    assert!(revoked_or_never(w.reads(1)));
}

/// A grant in the same second as the revocation: the revocation wins, in
/// either order of delivery.
#[test]
fn a_tie_goes_to_the_revocation() {
    let w = world();
    let (g, rk) = w.sign(0, T0, 1);
    let revocation = w.revocation(T0, 2);
    w.srs.grant(&g, rk.clone()).unwrap();
    assert_eq!(w.srs.revoke(&revocation).unwrap().grants(), 1);
    assert!(matches!(w.reads(0), Err(SrsError::Denied(Denial::Revoked))));
    let w = world();
    w.srs.revoke(&revocation).unwrap();
    w.withdrawn(&g, rk);
}

/// Grants older than `grant_max_age` (default seven days) are refused with
/// a typed error; the bound is configurable and can be turned off.
#[test]
fn stale_grants_are_refused_at_filing() {
    let w = world();
    let week = DEFAULT_GRANT_MAX_AGE.as_secs();
    assert_eq!(week, 7 * 24 * 3600);
    let (stale, rk) = w.sign(0, T0 - week - 1, 1);
    let before = w.srs.registry();
    match w.srs.grant(&stale, rk) {
        Err(SrsError::GrantTooOld { issued_at, max_age }) => {
            assert_eq!((issued_at, max_age), (T0 - week - 1, week));
        }
        other => panic!("stale grant: {other:?}"),
    }
    assert_eq!(w.srs.registry(), before);
    let (edge, rk) = w.sign(0, T0 - week, 2);
    w.srs.grant(&edge, rk).unwrap();

    // A tighter bound, and none.
    for (max, filed) in [
        (Some(core::time::Duration::from_secs(3600)), false),
        (None, true),
    ] {
        let clock = ManualClock::new(T0);
        let srs = Srs::open(
            SrsConfig::new(store::MemoryStore::new(), StorageKey::generate())
                .clock(clock)
                .grant_max_age(max),
        )
        .unwrap();
        srs.add_patient(&w.alice, &[(label("lab"), 0)]).unwrap();
        srs.add_user(&w.doc, Role::Doctor, &w.doc_keys).unwrap();
        let (g, rk) = w.sign(0, T0 - 3601, 3);
        assert_eq!(srs.grant(&g, rk).is_ok(), filed, "{max:?}");
    }
}

/// A grant whose expiry is already past when it is filed is refused with a
/// typed error and changes nothing (it would serve nothing; filing it would
/// only hide that the patient's terms ran out).
#[test]
fn an_expired_grant_is_refused_at_filing() {
    let w = world();
    let sign = |expiry: u64, seed: u8| {
        let rk = ReKey::generate(
            &w.alice.portion_secret(&label("lab"), 0),
            w.doc_keys.public(),
        );
        let options = GrantOptions {
            issued_at: Some(T0 - 100),
            expiry: Some(expiry),
            ..GrantOptions::default()
        };
        let g = w
            .alice
            .sign_grant_with_rng(&label("lab"), 0, &w.doc, &rk, &options, &mut rng(seed))
            .unwrap();
        (g, rk)
    };
    let before = (w.srs.registry(), w.srs.verify_audit().unwrap());
    for (expiry, seed) in [(T0 - 1, 1), (T0, 2)] {
        let (g, rk) = sign(expiry, seed);
        match w.srs.grant(&g, rk) {
            Err(SrsError::GrantExpired { expiry: e, now }) => assert_eq!((e, now), (expiry, T0)),
            other => panic!("expired grant: {other:?}"),
        }
        assert_eq!((w.srs.registry(), w.srs.verify_audit().unwrap()), before);
    }
    let (g, rk) = sign(T0 + 1, 3);
    w.srs.grant(&g, rk).unwrap();
    assert!(w.reads(0).is_ok());
}
