//! Domain-separated hashing: hash to scalar (`H_s`) and the DEM key derivation.
//!
//! Every input is length-prefixed (8-byte big-endian length, then the bytes),
//! the tag included, so two different lists of parts never hash alike.

use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::ct::public as declassified;
use crate::dem::DemKey;

/// Tags. All start with `sesphr/v1/` so that a later version never collides.
pub(crate) mod tag {
    pub(crate) const PORTION_KEY: &[u8] = b"sesphr/v1/portion-key";
    pub(crate) const ISSUED_KEY: &[u8] = b"sesphr/v1/issued-key";
    pub(crate) const CAPSULE: &[u8] = b"sesphr/v1/capsule";
    pub(crate) const DEM: &[u8] = b"sesphr/v1/dem";
    pub(crate) const REKEY: &[u8] = b"sesphr/v1/rekey";
    pub(crate) const RECAPSULE_PROOF: &[u8] = b"sesphr/v1/recapsule-proof";
    pub(crate) const PROOF_NONCE: &[u8] = b"sesphr/v1/proof-nonce";
    pub(crate) const REKEY_EPHEMERAL: &[u8] = b"sesphr/v1/rekey-ephemeral";
    pub(crate) const CONSENT_KEY: &[u8] = b"sesphr/v1/consent-key";
    pub(crate) const KEY_PROOF: &[u8] = b"sesphr/v1/key-proof";
    pub(crate) const SHARE_COEFFICIENT: &[u8] = b"sesphr/v1/share-coefficient";
    pub(crate) const SHARE_COMMITMENTS: &[u8] = b"sesphr/v1/share-commitments";
    pub(crate) const KEY_BACKUP: &[u8] = b"sesphr/v1/key-backup";
    // Hybrid post-quantum sealing (SPEC §4.6).
    pub(crate) const DEM_HYBRID: &[u8] = b"sesphr/v2/dem-hybrid";
    pub(crate) const PQ_WRAP: &[u8] = b"sesphr/v2/pq-wrap";
    pub(crate) const PORTION_PQ_SEED: &[u8] = b"sesphr/v2/portion-pq-seed";
    pub(crate) const SIGMA_SHARE: &[u8] = b"sesphr/v2/sigma-share";
    #[cfg(feature = "srs")]
    pub(crate) const SRS_PQ_SEED: &[u8] = b"sesphr/v2/srs-pq-seed";
}

/// A hedged secret nonce: `H_s(tag, secret, public…, ρ)` with 32 fresh bytes
/// `ρ` from `rng`, redrawn while the result is zero. It stays unpredictable
/// if the RNG is (the secret is hashed in), and distinct for distinct public
/// inputs if the RNG repeats itself.
pub(crate) fn hedged_nonce<R: rand_core::CryptoRng + ?Sized>(
    tag: &[u8],
    secret: &Scalar,
    public: &[&[u8]],
    rng: &mut R,
) -> Scalar {
    loop {
        let mut rho = [0u8; 32];
        rng.fill_bytes(&mut rho);
        let mut parts: Vec<&[u8]> = Vec::with_capacity(public.len() + 2);
        parts.push(secret.as_bytes());
        parts.extend_from_slice(public);
        parts.push(&rho);
        let k = hash_to_scalar(tag, &parts);
        drop(parts);
        rho.zeroize();
        if !declassified(bool::from(k.ct_eq(&Scalar::ZERO)), "zero-rejection") {
            return k;
        }
    }
}

fn length_prefix(len: usize) -> [u8; 8] {
    (len as u64).to_be_bytes()
}

/// `H_s(tag, parts…)`: SHA-512 over the length-prefixed tag and parts, reduced
/// to a scalar with `Scalar::from_hash`.
pub(crate) fn hash_to_scalar(tag: &[u8], parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    h.update(length_prefix(tag.len()));
    h.update(tag);
    for p in parts {
        h.update(length_prefix(p.len()));
        h.update(p);
    }
    Scalar::from_hash(h)
}

/// SHA-256 over the length-prefixed tag and parts.
pub(crate) fn tagged_sha256(tag: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(length_prefix(tag.len()));
    h.update(tag);
    for p in parts {
        h.update(length_prefix(p.len()));
        h.update(p);
    }
    h.finalize().into()
}

/// Appends `parts`, each length-prefixed, to `out`.
pub(crate) fn encode_parts(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(&length_prefix(p.len()));
        out.extend_from_slice(p);
    }
}

/// `K = HKDF-SHA-256(ikm = Z, salt = "sesphr/v1/dem", info = E‖V‖ctx)`, every
/// info field length-prefixed; for a hybrid header (`sigma` given)
/// `ikm = Z ‖ σ` and `salt = "sesphr/v2/dem-hybrid"`.
pub(crate) fn derive_dem_key(
    shared: &[u8; 32],
    sigma: Option<&[u8; 32]>,
    e: &[u8; 32],
    v: &[u8; 32],
    ctx: &[u8],
) -> crate::Result<DemKey> {
    let mut info = Vec::with_capacity(3 * 8 + 64 + ctx.len());
    encode_parts(&mut info, &[e, v, ctx]);
    let okm = match sigma {
        None => hkdf_expand::<32>(tag::DEM, shared, &info)?,
        Some(sigma) => {
            let mut ikm = zeroize::Zeroizing::new([0u8; 64]);
            ikm[..32].copy_from_slice(shared);
            ikm[32..].copy_from_slice(sigma);
            hkdf_expand::<32>(tag::DEM_HYBRID, ikm.as_ref(), &info)?
        }
    };
    Ok(DemKey::from_bytes(*okm))
}

/// `HKDF-SHA-256(ikm, salt, info = parts, each length-prefixed)`, `N` bytes.
pub(crate) fn hkdf_bytes<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    parts: &[&[u8]],
) -> crate::Result<zeroize::Zeroizing<[u8; N]>> {
    let mut info = Vec::new();
    encode_parts(&mut info, parts);
    hkdf_expand(salt, ikm, &info)
}

/// `HKDF-SHA-256(ikm, salt, info)`, `N` bytes. `N` is far below
/// HKDF-SHA-256's limit of 255 * 32, so expand cannot fail; if it ever
/// did, no key is made at all (fail closed).
fn hkdf_expand<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> crate::Result<zeroize::Zeroizing<[u8; N]>> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = zeroize::Zeroizing::new([0u8; N]);
    hk.expand(info, okm.as_mut())
        .map_err(|_| crate::Error::KeyDerivation)?;
    Ok(okm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        // Moving a byte from one part to the next must change the hash.
        let a = hash_to_scalar(b"t", &[b"ab", b"c"]);
        let b = hash_to_scalar(b"t", &[b"a", b"bc"]);
        let c = hash_to_scalar(b"t", &[b"abc"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        // The tag separates domains.
        assert_ne!(
            hash_to_scalar(b"t1", &[b"x"]),
            hash_to_scalar(b"t2", &[b"x"])
        );
        assert_ne!(
            hash_to_scalar(b"t", &[b"", b"x"]),
            hash_to_scalar(b"t", &[b"x", b""])
        );
    }
}
