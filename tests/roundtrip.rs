//! Encryption and decryption are correct (DESIGN §7 property 2): the owner
//! and every granted user recover exactly the plaintext, for every size.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::needless_range_loop,
    clippy::map_entry
)]

mod common;
use common::*;
use proptest::prelude::*;
use sesphr::*;
use std::io::{Read, Write};

fn check_all_ways(pt: &[u8], seed: u8) {
    let mut r = rng(seed);
    let p = patient(seed);
    let medical = portion(&p, "medical");
    let doctor = user(seed);
    let record = RecordId::random_with_rng(&mut r);

    let sealed = SealedPortion::seal_with_rng(medical.public(), record, T0, pt, &mut r).unwrap();
    assert_eq!(sealed.body().len(), sealed_len(pt.len()));
    let bytes = sealed.to_bytes();
    let sealed = SealedPortion::from_bytes(&bytes).unwrap();
    assert_eq!(sealed.open_as_owner(&medical).unwrap(), pt);

    let rekey = ReKey::generate_with_rng(&medical, doctor.public(), &mut r);
    let rc = reenc(&rekey, sealed.header()).unwrap();
    let rc = ReCapsule::from_bytes(&rc.to_bytes()).unwrap();
    assert_eq!(sealed.open_as_delegatee(&doctor, &rc).unwrap(), pt);
    let rcp = reenc_proof(&rekey, sealed.header(), &mut r).unwrap();
    assert_eq!(sealed.open_as_delegatee(&doctor, &rcp).unwrap(), pt);

    // Streaming forms agree with the in-memory ones, in both directions.
    let mut w =
        PortionWriter::new_with_rng(medical.public(), record, T0, Vec::new(), &mut r).unwrap();
    for piece in pt.chunks(7919) {
        w.write_all(piece).unwrap();
    }
    let streamed = w.finish().unwrap();
    assert_eq!(
        SealedPortion::from_bytes(&streamed)
            .unwrap()
            .open_as_owner(&medical)
            .unwrap(),
        pt
    );
    let mut out = Vec::new();
    PortionReader::new(&bytes[..])
        .unwrap()
        .open_as_owner(&medical)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, pt);
    let mut out = Vec::new();
    let reader = PortionReader::new(&streamed[..]).unwrap();
    let rc2 = reenc(&rekey, reader.header()).unwrap();
    reader
        .open_as_delegatee(&doctor, &rc2)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, pt);

    // The precomputed-table encryptor produces portions that open the same way.
    let enc = PortionEncryptor::new(medical.public());
    let s2 = enc.seal_with_rng(record, T0, pt, &mut r).unwrap();
    assert_eq!(s2.open_as_owner(&medical).unwrap(), pt);
}

#[test]
fn boundary_sizes() {
    for (i, len) in [0usize, 1, 65535, 65536, 65537, 2 * 65536, 2 * 65536 + 1]
        .into_iter()
        .enumerate()
    {
        check_all_ways(&plaintext(len, i as u8), i as u8);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn random_sizes_up_to_a_few_mib(len in 0usize..(3 << 20), salt in any::<u8>()) {
        check_all_ways(&plaintext(len, salt), salt);
    }

    #[test]
    fn random_small_contents(pt in proptest::collection::vec(any::<u8>(), 0..300), seed in any::<u8>()) {
        check_all_ways(&pt, seed);
    }
}

#[test]
fn portions_of_one_record_have_independent_keys() {
    let mut r = rng(7);
    let p = patient(7);
    let record = RecordId::random_with_rng(&mut r);
    let labels = [
        "personal",
        "medical",
        "insurance",
        "prescription",
        "lab",
        "imaging",
    ];
    let keys: Vec<_> = labels.iter().map(|l| portion(&p, l)).collect();
    let sealed: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            SealedPortion::seal_with_rng(
                k.public(),
                record,
                T0,
                &plaintext(100 + i, i as u8),
                &mut r,
            )
            .unwrap()
        })
        .collect();
    for (i, s) in sealed.iter().enumerate() {
        for (j, k) in keys.iter().enumerate() {
            let res = s.open_as_owner(k);
            if i == j {
                assert_eq!(res.unwrap(), plaintext(100 + i, i as u8));
            } else {
                assert!(matches!(res, Err(Error::KeyMismatch)));
            }
        }
    }
    // Distinct portion keys, capsules, and sealed bodies.
    for i in 0..keys.len() {
        for j in i + 1..keys.len() {
            assert_ne!(keys[i].public().key(), keys[j].public().key());
            assert_ne!(sealed[i].header().capsule(), sealed[j].header().capsule());
        }
    }
    // Same plaintext sealed twice under one key: different capsules and bodies.
    let a = SealedPortion::seal_with_rng(keys[0].public(), record, T0, b"same", &mut r).unwrap();
    let b = SealedPortion::seal_with_rng(keys[0].public(), record, T0, b"same", &mut r).unwrap();
    assert_ne!(a.body(), b.body());
}

#[test]
fn a_grant_opener_serves_many_records() {
    let mut r = rng(9);
    let p = patient(9);
    let lab = portion(&p, "lab");
    let doctor = user(9);
    let rekey = ReKey::generate_with_rng(&lab, doctor.public(), &mut r);
    let opener = DelegateeOpener::new(&doctor, rekey.ephemeral(), lab.public().key());
    assert_eq!(opener.commitment(), *rekey.commitment());
    let sealed: Vec<_> = (0..20)
        .map(|i| {
            SealedPortion::seal_with_rng(
                lab.public(),
                RecordId::random_with_rng(&mut r),
                T0 + i,
                &plaintext(50, i as u8),
                &mut r,
            )
            .unwrap()
        })
        .collect();
    let headers: Vec<&PortionHeader> = sealed.iter().map(|s| s.header()).collect();
    let rcs = reenc_batch(&rekey, &headers, &mut r);
    assert_eq!(rcs.len(), 20);
    for (i, (s, rc)) in sealed.iter().zip(rcs).enumerate() {
        assert_eq!(
            s.open_as_delegatee_with(&opener, &rc.unwrap()).unwrap(),
            plaintext(50, i as u8)
        );
    }
}

#[test]
fn patient_keys_and_secret_keys_survive_export() {
    let p = patient(11);
    let again = PatientKeys::from_bytes(&p.to_bytes()).unwrap();
    assert_eq!(again.patient(), p.patient());
    let l = label("medical");
    assert_eq!(again.portion_secret(&l, 0), p.portion_secret(&l, 0));
    let from_master = PatientKeys::from_master(p.patient().clone(), &p.master_bytes());
    assert_eq!(from_master.portion_public(&l, 3), p.portion_public(&l, 3));
    // Another patient id with the same master secret gives other keys.
    let other = PatientKeys::from_master(Identity::new("someone-else").unwrap(), &p.master_bytes());
    assert_ne!(other.portion_public(&l, 0), p.portion_public(&l, 0));

    let ppk = p.portion_public(&l, 2);
    assert_eq!(PortionPublicKey::from_bytes(&ppk.to_bytes()).unwrap(), ppk);

    let u = user(3);
    let back = KeyPair::from_secret_bytes(&u.secret().to_bytes()).unwrap();
    assert_eq!(back, u);
    assert_eq!(
        PublicKey::from_bytes(&u.public().to_bytes()).unwrap(),
        *u.public()
    );
}

#[test]
fn escrow_issuance_is_deterministic_per_identity_and_epoch() {
    let issuer = EscrowKeyIssuer::generate_with_rng(&mut rng(4));
    let id = Identity::new("nurse@ward-7").unwrap();
    let k0 = issuer.issue(&id, 0);
    assert_eq!(
        EscrowKeyIssuer::from_seed(&issuer.seed_bytes()).issue(&id, 0),
        k0
    );
    assert_ne!(issuer.issue(&id, 1).public(), k0.public());
    assert_ne!(
        issuer
            .issue(&Identity::new("nurse@ward-8").unwrap(), 0)
            .public(),
        k0.public()
    );
    // An issued key works like any other key pair.
    let p = patient(4);
    let m = portion(&p, "medical");
    let s = SealedPortion::seal_with_rng(
        m.public(),
        RecordId::from_bytes([1; 16]),
        T0,
        b"x",
        &mut rng(5),
    )
    .unwrap();
    let rc = reenc(
        &ReKey::generate_with_rng(&m, k0.public(), &mut rng(6)),
        s.header(),
    )
    .unwrap();
    assert_eq!(s.open_as_delegatee(&k0, &rc).unwrap(), b"x");
}

/// Sealing into the caller's memory (`PortionWriter::write_into`) gives the
/// same bytes as writing through the inner writer, whatever the pieces;
/// opening into the caller's memory (`PortionOpener::push_into`) gives the
/// same plaintext as `push`, and a tampered chunk leaves nothing of this
/// call's plaintext behind.
#[test]
fn sealing_and_opening_into_caller_memory_match_the_writer_paths() {
    let p = patient(70);
    let key = portion(&p, "imaging");
    let seal_with = |pieces: &[&[u8]], direct: bool| -> Vec<u8> {
        let mut w = PortionWriter::new_with_rng(
            key.public(),
            RecordId::from_bytes([7; 16]),
            T0,
            Vec::new(),
            &mut rng(71),
        )
        .unwrap();
        let mut out = std::mem::take(w.get_mut());
        for piece in pieces {
            if direct {
                let mut room = vec![0u8; piece.len() + 2 * 65_552];
                let n = w.write_into(piece, &mut room).unwrap();
                out.extend_from_slice(&room[..n]);
            } else {
                w.write_all(piece).unwrap();
                out.append(w.get_mut());
            }
        }
        out.extend_from_slice(&w.finish().unwrap());
        out
    };
    for len in [0usize, 1, 65_535, 65_536, 65_537, 200_001] {
        let pt = plaintext(len, 9);
        for piece in [1usize, 7, 65_536, 65_552, 100_000, len.max(1)] {
            if piece == 1 && len > 70_000 {
                continue;
            }
            let pieces: Vec<&[u8]> = pt.chunks(piece).collect();
            let sealed = seal_with(&pieces, true);
            assert_eq!(
                sealed,
                seal_with(&pieces, false),
                "{len} in pieces of {piece}"
            );
            let s = SealedPortion::from_bytes(&sealed).unwrap();
            assert_eq!(s.open_as_owner(&key).unwrap(), pt);
            // Opening in the same pieces, into a caller's buffer.
            let hl = s.header().encoded_len();
            let mut op = PortionOpener::for_owner(s.header(), &key).unwrap();
            let mut got = Vec::new();
            for body in sealed[hl..].chunks(piece) {
                let mut room = vec![0u8; body.len() + 65_552];
                let n = op.push_into(body, &mut room).unwrap();
                got.extend_from_slice(&room[..n]);
            }
            op.finish(&mut got).unwrap();
            assert_eq!(got, pt, "{len} opened in pieces of {piece}");
        }
    }
    // A tampered chunk: an error, and this call's output wiped.
    let pt = plaintext(200_000, 3);
    let sealed = seal_with(&[&pt], true);
    let s = SealedPortion::from_bytes(&sealed).unwrap();
    let hl = s.header().encoded_len();
    let mut bad = sealed.clone();
    bad[hl + 65_552 + 10] ^= 1; // the second chunk
    let mut op = PortionOpener::for_owner(s.header(), &key).unwrap();
    let mut room = vec![0u8; bad.len()];
    assert!(matches!(
        op.push_into(&bad[hl..], &mut room),
        Err(Error::DecryptionFailed)
    ));
    assert!(
        room.iter().all(|&b| b == 0),
        "the first chunk's plaintext was wiped"
    );
    assert!(
        op.push_into(&[], &mut room).is_err(),
        "the opener stays failed"
    );
    // Too little room: refused.
    let mut op = PortionOpener::for_owner(s.header(), &key).unwrap();
    let mut small = vec![0u8; 1000];
    assert!(matches!(
        op.push_into(&sealed[hl..], &mut small),
        Err(Error::TooLarge)
    ));
    let mut w = PortionWriter::new(key.public(), RecordId::random(), T0, Vec::new()).unwrap();
    assert!(matches!(
        w.write_into(&pt, &mut small),
        Err(Error::TooLarge)
    ));
}
