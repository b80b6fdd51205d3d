//! Release numbers: dotted numbers compared segment by segment, with missing
//! segments as 0 (`6.0` equals `6.0.0`).

use std::cmp::Ordering;
use std::fmt;

#[derive(Clone, Debug)]
pub struct Version {
    text: String,
    segments: Vec<u64>,
}

impl Version {
    /// Parses `6.0.0`; `None` for anything but dotted decimal numbers.
    pub fn parse(text: &str) -> Option<Version> {
        let segments = text
            .split('.')
            .map(|s| {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    s.parse().ok()
                }
            })
            .collect::<Option<Vec<u64>>>()?;
        Some(Version {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a release read from the database (`16.0.1.3`) is this one:
    /// this version's segments equal the value's first segments, compared
    /// as whole numbers (`17.0.1` is not `17.0.10`), a segment the value
    /// lacks counting as 0 (`16` is `16.0`). The one comparison of a
    /// plan's release with a database's.
    pub fn is_prefix_of(&self, release: &str) -> bool {
        let Some(theirs) = release
            .trim()
            .split('.')
            .map(|s| {
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse::<u64>().ok())
                    .flatten()
            })
            .collect::<Option<Vec<u64>>>()
        else {
            return false;
        };
        self.segments
            .iter()
            .enumerate()
            .all(|(i, ours)| theirs.get(i).copied().unwrap_or(0) == *ours)
    }

    fn segment(&self, i: usize) -> u64 {
        self.segments.get(i).copied().unwrap_or(0)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.segments.len().max(other.segments.len());
        (0..len)
            .map(|i| self.segment(i).cmp(&other.segment(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn compares_numerically_with_missing_segments_as_zero() {
        assert_eq!(v("6.0"), v("6.0.0"));
        assert!(v("5.0.0") < v("6.0.0"));
        assert!(v("9.0") < v("10.0"));
        assert!(v("6.0.1") > v("6.0"));
    }

    #[test]
    fn rejects_anything_but_dotted_numbers() {
        for bad in ["", "6.", ".6", "6..0", "v6", "6.0-rc1", "6 0", "-1"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn release_prefix_matching() {
        assert!(v("16.0").is_prefix_of("16.0.1.3"));
        assert!(v("5.0.0").is_prefix_of("5.0.0"));
        assert!(!v("16.0").is_prefix_of("17.0.1"));
    }

    #[test]
    fn releases_compare_by_whole_components() {
        assert!(v("17.0").is_prefix_of("17.0.1.3"));
        assert!(v("17.0.1").is_prefix_of("17.0.1.3"));
        assert!(!v("17.0.1").is_prefix_of("17.0.10"));
        assert!(!v("17.0.1").is_prefix_of("17.0.10.0"));
        assert!(!v("17.0.1").is_prefix_of("17.0.11.3"));
        assert!(!v("1.0").is_prefix_of("10.0"));
        assert!(!v("17.0").is_prefix_of("170"));
        // A segment the database's value lacks counts as 0.
        assert!(v("16.0").is_prefix_of("16"));
        assert!(v("6.0.0").is_prefix_of(" 6.0 "));
        assert!(!v("6.0.1").is_prefix_of("6.0"));
        // Anything but dotted numbers is no release at all.
        for other in ["", "17.0.x", "saas~17.1", "17..0", "17.0-rc1"] {
            assert!(!v("17.0").is_prefix_of(other), "{other}");
        }
    }
}
