//! Every key the SRS derives from the host's storage key, and what it does
//! with them: sealing re-encryption keys at rest, authenticating registry
//! rows and the chain head, the keyed registry digest, and signing
//! checkpoints.
//!
//! Each key is `HKDF-SHA-256(ikm = storage key, salt = "sesphr/v1/srs-storage",
//! info = purpose)`. Every derivation fails closed: an error is returned, no
//! fallback key is ever used.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::hash::{encode_parts, hkdf_bytes, tag};
use crate::model::Checkpoint;
use crate::pq::{PQ_SEED_LEN, PqSecretKey, SrsPqSecretKey};
use crate::srs::types::{SrsError, StorageKey};
use crate::store::ChainHead;

const SALT: &[u8] = b"sesphr/v1/srs-storage";
const CHECKPOINT_TAG: &[u8] = b"sesphr/v1/checkpoint";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A key derivation or MAC failed: never expected, always fatal.
const KDF_FAILED: SrsError = SrsError::Tampered("key derivation");

fn subkey(storage: &StorageKey, info: &[u8]) -> Result<Zeroizing<[u8; 32]>, SrsError> {
    let mut k = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(SALT), storage.as_bytes())
        .expand(info, k.as_mut())
        .map_err(|_| KDF_FAILED)?;
    Ok(k)
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> Result<[u8; 32], SrsError> {
    let mut m = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).map_err(|_| KDF_FAILED)?;
    let mut buf = Vec::with_capacity(128);
    encode_parts(&mut buf, parts);
    m.update(&buf);
    Ok(m.finalize().into_bytes().into())
}

/// The SRS's keys (see the module docs).
pub(crate) struct SrsKeys {
    sealer: ChaCha20Poly1305,
    /// Seals the parts of a registry snapshot (its own key: a snapshot part
    /// can never pass for a sealed re-encryption key, nor the reverse).
    snapshot: ChaCha20Poly1305,
    row_mac: Zeroizing<[u8; 32]>,
    digest: Zeroizing<[u8; 32]>,
    index: Zeroizing<[u8; 32]>,
    head_mac: Zeroizing<[u8; 32]>,
    signing: SigningKey,
    verifying: VerifyingKey,
    /// The root of the SRS's ML-KEM-768 seeds, one per key version.
    pq_root: Zeroizing<[u8; 32]>,
    /// The ML-KEM keys expanded so far (one per version asked for).
    pq: std::sync::Mutex<Vec<SrsPqSecretKey>>,
}

impl SrsKeys {
    /// The keys of `storage`; the checkpoint signing key is `signing` if the
    /// host supplies one, else derived from `storage`.
    pub(crate) fn new(storage: &StorageKey, signing: Option<SigningKey>) -> Result<Self, SrsError> {
        let seal = subkey(storage, b"rekey-seal")?;
        let signing = match signing {
            Some(k) => k,
            None => SigningKey::from_bytes(&*subkey(storage, b"checkpoint-signing")?),
        };
        Ok(Self {
            sealer: ChaCha20Poly1305::new(&(*seal).into()),
            snapshot: ChaCha20Poly1305::new(&(*subkey(storage, b"registry-snapshot")?).into()),
            row_mac: subkey(storage, b"row-mac")?,
            digest: subkey(storage, b"registry-digest")?,
            index: subkey(storage, b"disclosure-index")?,
            head_mac: subkey(storage, b"chain-head")?,
            verifying: signing.verifying_key(),
            signing,
            pq_root: subkey(storage, b"pq-seed")?,
            pq: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The SRS's ML-KEM-768 key of `version`: the seed is
    /// `HKDF-SHA-256(salt = "sesphr/v2/srs-pq-seed", ikm = pq root, info =
    /// u32(version))`, 64 bytes (every version stays derivable, so headers
    /// sealed to an old version still re-encrypt). Expanded once.
    pub(crate) fn pq_key(&self, version: u32) -> Result<SrsPqSecretKey, SrsError> {
        let mut cache = self
            .pq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = cache.iter().find(|k| k.version() == version) {
            return Ok(k.clone());
        }
        let seed = hkdf_bytes::<PQ_SEED_LEN>(
            tag::SRS_PQ_SEED,
            self.pq_root.as_ref(),
            &[&version.to_be_bytes()],
        )
        .map_err(|_| KDF_FAILED)?;
        let key = SrsPqSecretKey::new(version, PqSecretKey::from_seed(&seed));
        cache.push(key.clone());
        Ok(key)
    }

    /// A disclosure index row's share of the index digest:
    /// `HMAC(index key, patient ‖ u64(time) ‖ u64(seq))`, its first 16 bytes
    /// as a number. Keyed, so a database writer cannot compute shares, let
    /// alone aim a set of edited rows at the same sum.
    pub(crate) fn index_share(
        &self,
        patient: &[u8],
        time: u64,
        seq: u64,
    ) -> Result<u128, SrsError> {
        // Times saturate at 2⁶³ − 1, as the SQL stores keep them.
        let time = time.min(i64::MAX.unsigned_abs());
        let mac = hmac(
            &self.index,
            &[patient, &time.to_be_bytes(), &seq.to_be_bytes()],
        )?;
        let mut b = [0u8; 16];
        b.copy_from_slice(mac.get(..16).ok_or(KDF_FAILED)?);
        Ok(u128::from_be_bytes(b))
    }

    /// `HMAC(row key, "row" ‖ kind ‖ key ‖ generation ‖ body)`.
    pub(crate) fn row_mac(
        &self,
        kind: u8,
        key: &[u8],
        generation: u64,
        body: &[u8],
    ) -> Result<[u8; 32], SrsError> {
        hmac(
            &self.row_mac,
            &[b"row", &[kind], key, &generation.to_be_bytes(), body],
        )
    }

    /// A row's share of the registry digest: `HMAC(digest key, mac)` reduced
    /// mod ℓ. The digest is the sum of the shares of all rows; the shares are
    /// never stored, so no one without the key can aim at a sum.
    pub(crate) fn share(&self, mac: &[u8; 32]) -> Result<Scalar, SrsError> {
        Ok(Scalar::from_bytes_mod_order(hmac(&self.digest, &[mac])?))
    }

    fn head_tag(&self, head: &ChainHead) -> Result<[u8; 32], SrsError> {
        hmac(&self.head_mac, &[b"head", &head.mac_input()])
    }

    /// Sets `head.mac`.
    pub(crate) fn authenticate_head(&self, head: &mut ChainHead) -> Result<(), SrsError> {
        head.mac = self.head_tag(head)?;
        Ok(())
    }

    pub(crate) fn head_is_authentic(&self, head: &ChainHead) -> Result<bool, SrsError> {
        Ok(self.head_tag(head)?.ct_eq(&head.mac).into())
    }

    /// `nonce ‖ ciphertext ‖ tag` of `secret`, bound to `aad`.
    pub(crate) fn seal<R: CryptoRng + ?Sized>(
        &self,
        secret: &[u8],
        aad: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SrsError> {
        seal_with(&self.sealer, secret, aad, rng)
    }

    /// Opens [`SrsKeys::seal`].
    pub(crate) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SrsError> {
        open_with(&self.sealer, sealed, aad).ok_or(SrsError::Tampered("sealed re-encryption key"))
    }

    /// [`SrsKeys::seal`] of one part of a registry snapshot, under the
    /// snapshot key.
    pub(crate) fn seal_snapshot<R: CryptoRng + ?Sized>(
        &self,
        part: &[u8],
        aad: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SrsError> {
        seal_with(&self.snapshot, part, aad, rng)
    }

    /// Opens [`SrsKeys::seal_snapshot`]; `None` if it does not open.
    pub(crate) fn open_snapshot(&self, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        open_with(&self.snapshot, sealed, aad)
    }

    /// Signs `cp` (sets its signature).
    pub(crate) fn sign(&self, cp: &mut Checkpoint) {
        let mut msg = CHECKPOINT_TAG.to_vec();
        msg.extend_from_slice(&cp.signed_bytes());
        cp.signature = self.signing.sign(&msg).to_bytes();
    }

    /// The SRS's Ed25519 key (checkpoints, revocation receipts).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }
}

/// `nonce ‖ ciphertext ‖ tag` of `secret` under `cipher`, bound to `aad`.
fn seal_with<R: CryptoRng + ?Sized>(
    cipher: &ChaCha20Poly1305,
    secret: &[u8],
    aad: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SrsError> {
    let mut nonce = Nonce::default();
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + secret.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(secret);
    let body = out.get_mut(NONCE_LEN..).ok_or(KDF_FAILED)?;
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, InOutBuf::from(body))
        .map_err(|_| KDF_FAILED)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens [`seal_with`]; `None` if it does not open.
fn open_with(cipher: &ChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = Nonce::try_from(nonce).ok()?;
    let tag = Tag::try_from(tag).ok()?;
    let mut pt = Zeroizing::new(vec![0u8; ct.len()]);
    let buf = InOutBuf::new(ct, &mut pt).ok()?;
    cipher.decrypt_inout_detached(&nonce, aad, buf, &tag).ok()?;
    Some(pt)
}

/// Whether `cp` carries a valid signature by `key`.
pub(crate) fn checkpoint_is_signed_by(cp: &Checkpoint, key: &VerifyingKey) -> bool {
    let mut msg = CHECKPOINT_TAG.to_vec();
    msg.extend_from_slice(&cp.signed_bytes());
    key.verify_strict(&msg, &Signature::from_bytes(&cp.signature))
        .is_ok()
}
