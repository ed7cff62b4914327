//! The embedded default store: one SQLite database file (bundled SQLite, WAL
//! journal, by default `synchronous = FULL`: a transaction is on disk before
//! `apply` returns).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    AuditHead, AuditRecord, GrantRecord, GrantState, PatientRecord, PortionRecord, Store,
    StoreError, StoreOp, StoredState, UserRecord, UserStatus,
};
use crate::ids::{Identity, PortionLabel};
use crate::keys::{PortionPublicKey, PublicKey};
use crate::srs::{AuditEntry, Role, Scope};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    identity TEXT PRIMARY KEY, role TEXT NOT NULL, public_key BLOB NOT NULL,
    registered_at INTEGER NOT NULL, removed_at INTEGER);
CREATE TABLE IF NOT EXISTS patients (identity TEXT PRIMARY KEY, registered_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS portions (
    point BLOB PRIMARY KEY, patient TEXT NOT NULL, portion_key BLOB NOT NULL, registered_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    patient TEXT NOT NULL, label TEXT NOT NULL, epoch INTEGER NOT NULL, user TEXT NOT NULL,
    scope_since INTEGER, expiry INTEGER, granted_at INTEGER NOT NULL,
    revoked_at INTEGER, sealed_rekey BLOB,
    PRIMARY KEY (patient, label, epoch, user));
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, entry BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
";

/// When a committed transaction is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: every commit is flushed to the device before
    /// `apply` returns; it survives a crash of the process and a power loss.
    /// The default.
    #[default]
    PowerLoss,
    /// `synchronous = NORMAL` (WAL): a commit survives a crash of the process
    /// (it is in the operating system's cache) but the last commits before a
    /// power loss or kernel crash may be lost, never reordered: the audit
    /// chain stays intact, its tail may be missing. Several times faster for
    /// single re-encryptions; choose it only where that trade is acceptable.
    ProcessCrash,
}

/// An SRS store in one SQLite database file.
///
/// Times and sequence numbers are stored as SQLite integers (their `u64`
/// bits); re-encryption keys only as sealed blobs.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn err(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::with_source(what, e)
}

fn bad(what: &str) -> StoreError {
    StoreError::corrupt(format!("corrupt {what} row"))
}

fn to_i64(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn to_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

fn hash32(b: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
    b.try_into().map_err(|_| bad(what))
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// A [`StoreError`] if the file cannot be opened or is not an SRS
    /// database of a known schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::PowerLoss)
    }

    /// Opens (or creates) the database at `path` with the given durability.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        Self::from_connection(
            Connection::open(path).map_err(err("opening the database"))?,
            durability,
        )
    }

    /// A database in memory (tests).
    ///
    /// # Errors
    /// A [`StoreError`] if SQLite fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::from_connection(
            Connection::open_in_memory().map_err(err("opening the database"))?,
            Durability::PowerLoss,
        )
    }

    fn from_connection(conn: Connection, durability: Durability) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("setting WAL"))?;
        let sync = match durability {
            Durability::PowerLoss => "FULL",
            Durability::ProcessCrash => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(err("setting synchronous"))?;
        conn.execute_batch(SCHEMA)
            .map_err(err("creating the schema"))?;
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("reading the schema version"))?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION],
                )
                .map_err(err("writing the schema version"))?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => return Err(StoreError::new(format!("unknown schema version {v}"))),
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic inside rusqlite while holding the lock leaves at worst an
        // open transaction, which SQLite rolls back when the next one begins.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn apply_op(tx: &rusqlite::Transaction<'_>, op: &StoreOp) -> rusqlite::Result<()> {
    match op {
        StoreOp::PutUser(u) => {
            let removed = match u.status {
                UserStatus::Active => None,
                UserStatus::Removed(t) => Some(to_i64(t)),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO users (identity, role, public_key, registered_at, removed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                u.identity.as_str(),
                u.role.as_str(),
                &u.public_key.as_bytes()[..],
                to_i64(u.registered_at),
                removed
            ])?;
        }
        StoreOp::PutPatient(p) => {
            tx.prepare_cached("INSERT INTO patients (identity, registered_at) VALUES (?1, ?2)")?
                .execute(params![p.identity.as_str(), to_i64(p.registered_at)])?;
        }
        StoreOp::PutPortion(p) => {
            tx.prepare_cached("INSERT INTO portions (point, patient, portion_key, registered_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![
                    &p.key.key().as_bytes()[..],
                    p.patient.as_str(),
                    p.key.to_bytes(),
                    to_i64(p.registered_at)
                ])?;
        }
        StoreOp::PutGrant(g) => {
            let since = match g.scope {
                Scope::AllRecords => None,
                Scope::Since(t) => Some(to_i64(t)),
            };
            let (revoked, sealed) = match &g.state {
                GrantState::Active { sealed_rekey } => (None, Some(sealed_rekey.as_slice())),
                GrantState::Revoked(t) => (Some(to_i64(*t)), None),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO grants
                 (patient, label, epoch, user, scope_since, expiry, granted_at, revoked_at, sealed_rekey)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                g.patient.as_str(),
                g.label.as_str(),
                i64::from(g.epoch),
                g.user.as_str(),
                since,
                g.expiry.map(to_i64),
                to_i64(g.granted_at),
                revoked,
                sealed
            ])?;
        }
        StoreOp::AppendAudit(a) => {
            tx.prepare_cached(
                "INSERT INTO audit (seq, entry, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                to_i64(a.entry.seq),
                a.entry.to_bytes(),
                &a.prev_hash[..],
                &a.hash[..]
            ])?;
        }
        StoreOp::SetAuditHead(h) => {
            let mut v = Vec::with_capacity(72);
            v.extend_from_slice(&h.seq.to_be_bytes());
            v.extend_from_slice(&h.hash);
            v.extend_from_slice(&h.mac);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_head', ?1)",
            )?
            .execute(params![v])?;
        }
    }
    Ok(())
}

fn decode_head(v: &[u8]) -> Result<AuditHead, StoreError> {
    if v.len() != 72 {
        return Err(bad("audit head"));
    }
    let (seq, rest) = v.split_at(8);
    let (hash, mac) = rest.split_at(32);
    Ok(AuditHead {
        seq: u64::from_be_bytes(seq.try_into().map_err(|_| bad("audit head"))?),
        hash: hash32(hash, "audit head")?,
        mac: hash32(mac, "audit head")?,
    })
}

impl Store for SqliteStore {
    fn load(&self) -> Result<StoredState, StoreError> {
        let conn = self.conn();
        let mut st = StoredState::default();

        let mut q = conn
            .prepare("SELECT identity, role, public_key, registered_at, removed_at FROM users")
            .map_err(err("reading users"))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(err("reading users"))?;
        for row in rows {
            let (id, role, pk, at, removed) = row.map_err(err("reading users"))?;
            st.users.push(UserRecord {
                identity: Identity::new(id).map_err(|_| bad("user"))?,
                role: role.parse::<Role>().map_err(|_| bad("user"))?,
                public_key: PublicKey::from_slice(&pk).map_err(|_| bad("user"))?,
                status: removed.map_or(UserStatus::Active, |t| UserStatus::Removed(to_u64(t))),
                registered_at: to_u64(at),
            });
        }

        let mut q = conn
            .prepare("SELECT identity, registered_at FROM patients")
            .map_err(err("reading patients"))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(err("reading patients"))?;
        for row in rows {
            let (id, at) = row.map_err(err("reading patients"))?;
            st.patients.push(PatientRecord {
                identity: Identity::new(id).map_err(|_| bad("patient"))?,
                registered_at: to_u64(at),
            });
        }

        let mut q = conn
            .prepare("SELECT point, patient, portion_key, registered_at FROM portions")
            .map_err(err("reading portions"))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(err("reading portions"))?;
        for row in rows {
            let (point, patient, key, at) = row.map_err(err("reading portions"))?;
            let key = PortionPublicKey::from_bytes(&key).map_err(|_| bad("portion"))?;
            if key.key().as_bytes()[..] != point[..] {
                return Err(bad("portion"));
            }
            st.portions.push(PortionRecord {
                patient: Identity::new(patient).map_err(|_| bad("portion"))?,
                key,
                registered_at: to_u64(at),
            });
        }

        let mut q = conn
            .prepare(
                "SELECT patient, label, epoch, user, scope_since, expiry, granted_at, revoked_at, sealed_rekey FROM grants",
            )
            .map_err(err("reading grants"))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<Vec<u8>>>(8)?,
                ))
            })
            .map_err(err("reading grants"))?;
        for row in rows {
            let (patient, label, epoch, user, since, expiry, at, revoked, sealed) =
                row.map_err(err("reading grants"))?;
            let state = match (revoked, sealed) {
                (None, Some(sealed_rekey)) => GrantState::Active { sealed_rekey },
                (Some(t), None) => GrantState::Revoked(to_u64(t)),
                _ => return Err(bad("grant")),
            };
            st.grants.push(GrantRecord {
                patient: Identity::new(patient).map_err(|_| bad("grant"))?,
                label: PortionLabel::new(label).map_err(|_| bad("grant"))?,
                epoch: u32::try_from(epoch).map_err(|_| bad("grant"))?,
                user: Identity::new(user).map_err(|_| bad("grant"))?,
                scope: since.map_or(Scope::AllRecords, |t| Scope::Since(to_u64(t))),
                expiry: expiry.map(to_u64),
                granted_at: to_u64(at),
                state,
            });
        }

        let head: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE key = 'audit_head'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err("reading the audit head"))?;
        st.audit_head = head.as_deref().map(decode_head).transpose()?;
        Ok(st)
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(err("beginning a transaction"))?;
        for op in ops {
            apply_op(&tx, op).map_err(err("writing"))?;
        }
        tx.commit().map_err(err("committing"))
    }

    fn audit(&self, from_seq: u64) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut q = conn
            .prepare("SELECT seq, entry, prev_hash, hash FROM audit WHERE seq >= ?1 ORDER BY seq")
            .map_err(err("reading the audit log"))?;
        let rows = q
            .query_map(params![to_i64(from_seq)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(err("reading the audit log"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, entry, prev, hash) = row.map_err(err("reading the audit log"))?;
            let entry = AuditEntry::from_bytes(&entry)?;
            // The row's key must agree with the hashed entry.
            if to_u64(seq) != entry.seq {
                return Err(bad("audit"));
            }
            out.push(AuditRecord {
                entry,
                prev_hash: hash32(&prev, "audit")?,
                hash: hash32(&hash, "audit")?,
            });
        }
        Ok(out)
    }
}
