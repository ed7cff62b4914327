//! Signed revocations.

use super::*;

/// A revocation the patient signed: every grant of one portion label (all
/// key epochs) to one user.
///
/// Encoding: `"SPSV" ‖ version ‖ patient ‖ label ‖ user ‖ issued at (8) ‖
/// nonce (16) ‖ signature (64)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRevocation {
    pub(super) patient: Identity,
    pub(super) label: PortionLabel,
    pub(super) user: Identity,
    pub(super) issued_at: u64,
    pub(super) nonce: [u8; 16],
    pub(super) signature: [u8; 64],
}

impl Signed for SignedRevocation {
    const CONTEXT: &'static [u8] = context::REVOCATION;
    const WHAT: &'static str = "signed revocation";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::SIGNED_REVOCATION, 200);
        put_short_bytes(&mut v, self.patient.as_bytes());
        put_short_bytes(&mut v, self.label.as_bytes());
        put_short_bytes(&mut v, self.user.as_bytes());
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl SignedRevocation {
    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }
    /// The user.
    pub fn user(&self) -> &Identity {
        &self.user
    }
    /// When the patient signed it.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// Its nonce.
    pub fn nonce(&self) -> [u8; 16] {
        self.nonce
    }

    /// Checks the signature with the patient's consent key.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`].
    pub fn verify(&self, consent_key: &VerifyingKey) -> Result<()> {
        self.check(consent_key)
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
        let mut r = Reader::framed("signed revocation", bytes, magic::SIGNED_REVOCATION)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let user = Identity::from_utf8(r.short_bytes()?)?;
        let issued_at = r.u64()?;
        let nonce = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            label,
            user,
            issued_at,
            nonce,
            signature,
        })
    }
}

impl fmt::Debug for SignedRevocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRevocation")
            .field("patient", &self.patient)
            .field("label", &self.label)
            .field("user", &self.user)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}
