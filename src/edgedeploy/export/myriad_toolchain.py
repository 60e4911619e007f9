"""The offline MyriadX (RVC2) compiler: OpenVINO 2021.4.2's MYRIAD plugin plus a tiny C++ driver.

No OpenVINO release for Python >= 3.10 ships the MYRIAD plugin, but the ``openvino==2021.4.2``
wheel's shared libraries run from any Python. On first use we download that wheel (pip, no
install) into a cache folder outside the main environment, unpack its libraries, and build
``myriad_compile.cpp`` against them with g++. The plugin needs Debian's ``libusb-1.0-0`` even
to compile offline. Everything is built in a temp folder and renamed into place, so an
interrupted install never leaves a half toolchain behind.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import cache_root
from .._isolate import child_preexec, crash_error
from ..errors import ExportError, ToolchainError

OPENVINO_VERSION = "2021.4.2"
TOOLCHAIN_NAME = f"myriad-{OPENVINO_VERSION}"
# The C++ tool relies on this exact build's ABI (see myriad_compile.cpp): pin the wheel.
WHEEL_SHA256 = "2260ac472b2834d520789dd29e15eaeeae62eba8c1867159efbda82940d2012f"
LIBUSB_PACKAGE = "libusb-1.0-0"
_SOURCE = Path(__file__).with_name("myriad_compile.cpp")
# The CPU and GPU plugins and the GPU kernel cache are ~55 MB we never load.
_SKIP_LIBS = {"libMKLDNNPlugin.so", "libclDNNPlugin.so", "cache.json"}
_MARKER = "toolchain.json"


def toolchain_dir() -> Path:
    """Folder the MyriadX toolchain lives in (``<cache>/toolchains/myriad-2021.4.2``)."""
    return cache_root() / "toolchains" / TOOLCHAIN_NAME


def _source_hash() -> str:
    return hashlib.sha256(_SOURCE.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MyriadToolchain:
    """An installed toolchain: the compiler binary and the 2021.4.2 libraries it runs against."""

    root: Path

    @property
    def compiler(self) -> Path:
        return self.root / "bin" / "myriad_compile"

    @property
    def libs(self) -> Path:
        return self.root / "openvino" / "libs"

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.root / _MARKER).read_text())

    def compile(self, model: str | os.PathLike[str], out: str | os.PathLike[str],
                config: dict[str, str], timeout: float = 900.0) -> None:
        """Compile ``model`` (ONNX opset <= 13 or IR v10) into the blob file ``out``."""
        args = [str(self.compiler), str(model), str(out), *(f"{k}={v}" for k, v in config.items())]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False,
                                  preexec_fn=child_preexec)     # dies with us: no orphaned compiler
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"the MYRIAD compiler took over {timeout:.0f} s on {model}; "
                              "simplify the model or raise the timeout") from exc
        except OSError as exc:
            raise ToolchainError(f"cannot run {self.compiler}: {exc}; reinstall it with "
                                 "`edgedeploy toolchain install myriad --force`") from exc
        if proc.returncode < 0:
            raise crash_error("the MYRIAD 2021.4 compiler", proc.returncode, Path(model).name)
        if proc.returncode != 0 or not Path(out).is_file() or Path(out).stat().st_size == 0:
            raise ExportError(f"the MYRIAD 2021.4 compiler rejected {model}: {compiler_message(proc.stderr)}")


def compiler_message(stderr: str) -> str:
    """The compiler's error text without ANSI colours and deprecation warnings, on one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and "Deprecated option was used" not in ln]
    return " | ".join(lines[-6:]) or "no message (the compiler crashed)"


def installed() -> MyriadToolchain | None:
    """The installed toolchain if it is complete and built from this version's C++ source."""
    tc = MyriadToolchain(toolchain_dir())
    try:
        info = tc.info
    except (OSError, ValueError):
        return None
    if info.get("source_sha256") != _source_hash() or not tc.compiler.is_file():
        return None
    return tc


def ensure_toolchain(quiet: bool = False) -> MyriadToolchain:
    """Return the installed toolchain, installing it on first use."""
    return installed() or install_toolchain(quiet=quiet)


def install_toolchain(force: bool = False, wheel: str | os.PathLike[str] | None = None,
                      quiet: bool = False) -> MyriadToolchain:
    """Download, unpack, build and smoke-test the toolchain (atomically; safe across processes).

    ``wheel`` (or $EDGEDEPLOY_OPENVINO_WHEEL) points at an already downloaded
    ``openvino-2021.4.2-*.whl`` for machines without access to PyPI.
    """
    dest = toolchain_dir()
    with _install_lock(dest.parent):
        if not force and (tc := installed()) is not None:
            return tc            # another process finished it while we waited
        if platform.machine() not in ("x86_64", "AMD64"):
            raise ToolchainError(f"the openvino {OPENVINO_VERSION} MYRIAD plugin exists only for x86_64 Linux, not "
                                 f"{platform.machine()}; compile on an x86_64 machine or use BlobConfig(online=True)")
        gxx = _require_gxx()
        _require_libusb(quiet)
        tmp = Path(tempfile.mkdtemp(prefix=f".{TOOLCHAIN_NAME}.", suffix=".tmp", dir=dest.parent))
        try:
            with _progress(quiet) as step:
                step("downloading openvino==2021.4.2 (MYRIAD plugin) from PyPI")
                whl = _fetch_wheel(tmp, wheel or os.environ.get("EDGEDEPLOY_OPENVINO_WHEEL"))
                if (digest := _sha256(whl)) != WHEEL_SHA256:
                    raise ToolchainError(f"{whl.name} has sha256 {digest}, not the pinned {WHEEL_SHA256} of the "
                                         f"manylinux2014_x86_64 openvino {OPENVINO_VERSION} wheel; use that wheel")
                step("unpacking the Inference Engine libraries")
                _unpack(whl, tmp)
                step("building myriad_compile with g++")
                _build(gxx, tmp)
                info = {"openvino": OPENVINO_VERSION, "wheel": whl.name,
                        "wheel_sha256": digest, "source_sha256": _source_hash(), "gxx": gxx}
                whl.unlink()
                step("smoke test: compiling a one-layer model")
                _smoke_test(MyriadToolchain(tmp), tmp)
                (tmp / _MARKER).write_text(json.dumps(info, indent=2))
            tmp.chmod(0o755)     # mkdtemp made it private; the cache may be shared
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return MyriadToolchain(dest)


def status() -> dict[str, Any]:
    """What is present and what is missing, for `edgedeploy toolchain status`."""
    tc = installed()
    return {
        "name": TOOLCHAIN_NAME,
        "path": str(toolchain_dir()),
        "installed": tc is not None,
        "compiler": str(tc.compiler) if tc else None,
        "g++": shutil.which("g++"),
        "pip": _pip_available(),
        LIBUSB_PACKAGE: _libusb_loadable(),
    }


# ---------------------------------------------------------------- install steps

@contextlib.contextmanager
def _install_lock(folder: Path) -> Iterator[None]:
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / f".{TOOLCHAIN_NAME}.lock", "w")  # noqa: SIM115 (held for the block)
    except OSError as exc:
        raise ToolchainError(f"cannot write the toolchain cache {folder}: {exc.strerror}; "
                             "set EDGEDEPLOY_CACHE to a writable folder") from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Any]:
    if quiet:
        yield lambda msg: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("installing the MyriadX toolchain") as st:
        def step(msg: str) -> None:
            st.update(f"MyriadX toolchain: {msg}")
            console.print(f"[dim]MyriadX toolchain:[/] {msg}", highlight=False)
        yield step


def _require_gxx() -> str:
    gxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")
    if gxx is None:
        raise ToolchainError("g++ not found: the MyriadX toolchain builds a small C++ tool; "
                             "install it with `apt-get install -y g++` and retry")
    return gxx


def _libusb_loadable() -> bool:
    try:
        ctypes.CDLL("libusb-1.0.so.0")
    except OSError:
        return False
    return True


def _require_libusb(quiet: bool) -> None:
    if _libusb_loadable():
        return
    cmd = f"apt-get update && apt-get install -y {LIBUSB_PACKAGE}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolchainError(f"the MYRIAD plugin needs Debian's {LIBUSB_PACKAGE} (libusb-1.0.so.0), "
                             f"which is missing; install it with `sudo {cmd}` and retry")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", LIBUSB_PACKAGE]):
        proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise ToolchainError(f"`{' '.join(args)}` failed ({proc.stderr.strip()[-300:]}); "
                                 f"install {LIBUSB_PACKAGE} yourself with `{cmd}`")
    if not _libusb_loadable():
        raise ToolchainError(f"{LIBUSB_PACKAGE} was installed but libusb-1.0.so.0 still does not load; "
                             "check `ldconfig -p | grep libusb`")


def _pip_available() -> bool:
    proc = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    return proc.returncode == 0


def _fetch_wheel(folder: Path, local: str | os.PathLike[str] | None) -> Path:
    if local:
        src = Path(local)
        if not src.is_file() or not zipfile.is_zipfile(src):
            raise ToolchainError(f"{src} is not an openvino {OPENVINO_VERSION} wheel; "
                                 "unset EDGEDEPLOY_OPENVINO_WHEEL or point it at the .whl file")
        return Path(shutil.copy2(src, folder / src.name))
    if not _pip_available():
        raise ToolchainError(f"pip is not available for {sys.executable}; install pip "
                             "(`python -m ensurepip`) or set EDGEDEPLOY_OPENVINO_WHEEL to a downloaded wheel")
    args = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.9", "--platform", "manylinux2014_x86_64",
            f"openvino=={OPENVINO_VERSION}", "-d", str(folder), "--disable-pip-version-check"]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob(f"openvino-{OPENVINO_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = compiler_message(proc.stderr)
        raise ToolchainError(f"could not download openvino=={OPENVINO_VERSION} from PyPI "
                             f"(is the network to PyPI up?): {tail}; or download it elsewhere with "
                             f"`pip download --no-deps --only-binary=:all: --python-version 3.9 "
                             f"openvino=={OPENVINO_VERSION}` and set EDGEDEPLOY_OPENVINO_WHEEL to it")
    return wheels[0]


def _unpack(whl: Path, folder: Path) -> None:
    try:
        with zipfile.ZipFile(whl) as zf:
            members = [m for m in zf.namelist() if m.startswith("openvino/libs/")
                       and Path(m).name not in _SKIP_LIBS and not m.endswith("/")]
            zf.extractall(folder, members)
    except zipfile.BadZipFile as exc:
        raise ToolchainError(f"{whl.name} is not a valid wheel ({exc}); rerun the install") from exc
    if not (folder / "openvino/libs/libmyriadPlugin.so").is_file():
        raise ToolchainError(f"{whl.name} has no libmyriadPlugin.so; the MyriadX toolchain needs "
                             f"exactly openvino=={OPENVINO_VERSION}")


def _build(gxx: str, folder: Path) -> None:
    libs = folder / "openvino" / "libs"
    (folder / "bin").mkdir()
    out = folder / "bin" / "myriad_compile"
    # rpath is relative ($ORIGIN) so the finished toolchain still works after the rename.
    args = [gxx, "-O1", "-std=c++17", "-D_GLIBCXX_USE_CXX11_ABI=0", str(_SOURCE), "-o", str(out),
            f"-L{libs}", "-linference_engine", "-Wl,-rpath,$ORIGIN/../openvino/libs"]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"g++ failed to build myriad_compile: {proc.stderr.strip()[-600:]}")


def _smoke_test(tc: MyriadToolchain, folder: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "smoke", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    src, blob = folder / "smoke.onnx", folder / "smoke.blob"
    onnx.save(model, src)
    try:
        tc.compile(src, blob, {"VPU_MYRIAD_PLATFORM": "VPU_MYRIAD_2480"}, timeout=300)
    except ExportError as exc:
        raise ToolchainError(f"the freshly built MyriadX toolchain cannot compile a one-layer model: {exc}") from exc
    finally:
        src.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    from .._io import sha256_file

    return sha256_file(path)
