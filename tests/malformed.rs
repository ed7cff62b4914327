//! Strict decoding: every decoder, fed anything but a valid encoding, returns a
//! typed error and never panics. RFC 9496 Appendix A runs through our own
//! point decoding.
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

fn rfc9496() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/rfc9496.json")).unwrap()
}

fn hex_list(v: &serde_json::Value, section: &str) -> Vec<[u8; 32]> {
    v[section]["encodings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| unhex(s.as_str().unwrap()).try_into().unwrap())
        .collect()
}

#[test]
fn rfc9496_a1_multiples_of_the_generator() {
    let v = rfc9496();
    let enc = hex_list(&v, "A.1_multiples_of_generator");
    assert_eq!(enc.len(), 16);
    // 0·G is the identity: never a valid key.
    assert!(matches!(
        PublicKey::from_bytes(&enc[0]),
        Err(Error::IdentityPoint)
    ));
    for (k, e) in enc.iter().enumerate().skip(1) {
        let mut s = [0u8; 32];
        s[0] = k as u8;
        let pk = SecretKey::from_bytes(&s).unwrap().public_key();
        assert_eq!(&pk.to_bytes(), e, "{k}·G");
        assert_eq!(PublicKey::from_bytes(e).unwrap(), pk);
    }
}

#[test]
fn rfc9496_a2_invalid_encodings_are_rejected() {
    let v = rfc9496();
    let bad = hex_list(&v, "A.2_invalid_encodings");
    assert_eq!(bad.len(), 29);
    for e in &bad {
        assert!(
            matches!(PublicKey::from_bytes(e), Err(Error::NonCanonicalPoint)),
            "{}",
            hex(e)
        );
    }
}

#[test]
fn rfc9496_a3_hash_to_group() {
    use curve25519_dalek::ristretto::RistrettoPoint;
    use sha2::{Digest, Sha512};
    let v = rfc9496();
    let cases = v["A.3_hash_to_group"]["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let h: [u8; 64] = Sha512::digest(c["label"].as_str().unwrap().as_bytes()).into();
        let p = RistrettoPoint::from_uniform_bytes(&h);
        assert_eq!(
            hex(p.compress().as_bytes()),
            c["encoding"].as_str().unwrap()
        );
        // And our decoder accepts the result.
        assert!(PublicKey::from_bytes(p.compress().as_bytes()).is_ok());
    }
}

fn group_order() -> [u8; 32] {
    unhex(rfc9496()["group_order_le"].as_str().unwrap())
        .try_into()
        .unwrap()
}

fn non_canonical_scalars() -> Vec<[u8; 32]> {
    let l = group_order();
    let mut l1 = l;
    l1[0] += 1;
    let mut top = [0u8; 32];
    top[31] = 0x80;
    vec![l, l1, [0xff; 32], top]
}

#[test]
fn secret_keys_must_be_canonical_and_nonzero() {
    for s in non_canonical_scalars() {
        assert!(matches!(
            SecretKey::from_bytes(&s),
            Err(Error::NonCanonicalScalar)
        ));
    }
    assert!(matches!(
        SecretKey::from_bytes(&[0; 32]),
        Err(Error::ZeroScalar)
    ));
    let mut l_minus_1 = group_order();
    l_minus_1[0] -= 1;
    assert!(SecretKey::from_bytes(&l_minus_1).is_ok());
    for len in [0, 31, 33, 64] {
        assert!(matches!(
            SecretKey::from_slice(&vec![1; len]),
            Err(Error::InvalidLength { .. })
        ));
        assert!(matches!(
            PublicKey::from_slice(&vec![1; len]),
            Err(Error::InvalidLength { .. })
        ));
    }
}

type Decode = fn(&[u8]) -> Result<()>;

/// A patient's keys as sesphr 0.1 exported them (`"SPMK" ‖ 01 ‖ master ‖
/// short(id)`), which `PatientKeys::from_bytes` still imports.
fn spmk(p: &PatientKeys) -> Vec<u8> {
    let mut v = b"SPMK\x01".to_vec();
    v.extend_from_slice(p.master_bytes().as_ref());
    v.push(p.patient().as_bytes().len() as u8);
    v.extend_from_slice(p.patient().as_bytes());
    v
}

/// The checks every framed object gets.
struct Framed {
    name: &'static str,
    valid: Vec<u8>,
    decode: Decode,
    points: Vec<usize>,
    scalars: Vec<usize>,
    /// Whether bytes may follow (a sealed portion's body).
    open_ended: bool,
    /// The shortest length that decodes (the full length unless open-ended).
    shortest: usize,
}

/// The versions a kind reads besides its own: a portion header (and a
/// sealed portion) is classical at 1 and hybrid at 2. Another readable
/// version is refused too, by whichever field fails first.
fn also_read(name: &str) -> &'static [u8] {
    if name.contains("portion header") || name.contains("sealed portion") {
        &[1, 2]
    } else {
        &[]
    }
}

fn check(f: &Framed) {
    let d = f.decode;
    d(&f.valid).unwrap_or_else(|e| panic!("{}: valid encoding refused: {e}", f.name));
    // Every strict prefix is too short (for a sealed portion: up to one tag of body).
    for len in 0..f.shortest {
        let r = d(&f.valid[..len]);
        assert!(
            matches!(r, Err(Error::InvalidLength { .. })),
            "{}: prefix {len}: {r:?}",
            f.name
        );
    }
    if !f.open_ended {
        let mut long = f.valid.clone();
        long.push(0);
        assert!(
            matches!(d(&long), Err(Error::InvalidLength { .. })),
            "{}: trailing byte",
            f.name
        );
    }
    for i in 0..4 {
        let mut m = f.valid.clone();
        m[i] ^= 0x20;
        assert!(
            matches!(d(&m), Err(Error::BadMagic { .. })),
            "{}: magic",
            f.name
        );
    }
    // Every version but the kind's own (1, or 2 for the re-capsule and the
    // threshold objects), older ones included.
    for v in [0u8, 1, 2, 3, 0x81, 0xff]
        .into_iter()
        .filter(|&v| v != f.valid[4])
    {
        let mut m = f.valid.clone();
        m[4] = v;
        if also_read(f.name).contains(&v) {
            assert!(d(&m).is_err(), "{}: read as version {v}", f.name);
            continue;
        }
        assert!(
            matches!(d(&m), Err(Error::UnsupportedVersion { version, .. }) if version == v),
            "{}: version {v}",
            f.name
        );
    }
    let invalid = hex_list(&rfc9496(), "A.2_invalid_encodings");
    for &at in &f.points {
        for e in &invalid {
            let mut m = f.valid.clone();
            m[at..at + 32].copy_from_slice(e);
            assert!(
                matches!(d(&m), Err(Error::NonCanonicalPoint)),
                "{}: point at {at}",
                f.name
            );
        }
        let mut m = f.valid.clone();
        m[at..at + 32].copy_from_slice(&[0; 32]);
        assert!(
            matches!(d(&m), Err(Error::IdentityPoint)),
            "{}: identity at {at}",
            f.name
        );
    }
    for &at in &f.scalars {
        for s in non_canonical_scalars() {
            let mut m = f.valid.clone();
            m[at..at + 32].copy_from_slice(&s);
            assert!(
                matches!(d(&m), Err(Error::NonCanonicalScalar)),
                "{}: scalar at {at}",
                f.name
            );
        }
    }
}

struct Objects {
    ppk: PortionPublicKey,
    patient: PatientKeys,
    sealed: SealedPortion,
    rekey: ReKey,
    rc: ReCapsule,
    rcp: ReCapsule,
    hybrid_key: HybridPortionKey,
    split_key: HybridPortionKey,
    split: SealedPortion,
    srs_key: SrsPqPublicKey,
    hybrid: SealedPortion,
    hrc: ReCapsule,
    hrcp: ReCapsule,
}

fn objects() -> Objects {
    let mut r = rng(50);
    let p = patient(50);
    let m = portion(&p, "medical");
    let u = user(50);
    let sealed = SealedPortion::seal_with_rng(
        m.public(),
        RecordId::random_with_rng(&mut r),
        T0,
        b"hello",
        &mut r,
    )
    .unwrap();
    let rekey = ReKey::generate_with_rng(&m, u.public(), &mut r);
    let rc = reenc(&rekey, sealed.header()).unwrap();
    let rcp = reenc_proof(&rekey, sealed.header(), &mut r).unwrap();
    let srs = SrsPqSecretKey::new(3, PqSecretKey::generate_with_rng(&mut r));
    let hybrid_key = m.hybrid_public(&srs.public()).unwrap();
    let hybrid = SealedPortion::seal_with_rng(
        &hybrid_key,
        RecordId::random_with_rng(&mut r),
        T0,
        b"hello",
        &mut r,
    )
    .unwrap();
    let nodes: Vec<SrsPqPublicKey> = (1..=3u32)
        .map(|v| SrsPqSecretKey::new(v, PqSecretKey::generate_with_rng(&mut r)).public())
        .collect();
    let split_key = m.hybrid_public_split(2, &nodes).unwrap();
    let split = SealedPortion::seal_with_rng(
        &split_key,
        RecordId::random_with_rng(&mut r),
        T0,
        b"hello",
        &mut r,
    )
    .unwrap();
    let upq = PqSecretKey::generate_with_rng(&mut r);
    let hv = hybrid.header().verify().unwrap();
    let hrc = rekey
        .reencrypt_hybrid_with_rng(hv, &srs, upq.public(), false, &mut r)
        .unwrap();
    let hrcp = rekey
        .reencrypt_hybrid_with_rng(hv, &srs, upq.public(), true, &mut r)
        .unwrap();
    Objects {
        ppk: m.public().clone(),
        patient: p,
        sealed,
        rekey,
        hybrid_key,
        split_key,
        split,
        srs_key: srs.public(),
        hybrid,
        hrc,
        hrcp,
        rc,
        rcp,
    }
}

#[test]
fn every_framed_decoder_is_strict() {
    let o = objects();
    let hlen = o.sealed.header().encoded_len();
    let label_len = "medical".len();
    let cap = hlen - 96;
    let all = [
        Framed {
            name: "portion public key",
            valid: o.ppk.to_bytes(),
            decode: |b| PortionPublicKey::from_bytes(b).map(drop),
            points: vec![5 + 4 + 1 + label_len],
            scalars: vec![],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            // The 0.1 export, still imported (backups: tests/backup.rs).
            name: "patient keys (SPMK)",
            valid: spmk(&o.patient),
            decode: |b| PatientKeys::from_bytes(b).map(drop),
            points: vec![],
            scalars: vec![],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "portion header",
            valid: o.sealed.header().to_bytes(),
            decode: |b| PortionHeader::from_bytes(b).map(drop),
            points: vec![5, cap, cap + 32],
            scalars: vec![cap + 64],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "sealed portion",
            valid: o.sealed.to_bytes(),
            decode: |b| SealedPortion::from_bytes(b).map(drop),
            points: vec![5, cap, cap + 32],
            scalars: vec![cap + 64],
            open_ended: true,
            shortest: hlen + TAG_LEN,
        },
        Framed {
            name: "re-encryption key",
            valid: o.rekey.to_bytes().to_vec(),
            decode: |b| ReKey::from_bytes(b).map(drop),
            points: vec![37, 69, 101, 133],
            scalars: vec![5],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "re-capsule",
            valid: o.rc.to_bytes(),
            decode: |b| ReCapsule::from_bytes(b).map(drop),
            points: vec![6, 38, 102, 134],
            scalars: vec![70],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "re-capsule with proof",
            valid: o.rcp.to_bytes(),
            decode: |b| ReCapsule::from_bytes(b).map(drop),
            points: vec![6, 38, 102, 134],
            scalars: vec![70, 166, 198],
            open_ended: false,
            shortest: usize::MAX,
        },
    ];
    for mut f in all {
        f.shortest = f.shortest.min(f.valid.len());
        check(&f);
    }
    // The hybrid (post-quantum) kinds.
    let hhlen = o.hybrid.header().encoded_len();
    let hcap = hhlen - 96;
    let pq = PQ_STANZA_LEN;
    let scap = o.split.header().encoded_len() - 96;
    let hybrid = [
        Framed {
            name: "hybrid portion header",
            valid: o.hybrid.header().to_bytes(),
            decode: |b| PortionHeader::from_bytes(b).map(drop),
            points: vec![5, hcap, hcap + 32],
            scalars: vec![hcap + 64],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "hybrid sealed portion",
            valid: o.hybrid.to_bytes(),
            decode: |b| SealedPortion::from_bytes(b).map(drop),
            points: vec![5, hcap, hcap + 32],
            scalars: vec![hcap + 64],
            open_ended: true,
            shortest: hhlen + TAG_LEN,
        },
        Framed {
            name: "hybrid re-capsule",
            valid: o.hrc.to_bytes(),
            decode: |b| ReCapsule::from_bytes(b).map(drop),
            points: vec![6, 38, 102, 134],
            scalars: vec![70],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "hybrid re-capsule with proof",
            valid: o.hrcp.to_bytes(),
            decode: |b| ReCapsule::from_bytes(b).map(drop),
            points: vec![6, 38, 102, 134],
            scalars: vec![70, 166 + pq, 198 + pq],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "SRS post-quantum key",
            valid: o.srs_key.to_bytes(),
            decode: |b| SrsPqPublicKey::from_bytes(b).map(drop),
            points: vec![],
            scalars: vec![],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "hybrid portion key",
            valid: o.hybrid_key.to_bytes(),
            decode: |b| HybridPortionKey::from_bytes(b).map(drop),
            points: vec![5 + 4 + 1 + label_len],
            scalars: vec![],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "hybrid portion key, split 2 of 3",
            valid: o.split_key.to_bytes(),
            decode: |b| HybridPortionKey::from_bytes(b).map(drop),
            points: vec![5 + 4 + 1 + label_len],
            scalars: vec![],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "hybrid portion header, split 2 of 3",
            valid: o.split.header().to_bytes(),
            decode: |b| PortionHeader::from_bytes(b).map(drop),
            points: vec![5, scap, scap + 32],
            scalars: vec![scap + 64],
            open_ended: false,
            shortest: usize::MAX,
        },
    ];
    assert_eq!(o.hrc.to_bytes().len(), ReCapsule::HYBRID_LEN);
    assert_eq!(o.hrcp.to_bytes().len(), ReCapsule::HYBRID_LEN_WITH_PROOF);
    assert_eq!(o.srs_key.to_bytes().len(), SrsPqPublicKey::LEN);
    for mut f in hybrid {
        f.shortest = f.shortest.min(f.valid.len());
        check(&f);
    }
}

/// An ML-KEM-768 encapsulation key whose first coefficient is not reduced
/// modulo q = 3329 (FIPS 203's modulus check refuses it).
fn unreduced(ek: &[u8]) -> Vec<u8> {
    let mut b = ek.to_vec();
    b[0] = 0xff;
    b[1] |= 0x0f;
    b
}

#[test]
fn ml_kem_keys_are_checked_and_stanzas_are_framed() {
    let o = objects();
    let ek = o.srs_key.key().as_bytes().to_vec();
    assert!(PqPublicKey::from_bytes(&ek).is_ok());
    assert!(matches!(
        PqPublicKey::from_bytes(&unreduced(&ek)),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        PqPublicKey::from_bytes(&ek[1..]),
        Err(Error::InvalidLength { .. })
    ));
    // The same check inside the SRS key and the hybrid portion key.
    let mut b = o.srs_key.to_bytes();
    let bad = unreduced(&b[9..]);
    b[9..].copy_from_slice(&bad);
    assert!(matches!(
        SrsPqPublicKey::from_bytes(&b),
        Err(Error::Malformed { .. })
    ));
    let mut b = o.hybrid_key.to_bytes();
    let at = 5 + 4 + 1 + "medical".len() + 32;
    let bad = unreduced(&b[at..at + PQ_PUBLIC_KEY_LEN]);
    b[at..at + PQ_PUBLIC_KEY_LEN].copy_from_slice(&bad);
    assert!(matches!(
        HybridPortionKey::from_bytes(&b),
        Err(Error::Malformed { .. })
    ));
    // A re-capsule whose stanza flag is set with no stanza, or cleared
    // with one: refused by length.
    let mut b = o.rc.to_bytes();
    b[5] |= 4;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::InvalidLength { .. })
    ));
    let mut b = o.hrc.to_bytes();
    b[5] &= !4;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::InvalidLength { .. })
    ));
    // The streaming header reader reads a hybrid header whole, and
    // reports a short stream.
    let h = o.hybrid.header().to_bytes();
    assert_eq!(PortionHeader::len_from_prefix(&h).unwrap(), h.len());
    assert_eq!(h.len(), o.sealed.header().encoded_len() + 2310);
    assert!(h.len() <= PortionHeader::MAX_LEN);
    assert_eq!(
        PortionHeader::read_from(&mut &h[..]).unwrap(),
        *o.hybrid.header()
    );
    for len in [0, 66, 67, 200, 1500, h.len() - 1] {
        assert!(matches!(
            PortionHeader::read_from(&mut &h[..len]),
            Err(Error::InvalidLength { .. })
        ));
    }
}

#[test]
fn object_specific_rules() {
    let o = objects();
    // Re-capsule: reserved flag bits; a share flag without an index; a
    // proof flag without a proof; a proof without the flag.
    let mut b = o.rc.to_bytes();
    for flags in [8u8, 0x10, 0x80, 0xf8] {
        b[5] = flags;
        assert!(matches!(
            ReCapsule::from_bytes(&b),
            Err(Error::ReservedBitsSet)
        ));
    }
    // (the next byte is taken as the index, and everything after shifts:
    // refused, whichever field fails first)
    b[5] = 2;
    assert!(ReCapsule::from_bytes(&b).is_err());
    b[5] = 1;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::InvalidLength { .. })
    ));
    let mut b = o.rcp.to_bytes();
    b[5] = 0;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::InvalidLength { .. })
    ));

    // Re-encryption key: zero rk; a commitment that does not match rk.
    let mut b = o.rekey.to_bytes().to_vec();
    b[5..37].copy_from_slice(&[0; 32]);
    assert!(matches!(ReKey::from_bytes(&b), Err(Error::ZeroScalar)));
    let mut b = o.rekey.to_bytes().to_vec();
    let other = user(77).public().to_bytes();
    b[133..165].copy_from_slice(&other);
    assert!(matches!(ReKey::from_bytes(&b), Err(Error::KeyMismatch)));

    // Header: bad labels, a label length that runs past the end.
    let h = o.sealed.header().to_bytes();
    let lab = 4 + 1 + 32 + 16 + 4 + 8;
    let mut b = h.clone();
    b[lab + 1] = b'M';
    assert!(matches!(
        PortionHeader::from_bytes(&b),
        Err(Error::InvalidLabel)
    ));
    let mut b = h.clone();
    b[lab] = 0;
    assert!(PortionHeader::from_bytes(&b).is_err());
    let mut b = h.clone();
    b[lab] = 200;
    assert!(matches!(
        PortionHeader::from_bytes(&b),
        Err(Error::InvalidLength { .. })
    ));
    let mut b = h.clone();
    b[lab + 2] = 0xc3; // not [a-z0-9_-], not even ASCII
    assert!(matches!(
        PortionHeader::from_bytes(&b),
        Err(Error::InvalidLabel)
    ));
    // The streaming header reader agrees with the slice decoder, and reports short streams.
    assert_eq!(
        PortionHeader::read_from(&mut &h[..]).unwrap(),
        *o.sealed.header()
    );
    for len in [0, 10, 66, h.len() - 1] {
        assert!(matches!(
            PortionHeader::read_from(&mut &h[..len]),
            Err(Error::InvalidLength { .. })
        ));
    }

    // Patient keys: an empty or non-UTF-8 identity.
    let mut b = spmk(&o.patient);
    b[37] = 0;
    b.truncate(38);
    assert!(matches!(
        PatientKeys::from_bytes(&b),
        Err(Error::InvalidIdentity)
    ));
    let mut b = spmk(&o.patient);
    b[38] = 0xff;
    assert!(matches!(
        PatientKeys::from_bytes(&b),
        Err(Error::InvalidIdentity)
    ));

    // Identities with a NUL or another control character, directly and
    // inside an encoding.
    for bad in [
        "dr\0house",
        "\0",
        "a\nb",
        "tab\t",
        "esc\u{1b}[31m",
        "del\u{7f}",
        "c1\u{85}",
    ] {
        assert!(
            matches!(Identity::new(bad), Err(Error::InvalidIdentity)),
            "{bad:?}"
        );
        assert!(
            matches!(
                Identity::from_utf8(bad.as_bytes()),
                Err(Error::InvalidIdentity)
            ),
            "{bad:?}"
        );
    }
    assert!(Identity::new("Dr. Zoë O'Brien <zoe@clinic.example>").is_ok());
    let mut b = spmk(&o.patient);
    let at = b.len() - 1;
    b[at] = 0;
    assert!(matches!(
        PatientKeys::from_bytes(&b),
        Err(Error::InvalidIdentity)
    ));

    // Capsules alone.
    let cap = o.sealed.header().capsule().to_bytes();
    assert_eq!(
        Capsule::from_bytes(&cap).unwrap(),
        *o.sealed.header().capsule()
    );
    assert!(matches!(
        Capsule::from_bytes(&cap[..95]),
        Err(Error::InvalidLength { .. })
    ));
    assert!(matches!(
        RecordId::from_slice(&[0; 3]),
        Err(Error::InvalidLength { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Garbage of any length never panics any decoder.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), prefix in 0usize..6) {
        let mut b = bytes;
        let magics: [&[u8]; 6] = [b"", b"SPHR\x01", b"SPPK\x01", b"SPMK\x01", b"SPRK\x01", b"SPRC\x02"];
        let mut v = magics[prefix].to_vec();
        v.append(&mut b);
        let _ = PublicKey::from_slice(&v);
        let _ = SecretKey::from_slice(&v);
        let _ = PortionPublicKey::from_bytes(&v);
        let _ = PatientKeys::from_bytes(&v);
        let _ = PortionHeader::from_bytes(&v);
        let _ = PortionHeader::read_from(&mut &v[..]);
        let _ = SealedPortion::from_bytes(&v);
        let _ = Capsule::from_bytes(&v);
        let _ = ReKey::from_bytes(&v);
        let _ = ReCapsule::from_bytes(&v);
        let _ = Identity::from_utf8(&v);
        let _ = PortionLabel::from_bytes(&v);
    }

    /// Decoding then encoding reproduces the input exactly (one encoding per value).
    #[test]
    fn parse_then_serialize_is_identity(seed in any::<u8>(), len in 0usize..200) {
        let mut r = rng(seed);
        let p = patient(seed);
        let m = portion(&p, "lab");
        let s = SealedPortion::seal_with_rng(m.public(), RecordId::random_with_rng(&mut r), T0, &plaintext(len, seed), &mut r).unwrap();
        let b = s.to_bytes();
        prop_assert_eq!(SealedPortion::from_bytes(&b).unwrap().to_bytes(), b);
        let h = s.header().to_bytes();
        prop_assert_eq!(PortionHeader::from_bytes(&h).unwrap().to_bytes(), h);
        let rk = ReKey::generate_with_rng(&m, user(seed).public(), &mut r);
        let kb = rk.to_bytes();
        prop_assert_eq!(&*ReKey::from_bytes(&kb).unwrap().to_bytes(), &*kb);
        let rc = reenc_proof(&rk, s.header(), &mut r).unwrap().to_bytes();
        prop_assert_eq!(ReCapsule::from_bytes(&rc).unwrap().to_bytes(), rc);
    }
}

#[test]
fn header_length_from_a_prefix() {
    let p = patient(41);
    let k = portion(&p, "imaging");
    let s = SealedPortion::seal(k.public(), RecordId::random(), T0, b"scan").unwrap();
    let h = s.header().to_bytes();
    let all = s.to_bytes();
    assert_eq!(PortionHeader::len_from_prefix(&h).unwrap(), h.len());
    assert_eq!(
        PortionHeader::len_from_prefix(&all[..PortionHeader::PREFIX_LEN]).unwrap(),
        h.len()
    );
    assert!((PortionHeader::MIN_LEN..=PortionHeader::MAX_LEN).contains(&h.len()));
    // A classical header's length is known from its first 66 bytes.
    assert_eq!(PortionHeader::len_from_prefix(&h[..66]).unwrap(), h.len());
    assert!(matches!(
        PortionHeader::len_from_prefix(&h[..65]),
        Err(Error::InvalidLength { .. })
    ));
    let mut bad = h.clone();
    bad[0] ^= 1;
    assert!(matches!(
        PortionHeader::len_from_prefix(&bad),
        Err(Error::BadMagic { .. })
    ));
    let mut bad = h.clone();
    bad[4] = 3;
    assert!(matches!(
        PortionHeader::len_from_prefix(&bad),
        Err(Error::UnsupportedVersion { .. })
    ));
    // Version 2 is a hybrid header: `t ‖ n` before the label length, then
    // 1,136 bytes of the owner's stanza and 1,172 per node.
    let hh = objects().hybrid.header().to_bytes();
    assert_eq!(&hh[65..67], &[1, 1]);
    assert_eq!(
        PortionHeader::len_from_prefix(&hh[..PortionHeader::PREFIX_LEN]).unwrap(),
        hh.len()
    );
    for short in [66, 67] {
        assert!(matches!(
            PortionHeader::len_from_prefix(&hh[..short]),
            Err(Error::InvalidLength { .. })
        ));
    }
    for (t, n, len) in [(2u8, 3u8, 2 * 1172), (3, 3, 2 * 1172), (2, 16, 15 * 1172)] {
        let mut split = hh.clone();
        split[65] = t;
        split[66] = n;
        assert_eq!(
            PortionHeader::len_from_prefix(&split).unwrap(),
            hh.len() + len
        );
    }
    for (t, n) in [
        (0u8, 0u8),
        (0, 1),
        (1, 2),
        (1, 0),
        (2, 1),
        (4, 3),
        (2, 17),
        (255, 255),
    ] {
        let mut bad = hh.clone();
        bad[65] = t;
        bad[66] = n;
        assert!(
            matches!(
                PortionHeader::len_from_prefix(&bad),
                Err(Error::InvalidThreshold)
            ),
            "{t} of {n}"
        );
        assert!(PortionHeader::from_bytes(&bad).is_err(), "{t} of {n}");
    }
    for (at, from) in [(65usize, &h), (67, &hh)] {
        for n in [0u8, 65, 255] {
            let mut bad = from.clone();
            bad[at] = n;
            assert!(
                matches!(
                    PortionHeader::len_from_prefix(&bad),
                    Err(Error::InvalidLabel)
                ),
                "{n}"
            );
        }
    }
}

/// The threshold objects (2 of 3): commitments, a key share, re-capsule
/// shares with and without a proof.
#[test]
fn threshold_decoders_are_strict() {
    let o = objects();
    let mut r = rng(51);
    let (c, shares) = o.rekey.split_with_rng(2, 3, &mut r).unwrap();
    let v = o.sealed.header().verify().unwrap();
    let rcs = shares[1].reencrypt(v).unwrap();
    let rcsp = shares[1].reencrypt_with_proof_with_rng(v, &mut r).unwrap();
    let all = vec![
        Framed {
            name: "share commitments",
            valid: c.to_bytes(),
            decode: |b| ShareCommitments::from_bytes(b).map(drop),
            points: vec![7, 39, 71, 103, 135],
            scalars: vec![],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "key share",
            valid: shares[0].to_bytes().to_vec(),
            decode: |b| ReKeyShare::from_bytes(b).map(drop),
            points: vec![40, 72, 104, 136, 168],
            scalars: vec![6],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "re-capsule share",
            valid: rcs.to_bytes(),
            decode: |b| ReCapsule::from_bytes(b).map(drop),
            points: vec![7, 39, 103, 135],
            scalars: vec![71],
            open_ended: false,
            shortest: usize::MAX,
        },
        Framed {
            name: "re-capsule share with proof",
            valid: rcsp.to_bytes(),
            decode: |b| ReCapsule::from_bytes(b).map(drop),
            points: vec![7, 39, 103, 135],
            scalars: vec![71, 167, 199],
            open_ended: false,
            shortest: usize::MAX,
        },
    ];
    for mut f in all {
        f.shortest = f.shortest.min(f.valid.len());
        check(&f);
    }
    // A zero share scalar is refused as such.
    let mut b = shares[0].to_bytes().to_vec();
    b[6..38].copy_from_slice(&[0; 32]);
    assert!(matches!(ReKeyShare::from_bytes(&b), Err(Error::ZeroScalar)));
    // t and n outside 2 <= t <= n.
    for (t, n) in [(0u8, 3u8), (1, 3), (3, 2), (2, 0)] {
        let mut b = c.to_bytes();
        b[5] = t;
        b[6] = n;
        assert!(matches!(
            ShareCommitments::from_bytes(&b),
            Err(Error::InvalidThreshold)
        ));
    }
}
