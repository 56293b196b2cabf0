#!/usr/bin/env bash
# `failoverctl check` end to end against the fake Docker Engine on a unix socket in a temp dir:
# exit codes 0/1/2, --json, a config file, and --wait succeeding when the containers come up
# part-way through the wait.
set -euo pipefail

src=${FAILOVERD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
ctl=${FAILOVERCTL_BIN:-$src/build/failoverctl}
fixtures=$src/tests/fixtures/docker
# Debian's python3 is a build dependency and starts faster than a pyenv shim.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

work=$(mktemp -d /tmp/failoverd-e2e-check-XXXXXX)
engine_pid=
background_pids=()
cleanup() {
    local pid
    for pid in "${background_pids[@]}" $engine_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${background_pids[@]}" $engine_pid; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }

# Waits for a condition with a deadline; polling a cheap test is the wait, not a sleep for time.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            return 1
        fi
        sleep 0.05
    done
}

set_state() { cp "$1" "$work/state.json.tmp" && mv "$work/state.json.tmp" "$work/state.json"; }

sock=$work/docker.sock
set_state "$fixtures/all_up.json"
"$python" "$src/tests/fakes/fake_docker_engine.py" "$sock" --state "$work/state.json" \
    2>"$work/engine.log" &
engine_pid=$!
if ! wait_for 30 test -S "$sock"; then
    echo "fake engine did not start:"
    cat "$work/engine.log"
    exit 1
fi

# Runs failoverctl, keeping stdout, stderr and the exit code.
run() {
    set +e
    "$ctl" "$@" >"$work/out" 2>"$work/err"
    rc=$?
    set -e
}

expect_rc() {
    local want=$1 what=$2
    if [ "$rc" -eq "$want" ]; then
        pass "$what (exit $rc)"
    else
        fail "$what: exit $rc, expected $want"
        sed 's/^/    stdout: /' "$work/out"
        sed 's/^/    stderr: /' "$work/err"
    fi
}

expect_out() {
    local pattern=$1 file=${2:-$work/out}
    if grep -qF -- "$pattern" "$file"; then
        pass "output has '$pattern'"
    else
        fail "output lacks '$pattern'"
        sed 's/^/    /' "$file"
    fi
}

adhoc=(check --docker-socket "$sock" --docker-label app=minitwit --docker-expect 10)

# Exit 0: all up.
run "${adhoc[@]}"
expect_rc 0 "all 10 containers running"
expect_out "docker  PASS  10/10 running"
expect_out "OK: 1 check passed"

# Exit 1: one container stopped, named in the reason.
set_state "$fixtures/one_missing.json"
run "${adhoc[@]}"
expect_rc 1 "one container stopped"
expect_out "docker  FAIL  9/10 running; missing: web-3"

# Exit 1: unhealthy.
set_state "$fixtures/one_unhealthy.json"
run "${adhoc[@]}"
expect_rc 1 "one container unhealthy"
expect_out "10/10 running; api-1 unhealthy"

# DOCKER_HOST=unix://... picks the socket, as for the docker CLI.
set_state "$fixtures/all_up.json"
set +e
DOCKER_HOST=unix://$sock "$ctl" check --docker-expect 10 --docker-label app=minitwit \
    >"$work/out" 2>"$work/err"
rc=$?
set -e
expect_rc 0 "DOCKER_HOST=unix://... is used"

# Exit 1 with a clear reason: no engine at that path.
run check --docker-socket "$work/absent.sock" --docker-expect 10
expect_rc 1 "absent socket"
expect_out "docker socket $work/absent.sock: no such file"

# --json: one document that parses, with the fields CI scripts read.
set_state "$fixtures/one_missing.json"
run "${adhoc[@]}" --json
expect_rc 1 "--json on failure"
if "$python" - "$work/out" <<'EOF'; then
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["ok"] is False, doc
assert doc["rounds"] == 1, doc
assert isinstance(doc["elapsed_ms"], (int, float)), doc
(check,) = doc["checks"]
assert check["name"] == "docker" and check["type"] == "docker", check
assert check["ok"] is False and check["verdict"] == "fail", check
assert check["reason"] == "9/10 running; missing: web-3", check
assert check["latency_ms"] >= 0, check
EOF
    pass "--json parses and says why"
else
    fail "--json document"
    cat "$work/out"
fi
set_state "$fixtures/all_up.json"
run "${adhoc[@]}" --json
expect_rc 0 "--json on success"
if "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is True' \
    "$work/out"; then
    pass "--json ok is true"
else
    fail "--json ok"
fi

# Exit 2: usage errors.
run check --no-such-flag
expect_rc 2 "unknown flag"
run no-such-command
expect_rc 2 "unknown command"
run
expect_rc 2 "no command"
run "${adhoc[@]}" --wait soon
expect_rc 2 "malformed --wait"
run "${adhoc[@]}" --check nope
expect_rc 2 "--check with an unknown name"
expect_out "no check named 'nope'" "$work/err"
run check --tcp not-an-endpoint
expect_rc 2 "malformed --tcp"
run --help
expect_rc 0 "--help"
run check --help
expect_rc 0 "check --help"
expect_out "--docker-expect"

expect_no_out() {
    local pattern=$1 file=${2:-$work/out}
    if grep -qF -- "$pattern" "$file"; then
        fail "output has '$pattern'"
        sed 's/^/    /' "$file"
    else
        pass "output lacks '$pattern'"
    fi
}

# -h, -V and --version on failoverctl itself; --version names the commit.
run -h
expect_rc 0 "-h"
expect_out "Usage: failoverctl"
for flag in -V --version; do
    run "$flag"
    expect_rc 0 "$flag"
    if grep -qE '^failoverctl [0-9][^ ]* \(commit [^ )]+\)$' "$work/out"; then
        pass "$flag names the version and the commit"
    else
        fail "$flag printed: $(cat "$work/out")"
    fi
done

# --help (or -h) on any command prints its help and does nothing else: no daemon is asked
# (the socket does not exist, which would be exit 3), nothing is reported as done.
absent_socket=$work/absent.sock
help_cases=("handover web --help --socket $absent_socket" "handover web --to n2 -h --socket $absent_socket"
    "maintenance on --help --socket $absent_socket" "maintenance off -h --socket $absent_socket"
    "status --help --socket $absent_socket" "doctor --help --socket $absent_socket"
    "rollout --help" "check -h")
for args in "${help_cases[@]}"; do
    # shellcheck disable=SC2086 # the words are the arguments
    run $args
    expect_rc 0 "failoverctl $args"
    expect_out "Usage: failoverctl ${args%% *}"
    if grep -qxE 'handover requested|maintenance (on|off)' "$work/out"; then
        fail "failoverctl $args acted: $(cat "$work/out")"
    fi
done

# A stray word is a usage error (exit 2) everywhere, named in the message, and nothing runs.
for args in "check --config $work/failoverd.conf web" "status extra" "doctor extra" \
    "rollout --host a --host b --deploy true extra"; do
    # shellcheck disable=SC2086 # the words are the arguments
    run $args
    expect_rc 2 "failoverctl $args"
    expect_out "unexpected argument" "$work/err"
    expect_no_out "PASS"
done
run handover web extra --socket "$absent_socket"
expect_rc 2 "handover with two instances"
run maintenance on off --socket "$absent_socket"
expect_rc 2 "maintenance with two states"

# The ad-hoc options take what the config keys take, with the option named in the message.
run check --docker-socket "$sock" --docker-expect 0
expect_rc 2 "--docker-expect 0"
expect_out "--docker-expect: 0 is out of range (allowed: 1..10000)" "$work/err"
run check --docker-socket "$sock" --docker-expect 10001
expect_rc 2 "--docker-expect 10001"
expect_out "--docker-expect: 10001 is out of range" "$work/err"
run check --docker-socket "$sock" --docker-min 0
expect_rc 2 "--docker-min 0"
expect_out "--docker-min: 0 is out of range" "$work/err"
run check --docker-socket "$sock" --docker-expect 10 --docker-min 5
expect_rc 2 "--docker-expect with --docker-min"
expect_out "--docker-min: cannot be combined with --docker-expect" "$work/err"
run "${adhoc[@]}" --interval 1ms
expect_rc 2 "--interval 1ms"
expect_out "--interval: 1ms is out of range (allowed: 100ms..1h)" "$work/err"
run "${adhoc[@]}" --timeout 100h
expect_rc 2 "--timeout 100h"
expect_out "--timeout: 100h is out of range" "$work/err"
run "${adhoc[@]}" --interval 1s --timeout 5s
expect_rc 2 "--timeout longer than --interval"
expect_out "--timeout: 5s is longer than interval 1s" "$work/err"
run "${adhoc[@]}" --docker-label =x
expect_rc 2 "--docker-label =x"
expect_out "--docker-label:" "$work/err"
run "${adhoc[@]}" --timeout 5s
expect_rc 0 "--timeout 5s alone (the pause grows with it)"

# A config file: the checks it names run; config errors are printed as file:line: key: and
# exit 2.
cat >"$work/failoverd.conf" <<EOF
[check.stack]
type = docker
socket = $sock
label = app=minitwit
expect = 10

[check.web]
type = http
url = http://127.0.0.1:1/
timeout = 500ms
EOF
set_state "$fixtures/all_up.json"
run check --config "$work/failoverd.conf" --check stack
expect_rc 0 "config file, --check stack"
expect_out "stack  PASS  10/10 running"
run check --config "$work/failoverd.conf"
expect_rc 1 "config file, all checks (web is refused)"
expect_out "web    FAIL"
run check --config "$work/failoverd.conf" --check nope
expect_rc 2 "config file, unknown --check"
printf '[check.bad]\ntype = docker\nexpect = many\n' >"$work/bad.conf"
run check --config "$work/bad.conf"
expect_rc 2 "config error"
expect_out "$work/bad.conf:3: expect:" "$work/err"
run check --config "$work/failoverd.conf" --check stack --timeout 100h
expect_rc 2 "config file, --timeout 100h"
expect_out "--timeout: 100h is out of range" "$work/err"

# Without a selector every container on the host counts: a one-shot run still names the one
# that stopped (the most recent), not the old leftovers (days to months ago, or never ran).
set_state "$fixtures/host_with_leftovers.json"
run check --docker-socket "$sock" --docker-expect 11
expect_rc 1 "no selector, one short"
expect_out "docker  FAIL  10/11 running; missing: web-3  ("
run check --docker-socket "$sock" --docker-expect 12
expect_rc 1 "no selector, two short"
expect_out "docker  FAIL  10/12 running; missing: web-3, build-cache  ("
expect_no_out "old-cron"

# --wait gives up with exit 1 when the stack stays short.
set_state "$fixtures/one_missing.json"
run "${adhoc[@]}" --wait 1s --interval 200ms
expect_rc 1 "--wait runs out"
expect_out "--wait ran out"

# --wait succeeds when the containers come up part-way through: a background subshell fixes
# the state once the first failing round has been printed (that change is the stimulus).
set_state "$fixtures/one_missing.json"
(
    wait_for 30 grep -qs "FAIL  9/10 running" "$work/wait.out" && set_state "$fixtures/all_up.json"
) &
background_pids+=($!)
set +e
"$ctl" "${adhoc[@]}" --wait 20s --interval 200ms >"$work/wait.out" 2>"$work/wait.err"
rc=$?
set -e
cp "$work/wait.out" "$work/out"
expect_rc 0 "--wait 20s succeeds once the stack is up"
expect_out "docker  FAIL  9/10 running; missing: web-3"
expect_out "docker  PASS  10/10 running"
if grep -qE "^OK: 1 check passed \(([2-9]|[1-9][0-9]+) rounds" "$work/out"; then
    pass "--wait took more than one round"
else
    fail "--wait summary"
    cat "$work/out"
fi

# The same with --json, which prints nothing until the end: the stimulus is a fixed delay.
set_state "$fixtures/one_missing.json"
(sleep 1 && set_state "$fixtures/all_up.json") &
background_pids+=($!)
run "${adhoc[@]}" --wait 20s --interval 200ms --json
expect_rc 0 "--wait 20s --json succeeds once the stack is up"
if "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and d["rounds"] >= 2, d' \
    "$work/out"; then
    pass "--wait --json reports several rounds"
else
    fail "--wait --json document"
    cat "$work/out"
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all passed"
