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
/// A resource's placement is, in this order: the first rule (in the order
/// of the table below) for its type and one of its category codes
/// (`category[].coding[].code`, any system); the rule for its type alone;
/// the [`Unknown`] policy. Category codes are compared exactly. A Bundle
/// inside a Bundle is not placed whole: its entries are placed one by one
/// ([`Nested::Recurse`], the default) or the split is refused
/// ([`Nested::Refuse`]).
///
/// [`PortionMap::default`] is DESIGN.md §13's mapping, with the R4 patient
/// compartment reviewed type by type:
///
/// | portion | resources |
/// |---|---|
/// | `personal` | Patient, RelatedPerson, Person, Consent |
/// | `medical` | Condition, Encounter, EpisodeOfCare, Procedure, AllergyIntolerance, Immunization, ImmunizationEvaluation, ImmunizationRecommendation, CarePlan, CareTeam, Goal, FamilyMemberHistory, ClinicalImpression, Composition, Device, DeviceRequest, DeviceUseStatement, Provenance, AdverseEvent, Appointment, AppointmentResponse, BodyStructure, Communication, CommunicationRequest, DetectedIssue, Flag, List, NutritionOrder, QuestionnaireResponse, RiskAssessment, RequestGroup, Task, SupplyRequest, SupplyDelivery, MeasureReport, ResearchSubject, AuditEvent, GuidanceResponse; Observation, DiagnosticReport, DocumentReference and ServiceRequest of no lab or imaging category (Observation `vital-signs`, `social-history`, `exam`, `survey`, `activity`, `therapy`, `procedure` by rule) |
/// | `lab` | Observation, DiagnosticReport, DocumentReference and ServiceRequest with a category in [`LAB_CATEGORIES`] (`laboratory`; v2-0074 `LAB`, `BG`, `BLB`, `CG`, `CH`, `CP`, `GE`, `HM`, `IMM`, `MB`, `MCB`, `MYC`, `OSL`, `SP`, `SR`, `TX`, `URN`, `VR`; LOINC `LP7839-6`, `26436-6`; SNOMED CT `108252007`); Specimen, MolecularSequence |
/// | `prescription` | MedicationRequest, MedicationStatement, MedicationAdministration, MedicationDispense, VisionPrescription |
/// | `insurance` | Coverage, CoverageEligibilityRequest, CoverageEligibilityResponse, Claim, ClaimResponse, ExplanationOfBenefit, Account, Invoice, ChargeItem, EnrollmentRequest, EnrollmentResponse, PaymentNotice, PaymentReconciliation |
/// | `imaging` | ImagingStudy, Media; Observation, DiagnosticReport, DocumentReference and ServiceRequest with a category in [`IMAGING_CATEGORIES`] (`imaging`; v2-0074 `RAD`, `CT`, `CUS`, `NMR`, `NMS`, `OUS`, `RUS`, `RX`, `VUS`, `XRC`; `IMG`; LOINC `LP29684-5`; SNOMED CT `363679005`) |
/// | with referrers (else `medical`) | Practitioner, PractitionerRole, Organization, Location, HealthcareService, Endpoint, Substance, Schedule, Slot, ActivityDefinition, PlanDefinition, ObservationDefinition, SpecimenDefinition, DeviceDefinition, DeviceMetric, ResearchStudy, OrganizationAffiliation, VerificationResult, BiologicallyDerivedProduct; conformance, terminology and knowledge resources (CapabilityStatement, CatalogEntry, CodeSystem, CompartmentDefinition, ConceptMap, EffectEvidenceSynthesis, EventDefinition, Evidence, EvidenceVariable, ExampleScenario, GraphDefinition, ImplementationGuide, Library, Measure, MessageDefinition, NamingSystem, OperationDefinition, ResearchDefinition, ResearchElementDefinition, RiskEvidenceSynthesis, SearchParameter, StructureDefinition, StructureMap, SubstanceSpecification, TerminologyCapabilities, TestReport, TestScript, ValueSet, Questionnaire) |
/// | with referrers (else `insurance`) | InsurancePlan, ChargeItemDefinition |
/// | with referrers (else `prescription`) | Medication, MedicationKnowledge, MedicinalProduct and its 9 R4 companions (Authorization, Contraindication, Indication, Ingredient, Interaction, Manufactured, Packaged, Pharmaceutical, UndesirableEffect) |
///
/// A resource with both a lab and an imaging category goes to `lab` (lab
/// rules come first). Any other type goes to `medical` and is listed by
/// [`super::Split::defaulted`] ([`Unknown::Portion`]); use
/// [`PortionMap::unknown`] with [`Unknown::Refuse`] to refuse instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortionMap {
    rules: Vec<Rule>,
    unknown: Unknown,
    nested: Nested,
}

/// What happens to a Bundle inside a Bundle (an entry whose resource is a
/// Bundle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nested {
    /// Its entries are placed one by one, at any depth; each portion with
    /// some of them gets the inner Bundle's own fields and those entries
    /// (marked with their positions), and reassembly restores the inner
    /// Bundle exactly.
    #[default]
    Recurse,
    /// The split is refused with [`FhirError::NestedBundle`].
    Refuse,
}

fn label(s: &'static str) -> PortionLabel {
    PortionLabel::from_static(s)
}

/// Category codes of laboratory results, any system: FHIR's observation
/// category `laboratory`; HL7 v2-0074 diagnostic service sections of the
/// laboratory (`LAB`, blood gases, blood bank, cytogenetics, chemistry,
/// cytopathology, genetics, hematology, immunology, microbiology,
/// mycobacteriology, mycology, outside lab, surgical pathology, serology,
/// toxicology, urinalysis, virology); LOINC `LP7839-6` (pathology) and
/// `26436-6` (laboratory studies); SNOMED CT `108252007` (laboratory
/// procedure).
pub const LAB_CATEGORIES: &[&str] = &[
    "laboratory",
    "LAB",
    "BG",
    "BLB",
    "CG",
    "CH",
    "CP",
    "GE",
    "HM",
    "IMM",
    "MB",
    "MCB",
    "MYC",
    "OSL",
    "SP",
    "SR",
    "TX",
    "URN",
    "VR",
    "LP7839-6",
    "26436-6",
    "108252007",
];

/// Category codes of imaging, any system: FHIR's observation category
/// `imaging`; HL7 v2-0074 sections `RAD`, CT, cardiac, OB, radiology and
/// vascular ultrasound, NMR, nuclear medicine, radiograph,
/// cineradiograph; `IMG`; LOINC `LP29684-5` (radiology); SNOMED CT
/// `363679005` (imaging).
pub const IMAGING_CATEGORIES: &[&str] = &[
    "imaging",
    "RAD",
    "IMG",
    "CT",
    "CUS",
    "NMR",
    "NMS",
    "OUS",
    "RUS",
    "RX",
    "VUS",
    "XRC",
    "LP29684-5",
    "363679005",
];

/// Conformance, terminology and knowledge resources: about no patient,
/// copied to the portions that refer to them.
const CONFORMANCE: [&str; 29] = [
    "CapabilityStatement",
    "CatalogEntry",
    "CodeSystem",
    "CompartmentDefinition",
    "ConceptMap",
    "EffectEvidenceSynthesis",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "GraphDefinition",
    "ImplementationGuide",
    "Library",
    "Measure",
    "MessageDefinition",
    "NamingSystem",
    "OperationDefinition",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "SearchParameter",
    "StructureDefinition",
    "StructureMap",
    "SubstanceSpecification",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "Questionnaire",
];

/// R4's medicinal product definitions (no patient in them).
const MEDICINAL_PRODUCT: [&str; 10] = [
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
];

/// The resource types whose category can move them to `lab` or `imaging`.
const CATEGORIZED: [&str; 4] = [
    "Observation",
    "DiagnosticReport",
    "DocumentReference",
    "ServiceRequest",
];

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
        put(
            &["Patient", "RelatedPerson", "Person", "Consent"],
            None,
            "personal",
        );
        put(
            &[
                "Condition",
                "Encounter",
                "EpisodeOfCare",
                "Procedure",
                "AllergyIntolerance",
                "Immunization",
                "ImmunizationEvaluation",
                "ImmunizationRecommendation",
                "CarePlan",
                "CareTeam",
                "Goal",
                "FamilyMemberHistory",
                "ClinicalImpression",
                "DocumentReference",
                "DocumentManifest",
                "Composition",
                "ServiceRequest",
                "Device",
                "DeviceRequest",
                "DeviceUseStatement",
                "Provenance",
                "AdverseEvent",
                "Appointment",
                "AppointmentResponse",
                "BodyStructure",
                "Communication",
                "CommunicationRequest",
                "DetectedIssue",
                "Flag",
                "List",
                "NutritionOrder",
                "QuestionnaireResponse",
                "RiskAssessment",
                "RequestGroup",
                "Task",
                "SupplyRequest",
                "SupplyDelivery",
                "MeasureReport",
                "ResearchSubject",
                "AuditEvent",
                "GuidanceResponse",
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
        for c in LAB_CATEGORIES {
            put(&CATEGORIZED, Some(c), "lab");
        }
        put(&["Specimen", "MolecularSequence"], None, "lab");
        put(
            &[
                "MedicationRequest",
                "MedicationStatement",
                "MedicationAdministration",
                "MedicationDispense",
                "VisionPrescription",
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
                "ChargeItem",
                "EnrollmentRequest",
                "EnrollmentResponse",
                "PaymentNotice",
                "PaymentReconciliation",
            ],
            None,
            "insurance",
        );
        put(&["ImagingStudy", "Media"], None, "imaging");
        for c in IMAGING_CATEGORIES {
            put(&CATEGORIZED, Some(c), "imaging");
        }
        for t in [
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "Location",
            "HealthcareService",
            "Endpoint",
            "Substance",
            "Schedule",
            "Slot",
            "ActivityDefinition",
            "PlanDefinition",
            "ObservationDefinition",
            "SpecimenDefinition",
            "DeviceDefinition",
            "DeviceMetric",
            "ResearchStudy",
            "OrganizationAffiliation",
            "VerificationResult",
            "BiologicallyDerivedProduct",
        ]
        .into_iter()
        .chain(CONFORMANCE)
        {
            m = m.with_referrers(t, label("medical"));
        }
        for t in ["InsurancePlan", "ChargeItemDefinition"] {
            m = m.with_referrers(t, label("insurance"));
        }
        for t in ["Medication", "MedicationKnowledge"]
            .into_iter()
            .chain(MEDICINAL_PRODUCT)
        {
            m = m.with_referrers(t, label("prescription"));
        }
        m
    }
}

impl PortionMap {
    /// A mapping with no rules: every resource follows `unknown`.
    pub fn empty(unknown: Unknown) -> Self {
        Self {
            rules: Vec::new(),
            unknown,
            nested: Nested::Recurse,
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

    /// Sets what happens to a Bundle inside a Bundle.
    pub fn nested(mut self, nested: Nested) -> Self {
        self.nested = nested;
        self
    }

    /// What happens to a Bundle inside a Bundle.
    pub fn nested_policy(&self) -> Nested {
        self.nested
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

    /// The resource types whose rules put resources into `label`, each
    /// once, in rule order (directory types not listed): a Consent's
    /// `provision.class` for the portion.
    pub fn types_of(&self, label: &PortionLabel) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (t, _) in self.rules_for(label) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
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
