"""Patent-level train / validation / test splits of a training run (``split.json``), torch-free.

``pir bench --encoders DIR`` reads the same file to evaluate only on the test patents of the data an encoder was
trained on, recognising that data by its resolved paths or by :func:`dataset_fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SPLIT_NAME = "split.json"


class _Figure(Protocol):
    patent_id: str
    class_label: str | None

    @property
    def key(self) -> str: ...


@dataclass
class PatentSplit:
    """Sorted patent ids of each part."""

    train: list[str]
    val: list[str]
    test: list[str]

    def part_of(self, patent_id: str) -> str | None:
        """``"train"``, ``"val"``, ``"test"`` or None."""
        for name in ("train", "val", "test"):
            if patent_id in getattr(self, name):
                return name
        return None


def dataset_fingerprint(keys: Iterable[str]) -> str:
    """sha256 hex of the sorted, newline-joined figure keys (``patent_id/figure_id``) of a data set."""
    return hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()


def split_by_patent(
    figures: Sequence[_Figure], val_fraction: float, seed: int, test_fraction: float = 0.0
) -> PatentSplit:
    """Seeded train/validation/test split of the patents, stratified by each patent's (first figure's) class.

    Each class's patents are shuffled; ``round(test_fraction * n)`` go to test, then ``round(val_fraction * n)``
    to validation, at least one patent of every class staying in training (test is served first).
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ValueError(
            f"val_fraction and test_fraction must be >= 0 with a sum < 1, got {val_fraction}, {test_fraction}"
        )
    by_class: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for f in figures:
        if f.patent_id not in seen:
            seen.add(f.patent_id)
            by_class[str(f.class_label)].append(f.patent_id)
    rng = random.Random(seed)
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in sorted(by_class):
        pats = sorted(by_class[c])
        rng.shuffle(pats)
        n_test = min(round(test_fraction * len(pats)), len(pats) - 1)
        n_val = min(round(val_fraction * len(pats)), len(pats) - 1 - n_test)
        parts["test"] += pats[:n_test]
        parts["val"] += pats[n_test : n_test + n_val]
        parts["train"] += pats[n_test + n_val :]
    return PatentSplit(sorted(parts["train"]), sorted(parts["val"]), sorted(parts["test"]))


def write_split(
    path: Path,
    split: PatentSplit,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    data: list[str],
    figure_keys: Iterable[str],
) -> None:
    """Write ``split.json``: the three patent lists, the fractions and seed, the data paths and fingerprint."""
    doc: dict[str, Any] = {
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "train_patents": split.train,
        "val_patents": split.val,
        "test_patents": split.test,
        "data": data,
        "dataset_fingerprint": dataset_fingerprint(figure_keys),
    }
    path.write_text(json.dumps(doc, indent=1))


def read_split(path: Path) -> PatentSplit:
    """The patent lists of a ``split.json`` (files from before the test split have no ``test_patents``)."""
    doc = json.loads(Path(path).read_text())
    return PatentSplit(list(doc["train_patents"]), list(doc["val_patents"]), list(doc.get("test_patents", [])))
