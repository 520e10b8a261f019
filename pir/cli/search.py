"""``pir search`` and ``pir info``: querying the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pir.cli import output
from pir.cli.app import main, options, settings
from pir.search.request import Crop, SearchRequest, error_line

#: Extra (older, shorter) flag names of some request fields on the command line.
_FLAG_ALIASES = {
    "words": ("--text",),
    "classes": ("--class",),
    "viewpoints": ("--viewpoint",),
    "exclude_patents": ("--exclude-patent",),
    "positives": ("--pos",),
    "negatives": ("--neg",),
    "crops": ("--crop",),
}


def request_options(skip: tuple[str, ...] = ("drawings",), only: tuple[str, ...] | None = None) -> Any:
    """Click options generated from :class:`pir.search.request.SearchRequest`'s fields (``--field-name`` plus the
    names in :data:`_FLAG_ALIASES`): help from the field descriptions, choices from ``Literal`` fields, lists
    repeatable; every option defaults to None, so the request's own defaults apply (shown in the help).
    ``only``: just these fields (``pir bench``'s ``--text-weight`` and ``--fusion``)."""
    from typing import Literal, get_args, get_origin

    decorators = []
    for name, field in SearchRequest.model_fields.items():
        if name in skip or (only is not None and name not in only):
            continue
        ann = field.annotation
        args = [a for a in get_args(ann) if a is not type(None)]
        if get_origin(ann) is not Literal and type(None) in get_args(ann) and len(args) == 1:
            ann = args[0]  # X | None
        flags = ["--" + name.replace("_", "-"), *_FLAG_ALIASES.get(name, ())]
        default = field.default if field.default_factory is None else None
        text = f"{field.description or ''}" + (f" (default: {default})" if default not in (None, "") else "")
        kw: dict[str, Any] = {"default": None, "help": text}
        if ann is bool:
            kw.update(is_flag=True, default=None)
        elif get_origin(ann) is Literal:
            kw["type"] = click.Choice([str(a) for a in get_args(ann)])
        elif get_origin(ann) in (list, dict):
            kw.update(multiple=True, type=str)
        else:
            kw["type"] = {int: int, float: float}.get(ann, str)  # type: ignore[arg-type]  # a field annotation
        decorators.append(click.option(*flags, name, **kw))
    return options(*decorators)


def build_request(drawings: list[str], given: dict[str, Any]) -> Any:
    """The :class:`~pir.search.request.SearchRequest` of the command line (a bad value is a usage error)."""
    from pydantic import ValidationError

    data: dict[str, Any] = {"drawings": drawings}
    for name, value in given.items():
        if value is None or value == ():
            continue
        if name == "crops":
            try:
                value = dict(Crop.parse(c) for c in value)
            except (ValueError, ValidationError) as e:
                raise click.UsageError(str(e).splitlines()[-1]) from None
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as e:
        raise click.UsageError(error_line(e, name=_flag)) from None


def _flag(field: str) -> str:
    """The flag a user types for a request field (``words`` -> ``--text``)."""
    return (_FLAG_ALIASES.get(field) or ("--" + field.replace("_", "-"),))[0]


@main.command()
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@request_options()
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
    encoder: str | None,
    collection: str | None,
    details: bool,
    as_json: bool,
    **fields: Any,
) -> None:
    """Find prior-art figures like IMAGES (several = views of one object), by --text words, both fused, or --like."""
    request = build_request([str(p) for p in images], fields)
    if request.empty:
        raise click.UsageError("give query images and/or --text, or --like (optionally with --text)")
    if request.like and request.drawings:
        raise click.UsageError("--like searches with a stored figure: give it without IMAGES")
    from pir.search.runtime import run_search  # lazy: start-up (numpy, qdrant)

    s = settings(ctx, encoder=encoder, collection=collection)
    output.print_search(run_search(s, request), as_json, details)


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
