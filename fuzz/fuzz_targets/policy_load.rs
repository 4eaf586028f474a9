#![no_main]
//! Fuzz target `policy_load`: arbitrary bytes through the whole policy loader.
//!
//! The loader must return `Ok` or a `PolicyError` for every input — never
//! panic, hang or allocate without bound — and every error must name the file.
//! `extends` cannot be followed from bytes, so the chain logic is exercised by
//! the integration tests instead.

use std::path::Path;

use enforcecore::policy::{LoadOptions, load_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.yaml");
    match load_bytes(name, data, &LoadOptions::default()) {
        Ok(p) => {
            // A loaded policy is internally consistent.
            assert_eq!(p.hash.len(), 64);
            let _ = enforcecore::policy::explain(&p, None);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("fuzz.yaml"),
                "error without the file name: {text}"
            );
            assert!(text.contains("\nhint: "), "error without a hint: {text}");
        }
    }
});
