//! Plans that parse cleanly through `fmt`: see `check_fmt_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plan_runner_fuzz::check_fmt_roundtrip(data);
});
