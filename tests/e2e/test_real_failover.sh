#!/usr/bin/env bash
# Real containers behind the reserved-IP edge, two nodes, preempt = yes (the default), a
# client sending 50 requests/s the whole time. Each fault on n1 moves the IP to n2 and every
# request sent after the move is answered by n2; n1 takes the IP back once healthy again:
#  1. `docker kill` of n1's serving container (web-1)
#  2. `docker stop` of all of n1's containers, then `docker start` (rise, then preempt)
#  3. a container that keeps running but turns unhealthy: after the move no request is
#     answered by it
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/real_lib.sh"

real_setup 2
real_client_start

# real_fault_round WHAT BAD FAULT... : runs FAULT, expects the IP on n2 (one move) and the
# traffic invariants, then lets the caller repair n1.
real_fault_round() {
    local what=$1 bad=$2 base from move_t
    shift 2
    e2e_log "$what on n1"
    base=$(e2e_moves)
    from=$(real_now)
    "$@"
    e2e_wait "the IP on n2 after $what" 30 e2e_holder_is 2
    move_t=$(real_last_move_time)
    e2e_wait "requests answered by n2" 30 real_answered_since "$move_t" n2
    e2e_holder_stays 2 1
    e2e_expect_holder "after $what" 2 "$base" 1
    real_invariants "$from" "$(real_now)" n2 "$move_t" "$bad"
}

# real_recover WHAT REPAIR...: runs REPAIR; n1, healthy again, takes the IP back (preempt),
# one move. The move count is taken before the repair: the preemption may be done by the time
# the repair command returns.
real_recover() {
    local what=$1 base from move_t
    shift
    base=$(e2e_moves)
    from=$(real_now)
    "$@"
    e2e_wait "n1 MASTER again after $what" 60 e2e_role_is 1 MASTER
    e2e_wait "the IP back on n1" 30 e2e_holder_is 1
    move_t=$(real_last_move_time)
    e2e_wait "requests answered by n1" 30 real_answered_since "$move_t" n1
    e2e_expect_holder "after $what" 1 "$base" 1
    real_invariants "$from" "$(real_now)" n1 "$move_t"
}

real_fault_round "docker kill web-1" "" dk_kill 1 web-1
e2e_expect "n1 in FAULT naming web-1" grep -q 'web-1' <(e2e_ctl 1 status)
real_recover "docker start web-1" dk_start_all 1

real_fault_round "docker stop (all)" "" dk_stop_all 1
real_recover "docker start (all)" dk_start_all 1

real_fault_round "web-1 unhealthy" "n1/web-1" dk_sick 1 web-1
real_recover "web-1 healthy again" dk_cure 1 web-1

real_client_stop
