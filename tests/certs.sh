#!/usr/bin/env bash
# Test certificates for the TLS tests and benchmarks, made with openssl into DIR (once:
# an existing DIR/done is kept). ECDSA P-256 keys.
#   ca.pem ca.key          a test CA
#   server.pem server.key  signed by it: localhost, 127.0.0.1, ::1 (valid 10 years)
#   expired.pem .key       signed by it for the same names, valid only in January 2020
#   self.pem self.key      self-signed for the same names (no CA)
# Usage: tests/certs.sh DIR
set -euo pipefail
d=${1:?usage: tests/certs.sh DIR}
[ -f "$d/done" ] && exit 0
mkdir -p "$d"
cd "$d"
san="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=np test CA" -days 3650 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
key server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
printf '%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile ext.cnf -out server.pem 2>/dev/null
# expired: openssl ca sets explicit dates (x509 -req cannot on OpenSSL 3.0)
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p ca.db && : >ca.db/index && echo 01 >ca.db/serial
cat >ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = ca.db
database = ca.db/index
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = ext
[any]
commonName = supplied
[ext]
$san
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
CNF
openssl ca -batch -config ca.cnf -in expired.csr -startdate 20200101000000Z \
    -enddate 20200131000000Z -out expired.pem -notext 2>/dev/null
key self.key
openssl req -x509 -new -key self.key -subj "/CN=localhost" -days 3650 -addext "$san" -out self.pem
rm -f ./*.csr ext.cnf
touch done
