"""Safe artifact writing: atomic files, output-folder locks, staging that survives crashes, and run manifests.

Rules every writer follows (DESIGN: "check everything before writing anything"):
- a file is written to a temp path beside it and renamed into place, never half-written;
- an existing path that is not a regular file (a device, a FIFO, a directory) or is a symlink is never
  replaced: ``/dev/null`` stays a device and a symlink's target never goes stale;
- one process at a time writes into an output folder (``output_lock``); a second run is refused;
- temp files and staging folders carry the writer's PID, so a later run removes what a killed one left.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ArtifactError

LOCK_NAME = ".edgedeploy.lock"
STAGING_PREFIX = ".edgedeploy-staging-"
_held: dict[str, tuple[Any, int]] = {}          # folder -> (open lock file, re-entry count) in this process


def cache_root() -> Path:
    """Root of edgedeploy's cache (toolchains, trained zoo weights, calibrations): $EDGEDEPLOY_CACHE, else
    ~/.cache/edgedeploy."""
    env = os.environ.get("EDGEDEPLOY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgedeploy"


def check_output_file(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse ``path`` if something that is not a regular file (or a symlink) already sits there."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise ArtifactError(f"{what} path {p} cannot be checked ({exc.strerror}); choose another path") from exc
    if stat.S_ISLNK(st.st_mode):
        raise ArtifactError(f"{what} path {p} is a symlink; refusing to replace it (its target would go stale): "
                            "give the real file's path or a new one")
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise ArtifactError(f"{what} path {p} is {kind}; refusing to replace it: give a file path")
    return p


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that cannot be one, before any work (nothing created): empty, an existing non-folder,
    a dangling symlink, or under a file / an unwritable folder."""
    if not str(path).strip():
        raise ArtifactError("--out is empty; name an output folder, e.g. --out runs/out")
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise ArtifactError(f"output folder {p} is a dangling symlink; choose another --out")
    if p.exists() and not p.is_dir():
        raise ArtifactError(f"output folder {p} exists and is not a folder; choose another --out")
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ArtifactError(f"output folder {p} cannot be created: {parent} is a file; choose another --out")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError(f"output folder {p} cannot be created: {parent} is not writable; choose another --out")
    return p


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create an output folder (and parents) or raise ArtifactError saying why it cannot be."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ArtifactError(f"output folder {p} exists and is not a folder; choose another --out")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output folder {p}: {exc.strerror}; choose a writable --out") from exc
    if not os.access(p, os.W_OK):
        raise ArtifactError(f"output folder {p} is not writable; choose a writable --out")
    return p


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_LEFTOVER = re.compile(rf"^(?:{re.escape(STAGING_PREFIX)}|\..+\.)(\d+)\.[^.]*(?:\.tmp)?$")


def clean_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove staging folders and temp files in ``folder`` whose writer process no longer exists."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if not m or not (entry.name.startswith(STAGING_PREFIX) or entry.name.endswith(".tmp")):
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed.append(entry)
    return removed


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the folder's write lock for the block (re-entrant in one process); refuse if another process has it.

    A folder this run created is removed again if the run fails before writing anything into it.
    """
    existed = Path(folder).exists()
    path = ensure_dir(folder)
    key = str(path.resolve())
    if key in _held:
        fh, count = _held[key]
        _held[key] = (fh, count + 1)
        try:
            yield path
        finally:
            fh, count = _held[key]
            _held[key] = (fh, count - 1)
        return
    fh = _acquire(path)
    _held[key] = (fh, 1)
    ok = False
    try:
        clean_leftovers(path)
        yield path
        ok = True
    finally:
        import fcntl

        _held.pop(key, None)
        with contextlib.suppress(OSError):
            (path / LOCK_NAME).unlink()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
        if not ok and not existed:
            with contextlib.suppress(OSError):
                path.rmdir()            # only succeeds when the failed run left the new folder empty


def _acquire(path: Path) -> Any:
    """Open and lock ``path/.edgedeploy.lock`` (retrying if another run removed the file meanwhile)."""
    import fcntl

    lock_path = path / LOCK_NAME
    for _ in range(20):
        try:
            fh = open(lock_path, "a+")  # noqa: SIM115 - held until released
        except OSError as exc:
            raise ArtifactError(f"cannot create the lock file {lock_path}: {exc.strerror}; choose a writable --out") \
                from exc
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise ArtifactError(f"another edgedeploy run (pid {owner}) is writing into {path}; wait for it to finish "
                                "or choose another --out") from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            return fh
        fcntl.flock(fh, fcntl.LOCK_UN)       # the previous holder removed the file: lock the new one
        fh.close()
    raise ArtifactError(f"cannot lock {path} (its lock file keeps changing); retry")


@contextlib.contextmanager
def staging(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A hidden temp folder inside ``out`` (under the folder's lock), removed afterwards; see ``publish``."""
    with output_lock(out) as folder:
        tmp = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}.", dir=folder))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def publish(stage: Path, out: str | os.PathLike[str], names: list[str] | tuple[str, ...]) -> list[Path]:
    """Move finished files from the staging folder into ``out`` (each by an atomic rename, never over a non-file)."""
    dests = [check_output_file(Path(out) / n, "artifact") for n in names]
    for n, dest in zip(names, dests):
        os.replace(stage / n, dest)
    return dests


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; rename it onto ``dest`` only if the block succeeds."""
    dest = check_output_file(dest)
    ensure_dir(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    default_permissions(tmp_path)           # mkstemp makes 0600; artifacts get the usual permissions
    try:
        yield tmp_path
        check_output_file(dest)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def default_permissions(path: str | os.PathLike[str]) -> None:
    """Give a written file the permissions a plain ``open(..., "w")`` would (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_json_atomic(dest: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON (indented, numpy/Path aware; NaN/inf become null) to ``dest`` atomically."""
    return write_bytes_atomic(dest, json.dumps(json_safe(obj), indent=2, default=_json_default,
                                               allow_nan=False).encode())


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` where non-finite floats are None (strict JSON has no NaN or Infinity)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.tolist())
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return json_safe(asdict(obj))
    return obj


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
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


def update_manifest(folder: str | os.PathLike[str], stage: str, entry: dict[str, Any]) -> Path:
    """Record one artifact in ``folder/manifest.json`` (atomically): keyed by its main file, with hashes.

    Every artifact gets its own entry (``entry["files"][0]`` is the key), so a helper file of one stage
    never overwrites the record of another stage's artifact. An older entry that lists any file this one just
    rewrote with other content is dropped: its hashes and provenance no longer describe what is on disk.
    """
    folder = ensure_dir(folder)
    path = folder / "manifest.json"
    manifest: dict[str, Any] = {}
    if path.exists():
        try:
            manifest = json.loads(check_output_file(path, "manifest").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path} is corrupt ({exc}); delete it and rerun") from exc
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{path} is not an edgedeploy manifest; delete it and rerun")
    files = [str(f) for f in entry.get("files", [])]
    key = files[0] if files else stage
    hashes = {f: sha256_file(folder / f) for f in files if (folder / f).is_file()}
    manifest = {k: v for k, v in manifest.items() if k == key or not _stale(v, hashes)}
    manifest[key] = {"stage": stage, **entry, "sha256": hashes, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return write_json_atomic(path, manifest)


def _stale(entry: Any, hashes: dict[str, str]) -> bool:
    """True when a manifest entry recorded another hash for a file just rewritten."""
    recorded = entry.get("sha256") if isinstance(entry, dict) else None
    return isinstance(recorded, dict) and any(recorded.get(f, h) != h for f, h in hashes.items())


def manifest_entries(folder: str | os.PathLike[str], stage: str | None = None) -> dict[str, dict[str, Any]]:
    """The artifacts recorded in ``folder/manifest.json`` (optionally only one stage's), by main file name."""
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict):
        return {}
    return {k: v for k, v in manifest.items() if isinstance(v, dict) and (stage is None or v.get("stage") == stage)}
