//! Signed refusals of access requests.

use super::*;

/// A refusal of an access request, signed by the patient.
///
/// Encoding: `"SPSF" ‖ version ‖ patient ‖ request id (16) ‖ reason
/// (2-byte length) ‖ issued at (8) ‖ nonce (16) ‖ signature (64)`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRefusal {
    pub(super) patient: Identity,
    pub(super) request: RequestId,
    pub(super) reason: String,
    pub(super) issued_at: u64,
    pub(super) nonce: [u8; 16],
    pub(super) signature: [u8; 64],
}

impl Signed for SignedRefusal {
    const CONTEXT: &'static [u8] = context::REFUSAL;
    const WHAT: &'static str = "signed refusal";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::SIGNED_REFUSAL, 128 + self.reason.len());
        put_short_bytes(&mut v, self.patient.as_bytes());
        v.extend_from_slice(&self.request.to_bytes());
        // At most 1024 bytes (checked when made and decoded).
        v.extend_from_slice(&short_len(self.reason.len()));
        v.extend_from_slice(self.reason.as_bytes());
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl SignedRefusal {
    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The request refused.
    pub fn request(&self) -> RequestId {
        self.request
    }
    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
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
    /// Encoding errors; [`Error::Malformed`] for a bad reason text.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("signed refusal", bytes, magic::SIGNED_REFUSAL)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let request = RequestId::from_bytes(r.array()?);
        let n = usize::from(u16::from_be_bytes(r.array()?));
        let reason = core::str::from_utf8(r.take(n)?).map_err(|_| Error::Malformed {
            what: "signed refusal",
        })?;
        let reason = crate::model::check_text(reason)?;
        let issued_at = r.u64()?;
        let nonce = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            request,
            reason,
            issued_at,
            nonce,
            signature,
        })
    }
}

impl fmt::Debug for SignedRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRefusal")
            .field("patient", &self.patient)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}
