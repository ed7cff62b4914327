//! Durable storage of the SRS: the [`Store`] trait and its implementations.
//!
//! A store holds plain records. The SRS seals every re-encryption key before
//! it reaches a store and authenticates the audit chain's head, so a store
//! (or a copy of its file) needs no trust for confidentiality; it is trusted
//! only to keep what it acknowledged.

use core::fmt;
use std::sync::Mutex;

use crate::ids::{Identity, PortionLabel};
use crate::keys::{PortionPublicKey, PublicKey};
use crate::srs::{AuditEntry, Role, Scope};

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};

/// A store failed: I/O, a full disk, a corrupt file, a record that does not
/// decode.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    corrupt: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A store error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            corrupt: false,
            source: None,
        }
    }

    /// A store error caused by another error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            corrupt: false,
            source: Some(Box::new(source)),
        }
    }

    /// A stored record that does not decode: the data was altered or
    /// damaged. The SRS reports it as [`crate::srs::SrsError::Tampered`].
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self {
            message: what.into(),
            corrupt: true,
            source: None,
        }
    }

    /// Whether this is a record that does not decode.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Whether a registered user may still be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserStatus {
    /// Registered and active.
    Active,
    /// Removed at this time (seconds since the Unix epoch); every grant of
    /// theirs was revoked with the removal. An identity is never reused.
    Removed(u64),
}

/// A registered user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's identity.
    pub identity: Identity,
    /// The user's role.
    pub role: Role,
    /// The user's public key; re-encryption keys for this user must name it.
    pub public_key: PublicKey,
    /// Active or removed.
    pub status: UserStatus,
    /// When the user was registered.
    pub registered_at: u64,
}

/// A registered patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientRecord {
    /// The patient's identity.
    pub identity: Identity,
    /// When the patient was registered.
    pub registered_at: u64,
}

/// A portion public key registered for a patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortionRecord {
    /// The patient it belongs to.
    pub patient: Identity,
    /// Label, epoch and point.
    pub key: PortionPublicKey,
    /// When it was registered.
    pub registered_at: u64,
}

/// A grant's state in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantState {
    /// Active, with the re-encryption key sealed under the storage key.
    Active {
        /// `nonce (12) ‖ ChaCha20-Poly1305 ciphertext ‖ tag` of the encoded key.
        sealed_rekey: Vec<u8>,
    },
    /// Revoked at this time; the key was deleted.
    Revoked(u64),
}

/// A grant: one user's access to one portion key of one patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// The patient.
    pub patient: Identity,
    /// The portion label.
    pub label: PortionLabel,
    /// The key epoch of the portion key.
    pub epoch: u32,
    /// The user.
    pub user: Identity,
    /// Which records the grant covers.
    pub scope: Scope,
    /// When it stops working (seconds since the Unix epoch), if ever.
    pub expiry: Option<u64>,
    /// When it was granted.
    pub granted_at: u64,
    /// Active (with its sealed key) or revoked.
    pub state: GrantState,
}

/// One entry of the audit chain as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The entry.
    pub entry: AuditEntry,
    /// The previous entry's hash (a fixed genesis value for the first).
    pub prev_hash: [u8; 32],
    /// `SHA-256(prev_hash ‖ entry encoding)`.
    pub hash: [u8; 32],
}

/// The head of the audit chain with a MAC under a key derived from the
/// storage key: deleting entries at the end of the chain, which the chain
/// alone cannot show, breaks the MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditHead {
    /// Sequence number of the last entry.
    pub seq: u64,
    /// Hash of the last entry.
    pub hash: [u8; 32],
    /// HMAC-SHA-256 over both.
    pub mac: [u8; 32],
}

/// One change, applied with others in a single atomic, durable step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace a user (by identity).
    PutUser(UserRecord),
    /// Insert a patient.
    PutPatient(PatientRecord),
    /// Insert a portion key.
    PutPortion(PortionRecord),
    /// Insert or replace a grant (by patient, label, epoch, user).
    PutGrant(GrantRecord),
    /// Append an audit entry.
    AppendAudit(AuditRecord),
    /// Replace the audit head.
    SetAuditHead(AuditHead),
}

/// Everything but the audit entries, as loaded when an SRS opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredState {
    /// Users, active and removed.
    pub users: Vec<UserRecord>,
    /// Patients.
    pub patients: Vec<PatientRecord>,
    /// Portion keys.
    pub portions: Vec<PortionRecord>,
    /// Grants, active and revoked.
    pub grants: Vec<GrantRecord>,
    /// The audit head, if any entry was ever written.
    pub audit_head: Option<AuditHead>,
}

/// Durable storage for an SRS.
///
/// `apply` must be atomic (all of `ops` or none) and durable before it
/// returns `Ok`: the SRS acknowledges a grant or revocation only after that.
/// The SRS calls `apply` from one thread at a time.
pub trait Store: Send + Sync {
    /// Loads the registry, grants and audit head.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or a record does not decode.
    fn load(&self) -> Result<StoredState, StoreError>;

    /// Applies `ops` atomically and durably.
    ///
    /// # Errors
    /// A [`StoreError`]; then none of `ops` took effect.
    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError>;

    /// The audit entries with sequence numbers `>= from_seq`, in order.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or an entry does not decode.
    fn audit(&self, from_seq: u64) -> Result<Vec<AuditRecord>, StoreError>;
}

/// A store in memory: for tests, and for hosts that keep durability elsewhere.
/// Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    state: StoredState,
    audit: Vec<AuditRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // Applying ops cannot fail or panic part way, so a lock poisoned by a
        // panic elsewhere still guards a consistent state.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn upsert<T>(v: &mut Vec<T>, item: T, same: impl Fn(&T, &T) -> bool) {
    match v.iter_mut().find(|x| same(x, &item)) {
        Some(slot) => *slot = item,
        None => v.push(item),
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<StoredState, StoreError> {
        Ok(self.lock().state.clone())
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut g = self.lock();
        for op in ops {
            match op {
                StoreOp::PutUser(u) => upsert(&mut g.state.users, u.clone(), |a, b| {
                    a.identity == b.identity
                }),
                StoreOp::PutPatient(p) => upsert(&mut g.state.patients, p.clone(), |a, b| {
                    a.identity == b.identity
                }),
                StoreOp::PutPortion(p) => upsert(&mut g.state.portions, p.clone(), |a, b| {
                    a.key.key() == b.key.key()
                }),
                StoreOp::PutGrant(gr) => upsert(&mut g.state.grants, gr.clone(), |a, b| {
                    a.patient == b.patient
                        && a.label == b.label
                        && a.epoch == b.epoch
                        && a.user == b.user
                }),
                StoreOp::AppendAudit(a) => g.audit.push(a.clone()),
                StoreOp::SetAuditHead(h) => g.state.audit_head = Some(*h),
            }
        }
        Ok(())
    }

    fn audit(&self, from_seq: u64) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self
            .lock()
            .audit
            .iter()
            .filter(|a| a.entry.seq >= from_seq)
            .cloned()
            .collect())
    }
}
