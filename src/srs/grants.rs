//! Grants and revocations the patient signs (and administrative ones),
//! access requests and refusals: the access-control list and its consent
//! order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::consent::{
    Actor, RequestId, RevocationReceipt, SignedGrant, SignedRefusal, SignedRevocation,
};
use crate::ids::{Identity, PortionLabel};
use crate::model::{AccessRequest, AuditAction, GrantKey, GrantTerms, Purpose, check_text};
use crate::reencrypt::ServingKey;
use crate::rekey::ReKey;
use crate::srs::chain::Draft;
use crate::srs::journal::Change;
use crate::srs::registry::Registry;
use crate::srs::rows::{self, ConsentRow, Consented, GrantRow, GrantState, RequestRow, Row};
use crate::srs::server::*;
use crate::srs::types::SrsError;
use crate::threshold::ReKeyShare;

impl Srs {
    /// Installs a grant the patient signed ([`crate::PatientKeys::sign_grant`]),
    /// with the re-encryption key it was signed for. Replaces an earlier
    /// grant of the same portion key to the same user. The signed grant is
    /// kept in the audit entry.
    ///
    /// The SRS checks, against its registry: the signature under the
    /// patient's registered consent key; that the user is registered and
    /// active with the key the grant names; that the portion key is the
    /// patient's `(label, epoch)`; that `rekey` is the key signed (its
    /// portion key, user key, commitment `RK` and `X_e`); that the grant is
    /// newer than the last signed grant or revocation it accepted for this
    /// portion and user, and dated after the last revocation of the label
    /// to the user, whatever its epoch (SPEC §7.5: a replayed, older or
    /// held-back grant never undoes a revocation); that it is not older
    /// than [`SrsConfig::grant_max_age`](crate::srs::SrsConfig::grant_max_age) nor dated more than five minutes
    /// ahead; for a break-glass grant, that the user holds the role; for a grant that
    /// answers a request, that the request is pending and matches.
    ///
    /// With [`crate::model::Scope::AllRecords`] the user can read every record of the
    /// portion, old and new (backward access); with [`crate::model::Scope::Since`] only
    /// records created from then on. After the expiry the grant stops
    /// working.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::NoConsentKey`],
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`],
    /// [`SrsError::UnknownPortion`]; [`SrsError::Malformed`] with
    /// [`crate::Error::InvalidSignature`] for a bad signature;
    /// [`SrsError::ReKeyMismatch`] if the key is not the one signed, or not
    /// from this patient's portion to this user's registered key;
    /// [`SrsError::Replayed`]; [`SrsError::GrantTooOld`];
    /// [`SrsError::GrantExpired`] for a grant whose expiry is past;
    /// [`SrsError::RoleMismatch`]; [`SrsError::UnknownRequest`],
    /// [`SrsError::RequestAnswered`]; store errors.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// // The patient's client makes the re-encryption key and signs the grant.
    /// let medical = PortionLabel::new("medical")?;
    /// srs.add_portions(&PatientRegistration::new(&patient, &[(medical.clone(), 0)])?)?;
    /// let rekey = ReKey::generate(&patient.portion_secret(&medical, 0), doctor_keys.public());
    /// let signed = patient.sign_grant(&medical, 0, &doctor, &rekey, &GrantOptions::default())?;
    /// srs.grant(&signed, rekey)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn grant(&self, grant: &SignedGrant, rekey: ReKey) -> Result<(), SrsError> {
        if !grant.covers(&rekey) {
            return Err(SrsError::ReKeyMismatch);
        }
        let portion_key = rekey.portion_key().to_bytes();
        let key = rekey.serving_key();
        drop(rekey);
        self.install_grant(grant, portion_key, key)
    }

    /// **Threshold SRS node**: installs this node's share of a split
    /// re-encryption key ([`crate::ReKey::split`]) under the grant the
    /// patient signed for the split ([`crate::PatientKeys::sign_share_grant`]).
    /// Each of the `n` nodes is an ordinary SRS with its own store, receiving
    /// the same signed grant and its own share; this one then answers
    /// re-encryption requests with re-capsule shares (its index, `E'_i`, and
    /// a proof against `R_i` when asked), which the user combines
    /// ([`crate::ThresholdOpener`]) from any `t` nodes.
    ///
    /// Checked besides what [`Srs::grant`] checks: the share against its
    /// commitments (`rk_i·G == Σ i^j·C_j`), and the commitments against the
    /// signed grant (`C_0 = RK`, `X_e`, user key, `t`, `n` and their digest).
    ///
    /// Revocation is per node: access ends once `n − t + 1` nodes have
    /// revoked (fewer than `t` still serve); the patient's client revokes at
    /// all `n`.
    ///
    /// # Errors
    /// [`SrsError::Malformed`] with [`crate::Error::InvalidShare`] for a share
    /// that does not match its commitments; [`SrsError::ReKeyMismatch`] if
    /// the share is not of the split signed; otherwise as [`Srs::grant`].
    pub fn grant_share(&self, grant: &SignedGrant, share: ReKeyShare) -> Result<(), SrsError> {
        share.verify()?;
        if !grant.covers_commitments(share.commitments()) {
            return Err(SrsError::ReKeyMismatch);
        }
        let portion_key = share.commitments().portion_key().to_bytes();
        let key = share.serving_key();
        drop(share);
        self.install_grant(grant, portion_key, key)
    }

    /// The checks and the change common to a whole key and a share.
    fn install_grant(
        &self,
        grant: &SignedGrant,
        portion_key: [u8; 32],
        key: ServingKey,
    ) -> Result<(), SrsError> {
        // Hybrid headers are re-wrapped only to the ML-KEM key the patient
        // named, if the grant names one.
        let key = key.with_pq_fingerprint(grant.user_pq_key().copied());
        let now = self.clock.now();
        check_date(grant.issued_at(), now)?;
        let max_age = self.grant_max_age;
        let g = grant.clone();
        self.change(move |reg| {
            let pid = reg
                .patient_id(g.patient())
                .ok_or(SrsError::UnknownPatient)?;
            let consent = patient_consent(reg, pid)?;
            g.verify(&consent)?;
            if let Some(max_age) = max_age
                && now.saturating_sub(g.issued_at()) > max_age
            {
                return Err(SrsError::GrantTooOld {
                    issued_at: g.issued_at(),
                    max_age,
                });
            }
            if let Some(expiry) = g.expiry()
                && expiry <= now
            {
                return Err(SrsError::GrantExpired { expiry, now });
            }
            let uid = reg.user_id(g.user()).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            if reg.user_key(uid) != Some(g.user_key().as_bytes()) {
                return Err(SrsError::ReKeyMismatch);
            }
            let labelled = reg.portions_labelled(pid, g.label());
            if labelled.is_empty() {
                return Err(SrsError::UnknownPortion);
            }
            let (portion, _) = labelled
                .into_iter()
                .find(|&(_, e)| e == g.epoch())
                .ok_or(SrsError::UnknownPortion)?;
            if reg.portion_by_point(&portion_key) != Some(portion) {
                return Err(SrsError::ReKeyMismatch);
            }
            // Dated at or before the triple's last revocation, whatever its
            // epoch: the patient withdrew it.
            if reg
                .consent_order(pid, g.label(), uid)
                .is_some_and(|(c, _)| g.issued_at() <= c.bound)
            {
                return Err(SrsError::Replayed);
            }
            let consent = match reg.grant_consent(portion, uid) {
                Some(c) => c.admit(g.issued_at(), g.nonce()),
                None => Consented::default().admit(g.issued_at(), g.nonce()),
            }
            .ok_or(SrsError::Replayed)?;
            if let Some(role) = g.emergency()
                && reg.user_role(uid) != Some(role)
            {
                return Err(SrsError::RoleMismatch);
            }
            let terms = GrantTerms {
                scope: g.scope(),
                expiry: g.expiry(),
                granted_at: now,
                emergency: g.emergency().is_some(),
            };
            let mut d = Draft::new(now, g.patient().as_str(), AuditAction::Grant);
            d.patient = Some(g.patient().clone());
            d.label = Some(g.label().clone());
            d.user = Some(g.user().clone());
            d.detail = format!("epoch={} {terms}", g.epoch());
            if let (Some(i), Some(t)) = (key.share_index(), g.threshold()) {
                d.detail = format!("{} share={i} of {}/{}", d.detail, t.threshold, t.nodes);
            }
            let mut change = Change::audit(Vec::new());
            if let Some(id) = g.request() {
                let (req, img) = reg
                    .request(&id.to_bytes())
                    .ok_or(SrsError::UnknownRequest)?;
                if req.answer.is_some() {
                    return Err(SrsError::RequestAnswered);
                }
                if &req.patient != g.patient() || &req.user != g.user() || &req.label != g.label() {
                    return Err(SrsError::Malformed(crate::Error::Malformed {
                        what: "grant does not match the request it answers",
                    }));
                }
                let mut answered = req.clone();
                answered.answer = Some((true, now));
                d.detail = format!("{} request={id}", d.detail);
                change.rows.push(Row::Request(answered));
                change.replaced.push(img);
            }
            d.evidence = g.to_bytes();
            change.drafts.push(d);
            if let Some((img, active)) = reg.grant_image(portion, uid) {
                change.replaced.push(img);
                change.scrub = active;
            }
            change.rows.push(Row::Grant(GrantRow {
                key: GrantKey {
                    patient: g.patient().clone(),
                    label: g.label().clone(),
                    epoch: g.epoch(),
                    user: g.user().clone(),
                },
                terms,
                state: GrantState::Active(key),
                consent,
            }));
            Ok(change)
        })
    }

    /// Carries out a revocation the patient signed
    /// ([`crate::PatientKeys::sign_revocation`]): every active grant of the
    /// label (all key epochs) to the user that it outranks ends — the
    /// re-encryption keys are zeroized and deleted, and no stored record is
    /// touched. Once this returns, no re-encryption under these grants
    /// succeeds — on this SRS or on any other process sharing its store.
    /// Returns the SRS's signed receipt, which counts the grants ended.
    ///
    /// Consent is one sequence per (patient, label, user) across every
    /// epoch (SPEC §7.5). The revocation is recorded even when it ends
    /// nothing, and from then on every grant of the triple dated at or
    /// before it is refused as [`SrsError::Replayed`], whatever its epoch
    /// and however late the host files it. It ends a grant dated at or
    /// before it (a grant's date being the earlier of its signed date and
    /// the time the SRS filed it, so a grant dated in the SRS's future does
    /// not outrank it) and leaves a grant the patient signed after it.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::NoConsentKey`],
    /// [`SrsError::UnknownUser`], [`SrsError::UnknownPortion`];
    /// [`SrsError::Malformed`] with [`crate::Error::InvalidSignature`], or
    /// dated more than five minutes ahead of the SRS's clock;
    /// [`SrsError::Replayed`] if it was accepted already or is older than
    /// the last revocation accepted for the triple; store errors.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let receipt = srs.revoke(&patient.sign_revocation(&lab, &doctor)?)?;
    /// receipt.verify(&srs.verifying_key())?; // the patient keeps the SRS's signed receipt
    /// assert!(srs.reencrypt(&doctor, report.header(), Purpose::Treatment).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn revoke(&self, revocation: &SignedRevocation) -> Result<RevocationReceipt, SrsError> {
        let now = self.clock.now();
        check_date(revocation.issued_at(), now)?;
        let r = revocation.clone();
        let signed = Some((r.issued_at(), r.nonce()));
        self.revoke_label(
            now,
            (revocation.patient(), revocation.label(), revocation.user()),
            r.to_bytes(),
            move |reg, pid| {
                r.verify(&patient_consent(reg, pid)?)?;
                Ok((r.patient().as_str().to_owned(), String::new(), signed))
            },
        )
    }

    /// An administrative revocation (a clinician left the hospital, an
    /// incident response): ends every active grant of the label to the
    /// user, authorized by `actor` (who, in which role, why — all recorded
    /// in the audit) instead of the patient's signature. It has no signed
    /// date, so it does not enter the patient's consent order. Returns the
    /// SRS's signed receipt.
    ///
    /// # Errors
    /// [`SrsError::UnknownPatient`], [`SrsError::UnknownUser`],
    /// [`SrsError::UnknownPortion`]; [`SrsError::NotGranted`] if no grant
    /// is active; store errors.
    pub fn revoke_as(
        &self,
        actor: &Actor,
        patient: &Identity,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<RevocationReceipt, SrsError> {
        let a = actor.clone();
        self.revoke_label(
            self.clock.now(),
            (patient, label, user),
            actor.evidence(),
            move |_, _| Ok((a.identity.as_str().to_owned(), admin_detail(&a), None)),
        )
    }

    /// Ends `user`'s grants of `label` once `authorize` (run against the
    /// registry when the change is sequenced) names the actor, the audit
    /// detail and the signed date and nonce, if any; `auth` is the evidence
    /// kept and hashed into the receipt.
    fn revoke_label(
        &self,
        now: u64,
        (patient, label, user): (&Identity, &PortionLabel, &Identity),
        auth: Vec<u8>,
        authorize: impl FnOnce(
            &Registry,
            u32,
        ) -> Result<(String, String, Option<(u64, [u8; 16])>), SrsError>
        + Send
        + 'static,
    ) -> Result<RevocationReceipt, SrsError> {
        let (p, l, u) = (patient.clone(), label.clone(), user.clone());
        let evidence = auth.clone();
        let ended = Arc::new(AtomicU32::new(0));
        let count = ended.clone();
        // A revocation makes a checkpoint: the host (and every process it
        // hands it to) holds proof the store reached it, so a restore to
        // before the revocation is refused wherever it is pinned.
        let out = self.journal.commit_checkpointed(Box::new(move |reg| {
            let pid = reg.patient_id(&p).ok_or(SrsError::UnknownPatient)?;
            let (actor, detail, signed) = authorize(reg, pid)?;
            let uid = reg.user_id(&u).ok_or(SrsError::UnknownUser)?;
            let why = Revocation {
                user: &u,
                now,
                actor: &actor,
                detail,
                evidence,
                signed,
            };
            let change = plan_label_revocation(reg, pid, uid, &l, &why)?;
            let grants = change
                .rows
                .iter()
                .filter(|r| matches!(r, Row::Grant(_)))
                .count();
            count.store(u32::try_from(grants).unwrap_or(u32::MAX), Ordering::SeqCst);
            Ok(change)
        }))?;
        Ok(RevocationReceipt::new(
            self.keys.signing_key(),
            patient.clone(),
            label.clone(),
            user.clone(),
            now,
            out.first_seq,
            ended.load(Ordering::SeqCst),
            &auth,
        ))
    }

    /// A user asks a patient for access to a portion (the host has
    /// authenticated the user). The request waits, audited, until the
    /// patient answers with a grant that names it
    /// ([`crate::consent::GrantOptions::request`]) or a signed refusal
    /// ([`Srs::refuse_request`]).
    ///
    /// # Errors
    /// [`SrsError::UnknownUser`], [`SrsError::UserRemoved`],
    /// [`SrsError::UnknownPatient`], [`SrsError::UnknownPortion`];
    /// [`SrsError::Malformed`] for an empty, too long or control-character
    /// justification; store errors.
    pub fn request_access(
        &self,
        user: &Identity,
        patient: &Identity,
        label: &PortionLabel,
        purpose: Purpose,
        justification: &str,
    ) -> Result<RequestId, SrsError> {
        let justification = check_text(justification)?;
        let now = self.clock.now();
        let id = RequestId::random();
        let (user, patient, label) = (user.clone(), patient.clone(), label.clone());
        self.change(move |reg| {
            let uid = reg.user_id(&user).ok_or(SrsError::UnknownUser)?;
            if !reg.user_is_active(uid) {
                return Err(SrsError::UserRemoved);
            }
            let pid = reg.patient_id(&patient).ok_or(SrsError::UnknownPatient)?;
            if reg.portions_labelled(pid, &label).is_empty() {
                return Err(SrsError::UnknownPortion);
            }
            let mut d = Draft::new(now, user.as_str(), AuditAction::RequestAccess);
            d.patient = Some(patient.clone());
            d.label = Some(label.clone());
            d.user = Some(user.clone());
            d.purpose = Some(purpose);
            d.detail = format!("request={id} justification={justification}");
            let row = Row::Request(RequestRow {
                id: id.to_bytes(),
                patient,
                user,
                label,
                purpose,
                justification,
                requested_at: now,
                answer: None,
            });
            Ok(Change {
                rows: vec![row],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })?;
        Ok(id)
    }

    /// The patient's pending access requests, oldest first.
    pub fn pending_requests(&self, patient: &Identity) -> Vec<AccessRequest> {
        self.read().pending_requests(patient)
    }

    /// Refuses an access request with the patient's signed refusal
    /// ([`crate::PatientKeys::sign_refusal`]); audited with it.
    ///
    /// # Errors
    /// [`SrsError::UnknownRequest`], [`SrsError::RequestAnswered`];
    /// [`SrsError::NoConsentKey`]; [`SrsError::Malformed`] with
    /// [`crate::Error::InvalidSignature`] if it is not the patient's
    /// signature (or names another patient); store errors.
    pub fn refuse_request(&self, refusal: &SignedRefusal) -> Result<(), SrsError> {
        let now = self.clock.now();
        let r = refusal.clone();
        self.change(move |reg| {
            let (req, img) = reg
                .request(&r.request().to_bytes())
                .ok_or(SrsError::UnknownRequest)?;
            if req.answer.is_some() {
                return Err(SrsError::RequestAnswered);
            }
            let pid = reg
                .patient_id(&req.patient)
                .ok_or(SrsError::UnknownPatient)?;
            if r.patient() != &req.patient {
                return Err(SrsError::Malformed(crate::Error::InvalidSignature {
                    what: "signed refusal (another patient's request)",
                }));
            }
            r.verify(&patient_consent(reg, pid)?)?;
            let mut answered = req.clone();
            answered.answer = Some((false, now));
            let mut d = Draft::new(now, req.patient.as_str(), AuditAction::RefuseRequest);
            d.patient = Some(req.patient.clone());
            d.label = Some(req.label.clone());
            d.user = Some(req.user.clone());
            d.detail = format!("request={} reason={}", r.request(), r.reason());
            d.evidence = r.to_bytes();
            Ok(Change {
                rows: vec![Row::Request(answered)],
                replaced: vec![img],
                drafts: vec![d],
                ..Change::audit(Vec::new())
            })
        })
    }
}

/// Who revokes, when and why.
pub(super) struct Revocation<'a> {
    pub(super) user: &'a Identity,
    pub(super) now: u64,
    pub(super) actor: &'a str,
    pub(super) detail: String,
    /// The signed revocation, or the administrative actor's evidence.
    pub(super) evidence: Vec<u8>,
    /// When the patient signed it, and its nonce (none for an
    /// administrative revocation).
    pub(super) signed: Option<(u64, [u8; 16])>,
}

/// Adds the tombstone of one active grant to `change`.
pub(super) fn plan_revoke(
    reg: &Registry,
    change: &mut Change,
    portion: u32,
    user: u32,
    img: rows::RowImage,
    r: &Revocation<'_>,
) -> Result<(), SrsError> {
    let (patient, label, epoch) = reg.portion_owner(portion).ok_or(SrsError::UnknownPortion)?;
    let terms = reg.grant_terms(portion, user).ok_or(SrsError::NotGranted)?;
    let current = reg
        .grant_consent(portion, user)
        .cloned()
        .unwrap_or_default();
    // The tombstone remembers the newer of the grant and the revocation, so
    // neither can be filed again for this key.
    let consent = match r.signed {
        Some((at, nonce)) => current.admit(at, nonce).unwrap_or(current),
        None => current,
    };
    let mut d = Draft::new(r.now, r.actor, AuditAction::Revoke);
    d.patient = Some(patient.clone());
    d.label = Some(label.clone());
    d.user = Some(r.user.clone());
    d.detail = if r.detail.is_empty() {
        format!("epoch={epoch}")
    } else {
        format!("epoch={epoch} {}", r.detail)
    };
    d.evidence = r.evidence.clone();
    change.drafts.push(d);
    change.rows.push(Row::Grant(GrantRow {
        key: GrantKey {
            patient,
            label,
            epoch,
            user: r.user.clone(),
        },
        terms,
        state: GrantState::Revoked(r.now),
        consent,
    }));
    change.replaced.push(img);
    change.scrub = true;
    Ok(())
}

/// Ends `user`'s active grants of `label` (all epochs) that `why` outranks,
/// and records a signed revocation in the triple's consent order (SPEC §7.5)
/// even when it ends nothing.
///
/// A signed revocation must be newer than the last one accepted for the
/// triple; it ends each active grant dated at or before it — a grant's date
/// being `min(signed date, time the SRS accepted it)`, so a grant dated in
/// the SRS's future never outranks it — and leaves the patient's later
/// grants standing. An administrative revocation ends every active grant
/// and must end one.
fn plan_label_revocation(
    reg: &Registry,
    patient: u32,
    user: u32,
    label: &PortionLabel,
    why: &Revocation<'_>,
) -> Result<Change, SrsError> {
    let labelled = reg.portions_labelled(patient, label);
    if labelled.is_empty() {
        return Err(SrsError::UnknownPortion);
    }
    let order = reg.consent_order(patient, label, user);
    let order = order.as_ref();
    let revoked = match why.signed {
        Some((at, nonce)) => Some(
            order
                .map_or_else(Consented::default, |(c, _)| c.revoked.clone())
                .admit(at, nonce)
                .ok_or(SrsError::Replayed)?,
        ),
        None => None,
    };
    let mut bound = order.map_or(0, |(c, _)| c.bound);
    let mut change = Change::audit(Vec::new());
    for (portion, _) in labelled {
        let Some((img, true)) = reg.grant_image(portion, user) else {
            continue;
        };
        let signed_at = reg.grant_consent(portion, user).map_or(0, |c| c.at);
        if let (Some(r), Some(terms)) = (&revoked, reg.grant_terms(portion, user))
            && r.at < signed_at.min(terms.granted_at)
        {
            // The patient's later word stands.
            continue;
        }
        bound = bound.max(signed_at);
        plan_revoke(reg, &mut change, portion, user, img, why)?;
    }
    let Some(revoked) = revoked else {
        if change.rows.is_empty() {
            return Err(SrsError::NotGranted);
        }
        return Ok(change);
    };
    let patient_id = reg
        .patient_identity(patient)
        .ok_or(SrsError::UnknownPatient)?;
    let label = label.clone();
    if change.drafts.is_empty() {
        // Nothing ended: the revocation is still the patient's last word.
        let mut d = Draft::new(why.now, why.actor, AuditAction::Revoke);
        d.patient = Some(patient_id.clone());
        d.label = Some(label.clone());
        d.user = Some(why.user.clone());
        d.detail = if why.detail.is_empty() {
            "ended=0".to_owned()
        } else {
            format!("ended=0 {}", why.detail)
        };
        d.evidence = why.evidence.clone();
        change.drafts.push(d);
    }
    if let Some((_, img)) = order {
        change.replaced.push(img.clone());
    }
    change.rows.push(Row::Consent(ConsentRow {
        patient: patient_id,
        label,
        user: why.user.clone(),
        bound: bound.max(revoked.at),
        revoked,
    }));
    Ok(change)
}

/// The audit detail of an administrative act.
pub(super) fn admin_detail(a: &Actor) -> String {
    format!("actor_role={} reason={}", a.role, a.reason)
}
