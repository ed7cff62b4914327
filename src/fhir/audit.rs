//! Disclosures as R4 AuditEvents (IHE BALP, privacy disclosure at source).

use serde_json::json;

use super::dates::instant;
use super::{IDENTITY_SYSTEM, RECORD_SYSTEM, Value, coding, concept, identity_reference};
use crate::Identity;
use crate::model::{Disclosure, Purpose, Role};

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// The SRS as the audit source: its name (`AuditEvent.source.site` and the
/// source agent's identifier) and the network address clients reach it at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSource {
    /// The SRS's name, as an identifier value of system
    /// [`IDENTITY_SYSTEM`].
    pub name: String,
    /// Its URL or host name (`agent.network.address`, type `5`: URI).
    pub address: String,
}

/// One disclosure (a re-encryption the SRS served, from
/// [`crate::srs::Srs::disclosures`]) as an R4 AuditEvent following IHE
/// BALP's "privacy disclosure at source" pattern
/// (`IHE.BasicAudit.PrivacyDisclosure.Source`):
///
/// - `type` DICOM 110106 Export, `subtype` ISO 21089 `disclose`, `action`
///   `R`, `outcome` `0`, `recorded` the SRS's time of the re-encryption;
/// - `purposeOfEvent` the HL7 PurposeOfUse of the request (treatment
///   `TREAT`, payment `HPAYMT`, operations `HOPERAT`, research `HRESCH`,
///   emergency `ETREAT`, plus `BTG` under a break-glass grant); the purpose
///   "other" has no PurposeOfUse code and is sent as text;
/// - agents: the SRS as source (DICOM 110153, with its network address) and
///   the user as recipient (DICOM 110152 and `IRCP`, requestor, with their
///   role);
/// - entities: the patient (type 1 person, role 1 patient) and the record
///   portion disclosed (type 2 system object, role 4 domain resource,
///   identifier `record id/label` of system [`RECORD_SYSTEM`]), with the
///   audit sequence number and the user's justification as details.
pub fn disclosure_audit_event(
    disclosure: &Disclosure,
    patient: &Identity,
    source: &AuditSource,
) -> Value {
    let d = disclosure;
    let srs = json!({"identifier": {"system": IDENTITY_SYSTEM, "value": source.name}});
    let mut purpose: Vec<Value> = match d.purpose {
        Some(Purpose::Treatment) => vec![concept(ACT_REASON, "TREAT", "treatment")],
        Some(Purpose::Payment) => vec![concept(ACT_REASON, "HPAYMT", "healthcare payment")],
        Some(Purpose::Operations) => {
            vec![concept(ACT_REASON, "HOPERAT", "healthcare operations")]
        }
        Some(Purpose::Research) => vec![concept(ACT_REASON, "HRESCH", "healthcare research")],
        Some(Purpose::Emergency) => vec![concept(ACT_REASON, "ETREAT", "Emergency Treatment")],
        Some(Purpose::Other) => vec![json!({"text": "other"})],
        None => Vec::new(),
    };
    if d.emergency {
        purpose.push(concept(ACT_REASON, "BTG", "break the glass"));
    }
    let mut recipient = json!({
        "type": {"coding": [
            coding(DCM, "110152", "Destination Role ID"),
            coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP", "information recipient"),
        ]},
        "who": identity_reference(&d.user),
        "requestor": true,
    });
    if let Some(role) = &d.role {
        recipient["role"] =
            json!([{"coding": [{"system": "urn:sesphr:role", "code": Role::as_str(role)}]}]);
    }
    let mut details = vec![json!({"type": "sesphr-audit-seq", "valueString": d.seq.to_string()})];
    if let Some(j) = &d.justification {
        details.push(json!({"type": "justification", "valueString": j}));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("sesphr-disclosure-{}", d.seq),
        "meta": {"profile": ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"]},
        "type": coding(DCM, "110106", "Export"),
        "subtype": [coding("http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "disclose", "Disclose Record Lifecycle Event")],
        "action": "R",
        "recorded": instant(d.time),
        "outcome": "0",
        "agent": [
            {
                "type": concept(DCM, "110153", "Source Role ID"),
                "who": srs,
                "requestor": false,
                "network": {"address": source.address, "type": "5"},
            },
            recipient,
        ],
        "source": {
            "site": source.name,
            "observer": srs,
            "type": [coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")],
        },
        "entity": [
            {
                "what": identity_reference(patient),
                "type": coding(ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient"),
            },
            {
                "what": {"identifier": {"system": RECORD_SYSTEM, "value": format!("{}/{}", d.record_id, d.label)}},
                "type": coding(ENTITY_TYPE, "2", "System Object"),
                "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
                "name": d.label.as_str(),
                "detail": details,
            },
        ],
    });
    if !purpose.is_empty() {
        event["purposeOfEvent"] = Value::Array(purpose);
    }
    event
}
