"""Files a lab module writes on its host: replaced atomically, and only when their content
or mode differs, so a module reports `changed` exactly when something changed."""
from __future__ import annotations

import os
import tempfile


def put(module, path: str, content: str | bytes, mode: str | int = "0600") -> bool:
    """Write `content` to `path` (its folder must exist) unless it is already there."""
    data = content.encode() if isinstance(content, str) else content
    want = int(mode, 8) if isinstance(mode, str) else mode
    try:
        with open(path, "rb") as f:
            same = f.read() == data
    except OSError:
        same = False
    if same:
        if os.stat(path).st_mode & 0o7777 == want:
            return False
        os.chmod(path, want)
        return True
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".lab-")
    try:
        os.fchmod(fd, want)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    module.atomic_move(tmp, path)  # Ansible's own rename (keeps SELinux contexts right)
    os.chmod(path, want)
    return True


def folder(path: str, mode: int = 0o700) -> bool:
    """Create a folder (and its parents) unless it exists."""
    if os.path.isdir(path):
        return False
    os.makedirs(path, mode=mode)
    return True


def link(path: str, target: str) -> bool:
    """Point the symbolic link `path` at `target` unless it already does."""
    if os.path.islink(path) and os.readlink(path) == target:
        return False
    tmp = f"{path}.lab-link"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)
    return True
