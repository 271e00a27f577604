"""Findings: what a read-back server has, judged against profiles/rras.yml.

Each finding names its requirement, what was found, what is expected and the fix (the
cmdlet or registry command to run). Severity follows the requirement's level: a MUST
setting that differs is ``fail``, a SHOULD one ``warn``; ``info`` says what was not judged.
Output that is missing or not in its command's shape gives a ``not-read-*`` finding:
nothing it would have shown passes.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import requirements
from ..findings import FindingsView
from . import catalogue, parse
from .catalogue import FROM_INVENTORY, Catalogue
from .collect import Reading, registry_name

# How Get-VpnServerConfiguration names what Set-VpnServerConfiguration takes in seconds/KB.
OUTPUT_FIELD = {"SALifeTimeSeconds": "SALifeTime", "MMSALifeTimeSeconds": "MMSALifeTime",
                "SADataSizeForRenegotiationKilobytes": "SADataSizeForRenegotiation"}
# The CHILD SA (ESP) half of the policy (AOVPN-ESP-CRYPTO-001); the rest is the IKE SA's.
ESP_FIELDS = ("CipherTransformConstants", "AuthenticationTransformConstants", "PfsGroup")
SERVER_AUTH, IKE_INTERMEDIATE = "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.8.2.2"
RESTART = {"RemoteAccess": "Restart-Service RemoteAccess", "IKEEXT": "Restart-Service IKEEXT -Force"}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str           # fail | warn | info
    requirement: str | None
    found: str
    expected: str = ""
    fix: str = ""
    source: str = ""        # the command name whose output it judges

    @property
    def message(self) -> str:
        return f"found {self.found}" + (f"; expected {self.expected}" if self.expected else "")


@dataclass
class AuditReport(FindingsView):
    host: str
    origin: str
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)   # command names that were read

    @property
    def not_read(self) -> list[Finding]:
        return [f for f in self.findings if f.code.startswith("not-read-")]

    @property
    def result(self) -> str:
        return "fail" if self.failed else ("incomplete" if self.not_read else "pass")


def _severity(rid: str) -> str:
    return "fail" if requirements.get(rid).level == "MUST" else "warn"


class _Judge:
    def __init__(self, readings: Mapping[str, Reading], cat: Catalogue, host_vars: Mapping[str, Any],
                 now: dt.datetime):
        self.readings, self.cat, self.vars, self.now = readings, cat, host_vars, now
        self.findings: list[Finding] = []
        self.checked: list[str] = []

    # -- plumbing
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def add(self, code: str, rid: str | None, found: str, expected: str = "", fix: str = "",
            severity: str | None = None, source: str = "") -> None:
        self.findings.append(Finding(code, severity or (_severity(rid) if rid else "info"), rid, found, expected,
                                     fix, source))

    def text(self, name: str, rid: str | None) -> str | None:
        r = self.readings.get(name)
        if r is None or r.text is None:
            if f"not-read-{name}" in self.codes():
                return None
            why = r.problem if r else "not collected"
            self.add(f"not-read-{name}", rid, f"no output of `{r.command if r else name}` ({why})",
                     "the command's output", "run the command on the server (docs/audit.md) and audit again",
                     severity="info", source=name)
            return None
        if name not in self.checked:
            self.checked.append(name)
        return r.text

    def unreadable(self, name: str, rid: str | None, exc: Exception) -> None:
        self.add(f"not-read-{name}", rid, f"output of `{self.readings[name].command}` not in its shape ({exc})",
                 "the text the command prints", "record the command's output again, unedited",
                 severity="info", source=name)

    def condition(self, name: str | None) -> bool:
        if not name:
            return True
        rras = self.vars.get("rras") or {}
        return bool(rras.get(name, self.vars.get(name, False)))

    def inventory_value(self, *keys: str) -> Any:
        rras = self.vars.get("rras") or {}
        for k in keys:
            if rras.get(k) not in (None, FROM_INVENTORY):
                return rras[k]
        return None

    # -- checks
    def remote_access(self) -> None:
        rid = "AOVPN-IKE-CONN-001"
        text = self.text("remote-access", rid)
        if text is None:
            return
        status = parse.one(text).get("VpnStatus", "")
        if status != "Installed":
            self.add("vpn-not-installed", rid, f"VpnStatus {status or '(none)'}", "VpnStatus Installed",
                     "Install-RemoteAccess -VpnType Vpn", source="remote-access")

    def policy(self) -> None:
        pol = self.cat.policy
        name = "vpn-server-configuration"
        text = self.text(name, pol.requirement)
        if text is None:
            return
        cfg = {parse.field_name(k): v for k, v in parse.one(text).items()}
        wanted = pol.sets[pol.default_set]
        fix = ("Set-VpnServerConfiguration -CustomPolicy "
               + " ".join(f"-{k} {v}" for k, v in wanted.items()) + "; Restart-Service RemoteAccess")
        expected_set = f"the {pol.default_set} set: " + ", ".join(f"{k} {v}" for k, v in wanted.items())
        if cfg.get("CustomPolicy", "").lower() != "true":
            enc = cfg.get("EncryptionType", "?")
            self.add("ike-policy-default", pol.requirement,
                     f"no custom IKEv2 policy (CustomPolicy {cfg.get('CustomPolicy') or 'absent'}, EncryptionType "
                     f"{enc}): RRAS offers its built-in proposals, 3DES, SHA-1 and DH group 2 among them",
                     "CustomPolicy True with " + expected_set, fix, source=name)
            self.add("esp-policy-default", "AOVPN-ESP-CRYPTO-001",
                     "no custom IPsec policy: the CHILD SA accepts the built-in 3DES and SHA-1 proposals",
                     "CipherTransformConstants, AuthenticationTransformConstants and PfsGroup of the "
                     f"{pol.default_set} set", fix, source=name)
            self.lifetimes(cfg, wanted, name)
            return
        for key, value in wanted.items():
            if key in OUTPUT_FIELD:
                continue
            rid = "AOVPN-ESP-CRYPTO-001" if key in ESP_FIELDS else pol.requirement
            have = cfg.get(key)
            allowed = {str(s.get(key)) for s in pol.sets.values()}
            if have is None:
                self.add(f"policy-{key}-absent", rid, f"no {key} in the output", f"{key} {value}", fix, source=name)
            elif have in pol.weak.get(key, ()):
                self.add(f"policy-{key}-weak", rid, f"{key} {have} (weak)", f"{key} {value}", fix, source=name)
            elif have not in allowed:
                self.add(f"policy-{key}", rid, f"{key} {have}", " or ".join(sorted(allowed)), fix, source=name)
        self.lifetimes(cfg, wanted, name)

    def lifetimes(self, cfg: dict, wanted: dict, name: str) -> None:
        for key, out in OUTPUT_FIELD.items():
            if key not in wanted:
                continue
            have = cfg.get(out)
            if have is None or have != str(wanted[key]):
                self.add(f"policy-{key}", self.cat.policy.requirement, f"{out} {have or 'absent'}",
                         f"{out} {wanted[key]}",
                         f"Set-VpnServerConfiguration -{key} {wanted[key]}; Restart-Service RemoteAccess", source=name)

    def registry(self) -> None:
        values: dict[str, dict[str, str] | None] = {}
        for r in self.cat.registry:
            name = registry_name(r.key)
            if not self.condition(r.only_when):
                self.add(f"{r.id}-not-judged", r.requirement, f"{r.name}: only when {r.only_when}, which the "
                         "inventory does not say of this gateway", severity="info", source=name)
                continue
            if name not in values:
                text = self.text(name, r.requirement)
                try:
                    values[name] = None if text is None else parse.registry_values(text)
                except parse.ParseError as exc:
                    self.unreadable(name, r.requirement, exc)
                    values[name] = None
            have = values[name]
            if have is None:
                continue
            self.registry_value(r, have.get(r.name), name)

    def registry_value(self, r: catalogue.RegistryValue, have: str | None, source: str) -> None:
        restart = RESTART.get(r.restart or "", "")
        where = f"{r.key}\\{r.name}"
        if r.type == "binary":
            want = r.value if r.value != FROM_INVENTORY else self.inventory_value(r.id, r.name)
            if r.id == "sstp-certificate-hash" and want is None:
                want = self.sstp_hash_expected()
            data = parse.binary(have) if have else None
            fix = (f"$hash = (Get-ChildItem Cert:\\LocalMachine\\My\\<thumbprint>).GetCertHash('SHA256'); "
                   f"Set-ItemProperty -Path '{r.key}' -Name {r.name} -Value $hash; {restart}").strip("; ")
            if data is None:
                self.add(r.id, r.requirement, f"{where} absent", "the SHA-256 of the certificate clients see", fix,
                         source=source)
            elif want is None:
                self.add(f"{r.id}-not-compared", r.requirement, f"{where} {data.hex().upper()}",
                         "(no certificate to compare it with)", severity="info", source=source)
            elif data.hex().upper() != str(want).replace(":", "").upper():
                self.add(r.id, r.requirement, f"{where} {data.hex().upper()}", f"{str(want).upper()}", fix,
                         source=source)
            return
        fix = (f"New-ItemProperty -Path '{r.key}' -Name {r.name} -PropertyType DWord -Value {r.value} -Force"
               + (f"; {restart}" if restart else ""))
        if have is None or have == "":
            self.add(r.id, r.requirement, f"{where} absent", f"DWORD {r.value}", fix, source=source)
        elif have != str(r.value):
            self.add(r.id, r.requirement, f"{where} = {have}", f"DWORD {r.value}", fix, source=source)

    def sstp_hash_expected(self) -> str | None:
        """The SHA-256 of the certificate for the name clients dial, when the store shows one."""
        good = [c for c in self.server_certificates() if c.get("_names")]
        return good[0].get("Sha256") if len(good) == 1 and good[0].get("Sha256") else None

    def dial_name(self) -> str | None:
        gw = self.vars.get("ikev2_gateway") or {}
        return gw.get("identity") or self.inventory_value("dial_name")

    def server_certificates(self) -> list[dict]:
        if not hasattr(self, "_certs"):
            text = self.readings.get("certificates")
            self._certs = []
            if text is not None and text.text is not None:
                try:
                    blocks = parse.format_list(text.text)
                except parse.ParseError:
                    blocks = []
                name = (self.dial_name() or "").lower()
                for b in blocks:
                    ekus = parse.as_list(b.get("EnhancedKeyUsageList"))
                    names = [n.lower() for n in parse.as_list(b.get("DnsNameList"))]
                    if any(SERVER_AUTH in e for e in ekus):
                        self._certs.append({**b, "_ekus": ekus, "_names": not name or name in names})
        return self._certs

    def certificates(self) -> None:
        rid, name = "AOVPN-CERT-001", "certificates"
        text = self.text(name, rid)
        if text is None:
            return
        try:
            blocks = parse.format_list(text)
        except parse.ParseError as exc:
            return self.unreadable(name, rid, exc)
        dial = self.dial_name()
        fix = ("enroll a certificate with the Server Authentication and IP security IKE intermediate EKUs and the "
               f"name clients dial ({dial or 'the public name'}) in its SAN into Cert:\\LocalMachine\\My, and "
               "select it in RRAS (Set-RemoteAccess -SslCertificate)")
        candidates = [c for c in self.server_certificates() if c["_names"]]
        valid = [c for c in candidates if self._not_after(c) is None or self._not_after(c) > self.now]
        if not valid:
            seen = "; ".join(f"{b.get('Subject', '?')} (EKU {', '.join(parse.as_list(b.get('EnhancedKeyUsageList'))) or 'none'}"
                             f", names {', '.join(parse.as_list(b.get('DnsNameList'))) or 'none'})" for b in blocks)
            self.add("certificate-server-missing", rid,
                     f"no valid certificate with Server Authentication{' for ' + dial if dial else ''} in "
                     f"LocalMachine\\My ({seen or 'the store is empty'})",
                     "one, valid, naming the host clients dial", fix, source=name)
            return
        if not any(any(IKE_INTERMEDIATE in e for e in c["_ekus"]) for c in valid):
            self.add("certificate-ike-intermediate-missing", rid, f"{valid[0].get('Subject')} without the IP security "
                     "IKE intermediate EKU", "EKU 1.3.6.1.5.5.8.2.2 (recommended)", fix, severity="warn", source=name)
        if dial is None:
            self.add("certificate-name-not-compared", rid, "no ikev2_gateway.identity in the inventory",
                     severity="info", source=name)

    @staticmethod
    def _not_after(cert: dict) -> dt.datetime | None:
        value = cert.get("NotAfter", "").rstrip("Z")
        try:
            return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return None

    def schannel(self) -> None:
        sc = self.cat.schannel
        rid, name = str(sc["requirement"]), "schannel"
        text = self.text(name, rid)
        if text is None:
            return
        try:
            keys = parse.registry_keys(text)
        except parse.ParseError as exc:
            return self.unreadable(name, rid, exc)
        server = {}
        for path, values in keys.items():
            m = re.search(r"\\Protocols\\([^\\]+)\\Server$", path, re.I)
            if m:
                server[m.group(1).upper()] = values
        base = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols"
        for proto in sc.get("disabled", ()):
            values = server.get(str(proto).upper())
            key = f"{base}\\{proto}\\Server"
            fix = (f"New-Item -Path '{key}' -Force; New-ItemProperty -Path '{key}' -Name Enabled -PropertyType DWord "
                   f"-Value 0 -Force; New-ItemProperty -Path '{key}' -Name DisabledByDefault -PropertyType DWord "
                   "-Value 1 -Force; Restart-Computer")
            slug = re.sub(r"[^a-z0-9.]+", "-", str(proto).lower())
            if values is None or values.get("Enabled", "") == "":
                note = " (TLS 1.0 and 1.1 are on by default up to Windows Server 2022)" if "TLS 1.0" in proto \
                    or "TLS 1.1" in proto else ""
                self.add(f"schannel-{slug}-enabled", rid, f"{proto} not disabled: no Enabled value under {proto}\\Server, "
                         f"so the build's default applies{note}", f"{proto} Server Enabled 0", fix, source=name)
            elif values.get("Enabled") != "0":
                self.add(f"schannel-{slug}-enabled", rid, f"{proto} Server Enabled {values.get('Enabled')}",
                         f"{proto} Server Enabled 0", fix, source=name)
        for proto in sc.get("enabled", ()):
            values = server.get(str(proto).upper()) or {}
            if values.get("Enabled") == "0":
                key = f"{base}\\{proto}\\Server"
                self.add(f"schannel-{str(proto).lower().replace(' ', '-')}-disabled", rid, f"{proto} Server Enabled 0",
                         f"{proto} enabled", f"Set-ItemProperty -Path '{key}' -Name Enabled -Value 1; "
                         f"Set-ItemProperty -Path '{key}' -Name DisabledByDefault -Value 0; Restart-Computer",
                         source=name)

    def protocols(self) -> None:
        pr = self.cat.protocols
        rid = str(pr["requirement"])
        text = self.text("vpn-server-configuration", rid)
        cfg = parse.one(text) if text is not None else {}
        disabled = [str(p) for p in pr.get("disabled", ())]
        enabled = [str(p) for p in pr.get("enabled", ())]
        if text is not None:
            for proto in disabled + enabled:
                field_ = f"{proto.capitalize() if proto != 'IKEv2' else 'Ikev2'}Ports"
                if proto == "PPTP" or field_ not in cfg:
                    continue   # PPTP has no port count in Get-VpnServerConfiguration: wan-miniports says
                ports = cfg[field_]
                if proto in disabled and ports not in ("0", ""):
                    self.add(f"protocol-{proto.lower()}-enabled", rid, f"{field_} {ports}", f"{field_} 0",
                             f"Set-VpnServerConfiguration -{field_} 0; Restart-Service RemoteAccess",
                             source="vpn-server-configuration")
                if proto in enabled and ports in ("0", ""):
                    self.add(f"protocol-{proto.lower()}-disabled", rid, f"{field_} {ports or 'absent'}",
                             f"{field_} > 0", f"Set-VpnServerConfiguration -{field_} 128; Restart-Service RemoteAccess",
                             source="vpn-server-configuration")
        if "PPTP" in disabled:
            mp = self.text("wan-miniports", rid)
            if mp is None:
                return
            try:
                keys = parse.registry_keys(mp)
            except parse.ParseError as exc:
                return self.unreadable("wan-miniports", rid, exc)
            for path, values in keys.items():
                if values.get("DriverDesc") == "WAN Miniport (PPTP)" and values.get("EnableForRas") not in ("0", None):
                    key = "HKLM:\\" + path.split("HKEY_LOCAL_MACHINE\\", 1)[-1]
                    self.add("protocol-pptp-enabled", rid,
                             f"WAN Miniport (PPTP) EnableForRas {values.get('EnableForRas')}, WanEndpoints "
                             f"{values.get('WanEndpoints', '?')}", "EnableForRas 0 (no inbound PPTP)",
                             f"Set-ItemProperty -Path '{key}' -Name EnableForRas -Value 0; Restart-Service RemoteAccess",
                             source="wan-miniports")

    def firewall(self) -> None:
        rid, name = self.cat.firewall_requirement, "firewall"
        text = self.text(name, rid)
        if text is None:
            return
        try:
            rules = parse.format_list(text)
        except parse.ParseError as exc:
            return self.unreadable(name, rid, exc)
        for want in self.cat.firewall:
            if not any(_rule_covers(r, want) for r in rules):
                port = f" {want.port}" if want.port is not None else ""
                fix = (f"New-NetFirewallRule -DisplayName '{want.name}' -Direction Inbound -Action Allow "
                       f"-Protocol {want.protocol}" + (f" -LocalPort {want.port}" if want.port is not None else ""))
                slug = re.sub(r"[^a-z0-9]+", "-", f"{want.protocol}{port}".lower()).strip("-")
                self.add(f"firewall-{slug}-closed", rid, f"no enabled inbound allow rule for {want.protocol}{port}",
                         f"'{want.name}'", fix, source=name)

    def authentication(self) -> None:
        auth = self.cat.authentication
        rid, name = str(auth["requirement"]), "vpn-auth-protocol"
        text = self.text(name, rid)
        if text is None:
            return
        have = parse.one(text)
        root = self.inventory_value("RootCertificateNameToAccept", "root_certificate")
        root_arg = (f"(Get-ChildItem Cert:\\LocalMachine\\Root | Where-Object Subject -eq '{root}')" if root
                    else "(Get-ChildItem Cert:\\LocalMachine\\Root\\<thumbprint of the root>)")
        fix = ("Set-VpnAuthProtocol " + " ".join(
            f"-{k} {','.join(v) if isinstance(v, list) else v}" for k, v in auth.items()
            if k not in ("requirement", "RootCertificateNameToAccept")) + f" -RootCertificateNameToAccept {root_arg}"
            + "; Restart-Service RemoteAccess")
        for key, want in auth.items():
            if key == "requirement":
                continue
            got = parse.as_list(have.get(key))
            if want == FROM_INVENTORY:
                want = root
                if not got:
                    self.add(f"auth-{key}", rid, f"{key} empty", "the root that issues the device certificates", fix,
                             source=name)
                elif want is None:
                    self.add(f"auth-{key}-not-compared", rid, f"{key} {have.get(key)}",
                             "(no rras.RootCertificateNameToAccept in the inventory to compare with)",
                             severity="info", source=name)
                elif str(want) not in have.get(key, ""):
                    self.add(f"auth-{key}", rid, f"{key} {have.get(key)}", str(want), fix, source=name)
                continue
            wanted = [str(w) for w in want] if isinstance(want, list) else [str(want)]
            if sorted(g.lower() for g in got) != sorted(w.lower() for w in wanted):
                self.add(f"auth-{key}", rid, f"{key} {have.get(key) or 'empty'}", ", ".join(wanted), fix, source=name)

    def nps(self) -> None:
        name = "nps-policies"
        if not self.cat.nps_policies:
            return
        rid = self.cat.nps_policies[0].requirement
        text = self.text(name, rid)
        if text is None:
            return
        try:
            policies = {p.name: p for p in parse.nps_policies(text)}
        except parse.ParseError as exc:
            return self.unreadable(name, rid, exc)
        for want in self.cat.nps_policies:
            p = policies.get(want.name)
            if p is None:
                self.add(f"nps-policy-missing-{_slug(want.name)}", want.requirement,
                         f"no network policy '{want.name}' (policies: {', '.join(policies) or 'none'})",
                         f"'{want.name}', enabled, granting access with {', '.join(want.auth)}",
                         f"netsh nps add np name=\"{want.name}\" ... (or the NPS console: Network Policies > New); "
                         "see docs/audit.md", source=name)
                continue
            if p.state.lower() != "enabled" or "GRANT" not in [v.upper() for v in p.profile_values("msNPAction")]:
                self.add(f"nps-policy-off-{_slug(want.name)}", want.requirement,
                         f"'{want.name}' {p.state or 'state unknown'}, msNPAction "
                         f"{', '.join(p.profile_values('msNPAction')) or 'absent'}", "Enabled, GRANT",
                         f"netsh nps set np name=\"{want.name}\" state=ENABLE", source=name)
            eap_wanted = {a for a in want.auth if a.startswith(("EAP-", "PEAP"))}
            if eap_wanted:
                got = {parse.eap_type(v) for v in p.profile_values("msNPAllowedEapType")}
                ok = {"EAP-TLS"} | ({"PEAP"} if any(a.startswith("PEAP") for a in eap_wanted) else set())
                if not got or not got <= ok:
                    self.add(f"nps-policy-eap-{_slug(want.name)}", want.requirement,
                             f"'{want.name}' allows {', '.join(sorted(g or '?' for g in got)) or 'no EAP method'}",
                             ", ".join(sorted(eap_wanted)),
                             "NPS console: the policy > Constraints > Authentication Methods: EAP Types "
                             "'Microsoft: Smart Card or other certificate' (and PEAP with it inside), nothing else",
                             source=name)


def _rule_covers(rule: Mapping[str, str], want: catalogue.Rule) -> bool:
    proto = rule.get("Protocol", "").upper()
    if proto not in (want.protocol.upper(), "ANY"):
        return False
    if want.port is None:
        return True
    ports = parse.as_list(rule.get("LocalPort"))
    return "Any" in ports or str(want.port) in ports or any(
        "-" in p and int(p.split("-")[0]) <= want.port <= int(p.split("-")[1]) for p in ports if p[0].isdigit())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def judge(readings: Mapping[str, Reading], *, host: str = "-", origin: str = "",
          host_vars: Mapping[str, Any] | None = None, cat: Catalogue | None = None,
          now: dt.datetime | None = None) -> AuditReport:
    """All findings for one server's readings (collect.recorded or collect.live)."""
    j = _Judge(readings, cat or catalogue.load(), dict(host_vars or {}), now or dt.datetime.now(dt.timezone.utc))
    for check in (j.remote_access, j.policy, j.registry, j.certificates, j.schannel, j.protocols, j.firewall,
                  j.authentication, j.nps):
        try:
            check()
        except parse.ParseError as exc:
            j.add(f"not-read-{check.__name__}", None, f"output not in its command's shape ({exc})", severity="info")
    return AuditReport(host=host, origin=origin, findings=j.findings, checked=j.checked)
