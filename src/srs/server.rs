//! The SRS itself: every operation plans its change once, commits it
//! through the journal, and applies it to the registry.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLockReadGuard};

use crate::capsule::{PortionHeader, VerifiedHeader};
use crate::consent::KeyProof;
use crate::consent::{
    Actor, PatientRegistration, RequestId, RevocationReceipt, SignedGrant, SignedRefusal,
    SignedRevocation, user_evidence,
};
use crate::ids::{Identity, PortionLabel};
use crate::keys::{EscrowKeyIssuer, KeyPair, PortionPublicKey, PublicKey};
use crate::model::{
    AccessReason, AccessRequest, AuditAction, AuditEntry, AuditOutcome, Checkpoint, Denial,
    Disclosure, GrantKey, GrantTerms, Purpose, Role, UserRecord, check_text,
};
use crate::reencrypt::{ReCapsule, ServingKey};
use crate::rekey::ReKey;
use crate::rng::os_rng;
use crate::srs::chain::{self, Draft, genesis_hash, walk};
use crate::srs::config::{Cadence, OpenReport, SrsConfig};
use crate::srs::follower;
use crate::srs::journal::{Change, CheckpointSink, Journal, Position, contains, load};
use crate::srs::registry::Served;
use crate::srs::registry::{Registry, RegistrySize, RegistryView};
use crate::srs::rows::{
    self, ConsentRow, Consented, GrantRow, GrantState, PatientRow, PortionRow, RequestRow, Row,
    UserRow,
};
use crate::srs::secrets::{SrsKeys, checkpoint_is_signed_by};
use crate::srs::types::{Clock, SrsError, StorageKey};
use crate::srs::{VerifyingKey, archive};
use crate::store::{MemoryStore, Store, StoreError};
use crate::threshold::ReKeyShare;

/// What an `SrsConfig` leaves once its keys are derived and its store
/// verified: the parts an SRS is assembled from.
struct Parts {
    store: Arc<dyn Store>,
    keys: Arc<SrsKeys>,
    clock: Arc<dyn Clock>,
    escrow: Option<EscrowKeyIssuer>,
    cadence: Cadence,
    sink: Option<CheckpointSink>,
    follow: bool,
    grant_max_age: Option<u64>,
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
    grant_max_age: Option<u64>,
    report: OpenReport,
    maintenance: Mutex<()>,
    follower: Option<follower::Follower>,
}

impl Drop for Srs {
    fn drop(&mut self) {
        // The follower lets go of the journal first, so that this SRS's
        // reference is the last and the store closes now.
        if let Some(f) = &self.follower {
            f.stop();
        }
    }
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
            cadence,
            sink,
            required,
            follow,
            grant_max_age,
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
            cadence,
            sink,
            follow,
            grant_max_age,
        };
        match loaded {
            Some(l) => {
                let srs = Self::assemble(parts, l.registry, l.at, Some(l.checkpoint), l.report);
                if let Some(cp) = &required {
                    srs.journal.pin(cp.seq);
                }
                if let Some(nodes) = l.backfill {
                    // A store from before the Merkle log: its nodes, its
                    // tree in the head and a checkpoint that signs it.
                    srs.journal.backfill(nodes)?;
                }
                Ok(srs)
            }
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
            p.cadence,
            p.sink,
            at,
            checkpoint,
        ));
        let follower = (shared && p.follow).then(|| follower::spawn(&journal));
        Self {
            follower,
            journal,
            shared,
            keys: p.keys,
            clock: p.clock,
            escrow: p.escrow,
            grant_max_age: p.grant_max_age,
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
            tree: crate::merkle::Frontier::new(),
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

    /// The SRS's clock (seconds since the Unix epoch): what it dates audit
    /// entries by, and what signed objects are checked against (they may be
    /// dated at most five minutes ahead of it).
    pub fn now(&self) -> u64 {
        self.clock.now()
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

    /// The key that signs checkpoints, receipts and reports.
    pub(crate) fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        self.keys.signing_key()
    }

    /// The store (for the proof makers beside this file).
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        self.journal.store()
    }

    /// The last entry durable as far as this process knows (after catching
    /// up with the others on a shared store).
    pub(crate) fn durable_seq(&self) -> u64 {
        if self.shared {
            // A failed catch-up leaves the position as it was.
            let _ = self.sync();
        }
        self.journal.durable().seq
    }

    /// [`Srs::durable_seq`] with the log's Merkle root there.
    pub(crate) fn durable_tree(&self) -> (u64, crate::merkle::Hash) {
        if self.shared {
            let _ = self.sync();
        }
        let p = self.journal.durable();
        (p.seq, p.tree.root())
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

    /// Checks the live store against a checkpoint kept outside it, and pins
    /// it: from then on every commit of this SRS — re-encryptions included
    /// — refuses a store holding fewer entries ([`SrsError::RolledBack`]),
    /// so a database restored under it to before the checkpoint serves
    /// nothing. Hosts with several processes hand each the checkpoints
    /// the others make (every revocation makes one).
    ///
    /// # Errors
    /// [`SrsError::InvalidCheckpoint`], [`SrsError::RolledBack`],
    /// [`SrsError::Diverged`]; store errors.
    pub fn require_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), SrsError> {
        self.verify_checkpoint(checkpoint)?;
        // Pinned first: even if the store is behind it now, no commit of
        // this SRS goes on until it is not.
        self.journal.pin(checkpoint.seq);
        let store = self.journal.store();
        let head = self.authentic_head()?;
        contains(store.as_ref(), &head, checkpoint)
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

    /// Installs a grant the patient signed ([`crate::PatientKeys::sign_grant`]),
    /// with the re-encryption key it was signed for. Replaces an earlier
    /// grant of the same portion key to the same user. The signed grant is
    /// kept in the audit entry.
    ///
    /// The SRS checks, against its registry: the signature under the
    /// patient's registered consent key; that the user is registered and
    /// active with the key the grant names; that the portion key is the
    /// patient's `(label, epoch)`; that `rekey` is the key signed (its
    /// portion key, user key, commitment `RK` and `X_e`); that the grant is
    /// newer than the last signed grant or revocation it accepted for this
    /// portion and user, and dated after the last revocation of the label
    /// to the user, whatever its epoch (SPEC §7.5: a replayed, older or
    /// held-back grant never undoes a revocation); that it is not older
    /// than [`SrsConfig::grant_max_age`] nor dated more than five minutes
    /// ahead; for a break-glass grant, that the user holds the role; for a grant that
    /// answers a request, that the request is pending and matches.
    ///
    /// With [`crate::model::Scope::AllRecords`] the user can read every record of the
    /// portion, old and new (backward access); with [`crate::model::Scope::Since`] only
    /// records created from then on. After the expiry the grant stops
    /// working.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::NoConsentKey`],
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`],
    /// [`SrsError::UnknownPortion`]; [`SrsError::Malformed`] with
    /// [`crate::Error::InvalidSignature`] for a bad signature;
    /// [`SrsError::ReKeyMismatch`] if the key is not the one signed, or not
    /// from this patient's portion to this user's registered key;
    /// [`SrsError::Replayed`]; [`SrsError::GrantTooOld`];
    /// [`SrsError::RoleMismatch`]; [`SrsError::UnknownRequest`],
    /// [`SrsError::RequestAnswered`]; store errors.
    pub fn grant(&self, grant: &SignedGrant, rekey: ReKey) -> Result<(), SrsError> {
        if !grant.covers(&rekey) {
            return Err(SrsError::ReKeyMismatch);
        }
        let portion_key = rekey.portion_key().to_bytes();
        let key = ServingKey::new(&rekey);
        drop(rekey);
        self.install_grant(grant, portion_key, key)
    }

    /// **Threshold SRS node**: installs this node's share of a split
    /// re-encryption key ([`crate::ReKey::split`]) under the grant the
    /// patient signed for the split ([`crate::PatientKeys::sign_share_grant`]).
    /// Each of the `n` nodes is an ordinary SRS with its own store, receiving
    /// the same signed grant and its own share; this one then answers
    /// re-encryption requests with re-capsule shares (its index, `E'_i`, and
    /// a proof against `R_i` when asked), which the user combines
    /// ([`crate::ThresholdOpener`]) from any `t` nodes.
    ///
    /// Checked besides what [`Srs::grant`] checks: the share against its
    /// commitments (`rk_i·G == Σ i^j·C_j`), and the commitments against the
    /// signed grant (`C_0 = RK`, `X_e`, user key, `t`, `n` and their digest).
    ///
    /// Revocation is per node: access ends once `n − t + 1` nodes have
    /// revoked (fewer than `t` still serve); the patient's client revokes at
    /// all `n`.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] with [`crate::Error::InvalidShare`] for a share
    /// that does not match its commitments; [`SrsError::ReKeyMismatch`] if
    /// the share is not of the split signed; otherwise as [`Srs::grant`].
    pub fn grant_share(&self, grant: &SignedGrant, share: ReKeyShare) -> Result<(), SrsError> {
        share.verify()?;
        if !grant.covers_commitments(share.commitments()) {
            return Err(SrsError::ReKeyMismatch);
        }
        let portion_key = share.commitments().portion_key().to_bytes();
        let key = share.serving_key();
        drop(share);
        self.install_grant(grant, portion_key, key)
    }

    /// The checks and the change common to a whole key and a share.
    fn install_grant(
        &self,
        grant: &SignedGrant,
        portion_key: [u8; 32],
        key: ServingKey,
    ) -> Result<(), SrsError> {
        let now = self.clock.now();
        check_date(grant.issued_at(), now)?;
        let max_age = self.grant_max_age;
        let g = grant.clone();
        self.change(move |reg| {
            let pid = reg
                .patient_id(g.patient())
                .ok_or(SrsError::UnknownPatient)?;
            let consent = patient_consent(reg, pid)?;
            g.verify(&consent)?;
            if let Some(max_age) = max_age
                && now.saturating_sub(g.issued_at()) > max_age
            {
                return Err(SrsError::GrantTooOld {
                    issued_at: g.issued_at(),
                    max_age,
                });
            }
            let uid = reg.user_id(g.user()).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            if reg.user_key(uid) != Some(g.user_key().as_bytes()) {
                return Err(SrsError::ReKeyMismatch);
            }
            let labelled = reg.portions_labelled(pid, g.label());
            if labelled.is_empty() {
                return Err(SrsError::UnknownPortion);
            }
            let (portion, _) = labelled
                .into_iter()
                .find(|&(_, e)| e == g.epoch())
                .ok_or(SrsError::UnknownPortion)?;
            if reg.portion_by_point(&portion_key) != Some(portion) {
                return Err(SrsError::ReKeyMismatch);
            }
            // Dated at or before the triple's last revocation, whatever its
            // epoch: the patient withdrew it.
            if reg
                .consent_order(pid, g.label(), uid)
                .is_some_and(|(c, _)| g.issued_at() <= c.bound)
            {
                return Err(SrsError::Replayed);
            }
            let consent = match reg.grant_consent(portion, uid) {
                Some(c) => c.admit(g.issued_at(), g.nonce()),
                None => Consented::default().admit(g.issued_at(), g.nonce()),
            }
            .ok_or(SrsError::Replayed)?;
            if let Some(role) = g.emergency()
                && reg.user_role(uid) != Some(role)
            {
                return Err(SrsError::RoleMismatch);
            }
            let terms = GrantTerms {
                scope: g.scope(),
                expiry: g.expiry(),
                granted_at: now,
                emergency: g.emergency().is_some(),
            };
            let mut d = Draft::new(now, g.patient().as_str(), AuditAction::Grant);
            d.patient = Some(g.patient().clone());
            d.label = Some(g.label().clone());
            d.user = Some(g.user().clone());
            d.detail = format!("epoch={} {terms}", g.epoch());
            if let (Some(i), Some(t)) = (key.share_index(), g.threshold()) {
                d.detail = format!("{} share={i} of {}/{}", d.detail, t.threshold, t.nodes);
            }
            let mut change = Change::audit(Vec::new());
            if let Some(id) = g.request() {
                let (req, img) = reg
                    .request(&id.to_bytes())
                    .ok_or(SrsError::UnknownRequest)?;
                if req.answer.is_some() {
                    return Err(SrsError::RequestAnswered);
                }
                if &req.patient != g.patient() || &req.user != g.user() || &req.label != g.label() {
                    return Err(SrsError::Malformed(crate::Error::Malformed {
                        what: "grant does not match the request it answers",
                    }));
                }
                let mut answered = req.clone();
                answered.answer = Some((true, now));
                d.detail = format!("{} request={id}", d.detail);
                change.rows.push(Row::Request(answered));
                change.replaced.push(img);
            }
            d.evidence = g.to_bytes();
            change.drafts.push(d);
            if let Some((img, active)) = reg.grant_image(portion, uid) {
                change.replaced.push(img);
                change.scrub = active;
            }
            change.rows.push(Row::Grant(GrantRow {
                key: GrantKey {
                    patient: g.patient().clone(),
                    label: g.label().clone(),
                    epoch: g.epoch(),
                    user: g.user().clone(),
                },
                terms,
                state: GrantState::Active(key),
                consent,
            }));
            Ok(change)
        })
    }

    /// Carries out a revocation the patient signed
    /// ([`crate::PatientKeys::sign_revocation`]): every active grant of the
    /// label (all key epochs) to the user that it outranks ends — the
    /// re-encryption keys are zeroized and deleted, and no stored record is
    /// touched. Once this returns, no re-encryption under these grants
    /// succeeds — on this SRS or on any other process sharing its store.
    /// Returns the SRS's signed receipt, which counts the grants ended.
    ///
    /// Consent is one sequence per (patient, label, user) across every
    /// epoch (SPEC §7.5). The revocation is recorded even when it ends
    /// nothing, and from then on every grant of the triple dated at or
    /// before it is refused as [`SrsError::Replayed`], whatever its epoch
    /// and however late the host files it. It ends a grant dated at or
    /// before it (a grant's date being the earlier of its signed date and
    /// the time the SRS filed it, so a grant dated in the SRS's future does
    /// not outrank it) and leaves a grant the patient signed after it.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::NoConsentKey`],
    /// [`SrsError::UnknownUser`], [`SrsError::UnknownPortion`];
    /// [`SrsError::Malformed`] with [`crate::Error::InvalidSignature`], or
    /// dated more than five minutes ahead of the SRS's clock;
    /// [`SrsError::Replayed`] if it was accepted already or is older than
    /// the last revocation accepted for the triple; store errors.
    pub fn revoke(&self, revocation: &SignedRevocation) -> Result<RevocationReceipt, SrsError> {
        let now = self.clock.now();
        check_date(revocation.issued_at(), now)?;
        let r = revocation.clone();
        let signed = Some((r.issued_at(), r.nonce()));
        self.revoke_label(
            now,
            (revocation.patient(), revocation.label(), revocation.user()),
            r.to_bytes(),
            move |reg, pid| {
                r.verify(&patient_consent(reg, pid)?)?;
                Ok((r.patient().as_str().to_owned(), String::new(), signed))
            },
        )
    }

    /// An administrative revocation (a clinician left the hospital, an
    /// incident response): ends every active grant of the label to the
    /// user, authorized by `actor` (who, in which role, why — all recorded
    /// in the audit) instead of the patient's signature. It has no signed
    /// date, so it does not enter the patient's consent order. Returns the
    /// SRS's signed receipt.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::UnknownUser`],
    /// [`SrsError::UnknownPortion`]; [`SrsError::NotGranted`] if no grant
    /// is active; store errors.
    pub fn revoke_as(
        &self,
        actor: &Actor,
        patient: &Identity,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<RevocationReceipt, SrsError> {
        let a = actor.clone();
        self.revoke_label(
            self.clock.now(),
            (patient, label, user),
            actor.evidence(),
            move |_, _| Ok((a.identity.as_str().to_owned(), admin_detail(&a), None)),
        )
    }

    /// Ends `user`'s grants of `label` once `authorize` (run against the
    /// registry when the change is sequenced) names the actor, the audit
    /// detail and the signed date and nonce, if any; `auth` is the evidence
    /// kept and hashed into the receipt.
    fn revoke_label(
        &self,
        now: u64,
        (patient, label, user): (&Identity, &PortionLabel, &Identity),
        auth: Vec<u8>,
        authorize: impl FnOnce(
            &Registry,
            u32,
        ) -> Result<(String, String, Option<(u64, [u8; 16])>), SrsError>
        + Send
        + 'static,
    ) -> Result<RevocationReceipt, SrsError> {
        let (p, l, u) = (patient.clone(), label.clone(), user.clone());
        let evidence = auth.clone();
        let ended = Arc::new(AtomicU32::new(0));
        let count = ended.clone();
        // A revocation makes a checkpoint: the host (and every process it
        // hands it to) holds proof the store reached it, so a restore to
        // before the revocation is refused wherever it is pinned.
        let out = self.journal.commit_checkpointed(Box::new(move |reg| {
            let pid = reg.patient_id(&p).ok_or(SrsError::UnknownPatient)?;
            let (actor, detail, signed) = authorize(reg, pid)?;
            let uid = reg.user_id(&u).ok_or(SrsError::UnknownUser)?;
            let why = Revocation {
                user: &u,
                now,
                actor: &actor,
                detail,
                evidence,
                signed,
            };
            let change = plan_label_revocation(reg, pid, uid, &l, &why)?;
            let grants = change
                .rows
                .iter()
                .filter(|r| matches!(r, Row::Grant(_)))
                .count();
            count.store(u32::try_from(grants).unwrap_or(u32::MAX), Ordering::SeqCst);
            Ok(change)
        }))?;
        Ok(RevocationReceipt::new(
            self.keys.signing_key(),
            patient.clone(),
            label.clone(),
            user.clone(),
            now,
            out.first_seq,
            ended.load(Ordering::SeqCst),
            &auth,
        ))
    }

    /// A user asks a patient for access to a portion (the host has
    /// authenticated the user). The request waits, audited, until the
    /// patient answers with a grant that names it
    /// ([`crate::consent::GrantOptions::request`]) or a signed refusal
    /// ([`Srs::refuse_request`]).
    ///
    /// # Errors
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`],
    /// [`SrsError::UnknownPatient`], [`SrsError::UnknownPortion`];
    /// [`SrsError::Malformed`] for an empty, too long or control-character
    /// justification; store errors.
    pub fn request_access(
        &self,
        user: &Identity,
        patient: &Identity,
        label: &PortionLabel,
        purpose: Purpose,
        justification: &str,
    ) -> Result<RequestId, SrsError> {
        let justification = check_text(justification)?;
        let now = self.clock.now();
        let id = RequestId::random();
        let (user, patient, label) = (user.clone(), patient.clone(), label.clone());
        self.change(move |reg| {
            let uid = reg.user_id(&user).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
            if reg.portions_labelled(pid, &label).is_empty() {
                return Err(SrsError::UnknownPortion);
            }
            let mut d = Draft::new(now, user.as_str(), AuditAction::RequestAccess);
            d.patient = Some(patient.clone());
            d.label = Some(label.clone());
            d.user = Some(user.clone());
            d.purpose = Some(purpose);
            d.detail = format!("request={id} justification={justification}");
            let row = Row::Request(RequestRow {
                id: id.to_bytes(),
                patient,
                user,
                label,
                purpose,
                justification,
                requested_at: now,
                answer: None,
            });
            Ok(Change {
                rows: vec![row],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })?;
        Ok(id)
    }

    /// The patient's pending access requests, oldest first.
    pub fn pending_requests(&self, patient: &Identity) -> Vec<AccessRequest> {
        self.read().pending_requests(patient)
    }

    /// Refuses an access request with the patient's signed refusal
    /// ([`crate::PatientKeys::sign_refusal`]); audited with it.
    ///
    /// # Errors
    /// [`SrsError::UnknownRequest`], [`SrsError::RequestAnswered`];
    /// [`SrsError::NoConsentKey`]; [`SrsError::Malformed`] with
    /// [`crate::Error::InvalidSignature`] if it is not the patient's
    /// signature (or names another patient); store errors.
    pub fn refuse_request(&self, refusal: &SignedRefusal) -> Result<(), SrsError> {
        let now = self.clock.now();
        let r = refusal.clone();
        self.change(move |reg| {
            let (req, img) = reg
                .request(&r.request().to_bytes())
                .ok_or(SrsError::UnknownRequest)?;
            if req.answer.is_some() {
                return Err(SrsError::RequestAnswered);
            }
            let pid = reg
                .patient_id(&req.patient)
                .ok_or(SrsError::UnknownPatient)?;
            if r.patient() != &req.patient {
                return Err(SrsError::Malformed(crate::Error::InvalidSignature {
                    what: "signed refusal (another patient's request)",
                }));
            }
            r.verify(&patient_consent(reg, pid)?)?;
            let mut answered = req.clone();
            answered.answer = Some((false, now));
            let mut d = Draft::new(now, req.patient.as_str(), AuditAction::RefuseRequest);
            d.patient = Some(req.patient.clone());
            d.label = Some(req.label.clone());
            d.user = Some(req.user.clone());
            d.detail = format!("request={} reason={}", r.request(), r.reason());
            d.evidence = r.to_bytes();
            Ok(Change {
                rows: vec![Row::Request(answered)],
                replaced: vec![img],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
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
    /// `reason` (a [`Purpose`], or an [`AccessReason`] with a
    /// justification) is recorded in the audit entry and the patient's
    /// accounting of disclosures; a break-glass grant serves only
    /// [`Purpose::Emergency`] with a justification, and that use is flagged.
    ///
    /// # Errors
    /// [`SrsError::Denied`] with the reason; store errors.
    pub fn reencrypt(
        &self,
        user: &Identity,
        header: &PortionHeader,
        reason: impl Into<AccessReason>,
    ) -> Result<ReCapsule, SrsError> {
        self.reencrypt_one(user, header, false, &reason.into())
    }

    /// As [`Srs::reencrypt`], with a proof of correct re-encryption.
    ///
    /// # Errors
    /// As [`Srs::reencrypt`].
    pub fn reencrypt_with_proof(
        &self,
        user: &Identity,
        header: &PortionHeader,
        reason: impl Into<AccessReason>,
    ) -> Result<ReCapsule, SrsError> {
        self.reencrypt_one(user, header, true, &reason.into())
    }

    /// As [`Srs::reencrypt`], for a header given as bytes.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] if the bytes are not a header (nothing is
    /// audited then: no record is named); otherwise as [`Srs::reencrypt`].
    pub fn reencrypt_encoded(
        &self,
        user: &Identity,
        header: &[u8],
        reason: impl Into<AccessReason>,
    ) -> Result<ReCapsule, SrsError> {
        let h = PortionHeader::from_bytes(header)?;
        self.reencrypt(user, &h, reason)
    }

    fn reencrypt_one(
        &self,
        user: &Identity,
        header: &PortionHeader,
        proof: bool,
        reason: &AccessReason,
    ) -> Result<ReCapsule, SrsError> {
        let verified = header.verify();
        // Decided under the registry's read lock; computed after it.
        let decide_now = |now: u64| {
            let reg = self.read();
            let mut d = reencrypt_draft(now, user, reason);
            let r = match &verified {
                Err(_) => Err(Denial::InvalidCapsule),
                Ok(v) => decide(&reg, user, v, now, &mut d, reason.breaks_glass()),
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
        reason: impl Into<AccessReason>,
    ) -> Result<Vec<Result<ReCapsule, Denial>>, SrsError> {
        let reason = reason.into();
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
                let mut d = reencrypt_draft(now, user, &reason);
                decided.push(match v {
                    Err(_) => Err(Denial::InvalidCapsule),
                    Ok(v) => decide(&reg, user, v, now, &mut d, reason.breaks_glass()),
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

    /// The patient's consent public key, as registered (`None` for an
    /// unknown patient or one registered before signed consent).
    pub fn consent_key(&self, patient: &Identity) -> Option<VerifyingKey> {
        let reg = self.read();
        let k = reg.consent_key(reg.patient_id(patient)?)?;
        crate::consent::decode_verifying_key(&k).ok()
    }

    /// The patient's accounting of disclosures (HIPAA §164.528): every
    /// re-encryption served for one of their records with `from <= time <=
    /// to` — when, to whom (and their role), which portion and record, for
    /// what purpose, break-glass or not — oldest first. Streams from the
    /// store's disclosure index in pages (never a scan of the audit log);
    /// entries archived away ([`Srs::archive_audit`]) are in the archive
    /// segments.
    ///
    /// Against a database writer it is true and complete, without
    /// [`Srs::verify_audit`]: every entry is proven in the Merkle log against
    /// the root this SRS holds (SPEC §6.4), and the listing must account
    /// for exactly the patient's authenticated disclosure count (a registry
    /// row every disclosure moves). An edited, moved, spliced, duplicated
    /// or omitted disclosure makes the iterator end with
    /// [`SrsError::Tampered`] — never a wrong list. The price: a window
    /// reads and proves the patient's whole history.
    pub fn disclosures(&self, patient: &Identity, from: u64, to: u64) -> Disclosures<'_> {
        // What the authenticated count says the log holds, now: the listing
        // must account for exactly that many (nothing omitted).
        let expect = {
            let reg = self.read();
            reg.patient_id(patient)
                .and_then(|p| reg.disclosed(p))
                .map_or((0, 0), |(d, _)| (d.count - d.archived, d.last_seq))
        };
        Disclosures {
            srs: self,
            patient: patient.clone(),
            from,
            to,
            after: None,
            page: std::collections::VecDeque::new(),
            done: false,
            check: None,
            expect,
            seen: 0,
            accounted: false,
        }
    }

    /// Every break-glass access to the patient's records (the disclosures
    /// flagged emergency), oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub fn emergency_accesses(&self, patient: &Identity) -> Result<Vec<Disclosure>, SrsError> {
        let mut out = Vec::new();
        for d in self.disclosures(patient, 0, u64::MAX) {
            let d = d?;
            if d.emergency {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Writes the patient's accounting of disclosures as one JSON document
    /// (`{"patient":…,"from":…,"to":…,"disclosures":[{…},…],"count":n}`),
    /// streaming. Returns the number of disclosures written.
    ///
    /// # Errors
    /// Store errors; [`SrsError::Store`] wrapping a write failure.
    pub fn export_disclosures_json<W: Write>(
        &self,
        patient: &Identity,
        from: u64,
        to: u64,
        out: &mut W,
    ) -> Result<u64, SrsError> {
        let io = |e| SrsError::Store(StoreError::with_source("writing the disclosures", e));
        write!(
            out,
            "{{\"patient\":{},\"from\":{from},\"to\":{to},\"disclosures\":[",
            crate::model::json_string(patient.as_str())
        )
        .map_err(io)?;
        let mut n = 0u64;
        for d in self.disclosures(patient, from, to) {
            let d = d?;
            if n > 0 {
                out.write_all(b",").map_err(io)?;
            }
            out.write_all(d.to_json().as_bytes()).map_err(io)?;
            n += 1;
        }
        write!(out, "],\"count\":{n}}}").map_err(io)?;
        Ok(n)
    }

    /// Re-checks the consent behind every change in the live audit log,
    /// with public keys alone (as an auditor would from an export): every
    /// patient registration is self-signed by its consent key and proves
    /// possession of each portion key; every user registration proves
    /// possession of the user's key; every grant, revocation and refusal is
    /// signed by the patient's consent key (taken from their registration
    /// entry, or the registry for one archived away) and names exactly the
    /// entry's patient, label and user; no grant was filed that was signed
    /// before a revocation of its (patient, label, user) filed earlier (SPEC
    /// §7.5); every administrative change names its actor. Then every active
    /// grant in the registry must carry the commitment of the last signed
    /// grant of its key. Returns what it counted.
    ///
    /// # Errors
    /// [`SrsError::InvalidConsent`] naming the first entry whose evidence
    /// fails or that breaks the consent order; [`SrsError::Tampered`] if an active grant is not the one its
    /// patient signed; chain and store errors.
    pub fn verify_consent(&self) -> Result<ConsentReport, SrsError> {
        use crate::consent::{Checked, check_entry};
        if self.shared {
            self.sync()?;
        }
        let pos = self.journal.durable();
        let store = self.journal.store();
        let mut keys: std::collections::HashMap<Identity, VerifyingKey> =
            std::collections::HashMap::new();
        // The commitment of each grant key's last signed grant, and whether
        // it granted a share of a split key.
        let mut signed: std::collections::HashMap<GrantKey, ([u8; 32], bool)> =
            std::collections::HashMap::new();
        // The latest signed revocation of each (patient, label, user).
        let mut revoked_at: std::collections::HashMap<(Identity, PortionLabel, Identity), u64> =
            std::collections::HashMap::new();
        let mut report = ConsentReport::default();
        walk(
            store.as_ref(),
            pos.base_seq,
            pos.base_hash,
            pos.seq,
            &mut |rec, _| {
                let e = &rec.entry;
                let lookup = |p: &Identity| keys.get(p).copied().or_else(|| self.consent_key(p));
                let legacy = e.evidence.is_empty()
                    && matches!(
                        e.action,
                        AuditAction::RegisterUser
                            | AuditAction::RegisterPatient
                            | AuditAction::AddPortion
                            | AuditAction::Grant
                            | AuditAction::Revoke
                            | AuditAction::RemoveUser
                    );
                if legacy && e.outcome == AuditOutcome::Ok {
                    report.unsigned += 1;
                    return Ok(());
                }
                let checked =
                    check_entry(e, &lookup).map_err(|_| SrsError::InvalidConsent { seq: e.seq })?;
                match checked {
                    Checked::Registration(k) => {
                        if let Some(p) = &e.patient {
                            keys.insert(p.clone(), k);
                        }
                        report.registrations += 1;
                    }
                    Checked::User | Checked::PortionKey => report.registrations += 1,
                    Checked::Grant => {
                        let g = SignedGrant::from_bytes(&e.evidence)?;
                        // Consent order (SPEC §7.5): never a grant signed
                        // before a revocation of its triple accepted earlier.
                        let triple = (g.patient().clone(), g.label().clone(), g.user().clone());
                        if revoked_at
                            .get(&triple)
                            .is_some_and(|&at| g.issued_at() < at)
                        {
                            return Err(SrsError::InvalidConsent { seq: e.seq });
                        }
                        signed.insert(
                            GrantKey {
                                patient: g.patient().clone(),
                                label: g.label().clone(),
                                epoch: g.epoch(),
                                user: g.user().clone(),
                            },
                            (g.commitment().to_bytes(), g.threshold().is_some()),
                        );
                        report.grants += 1;
                    }
                    Checked::Revocation => {
                        let r = SignedRevocation::from_bytes(&e.evidence)?;
                        let at = revoked_at
                            .entry((r.patient().clone(), r.label().clone(), r.user().clone()))
                            .or_default();
                        *at = (*at).max(r.issued_at());
                        report.revocations += 1;
                    }
                    Checked::Refusal => report.refusals += 1,
                    Checked::Administrative => report.administrative += 1,
                    _ => {}
                }
                Ok(())
            },
        )?;
        for (key, info) in self.registry().grants {
            let (Some(c), Some((s, split))) = (info.commitment, signed.get(&key)) else {
                continue;
            };
            if c.as_bytes() != s || info.share.is_some() != *split {
                return Err(SrsError::Tampered(
                    "an active grant is not the one its patient signed",
                ));
            }
            report.active_checked += 1;
        }
        Ok(report)
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
    /// the latest checkpoint, the Merkle tree's root and every node the
    /// store keeps, the disclosure index, and that the store holds every
    /// entry this SRS has made durable. Re-encryptions and changes go on meanwhile. Returns
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
        // The disclosure index's keyed digest: (count, sum of keyed shares).
        let mut index = (0u64, 0u128);
        // The Merkle nodes the store keeps, recomputed from the entries.
        let mut tree = crate::srs::proofs::TreeCheck::new(store.as_ref(), pos.base_seq);
        let end = walk(
            store.as_ref(),
            pos.base_seq,
            pos.base_hash,
            pos.seq,
            &mut |rec, _| {
                tree.push(&rec.entry)?;
                if let Some(p) = crate::store::disclosed(&rec.entry) {
                    let share =
                        self.keys
                            .index_share(p.as_bytes(), rec.entry.time, rec.entry.seq)?;
                    index = (index.0 + 1, index.1.wrapping_add(share));
                }
                Ok(())
            },
        )?;
        if end != pos.hash {
            return Err(SrsError::AuditChainBroken { seq: pos.seq });
        }
        tree.finish(&pos.tree)?;
        // The disclosure index holds exactly the chain's disclosures up to
        // the entry verified (rows are committed with their entries).
        let mut stored = (0u64, 0u128);
        let mut failed = None;
        store.disclosure_index(pos.seq, &mut |p, t, s| {
            match self.keys.index_share(p, t, s) {
                Ok(share) => stored = (stored.0 + 1, stored.1.wrapping_add(share)),
                Err(e) => failed = Some(e),
            }
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if stored != index {
            return Err(SrsError::Tampered("disclosure index"));
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
    detail: String,
    /// The signed revocation, or the administrative actor's evidence.
    evidence: Vec<u8>,
    /// When the patient signed it, and its nonce (none for an
    /// administrative revocation).
    signed: Option<(u64, [u8; 16])>,
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
    let current = reg
        .grant_consent(portion, user)
        .cloned()
        .unwrap_or_default();
    // The tombstone remembers the newer of the grant and the revocation, so
    // neither can be filed again for this key.
    let consent = match r.signed {
        Some((at, nonce)) => current.admit(at, nonce).unwrap_or(current),
        None => current,
    };
    let mut d = Draft::new(r.now, r.actor, AuditAction::Revoke);
    d.patient = Some(patient.clone());
    d.label = Some(label.clone());
    d.user = Some(r.user.clone());
    d.detail = if r.detail.is_empty() {
        format!("epoch={epoch}")
    } else {
        format!("epoch={epoch} {}", r.detail)
    };
    d.evidence = r.evidence.clone();
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
        consent,
    }));
    change.replaced.push(img);
    change.scrub = true;
    Ok(())
}

/// Ends `user`'s active grants of `label` (all epochs) that `why` outranks,
/// and records a signed revocation in the triple's consent order (SPEC §7.5)
/// even when it ends nothing.
///
/// A signed revocation must be newer than the last one accepted for the
/// triple; it ends each active grant dated at or before it — a grant's date
/// being `min(signed date, time the SRS accepted it)`, so a grant dated in
/// the SRS's future never outranks it — and leaves the patient's later
/// grants standing. An administrative revocation ends every active grant
/// and must end one.
fn plan_label_revocation(
    reg: &Registry,
    patient: u32,
    user: u32,
    label: &PortionLabel,
    why: &Revocation<'_>,
) -> Result<Change, SrsError> {
    let labelled = reg.portions_labelled(patient, label);
    if labelled.is_empty() {
        return Err(SrsError::UnknownPortion);
    }
    let order = reg.consent_order(patient, label, user);
    let order = order.as_ref();
    let revoked = match why.signed {
        Some((at, nonce)) => Some(
            order
                .map_or_else(Consented::default, |(c, _)| c.revoked.clone())
                .admit(at, nonce)
                .ok_or(SrsError::Replayed)?,
        ),
        None => None,
    };
    let mut bound = order.map_or(0, |(c, _)| c.bound);
    let mut change = Change::audit(Vec::new());
    for (portion, _) in labelled {
        let Some((img, true)) = reg.grant_image(portion, user) else {
            continue;
        };
        let signed_at = reg.grant_consent(portion, user).map_or(0, |c| c.at);
        if let (Some(r), Some(terms)) = (&revoked, reg.grant_terms(portion, user))
            && r.at < signed_at.min(terms.granted_at)
        {
            // The patient's later word stands.
            continue;
        }
        bound = bound.max(signed_at);
        plan_revoke(reg, &mut change, portion, user, img, why)?;
    }
    let Some(revoked) = revoked else {
        if change.rows.is_empty() {
            return Err(SrsError::NotGranted);
        }
        return Ok(change);
    };
    let patient_id = reg
        .patient_identity(patient)
        .ok_or(SrsError::UnknownPatient)?;
    let label = label.clone();
    if change.drafts.is_empty() {
        // Nothing ended: the revocation is still the patient's last word.
        let mut d = Draft::new(why.now, why.actor, AuditAction::Revoke);
        d.patient = Some(patient_id.clone());
        d.label = Some(label.clone());
        d.user = Some(why.user.clone());
        d.detail = if why.detail.is_empty() {
            "ended=0".to_owned()
        } else {
            format!("ended=0 {}", why.detail)
        };
        d.evidence = why.evidence.clone();
        change.drafts.push(d);
    }
    if let Some((_, img)) = order {
        change.replaced.push(img.clone());
    }
    change.rows.push(Row::Consent(ConsentRow {
        patient: patient_id,
        label,
        user: why.user.clone(),
        bound: bound.max(revoked.at),
        revoked,
    }));
    Ok(change)
}

/// The audit detail of an administrative act.
fn admin_detail(a: &Actor) -> String {
    format!("actor_role={} reason={}", a.role, a.reason)
}

/// The patient's registered consent key.
fn patient_consent(reg: &Registry, patient: u32) -> Result<VerifyingKey, SrsError> {
    let k = reg.consent_key(patient).ok_or(SrsError::NoConsentKey)?;
    Ok(crate::consent::decode_verifying_key(&k)?)
}

/// How far ahead of the SRS's clock a signed object may be dated.
const MAX_SKEW: u64 = 300;

fn check_date(issued_at: u64, now: u64) -> Result<(), SrsError> {
    if issued_at > now.saturating_add(MAX_SKEW) {
        return Err(SrsError::Malformed(crate::Error::Malformed {
            what: "signed object dated more than five minutes ahead of the SRS's clock",
        }));
    }
    Ok(())
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

/// A denial that a registry behind a shared store may have given wrongly,
/// or for a reason no longer true: the user or grant may exist on another
/// process already, or have been removed, replaced or re-scoped there. Only
/// a capsule that does not verify is denied whatever the registry says.
fn may_be_behind<T>(r: &Result<T, Denial>) -> bool {
    matches!(r, Err(d) if *d != Denial::InvalidCapsule)
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

fn reencrypt_draft(now: u64, user: &Identity, reason: &AccessReason) -> Draft {
    let mut d = Draft::new(now, user.as_str(), AuditAction::ReEncrypt);
    d.user = Some(user.clone());
    d.purpose = Some(reason.purpose());
    if let Some(j) = reason.justification() {
        d.detail = format!("justification={j}");
    }
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
    breaks_glass: bool,
) -> Result<Decided, Denial> {
    d.record_id = Some(v.header().context().record_id());
    let (named, auth) = reg.authorize(user, v, now, breaks_glass);
    if let Some((p, l)) = named {
        d.patient = Some(p);
        d.label = Some(l);
    }
    let a = auth?;
    d.emergency = a.emergency;
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

/// What [`Srs::verify_consent`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsentReport {
    /// Patient, portion-key and user registrations with valid signatures
    /// and proofs.
    pub registrations: u64,
    /// Grants signed by their patient.
    pub grants: u64,
    /// Revocations signed by their patient.
    pub revocations: u64,
    /// Refusals signed by their patient.
    pub refusals: u64,
    /// Administrative changes (actor named, no patient signature).
    pub administrative: u64,
    /// Changes recorded before signed consent existed (no evidence).
    pub unsigned: u64,
    /// Active grants whose commitment was matched to their signed grant.
    pub active_checked: u64,
}

/// The pages of [`Srs::disclosures`].
pub struct Disclosures<'a> {
    srs: &'a Srs,
    patient: Identity,
    from: u64,
    to: u64,
    after: Option<(u64, u64)>,
    page: std::collections::VecDeque<AuditEntry>,
    done: bool,
    check: Option<crate::srs::proofs::EntryCheck<'a>>,
    /// The authenticated (live count, last sequence number) of the
    /// patient's disclosures when the listing began.
    expect: (u64, u64),
    /// Proven disclosures up to that last one.
    seen: u64,
    /// The count was checked at the end.
    accounted: bool,
}

impl core::fmt::Debug for Disclosures<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disclosures")
            .field("patient", &self.patient)
            .finish_non_exhaustive()
    }
}

/// Disclosures read per page.
const DISCLOSURE_PAGE: usize = 1024;

impl Disclosures<'_> {
    fn fail(&mut self, e: SrsError) -> Option<Result<Disclosure, SrsError>> {
        self.done = true;
        self.accounted = true;
        self.page.clear();
        Some(Err(e))
    }
}

impl Iterator for Disclosures<'_> {
    type Item = Result<Disclosure, SrsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.page.is_empty() && !self.done {
                let store = self.srs.journal.store();
                // The whole history, whatever the window: only so can every
                // disclosure the count holds be accounted for.
                match store.disclosures(&self.patient, 0, u64::MAX, self.after, DISCLOSURE_PAGE) {
                    Ok(page) => {
                        self.done = page.len() < DISCLOSURE_PAGE;
                        self.page = page.into_iter().map(|r| r.entry).collect();
                    }
                    Err(e) => return self.fail(e.into()),
                }
            }
            let Some(e) = self.page.pop_front() else {
                if self.accounted {
                    return None;
                }
                self.accounted = true;
                // Nothing omitted: as many as the authenticated count.
                return (self.seen != self.expect.0)
                    .then(|| self.fail(SrsError::Tampered("disclosure index omits disclosures")))
                    .flatten();
            };
            // In (time, seq) order, each once: an index row copied to another
            // time would list an entry twice.
            if self.after.is_some_and(|a| (e.time, e.seq) <= a) {
                return self.fail(SrsError::Tampered("disclosure index"));
            }
            self.after = Some((e.time, e.seq));
            // Each entry proven in the Merkle log against the root this
            // process holds (authenticated): an entry edited, moved or
            // spliced in below any checkpoint is an error, never a wrong
            // disclosure.
            if self.check.as_ref().is_none_or(|c| c.size() < e.seq) {
                let (size, root) = self.srs.durable_tree();
                self.check = Some(crate::srs::proofs::EntryCheck::new(
                    self.srs.journal.store().as_ref(),
                    size,
                    root,
                ));
            }
            if let Some(Err(err)) = self.check.as_mut().map(|c| c.check(&e)) {
                return self.fail(err);
            }
            // What the index points to must be a disclosure of this patient.
            if crate::store::disclosed(&e) != Some(&self.patient) {
                return self.fail(SrsError::Tampered("disclosure index"));
            }
            if e.seq <= self.expect.1 {
                self.seen += 1;
            }
            if e.time < self.from || e.time > self.to {
                continue;
            }
            let role = e.user.as_ref().and_then(|u| {
                let reg = self.srs.read();
                reg.user_role(reg.user_id(u)?).cloned()
            });
            return Some(Disclosure::from_entry(e, role).ok_or(SrsError::Tampered(
                "the disclosure index names an entry that is not a disclosure",
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::GrantOptions;
    use crate::{PatientKeys, PortionLabel};

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
