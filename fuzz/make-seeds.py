#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the peer transcripts in tests/data/ and the RFC vectors.

Run from anywhere: `fuzz/make-seeds.py` (it replaces fuzz/seeds/). Each seed is one small file
in the target's input format (see the target's doc comment and fuzz/src/lib.rs).
"""

import ast
import base64
import hashlib
import pathlib
import re
import shutil
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"

# Mechanism::KNOWN, in order.
KNOWN = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "DIGEST-MD5", "CRAM-MD5",
         "OAUTHBEARER", "XOAUTH2", "EXTERNAL", "PLAIN", "LOGIN", "ANONYMOUS"]

seeds = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    seeds.setdefault(target, set()).add(bytes(data))


def op(kind, arg=0, payload=b""):
    payload = payload[:0xFFFF]
    return bytes([(arg << 4) | kind]) + struct.pack("<H", len(payload)) + payload


# ---------------------------------------------------------------------------------------------
# Transcripts: a list of sections, each a list of (who, bytes) and markers.
# ---------------------------------------------------------------------------------------------

def transcripts(path, header):
    sections, current, meta = [], None, {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith(header):
            current = {"name": raw[len(header):].strip(), "steps": [], "meta": {}}
            sections.append(current)
            continue
        if current is None:
            continue
        if raw.startswith("-- new connection --"):
            current = {"name": current["name"] + "'", "steps": [], "meta": dict(current["meta"])}
            sections.append(current)
            continue
        if "[new connection; greeting + STLS done" in raw and sections:
            current["steps"] += sections[0]["steps"]
            continue
        m = re.match(r"^([SC]): (b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")", raw)
        if m:
            current["steps"].append((m.group(1), ast.literal_eval(m.group(2))))
        elif raw.startswith("--TLS--") or raw.startswith("-- TLS handshake done"):
            current["steps"].append(("TLS", b""))
        elif re.match(r"^[a-z]+: ", raw):
            key, value = raw.split(": ", 1)
            current["meta"][key] = value
    return sections


smtp_sections = []
for name in ["smtp-exim.txt", "smtp-dovecot-submission.txt", "smtp-rfc4954.txt"]:
    smtp_sections += transcripts(ROOT / "tests/data" / name, "===")
pop3_sections = transcripts(ROOT / "tests/data/dovecot-pop3.txt", "####")

# Lines from the markdown vectors: `C: ...` / `S: ...` inside code blocks, written as text.
md_client, md_server = [], []
for md in sorted(pathlib.Path("/work/shared/vectors").glob("*.md")) if pathlib.Path("/work/shared/vectors").is_dir() else []:
    for raw in md.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*`?([SC]): (.*?)(\\r\\n)?`?\s*$", raw)
        if m:
            text = m.group(2).replace("\\r\\n", "\r\n")
            (md_client if m.group(1) == "C" else md_server).append(text.encode())

# ---------------------------------------------------------------------------------------------
# SMTP
# ---------------------------------------------------------------------------------------------

for section in smtp_sections:
    server = b"".join(b for who, b in section["steps"] if who == "S")
    for who, line in section["steps"]:
        if who == "C" and line != b"*":
            add("smtp_command", line.rstrip(b"\r\n"))
            if line[:4].upper() in (b"MAIL", b"RCPT"):
                params = line.rstrip(b"\r\n").split(b"> ", 1)
                if len(params) == 2:
                    add("smtp_parameters", params[1])
    add("smtp_reply", b"\x00\x00" + server)
    add("smtp_reply", b"\x07\x00" + server[:600])
    ehlo = [b.rstrip(b"\r\n") for who, b in section["steps"] if who == "S" and b[:4] in (b"250-", b"250 ")]
    if ehlo:
        add("smtp_capabilities", b"\n".join(line[4:] for line in ehlo))

    # Client script: config, then receives and the calls that make the client's lines.
    meta = section["meta"]
    flags = (2 if meta.get("tls") == "disabled" else 0) | 4 | (8 if meta.get("ir", "yes") == "yes" else 0)
    mechanism = meta.get("mechanism", "")
    mech = KNOWN.index(mechanism) + 1 if mechanism in KNOWN else 0
    script = bytes([flags, mech])
    pending = b""
    authenticated = False
    for who, data in section["steps"]:
        if who == "S":
            pending += data
            continue
        if pending:
            script += op(0, 0, pending)
            pending = b""
        if who == "TLS":
            script += op(1)
        elif who == "C":
            verb = data[:4].upper()
            if verb == b"AUTH" and not authenticated:
                script += op(2)
                authenticated = True
            elif verb == b"MAIL":
                script += op(4, 0, b"alice@example.org")
            elif verb == b"QUIT":
                script += op(8)
            elif verb == b"RSET":
                script += op(7)
    if pending:
        script += op(0, 0, pending)
    add("smtp_client", script)
    add("smtp_client", bytes([flags | 32, mech]) + script[2:])

for line in md_client:
    add("smtp_command", line.rstrip(b"\r\n"))
for line in md_server:
    if re.match(rb"^\d{3}", line):
        add("smtp_reply", b"\x00\x00" + line + (b"" if line.endswith(b"\r\n") else b"\r\n"))

for p in ["SIZE=1000000", "BODY=8BITMIME", "BODY=7BIT", "BODY=BINARYMIME", "SMTPUTF8", "RET=FULL", "RET=HDRS",
          "ENVID=QQ314159", "NOTIFY=SUCCESS,FAILURE", "NOTIFY=NEVER", "ORCPT=rfc822;Bob+2B@example.org",
          "AUTH=<>", "AUTH=e+3Dmc2@example.com", "X-FOO=bar", "SIZE=1000 BODY=8BITMIME AUTH=<>"]:
    add("smtp_parameters", p)
for x in ["e+3Dmc2@example.com", "plain", "+2B+3D+20", ""]:
    add("smtp_xtext", x)

# ---------------------------------------------------------------------------------------------
# POP3
# ---------------------------------------------------------------------------------------------

POP3_OPS = {b"STAT": 6, b"LIST": 7, b"UIDL": 8, b"RETR": 9, b"TOP ": 10, b"DELE": 11, b"RSET": 12, b"NOOP": 12,
            b"XTND": 13, b"QUIT": 15}
for section in pop3_sections:
    for who, line in section["steps"]:
        if who == "C":
            add("pop3_command", line.rstrip(b"\r\n"))
        elif who == "S":
            add("pop3_response", line.rstrip(b"\r\n"))
    server = [b for who, b in section["steps"] if who == "S"]
    if any(b.startswith(b"CAPA") or b.startswith(b"SASL") for b in server):
        add("pop3_capa", b"".join(b.replace(b"\r\n", b"\n") for b in server if not b.startswith((b"+", b"-"))))
    script = bytes([4 | 8, 0])
    pending = b""
    in_auth = False
    for who, data in section["steps"]:
        if who == "S":
            pending += data
            continue
        if pending:
            script += op(0, 0, pending)
            pending = b""
        if who == "TLS":
            script += op(1)
        elif who == "C":
            verb = data[:4].upper()
            if verb in (b"AUTH", b"APOP", b"USER"):
                if not in_auth:
                    if verb == b"APOP":
                        script += op(4)
                    elif verb == b"USER":
                        script += op(5)
                    else:
                        name = data[5:].split(b" ")[0].rstrip(b"\r\n").decode(errors="replace").upper()
                        script += op(3, KNOWN.index(name)) if name in KNOWN else op(2)
                    in_auth = True
            elif verb in POP3_OPS:
                number = re.findall(rb"\d+", data)
                arg = min(int(number[0]), 15) if number else 0
                if verb == b"NOOP":
                    arg |= 1
                script += op(POP3_OPS[verb], arg)
                in_auth = False
    if pending:
        script += op(0, 0, pending)
    add("pop3_client", script)
for line in md_client:
    add("pop3_command", line.rstrip(b"\r\n"))
for line in md_server:
    if line[:1] in (b"+", b"-"):
        add("pop3_response", line.rstrip(b"\r\n"))

# ---------------------------------------------------------------------------------------------
# Wire: dot codec, line reader, base64 payloads
# ---------------------------------------------------------------------------------------------

bodies = [b"Subject: hi\r\n\r\n.leading dot\r\n..two\r\nend\r\n.\r\n", b".\r\n", b"a\r\n.\r\n",
          b"line\n.bare lf\n.\r\n", b"x\r\n..\r\n.\r\n"]
for body in bodies:
    add("wire_dot", b"\x03\x00" + body)
    add("wire_line_reader", b"\x40\x01\x05\x00" + body)
for section in pop3_sections[:6]:
    server = b"".join(b for who, b in section["steps"] if who == "S")
    add("wire_line_reader", b"\xff\x02\x10\x00\x33\x00" + server[:1000])

b64 = ["AGZyZWQAdGVzdA==", "=", "*", "dGVzdAB0ZXN0AHRlc3Q=", "c2lyaGM=", "AQ==",
       "cmVhbG09ImVsd29vZC5pbm5vc29mdC5jb20iLG5vbmNlPSJPQTZNRzl0RVFHbTJoaCIscW9wPSJhdXRoIixhbGdvcml0aG09bWQ1LXNlc3MsY2hhcnNldD11dGYtOA=="]
for text in b64:
    add("wire_base64", text)

# ---------------------------------------------------------------------------------------------
# SASL payloads (RFC vectors): [mechanism index | flags][message][0xFF 0xFE][message]...
# ---------------------------------------------------------------------------------------------

SEP = b"\xff\xfe"
digest_challenge = (b'realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,'
                    b'charset=utf-8')
digest_response = (b'charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",'
                   b'nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",'
                   b'response=d388dad90d4bbd760a152321f2143af7,qop=auth')
sasl = {
    "DIGEST-MD5": [[digest_challenge, b"rspauth=ea40f60335c427b5527b84dbabcdfffd", b""],
                   [digest_response, b""]],
    "SCRAM-SHA-1": [[b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                     b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="],
                    [b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                     b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="]],
    "SCRAM-SHA-256": [[b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                       b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                       b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="],
                      [b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                       b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="],
                      [b"e=invalid-proof"]],
    "SCRAM-SHA-256-PLUS": [[b"p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                            b"c=cD10bHMtZXhwb3J0ZXIsLAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,r=rOprNGfwEbeRWgbNEkqO,p=AA=="],
                           [b"y,,n=user,r=abc"]],
    "OAUTHBEARER": [[b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
                     b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01", b"\x01"],
                    [b'{"status":"invalid_token","scope":"example_scope","openid-configuration":'
                     b'"https://example.com/.well-known/openid-configuration"}', b""]],
    "XOAUTH2": [[b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"],
                [b'{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}\n', b""]],
    "PLAIN": [[b"\x00tim\x00tanstaaftanstaaf"], [b"Ursel\x00Kurt\x00xipj3plmq"]],
    "LOGIN": [[b"tim", b"tanstaaftanstaaf"], [b"Username:", b"Password:"]],
    "CRAM-MD5": [[b"<1896.697170952@postoffice.reston.mci.net>", b""],
                 [b"tim b913a602c7eda7a495b4e6e7334d3890"]],
    "ANONYMOUS": [[b"sirhc"]],
    "EXTERNAL": [[b""], [b"chris"]],
}
for name, exchanges in sasl.items():
    for messages in exchanges:
        for flags in (0, 0x80, 0x40):
            add("sasl_payloads", bytes([KNOWN.index(name) | flags]) + SEP.join(messages))

# ---------------------------------------------------------------------------------------------

shutil.rmtree(SEEDS, ignore_errors=True)
total = 0
for target, items in sorted(seeds.items()):
    folder = SEEDS / target
    folder.mkdir(parents=True)
    for data in sorted(items):
        (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
        total += 1
    print(f"{target}: {len(items)} seeds")
print(f"{total} seeds in {SEEDS}")
