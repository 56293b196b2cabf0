#!/usr/bin/env bash
# `failoverctl rollout` over three nodes: both backups first (one at a time, in --host
# order), then the master after it handed the IP to an updated backup; with --failback the IP
# ends on the first master again. The client never finds the IP on a node that is down.
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
[ "$ROLLOUT_UNHEALTHY" -eq 0 ] ||
    e2e_fail "$ROLLOUT_UNHEALTHY requests found the IP on a node without a healthy service"
e2e_expect_holder "after the rollout" 1 "$base" 2
