//! Unidirectional, non-interactive re-encryption keys.
//!
//! From portion `(P, c)` to user `U`, computed by the patient's client from
//! `x_{P,c}` and the public `X_U` only:
//! `x_e = H_s("sesphr/v1/rekey-ephemeral", x_{P,c}, X_{P,c}, X_U, ρ)` (hedged), `X_e = x_e·G`, `d = H_s("sesphr/v1/rekey", X_e, X_U, x_e·X_U, X_{P,c})`,
//! `rk = x_{P,c}·d⁻¹`, `RK = rk·G`. Only the SRS receives the key; alone it
//! opens nothing.

use core::fmt;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::capsule::{PortionHeader, VerifiedHeader};
use crate::encoding::{Reader, decode_secret_scalar, frame, magic};
use crate::error::{Error, Result};
use crate::hash::{hash_to_scalar, hedged_nonce, tag};
use crate::keys::{PortionSecretKey, PublicKey};
use crate::pq::{Draw, PqPublicKey, SrsPqSecretKey};
use crate::reencrypt::{ReCapsule, ServingKey, reencrypt_hybrid_parts, reencrypt_parts};
use crate::rng::os_rng;

/// `d = H_s("sesphr/v1/rekey", X_e, X_U, shared, X_{P,c})`, where `shared` is
/// `x_e·X_U` (patient side) or `x_U·X_e` (user side).
pub(crate) fn rekey_factor(
    ephemeral: &PublicKey,
    delegatee: &PublicKey,
    shared: &RistrettoPoint,
    portion_key: &PublicKey,
) -> Scalar {
    let mut shared = shared.compress().to_bytes();
    let d = hash_to_scalar(
        tag::REKEY,
        &[
            ephemeral.as_bytes(),
            delegatee.as_bytes(),
            &shared,
            portion_key.as_bytes(),
        ],
    );
    shared.zeroize();
    d
}

/// The delegatee's `d` for a grant: `rekey_factor` with `shared = x_U·X_e`
/// (zeroized after use). Shared by the whole-key and threshold openers.
pub(crate) fn delegatee_factor(
    user: &crate::keys::KeyPair,
    ephemeral: &PublicKey,
    portion_key: &PublicKey,
) -> Scalar {
    let mut shared = user.secret().scalar() * ephemeral.point();
    let d = rekey_factor(ephemeral, user.public(), &shared, portion_key);
    shared.zeroize();
    d
}

/// A re-encryption key `(rk, X_e, X_{P,c}, X_U, RK)`: lets the SRS turn
/// capsules of one portion into capsules that one user can open.
///
/// The scalar `rk` is secret (an SRS colluding with the user could recover
/// the portion key from it); it is zeroized on drop and hidden from `Debug`.
///
/// Encoding: `"SPRK" ‖ version ‖ rk ‖ X_e ‖ X_{P,c} ‖ X_U ‖ RK` (165 bytes).
///
/// ```
/// use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, ReKey};
/// let patient = PatientKeys::generate(Identity::new("alice")?);
/// let medical = patient.portion_secret(&PortionLabel::new("medical")?, 0);
/// let doctor = KeyPair::generate();
/// let rekey = ReKey::generate(&medical, doctor.public());
/// assert_eq!(rekey.delegatee(), doctor.public());
/// assert_eq!(ReKey::from_bytes(&rekey.to_bytes())?, rekey);
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone)]
pub struct ReKey {
    rk: Scalar,
    ephemeral: PublicKey,
    portion_key: PublicKey,
    delegatee: PublicKey,
    commitment: PublicKey,
}

impl ReKey {
    /// What the SRS keeps to serve this grant (the whole key).
    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn serving_key(&self) -> ServingKey {
        ServingKey::whole(self.scalar(), self.ephemeral(), self.commitment())
    }

    /// Length of the encoding.
    pub const LEN: usize = 5 + 32 * 5;

    /// A re-encryption key from `portion` to `delegatee`, with the OS RNG.
    pub fn generate(portion: &PortionSecretKey, delegatee: &PublicKey) -> Self {
        Self::generate_with_rng(portion, delegatee, &mut os_rng())
    }

    /// A re-encryption key from `portion` to `delegatee`.
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(
        portion: &PortionSecretKey,
        delegatee: &PublicKey,
        rng: &mut R,
    ) -> Self {
        // Hedged: unpredictable to the SRS even from a weak RNG.
        let mut x_e = hedged_nonce(
            tag::REKEY_EPHEMERAL,
            portion.scalar(),
            &[portion.public().key().as_bytes(), delegatee.as_bytes()],
            rng,
        );
        let ephemeral = PublicKey::from_point(&x_e * RISTRETTO_BASEPOINT_TABLE);
        let mut shared = x_e * delegatee.point();
        let portion_key = *portion.public().key();
        let mut d = rekey_factor(&ephemeral, delegatee, &shared, &portion_key);
        let rk = portion.scalar() * d.invert();
        let commitment = PublicKey::from_point(&rk * RISTRETTO_BASEPOINT_TABLE);
        x_e.zeroize();
        shared.zeroize();
        d.zeroize();
        Self {
            rk,
            ephemeral,
            portion_key,
            delegatee: *delegatee,
            commitment,
        }
    }

    /// The ephemeral public key `X_e`.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }

    /// The portion public key point `X_{P,c}` this key re-encrypts from.
    pub fn portion_key(&self) -> &PublicKey {
        &self.portion_key
    }

    /// The delegatee's public key `X_U`.
    pub fn delegatee(&self) -> &PublicKey {
        &self.delegatee
    }

    /// The commitment `RK = rk·G`.
    pub fn commitment(&self) -> &PublicKey {
        &self.commitment
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.rk
    }

    /// The encoding (secret material: store it sealed).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = frame(magic::REKEY, Self::LEN);
        v.extend_from_slice(self.rk.as_bytes());
        for p in [
            &self.ephemeral,
            &self.portion_key,
            &self.delegatee,
            &self.commitment,
        ] {
            v.extend_from_slice(p.as_bytes());
        }
        zeroize::Zeroizing::new(v)
    }

    /// Decodes strictly, and checks that `RK == rk·G`.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::NonCanonicalScalar`], [`Error::ZeroScalar`],
    /// [`Error::NonCanonicalPoint`], [`Error::IdentityPoint`];
    /// [`Error::KeyMismatch`] if the commitment does not match `rk`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("re-encryption key", bytes, magic::REKEY)?;
        let mut rk_bytes = r.array::<32>()?;
        let rk = decode_secret_scalar(&rk_bytes);
        rk_bytes.zeroize();
        let rk = rk?;
        let mut point = || r.point().map(|(c, p)| PublicKey::from_parts(c, p));
        let ephemeral = point()?;
        let portion_key = point()?;
        let delegatee = point()?;
        let commitment = point()?;
        r.finish()?;
        let key = Self {
            rk,
            ephemeral,
            portion_key,
            delegatee,
            commitment,
        };
        if (&key.rk * RISTRETTO_BASEPOINT_TABLE).compress().as_bytes() != commitment.as_bytes() {
            return Err(Error::KeyMismatch);
        }
        Ok(key)
    }
}

/// Re-encryption: through a [`VerifiedHeader`] only, so the capsule proof is
/// always checked first ([`PortionHeader::verify`], or
/// [`PortionHeader::verify_batch`] for many).
impl ReKey {
    /// `E' = rk·E` for a verified header of this key's portion.
    ///
    /// ```
    /// use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
    /// let patient = PatientKeys::generate(Identity::new("alice")?);
    /// let lab = patient.portion_secret(&PortionLabel::new("lab")?, 0);
    /// let doctor = KeyPair::generate();
    /// let rekey = ReKey::generate(&lab, doctor.public());
    /// let sealed = SealedPortion::seal(lab.public(), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
    /// let rc = rekey.reencrypt(sealed.header().verify()?)?;
    /// assert_eq!(sealed.open_as_delegatee(&doctor, &rc)?, b"HbA1c 5.4%");
    /// # Ok::<(), sesphr::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header belongs to another portion key.
    pub fn reencrypt(&self, header: VerifiedHeader<'_>) -> Result<ReCapsule> {
        self.reencrypt_inner(header, None::<&mut crate::rng::OsRng>)
    }

    /// As [`ReKey::reencrypt`], with a proof of correct re-encryption (with
    /// the OS RNG for the hedged nonce).
    ///
    /// # Errors
    /// As [`ReKey::reencrypt`].
    pub fn reencrypt_with_proof(&self, header: VerifiedHeader<'_>) -> Result<ReCapsule> {
        self.reencrypt_with_proof_with_rng(header, &mut os_rng())
    }

    /// As [`ReKey::reencrypt_with_proof`], with the given RNG.
    ///
    /// # Errors
    /// As [`ReKey::reencrypt`].
    pub fn reencrypt_with_proof_with_rng<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        rng: &mut R,
    ) -> Result<ReCapsule> {
        self.reencrypt_inner(header, Some(rng))
    }

    /// Re-encrypts a hybrid (post-quantum) header as the SRS does: `E' =
    /// rk·E`, and `σ` taken from the header's SRS stanza with `srs` and
    /// re-wrapped by a fresh ML-KEM-768 encapsulation to `user`, the granted
    /// user's key (DESIGN §16). A classical header gets a classical
    /// re-capsule. With the OS RNG, without a proof.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header belongs to another portion key
    /// or was sealed to another SRS key version; [`Error::DecryptionFailed`]
    /// if its SRS stanza does not open (altered, or moved from another
    /// portion or record).
    pub fn reencrypt_hybrid(
        &self,
        header: VerifiedHeader<'_>,
        srs: &SrsPqSecretKey,
        user: &PqPublicKey,
    ) -> Result<ReCapsule> {
        self.reencrypt_hybrid_drawn(header, srs, user, false, &mut os_rng(), Draw::System)
    }

    /// [`ReKey::reencrypt_hybrid`] with the given RNG (the encapsulation's
    /// `m` is drawn first, then the proof's nonce), with a proof of correct
    /// re-encryption (covering the stanza) when `with_proof`.
    ///
    /// # Errors
    /// As [`ReKey::reencrypt_hybrid`].
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
        self.check_portion(header.header())?;
        reencrypt_hybrid_parts(
            &self.rk,
            &self.ephemeral,
            self.commitment.as_bytes(),
            None,
            header,
            (srs, user),
            with_proof,
            (rng, draw),
        )
    }

    /// Checks the portion, then `E' = rk·E`, proved when `rng` is given. A
    /// hybrid header needs [`ReKey::reencrypt_hybrid`].
    fn reencrypt_inner<R: CryptoRng + ?Sized>(
        &self,
        header: VerifiedHeader<'_>,
        rng: Option<&mut R>,
    ) -> Result<ReCapsule> {
        self.check_portion(header.header())?;
        if header.header().is_hybrid() {
            return Err(Error::PqKeyMissing);
        }
        Ok(reencrypt_parts(
            &self.rk,
            &self.ephemeral,
            self.commitment.as_bytes(),
            None,
            None,
            header,
            rng,
        ))
    }

    fn check_portion(&self, header: &PortionHeader) -> Result<()> {
        if header.context().portion_key() == self.portion_key() {
            Ok(())
        } else {
            Err(Error::KeyMismatch)
        }
    }
}

impl Drop for ReKey {
    fn drop(&mut self) {
        self.rk.zeroize();
    }
}
impl ZeroizeOnDrop for ReKey {}

impl ConstantTimeEq for ReKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.rk.ct_eq(&other.rk)
            & self.ephemeral.as_bytes().ct_eq(other.ephemeral.as_bytes())
            & self
                .portion_key
                .as_bytes()
                .ct_eq(other.portion_key.as_bytes())
            & self.delegatee.as_bytes().ct_eq(other.delegatee.as_bytes())
    }
}
impl PartialEq for ReKey {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}
impl Eq for ReKey {}

impl fmt::Debug for ReKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReKey")
            .field("ephemeral", &self.ephemeral)
            .field("portion_key", &self.portion_key)
            .field("delegatee", &self.delegatee)
            .field("commitment", &self.commitment)
            .finish_non_exhaustive()
    }
}
