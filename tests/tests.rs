//! Integration tests: the real `enforcecore` binary on the real kernel.
//!
//! One test binary, one module per area. Tests that need root or a kernel
//! feature probe for it through [`util::require`]: missing features skip loudly,
//! or fail when `ENFORCECORE_TEST_REQUIRE` lists them (CI sets it).

mod util;

mod audit;
mod cgroup;
mod daemon;
mod denials;
mod policy;
mod redact;
mod run;
