# Shared by the `failoverctl rollout` scenarios; source after lib.sh.
#
# Each node namespace runs failoverd (provider = digitalocean against the fake API), a fake
# Docker engine with 3 containers, and an app server on :8080 that answers 200 while all of the
# node's containers run (503 otherwise). A client in namespace $E2E_ID-client sends requests at
# 50/s to whichever node the fake API says holds the reserved IP. The deploy command
# ($E2E_WORK/deploy.sh HOST) stops the containers and the daemon, starts the "new version" of
# both, and appends to $E2E_WORK/deploy.log; $E2E_WORK/break-nI makes it leave a container down.

ROLLOUT_CLIENT_ADDR=10.77.0.200

# rollout_setup N: N nodes, node 1 the master (priority 150, the others 100 - i).
rollout_setup() {
    local n=$1 i
    E2E_PROVIDER=digitalocean
    E2E_CHECKS="containers, app"
    e2e_net "$n"
    e2e_start_fake_api
    mkdir -p "$E2E_WORK/hosts"
    for ((i = 1; i <= n; i++)); do
        e2e_docker "$i" 3
        e2e_config "$i" $((i == 1 ? 150 : 100 - i)) 100ms "$E2E_WORK/n$i/containers.conf"
        # The rollout names hosts by namespace; each finds its config through this link.
        ln -s "$E2E_WORK/n$i/failoverd.conf" "$E2E_WORK/hosts/$E2E_ID-n$i.conf"
    done
    e2e_start 1
    e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
    for ((i = 2; i <= n; i++)); do
        e2e_start "$i"
        e2e_wait "n$i BACKUP" 20 e2e_role_is "$i" BACKUP
    done
    e2e_wait "the IP on n1" 30 e2e_holder_is 1
    for ((i = 1; i <= n; i++)); do
        ip netns exec "$E2E_ID-n$i" "$E2E_PYTHON" "$FAILOVERD_SOURCE_DIR/tests/e2e/traffic.py" app \
            --listen "10.77.0.$i:8080" --name "n$i" --docker-state "$E2E_WORK/n$i/docker.json" \
            2>>"$E2E_WORK/n$i/app.log" &
        E2E_BACKGROUND+=($!)
    done
    for ((i = 1; i <= n; i++)); do
        e2e_wait "n$i's app server" 20 ip netns exec "$E2E_ID-n$i" \
            curl -sf --max-time 2 -o /dev/null "http://10.77.0.$i:8080/"
    done
    rollout_write_deploy
}

rollout_write_deploy() {
    : >"$E2E_WORK/deploy.log"
    cat >"$E2E_WORK/deploy.sh" <<EOF
#!/usr/bin/env bash
# deploy.sh HOST: the "new version" on one node: containers and daemon restart.
set -euo pipefail
host=\$1
i=\${host##*-n}
dir="$E2E_WORK/n\$i"
containers() { # containers STATE_OF_THE_LAST
    {
        echo '{"containers": ['
        echo '{"name": "web-1", "state": "'\$1'", "labels": {"app": "shop"}},'
        echo '{"name": "web-2", "state": "'\$1'", "labels": {"app": "shop"}},'
        echo '{"name": "web-3", "state": "'\$2'", "labels": {"app": "shop"}}'
        echo ']}'
    } >"\$dir/docker.json.tmp"
    mv "\$dir/docker.json.tmp" "\$dir/docker.json"
}
echo "\$(date +%s.%N) start n\$i" >>"$E2E_WORK/deploy.log"
containers exited exited
pid=\$(cat "\$dir/pid")
kill -TERM "\$pid" 2>/dev/null || true
for ((t = 0; t < 200; t++)); do
    kill -0 "\$pid" 2>/dev/null || break
    sleep 0.1
done
echo "==== deploy restart \$(date +%T.%N)" >>"\$dir/log"
ip netns exec "\$host" setsid "$FAILOVERD_BIN" --config "\$dir/failoverd.conf" --log-level debug \
    </dev/null >>"\$dir/log" 2>&1 &
echo \$! >"\$dir/pid"
if [ -e "$E2E_WORK/break-n\$i" ]; then
    containers running exited
    echo "\$(date +%s.%N) done n\$i (web-3 left down)" >>"$E2E_WORK/deploy.log"
else
    containers running running
    echo "\$(date +%s.%N) done n\$i" >>"$E2E_WORK/deploy.log"
fi
EOF
    chmod 755 "$E2E_WORK/deploy.sh"
}

# rollout_client_start: the client namespace on the bridge, and the client in it.
rollout_client_start() {
    local ns="$E2E_ID-client" i maps=()
    if ! ip netns list | grep -q "^$ns\b"; then
        ip netns add "$ns"
        E2E_NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up
        ip -n "$ns" link add eth0 type veth peer name vpc netns "$E2E_ID-br"
        ip -n "$ns" addr add "$ROLLOUT_CLIENT_ADDR/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$E2E_ID-br" link set vpc master br0
        ip -n "$E2E_ID-br" link set vpc up
    fi
    for ((i = 1; i <= E2E_NODE_COUNT; i++)); do
        maps+=(--map "$((E2E_DROPLET_BASE + i))=10.77.0.$i:8080")
    done
    rm -f "$E2E_WORK/traffic.json"
    ip netns exec "$ns" "$E2E_PYTHON" "$FAILOVERD_SOURCE_DIR/tests/e2e/traffic.py" client \
        --api "http://$E2E_API_ADDR:$E2E_API_PORT" --ip "$E2E_RESERVED_IP" "${maps[@]}" \
        --rate 50 --timeout 2 --out "$E2E_WORK/traffic.json" 2>>"$E2E_WORK/client.log" &
    ROLLOUT_CLIENT_PID=$!
    E2E_BACKGROUND+=("$ROLLOUT_CLIENT_PID")
}

# rollout_client_stop: stops the client and prints its summary line; sets ROLLOUT_UNHEALTHY
# (requests that found the IP on a node without a healthy service, or on no node) and
# ROLLOUT_SENT.
rollout_client_stop() {
    kill -TERM "$ROLLOUT_CLIENT_PID"
    e2e_wait "the client's summary" 30 test -s "$E2E_WORK/traffic.json"
    read -r ROLLOUT_SENT ROLLOUT_OK ROLLOUT_UNHEALTHY ROLLOUT_TIMEOUTS ROLLOUT_BY_NODE < <(
        "$E2E_PYTHON" -c '
import json, sys
s = json.load(open(sys.argv[1]))
f = s["failed"]
print(s["sent"], s["ok"], f["unhealthy"] + f["no_holder"], f["timeout"],
      ",".join("%s:%d" % kv for kv in sorted(s["by_node"].items())))
' "$E2E_WORK/traffic.json")
    e2e_log "traffic: $ROLLOUT_SENT requests, $ROLLOUT_OK answered ($ROLLOUT_BY_NODE)," \
        "$ROLLOUT_UNHEALTHY found no healthy server, $ROLLOUT_TIMEOUTS timed out"
    if [ "$ROLLOUT_UNHEALTHY" -ne 0 ]; then
        "$E2E_PYTHON" -c 'import json, sys; [print("  ", f) for f in json.load(open(sys.argv[1]))["failures"][:20]]' \
            "$E2E_WORK/traffic.json" >&2
    fi
}

# rollout_run EXPECTED_EXIT ARGS...: failoverctl rollout over every node, through the
# namespaces, gates of $ROLLOUT_CHECK_WAIT (default 60s); output in $E2E_WORK/rollout.out, JSON report in $E2E_WORK/rollout.json.
rollout_run() {
    local expected=$1 hosts=() i rc=0
    shift
    for ((i = 1; i <= E2E_NODE_COUNT; i++)); do
        hosts+=(--host "$E2E_ID-n$i")
    done
    "$FAILOVERCTL_BIN" rollout "${hosts[@]}" --deploy "$E2E_WORK/deploy.sh {host}" \
        --via "ip netns exec {host}" --remote-failoverctl "$FAILOVERCTL_BIN" \
        --remote-config "$E2E_WORK/hosts/{host}.conf" --check-wait "${ROLLOUT_CHECK_WAIT:-60s}" \
        --handover-wait 30s \
        --json "$@" >"$E2E_WORK/rollout.json" 2>"$E2E_WORK/rollout.out" || rc=$?
    sed 's/^/    rollout: /' "$E2E_WORK/rollout.out" >&2
    [ "$rc" -eq "$expected" ] || e2e_fail "failoverctl rollout exited $rc, expected $expected"
}

# rollout_deploy_order: the nodes in the order their deploys started ("n2 n3 n1").
rollout_deploy_order() {
    awk '$2 == "start" { printf "%s%s", sep, $3; sep = " " } END { print "" }' "$E2E_WORK/deploy.log"
}
