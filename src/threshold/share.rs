//! One node's share of a split re-encryption key, the split itself, and
//! a node's re-encryption with its share.

use core::fmt;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::check_threshold;
use super::commitments::ShareCommitments;
use crate::capsule::VerifiedHeader;
use crate::encoding::{Reader, decode_secret_scalar, frame_version, magic, version};
use crate::error::{Error, Result};
use crate::hash::{hedged_nonce, tag};
use crate::keys::PublicKey;
use crate::pq::{Draw, PqPublicKey, SrsPqSecretKey};
use crate::reencrypt::{ReCapsule, ServingKey, reencrypt_hybrid_parts, reencrypt_parts};
use crate::rekey::ReKey;
use crate::rng::os_rng;

/// One node's share `rk_i = f(i)` of a re-encryption key, with the
/// commitments it is checked against. Secret (`t` of them give `rk`):
/// zeroized on drop, hidden from `Debug`; send each only to its node.
///
/// Encoding: `"SPKS" ‖ 02 ‖ i ‖ rk_i ‖ t ‖ n ‖ X_e ‖ X_{P,c} ‖ X_U ‖
/// C_0 ‖ … ‖ C_{t-1} ‖ c ‖ s` (`200 + 32·t` bytes): the index and share,
/// then the commitments' fields and proof as in [`ShareCommitments`].
#[derive(Clone)]
pub struct ReKeyShare {
    pub(super) index: u8,
    pub(super) share: Scalar,
    pub(super) commitments: ShareCommitments,
    /// `R_i = rk_i·G`, computed once.
    pub(super) verification: PublicKey,
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

    /// Re-encrypts a hybrid (post-quantum) header as node `i` of a
    /// threshold SRS does: `E'_i = rk_i·E`, and the node's share `σ_i` of
    /// the header's secret, taken from its stanza with `srs` (this node's
    /// ML-KEM-768 key) and re-wrapped to `user`, the granted user's key.
    /// With the OS RNG, without a proof. A classical header gets a
    /// classical share.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header belongs to another portion key,
    /// has no stanza for this node or sealed it to another key version;
    /// [`Error::DecryptionFailed`] if the stanza does not open or holds
    /// another share than the header commits to.
    pub fn reencrypt_hybrid(
        &self,
        header: VerifiedHeader<'_>,
        srs: &SrsPqSecretKey,
        user: &PqPublicKey,
    ) -> Result<ReCapsule> {
        self.reencrypt_hybrid_drawn(header, srs, user, false, &mut os_rng(), Draw::System)
    }

    /// As [`ReKeyShare::reencrypt_hybrid`], with a proof against `R_i`
    /// (covering the re-wrapped share).
    ///
    /// # Errors
    /// As [`ReKeyShare::reencrypt_hybrid`].
    pub fn reencrypt_hybrid_with_proof(
        &self,
        header: VerifiedHeader<'_>,
        srs: &SrsPqSecretKey,
        user: &PqPublicKey,
    ) -> Result<ReCapsule> {
        self.reencrypt_hybrid_drawn(header, srs, user, true, &mut os_rng(), Draw::System)
    }

    /// [`ReKeyShare::reencrypt_hybrid`] with the given RNG (the
    /// encapsulation's `m` first, then the proof's nonce), with a proof when
    /// `with_proof`.
    ///
    /// # Errors
    /// As [`ReKeyShare::reencrypt_hybrid`].
    pub fn reencrypt_hybrid_with_rng<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        srs: &SrsPqSecretKey,
        user: &PqPublicKey,
        with_proof: bool,
        rng: &mut R,
    ) -> Result<ReCapsule> {
        self.reencrypt_hybrid_drawn(header, srs, user, with_proof, rng, Draw::Given)
    }

    fn reencrypt_hybrid_drawn<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        srs: &SrsPqSecretKey,
        user: &PqPublicKey,
        with_proof: bool,
        rng: &mut R,
        draw: Draw,
    ) -> Result<ReCapsule> {
        self.check_portion(header)?;
        reencrypt_hybrid_parts(
            &self.share,
            &self.commitments.ephemeral,
            self.verification.as_bytes(),
            Some(self.index),
            header,
            (srs, user),
            with_proof,
            (rng, draw),
        )
    }

    fn reencrypt_inner<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        rng: Option<&mut R>,
    ) -> Result<ReCapsule> {
        self.check_portion(header)?;
        // A hybrid header's share of `σ` needs the node's ML-KEM key.
        if header.header().is_hybrid() {
            return Err(Error::PqKeyMissing);
        }
        Ok(reencrypt_parts(
            &self.share,
            &self.commitments.ephemeral,
            self.verification.as_bytes(),
            Some(self.index),
            None,
            header,
            rng,
        ))
    }

    fn check_portion(&self, header: VerifiedHeader<'_>) -> Result<()> {
        if header.header().context().portion_key() == &self.commitments.portion_key {
            Ok(())
        } else {
            Err(Error::KeyMismatch)
        }
    }

    /// What a node keeps while the grant is active.
    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
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
