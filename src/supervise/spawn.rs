//! Starting the child and the handshake around its point of no return.
//!
//! 1. The parent lays out the [`ChildProgram`] (copied from the [`Plan`]) and
//!    calls `clone3`; the child applies the sandbox ([`crate::sys::child`]) in
//!    the supervisor's memory, which [`ChildMemory`] keeps until `execve`.
//! 2. The child reports `Ready` (or the step that failed) on the status pipe.
//! 3. Meanwhile the supervisor runs the `started` hook (the audit trail makes
//!    run-started durable); once both are done it writes the go byte — or
//!    closes the go pipe to abort.
//! 4. The child `execve`s: the CLOEXEC status pipe closes (EOF = success), or it
//!    reports `(Exec, errno)`.
//!
//! This module must never let a child run without a sandbox: every path that does
//! not end in a successful handshake kills and reaps the child.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use tokio::io::AsyncReadExt;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::cgroup::Join;
use crate::sandbox::Plan;
use crate::sys::child::{ChildProgram, Filter, Step};
use crate::sys::process::{self, ChildMemory, ExitStatus};
use crate::sys::seccomp_notify;

/// How the child's setup ended, when it did not reach `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupFailure {
    /// A step failed with this errno.
    Step(Step, i32),
    /// The child died without a report (it was killed, or its parent-death check fired).
    Vanished(Option<ExitStatus>),
}

/// A spawned child, between `clone3` and `execve` or after it.
pub struct Child {
    /// Its pid.
    pub pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    status: pipe::Receiver,
    go: Option<OwnedFd>,
    reaped: Option<ExitStatus>,
    listener: Option<OwnedFd>,
    /// What the child runs on until `execve` (it shares the supervisor's memory).
    memory: Option<ChildMemory>,
}

/// Create the child for `plan`. Must be called on a thread that outlives the run
/// (see [`process::spawn`]) and inside the tokio runtime.
pub fn spawn(plan: &Plan, stdio: &[OwnedFd; 3], join: &Join) -> io::Result<Child> {
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let program = ChildProgram {
        parent_pid: std::process::id() as i32,
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        status: status_w.as_raw_fd(),
        go: go_r.as_raw_fd(),
        cgroup_join: match join {
            Join::Write(fds) => fds.iter().map(|fd| fd.as_raw_fd()).collect(),
            Join::None | Join::Clone(_) => Vec::new(),
        },
        rlimits: plan.rlimits.clone(),
        identity: plan
            .identity
            .switch
            .then_some((plan.identity.uid, plan.identity.gid)),
        bounding_last_cap: plan.identity.drop_bounding.then_some(plan.last_cap),
        cwd: plan.cwd.clone(),
        landlock: (plan.landlock.fd.as_raw_fd(), plan.landlock.flags),
        seccomp: plan
            .seccomp
            .filters
            .iter()
            .map(|f| Filter {
                program: f.program.clone(),
                flags: f.flags,
            })
            .collect(),
        exec_path: plan.exec_path.clone(),
        argv: plan.argv.clone(),
        envp: plan.envp.clone(),
    };
    let into = match join {
        Join::Clone(fd) => Some(fd.as_fd()),
        Join::None | Join::Write(_) => None,
    };
    let spawned = process::spawn(program, status_r.as_fd(), into)?;
    // The child's ends must close here, or EOF would never come.
    drop(status_w);
    drop(go_r);
    let pidfd = crate::sys::reactor::register(spawned.pidfd, tokio::io::Interest::READABLE)?;
    let status = pipe::Receiver::from_owned_fd(status_r)?;
    Ok(Child {
        pid: spawned.pid,
        pidfd,
        status,
        go: Some(go_w),
        reaped: None,
        listener: None,
        memory: Some(spawned.memory),
    })
}

impl Child {
    /// Read one status message; `None` at EOF.
    async fn message(&mut self) -> io::Result<Option<(u32, i32)>> {
        let mut m = [0u8; 8];
        match self.status.read_exact(&mut m).await {
            Ok(_) => Ok(Some((
                u32::from_ne_bytes([m[0], m[1], m[2], m[3]]),
                i32::from_ne_bytes([m[4], m[5], m[6], m[7]]),
            ))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn failure(&mut self, msg: Option<(u32, i32)>) -> SetupFailure {
        match msg.and_then(|(s, e)| Step::from_u32(s).map(|s| (s, e))) {
            Some((step, errno)) => {
                let _ = self.kill_and_wait().await;
                SetupFailure::Step(step, errno)
            }
            None => SetupFailure::Vanished(self.kill_and_wait().await.ok()),
        }
    }

    /// Wait until the sandbox is fully applied. A seccomp listener the child
    /// created is copied into the supervisor here ([`Child::take_listener`]).
    pub async fn ready(&mut self) -> Result<(), SetupFailure> {
        loop {
            match self.message().await {
                Ok(Some((s, 0))) if s == Step::Ready as u32 => return Ok(()),
                Ok(Some((s, fd))) if s == Step::SeccompListener as u32 && fd >= 0 => {
                    match seccomp_notify::pidfd_getfd(self.pidfd.get_ref().as_fd(), fd) {
                        Ok(l) => self.listener = Some(l),
                        Err(e) => {
                            let _ = self.kill_and_wait().await;
                            return Err(SetupFailure::Step(
                                Step::SeccompListener,
                                e.raw_os_error().unwrap_or(libc::EIO),
                            ));
                        }
                    }
                }
                Ok(msg) => return Err(self.failure(msg).await),
                Err(_) => return Err(self.failure(None).await),
            }
        }
    }

    /// The seccomp listener copied out of the child, once.
    pub fn take_listener(&mut self) -> Option<OwnedFd> {
        self.listener.take()
    }

    /// Let the child `execve`, and learn whether it did.
    pub async fn go(&mut self) -> Result<(), SetupFailure> {
        let go = self.go.take().expect("go is sent once");
        if nix::unistd::write(&go, &[1]).is_err() {
            return Err(self.failure(None).await);
        }
        drop(go);
        match self.message().await {
            Ok(None) => {
                // EOF: the child has execve'd; its stack and image are free.
                self.memory = None;
                Ok(())
            }
            Ok(msg) => Err(self.failure(msg).await),
            Err(_) => Err(self.failure(None).await),
        }
    }

    /// Abort before `execve`: the child reads EOF on the go pipe and exits.
    pub async fn abort(&mut self) {
        self.go = None;
        let _ = self.kill_and_wait().await;
    }

    /// Send `signal` to the child (not its descendants).
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        if self.reaped.is_some() {
            return Ok(());
        }
        process::pidfd_kill(self.pidfd.get_ref().as_fd(), signal)
    }

    /// Wait for the child to exit and reap it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.reaped {
            return Ok(s);
        }
        loop {
            let mut guard = self.pidfd.readable().await?;
            if let Some(s) = process::try_wait(self.pidfd.get_ref().as_fd())? {
                self.reaped = Some(s);
                return Ok(s);
            }
            guard.clear_ready();
        }
    }

    async fn kill_and_wait(&mut self) -> io::Result<ExitStatus> {
        self.signal(libc::SIGKILL)?;
        self.wait().await
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Never leave an unsandboxed or unsupervised child behind.
        // SIGKILL is not blockable, so reaping right after it is prompt.
        if self.reaped.is_none() {
            let fd = self.pidfd.get_ref().as_fd();
            if process::pidfd_kill(fd, libc::SIGKILL).is_ok() {
                let _ = process::wait_blocking(fd);
            }
        }
    }
}
