#!/usr/bin/env bash
# API faults during failover (provider = digitalocean, fake API, 0.5 s actions): the holder
# still ends on the right node, moved once each time. kill -9 the master while the API answers
# the next 3 assigns with 503; restart it (it preempts) during a burst of 429s; SIGTERM it while
# the next assign is committed but its reply is lost (an ambiguous POST must not move twice).
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
e2e_expect_holder "steady state" 1 0 1

status_count() { # how many API answers with HTTP status $1 so far
    e2e_fake_json 'd["counters"]["by_status"].get("'"$1"'", 0)'
}

base=$(e2e_moves)
before=$(status_count 503)
e2e_fake_post /_fake/faults '{"route": "assign", "kind": "503", "count": 3}'
e2e_log "the next 3 assigns get 503"
e2e_kill 1 KILL
e2e_wait "n2 MASTER after kill -9 of n1" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2 despite 3 x 503" 60 e2e_holder_is 2
e2e_expect "n2 got the 3 503s" test $(($(status_count 503) - before)) -ge 3
e2e_holder_stays 2 3
e2e_expect_holder "after kill -9 with 3 x 503" 2 "$base" 1

base=$(e2e_moves)
before=$(status_count 429)
e2e_fake_post /_fake/faults '{"route": "any", "kind": "429", "count": 4, "retry_after": 1}'
e2e_log "the next 4 API requests get 429 (retry-after: 1)"
e2e_start 1
e2e_wait "n1 MASTER again (preempt)" 20 e2e_role_is 1 MASTER
e2e_wait "the IP back on n1 despite 4 x 429" 90 e2e_holder_is 1
e2e_expect "the daemons got the 4 429s" test $(($(status_count 429) - before)) -ge 4
e2e_holder_stays 1 3
e2e_expect_holder "after the restart with 4 x 429" 1 "$base" 1
e2e_fake_post /_fake/clear '{}'

base=$(e2e_moves)
e2e_fake_post /_fake/faults '{"route": "assign", "kind": "commit_then_drop", "count": 1}'
e2e_log "the next assign is committed, then its connection dropped"
e2e_kill 1 TERM
e2e_wait "n2 MASTER after SIGTERM of n1" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2 after the lost reply" 60 e2e_holder_is 2
e2e_holder_stays 2 4
e2e_expect_holder "after SIGTERM with a lost assign reply" 2 "$base" 1
e2e_expect_token_unseen
