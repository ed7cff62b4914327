//! Sealing and opening portions from C, in memory and as streams.

use core::ffi::c_uint;

use super::keys::{sesphr_keypair, sesphr_patient_keys};
use super::{
    Handle, bytes, free_handle, handle_mut, handle_ref, into_handle, out, put_buffer,
    put_sealed_buffer, run, sesphr_buffer, sesphr_result,
};
use sesphr::{
    AnyPortionKey, DelegateeOpener, Error, PatientKeys, PortionHeader, PortionOpener,
    PortionPublicKey, PortionSecretKey, PortionWriter, ReCapsule, RecordId, SealedPortion,
};
use zeroize::Zeroizing;

/// Length of a record id.
pub const SESPHR_RECORD_ID_LEN: usize = 16;
/// How many bytes of a sealed portion `sesphr_header_len` needs to see (a
/// classical header's first 66 are enough).
pub const SESPHR_HEADER_PREFIX_LEN: usize = 68;
/// The shortest encoded header (a one-byte label).
pub const SESPHR_HEADER_MIN_LEN: usize = 163;
/// The longest encoded classical header (a 64-byte label).
pub const SESPHR_HEADER_MAX_LEN: usize = 226;
/// The longest encoded hybrid (post-quantum) header: its secret split among
/// `SESPHR_MAX_PQ_NODES` threshold nodes (one SRS: 2,536 bytes at most; each
/// further node 1,172 more). Size header buffers with this when hybrid
/// portions may be read.
pub const SESPHR_HYBRID_HEADER_MAX_LEN: usize = 20116;
/// Most threshold nodes a hybrid header's post-quantum secret is split
/// over.
pub const SESPHR_MAX_PQ_NODES: usize = 16;
/// Length of an encoded re-encryption key.
pub const SESPHR_REKEY_LEN: usize = 165;
/// Length of a re-capsule without / with a proof of re-encryption.
pub const SESPHR_RECAPSULE_LEN: usize = 166;
/// Length of a re-capsule with a proof of re-encryption.
pub const SESPHR_RECAPSULE_WITH_PROOF_LEN: usize = 230;
/// Length of a re-capsule share (a threshold node's answer) without a proof.
pub const SESPHR_RECAPSULE_SHARE_LEN: usize = 167;
/// Length of a re-capsule share with a proof of re-encryption.
pub const SESPHR_RECAPSULE_SHARE_WITH_PROOF_LEN: usize = 231;
/// Longest portion label, in bytes.
pub const SESPHR_LABEL_MAX_LEN: usize = 64;
/// Longest identity, in bytes.
pub const SESPHR_IDENTITY_MAX_LEN: usize = 255;

// Every C constant is the Rust one: a change on either side fails the build.
const _: () = {
    assert!(SESPHR_RECORD_ID_LEN == RecordId::LEN);
    assert!(SESPHR_HEADER_PREFIX_LEN == PortionHeader::PREFIX_LEN);
    assert!(SESPHR_HEADER_MIN_LEN == PortionHeader::MIN_LEN);
    assert!(SESPHR_HEADER_MAX_LEN == PortionHeader::CLASSICAL_MAX_LEN);
    assert!(SESPHR_HYBRID_HEADER_MAX_LEN == PortionHeader::MAX_LEN);
    assert!(SESPHR_MAX_PQ_NODES == sesphr::MAX_PQ_NODES as usize);
    assert!(SESPHR_REKEY_LEN == sesphr::ReKey::LEN);
    assert!(SESPHR_RECAPSULE_LEN == ReCapsule::LEN);
    assert!(SESPHR_RECAPSULE_WITH_PROOF_LEN == ReCapsule::LEN_WITH_PROOF);
    assert!(SESPHR_RECAPSULE_SHARE_LEN == ReCapsule::SHARE_LEN);
    assert!(SESPHR_RECAPSULE_SHARE_WITH_PROOF_LEN == ReCapsule::SHARE_LEN_WITH_PROOF);
    assert!(SESPHR_LABEL_MAX_LEN == sesphr::PortionLabel::MAX_LEN);
    assert!(SESPHR_IDENTITY_MAX_LEN == sesphr::Identity::MAX_LEN);
};

/// The patient's secret key for the portion a header belongs to.
fn portion_secret_for(keys: &PatientKeys, header: &PortionHeader) -> PortionSecretKey {
    let ctx = header.context();
    keys.portion_secret(ctx.label(), ctx.epoch())
}

/// Seals `plaintext` as a portion of record `record_id` (16 bytes) created at
/// `created_at` (seconds since the Unix epoch), under the encoded portion
/// public key. The sealed portion (header then body) goes into a new buffer.
/// A hybrid portion key (`"SPHK"`,
/// `sesphr_patient_keys_hybrid_portion_public_key`) seals a hybrid
/// (post-quantum) header; a classical one (`"SPPK"`) a classical header.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_seal(
    portion_public_key: *const u8,
    portion_public_key_len: usize,
    record_id_bytes: *const u8,
    record_id_len: usize,
    created_at: u64,
    plaintext: *const u8,
    plaintext_len: usize,
    out_sealed: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let o = out("out_sealed", out_sealed)?;
        let plaintext = bytes("plaintext", plaintext, plaintext_len)?;
        let (key, rid) = seal_target(
            (portion_public_key, portion_public_key_len),
            (record_id_bytes, record_id_len),
        )?;
        let sealed = SealedPortion::seal(&key, rid, created_at, plaintext)?;
        put_sealed_buffer(o, sealed.to_bytes());
        Ok(())
    })
}

/// The portion public key (classical `"SPPK"` or hybrid `"SPHK"`, told
/// apart by its magic) and the record id a seal names, each read (NULL
/// checked) before either is decoded.
fn seal_target(
    (key, key_len): (*const u8, usize),
    (rid, rid_len): (*const u8, usize),
) -> Result<(AnyPortionKey, RecordId), sesphr_result> {
    let (key, rid) = (
        bytes("portion_public_key", key, key_len)?,
        bytes("record_id_bytes", rid, rid_len)?,
    );
    Ok((AnyPortionKey::from_bytes(key)?, RecordId::from_slice(rid)?))
}

/// The length of the header that starts `prefix`, which must hold at least
/// `SESPHR_HEADER_PREFIX_LEN` (68) bytes of a sealed portion (66 are enough
/// for a classical header): how much to read from a stream before
/// `sesphr_opener_new_*` or `sesphr_srs_reencrypt`.
///
/// Errors: `INVALID_LENGTH` for a prefix too short; `BAD_MAGIC`,
/// `UNSUPPORTED_VERSION`, `INVALID_LABEL`; `INVALID_THRESHOLD` for a hybrid
/// header's impossible split.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_header_len(
    prefix: *const u8,
    prefix_len: usize,
    out_len: *mut usize,
) -> sesphr_result {
    run(|| {
        let o = out("out_len", out_len)?;
        *o = PortionHeader::len_from_prefix(bytes("prefix", prefix, prefix_len)?)?;
        Ok(())
    })
}

/// What a header (or a sealed portion, which starts with one) says about
/// its record, after its capsule proof verified: the record id
/// (`SESPHR_RECORD_ID_LEN` bytes into `out_record_id`), the key epoch, the
/// created-at time, and into new buffers the label (UTF-8, not
/// NUL-terminated) and the encoded portion public key. Outputs are written
/// only on success.
///
/// Errors: decoding errors; `INVALID_CAPSULE` if the proof does not verify
/// (the values would be claims no one vouches for); `BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_header_info(
    header: *const u8,
    header_len: usize,
    out_record_id: *mut u8,
    out_record_id_len: usize,
    out_epoch: *mut u32,
    out_created_at: *mut u64,
    out_label: *mut *mut sesphr_buffer,
    out_portion_public_key: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let b = bytes("header", header, header_len)?;
        let (epoch, created_at, label, ppk) = (
            out("out_epoch", out_epoch)?,
            out("out_created_at", out_created_at)?,
            out("out_label", out_label)?,
            out("out_portion_public_key", out_portion_public_key)?,
        );
        let rid = super::fixed_out(
            "out_record_id",
            out_record_id,
            out_record_id_len,
            SESPHR_RECORD_ID_LEN,
        )?;
        let len = PortionHeader::len_from_prefix(b)?;
        let h = PortionHeader::from_bytes(b.get(..len).ok_or(sesphr_result::InvalidLength)?)?;
        h.verify()?;
        let ctx = h.context();
        rid.copy_from_slice(ctx.record_id().as_bytes());
        *epoch = ctx.epoch();
        *created_at = ctx.created_at();
        put_buffer(label, ctx.label().as_bytes().to_vec());
        put_buffer(ppk, ctx.portion_public_key().to_bytes());
        Ok(())
    })
}

/// Copies the (validated) header of a sealed portion into a new buffer: what
/// to send to the SRS for re-encryption.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_portion_header(
    sealed: *const u8,
    sealed_len: usize,
    out_header: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let o = out("out_header", out_header)?;
        let s = SealedPortion::from_bytes(bytes("sealed", sealed, sealed_len)?)?;
        put_buffer(o, s.header().to_bytes());
        Ok(())
    })
}

/// Opens a sealed portion with the patient's keys (the portion key is derived
/// from the label and epoch in its header). The plaintext goes into a new
/// buffer.
///
/// Errors: decoding errors; `KEY_MISMATCH` (another patient's portion);
/// `INVALID_CAPSULE` (altered header); `DECRYPTION_FAILED` (altered body).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_open_as_owner(
    keys: *const sesphr_patient_keys,
    sealed: *const u8,
    sealed_len: usize,
    out_plaintext: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        let o = out("out_plaintext", out_plaintext)?;
        let s = SealedPortion::from_bytes(bytes("sealed", sealed, sealed_len)?)?;
        let pt = s.open_as_owner(&portion_secret_for(k, s.header()))?;
        put_buffer(o, pt);
        Ok(())
    })
}

/// Opens a sealed portion as a granted user, with the re-capsule the SRS
/// returned for its header. The plaintext goes into a new buffer.
///
/// Errors: decoding errors; `KEY_MISMATCH` (re-capsule of another header or
/// grant); `INVALID_CAPSULE`; `INVALID_RE_ENCRYPTION_PROOF`;
/// `DECRYPTION_FAILED` (another user's re-capsule, altered body).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_open_as_delegatee(
    keypair: *const sesphr_keypair,
    sealed: *const u8,
    sealed_len: usize,
    recapsule: *const u8,
    recapsule_len: usize,
    out_plaintext: *mut *mut sesphr_buffer,
) -> sesphr_result {
    sesphr_open_as_delegatee_checked(
        keypair,
        sealed,
        sealed_len,
        recapsule,
        recapsule_len,
        core::ptr::null(),
        0,
        0,
        out_plaintext,
    )
}

/// As `sesphr_open_as_delegatee`, with the user's own expectations: if
/// `expected_portion_public_key` is not NULL (an encoded portion public key,
/// e.g. from the patient's grant notice), the header must be for exactly
/// that patient portion, label and epoch (`KEY_MISMATCH` otherwise) — the
/// header's own claim is not trusted; if `require_proof` is non-zero, a
/// re-capsule without a proof of correct re-encryption is refused
/// (`INVALID_RE_ENCRYPTION_PROOF`).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_open_as_delegatee_checked(
    keypair: *const sesphr_keypair,
    sealed: *const u8,
    sealed_len: usize,
    recapsule: *const u8,
    recapsule_len: usize,
    expected_portion_public_key: *const u8,
    expected_portion_public_key_len: usize,
    require_proof: c_uint,
    out_plaintext: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((sealed, sealed_len), (recapsule, recapsule_len), (expected_portion_public_key, expected_portion_public_key_len); keypair, out_plaintext);
        let kp = handle_ref("keypair", keypair)?;
        let o = out("out_plaintext", out_plaintext)?;
        let (sealed, recapsule) = (
            bytes("sealed", sealed, sealed_len)?,
            bytes("recapsule", recapsule, recapsule_len)?,
        );
        let expected = if expected_portion_public_key.is_null() {
            None
        } else {
            Some(PortionPublicKey::from_bytes(bytes(
                "expected_portion_public_key",
                expected_portion_public_key,
                expected_portion_public_key_len,
            )?)?)
        };
        let s = SealedPortion::from_bytes(sealed)?;
        let rc = ReCapsule::from_bytes(recapsule)?;
        let ctx = s.header().context();
        let key = match &expected {
            Some(k) if k.label() != ctx.label() || k.epoch() != ctx.epoch() => {
                return Err(sesphr_result::KeyMismatch);
            }
            Some(k) => *k.key(),
            None => *ctx.portion_key(),
        };
        let mut opener = DelegateeOpener::new(kp, rc.ephemeral(), &key);
        if require_proof != 0 {
            opener = opener.require_proof();
        }
        put_buffer(o, s.open_as_delegatee_with(&opener, &rc)?);
        Ok(())
    })
}

/// Streaming sealer state.
pub(crate) struct Sealer {
    writer: Option<PortionWriter<Vec<u8>>>,
}

/// Seals a portion of any size in pieces (medical imaging). One thread
/// at a time.
pub struct sesphr_sealer {
    _private: [u8; 0],
}

impl Handle for sesphr_sealer {
    type Rust = Sealer;
}

/// Starts sealing a portion (see `sesphr_seal` for the arguments).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sealer_new(
    portion_public_key: *const u8,
    portion_public_key_len: usize,
    record_id_bytes: *const u8,
    record_id_len: usize,
    created_at: u64,
    out_sealer: *mut *mut sesphr_sealer,
) -> sesphr_result {
    run(|| {
        let o = out("out_sealer", out_sealer)?;
        let (key, rid) = seal_target(
            (portion_public_key, portion_public_key_len),
            (record_id_bytes, record_id_len),
        )?;
        let writer = PortionWriter::new(&key, rid, created_at, Vec::new())?;
        *o = into_handle::<sesphr_sealer>(Sealer {
            writer: Some(writer),
        });
        Ok(())
    })
}

/// Feeds plaintext; the sealed bytes ready so far (the header first, then
/// whole 64 KiB chunks) go into a new buffer, possibly empty. Append them to
/// the stored portion in order.
///
/// Errors: `INVALID_STATE` after `sesphr_sealer_finish`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sealer_update(
    sealer: *mut sesphr_sealer,
    plaintext: *const u8,
    plaintext_len: usize,
    out_sealed: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_mut("sealer", sealer)?;
        let o = out("out_sealed", out_sealed)?;
        let data = bytes("plaintext", plaintext, plaintext_len)?;
        let w = s.writer.as_mut().ok_or(sesphr_result::InvalidState)?;
        std::io::Write::write_all(w, data).map_err(Error::from)?;
        put_sealed_buffer(o, core::mem::take(w.get_mut()));
        Ok(())
    })
}

/// Ends the portion: the last sealed bytes go into a new buffer. The sealer
/// can then only be freed.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sealer_finish(
    sealer: *mut sesphr_sealer,
    out_sealed: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_mut("sealer", sealer)?;
        let o = out("out_sealed", out_sealed)?;
        let w = s.writer.take().ok_or(sesphr_result::InvalidState)?;
        put_sealed_buffer(o, w.finish()?);
        Ok(())
    })
}

/// Frees a sealer. NULL does nothing. A sealer freed before
/// `sesphr_sealer_finish` leaves a truncated portion, which will not open.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sealer_free(sealer: *mut sesphr_sealer) {
    free_handle(sealer);
}

/// Streaming opener state.
pub(crate) struct Opener {
    chunks: PortionOpener,
    finished: bool,
    /// Plaintext on its way to a caller's buffer (`_into` calls), reused
    /// from call to call and zeroized, whole capacity, when the opener is
    /// freed.
    scratch: Zeroizing<Vec<u8>>,
}

/// Opens a portion of any size in pieces. Plaintext is released a chunk
/// at a time, each only after its tag verified; the portion is complete
/// and authentic only when `sesphr_opener_finish` returns OK. One thread
/// at a time.
pub struct sesphr_opener {
    _private: [u8; 0],
}

impl Handle for sesphr_opener {
    type Rust = Opener;
}

pub(crate) fn new_opener(
    out_opener: *mut *mut sesphr_opener,
    opener: PortionOpener,
) -> Result<(), sesphr_result> {
    let o = out("out_opener", out_opener)?;
    *o = into_handle::<sesphr_opener>(Opener {
        chunks: opener,
        finished: false,
        scratch: Zeroizing::new(Vec::new()),
    });
    Ok(())
}

/// Starts opening a portion as its patient, given its encoded header
/// (`sesphr_header_len` tells how long it is). Then feed the body.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_new_owner(
    keys: *const sesphr_patient_keys,
    header: *const u8,
    header_len: usize,
    out_opener: *mut *mut sesphr_opener,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        out("out_opener", out_opener)?;
        let h = PortionHeader::from_bytes(bytes("header", header, header_len)?)?;
        new_opener(
            out_opener,
            PortionOpener::for_owner(&h, &portion_secret_for(k, &h))?,
        )
    })
}

/// Starts opening a portion as a granted user, given its encoded header and
/// the re-capsule the SRS returned for it. Then feed the body.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_new_delegatee(
    keypair: *const sesphr_keypair,
    header: *const u8,
    header_len: usize,
    recapsule: *const u8,
    recapsule_len: usize,
    out_opener: *mut *mut sesphr_opener,
) -> sesphr_result {
    run(|| {
        let kp = handle_ref("keypair", keypair)?;
        out("out_opener", out_opener)?;
        let (header, recapsule) = (
            bytes("header", header, header_len)?,
            bytes("recapsule", recapsule, recapsule_len)?,
        );
        let h = PortionHeader::from_bytes(header)?;
        let rc = ReCapsule::from_bytes(recapsule)?;
        let grant = DelegateeOpener::for_recapsule(kp, &h, &rc);
        new_opener(out_opener, PortionOpener::for_delegatee(&h, &grant, &rc)?)
    })
}

/// One step of an opener: `step` appends verified plaintext, which goes to
/// C in a new buffer. Plaintext of chunks opened before a failure in the same
/// call is discarded, zeroized. `finishing` marks the opener finished on
/// success; a finished opener refuses every later step.
fn opener_step(
    opener: *mut sesphr_opener,
    out_plaintext: *mut *mut sesphr_buffer,
    finishing: bool,
    step: impl FnOnce(&mut PortionOpener, &mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), sesphr_result> {
    let op = handle_mut("opener", opener)?;
    let o = out("out_plaintext", out_plaintext)?;
    if op.finished {
        return Err(sesphr_result::InvalidState);
    }
    let mut pt = Zeroizing::new(Vec::new());
    step(&mut op.chunks, &mut pt)?;
    op.finished = finishing;
    put_buffer(o, core::mem::take(&mut *pt));
    Ok(())
}

/// Feeds body bytes (any amount); the plaintext of every chunk that verified
/// goes into a new buffer, possibly empty.
///
/// Errors: `DECRYPTION_FAILED` (the opener then fails every later call);
/// `INVALID_STATE` after finish.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_update(
    opener: *mut sesphr_opener,
    sealed: *const u8,
    sealed_len: usize,
    out_plaintext: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let data = bytes("sealed", sealed, sealed_len)?;
        opener_step(opener, out_plaintext, false, |chunks, pt| {
            chunks.push(data, pt)
        })
    })
}

/// Ends the body: the last chunk's plaintext goes into a new buffer. Only an
/// OK here means the portion was complete (not truncated) and authentic.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_finish(
    opener: *mut sesphr_opener,
    out_plaintext: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| opener_step(opener, out_plaintext, true, PortionOpener::finish))
}

/// Frees an opener. NULL does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_free(opener: *mut sesphr_opener) {
    free_handle(opener);
}

/// The most bytes one `_update_into` call with `input_len` bytes of input
/// (or one `_finish_into` call, with 0) writes, for a sealer or an opener:
/// the caller's buffer must have at least this room, or the call is
/// refused with `BUFFER_TOO_SMALL` before it consumes anything. It covers
/// a header, the chunk a stream holds back, and a tag per chunk; saturates
/// at `SIZE_MAX`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_stream_output_bound(input_len: usize) -> usize {
    const CHUNK: usize = 1 << 16;
    let chunks = input_len / CHUNK + 3;
    input_len
        .saturating_add(2 * CHUNK)
        .saturating_add(16usize.saturating_mul(chunks))
        .saturating_add(SESPHR_HYBRID_HEADER_MAX_LEN)
}

/// Copies `produced` into the caller's buffer and writes its length.
fn copy_out(out: &mut [u8], produced: &[u8], out_len: &mut usize) -> Result<(), sesphr_result> {
    out.get_mut(..produced.len())
        .ok_or(sesphr_result::BufferTooSmall)?
        .copy_from_slice(produced);
    *out_len = produced.len();
    Ok(())
}

/// The caller's output buffer of `cap` bytes for an input of `input_len`
/// bytes, checked against [`sesphr_stream_output_bound`] before anything
/// is consumed.
fn stream_out<'a>(
    name: &'static str,
    out: *mut u8,
    cap: usize,
    input_len: usize,
) -> Result<&'a mut [u8], sesphr_result> {
    super::caller_buffer(name, out, cap, sesphr_stream_output_bound(input_len))
}

/// As `sesphr_sealer_update`, writing the sealed bytes into the caller's
/// buffer `out` (`out_cap` bytes, at least
/// `sesphr_stream_output_bound(plaintext_len)`) and their number into
/// `*out_len`: no library buffer to free, no allocation per call.
///
/// Errors: `BUFFER_TOO_SMALL` (nothing consumed); `INVALID_STATE` after
/// finish.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sealer_update_into(
    sealer: *mut sesphr_sealer,
    plaintext: *const u8,
    plaintext_len: usize,
    out_sealed: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> sesphr_result {
    run(|| {
        let s = handle_mut("sealer", sealer)?;
        let n = out("out_len", out_len)?;
        let data = bytes("plaintext", plaintext, plaintext_len)?;
        let dst = stream_out("out_sealed", out_sealed, out_cap, plaintext_len)?;
        let w = s.writer.as_mut().ok_or(sesphr_result::InvalidState)?;
        // What the writer holds (the header, before the first call) goes
        // first; the chunks are sealed straight into the caller's buffer
        // after it.
        let pending = w.get_mut().len();
        let rest = dst
            .get_mut(pending..)
            .ok_or(sesphr_result::BufferTooSmall)?;
        let sealed = w.write_into(data, rest)?;
        copy_out(dst, w.get_mut(), n)?;
        // Ciphertext only: reused as it is.
        w.get_mut().clear();
        *n = pending + sealed;
        Ok(())
    })
}

/// As `sesphr_sealer_finish`, into the caller's buffer (at least
/// `sesphr_stream_output_bound(0)` bytes).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sealer_finish_into(
    sealer: *mut sesphr_sealer,
    out_sealed: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> sesphr_result {
    run(|| {
        let s = handle_mut("sealer", sealer)?;
        let n = out("out_len", out_len)?;
        let dst = stream_out("out_sealed", out_sealed, out_cap, 0)?;
        let w = s.writer.take().ok_or(sesphr_result::InvalidState)?;
        copy_out(dst, &w.finish()?, n)
    })
}

/// One step of an opener into the caller's buffer (see `opener_step`).
fn opener_step_into(
    opener: *mut sesphr_opener,
    input_len: usize,
    out_plaintext: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    finishing: bool,
    step: impl FnOnce(&mut PortionOpener, &mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), sesphr_result> {
    let op = handle_mut("opener", opener)?;
    let n = out("out_len", out_len)?;
    let dst = stream_out("out_plaintext", out_plaintext, out_cap, input_len)?;
    if op.finished {
        return Err(sesphr_result::InvalidState);
    }
    op.scratch.clear();
    let r = step(&mut op.chunks, &mut op.scratch);
    let r = r
        .map_err(sesphr_result::from)
        .and_then(|()| copy_out(dst, &op.scratch, n));
    if r.is_err() {
        // Plaintext of chunks opened before a failure is not kept.
        zeroize::Zeroize::zeroize(&mut *op.scratch);
    }
    op.scratch.clear();
    r?;
    op.finished = finishing;
    Ok(())
}

/// As `sesphr_opener_update`, writing the verified plaintext into the
/// caller's buffer `out` (`out_cap` bytes, at least
/// `sesphr_stream_output_bound(sealed_len)`) and its length into
/// `*out_len`. Chunks are opened straight into `out`; the library keeps no
/// copy beyond the opener's own working buffer of sealed bytes.
///
/// Errors: `BUFFER_TOO_SMALL` (nothing consumed); `DECRYPTION_FAILED` (the
/// opener then fails every later call; what this call wrote is wiped);
/// `INVALID_STATE` after finish.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_update_into(
    opener: *mut sesphr_opener,
    sealed: *const u8,
    sealed_len: usize,
    out_plaintext: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> sesphr_result {
    run(|| {
        let data = bytes("sealed", sealed, sealed_len)?;
        let op = handle_mut("opener", opener)?;
        let n = out("out_len", out_len)?;
        let dst = stream_out("out_plaintext", out_plaintext, out_cap, sealed_len)?;
        if op.finished {
            return Err(sesphr_result::InvalidState);
        }
        // Straight into the caller's buffer (wiped there on a failure).
        *n = op.chunks.push_into(data, dst)?;
        Ok(())
    })
}

/// As `sesphr_opener_finish`, into the caller's buffer (at least
/// `sesphr_stream_output_bound(0)` bytes). Only an OK here means the
/// portion was complete and authentic.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_opener_finish_into(
    opener: *mut sesphr_opener,
    out_plaintext: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> sesphr_result {
    run(|| {
        opener_step_into(
            opener,
            0,
            out_plaintext,
            out_cap,
            out_len,
            true,
            PortionOpener::finish,
        )
    })
}
