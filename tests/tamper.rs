//! Tampering with any part of a sealed portion releases no plaintext.
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
use std::io::Read;

struct Fixture {
    medical: PortionSecretKey,
    doctor: KeyPair,
    rekey: ReKey,
    sealed: SealedPortion,
    pt: Vec<u8>,
}

fn fixture(len: usize) -> Fixture {
    let mut r = rng(40);
    let p = patient(40);
    let medical = portion(&p, "medical");
    let doctor = user(40);
    let pt = plaintext(len, 0x5a);
    let sealed = SealedPortion::seal_with_rng(
        medical.public(),
        RecordId::random_with_rng(&mut r),
        T0,
        &pt,
        &mut r,
    )
    .unwrap();
    let rekey = ReKey::generate_with_rng(&medical, doctor.public(), &mut r);
    Fixture {
        medical,
        doctor,
        rekey,
        sealed,
        pt,
    }
}

/// Every way of opening `bytes` fails and releases nothing.
fn assert_nothing_opens(f: &Fixture, bytes: &[u8]) {
    if let Ok(s) = SealedPortion::from_bytes(bytes) {
        assert!(s.open_as_owner(&f.medical).is_err(), "owner open succeeded");
        if let Ok(rc) = reenc(&f.rekey, s.header()) {
            assert!(
                s.open_as_delegatee(&f.doctor, &rc).is_err(),
                "delegatee open succeeded"
            );
        }
        // The honest re-capsule of the untampered header, used on the tampered portion.
        let honest = reenc(&f.rekey, f.sealed.header()).unwrap();
        assert!(
            s.open_as_delegatee(&f.doctor, &honest).is_err(),
            "delegatee open with honest re-capsule succeeded"
        );
    }
    if let Ok(reader) = PortionReader::new(bytes)
        && let Ok(mut pt) = reader.open_as_owner(&f.medical)
    {
        let mut out = Vec::new();
        assert!(
            pt.read_to_end(&mut out).is_err(),
            "stream reached a clean end"
        );
    }
}

#[test]
fn every_header_bit_flip_is_detected() {
    let f = fixture(1000);
    let bytes = f.sealed.to_bytes();
    let hlen = f.sealed.header().encoded_len();
    for byte in 0..hlen {
        for bit in 0..8 {
            let mut t = bytes.clone();
            t[byte] ^= 1 << bit;
            assert_nothing_opens(&f, &t);
        }
    }
}

#[test]
fn every_tag_bit_and_sampled_body_bits_are_detected() {
    let f = fixture(2 * CHUNK_LEN + 300);
    let bytes = f.sealed.to_bytes();
    let hlen = f.sealed.header().encoded_len();
    let mut positions: Vec<usize> = (hlen..bytes.len()).step_by(1499).collect();
    // Every byte of every tag, and the first and last ciphertext byte of each chunk.
    for chunk_end in [
        hlen + SEALED_CHUNK_LEN,
        hlen + 2 * SEALED_CHUNK_LEN,
        bytes.len(),
    ] {
        positions.extend(chunk_end - TAG_LEN..chunk_end);
        positions.push(chunk_end - TAG_LEN - 1);
    }
    positions.extend([hlen, hlen + SEALED_CHUNK_LEN, hlen + 2 * SEALED_CHUNK_LEN]);
    for pos in positions {
        for bit in [0, 7] {
            let mut t = bytes.clone();
            t[pos] ^= 1 << bit;
            assert_nothing_opens(&f, &t);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn random_bit_flips_are_detected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let f = fixture(CHUNK_LEN + 77);
        let mut t = f.sealed.to_bytes();
        let i = pos.index(t.len());
        t[i] ^= 1 << bit;
        assert_nothing_opens(&f, &t);
    }
}

fn chunks(f: &Fixture) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = f.sealed.to_bytes();
    let hlen = f.sealed.header().encoded_len();
    let header = bytes[..hlen].to_vec();
    let body: Vec<Vec<u8>> = bytes[hlen..]
        .chunks(SEALED_CHUNK_LEN)
        .map(<[u8]>::to_vec)
        .collect();
    (header, body)
}

fn join(header: &[u8], body: &[Vec<u8>]) -> Vec<u8> {
    let mut v = header.to_vec();
    for c in body {
        v.extend_from_slice(c);
    }
    v
}

#[test]
fn truncation_reordering_and_extension_are_detected() {
    let f = fixture(3 * CHUNK_LEN + 5);
    let (h, body) = chunks(&f);
    assert_eq!(body.len(), 4);
    assert_eq!(f.sealed.open_as_owner(&f.medical).unwrap(), f.pt);

    // Drop the last chunk (the rest is a whole number of full chunks).
    assert_nothing_opens(&f, &join(&h, &body[..3]));
    // Drop the last two; drop the first.
    assert_nothing_opens(&f, &join(&h, &body[..2]));
    assert_nothing_opens(&f, &join(&h, &body[1..]));
    // Reorder.
    let mut swapped = body.clone();
    swapped.swap(0, 1);
    assert_nothing_opens(&f, &join(&h, &swapped));
    let mut rotated = body.clone();
    rotated.rotate_left(1);
    assert_nothing_opens(&f, &join(&h, &rotated));
    // Append a copy of a chunk; append a few bytes; append an empty "chunk" (a bare tag).
    let mut extended = body.clone();
    extended.push(body[1].clone());
    assert_nothing_opens(&f, &join(&h, &extended));
    let mut v = join(&h, &body);
    v.push(0);
    assert_nothing_opens(&f, &v);
    let mut v = join(&h, &body);
    v.extend_from_slice(&body[3][body[3].len() - TAG_LEN..]);
    assert_nothing_opens(&f, &v);
    // Cut inside a chunk and inside a tag.
    let full = join(&h, &body);
    for cut in [1, 5, TAG_LEN, TAG_LEN + 1, 1000] {
        assert_nothing_opens(&f, &full[..full.len() - cut]);
    }
    // A body shorter than one tag is refused at decoding.
    assert!(SealedPortion::from_bytes(&full[..h.len() + 15]).is_err());
    assert!(SealedPortion::from_bytes(&h).is_err());
}

#[test]
fn a_full_last_chunk_cannot_be_extended_or_cut() {
    // Exactly two full chunks: the second is the last and is full.
    let f = fixture(2 * CHUNK_LEN);
    let (h, body) = chunks(&f);
    assert_eq!(body.len(), 2);
    assert_nothing_opens(&f, &join(&h, &body[..1]));
    let mut ext = body.clone();
    ext.push(body[0].clone());
    assert_nothing_opens(&f, &join(&h, &ext));
}

#[test]
fn streaming_releases_only_authenticated_chunks() {
    let f = fixture(3 * CHUNK_LEN);
    let mut t = f.sealed.to_bytes();
    let hlen = f.sealed.header().encoded_len();
    // Corrupt the second chunk: the first is released, nothing after it.
    t[hlen + SEALED_CHUNK_LEN + 10] ^= 1;
    let mut pt = PortionReader::new(&t[..])
        .unwrap()
        .open_as_owner(&f.medical)
        .unwrap();
    let mut released = Vec::new();
    let mut buf = [0u8; 4096];
    let err = loop {
        match pt.read(&mut buf) {
            Ok(0) => panic!("clean end on a tampered stream"),
            Ok(n) => released.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(matches!(Error::from(err), Error::DecryptionFailed));
    assert_eq!(released, f.pt[..CHUNK_LEN]);
    // And it stays failed.
    assert!(pt.read(&mut buf).is_err());

    // A truncated stream: the error comes at the end, and stays.
    let full = f.sealed.to_bytes();
    let cut = &full[..full.len() - SEALED_CHUNK_LEN];
    let mut pt = PortionReader::new(cut)
        .unwrap()
        .open_as_owner(&f.medical)
        .unwrap();
    let mut out = Vec::new();
    assert!(pt.read_to_end(&mut out).is_err());
    for _ in 0..3 {
        assert!(
            pt.read(&mut buf).is_err(),
            "a failed stream must not end cleanly on a retry"
        );
    }
}
