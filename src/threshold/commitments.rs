//! The Feldman commitments of a split, with the patient's proof of
//! knowledge of `rk` over them, and the typestate of commitments a signed
//! grant vouched for.

use core::fmt;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use super::{check_threshold, mul_small};
use crate::encoding::{Reader, decode_scalar, frame_version, magic, version};
use crate::error::{Error, Result};
use crate::hash::{encode_parts, hash_to_scalar, tag};
use crate::keys::PublicKey;
use crate::schnorr;

/// The Feldman commitments of a re-encryption key split among `n` nodes
/// with threshold `t`, and the grant they belong to: `X_e`, `X_{P,c}`,
/// `X_U` and `C_0 = RK, C_1, …, C_{t-1}`. Public: the patient's client gives
/// them to every node (inside each share) and to the user.
///
/// They carry the patient's proof of knowledge of `rk` (the discrete log of
/// `C_0`) over the whole encoding, checked when they are decoded: no one
/// without `rk` — no node, no `t − 1` nodes together — can change `t`, `n`,
/// `X_e`, `X_{P,c}`, `X_U` or any `C_j` and still have them decode.
///
/// Encoding: `"SPTC" ‖ 02 ‖ t ‖ n ‖ X_e ‖ X_{P,c} ‖ X_U ‖ C_0 ‖ … ‖
/// C_{t-1} ‖ c ‖ s` (`167 + 32·t` bytes), where `(c, s)` is a Schnorr
/// proof for `C_0`: `R = s·G − c·C_0`, `c = H_s("sesphr/v1/key-proof",
/// "share-commitments", B, C_0, R)` with `B` the encoding before `c`.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareCommitments {
    pub(super) threshold: u8,
    pub(super) nodes: u8,
    pub(super) ephemeral: PublicKey,
    pub(super) portion_key: PublicKey,
    pub(super) delegatee: PublicKey,
    /// `C_0 = RK`.
    pub(super) c0: PublicKey,
    /// `C_1, …, C_{t-1}`.
    pub(super) higher: Vec<PublicKey>,
    /// The patient's proof of knowledge of `rk` over the encoding.
    pub(super) proof: (Scalar, Scalar),
}

impl ShareCommitments {
    /// Length of the encoding for threshold `t`.
    pub const fn encoded_len(threshold: u8) -> usize {
        5 + 2 + 96 + 32 * threshold as usize + 64
    }

    /// The threshold `t`: how many nodes must answer.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The number of nodes `n`.
    pub fn nodes(&self) -> u8 {
        self.nodes
    }

    /// The grant's ephemeral key `X_e`.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }

    /// The portion key `X_{P,c}` the grant re-encrypts from.
    pub fn portion_key(&self) -> &PublicKey {
        &self.portion_key
    }

    /// The user's key `X_U`.
    pub fn delegatee(&self) -> &PublicKey {
        &self.delegatee
    }

    /// `C_0 = RK`, the commitment of the whole re-encryption key.
    pub fn commitment(&self) -> &PublicKey {
        &self.c0
    }

    /// `C_0, …, C_{t-1}`.
    pub fn coefficients(&self) -> impl DoubleEndedIterator<Item = &PublicKey> {
        core::iter::once(&self.c0).chain(&self.higher)
    }

    /// `R_i = Σ i^j·C_j`, computed by Horner's rule with small multipliers.
    pub(super) fn verification_point(&self, index: u8) -> RistrettoPoint {
        let mut r = RistrettoPoint::identity();
        for c in self.coefficients().rev() {
            r = mul_small(&r, index) + c.point();
        }
        r
    }

    /// Node `index`'s verification key `R_i = rk_i·G = Σ i^j·C_j`: what its
    /// proofs of re-encryption are checked against.
    ///
    /// # Errors
    /// [`Error::InvalidShare`] for an index outside `1..=n`.
    pub fn verification_key(&self, index: u8) -> Result<PublicKey> {
        self.check_index(index)?;
        Ok(PublicKey::from_point(self.verification_point(index)))
    }

    pub(super) fn check_index(&self, index: u8) -> Result<()> {
        if index == 0 || index > self.nodes {
            return Err(Error::InvalidShare { index });
        }
        Ok(())
    }

    /// `SHA-256(len ‖ "sesphr/v1/share-commitments" ‖ len ‖ encoding)`: what
    /// a patient's signed grant names ([`crate::consent::SignedGrant::threshold`]).
    pub fn digest(&self) -> [u8; 32] {
        let mut v = Vec::with_capacity(Self::encoded_len(self.threshold) + 48);
        encode_parts(&mut v, &[tag::SHARE_COMMITMENTS, &self.to_bytes()]);
        Sha256::digest(&v).into()
    }

    /// The fields after the frame, before the proof.
    fn write_fields(&self, v: &mut Vec<u8>) {
        v.push(self.threshold);
        v.push(self.nodes);
        for p in [&self.ephemeral, &self.portion_key, &self.delegatee] {
            v.extend_from_slice(p.as_bytes());
        }
        for c in self.coefficients() {
            v.extend_from_slice(c.as_bytes());
        }
    }

    /// The fields and the proof (what a key share embeds).
    pub(super) fn write(&self, v: &mut Vec<u8>) {
        self.write_fields(v);
        v.extend_from_slice(self.proof.0.as_bytes());
        v.extend_from_slice(self.proof.1.as_bytes());
    }

    /// The encoding before the proof: what the proof covers.
    fn encode_before_proof(&self) -> Vec<u8> {
        let mut v = frame_version(
            magic::SHARE_COMMITMENTS,
            version::SHARE_COMMITMENTS,
            Self::encoded_len(self.threshold),
        );
        self.write_fields(&mut v);
        v
    }

    fn proof_challenge(&self, proved: &[u8], r: &CompressedRistretto) -> Scalar {
        hash_to_scalar(
            tag::KEY_PROOF,
            &[
                b"share-commitments",
                proved,
                self.c0.as_bytes(),
                r.as_bytes(),
            ],
        )
    }

    /// Proves knowledge of `rk` over the encoding (the patient's client,
    /// at the split).
    pub(super) fn prove<R: CryptoRng + ?Sized>(&mut self, rk: &Scalar, rng: &mut R) {
        let proved = self.encode_before_proof();
        self.proof = schnorr::prove(rk, &self.c0, |r| self.proof_challenge(&proved, r), rng);
    }

    fn proof_holds(&self) -> bool {
        let proved = self.encode_before_proof();
        let (c, s) = &self.proof;
        schnorr::check(&self.c0, c, s, |r| self.proof_challenge(&proved, r))
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let threshold = r.byte()?;
        let nodes = r.byte()?;
        check_threshold(threshold, nodes)?;
        let mut point = || r.point().map(|(c, p)| PublicKey::from_parts(c, p));
        let ephemeral = point()?;
        let portion_key = point()?;
        let delegatee = point()?;
        let c0 = point()?;
        let higher = (1..threshold).map(|_| point()).collect::<Result<_>>()?;
        let c = decode_scalar(&r.array()?)?;
        let s = decode_scalar(&r.array()?)?;
        let commitments = Self {
            threshold,
            nodes,
            ephemeral,
            portion_key,
            delegatee,
            c0,
            higher,
            proof: (c, s),
        };
        if !commitments.proof_holds() {
            return Err(Error::InvalidCommitments);
        }
        Ok(commitments)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.encode_before_proof();
        v.extend_from_slice(self.proof.0.as_bytes());
        v.extend_from_slice(self.proof.1.as_bytes());
        v
    }

    /// Decodes strictly, and checks the patient's proof over the encoding.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`]
    /// (version 1, without the proof, included), [`Error::InvalidThreshold`],
    /// [`Error::NonCanonicalPoint`], [`Error::IdentityPoint`],
    /// [`Error::NonCanonicalScalar`]; [`Error::InvalidCommitments`] if the
    /// proof does not verify (a field was changed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed_version(
            "share commitments",
            bytes,
            magic::SHARE_COMMITMENTS,
            version::SHARE_COMMITMENTS,
        )?;
        let c = Self::read(&mut r)?;
        r.finish()?;
        Ok(c)
    }
}

/// Share commitments checked against the grant the patient signed for them
/// ([`crate::consent::SignedGrant::verify_commitments`]): the signature
/// verifies under the patient's consent key and the grant names exactly
/// these commitments (their digest, `t`, `n`, `C_0`, `X_e` and the user's
/// key). Only such commitments let an opener judge nodes: a verification
/// key `R_i` from them is the patient's word. Never decoded from bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCommitments(ShareCommitments);

impl VerifiedCommitments {
    /// Made by the grant's check alone (the public constructor,
    /// `VerifiedCommitments::new`, is beside the signed grant it checks).
    pub(crate) fn vouched(commitments: ShareCommitments) -> Self {
        Self(commitments)
    }

    /// The commitments.
    pub fn commitments(&self) -> &ShareCommitments {
        &self.0
    }
}

impl fmt::Debug for ShareCommitments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareCommitments")
            .field("threshold", &self.threshold)
            .field("nodes", &self.nodes)
            .field("ephemeral", &self.ephemeral)
            .field("portion_key", &self.portion_key)
            .field("delegatee", &self.delegatee)
            .field("c0", &self.c0)
            .field("higher", &self.higher)
            .finish_non_exhaustive()
    }
}
