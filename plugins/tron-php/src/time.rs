//! Dates as the dialect writes them: `YYYY-MM-DD HH:MM:SS` for `created_at`, `updated_at`
//! and the callback's `timestamp`, and `YYYYMMDD` inside the callback signature, all in the
//! operator's configured time zone.
//!
//! The zone is a fixed offset from UTC (`"UTC"`, `"+08:00"`, `"-05:30"`): a PHP server
//! renders `date('Ymd')` in its configured zone, and the zones such servers ran in
//! (Asia/Shanghai, UTC) have no daylight saving time. A plugin has no time zone database,
//! so named zones are refused rather than guessed.

/// A fixed offset from UTC, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    offset_minutes: i32,
}

impl Zone {
    pub const UTC: Zone = Zone { offset_minutes: 0 };

    /// `"UTC"`, `"Z"` or `±HH:MM` (hours up to 14).
    pub fn parse(text: &str) -> Option<Zone> {
        if text.eq_ignore_ascii_case("utc") || text == "Z" {
            return Some(Zone::UTC);
        }
        let (sign, rest) = match text.as_bytes().first()? {
            b'+' => (1, &text[1..]),
            b'-' => (-1, &text[1..]),
            _ => return None,
        };
        let (hours, minutes) = rest.split_once(':')?;
        let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(hours) || !digits(minutes) {
            return None;
        }
        let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
        if hours > 14 || minutes > 59 {
            return None;
        }
        Some(Zone {
            offset_minutes: sign * (hours * 60 + minutes),
        })
    }

    /// The local civil time of `unix_ms` in this zone.
    pub fn civil(self, unix_ms: i64) -> Civil {
        Civil(polypay_plugin_sdk::time::Civil::of_unix_ms(
            unix_ms + i64::from(self.offset_minutes) * 60_000,
        ))
    }
}

/// A local date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil(pub polypay_plugin_sdk::time::Civil);

impl Civil {
    /// `YYYY-MM-DD HH:MM:SS`.
    pub fn datetime(&self) -> String {
        format!("{} {}", self.0.date(), self.0.time())
    }

    /// `YYYYMMDD`.
    pub fn compact_date(&self) -> String {
        format!("{:04}{:02}{:02}", self.0.year, self.0.month, self.0.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-12-01 10:35:00 UTC, the seed's callback example.
    const SEED_CALLBACK_MS: i64 = 1_701_426_900_000;

    #[test]
    fn the_seed_example_renders_in_utc() {
        let t = Zone::UTC.civil(SEED_CALLBACK_MS);
        assert_eq!(t.datetime(), "2023-12-01 10:35:00");
        assert_eq!(t.compact_date(), "20231201");
    }

    #[test]
    fn the_day_follows_the_configured_offset() {
        // 2023-11-30 20:00:00 UTC is already December 1st in Shanghai, still November
        // 30th in New York.
        let ms = 1_701_374_400_000;
        assert_eq!(Zone::UTC.civil(ms).compact_date(), "20231130");
        let shanghai = Zone::parse("+08:00").unwrap();
        assert_eq!(shanghai.civil(ms).datetime(), "2023-12-01 04:00:00");
        let new_york = Zone::parse("-05:00").unwrap();
        assert_eq!(new_york.civil(ms).datetime(), "2023-11-30 15:00:00");
    }

    #[test]
    fn leap_days_and_year_ends() {
        assert_eq!(Zone::UTC.civil(0).datetime(), "1970-01-01 00:00:00");
        // 2024-02-29 23:59:59 UTC.
        assert_eq!(
            Zone::UTC.civil(1_709_251_199_000).datetime(),
            "2024-02-29 23:59:59"
        );
        // 2024-12-31 23:30:00 UTC at +01:00.
        assert_eq!(
            Zone::parse("+01:00")
                .unwrap()
                .civil(1_735_687_800_000)
                .datetime(),
            "2025-01-01 00:30:00"
        );
    }

    #[test]
    fn only_utc_and_fixed_offsets_are_zones() {
        assert_eq!(Zone::parse("UTC"), Some(Zone::UTC));
        assert_eq!(Zone::parse("+00:00"), Some(Zone::UTC));
        for bad in [
            "Asia/Shanghai",
            "+8",
            "+08",
            "+0800",
            "+15:00",
            "+08:60",
            "",
        ] {
            assert_eq!(Zone::parse(bad), None, "{bad}");
        }
    }
}
