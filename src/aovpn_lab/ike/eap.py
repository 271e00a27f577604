"""EAP-TLS user tunnels over vici: the client's connection, and the gateway's that relays
EAP to a RADIUS server (FreeRADIUS in the lab, NPS in production).

An Always On VPN user tunnel authenticates the *gateway* with its certificate (IKE
pubkey) and the *user* with EAP-TLS, which RRAS hands to NPS. The same split in
strongSwan terms:

    client   local  auth = eap-tls, certs = user cert, eap_id = user identity,
                    aaa_id = the RADIUS server's certificate identity (it is the TLS server)
             remote auth = pubkey, id = gateway identity, cacerts = lab CA
    gateway  local  auth = pubkey, gateway cert (send_cert = always)
             remote auth = eap-radius, eap_id = %any (EAP-Identity asks the client)

    >>> conn = eap_tls_connection("203.0.113.241", "vpn.example.net", ca, cert,  # doctest: +SKIP
    ...                           "alice@example.net", aaa_id="radius.example.net")
    >>> session.load_conn("user-tunnel", conn)                 # doctest: +SKIP

`connection_config_eap_tls(target, profile, eap_id=...)` takes the probe's IkeTarget and
ClientProfile, so `run_probe` can offer ``auth="eap-tls"`` next to its pubkey default.
Credentials: load the CA (flag CA), the intermediates of the user's chain (flag NONE, so
the TLS peer can send them) and the user's key before initiating: `load_credentials`.

EAP failures show up in the client's log as ``received EAP_FAILURE``/``EAP method
EAP_TLS failed`` or an ``AUTHENTICATION_FAILED`` notify: `EAP_FAILURE_MARKERS`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # probe imports this module; no import cycle at run time
    from .probe import IkeTarget
    from .profiles import ClientProfile
    from .session import ViciSession

#: Log lines (client or gateway side) that mean the EAP authentication failed.
EAP_FAILURE_MARKERS = ("received EAP_FAILURE", "EAP_FAILURE", "EAP method EAP_TLS failed",
                       "AUTHENTICATION_FAILED", "RADIUS authentication of", "EAP-TLS failed")
#: Gateway log lines that mean the RADIUS server never answered (down, filtered, wrong secret).
RADIUS_SILENT_MARKERS = ("timed out after", "retransmit 1 of RADIUS")

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.DOTALL)


def split_pem(data: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, one PEM block each (an empty file gives [])."""
    return [m.group(0).strip() + b"\n" for m in _PEM.finditer(data or b"")]


def eap_tls_connection(gateway: str, remote_id: str, ca_pem: bytes | Sequence[bytes], cert_pem: bytes,
                       eap_id: str, *, aaa_id: str | None = None, local_id: str | None = None,
                       remote_ts: str = "0.0.0.0/0", proposals: Sequence[str] = ("aes128-sha256-modp2048",),
                       esp_proposals: Sequence[str] = ("aes128-sha256-modp2048",), fragmentation: bool = True,
                       child: str = "tunnel", virtual_ip: bool = True) -> dict[str, Any]:
    """The vici connection dict of an EAP-TLS user tunnel (client side)."""
    cas = [ca_pem] if isinstance(ca_pem, (bytes, bytearray)) else list(ca_pem)
    local: dict[str, Any] = {"auth": "eap-tls", "certs": [cert_pem], "eap_id": eap_id,
                             "id": local_id or eap_id}
    if aaa_id:
        local["aaa_id"] = aaa_id
    conn: dict[str, Any] = {
        "version": "2",
        "remote_addrs": [gateway],
        "proposals": list(proposals),
        "fragmentation": "yes" if fragmentation else "no",
        "send_cert": "always",
        "keyingtries": "1",
        "local": local,
        "remote": {"auth": "pubkey", "id": remote_id, "cacerts": cas},
        "children": {child: {"remote_ts": [remote_ts], "esp_proposals": list(esp_proposals),
                             "start_action": "none"}},
    }
    if virtual_ip:
        conn["vips"] = ["0.0.0.0"]
    return conn


def connection_config_eap_tls(target: IkeTarget, profile: ClientProfile, *, eap_id: str | None = None,
                              aaa_id: str | None = None, child: str = "tunnel") -> dict[str, Any]:
    """Like probe.connection_config, for ``auth="eap-tls"``: target.cert_pem is the *user's*
    certificate and ``eap_id`` (default target.local_id) the identity it is issued to."""
    ident = eap_id or target.local_id
    if not ident:
        raise ValueError("EAP-TLS needs the user identity (eap_id or target.local_id), e.g. alice@example.net")
    return eap_tls_connection(target.gateway, target.remote_id, target.ca_pem, target.cert_pem, ident,
                              aaa_id=aaa_id, local_id=target.local_id or ident, remote_ts=target.remote_ts,
                              proposals=profile.ike, esp_proposals=profile.esp,
                              fragmentation=profile.fragmentation, child=child)


def gateway_connection(address: str, identity: str, cert_pem: bytes, *,
                       local_ts: Sequence[str] = ("0.0.0.0/0",), pools: Sequence[str] = (),
                       proposals: Sequence[str] = ("aes128-sha256-modp2048",),
                       esp_proposals: Sequence[str] = ("aes128-sha256-modp2048",),
                       fragmentation: bool = True, child: str = "corp") -> dict[str, Any]:
    """The gateway (responder) side: pubkey for itself, EAP relayed to RADIUS for the user.

    The charon needs the eap-radius plugin with ``charon.plugins.eap-radius.servers``
    (see aovpn_lab.radius.config.strongswan_eap_radius). ``send_certreq = no`` and
    ``send_cert = always`` put the whole chain into the responder's first IKE_AUTH (load the
    intermediates into the gateway's charon so it can). The gateway does not check the
    user's certificate itself: the RADIUS server does.
    """
    conn: dict[str, Any] = {
        "version": "2",
        "local_addrs": [address],
        "proposals": list(proposals),
        "fragmentation": "yes" if fragmentation else "no",
        "send_certreq": "no",
        "send_cert": "always",
        "local": {"auth": "pubkey", "certs": [cert_pem], "id": identity},
        "remote": {"auth": "eap-radius", "eap_id": "%any"},
        "children": {child: {"local_ts": list(local_ts), "esp_proposals": list(esp_proposals)}},
    }
    if pools:
        conn["pools"] = list(pools)
    return conn


def load_credentials(session: ViciSession, *, ca_pem: bytes | Sequence[bytes], key_pem: bytes,
                     intermediates_pem: bytes = b"") -> None:
    """Trust anchors (flag CA), the user's intermediates (flag NONE: sent in TLS, not trusted
    as anchors) and the private key, into a charon over vici."""
    for ca in ([ca_pem] if isinstance(ca_pem, (bytes, bytearray)) else list(ca_pem)):
        session.load_cert(ca, flag="CA")
    for cert in split_pem(intermediates_pem):
        session.load_cert(cert, flag="NONE")
    session.load_key(key_pem)


def eap_failed(lines: Sequence[str]) -> str | None:
    """The first log line that says EAP authentication failed, if any."""
    return next((l for l in lines if any(m in l for m in EAP_FAILURE_MARKERS)), None)
