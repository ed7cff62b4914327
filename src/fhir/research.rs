//! The research export: HIPAA Safe Harbor on the personal portion, then
//! k-anonymity over the quasi-identifiers by Mondrian generalization.
//!
//! Safe Harbor (45 CFR 164.514(b)(2)) removes 18 kinds of identifiers. This
//! module does not delete fields from a Patient resource; it builds a fixed
//! record from an allowlist, so nothing it does not name can survive:
//!
//! | kept | how |
//! |---|---|
//! | age | in whole years at a reference date (at death, if earlier); 90 and over as `90+` with no birth year |
//! | sex | `Patient.gender` (`female`, `male`, `other`, `unknown`) |
//! | 3-digit ZIP | of the home address, only where the 3-digit area holds more than 20,000 people ([`Zip3Table`]); otherwise, or without one, `000` |
//!
//! Every other field is dropped: names, street, city, county, the full
//! ZIP code, every date element but the year (none is kept; the age stands
//! for it), telecom (phone, fax, e-mail, URLs), identifiers (SSN, MRN,
//! health plan, account, licence, device, any other number), extensions
//! (vehicle, IP address, biometric or anything else), photos, contacts,
//! narrative, and the resource's own id. Research attributes the caller
//! adds ([`ResearchRecord::attributes`], e.g. condition codes) are copied
//! as given: they must not carry identifiers (use [`year_of`] for dates).
//!
//! [`k_anonymize`] then generalizes age, sex and ZIP3 with Mondrian
//! (strict multidimensional partitioning at the median of the widest
//! normalized dimension, never leaving a part with fewer than k records),
//! reports the k reached (the smallest group), and refuses to emit a table
//! below the k asked for.
//!
//! ```
//! use sesphr::fhir::research::{k_anonymize, safe_harbor, ResearchRecord, Zip3Table};
//! let zips = Zip3Table::census_2000();
//! let mut records = Vec::new();
//! for (birth, zip) in [("1950-02-01", "02139"), ("1952-07-04", "02446"), ("1930-01-01", "03601")] {
//!     let patient = serde_json::json!({"resourceType": "Patient", "gender": "female",
//!         "birthDate": birth, "address": [{"postalCode": zip}]});
//!     records.push(ResearchRecord::new(safe_harbor(&patient, "2026-01-01", &zips)?, vec![]));
//! }
//! let table = k_anonymize(&records, 3)?;
//! assert_eq!(table.k, 3);
//! assert_eq!(table.rows[0].age, "73-90+");
//! assert_eq!(table.rows[0].zip3, "000-024");
//! assert!(k_anonymize(&records, 4).is_err());
//! # Ok::<(), sesphr::fhir::FhirError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::json;

use super::dates::{Date, parse_date};
use super::{FhirError, FhirResult, Value};

/// A 3-digit ZIP area must hold more than this many people to be kept.
///
pub const ZIP3_MIN_POPULATION: u64 = 20_000;

/// The 3-digit ZIP areas that HHS's Safe Harbor guidance lists as holding
/// 20,000 people or fewer (2000 Census): their ZIP3 is replaced by `000`.
pub const CENSUS_2000_RESTRICTED_ZIP3: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878",
    "879", "884", "890", "893",
];

/// Which 3-digit ZIP areas are populous enough to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zip3Table {
    kind: Zip3Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Zip3Kind {
    /// Every area is kept except these.
    Restricted(BTreeSet<String>),
    /// Only these areas with more than 20,000 people are kept; an area not
    /// listed is not.
    Populations(BTreeMap<String, u64>),
}

impl Zip3Table {
    /// The table HHS publishes with the Safe Harbor guidance (2000 Census):
    /// every 3-digit area is kept except the 17 in
    /// [`CENSUS_2000_RESTRICTED_ZIP3`].
    pub fn census_2000() -> Self {
        Self {
            kind: Zip3Kind::Restricted(
                CENSUS_2000_RESTRICTED_ZIP3
                    .iter()
                    .map(|z| (*z).to_owned())
                    .collect(),
            ),
        }
    }

    /// A table from current census figures: `(3-digit ZIP, population)`.
    /// Areas above [`ZIP3_MIN_POPULATION`] are kept; an area the table does
    /// not list is not.
    ///
    /// # Errors
    /// [`FhirError::NotFhir`] if a ZIP3 is not three digits.
    pub fn from_populations<S: AsRef<str>>(
        rows: impl IntoIterator<Item = (S, u64)>,
    ) -> FhirResult<Self> {
        let mut m = BTreeMap::new();
        for (z, n) in rows {
            let z = z.as_ref();
            if z.len() != 3 || !z.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FhirError::NotFhir {
                    what: "a 3-digit ZIP of the population table",
                });
            }
            m.insert(z.to_owned(), n);
        }
        Ok(Self {
            kind: Zip3Kind::Populations(m),
        })
    }

    /// [`Zip3Table::from_populations`] from CSV lines `zip3,population`
    /// (a header line and blank lines are skipped).
    ///
    /// # Errors
    /// [`FhirError::NotFhir`] for a line that is not `zip3,population`.
    pub fn from_csv(text: &str) -> FhirResult<Self> {
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parsed = line
                .split_once(',')
                .and_then(|(z, n)| Some((z.trim().to_owned(), n.trim().parse::<u64>().ok()?)));
            match parsed {
                Some(r) => rows.push(r),
                None if i == 0 => {}
                None => {
                    return Err(FhirError::NotFhir {
                        what: "a line of the ZIP3 table that is not zip3,population",
                    });
                }
            }
        }
        Self::from_populations(rows)
    }

    /// The Safe Harbor 3-digit ZIP of a postal code: its first three digits
    /// if that area is kept, else `000` (also for anything that is not a
    /// US ZIP code).
    pub fn zip3(&self, postal_code: &str) -> String {
        let digits: String = postal_code.chars().take(5).collect();
        if digits.len() != 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return "000".into();
        }
        let Some(z) = digits.get(..3) else {
            return "000".into();
        };
        let kept = match &self.kind {
            Zip3Kind::Restricted(r) => !r.contains(z),
            Zip3Kind::Populations(p) => p.get(z).is_some_and(|&n| n > ZIP3_MIN_POPULATION),
        };
        if kept { z.to_owned() } else { "000".into() }
    }
}

/// An age under Safe Harbor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Age {
    /// Whole years, under 90.
    Years(u8),
    /// 90 or older.
    NinetyOrOlder,
    /// No birth date.
    Unknown,
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Years(y) => write!(f, "{y}"),
            Self::NinetyOrOlder => f.write_str("90+"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// What Safe Harbor keeps of a Patient: age, sex, 3-digit ZIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafeHarborPerson {
    /// Age at the reference date (at death, if earlier).
    pub age: Age,
    /// `female`, `male`, `other` or `unknown`.
    pub sex: &'static str,
    /// The 3-digit ZIP, or `000`.
    pub zip3: String,
}

/// Safe Harbor of a Patient resource (the personal portion) at the
/// reference date `as_of` (a FHIR date, e.g. the export date).
///
/// # Errors
/// [`FhirError::NotFhir`] if `patient` is not a Patient;
/// [`FhirError::BadDate`] if `as_of`, `birthDate` or `deceasedDateTime` is
/// not a FHIR date.
pub fn safe_harbor(patient: &Value, as_of: &str, zips: &Zip3Table) -> FhirResult<SafeHarborPerson> {
    if patient.get("resourceType") != Some(&json!("Patient")) {
        return Err(FhirError::NotFhir {
            what: "Safe Harbor takes a Patient resource",
        });
    }
    let mut at = parse_date(as_of)?;
    if let Some(d) = patient.get("deceasedDateTime").and_then(Value::as_str) {
        at = at.min(parse_date(d)?);
    }
    let age = match patient.get("birthDate").and_then(Value::as_str) {
        None => Age::Unknown,
        Some(b) => {
            let years = age_at(parse_date(b)?, at);
            match u8::try_from(years) {
                Ok(y) if y < 90 => Age::Years(y),
                Ok(_) => Age::NinetyOrOlder,
                Err(_) if years < 0 => Age::Unknown,
                Err(_) => Age::NinetyOrOlder,
            }
        }
    };
    let sex = match patient.get("gender").and_then(Value::as_str) {
        Some("female") => "female",
        Some("male") => "male",
        Some("other") => "other",
        _ => "unknown",
    };
    let addresses: Vec<&Value> = patient
        .get("address")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let home = addresses
        .iter()
        .find(|a| a.get("use") == Some(&json!("home")))
        .or(addresses.first());
    let zip3 = home
        .and_then(|a| a.get("postalCode"))
        .and_then(Value::as_str)
        .map_or_else(|| "000".to_owned(), |z| zips.zip3(z));
    Ok(SafeHarborPerson { age, sex, zip3 })
}

/// Whole years from `birth` to `at`. With the month or day of birth
/// unknown, the largest age it can be (so that the 90 cap errs on the safe
/// side).
fn age_at(birth: Date, at: Date) -> i64 {
    let mut years = at.year - birth.year;
    let before_birthday = match (birth.month, birth.day, at.month, at.day) {
        (Some(bm), bd, Some(am), ad) => (am, ad.unwrap_or(31)) < (bm, bd.unwrap_or(1)),
        _ => false,
    };
    if before_birthday {
        years -= 1;
    }
    years
}

/// The year of a FHIR date or dateTime (Safe Harbor keeps only years).
///
/// # Errors
/// [`FhirError::BadDate`].
pub fn year_of(date: &str) -> FhirResult<String> {
    Ok(parse_date(date)?.year.to_string())
}

/// One person in the research export: the Safe Harbor quasi-identifiers and
/// research attributes (condition codes, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResearchRecord {
    /// Age, sex, ZIP3.
    pub person: SafeHarborPerson,
    /// Research attributes, copied as given (no identifiers).
    pub attributes: Vec<String>,
}

impl ResearchRecord {
    /// A record.
    pub fn new(person: SafeHarborPerson, attributes: Vec<String>) -> Self {
        Self { person, attributes }
    }

    /// The quasi-identifiers as numbers: age (unknown −1, 90+ 90), sex
    /// (female 0, male 1, other 2, unknown 3), ZIP3.
    fn point(&self) -> [i64; 3] {
        let age = match self.person.age {
            Age::Years(y) => i64::from(y),
            Age::NinetyOrOlder => 90,
            Age::Unknown => -1,
        };
        let sex = SEXES
            .iter()
            .position(|s| *s == self.person.sex)
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or(3);
        let zip = self.person.zip3.parse().unwrap_or(0);
        [age, sex, zip]
    }
}

const SEXES: [&str; 4] = ["female", "male", "other", "unknown"];

/// One row of a k-anonymous table: generalized quasi-identifiers and the
/// record's attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KRow {
    /// An age or range (`45`, `40-49`, `85-90+`, `90+`).
    pub age: String,
    /// A sex, or the sexes of the group joined by `|`.
    pub sex: String,
    /// A 3-digit ZIP or a range (`021-024`).
    pub zip3: String,
    /// The record's research attributes.
    pub attributes: Vec<String>,
}

/// A table in which every combination of (age, sex, ZIP3) is shared by at
/// least `k` rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KAnonymousTable {
    /// The k asked for.
    pub requested: usize,
    /// The k reached: the size of the smallest group (at least
    /// `requested`).
    pub k: usize,
    /// How many groups of equal quasi-identifiers.
    pub groups: usize,
    /// The rows, ordered by group (not in input order).
    pub rows: Vec<KRow>,
}

impl KAnonymousTable {
    /// The table as a JSON array of objects (`age`, `sex`, `zip3`,
    /// `attributes`).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| json!({"age": r.age, "sex": r.sex, "zip3": r.zip3, "attributes": r.attributes}))
                .collect(),
        )
    }
}

impl fmt::Display for KAnonymousTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<8} {:<20} {:<9} attributes", "age", "sex", "zip3")?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<8} {:<20} {:<9} {}",
                r.age,
                r.sex,
                r.zip3,
                r.attributes.join(" ")
            )?;
        }
        Ok(())
    }
}

/// Generalizes `records` to a k-anonymous table by Mondrian.
///
/// # Errors
/// [`FhirError::KTooSmall`] for k below 2; [`FhirError::KUnreachable`] if
/// there are fewer than k records (nothing is emitted).
pub fn k_anonymize(records: &[ResearchRecord], k: usize) -> FhirResult<KAnonymousTable> {
    if k < 2 {
        return Err(FhirError::KTooSmall(k));
    }
    if records.len() < k {
        return Err(FhirError::KUnreachable {
            requested: k,
            achievable: records.len(),
        });
    }
    let points: Vec<[i64; 3]> = records.iter().map(ResearchRecord::point).collect();
    let mut spans = [1i64; 3];
    for (d, span) in spans.iter_mut().enumerate() {
        let (lo, hi) = bounds(&points, (0..points.len()).collect::<Vec<_>>().as_slice(), d);
        *span = (hi - lo).max(1);
    }
    let mut groups = Vec::new();
    let mut stack = vec![(0..points.len()).collect::<Vec<usize>>()];
    while let Some(part) = stack.pop() {
        match cut(&points, &part, k, &spans) {
            Some((a, b)) => {
                stack.push(a);
                stack.push(b);
            }
            None => groups.push(part),
        }
    }
    groups.sort_by_key(|g| g.iter().map(|&i| points.get(i).copied()).min());
    let mut rows = Vec::with_capacity(records.len());
    let mut reached = usize::MAX;
    for g in &groups {
        reached = reached.min(g.len());
        let (alo, ahi) = bounds(&points, g, 0);
        let (zlo, zhi) = bounds(&points, g, 2);
        let age = |a: i64| match a {
            -1 => "unknown".to_owned(),
            90.. => "90+".to_owned(),
            a => a.to_string(),
        };
        let age = if alo == ahi {
            age(alo)
        } else {
            format!("{}-{}", age(alo), age(ahi))
        };
        let zip3 = if zlo == zhi {
            format!("{zlo:03}")
        } else {
            format!("{zlo:03}-{zhi:03}")
        };
        let sexes: BTreeSet<&str> = g
            .iter()
            .filter_map(|&i| records.get(i))
            .map(|r| r.person.sex)
            .collect();
        let sex = sexes.into_iter().collect::<Vec<_>>().join("|");
        let mut members: Vec<&ResearchRecord> = g.iter().filter_map(|&i| records.get(i)).collect();
        members.sort_by(|a, b| a.attributes.cmp(&b.attributes));
        for r in members {
            rows.push(KRow {
                age: age.clone(),
                sex: sex.clone(),
                zip3: zip3.clone(),
                attributes: r.attributes.clone(),
            });
        }
    }
    if reached < k || rows.len() != records.len() {
        // Mondrian never cuts below k; kept as a last check before emitting.
        return Err(FhirError::KUnreachable {
            requested: k,
            achievable: reached,
        });
    }
    Ok(KAnonymousTable {
        requested: k,
        k: reached,
        groups: groups.len(),
        rows,
    })
}

fn bounds(points: &[[i64; 3]], part: &[usize], d: usize) -> (i64, i64) {
    let mut vals = part
        .iter()
        .filter_map(|&i| points.get(i))
        .filter_map(|p| p.get(d).copied());
    let first = vals.next().unwrap_or(0);
    vals.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Mondrian's cut of one part: along the dimension of widest normalized
/// range first, at the median, into two parts of at least k each.
fn cut(
    points: &[[i64; 3]],
    part: &[usize],
    k: usize,
    spans: &[i64; 3],
) -> Option<(Vec<usize>, Vec<usize>)> {
    if part.len() < 2 * k {
        return None;
    }
    let mut dims: Vec<(i64, i64, usize)> = (0..3)
        .map(|d| {
            let (lo, hi) = bounds(points, part, d);
            // Compare (hi - lo) / span without floats: scale to a common base.
            let span = spans.get(d).copied().unwrap_or(1);
            ((hi - lo) * 1_000_000 / span, hi - lo, d)
        })
        .filter(|&(_, range, _)| range > 0)
        .collect();
    dims.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
    for (_, _, d) in dims {
        let value = |i: &usize| points.get(*i).and_then(|p| p.get(d)).copied().unwrap_or(0);
        let mut sorted = part.to_vec();
        sorted.sort_by_key(value);
        let median = sorted.get(sorted.len() / 2).map(value)?;
        for left_takes_median in [false, true] {
            let (a, b): (Vec<usize>, Vec<usize>) = sorted.iter().partition(|i| {
                if left_takes_median {
                    value(i) <= median
                } else {
                    value(i) < median
                }
            });
            if a.len() >= k && b.len() >= k {
                return Some((a, b));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(birth: &str, gender: &str, zip: &str) -> FhirResult<SafeHarborPerson> {
        let p = json!({"resourceType":"Patient","birthDate":birth,"gender":gender,
            "address":[{"use":"old","postalCode":"99999"},{"use":"home","postalCode":zip}]});
        safe_harbor(&p, "2026-01-01", &Zip3Table::census_2000())
    }

    #[test]
    fn ages_are_capped_at_90_and_counted_to_the_birthday() -> FhirResult<()> {
        assert_eq!(person("1936-01-02", "male", "10025")?.age, Age::Years(89));
        assert_eq!(
            person("1936-01-01", "male", "10025")?.age,
            Age::NinetyOrOlder
        );
        assert_eq!(person("1936", "male", "10025")?.age, Age::NinetyOrOlder);
        assert_eq!(
            person("1890-05-05", "male", "10025")?.age,
            Age::NinetyOrOlder
        );
        assert_eq!(person("1990-06", "female", "10025")?.age, Age::Years(35));
        let dead = json!({"resourceType":"Patient","birthDate":"1930-01-01","deceasedDateTime":"2000-06-01T00:00:00Z"});
        assert_eq!(
            safe_harbor(&dead, "2026-01-01", &Zip3Table::census_2000())?.age,
            Age::Years(70)
        );
        assert!(matches!(
            person("1936-13-01", "male", "10025"),
            Err(FhirError::BadDate)
        ));
        Ok(())
    }

    #[test]
    fn zip3_is_kept_only_for_populous_areas() -> FhirResult<()> {
        let t = Zip3Table::census_2000();
        assert_eq!(t.zip3("02139-4307"), "021");
        assert_eq!(t.zip3("03601"), "000");
        assert_eq!(t.zip3("8930"), "000");
        assert_eq!(t.zip3("SW1A 1AA"), "000");
        assert_eq!(person("1950", "female", "10201")?.zip3, "000");
        assert_eq!(person("1950", "female", "10025")?.zip3, "100");
        let p = Zip3Table::from_csv("zip3,population\n021,20001\n036,20000\n")?;
        assert_eq!(
            (p.zip3("02139"), p.zip3("03601"), p.zip3("10025")),
            ("021".into(), "000".into(), "000".into())
        );
        assert!(Zip3Table::from_csv("021,1\n21,5\n").is_err());
        Ok(())
    }

    #[test]
    fn mondrian_groups_have_at_least_k_and_small_inputs_are_refused() -> FhirResult<()> {
        let mut records = Vec::new();
        for i in 0..40u8 {
            let p = SafeHarborPerson {
                age: Age::Years(20 + i),
                sex: SEXES[usize::from(i % 2)],
                zip3: format!("{:03}", 100 + u16::from(i % 5)),
            };
            records.push(ResearchRecord::new(p, vec![format!("a{i}")]));
        }
        for k in [2, 3, 5, 7, 10, 40] {
            let t = k_anonymize(&records, k)?;
            let mut groups: BTreeMap<(String, String, String), usize> = BTreeMap::new();
            for r in &t.rows {
                *groups
                    .entry((r.age.clone(), r.sex.clone(), r.zip3.clone()))
                    .or_default() += 1;
            }
            let smallest = groups.values().copied().min().unwrap_or(0);
            assert!(
                smallest >= k && smallest == t.k,
                "k={k}: {smallest} vs {}",
                t.k
            );
            assert_eq!(t.rows.len(), 40);
        }
        assert!(k_anonymize(&records, 2)?.groups >= 10);
        assert!(matches!(
            k_anonymize(&records, 1),
            Err(FhirError::KTooSmall(1))
        ));
        assert!(matches!(
            k_anonymize(&records, 41),
            Err(FhirError::KUnreachable {
                requested: 41,
                achievable: 40
            })
        ));
        Ok(())
    }
}
