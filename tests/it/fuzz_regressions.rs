//! Inputs that broke the fuzz checks (fuzz/, see fuzz/README.md), replayed
//! under the very checks of its targets: this module includes
//! fuzz/src/checks.rs, so a fixed bug stays fixed without building
//! libFuzzer. The seed corpus is replayed too, so the checks themselves run
//! in every `cargo test`.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/checks.rs"]
mod checks;

/// Runs the plan targets' checks on every file of `folder`; names every
/// file that fails (each failure's message is printed above it).
fn replay(folder: &str) {
    replay_each(folder, |data| {
        checks::check_analysis(data);
        checks::check_fmt_roundtrip(data);
        checks::check_erp_config(data);
    });
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

/// Runs `check` on every file of `folder` (relative to the crate); names
/// every file that fails.
fn replay_each(folder: &str, check: fn(&[u8])) {
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
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "these inputs fail the fuzz checks: {failed:#?}"
    );
}

#[test]
fn inventory_seeds_pass_the_fuzz_checks() {
    replay_each("fuzz/seeds-inventory", checks::check_inventory);
}

#[test]
fn journal_seeds_pass_the_fuzz_checks() {
    replay_each("fuzz/seeds-journal", checks::check_journal);
}

/// The journal target reaches the records' JSON only if its checksums are
/// the runner's: a real journal reads back whole, and so do its lines
/// without their checksums once the target seals them.
#[test]
fn the_journal_target_seals_lines_as_the_runner_does() {
    use plan_runner::exec::journal;
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds-journal");
    let real = std::fs::read(folder.join("rolled-back.journal")).expect("a seed");
    let read = journal::parse(&real);
    assert!(read.entries.len() > 10 && read.damaged.is_empty() && !read.torn_tail);
    let unsealed = std::fs::read(folder.join("rolled-back-unsealed.jsonl")).expect("a seed");
    let sealed = journal::parse(&checks::seal(&unsealed));
    assert_eq!(sealed.entries, read.entries);
}
