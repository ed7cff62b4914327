//! Bad input to the SRS: typed errors, and the state is exactly as before.
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
use sesphr::*;

struct World {
    srs: Srs,
    alice: PatientKeys,
    bob: PatientKeys,
    doc: Identity,
    doc_keys: KeyPair,
    nurse: Identity,
    nurse_keys: KeyPair,
    gone: Identity,
}

fn world() -> World {
    let srs = Srs::in_memory().unwrap();
    let alice = patient(10);
    let bob = patient(11);
    let labels = ["medical", "lab"];
    srs.add_patient(&alice, &labels.map(|l| (label(l), 0)))
        .unwrap();
    srs.add_patient(&bob, &labels.map(|l| (label(l), 0)))
        .unwrap();
    let (doc, doc_keys) = (Identity::new("doc").unwrap(), user(1));
    let (nurse, nurse_keys) = (Identity::new("nurse").unwrap(), user(2));
    let gone = Identity::new("gone").unwrap();
    srs.add_user(&doc, Role::Doctor, &doc_keys).unwrap();
    srs.add_user(&nurse, Role::Other("nurse".into()), &nurse_keys)
        .unwrap();
    srs.add_user(&gone, Role::Family, &user(3)).unwrap();
    srs.drop_user(&gone).unwrap();
    let med = label("medical");
    srs.give(
        &alice,
        &med,
        &doc,
        ReKey::generate(&alice.portion_secret(&med, 0), doc_keys.public()),
        Scope::AllRecords,
        None,
    )
    .unwrap();
    World {
        srs,
        alice,
        bob,
        doc,
        doc_keys,
        nurse,
        nurse_keys,
        gone,
    }
}

/// Runs `f`, which must fail as `check` says, and checks that the registry
/// and the audit chain are unchanged.
fn refused<T>(
    w: &World,
    what: &str,
    f: impl FnOnce(&World) -> Result<T, SrsError>,
    check: impl Fn(&SrsError) -> bool,
) {
    let before = w.srs.registry();
    let entries = w.srs.verify_audit().unwrap();
    match f(w) {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => assert!(check(&e), "{what}: wrong error {e:?}"),
    }
    assert_eq!(w.srs.registry(), before, "{what}: state changed");
    assert_eq!(
        w.srs.verify_audit().unwrap(),
        entries,
        "{what}: audited a refused change"
    );
}

#[test]
fn registry_errors_leave_state_unchanged() {
    let w = world();
    let unknown = Identity::new("nobody").unwrap();
    let med = label("medical");
    let xray = label("xray");
    refused(
        &w,
        "duplicate user",
        |w| w.srs.add_user(&w.doc, Role::Doctor, &user(50)),
        |e| matches!(e, SrsError::AlreadyRegistered),
    );
    refused(
        &w,
        "removed identity reused",
        |w| w.srs.add_user(&w.gone, Role::Family, &user(51)),
        |e| matches!(e, SrsError::AlreadyRegistered),
    );
    refused(
        &w,
        "public key reused",
        |w| w.srs.add_user(&unknown, Role::Doctor, &w.doc_keys),
        |e| matches!(e, SrsError::KeyInUse),
    );
    refused(
        &w,
        "duplicate patient",
        |w| w.srs.add_patient(&w.alice, &[]),
        |e| matches!(e, SrsError::AlreadyRegistered),
    );
    refused(
        &w,
        "a label twice in one registration",
        |w| {
            let p = PatientKeys::from_master(
                Identity::new("new-patient").unwrap(),
                &patient(60).master_bytes(),
            );
            w.srs.add_patient(&p, &[(med.clone(), 0), (med.clone(), 0)])
        },
        |e| matches!(e, SrsError::KeyInUse | SrsError::AlreadyRegistered),
    );
    refused(
        &w,
        "portion for unknown patient",
        |w| {
            let p = PatientKeys::from_master(unknown.clone(), &patient(61).master_bytes());
            w.srs
                .add_portions(&consent::PatientRegistration::new(&p, &[(xray.clone(), 0)]).unwrap())
        },
        |e| matches!(e, SrsError::UnknownPatient),
    );
    refused(
        &w,
        "same label and epoch again",
        |w| {
            w.srs.add_portions(
                &consent::PatientRegistration::new(&w.alice, &[(med.clone(), 0)]).unwrap(),
            )
        },
        |e| matches!(e, SrsError::KeyInUse | SrsError::AlreadyRegistered),
    );
    refused(
        &w,
        "portions signed by another patient's consent key",
        |w| {
            // bob's registration renamed cannot be built; a registration by
            // a stranger whose identity is alice's but master differs:
            let imposter =
                PatientKeys::from_master(w.alice.patient().clone(), &patient(62).master_bytes());
            w.srs.add_portions(
                &consent::PatientRegistration::new(&imposter, &[(xray.clone(), 0)]).unwrap(),
            )
        },
        |e| matches!(e, SrsError::Malformed(Error::InvalidSignature { .. })),
    );
    refused(
        &w,
        "remove unknown user",
        |w| w.srs.drop_user(&unknown),
        |e| matches!(e, SrsError::UnknownUser),
    );
    refused(
        &w,
        "remove removed user",
        |w| w.srs.drop_user(&w.gone),
        |e| matches!(e, SrsError::UserRemoved),
    );
    refused(
        &w,
        "escrow not enabled",
        |w| w.srs.issue_keys(&unknown, 0).map(drop),
        |e| matches!(e, SrsError::EscrowDisabled),
    );
    assert!(
        matches!("Doctor".parse::<Role>(), Err(sesphr::Error::InvalidRole))
            && "nurse".parse::<Role>().unwrap() == Role::Other("nurse".into())
    );
}

#[test]
fn grant_and_revoke_errors_leave_state_unchanged() {
    let w = world();
    let med = label("medical");
    let lab = label("lab");
    let unknown = Identity::new("nobody").unwrap();
    let alice_med = w.alice.portion_secret(&med, 0);
    let rk = |k: &PortionSecretKey, to: &KeyPair| ReKey::generate(k, to.public());
    let sign = |p: &PatientKeys, l: &PortionLabel, e: u32, u: &Identity, k: &ReKey| {
        p.sign_grant(l, e, u, k, &consent::GrantOptions::default())
            .unwrap()
    };
    refused(
        &w,
        "unknown patient",
        |w| {
            let stranger = PatientKeys::from_master(unknown.clone(), &patient(63).master_bytes());
            let k = rk(&stranger.portion_secret(&med, 0), &w.nurse_keys);
            w.srs.grant(&sign(&stranger, &med, 0, &w.nurse, &k), k)
        },
        |e| matches!(e, SrsError::UnknownPatient),
    );
    refused(
        &w,
        "unknown user",
        |w| {
            w.srs.give(
                &w.alice,
                &med,
                &unknown,
                rk(&alice_med, &w.nurse_keys),
                Scope::AllRecords,
                None,
            )
        },
        |e| matches!(e, SrsError::UnknownUser),
    );
    refused(
        &w,
        "removed user",
        |w| {
            w.srs.give(
                &w.alice,
                &med,
                &w.gone,
                rk(&alice_med, &user(3)),
                Scope::AllRecords,
                None,
            )
        },
        |e| matches!(e, SrsError::UserRemoved),
    );
    refused(
        &w,
        "unknown label",
        |w| {
            let xray = label("xray");
            let k = rk(&w.alice.portion_secret(&xray, 0), &w.nurse_keys);
            w.srs.grant(&sign(&w.alice, &xray, 0, &w.nurse, &k), k)
        },
        |e| matches!(e, SrsError::UnknownPortion),
    );
    refused(
        &w,
        "rekey for another user",
        |w| {
            w.srs.give(
                &w.alice,
                &med,
                &w.nurse,
                rk(&alice_med, &w.doc_keys),
                Scope::AllRecords,
                None,
            )
        },
        |e| matches!(e, SrsError::ReKeyMismatch),
    );
    refused(
        &w,
        "rekey for another label than the one signed",
        |w| {
            let signed_for = rk(&w.alice.portion_secret(&lab, 0), &w.nurse_keys);
            let g = sign(&w.alice, &lab, 0, &w.nurse, &signed_for);
            w.srs.grant(&g, rk(&alice_med, &w.nurse_keys))
        },
        |e| matches!(e, SrsError::ReKeyMismatch),
    );
    refused(
        &w,
        "rekey of another patient under a signed grant",
        |w| {
            let signed_for = rk(&alice_med, &w.nurse_keys);
            let g = sign(&w.alice, &med, 0, &w.nurse, &signed_for);
            w.srs
                .grant(&g, rk(&w.bob.portion_secret(&med, 0), &w.nurse_keys))
        },
        |e| matches!(e, SrsError::ReKeyMismatch),
    );
    refused(
        &w,
        "rekey of an unregistered epoch",
        |w| {
            let k = rk(&w.alice.portion_secret(&med, 1), &w.nurse_keys);
            w.srs.grant(&sign(&w.alice, &med, 1, &w.nurse, &k), k)
        },
        |e| matches!(e, SrsError::UnknownPortion),
    );
    refused(
        &w,
        "administrative revocation without a grant",
        |w| w.srs.revoke_as(&admin(), w.alice.patient(), &lab, &w.doc),
        |e| matches!(e, SrsError::NotGranted),
    );
    refused(
        &w,
        "revoke for unknown user",
        |w| w.srs.take(&w.alice, &med, &unknown),
        |e| matches!(e, SrsError::UnknownUser),
    );
    refused(
        &w,
        "revoke for unknown patient",
        |w| {
            let stranger = PatientKeys::from_master(unknown.clone(), &patient(64).master_bytes());
            w.srs.take(&stranger, &med, &w.doc)
        },
        |e| matches!(e, SrsError::UnknownPatient),
    );
    refused(
        &w,
        "revoke unknown label",
        |w| w.srs.take(&w.alice, &label("xray"), &w.doc),
        |e| matches!(e, SrsError::UnknownPortion),
    );
    refused(
        &w,
        "administrative revocation for another patient",
        |w| w.srs.revoke_as(&admin(), w.bob.patient(), &med, &w.doc),
        |e| matches!(e, SrsError::NotGranted),
    );
}

#[test]
fn reencrypt_denials_are_typed_audited_and_change_nothing_else() {
    let w = world();
    let med = label("medical");
    let s = SealedPortion::seal(
        &w.alice.portion_public(&med, 0),
        RecordId::random(),
        T0,
        b"r",
    )
    .unwrap();
    let bob_s =
        SealedPortion::seal(&w.bob.portion_public(&med, 0), RecordId::random(), T0, b"r").unwrap();
    let stranger = SealedPortion::seal(
        &patient(99).portion_public(&med, 0),
        RecordId::random(),
        T0,
        b"r",
    )
    .unwrap();
    let mut moved = s.header().to_bytes();
    moved[40] ^= 1; // inside the record id
    let moved = PortionHeader::from_bytes(&moved).unwrap();
    let cases: Vec<(Identity, &PortionHeader, Denial)> = vec![
        (
            Identity::new("nobody").unwrap(),
            s.header(),
            Denial::NotRegistered,
        ),
        (w.gone.clone(), s.header(), Denial::NotRegistered),
        (w.nurse.clone(), s.header(), Denial::NotGranted),
        (w.doc.clone(), bob_s.header(), Denial::NotGranted),
        (w.doc.clone(), stranger.header(), Denial::NotGranted),
        (w.doc.clone(), &moved, Denial::InvalidCapsule),
    ];
    for (who, h, want) in cases {
        let before = w.srs.registry();
        let n = w.srs.verify_audit().unwrap();
        let res = w.srs.reencrypt(&who, h, sesphr::srs::Purpose::Treatment);
        assert!(
            matches!(res, Err(SrsError::Denied(d)) if d == want),
            "{who}: {res:?}"
        );
        assert_eq!(w.srs.registry(), before);
        // The denial is in the audit chain, with its reason.
        assert_eq!(w.srs.verify_audit().unwrap(), n + 1);
        let last = w
            .srs
            .audit_entries(n + 1, usize::MAX)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(last.action, AuditAction::ReEncrypt);
        assert_eq!(last.outcome, AuditOutcome::Denied(want));
        assert_eq!(last.user.as_ref(), Some(&who));
        // Only a header whose capsule proof verifies names its record.
        let named = h.verify().is_ok().then(|| h.context().record_id());
        assert_eq!(last.record_id, named);
    }
    // Malformed header bytes: a typed error, nothing audited.
    let n = w.srs.verify_audit().unwrap();
    for bad in [&b""[..], b"SPHR", &s.header().to_bytes()[..50], &[0u8; 200]] {
        assert!(matches!(
            w.srs
                .reencrypt_encoded(&w.doc, bad, sesphr::srs::Purpose::Treatment),
            Err(SrsError::Malformed(_))
        ));
    }
    assert_eq!(w.srs.verify_audit().unwrap(), n);
    // The granted doctor still reads.
    let rc = w
        .srs
        .reencrypt_encoded(
            &w.doc,
            &s.header().to_bytes(),
            sesphr::srs::Purpose::Treatment,
        )
        .unwrap();
    assert_eq!(s.open_as_delegatee(&w.doc_keys, &rc).unwrap(), b"r");
}

#[test]
fn audit_export_is_json_lines_that_name_every_change() {
    let w = world();
    let mut out = Vec::new();
    let n = w.srs.export_audit_jsonl(1, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, n);
    assert_eq!(n, w.srs.verify_audit().unwrap());
    let mut prev = String::new();
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["seq"], i as u64 + 1);
        if i > 0 {
            assert_eq!(v["prev_hash"].as_str().unwrap(), prev);
        }
        prev = v["hash"].as_str().unwrap().to_owned();
    }
    let actions: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for a in [
        "register_patient",
        "add_portion",
        "register_user",
        "remove_user",
        "grant",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing");
    }
}

#[test]
fn escrow_mode_issues_keys_that_work() {
    let issuer = EscrowKeyIssuer::generate();
    let srs = Srs::open(
        SrsConfig::new(sesphr::store::MemoryStore::new(), StorageKey::generate())
            .escrow(issuer.clone()),
    )
    .unwrap();
    let id = Identity::new("clinic-7").unwrap();
    let kp = srs.issue_keys(&id, 0).unwrap();
    assert_eq!(kp.public(), issuer.issue(&id, 0).public());
    let e = srs.audit_entries(1, usize::MAX).unwrap();
    assert_eq!(e.last().unwrap().action, AuditAction::IssueKeys);
    srs.add_user(&id, Role::Hospital, &kp).unwrap();
}
