#!/usr/bin/env bash
# failoverctl against real daemons: status (text, JSON, exit 3 when stopped), handover of the
# master to the backup, and maintenance mode, which survives a restart of the daemon.
source "$(dirname "$0")/lib.sh"

e2e_pair

text=$(e2e_ctl 1 status)
echo "$text" >&2
grep -q "^instance web: MASTER, priority 150" <<<"$text" || e2e_fail "status text lacks the role line"
grep -q "check app: passing" <<<"$text" || e2e_fail "status text lacks the check"

# Hand-over: only the master may; n1 gives web to n2 and does not preempt it back.
status=0
e2e_ctl 2 handover web --to n1 2>"$E2E_WORK/err" || status=$?
e2e_expect "handover on a backup is refused with exit 1" test "$status" = 1
grep -q "BACKUP on this node" "$E2E_WORK/err" || e2e_fail "the refusal does not say why"
e2e_ctl 1 handover web --to n2 >/dev/null
e2e_wait "n2 MASTER after the hand-over" 20 e2e_role_is 2 MASTER
e2e_wait "n1 BACKUP after the hand-over" 20 e2e_role_is 1 BACKUP
reason=$(e2e_json 2 'inst()["last_transition"]["reason"]')
e2e_expect "n2's reason is the hand-over: $reason" grep -q "hand-over from n1 to this node" <<<"$reason"
e2e_expect "n1 yields to n2" test "$(e2e_json 1 'inst()["yielding_to"]')" = n2

# Maintenance on the master: it goes to FAULT and n1 takes over.
e2e_ctl 2 maintenance on >/dev/null
e2e_wait "n2 FAULT in maintenance" 20 e2e_role_is 2 FAULT
e2e_wait "n1 MASTER while n2 is in maintenance" 20 e2e_role_is 1 MASTER
e2e_expect "n2's fault reason" test "$(e2e_json 2 'inst()["fault_reason"]')" = maintenance
e2e_expect "n2 reports maintenance" test "$(e2e_json 2 'd["maintenance"]')" = true

# It survives a restart.
e2e_kill 2 TERM
status=0
e2e_ctl 2 status >/dev/null 2>&1 || status=$?
e2e_expect "status exits 3 while n2 is stopped" test "$status" = 3
e2e_start 2
e2e_expect "n2 is still in maintenance after the restart" e2e_role_is 2 FAULT
e2e_expect "n1 is still MASTER" e2e_role_is 1 MASTER
grep -q "INIT -> FAULT: maintenance" "$E2E_WORK/n2/log" || e2e_fail "n2 did not start in maintenance"

e2e_ctl 2 maintenance off >/dev/null
e2e_wait "n2 BACKUP after maintenance off" 20 e2e_role_is 2 BACKUP
e2e_expect "n1 keeps MASTER (higher priority)" e2e_role_is 1 MASTER
e2e_expect "n2 reports maintenance off" test "$(e2e_json 2 'd["maintenance"]')" = false
