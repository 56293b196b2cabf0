# Shared by the `failoverctl rollout` scenarios; source after lib.sh.
#
# Real containers behind the reserved-IP edge (real_lib.sh): each node namespace runs its own
# Docker engine with 3 app containers and failoverd watching them (provider = digitalocean
# against the fake API); a client sends 50 requests/s through the edge the whole time. The
# deploy command ($E2E_WORK/deploy.sh HOST) stops the node's containers and daemon, starts the
# daemon again and then the containers ("the new version"), and appends to
# $E2E_WORK/deploy.log; $E2E_WORK/break-nI makes it leave web-3 down.

source "$(dirname "${BASH_SOURCE[0]}")/real_lib.sh"

# rollout_setup N: N nodes, node 1 the master (priority 150, the others 100 - i).
rollout_setup() {
    local n=$1 i
    real_setup "$n"
    mkdir -p "$E2E_WORK/hosts"
    for ((i = 1; i <= n; i++)); do
        # The rollout names hosts by namespace; each finds its config through this link.
        ln -s "$E2E_WORK/n$i/failoverd.conf" "$E2E_WORK/hosts/$E2E_ID-n$i.conf"
        echo "${DK_SOCK[$i]}" >"$E2E_WORK/n$i/docker.sockpath"
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
docker() { /usr/bin/docker -H "unix://\$(cat "\$dir/docker.sockpath")" "\$@"; }
echo "\$(date +%s.%N) start n\$i" >>"$E2E_WORK/deploy.log"
names=\$(docker ps -a --filter label=app=shop --format '{{.Names}}' | sort)
# shellcheck disable=SC2086 # one word per container name
docker stop -t 1 \$names >/dev/null
pid=\$(cat "\$dir/pid")
kill -TERM "\$pid" 2>/dev/null || true
for ((t = 0; t < 200; t++)); do
    kill -0 "\$pid" 2>/dev/null || break
    sleep 0.1
done
echo "==== deploy restart \$(date +%T.%N)" >>"\$dir/log"
ip netns exec "\$host" setsid "$FAILOVERD_BIN" --config "\$dir/failoverd.conf" --log-level debug \\
    </dev/null >>"\$dir/log" 2>&1 &
echo \$! >"\$dir/pid"
if [ -e "$E2E_WORK/break-n\$i" ]; then
    # shellcheck disable=SC2046
    docker start \$(grep -vx web-3 <<<"\$names") >/dev/null
    echo "\$(date +%s.%N) done n\$i (web-3 left down)" >>"$E2E_WORK/deploy.log"
else
    # shellcheck disable=SC2086
    docker start \$names >/dev/null
    echo "\$(date +%s.%N) done n\$i" >>"$E2E_WORK/deploy.log"
fi
EOF
    chmod 755 "$E2E_WORK/deploy.sh"
}

# rollout_client_start / rollout_client_stop: the client through the edge; stop checks the
# traffic invariants since the start (every answer after the last move came from the holder)
# and sets ROLLOUT_FAILED, the requests refused, reset or answered with an error.
rollout_client_start() {
    ROLLOUT_FROM=$(real_now)
    real_client_start
}

rollout_client_stop() {
    real_client_stop
    real_invariants "$ROLLOUT_FROM" "$(real_now)" "n$(e2e_holder)" "$(real_last_move_time)"
    ROLLOUT_FAILED=$REAL_FAILED
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
    if [ "${ROLLOUT_QUIET:-0}" != 1 ] || [ "$rc" -ne "$expected" ]; then
        sed 's/^/    rollout: /' "$E2E_WORK/rollout.out" >&2
    fi
    [ "$rc" -eq "$expected" ] || e2e_fail "failoverctl rollout exited $rc, expected $expected"
}

# rollout_deploy_order: the nodes in the order their deploys started ("n2 n3 n1").
rollout_deploy_order() {
    awk '$2 == "start" { printf "%s%s", sep, $3; sep = " " } END { print "" }' "$E2E_WORK/deploy.log"
}
