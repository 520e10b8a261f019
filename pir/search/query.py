"""Value objects of the store's interface: filters, hits, stored points, hybrid and recommend queries, what a
backend query asks for, upsert batches; and the store's errors. No backend code here (:mod:`pir.search.store`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from pir.search.request import DEFAULT_FUSION, DEFAULT_TEXT_WEIGHT, FUSIONS
from pir.search.words import SparseVector

if TYPE_CHECKING:
    pass


#: Names of the three vectors of a figure.
IMAGE = "image"
TEXT = "text"
WORDS = "words"
#: Text-vector size when the caller does not say (all-MiniLM-L6-v2).
DEFAULT_TEXT_DIM = 384
#: Layout names: ``named`` (image/text/words) and ``legacy`` (one unnamed image vector, before hybrid search).
NAMED, LEGACY = "named", "legacy"
#: In ``zscore`` fusion, the BM25 ``words`` leg's part of the words side (the dense ``text`` leg has the rest).
#: Chosen on the VALIDATION patents of the 2007 USPC split (class-level, zero-shot; grid 0 / 0.2 / 0.35 of the words
#: side, text weight 0.9: mAP 0.457 / 0.461 / 0.459), never on a reported split.
WORDS_SHARE = 0.2
#: ``zscore`` fusion standardises each leg by the scores of its best ``max(prefetch, ZSCORE_POOL)`` candidates
#: (2007 validation patents, pool 50 / 100 / 200 / 1000: mAP 0.442 / 0.456 / 0.455 / 0.455 at text weight 0.8).
ZSCORE_POOL = 100
#: ``zscore`` fusion: a fused query's prefetch is deepened to hold a whole tie at its cut-off (scores within
#: ``TIE_EPS``), up to ``TIE_POOL_MAX`` candidates, so equal searches on two builds of one corpus agree.
TIE_POOL_MAX = 1000
TIE_EPS = 1e-6
#: ``zscore`` fusion: a drawing that stands out keeps its lead. On top of its weighted z-score the ``image`` leg adds
#: ``(1 - text_weight) * GATE_GAIN * max(z - GATE_Z, 0)``: nothing for the bulk of the candidates (where words are the
#: better signal), a boost for a figure more than ``GATE_Z`` spreads above the image candidates' mean (a near-duplicate
#: or another view of the same object). Chosen on VALIDATION data only: the 2007 USPC validation patents and one half
#: of the 2021 sample's patents (sha1 parity of the patent id), zero-shot, text weight 0.9; grid gain 0 / 0.25 / 0.5 /
#: 1 / 2 (times 0.9 / 0.1) x z 1 / 1.5 / 2 / 2.5 / 3; rule: fewest cells below the better single signal's interval, then
#: most cells at or above it, then the smallest loss, then the mean gain.
GATE_Z = 2.0
GATE_GAIN = 2.25
#: RRF rank constant: small enough that the weights (the text-weight slider) still move the ranking.
RRF_K = 10
#: BM25 scores are unbounded; in weighted fusion a words score s counts as s / (s + WORDS_SCALE), in [0, 1).
WORDS_SCALE = 5.0


class StoreError(RuntimeError):
    """A vector-store problem the user can act on (wrong dimension, store in use, missing collection, bad input)."""


class LegacyLayoutError(StoreError):
    """The collection has the single-vector layout of older pir versions; ``pir reindex`` upgrades it in place."""


@dataclass
class SearchFilter:
    """Payload filter of a search; every set field must hold (AND), each list matches any of its values (OR).

    Empty lists count as "not set".
    """

    classes: list[str] | None = None
    year_from: int | None = None
    year_to: int | None = None
    viewpoints: list[str] | None = None
    object_names: list[str] | None = None
    patent_ids: list[str] | None = None
    exclude_patents: list[str] | None = None
    exclude_ids: list[str] | None = None  # point ids left out (e.g. the query figure of "more like this")
    published_after: date | None = None  # publication_date > this (exclusive)
    published_before: date | None = None  # publication_date < this (exclusive)

    def is_empty(self) -> bool:
        """True when the filter constrains nothing."""
        return not (
            self.classes
            or self.viewpoints
            or self.object_names
            or self.patent_ids
            or self.exclude_patents
            or self.exclude_ids
            or self.year_from is not None
            or self.year_to is not None
            or self.published_after is not None
            or self.published_before is not None
        )

    def date_range(self) -> dict[str, str]:
        """The publication-date bounds as a Qdrant datetime range (``gt`` / ``lt``, ISO dates; both exclusive)."""
        out = {}
        if self.published_after is not None:
            out["gt"] = self.published_after.isoformat()
        if self.published_before is not None:
            out["lt"] = self.published_before.isoformat()
        return out

    def keyword_conditions(self) -> list[tuple[str, list[str]]]:
        """The ``must`` keyword conditions as ``(payload field, values)`` pairs (match any)."""
        out: list[tuple[str, list[str]]] = []
        for key, values in (
            ("classes", self.classes),
            ("viewpoint", self.viewpoints),
            ("object_name", self.object_names),
            ("patent_id", self.patent_ids),
        ):
            if values:
                out.append((key, [str(v) for v in values]))
        return out


@dataclass
class Hit:
    """One search result. ``vector`` is set only when the search asked for vectors."""

    id: str
    score: float
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass
class StoredPoint:
    """One stored point, as returned by :meth:`VectorStore.retrieve` and :meth:`VectorStore.scroll`.

    ``vector`` is the ``image`` vector; ``text`` and ``words`` are None when the point has none (or vectors were
    not asked for).
    """

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None
    text: np.ndarray | None = None
    words: SparseVector | None = None


@dataclass
class HybridQuery:
    """What to look for: any of an image vector, a dense text vector and a sparse words vector.

    Attributes:
        image: Query in the image space (``image`` vectors), or a :class:`Recommend` query on them.
        text: Query in the text space (``text`` vectors), e.g. the text encoder's embedding of the user's words,
            or a :class:`Recommend` query on them.
        words: Sparse BM25 query (``words`` vectors), see :func:`pir.search.words.words_query_vector`.
        image_text: The image query in the text space (a text-aligned encoder): a cross-modal prefetch on ``text``.
        fusion: ``rrf`` (weighted reciprocal rank fusion) or ``weighted`` (weighted sum of scores, a Qdrant formula).
        text_weight: Share of the words side in [0, 1]: 0 = image only, 1 = words only. The image side (``image``,
            ``image_text``) shares ``1 - text_weight`` equally, the words side (``text``, ``words``) ``text_weight``.
        prefetch: Candidates per vector before fusion (default ``max(4 * limit, 50)``).
        rrf_k: RRF rank constant.
    """

    image: np.ndarray | Recommend | None = None
    text: np.ndarray | Recommend | None = None
    words: SparseVector | None = None
    image_text: np.ndarray | None = None
    fusion: str = DEFAULT_FUSION
    text_weight: float = DEFAULT_TEXT_WEIGHT
    prefetch: int | None = None
    rrf_k: int = RRF_K

    def legs(self) -> list[Leg]:
        """The prefetches (one per vector with a positive weight), image side first."""
        w = float(self.text_weight)
        if not 0.0 <= w <= 1.0:
            raise StoreError(f"text weight must be in [0, 1], got {w}")
        if self.fusion not in FUSIONS:
            raise StoreError(f"unknown fusion {self.fusion!r}: use one of {', '.join(FUSIONS)}")
        visual = [(IMAGE, self.image), (TEXT, self.image_text)]
        verbal = [(TEXT, self.text), (WORDS, self.words)]
        visual = [(n, v) for n, v in visual if v is not None]
        verbal = [(n, v) for n, v in verbal if v is not None and (n != WORDS or len(v))]  # type: ignore[arg-type]  # the words leg is a SparseVector
        if visual and verbal:
            groups = [(visual, 1.0 - w), (verbal, w)]
        else:
            groups = [(visual or verbal, 1.0)]
        legs = [Leg(n, v, share * self._part(n, g)) for g, share in groups for n, v in g if share > 0]  # type: ignore[arg-type, attr-defined]  # groups holds lists of legs
        if self.fusion == "zscore" and visual and verbal and w < 1.0:
            for leg in legs:
                if leg.using == IMAGE and leg.vector is self.image:
                    leg.gate = (1.0 - w) * GATE_GAIN
        if not legs:
            raise StoreError("empty query: give an image, words, or both")
        return legs

    def _part(self, name: str, group: list[tuple[str, Any]]) -> float:
        """A leg's part of its side: equal parts, except that in ``zscore`` fusion BM25 has :data:`WORDS_SHARE` of
        the words side."""
        names = [n for n, _ in group]
        if self.fusion == "zscore" and WORDS in names and len(names) > 1:
            return WORDS_SHARE if name == WORDS else 1.0 - WORDS_SHARE
        return 1.0 / len(group)


@dataclass
class Recommend:
    """A recommend query on one dense vector (Qdrant's relevance feedback): examples to get near and to avoid.

    ``average_vector`` searches ``avg(positives) + (avg(positives) - avg(negatives))``; ``best_score`` scores each
    point by its best positive unless a negative is closer (then negative); ``sum_scores`` by the sum of its
    similarities to the positives minus those to the negatives.
    """

    positives: list[np.ndarray]
    negatives: list[np.ndarray] = field(default_factory=list)
    strategy: str = "average_vector"

    def average(self) -> np.ndarray:
        """The ``average_vector`` query vector, as Qdrant computes it."""
        pos = np.mean(np.stack(self.positives), axis=0)
        if not self.negatives:
            return pos.astype(np.float32)
        return (pos + pos - np.mean(np.stack(self.negatives), axis=0)).astype(np.float32)


@dataclass
class Leg:
    """One prefetch of a hybrid query: which vector, the query (a vector or a :class:`Recommend`), its weight."""

    using: str
    vector: np.ndarray | SparseVector | Recommend
    weight: float
    #: ``zscore`` fusion: the mean and spread of this leg's candidate scores, and the score a point gets in this leg
    #: when the leg did not return it (its lowest candidate's).
    mean: float = 0.0
    spread: float = 1.0
    floor: float = 0.0
    #: ``zscore`` fusion: weight of this leg's ``max(z - GATE_Z, 0)`` term (0 = none; see :data:`GATE_GAIN`).
    gate: float = 0.0

    def standardised(self) -> tuple[float, float]:
        """``(scale, offset)`` with ``z = scale * score + offset``, the leg's weight included."""
        return self.weight / self.spread, -self.weight * self.mean / self.spread

    def gate_terms(self) -> tuple[float, float, float] | None:
        """``(weight, scale, offset)`` of the leg's gate ``weight * max(scale * score + offset, 0)``, i.e.
        ``max(z - GATE_Z, 0)``; None when the leg has no gate."""
        if self.gate <= 0:
            return None
        return self.gate, 1.0 / self.spread, -self.mean / self.spread - GATE_Z

    @property
    def sparse(self) -> bool:
        return isinstance(self.vector, SparseVector)


class SearchOptions(TypedDict, total=False):
    """Keyword options of :meth:`VectorStore.search` and :meth:`VectorStore.hybrid_search` (see ``search_batch``)."""

    filter: SearchFilter | None
    min_score: float | None
    group_by_patent: bool
    exact: bool
    with_vectors: bool


@dataclass
class Ask:
    """What one backend query asks for: how many hits, the filter (None = none), exactness, vectors, prefetch size,
    and the filter planner's choice (``plan``: ``hnsw``, ``exact`` or ``acorn``; see ``VectorStore.plan_for``)."""

    limit: int
    flt: SearchFilter | None = None
    min_score: float | None = None
    exact: bool = False
    with_vectors: bool = False
    prefetch: int = 0
    plan: str = "hnsw"


@dataclass
class Batch:
    """Checked points to write: ids, ``image`` rows, payloads, per point a ``text`` and a ``words`` vector or None."""

    ids: list[str]
    image: np.ndarray
    payloads: list[dict[str, Any]]
    text: list[np.ndarray | None]
    words: list[SparseVector | None]

    def chunks(self, size: int) -> Iterator[range]:
        """Index ranges of at most ``size`` points."""
        for s in range(0, len(self.ids), size):
            yield range(s, min(s + size, len(self.ids)))

    def vectors(self, i: int, dense: Callable[[np.ndarray], Any], sparse: Callable[[SparseVector], Any]) -> dict:
        """Point ``i``'s named vectors in a backend's types (``dense``/``sparse`` convert one vector)."""
        out: dict[str, Any] = {IMAGE: dense(self.image[i])}
        text, words = self.text[i], self.words[i]
        if text is not None:
            out[TEXT] = dense(text)
        if words is not None:
            out[WORDS] = sparse(words)
        return out
