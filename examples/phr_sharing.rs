//! The whole story: a patient keeps an encrypted health record in an
//! untrusted cloud, shares portions of it through a re-encryption server
//! (SRS) on its embedded SQLite store with grants the patient signs, answers
//! a hospital's access request, sees a forged grant refused and an
//! emergency access flagged, revokes a doctor (and keeps the SRS's signed
//! receipt), grants a new one who reads the old records, and prints their
//! accounting of disclosures. Then the same portion shared through three
//! SRS nodes of which any two are needed: one node down still serves, a
//! lying node is named, and revoking at two nodes ends access. Last, a
//! hybrid (post-quantum) portion: ML-KEM-768 beside the capsule, re-wrapped
//! by the SRS to the one ML-KEM key the patient named.
//!
//! `cargo run --release --example phr_sharing [DATABASE_PATH]`
//! (without a path, the database lives in a temporary directory).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use sesphr::consent::{GrantOptions, PatientRegistration};
use sesphr::srs::{
    AccessReason, Denial, Purpose, Role, Scope, Srs, SrsConfig, SrsError, StorageKey,
};
use sesphr::store::SqliteStore;
use sesphr::*;

/// The cloud: it stores ciphertext by (record, portion) and sees nothing else.
#[derive(Default)]
struct Cloud(BTreeMap<(RecordId, String), Vec<u8>>);

impl Cloud {
    fn put(&mut self, s: &SealedPortion) {
        let ctx = s.header().context();
        self.0
            .insert((ctx.record_id(), ctx.label().to_string()), s.to_bytes());
    }
    fn get(&self, record: RecordId, label: &str) -> SealedPortion {
        SealedPortion::from_bytes(&self.0[&(record, label.to_string())]).unwrap()
    }
    fn snapshot(&self) -> BTreeMap<(RecordId, String), Vec<u8>> {
        self.0.clone()
    }
}

fn step(n: &mut u32, text: impl AsRef<str>) {
    *n += 1;
    println!("{:>2}. {}", n, text.as_ref());
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n = 0;
    let tmp = tempfile::tempdir()?;
    let db = std::env::args()
        .nth(1)
        .map_or_else(|| tmp.path().join("srs.db"), Into::into);
    let storage_key = StorageKey::generate();
    let srs = Srs::open_sqlite(&db, storage_key.clone())?;
    step(
        &mut n,
        format!(
            "SRS opened on SQLite at {} (re-encryption keys sealed at rest)",
            db.display()
        ),
    );
    let now = unix_now();
    let day = 86_400;
    let mut cloud = Cloud::default();

    // The patient: one master secret, one key per portion.
    let patient = PatientKeys::generate(Identity::new("patient-0042")?);
    let labels = ["personal", "medical", "insurance", "prescription", "lab"];
    let portion = |l: &str| PortionLabel::new(l).unwrap();
    let publics: Vec<PortionPublicKey> = labels
        .iter()
        .map(|l| patient.portion_public(&portion(l), 0))
        .collect();
    let portions: Vec<(PortionLabel, u32)> = labels.iter().map(|l| (portion(l), 0)).collect();
    srs.register_patient(&PatientRegistration::new(&patient, &portions)?)?;
    step(
        &mut n,
        format!(
            "patient {} registered with portions {}: signed with their consent key, each portion key with a proof of possession",
            patient.patient(),
            labels.join(", ")
        ),
    );
    let squatter = PatientKeys::generate(Identity::new("patient-0042-squatter")?);
    step(
        &mut n,
        format!(
            "a second registration under the patient's name (another master secret) is {}",
            match srs.register_patient(&PatientRegistration::new(
                &PatientKeys::from_master(patient.patient().clone(), &squatter.master_bytes()),
                &portions,
            )?) {
                Err(e) => format!("refused ({e})"),
                Ok(()) => "accepted (bug)".into(),
            }
        ),
    );

    let record = RecordId::random();
    for (l, key) in labels.iter().zip(&publics) {
        let text = format!("{l} section of the record of patient-0042");
        cloud.put(&SealedPortion::seal(
            key,
            record,
            now - 30 * day,
            text.as_bytes(),
        )?);
    }
    step(
        &mut n,
        format!("record {record} (30 days old) sealed portion by portion and stored in the cloud"),
    );

    // A hospital lab adds a report with nothing but the lab portion's public key.
    let lab_key_for_hospital = PortionPublicKey::from_bytes(&publics[4].to_bytes())?;
    let old_report = RecordId::random();
    cloud.put(&SealedPortion::seal(
        &lab_key_for_hospital,
        old_report,
        now - day,
        b"lab report: HbA1c 5.4%",
    )?);
    step(
        &mut n,
        format!("a hospital lab added report {old_report} using only the lab portion public key"),
    );

    // Users register with their own key pairs (the SRS never sees a secret key).
    let mut users = BTreeMap::new();
    for (name, role) in [
        ("dr-house", Role::Doctor),
        ("researcher-17", Role::Researcher),
        ("dr-cuddy", Role::Doctor),
        ("st-marys-lab", Role::Hospital),
        ("dr-er", Role::Other("emergency-physician".into())),
    ] {
        let id = Identity::new(name)?;
        let keys = KeyPair::generate();
        srs.register_user(
            &id,
            role.clone(),
            keys.public(),
            &keys.prove_possession(&id),
        )?;
        users.insert(name, (id, keys));
        step(
            &mut n,
            format!("user {name} registered as {role}, proving they hold their key"),
        );
    }
    // The patient's client makes the re-encryption key and signs the grant.
    let grant = |who: &str, l: &str, options: &GrantOptions| -> Result<(), SrsError> {
        let (id, keys) = &users[who];
        let rekey = ReKey::generate(&patient.portion_secret(&portion(l), 0), keys.public());
        let signed = patient.sign_grant(&portion(l), 0, id, &rekey, options)?;
        srs.grant(&signed, rekey)
    };
    let scoped = |scope: Scope| GrantOptions {
        scope,
        ..GrantOptions::default()
    };
    let read_for = |cloud: &Cloud,
                    who: &str,
                    record: RecordId,
                    l: &str,
                    why: AccessReason|
     -> Result<String, SrsError> {
        let (id, keys) = &users[who];
        let sealed = cloud.get(record, l);
        let rc = srs.reencrypt(id, sealed.header(), why)?;
        Ok(String::from_utf8(sealed.open_as_delegatee(keys, &rc)?).unwrap())
    };
    let read = |cloud: &Cloud, who: &str, record: RecordId, l: &str| {
        read_for(cloud, who, record, l, Purpose::Treatment.into())
    };
    let show = |r: Result<String, SrsError>| match r {
        Ok(text) => format!("reads {text:?}"),
        Err(SrsError::Denied(d)) => format!("is denied ({d})"),
        Err(e) => format!("fails: {e}"),
    };

    grant("dr-house", "medical", &scoped(Scope::AllRecords))?;
    grant("dr-house", "lab", &scoped(Scope::AllRecords))?;
    step(
        &mut n,
        "patient signs grants of 'medical' and 'lab' (all records) to dr-house; the SRS checks the signature and that the key is the one signed",
    );
    step(
        &mut n,
        format!(
            "dr-house {}",
            show(read(&cloud, "dr-house", record, "medical"))
        ),
    );
    step(
        &mut n,
        format!(
            "dr-house {}",
            show(read(&cloud, "dr-house", old_report, "lab"))
        ),
    );
    step(
        &mut n,
        format!(
            "dr-house asks for 'insurance' and {}",
            show(read(&cloud, "dr-house", record, "insurance"))
        ),
    );

    grant("researcher-17", "lab", &scoped(Scope::Since(now)))?;
    step(
        &mut n,
        "patient grants researcher-17 'lab' for records from today on",
    );
    step(
        &mut n,
        format!(
            "researcher-17 asks for yesterday's report and {}",
            show(read(&cloud, "researcher-17", old_report, "lab"))
        ),
    );
    let new_report = RecordId::random();
    cloud.put(&SealedPortion::seal(
        &lab_key_for_hospital,
        new_report,
        now,
        b"lab report: LDL 96 mg/dL",
    )?);
    step(
        &mut n,
        format!(
            "the lab adds today's report; researcher-17 {}",
            show(read(&cloud, "researcher-17", new_report, "lab"))
        ),
    );

    // A hospital asks; the patient approves by signing a grant that names the request.
    let (lab_id, _) = &users["st-marys-lab"];
    let request = srs.request_access(
        lab_id,
        patient.patient(),
        &portion("lab"),
        Purpose::Treatment,
        "follow-up of the HbA1c result ordered by the ward",
    )?;
    step(
        &mut n,
        format!("st-marys-lab requests access to 'lab' for treatment (request {request})"),
    );
    for r in srs.pending_requests(patient.patient()) {
        step(
            &mut n,
            format!(
                "the patient sees the pending request: {} asks for '{}' ({}): {:?}",
                r.user, r.label, r.purpose, r.justification
            ),
        );
    }
    grant(
        "st-marys-lab",
        "lab",
        &GrantOptions {
            request: Some(request),
            ..GrantOptions::default()
        },
    )?;
    step(
        &mut n,
        format!(
            "the patient approves by signing a grant naming the request; st-marys-lab {}",
            show(read(&cloud, "st-marys-lab", old_report, "lab"))
        ),
    );

    // The host (or whoever writes to the SRS's API) forges a grant.
    let (house_id, house_keys) = &users["dr-house"];
    let forger = PatientKeys::from_master(patient.patient().clone(), &squatter.master_bytes());
    let forged_key = ReKey::generate(
        &forger.portion_secret(&portion("insurance"), 0),
        house_keys.public(),
    );
    let forged = forger.sign_grant(
        &portion("insurance"),
        0,
        house_id,
        &forged_key,
        &GrantOptions::default(),
    )?;
    step(
        &mut n,
        format!(
            "a forged grant of 'insurance' to dr-house (not signed by the patient's consent key) is {}",
            match srs.grant(&forged, forged_key) {
                Err(e) => format!("refused ({e})"),
                Ok(()) => "accepted (bug)".into(),
            }
        ),
    );

    // Break-glass: a grant for the emergency physician, usable only in an emergency.
    grant(
        "dr-er",
        "medical",
        &GrantOptions {
            emergency: Some(Role::Other("emergency-physician".into())),
            ..GrantOptions::default()
        },
    )?;
    step(
        &mut n,
        "patient signs a break-glass grant of 'medical' for the emergency-physician role (dr-er)",
    );
    step(
        &mut n,
        format!(
            "dr-er asks for routine treatment and {}",
            show(read(&cloud, "dr-er", record, "medical"))
        ),
    );
    step(
        &mut n,
        format!(
            "dr-er breaks the glass (unconscious on arrival) and {}",
            show(read_for(
                &cloud,
                "dr-er",
                record,
                "medical",
                AccessReason::emergency("unconscious on arrival, checking allergies")?
            ))
        ),
    );

    let before = cloud.snapshot();
    let receipt = srs.revoke(&patient.sign_revocation(&portion("medical"), house_id)?)?;
    let replay = patient.sign_revocation(&portion("lab"), house_id)?;
    srs.revoke(&replay)?;
    step(
        &mut n,
        "patient signs revocations of dr-house: the re-encryption keys are zeroized and deleted",
    );
    step(
        &mut n,
        format!(
            "the SRS's signed receipt: {} lost '{}' at {} (audit entry {}); it {} with the SRS's public key",
            receipt.user(),
            receipt.label(),
            receipt.revoked_at(),
            receipt.seq(),
            if receipt.verify(&srs.verifying_key()).is_ok() {
                "verifies offline"
            } else {
                "does NOT verify (bug)"
            }
        ),
    );
    step(
        &mut n,
        format!(
            "the same signed revocation sent again is {}",
            match srs.revoke(&replay) {
                Err(e) => format!("refused ({e})"),
                Ok(_) => "accepted (bug)".into(),
            }
        ),
    );
    step(
        &mut n,
        format!(
            "dr-house asks again and {}",
            show(read(&cloud, "dr-house", record, "medical"))
        ),
    );
    step(
        &mut n,
        format!(
            "stored records re-encrypted by the revocation: {}",
            if cloud.snapshot() == before {
                "none"
            } else {
                "SOME (bug)"
            }
        ),
    );
    assert!(matches!(
        read(&cloud, "dr-house", record, "medical"),
        Err(SrsError::Denied(Denial::Revoked))
    ));

    grant("dr-cuddy", "medical", &scoped(Scope::AllRecords))?;
    grant("dr-cuddy", "lab", &scoped(Scope::AllRecords))?;
    step(
        &mut n,
        "patient grants newly joined dr-cuddy 'medical' and 'lab' (all records)",
    );
    step(
        &mut n,
        format!(
            "dr-cuddy reads the 30-day-old record: {}",
            show(read(&cloud, "dr-cuddy", record, "medical"))
        ),
    );
    step(
        &mut n,
        format!(
            "dr-cuddy reads yesterday's report: {}",
            show(read(&cloud, "dr-cuddy", old_report, "lab"))
        ),
    );

    let own = cloud
        .get(record, "insurance")
        .open_as_owner(&patient.portion_secret(&portion("insurance"), 0))?;
    step(
        &mut n,
        format!(
            "the patient reads 'insurance' with their own key: {:?}",
            String::from_utf8_lossy(&own)
        ),
    );

    step(
        &mut n,
        "the patient's accounting of disclosures (who read what, when, why):",
    );
    for d in srs.disclosures(patient.patient(), 0, u64::MAX) {
        let d = d?;
        println!(
            "      #{} {} {} ({}) read '{}' record {} for {}{}",
            d.seq,
            d.time,
            d.user,
            d.role.as_ref().map_or("?", Role::as_str),
            d.label,
            d.record_id,
            d.purpose.map_or("?", |p| p.as_str()),
            if d.emergency { " [BREAK-GLASS]" } else { "" }
        );
    }
    let emergencies = srs.emergency_accesses(patient.patient())?;
    step(
        &mut n,
        format!(
            "emergency accesses flagged for the patient: {}",
            emergencies.len()
        ),
    );
    let consent = srs.verify_consent()?;
    step(
        &mut n,
        format!(
            "consent re-checked from the audit log with public keys alone: {} registrations, {} signed grants, {} signed revocations",
            consent.registrations, consent.grants, consent.revocations
        ),
    );

    let entries = srs.verify_audit()?;
    step(
        &mut n,
        format!(
            "audit chain verified: {entries} entries, each hashing the one before; the last five:"
        ),
    );
    for e in srs.audit_entries(entries.saturating_sub(4), 5)? {
        let who = e
            .user
            .as_ref()
            .map_or(String::new(), |u| format!(" user={u}"));
        let what = e
            .label
            .as_ref()
            .map_or(String::new(), |l| format!(" portion={l}"));
        println!(
            "      #{} {} by {}{}{} -> {}",
            e.seq,
            e.action.as_str(),
            e.actor,
            what,
            who,
            e.outcome
        );
    }

    let kept = srs.checkpoint()?;
    step(
        &mut n,
        format!(
            "signed checkpoint at entry {}: the host keeps it outside the database",
            kept.seq
        ),
    );

    drop(srs);
    let srs =
        Srs::open(SrsConfig::new(SqliteStore::open(&db)?, storage_key).require_checkpoint(kept))?;
    let report = srs.open_report();
    step(
        &mut n,
        format!(
            "reopened: {} rows authenticated, {} audit entries verified after the latest checkpoint, the kept checkpoint found in the history",
            report.rows, report.entries_verified
        ),
    );
    drop(srs);
    let srs = Srs::open_sqlite(&db, StorageKey::from_bytes(&[0; 32]));
    step(
        &mut n,
        format!(
            "reopening the database with a wrong storage key: {}",
            match srs {
                Err(e) => format!("refused ({e})"),
                Ok(_) => "accepted (bug)".into(),
            }
        ),
    );
    threshold_chapter(&mut n, tmp.path(), &patient, &portions, &cloud, old_report)?;
    hybrid_chapter(&mut n, &patient, &portions)?;
    Ok(())
}

/// A hybrid (post-quantum) portion: its DEM key needs the capsule's `Z`
/// and a secret carried by ML-KEM-768, so ciphertexts harvested today stay
/// closed to whoever breaks ristretto255 later.
fn hybrid_chapter(
    n: &mut u32,
    patient: &PatientKeys,
    portions: &[(PortionLabel, u32)],
) -> Result<(), Box<dyn std::error::Error>> {
    let srs = Srs::in_memory()?;
    srs.register_patient(&PatientRegistration::new(patient, portions)?)?;
    let srs_key = srs.pq_public_key()?;
    let medical = PortionLabel::new("medical")?;
    let key = patient.hybrid_portion_public(&medical, 0, &srs_key)?;
    let note = SealedPortion::seal(&key, RecordId::random(), unix_now(), b"psychiatric note")?;
    step(
        n,
        format!(
            "hybrid: a psychiatric note sealed to 'medical' with ML-KEM-768 beside the capsule (SRS key version {}): header {} bytes instead of {}",
            srs_key.version(),
            note.header().encoded_len(),
            note.header().encoded_len() - 2276
        ),
    );
    let wilson = Identity::new("dr-wilson")?;
    let wilson_keys = KeyPair::generate_hybrid();
    srs.register_user(
        &wilson,
        Role::Doctor,
        wilson_keys.public(),
        &wilson_keys.prove_possession(&wilson),
    )?;
    let wilson_pq = wilson_keys.pq_public().ok_or("no ML-KEM key")?;
    srs.register_pq_key(&wilson, wilson_pq)?;
    let rekey = ReKey::generate(&patient.portion_secret(&medical, 0), wilson_keys.public());
    let options = GrantOptions {
        user_pq_key: Some(wilson_pq.fingerprint()),
        ..GrantOptions::default()
    };
    srs.grant(
        &patient.sign_grant(&medical, 0, &wilson, &rekey, &options)?,
        rekey,
    )?;
    let rc = srs.reencrypt(&wilson, note.header(), Purpose::Treatment)?;
    step(
        n,
        format!(
            "dr-wilson (granted, ML-KEM key named in the grant) reads it: {:?}",
            String::from_utf8_lossy(&note.open_as_delegatee(&wilson_keys, &rc)?)
        ),
    );
    // An attacker who broke ristretto255 holds dr-wilson's classical secret,
    // not the ML-KEM one.
    let shor = KeyPair::from_secret(wilson_keys.secret().clone()).with_pq(PqSecretKey::generate());
    step(
        n,
        format!(
            "the same re-capsule with dr-wilson's ristretto255 secret but another ML-KEM key: {}",
            match note.open_as_delegatee(&shor, &rc) {
                Err(e) => format!("refused ({e})"),
                Ok(_) => "opened (bug)".into(),
            }
        ),
    );
    // Someone registers another ML-KEM key under dr-wilson's name: the
    // grant names the patient's choice.
    srs.register_pq_key(&wilson, shor.pq_public().ok_or("no ML-KEM key")?)?;
    step(
        n,
        format!(
            "another ML-KEM key registered for dr-wilson: {}",
            match srs.reencrypt(&wilson, note.header(), Purpose::Treatment) {
                Err(SrsError::Denied(d)) => format!("denied ({d})"),
                other => format!("{other:?} (bug)"),
            }
        ),
    );
    srs.register_pq_key(&wilson, wilson_pq)?;
    let rotated = srs.rotate_pq_key()?;
    let rc = srs.reencrypt(&wilson, note.header(), Purpose::Treatment)?;
    step(
        n,
        format!(
            "the SRS rotates its ML-KEM key to version {}; the note sealed to version {} still reads: {:?}",
            rotated.version(),
            srs_key.version(),
            String::from_utf8_lossy(&note.open_as_delegatee(&wilson_keys, &rc)?)
        ),
    );
    Ok(())
}

/// Three SRS nodes (each its own SQLite database and storage key), any two
/// of which are needed to re-encrypt: no single node, even with a granted
/// user, can recover the portion key.
fn threshold_chapter(
    n: &mut u32,
    dir: &std::path::Path,
    patient: &PatientKeys,
    portions: &[(PortionLabel, u32)],
    cloud: &Cloud,
    report: RecordId,
) -> Result<(), Box<dyn std::error::Error>> {
    let nodes = (1..=3)
        .map(|i| Srs::open_sqlite(dir.join(format!("node-{i}.db")), StorageKey::generate()))
        .collect::<Result<Vec<_>, _>>()?;
    let nephrologist = Identity::new("dr-chase")?;
    let keys = KeyPair::generate();
    for node in &nodes {
        node.register_patient(&PatientRegistration::new(patient, portions)?)?;
        node.register_user(
            &nephrologist,
            Role::Doctor,
            keys.public(),
            &keys.prove_possession(&nephrologist),
        )?;
    }
    step(
        n,
        "threshold SRS: three nodes, each with its own database; the patient and dr-chase registered at each",
    );
    let lab = PortionLabel::new("lab")?;
    let rekey = ReKey::generate(&patient.portion_secret(&lab, 0), keys.public());
    let (commitments, shares) = rekey.split(2, 3)?;
    drop(rekey);
    let signed = patient.sign_share_grant(
        &lab,
        0,
        &nephrologist,
        &commitments,
        &GrantOptions::default(),
    )?;
    for (node, share) in nodes.iter().zip(shares) {
        node.grant_share(&signed, share)?;
    }
    step(
        n,
        format!(
            "the patient split dr-chase's 'lab' key 2-of-3 ({} B per share, {} B of public commitments) and signed one grant; each node checked its share",
            ReKeyShare::encoded_len(2),
            commitments.to_bytes().len()
        ),
    );
    let sealed = cloud.get(report, "lab");
    let ask = |i: usize| {
        nodes[i].reencrypt_with_proof(&nephrologist, sealed.header(), Purpose::Treatment)
    };
    // dr-chase checks the commitments against the grant the patient signed,
    // so that every node is judged on the patient's word.
    let verified = signed.verify_commitments(&patient.consent_public(), &commitments)?;
    let opener = ThresholdOpener::new(&keys, &verified)?;
    // Node 2 is down: nodes 1 and 3 answer.
    let answers = [ask(0)?, ask(2)?];
    let opened = opener.open(&sealed, &answers)?;
    step(
        n,
        format!(
            "node 2 down: nodes {:?} answered ({} B each with proof) and dr-chase reads {:?}",
            opened.used(),
            answers[0].to_bytes().len(),
            String::from_utf8_lossy(opened.plaintext())
        ),
    );
    // Node 3 lies: it returns another node's E'. Each answer is tagged
    // with the node that sent it, as a host receives them.
    let mut lie = ask(2)?.to_bytes();
    let honest = ask(0)?.to_bytes();
    lie[103..135].copy_from_slice(&honest[103..135]);
    let second = ask(1)?.to_bytes();
    let tagged: [(u8, &[u8]); 3] = [(3, &lie), (1, &honest), (2, &second)];
    let opened = opener.open(&sealed, &tagged)?;
    step(
        n,
        format!(
            "node 3 returned a wrong answer: named {:?} by its failed proof; nodes {:?} open the report anyway",
            opened.bad_nodes(),
            opened.used()
        ),
    );
    // Revocation at n - t + 1 = 2 nodes ends access.
    for node in &nodes[..2] {
        node.revoke(&patient.sign_revocation(&lab, &nephrologist)?)?;
    }
    let left: Vec<ReCapsule> = (0..3).filter_map(|i| ask(i).ok()).collect();
    step(
        n,
        format!(
            "the patient revoked at nodes 1 and 2 (n - t + 1 = 2): {} node still answers, and opening is {}",
            left.len(),
            match opener.open(&sealed, &left) {
                Err(e) => format!("refused ({e})"),
                Ok(_) => "possible (bug)".into(),
            }
        ),
    );
    Ok(())
}
