//! The OS random number generator.

use getrandom::SysRng;
use rand_core::UnwrapErr;

/// The operating system's RNG (`getrandom`; in a browser, the Web Crypto
/// API), as a [`rand_core::CryptoRng`] to pass to any `*_with_rng`
/// function: `sesphr::os_rng()`.
pub type OsRng = UnwrapErr<SysRng>;

/// The operating system's RNG, as used by every convenience form of a
/// randomized function.
///
/// # Panics
/// Drawing from it panics if the operating system cannot supply randomness,
/// which no caller input can cause; continuing without randomness would be
/// worse. Use the `*_with_rng` forms to supply another `CryptoRng`.
#[must_use]
pub fn os_rng() -> OsRng {
    UnwrapErr(SysRng)
}
