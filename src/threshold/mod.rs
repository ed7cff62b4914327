//! Threshold re-encryption: a re-encryption key split among `n` SRS nodes
//! so that any `t` of them are needed (DESIGN §12).
//!
//! With one SRS, that SRS and one granted user together can compute the
//! portion secret (`x_{P,c} = rk·d`). Split, no `t − 1` nodes hold anything
//! usable. The patient's client draws `f(z) = rk + a_1·z + … + a_{t-1}·z^{t-1}`
//! and gives node `i` the share `rk_i = f(i)`, with the Feldman commitments
//! `C_j = a_j·G` (`C_0 = RK`), which let a node check its share
//! (`rk_i·G == Σ i^j·C_j`) and let anyone compute the node's verification
//! key `R_i = Σ i^j·C_j`. The commitments carry the patient's proof of
//! knowledge of `rk` over their whole encoding, and the patient's signed
//! share grant names their digest: the delegatee checks both
//! ([`VerifiedCommitments`]) before it judges any node, so no node can
//! substitute commitments of its own to frame the honest ones.
//!
//! Node `i` returns `E'_i = rk_i·E` (a [`ReCapsule`] carrying its index),
//! optionally with a DLEQ proof against `R_i` that covers every byte of its
//! answer. The delegatee combines any `t` shares — `Z = Σ (d·λ_i)·E'_i`
//! with the Lagrange coefficients at 0, one multiscalar multiplication —
//! and opens. The open is robust: each answer is decoded and checked on its
//! own and set aside with its reason if it fails; the first `t` that look
//! valid are combined (optimistic); only if the body does not open are the
//! combined shares judged by their proofs, one at a time until a wrong one
//! is found, its node named, and the open retried with the next answer in
//! its place. It fails only when fewer than `t` valid shares remain
//! ([`Error::TooFewShares`], with every verdict).
//!
//! ```
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion, ThresholdOpener};
//! let patient = PatientKeys::generate(Identity::new("alice")?);
//! let label = PortionLabel::new("lab")?;
//! let lab = patient.portion_secret(&label, 0);
//! let doctor = KeyPair::generate();
//! // 2 of 3 nodes are needed.
//! let (commitments, shares) = ReKey::generate(&lab, doctor.public()).split(2, 3)?;
//! let grant = patient.sign_share_grant(&label, 0, &Identity::new("dr-lee")?, &commitments, &Default::default())?;
//! let sealed = SealedPortion::seal(lab.public(), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
//! // Nodes 1 and 3 answer; node 2 is down.
//! let answers = [
//!     shares[0].reencrypt_with_proof(sealed.header().verify()?)?,
//!     shares[2].reencrypt_with_proof(sealed.header().verify()?)?,
//! ];
//! // The commitments, checked against the grant the patient signed.
//! let verified = grant.verify_commitments(&patient.consent_public(), &commitments)?;
//! let opener = ThresholdOpener::new(&doctor, &verified)?;
//! assert_eq!(opener.open(&sealed, &answers)?.plaintext(), b"HbA1c 5.4%");
//! // One node alone opens nothing.
//! assert!(opener.open(&sealed, &answers[..1]).is_err());
//! # Ok::<(), sesphr::Error>(())
//! ```

mod commitments;
mod opener;
mod share;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;

use crate::error::{Error, Result};

pub use commitments::{ShareCommitments, VerifiedCommitments};
pub use opener::{ShareReport, Shares, ThresholdOpened, ThresholdOpener};
pub use share::ReKeyShare;

/// The smallest threshold (a 1-of-n split would give every node the key).
pub const MIN_THRESHOLD: u8 = 2;

/// `k·P` for a small public `k` (a node index), by double-and-add: a few
/// point additions instead of a full scalar multiplication.
fn mul_small(p: &RistrettoPoint, k: u8) -> RistrettoPoint {
    let mut acc = RistrettoPoint::identity();
    for bit in (0..8).rev() {
        acc = acc + acc;
        if (k >> bit) & 1 == 1 {
            acc += p;
        }
    }
    acc
}
pub(crate) fn check_threshold(threshold: u8, nodes: u8) -> Result<()> {
    if threshold < MIN_THRESHOLD || threshold > nodes {
        return Err(Error::InvalidThreshold);
    }
    Ok(())
}
/// The Lagrange coefficients at 0 for the node indices `xs` (distinct,
/// nonzero): `λ_i = Π_{j≠i} x_j / (x_j − x_i)`, with one inversion.
pub(crate) fn lagrange_at_zero(xs: &[u8]) -> Vec<Scalar> {
    let mut num = Vec::with_capacity(xs.len());
    let mut den = Vec::with_capacity(xs.len());
    for &i in xs {
        let (mut n, mut d) = (Scalar::ONE, Scalar::ONE);
        for &j in xs.iter().filter(|&&j| j != i) {
            n *= Scalar::from(j);
            d *= Scalar::from(j) - Scalar::from(i);
        }
        num.push(n);
        den.push(d);
    }
    Scalar::invert_batch_alloc(&mut den);
    num.iter().zip(&den).map(|(n, d)| n * d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;

    #[test]
    fn small_multiplication_agrees_with_scalar_multiplication() {
        let p = RISTRETTO_BASEPOINT_TABLE.basepoint();
        for k in [0u8, 1, 2, 3, 127, 128, 255] {
            assert_eq!(mul_small(&p, k), Scalar::from(k) * p);
        }
    }
}
