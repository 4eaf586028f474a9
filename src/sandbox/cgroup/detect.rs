//! Detection of the host's cgroup layout from `/proc/self/mountinfo` and
//! `/proc/self/cgroup`.
//!
//! Owns the parsing of those two files and the mapping "hierarchy → mount point →
//! the supervisor's own cgroup directory in it". Pure functions over text, so the
//! layouts of hosts we do not run on (pure v1, pure v2, hybrid, containers with a
//! non-`/` mount root) are unit-tested here. It must never create, write or
//! remove anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// The canonical place cgroup hierarchies are mounted.
pub(crate) const CANONICAL_ROOT: &str = "/sys/fs/cgroup";

/// One mounted cgroup v1 hierarchy the supervisor belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V1Mount {
    /// Controllers bound to it (`memory`, `cpu`, `cpuacct`, `name=systemd`...).
    pub controllers: BTreeSet<String>,
    /// Where it is mounted (rebased onto the injected `/sys/fs/cgroup`).
    pub mount: PathBuf,
    /// The supervisor's own cgroup directory in it.
    pub own_dir: PathBuf,
    /// The supervisor's cgroup path as `/proc/self/cgroup` shows it.
    pub own_path: String,
}

/// The mounted cgroup v2 (unified) hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct V2Mount {
    /// Where it is mounted (rebased onto the injected `/sys/fs/cgroup`).
    pub mount: PathBuf,
    /// The supervisor's own cgroup directory in it.
    pub own_dir: PathBuf,
    /// The supervisor's cgroup path as `/proc/self/cgroup` shows it.
    pub own_path: String,
}

/// Every cgroup hierarchy the supervisor can use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// v1 hierarchies (one per mount with controllers).
    pub v1: Vec<V1Mount>,
    /// The unified hierarchy, when mounted.
    pub v2: Option<V2Mount>,
}

/// One line of `/proc/self/mountinfo` (the fields we need).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// Field 4: the part of the filesystem mounted here.
    pub root: String,
    /// Field 5: the mount point.
    pub mount_point: PathBuf,
    /// The filesystem type after the ` - ` separator.
    pub fstype: String,
    /// Superblock options (for cgroup v1: the controllers).
    pub super_options: Vec<String>,
}

/// One line of `/proc/self/cgroup`: `id:controllers:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupLine {
    /// Hierarchy id (0 for the unified hierarchy).
    pub id: u32,
    /// Controllers of the hierarchy (empty for v2).
    pub controllers: Vec<String>,
    /// The process's cgroup path in that hierarchy.
    pub path: String,
}

/// Read both files under `proc_root` and work out the layout.
pub(crate) fn detect(proc_root: &Path, sys_root: &Path) -> Result<Layout, CgroupError> {
    let mountinfo_path = proc_root.join("self/mountinfo");
    let cgroup_path = proc_root.join("self/cgroup");
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| CgroupError::ReadProc {
            file: p.to_path_buf(),
            source,
        })
    };
    let mounts = parse_mountinfo(&read(&mountinfo_path)?).map_err(|(line, reason)| {
        CgroupError::ParseProc {
            file: mountinfo_path.clone(),
            line,
            reason,
        }
    })?;
    let lines = parse_proc_cgroup(&read(&cgroup_path)?).map_err(|(line, reason)| {
        CgroupError::ParseProc {
            file: cgroup_path.clone(),
            line,
            reason,
        }
    })?;
    layout(&mounts, &lines, sys_root)
}

/// Parse `/proc/self/mountinfo`, keeping only cgroup mounts. Errors carry the
/// 1-based line number.
pub(crate) fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-").ok_or((
            i + 1,
            "no ` - ` separator before the filesystem type".to_owned(),
        ))?;
        if sep < 6 || fields.len() < sep + 3 {
            return Err((
                i + 1,
                format!("expected at least 10 fields, found {}", fields.len()),
            ));
        }
        let fstype = fields[sep + 1];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        out.push(MountEntry {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            fstype: fstype.to_owned(),
            super_options: fields[sep + 3].split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// Undo the kernel's octal escaping of spaces, tabs, newlines and backslashes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/cgroup`. Errors carry the 1-based line number.
pub(crate) fn parse_proc_cgroup(text: &str) -> Result<Vec<CgroupLine>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err((i + 1, "expected `id:controllers:path`".to_owned()));
        };
        let id = id
            .parse()
            .map_err(|_| (i + 1, format!("hierarchy id {id:?} is not a number")))?;
        if !path.starts_with('/') {
            return Err((i + 1, format!("cgroup path {path:?} is not absolute")));
        }
        let controllers = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        out.push(CgroupLine {
            id,
            controllers,
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// Put a mount point found in mountinfo under the injected `/sys/fs/cgroup`.
fn rebase(mount_point: &Path, sys_root: &Path) -> PathBuf {
    match mount_point.strip_prefix(CANONICAL_ROOT) {
        Ok(rest) => sys_root.join(rest),
        Err(_) => mount_point.to_path_buf(),
    }
}

/// The supervisor's directory: the mount point plus its cgroup path relative to
/// the mounted root of the hierarchy.
fn own_dir(entry: &MountEntry, own_path: &str, sys_root: &Path) -> Result<PathBuf, CgroupError> {
    let mount = rebase(&entry.mount_point, sys_root);
    let root = entry.root.trim_end_matches('/');
    let rel = if root.is_empty() {
        own_path
    } else if own_path == root {
        ""
    } else if let Some(rest) = own_path.strip_prefix(root).filter(|r| r.starts_with('/')) {
        rest
    } else {
        return Err(CgroupError::OutsideMount {
            mount,
            mount_root: entry.root.clone(),
            own_path: own_path.to_owned(),
        });
    };
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(CgroupError::OutsideMount {
            mount,
            mount_root: entry.root.clone(),
            own_path: own_path.to_owned(),
        });
    }
    Ok(if rel.is_empty() {
        mount
    } else {
        mount.join(rel)
    })
}

/// Prefer mounts under the canonical root when a hierarchy is mounted twice.
fn rank(entry: &MountEntry) -> u8 {
    u8::from(!entry.mount_point.starts_with(CANONICAL_ROOT))
}

/// Combine mounts and membership lines into the usable layout.
pub(crate) fn layout(
    mounts: &[MountEntry],
    lines: &[CgroupLine],
    sys_root: &Path,
) -> Result<Layout, CgroupError> {
    let mut layout = Layout::default();
    for line in lines {
        if line.id == 0 && line.controllers.is_empty() {
            let entry = mounts
                .iter()
                .filter(|m| m.fstype == "cgroup2")
                .min_by_key(|m| rank(m));
            if let Some(entry) = entry {
                layout.v2 = Some(V2Mount {
                    mount: rebase(&entry.mount_point, sys_root),
                    own_dir: own_dir(entry, &line.path, sys_root)?,
                    own_path: line.path.clone(),
                });
            }
            continue;
        }
        if line.controllers.is_empty() {
            continue;
        }
        let entry = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup")
            .filter(|m| line.controllers.iter().all(|c| m.super_options.contains(c)))
            .min_by_key(|m| rank(m));
        // A hierarchy the supervisor belongs to but that is not mounted here
        // cannot be used; it is simply absent from the layout.
        if let Some(entry) = entry {
            layout.v1.push(V1Mount {
                controllers: line.controllers.iter().cloned().collect(),
                mount: rebase(&entry.mount_point, sys_root),
                own_dir: own_dir(entry, &line.path, sys_root)?,
                own_path: line.path.clone(),
            });
        }
    }
    if layout.v1.is_empty() && layout.v2.is_none() {
        return Err(CgroupError::NoHierarchy);
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development machine: v1 controllers, a controller-less v2, the
    /// supervisor in a nested memory cgroup.
    const HYBRID_MOUNTINFO: &str = "\
24 1 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_layout_maps_each_hierarchy_to_the_own_cgroup() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO).unwrap();
        assert_eq!(mounts.len(), 7, "sysfs and tmpfs are skipped");
        let lines = parse_proc_cgroup(HYBRID_CGROUP).unwrap();
        let l = layout(&mounts, &lines, Path::new("/fake")).unwrap();
        let mem =
            l.v1.iter()
                .find(|m| m.controllers.contains("memory"))
                .unwrap();
        assert_eq!(mem.own_dir, Path::new("/fake/memory/process_api/abc"));
        assert_eq!(mem.mount, Path::new("/fake/memory"));
        let pids =
            l.v1.iter()
                .find(|m| m.controllers.contains("pids"))
                .unwrap();
        assert_eq!(pids.own_dir, Path::new("/fake/pids"));
        assert_eq!(l.v1.len(), 6);
        let v2 = l.v2.unwrap();
        assert_eq!(v2.own_dir, Path::new("/fake/unified"));
    }

    #[test]
    fn co_mounted_controllers_share_one_hierarchy() {
        let mi = "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let cg = "3:cpu,cpuacct:/system.slice/x.service\n";
        let l = layout(
            &parse_mountinfo(mi).unwrap(),
            &parse_proc_cgroup(cg).unwrap(),
            Path::new("/sys/fs/cgroup"),
        )
        .unwrap();
        assert_eq!(l.v1.len(), 1);
        assert_eq!(
            l.v1[0].own_dir,
            Path::new("/sys/fs/cgroup/cpu,cpuacct/system.slice/x.service")
        );
        assert!(l.v2.is_none());
    }

    #[test]
    fn pure_v2_with_optional_fields_and_escapes() {
        let mi = "28 22 0:25 / /sys/fs/cgroup rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate\n";
        let cg = "0::/system.slice/enforce\\040core.service\n";
        let l = layout(
            &parse_mountinfo(mi).unwrap(),
            &parse_proc_cgroup(cg).unwrap(),
            Path::new("/t"),
        )
        .unwrap();
        assert!(l.v1.is_empty());
        // /proc/self/cgroup does not escape; only mountinfo does.
        assert_eq!(
            l.v2.unwrap().own_dir,
            Path::new("/t/system.slice/enforce\\040core.service")
        );
        let mi = "28 22 0:25 / /run/my\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(mi).unwrap()[0].mount_point,
            Path::new("/run/my cg")
        );
    }

    #[test]
    fn container_mount_root_is_stripped() {
        let mi = "40 30 0:30 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";
        let cg = "4:memory:/docker/abc/sub\n";
        let l = layout(
            &parse_mountinfo(mi).unwrap(),
            &parse_proc_cgroup(cg).unwrap(),
            Path::new("/sys/fs/cgroup"),
        )
        .unwrap();
        assert_eq!(l.v1[0].own_dir, Path::new("/sys/fs/cgroup/memory/sub"));
        let cg = "4:memory:/elsewhere\n";
        let err = layout(
            &parse_mountinfo(mi).unwrap(),
            &parse_proc_cgroup(cg).unwrap(),
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn unmounted_hierarchy_is_absent_and_nothing_at_all_is_an_error() {
        let cg = "4:memory:/\n";
        let err = layout(&[], &parse_proc_cgroup(cg).unwrap(), Path::new("/x")).unwrap_err();
        assert!(matches!(err, CgroupError::NoHierarchy), "{err}");
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        assert_eq!(parse_proc_cgroup("0::/\nbogus\n").unwrap_err().0, 2);
        assert_eq!(parse_proc_cgroup("x::/\n").unwrap_err().0, 1);
        assert_eq!(parse_proc_cgroup("0::relative\n").unwrap_err().0, 1);
        assert_eq!(parse_mountinfo("1 2 3 / /a rw\n").unwrap_err().0, 1);
        assert_eq!(parse_mountinfo("1 2 - cgroup\n").unwrap_err().0, 1);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text() {
        use proptest::prelude::*;
        proptest!(|(s in "[ -~\\n\\\\]{0,200}")| {
            let _ = parse_mountinfo(&s);
            let _ = parse_proc_cgroup(&s);
            let _ = unescape(&s);
        });
    }
}
