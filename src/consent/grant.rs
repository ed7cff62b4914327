//! Signed grants (whole keys and threshold share grants) and their terms.

use super::*;

/// The terms a patient's client puts in a grant besides the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantOptions {
    /// Which records (default: all, old and new).
    pub scope: Scope,
    /// When the grant stops working, if ever.
    pub expiry: Option<u64>,
    /// The access request this grant answers, if any.
    pub request: Option<RequestId>,
    /// A break-glass grant for users of this role: it serves only requests
    /// with purpose emergency and a justification, each flagged in the audit.
    /// A re-encryption key is made for one user's key, so a grant "for a
    /// role" is one signed grant per user of that role; the SRS checks the
    /// user holds the role.
    pub emergency: Option<Role>,
    /// When the patient signed it (default: now). For one patient, portion
    /// and user, the SRS accepts only objects dated after the last one it
    /// accepted, or in the same second with a nonce it has not seen: a
    /// replayed or older grant or revocation is refused. It also refuses a
    /// date more than five minutes ahead of its clock.
    pub issued_at: Option<u64>,
    /// The fingerprint ([`crate::PqPublicKey::fingerprint`]) of the user's
    /// ML-KEM-768 key the patient consents to: the SRS then re-wraps hybrid
    /// (post-quantum) headers only to a registered key with exactly this
    /// fingerprint (`Denial::PqKeyNotGranted` otherwise). `None`: whichever
    /// key the user registered.
    pub user_pq_key: Option<[u8; 32]>,
}

impl Default for GrantOptions {
    fn default() -> Self {
        Self {
            scope: Scope::AllRecords,
            expiry: None,
            request: None,
            emergency: None,
            issued_at: None,
            user_pq_key: None,
        }
    }
}

fn put_opt_u64(v: &mut Vec<u8>, x: Option<u64>) {
    match x {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            v.extend_from_slice(&t.to_be_bytes());
        }
    }
}

fn get_opt_u64(r: &mut Reader<'_>) -> Result<Option<u64>> {
    match r.byte()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        _ => Err(Error::Malformed {
            what: "option flag",
        }),
    }
}

/// The keys a grant is signed for.
pub(super) struct GrantedKeys<'a> {
    pub(super) portion_key: &'a PublicKey,
    pub(super) user_key: &'a PublicKey,
    pub(super) commitment: &'a PublicKey,
    pub(super) ephemeral: &'a PublicKey,
    pub(super) threshold: Option<ShareTerms>,
}

/// What a grant of a split re-encryption key signs besides `RK = C_0` and
/// `X_e`: the threshold, the number of nodes, and the digest of the
/// commitments ([`ShareCommitments::digest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShareTerms {
    /// `t`.
    pub threshold: u8,
    /// `n`.
    pub nodes: u8,
    /// [`ShareCommitments::digest`].
    pub digest: [u8; 32],
}

impl ShareTerms {
    /// The terms of `commitments`.
    pub fn of(commitments: &ShareCommitments) -> Self {
        Self {
            threshold: commitments.threshold(),
            nodes: commitments.nodes(),
            digest: commitments.digest(),
        }
    }
}

impl VerifiedCommitments {
    /// `commitments`, checked against the share grant the patient signed
    /// for them: the signature verifies under the patient's `consent_key`
    /// and the grant names exactly these commitments
    /// ([`SignedGrant::covers_commitments`]). The same as
    /// [`SignedGrant::verify_commitments`].
    ///
    /// # Errors
    /// [`Error::InvalidSignature`]; [`Error::InvalidCommitments`] if the
    /// grant is for other commitments (or not for a split key).
    pub fn new(
        commitments: &ShareCommitments,
        grant: &SignedGrant,
        consent_key: &VerifyingKey,
    ) -> Result<Self> {
        grant.verify(consent_key)?;
        if !grant.covers_commitments(commitments) {
            return Err(Error::InvalidCommitments);
        }
        Ok(Self::vouched(commitments.clone()))
    }
}

/// A grant the patient signed: patient, portion (label and key epoch), user
/// and the user's key, scope, expiry, the re-encryption key's commitment
/// `RK` and ephemeral key `X_e`, when it was signed, a fresh nonce, the
/// request it answers and, for break-glass, the role.
///
/// Encoding: `"SPSG" ‖ version ‖ patient ‖ label ‖ epoch (4) ‖ user ‖ user
/// key (32) ‖ since? ‖ expiry? ‖ RK (32) ‖ X_e (32) ‖ issued at (8) ‖ nonce
/// (16) ‖ request? (16) ‖ emergency role? ‖ [1 ‖ t ‖ n ‖ commitments digest
/// (32)] ‖ signature (64)`; strings with a 1-byte length, options behind a
/// 0/1 byte, integers big-endian. The bracketed share terms are present
/// only in the grant of a split key ([`PatientKeys::sign_share_grant`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedGrant {
    pub(super) patient: Identity,
    pub(super) label: PortionLabel,
    pub(super) epoch: u32,
    pub(super) user: Identity,
    pub(super) user_key: PublicKey,
    pub(super) scope: Scope,
    pub(super) expiry: Option<u64>,
    pub(super) commitment: PublicKey,
    pub(super) ephemeral: PublicKey,
    pub(super) issued_at: u64,
    pub(super) nonce: [u8; 16],
    pub(super) request: Option<RequestId>,
    pub(super) emergency: Option<Role>,
    pub(super) threshold: Option<ShareTerms>,
    pub(super) user_pq: Option<[u8; 32]>,
    pub(super) signature: [u8; 64],
}

impl Signed for SignedGrant {
    const CONTEXT: &'static [u8] = context::GRANT;
    const WHAT: &'static str = "signed grant";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::SIGNED_GRANT, 400);
        put_short_bytes(&mut v, self.patient.as_bytes());
        put_short_bytes(&mut v, self.label.as_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        put_short_bytes(&mut v, self.user.as_bytes());
        v.extend_from_slice(self.user_key.as_bytes());
        put_opt_u64(
            &mut v,
            match self.scope {
                Scope::AllRecords => None,
                Scope::Since(t) => Some(t),
            },
        );
        put_opt_u64(&mut v, self.expiry);
        v.extend_from_slice(self.commitment.as_bytes());
        v.extend_from_slice(self.ephemeral.as_bytes());
        v.extend_from_slice(&self.issued_at.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        match &self.request {
            None => v.push(0),
            Some(id) => {
                v.push(1);
                v.extend_from_slice(&id.to_bytes());
            }
        }
        match &self.emergency {
            None => v.push(0),
            Some(role) => {
                v.push(1);
                put_short_bytes(&mut v, role.as_str().as_bytes());
            }
        }
        if let Some(t) = &self.threshold {
            v.extend_from_slice(&[1, t.threshold, t.nodes]);
            v.extend_from_slice(&t.digest);
        }
        if let Some(fp) = &self.user_pq {
            v.push(2);
            v.extend_from_slice(fp);
        }
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl SignedGrant {
    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }
    /// The portion label.
    pub fn label(&self) -> &PortionLabel {
        &self.label
    }
    /// The portion key's epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The user.
    pub fn user(&self) -> &Identity {
        &self.user
    }
    /// The user's public key the re-encryption key was made for.
    pub fn user_key(&self) -> &PublicKey {
        &self.user_key
    }
    /// Which records.
    pub fn scope(&self) -> Scope {
        self.scope
    }
    /// When it stops working.
    pub fn expiry(&self) -> Option<u64> {
        self.expiry
    }
    /// The re-encryption key's commitment `RK` (the SRS refuses a key with
    /// another).
    pub fn commitment(&self) -> &PublicKey {
        &self.commitment
    }
    /// The re-encryption key's `X_e`.
    pub fn ephemeral(&self) -> &PublicKey {
        &self.ephemeral
    }
    /// When the patient signed it.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }
    /// Its nonce.
    pub fn nonce(&self) -> [u8; 16] {
        self.nonce
    }
    /// The access request it answers.
    pub fn request(&self) -> Option<RequestId> {
        self.request
    }
    /// The role of a break-glass grant.
    pub fn emergency(&self) -> Option<&Role> {
        self.emergency.as_ref()
    }

    /// Checks the signature with the patient's consent key.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`].
    pub fn verify(&self, consent_key: &VerifyingKey) -> Result<()> {
        self.check(consent_key)
    }

    /// The share terms of a grant of a split key.
    pub fn threshold(&self) -> Option<&ShareTerms> {
        self.threshold.as_ref()
    }

    /// Whether `rekey` is the key this grant signed (portion key aside,
    /// which the SRS checks against its registry): same user key,
    /// commitment and ephemeral key, and not the grant of a split key.
    pub fn covers(&self, rekey: &ReKey) -> bool {
        self.threshold.is_none()
            && rekey.delegatee() == &self.user_key
            && rekey.commitment() == &self.commitment
            && rekey.ephemeral() == &self.ephemeral
    }

    /// Whether `commitments` are those of the split key this grant signed:
    /// same user key, `C_0`, `X_e`, threshold, node count and digest. A
    /// delegatee who has the patient's consent key checks the commitments
    /// it was given this way.
    pub fn covers_commitments(&self, commitments: &ShareCommitments) -> bool {
        self.threshold == Some(ShareTerms::of(commitments))
            && commitments.delegatee() == &self.user_key
            && commitments.commitment() == &self.commitment
            && commitments.ephemeral() == &self.ephemeral
    }

    /// Checks `commitments` against this grant: the signature verifies
    /// under the patient's `consent_key` and the grant names exactly these
    /// commitments ([`SignedGrant::covers_commitments`]). The result is
    /// what a [`crate::ThresholdOpener`] is made from, so that a node's
    /// verification key is the patient's word, not another node's.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`]; [`Error::InvalidCommitments`] if the
    /// grant is for other commitments (or not for a split key).
    pub fn verify_commitments(
        &self,
        consent_key: &VerifyingKey,
        commitments: &ShareCommitments,
    ) -> Result<VerifiedCommitments> {
        VerifiedCommitments::new(commitments, self, consent_key)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly (the signature is checked by
    /// [`SignedGrant::verify`]).
    ///
    /// # Errors
    /// Encoding errors.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        const SIGNATURE_LEN: usize = 64;
        /// `0x01 ‖ t ‖ n ‖ digest (32)`.
        const SHARE_TERMS_LEN: usize = 35;
        /// `0x02 ‖ fingerprint (32)`.
        const PQ_LEN: usize = 33;
        let mut r = Reader::framed("signed grant", bytes, magic::SIGNED_GRANT)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let label = PortionLabel::from_bytes(r.short_bytes()?)?;
        let epoch = r.u32()?;
        let user = Identity::from_utf8(r.short_bytes()?)?;
        let user_key = PublicKey::from_bytes(&r.array()?)?;
        let scope = get_opt_u64(&mut r)?.map_or(Scope::AllRecords, Scope::Since);
        let expiry = get_opt_u64(&mut r)?;
        let commitment = PublicKey::from_bytes(&r.array()?)?;
        let ephemeral = PublicKey::from_bytes(&r.array()?)?;
        let issued_at = r.u64()?;
        let nonce = r.array()?;
        let request = match r.byte()? {
            0 => None,
            1 => Some(RequestId::from_bytes(r.array()?)),
            _ => {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
        };
        let emergency = match r.byte()? {
            0 => None,
            1 => {
                let s = core::str::from_utf8(r.short_bytes()?).map_err(|_| Error::Malformed {
                    what: "signed grant",
                })?;
                let role: Role = s.parse()?;
                if role.as_str() != s {
                    return Err(Error::Malformed {
                        what: "signed grant",
                    });
                }
                Some(role)
            }
            _ => {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
        };
        // What is left decides (SPEC §7.3): the signature alone (64 bytes),
        // the share terms (35 more), the user's ML-KEM key fingerprint (33
        // more), or both in that order; any other length is a field running
        // past the end, or bytes after the last one.
        let tail = r.remaining();
        let with_pq =
            tail == SIGNATURE_LEN + PQ_LEN || tail == SIGNATURE_LEN + SHARE_TERMS_LEN + PQ_LEN;
        let threshold = if tail == SIGNATURE_LEN || tail == SIGNATURE_LEN + PQ_LEN {
            None
        } else {
            if !with_pq && tail != SHARE_TERMS_LEN + SIGNATURE_LEN {
                return Err(Error::InvalidLength {
                    what: "signed grant",
                    expected: r.position()
                        + SIGNATURE_LEN
                        + if r.remaining() < SIGNATURE_LEN {
                            0
                        } else {
                            SHARE_TERMS_LEN
                        },
                    actual: bytes.len(),
                });
            }
            if r.byte()? != 1 {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
            let (threshold, nodes) = (r.byte()?, r.byte()?);
            if threshold < crate::MIN_THRESHOLD || threshold > nodes {
                return Err(Error::InvalidThreshold);
            }
            Some(ShareTerms {
                threshold,
                nodes,
                digest: r.array()?,
            })
        };
        let user_pq = if with_pq {
            if r.byte()? != 2 {
                return Err(Error::Malformed {
                    what: "signed grant",
                });
            }
            Some(r.array()?)
        } else {
            None
        };
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            label,
            epoch,
            user,
            user_key,
            scope,
            expiry,
            commitment,
            ephemeral,
            issued_at,
            nonce,
            request,
            emergency,
            threshold,
            user_pq,
            signature,
        })
    }

    /// The fingerprint of the user's ML-KEM-768 key the patient consented
    /// to, if the grant names one ([`GrantOptions::user_pq_key`]).
    pub fn user_pq_key(&self) -> Option<&[u8; 32]> {
        self.user_pq.as_ref()
    }
}

impl fmt::Debug for SignedGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedGrant")
            .field("patient", &self.patient)
            .field("label", &self.label)
            .field("epoch", &self.epoch)
            .field("user", &self.user)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}
