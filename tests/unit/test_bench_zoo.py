"""``imdsr bench zoo``: the renderer, the seams measurement, the benchmark cache, the importer and
the CLI (its refusals, and a real run of the parts that need no third-party data).

No third-party weights or images: models are randomly initialised; checkpoints are made by our
exporter; the benchmark cache runs on a toy set of generated pictures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bench.zoo import (
    PUBLISHED,
    ZOO,
    SeamRow,
    ZooReport,
    ZooRow,
    bare_key,
    import_published,
    published_zoo,
    seam_contexts,
    seams,
    torch_infer,
)
from bench.zoo_doc import REPORTS, benchmark_table, published_table, render, speed_table
from bench.zoo_quality import (
    BICUBIC,
    PROTOCOL,
    BenchmarkCache,
    CacheError,
    SetScore,
    StandardSet,
    evaluate_zoo,
)
from imdsr.cli import app
from imdsr.imaging.tiling import TilingRule
from training.models import create_model, get_variant
from training.weights.store import WeightsMeta, load_model, read_meta, save_weights

runner = CliRunner()
SETS = ("set5", "urban100")


def _scores(base: float) -> dict[str, SetScore]:
    return {"set5": SetScore(base, 0.89, 5), "urban100": SetScore(base - 6.0, 0.78, 100)}


def _report() -> ZooReport:
    rule = get_variant("rlfn").tiling
    ov, bf = bare_key("openvino", "f32"), bare_key("openvino", "bf16")
    ort = bare_key("onnxruntime", "f32")
    rows = [
        ZooRow("c16nla", "imdeception", 316_552, 20_705_181_696, 206_045_184, 62, 201_326_592,
               {ort: 700.0, ov: 500.0, bf: 200.0}, {ort: "f32", ov: "f32", bf: "bf16"}, 6, 0.002,
               {1: 1.5, 4: 1.6}, {1: 690.0, 4: 2600.0}, 0, _scores(32.13)),
        ZooRow("rlfn", "rlfn", 317_218, 19_695_306_752, 80_045_184, 39, 0,
               {ort: 300.0, ov: 250.0, bf: 250.0}, {ort: "f32", ov: "f32", bf: "f32"}, 0, 0.0,
               {1: 3.0, 4: 3.2}, {1: 340.0, 4: 1300.0}, 0, _scores(32.10)),
        ZooRow("srnext", "srnext", 244_558, 15_375_925_248, 422_903_808, 106, 0,
               {ort: 900.0, ov: 800.0, bf: 400.0}, {ort: "f32", ov: "f32", bf: "bf16"}, 8, 0.005,
               {1: 1.0, 4: 1.1}, {1: 900.0, 4: 3500.0}, 0, _scores(32.07)),
    ]
    seam_rows = [SeamRow("rlfn", "rlfn", rule, 126, c, 12, 1.5, lv, f)
                 for c, lv, f in ((18, 40, 0.03), (30, 28, 0.01), (60, 9, 0.001))]
    seam_rows += [SeamRow("srnext", "srnext", get_variant("srnext").tiling, 128, c, 12, 1.4, lv, 0.0)
                  for c, lv in ((8, 15), (16, 1), (32, 1))]
    return ZooReport("imdsr bench zoo --ntire22 zoo --ntire23 t05", "Test CPU, 2 cores available",
                     "2025-01-01", 2, 3, service_setup="runtime openvino f32",
                     service_runtime=ov, seams_image="astronaut", bicubic=_scores(28.43),
                     benchmarks_note="6 of 6 model-set scores from the cache", rows=rows,
                     seams=seam_rows, seconds=300.0)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_speed_table_has_each_runtime_and_precision_and_marks_an_f32_fallback() -> None:
    lines = speed_table(_report()).splitlines()
    assert len(lines) == 5
    head, c16, rlfn = _cells(lines[0]), _cells(lines[2]), _cells(lines[3])
    bare = [head.index(f"{k} Mpx/s (ms)") for k in ("onnxruntime f32", "openvino f32", "openvino bf16")]
    # 256x256 in, x4 out: 1.048576 Mpx; 500 ms -> 2.10 Mpx/s
    assert [c16[i] for i in bare] == ["1.50 (700)", "2.10 (500)", "5.24 (200)"]
    assert rlfn[bare[2]] == "4.19 (250), ran f32"  # the runtime said it compiled f32
    assert c16[:5] == ["`c16nla` (Aselsan IMDeception)", "0.317M", "20.71", "206.05", "62"]
    assert "6 (0.20%)" in c16 and c16[-2:] == ["1.50", "1.60"]


def test_benchmark_table_puts_bicubic_first_with_each_set_the_mean_and_the_gain() -> None:
    lines = benchmark_table(_report()).splitlines()
    assert _cells(lines[0]) == ["model", "Set5 Y-PSNR / SSIM", "Urban100 Y-PSNR / SSIM",
                                "mean Y-PSNR", "gain over bicubic (dB)"]
    assert _cells(lines[2]) == ["bicubic", "28.43 / 0.8900", "22.43 / 0.7800", "25.43", "-"]
    assert _cells(lines[3])[1:] == ["32.13 / 0.8900", "26.13 / 0.7800", "29.13", "+3.70"]
    assert len(lines) == 2 + 1 + 3


def test_published_figures_keep_each_report_in_its_own_column_group() -> None:
    lines = published_table(_report()).splitlines()
    head = _cells(lines[0])
    assert head[1].startswith("NTIRE 2022 ESR report: PSNR DIV2K val / DIV2K test")
    assert head[2] == "NTIRE 2022 ms (Titan Xp)" and head[4] == "NTIRE 2023 ms (RTX 3090)"
    assert "DIV2K+LSDIR test" in head[3]
    c16, srnext = _cells(lines[2]), _cells(lines[4])
    p = PUBLISHED["c16nla"]
    assert c16[1:5] == [f"{p.psnr_val:.2f} / {p.psnr_test:.2f}", "63.18", "", ""]
    assert srnext[1:5] == ["", "", "29.02 / 27.02", "91.16"]  # never in the 2022 columns
    assert c16[5] == "0.317M / 20.71G / 206.06M / 134"


def test_every_published_report_is_described() -> None:
    assert {p.report for p in PUBLISHED.values()} <= set(REPORTS)
    assert published_zoo("NTIRE 2023") == ["srnext"]
    assert "srnext" not in published_zoo("NTIRE 2022") and "c16nla" in published_zoo("NTIRE 2022")
    assert set(published_zoo("NTIRE 2022")) | {"srnext"} == set(ZOO)


def test_render_ranks_each_report_apart_and_states_command_machine_and_seams() -> None:
    doc = render(_report(), "model_zoo.png")
    assert "`imdsr bench zoo --ntire22 zoo --ntire23 t05`" in doc and "one run" in doc
    assert "Test CPU, 2 cores available" in doc
    ranking = next(line for line in doc.splitlines() if line.startswith("  * NTIRE 2022 (Titan Xp):"))
    assert ranking == "  * NTIRE 2022 (Titan Xp): rlfn > c16nla;"  # srnext is not in it
    other = next(line for line in doc.splitlines() if line.startswith("  * NTIRE 2023 (RTX 3090):"))
    assert "srnext" in other and "not ranked with the NTIRE 2022 models" in other
    assert "  * here, openvino bf16: c16nla > rlfn > srnext;" in doc
    assert "srnext's DIV2K val figure, 29.02 dB, is from NTIRE 2023" in doc
    assert "c16nla x2.50 (6 levels" in doc and "rlfn ran f32" in doc
    assert "6 of 6 model-set scores from the cache" in doc
    assert "## Tiling seams" in doc and "no contrast-aware channel attention" in doc.lower()
    assert "| rlfn (rlfn) | 6 | 30 | 126 | **30** |" in doc
    assert "1.00%" in doc  # 0.01 of the pixels
    assert "SRneXt is local too" in doc and "1 level at context 16" in doc
    assert "Issue 17" in doc and "| 745 | 1.41 |" in doc
    assert "![" in doc and "model_zoo.png" in doc
    r = _report()
    bare = ZooReport(r.command, r.machine, r.date, 2, 3, rows=r.rows)
    text = render(bare)
    assert "## Tiling seams" not in text and "Not measured in this run." in text


def test_report_round_trips_through_json() -> None:
    report = _report()
    again = ZooReport.from_dict(json.loads(json.dumps(report.as_dict())))
    assert again == report


def test_seam_contexts_round_to_the_alignment() -> None:
    assert seam_contexts(get_variant("imdn").tiling) == [8, 16, 32]
    assert seam_contexts(get_variant("rlfn").tiling) == [12, 30, 60]
    assert seam_contexts(get_variant("efdn").tiling) == [7, 21, 42]
    assert seam_contexts(get_variant("c16nla").tiling) == [0, 32, 64]
    assert seam_contexts(get_variant("srnext").tiling) == [8, 16, 32]


def _blur_x4(x: np.ndarray) -> np.ndarray:
    """A 3x3 box filter with zero padding (a conv's reach: 1 px), then x4 nearest."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    out = sum(padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    return np.repeat(np.repeat(out, 4, axis=2), 4, axis=3).astype(np.float32)


def test_seams_are_zero_once_the_context_covers_the_reach() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    rows = seams("toy", "toy", image, _blur_x4, TilingRule(context=1, align=1), tile=8,
                 contexts=[0, 1, 2])
    assert [r.context for r in rows] == [0, 1, 2]
    assert all(r.tiles > 1 and r.tile == 8 for r in rows)
    no_context, *covered = rows
    assert no_context.max_levels > 1 and 0 < no_context.frac_over_1 < 1
    assert all(r.max_levels == 0 and r.frac_over_1 == 0 for r in covered)


def test_seams_run_a_real_architecture_with_its_rule() -> None:
    torch.manual_seed(0)
    model = create_model("efdn").eval()
    rule = get_variant("efdn").tiling
    image = np.random.default_rng(1).integers(0, 256, (24, 120, 3), dtype=np.uint8)
    rows = seams("efdn", "efdn", image, torch_infer(model), rule, tile=16)
    assert [r.context for r in rows] == seam_contexts(rule)
    assert all(r.tile == 14 and r.tiles > 1 for r in rows)  # 16 rounded down to align 7
    assert all(0 <= r.max_levels <= 255 and 0 <= r.frac_over_1 <= 1 for r in rows)


def test_import_published_writes_project_weights_named_by_the_registry(tmp_path: Path) -> None:
    from training.weights.ntire22 import to_published

    torch.manual_seed(0)
    model = create_model("rlfn")
    zoo = tmp_path / "model_zoo"
    zoo.mkdir()
    torch.save(to_published(model, "rlfn"), zoo / get_variant("rlfn").checkpoint)
    found = import_published(zoo, ["rlfn"], tmp_path / "out", progress=lambda _m: None)
    meta = read_meta(found["rlfn"])
    assert (meta.variant, meta.scale) == ("rlfn", 4)
    assert meta.source.startswith("ntire22:team04_rlfn.pth:sha256=")


# --- the standard-benchmark cache ----------------------------------------------------------------


def _toy_set(folder: Path) -> StandardSet:
    """Two generated pictures standing in for a standard set (its files and digest are all the
    evaluation reads)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:60]
    files = []
    for i in range(2):
        img = np.sin(x / (5 + i))[..., None] * np.cos(y / 7)[..., None] * 90 + 128
        img = np.clip(img + rng.normal(0, 8, (48, 60, 3)), 0, 255).astype(np.uint8)
        files.append(folder / f"img_{i}.png")
        Image.fromarray(img).save(files[-1])
    return StandardSet("toy", tuple(files), "digest-toy")


def _random_weights(path: Path, variant: str, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_weights(path, create_model(variant).state_dict(), WeightsMeta(variant, 4, "random-init"))


def test_benchmark_scores_are_cached_per_weights_and_set(tmp_path: Path) -> None:
    from training.evaluate import benchmark_table as reference

    toy = _toy_set(tmp_path / "toy")
    w = _random_weights(tmp_path / "c4.safetensors", "c4", 0)
    cache_file = tmp_path / "cache.json"
    first = evaluate_zoo({"c4": w}, [toy], BenchmarkCache(cache_file), progress=lambda _m: None)
    assert first.measured == [("c4", "toy")]
    model, _ = load_model("c4", w)
    direct = reference({"c4": model}, {"toy": list(toy.files)}, 4, progress=False)
    assert first.scores["c4"]["toy"] == SetScore(direct["c4"]["toy"].y_psnr,
                                                 direct["c4"]["toy"].y_ssim, 2)
    assert first.scores[BICUBIC]["toy"].y_psnr == direct[BICUBIC]["toy"].y_psnr

    again = evaluate_zoo({"c4": w}, [toy], BenchmarkCache(cache_file), progress=lambda _m: None)
    assert again.measured == [] and again.scores == first.scores  # from the file, not re-run
    other = _random_weights(tmp_path / "c4b.safetensors", "c4", 1)  # another digest: measured
    third = evaluate_zoo({"c4": other}, [toy], BenchmarkCache(cache_file), progress=lambda _m: None)
    assert third.measured == [("c4", "toy")] and third.scores["c4"] != first.scores["c4"]
    changed = StandardSet("toy", toy.files, "digest-toy-2")  # a changed set: measured again
    assert evaluate_zoo({"c4": w}, [changed], BenchmarkCache(cache_file),
                        progress=lambda _m: None).measured == [("c4", "toy")]


def _reorder_header(src: Path, dst: Path) -> Path:
    """``src`` with its header's entries in reverse order: what another process's save writes."""
    import json

    raw = src.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    header = {k: (dict(reversed(list(v.items()))) if k == "__metadata__" else v)
              for k, v in reversed(list(header.items()))}
    text = json.dumps(header, separators=(",", ":")).encode().ljust(size)
    assert len(text) == size
    dst.write_bytes(raw[:8] + text + raw[8 + size:])
    return dst


def test_the_same_weights_saved_in_another_header_order_hit_the_cache(tmp_path: Path) -> None:
    from imdsr.digest import file_sha256, safetensors_sha256

    toy = _toy_set(tmp_path / "toy")
    w = _random_weights(tmp_path / "c4.safetensors", "c4", 0)
    again = _reorder_header(w, tmp_path / "c4_again.safetensors")
    assert file_sha256(again) != file_sha256(w) and safetensors_sha256(again) == safetensors_sha256(w)
    cache_file = tmp_path / "cache.json"
    evaluate_zoo({"c4": w}, [toy], BenchmarkCache(cache_file), progress=lambda _m: None)
    assert evaluate_zoo({"c4": again}, [toy], BenchmarkCache(cache_file),
                        progress=lambda _m: None).measured == []
    with pytest.raises(ValueError, match="not a safetensors file"):
        safetensors_sha256(toy.files[0])


def test_benchmark_cache_drops_another_protocol_and_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    cache = BenchmarkCache(path)
    cache.put("k:set5:d", SetScore(30.0, 0.9, 5), method="c4", weights="w", set_name="set5",
              seconds=1.0)
    assert BenchmarkCache(path).get("k:set5:d") == SetScore(30.0, 0.9, 5)
    raw = json.loads(path.read_text())
    assert raw["protocol"] == PROTOCOL
    path.write_text(json.dumps({**raw, "protocol": "an older protocol"}))
    assert BenchmarkCache(path).get("k:set5:d") is None
    path.write_text(json.dumps({"something": "else"}))
    with pytest.raises(CacheError, match="not a zoo benchmark cache"):
        BenchmarkCache(path)


# --- the command line ----------------------------------------------------------------------------


def test_cli_refuses_an_unknown_variant_in_weights(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "zoo", "--weights", f"nosuch={tmp_path / 'w.safetensors'}",
                                 "--out", str(tmp_path / "z.md")])
    assert result.exit_code == 2
    assert "'nosuch' is neither an architecture" in result.output
    assert not (tmp_path / "z.md").exists()


@pytest.mark.parametrize(("args", "message"), [
    ([], "nothing to measure"),
    (["--ntire22", "EMPTY"], "lacks team19_imdeception.pth"),
    (["--ntire23", "EMPTY"], "lacks team05_exnet.pth"),
])
def test_cli_refuses_to_run_without_weights(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path) if a == "EMPTY" else a for a in args]
    result = runner.invoke(app, ["bench", "zoo", *args, "--no-benchmarks", "--out", str(tmp_path / "z.md")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "z.md").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--sets", "train291"], "is a training set"),
    (["--sets", "set6"], "unknown set set6"),
    (["--sets-root", "EMPTY"], "imdsr data standard set5"),
])
def test_cli_refuses_sets_the_eval_refuses_before_measuring(tmp_path: Path, args: list[str],
                                                            message: str) -> None:
    w = _random_weights(tmp_path / "c4.safetensors", "c4", 0)
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    result = runner.invoke(app, ["bench", "zoo", "--weights", f"c4={w}", *args,
                                 "--out", str(tmp_path / "z.md")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "z.md").exists()


def test_cli_times_each_runtime_and_precision_without_the_other_parts(tmp_path: Path) -> None:
    """A real run: c4 (random init) exported and timed on ONNX Runtime f32 and OpenVINO f32 and
    bf16, no service, seams or benchmarks; the document and the JSON say what ran."""
    w = _random_weights(tmp_path / "c4.safetensors", "c4", 0)
    out, raw = tmp_path / "zoo.md", tmp_path / "zoo.json"
    result = runner.invoke(app, ["bench", "zoo", "--weights", f"c4={w}", "--repeats", "1",
                                 "--threads", "1", "--no-service", "--no-seams", "--no-benchmarks",
                                 "--out", str(out), "--json", str(raw)])
    assert result.exit_code == 0, result.output
    row = ZooReport.from_dict(json.loads(raw.read_text())).rows[0]
    assert set(row.model_ms) == {"onnxruntime f32", "openvino f32", "openvino bf16"}
    assert all(ms > 0 for ms in row.model_ms.values())
    assert row.ran_as["openvino f32"] == "f32" and row.ran_as["openvino bf16"] in ("bf16", "f32")
    assert row.bf16_levels is not None and 0 <= row.bf16_levels <= 255
    doc = out.read_text()
    assert "--no-service --no-seams --no-benchmarks" in doc and "`c4`" in doc
    assert "Not measured in this run." in doc and "## Tiling seams" not in doc
