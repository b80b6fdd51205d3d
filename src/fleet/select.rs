//! Which inventory targets a fleet run works on: `--all`, `--target
//! a,b,c` or `--select KEY=VALUE`, then the slice `--shard I/N` keeps.
//! Pure: it reads a parsed inventory and opens nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use miette::Diagnostic;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::diagnostic::suggest;
use crate::target::inventory::{Inventory, InventoryError};

/// What the command line selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// `--all`.
    All,
    /// `--target a,b,c`, in the order given.
    Names(Vec<String>),
    /// `--select KEY=VALUE`, repeatable: a target must carry every one.
    Labels(Vec<(String, String)>),
}

/// `--shard I/N`: the I-th (from 0) of N slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why a selection cannot be made (exit 2).
#[derive(Debug, Error, Diagnostic)]
pub enum SelectError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Inventory(#[from] InventoryError),

    #[error("`--select {key}={value}`: no target of `{}` has a label `{key}`", path.display())]
    #[diagnostic(code(plan::unknown_label))]
    UnknownLabel {
        key: String,
        value: String,
        path: PathBuf,
        #[help]
        help: String,
    },

    #[error("`{selector}` matches no target of `{}`", path.display())]
    #[diagnostic(code(plan::nothing_selected))]
    NothingSelected {
        selector: String,
        path: PathBuf,
        #[help]
        help: String,
    },
}

/// The names `selection` picks, each once: `--target`'s in the order
/// given, the others in the inventory's (sorted) order.
pub fn select(inventory: &Inventory, selection: &Selection) -> Result<Vec<String>, SelectError> {
    let path = inventory.path().to_path_buf();
    match selection {
        Selection::All => {
            let names: Vec<String> = inventory.names().map(str::to_string).collect();
            if names.is_empty() {
                return Err(SelectError::NothingSelected {
                    selector: "--all".into(),
                    path,
                    help: "the inventory defines no target under `targets:`".into(),
                });
            }
            Ok(names)
        }
        Selection::Names(names) => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for name in names {
                inventory.target(name)?;
                if seen.insert(name.as_str()) {
                    out.push(name.clone());
                }
            }
            Ok(out)
        }
        Selection::Labels(wanted) => {
            let known: BTreeSet<&str> = inventory
                .targets()
                .flat_map(|(_, t)| t.labels.keys().map(String::as_str))
                .collect();
            for (key, value) in wanted {
                if !known.contains(key.as_str()) {
                    let help = match suggest(key, known.iter().copied()) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None if known.is_empty() => {
                            "no target has `labels:`; add `labels: {tier: gold}` to a target".into()
                        }
                        None => format!("the labels are {}", listed(known.iter().copied())),
                    };
                    return Err(SelectError::UnknownLabel {
                        key: key.clone(),
                        value: value.clone(),
                        path,
                        help,
                    });
                }
            }
            let names: Vec<String> = inventory
                .targets()
                .filter(|(_, t)| {
                    wanted
                        .iter()
                        .all(|(k, v)| t.labels.get(k).is_some_and(|have| have == v))
                })
                .map(|(name, _)| name.to_string())
                .collect();
            if names.is_empty() {
                let selector = wanted
                    .iter()
                    .map(|(k, v)| format!("--select {k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let (key, _) = &wanted[0];
                let values: BTreeSet<&str> = inventory
                    .targets()
                    .filter_map(|(_, t)| t.labels.get(key).map(String::as_str))
                    .collect();
                return Err(SelectError::NothingSelected {
                    selector,
                    path,
                    help: format!(
                        "`{key}` has the values {}; a target must carry every --select",
                        listed(values.into_iter())
                    ),
                });
            }
            Ok(names)
        }
    }
}

/// At most this many values are listed in a help.
const MAX_LISTED: usize = 20;

fn listed<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<String> = items.map(|i| format!("`{i}`")).collect();
    let mut shown: Vec<String> = all.iter().take(MAX_LISTED).cloned().collect();
    if all.len() > MAX_LISTED {
        shown.push(format!("and {} more", all.len() - MAX_LISTED));
    }
    shown.join(", ")
}

/// The names of `names` that belong to `shard`, in the same order.
pub fn in_shard(names: &[String], shard: Shard) -> Vec<String> {
    names
        .iter()
        .filter(|name| shard_of(name, shard.count) == shard.index)
        .cloned()
        .collect()
}

/// The slice a target belongs to among `count`: rendezvous (highest
/// random weight) hashing over SHA-256, so that every machine computes the
/// same answer whatever its Rust version (std's hasher is randomised per
/// process), and a target's slice depends on its name and `count` only:
/// adding or removing a target moves no other one.
pub fn shard_of(name: &str, count: u32) -> u32 {
    (0..count.max(1))
        .max_by_key(|slice| {
            let mut hash = Sha256::new();
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(slice.to_be_bytes());
            let digest = hash.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            // The slice breaks a tie of 64-bit weights, so that the
            // answer never depends on the order slices are tried in.
            (u64::from_be_bytes(first), std::cmp::Reverse(*slice))
        })
        .unwrap_or(0)
}

/// Parses `--shard I/N`: N from 1, I from 0 to N-1.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let Some((index, count)) = text.split_once('/') else {
        return Err(format!(
            "`{text}` is not a shard: write I/N, such as 0/3 (slices count from 0)"
        ));
    };
    let (Ok(index), Ok(count)) = (index.trim().parse::<u32>(), count.trim().parse::<u32>()) else {
        return Err(format!(
            "`{text}` is not a shard: write I/N with two numbers, such as 0/3"
        ));
    };
    if count == 0 {
        return Err("N is the number of slices: at least 1".into());
    }
    if index >= count {
        return Err(format!(
            "slices count from 0: the slices of {count} are 0/{count} to {}/{count}",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// Parses `--select KEY=VALUE`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if crate::target::inventory::is_label_key(key) => {
            Ok((key.to_string(), value.to_string()))
        }
        Some((key, _)) => Err(format!(
            "`{key}` is not a label name (a lower-case letter, then letters, digits, `_`, `-` or `.`)"
        )),
        None => Err("write --select KEY=VALUE, such as --select tier=gold".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(n: usize) -> Inventory {
        let mut text = String::from("targets:\n");
        for i in 0..n {
            let tier = if i % 3 == 0 { "gold" } else { "silver" };
            text.push_str(&format!(
                "  c{i:03}:\n    database: c{i:03}\n    labels: {{tier: {tier}, region: eu}}\n"
            ));
        }
        Inventory::parse("inv.yaml", &text).unwrap()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:03}")).collect()
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_selection() {
        let all = names(50);
        for count in [1, 2, 3, 7, 50] {
            let mut seen = Vec::new();
            for index in 0..count {
                seen.extend(in_shard(&all, Shard { index, count }));
            }
            seen.sort();
            assert_eq!(seen, all, "{count} slices");
        }
    }

    #[test]
    fn shards_are_roughly_even() {
        let all = names(300);
        for index in 0..3 {
            let size = in_shard(&all, Shard { index, count: 3 }).len();
            assert!((60..=140).contains(&size), "slice {index} has {size}");
        }
    }

    #[test]
    fn adding_a_target_moves_no_other() {
        let before = names(50);
        let mut after = before.clone();
        after.push("newcomer".into());
        for index in 0..4 {
            let shard = Shard { index, count: 4 };
            let old = in_shard(&before, shard);
            let new: Vec<String> = in_shard(&after, shard)
                .into_iter()
                .filter(|n| n != "newcomer")
                .collect();
            assert_eq!(old, new, "slice {index}");
        }
    }

    #[test]
    fn one_more_slice_moves_about_one_in_n() {
        let all = names(500);
        let moved = all
            .iter()
            .filter(|n| shard_of(n, 4) != shard_of(n, 5))
            .count();
        // A modulo would move about 4/5 of them; rendezvous about 1/5.
        assert!(moved < 150, "{moved} of 500 moved");
    }

    #[test]
    fn the_slice_is_fixed_across_builds() {
        // Written down once: a change here would send targets to other
        // machines in the middle of a fleet's nights.
        let got: Vec<u32> = [
            "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
        ]
        .iter()
        .map(|n| shard_of(n, 4))
        .collect();
        assert_eq!(got, [1, 1, 1, 3, 1, 3, 2, 1]);
    }

    #[test]
    fn selects_by_every_label() {
        let inv = inventory(9);
        let gold = select(
            &inv,
            &Selection::Labels(vec![("tier".into(), "gold".into())]),
        )
        .unwrap();
        assert_eq!(gold, ["c000", "c003", "c006"]);
        let both = select(
            &inv,
            &Selection::Labels(vec![
                ("tier".into(), "silver".into()),
                ("region".into(), "eu".into()),
            ]),
        )
        .unwrap();
        assert_eq!(both.len(), 6);
    }

    #[test]
    fn an_unknown_label_is_named_with_a_suggestion() {
        let inv = inventory(3);
        match select(
            &inv,
            &Selection::Labels(vec![("teir".into(), "gold".into())]),
        ) {
            Err(SelectError::UnknownLabel { key, help, .. }) => {
                assert_eq!(key, "teir");
                assert!(help.contains("`tier`"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_selection_of_nothing_names_the_selector() {
        let inv = inventory(3);
        match select(
            &inv,
            &Selection::Labels(vec![("tier".into(), "bronze".into())]),
        ) {
            Err(SelectError::NothingSelected { selector, help, .. }) => {
                assert_eq!(selector, "--select tier=bronze");
                assert!(
                    help.contains("`gold`") && help.contains("`silver`"),
                    "{help}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_checked_and_kept_once_in_order() {
        let inv = inventory(3);
        let got = select(
            &inv,
            &Selection::Names(vec!["c002".into(), "c000".into(), "c002".into()]),
        )
        .unwrap();
        assert_eq!(got, ["c002", "c000"]);
        assert!(matches!(
            select(&inv, &Selection::Names(vec!["c009".into()])),
            Err(SelectError::Inventory(InventoryError::UnknownTarget { .. }))
        ));
    }

    #[test]
    fn shard_flags_are_checked() {
        assert_eq!(parse_shard("1/3"), Ok(Shard { index: 1, count: 3 }));
        assert!(parse_shard("3/3").unwrap_err().contains("0/3 to 2/3"));
        assert!(parse_shard("0/0").is_err());
        assert!(parse_shard("a/b").is_err());
        assert!(parse_shard("2").is_err());
        assert_eq!(parse_label("tier=gold"), Ok(("tier".into(), "gold".into())));
        assert!(parse_label("Tier=gold").is_err());
        assert!(parse_label("tier").is_err());
    }
}
