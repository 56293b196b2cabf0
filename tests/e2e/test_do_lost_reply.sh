#!/usr/bin/env bash
# One POST per claim and a fast move after API trouble (provider = digitalocean, fake API,
# 0.5 s actions); each time n1 (MASTER, holding the IP) is killed and n2 must claim the IP:
# (a) the assign is applied but its connection dropped before the reply: one POST in the fake's
#     request log, then reads, and n2's log says so in order;
# (b) every request is answered 503 for 8 s: the IP moves within seconds of the API's recovery,
#     with requests well within the call budget;
# (c) four 429s with retry-after 1: the IP moves, and no request went out before the
#     retry-after of the 429 before it had elapsed.
source "$(dirname "$0")/lib.sh"

E2E_PROVIDER=digitalocean
e2e_net 2
e2e_start_fake_api
e2e_config 1 150
e2e_config 2 100
REQUESTS="$E2E_WORK/api/requests.jsonl"
# A token per node, so the request log says whose request each line is.
token1=$(head -n1 "$E2E_WORK/n1/do-token")
token2="${token1}n2"
(umask 077 && echo "$token2" >"$E2E_WORK/n2/do-token")
e2e_fake_post /_fake/tokens '{"tokens": {"'"$token1"'": {"name": "n1", "scopes": ["*"]}, "'"$token2"'": {"name": "n2", "scopes": ["*"]}}}'

request_lines() { # lines in the fake's request log so far
    if [ -e "$REQUESTS" ]; then wc -l <"$REQUESTS"; else echo 0; fi
}

# requests_py FIRST EXPR: EXPR (Python) over `reqs`, the request log entries after line FIRST.
requests_py() {
    "$E2E_PYTHON" -c '
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()[int(sys.argv[2]):]]
print(eval(sys.argv[3]))
' "$REQUESTS" "$1" "$2"
}

# move_time FIRST: wall time (s) of the first holder change after move FIRST of the holder log.
move_time() {
    "$E2E_PYTHON" -c '
import json, sys
print(json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])])["t"])
' "$E2E_WORK/api/holder.jsonl" "$1"
}

# in_order NODE PATTERN...: node NODE's log has each fixed PATTERN, each on the line of the
# one before or later.
in_order() {
    local log="$E2E_WORK/n$1/log" from=1 line pattern
    shift
    for pattern in "$@"; do
        line=$(tail -n "+$from" "$log" | grep -nF -- "$pattern" | head -n1 | cut -d: -f1)
        [ -n "$line" ] || return 1
        from=$((from + line - 1))
    done
}

outage_lasted() { # MS: at least MS milliseconds since $outage_ms
    [ $(($(e2e_now_ms) - outage_ms)) -ge "$1" ]
}

# n1 MASTER and holding the IP, n2 BACKUP.
n1_holds_the_ip() {
    e2e_start 1
    e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
    e2e_wait "the IP on n1" 30 e2e_holder_is 1
    if [ -z "${E2E_PID[2]:-}" ]; then
        e2e_start 2
    fi
    e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
}

n1_holds_the_ip
e2e_expect_holder "steady state" 1 0 1

e2e_log "(a) the takeover's assign is applied, then its connection dropped before the reply"
base=$(e2e_moves)
first=$(request_lines)
e2e_fake_post /_fake/faults '{"route": "assign", "kind": "commit_then_drop", "count": 1}'
e2e_kill 1 KILL
e2e_wait "n2 MASTER" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2" 30 e2e_holder_is 2
e2e_wait "n2 confirming the IP" 30 grep -qF "IP confirmed" "$E2E_WORK/n2/log"
e2e_holder_stays 2 2
posts=$(requests_py "$first" 'sum(r["method"] == "POST" for r in reqs)')
dropped=$(requests_py "$first" 'sum(r.get("fault") == "commit_then_drop" for r in reqs)')
e2e_expect "the one assign was the dropped one ($dropped)" test "$dropped" -eq 1
e2e_expect "one POST for the claim ($posts)" test "$posts" -eq 1
e2e_expect "n2's log: reply lost, holder read before any POST, IP confirmed" \
    in_order 2 "assign: reply lost" "reading the holder before any new POST" \
    "holder is this droplet: IP confirmed"
e2e_expect "no 'pending event' refusal in n2's log" \
    bash -c "! grep -qF 'pending event' '$E2E_WORK/n2/log'"
e2e_expect_holder "after the lost reply" 2 "$base" 1

e2e_log "(b) an 8 s API outage (503 for every request) while n2 must claim"
n1_holds_the_ip
base=$(e2e_moves)
first=$(request_lines)
outage_ms=$(e2e_now_ms)
e2e_fake_post /_fake/faults '{"route": "any", "kind": "503", "count": -1}'
e2e_kill 1 KILL
e2e_wait "n2 MASTER" 20 e2e_role_is 2 MASTER
e2e_wait "the end of the 8 s outage" 20 outage_lasted 8000
e2e_fake_post /_fake/clear '{}'
recovered_ms=$(e2e_now_ms)
e2e_wait "the IP on n2 after the outage" 60 e2e_holder_is 2
after=$("$E2E_PYTHON" -c 'import sys; print("%.2f" % (float(sys.argv[1]) - int(sys.argv[2]) / 1000))' \
    "$(move_time "$base")" "$recovered_ms")
span=$("$E2E_PYTHON" -c 'import sys; print("%.1f" % (float(sys.argv[1]) - int(sys.argv[2]) / 1000))' \
    "$(move_time "$base")" "$outage_ms")
count=$(requests_py "$first" 'len(reqs)')
failed=$(requests_py "$first" 'sum(r["status"] == 503 for r in reqs)')
e2e_log "figure: the IP moved $after s after the API recovered; $count requests ($failed answered 503) in $span s"
e2e_expect "the move within 5 s of the recovery ($after s)" \
    "$E2E_PYTHON" -c 'import sys; sys.exit(not float(sys.argv[1]) < 5.0)' "$after"
# n1's budget until it was killed plus n2's: 40 + 1 per 300 ms each, far above what is used.
e2e_expect "requests within the call budget ($count in $span s)" \
    "$E2E_PYTHON" -c 'import sys; sys.exit(not int(sys.argv[1]) <= 2 * (40 + float(sys.argv[2]) / 0.3))' \
    "$count" "$span"
e2e_holder_stays 2 2
e2e_expect_holder "after the outage" 2 "$base" 1

e2e_log "(c) four 429s with retry-after: 1 while n2 must claim"
n1_holds_the_ip
base=$(e2e_moves)
first=$(request_lines)
e2e_fake_post /_fake/faults '{"route": "any", "kind": "429", "count": 4, "retry_after": 1}'
e2e_kill 1 KILL
killed_ms=$(e2e_now_ms)
e2e_wait "n2 MASTER" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2 despite 4 x 429" 60 e2e_holder_is 2
took=$("$E2E_PYTHON" -c 'import sys; print("%.2f" % (float(sys.argv[1]) - int(sys.argv[2]) / 1000))' \
    "$(move_time "$base")" "$killed_ms")
limited=$(requests_py "$first" 'sum(r["status"] == 429 for r in reqs)')
limited2=$(requests_py "$first" 'sum(r["status"] == 429 and r["token"] == "n2" for r in reqs)')
# n2's requests only (n1 may have read once more before it died). The fake stamps a request
# when it has read it, n2 counts from when it read the reply: allow 50 ms between the two clocks.
early=$(requests_py "$first" '[round(b["t"] - a["t"], 3) for n2 in [[r for r in reqs if r["token"] == "n2"]] for a, b in zip(n2, n2[1:]) if a["status"] == 429 and b["t"] - a["t"] < 0.95]')
e2e_log "figure: the IP moved $took s after the kill, through $limited 429s"
e2e_expect "the four 429s were answered ($limited, $limited2 of them to n2)" test "$limited" -eq 4
e2e_expect "no request before its retry-after elapsed (early gaps: $early)" test "$early" = "[]"
e2e_holder_stays 2 2
e2e_expect_holder "after the 429s" 2 "$base" 1
e2e_expect_token_unseen
