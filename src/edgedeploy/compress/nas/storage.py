"""Where a study lives: an SQLite file in the output folder (one process), or a PostgreSQL server shared by many
workers on many machines (SQLite locks under parallel writers; Optuna's docs advise an RDB server for them).

Both are Optuna RDB storages with heartbeats: a running trial records a heartbeat every ``heartbeat_s``; a
trial silent for ``grace_period`` seconds (its worker was killed, its machine lost) is marked FAIL by the next
worker that starts a trial, and ``RetryHeartbeatStaleTrialCallback`` queues a copy of it (same parameters) that
the next free worker runs. The URL is checked with a real connection before any training.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import ConfigError

DB_NAME = "study.db"
SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "mysql+pymysql")


def embedded_url(folder: str | Path) -> str:
    """The SQLite URL of the study file in ``folder``."""
    return f"sqlite:///{Path(folder).resolve() / DB_NAME}"


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs, results and error messages)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: a plain ``postgresql://`` (or ``postgres://``) is driven by psycopg 3
    (``postgresql+psycopg://``; SQLAlchemy's default driver for the bare scheme is psycopg2); others unchanged."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def check_url(url: str, timeout_s: int = 5) -> None:
    """Connect once to ``url``; raise ConfigError in one line (scheme, driver, server, database) if it fails."""
    import sqlalchemy

    scheme = url.split("://", 1)[0] if isinstance(url, str) and "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"storage URL {redact(str(url))!r} is not a database URL; use "
                          "postgresql://user:password@host/db (or omit --storage for the SQLite file in the output "
                          "folder)")
    args: dict[str, Any] = {"connect_timeout": timeout_s} if scheme.startswith(("postgres", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(engine_url(url), connect_args=args)
    except ImportError as exc:
        raise ConfigError(f"no database driver for {scheme}:// ({exc.name or exc}); install psycopg[binary] for "
                          "PostgreSQL") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise ConfigError(f"storage URL {redact(url)!r} is malformed ({exc}); use postgresql://user:password@host/db") \
            from None
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(f"cannot reach the study storage {redact(url)}: {reason[0] if reason else type(exc).__name__}"
                          "; start the database server or fix the URL (host, port, user, password, database)") \
            from None
    finally:
        engine.dispose()


def open_storage(url: str, heartbeat_s: int, grace_s: int, max_retry: int) -> Any:
    """An Optuna RDBStorage on ``url`` with heartbeats and retries of trials whose worker died."""
    import warnings

    import optuna

    check_url(url)
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if retry_cls is not None:                   # Optuna >= 4.9
            kwargs: dict[str, Any] = {"heartbeat_stale_trial_callback": retry_cls(max_retry=max_retry)}
        else:
            kwargs = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=max_retry)}
        engine = {"pool_pre_ping": True} if not url.startswith("sqlite") else {"connect_args": {"timeout": 60}}
        return optuna.storages.RDBStorage(engine_url(url), engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                          grace_period=grace_s, **kwargs)


def study_trials(study: str, url: str) -> list[Any]:
    """The trials of ``study`` in the storage at ``url`` as they stand (empty while the study does not exist)."""
    import optuna

    storage = optuna.storages.RDBStorage(engine_url(url))
    try:
        if study not in optuna.get_all_study_names(storage):
            return []
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries of this machine (Debian's ``/usr/lib/postgresql/*/bin``), or None."""
    import glob

    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").is_file()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


@contextlib.contextmanager
def temporary_postgres(database: str = "nas") -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 (a temp data folder, a free port, ``fsync`` off), yielding its
    URL; stopped and deleted afterwards. For tests, benchmarks and trying many workers on one machine. As root
    the server runs as the ``postgres`` user (it refuses root)."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    from ...errors import ToolchainError

    bindir = postgres_bindir()
    if bindir is None:
        raise ToolchainError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; install "
                             "Debian's postgresql package (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="edgedeploy-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise ToolchainError(f"{Path(args[0]).name} failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100", "-l", str(root / "server.log"), "-w", "start")
        try:
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
            yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
