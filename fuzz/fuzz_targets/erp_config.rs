//! Any bytes as the ERP server's configuration: see `check_erp_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    plan_runner_fuzz::check_erp_config(data);
});
