"""The minimal vpnc-script openconnect runs in the lab.

Debian's /usr/share/vpnc-scripts/vpnc-script rewrites the shared /etc/resolv.conf (and
may replace the default route); in network namespaces that share the host's /etc that
is never acceptable. This one only brings the tunnel device up with the pushed address
and MTU and adds the split-include routes (or, without any, the pool's own network):
no default route, no DNS, nothing outside ``$TUNDEV``. On disconnect the kernel removes
the device and its routes when openconnect closes it.

When ``AOVPN_TLSVPN_STATUS`` names a file, the script appends ``key=value`` lines to it
(``reason=connect``, ``ip=...``, ``tundev=...``, ``mtu=...``, ``routes=...``): the probe
reads the configured address from there instead of parsing log text.
"""
from __future__ import annotations

import os
from pathlib import Path

STATUS_ENV = "AOVPN_TLSVPN_STATUS"

VPNC_SCRIPT = r"""#!/bin/sh
# aovpn-lab minimal vpnc-script (aovpn_lab.tlsvpn.script): tunnel address, MTU and
# routes only. Never touches DNS, /etc/resolv.conf or the default route.
PATH=/usr/sbin:/usr/bin:/sbin:/bin

status() {
    if [ -n "${AOVPN_TLSVPN_STATUS:-}" ]; then
        for line in "$@"; do printf '%s\n' "$line"; done >> "$AOVPN_TLSVPN_STATUS"
    fi
    return 0
}

case "${reason:-}" in
    connect)
        [ -n "${TUNDEV:-}" ] && [ -n "${INTERNAL_IP4_ADDRESS:-}" ] || { status "reason=error" "error=no TUNDEV or INTERNAL_IP4_ADDRESS"; exit 1; }
        mtu="${INTERNAL_IP4_MTU:-1400}"
        case "$mtu" in ''|*[!0-9]*) mtu=1400 ;; esac
        ip link set dev "$TUNDEV" up mtu "$mtu" || exit 1
        ip -4 addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV" || exit 1
        n="${CISCO_SPLIT_INC:-0}"
        case "$n" in ''|*[!0-9]*) n=0 ;; esac
        routes=""
        i=0
        while [ "$i" -lt "$n" ]; do
            eval "addr=\${CISCO_SPLIT_INC_${i}_ADDR:-}"
            eval "len=\${CISCO_SPLIT_INC_${i}_MASKLEN:-}"
            i=$((i + 1))
            [ -n "$addr" ] && [ -n "$len" ] || continue
            [ "$len" = 0 ] && continue  # never a default route
            ip -4 route replace "$addr/$len" dev "$TUNDEV" && routes="$routes $addr/$len"
        done
        if [ -z "$routes" ] && [ -n "${INTERNAL_IP4_NETADDR:-}" ] && [ -n "${INTERNAL_IP4_NETMASKLEN:-}" ] \
                && [ "${INTERNAL_IP4_NETMASKLEN}" != 0 ]; then
            net="$INTERNAL_IP4_NETADDR/$INTERNAL_IP4_NETMASKLEN"
            ip -4 route replace "$net" dev "$TUNDEV" && routes=" $net"
        fi
        status "reason=connect" "ip=$INTERNAL_IP4_ADDRESS" "tundev=$TUNDEV" "mtu=$mtu" \
               "routes=${routes# }" "gateway=${VPNGATEWAY:-}"
        ;;
    disconnect)
        status "reason=disconnect"
        ;;
    pre-init|reconnect|attempt-reconnect|*)
        ;;
esac
exit 0
"""


def write_script(directory: str | Path, name: str = "vpnc-script") -> Path:
    """Write the script (mode 0700) into ``directory`` and return its path."""
    path = Path(directory) / name
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(VPNC_SCRIPT)
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path
