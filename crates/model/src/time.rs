//! UTC timestamps in Go's `time.Time` wire forms.
//!
//! Go renders times as RFC 3339 with trailing fractional zeros trimmed and encodes the zero time
//! as `0001-01-01T00:00:00Z`; both forms appear on the wire, in SQLite and in plugin input, so
//! this type reproduces them exactly. It never reads a clock: callers pass `now` in.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::GoDuration;

const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Unix seconds of Go's zero time, 0001-01-01T00:00:00Z.
const ZERO_UNIX: i64 = -62_135_596_800;

/// An instant in UTC with nanosecond precision. `Timestamp::ZERO` means "unset", as in Go.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parsing time {input:?} as RFC 3339: {reason}")]
pub struct TimeParseError {
    input: String,
    reason: &'static str,
}

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp {
        secs: ZERO_UNIX,
        nanos: 0,
    };

    pub fn from_unix(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }

    pub fn from_unix_nanos(nanos: i128) -> Self {
        let secs = nanos.div_euclid(NANOS_PER_SEC as i128) as i64;
        let nanos = nanos.rem_euclid(NANOS_PER_SEC as i128) as u32;
        Timestamp { secs, nanos }
    }

    /// SQLite stores unset times as NULL or 0; both read back as the zero time.
    pub fn from_unix_opt(secs: Option<i64>) -> Self {
        match secs {
            None | Some(0) => Timestamp::ZERO,
            Some(s) => Timestamp::from_unix(s),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Timestamp::ZERO
    }

    pub fn unix_secs(&self) -> i64 {
        self.secs
    }

    pub fn unix_nanos(&self) -> i128 {
        self.secs as i128 * NANOS_PER_SEC as i128 + self.nanos as i128
    }

    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// `None` for the zero time, else unix seconds: the INTEGER encoding of the event tables.
    pub fn unix_secs_opt(&self) -> Option<i64> {
        (!self.is_zero()).then_some(self.secs)
    }

    /// Drops the fraction, as every time that passes through SQLite's INTEGER columns does.
    pub fn truncate_to_secs(&self) -> Self {
        Timestamp {
            secs: self.secs,
            nanos: 0,
        }
    }

    pub fn add(&self, d: GoDuration) -> Self {
        Timestamp::from_unix_nanos(self.unix_nanos() + d.as_nanos() as i128)
    }

    /// `self - earlier` as a Go duration (saturating).
    pub fn since(&self, earlier: Timestamp) -> GoDuration {
        let diff = self.unix_nanos() - earlier.unix_nanos();
        GoDuration::from_nanos(diff.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// Parses RFC 3339 with any number of fractional digits and any offset, as Go does.
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimeParseError> {
        let err = |reason| TimeParseError {
            input: input.to_string(),
            reason,
        };
        let b = input.as_bytes();
        if b.len() < 20 {
            return Err(err("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimeParseError> {
            let s = &b[range];
            if !s.iter().all(u8::is_ascii_digit) {
                return Err(err("expected digits"));
            }
            Ok(s.iter().fold(0i64, |acc, d| acc * 10 + (d - b'0') as i64))
        };
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return Err(err("expected YYYY-MM-DDTHH:MM:SS"));
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(err("day or month out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(err("hour, minute or second out of range"));
        }
        let mut i = 19;
        let mut nanos: i64 = 0;
        if b[i] == b'.' || b[i] == b',' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + (b[i] - b'0') as i64;
                }
                i += 1;
            }
            let digits = i - start;
            if digits == 0 {
                return Err(err("empty fraction"));
            }
            for _ in digits..9 {
                nanos *= 10;
            }
        }
        let offset_secs = match b.get(i) {
            Some(b'Z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(err("offset out of range"));
                }
                let off = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -off
                } else {
                    off
                }
            }
            _ => return Err(err("expected Z or a ±HH:MM offset")),
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
        Ok(Timestamp {
            secs,
            nanos: nanos as u32,
        })
    }

    /// Go's `RFC3339Nano` in UTC: fraction with trailing zeros trimmed.
    pub fn to_rfc3339(&self) -> String {
        let mut out = self.to_rfc3339_secs();
        if self.nanos != 0 {
            out.pop(); // 'Z'
            let frac = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
            out.push('Z');
        }
        out
    }

    /// Go's `RFC3339` in UTC (whole seconds): the form of every table time cell.
    pub fn to_rfc3339_secs(&self) -> String {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            y,
            m,
            d,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// The CLI's cell form: RFC 3339 seconds, or `-` when unset.
    pub fn display_cell(&self) -> String {
        if self.is_zero() {
            "-".to_string()
        } else {
            self.to_rfc3339_secs()
        }
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::ZERO
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// Accepts RFC 3339 strings and `null` (the zero time); rejects `""` like Go does.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Timestamp::ZERO),
            Some(s) => Timestamp::parse_rfc3339(&s).map_err(de::Error::custom),
        }
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_time_round_trips_as_year_one() {
        assert_eq!(Timestamp::ZERO.to_rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::parse_rfc3339("0001-01-01T00:00:00Z").unwrap(),
            Timestamp::ZERO
        );
        assert!(Timestamp::from_unix_opt(Some(0)).is_zero());
        assert!(Timestamp::from_unix_opt(None).is_zero());
    }

    #[test]
    fn formats_like_go_rfc3339nano() {
        let t = Timestamp::from_unix(1_780_142_400);
        assert_eq!(t.to_rfc3339(), "2026-05-30T12:00:00Z");
        let half = Timestamp::from_unix_nanos(1_780_142_400_500_000_000);
        assert_eq!(half.to_rfc3339(), "2026-05-30T12:00:00.5Z");
        let nano = Timestamp::from_unix_nanos(1_780_142_405_123_456_789);
        assert_eq!(nano.to_rfc3339(), "2026-05-30T12:00:05.123456789Z");
        assert_eq!(nano.to_rfc3339_secs(), "2026-05-30T12:00:05Z");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let t = Timestamp::parse_rfc3339("2026-05-30T21:00:00+09:00").unwrap();
        assert_eq!(t.unix_secs(), 1_780_142_400);
        let f = Timestamp::parse_rfc3339("2026-05-30T12:00:00.1234567891Z").unwrap();
        assert_eq!(f.subsec_nanos(), 123_456_789);
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T00:00:00Z")
                .unwrap()
                .to_rfc3339(),
            "2024-02-29T00:00:00Z"
        );
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2026-05-30",
            "2026-05-30 12:00:00Z",
            "2026-13-30T12:00:00Z",
            "2026-02-30T12:00:00Z",
            "2026-05-30T12:00:00",
            "2026-05-30T12:00:00.Z",
            "2026-05-30T24:00:00Z",
            "2026-05-30T12:00:00+0900",
            "2026-05-30T12:00:00Zjunk",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_treats_null_as_zero_and_rejects_empty() {
        let t: Timestamp = serde_json::from_str("null").unwrap();
        assert!(t.is_zero());
        assert!(serde_json::from_str::<Timestamp>("\"\"").is_err());
        assert_eq!(
            serde_json::to_string(&Timestamp::ZERO).unwrap(),
            "\"0001-01-01T00:00:00Z\""
        );
    }

    #[test]
    fn add_and_since_are_inverse() {
        let t = Timestamp::from_unix(1_780_142_400);
        let d = GoDuration::parse("30m").unwrap();
        assert_eq!(t.add(d).to_rfc3339(), "2026-05-30T12:30:00Z");
        assert_eq!(t.add(d).since(t), d);
    }
}
