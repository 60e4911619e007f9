"""CLI commands ``export`` (ONNX / OpenVINO IR / MyriadX blob) and ``bench`` (latency on runtimes)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console

FORMATS = ("onnx", "openvino", "blob", "qnn")


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--{what} {text!r} is not a comma-separated list of numbers, e.g. 123.7,116.3,103.5") from None


def _formats(text: str) -> list[str]:
    from ..errors import ConfigError

    wanted = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in FORMATS]
    if unknown or not wanted:
        raise ConfigError(f"unknown --to format(s) {unknown or [text]}; choose from: {', '.join(FORMATS)}")
    return wanted


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="package.module:factory, a zoo name, or an .onnx file"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW, e.g. 1x3x224x224"),  # noqa: A002
    to: str = typer.Option("onnx,openvino", "--to", help="comma-separated: onnx, openvino, blob, qnn"),
    out: Path = typer.Option(Path("build"), "--out", "-o", help="output folder (gets a manifest.json)"),
    exporter: str = typer.Option("dynamo", "--exporter", help="ONNX exporter: dynamo or torchscript"),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's)"),
    fallback: bool = typer.Option(False, "--fallback", help="try the other exporter if an op is unsupported"),
    precision: str = typer.Option("fp16", "--precision", help="IR weight precision: fp16 or fp32"),
    input_type: str = typer.Option("u8", "--input-type", help="IR/blob input element type: u8 or f32"),
    input_layout: str | None = typer.Option(None, "--input-layout", help="layout fed to the IR, e.g. NHWC"),
    mean: str | None = typer.Option(None, "--mean", help="per-channel mean in pixel units, e.g. 123.7,116.3,103.5"),
    scale: str | None = typer.Option(None, "--scale", help="per-channel scale (divisor), e.g. 58.4,57.1,57.4"),
    reverse_channels: bool = typer.Option(False, "--reverse-channels", help="the camera sends BGR, model wants RGB"),
    shaves: int = typer.Option(6, "--shaves", help="blob: SHAVE cores (and CMX slices)"),
    soc: str = typer.Option("SM8650", "--soc", help="qnn: Snapdragon SoC (e.g. SM8650, SM8750) or QNN id"),
    calib: str | None = typer.Option(None, "--calib", help="qnn: calibration data, 'digits' or a .npy file"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the results as JSON"),
) -> None:
    """Export MODEL to ONNX, OpenVINO IR, a MyriadX blob and/or a QNN context binary in --out, each verified."""
    from ..errors import ShapeError
    from ..modelref import load_model, parse_shape

    formats = _formats(to)
    shape = parse_shape(input) if input is not None else None
    mean_v, scale_v = _floats(mean, "mean"), _floats(scale, "scale")
    net = load_model(model)
    results: list[Any] = []
    onnx_path: Path | None = net if isinstance(net, Path) and net.suffix.lower() == ".onnx" else None
    if not isinstance(net, Path) and shape is None:
        raise ShapeError(f"model {model} is a torch module: give its input shape with --input, e.g. 1x3x224x224")
    if isinstance(net, Path) and onnx_path is None:
        raise ShapeError(f"{net} is not an .onnx file; export reads torch models or ONNX files")
    if "onnx" in formats and onnx_path is None:
        import torch

        from ..export.onnx import OnnxConfig, export_onnx

        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        cfg = OnnxConfig(exporter=exporter, opset=opset, fallback=fallback)
        with console.status(f"exporting {model} to ONNX ({exporter})"):
            results.append(export_onnx(net, x, cfg, out=out, name=_name(model)))
        onnx_path = results[-1].path
    if "openvino" in formats:
        from ..export.openvino import OpenVinoConfig, export_openvino

        cfg_ov = OpenVinoConfig(precision=precision, input_layout=input_layout, mean=mean_v, scale=scale_v,
                                reverse_channels=reverse_channels, input_type=input_type)
        with console.status("converting to OpenVINO IR and verifying on CPU"):
            if onnx_path is not None:
                ref = net if not isinstance(net, Path) else None
                results.append(export_openvino(onnx_path, cfg_ov, out=out, reference=ref))
            else:
                import torch

                x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
                results.append(export_openvino(net, cfg_ov, out=out, example_inputs=x, name=_name(model)))
    if "qnn" in formats:
        from .qnn_cmd import export_to_qnn

        results.append(export_to_qnn(model, input, soc, calib, out, print_result=False))
    if "blob" in formats:
        results.append(_blob(net, shape, onnx_path, out, model, exporter, shaves, input_type, mean_v, scale_v,
                             reverse_channels))
    for r in results:
        console.print(r)
    if json_out is not None:
        from .._io import write_json_atomic

        write_json_atomic(json_out, {"model": model, "results": [r.to_dict() for r in results]})
        console.print(f"results written to {json_out}")


def _name(model_ref: str) -> str:
    return model_ref.rpartition(":")[2].replace("/", "_") or "model"


def _blob(net: Any, shape: Any, onnx_path: Path | None, out: Path, model: str, exporter: str, shaves: int,
          input_type: str, mean: Any, scale: Any, reverse: bool) -> Any:
    """Compile a MyriadX blob. The 2021.4 compiler reads ONNX opsets <= 13: for a torch model, export a
    dedicated opset-13 ONNX (torchscript exporter) for it, whatever opset the main ONNX artifact uses."""
    from ..export.blob import BlobConfig, export_blob

    if not isinstance(net, Path):
        import torch

        from ..export.onnx import OnnxConfig, export_onnx

        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        with console.status("exporting an opset-13 ONNX for the MyriadX compiler"):
            onnx_path = export_onnx(net, x, OnnxConfig(exporter="torchscript", opset=13), out=out,
                                    name=f"{_name(model)}-opset13").path
    cfg = BlobConfig(shaves=shaves, cmx_slices=shaves, input_precision="U8" if input_type == "u8" else "FP16",
                     mean=mean, scale=scale, reverse_channels=reverse)
    with console.status("compiling the MyriadX blob"):
        return export_blob(onnx_path, cfg, out=out)


@app.command("bench")
def bench_cmd(
    artifacts: list[str] = typer.Argument(..., help=".onnx / .xml files, or torch models (with --input)"),
    runtime: str | None = typer.Option(None, "--runtime", "-r", help="comma-separated runtimes (default: by file)"),
    threads: str | None = typer.Option(None, "--threads", "-t", help="comma-separated thread counts, e.g. 1,2"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape for torch models"),  # noqa: A002
    repeats: int = typer.Option(50, "--repeats", min=1, help="timed runs"),
    warmup: int = typer.Option(10, "--warmup", min=0, help="untimed warm-up runs"),
    json_out: Path | None = typer.Option(None, "--json", help="write the results as JSON"),
) -> None:
    """Latency and throughput of each ARTIFACT on each runtime and thread count, side by side."""
    from ..errors import ConfigError
    from ..metrics.hostinfo import host_info
    from ..runtime import benchmark, load

    try:
        thread_list: list[int | None] = [int(t) for t in threads.split(",")] if threads else [None]
    except ValueError:
        raise ConfigError(f"--threads {threads!r} must be comma-separated integers, e.g. 1,2") from None
    runtimes: list[str | None] = [r.strip() for r in runtime.split(",")] if runtime else [None]
    rows = []
    for ref in artifacts:
        source, kwargs = _bench_source(ref, input)
        for rt in runtimes:
            for th in thread_list:
                session = load(source, runtime=rt, threads=th, **kwargs)
                with console.status(f"timing {ref} on {session.name} ({th or 'default'} threads)"):
                    stats = benchmark(session, repeats=repeats, warmup=warmup)
                rows.append({"artifact": ref, "runtime": session.name, "threads": th, **stats.to_dict()})
    console.print(_table(rows))
    if json_out is not None:
        from .._io import write_json_atomic

        write_json_atomic(json_out, {"host": host_info().to_dict(), "results": rows})
        console.print(f"results written to {json_out}")


def _bench_source(ref: str, shape_text: str | None) -> tuple[Any, dict[str, Any]]:
    from ..errors import ShapeError
    from ..modelref import load_model, parse_shape

    net = load_model(ref)
    if isinstance(net, Path):
        return net, {}
    if shape_text is None:
        raise ShapeError(f"{ref} is a torch model: give its input shape with --input, e.g. 1x3x224x224")
    import torch

    return net, {"example_inputs": (torch.randn(*parse_shape(shape_text)),)}


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title="latency in ms; speed-up = first row's median / this row's")
    t.add_column("artifact", overflow="fold")
    t.add_column("runtime", no_wrap=True)
    for col in ("thr", "median", "p90", "min", "FPS", "speed-up"):
        t.add_column(col, justify="right", no_wrap=True)
    base = rows[0]["median_ms"] if rows else 1.0
    for r in rows:
        t.add_row(Path(r["artifact"]).name, r["runtime"], str(r["threads"] or "default"), f"{r['median_ms']:.3f}",
                  f"{r['p90_ms']:.3f}", f"{r['min_ms']:.3f}", f"{r['fps']:.1f}", f"{base / r['median_ms']:.2f}x")
    return t
