//! The exit-code contract of `enforcecore run` and `enforcecore call` (DESIGN §7).
//!
//! Operators and tests depend on these numbers; they never change meaning.
//! `policy check` and `audit verify` use their own 0/1 convention.

use std::process::ExitCode;

/// Wall-clock timeout: the tool's process tree was killed.
pub const TIMEOUT: u8 = 124;
/// EnforceCore itself failed (bad policy, a sandbox layer could not be applied,
/// internal error). The tool did not run.
pub const SUPERVISOR_FAILED: u8 = 125;
/// The policy refused the request (tool, argument, caller, rate limit). The tool did not run.
pub const REFUSED: u8 = 126;
/// The command does not exist (or is not executable).
pub const NOT_FOUND: u8 = 127;

/// Exit status of a tool as the CLI reports it.
///
/// The tool's own code; `128 + N` when it was killed by signal N.
pub fn from_wait(code: Option<i32>, signal: Option<i32>) -> u8 {
    match (code, signal) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(s)) => 128u8.wrapping_add((s & 0x7f) as u8),
        (None, None) => SUPERVISOR_FAILED,
    }
}

/// Convenience for `main`.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_maps_to_128_plus_n() {
        assert_eq!(from_wait(None, Some(9)), 137);
        assert_eq!(from_wait(Some(3), None), 3);
        assert_eq!(from_wait(Some(256 + 7), None), 7);
        assert_eq!(from_wait(None, None), SUPERVISOR_FAILED);
    }
}
