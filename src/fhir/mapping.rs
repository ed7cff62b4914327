//! Which portion a FHIR resource belongs to.

use super::{FhirError, FhirResult, Value, resource_type};
use crate::PortionLabel;

/// Where a resource goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Into this portion.
    Portion(PortionLabel),
    /// A directory resource outside the patient compartment (Practitioner,
    /// Organization, Location, …): a copy goes into every portion with a
    /// resource that refers to it (directly or through another directory
    /// resource), so that a reader of that portion can resolve the
    /// reference; one that nothing refers to goes into `unreferenced`.
    WithReferrers {
        /// The portion of a directory resource nothing refers to.
        unreferenced: PortionLabel,
    },
}

/// What happens to a resource type that no rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// It goes into this portion (and [`super::Split::defaulted`] lists it).
    Portion(PortionLabel),
    /// The split is refused with [`FhirError::UnmappedType`].
    Refuse,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    resource_type: String,
    category: Option<String>,
    placement: Placement,
}

/// The mapping from resource type and category to portion.
///
/// A resource's placement is, in this order: the rule for its type and one
/// of its category codes (`category[].coding[].code`, any system); the rule
/// for its type alone; the [`Unknown`] policy. Category codes are compared
/// exactly.
///
/// [`PortionMap::default`] is DESIGN.md §13's mapping:
///
/// | portion | resources |
/// |---|---|
/// | `personal` | Patient, RelatedPerson |
/// | `medical` | Condition, Encounter, EpisodeOfCare, Procedure, AllergyIntolerance, Immunization, CarePlan, CareTeam, Goal, FamilyMemberHistory, ClinicalImpression, DocumentReference, Composition, ServiceRequest, Device, Provenance; Observation of category vital-signs, social-history, exam, survey, activity, therapy, procedure, or none of the categories named here; DiagnosticReport of no lab or imaging category |
/// | `lab` | Observation `laboratory`; DiagnosticReport `LAB` (and its v2-0074 lab sections `CH`, `HM`, `MB`, `SP`, `CP`); Specimen |
/// | `prescription` | MedicationRequest, MedicationStatement, MedicationAdministration, MedicationDispense |
/// | `insurance` | Coverage, CoverageEligibilityRequest, CoverageEligibilityResponse, Claim, ClaimResponse, ExplanationOfBenefit, Account, Invoice |
/// | `imaging` | ImagingStudy, Media; Observation `imaging`; DiagnosticReport `RAD` and `IMG` |
/// | with referrers (else `medical`) | Practitioner, PractitionerRole, Organization, Location, HealthcareService, Endpoint, Substance |
/// | with referrers (else `prescription`) | Medication |
///
/// Any other type goes to `medical` ([`Unknown::Portion`]); use
/// [`PortionMap::unknown`] with [`Unknown::Refuse`] to refuse instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortionMap {
    rules: Vec<Rule>,
    unknown: Unknown,
}

fn label(s: &'static str) -> PortionLabel {
    PortionLabel::from_static(s)
}

impl Default for PortionMap {
    fn default() -> Self {
        let mut m = Self::empty(Unknown::Portion(label("medical")));
        let mut put = |types: &[&str], category: Option<&str>, l: &'static str| {
            for t in types {
                m.rules.push(Rule {
                    resource_type: (*t).to_owned(),
                    category: category.map(str::to_owned),
                    placement: Placement::Portion(label(l)),
                });
            }
        };
        put(&["Patient", "RelatedPerson"], None, "personal");
        put(
            &[
                "Condition",
                "Encounter",
                "EpisodeOfCare",
                "Procedure",
                "AllergyIntolerance",
                "Immunization",
                "CarePlan",
                "CareTeam",
                "Goal",
                "FamilyMemberHistory",
                "ClinicalImpression",
                "DocumentReference",
                "Composition",
                "ServiceRequest",
                "Device",
                "Provenance",
                "Observation",
                "DiagnosticReport",
            ],
            None,
            "medical",
        );
        for c in [
            "vital-signs",
            "social-history",
            "exam",
            "survey",
            "activity",
            "therapy",
            "procedure",
        ] {
            put(&["Observation"], Some(c), "medical");
        }
        put(&["Observation"], Some("laboratory"), "lab");
        for c in ["LAB", "CH", "HM", "MB", "SP", "CP"] {
            put(&["DiagnosticReport"], Some(c), "lab");
        }
        put(&["Specimen"], None, "lab");
        put(
            &[
                "MedicationRequest",
                "MedicationStatement",
                "MedicationAdministration",
                "MedicationDispense",
            ],
            None,
            "prescription",
        );
        put(
            &[
                "Coverage",
                "CoverageEligibilityRequest",
                "CoverageEligibilityResponse",
                "Claim",
                "ClaimResponse",
                "ExplanationOfBenefit",
                "Account",
                "Invoice",
            ],
            None,
            "insurance",
        );
        put(&["ImagingStudy", "Media"], None, "imaging");
        put(&["Observation"], Some("imaging"), "imaging");
        put(&["DiagnosticReport"], Some("RAD"), "imaging");
        put(&["DiagnosticReport"], Some("IMG"), "imaging");
        for t in [
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Location",
            "HealthcareService",
            "Endpoint",
            "Substance",
        ] {
            m = m.with_referrers(t, label("medical"));
        }
        m.with_referrers("Medication", label("prescription"))
    }
}

impl PortionMap {
    /// A mapping with no rules: every resource follows `unknown`.
    pub fn empty(unknown: Unknown) -> Self {
        Self {
            rules: Vec::new(),
            unknown,
        }
    }

    /// Adds (or replaces) the rule for `resource_type`, or for
    /// `resource_type` with a category code: its resources go to `label`.
    pub fn route(
        mut self,
        resource_type: &str,
        category: Option<&str>,
        label: PortionLabel,
    ) -> Self {
        self.set(resource_type, category, Placement::Portion(label));
        self
    }

    /// Makes `resource_type` a directory type: copied into the portions of
    /// the resources that refer to it, else into `unreferenced`.
    pub fn with_referrers(mut self, resource_type: &str, unreferenced: PortionLabel) -> Self {
        self.set(
            resource_type,
            None,
            Placement::WithReferrers { unreferenced },
        );
        self
    }

    /// Sets what happens to resource types no rule names.
    pub fn unknown(mut self, unknown: Unknown) -> Self {
        self.unknown = unknown;
        self
    }

    fn set(&mut self, resource_type: &str, category: Option<&str>, placement: Placement) {
        let category = category.map(str::to_owned);
        self.rules
            .retain(|r| !(r.resource_type == resource_type && r.category == category));
        self.rules.push(Rule {
            resource_type: resource_type.to_owned(),
            category,
            placement,
        });
    }

    /// Where `resource` goes, and whether it got there by the [`Unknown`]
    /// policy.
    ///
    /// # Errors
    /// [`FhirError::NotFhir`] without a `resourceType`;
    /// [`FhirError::UnmappedType`] for a type no rule names under
    /// [`Unknown::Refuse`].
    pub fn place(&self, resource: &Value) -> FhirResult<(Placement, bool)> {
        self.place_type(resource_type(resource)?, &category_codes(resource))
    }

    /// Where a resource of type `t` with category codes `codes` goes.
    pub(crate) fn place_type(&self, t: &str, codes: &[&str]) -> FhirResult<(Placement, bool)> {
        let by_category = self.rules.iter().find(|r| {
            r.resource_type == t && r.category.as_deref().is_some_and(|c| codes.contains(&c))
        });
        let by_type = || {
            self.rules
                .iter()
                .find(|r| r.resource_type == t && r.category.is_none())
        };
        match by_category.or_else(by_type) {
            Some(r) => Ok((r.placement.clone(), false)),
            None => match &self.unknown {
                Unknown::Portion(l) => Ok((Placement::Portion(l.clone()), true)),
                Unknown::Refuse => Err(FhirError::UnmappedType(t.to_owned())),
            },
        }
    }

    /// Every label the mapping can place a resource in, in the order of the
    /// rules (for the default mapping: personal, medical, lab,
    /// prescription, insurance, imaging). Reassembled Bundles list entries
    /// in this order.
    pub fn labels(&self) -> Vec<PortionLabel> {
        let mut out: Vec<PortionLabel> = Vec::new();
        let mut add = |l: &PortionLabel| {
            if !out.contains(l) {
                out.push(l.clone());
            }
        };
        for r in &self.rules {
            match &r.placement {
                Placement::Portion(l) => add(l),
                Placement::WithReferrers { unreferenced } => add(unreferenced),
            }
        }
        if let Unknown::Portion(l) = &self.unknown {
            add(l);
        }
        out
    }

    /// The rules that put resources into `label`: `(resource type,
    /// category)` pairs, in rule order. Directory types are not listed.
    pub fn rules_for(&self, label: &PortionLabel) -> Vec<(&str, Option<&str>)> {
        self.rules
            .iter()
            .filter(|r| r.placement == Placement::Portion(label.clone()))
            .map(|r| (r.resource_type.as_str(), r.category.as_deref()))
            .collect()
    }

    /// Whether `resource_type` has a rule with a category that puts it
    /// somewhere other than `label`.
    pub(crate) fn type_split_elsewhere(&self, resource_type: &str, label: &PortionLabel) -> bool {
        self.rules.iter().any(|r| {
            r.resource_type == resource_type
                && r.category.is_some()
                && r.placement != Placement::Portion(label.clone())
        })
    }
}

/// `category[].coding[].code` (a list of CodeableConcepts, or one).
pub(crate) fn category_codes(resource: &Value) -> Vec<&str> {
    let concepts: Vec<&Value> = match resource.get("category") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(c @ Value::Object(_)) => vec![c],
        _ => Vec::new(),
    };
    concepts
        .into_iter()
        .filter_map(|c| c.get("coding").and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn category_rules_win_over_type_rules_and_unknown_types_follow_the_policy() -> FhirResult<()> {
        let m = PortionMap::default();
        let lab =
            json!({"resourceType":"Observation","category":[{"coding":[{"code":"laboratory"}]}]});
        let vital =
            json!({"resourceType":"Observation","category":{"coding":[{"code":"vital-signs"}]}});
        let bare = json!({"resourceType":"Observation"});
        let odd = json!({"resourceType":"Basic"});
        assert_eq!(m.place(&lab)?, (Placement::Portion(label("lab")), false));
        assert_eq!(
            m.place(&vital)?,
            (Placement::Portion(label("medical")), false)
        );
        assert_eq!(
            m.place(&bare)?,
            (Placement::Portion(label("medical")), false)
        );
        assert_eq!(m.place(&odd)?, (Placement::Portion(label("medical")), true));
        let strict = m.clone().unknown(Unknown::Refuse);
        assert!(matches!(strict.place(&odd), Err(FhirError::UnmappedType(t)) if t == "Basic"));
        let moved = m.route("Observation", Some("laboratory"), label("medical"));
        assert_eq!(moved.place(&lab)?.0, Placement::Portion(label("medical")));
        assert!(matches!(
            PortionMap::default().place(&json!({"status":"final"})),
            Err(FhirError::NotFhir { .. })
        ));
        Ok(())
    }

    /// DESIGN.md §13's portions, in its order.
    const DEFAULT_LABELS: [&str; 6] = [
        "personal",
        "medical",
        "lab",
        "prescription",
        "insurance",
        "imaging",
    ];

    #[test]
    fn the_default_labels_come_in_design_order() {
        let names: Vec<String> = PortionMap::default()
            .labels()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, DEFAULT_LABELS);
    }
}
