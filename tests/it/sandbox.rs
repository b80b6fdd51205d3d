//! The README's main job: the demo plan run with `--sandbox` (a throwaway
//! cluster seeded from the plan's `fixture/`), applied and rehearsed, as
//! it passes and as it fails (`DEMO_FAIL=update`: the stand-in server's
//! update fails after changing data), never touching the checkout.

use std::path::PathBuf;
use std::process::Output;

use crate::support;
use crate::support::apply::read_tree;

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans/demo/demo.plan")
}

fn sandbox(command: &str, fail: &str) -> (Output, String) {
    let state = support::apply::state_dir();
    let out = support::plan_process()
        .args([command, "--sandbox"])
        .arg(demo())
        .arg("--state-dir")
        .arg(state.path())
        .env("DEMO_FAIL", fail)
        .output()
        .expect("plan runs");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, text)
}

#[test]
fn the_demo_applies_and_rolls_back_in_its_sandbox_and_leaves_the_checkout_as_it_was() {
    let fixture = demo().with_file_name("fixture");
    let before = read_tree(&fixture);
    let (out, text) = sandbox("apply", "");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(": succeeded"), "{text}");
    let (out, text) = sandbox("apply", "update");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("fingerprints equal"), "{text}");
    assert_eq!(read_tree(&fixture), before, "the checkout changed");
}

#[test]
fn the_demo_is_rehearsed_in_its_sandbox() {
    let (out, text) = sandbox("rehearse", "");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(": passed in"), "{text}");
    assert!(text.contains("window: "), "{text}");
    assert!(
        text.contains("skipped (they would stop or start the server): old_server_down (stop), new_server_up (start)"),
        "{text}"
    );
    let (out, text) = sandbox("rehearse", "update");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(": failed in"), "{text}");
}
