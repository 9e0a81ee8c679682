#!/usr/bin/env python3
"""Python's smtplib against a mailwire SMTP server: STARTTLS (certificate verified against
CA), AUTH with the mechanism smtplib picks (or --mech), and one message.

usage: smtplib_submit.py HOST PORT CA USER PASSWORD FROM TO MESSAGE_FILE [--mech NAME]
Exit 0 when the message was accepted; 4 when authentication failed; 1 otherwise.
"""
import smtplib
import ssl
import sys


def main():
    try:
        return submit()
    except AuthFailed:
        return 4


class AuthFailed(Exception):
    pass


def submit():
    host, port, ca, user, password, sender, rcpt, message = sys.argv[1:9]
    mech = sys.argv[10] if len(sys.argv) > 10 and sys.argv[9] == "--mech" else None
    context = ssl.create_default_context(cafile=ca)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.ehlo("python.example")
        if not smtp.has_extn("starttls"):
            print("server does not offer STARTTLS", file=sys.stderr)
            return 1
        smtp.starttls(context=context)
        smtp.ehlo("python.example")
        if smtp.has_extn("starttls"):
            print("STARTTLS offered again after TLS", file=sys.stderr)
            return 1
        try:
            if mech:
                smtp.user, smtp.password = user, password
                method = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login,
                          "CRAM-MD5": smtp.auth_cram_md5}[mech]
                smtp.auth(mech, method, initial_response_ok=True)
            else:
                smtp.login(user, password)
        except smtplib.SMTPAuthenticationError as e:
            # smtplib's login() tries every mechanism in turn; the server may close the
            # session (421) after too many failures, which makes leaving the "with" fail too.
            print(f"authentication failed: {e.smtp_code} {e.smtp_error!r}", file=sys.stderr)
            try:
                smtp.quit()
            except smtplib.SMTPException:
                pass
            smtp.close()
            raise AuthFailed() from e
        with open(message, "rb") as f:
            body = f.read()
        refused = smtp.sendmail(sender, [rcpt], body)
        if refused:
            print(f"refused: {refused}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
