"""Another TLS-based VPN protocol next to SSTP: ocserv (AnyConnect-compatible server) and
openconnect (client), both Debian packages, run in lab network namespaces.

- :mod:`aovpn_lab.tlsvpn.ocserv`: one ocserv instance per namespace, its own config
  folder, certificate from a PEM pair, plain password file, IPv4 pool, stopped by PID.
- :mod:`aovpn_lab.tlsvpn.probe`: :func:`~aovpn_lab.tlsvpn.probe.probe_openconnect`, one
  connection attempt that names a single cause, like :func:`aovpn_lab.sstp.probe.probe_sstp`.

Both use :data:`~aovpn_lab.tlsvpn.script.VPNC_SCRIPT`, a minimal vpnc-script that only sets
the tunnel address and routes (never DNS or /etc/resolv.conf).
"""
