#!/bin/sh
# A self-signed certificate for localhost and 127.0.0.1, valid 30 days, for
# examples/wss: cert.pem and key.pem into DIR (default: beside this script).
# Usage: examples/wss/make-cert.sh [DIR]
set -eu
dir=${1:-$(dirname "$0")}
if ! command -v openssl >/dev/null 2>&1; then
  echo "make-cert.sh: openssl is missing (apt-get install openssl)" >&2
  exit 1
fi
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -days 30 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
chmod 644 "$dir/cert.pem"
echo "wrote $dir/cert.pem and $dir/key.pem"
