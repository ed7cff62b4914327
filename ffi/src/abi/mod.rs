//! The C ABI (`include/sesphr.h`, generated from this module by cbindgen).
//!
//! Conventions, followed by every function:
//! - Every function returns a `sesphr_result` (except the few that return a
//!   static string, a pointer into a buffer, or a length), and runs inside a
//!   panic boundary: a Rust panic becomes `SESPHR_RESULT_PANIC`, never an
//!   abort of the host.
//! - Arguments: the object first, then inputs, then outputs.
//! - Byte inputs are a pointer and a `size_t` length. NULL with length 0 is
//!   an empty input; NULL with any other length is `SESPHR_RESULT_NULL_PARAMETER`.
//!   Identities and labels are UTF-8 bytes with a length (no NUL terminator).
//! - Every other pointer argument must not be NULL
//!   (`SESPHR_RESULT_NULL_PARAMETER`), except where a comment says it is
//!   optional.
//! - Pointers are checked before anything is decoded (`check_null!` where
//!   a function decodes one input before it reads the next), and the
//!   detail of `NULL_PARAMETER` names the parameter; `tests/c_api.rs`
//!   calls every function of the header with each pointer NULL.
//! - Outputs are written only on success. Fixed-size outputs go into a caller
//!   buffer with its size (`SESPHR_RESULT_BUFFER_TOO_SMALL` if it is smaller
//!   than needed); variable-size outputs into a library-owned `sesphr_buffer`
//!   that the caller frees with `sesphr_buffer_free` (which zeroizes it,
//!   unless it holds only sealed output).
//! - Objects are opaque handles made by `_new`/`_generate`/… functions and
//!   released by their `_free` function; `_free(NULL)` does nothing.
//! - Thread safety: `sesphr_srs` may be used from many threads at once.
//!   `sesphr_keypair` and `sesphr_patient_keys` are immutable and may be
//!   shared between threads for reading. `sesphr_sealer` and `sesphr_opener`
//!   are stateful streams: one thread at a time.
//!
//! The C caller guarantees that every non-NULL pointer is valid for its
//! stated length and type, and that handles come from this library and are
//! not used after `_free`: the helpers below rely on exactly that.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

mod consent;
mod keys;
mod panic;
mod portion;
mod result;
mod srs;
mod threshold;

use core::ffi::{c_char, c_uint};

pub use consent::*;
pub use keys::*;
pub use portion::*;
pub use result::*;
pub use srs::*;
pub use threshold::*;
use zeroize::Zeroizing;

use panic::{boundary_ptr, boundary_value};
use result::boundary;
use sesphr::{Identity, PortionLabel};

/// A Rust value behind an opaque C handle, owned through a `Box`. Handle
/// structs are written out (not made by a macro) so that cbindgen sees them.
pub(crate) trait Handle {
    type Rust;
}

/// Moves `value` to the heap and returns it as a handle.
pub(crate) fn into_handle<H: Handle>(value: H::Rust) -> *mut H {
    Box::into_raw(Box::new(value)).cast()
}

/// The value behind a handle.
pub(crate) fn handle_ref<'a, H: Handle>(
    name: &'static str,
    ptr: *const H,
) -> Result<&'a H::Rust, sesphr_result> {
    // SAFETY: non-NULL handles come from `into_handle` and are live (C API
    // contract), so the pointer is a valid, aligned `Box<H::Rust>` allocation.
    unsafe { ptr.cast::<H::Rust>().as_ref() }.ok_or_else(|| null(name))
}

/// The value behind a handle, for a call that changes it.
pub(crate) fn handle_mut<'a, H: Handle>(
    name: &'static str,
    ptr: *mut H,
) -> Result<&'a mut H::Rust, sesphr_result> {
    // SAFETY: as in `handle_ref`; the caller does not use the handle from two
    // threads at once for mutating calls (documented per handle).
    unsafe { ptr.cast::<H::Rust>().as_mut() }.ok_or_else(|| null(name))
}

/// Drops the value behind a handle; NULL does nothing.
pub(crate) fn free_handle<H: Handle>(ptr: *mut H) {
    if !ptr.is_null() {
        // SAFETY: a non-NULL handle comes from `into_handle` and is freed once
        // (C API contract).
        drop(unsafe { Box::from_raw(ptr.cast::<H::Rust>()) });
    }
}

/// `NULL_PARAMETER`, with a detail that names the parameter (as the header
/// spells it).
pub(crate) fn null(name: &str) -> sesphr_result {
    result::set_detail(&format!("`{name}` is NULL"));
    sesphr_result::NullParameter
}

/// Checks every pointer argument of a function before anything is decoded,
/// so that a NULL is reported as `NULL_PARAMETER` naming it whatever else
/// is wrong with the call: `check_null!((input, input_len), ...; required,
/// ...)` refuses a byte input NULL with a length, then a required pointer
/// that is NULL. The helpers below apply the same rule again where the
/// argument is read. For the submodules of `abi` (it calls `super::null`,
/// which also holds where the module is included by path, as the fuzz
/// targets do).
macro_rules! check_null {
    ($(($input:ident, $len:expr)),* $(,)? $(; $($required:ident),+ $(,)?)?) => {
        $(
            if $input.is_null() && $len != 0 {
                return Err(super::null(stringify!($input)));
            }
        )*
        $($(
            if $required.is_null() {
                return Err(super::null(stringify!($required)));
            }
        )+)?
    };
}
pub(crate) use check_null;

/// A byte input: NULL with length 0 is empty.
pub(crate) fn bytes<'a>(
    name: &'static str,
    ptr: *const u8,
    len: usize,
) -> Result<&'a [u8], sesphr_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(name));
    }
    if len > isize::MAX as usize {
        return Err(sesphr_result::InvalidLength);
    }
    // SAFETY: non-NULL, and valid for `len` bytes (C API contract); `len`
    // fits the limit of `from_raw_parts`.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// An array input of `count` elements.
pub(crate) fn array<'a, T>(
    name: &'static str,
    ptr: *const T,
    count: usize,
) -> Result<&'a [T], sesphr_result> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(name));
    }
    if count > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
        return Err(sesphr_result::InvalidLength);
    }
    // SAFETY: non-NULL, aligned and valid for `count` elements (C API contract).
    Ok(unsafe { core::slice::from_raw_parts(ptr, count) })
}

/// An optional byte input: NULL with length 0 is absent (`None`); NULL with
/// a length is `NULL_PARAMETER` (the one NULL rule of the ABI); a non-NULL
/// pointer is present, even with length 0.
pub(crate) fn optional_bytes<'a>(
    name: &'static str,
    ptr: *const u8,
    len: usize,
) -> Result<Option<&'a [u8]>, sesphr_result> {
    if ptr.is_null() {
        if len == 0 { Ok(None) } else { Err(null(name)) }
    } else {
        bytes(name, ptr, len).map(Some)
    }
}

/// A structure the ABI may grow: its first field is `size_t struct_size`,
/// set by the caller to `sizeof` the structure as its header declares it
/// (the `SESPHR_*_INIT` macros do). `SIZES` are the sizes this library
/// accepts: the whole structure, and the size it had at each earlier field
/// boundary, so that a caller built against an older, shorter declaration
/// gets the defaults for the fields it does not have.
///
/// # Safety
/// Every bit pattern of zeroes is a valid value of `Self` (integers, raw
/// pointers, optional function pointers), and `struct_size` is its first
/// field, a `usize`.
pub(crate) unsafe trait Extensible: Sized {
    /// The sizes accepted, the whole structure's last.
    const SIZES: &'static [usize];
}

/// Reads an optional extensible structure (NULL: `None`). A `struct_size`
/// not in [`Extensible::SIZES`] (0 included: a structure zeroed without its
/// size) is `STRUCT_SIZE`; the fields beyond a smaller known size are
/// read as zero (their defaults), whatever the caller's memory holds there.
pub(crate) fn extensible<T: Extensible>(ptr: *const T) -> Result<Option<T>, sesphr_result> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, aligned and valid for at least the `usize` at its
    // start (C API contract: the caller passes a structure that begins with
    // `struct_size`).
    let size = unsafe { ptr.cast::<usize>().read() };
    if !T::SIZES.contains(&size) || size > core::mem::size_of::<T>() {
        return Err(sesphr_result::StructSize);
    }
    let mut value = core::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the caller's structure is valid for `size` bytes (it declared
    // that size), `size` is at most `size_of::<T>()`, and the two do not
    // overlap (one is on this stack).
    unsafe {
        core::ptr::copy_nonoverlapping(ptr.cast::<u8>(), value.as_mut_ptr().cast::<u8>(), size);
    }
    // SAFETY: zeroed is a valid `T` (trait contract), and the bytes copied
    // over it are a valid prefix of a `T` from the caller.
    Ok(Some(unsafe { value.assume_init() }))
}

/// An output location of `count` elements, written only on success.
pub(crate) fn array_out<'a, T>(
    name: &'static str,
    ptr: *mut T,
    count: usize,
) -> Result<&'a mut [T], sesphr_result> {
    if count == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(null(name));
    }
    if count > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
        return Err(sesphr_result::InvalidLength);
    }
    // SAFETY: non-NULL, aligned and valid for writing `count` elements (C API contract).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, count) })
}

/// An output pointer.
pub(crate) fn out<'a, T>(name: &'static str, ptr: *mut T) -> Result<&'a mut T, sesphr_result> {
    // SAFETY: non-NULL output pointers are valid and aligned (C API contract).
    unsafe { ptr.as_mut() }.ok_or_else(|| null(name))
}

/// A caller buffer of `len` bytes for a fixed-size output: its first
/// `need` bytes.
pub(crate) fn fixed_out<'a>(
    name: &'static str,
    ptr: *mut u8,
    len: usize,
    need: usize,
) -> Result<&'a mut [u8], sesphr_result> {
    let buf = caller_buffer(name, ptr, len, need)?;
    buf.get_mut(..need).ok_or(sesphr_result::BufferTooSmall)
}

/// The whole caller buffer of `len` bytes, once it is known to hold at
/// least `need`: NULL is `NULL_PARAMETER`, a shorter one `BUFFER_TOO_SMALL`.
pub(crate) fn caller_buffer<'a>(
    name: &'static str,
    ptr: *mut u8,
    len: usize,
    need: usize,
) -> Result<&'a mut [u8], sesphr_result> {
    if ptr.is_null() {
        return Err(null(name));
    }
    if len < need {
        return Err(sesphr_result::BufferTooSmall);
    }
    // SAFETY: non-NULL and valid for writing `len` bytes (C API contract).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// A NUL-terminated string input.
pub(crate) fn c_str<'a>(
    name: &'static str,
    ptr: *const c_char,
) -> Result<&'a core::ffi::CStr, sesphr_result> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL and NUL-terminated (C API contract).
    Ok(unsafe { core::ffi::CStr::from_ptr(ptr) })
}

/// The code of an argument that does not decode, with a detail that names
/// it: "`justification`: free text (1-1024 bytes, ...)".
pub(crate) fn invalid(name: &str, e: &sesphr::Error) -> sesphr_result {
    let code = sesphr_result::from(e);
    result::set_detail(&format!("`{name}`: {e}"));
    code
}

/// `r`, its error with a detail that names the argument `name`.
pub(crate) fn named<T>(name: &str, r: Result<T, sesphr::Error>) -> Result<T, sesphr_result> {
    r.map_err(|e| invalid(name, &e))
}

/// A UTF-8 text input; `code` (with a detail naming it) if it is not UTF-8.
pub(crate) fn utf8<'a>(
    name: &'static str,
    ptr: *const u8,
    len: usize,
    code: sesphr_result,
) -> Result<&'a str, sesphr_result> {
    core::str::from_utf8(bytes(name, ptr, len)?).map_err(|_| {
        result::set_detail(&format!("`{name}` is not UTF-8"));
        code
    })
}

pub(crate) fn identity(
    name: &'static str,
    ptr: *const u8,
    len: usize,
) -> Result<Identity, sesphr_result> {
    Identity::from_utf8(bytes(name, ptr, len)?).map_err(|e| invalid(name, &e))
}

pub(crate) fn label(
    name: &'static str,
    ptr: *const u8,
    len: usize,
) -> Result<PortionLabel, sesphr_result> {
    PortionLabel::from_bytes(bytes(name, ptr, len)?).map_err(|e| invalid(name, &e))
}

/// A byte buffer owned by the library (an encoded object, a ciphertext,
/// a plaintext). Read it with `sesphr_buffer_data` and `sesphr_buffer_len`;
/// free it with `sesphr_buffer_free`, which zeroizes it first unless it
/// holds only sealed output (what a sealer writes: ciphertext, public).
pub struct sesphr_buffer {
    _private: [u8; 0],
}

/// The bytes behind a `sesphr_buffer`: zeroized when freed, except sealed
/// output (ciphertext and headers, public by construction), which is not
/// worth a pass over every sealed byte.
pub(crate) enum Buffer {
    Secret(Zeroizing<Vec<u8>>),
    Public(Vec<u8>),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Secret(b) => b,
            Self::Public(b) => b,
        }
    }
}

impl Handle for sesphr_buffer {
    type Rust = Buffer;
}

/// Hands `data` to C as a new buffer in `*out` (zeroized when freed).
pub(crate) fn put_buffer(out: &mut *mut sesphr_buffer, data: Vec<u8>) {
    *out = into_handle::<sesphr_buffer>(Buffer::Secret(Zeroizing::new(data)));
}

/// Hands sealed output (ciphertext only) to C as a new buffer in `*out`.
pub(crate) fn put_sealed_buffer(out: &mut *mut sesphr_buffer, data: Vec<u8>) {
    *out = into_handle::<sesphr_buffer>(Buffer::Public(data));
}

/// The bytes of a buffer, valid until it is freed. NULL for a NULL buffer.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_buffer_data(buf: *const sesphr_buffer) -> *const u8 {
    boundary_ptr(|| handle_ref("buf", buf).map_or(core::ptr::null(), |b| b.bytes().as_ptr()))
}

/// The length of a buffer in bytes; 0 for a NULL buffer.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_buffer_len(buf: *const sesphr_buffer) -> usize {
    boundary_value(|| handle_ref("buf", buf).map_or(0, |b| b.bytes().len()))
}

/// Zeroizes (unless it holds only sealed output) and frees a buffer. NULL
/// does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_buffer_free(buf: *mut sesphr_buffer) {
    boundary_value(|| free_handle(buf));
}

/// The library version, e.g. "0.2.0": a static NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_version() -> *const c_char {
    boundary_ptr(|| VERSION.as_ptr().cast())
}

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Sets how many threads sealing and opening of large portions may use: 0
/// (the default) one per core, 1 none (all work on the calling thread), `n`
/// a pool of `n`. Call it before the first seal or open of two chunks or
/// more (64 KiB+), which builds the pool; 1 takes effect at any time.
///
/// Errors: `INVALID_STATE` (nothing changed), once the pool has been
/// built, for any value but 1 and the one it was built with (which turns
/// it back on).
///
/// Fork: a child created by `fork()` never uses its parent's pool (whose
/// threads it does not have); it seals and opens on its calling thread.
/// A pre-fork server that wants no threads at all in the parent calls this
/// with 1 before it seals or opens anything.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_set_max_threads(threads: c_uint) -> sesphr_result {
    run(|| {
        let n = usize::try_from(threads).map_err(|_| sesphr_result::InvalidArgument)?;
        if n != 1 && sesphr::thread_pool_built_with().is_some_and(|built| built != n) {
            result::set_detail(
                "the thread pool is built already: only 1 (no threads) takes effect now",
            );
            return Err(sesphr_result::InvalidState);
        }
        sesphr::set_max_threads(n);
        Ok(())
    })
}

/// Runs a C API body: `Err(code)` and panics become the returned code.
pub(crate) fn run(f: impl FnOnce() -> Result<(), sesphr_result>) -> sesphr_result {
    boundary(f)
}
