//! The in-memory registry: users, patients, portion keys and grants, laid
//! out compactly (identities interned in one arena, rows in fixed-size
//! chunks, indexes that hold 4-byte row numbers in 64 shards so that no
//! table growth rehashes more than 1/64 of an index).
//!
//! [`Registry::apply`] is the one way a row enters or changes the registry:
//! after a change commits, and for every stored row at open.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::capsule::VerifiedHeader;
use crate::consent::RequestId;
use crate::ids::{Identity, PortionLabel};
use crate::keys::{PortionPublicKey, PublicKey};
use crate::model::{
    AccessRequest, Denial, GrantKey, GrantTerms, RequestStatus, Role, UserRecord, UserStatus,
};
use crate::pq::PqPublicKey;
use crate::reencrypt::ServingKey;
use crate::srs::rows::{
    CONSENT, ConsentRow, Consented, DISCLOSED, DisclosedRow, GRANT, GrantRow, GrantState, PATIENT,
    PatientRow, PortionRow, PqKeyRow, REQUEST, RequestRow, Row, RowImage, USER, UserRow,
    patient_body, request_body, terms_body, user_body,
};
use crate::srs::types::SrsError;

mod image;
pub(crate) use image::{ImageReader, ImageWriter};

const NONE: u32 = u32::MAX;
const CHUNK: usize = 1024;
const SHARDS: usize = 64;

/// A vector in fixed-size chunks: growth never moves or copies elements.
struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    fn push(&mut self, x: T) -> Result<u32, SrsError> {
        let id = u32::try_from(self.len)
            .ok()
            .filter(|&i| i != NONE)
            .ok_or(SrsError::Full)?;
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(x),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(x);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        Ok(id)
    }

    fn get(&self, id: u32) -> Option<&T> {
        let i = id as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let i = id as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        // Row numbers fit in u32 (push refuses more).
        (0u32..).zip(self.chunks.iter().flatten())
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum::<usize>() * size_of::<T>()
            + self.chunks.capacity() * size_of::<Vec<T>>()
    }
}

/// Row numbers by a key's hash, in shards.
struct Index {
    shards: Vec<HashTable<u32>>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
        }
    }
}

fn shard(hash: u64) -> usize {
    // Bits hashbrown uses neither for the bucket (low bits) nor the tag (top 7).
    ((hash >> 32) as usize) % SHARDS
}

impl Index {
    fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.shards
            .get(shard(hash))?
            .find(hash, |&id| eq(id))
            .copied()
    }

    fn insert(&mut self, hash: u64, id: u32, rehash: impl Fn(u32) -> u64) {
        if let Some(t) = self.shards.get_mut(shard(hash)) {
            t.insert_unique(hash, id, |&i| rehash(i));
        }
    }

    fn bytes(&self) -> usize {
        self.shards.iter().map(HashTable::allocation_size).sum()
    }
}

/// An interned identity: offset in the arena (high 56 bits) and length.
#[derive(Clone, Copy)]
struct Name(u64);

struct UserSlot {
    name: Name,
    role: Role,
    public_key: [u8; 32],
    registered_at: u64,
    removed_at: Option<u64>,
    generation: u64,
    first_grant: u32,
    /// The user's ML-KEM-768 key (hybrid headers), decoded once.
    pq_key: Option<PqPublicKey>,
}

struct PatientSlot {
    name: Name,
    first_portion: u32,
    consent: Option<[u8; 32]>,
    registered_at: u64,
    generation: u64,
}

struct PortionSlot {
    point: [u8; 32],
    patient: u32,
    label: u32,
    epoch: u32,
    next: u32,
}

enum SlotState {
    Active(ServingKey),
    Revoked(u64),
}

struct GrantSlot {
    portion: u32,
    user: u32,
    next_of_user: u32,
    generation: u64,
    terms: GrantTerms,
    state: SlotState,
    consent: Consented,
}

/// A grant as the registry shows it (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    /// Patient, label, epoch and user.
    pub key: GrantKey,
    /// Scope, expiry and when it was granted.
    pub terms: GrantTerms,
    /// `None` while active; the revocation time once revoked.
    pub revoked_at: Option<u64>,
    /// The re-encryption key's commitment `RK` while active.
    pub commitment: Option<PublicKey>,
    /// This node's index while active, when the grant holds a share of a
    /// split key (a threshold SRS node).
    pub share: Option<u8>,
}

/// Everything the SRS knows but its secrets and its audit log, ordered: two
/// views compare equal exactly when the registries hold the same state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryView {
    /// Users by identity.
    pub users: BTreeMap<Identity, UserRecord>,
    /// Patients by identity, with their portion keys.
    pub patients: BTreeMap<Identity, Vec<PortionPublicKey>>,
    /// Grants by key.
    pub grants: BTreeMap<GrantKey, GrantInfo>,
    /// Access requests, pending and answered.
    pub requests: BTreeMap<RequestId, AccessRequest>,
}

/// How much memory the registry holds, by part (bytes, allocated capacity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrySize {
    /// Users.
    pub users: usize,
    /// Patients and portion keys, with their indexes and names.
    pub patients: usize,
    /// Grants with their keys and index.
    pub grants: usize,
    /// Number of patients.
    pub patient_count: usize,
    /// Number of portion keys.
    pub portion_count: usize,
    /// Number of grants (active and revoked).
    pub grant_count: usize,
}

/// A grant found for a request.
pub(crate) struct Authorized<'a> {
    pub(crate) grant: u32,
    pub(crate) key: &'a ServingKey,
    /// What the commit of the request's audit entry re-checks.
    pub(crate) served: Served,
    /// Served under a break-glass grant.
    pub(crate) emergency: bool,
    /// The user's ML-KEM-768 key, if registered.
    pub(crate) user_pq: Option<&'a PqPublicKey>,
}

/// What a request named (with its label, which its audit entry keeps), when
/// it was decided, and the grant version that allowed it: enough to decide
/// it again at commit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Served {
    version: Option<GrantVersion>,
    point: [u8; 32],
    epoch: u32,
    created_at: u64,
    now: u64,
    breaks_glass: bool,
}

/// One version of one grant in one loaded registry: a request served under
/// it is answered only if the grant is still this version when the request's
/// audit entry is committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrantVersion {
    incarnation: u64,
    grant: u32,
    generation: u64,
}

/// The registry.
pub(crate) struct Registry {
    hasher: RandomState,
    names: Vec<u8>,
    /// Bytes of `names` that are users' identities.
    user_name_bytes: usize,
    labels: Vec<PortionLabel>,
    label_ids: HashMap<PortionLabel, u32>,
    users: Slab<UserSlot>,
    user_by_name: Index,
    user_by_key: Index,
    patients: Slab<PatientSlot>,
    patient_by_name: Index,
    portions: Slab<PortionSlot>,
    portion_by_point: Index,
    grants: Slab<GrantSlot>,
    grant_by_pair: Index,
    /// Access requests with the generation of their row.
    requests: HashMap<[u8; 16], (RequestRow, u64)>,
    /// Pending requests by patient.
    pending: BTreeMap<Identity, std::collections::BTreeSet<[u8; 16]>>,
    /// The consent order of each (patient, label, user) that has a signed
    /// revocation, with the generation of its row.
    consents: HashMap<(u32, u32, u32), (ConsentRow, u64)>,
    /// Each patient's disclosure count, with the generation of its row.
    disclosed: HashMap<u32, (DisclosedRow, u64)>,
    /// The SRS's current post-quantum key version (none: version 1), with
    /// the generation of its row.
    pq_key: Option<(PqKeyRow, u64)>,
    /// Which load of the store this is (slot numbers differ between loads).
    incarnation: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            names: Vec::new(),
            user_name_bytes: 0,
            labels: Vec::new(),
            label_ids: HashMap::new(),
            users: Slab::default(),
            user_by_name: Index::default(),
            user_by_key: Index::default(),
            patients: Slab::default(),
            patient_by_name: Index::default(),
            portions: Slab::default(),
            portion_by_point: Index::default(),
            grants: Slab::default(),
            grant_by_pair: Index::default(),
            requests: HashMap::new(),
            pending: BTreeMap::new(),
            consents: HashMap::new(),
            disclosed: HashMap::new(),
            pq_key: None,
            incarnation: 0,
        }
    }
}

const CORRUPT: SrsError = SrsError::Tampered("registry row");

impl Registry {
    fn h(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    fn pair_hash(&self, portion: u32, user: u32) -> u64 {
        self.hasher.hash_one((portion, user))
    }

    fn name(&self, n: Name) -> &[u8] {
        let off = (n.0 >> 8) as usize;
        let len = (n.0 & 0xff) as usize;
        self.names.get(off..off + len).unwrap_or_default()
    }

    fn identity(&self, n: Name) -> Option<Identity> {
        // Interned names were identities: this always succeeds.
        Identity::from_utf8(self.name(n)).ok()
    }

    fn intern(&mut self, id: &Identity) -> Name {
        let off = self.names.len() as u64;
        self.names.extend_from_slice(id.as_bytes());
        // Identities are at most 255 bytes.
        Name((off << 8) | (id.as_bytes().len() as u64 & 0xff))
    }

    fn label_id(&mut self, l: &PortionLabel) -> Result<u32, SrsError> {
        if let Some(&i) = self.label_ids.get(l) {
            return Ok(i);
        }
        let i = u32::try_from(self.labels.len()).map_err(|_| SrsError::Full)?;
        self.labels.push(l.clone());
        self.label_ids.insert(l.clone(), i);
        Ok(i)
    }

    fn label(&self, id: u32) -> Option<&PortionLabel> {
        self.labels.get(id as usize)
    }

    /// An empty registry that replaces `self` (a reload from the store):
    /// versions handed out by `self` are stale in it.
    pub(crate) fn successor(&self) -> Self {
        Self {
            incarnation: self.incarnation + 1,
            ..Self::default()
        }
    }

    /// Whether the grant a request was served under is still that version
    /// (not revoked, replaced or expired away by a later change).
    fn still_serves(&self, v: GrantVersion) -> bool {
        v.incarnation == self.incarnation
            && self.grants.get(v.grant).is_some_and(|s| {
                s.generation == v.generation && matches!(s.state, SlotState::Active(_))
            })
    }

    /// The image of the stored row `row` would replace, if the registry
    /// holds one. Patients and portions are never replaced: holding one
    /// already means the row was replayed.
    ///
    /// # Errors
    /// [`SrsError::Tampered`] for a patient or portion held already.
    pub(crate) fn image_replaced_by(&self, row: &Row) -> Result<Option<RowImage>, SrsError> {
        match row {
            Row::User(u) => Ok(self.user_id(&u.identity).and_then(|id| self.user_image(id))),
            // A patient row is replaced only to adopt a consent key.
            Row::Patient(p) => match self.patient_id(&p.identity) {
                Some(id) => match self.patient_image(id) {
                    Some((img, None)) if p.consent_key.is_some() => Ok(Some(img)),
                    _ => Err(CORRUPT),
                },
                None => Ok(None),
            },
            Row::Portion(p) => match self.portion_by_point(&p.point) {
                Some(_) => Err(CORRUPT),
                None => Ok(None),
            },
            Row::Request(r) => Ok(self.request_image(&r.id)),
            Row::PqKey(_) => Ok(self.pq_key_image()),
            Row::Disclosed(d) => Ok(self
                .patient_id(&d.patient)
                .and_then(|p| self.disclosed(p))
                .map(|(_, img)| img)),
            Row::Consent(c) => Ok(self
                .patient_id(&c.patient)
                .zip(self.user_id(&c.user))
                .and_then(|(p, u)| self.consent_order(p, &c.label, u))
                .map(|(_, img)| img)),
            Row::Grant(g) => {
                let portion = self
                    .patient_id(&g.key.patient)
                    .and_then(|pid| self.portion_at(pid, &g.key.label, g.key.epoch));
                let user = self.user_id(&g.key.user);
                Ok(match (portion, user) {
                    (Some(portion), Some(user)) => {
                        self.grant_image(portion, user).map(|(img, _)| img)
                    }
                    _ => None,
                })
            }
        }
    }

    pub(crate) fn user_id(&self, id: &Identity) -> Option<u32> {
        let b = id.as_bytes();
        self.user_by_name.find(self.h(b), |u| {
            self.users.get(u).is_some_and(|s| self.name(s.name) == b)
        })
    }

    pub(crate) fn user_by_key(&self, key: &[u8; 32]) -> Option<u32> {
        self.user_by_key.find(self.h(key), |u| {
            self.users.get(u).is_some_and(|s| &s.public_key == key)
        })
    }

    pub(crate) fn patient_id(&self, id: &Identity) -> Option<u32> {
        let b = id.as_bytes();
        self.patient_by_name.find(self.h(b), |p| {
            self.patients.get(p).is_some_and(|s| self.name(s.name) == b)
        })
    }

    pub(crate) fn portion_by_point(&self, point: &[u8; 32]) -> Option<u32> {
        self.portion_by_point.find(self.h(point), |p| {
            self.portions.get(p).is_some_and(|s| &s.point == point)
        })
    }

    fn grant_id(&self, portion: u32, user: u32) -> Option<u32> {
        self.grant_by_pair.find(self.pair_hash(portion, user), |g| {
            self.grants
                .get(g)
                .is_some_and(|s| s.portion == portion && s.user == user)
        })
    }

    /// The user's row as stored (for a change that replaces it).
    pub(crate) fn user_row(&self, user: u32) -> Option<(UserRow, u64)> {
        let s = self.users.get(user)?;
        Some((
            UserRow {
                identity: self.identity(s.name)?,
                role: s.role.clone(),
                public_key: s.public_key,
                registered_at: s.registered_at,
                removed_at: s.removed_at,
                pq_key: s.pq_key.as_ref().map(|k| Box::new(*k.as_bytes())),
            },
            s.generation,
        ))
    }

    /// The user's ML-KEM-768 key, if registered.
    pub(crate) fn user_pq_key(&self, user: u32) -> Option<&PqPublicKey> {
        self.users.get(user)?.pq_key.as_ref()
    }

    /// The SRS's current post-quantum key version (1 until rotated).
    pub(crate) fn pq_version(&self) -> u32 {
        self.pq_key.as_ref().map_or(1, |(p, _)| p.version)
    }

    /// The image of the post-quantum key row, if one was written.
    pub(crate) fn pq_key_image(&self) -> Option<RowImage> {
        self.pq_key.as_ref().map(|(p, g)| p.image(*g))
    }

    pub(crate) fn user_is_active(&self, user: u32) -> bool {
        self.users.get(user).is_some_and(|s| s.removed_at.is_none())
    }

    pub(crate) fn user_key(&self, user: u32) -> Option<&[u8; 32]> {
        self.users.get(user).map(|s| &s.public_key)
    }

    /// The patient's portions with this label (any epoch), as (id, epoch).
    pub(crate) fn portions_labelled(&self, patient: u32, label: &PortionLabel) -> Vec<(u32, u32)> {
        let Some(&lid) = self.label_ids.get(label) else {
            return Vec::new();
        };
        self.portions_of(patient)
            .filter(|(_, s)| s.label == lid)
            .map(|(i, s)| (i, s.epoch))
            .collect()
    }

    /// The patient's portion with this label and epoch (no allocation: the
    /// open of a large registry asks once per portion and grant row).
    fn portion_at(&self, patient: u32, label: &PortionLabel, epoch: u32) -> Option<u32> {
        let &lid = self.label_ids.get(label)?;
        self.portions_of(patient)
            .find(|(_, s)| s.label == lid && s.epoch == epoch)
            .map(|(i, _)| i)
    }

    fn portions_of(&self, patient: u32) -> impl Iterator<Item = (u32, &PortionSlot)> {
        let mut next = self.patients.get(patient).map_or(NONE, |p| p.first_portion);
        core::iter::from_fn(move || {
            let id = next;
            let s = self.portions.get(id)?;
            next = s.next;
            Some((id, s))
        })
    }

    /// The portion's owner and label.
    pub(crate) fn portion_owner(&self, portion: u32) -> Option<(Identity, PortionLabel, u32)> {
        let s = self.portions.get(portion)?;
        let p = self.patients.get(s.patient)?;
        Some((
            self.identity(p.name)?,
            self.label(s.label)?.clone(),
            s.epoch,
        ))
    }

    /// The active grant of `user` on `portion`, with its image (for a change
    /// that replaces it).
    pub(crate) fn grant_image(&self, portion: u32, user: u32) -> Option<(RowImage, bool)> {
        let g = self.grant_id(portion, user)?;
        let s = self.grants.get(g)?;
        let (patient, label, epoch) = self.portion_owner(portion)?;
        let key = GrantKey {
            patient,
            label,
            epoch,
            user: self.identity(self.users.get(user)?.name)?,
        };
        let revoked = match s.state {
            SlotState::Active(_) => None,
            SlotState::Revoked(t) => Some(t),
        };
        Some((
            RowImage {
                kind: GRANT,
                key: key.to_bytes(),
                body: terms_body(&s.terms, revoked, &s.consent),
                generation: s.generation,
            },
            revoked.is_none(),
        ))
    }

    /// The user's active grants, as (portion, image).
    pub(crate) fn active_grants_of(&self, user: u32) -> Vec<(u32, RowImage)> {
        let mut out = Vec::new();
        let mut next = self.users.get(user).map_or(NONE, |u| u.first_grant);
        while let Some(s) = self.grants.get(next) {
            if let Some((img, true)) = self.grant_image(s.portion, user) {
                out.push((s.portion, img));
            }
            next = s.next_of_user;
        }
        out
    }

    pub(crate) fn grant_terms(&self, portion: u32, user: u32) -> Option<GrantTerms> {
        Some(self.grants.get(self.grant_id(portion, user)?)?.terms)
    }

    /// The signed objects of this grant accepted last; `None` if there
    /// never was a grant.
    pub(crate) fn grant_consent(&self, portion: u32, user: u32) -> Option<&Consented> {
        Some(&self.grants.get(self.grant_id(portion, user)?)?.consent)
    }

    /// A patient's identity.
    pub(crate) fn patient_identity(&self, patient: u32) -> Option<Identity> {
        self.identity(self.patients.get(patient)?.name)
    }

    /// The patient's consent public key.
    pub(crate) fn consent_key(&self, patient: u32) -> Option<[u8; 32]> {
        self.patients.get(patient)?.consent
    }

    /// The patient's row image and consent key.
    pub(crate) fn patient_image(&self, patient: u32) -> Option<(RowImage, Option<[u8; 32]>)> {
        let s = self.patients.get(patient)?;
        let row = PatientRow {
            identity: self.identity(s.name)?,
            registered_at: s.registered_at,
            consent_key: s.consent,
        };
        Some((
            RowImage {
                kind: PATIENT,
                key: row.identity.as_bytes().to_vec(),
                body: patient_body(&row),
                generation: s.generation,
            },
            s.consent,
        ))
    }

    /// When the patient was registered.
    pub(crate) fn patient_registered_at(&self, patient: u32) -> Option<u64> {
        Some(self.patients.get(patient)?.registered_at)
    }

    /// The patient's registered portion keys (points).
    pub(crate) fn portion_points(&self, patient: u32) -> Vec<[u8; 32]> {
        self.portions_of(patient).map(|(_, s)| s.point).collect()
    }

    /// A user's role.
    pub(crate) fn user_role(&self, user: u32) -> Option<&Role> {
        self.users.get(user).map(|s| &s.role)
    }

    /// An access request with the image of its row.
    pub(crate) fn request(&self, id: &[u8; 16]) -> Option<(&RequestRow, RowImage)> {
        let img = self.request_image(id)?;
        Some((&self.requests.get(id)?.0, img))
    }

    fn request_image(&self, id: &[u8; 16]) -> Option<RowImage> {
        let (r, generation) = self.requests.get(id)?;
        Some(RowImage {
            kind: REQUEST,
            key: id.to_vec(),
            body: request_body(r),
            generation: *generation,
        })
    }

    /// The patient's pending requests, oldest first.
    pub(crate) fn pending_requests(&self, patient: &Identity) -> Vec<AccessRequest> {
        let mut v: Vec<AccessRequest> = self
            .pending
            .get(patient)
            .into_iter()
            .flatten()
            .filter_map(|id| self.requests.get(id).map(|(r, _)| public_request(r)))
            .collect();
        v.sort_by_key(|r| (r.requested_at, r.id));
        v
    }

    /// The image a user row had (for replacing it).
    pub(crate) fn user_image(&self, user: u32) -> Option<RowImage> {
        let (row, generation) = self.user_row(user)?;
        Some(RowImage {
            kind: USER,
            key: row.identity.as_bytes().to_vec(),
            body: user_body(&row),
            generation,
        })
    }

    /// Applies one row written by the change with audit sequence number
    /// `generation`: the only way the registry changes.
    ///
    /// # Errors
    /// [`SrsError::Tampered`] if the row names a patient, portion or user
    /// the registry does not hold, or repeats a key that must be unique.
    pub(crate) fn apply(&mut self, row: Row, generation: u64) -> Result<(), SrsError> {
        match row {
            Row::User(u) => self.apply_user(u, generation),
            Row::Patient(p) => self.apply_patient(&p, generation),
            Row::Portion(p) => self.apply_portion(&p),
            Row::Grant(g) => self.apply_grant(g, generation),
            Row::Request(r) => {
                self.apply_request(r, generation);
                Ok(())
            }
            Row::Consent(c) => self.apply_consent(c, generation),
            Row::Disclosed(d) => {
                let patient = self.patient_id(&d.patient).ok_or(CORRUPT)?;
                self.disclosed.insert(patient, (d, generation));
                Ok(())
            }
            Row::PqKey(p) => {
                // Versions only move forward.
                if p.version <= self.pq_version() {
                    return Err(CORRUPT);
                }
                self.pq_key = Some((p, generation));
                Ok(())
            }
        }
    }

    /// Applies a row the store holds with a generation after the registry's
    /// position: its MAC checked, and `digest` moved by the row it replaces
    /// and by itself. No row may be newer than `newest` (the head).
    ///
    /// # Errors
    /// [`SrsError::Tampered`] for a row that is not authentic, newer than
    /// the head, or does not fit the registry.
    pub(crate) fn apply_stored(
        &mut self,
        stored: &crate::store::StoredRow,
        keys: &crate::srs::secrets::SrsKeys,
        newest: u64,
        digest: &mut curve25519_dalek::scalar::Scalar,
    ) -> Result<(), SrsError> {
        if stored.generation > newest {
            return Err(CORRUPT);
        }
        let (row, share) = Row::open(stored, keys)?;
        if let Some(img) = self.image_replaced_by(&row)? {
            let mac = keys.row_mac(img.kind, &img.key, img.generation, &img.body)?;
            *digest -= keys.share(&mac)?;
        }
        *digest += share;
        self.apply(row, stored.generation)
    }

    /// A patient's disclosure count with the image of its row; `None`
    /// before their first disclosure.
    pub(crate) fn disclosed(&self, patient: u32) -> Option<(&DisclosedRow, RowImage)> {
        let (d, generation) = self.disclosed.get(&patient)?;
        Some((
            d,
            RowImage {
                kind: DISCLOSED,
                key: d.patient.as_bytes().to_vec(),
                body: d.body(),
                generation: *generation,
            },
        ))
    }

    fn apply_consent(&mut self, c: ConsentRow, generation: u64) -> Result<(), SrsError> {
        let patient = self.patient_id(&c.patient).ok_or(CORRUPT)?;
        let user = self.user_id(&c.user).ok_or(CORRUPT)?;
        if self.portions_labelled(patient, &c.label).is_empty() {
            return Err(CORRUPT);
        }
        let label = self.label_id(&c.label)?;
        self.consents
            .insert((patient, label, user), (c, generation));
        Ok(())
    }

    /// The consent order of (patient, label, user) with the image of its
    /// row; `None` if no signed revocation of the triple was ever accepted.
    pub(crate) fn consent_order(
        &self,
        patient: u32,
        label: &PortionLabel,
        user: u32,
    ) -> Option<(&ConsentRow, RowImage)> {
        let lid = *self.label_ids.get(label)?;
        let (c, generation) = self.consents.get(&(patient, lid, user))?;
        Some((
            c,
            RowImage {
                kind: CONSENT,
                key: ConsentRow::key_of(&c.patient, &c.label, &c.user),
                body: c.body(),
                generation: *generation,
            },
        ))
    }

    fn apply_request(&mut self, r: RequestRow, generation: u64) {
        if r.answer.is_none() {
            self.pending
                .entry(r.patient.clone())
                .or_default()
                .insert(r.id);
        } else if let Some(set) = self.pending.get_mut(&r.patient) {
            set.remove(&r.id);
            if set.is_empty() {
                self.pending.remove(&r.patient);
            }
        }
        self.requests.insert(r.id, (r, generation));
    }

    fn apply_user(&mut self, u: UserRow, generation: u64) -> Result<(), SrsError> {
        // Validated when registered; decoded once here.
        let pq_key = match &u.pq_key {
            Some(k) => Some(PqPublicKey::from_bytes(&k[..]).map_err(|_| CORRUPT)?),
            None => None,
        };
        if let Some(id) = self.user_id(&u.identity) {
            let s = self.users.get_mut(id).ok_or(CORRUPT)?;
            if s.public_key != u.public_key {
                return Err(CORRUPT);
            }
            s.role = u.role;
            s.registered_at = u.registered_at;
            s.removed_at = u.removed_at;
            s.generation = generation;
            s.pq_key = pq_key;
            return Ok(());
        }
        if self.user_by_key(&u.public_key).is_some() {
            return Err(CORRUPT);
        }
        let name = self.intern(&u.identity);
        self.user_name_bytes += u.identity.as_bytes().len();
        let id = self.users.push(UserSlot {
            name,
            role: u.role,
            public_key: u.public_key,
            registered_at: u.registered_at,
            removed_at: u.removed_at,
            generation,
            first_grant: NONE,
            pq_key,
        })?;
        let h = self.h(u.identity.as_bytes());
        let (users, hasher, names) = (&self.users, &self.hasher, &self.names);
        self.user_by_name.insert(h, id, |i| {
            hasher.hash_one(users.get(i).map_or(&[][..], |s| name_in(names, s.name)))
        });
        let h = self.h(&u.public_key);
        self.user_by_key.insert(h, id, |i| {
            hasher.hash_one(users.get(i).map_or(&[0u8; 32], |s| &s.public_key))
        });
        Ok(())
    }

    fn apply_patient(&mut self, p: &PatientRow, generation: u64) -> Result<(), SrsError> {
        if let Some(id) = self.patient_id(&p.identity) {
            // Only a patient registered without a consent key adopts one.
            let s = self.patients.get_mut(id).ok_or(CORRUPT)?;
            if s.consent.is_some() || p.consent_key.is_none() || s.registered_at != p.registered_at
            {
                return Err(CORRUPT);
            }
            s.consent = p.consent_key;
            s.generation = generation;
            return Ok(());
        }
        let name = self.intern(&p.identity);
        let id = self.patients.push(PatientSlot {
            name,
            first_portion: NONE,
            consent: p.consent_key,
            registered_at: p.registered_at,
            generation,
        })?;
        let h = self.h(p.identity.as_bytes());
        let (patients, hasher, names) = (&self.patients, &self.hasher, &self.names);
        self.patient_by_name.insert(h, id, |i| {
            hasher.hash_one(patients.get(i).map_or(&[][..], |s| name_in(names, s.name)))
        });
        Ok(())
    }

    fn apply_portion(&mut self, p: &PortionRow) -> Result<(), SrsError> {
        let patient = self.patient_id(&p.patient).ok_or(CORRUPT)?;
        if self.portion_by_point(&p.point).is_some()
            || self.portion_at(patient, &p.label, p.epoch).is_some()
        {
            return Err(CORRUPT);
        }
        let label = self.label_id(&p.label)?;
        let ps = self.patients.get_mut(patient).ok_or(CORRUPT)?;
        let next = ps.first_portion;
        let id = self.portions.push(PortionSlot {
            point: p.point,
            patient,
            label,
            epoch: p.epoch,
            next,
        })?;
        if let Some(ps) = self.patients.get_mut(patient) {
            ps.first_portion = id;
        }
        let h = self.h(&p.point);
        let (portions, hasher) = (&self.portions, &self.hasher);
        self.portion_by_point.insert(h, id, |i| {
            hasher.hash_one(portions.get(i).map_or(&[0u8; 32], |s| &s.point))
        });
        Ok(())
    }

    fn apply_grant(&mut self, g: GrantRow, generation: u64) -> Result<(), SrsError> {
        let patient = self.patient_id(&g.key.patient).ok_or(CORRUPT)?;
        let portion = self
            .portion_at(patient, &g.key.label, g.key.epoch)
            .ok_or(CORRUPT)?;
        let user = self.user_id(&g.key.user).ok_or(CORRUPT)?;
        let state = match g.state {
            GrantState::Active(k) => SlotState::Active(k),
            GrantState::Revoked(t) => SlotState::Revoked(t),
        };
        if let Some(id) = self.grant_id(portion, user) {
            let s = self.grants.get_mut(id).ok_or(CORRUPT)?;
            // Replacing the state drops (and so zeroizes) a revoked key.
            s.state = state;
            s.terms = g.terms;
            s.generation = generation;
            s.consent = g.consent;
            return Ok(());
        }
        let us = self.users.get_mut(user).ok_or(CORRUPT)?;
        let next_of_user = us.first_grant;
        let id = self.grants.push(GrantSlot {
            portion,
            user,
            next_of_user,
            generation,
            terms: g.terms,
            state,
            consent: g.consent,
        })?;
        if let Some(us) = self.users.get_mut(user) {
            us.first_grant = id;
        }
        let h = self.pair_hash(portion, user);
        let (grants, hasher) = (&self.grants, &self.hasher);
        self.grant_by_pair.insert(h, id, |i| {
            grants
                .get(i)
                .map_or(0, |s| hasher.hash_one((s.portion, s.user)))
        });
        Ok(())
    }

    /// Decides whether `user` may have the verified `header` re-encrypted at
    /// `now`. On a denial, also returns what the request named (patient and
    /// label, when the portion is known) for the audit entry.
    pub(crate) fn authorize(
        &self,
        user: &Identity,
        header: &VerifiedHeader<'_>,
        now: u64,
        breaks_glass: bool,
    ) -> (
        Option<(Identity, PortionLabel)>,
        Result<Authorized<'_>, Denial>,
    ) {
        let ctx = header.header().context();
        let portion = self.portion_by_point(ctx.portion_key().as_bytes());
        let named = portion
            .and_then(|p| self.portion_owner(p))
            .map(|(p, l, _)| (p, l));
        let served = Served {
            version: None,
            point: ctx.portion_key().to_bytes(),
            epoch: ctx.epoch(),
            created_at: ctx.created_at(),
            now,
            breaks_glass,
        };
        (named, self.decide(user, portion, ctx.label(), served))
    }

    /// The decision on one request, from what it names.
    fn decide(
        &self,
        user: &Identity,
        portion: Option<u32>,
        label: &PortionLabel,
        mut s: Served,
    ) -> Result<Authorized<'_>, Denial> {
        let uid = self.user_id(user).filter(|&u| self.user_is_active(u));
        let uid = uid.ok_or(Denial::NotRegistered)?;
        let portion = portion.ok_or(Denial::NotGranted)?;
        let ps = self.portions.get(portion).ok_or(Denial::NotGranted)?;
        if self.label(ps.label) != Some(label) || ps.epoch != s.epoch {
            return Err(Denial::InvalidCapsule);
        }
        let gid = self.grant_id(portion, uid).ok_or(Denial::NotGranted)?;
        let g = self.grants.get(gid).ok_or(Denial::NotGranted)?;
        let key = match &g.state {
            SlotState::Active(k) => k,
            SlotState::Revoked(_) => return Err(Denial::Revoked),
        };
        g.terms.check(s.now, s.created_at, s.breaks_glass)?;
        s.version = Some(GrantVersion {
            incarnation: self.incarnation,
            grant: gid,
            generation: g.generation,
        });
        Ok(Authorized {
            grant: gid,
            key,
            served: s,
            emergency: g.terms.emergency,
            user_pq: self.user_pq_key(uid),
        })
    }

    /// Re-checks a request served earlier against the registry as it stands
    /// now: still the same grant version, or authorized afresh (a grant
    /// replaced meanwhile may still allow it).
    ///
    /// # Errors
    /// The denial the request would get now.
    pub(crate) fn recheck(
        &self,
        user: &Identity,
        label: Option<&PortionLabel>,
        s: &Served,
    ) -> Result<(), Denial> {
        if s.version.is_some_and(|v| self.still_serves(v)) {
            return Ok(());
        }
        let portion = self.portion_by_point(&s.point);
        let label = label.ok_or(Denial::NotGranted)?;
        self.decide(user, portion, label, *s).map(|_| ())
    }

    /// A user's public record.
    pub(crate) fn user_record(&self, user: u32) -> Option<UserRecord> {
        let (row, _) = self.user_row(user)?;
        Some(UserRecord {
            identity: row.identity,
            role: row.role,
            public_key: PublicKey::from_bytes(&row.public_key).ok()?,
            status: row
                .removed_at
                .map_or(UserStatus::Active, UserStatus::Removed),
            registered_at: row.registered_at,
        })
    }

    /// The whole registry, ordered, without secrets.
    pub(crate) fn view(&self) -> RegistryView {
        let mut view = RegistryView::default();
        for (id, _) in self.users.iter() {
            if let Some(r) = self.user_record(id) {
                view.users.insert(r.identity.clone(), r);
            }
        }
        for (pid, p) in self.patients.iter() {
            let mut keys: Vec<PortionPublicKey> = self
                .portions_of(pid)
                .filter_map(|(_, s)| {
                    Some(PortionPublicKey::new(
                        self.label(s.label)?.clone(),
                        s.epoch,
                        PublicKey::from_bytes(&s.point).ok()?,
                    ))
                })
                .collect();
            keys.sort_by(|a, b| (a.label(), a.epoch()).cmp(&(b.label(), b.epoch())));
            if let Some(id) = self.identity(p.name) {
                view.patients.insert(id, keys);
            }
        }
        for (_, g) in self.grants.iter() {
            let (Some((patient, label, epoch)), Some(user)) = (
                self.portion_owner(g.portion),
                self.users.get(g.user).and_then(|u| self.identity(u.name)),
            ) else {
                continue;
            };
            let key = GrantKey {
                patient,
                label,
                epoch,
                user,
            };
            let (revoked_at, commitment, share) = match &g.state {
                SlotState::Active(k) => (
                    None,
                    PublicKey::from_bytes(k.commitment()).ok(),
                    k.share_index(),
                ),
                SlotState::Revoked(t) => (Some(*t), None, None),
            };
            view.grants.insert(
                key.clone(),
                GrantInfo {
                    key,
                    terms: g.terms,
                    revoked_at,
                    commitment,
                    share,
                },
            );
        }
        for (r, _) in self.requests.values() {
            let r = public_request(r);
            view.requests.insert(r.id, r);
        }
        view
    }

    pub(crate) fn size(&self) -> RegistrySize {
        // The name arena's allocation, shared in proportion to the bytes used.
        let names = self.names.capacity();
        let user_names = names
            .checked_mul(self.user_name_bytes)
            .and_then(|x| x.checked_div(self.names.len()))
            .unwrap_or(0);
        RegistrySize {
            users: self.users.bytes()
                + self.user_by_name.bytes()
                + self.user_by_key.bytes()
                + user_names,
            patients: self.patients.bytes()
                + self.patient_by_name.bytes()
                + self.portions.bytes()
                + self.portion_by_point.bytes()
                + (names - user_names),
            grants: self.grants.bytes() + self.grant_by_pair.bytes(),
            patient_count: self.patients.len,
            portion_count: self.portions.len,
            grant_count: self.grants.len,
        }
    }
}

fn public_request(r: &RequestRow) -> AccessRequest {
    AccessRequest {
        id: RequestId::from_bytes(r.id),
        patient: r.patient.clone(),
        user: r.user.clone(),
        label: r.label.clone(),
        purpose: r.purpose,
        justification: r.justification.clone(),
        requested_at: r.requested_at,
        status: match r.answer {
            None => RequestStatus::Pending,
            Some((true, t)) => RequestStatus::Granted(t),
            Some((false, t)) => RequestStatus::Refused(t),
        },
    }
}

fn name_in(names: &[u8], n: Name) -> &[u8] {
    let off = (n.0 >> 8) as usize;
    let len = (n.0 & 0xff) as usize;
    names.get(off..off + len).unwrap_or_default()
}
