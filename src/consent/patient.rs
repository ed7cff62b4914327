//! The patient's side: the consent key, and signing every object of this module.

use super::*;

impl PatientKeys {
    /// The patient's consent signing key (Ed25519): HKDF-SHA-256 with salt
    /// `"sesphr/v1/consent-key"`, the master secret as input key material
    /// and the patient's identity as info, gives the 32-byte seed. It signs
    /// registrations, grants, revocations and refusals. Zeroized on drop.
    pub fn consent_key(&self) -> SigningKey {
        let hk = Hkdf::<Sha256>::new(Some(tag::CONSENT_KEY), self.master_bytes().as_ref());
        let mut seed = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's output limit: cannot fail.
        let _ = hk.expand(self.patient().as_bytes(), seed.as_mut());
        SigningKey::from_bytes(&seed)
    }

    /// The consent key's public half, which the SRS registers and auditors
    /// check signatures with.
    pub fn consent_public(&self) -> VerifyingKey {
        self.consent_key().verifying_key()
    }

    /// A grant of `label` (key epoch `epoch`) to `user`, signed by the
    /// patient, for the re-encryption key `rekey` made for that user.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if `rekey` is not from this patient's portion
    /// key `(label, epoch)`; [`Error::Malformed`] if a break-glass grant has
    /// no role.
    pub fn sign_grant(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        rekey: &ReKey,
        options: &GrantOptions,
    ) -> Result<SignedGrant> {
        self.sign_grant_with_rng(label, epoch, user, rekey, options, &mut os_rng())
    }

    /// As [`PatientKeys::sign_grant`], the nonce drawn from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_grant`].
    pub fn sign_grant_with_rng<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        rekey: &ReKey,
        options: &GrantOptions,
        rng: &mut R,
    ) -> Result<SignedGrant> {
        let keys = GrantedKeys {
            portion_key: rekey.portion_key(),
            user_key: rekey.delegatee(),
            commitment: rekey.commitment(),
            ephemeral: rekey.ephemeral(),
            threshold: None,
        };
        self.sign_keys(label, epoch, user, &keys, options, rng)
    }

    /// A grant of `label` (key epoch `epoch`) to `user` for a re-encryption
    /// key split among nodes ([`ReKey::split`]), signed by the patient: it
    /// names `RK = C_0`, `X_e`, `t`, `n` and the digest of the commitments.
    /// Every node receives the same signed grant with its own share
    /// ([`crate::srs::Srs::grant_share`]).
    ///
    /// # Errors
    /// As [`PatientKeys::sign_grant`].
    pub fn sign_share_grant(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        commitments: &ShareCommitments,
        options: &GrantOptions,
    ) -> Result<SignedGrant> {
        self.sign_share_grant_with_rng(label, epoch, user, commitments, options, &mut os_rng())
    }

    /// As [`PatientKeys::sign_share_grant`], the nonce drawn from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_grant`].
    pub fn sign_share_grant_with_rng<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        commitments: &ShareCommitments,
        options: &GrantOptions,
        rng: &mut R,
    ) -> Result<SignedGrant> {
        let keys = GrantedKeys {
            portion_key: commitments.portion_key(),
            user_key: commitments.delegatee(),
            commitment: commitments.commitment(),
            ephemeral: commitments.ephemeral(),
            threshold: Some(ShareTerms::of(commitments)),
        };
        self.sign_keys(label, epoch, user, &keys, options, rng)
    }

    fn sign_keys<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        epoch: u32,
        user: &Identity,
        keys: &GrantedKeys<'_>,
        options: &GrantOptions,
        rng: &mut R,
    ) -> Result<SignedGrant> {
        if self.portion_public(label, epoch).key() != keys.portion_key {
            return Err(Error::KeyMismatch);
        }
        let mut g = SignedGrant {
            patient: self.patient().clone(),
            label: label.clone(),
            epoch,
            user: user.clone(),
            user_key: *keys.user_key,
            scope: options.scope,
            expiry: options.expiry,
            commitment: *keys.commitment,
            ephemeral: *keys.ephemeral,
            issued_at: options.issued_at.unwrap_or_else(crate::unix_now),
            nonce: nonce(rng),
            request: options.request,
            emergency: options.emergency.clone(),
            threshold: keys.threshold,
            user_pq: options.user_pq_key,
            signature: [0; 64],
        };
        g.signature = g.signed_by(&self.consent_key());
        Ok(g)
    }

    /// A revocation of every grant of `label` (all key epochs) to `user`,
    /// signed by the patient, dated now.
    ///
    /// # Errors
    /// None today; kept fallible like the other signing calls.
    pub fn sign_revocation(
        &self,
        label: &PortionLabel,
        user: &Identity,
    ) -> Result<SignedRevocation> {
        self.sign_revocation_with_rng(label, user, crate::unix_now(), &mut os_rng())
    }

    /// As [`PatientKeys::sign_revocation`], dated `issued_at` (seconds since
    /// the Unix epoch): for a host whose clock is not the system's (a
    /// `ManualClock` in tests, a device clock corrected by the server).
    ///
    /// # Errors
    /// As [`PatientKeys::sign_revocation`].
    pub fn sign_revocation_at(
        &self,
        label: &PortionLabel,
        user: &Identity,
        issued_at: u64,
    ) -> Result<SignedRevocation> {
        self.sign_revocation_with_rng(label, user, issued_at, &mut os_rng())
    }

    /// As [`PatientKeys::sign_revocation`], dated `issued_at`, the nonce from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_revocation`].
    pub fn sign_revocation_with_rng<R: CryptoRng + ?Sized>(
        &self,
        label: &PortionLabel,
        user: &Identity,
        issued_at: u64,
        rng: &mut R,
    ) -> Result<SignedRevocation> {
        let mut r = SignedRevocation {
            patient: self.patient().clone(),
            label: label.clone(),
            user: user.clone(),
            issued_at,
            nonce: nonce(rng),
            signature: [0; 64],
        };
        r.signature = r.signed_by(&self.consent_key());
        Ok(r)
    }

    /// A refusal of the access request `request`, signed by the patient.
    ///
    /// # Errors
    /// [`Error::Malformed`] if `reason` is empty, longer than 1024 bytes or
    /// holds control characters.
    pub fn sign_refusal(&self, request: RequestId, reason: &str) -> Result<SignedRefusal> {
        self.sign_refusal_with_rng(request, reason, crate::unix_now(), &mut os_rng())
    }

    /// As [`PatientKeys::sign_refusal`], dated `issued_at`, the nonce from `rng`.
    ///
    /// # Errors
    /// As [`PatientKeys::sign_refusal`].
    pub fn sign_refusal_with_rng<R: CryptoRng + ?Sized>(
        &self,
        request: RequestId,
        reason: &str,
        issued_at: u64,
        rng: &mut R,
    ) -> Result<SignedRefusal> {
        let reason = crate::model::check_text(reason)?;
        let mut r = SignedRefusal {
            patient: self.patient().clone(),
            request,
            reason,
            issued_at,
            nonce: nonce(rng),
            signature: [0; 64],
        };
        r.signature = r.signed_by(&self.consent_key());
        Ok(r)
    }
}
