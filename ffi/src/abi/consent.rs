//! Signed consent from C: the patient's consent key, proofs of possession,
//! registrations, signed grants, revocations and refusals, and receipts.

use super::keys::{sesphr_keypair, sesphr_patient_keys};
use super::{
    array, bytes, fixed_out, handle_ref, identity, label, out, put_buffer, run, sesphr_buffer,
    sesphr_result,
};
use sesphr::ReKey;
use sesphr::consent::{
    GrantOptions, KeyProof, PatientRegistration, RequestId, RevocationReceipt, decode_verifying_key,
};
use sesphr::model::Scope;

/// Length of an Ed25519 public key (a consent key, the SRS's key).
pub const SESPHR_SIGNING_PUBLIC_KEY_LEN: usize = 32;
/// Length of a proof of possession of a key.
pub const SESPHR_KEY_PROOF_LEN: usize = 64;
/// Length of an access request identifier.
pub const SESPHR_REQUEST_ID_LEN: usize = 16;
const _: () = {
    assert!(SESPHR_KEY_PROOF_LEN == KeyProof::LEN);
    assert!(SESPHR_REQUEST_ID_LEN == RequestId::LEN);
};

/// The terms of a grant, for `sesphr_sign_grant`. Initialize it with
/// `SESPHR_GRANT_OPTIONS_INIT` (its size, then zeroes: every record, no
/// expiry, no request, not break-glass, signed now), then set what you
/// need. The structure may grow at its end in later versions; a caller
/// built against this header keeps working (see `struct_size`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct sesphr_grant_options {
    /// `sizeof(sesphr_grant_options)` as the caller's header declares it
    /// (the `_INIT` macro sets it). A size this library does not know is
    /// `STRUCT_SIZE`; a smaller, older one gets the defaults for the fields
    /// it lacks.
    pub struct_size: usize,
    /// Nonzero: only records created at or after `since`.
    pub has_since: u32,
    /// See `has_since`.
    pub since: u64,
    /// Nonzero: the grant stops at `expiry`.
    pub has_expiry: u32,
    /// See `has_expiry`.
    pub expiry: u64,
    /// The access request this grant answers (`SESPHR_REQUEST_ID_LEN`
    /// bytes), or NULL.
    pub request: *const u8,
    /// A break-glass grant for users of this role (its name), or NULL.
    pub emergency_role: *const u8,
    /// Length of `emergency_role`.
    pub emergency_role_len: usize,
    /// When it is signed (seconds since the Unix epoch); 0: now.
    pub issued_at: u64,
    /// The user's ML-KEM-768 encapsulation key (`SESPHR_PQ_PUBLIC_KEY_LEN`
    /// bytes, `sesphr_keypair_pq_public_key`), or NULL: the grant then
    /// names its fingerprint, and the SRS re-wraps hybrid (post-quantum)
    /// headers only to that key (`DENIED_PQ_KEY_NOT_GRANTED` otherwise).
    pub user_pq_key: *const u8,
}

/// Writes the patient's 32-byte consent public key (Ed25519) into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_consent_public_key(
    keys: *const sesphr_patient_keys,
    out_key: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        fixed_out("out_key", out_key, out_len, SESPHR_SIGNING_PUBLIC_KEY_LEN)?
            .copy_from_slice(k.consent_public().as_bytes());
        Ok(())
    })
}

/// Writes the 64-byte proof that the holder of `keypair` registers it as
/// `identity` (what `sesphr_srs_register_user` requires) into `out`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_prove_possession(
    keypair: *const sesphr_keypair,
    user: *const u8,
    user_len: usize,
    out_proof: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((user, user_len); keypair, out_proof);
        let kp = handle_ref("keypair", keypair)?;
        let id = identity("user", user, user_len)?;
        let o = fixed_out("out_proof", out_proof, out_len, SESPHR_KEY_PROOF_LEN)?;
        o.copy_from_slice(&kp.prove_possession(&id).to_bytes());
        Ok(())
    })
}

/// The patient's signed registration (`"SPRG"`, into a new buffer) with
/// the portion keys `(labels[i], epochs[i])` for `i < count`: what
/// `sesphr_srs_register_patient` and `sesphr_srs_add_portions` take.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_registration(
    keys: *const sesphr_patient_keys,
    labels: *const *const u8,
    label_lens: *const usize,
    epochs: *const u32,
    count: usize,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        if count > PatientRegistration::MAX_PORTIONS {
            return Err(sesphr_result::InvalidLength);
        }
        let (ptrs, lens, epochs) = (
            array("labels", labels, count)?,
            array("label_lens", label_lens, count)?,
            array("epochs", epochs, count)?,
        );
        let portions = ptrs
            .iter()
            .zip(lens)
            .zip(epochs)
            .map(|((&p, &l), &e)| Ok((label("labels[]", p, l)?, e)))
            .collect::<Result<Vec<_>, sesphr_result>>()?;
        put_buffer(o, PatientRegistration::new(k, &portions)?.to_bytes());
        Ok(())
    })
}

/// Signs a grant (`"SPSG"`, into a new buffer) of portion `label`/`epoch`
/// to `user` for the encoded re-encryption key `rekey` (made for that
/// user). `options` may be NULL (defaults). Hand both to `sesphr_srs_grant`.
///
/// Errors: `KEY_MISMATCH` if `rekey` is not from this portion key;
/// `INVALID_ARGUMENT` for a bad role name; decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sign_grant(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    epoch: u32,
    user: *const u8,
    user_len: usize,
    rekey: *const u8,
    rekey_len: usize,
    options: *const sesphr_grant_options,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let (l, u, rk) = (
            bytes("portion_label", portion_label, portion_label_len)?,
            bytes("user", user, user_len)?,
            bytes("rekey", rekey, rekey_len)?,
        );
        let (l, u) = (
            label("portion_label", l.as_ptr(), l.len())?,
            identity("user", u.as_ptr(), u.len())?,
        );
        let rk = ReKey::from_bytes(rk)?;
        let opts = grant_options(options)?;
        put_buffer(o, k.sign_grant(&l, epoch, &u, &rk, &opts)?.to_bytes());
        Ok(())
    })
}

// SAFETY: zeroes are a valid `sesphr_grant_options` (integers and raw
// pointers), and `struct_size` is its first field.
unsafe impl super::Extensible for sesphr_grant_options {
    const SIZES: &'static [usize] = &[
        core::mem::offset_of!(Self, since),
        core::mem::offset_of!(Self, has_expiry),
        core::mem::offset_of!(Self, expiry),
        core::mem::offset_of!(Self, request),
        core::mem::offset_of!(Self, emergency_role),
        core::mem::offset_of!(Self, emergency_role_len),
        core::mem::offset_of!(Self, issued_at),
        // The size before `user_pq_key` was added.
        core::mem::offset_of!(Self, user_pq_key),
        core::mem::size_of::<Self>(),
    ];
}

/// The Rust terms of a C `sesphr_grant_options` (NULL: the defaults).
pub(crate) fn grant_options(
    options: *const sesphr_grant_options,
) -> Result<GrantOptions, sesphr_result> {
    let mut opts = GrantOptions::default();
    if let Some(c) = super::extensible(options)? {
        if c.has_since != 0 {
            opts.scope = Scope::Since(c.since);
        }
        if c.has_expiry != 0 {
            opts.expiry = Some(c.expiry);
        }
        if !c.request.is_null() {
            opts.request = Some(RequestId::from_slice(bytes(
                "options->request",
                c.request,
                SESPHR_REQUEST_ID_LEN,
            )?)?);
        }
        if let Some(role) = super::optional_bytes(
            "options->emergency_role",
            c.emergency_role,
            c.emergency_role_len,
        )? {
            opts.emergency = Some(super::srs::role_arg(
                "options->emergency_role",
                role.as_ptr(),
                role.len(),
            )?);
        }
        if c.issued_at != 0 {
            opts.issued_at = Some(c.issued_at);
        }
        if !c.user_pq_key.is_null() {
            let key = bytes(
                "options->user_pq_key",
                c.user_pq_key,
                sesphr::PQ_PUBLIC_KEY_LEN,
            )?;
            opts.user_pq_key = Some(sesphr::PqPublicKey::from_bytes(key)?.fingerprint());
        }
    }
    Ok(opts)
}

/// Signs a revocation (`"SPSV"`, into a new buffer) of every grant of
/// portion `label` to `user`, dated now. Hand it to `sesphr_srs_revoke`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sign_revocation(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    user: *const u8,
    user_len: usize,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((portion_label, portion_label_len), (user, user_len); keys, out_buffer);
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let l = label("portion_label", portion_label, portion_label_len)?;
        let u = identity("user", user, user_len)?;
        put_buffer(o, k.sign_revocation(&l, &u)?.to_bytes());
        Ok(())
    })
}

/// Signs the refusal (`"SPSF"`, into a new buffer) of the access request
/// `request` (`SESPHR_REQUEST_ID_LEN` bytes) with a reason (1–1024 bytes of
/// text). Hand it to `sesphr_srs_refuse_request`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_sign_refusal(
    keys: *const sesphr_patient_keys,
    request: *const u8,
    request_len: usize,
    reason: *const u8,
    reason_len: usize,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((request, request_len), (reason, reason_len); keys, out_buffer);
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let id = RequestId::from_slice(bytes("request", request, request_len)?)?;
        let reason = core::str::from_utf8(bytes("reason", reason, reason_len)?)
            .map_err(|_| sesphr_result::Malformed)?;
        put_buffer(o, k.sign_refusal(id, reason)?.to_bytes());
        Ok(())
    })
}

/// Checks a revocation receipt (`"SPRR"`) against the SRS's 32-byte public
/// key (`sesphr_srs_verifying_key`), offline.
///
/// Errors: `INVALID_SIGNATURE`; decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_revocation_receipt_verify(
    receipt: *const u8,
    receipt_len: usize,
    srs_public_key: *const u8,
    srs_public_key_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((receipt, receipt_len), (srs_public_key, srs_public_key_len));
        let r = RevocationReceipt::from_bytes(bytes("receipt", receipt, receipt_len)?)?;
        let k: &[u8; 32] = bytes("srs_public_key", srs_public_key, srs_public_key_len)?
            .try_into()
            .map_err(|_| sesphr_result::InvalidLength)?;
        r.verify(&decode_verifying_key(k)?)?;
        Ok(())
    })
}
