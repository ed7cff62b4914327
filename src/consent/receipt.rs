//! The SRS's signed revocation receipts.

use super::*;

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
    pub(super) patient: Identity,
    pub(super) label: PortionLabel,
    pub(super) user: Identity,
    pub(super) revoked_at: u64,
    pub(super) seq: u64,
    pub(super) grants: u32,
    pub(super) authorization: [u8; 32],
    pub(super) signature: [u8; 64],
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
