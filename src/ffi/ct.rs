//! Constant-time checking with valgrind memcheck (the ctgrind technique of
//! libsodium and BoringSSL): secrets are marked *undefined*, so memcheck
//! reports every branch and every memory index that depends on one. Values
//! that are public by design are marked defined again at named
//! declassification points ([`public`]); the list, and why each is public,
//! is in the README ("Constant time").
//!
//! With the `ctgrind` feature the marks are valgrind client requests (a C
//! shim over `<valgrind/memcheck.h>`, built by `build.rs`); without it, and
//! outside valgrind, they do nothing.

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
    {
        let (p, n) = (
            core::ptr::from_mut(value).cast::<u8>(),
            core::mem::size_of_val(value),
        );
        // SAFETY: the pointer and size describe `value`'s own memory; the
        // requests only change valgrind's shadow state, never the bytes.
        unsafe {
            if defined {
                sys::sesphr_ctgrind_unpoison(p, n);
            } else {
                sys::sesphr_ctgrind_poison(p, n);
            }
        }
    }
    #[cfg(not(feature = "ctgrind"))]
    let _ = (value, defined);
}

/// A declassification point: `value`, derived from secrets, is public by
/// design (`why` names the point in the README's list). Returns it marked
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

/// Whether the process runs under valgrind (always `false` without the
/// `ctgrind` feature).
#[must_use]
pub fn running_on_valgrind() -> bool {
    #[cfg(feature = "ctgrind")]
    // SAFETY: a client request without arguments.
    unsafe {
        sys::sesphr_ctgrind_running() != 0
    }
    #[cfg(not(feature = "ctgrind"))]
    false
}

#[cfg(feature = "ctgrind")]
mod sys {
    unsafe extern "C" {
        pub(super) fn sesphr_ctgrind_poison(p: *const u8, n: usize);
        pub(super) fn sesphr_ctgrind_unpoison(p: *const u8, n: usize);
        pub(super) fn sesphr_ctgrind_running() -> core::ffi::c_uint;
    }
}
