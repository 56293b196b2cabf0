#!/usr/bin/env bash
# `failoverctl rollout` over three nodes: both backups first (one at a time, in --host
# order), then the master after it handed the IP to an updated backup; with --failback the IP
# ends on the first master again. Real containers; no request through the edge fails.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/rollout_lib.sh"

rollout_setup 3
rollout_client_start
base=$(e2e_moves)
rollout_run 0 --failback
order=$(rollout_deploy_order)
e2e_log "deploy order: $order"
[ "$order" = "n2 n3 n1" ] || e2e_fail "deploy order was '$order', expected n2 n3 n1"
e2e_wait "the IP on n1 after the fail-back" 30 e2e_holder_is 1
rollout_client_stop
[ "$ROLLOUT_FAILED" -eq 0 ] || e2e_fail "$ROLLOUT_FAILED requests were refused, reset or answered with an error during the rollout"
e2e_expect_holder "after the rollout" 1 "$base" 2
