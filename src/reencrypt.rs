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
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::capsule::{CAPSULE_LEN, Capsule, PortionHeader, VerifiedHeader};
use crate::ct::public;
use crate::encoding::{Reader, decode_scalar, frame_version, hex, magic, version};
use crate::error::{Error, Result};
use crate::group::{double_and_compress, half};
use crate::hash::{hash_to_scalar, hedged_nonce, tag};
use crate::keys::PublicKey;
use crate::pq::{
    Draw, PQ_STANZA_LEN, PqPublicKey, PqSecretKey, Role, SIGMA_LEN, SrsPqSecretKey, Stanza,
};

/// A Chaum–Pedersen proof that `E' = rk·E` for the `rk` with `RK = rk·G`,
/// over the whole re-capsule: `(c, z)` with
/// `c = H_s("sesphr/v1/recapsule-proof", RK, B, A₁, A₂)`, where `B` is every
/// byte of the re-capsule's encoding before the proof (magic, version,
/// flags, node index, `E`, `V`, `s`, `E'`, `X_e`), `A₁ = z·G − c·RK`,
/// `A₂ = z·E − c·E'`. No byte of a re-capsule that verifies can be changed.
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
    proved: &[u8],
    a1: &CompressedRistretto,
    a2: &CompressedRistretto,
) -> Scalar {
    hash_to_scalar(
        tag::RECAPSULE_PROOF,
        &[commitment, proved, a1.as_bytes(), a2.as_bytes()],
    )
}

/// A re-encrypted capsule `(capsule, E', X_e, [proof])`: what the SRS returns
/// to a granted user for one portion header.
///
/// A node of a threshold SRS returns a *re-capsule share*: the same object
/// with the node's index `i`, `E'_i = rk_i·E`, and a proof against the
/// node's verification key `R_i` (see [`crate::ThresholdOpener`]).
///
/// Encoding: `"SPRC" ‖ 02 ‖ flags ‖ [index] ‖ E ‖ V ‖ s ‖ E' ‖ X_e ‖
/// [stanza] ‖ [c ‖ z]`; flag bit 0 says whether the proof follows, bit 1
/// whether a node index (1–255) follows the flags, bit 2 whether a
/// post-quantum stanza (1,136 bytes: the hybrid header's secret `σ`
/// re-wrapped by the SRS to the user's ML-KEM-768 key) follows `X_e`; other
/// bits must be zero. Version 1
/// (whose proof left `V`, `s`, the flags and the index out) is refused with
/// [`Error::UnsupportedVersion`].
#[derive(Clone, PartialEq, Eq)]
pub struct ReCapsule {
    pub(crate) capsule: Capsule,
    e_prime: CompressedRistretto,
    pub(crate) e_prime_point: RistrettoPoint,
    pub(crate) ephemeral: PublicKey,
    pub(crate) proof: Option<ReEncryptionProof>,
    pub(crate) share: Option<u8>,
    pub(crate) pq: Option<Box<Stanza>>,
}

/// Flag bits of the re-capsule encoding.
const FLAG_PROOF: u8 = 1;
const FLAG_SHARE: u8 = 2;
const FLAG_PQ: u8 = 4;

impl ReCapsule {
    /// Length of the encoding without a proof.
    pub const LEN: usize = 6 + CAPSULE_LEN + 64;
    /// Length of the encoding with a proof.
    pub const LEN_WITH_PROOF: usize = Self::LEN + 64;
    /// Length of a share's encoding without a proof (one more byte: the
    /// node index).
    pub const SHARE_LEN: usize = Self::LEN + 1;
    /// Length of a share's encoding with a proof.
    pub const SHARE_LEN_WITH_PROOF: usize = Self::LEN_WITH_PROOF + 1;
    /// Length of a hybrid re-capsule's encoding without a proof (a
    /// post-quantum stanza more).
    pub const HYBRID_LEN: usize = Self::LEN + PQ_STANZA_LEN;
    /// Length of a hybrid re-capsule's encoding with a proof.
    pub const HYBRID_LEN_WITH_PROOF: usize = Self::LEN_WITH_PROOF + PQ_STANZA_LEN;

    /// Whether it carries a post-quantum stanza (made for a hybrid header).
    pub fn is_hybrid(&self) -> bool {
        self.pq.is_some()
    }

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

    /// The node index `i` of a re-capsule share (made by one node of a
    /// threshold SRS); `None` for a whole re-capsule.
    pub fn share_index(&self) -> Option<u8> {
        self.share
    }

    /// The re-encrypted point `E'` (`E'_i` for a share), encoded.
    pub fn e_prime(&self) -> &[u8; 32] {
        self.e_prime.as_bytes()
    }

    /// The encoding up to (not including) the proof, with the proof flag
    /// set as `with_proof` says: what the proof's challenge covers.
    fn encode_before_proof(&self, with_proof: bool) -> Vec<u8> {
        let mut v = frame_version(
            magic::RECAPSULE,
            version::RECAPSULE,
            Self::SHARE_LEN_WITH_PROOF + PQ_STANZA_LEN,
        );
        let mut flags = 0;
        if with_proof {
            flags |= FLAG_PROOF;
        }
        if self.share.is_some() {
            flags |= FLAG_SHARE;
        }
        if self.pq.is_some() {
            flags |= FLAG_PQ;
        }
        v.push(flags);
        if let Some(i) = self.share {
            v.push(i);
        }
        v.extend_from_slice(&self.capsule.to_bytes());
        v.extend_from_slice(self.e_prime.as_bytes());
        v.extend_from_slice(self.ephemeral.as_bytes());
        if let Some(pq) = &self.pq {
            pq.encode_into(&mut v);
        }
        v
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.encode_before_proof(self.proof.is_some());
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
    /// [`Error::IdentityPoint`], [`Error::NonCanonicalScalar`];
    /// [`Error::InvalidShare`] for node index 0.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r =
            Reader::framed_version("re-capsule", bytes, magic::RECAPSULE, version::RECAPSULE)?;
        let flags = r.byte()?;
        if flags & !(FLAG_PROOF | FLAG_SHARE | FLAG_PQ) != 0 {
            return Err(Error::ReservedBitsSet);
        }
        let share = if flags & FLAG_SHARE == 0 {
            None
        } else {
            match r.byte()? {
                0 => return Err(Error::InvalidShare { index: 0 }),
                i => Some(i),
            }
        };
        let capsule = Capsule::read(&mut r)?;
        let (e_prime, e_prime_point) = r.point()?;
        let (ec, ep) = r.point()?;
        let pq = if flags & FLAG_PQ == 0 {
            None
        } else {
            Some(Box::new(Stanza::read(&mut r)?))
        };
        let proof = if flags & FLAG_PROOF != 0 {
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
            share,
            pq,
        })
    }

    /// Checks the proof of correct re-encryption against the commitment
    /// `RK` of the re-encryption key (for a share: the node's verification
    /// key `R_i`, [`crate::ShareCommitments::verification_key`]).
    ///
    /// # Errors
    /// [`Error::InvalidReEncryptionProof`] if there is no proof or it fails.
    pub fn verify_proof(&self, commitment: &PublicKey) -> Result<()> {
        if verify_proofs(&[(self, commitment)]) == [true] {
            Ok(())
        } else {
            Err(Error::InvalidReEncryptionProof)
        }
    }
}

/// Checks the proofs of correct re-encryption of several re-capsules, each
/// against its commitment, with one field inversion for all (`A₁/2` and
/// `A₂/2` from halved scalars, compressed in one batch). `false` for a
/// re-capsule without a proof.
pub(crate) fn verify_proofs(items: &[(&ReCapsule, &PublicKey)]) -> Vec<bool> {
    let mut halves = Vec::with_capacity(2 * items.len());
    for (rc, commitment) in items {
        if let Some(p) = &rc.proof {
            let (z_half, c_half) = (half(&p.z), half(&p.c));
            halves.push(RistrettoPoint::vartime_double_scalar_mul_basepoint(
                &-c_half,
                commitment.point(),
                &z_half,
            ));
            halves.push(RistrettoPoint::vartime_multiscalar_mul(
                [z_half, -c_half],
                [*rc.capsule.e(), rc.e_prime_point],
            ));
        }
    }
    let compressed = RistrettoPoint::double_and_compress_batch(&halves);
    let mut a = compressed.chunks_exact(2);
    items
        .iter()
        .map(|(rc, commitment)| {
            let Some(p) = &rc.proof else {
                return false;
            };
            let Some([a1, a2]) = a.next() else {
                return false;
            };
            proof_challenge(commitment.as_bytes(), &rc.encode_before_proof(true), a1, a2) == p.c
        })
        .collect()
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

/// The SRS's post-quantum step for a hybrid header (DESIGN §16): `σ` (for
/// node `share` of a threshold SRS, its share `σ_i`) from the header's
/// stanza for it, re-wrapped with a fresh encapsulation to the granted
/// user's ML-KEM-768 key, bound to the header's base context and the
/// grant's `X_e`. `None` for a classical header. A whole key (`share`
/// `None`) serves only a header sealed to one SRS.
///
/// # Errors
/// [`Error::KeyMismatch`] if the header was sealed to another SRS key
/// version, has no stanza for this node, or (for a whole key) is split;
/// [`Error::DecryptionFailed`] if the stanza does not open or holds
/// another share than the header commits to.
pub(crate) fn rewrap<R: CryptoRng + ?Sized>(
    header: VerifiedHeader<'_>,
    share: Option<u8>,
    srs: &SrsPqSecretKey,
    user: &PqPublicKey,
    ephemeral: &PublicKey,
    rng: &mut R,
    draw: Draw,
) -> Result<Option<Stanza>> {
    let header = header.header();
    if share.is_none() && header.pq_split().is_some_and(|split| split != (1, 1)) {
        return Err(Error::KeyMismatch);
    }
    let node = share.unwrap_or(1);
    let Some(sigma) = header.srs_sigma(node, srs.secret(), srs.version())? else {
        return Ok(None);
    };
    Stanza::seal(
        user,
        Role::Delegatee,
        &delegatee_ad(header.base_context_bytes(), ephemeral),
        &sigma,
        rng,
        draw,
    )
    .map(Some)
}

/// The hybrid re-encryption behind [`crate::ReKey`] and
/// [`crate::ReKeyShare`] (`share`: the node index): `σ`, or the node's
/// share of it, re-wrapped to `user` ([`rewrap`]), then `E' = rk·E`, proved
/// when `with_proof` (the encapsulation's randomness first, then the
/// proof's nonce, from `rng`). The caller checked the portion.
///
/// # Errors
/// As [`rewrap`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn reencrypt_hybrid_parts<R: CryptoRng + ?Sized>(
    rk: &Scalar,
    ephemeral: &PublicKey,
    commitment: &[u8; 32],
    share: Option<u8>,
    header: VerifiedHeader<'_>,
    (srs, user): (&SrsPqSecretKey, &PqPublicKey),
    with_proof: bool,
    (rng, draw): (&mut R, Draw),
) -> Result<ReCapsule> {
    let pq = rewrap(header, share, srs, user, ephemeral, rng, draw)?;
    let proof_rng = if with_proof { Some(rng) } else { None };
    Ok(reencrypt_parts(
        rk, ephemeral, commitment, share, pq, header, proof_rng,
    ))
}

/// Node `node`'s share of `σ` (`σ` itself for one SRS, node 1) from a
/// re-capsule's stanza, opened with the user's ML-KEM-768 key and checked
/// against the header's commitment to it.
///
/// # Errors
/// [`Error::DecryptionFailed`] if the stanza does not open or holds another
/// share than the header commits to.
pub(crate) fn open_rewrapped(
    header: &PortionHeader,
    node: u8,
    stanza: &Stanza,
    key: &PqSecretKey,
    ephemeral: &PublicKey,
) -> Result<Zeroizing<[u8; SIGMA_LEN]>> {
    let share = stanza.open(
        key,
        Role::Delegatee,
        &delegatee_ad(header.base_context_bytes(), ephemeral),
    )?;
    header.check_share(node, &share)?;
    Ok(share)
}

/// The associated data of a re-wrapped `σ`: the header's base context and
/// the grant's `X_e`.
pub(crate) fn delegatee_ad<'a>(base_context: &'a [u8], ephemeral: &'a PublicKey) -> [&'a [u8]; 2] {
    [base_context, ephemeral.as_bytes()]
}

/// `E' = rk·E`, with a proof (against `commitment`, `rk·G`) when `rng` is
/// given, carrying `pq` (a hybrid header's re-wrapped `σ`): the one re-encryption routine behind [`ReKey`], a node's
/// [`crate::ReKeyShare`] (`share` is then its index) and the SRS's
/// [`ServingKey`].
pub(crate) fn reencrypt_parts<R: CryptoRng + ?Sized>(
    rk: &Scalar,
    ephemeral: &PublicKey,
    commitment: &[u8; 32],
    share: Option<u8>,
    pq: Option<Stanza>,
    header: VerifiedHeader<'_>,
    rng: Option<&mut R>,
) -> ReCapsule {
    let pq = pq.map(Box::new);
    let header = header.header();
    let e = header.capsule().e();
    let Some(rng) = rng else {
        let e_prime_point = rk * e;
        return public(
            ReCapsule {
                capsule: *header.capsule(),
                e_prime: e_prime_point.compress(),
                e_prime_point,
                ephemeral: *ephemeral,
                proof: None,
                share,
                pq,
            },
            "re-capsule",
        );
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
    let mut rc = ReCapsule {
        capsule: *header.capsule(),
        e_prime,
        e_prime_point,
        ephemeral: *ephemeral,
        proof: None,
        share,
        pq,
    };
    let c = proof_challenge(commitment, &rc.encode_before_proof(true), &a1, &a2);
    let z = w_half + w_half + c * rk;
    w_half.zeroize();
    rk_half.zeroize();
    rc.proof = Some(ReEncryptionProof { c, z });
    public(rc, "re-capsule")
}

/// What the SRS keeps of a re-encryption key while a grant is active:
/// `rk`, and the encodings of `X_e` and `RK` (96 bytes; the portion and user
/// keys are the registry's). A node of a threshold SRS keeps its share
/// `rk_i` in place of `rk`, and also its index `i` and verification key
/// `R_i` (129 bytes). Zeroized on drop.
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ServingKey {
    rk: Scalar,
    ephemeral: [u8; 32],
    commitment: [u8; 32],
    /// The node index, 0 for a whole key.
    share: u8,
    /// `R_i` for a share (all zero for a whole key).
    verification: [u8; 32],
    /// The fingerprint of the user's ML-KEM-768 key the grant names, if any.
    pq_fingerprint: Option<[u8; 32]>,
}

#[cfg_attr(not(feature = "srs"), allow(dead_code))]
impl ServingKey {
    /// Length of a whole key's encoding.
    pub(crate) const LEN: usize = 96;
    /// Length of a share's encoding.
    pub(crate) const SHARE_LEN: usize = Self::LEN + 33;

    /// A whole key: `rk`, `X_e`, `RK` (made by `ReKey::serving_key`).
    pub(crate) fn whole(rk: &Scalar, ephemeral: &PublicKey, commitment: &PublicKey) -> Self {
        Self {
            rk: *rk,
            ephemeral: ephemeral.to_bytes(),
            commitment: commitment.to_bytes(),
            share: 0,
            verification: [0; 32],
            pq_fingerprint: None,
        }
    }

    /// A node's share: `rk_i`, `X_e`, `RK = C_0`, `i`, `R_i`.
    pub(crate) fn share(
        rk_i: &Scalar,
        ephemeral: &PublicKey,
        commitment: &PublicKey,
        index: u8,
        verification: &PublicKey,
    ) -> Self {
        Self {
            rk: *rk_i,
            ephemeral: ephemeral.to_bytes(),
            commitment: commitment.to_bytes(),
            share: index,
            verification: verification.to_bytes(),
            pq_fingerprint: None,
        }
    }

    /// This key, bound to the user's ML-KEM-768 key of fingerprint `fp`
    /// (the signed grant names it).
    pub(crate) fn with_pq_fingerprint(mut self, fp: Option<[u8; 32]>) -> Self {
        self.pq_fingerprint = fp;
        self
    }

    /// The fingerprint of the user's ML-KEM-768 key the grant names.
    pub(crate) fn pq_fingerprint(&self) -> Option<&[u8; 32]> {
        self.pq_fingerprint.as_ref()
    }

    /// `rk ‖ X_e ‖ RK`, then `i ‖ R_i` for a share, then the fingerprint of
    /// the user's ML-KEM key if the grant names one (lengths 96, 128, 129,
    /// 161: each says which).
    pub(crate) fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(Vec::with_capacity(Self::SHARE_LEN));
        v.extend_from_slice(self.rk.as_bytes());
        v.extend_from_slice(&self.ephemeral);
        v.extend_from_slice(&self.commitment);
        if self.share != 0 {
            v.push(self.share);
            v.extend_from_slice(&self.verification);
        }
        if let Some(fp) = &self.pq_fingerprint {
            v.extend_from_slice(fp);
        }
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
        let (share, verification) = if r.remaining() == 0 || r.remaining() == 32 {
            (0, [0; 32])
        } else {
            let i = r.byte()?;
            if i == 0 {
                return Err(Error::InvalidShare { index: 0 });
            }
            (i, r.array()?)
        };
        let pq_fingerprint = if r.at_end() { None } else { Some(r.array()?) };
        r.finish()?;
        Ok(Self {
            rk: rk?,
            ephemeral,
            commitment,
            share,
            verification,
            pq_fingerprint,
        })
    }

    /// `RK` of the whole key (`C_0` for a share).
    pub(crate) fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// The node index of a share.
    pub(crate) fn share_index(&self) -> Option<u8> {
        (self.share != 0).then_some(self.share)
    }

    /// `X_e`, decoded.
    pub(crate) fn ephemeral(&self) -> Result<PublicKey> {
        PublicKey::from_bytes(&self.ephemeral)
    }

    /// Re-encrypts a verified header (of this grant's portion: the caller
    /// looked the grant up by the header's portion key), with a proof when
    /// `rng` is given (against `RK`, or `R_i` for a share). `ephemeral` is
    /// [`ServingKey::ephemeral`], decoded once per request or batch.
    pub(crate) fn reencrypt<R: CryptoRng + ?Sized>(
        &self,
        ephemeral: &PublicKey,
        header: VerifiedHeader<'_>,
        pq: Option<Stanza>,
        rng: Option<&mut R>,
    ) -> ReCapsule {
        let (proved_against, share) = match self.share_index() {
            Some(i) => (&self.verification, Some(i)),
            None => (&self.commitment, None),
        };
        reencrypt_parts(&self.rk, ephemeral, proved_against, share, pq, header, rng)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A serving key's four encodings (whole or share, with or without the
    /// user's ML-KEM key fingerprint) each decode back to what was encoded.
    #[test]
    fn serving_keys_round_trip_in_all_four_forms() {
        let rk = Scalar::from(7u64);
        let p = PublicKey::from_point(&Scalar::from(3u64) * RISTRETTO_BASEPOINT_TABLE);
        for fp in [None, Some([9u8; 32])] {
            for k in [
                ServingKey::whole(&rk, &p, &p),
                ServingKey::share(&rk, &p, &p, 2, &p),
            ] {
                let k = k.with_pq_fingerprint(fp);
                let bytes = k.to_bytes();
                let back = ServingKey::from_authenticated_bytes(&bytes).unwrap();
                assert_eq!(back.to_bytes(), bytes);
                assert_eq!(back.pq_fingerprint(), fp.as_ref());
                assert_eq!(back.share_index(), k.share_index());
            }
        }
    }
}
