"""Loss tests: every loss against a naive looped reference (float64), gradients, clamping, learnable weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pir.encoder.losses import (
    ArcFaceClassLoss,
    BalancedSupConLoss,
    FixedWeighting,
    ImageTextContrastiveLoss,
    PirLoss,
    PrototypeLogitAdjustedLoss,
    UncertaintyWeighting,
    build_loss,
)

TOL = 1e-6
COUNTS = [40, 12, 5, 2, 1]  # long-tailed training-set class counts


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).sum())


def _batch(seed: int = 0, n: int = 12, d: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n, d, generator=g, dtype=torch.float64)
    txt = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3, 0, 1, 4, 2][:n])  # repeats, and class 4 and 3 appear once
    protos = torch.randn(len(COUNTS), d, generator=g, dtype=torch.float64)
    protos = protos / protos.norm(dim=1, keepdim=True)
    return img, txt, labels, protos


# -- naive references --------------------------------------------------------------------------------------------
def ref_contrastive(
    img: np.ndarray, txt: np.ndarray, scale: float, ids: list[int] | None = None, more_ids: list[int] | None = None
) -> float:
    n = len(img)
    ids = list(range(n)) if ids is None else ids
    more = list(range(n)) if more_ids is None else more_ids
    a = [_unit(v) for v in img]
    b = [_unit(v) for v in txt]

    def one_side(q: list[np.ndarray], k: list[np.ndarray]) -> float:
        total = 0.0
        for i in range(n):
            keep = [j for j in range(n) if j == i or (ids[j] != ids[i] and more[j] != more[i])]  # not negatives
            lse = math.log(sum(math.exp(scale * float(q[i] @ k[j])) for j in keep))
            total += lse - scale * float(q[i] @ k[i])
        return total / n

    return 0.5 * (one_side(a, b) + one_side(b, a))


def ref_prototype(img: np.ndarray, labels: list[int], protos: np.ndarray, scale: float, tau: float) -> float:
    counts = [max(c, 1) for c in COUNTS]
    total_count = sum(counts)
    total = 0.0
    for i in range(len(img)):
        x = _unit(img[i])
        logits = [
            scale * float(x @ _unit(protos[c])) + tau * math.log(counts[c] / total_count) for c in range(len(counts))
        ]
        lse = math.log(sum(math.exp(v) for v in logits))
        total += lse - logits[labels[i]]
    return total / len(img)


def ref_supcon(emb: np.ndarray, labels: list[int], temperature: float, weighting: str) -> float:
    n = len(emb)
    z = [_unit(v) for v in emb]
    num, den = 0.0, 0.0
    for i in range(n):
        pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in range(n) if a != i)
        li = -sum(math.log(math.exp(float(z[i] @ z[p]) / temperature) / denom) for p in pos) / len(pos)
        c = COUNTS[labels[i]]
        w = {"inverse_frequency": 1.0 / c, "inverse_sqrt": 1.0 / math.sqrt(c), "none": 1.0}[weighting]
        num += w * li
        den += w
    return num / den


def ref_arcface(emb: np.ndarray, labels: list[int], w: np.ndarray, margin_deg: float, scale: float) -> float:
    m = math.radians(margin_deg)
    total = 0.0
    for i in range(len(emb)):
        x = _unit(emb[i])
        logits = []
        for c in range(w.shape[1]):
            cos = float(x @ _unit(w[:, c]))
            if c == labels[i]:
                theta = math.acos(max(-1.0, min(1.0, cos)))
                cos = math.cos(theta + m) if theta <= math.pi - m else cos - m * math.sin(m)
            logits.append(scale * cos)
        lse = math.log(sum(math.exp(v) for v in logits))
        total += lse - logits[labels[i]]
    return total / len(emb)


# -- values against references -----------------------------------------------------------------------------------
def test_contrastive_matches_reference() -> None:
    img, txt, _, _ = _batch()
    loss = ImageTextContrastiveLoss(init_temperature=0.07).double()
    out = loss(img, txt)
    scale = math.exp(loss.logit_scale.item())
    assert out["contrastive_loss"].item() == pytest.approx(ref_contrastive(img.numpy(), txt.numpy(), scale), abs=TOL)
    assert out["logit_scale"].item() == pytest.approx(scale, rel=1e-9)
    assert not out["logit_scale"].requires_grad


def test_contrastive_duplicate_texts_are_not_negatives() -> None:
    img, txt, _, _ = _batch(seed=1)
    ids = [0, 1, 2, 0, 3, 4, 1, 5, 6, 7, 8, 0]
    txt = txt.clone()
    for i, k in enumerate(ids):  # identical descriptions have identical embeddings
        txt[i] = txt[ids.index(k)]
    loss = ImageTextContrastiveLoss().double()
    scale = math.exp(loss.logit_scale.item())
    got = loss(img, txt, text_ids=torch.tensor(ids))["contrastive_loss"].item()
    assert got == pytest.approx(ref_contrastive(img.numpy(), txt.numpy(), scale, ids), abs=TOL)
    # hashable ids work too, and all-distinct ids reduce to the plain loss exactly
    assert loss(img, txt, text_ids=[f"t{k}" for k in ids])["contrastive_loss"].item() == pytest.approx(got, abs=1e-12)
    plain = loss(img, txt)["contrastive_loss"].item()
    assert loss(img, txt, text_ids=list(range(12)))["contrastive_loss"].item() == pytest.approx(plain, abs=1e-12)
    assert got < plain - 0.1  # duplicates no longer compete with the positive


@pytest.mark.parametrize("tau", [0.0, 1.0, 0.5])
def test_prototype_loss_matches_reference(tau: float) -> None:
    img, _, labels, protos = _batch(seed=2)
    loss = PrototypeLogitAdjustedLoss(COUNTS, tau=tau, init_temperature=0.05).double()
    out = loss(img, labels, protos)
    scale = math.exp(loss.logit_scale.item())
    want = ref_prototype(img.numpy(), labels.tolist(), protos.numpy(), scale, tau)
    assert out["class_loss"].item() == pytest.approx(want, abs=TOL)
    raw = loss.logits(img, protos)
    assert out["class_acc"].item() == pytest.approx((raw.argmax(1) == labels).double().mean().item())


@pytest.mark.parametrize("weighting", ["inverse_frequency", "inverse_sqrt", "none"])
def test_supcon_matches_reference(weighting: str) -> None:
    img, _, labels, _ = _batch(seed=3)
    loss = BalancedSupConLoss(COUNTS, temperature=0.1, weighting=weighting)
    out = loss(img, labels)
    assert out["supcon_loss"].item() == pytest.approx(ref_supcon(img.numpy(), labels.tolist(), 0.1, weighting), abs=TOL)
    assert out["supcon_anchors"].item() == 10  # classes 3 and 4 appear once: their anchors are skipped


def test_supcon_without_positives_or_negatives_is_absent() -> None:
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    loss = BalancedSupConLoss(COUNTS)
    for labels in (torch.tensor([0, 1, 2, 3]), torch.tensor([1, 1, 1, 1])):
        out = loss(x, labels)
        assert out["supcon_loss"] is None  # absent, not 0: a learnable weight must not react to it


def test_arcface_matches_reference_and_owns_w() -> None:
    img, _, labels, _ = _batch(seed=4)
    loss = ArcFaceClassLoss(num_classes=len(COUNTS), embedding_size=8, margin=28.6, scale=64).double()
    out = loss(img, labels)
    want = ref_arcface(img.numpy(), labels.tolist(), loss.W.detach().numpy(), 28.6, 64.0)
    assert out["arcface_loss"].item() == pytest.approx(want, abs=TOL)
    assert any(p is loss.W for p in loss.parameters())


def test_uncertainty_and_fixed_weighting_formula() -> None:
    terms = {"a_loss": torch.tensor(2.0, dtype=torch.float64), "b_loss": torch.tensor(0.5, dtype=torch.float64)}
    uw = UncertaintyWeighting(["a_loss", "b_loss"])
    with torch.no_grad():
        uw.log_vars_by_name["a_loss"].fill_(0.3)
        uw.log_vars_by_name["b_loss"].fill_(-1.2)
    out = uw({**terms, "some_metric": torch.tensor(7.0)})
    s = uw.log_vars.detach().double()
    want = math.exp(-s[0]) * 2.0 + s[0] + math.exp(-s[1]) * 0.5 + s[1]
    assert out["loss"].item() == pytest.approx(want.item(), abs=TOL)
    assert out["weight/a_loss"].item() == pytest.approx(math.exp(-0.3), rel=1e-6)
    assert out["log_var/b_loss"].item() == pytest.approx(-1.2, rel=1e-6)
    fw = FixedWeighting({"a_loss": 0.25, "b_loss": 2.0})
    assert fw(terms)["loss"].item() == pytest.approx(0.25 * 2.0 + 2.0 * 0.5)
    assert FixedWeighting(["a_loss", "b_loss"])(terms)["loss"].item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="missing"):
        uw({"a_loss": terms["a_loss"]})
    with pytest.raises(ValueError, match="unexpected"):
        fw({**terms, "c_loss": terms["a_loss"]})


# -- gradients, clamp, optimiser ---------------------------------------------------------------------------------
def test_gradients_reach_inputs_and_parameters() -> None:
    img, txt, labels, protos = _batch(seed=5)
    img = img.float().requires_grad_(True)
    loss = PirLoss(("contrastive", "class", "supcon", "arcface"), class_counts=COUNTS, embed_dim=8)
    out = loss(img, text_emb=txt.float(), labels=labels, prototypes=protos.float())
    assert set(out) >= {"contrastive_loss", "class_loss", "supcon_loss", "arcface_loss", "loss"}
    out["loss"].backward()
    assert img.grad is not None and torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    named = dict(loss.named_parameters())
    assert set(named) == {
        "terms.contrastive.logit_scale",
        "terms.class.logit_scale",
        "terms.arcface.arcface.W",
        *(f"weighting.log_vars_by_name.{t}_loss" for t in ("contrastive", "class", "supcon", "arcface")),
    }
    for name, p in named.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_logit_scale_never_exceeds_max() -> None:
    img, txt, labels, protos = _batch(seed=6)
    loss = PirLoss(("contrastive", "class"), class_counts=COUNTS)
    with torch.no_grad():
        loss.terms["contrastive"].logit_scale.fill_(12.0)  # exp(12) ~ 1.6e5
        loss.terms["class"].logit_scale.fill_(9.0)
    out = loss(img.float(), text_emb=txt.float(), labels=labels, prototypes=protos.float())
    assert out["logit_scale"].item() == pytest.approx(100.0, rel=1e-5)
    assert out["class_logit_scale"].item() <= 100.0 + 1e-3
    loss.clamp_()
    for key in ("contrastive", "class"):
        assert loss.terms[key].logit_scale.item() <= math.log(100.0) + 1e-6
        assert loss.terms[key].scale().item() <= 100.0 + 1e-3
    small = ImageTextContrastiveLoss(init_temperature=0.07, max_logit_scale=20.0)
    with torch.no_grad():
        small.logit_scale.fill_(5.0)
    small.clamp_()
    assert math.exp(small.logit_scale.item()) == pytest.approx(20.0, rel=1e-5)
    fixed = ImageTextContrastiveLoss(learnable=False)
    assert list(fixed.parameters()) == [] and "logit_scale" in fixed.state_dict()


def test_uncertainty_and_temperature_are_optimised() -> None:
    torch.manual_seed(0)
    img_in, txt, labels, protos = _batch(seed=7, d=16)
    model = nn.Linear(16, 16)
    loss = PirLoss(("contrastive", "class", "supcon"), class_counts=COUNTS)
    opt = torch.optim.AdamW(list(model.parameters()) + list(loss.parameters()), lr=0.05)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    watched = {
        **{f"s/{k}": p for k, p in loss.weighting.log_vars_by_name.items()},
        "contrastive.logit_scale": loss.terms["contrastive"].logit_scale,
        "class.logit_scale": loss.terms["class"].logit_scale,
    }
    assert all(id(p) in in_opt for p in watched.values())
    before = {k: v.detach().clone() for k, v in watched.items()}
    for _ in range(5):
        opt.zero_grad()
        out = loss(model(img_in.float()), text_emb=txt[:, :16].float(), labels=labels, prototypes=protos.float())
        out["loss"].backward()
        for k, p in watched.items():
            assert p.grad is not None and p.grad.abs().sum() > 0, k
        opt.step()
        loss.clamp_()
    for k, p in watched.items():
        assert not torch.allclose(p.detach(), before[k]), f"{k} did not change"


def test_uncertainty_weighting_learns_loss_scales() -> None:
    """Kendall weighting: the optimum is s_i = ln L_i, so a larger loss drives its s_i up (its weight down)."""
    w = nn.Parameter(torch.tensor([0.5]))
    uw = UncertaintyWeighting(["big_loss", "small_loss"])
    opt = torch.optim.AdamW([w, *uw.parameters()], lr=0.05, weight_decay=0.0)
    for _ in range(150):
        opt.zero_grad()
        out = uw({"big_loss": 10.0 + (w**2).sum(), "small_loss": 0.1 + (w**2).sum()})
        out["loss"].backward()
        opt.step()
    s_big, s_small = uw.log_vars.tolist()
    assert s_big > 1.0 and s_small < -1.0
    assert out["weight/big_loss"].item() < out["weight/small_loss"].item()


# -- logit adjustment shifts decisions toward the tail -----------------------------------------------------------
def test_logit_adjustment_formula_head_vs_tail() -> None:
    """With no evidence (equal cosines) the adjusted loss is -tau*ln(prior_y) + lse: cheap for head, dear for tail."""
    protos = torch.eye(len(COUNTS), 8, dtype=torch.float64)
    img = torch.zeros(2, 8, dtype=torch.float64)
    img[:, -1] = 1.0  # orthogonal to every prototype: all cosines 0
    labels = torch.tensor([0, 4])  # head, tail
    prior = np.array(COUNTS, dtype=np.float64) / sum(COUNTS)
    plain = PrototypeLogitAdjustedLoss(COUNTS, tau=0.0).double()
    adj = PrototypeLogitAdjustedLoss(COUNTS, tau=1.0).double()
    per = [adj(img[i : i + 1], labels[i : i + 1], protos)["class_loss"].item() for i in range(2)]
    base = [plain(img[i : i + 1], labels[i : i + 1], protos)["class_loss"].item() for i in range(2)]
    assert base == pytest.approx([math.log(len(COUNTS))] * 2, abs=TOL)
    assert per == pytest.approx([-math.log(prior[0]), -math.log(prior[4])], abs=TOL)  # balanced softmax, sum(prior)=1
    assert per[0] < base[0] and per[1] > base[1]


def test_logit_adjustment_shifts_decisions_toward_tail() -> None:
    """Train one toy model with plain and with logit-adjusted softmax on 10:1 data; evaluate unadjusted, balanced."""
    counts = [300, 30]
    protos = torch.eye(2)

    def sample(n0: int, n1: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x0 = torch.randn(n0, 2, generator=g) + torch.tensor([1.0, 0.0])
        x1 = torch.randn(n1, 2, generator=g) + torch.tensor([-1.0, 0.0])
        return torch.cat([x0, x1]), torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(n1, dtype=torch.long)])

    x_train, y_train = sample(*counts, seed=0)
    x_test, y_test = sample(2000, 2000, seed=1)
    results = {}
    for tau in (0.0, 1.0):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        loss = PrototypeLogitAdjustedLoss(counts, tau=tau, init_temperature=0.1, learnable_temperature=False)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            loss(model(x_train), y_train, protos)["class_loss"].backward()
            opt.step()
        with torch.no_grad():
            pred = loss.logits(model(x_test), protos).argmax(1)
        tail_recall = (pred[y_test == 1] == 1).float().mean().item()
        balanced_acc = 0.5 * (tail_recall + (pred[y_test == 0] == 0).float().mean().item())
        results[tau] = ((pred == 1).float().mean().item(), tail_recall, balanced_acc)
    assert results[1.0][0] > results[0.0][0] + 0.05  # predicts the tail class more often
    assert results[1.0][1] > results[0.0][1]  # higher tail recall
    assert results[1.0][2] > results[0.0][2]  # and better balanced accuracy


# -- factory and config ------------------------------------------------------------------------------------------
def test_build_loss_roundtrip_and_baselines() -> None:
    cfg = {
        "losses": ["contrastive", "class", "supcon"],
        "class_counts": COUNTS,
        "contrastive": {"init_temperature": 0.05},
        "class": {"tau": 0.5},
        "supcon": {"temperature": 0.2, "weighting": "inverse_sqrt"},
    }
    loss = build_loss(cfg)
    rebuilt = build_loss(loss.get_config_dict())
    assert rebuilt.get_config_dict() == loss.get_config_dict()
    assert loss.get_config_dict()["class"]["tau"] == 0.5
    img, txt, labels, protos = _batch(seed=8)
    a = loss(img.float(), text_emb=txt.float(), labels=labels, prototypes=protos.float())["loss"]
    b = rebuilt(img.float(), text_emb=txt.float(), labels=labels, prototypes=protos.float())["loss"]
    assert a.item() == pytest.approx(b.item(), rel=1e-6)

    arc = build_loss({"losses": ["arcface"], "num_classes": 5, "embed_dim": 8, "weighting": "fixed"})
    out = arc(img.float(), labels=labels)
    assert out["loss"].item() == pytest.approx(out["arcface_loss"].item())
    inst = build_loss({"losses": "contrastive", "weighting": "fixed", "weights": {"contrastive_loss": 2.0}})
    out = inst(img.float(), text_emb=txt.float())
    assert out["loss"].item() == pytest.approx(2.0 * out["contrastive_loss"].item())
    assert list(inst.parameters()) == [inst.terms["contrastive"].logit_scale]


def test_bad_configs_and_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown loss term"):
        PirLoss(("contrastive", "triplet"))
    with pytest.raises(ValueError, match="needs class_counts"):
        PirLoss(("class",))
    with pytest.raises(ValueError, match="needs num_classes"):
        PirLoss(("arcface",), class_counts=COUNTS)
    with pytest.raises(TypeError, match="unexpected keyword"):
        PirLoss(("contrastive",), contrastiv={"init_temperature": 0.1})
    with pytest.raises(ValueError, match="non-negative"):
        PrototypeLogitAdjustedLoss([3, -1])
    loss = PirLoss(("contrastive", "class"), class_counts=COUNTS)
    img, txt, labels, protos = _batch()
    with pytest.raises(ValueError, match="needs text_emb"):
        loss(img, labels=labels, prototypes=protos)
    with pytest.raises(ValueError, match="prototypes must be"):
        loss(img, text_emb=txt, labels=labels, prototypes=protos[:3])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        loss(img, text_emb=txt, labels=labels + 5, prototypes=protos)


# -- audit fixes (issue 9) ----------------------------------------------------------------------------------------
def test_contrastive_two_copies_of_one_figure_are_not_negatives() -> None:
    """A class-balanced sampler draws one figure twice (different sampled descriptions): the copies, and any two
    figures of one patent, are left out of each other's denominators instead of being pushed apart."""
    img, txt, _, _ = _batch(seed=11)
    figs = [0, 1, 2, 0, 3, 4, 5, 6, 7, 8, 9, 10]  # row 3 is a second draw of figure 0
    pats = [0, 1, 1, 0, 2, 3, 4, 5, 6, 7, 8, 9]  # figures 1 and 2 share a patent
    img = img.clone()
    img[3] = img[0]
    loss = ImageTextContrastiveLoss().double()
    scale = math.exp(loss.logit_scale.item())
    got = loss(img, txt, figure_ids=torch.tensor(figs))["contrastive_loss"].item()
    assert got == pytest.approx(ref_contrastive(img.numpy(), txt.numpy(), scale, figs), abs=TOL)
    both = loss(img, txt, figure_ids=figs, patent_ids=pats)["contrastive_loss"].item()
    assert both == pytest.approx(ref_contrastive(img.numpy(), txt.numpy(), scale, pats), abs=TOL)
    # the masks combine with text ids (a union of "not a negative" pairs)
    tids = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1]
    union = loss(img, txt, text_ids=tids, patent_ids=pats)["contrastive_loss"].item()
    assert union == pytest.approx(ref_contrastive(img.numpy(), txt.numpy(), scale, tids, pats), abs=TOL)
    # through PirLoss (what the trainer calls)
    pir = PirLoss(("contrastive",), weighting="fixed").double()
    assert pir(img, text_emb=txt, figure_ids=figs)["contrastive_loss"].item() == pytest.approx(got, abs=1e-12)


def test_uncertainty_weight_of_an_absent_term_is_left_untouched() -> None:
    """SupCon with no positive pair is absent (None), not 0: its s_i gets no gradient and AdamW (momentum or weight
    decay) does not move it, while the present terms' s_i keep learning."""
    torch.manual_seed(0)
    img_in, txt, _, protos = _batch(seed=7, d=16)
    model = nn.Linear(16, 16).double()
    loss = PirLoss(("contrastive", "class", "supcon"), class_counts=COUNTS).double()
    opt = torch.optim.AdamW(list(model.parameters()) + list(loss.parameters()), lr=0.05, weight_decay=0.1)
    with_pos = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 1])
    s = loss.weighting.log_vars_by_name
    for step in range(8):
        opt.zero_grad(set_to_none=True)
        n = 12 if step < 3 else 5  # steps 3..7: five distinct classes, SupCon has no positive pair
        labels = with_pos if step < 3 else torch.arange(5)
        out = loss(model(img_in[:n]), text_emb=txt[:n, :16], labels=labels, prototypes=protos)
        if step < 3:
            assert out["supcon_loss"] is not None
        else:
            assert out["supcon_loss"] is None and "weight/supcon_loss" in out
            if step == 3:
                frozen = s["supcon_loss"].detach().clone()
                moving = s["class_loss"].detach().clone()
        out["loss"].backward()
        opt.step()
    assert torch.equal(s["supcon_loss"].detach(), frozen)
    assert not torch.equal(s["class_loss"].detach(), moving)


def test_all_terms_absent_gives_a_loss_without_gradient() -> None:
    loss = PirLoss(("supcon",), class_counts=COUNTS)
    out = loss(torch.randn(4, 8, requires_grad=True), labels=torch.tensor([0, 1, 2, 3]))
    assert out["supcon_loss"] is None and out["loss"].item() == 0.0 and not out["loss"].requires_grad


def test_loss_registry_is_the_one_list_and_takes_a_new_term() -> None:
    from pir.encoder.losses import LOSSES, LossInputs, register_loss
    from pir.encoder.train_config import BASELINES, LOSS_NAMES, TrainConfig

    assert tuple(LOSSES) == LOSS_NAMES  # the torch-free names the CLI offers are the registry's
    assert all(t in LOSSES for r in BASELINES.values() for t in (r.losses or ()))

    class NormLoss(nn.Module):  # a new loss: one module ...
        def term(self, x: LossInputs) -> dict[str, torch.Tensor]:
            return {"norm_loss": (x.image_emb.norm(dim=1) - 1).pow(2).mean()}

    register_loss("norm", lambda ctx, **opts: NormLoss())  # ... and one registration line
    try:
        loss = PirLoss(("contrastive", "norm"), weighting="fixed")
        img, txt, _, _ = _batch()
        out = loss(img, text_emb=txt)
        assert out["loss"].item() == pytest.approx(out["contrastive_loss"].item() + out["norm_loss"].item())
        with pytest.raises(ValueError, match="already registered"):
            register_loss("norm", lambda ctx, **opts: NormLoss())
        with pytest.raises(ValueError, match="unknown loss"):
            TrainConfig(losses=("nope",))
    finally:
        del LOSSES["norm"]


def test_similarity_distillation_matches_reference_and_is_zero_for_the_teacher_itself() -> None:
    from pir.encoder.losses import SimilarityDistillationLoss

    g = torch.Generator().manual_seed(3)
    student = torch.randn(6, 8, generator=g, dtype=torch.float64)
    teacher = torch.randn(6, 20, generator=g, dtype=torch.float64)
    loss = SimilarityDistillationLoss(temperature=0.1)
    s = [_unit(v) for v in student.numpy()]
    t = [_unit(v) for v in teacher.numpy()]
    want = 0.0
    for i in range(6):
        others = [j for j in range(6) if j != i]
        zs = sum(math.exp(float(s[i] @ s[j]) / 0.1) for j in others)
        zt = sum(math.exp(float(t[i] @ t[j]) / 0.1) for j in others)
        for j in others:
            p, q = math.exp(float(t[i] @ t[j]) / 0.1) / zt, math.exp(float(s[i] @ s[j]) / 0.1) / zs
            want += p * math.log(p / q)
    assert loss(student, teacher)["distill_loss"].item() == pytest.approx(want / 6, abs=TOL)
    assert loss(teacher, teacher)["distill_loss"].item() == pytest.approx(0.0, abs=1e-12)
    assert loss(student[:1], teacher[:1])["distill_loss"] is None
    with pytest.raises(ValueError, match="teacher_emb"):
        PirLoss(("distill",), weighting="fixed")(student)
