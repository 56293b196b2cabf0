# Real Docker engines for the e2e scripts, the demo and the benchmarks: node I's namespace
# $E2E_ID-nI gets its own dockerd (state in $E2E_WORK/nI/dk), the app image, and app
# containers web-1..web-N (BusyBox httpd, web-K on port DK_PORT_BASE+K of the node's address,
# answering "node=nI container=web-K"). Source it after tests/e2e/lib.sh; see README.md here.
# Everything it starts is stopped by dk_cleanup, which lib.sh's exit and Ctrl-C traps run
# (E2E_CLEANUP_HOOKS) before they kill what is left in the namespaces.

# shellcheck source=engine_core.sh
source "$(dirname "${BASH_SOURCE[0]}")/engine_core.sh"

declare -ga DK_SOCK=()      # node number -> its engine's socket
DK_WAIT_TIMEOUT=${DK_WAIT_TIMEOUT:-60}
# How many `docker run` at once in dk_run_apps.
DK_RUN_JOBS=${DK_RUN_JOBS:-2}

dk_dir() {
    echo "$E2E_WORK/n$1/dk"
}

dk_register() {
    local hook
    for hook in "${E2E_CLEANUP_HOOKS[@]}"; do
        [ "$hook" = dk_cleanup ] && return 0
    done
    E2E_CLEANUP_HOOKS+=(dk_cleanup)
}

# dk_available: 0 if a real engine can run here (dockerd and a static BusyBox installed, root,
# and a trial engine starts); else 1 with the reason in DK_UNAVAILABLE_REASON. The verdict is
# kept in $E2E_WORK, so only the first call pays for the trial.
dk_available() {
    local cache="$E2E_WORK/dk-available" reason
    if [ -e "$cache" ]; then
        DK_UNAVAILABLE_REASON=$(cat "$cache")
        [ -z "$DK_UNAVAILABLE_REASON" ]
        return
    fi
    reason=$(dkc_static_reason)
    if [ -z "$reason" ]; then
        dk_register
        ip netns add "$E2E_ID-dkt"
        ip -n "$E2E_ID-dkt" link set lo up
        if ! { dkc_start "$E2E_WORK/dkt" "$E2E_ID-dkt" && dkc_wait_up "$E2E_WORK/dkt"; }; then
            reason=${DK_UNAVAILABLE_REASON:-dockerd did not start}
        fi
        dkc_destroy "$E2E_WORK/dkt"
        ip netns del "$E2E_ID-dkt"
    fi
    printf '%s' "$reason" >"$cache"
    DK_UNAVAILABLE_REASON=$reason
    [ -z "$reason" ]
}

# dk_image: the app image's root file system ($E2E_WORK/dk-app.tar), built once.
dk_image() {
    dkc_image_tar "$E2E_WORK/dk-app.tar" || e2e_fail "cannot build the app image from $DK_BUSYBOX"
}

# dk_start_engines I...: one engine per node namespace, all starting at once; waits until
# each answers and has the app image. Sets DK_SOCK[I].
dk_start_engines() {
    local i dir started nodes="n$*"
    nodes=${nodes// /, n}
    dk_register
    dk_image
    started=$(e2e_now_ms)
    for i in "$@"; do
        dkc_start "$(dk_dir "$i")" "$E2E_ID-n$i" || e2e_fail "cannot start the engine of n$i"
    done
    for i in "$@"; do
        dkc_wait_up "$(dk_dir "$i")" || e2e_fail "the engine of n$i: $DK_UNAVAILABLE_REASON"
    done
    e2e_log "engines of $nodes answer after $(($(e2e_now_ms) - started)) ms"
    declare -A importer=()
    for i in "$@"; do
        dir=$(dk_dir "$i")
        dkc_import "$dir" "$E2E_WORK/dk-app.tar" 2>"$dir/import.err" &
        importer[$i]=$!
    done
    for i in "$@"; do
        dir=$(dk_dir "$i")
        wait "${importer[$i]}" ||
            e2e_fail "importing the app image into n$i's engine: $(head -n 3 "$dir/import.err")"
        DK_SOCK[$i]="$dir/sock"
    done
    e2e_log "engines of $nodes ready with the app image after $(($(e2e_now_ms) - started)) ms"
}

# dk I ARGS...: /usr/bin/docker against node I's engine.
dk() {
    local i=$1
    shift
    dkc_docker "$(dk_dir "$i")" "$@"
}

# dk_app_names I: the names of node I's app containers (label app=shop), running or not.
dk_app_names() {
    dk "$1" ps -a --filter label=app=shop --format '{{.Names}}' | sort -V
}

# dk_run_apps I N: app containers web-1..web-N on node I (DK_RUN_JOBS `docker run` at a time);
# waits until all N are healthy (running, with DK_HEALTHCHECK=no).
dk_run_apps() {
    local i=$1 n=$2 k dir started names=() pids=()
    dir=$(dk_dir "$i")
    started=$(e2e_now_ms)
    for ((k = 1; k <= n; k++)); do
        names+=("web-$k")
        dkc_run "$dir" "n$i" "web-$k" $((DK_PORT_BASE + k)) 2>>"$dir/run.err" &
        pids+=($!)
        if [ "${#pids[@]}" -ge "$DK_RUN_JOBS" ]; then
            wait "${pids[0]}" || e2e_fail "docker run on n$i: $(tail -n 3 "$dir/run.err")"
            pids=("${pids[@]:1}")
        fi
    done
    for k in "${pids[@]}"; do
        wait "$k" || e2e_fail "docker run on n$i: $(tail -n 3 "$dir/run.err")"
    done
    e2e_log "n$i: $n app containers started in $(($(e2e_now_ms) - started)) ms"
    dk_wait_all "$i" "$(dkc_ready)" "${names[@]}"
    e2e_log "n$i: $n app containers $(dkc_ready) after $(($(e2e_now_ms) - started)) ms"
}

# dk_wait_all I STATE [NAME...]: waits (DK_WAIT_TIMEOUT s) until the NAMEd containers, by
# default all of node I's apps, are in STATE (see dk_wait_health).
dk_wait_all() {
    local i=$1 want=$2 names
    shift 2
    if [ $# -eq 0 ]; then
        mapfile -t names < <(dk_app_names "$i")
        set -- "${names[@]}"
    fi
    dkc_wait "$(dk_dir "$i")" "$DK_WAIT_TIMEOUT" "$want" "$@" ||
        e2e_fail "n$i: containers $* not $want within $DK_WAIT_TIMEOUT s"
}

# dk_wait_health I NAME STATE: waits until container NAME on node I is in STATE, a health
# (healthy, unhealthy, starting) or a status (running, exited, created, missing ...).
dk_wait_health() {
    dk_wait_all "$1" "$3" "$2"
}

# dk_state I NAME: "STATUS HEALTH" of container NAME on node I (e.g. "running healthy").
dk_state() {
    dkc_state "$(dk_dir "$1")" "$2" | cut -d' ' -f2-
}

# dk_kill I NAME...: SIGKILL to the containers; returns once they have exited.
dk_kill() {
    local i=$1
    shift
    dk "$i" kill "$@" >/dev/null
    dk_wait_all "$i" exited "$@"
    e2e_log "n$i: killed $*"
}

# dk_stop_all I: `docker stop` of node I's running apps; returns once they have exited.
dk_stop_all() {
    local ids
    ids=$(dk "$1" ps -q --filter label=app=shop)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086 # one id per word
        dk "$1" stop $ids >/dev/null
    fi
    e2e_log "n$1: stopped all app containers"
}

# dk_start_all I: `docker start` of all node I's apps; returns once all are healthy
# (running, with DK_HEALTHCHECK=no).
dk_start_all() {
    local names
    mapfile -t names < <(dk_app_names "$1")
    [ "${#names[@]}" -gt 0 ] || e2e_fail "n$1 has no app containers to start"
    dk "$1" start "${names[@]}" >/dev/null
    e2e_log "n$1: started ${names[*]}"
    dk_wait_all "$1" "$(dkc_ready)" "${names[@]}"
}

# dk_sick I NAME / dk_cure I NAME: NAME's healthcheck fails from its next probe on (one failed
# probe turns it unhealthy) / passes again. Neither waits: see dk_wait_health.
dk_sick() {
    dk "$1" exec "$2" touch /tmp/sick
    e2e_log "n$1: $2 made sick"
}
dk_cure() {
    dk "$1" exec "$2" rm -f /tmp/sick
    e2e_log "n$1: $2 cured"
}

# dk_check_conf I N: $E2E_WORK/nI/containers.conf, a [check.containers] section that watches
# node I's real engine: exactly N running containers labelled app=shop, each healthy (unless
# DK_HEALTHCHECK=no).
# Interval DK_CHECK_INTERVAL (default 1s). Pass it to e2e_config; put `containers` in
# E2E_CHECKS.
dk_check_conf() {
    local i=$1 n=$2
    cat >"$E2E_WORK/n$i/containers.conf" <<EOF2
[check.containers]
type = docker
socket = $(dk_dir "$i")/sock
label = app=shop
expect = $n
require_healthy = $([ "$DK_HEALTHCHECK" = yes ] && echo yes || echo no)
interval = ${DK_CHECK_INTERVAL:-1s}
timeout = 1s
rise = 1
fall = 1
EOF2
}

# dk_cleanup: removes every container, stops every engine this script started (the trial's
# too), unmounts what they left and deletes their directories. Idempotent; Ctrl-C does not
# interrupt it (its waits are bounded).
dk_cleanup() {
    local saved dir pids=() pid
    saved=$(trap -p INT TERM)
    trap '' INT TERM
    for dir in "$E2E_WORK"/n*/dk "$E2E_WORK/dkt"; do
        if [ -d "$dir" ]; then
            dkc_destroy "$dir" &
            pids+=($!)
        fi
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || true
    done
    if [ -e "/run/netns/$E2E_ID-dkt" ]; then
        ip netns del "$E2E_ID-dkt" || true
    fi
    DK_SOCK=()
    trap - INT TERM
    eval "$saved"
}
