//! # sesphr
//!
//! Secure sharing of personal health records (PHRs) through untrusted cloud
//! storage, under the patient's control: the SeSPHR methodology rebuilt on
//! ristretto255 proxy re-encryption and ChaCha20-Poly1305.
//!
//! A patient's record is split into portions (`personal`, `medical`, `lab`,
//! …). Each portion is sealed under its own key with a fresh symmetric key per
//! portion; the cloud stores only ciphertext. The patient gives a
//! re-encryption key ([`ReKey`]) for one portion to one user to the
//! re-encryption server (SRS); the SRS turns that portion's capsules into
//! capsules the user can open ([`ReCapsule`]), and learns nothing itself.
//! Deleting the re-encryption key revokes the user at once, with no data
//! re-encrypted; a newly granted user reads every existing record.
//!
//! ```
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
//!
//! // The patient derives one key per portion from a single master secret.
//! let patient = PatientKeys::generate(Identity::new("patient-0042")?);
//! let medical = patient.portion_secret(&PortionLabel::new("medical")?, 0);
//! let insurance = patient.portion_secret(&PortionLabel::new("insurance")?, 0);
//!
//! // Anyone with a portion public key can add a record to that portion.
//! let record = RecordId::random();
//! let diagnosis = SealedPortion::seal(medical.public(), record, 1_700_000_000, b"diagnosis: asthma")?;
//! let policy = SealedPortion::seal(insurance.public(), record, 1_700_000_000, b"policy 77-1")?;
//!
//! // The patient grants a doctor the medical portion; the SRS re-encrypts.
//! let doctor = KeyPair::generate();
//! let rekey = ReKey::generate(&medical, doctor.public());
//! let rc = rekey.reencrypt(diagnosis.header().verify()?)?;
//! assert_eq!(diagnosis.open_as_delegatee(&doctor, &rc)?, b"diagnosis: asthma");
//!
//! // The grant is useless on any other portion.
//! assert!(rekey.reencrypt(policy.header().verify()?).is_err());
//! # Ok::<(), sesphr::Error>(())
//! ```
//!
//! Every randomized function has a `*_with_rng` form taking any
//! [`rand_core::CryptoRng`]; the plain form uses the operating system's RNG.
//! Secret types zeroize on drop, print nothing secret through `Debug`, and
//! compare in constant time. Decoding is strict: one encoding per value, and a
//! typed [`Error`] for anything else.
//!
//! ## Features
//!
//! | feature | default | what it adds | needs |
//! |---|---|---|---|
//! | *(none)* | — | the core: keys, seal/open, streaming, re-encryption, consent signing and verification, threshold, delegatee open, the Merkle proofs ([`merkle`]) | Rust only; builds for `wasm32-unknown-unknown` |
//! | `srs` | via `sqlite` | the re-encryption server ([`srs::Srs`]), the in-memory store, the audit log and disclosure reports | Rust only |
//! | `sqlite` | yes | [`store::SqliteStore`], the embedded durable store (implies `srs`) | a C compiler (bundled SQLite) |
//! | `parallel` | yes | sealing and opening of large portions on all cores | rayon |
//! | `aws-lc` | yes | portions sealed and opened with AWS-LC's ChaCha20-Poly1305 (same bytes, faster; [`dem_backend`] says which) | a C compiler |
//! | `postgres` | no | [`store::PostgresStore`]: several SRS processes on one database (implies `srs`) | a PostgreSQL server at run time |
//! | `fhir` | no | HL7 FHIR R4 bundles, Consent, AuditEvent, the research export | serde_json, base64 |
//! | `ctgrind` | no | the constant-time check's marks (`ffi/examples/ct_check.rs`) | valgrind headers for the check |
//!
//! A patient's app or a clinician's client that only seals, opens and signs
//! consent: `sesphr = { version = "0.2", default-features = false }`.
//! The C library (`libsesphr.so`, `include/sesphr.h`) is the separate
//! `sesphr-ffi` crate of this workspace; depending on `sesphr` builds none
//! of it.
//!
//! ## Public dependencies
//!
//! Three crates' types appear in this API, and their major versions are part
//! of sesphr's: [`rand_core`] 0.10 (re-exported; the `*_with_rng` functions
//! take any `rand_core::CryptoRng`, and [`os_rng`] gives the operating
//! system's), `ed25519-dalek` 3 (the consent [`consent::SigningKey`] and
//! [`consent::VerifyingKey`], re-exported) and, with `fhir`, `serde_json` 1
//! (`serde_json::Value` resources). A change of any of their majors is a
//! major release of sesphr.
// docs.rs (`--cfg docsrs`, nightly) marks every feature-gated item with
// the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backup;
mod capsule;
pub mod consent;
#[cfg(not(feature = "ctgrind"))]
#[allow(dead_code, unreachable_pub)]
mod ct;
/// Constant-time checking under valgrind memcheck (feature `ctgrind`): mark
/// secrets undefined, and memcheck reports every branch or memory index that
/// depends on them. The valgrind client requests themselves come from the C
/// ABI crate (`ffi/examples/ct_check.rs`), through [`ctgrind::set_marker`].
#[cfg(feature = "ctgrind")]
#[path = "ct.rs"]
pub mod ctgrind;
#[cfg(feature = "ctgrind")]
use ctgrind as ct;
mod delegatee;
mod dem;
mod encoding;
mod error;
#[cfg(feature = "fhir")]
pub mod fhir;
mod group;
mod hash;
mod ids;
mod keys;
pub mod merkle;
pub mod model;
mod parallel;
mod portion;
mod pq;
mod reencrypt;
mod rekey;
mod rng;
mod schnorr;
#[cfg(feature = "srs")]
pub mod srs;
#[cfg(feature = "srs")]
pub mod store;
mod threshold;

pub use capsule::{Capsule, Context, PortionHeader, VerifiedHeader};
pub use delegatee::DelegateeOpener;
pub use dem::{CHUNK_LEN, SEALED_CHUNK_LEN, TAG_LEN, dem_backend, sealed_len};
pub use encoding::FORMAT_VERSION;
pub use error::{Error, Result, ShareFault, ShareStatus, ShareVerdict};
pub use ids::{Identity, PortionLabel, RecordId};
pub use keys::{
    EscrowKeyIssuer, HybridPortionKey, KeyPair, PatientKeys, PortionPublicKey, PortionSecretKey,
    PublicKey, SecretKey,
};
pub use parallel::{max_threads, set_max_threads, thread_pool_built_with};
pub use portion::{
    AnyPortionKey, PortionEncryptor, PortionOpener, PortionPlaintext, PortionReader, PortionWriter,
    SealedPortion, SealingKey,
};
pub use pq::{
    MAX_PQ_NODES, PQ_CIPHERTEXT_LEN, PQ_PUBLIC_KEY_LEN, PQ_SEED_LEN, PQ_STANZA_LEN, PqPublicKey,
    PqSecretKey, SrsPqPublicKey, SrsPqSecretKey,
};
pub use reencrypt::{ReCapsule, ReEncryptionProof};
pub use rekey::ReKey;
pub use threshold::{
    MIN_THRESHOLD, ReKeyShare, ShareCommitments, ShareReport, Shares, ThresholdOpened,
    ThresholdOpener, VerifiedCommitments,
};

pub use rand_core;
pub use rng::{OsRng, os_rng};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The FHIR guide's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/FHIR.md")]
pub struct FhirGuideDoctests;

/// Seconds since the Unix epoch now (0 if the clock is before 1970): the usual
/// `created_at` of a new portion.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
