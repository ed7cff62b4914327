//! Secrets at rest: re-encryption keys sealed under a key derived from the
//! host's storage key, bound to the row they belong to.

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::hash::encode_parts;
use crate::ids::{Identity, PortionLabel};
use crate::rekey::ReKey;
use crate::srs::audit::HeadMac;
use crate::srs::types::{SrsError, StorageKey};

const SALT: &[u8] = b"sesphr/v1/srs-storage";
const SEAL_INFO: &[u8] = b"rekey-seal";
const HEAD_INFO: &[u8] = b"audit-head";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

fn subkey(storage: &StorageKey, info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    // 32 bytes of output is always within HKDF's limit.
    if Hkdf::<Sha256>::new(Some(SALT), storage.as_bytes())
        .expand(info, k.as_mut())
        .is_err()
    {
        k.zeroize();
    }
    k
}

/// The audit head's MAC key.
pub(crate) fn head_mac(storage: &StorageKey) -> HeadMac {
    HeadMac::new(subkey(storage, HEAD_INFO))
}

/// The associated data of a grant row: its full identity, so that a sealed
/// key moved to another row does not open.
fn row_aad(patient: &Identity, label: &PortionLabel, epoch: u32, user: &Identity) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    encode_parts(
        &mut v,
        &[
            b"grant",
            patient.as_bytes(),
            label.as_bytes(),
            &epoch.to_be_bytes(),
            user.as_bytes(),
        ],
    );
    v
}

/// Seals and opens re-encryption keys.
pub(crate) struct RekeySealer(ChaCha20Poly1305);

impl RekeySealer {
    pub(crate) fn new(storage: &StorageKey) -> Self {
        let k = subkey(storage, SEAL_INFO);
        Self(ChaCha20Poly1305::new(&(*k).into()))
    }

    /// `nonce ‖ ciphertext ‖ tag`, with a random 96-bit nonce.
    pub(crate) fn seal<R: CryptoRng + ?Sized>(
        &self,
        rekey: &ReKey,
        row: (&Identity, &PortionLabel, u32, &Identity),
        rng: &mut R,
    ) -> Result<Vec<u8>, SrsError> {
        let aad = row_aad(row.0, row.1, row.2, row.3);
        let mut nonce = Nonce::default();
        rng.fill_bytes(&mut nonce);
        let pt = rekey.to_bytes();
        let mut out = Vec::with_capacity(NONCE_LEN + pt.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&pt);
        let body = out.get_mut(NONCE_LEN..).unwrap_or_default();
        let tag = self
            .0
            .encrypt_inout_detached(&nonce, &aad, InOutBuf::from(body))
            .map_err(|_| SrsError::Tampered("re-encryption key"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub(crate) fn open(
        &self,
        sealed: &[u8],
        row: (&Identity, &PortionLabel, u32, &Identity),
    ) -> Result<ReKey, SrsError> {
        const BAD: SrsError = SrsError::Tampered("re-encryption key");
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(BAD);
        }
        let aad = row_aad(row.0, row.1, row.2, row.3);
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| BAD)?;
        let tag = Tag::try_from(tag).map_err(|_| BAD)?;
        let mut pt = Zeroizing::new(vec![0u8; ct.len()]);
        let buf = InOutBuf::new(ct, &mut pt).map_err(|_| BAD)?;
        self.0
            .decrypt_inout_detached(&nonce, &aad, buf, &tag)
            .map_err(|_| BAD)?;
        ReKey::from_bytes(&pt).map_err(|_| BAD)
    }
}
