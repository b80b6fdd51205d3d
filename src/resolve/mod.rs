//! AST to resolved plan: names checked against each other, values checked
//! against what each attribute accepts, variables substituted, `run` split
//! into arguments. Reports every problem it finds; never reads a database,
//! and reads the environment only through `Context`.

mod attrs;
pub mod duration;
mod refresh;
mod steps;
mod vars;
pub mod words;

use std::collections::{BTreeMap, HashMap};

pub use duration::parse_duration;
pub use vars::TARGET_FIELDS;

use crate::ast::{self, Item, Value};
use crate::diagnostic::{Code, Diagnostic};
use crate::plan::{Body, Plan, Text};
use crate::source::{Source, Span};
use crate::version::Version;

use attrs::Attrs;
use vars::Scope;

/// What resolution may read beyond the file.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// `--var NAME=VALUE`, highest precedence.
    pub overrides: BTreeMap<String, String>,
    /// The inventory target's `vars`.
    pub inventory: BTreeMap<String, String>,
    /// Present at apply time only: `lint` and `show` never read the
    /// environment or a database.
    pub live: Option<Live>,
}

/// The environment and target of a real run.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub env: HashMap<String, String>,
    /// `database`, `host`, `port`, `user`.
    pub target: HashMap<String, String>,
    /// The derived ERP configuration file of the run, the value of
    /// `${erp_config}` when the plan names one (`erp_config`).
    pub erp_config: Option<String>,
}

/// A resolved plan (when the plan block could be read) and the problems.
#[derive(Debug)]
pub struct Resolved {
    pub plan: Option<Plan>,
    /// What resolved when the plan block did not (or there is none): the
    /// steps, for lint, so that a broken header hides no other finding.
    pub body: Option<Body>,
    pub diagnostics: Vec<Diagnostic>,
    /// Values a live run needs that are not set (a usage error at apply).
    pub missing: Vec<String>,
}

const PLAN_ATTRS: &[&str] = &[
    "from",
    "to",
    "update_command",
    "release_query",
    "description",
    "erp_config",
    "refresh",
    "revision",
];

/// Resolves a parsed file.
pub fn resolve(file: &ast::File, source: &Source, ctx: &Context) -> Resolved {
    let mut diagnostics = Vec::new();
    let decls: Vec<&ast::VarDecl> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Var(v) => Some(v),
            _ => None,
        })
        .collect();
    let mut scope = Scope::new(&decls, ctx, &mut diagnostics);

    let blocks: Vec<&ast::PlanBlock> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Plan(p) => Some(p),
            _ => None,
        })
        .collect();
    for extra in blocks.iter().skip(1) {
        diagnostics.push(
            Diagnostic::new(
                Code::PlanBlock,
                extra.keyword,
                "a file holds one `plan` block",
            )
            .label("second `plan` block")
            .also(blocks[0].keyword, "first `plan` block")
            .help(
                "a file is one version pair: merge the blocks, or move this plan to its own file",
            ),
        );
    }
    let header = match blocks.first() {
        Some(block) => plan_header(block, &mut scope, &mut diagnostics),
        None => {
            diagnostics.push(
                Diagnostic::new(
                    Code::PlanBlock,
                    Span::new(0, 0),
                    "the file has no `plan` block",
                )
                .label("expected `plan \"NAME\" { ... }`")
                .help("start the file with: plan \"NAME\" { from = \"5.0.0\" to = \"6.0.0\" }"),
            );
            None
        }
    };

    let erp_config = blocks
        .first()
        .and_then(|b| erp_config(b, &decls, &mut scope, &mut diagnostics));
    let (refresh, revision) = blocks
        .first()
        .map(|b| refresh::read(b, PLAN_ATTRS, &mut scope, &mut diagnostics))
        .unwrap_or_default();
    let update_command = blocks.first().and_then(|b| {
        Attrs::collect(
            &b.attrs,
            PLAN_ATTRS,
            || "the `plan` block".to_string(),
            |_| None,
            &mut Vec::new(),
        )
        .string("update_command", &mut Vec::new())
    });
    // Every declaration is computed before the steps, in name order, so a
    // cycle is reported from the declaration first in name order, whichever
    // step uses it first.
    let vars = scope.all(&mut diagnostics);
    // After `all`, so a broken `db` declaration has already been reported
    // and is only looked up from the cache here.
    let database = scope
        .lookup(vars::DB, Span::default(), None, &mut Vec::new())
        .map(std::rc::Rc::unwrap_or_clone);
    let mut builder = steps::StepBuilder::new(&mut scope, update_command, &mut diagnostics);
    let main: Vec<&ast::Step> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Step(s) => Some(s),
            _ => None,
        })
        .collect();
    let failure_blocks: Vec<&ast::OnFailure> = file
        .items
        .iter()
        .filter_map(|i| match i {
            Item::OnFailure(o) => Some(o),
            _ => None,
        })
        .collect();
    let failure: Vec<&ast::Step> = failure_blocks.iter().flat_map(|o| o.steps.iter()).collect();
    let steps = builder.build_all(&main, &failure);
    let (steps, on_failure) = steps;

    let missing = std::mem::take(&mut scope.missing);
    diagnostics.sort_by_key(|d| (d.primary.span.start, d.code));
    diagnostics.dedup();

    let body = Body {
        vars,
        database,
        steps,
        on_failure,
        folder: source.folder(),
    };
    let (plan, body) = match header {
        Some((name, from, to, description, release_query)) => (
            Some(Plan {
                name,
                from,
                to,
                description,
                release_query,
                erp_config,
                refresh,
                revision,
                vars: body.vars,
                database: body.database,
                steps: body.steps,
                on_failure: body.on_failure,
                folder: body.folder,
            }),
            None,
        ),
        None => (None, Some(body)),
    };
    let mut missing = missing;
    missing.sort();
    missing.dedup();
    Resolved {
        plan,
        body,
        diagnostics,
        missing,
    }
}

type Header = (String, Version, Version, Option<String>, Option<Text>);

/// The plan block's `erp_config`, the server's configuration file; while
/// it is set, `${erp_config}` names the derived file a run gives the
/// server (docs/odoo.md), so no declaration may take the name.
fn erp_config(
    block: &ast::PlanBlock,
    decls: &[&ast::VarDecl],
    scope: &mut Scope<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Text> {
    // Unknown or repeated attributes are reported by `plan_header`.
    let attrs = Attrs::collect(
        &block.attrs,
        PLAN_ATTRS,
        || "the `plan` block".to_string(),
        |_| None,
        &mut Vec::new(),
    );
    let s = attrs.string(vars::ERP_CONFIG, diagnostics)?;
    for decl in decls.iter().filter(|d| d.name.name == vars::ERP_CONFIG) {
        diagnostics.push(
            Diagnostic::new(
                Code::ReservedVariable,
                decl.name.span,
                "`erp_config` is reserved when the plan block names the ERP configuration",
            )
            .label("cannot be declared")
            .also(s.span, "`${erp_config}` is bound by this")
            .help("`${erp_config}` names the configuration file the runner derives for the server; choose another name"),
        );
    }
    let mut segs = Vec::new();
    let path = scope
        .interpolate(s, None, diagnostics, &mut segs)
        .then(|| words::join(&segs));
    // After its own value: the file cannot name itself.
    scope.bind_erp_config();
    path
}

fn plan_header(
    block: &ast::PlanBlock,
    scope: &mut Scope<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Header> {
    let attrs = Attrs::collect(
        &block.attrs,
        PLAN_ATTRS,
        || "the `plan` block".to_string(),
        |key| {
            steps::belongs_to_step(key)
                .then(|| format!("`{key}` belongs in a step, not in the `plan` block"))
        },
        diagnostics,
    );
    let release = |key: &str, diagnostics: &mut Vec<Diagnostic>| -> Option<(Version, Span)> {
        let Some(attr) = attrs.get(key) else {
            diagnostics.push(
                Diagnostic::new(
                    Code::MissingAttribute,
                    block.keyword,
                    format!("the `plan` block has no `{key}`"),
                )
                .label(format!("`{key}` missing"))
                .help(format!(
                    "add {key} = \"6.0.0\" (the release the plan migrates {})",
                    if key == "from" { "from" } else { "to" }
                )),
            );
            return None;
        };
        let text = match &attr.value {
            Value::Str(_) => attrs.literal(key, diagnostics)?.literal(),
            Value::Number(n) => n.text.clone(),
            other => {
                diagnostics.push(attrs::wrong_type(key, "a release such as \"6.0.0\"", other));
                return None;
            }
        };
        match Version::parse(&text) {
            Some(v) => Some((v, attr.value.span())),
            None => {
                diagnostics.push(
                    Diagnostic::new(
                        Code::BadVersion,
                        attr.value.span(),
                        format!("`{text}` is not a release number"),
                    )
                    .label("not a dotted number")
                    .help("releases are dotted numbers, such as \"6.0.0\" or \"16.0\""),
                );
                None
            }
        }
    };
    let from = release("from", diagnostics);
    let to = release("to", diagnostics);
    let description = attrs
        .string("description", diagnostics)
        .map(|s| s.literal());
    let release_query = attrs.string("release_query", diagnostics).and_then(|s| {
        let mut segs = Vec::new();
        scope
            .interpolate(s, None, diagnostics, &mut segs)
            .then(|| words::join_quoted(&segs, crate::quote::quote_literal))
    });
    // Only its type is checked here: it is bound per `update` step.
    let _ = attrs.string("update_command", diagnostics);
    let ((from, from_span), (to, to_span)) = (from?, to?);
    let refresh = refresh::declared(block);
    if refresh && from != to {
        diagnostics.push(
            Diagnostic::new(
                Code::ReleaseOrder,
                to_span,
                format!("a refresh plan stays at one release, but `to` ({to}) is not `from` ({from})"),
            )
            .label("not `from`")
            .also(from_span, "`from` is here")
            .help("a refresh updates the same release after new code is deployed: make `to` equal `from`, or remove `refresh = true` for a migration"),
        );
    } else if from >= to && !refresh {
        diagnostics.push(
            Diagnostic::new(
                Code::ReleaseOrder,
                to_span,
                format!("`to` ({to}) must be a later release than `from` ({from})"),
            )
            .label("not after `from`")
            .also(from_span, "`from` is here")
            .help("a plan migrates forward: swap the two, or correct the release"),
        );
    }
    Some((block.name.literal(), from, to, description, release_query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use crate::plan::{Action, Command, Piece};

    fn resolve_text(text: &str) -> Resolved {
        let source = Source::new("t.plan", text);
        let parsed = parse(&source);
        assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
        resolve(&parsed.file, &source, &Context::default())
    }

    fn codes(resolved: &Resolved) -> Vec<&'static str> {
        resolved
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect()
    }

    const HEADER: &str = "plan \"t\" {\n  from = \"1.0\"\n  to = \"2.0\"\n}\n";

    #[test]
    fn a_step_with_an_undefined_variable_still_resolves() {
        let resolved = resolve_text(&format!(
            "{HEADER}var a = \"${{nope}}\"\nscript s {{\n  run = \"run ${{a}} ${{other}}\"\n}}\n"
        ));
        // Both undefined names are reported, each once.
        assert_eq!(codes(&resolved), ["E012", "E012"]);
        let plan = resolved.plan.expect("the plan block resolves");
        let [step] = plan.steps.as_slice() else {
            panic!("one step: {:#?}", plan.steps);
        };
        let Action::Command(Command::Argv(argv)) = &step.action else {
            panic!("{:#?}", step.action);
        };
        assert_eq!(argv[1].0, [Piece::Unresolved("a".into())]);
        assert_eq!(argv[2].0, [Piece::Unresolved("other".into())]);
        assert!(argv[1].expose().is_none(), "an unresolved value never runs");
        assert_eq!(argv[2].to_string(), "${other}");
    }

    #[test]
    fn every_mistake_of_a_step_is_reported() {
        let resolved = resolve_text(&format!(
            "{HEADER}backup b {{\n  method = \"snap\"\n  database = 5\n  paths = [1, \"${{x}}\", true]\n  keep = \"yes\"\n}}\ncheck c {{\n  sql = \"select ${{y}}\"\n  expect = [1]\n}}\nupdate u {{\n  modules = [\"a-b\", \"c d\"]\n  description = \"${{z}}\"\n}}\n"
        ));
        assert_eq!(
            codes(&resolved),
            [
                "E023", "E023", "E023", "E012", "E023", "E023", "E012", "E023", "E019", "E023",
                "E023", "E012"
            ],
            "{:#?}",
            resolved.diagnostics
        );
    }

    #[test]
    fn a_chain_of_variables_is_resolved_without_the_stack() {
        // Each names the next, so the first needs all the others: with one
        // call per level, 20,000 levels would need far more than the
        // 256 KiB this thread gets.
        let n = 20_000;
        let mut text = String::from(HEADER);
        for i in 0..n - 1 {
            text.push_str(&format!("var v{i} = \"${{v{}}}\"\n", i + 1));
        }
        text.push_str(&format!(
            "var v{} = \"end\"\nvar a = \"${{b}}\"\nvar b = \"${{a}}\"\n",
            n - 1
        ));
        let source = Source::new("t.plan", text);
        let parsed = parse(&source);
        assert!(parsed.diagnostics.is_empty());
        let resolved = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || resolve(&parsed.file, &source, &Context::default()))
            .expect("a thread")
            .join()
            .expect("no stack overflow");
        // The cycle beside the chain is still found.
        assert_eq!(codes(&resolved), ["E013"]);
        let plan = resolved.plan.expect("a plan");
        let v0 = plan.vars.iter().find(|(name, _)| name == "v0");
        assert_eq!(v0.map(|(_, v)| v.to_string()).as_deref(), Some("end"));
    }

    #[test]
    fn a_value_that_doubles_stops_at_the_bound() {
        let mut text = format!("{HEADER}var v0 = \"{}\"\n", "x".repeat(64));
        for i in 1..60 {
            text.push_str(&format!("var v{i} = \"${{v{0}}}${{v{0}}}\"\n", i - 1));
        }
        text.push_str("script s {\n  run = \"echo ${v59}\"\n}\n");
        let resolved = resolve_text(&text);
        // v14 is 1 MiB; v15 would be 2: it is reported, and what uses it
        // fails with it, silently.
        assert_eq!(codes(&resolved), ["E023"]);
        let d = &resolved.diagnostics[0];
        assert_eq!(
            d.message,
            "this string grows to 2097152 bytes once its variables are substituted, past the 1 MiB a value may hold"
        );
        assert!(text[d.primary.span.start..].starts_with("\"${v14}${v14}\""));
        let plan = resolved.plan.expect("a plan");
        assert_eq!(plan.steps.len(), 1, "the step is still there for lint");
    }

    #[test]
    fn a_large_value_in_many_steps_stops_at_the_plan_bound() {
        // 512 KiB, used by 200 steps: 100 MiB in all.
        let mut text = format!("{HEADER}var v0 = \"{}\"\n", "x".repeat(1024));
        for i in 1..10 {
            text.push_str(&format!("var v{i} = \"${{v{0}}}${{v{0}}}\"\n", i - 1));
        }
        for i in 0..200 {
            text.push_str(&format!("start s{i} {{\n  run = \"echo ${{v9}}\"\n}}\n"));
        }
        let source = Source::new("t.plan", text);
        let parsed = parse(&source);
        let resolved = resolve(&parsed.file, &source, &Context::default());
        assert_eq!(codes(&resolved), ["E023"], "reported once");
        assert!(
            resolved.diagnostics[0]
                .message
                .starts_with("the plan's strings grow past 64 MiB in all")
        );
    }

    #[test]
    fn a_plan_block_that_does_not_resolve_keeps_the_steps() {
        let resolved =
            resolve_text("plan \"t\" {\n  to = \"2.0\"\n}\nscript s {\n  run = \"x\"\n}\n");
        assert_eq!(codes(&resolved), ["E024"]);
        assert!(resolved.plan.is_none());
        let body = resolved.body.expect("the steps resolve without the header");
        assert_eq!(body.steps.len(), 1);
        let resolved = resolve_text("script s {\n  run = \"x\"\n}\n");
        assert_eq!(resolved.body.map(|b| b.steps.len()), Some(1));
    }
}
