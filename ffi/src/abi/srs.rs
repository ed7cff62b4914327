//! The SRS from C.

use core::ffi::{c_char, c_int, c_uint, c_void};

use super::keys::sesphr_keypair;
use super::{
    Handle, array, array_out, bytes, c_str, extensible, fixed_out, free_handle, handle_ref,
    identity, into_handle, optional_bytes, out, put_buffer, run, sesphr_buffer, sesphr_result,
};
use super::{SESPHR_REQUEST_ID_LEN, label};
use sesphr::consent::{
    Actor, KeyProof, PatientRegistration, SignedGrant, SignedRefusal, SignedRevocation,
};
use sesphr::srs::{AccessReason, Checkpoint, Purpose, Role, Srs, SrsConfig, StorageKey};
use sesphr::store::MemoryStore;
use sesphr::{EscrowKeyIssuer, Identity, PortionHeader, PublicKey, ReKey};

/// Length of the SRS storage key.
pub const SESPHR_STORAGE_KEY_LEN: usize = 32;
/// Length of an escrow master seed.
pub const SESPHR_ESCROW_SEED_LEN: usize = 32;
/// Purpose of use: treatment.
pub const SESPHR_PURPOSE_TREATMENT: u32 = 1;
/// Purpose of use: payment.
pub const SESPHR_PURPOSE_PAYMENT: u32 = 2;
/// Purpose of use: health-care operations.
pub const SESPHR_PURPOSE_OPERATIONS: u32 = 3;
/// Purpose of use: research.
pub const SESPHR_PURPOSE_RESEARCH: u32 = 4;
/// Purpose of use: emergency (break-glass; needs a justification).
pub const SESPHR_PURPOSE_EMERGENCY: u32 = 5;
/// Purpose of use: other (say what in the justification).
pub const SESPHR_PURPOSE_OTHER: u32 = 6;
/// Length of an encoded checkpoint.
pub const SESPHR_CHECKPOINT_LEN: usize = 181;
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

/// How to open an SRS from C. Initialize it with `SESPHR_SRS_OPTIONS_INIT`
/// (`sesphr_srs_options o = SESPHR_SRS_OPTIONS_INIT;`: its size, then the
/// defaults), then set what you need. The structure may grow at its end in
/// later versions; a caller built against this header keeps working (see
/// `struct_size`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sesphr_srs_options {
    /// `sizeof(sesphr_srs_options)` as the caller's header declares it (the
    /// `_INIT` macro sets it). A size this library does not know is
    /// `STRUCT_SIZE`; a smaller, older one gets the defaults for the fields
    /// it lacks.
    pub struct_size: usize,
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
    /// The oldest a signed grant may be when it is filed, in seconds (0: the
    /// default, seven days; `UINT64_MAX`: no maximum). Older grants are
    /// refused with `GRANT_TOO_OLD`.
    pub grant_max_age: u64,
    /// Also a checkpoint at the first commit this many seconds or more
    /// after the last one (0: the default, 60).
    pub checkpoint_interval: u64,
    /// PostgreSQL: 0 (the default) applies other processes' changes as they
    /// are announced, on a thread of this SRS; 1 catches up only before
    /// each commit and on `sesphr_srs_sync` (no thread). Added in 0.3: a
    /// caller built with an older header gets the default.
    pub no_follow: c_uint,
}

// SAFETY: zeroes are a valid `sesphr_srs_options` (integers, raw pointers,
// an optional function pointer), and `struct_size` is its first field.
unsafe impl super::Extensible for sesphr_srs_options {
    const SIZES: &'static [usize] = &[
        core::mem::offset_of!(Self, checkpoint_every),
        core::mem::offset_of!(Self, required_checkpoint),
        core::mem::offset_of!(Self, required_checkpoint_len),
        core::mem::offset_of!(Self, on_checkpoint),
        core::mem::offset_of!(Self, on_checkpoint_ctx),
        core::mem::offset_of!(Self, grant_max_age),
        core::mem::offset_of!(Self, checkpoint_interval),
        core::mem::offset_of!(Self, no_follow),
        core::mem::size_of::<Self>(),
    ];
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
    store: std::sync::Arc<dyn sesphr::store::Store>,
    storage_key: *const u8,
    storage_key_len: usize,
    escrow_seed: *const u8,
    escrow_seed_len: usize,
    options: Option<&sesphr_srs_options>,
) -> Result<(), sesphr_result> {
    let key: &[u8; 32] = bytes("storage_key", storage_key, storage_key_len)?
        .try_into()
        .map_err(|_| sesphr_result::InvalidLength)?;
    let mut cfg = SrsConfig::shared(store, StorageKey::from_bytes(key));
    if let Some(seed) = optional_bytes("escrow_seed", escrow_seed, escrow_seed_len)? {
        let seed: &[u8; 32] = seed.try_into().map_err(|_| sesphr_result::InvalidLength)?;
        cfg = cfg.escrow(EscrowKeyIssuer::from_seed(seed));
    }
    if let Some(o) = options {
        if o.checkpoint_every > 0 {
            cfg = cfg.checkpoint_every(o.checkpoint_every);
        }
        if let Some(cp) = optional_bytes(
            "options->required_checkpoint",
            o.required_checkpoint,
            o.required_checkpoint_len,
        )? {
            cfg = cfg.require_checkpoint(Checkpoint::from_bytes(cp)?);
        }
        if o.checkpoint_interval > 0 {
            cfg = cfg.checkpoint_interval(core::time::Duration::from_secs(o.checkpoint_interval));
        }
        if o.no_follow != 0 {
            cfg = cfg.follow_changes(false);
        }
        match o.grant_max_age {
            0 => {}
            u64::MAX => cfg = cfg.grant_max_age(None),
            s => cfg = cfg.grant_max_age(Some(core::time::Duration::from_secs(s))),
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
        ("path", path),
        (storage_key, storage_key_len),
        (escrow_seed, escrow_seed_len),
        options,
        out_srs,
        &|p: &str, opts: Option<&sesphr_srs_options>| {
            #[cfg(feature = "sqlite")]
            {
                use sesphr::store::{Durability, SqliteStore};
                let durability = match opts.map_or(0, |o| o.durability) {
                    0 => Durability::PowerLoss,
                    1 => Durability::ProcessCrash,
                    _ => return Err(sesphr_result::InvalidArgument),
                };
                // As a store error, so that the detail keeps the store's
                // message (the file; for a lock, who holds it).
                let store =
                    SqliteStore::open_with(p, durability).map_err(sesphr::srs::SrsError::Store)?;
                Ok(std::sync::Arc::new(store) as std::sync::Arc<dyn sesphr::store::Store>)
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
        ("conninfo", conninfo),
        (storage_key, storage_key_len),
        (escrow_seed, escrow_seed_len),
        options,
        out_srs,
        &|c: &str, _: Option<&sesphr_srs_options>| {
            #[cfg(feature = "postgres")]
            {
                let store =
                    sesphr::store::PostgresStore::open(c).map_err(sesphr::srs::SrsError::from)?;
                Ok(std::sync::Arc::new(store) as std::sync::Arc<dyn sesphr::store::Store>)
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
) -> Result<std::sync::Arc<dyn sesphr::store::Store>, sesphr_result>;

/// The body of the `sesphr_srs_open_*` functions: checks the arguments,
/// opens the store named by `name` with `open`, then the SRS on it.
fn open_named(
    (what, name): (&'static str, *const c_char),
    (storage_key, storage_key_len): (*const u8, usize),
    (escrow_seed, escrow_seed_len): (*const u8, usize),
    options: *const sesphr_srs_options,
    out_srs: *mut *mut sesphr_srs,
    open: OpenStore<'_>,
) -> sesphr_result {
    run(|| {
        super::check_null!((storage_key, storage_key_len), (escrow_seed, escrow_seed_len); out_srs);
        let o = out("out_srs", out_srs)?;
        let n = c_str(what, name)?.to_str().map_err(|_| {
            super::result::set_detail("the path or connection string is not UTF-8");
            sesphr_result::InvalidArgument
        })?;
        let opts = extensible(options)?;
        let store = open(n, opts.as_ref())?;
        open_into(
            o,
            store,
            storage_key,
            storage_key_len,
            escrow_seed,
            escrow_seed_len,
            opts.as_ref(),
        )
    })
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
        super::check_null!((storage_key, storage_key_len), (escrow_seed, escrow_seed_len); out_srs);
        let o = out("out_srs", out_srs)?;
        open_into(
            o,
            std::sync::Arc::new(MemoryStore::new()),
            storage_key,
            storage_key_len,
            escrow_seed,
            escrow_seed_len,
            extensible(options)?.as_ref(),
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
/// `researcher`, `family`, `admin`, or another name of `[a-z0-9_-]`), a
/// 32-byte public key and the user's 64-byte proof of possession
/// (`sesphr_keypair_prove_possession`).
///
/// Errors: `INVALID_IDENTITY`, `INVALID_ARGUMENT` (role), `INVALID_LENGTH`,
/// point errors, `INVALID_SIGNATURE` (proof), `ALREADY_REGISTERED`,
/// `KEY_IN_USE`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_register_user(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    role: *const u8,
    role_len: usize,
    public_key: *const u8,
    public_key_len: usize,
    proof: *const u8,
    proof_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len), (role, role_len), (public_key, public_key_len), (proof, proof_len); srs);
        let s = handle_ref("srs", srs)?;
        let id = identity("user", user, user_len)?;
        let role = role_arg("role", role, role_len)?;
        let pk = PublicKey::from_slice(bytes("public_key", public_key, public_key_len)?)?;
        let proof = KeyProof::from_bytes(bytes("proof", proof, proof_len)?)?;
        Ok(s.register_user(&id, role, &pk, &proof)?)
    })
}

/// Registers (or replaces) a user's 1,184-byte ML-KEM-768 encapsulation
/// key (`sesphr_keypair_pq_public_key`): the SRS re-wraps hybrid headers'
/// secret to it. Without one, hybrid headers are denied
/// (`DENIED_NO_PQ_KEY`). Audited with its fingerprint.
///
/// Errors: `INVALID_IDENTITY`, `INVALID_LENGTH`, `MALFORMED` (FIPS 203's
/// modulus check), `UNKNOWN_USER`, `USER_REMOVED`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_register_pq_key(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    pq_public_key: *const u8,
    pq_public_key_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len), (pq_public_key, pq_public_key_len); srs);
        let s = handle_ref("srs", srs)?;
        let id = identity("user", user, user_len)?;
        let key = sesphr::PqPublicKey::from_bytes(bytes(
            "pq_public_key",
            pq_public_key,
            pq_public_key_len,
        )?)?;
        Ok(s.register_pq_key(&id, &key)?)
    })
}

/// The SRS's post-quantum key at its current version (`"SPQK"`, 1,193
/// bytes), into a new buffer: what `sesphr_patient_keys_hybrid_portion_public_key`
/// takes.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_pq_public_key(
    srs: *const sesphr_srs,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    srs_to_buffer(srs, ("out_buffer", out_buffer), |s| {
        Ok(s.pq_public_key()?.to_bytes())
    })
}

/// What `f` makes of the SRS, into a new buffer: the shape of every call
/// that hands back one encoded object.
fn srs_to_buffer(
    srs: *const sesphr_srs,
    (name, out_buffer): (&'static str, *mut *mut sesphr_buffer),
    f: impl FnOnce(&Srs) -> Result<Vec<u8>, sesphr_result>,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out(name, out_buffer)?;
        put_buffer(o, f(s)?);
        Ok(())
    })
}

/// Rotates the SRS's post-quantum key; the new key (`"SPQK"`) goes into a
/// new buffer. New headers should be sealed to it; headers sealed to older
/// versions still re-encrypt. Audited.
///
/// Errors: `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_rotate_pq_key(
    srs: *const sesphr_srs,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    srs_to_buffer(srs, ("out_buffer", out_buffer), |s| {
        Ok(s.rotate_pq_key()?.to_bytes())
    })
}

/// Decodes a registration from C and hands it to `f`.
fn with_registration(
    srs: *const sesphr_srs,
    registration: *const u8,
    registration_len: usize,
    f: fn(&Srs, &PatientRegistration) -> Result<(), sesphr::srs::SrsError>,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let r = PatientRegistration::from_bytes(bytes(
            "registration",
            registration,
            registration_len,
        )?)?;
        Ok(f(s, &r)?)
    })
}

/// A role name from C.
pub(crate) fn role_arg(
    name: &'static str,
    role: *const u8,
    role_len: usize,
) -> Result<Role, sesphr_result> {
    let r = super::utf8(name, role, role_len, sesphr_result::InvalidRole)?;
    r.parse::<Role>().map_err(|e| super::invalid(name, &e))
}

/// The actor of an administrative act from C.
fn actor_arg(
    actor: *const u8,
    actor_len: usize,
    role: *const u8,
    role_len: usize,
    reason: *const u8,
    reason_len: usize,
) -> Result<Actor, sesphr_result> {
    let reason = super::utf8("reason", reason, reason_len, sesphr_result::Malformed)?;
    Actor::new(
        identity("actor", actor, actor_len)?,
        role_arg("actor_role", role, role_len)?,
        reason,
    )
    .map_err(|e| super::invalid("reason", &e))
}

/// Removes a user (an administrative act by `actor`, in `actor_role`, for
/// `reason`, all recorded in the audit): all their grants are revoked.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_remove_user(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    actor: *const u8,
    actor_len: usize,
    actor_role: *const u8,
    actor_role_len: usize,
    reason: *const u8,
    reason_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len), (actor, actor_len), (actor_role, actor_role_len), (reason, reason_len); srs);
        let s = handle_ref("srs", srs)?;
        let a = actor_arg(
            actor,
            actor_len,
            actor_role,
            actor_role_len,
            reason,
            reason_len,
        )?;
        Ok(s.remove_user(&identity("user", user, user_len)?, &a)?)
    })
}

/// Registers a patient from their signed registration
/// (`sesphr_patient_registration`).
///
/// Errors: `INVALID_SIGNATURE`, `ALREADY_REGISTERED`, `KEY_IN_USE`,
/// decoding errors, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_register_patient(
    srs: *const sesphr_srs,
    registration: *const u8,
    registration_len: usize,
) -> sesphr_result {
    with_registration(srs, registration, registration_len, Srs::register_patient)
}

/// Registers more portion keys for a patient, from a registration signed
/// with their registered consent key.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_add_portions(
    srs: *const sesphr_srs,
    registration: *const u8,
    registration_len: usize,
) -> sesphr_result {
    with_registration(srs, registration, registration_len, Srs::add_portions)
}

/// Gives a patient registered before signed consent existed their consent
/// key, from a registration (`sesphr_patient_registration`) that proves
/// every portion key registered for them.
///
/// Errors: `UNKNOWN_PATIENT`, `ALREADY_REGISTERED` (has one),
/// `INVALID_SIGNATURE`, decoding errors, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_adopt_consent_key(
    srs: *const sesphr_srs,
    registration: *const u8,
    registration_len: usize,
) -> sesphr_result {
    with_registration(srs, registration, registration_len, Srs::adopt_consent_key)
}

/// Installs a grant the patient signed (`sesphr_sign_grant`) with the
/// encoded re-encryption key it was signed for.
///
/// Errors: `UNKNOWN_PATIENT`, `NO_CONSENT_KEY`, `UNKNOWN_USER`,
/// `USER_REMOVED`, `UNKNOWN_PORTION`, `INVALID_SIGNATURE`,
/// `RE_KEY_MISMATCH` (not the key signed), `REPLAYED` (a replay, or dated
/// at or before a revocation of the label to the user), `GRANT_TOO_OLD`,
/// `ROLE_MISMATCH`, `UNKNOWN_REQUEST`, `REQUEST_ANSWERED`, decoding errors,
/// `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_grant(
    srs: *const sesphr_srs,
    signed_grant: *const u8,
    signed_grant_len: usize,
    rekey: *const u8,
    rekey_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let (g, k) = (
            bytes("signed_grant", signed_grant, signed_grant_len)?,
            bytes("rekey", rekey, rekey_len)?,
        );
        let (g, k) = (SignedGrant::from_bytes(g)?, ReKey::from_bytes(k)?);
        Ok(s.grant(&g, k)?)
    })
}

/// Carries out a revocation the patient signed (`sesphr_sign_revocation`).
/// Once this returns OK, no re-encryption under those grants succeeds, from
/// any thread or process. It is recorded even when it ends nothing, and
/// refuses every later-filed grant of the label to the user dated at or
/// before it, in any epoch (SPEC §7.5). The SRS's signed receipt (`"SPRR"`,
/// counting the grants ended) goes into a new buffer in `*out_receipt`
/// (NULL: not wanted).
///
/// Errors: `INVALID_SIGNATURE`, `REPLAYED` (sent before, or older than the
/// last revocation of the triple), `UNKNOWN_*`, decoding errors, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_revoke(
    srs: *const sesphr_srs,
    signed_revocation: *const u8,
    signed_revocation_len: usize,
    out_receipt: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let r = SignedRevocation::from_bytes(bytes(
            "signed_revocation",
            signed_revocation,
            signed_revocation_len,
        )?)?;
        let receipt = s.revoke(&r)?;
        if let Ok(o) = out("out_receipt", out_receipt) {
            put_buffer(o, receipt.to_bytes());
        }
        Ok(())
    })
}

/// An administrative revocation of `user`'s grants on portion `label` of
/// `patient`, by `actor` in `actor_role` for `reason` (recorded in the
/// audit). The receipt goes into `*out_receipt` (NULL: not wanted).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_revoke_as(
    srs: *const sesphr_srs,
    actor: *const u8,
    actor_len: usize,
    actor_role: *const u8,
    actor_role_len: usize,
    reason: *const u8,
    reason_len: usize,
    patient: *const u8,
    patient_len: usize,
    portion_label: *const u8,
    portion_label_len: usize,
    user: *const u8,
    user_len: usize,
    out_receipt: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((actor, actor_len), (actor_role, actor_role_len), (reason, reason_len), (patient, patient_len), (portion_label, portion_label_len), (user, user_len); srs);
        let s = handle_ref("srs", srs)?;
        let a = actor_arg(
            actor,
            actor_len,
            actor_role,
            actor_role_len,
            reason,
            reason_len,
        )?;
        let receipt = s.revoke_as(
            &a,
            &identity("patient", patient, patient_len)?,
            &label("portion_label", portion_label, portion_label_len)?,
            &identity("user", user, user_len)?,
        )?;
        if let Ok(o) = out("out_receipt", out_receipt) {
            put_buffer(o, receipt.to_bytes());
        }
        Ok(())
    })
}

/// A user's request for access to portion `label` of `patient`, for
/// `purpose` (`SESPHR_PURPOSE_*`) with a justification (1–1024 bytes of
/// text). The request's identifier is written to `out_request`
/// (`SESPHR_REQUEST_ID_LEN` bytes).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_request_access(
    srs: *const sesphr_srs,
    user: *const u8,
    user_len: usize,
    patient: *const u8,
    patient_len: usize,
    portion_label: *const u8,
    portion_label_len: usize,
    purpose: c_uint,
    justification: *const u8,
    justification_len: usize,
    out_request: *mut u8,
    out_request_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len), (patient, patient_len), (portion_label, portion_label_len), (justification, justification_len); srs, out_request);
        let s = handle_ref("srs", srs)?;
        let o = fixed_out(
            "out_request",
            out_request,
            out_request_len,
            SESPHR_REQUEST_ID_LEN,
        )?;
        let j = text_arg("justification", justification, justification_len)?;
        let id = s.request_access(
            &identity("user", user, user_len)?,
            &identity("patient", patient, patient_len)?,
            &label("portion_label", portion_label, portion_label_len)?,
            purpose_arg(purpose)?,
            j,
        )?;
        o.copy_from_slice(&id.to_bytes());
        Ok(())
    })
}

/// The patient's pending access requests as a JSON array (into a new
/// buffer): objects with `id` (hex), `user`, `label`, `purpose`,
/// `justification`, `requested_at`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_pending_requests_json(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    out_json: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out("out_json", out_json)?;
        let reqs = s.pending_requests(&identity("patient", patient, patient_len)?);
        let items: Vec<String> = reqs
            .iter()
            .map(sesphr::model::AccessRequest::to_json)
            .collect();
        put_buffer(o, format!("[{}]", items.join(",")).into_bytes());
        Ok(())
    })
}

/// Refuses an access request with the patient's signed refusal
/// (`sesphr_sign_refusal`).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_refuse_request(
    srs: *const sesphr_srs,
    signed_refusal: *const u8,
    signed_refusal_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let r = SignedRefusal::from_bytes(bytes(
            "signed_refusal",
            signed_refusal,
            signed_refusal_len,
        )?)?;
        Ok(s.refuse_request(&r)?)
    })
}

/// The patient's accounting of disclosures with `from <= time <= to` as one
/// JSON document (into a new buffer): `{"patient", "from", "to",
/// "disclosures": [{seq, time, user, role, label, record_id, purpose,
/// emergency, justification}], "count"}`. A history of more than 1,024
/// disclosures is read a page ahead on a thread the call starts and waits
/// for before it returns.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_disclosures_json(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    from: u64,
    to: u64,
    out_json: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out("out_json", out_json)?;
        let mut v = Vec::new();
        s.export_disclosures_json(
            &identity("patient", patient, patient_len)?,
            from,
            to,
            &mut v,
        )?;
        put_buffer(o, v);
        Ok(())
    })
}

/// Every break-glass access to the patient's records, as a JSON array of
/// disclosure objects (into a new buffer).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_emergency_accesses_json(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    out_json: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out("out_json", out_json)?;
        let list = s.emergency_accesses(&identity("patient", patient, patient_len)?)?;
        let items: Vec<String> = list
            .iter()
            .map(sesphr::model::Disclosure::to_json)
            .collect();
        put_buffer(o, format!("[{}]", items.join(",")).into_bytes());
        Ok(())
    })
}

/// Re-checks the consent behind every change in the live audit log (see
/// `Srs::verify_consent`); `*out_checked` (may be NULL) receives the number
/// of signed grants, revocations and refusals checked.
///
/// Errors: `INVALID_CONSENT`, `TAMPERED`, chain and store errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_verify_consent(
    srs: *const sesphr_srs,
    out_checked: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let r = s.verify_consent()?;
        if let Ok(o) = out("out_checked", out_checked) {
            *o = r.grants + r.revocations + r.refusals;
        }
        Ok(())
    })
}

/// A purpose code from C.
fn purpose_arg(purpose: c_uint) -> Result<Purpose, sesphr_result> {
    u8::try_from(purpose)
        .ok()
        .and_then(|c| Purpose::from_code(c).ok())
        .ok_or(sesphr_result::InvalidArgument)
}

/// UTF-8 text from C.
fn text_arg<'a>(name: &'static str, ptr: *const u8, len: usize) -> Result<&'a str, sesphr_result> {
    super::utf8(name, ptr, len, sesphr_result::Malformed)
}

/// The reason of a re-encryption from C: a purpose code and an optional
/// justification (NULL: none).
fn reason_arg(
    purpose: c_uint,
    justification: *const u8,
    justification_len: usize,
) -> Result<AccessReason, sesphr_result> {
    let j = match optional_bytes("justification", justification, justification_len)? {
        Some(b) => Some(super::utf8(
            "justification",
            b.as_ptr(),
            b.len(),
            sesphr_result::Malformed,
        )?),
        None => None,
    };
    AccessReason::new(purpose_arg(purpose)?, j).map_err(|e| super::invalid("justification", &e))
}

/// Re-encrypts an encoded portion header for `user` (with a proof of correct
/// re-encryption if `with_proof` is nonzero), for `purpose`
/// (`SESPHR_PURPOSE_*`) with an optional justification (NULL: none; a
/// break-glass grant needs `SESPHR_PURPOSE_EMERGENCY` and one). The encoded
/// re-capsule goes into a new buffer.
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
    purpose: c_uint,
    justification: *const u8,
    justification_len: usize,
    with_proof: c_uint,
    out_recapsule: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len), (header, header_len), (justification, justification_len); srs, out_recapsule);
        let s = handle_ref("srs", srs)?;
        let o = out("out_recapsule", out_recapsule)?;
        let (user, header) = (
            bytes("user", user, user_len)?,
            bytes("header", header, header_len)?,
        );
        let u = super::named("user", Identity::from_utf8(user))?;
        let h = PortionHeader::from_bytes(header)?;
        let why = reason_arg(purpose, justification, justification_len)?;
        let rc = if with_proof != 0 {
            s.reencrypt_with_proof(&u, &h, why)?
        } else {
            s.reencrypt(&u, &h, why)?
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
    purpose: c_uint,
    justification: *const u8,
    justification_len: usize,
    out_recapsules: *mut *mut sesphr_buffer,
    out_results: *mut sesphr_result,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len), (justification, justification_len), (headers, count), (header_lens, count), (out_recapsules, count), (out_results, count); srs);
        let s = handle_ref("srs", srs)?;
        let user = bytes("user", user, user_len)?;
        let ptrs = array("headers", headers, count)?;
        let lens = array("header_lens", header_lens, count)?;
        let outs = array_out("out_recapsules", out_recapsules, count)?;
        let results = array_out("out_results", out_results, count)?;
        let u = super::named("user", Identity::from_utf8(user))?;
        // Headers that do not decode get their error; the rest go in one batch.
        let parsed: Vec<Result<PortionHeader, sesphr_result>> = ptrs
            .iter()
            .zip(lens)
            .map(|(&p, &l)| Ok(PortionHeader::from_bytes(bytes("headers[]", p, l)?)?))
            .collect();
        let valid: Vec<&PortionHeader> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let why = reason_arg(purpose, justification, justification_len)?;
        let mut done = s.reencrypt_batch(&u, &valid, why)?.into_iter();
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
        let s = handle_ref("srs", srs)?;
        let o = out("out_entries", out_entries)?;
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
        let s = handle_ref("srs", srs)?;
        let o = out("out_jsonl", out_jsonl)?;
        let mut v = Vec::new();
        s.export_audit_jsonl(1, &mut v)?;
        put_buffer(o, v);
        Ok(())
    })
}

/// Streams the audit chain from entry `from_seq` on (sequence numbers start
/// at 1; 0 and 1, or any number at or below the archived base, start at the
/// first entry kept): `line` is called once per entry with one line of JSON
/// (with its trailing newline, not NUL-terminated, valid during the call)
/// and `ctx`; it returns 0 to go on, anything else to stop. `*out_entries`
/// receives the number of entries delivered, also when the callback
/// stopped. Memory stays bounded whatever the length of the chain.
///
/// Errors: `STOPPED` (the callback asked to stop; `*out_entries` written),
/// `AUDIT_CHAIN_BROKEN`, `TAMPERED`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_export_audit_cb(
    srs: *const sesphr_srs,
    from_seq: u64,
    line: Option<extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void) -> c_int>,
    ctx: *mut c_void,
    out_entries: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let f = line.ok_or_else(|| super::null("line"))?;
        let o = out("out_entries", out_entries)?;
        let mut sink = LineSink {
            f,
            ctx,
            line: Vec::new(),
            stopped: false,
            delivered: 0,
        };
        match s.export_audit_jsonl(from_seq, &mut sink) {
            Ok(n) => {
                *o = n;
                Ok(())
            }
            Err(_) if sink.stopped => {
                *o = sink.delivered;
                Err(sesphr_result::Stopped)
            }
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
    /// Lines the callback accepted.
    delivered: u64,
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
                self.delivered += 1;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hands every byte written to it to a C callback, in the pieces written.
struct ChunkSink {
    f: extern "C" fn(*const u8, usize, *mut c_void) -> c_int,
    ctx: *mut c_void,
    stopped: bool,
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && (self.f)(buf.as_ptr(), buf.len(), self.ctx) != 0 {
            self.stopped = true;
            return Err(std::io::Error::other("stopped by the callback"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Archives the audit chain up to the checkpoint at `upto` (make one with
/// `sesphr_srs_checkpoint`): the segment (SPEC §6.3: from the current base
/// to `upto`, signed checkpoints at both ends) is handed to `write` in
/// pieces (`data`, `len`, valid during the call; return 0 to go on), then
/// those entries are deleted from the store. Nothing is deleted unless the
/// whole segment was delivered. `*out_entries` receives the number of
/// entries archived. Keep the segment: `sesphr_verify_segment` checks it
/// with the SRS's key alone.
///
/// Errors: `DIVERGED` (no checkpoint at `upto`, or at or before the current
/// base), `STOPPED` (nothing archived, `*out_entries` = 0),
/// `AUDIT_CHAIN_BROKEN`, `TAMPERED`, `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_archive_audit_cb(
    srs: *const sesphr_srs,
    upto: u64,
    write: Option<extern "C" fn(data: *const u8, len: usize, ctx: *mut c_void) -> c_int>,
    ctx: *mut c_void,
    out_entries: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let f = write.ok_or_else(|| super::null("write"))?;
        let o = out("out_entries", out_entries)?;
        let mut sink = ChunkSink {
            f,
            ctx,
            stopped: false,
        };
        match s.archive_audit(upto, &mut sink) {
            Ok(n) => {
                *o = n;
                Ok(())
            }
            Err(_) if sink.stopped => {
                *o = 0;
                Err(sesphr_result::Stopped)
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Checks an archived audit segment with the SRS's 32-byte public key
/// alone (no SRS, no database): the chain inside it, and the signed
/// checkpoints at both ends. Writes its first and last sequence numbers and
/// its end checkpoint (`SESPHR_CHECKPOINT_LEN` bytes, `out_checkpoint_len`
/// at least that).
///
/// Errors: `MALFORMED`, `INVALID_CHECKPOINT`, `AUDIT_CHAIN_BROKEN`,
/// `NON_CANONICAL_POINT`, `IDENTITY_POINT` (the key), `INVALID_LENGTH`,
/// `BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_verify_segment(
    segment: *const u8,
    segment_len: usize,
    srs_key: *const u8,
    srs_key_len: usize,
    out_first_seq: *mut u64,
    out_last_seq: *mut u64,
    out_checkpoint: *mut u8,
    out_checkpoint_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((segment, segment_len), (srs_key, srs_key_len); out_first_seq, out_last_seq, out_checkpoint);
        let mut seg = bytes("segment", segment, segment_len)?;
        let key = self::srs_key("srs_key", srs_key, srs_key_len)?;
        let (first, last) = (
            out("out_first_seq", out_first_seq)?,
            out("out_last_seq", out_last_seq)?,
        );
        let cp = fixed_out(
            "out_checkpoint",
            out_checkpoint,
            out_checkpoint_len,
            SESPHR_CHECKPOINT_LEN,
        )?;
        let info = sesphr::srs::verify_segment(&mut seg, &key)?;
        *first = info.first_seq;
        *last = info.last_seq;
        cp.copy_from_slice(&info.end.to_bytes());
        Ok(())
    })
}

/// Catches up with the changes other processes made to a shared
/// (PostgreSQL) store now, without waiting for a request; with
/// `no_follow` set, this is how the host keeps the SRS current.
///
/// Errors: `STORE`, `TAMPERED`, `ROLLED_BACK`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_sync(srs: *const sesphr_srs) -> sesphr_result {
    run(|| {
        handle_ref("srs", srs)?.sync()?;
        Ok(())
    })
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
    srs_to_buffer(srs, ("out_checkpoint", out_checkpoint), |s| {
        Ok(s.checkpoint()?.to_bytes())
    })
}

/// Writes a sealed snapshot of the registry into the store, replacing the
/// one it kept, after a checkpoint: the next open reads it and
/// authenticates only the rows written since, instead of every row.
/// Nothing in it is trusted: an open that finds it edited, cut, stale or
/// from another database ignores it and verifies every row. A revocation or
/// removal deletes it (it holds the key that leaves). Commits wait while
/// it is written. `*out_seq` receives the audit sequence number it stands
/// at.
///
/// Errors: `STORE`, `TAMPERED`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_write_snapshot(
    srs: *const sesphr_srs,
    out_seq: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out("out_seq", out_seq)?;
        // The stores of this ABI all keep a snapshot.
        let info = s.write_snapshot()?.ok_or(sesphr_result::InvalidState)?;
        *o = info.seq;
        Ok(())
    })
}

/// Whether the last open read the registry from the store's snapshot:
/// `*out_used` is 1 and `*out_seq` the snapshot's audit sequence number,
/// or 0 and 0 (no snapshot kept, or one that was ignored).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_snapshot_used(
    srs: *const sesphr_srs,
    out_used: *mut u8,
    out_seq: *mut u64,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let (u, q) = (out("out_used", out_used)?, out("out_seq", out_seq)?);
        (*u, *q) = match s.open_report().snapshot {
            sesphr::srs::SnapshotUse::Used { seq, .. } => (1, seq),
            _ => (0, 0),
        };
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
    srs_to_buffer(srs, ("out_checkpoint", out_checkpoint), |s| {
        let cp = s.latest_checkpoint().ok_or(sesphr_result::InvalidState)?;
        Ok(cp.to_bytes())
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
        let s = handle_ref("srs", srs)?;
        let cp = Checkpoint::from_bytes(bytes("checkpoint", checkpoint, checkpoint_len)?)?;
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
        let s = handle_ref("srs", srs)?;
        let o = fixed_out("out_key", out_key, out_key_len, 32)?;
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
        let s = handle_ref("srs", srs)?;
        let o = out("out_keypair", out_keypair)?;
        let user = bytes("user", user, user_len)?;
        let kp = s.issue_keys(&super::named("user", Identity::from_utf8(user))?, epoch)?;
        *o = into_handle::<sesphr_keypair>(kp);
        Ok(())
    })
}

/// The patient's disclosure report for `from <= time <= to` (`"SPDR"`, into
/// a new buffer): a fresh checkpoint, every disclosure of the window up to
/// it — checked true and complete by the SRS — each with its Merkle
/// inclusion proof, signed by the SRS. Hand it to the patient's device,
/// which checks it with `sesphr_disclosure_report_verify`.
///
/// Errors: `UNKNOWN_PATIENT` is not returned (an unknown patient has an
/// empty report); `TAMPERED` if the store's index or log does not add up;
/// `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_disclosure_report(
    srs: *const sesphr_srs,
    patient: *const u8,
    patient_len: usize,
    from: u64,
    to: u64,
    out_report: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out("out_report", out_report)?;
        let r = s.disclosure_report(&identity("patient", patient, patient_len)?, from, to)?;
        put_buffer(o, r.to_bytes());
        Ok(())
    })
}

/// Checks a disclosure report (`"SPDR"`) with the SRS's 32-byte public key
/// alone and writes how many disclosures it proves into `*out_count` (may
/// be NULL).
///
/// Errors: `INVALID_CHECKPOINT`, `INVALID_SIGNATURE`, `INVALID_LOG_PROOF`,
/// `MALFORMED`; decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_disclosure_report_verify(
    report: *const u8,
    report_len: usize,
    srs_public_key: *const u8,
    srs_public_key_len: usize,
    out_count: *mut usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((report, report_len), (srs_public_key, srs_public_key_len));
        let r = sesphr::srs::DisclosureReport::from_bytes(bytes("report", report, report_len)?)?;
        let k = srs_key("srs_public_key", srs_public_key, srs_public_key_len)?;
        let n = r.verify(&k)?.len();
        if let Ok(c) = out("out_count", out_count) {
            *c = n;
        }
        Ok(())
    })
}

/// A Merkle consistency proof (`"SPCN"`, into a new buffer) from the log of
/// `old_size` entries to the log of `new_size` (each a checkpoint's `seq`):
/// a witness holding an older checkpoint asks for one to the latest and
/// checks it with `sesphr_verify_consistency`.
///
/// Errors: `INVALID_LOG_PROOF` for sizes out of order or beyond the log;
/// `TAMPERED`; `STORE`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_consistency_proof(
    srs: *const sesphr_srs,
    old_size: u64,
    new_size: u64,
    out_proof: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let s = handle_ref("srs", srs)?;
        let o = out("out_proof", out_proof)?;
        put_buffer(o, s.consistency_proof(old_size, new_size)?.to_bytes());
        Ok(())
    })
}

/// Checks, with the SRS's 32-byte public key alone, that the log checkpoint
/// `old` signs is a prefix of the log checkpoint `new` signs: a tail cut, a
/// rewritten entry or a fork is refused.
///
/// Errors: `INVALID_CHECKPOINT` (not signed by the key, or version 1);
/// `INVALID_LOG_PROOF`; decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_verify_consistency(
    old_checkpoint: *const u8,
    old_checkpoint_len: usize,
    new_checkpoint: *const u8,
    new_checkpoint_len: usize,
    proof: *const u8,
    proof_len: usize,
    srs_public_key: *const u8,
    srs_public_key_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!(
            (old_checkpoint, old_checkpoint_len),
            (new_checkpoint, new_checkpoint_len),
            (proof, proof_len),
            (srs_public_key, srs_public_key_len)
        );
        let old =
            Checkpoint::from_bytes(bytes("old_checkpoint", old_checkpoint, old_checkpoint_len)?)?;
        let new =
            Checkpoint::from_bytes(bytes("new_checkpoint", new_checkpoint, new_checkpoint_len)?)?;
        let p = sesphr::merkle::ConsistencyProof::from_bytes(bytes("proof", proof, proof_len)?)?;
        let k = srs_key("srs_public_key", srs_public_key, srs_public_key_len)?;
        sesphr::srs::verify_consistency(&old, &new, &p, &k)?;
        Ok(())
    })
}

/// The SRS's 32-byte Ed25519 public key.
fn srs_key(
    name: &'static str,
    ptr: *const u8,
    len: usize,
) -> Result<sesphr::srs::VerifyingKey, sesphr_result> {
    let k: &[u8; 32] = bytes(name, ptr, len)?
        .try_into()
        .map_err(|_| sesphr_result::InvalidLength)?;
    Ok(sesphr::consent::decode_verifying_key(k)?)
}
