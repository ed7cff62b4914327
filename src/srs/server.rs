//! The SRS itself: every operation plans its change once, commits it
//! through the journal, and applies it to the registry.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError, RwLockReadGuard};

use crate::capsule::{PortionHeader, VerifiedHeader};
use crate::ids::{Identity, PortionLabel};
use crate::keys::{EscrowKeyIssuer, KeyPair, PortionPublicKey, PublicKey};
use crate::model::{
    AuditAction, AuditEntry, AuditOutcome, Checkpoint, Denial, GrantKey, GrantTerms, Role, Scope,
    UserRecord,
};
use crate::reencrypt::{ReCapsule, ServingKey};
use crate::rekey::ReKey;
use crate::rng::os_rng;
use crate::srs::chain::{self, Draft, genesis_hash, walk};
use crate::srs::config::{OpenReport, SrsConfig};
use crate::srs::follower;
use crate::srs::journal::{Change, CheckpointSink, Journal, Position, contains, load};
use crate::srs::registry::Served;
use crate::srs::registry::{Registry, RegistrySize, RegistryView};
use crate::srs::rows::{self, GrantRow, GrantState, PatientRow, PortionRow, Row, UserRow};
use crate::srs::secrets::{SrsKeys, checkpoint_is_signed_by};
use crate::srs::types::{Clock, SrsError, StorageKey};
use crate::srs::{VerifyingKey, archive};
use crate::store::{MemoryStore, Store, StoreError};

/// What an `SrsConfig` leaves once its keys are derived and its store
/// verified: the parts an SRS is assembled from.
struct Parts {
    store: Arc<dyn Store>,
    keys: Arc<SrsKeys>,
    clock: Arc<dyn Clock>,
    escrow: Option<EscrowKeyIssuer>,
    checkpoint_every: u64,
    sink: Option<CheckpointSink>,
    follow: bool,
}

/// The actor named in audit entries of changes the host made.
const HOST_ACTOR: &str = "srs";

/// The Setup and Re-encryption Server. `Send + Sync`: share it between
/// threads (e.g. in an `Arc`); every method takes `&self`.
pub struct Srs {
    journal: Arc<Journal>,
    shared: bool,
    keys: Arc<SrsKeys>,
    clock: Arc<dyn Clock>,
    escrow: Option<EscrowKeyIssuer>,
    report: OpenReport,
    maintenance: Mutex<()>,
}

impl core::fmt::Debug for Srs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Srs")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Srs {
    /// An SRS in memory, with a fresh storage key and the system clock:
    /// nothing survives the process. For tests and examples.
    ///
    /// # Errors
    /// Only if key derivation fails ([`SrsError::Tampered`]), which does not
    /// happen.
    pub fn in_memory() -> Result<Self, SrsError> {
        Self::open(SrsConfig::new(MemoryStore::new(), StorageKey::generate()))
    }

    /// Opens an SRS on an embedded SQLite database at `path` (created if
    /// missing), power-loss durable.
    ///
    /// # Errors
    /// As [`Srs::open`] and [`crate::store::SqliteStore::open`]:
    /// [`SrsError::StoreLocked`] if another SRS holds the file.
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

    /// Opens an SRS on a PostgreSQL database that several SRS processes may
    /// share (feature `postgres`). `conninfo` is a libpq-style connection
    /// string; every process must use the same `storage_key`. See
    /// [`crate::store::PostgresStore`] and the README's "Scaling out".
    ///
    /// # Errors
    /// As [`Srs::open`] and [`crate::store::PostgresStore::open`].
    #[cfg(feature = "postgres")]
    pub fn open_postgres(conninfo: &str, storage_key: StorageKey) -> Result<Self, SrsError> {
        Self::open(SrsConfig::new(
            crate::store::PostgresStore::open(conninfo)?,
            storage_key,
        ))
    }

    /// Opens an SRS on the configured store. A new (empty) store gets a
    /// genesis head and checkpoint. Otherwise the head is authenticated, the
    /// latest checkpoint's signature checked, the audit entries after it
    /// verified link by link, every row's MAC checked and the registry digest
    /// recomputed; then the re-encryption keys are unsealed.
    ///
    /// # Errors
    /// [`SrsError::Tampered`] on any edited, deleted, inserted or replayed
    /// row, a wrong storage key, a store with rows but no head;
    /// [`SrsError::AuditChainBroken`] if the audit log after the latest
    /// checkpoint was edited or cut; [`SrsError::RolledBack`] /
    /// [`SrsError::Diverged`] against a required checkpoint (or a checkpoint
    /// newer than the head); [`SrsError::InvalidCheckpoint`] if the required
    /// checkpoint is not this SRS's; store errors.
    pub fn open(config: SrsConfig) -> Result<Self, SrsError> {
        let SrsConfig {
            store,
            storage_key,
            clock,
            escrow,
            signing_key,
            checkpoint_every,
            sink,
            required,
            follow,
        } = config;
        let keys = Arc::new(SrsKeys::new(&storage_key, signing_key)?);
        if let Some(cp) = &required
            && !checkpoint_is_signed_by(cp, keys.verifying_key())
        {
            return Err(SrsError::InvalidCheckpoint);
        }
        let loaded = load(
            store.as_ref(),
            &keys,
            Registry::default(),
            required.as_ref(),
        )?;
        let parts = Parts {
            store,
            keys,
            clock,
            escrow,
            checkpoint_every,
            sink,
            follow,
        };
        match loaded {
            Some(l) => Ok(Self::assemble(
                parts,
                l.registry,
                l.at,
                Some(l.checkpoint),
                l.report,
            )),
            None => Self::create(parts, required),
        }
    }

    /// Builds the SRS around its journal; on a shared store, starts the
    /// follower that keeps the registry current between commits.
    fn assemble(
        p: Parts,
        registry: Registry,
        at: Position,
        checkpoint: Option<Checkpoint>,
        report: OpenReport,
    ) -> Self {
        let shared = p.store.is_shared();
        let journal = Arc::new(Journal::new(
            p.store,
            p.keys.clone(),
            p.clock.clone(),
            registry,
            p.checkpoint_every,
            p.sink,
            at,
            checkpoint,
        ));
        if shared && p.follow {
            follower::spawn(&journal);
        }
        Self {
            journal,
            shared,
            keys: p.keys,
            clock: p.clock,
            escrow: p.escrow,
            report,
            maintenance: Mutex::new(()),
        }
    }

    /// Initializes an empty store: a genesis head and checkpoint.
    fn create(p: Parts, required: Option<Checkpoint>) -> Result<Self, SrsError> {
        let store = &p.store;
        // A store without a head must be empty: rows or entries without a
        // head mean the head was deleted.
        let mut any = false;
        store
            .rows(&mut |_| {
                any = true;
                Err(StoreError::corrupt("stop"))
            })
            .or_else(|e| if any { Ok(()) } else { Err(e) })?;
        if any || store.audit_last_seq()?.is_some() || store.latest_checkpoint()?.is_some() {
            return Err(SrsError::Tampered("chain head missing"));
        }
        if let Some(rc) = required
            && rc.seq > 0
        {
            return Err(SrsError::RolledBack {
                store_seq: 0,
                checkpoint_seq: rc.seq,
            });
        }
        let genesis = genesis_hash();
        let at = Position {
            seq: 0,
            hash: genesis,
            digest: curve25519_dalek::scalar::Scalar::ZERO,
            base_seq: 0,
            base_hash: genesis,
            checkpoints: 0,
        };
        let report = OpenReport {
            created: true,
            ..OpenReport::default()
        };
        let srs = Self::assemble(p, Registry::default(), at, None, report);
        srs.journal.checkpoint()?;
        Ok(srs)
    }

    /// Serializes whole-chain maintenance (verification, archiving).
    fn maintenance(&self) -> std::sync::MutexGuard<'_, ()> {
        self.maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The store's chain head, authenticated.
    fn authentic_head(&self) -> Result<crate::store::ChainHead, SrsError> {
        let head = self
            .journal
            .store()
            .head()?
            .ok_or(SrsError::Tampered("chain head missing"))?;
        if self.keys.head_is_authentic(&head)? {
            Ok(head)
        } else {
            Err(SrsError::Tampered("chain head"))
        }
    }

    /// What the last open checked.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // No code path panics while holding the lock; if a caller's panic
        // ever poisoned it, the registry is still consistent (each change is
        // applied whole, and reloaded if its commit failed).
        self.journal
            .registry()
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans a change against the registry as it stands when the change is
    /// sequenced, and returns once it is durable.
    fn change(
        &self,
        plan: impl FnOnce(&Registry) -> Result<Change, SrsError> + Send + 'static,
    ) -> Result<(), SrsError> {
        self.journal.commit(Box::new(plan)).map(|_| ())
    }

    /// Catches up with the changes other SRS processes made to a shared
    /// store (they are applied at every commit anyway; this also serves a
    /// request that would be denied on a registry behind the store).
    ///
    /// # Errors
    /// Store errors; [`SrsError::Tampered`] and the like if what the others
    /// wrote does not verify.
    pub fn sync(&self) -> Result<(), SrsError> {
        self.journal.sync()
    }

    /// The public key that signs this SRS's checkpoints.
    pub fn verifying_key(&self) -> VerifyingKey {
        *self.keys.verifying_key()
    }

    /// Checks that `checkpoint` was signed by this SRS.
    ///
    /// # Errors
    /// [`SrsError::InvalidCheckpoint`] otherwise.
    pub fn verify_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), SrsError> {
        if checkpoint_is_signed_by(checkpoint, self.keys.verifying_key()) {
            Ok(())
        } else {
            Err(SrsError::InvalidCheckpoint)
        }
    }

    /// Makes a checkpoint now (of every entry committed so far), keeps it in
    /// the store, hands it to the checkpoint callback and returns it.
    ///
    /// # Errors
    /// Store errors.
    pub fn checkpoint(&self) -> Result<Checkpoint, SrsError> {
        self.journal.checkpoint()
    }

    /// The latest checkpoint this SRS made or found at open.
    pub fn latest_checkpoint(&self) -> Option<Checkpoint> {
        self.journal.last_checkpoint()
    }

    /// Checks the live store against a checkpoint kept outside it.
    ///
    /// # Errors
    /// [`SrsError::InvalidCheckpoint`], [`SrsError::RolledBack`],
    /// [`SrsError::Diverged`]; store errors.
    pub fn require_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), SrsError> {
        self.verify_checkpoint(checkpoint)?;
        let store = self.journal.store();
        let head = self.authentic_head()?;
        contains(store.as_ref(), &head, checkpoint)
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
            let row = Row::User(UserRow {
                identity,
                role,
                public_key: public_key.to_bytes(),
                registered_at: now,
                removed_at: None,
            });
            Ok(Change {
                rows: vec![row],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })
    }

    /// Removes a user: every grant of theirs is revoked (keys zeroized and
    /// deleted) and they are served nothing more. The identity is retired.
    ///
    /// # Errors
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`]; store errors.
    pub fn remove_user(&self, identity: &Identity) -> Result<(), SrsError> {
        let now = self.clock.now();
        let identity = identity.clone();
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
            let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RemoveUser);
            d.user = Some(identity.clone());
            change.drafts.push(d);
            for (portion, img) in reg.active_grants_of(uid) {
                let why = Revocation {
                    user: &identity,
                    now,
                    actor: HOST_ACTOR,
                    why: "user removed",
                };
                plan_revoke(reg, &mut change, portion, uid, img, &why)?;
            }
            Ok(change)
        })
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
        for (i, p) in portions.iter().enumerate() {
            let earlier = portions.get(..i).unwrap_or_default();
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
        let (patient, portions) = (patient.clone(), portions.to_vec());
        self.change(move |reg| {
            if reg.patient_id(&patient).is_some() {
                return Err(SrsError::AlreadyRegistered);
            }
            if portions
                .iter()
                .any(|p| reg.portion_by_point(p.key().as_bytes()).is_some())
            {
                return Err(SrsError::KeyInUse);
            }
            let mut d = Draft::new(now, HOST_ACTOR, AuditAction::RegisterPatient);
            d.patient = Some(patient.clone());
            let mut change = Change {
                rows: vec![Row::Patient(PatientRow {
                    identity: patient.clone(),
                    registered_at: now,
                })],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            };
            for k in &portions {
                plan_portion(&mut change, &patient, k, now);
            }
            Ok(change)
        })
    }

    /// Registers another portion key for a patient: a new label, or a new
    /// epoch of a label after a key rotation.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`]; [`SrsError::AlreadyRegistered`] if the
    /// patient has this (label, epoch); [`SrsError::KeyInUse`]; store errors.
    pub fn add_portion(&self, patient: &Identity, key: &PortionPublicKey) -> Result<(), SrsError> {
        let now = self.clock.now();
        let (patient, key) = (patient.clone(), key.clone());
        self.change(move |reg| {
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
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
            let mut change = Change::audit(Vec::new());
            plan_portion(&mut change, &patient, &key, now);
            Ok(change)
        })
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
        self.change(move |_| Ok(Change::audit(vec![d])))?;
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
    /// [`SrsError::ReKeyMismatch`] if the key is not from this patient's
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
        let portion_key = rekey.portion_key().to_bytes();
        let delegatee = rekey.delegatee().to_bytes();
        let key = ServingKey::new(&rekey);
        drop(rekey);
        let (patient, label, user) = (patient.clone(), label.clone(), user.clone());
        self.change(move |reg| {
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
            let uid = reg.user_id(&user).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            let labelled = reg.portions_labelled(pid, &label);
            if labelled.is_empty() {
                return Err(SrsError::UnknownPortion);
            }
            let portion = reg
                .portion_by_point(&portion_key)
                .filter(|p| labelled.iter().any(|(q, _)| q == p))
                .ok_or(SrsError::ReKeyMismatch)?;
            if reg.user_key(uid) != Some(&delegatee) {
                return Err(SrsError::ReKeyMismatch);
            }
            let (_, _, epoch) = reg.portion_owner(portion).ok_or(SrsError::UnknownPortion)?;
            let terms = GrantTerms {
                scope,
                expiry,
                granted_at: now,
            };
            let mut d = Draft::new(now, patient.as_str(), AuditAction::Grant);
            d.patient = Some(patient.clone());
            d.label = Some(label.clone());
            d.user = Some(user.clone());
            d.detail = format!("epoch={epoch} {terms}");
            let (replaced, scrub) = match reg.grant_image(portion, uid) {
                Some((img, active)) => (vec![img], active),
                None => (Vec::new(), false),
            };
            let row = Row::Grant(GrantRow {
                key: GrantKey {
                    patient,
                    label,
                    epoch,
                    user,
                },
                terms,
                state: GrantState::Active(key),
            });
            Ok(Change {
                rows: vec![row],
                replaced,
                drafts: vec![d],
                scrub,
                refused: Vec::new(),
            })
        })
    }

    /// Revokes `user`'s grants on portion `label` of `patient` (every key
    /// epoch): the re-encryption keys are zeroized and deleted, and no stored
    /// record is touched. Once this returns, no re-encryption under these
    /// grants succeeds — on this SRS or on any other process sharing its
    /// store.
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
        let (patient, label, user) = (patient.clone(), label.clone(), user.clone());
        self.change(move |reg| {
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
            let uid = reg.user_id(&user).ok_or(SrsError::UnknownUser)?;
            let labelled = reg.portions_labelled(pid, &label);
            if labelled.is_empty() {
                return Err(SrsError::UnknownPortion);
            }
            let mut change = Change::audit(Vec::new());
            let why = Revocation {
                user: &user,
                now,
                actor: patient.as_str(),
                why: "",
            };
            for (portion, _) in labelled {
                if let Some((img, true)) = reg.grant_image(portion, uid) {
                    plan_revoke(reg, &mut change, portion, uid, img, &why)?;
                }
            }
            if change.rows.is_empty() {
                return Err(SrsError::NotGranted);
            }
            Ok(change)
        })
    }

    /// Re-encrypts a portion header for `user`. The capsule proof is checked
    /// first: a header that does not verify names no record and decides
    /// nothing ([`Denial::InvalidCapsule`]). Then the user must be registered
    /// and active and hold an unrevoked, unexpired grant for the portion
    /// whose scope covers the record's `created_at`. Granted or denied, the
    /// request is audited, and the answer comes only once its audit entry is
    /// durable; a grant revoked before that entry is committed (by this SRS
    /// or another process sharing its store) turns the answer into
    /// [`Denial::Revoked`].
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
        let verified = header.verify();
        // Decided under the registry's read lock; computed after it.
        let decide_now = |now: u64| {
            let reg = self.read();
            let mut d = reencrypt_draft(now, user);
            let r = match &verified {
                Err(_) => Err(Denial::InvalidCapsule),
                Ok(v) => decide(&reg, user, v, now, &mut d),
            };
            (d, r)
        };
        let mut answer = decide_now(self.clock.now());
        if self.shared && may_be_behind(&answer.1) {
            // Another process may have granted meanwhile: look again.
            self.sync()?;
            answer = decide_now(self.clock.now());
        }
        let (mut d, decided) = answer;
        let result = match (&verified, decided) {
            (Ok(v), Ok(dec)) => compute(&dec, *v, proof, None).map(|rc| (rc, dec.served)),
            (_, Err(e)) => Err(e),
            (Err(_), Ok(_)) => Err(Denial::InvalidCapsule),
        };
        let served = vec![result.as_ref().ok().map(|(_, s)| *s)];
        if let Err(denial) = &result {
            d.outcome = AuditOutcome::Denied(*denial);
        }
        let out = self
            .journal
            .commit(Box::new(move |reg| Ok(recheck(reg, vec![d], &served))))?;
        if let Some((_, denial)) = out.refused.first() {
            return Err(SrsError::Denied(*denial));
        }
        result.map(|(rc, _)| rc).map_err(SrsError::Denied)
    }

    /// Re-encrypts many headers for one user (a doctor opening a patient's
    /// history). All capsule proofs are checked first, together, with one
    /// multiscalar multiplication (a bad one is named and denied, the others
    /// go on); then each header is authorized as in [`Srs::reencrypt`]. One
    /// audit entry per header, committed together. Result `i` belongs to
    /// header `i`.
    ///
    /// # Errors
    /// The outer error is a store failure (then nothing is returned); the
    /// inner ones are per-header denials.
    pub fn reencrypt_batch(
        &self,
        user: &Identity,
        headers: &[&PortionHeader],
    ) -> Result<Vec<Result<ReCapsule, Denial>>, SrsError> {
        if headers.is_empty() {
            return Ok(Vec::new());
        }
        let verified = PortionHeader::verify_batch(headers);
        // Decided under one read lock of the registry; computed after it.
        let decide_all = |now: u64| {
            let reg = self.read();
            let mut drafts = Vec::with_capacity(headers.len());
            let mut decided = Vec::with_capacity(headers.len());
            for v in &verified {
                let mut d = reencrypt_draft(now, user);
                decided.push(match v {
                    Err(_) => Err(Denial::InvalidCapsule),
                    Ok(v) => decide(&reg, user, v, now, &mut d),
                });
                drafts.push(d);
            }
            (drafts, decided)
        };
        let mut answer = decide_all(self.clock.now());
        if self.shared && answer.1.iter().any(may_be_behind) {
            self.sync()?;
            answer = decide_all(self.clock.now());
        }
        let (mut drafts, decided) = answer;
        // X_e decoded once per grant of the batch.
        let mut ephemerals: Vec<(u32, PublicKey)> = Vec::new();
        let mut results: Vec<Result<(ReCapsule, Served), Denial>> = verified
            .iter()
            .zip(decided)
            .map(|(v, dec)| match (v, dec) {
                (Ok(v), Ok(dec)) => {
                    compute(&dec, *v, false, Some(&mut ephemerals)).map(|rc| (rc, dec.served))
                }
                (_, Err(e)) => Err(e),
                (Err(_), Ok(_)) => Err(Denial::InvalidCapsule),
            })
            .collect();
        for (d, r) in drafts.iter_mut().zip(&results) {
            if let Err(denial) = r {
                d.outcome = AuditOutcome::Denied(*denial);
            }
        }
        let served: Vec<Option<Served>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|(_, s)| *s))
            .collect();
        let out = self
            .journal
            .commit(Box::new(move |reg| Ok(recheck(reg, drafts, &served))))?;
        for (i, denial) in out.refused {
            if let Some(r) = results.get_mut(i) {
                *r = Err(denial);
            }
        }
        Ok(results.into_iter().map(|r| r.map(|(rc, _)| rc)).collect())
    }

    /// A registered user's record.
    pub fn user(&self, identity: &Identity) -> Option<UserRecord> {
        let reg = self.read();
        reg.user_record(reg.user_id(identity)?)
    }

    /// The registry, grants included, without secrets.
    pub fn registry(&self) -> RegistryView {
        self.read().view()
    }

    /// How much memory the registry holds.
    pub fn registry_size(&self) -> RegistrySize {
        self.read().size()
    }

    /// Reads the whole live audit chain back from the store, page by page in
    /// bounded memory, and verifies it: every link, the authenticated head,
    /// the latest checkpoint, and that the store holds every entry this SRS
    /// has made durable. Re-encryptions and changes go on meanwhile. Returns
    /// the sequence number of the last entry verified.
    ///
    /// # Errors
    /// [`SrsError::AuditChainBroken`] or [`SrsError::Tampered`] on any edited,
    /// deleted, reordered or inserted entry; store errors.
    pub fn verify_audit(&self) -> Result<u64, SrsError> {
        let _m = self.maintenance();
        if self.shared {
            // Up to what the other processes committed (and archived).
            self.sync()?;
        }
        let pos = self.journal.durable();
        let store = self.journal.store();
        let head = self.authentic_head()?;
        if head.seq < pos.seq || head.base_seq != pos.base_seq || head.base_hash != pos.base_hash {
            return Err(SrsError::AuditChainBroken {
                seq: head.seq.min(pos.seq) + 1,
            });
        }
        let end = walk(
            store.as_ref(),
            pos.base_seq,
            pos.base_hash,
            pos.seq,
            &mut |_, _| Ok(()),
        )?;
        if end != pos.hash {
            return Err(SrsError::AuditChainBroken { seq: pos.seq });
        }
        // Every checkpoint kept: signed by this SRS, and on the chain.
        let mut from = 0;
        let mut count = 0u64;
        loop {
            let page = store.checkpoints(from, chain::PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for cp in &page {
                count += 1;
                if !checkpoint_is_signed_by(cp, self.keys.verifying_key()) {
                    return Err(SrsError::Tampered("checkpoint"));
                }
                if cp.seq <= pos.seq {
                    contains(store.as_ref(), &head, cp)
                        .map_err(|_| SrsError::Tampered("checkpoint"))?;
                }
            }
        }
        if count < head.checkpoints {
            return Err(SrsError::Tampered("checkpoints"));
        }
        Ok(pos.seq)
    }

    /// The audit entries from sequence number `from_seq` on (at most
    /// `limit`).
    ///
    /// # Errors
    /// Store errors.
    pub fn audit_entries(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, SrsError> {
        let to = self.journal.durable().seq;
        Ok(self
            .journal
            .store()
            .audit(from_seq, to, limit)?
            .into_iter()
            .map(|r| r.entry)
            .collect())
    }

    /// Writes the audit chain from `from_seq` on as JSON lines (one object
    /// per entry, with `prev_hash` and `hash`), streaming in bounded memory,
    /// verifying each link on the way. Returns the number of entries written.
    ///
    /// # Errors
    /// Store errors; [`SrsError::AuditChainBroken`]; [`SrsError::Store`]
    /// wrapping a write failure.
    pub fn export_audit_jsonl<W: Write>(
        &self,
        from_seq: u64,
        out: &mut W,
    ) -> Result<u64, SrsError> {
        let pos = self.journal.durable();
        let store = self.journal.store();
        let from = from_seq.max(pos.base_seq + 1);
        let (start, prev) = if from - 1 == pos.base_seq {
            (pos.base_seq, pos.base_hash)
        } else {
            let r = store.audit(from - 1, from - 1, 1)?;
            let h = r
                .first()
                .map(|r| r.hash)
                .ok_or(SrsError::AuditChainBroken { seq: from - 1 })?;
            (from - 1, h)
        };
        let mut n = 0;
        walk(store.as_ref(), start, prev, pos.seq, &mut |rec, prev| {
            writeln!(out, "{}", rec.entry.to_json(prev, &rec.hash)).map_err(|e| {
                SrsError::Store(StoreError::with_source("writing the audit export", e))
            })?;
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Archives the audit chain up to the checkpoint at `upto`: writes the
    /// segment (from the current base to `upto`, with the signed checkpoints
    /// at both ends) to `out`, verifying it on the way, then deletes those
    /// entries from the store. The segment stays verifiable on its own with
    /// [`verify_segment`](crate::srs::verify_segment) and this SRS's [`Srs::verifying_key`]. Returns the
    /// number of entries archived.
    ///
    /// # Errors
    /// [`SrsError::Diverged`] if there is no checkpoint at `upto` (make one
    /// with [`Srs::checkpoint`]) or it is at or before the current base;
    /// chain and store errors; [`SrsError::Store`] wrapping a write failure.
    pub fn archive_audit<W: Write>(&self, upto: u64, out: &mut W) -> Result<u64, SrsError> {
        let _m = self.maintenance();
        if self.shared {
            self.sync()?;
        }
        let store = self.journal.store();
        let pos = self.journal.durable();
        let end = store
            .checkpoint_at(upto)?
            .filter(|c| c.seq > pos.base_seq && c.seq <= pos.seq)
            .ok_or(SrsError::Diverged {
                checkpoint_seq: upto,
            })?;
        self.verify_checkpoint(&end)?;
        let start = if pos.base_seq == 0 {
            None
        } else {
            Some(
                store
                    .checkpoint_at(pos.base_seq)?
                    .ok_or(SrsError::Tampered("archive base checkpoint"))?,
            )
        };
        let n = archive::write_segment(
            store.as_ref(),
            (pos.base_seq, pos.base_hash),
            start.as_ref(),
            &end,
            out,
        )?;
        self.journal.prune(end.seq, end.chain_hash)?;
        Ok(n)
    }
}

/// Who revokes, when and why.
struct Revocation<'a> {
    user: &'a Identity,
    now: u64,
    actor: &'a str,
    why: &'a str,
}

/// Adds the tombstone of one active grant to `change`.
fn plan_revoke(
    reg: &Registry,
    change: &mut Change,
    portion: u32,
    user: u32,
    img: rows::RowImage,
    r: &Revocation<'_>,
) -> Result<(), SrsError> {
    let (patient, label, epoch) = reg.portion_owner(portion).ok_or(SrsError::UnknownPortion)?;
    let terms = reg.grant_terms(portion, user).ok_or(SrsError::NotGranted)?;
    let mut d = Draft::new(r.now, r.actor, AuditAction::Revoke);
    d.patient = Some(patient.clone());
    d.label = Some(label.clone());
    d.user = Some(r.user.clone());
    d.detail = if r.why.is_empty() {
        format!("epoch={epoch}")
    } else {
        format!("epoch={epoch} {}", r.why)
    };
    change.drafts.push(d);
    change.rows.push(Row::Grant(GrantRow {
        key: GrantKey {
            patient,
            label,
            epoch,
            user: r.user.clone(),
        },
        terms,
        state: GrantState::Revoked(r.now),
    }));
    change.replaced.push(img);
    change.scrub = true;
    Ok(())
}

/// The audit entries of served requests, re-checked against the registry
/// as it stands when they are sequenced (after every change committed
/// before them, by any process): a request that would be denied now is
/// refused, and audited with that denial.
fn recheck(reg: &Registry, mut drafts: Vec<Draft>, served: &[Option<Served>]) -> Change {
    let mut refused = Vec::new();
    for (i, (d, s)) in drafts.iter_mut().zip(served).enumerate() {
        if let (Some(s), Some(user)) = (s, &d.user)
            && let Err(denial) = reg.recheck(user, d.label.as_ref(), s)
        {
            d.outcome = AuditOutcome::Denied(denial);
            refused.push((i, denial));
        }
    }
    Change {
        refused,
        ..Change::audit(drafts)
    }
}

/// A denial that a registry behind a shared store may have given wrongly
/// (the grant or user may exist on another process already).
fn may_be_behind<T>(r: &Result<T, Denial>) -> bool {
    matches!(
        r,
        Err(Denial::NotRegistered | Denial::NotGranted | Denial::Revoked)
    )
}

fn plan_portion(change: &mut Change, patient: &Identity, key: &PortionPublicKey, now: u64) {
    let mut d = Draft::new(now, HOST_ACTOR, AuditAction::AddPortion);
    d.patient = Some(patient.clone());
    d.label = Some(key.label().clone());
    d.detail = format!("epoch={} key={}", key.epoch(), key.key());
    change.drafts.push(d);
    change.rows.push(Row::Portion(PortionRow {
        patient: patient.clone(),
        label: key.label().clone(),
        epoch: key.epoch(),
        point: key.key().to_bytes(),
        registered_at: now,
    }));
}

fn reencrypt_draft(now: u64, user: &Identity) -> Draft {
    let mut d = Draft::new(now, user.as_str(), AuditAction::ReEncrypt);
    d.user = Some(user.clone());
    d
}

/// A request allowed: a copy of its grant's serving key (zeroized on drop),
/// taken under the registry's read lock so that the re-encryption runs
/// without it.
struct Decided {
    key: ServingKey,
    grant: u32,
    served: Served,
}

/// Authorizes one verified header; fills in what the audit entry names.
fn decide(
    reg: &Registry,
    user: &Identity,
    v: &VerifiedHeader<'_>,
    now: u64,
    d: &mut Draft,
) -> Result<Decided, Denial> {
    d.record_id = Some(v.header().context().record_id());
    let (named, auth) = reg.authorize(user, v, now);
    if let Some((p, l)) = named {
        d.patient = Some(p);
        d.label = Some(l);
    }
    let a = auth?;
    Ok(Decided {
        key: a.key.clone(),
        grant: a.grant,
        served: a.served,
    })
}

/// Re-encrypts an allowed header. `ephemerals` caches decoded `X_e` per
/// grant in a batch.
fn compute(
    dec: &Decided,
    v: VerifiedHeader<'_>,
    proof: bool,
    ephemerals: Option<&mut Vec<(u32, PublicKey)>>,
) -> Result<ReCapsule, Denial> {
    let eph = match ephemerals {
        Some(cache) => match cache.iter().find(|(g, _)| *g == dec.grant) {
            Some((_, k)) => *k,
            None => {
                let k = dec.key.ephemeral().map_err(|_| Denial::InvalidCapsule)?;
                cache.push((dec.grant, k));
                k
            }
        },
        None => dec.key.ephemeral().map_err(|_| Denial::InvalidCapsule)?,
    };
    Ok(if proof {
        dec.key.reencrypt(&eph, v, Some(&mut os_rng()))
    } else {
        dec.key.reencrypt(&eph, v, None::<&mut crate::rng::OsRng>)
    })
}
