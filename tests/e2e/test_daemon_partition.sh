#!/usr/bin/env bash
# Cut the link between two nodes: each side sees no master and the backup promotes itself
# (two masters while partitioned, as VRRP must); restore the link: exactly one master after
# the heal, the higher priority, and it stays that way.
source "$(dirname "$0")/lib.sh"

e2e_pair

e2e_link_down 2
e2e_log "cut n2's link"
e2e_wait "n2 MASTER while cut off" 20 e2e_role_is 2 MASTER
e2e_expect "n1 stays MASTER on its side" e2e_role_is 1 MASTER
reason=$(e2e_json 2 'inst()["last_transition"]["reason"]')
e2e_expect "n2's reason names the silence: $reason" grep -q "no advert from n1" <<<"$reason"
sent_errors_before=$(e2e_json 2 'd["transport"]["send_errors"]')

e2e_link_up 2
e2e_log "restored n2's link"
e2e_wait "n2 BACKUP after the heal" 20 e2e_role_is 2 BACKUP
e2e_expect "n1 MASTER after the heal" e2e_role_is 1 MASTER
e2e_expect "exactly one master after the heal" e2e_masters_are 1
reason=$(e2e_json 2 'inst()["last_transition"]["reason"]')
e2e_log "n2 stepped down: $reason"

# Stable: one master on every poll for 2 s (about 20 advert intervals).
deadline=$(($(e2e_now_ms) + 2000))
while [ "$(e2e_now_ms)" -lt "$deadline" ]; do
    e2e_masters_are 1 || e2e_fail "two masters again after the heal"
    sleep 0.1
done
e2e_log "ok: one master for 2 s after the heal (send errors while cut: $sent_errors_before)"
e2e_wait "n2's notify_backup after the heal" 10 e2e_hook_seen "^n2 notify_backup web MASTER->BACKUP "
