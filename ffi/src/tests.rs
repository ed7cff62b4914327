//! The C ABI called from Rust, as a C host would call it: raw pointers,
//! lengths, out-parameters, handles and buffers. Small enough to run under
//! Miri (`scripts/miri.sh`), which checks every pointer the ABI reads or
//! writes, every handle it frees, and that nothing leaks.

use core::ptr::{null, null_mut};

use crate::*;
use sesphr::{ReKey, SealedPortion};

type TestResult = Result<(), String>;

/// Fails the test with the code and its detail unless `r` is `Ok`.
fn ok(r: sesphr_result) -> TestResult {
    if r == sesphr_result::Ok {
        Ok(())
    } else {
        Err(format!("{r:?}"))
    }
}

fn expect(r: sesphr_result, want: sesphr_result) -> TestResult {
    if r == want {
        Ok(())
    } else {
        Err(format!("got {r:?}, want {want:?}"))
    }
}

/// Copies a library buffer out and frees it.
fn take(buf: *mut sesphr_buffer) -> Result<Vec<u8>, String> {
    if buf.is_null() {
        return Err("no buffer".into());
    }
    let (p, n) = (sesphr_buffer_data(buf), sesphr_buffer_len(buf));
    let v = if n == 0 {
        Vec::new()
    } else {
        // SAFETY: the library's buffer holds `n` bytes at `p` until freed.
        unsafe { core::slice::from_raw_parts(p, n) }.to_vec()
    };
    sesphr_buffer_free(buf);
    Ok(v)
}

fn patient_keys() -> Result<*mut sesphr_patient_keys, String> {
    let id = b"patient-7";
    let master = [9u8; 32];
    let mut keys = null_mut();
    ok(sesphr_patient_keys_from_master(
        id.as_ptr(),
        id.len(),
        master.as_ptr(),
        master.len(),
        &raw mut keys,
    ))?;
    Ok(keys)
}

/// A C sealer of a record created at 7 under portion public key `key`.
fn new_sealer(key: &[u8], record: &[u8]) -> Result<*mut sesphr_sealer, String> {
    let mut sealer = null_mut();
    ok(sesphr_sealer_new(
        key.as_ptr(),
        key.len(),
        record.as_ptr(),
        record.len(),
        7,
        &raw mut sealer,
    ))?;
    Ok(sealer)
}

fn portion_key(keys: *const sesphr_patient_keys) -> Result<Vec<u8>, String> {
    let label = b"lab";
    let mut buf = null_mut();
    ok(sesphr_patient_keys_portion_public_key(
        keys,
        label.as_ptr(),
        label.len(),
        1,
        &raw mut buf,
    ))?;
    take(buf)
}

fn seal(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let record = [5u8; SESPHR_RECORD_ID_LEN];
    let mut buf = null_mut();
    ok(sesphr_seal(
        key.as_ptr(),
        key.len(),
        record.as_ptr(),
        record.len(),
        1_700_000_000,
        plaintext.as_ptr(),
        plaintext.len(),
        &raw mut buf,
    ))?;
    take(buf)
}

#[test]
fn key_pairs_round_trip_and_bad_input_is_refused() -> TestResult {
    let mut kp = null_mut();
    ok(sesphr_keypair_generate(&raw mut kp))?;
    let mut secret = [0u8; SESPHR_SECRET_KEY_LEN];
    let mut public = [0u8; SESPHR_PUBLIC_KEY_LEN];
    ok(sesphr_keypair_secret_key(
        kp,
        secret.as_mut_ptr(),
        secret.len(),
    ))?;
    ok(sesphr_keypair_public_key(
        kp,
        public.as_mut_ptr(),
        public.len(),
    ))?;
    // A buffer one byte short is refused and left untouched.
    let mut short = [0xaau8; SESPHR_PUBLIC_KEY_LEN - 1];
    expect(
        sesphr_keypair_public_key(kp, short.as_mut_ptr(), short.len()),
        sesphr_result::BufferTooSmall,
    )?;
    assert!(short.iter().all(|b| *b == 0xaa));
    sesphr_keypair_free(kp);

    let mut again = null_mut();
    ok(sesphr_keypair_from_secret(
        secret.as_ptr(),
        secret.len(),
        &raw mut again,
    ))?;
    let mut public2 = [0u8; SESPHR_PUBLIC_KEY_LEN];
    ok(sesphr_keypair_public_key(
        again,
        public2.as_mut_ptr(),
        public2.len(),
    ))?;
    assert_eq!(public, public2);
    sesphr_keypair_free(again);

    // NULL with a length, a zero scalar, a short key: typed errors, no handle.
    let mut none = null_mut();
    expect(
        sesphr_keypair_from_secret(null(), 32, &raw mut none),
        sesphr_result::NullParameter,
    )?;
    expect(
        sesphr_keypair_from_secret([0u8; 32].as_ptr(), 32, &raw mut none),
        sesphr_result::ZeroScalar,
    )?;
    expect(
        sesphr_keypair_from_secret(secret.as_ptr(), 31, &raw mut none),
        sesphr_result::InvalidLength,
    )?;
    assert!(none.is_null());
    expect(
        sesphr_keypair_generate(null_mut()),
        sesphr_result::NullParameter,
    )?;
    // The detail of the last error is a NUL-terminated string.
    // SAFETY: the library returns a valid C string for this thread.
    let detail = unsafe { core::ffi::CStr::from_ptr(sesphr_last_error_detail()) };
    assert!(!detail.to_bytes().is_empty());
    // Freeing NULL does nothing.
    sesphr_keypair_free(null_mut());
    sesphr_buffer_free(null_mut());
    Ok(())
}

#[test]
fn patient_keys_export_import_and_owner_open() -> TestResult {
    let keys = patient_keys()?;
    let mut exported = null_mut();
    ok(sesphr_patient_keys_export(keys, &raw mut exported))?;
    let exported = take(exported)?;
    let mut imported = null_mut();
    ok(sesphr_patient_keys_import(
        exported.as_ptr(),
        exported.len(),
        &raw mut imported,
    ))?;
    let key = portion_key(keys)?;
    assert_eq!(key, portion_key(imported)?);

    let plaintext = b"potassium 4.1 mmol/L";
    let sealed = seal(&key, plaintext)?;
    let mut opened = null_mut();
    ok(sesphr_open_as_owner(
        imported,
        sealed.as_ptr(),
        sealed.len(),
        &raw mut opened,
    ))?;
    assert_eq!(take(opened)?, plaintext);

    // The header: its length from a prefix, its fields.
    let mut header_len = 0usize;
    ok(sesphr_header_len(
        sealed.as_ptr(),
        SESPHR_HEADER_PREFIX_LEN,
        &raw mut header_len,
    ))?;
    let mut record = [0u8; SESPHR_RECORD_ID_LEN];
    let (mut epoch, mut created) = (0u32, 0u64);
    let (mut label, mut pk) = (null_mut(), null_mut());
    ok(sesphr_header_info(
        sealed.as_ptr(),
        header_len,
        record.as_mut_ptr(),
        record.len(),
        &raw mut epoch,
        &raw mut created,
        &raw mut label,
        &raw mut pk,
    ))?;
    assert_eq!((record, epoch, created), ([5; 16], 1, 1_700_000_000));
    assert_eq!(take(label)?, b"lab");
    assert_eq!(take(pk)?, key);

    // A flipped body byte: refused, no buffer.
    let mut forged = sealed.clone();
    if let Some(b) = forged.last_mut() {
        *b ^= 1;
    }
    let mut none = null_mut();
    expect(
        sesphr_open_as_owner(keys, forged.as_ptr(), forged.len(), &raw mut none),
        sesphr_result::DecryptionFailed,
    )?;
    assert!(none.is_null());
    sesphr_patient_keys_free(keys);
    sesphr_patient_keys_free(imported);
    Ok(())
}

#[test]
fn streaming_seal_and_open_in_odd_pieces() -> TestResult {
    let keys = patient_keys()?;
    let key = portion_key(keys)?;
    let plaintext: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
    let record = [6u8; SESPHR_RECORD_ID_LEN];
    let sealer = new_sealer(&key, &record)?;
    let mut sealed = Vec::new();
    for piece in plaintext.chunks(97) {
        let mut out = null_mut();
        ok(sesphr_sealer_update(
            sealer,
            piece.as_ptr(),
            piece.len(),
            &raw mut out,
        ))?;
        sealed.extend(take(out)?);
    }
    let mut out = null_mut();
    ok(sesphr_sealer_finish(sealer, &raw mut out))?;
    sealed.extend(take(out)?);
    sesphr_sealer_free(sealer);

    let mut header_len = 0usize;
    ok(sesphr_header_len(
        sealed.as_ptr(),
        sealed.len(),
        &raw mut header_len,
    ))?;
    let (header, body) = sealed.split_at(header_len);
    let mut opener = null_mut();
    ok(sesphr_opener_new_owner(
        keys,
        header.as_ptr(),
        header.len(),
        &raw mut opener,
    ))?;
    let mut opened = Vec::new();
    for piece in body.chunks(41) {
        let mut out = null_mut();
        ok(sesphr_opener_update(
            opener,
            piece.as_ptr(),
            piece.len(),
            &raw mut out,
        ))?;
        opened.extend(take(out)?);
    }
    let mut out = null_mut();
    ok(sesphr_opener_finish(opener, &raw mut out))?;
    opened.extend(take(out)?);
    sesphr_opener_free(opener);
    assert_eq!(opened, plaintext);
    sesphr_patient_keys_free(keys);
    Ok(())
}

/// The `_into` forms write into the caller's buffer: the same portion
/// opens with either form; a buffer under the bound is refused before
/// anything is consumed (the stream goes on intact after a retry); a
/// tampered chunk writes nothing; NULL out-parameters are refused.
#[test]
fn streaming_into_caller_buffers() -> TestResult {
    let keys = patient_keys()?;
    let key = portion_key(keys)?;
    let plaintext: Vec<u8> = (0..(3u32 << 16) + 1234).map(|i| (i % 253) as u8).collect();
    let record = [8u8; SESPHR_RECORD_ID_LEN];
    let sealer = new_sealer(&key, &record)?;
    let mut sealed = Vec::new();
    let mut buf = vec![0u8; sesphr_stream_output_bound(70_000)];
    for (i, piece) in plaintext.chunks(70_000).enumerate() {
        let mut n = usize::MAX;
        if i == 1 {
            // Too small: refused, nothing consumed, nothing written.
            let small = sesphr_stream_output_bound(piece.len()) - 1;
            expect(
                sesphr_sealer_update_into(
                    sealer,
                    piece.as_ptr(),
                    piece.len(),
                    buf.as_mut_ptr(),
                    small,
                    &raw mut n,
                ),
                sesphr_result::BufferTooSmall,
            )?;
            assert_eq!(n, usize::MAX);
        }
        ok(sesphr_sealer_update_into(
            sealer,
            piece.as_ptr(),
            piece.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &raw mut n,
        ))?;
        sealed.extend_from_slice(&buf[..n]);
    }
    let mut n = 0usize;
    ok(sesphr_sealer_finish_into(
        sealer,
        buf.as_mut_ptr(),
        buf.len(),
        &raw mut n,
    ))?;
    sealed.extend_from_slice(&buf[..n]);
    expect(
        sesphr_sealer_finish_into(sealer, buf.as_mut_ptr(), buf.len(), &raw mut n),
        sesphr_result::InvalidState,
    )?;
    sesphr_sealer_free(sealer);
    // The sealed bytes are a portion like any other.
    let mut whole = null_mut();
    ok(sesphr_open_as_owner(
        keys,
        sealed.as_ptr(),
        sealed.len(),
        &raw mut whole,
    ))?;
    assert!(take(whole)? == plaintext);

    let mut header_len = 0usize;
    ok(sesphr_header_len(
        sealed.as_ptr(),
        sealed.len(),
        &raw mut header_len,
    ))?;
    let (header, body) = sealed.split_at(header_len);
    let open = |body: &[u8]| -> Result<Vec<u8>, sesphr_result> {
        let mut opener = null_mut();
        let r = sesphr_opener_new_owner(keys, header.as_ptr(), header.len(), &raw mut opener);
        if r != sesphr_result::Ok {
            return Err(r);
        }
        let mut opened = Vec::new();
        let mut buf = vec![0u8; sesphr_stream_output_bound(50_000)];
        let step = |r: sesphr_result, n: usize, opened: &mut Vec<u8>, buf: &[u8]| {
            if r == sesphr_result::Ok {
                opened.extend_from_slice(&buf[..n]);
                Ok(())
            } else {
                Err(r)
            }
        };
        let mut result = Ok(());
        for piece in body.chunks(50_000) {
            let mut n = 0usize;
            let r = sesphr_opener_update_into(
                opener,
                piece.as_ptr(),
                piece.len(),
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut n,
            );
            result = step(r, n, &mut opened, &buf);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            let mut n = 0usize;
            let r = sesphr_opener_finish_into(opener, buf.as_mut_ptr(), buf.len(), &raw mut n);
            result = step(r, n, &mut opened, &buf);
        }
        sesphr_opener_free(opener);
        result.map(|()| opened)
    };
    assert!(open(body).map_err(|e| format!("{e:?}"))? == plaintext);
    let mut tampered = body.to_vec();
    tampered[70_000] ^= 1;
    assert_eq!(open(&tampered), Err(sesphr_result::DecryptionFailed));
    assert_eq!(
        open(&body[..body.len() - 1]),
        Err(sesphr_result::DecryptionFailed)
    );
    // NULL out-parameters.
    let sealer = new_sealer(&key, &record)?;
    let mut n = 0usize;
    expect(
        sesphr_sealer_update_into(sealer, null(), 0, null_mut(), 1 << 20, &raw mut n),
        sesphr_result::NullParameter,
    )?;
    expect(
        sesphr_sealer_update_into(sealer, null(), 0, buf.as_mut_ptr(), buf.len(), null_mut()),
        sesphr_result::NullParameter,
    )?;
    sesphr_sealer_free(sealer);
    assert!(sesphr_stream_output_bound(usize::MAX) == usize::MAX);
    sesphr_patient_keys_free(keys);
    Ok(())
}

#[test]
fn a_delegatee_opens_what_the_re_key_re_encrypted() -> TestResult {
    let keys = patient_keys()?;
    let key = portion_key(keys)?;
    let mut user = null_mut();
    ok(sesphr_keypair_generate(&raw mut user))?;
    let mut user_public = [0u8; SESPHR_PUBLIC_KEY_LEN];
    ok(sesphr_keypair_public_key(
        user,
        user_public.as_mut_ptr(),
        32,
    ))?;
    let label = b"lab";
    let mut rekey = null_mut();
    ok(sesphr_rekey_generate(
        keys,
        label.as_ptr(),
        label.len(),
        1,
        user_public.as_ptr(),
        user_public.len(),
        &raw mut rekey,
    ))?;
    let rekey = ReKey::from_bytes(&take(rekey)?).map_err(|e| e.to_string())?;
    let plaintext = b"MRI: no acute findings";
    let sealed = seal(&key, plaintext)?;
    let portion = SealedPortion::from_bytes(&sealed).map_err(|e| e.to_string())?;
    let header = portion.header().verify().map_err(|e| e.to_string())?;
    let recapsule = rekey
        .reencrypt(header)
        .map_err(|e| e.to_string())?
        .to_bytes();
    let mut opened = null_mut();
    ok(sesphr_open_as_delegatee(
        user,
        sealed.as_ptr(),
        sealed.len(),
        recapsule.as_ptr(),
        recapsule.len(),
        &raw mut opened,
    ))?;
    assert_eq!(take(opened)?, plaintext);
    // Another user's key pair opens nothing with it.
    let mut other = null_mut();
    ok(sesphr_keypair_generate(&raw mut other))?;
    let mut none = null_mut();
    let r = sesphr_open_as_delegatee(
        other,
        sealed.as_ptr(),
        sealed.len(),
        recapsule.as_ptr(),
        recapsule.len(),
        &raw mut none,
    );
    assert_ne!(r, sesphr_result::Ok);
    assert!(none.is_null());
    sesphr_keypair_free(other);
    sesphr_keypair_free(user);
    sesphr_patient_keys_free(keys);
    Ok(())
}

#[test]
fn every_result_code_has_a_message() {
    for code in 0..200u32 {
        // SAFETY: the library returns a static NUL-terminated string.
        let m = unsafe { core::ffi::CStr::from_ptr(sesphr_result_message(code)) };
        assert!(!m.to_bytes().is_empty());
    }
    // SAFETY: as above.
    let v = unsafe { core::ffi::CStr::from_ptr(sesphr_version()) };
    assert_eq!(v.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
}

/// Once a seal of several chunks has built the thread pool, a new size is
/// refused (`INVALID_STATE`, nothing changed) instead of being accepted and
/// ignored; 1 (no threads) and the value the pool was built with still
/// take effect.
#[test]
#[cfg_attr(miri, ignore = "builds a thread pool")]
fn a_thread_count_after_the_pool_is_built_is_refused() -> TestResult {
    let keys = patient_keys()?;
    let key = portion_key(keys)?;
    sesphr_patient_keys_free(keys);
    let before = sesphr::max_threads();
    // Three chunks of 64 KiB: the pool is built (unless it was already).
    seal(&key, &vec![7u8; 3 * 65_536])?;
    if let Some(built) = sesphr::thread_pool_built_with() {
        let other = u32::try_from(built).unwrap_or(0) + 3;
        expect(sesphr_set_max_threads(other), sesphr_result::InvalidState)?;
        if sesphr::max_threads() != before {
            return Err("a refused thread count changed the setting".into());
        }
        // Off, and on again with the pool as it was built.
        ok(sesphr_set_max_threads(1))?;
        ok(sesphr_set_max_threads(u32::try_from(built).unwrap_or(0)))?;
    } else if before != 1 {
        return Err("a seal of three chunks did not build the pool".into());
    }
    // 1 takes effect at any time (and stays: the other tests only run
    // without the pool then).
    ok(sesphr_set_max_threads(1))?;
    if sesphr::max_threads() == 1 {
        Ok(())
    } else {
        Err("1 did not take effect".into())
    }
}
