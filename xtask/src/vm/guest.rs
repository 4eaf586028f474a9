//! The cached Debian guest: kernel, initramfs and an ext4 root image.
//!
//! Owns `target/vm/guest-<key>/`, where the key hashes everything that goes
//! into the image: `build-guest.sh`, `packages.txt` and the files under
//! `guest/` (units baked into the image). The test script and the binary are
//! not part of it: they travel on the payload disk, so changing them never
//! rebuilds the guest. The build itself is `build-guest.sh`; this module never
//! touches the image's contents.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A built guest.
#[derive(Debug)]
pub struct Image {
    /// The directory holding it.
    pub dir: PathBuf,
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs that finds the virtio root disk.
    pub initrd: PathBuf,
    /// The root filesystem, ext4, label `ecroot`; attached copy-on-write.
    pub rootfs: PathBuf,
}

impl Image {
    fn at(dir: PathBuf) -> Image {
        Image {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            rootfs: dir.join("rootfs.img"),
            dir,
        }
    }

    fn complete(&self) -> bool {
        [&self.kernel, &self.initrd, &self.rootfs]
            .iter()
            .all(|p| p.is_file())
    }
}

/// Return the cached guest for the current sources, building it when missing
/// (or when `rebuild`). The flag says whether it was built now.
pub fn ensure(sources: &Path, vm_dir: &Path, mirror: &str, rebuild: bool) -> Result<(Image, bool)> {
    let key = cache_key(sources)?;
    let image = Image::at(vm_dir.join(format!("guest-{key}")));
    remove_partial(vm_dir);
    if image.complete() && !rebuild {
        eprintln!("xtask: guest {} (cached)", image.dir.display());
        return Ok((image, false));
    }
    eprintln!(
        "xtask: building the guest into {} (debootstrap from {mirror})",
        image.dir.display()
    );
    let mut cmd = super::tied("bash");
    cmd.arg(sources.join("build-guest.sh"))
        .arg(&image.dir)
        .arg(mirror);
    crate::run(&mut cmd)?;
    if !image.complete() {
        bail!(
            "build-guest.sh succeeded but {} lacks vmlinuz, initrd.img or rootfs.img",
            image.dir.display()
        );
    }
    if let Ok(versions) = std::fs::read_to_string(image.dir.join("versions.txt")) {
        eprintln!("xtask: guest contents:\n{versions}");
    }
    prune(vm_dir, &image.dir);
    Ok((image, true))
}

/// The Debian archive the host's apt uses (a `URIs:` of a deb822 `.sources`
/// file or a `deb` line of `sources.list` whose path ends in `/debian`): the
/// guest comes from the same place as the host's own packages.
pub fn host_mirror() -> Result<String> {
    let mut texts = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path.to_string_lossy().into_owned();
            if name.ends_with(".sources") || name.ends_with(".list") {
                texts.extend(std::fs::read_to_string(&path).ok());
            }
        }
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    texts.iter().find_map(|t| debian_mirror_in(t)).context(
        "no Debian archive in the host's apt sources (/etc/apt/sources.list*); \
         pass --mirror URL or set ENFORCECORE_VM_MIRROR",
    )
}

/// The first Debian archive URI (path ending in `/debian`) in one apt sources
/// file, deb822 or one-line format.
fn debian_mirror_in(text: &str) -> Option<String> {
    let is_archive = |uri: &str| {
        let uri = uri.trim_end_matches('/');
        (uri.starts_with("http://") || uri.starts_with("https://")) && uri.ends_with("/debian")
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let words: Vec<&str> = if let Some(uris) = line.strip_prefix("URIs:") {
                uris.split_whitespace().collect()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // deb [options] URI suite components
                let rest = match rest.trim_start().strip_prefix('[') {
                    Some(opts) => opts.split_once(']').map_or("", |(_, r)| r),
                    None => rest,
                };
                rest.split_whitespace().take(1).collect()
            } else {
                Vec::new()
            };
            words
                .into_iter()
                .find(|u| is_archive(u))
                .map(|u| u.trim_end_matches('/').to_owned())
        })
}

/// Hash of the files the image is built from, in a fixed order, 16 hex digits.
pub fn cache_key(sources: &Path) -> Result<String> {
    let mut files = vec![
        PathBuf::from("build-guest.sh"),
        PathBuf::from("packages.txt"),
    ];
    let guest = sources.join("guest");
    let mut baked: Vec<PathBuf> = std::fs::read_dir(&guest)
        .with_context(|| format!("cannot list {}", guest.display()))?
        .map(|e| e.map(|e| Path::new("guest").join(e.file_name())))
        .collect::<Result<_, _>>()?;
    baked.sort();
    files.extend(baked);

    let mut hash = Sha256::new();
    for rel in &files {
        let path = sources.join(rel);
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // Name and length first, so moving bytes between files changes the key.
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(&data);
    }
    Ok(hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Remove what an interrupted build left (the caller holds the vm-test lock,
/// so no build is running). A killed build's mounts died with its namespace;
/// only its files remain.
fn remove_partial(vm_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(vm_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".partial") {
            let path = entry.path();
            eprintln!("xtask: removing the interrupted build {}", path.display());
            if let Err(e) = std::fs::remove_dir_all(&path) {
                eprintln!("xtask: warning: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Remove other guests (each is hundreds of MiB).
fn prune(vm_dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(vm_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path != keep && name.to_string_lossy().starts_with("guest-") {
            eprintln!("xtask: removing the old guest {}", path.display());
            if let Err(e) = std::fs::remove_dir_all(&path) {
                eprintln!("xtask: warning: cannot remove {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path, script: &str) {
        std::fs::create_dir_all(dir.join("guest")).unwrap();
        std::fs::write(dir.join("build-guest.sh"), script).unwrap();
        std::fs::write(dir.join("packages.txt"), "[base]\nsystemd\n").unwrap();
        std::fs::write(dir.join("guest/unit.service"), "[Unit]\n").unwrap();
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-vm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn key_follows_every_input_and_only_them() {
        let dir = scratch("key");
        sources(&dir, "echo one");
        let first = cache_key(&dir).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(cache_key(&dir).unwrap(), first, "the key is stable");

        std::fs::write(dir.join("guest-test.sh"), "changed").unwrap();
        assert_eq!(
            cache_key(&dir).unwrap(),
            first,
            "the test script is not baked in"
        );

        std::fs::write(dir.join("guest/unit.service"), "[Unit]\nX=1\n").unwrap();
        let second = cache_key(&dir).unwrap();
        assert_ne!(second, first, "a baked unit changes the key");

        std::fs::write(dir.join("packages.txt"), "[base]\nsystemd\ncurl\n").unwrap();
        assert_ne!(
            cache_key(&dir).unwrap(),
            second,
            "the package list changes the key"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mirror_from_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\n# http://snapshot.example/archive/debian/2025\n\
                      URIs: http://mirror.example/debian/\nSuites: bookworm\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\n";
        assert_eq!(
            debian_mirror_in(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let list = "deb http://mirror.example/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main\n";
        assert_eq!(
            debian_mirror_in(list).as_deref(),
            Some("https://m.example/debian")
        );
        assert_eq!(
            debian_mirror_in("Types: deb\nURIs: https://deb.nodesource.example/node_20.x\n"),
            None
        );
    }

    #[test]
    fn missing_sources_are_an_error() {
        let dir = scratch("missing");
        std::fs::create_dir_all(dir.join("guest")).unwrap();
        let err = cache_key(&dir).unwrap_err();
        assert!(format!("{err:#}").contains("build-guest.sh"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
