//! Calendar dates for Unix times: what every dialect needs to print the timestamps of its
//! API (`2024-01-01T00:00:00Z`, `2024-01-01 08:00:00`, `20240101`), without a time zone
//! database or a date crate in the component. The host's clock gives Unix milliseconds
//! (`clock::now`, invoice times); [`Civil::of_unix_ms`] turns one, shifted by any fixed
//! offset, into its proleptic Gregorian date and time of day.

/// A date and time of day, in whatever zone the Unix time was shifted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Milliseconds within the second.
    pub millis: u32,
}

impl Civil {
    /// The UTC date and time of `unix_ms` (milliseconds since 1970-01-01T00:00:00Z); for
    /// another zone pass `unix_ms + offset_ms`.
    pub fn of_unix_ms(unix_ms: i64) -> Civil {
        let secs = unix_ms.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis: unix_ms.rem_euclid(1000) as u32,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM:SS`.
    pub fn time(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::Civil;

    #[test]
    fn dates_of_unix_times_including_leap_days_and_before_1970() {
        let c = Civil::of_unix_ms(0);
        assert_eq!(
            (c.date(), c.time(), c.millis),
            ("1970-01-01".into(), "00:00:00".into(), 0)
        );
        let c = Civil::of_unix_ms(951_782_400_000 + 3_723_456);
        assert_eq!(
            (c.date(), c.time(), c.millis),
            ("2000-02-29".into(), "01:02:03".into(), 456)
        );
        let c = Civil::of_unix_ms(1_714_564_800_123);
        assert_eq!(
            (c.date(), c.time()),
            ("2024-05-01".into(), "12:00:00".into())
        );
        let c = Civil::of_unix_ms(-1);
        assert_eq!(
            (c.date(), c.time(), c.millis),
            ("1969-12-31".into(), "23:59:59".into(), 999)
        );
    }
}
