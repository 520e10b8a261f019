"""Tests of pir.core.metrics (re-exported by pir.bench): hand values, exclusions, head/tail, a naive-loop reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pir.core.metrics import (
    average_precision,
    evaluate_embeddings,
    evaluate_rankings,
    evaluate_similarity,
    metric_keys,
    split_head_tail,
)

# Shared 6-item gallery: g0..g5 with labels a, b, a, b, b, c (counts b:3 a:2 c:1).
GALLERY_LABELS = ["a", "b", "a", "b", "b", "c"]
GALLERY_IDS = ["f0", "f1", "f2", "f3", "f4", "f5"]
GALLERY_PATENTS = ["P1", "P1", "P2", "P2", "P3", "P3"]


# --- average_precision ---


def test_average_precision_hand_values() -> None:
    # relevant at ranks 1 and 3, R=2: (1/1 + 2/3) / 2 = 0.8333
    assert average_precision([True, False, True, False, False, False], 2) == pytest.approx(5 / 6)
    # relevant at ranks 2, 4, 5, R=3: (1/2 + 2/4 + 3/5) / 3 = 1.6 / 3 = 0.5333
    assert average_precision([False, True, False, True, True], 3) == pytest.approx(1.6 / 3)
    # truncated list (AP@2): relevant at rank 1 of R=2, the other is below the cut-off: (1/1) / 2 = 0.5
    assert average_precision([True, False], 2) == pytest.approx(0.5)
    assert average_precision([], 0) == 0.0
    with pytest.raises(ValueError, match="n_relevant is 1"):
        average_precision([True, True], 1)


# --- hand-computed 2-query example ---


def test_two_query_hand_example() -> None:
    # query 0 (label a): ranking g0(a) g5(c) g2(a) g1 g3 g4 -> relevant at ranks 1, 3 of R=2
    #   AP = (1/1 + 2/3)/2 = 0.8333; hit@1 = 1; recall_all@1 = 1/2, @5 = 2/2; mrr@k = 1/1
    # query 1 (label b): ranking g0(a) g1(b) g5(c) g3(b) g4(b) g2(a) -> relevant at ranks 2, 4, 5 of R=3
    #   AP = (1/2 + 2/4 + 3/5)/3 = 0.5333; hit@1 = 0, hit@5 = 1; recall_all@1 = 0, @5 = 3/3; mrr@1 = 0, mrr@5 = 1/2
    sim = np.array(
        [
            [0.9, 0.6, 0.7, 0.5, 0.4, 0.8],
            [0.9, 0.8, 0.4, 0.6, 0.5, 0.7],
        ]
    )
    rep = evaluate_similarity(sim, ["a", "b"], GALLERY_LABELS)
    ap0, ap1 = 5 / 6, 1.6 / 3
    assert rep.n_queries == 2 and rep.n_skipped_no_relevant == 0
    assert rep.ks == (1, 5, 10)
    assert list(rep.overall) == metric_keys((1, 5, 10))
    o = rep.overall
    assert o["map"] == pytest.approx((ap0 + ap1) / 2)  # 0.6833
    assert o["recall@1"] == pytest.approx(0.5)  # (1 + 0)/2
    assert o["recall@5"] == pytest.approx(1.0)  # (1 + 1)/2
    assert o["recall_all@1"] == pytest.approx(0.25)  # (1/2 + 0)/2
    assert o["recall_all@5"] == pytest.approx(1.0)  # (2/2 + 3/3)/2
    assert o["mrr@1"] == pytest.approx(0.5)  # (1 + 0)/2
    assert o["mrr@5"] == pytest.approx(0.75)  # (1 + 1/2)/2
    assert o["mrr@10"] == pytest.approx(0.75)
    # head/tail from gallery counts b:3 a:2 c:1 (total 6): head needs >= 3 figures -> {b}; query 1 is head, query 0 tail
    assert rep.head_classes == ("b",)
    assert (rep.n_queries_head, rep.n_queries_tail) == (1, 1)
    assert rep.head["map"] == pytest.approx(ap1)
    assert rep.tail["map"] == pytest.approx(ap0)
    assert rep.head["mrr@5"] == pytest.approx(0.5)
    assert rep.tail["recall_all@1"] == pytest.approx(0.5)


def test_custom_ks_and_head_classes() -> None:
    sim = np.array([[0.9, 0.6, 0.7, 0.5, 0.4, 0.8]])  # query a: relevant at ranks 1, 3
    rep = evaluate_similarity(sim, ["a"], GALLERY_LABELS, ks=(3, 2), head_classes={"a"})
    assert rep.ks == (2, 3)
    assert list(rep.overall) == ["map", "recall@2", "recall@3", "recall_all@2", "recall_all@3", "mrr@2", "mrr@3"]
    assert rep.overall["recall_all@2"] == pytest.approx(0.5)  # 1 of 2 relevant in top 2
    assert rep.overall["recall_all@3"] == pytest.approx(1.0)  # 2 of 2 in top 3
    assert rep.head["map"] == pytest.approx(5 / 6)
    assert rep.n_queries_tail == 0 and math.isnan(rep.tail["map"])
    d = rep.to_dict()
    assert d["tail"]["map"] is None and d["head_classes"] == ["a"]
    json.dumps(d)  # JSON-serialisable


# --- exclusions ---


def test_self_exclusion() -> None:
    # query is gallery item g0 (id f0, label a); scores fall from g0 (1.0) to g5 (0.5)
    sim = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
    # without ids g0 counts itself: relevant at ranks 1, 3 of R=2 -> AP = (1 + 2/3)/2 = 0.8333
    rep_raw = evaluate_similarity(sim, ["a"], GALLERY_LABELS)
    assert rep_raw.overall["map"] == pytest.approx(5 / 6)
    # with ids g0 is removed: ranking g1(b) g2(a) g3 g4 g5 -> relevant at rank 2 of R=1 -> AP = 1/2
    rep = evaluate_similarity(sim, ["a"], GALLERY_LABELS, query_ids=["f0"], gallery_ids=GALLERY_IDS)
    assert rep.overall["map"] == pytest.approx(0.5)
    assert rep.overall["recall@1"] == 0.0
    assert rep.overall["recall@5"] == 1.0
    assert rep.overall["recall_all@5"] == 1.0  # 1 of R=1
    assert rep.overall["mrr@5"] == pytest.approx(0.5)


def test_same_patent_exclusion() -> None:
    # query (id q, not in gallery, patent P1, label b); scores fall from g0 to g5
    sim = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    kw = dict(query_ids=["q"], gallery_ids=GALLERY_IDS, query_patents=["P1"], gallery_patents=GALLERY_PATENTS)
    # no patent exclusion: relevant g1, g3, g4 at ranks 2, 4, 5 of R=3 -> AP = (1/2 + 2/4 + 3/5)/3 = 0.5333
    rep_all = evaluate_similarity(sim, ["b"], GALLERY_LABELS, **kw)
    assert rep_all.overall["map"] == pytest.approx(1.6 / 3)
    # excluding P1 (g0, g1): ranking g2(a) g3(b) g4(b) g5(c) -> relevant at ranks 2, 3 of R=2
    #   AP = (1/2 + 2/3)/2 = 0.5833; mrr@1 = 0, mrr@5 = 1/2; recall_all@1 = 0, @5 = 2/2
    rep = evaluate_similarity(sim, ["b"], GALLERY_LABELS, exclude_same_patent=True, **kw)
    assert rep.overall["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert rep.overall["mrr@1"] == 0.0
    assert rep.overall["mrr@5"] == pytest.approx(0.5)
    assert rep.overall["recall_all@1"] == 0.0
    assert rep.overall["recall_all@5"] == 1.0


def test_queries_without_relevant_items_are_skipped() -> None:
    sim = np.array(
        [
            [0.9, 0.6, 0.7, 0.5, 0.4, 0.8],  # label a: AP 0.8333 (ranks 1, 3 of R=2)
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label z: no gallery item -> skipped
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label c, patent P3: its only relevant g5 is in P3 -> skipped
        ]
    )
    rep = evaluate_similarity(
        sim,
        ["a", "z", "c"],
        GALLERY_LABELS,
        query_patents=["P9", "P9", "P3"],
        gallery_patents=GALLERY_PATENTS,
        exclude_same_patent=True,
    )
    assert rep.n_queries == 1 and rep.n_skipped_no_relevant == 2
    assert rep.n_queries_head + rep.n_queries_tail == 1
    assert rep.overall["map"] == pytest.approx(5 / 6)  # the skipped queries do not pull the mean down


def test_ties_broken_by_gallery_index() -> None:
    # all scores equal -> ranking g0..g5; label b relevant at ranks 2, 4, 5 -> AP = (1/2 + 2/4 + 3/5)/3
    rep = evaluate_similarity(np.full((1, 6), 0.5), ["b"], GALLERY_LABELS)
    assert rep.overall["map"] == pytest.approx(1.6 / 3)
    # partial ties: g1, g2, g3 tie at 0.9 then g0, g4, g5 at 0.1 -> ranking g1(b) g2(a) g3(b) g0(a) g4 g5
    #   label a: relevant at ranks 2, 4 -> AP = (1/2 + 2/4)/2 = 0.5; mrr@1 = 0; mrr@5 = 1/2
    sim = np.array([[0.1, 0.9, 0.9, 0.9, 0.1, 0.1]], dtype=np.float32)
    rep = evaluate_similarity(sim, ["a"], GALLERY_LABELS)
    assert rep.overall["map"] == pytest.approx(0.5)
    assert rep.overall["mrr@5"] == pytest.approx(0.5)
    assert evaluate_similarity(sim, ["a"], GALLERY_LABELS).overall == rep.overall  # deterministic


# --- head/tail split ---


def test_split_head_tail_rule() -> None:
    labels = ["a"] * 5 + ["b"] * 3 + ["c", "d"]  # counts a:5 b:3 c:1 d:1, total 10
    assert split_head_tail(labels) == {"a"}  # 5/10 >= 0.5
    assert split_head_tail(labels, 0.8) == {"a", "b"}  # 8/10 >= 0.8
    assert split_head_tail(labels, 0.81) == {"a", "b", "c"}  # 8/10 < 0.81, 9/10 >= 0.81 (c before d by name)
    assert split_head_tail(labels, 1.0) == {"a", "b", "c", "d"}
    assert split_head_tail(["y", "x"], 0.5) == {"x"}  # tie 1:1 -> by name
    assert split_head_tail([]) == set()
    with pytest.raises(ValueError, match="head_share"):
        split_head_tail(labels, 0.0)


# --- reference implementation and random data ---


def _naive(sim, ql, gl, qids, gids, qp, gp, exclude_same_patent, ks, head):
    """Per-query loop: returns (overall, head, tail) means and per-query ranked relevance lists + R."""
    rows, ranked, n_rel, valid = [], [], [], []
    for i in range(sim.shape[0]):
        keep = [
            j
            for j in range(sim.shape[1])
            if not (qids is not None and qids[i] == gids[j]) and not (exclude_same_patent and qp[i] == gp[j])
        ]
        order = sorted(keep, key=lambda j: (-float(sim[i, j]), j))
        rel = [gl[j] == ql[i] for j in order]
        r = sum(rel)
        ranked.append(rel)
        n_rel.append(r)
        valid.append(r > 0)
        if r == 0:
            rows.append(None)
            continue
        m, found = {}, 0
        ap = 0.0
        for pos, is_rel in enumerate(rel, start=1):
            if is_rel:
                found += 1
                ap += found / pos
        m["map"] = ap / r
        first = next(pos for pos, is_rel in enumerate(rel, start=1) if is_rel)
        for k in ks:
            hits = sum(rel[:k])
            m[f"recall@{k}"] = float(hits > 0)
            m[f"recall_all@{k}"] = hits / r
            m[f"mrr@{k}"] = 1.0 / first if first <= k else 0.0
        rows.append(m)

    def mean(sel):
        ms = [m for m, s in zip(rows, sel, strict=True) if s and m is not None]
        return {k: float(np.mean([m[k] for m in ms])) for k in ms[0]} if ms else None

    is_head = [lab in head for lab in ql]
    return (
        mean([True] * len(rows)),
        mean(is_head),
        mean([not h for h in is_head]),
        ranked,
        n_rel,
    )


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    n_g, n_q = 60, 20
    classes = np.array(list("abcdef"))
    gl = list(rng.choice(classes, size=n_g, p=[0.4, 0.25, 0.15, 0.1, 0.06, 0.04]))
    gids = [f"g{j}" for j in range(n_g)]
    gp = [f"P{j // 4}" for j in range(n_g)]
    # 15 queries are gallery items, 5 come from outside (one with a label absent from the gallery)
    inside = rng.choice(n_g, size=15, replace=False)
    ql = [gl[j] for j in inside] + ["a", "b", "c", "z", "f"]
    qids = [gids[j] for j in inside] + [f"x{i}" for i in range(5)]
    qp = [gp[j] for j in inside] + ["P0", "PX", "P3", "PX", "PY"]
    sim = np.round(rng.random((n_q, n_g)), 1)  # coarse scores -> many ties
    return sim, ql, gl, qids, gids, qp, gp


def _assert_close(got: dict[str, float], want: dict[str, float] | None) -> None:
    assert want is not None
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("exclude_same_patent", [False, True])
def test_random_vs_naive_loop(seed: int, exclude_same_patent: bool) -> None:
    sim, ql, gl, qids, gids, qp, gp = _random_case(seed)
    ks = (1, 3, 5, 10)
    head = split_head_tail(gl)
    want_all, want_head, want_tail, _, n_rel = _naive(sim, ql, gl, qids, gids, qp, gp, exclude_same_patent, ks, head)
    for chunk_rows in (None, 3):
        rep = evaluate_similarity(
            sim,
            ql,
            gl,
            query_ids=qids,
            gallery_ids=gids,
            query_patents=qp,
            gallery_patents=gp,
            exclude_same_patent=exclude_same_patent,
            ks=ks,
            chunk_rows=chunk_rows,
        )
        assert rep.n_skipped_no_relevant == sum(r == 0 for r in n_rel) >= 1  # label z is always skipped
        assert rep.n_queries == sum(r > 0 for r in n_rel)
        _assert_close(rep.overall, want_all)
        _assert_close(rep.head, want_head)
        _assert_close(rep.tail, want_tail)


def test_evaluate_rankings_matches_similarity() -> None:
    sim, ql, gl, qids, gids, qp, gp = _random_case(5)
    head = split_head_tail(gl)
    kw = dict(query_ids=qids, gallery_ids=gids, query_patents=qp, gallery_patents=gp, exclude_same_patent=True)
    rep = evaluate_similarity(sim, ql, gl, head_classes=head, **kw)
    *_, ranked, n_rel = _naive(sim, ql, gl, qids, gids, qp, gp, True, (1, 5, 10), head)
    # full lists (already excluding self / same patent): identical report
    full = evaluate_rankings(ranked, n_rel, ql, head_classes=head)
    for name in ("overall", "head", "tail"):
        _assert_close(getattr(full, name), getattr(rep, name))
    assert (full.n_queries, full.n_queries_head, full.n_skipped_no_relevant) == (
        rep.n_queries,
        rep.n_queries_head,
        rep.n_skipped_no_relevant,
    )
    # top-10 lists: @k metrics for k <= 10 are unchanged, map becomes AP@10 (<= full AP)
    top = evaluate_rankings([r[:10] for r in ranked], n_rel, ql, head_classes=head)
    for k, v in rep.overall.items():
        if k == "map":
            assert top.overall[k] <= v + 1e-12
        else:
            assert top.overall[k] == pytest.approx(v, abs=1e-12), k
    want_ap10 = np.mean([average_precision(r[:10], n) for r, n in zip(ranked, n_rel, strict=True) if n > 0])
    assert top.overall["map"] == pytest.approx(want_ap10)


def test_evaluate_rankings_checks_counts() -> None:
    with pytest.raises(ValueError, match="query 1"):
        evaluate_rankings([[True], [True, True]], [1, 1], ["a", "a"])
    with pytest.raises(ValueError, match="length mismatch"):
        evaluate_rankings([[True]], [1, 1], ["a"])


def test_evaluate_embeddings_is_cosine() -> None:
    rng = np.random.default_rng(3)
    q = rng.normal(size=(12, 8)).astype(np.float32)
    g = rng.normal(size=(40, 8)).astype(np.float32) * rng.uniform(0.5, 3.0, size=(40, 1)).astype(np.float32)
    ql = list(rng.choice(list("abc"), size=12))
    gl = list(rng.choice(list("abc"), size=40))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    want = evaluate_similarity(qn.astype(np.float64) @ gn.T.astype(np.float64), ql, gl)
    got = evaluate_embeddings(q * 7.0, g, ql, gl, chunk_rows=5)  # scale of rows does not matter
    for name in ("overall", "head", "tail"):
        _assert_close(getattr(got, name), getattr(want, name))
    with pytest.raises(ValueError, match="gallery_emb has 1 rows with zero"):
        evaluate_embeddings(q, np.vstack([g, np.zeros((1, 8), np.float32)]), ql, gl + ["a"])


def test_bad_inputs_raise_clear_errors() -> None:
    sim = np.zeros((1, 6))
    with pytest.raises(ValueError, match="gallery_labels has 5 entries, expected 6"):
        evaluate_similarity(sim, ["a"], GALLERY_LABELS[:5])
    with pytest.raises(ValueError, match="exclude_same_patent=True needs"):
        evaluate_similarity(sim, ["a"], GALLERY_LABELS, exclude_same_patent=True)
    with pytest.raises(ValueError, match="given together"):
        evaluate_similarity(sim, ["a"], GALLERY_LABELS, query_ids=["f0"])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_similarity(np.full((1, 6), np.nan), ["a"], GALLERY_LABELS)
    with pytest.raises(ValueError, match="ks"):
        evaluate_similarity(sim, ["a"], GALLERY_LABELS, ks=(0,))
