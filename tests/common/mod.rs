//! Shared fixtures for the integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]
#![allow(unreachable_pub)]

use chacha20::ChaCha20Rng;
use sesphr::rand_core::SeedableRng;
use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, PortionSecretKey};

/// A reproducible RNG.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

pub fn label(s: &str) -> PortionLabel {
    PortionLabel::new(s).unwrap()
}

pub fn patient(seed: u8) -> PatientKeys {
    PatientKeys::generate_with_rng(
        Identity::new(format!("patient-{seed}")).unwrap(),
        &mut rng(seed),
    )
}

pub fn portion(p: &PatientKeys, l: &str) -> PortionSecretKey {
    p.portion_secret(&label(l), 0)
}

pub fn user(seed: u8) -> KeyPair {
    KeyPair::generate_with_rng(&mut rng(seed.wrapping_add(100)))
}

/// Deterministic plaintext of `len` bytes.
pub fn plaintext(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| ((i % 251) as u8) ^ salt).collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub const T0: u64 = 1_700_000_000;

/// A vector file's cases, in file order: the name, then (key, value) pairs.
pub type VectorCases = Vec<(String, Vec<(String, String)>)>;

/// Parses a vector file (`tests/vectors/*.txt`): `[case NAME]` starts a
/// case, `key = value` lines follow, `#` lines are comments.
pub fn parse_vectors(text: &str) -> VectorCases {
    let mut out: VectorCases = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("[case ")
            .and_then(|l| l.strip_suffix(']'))
        {
            out.push((name.to_string(), Vec::new()));
        } else {
            let (k, v) = line.split_once('=').unwrap();
            out.last_mut()
                .unwrap()
                .1
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// One case of a vector file: its entries by key.
pub struct VectorCase<'a>(pub &'a [(String, String)]);

impl VectorCase<'_> {
    /// The value of `key` as written.
    pub fn get(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no entry {key}"))
    }

    /// Whether the case has an entry `key`.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The value of `key`, hex decoded.
    pub fn bytes(&self, key: &str) -> Vec<u8> {
        unhex(&self.get(key))
    }
}

/// Renders cases after the file's comment `header`.
pub fn render_vectors(header: &str, cases: Vec<(&str, Vec<(&'static str, String)>)>) -> String {
    let mut s = String::from(header);
    for (name, entries) in cases {
        s.push_str(&format!("\n[case {name}]\n"));
        for (k, v) in entries {
            s.push_str(&format!("{k} = {v}\n"));
        }
    }
    s
}

/// The committed vector file at `path` is exactly `fresh` (rewritten first
/// when `SESPHR_REGENERATE_VECTORS` is set), with `count` cases; a
/// difference names the case and entry.
pub fn check_vectors(path: &str, fresh: &str, count: usize) {
    if std::env::var_os("SESPHR_REGENERATE_VECTORS").is_some() {
        std::fs::write(path, fresh).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap();
    let (a, b) = (parse_vectors(&committed), parse_vectors(fresh));
    assert_eq!(a.len(), count);
    for ((na, ea), (nb, eb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert_eq!(ea.len(), eb.len(), "case {na}");
        for ((ka, va), (kb, vb)) in ea.iter().zip(eb) {
            assert_eq!(ka, kb);
            assert_eq!(va, vb, "case {na}, entry {ka}");
        }
    }
    assert_eq!(committed, fresh);
}

use sesphr::{PortionHeader, ReCapsule, ReKey};

/// Re-encrypts through the verified-header typestate, the only way in.
pub fn reenc(rk: &ReKey, h: &PortionHeader) -> sesphr::Result<ReCapsule> {
    rk.reencrypt(h.verify()?)
}

/// As [`reenc`], with a proof (OS RNG).
pub fn reenc_proof_os(rk: &ReKey, h: &PortionHeader) -> sesphr::Result<ReCapsule> {
    rk.reencrypt_with_proof(h.verify()?)
}

/// As [`reenc`], with a proof and the given RNG.
pub fn reenc_proof<R: sesphr::rand_core::CryptoRng + ?Sized>(
    rk: &ReKey,
    h: &PortionHeader,
    rng: &mut R,
) -> sesphr::Result<ReCapsule> {
    rk.reencrypt_with_proof_with_rng(h.verify()?, rng)
}

/// Many headers: one batch verification, then one re-encryption each.
pub fn reenc_batch<R: sesphr::rand_core::CryptoRng + ?Sized>(
    rk: &ReKey,
    hs: &[&PortionHeader],
    rng: &mut R,
) -> Vec<sesphr::Result<ReCapsule>> {
    PortionHeader::verify_batch_with_rng(hs, rng)
        .into_iter()
        .map(|v| rk.reencrypt(v?))
        .collect()
}

#[cfg(feature = "srs")]
mod consenting;
#[cfg(feature = "srs")]
#[allow(unused_imports)]
pub use consenting::*;

/// A delegatee's threshold opener, its commitments checked against the
/// share grant the patient signed.
pub fn checked_opener(
    user: &KeyPair,
    grant: &sesphr::consent::SignedGrant,
    consent_key: &ed25519_dalek::VerifyingKey,
    commitments: &sesphr::ShareCommitments,
) -> sesphr::ThresholdOpener {
    let verified = grant.verify_commitments(consent_key, commitments).unwrap();
    sesphr::ThresholdOpener::new(user, &verified).unwrap()
}
