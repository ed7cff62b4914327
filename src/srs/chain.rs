//! The audit chain: how entries are hashed and linked, and the one walk that
//! verifies a stretch of it page by page in bounded memory.
//!
//! `hash = SHA-256(prev_hash ‖ entry encoding)`; the first entry's
//! `prev_hash` is `SHA-256("sesphr/v1/audit-genesis")`.

use sha2::{Digest, Sha256};

use crate::ids::{Identity, PortionLabel, RecordId};
use crate::model::{AuditAction, AuditEntry, AuditOutcome};
use crate::srs::types::SrsError;
use crate::store::{AuditRecord, Store, StoreError};

const GENESIS_TAG: &[u8] = b"sesphr/v1/audit-genesis";

/// Entries read per page.
pub(crate) const PAGE: usize = 4096;

/// The `prev_hash` of the first entry.
pub(crate) fn genesis_hash() -> [u8; 32] {
    Sha256::digest(GENESIS_TAG).into()
}

/// `SHA-256(prev ‖ encoding)`.
pub(crate) fn chain_hash(prev: &[u8; 32], entry: &AuditEntry) -> [u8; 32] {
    chain_hash_of(prev, &entry.to_bytes())
}

/// [`chain_hash`] of an entry already encoded.
pub(crate) fn chain_hash_of(prev: &[u8; 32], encoded: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(encoded);
    h.finalize().into()
}

/// Called by [`walk`] with each verified record and the hash before it.
pub(crate) type Visit<'a> = dyn FnMut(&AuditRecord, &[u8; 32]) -> Result<(), SrsError> + 'a;

/// Verifies the entries after `(from_seq, from_hash)` up to `to`, in pages:
/// every one present, in order, each linked to the one before. Calls `each`
/// with every record and its previous hash. Returns the hash of entry `to`.
///
/// # Errors
/// [`SrsError::AuditChainBroken`] at the first entry that is missing or does
/// not link; store errors; the first error `each` returns.
pub(crate) fn walk(
    store: &dyn Store,
    from_seq: u64,
    from_hash: [u8; 32],
    to: u64,
    each: &mut Visit<'_>,
) -> Result<[u8; 32], SrsError> {
    walk_pages(
        &mut |a, b, n| store.audit(a, b, n),
        from_seq,
        from_hash,
        to,
        each,
    )
}

/// A source of audit pages: `(from, to, limit)` as [`Store::audit`].
pub(crate) type Pages<'a> = dyn FnMut(u64, u64, usize) -> Result<Vec<AuditRecord>, StoreError> + 'a;

/// [`walk`] over any source of pages (a store, or a commit's locked view).
///
/// # Errors
/// As [`walk`].
pub(crate) fn walk_pages(
    pages: &mut Pages<'_>,
    from_seq: u64,
    from_hash: [u8; 32],
    to: u64,
    each: &mut Visit<'_>,
) -> Result<[u8; 32], SrsError> {
    let mut seq = from_seq;
    let mut prev = from_hash;
    while seq < to {
        let page = pages(seq + 1, to, PAGE)?;
        if page.is_empty() {
            return Err(SrsError::AuditChainBroken { seq: seq + 1 });
        }
        for rec in &page {
            let expected = seq + 1;
            if rec.entry.seq != expected || chain_hash(&prev, &rec.entry) != rec.hash {
                return Err(SrsError::AuditChainBroken { seq: expected });
            }
            each(rec, &prev)?;
            prev = rec.hash;
            seq = expected;
        }
    }
    Ok(prev)
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
    pub(crate) purpose: Option<crate::model::Purpose>,
    pub(crate) emergency: bool,
    pub(crate) evidence: Vec<u8>,
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
            purpose: None,
            emergency: false,
            evidence: Vec::new(),
        }
    }

    pub(crate) fn finish(self, seq: u64) -> AuditEntry {
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
            purpose: self.purpose,
            emergency: self.emergency,
            evidence: self.evidence,
        }
    }
}
