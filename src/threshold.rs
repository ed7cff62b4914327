//! Threshold re-encryption: a re-encryption key split among `n` SRS nodes
//! so that any `t` of them are needed (DESIGN §12).
//!
//! With one SRS, that SRS and one granted user together can compute the
//! portion secret (`x_{P,c} = rk·d`). Split, no `t − 1` nodes hold anything
//! usable. The patient's client draws `f(z) = rk + a_1·z + … + a_{t-1}·z^{t-1}`
//! and gives node `i` the share `rk_i = f(i)`, with the Feldman commitments
//! `C_j = a_j·G` (`C_0 = RK`), which let a node check its share
//! (`rk_i·G == Σ i^j·C_j`) and let anyone compute the node's verification
//! key `R_i = Σ i^j·C_j`. No signatures are needed to trust the commitments:
//! the delegatee checks `C_0 == d⁻¹·X_{P,c}` itself.
//!
//! Node `i` returns `E'_i = rk_i·E` (a [`ReCapsule`] carrying its index),
//! optionally with a DLEQ proof against `R_i`. The delegatee combines any
//! `t` shares — `Z = Σ (d·λ_i)·E'_i` with the Lagrange coefficients at 0,
//! one multiscalar multiplication — and opens. The open is optimistic: a
//! wrong share makes the AEAD fail and releases nothing; only then are the
//! proofs checked (in one batch), the bad nodes named, and the open retried
//! with the others.
//!
//! ```
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion, ThresholdOpener};
//! let patient = PatientKeys::generate(Identity::new("alice")?);
//! let lab = patient.portion_secret(&PortionLabel::new("lab")?, 0);
//! let doctor = KeyPair::generate();
//! // 2 of 3 nodes are needed.
//! let (commitments, shares) = ReKey::generate(&lab, doctor.public()).split(2, 3)?;
//! let sealed = SealedPortion::seal(lab.public(), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
//! // Nodes 1 and 3 answer; node 2 is down.
//! let answers = [
//!     shares[0].reencrypt(sealed.header().verify()?)?,
//!     shares[2].reencrypt(sealed.header().verify()?)?,
//! ];
//! let opener = ThresholdOpener::new(&doctor, &commitments)?;
//! assert_eq!(opener.open(&sealed, &answers)?.plaintext(), b"HbA1c 5.4%");
//! // One node alone opens nothing.
//! assert!(opener.open(&sealed, &answers[..1]).is_err());
//! # Ok::<(), sesphr::Error>(())
//! ```

use core::fmt;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity as _, MultiscalarMul};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::capsule::{PortionHeader, VerifiedHeader};
use crate::dem;
use crate::encoding::{Reader, decode_secret_scalar, frame, magic};
use crate::error::{Error, Result};
use crate::hash::{encode_parts, hedged_nonce, tag};
use crate::keys::{KeyPair, PublicKey};
use crate::portion::SealedPortion;
use crate::reencrypt::{ReCapsule, ServingKey, reencrypt_parts, verify_proofs};
use crate::rekey::{ReKey, delegatee_factor};
use crate::rng::os_rng;

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
/// Encoding: `"SPTC" ‖ version ‖ t ‖ n ‖ X_e ‖ X_{P,c} ‖ X_U ‖ C_0 ‖ … ‖
/// C_{t-1}` (`103 + 32·t` bytes).
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
}

impl ShareCommitments {
    /// Length of the encoding for threshold `t`.
    pub const fn encoded_len(threshold: u8) -> usize {
        5 + 2 + 96 + 32 * threshold as usize
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

    fn write(&self, v: &mut Vec<u8>) {
        v.push(self.threshold);
        v.push(self.nodes);
        for p in [&self.ephemeral, &self.portion_key, &self.delegatee] {
            v.extend_from_slice(p.as_bytes());
        }
        for c in self.coefficients() {
            v.extend_from_slice(c.as_bytes());
        }
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
        Ok(Self {
            threshold,
            nodes,
            ephemeral,
            portion_key,
            delegatee,
            c0,
            higher,
        })
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = frame(magic::SHARE_COMMITMENTS, Self::encoded_len(self.threshold));
        self.write(&mut v);
        v
    }

    /// Decodes strictly.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::InvalidThreshold`], [`Error::NonCanonicalPoint`],
    /// [`Error::IdentityPoint`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("share commitments", bytes, magic::SHARE_COMMITMENTS)?;
        let c = Self::read(&mut r)?;
        r.finish()?;
        Ok(c)
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
            .finish()
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
/// Encoding: `"SPKS" ‖ version ‖ i ‖ rk_i ‖ t ‖ n ‖ X_e ‖ X_{P,c} ‖ X_U ‖
/// C_0 ‖ … ‖ C_{t-1}` (`136 + 32·t` bytes).
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
        let commitments = ShareCommitments {
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
        };
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
        let mut v = Zeroizing::new(frame(
            magic::KEY_SHARE,
            Self::encoded_len(self.commitments.threshold),
        ));
        v.push(self.index);
        v.extend_from_slice(self.share.as_bytes());
        self.commitments.write(&mut v);
        v
    }

    /// Decodes strictly, and checks the share against its commitments
    /// ([`ReKeyShare::verify`]).
    ///
    /// # Errors
    /// Decoding errors; [`Error::InvalidThreshold`]; [`Error::ZeroScalar`];
    /// [`Error::InvalidShare`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("re-encryption key share", bytes, magic::KEY_SHARE)?;
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

/// A threshold open that succeeded: the plaintext, the nodes whose shares
/// were combined, and the nodes named for wrong shares on the way.
#[derive(Clone, PartialEq, Eq)]
pub struct ThresholdOpened {
    plaintext: Vec<u8>,
    used: Vec<u8>,
    bad: Vec<u8>,
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
        &self.used
    }

    /// The node indices whose shares failed their proofs (empty when the
    /// first `t` shares opened).
    pub fn bad_nodes(&self) -> &[u8] {
        &self.bad
    }
}

impl fmt::Debug for ThresholdOpened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdOpened")
            .field("plaintext_len", &self.plaintext.len())
            .field("used", &self.used)
            .field("bad", &self.bad)
            .finish()
    }
}

impl ThresholdOpener {
    /// The opener of `user` for the grant `commitments` describe.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the commitments name another user's key;
    /// [`Error::InvalidCommitments`] if `C_0 != d⁻¹·X_{P,c}` (they are not
    /// the split of a key from that portion to this user).
    pub fn new(user: &KeyPair, commitments: &ShareCommitments) -> Result<Self> {
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

    /// Opens `sealed` from the re-capsule shares of at least `t` nodes.
    /// Optimistic: the first `t` shares are combined and the body opened;
    /// only if that fails are the proofs of all shares checked (in one
    /// batch), the nodes whose proofs fail named, and the open retried with
    /// `t` shares that proved correct. Nothing unauthenticated is released.
    ///
    /// # Errors
    /// [`Error::ShareMismatch`] for a whole re-capsule, or a share of
    /// another grant or capsule; [`Error::KeyMismatch`] if the header is of
    /// another portion key; [`Error::InvalidShare`] for an index above `n`;
    /// [`Error::DuplicateShare`]; [`Error::TooFewShares`];
    /// [`Error::InvalidCapsule`]; [`Error::BadShares`] when wrong shares are
    /// named and too few good ones remain; [`Error::DecryptionFailed`]
    /// (altered body, or wrong shares without proofs to name them).
    pub fn open(&self, sealed: &SealedPortion, shares: &[ReCapsule]) -> Result<ThresholdOpened> {
        self.open_inner(sealed, shares, self.require_proof)
    }

    /// As [`ThresholdOpener::open`], checking every share's proof first
    /// (shares without a proof count as bad).
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`].
    pub fn open_verified(
        &self,
        sealed: &SealedPortion,
        shares: &[ReCapsule],
    ) -> Result<ThresholdOpened> {
        self.open_inner(sealed, shares, true)
    }

    /// The shares given, checked to belong to this grant and `header`, in
    /// the order given.
    fn usable<'a>(
        &self,
        header: &PortionHeader,
        shares: &'a [ReCapsule],
    ) -> Result<Vec<(u8, &'a ReCapsule)>> {
        if header.context().portion_key() != self.commitments.portion_key() {
            return Err(Error::KeyMismatch);
        }
        let mut seen = [false; 256];
        let mut out = Vec::with_capacity(shares.len());
        for rc in shares {
            let i = rc.share_index().ok_or(Error::ShareMismatch)?;
            if rc.capsule != *header.capsule() || rc.ephemeral != self.commitments.ephemeral {
                return Err(Error::ShareMismatch);
            }
            self.commitments.check_index(i)?;
            let slot = seen
                .get_mut(usize::from(i))
                .ok_or(Error::InvalidShare { index: i })?;
            if *slot {
                return Err(Error::DuplicateShare { index: i });
            }
            *slot = true;
            out.push((i, rc));
        }
        let t = self.commitments.threshold;
        if out.len() < usize::from(t) {
            return Err(Error::TooFewShares {
                needed: t,
                given: u8::try_from(out.len()).unwrap_or(u8::MAX),
            });
        }
        Ok(out)
    }

    /// Which of `shares` prove correct against their nodes' `R_i`.
    fn proofs_hold(&self, shares: &[(u8, &ReCapsule)]) -> Vec<bool> {
        let keys: Vec<PublicKey> = shares
            .iter()
            .map(|(i, _)| PublicKey::from_point(self.commitments.verification_point(*i)))
            .collect();
        let items: Vec<(&ReCapsule, &PublicKey)> =
            shares.iter().map(|(_, rc)| *rc).zip(&keys).collect();
        verify_proofs(&items)
    }

    /// `Z = Σ (d·λ_i)·E'_i` over exactly `t` shares (constant time in `d`),
    /// the DEM key, and the body opened.
    fn combine_and_open(
        &self,
        sealed: &SealedPortion,
        shares: &[(u8, &ReCapsule)],
    ) -> Result<Vec<u8>> {
        let xs: Vec<u8> = shares.iter().map(|(i, _)| *i).collect();
        let mut scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(
            lagrange_at_zero(&xs)
                .into_iter()
                .map(|l| self.d * l)
                .collect(),
        );
        let mut z = RistrettoPoint::multiscalar_mul(
            scalars.iter(),
            shares.iter().map(|(_, rc)| rc.e_prime_point),
        );
        scalars.zeroize();
        let header = sealed.header();
        let key = header.capsule().dem_key(&z, header.context_bytes());
        z.zeroize();
        dem::open(&key?, sealed.body())
    }

    fn open_inner(
        &self,
        sealed: &SealedPortion,
        shares: &[ReCapsule],
        verify_first: bool,
    ) -> Result<ThresholdOpened> {
        let header = sealed.header();
        let given = self.usable(header, shares)?;
        header.verify()?;
        let t = usize::from(self.commitments.threshold);
        let first: Vec<u8> = given.iter().take(t).map(|(i, _)| *i).collect();
        if !verify_first {
            match self.combine_and_open(sealed, given.get(..t).unwrap_or(&given)) {
                Ok(plaintext) => {
                    return Ok(ThresholdOpened {
                        plaintext,
                        used: first,
                        bad: Vec::new(),
                    });
                }
                Err(Error::DecryptionFailed) => {}
                Err(e) => return Err(e),
            }
        }
        // Check every proof at once; name the nodes whose proofs fail (and,
        // when proofs are required, those that gave none).
        let holds = self.proofs_hold(&given);
        let mut good: Vec<(u8, &ReCapsule)> = Vec::with_capacity(given.len());
        let mut bad: Vec<u8> = Vec::new();
        for (&(i, rc), &ok) in given.iter().zip(&holds) {
            if ok {
                good.push((i, rc));
            } else if verify_first || rc.proof().is_some() {
                bad.push(i);
            }
        }
        let Some(pick) = good.get(..t) else {
            return Err(if bad.is_empty() {
                Error::DecryptionFailed
            } else {
                Error::BadShares { nodes: bad }
            });
        };
        let used: Vec<u8> = pick.iter().map(|(i, _)| *i).collect();
        if !verify_first && used == first {
            // The same shares, all proved: the body itself does not open.
            return Err(Error::DecryptionFailed);
        }
        let plaintext = self.combine_and_open(sealed, pick)?;
        Ok(ThresholdOpened {
            plaintext,
            used,
            bad,
        })
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
        let opener = ThresholdOpener::new(&user, commitments)?;
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
            let with_index: Vec<(u8, &ReCapsule)> = xs.iter().copied().zip(&rcs).collect();
            assert!(matches!(
                opener.combine_and_open(&sealed, &with_index),
                Err(Error::DecryptionFailed)
            ));
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
