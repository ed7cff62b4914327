//! A FHIR R4 record shared by portion: a patient's Bundle is split into
//! portions (personal, medical, lab, prescription, insurance, imaging),
//! each sealed under its portion key and stored in the cloud; the patient
//! grants a doctor three portions (shown as R4 Consents and SMART scopes),
//! the doctor rebuilds a Bundle from what the SRS re-encrypts for them, the
//! disclosures come back as IHE BALP AuditEvents, a research table is
//! printed in k-anonymous form, and the patient rebuilds the whole Bundle.
//!
//! `cargo run --release --features fhir --example fhir_sharing [BUNDLE.json]`
//!
//! Without a path it uses a synthetic bundle from `tests/fixtures/fhir`.
//! It ends with `round trip: identical`, or says what differs and exits
//! with status 1.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Instant;

use sesphr::consent::{GrantOptions, PatientRegistration};
use sesphr::fhir::research::{ResearchRecord, Zip3Table, k_anonymize, safe_harbor};
use sesphr::fhir::*;
use sesphr::srs::{Purpose, Role, Srs};
use sesphr::*;

const DEFAULT_BUNDLE: &[u8] = include_bytes!("../tests/fixtures/fhir/planted-identifiers.json");
const COHORT_PATIENTS: &str = include_str!("../tests/fixtures/fhir/cohort-patients.ndjson");
const COHORT_CONDITIONS: &str = include_str!("../tests/fixtures/fhir/cohort-conditions.ndjson");

fn step(n: &mut u32, text: impl AsRef<str>) {
    *n += 1;
    println!("{:>2}. {}", n, text.as_ref());
}

/// `DiagnosticReport×5 Observation×26` (every depth, nested Bundles
/// opened).
fn types(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(t, n)| format!("{t}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Observation×26 DiagnosticReport×5 (+ Practitioner×1 for reference)`.
fn summary(p: &SplitPortion) -> String {
    let own = p.entries.len() - p.copies;
    let wrap =
        |es: &[Value]| resource_types(&serde_json::json!({"resourceType": "Bundle", "entry": es}));
    let mut s = types(&wrap(&p.entries[..own]));
    if p.copies > 0 {
        s += &format!(" (+ {} for reference)", types(&wrap(&p.entries[own..])));
    }
    s
}

/// What a reader who could open `labels` alone receives: the types of the
/// rebuilt Bundle, at every depth.
fn reader_view(
    map: &PortionMap,
    keys: &[PortionPublicKey],
    cloud: &[(PortionLabel, Vec<u8>)],
    open: impl Fn(&SealedPortion) -> Option<Vec<u8>>,
) -> Result<Option<Value>, Box<dyn std::error::Error>> {
    let mut view = Reassembler::new(map).expect_keys(keys);
    let mut any = false;
    for (_, bytes) in cloud {
        let s = SealedPortion::from_bytes(bytes)?;
        if let Some(text) = open(&s) {
            view.add(s.header(), &text)?;
            any = true;
        }
    }
    Ok(if any { Some(view.finish()?) } else { None })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n = 0;
    let (input_bytes, source) = match std::env::args().nth(1) {
        Some(path) => (std::fs::read(&path)?, path),
        None => (
            DEFAULT_BUNDLE.to_vec(),
            "tests/fixtures/fhir/planted-identifiers.json (synthetic)".to_owned(),
        ),
    };
    let input: Value = serde_json::from_slice(&input_bytes)?;
    let map = PortionMap::default();

    // The patient and the SRS.
    let patient = PatientKeys::generate(Identity::new("patient-0042")?);
    let labels = map.labels();
    let srs = Srs::in_memory()?;
    let portions: Vec<(PortionLabel, u32)> = labels.iter().map(|l| (l.clone(), 0)).collect();
    srs.register_patient(&PatientRegistration::new(&patient, &portions)?)?;
    let keys: Vec<PortionPublicKey> = labels
        .iter()
        .map(|l| patient.portion_public(l, 0))
        .collect();

    // Split and seal.
    let t = Instant::now();
    let parts = split(&input_bytes, &map)?;
    let split_time = t.elapsed();
    step(
        &mut n,
        format!(
            "{source}: {} bytes, {} resources, split into {} portions:",
            input_bytes.len(),
            parts.resource_count(),
            parts.portions().len()
        ),
    );
    for p in parts.portions() {
        println!("      {:<13} {}", p.label.as_str(), summary(p));
    }
    if !parts.defaulted().is_empty() {
        println!(
            "      (no rule names {}: placed in the default portion)",
            parts.defaulted().join(", ")
        );
    }
    let t = Instant::now();
    let sealed = parts.seal(&keys, Granularity::PerPortion, unix_now())?;
    let seal_time = t.elapsed();
    let sealed_bytes: usize = sealed.iter().map(|s| s.sealed.to_bytes().len()).sum();
    // Against the same JSON without whitespace, as the portions are stored.
    let compact = serde_json::to_vec(&input)?.len();
    step(
        &mut n,
        format!(
            "sealed as {} portions of record {}: {} bytes in the cloud, {:+} bytes ({:+.1}%) against the {} bytes of the bundle's compact JSON (split {:.1} ms, seal {:.1} ms)",
            sealed.len(),
            sealed
                .first()
                .map_or_else(String::new, |s| s.record.to_string()),
            sealed_bytes,
            sealed_bytes as i64 - compact as i64,
            (sealed_bytes as f64 / compact as f64 - 1.0) * 100.0,
            compact,
            split_time.as_secs_f64() * 1e3,
            seal_time.as_secs_f64() * 1e3,
        ),
    );
    let cloud: Vec<(PortionLabel, Vec<u8>)> = sealed
        .iter()
        .map(|s| (s.label.clone(), s.sealed.to_bytes()))
        .collect();

    // The doctor: medical, lab and prescription.
    let doctor = Identity::new("dr-house")?;
    let doctor_keys = KeyPair::generate();
    srs.register_user(
        &doctor,
        Role::Doctor,
        doctor_keys.public(),
        &doctor_keys.prove_possession(&doctor),
    )?;
    for l in ["medical", "lab", "prescription"] {
        let label = PortionLabel::new(l)?;
        let rekey = ReKey::generate(&patient.portion_secret(&label, 0), doctor_keys.public());
        let grant = patient.sign_grant(&label, 0, &doctor, &rekey, &GrantOptions::default())?;
        let consent = consent_from_grant(&grant, &map);
        grant_from_consent(&consent, &patient.consent_public(), &map)?;
        srs.grant(&grant, rekey)?;
        let scopes = smart_scopes(&label, &map);
        step(
            &mut n,
            format!(
                "patient grants '{l}' to dr-house, signed; as an R4 Consent: {} (permit, {} resource types, signature checked); SMART scopes: {}{}",
                consent["id"].as_str().unwrap_or("?"),
                consent["provision"]["class"].as_array().map_or(0, Vec::len),
                scopes.iter().take(3).cloned().collect::<Vec<_>>().join(" "),
                if scopes.len() > 3 {
                    format!(" … ({} in all)", scopes.len())
                } else {
                    String::new()
                },
            ),
        );
    }

    // The doctor fetches every portion of the record; the SRS serves three.
    let doctors = reader_view(&map, &keys, &cloud, |s| {
        let label = s.header().context().label().clone();
        match srs.reencrypt(&doctor, s.header(), Purpose::Treatment) {
            Ok(rc) => {
                println!("      {label:<13} re-encrypted for dr-house and opened");
                s.open_as_delegatee(&doctor_keys, &rc).ok()
            }
            Err(e) => {
                println!("      {label:<13} denied ({e})");
                None
            }
        }
    })?;
    match doctors {
        Some(view) => step(
            &mut n,
            format!(
                "dr-house rebuilds a Bundle; received, at every depth: {}",
                types(&resource_types(&view))
            ),
        ),
        None => step(&mut n, "dr-house can open none of this record"),
    }

    // A lab technician granted `lab` alone: what they receive shows any
    // leak at once.
    let tech = Identity::new("lab-central-7")?;
    let tech_keys = KeyPair::generate();
    srs.register_user(
        &tech,
        Role::Hospital,
        tech_keys.public(),
        &tech_keys.prove_possession(&tech),
    )?;
    let lab = PortionLabel::new("lab")?;
    let rekey = ReKey::generate(&patient.portion_secret(&lab, 0), tech_keys.public());
    srs.grant(
        &patient.sign_grant(&lab, 0, &tech, &rekey, &GrantOptions::default())?,
        rekey,
    )?;
    let techs = reader_view(&map, &keys, &cloud, |s| {
        srs.reencrypt(&tech, s.header(), Purpose::Treatment)
            .ok()
            .and_then(|rc| s.open_as_delegatee(&tech_keys, &rc).ok())
    })?;
    step(
        &mut n,
        format!(
            "lab-central-7 (a hospital lab), granted 'lab' only, receives: {}",
            techs.map_or_else(|| "nothing".to_owned(), |v| types(&resource_types(&v)))
        ),
    );

    // The patient's accounting of disclosures, as BALP AuditEvents.
    let source = AuditSource {
        name: "srs-1".into(),
        address: "https://srs.example.org/".into(),
    };
    let events: Vec<Value> = srs
        .disclosures(patient.patient(), 0, u64::MAX)
        .map(|d| d.map(|d| disclosure_audit_event(&d, patient.patient(), &source)))
        .collect::<Result<_, _>>()?;
    step(
        &mut n,
        format!(
            "{} disclosures as IHE BALP AuditEvents (privacy disclosure at source), e.g.:",
            events.len()
        ),
    );
    if let Some(e) = events.first() {
        println!(
            "      {} {} → {} of {} for {}",
            e["recorded"].as_str().unwrap_or("?"),
            e["entity"][1]["what"]["identifier"]["value"]
                .as_str()
                .unwrap_or("?"),
            e["agent"][1]["who"]["identifier"]["value"]
                .as_str()
                .unwrap_or("?"),
            e["entity"][0]["what"]["identifier"]["value"]
                .as_str()
                .unwrap_or("?"),
            e["purposeOfEvent"][0]["coding"][0]["code"]
                .as_str()
                .unwrap_or("?"),
        );
    }

    // Research: Safe Harbor on the personal portions of a cohort (and this
    // bundle's patients), then 5-anonymity.
    let mut codes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in COHORT_CONDITIONS.lines() {
        let c: Value = serde_json::from_str(line)?;
        if let (Some(s), Some(code)) = (
            c["subject"]["reference"].as_str(),
            c["code"]["coding"][0]["code"].as_str(),
        ) {
            codes.entry(s.to_owned()).or_default().push(code.to_owned());
        }
    }
    let zips = Zip3Table::census_2000();
    let mut records = Vec::new();
    let mut from_input = 0;
    for line in COHORT_PATIENTS.lines() {
        let p: Value = serde_json::from_str(line)?;
        let mut c = codes
            .remove(&format!("urn:uuid:{}", p["id"].as_str().unwrap_or("")))
            .unwrap_or_default();
        c.sort();
        records.push(ResearchRecord::new(
            safe_harbor(&p, "2026-01-01", &zips)?,
            c,
        ));
    }
    for e in input["entry"].as_array().into_iter().flatten() {
        if e["resource"]["resourceType"] == "Patient" {
            records.push(ResearchRecord::new(
                safe_harbor(&e["resource"], "2026-01-01", &zips)?,
                vec![],
            ));
            from_input += 1;
        }
    }
    let cohort = records.len() - from_input;
    let table = k_anonymize(&records, 5)?;
    step(
        &mut n,
        format!(
            "research export of {} people ({cohort} from the built-in synthetic cohort, tests/fixtures/fhir/cohort-*.ndjson, not from the input; {from_input} from the input file): Safe Harbor, then Mondrian for k = 5: k reached {}, {} groups; the first rows:",
            records.len(),
            table.k,
            table.groups
        ),
    );
    for line in table.to_string().lines().take(12) {
        println!("      {line}");
    }
    match k_anonymize(&records, records.len() + 1) {
        Err(e) => step(&mut n, format!("k = {} is refused: {e}", records.len() + 1)),
        Ok(_) => step(&mut n, "k above the number of people was accepted (bug)"),
    }

    // The patient rebuilds the whole record from the cloud.
    let rebuilt = reader_view(&map, &keys, &cloud, |s| {
        let label = s.header().context().label();
        s.open_as_owner(&patient.portion_secret(label, 0)).ok()
    })?
    .ok_or("the patient opened nothing")?;
    let diff = compare(&input, &rebuilt);
    if diff.is_empty() {
        println!("round trip: identical");
        Ok(())
    } else {
        for d in &diff {
            println!("      {d}");
        }
        println!("round trip: {} differences", diff.len());
        std::process::exit(1);
    }
}
