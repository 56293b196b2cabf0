# A minimal Debian 12 root for the package and systemd tests, made with debootstrap once and
# cached as a tarball (and unpacked) under /var/cache/failoverd-test/, keyed by its package
# list, so only a fresh machine pays for debootstrap. Tests get a throwaway overlay of it. Source it; needs root, debootstrap and the Debian mirror
# on a cold cache.

FO_ROOTFS_CACHE=${FO_ROOTFS_CACHE:-/var/cache/failoverd-test}
# systemd as PID 1, /bin/kill for ExecReload=, ip(8), adduser for the postinst.
FO_ROOTFS_BASE_PACKAGES=(systemd systemd-sysv dbus procps iproute2 adduser)

# The packages a .deb's Depends line names (first of each alternative, no versions, a virtual
# package replaced by the installed package providing it: debootstrap needs real names).
fo_deb_depends() {
    local name provider provides
    provides=$(dpkg-query -W -f='${Package} ${Provides}\n' | sed -E 's/\([^)]*\)//g; s/,//g')
    dpkg-deb -f "$1" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' |
        sed '/^$/d' | while read -r name; do
        provider=$(awk -v n="$name" '$1 == n { print $1; exit }
            { for (i = 2; i <= NF; i++) if ($i == n) { print $1; exit } }' <<<"$provides")
        echo "${provider:-$name}"
    done | sort -u
}

# Prints the path of a cached root tarball holding the base packages plus "$@"; creates it
# when missing (about a minute). Concurrent callers wait for each other.
fo_rootfs_tarball() {
    local packages key tarball mirror tmp
    packages=$(printf '%s\n' "${FO_ROOTFS_BASE_PACKAGES[@]}" "$@" | sort -u | paste -sd, -)
    key=$(printf 'bookworm minbase %s' "$packages" | sha256sum | cut -c1-16)
    tarball="$FO_ROOTFS_CACHE/rootfs-bookworm-$key.tar"
    mkdir -p "$FO_ROOTFS_CACHE"
    (
        flock 9
        if [ -s "$tarball" ]; then
            exit 0
        fi
        mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
        mirror=${mirror:-http://deb.debian.org/debian}
        tmp=$(mktemp -d "$FO_ROOTFS_CACHE/build.XXXXXX")
        echo "rootfs: debootstrap bookworm with $packages (cached as $tarball)" >&2
        if ! debootstrap --variant=minbase --include="$packages" bookworm "$tmp/root" "$mirror" \
            >"$tmp/debootstrap.log" 2>&1; then
            tail -n 20 "$tmp/debootstrap.log" >&2
            rm -rf "$tmp"
            echo "rootfs: debootstrap failed (is $mirror reachable?)" >&2
            exit 1
        fi
        rm -rf "$tmp/root/var/cache/apt/archives"/*.deb "$tmp/root/var/lib/apt/lists"/*
        tar -C "$tmp/root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
        rm -rf "$tmp"
    ) 9>"$FO_ROOTFS_CACHE/.lock" || return 1
    echo "$tarball"
}

# fo_rootfs_overlay TARBALL DIR: a writable root at DIR/root whose changes live in a tmpfs at
# DIR/rw, over the tarball unpacked once next to it in the cache (deleting an unpacked root
# takes longer than a test here). Prints DIR/root; fo_rootfs_release DIR undoes it.
fo_rootfs_overlay() {
    local tarball=$1 dir=$2 tree=${1%.tar}
    (
        flock 9
        if [ ! -e "$tree.complete" ]; then
            rm -rf "$tree"
            mkdir -p "$tree"
            tar -C "$tree" -xf "$tarball"
            touch "$tree.complete"
        fi
    ) 9>"$FO_ROOTFS_CACHE/.lock" || return 1
    mkdir -p "$dir/rw" "$dir/root"
    mount -t tmpfs -o mode=0755 tmpfs "$dir/rw"
    mkdir "$dir/rw/upper" "$dir/rw/work"
    mount -t overlay overlay -o "lowerdir=$tree,upperdir=$dir/rw/upper,workdir=$dir/rw/work" \
        "$dir/root"
    echo "$dir/root"
}

fo_rootfs_release() {
    local dir=$1
    if mountpoint -q "$dir/root"; then
        umount "$dir/root" 2>/dev/null || umount -l "$dir/root"
    fi
    if mountpoint -q "$dir/rw"; then
        umount "$dir/rw" 2>/dev/null || umount -l "$dir/rw"
    fi
}

# fo_nspawn_boot ROOT NAME [nspawn options...]: boots ROOT with systemd as PID 1 in its own
# host cgroup (systemd is not PID 1 here, so no machined: --register=no --keep-unit) and a
# private network. Sets FO_NSPAWN_PID (the nspawn process), FO_LEADER (the container's
# systemd) and FO_CGROUP. Returns once systemd inside reports running or degraded.
fo_nspawn_boot() {
    local root=$1 name=$2 h deadline state
    shift 2
    FO_CGROUP="failoverd-test-$name"
    for h in systemd unified; do
        if [ -d "/sys/fs/cgroup/$h" ]; then
            mkdir -p "/sys/fs/cgroup/$h/$FO_CGROUP"
        fi
    done
    setsid bash -c '
        for h in systemd unified; do
            [ -d /sys/fs/cgroup/$h/$0 ] && echo $$ > /sys/fs/cgroup/$h/$0/cgroup.procs
        done
        exec systemd-nspawn "$@"' "$FO_CGROUP" -D "$root" -b -M "$name" --register=no \
        --keep-unit --private-network --console=read-only "$@" \
        >"$root.console.log" 2>&1 &
    FO_NSPAWN_PID=$!
    FO_LEADER=""
    deadline=$(($(date +%s) + 60))
    while [ -z "$FO_LEADER" ]; do
        FO_LEADER=$(pgrep -P "$FO_NSPAWN_PID" -x systemd || true)
        if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$FO_NSPAWN_PID" 2>/dev/null; then
            echo "nspawn: the container did not start; its console:" >&2
            tail -n 30 "$root.console.log" >&2
            return 1
        fi
        sleep 0.1
    done
    while :; do
        state=$(fo_in systemctl is-system-running 2>/dev/null || true)
        case $state in
            running | degraded) return 0 ;;
        esac
        if [ "$(date +%s)" -gt "$deadline" ]; then
            echo "nspawn: systemd in the container is '$state' after 60 s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# fo_in COMMAND...: runs COMMAND inside the booted container.
fo_in() {
    nsenter -t "$FO_LEADER" -a "$@"
}

# Powers the container off at once (nothing in it needs a clean stop), SIGKILL to nspawn after
# 20 s, then removes its host cgroups.
fo_nspawn_stop() {
    local deadline h
    if [ -n "${FO_NSPAWN_PID:-}" ] && kill -0 "$FO_NSPAWN_PID" 2>/dev/null; then
        if [ -n "${FO_LEADER:-}" ]; then
            timeout 10 nsenter -t "$FO_LEADER" -a systemctl poweroff --force --force >/dev/null 2>&1 ||
                kill -TERM "$FO_NSPAWN_PID" 2>/dev/null || true
        else
            kill -TERM "$FO_NSPAWN_PID" 2>/dev/null || true
        fi
        deadline=$(($(date +%s) + 20))
        while kill -0 "$FO_NSPAWN_PID" 2>/dev/null && [ "$(date +%s)" -le "$deadline" ]; do
            sleep 0.1
        done
        kill -KILL "$FO_NSPAWN_PID" 2>/dev/null || true
        wait "$FO_NSPAWN_PID" 2>/dev/null || true
    fi
    FO_NSPAWN_PID=""
    if [ -n "${FO_CGROUP:-}" ]; then
        for h in systemd unified; do
            if [ -d "/sys/fs/cgroup/$h/$FO_CGROUP" ]; then
                find "/sys/fs/cgroup/$h/$FO_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
            fi
        done
    fi
}
