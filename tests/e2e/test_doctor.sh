#!/usr/bin/env bash
# `failoverctl doctor` end to end against the fake DigitalOcean API (and its metadata service,
# through the /droplet/{id} prefix) on loopback, the fake Docker Engine on a unix socket, and
# two real daemons on loopback for the peer/auth-key item. A good config exits 0; each injected
# failure exits 1 with its FAIL line. No namespaces needed: everything is on 127.0.0.1.
set -euo pipefail

src=${FAILOVERD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ctl=${FAILOVERCTL_BIN:-$src/build/failoverctl}
daemon=${FAILOVERD_BIN:-$src/build/failoverd}
# Debian's python3 starts faster than a version manager's shim.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

work=$(mktemp -d /tmp/failoverd-e2e-doctor-XXXXXX)
background_pids=()
cleanup() {
    local rc=$? pid
    set +e
    for pid in "${background_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${background_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$work"/*.log; do
            [ -s "$f" ] && { echo "---- $f"; tail -n 30 "$f"; }
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

failures=0
pass() { echo "ok   - $*"; }
fail() {
    echo "FAIL - $*"
    failures=$((failures + 1))
}

# Waits for a condition with a deadline; polling a cheap test is the wait, not a sleep for time.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            return 1
        fi
        sleep 0.05
    done
}

# The fake API: droplets n1 (this node) and n2 in nyc3, both tagged failoverd; 203.0.113.10 in
# nyc3 and 203.0.113.20 in sfo3; a full-scope token, a read-only one (without tag:read) and one
# without droplet:read.
cat >"$work/setup.json" <<'EOF'
{"tokens": {"dop_v1_good": {"name": "ci", "scopes": ["*"]},
            "dop_v1_readonly": {"name": "ro",
                                "scopes": ["reserved_ip:read", "droplet:read", "account:read"]},
            "dop_v1_nodroplet": {"name": "nd",
                                 "scopes": ["reserved_ip:read", "reserved_ip:update",
                                            "account:read", "tag:read"]}},
 "droplets": [{"id": 3000000001, "name": "n1", "region": "nyc3", "private_ip": "10.77.0.1",
               "tags": ["failoverd"]},
              {"id": 3000000002, "name": "n2", "region": "nyc3", "private_ip": "10.77.0.2",
               "tags": ["failoverd"]}],
 "reserved_ips": [{"ip": "203.0.113.10", "region": "nyc3", "droplet_id": null},
                  {"ip": "203.0.113.20", "region": "sfo3", "droplet_id": null}]}
EOF
"$python" "$src/tests/fakes/fake_do_api.py" --setup "$work/setup.json" --listen 127.0.0.1:0 \
    --metadata-listen 127.0.0.1:0 --ready-file "$work/fake.ready" \
    --request-log "$work/requests.jsonl" 2>"$work/fake.log" &
background_pids+=($!)
wait_for 30 test -s "$work/fake.ready" || {
    echo "fake API did not start"
    exit 1
}
read -r api_port metadata_port < <("$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["api_port"], d["metadata_port"])' "$work/fake.ready")
api=http://127.0.0.1:$api_port
metadata=http://127.0.0.1:$metadata_port/droplet/3000000001

cp "$src/tests/fixtures/docker/all_up.json" "$work/docker-state.json"
"$python" "$src/tests/fakes/fake_docker_engine.py" "$work/docker.sock" \
    --state "$work/docker-state.json" 2>"$work/docker.log" &
background_pids+=($!)
wait_for 30 test -S "$work/docker.sock" || {
    echo "fake docker engine did not start"
    exit 1
}

# fake_control PATH [JSON]: GET (or POST JSON to) a control route of the fake; prints the answer.
fake_control() {
    "$python" -c '
import sys, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(sys.argv[1], data=data, headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=10).read().decode())' "$api$1" "${@:2}"
}
fake_options() { fake_control /_fake/options "$1" >/dev/null; }

printf 'dop_v1_good\n' >"$work/token"
printf 'dop_v1_bad\n' >"$work/token-bad"
printf 'dop_v1_readonly\n' >"$work/token-readonly"
printf 'dop_v1_nodroplet\n' >"$work/token-nodroplet"
chmod 600 "$work"/token*
head -c 32 /dev/urandom >"$work/auth.key"
chmod 600 "$work/auth.key"
printf '#!/bin/sh\nexit 0\n' >"$work/hook.sh"
chmod 755 "$work/hook.sh"

# config NAME [KEY=VALUE...]: writes $work/NAME.conf from the good config with overrides.
# Keys: token, ip, metadata, hook, docker_socket, type.
config() {
    local name=$1
    shift
    local token=$work/token ip=203.0.113.10 md=$metadata hook=$work/hook.sh
    local docker_socket=$work/docker.sock type=digitalocean kv
    for kv in "$@"; do
        case $kv in
            token=*) token=${kv#token=} ;;
            ip=*) ip=${kv#ip=} ;;
            metadata=*) md=${kv#metadata=} ;;
            hook=*) hook=${kv#hook=} ;;
            docker_socket=*) docker_socket=${kv#docker_socket=} ;;
            type=*) type=${kv#type=} ;;
        esac
    done
    {
        echo "[node]"
        echo "name = n1"
        echo "listen = 127.0.0.1:5405"
        echo "control_socket = $work/ctl-$name.sock"
        echo "state_dir = $work/state-$name"
        echo
        echo "[cluster]"
        echo "auth_key_file = $work/auth.key"
        if [ "$type" = digitalocean ]; then
            echo "peers_from_tag = failoverd"
        fi
        echo
        echo "[provider]"
        echo "type = $type"
        if [ "$type" = digitalocean ]; then
            echo "token_file = $token"
            echo "droplet_id = auto"
            echo "api_base_url = $api"
            echo "metadata_base_url = $md"
        fi
        echo
        echo "[check.app]"
        echo "type = docker"
        echo "socket = $docker_socket"
        echo "min = 1"
        echo
        echo "[instance.web]"
        echo "reserved_ip = $ip"
        echo "checks = app"
        echo "notify_master = $hook"
    } >"$work/$name.conf"
}

# doctor NAME EXPECTED_EXIT [FIXED_STRING...]: runs doctor on $work/NAME.conf and checks the
# exit status and that each string is in the output (one line per item).
doctor() {
    local name=$1 want=$2 rc=0 pattern ok=1
    shift 2
    "$ctl" doctor --config "$work/$name.conf" --timeout 3s >"$work/$name.out" 2>&1 || rc=$?
    if [ "$rc" -ne "$want" ]; then
        ok=0
        fail "$name: exit $rc, expected $want"
    fi
    for pattern in "$@"; do
        if ! grep -qF -- "$pattern" "$work/$name.out"; then
            ok=0
            fail "$name: no line with '$pattern'"
        fi
    done
    if grep -qF -- "dop_v1_" "$work/$name.out"; then
        ok=0
        fail "$name: the output shows a token"
    fi
    if [ "$ok" -eq 1 ]; then
        pass "$name (exit $rc)"
    else
        sed 's/^/    /' "$work/$name.out"
    fi
}

config good
doctor good 0 "ok   config: " "ok   token file: $work/token, mode 0600" \
    "ok   token: accepted" "ok   droplet id: 3000000001 (from $metadata/metadata/v1/id)" \
    "ok   droplet region: nyc3" "ok   reserved IP web: 203.0.113.10 in nyc3, unassigned" \
    "ok   region web: both in nyc3" "ok   assign web: the token may assign 203.0.113.10" \
    "ok   peers from tag: 1 peer(s): n2 10.77.0.2" "ok   docker app: $work/docker.sock answers" \
    "ok   hook web notify_master: $work/hook.sh is executable" \
    "skip peers: cannot ask the daemon whether peers answer" \
    "start failoverd, then run doctor again"
# The assign probe changed nothing at the fake.
holder=$(fake_control /_fake/state | "$python" -c '
import json, sys
d = json.load(sys.stdin)
print(d["reserved_ips"]["203.0.113.10"]["droplet_id"], d["counters"]["moves"])')
if [ "$holder" = "None 0" ]; then
    pass "the assign probe moved nothing"
else
    fail "the assign probe changed the fake: holder and moves $holder"
fi
if grep -q '"status": 422' "$work/requests.jsonl" || grep -q '"status":422' "$work/requests.jsonl"; then
    pass "the assign probe got 422 at the fake"
else
    fail "no 422 in the fake's request log"
fi

"$ctl" doctor --config "$work/good.conf" --json >"$work/good.json" 2>&1 || true
if "$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True and d["failed"] == 0, d
names = [i["item"] for i in d["items"]]
assert "token" in names and "assign web" in names, names
assert all(i["status"] in ("ok", "skip") for i in d["items"]), d
' "$work/good.json"; then
    pass "--json: ok, every item ok or skip"
else
    fail "--json document"
    cat "$work/good.json"
fi

config mode
chmod 644 "$work/token"
doctor mode 1 "FAIL token file: $work/token has mode 0644" "fix: chmod 600 $work/token"
chmod 600 "$work/token"

config badtoken token="$work/token-bad"
doctor badtoken 1 "FAIL token: token rejected: HTTP 401" "(request " \
    "fix: create a new token with reserved_ip:read, reserved_ip:update and droplet:read (plus tag:read for peers_from_tag)"

config readonly token="$work/token-readonly"
doctor readonly 1 "ok   token: accepted" "ok   reserved IP web: 203.0.113.10 in nyc3" \
    "FAIL assign web: the token may not assign 203.0.113.10 (no reserved_ip:update): HTTP 403" \
    "(request " "FAIL peers from tag: cannot list droplets tagged failoverd: HTTP 403" \
    "listing droplets by tag needs droplet:read and tag:read"

# Without droplet:read the reserved IP's answer has no droplet key: the holder is unknown.
config nodroplet token="$work/token-nodroplet"
doctor nodroplet 1 "ok   reserved IP web: 203.0.113.10 in nyc3, holder unknown" \
    "FAIL holder web: the answer for 203.0.113.10 has no droplet, so failoverd cannot tell who holds it" \
    "fix: add droplet:read to the token" "ok   assign web: the token may assign 203.0.113.10"

config unknownip ip=203.0.113.99
doctor unknownip 1 "FAIL reserved IP web: 203.0.113.99 is not in this account: HTTP 404" \
    "(request "

config region ip=203.0.113.20
doctor region 1 "FAIL region web: 203.0.113.20 is in sfo3, this droplet in nyc3" \
    "fix: a reserved IP moves only between droplets of its region"

config metadata
fake_options '{"metadata_mode": "refuse"}'
doctor metadata 1 "FAIL droplet id: no answer from $metadata/metadata/v1/id" \
    "fix: run doctor on the droplet"
fake_options '{"metadata_mode": "ok"}'

config hook hook="$work/missing-hook.sh"
doctor hook 1 "FAIL config: " "FAIL hook web notify_master: $work/missing-hook.sh: No such file" \
    "fix: install it or fix notify_master in [instance.web]"

config docker docker_socket="$work/no-docker.sock"
doctor docker 1 "FAIL docker app: $work/no-docker.sock: No such file or directory" \
    "fix: start Docker, or set socket = PATH in [check.app]"

config none type=none
doctor none 0 "skip token: provider = none" "skip droplet id: provider = none"

# Peers and auth keys through a running daemon: n1 and n2 on loopback, n2 with another key.
port_of() {
    "$python" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
p1=$(port_of)
p2=$(port_of)
head -c 32 /dev/urandom >"$work/other.key"
chmod 600 "$work/other.key"
peer_config() {
    local name=$1 me=$2 peer=$3 key=$4
    cat >"$work/$name.conf" <<EOF
[node]
name = $name
listen = 127.0.0.1:$me
control_socket = $work/$name.sock
state_dir = $work/state-$name

[cluster]
peer = 127.0.0.1:$peer
auth_key_file = $key
advert_interval = 100ms

[provider]
type = none

[instance.web]
reserved_ip = 203.0.113.10
EOF
}
peer_config d1 "$p1" "$p2" "$work/auth.key"
peer_config d2 "$p2" "$p1" "$work/other.key"
for n in d1 d2; do
    "$daemon" --config "$work/$n.conf" --log-level warn 2>"$work/$n.log" &
    background_pids+=($!)
done
bad_mac_seen() {
    "$ctl" status --json --socket "$work/d1.sock" 2>/dev/null | "$python" -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["peers"] and d["peers"][0]["bad_mac"] > 0 else 1)' 2>/dev/null
}
if wait_for 30 bad_mac_seen; then
    doctor d1 1 "FAIL peer 127.0.0.1:$p2: " "failed the MAC check: it uses a different auth key" \
        "fix: copy $work/auth.key (the same bytes) to every node"
else
    fail "d1 never counted a bad MAC from d2"
fi
cp "$work/auth.key" "$work/other.key"
kill -HUP "${background_pids[-1]}"
verified_recently() {
    "$ctl" status --json --socket "$work/d1.sock" 2>/dev/null | "$python" -c '
import json, sys
d = json.load(sys.stdin)
v = d["peers"][0]["last_verified_s_ago"]
sys.exit(0 if v is not None and v < 1 else 1)' 2>/dev/null
}
if wait_for 30 verified_recently; then
    doctor d1 0 "ok   peer 127.0.0.1:$p2: answers with the same auth key"
else
    fail "d1 never verified an advert from d2 after d2 reloaded the shared key"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all doctor cases passed"
