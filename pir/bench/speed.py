"""``pir bench speed``: throughput, latency, store recall and memory on this machine.

Measured:

- **ingest**: end-to-end :func:`pir.pipeline.ingest` images/s on N figures with their metadata (hash, enrichment at
  the settings' level, decode, preprocess, embed, the ``text`` and ``words`` vectors, upsert into a fresh Qdrant Edge
  collection; index build timed separately; text encoder and WordNet loaded before the clock starts) against the
  bare encoder forward pass on the same images already decoded in memory: paired (each ingest batch's images run
  through the bare forward pass right after the batch, so both see the same load on a shared machine; the ratio
  ``forward_share_of_ingest`` uses it) and as the best of two passes. ``overhead_ms_per_image`` = the difference per
  image; ``stage_share`` = each stage's share of the ingest time (``text_share``: text and words vectors,
  ``enrich_share``: descriptions generated and looked up).
- **query**: image -> results latency p50/p95 through :func:`pir.search.service.search_images`, split into encode and
  search, on the collection just ingested (after ``optimize()``).
- **store**: search-only latency p50/p95 and recall@10 of Qdrant Edge (after ``optimize()``, HNSW) against an exact
  numpy brute force, on 10k and 100k synthetic L2-normalised vectors (clustered like real embeddings by default,
  ``--vectors random`` for structureless ones), unfiltered and with two payload filters: ``class``
  (one of 50 classes, 2% of the points: planned as an exact scan below ``exact_filter_threshold``) and ``year``
  (half of the points: filtered HNSW). The vector size defaults to the encoder's (1280 for
  ``tf_efficientnet_lite0``); structureless random vectors are the worst case for HNSW.
- **cold CLI** (``cold=True``): wall time of fresh ``pir`` processes, as a user meets them: ``python -c "import
  torch"`` (the floor), ``pir --help``, ``pir search IMG`` on a 1,000-figure collection and ``pir ingest`` of a
  100-figure synthetic corpus (enrichment on, as in ``make demo``); the cold search target is 2x (import torch +
  in-process encode p50).
- **memory**: peak resident set size of the process (``resource.getrusage``), device, torch threads, CPU count.

Queued ingest (``pir ingest --queue`` with 1 and 2 real worker processes against in-process, same drawings) is
measured by :func:`pir.workers.bench.bench_queue` (it starts workers, so it lives above this layer).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.enrich.aliases import load_lexicon
from pir.ingest.readers import read_figures
from pir.ingest.schema import PatentFigure, point_id
from pir.search import open_store
from pir.search.query import SearchFilter
from pir.search.words import get_text_encoder

if TYPE_CHECKING:
    from pir.core.config import Settings
    from pir.encoder.model import ImageEncoder

log = logging.getLogger(__name__)

N_CLASSES = 50


def _pct(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan")}
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1024 * 1024) if os.uname().sysname == "Darwin" else r / 1024, 1)


def bench_figures(settings: Settings, data: str | Path | None, n: int, seed: int) -> list[PatentFigure]:
    """The first ``n`` figures of ``data`` (any reader format), or of a seeded synthetic corpus."""
    if data is None:
        from pir.synth import synthesize_corpus  # lazy: start-up (PIL)

        data = Path(settings.data_dir) / "bench" / f"speed-synth-n{n}-s{seed}"
        if not (Path(data) / "metadata.jsonl").is_file():
            synthesize_corpus(Path(data), patents=max(20, n // 3), seed=seed)
    figures: list[PatentFigure] = []
    for fig in read_figures(Path(data)):
        figures.append(fig)
        if len(figures) >= n:
            break
    if not figures:
        raise ValueError(f"{data}: no images found for the speed benchmark")
    return figures


def per_million(images_per_s: float) -> dict[str, float | None]:
    """Hours to ingest a million figures at ``images_per_s``: of this machine, and of its cores (machine-hours x CPU
    count)."""
    if not images_per_s or images_per_s != images_per_s:  # 0 or NaN
        return {"machine_hours": None, "core_hours": None}
    hours = 1e6 / images_per_s / 3600
    return {"machine_hours": round(hours, 2), "core_hours": round(hours * (os.cpu_count() or 1), 2)}


def write_subset(figures: Sequence[PatentFigure], folder: Path) -> Path:
    """A folder that reads back as exactly ``figures``, metadata included: links ``IMG<i>.<ext>`` to the images and
    a ``metadata.jsonl`` sidecar (read it with ``reader_options={"follow_outside": True}``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, fig in enumerate(figures):
        src = Path(fig.image_path)
        link = folder / f"IMG{i:06d}{src.suffix.lower()}"
        if not link.is_symlink():
            link.symlink_to(src.resolve())
        rows.append(json.dumps({**fig.model_dump(mode="json"), "image_path": link.name}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def warm_ingest(settings: Settings, enrich: bool) -> tuple[Any, float]:
    """Load what ingest loads on first use (text encoder, WordNet lexicon) so the timing is the steady state;
    returns the text encoder and the seconds it took."""
    t = time.perf_counter()
    te = get_text_encoder(settings)
    te.encode(["warm-up"])
    if enrich and settings.enrich.level != "none":
        load_lexicon()
    return te, time.perf_counter() - t


def measure_ingest(
    settings: Settings,
    encoder: ImageEncoder,
    figures: Sequence[PatentFigure],
    work: Path,
    *,
    n_queries: int = 20,
    enrich: bool = True,
) -> dict[str, Any]:
    """Pipeline ingest (enrichment at the settings' level, all three vectors) vs the bare forward pass on the same
    images, then image-query latency on that collection.

    The forward pass is timed twice: as the best of two passes over all images (decoded in memory), and paired:
    after each ingest batch the same batch's decoded images go through the bare forward pass (that time is taken out
    of the ingest's). Paired, both see the same load on a shared machine; the ratio uses it.
    """
    from pir.pipeline import ingest  # lazy: start-up (PIL, tqdm)
    from pir.search.edge import EdgeStore  # lazy: start-up (qdrant_edge)
    from pir.search.service import search_images  # lazy: start-up (PIL)

    folder = write_subset(figures, work / "images")
    index = {f"IMG{i:06d}": i for i in range(len(figures))}
    bs = settings.encoder.batch_size
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    images = [encoder.load_image(f.image_path) for f in figures]
    load_s = time.perf_counter() - t0
    encoder.encode_pil(images[: min(len(images), bs)], batch_size=bs)  # warm-up
    te, warm_s = warm_ingest(settings, enrich)
    forward_s = float("inf")
    for _ in range(2):  # the faster of two passes: the first meets each new batch shape (kernel set-up)
        t1 = time.perf_counter()
        encoder.encode_pil(images, batch_size=bs)
        forward_s = min(forward_s, time.perf_counter() - t1)

    paired = {"s": 0.0, "cpu": 0.0, "n": 0}

    def forward_same_batch(batch: list[PatentFigure], _res: Any) -> None:
        t, c = time.perf_counter(), time.process_time()
        encoder.encode_pil([images[index[Path(f.image_path).stem]] for f in batch], batch_size=bs)
        paired["s"] += time.perf_counter() - t
        paired["cpu"] += time.process_time() - c
        paired["n"] += len(batch)

    s2 = settings.model_copy(update={"data_dir": work / "pir"})
    store = EdgeStore(work / "store" / "speed", "speed", hnsw_ef=settings.qdrant.hnsw_ef)
    try:
        t_cpu = time.process_time()
        summary = ingest(
            folder, s2, encoder=encoder, store=store, enrich=enrich, force=True, optimize=False, show_progress=False,
            reader_options={"follow_outside": True}, text_encoder=te, on_batch=forward_same_batch,
        )  # fmt: skip
        ingest_cpu_s = time.process_time() - t_cpu
        points = list(store.scroll(with_vectors=True))
        t2 = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - t2
        qpaths = [Path(figures[i % len(figures)].image_path) for i in range(n_queries + 2)]
        enc_ms, search_ms, total_ms = [], [], []
        for j, qp in enumerate(qpaths):
            t = time.perf_counter()
            resp = search_images([qp], s2, encoder=encoder, store=store, k=10)
            if j < 2:  # warm-up
                continue
            total_ms.append((time.perf_counter() - t) * 1e3)
            enc_ms.append(resp.encode_ms)
            search_ms.append(resp.search_ms)
    finally:
        store.close()
    n = len(figures)
    ingest_s = summary.seconds - paired["s"]
    ingest_ips = summary.ingested / ingest_s if ingest_s > 0 else float("nan")
    forward_ips = n / forward_s if forward_s > 0 else float("nan")
    paired_ips = paired["n"] / paired["s"] if paired["s"] > 0 else float("nan")
    stages = dict(summary.stage_seconds)
    share = {k: round(v / ingest_s, 3) for k, v in stages.items()} if ingest_s > 0 else {}
    return {
        "ingest": {
            "n_images": n,
            "ingested": summary.ingested,
            "failed": summary.n_failed,
            "seconds": round(ingest_s, 3),
            "images_per_s": round(ingest_ips, 2),
            "cpu_s_per_image": round((ingest_cpu_s - paired["cpu"]) / max(1, summary.ingested), 4),
            "per_million_figures": per_million(ingest_ips),
            "optimize_s": round(optimize_s, 3),
            "enrich": enrich,
            "enrich_level": settings.enrich.level if enrich else "off",
            "with_text_vector": sum(p.text is not None for p in points),
            "with_words_vector": sum(p.words is not None for p in points),
            "warm_up_s": round(warm_s, 3),
            "load_average_before_after": [round(x, 2) for x in (*load0, *os.getloadavg())],
            "stage_seconds": {k: round(v, 3) for k, v in stages.items()},
            "stage_share": share,
            "text_share": share.get("text", 0.0),
            "enrich_share": round(share.get("enrich", 0.0) + share.get("describe", 0.0), 3),
        },
        "encoder_forward": {
            "images_per_s": round(forward_ips, 2),
            "paired_images_per_s": round(paired_ips, 2),
            "seconds": round(forward_s, 3),
            "load_preprocess_s": round(load_s, 3),
            "load_images_per_s": round(n / load_s, 2) if load_s > 0 else None,
            "batch_size": bs,
        },
        "pipeline_overhead": {
            "ms_per_image_ingest": round(1e3 / ingest_ips, 2),
            "ms_per_image_forward": round(1e3 / paired_ips, 2),
            "overhead_ms_per_image": round(1e3 / ingest_ips - 1e3 / paired_ips, 2),
            "forward_share_of_ingest": round(ingest_ips / paired_ips, 3),
            "forward_share_of_ingest_vs_best_pass": round(ingest_ips / forward_ips, 3),
        },
        "query_latency": {
            "n_queries": len(total_ms),
            "k": 10,
            "total": _pct(total_ms),
            "encode": _pct(enc_ms),
            "search": _pct(search_ms),
        },
    }


def _payloads(n: int) -> list[dict[str, Any]]:
    return [
        {
            "patent_id": f"P{i // 5:07d}",
            "figure_id": f"F{i % 5}",
            "class_label": f"c{i % N_CLASSES:02d}",
            "classes": [f"c{i % N_CLASSES:02d}"],
            "year": 2000 + (i % 20),
        }
        for i in range(n)
    ]


def synthetic_vectors(
    rng: np.random.Generator, size: int, n_queries: int, dim: int, *, kind: str = "clustered"
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors for the store benchmark.

    ``clustered`` (default) mimics real figure embeddings: ``size // 50`` random centres, each point a centre plus
    isotropic noise (cosine to its centre about 0.7, about 0.5 between two points of one centre); queries are new draws
    from the same mixture, so their true neighbours are a cluster's members and the store must order them finely.
    ``random`` is i.i.d. Gaussian directions: no structure at all, the worst case for any graph index (every
    neighbour is almost equally far), reported for completeness.
    """
    if kind == "random":
        x = rng.standard_normal((size, dim), dtype=np.float32)
        q = rng.standard_normal((n_queries, dim), dtype=np.float32)
    elif kind == "clustered":
        n_centres = max(1, size // 50)
        centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        noise = 1.0 / np.sqrt(dim)
        x = centres[rng.integers(0, n_centres, size)] + noise * rng.standard_normal((size, dim), dtype=np.float32)
        q = centres[rng.integers(0, n_centres, n_queries)] + noise * rng.standard_normal(
            (n_queries, dim), dtype=np.float32
        )
    else:
        raise ValueError(f"unknown vector kind {kind!r} (clustered, random)")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


def measure_store(
    settings: Settings,
    size: int,
    dim: int,
    work: Path,
    *,
    n_queries: int = 100,
    k: int = 10,
    seed: int = 0,
    vectors: str = "clustered",
) -> dict[str, Any]:
    """Search-only latency and recall@k of Qdrant Edge (after optimize) vs exact numpy (see synthetic_vectors)."""
    from pir.search.edge import EdgeStore  # lazy: start-up (qdrant_edge)

    rng = np.random.default_rng(seed)
    x, q = synthetic_vectors(rng, size, n_queries, dim, kind=vectors)
    ids = [point_id("speed", str(i)) for i in range(size)]
    pos = {pid: i for i, pid in enumerate(ids)}
    payloads = _payloads(size)
    classes = np.arange(size) % N_CLASSES
    years = 2000 + (np.arange(size) % 20)
    path = work / f"store-{size}"
    shutil.rmtree(path, ignore_errors=True)
    q_cfg = settings.qdrant
    store = EdgeStore(
        path,
        f"speed{size}",
        hnsw_ef=q_cfg.hnsw_ef,
        exact_filter_threshold=q_cfg.exact_filter_threshold,
        hnsw_m=q_cfg.hnsw_m,
        hnsw_ef_construct=q_cfg.hnsw_ef_construct,
    )
    out: dict[str, Any] = {"size": size, "dim": dim, "k": k, "n_queries": n_queries, "vectors": vectors}
    try:
        store.ensure_collection(dim)
        t0 = time.perf_counter()
        store.upsert(ids, x, payloads)
        out["upsert_s"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        store.optimize()
        out["optimize_s"] = round(time.perf_counter() - t1, 2)
        filters: dict[str, tuple[SearchFilter | None, np.ndarray]] = {
            "none": (None, np.ones(size, dtype=bool)),
            "class": (SearchFilter(classes=["c07"]), classes == 7),
            "year": (SearchFilter(year_from=2000, year_to=2009), years <= 2009),
        }
        for name, (flt, mask) in filters.items():
            sub = np.flatnonzero(mask)
            xs = x[sub]
            lat, exact_lat, recalls = [], [], []
            for _ in range(3):  # warm-up
                store.search(q[0], k, filter=flt)
            for j in range(n_queries):
                t = time.perf_counter()
                hits = store.search(q[j], k, filter=flt)
                lat.append((time.perf_counter() - t) * 1e3)
                t = time.perf_counter()
                scores = xs @ q[j]
                top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
                top = sub[top[np.argsort(-scores[top])]]
                exact_lat.append((time.perf_counter() - t) * 1e3)
                got = {pos[h.id] for h in hits}
                recalls.append(len(got & set(top.tolist())) / min(k, len(sub)))
            out[f"filter_{name}"] = {
                "matching_points": int(len(sub)),
                "store": _pct(lat),
                "exact_numpy": _pct(exact_lat),
                f"recall@{k}": round(float(np.mean(recalls)), 4),
                "planned_exact": bool(flt is not None and len(sub) < store.exact_filter_threshold),
            }
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)
    out["peak_rss_mb_after"] = peak_rss_mb()
    return out


def _pir_command() -> list[str]:
    """The ``pir`` console script of this interpreter's environment (else ``python -c`` on the CLI)."""
    script = Path(sys.executable).parent / "pir"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from pir.cli import main; main()"]


def _timed(cmd: list[str], env: dict[str, str], timeout: float = 900) -> tuple[float, str]:
    """Wall seconds of one fresh process (raises RuntimeError with its last stderr line when it fails)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"{' '.join(cmd[:3])}...: exit {proc.returncode}: {tail}")
    return round(wall, 3), proc.stdout


def _seed_store(settings: Settings, encoder: ImageEncoder, collection: str, size: int, seed: int) -> None:
    """A ``size``-figure collection of embedding-like vectors, created as ingest creates it (for the cold search)."""
    from pir.pipeline import ensure_collection  # lazy: start-up (PIL, tqdm)

    x, _ = synthetic_vectors(np.random.default_rng(seed), size, 1, encoder.dim)
    with open_store(settings, collection=collection) as store:
        ensure_collection(store, encoder, get_text_encoder(settings))
        store.upsert([point_id("cold", str(i)) for i in range(size)], x, _payloads(size))
        store.optimize()


def measure_cold_cli(
    settings: Settings, encoder: ImageEncoder, spec: str, work: Path, *, n_ingest: int = 100, store_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Wall times of fresh CLI processes (see the module docstring); ``spec`` is the encoder name or directory."""
    from pir.synth import synthesize_corpus  # lazy: start-up (PIL)

    data_dir = work / "cold"
    s2 = settings.model_copy(update={"data_dir": data_dir, "qdrant": settings.qdrant.model_copy(update={"url": None})})
    env = {**os.environ, "PIR_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PIR_ENCODER__DEVICE"] = str(settings.encoder.device)
    corpus = work / "cold-corpus"
    synthesize_corpus(corpus, patents=max(3, n_ingest // 3), seed=seed)
    lines = (corpus / "metadata.jsonl").read_text().splitlines()[:n_ingest]
    (corpus / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    query = corpus / json.loads(lines[0])["file"]
    _seed_store(s2, encoder, "cold1k", store_size, seed)
    pir = _pir_command()
    out: dict[str, Any] = {"n_ingest": len(lines), "store_size": store_size, "command": pir[0]}
    out["import_torch_s"], _ = _timed([sys.executable, "-c", "import torch"], env)
    out["help_s"], _ = _timed([*pir, "--help"], env)
    search = [*pir, "search", str(query), "--encoder", spec, "--collection", "cold1k", "--json"]
    out["search_s"], _ = _timed(search, env)
    ingest = [*pir, "ingest", str(corpus), "--encoder", spec, "--collection", "cold100", "--json"]
    out["ingest_s"], text = _timed(ingest, env)
    done = json.loads(text[text.index("{") :]).get("ingested", 0) if "{" in text else 0
    out["ingest_figures"] = done
    out["ingest_figures_per_s"] = round(done / out["ingest_s"], 2) if out["ingest_s"] > 0 else None
    return out


def bench_speed(
    settings: Settings,
    *,
    data: str | Path | None = None,
    n_images: int = 200,
    sizes: str | Sequence[int] = (10_000, 100_000),
    dim: int | None = None,
    n_queries: int = 100,
    n_query_images: int = 20,
    encoder: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    vectors: str = "clustered",
    cold: bool = True,
    enrich: bool = True,
) -> dict[str, Any]:
    """Run the speed benchmark (see the module docstring); write ``speed.json`` / ``speed.md`` into ``out``.

    Args:
        settings: Settings (device, batch size, Qdrant tuning, data dir for the synthetic images).
        data: Image folder (any reader format); None = a seeded synthetic corpus.
        n_images: Images for the ingest and forward-pass measurement.
        sizes: Store sizes for the search-only measurement.
        dim: Vector size of the store measurement (default: the encoder's).
        n_queries: Queries per store measurement.
        n_query_images: Image queries for the end-to-end latency.
        encoder: Encoder name or directory (default: the settings' encoder).
        out: Report folder.
        seed: Seed of the synthetic data and random vectors.
        vectors: ``clustered`` (embedding-like, default) or ``random`` store vectors (see synthetic_vectors).
        cold: Also time fresh CLI processes (:func:`measure_cold_cli`).
        enrich: Ingest with enrichment (the settings' ``enrich.level``), as ``pir ingest`` does by default.

    Raises:
        ValueError: ``sizes`` is not a comma-separated list of integers; no images.
    """
    if isinstance(sizes, str):
        try:
            sizes = [int(x) for x in sizes.split(",") if x.strip()]
        except ValueError as e:
            raise ValueError(f"--sizes {sizes!r}: expected comma-separated integers") from e
    import torch  # lazy: start-up (torch)

    from pir.encoder.backbone import set_threads  # lazy: start-up (torch, timm)
    from pir.encoder.model import encoder_for  # lazy: start-up (torch, timm, PIL)

    set_threads(settings.encoder.num_threads)  # as ingest does: every pass below runs with the same threads
    enc = encoder_for(settings, encoder)
    result: dict[str, Any] = {
        "environment": {
            "device": settings.encoder.device,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "encoder": enc.name,
            "encoder_dim": enc.dim,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    }
    work = Path(tempfile.mkdtemp(prefix="pir-speed-", dir=_mkdir(Path(settings.data_dir) / "bench")))
    try:
        figures = bench_figures(settings, data, n_images, seed)
        result.update(measure_ingest(settings, enc, figures, work, n_queries=n_query_images, enrich=enrich))
        result["peak_rss_mb_after_ingest"] = peak_rss_mb()
        d = int(dim or enc.dim)
        result["store"] = [
            measure_store(settings, int(s), d, work, n_queries=n_queries, seed=seed, vectors=vectors) for s in sizes
        ]
        if cold:
            cold_cli = measure_cold_cli(settings, enc, encoder or settings.encoder.name, work, seed=seed)
            encode_s = result["query_latency"]["encode"]["p50_ms"] / 1e3
            cold_cli["search_target_s"] = round(2 * (cold_cli["import_torch_s"] + encode_s), 3)
            cold_cli["search_within_target"] = cold_cli["search_s"] <= cold_cli["search_target_s"]
            result["cold_cli"] = cold_cli
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["peak_rss_mb"] = peak_rss_mb()
    if out is not None:
        o = _mkdir(Path(out))
        (o / "speed.json").write_text(json.dumps(result, indent=2))
        (o / "speed.md").write_text(speed_markdown(result))
    return result


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _cold_lines(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    return [
        f"- cold CLI (fresh processes): `import torch` {c['import_torch_s']} s; `pir --help` {c['help_s']} s; "
        f"`pir search` on {c['store_size']} figures {c['search_s']} s (target {c['search_target_s']} s: "
        f"{'met' if c['search_within_target'] else 'missed'}); `pir ingest` of {c['n_ingest']} figures "
        f"{c['ingest_s']} s = {c['ingest_figures_per_s']} figures/s (enrichment on)"
    ]


def _stage_lines(ing: dict[str, Any]) -> list[str]:
    share = ing.get("stage_share")
    if not share:
        return []
    parts = ", ".join(f"{k} {v:.1%}" for k, v in sorted(share.items(), key=lambda kv: -kv[1]))
    return [
        f"- ingest time by stage: {parts}; text+words vectors {ing['text_share']:.1%}, enrichment "
        f"{ing['enrich_share']:.1%}; {ing['with_text_vector']}/{ing['ingested']} figures with a text vector, "
        f"{ing['with_words_vector']} with words; load average before/after {ing['load_average_before_after']}",
        f"- a million figures at this rate: {ing['per_million_figures']['machine_hours']} machine-hours "
        f"({ing['per_million_figures']['core_hours']} core-hours); process CPU {ing['cpu_s_per_image']} s/figure",
    ]


def speed_markdown(r: dict[str, Any]) -> str:
    """A short markdown summary of a :func:`bench_speed` result."""
    env, ing, fwd, ovh, ql = (
        r["environment"],
        r["ingest"],
        r["encoder_forward"],
        r["pipeline_overhead"],
        r["query_latency"],
    )
    lines = [
        "# pir bench speed",
        "",
        f"device {env['device']}, torch threads {env['torch_threads']}, CPUs {env['cpu_count']}, encoder "
        f"{env['encoder']} ({env['encoder_dim']}-d), peak RSS {r['peak_rss_mb']} MiB",
        "",
        f"- ingest (pipeline, {ing['n_images']} images, enrichment {ing.get('enrich_level', 'off')}): "
        f"{ing['images_per_s']} img/s; bare forward pass: {fwd.get('paired_images_per_s', fwd['images_per_s'])} "
        f"img/s paired ({fwd['images_per_s']} best pass); ingest = {ovh['forward_share_of_ingest']:.0%} of the "
        f"forward pass; overhead {ovh['overhead_ms_per_image']} ms/image; decode+preprocess alone "
        f"{fwd['load_images_per_s']} img/s",
        *_stage_lines(ing),
        f"- image query (k=10): total p50 {ql['total']['p50_ms']} ms / p95 {ql['total']['p95_ms']} ms; encode p50 "
        f"{ql['encode']['p50_ms']} / p95 {ql['encode']['p95_ms']} ms; search p50 {ql['search']['p50_ms']} / p95 "
        f"{ql['search']['p95_ms']} ms",
        *_cold_lines(r.get("cold_cli")),
        "",
        "| size | dim | filter | matching | store p50 ms | store p95 ms | numpy exact p50 ms | recall@10 "
        "| optimize s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in r["store"]:
        for name in ("none", "class", "year"):
            f = s[f"filter_{name}"]
            lines.append(
                f"| {s['size']} | {s['dim']} | {name} | {f['matching_points']} | {f['store']['p50_ms']} | "
                f"{f['store']['p95_ms']} | {f['exact_numpy']['p50_ms']} | {f['recall@10']} | {s['optimize_s']} |"
            )
    return "\n".join(lines) + "\n"
