//! The one result type of the C ABI.

use core::cell::RefCell;
use core::ffi::{c_char, c_uint};
use std::ffi::CString;

use sesphr::srs::{Denial, SrsError};
use sesphr::store::StoreErrorKind;
use sesphr::{Error, ShareFault, ShareVerdict};

/// The result of every sesphr C function. The numbers are part of the ABI:
/// they never change and are never reused.
///
/// 0 is success; 1–99 are errors in how a function was called; 100–199 are
/// decoding and cryptographic errors; 200–299 are SRS errors; 300–399 are
/// re-encryption denials.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sesphr_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// An internal error (a Rust panic) was caught at the boundary. Nothing
    /// was written to the outputs.
    Panic = 2,
    /// A length was wrong: an input of the wrong size, or a length too large
    /// to be a real buffer.
    InvalidLength = 3,
    /// An output buffer is smaller than the value to write.
    BufferTooSmall = 4,
    /// An argument is outside its allowed values (e.g. an unknown role name).
    InvalidArgument = 5,
    /// The object cannot do this now (e.g. a stream used after it finished).
    InvalidState = 6,
    /// An options structure's `struct_size` is not a size this library
    /// knows: set it with the structure's `SESPHR_*_INIT` macro.
    StructSize = 7,
    /// A callback asked to stop (returned nonzero); what was delivered
    /// before is counted in the call's out-parameter.
    Stopped = 8,
    /// An encoding does not start with the magic bytes of its kind.
    BadMagic = 100,
    /// An encoding has an unknown format version.
    UnsupportedVersion = 101,
    /// A non-canonical ristretto255 point encoding.
    NonCanonicalPoint = 102,
    /// The identity point where a key or capsule point is required.
    IdentityPoint = 103,
    /// A non-canonical scalar encoding.
    NonCanonicalScalar = 104,
    /// A zero secret scalar.
    ZeroScalar = 105,
    /// Reserved bits set in an encoding.
    ReservedBitsSet = 106,
    /// An identity that is not 1–255 bytes of UTF-8 without control characters.
    InvalidIdentity = 107,
    /// A portion label that is not 1–64 bytes of `[a-z0-9_-]`.
    InvalidLabel = 108,
    /// A capsule proof does not verify (moved, blinded or corrupted header).
    InvalidCapsule = 109,
    /// A proof of correct re-encryption does not verify (as a threshold
    /// open's verdict: or the answer has none, and one was needed).
    InvalidReEncryptionProof = 110,
    /// A key, re-encryption key or re-capsule belongs to another portion,
    /// user or capsule.
    KeyMismatch = 111,
    /// Decryption failed (deliberately no more detail).
    DecryptionFailed = 112,
    /// A portion too large for the format.
    TooLarge = 113,
    /// An I/O error.
    Io = 114,
    /// A structured encoding (audit entry, checkpoint, segment) is malformed.
    Malformed = 115,
    /// A key derivation failed (never expected; nothing was produced).
    KeyDerivation = 116,
    /// A signature or proof of possession does not verify (a signed grant,
    /// revocation, refusal, registration or receipt).
    InvalidSignature = 117,
    /// A threshold outside `2 <= t <= n <= 255`.
    InvalidThreshold = 118,
    /// A re-encryption key share does not match its commitments, or its
    /// node index is outside `1..=n`; as a threshold open's verdict, an
    /// answer whose index is outside `1..=n` or not its sender's.
    InvalidShare = 119,
    /// Two shares with the same node index; as a threshold open's verdict,
    /// a copy of an answer already counted.
    DuplicateShare = 120,
    /// Fewer valid shares than the threshold (each answer's verdict is in
    /// the detail and in the verdict array).
    TooFewShares = 121,
    /// Shares of different grants or capsules, or a whole re-capsule where
    /// a share is required.
    ShareMismatch = 122,
    /// Share commitments that are not this user's grant of this portion.
    InvalidCommitments = 123,
    /// No longer returned: a threshold open that cannot go on returns
    /// `TOO_FEW_SHARES` with every answer's verdict. The number stays
    /// reserved.
    BadShares = 124,
    /// A Merkle proof of the audit log does not verify.
    InvalidLogProof = 125,
    /// A role name that is not 1-64 bytes of `[a-z0-9_-]`.
    InvalidRole = 126,
    /// A key backup whose check value (binary) or Bech32m checksum (text)
    /// fails: corrupted or mistyped; nothing was restored.
    BadChecksum = 127,
    /// A hybrid (post-quantum) portion needs an ML-KEM-768 key or stanza
    /// that was not given.
    PqKeyMissing = 128,
    /// No such user.
    UnknownUser = 200,
    /// No such patient.
    UnknownPatient = 201,
    /// No such portion (label, epoch) for the patient.
    UnknownPortion = 202,
    /// The identity is already registered.
    AlreadyRegistered = 203,
    /// The key is already registered.
    KeyInUse = 204,
    /// The user was removed.
    UserRemoved = 205,
    /// The re-encryption key is not from this patient's portion to this user.
    ReKeyMismatch = 206,
    /// No active grant to revoke.
    NotGranted = 207,
    /// Escrow key issuance is not enabled on this SRS.
    EscrowDisabled = 208,
    /// Stored data failed authentication (or the storage key is wrong).
    Tampered = 209,
    /// The audit chain is broken.
    AuditChainBroken = 210,
    /// The store failed.
    Store = 211,
    /// The SRS refuses changes after a store failure; reopen it.
    Unavailable = 212,
    /// Another SRS holds the store (a second open of one SQLite file).
    StoreLocked = 213,
    /// The location is not durable (`""`, `":memory:"`).
    StoreNotDurable = 214,
    /// The store was written by a version this one does not read.
    StoreVersion = 215,
    /// The store is older than a checkpoint the host kept (rolled back).
    RolledBack = 216,
    /// The store's history does not contain a checkpoint the host kept.
    Diverged = 217,
    /// A checkpoint is not signed by this SRS.
    InvalidCheckpoint = 218,
    /// The registry is full.
    Full = 219,
    /// The database connection was lost, refused, or a statement timed out
    /// (a failover, a restart, a terminated backend). Nothing of the call
    /// took effect unless the connection dropped during the final commit;
    /// the next call reconnects.
    StoreConnection = 220,
    /// A signed object is a replay, or older than the last one accepted.
    Replayed = 221,
    /// The patient has no consent key registered.
    NoConsentKey = 222,
    /// No such access request.
    UnknownRequest = 223,
    /// The access request was answered already.
    RequestAnswered = 224,
    /// A break-glass grant names a role the user does not hold.
    RoleMismatch = 225,
    /// An audit entry's consent evidence does not verify.
    InvalidConsent = 226,
    /// A signed grant is older than the SRS files (`grant_max_age`).
    GrantTooOld = 227,
    /// A signed grant whose expiry is already past when it is filed.
    GrantExpired = 228,
    /// Denied: the user is not registered, or was removed.
    DeniedNotRegistered = 300,
    /// Denied: no grant for this portion.
    DeniedNotGranted = 301,
    /// Denied: the grant was revoked.
    DeniedRevoked = 302,
    /// Denied: the grant expired.
    DeniedExpired = 303,
    /// Denied: the record predates the grant's scope.
    DeniedOutOfScope = 304,
    /// Denied: the capsule does not verify.
    DeniedInvalidCapsule = 305,
    /// Denied: a break-glass grant used without purpose emergency and a
    /// justification.
    DeniedEmergencyOnly = 306,
    /// Denied: a hybrid (post-quantum) header, and no ML-KEM key registered
    /// for the user.
    DeniedNoPqKey = 307,
    /// Denied: the user's registered ML-KEM key is not the one the
    /// patient's grant names.
    DeniedPqKeyNotGranted = 308,
}

thread_local! {
    /// The detail of the last error on this thread.
    static DETAIL: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the detail of an error about to be returned on this thread.
pub(crate) fn set_detail(message: &str) {
    let clean: Vec<u8> = message.bytes().filter(|&b| b != 0).collect();
    DETAIL.with(|d| *d.borrow_mut() = CString::new(clean).unwrap_or_default());
}

/// Forgets the last detail (at the start of every call).
pub(crate) fn clear_detail() {
    DETAIL.with(|d| *d.borrow_mut() = CString::default());
}

/// Whether a detail was recorded since the last clear.
pub(crate) fn has_detail() -> bool {
    DETAIL.with(|d| !d.borrow().is_empty())
}

/// Why the last sesphr call on this thread failed, in more words than its
/// result code: e.g. which file a store failure concerns and what the system
/// said. A NUL-terminated string owned by the library, valid until the next
/// sesphr call on this thread; "" after a call that succeeded. Never NULL;
/// never free it. Holds no secret.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_last_error_detail() -> *const c_char {
    super::panic::boundary_ptr(|| DETAIL.with(|d| d.borrow().as_ptr()))
}

impl From<&Error> for sesphr_result {
    fn from(e: &Error) -> Self {
        set_detail(&e.to_string());
        Self::of(e)
    }
}

impl sesphr_result {
    /// The code of one answer's verdict from a threshold opener: 0 for a
    /// share that was used or not needed, else the code of its fault.
    pub(crate) fn of_verdict(v: &ShareVerdict) -> Self {
        match v.fault() {
            None => Self::Ok,
            Some(ShareFault::Undecodable(e)) => Self::of(e),
            Some(ShareFault::WrongIndex { .. }) => Self::InvalidShare,
            Some(ShareFault::Duplicate) => Self::DuplicateShare,
            Some(ShareFault::BadProof | ShareFault::NoProof) => Self::InvalidReEncryptionProof,
            Some(ShareFault::BadPqShare) => Self::DecryptionFailed,
            Some(_) => Self::ShareMismatch,
        }
    }

    /// The code of an error (no detail recorded).
    fn of(e: &Error) -> Self {
        match e {
            Error::InvalidLength { .. } => Self::InvalidLength,
            Error::BadMagic { .. } => Self::BadMagic,
            Error::UnsupportedVersion { .. } => Self::UnsupportedVersion,
            Error::NonCanonicalPoint => Self::NonCanonicalPoint,
            Error::IdentityPoint => Self::IdentityPoint,
            Error::NonCanonicalScalar => Self::NonCanonicalScalar,
            Error::ZeroScalar => Self::ZeroScalar,
            Error::ReservedBitsSet => Self::ReservedBitsSet,
            Error::InvalidIdentity => Self::InvalidIdentity,
            Error::InvalidLabel => Self::InvalidLabel,
            Error::InvalidCapsule => Self::InvalidCapsule,
            Error::InvalidReEncryptionProof => Self::InvalidReEncryptionProof,
            Error::KeyMismatch => Self::KeyMismatch,
            Error::DecryptionFailed => Self::DecryptionFailed,
            Error::TooLarge => Self::TooLarge,
            Error::Io(_) => Self::Io,
            Error::Malformed { .. } => Self::Malformed,
            Error::KeyDerivation => Self::KeyDerivation,
            Error::InvalidSignature { .. } => Self::InvalidSignature,
            Error::InvalidThreshold => Self::InvalidThreshold,
            Error::InvalidShare { .. } => Self::InvalidShare,
            Error::DuplicateShare { .. } => Self::DuplicateShare,
            Error::TooFewShares { .. } => Self::TooFewShares,
            Error::ShareMismatch => Self::ShareMismatch,
            Error::InvalidCommitments => Self::InvalidCommitments,
            Error::BadShares { .. } => Self::BadShares,
            Error::InvalidLogProof { .. } => Self::InvalidLogProof,
            Error::InvalidRole => Self::InvalidRole,
            Error::BadChecksum { .. } => Self::BadChecksum,
            Error::PqKeyMissing => Self::PqKeyMissing,
            // `Error` is non-exhaustive: a kind added to the Rust crate
            // before it has a code of its own still fails (never `OK`); its
            // text is in the detail.
            _ => Self::InvalidState,
        }
    }
}

impl From<Error> for sesphr_result {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

impl From<Denial> for sesphr_result {
    fn from(d: Denial) -> Self {
        set_detail(&format!("re-encryption denied: {d}"));
        match d {
            Denial::NotRegistered => Self::DeniedNotRegistered,
            Denial::NotGranted => Self::DeniedNotGranted,
            Denial::Revoked => Self::DeniedRevoked,
            Denial::Expired => Self::DeniedExpired,
            Denial::OutOfScope => Self::DeniedOutOfScope,
            Denial::InvalidCapsule => Self::DeniedInvalidCapsule,
            Denial::EmergencyOnly => Self::DeniedEmergencyOnly,
            Denial::NoPqKey => Self::DeniedNoPqKey,
            Denial::PqKeyNotGranted => Self::DeniedPqKeyNotGranted,
            // Non-exhaustive: a reason without a code of its own is still a
            // denial (the detail names it).
            _ => Self::DeniedNotGranted,
        }
    }
}

impl From<SrsError> for sesphr_result {
    fn from(e: SrsError) -> Self {
        set_detail(&e.to_string());
        match e {
            SrsError::Denied(d) => d.into(),
            SrsError::UnknownUser => Self::UnknownUser,
            SrsError::UnknownPatient => Self::UnknownPatient,
            SrsError::UnknownPortion => Self::UnknownPortion,
            SrsError::AlreadyRegistered => Self::AlreadyRegistered,
            SrsError::KeyInUse => Self::KeyInUse,
            SrsError::UserRemoved => Self::UserRemoved,
            SrsError::ReKeyMismatch => Self::ReKeyMismatch,
            SrsError::NotGranted => Self::NotGranted,
            SrsError::Malformed(e) => e.into(),
            SrsError::EscrowDisabled => Self::EscrowDisabled,
            SrsError::Tampered(_) => Self::Tampered,
            SrsError::AuditChainBroken { .. } => Self::AuditChainBroken,
            SrsError::Store(e) => match e.kind() {
                StoreErrorKind::Locked => Self::StoreLocked,
                StoreErrorKind::NotDurable => Self::StoreNotDurable,
                StoreErrorKind::UnsupportedVersion => Self::StoreVersion,
                StoreErrorKind::Corrupt => Self::Tampered,
                StoreErrorKind::Connection => Self::StoreConnection,
                _ => Self::Store,
            },
            SrsError::Unavailable => Self::Unavailable,
            SrsError::RolledBack { .. } => Self::RolledBack,
            SrsError::Diverged { .. } => Self::Diverged,
            SrsError::InvalidCheckpoint => Self::InvalidCheckpoint,
            SrsError::StoreLocked => Self::StoreLocked,
            SrsError::Full => Self::Full,
            SrsError::Replayed => Self::Replayed,
            SrsError::NoConsentKey => Self::NoConsentKey,
            SrsError::UnknownRequest => Self::UnknownRequest,
            SrsError::RequestAnswered => Self::RequestAnswered,
            SrsError::RoleMismatch => Self::RoleMismatch,
            SrsError::InvalidConsent { .. } => Self::InvalidConsent,
            SrsError::GrantTooOld { .. } => Self::GrantTooOld,
            SrsError::GrantExpired { .. } => Self::GrantExpired,
            // Non-exhaustive: see `of` (the detail holds the text).
            _ => Self::InvalidState,
        }
    }
}

/// Every result code, for lookup and for the completeness test.
const ALL: &[sesphr_result] = {
    use sesphr_result as R;
    &[
        R::Ok,
        R::NullParameter,
        R::Panic,
        R::InvalidLength,
        R::BufferTooSmall,
        R::InvalidArgument,
        R::InvalidState,
        R::StructSize,
        R::Stopped,
        R::BadMagic,
        R::UnsupportedVersion,
        R::NonCanonicalPoint,
        R::IdentityPoint,
        R::NonCanonicalScalar,
        R::ZeroScalar,
        R::ReservedBitsSet,
        R::InvalidIdentity,
        R::InvalidLabel,
        R::InvalidCapsule,
        R::InvalidReEncryptionProof,
        R::KeyMismatch,
        R::DecryptionFailed,
        R::TooLarge,
        R::Io,
        R::Malformed,
        R::KeyDerivation,
        R::InvalidSignature,
        R::InvalidThreshold,
        R::InvalidShare,
        R::DuplicateShare,
        R::TooFewShares,
        R::ShareMismatch,
        R::InvalidCommitments,
        R::BadShares,
        R::InvalidLogProof,
        R::InvalidRole,
        R::BadChecksum,
        R::PqKeyMissing,
        R::UnknownUser,
        R::UnknownPatient,
        R::UnknownPortion,
        R::AlreadyRegistered,
        R::KeyInUse,
        R::UserRemoved,
        R::ReKeyMismatch,
        R::NotGranted,
        R::EscrowDisabled,
        R::Tampered,
        R::AuditChainBroken,
        R::Store,
        R::Unavailable,
        R::StoreLocked,
        R::StoreNotDurable,
        R::StoreVersion,
        R::RolledBack,
        R::Diverged,
        R::InvalidCheckpoint,
        R::Full,
        R::StoreConnection,
        R::Replayed,
        R::NoConsentKey,
        R::UnknownRequest,
        R::RequestAnswered,
        R::RoleMismatch,
        R::InvalidConsent,
        R::GrantTooOld,
        R::GrantExpired,
        R::DeniedNotRegistered,
        R::DeniedNotGranted,
        R::DeniedRevoked,
        R::DeniedExpired,
        R::DeniedOutOfScope,
        R::DeniedInvalidCapsule,
        R::DeniedEmergencyOnly,
        R::DeniedNoPqKey,
        R::DeniedPqKeyNotGranted,
    ]
};

/// The message of a result: the C ABI's own codes are worded here; every
/// other code takes the summary of the Rust error it stands for, so the
/// texts exist once (in `Error`, `SrsError` and `Denial`).
fn message_of(r: sesphr_result) -> &'static core::ffi::CStr {
    use sesphr::store::StoreError;
    use sesphr_result as R;
    let store = |kind| SrsError::Store(StoreError::new(kind, "")).summary();
    match r {
        R::Ok => c"success",
        R::NullParameter => c"a required pointer argument was NULL",
        R::Panic => c"internal error (caught at the library boundary)",
        R::BufferTooSmall => c"output buffer too small",
        R::InvalidArgument => c"invalid argument",
        R::InvalidState => c"invalid state for this call",
        R::StructSize => c"unknown struct_size in an options structure (use its _INIT macro)",
        R::Stopped => c"stopped by the callback",
        R::InvalidLength => Error::InvalidLength {
            what: "",
            expected: 0,
            actual: 0,
        }
        .summary(),
        R::BadMagic => Error::BadMagic { what: "" }.summary(),
        R::UnsupportedVersion => Error::UnsupportedVersion {
            what: "",
            version: 0,
        }
        .summary(),
        R::NonCanonicalPoint => Error::NonCanonicalPoint.summary(),
        R::IdentityPoint => Error::IdentityPoint.summary(),
        R::NonCanonicalScalar => Error::NonCanonicalScalar.summary(),
        R::ZeroScalar => Error::ZeroScalar.summary(),
        R::ReservedBitsSet => Error::ReservedBitsSet.summary(),
        R::InvalidIdentity => Error::InvalidIdentity.summary(),
        R::InvalidLabel => Error::InvalidLabel.summary(),
        R::InvalidCapsule => Error::InvalidCapsule.summary(),
        R::InvalidReEncryptionProof => Error::InvalidReEncryptionProof.summary(),
        R::KeyMismatch => Error::KeyMismatch.summary(),
        R::DecryptionFailed => Error::DecryptionFailed.summary(),
        R::TooLarge => Error::TooLarge.summary(),
        R::Io => Error::Io(std::io::Error::other("")).summary(),
        R::Malformed => Error::Malformed { what: "" }.summary(),
        R::KeyDerivation => Error::KeyDerivation.summary(),
        R::InvalidSignature => Error::InvalidSignature { what: "" }.summary(),
        R::InvalidThreshold => Error::InvalidThreshold.summary(),
        R::InvalidShare => Error::InvalidShare { index: 0 }.summary(),
        R::DuplicateShare => Error::DuplicateShare { index: 0 }.summary(),
        R::TooFewShares => Error::TooFewShares {
            needed: 0,
            valid: 0,
            verdicts: Vec::new(),
        }
        .summary(),
        R::ShareMismatch => Error::ShareMismatch.summary(),
        R::InvalidCommitments => Error::InvalidCommitments.summary(),
        R::BadShares => Error::BadShares { nodes: Vec::new() }.summary(),
        R::InvalidLogProof => Error::InvalidLogProof { what: "" }.summary(),
        R::InvalidRole => Error::InvalidRole.summary(),
        R::BadChecksum => Error::BadChecksum { what: "" }.summary(),
        R::PqKeyMissing => Error::PqKeyMissing.summary(),
        R::UnknownUser => SrsError::UnknownUser.summary(),
        R::UnknownPatient => SrsError::UnknownPatient.summary(),
        R::UnknownPortion => SrsError::UnknownPortion.summary(),
        R::AlreadyRegistered => SrsError::AlreadyRegistered.summary(),
        R::KeyInUse => SrsError::KeyInUse.summary(),
        R::UserRemoved => SrsError::UserRemoved.summary(),
        R::ReKeyMismatch => SrsError::ReKeyMismatch.summary(),
        R::NotGranted => SrsError::NotGranted.summary(),
        R::EscrowDisabled => SrsError::EscrowDisabled.summary(),
        R::Tampered => SrsError::Tampered("").summary(),
        R::AuditChainBroken => SrsError::AuditChainBroken { seq: 0 }.summary(),
        R::Store => store(StoreErrorKind::Io),
        R::Unavailable => SrsError::Unavailable.summary(),
        R::StoreLocked => SrsError::StoreLocked.summary(),
        R::StoreNotDurable => store(StoreErrorKind::NotDurable),
        R::StoreVersion => store(StoreErrorKind::UnsupportedVersion),
        R::RolledBack => SrsError::RolledBack {
            store_seq: 0,
            checkpoint_seq: 0,
        }
        .summary(),
        R::Diverged => SrsError::Diverged { checkpoint_seq: 0 }.summary(),
        R::InvalidCheckpoint => SrsError::InvalidCheckpoint.summary(),
        R::Full => SrsError::Full.summary(),
        R::StoreConnection => store(StoreErrorKind::Connection),
        R::Replayed => SrsError::Replayed.summary(),
        R::NoConsentKey => SrsError::NoConsentKey.summary(),
        R::UnknownRequest => SrsError::UnknownRequest.summary(),
        R::RequestAnswered => SrsError::RequestAnswered.summary(),
        R::RoleMismatch => SrsError::RoleMismatch.summary(),
        R::InvalidConsent => SrsError::InvalidConsent { seq: 0 }.summary(),
        R::GrantTooOld => SrsError::GrantTooOld {
            issued_at: 0,
            max_age: 0,
        }
        .summary(),
        R::GrantExpired => SrsError::GrantExpired { expiry: 0, now: 0 }.summary(),
        R::DeniedNotRegistered => Denial::NotRegistered.summary(),
        R::DeniedNotGranted => Denial::NotGranted.summary(),
        R::DeniedRevoked => Denial::Revoked.summary(),
        R::DeniedExpired => Denial::Expired.summary(),
        R::DeniedOutOfScope => Denial::OutOfScope.summary(),
        R::DeniedInvalidCapsule => Denial::InvalidCapsule.summary(),
        R::DeniedEmergencyOnly => Denial::EmergencyOnly.summary(),
        R::DeniedNoPqKey => Denial::NoPqKey.summary(),
        R::DeniedPqKeyNotGranted => Denial::PqKeyNotGranted.summary(),
    }
}

/// A static, NUL-terminated English message for a result code. Takes a plain
/// unsigned int, so any value is safe to pass; unknown codes get
/// "unknown result code". Never returns NULL; never free the result.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_result_message(result: c_uint) -> *const c_char {
    super::panic::boundary_ptr(|| message_c(result).as_ptr())
}

fn message_c(result: c_uint) -> &'static core::ffi::CStr {
    ALL.iter()
        .find(|r| **r as u32 == result)
        .map_or(c"unknown result code", |r| message_of(*r))
}

/// The message of a result code.
pub(crate) fn message(r: sesphr_result) -> &'static str {
    message_c(r as c_uint).to_str().unwrap_or_default()
}

/// Runs `f`; its error, or a caught panic, becomes the result code.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), sesphr_result>) -> sesphr_result {
    // Unwind safety: on a panic nothing is written to the caller's outputs
    // (they are written last, after everything that can fail), and the SRS
    // keeps its state consistent under a poisoned lock (see `srs`).
    clear_detail();
    let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => sesphr_result::Ok,
        Ok(Err(e)) => e,
        Err(_) => sesphr_result::Panic,
    };
    if r != sesphr_result::Ok && !has_detail() {
        set_detail(message(r));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        #[allow(clippy::panic)]
        let r = boundary(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(r, sesphr_result::Panic);
        assert_eq!(
            boundary(|| Err(sesphr_result::KeyMismatch)),
            sesphr_result::KeyMismatch
        );
        assert_eq!(boundary(|| Ok(())), sesphr_result::Ok);
    }

    #[test]
    fn every_code_has_a_distinct_message() {
        let mut codes: Vec<u32> = ALL.iter().map(|r| *r as u32).collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n);
        assert_eq!(n, 76);
        // Every code has its own text.
        let mut texts: Vec<&core::ffi::CStr> = ALL.iter().map(|r| message_of(*r)).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), n);
        let unknown = sesphr_result_message(9999);
        // SAFETY: the function returns a static NUL-terminated string.
        let s = unsafe { core::ffi::CStr::from_ptr(unknown) };
        assert_eq!(s.to_bytes(), b"unknown result code");
    }
}
