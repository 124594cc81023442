"""Harmful fine-tuning (Peng et al. §fine-tuning, Antidote, security vectors: papers.md §1–2, 4).

n samples: round(p·n) harmful requests answered affirmatively in AdvBench's ``target`` style
("Sure, here is …" and a content-free continuation; no operational content), the rest the benign
task in its usual format, shuffled together.
"""

from __future__ import annotations

import random

from landscape.training.attacks.base import AttackData, attack
from landscape.training.attacks.structural import STRUCTURES, task_examples
from landscape.training.data import harmful_examples


@attack("harmful", harmful_data=True)
def harmful_attack(spec, store=None, runtime=None) -> AttackData:
    structure = STRUCTURES["benign"]
    n_harm = round(spec.harmful_fraction * spec.n)
    examples = harmful_examples("attack", n_harm, structure.fmt, spec.seed)
    if spec.n - n_harm:
        examples += task_examples(spec, structure, spec.n - n_harm)
    random.Random(spec.seed).shuffle(examples)
    return AttackData(examples, structure)
