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
                crate::ids::PortionLabel::new(other).map_err(|_| Error::InvalidRole)?;
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
    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
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

/// Why a user asks for a record (HIPAA's purposes of use, plus research and
/// break-glass): travels with every re-encryption request and lands in its
/// audit entry and in the patient's accounting of disclosures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Treatment of the patient.
    Treatment,
    /// Payment for care.
    Payment,
    /// Health-care operations (quality review, audits, training).
    Operations,
    /// Research.
    Research,
    /// An emergency (break-glass): needs a justification.
    Emergency,
    /// Anything else (say what in the justification).
    Other,
}

impl Purpose {
    /// Every purpose, in code order.
    pub const ALL: [Self; 6] = [
        Self::Treatment,
        Self::Payment,
        Self::Operations,
        Self::Research,
        Self::Emergency,
        Self::Other,
    ];

    /// A short stable name, as written in the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::Payment => "payment",
            Self::Operations => "operations",
            Self::Research => "research",
            Self::Emergency => "emergency",
            Self::Other => "other",
        }
    }

    /// The purpose's code in encodings and in the C ABI (1–6).
    pub fn code(self) -> u8 {
        match self {
            Self::Treatment => 1,
            Self::Payment => 2,
            Self::Operations => 3,
            Self::Research => 4,
            Self::Emergency => 5,
            Self::Other => 6,
        }
    }

    /// The purpose of a code.
    ///
    /// # Errors
    /// [`Error::Malformed`] for any other value.
    pub fn from_code(code: u8) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|p| p.code() == code)
            .ok_or(Error::Malformed { what: "purpose" })
    }
}

impl FromStr for Purpose {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(Error::Malformed { what: "purpose" })
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A purpose of use with an optional free-text justification (required for
/// [`Purpose::Emergency`] to be served by a break-glass grant).
///
/// ```
/// use sesphr::model::{AccessReason, Purpose};
/// let routine: AccessReason = Purpose::Treatment.into();
/// let er = AccessReason::emergency("unconscious on arrival, allergy check")?;
/// assert!(routine.justification().is_none() && er.justification().is_some());
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccessReason {
    purpose: Purpose,
    justification: Option<String>,
}

impl AccessReason {
    /// Longest justification, in bytes.
    pub const MAX_JUSTIFICATION: usize = 1024;

    /// A purpose with a justification (1–1024 bytes of UTF-8 without control
    /// characters other than spaces).
    ///
    /// # Errors
    /// [`Error::Malformed`] if the justification is empty, too long or holds
    /// control characters.
    pub fn new(purpose: Purpose, justification: Option<&str>) -> Result<Self, Error> {
        let justification = justification.map(check_text).transpose()?;
        Ok(Self {
            purpose,
            justification,
        })
    }

    /// [`Purpose::Emergency`] with its justification.
    ///
    /// # Errors
    /// As [`AccessReason::new`].
    pub fn emergency(justification: &str) -> Result<Self, Error> {
        Self::new(Purpose::Emergency, Some(justification))
    }

    /// The purpose.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The justification, if any.
    pub fn justification(&self) -> Option<&str> {
        self.justification.as_deref()
    }

    /// Purpose emergency with a justification: what a break-glass grant
    /// serves.
    pub fn breaks_glass(&self) -> bool {
        self.purpose == Purpose::Emergency && self.justification.is_some()
    }
}

impl From<Purpose> for AccessReason {
    fn from(purpose: Purpose) -> Self {
        Self {
            purpose,
            justification: None,
        }
    }
}

/// Checks a free-text field (a justification, a reason): 1–1024 bytes, no
/// control characters.
pub(crate) fn check_text(s: &str) -> Result<String, Error> {
    if s.is_empty() || s.len() > AccessReason::MAX_JUSTIFICATION || s.chars().any(char::is_control)
    {
        return Err(Error::Malformed {
            what: "free text (1-1024 bytes, no control characters)",
        });
    }
    Ok(s.to_owned())
}

/// Why the SRS refused a re-encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// The user is not registered, or was removed.
    NotRegistered,
    /// The user has no grant for this portion (a re-encryption request,
    /// refused and audited; compare `SrsError::NotGranted`, an
    /// administrative call's error).
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
    /// The grant is a break-glass (emergency) grant: it serves only requests
    /// with purpose [`Purpose::Emergency`] and a justification.
    EmergencyOnly,
    /// The header is hybrid (post-quantum) and the user has no ML-KEM-768
    /// key registered (`Srs::register_pq_key`): the SRS cannot re-wrap the
    /// header's secret to them.
    NoPqKey,
    /// The header is hybrid and the user's registered ML-KEM-768 key is not
    /// the one the patient's grant names (its fingerprint differs).
    PqKeyNotGranted,
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
            Self::EmergencyOnly => "emergency_only",
            Self::NoPqKey => "no_pq_key",
            Self::PqKeyNotGranted => "pq_key_not_granted",
        }
    }

    /// The one-line summary (shared with the C ABI's messages).
    pub const fn summary(&self) -> &'static core::ffi::CStr {
        match self {
            Self::NotRegistered => c"denied: user not registered",
            Self::NotGranted => c"denied: not granted",
            Self::Revoked => c"denied: grant revoked",
            Self::Expired => c"denied: grant expired",
            Self::OutOfScope => c"denied: record outside the grant's scope",
            Self::InvalidCapsule => c"denied: invalid capsule",
            Self::EmergencyOnly => {
                c"denied: emergency grant used without purpose emergency and a justification"
            }
            Self::NoPqKey => c"denied: hybrid header and no ML-KEM key registered for the user",
            Self::PqKeyNotGranted => {
                c"denied: the user's registered ML-KEM key is not the one the grant names"
            }
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
            Self::EmergencyOnly => 7,
            Self::NoPqKey => 8,
            Self::PqKeyNotGranted => 9,
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
            7 => Self::EmergencyOnly,
            8 => Self::NoPqKey,
            9 => Self::PqKeyNotGranted,
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
    /// A user asked a patient for access to a portion.
    RequestAccess,
    /// A patient refused an access request (a signed refusal).
    RefuseRequest,
    /// Audit entries up to a checkpoint were archived and pruned from the
    /// store (the detail names the last one).
    Archive,
    /// A user's ML-KEM-768 key was registered or replaced (the detail names
    /// its fingerprint).
    RegisterPqKey,
    /// The SRS's post-quantum key was rotated (the detail names the new
    /// version and its fingerprint).
    RotatePqKey,
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
            Self::RequestAccess => "request_access",
            Self::RefuseRequest => "refuse_request",
            Self::Archive => "archive",
            Self::RegisterPqKey => "register_pq_key",
            Self::RotatePqKey => "rotate_pq_key",
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
            Self::RequestAccess => 9,
            Self::RefuseRequest => 10,
            Self::Archive => 11,
            Self::RegisterPqKey => 12,
            Self::RotatePqKey => 13,
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
            9 => Self::RequestAccess,
            10 => Self::RefuseRequest,
            11 => Self::Archive,
            12 => Self::RegisterPqKey,
            13 => Self::RotatePqKey,
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
    /// Free-form details (scope and expiry of a grant, a role, an epoch, a
    /// justification).
    pub detail: String,
    /// The purpose of use of a re-encryption or access request.
    pub purpose: Option<Purpose>,
    /// Served under a break-glass (emergency) grant.
    pub emergency: bool,
    /// The signed object that authorized a change, as encoded (a
    /// [`crate::consent::PatientRegistration`], a
    /// [`crate::consent::SignedGrant`], [`crate::consent::SignedRevocation`]
    /// or [`crate::consent::SignedRefusal`], or a user's key proof); empty
    /// for none. [`crate::consent::check_entry`] verifies it against the
    /// entry with public keys alone.
    pub evidence: Vec<u8>,
}

/// Entries without purpose, flag or evidence keep the first encoding (so
/// chains written before those fields existed verify unchanged).
const ENTRY_VERSION: u8 = 1;
const ENTRY_VERSION_2: u8 = 2;

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
    /// length-prefixed (8 bytes), options behind a 0/1 byte; version 2 (used
    /// exactly when purpose, emergency flag or evidence is set) appends
    /// `purpose code (0: none) ‖ flags (bit 0: emergency) ‖ evidence`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(128 + self.evidence.len());
        self.encode_into(&mut v);
        v
    }

    /// Appends [`AuditEntry::to_bytes`] to `v` (to reuse one buffer).
    pub(crate) fn encode_into(&self, v: &mut Vec<u8>) {
        let v2 = self.purpose.is_some() || self.emergency || !self.evidence.is_empty();
        v.push(if v2 { ENTRY_VERSION_2 } else { ENTRY_VERSION });
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.time.to_be_bytes());
        v.push(self.action.code());
        encode_parts(v, &[self.actor.as_bytes()]);
        put_opt(v, self.patient.as_ref().map(Identity::as_bytes));
        put_opt(v, self.label.as_ref().map(PortionLabel::as_bytes));
        put_opt(v, self.user.as_ref().map(Identity::as_bytes));
        put_opt(v, self.record_id.as_ref().map(|r| &r.as_bytes()[..]));
        v.push(match self.outcome {
            AuditOutcome::Ok => 0,
            AuditOutcome::Denied(d) => d.code(),
        });
        encode_parts(v, &[self.detail.as_bytes()]);
        if v2 {
            v.push(self.purpose.map_or(0, Purpose::code));
            v.push(u8::from(self.emergency));
            encode_parts(v, &[&self.evidence]);
        }
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
            "{{\"seq\":{},\"time\":{},\"actor\":{},\"action\":\"{}\",\"patient\":{},\"label\":{},\"user\":{},\"record_id\":{},\"outcome\":\"{}\",\"detail\":{},\"purpose\":{},\"emergency\":{},\"evidence\":{},\"prev_hash\":\"{}\",\"hash\":\"{}\"}}",
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
            opt(self.purpose.as_ref().map(Purpose::as_str)),
            self.emergency,
            if self.evidence.is_empty() {
                "null".to_owned()
            } else {
                format!("\"{}\"", hex(&self.evidence))
            },
            hex(prev_hash),
            hex(hash),
        )
    }
}

fn decode_entry(bytes: &[u8]) -> Option<AuditEntry> {
    let mut r = Reader::unframed("audit entry", bytes);
    let version = r.byte().ok()?;
    if version != ENTRY_VERSION && version != ENTRY_VERSION_2 {
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
    let (mut purpose, mut emergency, mut evidence) = (None, false, Vec::new());
    if version == ENTRY_VERSION_2 {
        purpose = match r.byte().ok()? {
            0 => None,
            c => Some(Purpose::from_code(c).ok()?),
        };
        emergency = match r.byte().ok()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        evidence = part(&mut r).ok()?.to_vec();
        // One encoding per entry: version 2 only when it carries something.
        if purpose.is_none() && !emergency && evidence.is_empty() {
            return None;
        }
    }
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
        purpose,
        emergency,
        evidence,
    })
}

/// A JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
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
    /// A break-glass grant (the patient signed it for the user's role): it
    /// serves only requests with purpose [`Purpose::Emergency`] and a
    /// justification, and each use is flagged in the audit.
    pub emergency: bool,
}

impl GrantTerms {
    /// Whether a record created at `created_at` may be re-encrypted at `now`
    /// for a request that `breaks_glass` (purpose emergency, justified).
    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn check(
        &self,
        now: u64,
        created_at: u64,
        breaks_glass: bool,
    ) -> Result<(), Denial> {
        if self.emergency && !breaks_glass {
            return Err(Denial::EmergencyOnly);
        }
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
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("none")?,
        }
        if self.emergency {
            f.write_str(" emergency")?;
        }
        Ok(())
    }
}

/// Where an access request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    /// Waiting for the patient.
    Pending,
    /// Answered by a grant signed at this time (the SRS's clock).
    Granted(u64),
    /// Refused by a signed refusal at this time (the SRS's clock).
    Refused(u64),
}

/// A user's request for access to a patient's portion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    /// Its identifier (name it in the signed grant that answers it).
    pub id: crate::ids::RequestId,
    /// The patient asked.
    pub patient: Identity,
    /// Who asks.
    pub user: Identity,
    /// For which portion.
    pub label: PortionLabel,
    /// Why.
    pub purpose: Purpose,
    /// In the user's words.
    pub justification: String,
    /// When (the SRS's clock).
    pub requested_at: u64,
    /// Pending or answered.
    pub status: RequestStatus,
}

/// One line of a patient's accounting of disclosures: a re-encryption the
/// SRS served for one of their records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// The audit entry's sequence number.
    pub seq: u64,
    /// When (the SRS's clock).
    pub time: u64,
    /// To whom.
    pub user: Identity,
    /// Their role (as registered now; `None` if unknown).
    pub role: Option<Role>,
    /// Which portion.
    pub label: PortionLabel,
    /// Which record.
    pub record_id: RecordId,
    /// For what purpose.
    pub purpose: Option<Purpose>,
    /// Under a break-glass grant.
    pub emergency: bool,
    /// The user's justification, if given.
    pub justification: Option<String>,
}

impl Disclosure {
    /// The disclosure an audit entry records (a served re-encryption).
    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn from_entry(e: AuditEntry, role: Option<Role>) -> Option<Self> {
        if e.action != AuditAction::ReEncrypt || e.outcome != AuditOutcome::Ok {
            return None;
        }
        Some(Self {
            seq: e.seq,
            time: e.time,
            user: e.user?,
            role,
            label: e.label?,
            record_id: e.record_id?,
            purpose: e.purpose,
            emergency: e.emergency,
            justification: e.detail.strip_prefix("justification=").map(str::to_owned),
        })
    }

    /// As one JSON object.
    pub fn to_json(&self) -> String {
        fn opt(v: Option<&str>) -> String {
            v.map_or_else(|| "null".to_owned(), json_string)
        }
        format!(
            "{{\"seq\":{},\"time\":{},\"user\":{},\"role\":{},\"label\":{},\"record_id\":\"{}\",\"purpose\":{},\"emergency\":{},\"justification\":{}}}",
            self.seq,
            self.time,
            json_string(self.user.as_str()),
            opt(self.role.as_ref().map(Role::as_str)),
            json_string(self.label.as_str()),
            self.record_id,
            opt(self.purpose.as_ref().map(Purpose::as_str)),
            self.emergency,
            opt(self.justification.as_deref()),
        )
    }
}

impl AccessRequest {
    /// The request as one JSON object (`id`, `patient`, `user`, `label`,
    /// `purpose`, `justification`, `requested_at`), as the C ABI lists it.
    #[must_use]
    pub fn to_json(&self) -> String {
        request_json(self)
    }
}

fn request_json(r: &AccessRequest) -> String {
    format!(
        "{{\"id\":\"{}\",\"patient\":{},\"user\":{},\"label\":{},\"purpose\":\"{}\",\"justification\":{},\"requested_at\":{}}}",
        r.id,
        json_string(r.patient.as_str()),
        json_string(r.user.as_str()),
        json_string(r.label.as_str()),
        r.purpose,
        json_string(&r.justification),
        r.requested_at,
    )
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

/// A signed checkpoint of the SRS's state: the audit log up to `seq` (its
/// chain hash and its Merkle tree root) and the registry as it was then
/// (its keyed digest), signed by the SRS's Ed25519 key. Hosts, patients and
/// auditors keep checkpoints outside the database: the SRS refuses to open
/// a database older than one it is given, and any two checkpoints are
/// proven consistent (one log, the older a prefix of the newer) with a
/// [`crate::merkle::ConsistencyProof`].
///
/// Encoding (version 2): `"SPCP" ‖ 0x02 ‖ seq ‖ time ‖ chain hash ‖ tree
/// root ‖ registry digest ‖ signature` (181 bytes; integers big-endian).
/// Version 1 (149 bytes, without the tree root) is still read. The
/// signature is over `"sesphr/v1/checkpoint" ‖` the bytes before it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number of the last audit entry it covers (0: none yet).
    pub seq: u64,
    /// When it was made (seconds since the Unix epoch, by the SRS's clock).
    pub time: u64,
    /// The chain hash of entry `seq` (the genesis hash for 0).
    pub chain_hash: [u8; 32],
    /// The root of the Merkle tree of entries `1..=seq` (SPEC §6.4); `None`
    /// in a version-1 checkpoint.
    pub tree_root: Option<[u8; 32]>,
    /// The keyed digest of the registry after entry `seq`.
    pub digest: [u8; 32],
    /// Ed25519 signature by the SRS.
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// Length of the encoding (version 2).
    pub const LEN: usize = 5 + 8 + 8 + 32 + 32 + 32 + 64;
    /// Length of a version-1 encoding.
    pub const LEN_V1: usize = Self::LEN - 32;
    const MAGIC: [u8; 4] = *b"SPCP";

    /// The bytes the signature covers (without the tag).
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let version = if self.tree_root.is_some() {
            crate::encoding::version::CHECKPOINT
        } else {
            1
        };
        let mut v = crate::encoding::frame_version(Self::MAGIC, version, Self::LEN);
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.time.to_be_bytes());
        v.extend_from_slice(&self.chain_hash);
        if let Some(root) = &self.tree_root {
            v.extend_from_slice(root);
        }
        v.extend_from_slice(&self.digest);
        v
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed_bytes();
        v.extend_from_slice(&self.signature);
        v
    }

    /// Decodes strictly, version 2 or 1 (the signature is checked by the
    /// SRS, which knows the key: [`crate::srs::Srs::verify_checkpoint`], or
    /// by anyone with its public key: [`crate::srs::verify_checkpoint`]).
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let v1 = bytes.get(4) == Some(&1);
        let mut r = if v1 {
            Reader::framed_version("checkpoint", bytes, Self::MAGIC, 1)?
        } else {
            Reader::framed_version(
                "checkpoint",
                bytes,
                Self::MAGIC,
                crate::encoding::version::CHECKPOINT,
            )?
        };
        let seq = r.u64()?;
        let time = r.u64()?;
        let chain_hash = r.array()?;
        let tree_root = if v1 { None } else { Some(r.array()?) };
        let digest = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            seq,
            time,
            chain_hash,
            tree_root,
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
