//! HL7 FHIR R4 (feature `fhir`): a patient's record as it arrives from an
//! EHR, cut into portions and sealed, put back together by whoever may open
//! which portions; grants as R4 `Consent` and SMART v2 scopes; disclosures
//! as `AuditEvent`s (IHE BALP); and the research export under HIPAA Safe
//! Harbor with k-anonymity (DESIGN.md §13).
//!
//! - [`PortionMap`] says which portion a resource belongs to, by resource
//!   type and category ([`PortionMap::default`] is DESIGN.md §13's).
//!   Directory resources outside the patient compartment (Practitioner,
//!   Organization, Location, …) go with the portions whose resources refer
//!   to them.
//! - [`split`] cuts a Bundle (or one resource) into portions,
//!   [`Split::seal`] seals them, and [`Reassembler`] rebuilds a Bundle from
//!   the portions a reader could open. [`compare`] says whether two Bundles
//!   hold the same resources.
//! - [`consent_from_grant`], [`grant_from_consent`], [`revoke_consent`],
//!   [`ConsentTerms`] and [`smart_scopes`]: grants and revocations in the
//!   vocabulary of consent-aware systems.
//! - [`disclosure_audit_event`]: the SRS's accounting of disclosures as
//!   BALP "privacy disclosure" AuditEvents.
//! - [`research`]: Safe Harbor de-identification of the personal portion,
//!   then Mondrian k-anonymity.
//!
//! ```
//! use sesphr::fhir::{split, PortionMap, Reassembler, Granularity, compare};
//! use sesphr::{PatientKeys, Identity, PortionLabel};
//!
//! let bundle = br#"{"resourceType":"Bundle","type":"collection","entry":[
//!   {"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient","gender":"female"}},
//!   {"fullUrl":"urn:uuid:o","resource":{"resourceType":"Observation","status":"final",
//!     "category":[{"coding":[{"code":"laboratory"}]}],"subject":{"reference":"urn:uuid:p"}}}]}"#;
//! let map = PortionMap::default();
//! let parts = split(bundle, &map)?;
//! let patient = PatientKeys::generate(Identity::new("patient-1")?);
//! let keys: Vec<_> = map.labels().iter().map(|l| patient.portion_public(l, 0)).collect();
//! let sealed = parts.seal(&keys, Granularity::PerPortion, 1_700_000_000)?;
//! assert_eq!(sealed.len(), 2); // personal and lab
//!
//! // Each portion is bound to its record, and (given them) to the
//! // patient's keys.
//! let mut back = Reassembler::new(&map).expect_keys(&keys);
//! for s in &sealed {
//!     let key = patient.portion_secret(&s.label, 0);
//!     back.add(s.sealed.header(), &s.sealed.open_as_owner(&key)?)?;
//! }
//! let rebuilt = back.finish()?;
//! assert!(compare(&serde_json::from_slice(bundle)?, &rebuilt).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audit;
mod bundle;
mod consent;
mod dates;
mod mapping;
pub mod research;

use core::fmt;

pub use audit::{AuditSource, disclosure_audit_event};
pub use bundle::{
    Difference, Granularity, POSITION_EXTENSION, Reassembler, SealedFhir, Split, SplitPortion,
    compare, resource_types, split, split_value,
};
pub use consent::{
    ConsentTerms, SIGNED_REVOCATION_EXTENSION, consent_from_grant, consent_narrative,
    grant_from_consent, revocation_from_consent, revoke_consent, smart_scopes,
};
pub use mapping::{IMAGING_CATEGORIES, LAB_CATEGORIES, Nested, Placement, PortionMap, Unknown};
pub use serde_json::Value;

/// The identifier system of sesphr identities (patients, users) in FHIR
/// `Identifier`s.
pub const IDENTITY_SYSTEM: &str = "urn:sesphr:identity";
/// The code system of portion labels (in `Consent.provision.code`).
pub const PORTION_SYSTEM: &str = "urn:sesphr:portion";
/// The identifier system of sealed records (`record id/label`) in
/// AuditEvent entities.
pub const RECORD_SYSTEM: &str = "urn:sesphr:record";
/// The content type of a signed grant carried in `Consent.sourceAttachment`.
pub const SIGNED_GRANT_CONTENT_TYPE: &str = "application/vnd.sesphr.signed-grant";

/// Why a FHIR operation failed. Nothing stored or sealed is changed by a
/// failed call. Messages name fields and resource types, never values from
/// the record.
#[derive(Debug)]
#[non_exhaustive]
pub enum FhirError {
    /// The input is not JSON (the parser's position, no content).
    Json(String),
    /// The JSON is not the FHIR structure expected here.
    NotFhir {
        /// What was wrong.
        what: &'static str,
    },
    /// A resource type that the mapping does not place, with
    /// [`Unknown::Refuse`].
    UnmappedType(String),
    /// A portion holds a resource that the mapping places elsewhere (with
    /// [`Reassembler::new`]'s placement check).
    Misfiled {
        /// The resource's type.
        resource_type: String,
        /// The portion it came in.
        label: String,
    },
    /// Opened portions do not come from the same Bundle (their Bundle
    /// fields differ), or a single resource was added twice.
    Inconsistent(String),
    /// A portion comes from another record than the portions added before
    /// (another record id or creation time in its header): another Bundle,
    /// or another patient's.
    OtherRecord,
    /// A portion is sealed under none of the portion public keys the
    /// reader expects ([`Reassembler::expect_keys`]).
    OtherPatient,
    /// A portion of this label (or, per resource, this very sealed object)
    /// was already added: a second version is not merged in.
    DuplicatePortion {
        /// The portion's label.
        label: String,
    },
    /// A Bundle inside a Bundle, which the mapping refuses
    /// ([`Nested::Refuse`]).
    NestedBundle,
    /// No portion was added to a [`Reassembler`].
    Empty,
    /// No public key was given for a portion that has resources.
    NoKey(String),
    /// A Consent is not one this mapping can express, or does not carry a
    /// signed grant.
    Consent(&'static str),
    /// A Consent differs from what [`consent_from_grant`] writes for the
    /// signed grant it carries, at this JSON pointer (the first difference;
    /// host fields on the allowlist aside).
    ConsentDiffers {
        /// The JSON pointer of the first difference (field names and
        /// indices only).
        path: String,
    },
    /// A Consent carries a signed revocation of its own grant: whatever
    /// its status says, it is not a live grant.
    ConsentRevoked,
    /// A Consent restricts access in ways a signed grant cannot express;
    /// each restriction is named. Signing a grant from it would give more
    /// than the Consent says.
    Inexpressible(Vec<&'static str>),
    /// A date is not a FHIR date or dateTime this code reads.
    BadDate,
    /// The research export was asked for less than 2-anonymity.
    KTooSmall(usize),
    /// The records cannot be made k-anonymous for the requested k (there
    /// are fewer records than k): nothing is emitted.
    KUnreachable {
        /// The k asked for.
        requested: usize,
        /// The largest k these records allow.
        achievable: usize,
    },
    /// A cryptographic operation or a sesphr encoding failed.
    Crypto(crate::Error),
}

impl fmt::Display for FhirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "not JSON: {e}"),
            Self::NotFhir { what } => write!(f, "not FHIR R4 as expected: {what}"),
            Self::UnmappedType(t) => write!(f, "resource type {t} is not mapped to a portion"),
            Self::Misfiled {
                resource_type,
                label,
            } => write!(
                f,
                "a resource of type {resource_type} does not belong in portion {label}"
            ),
            Self::Inconsistent(w) => write!(f, "portions do not fit together: {w}"),
            Self::OtherRecord => {
                f.write_str("the portion belongs to another record than those added before")
            }
            Self::OtherPatient => {
                f.write_str("the portion is sealed under none of the patient's portion keys")
            }
            Self::DuplicatePortion { label } => {
                write!(f, "a portion {label} of this record was already added")
            }
            Self::NestedBundle => {
                f.write_str("a Bundle inside a Bundle, which the mapping refuses")
            }
            Self::Empty => f.write_str("no portion to reassemble"),
            Self::NoKey(l) => write!(f, "no public key for portion {l}"),
            Self::Consent(w) => write!(f, "consent: {w}"),
            Self::ConsentDiffers { path } => write!(
                f,
                "consent: the Consent differs from the signed grant it carries at {path}"
            ),
            Self::ConsentRevoked => {
                f.write_str("consent: the Consent carries a signed revocation of its grant")
            }
            Self::Inexpressible(what) => write!(
                f,
                "consent: restrictions a signed grant cannot express: {}",
                what.join(", ")
            ),
            Self::BadDate => f.write_str("not a FHIR date or dateTime"),
            Self::KTooSmall(k) => write!(f, "k = {k}: k-anonymity needs k of 2 or more"),
            Self::KUnreachable {
                requested,
                achievable,
            } => write!(
                f,
                "k = {requested} cannot be reached: these records allow at most k = {achievable}"
            ),
            Self::Crypto(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FhirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Crypto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::Error> for FhirError {
    fn from(e: crate::Error) -> Self {
        Self::Crypto(e)
    }
}

impl From<serde_json::Error> for FhirError {
    fn from(e: serde_json::Error) -> Self {
        // Line and column only: serde_json's messages can quote input.
        Self::Json(format!(
            "{:?} error at line {}, column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}

/// A FHIR result.
pub type FhirResult<T> = core::result::Result<T, FhirError>;

/// `resourceType` of a JSON resource.
fn resource_type(resource: &Value) -> FhirResult<&str> {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(FhirError::NotFhir {
            what: "a resource without resourceType",
        })
}

/// A CodeableConcept with one coding.
fn concept(system: &str, code: &str, display: &str) -> Value {
    serde_json::json!({"coding": [{"system": system, "code": code, "display": display}]})
}

/// A Coding.
fn coding(system: &str, code: &str, display: &str) -> Value {
    serde_json::json!({"system": system, "code": code, "display": display})
}

/// A logical reference to a sesphr identity.
fn identity_reference(id: &crate::Identity) -> Value {
    serde_json::json!({"identifier": {"system": IDENTITY_SYSTEM, "value": id.as_str()}})
}
