"""The bench report: ``results.json``, ``results.md`` (methods x metrics, overall/head/tail, per dataset) and PNGs.

Plots (matplotlib, Agg backend), per dataset:

- ``recall_<dataset>.png``: Recall@K (hit rate) for K = 1..20, one curve per method;
- ``tsne_<dataset>_<method>.png``: a 2-D t-SNE (scikit-learn) of up to 2,000 embeddings coloured by class (the 15
  biggest classes; all others grey);
- ``grid_<dataset>_<method>.png``: qualitative results, one row per query: the query, then its top-k results framed
  green (relevant) or red (not relevant).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pir.bench.results import BenchRun, MethodResult

if TYPE_CHECKING:
    from pir.bench.datasets import BenchSet

log = logging.getLogger(__name__)

TSNE_MAX_POINTS = 2000
TSNE_TOP_CLASSES = 15
GRID_QUERIES = 6
GRID_TOP_K = 5


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")[:60] or "x"


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def markdown_table(run: BenchRun) -> str:
    """``results.md``: per dataset, one row per method and bucket (overall / head / tail)."""
    ks = run.ks
    cols = ["map"] + [f"recall@{k}" for k in ks] + [f"mrr@{k}" for k in ks]
    heads = ["mAP"] + [f"R@{k}" for k in ks] + [f"MRR@{k}" for k in ks]
    lines = ["# pir bench results", ""]
    env = run.environment
    lines.append(
        f"device {env.get('device')}, torch threads {env.get('torch_threads')}, CPUs {env.get('cpu_count')}, "
        f"{env.get('time')}. Recall@K = hit rate (any relevant item in the top K). Searched through the vector "
        "store; the query itself (and, for class relevance, its whole patent) is excluded."
    )
    boot = env.get("bootstrap") or {}
    if boot:
        lines.append("")
        lines.append(
            f"Intervals: {round(100 * boot.get('level', 0.95))}% percentile bootstrap over queries "
            f"({boot.get('n_resamples')} resamples, seed {boot.get('seed')}); n = evaluated queries. `title-only` = "
            "the query words against each gallery title, plain cosine of the frozen text encoder (no store, no "
            "fusion, no enrichment)."
        )
    if run.warnings:
        lines.append("")
        lines.extend(f"**Warning:** {w}" for w in run.warnings)
    lines.append("")
    by_name = {d["name"]: d for d in run.datasets}
    for name, results in run.results.items():
        d = by_name.get(name, {})
        lines.append(f"## {name}")
        lines.append("")
        lines.append(
            f"protocol {d.get('protocol')}, relevance = same {d.get('relevance')}, {d.get('n_queries')} queries, "
            f"gallery {d.get('n_gallery')} figures, {d.get('n_patents')} patents, {d.get('n_labels')} labels"
        )
        lines.append("")
        lines.extend(headline_table(results))
        lines.append("")
        lines.append("| method | mode | words | enrich | bucket | queries | " + " | ".join(heads) + " |")
        lines.append("|---|---|---|---|---|---:|" + "---:|" * len(heads))
        for r in results:
            rep = r.report
            for bucket, n in (("overall", rep.n_queries), ("head", rep.n_queries_head), ("tail", rep.n_queries_tail)):
                vals = getattr(rep, bucket)
                cells = " | ".join(_fmt(vals.get(c)) for c in cols)
                lines.append(
                    f"| {r.method} | {r.mode} | {r.query_text or '-'} | {r.enrich} | {bucket} | {n} | {cells} |"
                )
        notes = [_note(r) for r in results]
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
        lines.append("")
    for name, reason in run.skipped.items():
        lines.append(f"- skipped {name}: {reason}")
    return "\n".join(lines).rstrip() + "\n"


def _ci_cell(r: MethodResult, metric: str) -> str:
    v = r.report.overall.get(metric)
    lo, hi = r.intervals.get(metric, (float("nan"), float("nan")))
    if math.isnan(lo):
        return _fmt(v)
    return f"{_fmt(v)} [{lo:.3f}, {hi:.3f}]"


def headline_table(results: list[MethodResult]) -> list[str]:
    """One row per result: n and mAP / R@10 / MRR@10 with their bootstrap intervals (overall)."""
    metrics = [m for m in ("map", "recall@10", "mrr@10") if any(m in r.report.overall for r in results)]
    names = {"map": "mAP", "recall@10": "R@10", "mrr@10": "MRR@10"}
    out = [
        "| method | mode | words | enrich | n | " + " | ".join(f"{names[m]} [95% CI]" for m in metrics) + " |",
        "|---|---|---|---|---:|" + "---|" * len(metrics),
    ]
    for r in results:
        mode = "cosine" if r.method == "title-only" else r.mode
        cells = " | ".join(_ci_cell(r, m) for m in metrics)
        out.append(f"| {r.method} | {mode} | {r.query_text or '-'} | {r.enrich} | {r.report.n_queries} | {cells} |")
    return out


def _note(r: MethodResult) -> str:
    """One line about how a row was measured."""
    how = "full ranking" if r.full_ranking else ("mAP exact" if r.exact is not None else f"mAP@{r.depth}")
    text = f"{r.label}: store {r.store_backend}, depth {r.depth} ({how})"
    if r.agreement_max_abs_diff is not None:
        text += f", store vs exact max |diff| {r.agreement_max_abs_diff:.4f}"
    if r.query_text:
        text += f", query words {r.query_text} ({r.n_queries_without_words} queries without words"
        if r.n_queries_not_paraphrased is not None:
            text += f", {r.n_queries_not_paraphrased} kept their title: no paraphrase found"
        text += ")"
    return text + (
        f", {r.n_embedded_new} new / {r.n_embedded_cached} cached embeddings, {r.n_failed_images} unreadable"
    )


def write_report(run: BenchRun, out: Path, *, plots: bool = True) -> list[Path]:
    """Write ``results.json``, ``results.md`` and (with ``plots``) the PNGs into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    (out / "results.json").write_text(json.dumps(run.to_dict(), indent=2, default=str))
    files.append(out / "results.json")
    (out / "results.md").write_text(markdown_table(run))
    files.append(out / "results.md")
    if plots:
        import matplotlib  # lazy: start-up (matplotlib)

        matplotlib.use("Agg")
        for name, results in run.results.items():
            bench = run.sets[name]
            files.append(plot_recall_curves(name, results, out / f"recall_{_slug(name)}.png"))
            for r in results:
                if r.mode != "image":  # one t-SNE / grid per method: the image rows
                    continue
                suffix = _slug(r.method)
                try:
                    p = plot_tsne(bench, r, out / f"tsne_{_slug(name)}_{suffix}.png")
                    if p:
                        files.append(p)
                    p = plot_grid(bench, r, out / f"grid_{_slug(name)}_{suffix}.png")
                    if p:
                        files.append(p)
                except Exception as e:  # noqa: BLE001  (a failed plot must not lose the numbers)
                    log.warning("bench: plot for %s/%s failed: %s", name, r.method, e)
    run.out = out
    run.files = [str(f) for f in files]
    return files


def plot_recall_curves(name: str, results: list[MethodResult], path: Path) -> Path:
    """Recall@K (K = 1..20) per method."""
    import matplotlib.pyplot as plt  # lazy: start-up (matplotlib)

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for r in results:
        ks = sorted(r.curve)
        ax.plot(ks, [r.curve[k] for k in ks], marker="o", ms=3, label=r.label)
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K (hit rate)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{name}: Recall@K")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_tsne(bench: BenchSet, r: MethodResult, path: Path, *, seed: int = 0) -> Path | None:
    """2-D t-SNE of up to 2,000 embeddings, the biggest classes coloured, the rest grey."""
    import matplotlib.pyplot as plt  # lazy: start-up (matplotlib)
    from sklearn.manifold import TSNE  # lazy: start-up (sklearn)

    if r.embeddings is None or len(r.embedded_items) < 5:
        return None
    rng = np.random.default_rng(seed)
    n = len(r.embedded_items)
    pick = np.sort(rng.choice(n, size=min(n, TSNE_MAX_POINTS), replace=False))
    x = r.embeddings[pick]
    labels = [bench.items[r.embedded_items[i]].label or "(none)" for i in pick]
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine").fit_transform(x)
    top = [c for c, _ in Counter(labels).most_common(TSNE_TOP_CLASSES)]
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    other = np.array([lab not in top for lab in labels])
    ax.scatter(xy[other, 0], xy[other, 1], s=6, c="lightgrey", label="other classes" if other.any() else None)
    cmap = plt.get_cmap("tab20")
    for ci, c in enumerate(top):
        m = np.array([lab == c for lab in labels])
        ax.scatter(xy[m, 0], xy[m, 1], s=10, color=cmap(ci % 20), label=f"{c[:24]} ({int(m.sum())})")
    ax.set_title(f"{bench.name} / {r.label}: t-SNE of {len(x)} embeddings")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _thumb(path: Path, size: int = 128) -> np.ndarray:
    from PIL import Image  # lazy: start-up (PIL)

    try:
        with Image.open(path) as opened:
            im = opened.convert("L")
            im.thumbnail((size, size))
            canvas = Image.new("L", (size, size), 255)
            canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
            return np.asarray(canvas)
    except Exception:  # noqa: BLE001  (an unreadable thumbnail is drawn blank)
        return np.full((size, size), 200, dtype=np.uint8)


def plot_grid(bench: BenchSet, r: MethodResult, path: Path, *, seed: int = 0) -> Path | None:
    """Query + top-k thumbnails per row; relevant results framed green, irrelevant red."""
    import matplotlib.pyplot as plt  # lazy: start-up (matplotlib)

    if not r.rankings:
        return None
    rng = np.random.default_rng(seed)
    rows = sorted(rng.choice(len(r.query_items), size=min(GRID_QUERIES, len(r.query_items)), replace=False))
    k = min(GRID_TOP_K, max(len(x) for x in r.rankings))
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.7 * (k + 1), 1.9 * len(rows)), dpi=100, squeeze=False)
    for a, row in enumerate(rows):
        qi = r.query_items[row]
        q = bench.items[qi]
        ax = axes[a][0]
        ax.imshow(_thumb(q.path), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"Q {str(q.label)[:16]}", fontsize=7)
        for side in ax.spines.values():
            side.set_edgecolor("blue")
            side.set_linewidth(2.5)
        for b in range(k):
            ax = axes[a][b + 1]
            ranked = r.rankings[row]
            if b < len(ranked):
                g = bench.items[ranked[b]]
                rel = g.label is not None and g.label == q.label
                ax.imshow(_thumb(g.path), cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{b + 1}. {str(g.label)[:14]}", fontsize=7)
                for side in ax.spines.values():
                    side.set_edgecolor("green" if rel else "red")
                    side.set_linewidth(3)
            else:
                ax.axis("off")
        for ax in axes[a]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{bench.name} / {r.label}: query (blue) and top-{k} (green = relevant, red = not)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_text(run: BenchRun) -> str:
    """What ``pir bench`` prints: the markdown table and where the report went."""
    text = markdown_table(run)
    return text + (f"report written to {run.out}\n" if run.out is not None else "")


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` back."""
    return json.loads(Path(path).read_text())
