#!/usr/bin/env bash
# The real-Docker helper itself (tests/docker): two node namespaces, an engine in each started
# at once, DK_TEST_APPS (default 3) app containers per node. A client in the other namespace
# learns from the body which node and container answered; failoverd's docker check (through
# `failoverctl check` on the generated section) passes, fails for an unhealthy and for a killed
# container, and passes again; stop all and start all; then the cleanup leaves no engine, no
# mount and no directory, also when a Ctrl-C interrupts a script. Last, tests/docker/engine.sh
# start, run, restart-engine and stop. Skips when no Docker engine can run here.
source "$(dirname "$0")/lib.sh"
source "$FAILOVERD_SOURCE_DIR/tests/docker/docker_lib.sh"

if ! dk_available; then
    echo "SKIP: $DK_UNAVAILABLE_REASON"
    exit 0
fi
apps=${DK_TEST_APPS:-3}
engine_sh="$FAILOVERD_SOURCE_DIR/tests/docker/engine.sh"

# fetch NS ADDR PORT: the app's body as seen from namespace NS ("" when nothing answers).
fetch() {
    ip netns exec "$1" curl -s --max-time 5 "http://$2:$3/" 2>/dev/null || true
}

# no_trace_of DIR: no process names DIR and nothing is mounted under it.
no_trace_of() {
    local procs mounts
    procs=$(dkc_ours "$1")
    mounts=$(dkc_mounts "$1")
    if [ -n "$procs" ]; then
        ps -o pid,args -p "${procs//$'\n'/,}" >&2 || true
        return 1
    fi
    if [ -n "$mounts" ]; then
        echo "still mounted: $mounts" >&2
        return 1
    fi
}

# check_containers: failoverctl runs n1's [check.containers] once (exit 0 = PASS).
check_containers() {
    "$FAILOVERCTL_BIN" check --config "$E2E_WORK/n1/failoverd.conf" --check containers \
        >"$E2E_WORK/check.out" 2>&1
}

check_fails() {
    ! check_containers
}

alive() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

e2e_net 2
started=$(e2e_now_ms)
dk_start_engines 1 2
engines_ms=$(($(e2e_now_ms) - started))

started=$(e2e_now_ms)
dk_run_apps 1 "$apps"
apps_ms=$(($(e2e_now_ms) - started))
dk_run_apps 2 "$apps"

body=$(fetch "$E2E_ID-n2" 10.77.0.1 $((DK_PORT_BASE + 1)))
e2e_expect "n2 reaches n1's web-1 and learns who answered ($body)" \
    test "$body" = "node=n1 container=web-1"
body=$(fetch "$E2E_ID-n1" 10.77.0.2 $((DK_PORT_BASE + apps)))
e2e_expect "n1 reaches n2's web-$apps ($body)" test "$body" = "node=n2 container=web-$apps"
e2e_expect "DK_SOCK names n1's engine" test "${DK_SOCK[1]}" = "$E2E_WORK/n1/dk/sock"

E2E_CHECKS=containers
dk_check_conf 1 "$apps"
e2e_config 1 150 100ms "$E2E_WORK/n1/containers.conf"
e2e_expect "the docker check passes with $apps healthy containers" check_containers

dk_sick 1 web-2
dk_wait_health 1 web-2 unhealthy
e2e_expect "web-2 is running but unhealthy" test "$(dk_state 1 web-2)" = "running unhealthy"
e2e_expect "the docker check fails for the unhealthy container" check_fails
e2e_log "check: $(cat "$E2E_WORK/check.out")"
e2e_expect "the check names web-2" grep -q web-2 "$E2E_WORK/check.out"
dk_cure 1 web-2
dk_wait_health 1 web-2 healthy
e2e_expect "the docker check passes again after the cure" check_containers

dk_kill 1 web-1
e2e_expect "web-1 exited" test "$(dk_state 1 web-1 | cut -d' ' -f1)" = exited
e2e_expect "nothing answers on n1's web-1 port" test -z "$(fetch "$E2E_ID-n2" 10.77.0.1 $((DK_PORT_BASE + 1)))"
e2e_expect "the docker check fails with a container killed" check_fails
e2e_log "check: $(cat "$E2E_WORK/check.out")"

dk_stop_all 2
mapfile -t n2_apps < <(dk_app_names 2)
e2e_expect "all ${#n2_apps[@]} apps on n2 exited" dkc_is "$(dk_dir 2)" exited "${n2_apps[@]}"
e2e_expect "nothing answers on n2" test -z "$(fetch "$E2E_ID-n1" 10.77.0.2 $((DK_PORT_BASE + 1)))"
dk_start_all 2
body=$(fetch "$E2E_ID-n1" 10.77.0.2 $((DK_PORT_BASE + 1)))
e2e_expect "n2's web-1 answers after start all ($body)" test "$body" = "node=n2 container=web-1"

started=$(e2e_now_ms)
dk_cleanup
cleanup_ms=$(($(e2e_now_ms) - started))
e2e_expect "no engine, containerd, shim or mount of this test is left" no_trace_of "$E2E_WORK"
e2e_expect "the engine directories are gone" test ! -e "$E2E_WORK/n1/dk" -a ! -e "$E2E_WORK/n2/dk"
dk_cleanup
e2e_expect "a second cleanup is harmless" no_trace_of "$E2E_WORK"

# Ctrl-C: a script with an engine and a container gets SIGINT in its process group (as a
# terminal sends it) while it waits; its exit trap must take everything down.
cat >"$E2E_WORK/child.sh" <<'EOF2'
source "$FAILOVERD_SOURCE_DIR/tests/e2e/lib.sh"
source "$FAILOVERD_SOURCE_DIR/tests/docker/docker_lib.sh"
e2e_net 1
dk_start_engines 1
dk_run_apps 1 1
echo "$E2E_WORK $E2E_ID" >"$1.tmp"
mv "$1.tmp" "$1"
sleep 600
EOF2
# A background job of a script starts with SIGINT ignored, which its shell cannot undo: start
# the child with the signals at their defaults, in its own process group like a terminal's
# foreground job.
"$E2E_PYTHON" -c '
import os, signal, sys
for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(sig, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])
' bash "$E2E_WORK/child.sh" "$E2E_WORK/child.ready" >"$E2E_WORK/child.log" 2>&1 &
child=$!
# If this test fails first, the child still cleans up after itself (its TERM trap).
child_cleanup() {
    local deadline=$(($(e2e_now_ms) + 60000))
    alive "$child" && kill -TERM -- "-$child"
    while alive "$child" && [ "$(e2e_now_ms)" -lt "$deadline" ]; do
        sleep 0.1
    done
    alive "$child" && kill -KILL -- "-$child"
    if [ -s "$E2E_WORK/child.log" ] && [ "${child_rc:-1}" -ne 130 ]; then
        echo "---- the interrupted child's output" >&2
        cat "$E2E_WORK/child.log" >&2
    fi
}
E2E_CLEANUP_HOOKS+=(child_cleanup)
e2e_wait "the child's engine and container" 120 test -s "$E2E_WORK/child.ready"
read -r child_work child_id _ <"$E2E_WORK/child.ready"
kill -INT -- "-$child"
e2e_log "sent SIGINT to the child's process group"
e2e_wait "the child's exit after SIGINT" 60 eval '! alive "$child"'
child_rc=0
wait "$child" || child_rc=$?
e2e_expect "the child exited with 130 after Ctrl-C (got $child_rc)" test "$child_rc" -eq 130
e2e_expect "nothing of the interrupted child is left" no_trace_of "$child_work"
e2e_expect "its work directory is gone" test ! -e "$child_work"
e2e_expect "its namespaces are gone" eval '! ip netns list | grep -q "^$child_id-"'

# The standalone command, as a C++ integration test calls it.
es_work="$E2E_WORK/es"
es_cleanup() { "$engine_sh" stop "$es_work" >/dev/null 2>&1 || true; }
E2E_CLEANUP_HOOKS+=(es_cleanup)
started=$(e2e_now_ms)
sock=$("$engine_sh" start "$es_work")
e2e_log "engine.sh start: $sock in $(($(e2e_now_ms) - started)) ms"
e2e_expect "engine.sh start prints its socket" test "$sock" = "$es_work/dk/sock"
e2e_expect "engine.sh start again is a no-op" test "$("$engine_sh" start "$es_work")" = "$sock"
"$engine_sh" run "$es_work" web-7 8087
body=$("$engine_sh" docker "$es_work" exec web-7 wget -q -O - http://127.0.0.1:8087/)
e2e_expect "engine.sh run: web-7 answers ($body)" test "$body" = "node=it container=web-7"
e2e_expect "the container carries label app=shop" \
    test "$(DOCKER_HOST="unix://$sock" /usr/bin/docker ps -q --filter label=app=shop | wc -l)" -eq 1
started=$(e2e_now_ms)
e2e_expect "engine.sh restart-engine keeps the socket" \
    test "$("$engine_sh" restart-engine "$es_work")" = "$sock"
e2e_log "engine.sh restart-engine: $(($(e2e_now_ms) - started)) ms"
e2e_expect "the restarted engine still knows web-7 (exited)" \
    test "$(dkc_state "$es_work/dk" web-7 | cut -d' ' -f2)" = exited
"$engine_sh" stop "$es_work"
e2e_expect "engine.sh stop leaves nothing" no_trace_of "$es_work"
e2e_expect "engine.sh stop removed its directory" test ! -e "$es_work/dk"
e2e_expect "engine.sh stop removed its namespace" \
    eval '! ip netns list | grep -q "^fodk-$(printf %s "$es_work" | sha256sum | cut -c1-10)"'

e2e_log "timings: 2 engines in parallel ready (with the image) in $engines_ms ms;" \
    "$apps containers healthy on n1 in $apps_ms ms; cleanup of 2 engines and their" \
    "$((2 * apps)) containers in $cleanup_ms ms"
