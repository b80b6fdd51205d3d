//! A plan file taken through every stage that needs no database: read,
//! parse, resolve, graph. What `lint`, `show`, `graph` (and later `apply`)
//! start from.

use std::path::Path;

use crate::ast::File;
use crate::diagnostic::{Code, Diagnostic};
use crate::graph::Graph;
use crate::parse;
use crate::plan::{Body, Plan, Step};
use crate::resolve::{self, Context};
use crate::source::Source;

/// Everything known about one file.
pub struct Analysis {
    pub source: Source,
    pub ast: File,
    /// Present when the plan block could be read.
    pub plan: Option<Plan>,
    /// The steps alone, when the plan block could not be read: lint still
    /// checks them.
    pub body: Option<Body>,
    /// The graphs of the steps and of the `on_failure` steps (of `plan`
    /// or of `body`).
    pub graphs: Option<(Graph, Graph)>,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
    pub missing: Vec<String>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The steps and the `on_failure` steps that resolved, whether or not
    /// the plan block did.
    pub fn steps(&self) -> Option<(&[Step], &[Step])> {
        match (&self.plan, &self.body) {
            (Some(plan), _) => Some((&plan.steps, &plan.on_failure)),
            (None, Some(body)) => Some((&body.steps, &body.on_failure)),
            (None, None) => None,
        }
    }
}

/// Reads a plan file: its text, and the diagnostic when it is not UTF-8.
/// A UTF-8 byte order mark (which some Windows editors write) is dropped
/// before the bytes are decoded, so that every offset, that of an invalid
/// byte included, counts from the text the parser reads.
pub fn read(path: &Path) -> std::io::Result<(Source, Option<Diagnostic>)> {
    let mut bytes = std::fs::read(path)?;
    let bom = bytes.starts_with(BOM_BYTES);
    if bom {
        bytes.drain(..BOM_BYTES.len());
    }
    let (source, not_utf8) = parse::from_bytes(path, bytes);
    Ok((if bom { source.with_bom() } else { source }, not_utf8))
}

/// The UTF-8 encoding of `source::BOM`.
const BOM_BYTES: &[u8] = b"\xEF\xBB\xBF";

/// Reads and analyses a file; only an I/O error stops it.
pub fn analyse_path(path: &Path, ctx: &Context) -> std::io::Result<Analysis> {
    let (source, not_utf8) = read(path)?;
    let mut analysis = analyse(source, ctx);
    if let Some(d) = not_utf8 {
        analysis.diagnostics.insert(0, d);
    }
    Ok(analysis)
}

/// Analyses text already read.
pub fn analyse(source: Source, ctx: &Context) -> Analysis {
    let parsed = parse::parse(&source);
    let mut diagnostics = parsed.diagnostics;
    // When the syntax is broken, a block that could not be read may be the
    // one a reference names: report each readable block's own mistakes,
    // not the references between blocks.
    let syntax_ok = !diagnostics.iter().any(|d| d.is_error());
    let resolved = resolve::resolve(&parsed.file, &source, ctx);
    diagnostics.extend(
        resolved
            .diagnostics
            .into_iter()
            .filter(|d| syntax_ok || !is_reference(d.code)),
    );
    let steps = match (&resolved.plan, &resolved.body) {
        (Some(plan), _) => Some((&plan.steps, &plan.on_failure)),
        (None, Some(body)) => Some((&body.steps, &body.on_failure)),
        (None, None) => None,
    };
    let graphs = steps.map(|(steps, on_failure)| {
        let (main, mut cycles) = Graph::build(steps);
        let (failure, failure_cycles) = Graph::build(on_failure);
        cycles.extend(failure_cycles);
        if syntax_ok {
            diagnostics.extend(cycles);
        }
        (main, failure)
    });
    diagnostics.sort_by_key(|d| (d.primary.span.start, d.code));
    Analysis {
        source,
        ast: parsed.file,
        plan: resolved.plan,
        body: resolved.body,
        graphs,
        diagnostics,
        missing: resolved.missing,
    }
}

/// Findings about references between blocks.
fn is_reference(code: Code) -> bool {
    matches!(
        code,
        Code::UnknownAfter
            | Code::UndefinedVariable
            | Code::PlanBlock
            | Code::Cycle
            | Code::FailureAfter
            | Code::VariableCycle
    )
}
