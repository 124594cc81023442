"""``landscape align``: the built-in safety alignment, then (by default) ASR before and after."""

from __future__ import annotations

import click

from landscape.cli.options import Ctx, old_spelling, renamed
from landscape.core.specs import AlignSpec, ModelSpec


@click.command()
@click.option(
    "--epochs",
    default=AlignSpec().epochs,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Passes over the alignment data.",
)
@click.option("--lr", default=AlignSpec().learning_rate, show_default=True, type=float, help="Learning rate.")
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the training run (data order, initialisation)."
)
@click.option("--model", "base", default="smollm2-135m-instruct", show_default=True, help="Model to align.")
@click.option("--eval/--no-eval", "do_eval", default=True, help="Measure ASR and over-refusal after.")
@click.option(
    "--prompts",
    "eval_prompts",
    default="builtin:harmful",
    show_default=True,
    help="Harmful set for the check: builtin:harmful, advbench or a .csv/.jsonl/.txt file.",
)
@click.option(
    "--limit",
    "eval_limit",
    default=80,
    show_default=True,
    type=click.IntRange(1),
    help="First N prompts of each check set (harmful and benign).",
)
@old_spelling("--base", "--model")
@old_spelling("--eval-prompts", "--prompts")
@old_spelling("--eval-limit", "--limit", type=click.IntRange(1))
@click.pass_context
def align(
    ctx, epochs, lr, seed, base, do_eval, eval_prompts, eval_limit, old_base, old_eval_prompts, old_eval_limit
):
    """Safety-align a model by SFT on built-in refusals + self-distilled benign answers."""
    base = renamed(base, old_base, "--base", "--model")
    eval_prompts = renamed(eval_prompts, old_eval_prompts, "--eval-prompts", "--prompts")
    eval_limit = renamed(eval_limit, old_eval_limit, "--eval-limit", "--limit")
    from landscape.study.report import evaluate_models
    from landscape.training.align import align_model

    c: Ctx = ctx.obj
    spec = AlignSpec(base=ModelSpec(source=base), epochs=epochs, learning_rate=lr, seed=seed)
    rec = align_model(spec, c.store, c.runtime(), c.log)
    how = "from the store" if rec.cached else f"in {rec.elapsed_s:.0f} s"
    click.echo(f"aligned model {rec.key[:12]} ({how}): {rec.path}")
    if do_eval:
        models = [base, rec.path]
        click.echo(
            evaluate_models(
                c.store, c.runtime(), c.log, models, eval_prompts, eval_limit, benign_limit=eval_limit
            )
        )
