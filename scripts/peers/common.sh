# Helpers shared by the peer scripts (sourced, not run).

die() { echo "${0##*/}: ERROR: $*" >&2; exit 1; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# wait_port PORT SECONDS PIDFILE: polls until the port accepts; fails early if the process died.
wait_port() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    [ -n "${3:-}" ] && ! alive "$3" && return 1
    sleep 0.1
  done
  return 1
}

# alive PIDFILE: the recorded process is still running.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# need_root "$@": re-exec under sudo when not root (apt-get, chown to service users).
need_root() {
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "must run as root"
    exec sudo -E "$0" "$@"
  fi
}

# make_certs DIR: a test CA (DIR/ca.pem) and a localhost server certificate signed by it
# (DIR/cert.pem, DIR/key.pem). rustls refuses a self-signed CA certificate used as the server
# certificate, so the server gets its own leaf: clients trust DIR/ca.pem with --ca-file.
make_certs() {
  local d=$1
  [ -f "$d/cert.pem" ] && [ -f "$d/ca.pem" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mailwire test peer CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$d/ca-key.pem" -out "$d/ca.pem" 2>/dev/null || die "openssl: CA certificate"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/key.pem" -out "$d/cert.csr" \
    2>/dev/null || die "openssl: certificate request"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$d/cert.ext"
  openssl x509 -req -in "$d/cert.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial -days 3650 \
    -extfile "$d/cert.ext" -out "$d/cert.pem" 2>/dev/null || die "openssl: signing the certificate"
  chmod 600 "$d/key.pem" "$d/ca-key.pem"
}
