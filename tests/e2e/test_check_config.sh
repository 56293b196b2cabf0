#!/usr/bin/env bash
# failoverd --check-config: the shipped example passes with a one-line summary (exit 0); a
# broken file gives every error as FILE:LINE: key: ... on stderr (exit 2).
set -euo pipefail
: "${FAILOVERD_BIN:?set by ctest}" "${FAILOVERD_SOURCE_DIR:?set by ctest}"

work=$(mktemp -d /tmp/failoverd-check-config-XXXXXX)
trap 'rm -rf "$work"' EXIT

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Runs failoverd with the given arguments; sets rc, out and err.
run() {
    rc=0
    "$FAILOVERD_BIN" "$@" >"$work/out" 2>"$work/err" || rc=$?
    out=$(cat "$work/out")
    err=$(cat "$work/err")
}

expect_rc() {
    local want=$1 what=$2
    if [ "$rc" -ne "$want" ]; then
        fail "$what: exit $rc, expected $want; stdout: $out; stderr: $err"
    fi
}

example="$FAILOVERD_SOURCE_DIR/etc/failoverd.conf"
run --check-config --config "$example"
expect_rc 0 "the shipped example"
want="$example: OK: node $(uname -n), 0 peers, 1 instance (203.0.113.10), 1 check, provider none"
[ "$out" = "$want" ] || fail "summary: got '$out', expected '$want'"
[ -z "$err" ] || fail "the shipped example wrote to stderr: $err"

config="$work/failoverd.conf"
cp "$FAILOVERD_SOURCE_DIR/tests/fixtures/config/broken.conf" "$config"
printf '0123456789abcdef' >"$work/auth.key"
chmod 644 "$work/auth.key"
printf '#!/bin/sh\nexit 0\n' >"$work/master.sh"
chmod 644 "$work/master.sh"
expected="$config:4: nmae: unknown key in [node]; did you mean name? (allowed: name, listen, control_socket, state_dir)
$config:8: auth_key_file: $work/auth.key has mode 0644, open to group or others; chmod 600 it (allowed: a regular file with mode 0600 or stricter)
$config:9: advert_interval: not a duration: '2 seconds' (allowed: 10ms..40.95s in steps of 10ms)
$config:14: url: not valid for type = docker (allowed: type, interval, timeout, rise, fall, weight, socket, label, name, expect, min, require_healthy, events)
$config:18: priority: 300 is out of range (allowed: 1..254)
$config:19: checks: unknown check 'web' (allowed: containers)
$config:20: notify_master: $work/master.sh is not executable, mode 0644 (allowed: a command line whose program is an executable file)
$config:23: reserved_ip: 203.0.113.10 is already used by [instance.minitwit] at line 17 (allowed: each reserved IP in one instance)"

for mode in --check-config ""; do
    run $mode --config "$config"
    expect_rc 2 "the broken file ${mode:-without --check-config}"
    [ -z "$out" ] || fail "the broken file wrote to stdout: $out"
    if [ "$err" != "$expected" ]; then
        fail "errors ${mode:-without --check-config} differ:"
        diff <(echo "$expected") <(echo "$err") >&2 || true
    fi
done

# Fixing the files clears their errors and no others.
chmod 600 "$work/auth.key"
chmod 755 "$work/master.sh"
run --check-config --config "$config"
expect_rc 2 "the partly fixed file"
[ "$(echo "$err" | wc -l)" -eq 6 ] || fail "partly fixed: expected 6 errors, got: $err"
case "$err" in *auth.key* | *master.sh*) fail "fixed files still reported: $err" ;; esac

run --check-config --config "$work/absent.conf"
expect_rc 2 "a missing file"
[ "$err" = "$work/absent.conf: cannot read: No such file or directory" ] || fail "missing file: $err"

run --check-config --no-such-option
expect_rc 2 "an unknown option"
run --check-config --log-level loud --config "$example"
expect_rc 2 "an unknown log level"
run --help
expect_rc 0 "--help"
case "$out" in *--check-config*) ;; *) fail "--help does not mention --check-config: $out" ;; esac
run --version
expect_rc 0 "--version"
case "$out" in "failoverd "[0-9]*" (commit "?*")") ;; *) fail "--version printed: $out" ;; esac
run -V
expect_rc 0 "-V"
case "$out" in "failoverd "[0-9]*" (commit "?*")") ;; *) fail "-V printed: $out" ;; esac
run -h
expect_rc 0 "-h"
case "$out" in *--check-config*) ;; *) fail "-h does not print the help: $out" ;; esac

# A word that is not an option's value is an error, not ignored: the file after
# --check-config is not silently replaced by the one given to --config.
run --config "$example" --check-config "$config"
expect_rc 2 "a stray argument after --check-config"
case "$err" in *"unexpected argument '$config'"*) ;; *) fail "stray argument: $err" ;; esac
[ -z "$out" ] || fail "a stray argument still checked a file: $out"
run "$example"
expect_rc 2 "a bare file name"
case "$err" in *"unexpected argument '$example'"*) ;; *) fail "bare file name: $err" ;; esac

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "check-config: all passed"
