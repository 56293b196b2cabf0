#!/usr/bin/env bash
# Real containers behind the reserved-IP edge, two nodes with preempt = no, a client sending
# 50 requests/s the whole time:
#  1. `failoverctl handover` from n1 to n2 loses no request: the old holder keeps serving until
#     the assign action completes, then n2 answers everything.
#  2. `docker kill` of n2's serving container moves the IP back to n1; when n2's container runs
#     again, n2 does not take the IP back (preempt = no).
#  3. kill -9 of n1's daemon (its containers keep running, but nobody keeps the IP on it): the IP
#     moves to n2 and n2 answers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/real_lib.sh"

E2E_INSTANCE_EXTRA="preempt = no"
real_setup 2
real_client_start

e2e_log "failoverctl handover web --to n2"
base=$(e2e_moves)
from=$(real_now)
e2e_ctl 1 handover "$E2E_INSTANCE" --to n2 >/dev/null
e2e_wait "the IP on n2 after the hand-over" 30 e2e_holder_is 2
move_t=$(real_last_move_time)
e2e_wait "requests answered by n2" 30 real_answered_since "$move_t" n2
e2e_holder_stays 2 1
e2e_expect_holder "after the hand-over" 2 "$base" 1
real_invariants "$from" "$(real_now)" n2 "$move_t" "" 0

e2e_log "docker kill web-1 on n2"
base=$(e2e_moves)
from=$(real_now)
dk_kill 2 web-1
e2e_wait "the IP on n1" 30 e2e_holder_is 1
move_t=$(real_last_move_time)
e2e_wait "requests answered by n1" 30 real_answered_since "$move_t" n1
real_invariants "$from" "$(real_now)" n1 "$move_t"
dk 2 start web-1 >/dev/null
dk_wait_health 2 web-1 healthy
e2e_wait "n2 BACKUP again" 30 e2e_role_is 2 BACKUP
e2e_holder_stays 1 3
e2e_expect_holder "n2 healthy again, preempt = no" 1 "$base" 1

e2e_log "kill -9 of n1's daemon"
base=$(e2e_moves)
from=$(real_now)
e2e_kill 1 KILL
e2e_wait "the IP on n2 after the crash" 30 e2e_holder_is 2
move_t=$(real_last_move_time)
e2e_wait "requests answered by n2" 30 real_answered_since "$move_t" n2
e2e_expect_holder "after the crash" 2 "$base" 1
real_invariants "$from" "$(real_now)" n2 "$move_t"

real_client_stop
