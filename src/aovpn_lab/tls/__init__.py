"""TLS posture of an SSTP (or any HTTPS/TLS VPN) listener: protocols, cipher suites,
certificate, and the RRAS load-balancer health monitor (:mod:`aovpn_lab.tls.posture`).

The scan needs the optional dependency ``sslyze`` (``pip install 'sslyze>=6.3.1,<7'``);
it is imported only when a scan runs.
"""
