#!/usr/bin/env bash
# Starts a private Exim 4 (Debian's exim4-daemon-heavy) on 127.0.0.1:${SMTP_PORT:-11025} for the
# interop tests, everything under STATE_DIR:
#   STARTTLS (certificate for localhost/127.0.0.1 signed by STATE_DIR/ssl/ca.pem)
#   AUTH PLAIN LOGIN CRAM-MD5            Exim's own authenticators, passwords in STATE_DIR/passwd
#   AUTH DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256   Cyrus SASL (sasldb, realm "localhost")
#   RCPT only after AUTH; accepted mail is appended to STATE_DIR/mail/mbox
# Accounts: alice / wonderland, odd,user=name / pässwörd€.
#
# usage: start-exim.sh STATE_DIR      (root; installs the packages via ../install-peers.sh)
# Idempotent: while it runs with the same STATE_DIR it only reports. Stop: stop-peers.sh STATE_DIR
# Exim drops to Debian-exim after reading a -C config: its directories belong to that user.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/common.sh"
need_root "$@"
[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
SMTP_PORT=${SMTP_PORT:-11025}
mkdir -p "$1"
DIR=$(cd "$1" && pwd)

if alive "$DIR/exim.pid" && port_open "$SMTP_PORT"; then
  echo "start-exim: already running (pid $(cat "$DIR/exim.pid")) in $DIR"
  exit 0
fi
port_open "$SMTP_PORT" && die "port $SMTP_PORT is already in use"
{ /usr/sbin/exim4 -bV 2>/dev/null | grep -q cyrus_sasl && command -v saslpasswd2 >/dev/null; } \
  || "$HERE/../install-peers.sh"

EXIM_USER=Debian-exim
chmod 755 "$DIR"
mkdir -p "$DIR/spool" "$DIR/log" "$DIR/mail" "$DIR/sasl"
make_certs "$DIR/ssl"

printf '%s\n' 'alice: wonderland' '"odd,user=name": pässwörd€' >"$DIR/passwd"
rm -f "$DIR/sasl/sasldb2"
printf '%s' 'wonderland' | saslpasswd2 -f "$DIR/sasl/sasldb2" -p -c -a exim -u localhost alice
printf '%s' 'pässwörd€' | saslpasswd2 -f "$DIR/sasl/sasldb2" -p -c -a exim -u localhost 'odd,user=name'
cat >"$DIR/sasl/exim.conf" <<CONF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $DIR/sasl/sasldb2
mech_list: DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-256
CONF

# Cyrus mechanisms share one shape.
cyrus() { # NAME MECH
  printf '%s:\n  driver = cyrus_sasl\n  public_name = %s\n  server_mech = %s\n' "$1" "$2" "$2"
  printf '  server_hostname = localhost\n  server_realm = localhost\n  server_service = smtp\n'
  printf '  server_set_id = $auth1\n\n'
}
{
  cat <<CONF
# written by scripts/peers/start-exim.sh
primary_hostname = localhost
qualify_domain = localhost
daemon_smtp_ports = $SMTP_PORT
local_interfaces = 127.0.0.1
spool_directory = $DIR/spool
log_file_path = $DIR/log/%slog
pid_file_path =
host_lookup =
rfc1413_hosts =
smtp_banner = localhost ESMTP Exim test peer
tls_advertise_hosts = *
tls_certificate = $DIR/ssl/cert.pem
tls_privatekey = $DIR/ssl/key.pem
auth_advertise_hosts = *
keep_environment =
add_environment = SASL_CONF_PATH=$DIR/sasl
acl_smtp_rcpt = rcpt_needs_auth
log_selector = +smtp_protocol_error +smtp_syntax_error +tls_cipher

begin acl
rcpt_needs_auth:
  accept authenticated = *
  deny   message = 5.7.1 authentication required

begin routers
everything:
  driver = accept
  transport = mbox

begin transports
mbox:
  driver = appendfile
  file = $DIR/mail/mbox
  user = $EXIM_USER
  group = $EXIM_USER
  mode = 0660

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and{{!eq{\$auth2}{}}{eq{\$auth3}{\${lookup{\$auth2}lsearch{$DIR/passwd}{\$value}fail}}}}}
  server_set_id = \$auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if eq{\$auth2}{\${lookup{\$auth1}lsearch{$DIR/passwd}{\$value}fail}}}
  server_set_id = \$auth1

cram_md5:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = \${lookup{\$auth1}lsearch{$DIR/passwd}{\$value}fail}
  server_set_id = \$auth1

CONF
  cyrus digest_md5 DIGEST-MD5
  cyrus scram_sha_1 SCRAM-SHA-1
  cyrus scram_sha_256 SCRAM-SHA-256
} >"$DIR/exim.conf"

chown -R "$EXIM_USER:$EXIM_USER" "$DIR/spool" "$DIR/log" "$DIR/mail"
chown "root:$EXIM_USER" "$DIR/passwd" "$DIR/sasl/sasldb2" "$DIR/ssl/key.pem" "$DIR/ssl/cert.pem"
chmod 640 "$DIR/passwd" "$DIR/sasl/sasldb2" "$DIR/ssl/key.pem"
chmod 644 "$DIR/exim.conf" "$DIR/sasl/exim.conf"
/usr/sbin/exim4 -C "$DIR/exim.conf" -bV >"$DIR/config.out" 2>&1 || die "config rejected: $(cat "$DIR/config.out")"

# -bdf: daemon in the foreground (so the pid is ours), -oX: only our port.
nohup /usr/sbin/exim4 -C "$DIR/exim.conf" -bdf -q30m -oX "$SMTP_PORT" >"$DIR/exim.out" 2>&1 &
echo $! >"$DIR/exim.pid"
wait_port "$SMTP_PORT" 20 "$DIR/exim.pid" \
  || die "exim did not listen on $SMTP_PORT: $(tail -5 "$DIR/exim.out" "$DIR/log/paniclog" 2>/dev/null)"
echo "start-exim: SMTP 127.0.0.1:$SMTP_PORT, mail to $DIR/mail/mbox; CA $DIR/ssl/ca.pem"
