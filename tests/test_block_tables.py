"""The tutorial's block-vs-Conv2D tables recomputed with the profiler: every row within 2 % or explained."""
from __future__ import annotations

import importlib
import json

import pytest

from edgedeploy.blocks.tables import SPECS, TUTORIAL_SIZE, compare, fmt_count, tutorial_table, tutorial_tables
from edgedeploy.cli import main
from edgedeploy.errors import ConfigError

H, W = TUTORIAL_SIZE
OUT_S2 = (H // 2) * (W // 2)     # 176 x 640 output of the stride-2 rows
OUT_S1 = H * W                   # 352 x 1280 output of the PartialConv table


def _all(captured) -> str:
    """stdout and stderr of a CLI run (errors are printed on stderr)."""
    return captured.out + captured.err


@pytest.fixture(scope="module")
def tables():
    return {name: tutorial_table(name) for name in ("s2d", "dense", "ghost", "partial")}


def test_conv_baseline_rows_are_exact(tables):
    """Hand counts: out elements x (Cin*9 + 4 for BN); params Cin*9*Cout + 2*Cout (BN gamma/beta)."""
    expect = {(1, 32): (OUT_S2, 352), (32, 64): (OUT_S2, 18560), (64, 128): (OUT_S2, 73984),
              (32, 32): (OUT_S1, 9280), (64, 64): (OUT_S1, 36992)}
    for table in tables.values():
        for row in table.rows[:2]:
            pos, params = expect[(row.in_ch, row.out_ch)]
            assert row.layer == "Conv2D + BN + ReLU"
            assert row.macs == pos * row.out_ch * (row.in_ch * 9 + 4)
            assert row.params == params
            assert abs(row.macs_diff_pct) < 0.05 and abs(row.params_diff_pct) < 0.05


def test_ghost_rows_match_the_tutorial_exactly(tables):
    r32, r64 = tables["ghost"].rows[2:]
    assert (r32.macs, r32.params) == (OUT_S2 * 32 * (288 + 4) + OUT_S2 * 32 * (25 + 4), 10144)
    assert (r64.macs, r64.params) == (OUT_S2 * 64 * (576 + 4) + OUT_S2 * 64 * (25 + 4), 38720)
    assert fmt_count(r32.macs) == "1.157 G" and fmt_count(r64.macs) == "4.390 G"


def test_dense_rows_within_two_percent(tables):
    r32, r64 = tables["dense"].rows[2:]
    assert r32.params == 15536 and r64.params == 61792
    assert r64.macs == OUT_S2 * (96 * (576 + 4) + 48 * (96 + 4) + 32 * (48 + 4))
    for r in (r32, r64):
        assert abs(r.macs_diff_pct) < 2 and abs(r.params_diff_pct) < 2 and r.note == ""


def test_partial_rows_macs_within_two_percent_params_explained(tables):
    r32, r64 = tables["partial"].rows[2:]
    assert (r32.macs, r32.params) == (OUT_S1 * (8 * 72 + 4 * 32), 640)
    assert (r64.macs, r64.params) == (OUT_S1 * (16 * 144 + 4 * 64), 2432)
    assert abs(r32.macs_diff_pct) < 2 and abs(r64.macs_diff_pct) < 2
    assert r32.params_diff_pct < -2 and "partial_conv" in r32.note
    doc = importlib.import_module("edgedeploy.blocks.partial_conv").__doc__
    assert "742" in doc and "2,630" in doc


def test_s2d_rows_explained(tables):
    r1, r32 = tables["s2d"].rows[2:]
    assert (r1.macs, r1.params) == (OUT_S2 * 32 * (4 + 4), 4 * 32 + 64)
    assert (r32.macs, r32.params) == (OUT_S2 * 64 * (128 + 4), 128 * 64 + 128)
    assert "space_to_depth" in r1.note and "space_to_depth" in r32.note
    doc = importlib.import_module("edgedeploy.blocks.space_to_depth").__doc__
    assert "26.04 M / 150" in doc and "1.08 G / 5.89 K" in doc
    # and the block keeps its point: cheaper than the strided conv it replaces
    conv1, conv32 = tables["s2d"].rows[:2]
    assert r1.macs < conv1.macs and r32.macs < conv32.macs


def test_every_row_within_two_percent_or_documented(tables):
    for name, table in tables.items():
        spec = SPECS[name]
        assert len(table.rows) == len(spec.rows) == 4
        for row, tut in zip(table.rows, spec.rows):
            assert (row.layer, row.in_ch, row.out_ch, row.tutorial_macs, row.tutorial_params) == tut
            off = max(abs(row.macs_diff_pct), abs(row.params_diff_pct))
            assert off <= 2.0 or (spec.deviation and spec.deviation in row.note), (name, row)


def test_tables_print_in_the_tutorial_layout(tables):
    text = str(tables["ghost"])
    for word in ("Layer Type", "Input Channels", "Output Channels", "MAC Operations", "Number of Parameters",
                 "GhostConv2D", "1.157 G", "10.144 K", "4.390 G", "38.720 K"):
        assert word in text


def test_compare_at_another_size_has_no_tutorial_figures():
    t = compare("ghost", 16, 32, (32, 48))
    base, ghost = t.rows
    assert base.tutorial_macs is None and base.macs == 16 * 24 * 32 * (144 + 4)
    assert ghost.macs == 16 * 24 * 16 * (144 + 4) + 16 * 24 * 16 * (25 + 4)
    ps = compare("pixelshuffle", 128, 128, (8, 8))
    tconv, shuffle = ps.rows
    assert tconv.layer == "TransposedConv2D" and shuffle.layer == "PixelShuffle"
    assert tconv.macs == 64 * 128 * 9 * 128 + 16 * 16 * 128      # in elems x Cout x k^2 + bias per out elem
    assert shuffle.macs == 64 * 512 * (128 + 1)


@pytest.mark.parametrize("args,err", [
    (("nope", 8, 8, (16, 16)), "choose one of"), (("partial", 8, 16, (16, 16)), "--in == --out"),
    (("ghost", 0, 8, (16, 16)), "positive int"), (("s2d", 1, 8, (15, 16)), "divisible"),
])
def test_compare_bad_input(args, err):
    with pytest.raises(ConfigError, match=err):
        compare(*args)


def test_cli_compare(capsys, tmp_path):
    out = tmp_path / "t.json"
    rc = main(["blocks", "compare", "ghost", "--in", "32", "--out", "64", "--size", "352x1280", "--json", str(out)])
    text = _all(capsys.readouterr())
    assert rc == 0
    assert "GhostConv2D" in text and "1.157 G" in text and "10.144 K" in text and "+0.00%" in text
    data = json.loads(out.read_text())
    assert data["rows"][1]["params"] == 10144


def test_cli_tables_prints_all_four(capsys, tmp_path, monkeypatch):
    import edgedeploy.blocks.tables as tables_mod

    computed = {}
    real = tables_mod.tutorial_table
    monkeypatch.setattr(tables_mod, "tutorial_table", lambda name: computed.setdefault(name, real(name)))
    assert len(tutorial_tables()) == 4 and sorted(computed) == ["dense", "ghost", "partial", "s2d"]
    out = tmp_path / "all.json"
    assert main(["blocks", "tables", "--json", str(out)]) == 0
    text = _all(capsys.readouterr())
    for title in ("SPACE-TO-DEPTH VS. CONV2D", "DENSEFEATBLOCK VS. CONV2D", "GHOSTCONV2D VS. CONV2D",
                  "PARTIALCONV2D VS. CONV2D", "320.790 M", "more than 2% off"):
        assert title in text
    assert [t["title"] for t in json.loads(out.read_text())][0] == "SPACE-TO-DEPTH VS. CONV2D"


def test_cli_compare_errors_exit_2(capsys):
    assert main(["blocks", "compare", "ghost", "--size", "64by64"]) == 2
    assert "352x1280" in _all(capsys.readouterr())
    assert main(["blocks", "compare", "warp", "--size", "64x64"]) == 2
    assert "choose one of" in _all(capsys.readouterr())
