//! Go `time.Duration` syntax (`300ms`, `1.5h`, `2h45m`) and its `String()` rendering.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A signed duration in nanoseconds, like Go's `time.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
}

const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl GoDuration {
    pub const ZERO: GoDuration = GoDuration(0);

    pub const fn from_nanos(n: i64) -> Self {
        GoDuration(n)
    }

    pub const fn from_secs(s: i64) -> Self {
        GoDuration(s * 1_000_000_000)
    }

    pub const fn as_nanos(&self) -> i64 {
        self.0
    }

    /// Whole seconds, truncated toward zero (Go `Duration.Seconds()` floored for integers).
    pub const fn whole_secs(&self) -> i64 {
        self.0 / 1_000_000_000
    }

    pub fn is_positive(&self) -> bool {
        self.0 > 0
    }

    /// `std::time::Duration` for sleeping; negative durations become zero.
    pub fn to_std(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }

    /// Go's `time.ParseDuration`.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let invalid = || DurationError::Invalid(input.to_string());
        let mut s = input;
        let mut neg = false;
        if let Some(rest) = s.strip_prefix('-') {
            neg = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        }
        if s == "0" {
            return Ok(GoDuration(0));
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total: u64 = 0;
        while !s.is_empty() {
            // The number: integer part, optional fraction.
            let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let int_part = &s[..int_len];
            s = &s[int_len..];
            let mut frac_part = "";
            if let Some(rest) = s.strip_prefix('.') {
                let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
                frac_part = &rest[..frac_len];
                s = &rest[frac_len..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
            let unit_len = s
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(s.len());
            let unit = &s[..unit_len];
            s = &s[unit_len..];
            if unit.is_empty() {
                return Err(DurationError::MissingUnit(input.to_string()));
            }
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| DurationError::UnknownUnit {
                    unit: unit.to_string(),
                    input: input.to_string(),
                })?;
            let whole: u64 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| invalid())?
            };
            let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
            if !frac_part.is_empty() {
                // Go keeps as many fraction digits as fit, then scales; precision beyond ns is lost.
                let mut frac: u64 = 0;
                let mut frac_scale: f64 = 1.0;
                for d in frac_part.bytes().take(18) {
                    frac = frac * 10 + (d - b'0') as u64;
                    frac_scale *= 10.0;
                }
                value = value
                    .checked_add((frac as f64 * (scale as f64 / frac_scale)) as u64)
                    .ok_or_else(invalid)?;
            }
            total = total.checked_add(value).ok_or_else(invalid)?;
            if total > 1u64 << 63 {
                return Err(invalid());
            }
        }
        if neg {
            Ok(GoDuration((total as i128).wrapping_neg() as i64))
        } else if total > i64::MAX as u64 {
            Err(invalid())
        } else {
            Ok(GoDuration(total as i64))
        }
    }
}

/// Go's `Duration.String()`: `0s`, `200ms`, `1.5µs`, `5m0s`, `1h0m0s`, `-1m30s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        let mut out = String::new();
        if u < 1_000_000_000 {
            if u == 0 {
                return f.write_str("0s");
            }
            let (unit, prec) = if u < 1_000 {
                ("ns", 0)
            } else if u < 1_000_000 {
                ("µs", 3)
            } else {
                ("ms", 6)
            };
            let (whole, frac) = split_frac(u, prec);
            out.push_str(&whole.to_string());
            out.push_str(&frac);
            out.push_str(unit);
        } else {
            let (secs, frac) = split_frac(u, 9);
            u = secs;
            let mut parts = format!("{}{}s", u % 60, frac);
            u /= 60;
            if u > 0 {
                parts = format!("{}m{}", u % 60, parts);
                u /= 60;
                if u > 0 {
                    parts = format!("{}h{}", u, parts);
                }
            }
            out = parts;
        }
        if neg {
            f.write_str("-")?;
        }
        f.write_str(&out)
    }
}

/// Splits `v` into `v / 10^prec` and the fraction `.ddd` with trailing zeros dropped.
fn split_frac(v: u64, prec: u32) -> (u64, String) {
    let scale = 10u64.pow(prec);
    let frac = v % scale;
    if frac == 0 {
        return (v / scale, String::new());
    }
    let digits = format!("{:0width$}", frac, width = prec as usize);
    (v / scale, format!(".{}", digits.trim_end_matches('0')))
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(s.trim()).map_err(de::Error::custom)
    }
}

/// Parses an optional duration field: blank means unset (`None`), as routerd does before parsing.
pub fn parse_optional(input: &str) -> Result<Option<GoDuration>, DurationError> {
    let t = input.trim();
    if t.is_empty() {
        Ok(None)
    } else {
        GoDuration::parse(t).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> i64 {
        GoDuration::parse(s).unwrap().as_nanos()
    }

    #[test]
    fn parses_go_examples() {
        assert_eq!(p("300ms"), 300_000_000);
        assert_eq!(p("1.5h"), 5_400_000_000_000);
        assert_eq!(p("2h45m"), 9_900_000_000_000);
        assert_eq!(p("1h30m10.5s"), 5_410_500_000_000);
        assert_eq!(p("-1.5h"), -5_400_000_000_000);
        assert_eq!(p("+5m"), 300_000_000_000);
        assert_eq!(p("0"), 0);
        assert_eq!(p("1µs"), 1_000);
        assert_eq!(p("1μs"), 1_000);
        assert_eq!(p("1us"), 1_000);
        assert_eq!(p(".5s"), 500_000_000);
        assert_eq!(p("1.s"), 1_000_000_000);
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "30",
            "1d",
            "1w",
            "5 m",
            "m",
            ".s",
            "-",
            "1.5.5s",
            "9999999999h",
            " 5m",
        ] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            GoDuration::parse("30"),
            Err(DurationError::MissingUnit(_))
        ));
    }

    #[test]
    fn renders_like_go_string() {
        let cases = [
            ("5m", "5m0s"),
            ("1h", "1h0m0s"),
            ("24h", "24h0m0s"),
            ("200ms", "200ms"),
            ("1.5s", "1.5s"),
            ("0s", "0s"),
            ("90s", "1m30s"),
            ("-90s", "-1m30s"),
            ("1500ns", "1.5µs"),
            ("10s", "10s"),
        ];
        for (input, want) in cases {
            assert_eq!(
                GoDuration::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn optional_blank_is_unset() {
        assert_eq!(parse_optional("  ").unwrap(), None);
        assert_eq!(
            parse_optional(" 5m ").unwrap(),
            Some(GoDuration::from_secs(300))
        );
    }
}
