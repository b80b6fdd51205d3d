//! Maps keyed by the names of one plan (steps, variables), looked up once
//! per reference. The standard hasher (SipHash) resists collision attacks,
//! which a plan cannot mount on anyone but its own author, and it cost more
//! than the rest of the lookup on a 5,000-step plan; this one mixes a word
//! at a time.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map from names to `V`.
pub type NameMap<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;

/// A set of names.
pub type NameSet<K> = HashSet<K, BuildHasherDefault<NameHasher>>;

/// A multiply-and-rotate hash over 8 bytes at a time.
#[derive(Default, Clone, Copy)]
pub struct NameHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes its control bits from the top of the hash: fold
        // the well-mixed high bits down and the low ones up.
        self.0.rotate_left(20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_anywhere_are_told_apart() {
        let names: Vec<String> = (0..2000)
            .flat_map(|i| {
                [
                    format!("pre_account_{i:04}"),
                    format!("post_account_{i:04}"),
                ]
            })
            .collect();
        let map: NameMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        assert_eq!(map.len(), names.len());
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(n.as_str()), Some(&i));
        }
        // A name and the same name with trailing NUL bytes end in the same
        // padded word; str's hash adds a terminator, so they still differ.
        let set: NameSet<&str> = ["a", "a\0", ""].into_iter().collect();
        assert_eq!(set.len(), 3);
    }
}
