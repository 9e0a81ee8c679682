#!/usr/bin/env python3
"""SMTP sink for the interop peers: accepts every message and writes it to OUTDIR/N.eml.

Dovecot's submission service relays to it. Standard library only.
usage: smtp-sink.py HOST PORT OUTDIR
"""
import os
import socketserver
import sys
import threading

HOST, PORT, OUTDIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(OUTDIR, exist_ok=True)
LOCK = threading.Lock()


def store(data):
    """Writes one message as the next N.eml (atomically: readers never see half a file)."""
    with LOCK:
        n = len([f for f in os.listdir(OUTDIR) if f.endswith(".eml")]) + 1
        path = os.path.join(OUTDIR, "%d.eml" % n)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)
        return n


class Session(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.reply("220 sink.localhost ESMTP sink")
        sender, rcpts = b"", []
        for raw in self.rfile:
            verb = raw.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"LHLO"):
                self.reply("250-sink.localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING")
            elif verb == b"HELO":
                self.reply("250 sink.localhost")
            elif verb == b"MAIL":
                sender, rcpts = raw.split(b":", 1)[-1].strip(), []
                self.reply("250 2.1.0 ok")
            elif verb == b"RCPT":
                rcpts.append(raw.split(b":", 1)[-1].strip())
                self.reply("250 2.1.5 ok")
            elif verb == b"DATA":
                self.reply("354 go ahead")
                body = bytearray()
                for line in self.rfile:
                    if line in (b".\r\n", b".\n"):
                        break
                    body += line[1:] if line.startswith(b".") else line
                head = b"X-Sink-From: " + sender + b"\r\n"
                head += b"".join(b"X-Sink-To: " + r + b"\r\n" for r in rcpts)
                n = store(head + bytes(body))
                self.reply("250 2.0.0 stored as %d" % n)
            elif verb in (b"RSET", b"NOOP"):
                self.reply("250 2.0.0 ok")
            elif verb == b"QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("502 5.5.1 not implemented")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server((HOST, PORT), Session).serve_forever()
