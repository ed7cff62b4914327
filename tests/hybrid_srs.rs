//! Hybrid (post-quantum) headers through the SRS: its ML-KEM key, users'
//! ML-KEM keys, re-wrapping under the same decision and audit entry,
//! batches, revocation, and key rotation that survives a restart.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use sesphr::model::{AuditAction, AuditOutcome, Denial};
use sesphr::srs::{Purpose, Role, Scope, Srs, SrsError, StorageKey};
use sesphr::*;

struct World {
    srs: Srs,
    patient: PatientKeys,
    lab: PortionSecretKey,
    doctor: Identity,
    doctor_keys: KeyPair,
}

fn world(srs: Srs, seed: u8) -> World {
    let patient = patient(seed);
    let lab = portion(&patient, "lab");
    srs.add_patient(&patient, &[(label("lab"), 0)]).unwrap();
    let doctor = Identity::new(format!("dr-{seed}")).unwrap();
    let doctor_keys = KeyPair::generate_hybrid_with_rng(&mut rng(seed.wrapping_add(1)));
    srs.add_user(&doctor, Role::Doctor, &doctor_keys).unwrap();
    let rekey = ReKey::generate_with_rng(&lab, doctor_keys.public(), &mut rng(seed));
    srs.give(
        &patient,
        &label("lab"),
        &doctor,
        rekey,
        Scope::AllRecords,
        None,
    )
    .unwrap();
    World {
        srs,
        patient,
        lab,
        doctor,
        doctor_keys,
    }
}

fn actions(srs: &Srs) -> Vec<(AuditAction, AuditOutcome, String)> {
    srs.audit_entries(1, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome, e.detail))
        .collect()
}

#[test]
fn the_srs_rewraps_sigma_to_the_users_registered_key_and_audits_it() {
    let w = world(Srs::in_memory().unwrap(), 1);
    let srs_key = w.srs.pq_public_key().unwrap();
    assert_eq!(srs_key.version(), 1);
    let key = w.lab.hybrid_public(&srs_key).unwrap();
    let sealed = SealedPortion::seal(&key, RecordId::random(), T0, b"HbA1c 5.4%").unwrap();

    // No ML-KEM key registered for the doctor yet: denied, and audited so.
    let r = w
        .srs
        .reencrypt(&w.doctor, sealed.header(), Purpose::Treatment);
    assert!(matches!(r, Err(SrsError::Denied(Denial::NoPqKey))), "{r:?}");
    assert!(actions(&w.srs).iter().any(
        |(a, o, _)| *a == AuditAction::ReEncrypt && *o == AuditOutcome::Denied(Denial::NoPqKey)
    ));

    w.srs
        .register_pq_key(&w.doctor, w.doctor_keys.pq_public().unwrap())
        .unwrap();
    let fp = hex(&w.doctor_keys.pq_public().unwrap().fingerprint());
    assert!(
        actions(&w.srs)
            .iter()
            .any(|(a, _, d)| *a == AuditAction::RegisterPqKey && d.contains(&fp))
    );
    for proof in [false, true] {
        let rc = if proof {
            w.srs
                .reencrypt_with_proof(&w.doctor, sealed.header(), Purpose::Treatment)
                .unwrap()
        } else {
            w.srs
                .reencrypt(&w.doctor, sealed.header(), Purpose::Treatment)
                .unwrap()
        };
        assert!(rc.is_hybrid());
        assert_eq!(
            sealed.open_as_delegatee(&w.doctor_keys, &rc).unwrap(),
            b"HbA1c 5.4%"
        );
    }
    // A user unknown to the SRS, or the doctor with another ML-KEM key,
    // cannot use the re-capsule.
    let rc = w
        .srs
        .reencrypt(&w.doctor, sealed.header(), Purpose::Treatment)
        .unwrap();
    let other_pq = KeyPair::from_secret(w.doctor_keys.secret().clone())
        .with_pq(PqSecretKey::generate_with_rng(&mut rng(9)));
    assert!(matches!(
        sealed.open_as_delegatee(&other_pq, &rc),
        Err(Error::DecryptionFailed)
    ));

    // A batch mixing classical and hybrid headers: one decision each.
    let classical =
        SealedPortion::seal(w.lab.public(), RecordId::random(), T0, b"classical").unwrap();
    let answers = w
        .srs
        .reencrypt_batch(
            &w.doctor,
            &[sealed.header(), classical.header(), sealed.header()],
            Purpose::Treatment,
        )
        .unwrap();
    let answers: Vec<ReCapsule> = answers.into_iter().map(Result::unwrap).collect();
    assert!(answers[0].is_hybrid() && !answers[1].is_hybrid() && answers[2].is_hybrid());
    assert_eq!(
        sealed
            .open_as_delegatee(&w.doctor_keys, &answers[2])
            .unwrap(),
        b"HbA1c 5.4%"
    );
    assert_eq!(
        classical
            .open_as_delegatee(&w.doctor_keys, &answers[1])
            .unwrap(),
        b"classical"
    );

    // Revoked: neither part.
    w.srs.take(&w.patient, &label("lab"), &w.doctor).unwrap();
    assert!(matches!(
        w.srs
            .reencrypt(&w.doctor, sealed.header(), Purpose::Treatment),
        Err(SrsError::Denied(Denial::Revoked))
    ));
    w.srs.verify_audit().unwrap();
}

#[test]
fn a_header_whose_srs_stanza_does_not_open_is_denied_as_invalid() {
    let w = world(Srs::in_memory().unwrap(), 2);
    w.srs
        .register_pq_key(&w.doctor, w.doctor_keys.pq_public().unwrap())
        .unwrap();
    // Sealed to another SRS's key that claims this SRS's version.
    let impostor = SrsPqPublicKey::new(
        1,
        PqSecretKey::generate_with_rng(&mut rng(3)).public().clone(),
    );
    let key = w.lab.hybrid_public(&impostor).unwrap();
    let sealed = SealedPortion::seal(&key, RecordId::random(), T0, b"x").unwrap();
    assert!(matches!(
        w.srs
            .reencrypt(&w.doctor, sealed.header(), Purpose::Treatment),
        Err(SrsError::Denied(Denial::InvalidCapsule))
    ));
    // The owner still opens it: the owner stanza is the patient's.
    assert_eq!(sealed.open_as_owner(&w.lab).unwrap(), b"x");
}

#[test]
fn rotation_survives_a_restart_and_old_headers_still_reencrypt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let storage = StorageKey::from_bytes(&[5; 32]);
    let (old, new, lab, doctor, doctor_keys, v1_key) = {
        let w = world(Srs::open_sqlite(&path, storage.clone()).unwrap(), 4);
        w.srs
            .register_pq_key(&w.doctor, w.doctor_keys.pq_public().unwrap())
            .unwrap();
        let v1 = w.srs.pq_public_key().unwrap();
        let old = SealedPortion::seal(
            &w.lab.hybrid_public(&v1).unwrap(),
            RecordId::random(),
            T0,
            b"old",
        )
        .unwrap();
        let v2 = w.srs.rotate_pq_key().unwrap();
        assert_eq!(v2.version(), 2);
        assert_ne!(v2.key(), v1.key());
        assert!(
            actions(&w.srs)
                .iter()
                .any(|(a, _, d)| *a == AuditAction::RotatePqKey && d.contains("version=2"))
        );
        let new = SealedPortion::seal(
            &w.lab.hybrid_public(&v2).unwrap(),
            RecordId::random(),
            T0,
            b"new",
        )
        .unwrap();
        assert_eq!(new.header().srs_pq_version(), Some(2));
        (
            old,
            new,
            w.lab.clone(),
            w.doctor.clone(),
            w.doctor_keys.clone(),
            v1,
        )
    };
    // Reopened: still at version 2, the same keys (derived from the storage
    // key), the user's ML-KEM key still registered.
    let srs = Srs::open_sqlite(&path, storage).unwrap();
    let v2 = srs.pq_public_key().unwrap();
    assert_eq!(v2.version(), 2);
    for (sealed, text) in [(&old, &b"old"[..]), (&new, &b"new"[..])] {
        let rc = srs
            .reencrypt(&doctor, sealed.header(), Purpose::Treatment)
            .unwrap();
        assert_eq!(sealed.open_as_delegatee(&doctor_keys, &rc).unwrap(), text);
        assert_eq!(sealed.open_as_owner(&lab).unwrap(), text);
    }
    // Rotating again moves on; version 1 is what it was.
    assert_eq!(srs.rotate_pq_key().unwrap().version(), 3);
    assert_eq!(v1_key.version(), 1);
    srs.verify_audit().unwrap();
}

#[test]
fn a_pq_key_is_registered_only_for_an_active_user() {
    let w = world(Srs::in_memory().unwrap(), 5);
    let k = PqSecretKey::generate_with_rng(&mut rng(50));
    assert!(matches!(
        w.srs
            .register_pq_key(&Identity::new("nobody").unwrap(), k.public()),
        Err(SrsError::UnknownUser)
    ));
    w.srs.drop_user(&w.doctor).unwrap();
    assert!(matches!(
        w.srs.register_pq_key(&w.doctor, k.public()),
        Err(SrsError::UserRemoved)
    ));
}

#[test]
fn a_grant_naming_the_users_ml_kem_key_is_served_only_to_that_key() {
    let srs = Srs::in_memory().unwrap();
    let patient = patient(6);
    let lab = portion(&patient, "lab");
    srs.add_patient(&patient, &[(label("lab"), 0)]).unwrap();
    let doctor = Identity::new("dr-6").unwrap();
    let keys = KeyPair::generate_hybrid_with_rng(&mut rng(61));
    srs.add_user(&doctor, Role::Doctor, &keys).unwrap();
    let rekey = ReKey::generate_with_rng(&lab, keys.public(), &mut rng(62));
    let fp = keys.pq_public().unwrap().fingerprint();
    let options = sesphr::consent::GrantOptions {
        user_pq_key: Some(fp),
        ..Default::default()
    };
    let signed = patient
        .sign_grant(&label("lab"), 0, &doctor, &rekey, &options)
        .unwrap();
    // The fingerprint is signed: it survives encoding, and altering it
    // breaks the signature.
    let bytes = signed.to_bytes();
    let decoded = sesphr::consent::SignedGrant::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.user_pq_key(), Some(&fp));
    assert_eq!(decoded.to_bytes(), bytes);
    let mut bent = bytes.clone();
    let at = bytes.len() - 64 - 32;
    bent[at] ^= 1;
    let bent = sesphr::consent::SignedGrant::from_bytes(&bent).unwrap();
    assert!(bent.verify(&patient.consent_public()).is_err());
    let mut short = bytes.clone();
    short.remove(at);
    assert!(sesphr::consent::SignedGrant::from_bytes(&short).is_err());
    srs.grant(&signed, rekey).unwrap();

    let key = lab.hybrid_public(&srs.pq_public_key().unwrap()).unwrap();
    let sealed = SealedPortion::seal(&key, RecordId::random(), T0, b"bound").unwrap();
    // Another ML-KEM key registered under the doctor's name: refused.
    let other = PqSecretKey::generate_with_rng(&mut rng(63));
    srs.register_pq_key(&doctor, other.public()).unwrap();
    assert!(matches!(
        srs.reencrypt(&doctor, sealed.header(), Purpose::Treatment),
        Err(SrsError::Denied(Denial::PqKeyNotGranted))
    ));
    // The key the patient named: served.
    srs.register_pq_key(&doctor, keys.pq_public().unwrap())
        .unwrap();
    let rc = srs
        .reencrypt(&doctor, sealed.header(), Purpose::Treatment)
        .unwrap();
    assert_eq!(sealed.open_as_delegatee(&keys, &rc).unwrap(), b"bound");
    // Classical headers do not involve ML-KEM keys at all.
    let classical =
        SealedPortion::seal(lab.public(), RecordId::random(), T0, b"classical").unwrap();
    srs.register_pq_key(&doctor, other.public()).unwrap();
    let rc = srs
        .reencrypt(&doctor, classical.header(), Purpose::Treatment)
        .unwrap();
    assert_eq!(
        classical.open_as_delegatee(&keys, &rc).unwrap(),
        b"classical"
    );
    srs.verify_audit().unwrap();
    srs.verify_consent().unwrap();
}
