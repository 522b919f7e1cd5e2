"""DAREx on a small CPU transfer task: an MLP pre-trained on digits 0–4, fine-tuned on 5–9 (Adam or AdamR),
its backbone delta pruned by every method, scored by test accuracy over independent drop seeds."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nclab._checks import integer, real
from nclab.darex import (
    AdamR,
    StateDict,
    _p,
    activation_prune,
    apply_delta,
    dare,
    extract_delta,
    layer_inputs,
    magnitude_prune,
    output_change,
    per_layer_q,
    per_layer_q_e,
    select_q,
)

# pre-trained task-A weights by (seed, pre_epochs, hidden, device): a notebook's Adam, AdamR and large-lr
# pipelines share one pre-training (≈ 10 s on one CPU at hidden = 256); at most 4 kept
_PRETRAINED: dict[tuple, dict] = {}


def transfer_pipeline(seed: int = 0, pre_epochs: int = 300, ft_epochs: int = 300, ft_lr: float = 1e-3,
                      reg: float = 0.0, hidden: int = 256, progress: bool = False, stable: bool = False) -> dict:
    """Pre-train an MLP on sklearn digits 0–4, fine-tune every weight on digits 5–9 (new head) with AdamR
    (reg = 0: plain Adam; ``stable``: the official 1/√mean(v̂) decay scaling). AdamR pulls the backbone toward
    its pre-trained weights and the new head toward its own fresh initialization (not the old task's head).
    Returns the models, Δ of the backbone (the head is kept, as in the paper) and the task-B splits
    (train / val for labeled q / test). ``progress``: bars for pre-training and fine-tuning."""
    from tqdm.auto import tqdm

    from nclab.data import digits
    from nclab.nets import MLP, train_classifier
    from nclab.ufm import resolve_device

    seed = integer("seed", seed, 0)
    X, y = digits()
    rng = np.random.default_rng(seed)
    a, b = y < 5, y >= 5
    model = MLP(64, 5, hidden=hidden, depth=2, feat_dim=64, seed=seed)
    key = (seed, integer("pre_epochs", pre_epochs, 1), hidden, str(resolve_device("auto")))
    if key in _PRETRAINED:  # the same pre-training as before: its weights, and torch's RNG as it would leave it
        model.to(resolve_device("auto"), torch.float64).load_state_dict(_PRETRAINED[key])
        torch.manual_seed(seed)
    else:
        train_classifier(model, X[a], y[a], epochs=pre_epochs, lr=1e-3, seed=seed, progress=progress)
        if len(_PRETRAINED) >= 4:
            del _PRETRAINED[next(iter(_PRETRAINED))]
        _PRETRAINED[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pre = {k: v.clone() for k, v in model.state_dict().items()}
    idx = rng.permutation(np.flatnonzero(b))
    n = idx.size
    tr, va, te = idx[: int(0.5 * n)], idx[int(0.5 * n): int(0.7 * n)], idx[int(0.7 * n):]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        model.classifier.reset_parameters()
    params = list(model.parameters())
    anchor = [prm.detach().clone() for prm in params]  # θ_pre for the backbone, the fresh head for the head
    opt = AdamR(params, anchor, lr=real("ft_lr", ft_lr, 0.0, lo_open=True), reg=reg, stable=stable)
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y - 5 * b, dtype=torch.long)
    tr_t = torch.as_tensor(tr)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(integer("ft_epochs", ft_epochs, 1)), disable=not progress, desc="fine-tune", leave=False):
        perm = tr_t[torch.randperm(tr.size, generator=gen)]
        for s in range(0, tr.size, 64):
            batch = perm[s:s + 64]
            loss = nn.functional.cross_entropy(model(Xt[batch]), yt[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    ft = {k: v.detach().clone() for k, v in model.state_dict().items()}
    delta = extract_delta(pre, ft, skip=lambda name: name.startswith("classifier") or name.endswith("bias"))
    base = dict(pre)
    base.update({k: v for k, v in ft.items() if k.startswith("classifier") or k.endswith("bias")})
    return {"model": model, "pre": pre, "ft": ft, "base": base, "delta": delta, "X": Xt, "y": yt,
            "train": tr, "val": va, "test": te}


def accuracy(model: nn.Module, state: StateDict, X: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` with parameters ``state`` on (X, y)."""
    with torch.no_grad():
        return float((torch.func.functional_call(model, state, (X,)).argmax(1) == y).double().mean())


def q_grid(p: float, points: int = 24) -> np.ndarray:
    """Candidate q values for DAREx-q at rate p: geometric from just above 1−p to 1."""
    p = _p(p)
    return np.geomspace(max(1 - p, 1e-4), 1.0, integer("points", points, 2) + 1)[1:]


# drop seeds used to *select* q (validation / unlabeled batch) are disjoint from those used to *score* on test
SELECTION_SEED_OFFSET = 1000

METHODS = ("DARE", "DAREx-q (labeled)", "DAREx-q (unlabeled)", "DAREx-q (per-layer q_e)", "per-layer q* (ours)",
           "magnitude", "activation-aware")
RANDOM_METHODS = METHODS[:5]  # the ones that draw drop masks


def paired_gain(a, b) -> tuple[float, float]:
    """Mean of a − b over paired draws (the same drop masks) and its standard error std(a − b, ddof=1)/√n."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b if a.shape == b.shape else np.array([])
    if d.ndim != 1 or d.size < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"paired_gain needs two equal-length finite 1-d arrays of ≥ 2 draws, got shapes "
                         f"{np.shape(a)} and {np.shape(b)}")
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def evaluate_methods(P: dict, ps, seeds: int = 3, grid_points: int = 24, batch_size: int = 64,
                     progress: bool = False, test_masks: int = 50) -> dict:
    """Test accuracy vs pruning rate for DARE, DAREx-q (labeled q on the validation split, unlabeled q on
    one training batch, the paper's analytical per-layer q_e), our per-layer MSE-minimizing q*, magnitude and
    activation-aware pruning, for a ``transfer_pipeline`` result. q is selected averaging ``seeds`` drop masks
    (seeds SELECTION_SEED_OFFSET + s); random methods are scored on test over ``test_masks`` other masks
    (seeds 0..test_masks − 1, shared by all methods: paired), per-mask accuracies in ``out["masks"][method]``.
    ``progress``: a bar over the pruning rates."""
    from tqdm.auto import tqdm

    model, base, delta, X, y = P["model"], P["base"], P["delta"], P["X"], P["y"]
    te, va = torch.as_tensor(P["test"]), torch.as_tensor(P["val"])
    batch = X[torch.as_tensor(P["train"][:integer("batch_size", batch_size, 1)])]
    seeds = integer("seeds", seeds, 1)
    test_masks = integer("test_masks", test_masks, 2)
    ps = [_p(p) for p in ps]
    with torch.no_grad():
        reference = torch.func.functional_call(model, P["ft"], (batch,))
    inputs = layer_inputs(model, P["ft"], batch)
    norms = {n: x.norm(dim=0) for n, x in inputs.items()}

    def acc(d, idx=te):
        return accuracy(model, apply_delta(base, d), X[idx], y[idx])

    def avg(f, offset=0):
        return float(np.mean([f(s + offset) for s in range(seeds)]))

    out = {name: [] for name in METHODS}
    out.update({"p": list(ps), "q_labeled": [], "q_unlabeled": [], "fine-tuned": accuracy(model, P["ft"], X[te], y[te]),
                "no delta": accuracy(model, base, X[te], y[te]), "masks": {name: [] for name in RANDOM_METHODS}})

    def score(name, p, q):  # q = None is DARE itself: reuse its masks' scores
        per_mask = out["masks"]["DARE"][-1] if q is None and name != "DARE" else [
            acc(dare(delta, p, q, seed=s)) for s in range(test_masks)]
        out["masks"][name].append(per_mask)
        out[name].append(float(np.mean(per_mask)))
    sel = SELECTION_SEED_OFFSET
    for p in tqdm(ps, disable=not progress, desc="pruning rates", leave=False):
        if p == 0:
            for name in METHODS:
                out[name].append(out["fine-tuned"])
            for name in RANDOM_METHODS:
                out["masks"][name].append([out["fine-tuned"]] * test_masks)
            out["q_labeled"].append(1.0)
            out["q_unlabeled"].append(1.0)
            continue
        grid = q_grid(p, grid_points)
        ql, _ = select_q(lambda q, p=p: avg(lambda s: acc(dare(delta, p, q, seed=s), va), sel), grid)
        qu, _ = select_q(lambda q, p=p: avg(lambda s: output_change(model, apply_delta(base, dare(delta, p, q, seed=s)),
                                                                    reference, batch), sel), grid, maximize=False)
        q_layer = per_layer_q(delta, inputs, p)
        q_paper = per_layer_q_e(delta, inputs, p) if p > 0.5 else None
        score("DARE", p, None)
        score("DAREx-q (labeled)", p, ql)
        score("DAREx-q (unlabeled)", p, qu)
        score("DAREx-q (per-layer q_e)", p, q_paper)  # q_e is defined for p > 0.5; below, DARE's q = 1 − p
        score("per-layer q* (ours)", p, q_layer)
        out["magnitude"].append(acc(magnitude_prune(delta, p)))
        out["activation-aware"].append(acc(activation_prune(delta, p, norms)))
        out["q_labeled"].append(ql)
        out["q_unlabeled"].append(qu)
    return out
