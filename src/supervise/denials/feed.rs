//! The process-wide kernel denial feed and the runs registered with it.
//!
//! One [`Feed`] per supervisor process ([`Feed::global`]), shared by all of its
//! runs. Its reader thread owns the multicast socket and the [`Assembler`];
//! each event is attributed under the registry lock:
//!
//! - a 1424 `allocated` record names the pid that created the domain — a run's
//!   child, before `execve` — so the domain id maps to that run, and every 1423
//!   of that domain (from any descendant, however deep) belongs to it;
//! - other records (seccomp 1326 from filters that log) are attributed by pid:
//!   the run's main pid, pids already seen in its events, or cgroup membership
//!   (`/proc/PID/cgroup` against the run's cgroup paths);
//! - records of other processes on the host match no run and are dropped.
//!
//! A run ends with [`Registration::settle`]: a user-space audit record with a
//! fresh token goes through the kernel's audit queue behind every record the
//! run's (now dead) processes emitted; when the reader sees it, everything of
//! the run has been attributed (bounded by [`SETTLE_TIMEOUT`]). A receive
//! overflow (`ENOBUFS`) or a rise of the kernel's lost-record counter is
//! reported to the live runs as a loss, never dropped silently.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::enable::{self, Capture};
use super::event::{Assembler, Event};
use super::netlink::{Control, Multicast};
use super::record;
use super::translate::Hints;
use super::{FeedItem, RUN_END_OP};
use crate::policy::KernelAudit;

/// How long a finished run waits for its last kernel records.
pub const SETTLE_TIMEOUT: Duration = Duration::from_millis(500);

/// Most items [`Registration::next`] returns at once.
const MAX_BATCH: usize = 1024;

/// Receive buffer of the multicast socket.
const RCVBUF: usize = 8 << 20;

/// `SECCOMP_RET_USER_NOTIF`: those calls are reported by the run's listener.
const RET_USER_NOTIF: u32 = 0x7fc0_0000;

/// A run as the reader sees it.
struct Slot {
    run_id: String,
    main_pid: i32,
    cgroups: Vec<PathBuf>,
    pids: HashSet<i32>,
    hints: Arc<Hints>,
    tx: mpsc::UnboundedSender<FeedItem>,
    /// A kernel audit record was attributed to the run.
    audited: Arc<AtomicBool>,
}

#[derive(Default)]
struct Registry {
    runs: HashMap<u64, Slot>,
    domains: HashMap<u64, u64>,
    barriers: HashMap<String, oneshot::Sender<()>>,
    next: u64,
}

impl Registry {
    fn owner(&self, pid: i32) -> Option<u64> {
        if let Some((k, _)) = self
            .runs
            .iter()
            .find(|(_, s)| s.main_pid == pid || s.pids.contains(&pid))
        {
            return Some(*k);
        }
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rels: Vec<&str> = cg
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .filter(|r| r.len() > 1)
            .collect();
        self.runs
            .iter()
            .find(|(_, s)| {
                s.cgroups.iter().any(|p| {
                    let p = p.to_string_lossy();
                    rels.iter().any(|r| p.ends_with(r))
                })
            })
            .map(|(k, _)| *k)
    }

    fn dispatch(&mut self, e: Event) {
        match e {
            Event::Landlock {
                access,
                allocated,
                pid,
                ppid,
                syscall,
            } => {
                let Some(domain) = access.hex("domain") else {
                    return;
                };
                if let Some((d, creator)) = allocated
                    && let Some(k) = self.owner(creator)
                {
                    self.domains.insert(d, k);
                }
                let key = match self.domains.get(&domain) {
                    Some(k) => *k,
                    None => match pid.and_then(|p| self.owner(p)) {
                        Some(k) => k,
                        None => return,
                    },
                };
                let Some(slot) = self.runs.get_mut(&key) else {
                    return;
                };
                slot.pids.extend(pid);
                slot.pids.extend(ppid);
                slot.audited.store(true, Ordering::Relaxed);
                let _ = slot
                    .tx
                    .send(FeedItem::Denial(slot.hints.landlock(&access, pid, syscall)));
            }
            Event::DomainFreed { domain, .. } => {
                self.domains.remove(&domain);
            }
            Event::Seccomp {
                pid,
                syscall,
                arch,
                code,
            } => {
                let action = code & 0xffff_0000;
                if action == RET_USER_NOTIF || action == 0x7fff_0000 {
                    return;
                }
                if let Some(slot) = self.owner(pid).and_then(|k| self.runs.get(&k)) {
                    slot.audited.store(true, Ordering::Relaxed);
                    let _ = slot.tx.send(FeedItem::Denial(
                        slot.hints.seccomp(pid, syscall, arch, None),
                    ));
                }
            }
            Event::Barrier { token } => {
                if let Some(tx) = self.barriers.remove(&token) {
                    let _ = tx.send(());
                }
            }
        }
    }

    fn lost(&self, detail: &str) {
        for s in self.runs.values() {
            let _ = s.tx.send(FeedItem::Lost {
                source: "audit-netlink".into(),
                detail: detail.into(),
            });
        }
    }
}

/// The process-wide denial feed.
pub struct Feed {
    dir: PathBuf,
    registry: Mutex<Registry>,
    control: Mutex<Option<Control>>,
    reader: OnceLock<Result<(), String>>,
}

static GLOBAL: OnceLock<Arc<Feed>> = OnceLock::new();

impl Feed {
    /// The feed of this process (state under [`enable::STATE_DIR`]).
    pub fn global() -> Arc<Feed> {
        GLOBAL
            .get_or_init(|| Arc::new(Feed::new(Path::new(enable::STATE_DIR))))
            .clone()
    }

    /// A feed keeping its enablement state in `dir`.
    pub fn new(dir: &Path) -> Feed {
        Feed {
            dir: dir.to_path_buf(),
            registry: Mutex::default(),
            control: Mutex::new(None),
            reader: OnceLock::new(),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_control<R>(&self, f: impl FnOnce(&mut Control) -> io::Result<R>) -> io::Result<R> {
        let mut c = self.control.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none() {
            *c = Some(Control::open()?);
        }
        f(c.as_mut().expect("opened above"))
    }

    /// Start the reader thread once; its error (no CAP_AUDIT_READ, …) sticks.
    fn reader(self: &Arc<Self>) -> Result<(), String> {
        self.reader
            .get_or_init(|| {
                let mc = Multicast::open(RCVBUF).map_err(|e| {
                    format!("joining the audit multicast group failed: {e} (needs CAP_AUDIT_READ)")
                })?;
                let feed = Arc::downgrade(self);
                std::thread::Builder::new()
                    .name("denial-feed".into())
                    .spawn(move || read_loop(&mc, &feed))
                    .map(drop)
                    .map_err(|e| format!("starting the denial feed thread: {e}"))
            })
            .clone()
    }

    /// Register a run whose child (`main_pid`, in `cgroups`) has its sandbox in
    /// place but has not exec'd yet, with its hold on kernel audit.
    pub fn register(
        self: &Arc<Self>,
        run_id: &str,
        main_pid: i32,
        cgroups: Vec<PathBuf>,
        hints: Hints,
        hold: Hold,
    ) -> Registration {
        let (tx, rx) = mpsc::unbounded_channel();
        let audited = Arc::new(AtomicBool::new(false));
        let mut reg = self.registry();
        reg.next += 1;
        let key = reg.next;
        reg.runs.insert(
            key,
            Slot {
                run_id: run_id.to_string(),
                main_pid,
                cgroups,
                pids: HashSet::new(),
                hints: Arc::new(hints),
                tx: tx.clone(),
                audited: audited.clone(),
            },
        );
        drop(reg);
        Registration {
            feed: self.clone(),
            key,
            tx,
            rx,
            hold,
            audited,
        }
    }

    /// Take kernel audit per `mode` for one run (netlink and a file lock: call
    /// it off the async threads, early, while the sandbox is being prepared).
    /// Dropping the [`Hold`] gives it back.
    pub fn hold(self: &Arc<Self>, mode: KernelAudit) -> Hold {
        let (capture, lost_before) = match mode {
            KernelAudit::Off => (
                Capture::Off("the policy sets denials.kernel_audit: off".into()),
                None,
            ),
            _ => match self.reader() {
                Err(e) => (Capture::Unavailable(e), None),
                Ok(()) => self
                    .with_control(|c| Ok(enable::acquire(&self.dir, mode, c)))
                    .unwrap_or_else(|e| {
                        let why = format!("opening NETLINK_AUDIT failed: {e}");
                        (Capture::Unavailable(why), None)
                    }),
            },
        };
        Hold {
            feed: self.clone(),
            capture,
            lost_before,
        }
    }
}

/// Where a run's hold on kernel audit comes from: taken by the run itself, or
/// started early on a thread of its own (`enforcecore run` starts it as soon as
/// the policy admits the command, so that netlink and the holders' file are
/// done by the time the run-started record is written).
pub enum AuditHold {
    /// [`Feed::hold`] with the policy's `denials.kernel_audit`, during the run.
    Take(KernelAudit),
    /// Already being taken ([`AuditHold::start`]).
    Early(EarlyHold),
}

/// A hold being taken on its own thread. Dropped unused, it waits for the
/// thread and gives the hold back, so kernel audit is never left switched on.
pub struct EarlyHold {
    mode: KernelAudit,
    thread: Option<std::thread::JoinHandle<Hold>>,
}

impl Drop for EarlyHold {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl From<KernelAudit> for AuditHold {
    fn from(mode: KernelAudit) -> AuditHold {
        AuditHold::Take(mode)
    }
}

impl AuditHold {
    /// Start taking the hold on a thread of its own (with `off` there is
    /// nothing to take: no thread).
    pub fn start(mode: KernelAudit) -> std::io::Result<AuditHold> {
        if mode == KernelAudit::Off {
            return Ok(AuditHold::Take(mode));
        }
        let thread = std::thread::Builder::new()
            .name("enforcecore-audit-hold".into())
            .spawn(move || Feed::global().hold(mode))?;
        Ok(AuditHold::Early(EarlyHold {
            mode,
            thread: Some(thread),
        }))
    }

    /// The hold (blocking: netlink, a file lock). A thread that died is
    /// replaced by taking the hold here.
    pub fn wait(self) -> Hold {
        match self {
            AuditHold::Take(mode) => Feed::global().hold(mode),
            AuditHold::Early(mut e) => {
                let mode = e.mode;
                match e.thread.take().map(std::thread::JoinHandle::join) {
                    Some(Ok(hold)) => hold,
                    _ => Feed::global().hold(mode),
                }
            }
        }
    }
}

/// One run's hold on kernel audit ([`Feed::hold`]); released on drop.
pub struct Hold {
    feed: Arc<Feed>,
    capture: Capture,
    lost_before: Option<u32>,
}

impl Hold {
    /// What kernel denial capture is for the run.
    pub fn capture(&self) -> &Capture {
        &self.capture
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.capture.active() {
            let dir = self.feed.dir.clone();
            if let Err(e) = self.feed.with_control(|c| enable::release(&dir, c)) {
                tracing::warn!("restoring kernel audit state failed: {e}");
            }
        }
    }
}

fn read_loop(mc: &Multicast, feed: &std::sync::Weak<Feed>) {
    let mut buf = vec![0u8; 1 << 16];
    let mut asm = Assembler::default();
    loop {
        let r = mc.recv(&mut buf);
        let Some(feed) = feed.upgrade() else { return };
        match r {
            Ok(n) => {
                let mut events = Vec::new();
                for (ty, payload) in record::messages(&buf[..n]) {
                    if let Some(rec) = record::parse(ty, payload) {
                        if rec.ty == record::TRUSTED_APP {
                            // Barrier: everything before it must be attributed first.
                            events.extend(asm.flush());
                        }
                        events.extend(asm.push(rec));
                    }
                }
                let mut reg = feed.registry();
                for e in events {
                    reg.dispatch(e);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                feed.registry().lost(
                    "ENOBUFS: the audit netlink receive buffer overflowed; kernel denial \
                     records were dropped",
                );
            }
            Err(e) => {
                feed.registry()
                    .lost(&format!("reading the audit netlink socket failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One run's place in the feed. Dropping it unregisters the run and gives back
/// its [`Hold`] on kernel audit.
pub struct Registration {
    feed: Arc<Feed>,
    key: u64,
    tx: mpsc::UnboundedSender<FeedItem>,
    rx: mpsc::UnboundedReceiver<FeedItem>,
    hold: Hold,
    audited: Arc<AtomicBool>,
}

impl Registration {
    /// What kernel denial capture is for this run.
    pub fn capture(&self) -> &Capture {
        &self.hold.capture
    }

    /// A sender for other sources of this run's denials (the seccomp listener).
    pub fn sender(&self) -> mpsc::UnboundedSender<FeedItem> {
        self.tx.clone()
    }

    /// The next items: waits for one, then takes every other one already queued
    /// (so that a burst of denials is recorded as one batch).
    pub async fn next(&mut self) -> Vec<FeedItem> {
        let mut out = Vec::new();
        if let Some(first) = self.rx.recv().await {
            out.push(first);
            while out.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(i) => out.push(i),
                    Err(_) => break,
                }
            }
        }
        out
    }

    /// After the run's processes are dead: wait until every kernel record they
    /// emitted has been attributed, and return what has not been taken yet.
    pub async fn settle(&mut self) -> Vec<FeedItem> {
        let mut out = Vec::new();
        if self.hold.capture.active() {
            let token = match crate::supervise::new_run_id() {
                Ok(t) => t,
                Err(_) => format!("{}-{}", std::process::id(), self.key),
            };
            let (tx, rx) = oneshot::channel();
            let run_id = {
                let mut reg = self.feed.registry();
                reg.barriers.insert(token.clone(), tx);
                reg.runs.get(&self.key).map(|s| s.run_id.clone())
            };
            let sent = self.feed.with_control(|c| {
                c.user_message(&format!(
                    "op={RUN_END_OP} run={} token={token} res=success",
                    run_id.unwrap_or_default()
                ))
            });
            let arrived = match sent {
                Ok(()) => tokio::time::timeout(SETTLE_TIMEOUT, rx).await.is_ok(),
                Err(_) => false,
            };
            self.feed.registry().barriers.remove(&token);
            if !arrived {
                out.push(FeedItem::Lost {
                    source: "audit-netlink".into(),
                    detail: format!(
                        "the end-of-run barrier did not come back within {SETTLE_TIMEOUT:?}; \
                         kernel records still in flight were not attributed to this run"
                    ),
                });
            }
            // The kernel's lost-record counter (AUDIT_GET costs a kernel thread):
            // read when the run's processes were audited, i.e. emitted records
            // at a rate where the backlog could overflow.
            let audited = self.audited.load(Ordering::Relaxed);
            if let Some(before) = self.hold.lost_before.filter(|_| audited)
                && let Ok(now) = self.feed.with_control(|c| c.status())
                && now.lost > before
            {
                out.push(FeedItem::Lost {
                    source: "kernel-audit".into(),
                    detail: format!(
                        "the kernel dropped {} audit record(s) during the run (backlog limit {})",
                        now.lost - before,
                        now.backlog_limit
                    ),
                });
            }
        }
        while let Ok(item) = self.rx.try_recv() {
            out.push(item);
        }
        // Losses first would misorder nothing: they are about the run as a whole.
        out
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        {
            let mut reg = self.feed.registry();
            reg.runs.remove(&self.key);
            let key = self.key;
            reg.domains.retain(|_, k| *k != key);
        }
        // `hold` drops after this: the run is unregistered before audit is released.
    }
}
