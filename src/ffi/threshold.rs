//! Threshold re-encryption from C: split a re-encryption key among `n`
//! nodes, sign the split grant, install a share at an SRS node, re-encrypt
//! with a share, and combine any `t` re-capsule shares to open.

use core::ffi::c_uint;

use super::keys::{sesphr_keypair, sesphr_patient_keys};
use super::srs::sesphr_srs;
use super::{
    array, array_out, bytes, handle_ref, identity, label, out, put_buffer, run, sesphr_buffer,
    sesphr_result,
};
use crate::consent::SignedGrant;
use crate::{
    PortionHeader, ReCapsule, ReKey, ReKeyShare, SealedPortion, ShareCommitments, ThresholdOpener,
};

/// Splits the encoded re-encryption key `rekey` among `nodes` nodes so that
/// any `threshold` of them are needed (`2 <= threshold <= nodes <= 255`).
/// The public commitments (`"SPTC"`) go into a new buffer in
/// `*out_commitments`; share `i` (`"SPKS"`, secret: send it to node `i`
/// only) into a new buffer in `out_shares[i - 1]`, an array of `nodes`
/// elements the caller provides.
///
/// Errors: `INVALID_THRESHOLD`; decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_rekey_split(
    rekey: *const u8,
    rekey_len: usize,
    threshold: c_uint,
    nodes: c_uint,
    out_commitments: *mut *mut sesphr_buffer,
    out_shares: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let rk = ReKey::from_bytes(bytes(rekey, rekey_len)?)?;
        let t = u8::try_from(threshold).map_err(|_| sesphr_result::InvalidThreshold)?;
        let n = u8::try_from(nodes).map_err(|_| sesphr_result::InvalidThreshold)?;
        let oc = out(out_commitments)?;
        let (commitments, shares) = rk.split(t, n)?;
        let outs = array_out(out_shares, usize::from(n))?;
        put_buffer(oc, commitments.to_bytes());
        for (o, s) in outs.iter_mut().zip(&shares) {
            put_buffer(o, s.to_bytes().to_vec());
        }
        Ok(())
    })
}

/// A node's check of its share (`"SPKS"`): `rk_i·G == Σ i^j·C_j`. Its index
/// goes into `*out_index`.
///
/// Errors: `INVALID_SHARE`; decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_share_verify(
    share: *const u8,
    share_len: usize,
    out_index: *mut u8,
) -> sesphr_result {
    run(|| {
        let o = out(out_index)?;
        // Decoding checks the share against its commitments.
        let s = ReKeyShare::from_bytes(bytes(share, share_len)?)?;
        *o = s.index();
        Ok(())
    })
}

/// Re-encrypts an encoded header with a node's share (outside an SRS):
/// the re-capsule share (`"SPRC"` with the node index) goes into a new
/// buffer. `with_proof` non-zero adds a proof against the node's `R_i`.
///
/// Errors: `INVALID_CAPSULE`; `KEY_MISMATCH` (a header of another
/// portion); decoding errors.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_share_reencrypt(
    share: *const u8,
    share_len: usize,
    header: *const u8,
    header_len: usize,
    with_proof: c_uint,
    out_recapsule: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let o = out(out_recapsule)?;
        let s = ReKeyShare::from_bytes(bytes(share, share_len)?)?;
        let h = PortionHeader::from_bytes(bytes(header, header_len)?)?;
        let v = h.verify()?;
        let rc = if with_proof != 0 {
            s.reencrypt_with_proof(v)?
        } else {
            s.reencrypt(v)?
        };
        put_buffer(o, rc.to_bytes());
        Ok(())
    })
}

/// Signs the grant of a split key (`"SPSG"` with the share terms, into a
/// new buffer) of portion `label`/`epoch` to `user`, for the encoded
/// commitments of the split. `options` may be NULL (defaults). Every node
/// receives this one signed grant with its own share
/// (`sesphr_srs_grant_share`).
///
/// Errors: `KEY_MISMATCH` if the split is not of this portion key;
/// `INVALID_ARGUMENT` for a bad role name; decoding errors.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_sign_share_grant(
    keys: *const sesphr_patient_keys,
    portion_label: *const u8,
    portion_label_len: usize,
    epoch: u32,
    user: *const u8,
    user_len: usize,
    commitments: *const u8,
    commitments_len: usize,
    options: *const super::consent::sesphr_grant_options,
    out_buffer: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let k = handle_ref(keys)?;
        let o = out(out_buffer)?;
        let (l, u) = (
            label(portion_label, portion_label_len)?,
            identity(user, user_len)?,
        );
        let c = ShareCommitments::from_bytes(bytes(commitments, commitments_len)?)?;
        let opts = super::consent::grant_options(options)?;
        put_buffer(o, k.sign_share_grant(&l, epoch, &u, &c, &opts)?.to_bytes());
        Ok(())
    })
}

/// **Threshold SRS node**: installs this node's encoded share under the
/// grant the patient signed for the split (`sesphr_sign_share_grant`).
/// From then on `sesphr_srs_reencrypt` on this SRS returns re-capsule
/// shares for that grant. Access ends once `n − t + 1` nodes have revoked:
/// revoke at all `n`.
///
/// Errors: `INVALID_SHARE`; `RE_KEY_MISMATCH` (not the split signed); and
/// as `sesphr_srs_grant`.
#[unsafe(no_mangle)]
pub extern "C" fn sesphr_srs_grant_share(
    srs: *const sesphr_srs,
    signed_grant: *const u8,
    signed_grant_len: usize,
    share: *const u8,
    share_len: usize,
) -> sesphr_result {
    run(|| {
        let s = handle_ref(srs)?;
        let g = SignedGrant::from_bytes(bytes(signed_grant, signed_grant_len)?)?;
        let k = ReKeyShare::from_bytes(bytes(share, share_len)?)?;
        Ok(s.grant_share(&g, k)?)
    })
}

/// Opens a sealed portion as a granted user from `count` re-capsule shares
/// (arrays of pointers and lengths) of at least `t` nodes, for the grant
/// whose encoded commitments are given (checked: `C_0 == d⁻¹·X_{P,c}`).
/// Optimistic: the first `t` shares are combined; only if the body does not
/// open are the proofs checked, wrong nodes named and others used.
/// `verify_first` non-zero checks every proof before combining (a share
/// without a proof then counts as wrong). The plaintext goes into a new
/// buffer; the indices of nodes named for wrong shares into a new buffer in
/// `*out_bad_nodes` (optional: NULL if not wanted; empty if none).
///
/// Errors: `KEY_MISMATCH`; `INVALID_COMMITMENTS`; `SHARE_MISMATCH`;
/// `INVALID_SHARE`; `DUPLICATE_SHARE`; `TOO_FEW_SHARES`; `INVALID_CAPSULE`;
/// `BAD_SHARES` (the nodes are named in `sesphr_last_error_detail`);
/// `DECRYPTION_FAILED`; decoding errors.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_threshold_open(
    keypair: *const sesphr_keypair,
    commitments: *const u8,
    commitments_len: usize,
    sealed: *const u8,
    sealed_len: usize,
    recapsules: *const *const u8,
    recapsule_lens: *const usize,
    count: usize,
    verify_first: c_uint,
    out_plaintext: *mut *mut sesphr_buffer,
    out_bad_nodes: *mut *mut sesphr_buffer,
) -> sesphr_result {
    run(|| {
        let kp = handle_ref(keypair)?;
        let o = out(out_plaintext)?;
        let c = ShareCommitments::from_bytes(bytes(commitments, commitments_len)?)?;
        let s = SealedPortion::from_bytes(bytes(sealed, sealed_len)?)?;
        let (ptrs, lens) = (array(recapsules, count)?, array(recapsule_lens, count)?);
        let rcs = ptrs
            .iter()
            .zip(lens)
            .map(|(&p, &l)| Ok(ReCapsule::from_bytes(bytes(p, l)?)?))
            .collect::<Result<Vec<_>, sesphr_result>>()?;
        let opener = ThresholdOpener::new(kp, &c)?;
        let opened = if verify_first != 0 {
            opener.open_verified(&s, &rcs)?
        } else {
            opener.open(&s, &rcs)?
        };
        let bad = opened.bad_nodes().to_vec();
        put_buffer(o, opened.into_plaintext());
        if !out_bad_nodes.is_null() {
            put_buffer(out(out_bad_nodes)?, bad);
        }
        Ok(())
    })
}
