//! FHIR dates and instants from and to Unix seconds (proleptic Gregorian,
//! UTC), without a date crate: the civil-day algorithms of
//! <https://howardhinnant.github.io/date_algorithms.html>.

use super::{FhirError, FhirResult};

/// Days since 1970-01-01 of a civil date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d in 1..=31 and m in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// A FHIR `instant` (`YYYY-MM-DDThh:mm:ssZ`) of Unix seconds.
pub(crate) fn instant(t: u64) -> String {
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// A FHIR date: year, and month and day if given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Date {
    pub(crate) year: i64,
    pub(crate) month: Option<u32>,
    pub(crate) day: Option<u32>,
}

fn num(s: &str, len: usize) -> FhirResult<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FhirError::BadDate);
    }
    s.parse().map_err(|_| FhirError::BadDate)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses the date part of a FHIR `date` or `dateTime`: `YYYY`,
/// `YYYY-MM`, `YYYY-MM-DD`, optionally followed by `T…`.
pub(crate) fn parse_date(s: &str) -> FhirResult<Date> {
    let date = s.split('T').next().unwrap_or(s);
    let mut parts = date.split('-');
    let year = i64::from(num(parts.next().unwrap_or(""), 4)?);
    let month = parts.next().map(|m| num(m, 2)).transpose()?;
    let day = parts.next().map(|d| num(d, 2)).transpose()?;
    if parts.next().is_some()
        || month.is_some_and(|m| !(1..=12).contains(&m))
        || day.is_some_and(|d| d == 0 || d > days_in_month(year, month.unwrap_or(1)))
    {
        return Err(FhirError::BadDate);
    }
    Ok(Date { year, month, day })
}

/// Unix seconds of a FHIR `dateTime` with a time and a zone
/// (`YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`), or of a full date (midnight
/// UTC).
pub(crate) fn parse_instant(s: &str) -> FhirResult<u64> {
    let d = parse_date(s)?;
    let (Some(m), Some(day)) = (d.month, d.day) else {
        return Err(FhirError::BadDate);
    };
    let mut secs = days_from_civil(d.year, m, day) * 86_400;
    if let Some((_, time)) = s.split_once('T') {
        let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
            (c, 0)
        } else {
            let at = time.rfind(['+', '-']).ok_or(FhirError::BadDate)?;
            let (c, z) = time.split_at(at);
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (h, mi) = z
                .get(1..)
                .and_then(|z| z.split_once(':'))
                .ok_or(FhirError::BadDate)?;
            (c, sign * i64::from(num(h, 2)? * 3600 + num(mi, 2)? * 60))
        };
        let clock = clock.split('.').next().unwrap_or(clock);
        let mut hms = clock.split(':');
        let h = num(hms.next().unwrap_or(""), 2)?;
        let mi = num(hms.next().unwrap_or(""), 2)?;
        let sec = num(hms.next().unwrap_or(""), 2)?;
        if hms.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return Err(FhirError::BadDate);
        }
        secs += i64::from(h * 3600 + mi * 60 + sec) - offset;
    }
    u64::try_from(secs).map_err(|_| FhirError::BadDate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_and_bad_dates_are_refused() -> FhirResult<()> {
        for t in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_instant(&instant(t))?, t);
        }
        assert_eq!(instant(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_instant("2000-02-29T01:00:00+01:00")?, 951_782_400);
        assert_eq!(parse_instant("2000-02-29")?, 951_782_400);
        for bad in [
            "",
            "2001-02-29",
            "2000-13-01",
            "99-01-01",
            "2000-01-01T25:00:00Z",
            "2000-01-01T10:00",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_date("1931")?,
            Date {
                year: 1931,
                month: None,
                day: None
            }
        );
        Ok(())
    }
}
