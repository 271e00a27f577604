"""One vpnserver in one network namespace, all state under ``state_dir``.

The paths are compiled in, so ``vpnserver execsvc`` runs in a private mount namespace
with /var/lib/softether, /var/log/softether, /run/softether and /tmp bound to the
instance's own folders: entry ``softether`` of profiles/daemons.yml, supervised by
:mod:`aovpn_lab.service` (watchdog and worker recorded by PID, start time and executable
inode; only those are ever signalled). Server-level settings vpncmd cannot make are
written into ``vpn_server.config`` before start (:mod:`.server_config`); the rest goes
through ``vpncmd localhost:5555 /SERVER /IN:<batch>`` inside the instance's namespaces.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path

from ... import tool
from ...service import Daemon, spec, tcp_open
from .binary import prepare_binary
from .errors import SoftEtherError
from .server_config import apply_server_settings, load_pem_pair, write_chain
from .settings import Command, SoftEtherSettings, check_vpncmd_output, redact, vpncmd_batch

SYSTEM_VPNCMD = Path("/usr/libexec/softether/vpncmd/vpncmd")
STATE_FILE = spec("softether").record
ADMIN_SECRET = "admin.secret"
BIN_DIR = "bin"
FOLDERS = ("lib", "log", "run", "tmp")  # bound over the paths compiled into vpnserver


class SoftEtherInstance:
    """One vpnserver in one network namespace, all state under ``state_dir``."""

    def __init__(self, state_dir: Path | str, netns: str | None = None, *,
                 patched: bool = True) -> None:
        self.state_dir = Path(state_dir).resolve()
        self._netns = netns
        self.patched = patched  # False only to demonstrate the unpatched build's silence
        self.daemon = Daemon("softether", self.state_dir, netns, error=SoftEtherError)

    # -- paths and recorded state ----------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        return self.state_dir / BIN_DIR

    @property
    def binary(self) -> Path:
        return self.bin_dir / "vpnserver"

    def folder(self, key: str) -> Path:
        return self.state_dir / key

    @property
    def config_path(self) -> Path:
        return self.folder("lib") / "vpn_server.config"

    def recorded(self) -> dict | None:
        return self.daemon.recorded() or None

    @property
    def netns(self) -> str | None:
        return self.daemon.netns

    def pids(self) -> list[int]:
        return self.daemon.pids()

    def is_running(self) -> bool:
        return self.daemon.running

    def _mount_script(self) -> str:
        entry = self.daemon.spec
        values = self.daemon.values
        return entry.mount_script(values, entry.argv_for(values))

    # -- admin secret ----------------------------------------------------------------

    def admin_password(self) -> str:
        path = self.state_dir / ADMIN_SECRET
        if path.exists():
            return path.read_text().strip()
        secret = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return secret

    # -- lifecycle -------------------------------------------------------------------

    def up(self, settings: SoftEtherSettings, cert_pem: Path, key_pem: Path,
           *, chain_pem: Path | None = None, start_timeout: float = 20.0) -> dict:
        """Start (or keep) the instance and apply ``settings``; returns a report dict."""
        began = time.monotonic()
        settings.validate()
        netns = self._require_netns()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        for key in FOLDERS:
            self.folder(key).mkdir(exist_ok=True)
        prepared = prepare_binary(self.bin_dir, patch=self.patched)
        cert_der, key_der, chain_der = load_pem_pair(cert_pem, key_pem, chain_pem)
        server_digest = hashlib.sha256(
            cert_der + key_der + b"".join(chain_der)
            + json.dumps([netns, settings.port, settings.admin_port]).encode()
        ).hexdigest()
        admin = self.admin_password()

        def write_config() -> None:
            text = self.config_path.read_text(encoding="utf-8-sig") if self.config_path.exists() else None
            self.config_path.write_text(apply_server_settings(
                text, cert_der=cert_der, key_der=key_der,
                ports=[settings.port, settings.admin_port], admin_password=admin), encoding="utf-8")
            os.chmod(self.config_path, 0o600)
            write_chain(self.folder("lib"), chain_der)

        self.daemon = Daemon("softether", self.state_dir, netns, error=SoftEtherError,
                             values={"port": settings.port, "admin_port": settings.admin_port})
        # A rewritten binary needs a fresh process even when nothing else changed.
        started = self.daemon.ensure(server_digest, write_config, timeout=start_timeout, force=prepared.changed)
        changed = prepared.changed or started["changed"]
        state = self.daemon.recorded()
        configure_began = time.monotonic()
        self._vpncmd(vpncmd_batch(settings, admin), admin, list(settings.users.values()),
                     port=settings.admin_port)
        configure_ms = int((time.monotonic() - configure_began) * 1000)
        if state.get("settings_digest") != settings.digest():
            changed = True
        self.daemon.note(server_digest=server_digest, settings_digest=settings.digest(),
                         hub=settings.hub, users=sorted(settings.users), port=settings.port,
                         admin_port=settings.admin_port, nat_host=settings.nat_host,
                         dhcp=[settings.dhcp_start, settings.dhcp_end])
        return {
            "changed": changed, "restarted": started["restarted"], "netns": netns,
            "state_dir": str(self.state_dir), "pids": self.pids(),
            "binary": str(self.binary), "binary_sha256": prepared.sha256,
            "original_sha256": prepared.original_sha256, "hub": settings.hub,
            "logins": [settings.login(u) for u in sorted(settings.users)],
            "port": settings.port, "nat_host": settings.nat_host,
            "certificate_sha256": hashlib.sha256(cert_der).hexdigest(), "chain": len(chain_der),
            "start_ms": started["start_ms"], "configure_ms": configure_ms,
            "seconds": round(time.monotonic() - began, 3),
        }

    def _require_netns(self) -> str:
        from ...ike.craft_netns import require_netns
        return require_netns(self._netns, SoftEtherError)

    def _vpncmd(self, commands: list[Command], admin: str, user_secrets: list[str], *,
                port: int, timeout: float = 30.0) -> str:
        pids = self.pids()
        if not pids:
            raise SoftEtherError("vpnserver is not running; cannot configure it")
        batch_name = f"aovpn-batch-{secrets.token_hex(4)}.txt"
        batch = self.folder("tmp") / batch_name  # /tmp inside the instance's mount namespace
        fd = os.open(batch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(c.line for c in commands) + "\n")
        # --root/--wd: the target's own root, also when this machine is itself a container
        # (plain --mount would put vpncmd at the root of the outermost mount namespace).
        argv = ["nsenter", "--target", str(pids[-1]), "--net", "--mount", "--root", "--wd",
                str(SYSTEM_VPNCMD), f"localhost:{port}", "/SERVER",
                f"/IN:/tmp/{batch_name}"]
        try:
            # The admin password goes to the prompt on stdin, never on a command line.
            res = tool.run(argv, step="configure SoftEther with vpncmd", input=admin + "\n", timeout=timeout)
        except tool.ToolError as exc:
            raise SoftEtherError(exc.message, hint="is the admin password in admin.secret still the server's?") from None
        finally:
            batch.unlink(missing_ok=True)
        secrets_ = [admin, *user_secrets]
        problems = check_vpncmd_output(res.stdout + res.stderr, commands, secrets_)
        (self.state_dir / "vpncmd.log").write_text(redact(res.stdout + res.stderr, secrets_))
        if problems:
            raise SoftEtherError("configuring SoftEther failed: " + "; ".join(problems),
                                 hint=f"see {self.state_dir}/vpncmd.log")
        return redact(res.stdout, secrets_)

    def down(self, *, grace: float = 4.0) -> dict:
        """Stop the processes this instance started, by PID; leave everything else."""
        if not self.daemon.recorded():
            return {"changed": False, "stopped": [], "state_dir": str(self.state_dir)}
        result = self.daemon.stop(grace)
        return {"changed": bool(result["stopped"]), **result, "state_dir": str(self.state_dir)}

    def status(self) -> dict:
        state = self.daemon.recorded()
        running = self.is_running()
        netns = state.get("netns")
        listening = {}
        if running and netns:
            for port in (state.get("port"), state.get("admin_port")):
                if port:
                    listening[str(port)] = tcp_open(netns, "127.0.0.1", port, 0.3)
        return {"running": running, "netns": netns, "pids": self.pids(), "hub": state.get("hub"),
                "users": state.get("users", []), "port": state.get("port"),
                "listening": listening, "state_dir": str(self.state_dir)}
