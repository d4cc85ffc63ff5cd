//! A rule's `for`: how long its condition must hold before the alert fires — a duration of
//! evaluations (`30s`), or, for rules over detector verdicts, a number of decided windows in a
//! row (`3 windows`).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a rule's condition must hold before its alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub enum For {
    /// From the evaluation that first found the condition true; `0s` fires at once.
    Time(Duration),
    /// Detection rules only: the alert fires at the Nth decided window in a row whose verdict
    /// the rule matches (verdicts in the order the engine decided them); a window whose
    /// verdict it does not match starts the count over. `1 window` fires at once, as `0s`.
    Windows(NonZeroU32),
}

impl Default for For {
    fn default() -> Self {
        For::Time(Duration::ZERO)
    }
}

impl For {
    /// `30s`, `5m`, `0s`, `3 windows`, `1 window`.
    pub fn parse(text: &str) -> Result<For, String> {
        let text = text.trim();
        let count = text
            .strip_suffix("windows")
            .or_else(|| text.strip_suffix("window"));
        if let Some(count) = count {
            let count = count.trim();
            return match count.parse::<u32>() {
                Ok(n) => NonZeroU32::new(n).map(For::Windows).ok_or_else(|| {
                    format!("`{text}`: an alert fires after at least `1 window` (the same as `0s`)")
                }),
                Err(_) => Err(format!(
                    "`{text}`: the number of windows must be a whole number, as in `3 windows`"
                )),
            };
        }
        humantime::parse_duration(text).map(For::Time).map_err(|e| {
            format!(
                "`{text}` is neither a duration (`30s`, `5m`) nor a number of windows (`3 windows`): {e}"
            )
        })
    }

    /// The duration of a rule whose `for` is one (the configuration refuses windows on rules
    /// that are not over verdicts; they count as `0s` here).
    pub fn duration(self) -> Duration {
        match self {
            For::Time(d) => d,
            For::Windows(_) => Duration::ZERO,
        }
    }

    /// Whether an alert active since `active_at` (ns) that held in `windows` verdicts in a row
    /// has held long enough at `now` (ns).
    pub fn met(self, active_at: i64, windows: u32, now: i64) -> bool {
        match self {
            For::Time(d) => {
                now.saturating_sub(active_at) >= d.as_nanos().min(i64::MAX as u128) as i64
            }
            For::Windows(n) => windows >= n.get(),
        }
    }
}

impl fmt::Display for For {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            For::Time(d) => f.write_str(&millwatch_exporters::units::format_duration(*d)),
            For::Windows(n) if n.get() == 1 => f.write_str("1 window"),
            For::Windows(n) => write!(f, "{n} windows"),
        }
    }
}

impl Serialize for For {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for For {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        For::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_windows_parse_and_print_back() {
        for (text, want, printed) in [
            ("0s", For::Time(Duration::ZERO), "0s"),
            ("30s", For::Time(Duration::from_secs(30)), "30s"),
            ("5m", For::Time(Duration::from_secs(300)), "5m"),
            (
                "3 windows",
                For::Windows(NonZeroU32::new(3).unwrap()),
                "3 windows",
            ),
            ("1 window", For::Windows(NonZeroU32::MIN), "1 window"),
            (
                "2windows",
                For::Windows(NonZeroU32::new(2).unwrap()),
                "2 windows",
            ),
        ] {
            let got = For::parse(text).expect(text);
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), printed);
            assert_eq!(For::parse(printed), Ok(got));
        }
        for (bad, says) in [
            ("0 windows", "at least `1 window`"),
            ("three windows", "whole number"),
            ("-1 windows", "whole number"),
            ("3 wins", "neither a duration"),
            ("", "neither a duration"),
        ] {
            let e = For::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn met_counts_time_or_windows() {
        const S: i64 = 1_000_000_000;
        let time = For::Time(Duration::from_secs(10));
        assert!(!time.met(100 * S, 50, 109 * S));
        assert!(time.met(100 * S, 1, 110 * S));
        let windows = For::Windows(NonZeroU32::new(3).unwrap());
        assert!(!windows.met(0, 2, i64::MAX));
        assert!(windows.met(0, 3, 0));
        assert!(For::default().met(5, 0, 5));
    }
}
