//! Cryptographic isolation: a grant opens its own portion for its own user,
//! and nothing else (DESIGN §7 property 1 at the cryptographic level).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::needless_range_loop,
    clippy::map_entry
)]

mod common;
use common::*;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::scalar::Scalar;
use sesphr::*;

struct World {
    medical: PortionSecretKey,
    insurance: PortionSecretKey,
    doctor: KeyPair,
    other: KeyPair,
    med_portion: SealedPortion,
    ins_portion: SealedPortion,
    med_rekey: ReKey,
}

fn world() -> World {
    let mut r = rng(21);
    let p = patient(21);
    let medical = portion(&p, "medical");
    let insurance = portion(&p, "insurance");
    let doctor = user(1);
    let other = user(2);
    let record = RecordId::random_with_rng(&mut r);
    let med_portion =
        SealedPortion::seal_with_rng(medical.public(), record, T0, b"diagnosis", &mut r).unwrap();
    let ins_portion =
        SealedPortion::seal_with_rng(insurance.public(), record, T0, b"policy", &mut r).unwrap();
    let med_rekey = ReKey::generate_with_rng(&medical, doctor.public(), &mut r);
    World {
        medical,
        insurance,
        doctor,
        other,
        med_portion,
        ins_portion,
        med_rekey,
    }
}

#[test]
fn a_medical_grant_yields_nothing_on_an_insurance_capsule() {
    let w = world();
    // The re-encryption itself is refused.
    assert!(matches!(
        reenc(&w.med_rekey, w.ins_portion.header()),
        Err(Error::KeyMismatch)
    ));
    assert!(matches!(
        reenc_proof_os(&w.med_rekey, w.ins_portion.header()),
        Err(Error::KeyMismatch)
    ));
    let batch = reenc_batch(
        &w.med_rekey,
        &[w.ins_portion.header(), w.med_portion.header()],
        &mut rng(0),
    );
    assert!(matches!(batch[0], Err(Error::KeyMismatch)));
    assert!(batch[1].is_ok());

    // A medical re-capsule presented for the insurance portion is refused.
    let med_rc = reenc(&w.med_rekey, w.med_portion.header()).unwrap();
    assert!(matches!(
        w.ins_portion.open_as_delegatee(&w.doctor, &med_rc),
        Err(Error::KeyMismatch)
    ));

    // Forge what a misbehaving SRS could compute: E' = rk_medical · E_insurance,
    // wrapped as a re-capsule of the insurance capsule. It opens nothing.
    let rk_bytes = w.med_rekey.to_bytes();
    let rk = Scalar::from_canonical_bytes(rk_bytes[5..37].try_into().unwrap()).unwrap();
    let cap = w.ins_portion.header().capsule().to_bytes();
    let e = CompressedRistretto(cap[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    let mut forged = vec![];
    forged.extend_from_slice(b"SPRC\x02\x00");
    forged.extend_from_slice(&cap);
    forged.extend_from_slice((rk * e).compress().as_bytes());
    forged.extend_from_slice(w.med_rekey.ephemeral().as_bytes());
    let forged = ReCapsule::from_bytes(&forged).unwrap();
    assert!(w.ins_portion.open_as_delegatee(&w.doctor, &forged).is_err());
    let opener = DelegateeOpener::new(
        &w.doctor,
        w.med_rekey.ephemeral(),
        w.insurance.public().key(),
    );
    assert!(matches!(
        w.ins_portion.open_as_delegatee_with(&opener, &forged),
        Err(Error::DecryptionFailed)
    ));
    // The owner's keys stay separate too.
    assert!(matches!(
        w.ins_portion.open_as_owner(&w.medical),
        Err(Error::KeyMismatch)
    ));
}

#[test]
fn a_re_capsule_opened_by_another_user_fails() {
    let w = world();
    let rc = reenc(&w.med_rekey, w.med_portion.header()).unwrap();
    assert_eq!(
        w.med_portion.open_as_delegatee(&w.doctor, &rc).unwrap(),
        b"diagnosis"
    );
    assert!(matches!(
        w.med_portion.open_as_delegatee(&w.other, &rc),
        Err(Error::DecryptionFailed)
    ));
    // With a proof, the other user's check of RK fails first: still no plaintext.
    let rcp = reenc_proof_os(&w.med_rekey, w.med_portion.header()).unwrap();
    assert!(w.med_portion.open_as_delegatee(&w.other, &rcp).is_err());
    // A grant to the other user does not open the doctor's re-capsule either.
    let other_rekey = ReKey::generate(&w.medical, w.other.public());
    let other_opener =
        DelegateeOpener::new(&w.other, other_rekey.ephemeral(), w.medical.public().key());
    assert!(matches!(
        w.med_portion.open_as_delegatee_with(&other_opener, &rc),
        Err(Error::KeyMismatch)
    ));
}

/// Offsets in a header with label `l` bytes long.
const RECORD_ID_AT: usize = 4 + 1 + 32;
const LABEL_AT: usize = RECORD_ID_AT + 16 + 4 + 8;

#[test]
fn a_capsule_moved_to_another_record_or_label_fails() {
    let w = world();
    let original = w.med_portion.to_bytes();

    let mut moved = original.clone();
    moved[RECORD_ID_AT] ^= 0x01;
    let moved = SealedPortion::from_bytes(&moved).unwrap();
    assert!(matches!(
        reenc(&w.med_rekey, moved.header()),
        Err(Error::InvalidCapsule)
    ));
    assert!(matches!(
        moved.open_as_owner(&w.medical),
        Err(Error::InvalidCapsule)
    ));

    // Relabel "medical" as "medicam": same key point, other label.
    let mut relabeled = original.clone();
    assert_eq!(&relabeled[LABEL_AT + 1..LABEL_AT + 8], b"medical");
    relabeled[LABEL_AT + 7] = b'm';
    let relabeled = SealedPortion::from_bytes(&relabeled).unwrap();
    assert!(matches!(
        reenc(&w.med_rekey, relabeled.header()),
        Err(Error::InvalidCapsule)
    ));
    assert!(matches!(
        relabeled.open_as_owner(&w.medical),
        Err(Error::InvalidCapsule)
    ));

    // Back-dating (created_at) is caught the same way.
    let mut backdated = original;
    backdated[RECORD_ID_AT + 16 + 4 + 7] ^= 0x80;
    let backdated = SealedPortion::from_bytes(&backdated).unwrap();
    assert!(matches!(
        reenc(&w.med_rekey, backdated.header()),
        Err(Error::InvalidCapsule)
    ));
}

#[test]
fn a_blinded_capsule_fails_the_capsule_proof() {
    let w = world();
    let bytes = w.med_portion.to_bytes();
    let hlen = w.med_portion.header().encoded_len();
    let cap_at = hlen - 96;
    let e = CompressedRistretto(bytes[cap_at..cap_at + 32].try_into().unwrap())
        .decompress()
        .unwrap();
    for t in [2u64, 3, 1 << 40] {
        let t = Scalar::from(t);
        let mut blinded = bytes.clone();
        blinded[cap_at..cap_at + 32].copy_from_slice((t * e).compress().as_bytes());
        let blinded = SealedPortion::from_bytes(&blinded).unwrap();
        assert!(matches!(
            blinded.header().verify(),
            Err(Error::InvalidCapsule)
        ));
        assert!(matches!(
            reenc(&w.med_rekey, blinded.header()),
            Err(Error::InvalidCapsule)
        ));
        // Blinding V and s consistently needs r; scaling all three still fails.
        let mut all = bytes.clone();
        let v = CompressedRistretto(bytes[cap_at + 32..cap_at + 64].try_into().unwrap())
            .decompress()
            .unwrap();
        let s = Scalar::from_canonical_bytes(bytes[cap_at + 64..cap_at + 96].try_into().unwrap())
            .unwrap();
        all[cap_at..cap_at + 32].copy_from_slice((t * e).compress().as_bytes());
        all[cap_at + 32..cap_at + 64].copy_from_slice((t * v).compress().as_bytes());
        all[cap_at + 64..cap_at + 96].copy_from_slice((t * s).as_bytes());
        let all = SealedPortion::from_bytes(&all).unwrap();
        assert!(matches!(
            reenc(&w.med_rekey, all.header()),
            Err(Error::InvalidCapsule)
        ));
    }
}

#[test]
fn batch_names_the_bad_capsule_and_passes_the_good_ones() {
    let w = world();
    let mut r = rng(30);
    let good: Vec<SealedPortion> = (0..8)
        .map(|i| {
            SealedPortion::seal_with_rng(
                w.medical.public(),
                RecordId::random_with_rng(&mut r),
                T0 + i,
                b"x",
                &mut r,
            )
            .unwrap()
        })
        .collect();
    let mut bad = good[3].to_bytes();
    bad[RECORD_ID_AT + 3] ^= 4;
    let bad = SealedPortion::from_bytes(&bad).unwrap();
    let mut headers: Vec<&PortionHeader> = good.iter().map(|s| s.header()).collect();
    headers.insert(5, bad.header());
    let out = reenc_batch(&w.med_rekey, &headers, &mut r);
    for (i, res) in out.iter().enumerate() {
        if i == 5 {
            assert!(matches!(res, Err(Error::InvalidCapsule)));
        } else {
            assert!(res.is_ok(), "header {i}");
        }
    }
    let verified = PortionHeader::verify_batch(&headers);
    assert_eq!(verified.iter().filter(|v| v.is_err()).count(), 1);
    assert!(verified[5].is_err());
}

#[test]
fn a_proof_from_a_lying_srs_is_caught() {
    let w = world();
    let rc = reenc_proof_os(&w.med_rekey, w.med_portion.header()).unwrap();
    rc.verify_proof(w.med_rekey.commitment()).unwrap();
    // Replace E' by another point: the proof no longer holds.
    let mut b = rc.to_bytes();
    let at = 6 + 96;
    let e2 = CompressedRistretto(b[at..at + 32].try_into().unwrap())
        .decompress()
        .unwrap();
    b[at..at + 32].copy_from_slice((e2 + e2).compress().as_bytes());
    let bad = ReCapsule::from_bytes(&b).unwrap();
    assert!(matches!(
        bad.verify_proof(w.med_rekey.commitment()),
        Err(Error::InvalidReEncryptionProof)
    ));
    assert!(matches!(
        w.med_portion.open_as_delegatee(&w.doctor, &bad),
        Err(Error::InvalidReEncryptionProof)
    ));
    // A proof checked against another key's commitment fails.
    let other = ReKey::generate(&w.medical, w.other.public());
    assert!(rc.verify_proof(other.commitment()).is_err());
    // No proof at all: verify_proof says so.
    let plain = reenc(&w.med_rekey, w.med_portion.header()).unwrap();
    assert!(plain.proof().is_none());
    assert!(matches!(
        plain.verify_proof(w.med_rekey.commitment()),
        Err(Error::InvalidReEncryptionProof)
    ));
}

/// A user can insist on a proof of correct re-encryption, and on the portion
/// key of its own grant whatever a header claims.
#[test]
fn a_delegatee_can_insist_on_proofs_and_on_its_portion_key() {
    let p = patient(31);
    let (lab, med) = (portion(&p, "lab"), portion(&p, "medical"));
    let u = user(31);
    let rk = ReKey::generate(&lab, u.public());
    let s = SealedPortion::seal(lab.public(), RecordId::random(), T0, b"x").unwrap();
    let opener = DelegateeOpener::new(&u, rk.ephemeral(), lab.public().key()).require_proof();
    let bare = reenc(&rk, s.header()).unwrap();
    assert!(matches!(
        s.open_as_delegatee_with(&opener, &bare),
        Err(Error::InvalidReEncryptionProof)
    ));
    let proved = reenc_proof_os(&rk, s.header()).unwrap();
    assert_eq!(s.open_as_delegatee_with(&opener, &proved).unwrap(), b"x");
    // Without the requirement the bare re-capsule opens.
    let lax = DelegateeOpener::new(&u, rk.ephemeral(), lab.public().key());
    assert_eq!(s.open_as_delegatee_with(&lax, &bare).unwrap(), b"x");
    // The lab grant's opener refuses a medical record, even with a medical re-capsule.
    let rk_med = ReKey::generate(&med, u.public());
    let sm = SealedPortion::seal(med.public(), RecordId::random(), T0, b"y").unwrap();
    let rcm = reenc(&rk_med, sm.header()).unwrap();
    let for_lab = DelegateeOpener::new(&u, rcm.ephemeral(), lab.public().key());
    assert!(matches!(
        sm.open_as_delegatee_with(&for_lab, &rcm),
        Err(Error::KeyMismatch)
    ));
}
