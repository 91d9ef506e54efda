"""Tuning: versioned datasets (this package's ``datasets`` module); training recipes,
evaluation and export build on them.

For a training recipe, the one call it needs::

    rows = services.datasets.load_messages("acme-faq@2", "train")       # list of messages lists
    val = services.datasets.load_messages("acme-faq@2", "validation")
    version = services.datasets.get("acme-faq@2")                        # digest, split, stats: lineage
"""

from __future__ import annotations
