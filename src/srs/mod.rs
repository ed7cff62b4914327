//! The Setup and Re-encryption Server (SRS): registry, access-control list,
//! re-encryption service, revocation, audit chain, durable store.
//!
//! The SRS is a component that a host embeds in its own server. It holds the
//! public-key registry, the grants (each with its re-encryption key, sealed at
//! rest), and a hash-chained audit log. It never sees plaintext or a portion
//! key: a re-encryption key alone opens nothing.
//!
//! Guarantees:
//! - **Durable before acknowledged.** Every registration, grant and
//!   revocation, and the audit entry of every re-encryption and denial, is in
//!   the store (one atomic transaction) before the call returns.
//! - **Linearizable revocation.** Re-encryptions run under a shared lock that
//!   a revocation takes exclusively: once `revoke` returns, no re-encryption
//!   under that grant succeeds, from any thread.
//! - **Nothing re-encrypted on revocation.** The re-encryption key is
//!   zeroized and deleted; no stored record is touched.
//!
//! ```
//! use sesphr::srs::{Role, Scope, Srs};
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
//!
//! let srs = Srs::in_memory();
//! let alice = PatientKeys::generate(Identity::new("alice")?);
//! let lab = PortionLabel::new("lab")?;
//! srs.register_patient(alice.patient(), &[alice.portion_public(&lab, 0)])?;
//!
//! let doctor_id = Identity::new("dr-bob")?;
//! let doctor = KeyPair::generate();
//! srs.register_user(&doctor_id, Role::Doctor, doctor.public())?;
//!
//! let report = SealedPortion::seal(&alice.portion_public(&lab, 0), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
//! let rekey = ReKey::generate(&alice.portion_secret(&lab, 0), doctor.public());
//! srs.grant(alice.patient(), &lab, &doctor_id, rekey, Scope::AllRecords, None)?;
//!
//! let rc = srs.reencrypt(&doctor_id, report.header())?;
//! assert_eq!(report.open_as_delegatee(&doctor, &rc)?, b"HbA1c 5.4%");
//!
//! srs.revoke(alice.patient(), &lab, &doctor_id)?;
//! assert!(srs.reencrypt(&doctor_id, report.header()).is_err());
//! // Patient + portion, user, grant, re-encryption, revocation, denial.
//! assert_eq!(srs.verify_audit()?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audit;
mod seal;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use audit::{AuditAction, AuditEntry, AuditOutcome};
pub use types::{Clock, Denial, ManualClock, Role, Scope, SrsError, StorageKey, SystemClock};

use crate::capsule::PortionHeader;
use crate::ids::{Identity, PortionLabel};
use crate::keys::{EscrowKeyIssuer, KeyPair, PortionPublicKey, PublicKey};
use crate::reencrypt::ReCapsule;
use crate::rekey::ReKey;
use crate::rng::os_rng;
use crate::store::{
    GrantRecord, GrantState, MemoryStore, PatientRecord, PortionRecord, Store, StoreOp, UserRecord,
    UserStatus,
};
use audit::{Draft, Journal, verify_chain};
use seal::{RekeySealer, head_mac};

/// The actor named in audit entries of changes the host made.
const HOST_ACTOR: &str = "srs";

/// How an SRS is set up.
pub struct SrsConfig {
    store: Arc<dyn Store>,
    storage_key: StorageKey,
    clock: Arc<dyn Clock>,
    escrow: Option<EscrowKeyIssuer>,
}

impl SrsConfig {
    /// An SRS on `store`, sealing secrets with `storage_key`, with the system
    /// clock and no escrow.
    pub fn new(store: impl Store + 'static, storage_key: StorageKey) -> Self {
        Self::shared(Arc::new(store), storage_key)
    }

    /// As [`SrsConfig::new`], for a store the host also keeps a handle to.
    pub fn shared(store: Arc<dyn Store>, storage_key: StorageKey) -> Self {
        Self {
            store,
            storage_key,
            clock: Arc::new(SystemClock),
            escrow: None,
        }
    }

    /// Uses another clock (tests, simulations).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// **Escrow mode**: lets [`Srs::issue_keys`] derive users' keys from
    /// `issuer`'s master seed. Whoever holds that seed can compute every
    /// issued secret key; users who generate their own keys are unaffected.
    /// Off unless set here.
    #[must_use]
    pub fn escrow(mut self, issuer: EscrowKeyIssuer) -> Self {
        self.escrow = Some(issuer);
        self
    }
}

impl core::fmt::Debug for SrsConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrsConfig")
            .field("escrow", &self.escrow.is_some())
            .finish_non_exhaustive()
    }
}

enum GrantStatus {
    Active(Box<ReKey>),
    Revoked(u64),
}

struct Grant {
    scope: Scope,
    expiry: Option<u64>,
    granted_at: u64,
    status: GrantStatus,
}

/// The in-memory registry, guarded by the SRS's lock.
#[derive(Default)]
struct Registry {
    users: HashMap<Identity, UserRecord>,
    user_keys: HashMap<[u8; 32], Identity>,
    patients: HashMap<Identity, PatientRecord>,
    /// Portion keys by their point.
    portions: HashMap<[u8; 32], PortionRecord>,
    /// Points of each patient's portion keys.
    patient_portions: HashMap<Identity, Vec<[u8; 32]>>,
    /// Grants by portion point, then user.
    grants: HashMap<[u8; 32], HashMap<Identity, Grant>>,
}

impl Registry {
    fn active_user(&self, id: &Identity) -> Result<&UserRecord, SrsError> {
        let u = self.users.get(id).ok_or(SrsError::UnknownUser)?;
        match u.status {
            UserStatus::Active => Ok(u),
            UserStatus::Removed(_) => Err(SrsError::UserRemoved),
        }
    }

    fn insert_portion(&mut self, r: PortionRecord) {
        let point = r.key.key().to_bytes();
        self.patient_portions
            .entry(r.patient.clone())
            .or_default()
            .push(point);
        self.portions.insert(point, r);
    }

    /// The patient's portion points with this label (every epoch).
    fn portions_labelled<'a>(
        &'a self,
        patient: &Identity,
        label: &'a PortionLabel,
    ) -> impl Iterator<Item = &'a [u8; 32]> + 'a {
        self.patient_portions
            .get(patient)
            .into_iter()
            .flatten()
            .filter(move |p| {
                self.portions
                    .get(*p)
                    .is_some_and(|r| r.key.label() == label)
            })
    }

    /// Decides whether `user` may have `header` re-encrypted now; on success
    /// returns the key to do it with.
    fn authorize(
        &self,
        user: &Identity,
        header: &PortionHeader,
        now: u64,
        draft: &mut Draft,
    ) -> Result<&ReKey, Denial> {
        match self.users.get(user) {
            Some(u) if u.status == UserStatus::Active => {}
            _ => return Err(Denial::NotRegistered),
        }
        let ctx = header.context();
        let point = ctx.portion_key().as_bytes();
        let portion = self.portions.get(point).ok_or(Denial::NotGranted)?;
        draft.patient = Some(portion.patient.clone());
        draft.label = Some(portion.key.label().clone());
        if portion.key.label() != ctx.label() || portion.key.epoch() != ctx.epoch() {
            return Err(Denial::InvalidCapsule);
        }
        let grant = self
            .grants
            .get(point)
            .and_then(|m| m.get(user))
            .ok_or(Denial::NotGranted)?;
        let rekey = match &grant.status {
            GrantStatus::Active(k) => k,
            GrantStatus::Revoked(_) => return Err(Denial::Revoked),
        };
        if grant.expiry.is_some_and(|e| now >= e) {
            return Err(Denial::Expired);
        }
        if !grant.scope.covers(ctx.created_at()) {
            return Err(Denial::OutOfScope);
        }
        Ok(rekey)
    }
}

/// A grant as the registry shows it (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// The patient.
    pub patient: Identity,
    /// The portion label.
    pub label: PortionLabel,
    /// The portion key epoch.
    pub epoch: u32,
    /// The user.
    pub user: Identity,
    /// Which records it covers.
    pub scope: Scope,
    /// When it stops working, if ever.
    pub expiry: Option<u64>,
    /// When it was granted.
    pub granted_at: u64,
    /// `None` while active; the revocation time once revoked.
    pub revoked_at: Option<u64>,
    /// The re-encryption key's commitment `RK` while active.
    pub commitment: Option<PublicKey>,
}

/// Everything the SRS knows but its secrets and its audit log, ordered: two
/// views compare equal exactly when the registries hold the same state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryView {
    /// Users by identity.
    pub users: BTreeMap<Identity, UserRecord>,
    /// Patients by identity, with their portion keys.
    pub patients: BTreeMap<Identity, Vec<PortionPublicKey>>,
    /// Grants by (patient, label, epoch, user).
    pub grants: BTreeMap<(Identity, PortionLabel, u32, Identity), GrantInfo>,
}

/// The Setup and Re-encryption Server. `Send + Sync`: share it between
/// threads (e.g. in an `Arc`); every method takes `&self`.
pub struct Srs {
    registry: RwLock<Registry>,
    journal: Journal,
    sealer: RekeySealer,
    clock: Arc<dyn Clock>,
    escrow: Option<EscrowKeyIssuer>,
}

impl core::fmt::Debug for Srs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Srs").finish_non_exhaustive()
    }
}

impl Srs {
    /// An SRS in memory, with a fresh storage key and the system clock:
    /// nothing survives the process. For tests and examples.
    pub fn in_memory() -> Self {
        // A new store is empty: nothing to load or verify.
        let key = StorageKey::generate();
        Self {
            registry: RwLock::new(Registry::default()),
            journal: Journal::new(
                Arc::new(MemoryStore::new()),
                head_mac(&key),
                0,
                audit::genesis_hash(),
            ),
            sealer: RekeySealer::new(&key),
            clock: Arc::new(SystemClock),
            escrow: None,
        }
    }

    /// Opens an SRS on an embedded SQLite database at `path` (created if
    /// missing).
    ///
    /// # Errors
    /// As [`Srs::open`] and [`crate::store::SqliteStore::open`].
    #[cfg(feature = "sqlite")]
    pub fn open_sqlite(
        path: impl AsRef<std::path::Path>,
        storage_key: StorageKey,
    ) -> Result<Self, SrsError> {
        Self::open(SrsConfig::new(
            crate::store::SqliteStore::open(path)?,
            storage_key,
        ))
    }

    /// Opens an SRS on the configured store and restores everything in it:
    /// registry, grants (unsealing each re-encryption key) and the audit
    /// chain, which is verified first.
    ///
    /// # Errors
    /// [`SrsError::Store`] if loading fails; [`SrsError::AuditChainBroken`] or
    /// [`SrsError::Tampered`] if the audit chain or a sealed key does not
    /// verify (also when the storage key is wrong).
    pub fn open(config: SrsConfig) -> Result<Self, SrsError> {
        let SrsConfig {
            store,
            storage_key,
            clock,
            escrow,
        } = config;
        let stored = store.load()?;
        let mac = head_mac(&storage_key);
        let records = store.audit(1)?;
        let (last_seq, head) = verify_chain(&records, stored.audit_head.as_ref(), &mac)?;
        drop(records);
        let sealer = RekeySealer::new(&storage_key);

        let mut reg = Registry::default();
        for u in stored.users {
            reg.user_keys
                .insert(u.public_key.to_bytes(), u.identity.clone());
            reg.users.insert(u.identity.clone(), u);
        }
        for p in stored.patients {
            reg.patients.insert(p.identity.clone(), p);
        }
        for p in stored.portions {
            if !reg.patients.contains_key(&p.patient) {
                return Err(SrsError::Tampered("portion record"));
            }
            reg.insert_portion(p);
        }
        for g in stored.grants {
            let portion = reg
                .portions_labelled(&g.patient, &g.label)
                .copied()
                .find(|p| {
                    reg.portions
                        .get(p)
                        .is_some_and(|r| r.key.epoch() == g.epoch)
                })
                .ok_or(SrsError::Tampered("grant record"))?;
            let user = reg
                .users
                .get(&g.user)
                .ok_or(SrsError::Tampered("grant record"))?;
            let status = match &g.state {
                GrantState::Active { sealed_rekey } => {
                    let k = sealer.open(sealed_rekey, (&g.patient, &g.label, g.epoch, &g.user))?;
                    if k.portion_key().to_bytes() != portion || k.delegatee() != &user.public_key {
                        return Err(SrsError::Tampered("grant record"));
                    }
                    GrantStatus::Active(Box::new(k))
                }
                GrantState::Revoked(t) => GrantStatus::Revoked(*t),
            };
            let grant = Grant {
                scope: g.scope,
                expiry: g.expiry,
                granted_at: g.granted_at,
                status,
            };
            reg.grants.entry(portion).or_default().insert(g.user, grant);
        }
        Ok(Self {
            registry: RwLock::new(reg),
            journal: Journal::new(store, mac, last_seq, head),
            sealer,
            clock,
            escrow,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // No code path panics while holding the lock; if a caller's panic
        // ever poisoned it, the registry is still consistent (changes are
        // made in memory only after they are durable, in one step).
        self.registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a data user.
    ///
    /// # Errors
    /// [`SrsError::AlreadyRegistered`] if the identity was ever registered;
    /// [`SrsError::KeyInUse`] if another user has this public key;
    /// [`SrsError::Store`] / [`SrsError::Unavailable`] if it could not be made durable.
    pub fn register_user(
        &self,
        identity: &Identity,
        role: Role,
        public_key: &PublicKey,
    ) -> Result<(), SrsError> {
        let now = self.clock.now();
        let mut reg = self.write();
        if reg.users.contains_key(identity) {
            return Err(SrsError::AlreadyRegistered);
        }
        if reg.user_keys.contains_key(public_key.as_bytes()) {
            return Err(SrsError::KeyInUse);
        }
        let rec = UserRecord {
            identity: identity.clone(),
            role,
            public_key: *public_key,
            status: UserStatus::Active,
            registered_at: now,
        };
        let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RegisterUser);
        d.user = Some(identity.clone());
        d.detail = format!("role={} key={}", rec.role, public_key);
        self.journal
            .commit(vec![StoreOp::PutUser(rec.clone())], vec![d])?;
        reg.user_keys
            .insert(public_key.to_bytes(), identity.clone());
        reg.users.insert(identity.clone(), rec);
        Ok(())
    }

    /// Removes a user: every grant of theirs is revoked (keys zeroized and
    /// deleted) and they are served nothing more. The identity is retired.
    ///
    /// # Errors
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`]; store errors.
    pub fn remove_user(&self, identity: &Identity) -> Result<(), SrsError> {
        let now = self.clock.now();
        let mut reg = self.write();
        let mut rec = reg.active_user(identity)?.clone();
        rec.status = UserStatus::Removed(now);
        let mut ops = vec![StoreOp::PutUser(rec.clone())];
        let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RemoveUser);
        d.user = Some(identity.clone());
        let mut drafts = vec![d];
        let mut revoked = Vec::new();
        for (point, by_user) in &reg.grants {
            if let Some(g) = by_user.get(identity)
                && matches!(g.status, GrantStatus::Active(_))
                && let Some(portion) = reg.portions.get(point)
            {
                ops.push(StoreOp::PutGrant(revoked_record(portion, identity, g, now)));
                drafts.push(revoke_draft(
                    now,
                    HOST_ACTOR,
                    portion,
                    identity,
                    "user removed",
                ));
                revoked.push(*point);
            }
        }
        self.journal.commit(ops, drafts)?;
        for point in revoked {
            if let Some(g) = reg.grants.get_mut(&point).and_then(|m| m.get_mut(identity)) {
                g.status = GrantStatus::Revoked(now);
            }
        }
        reg.users.insert(identity.clone(), rec);
        Ok(())
    }

    /// Registers a patient with their portion public keys.
    ///
    /// # Errors
    /// [`SrsError::AlreadyRegistered`] if the patient exists or a (label,
    /// epoch) repeats; [`SrsError::KeyInUse`] if a portion key is registered
    /// already; store errors.
    pub fn register_patient(
        &self,
        patient: &Identity,
        portions: &[PortionPublicKey],
    ) -> Result<(), SrsError> {
        let now = self.clock.now();
        let mut reg = self.write();
        if reg.patients.contains_key(patient) {
            return Err(SrsError::AlreadyRegistered);
        }
        for (i, p) in portions.iter().enumerate() {
            if reg.portions.contains_key(p.key().as_bytes())
                || portions[..i].iter().any(|q| q.key() == p.key())
            {
                return Err(SrsError::KeyInUse);
            }
            if portions[..i]
                .iter()
                .any(|q| q.label() == p.label() && q.epoch() == p.epoch())
            {
                return Err(SrsError::AlreadyRegistered);
            }
        }
        let prec = PatientRecord {
            identity: patient.clone(),
            registered_at: now,
        };
        let mut ops = vec![StoreOp::PutPatient(prec.clone())];
        let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RegisterPatient);
        d.patient = Some(patient.clone());
        let mut drafts = vec![d];
        let records: Vec<PortionRecord> = portions
            .iter()
            .map(|k| portion_record(patient, k, now))
            .collect();
        for r in &records {
            ops.push(StoreOp::PutPortion(r.clone()));
            drafts.push(portion_draft(now, r));
        }
        self.journal.commit(ops, drafts)?;
        reg.patients.insert(patient.clone(), prec);
        for r in records {
            reg.insert_portion(r);
        }
        Ok(())
    }

    /// Registers another portion key for a patient: a new label, or a new
    /// epoch of a label after a key rotation.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`]; [`SrsError::AlreadyRegistered`] if the
    /// patient has this (label, epoch); [`SrsError::KeyInUse`]; store errors.
    pub fn add_portion(&self, patient: &Identity, key: &PortionPublicKey) -> Result<(), SrsError> {
        let now = self.clock.now();
        let mut reg = self.write();
        if !reg.patients.contains_key(patient) {
            return Err(SrsError::UnknownPatient);
        }
        if reg.portions.contains_key(key.key().as_bytes()) {
            return Err(SrsError::KeyInUse);
        }
        if reg.portions_labelled(patient, key.label()).any(|p| {
            reg.portions
                .get(p)
                .is_some_and(|r| r.key.epoch() == key.epoch())
        }) {
            return Err(SrsError::AlreadyRegistered);
        }
        let r = portion_record(patient, key, now);
        self.journal.commit(
            vec![StoreOp::PutPortion(r.clone())],
            vec![portion_draft(now, &r)],
        )?;
        reg.insert_portion(r);
        Ok(())
    }

    /// **Escrow mode**: issues the key pair of `identity` in `epoch` from the
    /// SRS's master seed (see [`SrsConfig::escrow`]). The issuance is audited;
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
        let _reg = self.read();
        self.journal.commit(Vec::new(), vec![d])?;
        Ok(issuer.issue(identity, epoch))
    }

    /// Grants `user` the portion `label` of `patient`, with the
    /// re-encryption key the patient made for that user. Replaces an earlier
    /// grant of the same portion key to the same user.
    ///
    /// With [`Scope::AllRecords`] the user can read every record of the
    /// portion, old and new (backward access); with [`Scope::Since`] only
    /// records created from then on. After `expiry` (seconds since the Unix
    /// epoch) the grant stops working.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::UnknownUser`],
    /// [`SrsError::UserRemoved`], [`SrsError::UnknownPortion`];
    /// [`SrsError::RekeyMismatch`] if the key is not from this patient's
    /// `label` portion to this user's public key; store errors.
    pub fn grant(
        &self,
        patient: &Identity,
        label: &PortionLabel,
        user: &Identity,
        rekey: ReKey,
        scope: Scope,
        expiry: Option<u64>,
    ) -> Result<(), SrsError> {
        let now = self.clock.now();
        let mut reg = self.write();
        if !reg.patients.contains_key(patient) {
            return Err(SrsError::UnknownPatient);
        }
        let urec = reg.active_user(user)?;
        if reg.portions_labelled(patient, label).next().is_none() {
            return Err(SrsError::UnknownPortion);
        }
        let point = rekey.portion_key().to_bytes();
        let portion = reg.portions.get(&point).ok_or(SrsError::RekeyMismatch)?;
        if &portion.patient != patient
            || portion.key.label() != label
            || rekey.delegatee() != &urec.public_key
        {
            return Err(SrsError::RekeyMismatch);
        }
        let epoch = portion.key.epoch();
        let sealed_rekey =
            self.sealer
                .seal(&rekey, (patient, label, epoch, user), &mut os_rng())?;
        let rec = GrantRecord {
            patient: patient.clone(),
            label: label.clone(),
            epoch,
            user: user.clone(),
            scope,
            expiry,
            granted_at: now,
            state: GrantState::Active { sealed_rekey },
        };
        let mut d = Draft::new(now, patient.as_str(), AuditAction::Grant);
        d.patient = Some(patient.clone());
        d.label = Some(label.clone());
        d.user = Some(user.clone());
        d.detail = format!(
            "epoch={epoch} scope={scope} expiry={}",
            expiry.map_or_else(|| "none".to_owned(), |e| e.to_string())
        );
        self.journal.commit(vec![StoreOp::PutGrant(rec)], vec![d])?;
        let grant = Grant {
            scope,
            expiry,
            granted_at: now,
            status: GrantStatus::Active(Box::new(rekey)),
        };
        reg.grants
            .entry(point)
            .or_default()
            .insert(user.clone(), grant);
        Ok(())
    }

    /// Revokes `user`'s grants on portion `label` of `patient` (every key
    /// epoch): the re-encryption keys are zeroized and deleted, and no stored
    /// record is touched. Once this returns, no re-encryption under these
    /// grants succeeds.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::UnknownUser`],
    /// [`SrsError::UnknownPortion`]; [`SrsError::NotGranted`] if there is no
    /// active grant; store errors.
    pub fn revoke(
        &self,
        patient: &Identity,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<(), SrsError> {
        let now = self.clock.now();
        let mut reg = self.write();
        if !reg.patients.contains_key(patient) {
            return Err(SrsError::UnknownPatient);
        }
        if !reg.users.contains_key(user) {
            return Err(SrsError::UnknownUser);
        }
        let points: Vec<[u8; 32]> = reg.portions_labelled(patient, label).copied().collect();
        if points.is_empty() {
            return Err(SrsError::UnknownPortion);
        }
        let mut ops = Vec::new();
        let mut drafts = Vec::new();
        let mut hit = Vec::new();
        for point in points {
            if let (Some(portion), Some(g)) = (
                reg.portions.get(&point),
                reg.grants.get(&point).and_then(|m| m.get(user)),
            ) && matches!(g.status, GrantStatus::Active(_))
            {
                ops.push(StoreOp::PutGrant(revoked_record(portion, user, g, now)));
                drafts.push(revoke_draft(now, patient.as_str(), portion, user, ""));
                hit.push(point);
            }
        }
        if hit.is_empty() {
            return Err(SrsError::NotGranted);
        }
        self.journal.commit(ops, drafts)?;
        for point in hit {
            if let Some(g) = reg.grants.get_mut(&point).and_then(|m| m.get_mut(user)) {
                // Dropping the key zeroizes it.
                g.status = GrantStatus::Revoked(now);
            }
        }
        Ok(())
    }

    /// Re-encrypts a portion header for `user`, after checking that the user
    /// is registered and active, holds an unrevoked, unexpired grant for the
    /// portion whose scope covers the record's `created_at`, and that the
    /// capsule proof verifies. Granted or denied, the request is audited, and
    /// the answer comes only once its audit entry is durable.
    ///
    /// # Errors
    /// [`SrsError::Denied`] with the reason; store errors.
    pub fn reencrypt(
        &self,
        user: &Identity,
        header: &PortionHeader,
    ) -> Result<ReCapsule, SrsError> {
        self.reencrypt_one(user, header, false)
    }

    /// As [`Srs::reencrypt`], with a proof of correct re-encryption.
    ///
    /// # Errors
    /// As [`Srs::reencrypt`].
    pub fn reencrypt_with_proof(
        &self,
        user: &Identity,
        header: &PortionHeader,
    ) -> Result<ReCapsule, SrsError> {
        self.reencrypt_one(user, header, true)
    }

    /// As [`Srs::reencrypt`], for a header given as bytes.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] if the bytes are not a header (nothing is
    /// audited then: no record is named); otherwise as [`Srs::reencrypt`].
    pub fn reencrypt_encoded(&self, user: &Identity, header: &[u8]) -> Result<ReCapsule, SrsError> {
        let h = PortionHeader::from_bytes(header)?;
        self.reencrypt(user, &h)
    }

    fn reencrypt_one(
        &self,
        user: &Identity,
        header: &PortionHeader,
        proof: bool,
    ) -> Result<ReCapsule, SrsError> {
        let now = self.clock.now();
        let reg = self.read();
        let mut d = reencrypt_draft(now, user, header);
        let result = reg.authorize(user, header, now, &mut d).and_then(|k| {
            let rc = if proof {
                k.reencrypt_with_proof(header)
            } else {
                k.reencrypt(header)
            };
            rc.map_err(|_| Denial::InvalidCapsule)
        });
        if let Err(denial) = result {
            d.outcome = AuditOutcome::Denied(denial);
        }
        // The shared lock is held until the entry is durable, so a revocation
        // (which needs the exclusive lock) cannot complete in between.
        self.journal.commit(Vec::new(), vec![d])?;
        drop(reg);
        result.map_err(SrsError::Denied)
    }

    /// Re-encrypts many headers for one user (a doctor opening a patient's
    /// history). Each header is authorized as in [`Srs::reencrypt`]; the
    /// capsule proofs of each grant's headers are checked together with one
    /// multiscalar multiplication. One audit entry per header, committed
    /// together. Result `i` belongs to header `i`.
    ///
    /// # Errors
    /// The outer error is a store failure (then nothing is returned); the
    /// inner ones are per-header denials.
    pub fn reencrypt_batch(
        &self,
        user: &Identity,
        headers: &[&PortionHeader],
    ) -> Result<Vec<Result<ReCapsule, Denial>>, SrsError> {
        let now = self.clock.now();
        let reg = self.read();
        let mut drafts: Vec<Draft> = headers
            .iter()
            .map(|h| reencrypt_draft(now, user, h))
            .collect();
        let mut results: Vec<Result<ReCapsule, Denial>> = Vec::with_capacity(headers.len());
        // Authorized headers, grouped by the key that re-encrypts them.
        let mut groups: Vec<(&ReKey, Vec<usize>)> = Vec::new();
        for (i, (h, d)) in headers.iter().zip(drafts.iter_mut()).enumerate() {
            match reg.authorize(user, h, now, d) {
                Ok(k) => {
                    match groups.iter_mut().find(|(g, _)| core::ptr::eq(*g, k)) {
                        Some((_, idx)) => idx.push(i),
                        None => groups.push((k, vec![i])),
                    }
                    results.push(Err(Denial::InvalidCapsule)); // replaced below
                }
                Err(denial) => results.push(Err(denial)),
            }
        }
        for (k, idx) in groups {
            let hs: Vec<&PortionHeader> = idx
                .iter()
                .filter_map(|&i| headers.get(i).copied())
                .collect();
            for (i, rc) in idx.into_iter().zip(k.reencrypt_batch(&hs)) {
                if let Some(slot) = results.get_mut(i) {
                    *slot = rc.map_err(|_| Denial::InvalidCapsule);
                }
            }
        }
        for (d, r) in drafts.iter_mut().zip(&results) {
            if let Err(denial) = r {
                d.outcome = AuditOutcome::Denied(*denial);
            }
        }
        if !drafts.is_empty() {
            self.journal.commit(Vec::new(), drafts)?;
        }
        drop(reg);
        Ok(results)
    }

    /// A registered user's record.
    pub fn user(&self, identity: &Identity) -> Option<UserRecord> {
        self.read().users.get(identity).cloned()
    }

    /// The registry, grants included, without secrets.
    pub fn registry(&self) -> RegistryView {
        let reg = self.read();
        let mut view = RegistryView {
            users: reg
                .users
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..RegistryView::default()
        };
        for p in reg.patients.keys() {
            let mut keys: Vec<PortionPublicKey> = reg
                .patient_portions
                .get(p)
                .into_iter()
                .flatten()
                .filter_map(|pt| reg.portions.get(pt).map(|r| r.key.clone()))
                .collect();
            keys.sort_by(|a, b| (a.label(), a.epoch()).cmp(&(b.label(), b.epoch())));
            view.patients.insert(p.clone(), keys);
        }
        for (point, by_user) in &reg.grants {
            let Some(portion) = reg.portions.get(point) else {
                continue;
            };
            for (user, g) in by_user {
                let info = GrantInfo {
                    patient: portion.patient.clone(),
                    label: portion.key.label().clone(),
                    epoch: portion.key.epoch(),
                    user: user.clone(),
                    scope: g.scope,
                    expiry: g.expiry,
                    granted_at: g.granted_at,
                    revoked_at: match g.status {
                        GrantStatus::Active(_) => None,
                        GrantStatus::Revoked(t) => Some(t),
                    },
                    commitment: match &g.status {
                        GrantStatus::Active(k) => Some(*k.commitment()),
                        GrantStatus::Revoked(_) => None,
                    },
                };
                view.grants.insert(
                    (
                        info.patient.clone(),
                        info.label.clone(),
                        info.epoch,
                        user.clone(),
                    ),
                    info,
                );
            }
        }
        view
    }

    /// Reads the whole audit chain back from the store and verifies it: every
    /// link, the authenticated head, and that the store holds every entry this
    /// SRS has made durable. Returns the number of entries.
    ///
    /// # Errors
    /// [`SrsError::AuditChainBroken`] or [`SrsError::Tampered`] on any edited,
    /// deleted, reordered or inserted entry; store errors.
    pub fn verify_audit(&self) -> Result<u64, SrsError> {
        // Hold the exclusive lock so that no entry is in flight.
        let _reg = self.write();
        let (seq, hash) = self.journal.head();
        let head = self.journal.store().load()?.audit_head;
        let records = self.journal.store().audit(1)?;
        let (got_seq, got_hash) = verify_chain(&records, head.as_ref(), self.journal.mac())?;
        if got_seq != seq || got_hash != hash {
            return Err(SrsError::AuditChainBroken {
                seq: got_seq.min(seq) + 1,
            });
        }
        Ok(seq)
    }

    /// The audit entries from sequence number `from_seq` on.
    ///
    /// # Errors
    /// Store errors.
    pub fn audit_entries(&self, from_seq: u64) -> Result<Vec<AuditEntry>, SrsError> {
        Ok(self
            .journal
            .store()
            .audit(from_seq)?
            .into_iter()
            .map(|r| r.entry)
            .collect())
    }

    /// Writes the audit chain as JSON lines (one object per entry, with
    /// `prev_hash` and `hash`), for auditors. Returns the number of entries.
    ///
    /// # Errors
    /// Store errors; [`SrsError::Store`] wrapping a write failure.
    pub fn export_audit_jsonl<W: Write>(&self, out: &mut W) -> Result<u64, SrsError> {
        let mut n = 0;
        for r in self.journal.store().audit(1)? {
            writeln!(out, "{}", r.entry.to_json(&r.prev_hash, &r.hash)).map_err(|e| {
                SrsError::Store(crate::store::StoreError::with_source(
                    "writing the audit export",
                    e,
                ))
            })?;
            n += 1;
        }
        Ok(n)
    }
}

fn portion_record(patient: &Identity, key: &PortionPublicKey, now: u64) -> PortionRecord {
    PortionRecord {
        patient: patient.clone(),
        key: key.clone(),
        registered_at: now,
    }
}

fn portion_draft(now: u64, r: &PortionRecord) -> Draft {
    let mut d = Draft::new(now, HOST_ACTOR, AuditAction::AddPortion);
    d.patient = Some(r.patient.clone());
    d.label = Some(r.key.label().clone());
    d.detail = format!("epoch={} key={}", r.key.epoch(), r.key.key());
    d
}

fn revoked_record(portion: &PortionRecord, user: &Identity, g: &Grant, now: u64) -> GrantRecord {
    GrantRecord {
        patient: portion.patient.clone(),
        label: portion.key.label().clone(),
        epoch: portion.key.epoch(),
        user: user.clone(),
        scope: g.scope,
        expiry: g.expiry,
        granted_at: g.granted_at,
        state: GrantState::Revoked(now),
    }
}

fn revoke_draft(
    now: u64,
    actor: &str,
    portion: &PortionRecord,
    user: &Identity,
    why: &str,
) -> Draft {
    let mut d = Draft::new(now, actor, AuditAction::Revoke);
    d.patient = Some(portion.patient.clone());
    d.label = Some(portion.key.label().clone());
    d.user = Some(user.clone());
    d.detail = if why.is_empty() {
        format!("epoch={}", portion.key.epoch())
    } else {
        format!("epoch={} {why}", portion.key.epoch())
    };
    d
}

fn reencrypt_draft(now: u64, user: &Identity, header: &PortionHeader) -> Draft {
    let mut d = Draft::new(now, user.as_str(), AuditAction::ReEncrypt);
    d.user = Some(user.clone());
    d.record_id = Some(header.context().record_id());
    d
}
