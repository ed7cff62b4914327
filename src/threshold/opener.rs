//! The delegatee's robust combination of the nodes' answers: each judged
//! alone, verdicts, the nodes named, whole and streaming opens.

use core::fmt;
use std::io::Read;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::MultiscalarMul;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::commitments::{ShareCommitments, VerifiedCommitments};
use super::lagrange_at_zero;
use crate::capsule::PortionHeader;
use crate::dem;
use crate::error::{Error, Result, ShareFault, ShareStatus, ShareVerdict};
use crate::keys::{KeyPair, PublicKey};
use crate::portion::{PortionOpener, PortionPlaintext, PortionReader, SealedPortion};
use crate::pq::{PqSecretKey, combine_sigma, sigma_scalar};
use crate::reencrypt::{ReCapsule, open_rewrapped, verify_proofs};
use crate::rekey::delegatee_factor;

/// The delegatee's side of a threshold grant: `d` (from the user's secret
/// key) and the grant's commitments, checked once (`d·C_0 == X_{P,c}`), then
/// used for every record. Zeroized on drop; `Debug` hides `d`.
#[derive(Clone)]
pub struct ThresholdOpener {
    d: Scalar,
    commitments: ShareCommitments,
    require_proof: bool,
    /// The user's ML-KEM-768 key, for hybrid headers.
    pq: Option<PqSecretKey>,
}

/// The answers of the nodes to one re-encryption request, as an opener
/// takes them: decoded or encoded re-capsule shares (each attributed to the
/// index it carries), or the bytes each node sent with the node the host
/// asked — a share is then attributed to its sender, and one that claims
/// another node's index is that sender's wrong answer. Where answers come
/// over a network, pass [`Shares::FromNodes`]: only then can a node that
/// answers under another's index be told from that other node.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Shares<'a> {
    /// Decoded shares.
    Decoded(&'a [ReCapsule]),
    /// Encoded shares, each attributed to the index it carries.
    Encoded(&'a [&'a [u8]]),
    /// `(node asked, bytes it answered)`.
    FromNodes(&'a [(u8, &'a [u8])]),
}

impl<'a> From<&'a [ReCapsule]> for Shares<'a> {
    fn from(s: &'a [ReCapsule]) -> Self {
        Self::Decoded(s)
    }
}
impl<'a, const N: usize> From<&'a [ReCapsule; N]> for Shares<'a> {
    fn from(s: &'a [ReCapsule; N]) -> Self {
        Self::Decoded(s)
    }
}
impl<'a> From<&'a Vec<ReCapsule>> for Shares<'a> {
    fn from(s: &'a Vec<ReCapsule>) -> Self {
        Self::Decoded(s)
    }
}
impl<'a> From<&'a [&'a [u8]]> for Shares<'a> {
    fn from(s: &'a [&'a [u8]]) -> Self {
        Self::Encoded(s)
    }
}
impl<'a> From<&'a [(u8, &'a [u8])]> for Shares<'a> {
    fn from(s: &'a [(u8, &'a [u8])]) -> Self {
        Self::FromNodes(s)
    }
}
impl<'a, const N: usize> From<&'a [(u8, &'a [u8]); N]> for Shares<'a> {
    fn from(s: &'a [(u8, &'a [u8]); N]) -> Self {
        Self::FromNodes(s)
    }
}
impl<'a> From<&'a Vec<(u8, &'a [u8])>> for Shares<'a> {
    fn from(s: &'a Vec<(u8, &'a [u8])>) -> Self {
        Self::FromNodes(s)
    }
}

/// What a threshold opener made of the answers it was given: one verdict
/// per answer, the nodes whose shares were combined, and the nodes that
/// answered wrongly.
#[derive(Debug)]
pub struct ShareReport {
    used: Vec<u8>,
    bad: Vec<u8>,
    verdicts: Vec<ShareVerdict>,
}

impl ShareReport {
    /// The node indices whose shares were combined (`t` of them).
    pub fn used(&self) -> &[u8] {
        &self.used
    }

    /// The nodes whose answers were wrong: undecodable, of another capsule
    /// or grant, with a wrong index, or with a proof that fails against
    /// the patient's commitments (and, when proofs were required, without
    /// a proof). A node is named only for an answer attributed to it and
    /// never when another answer of it proved correct. Sorted.
    pub fn bad_nodes(&self) -> &[u8] {
        &self.bad
    }

    /// One verdict per answer, in the order given.
    pub fn verdicts(&self) -> &[ShareVerdict] {
        &self.verdicts
    }
}

/// A threshold open that succeeded: the plaintext and the
/// [`ShareReport`].
pub struct ThresholdOpened {
    plaintext: Vec<u8>,
    report: ShareReport,
}

impl ThresholdOpened {
    /// The plaintext.
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// The plaintext, taken.
    pub fn into_plaintext(self) -> Vec<u8> {
        self.plaintext
    }

    /// The node indices whose shares were combined.
    pub fn used(&self) -> &[u8] {
        self.report.used()
    }

    /// The nodes whose answers were wrong ([`ShareReport::bad_nodes`]).
    pub fn bad_nodes(&self) -> &[u8] {
        self.report.bad_nodes()
    }

    /// One verdict per answer, in the order given.
    pub fn verdicts(&self) -> &[ShareVerdict] {
        self.report.verdicts()
    }

    /// The whole report.
    pub fn report(&self) -> &ShareReport {
        &self.report
    }

    /// The plaintext and the report, taken.
    pub fn into_parts(self) -> (Vec<u8>, ShareReport) {
        (self.plaintext, self.report)
    }
}

impl fmt::Debug for ThresholdOpened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdOpened")
            .field("plaintext_len", &self.plaintext.len())
            .field("report", &self.report)
            .finish()
    }
}

// The streaming forms under the names of the types they make. They are
// here, not in `portion.rs`, so that the portion module stays below this
// one (this module imports it).
impl<R: Read> PortionReader<R> {
    /// Opens the body as a granted user of a split key, from the nodes'
    /// answers with proofs: [`ThresholdOpener::open_stream`].
    ///
    /// # Errors
    /// As [`ThresholdOpener::open_stream`].
    pub fn open_threshold<'a>(
        self,
        opener: &ThresholdOpener,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(PortionPlaintext<R>, ShareReport)> {
        opener.open_stream(self, shares)
    }
}

impl PortionOpener {
    /// The opener of `header`'s body, pushed in pieces, for a granted user
    /// of a split key, from the nodes' answers with proofs:
    /// [`ThresholdOpener::chunk_opener`].
    ///
    /// # Errors
    /// As [`ThresholdOpener::chunk_opener`].
    pub fn for_threshold<'a>(
        header: &PortionHeader,
        opener: &ThresholdOpener,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(Self, ShareReport)> {
        opener.chunk_opener(header, shares)
    }
}

/// One answer on its way through the opener.
struct Entry<'a> {
    /// The node the caller says sent it.
    sender: Option<u8>,
    /// The share, if it decoded.
    share: Option<&'a ReCapsule>,
    /// Why it was set aside.
    fault: Option<ShareFault>,
    /// Whether its proof was checked and holds.
    proven: bool,
    /// For a hybrid header: the node's share of `σ`, opened and checked
    /// against the header's commitment.
    sigma: Option<Zeroizing<Scalar>>,
}

impl<'a> Entry<'a> {
    /// A share not judged yet.
    fn new(sender: Option<u8>, share: &'a ReCapsule) -> Self {
        Self {
            sender,
            share: Some(share),
            fault: None,
            proven: false,
            sigma: None,
        }
    }

    /// An answer set aside before it could be a share.
    fn faulty(sender: Option<u8>, fault: ShareFault) -> Self {
        Self {
            sender,
            share: None,
            fault: Some(fault),
            proven: false,
            sigma: None,
        }
    }

    /// The node index it counts for, once it passed the structural checks.
    fn index(&self) -> Option<u8> {
        if self.fault.is_some() {
            return None;
        }
        self.share.and_then(ReCapsule::share_index)
    }
}

/// What trying a candidate key told.
pub(crate) enum Attempt<T> {
    /// The key opened (the first chunk authenticated, or no check asked).
    Opened(T),
    /// The first chunk did not authenticate: a wrong key.
    WrongKey,
}

impl ThresholdOpener {
    /// The opener of `user` for a grant whose commitments were checked
    /// against the patient's signed share grant. Only such an opener names
    /// nodes on the patient's word.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the commitments name another user's key;
    /// [`Error::InvalidCommitments`] if `C_0 != d⁻¹·X_{P,c}` (they are not
    /// the split of a key from that portion to this user).
    pub fn new(user: &KeyPair, commitments: &VerifiedCommitments) -> Result<Self> {
        Self::new_unauthenticated(user, commitments.commitments())
    }

    /// The opener of `user` from commitments no signed grant vouched for.
    /// They still carry the patient's proof of knowledge of `rk` and are
    /// checked against the user's own `d`, but which grant they belong to
    /// is the caller's word — so its verdicts cannot be relied on to name
    /// liars: the commitments of another genuine split of the same portion
    /// to the same user (an older grant) pass these checks, and against
    /// them every honest node's answer looks wrong. Use
    /// [`ThresholdOpener::new`] where the signed share grant is at hand.
    ///
    /// # Errors
    /// As [`ThresholdOpener::new`].
    pub fn new_unauthenticated(user: &KeyPair, commitments: &ShareCommitments) -> Result<Self> {
        if user.public() != commitments.delegatee() {
            return Err(Error::KeyMismatch);
        }
        let d = delegatee_factor(user, commitments.ephemeral(), commitments.portion_key());
        let opener = Self {
            d,
            commitments: commitments.clone(),
            require_proof: false,
            pq: user.pq().cloned(),
        };
        // Whether the commitments are of this user's key: the caller is told.
        let holds = d * commitments.commitment().point() == *commitments.portion_key().point();
        if !crate::ct::public(holds, "commitments-check-verdict") {
            return Err(Error::InvalidCommitments);
        }
        Ok(opener)
    }

    /// Checks every share's proof before combining (as
    /// [`ThresholdOpener::open_verified`] always does).
    #[must_use]
    pub fn require_proof(mut self) -> Self {
        self.require_proof = true;
        self
    }

    /// The grant's commitments.
    pub fn commitments(&self) -> &ShareCommitments {
        &self.commitments
    }

    /// Opens `sealed` from the nodes' answers, whenever at least `t` of
    /// them are valid, whatever the others contain. Each answer is decoded
    /// and checked on its own (a node index in `1..=n` and, for
    /// [`Shares::FromNodes`], the sender's; this capsule and this grant's
    /// `X_e`); one that fails is set aside with its reason. The first `t`
    /// remaining (one per node) are combined and the body opened; only if
    /// that fails are the combined shares judged by their proofs, one at a
    /// time until one fails (or has none), and the open retried with the
    /// next answer in its place — so each wrong answer costs one proof
    /// check and one combination more. Spare answers that were not needed
    /// are not judged. Nothing unauthenticated is released.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the header is of another portion key;
    /// [`Error::InvalidCapsule`]; [`Error::TooFewShares`] (with every
    /// answer's verdict) when fewer than `t` valid shares remain;
    /// [`Error::DecryptionFailed`] when `t` shares that proved correct do
    /// not open the body (it was altered).
    pub fn open<'a>(
        &self,
        sealed: &SealedPortion,
        shares: impl Into<Shares<'a>>,
    ) -> Result<ThresholdOpened> {
        self.open_inner(sealed, shares.into(), self.require_proof)
    }

    /// As [`ThresholdOpener::open`], checking every share's proof first
    /// (shares without a proof are set aside and name their node).
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`].
    pub fn open_verified<'a>(
        &self,
        sealed: &SealedPortion,
        shares: impl Into<Shares<'a>>,
    ) -> Result<ThresholdOpened> {
        self.open_inner(sealed, shares.into(), true)
    }

    fn open_inner(
        &self,
        sealed: &SealedPortion,
        shares: Shares<'_>,
        verify_first: bool,
    ) -> Result<ThresholdOpened> {
        let body = sealed.body();
        let (plaintext, report) = self.select(sealed.header(), shares, verify_first, |key| {
            match dem::open(&key, body) {
                Ok(pt) => Ok(Attempt::Opened(pt)),
                // The key is wrong if not even the first chunk opens;
                // otherwise the body was altered.
                Err(Error::DecryptionFailed) if !dem::first_chunk_opens(&key, body) => {
                    Ok(Attempt::WrongKey)
                }
                Err(e) => Err(e),
            }
        })?;
        Ok(ThresholdOpened { plaintext, report })
    }

    /// Opens a sealed portion read from a stream, from the nodes' answers
    /// (re-capsule shares *with proofs*: the body is read once, so every
    /// share is judged by its proof before any is combined; one without a
    /// proof is set aside). As robust as [`ThresholdOpener::open`]: it
    /// opens whenever `t` answers prove correct, whatever the others hold.
    /// Memory stays bounded (one chunk).
    ///
    /// ```
    /// # use sesphr::*;
    /// # let patient = PatientKeys::generate(Identity::new("p")?);
    /// # let label = PortionLabel::new("imaging")?;
    /// # let key = patient.portion_secret(&label, 0);
    /// # let doctor = KeyPair::generate();
    /// # let (commitments, shares) = ReKey::generate(&key, doctor.public()).split(2, 3)?;
    /// # let grant = patient.sign_share_grant(&label, 0, &Identity::new("dr")?, &commitments, &Default::default())?;
    /// let scan = vec![9u8; 300_000];
    /// let sealed = SealedPortion::seal(key.public(), RecordId::random(), 1_700_000_000, &scan)?.to_bytes();
    /// let reader = PortionReader::new(&sealed[..])?;
    /// let answers: Vec<ReCapsule> = shares[1..]
    ///     .iter()
    ///     .map(|s| s.reencrypt_with_proof(reader.header().verify()?))
    ///     .collect::<Result<_>>()?;
    /// let verified = grant.verify_commitments(&patient.consent_public(), &commitments)?;
    /// let opener = ThresholdOpener::new(&doctor, &verified)?;
    /// let (mut plaintext, report) = opener.open_stream(reader, &answers)?;
    /// let mut out = Vec::new();
    /// std::io::Read::read_to_end(&mut plaintext, &mut out)?;
    /// assert_eq!(out, scan);
    /// assert_eq!(report.used(), &[2, 3]);
    /// # Ok::<(), sesphr::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`], before any body byte is read;
    /// tampering with the body shows up while reading.
    pub fn open_stream<'a, R: Read>(
        &self,
        reader: PortionReader<R>,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(PortionPlaintext<R>, ShareReport)> {
        let (header, inner) = reader.into_parts();
        let (key, report) = self.proven_dem_key(&header, shares.into())?;
        Ok((PortionPlaintext::new(key, inner), report))
    }

    /// An opener of `header`'s body pushed in pieces of any size (for hosts
    /// that receive the body in callbacks, and the C ABI), from the nodes'
    /// answers with proofs, as [`ThresholdOpener::open_stream`].
    ///
    /// # Errors
    /// As [`ThresholdOpener::open`], before any body byte is read.
    pub fn chunk_opener<'a>(
        &self,
        header: &PortionHeader,
        shares: impl Into<Shares<'a>>,
    ) -> Result<(PortionOpener, ShareReport)> {
        let (key, report) = self.proven_dem_key(header, shares.into())?;
        Ok((PortionOpener::from_key(key), report))
    }

    /// The DEM key of `header` from shares that all proved correct.
    fn proven_dem_key(
        &self,
        header: &PortionHeader,
        shares: Shares<'_>,
    ) -> Result<(dem::DemKey, ShareReport)> {
        self.select(header, shares, true, |key| Ok(Attempt::Opened(key)))
    }

    /// The robust selection behind every threshold open: checks each answer,
    /// combines `t` of them into a DEM key and hands it to `attempt`; on a
    /// wrong key, judges every share by its proof and tries `t` that proved
    /// correct.
    fn select<T>(
        &self,
        header: &PortionHeader,
        shares: Shares<'_>,
        verify_first: bool,
        mut attempt: impl FnMut(dem::DemKey) -> Result<Attempt<T>>,
    ) -> Result<(T, ShareReport)> {
        if header.context().portion_key() != self.commitments.portion_key() {
            return Err(Error::KeyMismatch);
        }
        header.verify()?;
        // Decode what came as bytes: the entries borrow the shares that
        // decode and take the errors of those that do not.
        let mut decoded: Vec<(Option<u8>, Result<ReCapsule>)> = match shares {
            Shares::Decoded(_) => Vec::new(),
            Shares::Encoded(a) => a.iter().map(|b| (None, ReCapsule::from_bytes(b))).collect(),
            Shares::FromNodes(a) => a
                .iter()
                .map(|(n, b)| (Some(*n), ReCapsule::from_bytes(b)))
                .collect(),
        };
        let mut entries: Vec<Entry<'_>> = match shares {
            Shares::Decoded(rcs) => rcs.iter().map(|rc| Entry::new(None, rc)).collect(),
            Shares::Encoded(_) | Shares::FromNodes(_) => decoded
                .iter_mut()
                .map(|(sender, rc)| match rc {
                    Ok(rc) => Entry::new(*sender, rc),
                    Err(e) => {
                        let e = core::mem::replace(e, Error::ShareMismatch);
                        Entry::faulty(*sender, ShareFault::Undecodable(e))
                    }
                })
                .collect(),
        };
        self.check_structure(header, &mut entries);
        self.check_pq_shares(header, &mut entries)?;
        let all: Vec<usize> = (0..entries.len()).collect();
        if verify_first {
            self.judge_proofs(&mut entries, &all, true);
        }
        let t = usize::from(self.commitments.threshold());
        loop {
            // One share per node: the first that is not set aside (with
            // proofs required, the first that proved correct).
            let mut pick: Vec<usize> = Vec::with_capacity(t);
            let mut taken = [false; 256];
            for (k, e) in entries.iter().enumerate() {
                let Some(i) = e.index() else { continue };
                if (verify_first && !e.proven) || taken[usize::from(i)] {
                    continue;
                }
                taken[usize::from(i)] = true;
                if pick.len() < t {
                    pick.push(k);
                }
            }
            if pick.len() < t {
                // Too few either way; say why each answer with a proof was
                // set aside (answers without one stay unjudged).
                self.judge_proofs(&mut entries, &all, false);
                let mut valid = [false; 256];
                for i in entries.iter().filter_map(Entry::index) {
                    valid[usize::from(i)] = true;
                }
                let valid = valid.iter().filter(|&&x| x).count();
                return Err(Error::TooFewShares {
                    needed: self.commitments.threshold(),
                    valid: u8::try_from(valid).unwrap_or(u8::MAX),
                    verdicts: self.report(entries, &[], verify_first).verdicts,
                });
            }
            let key = self.combine(header, &entries, &pick)?;
            match attempt(key)? {
                Attempt::Opened(value) => {
                    return Ok((value, self.report(entries, &pick, verify_first)));
                }
                Attempt::WrongKey => {
                    // Judge the shares combined, one at a time, until one
                    // fails its proof (or has none); then combine again
                    // with the next answers. If all of them prove correct,
                    // the combination was right and the body is altered.
                    let mut found = false;
                    for &k in &pick {
                        self.judge_proofs(&mut entries, &[k], true);
                        if entries.get(k).is_some_and(|e| e.fault.is_some()) {
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        return Err(Error::DecryptionFailed);
                    }
                }
            }
        }
    }

    /// Sets aside every answer that cannot be a share of this grant for
    /// this header, judged alone (and second copies of an answer).
    fn check_structure(&self, header: &PortionHeader, entries: &mut [Entry<'_>]) {
        for k in 0..entries.len() {
            let Some(e) = entries.get(k) else { continue };
            let Some(rc) = e.share else { continue };
            let fault = match rc.share_index() {
                None => Some(ShareFault::NotAShare),
                Some(i) if self.commitments.check_index(i).is_err() => {
                    Some(ShareFault::WrongIndex { index: i })
                }
                Some(i) if e.sender.is_some_and(|s| s != i) => {
                    Some(ShareFault::WrongIndex { index: i })
                }
                Some(_)
                    if rc.capsule != *header.capsule()
                        || rc.ephemeral != *self.commitments.ephemeral() =>
                {
                    Some(ShareFault::OtherCapsule)
                }
                Some(_)
                    if entries.iter().take(k).any(|o| {
                        o.fault.is_none() && o.sender == e.sender && o.share == Some(rc)
                    }) =>
                {
                    Some(ShareFault::Duplicate)
                }
                Some(_) => None,
            };
            if let Some(entry) = entries.get_mut(k) {
                entry.fault = fault;
            }
        }
    }

    /// For a hybrid header, opens each remaining answer's share of `σ` with
    /// the user's ML-KEM-768 key and checks it against the header's
    /// commitment for its node (one decapsulation and one hash each); sets
    /// aside those that fail. A classical header's answers must carry none.
    ///
    /// # Errors
    /// [`Error::PqKeyMissing`] for a hybrid header when the user has no
    /// ML-KEM-768 key; [`Error::KeyMismatch`] when the header's split of
    /// `σ` is not this grant's `t`-of-`n`.
    fn check_pq_shares(&self, header: &PortionHeader, entries: &mut [Entry<'_>]) -> Result<()> {
        let split = header.pq_split();
        let key = match (split, &self.pq) {
            (None, _) => None,
            (Some(_), None) => return Err(Error::PqKeyMissing),
            (Some(split), Some(_))
                if split != (self.commitments.threshold(), self.commitments.nodes()) =>
            {
                return Err(Error::KeyMismatch);
            }
            (Some(_), Some(key)) => Some(key),
        };
        for e in entries.iter_mut() {
            let (Some(i), Some(rc)) = (e.index(), e.share) else {
                continue;
            };
            let sigma = match (key, rc.pq.as_deref()) {
                (None, None) => continue,
                (Some(key), Some(stanza)) => {
                    open_rewrapped(header, i, stanza, key, self.commitments.ephemeral())
                        .ok()
                        .and_then(|s| sigma_scalar(&s))
                }
                _ => None,
            };
            match sigma {
                Some(s) => e.sigma = Some(s),
                None => e.fault = Some(ShareFault::BadPqShare),
            }
        }
        Ok(())
    }

    /// Checks the proofs of the shares `which` not yet judged (in one
    /// batch), and sets aside those that fail and, if `missing_fails`,
    /// those that have none.
    fn judge_proofs(&self, entries: &mut [Entry<'_>], which: &[usize], missing_fails: bool) {
        let todo: Vec<usize> = which
            .iter()
            .copied()
            .filter(|&k| {
                entries.get(k).is_some_and(|e| {
                    e.index().is_some()
                        && !e.proven
                        && (missing_fails || e.share.is_some_and(|rc| rc.proof().is_some()))
                })
            })
            .collect();
        let keys: Vec<PublicKey> = todo
            .iter()
            .filter_map(|&k| entries.get(k)?.index())
            .map(|i| PublicKey::from_point(self.commitments.verification_point(i)))
            .collect();
        let items: Vec<(&ReCapsule, &PublicKey)> = todo
            .iter()
            .filter_map(|&k| entries.get(k)?.share)
            .zip(&keys)
            .collect();
        let holds = verify_proofs(&items);
        for (&k, ok) in todo.iter().zip(holds) {
            let Some(e) = entries.get_mut(k) else {
                continue;
            };
            if ok {
                e.proven = true;
            } else if e.share.is_some_and(|rc| rc.proof().is_none()) {
                e.fault = Some(ShareFault::NoProof);
            } else {
                e.fault = Some(ShareFault::BadProof);
            }
        }
    }

    /// `Z = Σ (d·λ_i)·E'_i` over exactly `t` shares (constant time in `d`),
    /// and the DEM key.
    fn combine(
        &self,
        header: &PortionHeader,
        entries: &[Entry<'_>],
        pick: &[usize],
    ) -> Result<dem::DemKey> {
        let picked: Vec<(u8, &ReCapsule, Option<&Zeroizing<Scalar>>)> = pick
            .iter()
            .filter_map(|&k| {
                let e = entries.get(k)?;
                Some((e.index()?, e.share?, e.sigma.as_ref()))
            })
            .collect();
        let xs: Vec<u8> = picked.iter().map(|(i, _, _)| *i).collect();
        let mut scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(
            lagrange_at_zero(&xs)
                .into_iter()
                .map(|l| self.d * l)
                .collect(),
        );
        let mut z = RistrettoPoint::multiscalar_mul(
            scalars.iter(),
            picked.iter().map(|(_, rc, _)| rc.e_prime_point),
        );
        scalars.zeroize();
        // A hybrid header's `σ` from the same nodes' shares (each checked
        // against the header's commitment).
        let sigma = if header.is_hybrid() {
            let shares: Option<Vec<(u8, Zeroizing<Scalar>)>> = picked
                .iter()
                .map(|(i, _, s)| s.map(|s| (*i, s.clone())))
                .collect();
            Some(combine_sigma(&shares.ok_or(Error::PqKeyMissing)?))
        } else {
            None
        };
        let key = header.dem_key(&z, sigma.as_deref());
        z.zeroize();
        key
    }

    /// The verdicts, and the nodes named: a node is named when an answer
    /// attributed to it was wrong and none of its answers was used or
    /// proved correct.
    fn report(
        &self,
        entries: Vec<Entry<'_>>,
        used: &[usize],
        proofs_required: bool,
    ) -> ShareReport {
        let n = usize::from(self.commitments.nodes());
        let node_of = |e: &Entry<'_>| {
            e.sender.or_else(|| {
                e.share
                    .and_then(ReCapsule::share_index)
                    .filter(|&i| usize::from(i) <= n)
            })
        };
        let mut wrong = [false; 256];
        let mut cleared = [false; 256];
        for (k, e) in entries.iter().enumerate() {
            let Some(node) = node_of(e) else { continue };
            match &e.fault {
                Some(f) if f.names_node(proofs_required) => wrong[usize::from(node)] = true,
                Some(_) => {}
                None if e.proven || used.contains(&k) => cleared[usize::from(node)] = true,
                None => {}
            }
        }
        let bad: Vec<u8> = (1..=u8::MAX)
            .filter(|&i| wrong[usize::from(i)] && !cleared[usize::from(i)])
            .collect();
        let used_nodes: Vec<u8> = used
            .iter()
            .filter_map(|&k| entries.get(k)?.index())
            .collect();
        let verdicts = entries
            .into_iter()
            .enumerate()
            .map(|(k, e)| ShareVerdict {
                position: k,
                node: node_of(&e),
                status: match e.fault {
                    Some(f) => ShareStatus::Rejected(f),
                    None if used.contains(&k) => ShareStatus::Used,
                    None if e.proven => ShareStatus::Proven,
                    None => ShareStatus::Unused,
                },
            })
            .collect();
        ShareReport {
            used: used_nodes,
            bad,
            verdicts,
        }
    }
}

impl Drop for ThresholdOpener {
    fn drop(&mut self) {
        self.d.zeroize();
    }
}
impl ZeroizeOnDrop for ThresholdOpener {}

impl fmt::Debug for ThresholdOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdOpener")
            .field("commitments", &self.commitments)
            .field("require_proof", &self.require_proof)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::ReKeyShare;
    use crate::{Identity, PatientKeys, PortionLabel, ReKey};

    /// Any `t − 1` shares interpolate (at 0, over themselves) to a scalar
    /// that is not `rk`, and their combination opens nothing.
    #[test]
    fn t_minus_1_shares_interpolate_to_something_else() -> Result<()> {
        let p = PatientKeys::generate(Identity::new("p")?);
        let lab = p.portion_secret(&PortionLabel::new("lab")?, 0);
        let user = KeyPair::generate();
        let rk = ReKey::generate(&lab, user.public());
        let (_, shares) = rk.split(3, 4)?;
        let sealed = SealedPortion::seal(lab.public(), crate::RecordId::random(), 1, b"x")?;
        let commitments = &shares.first().ok_or(Error::TooLarge)?.commitments;
        let opener = ThresholdOpener::new_unauthenticated(&user, commitments)?;
        for pair in [[0usize, 1], [0, 2], [1, 3], [2, 3]] {
            let picked: Vec<&ReKeyShare> = pair.iter().filter_map(|&k| shares.get(k)).collect();
            let xs: Vec<u8> = picked.iter().map(|s| s.index).collect();
            let l = lagrange_at_zero(&xs);
            let guess: Scalar = picked.iter().zip(&l).map(|(s, l)| s.share * l).sum();
            assert_ne!(guess, *rk.scalar());
            let rcs: Vec<ReCapsule> = picked
                .iter()
                .map(|s| s.reencrypt(sealed.header().verify()?))
                .collect::<Result<_>>()?;
            // Two shares valid on their own, too few together.
            assert!(matches!(
                opener.open(&sealed, &rcs),
                Err(Error::TooFewShares {
                    needed: 3,
                    valid: 2,
                    ..
                })
            ));
            // Combined anyway (as if t were 2), they open nothing.
            let entries: Vec<Entry<'_>> = rcs.iter().map(|rc| Entry::new(None, rc)).collect();
            let key = opener.combine(sealed.header(), &entries, &[0, 1])?;
            assert!(!dem::first_chunk_opens(&key, sealed.body()));
        }
        // Three of them interpolate to rk exactly.
        let xs = [1u8, 2, 4];
        let l = lagrange_at_zero(&xs);
        let whole: Scalar = [0usize, 1, 3]
            .iter()
            .filter_map(|&k| shares.get(k))
            .zip(&l)
            .map(|(s, l)| s.share * l)
            .sum();
        assert_eq!(whole, *rk.scalar());
        Ok(())
    }
}
