#!/usr/bin/env bash
# Installs the Debian packages the interop tests need when they are missing (needs root or sudo):
#   gsasl                                      GNU SASL, a second mechanism implementation
#   dovecot-core dovecot-pop3d dovecot-submissiond   POP3 (STLS) and submission (STARTTLS) peer
#   exim4-daemon-heavy sasl2-bin libsasl2-modules    SMTP peer with STARTTLS and Cyrus SASL
#   swaks + libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl libdigest-hmac-perl
#                                              a real SMTP client (TLS, DIGEST-MD5, CRAM-MD5)
#   openssl, python3                           certificates, the SMTP sink, smtplib/poplib tests
# Package scripts must not start the system-wide daemons: when /usr/sbin/policy-rc.d is
# missing, one that refuses (exit 101) is put in place for the install and removed after.
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed'; }
for p in gsasl dovecot-core dovecot-pop3d dovecot-submissiond exim4-daemon-heavy sasl2-bin libsasl2-modules \
  swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl libdigest-hmac-perl openssl python3; do
  have_pkg "$p" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "install-peers: installing ${need[*]}" >&2
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
  "${sudo_cmd[@]}" chmod 755 "$policy"
  made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || "${sudo_cmd[@]}" rm -f "$policy"; }
trap cleanup EXIT
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
