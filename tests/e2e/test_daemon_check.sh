#!/usr/bin/env bash
# Health decides the master: each node checks its own (fake) Docker engine, started in its
# namespace. A container dies on the master: its check fails, it goes to FAULT and the backup
# takes over; the container comes back: the old master recovers and preempts. Then the exec
# check fails on the master the same way.
source "$(dirname "$0")/lib.sh"

e2e_net 2
fake="$FAILOVERD_SOURCE_DIR/tests/fakes/fake_docker_engine.py"

write_state() { # node, state of web-2
    cat >"$E2E_WORK/n$1/docker.json.tmp" <<EOF2
{"containers": [
  {"name": "web-1", "state": "running", "labels": {"app": "shop"}},
  {"name": "web-2", "state": "$2", "labels": {"app": "shop"}}
]}
EOF2
    mv "$E2E_WORK/n$1/docker.json.tmp" "$E2E_WORK/n$1/docker.json"
}

for i in 1 2; do
    write_state "$i" running
    ip netns exec "$E2E_ID-n$i" "$E2E_PYTHON" "$fake" "$E2E_WORK/n$i/docker.sock" \
        --state "$E2E_WORK/n$i/docker.json" 2>>"$E2E_WORK/n$i/engine.log" &
    E2E_BACKGROUND+=($!)
    cat >"$E2E_WORK/n$i/containers.conf" <<EOF2
[check.containers]
type = docker
socket = $E2E_WORK/n$i/docker.sock
label = app=shop
expect = 2
interval = 300ms
timeout = 300ms
rise = 1
fall = 1
EOF2
done
e2e_wait "fake engines listening" 20 test -S "$E2E_WORK/n1/docker.sock" -a -S "$E2E_WORK/n2/docker.sock"

export E2E_CHECKS="containers, app"
e2e_config 1 150 100ms "$E2E_WORK/n1/containers.conf"
e2e_config 2 100 100ms "$E2E_WORK/n2/containers.conf"
e2e_start 1
e2e_start 2
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
e2e_expect "n1's docker check passes" \
    test "$(e2e_json 1 '[c for c in inst()["checks"] if c["name"] == "containers"][0]["state"]')" = passing

write_state 1 exited
e2e_log "web-2 exited on n1"
e2e_wait "n1 FAULT" 20 e2e_role_is 1 FAULT
e2e_wait "n2 MASTER" 20 e2e_role_is 2 MASTER
fault=$(e2e_json 1 'inst()["fault_reason"]')
e2e_log "n1 fault: $fault"
e2e_expect "the fault names the missing container" grep -q "web-2" <<<"$fault"
e2e_wait "n1's notify_fault hook" 10 e2e_hook_seen "^n1 notify_fault web MASTER->FAULT "
e2e_wait "n2's notify_master hook" 10 e2e_hook_seen "^n2 notify_master web BACKUP->MASTER "

write_state 1 running
e2e_log "web-2 running again on n1"
e2e_wait "n1 MASTER again" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP again" 20 e2e_role_is 2 BACKUP
e2e_expect "one master" e2e_masters_are 1

touch "$E2E_WORK/n1/fail"
e2e_log "n1's exec check fails"
e2e_wait "n1 FAULT (exec check)" 20 e2e_role_is 1 FAULT
e2e_wait "n2 MASTER (exec check)" 20 e2e_role_is 2 MASTER
rm "$E2E_WORK/n1/fail"
e2e_wait "n1 MASTER once its exec check passes" 20 e2e_role_is 1 MASTER
