//! The registry's own layout as a byte stream: what a registry snapshot
//! seals (see `srs::snapshot`). Writing walks the slabs in order; reading
//! refills them in that order and rebuilds the indexes, so a restart does
//! no lookup per row.
//!
//! Every integer is big-endian. The stream is
//! `names ‖ labels ‖ users ‖ patients ‖ portions ‖ grants ‖ rows ‖ "END."`,
//! each a `u64` count then its items; `rows` are the small tables (requests,
//! consent orders, disclosure counts, the post-quantum key version) as row
//! images, re-applied. Every reference between slots is checked on reading
//! (in range, and a list link points to an earlier slot, so no list loops):
//! a stream that does not hold together is refused, never trusted.

use std::hash::BuildHasher;

use zeroize::Zeroizing;

use super::{
    CORRUPT, GrantSlot, Index, NONE, Name, PatientSlot, PortionSlot, Registry, Slab, SlotState,
    UserSlot, name_in,
};
use crate::ids::PortionLabel;
use crate::model::{GrantTerms, Role, Scope};
use crate::pq::{PQ_PUBLIC_KEY_LEN, PqPublicKey};
use crate::reencrypt::ServingKey;
use crate::srs::rows::{Consented, Row, RowImage};
use crate::srs::secrets::SrsKeys;
use crate::srs::types::SrsError;
use crate::store::StoredRow;

const END: &[u8; 4] = b"END.";

/// Writes the stream in parts of about `part` bytes, handing each to `sink`
/// (the buffers are zeroized: they hold re-encryption keys).
pub(crate) struct ImageWriter<'a> {
    buf: Zeroizing<Vec<u8>>,
    part: usize,
    sink: &'a mut dyn FnMut(Zeroizing<Vec<u8>>) -> Result<(), SrsError>,
}

impl<'a> ImageWriter<'a> {
    pub(crate) fn new(
        part: usize,
        sink: &'a mut dyn FnMut(Zeroizing<Vec<u8>>) -> Result<(), SrsError>,
    ) -> Self {
        Self {
            buf: Zeroizing::new(Vec::with_capacity(part + 2048)),
            part,
            sink,
        }
    }

    pub(crate) fn put(&mut self, b: &[u8]) -> Result<(), SrsError> {
        let mut b = b;
        while !b.is_empty() {
            let room = self.part.saturating_sub(self.buf.len()).max(1);
            let (now, later) = b.split_at(room.min(b.len()));
            self.buf.extend_from_slice(now);
            b = later;
            if self.buf.len() >= self.part {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SrsError> {
        let full = core::mem::replace(
            &mut self.buf,
            Zeroizing::new(Vec::with_capacity(self.part + 2048)),
        );
        (self.sink)(full)
    }

    fn u8(&mut self, x: u8) -> Result<(), SrsError> {
        self.put(&[x])
    }

    fn u32(&mut self, x: u32) -> Result<(), SrsError> {
        self.put(&x.to_be_bytes())
    }

    fn u64(&mut self, x: u64) -> Result<(), SrsError> {
        self.put(&x.to_be_bytes())
    }

    fn len(&mut self, n: usize) -> Result<(), SrsError> {
        self.u64(n as u64)
    }

    fn opt_u64(&mut self, x: Option<u64>) -> Result<(), SrsError> {
        match x {
            None => self.u8(0),
            Some(v) => {
                self.u8(1)?;
                self.u64(v)
            }
        }
    }

    fn short(&mut self, b: &[u8]) -> Result<(), SrsError> {
        self.u8(u8::try_from(b.len()).map_err(|_| CORRUPT)?)?;
        self.put(b)
    }

    fn long(&mut self, b: &[u8]) -> Result<(), SrsError> {
        self.len(b.len())?;
        self.put(b)
    }

    /// Hands over the last part.
    pub(crate) fn finish(mut self) -> Result<(), SrsError> {
        self.put(END)?;
        if !self.buf.is_empty() {
            self.flush()?;
        }
        Ok(())
    }
}

/// Reads the stream from parts that `next` yields in order.
pub(crate) struct ImageReader<'a> {
    cur: Zeroizing<Vec<u8>>,
    pos: usize,
    next: &'a mut dyn FnMut() -> Result<Option<Zeroizing<Vec<u8>>>, SrsError>,
}

impl<'a> ImageReader<'a> {
    pub(crate) fn new(
        next: &'a mut dyn FnMut() -> Result<Option<Zeroizing<Vec<u8>>>, SrsError>,
    ) -> Self {
        Self {
            cur: Zeroizing::new(Vec::new()),
            pos: 0,
            next,
        }
    }

    fn take(&mut self, out: &mut [u8]) -> Result<(), SrsError> {
        // Most reads lie inside the current part.
        if let Some(src) = self
            .pos
            .checked_add(out.len())
            .and_then(|end| self.cur.get(self.pos..end))
        {
            out.copy_from_slice(src);
            self.pos += out.len();
            return Ok(());
        }
        let mut filled = 0;
        while filled < out.len() {
            if self.pos >= self.cur.len() {
                self.cur = (self.next)()?.ok_or(CORRUPT)?;
                self.pos = 0;
                continue;
            }
            let n = (out.len() - filled).min(self.cur.len() - self.pos);
            let (Some(dst), Some(src)) = (
                out.get_mut(filled..filled + n),
                self.cur.get(self.pos..self.pos + n),
            ) else {
                return Err(CORRUPT);
            };
            dst.copy_from_slice(src);
            filled += n;
            self.pos += n;
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SrsError> {
        let mut a = [0u8; N];
        self.take(&mut a)?;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, SrsError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, SrsError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SrsError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn flag(&mut self) -> Result<bool, SrsError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CORRUPT),
        }
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, SrsError> {
        Ok(if self.flag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    /// A count, at most `limit` (no allocation is sized by an unchecked
    /// number: items are read one by one).
    fn count(&mut self, limit: u64) -> Result<usize, SrsError> {
        let n = self.u64()?;
        if n > limit {
            return Err(CORRUPT);
        }
        usize::try_from(n).map_err(|_| CORRUPT)
    }

    fn short(&mut self) -> Result<Vec<u8>, SrsError> {
        let n = usize::from(self.u8()?);
        let mut v = vec![0u8; n];
        self.take(&mut v)?;
        Ok(v)
    }

    fn long(&mut self, limit: u64) -> Result<Vec<u8>, SrsError> {
        let n = self.count(limit)?;
        let mut v = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            let c = chunk.get_mut(..k).ok_or(CORRUPT)?;
            self.take(c)?;
            v.extend_from_slice(c);
            left -= k;
        }
        Ok(v)
    }

    /// The snapshot's header: `u32(format) ‖ u64(seq) ‖ hash ‖ digest`.
    pub(crate) fn header(&mut self) -> Result<(u32, u64, [u8; 32], [u8; 32]), SrsError> {
        Ok((self.u32()?, self.u64()?, self.array()?, self.array()?))
    }

    /// Checks the end mark and that nothing follows it.
    fn finish(&mut self) -> Result<(), SrsError> {
        if &self.array::<4>()? != END || self.pos != self.cur.len() {
            return Err(CORRUPT);
        }
        match (self.next)()? {
            None => Ok(()),
            Some(_) => Err(CORRUPT),
        }
    }
}

/// The most slots of one kind (row numbers are `u32`, `NONE` excluded).
const MAX_SLOTS: u64 = NONE as u64;
/// The most bytes of interned names (offsets have 56 bits; far above any
/// real registry).
const MAX_NAMES: u64 = 1 << 40;

impl Registry {
    /// Writes the registry as the stream described in the module docs.
    ///
    /// # Errors
    /// What `w`'s sink returns.
    pub(crate) fn write_image(&self, w: &mut ImageWriter<'_>) -> Result<(), SrsError> {
        w.long(&self.names)?;
        w.len(self.user_name_bytes)?;
        w.len(self.labels.len())?;
        for l in &self.labels {
            w.short(l.as_bytes())?;
        }
        w.len(self.users.len)?;
        for (_, u) in self.users.iter() {
            w.u64(u.name.0)?;
            w.short(u.role.as_str().as_bytes())?;
            w.put(&u.public_key)?;
            w.u64(u.registered_at)?;
            w.opt_u64(u.removed_at)?;
            w.u64(u.generation)?;
            w.u32(u.first_grant)?;
            match &u.pq_key {
                None => w.u8(0)?,
                Some(k) => {
                    w.u8(1)?;
                    w.put(k.as_bytes())?;
                }
            }
        }
        w.len(self.patients.len)?;
        for (_, p) in self.patients.iter() {
            w.u64(p.name.0)?;
            w.u32(p.first_portion)?;
            match &p.consent {
                None => w.u8(0)?,
                Some(k) => {
                    w.u8(1)?;
                    w.put(k)?;
                }
            }
            w.u64(p.registered_at)?;
            w.u64(p.generation)?;
        }
        w.len(self.portions.len)?;
        for (_, p) in self.portions.iter() {
            w.put(&p.point)?;
            w.u32(p.patient)?;
            w.u32(p.label)?;
            w.u32(p.epoch)?;
            w.u32(p.next)?;
        }
        w.len(self.grants.len)?;
        for (_, g) in self.grants.iter() {
            w.u32(g.portion)?;
            w.u32(g.user)?;
            w.u32(g.next_of_user)?;
            w.u64(g.generation)?;
            w.opt_u64(match g.terms.scope {
                Scope::AllRecords => None,
                Scope::Since(t) => Some(t),
            })?;
            w.opt_u64(g.terms.expiry)?;
            w.u64(g.terms.granted_at)?;
            w.u8(u8::from(g.terms.emergency))?;
            match &g.state {
                SlotState::Active(k) => {
                    w.u8(1)?;
                    w.short(&k.to_bytes())?;
                }
                SlotState::Revoked(t) => {
                    w.u8(0)?;
                    w.u64(*t)?;
                }
            }
            w.u64(g.consent.at)?;
            w.u8(u8::try_from(g.consent.nonces.len()).map_err(|_| CORRUPT)?)?;
            for n in &g.consent.nonces {
                w.put(n)?;
            }
        }
        let rows = self.small_rows();
        w.len(rows.len())?;
        for r in &rows {
            w.u8(r.kind)?;
            w.long(&r.key)?;
            w.long(&r.body)?;
            w.u64(r.generation)?;
        }
        Ok(())
    }

    /// The rows of the small tables, as images.
    fn small_rows(&self) -> Vec<RowImage> {
        let mut rows: Vec<RowImage> = Vec::new();
        rows.extend(self.requests.keys().filter_map(|id| self.request_image(id)));
        rows.extend(self.consents.values().map(|(c, g)| RowImage {
            kind: crate::srs::rows::CONSENT,
            key: crate::srs::rows::ConsentRow::key_of(&c.patient, &c.label, &c.user),
            body: c.body(),
            generation: *g,
        }));
        rows.extend(
            self.disclosed
                .keys()
                .filter_map(|&p| self.disclosed(p).map(|(_, i)| i)),
        );
        rows.extend(self.pq_key_image());
        rows
    }

    /// Reads [`Registry::write_image`] into `self` (an empty registry).
    ///
    /// # Errors
    /// [`SrsError::Tampered`] if the stream does not decode or does not
    /// hold together; what `r`'s source returns.
    pub(crate) fn read_image(
        &mut self,
        r: &mut ImageReader<'_>,
        keys: &SrsKeys,
    ) -> Result<(), SrsError> {
        self.names = r.long(MAX_NAMES)?;
        self.user_name_bytes = r.count(MAX_NAMES)?;
        let names = self.names.len();
        let name_ok = |n: Name| {
            let (off, len) = ((n.0 >> 8) as usize, (n.0 & 0xff) as usize);
            len > 0 && off.checked_add(len).is_some_and(|end| end <= names)
        };
        let n = r.count(MAX_SLOTS)?;
        for _ in 0..n {
            let l = PortionLabel::from_bytes(&r.short()?).map_err(|_| CORRUPT)?;
            self.label_id(&l)?;
        }
        if self.labels.len() != n {
            return Err(CORRUPT);
        }
        let n = r.count(MAX_SLOTS)?;
        for _ in 0..n {
            let name = Name(r.u64()?);
            let role: Role = core::str::from_utf8(&r.short()?)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(CORRUPT)?;
            let u = UserSlot {
                name,
                role,
                public_key: r.array()?,
                registered_at: r.u64()?,
                removed_at: r.opt_u64()?,
                generation: r.u64()?,
                first_grant: r.u32()?,
                pq_key: if r.flag()? {
                    let k = r.array::<PQ_PUBLIC_KEY_LEN>()?;
                    Some(PqPublicKey::from_bytes(&k).map_err(|_| CORRUPT)?)
                } else {
                    None
                },
            };
            if !name_ok(name) {
                return Err(CORRUPT);
            }
            self.users.push(u)?;
        }
        let n = r.count(MAX_SLOTS)?;
        for _ in 0..n {
            let p = PatientSlot {
                name: Name(r.u64()?),
                first_portion: r.u32()?,
                consent: if r.flag()? { Some(r.array()?) } else { None },
                registered_at: r.u64()?,
                generation: r.u64()?,
            };
            if !name_ok(p.name) {
                return Err(CORRUPT);
            }
            self.patients.push(p)?;
        }
        let n = r.count(MAX_SLOTS)?;
        for i in 0..n {
            let p = PortionSlot {
                point: r.array()?,
                patient: r.u32()?,
                label: r.u32()?,
                epoch: r.u32()?,
                next: r.u32()?,
            };
            if p.patient as usize >= self.patients.len
                || p.label as usize >= self.labels.len()
                || !earlier(p.next, i)
            {
                return Err(CORRUPT);
            }
            self.portions.push(p)?;
        }
        let n = r.count(MAX_SLOTS)?;
        for i in 0..n {
            let portion = r.u32()?;
            let user = r.u32()?;
            let next_of_user = r.u32()?;
            let generation = r.u64()?;
            let terms = GrantTerms {
                scope: r.opt_u64()?.map_or(Scope::AllRecords, Scope::Since),
                expiry: r.opt_u64()?,
                granted_at: r.u64()?,
                emergency: r.flag()?,
            };
            let state = if r.flag()? {
                let bytes = Zeroizing::new(r.short()?);
                SlotState::Active(
                    ServingKey::from_authenticated_bytes(&bytes).map_err(|_| CORRUPT)?,
                )
            } else {
                SlotState::Revoked(r.u64()?)
            };
            let at = r.u64()?;
            let nonces = (0..r.u8()?)
                .map(|_| r.array())
                .collect::<Result<Vec<_>, _>>()?;
            if portion as usize >= self.portions.len
                || user as usize >= self.users.len
                || !earlier(next_of_user, i)
            {
                return Err(CORRUPT);
            }
            self.grants.push(GrantSlot {
                portion,
                user,
                next_of_user,
                generation,
                terms,
                state,
                consent: Consented { at, nonces },
            })?;
        }
        for (_, p) in self.patients.iter() {
            if p.first_portion != NONE && p.first_portion as usize >= self.portions.len {
                return Err(CORRUPT);
            }
        }
        for (_, u) in self.users.iter() {
            if u.first_grant != NONE && u.first_grant as usize >= self.grants.len {
                return Err(CORRUPT);
            }
        }
        self.rebuild_indexes();
        let n = r.count(MAX_SLOTS)?;
        for _ in 0..n {
            let kind = r.u8()?;
            let key = r.long(u64::from(u32::MAX))?;
            let body = r.long(u64::from(u32::MAX))?;
            let generation = r.u64()?;
            let stored = StoredRow {
                kind,
                key,
                generation,
                body,
                secret: None,
                mac: [0; 32],
            };
            let row = Row::decode_authenticated(&stored, keys)?;
            if matches!(
                row,
                Row::User(_) | Row::Patient(_) | Row::Portion(_) | Row::Grant(_)
            ) {
                return Err(CORRUPT);
            }
            self.apply(row, generation)?;
        }
        r.finish()
    }

    /// Fills the (empty) indexes from the slabs: the five on all cores
    /// where threads are allowed.
    fn rebuild_indexes(&mut self) {
        let (hasher, names) = (&self.hasher, &self.names);
        let (users, patients, portions, grants) =
            (&self.users, &self.patients, &self.portions, &self.grants);
        let by_name = || index_of(users, |s| hasher.hash_one(name_in(names, s.name)));
        let by_key = || index_of(users, |s| hasher.hash_one(s.public_key));
        let patient_names = || index_of(patients, |s| hasher.hash_one(name_in(names, s.name)));
        let points = || index_of(portions, |s| hasher.hash_one(s.point));
        let pairs = || index_of(grants, |s| hasher.hash_one((s.portion, s.user)));
        let built = join5(by_name, by_key, patient_names, points, pairs);
        (
            self.user_by_name,
            self.user_by_key,
            self.patient_by_name,
            self.portion_by_point,
            self.grant_by_pair,
        ) = built;
    }
}

/// `link` is `NONE` or a slot before `i`.
fn earlier(link: u32, i: usize) -> bool {
    link == NONE || (link as usize) < i
}

/// An index of every slot of `slab` by `hash`.
fn index_of<T>(slab: &Slab<T>, hash: impl Fn(&T) -> u64) -> Index {
    let mut index = Index::default();
    let per_shard = slab.len / super::SHARDS + slab.len / (4 * super::SHARDS) + 16;
    for t in &mut index.shards {
        t.reserve(per_shard, |_| 0);
    }
    for (id, s) in slab.iter() {
        let h = hash(s);
        index.insert(h, id, |i| slab.get(i).map_or(0, &hash));
    }
    index
}

/// Runs five index builds, in parallel where threads are allowed.
fn join5<A, B, C, D, E>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
    c: impl FnOnce() -> C + Send,
    d: impl FnOnce() -> D + Send,
    e: impl FnOnce() -> E + Send,
) -> (A, B, C, D, E)
where
    A: Send,
    B: Send,
    C: Send,
    D: Send,
    E: Send,
{
    #[cfg(feature = "parallel")]
    if crate::parallel::enabled() {
        let ((a, b), ((c, d), e)) = rayon::join(
            || rayon::join(a, b),
            || rayon::join(|| rayon::join(c, d), e),
        );
        return (a, b, c, d, e);
    }
    (a(), b(), c(), d(), e())
}
