"""The in-process ingest pipeline: idempotent re-ingest, bad files, dimension guard, real USPTO sheets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pir.core.config import Settings
from pir.encoder.model import load_encoder
from pir.ingest.schema import point_id
from pir.pipeline import ingest
from pir.search import StoreError, open_store
from pir.synth import synthesize_corpus
from tests.helpers import make_tiny_encoder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    synthesize_corpus(out, patents=10, seed=3, image_size=128)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny")


def _n_records(corpus: Path) -> int:
    return sum(1 for line in (corpus / "metadata.jsonl").read_text().splitlines() if line.strip())


def test_ingest_then_reingest_adds_nothing(corpus: Path, tiny: Path, settings: Settings) -> None:
    enc = load_encoder(tiny)
    first = ingest(corpus, settings, encoder=enc, show_progress=False)
    n = _n_records(corpus)
    assert first.discovered == n and first.ingested == n and first.n_failed == 0
    assert first.store_count == n
    second = ingest(corpus, settings, encoder=enc, show_progress=False)
    assert second.ingested == 0 and second.skipped == n and second.store_count == n
    forced = ingest(corpus, settings, encoder=enc, force=True, show_progress=False)
    assert forced.ingested == n and forced.store_count == n  # overwritten, never duplicated
    with open_store(settings) as store:
        pts = list(store.scroll(with_vectors=True))
        assert len(pts) == n
        p = pts[0].payload
        assert p["encoder"] == "tiny-test" and p["encoder_version"] == enc.version and len(p["content_hash"]) == 64
        assert p["descriptions"], "enrichment descriptions are stored in the payload"
        v = np.stack([q.vector for q in pts])
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_bad_file_is_reported_and_the_rest_is_stored(
    corpus: Path, tiny: Path, settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "corpus"
    shutil.copytree(corpus, bad)
    rows = [json.loads(x) for x in (bad / "metadata.jsonl").read_text().splitlines() if x.strip()]
    victim = bad / rows[0]["file"]
    victim.write_bytes(victim.read_bytes()[:60])  # truncated PNG
    enc = load_encoder(tiny)
    s = ingest(bad, settings, encoder=enc, show_progress=False)
    assert s.ingested == len(rows) - 1
    assert len(s.failed) == 1 and s.failed[0].path.endswith(victim.name) and s.failed[0].reason
    # fixing the file and re-running stores just that figure; nothing stored before is lost
    shutil.copy(corpus / rows[0]["file"], victim)
    s2 = ingest(bad, settings, encoder=enc, show_progress=False)
    assert s2.ingested == 1 and s2.skipped == len(rows) - 1 and s2.store_count == len(rows)


def test_dimension_mismatch_is_refused_and_nothing_is_lost(
    corpus: Path, tiny: Path, settings: Settings, tmp_path: Path
) -> None:
    enc = load_encoder(tiny)
    ingest(corpus, settings, encoder=enc, show_progress=False)
    other = load_encoder(make_tiny_encoder(tmp_path / "other", embed_dim=24, name="other-24"))
    with pytest.raises(StoreError, match="24"):
        ingest(corpus, settings, encoder=other, show_progress=False)
    with open_store(settings) as store:
        assert store.count() == _n_records(corpus) and store.dim() == 32


@pytest.mark.shared
def test_ingest_real_uspto_grants(shared_data: Path, settings: Settings, tmp_path: Path) -> None:
    """Five real USPTO design grants (1-bit G4 TIFF sheets + grant XML) with the real offline lite0 encoder."""
    src = shared_data / "impact_uspto_design_raw" / "sample_data"
    sub = tmp_path / "uspto"
    sub.mkdir()
    folders = sorted(p for p in src.iterdir() if p.is_dir())[:5]
    for f in folders:
        (sub / f.name).symlink_to(f)
    n_sheets = sum(len(list(f.glob("*.TIF"))) for f in folders)
    enc = load_encoder("tf_efficientnet_lite0")
    follow = {"follow_outside": True}  # the grant folders are symlinks to the shared data (read-only, not copied)
    s = ingest(sub, settings, encoder=enc, show_progress=False, reader_options=follow)
    assert s.discovered == n_sheets and s.ingested + s.n_failed == n_sheets and s.ingested >= n_sheets - 1
    again = ingest(sub, settings, encoder=enc, show_progress=False, reader_options=follow)
    assert again.ingested == 0 and again.store_count == s.store_count
    with open_store(settings) as store:
        query = folders[0] / f"{folders[0].name}-D00003.TIF"
        hits = store.search(enc.encode_images([query])[0], 8)
        # the query sheet itself is stored: it comes back first with cosine ~1 ...
        assert hits[0].payload["figure_id"] == "D00003" and hits[0].score > 0.999
        stored_path = Path(hits[0].payload["image_path"])
        assert hits[0].payload["title"] and stored_path.is_absolute() and stored_path.name == query.name
        # ... followed by most of that patent's other sheets (zero-shot ImageNet features already do this)
        own = hits[0].payload["patent_id"]
        n_own = len(list(folders[0].glob("*.TIF")))
        same = [h for h in hits[1:] if h.payload["patent_id"] == own]
        assert len(same) >= min(4, n_own - 1), [(h.payload["patent_id"], h.payload["figure_id"]) for h in hits]


def test_changed_metadata_is_restored_on_reingest(corpus: Path, tiny: Path, settings: Settings, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    shutil.copytree(corpus, work)
    enc = load_encoder(tiny)
    ingest(work, settings, encoder=enc, show_progress=False)
    rows = [json.loads(x) for x in (work / "metadata.jsonl").read_text().splitlines() if x.strip()]
    rows[0]["class_label"] = "relabelled"
    (work / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = ingest(work, settings, encoder=enc, show_progress=False)
    assert again.ingested == 1 and again.skipped == len(rows) - 1
    with open_store(settings) as store:
        pid = store.retrieve([point_id(rows[0]["patent_id"], rows[0]["figure_id"])])[0]
        assert pid.payload["class_label"] == "relabelled"
        assert store.count() == len(rows)


@pytest.mark.slow
@pytest.mark.shared
def test_ingest_all_438_uspto_sheets_then_reingest_adds_nothing(shared_data: Path, settings: Settings) -> None:
    """Issue acceptance: every sheet of the 2021 sample is stored (or named as unreadable); a re-run adds 0 points."""
    src = shared_data / "impact_uspto_design_raw" / "sample_data"
    n_sheets = len(list(src.glob("*/*.TIF")))
    assert n_sheets == 438
    enc = load_encoder("tf_efficientnet_lite0")
    first = ingest(src, settings, encoder=enc, show_progress=False)
    assert first.discovered == n_sheets and first.ingested == n_sheets and first.n_failed == 0
    again = ingest(src, settings, encoder=enc, show_progress=False)
    assert again.ingested == 0 and again.skipped == n_sheets and again.store_count == n_sheets


def test_descriptions_added_later_update_the_payload_without_re_embedding(
    corpus: Path, tiny: Path, settings: Settings
) -> None:
    enc = load_encoder(tiny)
    first = ingest(corpus, settings, encoder=enc, enrich=False, show_progress=False)
    with open_store(settings) as store:
        before = {p.id: p for p in store.scroll(with_vectors=True)}
    assert all("descriptions" not in p.payload for p in before.values())
    second = ingest(corpus, settings, encoder=enc, enrich=True, show_progress=False)
    assert second.ingested == first.ingested and second.store_count == first.store_count
    with open_store(settings) as store:
        after = {p.id: p for p in store.scroll(with_vectors=True)}
    assert all(p.payload["descriptions"] for p in after.values())
    for pid, p in after.items():  # the stored vector was reused, bit for bit
        np.testing.assert_array_equal(p.vector, before[pid].vector)
    third = ingest(corpus, settings, encoder=enc, enrich=True, show_progress=False)
    assert third.ingested == 0 and third.skipped == first.ingested
