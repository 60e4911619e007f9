"""Atomic artifact writing and run manifests (temp file + rename; never half-written files)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ArtifactError


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create an output folder (and parents) or raise ArtifactError saying why it cannot be."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output folder {p}: {exc.strerror}; choose a writable --out") from exc
    if not os.access(p, os.W_OK):
        raise ArtifactError(f"output folder {p} is not writable; choose a writable --out")
    return p


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; rename it onto ``dest`` only if the block succeeds."""
    dest = Path(dest)
    ensure_dir(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())    # mkstemp makes 0600; artifacts get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_json_atomic(dest: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON (indented, numpy/Path aware) to ``dest`` atomically."""
    return write_bytes_atomic(dest, json.dumps(obj, indent=2, default=_json_default).encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (missing ones are omitted)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for n in ("edgedeploy", "torch", *names):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[n] = metadata.version(n)
    return out


def update_manifest(folder: str | os.PathLike[str], key: str, entry: dict[str, Any]) -> Path:
    """Merge ``entry`` under ``key`` into ``folder/manifest.json`` (atomically), adding file hashes."""
    folder = ensure_dir(folder)
    path = folder / "manifest.json"
    manifest: dict[str, Any] = {}
    if path.exists():
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is corrupt ({exc}); delete it and rerun") from exc
    files = {str(f): sha256_file(folder / f) for f in entry.get("files", []) if (folder / f).exists()}
    manifest[key] = {**entry, "sha256": files, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return write_json_atomic(path, manifest)
