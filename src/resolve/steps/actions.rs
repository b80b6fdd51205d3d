//! What each kind of step does, resolved: its command (argv or `sh -c`),
//! its SQL, its backup, its modules, its check.

use super::*;

impl<'a> StepBuilder<'_, 'a> {
    pub(super) fn argv(&mut self, s: &'a Str, modules: Option<&Rc<Text>>) -> Option<Vec<Text>> {
        self.with_segs(s, modules, |this, segs| this.split(segs, s.span))
    }

    pub(super) fn split(&mut self, segs: &[Seg<'_>], span: Span) -> Option<Vec<Text>> {
        match self.texts.split(segs) {
            Ok(argv) if argv.is_empty() => {
                self.diagnostics.push(
                    Diagnostic::new(Code::MissingCommand, span, "the command is empty")
                        .label("nothing to run")
                        .help("write the program and its arguments, such as \"python3 pre.py -d ${db}\""),
                );
                None
            }
            Ok(argv) => Some(argv),
            Err(WordError::UnclosedQuote(q)) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadValue,
                        span,
                        format!("a `{q}` in this command is never closed"),
                    )
                    .label("unbalanced quote")
                    .help(format!(
                        "close the `{q}`, or escape it with a backslash to pass it as text"
                    )),
                );
                None
            }
            Err(WordError::ShellSyntax(token)) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadValue, span, format!("`{token}` has no meaning in `run`: the command runs without a shell"))
                        .label("shell syntax")
                        .help(format!("quote it ('{token}') to pass it as text, or use `shell = \"...\"` for pipes and redirections")),
                );
                None
            }
        }
    }

    pub(super) fn command(
        &mut self,
        step: &'a ast::Step,
        attrs: &Attrs<'a>,
        modules: Option<&Rc<Text>>,
    ) -> Option<Command> {
        match (attrs.get("run"), attrs.get("shell")) {
            (Some(_), Some(shell)) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::MissingCommand,
                        shell.key.span,
                        "a step has `run` or `shell`, not both",
                    )
                    .label("second command")
                    .help("keep `run` (no shell) unless the step needs pipes or redirections"),
                );
                None
            }
            (Some(_), None) => {
                let s = attrs.string("run", self.diagnostics)?;
                self.argv(s, modules).map(Command::Argv)
            }
            (None, Some(_)) => {
                let s = attrs.string("shell", self.diagnostics)?;
                self.with_segs(s, modules, |this, segs| {
                    Some(Command::Shell(
                        this.texts.join_quoted(segs, crate::quote::shell_quote),
                    ))
                })
            }
            (None, None) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::MissingCommand,
                        step.name.span,
                        format!(
                            "`{}` step `{}` has nothing to run",
                            step.kind.name, step.name.name
                        ),
                    )
                    .label("no `run` or `shell`")
                    .help("add run = \"program arg...\""),
                );
                None
            }
        }
    }

    pub(super) fn sql_text(&mut self, s: &'a Str) -> Option<Text> {
        self.with_segs(s, None, |this, segs| {
            Some(this.texts.join_quoted(segs, crate::quote::quote_literal))
        })
    }

    pub(super) fn action(
        &mut self,
        kind: StepKind,
        step: &'a ast::Step,
        attrs: &Attrs<'a>,
    ) -> Option<Action> {
        match kind {
            StepKind::Stop | StepKind::Start | StepKind::Script => {
                self.command(step, attrs, None).map(Action::Command)
            }
            StepKind::Backup => self.backup(attrs).map(Action::Backup),
            StepKind::Sql => match (attrs.get("sql"), attrs.get("file")) {
                (Some(_), Some(file)) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MissingCommand,
                            file.key.span,
                            "an `sql` step has `sql` or `file`, not both",
                        )
                        .label("second source of SQL")
                        .help("keep one of the two"),
                    );
                    None
                }
                (Some(_), None) => {
                    let s = attrs.string("sql", self.diagnostics)?;
                    self.sql_text(s).map(|t| Action::Sql(Sql::Inline(t)))
                }
                (None, Some(_)) => {
                    let s = attrs.string("file", self.diagnostics)?;
                    self.joined(s).map(|t| Action::Sql(Sql::File(t)))
                }
                (None, None) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MissingCommand,
                            step.name.span,
                            format!("`sql` step `{}` has no SQL", step.name.name),
                        )
                        .label("no `sql` or `file`")
                        .help("add sql = \"...\" or file = \"migrate/fix.sql\""),
                    );
                    None
                }
            },
            StepKind::Update => self.update(step, attrs),
            StepKind::Check => self.check(step, attrs),
        }
    }

    /// A backup's attributes, each checked whatever the others gave.
    pub(super) fn backup(&mut self, attrs: &Attrs<'a>) -> Option<Backup> {
        let method = match attrs.literal("method", self.diagnostics) {
            None if attrs.has("method") => None,
            None => Some(BackupMethod::Snapshot),
            Some(s) => match s.literal().as_str() {
                "snapshot" => Some(BackupMethod::Snapshot),
                "dump" => Some(BackupMethod::Dump),
                other => {
                    let mut d = Diagnostic::new(
                        Code::BadValue,
                        s.span,
                        format!("`{other}` is not a backup method"),
                    )
                    .label("unknown method");
                    d = match suggest(other, ["snapshot", "dump"]) {
                        Some(near) => d.help(format!("did you mean \"{near}\"? the methods are \"snapshot\" and \"dump\"")),
                        None => d.help("the methods are \"snapshot\" (a copy made by the server) and \"dump\" (pg_dump into the run folder)"),
                    };
                    self.diagnostics.push(d);
                    None
                }
            },
        };
        let database = match self.text_attr(attrs, "database") {
            Some(Some(db)) => Some(db),
            // A backup of the target unless it says otherwise.
            Some(None) => Some(self.scope.target("database")),
            None => None,
        };
        let paths = match attrs.get("paths") {
            None => Some(Vec::new()),
            Some(attr) => {
                let items: &[Value] = match &attr.value {
                    Value::List(list) => &list.items,
                    Value::Str(_) => std::slice::from_ref(&attr.value),
                    other => {
                        self.diagnostics
                            .push(wrong_type("paths", "a list of strings", other));
                        &[]
                    }
                };
                let mut ok = matches!(attr.value, Value::List(_) | Value::Str(_));
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Str(s) = item else {
                        self.diagnostics.push(wrong_type("paths", "a string", item));
                        ok = false;
                        continue;
                    };
                    match self.joined(s) {
                        Some(path) => out.push(path),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
        };
        let keep = match attrs.get("keep") {
            None => Some(true),
            Some(attr) => match &attr.value {
                Value::Bool(b, _) => Some(*b),
                other => {
                    self.diagnostics
                        .push(wrong_type("keep", "`true` or `false`", other));
                    None
                }
            },
        };
        Some(Backup {
            method: method?,
            database: database?,
            paths: paths?,
            keep: keep?,
        })
    }

    /// An update's modules and its command, each checked whatever the
    /// other gave: when the modules are wrong, `${modules}` stands in the
    /// command as an unresolved value.
    pub(super) fn update(&mut self, step: &'a ast::Step, attrs: &Attrs<'a>) -> Option<Action> {
        let modules = match attrs.get("modules") {
            Some(attr) => self.modules(attr, attrs),
            None => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::MissingAttribute,
                        step.name.span,
                        format!(
                            "`update` step `{}` does not say which modules",
                            step.name.name
                        ),
                    )
                    .label("no `modules`")
                    .help(
                        "add modules = \"all\", or a list such as modules = [\"sale\", \"stock\"]",
                    ),
                );
                None
            }
        };
        let joined = Rc::new(match &modules {
            Some(modules) => Text::lit(modules.joined()),
            None => Text::unresolved(crate::resolve::vars::MODULES),
        });
        let command = if attrs.has("run") || attrs.has("shell") {
            self.command(step, attrs, Some(&joined))
        } else if let Some(template) = self.update_command {
            self.argv(template, Some(&joined)).map(Command::Argv)
        } else {
            self.diagnostics.push(
                Diagnostic::new(Code::MissingCommand, step.name.span, format!("`update` step `{}` has no command", step.name.name))
                    .label("no `run`, and the plan has no `update_command`")
                    .help("set update_command = \"${new_server} -d ${db} --update=${modules} --stop-after-init\" in the `plan` block, or give the step a `run`"),
            );
            None
        };
        let install = self.install(attrs);
        let check_modules = match attrs.get("check_modules") {
            None => Some(true),
            Some(attr) => match &attr.value {
                Value::Bool(b, _) => Some(*b),
                other => {
                    self.diagnostics
                        .push(wrong_type("check_modules", "`true` or `false`", other));
                    None
                }
            },
        };
        let install = install?;
        Some(Action::Update {
            modules: modules?,
            command: with_install(command?, &install),
            install,
            check_modules: check_modules?,
        })
    }

    /// `install = ["a", "b"]`: names only, never `all`.
    fn install(&mut self, attrs: &Attrs<'a>) -> Option<Vec<String>> {
        let Some(attr) = attrs.get("install") else {
            return Some(Vec::new());
        };
        match self.modules(attr, attrs)? {
            Modules::Named(names) => Some(names),
            Modules::All => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadValue, attr.key.span, "`install` names the modules to install, not `all`")
                        .label("not a list of modules")
                        .help("name the new modules, such as install = [\"sale_stock\"]; modules = \"all\" upgrades the installed ones"),
                );
                None
            }
        }
    }

    /// `ready = "http://127.0.0.1:8069/web/health"` or `"127.0.0.1:8069"`,
    /// variables substituted: several servers on one machine each answer
    /// on a port of their own, which the inventory gives per target.
    pub(super) fn ready(&mut self, attrs: &Attrs<'a>) -> Option<Option<Ready>> {
        if !attrs.has("ready") {
            return Some(None);
        }
        let s = attrs.string("ready", self.diagnostics)?;
        let value = self.joined(s)?;
        if value.has_secret() {
            self.diagnostics.push(
                Diagnostic::new(Code::BadValue, s.span, "a secret cannot be part of `ready`")
                    .label("holds a secret")
                    .help("the address is shown in the progress, the report and `plan show`: write it without secrets"),
            );
            return None;
        }
        // Without a target or the environment (lint, show), a variable's
        // value is not known: the address is checked when the plan runs.
        let Some(text) = value.as_literal() else {
            return Some(Some(Ready::Later(value.to_string())));
        };
        match Ready::parse(&text) {
            Ok(ready) => Some(Some(ready)),
            Err(why) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadValue, s.span, format!("`{text}` is not an address to wait for: {why}"))
                        .label("not an address")
                        .help("write an HTTP address such as \"http://127.0.0.1:8069/web/health\", or a TCP port such as \"127.0.0.1:8069\""),
                );
                None
            }
        }
    }

    /// `rehearse = "run"` or `"skip"` (`stop` and `start` steps): whether
    /// `plan rehearse` runs the step.
    pub(super) fn rehearse(&mut self, attrs: &Attrs<'a>) -> Option<Rehearse> {
        if !attrs.has("rehearse") {
            return Some(Rehearse::Skip);
        }
        let s = attrs.literal("rehearse", self.diagnostics)?;
        match plain(s).as_ref() {
            "run" => Some(Rehearse::Run),
            "skip" => Some(Rehearse::Skip),
            other => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadValue, s.span, format!("`{other}` is not what a rehearsal does with the step"))
                        .label("not `run` or `skip`")
                        .help("write rehearse = \"run\" for a step that is safe to run against a copy (it does not stop or start the production server); the default, \"skip\", leaves it out of rehearsals"),
                );
                None
            }
        }
    }

    /// `modules = "all"`, `"a, b"` or `[a, "b"]`; every bad name reported.
    pub(super) fn modules(&mut self, attr: &'a ast::Attr, attrs: &Attrs<'a>) -> Option<Modules> {
        let names: Vec<(String, Span)> = match &attr.value {
            Value::Str(s) if s.has_vars() => {
                attrs.literal(&attr.key.name, self.diagnostics);
                return None;
            }
            Value::Str(s) if plain(s) == "all" => return Some(Modules::All),
            Value::Str(s) => s
                .literal()
                .split(',')
                .map(|m| (m.trim().to_string(), s.span))
                .collect(),
            Value::List(list) => {
                let mut out = Vec::with_capacity(list.items.len());
                let mut ok = true;
                for item in &list.items {
                    match item {
                        Value::Str(s) => out.push((s.literal(), s.span)),
                        Value::Name(i) => out.push((i.name.clone(), i.span)),
                        other => {
                            self.diagnostics
                                .push(wrong_type("modules", "a module's name", other));
                            ok = false;
                        }
                    }
                }
                if list.items.is_empty() {
                    self.diagnostics.push(
                        Diagnostic::new(Code::BadValue, list.span, "the list of modules is empty")
                            .label("no module")
                            .help("name at least one module, or write modules = \"all\""),
                    );
                    return None;
                }
                if !ok {
                    return None;
                }
                out
            }
            other => {
                self.diagnostics
                    .push(wrong_type("modules", "\"all\" or a list of names", other));
                return None;
            }
        };
        let mut ok = true;
        for (name, span) in &names {
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadValue,
                        *span,
                        format!("`{name}` is not a module name"),
                    )
                    .label("not a module name")
                    .help("module names use letters, digits and `_`, such as \"sale_stock\""),
                );
            }
        }
        ok.then(|| Modules::Named(names.into_iter().map(|(n, _)| n).collect()))
    }

    pub(super) fn check(&mut self, step: &'a ast::Step, attrs: &Attrs<'a>) -> Option<Action> {
        let name = &step.name.name;
        match (attrs.get("sql"), attrs.get("run"), attrs.get("expect")) {
            (Some(_), Some(run), _) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadCheck, run.key.span, format!("check `{name}` has both `sql` and `run`"))
                        .label("second way of checking")
                        .help("a check is either `sql` with `expect`, or `run` (passes on exit 0): split it into two checks"),
                );
                None
            }
            (Some(_), None, Some(expect)) => {
                let sql = attrs
                    .string("sql", self.diagnostics)
                    .and_then(|s| self.sql_text(s));
                let expect = match &expect.value {
                    Value::Str(s) => self.joined(s),
                    Value::Number(n) => Some(Text::lit(n.text.as_str())),
                    other => {
                        self.diagnostics.push(wrong_type(
                            "expect",
                            "the expected value as a string",
                            other,
                        ));
                        None
                    }
                };
                Some(Action::Check(Check::Sql {
                    sql: sql?,
                    expect: expect?,
                }))
            }
            (Some(sql), None, None) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadCheck, sql.key.span, format!("check `{name}` has `sql` but no `expect`"))
                        .label("nothing to compare with")
                        .help("add expect = \"...\": the single value the query must return, as text (\"t\" for true)"),
                );
                None
            }
            (None, Some(_), expect) => {
                if let Some(expect) = expect {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::BadCheck,
                            expect.key.span,
                            "`expect` applies to `sql` checks only",
                        )
                        .label("ignored with `run`")
                        .help("a `run` check passes when the command exits 0; remove `expect`"),
                    );
                    return None;
                }
                self.command(step, attrs, None)
                    .map(|c| Action::Check(Check::Command(c)))
            }
            (None, None, _) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadCheck,
                        step.name.span,
                        format!("check `{name}` has neither `sql` nor `run`"),
                    )
                    .label("nothing to check")
                    .help(
                        "add sql = \"select ...\" with expect = \"...\", or run = \"program ...\"",
                    ),
                );
                None
            }
        }
    }
}

/// The update's command with `-i NAMES` after its arguments, for the
/// modules it installs: the ERP server's flag since OpenERP 5. The names
/// are checked (letters, digits, `_`), so in `shell =` they stay one word.
fn with_install(command: Command, install: &[String]) -> Command {
    if install.is_empty() {
        return command;
    }
    let names = install.join(",");
    match command {
        Command::Argv(mut argv) => {
            argv.push(Text::lit("-i"));
            argv.push(Text::lit(names));
            Command::Argv(argv)
        }
        Command::Shell(mut script) => {
            script.push_lit(&format!(" -i {names}"));
            Command::Shell(script)
        }
    }
}
