//! The SRS's vocabulary, shared by the server ([`crate::srs`]) and its stores
//! ([`crate::store`]): roles, scopes, denials, the grant key and terms, user
//! records, audit entries and checkpoints. Nothing here does I/O or holds a
//! secret.

use core::fmt;
use core::str::FromStr;

use crate::encoding::{Reader, hex};
use crate::error::Error;
use crate::hash::encode_parts;
use crate::ids::{Identity, PortionLabel, RecordId};
use crate::keys::PublicKey;

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

    /// The one-line summary (shared with the C ABI's messages).
    pub(crate) const fn summary(&self) -> &'static core::ffi::CStr {
        match self {
            Self::NotRegistered => c"denied: user not registered",
            Self::NotGranted => c"denied: not granted",
            Self::Revoked => c"denied: grant revoked",
            Self::Expired => c"denied: grant expired",
            Self::OutOfScope => c"denied: record outside the grant's scope",
            Self::InvalidCapsule => c"denied: invalid capsule",
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

/// What an audit entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// A user was registered.
    RegisterUser,
    /// A user was removed (their grants are revoked in entries of their own).
    RemoveUser,
    /// A patient was registered.
    RegisterPatient,
    /// A portion key was registered for a patient.
    AddPortion,
    /// Escrow keys were issued for an identity.
    IssueKeys,
    /// A grant was made or replaced.
    Grant,
    /// A grant was revoked.
    Revoke,
    /// A re-encryption was asked for (the outcome says whether it was done).
    ReEncrypt,
}

impl AuditAction {
    /// A short stable name, as exported.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RegisterUser => "register_user",
            Self::RemoveUser => "remove_user",
            Self::RegisterPatient => "register_patient",
            Self::AddPortion => "add_portion",
            Self::IssueKeys => "issue_keys",
            Self::Grant => "grant",
            Self::Revoke => "revoke",
            Self::ReEncrypt => "reencrypt",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::RegisterUser => 1,
            Self::RemoveUser => 2,
            Self::RegisterPatient => 3,
            Self::AddPortion => 4,
            Self::IssueKeys => 5,
            Self::Grant => 6,
            Self::Revoke => 7,
            Self::ReEncrypt => 8,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::RegisterUser,
            2 => Self::RemoveUser,
            3 => Self::RegisterPatient,
            4 => Self::AddPortion,
            5 => Self::IssueKeys,
            6 => Self::Grant,
            7 => Self::Revoke,
            8 => Self::ReEncrypt,
            _ => return None,
        })
    }
}

/// Whether the audited action was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused.
    Denied(Denial),
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Denied(d) => write!(f, "denied:{d}"),
        }
    }
}

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// When (seconds since the Unix epoch, by the SRS's clock).
    pub time: u64,
    /// On whose behalf: the patient for grants and revocations, the user for
    /// re-encryptions, `srs` for registrations the host made. The host
    /// authenticates callers; the SRS records what it was told.
    pub actor: String,
    /// What happened.
    pub action: AuditAction,
    /// The patient concerned, if any.
    pub patient: Option<Identity>,
    /// The portion label concerned, if any.
    pub label: Option<PortionLabel>,
    /// The user concerned, if any.
    pub user: Option<Identity>,
    /// The record concerned (re-encryptions), if any.
    pub record_id: Option<RecordId>,
    /// Done or refused.
    pub outcome: AuditOutcome,
    /// Free-form details (scope and expiry of a grant, a role, an epoch).
    pub detail: String,
}

const ENTRY_VERSION: u8 = 1;

fn put_opt(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            encode_parts(out, &[b]);
        }
    }
}

impl AuditEntry {
    /// The canonical encoding that the chain hashes:
    /// `version ‖ seq ‖ time ‖ action ‖ actor ‖ patient? ‖ label? ‖ user? ‖
    /// record id? ‖ outcome ‖ detail`, integers big-endian, strings
    /// length-prefixed (8 bytes), options behind a 0/1 byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(128);
        v.push(ENTRY_VERSION);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.time.to_be_bytes());
        v.push(self.action.code());
        encode_parts(&mut v, &[self.actor.as_bytes()]);
        put_opt(&mut v, self.patient.as_ref().map(Identity::as_bytes));
        put_opt(&mut v, self.label.as_ref().map(PortionLabel::as_bytes));
        put_opt(&mut v, self.user.as_ref().map(Identity::as_bytes));
        put_opt(&mut v, self.record_id.as_ref().map(|r| &r.as_bytes()[..]));
        v.push(match self.outcome {
            AuditOutcome::Ok => 0,
            AuditOutcome::Denied(d) => d.code(),
        });
        encode_parts(&mut v, &[self.detail.as_bytes()]);
        v
    }

    /// Decodes [`AuditEntry::to_bytes`].
    ///
    /// # Errors
    /// [`Error::Malformed`] if the bytes are not a valid entry.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        decode_entry(bytes).ok_or(Error::Malformed {
            what: "audit entry",
        })
    }

    /// The entry as one line of JSON, with its chain hashes.
    pub fn to_json(&self, prev_hash: &[u8; 32], hash: &[u8; 32]) -> String {
        fn opt(v: Option<&str>) -> String {
            v.map_or_else(|| "null".to_owned(), json_string)
        }
        format!(
            "{{\"seq\":{},\"time\":{},\"actor\":{},\"action\":\"{}\",\"patient\":{},\"label\":{},\"user\":{},\"record_id\":{},\"outcome\":\"{}\",\"detail\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
            self.seq,
            self.time,
            json_string(&self.actor),
            self.action.as_str(),
            opt(self.patient.as_ref().map(Identity::as_str)),
            opt(self.label.as_ref().map(PortionLabel::as_str)),
            opt(self.user.as_ref().map(Identity::as_str)),
            self.record_id
                .map_or_else(|| "null".to_owned(), |r| format!("\"{r}\"")),
            self.outcome,
            json_string(&self.detail),
            hex(prev_hash),
            hex(hash),
        )
    }
}

fn decode_entry(bytes: &[u8]) -> Option<AuditEntry> {
    let mut r = Reader::unframed("audit entry", bytes);
    if r.byte().ok()? != ENTRY_VERSION {
        return None;
    }
    let seq = r.u64().ok()?;
    let time = r.u64().ok()?;
    let action = AuditAction::from_code(r.byte().ok()?)?;
    let string = |r: &mut Reader<'_>| -> Option<String> {
        let n = usize::try_from(r.u64().ok()?).ok()?;
        String::from_utf8(r.take(n).ok()?.to_vec()).ok()
    };
    let actor = string(&mut r)?;
    let opt = |r: &mut Reader<'_>| -> Option<Option<Vec<u8>>> {
        match r.byte().ok()? {
            0 => Some(None),
            1 => {
                let n = usize::try_from(r.u64().ok()?).ok()?;
                Some(Some(r.take(n).ok()?.to_vec()))
            }
            _ => None,
        }
    };
    let patient = match opt(&mut r)? {
        Some(b) => Some(Identity::from_utf8(&b).ok()?),
        None => None,
    };
    let label = match opt(&mut r)? {
        Some(b) => Some(PortionLabel::from_bytes(&b).ok()?),
        None => None,
    };
    let user = match opt(&mut r)? {
        Some(b) => Some(Identity::from_utf8(&b).ok()?),
        None => None,
    };
    let record_id = match opt(&mut r)? {
        Some(b) => Some(RecordId::from_slice(&b).ok()?),
        None => None,
    };
    let outcome = match r.byte().ok()? {
        0 => AuditOutcome::Ok,
        c => AuditOutcome::Denied(Denial::from_code(c)?),
    };
    let detail = string(&mut r)?;
    r.finish().ok()?;
    Some(AuditEntry {
        seq,
        time,
        actor,
        action,
        patient,
        label,
        user,
        record_id,
        outcome,
        detail,
    })
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    use core::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The key of a grant: which patient's portion (label and key epoch) is
/// shared with which user. One grant per key; granting again replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantKey {
    /// The patient.
    pub patient: Identity,
    /// The portion label.
    pub label: PortionLabel,
    /// The key epoch of the portion key.
    pub epoch: u32,
    /// The user.
    pub user: Identity,
}

impl GrantKey {
    /// The canonical encoding: `patient ‖ label ‖ epoch ‖ user`, strings
    /// length-prefixed (8 bytes), the epoch big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v =
            Vec::with_capacity(48 + self.patient.as_bytes().len() + self.user.as_bytes().len());
        encode_parts(
            &mut v,
            &[
                self.patient.as_bytes(),
                self.label.as_bytes(),
                &self.epoch.to_be_bytes(),
                self.user.as_bytes(),
            ],
        );
        v
    }

    /// Decodes [`GrantKey::to_bytes`].
    ///
    /// # Errors
    /// [`Error::Malformed`] unless `bytes` is a canonical grant key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bad = Error::Malformed { what: "grant key" };
        let mut r = Reader::unframed("grant key", bytes);
        let patient = Identity::from_utf8(part(&mut r)?)
            .map_err(|_| Error::Malformed { what: "grant key" })?;
        let label = PortionLabel::from_bytes(part(&mut r)?)
            .map_err(|_| Error::Malformed { what: "grant key" })?;
        let epoch = u32::from_be_bytes(
            part(&mut r)?
                .try_into()
                .map_err(|_| Error::Malformed { what: "grant key" })?,
        );
        let user = Identity::from_utf8(part(&mut r)?)
            .map_err(|_| Error::Malformed { what: "grant key" })?;
        r.finish().map_err(|_| bad)?;
        Ok(Self {
            patient,
            label,
            epoch,
            user,
        })
    }
}

/// One length-prefixed part of an unframed encoding.
pub(crate) fn part<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Error> {
    let n = usize::try_from(r.u64()?).map_err(|_| Error::Malformed { what: "length" })?;
    r.take(n)
}

impl fmt::Display for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}@{} -> {}",
            self.patient.as_str(),
            self.label.as_str(),
            self.epoch,
            self.user.as_str()
        )
    }
}

/// What a grant allows: which records, until when, and since when it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrantTerms {
    /// Which records of the portion it covers.
    pub scope: Scope,
    /// When it stops working (seconds since the Unix epoch), if ever.
    pub expiry: Option<u64>,
    /// When it was granted.
    pub granted_at: u64,
}

impl GrantTerms {
    /// Whether a record created at `created_at` may be re-encrypted at `now`.
    pub(crate) fn check(&self, now: u64, created_at: u64) -> Result<(), Denial> {
        if self.expiry.is_some_and(|e| now >= e) {
            return Err(Denial::Expired);
        }
        if !self.scope.covers(created_at) {
            return Err(Denial::OutOfScope);
        }
        Ok(())
    }
}

impl fmt::Display for GrantTerms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scope={} expiry=", self.scope)?;
        match self.expiry {
            Some(e) => write!(f, "{e}"),
            None => f.write_str("none"),
        }
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

/// A signed checkpoint of the SRS's state: the audit chain up to `seq`
/// (its hash) and the registry as it was then (its keyed digest), signed by
/// the SRS's Ed25519 key. Hosts keep checkpoints outside the database and
/// hand the latest back at open, so that a database rolled back to an older
/// copy is refused.
///
/// Encoding: `"SPCP" ‖ version ‖ seq ‖ time ‖ chain hash ‖ registry digest ‖
/// signature` (149 bytes; integers big-endian). The signature is over
/// `"sesphr/v1/checkpoint" ‖` the bytes before it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number of the last audit entry it covers (0: none yet).
    pub seq: u64,
    /// When it was made (seconds since the Unix epoch, by the SRS's clock).
    pub time: u64,
    /// The chain hash of entry `seq` (the genesis hash for 0).
    pub chain_hash: [u8; 32],
    /// The keyed digest of the registry after entry `seq`.
    pub digest: [u8; 32],
    /// Ed25519 signature by the SRS.
    pub signature: [u8; 64],
}

/// cbindgen:ignore
impl Checkpoint {
    /// Length of the encoding.
    pub const LEN: usize = 5 + 8 + 8 + 32 + 32 + 64;
    const MAGIC: [u8; 4] = *b"SPCP";

    /// The bytes the signature covers (without the tag).
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let mut v = crate::encoding::frame(Self::MAGIC, Self::LEN);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.time.to_be_bytes());
        v.extend_from_slice(&self.chain_hash);
        v.extend_from_slice(&self.digest);
        v
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed_bytes();
        v.extend_from_slice(&self.signature);
        v
    }

    /// Decodes strictly (the signature is checked by the SRS, which knows
    /// the key: [`crate::srs::Srs::verify_checkpoint`]).
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::framed("checkpoint", bytes, Self::MAGIC)?;
        let seq = r.u64()?;
        let time = r.u64()?;
        let chain_hash = r.array()?;
        let digest = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            seq,
            time,
            chain_hash,
            digest,
            signature,
        })
    }
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("seq", &self.seq)
            .field("time", &self.time)
            .field("chain_hash", &hex(&self.chain_hash))
            .finish_non_exhaustive()
    }
}
