"""The one number and the one duration formatter every report uses."""

from __future__ import annotations

import numpy as np

from landscape.core.format import format_duration, format_number


def test_format_number_says_dash_where_there_is_no_number():
    assert format_number(12.345) == "12.3" and format_number(12.345, 2) == "12.35"
    assert format_number(7, 0) == "7" and format_number(np.float32(0.5), 2) == "0.50"
    assert format_number(None) == format_number(float("nan")) == format_number(np.inf) == "—"


def test_format_duration():
    assert format_duration(65) == "1m05s" and format_duration(3 * 3600 + 125) == "3h02m"
    assert format_duration(float("nan")) == "?"


def test_axis_coordinates_share_their_digits_and_never_print_a_signed_zero():
    """Issue 25: `agree` printed -0.0664 and 0 on one axis; tables printed −0.000."""
    import numpy as np

    from landscape.core.format import axis_decimals, format_coordinate, plural

    auto = np.linspace(-0.0664, 0.0664, 9)
    nd = axis_decimals(auto)
    texts = [format_coordinate(a, nd) for a in auto]
    assert texts[0] == "-0.0664" and texts[4] == "0.0000" and len({len(t.lstrip("-")) for t in texts}) == 1
    assert axis_decimals(np.linspace(-0.25, 1.25, 13)) == 3  # 0.125 written exactly
    assert axis_decimals(np.linspace(-0.5, 0.5, 21)) == 2
    assert [format_coordinate(a, 3) for a in (-1e-12, -0.0004)] == ["0.000", "0.000"]
    assert plural(1, "point") == "1 point" and plural(3, "point") == "3 points"


def test_a_tables_asr_has_the_digits_of_show_point():
    from landscape.study.report import curve_text

    class Grid:
        alphas = [-0.1, 0.0, 0.1]
        betas = None
        values = {"asr_pct": [93.75, 0.0, 100.0], "n_prompts": [16, 16, 16]}
        shape = (3,)

    import numpy as np

    Grid.values = {k: np.asarray(v, dtype=float) for k, v in Grid.values.items()}
    text = curve_text(Grid)
    assert "  93.8  " in text and " 94 " not in text


def test_models_are_named_by_what_they_are_never_by_a_64_hex_path():
    """Issue 23: `list`, captions and legends showed b46521b07fe78754ba9cc190dc4ccb6481d4… for the
    demo's aligned model."""
    from landscape.core.format import model_name, source_name

    key, run = "b4" * 32, "87" * 32
    store = "/home/me/.cache/safety-landscape/artifacts"
    assert source_name(f"{store}/models/{key}") == "aligned b4b4b4"
    assert source_name(f"{store}/finetunes/{run}/epoch_3/") == "fine-tuned 878787 epoch 3"
    assert source_name("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert source_name("/models/llama-2-7b-chat") == "llama-2-7b-chat"
    name = model_name({"source": f"{store}/models/{key}", "adapter": f"{store}/finetunes/{run}/epoch_3"})
    assert name == "aligned b4b4b4 + fine-tuned 878787 epoch 3"
    assert not any(len(w) > 20 for w in name.split())
