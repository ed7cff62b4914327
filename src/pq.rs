//! Hybrid post-quantum sealing (DESIGN §16, SPEC §4.6): ML-KEM-768
//! (FIPS 203) keys, the stanzas that carry a portion's post-quantum secret
//! `σ` beside the capsule, and the SRS's re-wrap of `σ` to a granted user.
//!
//! A stanza is `ML-KEM ciphertext (1088) ‖ wrap (48)`: the encapsulation's
//! shared key `ss` gives, by HKDF, a one-time ChaCha20-Poly1305 key under
//! which `σ` is sealed (nonce zero) with the portion's base context as
//! associated data, so a stanza moved to another portion or record no longer
//! opens. Key generation is deterministic from a 64-byte seed `d ‖ z`
//! (FIPS 203 `ML-KEM.KeyGen_internal`); encapsulation with a caller's RNG
//! draws its 32-byte `m` from it (`ML-KEM.Encaps_internal`), so vectors
//! replay.
//!
//! Backends: RustCrypto's `ml-kem` everywhere (key generation from seeds,
//! encapsulation from a given RNG; pure Rust, wasm32). With the `aws-lc`
//! feature, AWS-LC decapsulates (same result: decapsulation is
//! deterministic) and encapsulates when sealing draws from the operating
//! system ([`Draw::System`]: its DRBG, seeded by the OS); the two
//! interoperate (tested both ways).
//! Decapsulation never fails: a wrong or altered ciphertext yields a
//! pseudorandom `ss` (implicit rejection), the wrap does not open, and the
//! caller sees [`Error::DecryptionFailed`].

use core::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Tag};
use curve25519_dalek::scalar::Scalar;
use ml_kem::kem::Decapsulate;
use ml_kem::{KeyExport, MlKem768};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use crate::ct::{public, public_bytes};
use crate::encoding::{Reader, frame, hex, magic};
use crate::error::{Error, Result};
use crate::hash::{hkdf_bytes, tag};
use crate::rng::os_rng;

/// Bytes of an ML-KEM-768 encapsulation key.
pub const PQ_PUBLIC_KEY_LEN: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
pub const PQ_CIPHERTEXT_LEN: usize = 1088;
/// Bytes of a seed `d ‖ z`.
pub const PQ_SEED_LEN: usize = 64;
/// Bytes of the post-quantum secret `σ`.
pub(crate) const SIGMA_LEN: usize = 32;
/// Bytes of a wrapped `σ` (ciphertext and tag).
pub(crate) const WRAP_LEN: usize = SIGMA_LEN + 16;
/// Bytes of a stanza: ciphertext, then wrap.
pub const PQ_STANZA_LEN: usize = PQ_CIPHERTEXT_LEN + WRAP_LEN;

/// The role of a stanza, first byte of its wrap's associated data and of its
/// key derivation's info: a stanza made for one role opens in no other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Role {
    /// To the portion's key (the patient's own path).
    Owner = 1,
    /// To the SRS's key (the delegate path).
    Srs = 2,
    /// Re-wrapped by the SRS to a granted user.
    Delegatee = 3,
}

type EncapsulationKey = ml_kem::EncapsulationKey<MlKem768>;
type DecapsulationKey = ml_kem::DecapsulationKey<MlKem768>;

/// Where an encapsulation's randomness comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Draw {
    /// The operating system (the public functions without an RNG): AWS-LC
    /// encapsulates when built with it.
    System,
    /// The caller's RNG (`*_with_rng`): `m` is drawn from it, so the bytes
    /// replay.
    Given,
}

/// AWS-LC's ML-KEM-768 (native builds with the `aws-lc` feature).
#[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
mod fast {
    use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
    use zeroize::{Zeroize, Zeroizing};

    pub(super) type Public = EncapsulationKey;
    pub(super) type Secret = DecapsulationKey;

    pub(super) fn public(bytes: &[u8]) -> Option<Public> {
        EncapsulationKey::new(&ML_KEM_768, bytes).ok()
    }

    /// AWS-LC imports only the expanded form (2,400 bytes), which it
    /// cleanses when the key is freed; the copy made here is wiped at once.
    pub(super) fn secret(key: &super::DecapsulationKey) -> Option<Secret> {
        #[allow(deprecated)]
        let mut expanded = ml_kem::ExpandedKeyEncoding::to_expanded_bytes(key);
        let k = DecapsulationKey::new(&ML_KEM_768, expanded.as_slice()).ok();
        expanded.as_mut_slice().zeroize();
        k
    }

    pub(super) fn encapsulate(
        key: &Public,
    ) -> Option<([u8; super::PQ_CIPHERTEXT_LEN], Zeroizing<[u8; 32]>)> {
        let (ct, ss) = key.encapsulate().ok()?;
        let ct: [u8; super::PQ_CIPHERTEXT_LEN] = ct.as_ref().try_into().ok()?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ss.as_ref().get(..32)?);
        Some((ct, out))
    }

    pub(super) fn decapsulate(
        key: &Secret,
        ct: &[u8; super::PQ_CIPHERTEXT_LEN],
    ) -> Option<Zeroizing<[u8; 32]>> {
        let ss = key.decapsulate(Ciphertext::from(&ct[..])).ok()?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ss.as_ref().get(..32)?);
        Some(out)
    }
}

/// An ML-KEM-768 encapsulation key (FIPS 203), 1,184 bytes: the public half
/// of a portion's, a user's or the SRS's post-quantum key. Decoding runs
/// FIPS 203's modulus check. Cheap to clone.
#[derive(Clone)]
pub struct PqPublicKey(Arc<PublicInner>);

struct PublicInner {
    bytes: [u8; PQ_PUBLIC_KEY_LEN],
    key: EncapsulationKey,
    #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
    fast: Option<fast::Public>,
}

impl PublicInner {
    fn new(bytes: [u8; PQ_PUBLIC_KEY_LEN], key: EncapsulationKey) -> Self {
        Self {
            #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
            fast: fast::public(&bytes),
            bytes,
            key,
        }
    }
}

impl PqPublicKey {
    /// Decodes an encapsulation key.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] unless 1,184 bytes; [`Error::Malformed`] if a
    /// coefficient is not reduced modulo q (FIPS 203 §7.2's check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let array: [u8; PQ_PUBLIC_KEY_LEN] =
            bytes.try_into().map_err(|_| Error::InvalidLength {
                what: "ML-KEM-768 encapsulation key",
                expected: PQ_PUBLIC_KEY_LEN,
                actual: bytes.len(),
            })?;
        let key = EncapsulationKey::new(&array.into()).map_err(|_| Error::Malformed {
            what: "ML-KEM-768 encapsulation key",
        })?;
        Ok(Self(Arc::new(PublicInner::new(array, key))))
    }

    fn from_key(key: EncapsulationKey) -> Self {
        let mut bytes = [0u8; PQ_PUBLIC_KEY_LEN];
        bytes.copy_from_slice(key.to_bytes().as_slice());
        Self(Arc::new(PublicInner::new(bytes, key)))
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8; PQ_PUBLIC_KEY_LEN] {
        &self.0.bytes
    }

    /// `SHA-256(encoding)`: what a signed grant names to bind a user's
    /// post-quantum key.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.0.bytes).into()
    }

    /// Encapsulates: the ciphertext and the shared key. With
    /// [`Draw::Given`], `m` is drawn from `rng` (FIPS 203 `Encaps_internal`).
    fn encapsulate<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        draw: Draw,
    ) -> ([u8; PQ_CIPHERTEXT_LEN], Zeroizing<[u8; 32]>) {
        #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
        if draw == Draw::System
            && let Some((ct, ss)) = self.0.fast.as_ref().and_then(fast::encapsulate)
        {
            return (public(ct, "ml-kem-ciphertext"), ss);
        }
        #[cfg(not(all(feature = "aws-lc", not(target_family = "wasm"))))]
        let _ = draw;
        let mut m = ml_kem::B32::default();
        rng.fill_bytes(m.as_mut_slice());
        let (ct, mut ss) = self.0.key.encapsulate_deterministic(&m);
        m.as_mut_slice().zeroize();
        let mut out_ct = [0u8; PQ_CIPHERTEXT_LEN];
        out_ct.copy_from_slice(ct.as_slice());
        let mut out_ss = Zeroizing::new([0u8; 32]);
        out_ss.copy_from_slice(ss.as_slice());
        ss.as_mut_slice().zeroize();
        (public(out_ct, "ml-kem-ciphertext"), out_ss)
    }
}

impl PartialEq for PqPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.bytes == other.0.bytes
    }
}
impl Eq for PqPublicKey {}

impl fmt::Debug for PqPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PqPublicKey")
            .field(&hex(&self.fingerprint()))
            .finish()
    }
}

/// An ML-KEM-768 decapsulation key, kept as its 64-byte seed `d ‖ z` and
/// expanded once (FIPS 203 `KeyGen_internal`). Zeroized on drop; `Debug`
/// hides it. Cheap to clone.
///
/// ```
/// use sesphr::PqSecretKey;
/// let key = PqSecretKey::from_seed(&[7u8; 64]);
/// // Deterministic: the seed is the whole secret.
/// assert_eq!(PqSecretKey::from_seed(&key.seed_bytes()).public(), key.public());
/// ```
#[derive(Clone)]
pub struct PqSecretKey(Arc<SecretInner>);

struct SecretInner {
    seed: Zeroizing<[u8; PQ_SEED_LEN]>,
    /// Zeroized on drop by `ml-kem` (feature `zeroize`).
    key: DecapsulationKey,
    #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
    fast: Option<fast::Secret>,
    public: PqPublicKey,
}

impl PqSecretKey {
    /// The key of a 64-byte seed `d ‖ z`.
    pub fn from_seed(seed: &[u8; PQ_SEED_LEN]) -> Self {
        let key = DecapsulationKey::from_seed((*seed).into());
        let public = PqPublicKey::from_key(key.encapsulation_key().clone());
        Self(Arc::new(SecretInner {
            seed: Zeroizing::new(*seed),
            #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
            fast: fast::secret(&key),
            key,
            public,
        }))
    }

    /// A fresh key from the OS RNG.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut os_rng())
    }

    /// A fresh key: 64 bytes drawn from `rng`, then [`PqSecretKey::from_seed`].
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; PQ_SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The seed, for the host's key storage. Zeroized on drop.
    pub fn seed_bytes(&self) -> Zeroizing<[u8; PQ_SEED_LEN]> {
        self.0.seed.clone()
    }

    /// The encapsulation key.
    pub fn public(&self) -> &PqPublicKey {
        &self.0.public
    }

    /// Decapsulates (implicit rejection: a wrong ciphertext gives a
    /// pseudorandom key, never an error).
    fn decapsulate(&self, ct: &[u8; PQ_CIPHERTEXT_LEN]) -> Zeroizing<[u8; 32]> {
        #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
        if let Some(ss) = self.0.fast.as_ref().and_then(|k| fast::decapsulate(k, ct)) {
            return ss;
        }
        self.decapsulate_rust(ct)
    }

    /// Decapsulates with RustCrypto's `ml-kem`.
    fn decapsulate_rust(&self, ct: &[u8; PQ_CIPHERTEXT_LEN]) -> Zeroizing<[u8; 32]> {
        let ct = ml_kem::Ciphertext::<MlKem768>::from(*ct);
        let mut ss = self.0.key.decapsulate(&ct);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(ss.as_slice());
        ss.as_mut_slice().zeroize();
        out
    }
}

impl ConstantTimeEq for PqSecretKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.seed.as_ref().ct_eq(other.0.seed.as_ref())
    }
}
impl PartialEq for PqSecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for PqSecretKey {}

impl fmt::Debug for PqSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PqSecretKey")
            .field("public", &self.0.public)
            .finish_non_exhaustive()
    }
}

/// The SRS's post-quantum key as sealers see it: its version (the SRS
/// rotates it; a header names the version it was sealed to) and its
/// encapsulation key.
///
/// Encoding: `"SPQK" ‖ 01 ‖ version (u32 BE) ‖ encapsulation key (1184)`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SrsPqPublicKey {
    version: u32,
    key: PqPublicKey,
}

impl SrsPqPublicKey {
    /// Length of the encoding.
    pub const LEN: usize = 5 + 4 + PQ_PUBLIC_KEY_LEN;

    /// Assembles the SRS key `key` at version `version`.
    pub fn new(version: u32, key: PqPublicKey) -> Self {
        Self { version, key }
    }

    /// The key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The encapsulation key.
    pub fn key(&self) -> &PqPublicKey {
        &self.key
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = frame(magic::SRS_PQ_KEY, Self::LEN);
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(self.key.as_bytes());
        v
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`]; as [`PqPublicKey::from_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("SRS post-quantum key", bytes, magic::SRS_PQ_KEY)?;
        let version = r.u32()?;
        let key = PqPublicKey::from_bytes(r.take(PQ_PUBLIC_KEY_LEN)?)?;
        r.finish()?;
        Ok(Self { version, key })
    }
}

/// The SRS's post-quantum secret key at one version: what it decapsulates
/// the delegate stanza of a hybrid header with, before re-wrapping `σ` to a
/// granted user. An [`crate::srs::Srs`] derives its own from its storage
/// key; this type lets any holder of the seed do the same step.
#[derive(Clone, PartialEq, Eq)]
pub struct SrsPqSecretKey {
    version: u32,
    key: PqSecretKey,
}

impl SrsPqSecretKey {
    /// The key of `seed` at `version`.
    pub fn new(version: u32, key: PqSecretKey) -> Self {
        Self { version, key }
    }

    /// The key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// What sealers use.
    pub fn public(&self) -> SrsPqPublicKey {
        SrsPqPublicKey::new(self.version, self.key.public().clone())
    }

    pub(crate) fn secret(&self) -> &PqSecretKey {
        &self.key
    }
}

impl fmt::Debug for SrsPqSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrsPqSecretKey")
            .field("version", &self.version)
            .field("public", self.key.public())
            .finish_non_exhaustive()
    }
}

/// One stanza: an ML-KEM-768 ciphertext and `σ` wrapped under its key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Stanza {
    pub(crate) ct: [u8; PQ_CIPHERTEXT_LEN],
    pub(crate) wrap: [u8; WRAP_LEN],
}

impl Stanza {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            ct: r.array()?,
            wrap: r.array()?,
        })
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ct);
        out.extend_from_slice(&self.wrap);
    }

    /// Encapsulates to `to` and wraps `sigma` for `role`, bound to `ad`.
    pub(crate) fn seal<R: CryptoRng + ?Sized>(
        to: &PqPublicKey,
        role: Role,
        ad: &[&[u8]],
        sigma: &[u8; SIGMA_LEN],
        rng: &mut R,
        draw: Draw,
    ) -> Result<Self> {
        let (ct, ss) = to.encapsulate(rng, draw);
        let cipher = wrap_cipher(&ss, role, &ct)?;
        let mut buf = *sigma;
        let tag = cipher
            .encrypt_inout_detached(
                &[0u8; 12].into(),
                &wrap_ad(role, ad),
                InOutBuf::from(&mut buf[..]),
            )
            .map_err(|_| Error::KeyDerivation)?;
        let mut wrap = [0u8; WRAP_LEN];
        wrap[..SIGMA_LEN].copy_from_slice(&buf);
        wrap[SIGMA_LEN..].copy_from_slice(&tag);
        buf.zeroize();
        public_bytes(&mut wrap, "pq-wrap");
        Ok(Self { ct, wrap })
    }

    /// Decapsulates with `key` and opens the wrap for `role` and `ad`.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] if it does not open (another key, another
    /// portion, an altered stanza).
    pub(crate) fn open(
        &self,
        key: &PqSecretKey,
        role: Role,
        ad: &[&[u8]],
    ) -> Result<Zeroizing<[u8; SIGMA_LEN]>> {
        let ss = key.decapsulate(&self.ct);
        let cipher = wrap_cipher(&ss, role, &self.ct)?;
        let mut sigma = Zeroizing::new([0u8; SIGMA_LEN]);
        sigma.copy_from_slice(&self.wrap[..SIGMA_LEN]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&self.wrap[SIGMA_LEN..]);
        let verdict = cipher
            .decrypt_inout_detached(
                &[0u8; 12].into(),
                &wrap_ad(role, ad),
                InOutBuf::from(&mut sigma[..]),
                &Tag::from(tag),
            )
            .is_ok();
        if public(verdict, "pq-wrap-verdict") {
            Ok(sigma)
        } else {
            Err(Error::DecryptionFailed)
        }
    }
}

impl fmt::Debug for Stanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stanza")
            .field("ct", &hex(self.ct.get(..8).unwrap_or_default()))
            .finish_non_exhaustive()
    }
}

/// `HKDF-SHA-256(ikm = ss, salt = "sesphr/v2/pq-wrap", info = role ‖ ct)`
/// keys a one-time ChaCha20-Poly1305.
fn wrap_cipher(
    ss: &[u8; 32],
    role: Role,
    ct: &[u8; PQ_CIPHERTEXT_LEN],
) -> Result<ChaCha20Poly1305> {
    let mut key = hkdf_bytes::<32>(tag::PQ_WRAP, ss, &[&[role as u8], ct])?;
    let cipher = ChaCha20Poly1305::new(&(*key).into());
    key.zeroize();
    Ok(cipher)
}

/// The wrap's associated data: `role ‖ parts`, each part length-prefixed.
fn wrap_ad(role: Role, parts: &[&[u8]]) -> Vec<u8> {
    let mut ad = vec![role as u8];
    crate::hash::encode_parts(&mut ad, parts);
    ad
}

/// What a hybrid seal needs beside the classical portion key: the portion's
/// encapsulation key (the owner's path) and the SRS's, or each threshold
/// node's (the delegate path).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Recipients {
    pub(crate) portion: PqPublicKey,
    /// `t`: 1 for one SRS, else how many nodes' shares recover `σ`.
    pub(crate) threshold: u8,
    /// One key, or node `i`'s at position `i − 1`.
    pub(crate) srs: Vec<SrsPqPublicKey>,
}

/// Most threshold nodes a hybrid header's `σ` can be split over (each adds
/// 1,172 bytes to the header).
pub const MAX_PQ_NODES: u8 = 16;

/// Checks a split of `σ`: one SRS (`t = n = 1`), or `2 ≤ t ≤ n ≤`
/// [`MAX_PQ_NODES`] nodes.
///
/// # Errors
/// [`Error::InvalidThreshold`] otherwise.
pub(crate) fn check_split(threshold: u8, nodes: u8) -> Result<()> {
    let single = threshold == 1 && nodes == 1;
    let split = threshold >= 2 && threshold <= nodes && nodes <= MAX_PQ_NODES;
    if single || split {
        Ok(())
    } else {
        Err(Error::InvalidThreshold)
    }
}

/// `σ` (or a share of it) as the scalar it is drawn as (a canonical
/// encoding), or `None`: whether it is canonical is public (an honest share
/// always is; the caller sets the answer aside).
pub(crate) fn sigma_scalar(bytes: &[u8; SIGMA_LEN]) -> Option<Zeroizing<Scalar>> {
    let s = Scalar::from_canonical_bytes(*bytes);
    let canonical = public(bool::from(s.is_some()), "sigma-share-canonical");
    canonical.then(|| Zeroizing::new(s.unwrap_or(Scalar::ZERO)))
}

/// Node `i`'s share of `σ` for a `t`-of-`n` split: `f(i)` for `f(z) = σ +
/// a_1·z + … + a_{t−1}·z^{t−1}`, the `a_j` drawn from `rng` in order. With
/// `t = 1` every share is `σ`.
pub(crate) fn split_sigma<R: CryptoRng + ?Sized>(
    sigma: &Scalar,
    threshold: u8,
    nodes: u8,
    rng: &mut R,
) -> Zeroizing<Vec<[u8; SIGMA_LEN]>> {
    let mut coefficients: Zeroizing<Vec<Scalar>> = Zeroizing::new(vec![*sigma]);
    for _ in 1..threshold {
        coefficients.push(Scalar::random(rng));
    }
    let mut shares = Zeroizing::new(Vec::with_capacity(usize::from(nodes)));
    for i in 1..=nodes {
        let x = Scalar::from(i);
        // Horner, from the highest coefficient.
        let mut y = Zeroizing::new(Scalar::ZERO);
        for a in coefficients.iter().rev() {
            *y = *y * x + a;
        }
        shares.push(y.to_bytes());
    }
    shares
}

/// `σ` from `t` shares `(i, σ_i)` (distinct node indices): `Σ λ_i·σ_i`,
/// Lagrange at 0.
pub(crate) fn combine_sigma(shares: &[(u8, Zeroizing<Scalar>)]) -> Zeroizing<[u8; SIGMA_LEN]> {
    let xs: Vec<u8> = shares.iter().map(|(i, _)| *i).collect();
    let mut sigma = Zeroizing::new(Scalar::ZERO);
    for ((_, s), l) in shares.iter().zip(crate::threshold::lagrange_at_zero(&xs)) {
        *sigma += l * **s;
    }
    Zeroizing::new(sigma.to_bytes())
}

/// `c_i = SHA-256("sesphr/v2/sigma-share", base context, i, σ_i)`, each part
/// length-prefixed: node `i`'s commitment to its share, in the header, so
/// that a delegatee judges each node's re-wrapped share on its own.
pub(crate) fn share_commitment(base: &[u8], node: u8, share: &[u8; SIGMA_LEN]) -> [u8; 32] {
    crate::hash::tagged_sha256(tag::SIGMA_SHARE, &[base, &[node], share])
}

/// Whether `share` is node `node`'s share of the header whose base context
/// is `base` and whose commitment for that node is `commitment`.
pub(crate) fn share_matches(
    base: &[u8],
    node: u8,
    share: &[u8; SIGMA_LEN],
    commitment: &[u8; 32],
) -> bool {
    let c = share_commitment(base, node, share);
    public(bool::from(c.ct_eq(commitment)), "sigma-share-verdict")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every backend's encapsulation opens under every backend's
    /// decapsulation, to the same shared key.
    #[test]
    fn backends_interoperate() {
        let key = PqSecretKey::from_seed(&[0x11; 64]);
        let mut rng = os_rng();
        for draw in [Draw::System, Draw::Given] {
            let (ct, ss) = key.public().encapsulate(&mut rng, draw);
            assert_eq!(*key.decapsulate(&ct), *ss, "{draw:?}");
            assert_eq!(*key.decapsulate_rust(&ct), *ss, "{draw:?}");
        }
        // Implicit rejection agrees too: an altered ciphertext gives the
        // same pseudorandom key under both, and not the sender's.
        let (mut ct, ss) = key.public().encapsulate(&mut rng, Draw::Given);
        ct[0] ^= 1;
        assert_ne!(*key.decapsulate(&ct), *ss);
        assert_eq!(*key.decapsulate(&ct), *key.decapsulate_rust(&ct));
    }

    #[test]
    fn a_stanza_opens_only_for_its_role_and_context() {
        let key = PqSecretKey::from_seed(&[0x22; 64]);
        let sigma = [7u8; SIGMA_LEN];
        let mut rng = os_rng();
        let st = Stanza::seal(
            key.public(),
            Role::Srs,
            &[b"ctx"],
            &sigma,
            &mut rng,
            Draw::Given,
        )
        .unwrap();
        assert_eq!(*st.open(&key, Role::Srs, &[b"ctx"]).unwrap(), sigma);
        assert!(st.open(&key, Role::Owner, &[b"ctx"]).is_err());
        assert!(st.open(&key, Role::Srs, &[b"ctx2"]).is_err());
        assert!(
            st.open(&PqSecretKey::from_seed(&[0x23; 64]), Role::Srs, &[b"ctx"])
                .is_err()
        );
    }
}
