//! Sealed portions: a header (context + capsule) followed by the STREAM body,
//! sealed by anyone holding the portion public key and opened by the patient
//! or by a granted user with a re-capsule from the SRS.

use core::fmt;
use std::io::{self, Read, Write};

use curve25519_dalek::ristretto::RistrettoBasepointTable;
use rand_core::CryptoRng;

use crate::capsule::{Context, PortionHeader};
use crate::delegatee::DelegateeOpener;
use crate::dem::{self, DemKey, StreamOpener, StreamSealer, TAG_LEN};

use crate::error::{Error, Result};
use crate::ids::RecordId;
use crate::keys::{HybridPortionKey, KeyPair, PortionPublicKey, PortionSecretKey};
use crate::pq::{Draw, Recipients};
use crate::reencrypt::ReCapsule;
use crate::rng::os_rng;

/// One sealed portion of a record: header and encrypted body. This is what
/// the cloud stores.
///
/// Encoding: the header's encoding, then the body.
///
/// ```
/// use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
/// let patient = PatientKeys::generate(Identity::new("alice")?);
/// let medical = patient.portion_secret(&PortionLabel::new("medical")?, 0);
/// let sealed = SealedPortion::seal(medical.public(), RecordId::random(), 1_700_000_000, b"blood type O+")?;
/// let stored = sealed.to_bytes(); // to the cloud
///
/// let sealed = SealedPortion::from_bytes(&stored)?;
/// assert_eq!(sealed.open_as_owner(&medical)?, b"blood type O+");
///
/// let doctor = KeyPair::generate();
/// let rekey = ReKey::generate(&medical, doctor.public()); // to the SRS
/// let rc = rekey.reencrypt(sealed.header().verify()?)?;    // by the SRS
/// assert_eq!(sealed.open_as_delegatee(&doctor, &rc)?, b"blood type O+");
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPortion {
    header: PortionHeader,
    body: Vec<u8>,
}

impl SealedPortion {
    /// Seals `plaintext` as a portion of record `record_id` created at
    /// `created_at` (seconds since the Unix epoch), with the OS RNG.
    ///
    /// # Errors
    /// [`Error::TooLarge`] only if the plaintext exceeds the format's limit.
    ///
    /// `key` is a [`PortionPublicKey`] (a classical header) or a
    /// [`HybridPortionKey`] (a hybrid, post-quantum header; DESIGN §16).
    pub fn seal<K: SealingKey + ?Sized>(
        key: &K,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
    ) -> Result<Self> {
        Self::seal_drawn(
            key,
            record_id,
            created_at,
            plaintext,
            &mut os_rng(),
            Draw::System,
        )
    }

    /// [`SealedPortion::seal`] with the given RNG.
    ///
    /// # Errors
    /// As [`SealedPortion::seal`].
    pub fn seal_with_rng<K: SealingKey + ?Sized, R: CryptoRng + ?Sized>(
        key: &K,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Self> {
        Self::seal_drawn(key, record_id, created_at, plaintext, rng, Draw::Given)
    }

    fn seal_drawn<K: SealingKey + ?Sized, R: CryptoRng + ?Sized>(
        key: &K,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
        rng: &mut R,
        draw: Draw,
    ) -> Result<Self> {
        let mul = |r: &curve25519_dalek::scalar::Scalar| r * key.portion_key().key().point();
        let (header, dem_key) = encapsulate(key, mul, record_id, created_at, rng, draw)?;
        Self::seal_body(header, &dem_key, plaintext)
    }

    /// [`SealedPortion::seal`] to a hybrid key (the same function; named
    /// for readers of code that must seal post-quantum).
    ///
    /// # Errors
    /// As [`SealedPortion::seal`].
    pub fn seal_hybrid(
        key: &HybridPortionKey,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
    ) -> Result<Self> {
        Self::seal(key, record_id, created_at, plaintext)
    }

    fn seal_body(header: PortionHeader, key: &DemKey, plaintext: &[u8]) -> Result<Self> {
        let body = dem::seal(key, plaintext)?;
        Ok(Self { header, body })
    }

    /// Assembles a sealed portion from a header and a body stored apart.
    pub fn from_parts(header: PortionHeader, body: Vec<u8>) -> Self {
        Self { header, body }
    }

    /// The header.
    pub fn header(&self) -> &PortionHeader {
        &self.header
    }

    /// The encrypted body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Header and body.
    pub fn into_parts(self) -> (PortionHeader, Vec<u8>) {
        (self.header, self.body)
    }

    /// The encoding: header, then body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.header.encoded_len() + self.body.len());
        self.header.encode_into(&mut v);
        v.extend_from_slice(&self.body);
        v
    }

    /// Decodes a header strictly and takes the rest as the body (which is
    /// authenticated when opened).
    ///
    /// # Errors
    /// As [`PortionHeader::from_bytes`]; [`Error::InvalidLength`] if the body
    /// is shorter than one tag.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (mut r, version) = PortionHeader::framed("sealed portion", bytes)?;
        let header = PortionHeader::read(&mut r, version)?;
        let body = r.rest();
        if body.len() < TAG_LEN {
            return Err(Error::InvalidLength {
                what: "sealed portion",
                expected: header.encoded_len() + TAG_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self {
            header,
            body: body.to_vec(),
        })
    }

    /// Opens the portion with the patient's portion secret key.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the key is for another portion or epoch;
    /// [`Error::InvalidCapsule`] if the header was altered;
    /// [`Error::DecryptionFailed`] if the body was.
    pub fn open_as_owner(&self, key: &PortionSecretKey) -> Result<Vec<u8>> {
        dem::open(&owner_dem_key(&self.header, key)?, &self.body)
    }

    /// Opens the portion as a granted user, with the re-capsule the SRS
    /// returned for this header. To open many records of one grant, make a
    /// [`DelegateeOpener`] once and use [`SealedPortion::open_as_delegatee_with`].
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the re-capsule is for another capsule or
    /// grant; [`Error::InvalidCapsule`], [`Error::InvalidReEncryptionProof`];
    /// [`Error::DecryptionFailed`] if it does not open (another user's
    /// re-capsule, tampering).
    pub fn open_as_delegatee(&self, user: &KeyPair, recapsule: &ReCapsule) -> Result<Vec<u8>> {
        self.open_as_delegatee_with(
            &DelegateeOpener::for_recapsule(user, &self.header, recapsule),
            recapsule,
        )
    }

    /// Opens the portion with a grant's [`DelegateeOpener`] (its `d` computed
    /// once for many records; it may require proofs and names the portion
    /// key the user expects) and the re-capsule the SRS returned.
    ///
    /// # Errors
    /// As [`SealedPortion::open_as_delegatee`].
    pub fn open_as_delegatee_with(
        &self,
        opener: &DelegateeOpener,
        recapsule: &ReCapsule,
    ) -> Result<Vec<u8>> {
        dem::open(&opener.dem_key(&self.header, recapsule)?, self.body())
    }
}

impl fmt::Debug for SealedPortion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedPortion")
            .field("header", &self.header)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// `Z = x_{P,c}·E`, after the capsule proof; for a hybrid header also `σ`
/// from the owner's stanza. The DEM key binds `E`, `V` and
/// the context but not `s`, so without the proof a header with another `s`
/// would still open for the owner while the SRS refused it; checking it keeps
/// one rule for every reader: a header that does not verify opens for no one.
pub(crate) fn owner_dem_key(header: &PortionHeader, key: &PortionSecretKey) -> Result<DemKey> {
    if header.context().portion_key() != key.public().key() {
        return Err(Error::KeyMismatch);
    }
    header.verify()?;
    let pq = if header.is_hybrid() {
        Some(key.pq_secret()?)
    } else {
        None
    };
    let mut shared = key.scalar() * header.capsule().e();
    let k = header.owner_dem_key(&shared, pq);
    zeroize::Zeroize::zeroize(&mut shared);
    k
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::keys::PortionPublicKey {}
    impl Sealed for crate::keys::HybridPortionKey {}
    impl Sealed for super::AnyPortionKey {}
}

/// A portion key decoded from either encoding — classical (`"SPPK"`) or
/// hybrid (`"SPHK"`), told apart by the magic — for hosts that receive
/// keys as bytes and seal to whichever they are given.
///
/// ```
/// use sesphr::{AnyPortionKey, Identity, PatientKeys, PortionLabel, RecordId, SealedPortion};
/// let patient = PatientKeys::generate(Identity::new("p")?);
/// let lab = patient.portion_secret(&PortionLabel::new("lab")?, 0);
/// let key = AnyPortionKey::from_bytes(&lab.public().to_bytes())?;
/// let sealed = SealedPortion::seal(&key, RecordId::random(), 1_700_000_000, b"x")?;
/// assert!(!sealed.header().is_hybrid());
/// # Ok::<(), sesphr::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AnyPortionKey {
    /// A classical portion public key.
    Classical(PortionPublicKey),
    /// A hybrid (post-quantum) portion key.
    Hybrid(HybridPortionKey),
}

impl AnyPortionKey {
    /// Decodes either encoding strictly.
    ///
    /// # Errors
    /// As [`PortionPublicKey::from_bytes`] or [`HybridPortionKey::from_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(&crate::encoding::magic::HYBRID_PORTION_KEY) {
            HybridPortionKey::from_bytes(bytes).map(Self::Hybrid)
        } else {
            PortionPublicKey::from_bytes(bytes).map(Self::Classical)
        }
    }
}

impl SealingKey for AnyPortionKey {
    fn portion_key(&self) -> &PortionPublicKey {
        match self {
            Self::Classical(k) => k,
            Self::Hybrid(k) => k.classical(),
        }
    }
    fn hybrid(&self) -> Option<&HybridPortionKey> {
        match self {
            Self::Classical(_) => None,
            Self::Hybrid(k) => Some(k),
        }
    }
}

/// A key portions are sealed to: a [`PortionPublicKey`] (classical
/// headers) or a [`HybridPortionKey`] (hybrid, post-quantum headers).
/// Implemented by those two only.
pub trait SealingKey: sealed::Sealed {
    /// The classical portion public key.
    fn portion_key(&self) -> &PortionPublicKey;
    /// The hybrid key, if this is one.
    fn hybrid(&self) -> Option<&HybridPortionKey>;
}

impl SealingKey for PortionPublicKey {
    fn portion_key(&self) -> &PortionPublicKey {
        self
    }
    fn hybrid(&self) -> Option<&HybridPortionKey> {
        None
    }
}

impl SealingKey for HybridPortionKey {
    fn portion_key(&self) -> &PortionPublicKey {
        self.classical()
    }
    fn hybrid(&self) -> Option<&HybridPortionKey> {
        Some(self)
    }
}

/// A new header and its DEM key for `key`: the one sealing step behind
/// [`SealedPortion::seal`], [`PortionEncryptor`] and [`PortionWriter`].
fn encapsulate<K: SealingKey + ?Sized, R: CryptoRng + ?Sized>(
    key: &K,
    mul_x: impl FnOnce(&curve25519_dalek::scalar::Scalar) -> curve25519_dalek::RistrettoPoint,
    record_id: RecordId,
    created_at: u64,
    rng: &mut R,
    draw: Draw,
) -> Result<(PortionHeader, DemKey)> {
    let ctx = Context::new(key.portion_key(), record_id, created_at);
    let recipients: Option<&Recipients> = key.hybrid().map(HybridPortionKey::recipients);
    PortionHeader::encapsulate(ctx, mul_x, recipients, rng, draw)
}

/// An encryptor for one portion public key with a precomputed table of its
/// multiples: sealing many portions under one key (a hospital adding lab
/// reports, an import of a patient's history) costs less per portion.
pub struct PortionEncryptor {
    key: PortionPublicKey,
    hybrid: Option<HybridPortionKey>,
    table: Box<RistrettoBasepointTable>,
}

impl PortionEncryptor {
    /// Precomputes the table for `key` (about 30 KiB; worth it from a few
    /// portions on). A [`HybridPortionKey`] makes it seal hybrid headers.
    pub fn new<K: SealingKey + ?Sized>(key: &K) -> Self {
        let classical = key.portion_key();
        Self {
            key: classical.clone(),
            hybrid: key.hybrid().cloned(),
            table: Box::new(RistrettoBasepointTable::create(classical.key().point())),
        }
    }

    /// The (classical) portion public key.
    pub fn key(&self) -> &PortionPublicKey {
        &self.key
    }

    /// Whether it seals hybrid (post-quantum) headers.
    pub fn is_hybrid(&self) -> bool {
        self.hybrid.is_some()
    }

    /// As [`SealedPortion::seal`].
    ///
    /// # Errors
    /// As [`SealedPortion::seal`].
    pub fn seal(
        &self,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
    ) -> Result<SealedPortion> {
        self.seal_drawn(
            record_id,
            created_at,
            plaintext,
            &mut os_rng(),
            Draw::System,
        )
    }

    /// As [`SealedPortion::seal_with_rng`].
    ///
    /// # Errors
    /// As [`SealedPortion::seal`].
    pub fn seal_with_rng<R: CryptoRng + ?Sized>(
        &self,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<SealedPortion> {
        self.seal_drawn(record_id, created_at, plaintext, rng, Draw::Given)
    }

    fn seal_drawn<R: CryptoRng + ?Sized>(
        &self,
        record_id: RecordId,
        created_at: u64,
        plaintext: &[u8],
        rng: &mut R,
        draw: Draw,
    ) -> Result<SealedPortion> {
        let mul = |r: &curve25519_dalek::scalar::Scalar| r * &*self.table;
        let (header, dem_key) = match &self.hybrid {
            Some(h) => encapsulate(h, mul, record_id, created_at, rng, draw)?,
            None => encapsulate(&self.key, mul, record_id, created_at, rng, draw)?,
        };
        SealedPortion::seal_body(header, &dem_key, plaintext)
    }
}

impl fmt::Debug for PortionEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionEncryptor")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Seals a portion of any size with bounded memory (one 64 KiB chunk): writes
/// the header at once, then the body as plaintext is written to it.
/// [`PortionWriter::finish`] writes the last chunk; a writer dropped without
/// it leaves a truncated portion, which will not open.
///
/// ```
/// use std::io::{Read, Write};
/// use sesphr::{Identity, PatientKeys, PortionLabel, PortionReader, PortionWriter, RecordId};
/// let patient = PatientKeys::generate(Identity::new("alice")?);
/// let imaging = patient.portion_secret(&PortionLabel::new("imaging")?, 0);
///
/// let mut w = PortionWriter::new(imaging.public(), RecordId::random(), 1_700_000_000, Vec::new())?;
/// for _ in 0..3 {
///     w.write_all(&[0x42; 100_000])?;
/// }
/// let stored: Vec<u8> = w.finish()?;
///
/// let mut plain = Vec::new();
/// PortionReader::new(&stored[..])?.open_as_owner(&imaging)?.read_to_end(&mut plain)?;
/// assert_eq!(plain.len(), 300_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PortionWriter<W: Write> {
    inner: W,
    header: PortionHeader,
    sealer: StreamSealer,
}

impl<W: Write> PortionWriter<W> {
    /// Starts a portion and writes its header to `inner`, with the OS RNG.
    ///
    /// # Errors
    /// [`Error::Io`] if writing the header fails.
    pub fn new<K: SealingKey + ?Sized>(
        key: &K,
        record_id: RecordId,
        created_at: u64,
        inner: W,
    ) -> Result<Self> {
        Self::new_drawn(
            key,
            record_id,
            created_at,
            inner,
            &mut os_rng(),
            Draw::System,
        )
    }

    /// [`PortionWriter::new`] with the given RNG.
    ///
    /// # Errors
    /// As [`PortionWriter::new`].
    pub fn new_with_rng<K: SealingKey + ?Sized, R: CryptoRng + ?Sized>(
        key: &K,
        record_id: RecordId,
        created_at: u64,
        inner: W,
        rng: &mut R,
    ) -> Result<Self> {
        Self::new_drawn(key, record_id, created_at, inner, rng, Draw::Given)
    }

    fn new_drawn<K: SealingKey + ?Sized, R: CryptoRng + ?Sized>(
        key: &K,
        record_id: RecordId,
        created_at: u64,
        mut inner: W,
        rng: &mut R,
        draw: Draw,
    ) -> Result<Self> {
        let (header, dem_key) = encapsulate(
            key,
            |r| r * key.portion_key().key().point(),
            record_id,
            created_at,
            rng,
            draw,
        )?;
        inner.write_all(&header.to_bytes())?;
        Ok(Self {
            inner,
            header,
            sealer: StreamSealer::new(dem_key),
        })
    }

    /// The header already written.
    pub fn header(&self) -> &PortionHeader {
        &self.header
    }

    /// The inner writer (e.g. to drain a `Vec<u8>` as the portion grows).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Seals `data` as [`Write::write_all`] does, but writes the sealed
    /// chunks it completes into `out` instead of the inner writer (which
    /// keeps only the header): for hosts that seal into memory they own,
    /// without the copy through the inner writer. `out` needs room for
    /// every chunk `data` completes — `data.len()` plus 16 bytes per 64 KiB
    /// chunk and one more tag is always enough. Returns how many bytes it
    /// wrote; the last chunk comes from [`PortionWriter::finish`]. Both
    /// forms may be mixed; the output is the same bytes in the same order.
    ///
    /// ```
    /// # use sesphr::*;
    /// # let p = PatientKeys::generate(Identity::new("p")?);
    /// # let key = p.portion_secret(&PortionLabel::new("imaging")?, 0);
    /// let mut w = PortionWriter::new(key.public(), RecordId::random(), 1_700_000_000, Vec::new())?;
    /// let mut sealed = std::mem::take(w.get_mut()); // the header
    /// let mut room = vec![0u8; 300_000];
    /// let n = w.write_into(&[7u8; 200_000], &mut room)?;
    /// sealed.extend_from_slice(&room[..n]);
    /// sealed.extend_from_slice(&w.finish()?);
    /// assert_eq!(SealedPortion::from_bytes(&sealed)?.open_as_owner(&key)?, vec![7u8; 200_000]);
    /// # Ok::<(), sesphr::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLarge`] if `out` is too short for what `data` completes
    /// (the sealer is then unusable: start the portion again).
    pub fn write_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize> {
        self.sealer.update_into(data, out)
    }

    /// Writes the last chunk and returns the inner writer (not flushed).
    ///
    /// # Errors
    /// [`Error::Io`] if writing fails.
    pub fn finish(mut self) -> Result<W> {
        self.sealer.finish(&mut self.inner)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for PortionWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sealer.update(&mut self.inner, buf)?;
        Ok(buf.len())
    }

    /// Flushes the inner writer. Buffered plaintext of the current chunk
    /// stays buffered: it can only be sealed once it is known whether it is
    /// the last chunk.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> fmt::Debug for PortionWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionWriter")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Reads a sealed portion from a stream: first the header (to send to the SRS
/// or to pick the key), then the body through [`PortionPlaintext`]. For a
/// split key, [`PortionReader::open_threshold`].
#[derive(Debug)]
pub struct PortionReader<R: Read> {
    inner: R,
    header: PortionHeader,
}

impl<R: Read> PortionReader<R> {
    /// Reads and decodes the header.
    ///
    /// # Errors
    /// As [`PortionHeader::read_from`].
    pub fn new(mut inner: R) -> Result<Self> {
        let header = PortionHeader::read_from(&mut inner)?;
        Ok(Self { inner, header })
    }

    /// The header.
    pub fn header(&self) -> &PortionHeader {
        &self.header
    }

    /// Opens the body with the patient's portion secret key.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the key is for another portion or epoch;
    /// [`Error::InvalidCapsule`] if the header was altered.
    pub fn open_as_owner(self, key: &PortionSecretKey) -> Result<PortionPlaintext<R>> {
        let k = owner_dem_key(&self.header, key)?;
        Ok(PortionPlaintext(StreamOpener::new(k, self.inner)))
    }

    /// Opens the body as a granted user.
    ///
    /// # Errors
    /// As [`SealedPortion::open_as_delegatee`], except that tampering with the
    /// body shows up while reading.
    pub fn open_as_delegatee(
        self,
        user: &KeyPair,
        recapsule: &ReCapsule,
    ) -> Result<PortionPlaintext<R>> {
        let opener = DelegateeOpener::for_recapsule(user, &self.header, recapsule);
        self.open_as_delegatee_with(&opener, recapsule)
    }

    /// The header and the stream positioned at the body (for openers
    /// built elsewhere, e.g. [`crate::ThresholdOpener::open_stream`]).
    pub(crate) fn into_parts(self) -> (PortionHeader, R) {
        (self.header, self.inner)
    }

    /// Opens the body with a grant's opener.
    ///
    /// # Errors
    /// As [`PortionReader::open_as_delegatee`].
    pub fn open_as_delegatee_with(
        self,
        opener: &DelegateeOpener,
        recapsule: &ReCapsule,
    ) -> Result<PortionPlaintext<R>> {
        let k = opener.dem_key(&self.header, recapsule)?;
        Ok(PortionPlaintext(StreamOpener::new(k, self.inner)))
    }
}

/// The plaintext of a portion being read. Each 64 KiB chunk is released only
/// after its tag verified. A stream cut short, reordered or extended fails
/// with an error of kind `InvalidData` (wrapping [`Error::DecryptionFailed`])
/// at the point it is detected, which for a truncation is the end: treat a
/// portion as read only when `read` has returned `Ok(0)`, and discard what
/// was read if an error came first.
pub struct PortionPlaintext<R: Read>(StreamOpener<R>);

impl<R: Read> PortionPlaintext<R> {
    /// The plaintext of the body `inner` under `key`.
    pub(crate) fn new(key: DemKey, inner: R) -> Self {
        Self(StreamOpener::new(key, inner))
    }
}

impl<R: Read> Read for PortionPlaintext<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> fmt::Debug for PortionPlaintext<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionPlaintext").finish_non_exhaustive()
    }
}

/// Opens a portion's body pushed to it in pieces of any size (for hosts that
/// receive the body in callbacks or from C): each piece's complete chunks
/// are opened and their plaintext appended to `out` once their tags verify;
/// the last chunk only at [`PortionOpener::finish`]. After any failure the
/// opener stays failed. `out` never reallocates while it holds plaintext of
/// this call (room is made first; a grown buffer's old block is zeroized).
/// For a split key, [`PortionOpener::for_threshold`] makes one.
///
/// ```
/// use sesphr::{Identity, PatientKeys, PortionLabel, PortionOpener, RecordId, SealedPortion};
/// let patient = PatientKeys::generate(Identity::new("p")?);
/// let key = patient.portion_secret(&PortionLabel::new("imaging")?, 0);
/// let scan = vec![7u8; 200_000];
/// let sealed = SealedPortion::seal(key.public(), RecordId::random(), 1_700_000_000, &scan)?;
/// let mut opener = PortionOpener::for_owner(sealed.header(), &key)?;
/// let mut plaintext = Vec::new();
/// for piece in sealed.body().chunks(50_000) {
///     opener.push(piece, &mut plaintext)?;
/// }
/// opener.finish(&mut plaintext)?; // only now is the portion complete and authentic
/// assert_eq!(plaintext, scan);
/// # Ok::<(), sesphr::Error>(())
/// ```
pub struct PortionOpener(crate::dem::ChunkOpener);

impl PortionOpener {
    /// The opener of `header`'s body for the patient.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if `key` is for another portion or epoch;
    /// [`Error::InvalidCapsule`] if the header's capsule does not verify.
    pub fn for_owner(header: &PortionHeader, key: &PortionSecretKey) -> Result<Self> {
        Ok(Self(crate::dem::ChunkOpener::new(owner_dem_key(
            header, key,
        )?)))
    }

    /// The opener of `header`'s body for a granted user, with the
    /// re-capsule the SRS returned.
    ///
    /// # Errors
    /// As [`SealedPortion::open_as_delegatee_with`], before any body byte is read.
    pub fn for_delegatee(
        header: &PortionHeader,
        opener: &DelegateeOpener,
        recapsule: &ReCapsule,
    ) -> Result<Self> {
        Ok(Self(crate::dem::ChunkOpener::new(
            opener.dem_key(header, recapsule)?,
        )))
    }

    /// The opener of a body under `key` (for openers built elsewhere, e.g.
    /// [`crate::ThresholdOpener::chunk_opener`]).
    pub(crate) fn from_key(key: DemKey) -> Self {
        Self(crate::dem::ChunkOpener::new(key))
    }

    /// Feeds body bytes; appends the plaintext of every chunk that verified.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] (then also for every later call).
    pub fn push(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.0.push(body, out)
    }

    /// As [`PortionOpener::push`], writing the plaintext into `out` (at
    /// least `body.len()` bytes plus one sealed chunk, 65,552 bytes, is
    /// always enough) instead of a `Vec`; returns how many bytes it wrote.
    /// Plaintext goes only where it belongs: no copy is left elsewhere.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`] (then also for every later call; the
    /// plaintext this call wrote before the failing chunk is wiped);
    /// [`Error::TooLarge`] if `out` is too short (the opener is then
    /// unusable).
    pub fn push_into(&mut self, body: &[u8], out: &mut [u8]) -> Result<usize> {
        let mut sink = crate::dem::SliceSink::new(out);
        let r = self.0.push(body, &mut sink);
        let n = sink.written();
        if r.is_err() {
            zeroize::Zeroize::zeroize(out.get_mut(..n).unwrap_or_default());
        }
        r.map(|()| n)
    }

    /// The body has ended: opens the last chunk. Only `Ok` here means the
    /// portion was complete (not truncated) and authentic.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`].
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<()> {
        self.0.finish(out)
    }
}

impl fmt::Debug for PortionOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortionOpener").finish_non_exhaustive()
    }
}
