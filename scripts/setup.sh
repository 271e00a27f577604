#!/usr/bin/env bash
# Idempotent setup: the Debian packages the lab runs and a Python venv with the project.
# Quick (about a second) when everything is already there. Needs root for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBIAN_PACKAGES=(
  iproute2 iputils-ping nftables conntrack tcpdump
  openssh-server openssh-client
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
  softether-vpnserver freeradius binutils ocserv openconnect
  nginx-light libnginx-mod-stream haproxy
  # the reports' PDF and screenshots, and the browser test of the pages (driven by Playwright,
  # whose bundled driver needs libatomic1)
  chromium fonts-dejavu-core libatomic1
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  # judged by the package database state field, exactly (an unknown package makes dpkg-query exit 1)
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: the lab starts its own daemons; none of the system services are wanted.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x $VENV/bin/python ]]; then
  echo "setup: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV" || { echo "setup: '$PYTHON -m venv' failed (apt-get install python3-venv)" >&2; exit 2; }
fi
stamp=$VENV/.aovpn-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "setup: installing the project and its Python dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
