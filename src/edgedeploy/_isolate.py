"""Native code in a child process: a compiler's or emulator's crash becomes an error, never a dead caller.

``run_isolated(fn, ...)`` runs ``fn`` (a module-level function) in a fresh spawned Python process and
returns its result; ``Worker`` keeps such a process alive for repeated calls (a session on an emulator).
A child killed by a signal, or one that overruns its time limit, raises ``ToolchainError`` naming the tool
and the signal. Children die with their parent (``PR_SET_PDEATHSIG``), and Ctrl-C in the parent kills them.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .errors import EdgeDeployError, ToolchainError

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere); use as a child's first call."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def crash_error(what: str, exitcode: int | None, detail: str = "") -> ToolchainError:
    """The error for a child that died: '<what> crashed (signal 6, SIGABRT)'."""
    if exitcode is not None and exitcode < 0:
        how = f"crashed (signal {-exitcode}, {_signal_name(-exitcode)})"
    else:
        how = f"exited unexpectedly (exit code {exitcode})"
    return ToolchainError(f"{what} {how}{': ' + detail if detail else ''}; the calling process is unaffected")


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    die_with_parent()
    try:
        result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except EdgeDeployError as exc:
        conn.send(("err", exc))
    except BaseException as exc:  # noqa: BLE001 - any failure in the child is reported to the parent
        conn.send(("raw", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., Any], *args: Any, what: str, timeout: float = 600.0, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a spawned child and return its result; crashes and timeouts raise."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, kwargs), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise ToolchainError(f"{what} did not finish within {timeout:.0f} s and was stopped; simplify the model "
                                 "or raise the time limit")
        try:
            status, payload = parent.recv()
        except EOFError:
            proc.join(10)
            raise crash_error(what, proc.exitcode) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        parent.close()
    if status == "ok":
        return payload
    if status == "err":
        raise payload
    raise ToolchainError(f"{what} failed in its child process: {payload.splitlines()[0]}")


def _serve(conn: Any, factory: Callable[..., Any], args: tuple[Any, ...]) -> None:
    die_with_parent()
    try:
        obj = factory(*args)
        conn.send(("ok", None))
    except BaseException as exc:  # noqa: BLE001
        conn.send(("err", exc if isinstance(exc, EdgeDeployError) else f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            method, margs = conn.recv()
        except EOFError:
            return
        if method is None:
            return
        try:
            conn.send(("ok", getattr(obj, method)(*margs)))
        except BaseException as exc:  # noqa: BLE001
            conn.send(("err", exc if isinstance(exc, EdgeDeployError) else f"{type(exc).__name__}: {exc}"))


class Worker:
    """A long-lived child process holding one object built by ``factory(*args)``; ``call`` runs its methods."""

    def __init__(self, factory: Callable[..., Any], *args: Any, what: str, timeout: float = 600.0) -> None:
        ctx = mp.get_context("spawn")
        self.what, self.timeout = what, timeout
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, factory, args), daemon=True)
        self._proc.start()
        child.close()
        self._receive()

    def _receive(self) -> Any:
        try:
            if not self._conn.poll(self.timeout):
                self.close()
                raise ToolchainError(f"{self.what} did not answer within {self.timeout:.0f} s and was stopped")
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(10)
            raise crash_error(self.what, self._proc.exitcode) from None
        if status == "err":
            self.close()
            if isinstance(payload, EdgeDeployError):
                raise payload
            raise ToolchainError(f"{self.what} failed: {payload}")
        return payload

    def call(self, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` on the child's object and return the result."""
        if not self._proc.is_alive():
            raise crash_error(self.what, self._proc.exitcode)
        self._conn.send((method, args))
        return self._receive()

    def close(self) -> None:
        """Stop the child process."""
        if self._proc.is_alive():
            try:
                self._conn.send((None, ()))
            except (OSError, BrokenPipeError):
                pass
            self._proc.join(2)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def child_preexec() -> None:
    """``preexec_fn`` for subprocess: the compiler dies when the caller dies (no orphans)."""
    die_with_parent()
    os.setpgrp()
