#![no_main]
//! Fuzz target `policy_load` (written with its module).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
