#!/usr/bin/env bash
# A real Docker engine in its own network namespace, for C++ integration tests and people.
# Needs root; everything lives in WORKDIR/dk and one namespace named after WORKDIR.
#
#   engine.sh start WORKDIR           start the engine and load the app image; prints the
#                                     socket path. Exit 77 (one line on stderr): no Docker here.
#   engine.sh run WORKDIR NAME PORT   app container NAME (BusyBox httpd on PORT, answering
#                                     "node=it container=NAME"), waits until it is healthy
#   engine.sh restart-engine WORKDIR  stop dockerd and start it again on the same socket and
#                                     data root (containers are stopped by the engine's exit)
#   engine.sh docker WORKDIR ARGS...  /usr/bin/docker against this engine (kill, exec, ps ...)
#   engine.sh stop WORKDIR            remove containers, engine, mounts, namespace and WORKDIR/dk
set -euo pipefail

# shellcheck source=engine_core.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/engine_core.sh"

usage() {
    sed -n '5,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

skip() {
    echo "engine.sh: Docker cannot run here: $*" >&2
    exit 77
}

[ $# -ge 2 ] || usage
command=$1
work=$(readlink -m "$2")
shift 2
dir="$work/dk"
ns="fodk-$(printf '%s' "$work" | sha256sum | cut -c1-10)"

# stop_all: everything of this WORKDIR, including what still runs in its namespace.
stop_all() {
    local pid
    dkc_destroy "$dir"
    if [ -e "/run/netns/$ns" ]; then
        for pid in $(ip netns pids "$ns"); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns"
    fi
}

start() {
    local reason
    reason=$(dkc_static_reason)
    [ -z "$reason" ] || skip "$reason"
    dkc_dir_ok "$dir" || exit 2
    if dkc_ping "$dir"; then
        echo "$dir/sock"
        return 0
    fi
    # A stale engine of an earlier run that no longer answers.
    dkc_stop_engine "$dir"
    trap 'stop_all; exit 130' INT
    trap 'stop_all; exit 143' TERM
    if [ ! -e "/run/netns/$ns" ]; then
        ip netns add "$ns"
    fi
    ip -n "$ns" link set lo up
    mkdir -p "$dir"
    dkc_image_tar "$dir/app.tar"
    if ! { dkc_start "$dir" "$ns" && dkc_wait_up "$dir"; }; then
        reason=$DK_UNAVAILABLE_REASON
        stop_all
        skip "${reason:-dockerd did not start}"
    fi
    if ! dkc_import "$dir" "$dir/app.tar"; then
        echo "engine.sh: importing the app image failed; engine log: $dir/log" >&2
        exit 1
    fi
    trap - INT TERM
    echo "$dir/sock"
}

case $command in
start)
    [ $# -eq 0 ] || usage
    start
    ;;
stop)
    [ $# -eq 0 ] || usage
    stop_all
    ;;
restart-engine)
    [ $# -eq 0 ] || usage
    [ -d "$dir/data" ] || {
        echo "engine.sh: no engine in $work (run start first)" >&2
        exit 1
    }
    dkc_stop_engine "$dir"
    dkc_start "$dir" "$ns"
    if ! dkc_wait_up "$dir"; then
        echo "engine.sh: the engine did not come back: $DK_UNAVAILABLE_REASON" >&2
        exit 1
    fi
    echo "$dir/sock"
    ;;
run)
    [ $# -eq 2 ] || usage
    dkc_ping "$dir" || {
        echo "engine.sh: no engine answers on $dir/sock (run start first)" >&2
        exit 1
    }
    dkc_run "$dir" it "$1" "$2"
    dkc_wait "$dir" "$DK_START_TIMEOUT" healthy "$1"
    ;;
docker)
    dkc_docker "$dir" "$@"
    ;;
*)
    usage
    ;;
esac
