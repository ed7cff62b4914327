//! The `fhir` feature on carebundle's synthetic R4 bundles
//! (`tests/fixtures/fhir/`): every bundle survives split → seal → open →
//! reassemble with each resource in the portion an independent table
//! expects; a doctor granted `lab` rebuilds only lab resources; grants go
//! to R4 Consent and back (and an edited Consent is refused); SMART scopes
//! per default portion; disclosures as BALP AuditEvents; Safe Harbor leaves
//! none of 18 planted identifier kinds, caps ages at 90+, applies the ZIP3
//! rule; the k-anonymous export holds for k = 2, 5, 10 by a counter of its
//! own, and a k the data cannot reach is refused.
#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sesphr::consent::{GrantOptions, PatientRegistration};
use sesphr::fhir::research::{Age, ResearchRecord, Zip3Table, k_anonymize, safe_harbor};
use sesphr::fhir::*;
use sesphr::model::Disclosure;
use sesphr::srs::{Purpose, Role, Scope, Srs, SrsError};
use sesphr::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fhir");
const BUNDLES: [&str; 6] = [
    "type2_diabetes",
    "hypertension",
    "ckd_stage3",
    "healthy",
    "history-10y",
    "planted-identifiers",
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn bundle(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap()
}

fn entries(b: &Value) -> &Vec<Value> {
    b["entry"].as_array().unwrap()
}

fn categories(r: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let list = match &r["category"] {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    };
    for c in list {
        for coding in c["coding"].as_array().cloned().unwrap_or_default() {
            out.push(coding["code"].as_str().unwrap_or("").to_owned());
        }
    }
    out
}

/// The portion each fixture resource belongs in, written out independently
/// of the library's mapping; `None` for the directory types, which go with
/// the resources that refer to them.
fn expected_home(r: &Value) -> Option<&'static str> {
    let cats = categories(r);
    let has = |c: &str| cats.iter().any(|x| x == c);
    match r["resourceType"].as_str().unwrap() {
        "Patient" => Some("personal"),
        "Observation" if has("laboratory") => Some("lab"),
        "Observation" if has("vital-signs") => Some("medical"),
        "DiagnosticReport" if has("LAB") => Some("lab"),
        "Condition" | "Encounter" | "AllergyIntolerance" | "Basic" => Some("medical"),
        "MedicationRequest" => Some("prescription"),
        "Coverage" => Some("insurance"),
        "ImagingStudy" => Some("imaging"),
        "Practitioner" | "PractitionerRole" | "Organization" | "Location" => None,
        other => panic!("the fixtures hold no {other}: extend this table"),
    }
}

/// Whether `from` refers to `to` (by fullUrl or `Type/id`).
fn refers(from: &Value, to: &Value) -> bool {
    let text = from["resource"].to_string();
    let mut names = vec![to["fullUrl"].as_str().unwrap_or("\u{0}").to_owned()];
    if let Some(id) = to["resource"]["id"].as_str() {
        names.push(format!(
            "{}/{id}",
            to["resource"]["resourceType"].as_str().unwrap()
        ));
    }
    names.iter().any(|n| {
        text.contains(&format!("\"reference\":\"{n}\"")) || text.contains(&format!("/{n}\""))
    })
}

struct Owner {
    patient: PatientKeys,
    map: PortionMap,
}

impl Owner {
    fn new(seed: u8) -> Self {
        Self {
            patient: common::patient(seed),
            map: PortionMap::default(),
        }
    }
    fn keys(&self) -> Vec<PortionPublicKey> {
        self.map
            .labels()
            .iter()
            .map(|l| self.patient.portion_public(l, 0))
            .collect()
    }
    fn open(&self, s: &SealedFhir) -> Vec<u8> {
        s.sealed
            .open_as_owner(&self.patient.portion_secret(&s.label, 0))
            .unwrap()
    }
}

#[test]
fn every_fixture_survives_split_seal_open_reassemble_with_each_resource_where_expected() {
    let owner = Owner::new(1);
    for name in BUNDLES {
        let input = bundle(name);
        let parts = split(&fixture(&format!("{name}.json")), &owner.map).unwrap();
        assert_eq!(parts.resource_count(), entries(&input).len(), "{name}");
        for granularity in [Granularity::PerPortion, Granularity::PerResource] {
            let sealed = parts
                .seal(&owner.keys(), granularity, 1_767_225_600)
                .unwrap();
            let mut back = Reassembler::new(&owner.map)
                .granularity(granularity)
                .expect_keys(&owner.keys());
            let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for s in &sealed {
                assert_eq!(s.sealed.header().context().label(), &s.label);
                let text = owner.open(s);
                let doc: Value = serde_json::from_slice(&text).unwrap();
                for e in entries(&doc) {
                    seen.entry(e["fullUrl"].as_str().unwrap().to_owned())
                        .or_default()
                        .insert(s.label.to_string());
                }
                back.add(s.sealed.header(), &text).unwrap();
            }
            let rebuilt = back.finish().unwrap();
            let diff = compare(&input, &rebuilt);
            assert!(diff.is_empty(), "{name} {granularity:?}: {diff:?}");
            assert_eq!(entries(&rebuilt).len(), entries(&input).len(), "{name}");
            // Each resource where the independent table says.
            for e in entries(&input) {
                let url = e["fullUrl"].as_str().unwrap();
                let portions = seen
                    .get(url)
                    .unwrap_or_else(|| panic!("{name}: {url} lost"));
                match expected_home(&e["resource"]) {
                    Some(l) => {
                        assert_eq!(portions, &BTreeSet::from([l.to_owned()]), "{name} {url}")
                    }
                    None => {
                        // A directory resource: in each portion that refers
                        // to it, and only there (or `medical` if nothing does).
                        let mut want = BTreeSet::new();
                        for other in entries(&input) {
                            if refers(other, e)
                                && let Some(l) = expected_home(&other["resource"])
                            {
                                want.insert(l.to_owned());
                            }
                        }
                        if want.is_empty() {
                            assert!(portions.contains("medical"), "{name} {url}: {portions:?}");
                        } else {
                            assert!(
                                want.is_subset(portions),
                                "{name} {url}: {want:?} ⊄ {portions:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Hybrid (post-quantum) keys seal a Bundle hybrid; it opens, re-encrypts
/// for a granted user and reassembles whole, as a classical one does.
#[test]
fn a_bundle_sealed_to_hybrid_keys_is_hybrid_and_comes_back_whole() {
    let owner = Owner::new(12);
    let srs = SrsPqSecretKey::new(1, PqSecretKey::from_seed(&[12; 64]));
    let hybrid: Vec<HybridPortionKey> = owner
        .map
        .labels()
        .iter()
        .map(|l| {
            owner
                .patient
                .portion_secret(l, 0)
                .hybrid_public(&srs.public())
                .unwrap()
        })
        .collect();
    let name = BUNDLES[0];
    let input = bundle(name);
    let parts = split(&fixture(&format!("{name}.json")), &owner.map).unwrap();
    let sealed = parts
        .seal(&hybrid, Granularity::PerPortion, 1_767_225_600)
        .unwrap();
    let doctor = KeyPair::generate_hybrid();
    let mut back = Reassembler::new(&owner.map).expect_keys(&owner.keys());
    for s in &sealed {
        assert!(s.sealed.header().is_hybrid(), "{}", s.label);
        let portion = owner.patient.portion_secret(&s.label, 0);
        let text = owner.open(s);
        let rekey = ReKey::generate(&portion, doctor.public());
        let rc = rekey
            .reencrypt_hybrid(
                s.sealed.header().verify().unwrap(),
                &srs,
                doctor.pq_public().unwrap(),
            )
            .unwrap();
        assert_eq!(s.sealed.open_as_delegatee(&doctor, &rc).unwrap(), text);
        back.add(s.sealed.header(), &text).unwrap();
    }
    let rebuilt = back.finish().unwrap();
    assert!(compare(&input, &rebuilt).is_empty());
}

/// The official R4 examples (HL7, CC0) in `hl7-r4-examples/`: every Bundle
/// type (transaction with DELETE and conditional requests, its response,
/// batch, searchset, document, collections with absolute and duplicate
/// fullUrls) comes back whole, by either granularity, and a document's
/// Composition comes back first.
#[test]
fn the_official_r4_example_bundles_round_trip() {
    let owner = Owner::new(8);
    let dir = format!("{FIXTURES}/hl7-r4-examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 11);
    let mut types = BTreeSet::new();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let input: Value = serde_json::from_slice(&bytes).unwrap();
        types.insert(input["type"].as_str().unwrap().to_owned());
        let parts = split(&bytes, &owner.map).unwrap();
        for granularity in [Granularity::PerPortion, Granularity::PerResource] {
            let mut back = Reassembler::new(&owner.map).granularity(granularity);
            for s in parts.seal(&owner.keys(), granularity, 0).unwrap() {
                back.add(s.sealed.header(), &owner.open(&s)).unwrap();
            }
            let rebuilt = back.finish().unwrap();
            let diff = compare(&input, &rebuilt);
            assert!(diff.is_empty(), "{}: {diff:?}", path.display());
            if input["type"] == "document" {
                assert_eq!(
                    rebuilt["entry"][0]["resource"]["resourceType"],
                    "Composition"
                );
            }
        }
    }
    let want = [
        "batch",
        "collection",
        "document",
        "searchset",
        "transaction",
        "transaction-response",
    ];
    assert_eq!(types, want.iter().map(|t| (*t).to_owned()).collect());
}

#[test]
fn per_portion_sealing_makes_one_record_with_one_sealed_object_per_label() {
    let owner = Owner::new(2);
    let parts = split(&fixture("history-10y.json"), &owner.map).unwrap();
    let sealed = parts
        .seal(&owner.keys(), Granularity::PerPortion, 1_767_225_600)
        .unwrap();
    let labels: Vec<String> = sealed.iter().map(|s| s.label.to_string()).collect();
    assert_eq!(labels, ["personal", "medical", "lab", "prescription"]);
    assert!(sealed.iter().all(|s| s.record == sealed[0].record));
    let per_resource = parts
        .seal(&owner.keys(), Granularity::PerResource, 1_767_225_600)
        .unwrap();
    // The one Practitioner is copied into every portion that refers to it.
    let copies: usize = parts.portions().iter().map(|p| p.copies).sum();
    assert_eq!(per_resource.len(), 559 - 1 + copies);
    // One record either way: the Bundle.
    assert!(
        per_resource
            .iter()
            .all(|s| s.record == per_resource[0].record)
    );
    assert_ne!(per_resource[0].record, sealed[0].record);
}

#[test]
fn unknown_types_go_to_the_default_portion_or_are_refused_never_dropped() {
    let owner = Owner::new(3);
    let data = fixture("planted-identifiers.json");
    let parts = split(&data, &owner.map).unwrap();
    assert_eq!(parts.defaulted().len(), 1);
    assert!(parts.defaulted()[0].starts_with("Basic"));
    let strict = PortionMap::default().unknown(Unknown::Refuse);
    assert!(matches!(split(&data, &strict), Err(FhirError::UnmappedType(t)) if t == "Basic"));
    let elsewhere = PortionMap::default().unknown(Unknown::Portion(common::label("other")));
    let parts = split(&data, &elsewhere).unwrap();
    let other = parts
        .portions()
        .iter()
        .find(|p| p.label.as_str() == "other")
        .unwrap();
    assert_eq!(other.resource_names().len(), 1);
    // Sealing needs a key for every label that has resources.
    let missing = parts.seal(&owner.keys(), Granularity::PerPortion, 0);
    assert!(matches!(missing, Err(FhirError::NoKey(l)) if l == "other"));
}

#[test]
fn a_doctor_granted_lab_only_rebuilds_only_lab_resources() {
    let owner = Owner::new(4);
    let srs = Srs::in_memory().unwrap();
    let labels = owner.map.labels();
    let portions: Vec<(PortionLabel, u32)> = labels.iter().map(|l| (l.clone(), 0)).collect();
    srs.register_patient(&PatientRegistration::new(&owner.patient, &portions).unwrap())
        .unwrap();
    let doctor = Identity::new("dr-lab").unwrap();
    let keys = common::user(4);
    srs.register_user(
        &doctor,
        Role::Doctor,
        keys.public(),
        &keys.prove_possession(&doctor),
    )
    .unwrap();
    let lab = common::label("lab");
    let rekey = ReKey::generate(&owner.patient.portion_secret(&lab, 0), keys.public());
    let grant = owner
        .patient
        .sign_grant(&lab, 0, &doctor, &rekey, &GrantOptions::default())
        .unwrap();
    srs.grant(&grant, rekey).unwrap();

    let input = bundle("type2_diabetes");
    let sealed = split(&fixture("type2_diabetes.json"), &owner.map)
        .unwrap()
        .seal(&owner.keys(), Granularity::PerPortion, 1_767_225_600)
        .unwrap();
    let mut back = Reassembler::new(&owner.map);
    let mut denied = Vec::new();
    for s in &sealed {
        match srs.reencrypt(&doctor, s.sealed.header(), Purpose::Treatment) {
            Ok(rc) => back
                .add(
                    s.sealed.header(),
                    &s.sealed.open_as_delegatee(&keys, &rc).unwrap(),
                )
                .unwrap(),
            Err(SrsError::Denied(_)) => denied.push(s.label.to_string()),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(denied, ["personal", "medical", "prescription"]);
    let rebuilt = back.finish().unwrap();
    let got = entries(&rebuilt);
    let lab_in_input = entries(&input)
        .iter()
        .filter(|e| expected_home(&e["resource"]) == Some("lab"))
        .count();
    assert_eq!(lab_in_input, 31);
    let own: Vec<&Value> = got
        .iter()
        .filter(|e| expected_home(&e["resource"]).is_some())
        .collect();
    assert_eq!(own.len(), lab_in_input);
    assert!(
        own.iter()
            .all(|e| expected_home(&e["resource"]) == Some("lab"))
    );
    // Only the Practitioner the lab results name comes along; no Patient.
    let others: Vec<&str> = got
        .iter()
        .filter(|e| expected_home(&e["resource"]).is_none())
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(others, ["Practitioner"]);

    // The disclosure, as a BALP AuditEvent.
    let disclosures: Vec<Disclosure> = srs
        .disclosures(owner.patient.patient(), 0, u64::MAX)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(disclosures.len(), 1);
    let source = AuditSource {
        name: "srs-1".into(),
        address: "https://srs.example.org".into(),
    };
    let event = disclosure_audit_event(&disclosures[0], owner.patient.patient(), &source);
    assert_eq!(event["resourceType"], "AuditEvent");
    assert_eq!(event["type"]["code"], "110106");
    assert_eq!(event["subtype"][0]["code"], "disclose");
    assert_eq!(event["action"], "R");
    assert_eq!(event["outcome"], "0");
    assert_eq!(event["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
    assert_eq!(event["agent"][0]["type"]["coding"][0]["code"], "110153");
    assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "srs-1");
    assert_eq!(event["agent"][1]["who"]["identifier"]["value"], "dr-lab");
    assert_eq!(event["agent"][1]["requestor"], true);
    assert_eq!(event["agent"][1]["role"][0]["coding"][0]["code"], "doctor");
    assert_eq!(
        event["entity"][0]["what"]["identifier"]["value"],
        owner.patient.patient().as_str()
    );
    assert_eq!(event["entity"][0]["role"]["code"], "1");
    assert_eq!(
        event["entity"][1]["what"]["identifier"]["value"],
        format!("{}/lab", sealed[0].record)
    );
    let mut emergency = disclosures[0].clone();
    emergency.purpose = Some(Purpose::Emergency);
    emergency.emergency = true;
    let e = disclosure_audit_event(&emergency, owner.patient.patient(), &source);
    let codes: Vec<&str> = e["purposeOfEvent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ETREAT", "BTG"]);
}

#[test]
fn a_portion_opened_under_another_label_is_refused() {
    let owner = Owner::new(5);
    let sealed = split(&fixture("hypertension.json"), &owner.map)
        .unwrap()
        .seal(&owner.keys(), Granularity::PerPortion, 0)
        .unwrap();
    let lab = sealed.iter().find(|s| s.label.as_str() == "lab").unwrap();
    // The lab plaintext sealed again, in the same record, under the
    // medical key: a portion cannot carry another's resources.
    let medical = common::label("medical");
    let resealed = SealedPortion::seal(
        &owner.patient.portion_public(&medical, 0),
        lab.record,
        0,
        &owner.open(lab),
    )
    .unwrap();
    let mut back = Reassembler::new(&owner.map);
    let r = back.add(resealed.header(), &owner.open(lab));
    assert!(matches!(r, Err(FhirError::Misfiled { .. })));
    assert!(matches!(back.finish(), Err(FhirError::Empty)));
}

fn signed_grant(owner: &Owner, options: &GrantOptions) -> consent::SignedGrant {
    let user = Identity::new("dr-consent").unwrap();
    let lab = common::label("lab");
    let rekey = ReKey::generate(
        &owner.patient.portion_secret(&lab, 0),
        common::user(9).public(),
    );
    owner
        .patient
        .sign_grant(&lab, 0, &user, &rekey, options)
        .unwrap()
}

#[test]
fn a_grant_goes_to_an_r4_consent_and_back_and_an_edited_consent_is_refused() {
    let owner = Owner::new(6);
    let options = GrantOptions {
        scope: Scope::Since(1_700_000_000),
        expiry: Some(1_900_000_000),
        issued_at: Some(1_800_000_000),
        ..GrantOptions::default()
    };
    let grant = signed_grant(&owner, &options);
    let c = consent_from_grant(&grant, &owner.map);
    assert_eq!(c["resourceType"], "Consent");
    assert_eq!(c["status"], "active");
    assert_eq!(
        c["patient"]["identifier"]["value"],
        owner.patient.patient().as_str()
    );
    assert_eq!(c["provision"]["type"], "permit");
    assert_eq!(
        c["provision"]["actor"][0]["reference"]["identifier"]["value"],
        "dr-consent"
    );
    assert_eq!(c["provision"]["period"]["start"], "2027-01-15T08:00:00Z");
    assert_eq!(c["provision"]["period"]["end"], "2030-03-17T17:46:40Z");
    assert_eq!(
        c["provision"]["dataPeriod"]["start"],
        "2023-11-14T22:13:20Z"
    );
    let classes: Vec<&str> = c["provision"]["class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        [
            "Observation",
            "DiagnosticReport",
            "DocumentReference",
            "ServiceRequest",
            "Specimen",
            "MolecularSequence"
        ]
    );

    // Back: the signed grant, verified, and the terms.
    let key = owner.patient.consent_public();
    let again = grant_from_consent(&c, &key, &owner.map).unwrap();
    assert_eq!(again, grant);
    const NOW: u64 = 1_800_000_100;
    let terms = ConsentTerms::from_consent_at(&c, &owner.map, NOW).unwrap();
    assert_eq!(terms, ConsentTerms::of_grant(&grant));
    assert_eq!(terms.grant_options().scope, Scope::Since(1_700_000_000));
    assert_eq!(terms.grant_options().expiry, Some(1_900_000_000));

    // A host may give it its own id and version, and drop the narrative;
    // nothing else.
    let mut annotated = c.clone();
    annotated["id"] = json!("42");
    annotated["meta"] = json!({"versionId": "3", "lastUpdated": "2027-01-15T08:00:01Z"});
    annotated.as_object_mut().unwrap().remove("text");
    assert_eq!(
        grant_from_consent(&annotated, &key, &owner.map).unwrap(),
        grant
    );
    let mut contradicting = c.clone();
    contradicting["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">medical records too</div>"});
    assert!(matches!(
        grant_from_consent(&contradicting, &key, &owner.map),
        Err(FhirError::ConsentDiffers { path }) if path == "/text/div"
    ));
    for (path, value) in [
        (
            "/provision/actor/0/reference/identifier/value",
            json!("dr-other"),
        ),
        ("/provision/period/end", json!("2099-01-01T00:00:00Z")),
        ("/provision/type", json!("deny")),
        ("/provision/code/0/coding/0/code", json!("medical")),
        ("/status", json!("inactive")),
        ("/patient/identifier/value", json!("patient-other")),
    ] {
        let mut edited = c.clone();
        *edited.pointer_mut(path).unwrap() = value;
        assert!(
            matches!(
                grant_from_consent(&edited, &key, &owner.map),
                Err(FhirError::ConsentDiffers { path: p }) if p == path
            ),
            "{path}"
        );
    }
    let mut forged = c.clone();
    let other = Owner::new(7);
    forged["sourceAttachment"] =
        consent_from_grant(&signed_grant(&other, &options), &owner.map)["sourceAttachment"].clone();
    assert!(matches!(
        grant_from_consent(&forged, &key, &owner.map),
        Err(FhirError::Crypto(_))
    ));
    let mut garbled = c.clone();
    garbled["sourceAttachment"]["data"] = json!("not base64!");
    assert!(grant_from_consent(&garbled, &key, &owner.map).is_err());

    // A Consent drafted by an EHR (no signed grant): its terms, from class
    // when there is no portion code.
    let mut drafted = c.clone();
    drafted.as_object_mut().unwrap().remove("sourceAttachment");
    drafted["provision"].as_object_mut().unwrap().remove("code");
    drafted["provision"]["class"] =
        json!([{"system": "http://hl7.org/fhir/resource-types", "code": "MedicationRequest"}]);
    // MedicationRequest alone is part of `prescription`: a grant of the
    // portion would be broader than the Consent.
    assert!(matches!(
        ConsentTerms::from_consent_at(&drafted, &owner.map, NOW),
        Err(FhirError::Inexpressible(w)) if w == ["provision.class that names no whole portion"]
    ));
    drafted["provision"]["class"] = json!(
        owner
            .map
            .types_of(&common::label("prescription"))
            .iter()
            .map(|t| json!({"system": "http://hl7.org/fhir/resource-types", "code": t}))
            .collect::<Vec<_>>()
    );
    let t = ConsentTerms::from_consent_at(&drafted, &owner.map, NOW).unwrap();
    assert_eq!(t.labels, [common::label("prescription")]);
    assert!(grant_from_consent(&drafted, &key, &owner.map).is_err());
    drafted["provision"]["type"] = json!("deny");
    assert!(matches!(
        ConsentTerms::from_consent_at(&drafted, &owner.map, NOW),
        Err(FhirError::Consent(_))
    ));

    // Revoked: the Consent goes inactive, carrying the signed revocation.
    let doctor = Identity::new("dr-consent").unwrap();
    let lab = common::label("lab");
    let mut rng = common::rng(6);
    let revocation = owner
        .patient
        .sign_revocation_with_rng(&lab, &doctor, 1_850_000_000, &mut rng)
        .unwrap();
    let revoked = revoke_consent(&c, &revocation, &key, &owner.map).unwrap();
    assert_eq!(revoked["status"], "inactive");
    assert_eq!(
        revoked["provision"]["period"]["end"],
        "2028-08-16T00:53:20Z"
    );
    assert_eq!(revoked["extension"][0]["url"], SIGNED_REVOCATION_EXTENSION);
    assert!(matches!(
        grant_from_consent(&revoked, &key, &owner.map),
        Err(FhirError::ConsentRevoked)
    ));
    let (g, r) = revocation_from_consent(&revoked, &key, &owner.map).unwrap();
    assert_eq!((g, r), (grant.clone(), revocation.clone()));
    assert!(matches!(
        revocation_from_consent(&c, &key, &owner.map),
        Err(FhirError::Consent(_))
    ));
    let early = owner
        .patient
        .sign_revocation_with_rng(&lab, &doctor, 1_799_999_999, &mut rng)
        .unwrap();
    assert!(matches!(
        revoke_consent(&c, &early, &key, &owner.map),
        Err(FhirError::Consent(_))
    ));
    let other_user = owner
        .patient
        .sign_revocation_with_rng(
            &lab,
            &Identity::new("dr-other").unwrap(),
            1_850_000_000,
            &mut rng,
        )
        .unwrap();
    assert!(matches!(
        revoke_consent(&c, &other_user, &key, &owner.map),
        Err(FhirError::Consent(_))
    ));
    let foreign = Owner::new(7)
        .patient
        .sign_revocation_with_rng(&lab, &doctor, 1_850_000_000, &mut rng)
        .unwrap();
    assert!(revoke_consent(&c, &foreign, &key, &owner.map).is_err());

    // Break-glass grants carry ETREAT and BTG.
    let emergency = GrantOptions {
        emergency: Some(Role::Doctor),
        ..GrantOptions::default()
    };
    let eg = signed_grant(&owner, &emergency);
    let e = consent_from_grant(&eg, &owner.map);
    assert_eq!(e["provision"]["purpose"][0]["code"], "ETREAT");
    let terms = ConsentTerms::from_consent_at(&e, &owner.map, eg.issued_at()).unwrap();
    assert!(terms.emergency);
    assert_eq!(terms, ConsentTerms::of_grant(&eg));
}

#[test]
fn smart_v2_scopes_for_each_default_portion() {
    let map = PortionMap::default();
    let scopes = |l: &str| smart_scopes(&common::label(l), &map);
    assert_eq!(
        scopes("personal"),
        [
            "patient/Patient.rs",
            "patient/RelatedPerson.rs",
            "patient/Person.rs",
            "patient/Consent.rs"
        ]
    );
    let lab = scopes("lab");
    for s in [
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.rs?category=LAB",
        "patient/Observation.rs?category=BLB",
        "patient/DiagnosticReport.rs?category=LAB",
        "patient/DiagnosticReport.rs?category=HM",
        "patient/DocumentReference.rs?category=LAB",
        "patient/ServiceRequest.rs?category=108252007",
        "patient/Specimen.rs",
        "patient/MolecularSequence.rs",
    ] {
        assert!(lab.contains(&s.to_owned()), "{s}");
    }
    // 22 lab category codes on 4 types, and 2 types whole.
    assert_eq!(lab.len(), 22 * 4 + 2);
    assert_eq!(
        scopes("prescription"),
        [
            "patient/MedicationRequest.rs",
            "patient/MedicationStatement.rs",
            "patient/MedicationAdministration.rs",
            "patient/MedicationDispense.rs",
            "patient/VisionPrescription.rs",
        ]
    );
    assert_eq!(
        scopes("insurance"),
        [
            "patient/Coverage.rs",
            "patient/CoverageEligibilityRequest.rs",
            "patient/CoverageEligibilityResponse.rs",
            "patient/Claim.rs",
            "patient/ClaimResponse.rs",
            "patient/ExplanationOfBenefit.rs",
            "patient/Account.rs",
            "patient/Invoice.rs",
            "patient/ChargeItem.rs",
            "patient/EnrollmentRequest.rs",
            "patient/EnrollmentResponse.rs",
            "patient/PaymentNotice.rs",
            "patient/PaymentReconciliation.rs",
        ]
    );
    let imaging = scopes("imaging");
    assert_eq!(
        &imaging[..2],
        ["patient/ImagingStudy.rs", "patient/Media.rs"]
    );
    assert!(imaging.contains(&"patient/DiagnosticReport.rs?category=RAD".to_owned()));
    assert_eq!(imaging.len(), 2 + 14 * 4);
    let medical = scopes("medical");
    assert!(medical.contains(&"patient/Condition.rs".to_owned()));
    assert!(medical.contains(&"patient/Observation.rs?category=vital-signs".to_owned()));
    // Never a scope that would also read lab or imaging results.
    for t in [
        "Observation",
        "DiagnosticReport",
        "DocumentReference",
        "ServiceRequest",
    ] {
        assert!(!medical.contains(&format!("patient/{t}.rs")), "{t}");
    }
    // Each scope reads only what the mapping puts in its portion.
    for l in map.labels() {
        for s in smart_scopes(&l, &map) {
            let rest = s.strip_prefix("patient/").unwrap();
            let (t, category) = match rest.split_once(".rs?category=") {
                Some((t, c)) => (t, Some(c)),
                None => (rest.strip_suffix(".rs").unwrap(), None),
            };
            let mut r = json!({"resourceType": t});
            if let Some(c) = category {
                r["category"] = json!([{"coding": [{"code": c}]}]);
            }
            assert_eq!(
                map.place(&r).unwrap().0,
                Placement::Portion(l.clone()),
                "{s}"
            );
        }
    }
}

/// Patients of the cohort with their condition codes (the research
/// attributes).
fn cohort() -> Vec<(Value, Vec<String>)> {
    let mut codes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(fixture("cohort-conditions.ndjson"))
        .unwrap()
        .lines()
    {
        let c: Value = serde_json::from_str(line).unwrap();
        codes
            .entry(c["subject"]["reference"].as_str().unwrap().to_owned())
            .or_default()
            .push(c["code"]["coding"][0]["code"].as_str().unwrap().to_owned());
    }
    String::from_utf8(fixture("cohort-patients.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            let p: Value = serde_json::from_str(l).unwrap();
            let key = format!("urn:uuid:{}", p["id"].as_str().unwrap());
            let mut c = codes.remove(&key).unwrap_or_default();
            c.sort();
            (p, c)
        })
        .collect()
}

const AS_OF: &str = "2026-01-01";

fn records(people: &[(Value, Vec<String>)]) -> Vec<ResearchRecord> {
    let zips = Zip3Table::census_2000();
    people
        .iter()
        .map(|(p, c)| ResearchRecord::new(safe_harbor(p, AS_OF, &zips).unwrap(), c.clone()))
        .collect()
}

#[test]
fn safe_harbor_caps_ages_at_90_and_keeps_zip3_only_for_populous_areas() {
    let people = cohort();
    assert_eq!(people.len(), 200);
    let rs = records(&people);
    let mut ninety = 0;
    for ((p, _), r) in people.iter().zip(&rs) {
        // Age at 2026-01-01, counted here on its own.
        let b = p["birthDate"].as_str().unwrap();
        let (y, md) = (b[..4].parse::<i32>().unwrap(), &b[5..]);
        let age = 2026 - y - i32::from(md > "01-01");
        if age >= 90 {
            ninety += 1;
            assert_eq!(r.person.age, Age::NinetyOrOlder, "{age}");
        } else {
            assert_eq!(r.person.age, Age::Years(u8::try_from(age).unwrap()));
        }
        let zip = p["address"][0]["postalCode"].as_str().unwrap();
        let want = if ["036", "059", "102", "893"].contains(&&zip[..3]) {
            "000"
        } else {
            &zip[..3]
        };
        assert_eq!(r.person.zip3, want, "{zip}");
        assert_eq!(r.person.sex, p["gender"].as_str().unwrap());
    }
    assert!(ninety >= 10, "the cohort has {ninety} people of 90 or more");
}

/// One value of each of the 18 Safe Harbor identifier kinds planted in the
/// fixture's Patient (see tests/fixtures/fhir/generate.py, step 3).
const PLANTED: [(&str, &str); 24] = [
    ("1 name", "Plantedfamily"),
    ("1 name", "Plantedgiven"),
    ("2 street", "Plantedstreet"),
    ("2 city", "Plantedville"),
    ("2 county", "Plantedcounty"),
    ("2 full ZIP", "02139"),
    ("2 ZIP+4", "4307"),
    ("3 birth date", "1931-03-14"),
    ("3 birth year of a 90+", "1931"),
    ("4 phone", "555-0142"),
    ("5 fax", "555-0199"),
    ("6 e-mail", "planted.person@example.org"),
    ("7 SSN", "078-05-1120"),
    ("8 MRN", "MRN-PLANTED-0008"),
    ("9 health plan", "HPB-PLANTED-0009"),
    ("10 account", "ACCT-PLANTED-0010"),
    ("11 licence", "LIC-PLANTED-0011"),
    ("12 vehicle", "1HGCM82633A004352"),
    ("13 device", "UDI-PLANTED-0013"),
    ("14 URL", "planted.example.org"),
    ("15 IP address", "203.0.113.77"),
    ("16 biometric", "BIOMETRIC-PLANTED-0016"),
    ("17 photo", "UExBTlRFRC1QSE9UTy0wMDE3"),
    ("18 other number", "OTHER-PLANTED-0018"),
];

#[test]
fn none_of_the_18_identifier_kinds_survives_the_research_export() {
    let b = bundle("planted-identifiers");
    let planted = entries(&b)
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    let raw = planted.to_string();
    let mut people = cohort();
    let codes: Vec<String> = entries(&b)
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Condition")
        .map(|e| {
            e["resource"]["code"]["coding"][0]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    people.push((planted["resource"].clone(), codes));
    let person = safe_harbor(&planted["resource"], AS_OF, &Zip3Table::census_2000()).unwrap();
    assert_eq!(person.age, Age::NinetyOrOlder);
    assert_eq!(person.zip3, "021");
    let table = k_anonymize(&records(&people), 5).unwrap();
    let outputs = [
        format!("{person:?}"),
        table.to_string(),
        table.to_json().to_string(),
    ];
    let mut extra = vec![
        (
            "18 resource id",
            planted["resource"]["id"].as_str().unwrap().to_owned(),
        ),
        (
            "18 fullUrl",
            planted["fullUrl"]
                .as_str()
                .unwrap()
                .trim_start_matches("urn:uuid:")
                .to_owned(),
        ),
        ("contact", "Plantedkin".to_owned()),
        ("contact phone", "555-0177".to_owned()),
    ];
    extra.extend(PLANTED.iter().map(|(k, v)| (*k, (*v).to_owned())));
    for (kind, value) in &extra {
        assert!(raw.contains(value.as_str()), "{kind}: not planted");
        for out in &outputs {
            assert!(!out.contains(value.as_str()), "{kind} survived");
        }
    }
}

/// The size of the smallest group of equal (age, sex, ZIP3), counted over
/// the printed table.
fn smallest_group(table: &str) -> usize {
    let mut groups: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        *groups
            .entry((cols[0].into(), cols[1].into(), cols[2].into()))
            .or_default() += 1;
    }
    groups.values().copied().min().unwrap()
}

#[test]
fn the_export_is_k_anonymous_by_an_independent_count_and_refuses_what_it_cannot_reach() {
    let rs = records(&cohort());
    let mut groups = Vec::new();
    for k in [2, 5, 10] {
        let table = k_anonymize(&rs, k).unwrap();
        assert_eq!(table.rows.len(), 200);
        let counted = smallest_group(&table.to_string());
        assert!(counted >= k, "k={k}: smallest group {counted}");
        assert_eq!(counted, table.k, "k={k}: reported k");
        // The same rows, generalized: every attribute list survives.
        let mut a: Vec<_> = rs.iter().map(|r| r.attributes.clone()).collect();
        let mut b: Vec<_> = table.rows.iter().map(|r| r.attributes.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        groups.push(table.groups);
    }
    // Larger k, coarser table.
    assert!(groups[0] > groups[1] && groups[1] > groups[2], "{groups:?}");
    assert!(matches!(
        k_anonymize(&rs, 201),
        Err(FhirError::KUnreachable {
            requested: 201,
            achievable: 200
        })
    ));
    assert!(matches!(k_anonymize(&rs, 1), Err(FhirError::KTooSmall(1))));
    assert!(k_anonymize(&rs, 200).unwrap().k == 200);
}
