//! Booting the guest and following the test run.
//!
//! The guest has two serial ports: ttyS0 is the console (kernel and systemd,
//! saved to `run/console.log`), ttyS1 carries the test's output
//! (`run/test.log`), which is streamed here line by line and judged by
//! [`Verdict`]. A test run ends when the guest powers off after the test, or
//! fails on the time limit, on an early qemu exit, or when the guest does not
//! power off after the test. In `--shell` mode the console (and qemu's
//! monitor) are on this terminal instead, and the run ends when the user quits.
//! The root disk is attached with `snapshot=on`: the cached image is never
//! written, and qemu's temporary overlay is unlinked as soon as it is created.
//! This module must never leave qemu running.
//!
//! Acceleration: `/dev/kvm` may exist without being able to run a stock kernel
//! (on some hosts it only runs specially patched guests; qemu then aborts or
//! the guest stops before printing anything). In `auto` mode KVM is tried
//! first and abandoned for TCG (software emulation) unless the kernel prints
//! its banner within [`KVM_PROBE`].

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::guest::Image;
use super::qemu::Qemu;
use super::verdict::Verdict;
use super::watch::{Logs, Tail};

/// How long a KVM boot may take to show the kernel banner before `auto` gives up on it.
const KVM_PROBE: Duration = Duration::from_secs(20);
/// How long the guest may take to power off once the test service has ended.
const POWEROFF_GRACE: Duration = Duration::from_secs(120);
/// How often the output files are polled.
const POLL: Duration = Duration::from_millis(100);

/// Which accelerator to boot with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Accel {
    /// KVM if it can boot the guest kernel, otherwise TCG.
    Auto,
    /// Hardware virtualisation only.
    Kvm,
    /// Software emulation only.
    Tcg,
}

impl FromStr for Accel {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Accel> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => bail!("accelerator must be auto, kvm or tcg, not '{s}'"),
        }
    }
}

/// Everything one boot needs.
pub struct Boot<'a> {
    /// The emulator.
    pub qemu: &'a Qemu,
    /// Kernel, initramfs, root image.
    pub guest: &'a Image,
    /// The payload disk image.
    pub payload: &'a Path,
    /// Where logs go (`console.log`, `test.log`, `qemu.log`).
    pub run_dir: &'a Path,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Accelerator choice.
    pub accel: Accel,
    /// Guest memory.
    pub memory_mib: u32,
    /// Limit for boot + test (not in shell mode).
    pub timeout: Duration,
    /// Console on this terminal; the run ends when the user quits.
    pub shell: bool,
}

/// How a run went.
#[derive(Debug)]
pub struct Outcome {
    accel: &'static str,
    /// qemu start to the test's first line.
    boot: Option<Duration>,
    /// First line to the service's end.
    test: Option<Duration>,
    /// Service end to qemu's exit.
    poweroff: Option<Duration>,
    result: Result<(), String>,
    shell: bool,
}

impl Outcome {
    /// The guest died before the test printed anything: a boot failure (e.g.
    /// an emulation fault under TCG), not a verdict on EnforceCore.
    pub fn died_booting(&self) -> bool {
        self.result.is_err() && self.boot.is_none() && !self.shell
    }

    /// Print the phase timings known.
    pub fn print_timings(&self) {
        let show = |name: &str, d: Option<Duration>| {
            if let Some(d) = d {
                eprintln!("  {name:<16} {:>6.1} s", d.as_secs_f64());
            }
        };
        eprintln!("  accelerator      {}", self.accel);
        show("boot to test", self.boot);
        show("test", self.test);
        if !self.shell {
            show("poweroff", self.poweroff);
        }
    }

    /// PASS as `Ok`, FAIL as an error saying why.
    pub fn into_result(self) -> Result<()> {
        let mode = if self.shell { " (shell session)" } else { "" };
        match self.result {
            Ok(()) => {
                eprintln!("vm-test: PASS{mode}");
                Ok(())
            }
            Err(why) => bail!("vm-test: FAIL{mode}: {why}"),
        }
    }
}

/// The result of one boot attempt.
enum Attempt {
    /// The kernel never came up under this accelerator (KVM probe).
    NoKernel(String),
    /// The boot ran its course.
    Ran(Outcome),
}

/// Boot the guest, run the test, judge it.
pub fn run(boot: &Boot) -> Result<Outcome> {
    std::fs::create_dir_all(boot.run_dir)
        .with_context(|| format!("cannot create {}", boot.run_dir.display()))?;
    let accels: &[&'static str] = match boot.accel {
        Accel::Auto if kvm_usable() => &["kvm", "tcg"],
        Accel::Auto | Accel::Tcg => &["tcg"],
        Accel::Kvm => &["kvm"],
    };
    for (i, &accel) in accels.iter().enumerate() {
        let probe = i + 1 < accels.len();
        match attempt(boot, accel, probe)? {
            Attempt::Ran(outcome) => return Ok(outcome),
            Attempt::NoKernel(why) => {
                eprintln!("xtask: KVM cannot boot this kernel here ({why}); using TCG");
            }
        }
    }
    bail!("no accelerator could boot the guest")
}

/// `/dev/kvm` opens for reading and writing.
fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn attempt(boot: &Boot, accel: &'static str, probe: bool) -> Result<Attempt> {
    let logs = Logs::fresh(boot.run_dir);
    let mut cmd = boot.qemu.command();
    cmd.args(["-machine", "q35,sata=off,smbus=off", "-accel", accel])
        .args(["-cpu", if accel == "kvm" { "host" } else { "max" }])
        .args(["-smp", "2", "-m", &boot.memory_mib.to_string()])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-no-reboot")
        .arg("-kernel")
        .arg(&boot.guest.kernel)
        .arg("-initrd")
        .arg(&boot.guest.initrd)
        .args(["-append", boot.cmdline])
        .arg("-drive")
        .arg(drive(&boot.guest.rootfs, "format=raw,snapshot=on"))
        .arg("-drive")
        .arg(drive(boot.payload, "format=raw,readonly=on"))
        .args(["-device", "virtio-rng-pci"]);
    if boot.shell {
        // Console and monitor share this terminal (Ctrl-a c switches); the
        // console is also logged. The test's port stays a file: on the shared
        // terminal it would take the keyboard's focus and never read it.
        cmd.arg("-chardev")
            .arg(format!(
                "stdio,id=term,mux=on,signal=off,logfile={}",
                logs.console.display()
            ))
            .args([
                "-serial",
                "chardev:term",
                "-mon",
                "chardev=term,mode=readline",
            ]);
    } else {
        cmd.arg("-serial")
            .arg(format!("file:{}", logs.console.display()))
            .args(["-monitor", "none"])
            .stdin(Stdio::null());
    }
    cmd.arg("-serial")
        .arg(format!("file:{}", logs.test.display()));
    let qemu_log = std::fs::File::create(&logs.qemu)
        .with_context(|| format!("cannot create {}", logs.qemu.display()))?;
    cmd.stderr(qemu_log.try_clone()?);
    if !boot.shell {
        cmd.stdout(qemu_log);
    }

    eprintln!(
        "xtask: booting the guest ({accel}); logs in {}",
        boot.run_dir.display()
    );
    if boot.shell {
        eprintln!("xtask: shell mode: Ctrl-a x quits, Ctrl-a c toggles the qemu monitor");
    }
    // qemu makes the terminal raw and restores what it found, which is wrong
    // after a KVM attempt that aborted: put back what this process found.
    let terminal = boot.shell.then(saved_terminal).flatten();
    let started = Instant::now();
    let mut child = cmd.spawn().context("cannot start qemu")?;
    let followed = match probe.then(|| kernel_starts(&mut child, &logs, started)) {
        Some(Err(e)) => Err(e),
        Some(Ok(Some(why))) => Ok(Err(why)),
        Some(Ok(None)) | None => follow(&mut child, &logs, boot, started).map(Ok),
    };
    // Whatever happened, qemu does not outlive the run.
    let _ = child.kill();
    let _ = child.wait();
    if let Some(settings) = terminal {
        let _ = Command::new("stty").arg(settings).status();
    }
    let followed = match followed? {
        Ok(followed) => followed,
        Err(why) => return Ok(Attempt::NoKernel(why)),
    };

    if followed.result.is_err() && !boot.shell {
        logs.print_failure_context();
    }
    Ok(Attempt::Ran(Outcome {
        accel,
        boot: followed.first_line.map(|t| t - started),
        test: followed
            .first_line
            .zip(followed.finished)
            .map(|(a, b)| b - a),
        poweroff: followed.finished.zip(followed.exited).map(|(a, b)| b - a),
        result: followed.result,
        shell: boot.shell,
    }))
}

/// `stty -g` of this process's terminal, if it has one.
fn saved_terminal() -> Option<String> {
    let out = Command::new("stty")
        .arg("-g")
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn drive(path: &Path, opts: &str) -> String {
    // qemu's option syntax doubles commas inside values.
    let file = path.display().to_string().replace(',', ",,");
    format!("file={file},if=virtio,{opts}")
}

/// Wait until the kernel prints its banner on the console: `Some(why)` when
/// qemu exits first or [`KVM_PROBE`] passes without it.
fn kernel_starts(child: &mut Child, logs: &Logs, started: Instant) -> Result<Option<String>> {
    loop {
        let banner = std::fs::read(&logs.console)
            .is_ok_and(|c| c.windows(14).any(|w| w == b"Linux version "));
        if banner {
            return Ok(None);
        }
        if let Some(status) = child.try_wait().context("cannot poll qemu")? {
            return Ok(Some(format!(
                "qemu exited with {status}: {}",
                logs.qemu_error()
            )));
        }
        if started.elapsed() > KVM_PROBE {
            return Ok(Some(format!(
                "no kernel output within {} s",
                KVM_PROBE.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// What following one boot found.
struct Followed {
    first_line: Option<Instant>,
    finished: Option<Instant>,
    exited: Option<Instant>,
    result: Result<(), String>,
}

/// Stream the test's output until qemu exits, or (test runs only) the time
/// limit passes or the guest fails to power off after the test.
fn follow(child: &mut Child, logs: &Logs, boot: &Boot, started: Instant) -> Result<Followed> {
    // qemu keeps this terminal raw in shell mode: lines need their own "\r".
    let eol = if boot.shell { "\r\n" } else { "\n" };
    let mut test = Tail::new(&logs.test);
    let mut verdict = Verdict::default();
    let mut f = Followed {
        first_line: None,
        finished: None,
        exited: None,
        result: Ok(()),
    };
    loop {
        let mut lines = test.poll().context("cannot read the test log")?;
        let status = child.try_wait().context("cannot poll qemu")?;
        if status.is_some() {
            // qemu has flushed everything it will ever write.
            lines.extend(test.poll().context("cannot read the test log")?);
            lines.extend(test.rest());
        }
        let now = Instant::now();
        for line in &lines {
            print!("guest | {line}{eol}");
            verdict.feed(line);
            f.first_line.get_or_insert(now);
        }
        if verdict.finished() && f.finished.is_none() {
            f.finished = Some(now);
        }

        if let Some(status) = status {
            f.exited = Some(now);
            f.result = if !verdict.finished() {
                Err(format!(
                    "qemu exited ({status}) before the test finished (last step: {})",
                    verdict.step()
                ))
            } else if !status.success() {
                Err(format!("qemu exited with {status}"))
            } else {
                verdict.judge()
            };
            return Ok(f);
        }
        if boot.shell {
            // The user decides when it ends.
        } else if let Some(finished) = f.finished {
            if now - finished > POWEROFF_GRACE {
                f.result = verdict.judge().and(Err(format!(
                    "the guest did not power off within {} s after the test",
                    POWEROFF_GRACE.as_secs()
                )));
                return Ok(f);
            }
        } else if now - started > boot.timeout {
            f.result = Err(format!(
                "timed out after {} s (last step: {}); raise it with --timeout",
                boot.timeout.as_secs(),
                verdict.step()
            ));
            return Ok(f);
        }
        std::thread::sleep(POLL);
    }
}
