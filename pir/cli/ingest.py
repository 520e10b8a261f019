"""``pir ingest``, ``pir worker`` and ``pir jobs``: reading drawings into the store, in-process or on workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pir.cli import output
from pir.cli.app import main, parse_pairs, settings
from pir.ingest.formats import FORMAT_CHOICES


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
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
    "--follow-outside",
    is_flag=True,
    help="Also read files that resolve outside PATH (symlinks, ../ or absolute sidecar paths); refused by default.",
)
@click.option("--enrich/--no-enrich", default=True, show_default=True, help="Store the figure's descriptions too.")
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
    follow_outside: bool,
    strict: bool,
    as_json: bool,
    **opts: Any,
) -> None:
    """Read, embed and store every drawing under PATH (USPTO grants, DeepPatent2, or a generic folder)."""
    from pir.workers.dispatch import ingest_or_submit, n_failed  # lazy: start-up

    reader: dict[str, Any] = {"columns": parse_pairs(columns, "--column")} if columns else {}
    reader.update({"class_column": class_column} if class_column else {})
    reader.update({"follow_outside": True} if follow_outside else {})
    s = settings(ctx, encoder=encoder, collection=collection)
    fmt_arg = None if fmt == "auto" else fmt
    result = ingest_or_submit(path, s, fmt=fmt_arg, reader_options=reader, on_submitted=output.print_submitted, **opts)
    if not opts["queue"] or opts["wait"]:
        output.print_ingest(result, as_json)
    if getattr(result, "discovered", 1) == 0:
        raise click.ClickException(f"{path}: no drawings found")
    if strict and n_failed(result):
        ctx.exit(1)


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
    from pir.workers.worker import run_worker  # lazy: start-up (celery)

    run_worker(
        settings(ctx),
        queues=queues.split(","),
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        hostname=hostname,
    )


@main.group()
def jobs() -> None:
    """Queued ingest jobs."""


@jobs.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def jobs_status(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show a job's pending / done / skipped / failed counts and its failed files (from the job's manifest in the
    data dir when Redis has lost the job)."""
    from pir.workers.jobs import job_status  # lazy: start-up (redis)

    output.print_job(job_status(job_id, settings(ctx)), as_json)


@jobs.command("resume")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome (and with --wait the status) as JSON.")
@click.pass_context
def jobs_resume(ctx: click.Context, job_id: str, wait: bool, as_json: bool) -> None:
    """Submit again the batches of a job that are not stored (after a broker or Redis lost them)."""
    from pir.workers.jobs import follow_job, resume_job  # lazy: start-up (redis)

    s = settings(ctx)
    r = resume_job(job_id, s)
    if as_json and not wait:
        output.echo_json(output.as_dict(r))
        return
    click.echo(r.line(), err=as_json)
    if wait:
        output.print_job(follow_job(job_id, s, show_progress=not as_json), as_json)
