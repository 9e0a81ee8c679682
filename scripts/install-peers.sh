#!/usr/bin/env bash
# Installs the Debian packages of the interop peers when missing (needs root or sudo).
set -euo pipefail
need=()
command -v gsasl >/dev/null || need+=(gsasl)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
