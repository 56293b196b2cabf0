# The part shared by docker_lib.sh (e2e tests, the demo, benchmarks) and engine.sh (C++
# integration tests, people): one real Docker engine in one network namespace, with everything
# it owns under one engine directory DIR:
#   DIR/sock         the engine's API socket (the path must stay under 108 bytes)
#   DIR/pid          dockerd's pid file; DIR/launch.pid the pid we started (before it writes it)
#   DIR/data, exec   data root and exec root
#   DIR/log          dockerd's (and its containerd's) output
#   DIR/cli          an empty docker CLI config, so the user's ~/.docker never matters
# Every function returns a status (no reliance on `set -e`); failures leave a reason in
# DK_UNAVAILABLE_REASON or on stderr. Nothing here stops an engine this directory did not start.

DK_DOCKERD=${DK_DOCKERD:-/usr/sbin/dockerd}
# /usr/local/bin/docker may be an unrelated newer CLI: always the distribution's.
DK_DOCKER=${DK_DOCKER:-/usr/bin/docker}
DK_BUSYBOX=${DK_BUSYBOX:-/bin/busybox}
DK_IMAGE=${DK_IMAGE:-failoverd-app:test}
DK_PORT_BASE=${DK_PORT_BASE:-8080}
DK_HEALTH_INTERVAL=${DK_HEALTH_INTERVAL:-1s}
DK_HEALTH_RETRIES=${DK_HEALTH_RETRIES:-1}
# no: the apps run without a Docker healthcheck (each probe is a `runc exec`, which costs
# 20 containers on 2 cores more CPU than the whole failover); readiness is then "running".
DK_HEALTHCHECK=${DK_HEALTHCHECK:-yes}
DK_START_TIMEOUT=${DK_START_TIMEOUT:-60}
DK_UNAVAILABLE_REASON=${DK_UNAVAILABLE_REASON:-}

# The applets the app containers use; each becomes a link to bin/busybox in the image.
DK_APPLETS="sh sleep httpd wget test touch cat echo printf rm ls ps kill mkdir env id hostname true false"

dkc_now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# dkc_is_static FILE: FILE needs no dynamic loader (the image has no libraries).
dkc_is_static() {
    local out
    out=$(LC_ALL=C ldd "$1" 2>&1) || true
    case $out in
    *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
    *) return 1 ;;
    esac
}

# dkc_static_reason: prints why no engine can run here, judged without starting one (empty
# when nothing is missing).
dkc_static_reason() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "not root (dockerd and network namespaces need root)"
    elif [ ! -x "$DK_DOCKERD" ] || [ ! -x "$DK_DOCKER" ]; then
        echo "dockerd not installed (apt-get install docker.io)"
    elif [ ! -x "$DK_BUSYBOX" ]; then
        echo "no static BusyBox for the app image (apt-get install busybox-static)"
    elif ! dkc_is_static "$DK_BUSYBOX"; then
        echo "$DK_BUSYBOX is not statically linked (apt-get install busybox-static)"
    else
        local tool
        for tool in nsenter setsid curl ip tar; do
            if ! command -v "$tool" >/dev/null; then
                echo "$tool not installed"
                return 0
            fi
        done
    fi
}

# dkc_dir_ok DIR: the engine's socket paths fit in a sockaddr_un (108 bytes with the NUL).
dkc_dir_ok() {
    local longest="$1/exec/containerd/containerd.sock.ttrpc"
    if [ "${#longest}" -ge 108 ]; then
        echo "engine directory too long for its sockets: $1 (at most $((107 - ${#longest} + ${#1})) bytes)" >&2
        return 1
    fi
}

# dkc_image_tar TAR: writes the app image's root file system as a tar (BusyBox, its applet
# links, /www and /tmp), unless TAR already exists.
dkc_image_tar() {
    local tar=$1 root applet
    if [ -s "$tar" ]; then
        return 0
    fi
    root=$(mktemp -d "$tar.root.XXXXXX") || return 1
    mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc" &&
        chmod 1777 "$root/tmp" &&
        cp "$DK_BUSYBOX" "$root/bin/busybox" || {
        rm -rf "$root"
        return 1
    }
    for applet in $DK_APPLETS; do
        ln -s busybox "$root/bin/$applet"
    done
    echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
    echo "root:x:0:" >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$tar.tmp" . &&
        mv "$tar.tmp" "$tar"
    local rc=$?
    rm -rf "$root"
    return "$rc"
}

# dkc_docker DIR ARGS...: the docker CLI against DIR's engine.
dkc_docker() {
    local dir=$1
    shift
    DOCKER_CONFIG="$dir/cli" "$DK_DOCKER" --host "unix://$dir/sock" "$@"
}

dkc_ping() {
    [ "$(curl -s --max-time 2 --unix-socket "$1/sock" http://engine/_ping 2>/dev/null)" = OK ]
}

# dkc_pid_is_ours PID DIR: PID is alive (not a zombie) and its command line names DIR.
dkc_pid_is_ours() {
    local pid=$1 dir=$2 state
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/"
}

# dkc_engine_pid DIR: the pid of DIR's dockerd if it runs (from its pid file, or the pid we
# launched if it has not written one yet).
dkc_engine_pid() {
    local dir=$1 pid
    for pid in "$(cat "$dir/pid" 2>/dev/null)" "$(cat "$dir/launch.pid" 2>/dev/null)"; do
        if dkc_pid_is_ours "$pid" "$dir"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# dkc_ours DIR: pids of every process whose command line names DIR (dockerd, its containerd,
# the shims, CLI calls in flight). The pattern comes from a file so grep never matches itself.
dkc_ours() {
    grep -lsaFf <(printf '%s/\n' "$1") /proc/[0-9]*/cmdline 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p' | grep -vx "$$" || true
}

# dkc_mounts DIR: mount points under DIR, deepest first.
dkc_mounts() {
    awk -v prefix="$1/" 'index($2, prefix) == 1 { print $2 }' /proc/mounts | sort -r
}

# dkc_start DIR NETNS: starts dockerd in network namespace NETNS (a name under /run/netns),
# in its own session so a Ctrl-C meant for the caller does not reach it, and not as a child of
# the caller's shell, so a bare `wait` there does not wait for the engine. Returns at once.
dkc_start() {
    local dir=$1 ns=$2
    dkc_dir_ok "$dir" || return 1
    mkdir -p "$dir/data" "$dir/exec" "$dir/cli" || return 1
    rm -f "$dir/pid" "$dir/launch.pid" "$dir/sock"
    # An empty config file: the host's /etc/docker/daemon.json must not change these engines.
    echo '{}' >"$dir/daemon.json"
    echo "==== start $(date +%T.%N)" >>"$dir/log"
    (
        setsid nsenter --net="/run/netns/$ns" "$DK_DOCKERD" \
            --config-file "$dir/daemon.json" \
            --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/pid" \
            --host "unix://$dir/sock" \
            --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
            --shutdown-timeout 5 </dev/null >>"$dir/log" 2>&1 &
        echo $! >"$dir/launch.pid"
    )
}

# dkc_last_log DIR: the engine log's last line, without its time stamp.
dkc_last_log() {
    grep -v '^====' "$1/log" 2>/dev/null | tail -n 1 |
        sed -e 's/^time="[^"]*" *//' -e 's/^level=[a-z]* *//'
}

# dkc_wait_up DIR [SECONDS]: waits until DIR's engine answers /_ping. When it exits or the
# deadline passes, sets DK_UNAVAILABLE_REASON (the engine's last log line) and returns 1.
dkc_wait_up() {
    local dir=$1 seconds=${2:-$DK_START_TIMEOUT} deadline
    deadline=$(($(dkc_now_ms) + seconds * 1000))
    until dkc_ping "$dir"; do
        if ! dkc_engine_pid "$dir" >/dev/null; then
            # It may have answered and exited in between: ask once more before giving up.
            dkc_ping "$dir" && return 0
            DK_UNAVAILABLE_REASON="dockerd exited at start: $(dkc_last_log "$dir")"
            return 1
        fi
        if [ "$(dkc_now_ms)" -gt "$deadline" ]; then
            DK_UNAVAILABLE_REASON="dockerd did not answer within $seconds s: $(dkc_last_log "$dir")"
            return 1
        fi
        sleep 0.1
    done
}

# dkc_import DIR TAR: loads the app image from TAR into DIR's engine.
dkc_import() {
    dkc_docker "$1" import --message "failoverd test app" - "$DK_IMAGE" <"$2" >/dev/null
}

# dkc_run DIR NODE NAME PORT: starts app container NAME (detached, does not wait for its
# health): BusyBox httpd on PORT in the engine's network namespace, answering
# "node=NODE container=NAME", with a Docker healthcheck that fails once /tmp/sick exists
# (none if DK_HEALTHCHECK=no).
dkc_run() {
    local dir=$1 node=$2 name=$3 port=$4 health=(--no-healthcheck)
    if [ "$DK_HEALTHCHECK" = yes ]; then
        health=(--health-cmd "wget -q -O /dev/null http://127.0.0.1:$port/ && test ! -e /tmp/sick"
            --health-interval "$DK_HEALTH_INTERVAL" --health-timeout 10s
            --health-retries "$DK_HEALTH_RETRIES" --health-start-period 30s)
    fi
    # --init: tini is PID 1 and passes SIGTERM on, so `docker stop` ends httpd at once.
    # No `wget -T`: BusyBox 1.35's static wget crashes with it; --health-timeout bounds a probe.
    # Retries 1: one failed probe turns it unhealthy; the long timeout keeps a probe that a
    # loaded machine runs slowly from failing. The start period forgives a first probe
    # that a loaded machine runs before httpd listens.
    dkc_docker "$dir" run --detach --name "$name" --label app=shop --label "failoverd.port=$port" \
        --network host --init --restart no "${health[@]}" \
        "$DK_IMAGE" sh -c 'printf "node=%s container=%s\n" "$1" "$2" >/www/index.html && exec httpd -f -p "$3" -h /www' \
        app "$node" "$name" "$port" >/dev/null
}

# dkc_ready: the state a started app container reaches when it serves: healthy, or running
# without healthchecks.
dkc_ready() {
    if [ "$DK_HEALTHCHECK" = yes ]; then echo healthy; else echo running; fi
}

# dkc_state DIR NAME...: one line "NAME STATUS HEALTH" per container (HEALTH "-" without a
# healthcheck, STATUS "missing" when there is no such container).
dkc_state() {
    local dir=$1 name out
    shift
    for name in "$@"; do
        if out=$(dkc_docker "$dir" inspect --format \
            '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' \
            "$name" 2>/dev/null); then
            echo "$name $out"
        else
            echo "$name missing -"
        fi
    done
}

# dkc_is DIR STATE NAME...: every NAME is in STATE: a health (healthy, unhealthy, starting)
# or a container status (running, exited, created, paused, missing ...).
dkc_is() {
    local dir=$1 want=$2 name status health
    shift 2
    while read -r name status health; do
        case $want in
        healthy | unhealthy | starting) [ "$health" = "$want" ] || return 1 ;;
        *) [ "$status" = "$want" ] || return 1 ;;
        esac
    done < <(dkc_state "$dir" "$@")
}

# dkc_wait DIR SECONDS STATE NAME...: waits until every NAME is in STATE; prints the states
# on stderr and returns 1 at the deadline.
dkc_wait() {
    local dir=$1 seconds=$2 want=$3 deadline
    shift 3
    deadline=$(($(dkc_now_ms) + seconds * 1000))
    until dkc_is "$dir" "$want" "$@"; do
        if [ "$(dkc_now_ms)" -gt "$deadline" ]; then
            echo "containers not $want within $seconds s:" >&2
            dkc_state "$dir" "$@" | sed 's/^/  /' >&2
            return 1
        fi
        sleep 0.2
    done
}

# dkc_unmount DIR: unmounts whatever is still mounted under DIR (the exec root's netns bind
# mount, overlays and shm of containers a killed engine left behind).
dkc_unmount() {
    local mp
    for mp in $(dkc_mounts "$1"); do
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || echo "cannot unmount $mp" >&2
    done
}

# dkc_stop_engine DIR: stops DIR's dockerd (SIGTERM, SIGKILL after 20 s), then any process
# still naming DIR (containerd, shims), and unmounts what is left; keeps the files.
dkc_stop_engine() {
    local dir=$1 pid deadline
    if pid=$(dkc_engine_pid "$dir"); then
        kill -TERM "$pid" 2>/dev/null
        deadline=$(($(dkc_now_ms) + 20000))
        while dkc_pid_is_ours "$pid" "$dir"; do
            if [ "$(dkc_now_ms)" -gt "$deadline" ]; then
                echo "dockerd $pid ignored SIGTERM for 20 s: SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null
                break
            fi
            sleep 0.05
        done
    fi
    # Normally nothing is left: dockerd stops its containerd. After a SIGKILL the shims and
    # containerd live on.
    for pid in $(dkc_ours "$dir"); do
        kill -KILL "$pid" 2>/dev/null
    done
    deadline=$(($(dkc_now_ms) + 10000))
    while [ -n "$(dkc_ours "$dir")" ] && [ "$(dkc_now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    dkc_unmount "$dir"
    rm -f "$dir/sock" "$dir/pid" "$dir/launch.pid"
}

# dkc_destroy DIR: removes DIR's containers (at once, SIGKILL), stops its engine and deletes
# DIR. Safe to repeat, and on a directory whose engine never started.
dkc_destroy() {
    local dir=$1 ids
    [ -d "$dir" ] || return 0
    if dkc_ping "$dir"; then
        ids=$(DOCKER_CONFIG="$dir/cli" timeout 20 "$DK_DOCKER" --host "unix://$dir/sock" ps -aq 2>/dev/null)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086 # one id per word
            DOCKER_CONFIG="$dir/cli" timeout 30 "$DK_DOCKER" --host "unix://$dir/sock" \
                rm -f $ids >/dev/null 2>&1
        fi
    fi
    dkc_stop_engine "$dir"
    # --one-file-system: never into a mount that refused to go away.
    rm -rf --one-file-system "$dir"
}
