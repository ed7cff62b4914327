//! The data encapsulation: ChaCha20-Poly1305 in the STREAM construction.
//!
//! The plaintext is cut into 64 KiB chunks. Chunk `i` is sealed under the
//! nonce `i as 88-bit big-endian ‖ last-chunk flag (0x00 or 0x01)` with empty
//! associated data; its 16-byte tag follows it. The key is unique per capsule,
//! so counters start at 0. An empty portion is one empty last chunk; a
//! non-empty portion never ends with an empty chunk, so every plaintext has
//! exactly one encoding. Truncation, reordering, and extension all change
//! some chunk's nonce and so fail authentication.
//!
//! `aead` 0.6 no longer ships a STREAM helper (and its older one used a 32-bit
//! counter), so the framing is here. The AEAD is one of two backends behind
//! the small [`Aead`] trait, with the same output byte for byte: AWS-LC's
//! assembly (`aws-lc-rs`, feature `aws-lc`, on by default on native
//! targets) or RustCrypto's pure-Rust `chacha20poly1305` (WebAssembly, and
//! builds without a C compiler).

use std::io::{self, Read, Write};

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Tag};
use zeroize::{Zeroize, Zeroizing};

use crate::ct::{public, public_bytes};
use crate::error::{Error, Result};

/// Plaintext bytes per chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
/// Authentication tag bytes per chunk.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full chunk.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;

/// A 96-bit STREAM nonce.
type Nonce = [u8; 12];

/// ChaCha20-Poly1305 (RFC 8439) with empty associated data: what the STREAM
/// framing needs of an AEAD.
trait Aead: Send + Sync {
    /// Encrypts `pt` into `ct` (as long), out of place, and returns the tag.
    fn seal(&self, nonce: &Nonce, pt: &[u8], ct: &mut [u8]) -> Result<[u8; TAG_LEN]>;
    /// Decrypts `ct` into `out` (as long) if `tag` authenticates it. On
    /// `false`, `out` may hold anything; the caller wipes it.
    fn open(&self, nonce: &Nonce, ct: &[u8], tag: &[u8; TAG_LEN], out: &mut [u8]) -> bool;
}

/// RustCrypto's `chacha20poly1305` (pure Rust); zeroizes its key on drop.
struct RustCrypto(ChaCha20Poly1305);

impl Aead for RustCrypto {
    fn seal(&self, nonce: &Nonce, pt: &[u8], ct: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        let buf = InOutBuf::new(pt, ct).map_err(|_| Error::TooLarge)?;
        let tag = self
            .0
            .encrypt_inout_detached(nonce.into(), &[], buf)
            .map_err(|_| Error::TooLarge)?;
        Ok(tag.into())
    }

    fn open(&self, nonce: &Nonce, ct: &[u8], tag: &[u8; TAG_LEN], out: &mut [u8]) -> bool {
        InOutBuf::new(ct, out).is_ok_and(|buf| {
            self.0
                .decrypt_inout_detached(nonce.into(), &[], buf, &Tag::from(*tag))
                .is_ok()
        })
    }
}

/// AWS-LC's ChaCha20-Poly1305 (`aws-lc-rs`): its key lives in a C context
/// that AWS-LC wipes when it frees it (`OPENSSL_free` cleanses).
#[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
struct AwsLc(aws_lc_rs::aead::LessSafeKey);

#[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
impl Aead for AwsLc {
    fn seal(&self, nonce: &Nonce, pt: &[u8], ct: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        use aws_lc_rs::aead::{Aad, Nonce as N};
        // AWS-LC checks the lengths (`ct` as long as `pt`, a 16-byte tag)
        // before it runs.
        let mut tag = [0u8; TAG_LEN];
        self.0
            .seal_out_of_place_scatter(
                N::assume_unique_for_key(*nonce),
                Aad::empty(),
                pt,
                ct,
                &[],
                &mut tag,
            )
            .map_err(|_| Error::TooLarge)?;
        Ok(tag)
    }

    fn open(&self, nonce: &Nonce, ct: &[u8], tag: &[u8; TAG_LEN], out: &mut [u8]) -> bool {
        use aws_lc_rs::aead::{Aad, Nonce as N};
        self.0
            .open_separate_gather(N::assume_unique_for_key(*nonce), Aad::empty(), ct, tag, out)
            .is_ok()
    }
}

/// Which AEAD implementation seals and opens portions in this build:
/// `"aws-lc-rs"` (feature `aws-lc`, native targets) or
/// `"chacha20poly1305"` (pure Rust). Both give the same bytes.
pub fn dem_backend() -> &'static str {
    if cfg!(all(feature = "aws-lc", not(target_family = "wasm"))) {
        "aws-lc-rs"
    } else {
        "chacha20poly1305"
    }
}

/// A per-capsule DEM key, for this build's backend.
pub(crate) struct DemKey(Box<dyn Aead>);

impl DemKey {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
        {
            Self::aws_lc(bytes).unwrap_or_else(Self::rust_crypto)
        }
        #[cfg(not(all(feature = "aws-lc", not(target_family = "wasm"))))]
        {
            Self::rust_crypto(bytes)
        }
    }

    /// The pure-Rust backend.
    fn rust_crypto(mut bytes: [u8; 32]) -> Self {
        let key = Self(Box::new(RustCrypto(ChaCha20Poly1305::new(&bytes.into()))));
        bytes.zeroize();
        key
    }

    /// AWS-LC's backend; gives the bytes back if AWS-LC refuses the key
    /// (it does not for 32 bytes), so the caller falls back to pure Rust.
    #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
    fn aws_lc(mut bytes: [u8; 32]) -> core::result::Result<Self, [u8; 32]> {
        use aws_lc_rs::aead::{CHACHA20_POLY1305, LessSafeKey, UnboundKey};
        match UnboundKey::new(&CHACHA20_POLY1305, &bytes) {
            Ok(k) => {
                bytes.zeroize();
                Ok(Self(Box::new(AwsLc(LessSafeKey::new(k)))))
            }
            Err(_) => Err(bytes),
        }
    }
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = Nonce::default();
    // Bytes 0..3 are the high bits of the 88-bit counter: always zero, since
    // a u64 counter cannot reach 2^64 chunks of 64 KiB.
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Seals one chunk: `out` receives `pt.len() + TAG_LEN` bytes.
fn seal_chunk(key: &DemKey, counter: u64, last: bool, pt: &[u8], out: &mut [u8]) -> Result<()> {
    if out.len() != pt.len() + TAG_LEN {
        return Err(Error::TooLarge);
    }
    let (ct, tag_out) = out.split_at_mut(pt.len());
    let tag = key.0.seal(&nonce(counter, last), pt, ct)?;
    tag_out.copy_from_slice(&tag);
    public_bytes(out, "ciphertext");
    Ok(())
}

/// Opens one sealed chunk into `out` (`sealed.len() - TAG_LEN` bytes). The tag
/// is checked before anything is decrypted; on failure `out` holds no plaintext.
fn open_chunk(key: &DemKey, counter: u64, last: bool, sealed: &[u8], out: &mut [u8]) -> Result<()> {
    let ct_len = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(Error::DecryptionFailed)?;
    let (ct, tag) = sealed.split_at(ct_len);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptionFailed)?;
    if ct.len() != out.len() {
        return Err(Error::DecryptionFailed);
    }
    aead_decrypt(key, &nonce(counter, last), ct, tag, out)
}

/// The AEAD call alone, never inlined: the tag verdict (a branch inside
/// `chacha20poly1305`) is a declassification point of the constant-time
/// check, and a frame of its own lets `scripts/ctgrind.supp` name exactly
/// this call.
/// On failure `out` is wiped: no backend's partial output is left behind.
#[inline(never)]
fn aead_decrypt(
    key: &DemKey,
    nonce: &Nonce,
    ct: &[u8],
    tag: &[u8; TAG_LEN],
    out: &mut [u8],
) -> Result<()> {
    let verdict = key.0.open(nonce, ct, tag, out);
    if public(verdict, "aead-tag-verdict") {
        Ok(())
    } else {
        out.zeroize();
        Err(Error::DecryptionFailed)
    }
}

/// The ciphertext length of a plaintext of `len` bytes.
pub fn sealed_len(len: usize) -> usize {
    let chunks = len.div_ceil(CHUNK_LEN).max(1);
    len + chunks * TAG_LEN
}

/// Seals a whole plaintext into a fresh body. With the `parallel` feature,
/// portions of two chunks or more are sealed on all cores.
pub(crate) fn seal(key: &DemKey, pt: &[u8]) -> Result<Vec<u8>> {
    // A fresh zeroed allocation (calloc) leaves its pages to be faulted in
    // where the chunks are sealed (in parallel, with the workers), with no
    // serial memset first. Each chunk is sealed out of place, straight from
    // `pt` into its slot: one pass over the data.
    let mut body = vec![0u8; sealed_len(pt.len())];
    let n = pt.len().div_ceil(CHUNK_LEN).max(1);
    let seal_one = |(i, (dst, src)): (usize, (&mut [u8], &[u8]))| {
        seal_chunk(key, i as u64, i + 1 == n, src, dst)
    };
    #[cfg(feature = "parallel")]
    if n >= 2 && crate::parallel::enabled() {
        use rayon::prelude::*;
        body.par_chunks_mut(SEALED_CHUNK_LEN)
            .zip(pt.par_chunks(CHUNK_LEN))
            .enumerate()
            .try_for_each(seal_one)?;
        return Ok(body);
    }
    if pt.is_empty() {
        // The one empty chunk has no plaintext chunk to pair with.
        seal_chunk(key, 0, true, pt, &mut body)?;
    } else {
        body.chunks_mut(SEALED_CHUNK_LEN)
            .zip(pt.chunks(CHUNK_LEN))
            .enumerate()
            .try_for_each(seal_one)?;
    }
    Ok(body)
}

/// Opens a whole body. Returns the plaintext only if every chunk
/// authenticates and the chunk sequence is complete. With the `parallel`
/// feature, bodies of two chunks or more are opened on all cores.
pub(crate) fn open(key: &DemKey, body: &[u8]) -> Result<Vec<u8>> {
    let n = body.len().div_ceil(SEALED_CHUNK_LEN);
    if n == 0 {
        return Err(Error::DecryptionFailed);
    }
    let pt_len = body
        .len()
        .checked_sub(n * TAG_LEN)
        .ok_or(Error::DecryptionFailed)?;
    // The final chunk must hold a tag, and be non-empty unless it is the only
    // one: then plaintext and sealed chunks pair up one to one.
    let last_len = body.len() - (n - 1) * SEALED_CHUNK_LEN;
    if last_len < TAG_LEN || (n > 1 && last_len == TAG_LEN) {
        return Err(Error::DecryptionFailed);
    }
    let mut out = Zeroizing::new(vec![0u8; pt_len]);
    let open_one = |(i, (dst, sealed)): (usize, (&mut [u8], &[u8]))| {
        open_chunk(key, i as u64, i + 1 == n, sealed, dst)
    };
    #[cfg(feature = "parallel")]
    if n >= 2 && crate::parallel::enabled() {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK_LEN)
            .zip(body.par_chunks(SEALED_CHUNK_LEN))
            .enumerate()
            .try_for_each(open_one)?;
        return Ok(core::mem::take(&mut *out));
    }
    if pt_len == 0 {
        // The one empty chunk has no plaintext chunk to pair with.
        open_chunk(key, 0, true, body, &mut [])?;
    } else {
        out.chunks_mut(CHUNK_LEN)
            .zip(body.chunks(SEALED_CHUNK_LEN))
            .enumerate()
            .try_for_each(open_one)?;
    }
    Ok(core::mem::take(&mut *out))
}

/// Whether the first chunk of `body` authenticates under `key`: tells a
/// wrong key (nothing opens) from an altered body (the first chunk opens, a
/// later one does not). Its plaintext is zeroized, never released.
pub(crate) fn first_chunk_opens(key: &DemKey, body: &[u8]) -> bool {
    let (first, last) = match body.get(..SEALED_CHUNK_LEN) {
        Some(first) if body.len() > SEALED_CHUNK_LEN => (first, false),
        _ => (body, true),
    };
    let mut scratch = Zeroizing::new(vec![0u8; first.len().saturating_sub(TAG_LEN)]);
    open_chunk(key, 0, last, first, &mut scratch).is_ok()
}

/// Seals a stream chunk by chunk: holds at most one chunk of plaintext.
pub(crate) struct StreamSealer {
    key: DemKey,
    counter: u64,
    buf: Zeroizing<Vec<u8>>,
    out: Vec<u8>,
}

impl StreamSealer {
    pub(crate) fn new(key: DemKey) -> Self {
        Self {
            key,
            counter: 0,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK_LEN)),
            out: vec![0u8; SEALED_CHUNK_LEN],
        }
    }

    fn emit<W: Write>(&mut self, w: &mut W, last: bool) -> Result<()> {
        let len = self.buf.len() + TAG_LEN;
        let out = self.out.get_mut(..len).ok_or(Error::TooLarge)?;
        seal_chunk(&self.key, self.counter, last, &self.buf, out)?;
        w.write_all(out)?;
        self.buf.clear();
        self.counter = self.counter.checked_add(1).ok_or(Error::TooLarge)?;
        Ok(())
    }

    /// Seals `pt` as the next chunk, not the last, into `out` at `*at`.
    fn seal_next(&mut self, pt: &[u8], out: &mut [u8], at: &mut usize) -> Result<()> {
        let end = at.saturating_add(pt.len() + TAG_LEN);
        let dst = out.get_mut(*at..end).ok_or(Error::TooLarge)?;
        seal_chunk(&self.key, self.counter, false, pt, dst)?;
        *at = end;
        self.counter = self.counter.checked_add(1).ok_or(Error::TooLarge)?;
        Ok(())
    }

    /// As [`StreamSealer::update`], sealing straight into `out` (room for
    /// every chunk `data` completes: `data.len() + TAG_LEN` per chunk, see
    /// `stream_output_bound`); returns how many bytes it wrote. A chunk is
    /// sealed from `data` itself when nothing is buffered and more follows
    /// it in `data`; otherwise through the one-chunk buffer.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if `out` is too short (nothing is lost: the
    /// chunks written before stay written, their count returned by none).
    pub(crate) fn update_into(&mut self, mut data: &[u8], out: &mut [u8]) -> Result<usize> {
        let mut at = 0;
        while !data.is_empty() {
            if self.buf.len() == CHUNK_LEN {
                // More data follows, so the buffered chunk is not the last.
                let buf = core::mem::take(&mut *self.buf);
                let r = self.seal_next(&buf, out, &mut at);
                *self.buf = buf;
                r?;
                self.buf.clear();
            }
            if self.buf.is_empty() && data.len() > CHUNK_LEN {
                let (chunk, rest) = data.split_at(CHUNK_LEN);
                self.seal_next(chunk, out, &mut at)?;
                data = rest;
                continue;
            }
            let take = (CHUNK_LEN - self.buf.len()).min(data.len());
            let (head, tail) = data.split_at(take);
            self.buf.extend_from_slice(head);
            data = tail;
        }
        Ok(at)
    }

    /// Takes plaintext; writes every chunk known not to be the last.
    pub(crate) fn update<W: Write>(&mut self, w: &mut W, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.buf.len() == CHUNK_LEN {
                // More data follows, so the buffered chunk is not the last.
                self.emit(w, false)?;
            }
            let take = (CHUNK_LEN - self.buf.len()).min(data.len());
            let (head, tail) = data.split_at(take);
            self.buf.extend_from_slice(head);
            data = tail;
        }
        Ok(())
    }

    /// Writes the last chunk.
    pub(crate) fn finish<W: Write>(mut self, w: &mut W) -> Result<()> {
        self.emit(w, true)
    }
}

/// Makes room for `extra` more bytes in `out`, which may hold plaintext: if
/// it must grow, the contents move to a new allocation and the old one is
/// zeroized before it is freed.
pub(crate) fn reserve_zeroizing(out: &mut Vec<u8>, extra: usize) {
    let needed = out.len().saturating_add(extra);
    if out.capacity() >= needed {
        return;
    }
    // At least doubled, as `Vec` itself grows: a body pushed in many small
    // pieces into one `out` then costs amortized O(1) per byte, not a copy
    // of all of `out` per piece.
    let mut grown = Vec::with_capacity(needed.max(out.capacity().saturating_mul(2)));
    grown.extend_from_slice(out);
    let mut old = core::mem::replace(out, grown);
    old.zeroize();
}

/// Where an opener's plaintext goes: a growing `Vec`, or a caller's slice.
pub(crate) trait PlainSink {
    /// Makes room for up to `extra` more bytes before any is written (a
    /// `Vec` moves its contents, zeroizing the old allocation, only here).
    fn reserve(&mut self, extra: usize);
    /// The next `len` bytes of output, to be filled.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if there is no room.
    fn next(&mut self, len: usize) -> Result<&mut [u8]>;
    /// Takes back the last `len` bytes handed out (a chunk that failed;
    /// they were wiped).
    fn unwind(&mut self, len: usize);
}

impl PlainSink for Vec<u8> {
    fn reserve(&mut self, extra: usize) {
        reserve_zeroizing(self, extra);
    }
    fn next(&mut self, len: usize) -> Result<&mut [u8]> {
        let start = self.len();
        self.resize(start.saturating_add(len), 0);
        Ok(self.get_mut(start..).unwrap_or_default())
    }
    fn unwind(&mut self, len: usize) {
        self.truncate(self.len().saturating_sub(len));
    }
}

/// A caller's buffer, filled from the start.
pub(crate) struct SliceSink<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> SliceSink<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, at: 0 }
    }
    /// How many bytes were written.
    pub(crate) fn written(&self) -> usize {
        self.at
    }
}

impl PlainSink for SliceSink<'_> {
    fn reserve(&mut self, _extra: usize) {}
    fn next(&mut self, len: usize) -> Result<&mut [u8]> {
        let end = self.at.saturating_add(len);
        let dst = self.buf.get_mut(self.at..end).ok_or(Error::TooLarge)?;
        self.at = end;
        Ok(dst)
    }
    fn unwind(&mut self, len: usize) {
        self.at = self.at.saturating_sub(len);
    }
}

/// Opens `sealed` as chunk number `*counter` (the last if `last`), appending
/// its plaintext to `out`, and counts it. On failure `out` is as before.
fn open_next<S: PlainSink + ?Sized>(
    key: &DemKey,
    counter: &mut u64,
    last: bool,
    sealed: &[u8],
    out: &mut S,
) -> Result<()> {
    let plain = sealed.len().saturating_sub(TAG_LEN);
    let res = open_chunk(key, *counter, last, sealed, out.next(plain)?);
    if res.is_err() {
        out.unwind(plain);
        return res;
    }
    *counter = counter.checked_add(1).ok_or(Error::TooLarge)?;
    Ok(())
}

/// Opens a body pushed to it in pieces of any size: a chunk is opened as soon
/// as more bytes follow it (so it is not the last), and the final chunk when
/// the caller says the body has ended. A chunk's plaintext is released only
/// after its tag verified. Holds at most one sealed chunk plus the last piece.
pub(crate) struct ChunkOpener {
    key: DemKey,
    counter: u64,
    pending: Vec<u8>,
    state: OpenerState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenerState {
    Open,
    Done,
    Failed,
}

impl ChunkOpener {
    pub(crate) fn new(key: DemKey) -> Self {
        Self {
            key,
            counter: 0,
            pending: Vec::with_capacity(SEALED_CHUNK_LEN + 1),
            state: OpenerState::Open,
        }
    }

    /// Opens the first `len` pending bytes as the next chunk, appending its
    /// plaintext to `out`.
    fn open_into<S: PlainSink + ?Sized>(
        &mut self,
        last: bool,
        len: usize,
        out: &mut S,
    ) -> Result<()> {
        let sealed = self.pending.get(..len).ok_or(Error::DecryptionFailed)?;
        open_next(&self.key, &mut self.counter, last, sealed, out)?;
        self.pending.drain(..len);
        Ok(())
    }

    fn guard(&mut self, res: Result<()>) -> Result<()> {
        if res.is_err() {
            self.state = OpenerState::Failed;
            self.pending.clear();
        }
        res
    }

    /// Takes more of the body; appends the plaintext of every chunk known
    /// not to be the last to `out`.
    pub(crate) fn push<S: PlainSink + ?Sized>(
        &mut self,
        mut data: &[u8],
        out: &mut S,
    ) -> Result<()> {
        // Room for all the plaintext this call can release, before any is
        // written: `out` never reallocates (and leaves plaintext behind in
        // a freed block) while it holds some.
        out.reserve(self.pending.len() + data.len());
        match self.state {
            OpenerState::Open => {}
            // Bytes after the last chunk: an extension.
            OpenerState::Done if data.is_empty() => return Ok(()),
            OpenerState::Done | OpenerState::Failed => {
                return self.guard(Err(Error::DecryptionFailed));
            }
        }
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= SEALED_CHUNK_LEN {
                // A whole chunk in the caller's bytes: opened from there,
                // not copied into `pending` first.
                let (chunk, rest) = data.split_at(SEALED_CHUNK_LEN);
                let res = open_next(&self.key, &mut self.counter, false, chunk, out);
                if !rest.is_empty() {
                    // More follows, so it is not the last chunk.
                    self.guard(res)?;
                    data = rest;
                    continue;
                }
                if res.is_ok() {
                    // It authenticated as a chunk sealed "not the last" (the
                    // flag is in its nonce): the same verdict as when more
                    // bytes follow, one chunk sooner.
                    return Ok(());
                }
                // It may be the last chunk (or altered): held until the body
                // ends or more follows, as below; then opened again.
            }
            let take = (SEALED_CHUNK_LEN + 1 - self.pending.len()).min(data.len());
            let (head, tail) = data.split_at(take);
            self.pending.extend_from_slice(head);
            data = tail;
            if self.pending.len() > SEALED_CHUNK_LEN {
                let res = self.open_into(false, SEALED_CHUNK_LEN, out);
                self.guard(res)?;
            }
        }
        Ok(())
    }

    /// The body has ended: opens what is left as the last chunk.
    pub(crate) fn finish<S: PlainSink + ?Sized>(&mut self, out: &mut S) -> Result<()> {
        match self.state {
            OpenerState::Open => {}
            OpenerState::Done => return Ok(()),
            OpenerState::Failed => return Err(Error::DecryptionFailed),
        }
        let len = self.pending.len();
        // The last chunk holds a tag, and is empty only if it is the only one.
        if len < TAG_LEN || (self.counter > 0 && len == TAG_LEN) {
            return self.guard(Err(Error::DecryptionFailed));
        }
        out.reserve(len);
        let res = self.open_into(true, len, out);
        self.guard(res)?;
        self.state = OpenerState::Done;
        Ok(())
    }
}

/// Opens a body from a reader with bounded memory, through [`ChunkOpener`].
pub(crate) struct StreamOpener<R> {
    chunks: ChunkOpener,
    inner: R,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    done: bool,
}

impl<R: Read> StreamOpener<R> {
    pub(crate) fn new(key: DemKey, inner: R) -> Self {
        Self {
            chunks: ChunkOpener::new(key),
            inner,
            plain: Zeroizing::new(Vec::with_capacity(CHUNK_LEN)),
            pos: 0,
            done: false,
        }
    }
}

impl<R: Read> Read for StreamOpener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.plain.len() {
                let avail = self.plain.get(self.pos..).unwrap_or_default();
                let n = avail.len().min(buf.len());
                buf[..n].copy_from_slice(&avail[..n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.plain.zeroize();
            self.plain.clear();
            self.pos = 0;
            // Only here, when the plaintext buffered is used up: a small
            // read served from the buffer costs no 16 KiB initialization.
            let mut tmp = [0u8; 16 * 1024];
            let n = match self.inner.read(&mut tmp) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let res = if n == 0 {
                let r = self.chunks.finish(&mut *self.plain);
                // Only a verified last chunk ends the stream cleanly; after a
                // failure every later read fails too.
                self.done = r.is_ok();
                r
            } else {
                self.chunks
                    .push(tmp.get(..n).unwrap_or_default(), &mut *self.plain)
            };
            res?;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::cast_possible_truncation)]
    use super::*;

    /// Seals with one backend and opens with the other, every size class:
    /// the same format whichever is built in.
    #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
    #[test]
    #[cfg_attr(miri, ignore = "AWS-LC is C")]
    fn the_backends_seal_the_same_bytes_and_open_each_other() -> Result<()> {
        let sizes = [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            1 << 20,
            (16 << 20) + 3,
        ];
        for len in sizes {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let k = [len as u8 ^ 0x5a; 32];
            let (aws, rust) = (
                DemKey::aws_lc(k).map_err(|_| Error::TooLarge)?,
                DemKey::rust_crypto(k),
            );
            let (mut by_aws, by_rust) = (seal(&aws, &pt)?, seal(&rust, &pt)?);
            assert_eq!(by_aws, by_rust, "{len} bytes: the backends disagree");
            assert_eq!(open(&rust, &by_aws)?, pt, "{len}");
            assert_eq!(open(&aws, &by_rust)?, pt, "{len}");
            // Streaming, in pieces that cut chunks anywhere.
            let mut sealer = StreamSealer::new(DemKey::aws_lc(k).map_err(|_| Error::TooLarge)?);
            let mut streamed = Vec::new();
            for piece in pt.chunks(40_000) {
                sealer.update(&mut streamed, piece)?;
            }
            sealer.finish(&mut streamed)?;
            assert_eq!(streamed, by_rust, "{len}: streaming");
            // A flipped bit fails under both, and leaves no plaintext.
            if let Some(b) = by_aws.last_mut() {
                *b ^= 1;
            }
            assert!(open(&aws, &by_aws).is_err() && open(&rust, &by_aws).is_err());
        }
        Ok(())
    }

    /// A failed open wipes what the backend wrote before the verdict.
    #[test]
    fn a_chunk_that_fails_leaves_its_output_wiped() -> Result<()> {
        for k in [
            DemKey::rust_crypto([3; 32]),
            #[cfg(all(feature = "aws-lc", not(target_family = "wasm")))]
            DemKey::aws_lc([3; 32]).map_err(|_| Error::TooLarge)?,
        ] {
            let pt = vec![0xa5u8; 1000];
            let mut sealed = vec![0u8; pt.len() + TAG_LEN];
            seal_chunk(&k, 0, true, &pt, &mut sealed)?;
            sealed[0] ^= 1;
            let mut out = vec![0x11u8; pt.len()];
            assert!(open_chunk(&k, 0, true, &sealed, &mut out).is_err());
            assert!(out.iter().all(|&b| b == 0), "plaintext left behind");
        }
        Ok(())
    }

    fn key(b: u8) -> DemKey {
        DemKey::from_bytes([b; 32])
    }

    /// Found by the `stream_open` fuzz target: one-byte pushes into one
    /// `out` reallocated (and copied) all of `out` on every push.
    #[test]
    #[cfg_attr(miri, ignore = "two 64 KiB chunks byte by byte: minutes under Miri")]
    fn pushing_byte_by_byte_grows_the_output_geometrically() -> Result<()> {
        let pt: Vec<u8> = (0..CHUNK_LEN + 100).map(|i| (i % 251) as u8).collect();
        let body = seal(&key(1), &pt)?;
        let mut opener = ChunkOpener::new(key(1));
        let mut out = Vec::new();
        let mut reallocations = 0;
        for b in &body {
            let before = out.capacity();
            opener.push(core::slice::from_ref(b), &mut out)?;
            reallocations += usize::from(out.capacity() != before);
        }
        opener.finish(&mut out)?;
        assert_eq!(out, pt);
        assert!(reallocations <= 40, "{reallocations} reallocations");
        Ok(())
    }

    /// A chunk pushed whole is opened from the caller's bytes at once if it
    /// authenticates as "not the last"; a last or altered chunk is held,
    /// and the verdicts are those of any other way of cutting the body.
    #[test]
    #[cfg_attr(miri, ignore = "several 64 KiB chunks: slow under Miri")]
    fn whole_chunks_pushed_one_by_one() -> Result<()> {
        for len in [CHUNK_LEN, 2 * CHUNK_LEN, 3 * CHUNK_LEN, 3 * CHUNK_LEN + 5] {
            let pt: Vec<u8> = (0..len).map(|i| (i % 249) as u8).collect();
            let body = seal(&key(3), &pt)?;
            let pieces: Vec<&[u8]> = body.chunks(SEALED_CHUNK_LEN).collect();
            // Whole: every non-last chunk's plaintext is out as it is pushed.
            let mut opener = ChunkOpener::new(key(3));
            let mut out = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                opener.push(piece, &mut out)?;
                // The last chunk waits for the end of the body.
                let expect = if i + 1 < pieces.len() {
                    (i + 1) * CHUNK_LEN
                } else {
                    i * CHUNK_LEN
                };
                assert_eq!(out.len(), expect, "{len}: after chunk {i}");
            }
            opener.finish(&mut out)?;
            assert_eq!(out, pt, "{len}");
            // Cut after a whole chunk: the end never came.
            if pieces.len() > 1 {
                let mut opener = ChunkOpener::new(key(3));
                let mut out = Vec::new();
                for piece in &pieces[..pieces.len() - 1] {
                    opener.push(piece, &mut out)?;
                }
                assert!(
                    matches!(opener.finish(&mut out), Err(Error::DecryptionFailed)),
                    "{len}: cut"
                );
            }
            // The last chunk then one byte more: an extension, refused at
            // the latest at finish.
            let mut opener = ChunkOpener::new(key(3));
            let mut out = Vec::new();
            let mut res = Ok(());
            for piece in &pieces {
                res = res.and_then(|()| opener.push(piece, &mut out));
            }
            res = res.and_then(|()| opener.push(&[0], &mut out));
            res = res.and_then(|()| opener.finish(&mut out));
            assert!(
                matches!(res, Err(Error::DecryptionFailed)),
                "{len}: extended"
            );
            // One altered whole chunk: refused, at the latest at finish.
            for bad in 0..pieces.len() {
                let mut opener = ChunkOpener::new(key(3));
                let mut out = Vec::new();
                let mut res = Ok(());
                for (i, piece) in pieces.iter().enumerate() {
                    let mut p = piece.to_vec();
                    if i == bad {
                        p[7] ^= 1;
                    }
                    res = res.and_then(|()| opener.push(&p, &mut out));
                }
                res = res.and_then(|()| opener.finish(&mut out));
                assert!(
                    matches!(res, Err(Error::DecryptionFailed)),
                    "{len}: chunk {bad} altered"
                );
                assert!(
                    out.len() <= bad * CHUNK_LEN,
                    "{len}: plaintext past the altered chunk"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn round_trip_sizes_and_layout() -> Result<()> {
        // Under Miri (interpreted, ~10⁴× slower) the lengths that matter for
        // the chunk boundaries only.
        let lens: &[usize] = if cfg!(miri) {
            &[0, 1, CHUNK_LEN + 1]
        } else {
            &[0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1, 3 * CHUNK_LEN]
        };
        for &len in lens {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let body = seal(&key(1), &pt)?;
            assert_eq!(body.len(), sealed_len(len));
            assert_eq!(open(&key(1), &body)?, pt);
            assert!(matches!(open(&key(2), &body), Err(Error::DecryptionFailed)));
            // The streaming forms produce and accept the same bytes.
            let mut streamed = Vec::new();
            let mut s = StreamSealer::new(key(1));
            for piece in pt.chunks(1000) {
                s.update(&mut streamed, piece)?;
            }
            s.finish(&mut streamed)?;
            assert_eq!(streamed, body);
            let mut back = Vec::new();
            StreamOpener::new(key(1), &body[..]).read_to_end(&mut back)?;
            assert_eq!(back, pt);
        }
        Ok(())
    }

    #[test]
    fn an_empty_chunk_after_a_full_one_is_rejected() -> Result<()> {
        // A full chunk sealed as non-last followed by an empty last chunk
        // authenticates, but is not the canonical encoding: refuse it.
        let k = key(3);
        let pt = vec![9u8; CHUNK_LEN];
        let mut body = vec![0u8; SEALED_CHUNK_LEN + TAG_LEN];
        let (a, b) = body.split_at_mut(SEALED_CHUNK_LEN);
        seal_chunk(&k, 0, false, &pt, a)?;
        seal_chunk(&k, 1, true, &[], b)?;
        assert!(matches!(open(&k, &body), Err(Error::DecryptionFailed)));
        let mut out = Vec::new();
        assert!(
            StreamOpener::new(key(3), &body[..])
                .read_to_end(&mut out)
                .is_err()
        );
        Ok(())
    }
}
