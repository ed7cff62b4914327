//! Constant-time checking with valgrind memcheck (the ctgrind technique of
//! libsodium and BoringSSL): secrets are marked *undefined*, so memcheck
//! reports every branch and every memory index that depends on one. Values
//! that are public by design are marked defined again at named
//! declassification points (`public`); the list, and why each is public,
//! is in `docs/VERIFICATION.md` ("Constant time").
//!
//! The marks themselves are valgrind client requests, which need a C shim
//! over `<valgrind/memcheck.h>` and raw calls into it: they live with the C ABI
//! (`ffi/examples/ct_check.rs`), which hands this module a `Marker`
//! through `set_marker`. With the `ctgrind` feature the points call it;
//! without the feature, or before a marker is set, they do nothing.

/// A valgrind client request: mark `len` bytes at `ptr` defined (`true`,
/// public) or undefined (`false`, secret). It only changes valgrind's shadow
/// state, never the bytes.
pub type Marker = fn(ptr: *const u8, len: usize, defined: bool);

#[cfg(feature = "ctgrind")]
static MARKER: std::sync::OnceLock<Marker> = std::sync::OnceLock::new();

/// Installs the client request every mark goes through (once per process;
/// later calls are ignored). Returns whether this call installed it.
#[cfg(feature = "ctgrind")]
pub fn set_marker(marker: Marker) -> bool {
    MARKER.set(marker).is_ok()
}

/// Marks the bytes of `value` as secret (undefined to memcheck).
#[inline]
pub fn poison<T: ?Sized>(value: &mut T) {
    mark(value, false);
}

/// Marks the bytes of `value` as public (defined to memcheck).
#[inline]
pub fn unpoison<T: ?Sized>(value: &mut T) {
    mark(value, true);
}

#[inline]
fn mark<T: ?Sized>(value: &mut T, defined: bool) {
    #[cfg(feature = "ctgrind")]
    if let Some(m) = MARKER.get() {
        // Taking the address and the size is safe; only the marker (valgrind)
        // looks at them, and it never touches the bytes.
        m(
            core::ptr::from_mut(value).cast::<u8>().cast_const(),
            core::mem::size_of_val(value),
            defined,
        );
    }
    #[cfg(not(feature = "ctgrind"))]
    let _ = (value, defined);
}

/// A declassification point: `value`, derived from secrets, is public by
/// design (`why` names the point in `docs/VERIFICATION.md`). Returns it marked
/// defined. Taking and returning by value through `&mut` makes the compiler
/// reload it after the request, so the mark reaches the copy that is used.
#[cfg(feature = "ctgrind")]
#[inline]
pub(crate) fn public<T>(mut value: T, why: &'static str) -> T {
    let _ = why;
    unpoison(&mut value);
    value
}

/// Without the `ctgrind` feature, the identity: no borrow, no copy, so the
/// optimizer sees the code as if the point were not there (a `&mut` to a
/// no-op still cost 9 % of a proved re-encryption).
#[cfg(not(feature = "ctgrind"))]
#[inline(always)]
pub(crate) fn public<T>(value: T, _why: &'static str) -> T {
    value
}

/// A declassification point for bytes written in place (a ciphertext).
#[inline(always)]
pub(crate) fn public_bytes(bytes: &mut [u8], why: &'static str) {
    let _ = why;
    #[cfg(feature = "ctgrind")]
    unpoison(bytes);
    #[cfg(not(feature = "ctgrind"))]
    let _ = bytes;
}
