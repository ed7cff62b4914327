//! The store for several SRS processes: one PostgreSQL database (feature
//! `postgres`, the synchronous `postgres` client).
//!
//! The same authenticated rows, chain, digest and checkpoints as SQLite, in
//! tables `sesphr_meta`, `sesphr_registry`, `sesphr_audit` and
//! `sesphr_checkpoints`, and `sesphr_disclosures` (the index of served
//! re-encryptions by patient and time). The chain head is one row of `sesphr_meta`; every
//! commit runs in one transaction that first locks that row
//! (`SELECT … FOR UPDATE`), so writers from every process are serialized
//! there, and each sees, under the lock, everything committed before it. A
//! commit that changed the registry sends `NOTIFY sesphr_registry` so that
//! the other processes catch up at once.
//!
//! The schema migrates itself: `sesphr_meta.schema` holds its version, and
//! opening applies the missing migrations in order, under an advisory lock
//! (so processes starting together do it once). A database written by a
//! newer version is refused with [`StoreErrorKind::UnsupportedVersion`].
//!
//! A lost connection, a server restart or failover, a terminated backend and
//! a statement timeout (set one in the connection string, e.g.
//! `options='-c statement_timeout=5s'`) give [`StoreErrorKind::Connection`];
//! the transaction is rolled back by the server, and the next call
//! reconnects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Transaction};

use super::{
    AuditRecord, Build, ChainHead, Commit, IndexVisit, Listener, Locked, Store, StoreError,
    StoreErrorKind, StoredRow, disclosed, hash32, to_i64, to_u64,
};
use crate::ids::Identity;
use crate::model::{AuditEntry, Checkpoint};

/// The schema version this code writes.
const SCHEMA_VERSION: i32 = 5;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE sesphr_registry (
    kind smallint NOT NULL, key bytea NOT NULL, generation bigint NOT NULL,
    body bytea NOT NULL, secret bytea, mac bytea NOT NULL,
    PRIMARY KEY (kind, key));
CREATE INDEX sesphr_registry_generation ON sesphr_registry (generation);
CREATE TABLE sesphr_audit (seq bigint PRIMARY KEY, entry bytea NOT NULL, hash bytea NOT NULL);
CREATE TABLE sesphr_checkpoints (seq bigint PRIMARY KEY, checkpoint bytea NOT NULL);
INSERT INTO sesphr_meta (name, value) VALUES ('head', NULL);
",
    "
CREATE TABLE sesphr_disclosures (
    patient bytea NOT NULL, time bigint NOT NULL, seq bigint NOT NULL,
    PRIMARY KEY (patient, time, seq));
",
    "
CREATE TABLE sesphr_tree (
    level integer NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL,
    PRIMARY KEY (level, idx));
",
    "
CREATE TABLE sesphr_snapshot (part integer PRIMARY KEY, data bytea NOT NULL);
",
    // Schema 5 keeps each entry's leaf hash as a node of level 0 (added
    // for the entries there, below).
    "",
];

/// The advisory lock key that serializes schema migrations.
const MIGRATION_LOCK: i64 = 0x5345_5350_4852_0001;

/// The channel that announces registry changes.
const CHANNEL: &str = "sesphr_registry";

/// An SRS store in a PostgreSQL database, shareable by several SRS
/// processes (see the module docs).
pub struct PostgresStore {
    conninfo: String,
    writer: Mutex<Option<Client>>,
    reader: Mutex<Option<Client>>,
    commits: AtomicU64,
    waited_ns: AtomicU64,
    held_ns: AtomicU64,
}

/// How this process's commits used the chain head's lock, the point that
/// serializes every SRS process (see [`PostgresStore::lock_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Commit transactions that took the lock (including those that found
    /// nothing to write).
    pub commits: u64,
    /// Time spent waiting for the lock, in total.
    pub waited: Duration,
    /// Time the lock was held (from acquiring it to the end of the
    /// transaction), in total. One primary sustains at most about
    /// `commits / held` commits per second across all processes.
    pub held: Duration,
}

impl core::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The connection string may hold a password: not printed.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// Whether a PostgreSQL error means the connection (or the server behind
/// it) is gone or the statement was cut off, rather than a bad query.
fn is_connection(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Failures below SQL: the socket, the connection attempt.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
        Some(c) => {
            c.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::QUERY_CANCELED,
                    SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(c)
        }
    }
}

fn pg_err(what: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| {
        let kind = if is_connection(&e) {
            StoreErrorKind::Connection
        } else {
            StoreErrorKind::Io
        };
        let mut err = StoreError::with_source(format!("PostgreSQL: {what}"), e);
        err.kind = kind;
        err
    }
}

fn connect(conninfo: &str) -> Result<Client, StoreError> {
    Client::connect(conninfo, NoTls).map_err(pg_err("connecting"))
}

fn decode_row(r: &postgres::Row) -> Result<StoredRow, StoreError> {
    let get = |e| StoreError::with_source("reading the registry", e);
    let kind: i16 = r.try_get(0).map_err(get)?;
    Ok(StoredRow {
        kind: u8::try_from(kind).map_err(|_| StoreError::corrupt("corrupt registry row"))?,
        key: r.try_get(1).map_err(get)?,
        generation: to_u64(r.try_get(2).map_err(get)?),
        body: r.try_get(3).map_err(get)?,
        secret: r.try_get(4).map_err(get)?,
        mac: hash32(r.try_get(5).map_err(get)?, "registry")?,
    })
}

fn decode_audit(r: &postgres::Row) -> Result<AuditRecord, StoreError> {
    let get = |e| StoreError::with_source("reading the audit log", e);
    let seq: i64 = r.try_get(0).map_err(get)?;
    let entry: &[u8] = r.try_get(1).map_err(get)?;
    let entry = AuditEntry::from_bytes(entry)
        .map_err(|_| StoreError::corrupt(format!("audit entry {seq} does not decode")))?;
    if to_u64(seq) != entry.seq {
        return Err(StoreError::corrupt("corrupt audit row"));
    }
    Ok(AuditRecord {
        entry,
        hash: hash32(r.try_get(2).map_err(get)?, "audit")?,
    })
}

fn decode_checkpoint(r: &postgres::Row) -> Result<Checkpoint, StoreError> {
    let get = |e| StoreError::with_source("reading checkpoints", e);
    let seq: i64 = r.try_get(0).map_err(get)?;
    let cp = Checkpoint::from_bytes(r.try_get(1).map_err(get)?)
        .map_err(|_| StoreError::corrupt("corrupt checkpoint row"))?;
    if to_u64(seq) != cp.seq {
        return Err(StoreError::corrupt("corrupt checkpoint row"));
    }
    Ok(cp)
}

/// The head row's value. The schema creates the row (empty): a missing
/// row was deleted.
fn head_value(r: Option<&postgres::Row>) -> Result<Option<Vec<u8>>, StoreError> {
    let r = r.ok_or_else(|| StoreError::corrupt("the chain head's row is missing"))?;
    r.try_get(0)
        .map_err(|e| StoreError::with_source("reading the chain head", e))
}

fn decode_head(v: Option<&[u8]>) -> Result<Option<ChainHead>, StoreError> {
    v.map(ChainHead::from_bytes).transpose()
}

const ROWS: &str = "SELECT kind, key, generation, body, secret, mac FROM sesphr_registry";
const AUDIT: &str = "SELECT seq, entry, hash FROM sesphr_audit
    WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3";
const LATEST_CHECKPOINT: &str =
    "SELECT seq, checkpoint FROM sesphr_checkpoints ORDER BY seq DESC LIMIT 1";

impl PostgresStore {
    /// Connects to the database named by `conninfo` (a libpq-style
    /// connection string, e.g. `host=/run/postgresql dbname=srs user=srs`)
    /// and creates or migrates the schema.
    ///
    /// # Errors
    /// [`StoreErrorKind::Connection`] if the server cannot be reached;
    /// [`StoreErrorKind::UnsupportedVersion`] for a schema newer than this
    /// version writes; [`StoreErrorKind::Io`] for any other failure.
    pub fn open(conninfo: &str) -> Result<Self, StoreError> {
        let mut client = connect(conninfo)?;
        migrate(&mut client)?;
        Ok(Self {
            conninfo: conninfo.to_owned(),
            writer: Mutex::new(Some(client)),
            reader: Mutex::new(None),
            commits: AtomicU64::new(0),
            waited_ns: AtomicU64::new(0),
            held_ns: AtomicU64::new(0),
        })
    }

    /// How this process's commits used the chain head's lock so far.
    pub fn lock_stats(&self) -> LockStats {
        LockStats {
            commits: self.commits.load(Ordering::Relaxed),
            waited: Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed)),
            held: Duration::from_nanos(self.held_ns.load(Ordering::Relaxed)),
        }
    }

    /// Runs `f` on a connection from `slot` (connecting first if it was
    /// lost); drops the connection if it failed.
    fn with<T>(
        &self,
        slot: &Mutex<Option<Client>>,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut g: MutexGuard<'_, Option<Client>> =
            slot.lock().unwrap_or_else(PoisonError::into_inner);
        if g.as_ref().is_none_or(Client::is_closed) {
            *g = Some(connect(&self.conninfo)?);
        }
        let Some(client) = g.as_mut() else {
            return Err(StoreError::new(StoreErrorKind::Connection, "not connected"));
        };
        let r = f(client);
        if r.as_ref()
            .is_err_and(|e| e.kind() == StoreErrorKind::Connection)
        {
            *g = None;
        }
        r
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(&self.reader, f)
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg_err("migrating"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg_err("migrating"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS sesphr_meta (name text PRIMARY KEY, value bytea)")
        .map_err(pg_err("creating the schema"))?;
    let found: Option<Option<Vec<u8>>> = tx
        .query_opt("SELECT value FROM sesphr_meta WHERE name = 'schema'", &[])
        .map_err(pg_err("reading the schema version"))?
        .map(|r| r.get(0));
    let version = match found.flatten() {
        None => 0,
        Some(v) => i32::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| StoreError::corrupt("schema version does not decode"))?,
        ),
    };
    if !(0..=SCHEMA_VERSION).contains(&version) {
        return Err(StoreError::new(
            StoreErrorKind::UnsupportedVersion,
            format!("PostgreSQL schema version {version}; this sesphr reads {SCHEMA_VERSION}"),
        ));
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.batch_execute(step)
            .map_err(pg_err("migrating the schema"))?;
    }
    if version < 2 {
        // The disclosure index of what the log holds already.
        let rows = tx
            .query(
                "SELECT seq, entry, hash FROM sesphr_audit ORDER BY seq",
                &[],
            )
            .map_err(pg_err("migrating the schema"))?;
        let records = rows
            .iter()
            .map(decode_audit)
            .collect::<Result<Vec<_>, _>>()?;
        index_disclosures(&mut tx, &records).map_err(pg_err("migrating the schema"))?;
    }
    if (1..5).contains(&version) {
        // Level 0 of the Merkle tree: each entry's leaf hash.
        let rows = tx
            .query("SELECT seq, entry FROM sesphr_audit ORDER BY seq", &[])
            .map_err(pg_err("migrating the schema"))?;
        let (mut idxs, mut hashes) = (Vec::new(), Vec::new());
        for r in &rows {
            let seq: i64 = r
                .try_get(0)
                .map_err(|_| StoreError::corrupt("corrupt audit row"))?;
            let entry: &[u8] = r
                .try_get(1)
                .map_err(|_| StoreError::corrupt("corrupt audit row"))?;
            idxs.push(seq - 1);
            hashes.push(crate::merkle::leaf_hash(entry).to_vec());
        }
        tx.execute(
            "INSERT INTO sesphr_tree (level, idx, hash)
             SELECT 0, * FROM unnest($1::bigint[], $2::bytea[])
             ON CONFLICT (level, idx) DO UPDATE SET hash = EXCLUDED.hash",
            &[&idxs, &hashes],
        )
        .map_err(pg_err("migrating the schema"))?;
    }
    tx.execute(
        "INSERT INTO sesphr_meta (name, value) VALUES ('schema', $1)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[&SCHEMA_VERSION.to_be_bytes().to_vec()],
    )
    .map_err(pg_err("writing the schema version"))?;
    tx.commit().map_err(pg_err("migrating"))
}

/// The locked view a commit's build step reads through.
struct TxView<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    head: Option<ChainHead>,
}

impl Locked for TxView<'_, '_> {
    fn head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self.head.clone())
    }

    fn rows_since(
        &mut self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let rows = self
            .tx
            .query(
                &format!("{ROWS} WHERE generation > $1 ORDER BY kind, key"),
                &[&to_i64(generation)],
            )
            .map_err(pg_err("reading the registry"))?;
        rows.iter().try_for_each(|r| each(decode_row(r)?))
    }

    fn audit(&mut self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.tx
            .query(AUDIT, &[&to_i64(from), &to_i64(to), &limit])
            .map_err(pg_err("reading the audit log"))?
            .iter()
            .map(decode_audit)
            .collect()
    }

    fn latest_checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.tx
            .query_opt(LATEST_CHECKPOINT, &[])
            .map_err(pg_err("reading checkpoints"))?
            .as_ref()
            .map(decode_checkpoint)
            .transpose()
    }

    fn tree_nodes(&mut self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        query_tree_nodes(&mut *self.tx, wanted)
    }
}

/// The tree nodes among `wanted`, in order, through any client or
/// transaction.
fn query_tree_nodes(
    c: &mut impl postgres::GenericClient,
    wanted: &[(u32, u64)],
) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let levels: Vec<i32> = wanted
        .iter()
        .map(|w| i32::try_from(w.0).unwrap_or(i32::MAX))
        .collect();
    let idxs: Vec<i64> = wanted.iter().map(|w| to_i64(w.1)).collect();
    let rows = c
        .query(
            "SELECT w.level, w.idx, t.hash
             FROM unnest($1::integer[], $2::bigint[]) WITH ORDINALITY AS w(level, idx, n)
             LEFT JOIN sesphr_tree t ON t.level = w.level AND t.idx = w.idx
             ORDER BY w.n",
            &[&levels, &idxs],
        )
        .map_err(pg_err("reading the audit tree"))?;
    rows.iter()
        .map(|r| {
            let h: Option<&[u8]> = r
                .try_get(2)
                .map_err(|e| StoreError::with_source("reading the audit tree", e))?;
            h.map(|h| hash32(h, "audit tree")).transpose()
        })
        .collect()
}

/// A time as PostgreSQL's bigint, saturating.
fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn index_disclosures(
    tx: &mut Transaction<'_>,
    audit: &[AuditRecord],
) -> Result<(), postgres::Error> {
    let mut patients: Vec<&[u8]> = Vec::new();
    let mut times = Vec::new();
    let mut seqs = Vec::new();
    for a in audit {
        if let Some(p) = disclosed(&a.entry) {
            patients.push(p.as_bytes());
            times.push(clamp(a.entry.time));
            seqs.push(to_i64(a.entry.seq));
        }
    }
    if !patients.is_empty() {
        tx.execute(
            "INSERT INTO sesphr_disclosures (patient, time, seq)
             SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[])
             ON CONFLICT DO NOTHING",
            &[&patients, &times, &seqs],
        )?;
    }
    Ok(())
}

fn write(tx: &mut Transaction<'_>, c: &Commit) -> Result<(), postgres::Error> {
    if !c.rows.is_empty() {
        let kinds: Vec<i16> = c.rows.iter().map(|r| i16::from(r.kind)).collect();
        let keys: Vec<&[u8]> = c.rows.iter().map(|r| r.key.as_slice()).collect();
        let gens: Vec<i64> = c.rows.iter().map(|r| to_i64(r.generation)).collect();
        let bodies: Vec<&[u8]> = c.rows.iter().map(|r| r.body.as_slice()).collect();
        let secrets: Vec<Option<&[u8]>> = c.rows.iter().map(|r| r.secret.as_deref()).collect();
        let macs: Vec<&[u8]> = c.rows.iter().map(|r| &r.mac[..]).collect();
        tx.execute(
            "INSERT INTO sesphr_registry (kind, key, generation, body, secret, mac)
             SELECT * FROM unnest($1::smallint[], $2::bytea[], $3::bigint[], $4::bytea[],
                                  $5::bytea[], $6::bytea[])
             ON CONFLICT (kind, key) DO UPDATE SET generation = EXCLUDED.generation,
                 body = EXCLUDED.body, secret = EXCLUDED.secret, mac = EXCLUDED.mac",
            &[&kinds, &keys, &gens, &bodies, &secrets, &macs],
        )?;
    }
    if !c.audit.is_empty() {
        let seqs: Vec<i64> = c.audit.iter().map(|a| to_i64(a.entry.seq)).collect();
        let entries: Vec<Vec<u8>> = c.audit.iter().map(|a| a.entry.to_bytes()).collect();
        let hashes: Vec<&[u8]> = c.audit.iter().map(|a| &a.hash[..]).collect();
        tx.execute(
            "INSERT INTO sesphr_audit (seq, entry, hash)
             SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
            &[&seqs, &entries, &hashes],
        )?;
        index_disclosures(tx, &c.audit)?;
    }
    if !c.nodes.is_empty() {
        let levels: Vec<i32> = c
            .nodes
            .iter()
            .map(|n| i32::try_from(n.level).unwrap_or(i32::MAX))
            .collect();
        let idxs: Vec<i64> = c.nodes.iter().map(|n| to_i64(n.index)).collect();
        let hashes: Vec<&[u8]> = c.nodes.iter().map(|n| &n.hash[..]).collect();
        tx.execute(
            "INSERT INTO sesphr_tree (level, idx, hash)
             SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bytea[])
             ON CONFLICT (level, idx) DO UPDATE SET hash = EXCLUDED.hash",
            &[&levels, &idxs, &hashes],
        )?;
    }
    if let Some(cp) = &c.checkpoint {
        tx.execute(
            "INSERT INTO sesphr_checkpoints (seq, checkpoint) VALUES ($1, $2)
             ON CONFLICT (seq) DO UPDATE SET checkpoint = EXCLUDED.checkpoint",
            &[&to_i64(cp.seq), &cp.to_bytes().as_slice()],
        )?;
    }
    if c.scrub {
        // The registry snapshot holds the secret that leaves.
        tx.execute("DELETE FROM sesphr_snapshot", &[])?;
    }
    if let Some(upto) = c.prune {
        tx.execute("DELETE FROM sesphr_audit WHERE seq <= $1", &[&to_i64(upto)])?;
        tx.execute(
            "DELETE FROM sesphr_disclosures WHERE seq <= $1",
            &[&to_i64(upto)],
        )?;
    }
    tx.execute(
        "UPDATE sesphr_meta SET value = $1 WHERE name = 'head'",
        &[&c.head.to_bytes()],
    )?;
    if !c.rows.is_empty() {
        tx.batch_execute(&format!("NOTIFY {CHANNEL}"))?;
    }
    Ok(())
}

impl Store for PostgresStore {
    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        self.read(|c| {
            let r = c
                .query_opt("SELECT value FROM sesphr_meta WHERE name = 'head'", &[])
                .map_err(pg_err("reading the chain head"))?;
            decode_head(head_value(r.as_ref())?.as_deref())
        })
    }

    fn rows(
        &self,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read(|c| {
            // Streamed: the registry is never all in memory as rows.
            let sql = format!("{ROWS} ORDER BY kind, key");
            let mut it = c
                .query_raw(sql.as_str(), std::iter::empty::<i64>())
                .map_err(pg_err("reading the registry"))?;
            while let Some(r) = it.next().map_err(pg_err("reading the registry"))? {
                each(decode_row(&r)?)?;
            }
            Ok(())
        })
    }

    fn rows_since(
        &self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read(|c| {
            let sql = format!("{ROWS} WHERE generation > $1 ORDER BY kind, key");
            let mut it = c
                .query_raw(sql.as_str(), [to_i64(generation)])
                .map_err(pg_err("reading the registry"))?;
            while let Some(r) = it.next().map_err(pg_err("reading the registry"))? {
                each(decode_row(&r)?)?;
            }
            Ok(())
        })
    }

    fn commit(&self, build: &mut Build<'_>) -> Result<bool, StoreError> {
        self.with(&self.writer, |client| {
            let mut tx = client.transaction().map_err(pg_err("beginning a commit"))?;
            // The head row's lock serializes every writer of every process.
            let asked = Instant::now();
            let r = tx
                .query_opt(
                    "SELECT value FROM sesphr_meta WHERE name = 'head' FOR UPDATE",
                    &[],
                )
                .map_err(pg_err("locking the chain head"))?;
            let locked = Instant::now();
            let head = decode_head(head_value(r.as_ref())?.as_deref())?;
            let built = build(&mut TxView { tx: &mut tx, head })?;
            let written = match built {
                None => {
                    tx.rollback().map_err(pg_err("ending a commit"))?;
                    false
                }
                Some(c) => {
                    write(&mut tx, &c).map_err(pg_err("committing"))?;
                    tx.commit().map_err(pg_err("committing"))?;
                    true
                }
            };
            let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.waited_ns
                .fetch_add(nanos(locked - asked), Ordering::Relaxed);
            self.held_ns
                .fetch_add(nanos(locked.elapsed()), Ordering::Relaxed);
            Ok(written)
        })
    }

    fn audit(&self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            c.query(AUDIT, &[&to_i64(from), &to_i64(to), &limit])
                .map_err(pg_err("reading the audit log"))?
                .iter()
                .map(decode_audit)
                .collect()
        })
    }

    fn disclosure_index(&self, upto: u64, each: &mut IndexVisit<'_>) -> Result<(), StoreError> {
        self.read(|c| {
            let mut it = c
                .query_raw(
                    "SELECT patient, time, seq FROM sesphr_disclosures WHERE seq <= $1",
                    [to_i64(upto)],
                )
                .map_err(pg_err("reading the disclosure index"))?;
            let get = |e| StoreError::with_source("reading the disclosure index", e);
            while let Some(r) = it.next().map_err(pg_err("reading the disclosure index"))? {
                let p: &[u8] = r.try_get(0).map_err(get)?;
                let t: i64 = r.try_get(1).map_err(get)?;
                let s: i64 = r.try_get(2).map_err(get)?;
                each(p, to_u64(t), to_u64(s))?;
            }
            Ok(())
        })
    }

    fn disclosures(
        &self,
        patient: &Identity,
        from: u64,
        to: u64,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let (t, seq) = after.map_or((clamp(from), 0), |(t, s)| (clamp(t), to_i64(s)));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            c.query(
                "SELECT a.seq, a.entry, a.hash FROM sesphr_disclosures d
                 JOIN sesphr_audit a ON a.seq = d.seq
                 WHERE d.patient = $1 AND d.time >= $2 AND d.time <= $3
                   AND (d.time, d.seq) > ($4, $5)
                 ORDER BY d.time, d.seq LIMIT $6",
                &[
                    &patient.as_bytes(),
                    &clamp(from),
                    &clamp(to),
                    &t,
                    &seq,
                    &limit,
                ],
            )
            .map_err(pg_err("reading the disclosure index"))?
            .iter()
            .map(decode_audit)
            .collect()
        })
    }

    fn tree_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        self.read(|c| query_tree_nodes(c, wanted))
    }

    fn audit_last_seq(&self) -> Result<Option<u64>, StoreError> {
        self.read(|c| {
            let v: Option<i64> = c
                .query_one("SELECT max(seq) FROM sesphr_audit", &[])
                .map_err(pg_err("reading the audit log"))?
                .get(0);
            Ok(v.map(to_u64))
        })
    }

    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.read(|c| {
            c.query_opt(LATEST_CHECKPOINT, &[])
                .map_err(pg_err("reading checkpoints"))?
                .as_ref()
                .map(decode_checkpoint)
                .transpose()
        })
    }

    fn checkpoint_at(&self, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.read(|c| {
            c.query_opt(
                "SELECT seq, checkpoint FROM sesphr_checkpoints WHERE seq = $1",
                &[&to_i64(seq)],
            )
            .map_err(pg_err("reading checkpoints"))?
            .as_ref()
            .map(decode_checkpoint)
            .transpose()
        })
    }

    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            c.query(
                "SELECT seq, checkpoint FROM sesphr_checkpoints WHERE seq >= $1 ORDER BY seq LIMIT $2",
                &[&to_i64(from), &limit],
            )
            .map_err(pg_err("reading checkpoints"))?
            .iter()
            .map(decode_checkpoint)
            .collect()
        })
    }

    fn checkpoint_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c
                .query_one("SELECT count(*) FROM sesphr_checkpoints", &[])
                .map_err(pg_err("reading checkpoints"))?
                .get(0);
            Ok(to_u64(n))
        })
    }

    fn registry_snapshot(
        &self,
        each: &mut dyn FnMut(Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        self.read(|c| {
            let mut it = c
                .query_raw(
                    "SELECT data FROM sesphr_snapshot ORDER BY part",
                    std::iter::empty::<i64>(),
                )
                .map_err(pg_err("reading the registry snapshot"))?;
            let mut any = false;
            while let Some(r) = it.next().map_err(pg_err("reading the registry snapshot"))? {
                any = true;
                each(
                    r.try_get(0)
                        .map_err(|e| StoreError::with_source("reading the registry snapshot", e))?,
                )?;
            }
            Ok(any)
        })
    }

    fn put_registry_snapshot(
        &self,
        next: &mut dyn FnMut() -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<bool, StoreError> {
        self.with(&self.writer, |client| {
            let mut tx = client
                .transaction()
                .map_err(pg_err("writing the registry snapshot"))?;
            // One writer of the snapshot at a time, across processes.
            tx.batch_execute(
                "LOCK TABLE sesphr_snapshot IN EXCLUSIVE MODE; DELETE FROM sesphr_snapshot",
            )
            .map_err(pg_err("writing the registry snapshot"))?;
            let mut i = 0i32;
            while let Some(part) = next()? {
                tx.execute(
                    "INSERT INTO sesphr_snapshot (part, data) VALUES ($1, $2)",
                    &[&i, &part],
                )
                .map_err(pg_err("writing the registry snapshot"))?;
                i = i
                    .checked_add(1)
                    .ok_or_else(|| StoreError::corrupt("registry snapshot too large"))?;
            }
            tx.commit()
                .map_err(pg_err("writing the registry snapshot"))?;
            Ok(true)
        })
    }

    fn begin_snapshot(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(pg_err("taking a snapshot"))
        })
    }

    fn end_snapshot(&self) {
        // A failure leaves nothing to undo: the snapshot was read-only.
        let _ = self.read(|c| {
            c.batch_execute("COMMIT")
                .map_err(pg_err("ending a snapshot"))
        });
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn listener(&self) -> Result<Option<Box<dyn Listener>>, StoreError> {
        Ok(Some(Box::new(PgListener {
            conninfo: self.conninfo.clone(),
            client: None,
        })))
    }
}

/// Waits on `LISTEN sesphr_registry` on its own connection.
struct PgListener {
    conninfo: String,
    client: Option<Client>,
}

impl Listener for PgListener {
    fn wait(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let mut c = connect(&self.conninfo)?;
            c.batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(pg_err("listening"))?;
            self.client = Some(c);
            // Changes may have come before the LISTEN: look once.
            return Ok(true);
        }
        let Some(c) = self.client.as_mut() else {
            return Ok(false);
        };
        let r = {
            let mut n = c.notifications();
            let r = n.timeout_iter(timeout).next().map_err(pg_err("listening"));
            if let Ok(Some(_)) = r {
                // Drain what else arrived: one catch-up covers them all.
                while let Ok(Some(_)) = n.iter().next() {}
            }
            r
        };
        match r {
            Ok(found) => Ok(found.is_some()),
            Err(e) => {
                self.client = None;
                Err(e)
            }
        }
    }
}
