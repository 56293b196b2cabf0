#!/usr/bin/env bash
# The packaged unit under a real systemd: a minimal Debian 12 root (cached, see
# tests/package/rootfs.sh) booted with `systemd-nspawn -b`. Installs the .deb there (built
# with cpack from this build, or $FAILOVERD_DEB), which enables and starts failoverd with the
# shipped config; then: READY reached (Type=notify), running as the failoverd user with its
# control socket, a hook runs inside the sandbox, `systemctl reload` keeps the same process,
# LoadCredential= hands the token over, the watchdog restarts a SIGSTOPped daemon, the Docker
# socket is readable only through group docker, and dpkg -r / -P stop it and keep / remove
# the conffile.
source "$(dirname "$0")/lib.sh"
source "$FAILOVERD_SOURCE_DIR/tests/package/rootfs.sh"

for tool in systemd-nspawn debootstrap nsenter dpkg-deb cpack; do
    command -v "$tool" >/dev/null || e2e_fail "$tool is missing (apt-get install systemd-container debootstrap dpkg-dev cmake)"
done

fo_teardown() {
    fo_nspawn_stop
    fo_rootfs_release "$E2E_WORK/machine"
    rm -rf "/run/systemd/nspawn/propagate/$E2E_ID" "/run/systemd/nspawn/unix-export/$E2E_ID"
}
trap 'rc=$?; fo_teardown; (exit $rc); e2e_cleanup' EXIT

mkdir -p "$E2E_WORK/deb"
if [ -n "${FAILOVERD_DEB:-}" ]; then
    cp "$FAILOVERD_DEB" "$E2E_WORK/deb/failoverd.deb"
else
    build_dir=$(dirname "$FAILOVERD_BIN")
    (cd "$build_dir" && cpack -G DEB -B "$E2E_WORK/cpack" >"$E2E_WORK/cpack.log" 2>&1) ||
        { cat "$E2E_WORK/cpack.log" >&2; e2e_fail "cpack"; }
    cp "$E2E_WORK"/cpack/failoverd_*.deb "$E2E_WORK/deb/failoverd.deb"
fi
e2e_log "package: $(dpkg-deb -f "$E2E_WORK/deb/failoverd.deb" Package Version | paste -sd' ')"

mapfile -t deps < <(fo_deb_depends "$E2E_WORK/deb/failoverd.deb")
tarball=$(fo_rootfs_tarball "${deps[@]}") || e2e_fail "no Debian root (debootstrap)"
root=$(fo_rootfs_overlay "$tarball" "$E2E_WORK/machine") || e2e_fail "no overlay root"
e2e_log "throwaway root over $(basename "$tarball")"
# A fake Docker Engine on the host, its socket bound into the container (a path, so it works
# across the network namespaces).
mkdir -p "$E2E_WORK/docker"
"$E2E_PYTHON" -c 'import json, sys
json.dump([{"name": "web-%d" % i, "state": "running"} for i in range(10)], open(sys.argv[1], "w"))' \
    "$E2E_WORK/docker/state.json"
"$E2E_PYTHON" "$FAILOVERD_SOURCE_DIR/tests/fakes/fake_docker_engine.py" \
    "$E2E_WORK/docker/docker.sock" --state "$E2E_WORK/docker/state.json" 2>"$E2E_WORK/engine.log" &
E2E_BACKGROUND+=($!)
e2e_wait "the fake Docker Engine" 20 test -S "$E2E_WORK/docker/docker.sock"

fo_nspawn_boot "$root" "$E2E_ID" --bind-ro="$E2E_WORK/deb:/opt/test" \
    --bind="$E2E_WORK/docker:/run/fakedocker" ||
    e2e_fail "systemd-nspawn -b did not boot"
e2e_log "systemd booted in the container (leader pid $FO_LEADER)"

prop() { fo_in systemctl show -p "$1" --value failoverd; }
active() { [ "$(fo_in systemctl is-active failoverd 2>/dev/null)" = active ]; }
journal_has() { fo_in journalctl -u failoverd --no-pager -o cat | grep -- "$1" >/dev/null; }

fo_in dpkg -i /opt/test/failoverd.deb >"$E2E_WORK/dpkg.log" 2>&1 ||
    { cat "$E2E_WORK/dpkg.log" >&2; e2e_fail "dpkg -i in the container"; }
e2e_wait "failoverd active after dpkg -i (postinst starts it; Type=notify: after READY=1)" 30 active
e2e_expect "enabled" test "$(fo_in systemctl is-enabled failoverd)" = enabled
pid=$(prop MainPID)
e2e_expect "runs as the failoverd user" test "$(fo_in ps -o user= -p "$pid")" = failoverd
e2e_expect "STATUS= names the instance ($(prop StatusText))" test -n "$(prop StatusText | grep 'minitwit: ')"
e2e_expect "no capabilities" test "$(fo_in grep CapEff /proc/"$pid"/status | awk '{print $2}')" = 0000000000000000
e2e_expect "NoNewPrivs" test "$(fo_in grep NoNewPrivs /proc/"$pid"/status | awk '{print $2}')" = 1
e2e_expect "seccomp filter" test "$(fo_in grep '^Seccomp:' /proc/"$pid"/status | awk '{print $2}')" = 2
e2e_expect "control socket /run/failoverd/control.sock, failoverd:failoverd 0660" \
    test "$(fo_in stat -c '%U:%G %a %F' /run/failoverd/control.sock)" = "failoverd:failoverd 660 socket"
fo_in failoverctl status >"$E2E_WORK/status.txt" 2>&1 ||
    { cat "$E2E_WORK/status.txt" >&2; e2e_fail "failoverctl status as root"; }
e2e_expect "failoverctl status as root" grep -q "instance minitwit" "$E2E_WORK/status.txt"
# An operator (or a CI deploy user) in group failoverd may ask too; anyone else may not.
fo_in adduser --quiet --system --no-create-home operator >/dev/null
fo_in runuser -u operator -- failoverctl status >/dev/null 2>&1 &&
    e2e_fail "a user outside group failoverd reached the control socket"
fo_in adduser --quiet operator failoverd >/dev/null
fo_in runuser -u operator -- failoverctl status >"$E2E_WORK/status.txt" 2>&1 ||
    { cat "$E2E_WORK/status.txt" >&2; e2e_fail "failoverctl status as a member of group failoverd"; }
e2e_log "ok: failoverctl status as a member of group failoverd, refused outside it"

# A hook (/bin/sh, fork and exec) under MemoryDenyWriteExecute, the syscall filter and
# ProtectSystem=strict: it may write to the state directory.
fo_in sh -c 'echo "notify = /etc/failoverd/hooks/record-transition" >> /etc/failoverd/failoverd.conf'
fo_in systemctl restart failoverd
hook_ran() { fo_in grep -q " minitwit INIT -> " /var/lib/failoverd/transitions.log 2>/dev/null; }
e2e_wait "the record-transition hook's line in /var/lib/failoverd/transitions.log" 30 hook_ran
e2e_log "hook wrote: $(fo_in tail -n 1 /var/lib/failoverd/transitions.log)"

pid=$(prop MainPID)
fo_in systemctl reload failoverd
e2e_wait "'configuration reloaded' in the journal" 20 journal_has "configuration reloaded"
e2e_expect "active after reload" active
e2e_expect "same MainPID after reload ($pid)" test "$(prop MainPID)" = "$pid"

# The API token as a credential (the unit started without one above): root-only in the
# credential store, readable by the service alone in its own directory.
fo_in sh -c 'mkdir -m 0700 -p /etc/credstore; umask 077; echo dop_v1_not_a_real_token > /etc/credstore/failoverd-do-token'
fo_in systemctl restart failoverd
e2e_wait "active with the credential" 30 active
pid=$(prop MainPID)
e2e_expect "the daemon's CREDENTIALS_DIRECTORY holds do-token, readable by failoverd only" \
    test "$(fo_in sh -c "stat -c '%U %a' \$(tr '\0' '\n' < /proc/$pid/environ | sed -n 's/^CREDENTIALS_DIRECTORY=//p')/do-token")" = "failoverd 400"

# The watchdog: a short WatchdogSec for the test; a stopped loop sends no WATCHDOG=1.
fo_in mkdir -p /etc/systemd/system/failoverd.service.d
fo_in sh -c 'printf "[Service]\nWatchdogSec=2s\nRestartSec=200ms\n" > /etc/systemd/system/failoverd.service.d/watchdog.conf'
fo_in systemctl daemon-reload
fo_in systemctl restart failoverd
e2e_wait "active with WatchdogSec=2s" 30 active
pid=$(prop MainPID)
restarts=$(prop NRestarts)
fo_in kill -STOP "$pid"
e2e_log "SIGSTOP to MainPID $pid"
restarted() { active && [ "$(prop MainPID)" != "$pid" ] && [ "$(prop MainPID)" != 0 ]; }
e2e_wait "a new MainPID after the watchdog fired" 40 restarted
e2e_expect "journal: result 'watchdog'" journal_has "Failed with result 'watchdog'"
e2e_expect "NRestarts grew" test "$(prop NRestarts)" -gt "$restarts"
e2e_log "restarted by the watchdog: MainPID $pid -> $(prop MainPID)"

# Docker access by group membership (docs/install.md): the socket is root:docker 0660 as
# dockerd makes it; the package does not add failoverd to the group, the admin does.
fo_in groupadd --system docker
chgrp "$(fo_in getent group docker | cut -d: -f3)" "$E2E_WORK/docker/docker.sock"
chmod 660 "$E2E_WORK/docker/docker.sock"
fo_in sed -i 's|^socket = /var/run/docker.sock|socket = /run/fakedocker/docker.sock|' /etc/failoverd/failoverd.conf
fo_in systemctl restart failoverd
denied() { journal_has "docker.sock: .*[Pp]ermission denied"; }
e2e_wait "the docker check denied without the group" 30 denied
e2e_expect "FAULT without the docker group ($(prop StatusText))" test "$(prop StatusText)" = "minitwit: FAULT"
fo_in adduser --quiet failoverd docker
fo_in systemctl restart failoverd
master() { [ "$(prop StatusText)" = "minitwit: MASTER" ]; }
e2e_wait "MASTER once failoverd is in group docker (10 containers running)" 30 master
e2e_log "ok: MASTER once failoverd is in group docker ($(prop StatusText))"

fo_in dpkg -r failoverd >"$E2E_WORK/dpkg.log" 2>&1 || { cat "$E2E_WORK/dpkg.log" >&2; e2e_fail "dpkg -r"; }
e2e_expect "dpkg -r stopped the daemon" test -z "$(fo_in pgrep -x failoverd)"
e2e_expect "dpkg -r kept the conffile" fo_in grep -q record-transition /etc/failoverd/failoverd.conf
fo_in dpkg -P failoverd >"$E2E_WORK/dpkg.log" 2>&1 || { cat "$E2E_WORK/dpkg.log" >&2; e2e_fail "dpkg -P"; }
e2e_expect "dpkg -P removed the conffile" fo_in test ! -e /etc/failoverd/failoverd.conf
