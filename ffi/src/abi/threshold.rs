//! Threshold re-encryption from C: split a re-encryption key among `n`
//! nodes, sign the split grant, install a share at an SRS node, re-encrypt
//! with a share, and combine any `t` re-capsule shares to open.

use core::ffi::c_uint;

use super::keys::{sesphr_keypair, sesphr_patient_keys};
use super::portion::{new_opener, sesphr_opener};
use super::srs::sesphr_srs;
use super::{
    array, array_out, bytes, handle_ref, identity, label, out, put_buffer, run, sesphr_buffer,
    sesphr_result,
};
use sesphr::consent::{SignedGrant, decode_verifying_key};
use sesphr::{
    Error, PortionHeader, ReKey, ReKeyShare, SealedPortion, ShareCommitments, ShareReport,
    ShareVerdict, Shares, ThresholdOpener,
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
        super::check_null!((rekey, rekey_len); out_commitments, out_shares);
        let rk = ReKey::from_bytes(bytes("rekey", rekey, rekey_len)?)?;
        let t = u8::try_from(threshold).map_err(|_| sesphr_result::InvalidThreshold)?;
        let n = u8::try_from(nodes).map_err(|_| sesphr_result::InvalidThreshold)?;
        let oc = out("out_commitments", out_commitments)?;
        let (commitments, shares) = rk.split(t, n)?;
        let outs = array_out("out_shares", out_shares, usize::from(n))?;
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
        let o = out("out_index", out_index)?;
        // Decoding checks the share against its commitments.
        let s = ReKeyShare::from_bytes(bytes("share", share, share_len)?)?;
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
        super::check_null!((share, share_len), (header, header_len); out_recapsule);
        let o = out("out_recapsule", out_recapsule)?;
        let s = ReKeyShare::from_bytes(bytes("share", share, share_len)?)?;
        let h = PortionHeader::from_bytes(bytes("header", header, header_len)?)?;
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
        super::check_null!((portion_label, portion_label_len), (user, user_len), (commitments, commitments_len); keys, out_buffer);
        let k = handle_ref("keys", keys)?;
        let o = out("out_buffer", out_buffer)?;
        let (l, u) = (
            label("portion_label", portion_label, portion_label_len)?,
            identity("user", user, user_len)?,
        );
        let c = ShareCommitments::from_bytes(bytes("commitments", commitments, commitments_len)?)?;
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
        super::check_null!((signed_grant, signed_grant_len), (share, share_len); srs);
        let s = handle_ref("srs", srs)?;
        let g = SignedGrant::from_bytes(bytes("signed_grant", signed_grant, signed_grant_len)?)?;
        let k = ReKeyShare::from_bytes(bytes("share", share, share_len)?)?;
        Ok(s.grant_share(&g, k)?)
    })
}

/// The opener of a grant of a split key: the user's key pair, the signed
/// share grant, the patient's 32-byte consent public key and the encoded
/// commitments (all checked: signature, the grant names these commitments,
/// `C_0 == d⁻¹·X_{P,c}`).
#[allow(clippy::too_many_arguments)]
fn authenticated_opener(
    keypair: *const sesphr_keypair,
    signed_grant: *const u8,
    signed_grant_len: usize,
    consent_key: *const u8,
    consent_key_len: usize,
    commitments: *const u8,
    commitments_len: usize,
) -> Result<ThresholdOpener, sesphr_result> {
    let kp = handle_ref("keypair", keypair)?;
    let g = SignedGrant::from_bytes(bytes("signed_grant", signed_grant, signed_grant_len)?)?;
    let k: &[u8; 32] = bytes("consent_key", consent_key, consent_key_len)?
        .try_into()
        .map_err(|_| sesphr_result::InvalidLength)?;
    let c = ShareCommitments::from_bytes(bytes("commitments", commitments, commitments_len)?)?;
    let verified = g.verify_commitments(&decode_verifying_key(k)?, &c)?;
    Ok(ThresholdOpener::new(kp, &verified)?)
}

/// Runs `f` on the answers C gives — `count` buffers, and optionally the
/// node each came from — as the Rust API takes them. Writes the per-answer
/// verdict codes into `out_verdicts` (optional, `count` elements) whenever
/// the answers were judged: on success and on `TOO_FEW_SHARES`. Returns
/// `f`'s value and the nodes named.
fn judge_answers<T>(
    recapsules: *const *const u8,
    recapsule_lens: *const usize,
    from_nodes: *const u8,
    count: usize,
    out_verdicts: *mut sesphr_result,
    f: impl FnOnce(Shares<'_>) -> Result<(T, ShareReport), Error>,
) -> Result<(T, Vec<u8>), sesphr_result> {
    let (ptrs, lens) = (
        array("recapsules", recapsules, count)?,
        array("recapsule_lens", recapsule_lens, count)?,
    );
    let bufs = ptrs
        .iter()
        .zip(lens)
        .map(|(&p, &l)| bytes("recapsules[]", p, l))
        .collect::<Result<Vec<_>, _>>()?;
    let verdicts_out = if out_verdicts.is_null() {
        None
    } else {
        Some(array_out("out_verdicts", out_verdicts, count)?)
    };
    let tagged: Vec<(u8, &[u8])>;
    let shares = if from_nodes.is_null() {
        Shares::Encoded(&bufs)
    } else {
        let nodes = array("from_nodes", from_nodes, count)?;
        tagged = nodes.iter().copied().zip(bufs.iter().copied()).collect();
        Shares::FromNodes(&tagged)
    };
    let write = |verdicts: &[ShareVerdict], out: Option<&mut [sesphr_result]>| {
        for (o, v) in out.unwrap_or_default().iter_mut().zip(verdicts) {
            *o = sesphr_result::of_verdict(v);
        }
    };
    match f(shares) {
        Ok((value, report)) => {
            write(report.verdicts(), verdicts_out);
            Ok((value, report.bad_nodes().to_vec()))
        }
        Err(e) => {
            if let Error::TooFewShares { verdicts, .. } = &e {
                write(verdicts, verdicts_out);
            }
            Err(e.into())
        }
    }
}

/// Puts the nodes named into a new buffer in `*out_bad_nodes`, if asked.
fn put_bad_nodes(
    out_bad_nodes: *mut *mut sesphr_buffer,
    bad: Vec<u8>,
) -> Result<(), sesphr_result> {
    if !out_bad_nodes.is_null() {
        put_buffer(out("out_bad_nodes", out_bad_nodes)?, bad);
    }
    Ok(())
}

/// Opens a sealed portion as a granted user of a split key from the nodes'
/// answers: `count` re-capsule shares (arrays of pointers and lengths), and
/// optionally `from_nodes`, the node each answer came from (NULL: each is
/// attributed to the index it carries; give it where answers come over a
/// network, so that a node answering under another's index is named, not
/// the other). The grant is checked first: `signed_grant` must verify under
/// the patient's 32-byte `consent_key` and name the encoded `commitments`.
///
/// Robust: each answer is decoded and checked on its own, and one that
/// fails is set aside with its reason; the plaintext is returned whenever
/// `t` valid shares are present, whatever the others hold. Optimistic: the
/// first `t` are combined; only if the body does not open are the combined
/// shares judged by their proofs, until the wrong one is found and
/// replaced. `verify_first` non-zero checks every proof before combining
/// (a share without a proof is then set aside). The plaintext goes into a new
/// buffer; the nodes whose answers were wrong into a new buffer in
/// `*out_bad_nodes` (optional: NULL if not wanted; empty if none); one code
/// per answer into `out_verdicts` (optional: NULL, or `count` elements;
/// `SESPHR_RESULT_OK` for a share used or not needed, else why it was set
/// aside: a decoding code, `INVALID_SHARE` for a wrong index,
/// `SHARE_MISMATCH` for another capsule or grant or a whole re-capsule,
/// `DUPLICATE_SHARE`, `INVALID_RE_ENCRYPTION_PROOF` for a failed or missing
/// proof). `out_verdicts` is written on success and on `TOO_FEW_SHARES`
/// (an exception to "outputs only on success": it says why).
///
/// Errors: `INVALID_SIGNATURE`, `INVALID_COMMITMENTS` (grant, key or
/// commitments do not match); `KEY_MISMATCH`; `INVALID_CAPSULE`;
/// `TOO_FEW_SHARES` (the detail names each answer set aside and why);
/// `DECRYPTION_FAILED` (`t` proven shares do not open the body: it was
/// altered); decoding errors of the grant, key and commitments.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_threshold_open(
    keypair: *const sesphr_keypair,
    signed_grant: *const u8,
    signed_grant_len: usize,
    consent_key: *const u8,
    consent_key_len: usize,
    commitments: *const u8,
    commitments_len: usize,
    sealed: *const u8,
    sealed_len: usize,
    recapsules: *const *const u8,
    recapsule_lens: *const usize,
    from_nodes: *const u8,
    count: usize,
    verify_first: c_uint,
    out_plaintext: *mut *mut sesphr_buffer,
    out_bad_nodes: *mut *mut sesphr_buffer,
    out_verdicts: *mut sesphr_result,
) -> sesphr_result {
    run(|| {
        super::check_null!((signed_grant, signed_grant_len), (consent_key, consent_key_len), (commitments, commitments_len), (sealed, sealed_len), (recapsules, count), (recapsule_lens, count); keypair, out_plaintext);
        let o = out("out_plaintext", out_plaintext)?;
        let opener = authenticated_opener(
            keypair,
            signed_grant,
            signed_grant_len,
            consent_key,
            consent_key_len,
            commitments,
            commitments_len,
        )?;
        let s = SealedPortion::from_bytes(bytes("sealed", sealed, sealed_len)?)?;
        let (plaintext, bad) = judge_answers(
            recapsules,
            recapsule_lens,
            from_nodes,
            count,
            out_verdicts,
            |shares| {
                let opened = if verify_first != 0 {
                    opener.open_verified(&s, shares)?
                } else {
                    opener.open(&s, shares)?
                };
                Ok(opened.into_parts())
            },
        )?;
        put_buffer(o, plaintext);
        put_bad_nodes(out_bad_nodes, bad)
    })
}

/// Starts opening a portion of a split key in pieces, given its encoded
/// header and the nodes' answers *with proofs* (the body is read once, so
/// every share is judged by its proof before any is combined; one without
/// a proof is set aside). Arguments as `sesphr_threshold_open`; then feed
/// the body with `sesphr_opener_update` and `sesphr_opener_finish`.
///
/// Errors: as `sesphr_threshold_open`, before any body byte is read.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sesphr_opener_new_threshold(
    keypair: *const sesphr_keypair,
    signed_grant: *const u8,
    signed_grant_len: usize,
    consent_key: *const u8,
    consent_key_len: usize,
    commitments: *const u8,
    commitments_len: usize,
    header: *const u8,
    header_len: usize,
    recapsules: *const *const u8,
    recapsule_lens: *const usize,
    from_nodes: *const u8,
    count: usize,
    out_opener: *mut *mut sesphr_opener,
    out_bad_nodes: *mut *mut sesphr_buffer,
    out_verdicts: *mut sesphr_result,
) -> sesphr_result {
    run(|| {
        super::check_null!((signed_grant, signed_grant_len), (consent_key, consent_key_len), (commitments, commitments_len), (header, header_len), (recapsules, count), (recapsule_lens, count); keypair, out_opener);
        out("out_opener", out_opener)?;
        let opener = authenticated_opener(
            keypair,
            signed_grant,
            signed_grant_len,
            consent_key,
            consent_key_len,
            commitments,
            commitments_len,
        )?;
        let h = PortionHeader::from_bytes(bytes("header", header, header_len)?)?;
        let (chunks, bad) = judge_answers(
            recapsules,
            recapsule_lens,
            from_nodes,
            count,
            out_verdicts,
            |shares| opener.chunk_opener(&h, shares),
        )?;
        new_opener(out_opener, chunks)?;
        put_bad_nodes(out_bad_nodes, bad)
    })
}
