//! Python bindings of sesphr (`import sesphr`): the patient's keys and
//! consent, sealing and opening, re-encryption keys, and the SRS.
//!
//! Bytes in, bytes out; identities and labels are `str`. Every cryptographic
//! operation and every SRS call runs with the GIL released, so Python
//! threads run them in parallel. Errors are exceptions of one hierarchy
//! (`SesphrError` → `FormatError`, `CryptoError`, `SrsError` →
//! `DeniedError`, `StoreError`), each with a `kind` (`Error::kind`,
//! `SrsError::kind`) and, for a denial, a `reason`. Secrets never appear in a
//! `repr`.
#![allow(unsafe_code)] // PyO3's macros expand to `unsafe` (the binding framework requires it).
#![allow(clippy::needless_pass_by_value)] // PyO3 hands owned arguments.

mod stream;
mod threshold;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use sesphr::consent::{GrantOptions, PatientRegistration, SignedGrant, SignedRevocation};
use sesphr::model::Scope;
use sesphr::srs::{Denial, Purpose, Role, SrsError as RsSrsError, StorageKey};
use sesphr::{Error as RsError, Identity, PortionLabel, PortionPublicKey, RecordId};

create_exception!(
    sesphr,
    SesphrError,
    PyException,
    "Base of every sesphr error; `kind` names it."
);
create_exception!(
    sesphr,
    FormatError,
    SesphrError,
    "Bytes or a name that do not decode (length, magic, version, point, scalar, identity, label, role)."
);
create_exception!(
    sesphr,
    CryptoError,
    SesphrError,
    "A check failed: decryption, a proof, a signature, a key that does not match."
);
create_exception!(
    sesphr,
    SrsError,
    SesphrError,
    "The re-encryption server refused a call or failed."
);
create_exception!(
    sesphr,
    DeniedError,
    SrsError,
    "A re-encryption request was denied; `reason` says why (not_granted, revoked, …)."
);
create_exception!(
    sesphr,
    StoreError,
    SrsError,
    "The SRS's store failed, is locked, or holds data that does not verify."
);

/// An exception of class `E` with `kind` (and `reason`) set.
fn raise<E: pyo3::PyTypeInfo>(message: String, kind: &str, reason: Option<&str>) -> PyErr {
    Python::attach(|py| {
        let err = PyErr::new::<E, _>(message);
        let value = err.value(py);
        // Setting attributes on a fresh exception object cannot fail in
        // practice; if it did, the exception still carries its message.
        let _ = value.setattr("kind", kind);
        let _ = value.setattr("reason", reason);
        err
    })
}

/// The exception for a core error.
fn core_err(e: RsError) -> PyErr {
    let kind = e.kind();
    let msg = e.to_string();
    match e {
        RsError::InvalidLength { .. }
        | RsError::BadMagic { .. }
        | RsError::UnsupportedVersion { .. }
        | RsError::NonCanonicalPoint
        | RsError::IdentityPoint
        | RsError::NonCanonicalScalar
        | RsError::ZeroScalar
        | RsError::ReservedBitsSet
        | RsError::InvalidIdentity
        | RsError::InvalidLabel
        | RsError::InvalidRole
        | RsError::BadChecksum { .. }
        | RsError::Malformed { .. }
        | RsError::TooLarge => raise::<FormatError>(msg, kind, None),
        _ => raise::<CryptoError>(msg, kind, None),
    }
}

/// The exception for an SRS error.
fn srs_err(e: RsSrsError) -> PyErr {
    let msg = e.to_string();
    match e {
        RsSrsError::Malformed(inner) => core_err(inner),
        RsSrsError::Denied(d) => raise::<DeniedError>(msg, "denied", Some(d.as_str())),
        RsSrsError::Store(_)
        | RsSrsError::StoreLocked
        | RsSrsError::Unavailable
        | RsSrsError::Tampered(_)
        | RsSrsError::AuditChainBroken { .. }
        | RsSrsError::RolledBack { .. }
        | RsSrsError::Diverged { .. } => raise::<StoreError>(msg, e.kind(), None),
        _ => raise::<SrsError>(msg, e.kind(), None),
    }
}

trait Py<T> {
    fn py(self) -> PyResult<T>;
}
impl<T> Py<T> for Result<T, RsError> {
    fn py(self) -> PyResult<T> {
        self.map_err(core_err)
    }
}
impl<T> Py<T> for Result<T, RsSrsError> {
    fn py(self) -> PyResult<T> {
        self.map_err(srs_err)
    }
}

fn identity(s: &str) -> PyResult<Identity> {
    Identity::new(s).py()
}
fn label(s: &str) -> PyResult<PortionLabel> {
    PortionLabel::new(s).py()
}
fn array32(what: &'static str, b: &[u8]) -> PyResult<[u8; 32]> {
    b.try_into().map_err(|_| {
        core_err(RsError::InvalidLength {
            what,
            expected: 32,
            actual: b.len(),
        })
    })
}

/// A patient's keys: one master secret, one key per (portion, epoch), and
/// the consent signing key. `to_bytes()` is the secret export; keep it
/// like a password.
#[pyclass(frozen, module = "sesphr")]
struct PatientKeys(sesphr::PatientKeys);

#[pymethods]
impl PatientKeys {
    /// Fresh keys for `identity` (the operating system's RNG).
    #[staticmethod]
    fn generate(identity_: &str) -> PyResult<Self> {
        Ok(Self(sesphr::PatientKeys::generate(identity(identity_)?)))
    }

    /// The keys from their export (`to_bytes`).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        sesphr::PatientKeys::from_bytes(data).py().map(Self)
    }

    /// The secret export (identity and master secret), a key backup with
    /// a check value: a corrupted copy is refused, never restored as
    /// another key.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.to_bytes())
    }

    /// The same backup as text for paper (Bech32m, `sesphr-patient1…`).
    fn to_backup_text(&self) -> String {
        self.0.to_backup_text().to_string()
    }

    /// The keys from `to_backup_text` (whitespace ignored); a mistyped
    /// character raises `FormatError` with kind `bad_checksum`.
    #[staticmethod]
    fn from_backup_text(text: &str) -> PyResult<Self> {
        sesphr::PatientKeys::from_backup_text(text).py().map(Self)
    }

    /// The patient's identity.
    #[getter]
    fn identity(&self) -> String {
        self.0.patient().as_str().to_owned()
    }

    /// The public key of a portion (`label`, `epoch`): anyone holding it can
    /// add records to that portion.
    #[pyo3(signature = (label_, epoch = 0))]
    fn portion_public_key<'py>(
        &self,
        py: Python<'py>,
        label_: &str,
        epoch: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let l = label(label_)?;
        let key = py.detach(|| self.0.portion_public(&l, epoch).to_bytes());
        Ok(PyBytes::new(py, &key))
    }

    /// The hybrid (post-quantum) public key of a portion (`"SPHK"`), sealing
    /// to the SRS's post-quantum key `srs_pq_key` (`Srs.pq_public_key`):
    /// `seal` with it makes headers whose key also needs ML-KEM-768.
    #[pyo3(signature = (label_, srs_pq_key, epoch = 0))]
    fn hybrid_portion_public_key<'py>(
        &self,
        py: Python<'py>,
        label_: &str,
        srs_pq_key: &[u8],
        epoch: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let l = label(label_)?;
        let srs = sesphr::SrsPqPublicKey::from_bytes(srs_pq_key).py()?;
        let key = py
            .detach(|| self.0.hybrid_portion_public(&l, epoch, &srs))
            .py()?;
        Ok(PyBytes::new(py, &key.to_bytes()))
    }

    /// The hybrid public key of a portion for a threshold SRS: each
    /// header's post-quantum secret split `threshold`-of-`len(srs_pq_keys)`,
    /// node `i`'s share to `srs_pq_keys[i - 1]` (that node's
    /// `Srs.pq_public_key`; node `i` holds share `i` of the re-encryption
    /// key).
    #[pyo3(signature = (label_, threshold, srs_pq_keys, epoch = 0))]
    fn hybrid_portion_public_key_split<'py>(
        &self,
        py: Python<'py>,
        label_: &str,
        threshold: u8,
        srs_pq_keys: Vec<Vec<u8>>,
        epoch: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let l = label(label_)?;
        let nodes = srs_pq_keys
            .iter()
            .map(|k| sesphr::SrsPqPublicKey::from_bytes(k))
            .collect::<Result<Vec<_>, _>>()
            .py()?;
        let key = py
            .detach(|| {
                self.0
                    .hybrid_portion_public_split(&l, epoch, threshold, &nodes)
            })
            .py()?;
        Ok(PyBytes::new(py, &key.to_bytes()))
    }

    /// The consent public key (Ed25519, 32 bytes) that verifies this
    /// patient's grants and revocations.
    fn consent_public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let key = py.detach(|| self.0.consent_public().to_bytes());
        PyBytes::new(py, &key)
    }

    /// Opens a sealed portion of this patient's record.
    fn open_as_owner<'py>(&self, py: Python<'py>, sealed: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let plain = py.detach(|| {
            let s = sesphr::SealedPortion::from_bytes(sealed)?;
            let h = s.header().context();
            let key = self.0.portion_secret(h.label(), h.epoch());
            s.open_as_owner(&key)
        });
        Ok(PyBytes::new(py, &plain.py()?))
    }

    /// The signed registration of this patient with the given portions
    /// (`[("lab", 0), …]`), for `Srs.register_patient`.
    fn registration<'py>(
        &self,
        py: Python<'py>,
        portions: Vec<(String, u32)>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let labels = portions
            .iter()
            .map(|(l, e)| Ok((label(l)?, *e)))
            .collect::<PyResult<Vec<_>>>()?;
        let r = py.detach(|| PatientRegistration::new(&self.0, &labels).map(|r| r.to_bytes()));
        Ok(PyBytes::new(py, &r.py()?))
    }

    /// A grant of portion (`label`, `epoch`) to `user`, signed by the
    /// patient, for `Srs.grant` with the same `rekey`. `since`: only records
    /// created at or after it; `expiry`: when the grant stops working.
    /// `request`: the id of the access request (`Srs.request_access`) this
    /// grant answers. `user_pq_key`: the user's ML-KEM-768 key
    /// (`KeyPair.pq_public_key`); the SRS then re-wraps hybrid headers only
    /// to that key.
    #[pyo3(signature = (label_, epoch, user, rekey, since = None, expiry = None, request = None, user_pq_key = None))]
    #[allow(clippy::too_many_arguments)]
    fn sign_grant<'py>(
        &self,
        py: Python<'py>,
        label_: &str,
        epoch: u32,
        user: &str,
        rekey: &ReKey,
        since: Option<u64>,
        expiry: Option<u64>,
        request: Option<&[u8]>,
        user_pq_key: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (l, u) = (label(label_)?, identity(user)?);
        let user_pq_key = user_pq_key
            .map(|k| sesphr::PqPublicKey::from_bytes(k).map(|k| k.fingerprint()))
            .transpose()
            .py()?;
        let options = GrantOptions {
            user_pq_key,
            scope: since.map_or(Scope::AllRecords, Scope::Since),
            expiry,
            request: request
                .map(sesphr::consent::RequestId::from_slice)
                .transpose()
                .py()?,
            ..GrantOptions::default()
        };
        let g = py.detach(|| {
            self.0
                .sign_grant(&l, epoch, &u, &rekey.0, &options)
                .map(|g| g.to_bytes())
        });
        Ok(PyBytes::new(py, &g.py()?))
    }

    /// The patient's signed refusal of the access request `request` (its
    /// 16-byte id), with a reason the user will see; for
    /// `Srs.refuse_request`.
    fn sign_refusal<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        reason: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let id = sesphr::consent::RequestId::from_slice(request).py()?;
        let r = py.detach(|| self.0.sign_refusal(id, reason).map(|r| r.to_bytes()));
        Ok(PyBytes::new(py, &r.py()?))
    }

    /// Opens a sealed portion read from `src` (any object with `read(n)`)
    /// into `dst` (any object with `write(b)`), in bounded memory; the
    /// portion and epoch come from its header. Returns the number of
    /// plaintext bytes written. Only authenticated chunks are written, but
    /// a tampered or truncated portion raises after earlier chunks were:
    /// discard `dst` on error.
    fn open_stream(
        &self,
        py: Python<'_>,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let (n, ()) = stream::open_stream_with(py, src, dst, |h| {
            let c = h.context();
            let key = self.0.portion_secret(c.label(), c.epoch());
            sesphr::PortionOpener::for_owner(h, &key).map(|o| (o, ()))
        })?;
        Ok(n)
    }

    /// A grant of portion (`label`, `epoch`) to `user` for a re-encryption
    /// key split among nodes (`ReKey.split`): it names the split's
    /// `commitments`; every node files it with its own share
    /// (`Srs.grant_share`), and the user opens with a `ThresholdOpener`.
    #[pyo3(signature = (label_, epoch, user, commitments, since = None, expiry = None))]
    #[allow(clippy::too_many_arguments)]
    fn sign_share_grant<'py>(
        &self,
        py: Python<'py>,
        label_: &str,
        epoch: u32,
        user: &str,
        commitments: &[u8],
        since: Option<u64>,
        expiry: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (l, u) = (label(label_)?, identity(user)?);
        let c = sesphr::ShareCommitments::from_bytes(commitments).py()?;
        let options = GrantOptions {
            scope: since.map_or(Scope::AllRecords, Scope::Since),
            expiry,
            ..GrantOptions::default()
        };
        let g = py.detach(|| {
            self.0
                .sign_share_grant(&l, epoch, &u, &c, &options)
                .map(|g| g.to_bytes())
        });
        Ok(PyBytes::new(py, &g.py()?))
    }

    /// A revocation of every grant of `label` (all epochs) to `user`,
    /// signed by the patient and dated `issued_at` (default: now).
    #[pyo3(signature = (label_, user, issued_at = None))]
    fn sign_revocation<'py>(
        &self,
        py: Python<'py>,
        label_: &str,
        user: &str,
        issued_at: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (l, u) = (label(label_)?, identity(user)?);
        let at = issued_at.unwrap_or_else(sesphr::unix_now);
        let r = py.detach(|| self.0.sign_revocation_at(&l, &u, at).map(|r| r.to_bytes()));
        Ok(PyBytes::new(py, &r.py()?))
    }

    fn __repr__(&self) -> String {
        format!("PatientKeys(identity={:?})", self.0.patient().as_str())
    }
}

/// A user's key pair (doctor, hospital, researcher, family member).
#[pyclass(frozen, module = "sesphr")]
struct KeyPair(sesphr::KeyPair);

#[pymethods]
impl KeyPair {
    /// A fresh key pair.
    #[staticmethod]
    fn generate() -> Self {
        Self(sesphr::KeyPair::generate())
    }

    /// A fresh hybrid key pair: ristretto255 and an independent ML-KEM-768
    /// key, to read hybrid (post-quantum) portions.
    #[staticmethod]
    fn generate_hybrid() -> Self {
        Self(sesphr::KeyPair::generate_hybrid())
    }

    /// The key pair of a 32-byte secret key (and, for a hybrid key pair,
    /// its 64-byte ML-KEM seed, `pq_seed()`).
    #[staticmethod]
    #[pyo3(signature = (secret, pq_seed = None))]
    fn from_secret_bytes(secret: &[u8], pq_seed: Option<&[u8]>) -> PyResult<Self> {
        let kp = sesphr::KeyPair::from_secret_bytes(&array32("secret key", secret)?).py()?;
        Ok(Self(match pq_seed {
            None => kp,
            Some(seed) => {
                let seed: [u8; 64] = seed.try_into().map_err(|_| {
                    core_err(RsError::InvalidLength {
                        what: "ML-KEM-768 seed",
                        expected: 64,
                        actual: seed.len(),
                    })
                })?;
                kp.with_pq(sesphr::PqSecretKey::from_seed(&seed))
            }
        }))
    }

    /// The ML-KEM-768 encapsulation key (1,184 bytes; `None` for a
    /// classical key pair): what `Srs.register_pq_key` takes.
    #[getter]
    fn pq_public_key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0.pq_public().map(|k| PyBytes::new(py, k.as_bytes()))
    }

    /// The ML-KEM-768 seed (64 bytes; `None` for a classical key pair);
    /// keep it like a password.
    fn pq_seed<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0
            .pq()
            .map(|k| PyBytes::new(py, k.seed_bytes().as_ref()))
    }

    /// The secret key (32 bytes); keep it like a password.
    fn secret_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.secret().to_bytes().as_ref())
    }

    /// The secret key as a key backup (with a check value: a corrupted
    /// copy is refused, never restored as another key).
    fn to_backup<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.secret().to_backup())
    }

    /// The same backup as text for paper (Bech32m, `sesphr-secret1…`).
    fn to_backup_text(&self) -> String {
        self.0.secret().to_backup_text().to_string()
    }

    /// The key pair from `to_backup`.
    #[staticmethod]
    fn from_backup(data: &[u8]) -> PyResult<Self> {
        sesphr::SecretKey::from_backup(data)
            .py()
            .map(|k| Self(sesphr::KeyPair::from_secret(k)))
    }

    /// The key pair from `to_backup_text` (whitespace ignored).
    #[staticmethod]
    fn from_backup_text(text: &str) -> PyResult<Self> {
        sesphr::SecretKey::from_backup_text(text)
            .py()
            .map(|k| Self(sesphr::KeyPair::from_secret(k)))
    }

    /// The public key (32 bytes).
    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.public().to_bytes())
    }

    /// A proof that `identity` holds this key, for `Srs.register_user`.
    fn prove_possession<'py>(
        &self,
        py: Python<'py>,
        identity_: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let id = identity(identity_)?;
        let proof = py.detach(|| self.0.prove_possession(&id).to_bytes());
        Ok(PyBytes::new(py, &proof))
    }

    /// Opens a sealed portion with the re-capsule the SRS returned for it.
    fn open_as_delegatee<'py>(
        &self,
        py: Python<'py>,
        sealed: &[u8],
        recapsule: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let plain = py.detach(|| {
            let s = sesphr::SealedPortion::from_bytes(sealed)?;
            let rc = sesphr::ReCapsule::from_bytes(recapsule)?;
            s.open_as_delegatee(&self.0, &rc)
        });
        Ok(PyBytes::new(py, &plain.py()?))
    }

    /// As `open_as_delegatee`, for a sealed portion read from `src` into
    /// `dst` in bounded memory (see `PatientKeys.open_stream`); returns the
    /// number of plaintext bytes written.
    fn open_stream_as_delegatee(
        &self,
        py: Python<'_>,
        recapsule: &[u8],
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let rc = sesphr::ReCapsule::from_bytes(recapsule).py()?;
        let (n, ()) = stream::open_stream_with(py, src, dst, |h| {
            let opener = sesphr::DelegateeOpener::for_recapsule(&self.0, h, &rc);
            sesphr::PortionOpener::for_delegatee(h, &opener, &rc).map(|o| (o, ()))
        })?;
        Ok(n)
    }

    fn __repr__(&self) -> String {
        format!("KeyPair(public_key={:?})", self.0.public())
    }
}

/// A re-encryption key: from one portion of the patient to one user. The
/// SRS holds it; alone it opens nothing.
#[pyclass(frozen, module = "sesphr")]
struct ReKey(sesphr::ReKey);

#[pymethods]
impl ReKey {
    /// The re-encryption key from the patient's portion (`label`, `epoch`)
    /// to the user holding `user_public_key`.
    #[staticmethod]
    #[pyo3(signature = (patient, label_, user_public_key, epoch = 0))]
    fn generate(
        py: Python<'_>,
        patient: &PatientKeys,
        label_: &str,
        user_public_key: &[u8],
        epoch: u32,
    ) -> PyResult<Self> {
        let l = label(label_)?;
        let user = sesphr::PublicKey::from_bytes(&array32("public key", user_public_key)?).py()?;
        Ok(Self(py.detach(|| {
            sesphr::ReKey::generate(&patient.0.portion_secret(&l, epoch), &user)
        })))
    }

    /// From its encoding.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        sesphr::ReKey::from_bytes(data).py().map(Self)
    }

    /// Its encoding (secret: it is what the SRS keeps sealed).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.to_bytes())
    }

    /// Re-encrypts a sealed portion's header (or the whole sealed portion)
    /// for the user; checks the capsule proof first.
    fn reencrypt<'py>(
        &self,
        py: Python<'py>,
        sealed_or_header: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        reencrypt_with(py, sealed_or_header, |h| self.0.reencrypt(h))
    }

    /// Splits the key among `nodes` SRS nodes so that any `threshold` of
    /// them re-encrypt together and fewer learn nothing: returns the
    /// public commitments (for `PatientKeys.sign_share_grant` and
    /// `ThresholdOpener`) and one secret share per node, node 1 first.
    fn split<'py>(
        &self,
        py: Python<'py>,
        threshold: u8,
        nodes: u8,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<threshold::ReKeyShare>)> {
        let (c, shares) = py.detach(|| self.0.split(threshold, nodes)).py()?;
        Ok((
            PyBytes::new(py, &c.to_bytes()),
            shares.into_iter().map(threshold::ReKeyShare).collect(),
        ))
    }

    fn __repr__(&self) -> String {
        "ReKey(..)".to_owned()
    }
}

/// Re-encrypts the header of `sealed_or_header` (its capsule checked
/// first) with `f`, the GIL released.
fn reencrypt_with<'py>(
    py: Python<'py>,
    sealed_or_header: &[u8],
    f: impl FnOnce(sesphr::VerifiedHeader<'_>) -> Result<sesphr::ReCapsule, RsError> + Send,
) -> PyResult<Bound<'py, PyBytes>> {
    let rc = py.detach(|| {
        let header = header_of(sealed_or_header)?;
        f(header.verify()?).map(|rc| rc.to_bytes())
    });
    Ok(PyBytes::new(py, &rc.py()?))
}

/// The header of a sealed portion, or the header itself.
fn header_of(bytes: &[u8]) -> Result<sesphr::PortionHeader, RsError> {
    let len = sesphr::PortionHeader::len_from_prefix(bytes)?;
    let head = bytes.get(..len).ok_or(RsError::InvalidLength {
        what: "portion header",
        expected: len,
        actual: bytes.len(),
    })?;
    sesphr::PortionHeader::from_bytes(head)
}

/// The header of a sealed portion: what the SRS needs to re-encrypt it
/// (the body can stay in the cloud).
#[pyfunction]
fn header<'py>(py: Python<'py>, sealed: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let h = header_of(sealed).py()?;
    Ok(PyBytes::new(py, &h.to_bytes()))
}

/// What sealing takes from Python: the portion public key (classical or
/// hybrid), a record id (16 bytes; random if absent) and the creation time
/// (now if absent).
fn seal_args(
    portion_public_key: &[u8],
    record_id: Option<&[u8]>,
    created_at: Option<u64>,
) -> PyResult<(sesphr::AnyPortionKey, RecordId, u64)> {
    let key = sesphr::AnyPortionKey::from_bytes(portion_public_key).py()?;
    let id = match record_id {
        Some(b) => RecordId::from_slice(b).py()?,
        None => RecordId::random(),
    };
    Ok((key, id, created_at.unwrap_or_else(sesphr::unix_now)))
}

/// Seals `plaintext` as a new record of the portion whose public key is
/// given (`PatientKeys.portion_public_key`, or a hybrid key from
/// `PatientKeys.hybrid_portion_public_key` for a post-quantum header).
/// `record_id`: 16 bytes (random by default); `created_at`: seconds since
/// the epoch (default: now).
#[pyfunction]
#[pyo3(signature = (portion_public_key, plaintext, record_id = None, created_at = None))]
fn seal<'py>(
    py: Python<'py>,
    portion_public_key: &[u8],
    plaintext: &[u8],
    record_id: Option<&[u8]>,
    created_at: Option<u64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let (key, id, at) = seal_args(portion_public_key, record_id, created_at)?;
    let sealed =
        py.detach(|| sesphr::SealedPortion::seal(&key, id, at, plaintext).map(|s| s.to_bytes()));
    Ok(PyBytes::new(py, &sealed.py()?))
}

/// The Setup and Re-encryption Server: registry, grants, re-encryption,
/// revocation, and the audit log. Safe to share between threads.
#[pyclass(frozen, module = "sesphr")]
struct Srs(sesphr::srs::Srs);

fn purpose(p: &str) -> PyResult<Purpose> {
    p.parse::<Purpose>().py()
}

#[pymethods]
impl Srs {
    /// An SRS on an in-memory store (tests, demos).
    #[staticmethod]
    fn in_memory(py: Python<'_>) -> PyResult<Self> {
        py.detach(sesphr::srs::Srs::in_memory).py().map(Self)
    }

    /// An SRS on an SQLite file, its rows sealed under `storage_key` (32
    /// bytes the host keeps outside the database).
    #[staticmethod]
    fn open_sqlite(py: Python<'_>, path: std::path::PathBuf, storage_key: &[u8]) -> PyResult<Self> {
        let key = StorageKey::from_bytes(&array32("storage key", storage_key)?);
        py.detach(|| sesphr::srs::Srs::open_sqlite(path, key))
            .py()
            .map(Self)
    }

    /// An SRS on PostgreSQL (libpq `conninfo`), its rows sealed under
    /// `storage_key`; several SRS processes may share one database. Only
    /// in a wheel built with the cargo feature `postgres` (`maturin build
    /// -F postgres`); otherwise it raises `SrsError` of kind `unsupported`.
    #[staticmethod]
    fn open_postgres(py: Python<'_>, conninfo: &str, storage_key: &[u8]) -> PyResult<Self> {
        let key = StorageKey::from_bytes(&array32("storage key", storage_key)?);
        #[cfg(feature = "postgres")]
        {
            py.detach(|| sesphr::srs::Srs::open_postgres(conninfo, key))
                .py()
                .map(Self)
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (py, conninfo, key);
            Err(raise::<SrsError>(
                "this wheel was built without the postgres feature".to_owned(),
                "unsupported",
                None,
            ))
        }
    }

    /// A fresh random storage key (32 bytes).
    #[staticmethod]
    fn generate_storage_key<'py>(py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, StorageKey::generate().to_bytes().as_ref())
    }

    /// Registers a patient from their signed registration
    /// (`PatientKeys.registration`).
    fn register_patient(&self, py: Python<'_>, registration: &[u8]) -> PyResult<()> {
        let r = PatientRegistration::from_bytes(registration).py()?;
        py.detach(|| self.0.register_patient(&r)).py()
    }

    /// Registers a user: identity, role (`"doctor"`, `"researcher"`, … or a
    /// custom `[a-z0-9_-]` name), public key and proof of possession.
    fn register_user(
        &self,
        py: Python<'_>,
        identity_: &str,
        role: &str,
        public_key: &[u8],
        proof: &[u8],
    ) -> PyResult<()> {
        let id = identity(identity_)?;
        let role = role.parse::<Role>().py()?;
        let key = sesphr::PublicKey::from_bytes(&array32("public key", public_key)?).py()?;
        let proof = sesphr::consent::KeyProof::from_bytes(proof).py()?;
        py.detach(|| self.0.register_user(&id, role, &key, &proof))
            .py()
    }

    /// Registers (or replaces) a user's ML-KEM-768 encapsulation key
    /// (`KeyPair.pq_public_key`): the SRS re-wraps hybrid headers' secret
    /// to it; without one, hybrid headers are denied (kind `no_pq_key`).
    fn register_pq_key(&self, py: Python<'_>, identity_: &str, key: &[u8]) -> PyResult<()> {
        let id = identity(identity_)?;
        let key = sesphr::PqPublicKey::from_bytes(key).py()?;
        py.detach(|| self.0.register_pq_key(&id, &key)).py()
    }

    /// The SRS's post-quantum key at its current version (`"SPQK"`), for
    /// `PatientKeys.hybrid_portion_public_key`.
    fn pq_public_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let k = py.detach(|| self.0.pq_public_key()).py()?;
        Ok(PyBytes::new(py, &k.to_bytes()))
    }

    /// Rotates the SRS's post-quantum key and returns the new one; headers
    /// sealed to older versions still re-encrypt.
    fn rotate_pq_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let k = py.detach(|| self.0.rotate_pq_key()).py()?;
        Ok(PyBytes::new(py, &k.to_bytes()))
    }

    /// Files a patient-signed grant with its re-encryption key.
    fn grant(&self, py: Python<'_>, signed_grant: &[u8], rekey: &ReKey) -> PyResult<()> {
        let g = SignedGrant::from_bytes(signed_grant).py()?;
        let k = rekey.0.clone();
        py.detach(|| self.0.grant(&g, k)).py()
    }

    /// Files a patient-signed share grant with this node's share
    /// (`ReKey.split`).
    fn grant_share(
        &self,
        py: Python<'_>,
        signed_grant: &[u8],
        share: &threshold::ReKeyShare,
    ) -> PyResult<()> {
        let g = SignedGrant::from_bytes(signed_grant).py()?;
        let s = share.0.clone();
        py.detach(|| self.0.grant_share(&g, s)).py()
    }

    /// A user asks a patient for access to a portion, for a purpose, in
    /// their own words; returns the request's id (16 bytes). The patient
    /// answers with a grant naming it (`sign_grant(..., request=id)`) or a
    /// signed refusal (`refuse_request`).
    fn request_access<'py>(
        &self,
        py: Python<'py>,
        user: &str,
        patient: &str,
        label_: &str,
        purpose_: &str,
        justification: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (u, p, l, why) = (
            identity(user)?,
            identity(patient)?,
            label(label_)?,
            purpose(purpose_)?,
        );
        let id = py
            .detach(|| self.0.request_access(&u, &p, &l, why, justification))
            .py()?;
        Ok(PyBytes::new(py, &id.to_bytes()))
    }

    /// The patient's access requests still waiting, oldest first: dicts
    /// with `id`, `user`, `label`, `purpose`, `justification`,
    /// `requested_at`.
    fn pending_requests<'py>(
        &self,
        py: Python<'py>,
        patient: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let p = identity(patient)?;
        let list = py.detach(|| self.0.pending_requests(&p));
        let out = PyList::empty(py);
        for r in list {
            let item = PyDict::new(py);
            item.set_item("id", PyBytes::new(py, &r.id.to_bytes()))?;
            item.set_item("user", r.user.as_str())?;
            item.set_item("label", r.label.as_str())?;
            item.set_item("purpose", r.purpose.as_str())?;
            item.set_item("justification", r.justification.as_str())?;
            item.set_item("requested_at", r.requested_at)?;
            out.append(item)?;
        }
        Ok(out)
    }

    /// Files the patient's signed refusal of a request
    /// (`PatientKeys.sign_refusal`); audited with it.
    fn refuse_request(&self, py: Python<'_>, signed_refusal: &[u8]) -> PyResult<()> {
        let r = sesphr::consent::SignedRefusal::from_bytes(signed_refusal).py()?;
        py.detach(|| self.0.refuse_request(&r)).py()
    }

    /// Files a patient-signed revocation; returns the SRS's signed receipt.
    /// Durable before it returns: no later re-encryption under the grant.
    fn revoke<'py>(
        &self,
        py: Python<'py>,
        signed_revocation: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = SignedRevocation::from_bytes(signed_revocation).py()?;
        let receipt = py
            .detach(|| self.0.revoke(&r).map(|rc| rc.to_bytes()))
            .py()?;
        Ok(PyBytes::new(py, &receipt))
    }

    /// Re-encrypts a sealed portion (or its header) for `user`, for a
    /// purpose (`"treatment"`, `"research"`, …); raises `DeniedError`.
    /// With `proof`, the re-capsule carries a proof of correct
    /// re-encryption (what a `ThresholdOpener` checks a node's share by).
    #[pyo3(signature = (user, sealed_or_header, purpose_ = "treatment", proof = false))]
    fn reencrypt<'py>(
        &self,
        py: Python<'py>,
        user: &str,
        sealed_or_header: &[u8],
        purpose_: &str,
        proof: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (u, p) = (identity(user)?, purpose(purpose_)?);
        let header = header_of(sealed_or_header).py()?;
        let rc = py
            .detach(|| {
                if proof {
                    self.0.reencrypt_with_proof(&u, &header, p)
                } else {
                    self.0.reencrypt(&u, &header, p)
                }
                .map(|rc| rc.to_bytes())
            })
            .py()?;
        Ok(PyBytes::new(py, &rc))
    }

    /// Re-encrypts many headers in one audit commit: a list with, for each,
    /// the re-capsule bytes or a `DeniedError`.
    #[pyo3(signature = (user, headers, purpose_ = "treatment"))]
    fn reencrypt_batch<'py>(
        &self,
        py: Python<'py>,
        user: &str,
        headers: Vec<Vec<u8>>,
        purpose_: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let (u, p) = (identity(user)?, purpose(purpose_)?);
        let parsed = headers
            .iter()
            .map(|h| header_of(h))
            .collect::<Result<Vec<_>, _>>()
            .py()?;
        let refs: Vec<&sesphr::PortionHeader> = parsed.iter().collect();
        let answers = py.detach(|| self.0.reencrypt_batch(&u, &refs, p)).py()?;
        let out = PyList::empty(py);
        for a in answers {
            match a {
                Ok(rc) => out.append(PyBytes::new(py, &rc.to_bytes()))?,
                Err(d) => out.append(denied(d).value(py))?,
            }
        }
        Ok(out)
    }

    /// The patient's disclosures between `start` and `end` (seconds since
    /// the epoch), each a dict (`seq`, `time`, `user`, `role`, `label`,
    /// `record_id`, `purpose`, `emergency`), each proven against the log.
    /// `end`: `None` for no limit.
    #[pyo3(signature = (patient, start = 0, end = None))]
    fn disclosures<'py>(
        &self,
        py: Python<'py>,
        patient: &str,
        start: u64,
        end: Option<u64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let id = identity(patient)?;
        let end = end.unwrap_or(u64::MAX);
        let list = py
            .detach(|| {
                self.0
                    .disclosures(&id, start, end)
                    .collect::<Result<Vec<_>, _>>()
            })
            .py()?;
        let out = PyList::empty(py);
        for d in list {
            let item = PyDict::new(py);
            item.set_item("seq", d.seq)?;
            item.set_item("time", d.time)?;
            item.set_item("user", d.user.as_str())?;
            item.set_item("role", d.role.as_ref().map(Role::as_str))?;
            item.set_item("label", d.label.as_str())?;
            item.set_item("record_id", PyBytes::new(py, &d.record_id.to_bytes()))?;
            item.set_item("purpose", d.purpose.as_ref().map(Purpose::as_str))?;
            item.set_item("emergency", d.emergency)?;
            out.append(item)?;
        }
        Ok(out)
    }

    /// Verifies the whole audit log (every entry, node and checkpoint);
    /// returns the number of entries.
    fn verify_audit(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.0.verify_audit()).py()
    }

    /// Re-checks every grant and revocation against the patients' consent
    /// keys.
    fn verify_consent(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.0.verify_consent().map(drop)).py()
    }

    /// The audit log from `from_seq` as JSON lines.
    #[pyo3(signature = (from_seq = 1))]
    fn export_audit_jsonl(&self, py: Python<'_>, from_seq: u64) -> PyResult<String> {
        let mut out = Vec::new();
        py.detach(|| self.0.export_audit_jsonl(from_seq, &mut out))
            .py()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A fresh signed checkpoint (bytes) to keep outside the database.
    fn checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let cp = py.detach(|| self.0.checkpoint()).py()?;
        Ok(PyBytes::new(py, &cp.to_bytes()))
    }

    /// The SRS's Ed25519 public key (32 bytes): verifies its checkpoints and
    /// revocation receipts.
    fn verifying_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.verifying_key().to_bytes())
    }

    fn __repr__(&self) -> String {
        "Srs(..)".to_owned()
    }
}

fn denied(d: Denial) -> PyErr {
    srs_err(RsSrsError::Denied(d))
}

/// Verifies a revocation receipt (`Srs.revoke`) under the SRS's public key.
#[pyfunction]
fn verify_receipt(receipt: &[u8], srs_key: &[u8]) -> PyResult<()> {
    let r = sesphr::consent::RevocationReceipt::from_bytes(receipt).py()?;
    let k = sesphr::consent::decode_verifying_key(&array32("srs key", srs_key)?).py()?;
    r.verify(&k).py()
}

/// Verifies a checkpoint (`Srs.checkpoint`) under the SRS's public key.
#[pyfunction]
fn verify_checkpoint(checkpoint: &[u8], srs_key: &[u8]) -> PyResult<()> {
    let c = sesphr::srs::Checkpoint::from_bytes(checkpoint).py()?;
    let k = sesphr::consent::decode_verifying_key(&array32("srs key", srs_key)?).py()?;
    sesphr::srs::verify_checkpoint(&c, &k).py()
}

/// Verifies a signed grant under the patient's consent public key
/// (`PatientKeys.consent_public_key`).
#[pyfunction]
fn verify_grant(signed_grant: &[u8], consent_key: &[u8]) -> PyResult<()> {
    let g = SignedGrant::from_bytes(signed_grant).py()?;
    let k = sesphr::consent::decode_verifying_key(&array32("consent key", consent_key)?).py()?;
    g.verify(&k).py()
}

/// Verifies a signed revocation under the patient's consent public key.
#[pyfunction]
fn verify_revocation(signed_revocation: &[u8], consent_key: &[u8]) -> PyResult<()> {
    let r = SignedRevocation::from_bytes(signed_revocation).py()?;
    let k = sesphr::consent::decode_verifying_key(&array32("consent key", consent_key)?).py()?;
    r.verify(&k).py()
}

/// Verifies a registration (its consent key and every portion key's proof
/// of possession); returns the patient's identity.
#[pyfunction]
fn verify_registration(registration: &[u8]) -> PyResult<String> {
    let r = PatientRegistration::from_bytes(registration).py()?;
    r.verify().py()?;
    Ok(r.patient().as_str().to_owned())
}

/// Seconds per operation of `op` done `iterations` times natively in Rust,
/// for the same-run ratios of the Python benchmark (`bench.py`) and the
/// wasm one (`bindings/wasm/bench.cjs`): `seal32`, `reencrypt`,
/// `open_delegatee`, `sign_grant` (with its re-key), `batch64`. Not part of
/// the API.
#[pyfunction]
fn _native_seconds_per_op(py: Python<'_>, op: &str, iterations: u32) -> PyResult<f64> {
    let fail = |e: RsError| core_err(e);
    let patient = sesphr::PatientKeys::generate(identity("patient-bench")?);
    let lab = label("lab")?;
    let ppk = patient.portion_public(&lab, 0);
    let srs = sesphr::srs::Srs::in_memory().py()?;
    srs.register_patient(&PatientRegistration::new(&patient, &[(lab.clone(), 0)]).py()?)
        .py()?;
    let (user, keys) = (identity("dr-bench")?, sesphr::KeyPair::generate());
    srs.register_user(
        &user,
        Role::Doctor,
        keys.public(),
        &keys.prove_possession(&user),
    )
    .py()?;
    let rekey = sesphr::ReKey::generate(&patient.portion_secret(&lab, 0), keys.public());
    let grant = patient
        .sign_grant(&lab, 0, &user, &rekey, &GrantOptions::default())
        .py()?;
    srs.grant(&grant, rekey).py()?;
    let records: Vec<sesphr::SealedPortion> = (0..64)
        .map(|_| {
            sesphr::SealedPortion::seal(&ppk, RecordId::random(), sesphr::unix_now(), &[7; 32])
        })
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let first = records.first().ok_or_else(|| fail(RsError::TooLarge))?;
    let rc = srs
        .reencrypt(&user, first.header(), Purpose::Treatment)
        .py()?;
    // Bytes in, bytes out, as a host that receives them does (and as the
    // binding does): each operation decodes its inputs and encodes its output.
    let ppk_bytes = ppk.to_bytes();
    let sealed_bytes = first.to_bytes();
    let first_header = first.header().to_bytes();
    let header_bytes: Vec<Vec<u8>> = records.iter().map(|r| r.header().to_bytes()).collect();
    let rc_bytes = rc.to_bytes();
    let n = iterations.max(1);
    let m = RsSrsError::Malformed;
    py.detach(|| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            match op {
                "seal32" => {
                    let key = PortionPublicKey::from_bytes(&ppk_bytes).map_err(m)?;
                    let s = sesphr::SealedPortion::seal(&key, RecordId::random(), 1, &[7; 32])
                        .map_err(m)?;
                    std::hint::black_box(s.to_bytes());
                }
                "reencrypt" => {
                    let h = sesphr::PortionHeader::from_bytes(&first_header).map_err(m)?;
                    let rc = srs.reencrypt(&user, &h, Purpose::Treatment)?;
                    std::hint::black_box(rc.to_bytes());
                }
                "open_delegatee" => {
                    let s = sesphr::SealedPortion::from_bytes(&sealed_bytes).map_err(m)?;
                    let rc = sesphr::ReCapsule::from_bytes(&rc_bytes).map_err(m)?;
                    std::hint::black_box(s.open_as_delegatee(&keys, &rc).map_err(m)?);
                }
                "sign_grant" => {
                    let rk =
                        sesphr::ReKey::generate(&patient.portion_secret(&lab, 0), keys.public());
                    let g = patient
                        .sign_grant(&lab, 0, &user, &rk, &GrantOptions::default())
                        .map_err(m)?;
                    std::hint::black_box(g.to_bytes());
                }
                "batch64" => {
                    let hs = header_bytes
                        .iter()
                        .map(|b| sesphr::PortionHeader::from_bytes(b))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(m)?;
                    let refs: Vec<&sesphr::PortionHeader> = hs.iter().collect();
                    for a in srs.reencrypt_batch(&user, &refs, Purpose::Treatment)? {
                        let _ = std::hint::black_box(a.map(|rc| rc.to_bytes()));
                    }
                }
                _ => {
                    return Err(m(RsError::Malformed {
                        what: "benchmark operation",
                    }));
                }
            }
        }
        Ok(start.elapsed().as_secs_f64() / f64::from(n))
    })
    .py()
}

/// The module `sesphr._sesphr`.
#[pymodule]
fn _sesphr(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PatientKeys>()?;
    m.add_class::<KeyPair>()?;
    m.add_class::<ReKey>()?;
    m.add_class::<Srs>()?;
    m.add_class::<threshold::ReKeyShare>()?;
    m.add_class::<threshold::ThresholdOpener>()?;
    m.add_function(wrap_pyfunction!(seal, m)?)?;
    m.add_function(wrap_pyfunction!(stream::seal_stream, m)?)?;
    m.add_function(wrap_pyfunction!(header, m)?)?;
    m.add_function(wrap_pyfunction!(verify_receipt, m)?)?;
    m.add_function(wrap_pyfunction!(verify_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(verify_grant, m)?)?;
    m.add_function(wrap_pyfunction!(verify_revocation, m)?)?;
    m.add_function(wrap_pyfunction!(verify_registration, m)?)?;
    m.add_function(wrap_pyfunction!(_native_seconds_per_op, m)?)?;
    m.add("SesphrError", py.get_type::<SesphrError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("CryptoError", py.get_type::<CryptoError>())?;
    m.add("SrsError", py.get_type::<SrsError>())?;
    m.add("DeniedError", py.get_type::<DeniedError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    Ok(())
}
