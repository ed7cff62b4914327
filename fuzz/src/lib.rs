//! The properties sesphr's fuzz targets check, one function per target.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, libFuzzer,
//! nightly) and by the stable replay of the committed corpus
//! (`tests/fuzz_corpus.rs`, part of `cargo test`), so both check exactly
//! the same properties:
//!
//! - no panic, whatever the bytes (a panic is the fuzzer's crash);
//! - decode → encode is the identity on every accepted input (the
//!   encodings are strict: one value, one encoding);
//! - an open never releases plaintext that is not the authentic plaintext
//!   (streamed chunks only once their tag verified, the whole only from
//!   the exact sealed bytes);
//! - a refused SRS call or a refused store leaves every state as it was;
//! - allocation stays bounded (libFuzzer's `-rss_limit_mb` and
//!   `-malloc_limit_mb` in `scripts/fuzz.sh`).
//!
//! A violated property panics with a message naming it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc,
    clippy::cast_possible_truncation,
    clippy::too_many_lines,
    unreachable_pub,
    missing_docs,
    dead_code
)]

use std::io::Read;
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use sesphr::consent::{
    GrantOptions, KeyProof, PatientRegistration, RevocationReceipt, SignedGrant, SignedRefusal,
    SignedRevocation,
};
use sesphr::model::{AuditEntry, Checkpoint, GrantKey};
use sesphr::rand_core::SeedableRng;
use sesphr::srs::{Purpose, Role, Srs};
use sesphr::store::ChainHead;
use sesphr::*;

/// The C ABI, compiled here from its sources (`ffi/src/abi/`): the C-ABI
/// crate builds only `libsesphr.so`/`.a`, no Rust library to link, and the
/// `c_abi` target calls the functions from Rust.
#[path = "../../ffi/src/abi/mod.rs"]
#[allow(missing_docs, unreachable_pub, dead_code, unused_imports)]
pub mod ffi;

/// A check: the bytes a fuzzer (or the corpus) gives.
pub type Check = fn(&[u8]);

/// Every target, by name (the file `fuzz/fuzz_targets/NAME.rs` and the
/// corpus directory `fuzz/corpus/NAME/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("capsule", capsule),
    ("header", header),
    ("sealed_portion", sealed_portion),
    ("rekey", rekey),
    ("recapsule", recapsule),
    ("patient_keys", patient_keys),
    ("portion_public_key", portion_public_key),
    ("small_encodings", small_encodings),
    ("key_proof", key_proof),
    ("registration", registration),
    ("signed_grant", signed_grant),
    ("signed_revocation", signed_revocation),
    ("signed_refusal", signed_refusal),
    ("revocation_receipt", revocation_receipt),
    ("share_commitments", share_commitments),
    ("key_share", key_share),
    ("audit_records", audit_records),
    ("open", open),
    ("stream_open", stream_open),
    ("threshold_open", threshold_open),
    ("srs_request", srs_request),
    ("store_rows", store_rows),
    ("c_abi", c_abi),
    ("hybrid", hybrid),
];

/// The check of the target `name`.
pub fn target(name: &str) -> Option<Check> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

// ---------------------------------------------------------------------------
// The fixture: one patient, one portion, one user, one grant, all seeded.

pub const T0: u64 = 1_700_000_000;

pub struct Fixture {
    pub patient: PatientKeys,
    pub label: PortionLabel,
    pub portion: PortionSecretKey,
    pub user_id: Identity,
    pub user: KeyPair,
    /// 100 bytes, one chunk.
    pub small_plaintext: Vec<u8>,
    pub small: SealedPortion,
    pub small_bytes: Vec<u8>,
    /// Two full chunks and a part (streaming).
    pub large_plaintext: Vec<u8>,
    pub large: SealedPortion,
    pub rekey: ReKey,
    pub recapsule: Vec<u8>,
    pub commitments: ShareCommitments,
    pub shares: Vec<ReKeyShare>,
    /// Node i's re-capsule share of `small`, with its proof.
    pub share_recapsules: Vec<Vec<u8>>,
    pub signed_grant: SignedGrant,
    pub signed_share_grant: SignedGrant,
    pub revocation: SignedRevocation,
    pub refusal: SignedRefusal,
    pub registration: PatientRegistration,
    pub user_proof: KeyProof,
}

pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let patient =
            PatientKeys::generate_with_rng(Identity::new("patient-fuzz").unwrap(), &mut rng(1));
        let label = PortionLabel::new("lab").unwrap();
        let portion = patient.portion_secret(&label, 0);
        let user_id = Identity::new("doctor-fuzz").unwrap();
        let user = KeyPair::generate_with_rng(&mut rng(2));
        let small_plaintext: Vec<u8> = (0..100u8).collect();
        let record = RecordId::from_slice(&[7; 16]).unwrap();
        let small = SealedPortion::seal_with_rng(
            portion.public(),
            record,
            T0,
            &small_plaintext,
            &mut rng(3),
        )
        .unwrap();
        let large_plaintext: Vec<u8> = (0..2 * CHUNK_LEN + 1000).map(|i| (i % 251) as u8).collect();
        let large = SealedPortion::seal_with_rng(
            portion.public(),
            RecordId::from_slice(&[8; 16]).unwrap(),
            T0,
            &large_plaintext,
            &mut rng(4),
        )
        .unwrap();
        let rekey = ReKey::generate_with_rng(&portion, user.public(), &mut rng(5));
        let verified = small.header().verify().unwrap();
        let recapsule = rekey
            .reencrypt_with_proof_with_rng(verified, &mut rng(6))
            .unwrap()
            .to_bytes();
        let (commitments, shares) = rekey.split_with_rng(2, 3, &mut rng(7)).unwrap();
        let share_recapsules = shares
            .iter()
            .map(|s| {
                s.reencrypt_with_proof_with_rng(small.header().verify().unwrap(), &mut rng(8))
                    .unwrap()
                    .to_bytes()
            })
            .collect();
        let options = GrantOptions {
            issued_at: Some(T0),
            ..Default::default()
        };
        let signed_grant = patient
            .sign_grant_with_rng(&label, 0, &user_id, &rekey, &options, &mut rng(9))
            .unwrap();
        let signed_share_grant = patient
            .sign_share_grant_with_rng(&label, 0, &user_id, &commitments, &options, &mut rng(10))
            .unwrap();
        let revocation = patient
            .sign_revocation_with_rng(&label, &user_id, T0 + 10, &mut rng(11))
            .unwrap();
        let refusal = patient
            .sign_refusal_with_rng(
                sesphr::consent::RequestId::from_slice(&[9; 16]).unwrap(),
                "not now",
                T0 + 5,
                &mut rng(12),
            )
            .unwrap();
        let registration =
            PatientRegistration::new_with_rng(&patient, &[(label.clone(), 0)], &mut rng(13))
                .unwrap();
        let user_proof = user.prove_possession(&user_id);
        let small_bytes = small.to_bytes();
        Fixture {
            patient,
            label,
            portion,
            user_id,
            user,
            small_plaintext,
            small,
            small_bytes,
            large_plaintext,
            large,
            rekey,
            recapsule,
            commitments,
            shares,
            share_recapsules,
            signed_grant,
            signed_share_grant,
            revocation,
            refusal,
            registration,
            user_proof,
        }
    })
}

/// An SRS on `store` that files grants of any age (the fixture's were
/// signed long ago).
pub fn ageless_srs(store: impl sesphr::store::Store + 'static, key: [u8; 32]) -> Srs {
    Srs::open(
        sesphr::srs::SrsConfig::new(store, sesphr::srs::StorageKey::from_bytes(&key))
            .grant_max_age(None),
    )
    .unwrap()
}

/// An SRS with the fixture's patient, user and grant.
pub fn fixture_srs(srs: Srs) -> Srs {
    let f = fixture();
    srs.register_patient(&f.registration).unwrap();
    srs.register_user(&f.user_id, Role::Doctor, f.user.public(), &f.user_proof)
        .unwrap();
    srs.grant(&f.signed_grant, f.rekey.clone()).unwrap();
    srs
}

// ---------------------------------------------------------------------------
// Input helpers.

/// Applies edits read from `edits` to `orig`: each 4 bytes are (position
/// u16 LE, operation, value); operations xor, insert, delete, truncate.
pub fn mutate(orig: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = orig.to_vec();
    for e in edits.chunks_exact(4) {
        let pos = usize::from(u16::from_le_bytes([e[0], e[1]]));
        let at = if out.is_empty() {
            0
        } else {
            pos % (out.len() + 1)
        };
        match e[2] % 4 {
            0 => {
                if let Some(b) = out.get_mut(at) {
                    *b ^= e[3] | 1;
                }
            }
            1 => out.insert(at, e[3]),
            2 => {
                if at < out.len() {
                    out.remove(at);
                }
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Piece sizes for streaming: each byte b gives 1 + b·613 bytes (up to
/// about 2.4 chunks), cycled; none given: one piece.
fn piece_sizes(sizes: &[u8]) -> impl FnMut() -> usize + '_ {
    let mut i = 0;
    move || {
        let s = sizes
            .get(i % sizes.len().max(1))
            .map_or(usize::MAX, |b| 1 + usize::from(*b) * 613);
        i += 1;
        s
    }
}

/// Asserts decode → encode is the identity.
macro_rules! identity {
    ($ty:ty, $data:expr) => {
        if let Ok(v) = <$ty>::from_bytes($data) {
            assert_eq!(
                &v.to_bytes()[..],
                $data,
                concat!(stringify!($ty), ": decode then encode changed the bytes")
            );
            Some(v)
        } else {
            None
        }
    };
}

// ---------------------------------------------------------------------------
// Decoders.

pub fn capsule(data: &[u8]) {
    identity!(Capsule, data);
}

pub fn header(data: &[u8]) {
    if let Some(h) = identity!(PortionHeader, data) {
        assert_eq!(h.encoded_len(), data.len(), "header: encoded_len");
        // A header verifies or not; a verified one re-encrypts.
        if let Ok(v) = h.verify() {
            let _ = fixture().rekey.reencrypt(v);
        }
    }
}

pub fn sealed_portion(data: &[u8]) {
    if let Some(s) = identity!(SealedPortion, data) {
        let f = fixture();
        if let Ok(pt) = s.open_as_owner(&f.portion) {
            assert!(
                data == f.small_bytes.as_slice() && pt == f.small_plaintext,
                "sealed_portion: opened something other than the authentic portion"
            );
        }
    }
}

pub fn rekey(data: &[u8]) {
    if let Some(rk) = identity!(ReKey, data) {
        let _ = rk.reencrypt(fixture().small.header().verify().unwrap());
    }
}

pub fn recapsule(data: &[u8]) {
    if let Some(rc) = identity!(ReCapsule, data) {
        let f = fixture();
        let _ = rc.verify_proof(f.rekey.commitment());
        if let Ok(pt) = f.small.open_as_delegatee(&f.user, &rc) {
            assert_eq!(pt, f.small_plaintext, "recapsule: wrong plaintext released");
        }
    }
}

pub fn patient_keys(data: &[u8]) {
    if data.starts_with(b"SPMK") {
        // A 0.1 export (no check value) re-exports as a checked backup of
        // the same keys.
        if let Ok(k) = PatientKeys::from_bytes(data) {
            let again = PatientKeys::from_bytes(&k.to_bytes()).unwrap();
            assert_eq!(
                *again.master_bytes(),
                *k.master_bytes(),
                "PatientKeys: SPMK"
            );
            assert_eq!(again.patient(), k.patient(), "PatientKeys: SPMK");
        }
    } else {
        identity!(PatientKeys, data);
    }
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(k) = PatientKeys::from_backup_text(text)
    {
        assert_eq!(
            PatientKeys::from_backup_text(&k.to_backup_text())
                .unwrap()
                .to_bytes(),
            k.to_bytes(),
            "PatientKeys: text"
        );
    }
}

pub fn portion_public_key(data: &[u8]) {
    identity!(PortionPublicKey, data);
}

/// The fixed-size and short encodings: keys, identities, labels, ids.
pub fn small_encodings(data: &[u8]) {
    if let Ok(k) = PublicKey::from_slice(data) {
        assert_eq!(&k.to_bytes()[..], data, "PublicKey");
    }
    if let Ok(k) = SecretKey::from_slice(data) {
        assert_eq!(&k.to_bytes()[..], data, "SecretKey");
        assert_eq!(
            KeyPair::from_secret(k).public(),
            &KeyPair::from_secret_bytes(data.try_into().unwrap())
                .unwrap()
                .public()
                .clone()
        );
    }
    if let Ok(l) = PortionLabel::from_bytes(data) {
        assert_eq!(l.as_str().as_bytes(), data, "PortionLabel");
    }
    if let Ok(r) = RecordId::from_slice(data) {
        assert_eq!(&r.to_bytes()[..], data, "RecordId");
    }
    if let Ok(r) = sesphr::consent::RequestId::from_slice(data) {
        assert_eq!(&r.to_bytes()[..], data, "RequestId");
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(id) = Identity::new(s)
    {
        assert_eq!(id.as_str(), s, "Identity");
    }
}

pub fn key_proof(data: &[u8]) {
    if let Some(p) = identity!(KeyProof, data) {
        let f = fixture();
        let ok = p.verify_user(&f.user_id, f.user.public()).is_ok();
        assert!(
            !ok || p == f.user_proof || data.len() == 64,
            "key_proof: verified"
        );
        let _ = p.verify_portion(f.patient.patient(), f.portion.public());
    }
}

pub fn registration(data: &[u8]) {
    if let Some(r) = identity!(PatientRegistration, data) {
        let _ = r.verify();
    }
}

pub fn signed_grant(data: &[u8]) {
    if let Some(g) = identity!(SignedGrant, data) {
        let f = fixture();
        if g.verify(&f.patient.consent_public()).is_ok() {
            // Only the patient's own grants verify under their key.
            assert!(
                data == f.signed_grant.to_bytes().as_slice()
                    || data == f.signed_share_grant.to_bytes().as_slice(),
                "signed_grant: a forged grant verified"
            );
        }
        let _ = g.covers(&f.rekey);
        let _ = g.covers_commitments(&f.commitments);
    }
}

/// Only the fixture's own signed object verifies under the patient's key.
macro_rules! only_the_patients_own {
    ($ty:ty, $field:ident, $data:expr) => {
        if let Some(v) = identity!($ty, $data) {
            let f = fixture();
            if v.verify(&f.patient.consent_public()).is_ok() {
                assert_eq!(
                    $data,
                    f.$field.to_bytes().as_slice(),
                    concat!(stringify!($ty), ": a forged object verified")
                );
            }
        }
    };
}

pub fn signed_revocation(data: &[u8]) {
    only_the_patients_own!(SignedRevocation, revocation, data);
}

pub fn signed_refusal(data: &[u8]) {
    only_the_patients_own!(SignedRefusal, refusal, data);
}

pub fn revocation_receipt(data: &[u8]) {
    if let Some(r) = identity!(RevocationReceipt, data) {
        let _ = r.is_for(&fixture().revocation);
    }
}

pub fn share_commitments(data: &[u8]) {
    if let Some(c) = identity!(ShareCommitments, data) {
        let f = fixture();
        for i in 1..=c.nodes().min(4) {
            let _ = c.verification_key(i);
        }
        let _ = ThresholdOpener::new_unauthenticated(&f.user, &c);
    }
}

pub fn key_share(data: &[u8]) {
    // from_bytes checks the share against its commitments.
    if let Some(s) = identity!(ReKeyShare, data) {
        assert!(s.verify().is_ok(), "key_share: decoded but does not verify");
        let _ = s.reencrypt(fixture().small.header().verify().unwrap());
    }
}

/// The SRS's stored records: audit entries, grant keys, checkpoints, the
/// chain head.
pub fn audit_records(data: &[u8]) {
    identity!(AuditEntry, data);
    identity!(GrantKey, data);
    identity!(Checkpoint, data);
    if let Ok(h) = ChainHead::from_bytes(data) {
        assert_eq!(
            h.to_bytes(),
            data,
            "ChainHead: decode then encode changed the bytes"
        );
    }
}

// ---------------------------------------------------------------------------
// Hybrid (post-quantum) portions.

/// A hybrid portion of the fixture's portion, its re-capsule (with proof)
/// for the fixture's user with an ML-KEM key, and the keys.
pub struct HybridFixture {
    pub srs: SrsPqSecretKey,
    pub key: HybridPortionKey,
    pub user: KeyPair,
    pub sealed: Vec<u8>,
    pub recapsule: Vec<u8>,
}

pub fn hybrid_fixture() -> &'static HybridFixture {
    static H: OnceLock<HybridFixture> = OnceLock::new();
    H.get_or_init(|| {
        let f = fixture();
        let srs = SrsPqSecretKey::new(2, PqSecretKey::from_seed(&[21; 64]));
        let key = f.portion.hybrid_public(&srs.public()).unwrap();
        let user = f.user.clone().with_pq(PqSecretKey::from_seed(&[22; 64]));
        let sealed = SealedPortion::seal_with_rng(
            &key,
            RecordId::from_slice(&[9; 16]).unwrap(),
            T0,
            &f.small_plaintext,
            &mut rng(23),
        )
        .unwrap();
        let recapsule = f
            .rekey
            .reencrypt_hybrid_with_rng(
                sealed.header().verify().unwrap(),
                &srs,
                user.pq_public().unwrap(),
                true,
                &mut rng(24),
            )
            .unwrap()
            .to_bytes();
        HybridFixture {
            srs,
            key,
            user,
            sealed: sealed.to_bytes(),
            recapsule,
        }
    })
}

/// `data[0]` picks: 0–2 decode an ML-KEM encapsulation key, an SRS
/// post-quantum key, a hybrid portion key (decode → encode is the
/// identity); 3–4 edit the hybrid sealed portion or its re-capsule (the
/// rest are edits, see [`mutate`]) and open as owner and as delegatee, and
/// re-encrypt as the SRS: nothing but the authentic plaintext is ever
/// released, and only from the authentic bytes.
pub fn hybrid(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(k) = PqPublicKey::from_bytes(rest) {
                assert_eq!(&k.as_bytes()[..], rest, "PqPublicKey: decode then encode");
            }
        }
        1 => {
            identity!(SrsPqPublicKey, rest);
        }
        2 => {
            identity!(HybridPortionKey, rest);
        }
        w => {
            let (f, h) = (fixture(), hybrid_fixture());
            let (sealed, rc) = if w == 3 {
                (mutate(&h.sealed, rest), h.recapsule.clone())
            } else {
                (h.sealed.clone(), mutate(&h.recapsule, rest))
            };
            let authentic_header = sealed == h.sealed;
            let authentic = authentic_header && rc == h.recapsule;
            let Ok(s) = SealedPortion::from_bytes(&sealed) else {
                assert!(
                    !authentic_header,
                    "hybrid: the authentic portion did not decode"
                );
                return;
            };
            match s.open_as_owner(&f.portion) {
                Ok(pt) => assert!(
                    authentic_header && pt == f.small_plaintext,
                    "hybrid: the owner opened an altered portion"
                ),
                Err(e) => assert!(!authentic_header, "hybrid: the owner failed: {e}"),
            }
            if let Ok(v) = s.header().verify() {
                let _ = f
                    .rekey
                    .reencrypt_hybrid(v, &h.srs, h.user.pq_public().unwrap());
            }
            if let Ok(rc) = ReCapsule::from_bytes(&rc) {
                match s.open_as_delegatee(&h.user, &rc) {
                    Ok(pt) => assert!(
                        authentic_header && pt == f.small_plaintext,
                        "hybrid: a delegatee opened an altered portion"
                    ),
                    Err(e) => assert!(!authentic, "hybrid: the delegatee failed: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Opening.

/// Owner and delegatee open of an edited sealed portion or re-capsule:
/// `data[0]` picks what is edited, the rest are edits (see [`mutate`]).
pub fn open(data: &[u8]) {
    let f = fixture();
    let Some((&which, edits)) = data.split_first() else {
        return;
    };
    let (sealed, rc) = if which % 2 == 0 {
        (mutate(&f.small_bytes, edits), f.recapsule.clone())
    } else {
        (f.small_bytes.clone(), mutate(&f.recapsule, edits))
    };
    let authentic = sealed == f.small_bytes;
    let Ok(s) = SealedPortion::from_bytes(&sealed) else {
        assert!(!authentic, "open: the authentic portion did not decode");
        return;
    };
    match s.open_as_owner(&f.portion) {
        Ok(pt) => assert!(
            authentic && pt == f.small_plaintext,
            "open: the owner opened an altered portion"
        ),
        Err(e) => assert!(
            !authentic,
            "open: the owner could not open the portion: {e}"
        ),
    }
    if let Ok(rc) = ReCapsule::from_bytes(&rc) {
        if let Ok(pt) = s.open_as_delegatee(&f.user, &rc) {
            assert!(
                authentic && pt == f.small_plaintext,
                "open: a delegatee opened an altered portion"
            );
        }
        let checked = DelegateeOpener::for_recapsule(&f.user, s.header(), &rc).require_proof();
        if let Ok(pt) = s.open_as_delegatee_with(&checked, &rc) {
            assert!(
                authentic && pt == f.small_plaintext,
                "open: a delegatee (proof required) opened an altered portion"
            );
        }
    }
}

/// A reader that hands out pieces of the given sizes.
struct Pieces<'a, F: FnMut() -> usize> {
    data: &'a [u8],
    next: F,
}

impl<F: FnMut() -> usize> Read for Pieces<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.next)().min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Streaming open of the three-chunk portion split at arbitrary places,
/// maybe edited: `data[0]` = number of 4-byte edits (mod 4), then the
/// edits, then piece sizes.
pub fn stream_open(data: &[u8]) {
    let f = fixture();
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let k = (usize::from(n) % 4 * 4).min(rest.len());
    let (edits, sizes) = rest.split_at(k);
    let orig = f.large.to_bytes();
    let sealed = mutate(&orig, edits);
    let authentic = sealed == orig;
    let header_len = f.large.header().encoded_len();

    // Pushed in pieces.
    let opened = PortionHeader::from_bytes(sealed.get(..header_len).unwrap_or(&sealed))
        .and_then(|h| PortionOpener::for_owner(&h, &f.portion));
    match opened {
        Err(_) => assert!(!authentic, "stream_open: the authentic header was refused"),
        Ok(mut op) => {
            let body = sealed.get(header_len..).unwrap_or_default();
            let mut next = piece_sizes(sizes);
            let mut out = Vec::new();
            let mut at = 0;
            let mut failed = false;
            while at < body.len() {
                let n = next().min(body.len() - at);
                failed |= op.push(&body[at..at + n], &mut out).is_err();
                at += n;
                assert!(
                    f.large_plaintext.starts_with(&out),
                    "stream_open: released plaintext that is not authentic"
                );
            }
            let done = !failed && op.finish(&mut out).is_ok();
            assert!(
                f.large_plaintext.starts_with(&out),
                "stream_open: released plaintext that is not authentic"
            );
            if done {
                assert!(
                    authentic && out == f.large_plaintext,
                    "stream_open: an altered portion opened completely"
                );
            } else {
                assert!(!authentic, "stream_open: the authentic portion failed");
            }
        }
    }

    // Read through `PortionReader` from a reader giving pieces.
    let reader = Pieces {
        data: &sealed,
        next: piece_sizes(sizes),
    };
    if let Ok(r) = PortionReader::new(reader).and_then(|r| r.open_as_owner(&f.portion)) {
        let mut out = Vec::new();
        let mut r = r;
        let mut buf = vec![0u8; 1 + usize::from(sizes.first().copied().unwrap_or(255)) * 97];
        let ok = loop {
            match r.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
            assert!(
                f.large_plaintext.starts_with(&out),
                "stream_open: the reader released plaintext that is not authentic"
            );
        };
        if ok {
            assert!(
                authentic && out == f.large_plaintext,
                "stream_open: the reader read an altered portion to its end"
            );
        } else {
            assert!(
                !authentic,
                "stream_open: the reader failed on the authentic portion"
            );
        }
    } else {
        assert!(
            !authentic,
            "stream_open: the reader refused the authentic header"
        );
    }
}

/// The delegatee's combination of re-capsule shares: `data[0]` picks
/// which of the three nodes answer (bits), `data[1]` their order, the rest
/// edits one of them (`data[2]` % 3 picks which).
pub fn threshold_open(data: &[u8]) {
    let f = fixture();
    let (sel, order, who, edits) = match data {
        [a, b, c, rest @ ..] => (*a, *b, usize::from(*c) % 3, rest),
        _ => return,
    };
    let mut nodes: Vec<usize> = (0..3).filter(|i| sel & (1 << i) != 0).collect();
    let n = nodes.len().max(1);
    nodes.rotate_left(usize::from(order) % n);
    if order & 0x80 != 0 {
        nodes.reverse();
    }
    if sel & 0x08 != 0 {
        // The same node twice.
        if let Some(&n) = nodes.first() {
            nodes.push(n);
        }
    }
    // Each answer tagged with the node that sent it, as a host does.
    let mut answers: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut altered = Vec::new();
    let mut honest = [false; 3];
    for &i in &nodes {
        let bytes = if i == who {
            mutate(&f.share_recapsules[i], edits)
        } else {
            f.share_recapsules[i].clone()
        };
        if bytes == f.share_recapsules[i] {
            honest[i] = true;
        } else {
            altered.push(i as u8 + 1);
        }
        answers.push((i as u8 + 1, bytes));
    }
    let tagged: Vec<(u8, &[u8])> = answers.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let verified = f
        .signed_share_grant
        .verify_commitments(&f.patient.consent_public(), &f.commitments)
        .unwrap();
    let opener = ThresholdOpener::new(&f.user, &verified).unwrap();
    let honest = honest.iter().filter(|&&h| h).count();
    for verified in [false, true] {
        let r = if verified {
            opener.open_verified(&f.small, &tagged)
        } else {
            opener.open(&f.small, &tagged)
        };
        match r {
            Ok(o) => {
                assert_eq!(
                    o.plaintext(),
                    f.small_plaintext.as_slice(),
                    "threshold_open: wrong plaintext released"
                );
                for b in o.bad_nodes() {
                    assert!(
                        altered.contains(b),
                        "threshold_open: an honest node {b} was named"
                    );
                }
            }
            // Robustness: two honest answers always open, whatever else.
            Err(e) => assert!(
                honest < 2,
                "threshold_open: {honest} honest answers did not open: {e}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// The SRS fed arbitrary requests.

/// Splits `data` into requests: each is (operation, length u8, payload).
fn requests(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        // A length of 255 takes the rest (long encodings).
        let n = if *len == 255 { tail.len() } else { n };
        out.push((*op, &tail[..n]));
        rest = &tail[n..];
    }
    out
}

/// A payload split in two at its first byte.
fn two(payload: &[u8]) -> (&[u8], &[u8]) {
    match payload.split_first() {
        Some((&at, rest)) => rest.split_at(usize::from(at).min(rest.len())),
        None => (&[], &[]),
    }
}

/// An in-memory SRS with the fixture's grant, fed a sequence of requests
/// made of fuzzed bytes. A refused request leaves the registry as it was;
/// the audit chain always verifies.
pub fn srs_request(data: &[u8]) {
    let f = fixture();
    let srs = fixture_srs(ageless_srs(sesphr::store::MemoryStore::new(), [9; 32]));
    let header = f.small.header().to_bytes();
    for (op, payload) in requests(data).into_iter().take(8) {
        let before = srs.registry();
        let result: Result<(), String> = match op % 9 {
            0 => srs
                .reencrypt_encoded(&f.user_id, payload, Purpose::Treatment)
                .map(|rc| {
                    if payload == header.as_slice() {
                        assert_eq!(
                            f.small.open_as_delegatee(&f.user, &rc).unwrap(),
                            f.small_plaintext
                        );
                    }
                })
                .map_err(|e| e.to_string()),
            1 => PatientRegistration::from_bytes(payload)
                .map_err(|e| e.to_string())
                .and_then(|r| srs.register_patient(&r).map_err(|e| e.to_string())),
            2 => {
                let (g, k) = two(payload);
                match (SignedGrant::from_bytes(g), ReKey::from_bytes(k)) {
                    (Ok(g), Ok(k)) => srs.grant(&g, k).map_err(|e| e.to_string()),
                    _ => Err("undecodable".into()),
                }
            }
            3 => SignedRevocation::from_bytes(payload)
                .map_err(|e| e.to_string())
                .and_then(|r| srs.revoke(&r).map(|_| ()).map_err(|e| e.to_string())),
            4 => SignedRefusal::from_bytes(payload)
                .map_err(|e| e.to_string())
                .and_then(|r| srs.refuse_request(&r).map_err(|e| e.to_string())),
            5 => {
                let (k, p) = two(payload);
                match (PublicKey::from_slice(k), KeyProof::from_bytes(p)) {
                    (Ok(k), Ok(p)) => srs
                        .register_user(&Identity::new("fuzzed-user").unwrap(), Role::Family, &k, &p)
                        .map_err(|e| e.to_string()),
                    _ => Err("undecodable".into()),
                }
            }
            6 => {
                let (who, why) = two(payload);
                match std::str::from_utf8(who).map(Identity::new) {
                    Ok(Ok(who)) => srs
                        .request_access(
                            &who,
                            f.patient.patient(),
                            &f.label,
                            Purpose::Research,
                            &String::from_utf8_lossy(why),
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    _ => Err("undecodable".into()),
                }
            }
            7 => {
                let (g, s) = two(payload);
                match (SignedGrant::from_bytes(g), ReKeyShare::from_bytes(s)) {
                    (Ok(g), Ok(s)) => srs.grant_share(&g, s).map_err(|e| e.to_string()),
                    _ => Err("undecodable".into()),
                }
            }
            _ => PatientRegistration::from_bytes(payload)
                .map_err(|e| e.to_string())
                .and_then(|r| srs.add_portions(&r).map_err(|e| e.to_string())),
        };
        if let Err(e) = result {
            assert_eq!(
                srs.registry(),
                before,
                "srs_request: a refused request ({e}) changed the registry"
            );
        }
        srs.verify_audit()
            .expect("srs_request: the audit chain broke");
    }
    srs.verify_consent()
        .expect("srs_request: the registry no longer matches signed consent");
}

// ---------------------------------------------------------------------------
// The SRS opened on a database whose rows are fuzzed.

const TABLES: &[(&str, &[&str])] = &[
    (
        "registry",
        &["kind", "key", "generation", "body", "secret", "mac"],
    ),
    ("audit", &["seq", "entry", "hash"]),
    ("checkpoints", &["seq", "checkpoint"]),
    ("meta", &["key", "value"]),
    ("disclosures", &["patient", "time", "seq"]),
];

pub const STORE_KEY: [u8; 32] = [42; 32];

/// A SQLite database holding an SRS with the fixture's state (registered,
/// granted, re-encrypted, a request refused, revoked, checkpointed).
fn template() -> &'static (tempfile::TempDir, std::path::PathBuf) {
    static T: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    T.get_or_init(|| {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.db");
        let srs = fixture_srs(ageless_srs(
            sesphr::store::SqliteStore::open(&path).unwrap(),
            STORE_KEY,
        ));
        srs.reencrypt(&f.user_id, f.small.header(), Purpose::Treatment)
            .unwrap();
        srs.checkpoint().unwrap();
        srs.revoke(
            &f.patient
                .sign_revocation_with_rng(&f.label, &f.user_id, srs.now(), &mut rng(14))
                .unwrap(),
        )
        .unwrap();
        let _ = srs.reencrypt(&f.user_id, f.small.header(), Purpose::Treatment);
        drop(srs);
        (dir, path)
    })
}

/// `data[0]` picks a table, `data[1]` a row, `data[2]` a column (or, with
/// its top bit, deletes the row); the rest is the new value (a blob, or an
/// integer for integer columns). Then an SRS opens the database: it opens
/// and works, or it refuses with a typed error; a change to an
/// authenticated row (registry, audit) is never accepted silently.
pub fn store_rows(data: &[u8]) {
    let f = fixture();
    let [t, r, c, value @ ..] = data else {
        return;
    };
    let (dir, template) = template();
    let path = dir
        .path()
        .join(format!("fuzz-{:?}.db", std::thread::current().id()));
    let _ = std::fs::remove_file(&path);
    std::fs::copy(template, &path).unwrap();
    let (table, columns) = TABLES[usize::from(*t) % TABLES.len()];
    let changed = {
        let db = rusqlite::Connection::open(&path).unwrap();
        let rows: Vec<i64> = db
            .prepare(&format!("SELECT rowid FROM {table}"))
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .unwrap_or_default();
        // WITHOUT ROWID tables: address rows by their order instead.
        let key_order = format!("SELECT * FROM {table}");
        let n = if rows.is_empty() {
            db.prepare(&key_order)
                .and_then(|mut s| Ok(s.query_map([], |_| Ok(()))?.count()))
                .unwrap_or(0usize)
        } else {
            rows.len()
        };
        if n == 0 {
            false
        } else {
            let row = usize::from(*r) % n;
            let cond = format!("rowid = (SELECT rowid FROM {table} LIMIT 1 OFFSET {row})");
            let where_ = if rows.is_empty() {
                // All WITHOUT ROWID tables here have their key first.
                let pk = match table {
                    "registry" => "(kind, key)",
                    _ => "(patient, time, seq)",
                };
                format!(
                    "{pk} IN (SELECT {} FROM {table} LIMIT 1 OFFSET {row})",
                    &pk[1..pk.len() - 1]
                )
            } else {
                cond
            };
            let before: Vec<u8> = dump(&db, table);
            let res = if c & 0x80 != 0 {
                db.execute(&format!("DELETE FROM {table} WHERE {where_}"), [])
            } else {
                let col = columns[usize::from(*c) % columns.len()];
                let integer = matches!(col, "kind" | "generation" | "seq" | "time");
                if integer {
                    let mut b = [0u8; 8];
                    let k = value.len().min(8);
                    b[..k].copy_from_slice(&value[..k]);
                    db.execute(
                        &format!("UPDATE OR IGNORE {table} SET {col} = ?1 WHERE {where_}"),
                        [i64::from_le_bytes(b)],
                    )
                } else {
                    db.execute(
                        &format!("UPDATE OR IGNORE {table} SET {col} = ?1 WHERE {where_}"),
                        [value],
                    )
                }
            };
            res.is_ok() && dump(&db, table) != before
        }
    };
    let authenticated = matches!(table, "registry" | "audit");
    match Srs::open_sqlite(&path, sesphr::srs::StorageKey::from_bytes(&STORE_KEY)) {
        Err(_) => {}
        Ok(srs) => {
            let audit = srs.verify_audit();
            let consent = srs.verify_consent();
            let _ = srs.registry();
            let _ = srs.reencrypt(&f.user_id, f.small.header(), Purpose::Treatment);
            let _ = srs.audit_entries(0, 100);
            if changed && authenticated {
                assert!(
                    audit.is_err() || consent.is_err(),
                    "store_rows: an altered {table} row was accepted"
                );
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Every row of `table`, as bytes, in a stable order.
fn dump(db: &rusqlite::Connection, table: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(mut s) = db.prepare(&format!("SELECT quote(t.*) FROM {table} t")) {
        let _ = s.query_map([], |row| row.get::<_, String>(0)).map(|rows| {
            for r in rows.flatten() {
                out.extend_from_slice(r.as_bytes());
            }
        });
    }
    out
}

// ---------------------------------------------------------------------------
// The C ABI's byte inputs.

/// The bytes of a returned buffer, then frees it.
#[allow(unsafe_code)]
fn take(buf: *mut self::ffi::sesphr_buffer) -> Vec<u8> {
    use self::ffi::*;
    if buf.is_null() {
        return Vec::new();
    }
    let (p, n) = (sesphr_buffer_data(buf), sesphr_buffer_len(buf));
    let v = if p.is_null() {
        Vec::new()
    } else {
        // SAFETY: a buffer the library returned holds `n` readable bytes at
        // `p` until it is freed below.
        unsafe { std::slice::from_raw_parts(p, n) }.to_vec()
    };
    sesphr_buffer_free(buf);
    v
}

/// The C functions that take bytes, given fuzzed bytes (`data[0]` picks
/// the function, the rest is the input, an edit of a valid input when
/// `data[0]`'s top bit is set). Every call returns a result code; OK only
/// for what the Rust API accepts too.
pub fn c_abi(data: &[u8]) {
    use self::ffi::*;
    use std::ptr::null_mut;
    let f = fixture();
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let ok = sesphr_result::Ok;
    let input: Vec<u8> = if op & 0x80 != 0 {
        let base: &[u8] = match op % 4 {
            0 => &f.small_bytes,
            1 => &f.recapsule,
            2 => &f.share_recapsules[0],
            _ => &f.small_bytes[..f.small.header().encoded_len()],
        };
        mutate(base, rest)
    } else {
        rest.to_vec()
    };
    let (ptr, len) = (input.as_ptr(), input.len());
    let master = f.patient.master_bytes();
    let id = f.patient.patient().as_str().as_bytes();
    let mut keys = null_mut();
    assert_eq!(
        sesphr_patient_keys_from_master(id.as_ptr(), id.len(), master.as_ptr(), 32, &mut keys),
        ok
    );
    let secret = f.user.secret().to_bytes();
    let mut kp = null_mut();
    assert_eq!(sesphr_keypair_from_secret(secret.as_ptr(), 32, &mut kp), ok);
    match op % 8 {
        0 => {
            let mut out = null_mut();
            let r = sesphr_open_as_owner(keys, ptr, len, &mut out);
            let pt = take(out);
            assert_eq!(
                r == ok,
                SealedPortion::from_bytes(&input)
                    .and_then(|s| s.open_as_owner(&f.portion))
                    .is_ok()
            );
            if r == ok {
                assert!(
                    input == f.small_bytes && pt == f.small_plaintext,
                    "c_abi: opened an altered portion"
                );
            }
        }
        1 => {
            let mut out = null_mut();
            let r = sesphr_open_as_delegatee(
                kp,
                f.small_bytes.as_ptr(),
                f.small_bytes.len(),
                ptr,
                len,
                &mut out,
            );
            let pt = take(out);
            if r == ok {
                assert_eq!(pt, f.small_plaintext, "c_abi: wrong plaintext");
            }
        }
        2 => {
            // The input as node 1's answer beside node 2's honest one.
            let c = f.commitments.to_bytes();
            let g = f.signed_share_grant.to_bytes();
            let ck = f.patient.consent_public().to_bytes();
            let honest = &f.share_recapsules[1];
            let ptrs = [ptr, honest.as_ptr()];
            let lens = [len, honest.len()];
            let from = [1u8, 2];
            for verify_first in [0, 1] {
                let (mut out, mut bad) = (null_mut(), null_mut());
                let mut verdicts = [sesphr_result::Panic; 2];
                let r = sesphr_threshold_open(
                    kp,
                    g.as_ptr(),
                    g.len(),
                    ck.as_ptr(),
                    ck.len(),
                    c.as_ptr(),
                    c.len(),
                    f.small_bytes.as_ptr(),
                    f.small_bytes.len(),
                    ptrs.as_ptr(),
                    lens.as_ptr(),
                    from.as_ptr(),
                    2,
                    verify_first,
                    &mut out,
                    &mut bad,
                    verdicts.as_mut_ptr(),
                );
                if r == ok || r == sesphr_result::TooFewShares {
                    assert_eq!(verdicts[1], ok, "c_abi: the honest answer was set aside");
                }
                let (pt, bad) = (take(out), take(bad));
                if r == ok {
                    assert_eq!(
                        pt, f.small_plaintext,
                        "c_abi: threshold open, wrong plaintext"
                    );
                    assert!(!bad.contains(&2), "c_abi: the honest node was named");
                }
            }
        }
        3 => {
            let mut n = 0usize;
            let r = sesphr_header_len(ptr, len, &mut n);
            assert_eq!(
                (r == ok).then_some(n),
                PortionHeader::len_from_prefix(&input).ok(),
                "c_abi: header length"
            );
            let mut rid = [0u8; 16];
            let (mut epoch, mut created) = (0u32, 0u64);
            let (mut lab, mut pk) = (null_mut(), null_mut());
            let r = sesphr_header_info(
                ptr,
                len,
                rid.as_mut_ptr(),
                16,
                &mut epoch,
                &mut created,
                &mut lab,
                &mut pk,
            );
            let (lab, pk) = (take(lab), take(pk));
            if r == ok {
                // A header, or a sealed portion that starts with one.
                let hl = PortionHeader::len_from_prefix(&input).unwrap();
                let h = PortionHeader::from_bytes(&input[..hl]).unwrap();
                let cx = h.context();
                assert_eq!(lab, cx.label().as_str().as_bytes(), "c_abi: header label");
                assert_eq!(
                    (epoch, created),
                    (cx.epoch(), cx.created_at()),
                    "c_abi: header info"
                );
                assert!(!pk.is_empty(), "c_abi: header key");
            }
        }
        4 => {
            let mut out = null_mut();
            let r = sesphr_portion_header(ptr, len, &mut out);
            let h = take(out);
            if r == ok {
                assert!(input.starts_with(&h), "c_abi: header not a prefix");
            }
        }
        5 => {
            // Streaming opener fed the input in two pieces.
            let hl = f.small.header().encoded_len();
            let mut op_ = null_mut();
            let r = sesphr_opener_new_owner(keys, ptr, len.min(hl), &mut op_);
            if r == ok {
                let body = input.get(hl..).unwrap_or_default();
                let mid = body.len() / 2;
                let mut released = Vec::new();
                for piece in [&body[..mid], &body[mid..]] {
                    let mut out = null_mut();
                    let _ = sesphr_opener_update(op_, piece.as_ptr(), piece.len(), &mut out);
                    released.extend(take(out));
                }
                let mut out = null_mut();
                let fin = sesphr_opener_finish(op_, &mut out);
                released.extend(take(out));
                assert!(
                    f.small_plaintext.starts_with(&released),
                    "c_abi: streamed plaintext not authentic"
                );
                if fin == ok {
                    assert!(
                        input == f.small_bytes,
                        "c_abi: streamed an altered portion to its end"
                    );
                }
                sesphr_opener_free(op_);
            }
        }
        6 => {
            let mut out = null_mut();
            let r = sesphr_keypair_from_secret(ptr, len, &mut out);
            assert_eq!(r == ok, SecretKey::from_slice(&input).is_ok());
            sesphr_keypair_free(out);
            let mut k = null_mut();
            let r = sesphr_patient_keys_import(ptr, len, &mut k);
            assert_eq!(r == ok, PatientKeys::from_bytes(&input).is_ok());
            sesphr_patient_keys_free(k);
        }
        _ => {
            let mut index = 0u8;
            let r = sesphr_share_verify(ptr, len, &mut index);
            let rust = ReKeyShare::from_bytes(&input);
            assert_eq!(
                r == ok,
                rust.is_ok(),
                "c_abi: share check differs from Rust"
            );
            if let Ok(s) = rust {
                assert_eq!(index, s.index());
            }
        }
    }
    sesphr_keypair_free(kp);
    sesphr_patient_keys_free(keys);
}

// ---------------------------------------------------------------------------
// Seeds: the committed vectors and the fixture's valid encodings.

const VECTORS: &str = include_str!("../../tests/vectors/sesphr-v1.txt");

fn vector_values(key: &str) -> Vec<Vec<u8>> {
    VECTORS
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| {
            (0..v.len() / 2)
                .map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

/// The seed inputs of each target.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let f = fixture();
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut add = |t: &'static str, v: Vec<u8>| out.push((t, v));
    for (t, keys) in [
        ("header", &["header"][..]),
        ("sealed_portion", &["sealed_portion"]),
        ("rekey", &["rekey"]),
        (
            "recapsule",
            &[
                "recapsule",
                "recapsule_with_proof",
                "recapsule_share_1",
                "recapsule_share_3_with_proof",
            ],
        ),
        ("patient_keys", &["patient_keys"]),
        ("portion_public_key", &["portion_public_key"]),
        (
            "small_encodings",
            &[
                "user_public",
                "user_secret",
                "label",
                "record_id",
                "patient_id",
                "escrow_public",
            ],
        ),
        ("key_proof", &["user_key_proof"]),
        ("registration", &["registration"]),
        ("signed_grant", &["signed_grant", "signed_share_grant"]),
        ("signed_revocation", &["signed_revocation"]),
        ("share_commitments", &["share_commitments"]),
        ("key_share", &["key_share_1", "key_share_2", "key_share_3"]),
    ] {
        for k in keys {
            for v in vector_values(k) {
                add(t, v);
            }
        }
    }
    for h in vector_values("header") {
        if let Ok(h) = PortionHeader::from_bytes(&h) {
            add("capsule", h.capsule().to_bytes().to_vec());
        }
    }
    add("sealed_portion", f.small_bytes.clone());
    add("recapsule", f.recapsule.clone());
    add("signed_grant", f.signed_grant.to_bytes());
    add("signed_revocation", f.revocation.to_bytes());
    add("signed_refusal", f.refusal.to_bytes());
    add("key_proof", f.user_proof.to_bytes().to_vec());
    add("registration", f.registration.to_bytes());
    // The SRS's own records.
    let srs = fixture_srs(ageless_srs(sesphr::store::MemoryStore::new(), [9; 32]));
    srs.reencrypt(&f.user_id, f.small.header(), Purpose::Treatment)
        .unwrap();
    let receipt = srs.revoke(&f.revocation).unwrap();
    add("revocation_receipt", receipt.to_bytes());
    for e in srs.audit_entries(0, 16).unwrap() {
        add("audit_records", e.to_bytes());
    }
    add("audit_records", srs.checkpoint().unwrap().to_bytes());
    // Opening: no edit, then one edit of each kind.
    for which in 0..2u8 {
        add("open", vec![which]);
        add("open", vec![which, 40, 0, 0, 1]);
    }
    let h = hybrid_fixture();
    let mut v = vec![0];
    v.extend_from_slice(h.key.portion_pq().as_bytes());
    add("hybrid", v);
    let mut v = vec![1];
    v.extend_from_slice(&h.srs.public().to_bytes());
    add("hybrid", v);
    let mut v = vec![2];
    v.extend_from_slice(&h.key.to_bytes());
    add("hybrid", v);
    add("hybrid", vec![3]);
    add("hybrid", vec![4]);
    add("hybrid", vec![3, 0x10, 0x09, 0, 1]);
    add("hybrid", vec![4, 0x00, 0x05, 0, 1]);
    // Hybrid encodings through the general decoders too.
    if let Ok(s) = SealedPortion::from_bytes(&h.sealed) {
        add("header", s.header().to_bytes());
    }
    add("recapsule", h.recapsule.clone());
    // A key and a header split 2-of-3 among threshold nodes.
    let nodes: Vec<SrsPqPublicKey> = (31..34u8)
        .map(|s| SrsPqSecretKey::new(1, PqSecretKey::from_seed(&[s; 64])).public())
        .collect();
    if let Ok(split) = fixture().portion.hybrid_public_split(2, &nodes) {
        let mut v = vec![2];
        v.extend_from_slice(&split.to_bytes());
        add("hybrid", v);
        let rid = RecordId::from_bytes([10; 16]);
        if let Ok(s) = SealedPortion::seal_with_rng(&split, rid, T0, b"x", &mut rng(25)) {
            add("header", s.header().to_bytes());
        }
    }
    add("stream_open", vec![0]);
    add("stream_open", vec![0, 0, 1, 255, 107]);
    add("stream_open", vec![1, 0x30, 0x10, 0, 0x55, 3, 200]);
    add("threshold_open", vec![0b011, 0, 0]);
    add("threshold_open", vec![0b111, 1, 2, 100, 0, 0, 7]);
    // The SRS: the valid header, then a replayed grant.
    let mut req = vec![0, 255];
    req.extend_from_slice(&f.small.header().to_bytes());
    add("srs_request", req);
    let g = f.signed_grant.to_bytes();
    let mut req = vec![2, 255, u8::try_from(g.len()).unwrap_or(255)];
    req.extend_from_slice(&g);
    req.extend_from_slice(&f.rekey.to_bytes());
    add("srs_request", req);
    let mut req = vec![3, 255];
    req.extend_from_slice(&f.revocation.to_bytes());
    add("srs_request", req);
    for t in 0..5u8 {
        add("store_rows", vec![t, 0, 3, 1, 2, 3]);
        add("store_rows", vec![t, 1, 0x80]);
    }
    for op in 0..8u8 {
        add("c_abi", vec![op]);
        add("c_abi", vec![op | 0x80]);
        add("c_abi", vec![op | 0x80, 3, 0, 0, 1]);
    }
    out
}
