//! Any bytes as a run's journal: see `check_journal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plan_runner_fuzz::check_journal(data);
});
