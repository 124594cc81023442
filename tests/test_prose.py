"""User-facing text says "defence(s)" (British, as the prose does); identifiers, the package
``training.defenses`` and the ``defenses`` field of study files and records keep their spelling."""

from __future__ import annotations

import ast
import re

from .conftest import ROOT

# "defense(s)" as a word of prose: not part of a dotted/path name, a call or a backquoted identifier.
AMERICAN = re.compile(r"(?<![\w.`/])[Dd]efenses?\b(?![\w/.`(])")


def test_user_facing_strings_spell_defence_the_british_way():
    found = []
    for root in ("landscape", "dashboard", "cache"):
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and not text.isidentifier() and AMERICAN.search(text):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:80]!r}")
    assert not found, "\n".join(found)
