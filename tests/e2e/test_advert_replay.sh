#!/usr/bin/env bash
# Replayed adverts cannot hold a restarted node in BACKUP, and instance names must match.
# 1. n1 MASTER with the IP, n2 BACKUP (100 ms adverts, the fake DigitalOcean API). n1's adverts
#    are captured as n2 receives them (an AF_PACKET socket in n2's namespace). kill -9 n1, then
#    kill -9 n2 and start it again while the capture is replayed to it from n1's address. n2
#    becomes MASTER while the replay still runs, the IP moves to it, and its status counts the
#    replayed adverts as not fresh.
# 2. n2 is configured with instance 'www' instead of 'web': n1's status counts n2's adverts
#    for 'www' per peer, and `failoverctl doctor` on n1 fails naming both names.
source "$(dirname "$0")/lib.sh"

# The capture covers the whole replay period: looping it would only repeat datagrams that the
# replay window already drops, so each replayed advert is one n2 has not seen in this boot.
REPLAY_SECONDS=${E2E_REPLAY_SECONDS:-12}
MASTER_DEADLINE=${E2E_REPLAY_DEADLINE:-8}
CAPTURE_COUNT=$((REPLAY_SECONDS * 10))

e2e_do_pair
e2e_wait "n2 hearing n1 as master" 20 test "$(e2e_json 2 'inst()["master"]')" = n1

cat >"$E2E_WORK/replay.py" <<'EOF'
# capture FILE COUNT SRC: UDP payloads to port 5405 from SRC, seen on eth0 (AF_PACKET).
# replay FILE SRC DST SECONDS: sends them from SRC:5405 to DST:5405 in a loop, 100 ms apart.
import socket, struct, sys, time
mode, path = sys.argv[1], sys.argv[2]
if mode == "capture":
    count, src = int(sys.argv[3]), socket.inet_aton(sys.argv[4])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind(("eth0", 0))
    s.settimeout(30)
    got = []
    while len(got) < count:
        frame = s.recv(65535)
        ip = frame[14:]
        if ip[9] != 17 or ip[12:16] != src:
            continue
        udp = ip[(ip[0] & 0x0F) * 4:]
        if struct.unpack("!H", udp[2:4])[0] != 5405:
            continue
        got.append(udp[8:struct.unpack("!H", udp[4:6])[0]])
    with open(path, "wb") as f:
        for g in got:
            f.write(struct.pack("!H", len(g)) + g)
else:
    src, dst, seconds = sys.argv[3], sys.argv[4], float(sys.argv[5])
    data, packets = open(path, "rb").read(), []
    while data:
        n = struct.unpack("!H", data[:2])[0]
        packets.append(data[2:2 + n])
        data = data[2 + n:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, 5405))
    print("replaying", len(packets), "datagrams", flush=True)
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        s.sendto(packets[i % len(packets)], (dst, 5405))
        i += 1
        time.sleep(0.1)
    print(i, flush=True)
EOF

ip netns exec "$E2E_ID-n2" "$E2E_PYTHON" "$E2E_WORK/replay.py" capture "$E2E_WORK/capture.bin" \
    "$CAPTURE_COUNT" 10.77.0.1
e2e_expect "$CAPTURE_COUNT of n1's adverts captured" test -s "$E2E_WORK/capture.bin"

base=$(e2e_moves)
e2e_kill 1 KILL
e2e_kill 2 KILL
ip netns exec "$E2E_ID-n1" "$E2E_PYTHON" "$E2E_WORK/replay.py" replay "$E2E_WORK/capture.bin" \
    10.77.0.1 10.77.0.2 "$REPLAY_SECONDS" >"$E2E_WORK/replay.out" 2>&1 &
replayer=$!
E2E_BACKGROUND+=("$replayer")
e2e_wait "the replay running" 10 grep -q replaying "$E2E_WORK/replay.out"
replay_started_ms=$(e2e_now_ms)
start_ms=$(e2e_now_ms)
e2e_start 2
e2e_wait "n2 MASTER under the replay" "$MASTER_DEADLINE" e2e_role_is 2 MASTER
master_ms=$(e2e_now_ms)
e2e_log "n2 became MASTER $(((master_ms - start_ms) / 1000)).$(((master_ms - start_ms) % 1000 / 100)) s after its restart, $(((master_ms - replay_started_ms) / 1000)) s into the ${REPLAY_SECONDS} s replay"
e2e_expect "the replay still running when n2 became MASTER" kill -0 "$replayer"
e2e_wait "the IP on n2" 30 e2e_holder_is 2
not_fresh=$(e2e_json 2 'd["adverts"]["not_fresh"]')
replays=$(e2e_json 2 'd["adverts"]["dropped"]["replay"]')
e2e_log "n2 counted $not_fresh replayed adverts as not fresh and dropped $replays as replays"
e2e_expect "n2 counted the replayed adverts as not fresh" test "$not_fresh" -gt 0
e2e_expect "n2 still MASTER under the replay" e2e_role_is 2 MASTER
kill "$replayer" 2>/dev/null || true
wait "$replayer" 2>/dev/null || true
e2e_expect_holder "after the replay" 2 "$base" 1

# 2. Another instance name on n2.
e2e_kill 2 KILL
E2E_INSTANCE=www e2e_config 2 100
e2e_start 1
e2e_start 2
unknown_count() {
    e2e_json 1 'sum(f["adverts"] for f in d["adverts"]["unknown_instances"] if f["peer"] == "n2" and f["instance"] == "www")'
}
e2e_wait "n1 counting n2's adverts for 'www'" 20 test "$(unknown_count)" -gt 0
status_text=$(e2e_ctl 1 status)
e2e_expect "n1's status names n2's instance" \
    grep -q "n2 advertises instance 'www', not configured here (this node: web)" <<<"$status_text"
doctor_rc=0
doctor_out=$(ip netns exec "$E2E_ID-n1" "$FAILOVERCTL_BIN" doctor --config "$E2E_WORK/n1/failoverd.conf" \
    --socket "$E2E_WORK/n1/control.sock" 2>&1) || doctor_rc=$?
printf '%s\n' "$doctor_out" | grep -i "instance" >&2 || true
e2e_expect "doctor on n1 exits non-zero" test "$doctor_rc" -ne 0
e2e_expect "doctor names both instance names" \
    grep -q "n2 advertises instance 'www'.*this node has 'web'" <<<"$doctor_out"
e2e_expect "doctor says instance names are the group identity" \
    grep -q "virtual_router_id" <<<"$doctor_out"
e2e_expect_token_unseen
