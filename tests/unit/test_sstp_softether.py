"""The lab SoftEther gateway without starting it: the binary patch, the config file,
the vpncmd batch and its output checks, settings, secrets and PID ownership."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aovpn_lab.sstp import softether as se

# -- the binary -------------------------------------------------------------------------

def test_the_installed_binary_is_the_one_the_patch_was_written_for():
    data = se.SYSTEM_BINARY.read_bytes()
    assert hashlib.sha256(data).hexdigest() == se.ORIGINAL_SHA256
    assert data[se.PATCH_OFFSET:se.PATCH_OFFSET + 65] == se.ORIGINAL_BYTES
    assert len(se.ORIGINAL_BYTES) == len(se.PATCH_BYTES) == 65


def test_patch_bytes_are_exactly_what_the_assembly_source_gives():
    assert se.assemble_patch() == se.PATCH_BYTES


def test_patch_disassembles_to_the_corrected_loop(tmp_path):
    (tmp_path / "patch.bin").write_bytes(se.PATCH_BYTES)
    res = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel",
         f"--adjust-vma=0x{se.PATCH_OFFSET:x}", str(tmp_path / "patch.bin")],
        capture_output=True, check=True, timeout=30)
    text = res.stdout.decode()
    assert "call   0x16bbd0" in text            # StrCmp(tmp->Name, protocol)
    assert "jmp    0x3a0a9" in text             # on a match: continue with container in rax
    assert text.count("0x3a050") == 2           # end of list / no list: return false
    assert "mov    rax,r12" in text and "rbx" not in text  # sock (rbx) is left alone


def test_patched_image_differs_only_in_the_window_and_has_the_recorded_hash():
    original = se.SYSTEM_BINARY.read_bytes()
    patched = se.patch_bytes(original)
    assert hashlib.sha256(patched).hexdigest() == se.PATCHED_SHA256
    diff = [i for i, (a, b) in enumerate(zip(original, patched)) if a != b]
    assert len(patched) == len(original)
    assert min(diff) >= se.PATCH_OFFSET and max(diff) < se.PATCH_OFFSET + 65


def test_another_build_is_refused_with_its_checksum():
    with pytest.raises(se.SoftEtherError) as err:
        se.patch_bytes(b"not the vpnserver you are looking for")
    text = str(err.value)
    assert hashlib.sha256(b"not the vpnserver you are looking for").hexdigest() in text
    assert "installed: softether-vpnserver" in text and "5.02.5180" in text


def test_prepare_binary_is_idempotent_and_never_touches_the_system(tmp_path):
    before = se._sha256(se.SYSTEM_BINARY)
    first = se.prepare_binary(tmp_path / "bin")
    second = se.prepare_binary(tmp_path / "bin")
    assert first.changed and not second.changed
    assert se._sha256(first.binary) == se.PATCHED_SHA256 == first.sha256
    assert os.access(first.binary, os.X_OK)
    assert (tmp_path / "bin" / "hamcore.se2").stat().st_size == se.SYSTEM_HAMCORE.resolve().stat().st_size
    assert se._sha256(se.SYSTEM_BINARY) == before == se.ORIGINAL_SHA256
    # Tampering with the copy is noticed and repaired.
    with open(first.binary, "r+b") as handle:
        handle.seek(se.PATCH_OFFSET)
        handle.write(b"\x90")
    assert se.prepare_binary(tmp_path / "bin").changed
    assert se._sha256(first.binary) == se.PATCHED_SHA256
    unpatched = se.prepare_binary(tmp_path / "orig", patch=False)
    assert se._sha256(unpatched.binary) == se.ORIGINAL_SHA256


# -- vpn_server.config ------------------------------------------------------------------

SAMPLE_CFG = """\ufeff# Software Configuration File
declare root
{
\tuint ConfigRevision 3
\tdeclare DDnsClient
\t{
\t\tbool Disabled false
\t\tbyte Key abc=
\t}
\tdeclare ListenerList
\t{
\t\tdeclare Listener0
\t\t{
\t\t\tuint Port 992
\t\t}
\t}
\tdeclare ServerConfiguration
\t{
\t\tbool UseKeepConnect true
\t\tstring UsernameHubSeparator #
\t\tbyte ServerCert OLD
\t}
\tdeclare VirtualHUB
\t{
\t\tdeclare LAB
\t\t{
\t\t\tbool Online true
\t\t}
\t}
}
"""


def test_config_round_trip_and_server_settings():
    text = se.apply_server_settings(SAMPLE_CFG, cert_der=b"\x01\x02", key_der=b"\x03",
                                    ports=[443, 5555, 443])
    top = se.parse_cfg(text).folder("root")
    assert top.folder("DDnsClient").get("Disabled") == "true"
    assert top.folder("DDnsClient").get("Key") == "abc="  # untouched
    server = top.folder("ServerConfiguration")
    assert server.get("UseKeepConnect") == "false" and server.get("DisableNatTraversal") == "true"
    assert server.get("ServerCert") == "AQI=" and server.get("ServerKey") == "Aw=="
    assert server.get("UsernameHubSeparator") == "#"  # an existing value wins over defaults
    assert server.get("MaxConnectionsPerIP") == "256"  # a missing one gets the build's default
    assert server.folder("GlobalParams").get("SELECT_TIME") == "256"
    ports = [f.get("Port") for f in top.folder("ListenerList").items]
    assert ports == ["443", "5555"]
    assert top.folder("VirtualHUB").folder("LAB").get("Online") == "true"
    assert se.parse_cfg(text).folder("root").folder("ServerConfiguration").get("ServerKey") == "Aw=="


def test_a_fresh_config_has_the_defaults_softether_needs():
    top = se.parse_cfg(se.apply_server_settings(None, cert_der=b"c", key_der=b"k", ports=[443])
                       ).folder("root")
    server = top.folder("ServerConfiguration")
    assert server.get("UsernameHubSeparator") == "@"  # without it user@HUB logins fail
    assert server.get("PortsUDP") == "$" and server.get("DisableJsonRpcWebApi") == "true"


@pytest.mark.parametrize("text", ["declare root\n{\n", "}\n", "declare a\n{\nbool\n}\n"])
def test_broken_config_is_reported(text):
    with pytest.raises(se.SoftEtherError):
        se.parse_cfg(text)


# -- settings, batch, output ------------------------------------------------------------

def settings(**kwargs):
    values = {"users": {"alice": "Wonder-1and", "bob": "Bu1lder!"}}
    values.update(kwargs)
    return se.SoftEtherSettings(**values)


def test_batch_configures_sstp_securenat_and_users():
    lines = [c.line for c in se.vpncmd_batch(settings(), "ADMINSECRET")]
    assert "ProtoOptionsSet SSTP /NAME:Enabled /VALUE:true" in lines
    assert "SecureNatHostSet /MAC:none /IP:198.19.2.1 /MASK:255.255.255.0" in lines
    assert any(l.startswith("DhcpSet /START:198.19.2.10 /END:198.19.2.200") for l in lines)
    assert "UserPasswordSet alice /PASSWORD:Wonder-1and" in lines
    assert lines.index("Hub LAB") < lines.index("SecureNatEnable") < lines.index("Hub")
    assert "KeepDisable" in lines and lines[-1] == "Flush"
    assert not any("192.168" in l for l in lines)


def _transcript(commands, errors=None):
    errors = errors or {}
    out = ["vpncmd banner", "Password: ****", ""]
    hub = ""
    for command in commands:
        out.append(f"VPN Server{hub}>{command.line}")
        if command.line.startswith("Hub "):
            hub = "/" + command.line.split()[1]
        elif command.line == "Hub":
            hub = ""
        if command.line in errors:
            out += [f"Error occurred. (Error code: {errors[command.line]})", "Some explanation."]
        else:
            out.append("The command completed successfully.")
    return "\n".join(out)


def test_vpncmd_output_checks():
    commands = se.vpncmd_batch(settings(), "ADMINSECRET")
    assert se.check_vpncmd_output(_transcript(commands), commands, []) == []
    create = next(c.line for c in commands if c.line.startswith("HubCreate"))
    assert se.check_vpncmd_output(_transcript(commands, {create: 57}), commands, []) == []
    problems = se.check_vpncmd_output(
        _transcript(commands, {"SecureNatEnable": 80}), commands, [])
    assert len(problems) == 1 and "SecureNatEnable" in problems[0] and "80" in problems[0]
    cut = _transcript(commands).split("VPN Server/LAB>SecureNatHostSet")[0]
    assert "ran" in se.check_vpncmd_output(cut, commands, [])[0]
    failure = "Error occurred. (Error code: 1)\nConnection to the server failed."
    assert se.check_vpncmd_output(failure, commands, ["x"])


def test_secrets_are_redacted():
    text = ("VPN Server>ServerPasswordSet ADMINSECRET\nVPN Server/LAB>UserPasswordSet alice "
            "/PASSWORD:Wonder-1and\nPassword: Wonder-1and")
    clean = se.redact(text, ["ADMINSECRET", "Wonder-1and"])
    assert "ADMINSECRET" not in clean and "Wonder-1and" not in clean and "alice" in clean
    assert "Wonder-1and" not in repr(settings()) and "alice" in repr(settings())


@pytest.mark.parametrize("kwargs, message", [
    ({"nat_host": "192.168.30.1", "dhcp_start": "192.168.30.10", "dhcp_end": "192.168.30.20"}, "192.168"),
    ({"dhcp_start": "198.19.3.10"}, "not inside"),
    ({"nat_host": "198.19.2.50"}, "inside the DHCP pool"),
    ({"users": {"al ice": "x1"}}, "not usable"),
    ({"users": {"alice": "has space"}}, "spaces"),
    ({"users": {"alice": 'quo"te'}}, "quotes"),
    ({"hub": "LAB@X"}, "not usable"),
    ({"port": 0}, "out of range"),
])
def test_settings_validation(kwargs, message):
    with pytest.raises(se.SoftEtherError, match=message):
        settings(**kwargs).validate()


def test_settings_digest_tracks_passwords_without_containing_them():
    a, b = settings().digest(), settings(users={"alice": "Other-pw1", "bob": "Bu1lder!"}).digest()
    assert a != b and "Wonder-1and" not in a
    assert settings().login("alice") == "alice@LAB"


def test_users_from_env():
    env = {"AOVPN_SSTP_PASSWORD_ALICE": "a1", "AOVPN_SSTP_PASSWORD_BOB_SMITH": "b2",
           "AOVPN_SSTP_PASSWORD": "single"}
    assert se.users_from_env(["alice", "bob.smith"], env) == {"alice": "a1", "bob.smith": "b2"}
    assert se.users_from_env(["carol"], env) == {"carol": "single"}
    with pytest.raises(se.SoftEtherError, match="AOVPN_SSTP_PASSWORD_CAROL"):
        se.users_from_env(["carol", "dave"], env)


# -- certificates -----------------------------------------------------------------------

def _cert(name, issuer=None, issuer_key=None, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
            .sign(issuer_key or key, hashes.SHA256()))
    return cert, key


def test_pem_pair_chain_and_mismatch(tmp_path):
    root, root_key = _cert("root", ca=True)
    inter, inter_key = _cert("inter", root.subject, root_key, ca=True)
    leaf, leaf_key = _cert("sstp.example.net", inter.subject, inter_key)
    pem = serialization.Encoding.PEM
    (tmp_path / "full.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem)
                                        + root.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_der, key_der, chain = se.load_pem_pair(tmp_path / "full.pem", tmp_path / "key.pem")
    assert cert_der == leaf.public_bytes(serialization.Encoding.DER)
    assert chain == [inter.public_bytes(serialization.Encoding.DER)]  # the root is not sent
    assert serialization.load_der_private_key(key_der, None).public_key().public_numbers() == \
        leaf_key.public_key().public_numbers()
    se.write_chain(tmp_path, chain)
    written = sorted((tmp_path / "chain_certs").iterdir())
    assert [p.name for p in written] == ["aovpn-01.cer"]
    assert x509.load_pem_x509_certificate(written[0].read_bytes()) == inter
    (tmp_path / "other.pem").write_bytes(root_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(se.SoftEtherError, match="is not the key of"):
        se.load_pem_pair(tmp_path / "full.pem", tmp_path / "other.pem")


# -- processes --------------------------------------------------------------------------

def test_process_identity_includes_start_time_and_executable():
    me = se.ProcessId.of(os.getpid())
    assert me.alive()
    assert not se.ProcessId(me.pid, me.start_ticks + 1, me.exe_dev, me.exe_ino).alive()
    assert not se.ProcessId(me.pid, me.start_ticks, me.exe_dev, me.exe_ino + 1).alive()


def test_down_never_signals_a_process_that_is_not_its_own(tmp_path):
    me = se.ProcessId.of(os.getpid())
    foreign = vars(me) | {"exe_ino": me.exe_ino + 1}  # our PID, but not the recorded binary
    (tmp_path / se.STATE_FILE).write_text(json.dumps({"netns": "x", "processes": [foreign]}))
    instance = se.SoftEtherInstance(tmp_path)
    assert not instance.is_running() and instance.pids() == []
    assert instance.down()["stopped"] == []  # and we are still alive to check it
    assert se.SoftEtherInstance(tmp_path / "nothing").down() == {
        "changed": False, "stopped": [], "state_dir": str((tmp_path / "nothing").resolve())}


def test_up_refuses_a_missing_namespace(tmp_path):
    instance = se.SoftEtherInstance(tmp_path, "hxs-no-such-namespace")
    with pytest.raises(se.SoftEtherError, match="does not exist"):
        instance.up(settings(), tmp_path / "c.pem", tmp_path / "k.pem")


def test_mount_script_binds_tmp_last_and_execs_from_the_private_run(tmp_path):
    script = se.SoftEtherInstance(tmp_path / "state").__class__(tmp_path / "state")._mount_script()
    steps = script.split("; ")
    assert steps[1].startswith("mount -t tmpfs")
    assert steps[-2].endswith(" /tmp") and steps[-1] == "exec /run/aovpn-softether/vpnserver execsvc"
    for path in ("/var/lib/softether", "/var/log/softether", "/run/softether"):
        assert any(s.endswith(" " + path) for s in steps)


def test_command_line_reports_errors_as_json(tmp_path, capsys):
    code = se.main(["up", "--netns", "hxs-no-such-namespace", "--state", str(tmp_path),
                    "--cert", "c", "--key", "k", "--user", "alice"])
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert code != 0 and out["failed"] and "AOVPN_SSTP_PASSWORD" in out["msg"]


def test_sha0_matches_the_published_vector_and_this_build():
    assert se.sha0(b"abc").hex() == "0164b8a914cd2a5e74c4f7ff082c4d97f1edf880"  # FIPS 180
    import base64
    # What this vpnserver wrote for an empty and for a set admin password.
    assert base64.b64encode(se.sha0(b"")).decode() == "+WzqGYrR3VYXrAhKPZLGEHcIwO8="
    assert base64.b64encode(se.sha0(b"s3cr3t-admin")).decode() == "gLnl6DtUGbwXiGQv4tv1o9SAq8w="
    assert se.sha0(b"x" * 200) != hashlib.sha1(b"x" * 200).digest()


def test_admin_password_is_in_the_config_before_start_not_in_the_batch():
    text = se.apply_server_settings(None, cert_der=b"c", key_der=b"k", ports=[443],
                                    admin_password="s3cr3t-admin")
    server = se.parse_cfg(text).folder("root").folder("ServerConfiguration")
    assert server.get("HashedPassword") == "gLnl6DtUGbwXiGQv4tv1o9SAq8w="
    assert not any("s3cr3t-admin" in c.line for c in se.vpncmd_batch(settings(), "s3cr3t-admin"))
