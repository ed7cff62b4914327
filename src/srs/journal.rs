//! The commit pipeline: every change and every audit entry reaches the store
//! through one [`Journal`], in order, in group commits — from one SRS
//! process, or from several sharing one store.
//!
//! A caller hands over a [`Plan`]: a function from the registry to the
//! [`Change`] it makes (rows to write, the images of rows they replace,
//! audit drafts). Whichever caller finds no commit in flight leads: it takes
//! everything queued and, inside the store's write step (for a shared store,
//! while holding the chain head's row lock),
//! 1. catches up: reads what other processes committed since this one last
//!    looked — the audit entries, verified link by link, and the rows
//!    written since, each authenticated — applies those rows to the
//!    registry and checks the registry digest against the authenticated
//!    head;
//! 2. runs each queued plan, in order, against that registry (so a request
//!    is re-checked against every change committed before it), gives each
//!    change its sequence numbers (its rows' generation is the first of
//!    them), authenticates its rows, seals their secrets, moves the digest,
//!    and applies the rows to the registry;
//! 3. writes it all in one atomic commit with the new authenticated head
//!    and, every N entries or on demand, a signed checkpoint.
//!
//! Each caller returns once its own part is durable. If anything fails after
//! the registry moved, the registry is marked stale and the next leader
//! reloads it from the store before going on: the registry never keeps a
//! change the store does not hold.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockWriteGuard};

use curve25519_dalek::scalar::Scalar;

use crate::ids::Identity;
use crate::merkle::{Frontier, leaf_hash};
use crate::model::{Checkpoint, Denial};
use crate::rng::os_rng;
use crate::srs::chain::{Draft, chain_hash_of, walk, walk_pages};
use crate::srs::config::{Cadence, CheckpointSink, OpenReport};
use crate::srs::registry::Registry;
use crate::srs::rows::{DisclosedRow, Row, RowImage};
use crate::srs::secrets::{SrsKeys, checkpoint_is_signed_by};
use crate::srs::snapshot::SnapshotUse;
use crate::srs::types::{Clock, SrsError};
use crate::store::{
    AuditRecord, ChainHead, Commit, Locked, Store, StoreError, StoredRow, TreeNode,
};

/// The lowest level above the leaves whose nodes the store keeps (every
/// 16 entries one node, amortized); between it and the leaves' hashes
/// (level 0, also kept), proofs hash.
pub(crate) const STORED_LEVEL: u32 = 4;

// A store's tiles are of the leaves and of this level (a proof reads a
// block's tile, then the tile above the blocks).
const _: () = assert!(
    crate::store::TILE_LEVELS[0] == 0
        && crate::store::TILE_LEVELS[1] == STORED_LEVEL
        && crate::store::TILE_WIDTH == 1 << STORED_LEVEL
);

/// Whether the nodes of `level` go to the store: every level from
/// [`STORED_LEVEL`] up, and the leaves' hashes (level 0), so that a proof
/// reads a block's sixteen leaves as one range of small rows instead of
/// reading and hashing its entries.
pub(crate) fn kept_level(level: u32) -> bool {
    level == 0 || level >= STORED_LEVEL
}

/// Checks that the store with `head` contains checkpoint `cp`.
///
/// # Errors
/// [`SrsError::RolledBack`], [`SrsError::Diverged`]; store errors.
pub(crate) fn contains(
    store: &dyn Store,
    head: &ChainHead,
    cp: &Checkpoint,
) -> Result<(), SrsError> {
    if cp.seq > head.seq {
        return Err(SrsError::RolledBack {
            store_seq: head.seq,
            checkpoint_seq: cp.seq,
        });
    }
    let diverged = SrsError::Diverged {
        checkpoint_seq: cp.seq,
    };
    let ok = if cp.seq == head.seq {
        head.hash == cp.chain_hash && head.digest == cp.digest
    } else if cp.seq > head.base_seq {
        store.audit(cp.seq, cp.seq, 1)?.first().map(|r| r.hash) == Some(cp.chain_hash)
    } else if cp.seq == head.base_seq {
        head.base_hash == cp.chain_hash
    } else {
        store
            .checkpoint_at(cp.seq)?
            .is_some_and(|c| c.chain_hash == cp.chain_hash && c.digest == cp.digest)
    };
    if ok { Ok(()) } else { Err(diverged) }
}

/// One state change, planned once: the rows it writes, the images of the
/// rows they replace (for the digest), and its audit entries.
pub(crate) struct Change {
    pub(crate) rows: Vec<Row>,
    pub(crate) replaced: Vec<RowImage>,
    pub(crate) drafts: Vec<Draft>,
    /// A sealed secret leaves the store with this change.
    pub(crate) scrub: bool,
    /// Requests of the caller that the re-check refused (by index), and why.
    pub(crate) refused: Vec<(usize, Denial)>,
}

impl Change {
    /// A change that only appends audit entries.
    pub(crate) fn audit(drafts: Vec<Draft>) -> Self {
        Self {
            rows: Vec::new(),
            replaced: Vec::new(),
            drafts,
            scrub: false,
            refused: Vec::new(),
        }
    }
}

/// Plans a change against the registry as it stands when the change is
/// sequenced (after every change committed before it, from any process).
pub(crate) type Plan = Box<dyn FnOnce(&Registry) -> Result<Change, SrsError> + Send>;

/// Where the chain stands.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) digest: Scalar,
    pub(crate) base_seq: u64,
    pub(crate) base_hash: [u8; 32],
    /// How many checkpoints the store keeps.
    pub(crate) checkpoints: u64,
    /// The Merkle tree of entries `1..=seq`.
    pub(crate) tree: Frontier,
}

impl Position {
    /// The position of an authenticated head whose tree is `tree`.
    fn of(head: &ChainHead, tree: Frontier) -> Option<Self> {
        Some(Self {
            seq: head.seq,
            hash: head.hash,
            digest: Option::from(Scalar::from_canonical_bytes(head.digest))?,
            base_seq: head.base_seq,
            base_hash: head.base_hash,
            checkpoints: head.checkpoints,
            tree,
        })
    }

    fn matches(&self, head: &ChainHead) -> bool {
        self.seq == head.seq
            && self.hash == head.hash
            && self.digest.to_bytes() == head.digest
            && self.base_seq == head.base_seq
            && self.base_hash == head.base_hash
            && self.checkpoints == head.checkpoints
    }
}

/// What one caller gets back once its change is durable.
pub(crate) struct Outcome {
    /// Its requests the re-check refused, and why.
    pub(crate) refused: Vec<(usize, Denial)>,
    /// The checkpoint made with it, if it asked for one.
    pub(crate) checkpoint: Option<Checkpoint>,
    /// The sequence number of its first audit entry.
    pub(crate) first_seq: u64,
}

struct Item {
    id: u64,
    plan: Plan,
    checkpoint: bool,
    /// Prune the audit entries up to this one (sequence number, hash).
    prune: Option<(u64, [u8; 32])>,
    /// Merkle nodes to keep besides those the entries complete (a store
    /// from before the node table, filled once).
    nodes: Vec<TreeNode>,
}

struct State {
    /// What the store holds, as far as this process knows.
    at: Position,
    last_checkpoint: Option<Checkpoint>,
    queue: Vec<Item>,
    results: HashMap<u64, Result<Outcome, SrsError>>,
    next_id: u64,
    committing: bool,
    /// The registry may hold changes the store does not: reload it.
    stale: bool,
    /// The store must hold at least this many entries: the latest
    /// checkpoint the host pinned (a store restored to before it is
    /// refused at every commit).
    floor: u64,
}

/// A registry verified against its store, with where the store stands.
pub(crate) struct Loaded {
    pub(crate) registry: Registry,
    pub(crate) at: Position,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) report: OpenReport,
    /// The Merkle nodes of a store written before the audit was a Merkle
    /// log, recomputed: to write with a checkpoint of the tree.
    pub(crate) backfill: Option<Vec<TreeNode>>,
}

/// Stops a store iteration carrying an SRS error out of the callback.
pub(crate) fn stop(slot: &mut Option<SrsError>, e: SrsError) -> StoreError {
    *slot = Some(e);
    StoreError::corrupt("stopped")
}

/// How many stored rows are opened at once (on all cores with the
/// `parallel` feature) before they are applied, in store order.
const OPEN_BATCH: usize = 4096;

/// Applies opened registry rows: each row's MAC checked, its secret opened
/// and its fields decoded (the costly part, a batch at a time, in parallel
/// with the `parallel` feature), then applied to the registry and counted
/// into the digest one by one in the store's order — so the first bad row
/// in that order is the error, as on one thread.
struct RowLoader<'a> {
    keys: &'a SrsKeys,
    /// The head's sequence number: no row may be newer.
    newest: u64,
    digest: Scalar,
    count: u64,
    into: &'a mut Registry,
}

impl RowLoader<'_> {
    fn load(&mut self, batch: Vec<StoredRow>) -> Result<(), SrsError> {
        let opened = open_rows(&batch, self.keys);
        for (stored, row) in batch.into_iter().zip(opened) {
            let (row, share) = row?;
            if stored.generation > self.newest {
                return Err(SrsError::Tampered("registry row"));
            }
            self.digest += share;
            self.count += 1;
            self.into.apply(row, stored.generation)?;
        }
        Ok(())
    }
}

/// [`Row::open`] of every row of `batch`, in order.
fn open_rows(batch: &[StoredRow], keys: &SrsKeys) -> Vec<Result<(Row, Scalar), SrsError>> {
    #[cfg(feature = "parallel")]
    if batch.len() > 1 && crate::parallel::enabled() {
        use rayon::prelude::*;
        return batch.par_iter().map(|s| Row::open(s, keys)).collect();
    }
    batch.iter().map(|s| Row::open(s, keys)).collect()
}

/// Loads every registry row of `store` into `loader`, a batch at a time.
/// Where threads are allowed (the `parallel` feature, and not turned off
/// with [`crate::set_max_threads`]`(1)`), this thread reads the store while
/// another opens and applies the batch before: the three stages overlap.
fn load_rows(store: &dyn Store, loader: &mut RowLoader<'_>) -> Result<(), SrsError> {
    #[cfg(feature = "parallel")]
    if crate::parallel::enabled() {
        return load_rows_pipelined(store, loader);
    }
    let mut failure = None;
    let mut batch = Vec::with_capacity(OPEN_BATCH);
    store
        .rows(&mut |stored| {
            batch.push(stored);
            if batch.len() >= OPEN_BATCH {
                let full = core::mem::replace(&mut batch, Vec::with_capacity(OPEN_BATCH));
                loader.load(full).map_err(|e| stop(&mut failure, e))?;
            }
            Ok(())
        })
        .map_err(|e| first_error(failure, e))?;
    loader.load(batch)
}

#[cfg(feature = "parallel")]
fn load_rows_pipelined(store: &dyn Store, loader: &mut RowLoader<'_>) -> Result<(), SrsError> {
    // Two batches in flight at most: bounded memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<StoredRow>>(2);
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || -> Result<(), SrsError> {
            for batch in rx {
                // On an error the receiver is dropped: the reader stops.
                loader.load(batch)?;
            }
            Ok(())
        });
        let mut batch = Vec::with_capacity(OPEN_BATCH);
        let read = store.rows(&mut |stored| {
            batch.push(stored);
            if batch.len() >= OPEN_BATCH {
                let full = core::mem::replace(&mut batch, Vec::with_capacity(OPEN_BATCH));
                tx.send(full)
                    .map_err(|_| StoreError::corrupt("stopped: a row did not load"))?;
            }
            Ok(())
        });
        if read.is_ok() {
            // A failed send means the worker failed: its error is reported.
            let _ = tx.send(batch);
        }
        drop(tx);
        let loaded = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The worker's error comes first: it is about a row read earlier.
        loaded?;
        read.map_err(SrsError::from)
    })
}

/// The error a store call ended with: the SRS error a callback stopped it
/// with, or the store's own.
fn first_error(slot: Option<SrsError>, e: StoreError) -> SrsError {
    slot.unwrap_or_else(|| SrsError::from(e))
}

/// Verifies a store and loads its registry: the head is authenticated, the
/// latest checkpoint's signature checked, the audit entries after it verified
/// link by link, every row's MAC checked and the registry digest recomputed;
/// the re-encryption keys are unsealed. `into` is the empty registry to fill.
/// With `snapshot`, the store's registry snapshot is tried first (see
/// `srs::snapshot`): the rows are then verified one by one only if it is
/// missing or ignored.
///
/// # Errors
/// [`SrsError::Tampered`], [`SrsError::AuditChainBroken`],
/// [`SrsError::RolledBack`] (a checkpoint newer than the head); store
/// errors. `Ok(None)` for a store never initialized.
pub(crate) fn load(
    store: &dyn Store,
    keys: &SrsKeys,
    into: Registry,
    required: Option<&Checkpoint>,
    snapshot: bool,
) -> Result<Option<Loaded>, SrsError> {
    // One consistent state, though other processes commit meanwhile.
    store.begin_snapshot()?;
    let r = load_snapshot(store, keys, into, required, snapshot);
    store.end_snapshot();
    r
}

fn load_snapshot(
    store: &dyn Store,
    keys: &SrsKeys,
    mut into: Registry,
    required: Option<&Checkpoint>,
    snapshot: bool,
) -> Result<Option<Loaded>, SrsError> {
    let Some(head) = store.head()? else {
        return Ok(None);
    };
    if !keys.head_is_authentic(&head)? {
        return Err(SrsError::Tampered("chain head"));
    }
    let last = store.audit_last_seq()?;
    let expected = (head.seq > head.base_seq).then_some(head.seq);
    if last != expected {
        let first_bad = match last {
            Some(l) if l > head.seq => head.seq + 1,
            Some(l) => l + 1,
            None => head.base_seq + 1,
        };
        return Err(SrsError::AuditChainBroken { seq: first_bad });
    }
    if store.checkpoint_count()? != head.checkpoints {
        return Err(SrsError::Tampered("checkpoints"));
    }
    let cp = store
        .latest_checkpoint()?
        .ok_or(SrsError::Tampered("checkpoint missing"))?;
    if !checkpoint_is_signed_by(&cp, keys.verifying_key()) {
        return Err(SrsError::Tampered("checkpoint"));
    }
    if cp.seq > head.seq {
        return Err(SrsError::RolledBack {
            store_seq: head.seq,
            checkpoint_seq: cp.seq,
        });
    }
    let start = if cp.seq > head.base_seq {
        let at = store.audit(cp.seq, cp.seq, 1)?;
        if at.first().map(|r| r.hash) != Some(cp.chain_hash) {
            return Err(SrsError::AuditChainBroken { seq: cp.seq });
        }
        (cp.seq, cp.chain_hash)
    } else {
        (head.base_seq, head.base_hash)
    };
    let mut report = OpenReport::default();
    let mut n = 0u64;
    let end = walk(store, start.0, start.1, head.seq, &mut |_, _| {
        n += 1;
        Ok(())
    })?;
    if end != head.hash {
        return Err(SrsError::AuditChainBroken { seq: head.seq });
    }
    report.entries_verified = n;
    report.seq = head.seq;
    if let Some(rc) = required {
        contains(store, &head, rc)?;
    }

    let restored = if snapshot {
        match crate::srs::snapshot::restore(store, keys, &head, &mut into) {
            Ok(Some((seq, rows_since))) => Some(SnapshotUse::Used { seq, rows_since }),
            Ok(None) => None,
            Err(fault) => {
                into = into.successor();
                report.snapshot = SnapshotUse::Ignored(fault);
                None
            }
        }
    } else {
        None
    };
    if let Some(used) = restored {
        if let SnapshotUse::Used { rows_since, .. } = used {
            report.rows = rows_since;
        }
        report.snapshot = used;
    } else {
        let mut rows = RowLoader {
            keys,
            newest: head.seq,
            digest: Scalar::ZERO,
            count: 0,
            into: &mut into,
        };
        load_rows(store, &mut rows)?;
        let (digest, count) = (rows.digest, rows.count);
        report.rows = count;
        if digest.to_bytes() != head.digest {
            return Err(SrsError::Tampered("registry digest"));
        }
    }
    let (tree, backfill) = match &head.tree {
        Some(peaks) => (
            Frontier::from_peaks(head.seq, peaks.clone())
                .map_err(|_| SrsError::Tampered("chain head"))?,
            None,
        ),
        None => {
            let (tree, nodes) = legacy_tree(store, &head)?;
            (tree, Some(nodes))
        }
    };
    if cp.seq == head.seq && cp.tree_root.is_some_and(|r| r != tree.root()) {
        return Err(SrsError::Tampered("audit tree"));
    }
    let at = Position::of(&head, tree).ok_or(SrsError::Tampered("registry digest"))?;
    Ok(Some(Loaded {
        registry: into,
        at,
        checkpoint: cp,
        report,
        backfill,
    }))
}

/// How many disclosures of each patient the entries after `from` up to
/// `to` hold (verified link by link from the authenticated base to the
/// chain hash of `to`, which a signed checkpoint gave): they are archived.
fn archived_disclosures(
    view: &mut dyn Locked,
    from: (u64, [u8; 32]),
    to: (u64, [u8; 32]),
) -> Result<Vec<(Identity, u64)>, SrsError> {
    let mut counts: HashMap<Identity, u64> = HashMap::new();
    let end = walk_pages(
        &mut |a, b, n| view.audit(a, b, n),
        from.0,
        from.1,
        to.0,
        &mut |rec, _| {
            if let Some(p) = crate::store::disclosed(&rec.entry) {
                *counts.entry(p.clone()).or_default() += 1;
            }
            Ok(())
        },
    )?;
    if end != to.1 {
        return Err(SrsError::AuditChainBroken { seq: to.0 });
    }
    Ok(counts.into_iter().collect())
}

/// Moves each patient's authenticated disclosure count by the disclosures
/// among `change`'s entries (numbered from `first`), and by `archived` ones:
/// the rows go with the change, through the one change path.
fn count_disclosures(
    reg: &Registry,
    change: &mut Change,
    first: u64,
    archived: &[(Identity, u64)],
) -> Result<(), SrsError> {
    // (patient, disclosures added, last seq, archived)
    let mut moved: Vec<(Identity, u64, u64, u64)> = Vec::new();
    let slot = |moved: &mut Vec<(Identity, u64, u64, u64)>, p: &Identity| -> usize {
        if let Some(i) = moved.iter().position(|m| &m.0 == p) {
            return i;
        }
        moved.push((p.clone(), 0, 0, 0));
        moved.len() - 1
    };
    for (k, d) in change.drafts.iter().enumerate() {
        if d.action == crate::model::AuditAction::ReEncrypt
            && d.outcome == crate::model::AuditOutcome::Ok
            && let Some(p) = &d.patient
        {
            let i = slot(&mut moved, p);
            if let Some(m) = moved.get_mut(i) {
                m.1 += 1;
                m.2 = first + k as u64;
            }
        }
    }
    for (p, n) in archived {
        let i = slot(&mut moved, p);
        if let Some(m) = moved.get_mut(i) {
            m.3 += n;
        }
    }
    for (patient, added, last, gone) in moved {
        let pid = reg
            .patient_id(&patient)
            .ok_or(SrsError::Tampered("a disclosure of an unknown patient"))?;
        let (old, img) = match reg.disclosed(pid) {
            Some((row, img)) => (row.clone(), Some(img)),
            None => (
                DisclosedRow {
                    patient: patient.clone(),
                    count: 0,
                    archived: 0,
                    last_seq: 0,
                },
                None,
            ),
        };
        let row = DisclosedRow {
            patient,
            count: old.count + added,
            archived: old.archived + gone,
            last_seq: if added > 0 { last } else { old.last_seq },
        };
        if row.archived > row.count {
            return Err(SrsError::Tampered("disclosure count"));
        }
        change.replaced.extend(img);
        change.rows.push(Row::Disclosed(row));
    }
    Ok(())
}

/// The peaks below [`STORED_LEVEL`] of the tree of entries `1..=seq`, from
/// the entries of its last partial block: kept as nodes when the entries are
/// pruned, so that proofs of later entries still find every left sibling.
/// Where an earlier archive (base `base`) cut the same block, its entries
/// up to `base` are gone: the peaks kept for it then stand for them. Like
/// every node, these are not trusted: a proof through them is checked
/// against a signed root.
fn base_peaks(view: &mut dyn Locked, base: u64, seq: u64) -> Result<Vec<TreeNode>, SrsError> {
    let start = seq - seq % (1 << STORED_LEVEL);
    // The perfect subtrees of `start..end`, largest first, as `(level, index)`.
    let positions = |end: u64| -> Vec<(u32, u64)> {
        let mut offset = start;
        (0..STORED_LEVEL)
            .rev()
            .filter(|l| (end - start) & (1 << l) != 0)
            .map(|level| {
                let p = (level, offset >> level);
                offset += 1 << level;
                p
            })
            .collect()
    };
    let (mut block, first) = if base > start {
        let kept = view.tree_nodes(&positions(base))?;
        let peaks = kept
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(SrsError::Tampered("archive base nodes"))?;
        let block = Frontier::from_peaks(base - start, peaks)
            .map_err(|_| SrsError::Tampered("archive base nodes"))?;
        (block, base + 1)
    } else {
        (Frontier::new(), start + 1)
    };
    let recs = view.audit(first, seq, 1 << STORED_LEVEL)?;
    if recs.len() as u64 != seq + 1 - first {
        return Err(SrsError::AuditChainBroken { seq: first });
    }
    for r in &recs {
        block.push(leaf_hash(&r.entry.to_bytes()));
    }
    Ok(positions(seq)
        .into_iter()
        .zip(block.peaks())
        .map(|((level, index), hash)| TreeNode {
            level,
            index,
            hash: *hash,
        })
        .collect())
}

/// The Merkle tree of a store whose head was written before the audit was
/// a Merkle log: rebuilt from every entry (once; the next commit keeps it in
/// the head).
///
/// # Errors
/// [`SrsError::Store`] with [`crate::store::StoreErrorKind::UnsupportedVersion`]
/// if entries were archived away (the tree cannot be rebuilt without them);
/// what the walk finds.
fn legacy_tree(store: &dyn Store, head: &ChainHead) -> Result<(Frontier, Vec<TreeNode>), SrsError> {
    if head.base_seq != 0 {
        return Err(SrsError::Store(StoreError::new(
            crate::store::StoreErrorKind::UnsupportedVersion,
            format!(
                "the audit log was archived up to entry {} before it became a Merkle log, \
                 and its tree cannot be rebuilt without those entries: open it with the \
                 sesphr version that wrote it, or restore the archived entries first",
                head.base_seq
            ),
        )));
    }
    let mut tree = Frontier::new();
    let mut nodes = Vec::new();
    walk(
        store,
        0,
        crate::srs::chain::genesis_hash(),
        head.seq,
        &mut |rec, _| {
            tree.push_reporting(leaf_hash(&rec.entry.to_bytes()), &mut |level, index, h| {
                if kept_level(level) {
                    nodes.push(TreeNode {
                        level,
                        index,
                        hash: *h,
                    });
                }
            });
            Ok(())
        },
    )?;
    Ok((tree, nodes))
}

/// Checks that a store now at `now` still holds the position `known` (what
/// this process last saw durable): not shorter, and the same entry there.
/// A position archived away since is vouched for by the authenticated base.
///
/// # Errors
/// [`SrsError::RolledBack`], [`SrsError::Diverged`]; store errors.
fn still_holds(store: &dyn Store, now: &Position, known: &Position) -> Result<(), SrsError> {
    if now.seq < known.seq {
        return Err(SrsError::RolledBack {
            store_seq: now.seq,
            checkpoint_seq: known.seq,
        });
    }
    let same = if known.seq < now.base_seq {
        true
    } else if known.seq == now.base_seq {
        known.hash == now.base_hash
    } else if known.seq == now.seq {
        known.hash == now.hash
    } else {
        store
            .audit(known.seq, known.seq, 1)?
            .first()
            .map(|r| r.hash)
            == Some(known.hash)
    };
    if same {
        Ok(())
    } else {
        Err(SrsError::Diverged {
            checkpoint_seq: known.seq,
        })
    }
}

/// The commit pipeline (see the module docs).
pub(crate) struct Journal {
    store: Arc<dyn Store>,
    keys: Arc<SrsKeys>,
    clock: Arc<dyn Clock>,
    registry: RwLock<Registry>,
    cadence: Cadence,
    sink: Option<CheckpointSink>,
    state: Mutex<State>,
    done: Condvar,
}

impl Journal {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<dyn Store>,
        keys: Arc<SrsKeys>,
        clock: Arc<dyn Clock>,
        registry: Registry,
        cadence: Cadence,
        sink: Option<CheckpointSink>,
        at: Position,
        last_checkpoint: Option<Checkpoint>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            registry: RwLock::new(registry),
            cadence,
            sink,
            state: Mutex::new(State {
                at,
                last_checkpoint,
                queue: Vec::new(),
                results: HashMap::new(),
                next_id: 0,
                committing: false,
                stale: false,
                floor: 0,
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The journal's own code does not panic while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn registry(&self) -> &RwLock<Registry> {
        &self.registry
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        // Registry code does not panic; a poisoned lock still guards a
        // registry whose every applied row was checked.
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the store holds now, as far as this process knows.
    pub(crate) fn durable(&self) -> Position {
        self.lock().at.clone()
    }

    /// The last checkpoint made (or found).
    pub(crate) fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.lock().last_checkpoint
    }

    /// Plans `plan` in turn and returns once its change is durable.
    ///
    /// # Errors
    /// What the plan returned (then nothing of it was written); store errors
    /// (then nothing of it took effect).
    pub(crate) fn commit(&self, plan: Plan) -> Result<Outcome, SrsError> {
        self.submit(plan, false, None)
    }

    /// Refuses, from now on, a store holding fewer than `seq` entries (a
    /// checkpoint the host kept): checked at every commit.
    pub(crate) fn pin(&self, seq: u64) {
        let mut g = self.lock();
        g.floor = g.floor.max(seq);
    }

    /// [`Journal::commit`], with a checkpoint of the state after it (handed
    /// to the host's sink before this returns).
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub(crate) fn commit_checkpointed(&self, plan: Plan) -> Result<Outcome, SrsError> {
        self.submit(plan, true, None)
    }

    /// Makes a checkpoint of everything committed so far (and of whatever is
    /// queued with it) and returns it once durable.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub(crate) fn checkpoint(&self) -> Result<Checkpoint, SrsError> {
        let out = self.submit(Box::new(|_| Ok(Change::audit(Vec::new()))), true, None)?;
        out.checkpoint.ok_or(SrsError::Unavailable)
    }

    /// Prunes the store's audit entries up to `seq` (whose chain hash is
    /// `hash`) and moves the chain's base there.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub(crate) fn prune(&self, seq: u64, hash: [u8; 32]) -> Result<(), SrsError> {
        // Archiving is a state change like any: audited (and the entry
        // carries the disclosure counts the archive moves).
        let mut d = Draft::new(self.clock.now(), "srs", crate::model::AuditAction::Archive);
        d.detail = format!("upto={seq}");
        self.submit(
            Box::new(move |_| Ok(Change::audit(vec![d]))),
            false,
            Some((seq, hash)),
        )
        .map(|_| ())
    }

    /// Writes `nodes` (recomputed from the entries of a store from before the
    /// node table) with a checkpoint of the tree.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub(crate) fn backfill(&self, nodes: Vec<TreeNode>) -> Result<(), SrsError> {
        self.submit_with(
            Box::new(|_| Ok(Change::audit(Vec::new()))),
            true,
            None,
            nodes,
        )
        .map(|_| ())
    }

    /// Writes a snapshot of the registry (see `srs::snapshot`) as it stands
    /// after everything committed so far. Commits wait meanwhile (this
    /// process holds the lead); re-encryptions are served.
    ///
    /// # Errors
    /// Store errors; what catching up finds.
    pub(crate) fn write_snapshot(
        &self,
    ) -> Result<Option<crate::srs::snapshot::SnapshotInfo>, SrsError> {
        /// Gives the lead back however the write ends.
        struct Held<'a>(&'a Journal);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.lock().committing = false;
                self.0.done.notify_all();
            }
        }
        let at = loop {
            let mut g = self.lock();
            while g.committing {
                g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            if g.stale || !g.queue.is_empty() {
                // Reload or commit what waits first, then look again.
                drop(g);
                self.commit(Box::new(|_| Ok(Change::audit(Vec::new()))))?;
                continue;
            }
            g.committing = true;
            break g.at.clone();
        };
        let _lead = Held(self);
        let reg = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        let at = crate::srs::snapshot::At {
            seq: at.seq,
            hash: at.hash,
            digest: at.digest,
        };
        crate::srs::snapshot::write(self.store.as_ref(), &self.keys, &reg, &at)
    }

    /// Catches up with what other processes committed to a shared store.
    /// Cheap when nothing changed: one read of the head.
    ///
    /// # Errors
    /// Store errors; what catching up finds ([`SrsError::Tampered`], …).
    pub(crate) fn sync(&self) -> Result<(), SrsError> {
        let head = self.store.head()?;
        {
            let g = self.lock();
            if !g.stale && head.as_ref().is_some_and(|h| g.at.matches(h)) {
                return Ok(());
            }
        }
        self.commit(Box::new(|_| Ok(Change::audit(Vec::new()))))
            .map(|_| ())
    }

    fn submit(
        &self,
        plan: Plan,
        checkpoint: bool,
        prune: Option<(u64, [u8; 32])>,
    ) -> Result<Outcome, SrsError> {
        self.submit_with(plan, checkpoint, prune, Vec::new())
    }

    fn submit_with(
        &self,
        plan: Plan,
        checkpoint: bool,
        prune: Option<(u64, [u8; 32])>,
        nodes: Vec<TreeNode>,
    ) -> Result<Outcome, SrsError> {
        let mut g = self.lock();
        g.next_id += 1;
        let id = g.next_id;
        g.queue.push(Item {
            id,
            plan,
            checkpoint,
            prune,
            nodes,
        });
        loop {
            if let Some(r) = g.results.remove(&id) {
                return r;
            }
            if g.committing {
                g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            g = self.lead(g);
        }
    }

    /// Commits everything queued in one store commit; leaves each item's
    /// result in `results`.
    fn lead<'a>(&'a self, mut g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        g.committing = true;
        let items = std::mem::take(&mut g.queue);
        let ids: Vec<u64> = items.iter().map(|i| i.id).collect();
        let start = Lead {
            at: g.at.clone(),
            last_checkpoint: g.last_checkpoint,
            stale: g.stale,
            made: None,
            floor: g.floor,
        };
        drop(g);
        let mut results: Vec<Option<Result<Outcome, SrsError>>> = Vec::new();
        let res = self.run(start, items, &mut results);
        let mut g = self.lock();
        g.committing = false;
        let mut made = None;
        match res {
            Ok(end) => {
                g.at = end.at;
                g.last_checkpoint = end.last_checkpoint;
                g.stale = end.stale;
                made = end.made;
                for (id, r) in ids.iter().zip(results) {
                    g.results
                        .insert(*id, r.unwrap_or(Err(SrsError::Unavailable)));
                }
            }
            Err(e) => {
                // The registry may have moved past the store: reload it
                // before the next commit.
                g.stale = true;
                for id in &ids {
                    g.results.insert(*id, Err(e.duplicate()));
                }
            }
        }
        self.done.notify_all();
        if let (Some(cp), Some(sink)) = (made, &self.sink) {
            drop(g);
            sink(&cp);
            g = self.lock();
        }
        g
    }

    /// The work of one lead. The registry is locked for writing only inside
    /// the store's write step, once the store's lock is held: requests are
    /// served meanwhile, while this process waits for the other processes'
    /// commits.
    fn run(
        &self,
        start: Lead,
        items: Vec<Item>,
        results: &mut Vec<Option<Result<Outcome, SrsError>>>,
    ) -> Result<Lead, SrsError> {
        let mut lead = start;
        if lead.stale {
            let mut reg = self.registry_mut();
            let fresh = load(
                self.store.as_ref(),
                &self.keys,
                reg.successor(),
                None,
                false,
            )?
            .ok_or(SrsError::Tampered("chain head missing"))?;
            // The store must still hold everything this process saw durable:
            // a database restored under a running SRS stays refused.
            still_holds(self.store.as_ref(), &fresh.at, &lead.at)?;
            *reg = fresh.registry;
            lead.at = fresh.at;
            lead.last_checkpoint = Some(fresh.checkpoint);
            lead.stale = false;
        }
        let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
        let mut failure = None;
        let mut end = None;
        let written = self.store.commit(&mut |view| {
            let mut reg = self.registry_mut();
            match self.build(view, &mut reg, lead.clone(), &mut items, results) {
                Ok((commit, next)) => {
                    end = Some(next);
                    Ok(commit)
                }
                Err(e) => Err(stop(&mut failure, e)),
            }
        });
        match written {
            Ok(_) => end.ok_or(SrsError::Unavailable),
            Err(e) => Err(first_error(failure, e)),
        }
    }

    /// Inside the store's write step: catch up, plan, sequence, seal.
    fn build(
        &self,
        view: &mut dyn Locked,
        reg: &mut Registry,
        start: Lead,
        items: &mut [Option<Item>],
        results: &mut Vec<Option<Result<Outcome, SrsError>>>,
    ) -> Result<(Option<Commit>, Lead), SrsError> {
        let mut lead = self.catch_up(view, reg, start)?;
        let mut at = lead.at.clone();
        let mut rng = os_rng();
        let mut rows = Vec::new();
        let mut audit = Vec::new();
        let mut nodes = Vec::new();
        let (mut scrub, mut sync, mut want_checkpoint, mut prune) = (false, false, false, None);
        let mut asked = Vec::new();
        for item in items.iter_mut() {
            let Some(item) = item.take() else {
                results.push(Some(Err(SrsError::Unavailable)));
                asked.push(false);
                continue;
            };
            asked.push(item.checkpoint);
            want_checkpoint |= item.checkpoint;
            nodes.extend(item.nodes);
            let mut archived = Vec::new();
            if let Some((seq, hash)) = item.prune
                && seq > at.base_seq
                && seq <= at.seq
            {
                archived = archived_disclosures(view, (at.base_seq, at.base_hash), (seq, hash))?;
                nodes.extend(base_peaks(view, at.base_seq, seq)?);
                at.base_seq = seq;
                at.base_hash = hash;
                prune = Some(seq);
            }
            let mut change = match (item.plan)(reg) {
                Ok(c) => c,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            let generation = at.seq + 1;
            count_disclosures(reg, &mut change, generation, &archived)?;
            let mut digest = at.digest;
            let mut sealed = Vec::with_capacity(change.rows.len());
            for row in &change.rows {
                let (stored, share) = row.seal(generation, &self.keys, &mut rng)?;
                digest += share;
                sealed.push(stored);
            }
            for img in &change.replaced {
                let mac = self
                    .keys
                    .row_mac(img.kind, &img.key, img.generation, &img.body)?;
                digest -= self.keys.share(&mac)?;
            }
            at.digest = digest;
            let first_seq = at.seq + 1;
            for d in change.drafts {
                let seq = at.seq + 1;
                let entry = d.finish(seq);
                let bytes = entry.to_bytes();
                let hash = chain_hash_of(&at.hash, &bytes);
                at.tree
                    .push_reporting(leaf_hash(&bytes), &mut |level, index, h| {
                        if kept_level(level) {
                            nodes.push(TreeNode {
                                level,
                                index,
                                hash: *h,
                            });
                        }
                    });
                audit.push(AuditRecord { entry, hash });
                at.seq = seq;
                at.hash = hash;
            }
            // A disclosure count moves with its entries, under their durability.
            sync |= change.rows.iter().any(|r| !matches!(r, Row::Disclosed(_)));
            scrub |= change.scrub;
            rows.extend(sealed);
            for row in change.rows {
                reg.apply(row, generation)?;
            }
            results.push(Some(Ok(Outcome {
                refused: change.refused,
                checkpoint: None,
                first_seq,
            })));
        }
        let last_cp = lead.last_checkpoint.map(|c| c.seq);
        let now = self.clock.now();
        let due = at.seq.saturating_sub(last_cp.unwrap_or(0)) >= self.cadence.every
            || (!audit.is_empty()
                && lead
                    .last_checkpoint
                    .is_none_or(|c| now.saturating_sub(c.time) >= self.cadence.interval));
        let checkpoint = if want_checkpoint || due {
            let mut cp = Checkpoint {
                seq: at.seq,
                time: now,
                chain_hash: at.hash,
                tree_root: Some(at.tree.root()),
                digest: at.digest.to_bytes(),
                signature: [0; 64],
            };
            self.keys.sign(&mut cp);
            // A second checkpoint at the same entry replaces the first.
            if last_cp != Some(at.seq) {
                at.checkpoints += 1;
            }
            Some(cp)
        } else {
            None
        };
        for (r, asked) in results.iter_mut().zip(asked) {
            if let (Some(Ok(o)), true) = (r, asked) {
                o.checkpoint = checkpoint;
            }
        }
        // Several changes of one commit may write one row (a patient's
        // disclosure count): its last version stands, as in the registry.
        let mut written = std::collections::HashSet::new();
        rows.reverse();
        rows.retain(|r: &crate::store::StoredRow| written.insert((r.kind, r.key.clone())));
        rows.reverse();
        let mut head = ChainHead {
            seq: at.seq,
            hash: at.hash,
            digest: at.digest.to_bytes(),
            base_seq: at.base_seq,
            base_hash: at.base_hash,
            checkpoints: at.checkpoints,
            tree: Some(at.tree.peaks().to_vec()),
            mac: [0; 32],
        };
        lead.at = at;
        if checkpoint.is_some() {
            lead.last_checkpoint = checkpoint;
        }
        lead.made = checkpoint;
        if audit.is_empty() && rows.is_empty() && checkpoint.is_none() && prune.is_none() {
            return Ok((None, lead));
        }
        self.keys.authenticate_head(&mut head)?;
        Ok((
            Some(Commit {
                rows,
                audit,
                nodes,
                head,
                checkpoint,
                prune,
                scrub,
                sync: sync || checkpoint.is_some() || prune.is_some(),
            }),
            lead,
        ))
    }

    /// Applies what other processes committed since `start`: verifies the
    /// head, the new audit entries link by link, each new row, and the
    /// registry digest; applies the rows.
    fn catch_up(
        &self,
        view: &mut dyn Locked,
        reg: &mut Registry,
        start: Lead,
    ) -> Result<Lead, SrsError> {
        let at = start.at.clone();
        let Some(head) = view.head()? else {
            // A store being created: only a genesis position may write it.
            return if at.seq == 0 && at.checkpoints == 0 {
                Ok(start)
            } else {
                Err(SrsError::Tampered("chain head missing"))
            };
        };
        if !self.keys.head_is_authentic(&head)? {
            return Err(SrsError::Tampered("chain head"));
        }
        if head.seq < start.floor {
            return Err(SrsError::RolledBack {
                store_seq: head.seq,
                checkpoint_seq: start.floor,
            });
        }
        if at.matches(&head) {
            return Ok(start);
        }
        if head.seq < at.seq {
            return Err(SrsError::RolledBack {
                store_seq: head.seq,
                checkpoint_seq: at.seq,
            });
        }
        if head.base_seq < at.base_seq {
            return Err(SrsError::Tampered("chain head"));
        }
        // The entries since: linked to what this process knew (or, if they
        // were archived meanwhile, to the authenticated base).
        let (from_seq, from_hash) = if head.base_seq > at.seq {
            (head.base_seq, head.base_hash)
        } else {
            (at.seq, at.hash)
        };
        // The tree grows by the same entries (unless some were archived
        // meanwhile: then the authenticated head's tree is all there is).
        let gap = head.base_seq > at.seq;
        let mut tree = at.tree.clone();
        let end = walk_pages(
            &mut |a, b, n| view.audit(a, b, n),
            from_seq,
            from_hash,
            head.seq,
            &mut |rec, _| {
                if !gap {
                    tree.push(leaf_hash(&rec.entry.to_bytes()));
                }
                Ok(())
            },
        )?;
        if end != head.hash {
            return Err(SrsError::AuditChainBroken { seq: head.seq });
        }
        let tree = match &head.tree {
            Some(peaks) => {
                let theirs = Frontier::from_peaks(head.seq, peaks.clone())
                    .map_err(|_| SrsError::Tampered("chain head"))?;
                if !gap && theirs != tree {
                    return Err(SrsError::Tampered("audit tree"));
                }
                theirs
            }
            None if !gap => tree,
            None => return Err(SrsError::Tampered("audit tree")),
        };
        // The rows written since, each authenticated; the digest moves by
        // the rows they replace and by themselves.
        let mut digest = at.digest;
        let mut failure = None;
        let keys = &self.keys;
        let applied = view.rows_since(at.seq, &mut |stored| {
            let step = reg.apply_stored(&stored, keys, head.seq, &mut digest);
            step.map_err(|e| stop(&mut failure, e))
        });
        if let Err(e) = applied {
            return Err(first_error(failure, e));
        }
        if digest.to_bytes() != head.digest {
            return Err(SrsError::Tampered("registry digest"));
        }
        let mut next = start;
        next.at = Position::of(&head, tree).ok_or(SrsError::Tampered("registry digest"))?;
        if head.checkpoints != at.checkpoints {
            let cp = view
                .latest_checkpoint()?
                .ok_or(SrsError::Tampered("checkpoint missing"))?;
            if !checkpoint_is_signed_by(&cp, keys.verifying_key()) || cp.seq > head.seq {
                return Err(SrsError::Tampered("checkpoint"));
            }
            next.last_checkpoint = Some(cp);
        }
        Ok(next)
    }
}

/// What a lead starts from and ends with.
#[derive(Clone)]
struct Lead {
    at: Position,
    last_checkpoint: Option<Checkpoint>,
    stale: bool,
    /// The checkpoint this lead made.
    made: Option<Checkpoint>,
    /// See [`State::floor`].
    floor: u64,
}
