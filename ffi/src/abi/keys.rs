//! Keys from C: user key pairs, patient keys, portion public keys,
//! re-encryption keys.

use super::{
    Handle, array, bytes, fixed_out, free_handle, handle_ref, identity, into_handle, label, out,
    put_buffer, run, sesphr_buffer, sesphr_result,
};
use core::ffi::c_uint;
use sesphr::{
    Error, EscrowKeyIssuer, Identity, KeyPair, PatientKeys, PortionLabel, PqSecretKey, PublicKey,
    ReKey, SecretKey, SrsPqPublicKey,
};

/// Length of an encoded public key.
pub const SESPHR_PUBLIC_KEY_LEN: usize = 32;
/// Length of an encoded secret key.
pub const SESPHR_SECRET_KEY_LEN: usize = 32;
/// Length of a patient's master secret.
pub const SESPHR_MASTER_SECRET_LEN: usize = 32;
/// Length of an ML-KEM-768 seed `d ‖ z` (a user's post-quantum secret).
pub const SESPHR_PQ_SEED_LEN: usize = 64;
/// Length of an ML-KEM-768 encapsulation key.
pub const SESPHR_PQ_PUBLIC_KEY_LEN: usize = 1184;
/// Length of a post-quantum stanza (an ML-KEM-768 ciphertext and a wrapped
/// secret), as a hybrid re-capsule carries after `X_e`.
pub const SESPHR_PQ_STANZA_LEN: usize = 1136;

// Every C constant is the Rust one: a change on either side fails the build.
const _: () = {
    assert!(SESPHR_PUBLIC_KEY_LEN == PublicKey::LEN);
    assert!(SESPHR_SECRET_KEY_LEN == SecretKey::LEN);
    assert!(SESPHR_MASTER_SECRET_LEN == PatientKeys::MASTER_LEN);
    assert!(SESPHR_PQ_SEED_LEN == sesphr::PQ_SEED_LEN);
    assert!(SESPHR_PQ_PUBLIC_KEY_LEN == sesphr::PQ_PUBLIC_KEY_LEN);
    assert!(SESPHR_PQ_STANZA_LEN == sesphr::PQ_STANZA_LEN);
};

/// Generates a hybrid key pair (ristretto255 and an independent
/// ML-KEM-768 key) from the OS RNG into `*out` (free with
/// `sesphr_keypair_free`): what a user needs to read hybrid
/// (post-quantum) portions.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_generate_hybrid(
    out_keypair: *mut *mut sesphr_keypair,
) -> sesphr_result {
    run(|| {
        let o = out("out_keypair", out_keypair)?;
        *o = into_handle::<sesphr_keypair>(KeyPair::generate_hybrid());
        Ok(())
    })
}

/// Restores a hybrid key pair from its 32-byte secret key and its 64-byte
/// ML-KEM-768 seed (`sesphr_keypair_pq_seed`).
///
/// Errors: `INVALID_LENGTH`, `NON_CANONICAL_SCALAR`, `ZERO_SCALAR`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_from_secret_hybrid(
    secret: *const u8,
    secret_len: usize,
    pq_seed: *const u8,
    pq_seed_len: usize,
    out_keypair: *mut *mut sesphr_keypair,
) -> sesphr_result {
    run(|| {
        super::check_null!((secret, secret_len), (pq_seed, pq_seed_len); out_keypair);
        let o = out("out_keypair", out_keypair)?;
        let sk = SecretKey::from_slice(bytes("secret", secret, secret_len)?)?;
        let seed = bytes("pq_seed", pq_seed, pq_seed_len)?;
        let seed: &[u8; SESPHR_PQ_SEED_LEN] =
            seed.try_into().map_err(|_| sesphr::Error::InvalidLength {
                what: "ML-KEM-768 seed",
                expected: SESPHR_PQ_SEED_LEN,
                actual: seed.len(),
            })?;
        let kp = KeyPair::from_secret(sk).with_pq(PqSecretKey::from_seed(seed));
        *o = into_handle::<sesphr_keypair>(kp);
        Ok(())
    })
}

/// Writes the key pair's 1,184-byte ML-KEM-768 encapsulation key into
/// `out` (`out_len` >= 1184): what `sesphr_srs_register_pq_key` registers.
///
/// Errors: `PQ_KEY_MISSING` for a key pair without an ML-KEM part.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_pq_public_key(
    keypair: *const sesphr_keypair,
    out_key: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        let kp = handle_ref("keypair", keypair)?;
        let o = fixed_out("out_key", out_key, out_len, SESPHR_PQ_PUBLIC_KEY_LEN)?;
        let pk = kp.pq_public().ok_or(sesphr::Error::PqKeyMissing)?;
        o.copy_from_slice(pk.as_bytes());
        Ok(())
    })
}

/// Writes the key pair's 64-byte ML-KEM-768 seed into `out` (`out_len` >=
/// 64), for the host's own key storage. Secret: zeroize it when done.
///
/// Errors: `PQ_KEY_MISSING` for a key pair without an ML-KEM part.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_pq_seed(
    keypair: *const sesphr_keypair,
    out_seed: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        let kp = handle_ref("keypair", keypair)?;
        let o = fixed_out("out_seed", out_seed, out_len, SESPHR_PQ_SEED_LEN)?;
        let pq = kp.pq().ok_or(sesphr::Error::PqKeyMissing)?;
        o.copy_from_slice(&*pq.seed_bytes());
        Ok(())
    })
}

/// A user's key pair. Immutable: may be shared between threads.
pub struct sesphr_keypair {
    _private: [u8; 0],
}

impl Handle for sesphr_keypair {
    type Rust = KeyPair;
}

/// A patient's master secret and identity, from which every portion key
/// is derived. Immutable: may be shared between threads.
pub struct sesphr_patient_keys {
    _private: [u8; 0],
}

impl Handle for sesphr_patient_keys {
    type Rust = PatientKeys;
}

/// Generates a key pair from the OS RNG into `*out` (free with
/// `sesphr_keypair_free`).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_generate(out_keypair: *mut *mut sesphr_keypair) -> sesphr_result {
    run(|| {
        let o = out("out_keypair", out_keypair)?;
        *o = into_handle::<sesphr_keypair>(KeyPair::generate());
        Ok(())
    })
}

/// Restores a key pair from its 32-byte secret key.
///
/// Errors: `INVALID_LENGTH`, `NON_CANONICAL_SCALAR`, `ZERO_SCALAR`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_from_secret(
    secret: *const u8,
    secret_len: usize,
    out_keypair: *mut *mut sesphr_keypair,
) -> sesphr_result {
    run(|| {
        let o = out("out_keypair", out_keypair)?;
        let kp = KeyPair::from_secret(SecretKey::from_slice(bytes("secret", secret, secret_len)?)?);
        *o = into_handle::<sesphr_keypair>(kp);
        Ok(())
    })
}

/// Writes the 32-byte public key into `out` (`out_len` >= 32).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_public_key(
    keypair: *const sesphr_keypair,
    out_key: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        let kp = handle_ref("keypair", keypair)?;
        fixed_out("out_key", out_key, out_len, SESPHR_PUBLIC_KEY_LEN)?
            .copy_from_slice(kp.public().as_bytes());
        Ok(())
    })
}

/// Writes the 32-byte secret key into `out` (`out_len` >= 32), for the
/// host's own key storage. Secret: zeroize it when done.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_secret_key(
    keypair: *const sesphr_keypair,
    out_key: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        let kp = handle_ref("keypair", keypair)?;
        fixed_out("out_key", out_key, out_len, SESPHR_SECRET_KEY_LEN)?
            .copy_from_slice(&*kp.secret().to_bytes());
        Ok(())
    })
}

/// Exports the secret key as a key backup (SPEC §3.4: the key with a check
/// value, so that a corrupted copy is refused on import instead of being
/// restored as another key) into a new buffer. Secret material.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_export(
    keypair: *const sesphr_keypair,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    export_from(("keypair", keypair), out_buffer, |kp: &KeyPair| {
        kp.secret().to_backup().to_vec()
    })
}

/// As `sesphr_keypair_export`, in the text form for paper (Bech32m,
/// `sesphr-secret1…`; the buffer holds the ASCII text, no NUL). Secret.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_export_text(
    keypair: *const sesphr_keypair,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    export_from(("keypair", keypair), out_buffer, |kp: &KeyPair| {
        kp.secret().to_backup_text().as_bytes().to_vec()
    })
}

/// Restores a key pair from either form of `sesphr_keypair_export`
/// (text: whitespace ignored, all upper or all lower case).
///
/// Errors: `BAD_CHECKSUM` (corrupted or mistyped: nothing restored),
/// `INVALID_LENGTH`, `BAD_MAGIC`, `UNSUPPORTED_VERSION`, `MALFORMED`
/// (a backup of another kind), `NON_CANONICAL_SCALAR`, `ZERO_SCALAR`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_import(
    backup: *const u8,
    backup_len: usize,
    out_keypair: *mut *mut sesphr_keypair,
) -> sesphr_result {
    run(|| {
        let o = out("out_keypair", out_keypair)?;
        let sk = import_backup(
            "backup",
            backup,
            backup_len,
            SecretKey::from_backup_text,
            SecretKey::from_backup,
        )?;
        *o = into_handle::<sesphr_keypair>(KeyPair::from_secret(sk));
        Ok(())
    })
}

/// Exports a 32-byte escrow seed (`sesphr_srs_new_in_memory` and
/// `sesphr_srs_open_*` take it) as a key backup into a new buffer; `text`
/// nonzero: the Bech32m text form (`sesphr-escrow1…`). Secret material.
///
/// Errors: `INVALID_LENGTH` unless `seed_len` is 32.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_escrow_seed_export(
    seed: *const u8,
    seed_len: usize,
    text: c_uint,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((seed, seed_len); out_buffer);
        let seed: &[u8; 32] = bytes("seed", seed, seed_len)?
            .try_into()
            .map_err(|_| sesphr_result::InvalidLength)?;
        let o = out("out_buffer", out_buffer)?;
        let issuer = EscrowKeyIssuer::from_seed(seed);
        let data = if text == 0 {
            issuer.to_backup().to_vec()
        } else {
            issuer.to_backup_text().as_bytes().to_vec()
        };
        put_buffer(o, data);
        Ok(())
    })
}

/// Restores a 32-byte escrow seed from either form of
/// `sesphr_escrow_seed_export` into `out_seed` (`out_len` >= 32). Secret:
/// zeroize it when done.
///
/// Errors: as `sesphr_keypair_import`; `BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_escrow_seed_import(
    backup: *const u8,
    backup_len: usize,
    out_seed: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        super::check_null!((backup, backup_len); out_seed);
        let issuer = import_backup(
            "backup",
            backup,
            backup_len,
            EscrowKeyIssuer::from_backup_text,
            EscrowKeyIssuer::from_backup,
        )?;
        fixed_out("out_seed", out_seed, out_len, EscrowKeyIssuer::SEED_LEN)?
            .copy_from_slice(issuer.seed_bytes().as_ref());
        Ok(())
    })
}

/// The body of the key-backup exports: `export` of the value behind
/// `handle`, into a new buffer in `*out_buffer` (zeroized when freed).
fn export_from<H: Handle>(
    (name, handle): (&'static str, *const H),
    out_buffer: *mut *mut sesphr_buffer,
    export: impl FnOnce(&H::Rust) -> Vec<u8>,
) -> sesphr_result {
    run(|| {
        let value = handle_ref(name, handle)?;
        let o = out("out_buffer", out_buffer)?;
        put_buffer(o, export(value));
        Ok(())
    })
}

/// Imports a key backup in either form: text if it starts with `sesphr-`
/// (in either case, after leading whitespace), binary otherwise.
fn import_backup<T>(
    name: &'static str,
    ptr: *const u8,
    len: usize,
    text: fn(&str) -> sesphr::Result<T>,
    binary: fn(&[u8]) -> sesphr::Result<T>,
) -> Result<T, sesphr_result> {
    let b = bytes(name, ptr, len)?;
    let is_text = b
        .trim_ascii_start()
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"sesphr-"));
    if is_text {
        let t = core::str::from_utf8(b).map_err(|_| sesphr_result::Malformed)?;
        Ok(text(t)?)
    } else {
        Ok(binary(b)?)
    }
}

/// Frees (and zeroizes) a key pair. NULL does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_keypair_free(keypair: *mut sesphr_keypair) {
    free_handle(keypair);
}

/// Generates a patient's master secret from the OS RNG, for identity
/// `patient_id` (1–255 bytes of UTF-8).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_generate(
    patient_id: *const u8,
    patient_id_len: usize,
    out_keys: *mut *mut sesphr_patient_keys,
) -> sesphr_result {
    run(|| {
        let o = out("out_keys", out_keys)?;
        let id = identity("patient_id", patient_id, patient_id_len)?;
        *o = into_handle::<sesphr_patient_keys>(PatientKeys::generate(id));
        Ok(())
    })
}

/// Restores patient keys from the identity and the 32-byte master secret.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_from_master(
    patient_id: *const u8,
    patient_id_len: usize,
    master: *const u8,
    master_len: usize,
    out_keys: *mut *mut sesphr_patient_keys,
) -> sesphr_result {
    run(|| {
        let o = out("out_keys", out_keys)?;
        let (patient_id, master) = (
            bytes("patient_id", patient_id, patient_id_len)?,
            bytes("master", master, master_len)?,
        );
        let id = super::named("patient_id", Identity::from_utf8(patient_id))?;
        let m: &[u8; 32] = master
            .try_into()
            .map_err(|_| sesphr_result::InvalidLength)?;
        *o = into_handle::<sesphr_patient_keys>(PatientKeys::from_master(id, m));
        Ok(())
    })
}

/// Exports master secret and identity as a key backup (SPEC §3.4: with a
/// check value, so that a corrupted copy is refused on import instead of
/// being restored as another key) into a new buffer. Secret material.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_export(
    keys: *const sesphr_patient_keys,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    export_from(("keys", keys), out_buffer, |k: &PatientKeys| {
        k.to_bytes().to_vec()
    })
}

/// As `sesphr_patient_keys_export`, in the text form for a paper backup
/// (Bech32m, `sesphr-patient1…`; the buffer holds the ASCII text, no NUL).
/// Secret material.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_export_text(
    keys: *const sesphr_patient_keys,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    export_from(("keys", keys), out_buffer, |k: &PatientKeys| {
        k.to_backup_text().as_bytes().to_vec()
    })
}

/// Imports either form of `sesphr_patient_keys_export` (text: whitespace
/// ignored), or an export of sesphr 0.1 (`"SPMK"`, which has no check
/// value: re-export it).
///
/// Errors: `BAD_CHECKSUM` (corrupted or mistyped: nothing restored),
/// `INVALID_LENGTH`, `BAD_MAGIC`, `UNSUPPORTED_VERSION`, `MALFORMED`
/// (a backup of another kind), `INVALID_IDENTITY`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_import(
    encoded: *const u8,
    encoded_len: usize,
    out_keys: *mut *mut sesphr_patient_keys,
) -> sesphr_result {
    run(|| {
        let o = out("out_keys", out_keys)?;
        let k = import_backup(
            "encoded",
            encoded,
            encoded_len,
            PatientKeys::from_backup_text,
            PatientKeys::from_bytes,
        )?;
        *o = into_handle::<sesphr_patient_keys>(k);
        Ok(())
    })
}

/// Writes the 32-byte master secret into `out` (`out_len` >= 32). Secret.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_master(
    keys: *const sesphr_patient_keys,
    out_master: *mut u8,
    out_len: usize,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        fixed_out("out_master", out_master, out_len, SESPHR_MASTER_SECRET_LEN)?
            .copy_from_slice(&*k.master_bytes());
        Ok(())
    })
}

/// The encoded public key (`"SPPK"`) of portion `label` in key epoch
/// `epoch`, into a new buffer: what an encryptor (a hospital) needs, and what
/// the SRS registers.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_portion_public_key(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    epoch: u32,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let l = label("portion_label", portion_label, portion_label_len)?;
        put_buffer(o, k.portion_public(&l, epoch).to_bytes());
        Ok(())
    })
}

/// The encoded hybrid portion key (`"SPHK"`) of portion `label` in key
/// epoch `epoch`, sealing to the SRS's post-quantum key `srs_pq_key`
/// (`"SPQK"`, from `sesphr_srs_pq_public_key`), into a new buffer: what an
/// encryptor passes to `sesphr_seal` to seal hybrid (post-quantum) headers.
///
/// Errors: `INVALID_LABEL`; decoding errors of `srs_pq_key` (`MALFORMED`
/// for an ML-KEM key that fails FIPS 203's modulus check).
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_hybrid_portion_public_key(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    epoch: u32,
    srs_pq_key: *const u8,
    srs_pq_key_len: usize,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((portion_label, portion_label_len), (srs_pq_key, srs_pq_key_len); keys, out_buffer);
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let l = label("portion_label", portion_label, portion_label_len)?;
        let srs = SrsPqPublicKey::from_bytes(bytes("srs_pq_key", srs_pq_key, srs_pq_key_len)?)?;
        put_buffer(o, k.hybrid_portion_public(&l, epoch, &srs)?.to_bytes());
        Ok(())
    })
}

/// The encoded hybrid portion key (`"SPHK"`) of portion `label` in key
/// epoch `epoch` for a threshold SRS of `count` nodes, into a new buffer:
/// the post-quantum secret of each header sealed to it is split
/// `threshold`-of-`count`, node `i`'s share sealed to `srs_pq_keys[i − 1]`
/// (`"SPQK"`, that node's `sesphr_srs_pq_public_key`; node `i` is the one
/// granted share `i`).
///
/// Errors: `INVALID_THRESHOLD` unless `2 <= threshold <= count <=
/// SESPHR_MAX_PQ_NODES`; `INVALID_LABEL`; decoding errors of the keys.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_patient_keys_hybrid_portion_public_key_split(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    epoch: u32,
    threshold: c_uint,
    srs_pq_keys: *const *const u8,
    srs_pq_key_lens: *const usize,
    count: usize,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        super::check_null!((portion_label, portion_label_len), (srs_pq_keys, count), (srs_pq_key_lens, count); keys, out_buffer);
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let l = label("portion_label", portion_label, portion_label_len)?;
        let (ptrs, lens) = (
            array("srs_pq_keys", srs_pq_keys, count)?,
            array("srs_pq_key_lens", srs_pq_key_lens, count)?,
        );
        let srs = ptrs
            .iter()
            .zip(lens)
            .map(|(&p, &n)| Ok(SrsPqPublicKey::from_bytes(bytes("srs_pq_keys[]", p, n)?)?))
            .collect::<Result<Vec<_>, sesphr_result>>()?;
        let threshold = u8::try_from(threshold)
            .ok()
            .filter(|&t| t >= 2)
            .ok_or(Error::InvalidThreshold)?;
        put_buffer(
            o,
            k.hybrid_portion_public_split(&l, epoch, threshold, &srs)?
                .to_bytes(),
        );
        Ok(())
    })
}

/// Frees (and zeroizes) patient keys. NULL does nothing.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_patient_keys_free(keys: *mut sesphr_patient_keys) {
    free_handle(keys);
}

/// Makes the re-encryption key (`"SPRK"` encoding, into a new buffer) from
/// the patient's portion `label`/`epoch` to the user with the 32-byte public
/// key `delegatee`. Send it to the SRS only: it is secret there.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_rekey_generate(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    epoch: u32,
    delegatee: *const u8,
    delegatee_len: usize,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let (portion_label, delegatee) = (
            bytes("portion_label", portion_label, portion_label_len)?,
            bytes("delegatee", delegatee, delegatee_len)?,
        );
        let l = super::named("portion_label", PortionLabel::from_bytes(portion_label))?;
        let to = PublicKey::from_slice(delegatee)?;
        let rk = ReKey::generate(&k.portion_secret(&l, epoch), &to);
        put_buffer(o, rk.to_bytes().to_vec());
        Ok(())
    })
}
