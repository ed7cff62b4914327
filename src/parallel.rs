//! When the library may use threads: the `parallel` feature seals and opens
//! portions of two chunks or more on a thread pool (rayon's global pool).
//!
//! Two things a C host needs: control over those threads
//! ([`set_max_threads`]), and safety across `fork()` — a child process has
//! none of its parent's pool threads, so handing the pool work there would
//! wait forever. The pool is used only by the process that first used it;
//! a forked child works on its calling thread.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);
#[cfg_attr(not(feature = "parallel"), allow(dead_code))]
static OWNER: OnceLock<u32> = OnceLock::new();
static BUILT_WITH: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads sealing and opening may use: 0 (the default) for
/// one per core, 1 for none at all (everything on the calling thread), `n`
/// for a pool of `n`. Takes effect only before the first portion of two
/// chunks or more is sealed or opened (the pool is built then, once; a host
/// that built rayon's global pool itself keeps its own); 1 takes effect at
/// any time.
pub fn set_max_threads(n: usize) {
    MAX_THREADS.store(n, Ordering::SeqCst);
}

/// The value last given to [`set_max_threads`] (0 if never called).
#[must_use]
pub fn max_threads() -> usize {
    MAX_THREADS.load(Ordering::SeqCst)
}

/// The [`set_max_threads`] value in force when the thread pool was set up
/// (by the first seal or open of two chunks or more with more than one
/// thread allowed), or `None` before. From then on only 1 (no threads) and
/// this value (the pool again) take effect.
#[must_use]
pub fn thread_pool_built_with() -> Option<usize> {
    OWNER.get().map(|_| BUILT_WITH.load(Ordering::SeqCst))
}

/// Whether this call may hand work to the pool.
#[cfg(feature = "parallel")]
pub(crate) fn enabled() -> bool {
    let max = MAX_THREADS.load(Ordering::SeqCst);
    if max == 1 {
        return false;
    }
    let me = std::process::id();
    let owner = *OWNER.get_or_init(|| {
        BUILT_WITH.store(max, Ordering::SeqCst);
        if max > 1 {
            // Fails only if the pool exists already; then it stays as it is.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(max)
                .build_global();
        }
        me
    });
    owner == me && rayon::current_num_threads() > 1
}
