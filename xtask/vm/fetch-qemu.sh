#!/usr/bin/env bash
# Unpack qemu-system-x86_64 and the libraries it needs into a private directory,
# without installing anything: `apt-get install qemu-system-x86` would replace
# packages the host already has (qemu-utils from another release).
#
# usage: fetch-qemu.sh DEST
#   DEST/root   the unpacked packages (dpkg -x)
#   DEST/debs   the downloaded .deb files
#   DEST/env    shell lines: QEMU=…, QEMU_DATA_DIRS=…, QEMU_LD_LIBRARY_PATH=…
#
# Needs: apt lists (`apt-get update`), dpkg, ldd. Touches nothing outside DEST
# except apt's own download cache.
set -euo pipefail

dest=$(realpath -m "${1:?usage: fetch-qemu.sh DEST}")
work="$dest.partial"
rm -rf "$work"
mkdir -p "$work/debs" "$work/root"

# The packages we want; their dependencies follow, except those already installed.
roots=(qemu-system-x86 qemu-system-data seabios)
# qemu-system-common holds the TCG accelerator module (accel-tcg-x86_64.so), which
# we need, beside helpers and display/audio/usb modules, which pull spice, audio
# and usb stacks that a headless serial-console guest never loads: take the
# package, not its dependencies.
nodeps=" qemu-system-common "

policy=$(apt-cache policy qemu-system-x86 2>/dev/null || true)
if [[ $policy != *"Candidate: "[0-9]* ]]; then
    echo "fetch-qemu: apt knows no qemu-system-x86; run 'apt-get update' first" >&2
    exit 1
fi

installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

# Breadth-first over Depends/PreDepends; of an alternative group the first member.
declare -A seen=()
queue=("${roots[@]}")
want=()
while ((${#queue[@]})); do
    pkg=${queue[0]}
    queue=("${queue[@]:1}")
    [[ -n ${seen[$pkg]:-} ]] && continue
    seen[$pkg]=1
    installed "$pkg" && continue
    want+=("$pkg")
    [[ $nodeps == *" $pkg "* ]] && continue
    alt=0
    while IFS= read -r line; do
        # "  Depends: foo", "  |Depends: foo" (first of an alternative group),
        # "  PreDepends: foo"; virtual packages show as "<foo>".
        [[ $line =~ ^\ +(\|?)(Pre)?Depends:\ (.+)$ ]] || continue
        dep=${BASH_REMATCH[3]}
        if ((alt)); then
            alt=$([[ -n ${BASH_REMATCH[1]} ]] && echo 1 || echo 0)
            continue
        fi
        alt=$([[ -n ${BASH_REMATCH[1]} ]] && echo 1 || echo 0)
        [[ $dep == \<* ]] && continue
        queue+=("${dep%%:*}")
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$pkg")
done

echo "fetch-qemu: downloading ${want[*]}" >&2
(cd "$work/debs" && apt-get download -q "${want[@]}") >&2
for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$work/root"
done

# What xtask reads: the binary, its firmware/option-ROM directories (-L), the
# library path and the module directory (the TCG accelerator is a module).
cat >"$work/env" <<ENV
QEMU=$dest/root/usr/bin/qemu-system-x86_64
QEMU_DATA_DIRS=$dest/root/usr/share/qemu:$dest/root/usr/share/seabios
QEMU_LD_LIBRARY_PATH=$dest/root/usr/lib/x86_64-linux-gnu:$dest/root/lib/x86_64-linux-gnu
QEMU_MODULE_DIR=$dest/modules
ENV
# Only the TCG accelerator: with the whole module directory qemu tries (and
# warns about) display and audio modules whose libraries we never fetched.
mkdir -p "$work/modules"
ln -s ../root/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so "$work/modules/"

rm -rf "$dest"
mv "$work" "$dest"

# Every shared library must resolve, and the emulator must start, now rather
# than at boot time.
# shellcheck source=/dev/null
source "$dest/env"
for obj in "$QEMU" "$QEMU_MODULE_DIR/accel-tcg-x86_64.so"; do
    missing=$(LD_LIBRARY_PATH=$QEMU_LD_LIBRARY_PATH ldd "$obj" | grep 'not found' || true)
    if [[ -n $missing ]]; then
        echo "fetch-qemu: $obj has unresolved libraries:" >&2
        echo "$missing" >&2
        rm -rf "$dest"
        exit 1
    fi
done
LD_LIBRARY_PATH=$QEMU_LD_LIBRARY_PATH QEMU_MODULE_DIR=$QEMU_MODULE_DIR \
    "$QEMU" -accel tcg -machine none -display none -nodefaults -monitor none -S \
    -version >&2
