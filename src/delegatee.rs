//! The delegatee's side of a grant: `d`, computed once per grant from the
//! user's secret key, then used for every record re-encrypted under it.

use core::fmt;

use curve25519_dalek::scalar::Scalar;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::capsule::PortionHeader;
use crate::dem::DemKey;
use crate::error::{Error, Result};
use crate::keys::{KeyPair, PublicKey};
use crate::pq::PqSecretKey;
use crate::reencrypt::{ReCapsule, open_rewrapped};
use crate::rekey::delegatee_factor;

/// The delegatee's secret for one grant: `d`, computed once from the user's
/// secret key, the grant's `X_e` and the portion key, then reused for every
/// record of that grant. Zeroized on drop; `Debug` hides it.
///
/// ```
/// use sesphr::{DelegateeOpener, Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
/// let patient = PatientKeys::generate(Identity::new("alice")?);
/// let lab = patient.portion_secret(&PortionLabel::new("lab")?, 0);
/// let doctor = KeyPair::generate();
/// let rekey = ReKey::generate(&lab, doctor.public()); // sent to the SRS
/// let opener = DelegateeOpener::new(&doctor, rekey.ephemeral(), lab.public().key());
/// for text in [&b"HbA1c 5.4%"[..], b"LDL 96 mg/dL"] {
///     let sealed = SealedPortion::seal(lab.public(), RecordId::random(), 1_700_000_000, text)?;
///     let rc = rekey.reencrypt(sealed.header().verify()?)?; // done by the SRS
///     assert_eq!(sealed.open_as_delegatee_with(&opener, &rc)?, text);
/// }
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone)]
pub struct DelegateeOpener {
    d: Scalar,
    ephemeral: PublicKey,
    portion_key: PublicKey,
    require_proof: bool,
    /// The user's ML-KEM-768 key, for hybrid headers.
    pq: Option<PqSecretKey>,
}

impl DelegateeOpener {
    /// `d = H_s("sesphr/v1/rekey", X_e, X_U, x_U·X_e, X_{P,c})` for the grant
    /// with ephemeral key `ephemeral` on portion key `portion_key`.
    pub fn new(user: &KeyPair, ephemeral: &PublicKey, portion_key: &PublicKey) -> Self {
        Self {
            d: delegatee_factor(user, ephemeral, portion_key),
            ephemeral: *ephemeral,
            portion_key: *portion_key,
            require_proof: false,
            pq: user.pq().cloned(),
        }
    }

    /// Refuses re-capsules without a proof of correct re-encryption
    /// ([`Error::InvalidReEncryptionProof`]): a user who does not trust the
    /// SRS to compute `E'` honestly asks for proofs and insists on them.
    #[must_use]
    pub fn require_proof(mut self) -> Self {
        self.require_proof = true;
        self
    }

    /// The opener for the grant a re-capsule of `header` was made under.
    pub fn for_recapsule(user: &KeyPair, header: &PortionHeader, recapsule: &ReCapsule) -> Self {
        Self::new(user, recapsule.ephemeral(), header.context().portion_key())
    }

    /// The grant's ephemeral key `X_e`.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }

    /// The portion key `X_{P,c}` of the grant.
    pub fn portion_key(&self) -> &PublicKey {
        &self.portion_key
    }

    /// The commitment `RK = d⁻¹·X_{P,c}` of the grant's re-encryption key.
    pub fn commitment(&self) -> PublicKey {
        PublicKey::from_point(self.d.invert() * self.portion_key.point())
    }

    /// Checks that `recapsule` was made from `header` under this grant (a
    /// whole re-capsule: a node's share opens nothing alone),
    /// verifies the capsule proof and, if present, the re-encryption proof,
    /// and derives the DEM key (for a hybrid header, with `σ` from the
    /// re-capsule's stanza, opened with the user's ML-KEM-768 key).
    pub(crate) fn dem_key(&self, header: &PortionHeader, recapsule: &ReCapsule) -> Result<DemKey> {
        if recapsule.capsule != *header.capsule()
            || recapsule.share.is_some()
            || recapsule.ephemeral != self.ephemeral
            || header.context().portion_key() != &self.portion_key
        {
            return Err(Error::KeyMismatch);
        }
        header.verify()?;
        if self.require_proof || recapsule.proof.is_some() {
            recapsule.verify_proof(&self.commitment())?;
        }
        let sigma = match (header.is_hybrid(), &recapsule.pq, &self.pq) {
            (false, None, _) => None,
            // A stanza on a classical header's re-capsule was not made for it.
            (false, Some(_), _) => return Err(Error::KeyMismatch),
            // A whole re-capsule carries `σ` itself: the header's only node.
            (true, Some(_), Some(_)) if header.pq_split() != Some((1, 1)) => {
                return Err(Error::KeyMismatch);
            }
            (true, Some(stanza), Some(key)) => Some(open_rewrapped(
                header,
                1,
                stanza,
                key,
                &recapsule.ephemeral,
            )?),
            (true, _, _) => return Err(Error::PqKeyMissing),
        };
        let mut shared = self.d * recapsule.e_prime_point;
        let key = header.dem_key(&shared, sigma.as_deref());
        shared.zeroize();
        key
    }
}

impl Drop for DelegateeOpener {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}
impl ZeroizeOnDrop for DelegateeOpener {}

impl ConstantTimeEq for DelegateeOpener {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.d.ct_eq(&other.d)
    }
}

impl fmt::Debug for DelegateeOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegateeOpener")
            .field("ephemeral", &self.ephemeral)
            .field("portion_key", &self.portion_key)
            .finish_non_exhaustive()
    }
}
