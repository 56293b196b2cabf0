#!/usr/bin/env bash
# The package check of ./scripts/test: builds the .deb with ./scripts/package, runs lintian
# (errors fail), checks its files, conffiles and Depends, rates the unit with
# `systemd-analyze security --offline` (above 2.0 fails) next to Debian's keepalived unit,
# then installs, removes and purges it in a throwaway Debian root (chroot) where the
# maintainer scripts run for real, checks the shipped config and the Vagrant-rendered configs
# with `failoverd --check-config` as the failoverd user and `systemd-analyze verify`s the unit.
# Needs root; the Debian root is cached (tests/package/rootfs.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/package/rootfs.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "package test: needs root (dpkg in a chroot)" >&2
    exit 1
fi
started_ms=$(($(date +%s%N) / 1000000))
log() { printf '[%6s s] %s\n' "$(( ($(date +%s%N) / 1000000 - started_ms) / 1000 ))" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
expect() {
    local what=$1
    shift
    "$@" >/dev/null 2>&1 || fail "$what"
    log "ok: $what"
}

work=$(mktemp -d /tmp/failoverd-package.XXXXXX)
root=""
cleanup() {
    local rc=$?
    set +e
    if [ -n "$root" ]; then
        umount "$root/proc" 2>/dev/null
        fo_rootfs_release "$work/chroot"
    fi
    rm -rf "$work"
    if [ "$rc" -eq 0 ]; then log "PASS package test"; else log "FAIL package test (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT

log "building the package (./scripts/package)"
deb=$(scripts/package --output "$work" | tail -n 1)
log "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

contents=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
for f in /usr/sbin/failoverd /usr/bin/failoverctl /lib/systemd/system/failoverd.service \
    /etc/failoverd/failoverd.conf /etc/failoverd/hooks/record-transition \
    /etc/failoverd/hooks/notify-webhook /usr/share/man/man8/failoverd.8.gz \
    /usr/share/man/man1/failoverctl.1.gz /usr/share/man/man5/failoverd.conf.5.gz \
    /usr/share/bash-completion/completions/failoverctl /usr/share/doc/failoverd/copyright \
    /usr/share/doc/failoverd/changelog.gz /usr/share/doc/failoverd/install.md \
    /usr/share/doc/failoverd/migrating-from-keepalived.md; do
    grep -qx "$f" <<<"$contents" || fail "the package lacks $f"
done
log "ok: every file is in the package"
dpkg-deb -e "$deb" "$work/control"
expect "conffiles: the config and the hooks" \
    grep -qx /etc/failoverd/failoverd.conf "$work/control/conffiles"
depends=$(dpkg-deb -f "$deb" Depends)
log "Depends: $depends"
for d in adduser libc6 libcurl4 libsystemd0 libssl3 libstdc++6; do
    grep -q "\b$d\b" <<<"$depends" || fail "Depends lacks $d (shlibdeps)"
done
log "ok: Depends from shlibdeps"

log "lintian"
lintian_rc=0
lintian --fail-on error --display-info "$deb" >"$work/lintian.txt" 2>&1 || lintian_rc=$?
sed 's/^/    /' "$work/lintian.txt" >&2
[ "$lintian_rc" -eq 0 ] || fail "lintian reports errors (exit $lintian_rc)"
log "ok: lintian: no errors, $(grep -c '^W:' "$work/lintian.txt" || true) warning(s), $(grep -c '^I:' "$work/lintian.txt" || true) info"

dpkg-deb -x "$deb" "$work/extracted"
unit="$work/extracted/lib/systemd/system/failoverd.service"
exposure() { systemd-analyze security --offline=true "$1" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
ours=$(exposure "$unit")
[ -n "$ours" ] || fail "systemd-analyze security printed no exposure level"
systemd-analyze security --offline=true --threshold=20 "$unit" >/dev/null 2>&1 ||
    fail "the unit's exposure $ours is above 2.0"
log "ok: systemd-analyze security --offline: failoverd.service exposure $ours (limit 2.0)"

# For comparison only: Debian's keepalived unit (downloaded, not installed; cached).
keepalived_dir="$FO_ROOTFS_CACHE/keepalived"
if ! ls "$keepalived_dir"/keepalived_*.deb >/dev/null 2>&1; then
    mkdir -p "$keepalived_dir"
    (cd "$keepalived_dir" && apt-get download -q keepalived >/dev/null 2>&1) ||
        log "note: apt-get download keepalived failed; no comparison"
fi
keepalived_deb=$(ls "$keepalived_dir"/keepalived_*.deb 2>/dev/null | head -n 1 || true)
if [ -n "$keepalived_deb" ]; then
    dpkg-deb -x "$keepalived_deb" "$work/keepalived"
    keepalived_unit=$(find "$work/keepalived" -name keepalived.service | head -n 1)
    log "for comparison: $(basename "$keepalived_deb") keepalived.service exposure $(exposure "$keepalived_unit")"
fi

log "a throwaway Debian root with the package's Depends"
mapfile -t deps < <(fo_deb_depends "$deb")
tarball=$(fo_rootfs_tarball "${deps[@]}")
root=$(fo_rootfs_overlay "$tarball" "$work/chroot")
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/failoverd.deb"
in_root() { chroot "$root" "$@"; }

expect "dpkg -i (postinst runs)" in_root dpkg -i /tmp/failoverd.deb
expect "system user failoverd" in_root getent passwd failoverd
expect "system group failoverd" in_root getent group failoverd
[ "$(in_root stat -c '%U:%G %a' /var/lib/failoverd)" = "failoverd:failoverd 700" ] ||
    fail "/var/lib/failoverd is $(in_root stat -c '%U:%G %a' /var/lib/failoverd), not failoverd:failoverd 700"
log "ok: /var/lib/failoverd is failoverd:failoverd 0700"
expect "unit enabled (multi-user.target.wants)" \
    test -L "$root/etc/systemd/system/multi-user.target.wants/failoverd.service"
expect "the shipped config passes --check-config as the failoverd user" \
    in_root setpriv --reuid=failoverd --regid=failoverd --init-groups \
    /usr/sbin/failoverd --check-config --config /etc/failoverd/failoverd.conf
in_root systemd-analyze verify --man=no /lib/systemd/system/failoverd.service >"$work/verify.txt" 2>&1 ||
    { cat "$work/verify.txt" >&2; fail "systemd-analyze verify"; }
[ ! -s "$work/verify.txt" ] || { cat "$work/verify.txt" >&2; fail "systemd-analyze verify warns"; }
log "ok: systemd-analyze verify failoverd.service: clean (man pages: checked as files above)"
for page in man8/failoverd.8 man1/failoverctl.1 man5/failoverd.conf.5; do
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 "$root/usr/share/man/$page.gz" \
        >"$work/man.txt" 2>"$work/man.err" || fail "man cannot render $page"
    [ ! -s "$work/man.err" ] || { cat "$work/man.err" >&2; fail "groff warns about $page"; }
    sed "s/.\x08//g" "$work/man.txt" >"$work/man.plain"
    grep -q "^NAME" "$work/man.plain" || fail "$page has no NAME section"
done
log "ok: the man pages render without groff warnings"

# The Vagrantfile's configs: rendered by the same script, checked as the daemon checks them,
# with the token where LoadCredential= puts it.
head -c 32 /dev/urandom >"$root/etc/failoverd/auth.key"
in_root chown failoverd:failoverd /etc/failoverd/auth.key
chmod 600 "$root/etc/failoverd/auth.key"
mkdir -p "$root/run/credentials/failoverd.service"
echo "dop_v1_not_a_real_token" >"$root/run/credentials/failoverd.service/do-token"
in_root chown -R failoverd:failoverd /run/credentials/failoverd.service
chmod 400 "$root/run/credentials/failoverd.service/do-token"
for node in web-1:150 web-2:100; do
    FO_NODE_NAME=${node%:*} FO_PRIORITY=${node#*:} FO_TAG=failoverd-web \
        FO_RESERVED_IP=203.0.113.10 FO_LISTEN=10.114.0.9 \
        packaging/vagrant/provision.sh render >"$root/tmp/${node%:*}.conf"
    in_root setpriv --reuid=failoverd --regid=failoverd --init-groups \
        env CREDENTIALS_DIRECTORY=/run/credentials/failoverd.service \
        /usr/sbin/failoverd --check-config --config "/tmp/${node%:*}.conf" >"$work/check.txt" 2>&1 ||
        { cat "$work/check.txt" >&2; fail "the Vagrant config of ${node%:*} fails --check-config"; }
    log "ok: Vagrant config of ${node%:*}: $(cat "$work/check.txt")"
done
rm -rf "$root/run/credentials" "$root/etc/failoverd/auth.key"
command -v ruby >/dev/null || fail "ruby is not installed: cannot check the Vagrantfile"
expect "ruby -c Vagrantfile" ruby -c Vagrantfile
# The Vagrantfile run against a stand-in for Vagrant's API, in a copy (it writes .vagrant/).
mkdir -p "$work/vagrant"
cp Vagrantfile "$work/vagrant/"
touch "$work/vagrant/failoverd_0.1.0_amd64.deb"
vagrant_env=(DIGITALOCEAN_TOKEN=dop_v1_test DO_SSH_KEY_NAME=ci-key DO_REGION=fra1
    DO_SIZE=s-1vcpu-1gb RESERVED_IP=203.0.113.10)
vagrant_run() { (cd "$work/vagrant" && env -i PATH="$PATH" "$@" ruby \
    "$OLDPWD/tests/package/vagrantfile_check.rb" Vagrantfile up); }
for missing in DIGITALOCEAN_TOKEN DO_SSH_KEY_NAME DO_REGION DO_SIZE RESERVED_IP; do
    settings=()
    for kv in "${vagrant_env[@]}"; do
        [ "${kv%%=*}" = "$missing" ] || settings+=("$kv")
    done
    if vagrant_run "${settings[@]}" >/dev/null 2>"$work/vagrant.err"; then
        fail "the Vagrantfile runs without $missing"
    fi
    grep -q "set $missing" "$work/vagrant.err" || { cat "$work/vagrant.err" >&2; fail "no clear error for $missing"; }
done
log "ok: the Vagrantfile names each missing variable ($(head -n 1 "$work/vagrant.err"))"
vagrant_run "${vagrant_env[@]}" >"$work/vagrant1.json" || fail "the Vagrantfile fails with every setting"
key_sum=$(sha256sum <"$work/vagrant/.vagrant/failoverd/auth.key")
vagrant_run "${vagrant_env[@]}" >"$work/vagrant2.json" || fail "the Vagrantfile fails on a second run"
[ "$(sha256sum <"$work/vagrant/.vagrant/failoverd/auth.key")" = "$key_sum" ] ||
    fail "the auth key changed between two runs (both nodes must share one)"
python3 - "$work/vagrant1.json" "$work/vagrant" <<'PY' || fail "the Vagrantfile's plan is wrong"
import json, os, stat, sys
plan = json.load(open(sys.argv[1]))
secrets = os.path.join(sys.argv[2], ".vagrant", "failoverd")
machines = plan["children"]["vm"]["children"]
assert sorted(machines) == ["define:web-1", "define:web-2"], machines.keys()
priorities, strict = [], []
for name, machine in sorted(machines.items()):
    vm = machine["children"]["vm"]
    do = vm["children"]["provider:digital_ocean"]["settings"]
    assert do["tags"] == ["failoverd-web"], do
    assert (do["region"], do["size"], do["ssh_key_name"], do["token"]) == \
        ("fra1", "s-1vcpu-1gb", "ci-key", "dop_v1_test"), do
    assert do["private_networking"] is True and do["image"] == "debian-12-x64", do
    uploads = {c["options"]["destination"].rsplit("/", 1)[1]: c["options"]["source"]
               for c in vm["calls"] if c["provision"] == "file"}
    assert sorted(uploads) == ["auth.key", "do-token", "failoverd.deb"], uploads
    assert uploads["auth.key"] == os.path.join(secrets, "auth.key"), uploads
    shell = [c["options"] for c in vm["calls"] if c["provision"] == "shell" and "path" in c["options"]]
    assert len(shell) == 1 and shell[0]["path"] == "packaging/vagrant/provision.sh", shell
    env = shell[0]["env"]
    assert env["FO_TAG"] == "failoverd-web" and env["FO_RESERVED_IP"] == "203.0.113.10", env
    assert "dop_v1_test" not in json.dumps(shell), "token on a command line"
    priorities.append(int(env["FO_PRIORITY"]))
    strict.append(env["FO_DOCTOR_STRICT"])
assert priorities == [150, 100] and strict == ["0", "1"], (priorities, strict)
for f in ("auth.key", "do-token"):
    mode = stat.S_IMODE(os.stat(os.path.join(secrets, f)).st_mode)
    assert mode == 0o600, (f, oct(mode))
assert os.path.getsize(os.path.join(secrets, "auth.key")) == 32
PY
log "ok: Vagrantfile plan: web-1 (150) and web-2 (100) tagged failoverd-web, token and one shared key as 0600 files"

echo "# changed by the admin" >>"$root/etc/failoverd/failoverd.conf"
expect "dpkg -r" in_root dpkg -r failoverd
expect "dpkg -r removed the binaries" test ! -e "$root/usr/sbin/failoverd"
expect "dpkg -r kept the conffile" grep -q "changed by the admin" "$root/etc/failoverd/failoverd.conf"
[ "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' failoverd)" = "rc " ] ||
    fail "after dpkg -r the package is not in state rc"
expect "dpkg -P" in_root dpkg -P failoverd
expect "dpkg -P removed the conffile" test ! -e "$root/etc/failoverd/failoverd.conf"
expect "dpkg -P removed /etc/failoverd" test ! -e "$root/etc/failoverd"
expect "dpkg -P removed /var/lib/failoverd" test ! -e "$root/var/lib/failoverd"
