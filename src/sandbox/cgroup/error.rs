//! The one error type of the cgroup layer.
//!
//! Variants are named after the step that failed and carry the path, controller
//! or pid involved; messages are lowercase and say what to do. A limit that was
//! asked for and cannot be written is always an error ([`CgroupError::ControllerMissing`],
//! [`CgroupError::WriteControl`]): the run must fail closed, never start unlimited.

use std::io;
use std::path::PathBuf;

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/self/mountinfo` or `/proc/self/cgroup` could not be read.
    #[error("cannot read {}: {source}; is /proc mounted?", file.display())]
    ReadProc {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A line of `/proc/self/mountinfo` or `/proc/self/cgroup` is malformed.
    #[error("{}:{line}: {reason}", file.display())]
    ParseProc {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No cgroup hierarchy the supervisor belongs to is mounted.
    #[error(
        "no cgroup hierarchy is mounted for this process; mount cgroup2 at /sys/fs/cgroup \
         (or the v1 controllers under /sys/fs/cgroup/<controller>) to enforce resource limits"
    )]
    NoHierarchy,
    /// The supervisor's cgroup lies outside the mounted part of a hierarchy.
    #[error(
        "the supervisor's cgroup {own_path} is outside the part of the hierarchy mounted at {} \
         (mount root {mount_root}); mount the hierarchy's root or run in a cgroup namespace",
        mount.display()
    )]
    OutsideMount {
        /// The mount point.
        mount: PathBuf,
        /// The mounted root of the hierarchy.
        mount_root: String,
        /// The supervisor's cgroup path.
        own_path: String,
    },
    /// `prefer` asked for a version that is not mounted.
    #[error("cgroup {version} is not mounted on this host (layout: {layout})")]
    VersionUnavailable {
        /// `v1` or `v2`.
        version: &'static str,
        /// The detected layout.
        layout: &'static str,
    },
    /// cgroup v2 outside a delegated subtree and not root.
    #[error(
        "cgroup v2: the supervisor's cgroup {} is not delegated to it and it is not root; \
         run it as a systemd service with Delegate=yes or as root",
        own.display()
    )]
    NotDelegated {
        /// The supervisor's cgroup directory.
        own: PathBuf,
    },
    /// The run id cannot name a cgroup directory.
    #[error("run id {run_id:?} cannot name a cgroup: {reason}")]
    InvalidRunId {
        /// The id.
        run_id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A limit value the kernel cannot express.
    #[error("invalid {limit} limit: {reason}")]
    InvalidLimit {
        /// `memory`, `pids` or `cpu`.
        limit: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A limit was asked for but its controller is not available.
    #[error(
        "cgroup {version}: the {controller} controller is not available at {} \
         (available: {available}), so the policy's {controller} limit cannot be enforced; \
         {hint}",
        place.display()
    )]
    ControllerMissing {
        /// The controller (`memory`, `pids`, `cpu`).
        controller: &'static str,
        /// `v1` or `v2`.
        version: &'static str,
        /// Where it was looked for.
        place: PathBuf,
        /// What is available there.
        available: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// A cgroup directory could not be created.
    #[error("cannot create cgroup {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The run's cgroup already exists: never adopt someone else's cgroup.
    #[error(
        "cgroup {} already exists; run ids must be unique (a stale run? remove it with rmdir)",
        path.display()
    )]
    RunExists {
        /// The directory.
        path: PathBuf,
    },
    /// Moving the supervisor into its leaf or enabling a controller failed.
    #[error("cannot set up the delegated cgroup subtree at {}: {reason}", path.display())]
    Delegate {
        /// The cgroup directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A control file could not be written.
    #[error(
        "cannot write {value:?} to {} ({controller} controller): {source}",
        file.display()
    )]
    WriteControl {
        /// The controller the file belongs to.
        controller: &'static str,
        /// The file.
        file: PathBuf,
        /// The value.
        value: String,
        /// The OS error.
        source: io::Error,
    },
    /// A control file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    ReadControl {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A control file held something unexpected.
    #[error("unexpected content in {}: {reason}", file.display())]
    ParseControl {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `cgroup.procs` could not be opened for joining.
    #[error("cannot open {} for joining: {source}", file.display())]
    OpenProcs {
        /// The file.
        file: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A pid could not be moved into the run's cgroup.
    #[error("cannot move pid {pid} into {}: {source}", dir.display())]
    AddPid {
        /// The pid.
        pid: i32,
        /// The cgroup.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A process in the run could not be signalled.
    #[error("cannot kill pid {pid}: {source}")]
    Kill {
        /// The pid.
        pid: i32,
        /// The OS error.
        source: nix::Error,
    },
    /// Processes survived every kill attempt.
    #[error(
        "{remaining} process(es) still in {} after killing the tree; \
         check for processes stuck in uninterruptible sleep (state D)",
        dir.display()
    )]
    KillIncomplete {
        /// The cgroup.
        dir: PathBuf,
        /// How many are left.
        remaining: usize,
    },
    /// A cgroup directory could not be removed.
    #[error("cannot remove cgroup {}: {source}", path.display())]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The pool's helper thread could not be started.
    #[error("cannot start the cgroup pool thread: {source}")]
    SpawnThread {
        /// The OS error.
        source: io::Error,
    },
}
