//! How settings write durations and sizes: `250ms`, `30s`, `30d`, `1h30m`, `20MiB`, the form
//! the README and `millwatch run --print-config` use. Durations are read by humantime (which
//! reads this form and more, e.g. `30 days`); writing is here, so that what is printed reads
//! back as the same value. Shared by the collector's settings and the exporters' own.

use std::fmt::Write as _;
use std::time::Duration;

/// A duration as its units from days down, each unit at most once: `30d`, `1h30m`, `250ms`,
/// `0s`. Weeks, months and years are not used: humantime's month and year are not whole days.
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    let mut left = d.as_nanos();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (size, unit) in UNITS {
        if left >= size {
            let _ = write!(out, "{}{unit}", left / size);
            left %= size;
        }
    }
    out
}

/// A size in the largest unit that holds it exactly: `20MiB`, `1GiB`, `512KiB`, `1MB`, or the
/// plain number of bytes (`1500`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    UNITS
        .iter()
        .find(|(size, _)| bytes > 0 && bytes.is_multiple_of(*size))
        .map_or_else(
            || bytes.to_string(),
            |(size, unit)| format!("{}{unit}", bytes / size),
        )
}

/// `#[serde(with = "millwatch_exporters::units::duration")]` on a `Duration` or an
/// `Option<Duration>`: read as humantime reads it (`30s`, `7d`, `1h 30m`), written by
/// [`format_duration`].
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// A duration setting, present or optional.
    pub trait Setting {
        fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    }

    impl Setting for Duration {
        fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::format_duration(*self))
        }
    }

    impl Setting for Option<Duration> {
        fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Some(d) => s.serialize_some(&super::format_duration(*d)),
                None => s.serialize_none(),
            }
        }
    }

    pub fn serialize<T: Setting, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        value.write(s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        humantime_serde::Serde<T>: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        humantime_serde::deserialize(d)
    }
}

/// A duration setting in the configuration reference (a JSON schema): text such as `30s` or
/// `7d`. `#[schemars(with = "millwatch_exporters::units::DurationText")]` beside
/// `#[serde(with = "millwatch_exporters::units::duration")]`.
pub struct DurationText;

impl schemars::JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_the_readme_writes_them() {
        let table = [
            (Duration::from_secs(30 * 86_400), "30d"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::from_secs(5_400), "1h30m"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1_500), "1s500ms"),
            (Duration::from_micros(3), "3us"),
            (Duration::from_nanos(86_400_000_000_001), "1d1ns"),
            (Duration::ZERO, "0s"),
        ];
        for (d, text) in table {
            assert_eq!(format_duration(d), text, "{d:?}");
            assert_eq!(
                humantime_serde::re::humantime::parse_duration(text),
                Ok(d),
                "{text} reads back"
            );
        }
    }

    #[test]
    fn sizes_are_written_in_the_largest_exact_unit() {
        let table = [
            (20 * 1024 * 1024, "20MiB"),
            (256 * 1024 * 1024, "256MiB"),
            (1 << 30, "1GiB"),
            (3 << 30, "3GiB"),
            (512 * 1024, "512KiB"),
            (1024 + 1024 / 2, "1536"),
            (1_000_000, "1MB"),
            (2_000, "2KB"),
            (1_500, "1500"),
            (1, "1"),
            (0, "0"),
        ];
        for (bytes, text) in table {
            assert_eq!(format_size(bytes), text, "{bytes}");
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Settings {
        #[serde(with = "duration")]
        every: Duration,
        #[serde(with = "duration")]
        keep: Option<Duration>,
    }

    #[test]
    fn settings_round_trip_through_yaml() {
        let s = Settings {
            every: Duration::from_millis(250),
            keep: Some(Duration::from_secs(30 * 86_400)),
        };
        let yaml = serde_saphyr::to_string(&s).expect("serialise");
        assert_eq!(yaml, "every: 250ms\nkeep: 30d\n");
        assert_eq!(serde_saphyr::from_str::<Settings>(&yaml).expect("read"), s);
        let none = Settings { keep: None, ..s };
        let yaml = serde_saphyr::to_string(&none).expect("serialise");
        assert_eq!(yaml, "every: 250ms\nkeep: null\n");
        assert_eq!(
            serde_saphyr::from_str::<Settings>(&yaml).expect("read"),
            none
        );
        let loose: Settings =
            serde_saphyr::from_str("every: 1h 30m\nkeep: 30 days\n").expect("humantime's forms");
        assert_eq!(loose.every, Duration::from_secs(5_400));
        let err = serde_saphyr::from_str::<Settings>("every: soon\nkeep: null\n").expect_err("bad");
        assert!(err.to_string().contains("expected a duration"), "{err}");
    }
}
