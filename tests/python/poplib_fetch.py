#!/usr/bin/env python3
"""Python's poplib against a mailwire POP3 server: STLS (certificate verified against CA),
then APOP or USER/PASS, STAT, LIST, UIDL, RETR of every message (written to OUTDIR/N.eml as
received, CRLF line ends), optionally DELE of all, QUIT.

usage: poplib_fetch.py HOST PORT CA USER PASSWORD apop|user OUTDIR [--dele]
Exit 0 on success, 4 when authentication failed, 1 otherwise. Prints "count N" on stdout.
"""
import os
import poplib
import ssl
import sys


def main():
    host, port, ca, user, password, method, outdir = sys.argv[1:8]
    dele = "--dele" in sys.argv[8:]
    context = ssl.create_default_context(cafile=ca)
    pop = poplib.POP3(host, int(port), timeout=30)
    caps = pop.capa()
    if "STLS" not in caps:
        print("server does not offer STLS", file=sys.stderr)
        return 1
    pop.stls(context=context)
    if "STLS" in pop.capa():
        print("STLS offered again after TLS", file=sys.stderr)
        return 1
    try:
        if method == "apop":
            pop.apop(user, password)
        else:
            pop.user(user)
            pop.pass_(password)
    except poplib.error_proto as e:
        print(f"authentication failed: {e}", file=sys.stderr)
        return 4
    count, _size = pop.stat()
    _resp, listing, _ = pop.list()
    _resp, uids, _ = pop.uidl()
    if len(listing) != count or len(uids) != count:
        print(f"LIST/UIDL disagree with STAT: {listing} {uids} {count}", file=sys.stderr)
        return 1
    for n in range(1, count + 1):
        _resp, lines, _octets = pop.retr(n)
        with open(os.path.join(outdir, f"{n}.eml"), "wb") as f:
            f.write(b"".join(line + b"\r\n" for line in lines))
        if dele:
            pop.dele(n)
    pop.quit()
    print(f"count {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
