//! The audit chain and the commit pipeline that makes every change durable.
//!
//! Each entry hashes the previous one: `hash = SHA-256(prev_hash ‖ encoding)`.
//! The head (last sequence number and hash) is authenticated with an HMAC
//! under a key derived from the storage key, so truncating the chain is as
//! detectable as editing it.
//!
//! Every change to the SRS — a registration, a grant, a revocation, and the
//! audit entry of a re-encryption or a denial — goes through one
//! [`Journal`]: changes queue up in order, and whichever caller finds no
//! commit in progress writes everything queued in one atomic store
//! transaction (group commit). A caller returns only when its own entries are
//! durable.

use core::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::encoding::{Reader, hex};
use crate::hash::encode_parts;
use crate::ids::{Identity, PortionLabel, RecordId};
use crate::srs::types::{Denial, SrsError};
use crate::store::{AuditHead, AuditRecord, Store, StoreError, StoreOp};

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
const GENESIS_TAG: &[u8] = b"sesphr/v1/audit-genesis";
const HEAD_TAG: &[u8] = b"sesphr/v1/audit-head";

/// The `prev_hash` of the first entry.
pub(crate) fn genesis_hash() -> [u8; 32] {
    Sha256::digest(GENESIS_TAG).into()
}

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
    /// A [`StoreError`] if the bytes are not a valid entry.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        decode_entry(bytes).ok_or_else(|| StoreError::corrupt("audit entry does not decode"))
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

/// `SHA-256(prev ‖ encoding)`.
pub(crate) fn chain_hash(prev: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(entry.to_bytes());
    h.finalize().into()
}

/// An audit entry before it has a place in the chain.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    pub(crate) time: u64,
    pub(crate) actor: String,
    pub(crate) action: AuditAction,
    pub(crate) patient: Option<Identity>,
    pub(crate) label: Option<PortionLabel>,
    pub(crate) user: Option<Identity>,
    pub(crate) record_id: Option<RecordId>,
    pub(crate) outcome: AuditOutcome,
    pub(crate) detail: String,
}

impl Draft {
    pub(crate) fn new(time: u64, actor: &str, action: AuditAction) -> Self {
        Self {
            time,
            actor: actor.to_owned(),
            action,
            patient: None,
            label: None,
            user: None,
            record_id: None,
            outcome: AuditOutcome::Ok,
            detail: String::new(),
        }
    }

    fn finish(self, seq: u64) -> AuditEntry {
        AuditEntry {
            seq,
            time: self.time,
            actor: self.actor,
            action: self.action,
            patient: self.patient,
            label: self.label,
            user: self.user,
            record_id: self.record_id,
            outcome: self.outcome,
            detail: self.detail,
        }
    }
}

/// Authenticates the audit head.
pub(crate) struct HeadMac(Zeroizing<[u8; 32]>);

impl HeadMac {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self(key)
    }

    fn compute(&self, seq: u64, hash: &[u8; 32]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail; an all-zero
        // tag on the impossible error would fail verification, not pass it.
        let Ok(mut m) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref()) else {
            return [0; 32];
        };
        m.update(HEAD_TAG);
        m.update(&seq.to_be_bytes());
        m.update(hash);
        m.finalize().into_bytes().into()
    }

    pub(crate) fn head(&self, seq: u64, hash: [u8; 32]) -> AuditHead {
        AuditHead {
            seq,
            hash,
            mac: self.compute(seq, &hash),
        }
    }

    pub(crate) fn verify(&self, head: &AuditHead) -> bool {
        self.compute(head.seq, &head.hash).ct_eq(&head.mac).into()
    }
}

/// Checks a chain read from a store against its authenticated head. Returns
/// the last sequence number and hash.
pub(crate) fn verify_chain(
    records: &[AuditRecord],
    head: Option<&AuditHead>,
    mac: &HeadMac,
) -> Result<(u64, [u8; 32]), SrsError> {
    let mut prev = genesis_hash();
    let mut seq = 0u64;
    for rec in records {
        let expected = seq + 1;
        if rec.entry.seq != expected
            || rec.prev_hash != prev
            || chain_hash(&prev, &rec.entry) != rec.hash
        {
            return Err(SrsError::AuditChainBroken { seq: expected });
        }
        prev = rec.hash;
        seq = expected;
    }
    match head {
        None if seq == 0 => Ok((0, prev)),
        None => Err(SrsError::AuditChainBroken { seq: 1 }),
        Some(h) => {
            if !mac.verify(h) {
                return Err(SrsError::Tampered("audit head"));
            }
            if h.seq != seq || h.hash != prev {
                // Entries after the last one present were removed (or added
                // without the key).
                return Err(SrsError::AuditChainBroken {
                    seq: seq.min(h.seq) + 1,
                });
            }
            Ok((seq, prev))
        }
    }
}

struct JournalState {
    next_seq: u64,
    head: [u8; 32],
    pending: Vec<StoreOp>,
    /// Each call to `commit` takes the next number; a caller returns once
    /// `durable` has reached its number.
    submitted: u64,
    durable: u64,
    committing: bool,
    failed: bool,
}

/// The commit pipeline (see the module docs).
pub(crate) struct Journal {
    store: Arc<dyn Store>,
    mac: HeadMac,
    state: Mutex<JournalState>,
    done: Condvar,
}

impl Journal {
    pub(crate) fn new(store: Arc<dyn Store>, mac: HeadMac, last_seq: u64, head: [u8; 32]) -> Self {
        Self {
            store,
            mac,
            state: Mutex::new(JournalState {
                next_seq: last_seq + 1,
                head,
                pending: Vec::new(),
                submitted: 0,
                durable: 0,
                committing: false,
                failed: false,
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, JournalState> {
        // The journal's own code does not panic while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn mac(&self) -> &HeadMac {
        &self.mac
    }

    /// The last sequence number and hash handed out.
    pub(crate) fn head(&self) -> (u64, [u8; 32]) {
        let g = self.lock();
        (g.next_seq - 1, g.head)
    }

    /// Chains `drafts`, queues them with `ops`, and returns once all of them
    /// are durable.
    pub(crate) fn commit(&self, ops: Vec<StoreOp>, drafts: Vec<Draft>) -> Result<(), SrsError> {
        if drafts.is_empty() && ops.is_empty() {
            return Ok(());
        }
        let mut g = self.lock();
        if g.failed {
            return Err(SrsError::Unavailable);
        }
        g.pending.extend(ops);
        for d in drafts {
            let seq = g.next_seq;
            let entry = d.finish(seq);
            let prev_hash = g.head;
            let hash = chain_hash(&prev_hash, &entry);
            g.pending.push(StoreOp::AppendAudit(AuditRecord {
                entry,
                prev_hash,
                hash,
            }));
            g.head = hash;
            g.next_seq += 1;
        }
        g.submitted += 1;
        let mine = g.submitted;
        loop {
            if g.durable >= mine {
                return Ok(());
            }
            if g.failed {
                return Err(SrsError::Unavailable);
            }
            if g.committing {
                g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead a commit of everything queued so far.
            g.committing = true;
            let upto = g.submitted;
            let mut batch = std::mem::take(&mut g.pending);
            batch.push(StoreOp::SetAuditHead(self.mac.head(g.next_seq - 1, g.head)));
            drop(g);
            let res = self.store.apply(&batch);
            g = self.lock();
            g.committing = false;
            match res {
                Ok(()) => g.durable = upto,
                Err(_) => g.failed = true,
            }
            self.done.notify_all();
            if let Err(e) = res {
                return Err(SrsError::Store(e));
            }
        }
    }
}
