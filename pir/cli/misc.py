"""``pir synth`` and ``pir enrich``: the synthetic corpus and the enrichment descriptions."""

from __future__ import annotations

from pathlib import Path

import click

from pir.cli import output
from pir.cli.app import main, settings


@main.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--patents", default=120, show_default=True, type=click.IntRange(min=1), help="Number of patents.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--image-size", default=256, show_default=True, type=click.IntRange(min=32), help="Image side (px).")
def synth_cmd(out: Path, patents: int, seed: int, image_size: int) -> None:
    """Write a synthetic, long-tailed patent-drawing corpus (images, metadata.jsonl, classes.json) to OUT."""
    from pir.synth import synthesize_corpus  # lazy: start-up

    click.echo(synthesize_corpus(out, patents=patents, seed=seed, image_size=image_size).table())


@main.command("enrich")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--backend",
    default=None,
    help="Description backend: template, openai, llamacpp or any registered one (PIR_ENRICH__BACKEND).",
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
    from pir.enrich import pipeline as enrich  # lazy: start-up

    if show_key:
        click.echo(enrich.show_figure(show_key, settings(ctx), as_json=as_json))
    elif path is None:
        raise click.UsageError("PATH is required unless --show is given")
    else:
        summary = enrich.enrich_path(path, settings(ctx), backend=backend, k=k, refresh=refresh)
        click.echo(output.json.dumps(summary.to_dict(), indent=2) if as_json else summary.describe())
