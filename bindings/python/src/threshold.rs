//! Threshold re-encryption (t of n SRS nodes): the shares a node holds,
//! and the reader's opener that combines t valid answers whatever the
//! others contain.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use sesphr::consent::SignedGrant;
use sesphr::{PortionOpener, SealedPortion, ShareCommitments, ShareReport, Shares};

use crate::{KeyPair, Py as _, array32};

/// One node's share of a split re-encryption key (`ReKey.split`): secret,
/// kept by that node (`Srs.grant_share`).
#[pyclass(frozen, module = "sesphr")]
pub(crate) struct ReKeyShare(pub(crate) sesphr::ReKeyShare);

#[pymethods]
impl ReKeyShare {
    /// From its encoding; checks it against the commitments it carries.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let share = sesphr::ReKeyShare::from_bytes(data).py()?;
        py.detach(|| share.verify()).py()?;
        Ok(Self(share))
    }

    /// Its encoding (secret).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.to_bytes().as_slice())
    }

    /// The node index (1 to n) it belongs to.
    #[getter]
    fn index(&self) -> u8 {
        self.0.index()
    }

    /// The split's public commitments (the same for every share).
    fn commitments<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.commitments().to_bytes())
    }

    /// Re-encrypts a sealed portion (or its header) into this node's share
    /// of the re-capsule, with its proof of correct re-encryption.
    fn reencrypt<'py>(
        &self,
        py: Python<'py>,
        sealed_or_header: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        crate::reencrypt_with(py, sealed_or_header, |h| self.0.reencrypt_with_proof(h))
    }

    fn __repr__(&self) -> String {
        format!("ReKeyShare(index={})", self.0.index())
    }
}

/// The granted user's side of a threshold grant: made once from the
/// patient's signed share grant and its commitments (checked against the
/// patient's consent key), then used for every record.
#[pyclass(frozen, module = "sesphr")]
pub(crate) struct ThresholdOpener(sesphr::ThresholdOpener);

/// `(node asked, bytes it answered)` as the core takes them.
fn answers(list: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    list.iter().map(|(n, b)| (*n, b.as_slice())).collect()
}

/// The nodes a report names, as Python ints.
fn nodes(n: &[u8]) -> Vec<u32> {
    n.iter().map(|&x| u32::from(x)).collect()
}

#[pymethods]
impl ThresholdOpener {
    /// The opener of `user` for the share grant `signed_grant` (bytes of
    /// `PatientKeys.sign_share_grant`) of the split `commitments`, the
    /// grant verified under the patient's `consent_key`.
    #[new]
    fn new(
        py: Python<'_>,
        user: &KeyPair,
        signed_grant: &[u8],
        commitments: &[u8],
        consent_key: &[u8],
    ) -> PyResult<Self> {
        let g = SignedGrant::from_bytes(signed_grant).py()?;
        let c = ShareCommitments::from_bytes(commitments).py()?;
        let k =
            sesphr::consent::decode_verifying_key(&array32("consent key", consent_key)?).py()?;
        py.detach(|| {
            let v = g.verify_commitments(&k, &c)?;
            sesphr::ThresholdOpener::new(&user.0, &v)
        })
        .py()
        .map(Self)
    }

    /// Opens `sealed` from the nodes' answers, a list of `(node asked,
    /// bytes it answered)`, whenever at least t of them are valid. Returns
    /// `(plaintext, nodes used, nodes that answered wrongly)`; raises
    /// `CryptoError` (kind `too_few_shares`) with fewer than t valid ones.
    fn open<'py>(
        &self,
        py: Python<'py>,
        sealed: &[u8],
        answers_: Vec<(u8, Vec<u8>)>,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<u32>, Vec<u32>)> {
        let given = answers(&answers_);
        let opened = py
            .detach(|| {
                let s = SealedPortion::from_bytes(sealed)?;
                self.0.open(&s, Shares::FromNodes(&given))
            })
            .py()?;
        let (used, bad) = (nodes(opened.used()), nodes(opened.bad_nodes()));
        Ok((PyBytes::new(py, opened.plaintext()), used, bad))
    }

    /// As `open`, for a sealed portion read from `src` (any object with
    /// `read(n)`) into `dst` (any object with `write(b)`) in bounded
    /// memory; returns `(plaintext bytes written, nodes used, nodes that
    /// answered wrongly)`.
    fn open_stream<'py>(
        &self,
        py: Python<'py>,
        answers_: Vec<(u8, Vec<u8>)>,
        src: &Bound<'py, PyAny>,
        dst: &Bound<'py, PyAny>,
    ) -> PyResult<(u64, Vec<u32>, Vec<u32>)> {
        let given = answers(&answers_);
        let (n, report) = crate::stream::open_stream_with(
            py,
            src,
            dst,
            |h| -> Result<(PortionOpener, ShareReport), _> {
                self.0.chunk_opener(h, Shares::FromNodes(&given))
            },
        )?;
        Ok((n, nodes(report.used()), nodes(report.bad_nodes())))
    }

    fn __repr__(&self) -> String {
        let c = self.0.commitments();
        format!("ThresholdOpener(t={}, n={})", c.threshold(), c.nodes())
    }
}
