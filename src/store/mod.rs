//! Durable storage of the SRS: the [`Store`] trait and its implementations.
//!
//! A store keeps what the SRS hands it and gives it back; it is trusted for
//! availability only. Every registry row it holds carries a MAC and a
//! generation, re-encryption keys are sealed, the audit chain's head is
//! authenticated and covers a keyed digest of all rows, and checkpoints are
//! signed: an edited, deleted, inserted or replayed row is detected when the
//! SRS opens the store, and a rollback of the whole store is detected against
//! a checkpoint the host kept elsewhere. A store needs no secret and never
//! sees one in clear.

use core::fmt;
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::ids::Identity;
use crate::model::{AuditAction, AuditEntry, AuditOutcome, Checkpoint};

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use self::postgres::{LockStats, PostgresStore};

/// What kind of store failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Reading or writing failed: I/O, a full disk, a missing directory, a
    /// file that is not a database.
    Io,
    /// Another SRS holds this store (a second open of one SQLite file).
    Locked,
    /// The location is not durable (`""` or `":memory:"` for SQLite).
    NotDurable,
    /// A stored value does not decode: the data was altered or damaged.
    Corrupt,
    /// The store was written by a version of sesphr this one does not read.
    UnsupportedVersion,
    /// The connection to a database server was lost, refused, or a statement
    /// timed out (a failover, a restart, a terminated backend). Nothing of
    /// the failed call took effect unless the connection dropped during the
    /// final commit, when the outcome is read back at the next call; the
    /// next call reconnects.
    Connection,
}

/// A store failed. The message says what was being done and where (the
/// file), never anything secret.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A store error of `kind` with a message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An I/O store error caused by another error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind: StoreErrorKind::Io,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A stored value that does not decode. The SRS reports it as
    /// [`crate::srs::SrsError::Tampered`].
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Corrupt, what)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether this is a stored value that does not decode.
    pub fn is_corrupt(&self) -> bool {
        self.kind == StoreErrorKind::Corrupt
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

/// Called with each disclosure index row `(patient, time, seq)` by
/// [`Store::disclosure_index`].
pub type IndexVisit<'a> = dyn FnMut(&[u8], u64, u64) -> Result<(), StoreError> + 'a;

/// One registry row as stored: opaque to the store, authenticated by the
/// SRS. The primary key is `(kind, key)`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// Which table of the registry (user, patient, portion, grant).
    pub kind: u8,
    /// The row's key within its kind.
    pub key: Vec<u8>,
    /// The audit sequence number of the change that wrote this version.
    pub generation: u64,
    /// The row's fields, encoded.
    pub body: Vec<u8>,
    /// A sealed secret (a grant's re-encryption key), if the row has one.
    pub secret: Option<Vec<u8>>,
    /// HMAC over kind, key, generation and body.
    pub mac: [u8; 32],
}

impl fmt::Debug for StoredRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRow")
            .field("kind", &self.kind)
            .field("generation", &self.generation)
            .field("sealed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// One entry of the audit chain as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// The entry.
    pub entry: AuditEntry,
    /// `SHA-256(previous hash ‖ entry encoding)`.
    pub hash: [u8; 32],
}

/// The authenticated head of the audit chain: the last entry, the keyed
/// registry digest after it, where the live chain starts (entries up to
/// `base_seq` were archived and pruned), and the Merkle tree of the log
/// (its frontier), with a MAC under a key derived from the storage key over
/// all of it.
///
/// Encoding: `seq ‖ hash ‖ digest ‖ base_seq ‖ base_hash ‖ checkpoints
/// [‖ u8(k) ‖ k × peak] ‖ mac` (152 bytes without the tree, as written
/// before the audit was a Merkle log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number of the last entry (0 for a new store).
    pub seq: u64,
    /// Chain hash of the last entry (the genesis hash for a new store).
    pub hash: [u8; 32],
    /// The keyed digest of every registry row.
    pub digest: [u8; 32],
    /// The last pruned entry (0 if none).
    pub base_seq: u64,
    /// Its chain hash (the genesis hash if none).
    pub base_hash: [u8; 32],
    /// How many checkpoints the store keeps.
    pub checkpoints: u64,
    /// The peaks of the Merkle tree of entries `1..=seq` (largest first,
    /// one per set bit of `seq`); `None` in a head written before the audit
    /// was a Merkle log.
    pub tree: Option<Vec<[u8; 32]>>,
    /// HMAC-SHA-256 over the fields above.
    pub mac: [u8; 32],
}

impl ChainHead {
    /// Length of the encoding without the tree.
    pub const LEN: usize = 8 + 32 + 32 + 8 + 32 + 8 + 32;

    /// The fields the MAC covers, then the MAC.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.mac_input();
        v.extend_from_slice(&self.mac);
        v
    }

    pub(crate) fn mac_input(&self) -> Vec<u8> {
        let peaks = self.tree.as_deref().unwrap_or_default();
        let mut v = Vec::with_capacity(Self::LEN + 1 + 32 * peaks.len());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.hash);
        v.extend_from_slice(&self.digest);
        v.extend_from_slice(&self.base_seq.to_be_bytes());
        v.extend_from_slice(&self.base_hash);
        v.extend_from_slice(&self.checkpoints.to_be_bytes());
        if self.tree.is_some() {
            // At most 64 peaks (one per bit of `seq`).
            v.push(u8::try_from(peaks.len()).unwrap_or(u8::MAX));
            for p in peaks {
                v.extend_from_slice(p);
            }
        }
        v
    }

    /// Decodes [`ChainHead::to_bytes`].
    ///
    /// # Errors
    /// A corrupt [`StoreError`] unless `bytes` decodes exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::corrupt("chain head does not decode");
        let mut r = crate::encoding::Reader::unframed("chain head", bytes);
        let seq = r.u64().map_err(|_| bad())?;
        let hash = r.array().map_err(|_| bad())?;
        let digest = r.array().map_err(|_| bad())?;
        let base_seq = r.u64().map_err(|_| bad())?;
        let base_hash = r.array().map_err(|_| bad())?;
        let checkpoints = r.u64().map_err(|_| bad())?;
        let tree = if r.remaining() > 32 {
            let k = usize::from(r.byte().map_err(|_| bad())?);
            if k != seq.count_ones() as usize {
                return Err(bad());
            }
            Some(
                (0..k)
                    .map(|_| r.array())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad())?,
            )
        } else {
            None
        };
        let head = Self {
            seq,
            hash,
            digest,
            base_seq,
            base_hash,
            checkpoints,
            tree,
            mac: r.array().map_err(|_| bad())?,
        };
        r.finish().map_err(|_| bad())?;
        Ok(head)
    }
}

/// A perfect subtree of the audit log's Merkle tree: the hash of entries
/// `index·2^level + 1 ..= (index+1)·2^level` (SPEC §6.4). Stores keep them
/// so that proofs need not hash the log; they are not trusted (every proof
/// is checked against a signed root), only needed for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// Its height (0: one entry's leaf hash).
    pub level: u32,
    /// Its position among the subtrees of its level.
    pub index: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

/// The nodes of a tile ([`Store::tiles`]).
pub const TILE_WIDTH: u64 = TILE_BOTTOM as u64;

/// [`TILE_WIDTH`], as a count.
pub(crate) const TILE_BOTTOM: usize = 16;

/// The levels of the Merkle tree a store may keep tiles of: the entries'
/// leaf hashes and the lowest level of subtrees kept above them, which a
/// proof of an entry reads (the levels above are few nodes, shared).
pub const TILE_LEVELS: [u32; 2] = [0, 4];

/// A tile gathered from its bottom nodes, given in order of position.
#[derive(Default)]
pub(crate) struct TileBuilder {
    /// Its index and its bottom nodes so far (consecutive from its first).
    at: u64,
    bottom: Vec<[u8; 32]>,
}

impl TileBuilder {
    /// Adds node `idx` of the tile's bottom level; the tile's index and
    /// bytes ([`Store::tiles`]) once its bottom is whole. A gap (a node
    /// missing or not 32 bytes) leaves its tile out.
    pub(crate) fn push(&mut self, idx: u64, hash: &[u8]) -> Option<(u64, Vec<u8>)> {
        let (t, at) = (idx / TILE_WIDTH, idx % TILE_WIDTH);
        let hash: Option<[u8; 32]> = hash.try_into().ok();
        if t != self.at || at != self.bottom.len() as u64 || hash.is_none() {
            self.at = t;
            self.bottom.clear();
        }
        if at != self.bottom.len() as u64 {
            return None;
        }
        self.bottom.push(hash?);
        if at + 1 != TILE_WIDTH {
            return None;
        }
        // The levels above, each from the one below.
        let mut bytes = Vec::with_capacity(TILE_NODES * 32);
        let mut level = std::mem::take(&mut self.bottom);
        while !level.is_empty() {
            bytes.extend(level.iter().flatten());
            level = level
                .chunks_exact(2)
                .map(|p| match p {
                    [l, r] => crate::merkle::node_hash(l, r),
                    _ => [0; 32],
                })
                .collect();
        }
        Some((t, bytes))
    }
}

/// The tile of bottom level `bottom` that holds node `index` of `level`
/// below the tile's root, if `level` is one of its levels.
pub(crate) fn tile_of(bottom: u32, level: u32, index: u64) -> Option<u64> {
    let up = level
        .checked_sub(bottom)
        .filter(|&u| u64::from(u) < u64::from(TILE_WIDTH.trailing_zeros()))?;
    Some((index << up) / TILE_WIDTH)
}

/// Node `index` of `level` from the bytes of tile `t` of bottom level
/// `bottom` ([`Store::tiles`]); `None` if the tile does not hold it or its
/// bytes are short.
pub(crate) fn tile_node(
    bytes: &[u8],
    bottom: u32,
    t: u64,
    level: u32,
    index: u64,
) -> Option<[u8; 32]> {
    let up = level.checked_sub(bottom)?;
    let width = TILE_WIDTH.checked_shr(up).filter(|&w| w > 0)?;
    let at = index.checked_sub(t * width).filter(|&a| a < width)?;
    // Level by level from the bottom: 16, 8, 4, 2, 1 nodes.
    let first: u64 = (0..up).map(|u| TILE_WIDTH >> u).sum();
    let start = usize::try_from((first + at) * 32).ok()?;
    bytes.get(start..start.checked_add(32)?)?.try_into().ok()
}

/// The nodes of a tile: its bottom level's [`TILE_WIDTH`] and the levels
/// above them up to its root.
pub const TILE_NODES: usize = 2 * TILE_BOTTOM - 1;

/// One atomic, durable step: registry rows to insert or replace, audit
/// entries to append, the new head, and perhaps a checkpoint.
#[derive(Clone, Debug)]
pub struct Commit {
    /// Rows to insert or replace (by kind and key).
    pub rows: Vec<StoredRow>,
    /// Audit entries to append, in order.
    pub audit: Vec<AuditRecord>,
    /// Merkle tree nodes completed by these entries, to keep (a store may
    /// drop them: proofs then hash the entries instead).
    pub nodes: Vec<TreeNode>,
    /// The head after this commit.
    pub head: ChainHead,
    /// A checkpoint of the state after this commit, to keep.
    pub checkpoint: Option<Checkpoint>,
    /// Delete the audit entries up to this sequence number (archived); the
    /// head's base is then this entry.
    pub prune: Option<u64>,
    /// A sealed secret was removed: purge it from logs and free pages too.
    pub scrub: bool,
    /// The commit changes the registry: it must survive a power loss
    /// whatever durability the store was opened with.
    pub sync: bool,
}

/// Durable storage for an SRS.
///
/// `commit` must be atomic (all of it or none) and durable before it returns
/// `Ok`. The SRS calls `commit` from one thread at a time; reads may come
/// from other threads meanwhile and must see whole commits only.
pub trait Store: Send + Sync {
    /// The chain head, if the store was ever initialized.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn head(&self) -> Result<Option<ChainHead>, StoreError>;

    /// Calls `each` for every registry row, ordered by kind (then key): a
    /// row's kind is loaded after the kinds it refers to.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails, or the first error `each` returns.
    fn rows(
        &self,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Calls `each` for every registry row written after `generation`
    /// (whose generation is greater), ordered as [`Store::rows`].
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails, or the first error `each` returns.
    fn rows_since(
        &self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// One atomic, durable write step. The store takes its write lock (for a
    /// store shared by several SRS processes: the chain head's row lock,
    /// which serializes every writer), calls `build` with a view of what is
    /// committed — including what other writers committed since this one
    /// last looked — and writes the [`Commit`] it returns, if any, before it
    /// releases the lock. Returns whether something was written.
    ///
    /// # Errors
    /// A [`StoreError`], or the first error `build` returns; then none of it
    /// took effect (except a connection lost during the final commit, see
    /// [`StoreErrorKind::Connection`]).
    fn commit(&self, build: &mut Build<'_>) -> Result<bool, StoreError>;

    /// Reads from here to [`Store::end_snapshot`] see one consistent state
    /// of the store, whatever other writers commit meanwhile (a store with
    /// one writer is consistent between its own commits already).
    ///
    /// # Errors
    /// A [`StoreError`] if the snapshot cannot be taken.
    fn begin_snapshot(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Ends what [`Store::begin_snapshot`] began.
    fn end_snapshot(&self) {}

    /// Calls `each` with every part of the registry snapshot the store
    /// keeps (see [`crate::srs::Srs::write_snapshot`]), in order; `false` if
    /// it keeps none. The parts are opaque, sealed by the SRS: a store only
    /// keeps them. Read inside [`Store::begin_snapshot`] with the rest.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails, or the first error `each` returns.
    fn registry_snapshot(
        &self,
        each: &mut dyn FnMut(Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let _ = each;
        Ok(false)
    }

    /// Replaces the kept registry snapshot, in one atomic write, by the
    /// parts `next` yields until it yields `None`. Returns `false` (and
    /// writes nothing) for a store that keeps no snapshot. A [`Commit`]
    /// with `scrub` set must delete the kept snapshot with it (the snapshot
    /// holds the secret that leaves).
    ///
    /// # Errors
    /// A [`StoreError`] if writing fails, or the first error `next`
    /// returns; then the snapshot kept before is unchanged.
    fn put_registry_snapshot(
        &self,
        next: &mut dyn FnMut() -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<bool, StoreError> {
        let _ = next;
        Ok(false)
    }

    /// Whether several SRS processes may share this store (then each commit
    /// first catches up with the others' changes).
    fn is_shared(&self) -> bool {
        false
    }

    /// For a shared store: a listener that wakes when another process
    /// changes the registry.
    ///
    /// # Errors
    /// A [`StoreError`] if it cannot connect.
    fn listener(&self) -> Result<Option<Box<dyn Listener>>, StoreError> {
        Ok(None)
    }

    /// Up to `limit` audit entries with `from <= seq <= to`, in order.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or an entry does not decode.
    fn audit(&self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// The Merkle leaf hashes ([`crate::merkle::leaf_hash`] of the stored
    /// encoding) of the audit entries with `from <= seq <= to`, with their
    /// sequence numbers, in order: what a proof needs of entries, without
    /// decoding them. Nothing read is trusted (every proof made from them
    /// is checked against a signed root).
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn audit_leaves(&self, from: u64, to: u64) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let limit =
            usize::try_from(to.saturating_sub(from).saturating_add(1)).unwrap_or(usize::MAX);
        Ok(self
            .audit(from, to, limit)?
            .iter()
            .map(|r| (r.entry.seq, crate::merkle::leaf_hash(&r.entry.to_bytes())))
            .collect())
    }

    /// Whether reading many audit entries or tree nodes in one call is
    /// cheaper than one call each (a database: one round trip and one
    /// statement instead of many). Proofs then learn first which subtrees
    /// they need and read them in a few calls; a store in memory answers
    /// `false` and is read as the proof goes.
    fn batched_reads_help(&self) -> bool {
        true
    }

    /// The Merkle tree nodes among `wanted` (`(level, index)` pairs) that
    /// the store kept ([`Commit::nodes`]), in order; `None` for one it does
    /// not have. The default keeps none (proofs then hash the entries).
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or a node does not decode.
    fn tree_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        Ok(vec![None; wanted.len()])
    }

    /// The tiles of `level` among `wanted` that the store kept, with their
    /// indexes, in any order. Tile `t` of `level` is the perfect subtree
    /// over the [`TILE_WIDTH`] nodes of `level` from position
    /// `t * TILE_WIDTH`: its [`TILE_NODES`] hashes level by level from
    /// that bottom one up to its root, each level from left to right — one
    /// row where a proof would read sixteen nodes and hash fifteen. Only
    /// whole tiles of [`TILE_LEVELS`] are kept; the default keeps none
    /// (readers then read the nodes). Nothing here is trusted: whoever
    /// reads a tile checks what it proves.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn tiles(&self, level: u32, wanted: &[u64]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let _ = (level, wanted);
        Ok(Vec::new())
    }

    /// How many nodes of `level` with `from <= index < to` the store keeps
    /// outside tiles (a store of tiles keeps a whole tile's nodes in it
    /// alone). The default keeps no tiles and answers 0.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn untiled(&self, level: u32, from: u64, to: u64) -> Result<u64, StoreError> {
        let _ = (level, from, to);
        Ok(0)
    }

    /// Whether the store keeps every whole tile ([`Store::tiles`]) of the
    /// nodes it keeps, so that a missing one is tampering. The default
    /// keeps none.
    fn keeps_tiles(&self) -> bool {
        false
    }

    /// The Merkle tree nodes of `level` the store kept with `from <= index
    /// <= to` for any `(from, to)` of `ranges`, with their indexes (as
    /// [`Store::tree_nodes`] for every position of the ranges; a store may
    /// read many ranges at once), in order of index (a node in two
    /// overlapping ranges may come twice).
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or a node does not decode.
    fn tree_ranges(
        &self,
        level: u32,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let mut out = Vec::new();
        for &(from, to) in ranges {
            let mut at = from;
            // In pieces of 1,024 positions: any range in bounded memory.
            while at <= to {
                let end = at.saturating_add(1023).min(to);
                let wanted: Vec<(u32, u64)> = (at..=end).map(|i| (level, i)).collect();
                out.extend(
                    wanted
                        .iter()
                        .zip(self.tree_nodes(&wanted)?)
                        .filter_map(|(&(_, i), h)| Some((i, h?))),
                );
                match end.checked_add(1) {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
        out.sort_by_key(|&(i, _)| i);
        Ok(out)
    }

    /// The highest audit sequence number stored, if any.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn audit_last_seq(&self) -> Result<Option<u64>, StoreError>;

    /// The checkpoint with the highest sequence number, if any.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or it does not decode.
    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;

    /// The checkpoint at `seq`, if one was made there.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or it does not decode.
    fn checkpoint_at(&self, seq: u64) -> Result<Option<Checkpoint>, StoreError>;

    /// Up to `limit` checkpoints with `seq >= from`, in order.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or one does not decode.
    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError>;

    /// How many checkpoints the store keeps.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn checkpoint_count(&self) -> Result<u64, StoreError>;

    /// Calls `each(patient, time, seq)` for every disclosure index row with
    /// `seq <= upto`, in any order, in bounded memory (the SRS digests them
    /// under a key the store does not have).
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails, or what `each` returns.
    fn disclosure_index(&self, upto: u64, each: &mut IndexVisit<'_>) -> Result<(), StoreError>;

    /// The patient's disclosures (the audit entries [`disclosed`] names
    /// them in) with `from <= time <= to` and `(time, seq)` after `after`,
    /// at most `limit`, ordered by `(time, seq)`: read from an index kept
    /// with the audit log (written in the same commit as the entries,
    /// pruned with them), never by scanning the log.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or an entry does not decode.
    fn disclosures(
        &self,
        patient: &Identity,
        from: u64,
        to: u64,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

/// The patient an audit entry discloses a record of: a re-encryption that
/// was served. Stores index these entries for
/// [`Store::disclosures`].
pub fn disclosed(entry: &AuditEntry) -> Option<&Identity> {
    match (entry.action, entry.outcome) {
        (AuditAction::ReEncrypt, AuditOutcome::Ok) => entry.patient.as_ref(),
        _ => None,
    }
}

/// What [`Store::commit`]'s build step reads while it holds the write lock.
pub trait Locked {
    /// The chain head, if the store was ever initialized.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails.
    fn head(&mut self) -> Result<Option<ChainHead>, StoreError>;

    /// As [`Store::rows_since`].
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails, or the first error `each` returns.
    fn rows_since(
        &mut self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// As [`Store::audit`].
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or an entry does not decode.
    fn audit(&mut self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// As [`Store::latest_checkpoint`].
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or it does not decode.
    fn latest_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError>;

    /// As [`Store::tree_nodes`]. The default keeps none.
    ///
    /// # Errors
    /// A [`StoreError`] if reading fails or a node does not decode.
    fn tree_nodes(&mut self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        Ok(vec![None; wanted.len()])
    }
}

/// The build step of [`Store::commit`]: `None` writes nothing.
pub type Build<'a> = dyn FnMut(&mut dyn Locked) -> Result<Option<Commit>, StoreError> + 'a;

/// Wakes a follower when another SRS process changed a shared store.
pub trait Listener: Send {
    /// Waits up to `timeout`; `true` if a change was announced meanwhile.
    ///
    /// # Errors
    /// A [`StoreError`] if the connection failed (the next call reconnects).
    fn wait(&mut self, timeout: std::time::Duration) -> Result<bool, StoreError>;
}

/// The [`Locked`] view of a store with one writer: its own reads.
struct Direct<'a, S: ?Sized>(&'a S);

impl<S: Store + ?Sized> Locked for Direct<'_, S> {
    fn head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        self.0.head()
    }
    fn rows_since(
        &mut self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.0.rows_since(generation, each)
    }
    fn audit(&mut self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.0.audit(from, to, limit)
    }
    fn latest_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.0.latest_checkpoint()
    }
    fn tree_nodes(&mut self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        self.0.tree_nodes(wanted)
    }
}

/// [`Store::commit`] for a store that one SRS holds alone: build from its
/// own reads, then `write`.
pub(crate) fn commit_alone<S: Store + ?Sized>(
    store: &S,
    build: &mut Build<'_>,
    write: impl FnOnce(&Commit) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    match build(&mut Direct(store))? {
        Some(c) => write(&c).map(|()| true),
        None => Ok(false),
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A sequence number or generation as the signed integer SQL stores.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Back from [`to_i64`].
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A stored 32-byte hash or MAC.
///
/// # Errors
/// A corrupt [`StoreError`] naming `what` unless `b` has 32 bytes.
pub(crate) fn hash32(b: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    b.try_into()
        .map_err(|_| StoreError::corrupt(format!("corrupt {what} row")))
}

/// A store in memory: nothing survives the process. Used by
/// [`crate::srs::Srs::in_memory`] and tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    head: Option<ChainHead>,
    rows: BTreeMap<(u8, Vec<u8>), StoredRow>,
    audit: BTreeMap<u64, AuditRecord>,
    checkpoints: BTreeMap<u64, Checkpoint>,
    /// (patient, time, seq) of every disclosure.
    disclosures: std::collections::BTreeSet<(Identity, u64, u64)>,
    /// The registry snapshot's parts.
    snapshot: Vec<Vec<u8>>,
    /// Merkle tree nodes by (level, index).
    tree: std::collections::HashMap<
        (u32, u64),
        [u8; 32],
        std::hash::BuildHasherDefault<crate::merkle::PositionHasher>,
    >,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self, c: &Commit) {
        let mut g = self.lock();
        for r in &c.rows {
            g.rows.insert((r.kind, r.key.clone()), r.clone());
        }
        for a in &c.audit {
            if let Some(p) = disclosed(&a.entry) {
                g.disclosures.insert((p.clone(), a.entry.time, a.entry.seq));
            }
            g.audit.insert(a.entry.seq, a.clone());
        }
        for n in &c.nodes {
            g.tree.insert((n.level, n.index), n.hash);
        }
        if let Some(cp) = c.checkpoint {
            g.checkpoints.insert(cp.seq, cp);
        }
        if c.scrub {
            g.snapshot = Vec::new();
        }
        if let Some(upto) = c.prune {
            g.audit = g.audit.split_off(&(upto.saturating_add(1)));
            g.disclosures.retain(|(_, _, seq)| *seq > upto);
        }
        g.head = Some(c.head.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // Nothing panics while the lock is held, so a poisoned lock still
        // guards a consistent state.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self.lock().head.clone())
    }

    fn rows(
        &self,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let rows: Vec<StoredRow> = self.lock().rows.values().cloned().collect();
        rows.into_iter().try_for_each(each)
    }

    fn rows_since(
        &self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let rows: Vec<StoredRow> = self
            .lock()
            .rows
            .values()
            .filter(|r| r.generation > generation)
            .cloned()
            .collect();
        rows.into_iter().try_for_each(each)
    }

    fn commit(&self, build: &mut Build<'_>) -> Result<bool, StoreError> {
        commit_alone(self, build, |c| {
            self.write(c);
            Ok(())
        })
    }

    fn registry_snapshot(
        &self,
        each: &mut dyn FnMut(Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let parts = self.lock().snapshot.clone();
        if parts.is_empty() {
            return Ok(false);
        }
        parts.into_iter().try_for_each(each)?;
        Ok(true)
    }

    fn put_registry_snapshot(
        &self,
        next: &mut dyn FnMut() -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<bool, StoreError> {
        let mut parts = Vec::new();
        while let Some(p) = next()? {
            parts.push(p);
        }
        self.lock().snapshot = parts;
        Ok(true)
    }
    fn audit(&self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .lock()
            .audit
            .range(from..=to)
            .take(limit)
            .map(|(_, a)| a.clone())
            .collect())
    }

    fn audit_leaves(&self, from: u64, to: u64) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        // One encoding buffer for the whole range, and the output sized for
        // a block.
        let mut buf = Vec::with_capacity(1024);
        let mut out = Vec::with_capacity(usize::try_from(to - from).map_or(16, |n| n.min(255) + 1));
        for (s, a) in self.lock().audit.range(from..=to) {
            buf.clear();
            a.entry.encode_into(&mut buf);
            out.push((*s, crate::merkle::leaf_hash(&buf)));
        }
        Ok(out)
    }

    fn batched_reads_help(&self) -> bool {
        false
    }

    fn tree_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        let g = self.lock();
        Ok(wanted.iter().map(|k| g.tree.get(k).copied()).collect())
    }

    fn audit_last_seq(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().audit.keys().next_back().copied())
    }

    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.lock().checkpoints.values().next_back().copied())
    }

    fn checkpoint_at(&self, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(&seq).copied())
    }

    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .range(from..)
            .take(limit)
            .map(|(_, c)| *c)
            .collect())
    }

    fn checkpoint_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().checkpoints.len() as u64)
    }

    fn disclosure_index(&self, upto: u64, each: &mut IndexVisit<'_>) -> Result<(), StoreError> {
        let rows: Vec<(Identity, u64, u64)> = self
            .lock()
            .disclosures
            .iter()
            .filter(|r| r.2 <= upto)
            .cloned()
            .collect();
        for (p, t, s) in &rows {
            each(p.as_bytes(), *t, *s)?;
        }
        Ok(())
    }

    fn disclosures(
        &self,
        patient: &Identity,
        from: u64,
        to: u64,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        use core::ops::Bound;
        let g = self.lock();
        let start = match after {
            Some((t, s)) if t >= from => Bound::Excluded((patient.clone(), t, s)),
            _ => Bound::Included((patient.clone(), from, 0)),
        };
        let end = Bound::Included((patient.clone(), to, u64::MAX));
        // An empty window (BTreeSet::range panics on start > end).
        if from > to || after.is_some_and(|(t, _)| t > to) {
            return Ok(Vec::new());
        }
        g.disclosures
            .range((start, end))
            .take(limit)
            .map(|(_, _, seq)| {
                g.audit
                    .get(seq)
                    .cloned()
                    .ok_or_else(|| StoreError::corrupt("disclosure index names a missing entry"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )]
    use super::*;
    use crate::merkle::{Frontier, node_hash};

    fn node(i: u64) -> [u8; 32] {
        crate::merkle::leaf_hash(&i.to_be_bytes())
    }

    /// A tile is its sixteen bottom nodes, then each level above from left
    /// to right, its root last; only a whole run of sixteen from a tile's
    /// first position makes one.
    #[test]
    fn a_tile_is_its_bottom_and_the_subtrees_over_it() {
        let mut b = TileBuilder::default();
        let mut got = Vec::new();
        for i in 16..48 {
            got.extend(b.push(i, &node(i)));
        }
        assert_eq!(got.len(), 2);
        let (t, bytes) = &got[1];
        assert_eq!(*t, 2);
        assert_eq!(bytes.len(), TILE_NODES * 32);
        let mut tree = Frontier::new();
        (32..48).for_each(|i| tree.push(node(i)));
        assert_eq!(&bytes[30 * 32..], &tree.root());
        assert_eq!(&bytes[..32], &node(32));
        assert_eq!(&bytes[16 * 32..17 * 32], &node_hash(&node(32), &node(33)));
        // Read back by position: the bottom, a level above, the root; a
        // node of another tile or level, none.
        assert_eq!(tile_node(bytes, 0, 2, 0, 37), Some(node(37)));
        assert_eq!(
            tile_node(bytes, 0, 2, 1, 16),
            Some(node_hash(&node(32), &node(33)))
        );
        assert_eq!(tile_node(bytes, 0, 2, 4, 2), Some(tree.root()));
        assert_eq!(tile_node(bytes, 0, 2, 0, 48), None);
        assert_eq!(tile_node(bytes, 0, 2, 5, 1), None);
        assert_eq!(tile_node(&bytes[..100], 0, 2, 0, 40), None);
        assert_eq!(
            (tile_of(0, 0, 37), tile_of(0, 3, 4), tile_of(0, 4, 2)),
            (Some(2), Some(2), None)
        );
        // A gap, a start past a tile's first position, a hash of another
        // length: no tile.
        let mut b = TileBuilder::default();
        let skipped: Vec<_> = (0..16)
            .filter(|&i| i != 7)
            .filter_map(|i| b.push(i, &node(i)))
            .collect();
        assert!(skipped.is_empty());
        let mut b = TileBuilder::default();
        assert!((5..21).filter_map(|i| b.push(i, &node(i))).next().is_none());
        let mut b = TileBuilder::default();
        let short = (0..16).filter_map(|i| {
            let h = node(i);
            b.push(i, if i == 3 { &h[..31] } else { &h[..] })
        });
        assert_eq!(short.count(), 0);
    }
}
