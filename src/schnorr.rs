//! Schnorr proofs of knowledge of a discrete logarithm, bound to a
//! statement: the one routine behind the key proofs of registrations
//! (`consent::KeyProof`) and the patient's proof over share commitments
//! (`threshold::ShareCommitments`). `(c, s)` with `R = s·G − c·X` and
//! `c = challenge(R)`; the nonce is hedged (hashed with the secret).

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::hash::{hedged_nonce, tag};
use crate::keys::PublicKey;

/// Proves knowledge of `secret` (`key = secret·G`): `challenge` hashes the
/// statement with the compressed commitment `R`.
pub(crate) fn prove<R: CryptoRng + ?Sized>(
    secret: &Scalar,
    key: &PublicKey,
    challenge: impl Fn(&CompressedRistretto) -> Scalar,
    rng: &mut R,
) -> (Scalar, Scalar) {
    let k = Zeroizing::new(hedged_nonce(tag::KEY_PROOF, secret, &[key.as_bytes()], rng));
    let r = (&*k * RISTRETTO_BASEPOINT_TABLE).compress();
    let c = challenge(&r);
    (c, *k + c * secret)
}

/// Checks a proof `(c, s)` for `key` (variable time: everything is public).
pub(crate) fn check(
    key: &PublicKey,
    c: &Scalar,
    s: &Scalar,
    challenge: impl Fn(&CompressedRistretto) -> Scalar,
) -> bool {
    let r = RistrettoPoint::vartime_double_scalar_mul_basepoint(&-c, key.point(), s);
    challenge(&r.compress()) == *c
}
