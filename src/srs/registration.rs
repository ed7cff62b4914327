//! Registering users and patients, their keys and consent keys, and
//! removing users.

use crate::consent::KeyProof;
use crate::consent::{Actor, PatientRegistration, user_evidence};
use crate::ids::Identity;
use crate::keys::{KeyPair, PortionPublicKey, PublicKey};
use crate::model::{AuditAction, Role};
use crate::pq::{PqPublicKey, SrsPqPublicKey};
use crate::srs::chain::Draft;
use crate::srs::grants::{Revocation, admin_detail, plan_revoke};
use crate::srs::journal::Change;
use crate::srs::rows::{PatientRow, PortionRow, PqKeyRow, Row, UserRow};
use crate::srs::server::*;
use crate::srs::types::SrsError;

impl Srs {
    /// The SRS's post-quantum (ML-KEM-768) key at its current version: what
    /// sealers put in a [`crate::HybridPortionKey`] so that hybrid headers'
    /// delegate stanzas go to this SRS (DESIGN §16). Every version is
    /// derived from the storage key; version 1 until
    /// [`Srs::rotate_pq_key`].
    ///
    /// # Errors
    /// [`SrsError::Tampered`] if the key derivation fails (never expected).
    pub fn pq_public_key(&self) -> Result<SrsPqPublicKey, SrsError> {
        let version = self.read().pq_version();
        Ok(self.keys.pq_key(version)?.public())
    }

    /// Rotates the SRS's post-quantum key: new headers are sealed to the
    /// next version (hosts publish the key returned); headers sealed to an
    /// older version still re-encrypt, since every version stays
    /// derivable. Audited (the new version and its fingerprint).
    ///
    /// # Errors
    /// [`SrsError::Store`] / [`SrsError::Unavailable`] if it could not be
    /// made durable; [`SrsError::Tampered`] if the version would overflow.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let old = srs.pq_public_key()?;
    /// let new = srs.rotate_pq_key()?;
    /// assert_eq!(new.version(), old.version() + 1);
    /// assert_eq!(srs.pq_public_key()?, new);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate_pq_key(&self) -> Result<SrsPqPublicKey, SrsError> {
        let now = self.clock.now();
        let keys = self.keys.clone();
        self.change(move |reg| {
            let version = reg
                .pq_version()
                .checked_add(1)
                .ok_or(SrsError::Tampered("post-quantum key version"))?;
            let public = keys.pq_key(version)?.public();
            let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RotatePqKey);
            d.detail = format!(
                "version={version} fingerprint={}",
                crate::encoding::hex(&public.key().fingerprint())
            );
            Ok(Change {
                rows: vec![Row::PqKey(PqKeyRow {
                    version,
                    since: now,
                })],
                replaced: reg.pq_key_image().into_iter().collect(),
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })?;
        self.pq_public_key()
    }

    /// Registers (or replaces) a user's ML-KEM-768 encapsulation key: the
    /// key the SRS re-wraps a hybrid header's secret to when it serves that
    /// user (without one, hybrid headers are denied with
    /// [`Denial::NoPqKey`](crate::model::Denial::NoPqKey)). Audited with
    /// the key's fingerprint.
    ///
    /// A grant that names the key's fingerprint
    /// ([`crate::consent::GrantOptions::user_pq_key`]) is served only while
    /// the registered key has it (else
    /// [`Denial::PqKeyNotGranted`](crate::model::Denial::PqKeyNotGranted)):
    /// whoever can call this cannot redirect a patient's hybrid records to a
    /// key of their own. The registry row is authenticated like every other.
    ///
    /// # Errors
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`]; store errors.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let doctor_pq = sesphr::PqSecretKey::generate(); // kept by the doctor
    /// srs.register_pq_key(&doctor, doctor_pq.public())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_pq_key(&self, identity: &Identity, key: &PqPublicKey) -> Result<(), SrsError> {
        let now = self.clock.now();
        let identity = identity.clone();
        let key = key.clone();
        self.change(move |reg| {
            let uid = reg.user_id(&identity).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            let (mut row, _) = reg.user_row(uid).ok_or(SrsError::UnknownUser)?;
            row.pq_key = Some(Box::new(*key.as_bytes()));
            let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RegisterPqKey);
            d.user = Some(identity.clone());
            d.detail = format!("fingerprint={}", crate::encoding::hex(&key.fingerprint()));
            Ok(Change {
                rows: vec![Row::User(row)],
                replaced: reg.user_image(uid).into_iter().collect(),
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })
    }

    /// Registers a data user, with their proof of possession of the key
    /// ([`KeyPair::prove_possession`]): nobody registers a key they do not
    /// hold, or another's key under their own name.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] with [`crate::Error::InvalidSignature`] if the
    /// proof does not verify for this identity and key;
    /// [`SrsError::AlreadyRegistered`] if the identity was ever registered;
    /// [`SrsError::KeyInUse`] if another user has this public key;
    /// [`SrsError::Store`] / [`SrsError::Unavailable`] if it could not be made durable.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let (nurse, keys) = (Identity::new("nurse-7")?, KeyPair::generate());
    /// let role: Role = "lab-technician".parse()?;
    /// srs.register_user(&nurse, role, keys.public(), &keys.prove_possession(&nurse))?;
    /// assert!(srs.user(&nurse).is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_user(
        &self,
        identity: &Identity,
        role: Role,
        public_key: &PublicKey,
        proof: &KeyProof,
    ) -> Result<(), SrsError> {
        proof.verify_user(identity, public_key)?;
        let now = self.clock.now();
        let evidence = user_evidence(public_key, proof);
        let (identity, public_key) = (identity.clone(), *public_key);
        self.change(move |reg| {
            if reg.user_id(&identity).is_some() {
                return Err(SrsError::AlreadyRegistered);
            }
            if reg.user_by_key(public_key.as_bytes()).is_some() {
                return Err(SrsError::KeyInUse);
            }
            let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RegisterUser);
            d.user = Some(identity.clone());
            d.detail = format!("role={role} key={public_key}");
            d.evidence = evidence;
            let row = Row::User(UserRow {
                identity,
                role,
                public_key: public_key.to_bytes(),
                registered_at: now,
                removed_at: None,
                pq_key: None,
            });
            Ok(Change {
                rows: vec![row],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })
    }

    /// Removes a user (an administrative act: `actor` says who, in which
    /// role and why; it is recorded in the audit): every grant of theirs is
    /// revoked (keys zeroized and deleted) and they are served nothing more.
    /// The identity is retired.
    ///
    /// # Errors
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`]; store errors.
    pub fn remove_user(&self, identity: &Identity, actor: &Actor) -> Result<(), SrsError> {
        let now = self.clock.now();
        let identity = identity.clone();
        let actor = actor.clone();
        self.change(move |reg| {
            let uid = reg.user_id(&identity).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            let (mut row, _) = reg.user_row(uid).ok_or(SrsError::UnknownUser)?;
            row.removed_at = Some(now);
            let mut change = Change {
                rows: vec![Row::User(row)],
                replaced: reg.user_image(uid).into_iter().collect(),
                ..Change::audit(Vec::new())
            };
            let mut d = Draft::new(now, actor.identity.as_str(), AuditAction::RemoveUser);
            d.user = Some(identity.clone());
            d.detail = admin_detail(&actor);
            d.evidence = actor.evidence();
            change.drafts.push(d);
            let why = Revocation {
                user: &identity,
                now,
                actor: actor.identity.as_str(),
                detail: admin_detail(&actor),
                evidence: actor.evidence(),
                signed: None,
            };
            for (portion, img) in reg.active_grants_of(uid) {
                plan_revoke(reg, &mut change, portion, uid, img, &why)?;
            }
            Ok(change)
        })
    }

    /// Registers a patient: their consent public key and portion keys, from
    /// a [`PatientRegistration`] their client signed (with the consent key,
    /// and a proof of possession for every portion key). The registration
    /// is kept in the audit entry.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] ([`crate::Error::InvalidSignature`]) if the
    /// signature or a proof does not verify; [`SrsError::AlreadyRegistered`]
    /// if the patient exists or a (label, epoch) repeats;
    /// [`SrsError::KeyInUse`] if a portion key is registered already; store
    /// errors.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// // The patient's client signs the registration: consent key, portion keys
    /// // with proofs of possession.
    /// let other = PatientKeys::generate(Identity::new("patient-0043")?);
    /// let labels = [(PortionLabel::new("medical")?, 0), (PortionLabel::new("lab")?, 0)];
    /// srs.register_patient(&PatientRegistration::new(&other, &labels)?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_patient(&self, registration: &PatientRegistration) -> Result<(), SrsError> {
        registration.verify()?;
        check_distinct(registration)?;
        let now = self.clock.now();
        let reg_bytes = registration.to_bytes();
        let patient = registration.patient().clone();
        let consent = registration.consent_key().to_bytes();
        let portions = portion_evidence(registration);
        self.change(move |reg| {
            if reg.patient_id(&patient).is_some() {
                return Err(SrsError::AlreadyRegistered);
            }
            if portions
                .iter()
                .any(|(p, _)| reg.portion_by_point(p.key().as_bytes()).is_some())
            {
                return Err(SrsError::KeyInUse);
            }
            let mut d = Draft::new(now, patient.as_str(), AuditAction::RegisterPatient);
            d.patient = Some(patient.clone());
            d.evidence = reg_bytes;
            let mut change = Change {
                rows: vec![Row::Patient(PatientRow {
                    identity: patient.clone(),
                    registered_at: now,
                    consent_key: Some(consent),
                })],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            };
            for (k, evidence) in portions {
                plan_portion(&mut change, &patient, &k, now, evidence);
            }
            Ok(change)
        })
    }

    /// Registers more portion keys for a patient (a new label, or a new
    /// epoch after a key rotation), from a [`PatientRegistration`] signed
    /// with the consent key registered for them.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`]; [`SrsError::NoConsentKey`];
    /// [`SrsError::Malformed`] ([`crate::Error::InvalidSignature`]) if it is
    /// not signed with the registered consent key or a proof fails;
    /// [`SrsError::AlreadyRegistered`] if the patient has a (label, epoch);
    /// [`SrsError::KeyInUse`]; store errors.
    pub fn add_portions(&self, registration: &PatientRegistration) -> Result<(), SrsError> {
        registration.verify()?;
        check_distinct(registration)?;
        let now = self.clock.now();
        let patient = registration.patient().clone();
        let consent = registration.consent_key().to_bytes();
        let portions = portion_evidence(registration);
        self.change(move |reg| {
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
            match reg.consent_key(pid) {
                None => return Err(SrsError::NoConsentKey),
                Some(k) if k != consent => {
                    return Err(SrsError::Malformed(crate::Error::InvalidSignature {
                        what: "patient registration (not the registered consent key)",
                    }));
                }
                Some(_) => {}
            }
            let mut change = Change::audit(Vec::new());
            for (key, evidence) in portions {
                if reg.portion_by_point(key.key().as_bytes()).is_some() {
                    return Err(SrsError::KeyInUse);
                }
                if reg
                    .portions_labelled(pid, key.label())
                    .iter()
                    .any(|&(_, e)| e == key.epoch())
                {
                    return Err(SrsError::AlreadyRegistered);
                }
                plan_portion(&mut change, &patient, &key, now, evidence);
            }
            Ok(change)
        })
    }

    /// Gives a patient registered before signed consent existed (no consent
    /// key) their consent key: the registration must be signed with it and
    /// prove possession of every portion key registered for the patient —
    /// which only the patient's master secret can do. Audited with the
    /// registration as evidence.
    ///
    /// A legacy patient with no portion key registered cannot adopt one:
    /// nothing registered could prove who signs, so the host registers the
    /// patient's portion keys first (with their proofs).
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`]; [`SrsError::AlreadyRegistered`] if the
    /// patient has a consent key; [`SrsError::Malformed`]
    /// ([`crate::Error::InvalidSignature`]) if a signature or proof fails,
    /// a registered portion key is missing from the registration, or the
    /// patient has no portion key registered; store errors.
    pub fn adopt_consent_key(&self, registration: &PatientRegistration) -> Result<(), SrsError> {
        registration.verify()?;
        let now = self.clock.now();
        let reg_bytes = registration.to_bytes();
        let patient = registration.patient().clone();
        let consent = registration.consent_key().to_bytes();
        let proven: Vec<[u8; 32]> = registration
            .portions()
            .map(|k| k.key().to_bytes())
            .collect();
        self.change(move |reg| {
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
            let (img, current) = reg.patient_image(pid).ok_or(SrsError::UnknownPatient)?;
            if current.is_some() {
                return Err(SrsError::AlreadyRegistered);
            }
            let registered = reg.portion_points(pid);
            if registered.is_empty() {
                // Nothing registered for the patient that only the master
                // secret can prove: anyone could install any consent key.
                return Err(SrsError::Malformed(crate::Error::InvalidSignature {
                    what: "patient registration (no registered portion key proves the patient)",
                }));
            }
            if registered.iter().any(|p| !proven.contains(p)) {
                return Err(SrsError::Malformed(crate::Error::InvalidSignature {
                    what: "patient registration (a registered portion key is not proven)",
                }));
            }
            let mut d = Draft::new(now, patient.as_str(), AuditAction::RegisterPatient);
            d.patient = Some(patient.clone());
            d.detail = "consent key adopted".to_owned();
            d.evidence = reg_bytes;
            let registered_at = reg
                .patient_registered_at(pid)
                .ok_or(SrsError::UnknownPatient)?;
            Ok(Change {
                rows: vec![Row::Patient(PatientRow {
                    identity: patient,
                    registered_at,
                    consent_key: Some(consent),
                })],
                replaced: vec![img],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })
    }

    /// **Escrow mode**: issues the key pair of `identity` in `epoch` from the
    /// SRS's master seed (see [`SrsConfig::escrow`](crate::srs::SrsConfig::escrow)). The issuance is audited;
    /// the host still registers the user with [`Srs::register_user`].
    ///
    /// # Errors
    /// [`SrsError::EscrowDisabled`] unless the SRS was set up for escrow;
    /// store errors.
    pub fn issue_keys(&self, identity: &Identity, epoch: u32) -> Result<KeyPair, SrsError> {
        let issuer = self.escrow.as_ref().ok_or(SrsError::EscrowDisabled)?;
        let now = self.clock.now();
        let mut d = Draft::new(now, HOST_ACTOR, AuditAction::IssueKeys);
        d.user = Some(identity.clone());
        d.detail = format!("epoch={epoch}");
        self.change(move |_| Ok(Change::audit(vec![d])))?;
        Ok(issuer.issue(identity, epoch))
    }
}

/// No portion key or (label, epoch) twice in one registration.
fn check_distinct(r: &PatientRegistration) -> Result<(), SrsError> {
    let keys: Vec<&PortionPublicKey> = r.portions().collect();
    for (i, p) in keys.iter().enumerate() {
        let earlier = keys.get(..i).unwrap_or_default();
        if earlier.iter().any(|q| q.key() == p.key()) {
            return Err(SrsError::KeyInUse);
        }
        if earlier
            .iter()
            .any(|q| q.label() == p.label() && q.epoch() == p.epoch())
        {
            return Err(SrsError::AlreadyRegistered);
        }
    }
    Ok(())
}

/// Each portion key of a registration with the evidence its audit entry
/// keeps: the key, its epoch and its proof of possession.
fn portion_evidence(r: &PatientRegistration) -> Vec<(PortionPublicKey, Vec<u8>)> {
    r.portion_proofs()
        .map(|(k, proof)| (k.clone(), crate::consent::portion_evidence(k, proof)))
        .collect()
}

fn plan_portion(
    change: &mut Change,
    patient: &Identity,
    key: &PortionPublicKey,
    now: u64,
    evidence: Vec<u8>,
) {
    let mut d = Draft::new(now, patient.as_str(), AuditAction::AddPortion);
    d.patient = Some(patient.clone());
    d.label = Some(key.label().clone());
    d.detail = format!("epoch={} key={}", key.epoch(), key.key());
    d.evidence = evidence;
    change.drafts.push(d);
    change.rows.push(Row::Portion(PortionRow {
        patient: patient.clone(),
        label: key.label().clone(),
        epoch: key.epoch(),
        point: key.key().to_bytes(),
        registered_at: now,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReKey;
    use crate::consent::GrantOptions;
    use crate::model::Role;
    use crate::srs::server::HOST_ACTOR;
    use crate::srs::{SrsConfig, StorageKey};
    use crate::store::{MemoryStore, Store};
    use crate::{PatientKeys, PortionLabel};
    use std::sync::Arc;

    /// A patient as an earlier version registered them: no consent key, no
    /// proofs (this version's API cannot make one).
    fn legacy_patient(srs: &Srs, p: &PatientKeys, labels: &[PortionLabel]) -> Result<(), SrsError> {
        let now = srs.now();
        let (id, keys): (Identity, Vec<PortionPublicKey>) = (
            p.patient().clone(),
            labels.iter().map(|l| p.portion_public(l, 0)).collect(),
        );
        srs.change(move |_| {
            let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RegisterPatient);
            d.patient = Some(id.clone());
            let mut change = Change {
                rows: vec![Row::Patient(PatientRow {
                    identity: id.clone(),
                    registered_at: now,
                    consent_key: None,
                })],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            };
            for k in &keys {
                plan_portion(&mut change, &id, k, now, Vec::new());
            }
            Ok(change)
        })
    }

    #[test]
    fn a_legacy_patient_adopts_a_consent_key_by_proving_every_portion_key()
    -> Result<(), Box<dyn std::error::Error>> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let key = StorageKey::generate();
        let open = || Srs::open(SrsConfig::shared(store.clone(), key.clone()));
        let srs = open()?;
        let p = PatientKeys::generate(Identity::new("legacy")?);
        let (lab, med) = (PortionLabel::new("lab")?, PortionLabel::new("medical")?);
        legacy_patient(&srs, &p, &[lab.clone(), med.clone()])?;
        let doc = Identity::new("doc")?;
        let kp = KeyPair::generate();
        srs.register_user(&doc, Role::Doctor, kp.public(), &kp.prove_possession(&doc))?;
        let rk = ReKey::generate(&p.portion_secret(&lab, 0), kp.public());
        let g = p.sign_grant(&lab, 0, &doc, &rk, &GrantOptions::default())?;
        assert!(matches!(
            srs.grant(&g, rk.clone()),
            Err(SrsError::NoConsentKey)
        ));
        // Proving one of the two portion keys is not enough.
        let partial = PatientRegistration::new(&p, &[(lab.clone(), 0)])?;
        assert!(matches!(
            srs.adopt_consent_key(&partial),
            Err(SrsError::Malformed(_))
        ));
        // Someone without the master secret cannot prove the keys.
        let other = PatientKeys::from_master(p.patient().clone(), &[5; 32]);
        let forged = PatientRegistration::new(&other, &[(lab.clone(), 0), (med.clone(), 0)])?;
        assert!(srs.adopt_consent_key(&forged).is_err());
        assert_eq!(srs.consent_key(p.patient()), None);
        let full = PatientRegistration::new(&p, &[(lab.clone(), 0), (med.clone(), 0)])?;
        srs.adopt_consent_key(&full)?;
        assert!(matches!(
            srs.adopt_consent_key(&full),
            Err(SrsError::AlreadyRegistered)
        ));
        assert_eq!(srs.consent_key(p.patient()), Some(p.consent_public()));
        srs.grant(&g, rk)?;
        // The adoption survives a reopen (the replaced row verifies).
        drop(srs);
        let srs = open()?;
        assert_eq!(srs.consent_key(p.patient()), Some(p.consent_public()));
        srs.verify_audit()?;
        let r = srs.verify_consent()?;
        // The legacy registration and its two portion keys carry no evidence.
        assert_eq!(r.unsigned, 3);
        assert_eq!((r.grants, r.active_checked), (1, 1));
        Ok(())
    }

    /// A legacy patient with no portion key has nothing that proves who
    /// they are: no one — not even a registration signed with a fresh key
    /// and proving other portion keys — installs a consent key for them.
    #[test]
    fn a_legacy_patient_without_portion_keys_adopts_nothing()
    -> Result<(), Box<dyn std::error::Error>> {
        let srs = Srs::open(SrsConfig::new(MemoryStore::new(), StorageKey::generate()))?;
        let p = PatientKeys::generate(Identity::new("legacy-empty")?);
        legacy_patient(&srs, &p, &[])?;
        let before = srs.registry();
        // An impostor's registration for the same identity, proving keys of
        // its own; and the patient's own, proving portions never registered.
        let impostor = PatientKeys::from_master(p.patient().clone(), &[6; 32]);
        let lab = PortionLabel::new("lab")?;
        for who in [&impostor, &p] {
            for portions in [vec![], vec![(lab.clone(), 0)]] {
                let r = PatientRegistration::new(who, &portions)?;
                match srs.adopt_consent_key(&r) {
                    Err(SrsError::Malformed(crate::Error::InvalidSignature { what })) => {
                        assert!(what.contains("no registered portion key"), "{what}");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(srs.consent_key(p.patient()), None);
        assert_eq!(srs.registry(), before);
        Ok(())
    }
}
