"""Native code in a child process: a compiler's or emulator's crash becomes an error, never a dead caller.

``run_isolated(fn, ...)`` runs ``fn`` (a module-level function) in a fresh Python process and returns its
result; ``Worker`` keeps such a process alive for repeated calls (a session on an emulator). The child is
``python -m edgedeploy._isolate`` fed by pickles over its stdin/stdout: unlike multiprocessing's spawn, it
never re-imports the caller's ``__main__`` (a user's script without a main guard would run again).
A child killed by a signal, or one that overruns its time limit, raises ``ToolchainError`` naming the tool
and the signal; the child's own console output is kept and its tail quoted. Children die with their parent
(``PR_SET_PDEATHSIG``), and Ctrl-C in the parent kills them.
"""
from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from .errors import EdgeDeployError, ToolchainError

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere); use as a child's first call."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass


def child_preexec() -> None:
    """``preexec_fn`` for subprocess: the child dies when the caller dies (no orphans)."""
    die_with_parent()
    os.setpgrp()


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
    err = ToolchainError(f"{what} {how}{': ' + detail if detail else ''}; the calling process is unaffected")
    err.exitcode = exitcode  # type: ignore[attr-defined]
    return err


# ---------------------------------------------------------------- framing: length-prefixed pickles

def _send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _recv(stream: BinaryIO) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    size = struct.unpack("<Q", head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own child's replies, never user files


def _ref(fn: Callable[..., Any]) -> tuple[str, str]:
    return fn.__module__, fn.__qualname__


def _resolve(ref: tuple[str, str]) -> Any:
    obj: Any = importlib.import_module(ref[0])
    for part in ref[1].split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------- parent side

class Worker:
    """A child process holding one object built by ``factory(*args)``; ``call`` runs its methods there."""

    def __init__(self, factory: Callable[..., Any], *args: Any, what: str, timeout: float = 600.0) -> None:
        self.what, self.timeout = what, timeout
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([sys.executable, "-m", "edgedeploy._isolate"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, preexec_fn=die_with_parent)
        self._request(("init", _ref(factory), args, {}))

    def _request(self, message: Any) -> Any:
        try:
            _send(self._proc.stdin, message)
            status, payload = _recv_with_timeout(self._proc, self.timeout, self.what)
        except (EOFError, BrokenPipeError, OSError):
            self._proc.wait(10)
            raise crash_error(self.what, self._proc.returncode, self._tail()) from None
        if status == "err":
            if isinstance(payload, EdgeDeployError):
                raise payload
            raise ToolchainError(f"{self.what} failed: {payload}")
        return payload

    def _tail(self) -> str:
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return " | ".join(lines[-3:])[-400:]

    def call(self, method: str, *args: Any) -> Any:
        """Run ``method(*args)`` on the child's object and return the result."""
        if self._proc.poll() is not None:
            raise crash_error(self.what, self._proc.returncode, self._tail())
        return self._request(("call", method, args, {}))

    def close(self) -> None:
        """Stop the child process."""
        if self._proc.poll() is None:
            try:
                _send(self._proc.stdin, ("stop", None, (), {}))
                self._proc.wait(5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self._proc.kill()
                self._proc.wait(5)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream:
                stream.close()
        self._log.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _recv_with_timeout(proc: subprocess.Popen, timeout: float, what: str) -> Any:
    import select

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        proc.wait(10)
        raise ToolchainError(f"{what} did not finish within {timeout:.0f} s and was stopped; simplify the model or "
                             "raise the time limit")
    return _recv(proc.stdout)


def run_isolated(fn: Callable[..., Any], *args: Any, what: str, timeout: float = 600.0, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a child process and return its result; crashes and timeouts raise."""
    worker = Worker(_Call, what=what, timeout=timeout)
    try:
        return worker.call("run", _ref(fn), args, kwargs)
    finally:
        worker.close()


class _Call:
    """The child-side object of ``run_isolated``: runs one function by reference."""

    def run(self, ref: tuple[str, str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _resolve(ref)(*args, **kwargs)


# ---------------------------------------------------------------- child side

def _serve() -> None:
    """Child main loop: build the object, then answer calls, over length-prefixed pickles on stdin/stdout."""
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")      # replies go to the original stdout ...
    os.dup2(2, 1)                            # ... and anything else written to fd 1 (native libraries) to stderr
    sys.stdout = sys.stderr
    obj = None
    while True:
        try:
            kind, target, args, kwargs = _recv(stdin)
        except EOFError:
            return
        if kind == "stop":
            return
        try:
            if kind == "init":
                obj = _resolve(target)(*args, **kwargs)
                reply: Any = None
            else:
                reply = getattr(obj, target)(*args, **kwargs)
            _send(stdout, ("ok", reply))
        except EdgeDeployError as exc:
            _send(stdout, ("err", exc))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent as a message
            _send(stdout, ("err", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"))


if __name__ == "__main__":
    _serve()
