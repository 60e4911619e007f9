"""CLI commands ``export`` (ONNX / OpenVINO IR / MyriadX blob / QNN context) and ``bench`` (latency on runtimes)."""
from __future__ import annotations

from pathlib import Path
import typer

from .app import app, console, output_file
from .options import CALIB_HELP, INPUT_HELP, MODEL_HELP, calib_data, floats, ints, model_and_shape, trust_option

# --input-type -> (IR input element type, blob input precision); None follows the model (float32)
_INPUT_TYPES = {None: (None, "FP32"), "f32": ("f32", "FP32"), "f16": ("f16", "FP16"), "u8": ("u8", "U8")}


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    input: str | None = typer.Option(None, "--input", "-i", help=INPUT_HELP),  # noqa: A002
    to: str = typer.Option("onnx,openvino", "--to", help="comma-separated: onnx, openvino, blob, depthai, qnn"),
    out: Path = typer.Option(Path("build"), "--out", "-o", help="output folder (gets a manifest.json)"),
    exporter: str | None = typer.Option(None, "--exporter", help="ONNX exporter: dynamo or torchscript (default: "
                                        "dynamo for the ONNX artifact, torchscript at opset 13 for the blob)"),
    opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's)"),
    fallback: bool = typer.Option(False, "--fallback", help="try the other exporter if an op is unsupported"),
    allow_data_dependent: bool = typer.Option(False, "--allow-data-dependent",
                                              help="export a model that branches on tensor values anyway (the graph "
                                                   "keeps only the example's branches)"),
    precision: str = typer.Option("fp16", "--precision", help="IR weight precision: fp16 or fp32"),
    input_type: str | None = typer.Option(None, "--input-type", help="IR/blob input type: f32 (the model's, "
                                          "default), f16, or u8 for raw camera frames"),
    input_layout: str | None = typer.Option(None, "--input-layout", help="layout fed to the IR, e.g. NHWC"),
    mean: str | None = typer.Option(None, "--mean", help="per-channel mean in pixel units, e.g. 123.7,116.3,103.5"),
    scale: str | None = typer.Option(None, "--scale", help="per-channel scale (divisor), e.g. 58.4,57.1,57.4"),
    reverse_channels: bool = typer.Option(False, "--reverse-channels", help="the camera sends BGR, model wants RGB"),
    shaves: int = typer.Option(6, "--shaves", help="blob: SHAVE cores (and CMX slices)"),
    host_fallback: bool = typer.Option(False, "--host-fallback", help="blob: run the ops the MyriadX compiler "
                                       "rejects (e.g. GridSample) and what follows them on the host, as a second "
                                       "ONNX"),
    soc: str = typer.Option("SM8650", "--soc", help="qnn: Snapdragon SoC (e.g. SM8650, SM8750) or QNN id"),
    calib: str | None = typer.Option(None, "--calib", help="qnn: " + CALIB_HELP),
    calib_mean: str | None = typer.Option(None, "--calib-mean", help="image folders: per-channel mean (pixels)"),
    calib_scale: str | None = typer.Option(None, "--calib-scale", help="image folders: per-channel scale (pixels)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: build the trained variant"),
    trust_pickle: bool = trust_option(),
    json_out: Path | None = typer.Option(None, "--json", help="also write the results as JSON"),
) -> None:
    """Export MODEL to ONNX, OpenVINO IR, a MyriadX blob and/or a QNN context binary in --out, each verified."""
    from ..errors import ConfigError
    from ..export.blob import BlobConfig
    from ..export.openvino import OpenVinoConfig
    from ..export.qnn import QnnConfig
    from ..run.export import ExportConfig, export

    output_file(json_out)
    if input_type not in _INPUT_TYPES:
        raise ConfigError(f"unknown --input-type {input_type!r}; choose f32, f16 or u8")
    ir_type, blob_type = _INPUT_TYPES[input_type]
    mean_v, scale_v = floats(mean, "mean"), floats(scale, "scale")
    config = ExportConfig(
        to=tuple(to.split(",")), exporter=exporter, opset=opset, fallback=fallback,
        allow_data_dependent=allow_data_dependent,
        openvino=OpenVinoConfig(precision=precision, input_layout=input_layout, mean=mean_v, scale=scale_v,
                                reverse_channels=reverse_channels, input_type=ir_type),
        blob=BlobConfig(shaves=shaves, cmx_slices=shaves, input_precision=blob_type, mean=mean_v, scale=scale_v,
                        reverse_channels=reverse_channels, host_fallback=host_fallback),
        qnn=QnnConfig(soc_model=soc), name=_name(model))
    net, shape = model_and_shape(model, input, pretrained, trust_pickle)
    data = calib_data(calib, shape, calib_mean, calib_scale) if "qnn" in config.to else None
    with console.status(f"exporting {model} to {', '.join(config.to)}"):
        results = export(net, config, input_shape=shape, calibration=data, out=out)
    for r in results:
        console.print(r)
    if json_out is not None:
        from .._io import write_json_atomic

        write_json_atomic(json_out, {"model": model, "results": [r.to_dict() for r in results]})
        console.print(f"results written to {json_out}")


def _name(model_ref: str) -> str:
    """A file-safe artifact name from MODEL: the factory name, a zoo name, or a file's stem."""
    import re

    base = Path(model_ref).stem if Path(model_ref).suffix else model_ref.rpartition(":")[2]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip(".") or "model"


@app.command("bench")
def bench_cmd(
    artifacts: list[str] = typer.Argument(..., help=".onnx / .xml files, or torch models (with --input)"),
    runtime: str | None = typer.Option(None, "--runtime", "-r", help="comma-separated runtimes (default: by file)"),
    threads: str | None = typer.Option(None, "--threads", "-t", help="comma-separated thread counts, e.g. 1,2"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape for torch models"),  # noqa: A002
    repeats: int = typer.Option(50, "--repeats", min=1, help="timed runs"),
    warmup: int = typer.Option(10, "--warmup", min=0, help="untimed warm-up runs"),
    trust_pickle: bool = trust_option(),
    json_out: Path | None = typer.Option(None, "--json", help="write the results as JSON"),
) -> None:
    """Latency and throughput of each ARTIFACT on each runtime and thread count, side by side."""
    from ..runtime import BenchConfig, benchmark_matrix

    output_file(json_out)
    config = BenchConfig(runtimes=tuple(r.strip() for r in runtime.split(",")) if runtime else (None,),
                         threads=tuple(ints(threads, "threads") or [None]), repeats=repeats, warmup=warmup)
    sources = [model_and_shape(ref, input, trust_pickle=trust_pickle) for ref in artifacts]
    with console.status("timing " + ", ".join(artifacts)):
        result = benchmark_matrix([(ref, net, shape) for ref, (net, shape) in zip(artifacts, sources)], config)
    console.print(result)
    if json_out is not None:
        from .._io import write_json_atomic

        write_json_atomic(json_out, result.to_dict())
        console.print(f"results written to {json_out}")
