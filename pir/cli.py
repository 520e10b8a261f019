"""The ``pir`` command line: thin click wrappers, each calling one library function."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from pir.config import Settings, get_settings


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input or environment: shown as one clear line, never as a traceback."""
    from pir.encoder.device import DeviceError
    from pir.encoder.model import ZeroShotTextError
    from pir.ingest.images import ImageLoadError
    from pir.search.service import EncoderMismatchError
    from pir.search.store import StoreError

    return (DeviceError, ZeroShotTextError, ImageLoadError, EncoderMismatchError, StoreError, FileNotFoundError)


class PirGroup(click.Group):
    """The ``pir`` group: known user-facing errors become ``Error: ...`` and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _user_errors() as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=PirGroup)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data directory (PIR_DATA_DIR).")
@click.option(
    "--device", default=None, help="cpu | cuda | cuda:N (PIR_ENCODER__DEVICE). CUDA without CUDA is an error."
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, device: str | None, verbose: int) -> None:
    """pir: find prior-art patent drawings similar to a new one."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if device is not None:
        overrides["encoder"] = {"device": device}
    ctx.ensure_object(dict)
    ctx.obj["settings"] = get_settings(**overrides)


# --- core commands (ingest, search, info, synth) ---


@main.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--patents", default=120, show_default=True, type=click.IntRange(min=1), help="Number of patents.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--image-size", default=256, show_default=True, type=click.IntRange(min=32), help="Image side (px).")
def synth_cmd(out: Path, patents: int, seed: int, image_size: int) -> None:
    """Write a synthetic, long-tailed patent-drawing corpus (images, metadata.jsonl, classes.json) to OUT."""
    from pir.synth import synthesize_corpus

    try:
        summary = synthesize_corpus(out, patents=patents, seed=seed, image_size=image_size)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    click.echo(summary.table())


def _load_encoder(settings: Settings, encoder: str | None):
    from pir.encoder.device import DeviceError
    from pir.encoder.model import load_encoder

    spec = encoder or settings.encoder.name
    try:
        return load_encoder(spec, device=settings.encoder.device, image_size=settings.image_size)
    except (DeviceError, FileNotFoundError, ValueError) as e:
        raise click.ClickException(f"encoder {spec}: {e}") from e


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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "uspto_raw", "deeppatent2", "generic"]),
    default="auto",
    show_default=True,
    help="Reader; auto-detected from the folder by default.",
)
@click.option(
    "--encoder", default=None, help="Built-in backbone name or trained encoder directory (PIR_ENCODER__NAME)."
)
@click.option("--collection", default=None, help="Collection name (PIR_QDRANT__COLLECTION).")
@click.option("--column", "columns", multiple=True, help="Generic reader: map FIELD=COLUMN of the metadata sidecar.")
@click.option("--class-column", default=None, help="Generic reader: sidecar column holding the class label.")
@click.option(
    "--enrich/--no-enrich",
    default=True,
    show_default=True,
    help="Store the figure's enrichment descriptions in the payload.",
)
@click.option("--force", is_flag=True, help="Re-embed figures already stored with the same encoder and content.")
@click.option("--queue", is_flag=True, help="Enqueue on the Celery workers (PIR_WORKER__BROKER_URL) instead.")
@click.option("--wait", is_flag=True, help="With --queue: follow the job with a progress bar until it ends.")
@click.option("--strict", is_flag=True, help="Exit non-zero when any figure failed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def ingest(
    ctx: click.Context,
    path: Path,
    fmt: str,
    encoder: str | None,
    collection: str | None,
    columns: tuple[str, ...],
    class_column: str | None,
    enrich: bool,
    force: bool,
    queue: bool,
    wait: bool,
    strict: bool,
    as_json: bool,
) -> None:
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
            if strict and status.to_dict().get("failed"):
                ctx.exit(1)
        return
    from pir.pipeline import ingest as run_ingest

    try:
        summary = run_ingest(
            path, s, fmt=fmt_arg, reader_options=opts, enrich=enrich, force=force, encoder=_load_encoder(s, None)
        )
    except ValueError as e:  # bad reader options (an unknown --column field, ...)
        raise click.ClickException(f"{path}: {e}") from e
    if as_json:
        _echo_json(summary.to_dict())
    else:
        unread = f" (+{len(summary.read_issues)} unreadable records)" if summary.read_issues else ""
        click.echo(
            f"{summary.discovered} figures found{unread}: ingested {summary.ingested}, skipped {summary.skipped} "
            f"(already stored, unchanged), failed {len(summary.failed) + len(summary.read_issues)} in "
            f"{summary.seconds:.1f} s; collection {summary.collection!r} now holds {summary.store_count} points"
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
    click.echo(
        " ".join(f"{k}={d[k]}" for k in ("job_id", "state", "total", "done", "skipped", "failed", "pending") if k in d)
    )
    for f in d.get("failures", []):
        click.echo(f"  FAILED {f.get('path')}: {f.get('reason')}", err=True)


@main.command()
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text", default=None, help="Search by words (needs a trained, text-aligned encoder).")
@click.option("--like", default=None, metavar="PATENT/FIGURE", help="Search with a stored figure's vector.")
@click.option("--k", default=10, show_default=True, help="Number of results.")
@click.option(
    "--class",
    "classes",
    multiple=True,
    help="Only these classes (USPC/Locarno/CPC code or main class, object class); repeatable.",
)
@click.option("--year-from", type=int, default=None)
@click.option("--year-to", type=int, default=None)
@click.option("--viewpoint", "viewpoints", multiple=True, help="Only these viewpoints (front, perspective, ...).")
@click.option("--exclude-patent", "exclude", multiple=True, help="Leave this patent's figures out; repeatable.")
@click.option("--one-per-patent", is_flag=True, help="At most one figure per patent (its best).")
@click.option("--min-score", type=float, default=None, help="Drop results below this cosine similarity.")
@click.option(
    "--encoder",
    default=None,
    help="Encoder name or directory (PIR_ENCODER__NAME); must be the one the collection was built with.",
)
@click.option("--collection", default=None)
@click.option("--details", is_flag=True, help="Also print each hit's classes, image path and a stored description.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(
    ctx: click.Context,
    images: tuple[Path, ...],
    text: str | None,
    like: str | None,
    k: int,
    classes: tuple[str, ...],
    year_from: int | None,
    year_to: int | None,
    viewpoints: tuple[str, ...],
    exclude: tuple[str, ...],
    one_per_patent: bool,
    min_score: float | None,
    encoder: str | None,
    collection: str | None,
    details: bool,
    as_json: bool,
) -> None:
    """Find prior-art figures like IMAGES (several images = several views of one object), --text or --like."""
    from pir.search import service

    s = _settings(ctx)
    modes = sum(bool(x) for x in (images, text, like))
    if modes != 1:
        raise click.UsageError("give query images, or --text, or --like (exactly one kind of query)")
    flt = service.build_filter(
        classes=classes, year_from=year_from, year_to=year_to, viewpoints=viewpoints, exclude_patents=exclude
    )
    kw = dict(k=k, filter=flt, min_score=min_score, group_by_patent=one_per_patent)
    with _open_store(s, collection) as store:
        if store.dim() is None:
            raise click.ClickException(f"collection {store.collection!r} is empty: run `pir ingest PATH` first")
        if like:
            try:
                resp = service.search_like(like, store, **kw)
            except (KeyError, ValueError) as e:
                raise click.ClickException(str(e.args[0] if e.args else e)) from e
        elif text:
            resp = service.search_text(text, s, encoder=_load_encoder(s, encoder), store=store, **kw)
        else:
            resp = service.search_images(list(images), s, encoder=_load_encoder(s, encoder), store=store, **kw)
    if as_json:
        _echo_json(resp.to_dict())
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


@main.command()
@click.option("--collection", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def info(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Show the store, collection, point count and encoder."""
    s = _settings(ctx)
    with _open_store(s, collection) as store:
        d = store.info()
    d.update(
        data_dir=str(s.data_dir),
        default_encoder=s.encoder.name,
        device=s.encoder.device,
        broker=s.worker.broker_url or "in-process",
    )
    if as_json:
        _echo_json(d)
    else:
        for k, v in d.items():
            click.echo(f"{k:>16}: {v}")


# --- train commands ---


def _fmt_metric(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "-"


def _print_epoch(entry: dict[str, Any]) -> None:
    val = entry.get("val") or {}
    o, t = val.get("overall", {}), val.get("tail", {})
    loss = entry.get("train", {}).get("loss")
    w = " ".join(
        f"{k.split('/')[1].removesuffix('_loss')}={v:.2f}"
        for k, v in entry.get("loss_state", {}).items()
        if k.startswith("weight/")
    )
    scale = entry.get("loss_state", {}).get("logit_scale")
    click.echo(
        f"{entry['epoch']:>5} {entry['step']:>6} {_fmt_metric(loss):>8} {_fmt_metric(scale):>8} "
        f"{_fmt_metric(o.get('map')):>7} {_fmt_metric(o.get('recall@10')):>7} {_fmt_metric(o.get('mrr@10')):>7} "
        f"{_fmt_metric(t.get('map')):>8} {entry.get('seconds', 0):>6.1f}s  {w}"
    )


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output encoder directory."
)
@click.option("--backbone", default="tf_efficientnet_lite0", show_default=True, help="Any timm name.")
@click.option("--projector", type=click.Choice(["mlp", "linear"]), default="mlp", show_default=True)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Projector and loss-parameter LR.")
@click.option("--backbone-lr", type=float, default=1e-4, show_default=True)
@click.option("--losses", default="contrastive,class,supcon", show_default=True, help="Comma-separated loss terms.")
@click.option("--weighting", type=click.Choice(["uncertainty", "fixed"]), default="uncertainty", show_default=True)
@click.option(
    "--baseline",
    type=click.Choice(["zero-shot", "arcface", "instance-only", "no-llm-text", "no-uncertainty"]),
    default=None,
)
@click.option("--image-size", type=int, default=224, show_default=True)
@click.option("--freeze-stages", type=int, default=0, show_default=True)
@click.option("--tau", type=float, default=1.0, show_default=True, help="Logit adjustment strength.")
@click.option("--balanced-sampler", is_flag=True, help="Class-balanced sampling (weight ∝ 1/sqrt(count)).")
@click.option("--no-augment", is_flag=True, help="Turn the line-drawing augmentations off.")
@click.option("--val-fraction", type=float, default=0.2, show_default=True, help="Patents held out for validation.")
@click.option("--text-model", default=None, help="minilm or a local sentence-transformers directory.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu | cuda | cuda:N (default: the global --device / settings).")
@click.option("--format", "fmt", type=click.Choice(["auto", "uspto_raw", "deeppatent2", "generic"]), default="auto")
@click.option("--class-column", default=None, help="Generic reader: sidecar column holding the class label.")
@click.option("--resume", is_flag=True, help="Continue from DIR/checkpoint.pt.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def train(
    ctx: click.Context,
    data: Path,
    out: Path,
    fmt: str,
    losses: str,
    no_augment: bool,
    resume: bool,
    as_json: bool,
    **opts: Any,
) -> None:
    """Train an encoder on the labelled drawings in DATA into the encoder directory --out."""
    from pir.encoder.data import AugmentConfig
    from pir.encoder.device import DeviceError
    from pir.encoder.train import TrainConfig, TrainError
    from pir.encoder.train import train as run_train

    try:
        cfg = TrainConfig(
            losses=tuple(t.strip() for t in losses.split(",") if t.strip()),
            format=None if fmt == "auto" else fmt,
            augment=AugmentConfig(enabled=not no_augment),
            **opts,
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if not as_json:
        click.echo(
            f"{'epoch':>5} {'step':>6} {'loss':>8} {'scale':>8} {'mAP':>7} {'R@10':>7} {'MRR@10':>7} "
            f"{'tail mAP':>8} {'time':>7}  weights"
        )
    try:
        result = run_train(
            data,
            out,
            cfg,
            _settings(ctx),
            resume=resume,
            show_progress=not as_json,
            on_epoch=None if as_json else _print_epoch,
        )
    except (TrainError, DeviceError, FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        _echo_json(result.to_dict())
        return
    for f in result.failures:
        click.echo(f"  SKIPPED {f}", err=True)
    click.echo(
        f"encoder written to {result.best_path} (best epoch {result.best_epoch}, {result.steps} steps, "
        f"{result.n_train} train / {result.n_val} val figures, {result.n_classes} classes, "
        f"{result.seconds:.0f} s)"
    )
    if result.best_metrics:
        for part in ("overall", "head", "tail"):
            m = result.best_metrics[part]
            click.echo(
                f"  {part:>7}: mAP {_fmt_metric(m['map'])}  R@10 {_fmt_metric(m['recall@10'])}  "
                f"MRR@10 {_fmt_metric(m['mrr@10'])}"
            )


# --- enrich commands ---


@main.command("enrich")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(["template", "openai", "llamacpp"]),
    default=None,
    help="Description backend (PIR_ENRICH__BACKEND; default template).",
)
@click.option("--k", type=click.IntRange(min=1), default=None, help="Descriptions per figure (PIR_ENRICH__K).")
@click.option("--refresh", is_flag=True, help="Regenerate even when cached.")
@click.option("--show", "show_key", default=None, metavar="PATENT/FIGURE", help="Print one figure's descriptions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def enrich_cmd(
    ctx: click.Context,
    path: Path | None,
    backend: str | None,
    k: int | None,
    refresh: bool,
    show_key: str | None,
    as_json: bool,
) -> None:
    """Describe every figure under PATH (K alias-rich descriptions each, cached), or --show one figure's."""
    from pir.enrich import pipeline as enrich

    s = _settings(ctx)
    if show_key:
        entry = enrich.figure_descriptions(show_key, s)
        if entry is None:
            hint = ", ".join(enrich.similar_keys(show_key, s)) or "run `pir enrich PATH` first"
            raise click.ClickException(f"{show_key}: no descriptions in {s.cache_dir / 'enrich.sqlite'} ({hint})")
        click.echo(json.dumps(entry, indent=2) if as_json else enrich.format_figure_descriptions(entry))
        return
    if path is None:
        raise click.UsageError("PATH is required unless --show is given")
    summary = enrich.enrich_path(path, s, backend=backend, k=k, refresh=refresh)
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.describe())


# --- worker commands ---


@main.command()
@click.option("--queues", default="enrich,embed", show_default=True, help="Comma-separated queues to consume.")
@click.option("--concurrency", type=int, default=None, help="Processes/threads (default: 1 with embed, else cores).")
@click.option(
    "--pool",
    type=click.Choice(["solo", "threads", "prefork"]),
    default=None,
    help="Pool (default: solo with embed, prefork for enrich only).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", default=None, help="Worker node name (default: pir-<queues>-<pid>@<host>).")
@click.pass_context
def worker(
    ctx: click.Context, queues: str, concurrency: int | None, pool: str | None, loglevel: str, hostname: str | None
) -> None:
    """Run a Celery worker for queued ingest (PIR_WORKER__BROKER_URL); stop it with Ctrl-C / SIGTERM."""
    from pir.workers.app import WorkerConfigError
    from pir.workers.worker import run_worker

    try:
        run_worker(
            _settings(ctx),
            queues=queues.split(","),
            concurrency=concurrency,
            pool=pool,
            loglevel=loglevel,
            hostname=hostname,
        )
    except WorkerConfigError as e:
        raise click.ClickException(str(e)) from e


@main.group()
def jobs() -> None:
    """Queued ingest jobs."""


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def jobs_status(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show a job's pending / done / skipped / failed counts and its failed files."""
    from pir.workers.jobs import JobError, job_status

    try:
        status = job_status(job_id, _settings(ctx))
    except JobError as e:
        raise click.ClickException(str(e)) from e
    _print_job(status, as_json)


# --- bench commands ---


def _bench_common(f: Any) -> Any:
    """Options shared by ``pir bench`` and its protocol subcommands."""
    opts = [
        click.option(
            "--encoders",
            default=None,
            help="Methods to compare: zero-shot,DIR1,DIR2 (names or encoder "
            "directories; zero-shot = the default built-in backbone). Default: zero-shot.",
        ),
        click.option("--limit", type=int, default=None, help="Sample about N figures (whole patents, seeded)."),
        click.option(
            "--k",
            "k",
            type=int,
            default=None,
            help="Store search depth per query (default: the whole "
            "gallery up to 2000 figures, else 100; mAP then comes from the exact ranking).",
        ),
        click.option("--seed", type=int, default=None, help="Seed of sampling and splits (default: settings seed)."),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Report folder (default: <data-dir>/bench/report).",
        ),
        click.option(
            "--store",
            "store_kind",
            type=click.Choice(["edge", "memory"]),
            default=None,
            help="Store the gallery is searched in: Qdrant Edge on disk or qdrant-client :memory:.",
        ),
        click.option("--no-plots", is_flag=True, default=None, help="Skip the PNG plots."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _bench_opts(ctx: click.Context, **given: Any) -> dict[str, Any]:
    """Subcommand options, falling back to the ones given to the ``bench`` group, then to defaults."""
    s = _settings(ctx)
    group = ctx.obj.get("bench", {})
    pick = {k: (v if v is not None else group.get(k)) for k, v in given.items()}
    return {
        "encoders": pick.get("encoders") or "zero-shot",
        "limit": pick.get("limit"),
        "k": pick.get("k"),
        "seed": s.seed if pick.get("seed") is None else pick["seed"],
        "out": pick.get("out") or s.data_dir / "bench" / "report",
        "store_kind": pick.get("store_kind") or "edge",
        "plots": not pick.get("no_plots"),
    }


def _bench_done(run: Any) -> None:
    from pir.bench.report import markdown_table

    click.echo(markdown_table(run))
    if run.out is not None:
        click.echo(f"report written to {run.out}")


@main.group(invoke_without_command=True)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Folder any reader understands (repeatable). Default: synthetic corpus + ../shared/data if present.",
)
@click.option(
    "--relevance",
    type=click.Choice(["class", "patent"]),
    default=None,
    help="With --data: same class or same patent (default: class when most figures carry a class).",
)
@click.option("--class-column", default=None, help="With --data: sidecar column holding the class label.")
@_bench_common
@click.pass_context
def bench(
    ctx: click.Context, data: tuple[Path, ...], relevance: str | None, class_column: str | None, **common: Any
) -> None:
    """Retrieval benchmarks (mAP, Recall@K, MRR@K; head/tail) through the vector store, with a report."""
    ctx.obj["bench"] = common
    if ctx.invoked_subcommand is not None:
        return
    from pir.bench.run import bench_folders

    try:
        run = bench_folders(
            _settings(ctx),
            list(data),
            relevance=relevance,
            class_column=class_column,  # type: ignore[arg-type]
            **_bench_opts(ctx, **common),
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    _bench_done(run)


@bench.command("deeppatent2")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="DeepPatent2 year folder (repeatable).",
)
@click.option(
    "--relevance",
    type=click.Choice(["class", "patent"]),
    default="class",
    show_default=True,
    help="class = same object name; patent = same patent.",
)
@click.option(
    "--split-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Reuse this split.json (created there when missing) so runs are comparable.",
)
@_bench_common
@click.pass_context
def bench_deeppatent2_cmd(
    ctx: click.Context, data: tuple[Path, ...], relevance: str, split_file: Path | None, **common: Any
) -> None:
    """The DeepPatent2 protocol: query/gallery split by patent (seeded, written to OUT/split.json)."""
    from pir.bench.run import bench_deeppatent2

    try:
        run = bench_deeppatent2(
            _settings(ctx),
            list(data),
            relevance=relevance,
            split_file=split_file,  # type: ignore[arg-type]
            **_bench_opts(ctx, **common),
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    _bench_done(run)


@bench.command("deeppatent")
@click.option(
    "--lists",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with the DeepPatent split lists (test_query_patent.txt[.gz], test_db_patent.txt[.gz]).",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Root the list paths are relative to.",
)
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@_bench_common
@click.pass_context
def bench_deeppatent_cmd(ctx: click.Context, lists: Path, images: Path, split: str, **common: Any) -> None:
    """The original DeepPatent query/gallery lists (relevance = same patent); entries without an image are counted."""
    from pir.bench.run import bench_deeppatent

    try:
        run = bench_deeppatent(_settings(ctx), lists, images, split=split, **_bench_opts(ctx, **common))
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    _bench_done(run)


@bench.command("speed")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Image folder (default: a seeded synthetic corpus).",
)
@click.option("--n-images", type=int, default=200, show_default=True, help="Images for ingest vs forward pass.")
@click.option("--sizes", default="10000,100000", show_default=True, help="Store sizes for search latency/recall.")
@click.option("--dim", type=int, default=None, help="Vector size for the store test (default: the encoder's).")
@click.option("--queries", "n_queries", type=int, default=100, show_default=True, help="Queries per store size.")
@click.option(
    "--vectors",
    type=click.Choice(["clustered", "random"]),
    default="clustered",
    show_default=True,
    help="Store-test vectors: embedding-like clusters, or structureless random directions (worst case).",
)
@click.option("--encoder", default=None, help="Encoder name or directory (default: PIR_ENCODER__NAME).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Report folder (default: <data-dir>/bench/report)."
)
@click.pass_context
def bench_speed_cmd(
    ctx: click.Context,
    data: Path | None,
    n_images: int,
    sizes: str,
    dim: int | None,
    n_queries: int,
    vectors: str,
    encoder: str | None,
    out: Path | None,
) -> None:
    """Ingest images/s vs bare forward pass, query latency p50/p95, store latency and recall@10 vs exact, memory."""
    from pir.bench.speed import bench_speed, speed_markdown

    s = _settings(ctx)
    try:
        size_list = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError as e:
        raise click.BadParameter(f"{sizes!r}: expected comma-separated integers", param_hint="--sizes") from e
    out = out or ctx.obj.get("bench", {}).get("out") or s.data_dir / "bench" / "report"
    try:
        result = bench_speed(
            s,
            data=data,
            n_images=n_images,
            sizes=size_list,
            dim=dim,
            n_queries=n_queries,
            encoder=encoder,
            out=out,
            seed=s.seed,
            vectors=vectors,
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(speed_markdown(result))
    click.echo(f"written to {out}/speed.json")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
