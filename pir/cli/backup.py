"""``pir snapshot`` and ``pir restore``: backups of the store (embedded Qdrant Edge or a Qdrant server)."""

from __future__ import annotations

from pathlib import Path

import click

from pir.cli import output
from pir.cli.app import main, settings


@main.command("snapshot")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--collection", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_cmd(ctx: click.Context, path: Path, collection: str | None, as_json: bool) -> None:
    """Save a consistent snapshot of the collection into the new folder PATH (the store stays usable)."""
    from pir.search.snapshot import snapshot  # lazy: start-up (qdrant)

    output.print_mapping(snapshot(settings(ctx), path, collection=collection).to_dict(), as_json)


@main.command("restore")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--collection", default=None, help="Restore under this name (default: the snapshot's collection).")
@click.option("--force", is_flag=True, help="Replace a collection that already holds points.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def restore_cmd(ctx: click.Context, path: Path, collection: str | None, force: bool, as_json: bool) -> None:
    """Restore the snapshot folder PATH (made by `pir snapshot`); refuses to replace points unless --force."""
    from pir.search.snapshot import restore  # lazy: start-up (qdrant)

    output.print_mapping(restore(settings(ctx), path, collection=collection, force=force).to_dict(), as_json)
