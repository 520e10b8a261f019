"""``pir serve``: the examiner's web page and the JSON API on one warm process (see :mod:`pir.web`)."""

from __future__ import annotations

import click

from pir.cli.app import main, settings


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1; others need PIR_SERVE__API_KEY).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default 8000).")
@click.option("--encoder", default=None, help="Encoder name or directory; the one the collection was built with.")
@click.option("--collection", default=None)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, encoder: str | None, collection: str | None) -> None:
    """Serve the search page and JSON API (docs at /docs) until Ctrl-C; loads the encoder and store once."""
    from pir.web import serve as run_server  # lazy: start-up (FastAPI, uvicorn, torch)
    from pir.web.settings import get_serve_settings  # lazy: start-up (the CLI loads no command's library)

    run_server(settings(ctx, encoder=encoder, collection=collection), get_serve_settings(host=host, port=port))
