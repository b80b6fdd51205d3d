//! `plan show`: the resolved steps in execution order, with the commands
//! they will run, secrets redacted. The JSON and YAML forms are a stable
//! document (`format_version` 1, docs/cli.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::analyse_path;
use crate::cli::{ShowArgs, ShowFormat};
use crate::commands::{UsageError, print, report};
use crate::exit::Ending;
use crate::graph::Graph;
use crate::plan::{Action, Backup, Check, Command, Plan, Sql, Step, Text};
use crate::resolve::Context;

pub fn run(args: &ShowArgs) -> Result<Ending, UsageError> {
    if args.plan.is_dir() {
        return crate::commands::show_folder::run(args);
    }
    if let Some(to) = &args.to {
        return Err(UsageError::ToWithoutFolder {
            path: args.plan.clone(),
            to: to.to_string(),
        });
    }
    let analysis =
        analyse_path(&args.plan, &Context::default()).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => UsageError::NoSuchPath {
                path: args.plan.clone(),
            },
            _ => UsageError::Io {
                path: args.plan.clone(),
                source,
            },
        })?;
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    let (Some(plan), Some((main, failure)), true) =
        (&analysis.plan, &analysis.graphs, errors.is_empty())
    else {
        report(&errors, &analysis.source);
        return Ok(Ending::checked(true));
    };
    let document = Document::new(plan, main, failure);
    print(&match args.format {
        ShowFormat::Human => human(&document),
        ShowFormat::Json => {
            let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
            text.push('\n');
            text
        }
        ShowFormat::Yaml => serde_yaml::to_string(&document).unwrap_or_default(),
    });
    Ok(Ending::checked(false))
}

/// The plan as `show --format json|yaml` prints it.
#[derive(Debug, Serialize)]
pub struct Document {
    pub format_version: u32,
    pub name: String,
    pub from: String,
    pub to: String,
    pub description: Option<String>,
    pub steps: Vec<ShownStep>,
    pub on_failure: Vec<ShownStep>,
}

#[derive(Debug, Serialize)]
pub struct ShownStep {
    pub name: String,
    pub kind: &'static str,
    pub after: Vec<String>,
    pub level: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// `"run"` for a `stop` or `start` step a rehearsal runs
    /// (`rehearse = "run"`); absent for one it skips, and other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rehearse: Option<&'static str>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub timeout_s: Option<u64>,
    pub retries: u32,
    pub user: Option<String>,
    pub fail_on_output: Option<String>,
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<bool>,
}

impl Document {
    pub fn new(plan: &Plan, main: &Graph, failure: &Graph) -> Self {
        let shown = |steps: &[Step], graph: &Graph| -> Vec<ShownStep> {
            graph
                .order
                .iter()
                .map(|&i| ShownStep::new(&steps[i], graph.levels[i]))
                .collect()
        };
        Document {
            format_version: 1,
            name: plan.name.clone(),
            from: plan.from.to_string(),
            to: plan.to.to_string(),
            description: plan.description.clone(),
            steps: shown(&plan.steps, main),
            on_failure: shown(&plan.on_failure, failure),
        }
    }
}

impl ShownStep {
    fn new(step: &Step, level: usize) -> Self {
        let mut shown = ShownStep {
            name: step.name.clone(),
            kind: step.kind.as_str(),
            after: step.after.iter().map(|a| a.name.clone()).collect(),
            level,
            argv: None,
            shell: None,
            sql: None,
            file: None,
            expect: None,
            modules: None,
            install: None,
            ready: step.ready.as_ref().map(ToString::to_string),
            rehearse: (step.rehearse == crate::plan::Rehearse::Run).then_some("run"),
            env: step
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            cwd: step.cwd.as_ref().map(Text::to_string),
            timeout_s: step.timeout.map(|t| t.as_secs()),
            retries: step.retries,
            user: step.user.as_ref().map(Text::to_string),
            fail_on_output: step.fail_on_output.clone(),
            description: step.description.clone(),
            method: None,
            database: None,
            paths: None,
            keep: None,
        };
        match &step.action {
            Action::Command(command) => shown.command(command),
            Action::Backup(Backup {
                method,
                database,
                paths,
                keep,
            }) => {
                shown.method = Some(method.as_str());
                shown.database = Some(database.to_string());
                shown.paths = Some(paths.iter().map(Text::to_string).collect());
                shown.keep = Some(*keep);
            }
            Action::Sql(Sql::Inline(sql)) => shown.sql = Some(sql.to_string()),
            Action::Sql(Sql::File(file)) => shown.file = Some(file.to_string()),
            Action::Update {
                modules,
                command,
                install,
                ..
            } => {
                shown.modules = Some(match modules {
                    crate::plan::Modules::All => vec!["all".into()],
                    crate::plan::Modules::Named(names) => names.clone(),
                });
                shown.install = (!install.is_empty()).then(|| install.clone());
                shown.command(command);
            }
            Action::Check(Check::Sql { sql, expect }) => {
                shown.sql = Some(sql.to_string());
                shown.expect = Some(expect.to_string());
            }
            Action::Check(Check::Command(command)) => shown.command(command),
        }
        shown
    }

    fn command(&mut self, command: &Command) {
        match command {
            Command::Argv(argv) => self.argv = Some(argv.iter().map(Text::to_string).collect()),
            Command::Shell(script) => self.shell = Some(script.to_string()),
        }
    }
}

fn human(doc: &Document) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan \"{}\": {} -> {}", doc.name, doc.from, doc.to);
    if let Some(d) = &doc.description {
        let _ = writeln!(out, "{d}");
    }
    human_steps(&mut out, &doc.steps);
    if !doc.on_failure.is_empty() {
        let _ = writeln!(out, "\non_failure (after a proved rollback):");
        human_steps(&mut out, &doc.on_failure);
    }
    out
}

fn human_steps(out: &mut String, steps: &[ShownStep]) {
    let width = steps.len().to_string().len();
    for (n, step) in steps.iter().enumerate() {
        let mut head = format!("\n{:>width$}. {} {}", n + 1, step.kind, step.name);
        if !step.after.is_empty() {
            let _ = write!(head, "  (after {})", step.after.join(", "));
        }
        let _ = writeln!(out, "{head}");
        let pad = " ".repeat(width + 2);
        if let Some(argv) = &step.argv {
            let line: Vec<String> = argv.iter().map(|a| crate::quote::shell_word(a)).collect();
            let _ = writeln!(out, "{pad}run: {}", line.join(" "));
        }
        if let Some(shell) = &step.shell {
            let _ = writeln!(out, "{pad}sh -c: {shell}");
        }
        if let Some(sql) = &step.sql {
            let _ = writeln!(out, "{pad}sql: {}", sql.trim());
        }
        if let Some(file) = &step.file {
            let _ = writeln!(out, "{pad}sql file: {file}");
        }
        if let Some(expect) = &step.expect {
            let _ = writeln!(out, "{pad}expect: {expect:?}");
        }
        if let Some(modules) = &step.modules {
            let _ = writeln!(out, "{pad}modules: {}", modules.join(", "));
        }
        if let Some(install) = &step.install {
            let _ = writeln!(out, "{pad}install: {}", install.join(", "));
        }
        if let Some(ready) = &step.ready {
            let _ = writeln!(out, "{pad}ready: waits for {ready}");
        }
        if step.rehearse.is_some() {
            let _ = writeln!(out, "{pad}rehearse: runs in a rehearsal too");
        }
        if let (Some(method), Some(db)) = (step.method, &step.database) {
            let keep = if step.keep == Some(false) {
                ", dropped after success"
            } else {
                ", kept"
            };
            let _ = writeln!(out, "{pad}{method} of database {db}{keep}");
        }
        if let Some(paths) = step.paths.as_ref().filter(|p| !p.is_empty()) {
            let _ = writeln!(out, "{pad}paths: {}", paths.join(", "));
        }
        for (key, value) in &step.env {
            let _ = writeln!(out, "{pad}env: {key}={value}");
        }
        let mut limits = Vec::new();
        if let Some(t) = step.timeout_s {
            limits.push(format!("timeout {}", crate::resolve::duration::format(t)));
        }
        if step.retries > 0 {
            limits.push(format!("retries {}", step.retries));
        }
        if let Some(cwd) = &step.cwd {
            limits.push(format!("cwd {cwd}"));
        }
        if let Some(user) = &step.user {
            limits.push(format!("as user {user}"));
        }
        if !limits.is_empty() {
            let _ = writeln!(out, "{pad}{}", limits.join(", "));
        }
    }
}
