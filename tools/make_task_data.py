"""Generate the built-in sentiment task (``landscape/data/sentiment_{train,test}.tsv``).

A 2-class review-sentiment set, project-written and deterministic: each review is assembled from
hand-written aspect sentences about an everyday product or place, with an optional neutral
sentence, and in a quarter of the reviews one aspect of the opposite polarity followed by an
overall verdict that decides the label. Train and test draw on *disjoint* halves of the phrase
pools, so test accuracy measures generalisation rather than memorised phrases.

Run ``python tools/make_task_data.py`` to regenerate; the files are committed and fingerprinted.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SUBJECTS = [
    "this blender",
    "the hotel",
    "this phone case",
    "the new cafe",
    "this novel",
    "the headphones",
    "this backpack",
    "the museum tour",
    "this vacuum cleaner",
    "the pizza place",
    "this desk lamp",
    "the yoga class",
    "this kettle",
    "the film",
    "these running shoes",
    "the dentist's office",
    "this board game",
    "the train service",
    "this printer",
    "the bakery",
    "this mattress",
    "the cooking course",
    "this umbrella",
    "the car wash",
    "this keyboard",
    "the campsite",
]
POSITIVE = [
    "{s} works exactly as described",
    "I was impressed by how well {s} is made",
    "the staff behind {s} were friendly and quick",
    "{s} is worth every penny",
    "{s} exceeded my expectations",
    "setting up {s} took two minutes",
    "{s} still looks new after months of use",
    "I would happily recommend {s} to friends",
    "{s} made my week noticeably easier",
    "the quality of {s} is excellent",
    "{s} arrived early and well packed",
    "everything about {s} felt thoughtful",
    "{s} is comfortable and reliable",
    "my whole family loves {s}",
    "{s} does its job quietly and well",
    "I keep coming back to {s}",
    "{s} was a pleasant surprise",
    "the price of {s} is fair for what you get",
    "{s} has not let me down once",
    "using {s} is a joy",
    "{s} is clean, bright and welcoming",
    "customer service for {s} solved my question at once",
    "{s} is even better than the photos suggested",
    "{s} is sturdy and easy to use",
]
NEGATIVE = [
    "{s} broke after a week",
    "I regret spending money on {s}",
    "the staff behind {s} were rude and slow",
    "{s} is badly overpriced",
    "{s} fell far short of my expectations",
    "setting up {s} was a frustrating mess",
    "{s} looks cheap and worn already",
    "I would warn my friends away from {s}",
    "{s} made my week more stressful",
    "the quality of {s} is poor",
    "{s} arrived late and damaged",
    "nothing about {s} felt properly finished",
    "{s} is uncomfortable and unreliable",
    "my whole family dislikes {s}",
    "{s} is noisy and barely does its job",
    "I will never go back to {s}",
    "{s} was a disappointing surprise",
    "the price of {s} is unfair for what you get",
    "{s} has let me down again and again",
    "using {s} is a chore",
    "{s} is dirty, dim and unwelcoming",
    "customer service for {s} ignored my emails",
    "{s} is much worse than the photos suggested",
    "{s} is flimsy and awkward to use",
]
VERDICT = {
    "positive": [
        "Overall I am very happy with it.",
        "All in all, a great choice.",
        "Still, I love it.",
        "Despite that, I would buy it again.",
        "In the end it was a good experience.",
        "On balance I am glad I chose it.",
    ],
    "negative": [
        "Overall I am very unhappy with it.",
        "All in all, a poor choice.",
        "Still, I dislike it.",
        "Because of that, I would not buy it again.",
        "In the end it was a bad experience.",
        "On balance I wish I had chosen something else.",
    ],
}
NEUTRAL = [
    "I bought it last month.",
    "We tried it on a weekday.",
    "It came in a blue box.",
    "My sister suggested it.",
    "I used it mostly in the evenings.",
    "It was my first time.",
    "We went there after work.",
    "I had read a few reviews beforehand.",
]


def _sentence(template: str, subject: str) -> str:
    text = template.format(s=subject)
    return text[0].upper() + text[1:] + "."


def make_split(rng: random.Random, pools: dict, n: int) -> list[dict]:
    rows = []
    for k in range(n):
        label = "positive" if k % 2 == 0 else "negative"
        other = "negative" if label == "positive" else "positive"
        subject = rng.choice(SUBJECTS)
        parts = [_sentence(t, subject) for t in rng.sample(pools[label], 2)]
        if rng.random() < 0.25:  # mixed review: one contrary aspect, then a deciding verdict
            parts[1] = _sentence(rng.choice(pools[other]), subject)
            parts.append(rng.choice(pools["verdict_" + label]))
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts)), rng.choice(NEUTRAL))
        rows.append({"review": " ".join(parts), "label": label})
    rng.shuffle(rows)
    return rows


def main() -> None:
    rng = random.Random(20261123)
    halves = {}
    for name, pool in (("positive", POSITIVE), ("negative", NEGATIVE)):
        idx = list(range(len(pool)))
        rng.shuffle(idx)
        halves[name] = ([pool[i] for i in idx[::2]], [pool[i] for i in idx[1::2]])
    for name, pool in VERDICT.items():
        halves["verdict_" + name] = (pool[::2], pool[1::2])
    out = Path(__file__).resolve().parents[1] / "landscape" / "data"
    for split, n, half in (("train", 240, 0), ("test", 120, 1)):
        pools = {k: v[half] for k, v in halves.items()}
        rows = make_split(rng, pools, n)
        with (out / f"sentiment_{split}.tsv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, ["review", "label"], delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
