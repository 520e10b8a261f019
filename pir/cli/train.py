"""``pir train``: its options are generated from :class:`pir.encoder.train_config.TrainConfig`, not listed twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pir.cli import output
from pir.cli.app import main, model_from_options, model_options, settings
from pir.encoder.train_config import TrainConfig


@main.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Encoder directory.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON file of TrainConfig fields (options given here override it).",
)
@click.option("--no-augment", is_flag=True, help="Turn the line-drawing augmentations off.")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@model_options(TrainConfig, skip=("augment", "columns"))
@click.pass_context
def train(
    ctx: click.Context,
    data: Path,
    out: Path,
    config_file: Path | None,
    no_augment: bool,
    resume: bool,
    as_json: bool,
    **fields: Any,
) -> None:
    """Train an encoder on the labelled drawings in DATA into the encoder directory --out."""
    from pir.encoder.train import train as run_train  # lazy: start-up (torch)

    extra = {"augment": {"enabled": False}} if no_augment else {}
    cfg = model_from_options(TrainConfig, config_file, fields, **extra)
    progress: dict[str, Any] = {"show_progress": not as_json, "on_epoch": None if as_json else output.print_epoch}
    if not as_json:
        click.echo(output.TRAIN_HEADER)
    output.print_train_result(run_train(data, out, cfg, settings(ctx), resume=resume, **progress), as_json)
