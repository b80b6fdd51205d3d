//! The properties the fuzz targets check, as functions that panic when one
//! does not hold. The main crate's regression tests include this very file
//! (tests/it/fuzz_regressions.rs), so an input the fuzzer found is replayed
//! by `cargo test` under exactly the checks that caught it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use plan_runner::analysis;
use plan_runner::commands::show::Document;
use plan_runner::diagnostic::Diagnostic;
use plan_runner::diagnostic::human::{self, Style};
use plan_runner::graph::{Graph, render};
use plan_runner::resolve::{self, Context, Live};
use plan_runner::source::{Source, Span};
use plan_runner::{fmt, parse};

/// Any bytes: read, parse, resolve and graph without a panic; every
/// diagnostic points inside the text, on character boundaries, and renders;
/// a plan that resolves can be shown and drawn. Resolution runs twice: as
/// `lint` does (no environment) and as `apply` would (a live context), since
/// the two take different paths through variables and secrets.
pub fn check_analysis(data: &[u8]) {
    let (source, not_utf8) = parse::from_bytes(Path::new("fuzz.plan"), data.to_vec());
    if let Some(d) = &not_utf8 {
        check_diagnostic(d, &source);
    }
    let analysis = analysis::analyse(source, &Context::default());
    for d in &analysis.diagnostics {
        check_diagnostic(d, &analysis.source);
    }
    if let (Some(plan), Some((main, failure))) = (&analysis.plan, &analysis.graphs) {
        check_graph(main, plan.steps.len());
        check_graph(failure, plan.on_failure.len());
        let _ = render::dot(plan, main, failure);
        let _ = render::mermaid(plan, main, failure);
        let document = Document::new(plan, main, failure);
        if let Err(error) = serde_json::to_string(&document) {
            panic!("`show --format json` cannot serialize the plan: {error}");
        }
    }

    let live = resolve::resolve(&analysis.ast, &analysis.source, &live_context());
    for d in &live.diagnostics {
        check_diagnostic(d, &analysis.source);
    }
}

/// Any bytes as an ERP configuration file (`erp_config`): read without a
/// panic, every error's labels inside the text; a file that reads gives a
/// derived file that reads back with the target's connection.
pub fn check_erp_config(data: &[u8]) {
    use plan_runner::erp_config::{Connection, ErpConfig, ErpConfigError, derived_text};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("odoo.conf");
    match ErpConfig::parse(path, text.to_string()) {
        Ok(config) => {
            let target = Connection {
                host: "/run/postgresql".into(),
                port: 5432,
                user: "odoo".into(),
                database: "acme".into(),
            };
            let derived = derived_text(&config, &target, Path::new("/srv/odoo"));
            match ErpConfig::parse(path, derived.clone()) {
                Ok(back) => {
                    assert_eq!(back.option("db_name"), Some("acme"), "{derived}");
                    assert_eq!(back.option("logfile"), None, "{derived}");
                }
                Err(e) => panic!("the derived file does not read back: {e}\n{derived}"),
            }
        }
        Err(ErpConfigError::Syntax { labels, .. }) => {
            for label in labels {
                let end = label.offset() + label.len();
                assert!(end <= text.len(), "a label past the end: {label:?}");
                assert!(text.is_char_boundary(label.offset()) && text.is_char_boundary(end));
            }
        }
        Err(e) => panic!("parsing text gave {e}"),
    }
}

/// Bytes that parse without a diagnostic: `fmt`'s output parses without a
/// diagnostic into the same tree (spans aside, comments included), and
/// formatting it again changes nothing.
pub fn check_fmt_roundtrip(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source::new("fuzz.plan", text);
    let parsed = parse::parse(&source);
    if !parsed.diagnostics.is_empty() {
        return;
    }
    let once = fmt::format(&parsed.file, &source);
    let formatted = Source::new("fuzz.plan", once.as_str());
    let reparsed = parse::parse(&formatted);
    if !reparsed.diagnostics.is_empty() {
        let shown: Vec<String> = reparsed
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect();
        panic!(
            "fmt's output does not parse cleanly: {shown:?}\n--- input\n{text}\n--- fmt\n{once}"
        );
    }
    let before = tree(&parsed.file);
    let after = tree(&reparsed.file);
    assert!(
        before == after,
        "fmt changed the tree\n--- input\n{text}\n--- fmt\n{once}\n--- tree before\n{before}\n--- tree after\n{after}"
    );
    let twice = fmt::format(&reparsed.file, &formatted);
    assert!(
        twice == once,
        "fmt is not idempotent\n--- input\n{text}\n--- fmt\n{once}\n--- fmt of fmt\n{twice}"
    );
}

/// A diagnostic's spans lie in the text, on character boundaries, and it
/// renders (as `lint` prints it) without a panic.
pub fn check_diagnostic(diagnostic: &Diagnostic, source: &Source) {
    let text = source.text();
    let labels = std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary);
    for label in labels {
        let Span { start, end } = label.span;
        assert!(
            start <= end && end <= text.len(),
            "{} `{}`: span {start}..{end} is outside the text ({} bytes)",
            diagnostic.code,
            diagnostic.message,
            text.len()
        );
        assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "{} `{}`: span {start}..{end} splits a character",
            diagnostic.code,
            diagnostic.message
        );
    }
    assert!(
        !diagnostic.message.starts_with("internal error"),
        "the parser met a tree it did not expect: {} at {:?}",
        diagnostic.message,
        diagnostic.primary.span
    );
    let _ = human::render(diagnostic, source, Style::plain(), false);
}

/// The order lists each step at most once, and a step only after every
/// step it waits for.
fn check_graph(graph: &Graph, steps: usize) {
    let mut position = vec![None; steps];
    for (n, &step) in graph.order.iter().enumerate() {
        assert!(step < steps, "order names step {step} of {steps}");
        assert!(position[step].is_none(), "order lists step {step} twice");
        position[step] = Some(n);
    }
    assert_eq!(graph.levels.len(), steps, "one level per step");
    for edge in graph.graph.raw_edges() {
        let (before, after) = (graph.graph[edge.source()], graph.graph[edge.target()]);
        if let (Some(b), Some(a)) = (position[before], position[after]) {
            assert!(
                b < a,
                "step {after} is ordered before step {before} it waits for"
            );
        }
    }
}

/// What a real run might see: values with spaces and quotes, a secret, and
/// target fields, so substitution and word splitting meet awkward text.
fn live_context() -> Context {
    let env: HashMap<String, String> = [
        ("OLD_SERVER", "/opt/old server/bin/openerp-server"),
        ("NEW_SERVER", "/opt/new's \"server\"/bin/openerp-server"),
        ("PGPASSWORD", "s3cr$t ${db}"),
        ("HOME", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let target: HashMap<String, String> = [
        ("database", "prod db; rm -rf /"),
        ("host", "localhost"),
        ("port", "5432"),
        ("user", "odoo"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Context {
        overrides: BTreeMap::from([("scripts".to_string(), "migrate/a b".to_string())]),
        inventory: BTreeMap::from([("db".to_string(), "from inventory".to_string())]),
        live: Some(Live {
            env,
            target,
            erp_config: None,
        }),
    }
}

/// The tree as JSON: spans are not serialized, so equal text means equal
/// shape.
fn tree(file: &plan_runner::ast::File) -> String {
    serde_json::to_string_pretty(file).unwrap_or_else(|error| panic!("AST to JSON: {error}"))
}

/// Any bytes as an inventory file, read as `--inventory` reads it: a
/// diagnostic (its labels inside the text, on character boundaries, and
/// rendered as the command line prints it) or an inventory whose every
/// target is found by its name and resolves to a connection (an error is
/// fine; a panic is not). Certificate paths are dropped before resolving:
/// the fuzzer must not make the check read `/dev/zero`.
pub fn check_inventory(data: &[u8]) {
    use plan_runner::target::inventory::Inventory;
    use plan_runner::target::{self, Env, Selection};

    // `Inventory::load` reads the file as UTF-8 text: other bytes are an
    // I/O error before any parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inventory = match Inventory::parse("fuzz/inventory.yaml", text) {
        Ok(inventory) => inventory,
        Err(error) => {
            check_report(&error, text);
            return;
        }
    };
    let names: Vec<String> = inventory.names().map(str::to_string).collect();
    for name in &names {
        let Ok(found) = inventory.target(name) else {
            panic!("the listed target `{name}` is not found by its name");
        };
        let mut found = found.clone();
        found.sslrootcert = None;
        found.sslcert = None;
        found.sslkey = None;
        let selection = Selection {
            inventory: Some((name, &found)),
            ..Selection::default()
        };
        if let Err(error) = target::resolve(&selection, &Env::empty().with_os_user("fuzz")) {
            check_report(&error, text);
        }
    }
    match inventory.target("no such target here") {
        Ok(_) if !names.iter().any(|n| n == "no such target here") => {
            panic!("a target that is not in the inventory was found")
        }
        Ok(_) => {}
        Err(error) => check_report(&error, text),
    }
}

/// A miette diagnostic's labels lie in `text`, on character boundaries,
/// and it renders as the command line prints it.
fn check_report(error: &dyn miette::Diagnostic, text: &str) {
    for label in error.labels().into_iter().flatten() {
        let (start, end) = (label.offset(), label.offset() + label.len());
        assert!(
            end <= text.len(),
            "`{error}`: label {start}..{end} is outside the text ({} bytes)",
            text.len()
        );
        assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "`{error}`: label {start}..{end} splits a character"
        );
    }
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    if let Err(e) = handler.render_report(&mut out, error) {
        panic!("`{error}` does not render: {e}");
    }
}

/// Any bytes as a run's journal, read as `recover`, `--resume` and
/// `status` read it: parsed into records, damaged lines and a torn tail
/// (every line accounted for once), then told as a story and judged as
/// they judge it. The same lines are read again each sealed with its
/// checksum as the runner writes it, so that the records' JSON, not only
/// the checksums, meets the readers.
pub fn check_journal(data: &[u8]) {
    check_journal_bytes(data);
    check_journal_bytes(&seal(data));
}

fn check_journal_bytes(data: &[u8]) {
    use plan_runner::exec::journal::{self, Story};
    use plan_runner::exec::run::dead;

    let contents = journal::parse(data);
    let lines = data.split(|&b| b == b'\n').count();
    let counted = contents.entries.len() + contents.damaged.len() + usize::from(contents.torn_tail);
    assert!(
        counted <= lines,
        "{counted} records, damaged lines and torn tails from {lines} lines"
    );
    assert!(
        contents.damaged.windows(2).all(|w| w[0] < w[1]),
        "damaged lines out of order: {:?}",
        contents.damaged
    );
    let story = Story::of(&contents.entries);
    let _ = dead::refusal(&story, "2405011200ab12");
    let _ = dead::done(&story);
    let _ = dead::next_step(&story);
    for taken in &story.taken {
        let _ = dead::taken_report(taken);
    }
}

/// Each line of `data` (a JSON record, the fuzzer hopes) preceded by its
/// checksum, as `exec::journal` writes a line: the first 16 hex digits of
/// the SHA-256 of the JSON.
pub fn seal(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut out = Vec::with_capacity(data.len() + 64);
    for line in data.split(|&b| b == b'\n') {
        let sum = hex::encode(sha2::Sha256::digest(line));
        out.extend_from_slice(&sum.as_bytes()[..16]);
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}
