#!/bin/bash
# make_test_ca.sh DIR [IP_OR_NAME...]: a throwaway test CA and a server certificate signed by it,
# for fake_do_api.py --tls-cert/--tls-key. Writes DIR/ca.pem, DIR/ca.key, DIR/server.pem and
# DIR/server.key (EC P-256, no passphrase, valid 10 years). The server certificate's
# subjectAltName lists every IP_OR_NAME (default: 127.0.0.1 localhost); arguments that parse as
# IPv4/IPv6 addresses become IP entries, the rest DNS names. Clients trust DIR/ca.pem.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 DIR [IP_OR_NAME...]" >&2
    exit 2
fi
dir=$1
shift
if [ $# -eq 0 ]; then
    set -- 127.0.0.1 localhost
fi
mkdir -p "$dir"

san=""
for name in "$@"; do
    if [[ $name =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $name == *:* ]]; then
        san+="${san:+,}IP:$name"
    else
        san+="${san:+,}DNS:$name"
    fi
done

tmp=$(mktemp -d "$dir/.make_test_ca.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 3650 -subj "/CN=failoverd test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=$1" 2>/dev/null

cat >"$tmp/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
    -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 3650 \
    -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>/dev/null

chmod 644 "$tmp/ca.pem" "$tmp/server.pem"
for f in ca.pem ca.key server.pem server.key; do
    mv -f "$tmp/$f" "$dir/$f"
done
