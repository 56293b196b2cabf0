#!/bin/sh
# Provisions one failoverd node on a DigitalOcean droplet (run by the Vagrantfile as root):
# installs the .deb, puts the API token in systemd's credential store (root, 0600), where the
# unit's LoadCredential= finds it, and the shared auth key (0600 failoverd), writes the node's
# config with peers from the droplet tag, starts the service and runs `failoverctl doctor`.
#
#   provision.sh install   the whole thing, on the droplet
#   provision.sh render    only print the config to stdout (tests/package checks it)
#
# Settings come from the environment: FO_NODE_NAME, FO_PRIORITY, FO_TAG, FO_RESERVED_IP,
# FO_EXPECT_CONTAINERS (default 10), FO_LISTEN (default: this droplet's private address from
# the metadata service), FO_UPLOAD_DIR (where the Vagrantfile put failoverd.deb, do-token and
# auth.key; default /tmp/failoverd-upload), FO_DOCTOR_STRICT (1: a failing doctor fails the
# provisioning; the first node provisions before its peer exists, so only the last sets it).
set -eu

need() {
    eval "value=\${$1:-}"
    if [ -z "$value" ]; then
        echo "provision.sh: $1 is not set" >&2
        exit 2
    fi
}

render() {
    cat <<CONF
# Written by packaging/vagrant/provision.sh for node $FO_NODE_NAME.
[node]
name = $FO_NODE_NAME
listen = $FO_LISTEN:5405

[cluster]
# The droplets tagged $FO_TAG, found through the API: no address is written down here.
peers_from_tag = $FO_TAG
auth_key_file = /etc/failoverd/auth.key
advert_interval = 1s

[provider]
# No token_file: the unit passes /etc/credstore/failoverd-do-token as credential do-token.
type = digitalocean
droplet_id = auto

[check.containers]
type = docker
expect = $FO_EXPECT_CONTAINERS
interval = 2s
timeout = 1s
fall = 2
rise = 2
weight = 0

[instance.www]
reserved_ip = $FO_RESERVED_IP
priority = $FO_PRIORITY
checks = containers
notify = /etc/failoverd/hooks/record-transition
CONF
}

private_address() {
    curl -fsS --max-time 5 http://169.254.169.254/metadata/v1/interfaces/private/0/ipv4/address
}

for name in FO_NODE_NAME FO_PRIORITY FO_TAG FO_RESERVED_IP; do
    need "$name"
done
FO_EXPECT_CONTAINERS=${FO_EXPECT_CONTAINERS:-10}
upload=${FO_UPLOAD_DIR:-/tmp/failoverd-upload}

case ${1:-} in
    render)
        FO_LISTEN=${FO_LISTEN:-10.0.0.1}
        render
        exit 0 ;;
    install) ;;
    *)
        echo "usage: provision.sh install|render" >&2
        exit 2 ;;
esac

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q curl "$upload/failoverd.deb"
FO_LISTEN=${FO_LISTEN:-$(private_address)}

install -d -m 0700 /etc/credstore
install -m 0600 -o root -g root "$upload/do-token" /etc/credstore/failoverd-do-token
install -m 0600 -o failoverd -g failoverd "$upload/auth.key" /etc/failoverd/auth.key
rm -f "$upload/do-token" "$upload/auth.key"

# The Docker socket is root-equivalent: membership is a deliberate choice (docs/install.md).
if getent group docker >/dev/null; then
    adduser --quiet failoverd docker
fi

render >/etc/failoverd/failoverd.conf.new
chmod 0644 /etc/failoverd/failoverd.conf.new
mv /etc/failoverd/failoverd.conf.new /etc/failoverd/failoverd.conf
systemctl enable failoverd
systemctl restart failoverd
systemctl --no-pager status failoverd || true

# The token is the service's credential: doctor reads the copy systemd made for it.
if ! CREDENTIALS_DIRECTORY=/run/credentials/failoverd.service failoverctl doctor; then
    if [ "${FO_DOCTOR_STRICT:-0}" = 1 ]; then
        echo "provision.sh: failoverctl doctor found problems (above)" >&2
        exit 1
    fi
    echo "provision.sh: failoverctl doctor found problems (above); the peer may not exist yet"
fi
