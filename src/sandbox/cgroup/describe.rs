//! What `enforcecore doctor` says about cgroups.
//!
//! Owns the translation of a detected [`super::Hierarchy`] into plain data (JSON)
//! and text: layout, which controllers runs get and from where, where runs are
//! created, how the tree is killed, whether swap is bounded, and what is missing
//! and what that means for policies. It reads a few files; it must never create,
//! write or remove anything.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::v1::{self, V1Hierarchy};
use super::v2::{self, Mode, V2Hierarchy};
use super::{CgroupVersion, Layout, control};

/// The cgroup part of `enforcecore doctor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CgroupDescription {
    /// `v1`, `v2` or `hybrid`.
    pub layout: Layout,
    /// The version runs are created in.
    pub version: CgroupVersion,
    /// How runs are placed relative to the supervisor.
    pub placement: String,
    /// Directories runs are created in (one per v1 hierarchy).
    pub runs_parents: Vec<PathBuf>,
    /// Per controller: available to runs or not, and what that means.
    pub controllers: Vec<ControllerStatus>,
    /// How the whole tree is killed.
    pub tree_kill: String,
    /// Whether a memory limit also bounds swap.
    pub swap: String,
    /// What is missing and its consequence for policies.
    pub notes: Vec<String>,
}

/// One controller as runs see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControllerStatus {
    /// `memory`, `pids`, `cpu`, `cpuacct`, `freezer`.
    pub name: String,
    /// Runs get it.
    pub available: bool,
    /// Where it comes from (mount point or v2 cgroup), when available.
    pub source: Option<PathBuf>,
    /// What it gives a policy, or what its absence costs.
    pub effect: String,
}

/// (controller, what it gives, what its absence means)
const EFFECTS: [(&str, &str, &str); 5] = [
    (
        "memory",
        "memory limits, OOM detection, peak memory",
        "policies with a memory limit fail (exit 125); no peak memory",
    ),
    (
        "pids",
        "pids limits, fork-limit detection",
        "policies with a pids limit fail (exit 125)",
    ),
    (
        "cpu",
        "CPU quotas",
        "policies with a cpu limit fail (exit 125)",
    ),
    (
        "cpuacct",
        "CPU time of the whole tree",
        "no CPU time in exit reports",
    ),
    (
        "freezer",
        "race-free tree kill",
        "tree kill is a repeated signal loop (a fast fork loop may need several rounds)",
    ),
];

/// The description when runs use v1; `unified` is the v2 side of a hybrid host.
pub(crate) fn for_v1(
    layout: Layout,
    h: &V1Hierarchy,
    unified: Option<&V2Hierarchy>,
) -> CgroupDescription {
    let mut notes = Vec::new();
    let d = describe_v1(layout, h, &mut notes);
    if let Some(u) = unified {
        notes.push(format!(
            "hybrid host: runs use the v1 controllers; the unified hierarchy at {} offers: {}",
            u.mount.mount.display(),
            list(u.available.iter().map(String::as_str))
        ));
    }
    CgroupDescription { notes, ..d }
}

/// The description when runs use v2.
pub(crate) fn for_v2(layout: Layout, h: &V2Hierarchy) -> CgroupDescription {
    let mut notes = Vec::new();
    let d = describe_v2(layout, h, &mut notes);
    if layout == Layout::Hybrid {
        notes.push("hybrid host: runs use the unified hierarchy (chosen explicitly)".into());
    }
    CgroupDescription { notes, ..d }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

fn status(name: &str, source: Option<PathBuf>, notes: &mut Vec<String>) -> ControllerStatus {
    let (_, gives, lacks) = EFFECTS
        .iter()
        .find(|(n, ..)| *n == name)
        .copied()
        .unwrap_or((name, "", ""));
    if source.is_none() {
        notes.push(format!("{name} controller missing: {lacks}"));
    }
    ControllerStatus {
        name: name.to_owned(),
        available: source.is_some(),
        effect: if source.is_some() { gives } else { lacks }.to_owned(),
        source,
    }
}

fn swap_note(memsw_present: bool, what: &str) -> String {
    let swap_active = control::read_text(Path::new("/proc/swaps"))
        .map(|t| t.lines().count() > 1)
        .unwrap_or(false);
    match (memsw_present, swap_active) {
        (true, _) => format!("bounded: {what} is set with the memory limit"),
        (false, true) => format!(
            "NOT bounded: swap is active and {what} is missing (swap accounting off); \
             a tool can exceed its memory limit through swap"
        ),
        (false, false) => "no swap configured".into(),
    }
}

fn describe_v1(layout: Layout, h: &V1Hierarchy, notes: &mut Vec<String>) -> CgroupDescription {
    let controllers = v1::USED
        .iter()
        .map(|c| status(c, h.find(c).map(|m| m.mount.clone()), notes))
        .collect();
    let memsw = h
        .find("memory")
        .is_some_and(|m| control::has(&m.own_dir.join("memory.memsw.limit_in_bytes")));
    let tree_kill = if h.find("freezer").is_some() {
        "v1 freezer: FROZEN, SIGKILL every pid, THAWED, until empty"
    } else {
        "signal loop: SIGKILL every pid until empty (no freezer hierarchy)"
    };
    CgroupDescription {
        layout,
        version: CgroupVersion::V1,
        placement: "nested under the supervisor's own cgroup in each hierarchy \
                    (<own>/enforcecore/<run>): runs stay inside its accounting"
            .into(),
        runs_parents: h.mounts.iter().map(V1Hierarchy::runs_parent).collect(),
        controllers,
        tree_kill: tree_kill.into(),
        swap: swap_note(memsw, "memory.memsw.limit_in_bytes"),
        notes: Vec::new(),
    }
}

fn describe_v2(layout: Layout, h: &V2Hierarchy, notes: &mut Vec<String>) -> CgroupDescription {
    let mut controllers: Vec<ControllerStatus> = v2::USED
        .iter()
        .map(|c| status(c, h.available.contains(*c).then(|| h.top.clone()), notes))
        .collect();
    controllers.push(ControllerStatus {
        name: "cpu.stat".into(),
        available: true,
        source: Some(h.top.clone()),
        effect: "CPU time of the whole tree (always present on v2)".into(),
    });
    let placement = match &h.mode {
        Mode::Delegated { base, .. } => format!(
            "delegated subtree {}: the supervisor lives in {}/, runs in {}/<run>",
            base.display(),
            v2::SUPERVISOR_LEAF,
            v2::RUNS
        ),
        Mode::Dedicated => "dedicated subtree at the top of the hierarchy (root, not delegated): \
                            runs are outside the supervisor's own cgroup"
            .into(),
        Mode::Unusable => {
            notes.push(
                "the supervisor's cgroup is not delegated and it is not root: no run can get a \
                 cgroup (every run fails with exit 125); use systemd Delegate=yes"
                    .into(),
            );
            "unusable".into()
        }
    };
    let kill = if kernel_at_least(5, 14) {
        "cgroup.kill"
    } else {
        "cgroup.freeze, SIGKILL every pid, thaw, until empty (kernel < 5.14 has no cgroup.kill)"
    };
    let swap_bounded = h.available.contains("memory") && !swap_accounting_off();
    CgroupDescription {
        layout,
        version: CgroupVersion::V2,
        placement,
        runs_parents: vec![h.runs_parent.clone()],
        controllers,
        tree_kill: kill.into(),
        swap: swap_note(swap_bounded, "memory.swap.max=0"),
        notes: Vec::new(),
    }
}

/// `swapaccount=0` on the kernel command line removes `memory.swap.max`.
fn swap_accounting_off() -> bool {
    control::read_text(Path::new("/proc/cmdline"))
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "swapaccount=0"))
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uts = nix::sys::utsname::uname();
    let release = uts
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

impl fmt::Display for CgroupDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cgroups: layout {}, runs use {}",
            self.layout.as_str(),
            self.version.as_str()
        )?;
        writeln!(f, "  placement: {}", self.placement)?;
        for p in &self.runs_parents {
            writeln!(f, "  runs in:   {}/<run>", p.display())?;
        }
        for c in &self.controllers {
            let mark = if c.available { "ok  " } else { "MISSING" };
            let src = c
                .source
                .as_ref()
                .map(|s| format!(" ({})", s.display()))
                .unwrap_or_default();
            writeln!(f, "  {mark:<7} {:<9} {}{src}", c.name, c.effect)?;
        }
        writeln!(f, "  tree kill: {}", self.tree_kill)?;
        writeln!(f, "  swap:      {}", self.swap)?;
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_tree::FakeTree;
    use super::super::{CgroupVersion, Hierarchy, Layout};

    #[test]
    fn hybrid_description_names_layout_sources_and_the_unified_side() {
        let fake = FakeTree::hybrid();
        let d = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root())
            .unwrap()
            .describe();
        assert_eq!((d.layout, d.version), (Layout::Hybrid, CgroupVersion::V1));
        assert!(d.controllers.iter().all(|c| c.available), "{d}");
        assert!(d.swap.starts_with("bounded"), "{}", d.swap);
        assert!(d.tree_kill.contains("freezer"));
        assert!(
            d.runs_parents
                .contains(&fake.path("sys/memory/process_api/abc/enforcecore"))
        );
        assert!(
            d.notes.iter().any(|n| n.contains("offers: hugetlb")),
            "{:?}",
            d.notes
        );
        let text = d.to_string();
        assert!(
            text.starts_with("cgroups: layout hybrid, runs use v1"),
            "{text}"
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["layout"], "hybrid");
        assert_eq!(json["controllers"][0]["name"], "memory");
    }

    #[test]
    fn missing_controllers_say_what_policies_lose() {
        let fake = FakeTree::v1_comounted();
        let d = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root())
            .unwrap()
            .describe();
        assert_eq!(d.layout, Layout::V1);
        let pids = d.controllers.iter().find(|c| c.name == "pids").unwrap();
        assert!(!pids.available);
        assert!(pids.effect.contains("exit 125"), "{}", pids.effect);
        assert!(
            d.tree_kill.starts_with("signal loop"),
            "no freezer: {}",
            d.tree_kill
        );
        assert!(d.to_string().contains("MISSING pids"), "{d}");
    }

    #[test]
    fn delegated_v2_description_shows_the_subtree() {
        let fake = FakeTree::v2("/system.slice/ec.service", "memory pids");
        rustix::fs::setxattr(
            fake.path("sys/system.slice/ec.service"),
            "user.delegate",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let d = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root())
            .unwrap()
            .describe();
        assert_eq!((d.layout, d.version), (Layout::V2, CgroupVersion::V2));
        assert!(
            d.placement.starts_with("delegated subtree"),
            "{}",
            d.placement
        );
        assert_eq!(
            d.runs_parents,
            vec![fake.path("sys/system.slice/ec.service/runs")]
        );
        let cpu = d.controllers.iter().find(|c| c.name == "cpu").unwrap();
        assert!(!cpu.available);
    }
}
