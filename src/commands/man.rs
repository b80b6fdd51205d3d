//! `plan man [COMMAND]`: the manual pages, in roff, from the command line's
//! own definition (clap_mangen): plan(1) lists the commands as
//! plan-lint(1) and so on, each of which is a page of its own.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::commands::{UsageError, print};
use crate::exit::Ending;

pub fn run(args: &ManArgs) -> Result<Ending, UsageError> {
    if let Some(dir) = &args.dir {
        write_all(dir)?;
        return Ok(Ending::checked(false));
    }
    // `--dir` and a command are refused together by clap; the command's
    // name was checked by `cli::parse_command_name`.
    let text = page(args.command.as_deref()).unwrap_or_default();
    print(&text);
    Ok(Ending::checked(false))
}

/// The whole command line, as the pages describe it: built (so each
/// command knows its name as `plan-lint`), without the `help` command,
/// which has no page.
fn command_line() -> clap::Command {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    cli
}

/// plan(1), or the page of one command; `None` for a command plan does not
/// have.
pub fn page(command: Option<&str>) -> Option<String> {
    let cli = command_line();
    let cmd = match command {
        None => cli,
        Some(name) => cli.find_subcommand(name)?.clone(),
    };
    let mut out = Vec::new();
    // Rendering into a Vec cannot fail.
    clap_mangen::Man::new(cmd)
        .source(format!("plan-runner {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Writes plan.1 and plan-COMMAND.1 for each command into `dir`.
fn write_all(dir: &Path) -> Result<(), UsageError> {
    let cli = command_line();
    let mut names = vec![None];
    names.extend(
        cli.get_subcommands()
            .map(|c| Some(c.get_name().to_string())),
    );
    for name in names {
        let file = match &name {
            None => "plan.1".to_string(),
            Some(name) => format!("plan-{name}.1"),
        };
        let path = dir.join(file);
        let text = page(name.as_deref()).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| UsageError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_page_names_every_command_and_each_has_its_page() {
        let main = page(None).expect("plan(1)");
        assert!(main.contains(".TH plan 1"), "{main}");
        for cmd in Cli::command().get_subcommands() {
            let name = cmd.get_name();
            assert!(
                main.contains(&format!("plan\\-{name}(1)")),
                "{name}: {main}"
            );
            let own = page(Some(name)).expect("a page per command");
            assert!(own.contains(&format!(".TH plan-{name} 1")), "{own}");
            assert!(own.contains("\"plan-runner "), "{own}");
        }
        assert_eq!(page(Some("nope")), None);
    }
}
