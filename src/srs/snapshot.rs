//! Registry snapshots: the registry's own layout, sealed under a key derived
//! from the storage key, so that an open reads one stream instead of
//! authenticating and applying every row.
//!
//! A snapshot is a sequence of parts. Part `i` is stored as
//! `id ‖ nonce ‖ ChaCha20-Poly1305(snapshot key, nonce, plaintext_i, aad_i) ‖ tag`
//! with `aad_i = parts("sesphr/v2/registry-snapshot", id, u64(i), u8(last))`:
//! a part moved, dropped, cut or taken from another snapshot does not open,
//! and a stream that ends without its last part is refused. The plaintexts
//! joined are `u32(format 1) ‖ u64(seq) ‖ chain hash ‖ registry digest` (the
//! position the registry was at) then the registry's image
//! (`registry::image`).
//!
//! Nothing in a snapshot is trusted on its own word. At open, the rows the
//! store holds with a generation after the snapshot's position are each
//! authenticated and applied on top (the digest moving by the rows they
//! replace and by themselves, as a commit's catch-up does), and the result
//! must give the digest of the authenticated chain head: the registry then
//! holds exactly the rows the head vouches for. A snapshot that does not
//! open, is bound to a position this store does not hold, or does not reach
//! the head's digest is ignored, and every row is verified one by one, as
//! without a snapshot; [`crate::srs::OpenReport::snapshot`] says which.
//!
//! A snapshot holds re-encryption keys: a commit that deletes one (a
//! revocation, a removal) deletes the snapshot with it.

use curve25519_dalek::scalar::Scalar;
use zeroize::Zeroizing;

use crate::hash::encode_parts;
use crate::rng::os_rng;
use crate::srs::registry::{ImageReader, ImageWriter, Registry};
use crate::srs::secrets::SrsKeys;
use crate::srs::types::SrsError;
use crate::store::{ChainHead, Store, StoreError};

/// Plaintext bytes per part.
const PART: usize = 1 << 14;
const ID_LEN: usize = 16;
const FORMAT: u32 = 1;
const AAD_TAG: &[u8] = b"sesphr/v2/registry-snapshot";

/// What an open did with the registry snapshot the store keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotUse {
    /// The store keeps no snapshot (or the store was just created).
    #[default]
    None,
    /// The registry was read from the snapshot, plus the rows written since
    /// it, each authenticated; together they gave the chain head's digest.
    Used {
        /// The audit sequence number the snapshot was taken at.
        seq: u64,
        /// Rows written since, authenticated and applied on top.
        rows_since: u64,
    },
    /// The snapshot was not used: every row was verified instead.
    Ignored(SnapshotFault),
}

/// Why a registry snapshot was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotFault {
    /// A part does not open under this storage key, is out of order, cut
    /// or missing, or the stream does not decode.
    Unreadable,
    /// It is bound to a position after the chain head (a store rolled
    /// back, or another store's snapshot).
    Ahead,
    /// It is bound to a chain hash this store does not hold at that
    /// position (another store's snapshot).
    OtherStore,
    /// With the rows written since, it does not give the chain head's
    /// registry digest (rows since it edited or missing, or another
    /// store's snapshot).
    Mismatch,
}

/// What [`crate::srs::Srs::write_snapshot`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The audit sequence number the registry was at.
    pub seq: u64,
    /// Parts written.
    pub parts: u64,
    /// Bytes written (sealed).
    pub bytes: u64,
}

fn aad(id: &[u8; ID_LEN], index: u64, last: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    encode_parts(
        &mut v,
        &[AAD_TAG, id, &index.to_be_bytes(), &[u8::from(last)]],
    );
    v
}

/// Seals plaintext parts as they come; a part is sealed once the next one
/// (or the end) shows whether it is the last.
struct Sealer<'a> {
    keys: &'a SrsKeys,
    id: [u8; ID_LEN],
    index: u64,
    pending: Option<Zeroizing<Vec<u8>>>,
    out: &'a mut dyn FnMut(Vec<u8>) -> Result<(), SrsError>,
    bytes: u64,
}

impl Sealer<'_> {
    fn push(&mut self, part: Zeroizing<Vec<u8>>) -> Result<(), SrsError> {
        if let Some(p) = self.pending.replace(part) {
            self.seal(&p, false)?;
        }
        Ok(())
    }

    fn seal(&mut self, part: &[u8], last: bool) -> Result<(), SrsError> {
        let sealed =
            self.keys
                .seal_snapshot(part, &aad(&self.id, self.index, last), &mut os_rng())?;
        let mut stored = Vec::with_capacity(ID_LEN + sealed.len());
        stored.extend_from_slice(&self.id);
        stored.extend_from_slice(&sealed);
        self.index += 1;
        self.bytes += stored.len() as u64;
        (self.out)(stored)
    }

    fn finish(&mut self) -> Result<(), SrsError> {
        match self.pending.take() {
            Some(p) => self.seal(&p, true),
            None => Err(SrsError::Unavailable),
        }
    }
}

/// Where a registry stands: audit sequence number, chain hash, digest.
pub(crate) struct At {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) digest: Scalar,
}

/// Seals `reg` (at `at`) part by part into `out`. Returns (parts, bytes).
fn seal_image(
    keys: &SrsKeys,
    reg: &Registry,
    at: &At,
    out: &mut dyn FnMut(Vec<u8>) -> Result<(), SrsError>,
) -> Result<(u64, u64), SrsError> {
    let mut id = [0u8; ID_LEN];
    rand_core::Rng::fill_bytes(&mut os_rng(), &mut id);
    let mut sealer = Sealer {
        keys,
        id,
        index: 0,
        pending: None,
        out,
        bytes: 0,
    };
    {
        let mut sink = |p: Zeroizing<Vec<u8>>| sealer.push(p);
        let mut w = ImageWriter::new(PART, &mut sink);
        w.put(&FORMAT.to_be_bytes())?;
        w.put(&at.seq.to_be_bytes())?;
        w.put(&at.hash)?;
        w.put(&at.digest.to_bytes())?;
        reg.write_image(&mut w)?;
        w.finish()?;
    }
    sealer.finish()?;
    Ok((sealer.index, sealer.bytes))
}

/// Writes a snapshot of `reg`, which stands at `at`, to `store`, replacing
/// the one it keeps. `None` if the store keeps no snapshot.
///
/// # Errors
/// Store errors (then the snapshot kept before is unchanged).
pub(crate) fn write(
    store: &dyn Store,
    keys: &SrsKeys,
    reg: &Registry,
    at: &At,
) -> Result<Option<SnapshotInfo>, SrsError> {
    let mut failure = None;
    let mut sealed = (0, 0);
    // A failed producer says so on the channel: the store's write then
    // fails and keeps the snapshot it had.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(2);
    let kept = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut send = |p: Vec<u8>| tx.send(Some(p)).map_err(|_| SrsError::Unavailable);
            let r = seal_image(keys, reg, at, &mut send);
            if r.is_err() {
                let _ = tx.send(None);
            }
            r
        });
        let kept = store.put_registry_snapshot(&mut || match rx.recv() {
            Ok(Some(p)) => Ok(Some(p)),
            Ok(None) => Err(StoreError::corrupt("the snapshot was not made")),
            // The producer is done.
            Err(_) => Ok(None),
        });
        drop(rx);
        match producer.join() {
            Ok(Ok(n)) => sealed = n,
            Ok(Err(e)) => failure = Some(e),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        kept
    });
    // A store that keeps no snapshot stopped reading at once.
    if !kept? {
        return Ok(None);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Some(SnapshotInfo {
        seq: at.seq,
        parts: sealed.0,
        bytes: sealed.1,
    }))
}

/// Reads the store's snapshot into `into` (empty) and applies the rows
/// written since. `Ok(None)` if the store keeps none; `Err(fault)` if it
/// must be ignored. Returns how many rows since it were applied.
pub(crate) fn restore(
    store: &dyn Store,
    keys: &SrsKeys,
    head: &ChainHead,
    into: &mut Registry,
) -> Result<Option<(u64, u64)>, SnapshotFault> {
    let Some(bound) = read(store, keys, into)? else {
        return Ok(None);
    };
    if bound.seq > head.seq {
        return Err(SnapshotFault::Ahead);
    }
    if !holds(store, head, bound.seq, &bound.hash) {
        return Err(SnapshotFault::OtherStore);
    }
    let mut digest: Scalar = Option::from(Scalar::from_canonical_bytes(bound.digest))
        .ok_or(SnapshotFault::Unreadable)?;
    let mut n = 0u64;
    let applied = store.rows_since(bound.seq, &mut |stored| {
        let step = into.apply_stored(&stored, keys, head.seq, &mut digest);
        n += 1;
        step.map_err(|_| StoreError::corrupt("a row since the snapshot"))
    });
    if applied.is_err() || digest.to_bytes() != head.digest {
        return Err(SnapshotFault::Mismatch);
    }
    Ok(Some((bound.seq, n)))
}

/// Whether the store holds chain hash `hash` at `seq`, as far as it can
/// tell without a walk (a filter only: the digest decides).
fn holds(store: &dyn Store, head: &ChainHead, seq: u64, hash: &[u8; 32]) -> bool {
    if seq == head.seq {
        return &head.hash == hash;
    }
    if seq == head.base_seq {
        return &head.base_hash == hash;
    }
    if let Ok(Some(cp)) = store.checkpoint_at(seq) {
        return &cp.chain_hash == hash;
    }
    if seq > head.base_seq {
        return store
            .audit(seq, seq, 1)
            .ok()
            .and_then(|r| r.first().map(|r| r.hash))
            .is_some_and(|h| &h == hash);
    }
    true
}

struct Bound {
    seq: u64,
    hash: [u8; 32],
    digest: [u8; 32],
}

/// Checks and opens stored parts in order; a part is opened once the next
/// (or the end) shows whether it is the last.
struct PartOpener<'a> {
    keys: &'a SrsKeys,
    id: Option<[u8; ID_LEN]>,
    index: u64,
    held: Option<Vec<u8>>,
}

impl PartOpener<'_> {
    fn open(&mut self, stored: &[u8], last: bool) -> Option<Zeroizing<Vec<u8>>> {
        let id: [u8; ID_LEN] = stored.get(..ID_LEN)?.try_into().ok()?;
        if *self.id.get_or_insert(id) != id {
            return None;
        }
        let plain = self
            .keys
            .open_snapshot(stored.get(ID_LEN..)?, &aad(&id, self.index, last))?;
        self.index += 1;
        Some(plain)
    }

    /// Reads every part of the store's snapshot, handing each opened part
    /// to `send` (which says whether to go on). `Ok(false)`: none kept.
    fn read_all(
        &mut self,
        store: &dyn Store,
        send: &mut dyn FnMut(Zeroizing<Vec<u8>>) -> bool,
    ) -> Result<bool, ()> {
        let bad = || StoreError::corrupt("registry snapshot part");
        let found = store
            .registry_snapshot(&mut |stored| {
                if let Some(prev) = self.held.replace(stored) {
                    let plain = self.open(&prev, false).ok_or_else(bad)?;
                    if !send(plain) {
                        return Err(bad());
                    }
                }
                Ok(())
            })
            .map_err(|_| ())?;
        if !found {
            return Ok(false);
        }
        let last = self.held.take().ok_or(())?;
        let plain = self.open(&last, true).ok_or(())?;
        if send(plain) { Ok(true) } else { Err(()) }
    }
}

/// Decodes the stream `next` yields into `into`: the position, then the
/// registry's image.
fn decode_from(
    next: &mut dyn FnMut() -> Result<Option<Zeroizing<Vec<u8>>>, SrsError>,
    into: &mut Registry,
    keys: &SrsKeys,
) -> Result<Bound, SrsError> {
    let mut r = ImageReader::new(next);
    let (format, seq, hash, digest) = r.header()?;
    if format != FORMAT {
        return Err(SrsError::Tampered("registry snapshot format"));
    }
    into.read_image(&mut r, keys)?;
    Ok(Bound { seq, hash, digest })
}

/// Opens the store's snapshot into `into`: read and opened on this thread
/// while another decodes (where threads are allowed; else opened whole
/// first).
fn read(
    store: &dyn Store,
    keys: &SrsKeys,
    into: &mut Registry,
) -> Result<Option<Bound>, SnapshotFault> {
    let mut opener = PartOpener {
        keys,
        id: None,
        index: 0,
        held: None,
    };
    let conclude = |found: Result<bool, ()>, decoded: Result<Bound, SrsError>| match found {
        Ok(false) => Ok(None),
        Ok(true) => decoded.map(Some).map_err(|_| SnapshotFault::Unreadable),
        Err(()) => Err(SnapshotFault::Unreadable),
    };
    #[cfg(feature = "parallel")]
    if crate::parallel::enabled() {
        // Two parts in flight at most: bounded memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Zeroizing<Vec<u8>>>(2);
        return std::thread::scope(|scope| {
            let worker = scope.spawn(move || decode_from(&mut || Ok(rx.recv().ok()), into, keys));
            let found = opener.read_all(store, &mut |p| tx.send(p).is_ok());
            drop(tx);
            let decoded = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            conclude(found, decoded)
        });
    }
    let mut parts = std::collections::VecDeque::new();
    let found = opener.read_all(store, &mut |p| {
        parts.push_back(p);
        true
    });
    let decoded = decode_from(&mut || Ok(parts.pop_front()), into, keys);
    conclude(found, decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{GrantOptions, PatientRegistration};
    use crate::model::Role;
    use crate::srs::Srs;
    use crate::{Identity, KeyPair, PatientKeys, PortionLabel, ReKey};

    /// An SRS with two patients, users, an active and a revoked grant.
    fn sample() -> Srs {
        let srs = Srs::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let lab = PortionLabel::new("lab").unwrap_or_else(|e| panic!("{e}"));
        for i in 0..2u8 {
            let p = PatientKeys::from_master(
                Identity::new(format!("patient-{i}")).unwrap_or_else(|e| panic!("{e}")),
                &[i; 32],
            );
            let reg =
                PatientRegistration::new(&p, &[(lab.clone(), 0)]).unwrap_or_else(|e| panic!("{e}"));
            srs.register_patient(&reg).unwrap_or_else(|e| panic!("{e}"));
            let id = Identity::new(format!("doctor-{i}")).unwrap_or_else(|e| panic!("{e}"));
            let kp = KeyPair::from_secret_bytes(&[i + 1; 32]).unwrap_or_else(|e| panic!("{e}"));
            srs.register_user(&id, Role::Doctor, kp.public(), &kp.prove_possession(&id))
                .unwrap_or_else(|e| panic!("{e}"));
            let rk = ReKey::generate(&p.portion_secret(&lab, 0), kp.public());
            let signed = p
                .sign_grant(&lab, 0, &id, &rk, &GrantOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            srs.grant(&signed, rk).unwrap_or_else(|e| panic!("{e}"));
            if i == 1 {
                let r = p
                    .sign_revocation(&lab, &id)
                    .unwrap_or_else(|e| panic!("{e}"));
                srs.revoke(&r).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        srs
    }

    /// The plaintext stream of `srs`'s snapshot, in parts of `part` bytes.
    fn stream(srs: &Srs, part: usize) -> Vec<Zeroizing<Vec<u8>>> {
        let mut parts = Vec::new();
        let mut sink = |p: Zeroizing<Vec<u8>>| {
            parts.push(p);
            Ok(())
        };
        let mut w = ImageWriter::new(part, &mut sink);
        srs.read()
            .write_image(&mut w)
            .unwrap_or_else(|e| panic!("{e}"));
        w.finish().unwrap_or_else(|e| panic!("{e}"));
        parts
    }

    fn decode(srs: &Srs, parts: Vec<Zeroizing<Vec<u8>>>) -> Result<Registry, SrsError> {
        let mut it = parts.into_iter();
        let mut next = || Ok(it.next());
        let mut r = ImageReader::new(&mut next);
        let mut reg = Registry::default();
        reg.read_image(&mut r, &srs.keys)?;
        Ok(reg)
    }

    #[test]
    fn the_image_reads_back_whatever_the_part_size() {
        let srs = sample();
        let want = srs.read().view();
        for part in [1, 7, 64, PART] {
            let reg = decode(&srs, stream(&srs, part)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reg.view(), want, "parts of {part}");
        }
    }

    #[test]
    fn a_cut_or_damaged_image_is_an_error_never_a_panic() {
        let srs = sample();
        let whole: Vec<u8> = stream(&srs, PART).iter().flat_map(|p| p.to_vec()).collect();
        // Every cut: an error (the end mark is missing).
        for n in 0..whole.len() {
            let cut = vec![Zeroizing::new(whole[..n].to_vec())];
            assert!(decode(&srs, cut).is_err(), "cut at {n}");
        }
        // Trailing bytes: an error.
        let mut longer = whole.clone();
        longer.push(0);
        assert!(decode(&srs, vec![Zeroizing::new(longer)]).is_err());
        // Every byte changed: an error or a registry, never a panic (the
        // snapshot's seal is what stops an edit; this is the decoder alone).
        for at in 0..whole.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut v = whole.clone();
                v[at] ^= x;
                let _ = decode(&srs, vec![Zeroizing::new(v)]);
            }
        }
    }
}
