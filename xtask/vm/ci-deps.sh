#!/usr/bin/env bash
# What a fresh machine (Debian bookworm, root, no KVM needed) needs before
# `cargo xtask vm-test`; `.ci/run` calls it. Installs only debootstrap and the
# archive keyring, and unpacks qemu-system-x86_64 into the vm-test directory
# (never `apt-get install qemu-system-x86`: it would replace the host's newer
# qemu-utils). The rest (e2fsprogs' mkfs.ext4 -d, util-linux's unshare and
# setpriv, dpkg, apt) is part of every Debian system.
#
# usage: xtask/vm/ci-deps.sh   (from anywhere; honours CARGO_TARGET_DIR and
#                               ENFORCECORE_VM_DIR like the xtask does)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends debootstrap debian-archive-keyring e2fsprogs >/dev/null

# The same directory `cargo xtask vm-test` looks in: qemu-<first 12 hex digits
# of the sha256 of fetch-qemu.sh> (xtask/src/vm/qemu.rs).
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target="$root/$target"
vm_dir=${ENFORCECORE_VM_DIR:-$target/vm}
[[ $vm_dir == /* ]] || vm_dir="$root/$vm_dir"
key=$(sha256sum "$here/fetch-qemu.sh" | cut -c1-12)
if [[ -f $vm_dir/qemu-$key/env ]]; then
    echo "ci-deps: qemu already unpacked in $vm_dir/qemu-$key"
else
    bash "$here/fetch-qemu.sh" "$vm_dir/qemu-$key"
fi
