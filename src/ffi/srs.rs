//! The SRS from C.

use core::ffi::{c_char, c_int, c_uint, c_void};

use super::keys::sesphr_keypair;
use super::{
    Handle, array, array_out, bytes, c_str, fixed_out, free_handle, handle_ref, identity,
    into_handle, optional, out, put_buffer, run, sesphr_buffer, sesphr_result,
};
use crate::srs::{Checkpoint, Role, Scope, Srs, SrsConfig, StorageKey};
use crate::store::MemoryStore;
use crate::{
    EscrowKeyIssuer, Identity, PortionHeader, PortionLabel, PortionPublicKey, PublicKey, ReKey,
};

/// Length of the SRS storage key.
pub const SESPHR_STORAGE_KEY_LEN: usize = 32;
/// Length of an escrow master seed.
pub const SESPHR_ESCROW_SEED_LEN: usize = 32;
/// Length of an encoded checkpoint.
pub const SESPHR_CHECKPOINT_LEN: usize = 149;
// Every C constant is the Rust one: a change on either side fails the build.
const _: () = {
    assert!(SESPHR_CHECKPOINT_LEN == Checkpoint::LEN);
    assert!(SESPHR_STORAGE_KEY_LEN == StorageKey::LEN);
    assert!(SESPHR_ESCROW_SEED_LEN == EscrowKeyIssuer::SEED_LEN);
};

/// A Setup and Re-encryption Server. Safe to use from many threads at once.
pub struct sesphr_srs {
    _private: [u8; 0],
}

impl Handle for sesphr_srs {
    type Rust = Srs;
}

/// How to open an SRS from C. Zero-initialize it (`sesphr_srs_options o =
/// {0};`) for the defaults, then set what you need.
#[repr(C)]
pub struct sesphr_srs_options {
    /// 0: every commit is power-loss durable (the default). 1: audit entries
    /// of re-encryptions and denials survive a crash of the process but the
    /// last ones may be lost on power loss; registrations, grants,
    /// revocations and removals are power-loss durable either way. SQLite
    /// only.
    pub durability: c_uint,
    /// A checkpoint every this many audit entries (0: the default, 4096).
    pub checkpoint_every: u64,
    /// A checkpoint kept outside the database (`SESPHR_CHECKPOINT_LEN`
    /// bytes), or NULL: open refuses a database older than it
    /// (`ROLLED_BACK`) or whose history does not contain it (`DIVERGED`).
    pub required_checkpoint: *const u8,
    /// Length of `required_checkpoint`.
    pub required_checkpoint_len: usize,
    /// Called with every checkpoint (`SESPHR_CHECKPOINT_LEN` bytes, valid
    /// during the call) once it is durable, from the thread that committed
    /// it; NULL for none. Keep it short; do not call back into this SRS.
    pub on_checkpoint: Option<extern "C" fn(checkpoint: *const u8, len: usize, ctx: *mut c_void)>,
    /// Passed to `on_checkpoint` as is.
    pub on_checkpoint_ctx: *mut c_void,
}

/// A C callback and its context, called from whichever thread commits.
struct CheckpointCallback {
    f: extern "C" fn(*const u8, usize, *mut c_void),
    ctx: *mut c_void,
}

impl CheckpointCallback {
    fn call(&self, checkpoint: &[u8]) {
        (self.f)(checkpoint.as_ptr(), checkpoint.len(), self.ctx);
    }
}

// SAFETY: the host promises, by passing them in `sesphr_srs_options`, that
// the callback may be called with `ctx` from any thread (documented there).
unsafe impl Send for CheckpointCallback {}
// SAFETY: as above; the callback is only ever called, never mutated.
unsafe impl Sync for CheckpointCallback {}

/// Opens an SRS on `store` with the C caller's key, optional escrow seed and
/// options, into `*out`.
fn open_into(
    out_srs: &mut *mut sesphr_srs,
    store: std::sync::Arc<dyn crate::store::Store>,
    storage_key: *const u8,
    storage_key_len: usize,
    escrow_seed: *const u8,
    escrow_seed_len: usize,
    options: Option<&sesphr_srs_options>,
) -> Result<(), sesphr_result> {
    let key: &[u8; 32] = bytes(storage_key, storage_key_len)?
        .try_into()
        .map_err(|_| sesphr_result::InvalidLength)?;
    let mut cfg = SrsConfig::shared(store, StorageKey::from_bytes(key));
    if !escrow_seed.is_null() {
        let seed: &[u8; 32] = bytes(escrow_seed, escrow_seed_len)?
            .try_into()
            .map_err(|_| sesphr_result::InvalidLength)?;
        cfg = cfg.escrow(EscrowKeyIssuer::from_seed(seed));
    }
    if let Some(o) = options {
        if o.checkpoint_every > 0 {
            cfg = cfg.checkpoint_every(o.checkpoint_every);
        }
        if !o.required_checkpoint.is_null() {
            let cp =
                Checkpoint::from_bytes(bytes(o.required_checkpoint, o.required_checkpoint_len)?)?;
            cfg = cfg.require_checkpoint(cp);
        }
        if let Some(f) = o.on_checkpoint {
            let cb = CheckpointCallback {
                f,
                ctx: o.on_checkpoint_ctx,
            };
            cfg = cfg.on_checkpoint(move |cp| cb.call(&cp.to_bytes()));
        }
    }
    *out_srs = into_handle::<sesphr_srs>(Srs::open(cfg)?);
    Ok(())
}

/// Opens (or creates) an SRS on the SQLite database at `path` (a
/// NUL-terminated UTF-8 path), sealing re-encryption keys with the 32-byte
/// `storage_key`. `escrow_seed` is optional (NULL = no escrow mode): with a
/// 32-byte seed, `sesphr_srs_issue_keys` issues users' keys from it, which
/// makes the SRS a key-escrow holder. `options` may be NULL (defaults).
///
/// Errors: `STORE_LOCKED` if another SRS holds the file (in this process or
/// another); `STORE_NOT_DURABLE` for "" and ":memory:"; `STORE_VERSION` for
/// a database of another schema version; `STORE` (also when the library was
/// built without its `sqlite` feature); `TAMPERED` or `AUDIT_CHAIN_BROKEN`
/// if the database fails verification or the storage key is wrong;
/// `ROLLED_BACK`, `DIVERGED`, `INVALID_CHECKPOINT` against
/// `options->required_checkpoint`; `INVALID_ARGUMENT` for an unknown
/// durability.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_open_sqlite(
    path: *const c_char,
    storage_key: *const u8,
    storage_key_len: usize,
    escrow_seed: *const u8,
    escrow_seed_len: usize,
    options: *const sesphr_srs_options,
    out_srs: *mut *mut sesphr_srs,
) -> sesphr_result {
    open_named(
        path,
        (storage_key, storage_key_len),
        (escrow_seed, escrow_seed_len),
        options,
        out_srs,
        &|p: &str, opts: Option<&sesphr_srs_options>| {
            #[cfg(feature = "sqlite")]
            {
                use crate::store::{Durability, SqliteStore};
                let durability = match opts.map_or(0, |o| o.durability) {
                    0 => Durability::PowerLoss,
                    1 => Durability::ProcessCrash,
                    _ => return Err(sesphr_result::InvalidArgument),
                };
                let store =
                    SqliteStore::open_with(p, durability).map_err(crate::srs::SrsError::from)?;
                Ok(std::sync::Arc::new(store) as std::sync::Arc<dyn crate::store::Store>)
            }
            #[cfg(not(feature = "sqlite"))]
            {
                let _ = (p, opts);
                super::result::set_detail("this libsesphr was built without the sqlite feature");
                Err(sesphr_result::Store)
            }
        },
    )
}

/// Opens an SRS on a PostgreSQL database that several SRS processes share
/// (each process opens its own handle on the same database, with the same
/// `storage_key`). `conninfo` is a NUL-terminated libpq-style connection
/// string (e.g. `"host=/run/postgresql dbname=srs user=srs"`; add
/// `options='-c statement_timeout=5s'` for a statement timeout). The schema
/// is created or migrated. `escrow_seed` and `options` as for
/// `sesphr_srs_open_sqlite` (`options->durability` does not apply: every
/// commit is as durable as the server's `synchronous_commit`).
///
/// Errors: `STORE_CONNECTION` if the server cannot be reached (and later,
/// when a connection is lost or a statement times out: the next call
/// reconnects); `STORE_VERSION` for a newer schema; `STORE` for other
/// database failures, and when the library was built without its `postgres`
/// feature; the verification errors of `sesphr_srs_open_sqlite`.
///
/// A forking host opens it in each child after `fork()`: the handle's
/// database connections and its follower thread belong to the process that
/// opened it.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_open_postgres(
    conninfo: *const c_char,
    storage_key: *const u8,
    storage_key_len: usize,
    escrow_seed: *const u8,
    escrow_seed_len: usize,
    options: *const sesphr_srs_options,
    out_srs: *mut *mut sesphr_srs,
) -> sesphr_result {
    open_named(
        conninfo,
        (storage_key, storage_key_len),
        (escrow_seed, escrow_seed_len),
        options,
        out_srs,
        &|c: &str, _: Option<&sesphr_srs_options>| {
            #[cfg(feature = "postgres")]
            {
                let store =
                    crate::store::PostgresStore::open(c).map_err(crate::srs::SrsError::from)?;
                Ok(std::sync::Arc::new(store) as std::sync::Arc<dyn crate::store::Store>)
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = c;
                super::result::set_detail("this libsesphr was built without the postgres feature");
                Err(sesphr_result::Store)
            }
        },
    )
}

/// A store opened from a C string (a path, a connection string).
type OpenStore<'a> = &'a dyn Fn(
    &str,
    Option<&sesphr_srs_options>,
) -> Result<std::sync::Arc<dyn crate::store::Store>, sesphr_result>;

/// The body of the `sesphr_srs_open_*` functions: checks the arguments,
/// opens the store named by `name` with `open`, then the SRS on it.
fn open_named(
    name: *const c_char,
    (storage_key, storage_key_len): (*const u8, usize),
    (escrow_seed, escrow_seed_len): (*const u8, usize),
    options: *const sesphr_srs_options,
    out_srs: *mut *mut sesphr_srs,
    open: OpenStore<'_>,
) -> sesphr_result {
    run(|| {
        let o = out(out_srs)?;
        let n = c_str(name)?
            .to_str()
            .map_err(|_| sesphr_result::InvalidArgument)?;
        let opts = options_ref(options);
        let store = open(n, opts)?;
        open_into(
            o,
            store,
            storage_key,
            storage_key_len,
            escrow_seed,
            escrow_seed_len,
            opts,
        )
    })
}

fn options_ref<'a>(options: *const sesphr_srs_options) -> Option<&'a sesphr_srs_options> {
    if options.is_null() {
        None
    } else {
        out(options.cast_mut()).ok().map(|o| &*o)
    }
}

/// Creates an SRS in memory (nothing survives `sesphr_srs_free`); arguments
/// as for `sesphr_srs_open_sqlite`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_new_in_memory(
    storage_key: *const u8,
    storage_key_len: usize,
    escrow_seed: *const u8,
    escrow_seed_len: usize,
    options: *const sesphr_srs_options,
    out_srs: *mut *mut sesphr_srs,
) -> sesphr_result {
    run(|| {
        let o = out(out_srs)?;
        open_into(
            o,
            std::sync::Arc::new(MemoryStore::new()),
            storage_key,
            storage_key_len,
            escrow_seed,
            escrow_seed_len,
            options_ref(options),
        )
    })
}

/// Closes an SRS (everything acknowledged is already durable). NULL does
/// nothing. No other thread may be using it.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_free(srs: *mut sesphr_srs) {
    free_handle(srs);
}

/// Registers a user with a role (`patient`, `doctor`, `hospital`,
/// `researcher`, `family`, `admin`, or another name of `[a-z0-9_-]`) and a
/// 32-byte public key.
///
/// Errors: `INVALID_IDENTITY`, `INVALID_ARGUMENT` (role), `INVALID_LENGTH`,
/// point errors, `ALREADY_REGISTERED`, `KEY_IN_USE`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_register_user(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    role: *const u8,
    role_len: usize,
    public_key: *const u8,
    public_key_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let (user, role, public_key) = (
            bytes(user, user_len)?,
            bytes(role, role_len)?,
            bytes(public_key, public_key_len)?,
        );
        let id = Identity::from_utf8(user)?;
        let role: Role = core::str::from_utf8(role)
            .ok()
            .and_then(|r| r.parse().ok())
            .ok_or(sesphr_result::InvalidArgument)?;
        let pk = PublicKey::from_slice(public_key)?;
        Ok(s.register_user(&id, role, &pk)?)
    })
}

/// Removes a user: all their grants are revoked.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_remove_user(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        Ok(s.remove_user(&identity(user, user_len)?)?)
    })
}

/// Registers a patient with `count` encoded portion public keys
/// (`portion_keys[i]` of `portion_key_lens[i]` bytes).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_register_patient(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    portion_keys: *const *const u8,
    portion_key_lens: *const usize,
    count: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let patient = bytes(patient, patient_len)?;
        let ptrs = array(portion_keys, count)?;
        let lens = array(portion_key_lens, count)?;
        let id = Identity::from_utf8(patient)?;
        let keys = ptrs
            .iter()
            .zip(lens)
            .map(|(&p, &l)| Ok(PortionPublicKey::from_bytes(bytes(p, l)?)?))
            .collect::<Result<Vec<_>, sesphr_result>>()?;
        Ok(s.register_patient(&id, &keys)?)
    })
}

/// Registers another encoded portion public key for a patient.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_add_portion(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    portion_key: *const u8,
    portion_key_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let (patient, portion_key) = (
            bytes(patient, patient_len)?,
            bytes(portion_key, portion_key_len)?,
        );
        let id = Identity::from_utf8(patient)?;
        let key = PortionPublicKey::from_bytes(portion_key)?;
        Ok(s.add_portion(&id, &key)?)
    })
}

/// Grants `user` the portion `label` of `patient` with an encoded
/// re-encryption key. `since` is optional: NULL grants every record (backward
/// access); otherwise only records created at or after `*since`. `expiry` is
/// optional: NULL never expires; otherwise the grant stops at `*expiry`.
///
/// Errors: `UNKNOWN_PATIENT`, `UNKNOWN_USER`, `USER_REMOVED`,
/// `UNKNOWN_PORTION`, `RE_KEY_MISMATCH`, decoding errors, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_grant(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    portion_label: *const u8,
    portion_label_len: usize,
    user: *const u8,
    user_len: usize,
    rekey: *const u8,
    rekey_len: usize,
    since: *const u64,
    expiry: *const u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let (patient, portion_label) = (
            bytes(patient, patient_len)?,
            bytes(portion_label, portion_label_len)?,
        );
        let (user, rekey) = (bytes(user, user_len)?, bytes(rekey, rekey_len)?);
        let p = Identity::from_utf8(patient)?;
        let l = PortionLabel::from_bytes(portion_label)?;
        let u = Identity::from_utf8(user)?;
        let k = ReKey::from_bytes(rekey)?;
        let scope = optional(since).map_or(Scope::AllRecords, Scope::Since);
        Ok(s.grant(&p, &l, &u, k, scope, optional(expiry))?)
    })
}

/// Revokes `user`'s grant on portion `label` of `patient`. Once this returns
/// OK, no re-encryption under that grant succeeds, from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_revoke(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    portion_label: *const u8,
    portion_label_len: usize,
    user: *const u8,
    user_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let (patient, portion_label) = (
            bytes(patient, patient_len)?,
            bytes(portion_label, portion_label_len)?,
        );
        let user = bytes(user, user_len)?;
        let p = Identity::from_utf8(patient)?;
        let l = PortionLabel::from_bytes(portion_label)?;
        Ok(s.revoke(&p, &l, &Identity::from_utf8(user)?)?)
    })
}

/// Re-encrypts an encoded portion header for `user` (with a proof of correct
/// re-encryption if `with_proof` is nonzero). The encoded re-capsule goes
/// into a new buffer.
///
/// Errors: `DENIED_*` with the reason (audited); decoding errors (not
/// audited); `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_reencrypt(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    header: *const u8,
    header_len: usize,
    with_proof: c_uint,
    out_recapsule: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = out(out_recapsule)?;
        let (user, header) = (bytes(user, user_len)?, bytes(header, header_len)?);
        let u = Identity::from_utf8(user)?;
        let h = PortionHeader::from_bytes(header)?;
        let rc = if with_proof != 0 {
            s.reencrypt_with_proof(&u, &h)?
        } else {
            s.reencrypt(&u, &h)?
        };
        put_buffer(o, rc.to_bytes());
        Ok(())
    })
}

/// Re-encrypts `count` encoded headers for one user at once. For each `i`,
/// `out_results[i]` receives `SESPHR_RESULT_OK` and `out_recapsules[i]` a new
/// buffer, or a per-header error code and NULL. The caller provides both
/// arrays of `count` elements. The function returns OK if the batch ran
/// (whatever the per-header results), and writes the arrays only then.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_reencrypt_batch(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    headers: *const *const u8,
    header_lens: *const usize,
    count: usize,
    out_recapsules: *mut *mut sesphr_buffer,
    out_results: *mut sesphr_result,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let user = bytes(user, user_len)?;
        let ptrs = array(headers, count)?;
        let lens = array(header_lens, count)?;
        let outs = array_out(out_recapsules, count)?;
        let results = array_out(out_results, count)?;
        let u = Identity::from_utf8(user)?;
        // Headers that do not decode get their error; the rest go in one batch.
        let parsed: Vec<Result<PortionHeader, sesphr_result>> = ptrs
            .iter()
            .zip(lens)
            .map(|(&p, &l)| Ok(PortionHeader::from_bytes(bytes(p, l)?)?))
            .collect();
        let valid: Vec<&PortionHeader> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let mut done = s.reencrypt_batch(&u, &valid)?.into_iter();
        for ((p, o), r) in parsed.iter().zip(outs.iter_mut()).zip(results.iter_mut()) {
            let res = match p {
                Err(e) => Err(*e),
                Ok(_) => match done.next() {
                    Some(Ok(rc)) => Ok(rc.to_bytes()),
                    Some(Err(d)) => Err(d.into()),
                    None => Err(sesphr_result::Panic),
                },
            };
            match res {
                Ok(b) => {
                    put_buffer(o, b);
                    *r = sesphr_result::Ok;
                }
                Err(e) => {
                    *o = core::ptr::null_mut();
                    *r = e;
                }
            }
        }
        Ok(())
    })
}

/// Verifies the whole audit chain; `*out_entries` receives its length.
///
/// Errors: `AUDIT_CHAIN_BROKEN`, `TAMPERED`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_verify_audit(
    srs: *const sesphr_srs,
    out_entries: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = out(out_entries)?;
        *o = s.verify_audit()?;
        Ok(())
    })
}

/// The audit chain as JSON lines (one object per entry), into a new buffer.
/// For long chains prefer `sesphr_srs_export_audit_cb`, which streams.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_export_audit(
    srs: *const sesphr_srs,
    out_jsonl: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = out(out_jsonl)?;
        let mut v = Vec::new();
        s.export_audit_jsonl(1, &mut v)?;
        put_buffer(o, v);
        Ok(())
    })
}

/// Streams the audit chain from entry `from_seq` on: `line` is called once
/// per entry with one line of JSON (with its trailing newline, not
/// NUL-terminated, valid during the call) and `ctx`; it returns 0 to go on,
/// anything else to stop (then `IO` is returned). `*out_entries` receives
/// the number of entries delivered. Memory stays bounded whatever the length
/// of the chain.
///
/// Errors: `AUDIT_CHAIN_BROKEN`, `TAMPERED`, `STORE`, `IO`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_export_audit_cb(
    srs: *const sesphr_srs,
    from_seq: u64,
    line: Option<extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void) -> c_int>,
    ctx: *mut c_void,
    out_entries: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let f = line.ok_or(sesphr_result::NullParameter)?;
        let o = out(out_entries)?;
        let mut sink = LineSink {
            f,
            ctx,
            line: Vec::new(),
            stopped: false,
        };
        match s.export_audit_jsonl(from_seq, &mut sink) {
            Ok(n) => {
                *o = n;
                Ok(())
            }
            Err(_) if sink.stopped => Err(sesphr_result::Io),
            Err(e) => Err(e.into()),
        }
    })
}

/// Hands each complete line written to it to a C callback.
struct LineSink {
    f: extern "C" fn(*const u8, usize, *mut c_void) -> c_int,
    ctx: *mut c_void,
    line: Vec<u8>,
    stopped: bool,
}

impl std::io::Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for chunk in buf.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                let rc = (self.f)(self.line.as_ptr(), self.line.len(), self.ctx);
                self.line.clear();
                if rc != 0 {
                    self.stopped = true;
                    return Err(std::io::Error::other("stopped by the callback"));
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a checkpoint now and writes it (`SESPHR_CHECKPOINT_LEN` bytes) into
/// a new buffer: keep it outside the database and pass it back in
/// `sesphr_srs_options.required_checkpoint` when reopening.
///
/// Errors: `STORE`, `UNAVAILABLE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_checkpoint(
    srs: *const sesphr_srs,
    out_checkpoint: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = out(out_checkpoint)?;
        put_buffer(o, s.checkpoint()?.to_bytes());
        Ok(())
    })
}

/// The latest checkpoint this SRS made or found at open, into a new buffer.
///
/// Errors: `INVALID_STATE` if there is none yet.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_latest_checkpoint(
    srs: *const sesphr_srs,
    out_checkpoint: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = out(out_checkpoint)?;
        let cp = s.latest_checkpoint().ok_or(sesphr_result::InvalidState)?;
        put_buffer(o, cp.to_bytes());
        Ok(())
    })
}

/// Checks the live database against a checkpoint kept outside it.
///
/// Errors: `MALFORMED`/`INVALID_LENGTH`/`BAD_MAGIC` for bytes that are not a
/// checkpoint; `INVALID_CHECKPOINT`, `ROLLED_BACK`, `DIVERGED`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_require_checkpoint(
    srs: *const sesphr_srs,
    checkpoint: *const u8,
    checkpoint_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let cp = Checkpoint::from_bytes(bytes(checkpoint, checkpoint_len)?)?;
        s.require_checkpoint(&cp)?;
        Ok(())
    })
}

/// The Ed25519 public key (32 bytes) that verifies this SRS's checkpoints,
/// into `out_key` (`out_key_len` must be at least 32).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_verifying_key(
    srs: *const sesphr_srs,
    out_key: *mut u8,
    out_key_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = fixed_out(out_key, out_key_len, 32)?;
        o.copy_from_slice(s.verifying_key().as_bytes());
        Ok(())
    })
}

/// **Escrow mode**: issues the key pair of `identity` in `epoch` from the
/// SRS's escrow seed.
///
/// Errors: `ESCROW_DISABLED` unless the SRS was opened with an escrow seed.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_issue_keys(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    epoch: u32,
    out_keypair: *mut *mut sesphr_keypair,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let o = out(out_keypair)?;
        let user = bytes(user, user_len)?;
        let kp = s.issue_keys(&Identity::from_utf8(user)?, epoch)?;
        *o = into_handle::<sesphr_keypair>(kp);
        Ok(())
    })
}
