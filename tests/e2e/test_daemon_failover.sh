#!/usr/bin/env bash
# Two real failoverd processes in two namespaces: kill -9 the master and the backup takes
# over after the master down interval; the old master comes back and preempts; SIGTERM the
# master and the backup it names takes over at once (a priority-0 resign), with notify_stop run
# and exit status 0.
source "$(dirname "$0")/lib.sh"

e2e_net 2
e2e_config 1 150
e2e_config 2 100
e2e_start 1
e2e_start 2

e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
e2e_expect "exactly one master" e2e_masters_are 1
e2e_expect "n2's first hooks ran for its start from INIT" e2e_hook_seen "^n2 notify web INIT->"
e2e_wait "n1's notify_master hook" 10 e2e_hook_seen "^n1 notify_master web BACKUP->MASTER "
e2e_wait "n1's generic notify hook" 10 e2e_hook_seen "^n1 notify web BACKUP->MASTER "
e2e_expect "n2 hears n1's adverts" test "$(e2e_json 2 'inst()["master"]')" = n1

# kill -9: no resign, so n2 waits the master down interval.
e2e_kill 1 KILL
e2e_wait "n2 MASTER after kill -9 of n1" 20 e2e_role_is 2 MASTER
reason=$(e2e_json 2 'inst()["last_transition"]["reason"]')
e2e_log "n2 took over: $reason"
e2e_expect "takeover reason is the down interval" grep -q "master down interval expired" <<<"$reason"
e2e_wait "n2's notify_master hook" 10 e2e_hook_seen "^n2 notify_master web BACKUP->MASTER master down interval expired"
e2e_expect "no notify_stop from a killed node" bash -c "! grep -q '^n1 notify_stop' '$E2E_WORK/hooks.log'"

# n1 comes back with the higher priority and preempts.
e2e_start 1
e2e_wait "n1 MASTER again (preempt)" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP again" 20 e2e_role_is 2 BACKUP
e2e_expect "one master after preemption" e2e_masters_are 1

# SIGTERM: n1 resigns with a priority-0 advert naming n2, which takes over on receipt.
before_ms=$(e2e_now_ms)
e2e_kill 1 TERM
e2e_expect "n1 exited 0 after SIGTERM" test "$E2E_LAST_EXIT" -eq 0
e2e_wait "n2 MASTER after SIGTERM of n1" 20 e2e_role_is 2 MASTER
took_ms=$(($(e2e_now_ms) - before_ms))
reason=$(e2e_json 2 'inst()["last_transition"]["reason"]')
e2e_log "n2 took over in about $took_ms ms (including n1's shutdown): $reason"
e2e_expect "takeover reason is n1's resign" grep -q "master n1 resigned (priority 0)" <<<"$reason"
e2e_wait "n2's notify_master after the resign" 10 e2e_hook_seen "^n2 notify_master web BACKUP->MASTER master n1 resigned"
e2e_expect "n1 ran notify_stop before exiting" e2e_hook_seen "^n1 notify_stop web MASTER->STOP shutdown"
e2e_expect "n1 ran the generic notify with STOP" e2e_hook_seen "^n1 notify web MASTER->STOP shutdown"
grep -q "MASTER -> INIT: shutdown" "$E2E_WORK/n1/log" || e2e_fail "n1 did not log its shutdown transition"
e2e_expect "n2 counted n1's resign advert" test "$(e2e_json 2 'inst()["adverts"]["received"]')" -gt 0
