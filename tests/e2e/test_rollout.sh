#!/usr/bin/env bash
# `failoverctl rollout` on a pair with real containers (provider = digitalocean, fake API, 0.5 s
# actions), with a client sending 50 requests/s through the reserved-IP edge the whole time:
#  1. n1 is MASTER: the rollout updates n2 first, gates it, hands the IP to n2, then updates
#     n1. No request fails.
#  2. A deploy that leaves a container down on the first host stops the rollout there with
#     exit 1: the other host is not touched and the IP stays on a healthy node.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rollout_lib.sh"

rollout_setup 2
rollout_run 0 --dry-run
grep -q 'plan: update .*-n2, then .*-n1 (after handing over web)' "$E2E_WORK/rollout.out" ||
    e2e_fail "the dry run's plan is not n2 first, then n1"
[ ! -s "$E2E_WORK/deploy.log" ] || e2e_fail "the dry run deployed something"

rollout_client_start
base=$(e2e_moves)
rollout_run 0
order=$(rollout_deploy_order)
e2e_log "deploy order: $order"
[ "$order" = "n2 n1" ] || e2e_fail "deploy order was '$order', expected the backup n2 first"
# n1 has the higher priority and preempts once it is back and healthy: the IP may return.
e2e_wait "n1 and n2 running again" 30 e2e_is_ready 1
e2e_wait "a MASTER holding the IP" 30 e2e_holder_is 1
rollout_client_stop
[ "$ROLLOUT_FAILED" -eq 0 ] || e2e_fail "$ROLLOUT_FAILED requests were refused, reset or answered with an error during the rollout"
"$E2E_PYTHON" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True, r
steps = [(s["host"].rsplit("-", 1)[1], s["step"]) for s in r["steps"]]
print("report steps:", steps, file=sys.stderr)
assert steps.index(("n2", "deploy")) < steps.index(("n1", "handover web")) < steps.index(("n1", "deploy")), steps
' "$E2E_WORK/rollout.json" || e2e_fail "the JSON report does not show n2, hand-over, then n1"
e2e_expect_holder "after the rollout" 1 "$base" 1 2

e2e_log "second rollout: n2's deploy leaves web-3 down"
touch "$E2E_WORK/break-n2"
: >"$E2E_WORK/deploy.log"
base=$(e2e_moves)
rollout_client_start
ROLLOUT_CHECK_WAIT=5s rollout_run 1
rollout_client_stop
order=$(rollout_deploy_order)
[ "$order" = "n2" ] || e2e_fail "deploys after the failed gate: '$order' (n1 must stay untouched)"
grep -q "rollout stopped at $E2E_ID-n2: checks did not pass" "$E2E_WORK/rollout.out" ||
    e2e_fail "the output does not name n2's failed checks"
grep -q "web-3" "$E2E_WORK/rollout.out" || e2e_fail "the output does not say what failed (web-3)"
e2e_expect "n1 still MASTER" e2e_role_is 1 MASTER
e2e_expect_holder "after the failed rollout" 1 "$base" 0
[ "$ROLLOUT_FAILED" -eq 0 ] || e2e_fail "$ROLLOUT_FAILED requests were refused, reset or answered with an error during the rollout"
