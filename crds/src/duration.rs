//! Durations as users write them: Go-style strings such as `10s`, `1m30s`,
//! `100ms` or `1h` — a sequence of whole numbers, each followed by a unit
//! (`ms`, `s`, `m`, `h`).

use std::time::Duration;

use crate::{Error, Result};

/// The schema pattern of every duration field; [`parse`] accepts exactly these strings.
pub const PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";

/// Parses a duration such as `10s`, `1m30s`, `100ms` or `1h`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(fairlead_crds::duration::parse("1m30s").unwrap(), Duration::from_secs(90));
/// assert!(fairlead_crds::duration::parse("1.5s").is_err());
/// ```
pub fn parse(input: &str) -> Result<Duration> {
    let invalid = |reason| Error::InvalidDuration {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(invalid("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large"))?;
        rest = &rest[digits..];
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(invalid("expected a unit: ms, s, m or h"));
        };
        rest = &rest[unit_len..];
        let ms = value
            .checked_mul(unit_ms)
            .ok_or_else(|| invalid("too large"))?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| invalid("too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_sums_parts() {
        assert_eq!(parse("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse("1h1m1s1ms").unwrap(),
            Duration::from_millis(3_661_001)
        );
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_the_schema_pattern_rejects() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for bad in [
            "", "10", "s", "1.5s", "-1s", "10 s", "1d", "10us", "1sm", "s10",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
            assert!(!pattern.is_match(bad), "{bad:?} matches the pattern");
        }
        for good in ["10s", "1m30s", "100ms", "1h", "0s"] {
            assert!(
                pattern.is_match(good),
                "{good:?} does not match the pattern"
            );
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse("99999999999999999999s").is_err());
        assert!(parse("18446744073709551615h").is_err());
    }

    #[test]
    fn error_names_the_input() {
        let err = parse("5 minutes").unwrap_err().to_string();
        assert!(err.contains("\"5 minutes\""), "{err}");
    }
}
