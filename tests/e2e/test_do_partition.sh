#!/usr/bin/env bash
# A partition between the peers while both still reach the API (provider = digitalocean, fake
# API, 0.5 s actions, reconcile every 1 s): both nodes are MASTER, but the partition rule keeps
# the IP from ping-ponging: at most 2 moves (the backup's first claim, the higher master taking
# it back) over 8 s, none in the last 4 s. After the heal there is one master, n1, and the IP is
# on it and stays there.
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
n1_knows_n2() { e2e_ctl 1 status --json 2>/dev/null | grep -q '"n2"'; }
e2e_wait "n1 to hear from n2 (presence notice)" 20 n1_knows_n2
e2e_holder_stays 1 2
e2e_expect_holder "steady state" 1 0 1

base=$(e2e_moves)
e2e_partition 1 2
e2e_wait "n2 MASTER while partitioned" 20 e2e_role_is 2 MASTER
e2e_expect "n1 stays MASTER on its side" e2e_role_is 1 MASTER

# Watch 8 reconcile intervals of both masters.
deadline=$(($(e2e_now_ms) + 8000))
quiet_from=$(($(e2e_now_ms) + 4000))
moves_at_quiet=""
while [ "$(e2e_now_ms)" -lt "$deadline" ]; do
    moves=$(($(e2e_moves) - base))
    [ "$moves" -le 2 ] || e2e_fail "the IP moved $moves times during the partition"
    if [ -z "$moves_at_quiet" ] && [ "$(e2e_now_ms)" -ge "$quiet_from" ]; then
        moves_at_quiet=$moves
    fi
    for i in 1 2; do
        role=$(e2e_role "$i")
        if [ -n "$role" ] && [ "$role" != MASTER ]; then
            e2e_fail "n$i is $role during the partition"
        fi
    done
    sleep 0.2
done
moves=$(($(e2e_moves) - base))
e2e_log "during the partition: $moves moves, holder $(e2e_holder)"
e2e_expect "no move in the last 4 s of the partition" test "$moves" = "$moves_at_quiet"
e2e_expect_holder "end of the partition" "$(e2e_holder)" "$base" 1 2
during=$moves

e2e_heal 1 2
e2e_wait "n2 BACKUP after the heal" 20 e2e_role_is 2 BACKUP
e2e_expect "n1 MASTER after the heal" e2e_role_is 1 MASTER
e2e_expect "exactly one master after the heal" e2e_masters_are 1
e2e_wait "the IP on n1 after the heal" 30 e2e_holder_is 1
e2e_holder_stays 1 4
e2e_expect_holder "after the heal" 1 "$base" 1 $((during + 1))
