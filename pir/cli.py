"""The ``pir`` command line: thin click wrappers, each calling one library function."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from pir.config import Settings, get_settings


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data directory (PIR_DATA_DIR).")
@click.option("--device", default=None, help="cpu | cuda | cuda:N (PIR_ENCODER__DEVICE). CUDA without CUDA is an error.")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, device: str | None) -> None:
    """pir: find prior-art patent drawings similar to a new one."""
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if device is not None:
        overrides["encoder"] = {"device": device}
    ctx.ensure_object(dict)
    ctx.obj["settings"] = get_settings(**overrides)


# --- core commands (ingest, search, info, synth) ---

def _load_encoder(settings: Settings, encoder: str | None):
    from pir.encoder.model import load_encoder

    return load_encoder(encoder or settings.encoder.name, device=settings.encoder.device, image_size=settings.image_size)


def _open_store(settings: Settings, collection: str | None):
    from pir.search.store import open_store

    return open_store(settings, collection=collection)


def _parse_columns(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        if "=" not in it:
            raise click.BadParameter(f"{it!r}: expected FIELD=COLUMN", param_hint="--column")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "uspto_raw", "deeppatent2", "generic"]), default="auto",
              show_default=True, help="Reader; auto-detected from the folder by default.")
@click.option("--encoder", default=None, help="Built-in backbone name or trained encoder directory (PIR_ENCODER__NAME).")
@click.option("--collection", default=None, help="Collection name (PIR_QDRANT__COLLECTION).")
@click.option("--column", "columns", multiple=True, help="Generic reader: map FIELD=COLUMN of the metadata sidecar.")
@click.option("--class-column", default=None, help="Generic reader: sidecar column holding the class label.")
@click.option("--enrich/--no-enrich", default=True, show_default=True,
              help="Store the figure's enrichment descriptions in the payload.")
@click.option("--force", is_flag=True, help="Re-embed figures already stored with the same encoder and content.")
@click.option("--queue", is_flag=True, help="Enqueue on the Celery workers (PIR_WORKER__BROKER_URL) instead.")
@click.option("--wait", is_flag=True, help="With --queue: follow the job with a progress bar until it ends.")
@click.option("--strict", is_flag=True, help="Exit non-zero when any figure failed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def ingest(ctx: click.Context, path: Path, fmt: str, encoder: str | None, collection: str | None,
           columns: tuple[str, ...], class_column: str | None, enrich: bool, force: bool, queue: bool, wait: bool,
           strict: bool, as_json: bool) -> None:
    """Read, embed and store every drawing under PATH (USPTO grants, DeepPatent2, or a generic folder)."""
    s = _settings(ctx)
    if encoder:
        s = s.model_copy(update={"encoder": s.encoder.model_copy(update={"name": encoder})})
    if collection:
        s = s.model_copy(update={"qdrant": s.qdrant.model_copy(update={"collection": collection})})
    opts: dict[str, Any] = {}
    if columns:
        opts["columns"] = _parse_columns(columns)
    if class_column:
        opts["class_column"] = class_column
    fmt_arg = None if fmt == "auto" else fmt
    if queue:
        from pir.workers.jobs import JobError, follow_job, submit_ingest

        try:
            job = submit_ingest(path, s, fmt=fmt_arg, reader_options=opts, enrich=enrich, force=force)
        except JobError as e:
            raise click.ClickException(str(e)) from e
        click.echo(f"job {job.job_id}: {job.total} figures in {job.n_batches} batches queued")
        if wait:
            status = follow_job(job.job_id, s)
            _print_job(status, as_json)
        return
    from pir.pipeline import ingest as run_ingest

    summary = run_ingest(path, s, fmt=fmt_arg, reader_options=opts, enrich=enrich, force=force,
                         encoder=_load_encoder(s, None))
    if as_json:
        _echo_json(summary.to_dict())
    else:
        click.echo(
            f"ingested {summary.ingested}, skipped {summary.skipped} (already stored), failed {summary.n_failed} "
            f"of {summary.discovered} figures in {summary.seconds:.1f} s; collection {summary.collection!r} now holds "
            f"{summary.store_count} points"
        )
        for issue in summary.read_issues:
            click.echo(f"  FAILED {issue.path}: {issue.reason}", err=True)
        for f in summary.failed:
            click.echo(f"  FAILED {f.path}: {f.reason}", err=True)
    if summary.discovered == 0:
        raise click.ClickException(f"{path}: no drawings found")
    if strict and summary.n_failed:
        ctx.exit(1)


def _print_job(status: Any, as_json: bool) -> None:
    d = status.to_dict() if hasattr(status, "to_dict") else dict(status)
    if as_json:
        _echo_json(d)
        return
    click.echo(" ".join(f"{k}={d[k]}" for k in ("job_id", "state", "total", "done", "skipped", "failed", "pending")
                        if k in d))
    for f in d.get("failures", []):
        click.echo(f"  FAILED {f.get('path')}: {f.get('reason')}", err=True)


def _search_filter(classes: tuple[str, ...], year_from: int | None, year_to: int | None, viewpoints: tuple[str, ...],
                   exclude: tuple[str, ...]):
    from pir.search.store import SearchFilter

    return SearchFilter(classes=list(classes) or None, year_from=year_from, year_to=year_to,
                        viewpoints=list(viewpoints) or None, exclude_patents=list(exclude) or None)


@main.command()
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text", default=None, help="Search by words (needs a trained, text-aligned encoder).")
@click.option("--like", default=None, metavar="PATENT/FIGURE", help="Search with a stored figure's vector.")
@click.option("--k", default=10, show_default=True, help="Number of results.")
@click.option("--class", "classes", multiple=True, help="Only these classes (USPC/Locarno/CPC code or main class, "
              "object class); repeatable.")
@click.option("--year-from", type=int, default=None)
@click.option("--year-to", type=int, default=None)
@click.option("--viewpoint", "viewpoints", multiple=True, help="Only these viewpoints (front, perspective, ...).")
@click.option("--exclude-patent", "exclude", multiple=True, help="Leave this patent's figures out; repeatable.")
@click.option("--one-per-patent", is_flag=True, help="At most one figure per patent (its best).")
@click.option("--min-score", type=float, default=None, help="Drop results below this cosine similarity.")
@click.option("--encoder", default=None, help="Encoder (default: the one the collection was built with).")
@click.option("--collection", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(ctx: click.Context, images: tuple[Path, ...], text: str | None, like: str | None, k: int,
           classes: tuple[str, ...], year_from: int | None, year_to: int | None, viewpoints: tuple[str, ...],
           exclude: tuple[str, ...], one_per_patent: bool, min_score: float | None, encoder: str | None,
           collection: str | None, as_json: bool) -> None:
    """Find prior-art figures like IMAGES (several images = several views of one object), --text or --like."""
    from pir.encoder.model import ZeroShotTextError
    from pir.search import service

    s = _settings(ctx)
    modes = sum(bool(x) for x in (images, text, like))
    if modes != 1:
        raise click.UsageError("give query images, or --text, or --like (exactly one kind of query)")
    flt = _search_filter(classes, year_from, year_to, viewpoints, exclude)
    kw = dict(k=k, filter=flt, min_score=min_score, group_by_patent=one_per_patent)
    with _open_store(s, collection) as store:
        if store.dim() is None:
            raise click.ClickException(f"collection {store.collection!r} is empty: run `pir ingest PATH` first")
        if like:
            try:
                resp = service.search_like(like, store, **kw)
            except (KeyError, ValueError) as e:
                raise click.ClickException(str(e.args[0] if e.args else e)) from e
        else:
            stored_encoder = store.info().get("encoder")
            enc = _load_encoder(s, encoder)
            if stored_encoder and stored_encoder != enc.name:
                raise click.ClickException(
                    f"collection {store.collection!r} was built with encoder {stored_encoder!r} but the query uses "
                    f"{enc.name!r}; pass the same --encoder as at ingest (or another --collection)"
                )
            try:
                if text:
                    resp = service.search_text(text, s, encoder=enc, store=store, **kw)
                else:
                    resp = service.search_images(list(images), s, encoder=enc, store=store, **kw)
            except ZeroShotTextError as e:
                raise click.ClickException(str(e)) from e
    if as_json:
        _echo_json(resp.to_dict())
        return
    if not resp.results:
        click.echo("no results")
        return
    click.echo(f"{'#':>3}  {'score':>6}  {'patent':<14} {'figure':<10} {'class':<10} {'view':<14} {'year':<5} title")
    for r in resp.results:
        click.echo(f"{r.rank:>3}  {r.score:6.3f}  {r.patent_id:<14} {r.figure_id:<10} {str(r.class_label or '-'):<10} "
                   f"{str(r.viewpoint or '-'):<14} {str(r.year or '-'):<5} {r.title or ''}")
    click.echo(f"(encode {resp.encode_ms:.0f} ms, search {resp.search_ms:.1f} ms)")


@main.command()
@click.option("--collection", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def info(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Show the store, collection, point count and encoder."""
    s = _settings(ctx)
    with _open_store(s, collection) as store:
        d = store.info()
    d.update(data_dir=str(s.data_dir), default_encoder=s.encoder.name, device=s.encoder.device,
             broker=s.worker.broker_url or "in-process")
    if as_json:
        _echo_json(d)
    else:
        for k, v in d.items():
            click.echo(f"{k:>16}: {v}")


# --- train commands ---

# --- enrich commands ---

# --- worker commands ---

# --- bench commands ---


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
