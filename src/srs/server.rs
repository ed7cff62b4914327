//! The SRS itself: every operation plans its change once, commits it
//! through the journal, and applies it to the registry.

use std::sync::{Arc, Mutex, PoisonError, RwLockReadGuard};

use crate::keys::EscrowKeyIssuer;
use crate::model::Checkpoint;
use crate::srs::VerifyingKey;
use crate::srs::chain::genesis_hash;
use crate::srs::config::CheckpointSink;
use crate::srs::config::{Cadence, OpenReport, SrsConfig};
use crate::srs::follower;
use crate::srs::journal::{Change, Journal, Position, contains, load};
use crate::srs::registry::Registry;
use crate::srs::secrets::{SrsKeys, checkpoint_is_signed_by};
use crate::srs::types::{Clock, SrsError, StorageKey};
use crate::store::{MemoryStore, Store, StoreError};

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
pub(super) const HOST_ACTOR: &str = "srs";

/// The Setup and Re-encryption Server. `Send + Sync`: share it between
/// threads (e.g. in an `Arc`); every method takes `&self`.
pub struct Srs {
    pub(super) journal: Arc<Journal>,
    pub(super) shared: bool,
    pub(super) keys: Arc<SrsKeys>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) escrow: Option<EscrowKeyIssuer>,
    pub(super) grant_max_age: Option<u64>,
    pub(super) report: OpenReport,
    pub(super) maintenance: Mutex<()>,
    pub(super) follower: Option<follower::Follower>,
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
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// // `srs` above is `Srs::in_memory()?`: a complete SRS for tests.
    /// assert_eq!(srs.verify_audit()?, 4); // two registrations, a grant, a checkpoint
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    /// [`crate::store::PostgresStore`] and `docs/POSTGRES.md`.
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
            use_snapshot,
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
            use_snapshot,
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
    pub(super) fn maintenance(&self) -> std::sync::MutexGuard<'_, ()> {
        self.maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The store's chain head, authenticated.
    pub(super) fn authentic_head(&self) -> Result<crate::store::ChainHead, SrsError> {
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

    /// Writes a sealed snapshot of the registry into the store, replacing
    /// the one it kept, so that the next [`Srs::open`] reads the registry
    /// in one stream and authenticates only the rows written since, instead
    /// of every row (at a million patients, seconds instead of most of a
    /// minute; see the README). A checkpoint is made first.
    ///
    /// The snapshot is sealed under a key derived from the storage key and
    /// trusted for nothing: an open uses it only if it opens, is bound to a
    /// position this store holds, and with the rows written since gives the
    /// authenticated head's registry digest; otherwise it verifies every
    /// row, as without one ([`OpenReport::snapshot`](crate::srs::OpenReport)
    /// says which). A revocation or removal deletes the snapshot (it holds
    /// the re-encryption key that leaves); write a new one after. Commits
    /// wait while it is written; re-encryptions are served.
    ///
    /// Returns `None` for a store that keeps no snapshot (a custom
    /// [`Store`](crate::store::Store) without one).
    ///
    /// # Errors
    /// Store errors (then the snapshot kept before is unchanged); what the
    /// checkpoint's commit finds.
    pub fn write_snapshot(&self) -> Result<Option<crate::srs::SnapshotInfo>, SrsError> {
        let _m = self.maintenance();
        self.journal.checkpoint()?;
        self.journal.write_snapshot()
    }

    /// What the last open checked.
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, Registry> {
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
    pub(super) fn change(
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
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// // A host keeps the latest checkpoint outside the database; verified with
    /// // the SRS's public key alone, and pinned at the next open
    /// // (`SrsConfig::require_checkpoint`) to refuse a rolled-back database.
    /// let cp = srs.checkpoint()?;
    /// sesphr::srs::verify_checkpoint(&cp, &srs.verifying_key())?;
    /// let stored = cp.to_bytes();
    /// assert_eq!(sesphr::srs::Checkpoint::from_bytes(&stored)?, cp);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
}

/// The patient's registered consent key.
pub(super) fn patient_consent(reg: &Registry, patient: u32) -> Result<VerifyingKey, SrsError> {
    let k = reg.consent_key(patient).ok_or(SrsError::NoConsentKey)?;
    Ok(crate::consent::decode_verifying_key(&k)?)
}

/// How far ahead of the SRS's clock a signed object may be dated.
pub(super) const MAX_SKEW: u64 = 300;

pub(super) fn check_date(issued_at: u64, now: u64) -> Result<(), SrsError> {
    if issued_at > now.saturating_add(MAX_SKEW) {
        return Err(SrsError::Malformed(crate::Error::Malformed {
            what: "signed object dated more than five minutes ahead of the SRS's clock",
        }));
    }
    Ok(())
}
