"""How the CLI prints results: tables, summaries and JSON. No library logic and no heavy imports."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def print_failures(items: Any) -> None:
    for f in items:
        d = f if isinstance(f, dict) else {"path": getattr(f, "path", f), "reason": getattr(f, "reason", "")}
        click.echo(f"  FAILED {d.get('path')}: {d.get('reason')}", err=True)


def print_ingest(summary: Any, as_json: bool) -> None:
    """An in-process ingest summary, or a queued job's status."""
    if as_json:
        echo_json(as_dict(summary))
    elif hasattr(summary, "job_id"):
        print_job(summary, False)
    else:
        unread = f" (+{len(summary.read_issues)} unreadable records)" if summary.read_issues else ""
        click.echo(
            f"{summary.discovered} figures found{unread}: ingested {summary.ingested}, skipped {summary.skipped} "
            f"(already stored, unchanged), failed {len(summary.failed) + len(summary.read_issues)} in "
            f"{summary.seconds:.1f} s; collection {summary.collection!r} now holds {summary.store_count} points"
        )
        print_failures(list(summary.read_issues) + list(summary.failed))


def print_submitted(job: Any) -> None:
    manifest = getattr(job, "manifest", "")
    click.echo(
        f"job {job.job_id}: {job.total} figures in {job.n_batches} batches queued"
        + (f" (manifest: {manifest}; `pir jobs resume {job.job_id}` submits what a broker loses)" if manifest else "")
    )


def print_job(status: Any, as_json: bool) -> None:
    d = as_dict(status)
    if as_json:
        echo_json(d)
        return
    keys = ("job_id", "state", "total", "done", "skipped", "failed", "pending")
    click.echo(" ".join(f"{k}={d[k]}" for k in keys if k in d))
    if d.get("note"):
        click.echo(d["note"], err=True)
    print_failures(d.get("failures", []))


def print_search(resp: Any, as_json: bool, details: bool = False) -> None:
    """A search response as a table (``--details``: classes, image path, a stored description) or JSON."""
    if as_json:
        echo_json(resp.to_dict())
        return
    if not resp.results:
        click.echo("no results")
        return
    click.echo(f"{'#':>3}  {'score':>6}  {'patent':<14} {'figure':<10} {'class':<10} {'view':<14} {'year':<5} title")
    for r in resp.results:
        click.echo(
            f"{r.rank:>3}  {r.score:6.3f}  {r.patent_id:<14} {r.figure_id:<10} {str(r.class_label or '-'):<10} "
            f"{str(r.viewpoint or '-'):<14} {str(r.year or '-'):<5} {r.title or ''}"
        )
        if details:
            click.echo(f"{'':>13}classes: {', '.join(r.classes) or '-'}")
            click.echo(f"{'':>13}image:   {r.image_path or '-'}")
            if r.descriptions:
                click.echo(f"{'':>13}about:   {r.descriptions[0]}")
    click.echo(f"(encode {resp.encode_ms:.0f} ms, search {resp.search_ms:.1f} ms)")


def print_mapping(d: dict[str, Any], as_json: bool, indent: int = 0) -> None:
    """``key: value`` lines (a nested mapping indented under its key), or JSON."""
    if as_json:
        echo_json(d)
        return
    pad = " " * indent
    for k, v in d.items():
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
            click.echo(f"{pad}{k:>16}:")
            print_mapping(v, False, indent + 4)
        else:
            click.echo(f"{pad}{k:>16}: {v}")


def fmt_metric(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "-"


TRAIN_HEADER = (
    f"{'epoch':>5} {'step':>6} {'loss':>8} {'scale':>8} {'mAP':>7} {'R@10':>7} {'MRR@10':>7} {'tail mAP':>8} "
    f"{'time':>7}  weights"
)


def print_epoch(entry: dict[str, Any]) -> None:
    """One line per training epoch (validation metrics)."""
    val = entry.get("val") or {}
    o, t = val.get("overall", {}), val.get("tail", {})
    loss = entry.get("train", {}).get("loss")
    state = entry.get("loss_state", {})
    w = " ".join(
        f"{k.split('/')[1].removesuffix('_loss')}={v:.2f}" for k, v in state.items() if k.startswith("weight/")
    )
    click.echo(
        f"{entry['epoch']:>5} {entry['step']:>6} {fmt_metric(loss):>8} {fmt_metric(state.get('logit_scale')):>8} "
        f"{fmt_metric(o.get('map')):>7} {fmt_metric(o.get('recall@10')):>7} {fmt_metric(o.get('mrr@10')):>7} "
        f"{fmt_metric(t.get('map')):>8} {entry.get('seconds', 0):>6.1f}s  {w}"
    )


def print_train_result(result: Any, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict())
        return
    for f in result.failures:
        click.echo(f"  SKIPPED {f}", err=True)
    d = result.to_dict()
    n_test = d.get("n_test")
    click.echo(
        f"encoder written to {result.best_path} (best epoch {result.best_epoch} by validation, {result.steps} steps, "
        f"{result.n_train} train / {result.n_val} val"
        + (f" / {n_test} test" if n_test is not None else "")
        + f" figures, {result.n_classes} classes, {result.seconds:.0f} s)"
    )
    for title, metrics in (("validation", result.best_metrics), ("test", d.get("test_metrics"))):
        if not metrics:
            continue
        click.echo(f"  {title}:")
        for part in ("overall", "head", "tail"):
            m = metrics[part]
            click.echo(
                f"  {part:>9}: mAP {fmt_metric(m['map'])}  R@10 {fmt_metric(m['recall@10'])}  "
                f"MRR@10 {fmt_metric(m['mrr@10'])}"
            )
