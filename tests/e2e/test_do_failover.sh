#!/usr/bin/env bash
# The reserved IP follows the master: two daemons with provider = digitalocean (droplet id from
# the metadata service) against the fake API in its own namespace, actions completing after
# 0.5 s. kill -9 the master: the backup takes over and the fake's holder moves to it, once. The
# old master comes back, preempts and takes the IP back, once. SIGTERM it: it resigns with
# priority 0 and the IP moves to the backup, once. Nothing moves in between.
source "$(dirname "$0")/lib.sh"

E2E_PROVIDER=digitalocean
e2e_net 2
e2e_start_fake_api
e2e_config 1 150
e2e_config 2 100
e2e_start 1
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "the IP on n1" 30 e2e_holder_is 1
e2e_start 2
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
e2e_holder_stays 1 3
e2e_expect_holder "steady state" 1 0 1
e2e_expect "n2 (a backup) never posted an assign" \
    test "$(grep -c '"droplet_id": *'$((E2E_DROPLET_BASE + 2)) "$E2E_WORK/api/requests.jsonl" || true)" = 0

base=$(e2e_moves)
start_ms=$(e2e_now_ms)
e2e_kill 1 KILL
e2e_wait "n2 MASTER after kill -9 of n1" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2" 30 e2e_holder_is 2
e2e_log "the IP reached n2 $(($(e2e_now_ms) - start_ms)) ms after kill -9 (as seen by polling)"
e2e_holder_stays 2 3
e2e_expect_holder "after kill -9 of n1" 2 "$base" 1

base=$(e2e_moves)
e2e_start 1
e2e_wait "n1 MASTER again (preempt)" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP again" 20 e2e_role_is 2 BACKUP
e2e_wait "the IP back on n1" 30 e2e_holder_is 1
e2e_holder_stays 1 3
e2e_expect_holder "after n1's restart and preemption" 1 "$base" 1

base=$(e2e_moves)
start_ms=$(e2e_now_ms)
e2e_kill 1 TERM
e2e_expect "n1 exited 0 after SIGTERM" test "$E2E_LAST_EXIT" -eq 0
e2e_wait "the IP on n2 after SIGTERM of n1" 30 e2e_holder_is 2
e2e_log "the IP reached n2 $(($(e2e_now_ms) - start_ms)) ms after SIGTERM (including n1's shutdown)"
e2e_expect "n2 MASTER" e2e_role_is 2 MASTER
reason=$(e2e_json 2 'inst()["last_transition"]["reason"]')
e2e_expect "n2 took over on n1's resign: $reason" grep -q "resigned" <<<"$reason"
e2e_holder_stays 2 3
e2e_expect_holder "after SIGTERM of n1" 2 "$base" 1
e2e_expect_token_unseen
