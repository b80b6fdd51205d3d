//! docs/cli.md's synopses are the command line clap parses: the one at the
//! top names every command, and it and each command's own section give
//! exactly that command's arguments and long flags, each flag with its
//! value as `--help` names it (`--jobs N`) or the values it takes
//! (`--format human|json`). Read from `Cli::command()`, so a new flag or
//! command fails here until the page shows it.

use std::collections::BTreeMap;

use clap::CommandFactory;
use plan_runner::cli::Cli;

/// How a synopsis writes one long flag: its name, and the word after it
/// when the flag takes a value.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flag {
    long: String,
    value: Option<String>,
}

/// What a synopsis says of one command.
#[derive(Debug, Default, PartialEq, Eq)]
struct Synopsis {
    /// The positional arguments, in order, without `[]` or `...`.
    arguments: Vec<String>,
    flags: Vec<Flag>,
}

fn page() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The bodies of the untagged fences of `text` (synopses are untagged;
/// examples are ```text, ```json...), each with the `## ` heading above it.
fn untagged_fences(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(bool, String)> = None;
    for line in text.lines() {
        match &mut open {
            Some((untagged, body)) => {
                if line.trim_end() == "```" {
                    if *untagged {
                        out.push((heading.clone(), std::mem::take(body)));
                    }
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
            None => {
                if let Some(tag) = line.strip_prefix("```") {
                    open = Some((tag.trim().is_empty(), String::new()));
                } else if let Some(h) = line.strip_prefix("## ") {
                    heading = h.trim().to_string();
                }
            }
        }
    }
    out
}

/// Each `plan COMMAND ...` of a synopsis (continuation lines are indented),
/// by command.
fn synopses(block: &str) -> BTreeMap<String, Synopsis> {
    let mut texts: Vec<String> = Vec::new();
    for line in block.lines() {
        if line.starts_with("plan ") {
            texts.push(line.to_string());
        } else if let Some(last) = texts.last_mut() {
            last.push(' ');
            last.push_str(line);
        }
    }
    texts
        .iter()
        .map(|text| {
            let words: Vec<&str> = text
                .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
                .filter(|w| !w.is_empty() && *w != "|" && *w != "...")
                .collect();
            let command = words.get(1).expect("`plan COMMAND`").to_string();
            let mut synopsis = Synopsis::default();
            let mut rest = words[2..].iter().peekable();
            while let Some(word) = rest.next() {
                if let Some(long) = word.strip_prefix("--") {
                    let value = rest
                        .next_if(|w| !w.starts_with("--"))
                        .map(|w| w.to_string());
                    synopsis.flags.push(Flag {
                        long: long.to_string(),
                        value,
                    });
                } else {
                    assert!(
                        synopsis.flags.is_empty(),
                        "`plan {command}`: `{word}` follows a flag but is not its value"
                    );
                    synopsis
                        .arguments
                        .push(word.trim_end_matches("...").to_string());
                }
            }
            synopsis.flags.sort();
            (command, synopsis)
        })
        .collect()
}

/// What clap parses, written as the synopses write it.
fn clap_synopses() -> BTreeMap<String, Synopsis> {
    Cli::command()
        .get_subcommands()
        .map(|command| {
            let arguments = command
                .get_positionals()
                .map(|arg| match arg.get_value_names() {
                    Some([name, ..]) => name.to_string(),
                    _ => arg.get_id().as_str().to_uppercase(),
                })
                .collect();
            let mut flags: Vec<Flag> = command
                .get_arguments()
                .filter_map(|arg| {
                    // `--help` is every command's; the commands that take
                    // psql's `-h` declare their own (`-?`), which synopses
                    // leave out like clap's.
                    let long = arg.get_long().filter(|long| *long != "help")?;
                    // A hidden flag is the runner's own (a fleet gives
                    // each child its run id), not the user's.
                    if arg.is_hide_set() {
                        return None;
                    }
                    // A flag that takes one of a few values shows them
                    // (`--format human|json`); any other its value's name.
                    let value = arg.get_action().takes_values().then(|| {
                        let values: Vec<String> = arg
                            .get_possible_values()
                            .iter()
                            .map(|v| v.get_name().to_string())
                            .collect();
                        match arg.get_value_names() {
                            Some([name, ..]) if values.is_empty() => name.to_string(),
                            _ => values.join("|"),
                        }
                    });
                    Some(Flag {
                        long: long.to_string(),
                        value,
                    })
                })
                .collect();
            flags.sort();
            let synopsis = Synopsis { arguments, flags };
            (command.get_name().to_string(), synopsis)
        })
        .collect()
}

fn assert_same(where_: &str, command: &str, documented: &Synopsis, parsed: &Synopsis) {
    assert_eq!(
        documented.arguments, parsed.arguments,
        "{where_}: the arguments of `plan {command}`"
    );
    for flag in &parsed.flags {
        assert!(
            documented.flags.contains(flag),
            "{where_}: `plan {command}` lacks `--{}{}`",
            flag.long,
            flag.value
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        );
    }
    for flag in &documented.flags {
        assert!(
            parsed.flags.contains(flag),
            "{where_}: `plan {command}` has no `--{}{}`; clap has {:?}",
            flag.long,
            flag.value
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default(),
            parsed.flags.iter().find(|f| f.long == flag.long)
        );
    }
}

#[test]
fn the_synopsis_at_the_top_is_the_whole_command_line() {
    let fences = untagged_fences(&page());
    let (_, top) = fences.first().expect("docs/cli.md opens with a synopsis");
    let documented = synopses(top);
    let parsed = clap_synopses();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        parsed.keys().collect::<Vec<_>>(),
        "the commands of the synopsis at the top of docs/cli.md"
    );
    for (command, synopsis) in &parsed {
        assert_same(
            "the top of docs/cli.md",
            command,
            &documented[command],
            synopsis,
        );
    }
}

#[test]
fn each_command_section_opens_with_its_synopsis() {
    let fences = untagged_fences(&page());
    for (command, parsed) in clap_synopses() {
        let heading = format!("plan {command}");
        let (_, block) = fences
            .iter()
            .find(|(h, _)| *h == heading)
            .unwrap_or_else(|| panic!("docs/cli.md has no synopsis under `## {heading}`"));
        let documented = synopses(block);
        assert_eq!(
            documented.keys().collect::<Vec<_>>(),
            [&command],
            "the synopsis under `## {heading}`"
        );
        assert_same(
            &format!("`## {heading}`"),
            &command,
            &documented[&command],
            &parsed,
        );
    }
}

#[test]
fn the_synopses_are_read_as_meant() {
    let read = synopses(
        "plan x    PATH...   [--format human|json] [--deny warnings]\n\
         \x20                   [--a N | --b] [--var NAME=VALUE]...\n",
    );
    let x = &read["x"];
    assert_eq!(x.arguments, ["PATH"]);
    let flags: Vec<(&str, Option<&str>)> = x
        .flags
        .iter()
        .map(|f| (f.long.as_str(), f.value.as_deref()))
        .collect();
    assert_eq!(
        flags,
        [
            ("a", Some("N")),
            ("b", None),
            ("deny", Some("warnings")),
            ("format", Some("human|json")),
            ("var", Some("NAME=VALUE")),
        ]
    );
}
