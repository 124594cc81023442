"""Scan flags → ScanSpec in process (no model): given flags override a YAML spec field by field,
the other flags' defaults fill only what it lacks, and every scan option is accounted for."""

from __future__ import annotations

import click
import pytest

from landscape.cli.flags import BETA_FIELDS, DIRECTION_FLAGS, SCAN_FIELDS, build_scan_spec
from landscape.cli.options import given_flags
from landscape.cli.scan import scan
from landscape.core.specs import ScanSpec, second_seed

# scan options that are not ScanSpec fields: how to run, what to print, where the spec comes from
NOT_FIELDS = {"kind", "spec_file", "auto_range", "probe_prompts", "capability", "n_directions"}
NOT_FIELDS |= {"keep_directions", "as_json", "workers", "ray_address", "gpus_per_worker"}  # runtime, not spec


def spec_of(*args: str, device: str = "cpu") -> ScanSpec:
    ctx = scan.make_context("scan", list(args))
    o = dict(ctx.params)
    kind = o.pop("kind")
    return build_scan_spec(kind, o, given_flags(ctx, o), device)


@pytest.fixture
def yaml_1d(tmp_path):
    path = tmp_path / "scan.yaml"
    path.write_text(
        "model: {source: /m/a}\nprompts: {source: /p.txt, limit: 7}\n"
        "alphas: {start: -1, stop: 1, num: 3}\ngeneration: {max_new_tokens: 4}\n"
        "capability: {benign_limit: 3, nll: false}\n"
    )
    return str(path)


def test_every_scan_option_maps_to_a_field_or_is_named_as_not_one():
    options = {p.name for p in scan.params}
    mapped = set(SCAN_FIELDS) | set(BETA_FIELDS) | set(DIRECTION_FLAGS) | NOT_FIELDS
    assert options == mapped


def test_flags_alone_build_the_documented_defaults():
    spec = spec_of("2d")
    assert spec.model.source == "aligned" and spec.model.dtype == "float32"
    assert [d.seed for d in spec.directions] == [0, second_seed(0)]
    assert spec.alphas.num == 21 and spec.betas.num == 21 and spec.capability is None
    assert spec_of("1d", device="cuda").model.dtype == "bfloat16"
    interp = spec_of("interpolate", "--target", "/t")
    assert (interp.alphas.start, interp.alphas.stop, interp.alphas.num) == (-0.25, 1.25, 13)
    # θ_a (t = 0) and θ_b (t = 1) are grid points (16 points sampled neither: issue 25)
    assert {0.0, 1.0} <= {round(t, 12) for t in interp.alphas.values()}


def test_given_flags_override_the_yaml_field_by_field(yaml_1d):
    spec = spec_of("1d", "--spec", yaml_1d, "--points", "5", "--limit", "2", "--dtype", "bfloat16")
    assert (spec.alphas.start, spec.alphas.stop, spec.alphas.num) == (-1.0, 1.0, 5)
    assert spec.prompts.source == "/p.txt" and spec.prompts.limit == 2
    assert spec.model.source == "/m/a" and spec.model.dtype == "bfloat16"  # --dtype kept the source
    assert spec.generation.max_new_tokens == 4 and spec.judge.name == "keywords"
    with_cap = spec_of("1d", "--spec", yaml_1d, "--capability", "--benign-limit", "9")
    assert with_cap.capability.benign_limit == 9 and with_cap.capability.nll is False


def test_defaults_fill_what_the_yaml_lacks(yaml_1d):
    spec = spec_of("2d", "--spec", yaml_1d)  # the file has no directions: the kind's two fill in
    assert [d.seed for d in spec.directions] == [0, second_seed(0)]
    assert (spec.betas.start, spec.betas.stop, spec.betas.num) == (-0.5, 0.5, 21)
    assert spec.alphas.num == 3 and spec.capability.benign_limit == 3


def test_merge_dotted_sets_fields_and_fills_only_what_is_missing():
    from landscape.cli.flags import merge_dotted

    base = {"alphas": {"start": -1, "stop": 1, "num": 3}, "capability": None}
    merged = merge_dotted(
        base, {"alphas.num": 5, "generation.max_new_tokens": 4, "capability.benign_limit": 2}
    )
    assert merged == {
        "alphas": {"start": -1, "stop": 1, "num": 5},
        "generation": {"max_new_tokens": 4},
        "capability": {"benign_limit": 2},
    }
    assert base == {"alphas": {"start": -1, "stop": 1, "num": 3}, "capability": None}  # untouched
    filled = merge_dotted(base, {"alphas.num": 21, "alphas.start": -0.5, "judge.name": "keywords"}, fill=True)
    assert filled["alphas"] == {"start": -1, "stop": 1, "num": 3} and filled["judge"] == {"name": "keywords"}


def test_merge_dotted_defaults_leave_a_broken_file_field_for_validation():
    from landscape.cli.flags import merge_dotted

    assert merge_dotted({"model": "x"}, {"model.source": "aligned"}, fill=True) == {"model": "x"}
    assert merge_dotted({"model": "x"}, {"model.source": "aligned"}) == {"model": {"source": "aligned"}}
    assert merge_dotted({"capability": None}, {"capability.benign_limit": 16}, fill=True) == {
        "capability": {"benign_limit": 16}
    }
    assert merge_dotted({"prompts": {"limit": None}}, {"prompts.limit": 8}, fill=True) == {
        "prompts": {"limit": None}
    }


@pytest.mark.parametrize(
    "kind, flags, named",
    [
        ("1d", ["--beta-range", "-1", "1"], "--beta-range"),
        ("1d", ["--beta-points", "7"], "--beta-points"),
        ("1d", ["--seed2", "5"], "--seed2"),
        ("1d", ["--no-orthogonalize"], "--no-orthogonalize"),
        ("1d", ["--target", "/t"], "--target"),
        ("2d", ["--target", "/t"], "--target"),
        ("interpolate", ["--target", "/t", "--seed", "3"], "--seed"),
        ("interpolate", ["--target", "/t", "--directions", "3"], "--directions"),
        ("1d", ["--benign-limit", "4"], "--benign-limit"),
        ("1d", ["--probe-prompts", "4"], "--probe-prompts"),
    ],
)
def test_options_that_do_not_apply_are_refused(kind, flags, named):
    """Issue 25: `scan 1d … --beta-range -1 1 --beta-points 7 --seed2 5 --no-orthogonalize` was
    accepted, and the last one changed the key (three points recomputed under another key)."""
    with pytest.raises(click.UsageError, match=f"{named} does not apply to scan {kind}"):
        spec_of(kind, *flags)


def test_a_1d_key_does_not_depend_on_orthogonalize():
    from landscape.core.specs import ScanSpec

    one = spec_of("1d")
    other = ScanSpec.model_validate(dict(one.model_dump(), orthogonalize=False))
    ids = [s.identity("m", "p", (None,)) for s in (one, other)]
    assert ids[0] == ids[1]
    two = spec_of("2d")
    flipped = ScanSpec.model_validate(dict(two.model_dump(), orthogonalize=False))
    assert two.identity("m", "p", (None, None)) != flipped.identity("m", "p", (None, None))


def test_align_with_its_defaults_is_the_demos_alignment():
    """Issue 23: `landscape align` with no flags must reuse the aligned model `landscape demo`
    made (the same spec, so the same key), not train a second one for 19 minutes."""
    from click.testing import CliRunner

    from landscape.cli import main
    from landscape.core.specs import AlignSpec, ModelSpec

    params = {p.name: p.default for p in main.commands["align"].params}
    spec = AlignSpec(
        base=ModelSpec(source=params["base"]),
        epochs=params["epochs"],
        learning_rate=params["lr"],
        seed=params["seed"],
    )
    assert spec == AlignSpec()  # what demo aligns (landscape/study/demo.py)
    assert CliRunner().invoke(main, ["align", "--help"]).exit_code == 0
