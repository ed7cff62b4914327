//! The SRS's errors, the storage key and the clock.

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::model::Denial;
use crate::rng::os_rng;
use crate::store::{StoreError, StoreErrorKind};

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
    ReKeyMismatch,
    /// An administrative call needs an active grant and there is none (a
    /// share grant's terms, an unsigned revocation). Not a denial: a user's
    /// re-encryption request without a grant is
    /// `SrsError::Denied(Denial::NotGranted)`, audited as a denial; this one
    /// is a caller's mistake and changes nothing.
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
    /// The SRS could not reach a consistent state with its store (after a
    /// failed commit it reloads the registry from the store at the next
    /// call; this says that reload failed too).
    Unavailable,
    /// The store is older than a checkpoint the host kept: the database was
    /// rolled back (restored from an older copy, or its newest part removed).
    RolledBack {
        /// The last audit entry the store holds.
        store_seq: u64,
        /// The checkpoint's sequence number.
        checkpoint_seq: u64,
    },
    /// The store's history does not contain a checkpoint the host kept: it
    /// is another database, or a rewritten one.
    Diverged {
        /// The checkpoint's sequence number.
        checkpoint_seq: u64,
    },
    /// A checkpoint's signature is not this SRS's.
    InvalidCheckpoint,
    /// Another SRS holds the store (a second open of one SQLite file).
    StoreLocked,
    /// The registry holds as many rows of a kind as it can number (2³² − 1).
    Full,
    /// A signed object (grant, revocation, refusal) is not newer than the
    /// last one the SRS accepted for the same patient, portion and user (or
    /// request): a replay, or an older object.
    Replayed,
    /// A signed grant older than the SRS files
    /// ([`SrsConfig::grant_max_age`](crate::srs::SrsConfig::grant_max_age)).
    GrantTooOld {
        /// When the patient signed it.
        issued_at: u64,
        /// The oldest a grant may be, in seconds.
        max_age: u64,
    },
    /// A signed grant whose expiry is already past (at or before the SRS's
    /// clock) when it is filed: it would serve nothing.
    GrantExpired {
        /// The grant's expiry.
        expiry: u64,
        /// The SRS's clock when it was filed.
        now: u64,
    },
    /// The patient has no consent key registered (a patient registered
    /// before signed consent existed): nothing they sign can be checked.
    NoConsentKey,
    /// No such access request.
    UnknownRequest,
    /// The access request was answered already.
    RequestAnswered,
    /// A break-glass grant names a role the user does not hold.
    RoleMismatch,
    /// An audit entry's consent evidence (a signed grant, revocation,
    /// refusal or registration) does not verify or does not match the entry.
    InvalidConsent {
        /// The entry's sequence number.
        seq: u64,
    },
}

impl SrsError {
    /// A stable name for this kind of error, in snake case (`"denied"`,
    /// `"unknown_user"`, …), as the bindings expose it; for `Malformed`, the
    /// inner error's kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(e) => e.kind(),
            Self::Denied(_) => "denied",
            Self::UnknownUser => "unknown_user",
            Self::UnknownPatient => "unknown_patient",
            Self::UnknownPortion => "unknown_portion",
            Self::AlreadyRegistered => "already_registered",
            Self::KeyInUse => "key_in_use",
            Self::UserRemoved => "user_removed",
            Self::ReKeyMismatch => "re_key_mismatch",
            Self::NotGranted => "not_granted",
            Self::EscrowDisabled => "escrow_disabled",
            Self::Tampered(_) => "tampered",
            Self::AuditChainBroken { .. } => "audit_chain_broken",
            Self::Store(_) => "store",
            Self::Unavailable => "unavailable",
            Self::RolledBack { .. } => "rolled_back",
            Self::Diverged { .. } => "diverged",
            Self::InvalidCheckpoint => "invalid_checkpoint",
            Self::StoreLocked => "store_locked",
            Self::Full => "full",
            Self::Replayed => "replayed",
            Self::GrantTooOld { .. } => "grant_too_old",
            Self::GrantExpired { .. } => "grant_expired",
            Self::NoConsentKey => "no_consent_key",
            Self::UnknownRequest => "unknown_request",
            Self::RequestAnswered => "request_answered",
            Self::RoleMismatch => "role_mismatch",
            Self::InvalidConsent { .. } => "invalid_consent",
        }
    }

    /// The one-line summary of this kind of error (shared with the C ABI's
    /// `sesphr_result_message`). A store error's summary depends on its kind.
    pub fn summary(&self) -> &'static core::ffi::CStr {
        match self {
            Self::Denied(d) => d.summary(),
            Self::UnknownUser => c"unknown user",
            Self::UnknownPatient => c"unknown patient",
            Self::UnknownPortion => c"unknown portion",
            Self::AlreadyRegistered => c"identity already registered",
            Self::KeyInUse => c"key already registered",
            Self::UserRemoved => c"user was removed",
            Self::ReKeyMismatch => c"re-encryption key does not match patient, portion or user",
            Self::NotGranted => c"no active grant",
            Self::Malformed(e) => e.summary(),
            Self::EscrowDisabled => c"escrow key issuance is not enabled",
            Self::Tampered(_) => c"stored data failed authentication",
            Self::AuditChainBroken { .. } => c"audit chain broken",
            Self::Store(e) => match e.kind() {
                StoreErrorKind::Locked => c"store is held by another SRS",
                StoreErrorKind::NotDurable => c"store location is not durable",
                StoreErrorKind::UnsupportedVersion => c"store written by an unsupported version",
                StoreErrorKind::Corrupt => c"stored data failed authentication",
                StoreErrorKind::Connection => c"database connection lost or timed out",
                _ => c"store failure",
            },
            Self::Unavailable => {
                c"SRS unavailable: its store could not be read back after a failure"
            }
            Self::RolledBack { .. } => c"store rolled back past a kept checkpoint",
            Self::Diverged { .. } => c"store history does not contain the kept checkpoint",
            Self::InvalidCheckpoint => c"checkpoint not signed by this SRS",
            Self::StoreLocked => c"store is held by another SRS",
            Self::Full => c"registry full",
            Self::Replayed => c"signed object replayed or older than the last one accepted",
            Self::GrantTooOld { .. } => c"signed grant older than the SRS accepts",
            Self::GrantExpired { .. } => c"signed grant expired before it was filed",
            Self::NoConsentKey => c"patient has no consent key registered",
            Self::UnknownRequest => c"unknown access request",
            Self::RequestAnswered => c"access request already answered",
            Self::RoleMismatch => c"user does not hold the role the grant names",
            Self::InvalidConsent { .. } => c"audit entry's consent evidence does not verify",
        }
    }
}

impl SrsError {
    /// The same error for another caller of one failed group commit (a
    /// store error keeps its kind and message).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Denied(d) => Self::Denied(*d),
            Self::UnknownUser => Self::UnknownUser,
            Self::UnknownPatient => Self::UnknownPatient,
            Self::UnknownPortion => Self::UnknownPortion,
            Self::AlreadyRegistered => Self::AlreadyRegistered,
            Self::KeyInUse => Self::KeyInUse,
            Self::UserRemoved => Self::UserRemoved,
            Self::ReKeyMismatch => Self::ReKeyMismatch,
            Self::NotGranted => Self::NotGranted,
            // Group commits fail on the store, never on a caller's input.
            Self::Malformed(_) => Self::Unavailable,
            Self::EscrowDisabled => Self::EscrowDisabled,
            Self::Tampered(w) => Self::Tampered(w),
            Self::AuditChainBroken { seq } => Self::AuditChainBroken { seq: *seq },
            Self::Store(e) => Self::Store(StoreError::new(e.kind(), e.to_string())),
            Self::Unavailable => Self::Unavailable,
            Self::RolledBack {
                store_seq,
                checkpoint_seq,
            } => Self::RolledBack {
                store_seq: *store_seq,
                checkpoint_seq: *checkpoint_seq,
            },
            Self::Diverged { checkpoint_seq } => Self::Diverged {
                checkpoint_seq: *checkpoint_seq,
            },
            Self::InvalidCheckpoint => Self::InvalidCheckpoint,
            Self::StoreLocked => Self::StoreLocked,
            Self::Full => Self::Full,
            Self::Replayed => Self::Replayed,
            Self::GrantTooOld { issued_at, max_age } => Self::GrantTooOld {
                issued_at: *issued_at,
                max_age: *max_age,
            },
            Self::GrantExpired { expiry, now } => Self::GrantExpired {
                expiry: *expiry,
                now: *now,
            },
            Self::NoConsentKey => Self::NoConsentKey,
            Self::UnknownRequest => Self::UnknownRequest,
            Self::RequestAnswered => Self::RequestAnswered,
            Self::RoleMismatch => Self::RoleMismatch,
            Self::InvalidConsent { seq } => Self::InvalidConsent { seq: *seq },
        }
    }
}

impl fmt::Display for SrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Self::Malformed(e) = self {
            // The inner error's own text says what was malformed.
            return write!(f, "malformed input: {e}");
        }
        f.write_str(crate::error::text(self.summary()))?;
        match self {
            Self::Tampered(what) => write!(f, ": {what}"),
            Self::AuditChainBroken { seq } | Self::InvalidConsent { seq } => {
                write!(f, " at entry {seq}")
            }
            Self::Store(e) => write!(f, ": {e}"),
            Self::RolledBack {
                store_seq,
                checkpoint_seq,
            } => write!(
                f,
                ": the store ends at entry {store_seq}, a kept checkpoint is at {checkpoint_seq}"
            ),
            Self::Diverged { checkpoint_seq } => write!(f, ": entry {checkpoint_seq}"),
            Self::GrantTooOld { issued_at, max_age } => write!(
                f,
                ": signed at {issued_at}, older than the {max_age} s the SRS accepts"
            ),
            Self::GrantExpired { expiry, now } => {
                write!(f, ": it expired at {expiry}, the SRS's clock says {now}")
            }
            _ => Ok(()),
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
        match e.kind() {
            StoreErrorKind::Corrupt => Self::Tampered("stored value"),
            StoreErrorKind::Locked => Self::StoreLocked,
            _ => Self::Store(e),
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
    /// Length of the key in bytes.
    pub const LEN: usize = 32;

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
