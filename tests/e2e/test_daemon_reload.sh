#!/usr/bin/env bash
# SIGHUP: an unchanged election keeps the master (no transition, no hook); new hooks and check
# settings apply without a role change; an invalid file is rejected with its errors logged and
# the daemon keeps running on the old one; a changed priority is applied (the master steps
# down when it no longer outranks the backup).
source "$(dirname "$0")/lib.sh"

e2e_pair

transitions() { e2e_json "$1" 'inst()["transitions"]'; }
reloads() { e2e_json "$1" 'd["reloads"]["total"]'; }
reloaded() { [ "$(reloads "$1")" = "$2" ]; }
n1_transitions=$(transitions 1)
n2_transitions=$(transitions 2)
hook_lines=$(wc -l <"$E2E_WORK/hooks.log")

# 1. The same file again.
e2e_kill 1 HUP
e2e_wait "n1's first reload" 10 reloaded 1 1
e2e_expect "n1 still MASTER after an unchanged reload" e2e_role_is 1 MASTER
e2e_expect "no transition on n1" test "$(transitions 1)" = "$n1_transitions"
e2e_expect "no transition on n2" test "$(transitions 2)" = "$n2_transitions"
e2e_expect "the reload was not rejected" test "$(e2e_json 1 'd["reloads"]["failed"]')" = 0
grep -q "configuration reloaded" "$E2E_WORK/n1/log" || e2e_fail "n1 did not log the reload"

# 2. New hooks and check timing, same election: still no transition.
sed -i -e 's|^interval = 200ms|interval = 300ms|' \
    -e "s|^notify = .*|notify = $E2E_WORK/hook.sh notify-v2|" "$E2E_WORK/n1/failoverd.conf"
e2e_kill 1 HUP
e2e_wait "n1's second reload" 10 reloaded 1 2
e2e_expect "n1 still MASTER after new hooks and check timing" e2e_role_is 1 MASTER
e2e_expect "still no transition on n1" test "$(transitions 1)" = "$n1_transitions"
e2e_expect "no hook ran for the reloads" test "$(wc -l <"$E2E_WORK/hooks.log")" = "$hook_lines"

# 3. An invalid file: errors logged with file:line, old configuration kept.
cp "$E2E_WORK/n1/failoverd.conf" "$E2E_WORK/n1/good.conf"
printf 'priority = 500\nbogus = 1\n' >>"$E2E_WORK/n1/failoverd.conf"
e2e_kill 1 HUP
e2e_wait "n1's third reload" 10 reloaded 1 3
e2e_expect "the invalid reload is counted as rejected" test "$(e2e_json 1 'd["reloads"]["failed"]')" = 1
grep -q "failoverd.conf:[0-9]*: bogus:" "$E2E_WORK/n1/log" || e2e_fail "the unknown key was not logged"
grep -q "failoverd.conf:[0-9]*: priority:" "$E2E_WORK/n1/log" || e2e_fail "the bad priority was not logged"
e2e_expect "n1 still MASTER on the old configuration" e2e_role_is 1 MASTER
e2e_expect "priority unchanged" test "$(e2e_json 1 'inst()["configured_priority"]')" = 150

# 4. The new hook is the one that runs now: lower n1's priority below n2's.
cp "$E2E_WORK/n1/good.conf" "$E2E_WORK/n1/failoverd.conf"
sed -i 's|^priority = 150|priority = 50|' "$E2E_WORK/n1/failoverd.conf"
e2e_kill 1 HUP
e2e_wait "n1's fourth reload" 10 reloaded 1 4
e2e_wait "n2 MASTER after n1's priority dropped" 20 e2e_role_is 2 MASTER
e2e_wait "n1 BACKUP" 20 e2e_role_is 1 BACKUP
e2e_expect "n1's new priority" test "$(e2e_json 1 'inst()["configured_priority"]')" = 50
e2e_wait "n1's reloaded generic hook" 10 e2e_hook_seen "^n1 notify-v2 web MASTER->"
e2e_expect "one master" e2e_masters_are 1
