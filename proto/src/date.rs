//! Calendar dates as civil registers keep them: no time, no zone.
//!
//! [`Date`] validates on construction and converts to and from days since
//! 1970-01-01 (Howard Hinnant's civil-date algorithms), which is all the
//! arithmetic the registry needs: ages, expiries, synthetic dates.

use std::fmt;
use std::str::FromStr;

/// A valid calendar date between the years 1800 and 2299.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

/// Why a date was rejected. Carries no part of the date itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("date is not of the form YYYY-MM-DD")]
    Format,
    #[error("year is outside 1800–2299")]
    Year,
    #[error("no such day in the calendar")]
    Day,
}

impl Date {
    /// Builds a date, checking the year range and the calendar.
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self, DateError> {
        if !(1800..=2299).contains(&year) {
            return Err(DateError::Year);
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(DateError::Day);
        }
        Ok(Self {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(self) -> u32 {
        self.month.into()
    }

    /// The day of the month, 1–31.
    pub fn day(self) -> u32 {
        self.day.into()
    }

    /// Days since 1970-01-01 (negative before).
    pub fn to_days(self) -> i32 {
        let y = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i32::from(self.month);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i32::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01. Panics never; out-of-range results are an error.
    pub fn from_days(days: i32) -> Result<Self, DateError> {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i32::from(month <= 2);
        Self::new(year, month, day)
    }

    /// Today's date in UTC+7 (Vietnam), where the registry's days turn.
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let days = ((secs + 7 * 3600) / 86_400) as i32;
        Self::from_days(days).unwrap_or(Self {
            year: 2026,
            month: 1,
            day: 1,
        })
    }

    /// Full years of age on `on` for someone born on `self`.
    pub fn age_on(self, on: Date) -> i32 {
        let mut age = on.year - self.year;
        if (on.month, on.day) < (self.month, self.day) {
            age -= 1;
        }
        age
    }

    /// The same day `years` years later (28 February for 29 February in a non-leap year).
    pub fn add_years(self, years: i32) -> Result<Self, DateError> {
        let year = self.year + years;
        let day = u32::from(self.day).min(days_in_month(year, self.month.into()));
        Self::new(year, self.month.into(), day)
    }

    /// The date as `YYYYMMDD`, a compact sortable integer.
    pub fn to_yyyymmdd(self) -> u32 {
        self.year as u32 * 10_000 + u32::from(self.month) * 100 + u32::from(self.day)
    }

    /// Parses a `YYYYMMDD` integer.
    pub fn from_yyyymmdd(v: u32) -> Result<Self, DateError> {
        Self::new((v / 10_000) as i32, (v / 100) % 100, v % 100)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Parses `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(DateError::Format);
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, DateError> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(DateError::Format);
            }
            part.parse().map_err(|_| DateError::Format)
        };
        Self::new(num(0..4)? as i32, num(5..7)?, num(8..10)?)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<Date> for crate::v1::Date {
    fn from(d: Date) -> Self {
        Self {
            year: d.year(),
            month: d.month() as i32,
            day: d.day() as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        for (text, days) in [
            ("1970-01-01", 0),
            ("2000-03-01", 11_017),
            ("1969-12-31", -1),
            ("1800-01-01", -62_091),
            ("2024-02-29", 19_782),
        ] {
            let d: Date = text.parse().unwrap();
            assert_eq!(d.to_days(), days, "{text}");
            assert_eq!(Date::from_days(days).unwrap(), d, "{text}");
            assert_eq!(d.to_string(), text);
            assert_eq!(Date::from_yyyymmdd(d.to_yyyymmdd()).unwrap(), d);
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "24-01-01",
            "2024/01/01",
            "1799-12-31",
            "２０24-01-01",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }

    #[test]
    fn age_counts_full_years() {
        let born: Date = "2008-11-24".parse().unwrap();
        assert_eq!(born.age_on("2026-11-23".parse().unwrap()), 17);
        assert_eq!(born.age_on("2026-11-24".parse().unwrap()), 18);
        let leap: Date = "2004-02-29".parse().unwrap();
        assert_eq!(leap.add_years(1).unwrap().to_string(), "2005-02-28");
    }
}
