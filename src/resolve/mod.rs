//! AST to resolved plan: names checked against each other, values checked
//! against what each attribute accepts, variables substituted, `run` split
//! into arguments. Reports every problem it finds; never reads a database,
//! and reads the environment only through `Context`.

mod attrs;
mod duration;
mod steps;
mod vars;
pub mod words;

use std::collections::{BTreeMap, HashMap};

pub use duration::parse_duration;
pub use vars::TARGET_FIELDS;

use crate::ast::{self, Item, Value};
use crate::diagnostic::{Code, Diagnostic};
use crate::plan::{Plan, Text};
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
}

/// A resolved plan (when the plan block could be read) and the problems.
#[derive(Debug)]
pub struct Resolved {
    pub plan: Option<Plan>,
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

    let plan = header.map(|(name, from, to, description, release_query)| Plan {
        name,
        from,
        to,
        description,
        release_query,
        vars,
        database,
        steps,
        on_failure,
        folder: source.folder(),
    });
    let mut missing = missing;
    missing.sort();
    missing.dedup();
    Resolved {
        plan,
        diagnostics,
        missing,
    }
}

type Header = (String, Version, Version, Option<String>, Option<Text>);

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
            .then(|| words::join_quoted(&segs, words::sql_quote))
    });
    // Only its type is checked here: it is bound per `update` step.
    let _ = attrs.string("update_command", diagnostics);
    let ((from, from_span), (to, to_span)) = (from?, to?);
    if from >= to {
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
