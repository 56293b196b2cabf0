#!/usr/bin/env bash
# Three daemons with provider = digitalocean that find each other through the droplet tag
# (peers_from_tag) and their own droplet id through the metadata service. kill -9 the master:
# the IP moves to the next priority, once; kill that one: it moves to the last, once; the first
# comes back and preempts: the IP moves to it, once, and the other node stays BACKUP.
source "$(dirname "$0")/lib.sh"

E2E_PROVIDER=digitalocean
E2E_PEERS_FROM_TAG=failoverd
e2e_net 3
e2e_start_fake_api
# Priorities far apart so n3's longer skew time leaves n2 room to win on a loaded machine.
e2e_config 1 200 200ms
e2e_config 2 150 200ms
e2e_config 3 50 200ms
e2e_start 1
e2e_wait "n1 MASTER" 20 e2e_role_is 1 MASTER
e2e_wait "the IP on n1" 30 e2e_holder_is 1
e2e_start 2
e2e_start 3
e2e_wait "n2 BACKUP" 20 e2e_role_is 2 BACKUP
e2e_wait "n3 BACKUP" 20 e2e_role_is 3 BACKUP
n_master_is() { [ "$(e2e_json "$1" 'inst()["master"]')" = "$2" ]; }
e2e_wait "n2 follows n1 (peer from the tag)" 20 n_master_is 2 n1
e2e_wait "n3 follows n1 (peer from the tag)" 20 n_master_is 3 n1
e2e_expect "exactly one master of three" e2e_masters_are 1
e2e_holder_stays 1 2
e2e_expect_holder "steady state" 1 0 1

base=$(e2e_moves)
e2e_kill 1 KILL
e2e_wait "n2 MASTER after kill -9 of n1" 20 e2e_role_is 2 MASTER
e2e_wait "the IP on n2" 30 e2e_holder_is 2
e2e_wait "n3 follows n2" 20 n_master_is 3 n2
e2e_holder_stays 2 3
e2e_expect_holder "after kill -9 of n1" 2 "$base" 1

base=$(e2e_moves)
e2e_kill 2 KILL
e2e_wait "n3 MASTER after kill -9 of n2" 20 e2e_role_is 3 MASTER
e2e_wait "the IP on n3" 30 e2e_holder_is 3
e2e_holder_stays 3 3
e2e_expect_holder "after kill -9 of n2" 3 "$base" 1

base=$(e2e_moves)
e2e_start 1
e2e_wait "n1 MASTER again (preempt)" 20 e2e_role_is 1 MASTER
e2e_wait "n3 BACKUP again" 20 e2e_role_is 3 BACKUP
e2e_wait "the IP back on n1" 30 e2e_holder_is 1
e2e_holder_stays 1 3
e2e_expect_holder "after n1 came back" 1 "$base" 1
e2e_expect "exactly one master" e2e_masters_are 1
e2e_expect_token_unseen
