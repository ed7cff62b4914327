//! The audit log as a Merkle tree in the manner of Certificate Transparency
//! (RFC 9162 §2.1, SHA-256): leaf hash `H(0x00 ‖ entry)`, interior node
//! `H(0x01 ‖ left ‖ right)`, the empty tree `H("")`, and a tree of `n > 1`
//! leaves split at the largest power of two below `n`.
//!
//! An [`InclusionProof`] shows that an entry is the `i`-th leaf of a tree of
//! a given size; a [`ConsistencyProof`] shows that a tree of size `m` is a
//! prefix of a tree of size `n`. Both verify against roots alone — no log,
//! no database: a patient's device or an auditor holding an older signed
//! root detects a rewritten entry, a tail cut or a fork.
//!
//! The verification algorithms are RFC 9162 §2.1.3.2 and §2.1.4.2; proofs
//! are made by §2.1.3.1 and §2.1.4.1 from any [`Nodes`] source (an
//! in-memory [`Tree`], or a store's node table).
//!
//! ```
//! use sesphr::merkle::{leaf_hash, Tree};
//!
//! let mut log = Tree::new();
//! for entry in [&b"registered"[..], b"granted", b"re-encrypted", b"revoked"] {
//!     log.push(leaf_hash(entry));
//! }
//! let root = log.root(4)?;
//! let proof = log.inclusion_proof(2, 4)?;
//! proof.verify(&leaf_hash(b"re-encrypted"), &root)?;
//! assert!(proof.verify(&leaf_hash(b"forged"), &root).is_err());
//!
//! let older = log.root(3)?;
//! log.consistency_proof(3, 4)?.verify(&older, &root)?;
//! # Ok::<(), sesphr::Error>(())
//! ```

use sha2::{Digest, Sha256};

use crate::encoding::{Reader, frame_version};
use crate::error::{Error, Result};

/// A SHA-256 hash: a leaf, a node or a root.
pub type Hash = [u8; 32];

const INCLUSION_MAGIC: [u8; 4] = *b"SPIP";
const CONSISTENCY_MAGIC: [u8; 4] = *b"SPCN";
/// A proof never has more hashes than this (two per level of a 2⁶⁴ tree).
const MAX_PATH: usize = 128;

fn bad(what: &'static str) -> Error {
    Error::InvalidLogProof { what }
}

/// The leaf hash of an entry: `SHA-256(0x00 ‖ entry)`.
#[must_use]
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// A hasher for subtree positions `(level, index)` and sequence numbers.
/// Positions are not chosen by an adversary (they follow from sequence
/// numbers the process itself asks for or writes), so a plain
/// multiplicative hash serves where SipHash would cost more than the
/// lookups it guards.
#[cfg(feature = "srs")]
#[derive(Default)]
pub(crate) struct PositionHasher(u64);

#[cfg(feature = "srs")]
impl core::hash::Hasher for PositionHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// An interior node: `SHA-256(0x01 ‖ left ‖ right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A source of the perfect subtrees of one log: `perfect(level, index)` is
/// the hash of leaves `[index·2^level, (index+1)·2^level)` (level 0: the
/// leaf hash itself). Proofs ask only for subtrees inside the tree sizes
/// they are made for.
pub trait Nodes {
    /// The hash of the perfect subtree `(level, index)`.
    ///
    /// # Errors
    /// Whatever reading it fails with (a store error, a leaf not there).
    fn perfect(&mut self, level: u32, index: u64) -> Result<Hash>;

    /// Combines two subtrees into their parent: [`node_hash`]. Only a
    /// source that answers placeholders (to learn which subtrees a proof
    /// reads) has reason to do otherwise.
    fn combine(&mut self, left: &Hash, right: &Hash) -> Hash {
        node_hash(left, right)
    }
}

/// The Merkle tree hash of leaves `[start, end)`, where `start` is a
/// multiple of the largest power of two not above `end − start` (as every
/// range the RFC's recursion visits is): perfect pieces from `nodes`.
fn range_hash(nodes: &mut dyn Nodes, start: u64, end: u64) -> Result<Hash> {
    let n = end - start;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return nodes.perfect(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(nodes, start, start + k)?;
    let right = range_hash(nodes, start + k, end)?;
    Ok(nodes.combine(&left, &right))
}

/// The root of the first `size` leaves.
///
/// # Errors
/// What `nodes` fails with.
pub fn root(nodes: &mut dyn Nodes, size: u64) -> Result<Hash> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(nodes, 0, size)
}

/// That leaf `leaf_index` is in the tree of `tree_size` leaves: the sibling
/// hashes from the leaf up to the root (RFC 9162 §2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's position, from 0.
    pub leaf_index: u64,
    /// The size of the tree whose root it proves against.
    pub tree_size: u64,
    /// The audit path, leaf side first.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Makes the proof for leaf `leaf_index` of the tree of `tree_size`
    /// leaves from `nodes` (RFC 9162 §2.1.3.1).
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] if `leaf_index >= tree_size`; what `nodes`
    /// fails with.
    pub fn make(nodes: &mut dyn Nodes, leaf_index: u64, tree_size: u64) -> Result<Self> {
        if leaf_index >= tree_size {
            return Err(bad("leaf outside the tree"));
        }
        let mut path = Vec::new();
        // Walk down from the root, remembering the sibling at each level;
        // the path lists them leaf side first.
        let (mut start, mut end, m) = (0u64, tree_size, leaf_index);
        while end - start > 1 {
            let k = split(end - start);
            if m < start + k {
                path.push(range_hash(nodes, start + k, end)?);
                end = start + k;
            } else {
                path.push(range_hash(nodes, start, start + k)?);
                start += k;
            }
        }
        path.reverse();
        Ok(Self {
            leaf_index,
            tree_size,
            path,
        })
    }

    /// The root this proof leads to from `leaf` (RFC 9162 §2.1.3.2).
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] if the proof does not fit its sizes (too
    /// long, too short, leaf outside the tree).
    pub fn root_from(&self, leaf: &Hash) -> Result<Hash> {
        if self.leaf_index >= self.tree_size {
            return Err(bad("leaf outside the tree"));
        }
        let (mut fnode, mut snode) = (self.leaf_index, self.tree_size - 1);
        let mut r = *leaf;
        for p in &self.path {
            if snode == 0 {
                return Err(bad("inclusion path too long"));
            }
            if fnode & 1 == 1 || fnode == snode {
                r = node_hash(p, &r);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        if snode != 0 {
            return Err(bad("inclusion path too short"));
        }
        Ok(r)
    }

    /// Checks that `leaf` is leaf `leaf_index` of the tree with `root`.
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] if it is not.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<()> {
        use subtle::ConstantTimeEq;
        if bool::from(self.root_from(leaf)?.ct_eq(root)) {
            Ok(())
        } else {
            Err(bad("inclusion proof does not lead to the root"))
        }
    }

    /// `"SPIP" ‖ 0x01 ‖ u64(leaf_index) ‖ u64(tree_size) ‖ u8(n) ‖ n × hash`.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(INCLUSION_MAGIC, self.leaf_index, self.tree_size, &self.path)
    }

    /// Decodes [`InclusionProof::to_bytes`].
    ///
    /// # Errors
    /// The decoding errors of [`crate::Error`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (leaf_index, tree_size, path) = decode(INCLUSION_MAGIC, "inclusion proof", bytes)?;
        Ok(Self {
            leaf_index,
            tree_size,
            path,
        })
    }
}

/// That the tree of `old_size` leaves is a prefix of the tree of
/// `new_size` leaves (RFC 9162 §2.1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older, smaller size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// The proof's hashes, in the RFC's order.
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Makes the proof from the tree of `old_size` to that of `new_size`
    /// leaves from `nodes` (RFC 9162 §2.1.4.1). Empty when `old_size` is 0
    /// or equals `new_size`.
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] if `old_size > new_size`; what `nodes`
    /// fails with.
    pub fn make(nodes: &mut dyn Nodes, old_size: u64, new_size: u64) -> Result<Self> {
        if old_size > new_size {
            return Err(bad("old size above the new size"));
        }
        let mut path = Vec::new();
        if old_size > 0 && old_size < new_size {
            // SUBPROOF(m, D[start:end], b), iteratively: the hashes are
            // appended innermost first, so collect and reverse.
            let (mut start, mut end, mut m, mut whole) = (0u64, new_size, old_size, true);
            loop {
                let n = end - start;
                if m == n {
                    if !whole {
                        path.push(range_hash(nodes, start, end)?);
                    }
                    break;
                }
                let k = split(n);
                if m <= k {
                    path.push(range_hash(nodes, start + k, end)?);
                    end = start + k;
                } else {
                    path.push(range_hash(nodes, start, start + k)?);
                    start += k;
                    m -= k;
                    whole = false;
                }
            }
            path.reverse();
        }
        Ok(Self {
            old_size,
            new_size,
            path,
        })
    }

    /// Checks that `old_root` (of `old_size` leaves) and `new_root` (of
    /// `new_size`) are roots of one log, the first a prefix of the second
    /// (RFC 9162 §2.1.4.2).
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] if they are not, or the proof does not fit
    /// its sizes.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<()> {
        let (m, n) = (self.old_size, self.new_size);
        if m > n {
            return Err(bad("old size above the new size"));
        }
        if m == n || m == 0 {
            if !self.path.is_empty() {
                return Err(bad("consistency path too long"));
            }
            // Equal sizes: one root. From the empty tree: anything extends it.
            return if m == 0 && old_root == &empty_root() || m == n && old_root == new_root {
                Ok(())
            } else {
                Err(bad("roots of different logs"))
            };
        }
        let mut path = self.path.iter();
        let first = if m.is_power_of_two() {
            *old_root
        } else {
            *path.next().ok_or(bad("consistency path too short"))?
        };
        let (mut fnode, mut snode) = (m - 1, n - 1);
        while fnode & 1 == 1 {
            fnode >>= 1;
            snode >>= 1;
        }
        let (mut fr, mut sr) = (first, first);
        for c in path {
            if snode == 0 {
                return Err(bad("consistency path too long"));
            }
            if fnode & 1 == 1 || fnode == snode {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if fnode & 1 == 0 {
                    while fnode & 1 == 0 && fnode != 0 {
                        fnode >>= 1;
                        snode >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fnode >>= 1;
            snode >>= 1;
        }
        if snode != 0 {
            return Err(bad("consistency path too short"));
        }
        if &fr == old_root && &sr == new_root {
            Ok(())
        } else {
            Err(bad("roots of different logs"))
        }
    }

    /// `"SPCN" ‖ 0x01 ‖ u64(old_size) ‖ u64(new_size) ‖ u8(n) ‖ n × hash`.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(CONSISTENCY_MAGIC, self.old_size, self.new_size, &self.path)
    }

    /// Decodes [`ConsistencyProof::to_bytes`].
    ///
    /// # Errors
    /// The decoding errors of [`crate::Error`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (old_size, new_size, path) = decode(CONSISTENCY_MAGIC, "consistency proof", bytes)?;
        Ok(Self {
            old_size,
            new_size,
            path,
        })
    }
}

fn encode(magic: [u8; 4], a: u64, b: u64, path: &[Hash]) -> Vec<u8> {
    let mut v = frame_version(magic, 1, 22 + 32 * path.len());
    v.extend_from_slice(&a.to_be_bytes());
    v.extend_from_slice(&b.to_be_bytes());
    // Proofs made here have at most MAX_PATH hashes.
    v.push(u8::try_from(path.len()).unwrap_or(u8::MAX));
    for h in path {
        v.extend_from_slice(h);
    }
    v
}

fn decode(magic: [u8; 4], what: &'static str, bytes: &[u8]) -> Result<(u64, u64, Vec<Hash>)> {
    let mut r = Reader::framed_version(what, bytes, magic, 1)?;
    let a = r.u64()?;
    let b = r.u64()?;
    let n = usize::from(r.byte()?);
    if n > MAX_PATH {
        return Err(Error::Malformed {
            what: "proof longer than any tree needs",
        });
    }
    let path = (0..n).map(|_| r.array()).collect::<Result<Vec<Hash>>>()?;
    r.finish()?;
    Ok((a, b, path))
}

/// A whole log in memory: every perfect subtree kept as leaves arrive (two
/// hashes per leaf). For auditors rebuilding a log from an export, and for
/// tests.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// `levels[k][j]`: the perfect subtree `(k, j)`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves it holds.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash ([`leaf_hash`] of the entry).
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(h);
            if row.len() % 2 == 1 {
                return;
            }
            let (Some(l), Some(r)) = (row.get(row.len() - 2), row.last()) else {
                return;
            };
            h = node_hash(l, r);
            level += 1;
        }
    }

    /// The root of the first `size` leaves.
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] if `size` is above [`Tree::size`].
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check(size)?;
        root(&mut &*self, size)
    }

    /// [`InclusionProof::make`] on this log.
    ///
    /// # Errors
    /// As [`InclusionProof::make`]; `tree_size` above [`Tree::size`].
    pub fn inclusion_proof(&self, leaf_index: u64, tree_size: u64) -> Result<InclusionProof> {
        self.check(tree_size)?;
        InclusionProof::make(&mut &*self, leaf_index, tree_size)
    }

    /// [`ConsistencyProof::make`] on this log.
    ///
    /// # Errors
    /// As [`ConsistencyProof::make`]; `new_size` above [`Tree::size`].
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<ConsistencyProof> {
        self.check(new_size)?;
        ConsistencyProof::make(&mut &*self, old_size, new_size)
    }

    fn check(&self, size: u64) -> Result<()> {
        if size > self.size() {
            return Err(bad("tree size beyond the log"));
        }
        Ok(())
    }
}

impl Nodes for &Tree {
    fn perfect(&mut self, level: u32, index: u64) -> Result<Hash> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(bad("subtree beyond the log"))
    }
}

/// The right-hand frontier of a log: the roots of its maximal perfect
/// subtrees, largest first (one per set bit of the size). Appending keeps
/// it in `O(log n)` hashes, amortized `O(1)` hashing per leaf; the root
/// follows from it alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty log.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from a log's size and its peaks (largest first), e.g. as
    /// kept beside a checkpoint.
    ///
    /// # Errors
    /// [`Error::InvalidLogProof`] unless there is one peak per set bit of
    /// `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<Self> {
        if peaks.len() != size.count_ones() as usize {
            return Err(bad("peaks do not match the size"));
        }
        Ok(Self { size, peaks })
    }

    /// How many leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks, largest first.
    #[must_use]
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_reporting(leaf, &mut |_, _, _| {});
    }

    /// Appends a leaf hash, calling `made(level, index, hash)` for every
    /// perfect subtree it completes (the leaf itself at level 0 first).
    pub fn push_reporting(&mut self, leaf: Hash, made: &mut dyn FnMut(u32, u64, &Hash)) {
        let leaf_index = self.size;
        let mut h = leaf;
        made(0, leaf_index, &h);
        // Each trailing one bit of the old size is a peak that merges.
        let merges = self.size.trailing_ones();
        for level in 1..=merges {
            let Some(left) = self.peaks.pop() else { break };
            h = node_hash(&left, &h);
            made(level, ((leaf_index + 1) >> level) - 1, &h);
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// The root of the log.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, p| node_hash(p, &acc))
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

    fn h(s: &str) -> Hash {
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// The RFC 6962 reference log (transparency-dev/merkle test data).
    fn reference() -> Tree {
        let mut t = Tree::new();
        for e in [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ] {
            t.push(leaf_hash(&unhex(e)));
        }
        t
    }

    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn roots_proofs_and_frontier_match_the_rfc_6962_reference() {
        let t = reference();
        let mut f = Frontier::new();
        assert_eq!(f.root(), h(ROOTS[0]));
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(t.root(n as u64).unwrap(), h(want), "size {n}");
            if n > 0 {
                f.push((&t).perfect(0, n as u64 - 1).unwrap());
                assert_eq!(f.root(), h(want), "frontier at {n}");
            }
        }
        let p = t.inclusion_proof(0, 8).unwrap();
        assert_eq!(
            p.path,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
            .map(h)
        );
        let p = t.inclusion_proof(5, 8).unwrap();
        assert_eq!(
            p.path,
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
            .map(h)
        );
        let c = t.consistency_proof(2, 8).unwrap();
        assert_eq!(
            c.path,
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
            .map(h)
        );
        c.verify(&h(ROOTS[2]), &h(ROOTS[8])).unwrap();
    }

    #[test]
    fn every_proof_of_every_small_tree_verifies_and_no_other_does() {
        let mut t = Tree::new();
        for i in 0..70u32 {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        let roots: Vec<Hash> = (0..=70).map(|n| t.root(n).unwrap()).collect();
        for n in 1..=70u64 {
            for i in 0..n {
                let leaf = (&t).perfect(0, i).unwrap();
                let p = t.inclusion_proof(i, n).unwrap();
                p.verify(&leaf, &roots[n as usize]).unwrap();
                assert_eq!(InclusionProof::from_bytes(&p.to_bytes()).unwrap(), p);
                // Another leaf, index, size or root; a path cut or extended.
                let other = (&t).perfect(0, (i + 1) % n).unwrap();
                assert!(n == 1 || p.verify(&other, &roots[n as usize]).is_err());
                assert!(p.verify(&leaf, &roots[n as usize - 1]).is_err());
                for (li, ts) in [(i ^ 1, n), (i, n + 1), (i + n, n)] {
                    let q = InclusionProof {
                        leaf_index: li,
                        tree_size: ts,
                        path: p.path.clone(),
                    };
                    if (li, ts) != (i, n) && li < n + 1 && (&t).perfect(0, li).ok() != Some(leaf) {
                        assert!(q.verify(&leaf, &roots[n as usize]).is_err(), "{i}/{n}");
                    }
                }
                let mut short = p.clone();
                if short.path.pop().is_some() {
                    assert!(short.verify(&leaf, &roots[n as usize]).is_err());
                }
                let mut long = p.clone();
                long.path.push([7; 32]);
                assert!(long.verify(&leaf, &roots[n as usize]).is_err());
            }
            for m in 0..=n {
                let c = t.consistency_proof(m, n).unwrap();
                c.verify(&roots[m as usize], &roots[n as usize]).unwrap();
                assert_eq!(ConsistencyProof::from_bytes(&c.to_bytes()).unwrap(), c);
                if m > 0 && m < n {
                    // A fork: the old root of another log.
                    assert!(c.verify(&[9; 32], &roots[n as usize]).is_err());
                    assert!(
                        c.verify(&roots[m as usize], &roots[n as usize - 1])
                            .is_err()
                    );
                    for k in 0..c.path.len() {
                        let mut bent = c.clone();
                        bent.path[k][0] ^= 1;
                        assert!(bent.verify(&roots[m as usize], &roots[n as usize]).is_err());
                    }
                    let mut short = c.clone();
                    short.path.pop();
                    assert!(
                        short
                            .verify(&roots[m as usize], &roots[n as usize])
                            .is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn the_frontier_agrees_with_the_tree_and_round_trips_its_peaks() {
        let mut t = Tree::new();
        let mut f = Frontier::new();
        for i in 0..300u32 {
            let leaf = leaf_hash(&i.to_le_bytes());
            t.push(leaf);
            f.push(leaf);
            assert_eq!(f.root(), t.root(u64::from(i) + 1).unwrap());
            let again = Frontier::from_peaks(f.size(), f.peaks().to_vec()).unwrap();
            assert_eq!(again, f);
        }
        assert!(Frontier::from_peaks(5, vec![[0; 32]]).is_err());
        // Every perfect subtree is reported once, where the tree has it.
        let mut g = Frontier::new();
        let mut seen = 0;
        for i in 0..300u64 {
            g.push_reporting((&t).perfect(0, i).unwrap(), &mut |level, index, hash| {
                assert_eq!((&t).perfect(level, index).unwrap(), *hash);
                seen += 1;
            });
        }
        assert_eq!(seen, (0..9).map(|k| 300u64 >> k).sum::<u64>());
    }

    #[test]
    fn malformed_proofs_are_typed_errors() {
        let t = reference();
        let p = t.inclusion_proof(3, 8).unwrap().to_bytes();
        for cut in 0..p.len() {
            assert!(InclusionProof::from_bytes(&p[..cut]).is_err());
        }
        let mut extra = p.clone();
        extra.push(0);
        assert!(InclusionProof::from_bytes(&extra).is_err());
        assert!(ConsistencyProof::from_bytes(&p).is_err());
        assert!(t.inclusion_proof(8, 8).is_err());
        assert!(t.inclusion_proof(0, 9).is_err());
        assert!(t.consistency_proof(5, 3).is_err());
        let c = ConsistencyProof {
            old_size: 5,
            new_size: 3,
            path: Vec::new(),
        };
        assert!(c.verify(&[0; 32], &[0; 32]).is_err());
    }
}
