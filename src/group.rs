//! Small helpers over ristretto255 that save field inversions.
//!
//! Compressing a point costs one field inversion (about an eighth of a scalar
//! multiplication); `double_and_compress_batch` compresses several doubled
//! points with one. Computing `P/2` costs nothing when `P = k·Q` is still to
//! be computed: use `(k/2)·Q`.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use zeroize::Zeroize;

/// `(ℓ + 1) / 2`, the inverse of 2 modulo the group order, little-endian.
const INV2_BYTES: [u8; 32] = [
    0xf7, 0xe9, 0x7a, 0x2e, 0x8d, 0x31, 0x09, 0x2c, 0x6b, 0xce, 0x7b, 0x51, 0xef, 0x7c, 0x6f, 0x0a,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08,
];

/// `k / 2 mod ℓ`.
pub(crate) fn half(k: &Scalar) -> Scalar {
    k * Scalar::from_bytes_mod_order(INV2_BYTES)
}

/// Given `[P₁/2, …, Pₙ/2]`, returns the encodings of `[P₁, …, Pₙ]` with one
/// inversion, and the points themselves. The points may be secret (the KEM's
/// shared point): the heap copy of the encodings and the halves are
/// zeroized before they are dropped.
pub(crate) fn double_and_compress<const N: usize>(
    mut halves: [RistrettoPoint; N],
) -> [(CompressedRistretto, RistrettoPoint); N] {
    let mut compressed = RistrettoPoint::double_and_compress_batch(&halves);
    let out = core::array::from_fn(|i| {
        let c = compressed
            .get(i)
            .copied()
            .unwrap_or_else(|| (halves[i] + halves[i]).compress());
        (c, halves[i] + halves[i])
    });
    compressed.zeroize();
    halves.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;

    #[test]
    fn half_and_batch_compress_agree_with_the_plain_forms() {
        assert_eq!(half(&Scalar::from(2u8)), Scalar::ONE);
        assert_eq!(half(&Scalar::ONE) + half(&Scalar::ONE), Scalar::ONE);
        let ks = [Scalar::from(3u8), Scalar::from(1000u32), -Scalar::ONE];
        let out = double_and_compress(ks.map(|k| half(&k) * G));
        for (k, (c, p)) in ks.iter().zip(out) {
            assert_eq!(p, k * G);
            assert_eq!(c, (k * G).compress());
        }
    }
}
