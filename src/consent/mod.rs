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

/// Decodes an Ed25519 public key (a valid, non-weak curve point, in its one
/// canonical encoding).
///
/// # Errors
///
/// [`Error::NonCanonicalPoint`] for bytes that are not a point, or not the
/// canonical encoding of one (`y ≥ p`, or `x = 0` with the sign bit set):
/// one key, one encoding; [`Error::IdentityPoint`] for a point of small
/// order (a weak key).
pub fn decode_verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey> {
    let k = VerifyingKey::from_bytes(bytes).map_err(|_| Error::NonCanonicalPoint)?;
    if k.to_edwards().compress().as_bytes() != bytes {
        return Err(Error::NonCanonicalPoint);
    }
    if k.is_weak() {
        return Err(Error::IdentityPoint);
    }
    Ok(k)
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

mod audit;
mod grant;
mod key_proof;
mod patient;
mod receipt;
mod refusal;
mod registration;
mod revocation;

/// Access requests are named by a [`RequestId`] (an identifier like
/// [`crate::RecordId`]; re-exported here, where grants and refusals use it).
pub use crate::ids::RequestId;
pub use audit::*;
pub use grant::*;
pub use key_proof::*;
pub use receipt::*;
pub use refusal::*;
pub use registration::*;
pub use revocation::*;
