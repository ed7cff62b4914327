//! Keeps the registry of an SRS on a shared store current between its own
//! commits: a thread waits for the store's change notifications (polling as
//! a backup) and catches up. Every commit catches up anyway; the follower
//! only shortens the time a registry change made by another process takes
//! to reach this one's readers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::srs::journal::Journal;
use crate::store::Listener;

/// How long the follower waits for a notification before it looks anyway.
const POLL: Duration = Duration::from_millis(500);

/// Starts the follower of `journal`; it ends once the SRS is dropped.
pub(crate) fn spawn(journal: &Arc<Journal>) {
    let weak = Arc::downgrade(journal);
    let store = journal.store().clone();
    // Without a thread the SRS still works: every commit catches up.
    let _ = std::thread::Builder::new()
        .name("sesphr-follower".into())
        .spawn(move || {
            let listener = store.listener().ok().flatten();
            drop(store);
            run(&weak, listener);
        });
}

fn run(weak: &Weak<Journal>, mut listener: Option<Box<dyn Listener>>) {
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
        let Some(journal) = weak.upgrade() else {
            return;
        };
        // A failure here is reported to the next caller by its own commit.
        let _ = journal.sync();
    }
}
