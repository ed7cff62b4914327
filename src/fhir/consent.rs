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

    /// [`ConsentTerms::from_consent_at`] at the system clock's time.
    ///
    /// # Errors
    /// As [`ConsentTerms::from_consent_at`].
    pub fn from_consent(consent: &Value, map: &PortionMap) -> FhirResult<Self> {
        Self::from_consent_at(consent, map, crate::unix_now())
    }

    /// Reads an R4 Consent (one drafted by an EHR, say) as terms the
    /// patient's client can sign, at time `now` (Unix seconds): an `active`
    /// Consent with one `permit` provision, the patient and one recipient
    /// (role `IRCP`) named by sesphr identity, and the portions as
    /// `provision.code` of system [`PORTION_SYSTEM`] or, failing that, as
    /// the portions all of whose resource types `provision.class` names.
    ///
    /// Nothing the Consent says is dropped: a grant signed from the terms
    /// is never broader than the Consent. A restriction a grant cannot
    /// express refuses the whole Consent, each one named
    /// ([`FhirError::Inexpressible`]): a `modifierExtension` anywhere;
    /// `scope` other than `patient-privacy`; `policy`; `policyRule` other
    /// than `OPTIN`; nested provisions; `provision.data`;
    /// `provision.dataPeriod.end`; `provision.period.start` after `now`;
    /// `provision.period.end` not after `now`; `provision.securityLabel`;
    /// `provision.action` other than `access`; `provision.purpose` other
    /// than `ETREAT` (with `BTG`), the break-glass grant; an actor of
    /// another role than `IRCP`; `provision.code` of another system;
    /// `provision.class` that leaves out resource types of a portion.
    ///
    /// # Errors
    /// [`FhirError::Consent`] for a Consent that is not such a grant (not
    /// active, a deny, no or several recipients, no portion);
    /// [`FhirError::Inexpressible`]; [`FhirError::BadDate`] for an
    /// unreadable period.
    pub fn from_consent_at(consent: &Value, map: &PortionMap, now: u64) -> FhirResult<Self> {
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
        let mut cannot: Vec<&'static str> = Vec::new();
        let codes_of = |v: Option<&Value>| -> Vec<String> {
            let list: Vec<&Value> = match v {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(one @ Value::Object(_)) => vec![one],
                _ => Vec::new(),
            };
            let mut out = Vec::new();
            for c in list {
                // A Coding, or a CodeableConcept's codings.
                if let Some(code) = c.get("code").and_then(Value::as_str) {
                    out.push(code.to_owned());
                }
                for coding in c
                    .get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(code) = coding.get("code").and_then(Value::as_str) {
                        out.push(code.to_owned());
                    }
                }
            }
            out
        };
        if has_modifier_extension(consent) {
            cannot.push("modifierExtension");
        }
        if let Some(scope) = consent.get("scope")
            && !codes_of(Some(scope)).iter().any(|c| c == "patient-privacy")
        {
            cannot.push("scope other than patient-privacy");
        }
        if consent.get("policy").is_some() {
            cannot.push("policy");
        }
        if consent.get("policyRule").is_some() && codes_of(consent.get("policyRule")) != ["OPTIN"] {
            cannot.push("policyRule other than OPTIN");
        }
        if p.get("provision").is_some() {
            cannot.push("nested provisions");
        }
        if p.get("data").is_some() {
            cannot.push("provision.data");
        }
        if p.get("dataPeriod").and_then(|d| d.get("end")).is_some() {
            cannot.push("provision.dataPeriod.end");
        }
        let time = |v: Option<&Value>| -> FhirResult<Option<u64>> {
            match v {
                None => Ok(None),
                Some(Value::String(s)) => parse_instant(s).map(Some),
                Some(_) => Err(FhirError::BadDate),
            }
        };
        let period = p.get("period");
        if time(period.and_then(|d| d.get("start")))?.is_some_and(|t| t > now) {
            cannot.push("provision.period.start after now");
        }
        let expiry = time(period.and_then(|d| d.get("end")))?;
        if expiry.is_some_and(|t| t <= now) {
            cannot.push("provision.period.end not after now");
        }
        if p.get("securityLabel").is_some() {
            cannot.push("provision.securityLabel");
        }
        if p.get("action").is_some() && codes_of(p.get("action")).iter().any(|c| c != "access") {
            cannot.push("provision.action other than access");
        }
        let purposes = codes_of(p.get("purpose"));
        let emergency = purposes.iter().any(|c| c == "ETREAT");
        if purposes
            .iter()
            .any(|c| !(c == "ETREAT" || (c == "BTG" && emergency)))
        {
            cannot.push("provision.purpose other than ETREAT and BTG");
        }
        let actors: Vec<&Value> = match p.get("actor") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        };
        let mut recipients = Vec::new();
        for a in actors {
            if codes_of(a.get("role")) == ["IRCP"] {
                recipients.push(a);
            } else {
                cannot.push("provision.actor of a role other than IRCP");
            }
        }
        let mut labels: Vec<PortionLabel> = Vec::new();
        let mut codes_named = false;
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
                codes_named = true;
                if c.get("system") == Some(&json!(PORTION_SYSTEM)) {
                    let l = c
                        .get("code")
                        .and_then(Value::as_str)
                        .and_then(|s| PortionLabel::new(s).ok())
                        .ok_or(field("a portion code is not a label"))?;
                    if !labels.contains(&l) {
                        labels.push(l);
                    }
                } else {
                    cannot.push("provision.code of another system than urn:sesphr:portion");
                }
            }
        }
        if codes_named && labels.is_empty() {
            // Codes, none of them a portion: nothing may be granted from them.
            cannot.push("provision.code of another system than urn:sesphr:portion");
        }
        let classes: Option<Vec<String>> = p.get("class").map(|c| codes_of(Some(c)));
        let whole = |l: &PortionLabel, classes: &[String]| {
            map.types_of(l)
                .iter()
                .all(|t| classes.iter().any(|c| c == t))
        };
        match &classes {
            Some(classes) if labels.is_empty() && !codes_named => {
                labels = map
                    .labels()
                    .into_iter()
                    .filter(|l| !map.types_of(l).is_empty() && whole(l, classes))
                    .collect();
                if labels.is_empty() && !classes.is_empty() {
                    cannot.push("provision.class that names no whole portion");
                }
            }
            Some(classes) if labels.iter().any(|l| !whole(l, classes)) => {
                cannot.push("provision.class that leaves out resource types of a portion");
            }
            _ => {}
        }
        cannot.dedup();
        if !cannot.is_empty() {
            return Err(FhirError::Inexpressible(cannot));
        }
        let [actor] = recipients.as_slice() else {
            return Err(field("the provision must name exactly one recipient"));
        };
        let user = identity_of(actor.get("reference"))
            .ok_or(field("the recipient is not a sesphr identity"))?;
        if labels.is_empty() {
            return Err(field("the provision names no portion"));
        }
        Ok(Self {
            patient,
            user,
            labels,
            since: time(p.get("dataPeriod").and_then(|d| d.get("start")))?,
            expiry,
            emergency,
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

/// Whether a `modifierExtension` appears anywhere in `v`.
fn has_modifier_extension(v: &Value) -> bool {
    match v {
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| k == "modifierExtension" || has_modifier_extension(x)),
        Value::Array(a) => a.iter().any(has_modifier_extension),
        _ => false,
    }
}

/// `&`, `<`, `>`, `"` escaped for XHTML.
fn xhtml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The narrative (`Consent.text`, status `generated`) that
/// [`consent_from_grant`] writes for `grant`, or [`revoke_consent`] for
/// `grant` revoked at `revoked_at`: one XHTML paragraph stating the terms.
/// A Consent's `text` is accepted only if it is exactly this, or absent.
pub fn consent_narrative(grant: &SignedGrant, revoked_at: Option<u64>) -> Value {
    let mut p = format!(
        "{} permits {} to read the portion {} of their records",
        xhtml(grant.patient().as_str()),
        xhtml(grant.user().as_str()),
        xhtml(grant.label().as_str()),
    );
    if let Scope::Since(t) = grant.scope() {
        p += &format!(" created since {}", instant(t));
    }
    p += &format!(", from {}", instant(grant.issued_at()));
    if let Some(e) = grant.expiry() {
        p += &format!(" until {}", instant(e));
    }
    if grant.emergency().is_some() {
        p += ", for emergency treatment (break the glass)";
    }
    p.push('.');
    if let Some(r) = revoked_at {
        p += &format!(" Revoked at {}.", instant(r));
    }
    json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{p}</p></div>"),
    })
}

/// A signed grant as an R4 Consent: `active`, scope `patient-privacy`,
/// category LOINC 59284-0, the patient (and performer) and the recipient
/// as [`IDENTITY_SYSTEM`] identifiers, `dateTime` when it was signed, a
/// `permit` provision with the recipient as actor (`IRCP`), `period` from
/// signing to expiry, `dataPeriod.start` for a grant of records since a
/// date, `class` the resource types of the portion's rules and `code` the
/// portion label; `purpose` `ETREAT` and `BTG` for break-glass; `text` the
/// [`consent_narrative`]. The signed grant itself travels in
/// `sourceAttachment` (base64), so that [`grant_from_consent`] can check
/// the Consent says exactly what the patient signed.
pub fn consent_from_grant(grant: &SignedGrant, map: &PortionMap) -> Value {
    written(grant, map, None)
}

/// The Consent [`consent_from_grant`] writes, or (with a revocation) the
/// one [`revoke_consent`] makes of it.
fn written(grant: &SignedGrant, map: &PortionMap, revocation: Option<&SignedRevocation>) -> Value {
    let label = grant.label();
    let mut classes: Vec<Value> = Vec::new();
    for t in map.types_of(label) {
        classes.push(json!({"system": "http://hl7.org/fhir/resource-types", "code": t}));
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
    let mut out = json!({
        "resourceType": "Consent",
        "id": format!("sesphr-grant-{}", hex(&grant.nonce())),
        "text": consent_narrative(grant, revocation.map(SignedRevocation::issued_at)),
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
    });
    if let Some(r) = revocation {
        out["status"] = json!("inactive");
        out["provision"]["period"]["end"] = json!(instant(r.issued_at()));
        out["extension"] = json!([{
            "url": SIGNED_REVOCATION_EXTENSION,
            "valueBase64Binary": BASE64.encode(r.to_bytes()),
        }]);
    }
    out
}

/// Whether `id` is a FHIR `id`: 1 to 64 of `A–Z a–z 0–9 - .`.
fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Checks `consent` is exactly `expected` but for the host fields on the
/// allowlist: `id` (any FHIR id: a server assigns its own),
/// `meta.versionId` and `meta.lastUpdated` (strings; no other `meta`
/// field), and `text` if absent (it must otherwise be the generated one,
/// which `expected` holds). Returns the JSON pointer of the first
/// difference.
fn check_written(consent: &Value, expected: &Value) -> FhirResult<()> {
    let differs = |path: String| Err(FhirError::ConsentDiffers { path });
    let (Value::Object(got), Value::Object(want)) = (consent, expected) else {
        return differs(String::new());
    };
    for (k, v) in got {
        let path = format!("/{}", pointer_token(k));
        match (k.as_str(), want.get(k)) {
            ("id", _) => {
                if !v.as_str().is_some_and(is_fhir_id) {
                    return differs(path);
                }
            }
            ("meta", None) => {
                let Value::Object(meta) = v else {
                    return differs(path);
                };
                for (m, x) in meta {
                    if !matches!(m.as_str(), "versionId" | "lastUpdated") || !x.is_string() {
                        return differs(format!("{path}/{}", pointer_token(m)));
                    }
                }
            }
            (_, Some(w)) => first_difference(v, w, &path).map_or(Ok(()), differs)?,
            (_, None) => return differs(path),
        }
    }
    for k in want.keys() {
        if !got.contains_key(k) && !matches!(k.as_str(), "id" | "text") {
            return differs(format!("/{}", pointer_token(k)));
        }
    }
    Ok(())
}

/// A JSON pointer reference token (RFC 6901).
fn pointer_token(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer (under `path`) of the first place `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let p = format!("{path}/{}", pointer_token(k));
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &p) {
                            return Some(d);
                        }
                    }
                    None => return Some(p),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}/{}", pointer_token(k)))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(v, w, &format!("{path}/{i}")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}/{}", x.len().min(y.len())))
        }
        _ => (a != b).then(|| path.to_owned()),
    }
}

/// The signed grant a Consent carries, decoded and verified.
fn carried_grant(consent: &Value, consent_key: &VerifyingKey) -> FhirResult<SignedGrant> {
    if consent.get("resourceType") != Some(&json!("Consent")) {
        return Err(FhirError::Consent("not a Consent"));
    }
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
    Ok(grant)
}

/// The signed revocations of `grant` a Consent carries (verified, and each
/// revoking this grant).
fn carried_revocations(
    consent: &Value,
    grant: &SignedGrant,
    consent_key: &VerifyingKey,
) -> Vec<SignedRevocation> {
    consent
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|x| x.get("url") == Some(&json!(SIGNED_REVOCATION_EXTENSION)))
        .filter_map(|x| x.get("valueBase64Binary").and_then(Value::as_str))
        .filter_map(|d| BASE64.decode(d).ok())
        .filter_map(|b| SignedRevocation::from_bytes(&b).ok())
        .filter(|r| r.verify(consent_key).is_ok() && revokes(r, grant))
        .collect()
}

/// Whether `r` revokes `grant`: the same patient, portion and user, and
/// not dated before it.
fn revokes(r: &SignedRevocation, grant: &SignedGrant) -> bool {
    r.patient() == grant.patient()
        && r.label() == grant.label()
        && r.user() == grant.user()
        && r.issued_at() >= grant.issued_at()
}

/// The live signed grant a Consent carries.
///
/// The Consent is accepted only if it is exactly what
/// [`consent_from_grant`] writes for the grant it carries, but for host
/// fields that cannot change its meaning: `id` (any FHIR id),
/// `meta.versionId` and `meta.lastUpdated` (no other `meta` field), and
/// `text`, which may be absent but otherwise must be the generated
/// [`consent_narrative`]. Any other field added, removed or changed at any
/// depth refuses it, a `modifierExtension` anywhere included. A Consent
/// carrying a signed revocation of its grant (as [`revoke_consent`]
/// writes) is never live, whatever its status says.
///
/// # Errors
/// [`FhirError::Consent`] if there is no signed grant or there is a
/// `modifierExtension`; [`FhirError::ConsentRevoked`];
/// [`FhirError::ConsentDiffers`] with the first differing field;
/// [`FhirError::Crypto`] if the grant does not decode or its signature does
/// not verify.
pub fn grant_from_consent(
    consent: &Value,
    consent_key: &VerifyingKey,
    map: &PortionMap,
) -> FhirResult<SignedGrant> {
    let grant = carried_grant(consent, consent_key)?;
    if !carried_revocations(consent, &grant, consent_key).is_empty() {
        return Err(FhirError::ConsentRevoked);
    }
    if has_modifier_extension(consent) {
        return Err(FhirError::Consent(
            "a modifierExtension, which a reader must not ignore",
        ));
    }
    check_written(consent, &written(&grant, map, None))?;
    Ok(grant)
}

/// The signed grant and signed revocation a revoked Consent (from
/// [`revoke_consent`]) carries, after checking the Consent is exactly what
/// [`revoke_consent`] writes for them (host fields as
/// [`grant_from_consent`] allows).
///
/// # Errors
/// As [`grant_from_consent`]; [`FhirError::Consent`] if it carries no
/// valid revocation of its grant, or several.
pub fn revocation_from_consent(
    consent: &Value,
    consent_key: &VerifyingKey,
    map: &PortionMap,
) -> FhirResult<(SignedGrant, SignedRevocation)> {
    let grant = carried_grant(consent, consent_key)?;
    let mut revocations = carried_revocations(consent, &grant, consent_key);
    let (Some(revocation), None) = (revocations.pop(), revocations.pop()) else {
        return Err(FhirError::Consent(
            "the Consent does not carry exactly one revocation of its grant",
        ));
    };
    if has_modifier_extension(consent) {
        return Err(FhirError::Consent(
            "a modifierExtension, which a reader must not ignore",
        ));
    }
    check_written(consent, &written(&grant, map, Some(&revocation)))?;
    Ok((grant, revocation))
}

/// The Consent of a revoked grant: the Consent from [`consent_from_grant`]
/// (checked as [`grant_from_consent`] does, host fields kept) with
/// `status` `inactive`, `provision.period.end` the time of the revocation,
/// the narrative saying so (if it had one), and the signed revocation
/// itself in an extension (`urn:sesphr:signed-revocation`, base64), so
/// that the patient's systems show what the SRS already enforces.
/// [`grant_from_consent`] refuses the result ([`FhirError::ConsentRevoked`],
/// whatever its status is set to); [`revocation_from_consent`] reads it.
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
    if !revokes(revocation, &grant) {
        return Err(FhirError::Consent("the revocation is not for this grant"));
    }
    let revoked = written(&grant, map, Some(revocation));
    let mut out = consent.clone();
    for k in ["status", "provision", "extension"] {
        if let Some(v) = revoked.get(k) {
            out[k] = v.clone();
        }
    }
    if out.get("text").is_some()
        && let Some(t) = revoked.get("text")
    {
        out["text"] = t.clone();
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
