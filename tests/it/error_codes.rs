//! Every `plan::` code the program can report has its section in
//! docs/diagnostics.md, and every `## plan::` section there is a code that
//! exists. The codes are read from the source itself: each enum or struct
//! deriving miette's `Diagnostic` in src/, parsed as Rust (syn), each
//! variant with its `#[diagnostic(code(...))]`. A variant with neither a
//! code nor `#[diagnostic(transparent)]` fails too, so a new error cannot
//! reach a partner without a code to look up.
//!
//! (The `E0xx`/`W1xx` codes of plans come from one table, `Code::ALL`,
//! and are checked by `docs::every_code_has_its_section`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::punctuated::Punctuated;
use syn::{Attribute, Item, Token};

const PAGE: &str = "docs/diagnostics.md";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What `#[diagnostic(...)]` attributes say of one variant or type.
#[derive(Debug, Default)]
struct Said {
    code: Option<String>,
    transparent: bool,
}

fn said(attrs: &[Attribute]) -> syn::Result<Said> {
    let mut said = Said::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("diagnostic")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("code") {
                let inner;
                syn::parenthesized!(inner in meta.input);
                let path: syn::Path = inner.parse()?;
                let segments: Vec<String> =
                    path.segments.iter().map(|s| s.ident.to_string()).collect();
                said.code = Some(segments.join("::"));
            } else if meta.path.is_ident("transparent") {
                said.transparent = true;
            } else if meta.input.peek(syn::token::Paren) {
                // help(...), url(...), severity(...): not about the code.
                let inner;
                syn::parenthesized!(inner in meta.input);
                inner.step(|cursor| {
                    let mut rest = *cursor;
                    while let Some((_, next)) = rest.token_tree() {
                        rest = next;
                    }
                    Ok(((), rest))
                })?;
            } else if meta.input.peek(Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        })?;
    }
    Ok(said)
}

/// Whether `attrs` derive miette's `Diagnostic` (under any name it is
/// imported as: `Diagnostic`, `miette::Diagnostic`, `MietteDiagnostic`).
fn derives_diagnostic(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .filter_map(|a| {
            a.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .any(|path| {
            path.segments
                .last()
                .is_some_and(|s| s.ident.to_string().ends_with("Diagnostic"))
        })
}

/// The codes found in one file: code -> where (`Type::Variant`); and the
/// variants that have no code.
#[derive(Debug, Default)]
struct Found {
    codes: BTreeMap<String, Vec<String>>,
    uncoded: Vec<String>,
}

fn scan_items(items: &[Item], file: &str, found: &mut Found) {
    for item in items {
        match item {
            Item::Enum(e) if derives_diagnostic(&e.attrs) => {
                let whole = said(&e.attrs).unwrap_or_else(|err| panic!("{file}: {err}"));
                for variant in &e.variants {
                    let at = format!("{file}: {}::{}", e.ident, variant.ident);
                    let own = said(&variant.attrs).unwrap_or_else(|err| panic!("{at}: {err}"));
                    match own.code.or_else(|| whole.code.clone()) {
                        Some(code) => found.codes.entry(code).or_default().push(at),
                        None if own.transparent => {}
                        None => found.uncoded.push(at),
                    }
                }
            }
            Item::Struct(s) if derives_diagnostic(&s.attrs) => {
                let at = format!("{file}: {}", s.ident);
                let own = said(&s.attrs).unwrap_or_else(|err| panic!("{at}: {err}"));
                match own.code {
                    Some(code) => found.codes.entry(code).or_default().push(at),
                    None if own.transparent => {}
                    None => found.uncoded.push(at),
                }
            }
            Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    scan_items(items, file, found);
                }
            }
            _ => {}
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a readable entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every code of the program's error types, with where each is declared.
fn program_codes() -> Found {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    files.sort();
    let mut found = Found::default();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let name = path
            .strip_prefix(repo())
            .unwrap_or(&path)
            .display()
            .to_string();
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        scan_items(&file.items, &name, &mut found);
    }
    found
}

/// The codes docs/diagnostics.md has a `## plan::...` section for.
fn documented_codes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(PAGE)).expect("docs/diagnostics.md exists");
    let mut fenced = false;
    let mut codes = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && let Some(heading) = line.strip_prefix("## ") {
            let heading = heading.trim();
            if heading.starts_with("plan::") {
                assert!(
                    codes.insert(heading.to_string()),
                    "{PAGE} has two sections for `{heading}`"
                );
            }
        }
    }
    codes
}

#[test]
fn every_error_variant_has_a_code() {
    let found = program_codes();
    assert!(
        found.uncoded.is_empty(),
        "these errors have no #[diagnostic(code(plan::...))] (nor transparent):\n  {}",
        found.uncoded.join("\n  ")
    );
    // A scan that found (almost) nothing would pass everything below.
    assert!(
        found.codes.len() >= 40,
        "only {} codes found in src/: {:?}",
        found.codes.len(),
        found.codes.keys()
    );
    for (code, at) in &found.codes {
        assert!(
            code.starts_with("plan::"),
            "`{code}` ({}) is not a `plan::` code",
            at.join(", ")
        );
    }
}

#[test]
fn every_error_code_has_its_section_and_every_section_its_code() {
    let found = program_codes();
    let documented = documented_codes();
    let missing: Vec<String> = found
        .codes
        .iter()
        .filter(|(code, _)| !documented.contains(*code))
        .map(|(code, at)| format!("{code} ({})", at.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "{PAGE} has no `## CODE` section for:\n  {}",
        missing.join("\n  ")
    );
    let gone: Vec<&String> = documented
        .iter()
        .filter(|code| !found.codes.contains_key(*code))
        .collect();
    assert!(
        gone.is_empty(),
        "{PAGE} documents codes the program no longer has: {gone:?}"
    );
}

#[test]
fn the_scan_reads_codes_transparent_variants_and_uncoded_ones() {
    let source = r#"
        #[derive(Debug, Error, miette::Diagnostic)]
        pub enum E {
            #[error("a")]
            #[diagnostic(code(plan::a), help("fix {x}", x = 1))]
            A,
            #[error(transparent)]
            #[diagnostic(transparent)]
            B(#[from] Other),
            #[error("c")]
            #[diagnostic(help("no code"))]
            C,
        }
        mod inner {
            #[derive(Diagnostic, Debug, Error)]
            #[diagnostic(code(plan::inner::s))]
            #[error("s")]
            pub struct S;
        }
        #[derive(Debug)]
        enum NotADiagnostic { X }
    "#;
    let file = syn::parse_file(source).expect("the sample parses");
    let mut found = Found::default();
    scan_items(&file.items, "sample.rs", &mut found);
    assert_eq!(
        found.codes.keys().collect::<Vec<_>>(),
        ["plan::a", "plan::inner::s"]
    );
    assert_eq!(found.uncoded, ["sample.rs: E::C"]);
}
