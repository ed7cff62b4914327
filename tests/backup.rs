//! Key backups: every exported secret (patient keys, a user's secret key,
//! an escrow seed) round-trips in both forms, and every single-bit flip,
//! every truncation and every mistyped character is refused — a corrupted
//! backup never restores a different key.
#![allow(clippy::unwrap_used, clippy::panic)]

use sesphr::{Error, EscrowKeyIssuer, Identity, PatientKeys, SecretKey};

/// Every one-bit flip and every truncation of `b` is refused by `import`.
fn refuses_every_flip_and_cut<T>(b: &[u8], import: impl Fn(&[u8]) -> Result<T, Error>) {
    assert!(import(b).is_ok());
    for i in 0..b.len() * 8 {
        let mut c = b.to_vec();
        c[i / 8] ^= 1 << (i % 8);
        assert!(import(&c).is_err(), "bit {i} flipped was accepted");
    }
    for n in 0..b.len() {
        assert!(import(&b[..n]).is_err(), "cut to {n} bytes was accepted");
    }
}

/// Every character of the data part replaced by each other Bech32
/// character is refused by `import` with `BadChecksum`.
fn refuses_every_typo<T>(text: &str, import: impl Fn(&str) -> Result<T, Error>) {
    const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    assert!(import(text).is_ok());
    let sep = text.rfind('1').unwrap();
    let chars: Vec<char> = text.chars().collect();
    for i in sep + 1..chars.len() {
        for c in CHARSET.chars().filter(|c| *c != chars[i]) {
            let mut t = chars.clone();
            t[i] = c;
            let t: String = t.into_iter().collect();
            assert!(
                matches!(import(&t), Err(Error::BadChecksum { .. })),
                "typo at {i} accepted"
            );
        }
    }
}

#[test]
fn patient_keys_backups_refuse_corruption_and_round_trip() {
    let keys = PatientKeys::generate(Identity::new("patient-7").unwrap());
    let b = keys.to_bytes();
    assert_eq!(&b[..4], b"SPKB");
    let back = PatientKeys::from_bytes(&b).unwrap();
    assert_eq!(*back.master_bytes(), *keys.master_bytes());
    assert_eq!(back.patient(), keys.patient());
    refuses_every_flip_and_cut(&b, PatientKeys::from_bytes);
    let text = keys.to_backup_text();
    assert!(text.starts_with("sesphr-patient1"));
    let back = PatientKeys::from_backup_text(&text).unwrap();
    assert_eq!(*back.master_bytes(), *keys.master_bytes());
    refuses_every_typo(&text, PatientKeys::from_backup_text);
}

#[test]
fn a_sesphr_0_1_patient_export_still_imports() {
    let keys = PatientKeys::generate(Identity::new("patient-8").unwrap());
    let mut legacy = b"SPMK\x01".to_vec();
    legacy.extend_from_slice(keys.master_bytes().as_ref());
    legacy.push(9);
    legacy.extend_from_slice(b"patient-8");
    let back = PatientKeys::from_bytes(&legacy).unwrap();
    assert_eq!(*back.master_bytes(), *keys.master_bytes());
    // Re-exported, it is a checked backup.
    assert_eq!(&back.to_bytes()[..4], b"SPKB");
}

#[test]
fn secret_key_backups_refuse_corruption_and_round_trip() {
    let sk = SecretKey::random();
    let b = sk.to_backup();
    let back = SecretKey::from_backup(&b).unwrap();
    assert_eq!(*back.to_bytes(), *sk.to_bytes());
    refuses_every_flip_and_cut(&b, SecretKey::from_backup);
    let text = sk.to_backup_text();
    assert!(text.starts_with("sesphr-secret1"));
    assert_eq!(
        *SecretKey::from_backup_text(&text).unwrap().to_bytes(),
        *sk.to_bytes()
    );
    refuses_every_typo(&text, SecretKey::from_backup_text);
}

#[test]
fn escrow_seed_backups_refuse_corruption_and_round_trip() {
    let e = EscrowKeyIssuer::generate();
    let b = e.to_backup();
    let back = EscrowKeyIssuer::from_backup(&b).unwrap();
    assert_eq!(*back.seed_bytes(), *e.seed_bytes());
    refuses_every_flip_and_cut(&b, EscrowKeyIssuer::from_backup);
    let text = e.to_backup_text();
    assert!(text.starts_with("sesphr-escrow1"));
    assert_eq!(
        *EscrowKeyIssuer::from_backup_text(&text)
            .unwrap()
            .seed_bytes(),
        *e.seed_bytes()
    );
    refuses_every_typo(&text, EscrowKeyIssuer::from_backup_text);
}

#[test]
fn a_backup_of_one_kind_is_not_another() {
    let sk = SecretKey::random();
    let e = EscrowKeyIssuer::generate();
    assert!(matches!(
        EscrowKeyIssuer::from_backup(&sk.to_backup()),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        SecretKey::from_backup(&e.to_backup()),
        Err(Error::Malformed { .. })
    ));
    assert!(PatientKeys::from_bytes(&sk.to_backup()).is_err());
    assert!(EscrowKeyIssuer::from_backup_text(&sk.to_backup_text()).is_err());
    // Paper: groups of four, upper case, across lines.
    let text = e.to_backup_text().to_uppercase();
    let grouped: String = text
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .enumerate()
        .map(|(i, c)| {
            let g: String = c.iter().collect();
            if i % 8 == 7 { g + "\n" } else { g + " " }
        })
        .collect();
    assert_eq!(
        *EscrowKeyIssuer::from_backup_text(&grouped)
            .unwrap()
            .seed_bytes(),
        *e.seed_bytes()
    );
}
