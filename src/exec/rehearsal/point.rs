//! Points a plan's steps at a rehearsal's copies of the trees it names
//! without `${db}`: every word that names such a tree, or a path below
//! it, names the copy instead. (Trees named with `${db}` need nothing:
//! `${db}` is the copy's name already.)

use std::path::PathBuf;

use crate::plan::{Action, Backup, Check, Command, Piece, Plan, Step, Text};

/// Rewrites every step (and `on_failure` step) of `plan` for `trees`:
/// (original, copy) pairs.
pub fn point_at(plan: &mut Plan, trees: &[(PathBuf, PathBuf)]) {
    if trees.is_empty() {
        return;
    }
    let pairs: Vec<(String, String)> = trees
        .iter()
        .map(|(a, b)| (a.display().to_string(), b.display().to_string()))
        .collect();
    for step in plan.steps.iter_mut().chain(plan.on_failure.iter_mut()) {
        step_texts(step, &mut |text| {
            for (from, to) in &pairs {
                for piece in &mut text.0 {
                    if let Piece::Lit(lit) = piece {
                        *lit = rewrite(lit, from, to);
                    }
                }
            }
        });
    }
}

fn step_texts(step: &mut Step, f: &mut impl FnMut(&mut Text)) {
    for (_, value) in &mut step.env {
        f(value);
    }
    if let Some(cwd) = &mut step.cwd {
        f(cwd);
    }
    match &mut step.action {
        Action::Command(command)
        | Action::Update { command, .. }
        | Action::Check(Check::Command(command)) => match command {
            Command::Argv(words) => words.iter_mut().for_each(&mut *f),
            Command::Shell(script) => f(script),
        },
        Action::Backup(Backup { paths, .. }) => paths.iter_mut().for_each(&mut *f),
        Action::Sql(_) | Action::Check(Check::Sql { .. }) => {}
    }
}

/// `text` with each mention of the path `from` (whole, or followed by
/// `/`) replaced by `to`: `/srv/files` and `/srv/files/a` are rewritten,
/// `/srv/files2` and `/x/srv/files` are not.
pub fn rewrite(text: &str, from: &str, to: &str) -> String {
    let from = from.trim_end_matches('/');
    if from.is_empty() {
        return text.to_string();
    }
    let in_path = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '~');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        let starts = before.is_none_or(|c| !in_path(c));
        let ends = after.is_none_or(|c| c == '/' || !in_path(c));
        out.push_str(&rest[..at]);
        if starts && ends {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_path_and_what_is_below_it_are_rewritten() {
        let to = "/run/r/trees/0/files";
        assert_eq!(rewrite("/srv/files", "/srv/files", to), to);
        assert_eq!(
            rewrite("--data=/srv/files/a.txt x", "/srv/files", to),
            format!("--data={to}/a.txt x")
        );
        assert_eq!(rewrite("/srv/files2", "/srv/files", to), "/srv/files2");
        assert_eq!(rewrite("/x/srv/files", "/srv/files", to), "/x/srv/files");
        assert_eq!(
            rewrite("cp '/srv/files' /srv/files.bak", "/srv/files", to),
            format!("cp '{to}' /srv/files.bak")
        );
        assert_eq!(
            rewrite("a /srv/files b /srv/files/", "/srv/files/", to),
            format!("a {to} b {to}/")
        );
    }
}
