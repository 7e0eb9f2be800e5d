"""The fixed, seeded sample of a suite's items that a cheaper search scores candidates on (``search.eval_items``).

Pure. The same (size, items, seed) always picks the same items, in the suite's own order, so the reference and
every candidate are compared on one sample; a harness suite samples its pooled (task, document) pairs.
"""

from __future__ import annotations

import random


def chosen(size: int, items: int, seed: int) -> list[int]:
    """Indices of ``items`` of ``size`` items (all of them where there are fewer), sorted."""
    if items >= size:
        return list(range(size))
    return sorted(random.Random(seed).sample(range(size), items))


def chosen_documents(sizes: dict[str, int], items: int, seed: int) -> dict[str, list[int]]:
    """{task: document ids} of a sample of ``items`` from the pooled documents of several tasks (``sizes``:
    documents per task; the harness's ``samples`` argument). A task none of whose documents is drawn keeps an empty
    list."""
    pooled = [(task, doc) for task in sorted(sizes) for doc in range(sizes[task])]
    picked = {task: [] for task in sorted(sizes)}
    for index in chosen(len(pooled), items, seed):
        task, doc = pooled[index]
        picked[task].append(doc)
    return picked
