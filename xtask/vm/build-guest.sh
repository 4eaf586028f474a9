#!/usr/bin/env bash
# Build the Debian trixie guest for `cargo xtask vm-test`.
#
# usage: build-guest.sh OUT MIRROR
#   OUT      directory to create: rootfs.img (ext4, label ecroot), vmlinuz, initrd.img,
#            versions.txt (what was installed)
#   MIRROR   Debian archive URL (xtask passes the one the host's apt uses)
#
# The guest: debootstrap minbase + systemd as PID 1 + the trixie-backports kernel
# (cgroup v2, Landlock ABI >= 7), python3, curl, and a unit that runs the test
# payload from a second disk (label ectest). Package lists live in packages.txt
# beside this script; xtask hashes this script, packages.txt and the units under
# guest/ into the cache key.
#
# Runs as root inside a private mount + PID namespace (it re-executes itself under
# `unshare`), so every mount made here (debootstrap's /proc, /sys, the chroot's
# /dev) disappears with the namespace on any exit, Ctrl-C included. No loop
# devices, no nbd: the image is written by `mkfs.ext4 -d`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ ${ENFORCECORE_VM_IN_NS:-} != 1 ]]; then
    [[ $# == 2 ]] || { echo "usage: build-guest.sh OUT MIRROR" >&2; exit 2; }
    [[ $(id -u) == 0 ]] || { echo "build-guest.sh: must run as root (debootstrap, chroot)" >&2; exit 1; }
    for tool in debootstrap mkfs.ext4 unshare chroot; do
        command -v "$tool" >/dev/null || {
            echo "build-guest.sh: '$tool' not found; run xtask/vm/ci-deps.sh first" >&2
            exit 1
        }
    done
    export ENFORCECORE_VM_IN_NS=1
    exec unshare --mount --propagation private --pid --fork --mount-proc --kill-child \
        "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

out=$1
mirror=$2
suite=trixie
partial="$out.partial"
rootfs="$partial/rootfs"

step() { printf '\n== build-guest: %s (%ss)\n' "$*" "$SECONDS" >&2; }

cleanup() {
    local rc=$?
    # Mounts die with the namespace; only the half-built tree needs removing.
    if ((rc != 0)); then
        echo "build-guest: failed (exit $rc); removing $partial" >&2
        rm -rf "$partial"
    fi
}
trap cleanup EXIT

# Packages, one per line; "#" comments. Sections: [base] for debootstrap,
# [backports] installed from $suite-backports.
read_section() {
    awk -v want="[$1]" '
        /^[[:space:]]*(#|$)/ { next }
        /^\[/ { section = $1; next }
        section == want { print $1 }
    ' "$here/packages.txt"
}
mapfile -t base < <(read_section base)
mapfile -t backports < <(read_section backports)
((${#base[@]} && ${#backports[@]})) || { echo "build-guest: packages.txt lacks [base] or [backports]" >&2; exit 1; }

rm -rf "$partial"
mkdir -p "$partial"

debootstrap_failed() {
    tail -n 40 "$partial/debootstrap.log" >&2
    tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    exit 1
}
step "debootstrap $suite from $mirror"
include=$(IFS=,; echo "${base[*]}")
# Two stages, so that dpkg is configured before the second (where every
# package is really installed): no fsync per file (the tree becomes an image
# anyway, and a crash only means building again), and none of the files a test
# guest never reads (documentation, translations, drivers for hardware qemu
# does not emulate), which saves time in dpkg, in mkfs.ext4 and on disk.
debootstrap --foreign --variant=minbase --merged-usr --include="$include" \
    "$suite" "$rootfs" "$mirror" >"$partial/debootstrap.log" 2>&1 || debootstrap_failed
unsafe_io="$rootfs/etc/dpkg/dpkg.cfg.d/enforcecore-vm-unsafe-io"
mkdir -p "${unsafe_io%/*}"
echo force-unsafe-io >"$unsafe_io"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/enforcecore-vm-minimal" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/lib/modules/*/kernel/drivers/gpu/*
path-exclude=/usr/lib/modules/*/kernel/drivers/media/*
path-exclude=/usr/lib/modules/*/kernel/drivers/net/wireless/*
path-exclude=/usr/lib/modules/*/kernel/drivers/infiniband/*
path-exclude=/usr/lib/modules/*/kernel/drivers/staging/*
path-exclude=/usr/lib/modules/*/kernel/sound/*
EOF
chroot "$rootfs" /debootstrap/debootstrap --second-stage >>"$partial/debootstrap.log" 2>&1 ||
    debootstrap_failed

step "chroot setup"
# No daemon may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
mount -t sysfs sysfs "$rootfs/sys"
mount --bind /dev "$rootfs/dev"
mount -t devpts devpts "$rootfs/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null || true

cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates $suite-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -f "$rootfs/etc/apt/sources.list"

# The kernel package insists on generating an initramfs; the guest boots with
# its own (below), so keep Debian's quick to generate.
mkdir -p "$rootfs/etc/initramfs-tools/conf.d"
echo 'MODULES=list' >"$rootfs/etc/initramfs-tools/conf.d/enforcecore-vm.conf"

in_chroot() {
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"
}

step "kernel from $suite-backports: ${backports[*]}"
in_chroot apt-get -q update >"$partial/apt.log" 2>&1 || { tail -n 40 "$partial/apt.log" >&2; exit 1; }
in_chroot apt-get -q -y --no-install-recommends -t "$suite-backports" install "${backports[@]}" \
    >>"$partial/apt.log" 2>&1 || { tail -n 40 "$partial/apt.log" >&2; exit 1; }

step "guest configuration"
echo enforcecore-vm >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 enforcecore-vm\n' >"$rootfs/etc/hosts"
echo 'LABEL=ecroot  /  ext4  rw,errors=remount-ro  0 1' >"$rootfs/etc/fstab"
# The payload disk is mounted here by the test unit's `prepare`.
mkdir -p "$rootfs/opt/enforcecore-test"
# A fixed machine id: not a "first boot", so systemd-firstboot never prompts.
echo 5ec0e7c0b1a94f6d8a3e2c9d1f0a7b21 >"$rootfs/etc/machine-id"
# No network at run time, and nothing periodic that could wake up mid-test.
: >"$rootfs/etc/resolv.conf"
# No VGA console either: the only terminals are the serial ports. binfmt_misc
# sits on the boot's critical path and serves nothing here.
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer systemd-tmpfiles-clean.timer systemd-networkd-wait-online.service \
    systemd-timesyncd.service getty@tty1.service systemd-binfmt.service \
    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
ln -sf /usr/lib/systemd/system/multi-user.target "$rootfs/etc/systemd/system/default.target"
# Each boot starts from the pristine image: a journal in memory is enough, and
# saves flushing it to disk on the way up.
mkdir -p "$rootfs/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$rootfs/etc/systemd/journald.conf.d/enforcecore-vm.conf"
# Caches systemd would otherwise rebuild on first boot (ConditionNeedsUpdate=),
# which costs tens of seconds under software emulation.
in_chroot ldconfig
in_chroot journalctl --update-catalog
in_chroot systemd-hwdb update
in_chroot /usr/lib/systemd/systemd-update-done

# A stuck service must not hold up the poweroff at the end of a test run.
mkdir -p "$rootfs/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultTimeoutStopSec=20s\n' >"$rootfs/etc/systemd/system.conf.d/enforcecore-vm.conf"

# The test unit and the console autologin used by `vm-test --shell`.
install -m 644 "$here/guest/enforcecore-vm-test.service" "$rootfs/etc/systemd/system/"
install -D -m 755 "$here/guest/prepare" "$rootfs/usr/local/lib/enforcecore-vm/prepare"
install -D -m 755 "$here/guest/finish" "$rootfs/usr/local/lib/enforcecore-vm/finish"
ln -sf ../enforcecore-vm-test.service \
    "$rootfs/etc/systemd/system/multi-user.target.wants/enforcecore-vm-test.service"
mkdir -p "$rootfs/etc/systemd/system/serial-getty@ttyS0.service.d"
install -m 644 "$here/guest/autologin.conf" "$rootfs/etc/systemd/system/serial-getty@ttyS0.service.d/"

{
    echo "suite: $suite"
    echo "mirror: $mirror"
    # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
    in_chroot dpkg-query -W -f='${Package} ${Version}\n' systemd linux-image-amd64 python3 curl coreutils
    ls "$rootfs/boot"
} >"$partial/versions.txt"

step "kernel and a minimal initramfs"
kernel=$(find "$rootfs/boot" -name "vmlinuz-*" | sort -V | tail -n 1)
cp "$kernel" "$partial/vmlinuz"
kver=${kernel##*/vmlinuz-}
# busybox, the modules that reach an ext4 root on virtio-blk (decompressed, in
# the dependency order modprobe gives), and guest/initramfs-init as /init.
# Uncompressed: the kernel unpacks it at once, even under emulation.
ird="$rootfs/tmp/initramfs"
mkdir -p "$ird/bin" "$ird/lib/modules" "$ird/dev"
# The kernel opens /dev/console for /init before anything is mounted.
mknod -m 600 "$ird/dev/console" c 5 1
cp "$rootfs/usr/bin/busybox" "$ird/bin/busybox"
install -m 755 "$here/guest/initramfs-init" "$ird/init"
: >"$ird/modules"
in_chroot modprobe --all --show-depends --set-version "$kver" virtio_blk ext4 >"$partial/modules.txt"
while read -r kind path _; do
    [[ $kind == insmod ]] || continue # "builtin NAME" needs nothing
    name=${path##*/}
    name=${name%.xz}
    grep -qxF "$name" "$ird/modules" && continue
    in_chroot python3 -c '
import lzma, shutil, sys
src = sys.argv[1]
with (lzma.open(src) if src.endswith(".xz") else open(src, "rb")) as f:
    shutil.copyfileobj(f, sys.stdout.buffer)' "$path" >"$ird/lib/modules/$name"
    echo "$name" >>"$ird/modules"
done <"$partial/modules.txt"
grep -qx 'virtio_blk.ko' "$ird/modules" || { echo "build-guest: no virtio_blk module for $kver" >&2; exit 1; }
in_chroot sh -c 'cd /tmp/initramfs && find . | LC_ALL=C sort | cpio -o -H newc --quiet' >"$partial/initrd.img"
rm -rf "$ird"

umount "$rootfs/dev/pts" 2>/dev/null || true
umount "$rootfs/dev" "$rootfs/sys" "$rootfs/proc"
rm -f "$rootfs/usr/sbin/policy-rc.d" "$unsafe_io"
in_chroot_clean() { rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*_Packages* "$rootfs"/tmp/*; }
in_chroot_clean

step "ext4 image"
# Room for the tree plus 1 GiB of scratch space for the tests; sparse on disk.
used_mib=$(du -sm "$rootfs" | cut -f1)
size_mib=$((used_mib + 1024))
mkfs.ext4 -q -F -L ecroot -d "$rootfs" "$partial/rootfs.img" "${size_mib}M"
rm -rf "$rootfs"

rm -rf "$out"
mv "$partial" "$out"
step "done: $out"
