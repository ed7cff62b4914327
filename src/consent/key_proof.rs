//! Proofs of possession of a ristretto255 key (a user's key, a portion key).

use super::*;

/// A proof of possession of a ristretto255 secret key, bound to a
/// statement (who registers the key, and for a portion key its label and
/// epoch): a Schnorr proof `(c, s)` with `c = H_s("sesphr/v1/key-proof",
/// statement ‖ X ‖ R)`, `R = s·G − c·X`. 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyProof {
    c: Scalar,
    s: Scalar,
}

/// What a key proof is about.
enum Statement<'a> {
    User(&'a Identity),
    Portion(&'a Identity, &'a PortionLabel, u32),
}

impl Statement<'_> {
    fn challenge(&self, key: &PublicKey, r: &CompressedRistretto) -> Scalar {
        match self {
            Self::User(id) => hash_to_scalar(
                tag::KEY_PROOF,
                &[b"user", id.as_bytes(), key.as_bytes(), r.as_bytes()],
            ),
            Self::Portion(p, l, e) => hash_to_scalar(
                tag::KEY_PROOF,
                &[
                    b"portion",
                    p.as_bytes(),
                    l.as_bytes(),
                    &e.to_be_bytes(),
                    key.as_bytes(),
                    r.as_bytes(),
                ],
            ),
        }
    }
}

impl KeyProof {
    /// Length of the encoding.
    pub const LEN: usize = 64;

    fn prove<R: CryptoRng + ?Sized>(
        secret: &Scalar,
        key: &PublicKey,
        st: &Statement<'_>,
        rng: &mut R,
    ) -> Self {
        let (c, s) = schnorr::prove(secret, key, |r| st.challenge(key, r), rng);
        Self { c, s }
    }

    fn check(&self, key: &PublicKey, st: &Statement<'_>) -> bool {
        schnorr::check(key, &self.c, &self.s, |r| st.challenge(key, r))
    }

    /// Checks a user's proof for `(identity, key)`.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if it does not verify.
    pub fn verify_user(&self, identity: &Identity, key: &PublicKey) -> Result<()> {
        if self.check(key, &Statement::User(identity)) {
            Ok(())
        } else {
            Err(Error::InvalidSignature {
                what: "user key proof",
            })
        }
    }

    /// Checks a portion key's proof for `patient`.
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] if it does not verify.
    pub fn verify_portion(&self, patient: &Identity, key: &PortionPublicKey) -> Result<()> {
        let st = Statement::Portion(patient, key.label(), key.epoch());
        if self.check(key.key(), &st) {
            Ok(())
        } else {
            Err(Error::InvalidSignature {
                what: "portion key proof",
            })
        }
    }

    /// `c ‖ s`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(self.c.as_bytes());
        b[32..].copy_from_slice(self.s.as_bytes());
        b
    }

    /// Decodes strictly (canonical scalars).
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::NonCanonicalScalar`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::unframed("key proof", bytes);
        let c = decode_scalar(&r.array()?)?;
        let s = decode_scalar(&r.array()?)?;
        r.finish()?;
        Ok(Self { c, s })
    }
}

impl fmt::Debug for KeyProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyProof({})", hex(&self.to_bytes()[..8]))
    }
}

impl KeyPair {
    /// A proof that the holder of this key pair registers it as `identity`
    /// (the SRS refuses a user registration without it).
    pub fn prove_possession(&self, identity: &Identity) -> KeyProof {
        self.prove_possession_with_rng(identity, &mut os_rng())
    }

    /// As [`KeyPair::prove_possession`], hedged with `rng`.
    pub fn prove_possession_with_rng<R: CryptoRng + ?Sized>(
        &self,
        identity: &Identity,
        rng: &mut R,
    ) -> KeyProof {
        KeyProof::prove(
            self.secret().scalar(),
            self.public(),
            &Statement::User(identity),
            rng,
        )
    }
}

impl PortionSecretKey {
    /// A proof that `patient` holds this portion key.
    pub fn prove_possession<R: CryptoRng + ?Sized>(
        &self,
        patient: &Identity,
        rng: &mut R,
    ) -> KeyProof {
        let p = self.public();
        KeyProof::prove(
            self.scalar(),
            p.key(),
            &Statement::Portion(patient, p.label(), p.epoch()),
            rng,
        )
    }
}
