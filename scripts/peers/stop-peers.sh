#!/usr/bin/env bash
# Stops the peers started with STATE_DIR: only the processes recorded in STATE_DIR/*.pid
# (TERM, then KILL after 5 s). Stopping the Dovecot master stops its children.
# usage: stop-peers.sh STATE_DIR...
set -u
[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR..." >&2; exit 2; }
for dir in "$@"; do
  for pidfile in "$dir"/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
      echo "stop-peers: stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
  done
done
