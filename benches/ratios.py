#!/usr/bin/env python3
"""Prints the latest criterion figures of mailwire's benches as Markdown tables, with the
ratios BENCHMARKS.md reports (mailwire time / other time: below 1 means mailwire is faster).

Usage: benches/ratios.py [CRITERION_DIR]   (default: $CARGO_TARGET_DIR/criterion or target/criterion)
"""

import json
import os
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                    os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion"))
times = {}
for meta in root.glob("**/new/benchmark.json"):
    info = json.loads(meta.read_text())
    estimates = json.loads((meta.parent / "estimates.json").read_text())
    times[info["full_id"]] = estimates["median"]["point_estimate"]  # nanoseconds


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale * 0.9995:  # 999.7 ns prints as 1 µs, not 1e+03 ns
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def row(name, ours, theirs, goal=None):
    a, b = times.get(ours), times.get(theirs)
    if a is None or b is None:
        return f"| {name} | {fmt(a) if a else '-'} | {fmt(b) if b else '-'} | - | {goal or ''} |"
    ratio = a / b
    met = "" if goal is None else (" ✓" if eval(f"{ratio} {goal}") else " ✗")
    return f"| {name} | {fmt(a)} | {fmt(b)} | {ratio:.2f}×{met} | {goal or ''} |"


def table(title, header, rows):
    print(f"\n### {title}\n")
    print(f"| case | mailwire | {header} | ratio | goal |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(row(*r))


COMMANDS = ["ehlo", "auth_plain", "mail_size_body", "rcpt", "rcpt2", "starttls", "data", "quit"]
table("SMTP commands (vs smtp-proto 0.2.5)", "smtp-proto",
      [("1,000 pipelined (line reader, borrowed lines + parse)", "smtp_commands/pipelined_1000/mailwire",
        "smtp_commands/pipelined_1000/smtp-proto", "<= 0.8"),
       ("1,000 pipelined (line reader, copied: feed + next_line + parse)", "smtp_commands/pipelined_1000/mailwire_copied",
        "smtp_commands/pipelined_1000/smtp-proto"),
       ("1,000 pipelined (lines split from the buffer + parse)", "smtp_commands/pipelined_1000/mailwire_slices",
        "smtp_commands/pipelined_1000/smtp-proto")] +
      [(c, f"smtp_commands/mailwire/{c}", f"smtp_commands/smtp-proto/{c}") for c in COMMANDS])
for other in ("smtp-proto", "lettre"):
    table(f"SMTP replies (vs {other})", other, [
        ("EHLO 12 lines → capabilities, client path (owned Reply)", "smtp_replies/ehlo_12_lines/mailwire",
         f"smtp_replies/ehlo_12_lines/{other}", "<= 0.8" if other == "smtp-proto" else None),
        ("EHLO 12 lines → CapabilitiesRef (borrowed, no allocation)", "smtp_replies/ehlo_12_lines/mailwire_borrowed",
         f"smtp_replies/ehlo_12_lines/{other}", "<= 0.8" if other == "smtp-proto" else None),
        ("EHLO 12 lines → owned Capabilities from borrowed lines", "smtp_replies/ehlo_12_lines/mailwire_lines_owned",
         f"smtp_replies/ehlo_12_lines/{other}"),
        ("235, owned Reply", "smtp_replies/mailwire/235", f"smtp_replies/{other}/235"),
        ("235, borrowed ParsedLine", "smtp_replies/mailwire_borrowed/235", f"smtp_replies/{other}/235",
         "<= 1.0" if other == "smtp-proto" else None),
        ("334, owned Reply", "smtp_replies/mailwire/334", f"smtp_replies/{other}/334"),
        ("334, borrowed ParsedLine", "smtp_replies/mailwire_borrowed/334", f"smtp_replies/{other}/334",
         "<= 1.0" if other == "smtp-proto" else None),
    ])

print("\n### POP3 RETR body, 1 MiB with 5 % dot lines (vs memchr line-visiting baseline)\n")
print("| case | mailwire | baseline | throughput ratio (mailwire / baseline) | goal |")
print("|---|---|---|---|---|")
for op in ("decode", "encode"):
    a, b = times.get(f"pop3_retr_1mib/{op}/mailwire"), times.get(f"pop3_retr_1mib/{op}/memchr_baseline")
    if a and b:
        mib = 1.0
        ok = "✓" if b / a >= 0.6 else "✗"
        print(f"| {op} | {fmt(a)} | {fmt(b)} | {b / a:.2f}× {ok} | >= 0.6 |")

print("\n### SASL full client+server exchanges\n")
print("| mechanism | time |")
print("|---|---|")
for key in sorted(k for k in times if k.startswith("sasl_exchange/")):
    print(f"| {key.split('/', 1)[1]} | {fmt(times[key])} |")
table("SCRAM-SHA-256 (server with stored keys, 4096 rounds)", "other",
      [("vs one raw PBKDF2-HMAC-SHA-256 ×4096", "sasl_exchange/SCRAM-SHA-256",
        "sasl_exchange/PBKDF2-HMAC-SHA-256x4096 (raw)", "<= 1.05"),
       ("vs rsasl 2.3 SCRAM-SHA-256 exchange", "sasl_exchange/SCRAM-SHA-256",
        "sasl_exchange/SCRAM-SHA-256 (rsasl)", "<= 0.75")])
