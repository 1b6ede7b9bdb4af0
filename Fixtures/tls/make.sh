#!/usr/bin/env bash
# Regenerates the test PKI used by the TLS tests and by `wsx echo-server --tls-certificate`:
# a CA, a server certificate for localhost / 127.0.0.1 / ::1, a client certificate (mutual
# TLS). P-256 keys, valid 100 years. For tests only: the keys are public.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca-key.pem" -out ca.pem \
    -days 36500 -subj "/CN=swift-ws test CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
issue() {   # name subject extensions
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1-key.pem" -out "$tmp/$1.csr" -subj "$2"
    printf '%b' "$3" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey "$tmp/ca-key.pem" -CAcreateserial -CAserial "$tmp/ca.srl" \
        -out "$1.pem" -days 36500 -extfile "$tmp/$1.ext"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
issue client "/CN=swift-ws test client" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
openssl verify -CAfile ca.pem server.pem client.pem
