//! Whether this runner can give every file of a `paths` tree back its
//! owner and group: asked before the first step, because a copy made by a
//! user who is not root silently becomes that user's (and loses its setuid
//! bits), and a rollback would then put back files that are not as they
//! were. It reads file metadata only; it never changes a file.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How many files a refusal names; the rest are counted.
const NAMED: usize = 10;

/// A file whose owner or group the runner could not restore, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Unrestorable {
    pub path: PathBuf,
    pub why: String,
}

/// Every file under the trees (a missing tree has none) whose owner or
/// group the effective user cannot give back: as root, none. Files that
/// cannot be read are left to the copy, which fails on them by name.
pub fn unrestorable(trees: &[PathBuf]) -> Vec<Unrestorable> {
    let me = nix::unistd::geteuid();
    if me.is_root() {
        return Vec::new();
    }
    let mut groups: BTreeSet<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    groups.insert(nix::unistd::getegid().as_raw());
    let mut out = Vec::new();
    for tree in trees {
        walk(tree, me.as_raw(), &groups, &mut out);
    }
    out
}

fn walk(path: &Path, me: u32, groups: &BTreeSet<u32>, out: &mut Vec<Unrestorable>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    // Only root may give a file to another user (chown(2)); an owner may
    // give it only to a group of their own.
    let why = if meta.uid() != me {
        Some(format!(
            "it is owned by {}, and only root can give a copy to another user (plan runs as {})",
            user_name(meta.uid()),
            user_name(me)
        ))
    } else if !groups.contains(&meta.gid()) {
        Some(format!(
            "its group is {}, which {} is not a member of",
            group_name(meta.gid()),
            user_name(me)
        ))
    } else {
        None
    };
    if let Some(why) = why {
        out.push(Unrestorable {
            path: path.to_path_buf(),
            why,
        });
    }
    if meta.is_dir() {
        let Ok(entries) = fs::read_dir(path) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for entry in entries {
            walk(&entry, me, groups, out);
        }
    }
}

/// The refusal's text: the first files by name, then how many more.
pub fn describe(found: &[Unrestorable]) -> String {
    let mut lines: Vec<String> = found
        .iter()
        .take(NAMED)
        .map(|u| format!("  `{}`: {}", u.path.display(), u.why))
        .collect();
    if found.len() > NAMED {
        lines.push(format!("  and {} more", found.len() - NAMED));
    }
    lines.join("\n")
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(user)) => format!("`{}` (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

fn group_name(gid: u32) -> String {
    match nix::unistd::Group::from_gid(gid.into()) {
        Ok(Some(group)) => format!("`{}` (gid {gid})", group.name),
        _ => format!("gid {gid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_of_ones_own_files_is_restorable() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/f"), b"x").unwrap();
        assert_eq!(unrestorable(&[dir.path().to_path_buf()]), vec![]);
    }

    #[test]
    fn a_refusal_names_ten_files_and_counts_the_rest() {
        let found: Vec<Unrestorable> = (0..12)
            .map(|i| Unrestorable {
                path: PathBuf::from(format!("/t/{i}")),
                why: "why".into(),
            })
            .collect();
        let text = describe(&found);
        assert!(text.contains("`/t/9`"), "{text}");
        assert!(!text.contains("`/t/10`"), "{text}");
        assert!(text.ends_with("and 2 more"), "{text}");
    }
}
