//! The steps of the child sequence, as reported to the parent with an errno.

/// One step of the child sequence; reported to the parent with the errno.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reset signal dispositions and mask.
    Signals = 1,
    /// `setsid`.
    Session = 2,
    /// `PR_SET_PDEATHSIG` / parent check.
    ParentDeath = 3,
    /// Write to `cgroup.procs`.
    CgroupJoin = 4,
    /// `prlimit64`.
    Rlimits = 5,
    /// `PR_CAPBSET_DROP`.
    CapBounding = 6,
    /// `PR_CAP_AMBIENT_CLEAR_ALL`.
    CapAmbient = 7,
    /// `setgroups(0)`.
    Groups = 8,
    /// `setresgid`.
    Gid = 9,
    /// `setresuid`.
    Uid = 10,
    /// `capset` to empty sets.
    Caps = 11,
    /// Parent-death signal again after the credential change.
    ParentDeathRearm = 12,
    /// `chdir` into the run directory.
    Chdir = 13,
    /// `umask`.
    Umask = 14,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs = 15,
    /// `landlock_restrict_self`.
    Landlock = 16,
    /// `dup2` of the stdio pipes.
    Stdio = 17,
    /// `close_range(CLOSE_RANGE_CLOEXEC)`.
    CloseRange = 18,
    /// `seccomp(SECCOMP_SET_MODE_FILTER)`.
    Seccomp = 19,
    /// Sandbox complete; waiting for the parent's go.
    Ready = 20,
    /// `execve`.
    Exec = 21,
    /// `personality(PER_LINUX)`.
    Personality = 22,
    /// Not a failure: the seccomp listener fd number (in the errno slot), sent
    /// before `Ready` when a filter was installed with a listener.
    SeccompListener = 23,
}

impl Step {
    /// Decode a step id read from the status pipe.
    pub fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        const ALL: [Step; 23] = [
            Signals,
            Session,
            ParentDeath,
            CgroupJoin,
            Rlimits,
            CapBounding,
            CapAmbient,
            Groups,
            Gid,
            Uid,
            Caps,
            ParentDeathRearm,
            Chdir,
            Umask,
            NoNewPrivs,
            Landlock,
            Stdio,
            CloseRange,
            Seccomp,
            Ready,
            Exec,
            Personality,
            SeccompListener,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }

    /// What the step does, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Signals => "resetting signal dispositions",
            Step::Session => "creating a new session (setsid)",
            Step::ParentDeath => "setting the parent-death signal",
            Step::CgroupJoin => "joining the run's cgroup",
            Step::Rlimits => "setting resource limits (prlimit)",
            Step::CapBounding => "dropping the capability bounding set",
            Step::CapAmbient => "clearing ambient capabilities",
            Step::Groups => "clearing supplementary groups (setgroups)",
            Step::Gid => "switching group (setresgid)",
            Step::Uid => "switching user (setresuid)",
            Step::Caps => "emptying capability sets (capset)",
            Step::ParentDeathRearm => "re-arming the parent-death signal",
            Step::Chdir => "entering the run directory",
            Step::Umask => "setting the umask",
            Step::NoNewPrivs => "setting no_new_privs",
            Step::Landlock => "applying the Landlock ruleset (landlock_restrict_self)",
            Step::Stdio => "connecting stdio pipes",
            Step::CloseRange => "closing inherited file descriptors (close_range)",
            Step::Seccomp => "installing the seccomp filter",
            Step::Ready => "waiting for the supervisor",
            Step::Exec => "executing the command (execve)",
            Step::Personality => "resetting the execution domain (personality)",
            Step::SeccompListener => "handing the seccomp listener to the supervisor",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_round_trip() {
        for v in 1..=23 {
            let s = Step::from_u32(v).expect("every id in range decodes");
            assert_eq!(s as u32, v);
            assert!(!s.describe().is_empty());
        }
        assert_eq!(Step::from_u32(0), None);
        assert_eq!(Step::from_u32(24), None);
    }
}
