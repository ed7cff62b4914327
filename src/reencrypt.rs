//! Re-encryption by the SRS, its optional proof of correctness, and the
//! delegatee's side.
//!
//! The SRS computes `E' = rk·E` after checking the capsule proof. The
//! delegatee recomputes `d` from its own secret and `X_e`, and gets
//! `Z = d·E' = r·X_{P,c}`. The optional proof is a Chaum–Pedersen DLEQ
//! that `log_G RK = log_E E'`; the delegatee needs no one's word for `RK`,
//! since `RK = d⁻¹·X_{P,c}`.

use core::fmt;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::capsule::{CAPSULE_LEN, Capsule, VerifiedHeader};
use crate::encoding::{Reader, decode_scalar, frame, hex, magic};
use crate::error::{Error, Result};
use crate::group::{double_and_compress, half};
use crate::hash::{hash_to_scalar, hedged_nonce, tag};
use crate::keys::PublicKey;
use crate::rekey::ReKey;

/// A Chaum–Pedersen proof that `E' = rk·E` for the `rk` with `RK = rk·G`:
/// `(c, z)` with `c = H_s("sesphr/v1/reencryption-proof", RK, E, E', X_e, A₁, A₂)`,
/// `A₁ = z·G − c·RK`, `A₂ = z·E − c·E'`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReEncryptionProof {
    c: Scalar,
    z: Scalar,
}

impl fmt::Debug for ReEncryptionProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReEncryptionProof")
            .field("c", &hex(self.c.as_bytes()))
            .field("z", &hex(self.z.as_bytes()))
            .finish()
    }
}

fn proof_challenge(
    commitment: &[u8; 32],
    e: &[u8; 32],
    e_prime: &CompressedRistretto,
    ephemeral: &PublicKey,
    a1: &CompressedRistretto,
    a2: &CompressedRistretto,
) -> Scalar {
    hash_to_scalar(
        tag::REENCRYPTION_PROOF,
        &[
            commitment,
            e,
            e_prime.as_bytes(),
            ephemeral.as_bytes(),
            a1.as_bytes(),
            a2.as_bytes(),
        ],
    )
}

/// A re-encrypted capsule `(capsule, E', X_e, [proof])`: what the SRS returns
/// to a granted user for one portion header.
///
/// Encoding: `"SPRC" ‖ version ‖ flags ‖ E ‖ V ‖ s ‖ E' ‖ X_e ‖ [c ‖ z]`;
/// flag bit 0 says whether the proof follows; other bits must be zero.
#[derive(Clone, PartialEq, Eq)]
pub struct ReCapsule {
    pub(crate) capsule: Capsule,
    e_prime: CompressedRistretto,
    pub(crate) e_prime_point: RistrettoPoint,
    pub(crate) ephemeral: PublicKey,
    pub(crate) proof: Option<ReEncryptionProof>,
}

impl ReCapsule {
    /// Length of the encoding without a proof.
    pub const LEN: usize = 6 + CAPSULE_LEN + 64;
    /// Length of the encoding with a proof.
    pub const LEN_WITH_PROOF: usize = Self::LEN + 64;

    /// The original capsule.
    pub fn capsule(&self) -> &Capsule {
        &self.capsule
    }

    /// The ephemeral key `X_e` of the grant it was made under.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }

    /// The proof of correct re-encryption, if the SRS was asked for one.
    pub fn proof(&self) -> Option<&ReEncryptionProof> {
        self.proof.as_ref()
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = frame(magic::RECAPSULE, Self::LEN_WITH_PROOF);
        v.push(u8::from(self.proof.is_some()));
        v.extend_from_slice(&self.capsule.to_bytes());
        v.extend_from_slice(self.e_prime.as_bytes());
        v.extend_from_slice(self.ephemeral.as_bytes());
        if let Some(p) = &self.proof {
            v.extend_from_slice(p.c.as_bytes());
            v.extend_from_slice(p.z.as_bytes());
        }
        v
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::ReservedBitsSet`], [`Error::NonCanonicalPoint`],
    /// [`Error::IdentityPoint`], [`Error::NonCanonicalScalar`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("re-capsule", bytes, magic::RECAPSULE)?;
        let flags = r.byte()?;
        if flags & !1 != 0 {
            return Err(Error::ReservedBitsSet);
        }
        let capsule = Capsule::read(&mut r)?;
        let (e_prime, e_prime_point) = r.point()?;
        let (ec, ep) = r.point()?;
        let proof = if flags & 1 == 1 {
            let c = decode_scalar(&r.array()?)?;
            let z = decode_scalar(&r.array()?)?;
            Some(ReEncryptionProof { c, z })
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            capsule,
            e_prime,
            e_prime_point,
            ephemeral: PublicKey::from_parts(ec, ep),
            proof,
        })
    }

    /// Checks the proof of correct re-encryption against the commitment
    /// `RK` of the re-encryption key.
    ///
    /// # Errors
    /// [`Error::InvalidReEncryptionProof`] if there is no proof or it fails.
    pub fn verify_proof(&self, commitment: &PublicKey) -> Result<()> {
        let p = self.proof.as_ref().ok_or(Error::InvalidReEncryptionProof)?;
        let e = self.capsule.e();
        // A₁/2 and A₂/2 from halved scalars, so both compress with one inversion.
        let (z_half, c_half) = (half(&p.z), half(&p.c));
        let [(a1, _), (a2, _)] = double_and_compress([
            RistrettoPoint::vartime_double_scalar_mul_basepoint(
                &-c_half,
                commitment.point(),
                &z_half,
            ),
            RistrettoPoint::vartime_multiscalar_mul([z_half, -c_half], [*e, self.e_prime_point]),
        ]);
        let c = proof_challenge(
            commitment.as_bytes(),
            self.capsule.e_bytes(),
            &self.e_prime,
            &self.ephemeral,
            &a1,
            &a2,
        );
        if c == p.c {
            Ok(())
        } else {
            Err(Error::InvalidReEncryptionProof)
        }
    }
}

impl fmt::Debug for ReCapsule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReCapsule")
            .field("capsule", &self.capsule)
            .field("e_prime", &hex(self.e_prime.as_bytes()))
            .field("ephemeral", &self.ephemeral)
            .field("proof", &self.proof)
            .finish()
    }
}

/// `E' = rk·E`, with a proof when `rng` is given: the one re-encryption
/// routine behind [`ReKey`] and the SRS's [`ServingKey`].
pub(crate) fn reencrypt_parts<R: CryptoRng + ?Sized>(
    rk: &Scalar,
    ephemeral: &PublicKey,
    commitment: &[u8; 32],
    header: VerifiedHeader<'_>,
    rng: Option<&mut R>,
) -> ReCapsule {
    let header = header.header();
    let e = header.capsule().e();
    let Some(rng) = rng else {
        let e_prime_point = rk * e;
        return ReCapsule {
            capsule: *header.capsule(),
            e_prime: e_prime_point.compress(),
            e_prime_point,
            ephemeral: *ephemeral,
            proof: None,
        };
    };
    // E', A₁ = w·G and A₂ = w·E, computed halved and compressed together.
    // The nonce is hedged (a repeated w for two statements would reveal rk).
    let mut w_half = hedged_nonce(
        tag::PROOF_NONCE,
        rk,
        &[commitment, header.capsule().e_bytes(), ephemeral.as_bytes()],
        rng,
    );
    let mut rk_half = half(rk);
    let [(e_prime, e_prime_point), (a1, _), (a2, _)] =
        double_and_compress([rk_half * e, &w_half * RISTRETTO_BASEPOINT_TABLE, w_half * e]);
    let c = proof_challenge(
        commitment,
        header.capsule().e_bytes(),
        &e_prime,
        ephemeral,
        &a1,
        &a2,
    );
    let z = w_half + w_half + c * rk;
    w_half.zeroize();
    rk_half.zeroize();
    ReCapsule {
        capsule: *header.capsule(),
        e_prime,
        e_prime_point,
        ephemeral: *ephemeral,
        proof: Some(ReEncryptionProof { c, z }),
    }
}

/// What the SRS keeps of a re-encryption key while a grant is active:
/// `rk`, and the encodings of `X_e` and `RK` (96 bytes; the portion and user
/// keys are the registry's). Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ServingKey {
    rk: Scalar,
    ephemeral: [u8; 32],
    commitment: [u8; 32],
}

impl ServingKey {
    pub(crate) const LEN: usize = 96;

    pub(crate) fn new(key: &ReKey) -> Self {
        Self {
            rk: *key.scalar(),
            ephemeral: key.ephemeral().to_bytes(),
            commitment: key.commitment().to_bytes(),
        }
    }

    /// `rk ‖ X_e ‖ RK`.
    pub(crate) fn to_bytes(&self) -> zeroize::Zeroizing<[u8; Self::LEN]> {
        let mut v = zeroize::Zeroizing::new([0u8; Self::LEN]);
        v[..32].copy_from_slice(self.rk.as_bytes());
        v[32..64].copy_from_slice(&self.ephemeral);
        v[64..].copy_from_slice(&self.commitment);
        v
    }

    /// Decodes [`ServingKey::to_bytes`] of a key that was validated when it
    /// was granted and comes back authenticated (sealed): the scalar is
    /// checked, the points are decoded only when used.
    pub(crate) fn from_authenticated_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::unframed("serving key", bytes);
        let mut rk_bytes = r.array::<32>()?;
        let rk = crate::encoding::decode_secret_scalar(&rk_bytes);
        rk_bytes.zeroize();
        let ephemeral = r.array()?;
        let commitment = r.array()?;
        r.finish()?;
        Ok(Self {
            rk: rk?,
            ephemeral,
            commitment,
        })
    }

    pub(crate) fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// `X_e`, decoded.
    pub(crate) fn ephemeral(&self) -> Result<PublicKey> {
        PublicKey::from_bytes(&self.ephemeral)
    }

    /// Re-encrypts a verified header (of this grant's portion: the caller
    /// looked the grant up by the header's portion key), with a proof when
    /// `rng` is given. `ephemeral` is [`ServingKey::ephemeral`], decoded once
    /// per request or batch.
    pub(crate) fn reencrypt<R: CryptoRng + ?Sized>(
        &self,
        ephemeral: &PublicKey,
        header: VerifiedHeader<'_>,
        rng: Option<&mut R>,
    ) -> ReCapsule {
        reencrypt_parts(&self.rk, ephemeral, &self.commitment, header, rng)
    }
}
