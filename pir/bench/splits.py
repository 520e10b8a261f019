"""Keep trained encoders honest: evaluate on their test patents, refuse to query the patents they learned from.

An encoder directory written by ``pir train`` holds ``split.json`` with ``train_patents``, ``val_patents`` and
``test_patents`` and what it was trained on: ``data`` (resolved paths) and ``dataset_fingerprint`` (a hash of the
figure keys, :func:`pir.encoder.split.dataset_fingerprint`). For every bench dataset:

- when it is the encoder's training data (same path, or same fingerprint), it is restricted to the encoder's test
  patents (queries and gallery), for every method of the run so that the methods stay comparable;
- when a query patent is still among the encoder's training or validation patents (e.g. an old ``split.json``
  without a test list, or a copy of the data under another name), the run is refused with
  :class:`TrainOverlapError` unless ``allow_overlap`` is set (then the overlap is recorded in the notes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pir.bench.datasets import BenchSet, restrict_to_patents

log = logging.getLogger(__name__)

SPLIT_FILE = "split.json"


class TrainOverlapError(ValueError):
    """Bench queries would include patents an encoder was trained or validated on."""


@dataclass(frozen=True)
class EncoderSplit:
    """The patent split of one trained encoder (its ``split.json``)."""

    label: str
    path: Path
    seen: frozenset[str]  # training + validation patents
    test: frozenset[str] | None
    data: tuple[str, ...] = ()
    fingerprint: str | None = None


def read_split(label: str, encoder_dir: str | Path) -> EncoderSplit | None:
    """The split of an encoder directory, or None (a built-in backbone, or no ``split.json``)."""
    path = Path(encoder_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    seen = frozenset(map(str, [*raw.get("train_patents", []), *raw.get("val_patents", [])]))
    test = raw.get("test_patents")
    data = raw.get("data") or []
    return EncoderSplit(
        label=label,
        path=path,
        seen=seen,
        test=frozenset(map(str, test)) if test is not None else None,
        data=tuple(str(d) for d in ([data] if isinstance(data, str) else data)),
        fingerprint=raw.get("dataset_fingerprint"),
    )


def fingerprint(keys: Sequence[str]) -> str | None:
    """The training code's dataset fingerprint of these figure keys (None when this version has none)."""
    try:
        from pir.encoder.split import dataset_fingerprint  # lazy: optional (an encoder without it gives None)
    except ImportError:
        return None
    return str(dataset_fingerprint(keys))


def is_training_data(bench: BenchSet, split: EncoderSplit) -> bool:
    """Whether ``bench`` was read from the data the encoder was trained on (same path or same fingerprint)."""
    given = bench.notes.get("data")
    paths = {str(Path(p).resolve()) for p in ([given] if isinstance(given, str) else given or [])}
    if paths & {str(Path(p).resolve()) for p in split.data}:
        return True
    return bool(split.fingerprint and bench.source_keys and fingerprint(bench.source_keys) == split.fingerprint)


def apply_encoder_splits(
    sets: Sequence[BenchSet], splits: Sequence[EncoderSplit], *, allow_overlap: bool = False
) -> list[BenchSet]:
    """Restrict each training dataset to the encoders' test patents; refuse queries on seen patents.

    Raises:
        TrainOverlapError: A query patent was used to train or validate an encoder (and not ``allow_overlap``).
    """
    out: list[BenchSet] = []
    for bench in sets:
        for sp in splits:
            if sp.test is not None and is_training_data(bench, sp):
                bench = restrict_to_patents(bench, set(sp.test), f"the test split of {sp.label} ({sp.path})")
                log.info("bench: %s restricted to the test patents of %s", bench.name, sp.label)
        q_patents = {bench.items[i].patent_id for i in bench.queries}
        for sp in splits:
            overlap = q_patents & sp.seen
            if not overlap:
                continue
            if not allow_overlap:
                raise TrainOverlapError(
                    f"{bench.name}: {len(overlap)} of its {len(q_patents)} query patents were used to train or "
                    f"validate {sp.label} ({sp.path}); evaluate on data it never saw, or pass --allow-train-overlap"
                )
            bench.notes[f"train_overlap_patents/{sp.label}"] = len(overlap)
        out.append(bench)
    return out
