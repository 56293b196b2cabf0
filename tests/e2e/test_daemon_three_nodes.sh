#!/usr/bin/env bash
# Three real failoverd processes: the highest priority is master; kill -9 it and the next one
# takes over while the third follows it as backup; kill that one too and the last one takes
# over.
source "$(dirname "$0")/lib.sh"

e2e_net 3
# Priorities far apart so n3's longer skew time leaves n2 room to win on a loaded machine.
e2e_config 1 200 200ms
e2e_config 2 150 200ms
e2e_config 3 50 200ms
e2e_start 1
e2e_start 2
e2e_start 3

e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
e2e_wait "n3 BACKUP" 20 e2e_role_is 3 BACKUP
e2e_expect "exactly one master of three" e2e_masters_are 1

e2e_kill 1 KILL
e2e_wait "n2 MASTER after kill -9 of n1" 20 e2e_role_is 2 MASTER
e2e_wait "n3 BACKUP under n2" 10 e2e_role_is 3 BACKUP
e2e_expect "exactly one master of the two left" e2e_masters_are 1
n3_master() { [ "$(e2e_json 3 'inst()["master"]')" = n2 ]; }
e2e_wait "n3 to see n2 as master" 10 n3_master
e2e_wait "n2's notify_master hook" 10 e2e_hook_seen "^n2 notify_master web BACKUP->MASTER "

e2e_kill 2 KILL
e2e_wait "n3 MASTER after kill -9 of n2" 20 e2e_role_is 3 MASTER
e2e_wait "n3's notify_master hook" 10 e2e_hook_seen "^n3 notify_master web BACKUP->MASTER "
