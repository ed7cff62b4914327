//! Keeps the registry of an SRS on a shared store current between its own
//! commits: a thread waits for the store's change notifications (polling as
//! a backup) and catches up. Every commit catches up anyway; the follower
//! only shortens the time a registry change made by another process takes
//! to reach this one's readers. Stopped when the SRS is dropped, before the
//! store closes.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::srs::journal::Journal;
use crate::store::Listener;

/// How long the follower waits for a notification before it looks anyway.
const POLL: Duration = Duration::from_millis(500);

/// The follower's stop switch. The follower holds a strong reference to the
/// journal (and so to the store) only while it holds this lock, and checks
/// the switch before taking one; [`Follower::stop`] sets it under the lock.
/// So once `stop` returns, the follower holds nothing and never will: the
/// SRS's own reference is the last, and dropping the SRS closes the store at
/// once (a SQLite file can be reopened right after, its lock released).
pub(crate) struct Follower(Arc<Mutex<bool>>);

impl Follower {
    /// Stops the follower; waits for a catch-up in flight to finish.
    pub(crate) fn stop(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }
}

/// Starts the follower of `journal`; [`Follower::stop`] ends it.
pub(crate) fn spawn(journal: &Arc<Journal>) -> Follower {
    let switch = Arc::new(Mutex::new(false));
    let weak = Arc::downgrade(journal);
    let theirs = Arc::clone(&switch);
    // Without a thread the SRS still works: every commit catches up.
    let _ = std::thread::Builder::new()
        .name("sesphr-follower".into())
        .spawn(move || {
            let listener = {
                let stopped = theirs.lock().unwrap_or_else(PoisonError::into_inner);
                if *stopped {
                    return;
                }
                let Some(journal) = weak.upgrade() else {
                    return;
                };
                let listener = journal.store().listener().ok().flatten();
                drop(journal);
                listener
            };
            run(&weak, &theirs, listener);
        });
    Follower(switch)
}

fn run(weak: &Weak<Journal>, switch: &Mutex<bool>, mut listener: Option<Box<dyn Listener>>) {
    loop {
        match listener.as_mut() {
            // A failed wait (a lost connection) reconnects at the next one.
            Some(l) => {
                if l.wait(POLL).is_err() {
                    std::thread::sleep(POLL);
                }
            }
            None => std::thread::sleep(POLL),
        }
        let stopped = switch.lock().unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
        let Some(journal) = weak.upgrade() else {
            return;
        };
        // A failure here is reported to the next caller by its own commit.
        let _ = journal.sync();
        drop(journal);
        drop(stopped);
    }
}
