#![no_main]
//! Fuzz target `redact_stream` (written with its module).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
