# Shared helpers for the end-to-end scripts: network namespaces joined by a bridge, generated
# configs, real failoverd processes, and polling with deadlines (never a fixed sleep to wait).
# Source it first thing; it installs the cleanup trap. Needs root, ip(8) and python3.
#
# Layout: namespace $E2E_ID-br holds bridge br0; node i lives in namespace $E2E_ID-n$i with
# eth0 = 10.77.0.$i/24 (and fd77::$i/64), whose veth peer vp$i is a port of br0.
# Everything (namespaces, processes, files) is created by this script and removed on exit.

set -euo pipefail

: "${FAILOVERD_BIN:?set FAILOVERD_BIN to the failoverd binary}"
: "${FAILOVERCTL_BIN:?set FAILOVERCTL_BIN to the failoverctl binary}"
: "${FAILOVERD_SOURCE_DIR:?set FAILOVERD_SOURCE_DIR to the source tree}"

if [ "$(id -u)" -ne 0 ]; then
    echo "e2e: needs root (network namespaces)" >&2
    exit 1
fi

# The distribution's interpreter: a version manager's shim can take seconds to start.
E2E_PYTHON=$(command -v /usr/bin/python3 || command -v python3)
E2E_ID="fo$$"
E2E_WORK=$(mktemp -d /tmp/failoverd-e2e.XXXXXX)
E2E_NAMESPACES=()
E2E_BACKGROUND=()           # pids of helpers (fake engines, servers)
declare -A E2E_PID=()       # node number -> failoverd pid
E2E_NODE_COUNT=0
E2E_STARTED_MS=$(($(date +%s%N) / 1000000))
E2E_INSTANCE=web

e2e_log() {
    printf '[%6s s] %s\n' "$(e2e_elapsed)" "$*" >&2
}

e2e_elapsed() {
    local ms=$(($(date +%s%N) / 1000000 - E2E_STARTED_MS))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

e2e_now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

e2e_dump() {
    local i
    for ((i = 1; i <= E2E_NODE_COUNT; i++)); do
        echo "---- node n$i: last lines of its log" >&2
        tail -n 60 "$E2E_WORK/n$i/log" >&2 2>/dev/null || true
    done
    if [ -s "$E2E_WORK/hooks.log" ]; then
        echo "---- hooks.log" >&2
        cat "$E2E_WORK/hooks.log" >&2
    fi
}

e2e_cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ]; then
        e2e_dump
    fi
    local pid ns
    {
        for pid in "${E2E_PID[@]}" "${E2E_BACKGROUND[@]}"; do
            kill -KILL "$pid"
        done
        for ns in "${E2E_NAMESPACES[@]}"; do
            # Only namespaces this script created; whatever still runs inside them is ours.
            for pid in $(ip netns pids "$ns"); do
                kill -KILL "$pid"
            done
            ip netns del "$ns"
        done
        wait
    } 2>/dev/null
    rm -rf "$E2E_WORK"
    if [ "$rc" -eq 0 ]; then
        e2e_log "PASS $(basename "$0")"
    else
        e2e_log "FAIL $(basename "$0") (exit $rc)"
    fi
    exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

e2e_fail() {
    e2e_log "FAIL: $*"
    exit 1
}

# e2e_wait DESCRIPTION SECONDS COMMAND...: polls COMMAND every 100 ms until it succeeds.
e2e_wait() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$(($(e2e_now_ms) + seconds * 1000))
    until "$@"; do
        if [ "$(e2e_now_ms)" -gt "$deadline" ]; then
            e2e_fail "no $what within $seconds s"
        fi
        sleep 0.1
    done
}

# e2e_net N: the bridge namespace and N node namespaces.
e2e_net() {
    local n=$1 i ns br="$E2E_ID-br"
    ip netns add "$br"
    E2E_NAMESPACES+=("$br")
    ip -n "$br" link set lo up
    ip -n "$br" link add br0 type bridge
    ip -n "$br" link set br0 up
    for ((i = 1; i <= n; i++)); do
        ns="$E2E_ID-n$i"
        ip netns add "$ns"
        E2E_NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up
        ip -n "$ns" link add eth0 type veth peer name "vp$i" netns "$br"
        ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
        ip -n "$ns" addr add "fd77::$i/64" dev eth0 nodad
        ip -n "$ns" link set eth0 up
        ip -n "$br" link set "vp$i" master br0
        ip -n "$br" link set "vp$i" up
        mkdir -p "$E2E_WORK/n$i"
    done
    E2E_NODE_COUNT=$n
    head -c 32 /dev/urandom >"$E2E_WORK/auth.key"
    chmod 600 "$E2E_WORK/auth.key"
    cat >"$E2E_WORK/hook.sh" <<EOF
#!/bin/sh
# \$1: which hook. One line per run: node hook instance old->new reason.
echo "\$FAILOVERD_NODE \$1 \$FAILOVERD_INSTANCE \$FAILOVERD_OLD_ROLE->\$FAILOVERD_ROLE \$FAILOVERD_REASON" >>"$E2E_WORK/hooks.log"
EOF
    chmod 755 "$E2E_WORK/hook.sh"
    : >"$E2E_WORK/hooks.log"
}

# e2e_link_down I / e2e_link_up I: cut or restore node I's cable (its bridge port).
e2e_link_down() { ip -n "$E2E_ID-br" link set "vp$1" down; }
e2e_link_up() { ip -n "$E2E_ID-br" link set "vp$1" up; }

# e2e_config I PRIORITY [ADVERT_INTERVAL] [EXTRA_CHECK_SECTION_FILE]: writes node I's config.
# Every node has an exec check `app` that fails while $E2E_WORK/nI/fail exists, and the hooks
# append to hooks.log. Set E2E_CHECKS to override the instance's check list.
e2e_config() {
    local i=$1 priority=$2 interval=${3:-100ms} extra=${4:-} j dir="$E2E_WORK/n$1"
    {
        echo "[node]"
        echo "name = n$i"
        echo "listen = 10.77.0.$i:5405"
        echo "control_socket = $dir/control.sock"
        echo "state_dir = $dir/state"
        echo
        echo "[cluster]"
        for ((j = 1; j <= E2E_NODE_COUNT; j++)); do
            if [ "$j" -ne "$i" ]; then
                echo "peer = 10.77.0.$j:5405"
            fi
        done
        echo "auth_key_file = $E2E_WORK/auth.key"
        echo "advert_interval = $interval"
        echo
        echo "[provider]"
        echo "type = none"
        echo
        echo "[check.app]"
        echo "type = exec"
        echo "command = /bin/sh -c 'test ! -e $dir/fail'"
        echo "interval = 200ms"
        echo "timeout = 200ms"
        echo "rise = 1"
        echo "fall = 1"
        echo
        if [ -n "$extra" ]; then
            cat "$extra"
            echo
        fi
        echo "[instance.$E2E_INSTANCE]"
        echo "reserved_ip = 203.0.113.10"
        echo "priority = $priority"
        echo "checks = ${E2E_CHECKS:-app}"
        echo "notify_master = $E2E_WORK/hook.sh notify_master"
        echo "notify_backup = $E2E_WORK/hook.sh notify_backup"
        echo "notify_fault = $E2E_WORK/hook.sh notify_fault"
        echo "notify_stop = $E2E_WORK/hook.sh notify_stop"
        echo "notify = $E2E_WORK/hook.sh notify"
    } >"$dir/failoverd.conf"
}

# e2e_start I: starts node I's failoverd in its namespace and waits until it is ready.
# E2E_ENV may hold NAME=VALUE words added to its environment.
e2e_start() {
    local i=$1 dir="$E2E_WORK/n$1"
    echo "==== start $(date +%T.%N)" >>"$dir/log"
    rm -f "$dir/pid" "$dir/exit"
    # A watcher subshell waits for the daemon and records its exit status, so the daemon is
    # not a job of this shell (no "Killed" notices) and its status is still known.
    (
        # shellcheck disable=SC2086 # E2E_ENV: extra NAME=VALUE words for env(1)
        ip netns exec "$E2E_ID-n$i" env ${E2E_ENV:-} "$FAILOVERD_BIN" \
            --config "$dir/failoverd.conf" --log-level debug >>"$dir/log" 2>&1 &
        echo $! >"$dir/pid"
        status=0
        wait $! || status=$?
        echo "$status" >"$dir/exit"
    ) 2>/dev/null &
    e2e_wait "pid of n$i" 10 test -s "$dir/pid"
    E2E_PID[$i]=$(cat "$dir/pid")
    e2e_wait "ready n$i" 20 e2e_is_ready "$i"
    e2e_log "n$i started (pid ${E2E_PID[$i]})"
}

e2e_is_ready() {
    local phase
    phase=$(e2e_json "$1" 'd["phase"]' 2>/dev/null) || return 1
    [ "$phase" = running ]
}

# e2e_kill I SIGNAL: signals node I's daemon; for KILL, TERM and INT waits (at most 20 s) until
# it has exited and leaves its exit status in E2E_LAST_EXIT.
e2e_kill() {
    local i=$1 sig=$2 pid=${E2E_PID[$1]}
    kill "-$sig" "$pid"
    e2e_log "sent SIG$sig to n$i"
    if [ "$sig" = KILL ] || [ "$sig" = TERM ] || [ "$sig" = INT ]; then
        e2e_wait "exit of n$i after SIG$sig" 20 test -s "$E2E_WORK/n$i/exit"
        unset "E2E_PID[$i]"
        E2E_LAST_EXIT=$(cat "$E2E_WORK/n$i/exit")
        e2e_log "n$i exited with status $E2E_LAST_EXIT"
    fi
}

e2e_ctl() {
    local i=$1
    shift
    "$FAILOVERCTL_BIN" "$@" --socket "$E2E_WORK/n$i/control.sock"
}

# e2e_json I EXPR: EXPR (Python, `d` is node I's status document); fails when not running.
e2e_json() {
    local doc
    doc=$(e2e_ctl "$1" status --json 2>/dev/null) || return 1
    "$E2E_PYTHON" -c '
import json, sys
d = json.loads(sys.argv[1])
v = eval(sys.argv[2], {"d": d, "inst": lambda name="'"$E2E_INSTANCE"'": next(i for i in d["instances"] if i["name"] == name)})
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "$doc" "$2"
}

# e2e_role I: node I's role for $E2E_INSTANCE ("" when the daemon does not answer).
e2e_role() {
    e2e_json "$1" 'inst()["role"]' 2>/dev/null || true
}

e2e_role_is() {
    [ "$(e2e_role "$1")" = "$2" ]
}

# e2e_masters: how many running nodes say MASTER.
e2e_masters() {
    local i count=0
    for i in "${!E2E_PID[@]}"; do
        if [ "$(e2e_role "$i")" = MASTER ]; then
            count=$((count + 1))
        fi
    done
    echo "$count"
}

e2e_masters_are() {
    [ "$(e2e_masters)" = "$1" ]
}

# e2e_hook_seen PATTERN: a line of hooks.log matches the extended regex PATTERN.
e2e_hook_seen() {
    grep -Eq -- "$1" "$E2E_WORK/hooks.log"
}

# e2e_line_of PATTERN: number of the first hooks.log line matching PATTERN (empty if none).
e2e_line_of() {
    grep -En -- "$1" "$E2E_WORK/hooks.log" | head -n1 | cut -d: -f1
}

e2e_expect() {
    local what=$1
    shift
    if ! "$@"; then
        e2e_fail "expected: $what"
    fi
    e2e_log "ok: $what"
}
