//! The `fhir` feature where it could be bent: a revoked Consent set back to
//! `active`; every field of a Consent added to, changed, or given a
//! `modifierExtension`; drafted Consents with restrictions a grant cannot
//! express; portions of two patients, two records or two versions given to
//! one reassembler; nested Bundles; lab results by v2-0074, LOINC and
//! SNOMED category. And a property: for random Bundles built from the
//! fixtures, nested up to 3 levels, a reader of any one portion receives
//! only what an independent table places in it, and the owner gets the
//! input back.
#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

mod common;

use chacha20::ChaCha20Rng;
use proptest::prelude::*;
use serde_json::{Value, json};
use sesphr::consent::GrantOptions;
use sesphr::fhir::*;
use sesphr::rand_core::{Rng, SeedableRng};
use sesphr::srs::{Role, Scope};
use sesphr::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fhir");

fn planted() -> Value {
    serde_json::from_slice(&std::fs::read(format!("{FIXTURES}/planted-identifiers.json")).unwrap())
        .unwrap()
}

fn patient_keys(p: &PatientKeys, map: &PortionMap) -> Vec<PortionPublicKey> {
    map.labels()
        .iter()
        .map(|l| p.portion_public(l, 0))
        .collect()
}

fn open(p: &PatientKeys, s: &SealedFhir) -> Vec<u8> {
    s.sealed
        .open_as_owner(&p.portion_secret(&s.label, 0))
        .unwrap()
}

// ---------------------------------------------------------------- Consent

const NOW: u64 = 1_800_000_100;

fn grant(p: &PatientKeys, options: &GrantOptions) -> consent::SignedGrant {
    let lab = common::label("lab");
    let rekey = ReKey::generate(&p.portion_secret(&lab, 0), common::user(9).public());
    p.sign_grant(
        &lab,
        0,
        &Identity::new("dr-seams").unwrap(),
        &rekey,
        options,
    )
    .unwrap()
}

fn full_options() -> GrantOptions {
    GrantOptions {
        scope: Scope::Since(1_700_000_000),
        expiry: Some(1_900_000_000),
        issued_at: Some(1_800_000_000),
        emergency: Some(Role::Doctor),
        ..GrantOptions::default()
    }
}

#[test]
fn a_revoked_consent_set_back_to_active_is_not_a_grant() {
    let p = common::patient(21);
    let map = PortionMap::default();
    let key = p.consent_public();
    let g = grant(&p, &full_options());
    let c = consent_from_grant(&g, &map);
    let revocation = p
        .sign_revocation_with_rng(g.label(), g.user(), 1_850_000_000, &mut common::rng(21))
        .unwrap();
    let revoked = revoke_consent(&c, &revocation, &key, &map).unwrap();
    assert_eq!(revoked["status"], "inactive");
    assert!(
        revoked["text"]["div"]
            .as_str()
            .unwrap()
            .contains("Revoked at")
    );

    // Set back to active, the revocation left in place: still revoked.
    let mut revived = revoked.clone();
    revived["status"] = json!("active");
    assert!(matches!(
        grant_from_consent(&revived, &key, &map),
        Err(FhirError::ConsentRevoked)
    ));
    // And with the old end and narrative put back too.
    revived["provision"] = c["provision"].clone();
    revived["text"] = c["text"].clone();
    assert!(matches!(
        grant_from_consent(&revived, &key, &map),
        Err(FhirError::ConsentRevoked)
    ));
    // The revocation taken out: the status and end still differ from the
    // grant's Consent, so what remains is not the live grant either unless
    // it is exactly the original (which the SRS refuses to serve anyway).
    let mut stripped = revoked.clone();
    stripped.as_object_mut().unwrap().remove("extension");
    stripped["status"] = json!("active");
    assert!(matches!(
        grant_from_consent(&stripped, &key, &map),
        Err(FhirError::ConsentDiffers { .. })
    ));
    // A revoked Consent reads back as exactly its two signed objects, and
    // is itself checked field by field.
    let (rg, rr) = revocation_from_consent(&revoked, &key, &map).unwrap();
    assert_eq!(rg, g);
    assert_eq!(rr, revocation);
    let mut edited = revoked.clone();
    edited["provision"]["period"]["end"] = json!("2099-01-01T00:00:00Z");
    assert!(matches!(
        revocation_from_consent(&edited, &key, &map),
        Err(FhirError::ConsentDiffers { path }) if path == "/provision/period/end"
    ));
    // Revoking twice is refused: the input is no longer a grant.
    assert!(revoke_consent(&revoked, &revocation, &key, &map).is_err());
}

/// Every JSON pointer of `v` whose value is an object, an array, or a
/// scalar.
fn paths(v: &Value, at: &str, out: &mut Vec<String>) {
    out.push(at.to_owned());
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                paths(x, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                paths(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_field_of_a_consent_is_checked_and_only_the_allowlist_may_differ() {
    let p = common::patient(22);
    let map = PortionMap::default();
    let key = p.consent_public();
    for options in [full_options(), GrantOptions::default()] {
        let g = grant(&p, &options);
        let c = consent_from_grant(&g, &map);
        assert_eq!(grant_from_consent(&c, &key, &map).unwrap(), g);
        let mut all = Vec::new();
        paths(&c, "", &mut all);
        assert!(all.len() > 50, "{}", all.len());
        let mut checked = 0;
        for path in &all {
            let target = c.pointer(path).unwrap();
            let mut edits: Vec<(&str, Value)> = Vec::new();
            match target {
                Value::Object(_) => {
                    // A sibling field, and a modifierExtension, at this level.
                    let mut added = c.clone();
                    added.pointer_mut(path).unwrap()["zz-added"] = json!("x");
                    edits.push(("added field", added));
                    let mut modifier = c.clone();
                    modifier.pointer_mut(path).unwrap()["modifierExtension"] =
                        json!([{"url": "http://example.org/no-disclosure", "valueBoolean": true}]);
                    edits.push(("modifierExtension", modifier));
                }
                Value::Array(a) => {
                    let mut longer = c.clone();
                    let item = a.first().cloned().unwrap_or(json!({}));
                    longer
                        .pointer_mut(path)
                        .unwrap()
                        .as_array_mut()
                        .unwrap()
                        .push(item);
                    edits.push(("added item", longer));
                }
                Value::String(s) => {
                    let mut changed = c.clone();
                    *changed.pointer_mut(path).unwrap() = json!(format!("{s}x"));
                    edits.push(("changed value", changed));
                }
                other => {
                    let mut changed = c.clone();
                    *changed.pointer_mut(path).unwrap() = json!([other.clone()]);
                    edits.push(("changed value", changed));
                }
            }
            for (what, edited) in edits {
                checked += 1;
                let r = grant_from_consent(&edited, &key, &map);
                // On the allowlist: another id.
                if path == "/id" && what == "changed value" {
                    assert_eq!(r.unwrap(), g, "{path}");
                    continue;
                }
                match (what, r) {
                    ("modifierExtension", Err(FhirError::Consent(m))) => {
                        assert!(m.contains("modifierExtension"), "{path}");
                    }
                    (_, Err(FhirError::ConsentDiffers { path: at })) => {
                        assert!(at.starts_with(path.as_str()), "{path}: {at}");
                    }
                    // An edit of the signed grant's own bytes, or of what
                    // makes it a Consent.
                    (_, Err(FhirError::Crypto(_) | FhirError::Consent(_)))
                        if path.starts_with("/sourceAttachment") || path == "/resourceType" => {}
                    (_, r) => panic!("{what} at {path} gave {r:?}"),
                }
            }
        }
        assert!(checked >= all.len(), "{checked}");
        // Host fields: a meta with version and time; nothing else in meta.
        let mut hosted = c.clone();
        hosted["meta"] = json!({"versionId": "7", "lastUpdated": "2027-02-01T00:00:00Z"});
        assert_eq!(grant_from_consent(&hosted, &key, &map).unwrap(), g);
        hosted["meta"]["security"] = json!([{"code": "R"}]);
        assert!(matches!(
            grant_from_consent(&hosted, &key, &map),
            Err(FhirError::ConsentDiffers { path }) if path == "/meta/security"
        ));
        // The narrative may be dropped, never replaced; an added policy,
        // an invalid id, a removed field are refused.
        let mut bare = c.clone();
        bare.as_object_mut().unwrap().remove("text");
        assert_eq!(grant_from_consent(&bare, &key, &map).unwrap(), g);
        for (k, v) in [
            (
                "policy",
                json!([{"uri": "http://example.org/only-on-tuesdays"}]),
            ),
            ("id", json!("not an id!")),
        ] {
            let mut edited = c.clone();
            edited[k] = v;
            assert!(grant_from_consent(&edited, &key, &map).is_err(), "{k}");
        }
        for k in ["status", "provision", "policyRule", "category"] {
            let mut removed = c.clone();
            removed.as_object_mut().unwrap().remove(k);
            assert!(matches!(
                grant_from_consent(&removed, &key, &map),
                Err(FhirError::ConsentDiffers { path }) if path == format!("/{k}")
            ));
        }
    }
}

#[test]
fn drafted_consents_name_each_restriction_a_grant_cannot_express() {
    let p = common::patient(23);
    let map = PortionMap::default();
    let g = grant(&p, &full_options());
    let mut drafted = consent_from_grant(&g, &map);
    drafted.as_object_mut().unwrap().remove("sourceAttachment");
    let terms = ConsentTerms::from_consent_at(&drafted, &map, NOW).unwrap();
    assert_eq!(terms, ConsentTerms::of_grant(&g));

    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "nested provisions",
            "/provision/provision",
            json!([{"type": "deny", "class": [{"code": "Observation"}]}]),
        ),
        (
            "nested provisions",
            "/provision/provision",
            json!([{"type": "permit"}]),
        ),
        (
            "provision.dataPeriod.end",
            "/provision/dataPeriod/end",
            json!("2025-01-01T00:00:00Z"),
        ),
        (
            "provision.period.start after now",
            "/provision/period/start",
            json!("2031-01-01T00:00:00Z"),
        ),
        (
            "provision.period.end not after now",
            "/provision/period/end",
            json!("2020-01-01T00:00:00Z"),
        ),
        (
            "provision.securityLabel",
            "/provision/securityLabel",
            json!([{"code": "HIV"}]),
        ),
        (
            "provision.action other than access",
            "/provision/action",
            json!([{"coding": [{"code": "disclose"}]}]),
        ),
        (
            "provision.purpose other than ETREAT and BTG",
            "/provision/purpose",
            json!([{"code": "HRESCH"}]),
        ),
        (
            "provision.actor of a role other than IRCP",
            "/provision/actor/0/role",
            json!({"coding": [{"code": "PRCP"}]}),
        ),
        (
            "provision.data",
            "/provision/data",
            json!([{"meaning": "instance", "reference": {"reference": "Observation/1"}}]),
        ),
        (
            "provision.code of another system than urn:sesphr:portion",
            "/provision/code/0/coding/0/system",
            json!("http://loinc.org"),
        ),
        (
            "provision.class that leaves out resource types of a portion",
            "/provision/class",
            json!([{"code": "Observation"}]),
        ),
        (
            "modifierExtension",
            "/provision/modifierExtension",
            json!([{"url": "http://example.org/x", "valueBoolean": true}]),
        ),
        (
            "policy",
            "/policy",
            json!([{"uri": "http://example.org/p"}]),
        ),
        (
            "policyRule other than OPTIN",
            "/policyRule",
            json!({"coding": [{"code": "OPTOUT"}]}),
        ),
        (
            "scope other than patient-privacy",
            "/scope",
            json!({"coding": [{"code": "research"}]}),
        ),
    ];
    let mut everything = drafted.clone();
    let mut names = Vec::new();
    for (name, path, value) in &cases {
        let mut d = drafted.clone();
        set(&mut d, path, value.clone());
        match ConsentTerms::from_consent_at(&d, &map, NOW) {
            Err(FhirError::Inexpressible(w)) => assert_eq!(w, [*name], "{path}"),
            other => panic!("{path}: {other:?}"),
        }
        if !(path.starts_with("/provision/period") || path.contains("code/0/coding")) {
            set(&mut everything, path, value.clone());
            if !names.contains(name) {
                names.push(*name);
            }
        }
    }
    // All at once: each named.
    match ConsentTerms::from_consent_at(&everything, &map, NOW) {
        Err(FhirError::Inexpressible(w)) => {
            for n in &names {
                assert!(w.contains(n), "{n} not in {w:?}");
            }
        }
        other => panic!("{other:?}"),
    }
    // `access` is what a grant gives: accepted.
    let mut access = drafted.clone();
    access["provision"]["action"] = json!([{"coding": [{"code": "access"}]}]);
    assert!(ConsentTerms::from_consent_at(&access, &map, NOW).is_ok());
}

fn set(v: &mut Value, path: &str, value: Value) {
    let (parent, key) = path.rsplit_once('/').unwrap();
    let target = v.pointer_mut(parent).unwrap();
    match target {
        Value::Array(a) => {
            let i: usize = key.parse().unwrap();
            a[i] = value;
        }
        other => other[key] = value,
    }
}

// ------------------------------------------------------------- Reassembly

/// A Bundle without id, identifier or timestamp: two patients' look alike.
fn anonymous_bundle(patient: &str, lab_code: &str) -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "name": [{"family": patient}]}},
        {"fullUrl": "urn:uuid:o", "resource": {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": lab_code}]},
            "subject": {"reference": "urn:uuid:p"}}}
    ]})
}

#[test]
fn portions_of_two_patients_records_or_versions_do_not_merge() {
    let map = PortionMap::default();
    let (pa, pb) = (common::patient(24), common::patient(25));
    let seal = |p: &PatientKeys, b: &Value, g: Granularity| {
        split_value(b.clone(), &map)
            .unwrap()
            .seal(&patient_keys(p, &map), g, 1_767_225_600)
            .unwrap()
    };
    let a = seal(
        &pa,
        &anonymous_bundle("A", "7905-3"),
        Granularity::PerPortion,
    );
    let b = seal(
        &pb,
        &anonymous_bundle("B", "7905-3"),
        Granularity::PerPortion,
    );
    let find =
        |s: &[SealedFhir], l: &str| s.iter().find(|x| x.label.as_str() == l).cloned().unwrap();
    let (a_personal, b_lab) = (find(&a, "personal"), find(&b, "lab"));

    // A's personal portion with B's lab portion: another record.
    let mut r = Reassembler::new(&map);
    r.add(a_personal.sealed.header(), &open(&pa, &a_personal))
        .unwrap();
    let e = r
        .add(b_lab.sealed.header(), &open(&pb, &b_lab))
        .unwrap_err();
    assert!(matches!(e, FhirError::OtherRecord));
    // The message names no record, patient or label value.
    let text = e.to_string();
    assert!(!text.contains(&a_personal.record.to_string()));
    assert!(!text.contains(&b_lab.record.to_string()));
    assert!(!text.contains("patient-"));

    // B's lab content sealed under B's key with A's record id (anyone with
    // B's public key can): refused when the reader gives A's keys.
    let forged = SealedPortion::seal(
        &pb.portion_public(&common::label("lab"), 0),
        a_personal.record,
        1_767_225_600,
        &open(&pb, &b_lab),
    )
    .unwrap();
    let mut r = Reassembler::new(&map).expect_keys(&patient_keys(&pa, &map));
    r.add(a_personal.sealed.header(), &open(&pa, &a_personal))
        .unwrap();
    assert!(matches!(
        r.add(forged.header(), &open(&pb, &b_lab)),
        Err(FhirError::OtherPatient)
    ));
    // Two versions of one label of one record: the second is refused.
    let a_lab = find(&a, "lab");
    r.add(a_lab.sealed.header(), &open(&pa, &a_lab)).unwrap();
    let again = SealedPortion::seal(
        &pa.portion_public(&common::label("lab"), 0),
        a_lab.record,
        1_767_225_600,
        &open(&pa, &a_lab),
    )
    .unwrap();
    assert!(matches!(
        r.add(again.header(), &open(&pa, &a_lab)),
        Err(FhirError::DuplicatePortion { label }) if label == "lab"
    ));
    let rebuilt = r.finish().unwrap();
    assert!(compare(&anonymous_bundle("A", "7905-3"), &rebuilt).is_empty());

    // Per resource: each sealed object once; another record's refused.
    let a = seal(
        &pa,
        &anonymous_bundle("A", "7905-3"),
        Granularity::PerResource,
    );
    let b = seal(
        &pb,
        &anonymous_bundle("B", "7905-3"),
        Granularity::PerResource,
    );
    let mut r = Reassembler::new(&map).granularity(Granularity::PerResource);
    r.add(a[0].sealed.header(), &open(&pa, &a[0])).unwrap();
    assert!(matches!(
        r.add(a[0].sealed.header(), &open(&pa, &a[0])),
        Err(FhirError::DuplicatePortion { .. })
    ));
    assert!(matches!(
        r.add(b[1].sealed.header(), &open(&pb, &b[1])),
        Err(FhirError::OtherRecord)
    ));
    // A per-portion plaintext of several entries is not a per-resource one.
    let whole = seal(&pa, &anonymous_bundle("A", "1"), Granularity::PerPortion);
    let mut r = Reassembler::new(&map).granularity(Granularity::PerResource);
    let many = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        anonymous_bundle("A", "1")["entry"][1].clone(), anonymous_bundle("A", "2")["entry"][1].clone()]});
    assert!(matches!(
        r.add(
            whole[1].sealed.header(),
            &serde_json::to_vec(&many).unwrap()
        ),
        Err(FhirError::Inconsistent(_))
    ));
}

/// An HIV result and a Patient inside a Bundle inside the Bundle.
fn nested_bundle() -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:enc", "resource": {"resourceType": "Encounter", "status": "finished"}},
        {"fullUrl": "urn:uuid:inner", "extension": [{"url": "http://example.org/keep", "valueString": "me"}],
         "resource": {"resourceType": "Bundle", "id": "inner", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:p2", "resource": {"resourceType": "Patient", "name": [{"family": "Inner"}]}},
            {"fullUrl": "urn:uuid:hiv", "resource": {"resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1"}]},
                "subject": {"reference": "urn:uuid:p2"}, "performer": [{"reference": "urn:uuid:dr"}]}},
            {"fullUrl": "urn:uuid:bp", "resource": {"resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"code": "vital-signs"}]}]}},
            {"fullUrl": "urn:uuid:dr", "resource": {"resourceType": "Practitioner", "id": "dr"}},
            {"fullUrl": "urn:uuid:deeper", "resource": {"resourceType": "Bundle", "type": "searchset", "total": 0}}
         ]}}
    ]})
}

/// The resource types at every depth of a rebuilt Bundle.
fn types_received(b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(entries: &Value, out: &mut Vec<String>) {
        for e in entries.as_array().into_iter().flatten() {
            let t = e["resource"]["resourceType"]
                .as_str()
                .unwrap_or("-")
                .to_owned();
            if t == "Bundle" {
                walk(&e["resource"]["entry"], out);
            } else {
                out.push(t);
            }
        }
    }
    walk(&b["entry"], &mut out);
    out.sort();
    out
}

#[test]
fn nested_bundles_are_split_by_portion_and_restored_exactly() {
    let map = PortionMap::default();
    let p = common::patient(26);
    let input = nested_bundle();
    let parts = split_value(input.clone(), &map).unwrap();
    assert_eq!(parts.resource_count(), 7);
    for g in [Granularity::PerPortion, Granularity::PerResource] {
        let sealed = parts.seal(&patient_keys(&p, &map), g, 0).unwrap();
        // A reader of `medical` alone: the Encounter, the blood pressure,
        // the empty inner searchset's shell; no Patient, no lab result.
        let mut medical = Reassembler::new(&map)
            .granularity(g)
            .expect_keys(&patient_keys(&p, &map));
        for s in sealed.iter().filter(|s| s.label.as_str() == "medical") {
            medical.add(s.sealed.header(), &open(&p, s)).unwrap();
        }
        let view = medical.finish().unwrap();
        assert_eq!(types_received(&view), ["Encounter", "Observation"]);
        assert!(!view.to_string().contains("75622-1"));
        assert!(!view.to_string().contains("Inner"));
        // A reader of `lab`: the HIV result and its performer, nothing else.
        let mut lab = Reassembler::new(&map).granularity(g);
        for s in sealed.iter().filter(|s| s.label.as_str() == "lab") {
            lab.add(s.sealed.header(), &open(&p, s)).unwrap();
        }
        assert_eq!(
            types_received(&lab.finish().unwrap()),
            ["Observation", "Practitioner"]
        );
        // The owner: everything, the inner Bundles exactly as they were.
        let mut all = Reassembler::new(&map).granularity(g);
        for s in &sealed {
            all.add(s.sealed.header(), &open(&p, s)).unwrap();
        }
        let rebuilt = all.finish().unwrap();
        assert!(
            compare(&input, &rebuilt).is_empty(),
            "{g:?}: {:?}",
            compare(&input, &rebuilt)
        );
    }
    // Refused when the mapping says so, on both sides.
    let strict = PortionMap::default().nested(Nested::Refuse);
    assert!(matches!(
        split_value(input.clone(), &strict),
        Err(FhirError::NestedBundle)
    ));
    let sealed = parts
        .seal(&patient_keys(&p, &map), Granularity::PerPortion, 0)
        .unwrap();
    let mut r = Reassembler::new(&strict);
    let s = sealed.iter().find(|s| s.label.as_str() == "lab").unwrap();
    assert!(matches!(
        r.add(s.sealed.header(), &open(&p, s)),
        Err(FhirError::NestedBundle)
    ));
    // An input already using the position extension is refused.
    let mut marked = input.clone();
    marked["entry"][0]["extension"] = json!([{"url": POSITION_EXTENSION, "valueInteger": 0}]);
    assert!(matches!(
        split_value(marked, &map),
        Err(FhirError::NotFhir { .. })
    ));
    // A lab share that smuggles the Patient into the nested Bundle is
    // refused.
    let lab = sealed.iter().find(|s| s.label.as_str() == "lab").unwrap();
    let mut doc: Value = serde_json::from_slice(&open(&p, lab)).unwrap();
    let inner = doc["entry"][0]["resource"]["entry"].as_array_mut().unwrap();
    inner.push(json!({"resource": {"resourceType": "Patient"},
        "extension": [{"url": POSITION_EXTENSION, "valueInteger": 0}]}));
    let mut r = Reassembler::new(&map);
    assert!(matches!(
        r.add(lab.sealed.header(), &serde_json::to_vec(&doc).unwrap()),
        Err(FhirError::Misfiled { resource_type, .. }) if resource_type == "Patient"
    ));
}

#[test]
fn lab_results_and_medication_resources_go_where_they_belong() {
    let map = PortionMap::default();
    let v2 = "http://terminology.hl7.org/CodeSystem/v2-0074";
    let cases = [
        (
            json!({"resourceType": "Observation", "category": [{"coding": [{"system": v2, "code": "LAB"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "882-1"}]}}),
            "lab",
        ),
        (
            json!({"resourceType": "Observation", "category": [{"coding": [{"system": v2, "code": "BLB"}]}]}),
            "lab",
        ),
        (
            json!({"resourceType": "DiagnosticReport", "category": [{"coding": [{"system": v2, "code": "HM"}]}]}),
            "lab",
        ),
        (
            json!({"resourceType": "DiagnosticReport", "category": [{"coding": [{"system": "http://loinc.org", "code": "LP7839-6"}]}]}),
            "lab",
        ),
        (
            json!({"resourceType": "DiagnosticReport", "category": [{"coding": [{"system": "http://loinc.org", "code": "LP29684-5"}]}]}),
            "imaging",
        ),
        (
            json!({"resourceType": "DiagnosticReport", "category": [{"coding": [{"system": "http://loinc.org", "code": "LP29708-2"}]}]}),
            "medical",
        ),
        (
            json!({"resourceType": "DocumentReference", "category": [{"coding": [{"system": v2, "code": "LAB"}]}]}),
            "lab",
        ),
        (
            json!({"resourceType": "DocumentReference", "category": [{"coding": [{"code": "clinical-note"}]}]}),
            "medical",
        ),
        (
            json!({"resourceType": "ServiceRequest", "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007"}]}]}),
            "lab",
        ),
        (
            json!({"resourceType": "ServiceRequest", "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "363679005"}]}]}),
            "imaging",
        ),
        (
            json!({"resourceType": "Observation", "category": [{"coding": [{"code": "vital-signs"}]}]}),
            "medical",
        ),
        (
            json!({"resourceType": "MedicationAdministration"}),
            "prescription",
        ),
        (
            json!({"resourceType": "MedicationDispense"}),
            "prescription",
        ),
        (
            json!({"resourceType": "MedicationStatement"}),
            "prescription",
        ),
        (json!({"resourceType": "Immunization"}), "medical"),
        (json!({"resourceType": "Media"}), "imaging"),
        (json!({"resourceType": "ImagingStudy"}), "imaging"),
        (json!({"resourceType": "Specimen"}), "lab"),
        (json!({"resourceType": "ChargeItem"}), "insurance"),
        (json!({"resourceType": "Consent"}), "personal"),
    ];
    for (r, want) in &cases {
        let (placement, by_default) = map.place(r).unwrap();
        assert_eq!(placement, Placement::Portion(common::label(want)), "{r}");
        assert!(!by_default, "{r}");
    }
    // MedicationKnowledge is a directory resource, not a defaulted one.
    let mk = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:mk", "resource": {"resourceType": "MedicationKnowledge"}},
        {"fullUrl": "urn:uuid:mr", "resource": {"resourceType": "MedicationRequest",
            "extension": [{"url": "http://example.org/k", "valueReference": {"reference": "urn:uuid:mk"}}]}},
        {"fullUrl": "urn:uuid:x", "resource": {"resourceType": "Basic"}}
    ]});
    let parts = split_value(mk, &map).unwrap();
    assert_eq!(parts.defaulted(), ["Basic urn:uuid:x"]);
    let prescription = parts
        .portions()
        .iter()
        .find(|p| p.label.as_str() == "prescription")
        .unwrap();
    assert_eq!(prescription.copies, 1);
    assert_eq!(
        prescription
            .resource_types()
            .into_iter()
            .collect::<Vec<_>>(),
        [
            ("MedicationKnowledge".to_owned(), 1),
            ("MedicationRequest".to_owned(), 1)
        ]
    );
}

// --------------------------------------------------------------- Property

/// Where each resource of the pool belongs, written out apart from the
/// library's mapping; `None` for directory resources (they go with their
/// referrers).
fn expected_home(r: &Value) -> Option<&'static str> {
    let mut cats = Vec::new();
    for c in r["category"].as_array().into_iter().flatten() {
        for coding in c["coding"].as_array().into_iter().flatten() {
            cats.push(coding["code"].as_str().unwrap_or("").to_owned());
        }
    }
    let has = |c: &str| cats.iter().any(|x| x == c);
    match r["resourceType"].as_str().unwrap() {
        "Patient" => Some("personal"),
        "Observation" | "DiagnosticReport" if has("laboratory") || has("LAB") || has("HM") => {
            Some("lab")
        }
        "Observation" | "DiagnosticReport" => Some("medical"),
        "Condition" | "Encounter" | "Basic" | "Immunization" => Some("medical"),
        "MedicationRequest" | "MedicationAdministration" => Some("prescription"),
        "Coverage" => Some("insurance"),
        "ImagingStudy" | "Media" => Some("imaging"),
        "Practitioner"
        | "PractitionerRole"
        | "Organization"
        | "Location"
        | "MedicationKnowledge" => None,
        other => panic!("the pool holds no {other}: extend this table"),
    }
}

/// Entries to build Bundles from: the planted-identifiers fixture and a
/// few more kinds.
fn pool() -> Vec<Value> {
    let mut out = planted()["entry"].as_array().unwrap().clone();
    let v2 = "http://terminology.hl7.org/CodeSystem/v2-0074";
    out.extend([
        json!({"fullUrl": "urn:uuid:abo", "resource": {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": v2, "code": "LAB"}]}], "code": {"text": "blood group"}}}),
        json!({"fullUrl": "urn:uuid:hm", "resource": {"resourceType": "DiagnosticReport",
            "category": [{"coding": [{"system": v2, "code": "HM"}]}]}}),
        json!({"fullUrl": "urn:uuid:mk", "resource": {"resourceType": "MedicationKnowledge"}}),
        json!({"fullUrl": "urn:uuid:ma", "resource": {"resourceType": "MedicationAdministration",
            "medicationReference": {"reference": "urn:uuid:mk"}}}),
        json!({"fullUrl": "urn:uuid:im", "resource": {"resourceType": "Immunization"}}),
        json!({"fullUrl": "urn:uuid:me", "resource": {"resourceType": "Media"}}),
        json!({"request": {"method": "DELETE", "url": "Observation/old"}}),
    ]);
    out
}

/// A random Bundle of pool entries, nested up to `depth` more levels.
fn random_bundle(rng: &mut ChaCha20Rng, pool: &[Value], depth: u32) -> Value {
    let types = ["collection", "transaction", "searchset", "batch"];
    let mut b = json!({"resourceType": "Bundle", "type": types[(rng.next_u32() % 4) as usize]});
    if rng.next_u32().is_multiple_of(2) {
        b["id"] = json!(format!("b{}", rng.next_u32() % 1000));
    }
    let n = rng.next_u32() % 12;
    let mut entries = Vec::new();
    for _ in 0..n {
        if depth > 0 && rng.next_u32().is_multiple_of(4) {
            let mut e = json!({"resource": random_bundle(rng, pool, depth - 1)});
            if rng.next_u32().is_multiple_of(2) {
                e["fullUrl"] = json!(format!("urn:uuid:nested-{}", rng.next_u32()));
            }
            entries.push(e);
        } else {
            entries.push(pool[(rng.next_u32() as usize) % pool.len()].clone());
        }
    }
    if n > 0 || rng.next_u32().is_multiple_of(2) {
        b["entry"] = Value::Array(entries);
    }
    b
}

/// Every resource below `entries`, at any depth (nested Bundles opened).
fn leaves(entries: &Value, out: &mut Vec<Value>) {
    for e in entries.as_array().into_iter().flatten() {
        if e["resource"]["resourceType"] == "Bundle" {
            leaves(&e["resource"]["entry"], out);
        } else if e.get("resource").is_some() {
            out.push(e["resource"].clone());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48), ..ProptestConfig::default() })]

    #[test]
    fn a_reader_of_one_portion_gets_only_that_portion_at_any_depth(seed in any::<u64>(), per_resource in any::<bool>()) {
        let pool = pool();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let input = random_bundle(&mut rng, &pool, 3);
        let map = PortionMap::default();
        let p = common::patient(27);
        let keys = patient_keys(&p, &map);
        let g = if per_resource { Granularity::PerResource } else { Granularity::PerPortion };
        let sealed = split_value(input.clone(), &map).unwrap().seal(&keys, g, 0).unwrap();
        for label in map.labels() {
            let mut r = Reassembler::new(&map).granularity(g).expect_keys(&keys);
            let mut any = false;
            for s in sealed.iter().filter(|s| s.label == label) {
                r.add(s.sealed.header(), &open(&p, s)).unwrap();
                any = true;
            }
            if !any {
                continue;
            }
            let view = r.finish().unwrap();
            let mut got = Vec::new();
            leaves(&view["entry"], &mut got);
            for resource in got {
                if let Some(home) = expected_home(&resource) {
                    prop_assert_eq!(home, label.as_str(), "{}", resource);
                }
            }
        }
        let mut all = Reassembler::new(&map).granularity(g).expect_keys(&keys);
        for s in &sealed {
            all.add(s.sealed.header(), &open(&p, s)).unwrap();
        }
        let rebuilt = all.finish().unwrap();
        prop_assert!(compare(&input, &rebuilt).is_empty(), "{:?}", compare(&input, &rebuilt));
    }
}

// ------------------------------------------- The R4 examples package, whole

/// Every resource of the official R4 examples package
/// (`hl7.fhir.r4.examples` 4.0.1, 5,306 resources) through split, seal,
/// open and reassembly, identical, with the resource types the default
/// mapping left to its default listed. The package is 191 MB unpacked, so
/// it is not in the repository: `scripts/r4_examples.sh` fetches it and
/// runs this test with `SESPHR_R4_EXAMPLES` set to its directory. Without
/// it the test says so and checks nothing else.
#[test]
fn the_whole_r4_examples_package_round_trips() {
    let Some(dir) = std::env::var_os("SESPHR_R4_EXAMPLES") else {
        eprintln!("SESPHR_R4_EXAMPLES not set: run scripts/r4_examples.sh");
        return;
    };
    let map = PortionMap::default();
    let p = common::patient(28);
    let keys = patient_keys(&p, &map);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
        .filter(|f| !f.ends_with("package.json") && !f.ends_with(".index.json"))
        .collect();
    files.sort();
    let mut defaulted: std::collections::BTreeMap<String, usize> = Default::default();
    let mut resources = 0;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let input: Value = serde_json::from_slice(&bytes).unwrap();
        let parts = split(&bytes, &map).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        resources += parts.resource_count();
        for d in parts.defaulted() {
            let t = d.split(['/', ' ']).next().unwrap_or("?").to_owned();
            *defaulted.entry(t).or_default() += 1;
        }
        let mut back = Reassembler::new(&map).expect_keys(&keys);
        for s in parts.seal(&keys, Granularity::PerPortion, 0).unwrap() {
            back.add(s.sealed.header(), &open(&p, &s)).unwrap();
        }
        let rebuilt = back.finish().unwrap();
        let diff = compare(&input, &rebuilt);
        assert!(diff.is_empty(), "{}: {diff:?}", path.display());
    }
    assert!(files.len() >= 5_306, "{} files", files.len());
    eprintln!(
        "{} files, {resources} resources at every depth: all identical; left to the default portion, by type: {defaulted:?}",
        files.len()
    );
    // None of the patient compartment is left to the default.
    for t in [
        "MedicationKnowledge",
        "MedicationAdministration",
        "Immunization",
        "DocumentReference",
        "Media",
        "ImagingStudy",
        "Observation",
        "DiagnosticReport",
    ] {
        assert!(!defaulted.contains_key(t), "{t} defaulted");
    }
}
