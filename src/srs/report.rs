//! The patient's side of the accounting of disclosures: a
//! [`DisclosureReport`] carries the disclosures of a window, each with its
//! Merkle inclusion proof against one signed checkpoint, and the SRS's
//! signature vouching that the listing is complete. The patient's device
//! verifies it with the SRS's public key alone (SPEC §6.5).

use ed25519_dalek::{Signature, Signer, SigningKey};

use crate::encoding::{Reader, frame_version};
use crate::ids::Identity;
use crate::merkle::{InclusionProof, leaf_hash};
use crate::model::{AuditEntry, Checkpoint, Disclosure};
use crate::srs::proofs::{StoreNodes, prove, verify_inclusion};
use crate::srs::types::SrsError;
use crate::srs::{Srs, VerifyingKey};

const MAGIC: [u8; 4] = *b"SPDR";
const VERSION: u8 = 1;
const TAG: &[u8] = b"sesphr/v1/disclosure-report";
/// Entries and proofs are at most this long each (1 MiB).
const MAX_PART: usize = 1 << 20;

fn malformed(what: &'static str) -> SrsError {
    SrsError::Malformed(crate::Error::Malformed { what })
}

/// A patient's disclosures with `from <= time <= to`, each proven against
/// `checkpoint`, signed by the SRS as complete.
///
/// ```
/// # use sesphr::consent::PatientRegistration;
/// # use sesphr::srs::{DisclosureReport, Purpose, Role, Srs};
/// # use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
/// # let srs = Srs::in_memory()?;
/// # let alice = PatientKeys::generate(Identity::new("alice")?);
/// # let lab = PortionLabel::new("lab")?;
/// # srs.register_patient(&PatientRegistration::new(&alice, &[(lab.clone(), 0)])?)?;
/// # let doctor_id = Identity::new("dr-bob")?;
/// # let doctor = KeyPair::generate();
/// # srs.register_user(&doctor_id, Role::Doctor, doctor.public(), &doctor.prove_possession(&doctor_id))?;
/// # let report = SealedPortion::seal(&alice.portion_public(&lab, 0), RecordId::random(), 1_700_000_000, b"x")?;
/// # let rekey = ReKey::generate(&alice.portion_secret(&lab, 0), doctor.public());
/// # srs.grant(&alice.sign_grant(&lab, 0, &doctor_id, &rekey, &Default::default())?, rekey)?;
/// srs.reencrypt(&doctor_id, report.header(), Purpose::Treatment)?;
/// // On the SRS: the report, as bytes for the patient's device.
/// let bytes = srs.disclosure_report(alice.patient(), 0, u64::MAX)?.to_bytes();
/// // On the device, with the SRS's public key alone.
/// let shown = DisclosureReport::from_bytes(&bytes)?.verify(&srs.verifying_key())?;
/// assert_eq!(shown.len(), 1);
/// assert_eq!(shown[0].user, doctor_id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisclosureReport {
    patient: Identity,
    from: u64,
    to: u64,
    checkpoint: Checkpoint,
    entries: Vec<(AuditEntry, InclusionProof)>,
    signature: [u8; 64],
}

impl DisclosureReport {
    /// The patient it is for.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }

    /// The window: `(from, to)`, inclusive.
    pub fn window(&self) -> (u64, u64) {
        (self.from, self.to)
    }

    /// The checkpoint every entry is proven against.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The audit entries and their proofs (checked by
    /// [`DisclosureReport::verify`]).
    pub fn entries(&self) -> &[(AuditEntry, InclusionProof)] {
        &self.entries
    }

    fn signed_bytes(&self) -> Result<Vec<u8>, SrsError> {
        let mut v = frame_version(MAGIC, VERSION, 256 + 400 * self.entries.len());
        crate::encoding::put_short_bytes(&mut v, self.patient.as_bytes());
        v.extend_from_slice(&self.from.to_be_bytes());
        v.extend_from_slice(&self.to.to_be_bytes());
        v.extend_from_slice(&self.checkpoint.to_bytes());
        let n = u32::try_from(self.entries.len()).map_err(|_| malformed("report too long"))?;
        v.extend_from_slice(&n.to_be_bytes());
        for (e, p) in &self.entries {
            for part in [e.to_bytes(), p.to_bytes()] {
                let len = u32::try_from(part.len()).map_err(|_| malformed("report entry"))?;
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(&part);
            }
        }
        Ok(v)
    }

    /// `"SPDR" ‖ 0x01 ‖ len1(patient) ‖ u64(from) ‖ u64(to) ‖ checkpoint
    /// (181) ‖ u32(n) ‖ n × (u32(len) ‖ entry ‖ u32(len) ‖ inclusion proof)
    /// ‖ signature (64)`; the SRS signs `"sesphr/v1/disclosure-report" ‖`
    /// everything before the signature.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Reports are built from entries that encode; lengths fit u32.
        let mut v = self.signed_bytes().unwrap_or_default();
        v.extend_from_slice(&self.signature);
        v
    }

    /// Decodes [`DisclosureReport::to_bytes`] (nothing is verified yet).
    ///
    /// # Errors
    /// [`SrsError::Malformed`] for anything that does not decode exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SrsError> {
        let mut r = Reader::framed_version("disclosure report", bytes, MAGIC, VERSION)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let from = r.u64()?;
        let to = r.u64()?;
        let checkpoint = Checkpoint::from_bytes(r.take(Checkpoint::LEN)?)?;
        let n = r.u32()? as usize;
        // Each entry takes more than 8 bytes: a count past that is a lie.
        if n > r.remaining() / 8 {
            return Err(malformed("report entry count"));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let mut part = || -> Result<&[u8], SrsError> {
                let len = r.u32()? as usize;
                if len > MAX_PART {
                    return Err(malformed("report entry"));
                }
                Ok(r.take(len)?)
            };
            let e = AuditEntry::from_bytes(part()?)?;
            let p = InclusionProof::from_bytes(part()?)?;
            entries.push((e, p));
        }
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            from,
            to,
            checkpoint,
            entries,
            signature,
        })
    }

    /// Checks the report with the SRS's public key alone and returns the
    /// disclosures it proves: the checkpoint is signed by `srs_key`; every
    /// entry is a disclosure of this patient within the window, in order,
    /// each once, and proven in the log the checkpoint signs; the SRS signed
    /// the report (vouching that it lists every disclosure of the window up
    /// to the checkpoint — checked on its side against the patient's
    /// authenticated count). Roles are not in the log: they are `None`.
    ///
    /// # Errors
    /// [`SrsError::InvalidCheckpoint`] if the checkpoint is not signed by
    /// `srs_key` (or signs no tree); [`SrsError::Malformed`] with
    /// [`crate::Error::InvalidSignature`] if the report is not signed by
    /// it, or with [`crate::Error::InvalidLogProof`] if an entry is not
    /// proven; [`SrsError::Malformed`] for an entry that is not one of the
    /// window's disclosures, or out of order.
    pub fn verify(&self, srs_key: &VerifyingKey) -> Result<Vec<Disclosure>, SrsError> {
        let mut msg = TAG.to_vec();
        msg.extend_from_slice(&self.signed_bytes()?);
        srs_key
            .verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| {
                SrsError::Malformed(crate::Error::InvalidSignature {
                    what: "disclosure report",
                })
            })?;
        let mut out = Vec::with_capacity(self.entries.len());
        let mut after: Option<(u64, u64)> = None;
        for (e, p) in &self.entries {
            verify_inclusion(e, p, &self.checkpoint, srs_key)?;
            if crate::store::disclosed(e) != Some(&self.patient)
                || e.time < self.from
                || e.time > self.to
                || after.is_some_and(|a| (e.time, e.seq) <= a)
            {
                return Err(malformed(
                    "report entry not one of the window's disclosures",
                ));
            }
            after = Some((e.time, e.seq));
            out.push(
                Disclosure::from_entry(e.clone(), None)
                    .ok_or(malformed("report entry not a disclosure"))?,
            );
        }
        Ok(out)
    }
}

impl Srs {
    /// The patient's [`DisclosureReport`] for `from <= time <= to`: a fresh
    /// checkpoint, the accounting of disclosures up to it (checked true and
    /// complete, as [`Srs::disclosures`] checks it), each entry with its
    /// inclusion proof, signed by this SRS's checkpoint key.
    ///
    /// # Errors
    /// What [`Srs::disclosures`] and [`Srs::inclusion_proof`] return.
    pub fn disclosure_report(
        &self,
        patient: &Identity,
        from: u64,
        to: u64,
    ) -> Result<DisclosureReport, SrsError> {
        let checkpoint = self.checkpoint()?;
        let root = self.checkpoint_root(&checkpoint)?;
        self.holds(&checkpoint)?;
        let store = self.store();
        // One reader of the tree for every proof: neighbours share most of
        // their nodes.
        let mut nodes = StoreNodes::new(store.as_ref());
        let mut entries = Vec::new();
        let mut listing = self.disclosures(patient, from, to);
        while let Some(e) = listing.next_entry() {
            let e = e?;
            if e.seq > checkpoint.seq {
                continue;
            }
            if Disclosure::from_entry(e.clone(), None).is_none() {
                return Err(crate::srs::queries::NOT_A_DISCLOSURE);
            }
            // The entry listed is the proof's leaf: a proof made from
            // altered nodes, or of another leaf, fails here.
            let proof = prove(&mut nodes, e.seq, checkpoint.seq)?;
            proof
                .verify(&leaf_hash(&e.to_bytes()), &root)
                .map_err(|_| SrsError::Tampered("audit entry"))?;
            entries.push((e, proof));
        }
        let mut report = DisclosureReport {
            patient: patient.clone(),
            from,
            to,
            checkpoint,
            entries,
            signature: [0; 64],
        };
        report.signature = sign(self.signing_key(), &report.signed_bytes()?);
        Ok(report)
    }
}

fn sign(key: &SigningKey, bytes: &[u8]) -> [u8; 64] {
    let mut msg = TAG.to_vec();
    msg.extend_from_slice(bytes);
    key.sign(&msg).to_bytes()
}
