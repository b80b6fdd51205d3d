//! `plan completions SHELL`: a completion script for bash, zsh or fish,
//! generated from the command line's own definition (clap_complete), so a
//! new command or flag completes without anyone editing a script.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionShell, CompletionsArgs};
use crate::commands::{UsageError, print};
use crate::exit::Ending;

pub fn run(args: &CompletionsArgs) -> Result<Ending, UsageError> {
    print(&script(args.shell));
    Ok(Ending::checked(false))
}

/// The completion script for `shell`.
pub fn script(shell: CompletionShell) -> String {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "plan", &mut out);
    // clap_complete writes only what it formats from our own definitions.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shell_gets_its_own_script() {
        assert!(script(CompletionShell::Bash).contains("complete -F _plan"));
        assert!(script(CompletionShell::Zsh).starts_with("#compdef plan"));
        assert!(script(CompletionShell::Fish).contains("complete -c plan"));
    }
}
