//! Keys: user key pairs, the patient's master key and its per-portion keys,
//! and SRS-issued keys (escrow mode).

use core::fmt;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::backup;
use crate::ct::public;
use crate::encoding::{
    Reader, decode_point, decode_secret_scalar, frame, hex, magic, put_short_bytes,
};
use crate::error::{Error, Result};
use crate::hash::{hash_to_scalar, hkdf_bytes, tag};
use crate::ids::{Identity, PortionLabel};
use crate::pq::{
    PQ_PUBLIC_KEY_LEN, PQ_SEED_LEN, PqPublicKey, PqSecretKey, Recipients, SrsPqPublicKey,
};
use crate::rng::os_rng;

/// A nonzero random scalar.
pub(crate) fn random_nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        let s = Scalar::random(rng);
        if !public(bool::from(s.ct_eq(&Scalar::ZERO)), "zero-rejection") {
            return s;
        }
    }
}

/// A ristretto255 public key: a canonical, non-identity point.
///
/// Keeps both the decoded point and its 32-byte encoding, so that hashing and
/// serializing never re-encode.
#[derive(Clone, Copy)]
pub struct PublicKey {
    point: RistrettoPoint,
    compressed: CompressedRistretto,
}

impl PublicKey {
    /// Length of the encoding in bytes.
    pub const LEN: usize = 32;

    pub(crate) fn from_point(point: RistrettoPoint) -> Self {
        public(
            Self {
                point,
                compressed: point.compress(),
            },
            "public-key",
        )
    }

    pub(crate) fn from_parts(compressed: CompressedRistretto, point: RistrettoPoint) -> Self {
        Self { point, compressed }
    }

    /// Decodes a public key.
    ///
    /// # Errors
    /// [`Error::NonCanonicalPoint`] unless `bytes` is the canonical encoding
    /// of a ristretto255 point; [`Error::IdentityPoint`] for the identity.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let (compressed, point) = decode_point(bytes)?;
        Ok(Self { point, compressed })
    }

    /// Decodes a public key from a slice.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] unless it has 32 bytes, then as [`PublicKey::from_bytes`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let b: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "public key",
            expected: Self::LEN,
            actual: bytes.len(),
        })?;
        Self::from_bytes(b)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.compressed.to_bytes()
    }

    /// The 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.compressed.as_bytes()
    }

    pub(crate) fn point(&self) -> &RistrettoPoint {
        &self.point
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        // Encodings are canonical, so equal points have equal bytes.
        self.compressed == other.compressed
    }
}
impl Eq for PublicKey {}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.compressed.as_bytes().hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(self.as_bytes()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(self.as_bytes()))
    }
}

/// A user's secret key: a nonzero scalar. Zeroized on drop; `Debug` hides it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Scalar);

impl SecretKey {
    /// Length of the encoding in bytes.
    pub const LEN: usize = 32;

    /// A fresh secret key from the OS RNG.
    pub fn random() -> Self {
        Self::random_with_rng(&mut os_rng())
    }

    /// A fresh secret key.
    pub fn random_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(random_nonzero_scalar(rng))
    }

    /// Decodes a secret key (a canonical little-endian scalar).
    ///
    /// # Errors
    /// [`Error::NonCanonicalScalar`] if it is not below the group order,
    /// [`Error::ZeroScalar`] if it is zero.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        decode_secret_scalar(bytes).map(Self)
    }

    /// Decodes a secret key from a slice.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] unless it has 32 bytes, then as [`SecretKey::from_bytes`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let b: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "secret key",
            expected: Self::LEN,
            actual: bytes.len(),
        })?;
        Self::from_bytes(b)
    }

    /// The 32-byte encoding, for the host's own key storage. The copy is
    /// zeroized when dropped. For a backup that refuses corruption, see
    /// [`SecretKey::to_backup`].
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// A key backup ([`crate::backup`]): the key with a check value, so
    /// that a corrupted copy is refused rather than restored as another
    /// key. Zeroized on drop.
    pub fn to_backup(&self) -> Zeroizing<Vec<u8>> {
        backup::seal(backup::Kind::Secret, self.to_bytes().as_ref())
    }

    /// The text form of [`SecretKey::to_backup`], for paper (Bech32m,
    /// `sesphr-secret1…`). Zeroized on drop.
    pub fn to_backup_text(&self) -> Zeroizing<String> {
        backup::to_text(backup::Kind::Secret, &self.to_backup())
    }

    /// Restores a key from [`SecretKey::to_backup`].
    ///
    /// # Errors
    /// [`Error::BadChecksum`] for a corrupted backup; [`Error::InvalidLength`],
    /// [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::Malformed`] (another kind of backup), then as
    /// [`SecretKey::from_slice`].
    pub fn from_backup(bytes: &[u8]) -> Result<Self> {
        Self::from_slice(backup::open(backup::Kind::Secret, bytes)?)
    }

    /// Restores a key from [`SecretKey::to_backup_text`] (whitespace
    /// ignored).
    ///
    /// # Errors
    /// As [`SecretKey::from_backup`]; [`Error::BadChecksum`] for a mistyped
    /// text.
    pub fn from_backup_text(text: &str) -> Result<Self> {
        Self::from_backup(&backup::from_text(backup::Kind::Secret, text)?)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_point(RistrettoPoint::mul_base(&self.0))
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.0
    }
}

impl ConstantTimeEq for SecretKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}
impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").finish_non_exhaustive()
    }
}

/// A user's key pair.
///
/// ```
/// use sesphr::KeyPair;
/// let doctor = KeyPair::generate();
/// let restored = KeyPair::from_secret_bytes(&doctor.secret().to_bytes())?;
/// assert_eq!(restored.public(), doctor.public());
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
    pq: Option<PqSecretKey>,
}

impl KeyPair {
    /// A fresh key pair from the OS RNG.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut os_rng())
    }

    /// A fresh key pair.
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(SecretKey::random_with_rng(rng))
    }

    /// The key pair of a secret key.
    pub fn from_secret(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Self {
            secret,
            public,
            pq: None,
        }
    }

    /// A fresh hybrid key pair: a ristretto255 key and an independent
    /// ML-KEM-768 key, from the OS RNG. A user needs the ML-KEM part to
    /// read hybrid (post-quantum) portions shared with them.
    pub fn generate_hybrid() -> Self {
        Self::generate_hybrid_with_rng(&mut os_rng())
    }

    /// [`KeyPair::generate_hybrid`] with the given RNG (the ristretto255
    /// secret is drawn first, then the 64-byte ML-KEM seed).
    pub fn generate_hybrid_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let pair = Self::generate_with_rng(rng);
        pair.with_pq(PqSecretKey::generate_with_rng(rng))
    }

    /// This key pair with `pq` as its ML-KEM-768 part. The part is not
    /// derived from the ristretto255 secret: an attacker who recovers that
    /// secret from the public key (by a quantum computer) learns nothing
    /// of this one.
    #[must_use]
    pub fn with_pq(mut self, pq: PqSecretKey) -> Self {
        self.pq = Some(pq);
        self
    }

    /// The ML-KEM-768 part, if any.
    pub fn pq(&self) -> Option<&PqSecretKey> {
        self.pq.as_ref()
    }

    /// The ML-KEM-768 encapsulation key, if any: what the SRS re-wraps a
    /// hybrid portion's secret to.
    pub fn pq_public(&self) -> Option<&PqPublicKey> {
        self.pq.as_ref().map(PqSecretKey::public)
    }

    /// The key pair of an encoded secret key.
    ///
    /// # Errors
    /// As [`SecretKey::from_bytes`].
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self> {
        SecretKey::from_bytes(bytes).map(Self::from_secret)
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("pq_public", &self.pq_public())
            .finish_non_exhaustive()
    }
}

/// The public key of one portion of one patient's record, in one key epoch:
/// all an encryptor needs (a hospital adding a lab report holds only this).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PortionPublicKey {
    label: PortionLabel,
    epoch: u32,
    key: PublicKey,
}

impl PortionPublicKey {
    /// Assembles a portion public key from its parts.
    pub fn new(label: PortionLabel, epoch: u32, key: PublicKey) -> Self {
        Self { label, epoch, key }
    }

    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }

    /// The key epoch (0 until the patient rotates this portion's key).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The point `X_{P,c,k}`.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// Encodes: `"SPPK" ‖ version ‖ epoch (u32 BE) ‖ label length ‖ label ‖ point`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = frame(
            magic::PORTION_PUBLIC_KEY,
            5 + 4 + 1 + self.label.as_bytes().len() + 32,
        );
        v.extend_from_slice(&self.epoch.to_be_bytes());
        put_short_bytes(&mut v, self.label.as_bytes());
        v.extend_from_slice(self.key.as_bytes());
        v
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::InvalidLabel`], [`Error::NonCanonicalPoint`], [`Error::IdentityPoint`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("portion public key", bytes, magic::PORTION_PUBLIC_KEY)?;
        let epoch = r.u32()?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let (c, p) = r.point()?;
        r.finish()?;
        Ok(Self {
            label,
            epoch,
            key: PublicKey::from_parts(c, p),
        })
    }
}

impl fmt::Debug for PortionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionPublicKey")
            .field("label", &self.label)
            .field("epoch", &self.epoch)
            .field("key", &self.key)
            .finish()
    }
}

/// A portion public key with its post-quantum parts: the portion's
/// ML-KEM-768 encapsulation key (the patient's path) and the SRS's, or each
/// threshold node's (the delegate path). Sealing to it makes a hybrid
/// header (DESIGN §16): its DEM key needs both the capsule's `Z` and a
/// secret `σ` carried by ML-KEM, so an attacker who breaks ristretto255
/// alone reads nothing. For a threshold SRS, `σ` is split `t`-of-`n` and
/// each node's share goes to that node's key.
///
/// Encoding: `"SPHK" ‖ 01 ‖ epoch (u32 BE) ‖ label length ‖ label ‖ X_{P,c}
/// (32) ‖ portion encapsulation key (1184) ‖ t ‖ n ‖ n × (SRS key version
/// (u32 BE) ‖ SRS encapsulation key (1184))`, `t = n = 1` for one SRS.
///
/// ```
/// use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, PqSecretKey, RecordId, ReKey, SealedPortion, SrsPqSecretKey};
/// let srs = SrsPqSecretKey::new(1, PqSecretKey::generate()); // the SRS's
/// let patient = PatientKeys::generate(Identity::new("alice")?);
/// let lab = patient.portion_secret(&PortionLabel::new("lab")?, 0);
/// let key = lab.hybrid_public(&srs.public())?; // published to sealers
///
/// let sealed = SealedPortion::seal_hybrid(&key, RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
/// assert!(sealed.header().is_hybrid());
/// assert_eq!(sealed.open_as_owner(&lab)?, b"HbA1c 5.4%");
///
/// let doctor = KeyPair::generate_hybrid();
/// let rekey = ReKey::generate(&lab, doctor.public());
/// let rc = rekey.reencrypt_hybrid(sealed.header().verify()?, &srs, doctor.pq_public().ok_or(sesphr::Error::PqKeyMissing)?)?;
/// assert_eq!(sealed.open_as_delegatee(&doctor, &rc)?, b"HbA1c 5.4%");
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HybridPortionKey {
    classical: PortionPublicKey,
    recipients: Recipients,
}

impl HybridPortionKey {
    /// Assembles a hybrid key from its parts, for one SRS.
    pub fn new(classical: PortionPublicKey, portion: PqPublicKey, srs: SrsPqPublicKey) -> Self {
        Self {
            classical,
            recipients: Recipients {
                portion,
                threshold: 1,
                srs: vec![srs],
            },
        }
    }

    /// Assembles a hybrid key for a threshold SRS: `σ` split `threshold`-of-
    /// `nodes.len()`, node `i`'s share to `nodes[i − 1]` (the node that holds
    /// share `i` of the re-encryption key).
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`] unless `2 ≤ threshold ≤ nodes.len() ≤`
    /// [`crate::MAX_PQ_NODES`] (or one node and `threshold` 1: one SRS).
    pub fn split(
        classical: PortionPublicKey,
        portion: PqPublicKey,
        threshold: u8,
        nodes: Vec<SrsPqPublicKey>,
    ) -> Result<Self> {
        let n = u8::try_from(nodes.len()).map_err(|_| Error::InvalidThreshold)?;
        crate::pq::check_split(threshold, n)?;
        Ok(Self {
            classical,
            recipients: Recipients {
                portion,
                threshold,
                srs: nodes,
            },
        })
    }

    /// The classical portion public key.
    pub fn classical(&self) -> &PortionPublicKey {
        &self.classical
    }

    /// The portion's ML-KEM-768 encapsulation key.
    pub fn portion_pq(&self) -> &PqPublicKey {
        &self.recipients.portion
    }

    /// The SRS keys the delegate stanzas go to: one, or node `i`'s at
    /// position `i − 1`.
    pub fn srs_keys(&self) -> &[SrsPqPublicKey] {
        &self.recipients.srs
    }

    /// How many nodes' shares recover `σ` (1 for one SRS).
    pub fn threshold(&self) -> u8 {
        self.recipients.threshold
    }

    pub(crate) fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let label = self.classical.label.as_bytes();
        let nodes = &self.recipients.srs;
        let mut v = frame(
            magic::HYBRID_PORTION_KEY,
            5 + 4
                + 1
                + label.len()
                + 32
                + PQ_PUBLIC_KEY_LEN
                + 2
                + nodes.len() * (4 + PQ_PUBLIC_KEY_LEN),
        );
        v.extend_from_slice(&self.classical.epoch.to_be_bytes());
        put_short_bytes(&mut v, label);
        v.extend_from_slice(self.classical.key.as_bytes());
        v.extend_from_slice(self.recipients.portion.as_bytes());
        // `n` fits: `split` and `new` check it.
        v.push(self.recipients.threshold);
        v.push(u8::try_from(nodes.len()).unwrap_or(u8::MAX));
        for node in nodes {
            v.extend_from_slice(&node.version().to_be_bytes());
            v.extend_from_slice(node.key().as_bytes());
        }
        v
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::InvalidLabel`], [`Error::NonCanonicalPoint`],
    /// [`Error::IdentityPoint`]; [`Error::Malformed`] for an ML-KEM key that
    /// fails FIPS 203's modulus check; [`Error::InvalidThreshold`] for a
    /// split `HybridPortionKey::split` refuses.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("hybrid portion key", bytes, magic::HYBRID_PORTION_KEY)?;
        let epoch = r.u32()?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let (c, p) = r.point()?;
        let portion = PqPublicKey::from_bytes(r.take(PQ_PUBLIC_KEY_LEN)?)?;
        let (threshold, n) = (r.byte()?, r.byte()?);
        crate::pq::check_split(threshold, n)?;
        let mut nodes = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let version = r.u32()?;
            let key = PqPublicKey::from_bytes(r.take(PQ_PUBLIC_KEY_LEN)?)?;
            nodes.push(SrsPqPublicKey::new(version, key));
        }
        r.finish()?;
        Self::split(
            PortionPublicKey::new(label, epoch, PublicKey::from_parts(c, p)),
            portion,
            threshold,
            nodes,
        )
    }
}

impl fmt::Debug for HybridPortionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridPortionKey")
            .field("classical", &self.classical)
            .field("portion_pq", &self.recipients.portion)
            .field("threshold", &self.recipients.threshold)
            .field("srs", &self.recipients.srs)
            .finish()
    }
}

/// The secret key `x_{P,c,k}` of one portion, derived from the patient's
/// master secret. Zeroized on drop; `Debug` hides it.
#[derive(Clone)]
pub struct PortionSecretKey {
    scalar: Scalar,
    public: PortionPublicKey,
    /// The ML-KEM-768 seed of the portion (`None` only if its derivation
    /// failed, which HKDF-SHA-256 at 64 bytes cannot).
    pq_seed: Option<Zeroizing<[u8; PQ_SEED_LEN]>>,
    /// The ML-KEM-768 key, expanded from the seed when first needed.
    pq: std::sync::OnceLock<PqSecretKey>,
}

impl PortionSecretKey {
    /// The matching public key.
    pub fn public(&self) -> &PortionPublicKey {
        &self.public
    }

    /// The portion's ML-KEM-768 key (FIPS 203 `KeyGen_internal` from a
    /// 64-byte seed derived from the master secret; expanded once).
    ///
    /// # Errors
    /// [`Error::KeyDerivation`] if the seed could not be derived (never
    /// expected).
    pub fn pq_secret(&self) -> Result<&PqSecretKey> {
        if let Some(k) = self.pq.get() {
            return Ok(k);
        }
        let seed = self.pq_seed.as_ref().ok_or(Error::KeyDerivation)?;
        Ok(self.pq.get_or_init(|| PqSecretKey::from_seed(seed)))
    }

    /// The hybrid public key of this portion for sealing to the SRS key
    /// `srs`: this portion's classical key, its ML-KEM-768 key and `srs`.
    ///
    /// # Errors
    /// As [`PortionSecretKey::pq_secret`].
    pub fn hybrid_public(&self, srs: &SrsPqPublicKey) -> Result<HybridPortionKey> {
        Ok(HybridPortionKey::new(
            self.public.clone(),
            self.pq_secret()?.public().clone(),
            srs.clone(),
        ))
    }

    /// The hybrid public key of this portion for sealing to a threshold
    /// SRS: `σ` split `threshold`-of-`nodes.len()`, node `i`'s share to
    /// `nodes[i − 1]` ([`HybridPortionKey::split`]).
    ///
    /// # Errors
    /// As [`PortionSecretKey::pq_secret`] and [`HybridPortionKey::split`].
    pub fn hybrid_public_split(
        &self,
        threshold: u8,
        nodes: &[SrsPqPublicKey],
    ) -> Result<HybridPortionKey> {
        HybridPortionKey::split(
            self.public.clone(),
            self.pq_secret()?.public().clone(),
            threshold,
            nodes.to_vec(),
        )
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.scalar
    }
}

impl Drop for PortionSecretKey {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}
impl ZeroizeOnDrop for PortionSecretKey {}

impl ConstantTimeEq for PortionSecretKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.scalar.ct_eq(&other.scalar)
    }
}
impl PartialEq for PortionSecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for PortionSecretKey {}

impl fmt::Debug for PortionSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionSecretKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A patient's master secret `x_P` and identity: the one secret a patient
/// backs up. Every portion key is derived from it:
/// `x_{P,c,k} = H_s("sesphr/v1/portion-key", x_P, patient_id, c, k)`.
///
/// ```
/// use sesphr::{Identity, PatientKeys, PortionLabel};
/// let patient = PatientKeys::generate(Identity::new("alice")?);
/// let medical = PortionLabel::new("medical")?;
/// let sk = patient.portion_secret(&medical, 0);
/// assert_eq!(sk.public(), &patient.portion_public(&medical, 0));
/// // Each portion and each epoch has its own key.
/// assert_ne!(patient.portion_public(&medical, 1), patient.portion_public(&medical, 0));
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone)]
pub struct PatientKeys {
    master: Zeroizing<[u8; 32]>,
    patient: Identity,
}

impl PatientKeys {
    /// Length of the master secret in bytes.
    pub const MASTER_LEN: usize = 32;

    /// A fresh master secret from the OS RNG.
    pub fn generate(patient: Identity) -> Self {
        Self::generate_with_rng(patient, &mut os_rng())
    }

    /// A fresh master secret.
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(patient: Identity, rng: &mut R) -> Self {
        let mut master = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(master.as_mut());
        Self { master, patient }
    }

    /// Restores patient keys from a master secret the host stored.
    pub fn from_master(patient: Identity, master: &[u8; 32]) -> Self {
        Self {
            master: Zeroizing::new(*master),
            patient,
        }
    }

    /// The master secret, for the host's own key storage. Zeroized on drop.
    pub fn master_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.master.clone()
    }

    /// The patient's identity.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }

    /// Exports master secret and identity as a key backup
    /// ([`crate::backup`]): `"SPKB" ‖ 0x01 ‖ 0x01 ‖ master (32) ‖ identity
    /// length ‖ identity ‖ check (16)`. A corrupted copy is refused on
    /// import, never restored as another key. This is secret material; the
    /// buffer is zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut body = Zeroizing::new(Vec::with_capacity(33 + self.patient.as_bytes().len()));
        body.extend_from_slice(self.master.as_ref());
        put_short_bytes(&mut body, self.patient.as_bytes());
        backup::seal(backup::Kind::Patient, &body)
    }

    /// The text form of [`PatientKeys::to_bytes`], for a paper backup
    /// (Bech32m, `sesphr-patient1…`). Zeroized on drop.
    pub fn to_backup_text(&self) -> Zeroizing<String> {
        backup::to_text(backup::Kind::Patient, &self.to_bytes())
    }

    /// Imports what [`PatientKeys::to_bytes`] exported, or an export of
    /// sesphr 0.1 (`"SPMK" ‖ 0x01 ‖ master ‖ identity`, which has no check
    /// value: re-export it).
    ///
    /// # Errors
    /// [`Error::BadChecksum`] for a corrupted backup;
    /// [`Error::InvalidLength`], [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`], [`Error::Malformed`] (another kind of
    /// backup), [`Error::InvalidIdentity`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let body = if bytes.starts_with(&magic::PATIENT_KEYS) {
            let mut r = Reader::framed("patient keys", bytes, magic::PATIENT_KEYS)?;
            let body = r.rest();
            r.finish()?;
            body
        } else {
            backup::open(backup::Kind::Patient, bytes)?
        };
        let mut r = Reader::unframed("patient keys", body);
        let master = Zeroizing::new(r.array::<32>()?);
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        r.finish()?;
        Ok(Self { master, patient })
    }

    /// Imports [`PatientKeys::to_backup_text`] (whitespace ignored).
    ///
    /// # Errors
    /// As [`PatientKeys::from_bytes`]; [`Error::BadChecksum`] for a
    /// mistyped text.
    pub fn from_backup_text(text: &str) -> Result<Self> {
        Self::from_bytes(&backup::from_text(backup::Kind::Patient, text)?)
    }

    /// The secret key of portion `label` in key epoch `epoch`.
    pub fn portion_secret(&self, label: &PortionLabel, epoch: u32) -> PortionSecretKey {
        let scalar = hash_to_scalar(
            tag::PORTION_KEY,
            &[
                self.master.as_ref(),
                self.patient.as_bytes(),
                label.as_bytes(),
                &epoch.to_be_bytes(),
            ],
        );
        let key = PublicKey::from_point(&scalar * RISTRETTO_BASEPOINT_TABLE);
        // d ‖ z = HKDF-SHA-256(ikm = x_P, salt = "sesphr/v2/portion-pq-seed",
        // info = patient ‖ label ‖ epoch), each length-prefixed.
        let pq_seed = hkdf_bytes::<PQ_SEED_LEN>(
            tag::PORTION_PQ_SEED,
            self.master.as_ref(),
            &[
                self.patient.as_bytes(),
                label.as_bytes(),
                &epoch.to_be_bytes(),
            ],
        )
        .ok();
        PortionSecretKey {
            scalar,
            public: PortionPublicKey::new(label.clone(), epoch, key),
            pq_seed,
            pq: std::sync::OnceLock::new(),
        }
    }

    /// The hybrid public key of portion `label` in key epoch `epoch`, for
    /// sealing to the SRS key `srs` (DESIGN §16).
    ///
    /// # Errors
    /// As [`PortionSecretKey::pq_secret`].
    pub fn hybrid_portion_public(
        &self,
        label: &PortionLabel,
        epoch: u32,
        srs: &SrsPqPublicKey,
    ) -> Result<HybridPortionKey> {
        self.portion_secret(label, epoch).hybrid_public(srs)
    }

    /// The hybrid public key of portion `label` in key epoch `epoch`, for
    /// sealing to a threshold SRS ([`PortionSecretKey::hybrid_public_split`]).
    ///
    /// # Errors
    /// As [`PortionSecretKey::hybrid_public_split`].
    pub fn hybrid_portion_public_split(
        &self,
        label: &PortionLabel,
        epoch: u32,
        threshold: u8,
        nodes: &[SrsPqPublicKey],
    ) -> Result<HybridPortionKey> {
        self.portion_secret(label, epoch)
            .hybrid_public_split(threshold, nodes)
    }

    /// The public key of portion `label` in key epoch `epoch`.
    pub fn portion_public(&self, label: &PortionLabel, epoch: u32) -> PortionPublicKey {
        self.portion_secret(label, epoch).public().clone()
    }
}

impl fmt::Debug for PatientKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientKeys")
            .field("patient", &self.patient)
            .finish_non_exhaustive()
    }
}

/// **Escrow mode.** An SRS-held master seed from which user keys are issued by
/// identity: `x_id = H_s("sesphr/v1/issued-key", msk, identity, epoch)`.
///
/// This is the original SeSPHR key distribution, kept for deployments that
/// require it. Whoever holds the seed can compute every issued secret key and
/// so read everything those users can read: it is key escrow, never the
/// default. Users who generate their own [`KeyPair`] are not exposed to it.
#[derive(Clone)]
pub struct EscrowKeyIssuer {
    seed: Zeroizing<[u8; 32]>,
}

impl EscrowKeyIssuer {
    /// Length of the master seed in bytes.
    pub const SEED_LEN: usize = 32;

    /// A fresh master seed from the OS RNG.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut os_rng())
    }

    /// A fresh master seed.
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self { seed }
    }

    /// An issuer from a stored master seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            seed: Zeroizing::new(*seed),
        }
    }

    /// The master seed, for the SRS's own storage. Zeroized on drop.
    pub fn seed_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.seed.clone()
    }

    /// A key backup of the seed ([`crate::backup`]), refused on import if
    /// corrupted. Zeroized on drop.
    pub fn to_backup(&self) -> Zeroizing<Vec<u8>> {
        backup::seal(backup::Kind::Escrow, self.seed.as_ref())
    }

    /// The text form of [`EscrowKeyIssuer::to_backup`] (Bech32m,
    /// `sesphr-escrow1…`). Zeroized on drop.
    pub fn to_backup_text(&self) -> Zeroizing<String> {
        backup::to_text(backup::Kind::Escrow, &self.to_backup())
    }

    /// Restores an issuer from [`EscrowKeyIssuer::to_backup`].
    ///
    /// # Errors
    /// [`Error::BadChecksum`] for a corrupted backup; [`Error::InvalidLength`],
    /// [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::Malformed`] (another kind of backup).
    pub fn from_backup(bytes: &[u8]) -> Result<Self> {
        let body = backup::open(backup::Kind::Escrow, bytes)?;
        let seed: &[u8; 32] = body.try_into().map_err(|_| Error::InvalidLength {
            what: "escrow seed",
            expected: Self::SEED_LEN,
            actual: body.len(),
        })?;
        Ok(Self::from_seed(seed))
    }

    /// Restores an issuer from [`EscrowKeyIssuer::to_backup_text`].
    ///
    /// # Errors
    /// As [`EscrowKeyIssuer::from_backup`].
    pub fn from_backup_text(text: &str) -> Result<Self> {
        Self::from_backup(&backup::from_text(backup::Kind::Escrow, text)?)
    }

    /// Issues the key pair of `identity` in key epoch `epoch`.
    pub fn issue(&self, identity: &Identity, epoch: u32) -> KeyPair {
        let mut scalar = hash_to_scalar(
            tag::ISSUED_KEY,
            &[
                self.seed.as_ref(),
                identity.as_bytes(),
                &epoch.to_be_bytes(),
            ],
        );
        if scalar == Scalar::ZERO {
            // Probability 2^-252; a zero key would be unusable, so use one.
            scalar = Scalar::ONE;
        }
        KeyPair::from_secret(SecretKey(scalar))
    }
}

impl fmt::Debug for EscrowKeyIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscrowKeyIssuer").finish_non_exhaustive()
    }
}
