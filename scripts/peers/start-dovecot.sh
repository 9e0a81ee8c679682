#!/usr/bin/env bash
# Starts a private Dovecot 2.3 on loopback for the interop tests, everything under STATE_DIR:
#   POP3        127.0.0.1:${POP3_PORT:-11110}        STLS, CAPA, SASL, APOP, USER/PASS
#   Submission  127.0.0.1:${SUBMISSION_PORT:-11587}  STARTTLS, AUTH; relays to the sink:
#   SMTP sink   127.0.0.1:${SINK_PORT:-11026}        smtp-sink.py, writes STATE_DIR/sink/N.eml
# Accounts (passwords stored {PLAIN}, so every mechanism works; OAuth tokens checked locally):
#   alice / wonderland / token alice-token-123        3 messages (short, dot lines, 2000 lines)
#   odd,user=name / pässwörd€ / token odd-token-456   1 message with an 8-bit UTF-8 body
#   bob / builder                                     3 short messages, for DELE tests
# TLS: STATE_DIR/ssl/ca.pem is the CA to trust (--ca-file); the server certificate is for
# localhost and 127.0.0.1.
#
# usage: start-dovecot.sh STATE_DIR      (root; installs the packages via ../install-peers.sh)
# Idempotent: while it runs with the same STATE_DIR it only reports. Stop: stop-peers.sh STATE_DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/common.sh"
need_root "$@"
[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
POP3_PORT=${POP3_PORT:-11110}
SUBMISSION_PORT=${SUBMISSION_PORT:-11587}
SINK_PORT=${SINK_PORT:-11026}
mkdir -p "$1"
DIR=$(cd "$1" && pwd)

if alive "$DIR/dovecot.pid" && port_open "$POP3_PORT"; then
  echo "start-dovecot: already running (pid $(cat "$DIR/dovecot.pid")) in $DIR"
  exit 0
fi
for p in "$POP3_PORT" "$SUBMISSION_PORT" "$SINK_PORT"; do
  port_open "$p" && die "port $p is already in use"
done
command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/pop3 ] && [ -x /usr/lib/dovecot/submission ] \
  || "$HERE/../install-peers.sh"

MUID=$(id -u nobody)
MGID=$(id -g nobody)
chmod 755 "$DIR"
mkdir -p "$DIR/conf" "$DIR/run" "$DIR/state" "$DIR/home" "$DIR/sink"
make_certs "$DIR/ssl"

passwd_line() { echo "$1:{PLAIN}$2:$MUID:$MGID::$DIR/home/$1::"; }
{
  passwd_line alice wonderland
  passwd_line 'odd,user=name' 'pässwörd€'
  passwd_line bob builder
} >"$DIR/passwd"
{
  passwd_line alice alice-token-123
  passwd_line 'odd,user=name' odd-token-456
} >"$DIR/tokens"
chgrp dovecot "$DIR/passwd" "$DIR/tokens"
chmod 640 "$DIR/passwd" "$DIR/tokens"

# Mailboxes: written once per STATE_DIR (a restart keeps what tests deleted). LF on disk,
# Dovecot sends CRLF.
deliver() { # USER N < message
  local md="$DIR/home/$1/Maildir"
  mkdir -p "$md/cur" "$md/new" "$md/tmp"
  cat >"$md/new/170000000$2.M$2P1.localhost"
}
header() { # SUBJECT N
  printf 'From: Bob <bob@example.org>\nTo: Alice <alice@localhost>\nSubject: %s\n' "$1"
  printf 'Date: Tue, 14 Nov 2023 22:13:2%s +0000\nMessage-ID: <msg%s@example.org>\n\n' "$2" "$2"
}
if [ ! -d "$DIR/home/alice" ]; then
  { header "first message" 1; printf 'Hello Alice,\nthis is a short plain message.\n'; } | deliver alice 1
  { header "dot-stuffing test" 2
    printf '%s\n' 'The next lines start with dots.' '.' '..' '.leading dot' '...three dots' '. dot space' \
      'end of dot test'; } | deliver alice 2
  { header "big message" 3
    for i in $(seq 1 2000); do printf 'line %04d: the quick brown fox jumps over the lazy dog\n' "$i"; done
  } | deliver alice 3
  { printf 'From: Bob <bob@example.org>\nTo: odd <odd@localhost>\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\n'
    printf 'Date: Tue, 14 Nov 2023 22:13:24 +0000\nMessage-ID: <msg4@example.org>\n'
    printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße, odd user.\n'
  } | deliver 'odd,user=name' 4
  for n in 5 6 7; do { header "to be deleted $n" "$n"; printf 'message %s for bob\n' "$n"; } | deliver bob "$n"; done
  chown -R "$MUID:$MGID" "$DIR/home"
fi

cat >"$DIR/conf/dovecot.conf" <<CONF
# written by scripts/peers/start-dovecot.sh; reads nothing from /etc/dovecot
protocols = pop3 submission
listen = 127.0.0.1
base_dir = $DIR/run
state_dir = $DIR/state
instance_name = mailwire-dovecot-$POP3_PORT
hostname = localhost
login_greeting = Dovecot ready.
log_path = $DIR/dovecot.log
auth_verbose = yes
auth_debug = yes
ssl = yes
ssl_cert = <$DIR/ssl/cert.pem
ssl_key = <$DIR/ssl/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 apop xoauth2 oauthbearer
auth_username_chars =
auth_realms =
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = 1
mail_privileged_group =
passdb {
  driver = passwd-file
  mechanisms = xoauth2 oauthbearer
  args = scheme=PLAIN username_format=%u $DIR/tokens
  result_failure = return-fail
}
passdb {
  driver = passwd-file
  mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 apop none
  args = scheme=PLAIN username_format=%u $DIR/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $DIR/passwd
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = $SUBMISSION_PORT
  }
}
# no brute-force penalty: the tests log in with wrong passwords on purpose
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
submission_relay_host = 127.0.0.1
submission_relay_port = $SINK_PORT
submission_relay_ssl = no
CONF
dovecot -c "$DIR/conf/dovecot.conf" -n >/dev/null 2>"$DIR/config.err" || die "config rejected: $(cat "$DIR/config.err")"

if ! alive "$DIR/sink.pid"; then
  nohup python3 "$HERE/smtp-sink.py" 127.0.0.1 "$SINK_PORT" "$DIR/sink" >"$DIR/sink.log" 2>&1 &
  echo $! >"$DIR/sink.pid"
fi
wait_port "$SINK_PORT" 10 "$DIR/sink.pid" || die "the SMTP sink did not listen on $SINK_PORT: $(cat "$DIR/sink.log")"
nohup dovecot -c "$DIR/conf/dovecot.conf" -F >"$DIR/dovecot.out" 2>&1 &
echo $! >"$DIR/dovecot.pid"
wait_port "$POP3_PORT" 20 "$DIR/dovecot.pid" || die "dovecot did not listen on $POP3_PORT: $(tail -5 "$DIR/dovecot.out" "$DIR/dovecot.log" 2>/dev/null)"
wait_port "$SUBMISSION_PORT" 10 "$DIR/dovecot.pid" || die "dovecot submission did not listen on $SUBMISSION_PORT"
echo "start-dovecot: POP3 127.0.0.1:$POP3_PORT, submission 127.0.0.1:$SUBMISSION_PORT -> sink $DIR/sink; CA $DIR/ssl/ca.pem"
