#!/usr/bin/env bash
# Bad adverts are dropped and counted: from an address that is not a peer, with a broken MAC,
# and a replayed copy of a real advert. A third namespace (a configured peer address with no
# daemon) captures n2's adverts and sends the forgeries to n1, which stays MASTER.
source "$(dirname "$0")/lib.sh"

e2e_net 3 # n3 is only the attacker's seat
e2e_config 1 150
e2e_config 2 100
e2e_start 1
e2e_start 2
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP

ip netns exec "$E2E_ID-n3" "$E2E_PYTHON" - "$E2E_WORK" <<'EOF2'
import socket, sys, time
work = sys.argv[1]
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
peer.bind(("10.77.0.3", 5405))  # a configured peer address of n1
peer.settimeout(20)
# Wait for an advert sent by n2 (name field after the 32-byte header: length, then bytes).
deadline = time.time() + 20
while True:
    data, src = peer.recvfrom(4096)
    if src[0] == "10.77.0.2" and data[33:33 + data[32]] == b"n2":
        break
    if time.time() > deadline:
        sys.exit("no advert from n2")
n1 = ("10.77.0.1", 5405)
forged = bytearray(data)
forged[-1] ^= 0x01                     # MAC no longer matches
peer.sendto(bytes(forged), n1)
peer.sendto(data, n1)                  # n1 already has this sequence from n2: a replay
peer.sendto(data, n1)
stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stranger.bind(("10.77.0.3", 6000))     # not a configured peer
stranger.sendto(data, n1)
open(work + "/sent", "w").write("sent\n")
EOF2
e2e_expect "the forgeries were sent" test -e "$E2E_WORK/sent"

dropped() { e2e_json 1 "d[\"adverts\"][\"dropped\"][\"$1\"]"; }
at_least() { [ "$("${@:2}")" -ge "$1" ]; }
e2e_wait "n1 counts the bad MAC" 10 at_least 1 dropped bad-mac
e2e_wait "n1 counts the replays" 10 at_least 1 dropped replay
unknown() { e2e_json 1 'd["transport"]["dropped_unknown_source"]'; }
e2e_wait "n1 counts the stranger" 10 at_least 1 unknown
e2e_expect "n1 still MASTER" e2e_role_is 1 MASTER
e2e_expect "n2 still BACKUP" e2e_role_is 2 BACKUP
grep -q "dropping advert from 10.77.0.3:5405: bad-mac" "$E2E_WORK/n1/log" ||
    e2e_fail "the bad MAC was not logged"
grep -q "ignoring datagram from 10.77.0.3:6000: not a configured peer" "$E2E_WORK/n1/log" ||
    e2e_fail "the stranger was not logged"
e2e_ctl 1 status | grep -E "^adverts: .*bad-mac [0-9]+.*replay [0-9]+" >/dev/null ||
    e2e_fail "status text does not list the drop reasons"
