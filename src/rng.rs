//! The OS random number generator.

use getrandom::SysRng;
use rand_core::UnwrapErr;

/// The type of [`os_rng`].
pub(crate) type OsRng = UnwrapErr<SysRng>;

/// The operating system's RNG, as used by every convenience form of a
/// randomized function.
///
/// # Panics
/// Drawing from it panics if the operating system cannot supply randomness,
/// which no caller input can cause; continuing without randomness would be
/// worse. Use the `*_with_rng` forms to supply another `CryptoRng`.
pub(crate) fn os_rng() -> OsRng {
    UnwrapErr(SysRng)
}
