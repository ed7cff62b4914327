//! No freed heap block holds plaintext: a scanning allocator checks every
//! block the library frees while it seals and opens (from Rust and through
//! the C opener fed in pieces) for a marker that fills the plaintext.
//!
//! A unit-test module of the C ABI crate (the only crate with `unsafe`):
//! the allocator implements `GlobalAlloc`, and this crate's test binary is
//! the one place that calls the C ABI from Rust.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::*;
use sesphr::{Identity, PatientKeys, PortionLabel, PortionPublicKey, RecordId, SealedPortion};
use zeroize::Zeroizing;

const MARK: &[u8; 16] = b"~plaintext-mark~";

static ARMED: AtomicBool = AtomicBool::new(false);
static HITS: AtomicUsize = AtomicUsize::new(0);
static SCANNED: AtomicUsize = AtomicUsize::new(0);
/// Of the hits, how many were freed on another thread than the test's (a
/// worker of the thread pool, or another test), and the last hit's size:
/// what a failure message names.
static HITS_ELSEWHERE: AtomicUsize = AtomicUsize::new(0);
static LAST_HIT_SIZE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the thread running the scanned closure (const-initialized: no
    /// allocation when the allocator reads it).
    static SCANNING_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
/// One test at a time: the scan sees every thread's frees, so another test
/// freeing its own marked buffers would count.
static SERIAL: Mutex<()> = Mutex::new(());

struct Scanning;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// scan only reads the block being freed, before it is freed.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) && layout.size() >= MARK.len() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until
            // it is freed below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            SCANNED.fetch_add(1, Ordering::Relaxed);
            if block.windows(MARK.len()).any(|w| w == MARK) {
                HITS.fetch_add(1, Ordering::Relaxed);
                LAST_HIT_SIZE.store(layout.size(), Ordering::Relaxed);
                if !SCANNING_THREAD.with(std::cell::Cell::get) {
                    HITS_ELSEWHERE.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// What a scan found: how many freed blocks held the mark, how many of
/// those another thread freed, and the last one's size.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    hits: usize,
    elsewhere: usize,
    last_size: usize,
}

/// Runs `f` with the scan armed; returns what it found (compare `.hits`
/// with 0; the rest is for the failure message).
fn freed_with_plaintext(f: impl FnOnce()) -> Found {
    HITS.store(0, Ordering::SeqCst);
    HITS_ELSEWHERE.store(0, Ordering::SeqCst);
    LAST_HIT_SIZE.store(0, Ordering::SeqCst);
    SCANNED.store(0, Ordering::SeqCst);
    SCANNING_THREAD.with(|t| t.set(true));
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    SCANNING_THREAD.with(|t| t.set(false));
    assert!(SCANNED.load(Ordering::SeqCst) > 0, "the scan saw no block");
    Found {
        hits: HITS.load(Ordering::SeqCst),
        elsewhere: HITS_ELSEWHERE.load(Ordering::SeqCst),
        last_size: LAST_HIT_SIZE.load(Ordering::SeqCst),
    }
}

/// Marked plaintext of `len` bytes. The test's own copies are wiped when
/// dropped: the allocator hands freed memory to other threads, whose blocks
/// (uninitialized capacity included) the scan reads when they free them, so
/// a stale mark left by the test would be counted against the library.
fn marked(len: usize) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(MARK.iter().copied().cycle().take(len).collect())
}

/// The bytes of a live library buffer.
fn buffer_slice<'a>(b: *const sesphr_buffer) -> &'a [u8] {
    // SAFETY: a live buffer from the library: data is valid for len bytes
    // until the buffer is freed, which the callers do after using the slice.
    unsafe { std::slice::from_raw_parts(sesphr_buffer_data(b), sesphr_buffer_len(b)) }
}

#[test]
fn opening_and_sealing_free_no_block_holding_plaintext() {
    let _serial = SERIAL.lock().unwrap();
    let patient = PatientKeys::generate(Identity::new("scan").unwrap());
    let label = PortionLabel::new("imaging").unwrap();
    let secret = patient.portion_secret(&label, 0);
    for len in [100usize, 70_000, 1 << 20, (1 << 20) + 12_345] {
        let pt = marked(len);
        let mut sealed = None;
        let hits = freed_with_plaintext(|| {
            sealed =
                Some(SealedPortion::seal(secret.public(), RecordId::random(), 1, &pt).unwrap());
        });
        assert_eq!(hits.hits, 0, "seal of {len} bytes: {hits:?}");
        let sealed = sealed.unwrap();
        let mut opened = None;
        let hits = freed_with_plaintext(|| {
            opened = Some(sealed.open_as_owner(&secret).unwrap());
        });
        assert_eq!(hits.hits, 0, "open of {len} bytes: {hits:?}");
        let opened = Zeroizing::new(opened.unwrap());
        assert!(*opened == *pt, "open of {len} bytes: wrong plaintext");
    }
}

#[test]
fn the_c_opener_fed_in_pieces_frees_no_block_holding_plaintext() {
    let _serial = SERIAL.lock().unwrap();
    let id = b"scan-c";
    let mut keys: *mut sesphr_patient_keys = std::ptr::null_mut();
    assert_eq!(
        sesphr_patient_keys_generate(id.as_ptr(), id.len(), &mut keys),
        sesphr_result::Ok
    );
    let mut ppk: *mut sesphr_buffer = std::ptr::null_mut();
    let label = b"imaging";
    assert_eq!(
        sesphr_patient_keys_portion_public_key(keys, label.as_ptr(), label.len(), 0, &mut ppk),
        sesphr_result::Ok
    );
    let key = PortionPublicKey::from_bytes(buffer_slice(ppk)).unwrap();
    let pt = marked((1 << 20) + 777);
    let sealed = SealedPortion::seal(&key, RecordId::random(), 1, &pt).unwrap();
    let header = sealed.header().to_bytes();
    for piece in [1usize << 20, 100_000, 65_552, 4_096] {
        // Room for all of it up front: the test itself must free no copy.
        let mut got = Zeroizing::new(Vec::with_capacity(pt.len()));
        let hits = freed_with_plaintext(|| {
            let mut op: *mut sesphr_opener = std::ptr::null_mut();
            assert_eq!(
                sesphr_opener_new_owner(keys, header.as_ptr(), header.len(), &mut op),
                sesphr_result::Ok
            );
            for part in sealed.body().chunks(piece) {
                let mut out: *mut sesphr_buffer = std::ptr::null_mut();
                assert_eq!(
                    sesphr_opener_update(op, part.as_ptr(), part.len(), &mut out),
                    sesphr_result::Ok
                );
                got.extend_from_slice(buffer_slice(out));
                sesphr_buffer_free(out);
            }
            let mut out: *mut sesphr_buffer = std::ptr::null_mut();
            assert_eq!(sesphr_opener_finish(op, &mut out), sesphr_result::Ok);
            got.extend_from_slice(buffer_slice(out));
            sesphr_buffer_free(out);
            sesphr_opener_free(op);
        });
        assert_eq!(got.len(), pt.len());
        assert!(*got == *pt);
        assert_eq!(hits.hits, 0, "opener fed {piece}-byte pieces: {hits:?}");
    }
    sesphr_buffer_free(ppk);
    sesphr_patient_keys_free(keys);
}
