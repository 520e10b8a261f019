"""Benchmark datasets and protocols: which figures are queries, which form the gallery, and what counts as relevant.

Three protocols build a :class:`BenchSet`:

- :func:`deeppatent2_set` (``pir bench deeppatent2``): DeepPatent2 year folders. Relevance ``class`` = same object
  name: the split is *by patent* (a seeded share of the patents gives the queries, the other patents the gallery),
  so a query's own patent is never in its gallery. Relevance ``patent``: within each patent with two or more
  figures, a seeded ~third of the figures are queries and the rest stay in the gallery (DeepPatent-style).
  The split is written to ``split.json`` and reused when given back, so runs are comparable.
- :func:`deeppatent_lists_set` (``pir bench deeppatent``): the original DeepPatent query/gallery list files
  (``<relative path> <patent index>``); relevance = same patent index. Only entries whose image exists are used.
- :func:`folder_set` (``pir bench --data DIR``): any folder the readers understand, leave-one-out: every labelled
  figure is a query against all the others; with class relevance the query's whole patent is excluded.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pir.ingest.readers import read_figures
from pir.ingest.schema import PatentFigure, ReadIssue, main_class, point_id

log = logging.getLogger(__name__)

Relevance = Literal["class", "patent"]
#: Where a class label comes from: the reader's ``class_label`` (or object name), or the main class of the figure's
#: first Locarno / USPC code.
LabelFrom = Literal["class", "locarno", "uspc"]


@dataclass
class BenchItem:
    """One figure of a benchmark set."""

    patent_id: str
    figure_id: str
    path: Path
    label: str | None = None
    title: str | None = None
    figure: PatentFigure | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.patent_id}/{self.figure_id}"

    @property
    def point_id(self) -> str:
        return point_id(self.patent_id, self.figure_id)

    @classmethod
    def from_figure(cls, fig: PatentFigure, relevance: Relevance, label_from: LabelFrom = "class") -> BenchItem:
        if relevance == "patent":
            label: str | None = fig.patent_id
        elif label_from == "class":
            label = fig.class_label or fig.object_name
        else:
            codes = fig.locarno if label_from == "locarno" else fig.uspc
            label = main_class(codes[0]) if codes else None
        return cls(fig.patent_id, fig.figure_id, Path(fig.image_path), label, fig.title, fig)

    def as_figure(self) -> PatentFigure:
        """The figure as the readers gave it (a minimal one for list-file protocols)."""
        if self.figure is None:
            self.figure = PatentFigure(
                patent_id=self.patent_id, figure_id=self.figure_id, image_path=self.path, title=self.title
            )
        return self.figure


@dataclass
class BenchSet:
    """A dataset prepared for retrieval evaluation.

    Attributes:
        name: Dataset name used in reports.
        items: All figures; ``queries`` and ``gallery`` index into it (they may overlap: leave-one-out).
        queries: Indices of the query figures.
        gallery: Indices of the gallery figures.
        relevance: ``class`` (same label) or ``patent`` (same patent).
        exclude_same_patent: Exclude the query's patent from its results (class-level relevance).
        protocol: ``deeppatent2``, ``deeppatent`` or ``folder``.
        notes: Extra facts for the report (counts of unresolved list entries, skipped figures, the split file).
    """

    name: str
    items: list[BenchItem]
    queries: list[int]
    gallery: list[int]
    relevance: Relevance
    exclude_same_patent: bool
    protocol: str
    notes: dict[str, Any] = field(default_factory=dict)
    #: Keys (``patent/figure``) of every figure read before sampling: identifies the data (see encoder splits).
    source_keys: list[str] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "relevance": self.relevance,
            "exclude_same_patent": self.exclude_same_patent,
            "n_items": len(self.items),
            "n_queries": len(self.queries),
            "n_gallery": len(self.gallery),
            "n_patents": len({it.patent_id for it in self.items}),
            "n_labels": len({it.label for it in self.items if it.label is not None}),
            **self.notes,
        }


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def read_items(
    paths: Sequence[str | Path],
    relevance: Relevance,
    *,
    fmt: str | None = None,
    class_column: str | None = None,
    notes: dict[str, Any] | None = None,
    label_from: LabelFrom = "class",
) -> list[BenchItem]:
    """Read figures from folders with :func:`pir.ingest.readers.read_figures`; duplicate keys are dropped.

    Benchmark data is local data the user points at: files that resolve outside the folder (symlinked corpora) are
    read (``follow_outside``). Reader issues (bad records, missing images) are logged and counted in
    ``notes["read_issues"]``.
    """
    items: list[BenchItem] = []
    seen: set[str] = set()
    issues: list[ReadIssue] = []
    for p in paths:
        opts: dict[str, Any] = {"follow_outside": True}
        if class_column:
            opts["class_column"] = class_column
        for fig in read_figures(Path(p), fmt, issues=issues, **opts):
            it = BenchItem.from_figure(fig, relevance, label_from)
            if it.key in seen:
                continue
            seen.add(it.key)
            items.append(it)
    for issue in issues[:20]:
        log.warning("bench: %s", issue)
    if notes is not None:
        notes["read_issues"] = notes.get("read_issues", 0) + len(issues)
    return items


def limit_by_patent(items: list[BenchItem], limit: int | None, seed: int) -> list[BenchItem]:
    """A seeded subset of whole patents holding about ``limit`` figures (all items when ``limit`` is None)."""
    if not limit or limit >= len(items):
        return items
    by_patent: dict[str, list[BenchItem]] = defaultdict(list)
    for it in items:
        by_patent[it.patent_id].append(it)
    patents = sorted(by_patent)
    random.Random(seed).shuffle(patents)
    keep: set[str] = set()
    n = 0
    for p in patents:
        if n >= limit:
            break
        keep.add(p)
        n += len(by_patent[p])
    return [it for it in items if it.patent_id in keep]


# --------------------------------------------------------------------------------------------------------------
# Protocol 1: DeepPatent2
# --------------------------------------------------------------------------------------------------------------


def make_split(items: list[BenchItem], relevance: Relevance, seed: int, query_share: float = 0.2) -> dict[str, Any]:
    """Seeded query/gallery split (see the module docstring); returns the JSON-ready split record."""
    rng = random.Random(seed)
    by_patent: dict[str, list[BenchItem]] = defaultdict(list)
    for it in items:
        by_patent[it.patent_id].append(it)
    queries: list[str] = []
    gallery: list[str] = []
    if relevance == "class":
        patents = sorted(by_patent)
        rng.shuffle(patents)
        n_q = max(1, round(query_share * len(patents))) if len(patents) > 1 else 0
        q_pat = set(patents[:n_q])
        for p in sorted(by_patent):
            keys = sorted(it.key for it in by_patent[p])
            (queries if p in q_pat else gallery).extend(keys)
    else:
        for p in sorted(by_patent):
            keys = sorted(it.key for it in by_patent[p])
            if len(keys) < 2:
                gallery.extend(keys)
                continue
            rng.shuffle(keys)
            n_q = max(1, len(keys) // 3)
            queries.extend(sorted(keys[:n_q]))
            gallery.extend(sorted(keys[n_q:]))
    return {
        "protocol": "deeppatent2",
        "relevance": relevance,
        "seed": seed,
        "query_share": query_share,
        "unit": "patent" if relevance == "class" else "figure within patent",
        "queries": queries,
        "gallery": gallery,
    }


def deeppatent2_set(
    data: Sequence[str | Path],
    *,
    relevance: Relevance = "class",
    limit: int | None = None,
    seed: int = 0,
    split_file: str | Path | None = None,
    query_share: float = 0.2,
    name: str | None = None,
) -> tuple[BenchSet, dict[str, Any]]:
    """The DeepPatent2 protocol on one or several DeepPatent2 year folders.

    Args:
        data: DeepPatent2 folders (per-year JSON + ``Original/`` / ``Segmented/``).
        relevance: ``class`` (same object name) or ``patent``.
        limit: Sample about this many figures (whole patents, seeded) before splitting.
        seed: Seed of the sampling and of the split.
        split_file: An existing split (``split.json``) to reuse; when the file does not exist it is created there.
        query_share: Share of the patents whose figures become queries (class relevance).
        name: Dataset name (default ``deeppatent2``).

    Returns:
        The :class:`BenchSet` and the split record (write it next to the report).

    Raises:
        ValueError: No figures with a label were found, or the split leaves no query or no gallery.
    """
    notes: dict[str, Any] = {"data": [str(p) for p in data]}
    items = read_items(data, relevance, fmt="deeppatent2", notes=notes)
    n_read = len(items)
    items = [it for it in items if it.label]
    notes["skipped_no_label"] = n_read - len(items)
    if not items:
        raise ValueError(f"{', '.join(map(str, data))}: no DeepPatent2 figures with an object name found")
    split: dict[str, Any] | None = None
    if split_file is not None and Path(split_file).is_file():
        split = json.loads(Path(split_file).read_text())
        if split.get("relevance") != relevance:
            raise ValueError(
                f"{split_file}: the split was made for relevance {split.get('relevance')!r}, not {relevance!r}"
            )
        notes["split_reused"] = str(split_file)
    else:
        items = limit_by_patent(items, limit, seed)
        split = make_split(items, relevance, seed, query_share)
        if split_file is not None:
            Path(split_file).parent.mkdir(parents=True, exist_ok=True)
            Path(split_file).write_text(json.dumps(split, indent=1))
    index = {it.key: i for i, it in enumerate(items)}
    queries = [index[k] for k in split["queries"] if k in index]
    gallery = [index[k] for k in split["gallery"] if k in index]
    notes["split_missing"] = len(split["queries"]) + len(split["gallery"]) - len(queries) - len(gallery)
    if not queries or not gallery:
        raise ValueError(
            f"the DeepPatent2 split of {', '.join(map(str, data))} has {len(queries)} queries and {len(gallery)} "
            "gallery figures; need at least one of each (more figures or another --limit)"
        )
    bench = BenchSet(
        name=name or "deeppatent2",
        items=items,
        queries=queries,
        gallery=gallery,
        relevance=relevance,
        exclude_same_patent=relevance == "class",
        protocol="deeppatent2",
        notes=notes,
    )
    return bench, split


# --------------------------------------------------------------------------------------------------------------
# Protocol 2: DeepPatent (WACV 2022) list files
# --------------------------------------------------------------------------------------------------------------


def _open_list(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        return f.read().splitlines()


def find_list(lists_dir: Path, stem: str) -> Path:
    """``<stem>.txt`` or ``<stem>.txt.gz`` in ``lists_dir`` (or under its ``data/``)."""
    for d in (lists_dir, lists_dir / "data"):
        for suffix in (".txt", ".txt.gz"):
            p = d / f"{stem}{suffix}"
            if p.is_file():
                return p
    raise FileNotFoundError(f"{lists_dir}: no {stem}.txt or {stem}.txt.gz (DeepPatent split lists)")


def parse_list(path: Path) -> list[tuple[str, str]]:
    """Entries ``(relative path, patent index)`` of a DeepPatent list file; bad lines are logged and skipped."""
    out: list[tuple[str, str]] = []
    for n, line in enumerate(_open_list(path), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            log.warning("%s:%d: expected '<relative path> <patent index>', got %r; skipped", path, n, line)
            continue
        out.append((parts[0], parts[1]))
    return out


def deeppatent_lists_set(
    lists_dir: str | Path,
    images_dir: str | Path,
    *,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
) -> BenchSet:
    """The original DeepPatent protocol: ``<split>_query_patent`` against ``<split>_db_patent``, same patent relevant.

    Args:
        lists_dir: Folder with the list files (``test_query_patent.txt[.gz]``, ``test_db_patent.txt[.gz]``, ...).
        images_dir: Root the list paths are relative to.
        split: ``test`` or ``val``.
        limit: Sample about this many resolved queries (seeded); the gallery is kept whole.
        seed: Seed of the sampling.

    Raises:
        FileNotFoundError: A list file is missing.
        ValueError: No list entry resolves to an image file.
    """
    lists_dir, images_dir = Path(lists_dir), Path(images_dir)
    q_list = find_list(lists_dir, f"{split}_query_patent")
    g_list = find_list(lists_dir, f"{split}_db_patent")
    items: list[BenchItem] = []
    index: dict[str, int] = {}
    notes: dict[str, Any] = {"query_list": str(q_list), "db_list": str(g_list), "images": str(images_dir)}

    def resolve(entries: list[tuple[str, str]], role: str) -> list[int]:
        idx: list[int] = []
        missing = 0
        for rel, label in entries:
            path = images_dir / rel
            if not path.is_file():
                missing += 1
                continue
            stem = Path(rel).stem
            item = BenchItem(patent_id=f"P{label}", figure_id=stem, path=path, label=label, title=Path(rel).parent.name)
            if item.key not in index:
                index[item.key] = len(items)
                items.append(item)
            idx.append(index[item.key])
        notes[f"{role}_entries"] = len(entries)
        notes[f"{role}_resolved"] = len(entries) - missing
        return idx

    queries = resolve(parse_list(q_list), "query")
    gallery = resolve(parse_list(g_list), "db")
    if limit and len(queries) > limit:
        queries = sorted(random.Random(seed).sample(queries, limit))
    if not queries or not gallery:
        raise ValueError(
            f"{images_dir}: {notes['query_resolved']} of {notes['query_entries']} query and {notes['db_resolved']} of "
            f"{notes['db_entries']} gallery list entries resolve to image files; need at least one of each"
        )
    return BenchSet(
        name=f"deeppatent-{split}",
        items=items,
        queries=queries,
        gallery=gallery,
        relevance="patent",
        exclude_same_patent=False,
        protocol="deeppatent",
        notes=notes,
    )


# --------------------------------------------------------------------------------------------------------------
# Protocol 3: any folder, leave-one-out
# --------------------------------------------------------------------------------------------------------------


def queries_with_partner(
    items: Sequence[BenchItem], candidates: Sequence[int], gallery: Sequence[int], relevance: Relevance
) -> list[int]:
    """The labelled ``candidates`` that have a relevant partner in ``gallery``: for class relevance a same-label
    figure of another patent (the query's own patent is excluded), for patent relevance another figure of the same
    patent."""
    patents: dict[str, set[str]] = defaultdict(set)
    figures: dict[str, set[int]] = defaultdict(set)
    for i in gallery:
        if items[i].label:
            patents[items[i].label].add(items[i].patent_id)  # type: ignore[index]
            figures[items[i].label].add(i)  # type: ignore[index]
    out = []
    for i in candidates:
        lab = items[i].label
        if not lab:
            continue
        if relevance == "class" and patents[lab] - {items[i].patent_id}:
            out.append(i)
        elif relevance == "patent" and figures[lab] - {i}:
            out.append(i)
    return out


def folder_set(
    path: str | Path,
    *,
    relevance: Relevance | None = None,
    fmt: str | None = None,
    class_column: str | None = None,
    label_from: LabelFrom = "class",
    limit: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> BenchSet:
    """Leave-one-out on any folder the readers understand.

    Every figure with a label is a query; the gallery is every figure (labelled or not: unlabelled ones are
    distractors). The query itself is always excluded; with class relevance its whole patent is excluded too.

    Args:
        path: The folder.
        relevance: ``class`` / ``patent``; None picks ``class`` when most figures carry a class label, else ``patent``.
        fmt: Reader format (None = detect).
        class_column: Generic reader: the sidecar column with the class label.
        label_from: Class relevance: ``class`` (the reader's class label), ``locarno`` or ``uspc`` (main class).
        limit: Sample about this many figures (whole patents, seeded).
        seed: Seed of the sampling.
        name: Dataset name (default: the folder name).

    Raises:
        ValueError: No figure has a relevant partner.
    """
    notes: dict[str, Any] = {"data": str(path)}
    if label_from != "class":
        notes["label_from"] = label_from
    items = read_items([path], "class", fmt=fmt, class_column=class_column, notes=notes, label_from=label_from)
    source_keys = [it.key for it in items]
    if relevance is None:
        labelled = sum(1 for it in items if it.label)
        relevance = "class" if items and labelled >= 0.5 * len(items) else "patent"
    if relevance == "patent":
        for it in items:
            it.label = it.patent_id
    items = limit_by_patent(items, limit, seed)
    gallery = list(range(len(items)))
    queries = queries_with_partner(items, gallery, gallery, relevance)
    notes["queries_without_partner"] = sum(1 for it in items if it.label) - len(queries)
    if not queries:
        raise ValueError(f"{path}: no figure has a relevant partner under relevance {relevance!r}")
    return BenchSet(
        name=name or Path(path).name,
        items=items,
        queries=queries,
        gallery=gallery,
        relevance=relevance,
        exclude_same_patent=relevance == "class",
        protocol="folder",
        notes=notes,
        source_keys=source_keys,
    )


def restrict_to_patents(bench: BenchSet, patents: set[str], why: str) -> BenchSet:
    """The set with only the figures of ``patents`` (queries and gallery); queries left without a relevant partner
    are dropped. ``why`` is recorded in the notes (``restricted_to``).

    Raises:
        ValueError: No query keeps a relevant partner.
    """
    keep = [i for i, it in enumerate(bench.items) if it.patent_id in patents]
    new_of = {old: new for new, old in enumerate(keep)}
    items = [bench.items[i] for i in keep]
    gallery = [new_of[i] for i in bench.gallery if i in new_of]
    queries = queries_with_partner(items, [new_of[i] for i in bench.queries if i in new_of], gallery, bench.relevance)
    if not queries:
        raise ValueError(f"{bench.name}: no query keeps a relevant partner among the {len(patents)} patents of {why}")
    notes = {**bench.notes, "restricted_to": why, "n_items_before_restriction": len(bench.items)}
    return dataclasses.replace(bench, items=items, queries=queries, gallery=gallery, notes=notes)
