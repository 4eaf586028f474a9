//! `cargo xtask bench cgroup`: a run's cgroup on the critical path — inline
//! `create_run` + `remove` and the pre-created pool — against a direct
//! fork+exec of `/bin/true`, interleaved (`benches/cgroup.rs`, root only).

use anyhow::Result;

/// Run the benchmark; extra arguments go to the bench binary.
pub fn main(args: &[String]) -> Result<()> {
    crate::run(
        crate::cargo()
            .args(["bench", "--bench", "cgroup", "--"])
            .args(args),
    )
}
