#!/usr/bin/env bash
# A noisy, untidy hook cannot flood the log or outlive its run: n2's notify_master prints an
# escape sequence and an invalid UTF-8 byte, then about 8 MB of short lines, and leaves a
# `sleep` running in the background. After n2 takes over from a killed n1, the lines n2 logged
# for the hook stay within the per-run limit plus one line counting what was not logged, the
# sleeper is gone, and no raw ESC byte reached the log (it shows as \x1b).
source "$(dirname "$0")/lib.sh"

e2e_net 2
cat >"$E2E_WORK/flood.sh" <<EOF2
#!/bin/sh
sleep 1000 &
echo \$! >"$E2E_WORK/sleeper.pid"
printf 'colour \033[31mred\033[0m, title \033]0;owned\007, byte \377 end\n'
seq 1 1100000
echo "flood done" >"$E2E_WORK/flood.done"
EOF2
chmod 755 "$E2E_WORK/flood.sh"
e2e_config 1 150
e2e_config 2 100
sed -i "s|^notify_master = .*|notify_master = $E2E_WORK/flood.sh|" "$E2E_WORK/n2/failoverd.conf"
e2e_start 1
e2e_start 2
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP

e2e_kill 1 KILL
e2e_wait "n2 MASTER after kill -9 of n1" 20 e2e_role_is 2 MASTER
e2e_wait "the flood hook to run" 20 test -s "$E2E_WORK/flood.done"
log="$E2E_WORK/n2/log"
e2e_wait "n2 to log the end of notify_master" 30 grep -aq "hook notify_master \(finished\|failed\)" "$log"
sleeper=$(cat "$E2E_WORK/sleeper.pid")

# Gone, or a zombie waiting for whatever reaps orphans here: either way it no longer runs.
sleeper_running() {
    local state
    state=$(awk '{print $3}' "/proc/$sleeper/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}
gone=yes
wait_for_sleeper() {
    local deadline=$(($(e2e_now_ms) + 15000))
    while sleeper_running; do
        if [ "$(e2e_now_ms)" -gt "$deadline" ]; then
            gone=no
            return
        fi
        sleep 0.1
    done
}
wait_for_sleeper

hook_lines=$(grep -ac "hook notify_master" "$log" || true)
output_lines=$(grep -ac "hook notify_master std" "$log" || true)
esc_lines=$(grep -ac $'\x1b' "$log" || true)
e2e_log "n2 logged $hook_lines lines about notify_master ($output_lines of its output);" \
    "the background sleeper (pid $sleeper) gone: $gone; lines with a raw ESC: $esc_lines"
grep -a "hook notify_master" "$log" | grep -av "stdout: [0-9]*$" >&2 || true

if [ "$gone" = no ]; then
    kill -KILL "$sleeper" 2>/dev/null || true
    e2e_fail "the hook's background sleeper (pid $sleeper) still runs 15 s after the hook ended"
fi
e2e_log "ok: the hook's background sleeper is gone"
e2e_expect "at most 150 log lines for the hook's run" test "$hook_lines" -le 150
e2e_expect "the hook's first lines are logged" grep -q "hook notify_master stdout: 1$" "$log"
e2e_expect "one line counts the lines not logged" \
    grep -Eq "hook notify_master output: [0-9]+ more lines \([0-9.]+ [kM]?B\) not logged" "$log"
e2e_expect "no raw ESC byte in n2's log" test "$esc_lines" -eq 0
e2e_expect "the escape sequence is logged escaped" grep -qF 'colour \x1b[31mred\x1b[0m' "$log"
e2e_expect "the invalid byte is logged escaped" grep -qF 'byte \xff end' "$log"
