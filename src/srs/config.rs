//! How an SRS is set up, and what opening it checked.

use std::sync::Arc;

use crate::keys::EscrowKeyIssuer;
use crate::model::Checkpoint;
use crate::srs::SigningKey;
use crate::srs::types::{Clock, StorageKey, SystemClock};
use crate::store::Store;

/// A host callback that receives every checkpoint once it is durable.
pub(crate) type CheckpointSink = std::sync::Arc<dyn Fn(&crate::model::Checkpoint) + Send + Sync>;

/// Default number of audit entries between automatic checkpoints.
///
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 4096;

/// Default longest time between checkpoints while entries arrive: 60 s.
///
pub const DEFAULT_CHECKPOINT_INTERVAL: core::time::Duration = core::time::Duration::from_secs(60);

/// When the SRS makes checkpoints: every `every` entries, and at the first
/// commit `interval` seconds or more after the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cadence {
    pub(crate) every: u64,
    pub(crate) interval: u64,
}

/// Default oldest signed grant the SRS files: seven days.
///
pub const DEFAULT_GRANT_MAX_AGE: core::time::Duration =
    core::time::Duration::from_secs(7 * 24 * 3600);

/// How an SRS is set up.
pub struct SrsConfig {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) storage_key: StorageKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) escrow: Option<EscrowKeyIssuer>,
    pub(crate) signing_key: Option<SigningKey>,
    pub(crate) cadence: Cadence,
    pub(crate) sink: Option<CheckpointSink>,
    pub(crate) required: Option<Checkpoint>,
    pub(crate) follow: bool,
    pub(crate) grant_max_age: Option<u64>,
    pub(crate) use_snapshot: bool,
}

impl SrsConfig {
    /// An SRS on `store`, sealing secrets with `storage_key`, with the system
    /// clock, no escrow, a checkpoint every [`DEFAULT_CHECKPOINT_EVERY`]
    /// entries signed with a key derived from `storage_key`.
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
            signing_key: None,
            cadence: Cadence {
                every: DEFAULT_CHECKPOINT_EVERY,
                interval: DEFAULT_CHECKPOINT_INTERVAL.as_secs(),
            },
            sink: None,
            required: None,
            follow: true,
            grant_max_age: Some(DEFAULT_GRANT_MAX_AGE.as_secs()),
            use_snapshot: true,
        }
    }

    /// Uses another clock (tests, simulations).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// **Escrow mode**: lets [`Srs::issue_keys`](crate::srs::Srs::issue_keys) derive users' keys from
    /// `issuer`'s master seed. Whoever holds that seed can compute every
    /// issued secret key; users who generate their own keys are unaffected.
    /// Off unless set here.
    #[must_use]
    pub fn escrow(mut self, issuer: EscrowKeyIssuer) -> Self {
        self.escrow = Some(issuer);
        self
    }

    /// Signs checkpoints with the host's key instead of one derived from the
    /// storage key (e.g. a key whose public half is published).
    #[must_use]
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// Makes a checkpoint every `entries` audit entries (at least 1). Open
    /// verifies at most about this many entries.
    #[must_use]
    pub fn checkpoint_every(mut self, entries: u64) -> Self {
        self.cadence.every = entries.max(1);
        self
    }

    /// Also makes a checkpoint at the first commit of entries `interval` or
    /// more after the last checkpoint (at least 1 s; default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`], 60 s), so the history a cut back to
    /// a checkpoint can erase is bounded in time as well as in entries.
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: core::time::Duration) -> Self {
        self.cadence.interval = interval.as_secs().max(1);
        self
    }

    /// Hands every checkpoint, once durable, to `sink`: keep it outside the
    /// database (another system, a transparency log, the patients' apps) and
    /// give the latest back with [`SrsConfig::require_checkpoint`]. Called
    /// from the thread that committed it; keep it short.
    #[must_use]
    pub fn on_checkpoint(mut self, sink: impl Fn(&Checkpoint) + Send + Sync + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// On a store shared with other SRS processes (PostgreSQL), whether a
    /// background thread follows their changes as they are announced
    /// (`LISTEN`/`NOTIFY`, polling as a backup). On by default. Without it
    /// the registry catches up at this SRS's next commit or
    /// [`Srs::sync`](crate::srs::Srs::sync) — correctness does not depend on
    /// it (every commit catches up and re-checks its requests first), only
    /// how soon a grant made elsewhere serves here without a retry.
    #[must_use]
    pub fn follow_changes(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// The oldest a signed grant may be when it is filed
    /// ([`Srs::grant`](crate::srs::Srs::grant)): older ones are refused with
    /// [`SrsError::GrantTooOld`](crate::srs::SrsError::GrantTooOld).
    /// Default [`DEFAULT_GRANT_MAX_AGE`] (seven days); `None` files grants
    /// of any age.
    ///
    /// A grant the host held back is the patient's decision of that day; the
    /// bound limits how stale a decision the host can still act on, and how
    /// long a patient's client must remember what it signed to revoke it
    /// (a revocation covers every grant dated before it, whatever its age).
    #[must_use]
    pub fn grant_max_age(mut self, max_age: Option<core::time::Duration>) -> Self {
        self.grant_max_age = max_age.map(|d| d.as_secs());
        self
    }

    /// Refuses to open a store whose history does not contain `checkpoint`
    /// ([`SrsError::Diverged`](crate::srs::SrsError::Diverged)) or ends before it ([`SrsError::RolledBack`](crate::srs::SrsError::RolledBack)):
    /// a rollback of the whole database to an older copy is detected.
    #[must_use]
    pub fn require_checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.required = Some(checkpoint);
        self
    }

    /// Whether open may read the registry from the store's snapshot
    /// ([`Srs::write_snapshot`](crate::srs::Srs::write_snapshot)); on by
    /// default. Off, every row is read and authenticated, as when no
    /// snapshot is kept: rows written before the snapshot are then checked
    /// too (with a snapshot they are not read, so an edit there is not
    /// noticed until an open that reads them — it changes nothing served).
    #[must_use]
    pub fn use_snapshot(mut self, use_it: bool) -> Self {
        self.use_snapshot = use_it;
        self
    }
}

impl core::fmt::Debug for SrsConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrsConfig")
            .field("escrow", &self.escrow.is_some())
            .field("checkpoint_every", &self.cadence.every)
            .field("checkpoint_interval", &self.cadence.interval)
            .field("use_snapshot", &self.use_snapshot)
            .finish_non_exhaustive()
    }
}

/// What [`Srs::open`](crate::srs::Srs::open) checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The store was empty and was initialized (genesis head and checkpoint).
    pub created: bool,
    /// Registry rows authenticated one by one (with a snapshot: those
    /// written since it).
    pub rows: u64,
    /// Audit entries verified (those after the latest checkpoint).
    pub entries_verified: u64,
    /// The sequence number of the latest audit entry.
    pub seq: u64,
    /// Whether the registry came from the store's snapshot
    /// ([`Srs::write_snapshot`](crate::srs::Srs::write_snapshot)), and if
    /// one was ignored, why.
    pub snapshot: crate::srs::SnapshotUse,
}
