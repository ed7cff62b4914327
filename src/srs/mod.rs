//! The Setup and Re-encryption Server (SRS): registry, access-control list,
//! re-encryption service, revocation, audit chain, checkpoints, durable
//! store.
//!
//! The SRS is a component that a host embeds in its own server. It holds the
//! public-key registry, the grants (each with its re-encryption key, sealed at
//! rest), and a hash-chained audit log. It never sees plaintext or a portion
//! key: a re-encryption key alone opens nothing.
//!
//! Guarantees:
//! - **Durable before acknowledged.** Every registration, grant, revocation
//!   and removal is on disk (power loss included, whatever the store's
//!   durability setting) before the call returns; so is the audit entry of
//!   every re-encryption and denial (under the store's durability setting).
//! - **Linearizable revocation.** Re-encryptions run under a shared lock that
//!   a revocation takes exclusively: once `revoke` returns, no re-encryption
//!   under that grant succeeds, from any thread.
//! - **Nothing re-encrypted on revocation.** The re-encryption key is
//!   zeroized, and deleted from the store, its log and its free pages; the
//!   grant leaves an authenticated tombstone. No stored record is touched.
//! - **The database is trusted for availability only.** Every row carries a
//!   MAC and the generation that wrote it; the chain head is authenticated
//!   and covers a keyed digest of all rows. An edited, deleted, inserted or
//!   replayed row, or a cut audit log, is refused at open. A rollback of the
//!   whole database is refused against a checkpoint the host kept
//!   ([`SrsConfig::require_checkpoint`]).
//! - **Restarts do not replay history.** [`Srs::open`] verifies the rows, the
//!   latest signed checkpoint and only the audit entries after it;
//!   [`Srs::verify_audit`] walks the whole chain in bounded memory without
//!   stopping re-encryptions. With a registry snapshot
//!   ([`Srs::write_snapshot`]) open reads the registry in one sealed stream
//!   and authenticates only the rows written since; the result must give
//!   the authenticated head's digest, or every row is verified instead.
//!
//! - **Consent the patient signs.** Registrations carry proofs of
//!   possession; grants, revocations and refusals are signed by the
//!   patient's consent key ([`crate::consent`]) and kept in their audit
//!   entries, so [`Srs::verify_consent`] (or an auditor with an export and
//!   public keys) re-checks every one; a replayed or older signed object is
//!   refused. Administrative acts name their actor.
//!
//! ```
//! use sesphr::consent::{GrantOptions, PatientRegistration};
//! use sesphr::srs::{Purpose, Role, Srs};
//! use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, RecordId, ReKey, SealedPortion};
//!
//! let srs = Srs::in_memory()?;
//! let alice = PatientKeys::generate(Identity::new("alice")?);
//! let lab = PortionLabel::new("lab")?;
//! srs.register_patient(&PatientRegistration::new(&alice, &[(lab.clone(), 0)])?)?;
//!
//! let doctor_id = Identity::new("dr-bob")?;
//! let doctor = KeyPair::generate();
//! srs.register_user(&doctor_id, Role::Doctor, doctor.public(), &doctor.prove_possession(&doctor_id))?;
//!
//! let report = SealedPortion::seal(&alice.portion_public(&lab, 0), RecordId::random(), 1_700_000_000, b"HbA1c 5.4%")?;
//! let rekey = ReKey::generate(&alice.portion_secret(&lab, 0), doctor.public());
//! let signed = alice.sign_grant(&lab, 0, &doctor_id, &rekey, &GrantOptions::default())?;
//! srs.grant(&signed, rekey)?;
//!
//! let rc = srs.reencrypt(&doctor_id, report.header(), Purpose::Treatment)?;
//! assert_eq!(report.open_as_delegatee(&doctor, &rc)?, b"HbA1c 5.4%");
//!
//! srs.revoke(&alice.sign_revocation(&lab, &doctor_id)?)?;
//! assert!(srs.reencrypt(&doctor_id, report.header(), Purpose::Treatment).is_err());
//! // Patient + portion, user, grant, re-encryption, revocation, denial.
//! assert_eq!(srs.verify_audit()?, 7);
//! // A signed checkpoint for the host to keep outside the database.
//! let cp = srs.checkpoint()?;
//! srs.verify_checkpoint(&cp)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod archive;
mod chain;
mod config;
mod follower;
mod grants;
mod journal;
mod proofs;
mod queries;
mod registration;
mod registry;
mod report;
mod rows;
mod secrets;
mod server;
mod serving;
mod snapshot;
mod types;

pub use archive::{SegmentInfo, verify_segment};
pub use config::{
    DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_GRANT_MAX_AGE, OpenReport,
    SrsConfig,
};
pub use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
pub use proofs::{verify_checkpoint, verify_consistency, verify_inclusion};
pub use queries::{ConsentReport, Disclosures};
pub use registry::{GrantInfo, RegistrySize, RegistryView};
pub use report::DisclosureReport;
pub use server::Srs;
pub use snapshot::{SnapshotFault, SnapshotInfo, SnapshotUse};
pub use types::{Clock, ManualClock, SrsError, StorageKey, SystemClock};

pub use crate::model::{
    AccessReason, AccessRequest, AuditAction, AuditEntry, AuditOutcome, Checkpoint, Denial,
    Disclosure, GrantKey, GrantTerms, Purpose, RequestStatus, Role, Scope, UserRecord, UserStatus,
};
