#!/usr/bin/env bash
# make_certs.sh DIR — test certificates for the TLS tests, made fresh each run (openssl):
#   ca.pem/ca.key            a private CA
#   server.{pem,key}         signed by it, for IP 127.0.0.1 and DNS localhost
#   wronghost.{pem,key}      signed by it, for DNS other.example only
#   expired.{pem,key}        signed by it, for 127.0.0.1, valid only in January 2020
#   selfsigned.{pem,key}     for 127.0.0.1, signed by itself
#   client.{pem,key}         signed by the CA, CN=client: a client certificate for mTLS
#   rsa.{pem,key}            like server, with an RSA 2048 key: the cipher suite tests (static
#                            RSA key exchange and ECDHE-RSA exist only for RSA certificates)
set -euo pipefail
dir=$1
mkdir -p "$dir/newcerts"
cd "$dir"
: >index.txt
echo 1000 >serial
cat >ca.cnf <<CNF
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
CNF
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 2 -subj "/CN=trafficcop test CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"
# leaf NAME SAN [startdate enddate]; an EC P-256 key, or what $newkey says
leaf() {
  local name=$1 san=$2 dates=()
  [ $# -ge 4 ] && dates=(-startdate "$3" -enddate "$4")
  [ $# -lt 4 ] && dates=(-days 2)
  local key=(${newkey:--newkey ec -pkeyopt ec_paramgen_curve:P-256})
  q openssl req "${key[@]}" -nodes -keyout "$name.key" \
    -out "$name.csr" -subj "/CN=$name" -addext "subjectAltName=$san"
  q openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in "$name.csr" \
    -out "$name.pem" "${dates[@]}"
}
leaf server "IP:127.0.0.1,DNS:localhost"
leaf wronghost "DNS:other.example"
leaf expired "IP:127.0.0.1,DNS:localhost" 20200101000000Z 20200201000000Z
leaf client "DNS:test-client"                 # a client certificate (mTLS), CN=client
newkey="-newkey rsa:2048" leaf rsa "IP:127.0.0.1,DNS:localhost"
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout selfsigned.key \
  -out selfsigned.pem -days 2 -subj "/CN=selfsigned" -addext "subjectAltName=IP:127.0.0.1"
