//! Kernel audit records grouped into the events the feed acts on.
//!
//! A Landlock denial arrives as several records sharing a serial: 1423 (what
//! was denied, and by which domain), 1424 `status=allocated` with the first
//! denial of a domain (the pid that created the domain — a run's child), then at
//! syscall exit 1300 SYSCALL (pid, ppid, syscall number) and 1320 end-of-event.
//! Records of other events may interleave, so partial events are kept by
//! serial until their end-of-event (or until [`Assembler::flush`], which the
//! feed calls at every barrier). seccomp (1326), domain deallocation (1424
//! `status=deallocated`) and barrier messages stand alone. Pure: no I/O.

use std::collections::BTreeMap;

use super::record::{self, Record};

/// Partial events kept at most (the oldest are flushed beyond it).
const MAX_PENDING: usize = 1024;

/// One thing the feed must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A Landlock denial.
    Landlock {
        /// The 1423 record.
        access: Record,
        /// `(domain, creator pid)` from a 1424 `allocated` record of the same event.
        allocated: Option<(u64, i32)>,
        /// The denied process, from the SYSCALL record.
        pid: Option<i32>,
        /// Its parent.
        ppid: Option<i32>,
        /// The syscall number, from the SYSCALL record.
        syscall: Option<i64>,
    },
    /// A Landlock domain ended (every process of it exited).
    DomainFreed {
        /// The domain id.
        domain: u64,
        /// Denials the kernel logged for it.
        denials: u64,
    },
    /// A seccomp record (1326).
    Seccomp {
        /// The process.
        pid: i32,
        /// Syscall number.
        syscall: i64,
        /// `AUDIT_ARCH_*`.
        arch: u32,
        /// The filter's return value (`SECCOMP_RET_*`).
        code: u32,
    },
    /// A user-space record carrying `token=` (the feed's barrier).
    Barrier {
        /// The token.
        token: String,
    },
}

#[derive(Debug, Default)]
struct Partial {
    access: Vec<Record>,
    allocated: Option<(u64, i32)>,
    pid: Option<i32>,
    ppid: Option<i32>,
    syscall: Option<i64>,
}

/// Groups records into [`Event`]s.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: BTreeMap<u64, Partial>,
}

impl Assembler {
    /// Feed one record; returns the events it completes.
    pub fn push(&mut self, r: Record) -> Vec<Event> {
        match r.ty {
            record::LANDLOCK_ACCESS => {
                self.pending.entry(r.serial).or_default().access.push(r);
            }
            record::LANDLOCK_DOMAIN => match r.text("status").as_deref() {
                Some("allocated") => {
                    if let (Some(d), Some(pid)) = (r.hex("domain"), r.int("pid")) {
                        self.pending.entry(r.serial).or_default().allocated = Some((d, pid as i32));
                    }
                }
                Some("deallocated") => {
                    return r
                        .hex("domain")
                        .map(|domain| Event::DomainFreed {
                            domain,
                            denials: r.int("denials").unwrap_or(0) as u64,
                        })
                        .into_iter()
                        .collect();
                }
                _ => {}
            },
            record::SYSCALL => {
                if let Some(p) = self.pending.get_mut(&r.serial) {
                    p.pid = r.int("pid").map(|v| v as i32);
                    p.ppid = r.int("ppid").map(|v| v as i32);
                    p.syscall = r.int("syscall");
                }
            }
            record::EOE => {
                if let Some(p) = self.pending.remove(&r.serial) {
                    return complete(p);
                }
            }
            record::SECCOMP => {
                if let (Some(pid), Some(syscall)) = (r.int("pid"), r.int("syscall")) {
                    return vec![Event::Seccomp {
                        pid: pid as i32,
                        syscall,
                        arch: r.hex("arch").unwrap_or(0) as u32,
                        code: r.hex("code").unwrap_or(0) as u32,
                    }];
                }
            }
            record::TRUSTED_APP => {
                let msg = r.text("msg").unwrap_or_default();
                if let Some(t) = msg.split(' ').find_map(|w| w.strip_prefix("token=")) {
                    return vec![Event::Barrier {
                        token: t.trim_end_matches('\'').to_string(),
                    }];
                }
            }
            _ => {}
        }
        let mut out = Vec::new();
        while self.pending.len() > MAX_PENDING {
            if let Some((_, p)) = self.pending.pop_first() {
                out.extend(complete(p));
            }
        }
        out
    }

    /// Complete every partial event (their SYSCALL or EOE records may never come).
    pub fn flush(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending)
            .into_values()
            .flat_map(complete)
            .collect()
    }
}

fn complete(p: Partial) -> Vec<Event> {
    p.access
        .into_iter()
        .map(|access| Event::Landlock {
            access,
            allocated: p.allocated,
            pid: p.pid,
            ppid: p.ppid,
            syscall: p.syscall,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ty: u16, serial: u64, body: &str) -> Record {
        record::parse(ty, format!("audit(1.0:{serial}): {body}").as_bytes()).unwrap()
    }

    #[test]
    fn a_landlock_event_is_completed_by_its_end_of_event() {
        let mut a = Assembler::default();
        assert!(
            a.push(rec(1423, 5, "domain=ab blockers=fs.read_file path=\"/x\""))
                .is_empty()
        );
        assert!(
            a.push(rec(
                1424,
                5,
                "domain=ab status=allocated mode=enforcing pid=10"
            ))
            .is_empty()
        );
        // Another process's event interleaves.
        assert!(a.push(rec(1300, 6, "syscall=1 pid=99")).is_empty());
        assert!(
            a.push(rec(1300, 5, "syscall=257 ppid=10 pid=11"))
                .is_empty()
        );
        let e = a.push(rec(1320, 5, ""));
        assert_eq!(e.len(), 1);
        let Event::Landlock {
            allocated,
            pid,
            ppid,
            syscall,
            ..
        } = &e[0]
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (*allocated, *pid, *ppid, *syscall),
            (Some((0xab, 10)), Some(11), Some(10), Some(257))
        );
        assert!(
            a.push(rec(1320, 6, "")).is_empty(),
            "no landlock record in it"
        );
    }

    #[test]
    fn standalone_records_and_flush() {
        let mut a = Assembler::default();
        let s = a.push(rec(1326, 7, "pid=3 arch=c000003e syscall=272 code=0x50000"));
        assert_eq!(
            s,
            vec![Event::Seccomp {
                pid: 3,
                syscall: 272,
                arch: 0xc000003e,
                code: 0x50000
            }]
        );
        let f = a.push(rec(1424, 8, "domain=ab status=deallocated denials=4"));
        assert_eq!(
            f,
            vec![Event::DomainFreed {
                domain: 0xab,
                denials: 4
            }]
        );
        let b = a.push(rec(1121, 9, "pid=1 uid=0 msg='op=run-end token=x1y2 '"));
        assert_eq!(
            b,
            vec![Event::Barrier {
                token: "x1y2".into()
            }]
        );
        a.push(rec(1423, 10, "domain=ab blockers=fs.read_file path=\"/x\""));
        assert_eq!(a.flush().len(), 1);
        assert!(a.flush().is_empty());
    }

    #[test]
    fn pending_events_are_bounded() {
        let mut a = Assembler::default();
        let mut out = 0;
        for s in 0..(MAX_PENDING as u64 + 10) {
            out += a
                .push(rec(1423, s, "domain=ab blockers=fs.read_file path=\"/x\""))
                .len();
        }
        assert_eq!(out, 10);
    }
}
