"""The wire-format benchmark: its codecs, and one tiny end-to-end run through a real Triton."""

from __future__ import annotations

import numpy as np
import pytest

from bench.wire import FORMATS, decode, encode, sample_tile, wire_model_name


def test_8bit_sources_survive_every_wire_format() -> None:
    img8 = sample_tile(2, 32)
    assert img8.dtype == np.uint8 and img8.shape == (2, 3, 32, 32)
    for wire in FORMATS:
        x = encode(img8, wire)
        assert x.dtype.name == {"FP32": "float32", "FP16": "float16", "UINT8": "uint8"}[wire]
        # Round trip back to 8 bits is exact: the input side loses nothing for 8-bit images.
        assert np.array_equal(decode(x), img8)


def test_model_names_keep_fp32_on_the_contract_name() -> None:
    assert wire_model_name("c4", "FP32") == "imdeception_c4"
    assert wire_model_name("c4", "UINT8") == "imdeception_c4_wire_uint8"


@pytest.mark.triton
@pytest.mark.timeout(180)
def test_bench_wire_runs_end_to_end(variant_weights) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    res = CliRunner().invoke(app, ["bench", "wire", "--variant", "c4", "--weights",
                                   str(variant_weights["c4"]), "--window", "32", "--iters", "2",
                                   "--threads", "1"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()
            if line.split() and line.split()[0] in FORMATS}
    assert set(rows) == set(FORMATS)
    # bytes column: FP16 half of FP32, UINT8 a quarter.
    assert [float(rows[w][3]) for w in FORMATS] == [1.0, 0.5, 0.25]
    assert float(rows["UINT8"][-1]) <= 0.5 + 1e-3  # rounding to 8 bits, nothing worse
