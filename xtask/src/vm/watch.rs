//! Reading the guest's serial output files while qemu writes them.
//!
//! Owns the run's log files ([`Logs`]), incremental line reading ([`Tail`]) and
//! making console text printable ([`printable`]: systemd's status lines carry
//! colour codes, a tty adds `\r`). It never interprets what the test's lines
//! mean; [`super::verdict`] does that.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Console lines shown when a run fails.
const CONSOLE_TAIL: usize = 120;

/// The log files of one boot, in the run directory.
#[derive(Debug)]
pub struct Logs {
    /// ttyS0: kernel, initramfs, systemd.
    pub console: PathBuf,
    /// ttyS1: the guest test's output.
    pub test: PathBuf,
    /// qemu's own stdout and stderr.
    pub qemu: PathBuf,
}

impl Logs {
    /// The paths in `run_dir`, with any previous boot's files removed.
    pub fn fresh(run_dir: &Path) -> Logs {
        let logs = Logs {
            console: run_dir.join("console.log"),
            test: run_dir.join("test.log"),
            qemu: run_dir.join("qemu.log"),
        };
        for path in [&logs.console, &logs.test, &logs.qemu] {
            let _ = std::fs::remove_file(path);
        }
        logs
    }

    /// qemu's own last complaint, for a one-line reason.
    pub fn qemu_error(&self) -> String {
        last_lines(&self.qemu, 3)
            .into_iter()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or_else(|| "no message".into())
    }

    /// The end of the console and qemu's messages, and where the full logs are.
    pub fn print_failure_context(&self) {
        eprintln!();
        eprintln!(
            "=== guest console, last {CONSOLE_TAIL} lines ({})",
            self.console.display()
        );
        for line in last_lines(&self.console, CONSOLE_TAIL) {
            eprintln!("console | {line}");
        }
        let qemu = last_lines(&self.qemu, 20);
        if qemu.iter().any(|l| !l.trim().is_empty()) {
            eprintln!("=== qemu ({})", self.qemu.display());
            for line in qemu {
                eprintln!("qemu | {line}");
            }
        }
        eprintln!(
            "=== full logs: {} and {}",
            self.console.display(),
            self.test.display()
        );
    }
}

/// Follows a file that another process appends to, yielding complete lines.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
}

impl Tail {
    /// Follow `path`, which may not exist yet.
    pub fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            partial: Vec::new(),
        }
    }

    /// The complete lines appended since the last call, made printable.
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        file.read_to_end(&mut self.partial)?;
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(printable(&line[..end]));
        }
        Ok(lines)
    }

    /// Whatever is left without a final newline (the guest stopped mid-line).
    pub fn rest(&mut self) -> Option<String> {
        let rest = printable(&std::mem::take(&mut self.partial));
        (!rest.is_empty()).then_some(rest)
    }
}

/// Text without terminal escape sequences, carriage returns or other control
/// characters (tabs stay), invalid UTF-8 replaced.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC and friends up to BEL or ST; others are two characters.
                Some(']') | Some('P') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The last `n` lines of a file, printable; empty when it cannot be read.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = data.split(|&b| b == b'\n').map(printable).collect();
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn printable_drops_colours_and_carriage_returns() {
        let s = printable(b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mfoo\x1b[0m.\r");
        assert_eq!(s, "[  OK  ] Started foo.");
        assert_eq!(printable(b"\x1b]0;title\x07after\tx"), "after\tx");
        assert_eq!(printable(b"\x1bcreset"), "reset");
        assert_eq!(printable(b"bad \xff byte"), "bad \u{fffd} byte");
    }

    #[test]
    fn tail_yields_complete_lines_as_they_arrive() {
        let path = std::env::temp_dir().join(format!("xtask-vm-tail-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut tail = Tail::new(&path);
        assert!(tail.poll().unwrap().is_empty(), "missing file: nothing yet");

        let mut f = File::create(&path).unwrap();
        f.write_all(b"one\r\ntw").unwrap();
        assert_eq!(tail.poll().unwrap(), vec!["one"]);
        f.write_all(b"o\nthree").unwrap();
        assert_eq!(tail.poll().unwrap(), vec!["two"]);
        assert!(tail.poll().unwrap().is_empty());
        assert_eq!(tail.rest().as_deref(), Some("three"));
        std::fs::remove_file(&path).unwrap();
    }
}
