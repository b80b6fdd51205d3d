//! Any bytes through the whole analysis: see `check_analysis`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plan_runner_fuzz::check_analysis(data);
});
