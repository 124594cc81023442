"""Safety Landscape: how fragile is a language model's safety alignment?

Kept light on purpose: importing ``landscape`` pulls in no torch, so the dashboard can use the pure
modules (``specs``, ``grid``, ``visage``, ``judges``, ``prompts``).
"""

__version__ = "0.1.0"
