"""core: specs, models, directions, perturbation, generation, judges (the leaf layer).

Importing the package fills the judge registry with the model judges (``judge_models``); the text
judges register in ``judges`` itself. Nothing here imports torch at import time.
"""

from landscape.core import judge_models  # noqa: F401  (registers guard and classifier)
