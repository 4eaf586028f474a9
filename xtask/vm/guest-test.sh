#!/usr/bin/env bash
# The vm-test guest script: runs inside the Debian guest as a systemd service
# (enforcecore-vm-test.service), as root, after boot. Its stdout is the host's
# view of the test; the last line it prints is the verdict marker
#   ENFORCECORE-VM-TEST: PASS
#   ENFORCECORE-VM-TEST: FAIL step=NAME exit=N
# which `cargo xtask vm-test` parses.
#
# Layout of the payload disk (mounted read-only at $PAYLOAD):
#   guest-test.sh       this script
#   bin/enforcecore     the release binary under test
#   policies/           the repository's policies/ (if any)
#   systemd/            the repository's systemd/ units (if any)
#   expected-version    what `enforcecore --version` must print
#
# Adding a step: write a function `step_NAME` and add NAME to STEPS below. A step
# fails by returning non-zero (set -e does it for any failing command), or by
# calling `fail "what went wrong"`. A step whose feature is not in this build yet
# calls `skip "why"` and returns 0; skips are listed in the summary.
set -euo pipefail

PAYLOAD=${PAYLOAD:-/opt/enforcecore-test}
EC=/usr/bin/enforcecore
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

STEPS=(
    systemd_pid1
    cgroup_v2
    cgroup_v2_limits
    landlock
    install
    version
    policy_check
    doctor
    run_echo
    daemon_install
    daemon_start
    daemon_calls
    daemon_cgroup
    daemon_reload
    daemon_stop
)

CURRENT_STEP=setup
STEP_SKIPPED=0
SKIPPED=()
PASSED=()

step_header() {
    CURRENT_STEP=$1
    printf '\n=== step %s (t=%ss)\n' "$1" "$SECONDS"
}

skip() {
    echo "--- SKIP $CURRENT_STEP: $*"
    SKIPPED+=("$CURRENT_STEP: $*")
    STEP_SKIPPED=1
}

fail() {
    echo "--- FAIL $CURRENT_STEP: $*" >&2
    return 1
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    if [[ $2 != "$3" ]]; then
        fail "$1: expected '$3', got '$2'"
    fi
    echo "ok: $1 = '$2'"
}

# expect_words WHAT LIST WORD...: every WORD is in the space-separated LIST
expect_words() {
    local what=$1 haystack=$2 word
    shift 2
    for word in "$@"; do
        if [[ " $haystack " != *" $word "* ]]; then
            fail "$what: '$word' missing from '$haystack'"
        fi
    done
    echo "ok: $what has $*"
}

# Does the binary implement this subcommand (and not only its skeleton)?
# has_option SUBCOMMAND... -- OPTION: `enforcecore SUBCOMMAND --help` lists OPTION.
has_option() {
    local args=() opt
    while [[ $1 != -- ]]; do args+=("$1"); shift; done
    opt=$2
    "$EC" "${args[@]}" --help 2>/dev/null | grep -q -- "$opt"
}

# The skeleton's placeholder for a subcommand that is not written yet.
NOT_YET='is not available in this build yet'

on_exit() {
    local rc=$?
    set +e
    if ((rc != 0)); then
        echo
        echo "=== diagnostics after failure in step $CURRENT_STEP (exit $rc)"
        echo "--- systemctl --failed"
        systemctl --failed --no-pager
        echo "--- journal (this boot, warnings and worse, last 80 lines)"
        journalctl -b --no-pager -p warning -n 80
        if [[ -f /etc/systemd/system/enforcecore.service ]]; then
            echo "--- journal of enforcecore.service (last 60 lines)"
            journalctl -b --no-pager -u enforcecore.service -n 60
        fi
        echo
        echo "ENFORCECORE-VM-TEST: FAIL step=$CURRENT_STEP exit=$rc"
    else
        echo
        echo "=== summary: ${#PASSED[@]} steps passed, ${#SKIPPED[@]} skipped (t=${SECONDS}s)"
        local s
        for s in "${SKIPPED[@]}"; do echo "skipped: $s"; done
        echo "ENFORCECORE-VM-TEST: PASS"
    fi
    exit "$rc"
}
trap on_exit EXIT

# --- steps ------------------------------------------------------------------

step_systemd_pid1() {
    local exe state
    exe=$(readlink /proc/1/exe)
    expect_eq "PID 1" "$exe" /usr/lib/systemd/systemd
    systemctl --version | head -n 1
    local version
    version=$(systemctl --version | awk 'NR == 1 { print $2 }')
    ((version >= 257)) || fail "systemd $version, want >= 257"
    # Wait for boot to finish; this service is Type=simple, so it is not a job
    # the boot waits for.
    state=$(timeout 300 systemctl is-system-running --wait || true)
    if [[ $state != running ]]; then
        systemctl --failed --no-pager || true
        fail "system state '$state', want 'running'"
    fi
    echo "ok: system state running"
    uname -r
}

step_cgroup_v2() {
    expect_eq "/sys/fs/cgroup type" "$(stat -fc %T /sys/fs/cgroup)" cgroup2fs
    # No v1 hierarchy anywhere.
    if grep -E '^[^ ]+ [^ ]+ cgroup ' /proc/mounts; then
        fail "cgroup v1 hierarchies are mounted"
    fi
    expect_words "root cgroup.controllers" "$(cat /sys/fs/cgroup/cgroup.controllers)" cpu memory pids
    # This service's own cgroup: systemd placed us under system.slice.
    expect_eq "own cgroup" "$(cat /proc/self/cgroup)" "0::/system.slice/enforcecore-vm-test.service"
}

# systemd delegates the v2 controllers: a transient scope gets the limits it asks for.
step_cgroup_v2_limits() {
    local unit=ec-vmtest-limits.scope cg
    systemd-run --quiet --scope --unit="$unit" -p MemoryMax=64M -p TasksMax=16 -p CPUQuota=50% \
        sleep 30 &
    local pid=$!
    # The scope exists once systemd-run has moved the sleep into it.
    for _ in $(seq 1 50); do
        systemctl is-active --quiet "$unit" && break
        sleep 0.2
    done
    systemctl is-active --quiet "$unit" || fail "$unit did not start"
    cg=/sys/fs/cgroup$(systemctl show -P ControlGroup "$unit")
    expect_eq "memory.max" "$(cat "$cg/memory.max")" 67108864
    expect_eq "pids.max" "$(cat "$cg/pids.max")" 16
    expect_eq "cpu.max" "$(cat "$cg/cpu.max")" "50000 100000"
    systemctl stop "$unit"
    wait "$pid" || true
}

step_landlock() {
    expect_words "active LSMs" "$(tr , ' ' </sys/kernel/security/lsm)" landlock
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI.
    local abi
    abi=$(python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
SYS_landlock_create_ruleset = 444
abi = libc.syscall(SYS_landlock_create_ruleset, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
if abi < 0:
    raise SystemExit("landlock_create_ruleset: " + os.strerror(ctypes.get_errno()))
print(abi)
')
    ((abi >= 7)) || fail "Landlock ABI $abi, want >= 7"
    echo "ok: Landlock ABI $abi"
}

step_install() {
    install -m 755 "$PAYLOAD/bin/enforcecore" "$EC"
    if [[ -d $PAYLOAD/systemd ]] && compgen -G "$PAYLOAD/systemd/*" >/dev/null; then
        install -d /usr/local/share/enforcecore/systemd
        cp -a "$PAYLOAD/systemd/." /usr/local/share/enforcecore/systemd/
        echo "systemd units staged:" /usr/local/share/enforcecore/systemd/*
    fi
    install -d /etc/enforcecore
    if [[ -d $PAYLOAD/policies ]]; then
        cp -a "$PAYLOAD/policies/." /etc/enforcecore/
    fi
    echo "installed $EC; policies under /etc/enforcecore: $(find /etc/enforcecore -name '*.yaml' | wc -l) files"
}

step_version() {
    expect_eq "enforcecore --version" "$("$EC" --version)" "$(cat "$PAYLOAD/expected-version")"
}

step_policy_check() {
    if ! "$EC" policy check --help >/dev/null 2>&1; then
        skip "no 'policy check' subcommand in this build"
        return 0
    fi
    local files=()
    mapfile -t files < <(find /etc/enforcecore -name '*.yaml' | sort)
    if ((${#files[@]} == 0)); then
        skip "no policies/*.yaml in the repository"
        return 0
    fi
    "$EC" policy check "${files[@]}"
    echo "ok: ${#files[@]} policies check"
}

step_doctor() {
    local out rc=0
    out=$("$EC" doctor 2>&1) || rc=$?
    if ((rc != 0)) && [[ $out == *"$NOT_YET"* ]]; then
        skip "'doctor' is not implemented in this build"
        return 0
    fi
    echo "$out"
    ((rc == 0)) || fail "enforcecore doctor exited $rc"
}

step_run_echo() {
    if ! has_option run -- --policy; then
        skip "'run --policy' is not implemented in this build"
        return 0
    fi
    local policy
    policy=$(find /etc/enforcecore -name strict.yaml | sort | head -n 1)
    if [[ -z $policy ]]; then
        skip "no strict.yaml among the policies"
        return 0
    fi
    local out rc=0
    out=$("$EC" run --policy "$policy" -- /bin/echo hello) || rc=$?
    ((rc == 0)) || fail "enforcecore run exited $rc"
    expect_eq "output of /bin/echo hello under $policy" "$out" hello
}

# --- the daemon under systemd ---------------------------------------------------

SOCK=/run/enforcecore/enforcecore.sock
TRAIL=/var/lib/enforcecore/audit/daemon.jsonl
# Not under /root: the unit's ProtectHome=yes hides it from the daemon.
KEYS=/etc/enforcecore/keys

# The policy the daemon serves: agent `agent1` may call echo, sleep and cat;
# `outsider` may connect (socket group) but is no agent. Tools run as the
# sysusers.d tool user. $1: extra tools appended to the agent's list.
write_daemon_policy() {
    local agent1 outsider extra=${1:-} extra_tools=${2:-}
    agent1=$(id -u agent1)
    outsider=$(id -u outsider)
    cat >/etc/enforcecore/policy.yaml <<EOF
version: 1
name: vm-daemon
sandbox:
  user: enforcecore-tool
  group: enforcecore-tool
  filesystem:
    read: [/usr, /etc/ld.so.cache]
    exec: [/usr/bin, /bin]
    rules:
      - { path: /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }
      - { path: /usr/lib64/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }
      - { path: /dev/null, access: [read_file, write_file, truncate] }
  limits:
    memory: 96MiB
    pids: 24
    cpu: 0.5
    wall_time: 120s
redaction:
  streams: [stdout, stderr]
  detectors: all
  strategy: placeholder
tools:
  echo: {command: /usr/bin/echo}
  sleep: {command: /usr/bin/sleep}
  cat: {command: /usr/bin/cat}
$extra_tools
agents:
  - name: agent1
    uids: [$agent1]
    tools: [echo, sleep, cat$extra]
  - name: nobody-else
    uids: [65534]
    tools: [echo]
EOF
    test -n "$outsider"
}

step_daemon_install() {
    if ! has_option serve -- --config; then
        skip "'serve' is not implemented in this build"
        return 0
    fi
    local units=$PAYLOAD/systemd
    install -m 644 "$units/enforcecore.service" "$units/enforcecore.socket" /etc/systemd/system/
    install -D -m 644 "$units/sysusers.d/enforcecore.conf" /etc/sysusers.d/enforcecore.conf
    install -D -m 644 "$units/tmpfiles.d/enforcecore.conf" /etc/tmpfiles.d/enforcecore.conf
    systemd-sysusers
    systemd-tmpfiles --create /etc/tmpfiles.d/enforcecore.conf
    getent passwd enforcecore-tool
    getent group enforcecore
    useradd --create-home --groups enforcecore agent1
    useradd --create-home --groups enforcecore outsider
    useradd --create-home stranger
    "$EC" audit keygen --out "$KEYS"
    local key
    key=$(find "$KEYS" -type f ! -name '*.pub' | head -n 1)
    sed -e "s|^  # key: .*|  key: $key|" "$units/daemon.yaml" >/etc/enforcecore/daemon.yaml
    grep -q "key: $key" /etc/enforcecore/daemon.yaml || fail "the key line was not set in daemon.yaml"
    write_daemon_policy
    "$EC" policy check /etc/enforcecore/policy.yaml
    systemd-analyze verify /etc/systemd/system/enforcecore.service /etc/systemd/system/enforcecore.socket
    echo "ok: systemd-analyze verify"
    systemctl daemon-reload
}

step_daemon_start() {
    [[ -f /etc/systemd/system/enforcecore.service ]] || { skip "daemon not installed"; return 0; }
    systemctl start enforcecore.socket
    expect_eq "socket mode and group" "$(stat -c '%a %G' "$SOCK")" "660 enforcecore"
    # Type=notify: start returns once the daemon sent READY=1.
    systemctl start enforcecore.service
    expect_eq "service state" "$(systemctl show -P ActiveState enforcecore.service)" active
    expect_eq "service status" "$(systemctl show -P StatusText enforcecore.service)" "serving policy vm-daemon"
    local pid
    pid=$(systemctl show -P MainPID enforcecore.service)
    echo "daemon pid $pid, cgroup $(cat /proc/"$pid"/cgroup)"
    grep -E '^Cap(Bnd|Eff)' /proc/"$pid"/status
    grep NoNewPrivs /proc/"$pid"/status
    echo "--- systemd-analyze security enforcecore.service"
    systemd-analyze security --no-pager enforcecore.service | tail -n 3
    local kinds
    kinds=$(python3 -c 'import json,sys; print(" ".join(json.loads(l)["kind"] for l in open(sys.argv[1])))' "$TRAIL")
    expect_words "trail after start" "$kinds" supervisor-started policy-loaded
}

step_daemon_calls() {
    systemctl is-active --quiet enforcecore.service || { skip "daemon not running"; return 0; }
    local out rc
    out=$(runuser -u agent1 -- "$EC" call echo -- hello alice@example.com)
    expect_eq "agent1: echo through the daemon (redacted)" "$out" "hello [REDACTED:EMAIL]"
    out=$(echo "piped stdin" | runuser -u agent1 -- "$EC" call cat)
    expect_eq "agent1: cat from stdin" "$out" "piped stdin"
    rc=0; runuser -u outsider -- "$EC" call echo -- hi || rc=$?
    expect_eq "outsider (socket group, no agent): exit" "$rc" 126
    rc=0; runuser -u agent1 -- "$EC" call sh -- -c id || rc=$?
    expect_eq "agent1 asking for an unlisted tool: exit" "$rc" 126
    rc=0; runuser -u stranger -- "$EC" call echo -- hi 2>/dev/null || rc=$?
    expect_eq "stranger (not in the socket group): exit" "$rc" 125
    local denials
    denials=$(python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["kind"] == "denial"))' "$TRAIL")
    ((denials >= 2)) || fail "expected >= 2 denial records, found $denials"
    echo "ok: $denials denials recorded"
}

step_daemon_cgroup() {
    systemctl is-active --quiet enforcecore.service || { skip "daemon not running"; return 0; }
    local svc cg="" pid
    svc=/sys/fs/cgroup$(systemctl show -P ControlGroup enforcecore.service)
    runuser -u agent1 -- "$EC" call sleep -- 60 &
    pid=$!
    for _ in $(seq 1 150); do
        cg=$(dirname "$(grep -l . "$svc"/runs/*/cgroup.procs 2>/dev/null | head -n 1)" 2>/dev/null || true)
        [[ -n $cg && $cg != . ]] && break
        sleep 0.2
    done
    [[ -n $cg && $cg != . ]] || fail "no run cgroup with a process under $svc/runs"
    echo "run cgroup: $cg"
    expect_eq "memory.max" "$(cat "$cg/memory.max")" 100663296
    expect_eq "pids.max" "$(cat "$cg/pids.max")" 24
    expect_eq "cpu.max" "$(cat "$cg/cpu.max")" "50000 100000"
    local tool
    tool=$(head -n 1 "$cg/cgroup.procs")
    expect_eq "the tool's user" "$(ps -o user= -p "$tool")" enforcecore-tool
    expect_eq "the daemon's own cgroup" "$(cat /proc/"$(systemctl show -P MainPID enforcecore.service)"/cgroup)" \
        "0::$(systemctl show -P ControlGroup enforcecore.service)/supervisor"
    # Cancelling the client kills the run.
    kill "$pid"
    wait "$pid" || true
    for _ in $(seq 1 150); do
        [[ -d $cg ]] || break
        [[ -z $(cat "$cg/cgroup.procs" 2>/dev/null) ]] && break
        sleep 0.2
    done
    [[ ! -d $cg || -z $(cat "$cg/cgroup.procs" 2>/dev/null) ]] || fail "the run's processes outlived its client"
    echo "ok: the cancelled run's cgroup is empty"
}

step_daemon_reload() {
    systemctl is-active --quiet enforcecore.service || { skip "daemon not running"; return 0; }
    local rc out
    rc=0; runuser -u agent1 -- "$EC" call ok 2>/dev/null || rc=$?
    expect_eq "tool 'ok' before the reload: exit" "$rc" 126
    write_daemon_policy ", ok" "  ok: {command: /usr/bin/true}"
    "$EC" reload
    runuser -u agent1 -- "$EC" call ok
    echo "ok: good reload over the socket"
    rc=0; runuser -u agent1 -- "$EC" reload 2>/dev/null || rc=$?
    expect_eq "reload by a non-admin: exit" "$rc" 126
    cp /etc/enforcecore/policy.yaml /root/policy.good
    printf 'version: 1\nname: broken\nsandbox: {limits: {memory: lots}}\n' >/etc/enforcecore/policy.yaml
    rc=0; out=$("$EC" reload 2>&1) || rc=$?
    echo "$out"
    expect_eq "bad reload: exit" "$rc" 1
    systemctl reload enforcecore.service
    systemctl is-active --quiet enforcecore.service || fail "the daemon stopped after a bad reload"
    runuser -u agent1 -- "$EC" call ok
    echo "ok: the old policy still serves after two bad reloads"
    cp /root/policy.good /etc/enforcecore/policy.yaml
    systemctl reload enforcecore.service
    local kinds
    kinds=$(python3 -c 'import json,sys; print(" ".join(json.loads(l)["kind"] for l in open(sys.argv[1])))' "$TRAIL")
    expect_words "trail after reloads" "$kinds" policy-rejected
}

step_daemon_stop() {
    systemctl is-active --quiet enforcecore.service || { skip "daemon not running"; return 0; }
    runuser -u agent1 -- "$EC" call sleep -- 300 &
    local pid=$! rc=0 out
    sleep 2
    systemctl stop enforcecore.service
    wait "$pid" || rc=$?
    echo "client of the run in flight exited $rc"
    expect_eq "service result" "$(systemctl show -P Result enforcecore.service)" success
    local pub
    pub=$(find "$KEYS" -name '*.pub' | head -n 1)
    "$EC" audit verify --key "$pub" "$TRAIL"
    # audit.append_only (default) under the unit's CAP_LINUX_IMMUTABLE: chattr +a.
    local attr
    attr=$(python3 -c 'import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
flags = struct.unpack("i", fcntl.ioctl(fd, 0x80086601, bytes(4)))[0]  # FS_IOC_GETFLAGS
print("append-only" if flags & 0x20 else "plain")' "$TRAIL")
    expect_eq "daemon trail attribute" "$attr" append-only
    "$EC" audit show "$TRAIL" | tail -n 12
    local last
    last=$(python3 -c 'import json,sys; print(" ".join(json.loads(l)["kind"] for l in open(sys.argv[1])))' "$TRAIL" | awk '{ print $(NF-1) }')
    expect_eq "last record before the final checkpoint" "$last" supervisor-stopped
    # Socket activation: a client connecting starts the daemon again.
    out=$(runuser -u agent1 -- "$EC" call echo -- activated)
    expect_eq "call through socket activation" "$out" activated
    systemctl stop enforcecore.service enforcecore.socket
}

# --- main -------------------------------------------------------------------

echo "vm-test guest: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
for name in "${STEPS[@]}"; do
    step_header "$name"
    STEP_SKIPPED=0
    "step_$name"
    ((STEP_SKIPPED)) || PASSED+=("$name")
done
CURRENT_STEP="(all done)"
