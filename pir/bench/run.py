"""Benchmark runs: several methods (encoders) on one or more datasets, then the report.

Entry points (one per ``pir bench`` command): :func:`bench_folders` (``pir bench [--data DIR]``),
:func:`bench_deeppatent2` (``pir bench deeppatent2``) and :func:`bench_deeppatent` (``pir bench deeppatent``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pir
from pir.bench.cache import EmbeddingCache
from pir.bench.datasets import BenchSet, LabelFrom, Relevance, deeppatent2_set, deeppatent_lists_set, folder_set
from pir.bench.evaluate import (
    ENRICH_LEVELS,
    QUERY_TEXTS,
    MemoTextEncoder,
    QueryText,
    StoreKind,
    evaluate_method,
    parse_choices,
    parse_modes,
)
from pir.bench.metrics import CI_LEVEL, CI_SEED, N_BOOTSTRAP
from pir.bench.report import write_report
from pir.bench.results import BenchRun, Mode
from pir.bench.splits import apply_encoder_splits, read_split
from pir.search.request import DEFAULT_FUSION, DEFAULT_TEXT_WEIGHT
from pir.search.words import get_text_encoder

if TYPE_CHECKING:
    from pir.core.config import Settings

log = logging.getLogger(__name__)

ZERO_SHOT = "zero-shot"
FALLBACK_BACKBONE = "tf_efficientnet_lite0"


def environment(settings: Settings) -> dict[str, Any]:
    """Device, thread and version facts recorded with every result."""
    import torch  # lazy: start-up (torch)

    return {
        "device": settings.encoder.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def resolve_encoders(spec: str | Sequence[str], settings: Settings) -> list[tuple[str, str]]:
    """``zero-shot,DIR1,name2`` -> ``[(label, load spec), ...]``.

    ``zero-shot`` is the settings' default encoder when that is a built-in backbone name (else
    ``tf_efficientnet_lite0``); any other entry is a built-in name or an encoder directory.
    """
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p and p.strip()]
    if not parts:
        parts = [ZERO_SHOT]
    out: list[tuple[str, str]] = []
    labels: set[str] = set()
    for p in parts:
        if p == ZERO_SHOT:
            default = settings.encoder.name
            load = default if not Path(default).is_dir() else FALLBACK_BACKBONE
            label = ZERO_SHOT
        else:
            load = p
            label = Path(p).name if Path(p).is_dir() else p
        base, n = label, 2
        while label in labels:
            label = f"{base}-{n}"
            n += 1
        labels.add(label)
        out.append((label, load))
    return out


def run_benchmark(
    sets: Sequence[BenchSet],
    settings: Settings,
    *,
    encoders: str | Sequence[str] = ZERO_SHOT,
    modes: str | Sequence[Mode] = ("image",),
    query_text: QueryText | str | Sequence[str] = "auto",
    k: int | None = None,
    ks: Sequence[int] = (1, 5, 10),
    out: str | Path | None = None,
    store_kind: StoreKind = "edge",
    enrich: bool = True,
    enrich_levels: str | Sequence[str] | None = None,
    baselines: bool = True,
    n_bootstrap: int = N_BOOTSTRAP,
    plots: bool = True,
    skipped: dict[str, str] | None = None,
    allow_train_overlap: bool = False,
    text_weight: float | None = None,
    fusion: str | None = None,
) -> BenchRun:
    """Evaluate every method in every mode on every dataset through the store; write the report when ``out`` is set.

    Args:
        sets: The datasets.
        settings: Settings (device, data dir, cache dir, Qdrant tuning).
        encoders: ``zero-shot,DIR1,...`` or a list of the same.
        modes: ``image``, ``text``, ``image+text`` (comma-separated or a list); see :mod:`pir.bench.evaluate`.
        query_text: The query's words, one or several (``auto``, ``title``, ``caption``, ``title+caption``,
            ``paraphrase``; comma-separated or a list): one row per variant in each words mode.
        k: Store search depth (see :mod:`pir.bench.evaluate`).
        ks: Reported cut-offs.
        out: Report folder (``results.json``, ``results.md``, PNG plots).
        store_kind: ``edge`` or ``memory``.
        enrich: Enrich the gallery as ``pir ingest`` does (at ``settings.enrich.level``; False = ``none``).
        enrich_levels: The enrichment ablation: ``none``, ``aliases``, ``full`` (comma-separated or a list); the
            gallery is stored once per level and every words mode is run on each (overrides ``enrich``).
        baselines: Add the ``title-only`` rows to every run with a words mode (computed once per dataset).
        n_bootstrap: Resamples of each bootstrap interval (per-query resampling, seeded).
        plots: Draw the PNG plots.
        skipped: Datasets already known to be skipped (name -> reason), carried into the report.
        allow_train_overlap: Evaluate even when queries include an encoder's training patents (see
            :mod:`pir.bench.splits`).
        text_weight: The words' share in ``image+text`` mode (0..1); fusion: ``zscore``, ``rrf`` or ``weighted``.

    Raises:
        TrainOverlapError: Queries include an encoder's training or validation patents.
    """
    if text_weight is None:
        text_weight = DEFAULT_TEXT_WEIGHT
    from pir.encoder.model import encoder_for  # lazy: start-up (torch, timm)

    mode_list = parse_modes(modes)
    variants = parse_choices(query_text, QUERY_TEXTS, "query words")
    if isinstance(enrich_levels, str):
        enrich_levels = [enrich_levels]
    levels = parse_choices(
        enrich_levels or [settings.enrich.level if enrich else "none"], ENRICH_LEVELS, "enrichment level"
    )
    run = BenchRun(environment=environment(settings), ks=tuple(ks), skipped=dict(skipped or {}))
    methods = resolve_encoders(encoders, settings)
    splits = [sp for label, spec in methods if (sp := read_split(label, spec)) is not None]
    sets = apply_encoder_splits(sets, splits, allow_overlap=allow_train_overlap)
    fusion = fusion or DEFAULT_FUSION  # the product's fusion unless told otherwise
    run.environment.update(
        modes=list(mode_list), query_text=list(variants), enrich=list(levels), text_weight=text_weight,
        fusion=fusion, bootstrap={"n_resamples": n_bootstrap, "level": CI_LEVEL, "seed": CI_SEED, "unit": "query"},
    )  # fmt: skip
    words_memo: dict[tuple[Any, ...], list[list[int]]] = {}
    text_encoder = None
    if any(m != "image" for m in mode_list):
        text_encoder = MemoTextEncoder(get_text_encoder(settings))
    with_baseline: set[str] = set()
    t_run = time.perf_counter()
    with EmbeddingCache.for_settings(settings.cache_dir) as cache:
        for label, spec in methods:
            enc = encoder_for(settings, spec)
            for bench in sets:
                try:
                    res = evaluate_method(
                        bench, enc, settings, cache, method=label, modes=mode_list, query_text=variants, k=k,
                        ks=ks, store_kind=store_kind, enrich_levels=levels, text_weight=text_weight, fusion=fusion,
                        baselines=baselines and bench.name not in with_baseline, words_memo=words_memo,
                        n_bootstrap=n_bootstrap, warnings=run.warnings, text_encoder=text_encoder,
                    )  # fmt: skip
                    with_baseline.add(bench.name)
                except ValueError as e:
                    log.warning("bench: %s skipped for %s: %s", bench.name, label, e)
                    run.skipped[f"{bench.name}/{label}"] = str(e)
                    continue
                run.results.setdefault(bench.name, []).extend(res)
                run.sets[bench.name] = bench
    run.datasets = [b.summary() for b in sets]
    run.environment["seconds_total"] = round(time.perf_counter() - t_run, 1)
    for w in run.warnings:
        log.warning("bench: %s", w)
    if out is not None:
        write_report(run, Path(out), plots=plots)
    return run


def shared_data_root() -> Path:
    """``../shared/data`` relative to the repository root (where the real sample data lives in this project)."""
    return Path(pir.__file__).resolve().parents[1].parent / "shared" / "data"


def default_sets(
    settings: Settings,
    *,
    limit: int | None = None,
    seed: int = 0,
    shared_root: str | Path | None = None,
    synth_patents: int = 120,
) -> tuple[list[BenchSet], dict[str, str]]:
    """The datasets of a bare ``pir bench``: the seeded synthetic corpus (``synth_patents`` patents; 0 = none), plus
    the real data when present.

    Real data (each reported separately): the USPTO 2021 design sample (relevance = same patent, and = same Locarno
    main class) and ``uspto_design_2007_uspc`` (relevance = same USPC main class).

    Returns:
        The sets, and name -> reason for datasets that were absent or unusable.
    """
    from pir.synth import synthesize_corpus  # lazy: only this path needs it

    sets: list[BenchSet] = []
    skipped: dict[str, str] = {}
    synth_dir = Path(settings.data_dir) / "bench" / f"synthetic-p{synth_patents}-s{seed}"
    if synth_patents > 0:  # 0 = real data only
        if not (synth_dir / "metadata.jsonl").is_file():
            synthesize_corpus(synth_dir, patents=synth_patents, seed=seed)
        sets.append(folder_set(synth_dir, relevance="class", limit=limit, seed=seed, name="synthetic"))
    root = Path(shared_root) if shared_root is not None else shared_data_root()
    real: list[tuple[str, Path, dict[str, Any]]] = [
        ("uspto-2021-sample", root / "impact_uspto_design_raw" / "sample_data", {"relevance": "patent"}),
        (
            "uspto-2021-sample-locarno",
            root / "impact_uspto_design_raw" / "sample_data",
            {"relevance": "class", "label_from": "locarno"},
        ),
        (
            "uspto-design-2007-uspc",
            root / "uspto_design_2007_uspc",
            {"relevance": "class", "class_column": "uspc_main_class"},
        ),
    ]
    for name, path, opts in real:
        if not path.is_dir():
            skipped[name] = f"{path} not found"
            continue
        try:
            sets.append(folder_set(path, limit=limit, seed=seed, name=name, **opts))
        except (ValueError, OSError) as e:
            log.warning("bench: dataset %s skipped: %s", name, e)
            skipped[name] = str(e)
    return sets, skipped


def bench_folders(
    settings: Settings,
    data: Sequence[str | Path] = (),
    *,
    relevance: Relevance | None = None,
    class_column: str | None = None,
    label_from: LabelFrom = "class",
    limit: int | None = None,
    seed: int = 0,
    shared_root: str | Path | None = None,
    synth_patents: int = 120,
    **options: Any,
) -> BenchRun:
    """``pir bench [--data DIR ...]``: leave-one-out on each folder; no folder = :func:`default_sets`.

    ``options`` go to :func:`run_benchmark` (encoders, modes, query_text, k, out, store_kind, enrich, plots,
    allow_train_overlap).
    """
    if data:
        opts = {"relevance": relevance, "class_column": class_column, "label_from": label_from}
        sets = [folder_set(p, limit=limit, seed=seed, **opts) for p in data]  # type: ignore[arg-type]
        skipped: dict[str, str] = {}
    else:
        sets, skipped = default_sets(
            settings, limit=limit, seed=seed, shared_root=shared_root, synth_patents=synth_patents
        )
    return run_benchmark(sets, settings, skipped=skipped, **options)


def bench_deeppatent2(
    settings: Settings,
    data: Sequence[str | Path],
    *,
    relevance: Relevance = "class",
    limit: int | None = None,
    seed: int = 0,
    split_file: str | Path | None = None,
    **options: Any,
) -> BenchRun:
    """``pir bench deeppatent2``: the DeepPatent2 protocol; the split is written to ``out/split.json`` (and to
    ``split_file`` when that does not exist yet; an existing ``split_file`` is reused). ``options``: see
    :func:`bench_folders`."""
    bench, split = deeppatent2_set(data, relevance=relevance, limit=limit, seed=seed, split_file=split_file)
    out = options.get("out")
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "split.json").write_text(json.dumps(split, indent=1))
    return run_benchmark([bench], settings, **options)


def bench_deeppatent(
    settings: Settings,
    lists: str | Path,
    images: str | Path,
    *,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    **options: Any,
) -> BenchRun:
    """``pir bench deeppatent``: the original DeepPatent query/gallery lists (only entries with an image file).
    ``options``: see :func:`bench_folders`."""
    bench = deeppatent_lists_set(lists, images, split=split, limit=limit, seed=seed)
    return run_benchmark([bench], settings, **options)
