//! Serving re-encryption requests: the decision, the re-check at
//! sequencing, the computation.

use crate::capsule::{PortionHeader, VerifiedHeader};
use crate::ids::Identity;
use crate::keys::PublicKey;
use crate::model::{AccessReason, AuditAction, AuditOutcome, Denial};
use crate::pq::{Draw, PqPublicKey};
use crate::reencrypt::{ReCapsule, ServingKey, rewrap};
use crate::rng::os_rng;
use crate::srs::chain::Draft;
use crate::srs::journal::Change;
use crate::srs::registry::Registry;
use crate::srs::registry::Served;
use crate::srs::secrets::SrsKeys;
use crate::srs::server::*;
use crate::srs::types::SrsError;

impl Srs {
    /// Re-encrypts a portion header for `user`. The capsule proof is checked
    /// first: a header that does not verify names no record and decides
    /// nothing ([`Denial::InvalidCapsule`]). Then the user must be registered
    /// and active and hold an unrevoked, unexpired grant for the portion
    /// whose scope covers the record's `created_at`. Granted or denied, the
    /// request is audited, and the answer comes only once its audit entry is
    /// durable; a grant revoked before that entry is committed (by this SRS
    /// or another process sharing its store) turns the answer into
    /// [`Denial::Revoked`].
    ///
    /// `reason` (a [`Purpose`](crate::model::Purpose), or an [`AccessReason`] with a
    /// justification) is recorded in the audit entry and the patient's
    /// accounting of disclosures; a break-glass grant serves only
    /// [`Purpose::Emergency`](crate::model::Purpose::Emergency) with a justification, and that use is flagged.
    ///
    /// # Errors
    /// [`SrsError::Denied`] with the reason; store errors.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let rc = srs.reencrypt(&doctor, report.header(), Purpose::Treatment)?;
    /// assert_eq!(report.open_as_delegatee(&doctor_keys, &rc)?, b"HbA1c 5.4%");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reencrypt(
        &self,
        user: &Identity,
        header: &PortionHeader,
        reason: impl Into<AccessReason>,
    ) -> Result<ReCapsule, SrsError> {
        self.reencrypt_one(user, header, false, &reason.into())
    }

    /// As [`Srs::reencrypt`], with a proof of correct re-encryption.
    ///
    /// # Errors
    /// As [`Srs::reencrypt`].
    pub fn reencrypt_with_proof(
        &self,
        user: &Identity,
        header: &PortionHeader,
        reason: impl Into<AccessReason>,
    ) -> Result<ReCapsule, SrsError> {
        self.reencrypt_one(user, header, true, &reason.into())
    }

    /// As [`Srs::reencrypt`], for a header given as bytes.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] if the bytes are not a header (nothing is
    /// audited then: no record is named); otherwise as [`Srs::reencrypt`].
    pub fn reencrypt_encoded(
        &self,
        user: &Identity,
        header: &[u8],
        reason: impl Into<AccessReason>,
    ) -> Result<ReCapsule, SrsError> {
        let h = PortionHeader::from_bytes(header)?;
        self.reencrypt(user, &h, reason)
    }

    fn reencrypt_one(
        &self,
        user: &Identity,
        header: &PortionHeader,
        proof: bool,
        reason: &AccessReason,
    ) -> Result<ReCapsule, SrsError> {
        let verified = header.verify();
        // Decided under the registry's read lock; computed after it.
        let decide_now = |now: u64| {
            let reg = self.read();
            let mut d = reencrypt_draft(now, user, reason);
            let r = match &verified {
                Err(_) => Err(Denial::InvalidCapsule),
                Ok(v) => decide(&reg, user, v, now, &mut d, reason.breaks_glass()),
            };
            (d, r)
        };
        let mut answer = decide_now(self.clock.now());
        if self.shared && may_be_behind(&answer.1) {
            // Another process may have granted meanwhile: look again.
            self.sync()?;
            answer = decide_now(self.clock.now());
        }
        let (mut d, decided) = answer;
        let result = match (&verified, decided) {
            (Ok(v), Ok(dec)) => {
                compute(&self.keys, &dec, *v, proof, None).map(|rc| (rc, dec.served))
            }
            (_, Err(e)) => Err(e),
            (Err(_), Ok(_)) => Err(Denial::InvalidCapsule),
        };
        let served = vec![result.as_ref().ok().map(|(_, s)| *s)];
        if let Err(denial) = &result {
            d.outcome = AuditOutcome::Denied(*denial);
        }
        let out = self
            .journal
            .commit(Box::new(move |reg| Ok(recheck(reg, vec![d], &served))))?;
        if let Some((_, denial)) = out.refused.first() {
            return Err(SrsError::Denied(*denial));
        }
        result.map(|(rc, _)| rc).map_err(SrsError::Denied)
    }

    /// Re-encrypts many headers for one user (a doctor opening a patient's
    /// history). All capsule proofs are checked first, together, with one
    /// multiscalar multiplication (a bad one is named and denied, the others
    /// go on); then each header is authorized as in [`Srs::reencrypt`]. One
    /// audit entry per header, committed together. Result `i` belongs to
    /// header `i`.
    ///
    /// # Errors
    /// The outer error is a store failure (then nothing is returned); the
    /// inner ones are per-header denials.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let other = SealedPortion::seal(&patient.portion_public(&lab, 0), RecordId::random(), sesphr::unix_now(), b"LDL 96")?;
    /// let answers = srs.reencrypt_batch(&doctor, &[report.header(), other.header()], Purpose::Treatment)?;
    /// assert!(answers.iter().all(Result::is_ok)); // one audit commit for the batch
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reencrypt_batch(
        &self,
        user: &Identity,
        headers: &[&PortionHeader],
        reason: impl Into<AccessReason>,
    ) -> Result<Vec<Result<ReCapsule, Denial>>, SrsError> {
        let reason = reason.into();
        if headers.is_empty() {
            return Ok(Vec::new());
        }
        let verified = PortionHeader::verify_batch(headers);
        // Decided under one read lock of the registry; computed after it.
        let decide_all = |now: u64| {
            let reg = self.read();
            let mut drafts = Vec::with_capacity(headers.len());
            let mut decided = Vec::with_capacity(headers.len());
            for v in &verified {
                let mut d = reencrypt_draft(now, user, &reason);
                decided.push(match v {
                    Err(_) => Err(Denial::InvalidCapsule),
                    Ok(v) => decide(&reg, user, v, now, &mut d, reason.breaks_glass()),
                });
                drafts.push(d);
            }
            (drafts, decided)
        };
        let mut answer = decide_all(self.clock.now());
        if self.shared && answer.1.iter().any(may_be_behind) {
            self.sync()?;
            answer = decide_all(self.clock.now());
        }
        let (mut drafts, decided) = answer;
        // X_e decoded once per grant of the batch.
        let mut ephemerals: Vec<(u32, PublicKey)> = Vec::new();
        let mut results: Vec<Result<(ReCapsule, Served), Denial>> = verified
            .iter()
            .zip(decided)
            .map(|(v, dec)| match (v, dec) {
                (Ok(v), Ok(dec)) => compute(&self.keys, &dec, *v, false, Some(&mut ephemerals))
                    .map(|rc| (rc, dec.served)),
                (_, Err(e)) => Err(e),
                (Err(_), Ok(_)) => Err(Denial::InvalidCapsule),
            })
            .collect();
        for (d, r) in drafts.iter_mut().zip(&results) {
            if let Err(denial) = r {
                d.outcome = AuditOutcome::Denied(*denial);
            }
        }
        let served: Vec<Option<Served>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|(_, s)| *s))
            .collect();
        let out = self
            .journal
            .commit(Box::new(move |reg| Ok(recheck(reg, drafts, &served))))?;
        for (i, denial) in out.refused {
            if let Some(r) = results.get_mut(i) {
                *r = Err(denial);
            }
        }
        Ok(results.into_iter().map(|r| r.map(|(rc, _)| rc)).collect())
    }
}

/// The audit entries of served requests, re-checked against the registry
/// as it stands when they are sequenced (after every change committed
/// before them, by any process): a request that would be denied now is
/// refused, and audited with that denial.
fn recheck(reg: &Registry, mut drafts: Vec<Draft>, served: &[Option<Served>]) -> Change {
    let mut refused = Vec::new();
    for (i, (d, s)) in drafts.iter_mut().zip(served).enumerate() {
        if let (Some(s), Some(user)) = (s, &d.user)
            && let Err(denial) = reg.recheck(user, d.label.as_ref(), s)
        {
            d.outcome = AuditOutcome::Denied(denial);
            refused.push((i, denial));
        }
    }
    Change {
        refused,
        ..Change::audit(drafts)
    }
}

/// A denial that a registry behind a shared store may have given wrongly,
/// or for a reason no longer true: the user or grant may exist on another
/// process already, or have been removed, replaced or re-scoped there. Only
/// a capsule that does not verify is denied whatever the registry says.
fn may_be_behind<T>(r: &Result<T, Denial>) -> bool {
    matches!(r, Err(d) if *d != Denial::InvalidCapsule)
}

fn reencrypt_draft(now: u64, user: &Identity, reason: &AccessReason) -> Draft {
    let mut d = Draft::new(now, user.as_str(), AuditAction::ReEncrypt);
    d.user = Some(user.clone());
    d.purpose = Some(reason.purpose());
    if let Some(j) = reason.justification() {
        d.detail = format!("justification={j}");
    }
    d
}

/// A request allowed: a copy of its grant's serving key (zeroized on drop),
/// taken under the registry's read lock so that the re-encryption runs
/// without it.
struct Decided {
    key: ServingKey,
    grant: u32,
    served: Served,
    /// The user's ML-KEM-768 key (for hybrid headers), if registered.
    user_pq: Option<PqPublicKey>,
}

/// Authorizes one verified header; fills in what the audit entry names.
fn decide(
    reg: &Registry,
    user: &Identity,
    v: &VerifiedHeader<'_>,
    now: u64,
    d: &mut Draft,
    breaks_glass: bool,
) -> Result<Decided, Denial> {
    d.record_id = Some(v.header().context().record_id());
    let (named, auth) = reg.authorize(user, v, now, breaks_glass);
    if let Some((p, l)) = named {
        d.patient = Some(p);
        d.label = Some(l);
    }
    let a = auth?;
    d.emergency = a.emergency;
    Ok(Decided {
        key: a.key.clone(),
        grant: a.grant,
        served: a.served,
        user_pq: a.user_pq.cloned(),
    })
}

/// Re-encrypts an allowed header; for a hybrid header, also re-wraps its
/// secret `σ` from the SRS's stanza (with the SRS's ML-KEM key of the
/// header's version) to the user's ML-KEM key, under the same decision and
/// audit entry. `ephemerals` caches decoded `X_e` per grant in a batch.
fn compute(
    keys: &SrsKeys,
    dec: &Decided,
    v: VerifiedHeader<'_>,
    proof: bool,
    ephemerals: Option<&mut Vec<(u32, PublicKey)>>,
) -> Result<ReCapsule, Denial> {
    let eph = match ephemerals {
        Some(cache) => match cache.iter().find(|(g, _)| *g == dec.grant) {
            Some((_, k)) => *k,
            None => {
                let k = dec.key.ephemeral().map_err(|_| Denial::InvalidCapsule)?;
                cache.push((dec.grant, k));
                k
            }
        },
        None => dec.key.ephemeral().map_err(|_| Denial::InvalidCapsule)?,
    };
    // A node of a threshold SRS re-wraps its own share of `σ`.
    let node = dec.key.share_index();
    let pq = match v.header().pq_split() {
        None => None,
        Some(_) => {
            let user = dec.user_pq.as_ref().ok_or(Denial::NoPqKey)?;
            if dec
                .key
                .pq_fingerprint()
                .is_some_and(|fp| *fp != user.fingerprint())
            {
                return Err(Denial::PqKeyNotGranted);
            }
            // A stanza that does not open (altered, moved, or sealed to a key
            // this SRS never published) makes the header unusable, as a
            // capsule that does not verify does.
            let version = v
                .header()
                .node_pq_version(node.unwrap_or(1))
                .ok_or(Denial::InvalidCapsule)?;
            let srs = keys.pq_key(version).map_err(|_| Denial::InvalidCapsule)?;
            rewrap(v, node, &srs, user, &eph, &mut os_rng(), Draw::System)
                .map_err(|_| Denial::InvalidCapsule)?
        }
    };
    Ok(if proof {
        dec.key.reencrypt(&eph, v, pq, Some(&mut os_rng()))
    } else {
        dec.key
            .reencrypt(&eph, v, pq, None::<&mut crate::rng::OsRng>)
    })
}
