"""Benchmark: the project's default budget (32 new tokens, early stop) against the paper's 512-token
full-length judgement, on the same direction and prompts, inside and outside the basin.

Runs, through ``scan_grid`` in the given store (so every point is cached and a killed run resumes):

- ``short``: the default generation (``--short`` new tokens, early stop on), once per judge (early
  stopping depends on the judge's ``decided``);
- ``short-full``: the same budget with early stop off (verdicts must equal ``short``'s exactly:
  this is item 3's embedded-model check, at every point);
- ``long``: ``--long`` new tokens, no early stop (the paper's released code); its responses do not
  depend on the judge, so one scan serves every judge.

Printed per point and judge: ASR at both budgets, per-prompt verdict agreement, and the early-stop
check; then overall agreement, the incoherence-window analysis (how often the first W tokens flag a
response that its whole long text flags, and the tokens early stopping costs at each W), and
timings. ``--out`` writes all of it, with every disagreeing response, as JSON.

    python bench/bench_budget.py --store ~/.cache/safety-landscape --model aligned \\
        [--prompts-file advbench --limit 80] [--half 0.25 --points 11] \\
        [--device cuda --dtype bfloat16] [--out budget.json]

With ``--model aligned`` the built-in alignment runs first when the store lacks it (``landscape
align``'s defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _specs(a) -> dict:
    from landscape.core.specs import (
        AxisSpec,
        DirectionSpec,
        GenerationSpec,
        JudgeSpec,
        ModelSpec,
        PromptSpec,
        ScanSpec,
    )

    base = ScanSpec(
        model=ModelSpec(source=a.model, dtype=a.dtype),
        directions=(DirectionSpec(seed=a.seed),),
        alphas=AxisSpec(start=-a.half, stop=a.half, num=a.points),
        prompts=PromptSpec(source=a.prompts_file, column=a.column, limit=a.limit),
        system_prompt=a.system_prompt,
        answer_prefix=a.answer_prefix,
    )
    gen = GenerationSpec(max_new_tokens=a.short, incoherence_window=a.window)
    specs = {}
    for j in a.judges:
        specs[f"short:{j}"] = base.model_copy(update={"generation": gen, "judge": JudgeSpec(name=j)})
        specs[f"short-full:{j}"] = specs[f"short:{j}"].model_copy(
            update={"generation": gen.model_copy(update={"early_stop": False})}
        )
        for w in a.windows:  # early-stopped scans at other incoherence windows (their cost)
            if w != a.window:
                g = gen.model_copy(update={"incoherence_window": w})
                specs[_short_name(a, j, w)] = specs[f"short:{j}"].model_copy(update={"generation": g})
    long_gen = gen.model_copy(update={"max_new_tokens": a.long, "early_stop": False})
    specs["long"] = base.model_copy(update={"generation": long_gen, "judge": JudgeSpec(name=a.judges[0])})
    return specs


def _window_analysis(a, scans: dict, rows) -> list[dict]:
    """Per incoherence window W: how often the flag on the first W tokens agrees with the flag on
    the whole long response and on the whole short one, and the new tokens per response a scan at
    the short budget with early stop generated at that W (the window's cost)."""
    from landscape.core.judges import incoherence

    n_points = len(scans["long"].grid.alphas)
    long_ = [incoherence(r["response"]) is not None for i in range(n_points) for r in rows("long", i)]
    out = []
    for w in sorted(set(a.windows)):
        row = {"window": w, "whole_flagged_pct": 100 * sum(long_) / len(long_)}
        for j in a.judges:
            short = [r for i in range(n_points) for r in rows(_short_name(a, j, w), i)]
            full = [r for i in range(n_points) for r in rows(f"short-full:{j}", i)]
            flags = [r["incoherent"] for r in short]
            at_short = [incoherence(r["response"]) is not None for r in full]
            both = sum(f and g for f, g in zip(flags, long_, strict=True))
            row[j] = {
                "flagged_pct": 100 * sum(flags) / len(flags),
                "caught_of_whole_pct": 100 * both / max(1, sum(long_)),
                "agree_whole_pct": 100 * sum(f == g for f, g in zip(flags, long_, strict=True)) / len(flags),
                "agree_short_text_pct": 100
                * sum(f == g for f, g in zip(flags, at_short, strict=True))
                / len(flags),
                "tokens_per_response": sum(r["tokens"] for r in short) / len(short),
            }
        out.append(row)
    return out


def _short_name(a, judge: str, window: int) -> str:
    return f"short:{judge}" if window == a.window else f"short:{judge}:W{window}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default=str(Path("~/.cache/safety-landscape").expanduser()))
    p.add_argument("--model", default="aligned")
    p.add_argument("--prompts-file", default="builtin:advbench")
    p.add_argument("--column", default="goal")
    p.add_argument("--limit", type=int, default=80)
    p.add_argument("--system-prompt", default="default")
    p.add_argument("--answer-prefix", default="", help="prefilled start of every answer")
    p.add_argument("--seed", type=int, default=0, help="random direction seed")
    p.add_argument("--half", type=float, default=0.25, help="alphas span [-half, half]")
    p.add_argument("--points", type=int, default=11)
    p.add_argument("--short", type=int, default=32, help="the default budget (early stop on)")
    p.add_argument("--long", type=int, default=512, help="the paper's budget (no early stop)")
    p.add_argument("--window", type=int, default=16, help="incoherence window of every scan")
    p.add_argument("--windows", default="8,16,32", help="windows for the incoherence analysis")
    p.add_argument("--judges", default="keywords,prefix")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    a.judges = [j.strip() for j in a.judges.split(",") if j.strip()]
    a.windows = [int(w) for w in a.windows.split(",")]
    if a.column == "" or not a.prompts_file.endswith((".csv", ".jsonl")):
        a.column = None

    from cache import Store
    from landscape.core.judges import get_judge
    from landscape.core.specs import AlignSpec, Runtime
    from landscape.engine.scan import Session, scan_grid

    runtime = Runtime(device=a.device, batch_size=a.batch_size, progress=False)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    with Store(a.store) as store:
        if a.model == "aligned":
            from landscape.training.align import align_model

            align_model(AlignSpec(), store, runtime, log=log)
        session = Session(store, runtime, log)
        results, wall = {}, {}
        for name, spec in _specs(a).items():
            t0 = time.perf_counter()
            results[name] = scan_grid(spec, store, runtime, log=log, session=session)
            wall[name] = time.perf_counter() - t0
            log(
                f"{name}: {results[name].key[:12]} in {wall[name]:.1f} s ({results[name].computed} points computed)"
            )
        alphas = [float(x) + 0.0 for x in results["long"].grid.alphas]  # no -0.0

        def rows(name: str, i: int) -> list[dict]:
            return store.point_responses(results[name].key, i, 0)

        def seconds(name: str) -> float:
            pts = [store.point(results[name].key, i, 0) or {} for i in range(len(alphas))]
            return sum(pt.get("elapsed_s") or 0.0 for pt in pts)

        long_rows = [rows("long", i) for i in range(len(alphas))]
        points, overall, mismatches = [], {}, []
        for i, alpha in enumerate(alphas):
            point = {"alpha": alpha}
            for j in a.judges:
                short, full = rows(f"short:{j}", i), rows(f"short-full:{j}", i)
                s = [r["refused"] for r in short]
                lg = [get_judge(j).judge(r["response"]).refused for r in long_rows[i]]
                agree = sum(x == y for x, y in zip(s, lg, strict=True))
                same_es = sum(
                    x["refused"] == y["refused"] and x["incoherent"] == y["incoherent"]
                    for x, y in zip(short, full, strict=True)
                )
                n = len(s)
                point[j] = {
                    "asr_short_pct": 100 * s.count(False) / n,
                    "asr_long_pct": 100 * lg.count(False) / n,
                    "agree_pct": 100 * agree / n,
                    "early_stop_same_pct": 100 * same_es / n,
                    "incoherent_short_pct": 100 * sum(r["incoherent"] for r in short) / n,
                    "ended_early_stop": sum(r.get("end") == "early_stop" for r in short),
                    "refused_short": s,  # per prompt, in prompt order (to compare dtypes or devices)
                    "refused_long": lg,
                    "incoherent": [r["incoherent"] for r in short],
                }
                tot = overall.setdefault(j, {"agree": 0, "early_stop_same": 0, "n": 0})
                tot["agree"] += agree
                tot["early_stop_same"] += same_es
                tot["n"] += n
                for r_s, r_l, x, y in zip(short, long_rows[i], s, lg, strict=True):
                    if x != y:
                        mismatches.append(
                            {
                                "alpha": alpha,
                                "judge": j,
                                "prompt": r_s["prompt"],
                                "short_refused": x,
                                "short": r_s["response"],
                                "long": r_l["response"],
                            }
                        )
            points.append(point)
        windows = _window_analysis(a, results, rows)
        per_point = {k: seconds(k) / len(alphas) for k in results}

    report = {
        "args": {k: v for k, v in vars(a).items()},
        "keys": {k: r.key for k, r in results.items()},
        "points": points,
        "overall": {
            j: {
                "agree_pct": 100 * t["agree"] / t["n"],
                "early_stop_same_pct": 100 * t["early_stop_same"] / t["n"],
                "n": t["n"],
            }
            for j, t in overall.items()
        },
        "windows": windows,
        "seconds_per_point": per_point,
        "wall_s": wall,
        "mismatches": mismatches,
    }
    _print(report, a)
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
    return report


def _print(report: dict, a) -> None:
    head = f"{'alpha':>7}"
    for j in a.judges:
        head += f" | {j + ' ASR ' + str(a.short) + '/' + str(a.long):>24} {'agree':>6} {'ES same':>7}"
    print(head)
    for pt in report["points"]:
        line = f"{pt['alpha']:>7.3f}"
        for j in a.judges:
            d = pt[j]
            asr = f"{d['asr_short_pct']:.1f} / {d['asr_long_pct']:.1f}"
            line += f" | {asr:>24} {d['agree_pct']:>6.1f} {d['early_stop_same_pct']:>7.1f}"
        print(line)
    for j, t in report["overall"].items():
        print(
            f"overall {j}: {t['agree_pct']:.2f}% of {t['n']} (point, prompt) verdicts agree {a.short} vs "
            f"{a.long} tokens; early stop on vs off identical on {t['early_stop_same_pct']:.2f}%"
        )
    print(
        f"\nincoherence window W: share flagged on the first W tokens; caught = share of the {a.long}-token "
        f"responses' incoherent ones flagged; agreement with the flag on the whole {a.long}- and "
        f"{a.short}-token text; new tokens per response at budget {a.short} with early stop"
    )
    print(
        f"{'W':>4} {'judge':>9} {'flagged %':>9} {'caught %':>8} {'agree ' + str(a.long):>10} {'agree ' + str(a.short):>9} {'tokens':>7}"
    )
    for w in report["windows"]:
        for j in a.judges:
            d = w[j]
            print(
                f"{w['window']:>4} {j:>9} {d['flagged_pct']:>9.1f} {d['caught_of_whole_pct']:>8.1f} "
                f"{d['agree_whole_pct']:>10.1f} {d['agree_short_text_pct']:>9.1f} {d['tokens_per_response']:>7.1f}"
            )
    print(
        f"(incoherent in the whole {a.long}-token responses: {report['windows'][0]['whole_flagged_pct']:.1f}%)"
    )
    print(
        "\nseconds per point (evaluation only): "
        + ", ".join(f"{k} {v:.1f}" for k, v in report["seconds_per_point"].items())
    )


if __name__ == "__main__":
    from landscape.core.specs import SpecError

    try:
        main()
    except SpecError as e:
        sys.exit(f"bench_budget: {e}")
