//! What the SRS answers about itself: the accounting of disclosures,
//! consent re-checks, the registry, the audit log and its archive.

use std::io::Write;

use crate::consent::{SignedGrant, SignedRevocation};
use crate::ids::{Identity, PortionLabel};
use crate::model::{AuditAction, AuditEntry, AuditOutcome, Disclosure, GrantKey, UserRecord};
use crate::srs::chain::{self, walk};
use crate::srs::journal::contains;
use crate::srs::proofs::BlockReads;
use crate::srs::registry::{RegistrySize, RegistryView};
use crate::srs::secrets::checkpoint_is_signed_by;
use crate::srs::server::*;
use crate::srs::types::SrsError;
use crate::srs::{VerifyingKey, archive};
use crate::store::{Store, StoreError, StoreErrorKind};
use std::sync::Arc;

impl Srs {
    /// The patient's consent public key, as registered (`None` for an
    /// unknown patient or one registered before signed consent).
    pub fn consent_key(&self, patient: &Identity) -> Option<VerifyingKey> {
        let reg = self.read();
        let k = reg.consent_key(reg.patient_id(patient)?)?;
        crate::consent::decode_verifying_key(&k).ok()
    }

    /// The patient's accounting of disclosures (HIPAA §164.528): every
    /// re-encryption served for one of their records with `from <= time <=
    /// to` — when, to whom (and their role), which portion and record, for
    /// what purpose, break-glass or not — oldest first. Streams from the
    /// store's disclosure index in pages (never a scan of the audit log);
    /// entries archived away ([`Srs::archive_audit`]) are in the archive
    /// segments.
    ///
    /// Against a database writer it is true and complete, without
    /// [`Srs::verify_audit`]: every entry is proven in the Merkle log against
    /// the root this SRS holds (SPEC §6.4), and the listing must account
    /// for exactly the patient's authenticated disclosure count (a registry
    /// row every disclosure moves). An edited, moved, spliced, duplicated
    /// or omitted disclosure makes the iterator end with
    /// [`SrsError::Tampered`] — never a wrong list. The price: a window
    /// reads and proves the patient's whole history. A history longer than
    /// a page (1,024) is read a page ahead on a thread of its own while the
    /// iterator checks the page before (the thread ends with its page, and
    /// dropping the iterator waits for it).
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// srs.reencrypt(&doctor, report.header(), Purpose::Treatment)?;
    /// let mine: Vec<_> = srs.disclosures(patient.patient(), 0, u64::MAX).collect::<Result<_, _>>()?;
    /// assert_eq!((mine.len(), mine[0].user.as_str()), (1, "dr-house"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disclosures(&self, patient: &Identity, from: u64, to: u64) -> Disclosures<'_> {
        // What the authenticated count says the log holds, now: the listing
        // must account for exactly that many (nothing omitted).
        let expect = {
            let reg = self.read();
            reg.patient_id(patient)
                .and_then(|p| reg.disclosed(p))
                .map_or((0, 0), |(d, _)| (d.count - d.archived, d.last_seq))
        };
        Disclosures {
            srs: self,
            patient: patient.clone(),
            from,
            to,
            after: None,
            page: std::collections::VecDeque::new(),
            done: false,
            next_page: None,
            check: None,
            expect,
            seen: 0,
            accounted: false,
        }
    }

    /// Every break-glass access to the patient's records (the disclosures
    /// flagged emergency), oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub fn emergency_accesses(&self, patient: &Identity) -> Result<Vec<Disclosure>, SrsError> {
        let mut out = Vec::new();
        for d in self.disclosures(patient, 0, u64::MAX) {
            let d = d?;
            if d.emergency {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Writes the patient's accounting of disclosures as one JSON document
    /// (`{"patient":…,"from":…,"to":…,"disclosures":[{…},…],"count":n}`),
    /// streaming. Returns the number of disclosures written.
    ///
    /// # Errors
    /// Store errors; [`SrsError::Store`] wrapping a write failure.
    pub fn export_disclosures_json<W: Write>(
        &self,
        patient: &Identity,
        from: u64,
        to: u64,
        out: &mut W,
    ) -> Result<u64, SrsError> {
        let io = |e| SrsError::Store(StoreError::with_source("writing the disclosures", e));
        write!(
            out,
            "{{\"patient\":{},\"from\":{from},\"to\":{to},\"disclosures\":[",
            crate::model::json_string(patient.as_str())
        )
        .map_err(io)?;
        let mut n = 0u64;
        for d in self.disclosures(patient, from, to) {
            let d = d?;
            if n > 0 {
                out.write_all(b",").map_err(io)?;
            }
            out.write_all(d.to_json().as_bytes()).map_err(io)?;
            n += 1;
        }
        write!(out, "],\"count\":{n}}}").map_err(io)?;
        Ok(n)
    }

    /// Re-checks the consent behind every change in the live audit log,
    /// with public keys alone (as an auditor would from an export): every
    /// patient registration is self-signed by its consent key and proves
    /// possession of each portion key; every user registration proves
    /// possession of the user's key; every grant, revocation and refusal is
    /// signed by the patient's consent key (taken from their registration
    /// entry, or the registry for one archived away) and names exactly the
    /// entry's patient, label and user; no grant was filed that was signed
    /// before a revocation of its (patient, label, user) filed earlier (SPEC
    /// §7.5); every administrative change names its actor. Then every active
    /// grant in the registry must carry the commitment of the last signed
    /// grant of its key. Returns what it counted.
    ///
    /// # Errors
    /// [`SrsError::InvalidConsent`] naming the first entry whose evidence
    /// fails or that breaks the consent order; [`SrsError::Tampered`] if an active grant is not the one its
    /// patient signed; chain and store errors.
    pub fn verify_consent(&self) -> Result<ConsentReport, SrsError> {
        use crate::consent::{Checked, check_entry};
        if self.shared {
            self.sync()?;
        }
        let pos = self.journal.durable();
        let store = self.journal.store();
        let mut keys: std::collections::HashMap<Identity, VerifyingKey> =
            std::collections::HashMap::new();
        // The commitment of each grant key's last signed grant, and whether
        // it granted a share of a split key.
        let mut signed: std::collections::HashMap<GrantKey, ([u8; 32], bool)> =
            std::collections::HashMap::new();
        // The latest signed revocation of each (patient, label, user).
        let mut revoked_at: std::collections::HashMap<(Identity, PortionLabel, Identity), u64> =
            std::collections::HashMap::new();
        let mut report = ConsentReport::default();
        walk(
            store.as_ref(),
            pos.base_seq,
            pos.base_hash,
            pos.seq,
            &mut |rec, _| {
                let e = &rec.entry;
                let lookup = |p: &Identity| keys.get(p).copied().or_else(|| self.consent_key(p));
                let legacy = e.evidence.is_empty()
                    && matches!(
                        e.action,
                        AuditAction::RegisterUser
                            | AuditAction::RegisterPatient
                            | AuditAction::AddPortion
                            | AuditAction::Grant
                            | AuditAction::Revoke
                            | AuditAction::RemoveUser
                    );
                if legacy && e.outcome == AuditOutcome::Ok {
                    report.unsigned += 1;
                    return Ok(());
                }
                let checked =
                    check_entry(e, &lookup).map_err(|_| SrsError::InvalidConsent { seq: e.seq })?;
                match checked {
                    Checked::Registration(k) => {
                        if let Some(p) = &e.patient {
                            keys.insert(p.clone(), k);
                        }
                        report.registrations += 1;
                    }
                    Checked::User | Checked::PortionKey => report.registrations += 1,
                    Checked::Grant => {
                        let g = SignedGrant::from_bytes(&e.evidence)?;
                        // Consent order (SPEC §7.5): never a grant signed
                        // before a revocation of its triple accepted earlier.
                        let triple = (g.patient().clone(), g.label().clone(), g.user().clone());
                        if revoked_at
                            .get(&triple)
                            .is_some_and(|&at| g.issued_at() < at)
                        {
                            return Err(SrsError::InvalidConsent { seq: e.seq });
                        }
                        signed.insert(
                            GrantKey {
                                patient: g.patient().clone(),
                                label: g.label().clone(),
                                epoch: g.epoch(),
                                user: g.user().clone(),
                            },
                            (g.commitment().to_bytes(), g.threshold().is_some()),
                        );
                        report.grants += 1;
                    }
                    Checked::Revocation => {
                        let r = SignedRevocation::from_bytes(&e.evidence)?;
                        let at = revoked_at
                            .entry((r.patient().clone(), r.label().clone(), r.user().clone()))
                            .or_default();
                        *at = (*at).max(r.issued_at());
                        report.revocations += 1;
                    }
                    Checked::Refusal => report.refusals += 1,
                    Checked::Administrative => report.administrative += 1,
                    _ => {}
                }
                Ok(())
            },
        )?;
        for (key, info) in self.registry().grants {
            let (Some(c), Some((s, split))) = (info.commitment, signed.get(&key)) else {
                continue;
            };
            if c.as_bytes() != s || info.share.is_some() != *split {
                return Err(SrsError::Tampered(
                    "an active grant is not the one its patient signed",
                ));
            }
            report.active_checked += 1;
        }
        Ok(report)
    }

    /// A registered user's record.
    pub fn user(&self, identity: &Identity) -> Option<UserRecord> {
        let reg = self.read();
        reg.user_record(reg.user_id(identity)?)
    }

    /// The registry, grants included, without secrets.
    pub fn registry(&self) -> RegistryView {
        self.read().view()
    }

    /// How much memory the registry holds.
    pub fn registry_size(&self) -> RegistrySize {
        self.read().size()
    }

    /// Reads the whole live audit chain back from the store, page by page in
    /// bounded memory, and verifies it: every link, the authenticated head,
    /// the latest checkpoint, the Merkle tree's root and every node the
    /// store keeps, the disclosure index, and that the store holds every
    /// entry this SRS has made durable. Re-encryptions and changes go on meanwhile. Returns
    /// the sequence number of the last entry verified.
    ///
    /// # Errors
    /// [`SrsError::AuditChainBroken`] or [`SrsError::Tampered`] on any edited,
    /// deleted, reordered or inserted entry; store errors.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let entries = srs.verify_audit()?; // the whole log, every link and node
    /// srs.verify_consent()?; // every grant and revocation against the patient's key
    /// assert!(entries > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_audit(&self) -> Result<u64, SrsError> {
        let _m = self.maintenance();
        if self.shared {
            // Up to what the other processes committed (and archived).
            self.sync()?;
        }
        let pos = self.journal.durable();
        let store = self.journal.store();
        let head = self.authentic_head()?;
        if head.seq < pos.seq || head.base_seq != pos.base_seq || head.base_hash != pos.base_hash {
            return Err(SrsError::AuditChainBroken {
                seq: head.seq.min(pos.seq) + 1,
            });
        }
        // The disclosure index's keyed digest: (count, sum of keyed shares).
        let mut index = (0u64, 0u128);
        // The Merkle nodes the store keeps, recomputed from the entries.
        let mut tree = crate::srs::proofs::TreeCheck::new(store.as_ref(), pos.base_seq);
        let end = walk(
            store.as_ref(),
            pos.base_seq,
            pos.base_hash,
            pos.seq,
            &mut |rec, _| {
                tree.push(&rec.entry)?;
                if let Some(p) = crate::store::disclosed(&rec.entry) {
                    let share =
                        self.keys
                            .index_share(p.as_bytes(), rec.entry.time, rec.entry.seq)?;
                    index = (index.0 + 1, index.1.wrapping_add(share));
                }
                Ok(())
            },
        )?;
        if end != pos.hash {
            return Err(SrsError::AuditChainBroken { seq: pos.seq });
        }
        tree.finish(&pos.tree)?;
        // The disclosure index holds exactly the chain's disclosures up to
        // the entry verified (rows are committed with their entries).
        let mut stored = (0u64, 0u128);
        let mut failed = None;
        store.disclosure_index(pos.seq, &mut |p, t, s| {
            match self.keys.index_share(p, t, s) {
                Ok(share) => stored = (stored.0 + 1, stored.1.wrapping_add(share)),
                Err(e) => failed = Some(e),
            }
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if stored != index {
            return Err(SrsError::Tampered("disclosure index"));
        }
        // Every checkpoint kept: signed by this SRS, and on the chain.
        let mut from = 0;
        let mut count = 0u64;
        loop {
            let page = store.checkpoints(from, chain::PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for cp in &page {
                count += 1;
                if !checkpoint_is_signed_by(cp, self.keys.verifying_key()) {
                    return Err(SrsError::Tampered("checkpoint"));
                }
                if cp.seq <= pos.seq {
                    contains(store.as_ref(), &head, cp)
                        .map_err(|_| SrsError::Tampered("checkpoint"))?;
                }
            }
        }
        if count < head.checkpoints {
            return Err(SrsError::Tampered("checkpoints"));
        }
        Ok(pos.seq)
    }

    /// The audit entries from sequence number `from_seq` on (at most
    /// `limit`).
    ///
    /// # Errors
    /// Store errors.
    pub fn audit_entries(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, SrsError> {
        let to = self.journal.durable().seq;
        Ok(self
            .journal
            .store()
            .audit(from_seq, to, limit)?
            .into_iter()
            .map(|r| r.entry)
            .collect())
    }

    /// Writes the audit chain from `from_seq` on as JSON lines (one object
    /// per entry, with `prev_hash` and `hash`), streaming in bounded memory,
    /// verifying each link on the way. Returns the number of entries written.
    ///
    /// # Errors
    /// Store errors; [`SrsError::AuditChainBroken`]; [`SrsError::Store`]
    /// wrapping a write failure.
    ///
    /// # Example
    ///
    /// ```
    #[doc = include_str!("doc_setup.md")]
    /// let mut out = Vec::new();
    /// let n = srs.export_audit_jsonl(1, &mut out)?;
    /// assert_eq!(String::from_utf8(out)?.lines().count() as u64, n);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_audit_jsonl<W: Write>(
        &self,
        from_seq: u64,
        out: &mut W,
    ) -> Result<u64, SrsError> {
        let pos = self.journal.durable();
        let store = self.journal.store();
        let from = from_seq.max(pos.base_seq + 1);
        let (start, prev) = if from - 1 == pos.base_seq {
            (pos.base_seq, pos.base_hash)
        } else {
            let r = store.audit(from - 1, from - 1, 1)?;
            let h = r
                .first()
                .map(|r| r.hash)
                .ok_or(SrsError::AuditChainBroken { seq: from - 1 })?;
            (from - 1, h)
        };
        let mut n = 0;
        walk(store.as_ref(), start, prev, pos.seq, &mut |rec, prev| {
            writeln!(out, "{}", rec.entry.to_json(prev, &rec.hash)).map_err(|e| {
                SrsError::Store(StoreError::with_source("writing the audit export", e))
            })?;
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Archives the audit chain up to the checkpoint at `upto`: writes the
    /// segment (from the current base to `upto`, with the signed checkpoints
    /// at both ends) to `out`, verifying it on the way, then deletes those
    /// entries from the store. The segment stays verifiable on its own with
    /// [`verify_segment`](crate::srs::verify_segment) and this SRS's [`Srs::verifying_key`]. Returns the
    /// number of entries archived.
    ///
    /// # Errors
    /// [`SrsError::Diverged`] if there is no checkpoint at `upto` (make one
    /// with [`Srs::checkpoint`]) or it is at or before the current base;
    /// chain and store errors; [`SrsError::Store`] wrapping a write failure.
    pub fn archive_audit<W: Write>(&self, upto: u64, out: &mut W) -> Result<u64, SrsError> {
        let _m = self.maintenance();
        if self.shared {
            self.sync()?;
        }
        let store = self.journal.store();
        let pos = self.journal.durable();
        let end = store
            .checkpoint_at(upto)?
            .filter(|c| c.seq > pos.base_seq && c.seq <= pos.seq)
            .ok_or(SrsError::Diverged {
                checkpoint_seq: upto,
            })?;
        self.verify_checkpoint(&end)?;
        let start = if pos.base_seq == 0 {
            None
        } else {
            Some(
                store
                    .checkpoint_at(pos.base_seq)?
                    .ok_or(SrsError::Tampered("archive base checkpoint"))?,
            )
        };
        let n = archive::write_segment(
            store.as_ref(),
            (pos.base_seq, pos.base_hash),
            start.as_ref(),
            &end,
            out,
        )?;
        self.journal.prune(end.seq, end.chain_hash)?;
        Ok(n)
    }
}

/// What [`Srs::verify_consent`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsentReport {
    /// Patient, portion-key and user registrations with valid signatures
    /// and proofs.
    pub registrations: u64,
    /// Grants signed by their patient.
    pub grants: u64,
    /// Revocations signed by their patient.
    pub revocations: u64,
    /// Refusals signed by their patient.
    pub refusals: u64,
    /// Administrative changes (actor named, no patient signature).
    pub administrative: u64,
    /// Changes recorded before signed consent existed (no evidence).
    pub unsigned: u64,
    /// Active grants whose commitment was matched to their signed grant.
    pub active_checked: u64,
}

/// The pages of [`Srs::disclosures`].
pub struct Disclosures<'a> {
    srs: &'a Srs,
    patient: Identity,
    from: u64,
    to: u64,
    after: Option<(u64, u64)>,
    page: std::collections::VecDeque<AuditEntry>,
    done: bool,
    /// The next page, being read on another thread while this one is
    /// checked and consumed.
    next_page: Option<std::thread::JoinHandle<Result<Page, SrsError>>>,
    check: Option<crate::srs::proofs::EntryCheck<'a>>,
    /// The authenticated (live count, last sequence number) of the
    /// patient's disclosures when the listing began.
    expect: (u64, u64),
    /// Proven disclosures up to that last one.
    seen: u64,
    /// The count was checked at the end.
    accounted: bool,
}

impl core::fmt::Debug for Disclosures<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disclosures")
            .field("patient", &self.patient)
            .finish_non_exhaustive()
    }
}

/// The proof checker in `slot` for entries up to `seq`: against the root
/// this process holds, taken anew when the log it holds is older.
fn checker<'c, 'a>(
    slot: &'c mut Option<crate::srs::proofs::EntryCheck<'a>>,
    srs: &'a Srs,
    seq: u64,
) -> &'c mut crate::srs::proofs::EntryCheck<'a> {
    if slot.as_ref().is_some_and(|c| c.size() < seq) {
        *slot = None;
    }
    slot.get_or_insert_with(|| {
        let (size, root) = srs.durable_tree();
        crate::srs::proofs::EntryCheck::new(srs.journal.store().as_ref(), size, root)
    })
}

/// Disclosures read per page.
const DISCLOSURE_PAGE: usize = 1024;

/// A page of the disclosure index: its entries and the leaves of the
/// blocks they fall in (for their proofs).
type Page = (Vec<AuditEntry>, BlockReads);

/// Reads the page of `patient`'s disclosures after `after`, and the leaves
/// their proofs in a tree of `size` entries start from.
fn read_page(
    store: &dyn Store,
    patient: &Identity,
    after: Option<(u64, u64)>,
    size: u64,
) -> Result<Page, SrsError> {
    // The whole history, whatever the window: only so can every
    // disclosure the count holds be accounted for.
    let page: Vec<AuditEntry> = store
        .disclosures(patient, 0, u64::MAX, after, DISCLOSURE_PAGE)?
        .into_iter()
        .map(|r| r.entry)
        .collect();
    let blocks = BlockReads::read(store, size, &page)?;
    Ok((page, blocks))
}

impl Disclosures<'_> {
    fn fail<T>(&mut self, e: SrsError) -> Option<Result<T, SrsError>> {
        self.done = true;
        self.accounted = true;
        self.page.clear();
        Some(Err(e))
    }

    /// The next page: the one read ahead, else read now. A full page has
    /// a successor, which another thread starts reading (where threads can
    /// be made) while this one is checked.
    fn turn_page(&mut self) -> Result<(), SrsError> {
        let store = self.srs.journal.store();
        let size = self.check.as_ref().map_or_else(
            || self.srs.durable_tree().0,
            crate::srs::proofs::EntryCheck::size,
        );
        let (page, blocks) = match self.next_page.take() {
            Some(reading) => reading.join().unwrap_or_else(|_| {
                Err(SrsError::Store(StoreError::new(
                    StoreErrorKind::Io,
                    "reading the disclosure index ahead failed",
                )))
            })?,
            None => read_page(store.as_ref(), &self.patient, self.after, size)?,
        };
        self.done = page.len() < DISCLOSURE_PAGE;
        if let Some(last) = page.last().filter(|_| !self.done) {
            let (store, patient) = (Arc::clone(store), self.patient.clone());
            let after = Some((last.time, last.seq));
            self.next_page = std::thread::Builder::new()
                .name("sesphr-disclosures".into())
                .spawn(move || read_page(store.as_ref(), &patient, after, size))
                .ok();
        }
        self.page = page.into();
        let last = self.page.iter().map(|e| e.seq).max().unwrap_or(0);
        // Their proofs' nodes in a few reads, not per entry.
        checker(&mut self.check, self.srs, last).prepare(self.page.make_contiguous(), blocks)
    }
}

impl Drop for Disclosures<'_> {
    fn drop(&mut self) {
        // The page being read ahead is not wanted; its thread is waited
        // for, so that nothing outlives the listing.
        if let Some(reading) = self.next_page.take() {
            let _ = reading.join();
        }
    }
}

impl Disclosures<'_> {
    /// The next entry of the window, proven in the log and a disclosure of
    /// this patient; after the last, the check that none was omitted.
    pub(crate) fn next_entry(&mut self) -> Option<Result<AuditEntry, SrsError>> {
        loop {
            if self.page.is_empty()
                && !self.done
                && let Err(e) = self.turn_page()
            {
                return self.fail(e);
            }
            let Some(e) = self.page.pop_front() else {
                if self.accounted {
                    return None;
                }
                self.accounted = true;
                // Nothing omitted: as many as the authenticated count.
                return (self.seen != self.expect.0)
                    .then(|| self.fail(SrsError::Tampered("disclosure index omits disclosures")))
                    .flatten();
            };
            // In (time, seq) order, each once: an index row copied to another
            // time would list an entry twice.
            if self.after.is_some_and(|a| (e.time, e.seq) <= a) {
                return self.fail(SrsError::Tampered("disclosure index"));
            }
            self.after = Some((e.time, e.seq));
            // Each entry proven in the Merkle log against the root this
            // process holds (authenticated): an entry edited, moved or
            // spliced in below any checkpoint is an error, never a wrong
            // disclosure.
            if let Err(err) = checker(&mut self.check, self.srs, e.seq).check(&e) {
                return self.fail(err);
            }
            // What the index points to must be a disclosure of this patient.
            if crate::store::disclosed(&e) != Some(&self.patient) {
                return self.fail(SrsError::Tampered("disclosure index"));
            }
            if e.seq <= self.expect.1 {
                self.seen += 1;
            }
            if e.time < self.from || e.time > self.to {
                continue;
            }
            return Some(Ok(e));
        }
    }
}

/// An entry the index lists as a disclosure that is not one.
pub(crate) const NOT_A_DISCLOSURE: SrsError =
    SrsError::Tampered("the disclosure index names an entry that is not a disclosure");

impl Iterator for Disclosures<'_> {
    type Item = Result<Disclosure, SrsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let e = match self.next_entry()? {
            Ok(e) => e,
            Err(err) => return Some(Err(err)),
        };
        let role = e.user.as_ref().and_then(|u| {
            let reg = self.srs.read();
            reg.user_role(reg.user_id(u)?).cloned()
        });
        Some(Disclosure::from_entry(e, role).ok_or(NOT_A_DISCLOSURE))
    }
}
