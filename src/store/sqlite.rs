//! The embedded default store: one SQLite database file (bundled SQLite, WAL
//! journal, `secure_delete`), held by one SRS at a time.
//!
//! Schema version 3: `meta` (schema version, chain head), `registry` (one
//! authenticated row per user, patient, portion key, grant and access
//! request), `audit` (the chain), `checkpoints` and `disclosures` (the index
//! of served re-encryptions by patient and time, for the accounting of
//! disclosures). A database of schema version 2 is migrated at open (the
//! index is built from its audit log, in one transaction). A database of schema version 1 (sesphr 0.1,
//! unauthenticated rows) is refused with [`StoreErrorKind::UnsupportedVersion`]:
//! its rows cannot be trusted after the fact, so they are not migrated.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    AuditRecord, Build, ChainHead, Commit, IndexVisit, Store, StoreError, StoreErrorKind,
    StoredRow, commit_alone, disclosed, hash32, to_i64, to_u64,
};
use crate::ids::Identity;
use crate::model::{AuditEntry, Checkpoint};
use crate::store::{TILE_BOTTOM, TILE_LEVELS, TILE_WIDTH, TileBuilder, tile_node};

const SCHEMA_VERSION: i64 = 6;

/// The table of the tiles of bottom level `level` ([`TILE_LEVELS`]): one
/// per level, keyed by the tile's number as its rowid. (Not one table
/// keyed by both without a rowid: its inner pages would hold whole rows of
/// 992 bytes, four per page, and every read would descend ten of them.)
fn tile_table(level: u32) -> Option<&'static str> {
    match level {
        0 => Some("tiles_0"),
        4 => Some("tiles_4"),
        _ => None,
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS registry (
    kind INTEGER NOT NULL, key BLOB NOT NULL, generation INTEGER NOT NULL,
    body BLOB NOT NULL, secret BLOB, mac BLOB NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, checkpoint BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS disclosures (
    patient BLOB NOT NULL, time INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (patient, time, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tree (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tiles_0 (idx INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tiles_4 (idx INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (part INTEGER PRIMARY KEY, data BLOB NOT NULL);
";

/// When a committed transaction is on disk.
///
/// Whatever the setting, a commit that changes the registry (a registration,
/// grant, revocation or removal) is flushed to the device before it is
/// acknowledged. The setting applies to commits that only append audit
/// entries of re-encryptions and denials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: every commit is flushed before it returns; it
    /// survives a crash of the process and a power loss. The default.
    #[default]
    PowerLoss,
    /// Re-encryption audit batches use `synchronous = NORMAL` (WAL): they
    /// survive a crash of the process, but the last ones before a power loss
    /// or kernel crash may be lost (never reordered: the chain stays intact,
    /// its tail may be missing). Registry changes are still flushed.
    ProcessCrash,
}

/// An SRS store in one SQLite database file.
///
/// Opening takes an exclusive lock on `<path>-lock` (a second open of the
/// same file, from this process or another, fails with
/// [`StoreErrorKind::Locked`] after waiting a quarter of a second for it);
/// the lock is released when the store is dropped.
#[derive(Debug)]
pub struct SqliteStore {
    // The readers close first, so that the writer, closing last, folds the
    // WAL into the database file. Two, so that two threads read at once
    // (a long listing reads its next page while it checks one).
    readers: [Mutex<Connection>; 2],
    writer: Mutex<Connection>,
    path: PathBuf,
    durability: Durability,
    scrub_pending: AtomicBool,
    // Declared last: released after both connections are closed.
    _lock: File,
}

/// How long an open waits for the lock file before saying
/// [`StoreErrorKind::Locked`].
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);

/// Takes the exclusive lock on `lock`, retrying for [`LOCK_PATIENCE`]. A lock
/// is held by an open file description, and a child process the host is
/// starting shares its parent's descriptions from `fork` until `exec`
/// closes them: for that moment, a store the host has just dropped can
/// still look locked. A store really open elsewhere stays locked and is
/// reported after the wait.
fn lock_briefly(lock: &File, shown: &str) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::new(
                    StoreErrorKind::Locked,
                    format!("{shown} is open in another SRS{}", holder(lock)),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::with_source(format!("locking {shown}"), e));
            }
        }
    }
}

/// Writes this process's id into the lock file it now holds, so that an
/// open refused with [`StoreErrorKind::Locked`] can say who holds it. Only
/// informational: a failure to write is ignored.
fn record_holder(mut lock: &File) {
    use std::io::{Seek, Write};
    let _ = lock.set_len(0);
    let _ = lock.rewind();
    let _ = writeln!(lock, "{}", std::process::id());
}

/// Who holds the lock, as the holder wrote it (see [`record_holder`]):
/// " (held by process N)", "(held by this process)", or "" when the lock
/// file does not say.
fn holder(mut lock: &File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    let read = lock
        .rewind()
        .and_then(|()| lock.take(32).read_to_string(&mut text));
    match read.ok().and_then(|_| text.trim().parse::<u32>().ok()) {
        Some(pid) if pid == std::process::id() => {
            format!(" (held by this process, {pid}: drop the other handle first)")
        }
        Some(pid) => format!(" (held by process {pid})"),
        None => String::new(),
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, power-loss durable.
    ///
    /// # Errors
    /// As [`SqliteStore::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::PowerLoss)
    }

    /// Opens (or creates) the database at `path` with the given durability.
    ///
    /// # Errors
    /// [`StoreErrorKind::NotDurable`] for `""` and `":memory:"`;
    /// [`StoreErrorKind::Locked`] if another SRS holds the file;
    /// [`StoreErrorKind::UnsupportedVersion`] for a database of another
    /// schema version; [`StoreErrorKind::Io`] if the file cannot be opened or
    /// is not a database (the message names the file).
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if shown.is_empty() || shown == ":memory:" {
            return Err(StoreError::new(
                StoreErrorKind::NotDurable,
                format!("{shown:?} is not a durable location for an SRS database"),
            ));
        }
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push("-lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StoreError::with_source(format!("opening the lock file of {shown}"), e))?;
        lock_briefly(&lock, &shown)?;
        record_holder(&lock);
        // No URI names: a path is a file.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let ctx = |what: &str| format!("{what} {shown}");
        let writer = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::with_source(ctx("opening"), e))?;
        init(&writer).map_err(|e| match e {
            InitError::Sql(what, e) => StoreError::with_source(ctx(what), e),
            InitError::Store(e) => StoreError::new(e.kind(), ctx(&e.to_string())),
        })?;
        let reader = || {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| StoreError::with_source(ctx("opening a reader of"), e))
        };
        let readers = [reader()?, reader()?];
        // Plans that do not depend on the values bound: otherwise SQLite
        // prepares a statement anew whenever a value it planned with
        // changes (a `LIMIT ?`, or a `column = ?` bound to 0 or 1), which
        // the hot reads do at every call.
        for conn in [&writer, &readers[0], &readers[1]] {
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
                .map_err(|e| StoreError::with_source(ctx("configuring"), e))?;
        }
        let store = Self {
            readers: readers.map(Mutex::new),
            writer: Mutex::new(writer),
            path: path.to_owned(),
            durability,
            scrub_pending: AtomicBool::new(false),
            _lock: lock,
        };
        store.set_sync(durability == Durability::PowerLoss)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error for a failed `what` on this file. The message is made
    /// only when there is an error (reads on the hot path call this).
    fn err<'a>(&'a self, what: &'a str) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
        move |e| StoreError::with_source(format!("{what} ({})", self.path.display()), e)
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic inside rusqlite while holding the lock leaves at worst an
        // open transaction, which SQLite rolls back when the next one begins.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reader no other thread is using, the one this thread used last
    /// first (its page cache holds what this thread reads); else the one
    /// this thread used last, once free.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        thread_local!(static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });
        let last = LAST.with(std::cell::Cell::get) & 1;
        for n in [last, last ^ 1] {
            let Some(conn) = self.readers.get(n) else {
                continue;
            };
            let guard = match conn.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            LAST.with(|l| l.set(n));
            return guard;
        }
        let [first, _] = &self.readers;
        first.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rows `(integer, blob)` of `sql`, each blob made a hash by `hash`.
    fn keyed_blobs(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        what: &'static str,
        hash: impl Fn(&[u8]) -> Result<[u8; 32], StoreError>,
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let context = format!("reading the {what}");
        let reading = || self.err(&context);
        let conn = self.reader();
        let mut q = conn.prepare_cached(sql).map_err(reading())?;
        let mut rows = q.query(args).map_err(reading())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(reading())? {
            let key: i64 = r.get(0).map_err(reading())?;
            let blob = r.get_ref(1).map_err(reading())?;
            let blob = blob
                .as_blob()
                .map_err(|_| StoreError::corrupt(format!("corrupt {what} row")))?;
            out.push((to_u64(key), hash(blob)?));
        }
        Ok(out)
    }

    fn set_sync(&self, full: bool) -> Result<(), StoreError> {
        self.writer()
            .pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })
            .map_err(self.err("setting synchronous"))
    }

    /// Copies the WAL into the database and truncates it, so that a deleted
    /// secret is left in neither. Fails softly (retried after the next
    /// commit) while a reader holds an old snapshot.
    fn scrub(&self) -> Result<(), StoreError> {
        let busy: i64 = self
            .writer()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(self.err("checkpointing the WAL"))?;
        self.scrub_pending.store(busy != 0, Ordering::SeqCst);
        Ok(())
    }

    fn rows_after(
        &self,
        generation: Option<u64>,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.reader();
        let mut q = conn
            .prepare_cached(
                "SELECT kind, key, generation, body, secret, mac FROM registry
                 WHERE ?1 IS NULL OR generation > ?1 ORDER BY kind, key",
            )
            .map_err(self.err("reading the registry"))?;
        let mut rows = q
            .query(params![generation.map(to_i64)])
            .map_err(self.err("reading the registry"))?;
        while let Some(r) = rows.next().map_err(self.err("reading the registry"))? {
            let get = |e| StoreError::with_source("reading the registry", e);
            let kind: i64 = r.get(0).map_err(get)?;
            let row = StoredRow {
                kind: u8::try_from(kind)
                    .map_err(|_| StoreError::corrupt("corrupt registry row"))?,
                key: r.get(1).map_err(get)?,
                generation: to_u64(r.get(2).map_err(get)?),
                body: r.get(3).map_err(get)?,
                secret: r.get(4).map_err(get)?,
                mac: hash32(&r.get::<_, Vec<u8>>(5).map_err(get)?, "registry")?,
            };
            each(row)?;
        }
        Ok(())
    }

    fn write(&self, c: &Commit) -> Result<(), StoreError> {
        let relaxed = self.durability == Durability::ProcessCrash;
        let sync = c.sync || c.prune.is_some();
        if relaxed && sync {
            self.set_sync(true)?;
        }
        let res = {
            let mut conn = self.writer();
            conn.transaction()
                .and_then(|tx| {
                    write_commit(&tx, c)?;
                    tx.commit()
                })
                .map_err(self.err("committing"))
        };
        if relaxed && sync {
            self.set_sync(false)?;
        }
        res?;
        if c.scrub || c.prune.is_some() || self.scrub_pending.load(Ordering::SeqCst) {
            self.scrub()?;
        }
        Ok(())
    }
}

enum InitError {
    Sql(&'static str, rusqlite::Error),
    Store(StoreError),
}

fn sql(what: &'static str) -> impl Fn(rusqlite::Error) -> InitError {
    move |e| InitError::Sql(what, e)
}

fn init(conn: &Connection) -> Result<(), InitError> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql("setting WAL on"))?;
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(sql("setting secure_delete on"))?;
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(sql("reading"))?;
    if has_meta {
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("reading the schema version of"))?;
        match version {
            Some(SCHEMA_VERSION) => {}
            // Schema 6 keeps the entries' leaf hashes (level 0 of the
            // Merkle tree) and the level above the blocks in tiles of
            // sixteen (schema 5 kept each leaf hash as a node, 4 none):
            // built from the node table (with the leaf hashes of 4).
            Some(5) => upgrade(conn, false)?,
            Some(4) => upgrade(conn, true)?,
            // Schema 4 adds the Merkle tree's node table (created below,
            // empty: proofs hash the entries of before until the SRS's
            // next commits fill it).
            Some(3) => {
                refuse_archived_chain(conn)?;
                upgrade(conn, true)?;
            }
            Some(2) => migrate_2_to_3(conn)?,
            Some(1) => {
                return Err(InitError::Store(StoreError::new(
                    StoreErrorKind::UnsupportedVersion,
                    "schema version 1 (sesphr 0.1, unauthenticated rows) is not read by this \
                     version (schema 2): export its audit log with sesphr 0.1, then register \
                     patients, users and grants again in a new database; refusing",
                )));
            }
            Some(v) => {
                return Err(InitError::Store(StoreError::new(
                    StoreErrorKind::UnsupportedVersion,
                    format!("unknown schema version {v} (this version reads 2 to 6) in"),
                )));
            }
            None => {
                return Err(InitError::Store(StoreError::corrupt(
                    "schema version missing in",
                )));
            }
        }
    }
    conn.execute_batch(SCHEMA)
        .map_err(sql("creating the schema of"))?;
    if !has_meta {
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            params![SCHEMA_VERSION],
        )
        .map_err(sql("writing the schema version of"))?;
    }
    Ok(())
}

/// Schema 2 to 3: the disclosure index, built from the audit log, and the
/// new version, in one transaction.
fn migrate_2_to_3(conn: &Connection) -> Result<(), InitError> {
    let tx = conn
        .unchecked_transaction()
        .map_err(sql("migrating the schema of"))?;
    tx.execute_batch(SCHEMA)
        .map_err(sql("migrating the schema of"))?;
    each_entry(&tx, |_, entry| {
        let entry = AuditEntry::from_bytes(entry).map_err(|_| {
            InitError::Store(StoreError::corrupt("an audit entry does not decode in"))
        })?;
        index_disclosure(&tx, &entry).map_err(sql("migrating the schema of"))
    })?;
    insert_leaves(&tx)?;
    insert_tiles(&tx)?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        params![SCHEMA_VERSION],
    )
    .map_err(sql("migrating the schema of"))?;
    tx.commit().map_err(sql("migrating the schema of"))
}

/// A schema-3 store whose audit was archived (pruned) is refused before
/// anything is written: its Merkle tree cannot be rebuilt without the
/// archived entries.
fn refuse_archived_chain(conn: &Connection) -> Result<(), InitError> {
    let head: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'head'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql("reading the chain head of"))?;
    let base = head
        .as_deref()
        .map(ChainHead::from_bytes)
        .transpose()
        .map_err(InitError::Store)?
        .map_or(0, |h| h.base_seq);
    if base > 0 {
        return Err(InitError::Store(StoreError::new(
            StoreErrorKind::UnsupportedVersion,
            format!(
                "schema version 3 with its audit archived up to entry {base}: the Merkle tree \
                 of schema 4 cannot be rebuilt without the archived entries; keep using the \
                 sesphr version that wrote it, or start a new store; refusing, unchanged,"
            ),
        )));
    }
    Ok(())
}

/// Schema 3, 4 or 5 to this code's, in one transaction: the leaf hash of
/// every entry into the node table (`leaves`, from 3 or 4), the tiles of
/// the node table, the schema version.
fn upgrade(conn: &Connection, leaves: bool) -> Result<(), InitError> {
    let tx = conn
        .unchecked_transaction()
        .map_err(sql("migrating the schema of"))?;
    tx.execute_batch(SCHEMA)
        .map_err(sql("migrating the schema of"))?;
    if leaves {
        insert_leaves(&tx)?;
    }
    insert_tiles(&tx)?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        params![SCHEMA_VERSION],
    )
    .map_err(sql("migrating the schema of"))?;
    tx.commit().map_err(sql("migrating the schema of"))
}

/// Level 0 of the Merkle tree (each entry's leaf hash, at its position
/// `seq - 1`) for every entry the audit table holds.
fn insert_leaves(tx: &Connection) -> Result<(), InitError> {
    let mut put = tx
        .prepare("INSERT OR REPLACE INTO tree (level, idx, hash) VALUES (0, ?1, ?2)")
        .map_err(sql("migrating the schema of"))?;
    each_entry(tx, |seq, entry| {
        let leaf = crate::merkle::leaf_hash(entry);
        put.execute(params![seq - 1, &leaf[..]])
            .map(|_| ())
            .map_err(sql("migrating the schema of"))
    })
}

/// Every whole tile of the node table ([`TILE_LEVELS`]), from its nodes;
/// the leaf hashes a tile holds then leave the node table.
fn insert_tiles(tx: &Connection) -> Result<(), InitError> {
    for level in TILE_LEVELS {
        let table = tile_table(level).ok_or(InitError::Sql(
            "migrating the schema of",
            rusqlite::Error::InvalidQuery,
        ))?;
        let mut put = tx
            .prepare(&format!(
                "INSERT OR REPLACE INTO {table} (idx, hashes) VALUES (?1, ?2)"
            ))
            .map_err(sql("migrating the schema of"))?;
        let mut tile = TileBuilder::default();
        each_row(
            tx,
            &format!("SELECT idx, hash FROM tree WHERE level = {level} ORDER BY idx"),
            "corrupt tree row in",
            |idx, hash| {
                if let Some((t, bytes)) = tile.push(to_u64(idx), hash) {
                    put.execute(params![to_i64(t), bytes])
                        .map_err(sql("migrating the schema of"))?;
                }
                Ok(())
            },
        )?;
    }
    tx.execute(
        "DELETE FROM tree WHERE level = 0 \
         AND EXISTS (SELECT 1 FROM tiles_0 t WHERE t.idx = tree.idx / 16)",
        [],
    )
    .map_err(sql("migrating the schema of"))?;
    Ok(())
}

/// Calls `f` with each audit row's sequence number and stored entry, in
/// order (a migration's walk).
fn each_entry(
    tx: &Connection,
    f: impl FnMut(i64, &[u8]) -> Result<(), InitError>,
) -> Result<(), InitError> {
    each_row(
        tx,
        "SELECT seq, entry FROM audit ORDER BY seq",
        "corrupt audit row in",
        f,
    )
}

/// Calls `f` with each `(integer, blob)` row of `query`, in its order (a
/// migration's walk); a row without a blob is `corrupt`.
fn each_row(
    tx: &Connection,
    query: &str,
    corrupt: &'static str,
    mut f: impl FnMut(i64, &[u8]) -> Result<(), InitError>,
) -> Result<(), InitError> {
    let mut q = tx.prepare(query).map_err(sql("migrating the schema of"))?;
    let mut rows = q.query([]).map_err(sql("migrating the schema of"))?;
    while let Some(r) = rows.next().map_err(sql("migrating the schema of"))? {
        let key: i64 = r.get(0).map_err(sql("migrating the schema of"))?;
        let blob = r.get_ref(1).map_err(sql("migrating the schema of"))?;
        let blob = blob
            .as_blob()
            .map_err(|_| InitError::Store(StoreError::corrupt(corrupt)))?;
        f(key, blob)?;
    }
    Ok(())
}

fn index_disclosure(tx: &Connection, e: &AuditEntry) -> rusqlite::Result<()> {
    if let Some(p) = disclosed(e) {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO disclosures (patient, time, seq) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![p.as_bytes(), clamp(e.time), to_i64(e.seq)])?;
    }
    Ok(())
}

/// A time as SQLite's signed integer, saturating (times past 2⁶³ compare as
/// the largest).
fn clamp(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn write_commit(tx: &rusqlite::Transaction<'_>, c: &Commit) -> rusqlite::Result<()> {
    {
        let mut q = tx.prepare_cached(
            "INSERT OR REPLACE INTO registry (kind, key, generation, body, secret, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in &c.rows {
            q.execute(params![
                i64::from(r.kind),
                r.key,
                to_i64(r.generation),
                r.body,
                r.secret,
                &r.mac[..]
            ])?;
        }
    }
    {
        let mut q =
            tx.prepare_cached("INSERT INTO audit (seq, entry, hash) VALUES (?1, ?2, ?3)")?;
        for a in &c.audit {
            q.execute(params![
                to_i64(a.entry.seq),
                a.entry.to_bytes(),
                &a.hash[..]
            ])?;
            index_disclosure(tx, &a.entry)?;
        }
    }
    if !c.nodes.is_empty() {
        let mut q = tx
            .prepare_cached("INSERT OR REPLACE INTO tree (level, idx, hash) VALUES (?1, ?2, ?3)")?;
        for n in &c.nodes {
            q.execute(params![n.level, to_i64(n.index), &n.hash[..]])?;
        }
        // Each tile this commit completes, from the node table as it now
        // stands (its first nodes may come from earlier commits).
        for n in &c.nodes {
            if TILE_LEVELS.contains(&n.level) && n.index % TILE_WIDTH == TILE_WIDTH - 1 {
                write_tile(tx, n.level, n.index / TILE_WIDTH)?;
            }
        }
    }
    if let Some(cp) = &c.checkpoint {
        tx.prepare_cached("INSERT OR REPLACE INTO checkpoints (seq, checkpoint) VALUES (?1, ?2)")?
            .execute(params![to_i64(cp.seq), cp.to_bytes()])?;
    }
    if c.scrub {
        // The registry snapshot holds the secret that leaves.
        tx.execute("DELETE FROM snapshot", [])?;
    }
    if let Some(upto) = c.prune {
        tx.execute("DELETE FROM audit WHERE seq <= ?1", params![to_i64(upto)])?;
        tx.execute(
            "DELETE FROM disclosures WHERE seq <= ?1",
            params![to_i64(upto)],
        )?;
    }
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('head', ?1)")?
        .execute(params![c.head.to_bytes()])?;
    Ok(())
}

/// Tile `t` of `level` from its nodes in the node table, if they are all
/// there (else none is written: readers then read the nodes). The leaf
/// hashes a tile of level 0 holds then leave the node table.
fn write_tile(tx: &rusqlite::Transaction<'_>, level: u32, t: u64) -> rusqlite::Result<()> {
    // The level written in, not bound (see `tree_ranges`).
    let mut q = tx.prepare_cached(&format!(
        "SELECT idx, hash FROM tree WHERE level = {level} AND idx >= ?1 AND idx <= ?2"
    ))?;
    let (first, last) = (t * TILE_WIDTH, t * TILE_WIDTH + TILE_WIDTH - 1);
    let mut rows = q.query(params![to_i64(first), to_i64(last)])?;
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::with_capacity(TILE_BOTTOM);
    while let Some(r) = rows.next()? {
        nodes.push((to_u64(r.get(0)?), r.get(1)?));
    }
    nodes.sort_unstable_by_key(|n| n.0);
    let mut tile = TileBuilder::default();
    for (idx, hash) in nodes {
        if let Some((_, hashes)) = tile.push(idx, &hash) {
            let table = tile_table(level).ok_or(rusqlite::Error::InvalidQuery)?;
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO {table} (idx, hashes) VALUES (?1, ?2)"
            ))?
            .execute(params![to_i64(t), hashes])?;
            if level == 0 {
                tx.prepare_cached("DELETE FROM tree WHERE level = 0 AND idx >= ?1 AND idx <= ?2")?
                    .execute(params![to_i64(first), to_i64(last)])?;
            }
        }
    }
    Ok(())
}

/// The first `limit` audit records of `rows` (`seq, entry, hash`).
///
/// The statements stop reading at `limit` here rather than with `LIMIT ?`:
/// SQLite prepares a statement anew whenever a value bound to its `LIMIT`
/// changes, which is at every call.
fn audit_records(
    mut rows: rusqlite::Rows<'_>,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let get = |e| StoreError::with_source("reading the audit log", e);
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(r) = rows.next().map_err(get)? else {
            break;
        };
        let seq: i64 = r.get(0).map_err(get)?;
        let corrupt = |_| StoreError::corrupt(format!("audit row {seq} holds no blob"));
        let entry = r.get_ref(1).map_err(get)?.as_blob().map_err(corrupt)?;
        let entry = AuditEntry::from_bytes(entry)
            .map_err(|_| StoreError::corrupt(format!("audit entry {seq} does not decode")))?;
        if to_u64(seq) != entry.seq {
            return Err(StoreError::corrupt("corrupt audit row"));
        }
        let hash = r.get_ref(2).map_err(get)?.as_blob().map_err(corrupt)?;
        out.push(AuditRecord {
            entry,
            hash: hash32(hash, "audit")?,
        });
    }
    Ok(out)
}

fn decode_checkpoint(b: &[u8]) -> Result<Checkpoint, StoreError> {
    Checkpoint::from_bytes(b).map_err(|_| StoreError::corrupt("corrupt checkpoint row"))
}

impl Store for SqliteStore {
    fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        let v: Option<Vec<u8>> = self
            .reader()
            .query_row("SELECT value FROM meta WHERE key = 'head'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("reading the chain head"))?;
        v.as_deref().map(ChainHead::from_bytes).transpose()
    }

    fn rows(
        &self,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.rows_after(None, each)
    }

    fn rows_since(
        &self,
        generation: u64,
        each: &mut dyn FnMut(StoredRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.rows_after(Some(generation), each)
    }

    fn commit(&self, build: &mut Build<'_>) -> Result<bool, StoreError> {
        commit_alone(self, build, |c| self.write(c))
    }

    fn registry_snapshot(
        &self,
        each: &mut dyn FnMut(Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let conn = self.reader();
        let mut q = conn
            .prepare_cached("SELECT data FROM snapshot ORDER BY part")
            .map_err(self.err("reading the registry snapshot"))?;
        let mut rows = q
            .query([])
            .map_err(self.err("reading the registry snapshot"))?;
        let mut any = false;
        while let Some(r) = rows
            .next()
            .map_err(self.err("reading the registry snapshot"))?
        {
            any = true;
            each(
                r.get(0)
                    .map_err(self.err("reading the registry snapshot"))?,
            )?;
        }
        Ok(any)
    }

    fn put_registry_snapshot(
        &self,
        next: &mut dyn FnMut() -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<bool, StoreError> {
        {
            let mut conn = self.writer();
            let tx = conn
                .transaction()
                .map_err(self.err("writing the registry snapshot"))?;
            tx.execute("DELETE FROM snapshot", [])
                .map_err(self.err("writing the registry snapshot"))?;
            {
                let mut q = tx
                    .prepare_cached("INSERT INTO snapshot (part, data) VALUES (?1, ?2)")
                    .map_err(self.err("writing the registry snapshot"))?;
                let mut i = 0i64;
                while let Some(part) = next()? {
                    q.execute(params![i, part])
                        .map_err(self.err("writing the registry snapshot"))?;
                    i += 1;
                }
            }
            tx.commit()
                .map_err(self.err("writing the registry snapshot"))?;
        }
        // The snapshot replaced held secrets: out of the WAL too.
        self.scrub()?;
        Ok(true)
    }

    fn audit(&self, from: u64, to: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let conn = self.reader();
        let mut q = conn
            .prepare_cached(
                "SELECT seq, entry, hash FROM audit WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
            )
            .map_err(self.err("reading the audit log"))?;
        let rows = q
            .query(params![to_i64(from), to_i64(to)])
            .map_err(self.err("reading the audit log"))?;
        audit_records(rows, limit)
    }

    fn audit_leaves(&self, from: u64, to: u64) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        self.keyed_blobs(
            "SELECT seq, entry FROM audit WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
            params![to_i64(from), to_i64(to)],
            "audit log",
            |entry| Ok(crate::merkle::leaf_hash(entry)),
        )
    }

    fn tree_ranges(
        &self,
        level: u32,
        ranges: &[(u64, u64)],
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        // One statement per chunk of up to 64 ranges, padded to a power of
        // two with empty ranges (at most seven statement shapes cached). No
        // ORDER BY: with it SQLite prepares the statement anew at every
        // call (three times slower); sorted here instead.
        const CHUNK: usize = 64;
        let mut out = Vec::new();
        for chunk in ranges.chunks(CHUNK) {
            let width = chunk.len().next_power_of_two();
            let values = vec!["(?,?)"; width].join(",");
            // The level written in, not bound: SQLite prepares anew a
            // statement whose `column = ?` was bound to 0 or 1 when it is
            // bound again.
            let sql = format!(
                "WITH w(lo, hi) AS (VALUES {values}) \
                 SELECT t.idx, t.hash FROM w JOIN tree t \
                 ON t.level = {level} AND t.idx >= w.lo AND t.idx <= w.hi"
            );
            let mut args: Vec<i64> = Vec::with_capacity(2 * width);
            for n in 0..width {
                let (from, to) = chunk
                    .get(n)
                    .map_or((0, -1), |&(f, t)| (to_i64(f), to_i64(t)));
                args.push(from);
                args.push(to);
            }
            out.extend(self.keyed_blobs(
                &sql,
                rusqlite::params_from_iter(args),
                "audit tree",
                |h| hash32(h, "audit tree"),
            )?);
        }
        // Leaf hashes are kept in their block's tile once it is whole.
        if level == 0 {
            let mut tiles: Vec<u64> = ranges
                .iter()
                .flat_map(|&(from, to)| from / TILE_WIDTH..=to / TILE_WIDTH)
                .collect();
            tiles.sort_unstable();
            tiles.dedup();
            for (t, bytes) in self.tiles(0, &tiles)? {
                for i in t * TILE_WIDTH..(t + 1) * TILE_WIDTH {
                    if ranges.iter().any(|&(from, to)| (from..=to).contains(&i))
                        && let Some(h) = tile_node(&bytes, 0, t, 0, i)
                    {
                        out.push((i, h));
                    }
                }
            }
        }
        out.sort_unstable_by_key(|&(i, _)| i);
        out.dedup_by_key(|&mut (i, _)| i);
        Ok(out)
    }

    fn keeps_tiles(&self) -> bool {
        true
    }

    fn untiled(&self, level: u32, from: u64, to: u64) -> Result<u64, StoreError> {
        let n: i64 = self
            .reader()
            .query_row(
                "SELECT count(*) FROM tree WHERE level = ?1 AND idx >= ?2 AND idx < ?3",
                params![level, to_i64(from), to_i64(to)],
                |r| r.get(0),
            )
            .map_err(self.err("reading the audit tree"))?;
        Ok(to_u64(n))
    }

    fn tiles(&self, level: u32, wanted: &[u64]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(table) = tile_table(level) else {
            return Ok(Vec::new());
        };
        // One statement per chunk of up to 64 tiles, padded to a power of
        // two with a position that matches nothing; no ORDER BY.
        const CHUNK: usize = 64;
        let conn = self.reader();
        let reading = || self.err("reading the audit tree's tiles");
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(CHUNK) {
            let width = chunk.len().next_power_of_two();
            let values = vec!["(?)"; width].join(",");
            let mut q = conn
                .prepare_cached(&format!(
                    "WITH w(idx) AS (VALUES {values}) \
                     SELECT t.idx, t.hashes FROM w JOIN {table} t ON t.idx = w.idx"
                ))
                .map_err(reading())?;
            let args = (0..width).map(|n| chunk.get(n).map_or(-1, |&t| to_i64(t)));
            let mut rows = q
                .query(rusqlite::params_from_iter(args))
                .map_err(reading())?;
            while let Some(r) = rows.next().map_err(reading())? {
                let idx: i64 = r.get(0).map_err(reading())?;
                let hashes = r
                    .get_ref(1)
                    .map_err(reading())?
                    .as_blob()
                    .map_err(|_| StoreError::corrupt("corrupt tile row"))?;
                out.push((to_u64(idx), hashes.to_vec()));
            }
        }
        Ok(out)
    }

    fn tree_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        // One statement (and one read snapshot) per chunk of up to 128
        // nodes, padded to a power of two with positions that match
        // nothing, so that at most eight statement shapes are cached.
        const CHUNK: usize = 128;
        let conn = self.reader();
        let mut out = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(CHUNK) {
            let width = chunk.len().next_power_of_two();
            let values = (0..width)
                .map(|n| format!("({n},?,?)"))
                .collect::<Vec<_>>()
                .join(",");
            // Each row says which slot it fills: no ORDER BY (a temporary
            // B-tree per statement).
            let sql = format!(
                "WITH w(n, level, idx) AS (VALUES {values}) \
                 SELECT w.n, t.hash FROM w JOIN tree t \
                 ON t.level = w.level AND t.idx = w.idx"
            );
            let mut q = conn
                .prepare_cached(&sql)
                .map_err(self.err("reading the audit tree"))?;
            let mut args: Vec<i64> = Vec::with_capacity(2 * width);
            for n in 0..width {
                let (level, index) = chunk
                    .get(n)
                    .map_or((-1, -1), |&(l, i)| (i64::from(l), to_i64(i)));
                args.push(level);
                args.push(index);
            }
            let mut rows = q
                .query(rusqlite::params_from_iter(args))
                .map_err(self.err("reading the audit tree"))?;
            let mut got = vec![None; chunk.len()];
            while let Some(r) = rows.next().map_err(self.err("reading the audit tree"))? {
                let n: i64 = r.get(0).map_err(self.err("reading the audit tree"))?;
                let h: Option<Vec<u8>> = r.get(1).map_err(self.err("reading the audit tree"))?;
                if let (Some(slot), Some(h)) =
                    (usize::try_from(n).ok().and_then(|n| got.get_mut(n)), h)
                {
                    *slot = Some(hash32(&h, "audit tree")?);
                }
            }
            out.extend(got);
        }
        drop(conn);
        // Leaf hashes are kept in their block's tile once it is whole.
        let mut tiles: Vec<u64> = wanted
            .iter()
            .zip(&out)
            .filter(|((level, _), h)| *level == 0 && h.is_none())
            .map(|((_, i), _)| i / TILE_WIDTH)
            .collect();
        if !tiles.is_empty() {
            tiles.sort_unstable();
            tiles.dedup();
            let mut read = self.tiles(0, &tiles)?;
            read.sort_unstable_by_key(|t| t.0);
            for (&(level, i), h) in wanted.iter().zip(out.iter_mut()) {
                if level != 0 || h.is_some() {
                    continue;
                }
                let t = i / TILE_WIDTH;
                if let Ok(k) = read.binary_search_by_key(&t, |t| t.0) {
                    *h = read.get(k).and_then(|r| tile_node(&r.1, 0, t, 0, i));
                }
            }
        }
        Ok(out)
    }

    fn audit_last_seq(&self) -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = self
            .reader()
            .query_row("SELECT max(seq) FROM audit", [], |r| r.get(0))
            .map_err(self.err("reading the audit log"))?;
        Ok(v.map(to_u64))
    }

    fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let v: Option<Vec<u8>> = self
            .reader()
            .query_row(
                "SELECT checkpoint FROM checkpoints ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading checkpoints"))?;
        v.as_deref().map(decode_checkpoint).transpose()
    }

    fn checkpoint_at(&self, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
        let v: Option<(i64, Vec<u8>)> = self
            .reader()
            .query_row(
                "SELECT seq, checkpoint FROM checkpoints WHERE seq = ?1",
                params![to_i64(seq)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading checkpoints"))?;
        match v {
            None => Ok(None),
            Some((s, b)) => {
                let cp = decode_checkpoint(&b)?;
                if to_u64(s) != cp.seq {
                    return Err(StoreError::corrupt("corrupt checkpoint row"));
                }
                Ok(Some(cp))
            }
        }
    }

    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError> {
        let conn = self.reader();
        let mut q = conn
            .prepare_cached("SELECT seq, checkpoint FROM checkpoints WHERE seq >= ?1 ORDER BY seq")
            .map_err(self.err("reading checkpoints"))?;
        let mut rows = q
            .query(params![to_i64(from)])
            .map_err(self.err("reading checkpoints"))?;
        let mut out = Vec::new();
        // No `LIMIT ?` (see `audit_records`).
        while out.len() < limit {
            let Some(r) = rows.next().map_err(self.err("reading checkpoints"))? else {
                break;
            };
            let get = |e| StoreError::with_source("reading checkpoints", e);
            let seq: i64 = r.get(0).map_err(get)?;
            let cp = decode_checkpoint(&r.get::<_, Vec<u8>>(1).map_err(get)?)?;
            if to_u64(seq) != cp.seq {
                return Err(StoreError::corrupt("corrupt checkpoint row"));
            }
            out.push(cp);
        }
        Ok(out)
    }

    fn checkpoint_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .reader()
            .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))
            .map_err(self.err("reading checkpoints"))?;
        Ok(to_u64(n))
    }

    fn disclosure_index(&self, upto: u64, each: &mut IndexVisit<'_>) -> Result<(), StoreError> {
        let conn = self.reader();
        let mut q = conn
            .prepare("SELECT patient, time, seq FROM disclosures WHERE seq <= ?1")
            .map_err(self.err("reading the disclosure index"))?;
        let mut rows = q
            .query(params![to_i64(upto)])
            .map_err(self.err("reading the disclosure index"))?;
        let get = |e| StoreError::with_source("reading the disclosure index", e);
        while let Some(r) = rows.next().map_err(get)? {
            let p: Vec<u8> = r.get(0).map_err(get)?;
            let t: i64 = r.get(1).map_err(get)?;
            let s: i64 = r.get(2).map_err(get)?;
            each(&p, to_u64(t), to_u64(s))?;
        }
        Ok(())
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
        let conn = self.reader();
        let mut q = conn
            .prepare_cached(
                "SELECT a.seq, a.entry, a.hash FROM disclosures d JOIN audit a ON a.seq = d.seq
                 WHERE d.patient = ?1 AND d.time >= ?2 AND d.time <= ?3
                   AND (d.time > ?4 OR (d.time = ?4 AND d.seq > ?5))
                 ORDER BY d.time, d.seq",
            )
            .map_err(self.err("reading the disclosure index"))?;
        let (t, seq) = after.map_or((clamp(from), 0), |(t, s)| (clamp(t), to_i64(s)));
        let rows = q
            .query(params![patient.as_bytes(), clamp(from), clamp(to), t, seq])
            .map_err(self.err("reading the disclosure index"))?;
        audit_records(rows, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tile_level_has_its_table_and_no_other_level_one() {
        for level in 0..64 {
            let table = tile_table(level);
            assert_eq!(table.is_some(), TILE_LEVELS.contains(&level), "{level}");
            if let Some(t) = table {
                assert!(SCHEMA.contains(&format!("CREATE TABLE IF NOT EXISTS {t} (")));
            }
        }
    }
}
