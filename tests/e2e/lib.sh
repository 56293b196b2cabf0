# Shared helpers for the end-to-end scripts: network namespaces joined by a bridge, generated
# configs, real failoverd processes, and polling with deadlines (never a fixed sleep to wait).
# Source it first thing; it installs the cleanup trap. Needs root, ip(8) and python3.
#
# Layout: namespace $E2E_ID-br holds bridge br0; node i lives in namespace $E2E_ID-n$i with
# eth0 = 10.77.0.$i/24 (and fd77::$i/64), whose veth peer vp$i is a port of br0. The fake
# DigitalOcean API (e2e_start_fake_api) lives in $E2E_ID-api at 10.77.0.250, on the same bridge;
# node i is droplet $((E2E_DROPLET_BASE + i)) there.
# Everything (namespaces, processes, files) is created by this script and removed on exit.
# The demo and the benchmark source it too: E2E_QUIET=1 keeps only failures (no progress lines).

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
E2E_CLEANUP_HOOKS=()        # functions run first on exit, before anything is killed
declare -A E2E_PID=()       # node number -> failoverd pid
E2E_NODE_COUNT=0
E2E_STARTED_MS=$(($(date +%s%N) / 1000000))
E2E_INSTANCE=web
E2E_RESERVED_IP=203.0.113.10
E2E_DROPLET_BASE=3000000000
E2E_API_ADDR=10.77.0.250
E2E_API_PORT=""             # set by e2e_start_fake_api
E2E_EDGE_ADDR=10.77.0.100   # the reserved IP's stand-in (E2E_EDGE_PORTS set: the fake's edge)
E2E_EDGE_PORTS=${E2E_EDGE_PORTS:-}
E2E_META_PORT=""
E2E_QUIET=${E2E_QUIET:-0}

e2e_log() {
    if [ "$E2E_QUIET" != 1 ]; then
        printf '[%6s s] %s\n' "$(e2e_elapsed)" "$*" >&2
    fi
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
    if [ -n "$E2E_API_PORT" ]; then
        echo "---- fake API: holder log" >&2
        cat "$E2E_WORK/api/holder.jsonl" >&2 2>/dev/null || true
        echo "---- fake API: last requests" >&2
        tail -n 40 "$E2E_WORK/api/requests.jsonl" >&2 2>/dev/null || true
        echo "---- fake API: its own log" >&2
        tail -n 20 "$E2E_WORK/api/log" >&2 2>/dev/null || true
    fi
}

e2e_cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    # Quiet callers (the demo, the benchmark) interrupted by Ctrl-C need no logs.
    if [ "$rc" -ne 0 ] && { [ "$E2E_QUIET" != 1 ] || [ "$rc" -lt 128 ]; }; then
        e2e_dump
    fi
    local pid ns hook
    # Hooks stop what must end gracefully (Docker engines unmount what they mounted).
    for hook in "${E2E_CLEANUP_HOOKS[@]}"; do
        "$hook"
    done
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
    if [ "$E2E_QUIET" = 1 ]; then
        exit "$rc"
    elif [ "$rc" -eq 0 ]; then
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
    printf '[%6s s] FAIL: %s\n' "$(e2e_elapsed)" "$*" >&2
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
# E2E_PROVIDER=digitalocean points the node at the fake API (e2e_start_fake_api first) with
# its own token file, droplet_id = $E2E_DROPLET_ID (default auto, from the fake metadata),
# reconcile_interval = $E2E_RECONCILE (default 1s). E2E_PEERS_FROM_TAG=TAG replaces the peer
# lines with peers_from_tag. E2E_INSTANCE_EXTRA: more lines for the instance section.
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
        if [ -n "${E2E_PEERS_FROM_TAG:-}" ]; then
            echo "peers_from_tag = $E2E_PEERS_FROM_TAG"
        else
            for ((j = 1; j <= E2E_NODE_COUNT; j++)); do
                if [ "$j" -ne "$i" ]; then
                    echo "peer = 10.77.0.$j:5405"
                fi
            done
        fi
        echo "auth_key_file = $E2E_WORK/auth.key"
        echo "advert_interval = $interval"
        echo
        echo "[provider]"
        if [ "${E2E_PROVIDER:-none}" = digitalocean ]; then
            [ -n "$E2E_API_PORT" ] || e2e_fail "e2e_config: start the fake API first"
            echo "type = digitalocean"
            echo "token_file = $dir/do-token"
            echo "droplet_id = ${E2E_DROPLET_ID:-auto}"
            echo "api_base_url = http://$E2E_API_ADDR:$E2E_API_PORT"
            echo "metadata_base_url = http://$E2E_API_ADDR:$E2E_META_PORT"
            echo "request_timeout = ${E2E_REQUEST_TIMEOUT:-2s}"
            echo "reconcile_interval = ${E2E_RECONCILE:-1s}"
        else
            echo "type = ${E2E_PROVIDER:-none}"
        fi
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
        if [ -n "${E2E_INSTANCE_EXTRA:-}" ]; then
            printf '%s\n' "$E2E_INSTANCE_EXTRA"
        fi
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
    # On stdin: with many instances the document is larger than one argument may be.
    "$E2E_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d, "inst": lambda name="'"$E2E_INSTANCE"'": next(i for i in d["instances"] if i["name"] == name)})
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "$2" <<<"$doc"
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

# e2e_start_fake_api [OPTIONS_JSON]: the fake DigitalOcean API (tests/fakes/fake_do_api.py) in
# namespace $E2E_ID-api, at $E2E_API_ADDR on the bridge (call e2e_net first). One droplet per
# node: private address 10.77.0.i, tag "failoverd", metadata answered by source address. The
# reserved IP $E2E_RESERVED_IP starts unassigned (E2E_FAKE_HOLDER=I puts it on node I). Each
# node gets the token in $E2E_WORK/nI/do-token (mode 0600). OPTIONS_JSON goes to the fake's
# options (default: actions complete after 0.5 s). Sets E2E_API_PORT and E2E_META_PORT.
# With E2E_EDGE_PORTS (e.g. 8081-8083) the fake also runs the reserved-IP edge on
# $E2E_EDGE_ADDR: each TCP connection to one of those ports goes to the same port of the node
# that holds the IP at that moment (tests/fakes/README.md).
e2e_start_fake_api() {
    local options=${1:-'{"action_delay": 0.5}'} ns="$E2E_ID-api" dir="$E2E_WORK/api" i token
    mkdir -p "$dir"
    ip netns add "$ns"
    E2E_NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name vpa netns "$E2E_ID-br"
    ip -n "$ns" addr add "$E2E_API_ADDR/24" dev eth0
    local edge=()
    if [ -n "$E2E_EDGE_PORTS" ]; then
        # The edge: connections to the reserved IP's stand-in go to the holder's own address.
        ip -n "$ns" addr add "$E2E_EDGE_ADDR/24" dev eth0
        edge=(--edge-listen "$E2E_EDGE_ADDR" --edge-ports "$E2E_EDGE_PORTS"
            --edge-ip "$E2E_RESERVED_IP" --edge-log "$dir/edge.jsonl")
    fi
    ip -n "$ns" link set eth0 up
    ip -n "$E2E_ID-br" link set vpa master br0
    ip -n "$E2E_ID-br" link set vpa up
    token="dop_v1_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    "$E2E_PYTHON" - "$dir/setup.json" "$E2E_NODE_COUNT" "$E2E_DROPLET_BASE" "$E2E_RESERVED_IP" \
        "${E2E_FAKE_HOLDER:-0}" "$token" "$options" <<'EOF2'
import json, sys
path, nodes, base, ip, holder, token, options = sys.argv[1:]
nodes, base, holder = int(nodes), int(base), int(holder)
setup = {
    "tokens": {token: {"name": "e2e", "scopes": ["*"]}},
    "droplets": [{"id": base + i, "name": "n%d" % i, "region": "nyc3",
                  "private_ip": "10.77.0.%d" % i, "public_ip": "198.51.100.%d" % i,
                  "tags": ["failoverd"], "has_anchor": True,
                  "metadata_clients": ["10.77.0.%d" % i]} for i in range(1, nodes + 1)],
    "reserved_ips": [{"ip": ip, "region": "nyc3", "droplet_id": base + holder if holder else None}],
    "options": json.loads(options),
}
with open(path, "w") as f:
    json.dump(setup, f, indent=1)
EOF2
    for ((i = 1; i <= E2E_NODE_COUNT; i++)); do
        (umask 077 && echo "$token" >"$E2E_WORK/n$i/do-token")
    done
    ip netns exec "$ns" "$E2E_PYTHON" "$FAILOVERD_SOURCE_DIR/tests/fakes/fake_do_api.py" \
        --setup "$dir/setup.json" --listen "$E2E_API_ADDR:0" --metadata-listen "$E2E_API_ADDR:0" \
        --holder-log "$dir/holder.jsonl" --request-log "$dir/requests.jsonl" \
        --ready-file "$dir/ready.json" "${edge[@]}" >>"$dir/log" 2>&1 &
    E2E_BACKGROUND+=($!)
    e2e_wait "the fake API's ready file" 20 test -s "$dir/ready.json"
    read -r E2E_API_PORT E2E_META_PORT < <("$E2E_PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["api_port"], d["metadata_port"])
' "$dir/ready.json")
    e2e_log "fake API on $E2E_API_ADDR:$E2E_API_PORT, metadata on port $E2E_META_PORT"
}

# e2e_fake_json EXPR: EXPR (Python, `d` is the fake's /_fake/state, `ip` the reserved IP).
e2e_fake_json() {
    ip netns exec "$E2E_ID-api" "$E2E_PYTHON" -c '
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    d = json.load(r)
v = eval(sys.argv[2], {"d": d, "ip": sys.argv[3]})
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "http://$E2E_API_ADDR:$E2E_API_PORT/_fake/state" "$1" "$E2E_RESERVED_IP"
}

# e2e_fake_post PATH JSON: a control request to the fake (/_fake/options, /_fake/faults, ...).
e2e_fake_post() {
    ip netns exec "$E2E_ID-api" curl -sS -f --max-time 5 -X POST \
        -H 'content-type: application/json' -d "$2" \
        "http://$E2E_API_ADDR:$E2E_API_PORT$1" >/dev/null
}

# e2e_holder: who holds the reserved IP at the fake: a node number, "none", or a droplet id
# that is no node's ("" when the fake does not answer).
e2e_holder() {
    local id
    id=$(e2e_fake_json 'd["reserved_ips"][ip]["droplet_id"]' 2>/dev/null) || return 0
    if [ "$id" = None ] || [ "$id" = null ]; then
        echo none
    elif [ "$id" -gt "$E2E_DROPLET_BASE" ] && [ "$id" -le $((E2E_DROPLET_BASE + E2E_NODE_COUNT)) ]; then
        echo $((id - E2E_DROPLET_BASE))
    else
        echo "$id"
    fi
}

e2e_holder_is() {
    [ "$(e2e_holder)" = "$1" ]
}

# e2e_moves: how many times the reserved IP changed holder so far (lines of the holder log).
e2e_moves() {
    local log="$E2E_WORK/api/holder.jsonl"
    if [ -e "$log" ]; then
        grep -c "\"ip\": *\"${E2E_RESERVED_IP//./\\.}\"" "$log" || true
    else
        echo 0
    fi
}

# e2e_moves_show [FIRST]: the holder log from move FIRST on (default 1), one readable line each.
e2e_moves_show() {
    "$E2E_PYTHON" - "$E2E_WORK/api/holder.jsonl" "${1:-1}" "$E2E_DROPLET_BASE" "$E2E_STARTED_MS" <<'EOF2'
import json, sys
path, first, base, started = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def who(d):
    if d is None:
        return "none"
    return "n%d" % (d - base) if 0 < d - base < 1000 else str(d)
try:
    lines = open(path).read().splitlines()
except FileNotFoundError:
    lines = []
for n, line in enumerate(lines[first - 1:], start=first):
    m = json.loads(line)
    print("  move %d at %.2f s: %s -> %s (by %s)" % (n, m["t"] - started / 1000.0, who(m["from"]),
                                                   who(m["to"]), m["by"]))
EOF2
}

# e2e_expect_holder WHAT NODE BASE MIN [MAX]: the holder is NODE and the IP moved MIN..MAX
# times (MAX defaults to MIN) since the holder log had BASE lines; logs holder and moves.
e2e_expect_holder() {
    local what=$1 node=$2 base=$3 min=$4 max=${5:-$4} holder moves
    holder=$(e2e_holder)
    moves=$(($(e2e_moves) - base))
    e2e_log "$what: holder n$holder, moves $moves (total $(e2e_moves))"
    e2e_moves_show $((base + 1)) >&2
    [ "$holder" = "$node" ] || e2e_fail "$what: the IP is on $holder, expected n$node"
    if [ "$moves" -lt "$min" ] || [ "$moves" -gt "$max" ]; then
        e2e_fail "$what: the IP moved $moves times, expected $min..$max"
    fi
}

# e2e_holder_stays NODE SECONDS: the holder is NODE on every poll for SECONDS (it does not
# move back and forth after a failover); a poll the loaded fake did not answer is skipped.
e2e_holder_stays() {
    local node=$1 deadline=$(($(e2e_now_ms) + $2 * 1000)) holder
    while [ "$(e2e_now_ms)" -lt "$deadline" ]; do
        holder=$(e2e_holder)
        if [ -n "$holder" ] && [ "$holder" != "$node" ]; then
            e2e_fail "the IP left n$node for $holder"
        fi
        sleep 0.2
    done
}

# e2e_docker I [COUNT]: a fake Docker engine in node I's namespace with COUNT (default 2)
# running containers web-1..web-COUNT (label app=shop), and $E2E_WORK/nI/containers.conf, a
# [check.containers] section for it (interval $E2E_DOCKER_INTERVAL, default 300ms, rise and
# fall 1): pass that file to e2e_config and put `containers` in E2E_CHECKS.
e2e_docker() {
    local i=$1 count=${2:-2} dir="$E2E_WORK/n$1"
    echo "$count" >"$dir/docker.count"
    e2e_docker_set "$i" running
    ip netns exec "$E2E_ID-n$i" "$E2E_PYTHON" "$FAILOVERD_SOURCE_DIR/tests/fakes/fake_docker_engine.py" \
        "$dir/docker.sock" --state "$dir/docker.json" 2>>"$dir/engine.log" &
    E2E_BACKGROUND+=($!)
    cat >"$dir/containers.conf" <<EOF2
[check.containers]
type = docker
socket = $dir/docker.sock
label = app=shop
expect = $count
interval = ${E2E_DOCKER_INTERVAL:-300ms}
timeout = ${E2E_DOCKER_INTERVAL:-300ms}
rise = 1
fall = 1
EOF2
    e2e_wait "the fake engine of n$i" 20 test -S "$dir/docker.sock"
}

# e2e_docker_set I STATE: the last container (web-COUNT) on node I is now STATE (running,
# exited, ...); the others keep running.
e2e_docker_set() {
    local dir="$E2E_WORK/n$1" count c sep=""
    count=$(cat "$dir/docker.count")
    {
        echo '{"containers": ['
        for ((c = 1; c <= count; c++)); do
            if [ "$c" -eq "$count" ]; then
                printf '%s{"name": "web-%d", "state": "%s", "labels": {"app": "shop"}}\n' "$sep" "$c" "$2"
            else
                printf '%s{"name": "web-%d", "state": "running", "labels": {"app": "shop"}}\n' "$sep" "$c"
            fi
            sep=","
        done
        echo ']}'
    } >"$dir/docker.json.tmp"
    mv "$dir/docker.json.tmp" "$dir/docker.json"
}

# e2e_partition I J / e2e_heal I J: drop all traffic between nodes I and J (a blackhole route
# for the other's address in each namespace); both still reach the bridge and the fake API.
e2e_partition() {
    ip -n "$E2E_ID-n$1" route add blackhole "10.77.0.$2/32"
    ip -n "$E2E_ID-n$2" route add blackhole "10.77.0.$1/32"
    e2e_log "partitioned n$1 from n$2"
}
e2e_heal() {
    ip -n "$E2E_ID-n$1" route del blackhole "10.77.0.$2/32"
    ip -n "$E2E_ID-n$2" route del blackhole "10.77.0.$1/32"
    e2e_log "healed n$1 <-> n$2"
}

# e2e_expect_token_unseen: the API token appears in no node's log, status or hook output.
e2e_expect_token_unseen() {
    local token i
    token=$(head -n1 "$E2E_WORK/n1/do-token")
    for ((i = 1; i <= E2E_NODE_COUNT; i++)); do
        if grep -qF -- "$token" "$E2E_WORK/n$i/log" "$E2E_WORK/hooks.log" 2>/dev/null; then
            e2e_fail "the API token appears in n$i's log or in hooks.log"
        fi
        if [ -n "${E2E_PID[$i]:-}" ] && e2e_ctl "$i" status --json 2>/dev/null | grep -qF -- "$token"; then
            e2e_fail "the API token appears in n$i's status"
        fi
    done
    e2e_log "ok: the API token appears in no log, status or hook output"
}

# The usual pair: n1 (priority 150) MASTER and n2 (100) BACKUP, both started together.
# E2E_CHECKS, E2E_ADVERT and the like apply as for e2e_config.
e2e_pair() {
    e2e_net 2
    e2e_config 1 150
    e2e_config 2 100
    e2e_start 1
    e2e_start 2
    e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
    e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
}

# The pair on the fake DigitalOcean API: n1 holds the IP before n2 starts, so the first move
# is n1's own. Sets E2E_PROVIDER; `$1` is e2e_start_fake_api's options.
e2e_do_pair() {
    E2E_PROVIDER=digitalocean
    e2e_net 2
    e2e_start_fake_api "$@"
    e2e_config 1 150
    e2e_config 2 100
    e2e_start 1
    e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
    e2e_wait "the IP on n1" 30 e2e_holder_is 1
    e2e_start 2
    e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
}
