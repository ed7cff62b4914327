//! Consent the patient signs: forged, foreign, altered and replayed grants
//! and revocations are refused and change nothing; registrations need
//! proofs of possession (the key-squatting attack fails); every consent in
//! an audit export re-verifies with public keys alone; break-glass, access
//! requests, receipts.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

mod common;
use common::*;
use sesphr::consent::*;
use sesphr::srs::*;
use sesphr::*;

const T0: u64 = 1_800_000_000;

struct World {
    srs: Srs,
    alice: PatientKeys,
    bob: PatientKeys,
    doc: Identity,
    doc_keys: KeyPair,
    report: SealedPortion,
}

fn world() -> World {
    let srs = Srs::open(
        SrsConfig::new(store::MemoryStore::new(), StorageKey::generate())
            .clock(ManualClock::new(T0)),
    )
    .unwrap();
    let (alice, bob) = (patient(1), patient(2));
    for p in [&alice, &bob] {
        srs.add_patient(p, &[(label("lab"), 0), (label("medical"), 0)])
            .unwrap();
    }
    let (doc, doc_keys) = (Identity::new("dr-house").unwrap(), user(1));
    srs.add_user(&doc, Role::Doctor, &doc_keys).unwrap();
    let rk = ReKey::generate(&alice.portion_secret(&label("lab"), 0), doc_keys.public());
    srs.give(&alice, &label("lab"), &doc, rk, Scope::AllRecords, None)
        .unwrap();
    let report = SealedPortion::seal(
        &alice.portion_public(&label("lab"), 0),
        RecordId::random(),
        T0 - 10,
        b"HbA1c 5.4%",
    )
    .unwrap();
    World {
        srs,
        alice,
        bob,
        doc,
        doc_keys,
        report,
    }
}

fn reads(w: &World) -> Result<Vec<u8>, SrsError> {
    let rc = w
        .srs
        .reencrypt(&w.doc, w.report.header(), Purpose::Treatment)?;
    Ok(w.report.open_as_delegatee(&w.doc_keys, &rc)?)
}

fn signed(p: &PatientKeys, l: &str, u: &Identity, k: &ReKey, at: u64) -> SignedGrant {
    let options = GrantOptions {
        issued_at: Some(at),
        ..GrantOptions::default()
    };
    p.sign_grant(&label(l), 0, u, k, &options).unwrap()
}

/// `f` must fail as `check` says, leaving the registry and the audit chain
/// exactly as they were, and the doctor still reading.
fn refused<T: core::fmt::Debug>(
    w: &World,
    what: &str,
    f: impl FnOnce(&World) -> Result<T, SrsError>,
    check: impl Fn(&SrsError) -> bool,
) {
    let before = w.srs.registry();
    let entries = w.srs.verify_audit().unwrap();
    match f(w) {
        Ok(v) => panic!("{what}: accepted ({v:?})"),
        Err(e) => assert!(check(&e), "{what}: wrong error {e:?}"),
    }
    assert_eq!(w.srs.registry(), before, "{what}: state changed");
    assert_eq!(w.srs.verify_audit().unwrap(), entries, "{what}: audited");
    assert_eq!(reads(w).unwrap(), b"HbA1c 5.4%", "{what}: the real grant");
}

fn bad_signature(e: &SrsError) -> bool {
    matches!(e, SrsError::Malformed(Error::InvalidSignature { .. }))
}

/// Replaces the 64-byte signature at the end of an encoding.
fn with_signature(bytes: &[u8], sig: [u8; 64]) -> Vec<u8> {
    let mut b = bytes[..bytes.len() - 64].to_vec();
    b.extend_from_slice(&sig);
    b
}

#[test]
fn forged_foreign_altered_and_replayed_grants_are_refused() {
    let w = world();
    assert_eq!(reads(&w).unwrap(), b"HbA1c 5.4%");
    let lab = label("lab");
    // The attack of the issue: any caller installs a random rk (with its own,
    // matching commitment) as alice's grant to the doctor.
    let random_rk = ReKey::generate(&patient(66).portion_secret(&lab, 0), w.doc_keys.public());
    let mallory = PatientKeys::from_master(w.alice.patient().clone(), &[66; 32]);
    let forged = mallory
        .sign_grant(
            &lab,
            0,
            &w.doc,
            &ReKey::generate(&mallory.portion_secret(&lab, 0), w.doc_keys.public()),
            &GrantOptions::default(),
        )
        .unwrap();
    refused(
        &w,
        "forged: signed by a key that is not alice's",
        |w| {
            let k = ReKey::generate(&mallory.portion_secret(&lab, 0), w.doc_keys.public());
            w.srs.grant(&signed(&mallory, "lab", &w.doc, &k, T0), k)
        },
        bad_signature,
    );
    refused(
        &w,
        "forged: no signature (zeros)",
        |w| {
            let k = ReKey::generate(&mallory.portion_secret(&lab, 0), w.doc_keys.public());
            let g = signed(&mallory, "lab", &w.doc, &k, T0);
            let g = SignedGrant::from_bytes(&with_signature(&g.to_bytes(), [0; 64])).unwrap();
            w.srs.grant(&g, k)
        },
        bad_signature,
    );
    refused(
        &w,
        "a random rk under a forged signature",
        |w| w.srs.grant(&forged, random_rk.clone()),
        |e| bad_signature(e) || matches!(e, SrsError::ReKeyMismatch),
    );
    refused(
        &w,
        "a random rk under alice's real signature of another key",
        |w| {
            let real = ReKey::generate(&w.alice.portion_secret(&lab, 0), w.doc_keys.public());
            w.srs.grant(
                &signed(&w.alice, "lab", &w.doc, &real, T0 + 1),
                random_rk.clone(),
            )
        },
        |e| matches!(e, SrsError::ReKeyMismatch),
    );
    refused(
        &w,
        "signed by another patient (bob) for alice",
        |w| {
            let as_alice =
                PatientKeys::from_master(w.alice.patient().clone(), &w.bob.master_bytes());
            let k = ReKey::generate(&as_alice.portion_secret(&lab, 0), w.doc_keys.public());
            w.srs
                .grant(&signed(&as_alice, "lab", &w.doc, &k, T0 + 1), k)
        },
        bad_signature,
    );
    refused(
        &w,
        "bob's own grant submitted with alice's portion key",
        |w| {
            let k = ReKey::generate(&w.bob.portion_secret(&lab, 0), w.doc_keys.public());
            let g = signed(&w.bob, "lab", &w.doc, &k, T0 + 1);
            let alice_k = ReKey::generate(&w.alice.portion_secret(&lab, 0), w.doc_keys.public());
            w.srs.grant(&g, alice_k)
        },
        |e| matches!(e, SrsError::ReKeyMismatch),
    );
    // Signature over different terms: alice signed scope Since(T0); the
    // bytes are edited to all records (and each other field in turn).
    let k = ReKey::generate(&w.alice.portion_secret(&lab, 0), w.doc_keys.public());
    let narrow = w
        .alice
        .sign_grant(
            &lab,
            0,
            &w.doc,
            &k,
            &GrantOptions {
                scope: Scope::Since(T0 - 100),
                expiry: Some(T0 + 3600),
                issued_at: Some(T0 + 1),
                ..GrantOptions::default()
            },
        )
        .unwrap();
    let bytes = narrow.to_bytes();
    let mut altered = 0;
    for i in 5..bytes.len() - 64 {
        let mut b = bytes.clone();
        b[i] ^= 1;
        // Bytes that no longer decode cannot even be submitted.
        let Ok(g) = SignedGrant::from_bytes(&b) else {
            continue;
        };
        altered += 1;
        refused(
            &w,
            &format!("grant byte {i} altered"),
            |w| w.srs.grant(&g, k.clone()),
            |e| {
                bad_signature(e)
                    || matches!(
                        e,
                        SrsError::ReKeyMismatch
                            | SrsError::Malformed(_)
                            | SrsError::UnknownUser
                            | SrsError::UnknownPatient
                            | SrsError::UnknownPortion
                    )
            },
        );
    }
    assert!(altered > 40, "only {altered} alterations decoded");
    // The genuine narrow grant installs; sent again, it is a replay.
    w.srs.grant(&narrow, k.clone()).unwrap();
    refused(
        &w,
        "the same grant again",
        |w| w.srs.grant(&narrow, k.clone()),
        |e| matches!(e, SrsError::Replayed),
    );
    // Revoked, then the old grant replayed: refused, access stays ended.
    let revocation = w
        .alice
        .sign_revocation_with_rng(&lab, &w.doc, T0 + 2, &mut rng(9))
        .unwrap();
    w.srs.revoke(&revocation).unwrap();
    assert!(matches!(reads(&w), Err(SrsError::Denied(Denial::Revoked))));
    let view = w.srs.registry();
    assert!(matches!(
        w.srs.grant(&narrow, k.clone()),
        Err(SrsError::Replayed)
    ));
    assert!(matches!(w.srs.revoke(&revocation), Err(SrsError::Replayed)));
    // A grant signed before the revocation (an older one) is refused too.
    let older = signed(&w.alice, "lab", &w.doc, &k, T0 + 1);
    assert!(matches!(
        w.srs.grant(&older, k.clone()),
        Err(SrsError::Replayed)
    ));
    assert_eq!(w.srs.registry(), view);
    assert!(matches!(reads(&w), Err(SrsError::Denied(Denial::Revoked))));
    // Signed in the same second as the revocation: the revocation wins.
    let tie = signed(&w.alice, "lab", &w.doc, &k, T0 + 2);
    assert!(matches!(
        w.srs.grant(&tie, k.clone()),
        Err(SrsError::Replayed)
    ));
    // A new decision, signed after the revocation, is accepted.
    let again = signed(&w.alice, "lab", &w.doc, &k, T0 + 3);
    w.srs.grant(&again, k.clone()).unwrap();
    assert_eq!(reads(&w).unwrap(), b"HbA1c 5.4%");
    // Dated more than five minutes ahead of the SRS: refused (it could never
    // be revoked by a revocation signed now).
    let future = signed(
        &w.alice,
        "medical",
        &w.doc,
        &ReKey::generate(
            &w.alice.portion_secret(&label("medical"), 0),
            w.doc_keys.public(),
        ),
        T0 + 3600,
    );
    let fk = ReKey::generate(
        &w.alice.portion_secret(&label("medical"), 0),
        w.doc_keys.public(),
    );
    assert!(w.srs.grant(&future, fk).is_err());
    let report = w.srs.verify_consent().unwrap();
    assert_eq!(report.grants, 3);
    assert_eq!(report.revocations, 1);
    assert_eq!(report.active_checked, 1);
}

#[test]
fn revocations_must_be_the_patients_and_never_end_a_later_grant() {
    let w = world();
    let lab = label("lab");
    let mallory = PatientKeys::from_master(w.alice.patient().clone(), &[66; 32]);
    refused(
        &w,
        "revocation signed by someone else",
        |w| {
            w.srs.revoke(
                &mallory
                    .sign_revocation_with_rng(&lab, &w.doc, T0, &mut rng(1))
                    .unwrap(),
            )
        },
        bad_signature,
    );
    refused(
        &w,
        "revocation bytes altered",
        |w| {
            let r = w
                .alice
                .sign_revocation_with_rng(&lab, &w.doc, T0, &mut rng(3))
                .unwrap();
            let mut b = r.to_bytes();
            let n = b.len();
            b[n - 70] ^= 1; // inside the nonce
            w.srs.revoke(&SignedRevocation::from_bytes(&b).unwrap())
        },
        bad_signature,
    );
    // Signed before the grant and delivered after it: recorded (it refuses
    // every grant of the triple dated at or before it) but it ends nothing,
    // for the patient's later grant stands.
    let older = w
        .alice
        .sign_revocation_with_rng(&lab, &w.doc, T0 - 3600, &mut rng(2))
        .unwrap();
    let receipt = w.srs.revoke(&older).unwrap();
    assert_eq!(receipt.grants(), 0);
    assert_eq!(reads(&w).unwrap(), b"HbA1c 5.4%");
    refused(
        &w,
        "the same revocation again",
        |w| w.srs.revoke(&older),
        |e| matches!(e, SrsError::Replayed),
    );
}

#[test]
fn receipts_verify_with_the_srs_key_only() {
    let w = world();
    let r = w.alice.sign_revocation(&label("lab"), &w.doc).unwrap();
    // The world's clock is in the future of the system clock: date it by the SRS.
    let r = if r.issued_at() > w.srs.now() + 300 || r.issued_at() < T0 {
        w.alice
            .sign_revocation_with_rng(&label("lab"), &w.doc, w.srs.now(), &mut rng(4))
            .unwrap()
    } else {
        r
    };
    let receipt = w.srs.revoke(&r).unwrap();
    receipt.verify(&w.srs.verifying_key()).unwrap();
    assert!(receipt.is_for(&r));
    assert_eq!(receipt.user(), &w.doc);
    assert_eq!(receipt.grants(), 1);
    assert_eq!(receipt.revoked_at(), T0);
    let entry = &w.srs.audit_entries(receipt.seq(), 1).unwrap()[0];
    assert_eq!(entry.action, AuditAction::Revoke);
    assert_eq!(entry.evidence, r.to_bytes());
    // Decoded from its bytes (as the patient keeps it), it still verifies.
    let kept = RevocationReceipt::from_bytes(&receipt.to_bytes()).unwrap();
    kept.verify(&w.srs.verifying_key()).unwrap();
    // Another SRS's key, the patient's own key: refused.
    let other = Srs::in_memory().unwrap();
    assert!(kept.verify(&other.verifying_key()).is_err());
    assert!(kept.verify(&w.alice.consent_public()).is_err());
    // Any altered byte: refused or undecodable.
    let b = receipt.to_bytes();
    for i in 5..b.len() {
        let mut x = b.clone();
        x[i] ^= 0x10;
        if let Ok(r) = RevocationReceipt::from_bytes(&x) {
            assert!(r.verify(&w.srs.verifying_key()).is_err(), "byte {i}");
        }
    }
    // An administrative revocation has a receipt for the actor's evidence.
    let nurse = (Identity::new("nurse").unwrap(), user(5));
    w.srs
        .add_user(&nurse.0, Role::Other("nurse".into()), &nurse.1)
        .unwrap();
    let k = ReKey::generate(
        &w.alice.portion_secret(&label("medical"), 0),
        nurse.1.public(),
    );
    w.srs
        .give(
            &w.alice,
            &label("medical"),
            &nurse.0,
            k,
            Scope::AllRecords,
            None,
        )
        .unwrap();
    let admin_receipt = w
        .srs
        .revoke_as(&admin(), w.alice.patient(), &label("medical"), &nurse.0)
        .unwrap();
    admin_receipt.verify(&w.srs.verifying_key()).unwrap();
    let e = &w.srs.audit_entries(admin_receipt.seq(), 1).unwrap()[0];
    assert_eq!(e.actor, "compliance-officer");
    assert!(e.detail.contains("actor_role=admin"), "{}", e.detail);
}

#[test]
fn registrations_need_proofs_and_key_squatting_fails() {
    let srs = Srs::in_memory().unwrap();
    // Users: a proof for another identity, or by another key, is refused.
    let (doc, kp) = (Identity::new("dr-house").unwrap(), user(1));
    let mallory_kp = user(2);
    for (what, proof) in [
        (
            "proof for another identity",
            kp.prove_possession(&Identity::new("x").unwrap()),
        ),
        ("proof by another key", mallory_kp.prove_possession(&doc)),
    ] {
        let r = srs.register_user(&doc, Role::Doctor, kp.public(), &proof);
        assert!(bad_signature(&r.unwrap_err()), "{what}");
    }
    // Mallory cannot register the doctor's public key under her name.
    let r = srs.register_user(
        &Identity::new("mallory").unwrap(),
        Role::Doctor,
        kp.public(),
        &mallory_kp.prove_possession(&Identity::new("mallory").unwrap()),
    );
    assert!(bad_signature(&r.unwrap_err()));
    assert!(srs.registry().users.is_empty());
    srs.register_user(&doc, Role::Doctor, kp.public(), &kp.prove_possession(&doc))
        .unwrap();

    // The squatting attack: mallory registers alice's portion public keys
    // (hospitals hold them) under her own name, with her own consent key.
    let alice = patient(1);
    let labels = [(label("lab"), 0), (label("medical"), 0)];
    let mallory = PatientKeys::from_master(Identity::new("mallory").unwrap(), &[66; 32]);
    let own = PatientRegistration::new(&mallory, &labels)
        .unwrap()
        .to_bytes();
    let squat = squatted(&own, &mallory, &alice, &labels);
    let reg = PatientRegistration::from_bytes(&squat).unwrap();
    assert_eq!(
        reg.portions().next(),
        Some(&alice.portion_public(&labels[0].0, 0))
    );
    // Her signature is valid; her proofs cannot be for alice's keys.
    assert!(matches!(
        reg.verify(),
        Err(Error::InvalidSignature {
            what: "portion key proof"
        })
    ));
    assert!(bad_signature(&srs.register_patient(&reg).unwrap_err()));
    assert!(srs.registry().patients.is_empty());
    // Alice registers afterwards: nothing was squatted.
    srs.add_patient(&alice, &labels).unwrap();
    // A registration with a flipped bit anywhere is refused.
    let b = PatientRegistration::new(&patient(3), &labels)
        .unwrap()
        .to_bytes();
    for i in 5..b.len() {
        let mut x = b.clone();
        x[i] ^= 1;
        if let Ok(r) = PatientRegistration::from_bytes(&x) {
            assert!(srs.register_patient(&r).is_err(), "byte {i}");
        }
    }
    assert_eq!(srs.registry().patients.len(), 1);
    // More portion keys than one registration holds: refused when made.
    let many: Vec<(PortionLabel, u32)> = (0..=PatientRegistration::MAX_PORTIONS as u32)
        .map(|e| (label("lab"), e))
        .collect();
    assert!(matches!(
        PatientRegistration::new(&alice, &many),
        Err(Error::TooLarge)
    ));
    // Adding portions needs the registered consent key.
    let imposter = PatientKeys::from_master(alice.patient().clone(), &[67; 32]);
    assert!(bad_signature(
        &srs.add_portions(&PatientRegistration::new(&imposter, &[(label("xray"), 0)]).unwrap())
            .unwrap_err()
    ));
    srs.add_portions(&PatientRegistration::new(&alice, &[(label("xray"), 0)]).unwrap())
        .unwrap();
    let report = srs.verify_consent().unwrap();
    // Two users, one patient, two portion keys, one more portion key.
    assert_eq!(report.registrations, 5);
}

/// Mallory's registration with alice's portion public keys in place of
/// hers, re-signed with mallory's consent key (the proofs stay hers).
fn squatted(
    own: &[u8],
    mallory: &PatientKeys,
    alice: &PatientKeys,
    labels: &[(PortionLabel, u32)],
) -> Vec<u8> {
    let mut body = own[..own.len() - 64].to_vec();
    for (l, e) in labels {
        let mine = mallory.portion_public(l, *e).key().to_bytes();
        let hers = alice.portion_public(l, *e).key().to_bytes();
        let at = body.windows(32).position(|w| w == mine).unwrap();
        body[at..at + 32].copy_from_slice(&hers);
    }
    let mut msg = b"sesphr/v1/patient-registration".to_vec();
    msg.extend_from_slice(&body);
    let sig = mallory.consent_key().sign(&msg).to_bytes();
    body.extend_from_slice(&sig);
    body
}

#[test]
fn break_glass_serves_only_justified_emergencies_and_is_listed() {
    let w = world();
    let med = label("medical");
    let er = (Identity::new("dr-er").unwrap(), user(7));
    let er_role = Role::Other("emergency-physician".into());
    w.srs.add_user(&er.0, er_role.clone(), &er.1).unwrap();
    let k = ReKey::generate(&w.alice.portion_secret(&med, 0), er.1.public());
    let wrong_role = w
        .alice
        .sign_grant(
            &med,
            0,
            &er.0,
            &k,
            &GrantOptions {
                emergency: Some(Role::Doctor),
                issued_at: Some(T0),
                ..GrantOptions::default()
            },
        )
        .unwrap();
    refused(
        &w,
        "break-glass for a role the user lacks",
        |w| w.srs.grant(&wrong_role, k.clone()),
        |e| matches!(e, SrsError::RoleMismatch),
    );
    let g = w
        .alice
        .sign_grant(
            &med,
            0,
            &er.0,
            &k,
            &GrantOptions {
                emergency: Some(er_role),
                issued_at: Some(T0),
                ..GrantOptions::default()
            },
        )
        .unwrap();
    w.srs.grant(&g, k).unwrap();
    let chart = SealedPortion::seal(
        &w.alice.portion_public(&med, 0),
        RecordId::random(),
        T0 - 5,
        b"allergy: penicillin",
    )
    .unwrap();
    let ask = |why: AccessReason| w.srs.reencrypt(&er.0, chart.header(), why);
    for (what, why) in [
        ("treatment", AccessReason::from(Purpose::Treatment)),
        (
            "emergency without justification",
            AccessReason::from(Purpose::Emergency),
        ),
        (
            "treatment with a justification",
            AccessReason::new(Purpose::Treatment, Some("urgent")).unwrap(),
        ),
    ] {
        assert!(
            matches!(ask(why), Err(SrsError::Denied(Denial::EmergencyOnly))),
            "{what}"
        );
    }
    assert!(
        w.srs
            .emergency_accesses(w.alice.patient())
            .unwrap()
            .is_empty()
    );
    assert!(AccessReason::emergency("").is_err());
    assert!(AccessReason::emergency("line\nbreak").is_err());
    let rc = ask(AccessReason::emergency("unconscious on arrival").unwrap()).unwrap();
    assert_eq!(
        chart.open_as_delegatee(&er.1, &rc).unwrap(),
        b"allergy: penicillin"
    );
    // The doctor's ordinary access is not an emergency.
    reads(&w).unwrap();
    let list = w.srs.emergency_accesses(w.alice.patient()).unwrap();
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e.user, er.0);
    assert_eq!(e.purpose, Some(Purpose::Emergency));
    assert_eq!(e.justification.as_deref(), Some("unconscious on arrival"));
    assert_eq!(e.record_id, chart.header().context().record_id());
    assert!(e.emergency);
    let entry = &w.srs.audit_entries(e.seq, 1).unwrap()[0];
    assert!(entry.emergency && entry.purpose == Some(Purpose::Emergency));
    assert!(
        w.srs
            .emergency_accesses(w.bob.patient())
            .unwrap()
            .is_empty()
    );
    let all: Vec<Disclosure> = w
        .srs
        .disclosures(w.alice.patient(), 0, u64::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    // The doctor's two reads (one after the refused grant) and the emergency.
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().filter(|d| d.emergency).count(), 1);
    assert!(all.iter().filter(|d| !d.emergency).all(|d| d.user == w.doc));
}

#[test]
fn access_requests_are_answered_by_signed_grants_or_refusals() {
    let w = world();
    let med = label("medical");
    let hosp = (Identity::new("st-marys").unwrap(), user(8));
    w.srs.add_user(&hosp.0, Role::Hospital, &hosp.1).unwrap();
    let ask = || {
        w.srs.request_access(
            &hosp.0,
            w.alice.patient(),
            &med,
            Purpose::Treatment,
            "referral",
        )
    };
    assert!(matches!(
        w.srs
            .request_access(&hosp.0, w.alice.patient(), &med, Purpose::Treatment, ""),
        Err(SrsError::Malformed(_))
    ));
    assert!(matches!(
        w.srs.request_access(
            &hosp.0,
            w.alice.patient(),
            &label("xray"),
            Purpose::Treatment,
            "x"
        ),
        Err(SrsError::UnknownPortion)
    ));
    let first = ask().unwrap();
    let second = ask().unwrap();
    let pending = w.srs.pending_requests(w.alice.patient());
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>().len(), 2);
    assert!(
        pending
            .iter()
            .all(|r| r.user == hosp.0 && r.label == med && r.status == RequestStatus::Pending)
    );
    assert!(w.srs.pending_requests(w.bob.patient()).is_empty());
    // Bob cannot refuse alice's request; a refusal of an unknown request fails.
    let bobs = w
        .bob
        .sign_refusal_with_rng(first, "no", T0, &mut rng(1))
        .unwrap();
    assert!(bad_signature(&w.srs.refuse_request(&bobs).unwrap_err()));
    let unknown = w
        .alice
        .sign_refusal_with_rng(RequestId::from_bytes([9; 16]), "no", T0, &mut rng(2))
        .unwrap();
    assert!(matches!(
        w.srs.refuse_request(&unknown),
        Err(SrsError::UnknownRequest)
    ));
    // Alice refuses the first and grants the second.
    let refusal = w
        .alice
        .sign_refusal_with_rng(first, "not now", T0, &mut rng(3))
        .unwrap();
    w.srs.refuse_request(&refusal).unwrap();
    assert!(matches!(
        w.srs.refuse_request(&refusal),
        Err(SrsError::RequestAnswered)
    ));
    let k = ReKey::generate(&w.alice.portion_secret(&med, 0), hosp.1.public());
    let for_first = w
        .alice
        .sign_grant(
            &med,
            0,
            &hosp.0,
            &k,
            &GrantOptions {
                request: Some(first),
                issued_at: Some(T0),
                ..GrantOptions::default()
            },
        )
        .unwrap();
    assert!(matches!(
        w.srs.grant(&for_first, k.clone()),
        Err(SrsError::RequestAnswered)
    ));
    // A grant naming the request for another user is refused.
    let dk = ReKey::generate(&w.alice.portion_secret(&med, 0), w.doc_keys.public());
    let to_doc = w
        .alice
        .sign_grant(
            &med,
            0,
            &w.doc,
            &dk,
            &GrantOptions {
                request: Some(second),
                issued_at: Some(T0),
                ..GrantOptions::default()
            },
        )
        .unwrap();
    assert!(matches!(
        w.srs.grant(&to_doc, dk),
        Err(SrsError::Malformed(_))
    ));
    let g = w
        .alice
        .sign_grant(
            &med,
            0,
            &hosp.0,
            &k,
            &GrantOptions {
                request: Some(second),
                issued_at: Some(T0 + 1),
                ..GrantOptions::default()
            },
        )
        .unwrap();
    w.srs.grant(&g, k).unwrap();
    assert!(w.srs.pending_requests(w.alice.patient()).is_empty());
    let view = w.srs.registry();
    assert!(matches!(
        view.requests[&first].status,
        RequestStatus::Refused(T0)
    ));
    assert!(matches!(
        view.requests[&second].status,
        RequestStatus::Granted(T0)
    ));
    let report = w.srs.verify_consent().unwrap();
    assert_eq!((report.grants, report.refusals), (2, 1));
}

/// What an auditor does with an export and public keys only: rebuild each
/// entry from its JSON, check its chain hash, and re-check its consent.
#[test]
fn every_consent_reverifies_from_the_export_alone() {
    use sha2::{Digest, Sha256};
    let w = world();
    let (lab, med) = (label("lab"), label("medical"));
    // A history: more grants, a request and refusal, revocations, a removal.
    let hosp = (Identity::new("st-marys").unwrap(), user(8));
    w.srs.add_user(&hosp.0, Role::Hospital, &hosp.1).unwrap();
    let id = w
        .srs
        .request_access(
            &hosp.0,
            w.alice.patient(),
            &med,
            Purpose::Operations,
            "audit",
        )
        .unwrap();
    w.srs
        .refuse_request(
            &w.alice
                .sign_refusal_with_rng(id, "no", T0, &mut rng(5))
                .unwrap(),
        )
        .unwrap();
    for p in [&w.alice, &w.bob] {
        let k = ReKey::generate(&p.portion_secret(&med, 0), hosp.1.public());
        w.srs
            .give(p, &med, &hosp.0, k, Scope::Since(T0), Some(T0 + 99))
            .unwrap();
    }
    reads(&w).unwrap();
    w.srs.take(&w.bob, &med, &hosp.0).unwrap();
    w.srs.drop_user(&hosp.0).unwrap();
    let mut out = Vec::new();
    let n = w.srs.export_audit_jsonl(1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, n);
    // The auditor knows each patient's consent key (from the patient).
    let known = [
        (w.alice.patient().clone(), w.alice.consent_public()),
        (w.bob.patient().clone(), w.bob.consent_public()),
    ];
    let keys = |p: &Identity| known.iter().find(|(q, _)| q == p).map(|(_, k)| *k);
    let mut prev = [0u8; 32];
    let mut counts = std::collections::BTreeMap::new();
    let mut entries = Vec::new();
    for (i, v) in lines.iter().enumerate() {
        let e = entry_of(v);
        let prev_hash: [u8; 32] = unhex(v["prev_hash"].as_str().unwrap()).try_into().unwrap();
        if i > 0 {
            assert_eq!(prev_hash, prev, "entry {} does not link", e.seq);
        }
        let mut h = Sha256::new();
        h.update(prev_hash);
        h.update(e.to_bytes());
        let hash: [u8; 32] = h.finalize().into();
        assert_eq!(
            hex(&hash),
            v["hash"].as_str().unwrap(),
            "entry {} rebuilt exactly",
            e.seq
        );
        prev = hash;
        let checked = check_entry(&e, &keys).unwrap_or_else(|err| panic!("entry {}: {err}", e.seq));
        if let Checked::Registration(k) = &checked {
            // The registration names the key the patient told the auditor.
            assert_eq!(Some(*k), keys(e.patient.as_ref().unwrap()));
        }
        *counts
            .entry(format!("{checked:?}").split('(').next().unwrap().to_owned())
            .or_insert(0) += 1;
        entries.push(e);
    }
    assert_eq!(counts["Grant"], 3, "{counts:?}");
    assert_eq!(counts["Revocation"], 1, "{counts:?}");
    assert_eq!(counts["Refusal"], 1, "{counts:?}");
    // The removal and the revocation it caused (alice's grant) name the actor.
    assert_eq!(counts["Administrative"], 2, "{counts:?}");
    assert_eq!(counts["Registration"], 2, "{counts:?}");
    // Tampering with the export is detected: a flipped evidence byte, or an
    // entry whose user was changed.
    for e in entries.iter().filter(|e| e.action == AuditAction::Grant) {
        for i in [6, e.evidence.len() / 2, e.evidence.len() - 1] {
            let mut t = e.clone();
            t.evidence[i] ^= 1;
            assert!(check_entry(&t, &keys).is_err(), "entry {} byte {i}", e.seq);
        }
        let mut t = e.clone();
        t.user = Some(Identity::new("someone-else").unwrap());
        assert!(check_entry(&t, &keys).is_err());
        let mut t = e.clone();
        t.evidence.clear();
        assert!(check_entry(&t, &keys).is_err());
    }
    // And the SRS's own check agrees.
    let r = w.srs.verify_consent().unwrap();
    assert_eq!(
        (r.grants, r.revocations, r.refusals, r.administrative),
        (3, 1, 1, 2)
    );
    let _ = lab;
}

/// An audit entry from its JSON export.
fn entry_of(v: &serde_json::Value) -> AuditEntry {
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    let action = [
        AuditAction::RegisterUser,
        AuditAction::RemoveUser,
        AuditAction::RegisterPatient,
        AuditAction::AddPortion,
        AuditAction::IssueKeys,
        AuditAction::Grant,
        AuditAction::Revoke,
        AuditAction::ReEncrypt,
        AuditAction::RequestAccess,
        AuditAction::RefuseRequest,
    ]
    .into_iter()
    .find(|a| a.as_str() == v["action"].as_str().unwrap())
    .unwrap();
    let outcome = match v["outcome"].as_str().unwrap() {
        "ok" => AuditOutcome::Ok,
        d => {
            let name = d.strip_prefix("denied:").unwrap();
            AuditOutcome::Denied(
                [
                    Denial::NotRegistered,
                    Denial::NotGranted,
                    Denial::Revoked,
                    Denial::Expired,
                    Denial::OutOfScope,
                    Denial::InvalidCapsule,
                    Denial::EmergencyOnly,
                ]
                .into_iter()
                .find(|x| x.as_str() == name)
                .unwrap(),
            )
        }
    };
    AuditEntry {
        seq: v["seq"].as_u64().unwrap(),
        time: v["time"].as_u64().unwrap(),
        actor: s("actor").unwrap(),
        action,
        patient: s("patient").map(|p| Identity::new(p).unwrap()),
        label: s("label").map(|l| PortionLabel::new(l).unwrap()),
        user: s("user").map(|u| Identity::new(u).unwrap()),
        record_id: s("record_id").map(|r| RecordId::from_slice(&unhex(&r)).unwrap()),
        outcome,
        detail: s("detail").unwrap(),
        purpose: s("purpose").map(|p| p.parse().unwrap()),
        emergency: v["emergency"].as_bool().unwrap(),
        evidence: s("evidence").map(|e| unhex(&e)).unwrap_or_default(),
    }
}

#[test]
fn consent_survives_a_reopen_and_the_disclosure_index_is_rebuilt_from_schema_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.db");
    let key = StorageKey::generate();
    let alice = patient(1);
    let (doc, kp) = (Identity::new("dr-house").unwrap(), user(1));
    let lab = label("lab");
    let report =
        SealedPortion::seal(&alice.portion_public(&lab, 0), RecordId::random(), 10, b"r").unwrap();
    let (grant, k) = {
        let srs = Srs::open_sqlite(&path, key.clone()).unwrap();
        srs.add_patient(&alice, &[(lab.clone(), 0)]).unwrap();
        srs.add_user(&doc, Role::Doctor, &kp).unwrap();
        let k = ReKey::generate(&alice.portion_secret(&lab, 0), kp.public());
        let g = signed(&alice, "lab", &doc, &k, srs.now());
        srs.grant(&g, k.clone()).unwrap();
        for _ in 0..3 {
            srs.reencrypt(&doc, report.header(), Purpose::Payment)
                .unwrap();
        }
        (g, k)
    };
    // The database as an earlier version left it: no disclosure index.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE disclosures; UPDATE meta SET value = 2 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let key2 = key.clone();
    let srs = Srs::open_sqlite(&path, key).unwrap();
    let d: Vec<Disclosure> = srs
        .disclosures(alice.patient(), 0, u64::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(d.len(), 3);
    assert!(
        d.iter()
            .all(|x| x.purpose == Some(Purpose::Payment) && x.user == doc)
    );
    srs.verify_audit().unwrap();
    // The replay state survived too.
    assert!(matches!(srs.grant(&grant, k), Err(SrsError::Replayed)));
    assert_eq!(srs.verify_consent().unwrap().grants, 1);
    drop(srs);
    // An index row deleted behind the SRS's back is detected.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        let n = c
            .execute(
                "DELETE FROM disclosures WHERE seq = (SELECT min(seq) FROM disclosures)",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let srs = Srs::open_sqlite(&path, key2).unwrap();
    assert!(matches!(
        srs.verify_audit(),
        Err(SrsError::Tampered("disclosure index"))
    ));
}
