//! A Bundle into portions, and back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, json};

use super::mapping::{Placement, PortionMap};
use super::{FhirError, FhirResult, Value, resource_type};
use crate::{PortionLabel, PortionPublicKey, RecordId, SealedPortion};

/// How many sealed portions a split makes.
///
/// [`Granularity::PerPortion`] (the default) seals one portion per label
/// per Bundle: a visit's labs are one sealed object, opened with one
/// re-encryption and audited as one disclosure. A 10-year history of 559
/// resources becomes 5 sealed objects instead of 559, so the header, the
/// SRS round trip and the audit entry are paid 5 times; a doctor who wants
/// one lab result of that visit downloads the visit's lab portion (tens of
/// kilobytes). [`Granularity::PerResource`] seals each resource alone, for
/// hosts that fetch single resources from large bundles; every resource
/// then costs its own re-encryption and audit entry. Either way, what a
/// reader can open is decided by the portion label alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Granularity {
    /// One sealed portion per label per Bundle.
    #[default]
    PerPortion,
    /// One sealed portion per resource.
    PerResource,
}

/// The input's shape besides its resources.
#[derive(Clone, Debug, PartialEq)]
enum Shell {
    /// A Bundle: every field but `entry`.
    Bundle(Map<String, Value>),
    /// One resource, not in a Bundle.
    Resource,
}

/// One portion of a split: its label and its Bundle entries.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitPortion {
    /// The portion.
    pub label: PortionLabel,
    /// Its Bundle entries (`fullUrl`, `resource`, `request`, …), in the
    /// input's order; directory resources copied in for reference come
    /// after the portion's own.
    pub entries: Vec<Value>,
    /// How many of `entries` are directory resources (see
    /// [`Placement::WithReferrers`]).
    pub copies: usize,
}

impl SplitPortion {
    /// `Type/id` (or `Type`) of each entry's resource, for display.
    pub fn resource_names(&self) -> Vec<String> {
        self.entries.iter().map(entry_name).collect()
    }
}

/// A Bundle (or one resource) cut into portions by a [`PortionMap`].
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    shell: Shell,
    portions: Vec<SplitPortion>,
    defaulted: Vec<String>,
    resources: usize,
}

/// One sealed portion of a split: open it, then give its plaintext to a
/// [`Reassembler`].
#[derive(Clone, Debug)]
pub struct SealedFhir {
    /// The record it was sealed under: one per Bundle
    /// ([`Granularity::PerPortion`]) or per resource.
    pub record: RecordId,
    /// Its portion.
    pub label: PortionLabel,
    /// The resources it holds (`Type/id`, or `Type fullUrl`): for the
    /// host's own index of where a resource is (the cloud sees none of
    /// this).
    pub resources: Vec<String>,
    /// The sealed portion.
    pub sealed: SealedPortion,
}

/// Cuts a JSON Bundle (or one JSON resource) into portions.
///
/// Every entry lands in exactly one portion, except directory resources
/// ([`Placement::WithReferrers`]), which are copied into each portion that
/// refers to them. Nothing is dropped: a type the mapping does not name
/// goes to its [`Unknown`](super::Unknown) portion (listed by [`Split::defaulted`]) or the
/// split is refused.
///
/// An entry without a resource (a `DELETE` or conditional `GET` of a
/// transaction, an entry of a transaction-response) goes where a resource
/// of the type its `request.url` (or `response.location`) names would go.
///
/// # Errors
/// [`FhirError::Json`] for input that is not JSON; [`FhirError::NotFhir`]
/// for JSON that is not a resource, or a Bundle whose `entry` is not a list
/// of objects; [`FhirError::UnmappedType`] under
/// [`Unknown::Refuse`](super::Unknown::Refuse).
pub fn split(json: &[u8], map: &PortionMap) -> FhirResult<Split> {
    split_value(serde_json::from_slice(json)?, map)
}

/// [`split`] of a parsed value.
///
/// # Errors
/// As [`split`], without [`FhirError::Json`].
pub fn split_value(input: Value, map: &PortionMap) -> FhirResult<Split> {
    let (shell, entries) = unpack(input)?;
    let mut home: Vec<(PortionLabel, Value)> = Vec::new();
    let mut directory: Vec<(PortionLabel, Value)> = Vec::new();
    let mut defaulted = Vec::new();
    for e in entries {
        match place_entry(map, &e)? {
            (Placement::Portion(l), by_default) => {
                if by_default {
                    defaulted.push(entry_name(&e));
                }
                home.push((l, e));
            }
            (Placement::WithReferrers { unreferenced }, _) => directory.push((unreferenced, e)),
        }
    }
    let resources = home.len() + directory.len();

    // Which portions refer to each directory resource: directly, then
    // through other directory resources until nothing changes.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (_, e)) in directory.iter().enumerate() {
        for n in reference_names(e) {
            names.insert(n, i);
        }
    }
    let mut wanted: Vec<BTreeSet<PortionLabel>> = vec![BTreeSet::new(); directory.len()];
    for (l, e) in &home {
        for r in references(e) {
            if let Some(w) = names.get(r).and_then(|&i| wanted.get_mut(i)) {
                w.insert(l.clone());
            }
        }
    }
    // The directory resources each directory resource refers to.
    let links: Vec<Vec<usize>> = directory
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            let mut to: Vec<usize> = references(e)
                .into_iter()
                .filter_map(|r| names.get(r).copied())
                .filter(|&j| j != i)
                .collect();
            to.sort_unstable();
            to.dedup();
            to
        })
        .collect();
    let propagate = |wanted: &mut Vec<BTreeSet<PortionLabel>>| {
        let mut changed = true;
        while changed {
            changed = false;
            for (i, to) in links.iter().enumerate() {
                let from = wanted.get(i).cloned().unwrap_or_default();
                for &j in to {
                    if let Some(w) = wanted.get_mut(j)
                        && !from.is_subset(w)
                    {
                        w.extend(from.iter().cloned());
                        changed = true;
                    }
                }
            }
        }
    };
    propagate(&mut wanted);
    // Nothing refers to these: into their own portion, taking what they
    // refer to along.
    for (w, (unreferenced, _)) in wanted.iter_mut().zip(&directory) {
        if w.is_empty() {
            w.insert(unreferenced.clone());
        }
    }
    propagate(&mut wanted);

    let order = map.labels();
    let mut by_label: BTreeMap<PortionLabel, SplitPortion> = BTreeMap::new();
    fn portion<'a>(
        by_label: &'a mut BTreeMap<PortionLabel, SplitPortion>,
        l: &PortionLabel,
    ) -> &'a mut SplitPortion {
        by_label.entry(l.clone()).or_insert_with(|| SplitPortion {
            label: l.clone(),
            entries: Vec::new(),
            copies: 0,
        })
    }
    for (l, e) in home {
        portion(&mut by_label, &l).entries.push(e);
    }
    for ((_, e), labels) in directory.into_iter().zip(wanted) {
        for l in labels {
            let p = portion(&mut by_label, &l);
            p.entries.push(e.clone());
            p.copies += 1;
        }
    }
    let mut portions: Vec<SplitPortion> = Vec::with_capacity(by_label.len());
    for l in &order {
        if let Some(p) = by_label.remove(l) {
            portions.push(p);
        }
    }
    portions.extend(by_label.into_values());
    if portions.is_empty() && matches!(shell, Shell::Bundle(_)) {
        // An empty Bundle still has its own fields to keep: one empty
        // portion carries them.
        let label = order.into_iter().next().ok_or(FhirError::NotFhir {
            what: "an empty Bundle and a mapping without portions",
        })?;
        portions.push(SplitPortion {
            label,
            entries: Vec::new(),
            copies: 0,
        });
    }
    Ok(Split {
        shell,
        portions,
        defaulted,
        resources,
    })
}

impl Split {
    /// The portions that have resources, in the mapping's label order.
    pub fn portions(&self) -> &[SplitPortion] {
        &self.portions
    }

    /// The resources (`Type/id`) that went to a portion by the mapping's
    /// [`Unknown`](super::Unknown) policy, not by a rule.
    pub fn defaulted(&self) -> &[String] {
        &self.defaulted
    }

    /// How many resources the input held (directory copies counted once).
    pub fn resource_count(&self) -> usize {
        self.resources
    }

    /// The plaintexts to seal, as `(label, JSON)`: per portion, a Bundle
    /// with the input's Bundle fields and that portion's entries (or, for a
    /// single resource, the resource itself); per resource, such a Bundle
    /// with one entry.
    ///
    /// # Errors
    /// [`FhirError::Json`] if serialization fails (not expected).
    pub fn plaintexts(&self, granularity: Granularity) -> FhirResult<Vec<(PortionLabel, Vec<u8>)>> {
        Ok(self
            .units(granularity)?
            .into_iter()
            .map(|(l, text, _)| (l, text))
            .collect())
    }

    /// The plaintexts with the names of the resources in each.
    fn units(&self, granularity: Granularity) -> FhirResult<Vec<Unit>> {
        let mut out = Vec::new();
        for p in &self.portions {
            match granularity {
                Granularity::PerPortion => out.push((
                    p.label.clone(),
                    self.document(&p.entries)?,
                    p.resource_names(),
                )),
                Granularity::PerResource if p.entries.is_empty() => {
                    out.push((p.label.clone(), self.document(&[])?, Vec::new()));
                }
                Granularity::PerResource => {
                    for e in &p.entries {
                        out.push((
                            p.label.clone(),
                            self.document(core::slice::from_ref(e))?,
                            vec![entry_name(e)],
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    fn document(&self, entries: &[Value]) -> FhirResult<Vec<u8>> {
        Ok(match &self.shell {
            Shell::Bundle(fields) => {
                let mut b = fields.clone();
                b.insert("entry".into(), Value::Array(entries.to_vec()));
                serde_json::to_vec(&Value::Object(b))?
            }
            Shell::Resource => {
                let r = entries
                    .first()
                    .and_then(|e| e.get("resource"))
                    .ok_or(FhirError::Empty)?;
                serde_json::to_vec(r)?
            }
        })
    }

    /// Seals every portion (see [`Split::plaintexts`]) under the portion
    /// public key of its label from `keys`, dated `created_at` (seconds
    /// since the Unix epoch; grants with a [`crate::model::Scope::Since`]
    /// compare against it). With [`Granularity::PerPortion`] all portions
    /// share one fresh record id; with [`Granularity::PerResource`] each
    /// gets its own.
    ///
    /// # Errors
    /// [`FhirError::NoKey`] if `keys` has no key for a label that has
    /// resources (nothing is sealed then); [`FhirError::Crypto`] if sealing
    /// fails.
    pub fn seal(
        &self,
        keys: &[PortionPublicKey],
        granularity: Granularity,
        created_at: u64,
    ) -> FhirResult<Vec<SealedFhir>> {
        let key = |l: &PortionLabel| {
            keys.iter()
                .find(|k| k.label() == l)
                .ok_or_else(|| FhirError::NoKey(l.to_string()))
        };
        for p in &self.portions {
            key(&p.label)?;
        }
        let bundle_record = RecordId::random();
        let mut out = Vec::new();
        for (label, text, resources) in self.units(granularity)? {
            let record = match granularity {
                Granularity::PerPortion => bundle_record,
                Granularity::PerResource => RecordId::random(),
            };
            let sealed = SealedPortion::seal(key(&label)?, record, created_at, &text)?;
            out.push(SealedFhir {
                record,
                label,
                resources,
                sealed,
            });
        }
        Ok(out)
    }
}

/// One plaintext to seal: its portion, its JSON, the names of its
/// resources.
type Unit = (PortionLabel, Vec<u8>, Vec<String>);

/// Rebuilds a Bundle from opened portions.
///
/// Entries come out grouped by portion in the mapping's label order, each
/// portion's in the order they were sealed, a directory resource once (at
/// its first portion); for a `document` Bundle the Composition comes first.
/// [`compare`] compares Bundles modulo exactly that ordering.
///
/// Each resource is checked against the mapping: one that the mapping
/// places in another portion is refused ([`FhirError::Misfiled`]), so a
/// portion cannot smuggle resources of another. Use
/// [`Reassembler::without_placement_check`] to rebuild records sealed under
/// an older mapping.
#[derive(Debug)]
pub struct Reassembler<'m> {
    map: &'m PortionMap,
    check: bool,
    shell: Option<Shell>,
    portions: BTreeMap<PortionLabel, Vec<Value>>,
    /// Directory resources by content: the first portion that had one, the
    /// entry, how many times one portion had it.
    directory: BTreeMap<String, (PortionLabel, Value, usize)>,
}

impl<'m> Reassembler<'m> {
    /// A reassembler that checks placements against `map`.
    pub fn new(map: &'m PortionMap) -> Self {
        Self {
            map,
            check: true,
            shell: None,
            portions: BTreeMap::new(),
            directory: BTreeMap::new(),
        }
    }

    /// A reassembler that orders by `map` but accepts any placement.
    pub fn without_placement_check(map: &'m PortionMap) -> Self {
        Self {
            check: false,
            ..Self::new(map)
        }
    }

    /// Adds one opened portion (as sealed: see [`Split::plaintexts`]);
    /// `label` is the portion it was sealed under
    /// (`sealed.header().context().label()`).
    ///
    /// # Errors
    /// [`FhirError::Json`] or [`FhirError::NotFhir`] for a plaintext that
    /// is not a portion; [`FhirError::Inconsistent`] if it comes from
    /// another Bundle than the portions added before;
    /// [`FhirError::Misfiled`]. A failed call adds nothing.
    pub fn add(&mut self, label: &PortionLabel, plaintext: &[u8]) -> FhirResult<()> {
        let value: Value = serde_json::from_slice(plaintext)?;
        let (shell, entries) = unpack(value)?;
        if let Some(s) = &self.shell {
            if *s != shell {
                return Err(FhirError::Inconsistent(
                    "the portions come from different Bundles".into(),
                ));
            }
            if shell == Shell::Resource {
                return Err(FhirError::Inconsistent(
                    "a single resource was added twice".into(),
                ));
            }
        }
        // Check everything before keeping anything.
        let mut own = Vec::new();
        let mut directory: BTreeMap<String, (Value, usize)> = BTreeMap::new();
        for e in entries {
            let placement = if self.check {
                let (p, _) = place_entry(self.map, &e)?;
                if matches!(&p, Placement::Portion(l) if l != label) {
                    return Err(FhirError::Misfiled {
                        resource_type: entry_type(&e),
                        label: label.to_string(),
                    });
                }
                p
            } else {
                match place_entry(self.map, &e) {
                    Ok((p, _)) => p,
                    Err(_) => Placement::Portion(label.clone()),
                }
            };
            match placement {
                // Copies of one directory resource are identical in every
                // portion: kept once (as often as one portion has it).
                Placement::WithReferrers { .. } => {
                    directory.entry(e.to_string()).or_insert((e, 0)).1 += 1;
                }
                Placement::Portion(_) => own.push(e),
            }
        }
        self.shell = Some(shell);
        self.portions.entry(label.clone()).or_default().extend(own);
        for (key, (e, n)) in directory {
            let kept = self
                .directory
                .entry(key)
                .or_insert_with(|| (label.clone(), e, 0));
            kept.2 = kept.2.max(n);
        }
        Ok(())
    }

    /// The rebuilt Bundle (or the single resource).
    ///
    /// # Errors
    /// [`FhirError::Empty`] if nothing was added.
    pub fn finish(self) -> FhirResult<Value> {
        let shell = self.shell.ok_or(FhirError::Empty)?;
        let mut portions = self.portions;
        let mut directory: BTreeMap<PortionLabel, Vec<Value>> = BTreeMap::new();
        for (_, (l, e, n)) in self.directory {
            let d = directory.entry(l).or_default();
            for _ in 1..n {
                d.push(e.clone());
            }
            d.push(e);
        }
        let mut labels = self.map.labels();
        for l in portions.keys().chain(directory.keys()) {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        let mut entries = Vec::new();
        for l in &labels {
            entries.extend(portions.remove(l).unwrap_or_default());
            entries.extend(directory.remove(l).unwrap_or_default());
        }
        match shell {
            Shell::Resource => entries
                .into_iter()
                .next()
                .and_then(|mut e| e.get_mut("resource").map(Value::take))
                .ok_or(FhirError::Empty),
            Shell::Bundle(mut b) => {
                if b.get("type") == Some(&json!("document"))
                    && let Some(i) = entries.iter().position(|e| {
                        e.get("resource").and_then(|r| r.get("resourceType"))
                            == Some(&json!("Composition"))
                    })
                {
                    let c = entries.remove(i);
                    entries.insert(0, c);
                }
                b.insert("entry".into(), Value::Array(entries));
                Ok(Value::Object(b))
            }
        }
    }
}

/// How two Bundles differ (see [`compare`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// A field of the Bundle itself (not `entry`) differs.
    BundleField(String),
    /// An entry of the first is not in the second (its name).
    Missing(String),
    /// An entry of the second is not in the first.
    Extra(String),
    /// Not both Bundles, and the two values differ.
    NotEqual,
}

impl core::fmt::Display for Difference {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BundleField(k) => write!(f, "Bundle.{k} differs"),
            Self::Missing(n) => write!(f, "{n} is missing"),
            Self::Extra(n) => write!(f, "{n} was not in the original"),
            Self::NotEqual => f.write_str("the resources differ"),
        }
    }
}

/// Compares two Bundles as the same record: the same Bundle fields, and the
/// same entries as a multiset (entry order is not compared; object key
/// order never is, as in JSON). Two single resources compare as JSON
/// values. Empty means equal.
pub fn compare(a: &Value, b: &Value) -> Vec<Difference> {
    let is_bundle = |v: &Value| v.get("resourceType") == Some(&json!("Bundle"));
    if !(is_bundle(a) && is_bundle(b)) {
        return if a == b {
            Vec::new()
        } else {
            vec![Difference::NotEqual]
        };
    }
    let mut out = Vec::new();
    let fields = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| *k != "entry")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (fa, fb) = (fields(a), fields(b));
    for k in fa.keys().chain(fb.keys()).collect::<BTreeSet<_>>() {
        if fa.get(k) != fb.get(k) {
            out.push(Difference::BundleField(k.clone()));
        }
    }
    let entries = |v: &Value| -> BTreeMap<String, (usize, String)> {
        let mut m: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for e in v
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = e.to_string();
            m.entry(text).or_insert((0, entry_name(e))).0 += 1;
        }
        m
    };
    let (ea, eb) = (entries(a), entries(b));
    for (text, (n, name)) in &ea {
        let m = eb.get(text).map_or(0, |x| x.0);
        for _ in m..*n {
            out.push(Difference::Missing(name.clone()));
        }
    }
    for (text, (n, name)) in &eb {
        let m = ea.get(text).map_or(0, |x| x.0);
        for _ in m..*n {
            out.push(Difference::Extra(name.clone()));
        }
    }
    out
}

/// A Bundle as its own fields and its entries; one resource as an entry.
fn unpack(value: Value) -> FhirResult<(Shell, Vec<Value>)> {
    match value {
        Value::Object(mut o) if o.get("resourceType") == Some(&json!("Bundle")) => {
            let entries = match o.remove("entry") {
                None => Vec::new(),
                Some(Value::Array(a)) => a,
                Some(_) => {
                    return Err(FhirError::NotFhir {
                        what: "Bundle.entry is not a list",
                    });
                }
            };
            Ok((Shell::Bundle(o), entries))
        }
        resource @ Value::Object(_) => {
            resource_type(&resource)?;
            Ok((Shell::Resource, vec![json!({ "resource": resource })]))
        }
        _ => Err(FhirError::NotFhir {
            what: "not a JSON object",
        }),
    }
}

/// The resource type of an entry (or of its request), for errors: never
/// an id or URL.
fn entry_type(e: &Value) -> String {
    entry_name(e)
        .split(['/', ' ', '?'])
        .find(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("?")
        .to_owned()
}

/// `Type/id`, or `Type fullUrl`, or `Type`; for an entry without a
/// resource, its request (`DELETE Patient/12`) or response.
fn entry_name(e: &Value) -> String {
    let r = e.get("resource");
    if r.is_none() {
        let part = |v: Option<&Value>, k: &str| {
            v.and_then(|x| x.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        return match e.get("request") {
            Some(request) => format!(
                "{} {}",
                part(Some(request), "method"),
                part(Some(request), "url")
            ),
            None => format!(
                "response {} {}",
                part(e.get("response"), "status"),
                part(e.get("response"), "location")
            ),
        };
    }
    let t = r
        .and_then(|r| r.get("resourceType"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match (
        r.and_then(|r| r.get("id")).and_then(Value::as_str),
        e.get("fullUrl").and_then(Value::as_str),
    ) {
        (Some(id), _) => format!("{t}/{id}"),
        (None, Some(u)) => format!("{t} {u}"),
        (None, None) => t.to_owned(),
    }
}

/// Where an entry goes: by its resource, or for an entry without one, by
/// the type its `request.url` or `response.location` names.
fn place_entry(map: &PortionMap, e: &Value) -> FhirResult<(Placement, bool)> {
    if let Some(r) = e.get("resource") {
        return map.place(r);
    }
    if !e.is_object() {
        return Err(FhirError::NotFhir {
            what: "a Bundle entry that is not an object",
        });
    }
    let url = e
        .get("request")
        .and_then(|r| r.get("url"))
        .or_else(|| e.get("response").and_then(|r| r.get("location")))
        .and_then(Value::as_str)
        .unwrap_or("");
    // `Patient/12`, `Patient?identifier=…`, `https://host/fhir/Patient/12/_history/2`.
    let path = url.split('?').next().unwrap_or("");
    let t = path
        .split('/')
        .find(|seg| seg.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .unwrap_or("");
    map.place_type(t, &[])
}

/// The names a reference to this entry can use: its `fullUrl`, `Type/id`
/// (which absolute URLs ending in `/Type/id` also match, see
/// [`references`]), and the conditional references of its identifiers,
/// `Type?identifier=system|value` (as Synthea's bundles use) and
/// `Type?identifier=value`.
fn reference_names(e: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = e.get("fullUrl").and_then(Value::as_str) {
        out.push(u.to_owned());
    }
    let r = e.get("resource");
    let Some(t) = r
        .and_then(|r| r.get("resourceType"))
        .and_then(Value::as_str)
    else {
        return out;
    };
    if let Some(id) = r.and_then(|r| r.get("id")).and_then(Value::as_str) {
        out.push(format!("{t}/{id}"));
    }
    let identifiers = r
        .and_then(|r| r.get("identifier"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for i in identifiers {
        if let Some(v) = i.get("value").and_then(Value::as_str) {
            if let Some(system) = i.get("system").and_then(Value::as_str) {
                out.push(format!("{t}?identifier={system}|{v}"));
            }
            out.push(format!("{t}?identifier={v}"));
        }
    }
    out
}

/// Every `reference` string in an entry's resource (relative references
/// also under their `Type/id` tail, so absolute URLs match).
fn references(e: &Value) -> Vec<&str> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("reference", Value::String(s)) => {
                            out.push(s);
                            // `https://host/fhir/Practitioner/7` → `Practitioner/7`.
                            let mut parts = s.rsplitn(3, '/');
                            if let (Some(id), Some(t), Some(_)) =
                                (parts.next(), parts.next(), parts.next())
                                && let Some(tail) = (s.len().checked_sub(id.len() + t.len() + 1))
                                    .and_then(|at| s.get(at..))
                            {
                                out.push(tail);
                            }
                        }
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(r) = e.get("resource") {
        walk(r, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Value {
        json!({"resourceType":"Bundle","type":"transaction","entry":[
            {"fullUrl":"urn:uuid:pat","resource":{"resourceType":"Patient","id":"p"}},
            {"fullUrl":"urn:uuid:org","resource":{"resourceType":"Organization","name":"O"}},
            {"fullUrl":"urn:uuid:role","resource":{"resourceType":"PractitionerRole","organization":{"reference":"urn:uuid:org"}}},
            {"fullUrl":"urn:uuid:lab1","resource":{"resourceType":"Observation","category":[{"coding":[{"code":"laboratory"}]}],
                "performer":[{"reference":"urn:uuid:role"}]}},
            {"fullUrl":"urn:uuid:loc","resource":{"resourceType":"Location","id":"L1"}},
            {"fullUrl":"urn:uuid:enc","resource":{"resourceType":"Encounter","location":[{"location":{"reference":"https://h.example/fhir/Location/L1"}}]}},
            {"fullUrl":"urn:uuid:idle","resource":{"resourceType":"Practitioner"}},
            {"fullUrl":"urn:uuid:odd","resource":{"resourceType":"Basic"}}
        ]})
    }

    fn names(s: &Split, l: &str) -> Vec<String> {
        s.portions()
            .iter()
            .find(|p| p.label.as_str() == l)
            .map(SplitPortion::resource_names)
            .unwrap_or_default()
    }

    #[test]
    fn directory_resources_follow_their_referrers_transitively() -> FhirResult<()> {
        let s = split_value(bundle(), &PortionMap::default())?;
        assert_eq!(names(&s, "personal"), ["Patient/p"]);
        assert_eq!(
            names(&s, "lab"),
            [
                "Observation urn:uuid:lab1",
                "Organization urn:uuid:org",
                "PractitionerRole urn:uuid:role"
            ]
        );
        assert_eq!(
            names(&s, "medical"),
            [
                "Encounter urn:uuid:enc",
                "Basic urn:uuid:odd",
                "Location/L1",
                "Practitioner urn:uuid:idle"
            ]
        );
        assert_eq!(s.defaulted(), ["Basic urn:uuid:odd"]);
        assert_eq!(s.resource_count(), 8);
        Ok(())
    }

    #[test]
    fn reassembly_refuses_misfiled_and_inconsistent_portions() -> FhirResult<()> {
        let map = PortionMap::default();
        let s = split_value(bundle(), &map)?;
        let texts = s.plaintexts(Granularity::PerPortion)?;
        let lab = PortionLabel::from_static("lab");
        let personal = PortionLabel::from_static("personal");
        let lab_text = &texts
            .iter()
            .find(|(l, _)| *l == lab)
            .ok_or(FhirError::Empty)?
            .1;
        let mut r = Reassembler::new(&map);
        match r.add(&personal, lab_text) {
            Err(e @ FhirError::Misfiled { .. }) => {
                // The type, never an id or URL from the record.
                assert_eq!(
                    e.to_string(),
                    "a resource of type Observation does not belong in portion personal"
                );
            }
            other => return Err(FhirError::Inconsistent(format!("{other:?}"))),
        }
        r.add(&lab, lab_text)?;
        let mut other = bundle();
        other["type"] = json!("collection");
        let other_texts = split_value(other, &map)?.plaintexts(Granularity::PerPortion)?;
        assert!(matches!(
            r.add(&personal, &other_texts[0].1),
            Err(FhirError::Inconsistent(_))
        ));
        assert!(matches!(
            r.add(&lab, b"[1]"),
            Err(FhirError::NotFhir { .. })
        ));
        assert!(matches!(r.add(&lab, b"{"), Err(FhirError::Json(_))));
        let out = r.finish()?;
        assert_eq!(out["entry"].as_array().map(Vec::len), Some(3));
        Ok(())
    }

    #[test]
    fn bad_input_is_refused_with_a_typed_error() {
        let map = PortionMap::default();
        assert!(matches!(split(b"not json", &map), Err(FhirError::Json(_))));
        assert!(matches!(split(b"[]", &map), Err(FhirError::NotFhir { .. })));
        assert!(matches!(
            split(br#"{"resourceType":"Bundle","entry":{}}"#, &map),
            Err(FhirError::NotFhir { .. })
        ));
        assert!(matches!(
            split(br#"{"resourceType":"Bundle","entry":[7]}"#, &map),
            Err(FhirError::NotFhir { .. })
        ));
    }

    #[test]
    fn conditional_references_and_empty_bundles_and_decimals_survive() -> FhirResult<()> {
        let map = PortionMap::default();
        let b: Value = serde_json::from_str(
            r#"{"resourceType":"Bundle","type":"collection","entry":[
            {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Practitioner",
                "identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"999"}]}},
            {"fullUrl":"urn:uuid:b","resource":{"resourceType":"Observation",
                "category":[{"coding":[{"code":"laboratory"}]}],
                "performer":[{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999"}],
                "valueQuantity":{"value":5.40}}}]}"#,
        )?;
        let s = split_value(b, &map)?;
        assert_eq!(s.portions().len(), 1);
        assert_eq!(s.portions()[0].label.as_str(), "lab");
        assert_eq!(s.portions()[0].copies, 1);
        let text = &s.plaintexts(Granularity::PerPortion)?[0].1;
        assert!(String::from_utf8_lossy(text).contains("5.40"));

        let empty = json!({"resourceType":"Bundle","type":"searchset","total":0});
        for g in [Granularity::PerPortion, Granularity::PerResource] {
            let texts = split_value(empty.clone(), &map)?.plaintexts(g)?;
            assert_eq!(texts.len(), 1);
            let mut r = Reassembler::new(&map);
            r.add(&texts[0].0, &texts[0].1)?;
            assert!(compare(&empty, &r.finish()?).is_empty());
        }
        Ok(())
    }

    #[test]
    fn compare_ignores_entry_order_but_not_content() {
        let a = bundle();
        let mut b = bundle();
        if let Some(e) = b["entry"].as_array_mut() {
            e.reverse();
        }
        assert!(compare(&a, &b).is_empty());
        b["entry"][0]["resource"]["code"] = json!({"text": "changed"});
        let d = compare(&a, &b);
        assert_eq!(d.len(), 2, "{d:?}");
        b["type"] = json!("batch");
        assert!(compare(&a, &b).contains(&Difference::BundleField("type".into())));
    }
}
