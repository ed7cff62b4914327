//! The panic boundary: every exported function runs inside one of these, so a
//! panic becomes an error code (or NULL, or 0) instead of unwinding into C,
//! which would abort the host.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::result::sesphr_result;

/// Runs `f`; its error, or a caught panic, becomes the result code.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), sesphr_result>) -> sesphr_result {
    // Unwind safety: on a panic nothing is written to the caller's outputs
    // (they are written last, after everything that can fail), and the SRS
    // keeps its state consistent under a poisoned lock (see `srs`).
    super::result::clear_detail();
    let r = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => sesphr_result::Ok,
        Ok(Err(e)) => e,
        Err(_) => sesphr_result::Panic,
    };
    if r != sesphr_result::Ok && !super::result::has_detail() {
        super::result::set_detail(super::result::message(r));
    }
    r
}

/// As [`boundary`], for functions that return a pointer: NULL on a panic.
pub(crate) fn boundary_ptr<T>(f: impl FnOnce() -> *const T) -> *const T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(core::ptr::null())
}

/// As [`boundary`], for functions that return a number: 0 on a panic.
pub(crate) fn boundary_value<T: Default>(f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        #[allow(clippy::panic)]
        let r = boundary(|| panic!("boom"));
        let p: *const u8 = boundary_ptr(|| {
            #[allow(clippy::panic)]
            {
                panic!("boom")
            }
        });
        let v: usize = boundary_value(|| {
            #[allow(clippy::panic)]
            {
                panic!("boom")
            }
        });
        std::panic::set_hook(prev);
        assert_eq!(r, sesphr_result::Panic);
        assert!(p.is_null());
        assert_eq!(v, 0);
        assert_eq!(
            boundary(|| Err(sesphr_result::KeyMismatch)),
            sesphr_result::KeyMismatch
        );
        assert_eq!(boundary(|| Ok(())), sesphr_result::Ok);
    }
}
