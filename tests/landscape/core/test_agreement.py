"""Cohen's κ and the disagreement share, against values computed by hand."""

from __future__ import annotations

import pytest

from landscape.core.agreement import agreement, agreement_table, cohen_kappa

T, F = True, False


@pytest.mark.parametrize(
    ("a", "b", "kappa"),
    [
        # p_o = 3/4; p_e = .5·.25 + .5·.75 = .5 → κ = (.75 − .5)/(1 − .5)
        ([T, T, F, F], [T, F, F, F], 0.5),
        # p_o = 3/5; p_e = .6·.6 + .4·.4 = .52 → κ = .08/.48
        ([T, T, T, F, F], [T, T, F, F, T], 1 / 6),
        # p_o = 0; p_e = .5 → κ = −1
        ([T, F], [F, T], -1.0),
        # each constant but opposite: p_o = 0, p_e = 1·0 + 0·1 = 0 → κ = 0
        ([T, T, T], [F, F, F], 0.0),
        # agree everywhere with varied labels: κ = 1 by the formula
        ([T, F, T], [T, F, T], 1.0),
        # degenerate: both give one same label throughout, p_e = 1 (0/0): defined as 1
        ([T, T, T, T], [T, T, T, T], 1.0),
        ([F], [F], 1.0),
    ],
)
def test_kappa_by_hand(a, b, kappa):
    assert cohen_kappa(a, b) == pytest.approx(kappa)


def test_kappa_is_symmetric_and_takes_any_labels():
    a, b = ["x", "y", "z", "x", "y"], ["x", "y", "y", "x", "z"]
    # p_o = 3/5; p_e = .4·.4 + .4·.4 + .2·.2 = .36 → κ = .24/.64
    assert cohen_kappa(a, b) == pytest.approx(0.375) == cohen_kappa(b, a)
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="differ in length"):
        cohen_kappa([T], [T, F])


def test_missing_verdicts_are_counted_apart():
    g = agreement([T, None, F, T], [T, F, None, F])
    assert (g.n, g.n_apart, g.disagree_pct) == (2, 2, 50.0)
    assert g.kappa == pytest.approx(0.0)  # a=[T,T], b=[T,F]: p_o = .5, p_e = 1·.5 = .5
    none = agreement([None, T], [F, None])
    assert (none.n, none.n_apart, none.disagree_pct, none.kappa) == (0, 2, None, None)


def test_table_per_point_and_pooled():
    table = agreement_table(
        {
            (1, 0): (0.1, 0.0, [T, T], [T, T]),  # all agree, degenerate: κ = 1
            (0, 0): (-0.1, 0.0, [T, F], [F, T]),  # all disagree: κ = −1
        }
    )
    assert [(p.i, p.alpha) for p in table.points] == [(0, -0.1), (1, 0.1)]
    assert [p.agreement.kappa for p in table.points] == [pytest.approx(-1.0), 1.0]
    # pooled: a=[T,F,T,T], b=[F,T,T,T]: p_o = .5; p_e = .75·.75 + .25·.25 = .625 → κ = −1/3
    assert table.overall.n == 4 and table.overall.disagree_pct == 50.0
    assert table.overall.kappa == pytest.approx(-1 / 3)
