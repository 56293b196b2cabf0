#!/usr/bin/env bash
# failoverd as a Type=notify service, with a fake NOTIFY_SOCKET (a unix datagram socket this
# script binds, as systemd does): READY=1 with STATUS=, WATCHDOG=1 pings from the loop,
# RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM; and the stop stays bounded
# when notify_stop hangs and ignores SIGTERM.
source "$(dirname "$0")/lib.sh"

e2e_net 1
"$E2E_PYTHON" - "$E2E_WORK/notify.sock" "$E2E_WORK/notify.log" <<'EOF2' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode().replace("\n", "|") + "\n")
EOF2
E2E_BACKGROUND+=($!)
e2e_wait "the fake systemd socket" 10 test -S "$E2E_WORK/notify.sock"

e2e_config 1 100
cat >"$E2E_WORK/stuck.sh" <<'EOF2'
#!/bin/sh
trap '' TERM
echo "stop hook stuck"
sleep 60
EOF2
chmod 755 "$E2E_WORK/stuck.sh"
sed -i "s|^notify_stop = .*|notify_stop = $E2E_WORK/stuck.sh|" "$E2E_WORK/n1/failoverd.conf"
E2E_ENV="NOTIFY_SOCKET=$E2E_WORK/notify.sock WATCHDOG_USEC=500000"
e2e_start 1
seen() { grep -Eq -- "$1" "$E2E_WORK/notify.log"; }
e2e_wait "READY=1 with STATUS=" 10 seen "^READY=1\|STATUS=web: (BACKUP|MASTER|FAULT)"
e2e_wait "STATUS=web: MASTER (single node)" 20 seen "^STATUS=web: MASTER$"
pings() { [ "$(grep -c '^WATCHDOG=1$' "$E2E_WORK/notify.log")" -ge 3 ]; }
e2e_wait "three WATCHDOG=1 pings" 20 pings

e2e_kill 1 HUP
e2e_wait "RELOADING=1 with MONOTONIC_USEC" 10 seen "^RELOADING=1\|STATUS=reloading configuration\|MONOTONIC_USEC=[0-9]+$"
e2e_wait "READY=1 after the reload" 10 seen "^READY=1\|STATUS=web: MASTER$"

stop_ms=$(e2e_now_ms)
e2e_kill 1 TERM
took=$(($(e2e_now_ms) - stop_ms))
e2e_expect "exit 0" test "$E2E_LAST_EXIT" = 0
e2e_expect "STOPPING=1" seen "^STOPPING=1\|STATUS=stopping"
e2e_expect "the stuck notify_stop was cut off (stop took $took ms; bound 5 s + 2 s grace)" \
    grep -q "hooks still running 5.00 s after the stop: terminating them" "$E2E_WORK/n1/log"
grep -q "hook notify_stop failed: .*SIGKILL" "$E2E_WORK/n1/log" || e2e_fail "no SIGKILL for the hook"
cat "$E2E_WORK/notify.log" | sort | uniq -c >&2
