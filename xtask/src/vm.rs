//! `cargo xtask vm-test`: the product under real systemd (PID 1) and a full
//! cgroup v2 hierarchy, in a Debian trixie guest booted with qemu.
//!
//! Stages, one module each:
//! 1. [`guest`]: build the guest image with debootstrap (trixie, systemd 257,
//!    the trixie-backports kernel), cached under `target/vm/guest-<hash>/`, keyed
//!    by the build script, the package list and the guest-side units.
//! 2. [`qemu`]: `qemu-system-x86_64` unpacked from Debian packages into
//!    `target/vm/qemu-<hash>/` (never installed: that would replace host packages).
//! 3. [`payload`]: the release `enforcecore`, `policies/`, `systemd/` and the
//!    guest test script on a small ext4 disk.
//! 4. [`boot`]: boot (KVM when it can run this kernel, else TCG), stream the
//!    test's output, enforce the timeout, and judge with [`verdict`].
//!
//! This module owns everything under `target/vm/` and nothing else. It must
//! never change the host beyond that directory and apt's download cache, nor
//! leave mounts, loop devices or processes behind: the guest build runs in its
//! own mount and PID namespace, disk images are written by `mkfs.ext4 -d` (no
//! mounting), the root disk is attached copy-on-write, and every child is tied
//! to this process's lifetime (`setpriv --pdeathsig KILL`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod boot;
mod guest;
mod payload;
mod qemu;
mod verdict;
mod watch;

const USAGE: &str = "usage: cargo xtask vm-test [OPTIONS]

Builds (or reuses) a Debian trixie guest, boots it under qemu with systemd as
PID 1 and cgroup v2, runs xtask/vm/guest-test.sh there as a systemd service,
and exits non-zero unless it passes. Needs root (debootstrap, chroot).

options:
  --shell          console on this terminal with a root shell; the test runs,
                   then the guest stays up (quit: `poweroff`, or Ctrl-a x)
  --rebuild        rebuild the guest image even if a cached one matches
  --accel MODE     auto (KVM if it boots this kernel, else TCG), kvm or tcg
                   [env ENFORCECORE_VM_ACCEL; default auto]
  --timeout SECS   limit for boot + test [env ENFORCECORE_VM_TIMEOUT; default 900]
  --mirror URL     Debian archive [env ENFORCECORE_VM_MIRROR; default the one
                   the host's apt sources use]

files: target/vm/ (override with ENFORCECORE_VM_DIR): guest-<hash>/ the cached
guest, qemu-<hash>/ the unpacked emulator, run/ the last run's disks and logs.";

/// Guest memory; the daemon tests run many tools at once.
const MEMORY_MIB: u32 = 2048;

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    shell: bool,
    rebuild: bool,
    accel: boot::Accel,
    timeout: Duration,
    /// None: the host's own Debian archive.
    mirror: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut opts = Options {
            shell: false,
            rebuild: false,
            accel: env("ENFORCECORE_VM_ACCEL")
                .as_deref()
                .unwrap_or("auto")
                .parse()?,
            timeout: Duration::from_secs(parse_secs(
                env("ENFORCECORE_VM_TIMEOUT").as_deref().unwrap_or("900"),
            )?),
            mirror: env("ENFORCECORE_VM_MIRROR"),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || {
                it.next()
                    .with_context(|| format!("{arg} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--shell" => opts.shell = true,
                "--rebuild" => opts.rebuild = true,
                "--accel" => opts.accel = value()?.parse()?,
                "--timeout" => opts.timeout = Duration::from_secs(parse_secs(value()?)?),
                "--mirror" => opts.mirror = Some(value()?.clone()),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown vm-test option '{other}'\n\n{USAGE}"),
            }
        }
        Ok(opts)
    }
}

fn parse_secs(s: &str) -> Result<u64> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("timeout must be a positive number of seconds, not '{s}'"),
    }
}

/// Where things are.
struct Paths {
    /// The workspace root.
    root: PathBuf,
    /// `xtask/vm/`: the guest-side sources.
    sources: PathBuf,
    /// Cargo's target directory.
    target: PathBuf,
    /// `target/vm/` or `$ENFORCECORE_VM_DIR`.
    vm: PathBuf,
}

impl Paths {
    fn discover() -> Result<Paths> {
        let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = xtask
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let vm = match std::env::var_os("ENFORCECORE_VM_DIR") {
            Some(dir) => root.join(dir),
            None => target.join("vm"),
        };
        Ok(Paths {
            sources: xtask.join("vm"),
            root,
            target,
            vm,
        })
    }
}

/// Build the guest, boot it, run the test.
pub fn main(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let started = Instant::now();
    require_root()?;
    let paths = Paths::discover()?;
    std::fs::create_dir_all(&paths.vm)
        .with_context(|| format!("cannot create {}", paths.vm.display()))?;
    let _lock = lock(&paths.vm)?;

    let t = Instant::now();
    let emulator = qemu::ensure(&paths.sources, &paths.vm)?;
    let qemu_time = t.elapsed();

    let t = Instant::now();
    let mirror = match opts.mirror {
        Some(m) => m,
        None => guest::host_mirror()?,
    };
    let (image, built) = guest::ensure(&paths.sources, &paths.vm, &mirror, opts.rebuild)?;
    let guest_time = t.elapsed();

    let t = Instant::now();
    crate::run(crate::cargo().current_dir(&paths.root).args([
        "build",
        "--release",
        "--package",
        "enforcecore",
        "--bin",
        "enforcecore",
    ]))?;
    let binary = paths.target.join("release/enforcecore");
    let version = crate_version(&paths.root)?;
    let run_dir = paths.vm.join("run");
    let disk = payload::build(&paths, &run_dir, &binary, &version)?;
    let payload_time = t.elapsed();

    let cmdline = kernel_cmdline(&paths.sources, opts.shell)?;
    let boot = boot::Boot {
        qemu: &emulator,
        guest: &image,
        payload: &disk,
        run_dir: &run_dir,
        cmdline: &cmdline,
        accel: opts.accel,
        memory_mib: MEMORY_MIB,
        timeout: opts.timeout,
        shell: opts.shell,
    };
    let mut outcome = boot::run(&boot)?;
    if outcome.died_booting() {
        // Software emulation occasionally faults while the guest kernel boots;
        // the root disk is copy-on-write, so a second boot starts clean.
        eprintln!("xtask: the guest died before the test started; booting it once more");
        outcome = boot::run(&boot)?;
    }

    eprintln!();
    eprintln!("vm-test timings:");
    eprintln!("  qemu ready       {:>6.1} s", qemu_time.as_secs_f64());
    eprintln!(
        "  guest image      {:>6.1} s ({})",
        guest_time.as_secs_f64(),
        if built { "built" } else { "cached" }
    );
    eprintln!("  binary + payload {:>6.1} s", payload_time.as_secs_f64());
    outcome.print_timings();
    eprintln!(
        "  total            {:>6.1} s",
        started.elapsed().as_secs_f64()
    );
    outcome.into_result()
}

/// debootstrap and chroot need root; fail before doing anything else.
fn require_root() -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    if euid != "0" {
        bail!(
            "vm-test must run as root (debootstrap and chroot build the guest); try `sudo -E cargo xtask vm-test`"
        );
    }
    Ok(())
}

/// One vm-test at a time per directory: they share the cache and the run dir.
fn lock(vm_dir: &Path) -> Result<File> {
    let path = vm_dir.join("lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!("xtask: another vm-test holds {}; waiting", path.display());
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(file)
}

/// What `enforcecore --version` prints: "enforcecore X.Y.Z".
fn crate_version(root: &Path) -> Result<String> {
    let out = crate::cargo()
        .current_dir(root)
        .args(["pkgid", "--package", "enforcecore"])
        .output()
        .context("cannot run cargo pkgid")?;
    if !out.status.success() {
        bail!(
            "cargo pkgid failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // path+file:///work/repo#enforcecore@0.1.0, or path+file:///…/enforcecore#0.1.0
    let id = String::from_utf8(out.stdout)?;
    let version = id
        .trim()
        .rsplit(['@', '#'])
        .next()
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .with_context(|| format!("cannot read a version from cargo pkgid '{}'", id.trim()))?;
    Ok(format!("enforcecore {version}"))
}

/// `xtask/vm/cmdline` (comments and line breaks dropped) plus the mode's switches.
fn kernel_cmdline(sources: &Path, shell: bool) -> Result<String> {
    let path = sources.join("cmdline");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut words: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect();
    if shell {
        // The test unit's `finish` leaves the guest up; the autologin getty runs.
        words.push("enforcecore.vmtest=keep");
    } else {
        // Nobody types on the console of a test run.
        words.push("systemd.mask=serial-getty@ttyS0.service");
    }
    Ok(words.join(" "))
}

/// A command whose children die with this process: qemu or debootstrap must not
/// outlive a killed `cargo xtask`.
fn tied(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}
