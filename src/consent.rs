//! Consent the patient signs: the patient's consent key, proofs of
//! possession for registration, signed grants, revocations and refusals,
//! and the SRS's signed revocation receipts.
//!
//! These objects are made by the patient's own client (which holds the
//! master secret) and checked by the SRS, which keeps each one in the audit
//! entry of the change it authorized, so that anyone holding the patient's
//! consent public key can re-check every grant and revocation from an audit
//! export alone ([`check_entry`]).
//!
//! Every object has a versioned encoding (`magic ‖ version ‖ fields ‖
//! signature`), decoded strictly (one encoding per value, canonical points,
//! no trailing bytes). Ed25519 signatures (`ed25519-dalek`, verified with
//! `verify_strict`) are over `"sesphr/v1/<object>" ‖` the bytes before the
//! signature. Proofs of possession of a ristretto255 key (a user's key, a
//! portion key) are Schnorr proofs `(c, s)` over the same statement.
//!
//! ```
//! use sesphr::consent::{GrantOptions, PatientRegistration, SignedRevocation};
//! use sesphr::srs::{Role, Srs};
//! use sesphr::model::Purpose;
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
//!
//! let srs = Srs::in_memory()?;
//! let alice = PatientKeys::generate(Identity::new("alice")?);
//! let lab = PortionLabel::new("lab")?;
//! srs.register_patient(&PatientRegistration::new(&alice, &[(lab.clone(), 0)])?)?;
//!
//! let doctor_id = Identity::new("dr-bob")?;
//! let doctor = KeyPair::generate();
//! srs.register_user(&doctor_id, Role::Doctor, doctor.public(), &doctor.prove_possession(&doctor_id))?;
//!
//! // The patient's client makes the re-encryption key and signs the grant.
//! let rekey = ReKey::generate(&alice.portion_secret(&lab, 0), doctor.public());
//! let grant = alice.sign_grant(&lab, 0, &doctor_id, &rekey, &GrantOptions::default())?;
//! srs.grant(&grant, rekey)?;
//!
//! let report = SealedPortion::seal(&alice.portion_public(&lab, 0), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
//! let rc = srs.reencrypt(&doctor_id, report.header(), Purpose::Treatment)?;
//! assert_eq!(report.open_as_delegatee(&doctor, &rc)?, b"HbA1c 5.4%");
//!
//! // Revocation, signed too; the SRS answers with a receipt it signed.
//! let receipt = srs.revoke(&alice.sign_revocation(&lab, &doctor_id)?)?;
//! receipt.verify(&srs.verifying_key())?;
//! srs.verify_consent()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signer;
/// The Ed25519 types of consent keys and signatures (`ed25519-dalek` 3, a
/// public dependency: see the crate docs).
pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::encoding::{Reader, decode_scalar, frame, hex, magic, put_short_bytes};
use crate::error::{Error, Result};
use crate::hash::{hash_to_scalar, tag};
use crate::ids::{Identity, PortionLabel};
use crate::keys::{KeyPair, PatientKeys, PortionPublicKey, PortionSecretKey, PublicKey};
use crate::model::{AuditAction, AuditEntry, AuditOutcome, Role, Scope};
use crate::rekey::ReKey;
use crate::rng::os_rng;
use crate::schnorr;
use crate::threshold::{ShareCommitments, VerifiedCommitments};

/// The signature contexts (prefixed to the signed bytes).
mod context {
    pub(super) const REGISTRATION: &[u8] = b"sesphr/v1/patient-registration";
    pub(super) const GRANT: &[u8] = b"sesphr/v1/signed-grant";
    pub(super) const REVOCATION: &[u8] = b"sesphr/v1/signed-revocation";
    pub(super) const REFUSAL: &[u8] = b"sesphr/v1/signed-refusal";
    pub(super) const RECEIPT: &[u8] = b"sesphr/v1/revocation-receipt";
}

/// An object signed over `context ‖ body`: its encoding is the body and
/// the 64-byte signature.
trait Signed {
    /// The signature context.
    const CONTEXT: &'static [u8];
    /// What the object is, in errors.
    const WHAT: &'static str;
    /// The bytes before the signature.
    fn body(&self) -> Vec<u8>;
    /// The signature.
    fn signature(&self) -> &[u8; 64];

    /// The encoding.
    fn encoded(&self) -> Vec<u8> {
        let mut v = self.body();
        v.extend_from_slice(self.signature());
        v
    }

    /// Checks the signature under `key`.
    fn check(&self, key: &VerifyingKey) -> Result<()> {
        verify(
            key,
            Self::CONTEXT,
            &self.body(),
            self.signature(),
            Self::WHAT,
        )
    }

    /// Signs the body with `key`.
    fn signed_by(&self, key: &SigningKey) -> [u8; 64] {
        sign(key, Self::CONTEXT, &self.body())
    }
}

fn sign(key: &SigningKey, ctx: &[u8], body: &[u8]) -> [u8; 64] {
    let mut m = Vec::with_capacity(ctx.len() + body.len());
    m.extend_from_slice(ctx);
    m.extend_from_slice(body);
    key.sign(&m).to_bytes()
}

fn verify(
    key: &VerifyingKey,
    ctx: &[u8],
    body: &[u8],
    sig: &[u8; 64],
    what: &'static str,
) -> Result<()> {
    let mut m = Vec::with_capacity(ctx.len() + body.len());
    m.extend_from_slice(ctx);
    m.extend_from_slice(body);
    if key.is_weak() {
        return Err(Error::InvalidSignature { what });
    }
    key.verify_strict(&m, &Signature::from_bytes(sig))
        .map_err(|_| Error::InvalidSignature { what })
}

/// Decodes an Ed25519 public key (a valid, non-weak curve point).
///
/// # Errors
///
/// [`Error::NonCanonicalPoint`] for bytes that are not a canonical point,
/// [`Error::IdentityPoint`] for a point of small order (a weak key).
pub fn decode_verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey> {
    let k = VerifyingKey::from_bytes(bytes).map_err(|_| Error::NonCanonicalPoint)?;
    if k.is_weak() {
        return Err(Error::IdentityPoint);
    }
    Ok(k)
}

impl PatientKeys {
    /// The patient's consent signing key (Ed25519): HKDF-SHA-256 with salt
    /// `"sesphr/v1/consent-key"`, the master secret as input key material
    /// and the patient's identity as info, gives the 32-byte seed. It signs
    /// registrations, grants, revocations and refusals. Zeroized on drop.
    pub fn consent_key(&self) -> SigningKey {
        let hk = Hkdf::<Sha256>::new(Some(tag::CONSENT_KEY), self.master_bytes().as_ref());
        let mut seed = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's output limit: cannot fail.
        let _ = hk.expand(self.patient().as_bytes(), seed.as_mut());
        SigningKey::from_bytes(&seed)
    }

    /// The consent key's public half, which the SRS registers and auditors
    /// check signatures with.
    pub fn consent_public(&self) -> VerifyingKey {
        self.consent_key().verifying_key()
    }

    /// A grant of `label` (key epoch `epoch`) to `user`, signed by the
    /// patient, for the re-encryption key `rekey` made for that user.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if `rekey` is not from this patient's portion
    /// key `(label, epoch)`; [`Error::Malformed`] if a break-glass grant has
    /// no role.
    pub fn sign_grant(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        rekey: &ReKey,
        options: &GrantOptions,
    ) -> Result<SignedGrant> {
        self.sign_grant_with_rng(label, epoch, user, rekey, options, &mut os_rng())
    }

    /// As [`PatientKeys::sign_grant`], the nonce drawn from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_grant`].
    pub fn sign_grant_with_rng<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        rekey: &ReKey,
        options: &GrantOptions,
        rng: &mut R,
    ) -> Result<SignedGrant> {
        let keys = GrantedKeys {
            portion_key: rekey.portion_key(),
            user_key: rekey.delegatee(),
            commitment: rekey.commitment(),
            ephemeral: rekey.ephemeral(),
            threshold: None,
        };
        self.sign_keys(label, epoch, user, &keys, options, rng)
    }

    /// A grant of `label` (key epoch `epoch`) to `user` for a re-encryption
    /// key split among nodes ([`ReKey::split`]), signed by the patient: it
    /// names `RK = C_0`, `X_e`, `t`, `n` and the digest of the commitments.
    /// Every node receives the same signed grant with its own share
    /// ([`crate::srs::Srs::grant_share`]).
    ///
    /// # Errors
    /// As [`PatientKeys::sign_grant`].
    pub fn sign_share_grant(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        commitments: &ShareCommitments,
        options: &GrantOptions,
    ) -> Result<SignedGrant> {
        self.sign_share_grant_with_rng(label, epoch, user, commitments, options, &mut os_rng())
    }

    /// As [`PatientKeys::sign_share_grant`], the nonce drawn from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_grant`].
    pub fn sign_share_grant_with_rng<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        commitments: &ShareCommitments,
        options: &GrantOptions,
        rng: &mut R,
    ) -> Result<SignedGrant> {
        let keys = GrantedKeys {
            portion_key: commitments.portion_key(),
            user_key: commitments.delegatee(),
            commitment: commitments.commitment(),
            ephemeral: commitments.ephemeral(),
            threshold: Some(ShareTerms::of(commitments)),
        };
        self.sign_keys(label, epoch, user, &keys, options, rng)
    }

    fn sign_keys<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        keys: &GrantedKeys<'_>,
        options: &GrantOptions,
        rng: &mut R,
    ) -> Result<SignedGrant> {
        if self.portion_public(label, epoch).key() != keys.portion_key {
            return Err(Error::KeyMismatch);
        }
        let mut g = SignedGrant {
            patient: self.patient().clone(),
            label: label.clone(),
            epoch,
            user: user.clone(),
            user_key: *keys.user_key,
            scope: options.scope,
            expiry: options.expiry,
            commitment: *keys.commitment,
            ephemeral: *keys.ephemeral,
            issued_at: options.issued_at.unwrap_or_else(crate::unix_now),
            nonce: nonce(rng),
            request: options.request,
            emergency: options.emergency.clone(),
            threshold: keys.threshold,
            signature: [0; 64],
        };
        g.signature = g.signed_by(&self.consent_key());
        Ok(g)
    }

    /// A revocation of every grant of `label` (all key epochs) to `user`,
    /// signed by the patient, dated now.
    ///
    /// # Errors
    /// None today; kept fallible like the other signing calls.
    pub fn sign_revocation(
        &self,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<SignedRevocation> {
        self.sign_revocation_with_rng(label, user, crate::unix_now(), &mut os_rng())
    }

    /// As [`PatientKeys::sign_revocation`], dated `issued_at` (seconds since
    /// the Unix epoch): for a host whose clock is not the system's (a
    /// `ManualClock` in tests, a device clock corrected by the server).
    ///
    /// # Errors
    /// As [`PatientKeys::sign_revocation`].
    pub fn sign_revocation_at(
        &self,
        label: &PortionLabel,
        user: &Identity,
        issued_at: u64,
    ) -> Result<SignedRevocation> {
        self.sign_revocation_with_rng(label, user, issued_at, &mut os_rng())
    }

    /// As [`PatientKeys::sign_revocation`], dated `issued_at`, the nonce from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_revocation`].
    pub fn sign_revocation_with_rng<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        user: &Identity,
        issued_at: u64,
        rng: &mut R,
    ) -> Result<SignedRevocation> {
        let mut r = SignedRevocation {
            patient: self.patient().clone(),
            label: label.clone(),
            user: user.clone(),
            issued_at,
            nonce: nonce(rng),
            signature: [0; 64],
        };
        r.signature = r.signed_by(&self.consent_key());
        Ok(r)
    }

    /// A refusal of the access request `request`, signed by the patient.
    ///
    /// # Errors
    /// [`Error::Malformed`] if `reason` is empty, longer than 1024 bytes or
    /// holds control characters.
    pub fn sign_refusal(&self, request: RequestId, reason: &str) -> Result<SignedRefusal> {
        self.sign_refusal_with_rng(request, reason, crate::unix_now(), &mut os_rng())
    }

    /// As [`PatientKeys::sign_refusal`], dated `issued_at`, the nonce from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_refusal`].
    pub fn sign_refusal_with_rng<R: CryptoRng + ?Sized>(
        &self,
        request: RequestId,
        reason: &str,
        issued_at: u64,
        rng: &mut R,
    ) -> Result<SignedRefusal> {
        let reason = crate::model::check_text(reason)?;
        let mut r = SignedRefusal {
            patient: self.patient().clone(),
            request,
            reason,
            issued_at,
            nonce: nonce(rng),
            signature: [0; 64],
        };
        r.signature = r.signed_by(&self.consent_key());
        Ok(r)
    }
}

/// A two-byte big-endian length (every caller bounds it far below 2¹⁶).
fn short_len(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}

fn nonce<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; 16] {
    let mut n = [0u8; 16];
    rng.fill_bytes(&mut n);
    n
}

/// A proof of possession of a ristretto255 secret key, bound to a
/// statement (who registers the key, and for a portion key its label and
/// epoch): a Schnorr proof `(c, s)` with `c = H_s("sesphr/v1/key-proof",
/// statement ‖ X ‖ R)`, `R = s·G − c·X`. 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyProof {
    c: Scalar,
    s: Scalar,
}

/// What a key proof is about.
enum Statement<'a> {
    User(&'a Identity),
    Portion(&'a Identity, &'a PortionLabel, u32),
}

impl Statement<'_> {
    fn challenge(&self, key: &PublicKey, r: &CompressedRistretto) -> Scalar {
        match self {
            Self::User(id) => hash_to_scalar(
                tag::KEY_PROOF,
                &[b"user", id.as_bytes(), key.as_bytes(), r.as_bytes()],
            ),
            Self::Portion(p, l, e) => hash_to_scalar(
                tag::KEY_PROOF,
                &[
                    b"portion",
                    p.as_bytes(),
                    l.as_bytes(),
                    &e.to_be_bytes(),
                    key.as_bytes(),
                    r.as_bytes(),
                ],
            ),
        }
    }
}

/// cbindgen:ignore
impl KeyProof {
    /// Length of the encoding.
    pub const LEN: usize = 64;

    fn prove<R: CryptoRng + ?Sized>(
        secret: &Scalar,
        key: &PublicKey,
        st: &Statement<'_>,
        rng: &mut R,
    ) -> Self {
        let (c, s) = schnorr::prove(secret, key, |r| st.challenge(key, r), rng);
        Self { c, s }
    }

    fn check(&self, key: &PublicKey, st: &Statement<'_>) -> bool {
        schnorr::check(key, &self.c, &self.s, |r| st.challenge(key, r))
    }

    /// Checks a user's proof for `(identity, key)`.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if it does not verify.
    pub fn verify_user(&self, identity: &Identity, key: &PublicKey) -> Result<()> {
        if self.check(key, &Statement::User(identity)) {
            Ok(())
        } else {
            Err(Error::InvalidSignature {
                what: "user key proof",
            })
        }
    }

    /// Checks a portion key's proof for `patient`.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if it does not verify.
    pub fn verify_portion(&self, patient: &Identity, key: &PortionPublicKey) -> Result<()> {
        let st = Statement::Portion(patient, key.label(), key.epoch());
        if self.check(key.key(), &st) {
            Ok(())
        } else {
            Err(Error::InvalidSignature {
                what: "portion key proof",
            })
        }
    }

    /// `c ‖ s`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(self.c.as_bytes());
        b[32..].copy_from_slice(self.s.as_bytes());
        b
    }

    /// Decodes strictly (canonical scalars).
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::NonCanonicalScalar`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::unframed("key proof", bytes);
        let c = decode_scalar(&r.array()?)?;
        let s = decode_scalar(&r.array()?)?;
        r.finish()?;
        Ok(Self { c, s })
    }
}

impl fmt::Debug for KeyProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyProof({})", hex(&self.to_bytes()[..8]))
    }
}

impl KeyPair {
    /// A proof that the holder of this key pair registers it as `identity`
    /// (the SRS refuses a user registration without it).
    pub fn prove_possession(&self, identity: &Identity) -> KeyProof {
        self.prove_possession_with_rng(identity, &mut os_rng())
    }

    /// As [`KeyPair::prove_possession`], hedged with `rng`.
    pub fn prove_possession_with_rng<R: CryptoRng + ?Sized>(
        &self,
        identity: &Identity,
        rng: &mut R,
    ) -> KeyProof {
        KeyProof::prove(
            self.secret().scalar(),
            self.public(),
            &Statement::User(identity),
            rng,
        )
    }
}

impl PortionSecretKey {
    /// A proof that `patient` holds this portion key.
    pub fn prove_possession<R: CryptoRng + ?Sized>(
        &self,
        patient: &Identity,
        rng: &mut R,
    ) -> KeyProof {
        let p = self.public();
        KeyProof::prove(
            self.scalar(),
            p.key(),
            &Statement::Portion(patient, p.label(), p.epoch()),
            rng,
        )
    }
}

/// A patient's registration (or the addition of portion keys): the consent
/// public key, each portion key with its proof of possession, all signed by
/// the consent key. The SRS registers nothing without it, so nobody can
/// register another patient's keys.
///
/// Encoding: `"SPRG" ‖ version ‖ patient (1-byte length) ‖ consent key (32)
/// ‖ count (2 bytes) ‖ count × (label (1-byte length) ‖ epoch (4) ‖ key (32)
/// ‖ proof (64)) ‖ signature (64)`.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientRegistration {
    patient: Identity,
    consent_key: VerifyingKey,
    portions: Vec<(PortionPublicKey, KeyProof)>,
    signature: [u8; 64],
}

impl Signed for PatientRegistration {
    const CONTEXT: &'static [u8] = context::REGISTRATION;
    const WHAT: &'static str = "patient registration";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::REGISTRATION, 64 + self.portions.len() * 140);
        put_short_bytes(&mut v, self.patient.as_bytes());
        v.extend_from_slice(self.consent_key.as_bytes());
        // At most MAX_PORTIONS (1024) portions (checked when made and decoded).
        v.extend_from_slice(&short_len(self.portions.len()));
        for (k, proof) in &self.portions {
            put_short_bytes(&mut v, k.label().as_bytes());
            v.extend_from_slice(&k.epoch().to_be_bytes());
            v.extend_from_slice(k.key().as_bytes());
            v.extend_from_slice(&proof.to_bytes());
        }
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

/// cbindgen:ignore
impl PatientRegistration {
    /// Most portion keys in one registration.
    pub const MAX_PORTIONS: usize = 1024;

    /// The registration of `keys`' patient with the portion keys `(label,
    /// epoch)` (none is allowed; add them later with another registration).
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than [`PatientRegistration::MAX_PORTIONS`].
    pub fn new(keys: &PatientKeys, portions: &[(PortionLabel, u32)]) -> Result<Self> {
        Self::new_with_rng(keys, portions, &mut os_rng())
    }

    /// As [`PatientRegistration::new`], proofs hedged with `rng`.
    ///
    /// # Errors
    /// As [`PatientRegistration::new`].
    pub fn new_with_rng<R: CryptoRng + ?Sized>(
        keys: &PatientKeys,
        portions: &[(PortionLabel, u32)],
        rng: &mut R,
    ) -> Result<Self> {
        if portions.len() > Self::MAX_PORTIONS {
            return Err(Error::TooLarge);
        }
        let consent = keys.consent_key();
        let portions = portions
            .iter()
            .map(|(l, e)| {
                let s = keys.portion_secret(l, *e);
                let proof = s.prove_possession(keys.patient(), rng);
                (s.public().clone(), proof)
            })
            .collect();
        let mut r = Self {
            patient: keys.patient().clone(),
            consent_key: consent.verifying_key(),
            portions,
            signature: [0; 64],
        };
        r.signature = r.signed_by(&consent);
        Ok(r)
    }

    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }

    /// The consent public key.
    pub fn consent_key(&self) -> &VerifyingKey {
        &self.consent_key
    }

    /// The portion keys.
    pub fn portions(&self) -> impl Iterator<Item = &PortionPublicKey> {
        self.portions.iter().map(|(k, _)| k)
    }

    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn portion_proofs(&self) -> impl Iterator<Item = (&PortionPublicKey, &KeyProof)> {
        self.portions.iter().map(|(k, p)| (k, p))
    }

    /// Checks the consent signature and every portion key's proof.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] naming what failed.
    pub fn verify(&self) -> Result<()> {
        self.check(&self.consent_key)?;
        for (k, proof) in &self.portions {
            proof.verify_portion(&self.patient, k)?;
        }
        Ok(())
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly (the signature and proofs are checked by
    /// [`PatientRegistration::verify`]).
    ///
    /// # Errors
    /// Encoding errors: length, magic, version, identity, label, point,
    /// scalar; [`Error::Malformed`] for too many portions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("patient registration", bytes, magic::REGISTRATION)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let consent_key = decode_verifying_key(&r.array()?)?;
        let n = usize::from(u16::from_be_bytes(r.array()?));
        if n > Self::MAX_PORTIONS {
            return Err(Error::Malformed {
                what: "patient registration",
            });
        }
        let mut portions = Vec::with_capacity(n);
        for _ in 0..n {
            let label = PortionLabel::from_bytes(r.short_bytes()?)?;
            let epoch = r.u32()?;
            let key = PublicKey::from_bytes(&r.array()?)?;
            let proof = KeyProof::from_bytes(&r.array::<64>()?)?;
            portions.push((PortionPublicKey::new(label, epoch, key), proof));
        }
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            consent_key,
            portions,
            signature,
        })
    }
}

impl fmt::Debug for PatientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientRegistration")
            .field("patient", &self.patient)
            .field("portions", &self.portions.len())
            .finish_non_exhaustive()
    }
}

/// The identifier of an access request (16 random bytes, chosen by the SRS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId([u8; 16]);

/// cbindgen:ignore
impl RequestId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// A fresh random identifier.
    pub fn random() -> Self {
        Self(nonce(&mut os_rng()))
    }

    /// From its bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// From a slice of exactly 16 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] otherwise.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::unframed("request id", bytes);
        let b = r.array()?;
        r.finish()?;
        Ok(Self(b))
    }

    /// Its bytes.
    pub const fn to_bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// The terms a patient's client puts in a grant besides the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantOptions {
    /// Which records (default: all, old and new).
    pub scope: Scope,
    /// When the grant stops working, if ever.
    pub expiry: Option<u64>,
    /// The access request this grant answers, if any.
    pub request: Option<RequestId>,
    /// A break-glass grant for users of this role: it serves only requests
    /// with purpose emergency and a justification, each flagged in the audit.
    /// A re-encryption key is made for one user's key, so a grant "for a
    /// role" is one signed grant per user of that role; the SRS checks the
    /// user holds the role.
    pub emergency: Option<Role>,
    /// When the patient signed it (default: now). For one patient, portion
    /// and user, the SRS accepts only objects dated after the last one it
    /// accepted, or in the same second with a nonce it has not seen: a
    /// replayed or older grant or revocation is refused. It also refuses a
    /// date more than five minutes ahead of its clock.
    pub issued_at: Option<u64>,
}

impl Default for GrantOptions {
    fn default() -> Self {
        Self {
            scope: Scope::AllRecords,
            expiry: None,
            request: None,
            emergency: None,
            issued_at: None,
        }
    }
}

fn put_opt_u64(v: &mut Vec<u8>, x: Option<u64>) {
    match x {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            v.extend_from_slice(&t.to_be_bytes());
        }
    }
}

fn get_opt_u64(r: &mut Reader<'_>) -> Result<Option<u64>> {
    match r.byte()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        _ => Err(Error::Malformed {
            what: "option flag",
        }),
    }
}

/// The keys a grant is signed for.
struct GrantedKeys<'a> {
    portion_key: &'a PublicKey,
    user_key: &'a PublicKey,
    commitment: &'a PublicKey,
    ephemeral: &'a PublicKey,
    threshold: Option<ShareTerms>,
}

/// What a grant of a split re-encryption key signs besides `RK = C_0` and
/// `X_e`: the threshold, the number of nodes, and the digest of the
/// commitments ([`ShareCommitments::digest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareTerms {
    /// `t`.
    pub threshold: u8,
    /// `n`.
    pub nodes: u8,
    /// [`ShareCommitments::digest`].
    pub digest: [u8; 32],
}

impl ShareTerms {
    /// The terms of `commitments`.
    pub fn of(commitments: &ShareCommitments) -> Self {
        Self {
            threshold: commitments.threshold(),
            nodes: commitments.nodes(),
            digest: commitments.digest(),
        }
    }
}

impl VerifiedCommitments {
    /// `commitments`, checked against the share grant the patient signed
    /// for them: the signature verifies under the patient's `consent_key`
    /// and the grant names exactly these commitments
    /// ([`SignedGrant::covers_commitments`]). The same as
    /// [`SignedGrant::verify_commitments`].
    ///
    /// # Errors
    /// [`Error::InvalidSignature`]; [`Error::InvalidCommitments`] if the
    /// grant is for other commitments (or not for a split key).
    pub fn new(
        commitments: &ShareCommitments,
        grant: &SignedGrant,
        consent_key: &VerifyingKey,
    ) -> Result<Self> {
        grant.verify(consent_key)?;
        if !grant.covers_commitments(commitments) {
            return Err(Error::InvalidCommitments);
        }
        Ok(Self::vouched(commitments.clone()))
    }
}

/// A grant the patient signed: patient, portion (label and key epoch), user
/// and the user's key, scope, expiry, the re-encryption key's commitment
/// `RK` and ephemeral key `X_e`, when it was signed, a fresh nonce, the
/// request it answers and, for break-glass, the role.
///
/// Encoding: `"SPSG" ‖ version ‖ patient ‖ label ‖ epoch (4) ‖ user ‖ user
/// key (32) ‖ since? ‖ expiry? ‖ RK (32) ‖ X_e (32) ‖ issued at (8) ‖ nonce
/// (16) ‖ request? (16) ‖ emergency role? ‖ [1 ‖ t ‖ n ‖ commitments digest
/// (32)] ‖ signature (64)`; strings with a 1-byte length, options behind a
/// 0/1 byte, integers big-endian. The bracketed share terms are present
/// only in the grant of a split key ([`PatientKeys::sign_share_grant`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedGrant {
    patient: Identity,
    label: PortionLabel,
    epoch: u32,
    user: Identity,
    user_key: PublicKey,
    scope: Scope,
    expiry: Option<u64>,
    commitment: PublicKey,
    ephemeral: PublicKey,
    issued_at: u64,
    nonce: [u8; 16],
    request: Option<RequestId>,
    emergency: Option<Role>,
    threshold: Option<ShareTerms>,
    signature: [u8; 64],
}

impl Signed for SignedGrant {
    const CONTEXT: &'static [u8] = context::GRANT;
    const WHAT: &'static str = "signed grant";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::SIGNED_GRANT, 400);
        put_short_bytes(&mut v, self.patient.as_bytes());
        put_short_bytes(&mut v, self.label.as_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        put_short_bytes(&mut v, self.user.as_bytes());
        v.extend_from_slice(self.user_key.as_bytes());
        put_opt_u64(
            &mut v,
            match self.scope {
                Scope::AllRecords => None,
                Scope::Since(t) => Some(t),
            },
        );
        put_opt_u64(&mut v, self.expiry);
        v.extend_from_slice(self.commitment.as_bytes());
        v.extend_from_slice(self.ephemeral.as_bytes());
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        match &self.request {
            None => v.push(0),
            Some(id) => {
                v.push(1);
                v.extend_from_slice(&id.0);
            }
        }
        match &self.emergency {
            None => v.push(0),
            Some(role) => {
                v.push(1);
                put_short_bytes(&mut v, role.as_str().as_bytes());
            }
        }
        if let Some(t) = &self.threshold {
            v.extend_from_slice(&[1, t.threshold, t.nodes]);
            v.extend_from_slice(&t.digest);
        }
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl SignedGrant {
    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }
    /// The portion key's epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The user.
    pub fn user(&self) -> &Identity {
        &self.user
    }
    /// The user's public key the re-encryption key was made for.
    pub fn user_key(&self) -> &PublicKey {
        &self.user_key
    }
    /// Which records.
    pub fn scope(&self) -> Scope {
        self.scope
    }
    /// When it stops working.
    pub fn expiry(&self) -> Option<u64> {
        self.expiry
    }
    /// The re-encryption key's commitment `RK` (the SRS refuses a key with
    /// another).
    pub fn commitment(&self) -> &PublicKey {
        &self.commitment
    }
    /// The re-encryption key's `X_e`.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }
    /// When the patient signed it.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// Its nonce.
    pub fn nonce(&self) -> [u8; 16] {
        self.nonce
    }
    /// The access request it answers.
    pub fn request(&self) -> Option<RequestId> {
        self.request
    }
    /// The role of a break-glass grant.
    pub fn emergency(&self) -> Option<&Role> {
        self.emergency.as_ref()
    }

    /// Checks the signature with the patient's consent key.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`].
    pub fn verify(&self, consent_key: &VerifyingKey) -> Result<()> {
        self.check(consent_key)
    }

    /// The share terms of a grant of a split key.
    pub fn threshold(&self) -> Option<&ShareTerms> {
        self.threshold.as_ref()
    }

    /// Whether `rekey` is the key this grant signed (portion key aside,
    /// which the SRS checks against its registry): same user key,
    /// commitment and ephemeral key, and not the grant of a split key.
    pub fn covers(&self, rekey: &ReKey) -> bool {
        self.threshold.is_none()
            && rekey.delegatee() == &self.user_key
            && rekey.commitment() == &self.commitment
            && rekey.ephemeral() == &self.ephemeral
    }

    /// Whether `commitments` are those of the split key this grant signed:
    /// same user key, `C_0`, `X_e`, threshold, node count and digest. A
    /// delegatee who has the patient's consent key checks the commitments
    /// it was given this way.
    pub fn covers_commitments(&self, commitments: &ShareCommitments) -> bool {
        self.threshold == Some(ShareTerms::of(commitments))
            && commitments.delegatee() == &self.user_key
            && commitments.commitment() == &self.commitment
            && commitments.ephemeral() == &self.ephemeral
    }

    /// Checks `commitments` against this grant: the signature verifies
    /// under the patient's `consent_key` and the grant names exactly these
    /// commitments ([`SignedGrant::covers_commitments`]). The result is
    /// what a [`crate::ThresholdOpener`] is made from, so that a node's
    /// verification key is the patient's word, not another node's.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`]; [`Error::InvalidCommitments`] if the
    /// grant is for other commitments (or not for a split key).
    pub fn verify_commitments(
        &self,
        consent_key: &VerifyingKey,
        commitments: &ShareCommitments,
    ) -> Result<VerifiedCommitments> {
        VerifiedCommitments::new(commitments, self, consent_key)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly (the signature is checked by
    /// [`SignedGrant::verify`]).
    ///
    /// # Errors
    /// Encoding errors.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("signed grant", bytes, magic::SIGNED_GRANT)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let epoch = r.u32()?;
        let user = Identity::from_utf8(r.short_bytes()?)?;
        let user_key = PublicKey::from_bytes(&r.array()?)?;
        let scope = get_opt_u64(&mut r)?.map_or(Scope::AllRecords, Scope::Since);
        let expiry = get_opt_u64(&mut r)?;
        let commitment = PublicKey::from_bytes(&r.array()?)?;
        let ephemeral = PublicKey::from_bytes(&r.array()?)?;
        let issued_at = r.u64()?;
        let nonce = r.array()?;
        let request = match r.byte()? {
            0 => None,
            1 => Some(RequestId(r.array()?)),
            _ => {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
        };
        let emergency = match r.byte()? {
            0 => None,
            1 => {
                let s = core::str::from_utf8(r.short_bytes()?).map_err(|_| Error::Malformed {
                    what: "signed grant",
                })?;
                let role: Role = s.parse()?;
                if role.as_str() != s {
                    return Err(Error::Malformed {
                        what: "signed grant",
                    });
                }
                Some(role)
            }
            _ => {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
        };
        // The share terms are there exactly when more than the signature
        // remains.
        let threshold = if r.remaining() == 64 {
            None
        } else {
            if r.byte()? != 1 {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
            let (threshold, nodes) = (r.byte()?, r.byte()?);
            if threshold < crate::MIN_THRESHOLD || threshold > nodes {
                return Err(Error::InvalidThreshold);
            }
            Some(ShareTerms {
                threshold,
                nodes,
                digest: r.array()?,
            })
        };
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            label,
            epoch,
            user,
            user_key,
            scope,
            expiry,
            commitment,
            ephemeral,
            issued_at,
            nonce,
            request,
            emergency,
            threshold,
            signature,
        })
    }
}

impl fmt::Debug for SignedGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedGrant")
            .field("patient", &self.patient)
            .field("label", &self.label)
            .field("epoch", &self.epoch)
            .field("user", &self.user)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

/// A revocation the patient signed: every grant of one portion label (all
/// key epochs) to one user.
///
/// Encoding: `"SPSV" ‖ version ‖ patient ‖ label ‖ user ‖ issued at (8) ‖
/// nonce (16) ‖ signature (64)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRevocation {
    patient: Identity,
    label: PortionLabel,
    user: Identity,
    issued_at: u64,
    nonce: [u8; 16],
    signature: [u8; 64],
}

impl Signed for SignedRevocation {
    const CONTEXT: &'static [u8] = context::REVOCATION;
    const WHAT: &'static str = "signed revocation";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::SIGNED_REVOCATION, 200);
        put_short_bytes(&mut v, self.patient.as_bytes());
        put_short_bytes(&mut v, self.label.as_bytes());
        put_short_bytes(&mut v, self.user.as_bytes());
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl SignedRevocation {
    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }
    /// The user.
    pub fn user(&self) -> &Identity {
        &self.user
    }
    /// When the patient signed it.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// Its nonce.
    pub fn nonce(&self) -> [u8; 16] {
        self.nonce
    }

    /// Checks the signature with the patient's consent key.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`].
    pub fn verify(&self, consent_key: &VerifyingKey) -> Result<()> {
        self.check(consent_key)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("signed revocation", bytes, magic::SIGNED_REVOCATION)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let user = Identity::from_utf8(r.short_bytes()?)?;
        let issued_at = r.u64()?;
        let nonce = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            label,
            user,
            issued_at,
            nonce,
            signature,
        })
    }
}

impl fmt::Debug for SignedRevocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRevocation")
            .field("patient", &self.patient)
            .field("label", &self.label)
            .field("user", &self.user)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

/// A refusal of an access request, signed by the patient.
///
/// Encoding: `"SPSF" ‖ version ‖ patient ‖ request id (16) ‖ reason
/// (2-byte length) ‖ issued at (8) ‖ nonce (16) ‖ signature (64)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRefusal {
    patient: Identity,
    request: RequestId,
    reason: String,
    issued_at: u64,
    nonce: [u8; 16],
    signature: [u8; 64],
}

impl Signed for SignedRefusal {
    const CONTEXT: &'static [u8] = context::REFUSAL;
    const WHAT: &'static str = "signed refusal";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::SIGNED_REFUSAL, 128 + self.reason.len());
        put_short_bytes(&mut v, self.patient.as_bytes());
        v.extend_from_slice(&self.request.0);
        // At most 1024 bytes (checked when made and decoded).
        v.extend_from_slice(&short_len(self.reason.len()));
        v.extend_from_slice(self.reason.as_bytes());
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl SignedRefusal {
    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The request refused.
    pub fn request(&self) -> RequestId {
        self.request
    }
    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Checks the signature with the patient's consent key.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`].
    pub fn verify(&self, consent_key: &VerifyingKey) -> Result<()> {
        self.check(consent_key)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// Encoding errors; [`Error::Malformed`] for a bad reason text.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("signed refusal", bytes, magic::SIGNED_REFUSAL)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let request = RequestId(r.array()?);
        let n = usize::from(u16::from_be_bytes(r.array()?));
        let reason = core::str::from_utf8(r.take(n)?).map_err(|_| Error::Malformed {
            what: "signed refusal",
        })?;
        let reason = crate::model::check_text(reason)?;
        let issued_at = r.u64()?;
        let nonce = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            request,
            reason,
            issued_at,
            nonce,
            signature,
        })
    }
}

impl fmt::Debug for SignedRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRefusal")
            .field("patient", &self.patient)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// The SRS's signed statement that a revocation took effect: the patient's
/// proof that, and when, access ended. Verifiable offline with the SRS's
/// public key ([`crate::srs::Srs::verifying_key`]).
///
/// Encoding: `"SPRR" ‖ version ‖ patient ‖ label ‖ user ‖ revoked at (8) ‖
/// first audit entry (8) ‖ grants ended (4) ‖ SHA-256 of the authorization
/// (32) ‖ signature (64)`. The authorization is the patient's
/// [`SignedRevocation`], or for an administrative revocation the audit
/// entry's evidence (actor, role and reason).
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationReceipt {
    patient: Identity,
    label: PortionLabel,
    user: Identity,
    revoked_at: u64,
    seq: u64,
    grants: u32,
    authorization: [u8; 32],
    signature: [u8; 64],
}

impl Signed for RevocationReceipt {
    const CONTEXT: &'static [u8] = context::RECEIPT;
    const WHAT: &'static str = "revocation receipt";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::RECEIPT, 250);
        put_short_bytes(&mut v, self.patient.as_bytes());
        put_short_bytes(&mut v, self.label.as_bytes());
        put_short_bytes(&mut v, self.user.as_bytes());
        v.extend_from_slice(&self.revoked_at.to_be_bytes());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.grants.to_be_bytes());
        v.extend_from_slice(&self.authorization);
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl RevocationReceipt {
    /// Made and signed by the SRS.
    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key: &SigningKey,
        patient: Identity,
        label: PortionLabel,
        user: Identity,
        revoked_at: u64,
        seq: u64,
        grants: u32,
        authorization: &[u8],
    ) -> Self {
        let mut r = Self {
            patient,
            label,
            user,
            revoked_at,
            seq,
            grants,
            authorization: Sha256::digest(authorization).into(),
            signature: [0; 64],
        };
        r.signature = r.signed_by(key);
        r
    }

    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }
    /// The user whose access ended.
    pub fn user(&self) -> &Identity {
        &self.user
    }
    /// When (by the SRS's clock).
    pub fn revoked_at(&self) -> u64 {
        self.revoked_at
    }
    /// The sequence number of the first audit entry of the revocation.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// How many grants (key epochs) ended.
    pub fn grants(&self) -> u32 {
        self.grants
    }
    /// Whether this receipt is for `revocation` (its SHA-256 is the one
    /// signed).
    pub fn is_for(&self, revocation: &SignedRevocation) -> bool {
        let h: [u8; 32] = Sha256::digest(revocation.to_bytes()).into();
        h == self.authorization
    }

    /// Checks the SRS's signature.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`].
    pub fn verify(&self, srs_key: &VerifyingKey) -> Result<()> {
        self.check(srs_key)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("revocation receipt", bytes, magic::RECEIPT)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let user = Identity::from_utf8(r.short_bytes()?)?;
        let revoked_at = r.u64()?;
        let seq = r.u64()?;
        let grants = r.u32()?;
        let authorization = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            label,
            user,
            revoked_at,
            seq,
            grants,
            authorization,
            signature,
        })
    }
}

impl fmt::Debug for RevocationReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationReceipt")
            .field("patient", &self.patient)
            .field("label", &self.label)
            .field("user", &self.user)
            .field("revoked_at", &self.revoked_at)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// What [`check_entry`] found an audit entry to be.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checked {
    /// A patient registration (or added portion keys), self-signed by this
    /// consent key.
    Registration(VerifyingKey),
    /// A user registration with a valid key proof.
    User,
    /// A portion key with a valid proof of possession by the patient.
    PortionKey,
    /// A grant the patient signed.
    Grant,
    /// A revocation the patient signed.
    Revocation,
    /// A refusal the patient signed.
    Refusal,
    /// An administrative change (no patient signature; its actor and role
    /// are in the entry).
    Administrative,
    /// An entry that carries no consent (a re-encryption, a request).
    NotConsent,
}

/// Re-checks one audit entry's evidence with public keys alone: that the
/// signed object verifies under the patient's consent key (looked up with
/// `consent_key`) and names exactly the patient, label and user of the
/// entry. An auditor runs this over an audit export ([`AuditEntry::to_json`]
/// carries the evidence in hex), keeping each patient's consent key from
/// their registration entry (or from the patient directly).
///
/// # Errors
/// [`Error::InvalidSignature`] if a signature or proof fails;
/// [`Error::Malformed`] if the evidence does not decode, is missing where
/// consent is required, or disagrees with the entry; [`Error::KeyMismatch`]
/// if no consent key is known for the patient.
pub fn check_entry(
    entry: &AuditEntry,
    consent_key: &dyn Fn(&Identity) -> Option<VerifyingKey>,
) -> Result<Checked> {
    const BAD: Error = Error::Malformed {
        what: "audit evidence does not match its entry",
    };
    if entry.outcome != AuditOutcome::Ok {
        return Ok(Checked::NotConsent);
    }
    let key_of = |p: &Option<Identity>| -> Result<VerifyingKey> {
        let p = p.as_ref().ok_or(BAD)?;
        consent_key(p).ok_or(Error::KeyMismatch)
    };
    match entry.action {
        AuditAction::AddPortion => {
            let patient = entry.patient.as_ref().ok_or(BAD)?;
            let label = entry.label.as_ref().ok_or(BAD)?;
            let mut r = Reader::unframed("portion key proof", &entry.evidence);
            let epoch = r.u32()?;
            let key = PublicKey::from_bytes(&r.array()?)?;
            let proof = KeyProof::from_bytes(&r.array::<64>()?)?;
            r.finish()?;
            proof.verify_portion(patient, &PortionPublicKey::new(label.clone(), epoch, key))?;
            Ok(Checked::PortionKey)
        }
        AuditAction::RegisterPatient => {
            let r = PatientRegistration::from_bytes(&entry.evidence)?;
            r.verify()?;
            if entry.patient.as_ref() != Some(&r.patient) {
                return Err(BAD);
            }
            Ok(Checked::Registration(r.consent_key))
        }
        AuditAction::RegisterUser => {
            let user = entry.user.as_ref().ok_or(BAD)?;
            let mut r = Reader::unframed("user key proof", &entry.evidence);
            let key = PublicKey::from_bytes(&r.array()?)?;
            let proof = KeyProof::from_bytes(&r.array::<64>()?)?;
            r.finish()?;
            proof.verify_user(user, &key)?;
            Ok(Checked::User)
        }
        AuditAction::Grant => {
            let g = SignedGrant::from_bytes(&entry.evidence)?;
            g.verify(&key_of(&entry.patient)?)?;
            if entry.patient.as_ref() != Some(&g.patient)
                || entry.label.as_ref() != Some(&g.label)
                || entry.user.as_ref() != Some(&g.user)
            {
                return Err(BAD);
            }
            Ok(Checked::Grant)
        }
        AuditAction::Revoke | AuditAction::RemoveUser if is_admin(&entry.evidence) => {
            Ok(Checked::Administrative)
        }
        AuditAction::Revoke => {
            let r = SignedRevocation::from_bytes(&entry.evidence)?;
            r.verify(&key_of(&entry.patient)?)?;
            if entry.patient.as_ref() != Some(&r.patient)
                || entry.label.as_ref() != Some(&r.label)
                || entry.user.as_ref() != Some(&r.user)
            {
                return Err(BAD);
            }
            Ok(Checked::Revocation)
        }
        AuditAction::RefuseRequest => {
            let r = SignedRefusal::from_bytes(&entry.evidence)?;
            r.verify(&key_of(&entry.patient)?)?;
            if entry.patient.as_ref() != Some(&r.patient) {
                return Err(BAD);
            }
            Ok(Checked::Refusal)
        }
        AuditAction::RemoveUser => Err(BAD),
        _ => Ok(Checked::NotConsent),
    }
}

/// The evidence of an administrative action: `"SPAD" ‖ version ‖ actor ‖
/// role ‖ reason (2-byte length)`.
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
pub(crate) fn admin_evidence(actor: &Identity, role: &Role, reason: &str) -> Vec<u8> {
    let mut v = frame(magic::ADMIN, 64 + reason.len());
    put_short_bytes(&mut v, actor.as_bytes());
    put_short_bytes(&mut v, role.as_str().as_bytes());
    // Reasons are checked text: at most 1024 bytes.
    v.extend_from_slice(&short_len(reason.len()));
    v.extend_from_slice(reason.as_bytes());
    v
}

fn is_admin(evidence: &[u8]) -> bool {
    evidence.get(..4) == Some(&magic::ADMIN[..])
}

/// The evidence of a portion key's registration: `epoch (4) ‖ key (32) ‖
/// proof (64)` (the patient and label are the entry's).
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
pub(crate) fn portion_evidence(key: &PortionPublicKey, proof: &KeyProof) -> Vec<u8> {
    let mut v = Vec::with_capacity(100);
    v.extend_from_slice(&key.epoch().to_be_bytes());
    v.extend_from_slice(key.key().as_bytes());
    v.extend_from_slice(&proof.to_bytes());
    v
}

/// The evidence of a user registration: the key and its proof.
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
pub(crate) fn user_evidence(key: &PublicKey, proof: &KeyProof) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(&proof.to_bytes());
    v
}

/// Who carried out an administrative change (a compliance officer removing
/// a clinician who left): recorded in the audit entry in place of a patient
/// signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Who.
    pub identity: Identity,
    /// In which role.
    pub role: Role,
    /// Why (1–1024 bytes of text).
    pub reason: String,
}

impl Actor {
    /// An actor with a reason.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an empty or too long reason, or one with
    /// control characters.
    pub fn new(identity: Identity, role: Role, reason: &str) -> Result<Self> {
        Ok(Self {
            identity,
            role,
            reason: crate::model::check_text(reason)?,
        })
    }

    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn evidence(&self) -> Vec<u8> {
        admin_evidence(&self.identity, &self.role, &self.reason)
    }
}
