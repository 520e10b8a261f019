"""A figure's own words, and their two vectors: ``text`` (dense, frozen sentence encoder) and ``words`` (sparse BM25).

What a figure "says" (:func:`figure_words`): its title, figure description, object name and enrichment descriptions,
plus, only with ``include_class=True``, its class label and the titles of its class codes. Class-level evaluation
must call it with ``include_class=False`` so that neither vector can leak the label.

- ``text`` (:func:`text_vectors`): the patent's own pieces (title, figure text, caption, object name; each embedded on
  its own, L2-normalised, duplicates once) averaged, plus :data:`ADDED_WEIGHT` times the average of what enrichment
  added (alias phrases, gloss), re-normalised; no pieces means no ``text`` vector. The patent's own words keep the
  lead: added knowledge moves the vector toward the object's other names without drowning what tells figures apart.
- ``words`` (:func:`words_vector`): term-frequency weights of Qdrant's own BM25 tokenizer (English stemming and
  stop words; ``qdrant_edge.Bm25``) over the joined pieces. The IDF half of BM25 is applied by Qdrant at query time
  (sparse vector with the IDF modifier) on both backends, so Edge and the server score the same.

Query side: :func:`query_words` expands the user's words with the enrichment aliases ("lamp" also searches
"luminaire", "lighting fixture"), :func:`words_query_vector` turns them into a sparse query (weight 1 per term).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.enrich.aliases import CURATED_ALIASES, load_lexicon, normalize_name
from pir.enrich.classes import title_for_class_name

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.encoder.text import TextEmbeddingCache, TextEncoder

#: BM25 parameters of the ``words`` vector (recorded with the collection; changing them needs ``pir reindex``).
BM25_K = 1.2
BM25_B = 0.75
BM25_AVG_LEN = 64.0
#: Name of the words model, recorded in the collection metadata.
WORDS_MODEL = f"bm25(k={BM25_K},b={BM25_B},avg_len={BM25_AVG_LEN:g},english)"

log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"[a-z][a-z-]+")
_MODIFIER_CUT = re.compile(r"\b(?:with|without|having|for|including|containing)\b")
_STOP = frozenset(
    "a an and or the of for with without in on at to from by as is are be this that its it design view figure "
    "drawing patent ornamental shown showing".split()
)


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector (Qdrant's ``indices`` / ``values``), backend-neutral."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.indices)

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.indices, self.values, strict=True))


@functools.cache
def _bm25() -> Any:
    # lazy: start-up (qdrant_edge)
    from qdrant_edge import Bm25, Bm25Config  # one tokenizer for both backends (the server path imports it too)

    return Bm25(Bm25Config(k=BM25_K, b=BM25_B, avg_len=BM25_AVG_LEN, language="english"))


#: Payload fields that are the patent's own words about a figure, in order of say.
OWN_FIELDS = ("title", "description", "caption", "object_name")
#: Payload fields enrichment adds to the search words (:mod:`pir.enrich.knowledge`): alias phrases, what it is (for).
ADDED_FIELDS = ("aliases", "about")
#: Weight of the added pieces' mean against the own pieces' mean in the ``text`` vector. 0.25: the patent's own words
#: count four times what enrichment added (issue 15: "the title and the patent's own figure text above generated
#: text"). Validation (2007 USPC validation patents; one half of the 2021 sample's patents), text mode, zero-shot,
#: levels ``aliases`` and ``full``, weight 0.25 / 0.5 / 1: 0.25 kept every metric >= ``none`` except one cell (2021
#: Locarno, paraphrased words, MRR@10 -0.024 / -0.025); 1 (the old plain mean) lost mAP on same-patent; the README
#: has the test figures.
ADDED_WEIGHT = 0.25


@dataclass(frozen=True)
class FigureWords:
    """A figure's search words in two parts: the patent's ``own`` pieces and what enrichment ``added``."""

    own: list[str]
    added: list[str]

    @property
    def pieces(self) -> list[str]:
        return [*self.own, *self.added]


def figure_words(payload: Mapping[str, Any], *, include_class: bool = True) -> list[str]:
    """The pieces of text a figure's ``text`` and ``words`` vectors are built from, de-duplicated, in order.

    The patent's own words first (title, figure description, caption, object name), then what enrichment added as
    knowledge (``aliases``: ONE piece, the alias phrases joined by commas; ``about``: the gloss), then, only with
    ``include_class=True``, the class label and the titles of the class codes. The backends' ``descriptions``
    (template sentences, LLM paraphrases) are never search words: they stay in the payload for training and display.

    Args:
        payload: A figure payload (:meth:`pir.ingest.schema.PatentFigure.payload` or a stored one).
        include_class: Also the class label and the titles of the class codes. Pass False for class-level
            evaluation (no label leakage).
    """
    return figure_word_parts(payload, include_class=include_class).pieces


def figure_word_parts(payload: Mapping[str, Any], *, include_class: bool = True) -> FigureWords:
    """:func:`figure_words` in two parts: the patent's own pieces (with ``include_class``, the class label and class
    titles too) and the pieces enrichment added (aliases, gloss); de-duplicated across both, in order."""
    own: list[str] = [str(payload.get(k) or "") for k in OWN_FIELDS]
    added: list[str] = []
    aliases = [str(a) for a in payload.get("aliases") or [] if str(a).strip()]
    if aliases:
        added.append(", ".join(aliases))
    added.extend(str(a) for a in payload.get("about") or [])
    if include_class:
        label = payload.get("class_label")
        if label:
            own.append(str(label))
        for code in [label, *(payload.get("classes") or [])]:
            title = title_for_class_name(str(code)) if code else None
            if title:
                own.append(title)
    seen: set[str] = set()

    def unique(pieces: list[str]) -> list[str]:
        out = []
        for p in pieces:
            p = " ".join(p.split())
            if p and p.lower() not in seen:
                seen.add(p.lower())
                out.append(p)
        return out

    own = unique(own)
    return FigureWords(own, unique(added))


def matched_words(query: str, pieces: Sequence[str], n: int = 3, *, expand: bool = True) -> list[str]:
    """Why a hit matched the query words: the hit's search words (:func:`figure_words`) that share a term with the
    query (Qdrant's BM25 tokenizer: stemmed, stop words out; the query expanded with its aliases as in the search),
    most shared terms first, at most ``n``. Only words that are in the search vectors can be quoted, so never a
    template sentence."""
    text = query_words(query)[0] if expand else query
    want = words_query_vector(text)
    if want is None:
        return []
    terms = set(want.indices)
    scored = []
    for i, piece in enumerate(pieces):
        sv = words_vector([piece])
        overlap = len(terms & set(sv.indices)) if sv is not None else 0
        if overlap:
            scored.append((-overlap, i, piece))
    return [p for *_, p in sorted(scored)[:n]]


def words_vector(pieces: Sequence[str]) -> SparseVector | None:
    """BM25 document vector (term-frequency part) of a figure's words; None when nothing is left after tokenizing."""
    text = " ".join(pieces).strip()
    if not text:
        return None
    sv = _bm25().embed_document(text)
    if not sv.indices:
        return None
    return SparseVector(tuple(int(i) for i in sv.indices), tuple(float(v) for v in sv.values))


def words_query_vector(text: str) -> SparseVector | None:
    """BM25 query vector (weight 1 per distinct term) of query words; None when no term is left."""
    sv = _bm25().embed_query(text) if text.strip() else None
    if sv is None or not sv.indices:
        return None
    return SparseVector(tuple(int(i) for i in sv.indices), tuple(float(v) for v in sv.values))


def text_vectors(
    pieces_per_figure: Sequence[Sequence[str] | FigureWords],
    encoder: TextEncoder,
    *,
    cache: TextEmbeddingCache | None = None,
    batch_size: int = 128,
    added_weight: float = ADDED_WEIGHT,
) -> list[np.ndarray | None]:
    """The ``text`` vector of each figure (float32, L2-normalised): ``mean(own) + added_weight * mean(added)`` of its
    pieces' normalised embeddings (:class:`FigureWords`; a plain list of pieces counts as all own), re-normalised.
    A figure with only added pieces gets their mean.

    All pieces of all figures go through the encoder (or the cache) in one batched call.
    """
    parts = [p if isinstance(p, FigureWords) else FigureWords(list(p), []) for p in pieces_per_figure]
    flat = [t for fw in parts for t in fw.pieces]
    if not flat:
        return [None] * len(parts)
    uniq = list(dict.fromkeys(flat))
    if cache is not None:
        emb = cache.encode(encoder, uniq, batch_size=batch_size)
    else:
        emb = encoder.encode(uniq, batch_size=batch_size)
    unit = np.asarray(emb, dtype=np.float32)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    row = {t: i for i, t in enumerate(uniq)}
    out: list[np.ndarray | None] = []
    for fw in parts:
        if not fw.pieces:
            out.append(None)
            continue
        if not fw.own:
            out.append(normalize(unit[[row[p] for p in fw.added]].mean(axis=0)))
            continue
        v = unit[[row[p] for p in fw.own]].mean(axis=0)
        if fw.added:
            v = v + added_weight * unit[[row[p] for p in fw.added]].mean(axis=0)
        out.append(normalize(v))
    return out


def normalize(v: np.ndarray) -> np.ndarray:
    """L2-normalised float32 copy (a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def query_words(text: str, *, max_aliases: int = 3) -> tuple[str, list[str]]:
    """The user's words expanded with the enrichment aliases: ``(expanded text, aliases added)``.

    The whole query and each one- and two-word phrase of its content words are looked up; a phrase is expanded only
    when it names an object (curated alias table, or its most frequent WordNet noun sense is an artifact), so
    "lamp with a curved arm" adds "luminaire", "lighting fixture", ... but not "projection" for "arm".
    """
    lex = load_lexicon()
    norm = normalize_name(text)
    # only the object is expanded, not what it has: "chair with arms" -> "chair" (never "weaponry" for "arms")
    head = _MODIFIER_CUT.split(norm, maxsplit=1)[0].strip() or norm
    words = [w for w in _TOKEN_RE.findall(head) if w not in _STOP]
    phrases = [head] + [" ".join(words[i : i + 2]) for i in range(len(words) - 1)] + words
    added: list[str] = []
    seen = {norm, head, *words}
    for phrase in dict.fromkeys(phrases):
        if not phrase:
            continue
        single = lex.singular(phrase)
        if phrase != head and not (phrase in CURATED_ALIASES or single in CURATED_ALIASES or _is_object(lex, single)):
            continue
        for alias in lex.aliases(phrase, max_aliases):
            a = normalize_name(alias)
            if a and a not in seen and not set(a.split()) <= set(words):  # nothing new: "curved arm"
                seen.add(a)
                added.append(alias)
    return (" ".join([text.strip(), *added]).strip(), added)


def _is_object(lex: Any, phrase: str) -> bool:
    """True when the phrase's most frequent WordNet noun sense is a man-made object."""
    if lex.wordnet is None:
        return False
    with lex._lock:  # nltk's reader shares file handles
        senses = lex.wordnet.synsets(phrase.replace(" ", "_"), pos="n")
    return bool(senses) and senses[0].lexname() == "noun.artifact"


@functools.cache
def _cached_text_encoder(spec: str, device: str) -> TextEncoder:
    from pir.encoder.text import load_text_encoder  # lazy: start-up (torch, sentence-transformers)

    return load_text_encoder(spec, device=device)


def get_text_encoder(settings: Settings) -> TextEncoder:
    """The frozen text encoder of the settings (``settings.text.model`` on ``settings.encoder.device``), loaded once
    per process."""
    return _cached_text_encoder(settings.text.model, settings.encoder.device)


def text_and_words(
    payloads: Sequence[Mapping[str, Any]],
    text_encoder: TextEncoder,
    *,
    include_class: bool = True,
    cache: TextEmbeddingCache | None = None,
    batch_size: int = 128,
) -> tuple[list[np.ndarray | None], list[SparseVector | None]]:
    """The ``text`` and ``words`` vectors of figures from their payloads (with ``descriptions``), batched.

    ``include_class=False`` keeps the class label and class titles out of both (class-level evaluation).
    """
    parts = [figure_word_parts(p, include_class=include_class) for p in payloads]
    text = text_vectors(parts, text_encoder, cache=cache, batch_size=batch_size)
    return text, [words_vector(fw.pieces) for fw in parts]


def open_text_cache(settings: Settings) -> TextEmbeddingCache | None:
    """The text-embedding cache of the settings; None (encode without it) when it cannot be opened."""
    from pir.encoder.text import TextEmbeddingCache, text_cache_path  # lazy: start-up (torch)

    try:
        return TextEmbeddingCache(text_cache_path(settings))
    except (OSError, ValueError) as e:
        log.warning("text-embedding cache unavailable (%s); encoding without it", e)
        return None
