"""aovpn-lab: conformance testing for Always On VPN style IKEv2 and SSTP remote access."""
__version__ = "0.1.0"
