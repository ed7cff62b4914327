//! The audit log as a verifiable Merkle log (SPEC §6.4): the SRS makes
//! inclusion and consistency proofs from the store's node table and
//! entries; anyone verifies them against signed checkpoints with the SRS's
//! public key alone ([`verify_inclusion`], [`verify_consistency`]).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::merkle::{
    ConsistencyProof, Frontier, Hash, InclusionProof, Nodes, PositionHasher, leaf_hash, node_hash,
};
use crate::model::{AuditEntry, Checkpoint};
use crate::srs::journal::{STORED_LEVEL, kept_level};
use crate::srs::secrets::checkpoint_is_signed_by;
use crate::srs::types::SrsError;
use crate::srs::{Srs, VerifyingKey};
use crate::store::{Store, TILE_LEVELS, TILE_NODES, TILE_WIDTH, TileBuilder, tile_node, tile_of};

/// How many hashes a long check keeps before it starts afresh (few in a
/// debug build, so that the tests run through the fresh starts often).
const CACHE_BOUND: usize = if cfg!(debug_assertions) {
    1 << 9
} else {
    1 << 16
};

/// Subtree positions to hashes.
type NodeMap = HashMap<(u32, u64), Hash, BuildHasherDefault<PositionHasher>>;

fn log_proof(what: &'static str) -> SrsError {
    SrsError::Malformed(crate::Error::InvalidLogProof { what })
}

/// The perfect subtrees of a store's log: the node table for levels from
/// [`STORED_LEVEL`] up (or, where a node is missing, its children), and
/// below it the hashes of the entries themselves, one block of
/// `2^STORED_LEVEL` entries per read. Nothing read is trusted: every proof
/// made from it is checked against a signed root.
pub(crate) struct StoreNodes<'a> {
    store: &'a dyn Store,
    cache: NodeMap,
    /// The blocks whose entries were read.
    loaded: std::collections::HashSet<u64, BuildHasherDefault<PositionHasher>>,
    /// Why the last read failed (the merkle code sees a placeholder).
    failure: Option<SrsError>,
    /// Whether the store keeps tiles (asked once).
    keeps_tiles: bool,
}

impl<'a> StoreNodes<'a> {
    pub(crate) fn new(store: &'a dyn Store) -> Self {
        Self {
            store,
            cache: NodeMap::with_capacity_and_hasher(64, BuildHasherDefault::default()),
            loaded: std::collections::HashSet::default(),
            failure: None,
            keeps_tiles: store.keeps_tiles(),
        }
    }

    /// The error to report for a merkle-side error `e`: what the store
    /// said, if it said something.
    pub(crate) fn error(&mut self, e: crate::Error) -> SrsError {
        self.failure.take().unwrap_or(SrsError::Malformed(e))
    }

    fn fail(&mut self, e: SrsError) -> crate::Error {
        self.failure = Some(e);
        crate::Error::InvalidLogProof {
            what: "the audit log could not be read",
        }
    }

    /// Forgets what it read once it holds more than `limit` hashes (the
    /// store is read again where needed).
    fn bound(&mut self, limit: usize) {
        if self.cache.len() > limit {
            self.cache.clear();
            self.loaded.clear();
        }
    }

    /// Caches the leaf hashes of the entries of block `b` (and, in a block
    /// cut by archiving, the base's peaks kept in place of the entries no
    /// longer there). The nodes above them are hashed on demand by
    /// [`Self::read`].
    fn block(&mut self, b: u64) -> Result<(), SrsError> {
        if self.loaded.contains(&b) {
            return Ok(());
        }
        // A whole block's tile: its sixteen leaf hashes and the subtrees
        // over them, in one row.
        if self.keeps_tiles {
            let tile = read_tiles(self.store, 0, &[b])?
                .into_iter()
                .find(|(_, t, _)| *t == b);
            if let Some((_, _, bytes)) = tile {
                for level in 0..=STORED_LEVEL {
                    let from = b << (STORED_LEVEL - level);
                    for j in from..from + (1 << (STORED_LEVEL - level)) {
                        if let Some(h) = tile_node(&bytes, 0, b, level, j) {
                            self.cache.insert((level, j), h);
                        }
                    }
                }
                self.loaded.insert(b);
                return Ok(());
            }
        }
        let size = 1u64 << STORED_LEVEL;
        let first = b * size + 1;
        let leaves = self.store.audit_leaves(first, first + size - 1)?;
        for &(seq, h) in &leaves {
            if seq < first || seq >= first + size {
                return Err(SrsError::Tampered("audit entry"));
            }
            self.cache.insert((0, seq - 1), h);
        }
        if (leaves.len() as u64) < size {
            let wanted: Vec<(u32, u64)> = (0..STORED_LEVEL)
                .flat_map(|level| {
                    let from = (b * size) >> level;
                    (from..from + (size >> level)).map(move |i| (level, i))
                })
                .filter(|k| !self.cache.contains_key(k))
                .collect();
            let kept = self.store.tree_nodes(&wanted)?;
            for (k, h) in wanted.into_iter().zip(kept) {
                if let Some(h) = h {
                    self.cache.insert(k, h);
                }
            }
        }
        self.loaded.insert(b);
        Ok(())
    }

    /// Reads ahead, in as few store reads as possible, the subtrees in
    /// `wanted`: one node-table read for those from [`STORED_LEVEL`] up,
    /// one entry read per block for those below. What is still missing
    /// afterwards is read one by one by [`Self::read`].
    fn prefetch(&mut self, wanted: &[(u32, u64)]) -> Result<(), SrsError> {
        let mut stored = Vec::new();
        let mut blocks = Vec::new();
        for &(level, index) in wanted {
            if self.cache.contains_key(&(level, index)) {
                continue;
            }
            if level >= STORED_LEVEL {
                stored.push((level, index));
            } else {
                blocks.push(index >> (STORED_LEVEL - level));
            }
        }
        if !stored.is_empty() {
            let kept = self.store.tree_nodes(&stored)?;
            for (k, h) in stored.into_iter().zip(kept) {
                if let Some(h) = h {
                    self.cache.insert(k, h);
                }
            }
        }
        blocks.sort_unstable();
        blocks.dedup();
        for b in blocks {
            self.block(b)?;
        }
        Ok(())
    }

    /// Reads ahead everything `make` will ask for: `make` is run once
    /// against placeholders to learn which subtrees it reads (unless the
    /// store reads as cheaply one by one).
    fn prefetch_for<T>(
        &mut self,
        make: impl Fn(&mut dyn Nodes) -> crate::Result<T>,
    ) -> Result<(), SrsError> {
        if !self.store.batched_reads_help() {
            return Ok(());
        }
        let mut asked = Asked(Vec::with_capacity(64));
        // Placeholders cannot fail.
        let _ = make(&mut asked);
        self.prefetch(&asked.0)
    }

    fn read(&mut self, level: u32, index: u64) -> Result<Hash, SrsError> {
        if let Some(h) = self.cache.get(&(level, index)) {
            return Ok(*h);
        }
        let h = if level < STORED_LEVEL {
            self.block(index >> (STORED_LEVEL - level))?;
            if let Some(h) = self.cache.get(&(level, index)) {
                return Ok(*h);
            }
            if level == 0 {
                return Err(log_proof("entries archived away"));
            }
            let l = self.read(level - 1, 2 * index)?;
            let r = self.read(level - 1, 2 * index + 1)?;
            node_hash(&l, &r)
        } else if let Some(h) = self
            .store
            .tree_nodes(&[(level, index)])?
            .into_iter()
            .next()
            .flatten()
        {
            h
        } else {
            // Not kept (a store from before the node table, or one that
            // keeps none): from its children.
            let l = self.read(level - 1, 2 * index)?;
            let r = self.read(level - 1, 2 * index + 1)?;
            node_hash(&l, &r)
        };
        self.cache.insert((level, index), h);
        Ok(h)
    }
}

/// The inclusion proof of entry `seq` in the log of `size` entries, from
/// what `nodes` reads (not checked here: the caller checks it against a
/// trusted root). `nodes` may serve many proofs: what one read serves the
/// next.
///
/// # Errors
/// Store errors; [`SrsError::Malformed`] for `seq` outside the log or an
/// entry archived away.
pub(crate) fn prove(
    nodes: &mut StoreNodes<'_>,
    seq: u64,
    size: u64,
) -> Result<InclusionProof, SrsError> {
    let i = seq
        .checked_sub(1)
        .filter(|&i| i < size)
        .ok_or(log_proof("entry outside the checkpoint"))?;
    nodes.bound(CACHE_BOUND);
    nodes.prefetch_for(|n| {
        n.perfect(0, i)?;
        InclusionProof::make(n, i, size)
    })?;
    InclusionProof::make(nodes, i, size).map_err(|e| nodes.error(e))
}

/// A [`Nodes`] that answers placeholders and notes what was asked.
struct Asked(Vec<(u32, u64)>);

impl Nodes for Asked {
    fn perfect(&mut self, level: u32, index: u64) -> crate::Result<Hash> {
        self.0.push((level, index));
        Ok([0; 32])
    }
    fn combine(&mut self, _: &Hash, _: &Hash) -> Hash {
        [0; 32]
    }
}

impl Nodes for StoreNodes<'_> {
    fn perfect(&mut self, level: u32, index: u64) -> crate::Result<Hash> {
        self.read(level, index).map_err(|e| self.fail(e))
    }
}

/// Checks, as the audit is walked, every Merkle node the store keeps
/// against the entries: an edited, deleted or invented node is
/// [`SrsError::Tampered`]. From an archived base, only the nodes aligned
/// to it can be recomputed (the others still fail every proof they would
/// bend).
pub(crate) struct TreeCheck<'a> {
    store: &'a dyn Store,
    base: u64,
    /// The tree of the entries after `base`.
    tree: Frontier,
    /// Nodes to compare, `(absolute level, index, hash)`, checked per page.
    pending: Vec<(u32, u64, Hash)>,
    /// The tiles being gathered (one per level of [`TILE_LEVELS`]), and
    /// the whole ones to compare, `(level, index, bytes)`.
    tiles: [TileBuilder; TILE_LEVELS.len()],
    whole: Vec<(u32, u64, Vec<u8>)>,
    /// Whether the store keeps tiles (asked once).
    keeps_tiles: bool,
}

impl<'a> TreeCheck<'a> {
    pub(crate) fn new(store: &'a dyn Store, base: u64) -> Self {
        Self {
            store,
            base,
            tree: Frontier::new(),
            pending: Vec::new(),
            tiles: Default::default(),
            whole: Vec::new(),
            keeps_tiles: store.keeps_tiles(),
        }
    }

    pub(crate) fn push(&mut self, entry: &AuditEntry) -> Result<(), SrsError> {
        let aligned = self.base.trailing_zeros();
        let keeps_tiles = self.keeps_tiles;
        let (base, pending) = (self.base, &mut self.pending);
        let (tiles, whole) = (&mut self.tiles, &mut self.whole);
        self.tree
            .push_reporting(leaf_hash(&entry.to_bytes()), &mut |level, index, h| {
                if kept_level(level) && level <= aligned {
                    let at = (base >> level) + index;
                    pending.push((level, at, *h));
                    let tile = TILE_LEVELS.iter().position(|&l| l == level);
                    if let Some(b) = tile.and_then(|t| tiles.get_mut(t)).filter(|_| keeps_tiles)
                        && let Some((t, bytes)) = b.push(at, h)
                    {
                        whole.push((level, t, bytes));
                    }
                }
            });
        if self.pending.len() >= 256 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SrsError> {
        let wanted: Vec<(u32, u64)> = self.pending.iter().map(|p| (p.0, p.1)).collect();
        let kept = self.store.tree_nodes(&wanted)?;
        for ((_, _, h), k) in self.pending.iter().zip(kept) {
            if k.as_ref() != Some(h) {
                return Err(SrsError::Tampered("audit tree"));
            }
        }
        self.pending.clear();
        // Each whole tile kept, and as its nodes are.
        for level in TILE_LEVELS {
            let wanted: Vec<u64> = self
                .whole
                .iter()
                .filter(|w| w.0 == level)
                .map(|w| w.1)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let mut kept = self.store.tiles(level, &wanted)?;
            kept.sort_unstable_by_key(|k| k.0);
            for w in self.whole.iter().filter(|w| w.0 == level) {
                let found = kept
                    .binary_search_by_key(&w.1, |k| k.0)
                    .ok()
                    .and_then(|i| kept.get(i));
                if found.map(|k| &k.1) != Some(&w.2) {
                    return Err(SrsError::Tampered("audit tree tile"));
                }
            }
        }
        self.whole.clear();
        Ok(())
    }

    /// The last comparisons, and (from the genesis) the root against the
    /// authenticated head's tree.
    pub(crate) fn finish(mut self, head: &Frontier) -> Result<(), SrsError> {
        self.flush()?;
        if self.base == 0 && self.tree.root() != head.root() {
            return Err(SrsError::Tampered("audit tree"));
        }
        // A store of tiles keeps a leaf hash in its block's tile once the
        // block is whole, and nowhere else: one kept twice was put back.
        // (Not in a block cut by archiving: an archive before the tiles
        // may have left it no tile.)
        let from = self.base.div_ceil(TILE_WIDTH) * TILE_WIDTH;
        let to = head.size() / TILE_WIDTH * TILE_WIDTH;
        if self.keeps_tiles && from < to && self.store.untiled(0, from, to)? > 0 {
            return Err(SrsError::Tampered("audit tree"));
        }
        Ok(())
    }
}

/// Subtrees by position, the latest per level and side: what the latest
/// climbs passed. Entries proven in order of position meet, each, the
/// subtrees the one before passed (a later entry's climb stops at its
/// predecessor's path or at one of its siblings), so this is all a listing
/// needs to remember — in constant memory, without hashing positions.
#[derive(Clone)]
struct Recent<T> {
    slots: [[Option<(u64, T)>; 2]; 64],
}

impl<T: Copy> Recent<T> {
    fn new() -> Self {
        Self {
            slots: [[None; 2]; 64],
        }
    }

    fn slot(&self, level: u32, index: u64) -> Option<&Option<(u64, T)>> {
        self.slots
            .get(usize::try_from(level).ok()?)?
            .get(usize::from(index & 1 == 1))
    }

    fn get(&self, level: u32, index: u64) -> Option<T> {
        match self.slot(level, index) {
            Some(Some((at, v))) if *at == index => Some(*v),
            _ => None,
        }
    }

    fn insert(&mut self, level: u32, index: u64, v: T) {
        if let Some(slot) = usize::try_from(level)
            .ok()
            .and_then(|l| self.slots.get_mut(l))
            .and_then(|s| s.get_mut(usize::from(index & 1 == 1)))
        {
            *slot = Some((index, v));
        }
    }

    /// The positions alone.
    fn positions(&self) -> Recent<()> {
        Recent {
            slots: self.slots.map(|s| s.map(|p| p.map(|(at, _)| (at, ())))),
        }
    }
}

/// The tiles of bottom level `level` numbered in `wanted` that the store
/// holds whole, as `(level, number, bytes)` (a short one is not read: its
/// nodes come from elsewhere).
fn read_tiles(
    store: &dyn Store,
    level: u32,
    wanted: &[u64],
) -> Result<Vec<(u32, u64, Vec<u8>)>, SrsError> {
    Ok(store
        .tiles(level, wanted)?
        .into_iter()
        .filter(|(_, bytes)| bytes.len() == TILE_NODES * 32)
        .map(|(t, bytes)| (level, t, bytes))
        .collect())
}

/// Whether block `b` is a perfect subtree of a tree of `size` entries.
fn whole(size: u64, b: u64) -> bool {
    (b + 1)
        .checked_shl(STORED_LEVEL)
        .is_some_and(|end| end <= size)
}

/// The leaves of the whole blocks a page of entries falls in, read from
/// the store for [`EntryCheck::prepare`]: on its own, so that the next
/// page's are read while a page is checked. Nothing in it is trusted.
#[derive(Default)]
pub(crate) struct BlockReads {
    /// The blocks' tiles, by block: `(0, block, tile)`.
    tiles: Vec<(u32, u64, Vec<u8>)>,
    /// The blocks without a tile: their sixteen leaf hashes from the node
    /// table, where it has all of them.
    leaves: HashMap<u64, [Hash; 1 << STORED_LEVEL], BuildHasherDefault<PositionHasher>>,
}

impl BlockReads {
    /// Reads the leaves of the whole blocks (in a tree of `size` entries)
    /// that `entries` fall in.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn read(
        store: &dyn Store,
        size: u64,
        entries: &[AuditEntry],
    ) -> Result<Self, SrsError> {
        let mut out = Self::default();
        if !store.batched_reads_help() {
            return Ok(out);
        }
        let width = 1u64 << STORED_LEVEL;
        let mut blocks: Vec<u64> = entries
            .iter()
            .filter_map(|e| e.seq.checked_sub(1))
            .filter(|&i| i < size)
            .map(|i| i >> STORED_LEVEL)
            .filter(|&b| whole(size, b))
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        // The blocks' tiles (one row each: the sixteen leaf hashes and the
        // subtrees over them); for a block without one, its sixteen leaf
        // hashes from the node table.
        out.tiles = read_tiles(store, 0, &blocks)?;
        out.tiles.sort_unstable_by_key(|t| t.1);
        let tiled = &out.tiles;
        let ranges: Vec<(u64, u64)> = blocks
            .iter()
            .filter(|b| tiled.binary_search_by_key(*b, |t| t.1).is_err())
            .map(|&b| (b * width, b * width + width - 1))
            .collect();
        if ranges.is_empty() {
            return Ok(out);
        }
        // Each block with the sixteen leaves it should have, no other.
        let mut got: HashMap<
            u64,
            ([Hash; 1 << STORED_LEVEL], u32),
            BuildHasherDefault<PositionHasher>,
        > = HashMap::default();
        for (idx, h) in store.tree_ranges(0, &ranges)? {
            let (b, at) = (idx >> STORED_LEVEL, idx & (width - 1));
            let (leaves, seen) = got.entry(b).or_insert(([[0; 32]; 1 << STORED_LEVEL], 0));
            if let Some(slot) = usize::try_from(at).ok().and_then(|a| leaves.get_mut(a)) {
                *slot = h;
                *seen |= 1 << at;
            }
        }
        let all = (1u32 << width) - 1;
        out.leaves.extend(
            got.into_iter()
                .filter(|(_, (_, seen))| *seen == all)
                .map(|(b, (l, _))| (b, l)),
        );
        Ok(out)
    }
}

/// Proves entries read back from the store against a root this process
/// trusts (its authenticated head's), remembering every subtree a proof
/// authenticated: the next entry's climb stops at the first one it meets,
/// so entries near each other cost a few hashes each.
pub(crate) struct EntryCheck<'a> {
    nodes: StoreNodes<'a>,
    size: u64,
    root: Hash,
    /// Subtrees authenticated by the latest climbs.
    trusted: Recent<Hash>,
    /// Buffers reused from entry to entry: the siblings to read ahead; the
    /// subtrees a climb passed (its own and its siblings).
    wanted: Vec<(u32, u64)>,
    climbed: Vec<((u32, u64), Hash)>,
    /// The last whole block read: its number, its leaf hashes (as the
    /// store gave them) and their root, trusted once a climb from it
    /// reached a trusted subtree.
    block: Option<(u64, Vec<Hash>, Hash)>,
    /// The whole blocks [`Self::prepare`] read for a page of entries, by
    /// number: their leaf hashes as the store gave them.
    ahead: HashMap<u64, [Hash; 1 << STORED_LEVEL], BuildHasherDefault<PositionHasher>>,
    /// The tiles [`Self::prepare`] read, by (bottom level, number): of
    /// the page's blocks (their entries' climbs start at the leaf) and of
    /// the tiles over them. Climbs read their siblings here first.
    tiles: Vec<(u32, u64, Vec<u8>)>,
    /// The encoding of the entry being checked (one buffer reused).
    encoded: Vec<u8>,
    /// The siblings of the entry's climb found in tiles, level by level
    /// from where it starts (one buffer reused).
    sibs: Vec<Option<Hash>>,
    /// [`Self::prepare`] bounds the caches (once per page, before it reads
    /// ahead), so that [`Self::check`] does not drop what was read ahead.
    prepared: bool,
}

impl<'a> EntryCheck<'a> {
    pub(crate) fn new(store: &'a dyn Store, size: u64, root: Hash) -> Self {
        Self {
            nodes: StoreNodes::new(store),
            size,
            root,
            trusted: Recent::new(),
            wanted: Vec::new(),
            climbed: Vec::new(),
            block: None,
            ahead: HashMap::default(),
            tiles: Vec::new(),
            encoded: Vec::new(),
            sibs: Vec::new(),
            prepared: false,
        }
    }

    /// Whether block `b` is a perfect subtree of the tree it proves against.
    fn whole(&self, b: u64) -> bool {
        whole(self.size, b)
    }

    /// Starts afresh, past a bound, the nodes read (they are read again
    /// where needed), so that a long accounting runs in bounded memory.
    fn bound(&mut self) {
        self.nodes.bound(CACHE_BOUND);
    }

    /// Reads ahead, in a few store reads, what checking `entries` in their
    /// order will read: the leaves of their whole blocks (`blocks`, from
    /// [`BlockReads::read`], which another thread may have made meanwhile)
    /// and the siblings their climbs from there will need (each climb stops
    /// where an earlier one passed, as [`Self::check`] does). Only saves
    /// work: nothing read here is trusted before a check leads it to a
    /// trusted subtree.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) fn prepare(
        &mut self,
        entries: &[AuditEntry],
        blocks: BlockReads,
    ) -> Result<(), SrsError> {
        let store = self.nodes.store;
        if !store.batched_reads_help() {
            return Ok(());
        }
        self.prepared = true;
        self.bound();
        let BlockReads { tiles, leaves } = blocks;
        self.ahead = leaves;
        self.tiles = tiles;
        let positions: Vec<u64> = entries
            .iter()
            .filter_map(|e| e.seq.checked_sub(1))
            .filter(|&i| i < self.size)
            .collect();
        // The climbs, as `check` will make them: what each passes becomes
        // trusted, so a later climb stops there.
        let mut passed = self.trusted.positions();
        let mut wanted = Vec::new();
        let mut climb = Vec::new();
        for &i in &positions {
            let start = self.start(i);
            climb.push((start, i >> start));
            for level in start..63u32 {
                let j = i >> level;
                if passed.get(level, j).is_some() {
                    break;
                }
                let parent_end = ((j >> 1) + 1).checked_shl(level + 1).unwrap_or(u64::MAX);
                if parent_end > self.size {
                    break;
                }
                wanted.push((level, j ^ 1));
                climb.push((level, j ^ 1));
                climb.push((level + 1, j >> 1));
            }
            for (level, j) in climb.drain(..) {
                passed.insert(level, j, ());
            }
        }
        // The siblings in tiles: below level 4 from the blocks' tiles, from
        // level 4 up to 8 from the tiles over sixteen blocks; the others
        // from the node table.
        let mut upper: Vec<u64> = wanted
            .iter()
            .filter_map(|&(level, j)| tile_of(STORED_LEVEL, level, j))
            .collect();
        upper.sort_unstable();
        upper.dedup();
        self.tiles.extend(read_tiles(store, STORED_LEVEL, &upper)?);
        self.tiles.sort_unstable_by_key(|t| (t.0, t.1));
        wanted.retain(|&(level, j)| self.tile_hash(level, j).is_none());
        wanted.sort_unstable();
        self.nodes.prefetch(&wanted)
    }

    /// Subtree `j` of `level` from a tile read for this page, if one
    /// holds it (not trusted: a climb checks it).
    fn tile_hash(&self, level: u32, j: u64) -> Option<Hash> {
        let (bottom, t) = TILE_LEVELS
            .iter()
            .find_map(|&bottom| Some((bottom, tile_of(bottom, level, j)?)))?;
        let k = self
            .tiles
            .binary_search_by_key(&(bottom, t), |x| (x.0, x.1))
            .ok()?;
        tile_node(&self.tiles.get(k)?.2, bottom, t, level, j)
    }

    /// The level the climb from entry `i` starts at: the leaf in a block
    /// whose tile was read (its siblings are read ahead) or one cut by
    /// archiving; else the root of its whole block ([`Self::block_root`]).
    fn start(&self, i: u64) -> u32 {
        let b = i >> STORED_LEVEL;
        let tiled = self
            .tiles
            .binary_search_by_key(&(0, b), |x| (x.0, x.1))
            .is_ok();
        if self.whole(b) && !tiled {
            STORED_LEVEL
        } else {
            0
        }
    }

    /// The root of block `b` (the perfect subtree of `2^STORED_LEVEL`
    /// entries at level [`STORED_LEVEL`]) if the store gives all of its
    /// leaves and `leaf` is the one at `i`; `None` if the block is cut
    /// (archived), so the caller climbs from the leaf instead.
    ///
    /// # Errors
    /// [`SrsError::Tampered`] if the store's leaf at `i` is another; store
    /// errors.
    fn block_root(&mut self, b: u64, i: u64, leaf: &Hash) -> Result<Option<Hash>, SrsError> {
        let size = 1u64 << STORED_LEVEL;
        if self.block.as_ref().is_none_or(|(at, _, _)| *at != b) {
            // The leaves' hashes as read ahead or kept in the node table
            // (positions from 0), else from the entries themselves
            // (sequence numbers from 1).
            let store = self.nodes.store;
            let mut leaves = match self.ahead.get(&b) {
                Some(l) => (b * size..).zip(l.iter().copied()).collect(),
                None => store.tree_ranges(0, &[(b * size, b * size + size - 1)])?,
            };
            let mut first = b * size;
            if leaves.len() as u64 != size {
                first += 1;
                leaves = store.audit_leaves(first, first + size - 1)?;
                if leaves.len() as u64 != size {
                    return Ok(None);
                }
            }
            let mut hashes = Vec::with_capacity(leaves.len());
            let mut tree = Frontier::new();
            for (k, (at, h)) in (first..).zip(leaves) {
                if at != k {
                    return Err(SrsError::Tampered("audit entry"));
                }
                hashes.push(h);
                tree.push(h);
            }
            let root = tree.root();
            self.block = Some((b, hashes, root));
        }
        let Some((_, leaves, root)) = &self.block else {
            return Ok(None);
        };
        // The entry must be the block's leaf at its place: then the
        // block's root stands for it in the climb.
        let at = usize::try_from(i - b * size).unwrap_or(usize::MAX);
        if leaves.get(at) != Some(leaf) {
            return Err(SrsError::Tampered("audit entry"));
        }
        Ok(Some(*root))
    }

    fn trust_climbed(&mut self) {
        for ((level, j), h) in self.climbed.drain(..) {
            self.trusted.insert(level, j, h);
        }
    }

    /// The size of the tree it proves against.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Checks that `entry` is entry `entry.seq` of the log.
    ///
    /// # Errors
    /// [`SrsError::Tampered`] if it is not; store errors.
    pub(crate) fn check(&mut self, entry: &AuditEntry) -> Result<(), SrsError> {
        const BAD: SrsError = SrsError::Tampered("audit entry");
        let i = entry.seq.checked_sub(1).ok_or(BAD)?;
        if i >= self.size {
            return Err(BAD);
        }
        self.encoded.clear();
        entry.encode_into(&mut self.encoded);
        let leaf = leaf_hash(&self.encoded);
        if !self.prepared {
            self.bound();
        }
        // In a whole block, the climb starts at the block's root: one read
        // of its leaves and fifteen hashes, instead of a sibling per level
        // below it.
        let b = i >> STORED_LEVEL;
        let (start, from) = match (self.start(i) == STORED_LEVEL)
            .then(|| self.block_root(b, i, &leaf))
            .transpose()?
            .flatten()
        {
            Some(root) => (STORED_LEVEL, root),
            None => (0, leaf),
        };
        // Which siblings the climb below will read (it stops at the first
        // trusted subtree, known from positions alone), and whether it then
        // needs a whole proof: read ahead in one go.
        self.wanted.clear();
        self.sibs.clear();
        let mut stops = false;
        for level in start..63u32 {
            let j = i >> level;
            if self.trusted.get(level, j).is_some() {
                stops = true;
                break;
            }
            let parent_end = ((j >> 1) + 1).checked_shl(level + 1).unwrap_or(u64::MAX);
            if parent_end > self.size {
                break;
            }
            let sib = self.tile_hash(level, j ^ 1);
            if sib.is_none() {
                self.wanted.push((level, j ^ 1));
            }
            self.sibs.push(sib);
        }
        self.nodes.prefetch(&self.wanted)?;
        if !stops {
            let size = self.size;
            self.nodes
                .prefetch_for(|n| InclusionProof::make(n, i, size))?;
        }
        // Climb the perfect subtrees above it until one is trusted.
        self.climbed.clear();
        self.climbed.push(((start, i >> start), from));
        let mut h = from;
        let mut level = start;
        loop {
            let j = i >> level;
            if let Some(t) = self.trusted.get(level, j) {
                if t != h {
                    return Err(BAD);
                }
                // What the climb passed is authenticated by the subtree
                // it reached.
                self.trust_climbed();
                return Ok(());
            }
            let parent_end = ((j >> 1) + 1).checked_shl(level + 1).unwrap_or(u64::MAX);
            if level >= 63 || parent_end > self.size {
                break;
            }
            let from_tile = level
                .checked_sub(start)
                .and_then(|k| self.sibs.get(usize::try_from(k).ok()?).copied().flatten());
            let sib = match from_tile {
                Some(h) => h,
                None => self
                    .nodes
                    .perfect(level, j ^ 1)
                    .map_err(|e| self.nodes.error(e))?,
            };
            self.climbed.push(((level, j ^ 1), sib));
            h = if j & 1 == 0 {
                node_hash(&h, &sib)
            } else {
                node_hash(&sib, &h)
            };
            level += 1;
            self.climbed.push(((level, i >> level), h));
        }
        // Above the largest perfect subtree: a whole proof to the root.
        let proof =
            InclusionProof::make(&mut self.nodes, i, self.size).map_err(|e| self.nodes.error(e))?;
        proof.verify(&leaf, &self.root).map_err(|_| BAD)?;
        // Everything on the way is now authenticated.
        self.trust_climbed();
        Ok(())
    }
}

/// The checkpoint's tree root, once its signature under `key` checks.
fn signed_root(cp: &Checkpoint, key: &VerifyingKey) -> Result<Hash, SrsError> {
    if !checkpoint_is_signed_by(cp, key) {
        return Err(SrsError::InvalidCheckpoint);
    }
    // A version-1 checkpoint signs no tree.
    cp.tree_root.ok_or(SrsError::InvalidCheckpoint)
}

/// Checks that `checkpoint` was signed by the SRS whose public key is
/// `srs_key` — with nothing but that key.
///
/// # Errors
/// [`SrsError::InvalidCheckpoint`] otherwise.
pub fn verify_checkpoint(checkpoint: &Checkpoint, srs_key: &VerifyingKey) -> Result<(), SrsError> {
    if checkpoint_is_signed_by(checkpoint, srs_key) {
        Ok(())
    } else {
        Err(SrsError::InvalidCheckpoint)
    }
}

/// Checks that `entry` is in the audit log `checkpoint` signs, at its
/// sequence number, with the SRS's public key alone — no SRS, no database.
/// A patient's device or an auditor holding a checkpoint detects an entry
/// rewritten, moved or invented.
///
/// # Errors
/// [`SrsError::InvalidCheckpoint`] if the checkpoint is not signed by
/// `srs_key` or signs no tree (version 1); [`SrsError::Malformed`] with
/// [`crate::Error::InvalidLogProof`] if the proof is not for this entry and
/// checkpoint, or does not lead to its root.
pub fn verify_inclusion(
    entry: &AuditEntry,
    proof: &InclusionProof,
    checkpoint: &Checkpoint,
    srs_key: &VerifyingKey,
) -> Result<(), SrsError> {
    let root = signed_root(checkpoint, srs_key)?;
    if proof.tree_size != checkpoint.seq || proof.leaf_index.checked_add(1) != Some(entry.seq) {
        return Err(log_proof("proof is for another entry or checkpoint"));
    }
    proof.verify(&leaf_hash(&entry.to_bytes()), &root)?;
    Ok(())
}

/// Checks that the log `old` signs is a prefix of the log `new` signs, with
/// the SRS's public key alone. A holder of `old` detects a tail cut (the
/// store now older than `old`), a rewritten entry or a fork (two logs from
/// one point, both signed).
///
/// # Errors
/// [`SrsError::InvalidCheckpoint`] if either is not signed by `srs_key` or
/// signs no tree; [`SrsError::Malformed`] with
/// [`crate::Error::InvalidLogProof`] if `new` is older than `old`, or the
/// proof is not for their sizes or does not verify.
pub fn verify_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &ConsistencyProof,
    srs_key: &VerifyingKey,
) -> Result<(), SrsError> {
    let (old_root, new_root) = (signed_root(old, srs_key)?, signed_root(new, srs_key)?);
    if old.seq > new.seq {
        return Err(log_proof("the newer checkpoint is older: a tail cut"));
    }
    if proof.old_size != old.seq || proof.new_size != new.seq {
        return Err(log_proof("proof is for other checkpoints"));
    }
    proof.verify(&old_root, &new_root)?;
    Ok(())
}

impl Srs {
    /// A proof that audit entry `seq` is in the log `checkpoint` signs (a
    /// checkpoint of this SRS, kept by whoever asks), for
    /// [`verify_inclusion`]. The SRS checks the proof before it returns it:
    /// a database that lies yields an error, never a wrong proof.
    ///
    /// # Errors
    /// [`SrsError::InvalidCheckpoint`] for a checkpoint this SRS did not
    /// sign or one that signs no tree; [`SrsError::Malformed`] with
    /// [`crate::Error::InvalidLogProof`] for `seq` outside it or an entry
    /// archived away; [`SrsError::RolledBack`] if the store is older than
    /// the checkpoint; [`SrsError::Tampered`] if the store's entries or
    /// nodes do not lead to the signed root; store errors.
    pub fn inclusion_proof(
        &self,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<InclusionProof, SrsError> {
        let root = self.checkpoint_root(checkpoint)?;
        if seq == 0 || seq > checkpoint.seq {
            return Err(log_proof("entry outside the checkpoint"));
        }
        self.holds(checkpoint)?;
        let store = self.store();
        let mut nodes = StoreNodes::new(store.as_ref());
        let proof = prove(&mut nodes, seq, checkpoint.seq)?;
        let leaf = nodes.read(0, seq - 1)?;
        proof
            .verify(&leaf, &root)
            .map_err(|_| SrsError::Tampered("audit tree"))?;
        Ok(proof)
    }

    /// The tree root `checkpoint` signs, once its signature checks (the
    /// checkpoint this SRS holds as its latest was checked already).
    pub(crate) fn checkpoint_root(&self, checkpoint: &Checkpoint) -> Result<Hash, SrsError> {
        if self.latest_checkpoint().as_ref() == Some(checkpoint) {
            checkpoint.tree_root.ok_or(SrsError::InvalidCheckpoint)
        } else {
            signed_root(checkpoint, &self.verifying_key())
        }
    }

    /// [`SrsError::RolledBack`] unless the store holds the log up to
    /// `checkpoint`.
    pub(crate) fn holds(&self, checkpoint: &Checkpoint) -> Result<(), SrsError> {
        let at = self.durable_seq();
        if checkpoint.seq > at {
            return Err(SrsError::RolledBack {
                store_seq: at,
                checkpoint_seq: checkpoint.seq,
            });
        }
        Ok(())
    }

    /// The audit entry `seq` with its proof against `checkpoint`: what a
    /// patient or an auditor keeps to show it later.
    ///
    /// # Errors
    /// As [`Srs::inclusion_proof`]; [`SrsError::Tampered`] if the stored
    /// entry is not the one the log holds.
    pub fn proven_entry(
        &self,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<(AuditEntry, InclusionProof), SrsError> {
        let proof = self.inclusion_proof(seq, checkpoint)?;
        let entry = self
            .store()
            .audit(seq, seq, 1)?
            .into_iter()
            .next()
            .map(|r| r.entry)
            .ok_or(log_proof("entries archived away"))?;
        // The proof was checked against the checkpoint's root: the entry
        // read must be its leaf, at its place.
        let root = checkpoint.tree_root.ok_or(SrsError::InvalidCheckpoint)?;
        if entry.seq != seq || proof.verify(&leaf_hash(&entry.to_bytes()), &root).is_err() {
            return Err(SrsError::Tampered("audit entry"));
        }
        Ok((entry, proof))
    }

    /// A proof that the log of `old_size` entries is a prefix of the log of
    /// `new_size` (each a checkpoint's `seq`), for [`verify_consistency`]:
    /// a witness holding an older checkpoint asks for one to the latest.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] with [`crate::Error::InvalidLogProof`] if
    /// `old_size > new_size` or `new_size` is beyond the log, or entries
    /// needed were archived away; [`SrsError::Tampered`] if the store's
    /// nodes do not lead to the log's authenticated root; store errors.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, SrsError> {
        let (at, root) = self.durable_tree();
        if new_size > at {
            return Err(log_proof("size beyond the log"));
        }
        let store = self.store();
        let mut nodes = StoreNodes::new(store.as_ref());
        nodes.prefetch_for(|n| {
            if new_size == at {
                crate::merkle::root(n, old_size)?;
            }
            ConsistencyProof::make(n, old_size, new_size)
        })?;
        let proof =
            ConsistencyProof::make(&mut nodes, old_size, new_size).map_err(|e| nodes.error(e))?;
        // Against what this process knows: the head's root.
        if new_size == at {
            let old = crate::merkle::root(&mut nodes, old_size).map_err(|e| nodes.error(e))?;
            proof
                .verify(&old, &root)
                .map_err(|_| SrsError::Tampered("audit tree"))?;
        }
        Ok(proof)
    }
}
