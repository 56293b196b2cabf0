#!/usr/bin/env bash
# Long operations never stall the adverts: while n1 (master) has a notify_master hook running
# (30 s, far past the window even on a loaded machine) and an HTTP check against a server that
# never answers (held open until its 3 s timeout, then again), n2 keeps receiving n1's adverts
# at their interval.
source "$(dirname "$0")/lib.sh"

e2e_net 2
# A server in n1's namespace that accepts connections and never answers.
ip netns exec "$E2E_ID-n1" "$E2E_PYTHON" -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 8099))
s.listen(16)
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)
' &
E2E_BACKGROUND+=($!)
cat >"$E2E_WORK/slow.sh" <<EOF2
#!/bin/sh
# The first notify_master (at start-up) returns at once; the one the window measures runs 30 s.
if [ -e "$E2E_WORK/slow.first" ]; then
    echo "slow hook started" >"$E2E_WORK/slow.started"
    sleep 30
fi
touch "$E2E_WORK/slow.first"
EOF2
chmod 755 "$E2E_WORK/slow.sh"
cat >"$E2E_WORK/silent.conf" <<EOF2
[check.silent]
type = http
url = http://127.0.0.1:8099/health
interval = 3s
timeout = 3s
weight = -1
EOF2
export E2E_CHECKS="app, silent"
e2e_config 1 150 100ms "$E2E_WORK/silent.conf"
sed -i "s|^notify_master = .*|notify_master = $E2E_WORK/slow.sh|" "$E2E_WORK/n1/failoverd.conf"
export E2E_CHECKS="app"
e2e_config 2 100
# The first health round waits for the silent check's timeout before READY.
e2e_start 1
e2e_start 2
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP

received() { e2e_json 2 '[p for p in d["transport"]["peers"] if p["address"] == "10.77.0.1:5405"][0]["received"]'; }
# Start the window while the hook runs: hand the role to n2 and back, so notify_master runs.
e2e_ctl 1 handover web >/dev/null
e2e_wait "n2 MASTER" 20 e2e_role_is 2 MASTER
rm -f "$E2E_WORK/slow.started"
e2e_ctl 2 handover web --to n1 >/dev/null
e2e_wait "n1 MASTER again" 20 e2e_role_is 1 MASTER
e2e_wait "n1's slow notify_master to start" 10 test -e "$E2E_WORK/slow.started"

start_ms=$(e2e_now_ms)
start_count=$(received)
n2_transitions=$(e2e_json 2 'inst()["transitions"]')
# The measurement window itself: adverts are counted over it, nothing is waited for.
sleep 3
end_count=$(received)
window_ms=$(($(e2e_now_ms) - start_ms))
queued=$(e2e_json 1 'inst()["hooks"]["queued"]')
adverts=$((end_count - start_count))
expected=$((window_ms / 100))
e2e_log "n2 received $adverts adverts from n1 in $window_ms ms (interval 100 ms: about $expected)"
e2e_expect "the slow hook was still running at the end of the window" test "$queued" -ge 1
e2e_expect "the silent check is failing by timeout" \
    test "$(e2e_json 1 '[c for c in inst()["checks"] if c["name"] == "silent"][0]["state"]')" = failing
# Generous: at least half the adverts (a loaded CI machine), never a stall of the loop.
e2e_expect "adverts kept their interval ($adverts >= $((expected / 2)))" test "$adverts" -ge $((expected / 2))
e2e_expect "n2 stayed BACKUP throughout" test "$(e2e_json 2 'inst()["transitions"]')" = "$n2_transitions"
