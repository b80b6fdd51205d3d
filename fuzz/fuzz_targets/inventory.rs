//! Any bytes as an `--inventory` file: see `check_inventory`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plan_runner_fuzz::check_inventory(data);
});
