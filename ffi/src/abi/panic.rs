//! The panic boundary: every exported function runs inside one of these, so a
//! panic becomes an error code (or NULL, or 0) instead of unwinding into C,
//! which would abort the host.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, for functions that return a pointer: NULL on a panic (the
/// result-code form, `boundary`, is in `result.rs`).
pub(crate) fn boundary_ptr<T>(f: impl FnOnce() -> *const T) -> *const T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(core::ptr::null())
}

/// Runs `f`, for functions that return a number: 0 on a panic.
pub(crate) fn boundary_value<T: Default>(f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_null_or_zero() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
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
        assert!(p.is_null());
        assert_eq!(v, 0);
        assert_eq!(boundary_value(|| 7_usize), 7);
    }
}
