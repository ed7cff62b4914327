//! A patient shares portions of a health record through an untrusted cloud.
//!
//! `cargo run --release --example phr_sharing`
#![allow(clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]

use std::collections::HashMap;

use sesphr::*;

fn main() -> Result<(), Error> {
    let now = unix_now();
    // The cloud stores ciphertext only.
    let mut cloud: HashMap<(RecordId, String), Vec<u8>> = HashMap::new();

    let patient = PatientKeys::generate(Identity::new("patient-0042")?);
    println!("patient {} created one master secret", patient.patient());
    let labels = ["personal", "medical", "insurance", "prescription", "lab"];
    let record = RecordId::random();
    for l in labels {
        let key = patient.portion_public(&PortionLabel::new(l)?, 0);
        let text = format!("{l} data of patient-0042");
        let sealed = SealedPortion::seal(&key, record, now, text.as_bytes())?;
        cloud.insert((record, l.to_string()), sealed.to_bytes());
    }
    println!(
        "record {record} sealed as {} portions, each under its own key",
        labels.len()
    );

    let doctor = KeyPair::generate();
    let medical = patient.portion_secret(&PortionLabel::new("medical")?, 0);
    let rekey = ReKey::generate(&medical, doctor.public());
    println!(
        "patient grants the doctor 'medical' (a re-encryption key goes to the re-encryption server)"
    );

    let stored = SealedPortion::from_bytes(&cloud[&(record, "medical".to_string())])?;
    let rc = rekey.reencrypt(stored.header())?;
    let text = stored.open_as_delegatee(&doctor, &rc)?;
    println!(
        "doctor reads 'medical': {:?}",
        String::from_utf8_lossy(&text)
    );

    let insurance = SealedPortion::from_bytes(&cloud[&(record, "insurance".to_string())])?;
    match rekey.reencrypt(insurance.header()) {
        Err(e) => println!("doctor's grant on 'insurance' is refused: {e}"),
        Ok(_) => unreachable!("a medical grant must not re-encrypt insurance"),
    }
    let own =
        insurance.open_as_owner(&patient.portion_secret(&PortionLabel::new("insurance")?, 0))?;
    println!(
        "patient reads 'insurance': {:?}",
        String::from_utf8_lossy(&own)
    );
    Ok(())
}
