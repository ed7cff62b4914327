//! The commit pipeline: every change and every audit entry reaches the store
//! through one [`Journal`], in order, in group commits.
//!
//! A caller hands over a [`Change`] (rows to write, the images of rows they
//! replace, audit drafts). Under the journal's lock the change gets its
//! sequence numbers (its rows' generation is the first of them), its rows
//! are authenticated and their secrets sealed, and the registry digest is
//! moved by the shares of the rows written and replaced. Whichever caller
//! then finds no commit in flight writes everything queued in one atomic
//! store commit, with the new authenticated head and, every N entries or on
//! demand, a signed checkpoint. Each caller returns once its own part is
//! durable.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use curve25519_dalek::scalar::Scalar;

use crate::model::Checkpoint;
use crate::rng::os_rng;
use crate::srs::chain::{Draft, chain_hash};
use crate::srs::rows::{Row, RowImage};
use crate::srs::secrets::SrsKeys;
use crate::srs::types::{Clock, SrsError};
use crate::store::{AuditRecord, ChainHead, Commit, Store, StoredRow};

/// One state change, planned once: the rows it writes, the images of the
/// rows they replace (for the digest), and its audit entries.
pub(crate) struct Change {
    pub(crate) rows: Vec<Row>,
    pub(crate) replaced: Vec<RowImage>,
    pub(crate) drafts: Vec<Draft>,
    /// A sealed secret leaves the store with this change.
    pub(crate) scrub: bool,
}

impl Change {
    /// A change that only appends audit entries.
    pub(crate) fn audit(drafts: Vec<Draft>) -> Self {
        Self {
            rows: Vec::new(),
            replaced: Vec::new(),
            drafts,
            scrub: false,
        }
    }
}

/// A host callback that receives every checkpoint once it is durable.
pub(crate) type CheckpointSink = Arc<dyn Fn(&Checkpoint) + Send + Sync>;

/// Where the chain stands.
#[derive(Clone, Copy)]
pub(crate) struct Position {
    pub(crate) seq: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) digest: Scalar,
    pub(crate) base_seq: u64,
    pub(crate) base_hash: [u8; 32],
    /// How many checkpoints the store keeps.
    pub(crate) checkpoints: u64,
}

struct State {
    /// Everything handed out, durable or not.
    at: Position,
    /// What the store holds.
    durable_at: Position,
    last_checkpoint: Option<Checkpoint>,
    rows: Vec<StoredRow>,
    audit: Vec<AuditRecord>,
    scrub: bool,
    sync: bool,
    want_checkpoint: bool,
    submitted: u64,
    durable: u64,
    committing: bool,
    failed: bool,
}

/// The commit pipeline (see the module docs).
pub(crate) struct Journal {
    store: Arc<dyn Store>,
    keys: Arc<SrsKeys>,
    clock: Arc<dyn Clock>,
    checkpoint_every: u64,
    sink: Option<CheckpointSink>,
    state: Mutex<State>,
    done: Condvar,
}

impl Journal {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        keys: Arc<SrsKeys>,
        clock: Arc<dyn Clock>,
        checkpoint_every: u64,
        sink: Option<CheckpointSink>,
        at: Position,
        last_checkpoint: Option<Checkpoint>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            checkpoint_every: checkpoint_every.max(1),
            sink,
            state: Mutex::new(State {
                at,
                durable_at: at,
                last_checkpoint,
                rows: Vec::new(),
                audit: Vec::new(),
                scrub: false,
                sync: false,
                want_checkpoint: false,
                submitted: 0,
                durable: 0,
                committing: false,
                failed: false,
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The journal's own code does not panic while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What the store holds now.
    pub(crate) fn durable(&self) -> Position {
        self.lock().durable_at
    }

    /// The last checkpoint made (or found at open).
    pub(crate) fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.lock().last_checkpoint
    }

    /// Queues `change` and returns, once it is durable, the generation its
    /// rows were written with.
    ///
    /// # Errors
    /// [`SrsError::Unavailable`] after an earlier store failure; the store's
    /// error if this commit failed (then nothing of it took effect).
    pub(crate) fn commit(&self, change: &Change) -> Result<u64, SrsError> {
        self.submit(change, false).map(|(g, _)| g)
    }

    /// Makes a checkpoint of everything committed so far (and of whatever is
    /// queued with it) and returns it once durable.
    ///
    /// # Errors
    /// As [`Journal::commit`].
    pub(crate) fn checkpoint(&self) -> Result<Checkpoint, SrsError> {
        let empty = Change::audit(Vec::new());
        let (_, cp) = self.submit(&empty, true)?;
        cp.ok_or(SrsError::Unavailable)
    }

    fn submit(
        &self,
        change: &Change,
        checkpoint: bool,
    ) -> Result<(u64, Option<Checkpoint>), SrsError> {
        let mut g = self.lock();
        if g.failed {
            return Err(SrsError::Unavailable);
        }
        let generation = g.at.seq + 1;
        // Authenticate first: nothing is queued unless all of it is ready.
        let mut rng = os_rng();
        let mut digest = g.at.digest;
        let mut rows = Vec::with_capacity(change.rows.len());
        for row in &change.rows {
            let (stored, share) = row.seal(generation, &self.keys, &mut rng)?;
            digest += share;
            rows.push(stored);
        }
        for img in &change.replaced {
            let mac = self
                .keys
                .row_mac(img.kind, &img.key, img.generation, &img.body)?;
            digest -= self.keys.share(&mac)?;
        }
        g.at.digest = digest;
        g.rows.extend(rows);
        for d in &change.drafts {
            let seq = g.at.seq + 1;
            let entry = d.clone().finish(seq);
            let hash = chain_hash(&g.at.hash, &entry);
            g.audit.push(AuditRecord { entry, hash });
            g.at.seq = seq;
            g.at.hash = hash;
        }
        g.scrub |= change.scrub;
        g.sync |= checkpoint || !change.rows.is_empty();
        g.want_checkpoint |= checkpoint;
        g.submitted += 1;
        let mine = g.submitted;
        loop {
            if g.durable >= mine {
                let cp = if checkpoint { g.last_checkpoint } else { None };
                return Ok((generation, cp));
            }
            if g.failed {
                return Err(SrsError::Unavailable);
            }
            if g.committing {
                g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            g = self.lead(g)?;
        }
    }

    /// Writes everything queued in one commit.
    fn lead<'a>(&'a self, mut g: MutexGuard<'a, State>) -> Result<MutexGuard<'a, State>, SrsError> {
        g.committing = true;
        let upto = g.submitted;
        let mut at = g.at;
        let last_cp = g.last_checkpoint.map(|c| c.seq);
        let due = at.seq.saturating_sub(last_cp.unwrap_or(0)) >= self.checkpoint_every;
        let checkpoint = if g.want_checkpoint || due {
            let mut cp = Checkpoint {
                seq: at.seq,
                time: self.clock.now(),
                chain_hash: at.hash,
                digest: at.digest.to_bytes(),
                signature: [0; 64],
            };
            self.keys.sign(&mut cp);
            // A second checkpoint at the same entry replaces the first.
            if last_cp != Some(at.seq) {
                at.checkpoints += 1;
            }
            Some(cp)
        } else {
            None
        };
        let mut head = ChainHead {
            seq: at.seq,
            hash: at.hash,
            digest: at.digest.to_bytes(),
            base_seq: at.base_seq,
            base_hash: at.base_hash,
            checkpoints: at.checkpoints,
            mac: [0; 32],
        };
        let prepared = self.keys.authenticate_head(&mut head).map(|()| Commit {
            rows: std::mem::take(&mut g.rows),
            audit: std::mem::take(&mut g.audit),
            head,
            checkpoint,
            scrub: std::mem::take(&mut g.scrub),
            sync: std::mem::take(&mut g.sync),
        });
        g.want_checkpoint = false;
        drop(g);
        let res = prepared.and_then(|c| self.store.commit(&c).map_err(SrsError::from));
        let mut g = self.lock();
        g.committing = false;
        match &res {
            Ok(()) => {
                g.durable = upto;
                g.at.checkpoints = at.checkpoints;
                g.durable_at = at;
                if checkpoint.is_some() {
                    g.last_checkpoint = checkpoint;
                }
            }
            Err(_) => g.failed = true,
        }
        self.done.notify_all();
        res?;
        if let (Some(cp), Some(sink)) = (checkpoint, &self.sink) {
            drop(g);
            sink(&cp);
            g = self.lock();
        }
        Ok(g)
    }

    /// Prunes the store's audit entries up to `seq` (whose chain hash is
    /// `hash`) and moves the chain's base there, with no commit in flight.
    ///
    /// # Errors
    /// [`SrsError::Unavailable`] after a store failure; the store's error.
    pub(crate) fn prune(&self, seq: u64, hash: [u8; 32]) -> Result<(), SrsError> {
        let mut g = self.lock();
        while g.committing {
            g = self.done.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
        if g.failed {
            return Err(SrsError::Unavailable);
        }
        // Entries queued but not led yet stay queued: the head written here
        // is the durable one, and the next commit writes the base it keeps.
        let at = g.durable_at;
        let mut head = ChainHead {
            seq: at.seq,
            hash: at.hash,
            digest: at.digest.to_bytes(),
            base_seq: seq,
            base_hash: hash,
            checkpoints: at.checkpoints,
            mac: [0; 32],
        };
        self.keys.authenticate_head(&mut head)?;
        self.store.prune(seq, &head)?;
        g.at.base_seq = seq;
        g.at.base_hash = hash;
        g.durable_at.base_seq = seq;
        g.durable_at.base_hash = hash;
        Ok(())
    }
}
