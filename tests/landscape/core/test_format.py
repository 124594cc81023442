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
