//! Durations as plans write them: `"90s"`, `"15m"`, `"2h"`, or a sum such
//! as `"1h30m"`.

use std::time::Duration;

/// Parses a duration; `None` unless it is one or more `<number><unit>` with
/// unit `ms`, `s`, `m` or `h`, and more than zero.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    (total > Duration::ZERO).then_some(total)
}

/// Seconds as a plan writes them, the inverse of [`parse_duration`]:
/// `2h`, `15m`, `1h30m`, `90s`.
pub fn format(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_sums() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "",
            "15",
            "m",
            "15 m",
            "1.5h",
            "0s",
            "2d",
            "-1s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn format_writes_what_parse_reads() {
        for secs in [1, 59, 90, 900, 3600, 5400, 7322] {
            let text = format(secs);
            assert_eq!(
                parse_duration(&text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(format(5400), "1h30m");
        assert_eq!(format(0), "0s");
    }
}
