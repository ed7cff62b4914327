//! Grants as R4 `Consent` resources and SMART v2 scopes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::VerifyingKey;
use serde_json::json;

use super::dates::{instant, parse_instant};
use super::{
    FhirError, FhirResult, IDENTITY_SYSTEM, PORTION_SYSTEM, PortionMap, SIGNED_GRANT_CONTENT_TYPE,
    Value, coding, concept, identity_reference,
};
use crate::consent::{GrantOptions, SignedGrant, SignedRevocation};
use crate::encoding::hex;
use crate::model::Scope;
use crate::{Identity, PortionLabel};

const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// What a Consent says, in sesphr's terms: who permits whom to read which
/// portions, when, and which records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentTerms {
    /// The patient (`Consent.patient.identifier`, system
    /// [`IDENTITY_SYSTEM`]).
    pub patient: Identity,
    /// The recipient (`provision.actor` with role `IRCP`).
    pub user: Identity,
    /// The portions (`provision.code` of system [`PORTION_SYSTEM`]; failing
    /// that, the portions whose type-only rules name a
    /// `provision.class`).
    pub labels: Vec<PortionLabel>,
    /// Records created at or after this time only
    /// (`provision.dataPeriod.start`); `None`: all records.
    pub since: Option<u64>,
    /// When access ends (`provision.period.end`).
    pub expiry: Option<u64>,
    /// A break-glass grant (`provision.purpose` `ETREAT`).
    pub emergency: bool,
}

impl ConsentTerms {
    /// The terms of a signed grant.
    pub fn of_grant(grant: &SignedGrant) -> Self {
        Self {
            patient: grant.patient().clone(),
            user: grant.user().clone(),
            labels: vec![grant.label().clone()],
            since: match grant.scope() {
                Scope::AllRecords => None,
                Scope::Since(t) => Some(t),
            },
            expiry: grant.expiry(),
            emergency: grant.emergency().is_some(),
        }
    }

    /// Reads an R4 Consent (one drafted by an EHR, say) as terms the
    /// patient's client can sign: an `active` Consent with a `permit`
    /// provision, the patient and one recipient named by sesphr identity.
    ///
    /// # Errors
    /// [`FhirError::Consent`] for a Consent that is not such a grant (not
    /// active, a deny, no or several recipients, no portion);
    /// [`FhirError::BadDate`] for an unreadable period.
    pub fn from_consent(consent: &Value, map: &PortionMap) -> FhirResult<Self> {
        let field = |what| FhirError::Consent(what);
        if consent.get("resourceType") != Some(&json!("Consent")) {
            return Err(field("not a Consent"));
        }
        if consent.get("status") != Some(&json!("active")) {
            return Err(field("status is not active"));
        }
        let patient =
            identity_of(consent.get("patient")).ok_or(field("patient is not a sesphr identity"))?;
        let p = consent.get("provision").ok_or(field("no provision"))?;
        if p.get("type") != Some(&json!("permit")) {
            return Err(field("the provision is not a permit"));
        }
        let actors: Vec<&Value> = p
            .get("actor")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let [actor] = actors.as_slice() else {
            return Err(field("the provision must name exactly one recipient"));
        };
        let user = identity_of(actor.get("reference"))
            .ok_or(field("the recipient is not a sesphr identity"))?;
        let mut labels: Vec<PortionLabel> = Vec::new();
        for code in p
            .get("code")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for c in code
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if c.get("system") == Some(&json!(PORTION_SYSTEM)) {
                    let l = c
                        .get("code")
                        .and_then(Value::as_str)
                        .and_then(|s| PortionLabel::new(s).ok())
                        .ok_or(field("a portion code is not a label"))?;
                    if !labels.contains(&l) {
                        labels.push(l);
                    }
                }
            }
        }
        if labels.is_empty() {
            for class in p
                .get("class")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(t) = class.get("code").and_then(Value::as_str) else {
                    continue;
                };
                for l in map.labels() {
                    if map.rules_for(&l).contains(&(t, None)) && !labels.contains(&l) {
                        labels.push(l);
                    }
                }
            }
        }
        if labels.is_empty() {
            return Err(field("the provision names no portion"));
        }
        let time = |v: Option<&Value>| -> FhirResult<Option<u64>> {
            v.and_then(Value::as_str).map(parse_instant).transpose()
        };
        let purposes: Vec<&str> = p
            .get("purpose")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("code").and_then(Value::as_str))
            .collect();
        Ok(Self {
            patient,
            user,
            labels,
            since: time(p.get("dataPeriod").and_then(|d| d.get("start")))?,
            expiry: time(p.get("period").and_then(|d| d.get("end")))?,
            emergency: purposes.contains(&"ETREAT"),
        })
    }

    /// The grant options these terms ask for (scope and expiry; a
    /// break-glass grant also needs [`GrantOptions::emergency`] set to the
    /// role).
    pub fn grant_options(&self) -> GrantOptions {
        GrantOptions {
            scope: self.since.map_or(Scope::AllRecords, Scope::Since),
            expiry: self.expiry,
            ..GrantOptions::default()
        }
    }
}

fn identity_of(reference: Option<&Value>) -> Option<Identity> {
    let id = reference?.get("identifier")?;
    if id.get("system")? != IDENTITY_SYSTEM {
        return None;
    }
    Identity::new(id.get("value")?.as_str()?).ok()
}

/// A signed grant as an R4 Consent: `active`, scope `patient-privacy`,
/// category LOINC 59284-0, the patient (and performer) and the recipient
/// as [`IDENTITY_SYSTEM`] identifiers, `dateTime` when it was signed, a
/// `permit` provision with the recipient as actor (`IRCP`), `period` from
/// signing to expiry, `dataPeriod.start` for a grant of records since a
/// date, `class` the resource types of the portion's rules and `code` the
/// portion label; `purpose` `ETREAT` and `BTG` for break-glass. The signed
/// grant itself travels in `sourceAttachment` (base64), so that
/// [`grant_from_consent`] can check the Consent was not edited.
pub fn consent_from_grant(grant: &SignedGrant, map: &PortionMap) -> Value {
    let label = grant.label();
    let mut classes: Vec<Value> = Vec::new();
    for (t, _) in map.rules_for(label) {
        let c = json!({"system": "http://hl7.org/fhir/resource-types", "code": t});
        if !classes.contains(&c) {
            classes.push(c);
        }
    }
    let mut period = json!({"start": instant(grant.issued_at())});
    if let Some(e) = grant.expiry() {
        period["end"] = json!(instant(e));
    }
    let mut provision = json!({
        "type": "permit",
        "period": period,
        "actor": [{
            "role": concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", "information recipient"),
            "reference": identity_reference(grant.user()),
        }],
        "class": classes,
        "code": [concept(PORTION_SYSTEM, label.as_str(), label.as_str())],
    });
    if let Scope::Since(t) = grant.scope() {
        provision["dataPeriod"] = json!({"start": instant(t)});
    }
    if grant.emergency().is_some() {
        provision["purpose"] = json!([
            coding(ACT_REASON, "ETREAT", "Emergency Treatment"),
            coding(ACT_REASON, "BTG", "break the glass"),
        ]);
    }
    json!({
        "resourceType": "Consent",
        "id": format!("sesphr-grant-{}", hex(&grant.nonce())),
        "status": "active",
        "scope": concept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", "Privacy Consent"),
        "category": [concept("http://loinc.org", "59284-0", "Patient Consent")],
        "patient": identity_reference(grant.patient()),
        "dateTime": instant(grant.issued_at()),
        "performer": [identity_reference(grant.patient())],
        "sourceAttachment": {
            "contentType": SIGNED_GRANT_CONTENT_TYPE,
            "data": BASE64.encode(grant.to_bytes()),
        },
        "policyRule": concept("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in"),
        "provision": provision,
    })
}

/// The signed grant a Consent from [`consent_from_grant`] carries, after
/// checking its signature with the patient's consent key and that every
/// field [`consent_from_grant`] writes still says what the grant says
/// (fields a host added, such as `meta` or `text`, are not compared).
///
/// # Errors
/// [`FhirError::Consent`] if there is no signed grant, or the Consent's
/// terms differ from it; [`FhirError::Crypto`] if the grant does not decode
/// or its signature does not verify.
pub fn grant_from_consent(
    consent: &Value,
    consent_key: &VerifyingKey,
    map: &PortionMap,
) -> FhirResult<SignedGrant> {
    let att = consent
        .get("sourceAttachment")
        .ok_or(FhirError::Consent("no signed grant attached"))?;
    if att.get("contentType") != Some(&json!(SIGNED_GRANT_CONTENT_TYPE)) {
        return Err(FhirError::Consent("the attachment is not a signed grant"));
    }
    let bytes = att
        .get("data")
        .and_then(Value::as_str)
        .and_then(|d| BASE64.decode(d).ok())
        .ok_or(FhirError::Consent("the attachment is not base64"))?;
    let grant = SignedGrant::from_bytes(&bytes)?;
    grant.verify(consent_key)?;
    let expected = consent_from_grant(&grant, map);
    let Value::Object(fields) = &expected else {
        return Err(FhirError::Consent("not a Consent"));
    };
    for (k, v) in fields {
        if consent.get(k) != Some(v) {
            return Err(FhirError::Consent(
                "the Consent's terms differ from the signed grant it carries",
            ));
        }
    }
    Ok(grant)
}

/// The Consent of a revoked grant: the Consent from [`consent_from_grant`]
/// (checked as [`grant_from_consent`] does) with `status` `inactive`,
/// `provision.period.end` the time of the revocation, and the signed
/// revocation itself in an extension (`urn:sesphr:signed-revocation`,
/// base64), so that the patient's systems show what the SRS already
/// enforces. [`grant_from_consent`] refuses the result: it is no longer a
/// grant.
///
/// # Errors
/// As [`grant_from_consent`] for the Consent; [`FhirError::Crypto`] if the
/// revocation's signature does not verify with `consent_key`;
/// [`FhirError::Consent`] if it revokes another patient's, portion's or
/// user's grant, or is dated before the grant.
pub fn revoke_consent(
    consent: &Value,
    revocation: &SignedRevocation,
    consent_key: &VerifyingKey,
    map: &PortionMap,
) -> FhirResult<Value> {
    let grant = grant_from_consent(consent, consent_key, map)?;
    revocation.verify(consent_key)?;
    if revocation.patient() != grant.patient()
        || revocation.label() != grant.label()
        || revocation.user() != grant.user()
        || revocation.issued_at() < grant.issued_at()
    {
        return Err(FhirError::Consent("the revocation is not for this grant"));
    }
    let mut out = consent.clone();
    out["status"] = json!("inactive");
    out["provision"]["period"]["end"] = json!(instant(revocation.issued_at()));
    let extension = json!({
        "url": SIGNED_REVOCATION_EXTENSION,
        "valueBase64Binary": BASE64.encode(revocation.to_bytes()),
    });
    match out.get_mut("extension").and_then(Value::as_array_mut) {
        Some(list) => list.push(extension),
        None => out["extension"] = json!([extension]),
    }
    Ok(out)
}

/// The extension URL of a signed revocation on a revoked Consent.
pub const SIGNED_REVOCATION_EXTENSION: &str = "urn:sesphr:signed-revocation";

/// The SMART App Launch v2 scopes that read what a grant of `label` gives
/// (`patient/Observation.rs?category=laboratory`, …): one per rule of the
/// mapping that puts resources into `label`, with the category for
/// category rules.
///
/// A type-only rule of a type whose categories also go elsewhere (the
/// default mapping's catch-all Observation and DiagnosticReport rules of
/// `medical`) has no exact scope (SMART scopes cannot exclude a category)
/// and is left out: the scopes never read more than the portion.
/// Directory types copied in with referrers are not listed either.
pub fn smart_scopes(label: &PortionLabel, map: &PortionMap) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (t, category) in map.rules_for(label) {
        let s = match category {
            Some(c) => format!("patient/{t}.rs?category={c}"),
            None if map.type_split_elsewhere(t, label) => continue,
            None => format!("patient/{t}.rs"),
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}
