"""Certificates for the lab and certificate requirement checks.

Modules (import them directly; this package imports nothing heavy on purpose, so that
``python -m aovpn_lab.certs.pki`` runs cleanly):

- :mod:`aovpn_lab.certs.profiles` reads ``profiles/certificates.yml``.
- :mod:`aovpn_lab.certs.pki` issues a lab PKI from a profile into a directory (also a CLI for Ansible);
  :mod:`~aovpn_lab.certs.issuing` builds its CA and leaf certificates.
- :mod:`aovpn_lab.certs.inspect` inspects a chain against the requirements in docs/domain.md, "Certificates":
  :mod:`~aovpn_lab.certs.files` reads certificate files, :mod:`~aovpn_lab.certs.certinfo` describes one
  certificate, :mod:`~aovpn_lab.certs.chain` orders a chain leaf first, :mod:`~aovpn_lab.certs.requirements`
  checks certificates and the leaf, :mod:`~aovpn_lab.certs.ikeauth` predicts the chain's IKE_AUTH, and
  :mod:`~aovpn_lab.certs.report` holds the result and renders it as text or JSON.
- :mod:`aovpn_lab.certs.sizemodel` predicts IKE_AUTH sizes and IP fragment counts.
- :mod:`aovpn_lab.certs.command` registers ``aovpn-lab certs ...`` on an argparse CLI.
"""
from aovpn_lab.certs.errors import CertificateInputError, CertificateProfileError

__all__ = ["CertificateInputError", "CertificateProfileError"]
