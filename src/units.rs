//! How quantities read for people: sizes, durations and times, written one
//! way everywhere the runner shows them (reports, progress, status, dry
//! runs). Machine output (JSON, journals) keeps plain numbers and RFC 3339.

use std::time::{Duration, SystemTime};

/// A size: `512 B`, `12.3 MB`, `1.2 GB` (decimal units, as `df -H`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration: `250 ms`, `4.2 s`, `12 min 05 s`, `2 h 05 min`: precise
/// where it is short, coarse where the seconds no longer matter.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{} ms", d.as_millis()),
        1..60 => format!("{:.1} s", d.as_secs_f64()),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

/// [`duration`] of a number of seconds as the reports store them; a
/// negative or non-finite value (a clock that went back) reads as 0.
pub fn seconds(s: f64) -> String {
    duration(Duration::try_from_secs_f64(s).unwrap_or_default())
}

/// `2024-05-01T12:00:00Z`: UTC, so logs from hosts in different zones
/// compare directly.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The time now to the millisecond (`2024-05-01T12:00:00.123Z`): two
/// events in one second still sort in order.
pub fn now_millis() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(21_000_000), "21.0 MB");
        assert_eq!(bytes(1_234_000_000), "1.2 GB");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(duration(Duration::from_millis(4_240)), "4.2 s");
        assert_eq!(duration(Duration::from_secs(45)), "45.0 s");
        assert_eq!(duration(Duration::from_secs(12 * 60 + 5)), "12 min 05 s");
        assert_eq!(
            duration(Duration::from_secs(2 * 3600 + 5 * 60)),
            "2 h 05 min"
        );
        assert_eq!(seconds(-1.0), "0 ms");
        assert_eq!(seconds(f64::NAN), "0 ms");
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00Z");
        assert_eq!(now_millis().len(), "2024-05-01T12:00:00.123Z".len());
    }
}
