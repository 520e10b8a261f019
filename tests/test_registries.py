"""Each extension point is one registry: adding an entry is one new class/module plus one registration line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pir.enrich.base import Enricher
from pir.enrich.inputs import FigureInputs
from pir.ingest.schema import PatentFigure


class ShoutingEnricher(Enricher):
    """A toy backend: the object name in capitals, K times with a counter."""

    name = "shout"
    model = "shout-1"

    def describe(self, inputs: FigureInputs, k: int) -> list[str]:
        self._count_call()
        return [f"A {inputs.object_name.upper()} drawing, number {i}." for i in range(k)]


def test_a_new_enrichment_backend_is_one_registration_line(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from pir.enrich import backends
    from pir.enrich.pipeline import cached_descriptions, enrich_figures

    monkeypatch.setattr(backends, "REGISTRY", dict(backends.REGISTRY))  # leave the process registry as it was
    with pytest.raises(ValueError, match="unknown enrichment backend 'shout'"):
        backends.make_enricher(settings, "shout")
    backends.register_backend(
        backends.BackendSpec("shout", lambda s: ShoutingEnricher(), lambda s: "shout-1", lambda s: ("shout", "shout-1"))
    )
    fig = PatentFigure(patent_id="US1", figure_id="FIG1", image_path=Path("x.png"), object_name="lamp", title="Lamp")
    summary = enrich_figures([fig], settings, backend="shout", k=3, show_progress=False)
    assert summary.n_figures == 1
    assert cached_descriptions(fig, settings, backend="shout", k=3) == [
        f"A LAMP drawing, number {i}." for i in range(3)
    ]


def test_reader_names_are_the_cli_format_choices() -> None:
    """What `pir ingest --format` accepts (the click option the user meets) is "auto" plus every registered reader."""
    import click

    from pir.cli.ingest import ingest
    from pir.ingest.registry import reader_names

    (fmt,) = [p for p in ingest.params if p.name == "fmt"]
    assert isinstance(fmt.type, click.Choice) and tuple(fmt.type.choices) == ("auto", *reader_names())
    assert len(reader_names()) >= 3
