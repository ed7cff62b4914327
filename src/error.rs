//! The one error type of the cryptographic core.

use core::fmt;

/// What went wrong in a sesphr operation.
///
/// Decoding errors say precisely what was malformed, because encodings are
/// public. Decryption says only [`Error::DecryptionFailed`], whatever the
/// reason, so that a caller (or an attacker feeding ciphertexts) learns no
/// more than "this did not open".
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An encoding had the wrong length.
    InvalidLength {
        /// The kind of object being decoded.
        what: &'static str,
        /// The length the format requires (the minimum, for variable-length objects).
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// An encoding did not start with the magic bytes of its kind.
    BadMagic {
        /// The kind of object being decoded.
        what: &'static str,
    },
    /// An encoding carried a format version this library does not know.
    UnsupportedVersion {
        /// The kind of object being decoded.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A 32-byte string is not the canonical encoding of a ristretto255 point.
    NonCanonicalPoint,
    /// The identity point was given where a key or capsule point is required.
    IdentityPoint,
    /// A 32-byte string is not a canonical scalar (it is not below the group order).
    NonCanonicalScalar,
    /// A secret scalar was zero.
    ZeroScalar,
    /// A reserved field (flag bits, padding) was not zero.
    ReservedBitsSet,
    /// An identity is not 1–255 bytes of UTF-8 without control characters.
    InvalidIdentity,
    /// A portion label is not 1–64 bytes of `[a-z0-9_-]`.
    InvalidLabel,
    /// A capsule's proof of knowledge does not verify against its context:
    /// it was corrupted, moved to another record, or blinded.
    InvalidCapsule,
    /// A proof of correct re-encryption does not verify: the re-encryption
    /// server returned a wrong result.
    InvalidReEncryptionProof,
    /// A key, re-encryption key or re-capsule belongs to another portion, user,
    /// or capsule than the one it was used with.
    KeyMismatch,
    /// Decryption failed. Deliberately says nothing more.
    DecryptionFailed,
    /// A portion is too large for the format (more than 2^88 chunks).
    TooLarge,
    /// An I/O error from a reader or writer given to a streaming function.
    Io(std::io::Error),
    /// A key derivation failed. Never expected (HKDF-SHA-256 with a 32-byte
    /// output cannot fail); reported instead of going on with a weak key.
    KeyDerivation,
    /// A structured encoding (an audit entry, a checkpoint) does not follow
    /// its format.
    Malformed {
        /// The kind of object being decoded.
        what: &'static str,
    },
    /// A signature or proof of possession does not verify under the key it
    /// names (a signed grant, revocation, refusal, registration or receipt).
    InvalidSignature {
        /// The kind of object whose signature failed.
        what: &'static str,
    },
    /// A threshold outside `2 <= t <= n <= 255`.
    InvalidThreshold,
    /// A re-encryption key share does not match its commitments, or its
    /// index is outside `1..=n`.
    InvalidShare {
        /// The share's node index.
        index: u8,
    },
    /// Two shares with the same node index were given to combine.
    DuplicateShare {
        /// The repeated node index.
        index: u8,
    },
    /// Fewer than `t` valid shares remain to combine: each answer that was
    /// set aside is in `verdicts`, with its reason.
    TooFewShares {
        /// The threshold `t`.
        needed: u8,
        /// How many nodes gave a share that was not set aside.
        valid: u8,
        /// One verdict per answer given, in the order given.
        verdicts: Vec<ShareVerdict>,
    },
    /// Shares (or a share and the commitments) of different grants or
    /// capsules, or a whole re-capsule where a share is required.
    ShareMismatch,
    /// Share commitments whose `C_0` is not the delegatee's own
    /// `d⁻¹·X_{P,c}`: not a grant of this portion to this user.
    InvalidCommitments,
    /// No longer returned (a threshold open that cannot go on returns
    /// [`Error::TooFewShares`] with every share's verdict); kept so that its
    /// C code stays reserved.
    BadShares {
        /// The node indices whose shares are wrong.
        nodes: Vec<u8>,
    },
    /// A Merkle inclusion or consistency proof of the audit log does not
    /// verify, or does not fit the sizes it names.
    InvalidLogProof {
        /// What failed.
        what: &'static str,
    },
    /// A role name that is not 1–64 bytes of `[a-z0-9_-]` (the rule of
    /// portion labels: no look-alikes in names that decide access).
    InvalidRole,
    /// A key backup whose check value does not match (binary) or whose
    /// Bech32m checksum fails (text): corrupted or mistyped. Nothing was
    /// restored.
    BadChecksum {
        /// The kind of backup.
        what: &'static str,
    },
    /// A hybrid (post-quantum) header needs an ML-KEM-768 key or stanza that
    /// was not given: a user key without its post-quantum part, a
    /// re-capsule without the re-wrapped secret, an SRS without its
    /// post-quantum key, or a threshold split (not yet hybrid).
    PqKeyMissing,
}

impl Error {
    /// A stable name for this kind of error, in snake case
    /// (`"decryption_failed"`, `"invalid_length"`, …): what the Python and
    /// WebAssembly bindings expose as `kind`. Never changes for a kind.
    ///
    /// ```
    /// assert_eq!(sesphr::Error::DecryptionFailed.kind(), "decryption_failed");
    /// assert_eq!(sesphr::Error::InvalidReEncryptionProof.kind(), "invalid_re_encryption_proof");
    /// ```
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::InvalidLength { .. } => "invalid_length",
            Self::BadMagic { .. } => "bad_magic",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::NonCanonicalPoint => "non_canonical_point",
            Self::IdentityPoint => "identity_point",
            Self::NonCanonicalScalar => "non_canonical_scalar",
            Self::ZeroScalar => "zero_scalar",
            Self::ReservedBitsSet => "reserved_bits_set",
            Self::InvalidIdentity => "invalid_identity",
            Self::InvalidLabel => "invalid_label",
            Self::InvalidCapsule => "invalid_capsule",
            Self::InvalidReEncryptionProof => "invalid_re_encryption_proof",
            Self::KeyMismatch => "key_mismatch",
            Self::DecryptionFailed => "decryption_failed",
            Self::TooLarge => "too_large",
            Self::Io(_) => "io",
            Self::KeyDerivation => "key_derivation",
            Self::Malformed { .. } => "malformed",
            Self::InvalidSignature { .. } => "invalid_signature",
            Self::InvalidThreshold => "invalid_threshold",
            Self::InvalidShare { .. } => "invalid_share",
            Self::DuplicateShare { .. } => "duplicate_share",
            Self::TooFewShares { .. } => "too_few_shares",
            Self::ShareMismatch => "share_mismatch",
            Self::InvalidCommitments => "invalid_commitments",
            Self::BadShares { .. } => "bad_shares",
            Self::InvalidLogProof { .. } => "invalid_log_proof",
            Self::InvalidRole => "invalid_role",
            Self::BadChecksum { .. } => "bad_checksum",
            Self::PqKeyMissing => "pq_key_missing",
        }
    }
}

impl Error {
    /// The one-line summary of this kind of error: the text of the error
    /// table shared by `Display` and the C ABI's `sesphr_result_message`.
    pub const fn summary(&self) -> &'static core::ffi::CStr {
        match self {
            Self::InvalidLength { .. } => c"invalid length",
            Self::BadMagic { .. } => c"bad magic bytes",
            Self::UnsupportedVersion { .. } => c"unsupported format version",
            Self::NonCanonicalPoint => c"non-canonical point encoding",
            Self::IdentityPoint => c"identity point where a key or capsule point is required",
            Self::NonCanonicalScalar => c"non-canonical scalar encoding",
            Self::ZeroScalar => c"secret scalar is zero",
            Self::ReservedBitsSet => c"reserved bits are set",
            Self::InvalidIdentity => {
                c"identity must be 1-255 bytes of UTF-8 without control characters"
            }
            Self::InvalidLabel => c"portion label must be 1-64 bytes of [a-z0-9_-]",
            Self::InvalidCapsule => c"capsule proof does not verify",
            Self::InvalidReEncryptionProof => c"re-encryption proof does not verify",
            Self::KeyMismatch => c"key does not belong to this portion, user or capsule",
            Self::DecryptionFailed => c"decryption failed",
            Self::TooLarge => c"portion too large for the format",
            Self::Io(_) => c"I/O error",
            Self::Malformed { .. } => c"malformed encoding",
            Self::KeyDerivation => c"key derivation failed",
            Self::InvalidSignature { .. } => c"signature or proof of possession does not verify",
            Self::InvalidThreshold => c"threshold must satisfy 2 <= t <= n <= 255",
            Self::InvalidShare { .. } => c"key share does not match its commitments",
            Self::DuplicateShare { .. } => c"two shares from the same node",
            Self::TooFewShares { .. } => c"fewer valid shares than the threshold",
            Self::ShareMismatch => c"shares of different grants or capsules",
            Self::InvalidCommitments => {
                c"share commitments are not this user's grant of this portion"
            }
            Self::BadShares { .. } => c"shares failed their proofs and too few good ones remain",
            Self::InvalidLogProof { .. } => c"audit log proof does not verify",
            Self::InvalidRole => c"invalid role name (1-64 bytes of [a-z0-9_-])",
            Self::BadChecksum { .. } => c"key backup is corrupted or mistyped (check value)",
            Self::PqKeyMissing => {
                c"hybrid (post-quantum) portion needs an ML-KEM key or stanza that was not given"
            }
        }
    }
}

/// Why a threshold opener set one node's answer aside.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShareFault {
    /// The bytes are not a re-capsule (the decoding error says why).
    Undecodable(Error),
    /// A whole re-capsule, not a node's share.
    NotAShare,
    /// Its node index is outside `1..=n`, or is not the node that sent it.
    WrongIndex {
        /// The index the share carries.
        index: u8,
    },
    /// Made for another capsule or another grant (`E`, `V`, `s` or `X_e`
    /// differ from the header's and the grant's).
    OtherCapsule,
    /// A second copy of an answer already counted for the same node.
    Duplicate,
    /// Its proof of re-encryption does not verify against the node's
    /// verification key `R_i` (a wrong `E'_i`, or a proof against other
    /// commitments).
    BadProof,
    /// It carries no proof, and one was needed to judge it.
    NoProof,
    /// For a hybrid header: its re-wrapped share of the post-quantum secret
    /// `σ` is missing, does not open with the user's ML-KEM-768 key, or is
    /// not the share the header commits to for that node.
    BadPqShare,
}

impl ShareFault {
    /// Whether this fault shows that the node answered wrongly (a copy the
    /// host passed twice does not; a missing proof does only when proofs
    /// were required).
    pub(crate) fn names_node(&self, proofs_required: bool) -> bool {
        match self {
            Self::Duplicate => false,
            Self::NoProof => proofs_required,
            _ => true,
        }
    }
}

impl fmt::Display for ShareFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Undecodable(e) => write!(f, "undecodable ({e})"),
            Self::NotAShare => f.write_str("a whole re-capsule, not a share"),
            Self::WrongIndex { index } => write!(f, "wrong node index {index}"),
            Self::OtherCapsule => f.write_str("made for another capsule or grant"),
            Self::Duplicate => f.write_str("a copy of an answer already counted"),
            Self::BadProof => f.write_str("re-encryption proof does not verify"),
            Self::NoProof => f.write_str("no proof to judge it by"),
            Self::BadPqShare => {
                f.write_str("post-quantum share missing or not the one committed to")
            }
        }
    }
}

/// What became of one answer given to a threshold opener.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShareStatus {
    /// Combined into the key that opened the portion.
    Used,
    /// Well formed and not needed; not judged further.
    Unused,
    /// Its proof verified; not needed.
    Proven,
    /// Set aside.
    Rejected(ShareFault),
}

/// The verdict on one answer given to a threshold opener.
#[derive(Debug)]
pub struct ShareVerdict {
    pub(crate) position: usize,
    pub(crate) node: Option<u8>,
    pub(crate) status: ShareStatus,
}

impl ShareVerdict {
    /// Its position in the list of answers given (0-based).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The node it is attributed to: the node that sent it where the
    /// caller said so, else the index the share carries (if in `1..=n`).
    pub fn node(&self) -> Option<u8> {
        self.node
    }

    /// What became of it.
    pub fn status(&self) -> &ShareStatus {
        &self.status
    }

    /// Why it was set aside, if it was.
    pub fn fault(&self) -> Option<&ShareFault> {
        match &self.status {
            ShareStatus::Rejected(f) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for ShareVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "share {}", self.position)?;
        if let Some(n) = self.node {
            write!(f, " (node {n})")?;
        }
        Ok(())
    }
}

/// A summary as text (the table holds only ASCII).
pub(crate) fn text(s: &'static core::ffi::CStr) -> &'static str {
    s.to_str().unwrap_or("error")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(text(self.summary()))?;
        match self {
            Self::InvalidLength {
                what,
                expected,
                actual,
            } => write!(f, ": {what}, {actual} bytes (expected {expected})"),
            Self::BadMagic { what }
            | Self::Malformed { what }
            | Self::InvalidSignature { what }
            | Self::BadChecksum { what } => {
                write!(f, ": {what}")
            }
            Self::UnsupportedVersion { what, version } => write!(f, ": {what}, version {version}"),
            Self::Io(e) => write!(f, ": {e}"),
            Self::InvalidShare { index } | Self::DuplicateShare { index } => {
                write!(f, ": node {index}")
            }
            Self::TooFewShares {
                needed,
                valid,
                verdicts,
            } => {
                write!(f, ": {valid} valid of {needed} needed")?;
                for v in verdicts {
                    if let ShareStatus::Rejected(fault) = v.status() {
                        write!(f, "; {v}: {fault}")?;
                    }
                }
                Ok(())
            }
            Self::BadShares { nodes } => write!(f, ": nodes {nodes:?}"),
            Self::InvalidLogProof { what } => write!(f, ": {what}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // A streaming reader reports our own errors wrapped in io::Error;
        // unwrap them so callers match on one type.
        match e.downcast::<Error>() {
            Ok(inner) => inner,
            Err(e) => Self::Io(e),
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(io) => io,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
