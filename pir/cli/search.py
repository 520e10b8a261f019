"""``pir search`` and ``pir info``: querying the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pir.cli import output
from pir.cli.app import main, settings


@main.command()
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text", default=None, help="Search by words, alone or fused with IMAGES (any encoder).")
@click.option(
    "--text-weight",
    default=0.9,  # pir.search.store.DEFAULT_TEXT_WEIGHT (not imported: start-up); a test keeps them equal
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of the words when IMAGES and --text are both given (0 = image only, 1 = words only).",
)
@click.option(
    "--fusion",
    default="zscore",
    show_default=True,
    type=click.Choice(["zscore", "rrf", "weighted"]),
    help="How Qdrant fuses image and words: standardised scores (each side by its own candidates), reciprocal rank "
    "fusion, or a weighted sum of raw scores.",
)
@click.option("--like", default=None, metavar="PATENT/FIGURE", help="Search with a stored figure's vectors and words.")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="Number of results.")
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
@click.option("--one-per-patent", "group_by_patent", is_flag=True, help="At most one figure per patent (its best).")
@click.option(
    "--min-score",
    type=float,
    default=None,
    help="Drop results scoring below this: cosine similarity for a drawing alone; for words or drawing+words the "
    "fused score (--fusion zscore: a weighted sum of standard scores, about 1-5 for good matches; rrf: a weighted "
    "reciprocal-rank sum, at most about 0.1; weighted: a weighted sum of scores "
    "in [0, 1]).",
)
@click.option(
    "--encoder",
    default=None,
    help="Encoder name or directory (PIR_ENCODER__NAME); the one the collection was built with.",
)
@click.option("--collection", default=None)
@click.option("--details", is_flag=True, help="Also print each hit's classes, image path and a stored description.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(
    ctx: click.Context,
    images: tuple[Path, ...],
    classes: tuple[str, ...],
    year_from: int | None,
    year_to: int | None,
    viewpoints: tuple[str, ...],
    exclude: tuple[str, ...],
    encoder: str | None,
    collection: str | None,
    details: bool,
    as_json: bool,
    **kw: Any,
) -> None:
    """Find prior-art figures like IMAGES (several = views of one object), by --text words, both fused, or --like."""
    from pir.search import service  # lazy: start-up

    flt = service.build_filter(
        classes=classes, year_from=year_from, year_to=year_to, viewpoints=viewpoints, exclude_patents=exclude
    )
    s = settings(ctx, encoder=encoder, collection=collection)
    output.print_search(service.run_search(s, images=list(images), filter=flt, **kw), as_json, details)


@main.command()
@click.option("--collection", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def info(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Show the store, collection, point count, encoder and queue."""
    from pir.info import describe  # lazy: start-up

    output.print_mapping(describe(settings(ctx), collection=collection), as_json)


@main.command()
@click.option("--collection", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def reindex(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Upgrade a collection of the old single-vector layout to image + text + words vectors (nothing is lost)."""
    from pir.pipeline import reindex as run_reindex  # lazy: start-up

    summary = run_reindex(settings(ctx, collection=collection), collection=collection, show_progress=not as_json)
    output.print_mapping(summary.to_dict(), as_json)
