//! Re-checking an audit entry's evidence against the patient's key.

use super::*;

/// What [`check_entry`] found an audit entry to be.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checked {
    /// A patient registration (or added portion keys), self-signed by this
    /// consent key.
    Registration(VerifyingKey),
    /// A user registration with a valid key proof.
    User,
    /// A portion key with a valid proof of possession by the patient.
    PortionKey,
    /// A grant the patient signed.
    Grant,
    /// A revocation the patient signed.
    Revocation,
    /// A refusal the patient signed.
    Refusal,
    /// An administrative change (no patient signature; its actor and role
    /// are in the entry).
    Administrative,
    /// An entry that carries no consent (a re-encryption, a request).
    NotConsent,
}

/// Re-checks one audit entry's evidence with public keys alone: that the
/// signed object verifies under the patient's consent key (looked up with
/// `consent_key`) and names exactly the patient, label and user of the
/// entry. An auditor runs this over an audit export ([`AuditEntry::to_json`]
/// carries the evidence in hex), keeping each patient's consent key from
/// their registration entry (or from the patient directly).
///
/// # Errors
/// [`Error::InvalidSignature`] if a signature or proof fails;
/// [`Error::Malformed`] if the evidence does not decode, is missing where
/// consent is required, or disagrees with the entry; [`Error::KeyMismatch`]
/// if no consent key is known for the patient.
pub fn check_entry(
    entry: &AuditEntry,
    consent_key: &dyn Fn(&Identity) -> Option<VerifyingKey>,
) -> Result<Checked> {
    const BAD: Error = Error::Malformed {
        what: "audit evidence does not match its entry",
    };
    if entry.outcome != AuditOutcome::Ok {
        return Ok(Checked::NotConsent);
    }
    let key_of = |p: &Option<Identity>| -> Result<VerifyingKey> {
        let p = p.as_ref().ok_or(BAD)?;
        consent_key(p).ok_or(Error::KeyMismatch)
    };
    match entry.action {
        AuditAction::AddPortion => {
            let patient = entry.patient.as_ref().ok_or(BAD)?;
            let label = entry.label.as_ref().ok_or(BAD)?;
            let mut r = Reader::unframed("portion key proof", &entry.evidence);
            let epoch = r.u32()?;
            let key = PublicKey::from_bytes(&r.array()?)?;
            let proof = KeyProof::from_bytes(&r.array::<64>()?)?;
            r.finish()?;
            proof.verify_portion(patient, &PortionPublicKey::new(label.clone(), epoch, key))?;
            Ok(Checked::PortionKey)
        }
        AuditAction::RegisterPatient => {
            let r = PatientRegistration::from_bytes(&entry.evidence)?;
            r.verify()?;
            if entry.patient.as_ref() != Some(&r.patient) {
                return Err(BAD);
            }
            Ok(Checked::Registration(r.consent_key))
        }
        AuditAction::RegisterUser => {
            let user = entry.user.as_ref().ok_or(BAD)?;
            let mut r = Reader::unframed("user key proof", &entry.evidence);
            let key = PublicKey::from_bytes(&r.array()?)?;
            let proof = KeyProof::from_bytes(&r.array::<64>()?)?;
            r.finish()?;
            proof.verify_user(user, &key)?;
            Ok(Checked::User)
        }
        AuditAction::Grant => {
            let g = SignedGrant::from_bytes(&entry.evidence)?;
            g.verify(&key_of(&entry.patient)?)?;
            if entry.patient.as_ref() != Some(&g.patient)
                || entry.label.as_ref() != Some(&g.label)
                || entry.user.as_ref() != Some(&g.user)
            {
                return Err(BAD);
            }
            Ok(Checked::Grant)
        }
        AuditAction::Revoke | AuditAction::RemoveUser if is_admin(&entry.evidence) => {
            Ok(Checked::Administrative)
        }
        AuditAction::Revoke => {
            let r = SignedRevocation::from_bytes(&entry.evidence)?;
            r.verify(&key_of(&entry.patient)?)?;
            if entry.patient.as_ref() != Some(&r.patient)
                || entry.label.as_ref() != Some(&r.label)
                || entry.user.as_ref() != Some(&r.user)
            {
                return Err(BAD);
            }
            Ok(Checked::Revocation)
        }
        AuditAction::RefuseRequest => {
            let r = SignedRefusal::from_bytes(&entry.evidence)?;
            r.verify(&key_of(&entry.patient)?)?;
            if entry.patient.as_ref() != Some(&r.patient) {
                return Err(BAD);
            }
            Ok(Checked::Refusal)
        }
        AuditAction::RemoveUser => Err(BAD),
        _ => Ok(Checked::NotConsent),
    }
}

/// The evidence of an administrative action: `"SPAD" ‖ version ‖ actor ‖
/// role ‖ reason (2-byte length)`.
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
pub(crate) fn admin_evidence(actor: &Identity, role: &Role, reason: &str) -> Vec<u8> {
    let mut v = frame(magic::ADMIN, 64 + reason.len());
    put_short_bytes(&mut v, actor.as_bytes());
    put_short_bytes(&mut v, role.as_str().as_bytes());
    // Reasons are checked text: at most 1024 bytes.
    v.extend_from_slice(&short_len(reason.len()));
    v.extend_from_slice(reason.as_bytes());
    v
}

fn is_admin(evidence: &[u8]) -> bool {
    evidence.get(..4) == Some(&magic::ADMIN[..])
}

/// The evidence of a portion key's registration: `epoch (4) ‖ key (32) ‖
/// proof (64)` (the patient and label are the entry's).
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
pub(crate) fn portion_evidence(key: &PortionPublicKey, proof: &KeyProof) -> Vec<u8> {
    let mut v = Vec::with_capacity(100);
    v.extend_from_slice(&key.epoch().to_be_bytes());
    v.extend_from_slice(key.key().as_bytes());
    v.extend_from_slice(&proof.to_bytes());
    v
}

/// The evidence of a user registration: the key and its proof.
#[cfg_attr(not(feature = "srs"), allow(dead_code))]
pub(crate) fn user_evidence(key: &PublicKey, proof: &KeyProof) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(&proof.to_bytes());
    v
}

/// Who carried out an administrative change (a compliance officer removing
/// a clinician who left): recorded in the audit entry in place of a patient
/// signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Who.
    pub identity: Identity,
    /// In which role.
    pub role: Role,
    /// Why (1–1024 bytes of text).
    pub reason: String,
}

impl Actor {
    /// An actor with a reason.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an empty or too long reason, or one with
    /// control characters.
    pub fn new(identity: Identity, role: Role, reason: &str) -> Result<Self> {
        Ok(Self {
            identity,
            role,
            reason: crate::model::check_text(reason)?,
        })
    }

    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn evidence(&self) -> Vec<u8> {
        admin_evidence(&self.identity, &self.role, &self.reason)
    }
}
