#!/usr/bin/env bash
# Issue 21, items 5 and 7: a reload cannot block the loop, and what it echoes from a config is
# escaped and bounded. A pair at 100 ms adverts; n1 (MASTER) is sent SIGHUP with its config
# path replaced by a FIFO nobody writes to, then by 1.5 MB and by 1 MiB of random bytes. Each
# reload is refused with a clear error while n1 keeps advertising (n2 never takes over, n1's
# control socket answers), the log gets a bounded number of lines with no raw control byte,
# and the old configuration stays in force; a good file then reloads as usual.
source "$(dirname "$0")/lib.sh"

e2e_pair

conf="$E2E_WORK/n1/failoverd.conf"
log="$E2E_WORK/n1/log"
cp "$conf" "$E2E_WORK/n1/good.conf"
transitions() { e2e_json "$1" 'inst()["transitions"]'; }
failed_reloads() { e2e_json 1 'd["reloads"]["failed"]'; }
failed_reloads_are() { [ "$(failed_reloads)" = "$1" ]; }
n2_transitions=$(transitions 2)

# The pair as it should be: n1 MASTER, n2 BACKUP with no new transition, one master.
pair_unchanged() {
    e2e_expect "n1 still MASTER" e2e_role_is 1 MASTER
    e2e_expect "n2 never left BACKUP" test "$(transitions 2)" = "$n2_transitions"
    e2e_expect "one master" e2e_masters_are 1
    e2e_expect "n1 still on the old configuration" \
        test "$(e2e_json 1 'inst()["configured_priority"]')" = 150
}
# Every byte of n1's log is printable text or a newline.
log_clean() {
    ! LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f]' "$log"
}
# reload_lines FROM: how many lines of n1's log since line FROM came from reading the file.
reload_lines() {
    tail -n +"$1" "$log" | grep -caE 'failoverd\.conf|more errors|reload rejected' || true
}

# 1. A FIFO: opened without blocking and refused; the loop never waits for a writer.
rm "$conf"
mkfifo "$conf"
e2e_kill 1 HUP
e2e_wait "the FIFO reload refused" 20 failed_reloads_are 1
grep -q "reload rejected: 1 configuration error(s), the first: .*failoverd.conf: is a FIFO, not a regular file" "$log" ||
    e2e_fail "the FIFO was not named in the log"
# The control socket answers at once and adverts keep flowing for a while after the signal.
start=$(e2e_now_ms)
timeout 5 "$FAILOVERCTL_BIN" status --socket "$E2E_WORK/n1/control.sock" >/dev/null ||
    e2e_fail "failoverctl status did not answer within 5 s after the FIFO reload"
e2e_log "failoverctl status answered in $(($(e2e_now_ms) - start)) ms"
heard_at_n2() { e2e_json 2 'inst()["adverts"]["received"]'; }
heard_more() { [ "$(heard_at_n2)" -ge "$1" ]; }
heard=$(heard_at_n2)
e2e_wait "20 more adverts from n1 at n2" 20 heard_more $((heard + 20))
pair_unchanged
rm "$conf"

# 2. 1.5 MB of random bytes: over the size limit, refused before parsing, in one line.
from=$(($(wc -l <"$log") + 1))
head -c 1500000 /dev/urandom >"$conf"
e2e_kill 1 HUP
e2e_wait "the oversized reload refused" 20 failed_reloads_are 2
grep -q "failoverd.conf: is 1500000 bytes, over the limit of 1048576" "$log" ||
    e2e_fail "the size limit was not logged"
lines=$(reload_lines "$from")
e2e_log "oversized garbage: $lines log lines"
e2e_expect "at most 3 lines for the oversized file" test "$lines" -le 3

# 3. Just under 1 MiB of random bytes: parsed, at most 20 errors and a count, all escaped.
from=$(($(wc -l <"$log") + 1))
head -c $((1024 * 1024 - 1)) /dev/urandom >"$conf"
e2e_kill 1 HUP
e2e_wait "the garbage reload refused" 20 failed_reloads_are 3
e2e_wait "the error count logged" 10 grep -qa "more errors" "$log"
lines=$(reload_lines "$from")
e2e_log "1 MiB of garbage: $lines log lines, $(tail -n +"$from" "$log" | wc -c) bytes"
e2e_expect "at most 23 lines for the garbage file" test "$lines" -le 23
e2e_expect "no raw control byte in n1's log" log_clean
pair_unchanged

# 4. The good file again: reloads as usual.
cp "$E2E_WORK/n1/good.conf" "$conf"
e2e_kill 1 HUP
reloads_are() { [ "$(e2e_json 1 'd["reloads"]["total"]')" = "$1" ]; }
e2e_wait "the good reload" 20 reloads_are 4
e2e_expect "no new failed reload" failed_reloads_are 3
pair_unchanged
e2e_expect "still no raw control byte in n1's log" log_clean
