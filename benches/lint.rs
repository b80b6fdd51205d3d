//! `plan lint` speed: one generated 5,000-step plan (read from memory,
//! parse included), and a folder of 200 plans of 50 steps (read from disk,
//! as `plan lint plans/` does). Figures and commands: docs/performance.md.
//!
//! Each benchmark runs twice: in wall-clock time, and in the CPU time of
//! the benchmark's thread (names ending in "(CPU)"), which on a shared
//! machine counts the work and not the wait for a free core.

#[path = "support/cpu.rs"]
mod cpu_time;

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;

use cpu_time::CpuTime;
use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use plan_runner::analysis::{analyse, analyse_path};
use plan_runner::commands::plan_files;
use plan_runner::lint::lint;
use plan_runner::resolve::Context;
use plan_runner::source::Source;

/// A plan of `steps` steps that lints clean: a stop and a backup, then a
/// mix of every kind, each step after the one before it and every tenth
/// also after a step further up (so paths join, as in real plans).
fn generated_plan(steps: usize) -> String {
    let mut text = String::from(
        "plan \"generated\" {\n  from = \"5.0.0\"\n  to   = \"6.0.0\"\n\n  update_command = \"${new_server} -d ${db} --update=${modules} --stop-after-init\"\n}\n\nvar new_server = env(\"NEW_SERVER\", \"/opt/openerp-6.0/bin/openerp-server\")\nvar tools      = \"/opt/migrate\"\n\nstop old_down {\n  run = \"systemctl stop openerp-5.0\"\n}\n\nbackup before {\n  after = old_down\n  paths = [\"/var/lib/openerp/filestore/${db}\"]\n}\n",
    );
    let mut previous = "before".to_string();
    for i in 0..steps.saturating_sub(2) {
        let name = format!("step_{i}");
        let after = if i % 10 == 9 {
            format!("[{previous}, step_{}]", i - 7)
        } else {
            previous.clone()
        };
        let body = match i % 4 {
            0 => format!(
                "script {name} {{\n  after   = {after}\n  run     = \"python3 ${{tools}}/fix_{i}.py -d ${{db}} --batch 500\"\n  timeout = \"15m\"\n}}\n"
            ),
            1 => format!(
                "sql {name} {{\n  after = {after}\n  sql   = \"update res_partner set ref = 'p{i}' where id = {i}\"\n}}\n"
            ),
            2 => format!(
                "update {name} {{\n  after   = {after}\n  modules = [\"sale\", \"stock\"]\n  timeout = \"2h\"\n}}\n"
            ),
            _ => format!(
                "check {name} {{\n  after  = {after}\n  sql    = \"select count(*) from ir_module_module where state like 'to %'\"\n  expect = \"0\"\n}}\n"
            ),
        };
        let _ = write!(text, "\n{body}");
        previous = name;
    }
    text.push_str(
        "\non_failure {\n  start old_up {\n    run = \"systemctl start openerp-5.0\"\n  }\n}\n",
    );
    text
}

fn lint_text(text: &str) -> usize {
    let analysis = analyse(Source::new("generated.plan", text), &Context::default());
    lint(&analysis).diagnostics.len()
}

fn lint_folder(paths: &[PathBuf]) -> usize {
    let files = plan_files(paths).unwrap_or_default();
    files
        .iter()
        .filter_map(|f| analyse_path(f, &Context::default()).ok())
        .map(|a| lint(&a).diagnostics.len())
        .sum()
}

fn wall(c: &mut Criterion) {
    bench(c, "");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    bench(c, " (CPU)");
}

fn bench<M: Measurement + 'static>(c: &mut Criterion<M>, suffix: &str) {
    let big = generated_plan(5_000);
    assert_eq!(lint_text(&big), 0, "the generated plan lints clean");
    // The whole of `plan lint` on one file, then its two halves: the
    // stages before lint (parse, resolve, graph), and the rules alone.
    c.bench_function(&format!("lint 5,000-step plan{suffix}"), |b| {
        b.iter(|| lint_text(black_box(&big)))
    });
    c.bench_function(
        &format!("analyse 5,000-step plan (parse, resolve, graph){suffix}"),
        |b| {
            b.iter(|| {
                analyse(
                    Source::new("generated.plan", black_box(big.as_str())),
                    &Context::default(),
                )
                .diagnostics
                .len()
            })
        },
    );
    let analysis = analyse(
        Source::new("generated.plan", big.as_str()),
        &Context::default(),
    );
    c.bench_function(
        &format!("lint rules on an analysed 5,000-step plan{suffix}"),
        |b| b.iter(|| lint(black_box(&analysis)).diagnostics.len()),
    );

    let dir = tempfile::tempdir().expect("a temporary folder");
    for i in 0..200 {
        std::fs::write(
            dir.path().join(format!("plan_{i:03}.plan")),
            generated_plan(50),
        )
        .expect("write a plan");
    }
    let paths = vec![dir.path().to_path_buf()];
    assert_eq!(lint_folder(&paths), 0);
    c.bench_function(
        &format!("lint folder of 200 plans x 50 steps{suffix}"),
        |b| b.iter(|| lint_folder(black_box(&paths))),
    );
}

criterion_group!(wall_clock, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime);
    targets = cpu
}
criterion_main!(wall_clock, cpu_time);
