//! A Bundle into portions, and back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, json};

use super::mapping::{Nested, Placement, PortionMap};
use super::{FhirError, FhirResult, Value, resource_type};
use crate::{PortionHeader, PortionLabel, PortionPublicKey, RecordId, SealedPortion};

/// The extension URL that marks an entry's position in a nested Bundle
/// (`Bundle.entry.extension`, `valueInteger`): each portion holds only
/// some of a nested Bundle's entries, and reassembly puts them back in
/// their places. An input that already carries it is refused.
pub const POSITION_EXTENSION: &str = "urn:sesphr:position";

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
/// then costs its own re-encryption and audit entry. Either way the
/// Bundle is one record (one [`RecordId`]), and what a reader can open is
/// decided by the portion label alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Granularity {
    /// One sealed portion per label per Bundle.
    #[default]
    PerPortion,
    /// One sealed portion per resource (a nested Bundle's share of a
    /// portion counts as one resource).
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
    /// after the portion's own. An entry holding a nested Bundle holds
    /// only the nested entries of this portion, each marked with its
    /// position ([`POSITION_EXTENSION`]).
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

    /// The resource types this portion holds at any depth (inside nested
    /// Bundles too; a nested Bundle counted as `Bundle`), with their
    /// numbers: what a reader of this portion alone receives.
    pub fn resource_types(&self) -> BTreeMap<String, usize> {
        entries_types(&self.entries)
    }
}

/// The resource types a Bundle holds at any depth (inside nested Bundles
/// too, each nested Bundle counted as `Bundle`; an entry without a
/// resource as `(no resource)`), with their numbers: what a reader of a
/// rebuilt Bundle received. A single resource counts as itself.
pub fn resource_types(bundle: &Value) -> BTreeMap<String, usize> {
    match bundle.get("entry").and_then(Value::as_array) {
        Some(entries) if bundle.get("resourceType") == Some(&json!("Bundle")) => {
            entries_types(entries)
        }
        _ => entries_types(&[json!({ "resource": bundle })]),
    }
}

fn entries_types(entries: &[Value]) -> BTreeMap<String, usize> {
    fn walk(entries: &[Value], out: &mut BTreeMap<String, usize>) {
        for e in entries {
            let r = e.get("resource");
            let t = r
                .and_then(|r| r.get("resourceType"))
                .and_then(Value::as_str)
                .unwrap_or("(no resource)");
            *out.entry(t.to_owned()).or_default() += 1;
            if t == "Bundle"
                && let Some(inner) = r.and_then(|r| r.get("entry")).and_then(Value::as_array)
            {
                walk(inner, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(entries, &mut out);
    out
}

/// A Bundle (or one resource) cut into portions by a [`PortionMap`].
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    shell: Shell,
    portions: Vec<SplitPortion>,
    defaulted: Vec<String>,
    resources: usize,
}

/// One sealed portion of a split: open it, then give its header and
/// plaintext to a [`Reassembler`].
#[derive(Clone, Debug)]
pub struct SealedFhir {
    /// The record it was sealed under: one per Bundle, whatever the
    /// [`Granularity`].
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

/// An entry of the input, as a tree: a resource (an index into the list
/// of leaves), or a nested Bundle.
#[derive(Debug)]
enum Node {
    Leaf(usize),
    Container(Container),
}

/// A nested Bundle: its entry's fields but `resource`, its own fields but
/// `entry`, whether it had `entry`, and its entries.
#[derive(Debug)]
struct Container {
    fields: Map<String, Value>,
    shell: Map<String, Value>,
    had_entry: bool,
    children: Vec<Node>,
}

fn is_bundle_entry(e: &Value) -> bool {
    e.get("resource").and_then(|r| r.get("resourceType")) == Some(&json!("Bundle"))
}

/// Whether an entry's `extension` holds [`POSITION_EXTENSION`].
fn has_position(e: &Value) -> bool {
    e.get("extension")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|x| x.get("url") == Some(&json!(POSITION_EXTENSION)))
        })
}

/// The input's entries as a tree; the resources in depth-first order.
fn tree(entries: Vec<Value>, map: &PortionMap, leaves: &mut Vec<Value>) -> FhirResult<Vec<Node>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if has_position(&e) {
            return Err(FhirError::NotFhir {
                what: "an entry carries the reserved extension urn:sesphr:position",
            });
        }
        if !is_bundle_entry(&e) {
            leaves.push(e);
            out.push(Node::Leaf(leaves.len() - 1));
            continue;
        }
        if map.nested_policy() == Nested::Refuse {
            return Err(FhirError::NestedBundle);
        }
        let Value::Object(mut fields) = e else {
            return Err(FhirError::NotFhir {
                what: "a Bundle entry that is not an object",
            });
        };
        let (shell, had_entry, inner_entries) = take_nested(&mut fields)?;
        out.push(Node::Container(Container {
            fields,
            shell,
            had_entry,
            children: tree(inner_entries, map, leaves)?,
        }));
    }
    Ok(out)
}

/// Takes a nested Bundle out of its entry: its fields but `entry`, whether
/// it had `entry`, and its entries.
fn take_nested(
    entry: &mut Map<String, Value>,
) -> FhirResult<(Map<String, Value>, bool, Vec<Value>)> {
    let inner = entry.remove("resource").unwrap_or(Value::Null);
    let had_entry = inner.get("entry").is_some();
    match unpack(inner)? {
        (Shell::Bundle(shell), entries) => Ok((shell, had_entry, entries)),
        (Shell::Resource, _) => Err(FhirError::NotFhir {
            what: "a nested Bundle that is not a Bundle",
        }),
    }
}

/// Appends the position marker to an entry.
fn mark(mut e: Map<String, Value>, position: usize) -> FhirResult<Value> {
    let marker = json!({"url": POSITION_EXTENSION, "valueInteger": position});
    match e.get_mut("extension") {
        None => {
            e.insert("extension".into(), json!([marker]));
        }
        Some(Value::Array(a)) if !a.is_empty() => a.push(marker),
        Some(_) => {
            return Err(FhirError::NotFhir {
                what: "an entry's extension is not a non-empty list",
            });
        }
    }
    Ok(Value::Object(e))
}

/// Takes the position marker off an entry: its position, if it had one.
fn unmark(e: &mut Map<String, Value>) -> Option<u64> {
    let list = e.get_mut("extension")?.as_array_mut()?;
    let last = list.last()?;
    if last.get("url") != Some(&json!(POSITION_EXTENSION)) {
        return None;
    }
    let position = last.get("valueInteger")?.as_u64()?;
    list.pop();
    if list.is_empty() {
        e.remove("extension");
    }
    Some(position)
}

/// The labels a node goes to: a resource's, or for a nested Bundle, those
/// of its entries (`fallback` when it has none).
fn node_labels(
    n: &Node,
    labels: &[BTreeSet<PortionLabel>],
    fallback: &PortionLabel,
) -> BTreeSet<PortionLabel> {
    match n {
        Node::Leaf(i) => labels.get(*i).cloned().unwrap_or_default(),
        Node::Container(c) => {
            let mut out = BTreeSet::new();
            for child in &c.children {
                out.extend(node_labels(child, labels, fallback));
            }
            if out.is_empty() {
                out.insert(fallback.clone());
            }
            out
        }
    }
}

/// A nested Bundle's share of portion `label`, as an entry at `position`.
fn piece(
    c: &Container,
    position: usize,
    label: &PortionLabel,
    leaves: &mut [Value],
    labels: &[BTreeSet<PortionLabel>],
    fallback: &PortionLabel,
) -> FhirResult<Value> {
    let mut inner = c.shell.clone();
    let mut entries = Vec::new();
    for (i, child) in c.children.iter().enumerate() {
        if !node_labels(child, labels, fallback).contains(label) {
            continue;
        }
        entries.push(match child {
            Node::Leaf(k) => match take_leaf(leaves, labels, *k) {
                Some(Value::Object(o)) => mark(o, i)?,
                _ => {
                    return Err(FhirError::NotFhir {
                        what: "a Bundle entry that is not an object",
                    });
                }
            },
            Node::Container(d) => piece(d, i, label, leaves, labels, fallback)?,
        });
    }
    if c.had_entry {
        inner.insert("entry".into(), Value::Array(entries));
    }
    let mut e = c.fields.clone();
    e.insert("resource".into(), Value::Object(inner));
    mark(e, position)
}

/// A resource's entry for one of its portions: moved out when that is its
/// only portion (each resource is visited once per portion), else copied.
fn take_leaf(leaves: &mut [Value], labels: &[BTreeSet<PortionLabel>], k: usize) -> Option<Value> {
    let single = labels.get(k).is_some_and(|s| s.len() == 1);
    let e = leaves.get_mut(k)?;
    Some(if single {
        core::mem::take(e)
    } else {
        e.clone()
    })
}

fn count_nodes(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Leaf(_) => 1,
            Node::Container(c) => 1 + count_nodes(&c.children),
        })
        .sum()
}

/// Cuts a JSON Bundle (or one JSON resource) into portions.
///
/// Every entry lands in exactly one portion, except directory resources
/// ([`Placement::WithReferrers`]), which are copied into each portion that
/// refers to them. Nothing is dropped: a type the mapping does not name
/// goes to its [`Unknown`](super::Unknown) portion (listed by
/// [`Split::defaulted`]) or the split is refused.
///
/// A Bundle inside the Bundle (at any depth) is split too
/// ([`Nested::Recurse`]): each of its entries goes where the mapping puts
/// it, and each portion with some of them gets the nested Bundle's own
/// fields and those entries, each marked with its position
/// ([`POSITION_EXTENSION`]), so that reassembly restores the nested Bundle
/// exactly; one with no entries goes with the mapping's first label. With
/// [`Nested::Refuse`] the split is refused.
///
/// An entry without a resource (a `DELETE` or conditional `GET` of a
/// transaction, an entry of a transaction-response) goes where a resource
/// of the type its `request.url` (or `response.location`) names would go.
///
/// # Errors
/// [`FhirError::Json`] for input that is not JSON; [`FhirError::NotFhir`]
/// for JSON that is not a resource, a Bundle whose `entry` is not a list
/// of objects, or an entry already carrying [`POSITION_EXTENSION`];
/// [`FhirError::UnmappedType`] under [`Unknown::Refuse`](super::Unknown::Refuse);
/// [`FhirError::NestedBundle`] under [`Nested::Refuse`].
pub fn split(json: &[u8], map: &PortionMap) -> FhirResult<Split> {
    split_value(serde_json::from_slice(json)?, map)
}

/// [`split`] of a parsed value.
///
/// # Errors
/// As [`split`], without [`FhirError::Json`].
pub fn split_value(input: Value, map: &PortionMap) -> FhirResult<Split> {
    let (shell, entries) = unpack(input)?;
    let mut leaves: Vec<Value> = Vec::new();
    let nodes = tree(entries, map, &mut leaves)?;
    let order = map.labels();

    // Where each resource goes: its own portion, or (directory resources)
    // the portions that refer to it.
    let mut labels: Vec<BTreeSet<PortionLabel>> = vec![BTreeSet::new(); leaves.len()];
    let mut directory: Vec<(usize, PortionLabel)> = Vec::new();
    let mut is_directory = vec![false; leaves.len()];
    let mut defaulted = Vec::new();
    for (i, e) in leaves.iter().enumerate() {
        match place_entry(map, e)? {
            (Placement::Portion(l), by_default) => {
                if by_default {
                    defaulted.push(entry_name(e));
                }
                if let Some(s) = labels.get_mut(i) {
                    s.insert(l);
                }
            }
            (Placement::WithReferrers { unreferenced }, _) => {
                directory.push((i, unreferenced));
                if let Some(d) = is_directory.get_mut(i) {
                    *d = true;
                }
            }
        }
    }

    // Which portions refer to each directory resource: directly, then
    // through other directory resources until nothing changes.
    // A name can be several entries' (duplicate fullUrls, versions): a
    // reference reaches all of them.
    let mut names: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (d, (i, _)) in directory.iter().enumerate() {
        if let Some(e) = leaves.get(*i) {
            for n in reference_names(e) {
                names.entry(n).or_default().push(d);
            }
        }
    }
    let mut wanted: Vec<BTreeSet<PortionLabel>> = vec![BTreeSet::new(); directory.len()];
    for (i, e) in leaves.iter().enumerate() {
        let Some(home) = labels.get(i).filter(|s| !s.is_empty()) else {
            continue;
        };
        for r in references(e) {
            for &d in names.get(r).into_iter().flatten() {
                if let Some(w) = wanted.get_mut(d) {
                    w.extend(home.iter().cloned());
                }
            }
        }
    }
    // The directory resources each directory resource refers to.
    let links: Vec<Vec<usize>> = directory
        .iter()
        .enumerate()
        .map(|(d, (i, _))| {
            let mut to: Vec<usize> = leaves
                .get(*i)
                .map(references)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| names.get(r))
                .flatten()
                .copied()
                .filter(|&j| j != d)
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
            for (d, to) in links.iter().enumerate() {
                let from = wanted.get(d).cloned().unwrap_or_default();
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
    for (w, (_, unreferenced)) in wanted.iter_mut().zip(&directory) {
        if w.is_empty() {
            w.insert(unreferenced.clone());
        }
    }
    propagate(&mut wanted);
    for ((i, _), w) in directory.iter().zip(wanted) {
        if let Some(s) = labels.get_mut(*i) {
            *s = w;
        }
    }

    // The portions, in the mapping's label order, then any other.
    let fallback = order.first().cloned();
    let mut all: Vec<PortionLabel> = order.clone();
    for s in &labels {
        for l in s {
            if !all.contains(l) {
                all.push(l.clone());
            }
        }
    }
    let mut portions: Vec<SplitPortion> = Vec::new();
    for l in &all {
        let mut own = Vec::new();
        let mut copies = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            match n {
                Node::Leaf(k) => {
                    if labels.get(*k).is_some_and(|s| s.contains(l))
                        && let Some(e) = take_leaf(&mut leaves, &labels, *k)
                    {
                        if is_directory.get(*k).copied().unwrap_or(false) {
                            copies.push(e);
                        } else {
                            own.push(e);
                        }
                    }
                }
                Node::Container(c) => {
                    let fallback = fallback.as_ref().ok_or(FhirError::NotFhir {
                        what: "a nested Bundle and a mapping without portions",
                    })?;
                    if node_labels(n, &labels, fallback).contains(l) {
                        own.push(piece(c, i, l, &mut leaves, &labels, fallback)?);
                    }
                }
            }
        }
        if own.is_empty() && copies.is_empty() {
            continue;
        }
        let n_copies = copies.len();
        own.extend(copies);
        portions.push(SplitPortion {
            label: l.clone(),
            entries: own,
            copies: n_copies,
        });
    }
    if portions.is_empty() && matches!(shell, Shell::Bundle(_)) {
        // An empty Bundle still has its own fields to keep: one empty
        // portion carries them.
        let label = fallback.ok_or(FhirError::NotFhir {
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
        resources: count_nodes(&nodes),
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

    /// How many resources the input held, at every depth (a nested Bundle
    /// and each of its entries; directory copies counted once).
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
    /// compare against it). All of them share one fresh record id, with
    /// either granularity: the Bundle is the record, and a
    /// [`Reassembler`] refuses portions of another.
    ///
    /// # Errors
    /// [`FhirError::NoKey`] if `keys` has no key for a label that has
    /// resources (nothing is sealed then); [`FhirError::Crypto`] if sealing
    /// fails.
    ///
    /// With [`crate::HybridPortionKey`]s the portions are sealed hybrid
    /// (post-quantum, DESIGN §16); they open and reassemble as any other.
    pub fn seal<K: crate::SealingKey>(
        &self,
        keys: &[K],
        granularity: Granularity,
        created_at: u64,
    ) -> FhirResult<Vec<SealedFhir>> {
        let key = |l: &PortionLabel| {
            keys.iter()
                .find(|k| k.portion_key().label() == l)
                .ok_or_else(|| FhirError::NoKey(l.to_string()))
        };
        for p in &self.portions {
            key(&p.label)?;
        }
        let record = RecordId::random();
        let mut out = Vec::new();
        for (label, text, resources) in self.units(granularity)? {
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

/// A nested Bundle's share of the portions added so far.
#[derive(Clone, Debug, PartialEq)]
struct Piece {
    fields: Map<String, Value>,
    shell: Map<String, Value>,
    had_entry: bool,
    children: BTreeMap<u64, Child>,
}

/// An entry of a nested Bundle, by position.
#[derive(Clone, Debug, PartialEq)]
enum Child {
    Leaf(Value),
    Piece(Piece),
}

impl Piece {
    /// `other` (another portion's share of the same nested Bundle) merged
    /// in.
    fn merge(mut self, other: Self) -> FhirResult<Self> {
        if self.fields != other.fields
            || self.shell != other.shell
            || self.had_entry != other.had_entry
        {
            return Err(FhirError::Inconsistent(
                "the shares of a nested Bundle differ".into(),
            ));
        }
        for (position, child) in other.children {
            let merged = match (self.children.remove(&position), child) {
                (None, c) => c,
                (Some(Child::Leaf(a)), Child::Leaf(b)) if a == b => Child::Leaf(a),
                (Some(Child::Piece(a)), Child::Piece(b)) => Child::Piece(a.merge(b)?),
                _ => {
                    return Err(FhirError::Inconsistent(
                        "two portions hold different entries at one place of a nested Bundle"
                            .into(),
                    ));
                }
            };
            self.children.insert(position, merged);
        }
        Ok(self)
    }

    fn into_entry(self) -> Value {
        let mut inner = self.shell;
        if self.had_entry {
            let entries = self
                .children
                .into_values()
                .map(|c| match c {
                    Child::Leaf(v) => v,
                    Child::Piece(p) => p.into_entry(),
                })
                .collect();
            inner.insert("entry".into(), Value::Array(entries));
        }
        let mut e = self.fields;
        e.insert("resource".into(), Value::Object(inner));
        Value::Object(e)
    }
}

/// Rebuilds a Bundle from opened portions, each bound to its record.
///
/// Entries come out grouped by portion in the mapping's label order, each
/// portion's in the order they were sealed, a directory resource once (at
/// its first portion); nested Bundles come back whole, their entries in
/// their places; for a `document` Bundle the Composition comes first.
/// [`compare`] compares Bundles modulo exactly that ordering.
///
/// Every portion added must come from the same record as the first (the
/// same record id and creation time in its header): portions of another
/// Bundle or another patient are refused ([`FhirError::OtherRecord`]). A
/// label is added once ([`Granularity::PerPortion`]; with
/// [`Reassembler::granularity`] `PerResource`, each sealed object once):
/// a second version is refused ([`FhirError::DuplicatePortion`]). Given
/// the patient's portion public keys ([`Reassembler::expect_keys`]), a
/// portion sealed under any other key is refused
/// ([`FhirError::OtherPatient`]): anyone holding a portion public key can
/// seal under it, so a reader who knows the patient's keys should give
/// them.
///
/// Each resource is checked against the mapping: one that the mapping
/// places in another portion is refused ([`FhirError::Misfiled`]), so a
/// portion cannot smuggle resources of another, at any depth. Use
/// [`Reassembler::without_placement_check`] to rebuild records sealed under
/// an older mapping. Errors name types and labels, never an identifier
/// from the record.
#[derive(Debug)]
pub struct Reassembler<'m> {
    map: &'m PortionMap,
    check: bool,
    granularity: Granularity,
    keys: Option<Vec<PortionPublicKey>>,
    /// The record id and creation time of the first portion added.
    record: Option<(RecordId, u64)>,
    labels: BTreeSet<PortionLabel>,
    headers: BTreeSet<Vec<u8>>,
    shell: Option<Shell>,
    portions: BTreeMap<PortionLabel, Vec<Value>>,
    /// Directory resources by content: the first portion that had one, the
    /// entry, how many times each portion had it (a portion's copies are
    /// all of the input's: the most any portion had is the input's count).
    directory: BTreeMap<String, (PortionLabel, Value, BTreeMap<PortionLabel, usize>)>,
    /// Nested Bundles by position: the first portion that had a share, the
    /// shares merged.
    nested: BTreeMap<u64, (PortionLabel, Piece)>,
}

impl<'m> Reassembler<'m> {
    /// A reassembler of portions sealed [`Granularity::PerPortion`] that
    /// checks placements against `map`.
    pub fn new(map: &'m PortionMap) -> Self {
        Self {
            map,
            check: true,
            granularity: Granularity::PerPortion,
            keys: None,
            record: None,
            labels: BTreeSet::new(),
            headers: BTreeSet::new(),
            shell: None,
            portions: BTreeMap::new(),
            directory: BTreeMap::new(),
            nested: BTreeMap::new(),
        }
    }

    /// A reassembler that orders by `map` but accepts any placement.
    pub fn without_placement_check(map: &'m PortionMap) -> Self {
        Self {
            check: false,
            ..Self::new(map)
        }
    }

    /// For portions sealed with `granularity` (as given to
    /// [`Split::seal`]).
    #[must_use]
    pub fn granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// Accepts only portions sealed under one of `keys` (the patient's
    /// portion public keys, of the labels and epochs the reader expects).
    #[must_use]
    pub fn expect_keys(mut self, keys: &[PortionPublicKey]) -> Self {
        self.keys = Some(keys.to_vec());
        self
    }

    /// Adds one opened portion: the header it was sealed with
    /// ([`SealedPortion::header`]) and its plaintext (as sealed: see
    /// [`Split::plaintexts`]). The portion's label is the header's.
    ///
    /// # Errors
    /// [`FhirError::OtherPatient`], [`FhirError::OtherRecord`],
    /// [`FhirError::DuplicatePortion`] as above; [`FhirError::Json`] or
    /// [`FhirError::NotFhir`] for a plaintext that is not a portion;
    /// [`FhirError::Inconsistent`] if it comes from another Bundle than
    /// the portions added before (other Bundle fields, other shares of a
    /// nested Bundle), or a per-resource portion holds several entries;
    /// [`FhirError::Misfiled`]; [`FhirError::NestedBundle`] for a nested
    /// Bundle when the mapping refuses them. A failed call adds nothing.
    pub fn add(&mut self, header: &PortionHeader, plaintext: &[u8]) -> FhirResult<()> {
        let context = header.context();
        let label = context.label();
        if let Some(keys) = &self.keys
            && !keys.iter().any(|k| {
                k.label() == label
                    && k.epoch() == context.epoch()
                    && k.key() == context.portion_key()
            })
        {
            return Err(FhirError::OtherPatient);
        }
        let record = (context.record_id(), context.created_at());
        if self.record.is_some_and(|r| r != record) {
            return Err(FhirError::OtherRecord);
        }
        // Per resource, a label comes many times: each sealed object once.
        let header_bytes =
            (self.granularity == Granularity::PerResource).then(|| header.to_bytes());
        let duplicate = match &header_bytes {
            None => self.labels.contains(label),
            Some(b) => self.headers.contains(b),
        };
        if duplicate {
            return Err(FhirError::DuplicatePortion {
                label: label.to_string(),
            });
        }
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
        if self.granularity == Granularity::PerResource && entries.len() > 1 {
            return Err(FhirError::Inconsistent(
                "a per-resource portion holds several entries".into(),
            ));
        }
        // Check everything before keeping anything.
        let mut own = Vec::new();
        let mut directory: BTreeMap<String, (Value, usize)> = BTreeMap::new();
        let mut pieces: Vec<(u64, Piece)> = Vec::new();
        let mut positions = BTreeSet::new();
        for e in entries {
            if is_bundle_entry(&e) && (self.check || has_position(&e)) {
                let (position, p) = self.parse_piece(e, label)?;
                if !positions.insert(position) {
                    return Err(FhirError::Inconsistent(
                        "two nested Bundles at one place".into(),
                    ));
                }
                let merged = match self.nested.get(&position) {
                    Some((_, existing)) => existing.clone().merge(p)?,
                    None => p,
                };
                pieces.push((position, merged));
                continue;
            }
            match self.placement(&e, label)? {
                // Copies of one directory resource are identical in every
                // portion: kept once (as often as one portion has it).
                Placement::WithReferrers { .. } => {
                    directory.entry(e.to_string()).or_insert((e, 0)).1 += 1;
                }
                Placement::Portion(_) => own.push(e),
            }
        }
        self.record = Some(record);
        self.labels.insert(label.clone());
        if let Some(b) = header_bytes {
            self.headers.insert(b);
        }
        self.shell = Some(shell);
        self.portions.entry(label.clone()).or_default().extend(own);
        for (key, (e, n)) in directory {
            let kept = self
                .directory
                .entry(key)
                .or_insert_with(|| (label.clone(), e, BTreeMap::new()));
            // Per resource, one portion's copies come one by one.
            *kept.2.entry(label.clone()).or_default() += n;
        }
        for (position, p) in pieces {
            let first = self
                .nested
                .remove(&position)
                .map_or_else(|| label.clone(), |(l, _)| l);
            self.nested.insert(position, (first, p));
        }
        Ok(())
    }

    /// Where an entry of portion `label` goes, checked against the
    /// mapping unless the check is off.
    fn placement(&self, e: &Value, label: &PortionLabel) -> FhirResult<Placement> {
        if !self.check {
            return Ok(match place_entry(self.map, e) {
                Ok((p, _)) => p,
                Err(_) => Placement::Portion(label.clone()),
            });
        }
        let (p, _) = place_entry(self.map, e)?;
        if matches!(&p, Placement::Portion(l) if l != label) {
            return Err(FhirError::Misfiled {
                resource_type: entry_type(e),
                label: label.to_string(),
            });
        }
        Ok(p)
    }

    /// A share of a nested Bundle, every entry in it checked.
    fn parse_piece(&self, e: Value, label: &PortionLabel) -> FhirResult<(u64, Piece)> {
        if self.check && self.map.nested_policy() == Nested::Refuse {
            return Err(FhirError::NestedBundle);
        }
        let unplaced = FhirError::NotFhir {
            what: "an entry of a nested Bundle without its position",
        };
        let Value::Object(mut fields) = e else {
            return Err(unplaced);
        };
        let position = unmark(&mut fields).ok_or(unplaced)?;
        let (shell, had_entry, entries) = take_nested(&mut fields)?;
        let mut children = BTreeMap::new();
        for child in entries {
            let (at, c) = if is_bundle_entry(&child) {
                let (at, p) = self.parse_piece(child, label)?;
                (at, Child::Piece(p))
            } else {
                self.placement(&child, label)?;
                let Value::Object(mut o) = child else {
                    return Err(FhirError::NotFhir {
                        what: "a Bundle entry that is not an object",
                    });
                };
                let at = unmark(&mut o).ok_or(FhirError::NotFhir {
                    what: "an entry of a nested Bundle without its position",
                })?;
                (at, Child::Leaf(Value::Object(o)))
            };
            if children.insert(at, c).is_some() {
                return Err(FhirError::Inconsistent(
                    "two entries at one place of a nested Bundle".into(),
                ));
            }
        }
        Ok((
            position,
            Piece {
                fields,
                shell,
                had_entry,
                children,
            },
        ))
    }

    /// The rebuilt Bundle (or the single resource).
    ///
    /// # Errors
    /// [`FhirError::Empty`] if nothing was added.
    pub fn finish(self) -> FhirResult<Value> {
        let shell = self.shell.ok_or(FhirError::Empty)?;
        let mut portions = self.portions;
        for (_, (l, p)) in self.nested {
            portions.entry(l).or_default().push(p.into_entry());
        }
        let mut directory: BTreeMap<PortionLabel, Vec<Value>> = BTreeMap::new();
        for (_, (l, e, counts)) in self.directory {
            let n = counts.into_values().max().unwrap_or(1);
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

    /// Headers of one record of one patient, to add plaintexts under.
    struct Record {
        patient: crate::PatientKeys,
        id: RecordId,
    }

    impl Record {
        fn new() -> FhirResult<Self> {
            Ok(Self {
                patient: crate::PatientKeys::generate(crate::Identity::new("patient-t")?),
                id: RecordId::random(),
            })
        }
        fn header(&self, label: &PortionLabel) -> FhirResult<PortionHeader> {
            let key = self.patient.portion_public(label, 0);
            Ok(SealedPortion::seal(&key, self.id, 0, b"")?.header().clone())
        }
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
        let record = Record::new()?;
        let mut r = Reassembler::new(&map);
        match r.add(&record.header(&personal)?, lab_text) {
            Err(e @ FhirError::Misfiled { .. }) => {
                // The type, never an id or URL from the record.
                assert_eq!(
                    e.to_string(),
                    "a resource of type Observation does not belong in portion personal"
                );
            }
            other => return Err(FhirError::Inconsistent(format!("{other:?}"))),
        }
        r.add(&record.header(&lab)?, lab_text)?;
        let mut other = bundle();
        other["type"] = json!("collection");
        let other_texts = split_value(other, &map)?.plaintexts(Granularity::PerPortion)?;
        assert!(matches!(
            r.add(&record.header(&personal)?, &other_texts[0].1),
            Err(FhirError::Inconsistent(_))
        ));
        let medical = record.header(&PortionLabel::from_static("medical"))?;
        assert!(matches!(
            r.add(&medical, b"[1]"),
            Err(FhirError::NotFhir { .. })
        ));
        assert!(matches!(r.add(&medical, b"{"), Err(FhirError::Json(_))));
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
            let mut r = Reassembler::new(&map).granularity(g);
            r.add(&Record::new()?.header(&texts[0].0)?, &texts[0].1)?;
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
