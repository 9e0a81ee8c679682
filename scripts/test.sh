#!/usr/bin/env bash
# The whole test suite: unit, property, known-answer, transcript and interop tests, doc tests.
# Installs the interop peers (Debian packages) when missing, starts a private Dovecot (POP3 +
# submission) and Exim on free loopback ports, runs the tests against them and stops them.
# The tests find the peers through these variables (a test whose peer is missing fails):
#   MAILWIRE_DOVECOT_POP3, MAILWIRE_DOVECOT_SUBMISSION, MAILWIRE_DOVECOT_DIR (ssl/ca.pem, sink/)
#   MAILWIRE_EXIM_SMTP, MAILWIRE_EXIM_DIR (ssl/ca.pem, mail/mbox)
# A peer that does not start fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/peers/common.sh

scripts/install-peers.sh

free_port() { # a random port in 20000..39999 nobody listens on
  local p _
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    port_open "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

PEERS=$(mktemp -d -t mailwire-peers.XXXXXX)
chmod 755 "$PEERS"
stop_peers() { scripts/peers/stop-peers.sh "$PEERS/dovecot" "$PEERS/exim" >/dev/null || true; }
trap stop_peers EXIT

export MAILWIRE_DOVECOT_DIR=$PEERS/dovecot MAILWIRE_EXIM_DIR=$PEERS/exim
export MAILWIRE_DOVECOT_POP3 MAILWIRE_DOVECOT_SUBMISSION MAILWIRE_EXIM_SMTP
MAILWIRE_DOVECOT_POP3=$(free_port)
MAILWIRE_DOVECOT_SUBMISSION=$(free_port)
MAILWIRE_EXIM_SMTP=$(free_port)
POP3_PORT=$MAILWIRE_DOVECOT_POP3 SUBMISSION_PORT=$MAILWIRE_DOVECOT_SUBMISSION SINK_PORT=$(free_port) \
  scripts/peers/start-dovecot.sh "$MAILWIRE_DOVECOT_DIR"
SMTP_PORT=$MAILWIRE_EXIM_SMTP scripts/peers/start-exim.sh "$MAILWIRE_EXIM_DIR"

# The interop tests run the example programs (target/debug/examples/*): build them first.
cargo build --examples
cargo test --all-targets
cargo test --doc
