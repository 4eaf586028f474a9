//! Judging a run from the guest's test output (the second serial port).
//!
//! Two independent witnesses must agree before a run passes: the guest script's
//! own last line (`ENFORCECORE-VM-TEST: PASS`, or `: FAIL step=… exit=…` from its
//! exit trap), and systemd's account of how the service ended, printed by the
//! unit's `ExecStopPost` (`ENFORCECORE-VM-TEST service-result=… exit-status=…`).
//! A script killed by a timeout or a signal prints no verdict, and a script that
//! printed PASS but then exited non-zero is caught by the second line. This
//! module only reads lines; it never decides when the guest has run too long.

/// Prefix of every line the host acts on.
pub const MARKER: &str = "ENFORCECORE-VM-TEST";

/// What the output has said so far.
#[derive(Debug, Default)]
pub struct Verdict {
    script: Option<Script>,
    service: Option<Service>,
    step: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Script {
    Pass,
    /// The rest of the marker line: `step=NAME exit=N`.
    Fail(String),
}

#[derive(Debug, PartialEq)]
struct Service {
    result: String,
    exit_code: String,
    exit_status: String,
}

impl Verdict {
    /// Take one line of output (without its line ending).
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end();
        if let Some(step) = line.strip_prefix("=== step ") {
            self.step = step.split_whitespace().next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix(MARKER) {
            if let Some(result) = rest.strip_prefix(": ") {
                self.script = Some(match result.strip_prefix("FAIL") {
                    Some(why) => Script::Fail(why.trim().to_owned()),
                    None if result == "PASS" => Script::Pass,
                    None => Script::Fail(format!("unreadable verdict '{result}'")),
                });
            } else if rest.starts_with(" service-result=") {
                let field = |name: &str| {
                    rest.split_whitespace()
                        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                        .unwrap_or("unknown")
                        .to_owned()
                };
                self.service = Some(Service {
                    result: field("service-result"),
                    exit_code: field("exit-code"),
                    exit_status: field("exit-status"),
                });
            }
        }
    }

    /// The test service has ended (systemd reported it); nothing more will come.
    pub fn finished(&self) -> bool {
        self.service.is_some()
    }

    /// The last step the script announced.
    pub fn step(&self) -> &str {
        self.step.as_deref().unwrap_or("(before the first step)")
    }

    /// Pass, or why not. Call once the service has finished.
    pub fn judge(&self) -> Result<(), String> {
        let Some(service) = &self.service else {
            return Err(format!(
                "the test service never reported its end (last step: {})",
                self.step()
            ));
        };
        let service_ok = service.result == "success" && service.exit_status == "0";
        match (&self.script, service_ok) {
            (Some(Script::Pass), true) => Ok(()),
            (Some(Script::Fail(why)), _) => Err(format!("the guest test failed: {why}")),
            (Some(Script::Pass), false) => Err(format!(
                "the script printed PASS but the service ended with result={} exit-code={} \
                 exit-status={}",
                service.result, service.exit_code, service.exit_status
            )),
            (None, _) => Err(format!(
                "the test service ended without a verdict (result={} exit-code={} \
                 exit-status={}; last step: {})",
                service.result,
                service.exit_code,
                service.exit_status,
                self.step()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(lines: &str) -> Verdict {
        let mut v = Verdict::default();
        lines.lines().for_each(|l| v.feed(l));
        v
    }

    const SERVICE_OK: &str =
        "ENFORCECORE-VM-TEST service-result=success exit-code=exited exit-status=0";

    #[test]
    fn pass_needs_both_witnesses() {
        let v = verdict(&format!(
            "=== step version (t=3s)\nok\nENFORCECORE-VM-TEST: PASS\r\n{SERVICE_OK}\n"
        ));
        assert!(v.finished());
        assert_eq!(v.judge(), Ok(()));

        let only_script = verdict("ENFORCECORE-VM-TEST: PASS\n");
        assert!(!only_script.finished());
        assert!(only_script.judge().is_err());
    }

    #[test]
    fn script_failure_names_the_step() {
        let v = verdict(
            "=== step landlock (t=9s)\nENFORCECORE-VM-TEST: FAIL step=landlock exit=1\n\
             ENFORCECORE-VM-TEST service-result=exit-code exit-code=exited exit-status=1\n",
        );
        let err = v.judge().unwrap_err();
        assert!(err.contains("step=landlock exit=1"), "{err}");
    }

    #[test]
    fn killed_script_without_verdict_fails() {
        let v = verdict(
            "=== step run_echo (t=9s)\n\
             ENFORCECORE-VM-TEST service-result=timeout exit-code=killed exit-status=TERM\n",
        );
        let err = v.judge().unwrap_err();
        assert!(
            err.contains("result=timeout") && err.contains("run_echo"),
            "{err}"
        );
    }

    #[test]
    fn pass_then_bad_exit_fails() {
        let v = verdict(
            "ENFORCECORE-VM-TEST: PASS\n\
             ENFORCECORE-VM-TEST service-result=exit-code exit-code=exited exit-status=3\n",
        );
        assert!(v.judge().unwrap_err().contains("exit-status=3"));
    }

    #[test]
    fn marker_must_start_the_line_and_be_exact() {
        let v = verdict(&format!(
            "echo ENFORCECORE-VM-TEST: PASS\nENFORCECORE-VM-TEST: PASSED\n{SERVICE_OK}\n"
        ));
        assert!(v.judge().unwrap_err().contains("unreadable verdict"));
    }

    #[test]
    fn nothing_heard_fails() {
        let v = Verdict::default();
        assert!(!v.finished());
        assert!(v.judge().unwrap_err().contains("before the first step"));
    }
}
