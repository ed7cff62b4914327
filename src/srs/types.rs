//! The SRS's vocabulary: roles, scopes, denials, errors, the storage key and
//! the clock.

use core::fmt;
use core::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::rng::os_rng;
use crate::store::StoreError;

/// A user's role. Hosts with other roles use [`Role::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A patient acting as a data user (e.g. reading a relative's record).
    Patient,
    /// A doctor.
    Doctor,
    /// A hospital or clinic as an organization.
    Hospital,
    /// A researcher.
    Researcher,
    /// A family member.
    Family,
    /// An administrator.
    Admin,
    /// Any other role: 1–64 bytes of `[a-z0-9_-]`, not one of the names above.
    Other(String),
}

impl Role {
    /// The role's name: `patient`, `doctor`, …, or the custom name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Patient => "patient",
            Self::Doctor => "doctor",
            Self::Hospital => "hospital",
            Self::Researcher => "researcher",
            Self::Family => "family",
            Self::Admin => "admin",
            Self::Other(s) => s,
        }
    }
}

impl FromStr for Role {
    type Err = Error;

    /// Parses a role name; unknown valid names become [`Role::Other`].
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "patient" => Self::Patient,
            "doctor" => Self::Doctor,
            "hospital" => Self::Hospital,
            "researcher" => Self::Researcher,
            "family" => Self::Family,
            "admin" => Self::Admin,
            other => {
                // Same rule as portion labels: no look-alikes in names that decide access.
                crate::ids::PortionLabel::new(other).map_err(|_| Error::InvalidIdentity)?;
                Self::Other(other.to_owned())
            }
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which records of a portion a grant covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every record, old and new: backward access for a newly granted user.
    AllRecords,
    /// Records created at or after this time (seconds since the Unix epoch),
    /// by the `created_at` bound into each capsule: the original SeSPHR's
    /// "from the date of joining".
    Since(u64),
}

impl Scope {
    pub(crate) fn covers(&self, created_at: u64) -> bool {
        match self {
            Self::AllRecords => true,
            Self::Since(t) => created_at >= *t,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AllRecords => f.write_str("all-records"),
            Self::Since(t) => write!(f, "since:{t}"),
        }
    }
}

/// Why the SRS refused a re-encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// The user is not registered, or was removed.
    NotRegistered,
    /// The user has no grant for this portion.
    NotGranted,
    /// The user's grant for this portion was revoked.
    Revoked,
    /// The user's grant for this portion has expired.
    Expired,
    /// The record was created before the grant's `Since` time.
    OutOfScope,
    /// The header's capsule proof does not verify, or it disagrees with the
    /// registered portion key.
    InvalidCapsule,
}

impl Denial {
    /// A short stable name, as written in the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotRegistered => "not_registered",
            Self::NotGranted => "not_granted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::OutOfScope => "out_of_scope",
            Self::InvalidCapsule => "invalid_capsule",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Self::NotRegistered => 1,
            Self::NotGranted => 2,
            Self::Revoked => 3,
            Self::Expired => 4,
            Self::OutOfScope => 5,
            Self::InvalidCapsule => 6,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::NotRegistered,
            2 => Self::NotGranted,
            3 => Self::Revoked,
            4 => Self::Expired,
            5 => Self::OutOfScope,
            6 => Self::InvalidCapsule,
            _ => return None,
        })
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in an SRS operation. A failed operation changes nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum SrsError {
    /// A re-encryption was refused (and audited as such).
    Denied(Denial),
    /// No such user.
    UnknownUser,
    /// No such patient.
    UnknownPatient,
    /// The patient has no such portion key (label and epoch).
    UnknownPortion,
    /// The identity is already registered (identities of removed users are
    /// not reused).
    AlreadyRegistered,
    /// The public key or portion key is already registered to someone.
    KeyInUse,
    /// The user was removed.
    UserRemoved,
    /// The re-encryption key is not from this patient's portion to this user.
    RekeyMismatch,
    /// There is no active grant to revoke.
    NotGranted,
    /// An input did not decode or validate.
    Malformed(Error),
    /// Escrow key issuance was asked for, but this SRS was not set up with an
    /// escrow issuer.
    EscrowDisabled,
    /// Stored data failed authentication: a sealed re-encryption key, or a
    /// record, was altered, or the storage key is wrong.
    Tampered(&'static str),
    /// The audit chain is broken at this sequence number: an entry was
    /// edited, deleted, reordered or inserted.
    AuditChainBroken {
        /// The first sequence number where the chain does not hold.
        seq: u64,
    },
    /// The store failed.
    Store(StoreError),
    /// An earlier store failure left this SRS unable to guarantee durability;
    /// it refuses every change until reopened.
    Unavailable,
}

impl fmt::Display for SrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(d) => write!(f, "re-encryption denied: {d}"),
            Self::UnknownUser => f.write_str("unknown user"),
            Self::UnknownPatient => f.write_str("unknown patient"),
            Self::UnknownPortion => f.write_str("unknown portion"),
            Self::AlreadyRegistered => f.write_str("identity already registered"),
            Self::KeyInUse => f.write_str("key already registered"),
            Self::UserRemoved => f.write_str("user was removed"),
            Self::RekeyMismatch => {
                f.write_str("re-encryption key does not match patient, portion or user")
            }
            Self::NotGranted => f.write_str("no active grant"),
            Self::Malformed(e) => write!(f, "malformed input: {e}"),
            Self::EscrowDisabled => f.write_str("escrow key issuance is not enabled"),
            Self::Tampered(what) => write!(f, "stored {what} failed authentication"),
            Self::AuditChainBroken { seq } => write!(f, "audit chain broken at entry {seq}"),
            Self::Store(e) => write!(f, "store: {e}"),
            Self::Unavailable => f.write_str("SRS unavailable after a store failure; reopen it"),
        }
    }
}

impl std::error::Error for SrsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for SrsError {
    fn from(e: StoreError) -> Self {
        if e.is_corrupt() {
            Self::Tampered("record")
        } else {
            Self::Store(e)
        }
    }
}

impl From<Error> for SrsError {
    fn from(e: Error) -> Self {
        Self::Malformed(e)
    }
}

/// The host's 32-byte key for sealing SRS secrets at rest. Keep it apart from
/// the database (a key manager, an HSM-wrapped file): with it and a copy of
/// the database, the re-encryption keys are readable. Zeroized on drop.
#[derive(Clone)]
pub struct StorageKey(Zeroizing<[u8; 32]>);

impl StorageKey {
    /// A fresh key from the OS RNG.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut os_rng())
    }

    /// A fresh key.
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The key's bytes, for the host's key storage. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageKey").finish_non_exhaustive()
    }
}

/// The SRS's source of time, in seconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::unix_now()
    }
}

/// A clock set by hand, for tests and simulations. Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: u64) -> Self {
        Self(Arc::new(AtomicU64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
