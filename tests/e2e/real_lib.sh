# Real containers and real traffic; source after lib.sh.
#
# Each node namespace runs its own Docker engine (tests/docker/docker_lib.sh) with app
# containers web-1..web-K (BusyBox httpd, port 8080+K, Docker healthcheck), and failoverd with
# a docker check on that engine (provider = digitalocean against the fake API, 0.5 s actions).
# The fake's edge stands for the reserved IP at $E2E_EDGE_ADDR: a connection to port P goes to
# port P of whichever node the fake says holds the IP. A client in namespace $E2E_ID-client
# sends numbered requests to the edge at 50/s and logs each one (tests/traffic/client.py).
# Without a usable Docker engine the calling test is skipped (exit 0) with the reason.

source "$FAILOVERD_SOURCE_DIR/tests/docker/docker_lib.sh"

REAL_CLIENT_ADDR=10.77.0.200
REAL_CONTAINERS=3
REAL_SERVING_PORT=8081 # web-1's port: the client's target

# real_require_docker: skips the calling test when no engine can run here.
real_require_docker() {
    if ! dk_available; then
        e2e_log "SKIP $(basename "$0"): no Docker engine can run here: $DK_UNAVAILABLE_REASON"
        exit 0
    fi
}

# real_setup N [PRIORITY...]: N nodes with engines and $REAL_CONTAINERS app containers each,
# node i's priority the i-th argument (default: n1 150, others 100 - i); n1 ends up MASTER
# holding the IP. E2E_INSTANCE_EXTRA and E2E_CHECKS pass through to e2e_config.
real_setup() {
    local n=$1 i priority
    shift
    real_require_docker
    E2E_PROVIDER=digitalocean
    E2E_CHECKS=${E2E_CHECKS:-containers}
    E2E_EDGE_PORTS="$((DK_PORT_BASE + 1))-$((DK_PORT_BASE + REAL_CONTAINERS))"
    e2e_net "$n"
    e2e_start_fake_api
    local nodes=()
    for ((i = 1; i <= n; i++)); do
        nodes+=("$i")
    done
    dk_start_engines "${nodes[@]}"
    for ((i = 1; i <= n; i++)); do
        dk_run_apps "$i" "$REAL_CONTAINERS"
        dk_check_conf "$i" "$REAL_CONTAINERS"
        priority=${1:-$((i == 1 ? 150 : 100 - i))}
        [ $# -eq 0 ] || shift
        e2e_config "$i" "$priority" "${REAL_ADVERT:-100ms}" "$E2E_WORK/n$i/containers.conf"
    done
    e2e_start 1
    e2e_wait "n1 MASTER" 30 e2e_role_is 1 MASTER
    for ((i = 2; i <= n; i++)); do
        e2e_start "$i"
        e2e_wait "n$i BACKUP" 30 e2e_role_is "$i" BACKUP
    done
    e2e_wait "the IP on n1" 30 e2e_holder_is 1
}

# real_client_start: the client namespace on the bridge and the client in it, sending to the
# edge at $REAL_RATE (default 50) requests/s, each with a $REAL_TIMEOUT (default 2 s) limit:
# generous, because a loaded CI machine must not turn into "lost requests".
real_client_start() {
    local ns="$E2E_ID-client"
    if ! ip netns list | grep -q "^$ns\b"; then
        ip netns add "$ns"
        E2E_NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up
        ip -n "$ns" link add eth0 type veth peer name vpc netns "$E2E_ID-br"
        ip -n "$ns" addr add "$REAL_CLIENT_ADDR/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$E2E_ID-br" link set vpc master br0
        ip -n "$E2E_ID-br" link set vpc up
    fi
    REAL_REQUESTS="$E2E_WORK/requests-$(date +%s%N).jsonl"
    ip netns exec "$ns" "$E2E_PYTHON" "$FAILOVERD_SOURCE_DIR/tests/traffic/client.py" \
        --target "$E2E_EDGE_ADDR" --port "$REAL_SERVING_PORT" --rate "${REAL_RATE:-50}" \
        --timeout "${REAL_TIMEOUT:-2}" --out "$REAL_REQUESTS" --live "$E2E_WORK/client-live.json" \
        2>>"$E2E_WORK/client.log" &
    REAL_CLIENT_PID=$!
    E2E_BACKGROUND+=("$REAL_CLIENT_PID")
    e2e_wait "the client's first answer" 30 real_answered_since 0
}

# real_client_stop: stops the client (it finishes the requests in flight).
real_client_stop() {
    kill -TERM "$REAL_CLIENT_PID" 2>/dev/null || true
    local t
    for ((t = 0; t < 100; t++)); do
        kill -0 "$REAL_CLIENT_PID" 2>/dev/null || return 0
        sleep 0.1
    done
    e2e_fail "the client did not stop within 10 s"
}

# real_now: epoch seconds with fractions, the clock of the client's and the fake's logs.
real_now() {
    date +%s.%N
}

# real_last_move_time: when the IP last changed holder (epoch seconds, from the fake's log).
real_last_move_time() {
    tail -n 1 "$E2E_WORK/api/holder.jsonl" | "$E2E_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["t"])'
}

# real_answered_since T [NODE]: some request sent after T was answered (by NODE).
real_answered_since() {
    "$E2E_PYTHON" - "$REAL_REQUESTS" "$1" "${2:-}" <<'EOF2'
import json, sys
path, since, node = sys.argv[1], float(sys.argv[2]), sys.argv[3]
try:
    lines = open(path).read().splitlines()
except FileNotFoundError:
    sys.exit(1)
for line in lines:
    try:
        r = json.loads(line)
    except ValueError:
        continue  # the line being written
    if r["sent"] > since and r["ok"] and (not node or r["node"] == node):
        sys.exit(0)
sys.exit(1)
EOF2
}

# real_invariants FROM TO HEALTHY_NODE MOVE_T [BAD_NODE/BAD_CONTAINER] [MAX_FAILED]: over the
# requests sent in [FROM, TO]: every request sent after the IP moved (MOVE_T) and answered was
# answered by HEALTHY_NODE; none sent after MOVE_T was answered by BAD (a container the check
# reported unhealthy); at most MAX_FAILED failed other than by timing out (default: any
# number). Logs a summary line (sent, failed, longest failure run) and sets REAL_FAILED (the
# failures other than timeouts: refused, reset, HTTP errors).
real_invariants() {
    local out
    out=$("$E2E_PYTHON" - "$FAILOVERD_SOURCE_DIR/tests/traffic" "$REAL_REQUESTS" "$@" <<'EOF2'
import json, sys
sys.path.insert(0, sys.argv[1])
import summarize
path, start, end, healthy, move_t = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], float(sys.argv[6])
bad = sys.argv[7] if len(sys.argv) > 7 else ""
max_failed = int(sys.argv[8]) if len(sys.argv) > 8 and sys.argv[8] != "" else None
requests = [r for r in summarize.load(path) if start <= r["sent"] <= end]
s = summarize.summarize(requests)
problems = []
for r in requests:
    if r["sent"] <= move_t or not r["ok"]:
        continue
    if r["node"] != healthy:
        problems.append("request %d sent %.3f s after the move was answered by %s/%s" %
                        (r["seq"], r["sent"] - move_t, r["node"], r["container"]))
    if bad and "%s/%s" % (r["node"], r["container"]) == bad:
        problems.append("request %d was answered by %s, reported unhealthy" % (r["seq"], bad))
after = [r for r in requests if r["sent"] > move_t]
if not any(r["ok"] for r in after):
    problems.append("no request sent after the move was answered")
# A timeout is the one failure a busy machine makes on its own (the client or the edge not
# scheduled in time); a refused or reset connection or an HTTP error is the service's.
lost = s["failed"] - s["failures_by_error"].get("timeout", 0)
if max_failed is not None and lost > max_failed:
    problems.append("%d requests failed (at most %d allowed): %s" %
                    (lost, max_failed, json.dumps(s["failures_by_error"])))
print("%d %d %d %.2f %s" % (s["sent"], s["failed"], s["failures_by_error"].get("timeout", 0),
                            s["longest_failure_s"],
                            ",".join("%s:%d" % kv for kv in sorted(s["by_node"].items()))))
for p in problems[:10]:
    print("PROBLEM " + p)
EOF2
    ) || e2e_fail "could not read the client's requests"
    local sent failed timeouts longest nodes
    read -r sent failed timeouts longest nodes <<<"$(head -n 1 <<<"$out")"
    REAL_FAILED=$((failed - timeouts))
    e2e_log "traffic: $sent requests, $failed failed ($timeouts timed out)," \
        "longest failure run ${longest} s, answered by $nodes"
    if grep -q '^PROBLEM' <<<"$out"; then
        grep '^PROBLEM' <<<"$out" | sed 's/^PROBLEM /    /' >&2
        e2e_fail "traffic invariants broken"
    fi
}
