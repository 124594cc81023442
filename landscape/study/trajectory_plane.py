"""A trajectory stage of a study: checkpoints → plane → 2D landscape → stored path (I/O around
``trajectory.py``'s maths).

For each listed run the path starts at θ₀ (epoch 0) and visits every per-epoch checkpoint. Each
point carries its plane coordinates, its residual share off the plane, and its *measured* ASR (the
checkpoint itself evaluated, not read off the surface), so a path that leaves the plane is not
mistaken for one that stays in the basin.
"""

from __future__ import annotations

from cache import Store
from landscape.core.artifacts import Artifact, cached_artifact
from landscape.core.provenance import provenance
from landscape.core.specs import (
    AxisSpec,
    DirectionSpec,
    GenerationSpec,
    ModelSpec,
    PromptSpec,
    ScanSpec,
    spec_hash,
)


def _params(model: ModelSpec, store: Store, device: str) -> dict:
    from landscape.core.models import load_model

    lm = load_model(model, device, store)
    return {n: p.detach().float().cpu() for n, p in lm.model.named_parameters()}


def _pca_file(deltas: list[dict], fps: list[str], store: Store) -> Artifact:
    """The top-2 PCA directions as stored safetensors files ``pc1``/``pc2`` (keyed by the checkpoints)."""
    from safetensors.torch import save_file

    from landscape.engine.trajectory import pca_directions

    def build(staging) -> dict:
        dirs, ratio = pca_directions(deltas)
        for k, d in enumerate(dirs):
            save_file({n: t.contiguous() for n, t in d.items()}, str(staging / f"pc{k + 1}.safetensors"))
        return {"explained_variance": ratio.tolist(), "checkpoints": fps}

    return cached_artifact(store, "directions", spec_hash("pca-directions", {"checkpoints": fps}), build)


def draw_trajectory(
    traj, theta0: ModelSpec, finetunes: dict, ev, store: Store, runtime, session, log
) -> dict:
    """Project the runs' checkpoints onto ``traj.plane``, scan the plane, store and return the paths."""
    from landscape.core.directions import StoredDirection
    from landscape.core.judges import judge_fingerprint, judge_model_identity
    from landscape.core.models import model_fingerprint
    from landscape.engine.scan import scan_grid
    from landscape.engine.trajectory import covering_axis, model_delta, plane_gram, project
    from landscape.training.finetune import checkpoint_model

    record_key = "trajectory:" + spec_hash(
        "trajectory",
        {
            "trajectory": traj.model_dump(mode="json"),
            "theta0": model_fingerprint(theta0, store),
            "dtype": theta0.dtype,
            "finetunes": [finetunes[r].key for r in traj.runs],
            "evaluation": ev.model_dump(mode="json"),
            # the record holds ASRs: a new judge rule (or judge model) redraws it
            "judge": judge_fingerprint(ev.judge_spec.name, judge_model_identity(ev.judge_spec)),
            "checkpoint_prompts": ev.harmful_limit,
        },
    )
    done = store.get_json(record_key)
    if done is not None:
        return done
    device = runtime.device
    theta0_params = _params(theta0, store, device)
    ckpts = {
        run: [
            checkpoint_model(theta0, finetunes[run], e) for e in range(1, len(finetunes[run].checkpoints) + 1)
        ]
        for run in traj.runs
    }
    deltas = {
        run: [model_delta(_params(m, store, device), theta0_params) for m in ms] for run, ms in ckpts.items()
    }
    del theta0_params
    common = dict(
        model=theta0,
        prompts=PromptSpec(limit=traj.prompts),
        generation=GenerationSpec(max_new_tokens=ev.max_new_tokens),
        judge=ev.judge_spec,
    )
    explained = None
    if traj.plane == "interpolation":
        final = ckpts[traj.runs[0]][-1]
        dirs_spec = (DirectionSpec(kind="interpolation", target=final), DirectionSpec(seed=traj.seed))
        probe = ScanSpec(directions=dirs_spec, alphas=AxisSpec(), betas=AxisSpec(), **common)
        _, (d1, d2), _ = session.directions(probe)
    else:
        fps = [model_fingerprint(m, store) for ms in ckpts.values() for m in ms]
        pca = _pca_file([d for ds in deltas.values() for d in ds], fps, store)
        explained = pca.record["explained_variance"]
        dirs_spec = tuple(
            DirectionSpec(kind="file", path=f"{pca.path}/pc{k}.safetensors", norm="none") for k in (1, 2)
        )
        d1, d2 = (StoredDirection(d.path) for d in dirs_spec)
    g = plane_gram(d1, d2)
    paths = {}
    for run, ds in deltas.items():
        path = [{"epoch": 0, "alpha": 0.0, "beta": 0.0, "residual": 0.0}]
        for e, delta in enumerate(ds, 1):
            a, b, r = project(delta, d1, d2, g)
            path.append({"epoch": e, "alpha": a, "beta": b, "residual": r})
        paths[run] = path
    alphas = [p["alpha"] for ps in paths.values() for p in ps]
    betas = [p["beta"] for ps in paths.values() for p in ps]
    if traj.plane == "interpolation":
        a_axis = covering_axis(alphas, traj.margin, traj.grid, include=(0.0, 1.0))
        b_lim = max(ev.visage_range, *(abs(b) for b in betas))
        b_axis = (-b_lim, b_lim, traj.grid)
    else:
        a_axis = covering_axis(alphas, traj.margin, traj.grid)
        b_axis = covering_axis(betas, traj.margin, traj.grid)
    spec = ScanSpec(
        directions=dirs_spec,
        alphas=AxisSpec(start=a_axis[0], stop=a_axis[1], num=a_axis[2]),
        betas=AxisSpec(start=b_axis[0], stop=b_axis[1], num=b_axis[2]),
        orthogonalize=traj.plane == "interpolation",
        **common,
    )
    log(f"trajectory plane ({traj.plane}): {traj.grid}×{traj.grid} landscape")
    res = scan_grid(spec, store, runtime, log=log, session=session)
    quiet = runtime.model_copy(update={"progress": False})
    # Measured ASR of every checkpoint (θ₀ is epoch 0) on the study's harmful_limit prompts, like the
    # table (the grid's few prompts per point would leave it ±35 points at 8). The spec is the
    # table's own default-format one (over-refusal included), so θ₀'s and an undefended final
    # checkpoint's scans are the table's, served from the store, not run again.
    for run, path in paths.items():
        for p, model in zip(path, [theta0, *ckpts[run]], strict=True):
            ev_res = scan_grid(
                ev.point_spec(model, ev.harmful_limit, capability=True),
                store,
                quiet,
                log=log,
                session=session,
            )
            p["asr_pct"] = store.point(ev_res.key, 0, 0)["asr_pct"]
    out = {
        "plane": traj.plane,
        "runs": list(traj.runs),
        "scan_key": res.key,
        "paths": paths,
        "explained_variance": explained,
        "summary": res.summary,
        **provenance(),
    }
    store.put_json(record_key, out)
    return out
