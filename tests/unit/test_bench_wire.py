"""The wire-format benchmark: its codecs."""

from __future__ import annotations

import numpy as np

from bench.wire import FORMATS, decode, encode, sample_window, wire_model_name


def test_8bit_sources_survive_every_wire_format() -> None:
    img8 = sample_window(2, 32)
    assert img8.dtype == np.uint8 and img8.shape == (2, 3, 32, 32)
    for wire in FORMATS:
        x = encode(img8, wire)
        assert x.dtype.name == {"FP32": "float32", "FP16": "float16", "UINT8": "uint8"}[wire]
        # Round trip back to 8 bits is exact: the input side loses nothing for 8-bit images.
        assert np.array_equal(decode(x), img8)


def test_model_names_keep_fp32_on_the_contract_name() -> None:
    assert wire_model_name("c4", "FP32") == "imdeception_c4"
    assert wire_model_name("c4", "UINT8") == "imdeception_c4_wire_uint8"
