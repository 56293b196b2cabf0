#!/usr/bin/env bash
# Health and hand-over move the reserved IP (provider = digitalocean, fake API, 0.5 s actions).
# A container exits on the master (its fake Docker engine): it goes to FAULT and the IP moves to
# the backup, once; the container comes back: the old master preempts and the IP moves back,
# once. `failoverctl handover` on the master: the IP moves to the backup, once, and stays there.
source "$(dirname "$0")/lib.sh"

E2E_PROVIDER=digitalocean
E2E_CHECKS="containers, app"
e2e_net 2
e2e_start_fake_api
e2e_docker 1
e2e_docker 2
e2e_config 1 150 100ms "$E2E_WORK/n1/containers.conf"
e2e_config 2 100 100ms "$E2E_WORK/n2/containers.conf"
e2e_start 1
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "the IP on n1" 30 e2e_holder_is 1
e2e_start 2
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
e2e_holder_stays 1 2
e2e_expect_holder "steady state" 1 0 1

base=$(e2e_moves)
e2e_docker_set 1 exited
e2e_log "web-2 exited on n1"
e2e_wait "n1 FAULT" 20 e2e_role_is 1 FAULT
e2e_wait "n2 MASTER" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2" 30 e2e_holder_is 2
e2e_holder_stays 2 3
e2e_expect_holder "after n1's container failed" 2 "$base" 1

base=$(e2e_moves)
e2e_docker_set 1 running
e2e_log "web-2 running again on n1"
e2e_wait "n1 MASTER again" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP again" 20 e2e_role_is 2 BACKUP
e2e_wait "the IP back on n1" 30 e2e_holder_is 1
e2e_holder_stays 1 3
e2e_expect_holder "after n1's container recovered" 1 "$base" 1

base=$(e2e_moves)
e2e_ctl 1 handover "$E2E_INSTANCE" --to n2 >/dev/null
e2e_log "failoverctl handover web --to n2 on n1"
e2e_wait "n2 MASTER after the hand-over" 20 e2e_role_is 2 MASTER
e2e_wait "n1 BACKUP after the hand-over" 20 e2e_role_is 1 BACKUP
e2e_wait "the IP on n2 after the hand-over" 30 e2e_holder_is 2
e2e_holder_stays 2 4
e2e_expect "n1 yields to n2 (no preemption back)" e2e_role_is 1 BACKUP
e2e_expect_holder "after the hand-over" 2 "$base" 1
e2e_expect_token_unseen
