//! Inputs that broke the fuzz checks (fuzz/, see fuzz/README.md), replayed
//! under the very checks of its targets: this module includes
//! fuzz/src/checks.rs, so a fixed bug stays fixed without building
//! libFuzzer. The seed corpus is replayed too, so the checks themselves run
//! in every `cargo test`.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/checks.rs"]
mod checks;

/// Runs both targets' checks on every file of `folder`; names every file
/// that fails (each failure's message is printed above it).
fn replay(folder: &str) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", folder.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable input");
            std::panic::catch_unwind(|| {
                checks::check_analysis(&data);
                checks::check_fmt_roundtrip(&data);
                checks::check_erp_config(&data);
            })
            .is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "these inputs fail the fuzz checks: {failed:#?}"
    );
}

#[test]
fn inputs_the_fuzzer_found_pass_its_checks() {
    replay("tests/fixtures/fuzz");
}

#[test]
fn seed_corpus_passes_the_fuzz_checks() {
    replay("fuzz/seeds");
}

/// The checks must be able to fail, or replaying proves nothing.
#[test]
#[should_panic(expected = "splits a character")]
fn a_span_inside_a_character_fails_the_checks() {
    use plan_runner::diagnostic::{Code, Diagnostic};
    use plan_runner::source::{Source, Span};

    let source = Source::new("x.plan", "é");
    checks::check_diagnostic(
        &Diagnostic::new(Code::Syntax, Span::new(1, 2), "x"),
        &source,
    );
}
