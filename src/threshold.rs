//! Threshold re-encryption: a re-encryption key split among `n` SRS nodes
//! so that any `t` of them are needed (DESIGN §12).
//!
//! With one SRS, that SRS and one granted user together can compute the
//! portion secret (`x_{P,c} = rk·d`). Split, no `t − 1` nodes hold anything
//! usable. The patient's client draws `f(z) = rk + a_1·z + … + a_{t-1}·z^{t-1}`
//! and gives node `i` the share `rk_i = f(i)`, with the Feldman commitments
//! `C_j = a_j·G` (`C_0 = RK`), which let a node check its share
//! (`rk_i·G == Σ i^j·C_j`) and let anyone compute the node's verification
//! key `R_i = Σ i^j·C_j`. The commitments carry the patient's proof of
//! knowledge of `rk` over their whole encoding, and the patient's signed
//! share grant names their digest: the delegatee checks both
//! ([`VerifiedCommitments`]) before it judges any node, so no node can
//! substitute commitments of its own to frame the honest ones.
//!
//! Node `i` returns `E'_i = rk_i·E` (a [`ReCapsule`] carrying its index),
//! optionally with a DLEQ proof against `R_i` that covers every byte of its
//! answer. The delegatee combines any `t` shares — `Z = Σ (d·λ_i)·E'_i`
//! with the Lagrange coefficients at 0, one multiscalar multiplication —
//! and opens. The open is robust: each answer is decoded and checked on its
//! own and set aside with its reason if it fails; the first `t` that look
//! valid are combined (optimistic); only if the body does not open are the
//! combined shares judged by their proofs, one at a time until a wrong one
//! is found, its node named, and the open retried with the next answer in
//! its place. It fails only when fewer than `t` valid shares remain
//! ([`Error::TooFewShares`], with every verdict).
//!
//! ```
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion, ThresholdOpener};
//! let patient = PatientKeys::generate(Identity::new("alice")?);
//! let label = PortionLabel::new("lab")?;
//! let lab = patient.portion_secret(&label, 0);
//! let doctor = KeyPair::generate();
//! // 2 of 3 nodes are needed.
//! let (commitments, shares) = ReKey::generate(&lab, doctor.public()).split(2, 3)?;
//! let grant = patient.sign_share_grant(&label, 0, &Identity::new("dr-lee")?, &commitments, &Default::default())?;
//! let sealed = SealedPortion::seal(lab.public(), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
//! // Nodes 1 and 3 answer; node 2 is down.
//! let answers = [
//!     shares[0].reencrypt_with_proof(sealed.header().verify()?)?,
//!     shares[2].reencrypt_with_proof(sealed.header().verify()?)?,
//! ];
//! // The commitments, checked against the grant the patient signed.
//! let verified = grant.verify_commitments(&patient.consent_public(), &commitments)?;
//! let opener = ThresholdOpener::new(&doctor, &verified)?;
//! assert_eq!(opener.open(&sealed, &answers)?.plaintext(), b"HbA1c 5.4%");
//! // One node alone opens nothing.
//! assert!(opener.open(&sealed, &answers[..1]).is_err());
//! # Ok::<(), sesphr::Error>(())
//! ```

use core::fmt;
use std::io::Read;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity as _, MultiscalarMul};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::capsule::{PortionHeader, VerifiedHeader};
use crate::dem;
use crate::encoding::{Reader, decode_scalar, decode_secret_scalar, frame_version, magic, version};
use crate::error::{Error, Result, ShareFault, ShareStatus, ShareVerdict};
use crate::hash::{encode_parts, hash_to_scalar, hedged_nonce, tag};
use crate::keys::{KeyPair, PublicKey};
use crate::portion::{PortionOpener, PortionPlaintext, PortionReader, SealedPortion};
use crate::reencrypt::{ReCapsule, ServingKey, reencrypt_parts, verify_proofs};
use crate::rekey::{ReKey, delegatee_factor};
use crate::rng::os_rng;
use crate::schnorr;

/// The smallest threshold (a 1-of-n split would give every node the key).
pub const MIN_THRESHOLD: u8 = 2;

/// `k·P` for a small public `k` (a node index), by double-and-add: a few
/// point additions instead of a full scalar multiplication.
fn mul_small(p: &RistrettoPoint, k: u8) -> RistrettoPoint {
    let mut acc = RistrettoPoint::identity();
    for bit in (0..8).rev() {
        acc = acc + acc;
        if (k >> bit) & 1 == 1 {
            acc += p;
        }
    }
    acc
}

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
    threshold: u8,
    nodes: u8,
    ephemeral: PublicKey,
    portion_key: PublicKey,
    delegatee: PublicKey,
    /// `C_0 = RK`.
    c0: PublicKey,
    /// `C_1, …, C_{t-1}`.
    higher: Vec<PublicKey>,
    /// The patient's proof of knowledge of `rk` over the encoding.
    proof: (Scalar, Scalar),
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
    fn verification_point(&self, index: u8) -> RistrettoPoint {
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

    fn check_index(&self, index: u8) -> Result<()> {
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
    fn write(&self, v: &mut Vec<u8>) {
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
    fn prove<R: CryptoRng + ?Sized>(&mut self, rk: &Scalar, rng: &mut R) {
        let proved = self.encode_before_proof();
        self.proof = schnorr::prove(rk, &self.c0, |r| self.proof_challenge(&proved, r), rng);
    }

    fn proof_holds(&self) -> bool {
        let proved = self.encode_before_proof();
        let (c, s) = &self.proof;
        schnorr::check(&self.c0, c, s, |r| self.proof_challenge(&proved, r))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
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

fn check_threshold(threshold: u8, nodes: u8) -> Result<()> {
    if threshold < MIN_THRESHOLD || threshold > nodes {
        return Err(Error::InvalidThreshold);
    }
    Ok(())
}

/// One node's share `rk_i = f(i)` of a re-encryption key, with the
/// commitments it is checked against. Secret (`t` of them give `rk`):
/// zeroized on drop, hidden from `Debug`; send each only to its node.
///
/// Encoding: `"SPKS" ‖ 02 ‖ i ‖ rk_i ‖ t ‖ n ‖ X_e ‖ X_{P,c} ‖ X_U ‖
/// C_0 ‖ … ‖ C_{t-1} ‖ c ‖ s` (`200 + 32·t` bytes): the index and share,
/// then the commitments' fields and proof as in [`ShareCommitments`].
#[derive(Clone)]
pub struct ReKeyShare {
    index: u8,
    share: Scalar,
    commitments: ShareCommitments,
    /// `R_i = rk_i·G`, computed once.
    verification: PublicKey,
}

impl ReKey {
    /// Splits this key among `nodes` nodes so that any `threshold` of them
    /// are needed to re-encrypt (`2 <= t <= n <= 255`), with the OS RNG for
    /// the polynomial. Share `i` (1-based) is `shares[i - 1]`.
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`].
    pub fn split(&self, threshold: u8, nodes: u8) -> Result<(ShareCommitments, Vec<ReKeyShare>)> {
        self.split_with_rng(threshold, nodes, &mut os_rng())
    }

    /// As [`ReKey::split`], with the given RNG. The coefficients are hedged
    /// (hashed with `rk`), so a weak RNG does not expose the key.
    ///
    /// # Errors
    /// [`Error::InvalidThreshold`].
    pub fn split_with_rng<R: CryptoRng + ?Sized>(
        &self,
        threshold: u8,
        nodes: u8,
        rng: &mut R,
    ) -> Result<(ShareCommitments, Vec<ReKeyShare>)> {
        check_threshold(threshold, nodes)?;
        let rk = *self.scalar();
        // a_0 = rk, a_1..a_{t-1} hedged and nonzero.
        let mut a: Zeroizing<Vec<Scalar>> = Zeroizing::new(Vec::with_capacity(threshold.into()));
        a.push(rk);
        for j in 1..threshold {
            a.push(hedged_nonce(
                tag::SHARE_COEFFICIENT,
                &rk,
                &[
                    self.commitment().as_bytes(),
                    self.ephemeral().as_bytes(),
                    &[j],
                ],
                rng,
            ));
        }
        let mut commitments = ShareCommitments {
            threshold,
            nodes,
            ephemeral: *self.ephemeral(),
            portion_key: *self.portion_key(),
            delegatee: *self.delegatee(),
            c0: *self.commitment(),
            higher: a
                .iter()
                .skip(1)
                .map(|aj| PublicKey::from_point(aj * RISTRETTO_BASEPOINT_TABLE))
                .collect(),
            proof: (Scalar::ZERO, Scalar::ZERO),
        };
        commitments.prove(&rk, rng);
        let shares = (1..=nodes)
            .map(|i| {
                let x = Scalar::from(i);
                let mut f = Scalar::ZERO;
                for aj in a.iter().rev() {
                    f = f * x + aj;
                }
                ReKeyShare {
                    index: i,
                    verification: PublicKey::from_point(commitments.verification_point(i)),
                    share: f,
                    commitments: commitments.clone(),
                }
            })
            .collect();
        Ok((commitments, shares))
    }
}

impl ReKeyShare {
    /// The node index `i` (1-based).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The commitments of the split this share belongs to.
    pub fn commitments(&self) -> &ShareCommitments {
        &self.commitments
    }

    /// Length of the encoding for threshold `t`.
    pub const fn encoded_len(threshold: u8) -> usize {
        ShareCommitments::encoded_len(threshold) + 33
    }

    /// The node's check: `rk_i·G == Σ i^j·C_j` (one fixed-base
    /// multiplication and a few additions).
    ///
    /// # Errors
    /// [`Error::InvalidShare`] if the share does not match the commitments
    /// or its index is outside `1..=n`.
    pub fn verify(&self) -> Result<()> {
        self.commitments.check_index(self.index)?;
        let lhs = &self.share * RISTRETTO_BASEPOINT_TABLE;
        if lhs == self.commitments.verification_point(self.index)
            && lhs.compress().as_bytes() == self.verification.as_bytes()
        {
            Ok(())
        } else {
            Err(Error::InvalidShare { index: self.index })
        }
    }

    /// The encoding (secret material: send it to its node only).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(frame_version(
            magic::KEY_SHARE,
            version::KEY_SHARE,
            Self::encoded_len(self.commitments.threshold),
        ));
        v.push(self.index);
        v.extend_from_slice(self.share.as_bytes());
        self.commitments.write(&mut v);
        v
    }

    /// Decodes strictly, checks the commitments' proof (so `t`, `n`, `X_e`,
    /// `X_{P,c}`, `X_U` and every `C_j` are the patient's) and the share
    /// against them ([`ReKeyShare::verify`]).
    ///
    /// # Errors
    /// Decoding errors; [`Error::InvalidThreshold`]; [`Error::ZeroScalar`];
    /// [`Error::InvalidCommitments`]; [`Error::InvalidShare`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed_version(
            "re-encryption key share",
            bytes,
            magic::KEY_SHARE,
            version::KEY_SHARE,
        )?;
        let index = r.byte()?;
        let mut s = r.array::<32>()?;
        let share = decode_secret_scalar(&s);
        s.zeroize();
        let share = share?;
        let commitments = ShareCommitments::read(&mut r)?;
        r.finish()?;
        commitments.check_index(index)?;
        let r_i = &share * RISTRETTO_BASEPOINT_TABLE;
        if r_i != commitments.verification_point(index) {
            return Err(Error::InvalidShare { index });
        }
        Ok(Self {
            index,
            share,
            commitments,
            verification: PublicKey::from_point(r_i),
        })
    }

    /// `E'_i = rk_i·E` for a verified header of this grant's portion: the
    /// node's re-capsule share.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header belongs to another portion key.
    pub fn reencrypt(&self, header: VerifiedHeader<'_>) -> Result<ReCapsule> {
        self.reencrypt_inner(header, None::<&mut crate::rng::OsRng>)
    }

    /// As [`ReKeyShare::reencrypt`], with a proof against `R_i` (so that the
    /// delegatee can name this node if its answer is wrong).
    ///
    /// # Errors
    /// As [`ReKeyShare::reencrypt`].
    pub fn reencrypt_with_proof(&self, header: VerifiedHeader<'_>) -> Result<ReCapsule> {
        self.reencrypt_inner(header, Some(&mut os_rng()))
    }

    /// As [`ReKeyShare::reencrypt_with_proof`], with the given RNG.
    ///
    /// # Errors
    /// As [`ReKeyShare::reencrypt`].
    pub fn reencrypt_with_proof_with_rng<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        rng: &mut R,
    ) -> Result<ReCapsule> {
        self.reencrypt_inner(header, Some(rng))
    }

    fn reencrypt_inner<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        rng: Option<&mut R>,
    ) -> Result<ReCapsule> {
        if header.header().context().portion_key() != &self.commitments.portion_key {
            return Err(Error::KeyMismatch);
        }
        Ok(reencrypt_parts(
            &self.share,
            &self.commitments.ephemeral,
            self.verification.as_bytes(),
            Some(self.index),
            header,
            rng,
        ))
    }

    /// What a node keeps while the grant is active.
    pub(crate) fn serving_key(&self) -> ServingKey {
        ServingKey::share(
            &self.share,
            &self.commitments.ephemeral,
            self.commitments.commitment(),
            self.index,
            &self.verification,
        )
    }

    /// The node's verification key `R_i = rk_i·G`.
    pub fn verification_key(&self) -> &PublicKey {
        &self.verification
    }
}

impl Drop for ReKeyShare {
    fn drop(&mut self) {
        self.share.zeroize();
    }
}
impl ZeroizeOnDrop for ReKeyShare {}

impl ConstantTimeEq for ReKeyShare {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.share.ct_eq(&other.share)
            & self.index.ct_eq(&other.index)
            & Choice::from(u8::from(self.commitments == other.commitments))
    }
}
impl PartialEq for ReKeyShare {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for ReKeyShare {}

impl fmt::Debug for ReKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReKeyShare")
            .field("index", &self.index)
            .field("commitments", &self.commitments)
            .finish_non_exhaustive()
    }
}

/// The Lagrange coefficients at 0 for the node indices `xs` (distinct,
/// nonzero): `λ_i = Π_{j≠i} x_j / (x_j − x_i)`, with one inversion.
fn lagrange_at_zero(xs: &[u8]) -> Vec<Scalar> {
    let mut num = Vec::with_capacity(xs.len());
    let mut den = Vec::with_capacity(xs.len());
    for &i in xs {
        let (mut n, mut d) = (Scalar::ONE, Scalar::ONE);
        for &j in xs.iter().filter(|&&j| j != i) {
            n *= Scalar::from(j);
            d *= Scalar::from(j) - Scalar::from(i);
        }
        num.push(n);
        den.push(d);
    }
    Scalar::invert_batch_alloc(&mut den);
    num.iter().zip(&den).map(|(n, d)| n * d).collect()
}

/// The delegatee's side of a threshold grant: `d` (from the user's secret
/// key) and the grant's commitments, checked once (`d·C_0 == X_{P,c}`), then
/// used for every record. Zeroized on drop; `Debug` hides `d`.
#[derive(Clone)]
pub struct ThresholdOpener {
    d: Scalar,
    commitments: ShareCommitments,
    require_proof: bool,
}

/// The answers of the nodes to one re-encryption request, as an opener
/// takes them: decoded or encoded re-capsule shares (each attributed to the
/// index it carries), or the bytes each node sent with the node the host
/// asked — a share is then attributed to its sender, and one that claims
/// another node's index is that sender's wrong answer. Where answers come
/// over a network, pass [`Shares::FromNodes`]: only then can a node that
/// answers under another's index be told from that other node.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Shares<'a> {
    /// Decoded shares.
    Decoded(&'a [ReCapsule]),
    /// Encoded shares, each attributed to the index it carries.
    Encoded(&'a [&'a [u8]]),
    /// `(node asked, bytes it answered)`.
    FromNodes(&'a [(u8, &'a [u8])]),
}

impl<'a> From<&'a [ReCapsule]> for Shares<'a> {
    fn from(s: &'a [ReCapsule]) -> Self {
        Self::Decoded(s)
    }
}
impl<'a, const N: usize> From<&'a [ReCapsule; N]> for Shares<'a> {
    fn from(s: &'a [ReCapsule; N]) -> Self {
        Self::Decoded(s)
    }
}
impl<'a> From<&'a Vec<ReCapsule>> for Shares<'a> {
    fn from(s: &'a Vec<ReCapsule>) -> Self {
        Self::Decoded(s)
    }
}
impl<'a> From<&'a [&'a [u8]]> for Shares<'a> {
    fn from(s: &'a [&'a [u8]]) -> Self {
        Self::Encoded(s)
    }
}
impl<'a> From<&'a [(u8, &'a [u8])]> for Shares<'a> {
    fn from(s: &'a [(u8, &'a [u8])]) -> Self {
        Self::FromNodes(s)
    }
}
impl<'a, const N: usize> From<&'a [(u8, &'a [u8]); N]> for Shares<'a> {
    fn from(s: &'a [(u8, &'a [u8]); N]) -> Self {
        Self::FromNodes(s)
    }
}
impl<'a> From<&'a Vec<(u8, &'a [u8])>> for Shares<'a> {
    fn from(s: &'a Vec<(u8, &'a [u8])>) -> Self {
        Self::FromNodes(s)
    }
}

/// What a threshold opener made of the answers it was given: one verdict
/// per answer, the nodes whose shares were combined, and the nodes that
/// answered wrongly.
#[derive(Debug)]
pub struct ShareReport {
    used: Vec<u8>,
    bad: Vec<u8>,
    verdicts: Vec<ShareVerdict>,
}

impl ShareReport {
    /// The node indices whose shares were combined (`t` of them).
    pub fn used(&self) -> &[u8] {
        &self.used
    }

    /// The nodes whose answers were wrong: undecodable, of another capsule
    /// or grant, with a wrong index, or with a proof that fails against
    /// the patient's commitments (and, when proofs were required, without
    /// a proof). A node is named only for an answer attributed to it and
    /// never when another answer of it proved correct. Sorted.
    pub fn bad_nodes(&self) -> &[u8] {
        &self.bad
    }

    /// One verdict per answer, in the order given.
    pub fn verdicts(&self) -> &[ShareVerdict] {
        &self.verdicts
    }
}

/// A threshold open that succeeded: the plaintext and the
/// [`ShareReport`].
pub struct ThresholdOpened {
    plaintext: Vec<u8>,
    report: ShareReport,
}

impl ThresholdOpened {
    /// The plaintext.
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// The plaintext, taken.
    pub fn into_plaintext(self) -> Vec<u8> {
        self.plaintext
    }

    /// The node indices whose shares were combined.
    pub fn used(&self) -> &[u8] {
        self.report.used()
    }

    /// The nodes whose answers were wrong ([`ShareReport::bad_nodes`]).
    pub fn bad_nodes(&self) -> &[u8] {
        self.report.bad_nodes()
    }

    /// One verdict per answer, in the order given.
    pub fn verdicts(&self) -> &[ShareVerdict] {
        self.report.verdicts()
    }

    /// The whole report.
    pub fn report(&self) -> &ShareReport {
        &self.report
    }

    /// The plaintext and the report, taken.
    pub fn into_parts(self) -> (Vec<u8>, ShareReport) {
        (self.plaintext, self.report)
    }
}

impl fmt::Debug for ThresholdOpened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdOpened")
            .field("plaintext_len", &self.plaintext.len())
            .field("report", &self.report)
            .finish()
    }
}

// The streaming forms under the names of the types they make. They are
// here, not in `portion.rs`, so that the portion module stays below this
// one (this module imports it).
impl<R: Read> PortionReader<R> {
    /// Opens the body as a granted user of a split key, from the nodes'
    /// answers with proofs: [`ThresholdOpener::open_stream`].
    ///
    /// # Errors
    /// As [`ThresholdOpener::open_stream`].
    pub fn open_threshold<'a>(
        self,
        opener: &ThresholdOpener,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(PortionPlaintext<R>, ShareReport)> {
        opener.open_stream(self, shares)
    }
}

impl PortionOpener {
    /// The opener of `header`'s body, pushed in pieces, for a granted user
    /// of a split key, from the nodes' answers with proofs:
    /// [`ThresholdOpener::chunk_opener`].
    ///
    /// # Errors
    /// As [`ThresholdOpener::chunk_opener`].
    pub fn for_threshold<'a>(
        header: &PortionHeader,
        opener: &ThresholdOpener,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(Self, ShareReport)> {
        opener.chunk_opener(header, shares)
    }
}

/// One answer on its way through the opener.
struct Entry<'a> {
    /// The node the caller says sent it.
    sender: Option<u8>,
    /// The share, if it decoded.
    share: Option<&'a ReCapsule>,
    /// Why it was set aside.
    fault: Option<ShareFault>,
    /// Whether its proof was checked and holds.
    proven: bool,
}

impl<'a> Entry<'a> {
    /// A share not judged yet.
    fn new(sender: Option<u8>, share: &'a ReCapsule) -> Self {
        Self {
            sender,
            share: Some(share),
            fault: None,
            proven: false,
        }
    }

    /// The node index it counts for, once it passed the structural checks.
    fn index(&self) -> Option<u8> {
        if self.fault.is_some() {
            return None;
        }
        self.share.and_then(ReCapsule::share_index)
    }
}

/// What trying a candidate key told.
pub(crate) enum Attempt<T> {
    /// The key opened (the first chunk authenticated, or no check asked).
    Opened(T),
    /// The first chunk did not authenticate: a wrong key.
    WrongKey,
}

impl ThresholdOpener {
    /// The opener of `user` for a grant whose commitments were checked
    /// against the patient's signed share grant. Only such an opener names
    /// nodes on the patient's word.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the commitments name another user's key;
    /// [`Error::InvalidCommitments`] if `C_0 != d⁻¹·X_{P,c}` (they are not
    /// the split of a key from that portion to this user).
    pub fn new(user: &KeyPair, commitments: &VerifiedCommitments) -> Result<Self> {
        Self::new_unauthenticated(user, commitments.commitments())
    }

    /// The opener of `user` from commitments no signed grant vouched for.
    /// They still carry the patient's proof of knowledge of `rk` and are
    /// checked against the user's own `d`, but which grant they belong to
    /// is the caller's word — so its verdicts cannot be relied on to name
    /// liars: the commitments of another genuine split of the same portion
    /// to the same user (an older grant) pass these checks, and against
    /// them every honest node's answer looks wrong. Use
    /// [`ThresholdOpener::new`] where the signed share grant is at hand.
    ///
    /// # Errors
    /// As [`ThresholdOpener::new`].
    pub fn new_unauthenticated(user: &KeyPair, commitments: &ShareCommitments) -> Result<Self> {
        if user.public() != commitments.delegatee() {
            return Err(Error::KeyMismatch);
        }
        let d = delegatee_factor(user, commitments.ephemeral(), commitments.portion_key());
        let opener = Self {
            d,
            commitments: commitments.clone(),
            require_proof: false,
        };
        if d * commitments.commitment().point() != *commitments.portion_key().point() {
            return Err(Error::InvalidCommitments);
        }
        Ok(opener)
    }

    /// Checks every share's proof before combining (as
    /// [`ThresholdOpener::open_verified`] always does).
    #[must_use]
    pub fn require_proof(mut self) -> Self {
        self.require_proof = true;
        self
    }

    /// The grant's commitments.
    pub fn commitments(&self) -> &ShareCommitments {
        &self.commitments
    }

    /// Opens `sealed` from the nodes' answers, whenever at least `t` of
    /// them are valid, whatever the others contain. Each answer is decoded
    /// and checked on its own (a node index in `1..=n` and, for
    /// [`Shares::FromNodes`], the sender's; this capsule and this grant's
    /// `X_e`); one that fails is set aside with its reason. The first `t`
    /// remaining (one per node) are combined and the body opened; only if
    /// that fails are the combined shares judged by their proofs, one at a
    /// time until one fails (or has none), and the open retried with the
    /// next answer in its place — so each wrong answer costs one proof
    /// check and one combination more. Spare answers that were not needed
    /// are not judged. Nothing unauthenticated is released.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header is of another portion key;
    /// [`Error::InvalidCapsule`]; [`Error::TooFewShares`] (with every
    /// answer's verdict) when fewer than `t` valid shares remain;
    /// [`Error::DecryptionFailed`] when `t` shares that proved correct do
    /// not open the body (it was altered).
    pub fn open<'a>(
        &self,
        sealed: &SealedPortion,
        shares: impl Into<Shares<'a>>,
    ) -> Result<ThresholdOpened> {
        self.open_inner(sealed, shares.into(), self.require_proof)
    }

    /// As [`ThresholdOpener::open`], checking every share's proof first
    /// (shares without a proof are set aside and name their node).
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`].
    pub fn open_verified<'a>(
        &self,
        sealed: &SealedPortion,
        shares: impl Into<Shares<'a>>,
    ) -> Result<ThresholdOpened> {
        self.open_inner(sealed, shares.into(), true)
    }

    fn open_inner(
        &self,
        sealed: &SealedPortion,
        shares: Shares<'_>,
        verify_first: bool,
    ) -> Result<ThresholdOpened> {
        let body = sealed.body();
        let (plaintext, report) = self.select(sealed.header(), shares, verify_first, |key| {
            match dem::open(&key, body) {
                Ok(pt) => Ok(Attempt::Opened(pt)),
                // The key is wrong if not even the first chunk opens;
                // otherwise the body was altered.
                Err(Error::DecryptionFailed) if !dem::first_chunk_opens(&key, body) => {
                    Ok(Attempt::WrongKey)
                }
                Err(e) => Err(e),
            }
        })?;
        Ok(ThresholdOpened { plaintext, report })
    }

    /// Opens a sealed portion read from a stream, from the nodes' answers
    /// (re-capsule shares *with proofs*: the body is read once, so every
    /// share is judged by its proof before any is combined; one without a
    /// proof is set aside). As robust as [`ThresholdOpener::open`]: it
    /// opens whenever `t` answers prove correct, whatever the others hold.
    /// Memory stays bounded (one chunk).
    ///
    /// ```
    /// # use sesphr::*;
    /// # let patient = PatientKeys::generate(Identity::new("p")?);
    /// # let label = PortionLabel::new("imaging")?;
    /// # let key = patient.portion_secret(&label, 0);
    /// # let doctor = KeyPair::generate();
    /// # let (commitments, shares) = ReKey::generate(&key, doctor.public()).split(2, 3)?;
    /// # let grant = patient.sign_share_grant(&label, 0, &Identity::new("dr")?, &commitments, &Default::default())?;
    /// let scan = vec![9u8; 300_000];
    /// let sealed = SealedPortion::seal(key.public(), RecordId::random(), 1_700_000_000, &scan)?.to_bytes();
    /// let reader = PortionReader::new(&sealed[..])?;
    /// let answers: Vec<ReCapsule> = shares[1..]
    ///     .iter()
    ///     .map(|s| s.reencrypt_with_proof(reader.header().verify()?))
    ///     .collect::<Result<_>>()?;
    /// let verified = grant.verify_commitments(&patient.consent_public(), &commitments)?;
    /// let opener = ThresholdOpener::new(&doctor, &verified)?;
    /// let (mut plaintext, report) = opener.open_stream(reader, &answers)?;
    /// let mut out = Vec::new();
    /// std::io::Read::read_to_end(&mut plaintext, &mut out)?;
    /// assert_eq!(out, scan);
    /// assert_eq!(report.used(), &[2, 3]);
    /// # Ok::<(), sesphr::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`], before any body byte is read;
    /// tampering with the body shows up while reading.
    pub fn open_stream<'a, R: Read>(
        &self,
        reader: PortionReader<R>,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(PortionPlaintext<R>, ShareReport)> {
        let (header, inner) = reader.into_parts();
        let (key, report) = self.proven_dem_key(&header, shares.into())?;
        Ok((PortionPlaintext::new(key, inner), report))
    }

    /// An opener of `header`'s body pushed in pieces of any size (for hosts
    /// that receive the body in callbacks, and the C ABI), from the nodes'
    /// answers with proofs, as [`ThresholdOpener::open_stream`].
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`], before any body byte is read.
    pub fn chunk_opener<'a>(
        &self,
        header: &PortionHeader,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(PortionOpener, ShareReport)> {
        let (key, report) = self.proven_dem_key(header, shares.into())?;
        Ok((PortionOpener::from_key(key), report))
    }

    /// The DEM key of `header` from shares that all proved correct.
    fn proven_dem_key(
        &self,
        header: &PortionHeader,
        shares: Shares<'_>,
    ) -> Result<(dem::DemKey, ShareReport)> {
        self.select(header, shares, true, |key| Ok(Attempt::Opened(key)))
    }

    /// The robust selection behind every threshold open: checks each answer,
    /// combines `t` of them into a DEM key and hands it to `attempt`; on a
    /// wrong key, judges every share by its proof and tries `t` that proved
    /// correct.
    fn select<T>(
        &self,
        header: &PortionHeader,
        shares: Shares<'_>,
        verify_first: bool,
        mut attempt: impl FnMut(dem::DemKey) -> Result<Attempt<T>>,
    ) -> Result<(T, ShareReport)> {
        if header.context().portion_key() != self.commitments.portion_key() {
            return Err(Error::KeyMismatch);
        }
        header.verify()?;
        // Decode what came as bytes; the entries borrow the results.
        let decoded: Vec<(Option<u8>, Result<ReCapsule>)> = match shares {
            Shares::Decoded(_) => Vec::new(),
            Shares::Encoded(answers) => answers
                .iter()
                .map(|bytes| (None, ReCapsule::from_bytes(bytes)))
                .collect(),
            Shares::FromNodes(answers) => answers
                .iter()
                .map(|(node, bytes)| (Some(*node), ReCapsule::from_bytes(bytes)))
                .collect(),
        };
        let mut entries: Vec<Entry<'_>> = match shares {
            Shares::Decoded(rcs) => rcs.iter().map(|rc| Entry::new(None, rc)).collect(),
            Shares::Encoded(_) | Shares::FromNodes(_) => decoded
                .iter()
                .map(|(node, rc)| match rc {
                    Ok(rc) => Entry::new(*node, rc),
                    Err(e) => Entry {
                        sender: *node,
                        share: None,
                        fault: Some(ShareFault::Undecodable(copy_error(e))),
                        proven: false,
                    },
                })
                .collect(),
        };
        self.check_structure(header, &mut entries);
        if verify_first {
            let all: Vec<usize> = (0..entries.len()).collect();
            self.judge_proofs(&mut entries, &all, true);
        }
        let t = usize::from(self.commitments.threshold);
        let all: Vec<usize> = (0..entries.len()).collect();
        loop {
            // One share per node: the first that is not set aside (with
            // proofs required, the first that proved correct).
            let mut pick: Vec<usize> = Vec::with_capacity(t);
            let mut taken = [false; 256];
            for (k, e) in entries.iter().enumerate() {
                let Some(i) = e.index() else { continue };
                if (verify_first && !e.proven) || taken[usize::from(i)] {
                    continue;
                }
                taken[usize::from(i)] = true;
                if pick.len() < t {
                    pick.push(k);
                }
            }
            if pick.len() < t {
                // Too few either way; say why each answer with a proof was
                // set aside (answers without one stay unjudged).
                self.judge_proofs(&mut entries, &all, false);
                let mut valid = [false; 256];
                for i in entries.iter().filter_map(Entry::index) {
                    valid[usize::from(i)] = true;
                }
                let valid = valid.iter().filter(|&&x| x).count();
                return Err(Error::TooFewShares {
                    needed: self.commitments.threshold,
                    valid: u8::try_from(valid).unwrap_or(u8::MAX),
                    verdicts: self.report(entries, &[], verify_first).verdicts,
                });
            }
            let key = self.combine(header, &entries, &pick)?;
            match attempt(key)? {
                Attempt::Opened(value) => {
                    return Ok((value, self.report(entries, &pick, verify_first)));
                }
                Attempt::WrongKey => {
                    // Judge the shares combined, one at a time, until one
                    // fails its proof (or has none); then combine again
                    // with the next answers. If all of them prove correct,
                    // the combination was right and the body is altered.
                    let mut found = false;
                    for &k in &pick {
                        self.judge_proofs(&mut entries, &[k], true);
                        if entries.get(k).is_some_and(|e| e.fault.is_some()) {
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        return Err(Error::DecryptionFailed);
                    }
                }
            }
        }
    }

    /// Sets aside every answer that cannot be a share of this grant for
    /// this header, judged alone (and second copies of an answer).
    fn check_structure(&self, header: &PortionHeader, entries: &mut [Entry<'_>]) {
        for k in 0..entries.len() {
            let Some(e) = entries.get(k) else { continue };
            let Some(rc) = e.share else { continue };
            let fault = match rc.share_index() {
                None => Some(ShareFault::NotAShare),
                Some(i) if self.commitments.check_index(i).is_err() => {
                    Some(ShareFault::WrongIndex { index: i })
                }
                Some(i) if e.sender.is_some_and(|s| s != i) => {
                    Some(ShareFault::WrongIndex { index: i })
                }
                Some(_)
                    if rc.capsule != *header.capsule()
                        || rc.ephemeral != self.commitments.ephemeral =>
                {
                    Some(ShareFault::OtherCapsule)
                }
                Some(_)
                    if entries.iter().take(k).any(|o| {
                        o.fault.is_none() && o.sender == e.sender && o.share == Some(rc)
                    }) =>
                {
                    Some(ShareFault::Duplicate)
                }
                Some(_) => None,
            };
            if let Some(entry) = entries.get_mut(k) {
                entry.fault = fault;
            }
        }
    }

    /// Checks the proofs of the shares `which` not yet judged (in one
    /// batch), and sets aside those that fail and, if `missing_fails`,
    /// those that have none.
    fn judge_proofs(&self, entries: &mut [Entry<'_>], which: &[usize], missing_fails: bool) {
        let todo: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&k| {
                entries.get(k).is_some_and(|e| {
                    e.index().is_some()
                        && !e.proven
                        && (missing_fails || e.share.is_some_and(|rc| rc.proof().is_some()))
                })
            })
            .collect();
        let keys: Vec<PublicKey> = todo
            .iter()
            .filter_map(|&k| entries.get(k)?.index())
            .map(|i| PublicKey::from_point(self.commitments.verification_point(i)))
            .collect();
        let items: Vec<(&ReCapsule, &PublicKey)> = todo
            .iter()
            .filter_map(|&k| entries.get(k)?.share)
            .zip(&keys)
            .collect();
        let holds = verify_proofs(&items);
        for (&k, ok) in todo.iter().zip(holds) {
            let Some(e) = entries.get_mut(k) else {
                continue;
            };
            if ok {
                e.proven = true;
            } else if e.share.is_some_and(|rc| rc.proof().is_none()) {
                e.fault = Some(ShareFault::NoProof);
            } else {
                e.fault = Some(ShareFault::BadProof);
            }
        }
    }

    /// `Z = Σ (d·λ_i)·E'_i` over exactly `t` shares (constant time in `d`),
    /// and the DEM key.
    fn combine(
        &self,
        header: &PortionHeader,
        entries: &[Entry<'_>],
        pick: &[usize],
    ) -> Result<dem::DemKey> {
        let picked: Vec<(u8, &ReCapsule)> = pick
            .iter()
            .filter_map(|&k| {
                let e = entries.get(k)?;
                Some((e.index()?, e.share?))
            })
            .collect();
        let xs: Vec<u8> = picked.iter().map(|(i, _)| *i).collect();
        let mut scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(
            lagrange_at_zero(&xs)
                .into_iter()
                .map(|l| self.d * l)
                .collect(),
        );
        let mut z = RistrettoPoint::multiscalar_mul(
            scalars.iter(),
            picked.iter().map(|(_, rc)| rc.e_prime_point),
        );
        scalars.zeroize();
        let key = header.capsule().dem_key(&z, header.context_bytes());
        z.zeroize();
        key
    }

    /// The verdicts, and the nodes named: a node is named when an answer
    /// attributed to it was wrong and none of its answers was used or
    /// proved correct.
    fn report(
        &self,
        entries: Vec<Entry<'_>>,
        used: &[usize],
        proofs_required: bool,
    ) -> ShareReport {
        let n = usize::from(self.commitments.nodes);
        let node_of = |e: &Entry<'_>| {
            e.sender.or_else(|| {
                e.share
                    .and_then(ReCapsule::share_index)
                    .filter(|&i| usize::from(i) <= n)
            })
        };
        let mut wrong = [false; 256];
        let mut cleared = [false; 256];
        for (k, e) in entries.iter().enumerate() {
            let Some(node) = node_of(e) else { continue };
            match &e.fault {
                Some(f) if f.names_node(proofs_required) => wrong[usize::from(node)] = true,
                Some(_) => {}
                None if e.proven || used.contains(&k) => cleared[usize::from(node)] = true,
                None => {}
            }
        }
        let bad: Vec<u8> = (1..=u8::MAX)
            .filter(|&i| wrong[usize::from(i)] && !cleared[usize::from(i)])
            .collect();
        let used_nodes: Vec<u8> = used
            .iter()
            .filter_map(|&k| entries.get(k)?.index())
            .collect();
        let verdicts = entries
            .into_iter()
            .enumerate()
            .map(|(k, e)| ShareVerdict {
                position: k,
                node: node_of(&e),
                status: match e.fault {
                    Some(f) => ShareStatus::Rejected(f),
                    None if used.contains(&k) => ShareStatus::Used,
                    None if e.proven => ShareStatus::Proven,
                    None => ShareStatus::Unused,
                },
            })
            .collect();
        ShareReport {
            used: used_nodes,
            bad,
            verdicts,
        }
    }
}

/// A decoding error, copied (decoding errors carry no I/O error).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::InvalidLength {
            what,
            expected,
            actual,
        } => Error::InvalidLength {
            what,
            expected: *expected,
            actual: *actual,
        },
        Error::BadMagic { what } => Error::BadMagic { what },
        Error::UnsupportedVersion { what, version } => Error::UnsupportedVersion {
            what,
            version: *version,
        },
        Error::NonCanonicalPoint => Error::NonCanonicalPoint,
        Error::IdentityPoint => Error::IdentityPoint,
        Error::NonCanonicalScalar => Error::NonCanonicalScalar,
        Error::ReservedBitsSet => Error::ReservedBitsSet,
        Error::InvalidShare { index } => Error::InvalidShare { index: *index },
        _ => Error::Malformed { what: "re-capsule" },
    }
}

impl Drop for ThresholdOpener {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}
impl ZeroizeOnDrop for ThresholdOpener {}

impl fmt::Debug for ThresholdOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdOpener")
            .field("commitments", &self.commitments)
            .field("require_proof", &self.require_proof)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, PatientKeys, PortionLabel};

    /// Any `t − 1` shares interpolate (at 0, over themselves) to a scalar
    /// that is not `rk`, and their combination opens nothing.
    #[test]
    fn t_minus_1_shares_interpolate_to_something_else() -> Result<()> {
        let p = PatientKeys::generate(Identity::new("p")?);
        let lab = p.portion_secret(&PortionLabel::new("lab")?, 0);
        let user = KeyPair::generate();
        let rk = ReKey::generate(&lab, user.public());
        let (_, shares) = rk.split(3, 4)?;
        let sealed = SealedPortion::seal(lab.public(), crate::RecordId::random(), 1, b"x")?;
        let commitments = &shares.first().ok_or(Error::TooLarge)?.commitments;
        let opener = ThresholdOpener::new_unauthenticated(&user, commitments)?;
        for pair in [[0usize, 1], [0, 2], [1, 3], [2, 3]] {
            let picked: Vec<&ReKeyShare> = pair.iter().filter_map(|&k| shares.get(k)).collect();
            let xs: Vec<u8> = picked.iter().map(|s| s.index).collect();
            let l = lagrange_at_zero(&xs);
            let guess: Scalar = picked.iter().zip(&l).map(|(s, l)| s.share * l).sum();
            assert_ne!(guess, *rk.scalar());
            let rcs: Vec<ReCapsule> = picked
                .iter()
                .map(|s| s.reencrypt(sealed.header().verify()?))
                .collect::<Result<_>>()?;
            // Two shares valid on their own, too few together.
            assert!(matches!(
                opener.open(&sealed, &rcs),
                Err(Error::TooFewShares {
                    needed: 3,
                    valid: 2,
                    ..
                })
            ));
            // Combined anyway (as if t were 2), they open nothing.
            let entries: Vec<Entry<'_>> = rcs.iter().map(|rc| Entry::new(None, rc)).collect();
            let key = opener.combine(sealed.header(), &entries, &[0, 1])?;
            assert!(!dem::first_chunk_opens(&key, sealed.body()));
        }
        // Three of them interpolate to rk exactly.
        let xs = [1u8, 2, 4];
        let l = lagrange_at_zero(&xs);
        let whole: Scalar = [0usize, 1, 3]
            .iter()
            .filter_map(|&k| shares.get(k))
            .zip(&l)
            .map(|(s, l)| s.share * l)
            .sum();
        assert_eq!(whole, *rk.scalar());
        Ok(())
    }

    #[test]
    fn small_multiplication_agrees_with_scalar_multiplication() {
        let p = RISTRETTO_BASEPOINT_TABLE.basepoint();
        for k in [0u8, 1, 2, 3, 127, 128, 255] {
            assert_eq!(mul_small(&p, k), Scalar::from(k) * p);
        }
    }
}
