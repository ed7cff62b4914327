//! The patient's signed registration: consent key and portion keys with proofs.

use super::*;

/// A patient's registration (or the addition of portion keys): the consent
/// public key, each portion key with its proof of possession, all signed by
/// the consent key. The SRS registers nothing without it, so nobody can
/// register another patient's keys.
///
/// Encoding: `"SPRG" ‖ version ‖ patient (1-byte length) ‖ consent key (32)
/// ‖ count (2 bytes) ‖ count × (label (1-byte length) ‖ epoch (4) ‖ key (32)
/// ‖ proof (64)) ‖ signature (64)`.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientRegistration {
    pub(super) patient: Identity,
    pub(super) consent_key: VerifyingKey,
    pub(super) portions: Vec<(PortionPublicKey, KeyProof)>,
    pub(super) signature: [u8; 64],
}

impl Signed for PatientRegistration {
    const CONTEXT: &'static [u8] = context::REGISTRATION;
    const WHAT: &'static str = "patient registration";

    fn body(&self) -> Vec<u8> {
        let mut v = frame(magic::REGISTRATION, 64 + self.portions.len() * 140);
        put_short_bytes(&mut v, self.patient.as_bytes());
        v.extend_from_slice(self.consent_key.as_bytes());
        // At most MAX_PORTIONS (1024) portions (checked when made and decoded).
        v.extend_from_slice(&short_len(self.portions.len()));
        for (k, proof) in &self.portions {
            put_short_bytes(&mut v, k.label().as_bytes());
            v.extend_from_slice(&k.epoch().to_be_bytes());
            v.extend_from_slice(k.key().as_bytes());
            v.extend_from_slice(&proof.to_bytes());
        }
        v
    }

    fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
}

impl PatientRegistration {
    /// Most portion keys in one registration.
    pub const MAX_PORTIONS: usize = 1024;

    /// The registration of `keys`' patient with the portion keys `(label,
    /// epoch)` (none is allowed; add them later with another registration).
    ///
    /// # Errors
    /// [`Error::TooLarge`] for more than [`PatientRegistration::MAX_PORTIONS`].
    pub fn new(keys: &PatientKeys, portions: &[(PortionLabel, u32)]) -> Result<Self> {
        Self::new_with_rng(keys, portions, &mut os_rng())
    }

    /// As [`PatientRegistration::new`], proofs hedged with `rng`.
    ///
    /// # Errors
    /// As [`PatientRegistration::new`].
    pub fn new_with_rng<R: CryptoRng + ?Sized>(
        keys: &PatientKeys,
        portions: &[(PortionLabel, u32)],
        rng: &mut R,
    ) -> Result<Self> {
        if portions.len() > Self::MAX_PORTIONS {
            return Err(Error::TooLarge);
        }
        let consent = keys.consent_key();
        let portions = portions
            .iter()
            .map(|(l, e)| {
                let s = keys.portion_secret(l, *e);
                let proof = s.prove_possession(keys.patient(), rng);
                (s.public().clone(), proof)
            })
            .collect();
        let mut r = Self {
            patient: keys.patient().clone(),
            consent_key: consent.verifying_key(),
            portions,
            signature: [0; 64],
        };
        r.signature = r.signed_by(&consent);
        Ok(r)
    }

    /// The patient.
    pub fn patient(&self) -> &Identity {
        &self.patient
    }

    /// The consent public key.
    pub fn consent_key(&self) -> &VerifyingKey {
        &self.consent_key
    }

    /// The portion keys.
    pub fn portions(&self) -> impl Iterator<Item = &PortionPublicKey> {
        self.portions.iter().map(|(k, _)| k)
    }

    #[cfg_attr(not(feature = "srs"), allow(dead_code))]
    pub(crate) fn portion_proofs(&self) -> impl Iterator<Item = (&PortionPublicKey, &KeyProof)> {
        self.portions.iter().map(|(k, p)| (k, p))
    }

    /// Checks the consent signature and every portion key's proof.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] naming what failed.
    pub fn verify(&self) -> Result<()> {
        self.check(&self.consent_key)?;
        for (k, proof) in &self.portions {
            proof.verify_portion(&self.patient, k)?;
        }
        Ok(())
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded()
    }

    /// Decodes strictly (the signature and proofs are checked by
    /// [`PatientRegistration::verify`]).
    ///
    /// # Errors
    /// Encoding errors: length, magic, version, identity, label, point,
    /// scalar; [`Error::Malformed`] for too many portions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::framed("patient registration", bytes, magic::REGISTRATION)?;
        let patient = Identity::from_utf8(r.short_bytes()?)?;
        let consent_key = decode_verifying_key(&r.array()?)?;
        let n = usize::from(u16::from_be_bytes(r.array()?));
        if n > Self::MAX_PORTIONS {
            return Err(Error::Malformed {
                what: "patient registration",
            });
        }
        let mut portions = Vec::with_capacity(n);
        for _ in 0..n {
            let label = PortionLabel::from_bytes(r.short_bytes()?)?;
            let epoch = r.u32()?;
            let key = PublicKey::from_bytes(&r.array()?)?;
            let proof = KeyProof::from_bytes(&r.array::<64>()?)?;
            portions.push((PortionPublicKey::new(label, epoch, key), proof));
        }
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            patient,
            consent_key,
            portions,
            signature,
        })
    }
}

impl fmt::Debug for PatientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientRegistration")
            .field("patient", &self.patient)
            .field("portions", &self.portions.len())
            .finish_non_exhaustive()
    }
}
