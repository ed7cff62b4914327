//! Capsules: the key encapsulation of one portion, with a Schnorr proof of
//! knowledge of its randomness bound to the portion's context.
//!
//! For context `ctx`, random `r, u`: `E = r·G`, `V = u·G`,
//! `h = H_s("sesphr/v1/capsule", E, V, ctx)`, `s = u + r·h`. Anyone checks
//! `s·G == V + h·E`. The shared point `Z = r·X_{P,c}` feeds the DEM key
//! `K = HKDF(Z, "sesphr/v1/dem", E‖V‖ctx)`.

use core::fmt;
use std::io::Read;

use curve25519_dalek::constants::{RISTRETTO_BASEPOINT_POINT, RISTRETTO_BASEPOINT_TABLE};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::CryptoRng;
use zeroize::Zeroize;

use crate::ct::{public, public_bytes};
use crate::dem::DemKey;
use crate::encoding::{FORMAT_VERSION, Reader, decode_scalar, magic, put_short_bytes};
use crate::error::{Error, Result};
use crate::group::{double_and_compress, half};
use crate::hash::{derive_dem_key, hash_to_scalar, tag};
use crate::ids::{PortionLabel, RecordId};
use crate::keys::{PortionPublicKey, PublicKey, random_nonzero_scalar};
use crate::pq::{
    Draw, PQ_STANZA_LEN, PqSecretKey, Recipients, Role, SIGMA_LEN, Stanza, check_split,
    share_commitment, share_matches, split_sigma,
};
use crate::rng::os_rng;
use zeroize::Zeroizing;

/// What a portion is bound to: the portion key, the record, the label, the key
/// epoch and the creation time. A capsule made for one context verifies and
/// opens under no other.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Context {
    portion_key: PublicKey,
    record_id: RecordId,
    label: PortionLabel,
    epoch: u32,
    created_at: u64,
}

impl Context {
    /// The context of a new portion of record `record_id`, created at
    /// `created_at` (seconds since the Unix epoch), under `key`.
    pub fn new(key: &PortionPublicKey, record_id: RecordId, created_at: u64) -> Self {
        Self {
            portion_key: *key.key(),
            record_id,
            label: key.label().clone(),
            epoch: key.epoch(),
            created_at,
        }
    }

    /// The portion public key point `X_{P,c,k}`.
    pub fn portion_key(&self) -> &PublicKey {
        &self.portion_key
    }

    /// The record id.
    pub fn record_id(&self) -> RecordId {
        self.record_id
    }

    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }

    /// The key epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Creation time, seconds since the Unix epoch.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The portion public key this context was made under.
    pub fn portion_public_key(&self) -> PortionPublicKey {
        PortionPublicKey::new(self.label.clone(), self.epoch, self.portion_key)
    }

    /// `version ‖ X_{P,c} ‖ record id ‖ epoch (u32 BE) ‖ created_at (u64 BE) ‖
    /// [t ‖ n] ‖ label length ‖ label`: the bytes hashed into the capsule
    /// proof and the DEM key, and written in the header. A hybrid header
    /// (version 2, `split` given) names how `σ` is split among the SRS nodes
    /// before the label, and appends its stanzas after it.
    fn encode(&self, version: u8, split: Option<(u8, u8)>) -> Vec<u8> {
        let mut v = Vec::with_capacity(CTX_FIXED_LEN + 2 + self.label.as_bytes().len());
        v.push(version);
        v.extend_from_slice(self.portion_key.as_bytes());
        v.extend_from_slice(self.record_id.as_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(&self.created_at.to_be_bytes());
        if let Some((t, n)) = split {
            v.extend_from_slice(&[t, n]);
        }
        put_short_bytes(&mut v, self.label.as_bytes());
        v
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("portion_key", &self.portion_key)
            .field("record_id", &self.record_id)
            .field("label", &self.label)
            .field("epoch", &self.epoch)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Context bytes up to and including the label length.
const CTX_FIXED_LEN: usize = 1 + 32 + 16 + 4 + 8 + 1;
/// Encoded capsule length: `E ‖ V ‖ s`.
pub(crate) const CAPSULE_LEN: usize = 96;
/// The header version of a hybrid (post-quantum) header.
pub(crate) const HYBRID_VERSION: u8 = 2;
/// One SRS node's part of a hybrid header: its key version (u32 BE), its
/// stanza, the commitment to its share of `σ`.
pub(crate) const NODE_STANZA_LEN: usize = 4 + PQ_STANZA_LEN + 32;

/// A hybrid header's stanzas for `n` SRS nodes: the owner's, then each
/// node's.
pub(crate) const fn pq_section_len(nodes: u8) -> usize {
    PQ_STANZA_LEN + nodes as usize * NODE_STANZA_LEN
}

/// A capsule `(E, V, s)`.
#[derive(Clone, Copy)]
pub struct Capsule {
    e: CompressedRistretto,
    e_point: RistrettoPoint,
    v: CompressedRistretto,
    v_point: RistrettoPoint,
    s: Scalar,
}

impl Capsule {
    /// The encoding `E ‖ V ‖ s`.
    pub fn to_bytes(&self) -> [u8; CAPSULE_LEN] {
        let mut b = [0u8; CAPSULE_LEN];
        b[..32].copy_from_slice(self.e.as_bytes());
        b[32..64].copy_from_slice(self.v.as_bytes());
        b[64..].copy_from_slice(self.s.as_bytes());
        b
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let (e, e_point) = r.point()?;
        let (v, v_point) = r.point()?;
        let s = decode_scalar(&r.array()?)?;
        Ok(Self {
            e,
            e_point,
            v,
            v_point,
            s,
        })
    }

    /// Decodes `E ‖ V ‖ s` strictly.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::NonCanonicalPoint`],
    /// [`Error::IdentityPoint`], [`Error::NonCanonicalScalar`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::unframed("capsule", bytes);
        let c = Self::read(&mut r)?;
        r.finish()?;
        Ok(c)
    }

    pub(crate) fn e(&self) -> &RistrettoPoint {
        &self.e_point
    }

    pub(crate) fn e_bytes(&self) -> &[u8; 32] {
        self.e.as_bytes()
    }

    fn challenge(&self, ctx: &[u8]) -> Scalar {
        hash_to_scalar(tag::CAPSULE, &[self.e.as_bytes(), self.v.as_bytes(), ctx])
    }

    /// `s·G − h·E == V`.
    fn verify(&self, ctx: &[u8]) -> bool {
        let h = self.challenge(ctx);
        RistrettoPoint::vartime_double_scalar_mul_basepoint(&-h, &self.e_point, &self.s)
            == self.v_point
    }

    /// The DEM key from the shared point `Z` (and a hybrid header's `σ`).
    fn dem_key(
        &self,
        shared: &RistrettoPoint,
        sigma: Option<&[u8; SIGMA_LEN]>,
        ctx: &[u8],
    ) -> Result<DemKey> {
        let mut z = shared.compress().to_bytes();
        let k = derive_dem_key(&z, sigma, self.e.as_bytes(), self.v.as_bytes(), ctx);
        z.zeroize();
        k
    }
}

impl PartialEq for Capsule {
    fn eq(&self, other: &Self) -> bool {
        self.e == other.e && self.v == other.v && self.s == other.s
    }
}
impl Eq for Capsule {}

impl fmt::Debug for Capsule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capsule")
            .field("e", &crate::encoding::hex(self.e.as_bytes()))
            .field("v", &crate::encoding::hex(self.v.as_bytes()))
            .field("s", &crate::encoding::hex(self.s.as_bytes()))
            .finish()
    }
}

/// A portion's header: its context and its capsule. It is public; the cloud
/// stores it in front of the body, and the SRS re-encrypts it.
///
/// Encoding: `"SPHR" ‖ version ‖ X_{P,c} (32) ‖ record id (16) ‖ epoch (u32 BE)
/// ‖ created_at (u64 BE) ‖ [t ‖ n] ‖ label length ‖ label ‖ [stanzas] ‖ E ‖ V
/// ‖ s`. Version 1 is classical; version 2 is hybrid (post-quantum, SPEC
/// §4.6): `t ‖ n` say how the post-quantum secret `σ` is split among the
/// SRS nodes (`1 ‖ 1` for one SRS), and the owner's stanza (1,136 bytes)
/// then, per node, its key version (u32 BE), its stanza and the commitment
/// to its share come before the capsule: 2,310 bytes more for one SRS,
/// 1,172 more per further node.
#[derive(Clone, PartialEq, Eq)]
pub struct PortionHeader {
    context: Context,
    /// `context` encoded, with a hybrid header's stanzas: what the capsule
    /// proof and the DEM key bind. Kept so that hashing never re-encodes it.
    context_bytes: Vec<u8>,
    pq: Option<Box<HeaderStanzas>>,
    capsule: Capsule,
}

/// A hybrid header's stanzas.
#[derive(Clone, PartialEq, Eq, Debug)]
struct HeaderStanzas {
    owner: Stanza,
    /// How many nodes' shares recover `σ` (1 for one SRS).
    threshold: u8,
    /// Node `i`'s at position `i − 1` (one for one SRS).
    nodes: Vec<NodeStanza>,
}

/// One SRS node's part of a hybrid header.
#[derive(Clone, PartialEq, Eq, Debug)]
struct NodeStanza {
    version: u32,
    stanza: Stanza,
    commitment: [u8; 32],
}

impl PortionHeader {
    /// Shortest encoding (a classical header with a one-byte label).
    pub const MIN_LEN: usize = 4 + CTX_FIXED_LEN + 1 + CAPSULE_LEN;
    /// Longest encoding (a hybrid header split among
    /// [`crate::MAX_PQ_NODES`] nodes, with a 64-byte label).
    pub const MAX_LEN: usize = Self::hybrid_max_len(crate::pq::MAX_PQ_NODES);
    /// Longest classical (version 1) encoding (a 64-byte label).
    pub const CLASSICAL_MAX_LEN: usize = 4 + CTX_FIXED_LEN + PortionLabel::MAX_LEN + CAPSULE_LEN;
    /// How many leading bytes [`PortionHeader::len_from_prefix`] needs: up
    /// to and including the label length byte (a classical header's comes
    /// two bytes earlier, so its first 66 bytes are enough).
    pub const PREFIX_LEN: usize = 4 + CTX_FIXED_LEN + 2;

    /// Longest hybrid encoding for `nodes` SRS nodes (a 64-byte label).
    pub const fn hybrid_max_len(nodes: u8) -> usize {
        4 + CTX_FIXED_LEN + 2 + PortionLabel::MAX_LEN + pq_section_len(nodes) + CAPSULE_LEN
    }

    /// The length of the header that starts `prefix` (at least
    /// [`PortionHeader::PREFIX_LEN`] bytes of a header or sealed portion):
    /// how much to read from a stream before decoding the header.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] if `prefix` is shorter than `PREFIX_LEN`;
    /// [`Error::BadMagic`], [`Error::UnsupportedVersion`];
    /// [`Error::InvalidLabel`] for a label length of 0 or over 64.
    pub fn len_from_prefix(prefix: &[u8]) -> Result<usize> {
        const CLASSICAL_PREFIX: usize = 4 + CTX_FIXED_LEN;
        let short = |needed: usize| Error::InvalidLength {
            what: "portion header",
            expected: needed,
            actual: prefix.len(),
        };
        let p = prefix
            .get(..CLASSICAL_PREFIX)
            .ok_or(short(Self::PREFIX_LEN))?;
        let (mut r, version) = Reader::framed_versions(
            "portion header",
            p,
            magic::PORTION,
            &[FORMAT_VERSION, HYBRID_VERSION],
        )?;
        // Version (read by `framed`), key, record id, epoch, created_at…
        r.take(CLASSICAL_PREFIX - 6)?;
        let (label_len, pq, prefix_len) = if version == HYBRID_VERSION {
            // …the split, then the label length.
            let p = prefix
                .get(..Self::PREFIX_LEN)
                .ok_or(short(Self::PREFIX_LEN))?;
            let [t, n, label_len] = p
                .get(CLASSICAL_PREFIX - 1..)
                .and_then(|x| <[u8; 3]>::try_from(x).ok())
                .ok_or(short(Self::PREFIX_LEN))?;
            check_split(t, n)?;
            (label_len, pq_section_len(n), Self::PREFIX_LEN)
        } else {
            // …and the label length.
            (r.byte()?, 0, CLASSICAL_PREFIX)
        };
        let label_len = usize::from(label_len);
        if label_len == 0 || label_len > PortionLabel::MAX_LEN {
            return Err(Error::InvalidLabel);
        }
        Ok(prefix_len + label_len + pq + CAPSULE_LEN)
    }

    /// Encapsulates a fresh DEM key for `context`. `mul_x(k)` computes `k·X_{P,c}`
    /// (with or without a precomputed table). With `pq`, the header is
    /// hybrid: `σ` (a scalar), the split's coefficients, then the owner's
    /// and each node's encapsulations, are drawn from `rng` after `r` and
    /// `u`.
    pub(crate) fn encapsulate<R: CryptoRng + ?Sized>(
        context: Context,
        mul_x: impl FnOnce(&Scalar) -> RistrettoPoint,
        pq: Option<&Recipients>,
        rng: &mut R,
        draw: Draw,
    ) -> Result<(Self, DemKey)> {
        let mut r = random_nonzero_scalar(rng);
        let mut u = random_nonzero_scalar(rng);
        // E, V and Z are computed halved and compressed together (one inversion).
        let mut r_half = half(&r);
        let mut u_half = half(&u);
        let [(e, e_point), (v, v_point), (mut z, mut shared)] = double_and_compress([
            &r_half * RISTRETTO_BASEPOINT_TABLE,
            &u_half * RISTRETTO_BASEPOINT_TABLE,
            mul_x(&r_half),
        ]);
        let (context_bytes, pq, sigma) = match pq {
            None => (context.encode(FORMAT_VERSION, None), None, None),
            Some(to) => {
                let n = u8::try_from(to.srs.len()).map_err(|_| Error::InvalidThreshold)?;
                check_split(to.threshold, n)?;
                let mut bytes = context.encode(HYBRID_VERSION, Some((to.threshold, n)));
                let sigma_scalar = Zeroizing::new(Scalar::random(rng));
                let sigma = Zeroizing::new(sigma_scalar.to_bytes());
                let shares = split_sigma(&sigma_scalar, to.threshold, n, rng);
                let owner = Stanza::seal(&to.portion, Role::Owner, &[&bytes], &sigma, rng, draw)?;
                let mut nodes = Vec::with_capacity(to.srs.len());
                for ((i, key), share) in (1..=n).zip(&to.srs).zip(shares.iter()) {
                    let mut commitment = share_commitment(&bytes, i, share);
                    public_bytes(&mut commitment, "sigma-share-commitment");
                    nodes.push(NodeStanza {
                        version: key.version(),
                        stanza: Stanza::seal(
                            key.key(),
                            Role::Srs,
                            &[&bytes, &[i]],
                            share,
                            rng,
                            draw,
                        )?,
                        commitment,
                    });
                }
                let stanzas = HeaderStanzas {
                    owner,
                    threshold: to.threshold,
                    nodes,
                };
                stanzas.encode_into(&mut bytes);
                (bytes, Some(Box::new(stanzas)), Some(sigma))
            }
        };
        let mut capsule = Capsule {
            e,
            e_point,
            v,
            v_point,
            s: Scalar::ZERO,
        };
        let h = capsule.challenge(&context_bytes);
        capsule.s = u + r * h;
        let capsule = public(capsule, "capsule");
        let key = derive_dem_key(
            z.as_bytes(),
            sigma.as_deref(),
            e.as_bytes(),
            v.as_bytes(),
            &context_bytes,
        );
        r.zeroize();
        u.zeroize();
        r_half.zeroize();
        u_half.zeroize();
        z.0.zeroize();
        shared.zeroize();
        let header = Self {
            context,
            context_bytes,
            pq,
            capsule,
        };
        Ok((header, key?))
    }

    /// Whether the header is hybrid (post-quantum, version 2).
    pub fn is_hybrid(&self) -> bool {
        self.pq.is_some()
    }

    /// The SRS key version a hybrid header was sealed to (node 1's, for a
    /// split: [`PortionHeader::node_pq_version`]); `None` for a classical
    /// header.
    pub fn srs_pq_version(&self) -> Option<u32> {
        self.node_pq_version(1)
    }

    /// The key version of node `node`'s stanza (`1..=n`; 1 for one SRS);
    /// `None` for a classical header or a node it has no stanza for.
    pub fn node_pq_version(&self, node: u8) -> Option<u32> {
        self.node_stanza(node).map(|s| s.version)
    }

    /// How a hybrid header's `σ` is split: `(t, n)`, `(1, 1)` for one SRS;
    /// `None` for a classical header.
    pub fn pq_split(&self) -> Option<(u8, u8)> {
        self.pq
            .as_ref()
            .map(|p| (p.threshold, u8::try_from(p.nodes.len()).unwrap_or(u8::MAX)))
    }

    fn node_stanza(&self, node: u8) -> Option<&NodeStanza> {
        self.pq
            .as_ref()?
            .nodes
            .get(usize::from(node).checked_sub(1)?)
    }

    /// The context bytes without the stanzas (the associated data of every
    /// stanza's wrap).
    pub(crate) fn base_context_bytes(&self) -> &[u8] {
        let pq = self.pq_split().map_or(0, |(_, n)| pq_section_len(n));
        let len = self.context_bytes.len().saturating_sub(pq);
        self.context_bytes.get(..len).unwrap_or_default()
    }

    /// Node `node`'s share `σ_node` from its stanza (the delegate path; node
    /// 1 for one SRS), checked against the header's commitment to it.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header has no stanza for `node` or
    /// sealed it to another key version than `version`;
    /// [`Error::DecryptionFailed`] if the stanza does not open or its share
    /// is not the one committed to.
    pub(crate) fn srs_sigma(
        &self,
        node: u8,
        key: &PqSecretKey,
        version: u32,
    ) -> Result<Option<Zeroizing<[u8; SIGMA_LEN]>>> {
        if self.pq.is_none() {
            return Ok(None);
        }
        let entry = self.node_stanza(node).ok_or(Error::KeyMismatch)?;
        if entry.version != version {
            return Err(Error::KeyMismatch);
        }
        let base = self.base_context_bytes();
        let share = entry.stanza.open(key, Role::Srs, &[base, &[node]])?;
        self.check_share(node, &share)?;
        Ok(Some(share))
    }

    /// Checks node `node`'s share of `σ` against the header's commitment.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] if it is not the one committed to (or
    /// the header has no such node).
    pub(crate) fn check_share(&self, node: u8, share: &[u8; SIGMA_LEN]) -> Result<()> {
        let entry = self.node_stanza(node).ok_or(Error::DecryptionFailed)?;
        if share_matches(self.base_context_bytes(), node, share, &entry.commitment) {
            Ok(())
        } else {
            Err(Error::DecryptionFailed)
        }
    }

    /// `σ` from the owner's stanza; `None` for a classical header.
    fn owner_sigma(&self, key: &PqSecretKey) -> Result<Option<Zeroizing<[u8; SIGMA_LEN]>>> {
        let Some(pq) = &self.pq else {
            return Ok(None);
        };
        pq.owner
            .open(key, Role::Owner, &[self.base_context_bytes()])
            .map(Some)
    }

    /// The DEM key from `Z` for the owner, who opens a hybrid header's `σ`
    /// with the portion's ML-KEM key `pq`.
    ///
    /// # Errors
    /// [`Error::PqKeyMissing`] for a hybrid header without `pq`;
    /// [`Error::DecryptionFailed`] if its stanza does not open.
    pub(crate) fn owner_dem_key(
        &self,
        shared: &RistrettoPoint,
        pq: Option<&PqSecretKey>,
    ) -> Result<DemKey> {
        let sigma = match (&self.pq, pq) {
            (None, _) => None,
            (Some(_), None) => return Err(Error::PqKeyMissing),
            (Some(_), Some(key)) => self.owner_sigma(key)?,
        };
        self.dem_key(shared, sigma.as_deref())
    }

    /// The DEM key from `Z` and, for a hybrid header, `σ`.
    ///
    /// # Errors
    /// [`Error::PqKeyMissing`] for a hybrid header without `σ`.
    pub(crate) fn dem_key(
        &self,
        shared: &RistrettoPoint,
        sigma: Option<&[u8; SIGMA_LEN]>,
    ) -> Result<DemKey> {
        if self.pq.is_some() && sigma.is_none() {
            return Err(Error::PqKeyMissing);
        }
        let sigma = if self.pq.is_some() { sigma } else { None };
        self.capsule.dem_key(shared, sigma, &self.context_bytes)
    }

    /// The context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The capsule.
    pub fn capsule(&self) -> &Capsule {
        &self.capsule
    }

    /// The length of the encoding (with a hybrid header's stanzas).
    pub fn encoded_len(&self) -> usize {
        4 + self.context_bytes.len() + CAPSULE_LEN
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&magic::PORTION);
        out.extend_from_slice(&self.context_bytes);
        out.extend_from_slice(&self.capsule.to_bytes());
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut v);
        v
    }

    /// Reads a header whose magic and version (`version`) were read.
    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<Self> {
        let start = r.position() - 1; // the version byte starts the context
        let (kc, kp) = r.point()?;
        let record_id = RecordId::from_bytes(r.array()?);
        let epoch = r.u32()?;
        let created_at = r.u64()?;
        let split = if version == HYBRID_VERSION {
            let (t, n) = (r.byte()?, r.byte()?);
            check_split(t, n)?;
            Some((t, n))
        } else {
            None
        };
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let pq = match split {
            Some((threshold, n)) => {
                let owner = Stanza::read(r)?;
                let mut nodes = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    nodes.push(NodeStanza {
                        version: r.u32()?,
                        stanza: Stanza::read(r)?,
                        commitment: r.array()?,
                    });
                }
                Some(Box::new(HeaderStanzas {
                    owner,
                    threshold,
                    nodes,
                }))
            }
            None => None,
        };
        let end = r.position();
        let context_bytes = r.consumed(start, end).to_vec();
        let capsule = Capsule::read(r)?;
        Ok(Self {
            context: Context {
                portion_key: PublicKey::from_parts(kc, kp),
                record_id,
                label,
                epoch,
                created_at,
            },
            context_bytes,
            pq,
            capsule,
        })
    }

    /// Starts reading a header or sealed portion: magic and version.
    pub(crate) fn framed<'a>(what: &'static str, bytes: &'a [u8]) -> Result<(Reader<'a>, u8)> {
        Reader::framed_versions(
            what,
            bytes,
            magic::PORTION,
            &[FORMAT_VERSION, HYBRID_VERSION],
        )
    }

    /// Decodes a header strictly (no trailing bytes).
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::InvalidLabel`], [`Error::NonCanonicalPoint`],
    /// [`Error::IdentityPoint`], [`Error::NonCanonicalScalar`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (mut r, version) = Self::framed("portion header", bytes)?;
        let h = Self::read(&mut r, version)?;
        r.finish()?;
        Ok(h)
    }

    /// Reads exactly one header from a stream, leaving the body unread.
    ///
    /// # Errors
    /// As [`PortionHeader::from_bytes`]; [`Error::Io`] if the reader fails
    /// (a stream that ends inside the header is [`Error::InvalidLength`]).
    pub fn read_from<R: Read>(reader: &mut R) -> Result<Self> {
        let fixed = Self::PREFIX_LEN;
        let mut buf = vec![0u8; fixed];
        read_exact_or_short(reader, &mut buf, 0)?;
        buf.resize(Self::len_from_prefix(&buf)?, 0);
        read_exact_or_short(reader, buf.get_mut(fixed..).unwrap_or_default(), fixed)?;
        Self::from_bytes(&buf)
    }

    /// Checks the capsule proof against the context.
    ///
    /// # Errors
    /// [`Error::InvalidCapsule`] if the proof does not verify.
    pub fn verify(&self) -> Result<VerifiedHeader<'_>> {
        if self.capsule.verify(&self.context_bytes) {
            Ok(VerifiedHeader { header: self })
        } else {
            Err(Error::InvalidCapsule)
        }
    }

    /// Checks many capsule proofs at once: one random linear combination,
    /// checked with a single multiscalar multiplication (weights are fresh
    /// 128-bit scalars from the OS RNG). If the combined check fails, each is
    /// checked alone, so a bad capsule is named and the good ones still pass.
    pub fn verify_batch<'a>(headers: &[&'a PortionHeader]) -> Vec<Result<VerifiedHeader<'a>>> {
        Self::verify_batch_with_rng(headers, &mut os_rng())
    }

    /// [`PortionHeader::verify_batch`] with the given RNG.
    pub fn verify_batch_with_rng<'a, R: CryptoRng + ?Sized>(
        headers: &[&'a PortionHeader],
        rng: &mut R,
    ) -> Vec<Result<VerifiedHeader<'a>>> {
        if headers.len() > 1 && batch_check(headers, rng) {
            return headers
                .iter()
                .map(|h| Ok(VerifiedHeader { header: h }))
                .collect();
        }
        headers.iter().map(|h| h.verify()).collect()
    }
}

/// `Σ z_i·(s_i·G − V_i − h_i·E_i) == 0` for random 128-bit `z_i`.
fn batch_check<R: CryptoRng + ?Sized>(headers: &[&PortionHeader], rng: &mut R) -> bool {
    let n = headers.len();
    let mut scalars = Vec::with_capacity(2 * n + 1);
    let mut points = Vec::with_capacity(2 * n + 1);
    let mut g_coeff = Scalar::ZERO;
    scalars.push(Scalar::ZERO); // the basepoint's coefficient, filled in below
    points.push(RISTRETTO_BASEPOINT_POINT);
    for h in headers {
        let mut w = [0u8; 32];
        rng.fill_bytes(&mut w[..16]);
        let z = Scalar::from_bytes_mod_order(w);
        let c = &h.capsule;
        let ch = c.challenge(&h.context_bytes);
        g_coeff += z * c.s;
        scalars.push(-z);
        points.push(c.v_point);
        scalars.push(-(z * ch));
        points.push(c.e_point);
    }
    if let Some(first) = scalars.first_mut() {
        *first = g_coeff;
    }
    RistrettoPoint::vartime_multiscalar_mul(&scalars, &points).is_identity()
}

/// Fills `buf` from `reader`; a stream that ends early is a short header
/// (`already` bytes were read before `buf`).
fn read_exact_or_short<R: Read>(reader: &mut R, buf: &mut [u8], already: usize) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(buf.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => {
                return Err(Error::InvalidLength {
                    what: "portion header",
                    expected: already + buf.len(),
                    actual: already + filled,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(())
}

impl HeaderStanzas {
    fn encode_into(&self, out: &mut Vec<u8>) {
        self.owner.encode_into(out);
        for node in &self.nodes {
            out.extend_from_slice(&node.version.to_be_bytes());
            node.stanza.encode_into(out);
            out.extend_from_slice(&node.commitment);
        }
    }
}

impl fmt::Debug for PortionHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionHeader")
            .field("context", &self.context)
            .field("pq_split", &self.pq_split())
            .field("capsule", &self.capsule)
            .finish()
    }
}

/// A header whose capsule proof has been checked. Only
/// [`PortionHeader::verify`] and [`PortionHeader::verify_batch`] make one; it
/// cannot be deserialized, so holding one proves the check ran.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedHeader<'a> {
    header: &'a PortionHeader,
}

impl<'a> VerifiedHeader<'a> {
    /// The verified header.
    pub fn header(&self) -> &'a PortionHeader {
        self.header
    }
}
