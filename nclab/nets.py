"""Small torch networks for the "real net" sections: an MLP whose last layer is a bias-free linear
classifier on penultimate features h(x) (no ReLU on h, as in the UFM), and a seeded trainer."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nclab._checks import array, integer, real, short
from nclab.losses import get_loss
from nclab.ufm import TrainingDiverged, resolve_device

__all__ = [
    "MLP", "train_classifier", "last_layer", "imbalanced_last_layer", "ContrastiveMLP", "train_contrastive",
    "dead_units", "embed", "probe_accuracies", "ContextMLP", "train_lm", "lm_last_layer"
]


class MLP(nn.Module):
    """x ↦ W·h(x), h(x) = A_L ReLU(… ReLU(A_1 x)) ∈ R^feat_dim; the classifier W (k×feat_dim) has no bias.
    ``seed`` makes the initialization reproducible without touching the global torch RNG."""

    def __init__(self, in_dim: int, k: int, hidden: int = 128, depth: int = 2, feat_dim: int = 32,
                 seed: int | None = None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(integer("seed", seed, 0))
            self._build(in_dim, k, hidden, depth, feat_dim)

    def _build(self, in_dim, k, hidden, depth, feat_dim) -> None:
        in_dim, k = integer("in_dim", in_dim, 1, 10**6), integer("k", k, 2, 10**6)
        hidden, depth = integer("hidden", hidden, 1, 10**5), integer("depth", depth, 1, 100)
        feat_dim = integer("feat_dim", feat_dim, k - 1, 10**5)
        self.in_dim, self.k = in_dim, k
        layers, width = [], in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, feat_dim))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(feat_dim, k, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def train_classifier(model: nn.Module, X, y, *, loss="ce", epochs: int = 300, lr: float = 1e-3,
                     batch_size: int | None = None, weight_decay: float = 0.0, optimizer: str = "adam",
                     momentum: float = 0.9, feature_penalty: float = 0.0, seed: int = 0,
                     device: str = "auto", progress: bool = True, record: int = 1) -> dict:
    """Adam or SGD (with momentum) on ``loss(model(X), y)`` + L2 ``weight_decay``, in float64, full
    batch by default; ``feature_penalty`` adds (λ_h/2)·mean_i ‖h(x_i)‖², the UFM's feature ridge
    (needs ``model.features``). Returns the history {"epoch", "loss", "train_error"} every ``record``
    epochs and at the last (one extra forward pass each); stops with ``TrainingDiverged`` on a non-finite loss."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (e.g. nclab.nets.MLP), got {type(model).__name__}")
    epochs = integer("epochs", epochs, 1)
    lr = real("lr", lr, 0.0, lo_open=True)
    weight_decay = real("weight_decay", weight_decay, 0.0)
    feature_penalty = real("feature_penalty", feature_penalty, 0.0)
    if feature_penalty > 0 and not (hasattr(model, "features") and hasattr(model, "classifier")):
        raise ValueError("feature_penalty > 0 needs a model with .features and .classifier (like nclab.nets.MLP)")
    momentum = real("momentum", momentum, 0.0, 1.0, hi_open=True)
    seed = integer("seed", seed, 0)
    record = integer("record", record, 1)
    loss_fn = get_loss(loss)
    X, y = _classification_data(model, X, y)
    torch.manual_seed(seed)
    dev = resolve_device(device)
    model.to(dev, torch.float64)
    Xt = torch.as_tensor(X, dtype=torch.float64, device=dev)
    yt = torch.as_tensor(y, dtype=torch.long, device=dev)
    n = yt.numel()
    bs = n if batch_size is None else integer("batch_size", batch_size, 1, n)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay,
                              momentum=momentum)
    else:
        raise ValueError(f"optimizer={optimizer!r} is unknown: use 'adam' or 'sgd'")
    gen = torch.Generator().manual_seed(seed)
    hist = {"epoch": [], "loss": [], "train_error": []}
    from tqdm.auto import tqdm

    for epoch in tqdm(range(1, epochs + 1), disable=not progress, desc="train", leave=False):
        perm = torch.randperm(n, generator=gen).to(dev) if bs < n else torch.arange(n, device=dev)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            if feature_penalty > 0:
                feats = model.features(Xt[idx])
                out = loss_fn(model.classifier(feats), yt[idx]) + feature_penalty / 2 * feats.square().sum(1).mean()
            else:
                out = loss_fn(model(Xt[idx]), yt[idx])
            if not math.isfinite(float(out.detach())):
                raise TrainingDiverged(f"training diverged at epoch {epoch} (loss={float(out.detach())}) with "
                                       f"lr={lr:g}: lower the learning rate (try lr={lr / 10:g})")
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
        if epoch % record and epoch < epochs:
            continue
        with torch.no_grad():
            logits = model(Xt)
            hist["epoch"].append(epoch)
            hist["loss"].append(float(loss_fn(logits, yt)))
            hist["train_error"].append(float((logits.argmax(1) != yt).double().mean()))
    return hist


def _classification_data(model: nn.Module, X, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate (X: n×in_dim finite, y: n labels in 0..k−1) against the model; errors name X, y or model."""
    X = array("X", X, ndim=2)
    y_arr = np.asarray(y)
    if y_arr.dtype.kind not in "iuf" or y_arr.ndim != 1:
        raise ValueError(f"y must be a 1-D vector of integer class labels, got {short(y)}")
    if y_arr.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y_arr.shape[0]} labels: one label per row")
    if not np.all(np.isfinite(y_arr)) or np.any(y_arr < 0) or np.any(y_arr != np.round(y_arr)):
        raise ValueError(f"y={short(y)} must hold non-negative integer class labels")
    in_dim = getattr(model, "in_dim", None)
    if in_dim is not None and X.shape[1] != in_dim:
        raise ValueError(f"X has {X.shape[1]} columns but the model takes in_dim={in_dim} inputs")
    k = getattr(model, "k", None)
    if k is None:  # any other module: one probe forward tells its input width and number of outputs
        p = next(model.parameters(), None)
        probe = torch.as_tensor(X[:1], dtype=torch.float64 if p is None else p.dtype,
                                device=None if p is None else p.device)
        try:
            with torch.no_grad():
                out = model(probe)
        except RuntimeError as err:
            raise ValueError(f"the model cannot take X with {X.shape[1]} columns: {str(err).splitlines()[0]}") from None
        if out.ndim != 2:
            raise ValueError(f"the model must map X (n×d) to n×k logits, got output shape {tuple(out.shape)}")
        k = out.shape[1]
    if y_arr.max() >= k:
        raise ValueError(f"y contains class {int(y_arr.max())} but the model has k={k} outputs (labels 0..{k - 1})")
    return X, y_arr.astype(np.int64)


@torch.no_grad()
def last_layer(model: MLP, X) -> tuple[np.ndarray, np.ndarray]:
    """(W, H): the classifier weights (k×d) and the penultimate features of X as columns (d×n)."""
    p = next(model.parameters())
    X = array("X", X, ndim=2)
    if X.shape[1] != getattr(model, "in_dim", X.shape[1]):
        raise ValueError(f"X has {X.shape[1]} columns but the model takes in_dim={model.in_dim} inputs")
    Xt = torch.as_tensor(X, dtype=p.dtype, device=p.device)
    return model.classifier.weight.cpu().numpy().copy(), model.features(Xt).cpu().numpy().T.copy()


def imbalanced_last_layer(source: str = "digits", *, k: int = 4, R: float = 10, k_min: int = 2,
                          n_min: int = 10, epochs: int = 1500, lr: float = 0.1, weight_decay: float = 5e-4,
                          feature_penalty: float = 5e-4, hidden: int = 128, feat_dim: int = 8,
                          seed: int = 0, progress: bool = False) -> dict:
    """Train an MLP (SGD, momentum 0.9, full batch) on a step-imbalanced subset of ``source`` past
    zero training error; return ``metrics.summary`` of its last layer plus "train_error" and "n"."""
    from nclab.data import step_imbalanced
    from nclab.metrics import summary

    X, y = step_imbalanced(source, k=k, R=R, k_min=k_min, n_min=n_min, seed=seed)
    model = MLP(X.shape[1], k, hidden=hidden, depth=2, feat_dim=feat_dim, seed=seed)
    hist = train_classifier(model, X, y, epochs=epochs, lr=lr, weight_decay=weight_decay, optimizer="sgd",
                            feature_penalty=feature_penalty, seed=seed, progress=progress, record=epochs)
    W, H = last_layer(model, X)
    out = summary(W, H, y)
    out.update({"train_error": hist["train_error"][-1], "final_loss": hist["loss"][-1], "n": int(y.size)})
    return out


class ContrastiveMLP(nn.Module):
    """x ↦ normalize(ReLU?(h(x))) with the ``MLP`` feature extractor h; ``relu`` adds the final ReLU
    before normalization (the paper's "SCL + ReLU")."""

    def __init__(self, in_dim: int, feat_dim: int = 16, hidden: int = 128, depth: int = 2, relu: bool = True,
                 seed: int | None = None):
        super().__init__()
        self.body = MLP(in_dim, 2, hidden=hidden, depth=depth, feat_dim=integer("feat_dim", feat_dim, 1), seed=seed)
        self.relu = bool(relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body.features(x)
        if self.relu:
            h = torch.relu(h)
        return h / h.norm(dim=1, keepdim=True).clamp(min=1e-12)


def train_contrastive(model: nn.Module, X, y, *, loss, epochs: int = 200, lr: float = 1e-3,
                      batch_size: int | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Adam on a feature loss ``loss(model(X_B), y_B)`` (e.g. ``SupCon``), float64, shuffled mini-batches
    (full batch by default). Returns {"epoch", "loss"}; stops with ``TrainingDiverged`` on a non-finite loss."""
    epochs = integer("epochs", epochs, 1)
    lr = real("lr", lr, 0.0, lo_open=True)
    model.to(torch.float64)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n = yt.numel()
    bs = n if batch_size is None else integer("batch_size", batch_size, 2, n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(integer("seed", seed, 0))
    hist = {"epoch": [], "loss": []}
    from tqdm.auto import tqdm

    for epoch in tqdm(range(1, epochs + 1), disable=not progress, desc="train", leave=False):
        perm = torch.randperm(n, generator=gen) if bs < n else torch.arange(n)
        total = 0.0
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            out = loss(model(Xt[idx]), yt[idx])
            if not math.isfinite(float(out.detach())):
                raise TrainingDiverged(f"training diverged at epoch {epoch}: lower the learning rate (lr={lr:g})")
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            total += float(out.detach())
        hist["epoch"].append(epoch)
        hist["loss"].append(total)
    return hist


@torch.no_grad()
def dead_units(model: ContrastiveMLP, X) -> int:
    """Output units of ``model.body.features`` that are ≤ 0 on every row of X (with ReLU: no gradient, ever)."""
    h = model.body.features(torch.as_tensor(np.asarray(X), dtype=next(model.parameters()).dtype))
    return int((h <= 0).all(dim=0).sum())


@torch.no_grad()
def embed(model: nn.Module, X) -> np.ndarray:
    """Model outputs for X (n×p, one example per row) as columns (d×n)."""
    X = array("X", X, ndim=2)
    with torch.no_grad():
        return model(torch.as_tensor(X, dtype=torch.float64)).numpy().T.copy()


def probe_accuracies(Htr, ytr, Hte, yte) -> dict:
    """Nearest-class-centre and linear-probe (logistic regression) test accuracies on embeddings (d×n)."""
    from sklearn.linear_model import LogisticRegression

    from nclab.labels import _labels
    from nclab.metrics import class_means

    Htr, Hte = array("Htr", Htr, ndim=2), array("Hte", Hte, ndim=2)
    ytr, yte = _labels(ytr, "ytr"), _labels(yte, "yte")
    for H, y, h, w in ((Htr, ytr, "Htr", "ytr"), (Hte, yte, "Hte", "yte")):
        if H.shape[1] != y.size:
            raise ValueError(f"{h} has {H.shape[1]} columns (examples) but {w} has {y.size} labels: {h} must be d×n")
    if Hte.shape[0] != Htr.shape[0]:
        raise ValueError(f"Hte has feature dimension {Hte.shape[0]} but Htr has {Htr.shape[0]}")
    mu = class_means(Htr, ytr)
    ncc = np.argmin(((Hte[:, :, None] - mu[:, None, :]) ** 2).sum(0), axis=1)
    clf = LogisticRegression(max_iter=2000).fit(Htr.T, ytr)
    return {"ncc": float(np.mean(ncc == yte)), "linear_probe": float(clf.score(Hte.T, yte))}


class ContextMLP(nn.Module):
    """A tiny language model: embed the ``context_length`` previous tokens, concatenate, MLP → features
    h(context) ∈ R^feat_dim → bias-free linear read-out to V word logits."""

    def __init__(self, V: int, context_length: int, emb: int = 16, hidden: int = 64, feat_dim: int = 16,
                 seed: int | None = None):
        super().__init__()
        V, context_length = integer("V", V, 2), integer("context_length", context_length, 1)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(integer("seed", seed, 0))
            emb, hidden, feat_dim = (integer("emb", emb, 1, 1 << 16), integer("hidden", hidden, 1, 1 << 16),
                                     integer("feat_dim", feat_dim, 1, 1 << 16))
            self.embed = nn.Embedding(V, emb)
            self.features = nn.Sequential(nn.Linear(context_length * emb, hidden), nn.ReLU(),
                                          nn.Linear(hidden, feat_dim))
            self.classifier = nn.Linear(feat_dim, V, bias=False)

    def feats(self, ctx: torch.Tensor) -> torch.Tensor:
        return self.features(self.embed(ctx).flatten(1))

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feats(ctx))


def train_lm(model: ContextMLP, data, *, epochs: int = 2000, lr: float = 1e-2, seed: int = 0,
             progress: bool = True, schedule: str = "constant") -> dict:
    """Full-batch Adam on the NTP loss Σ_j π_j Σ_z p_j(z)(−log softmax)_z over the deduplicated contexts of
    ``data`` (an ``ntp.NTPData`` built by ``from_tokens``) — the same objective as the token stream.
    ``schedule``: "constant" lr, or "cosine" (lr·(1 + cos(π·epoch/epochs))/2, settles Adam's late oscillations)."""
    epochs = integer("epochs", epochs, 1)
    lr = real("lr", lr, 0.0, lo_open=True)
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule={schedule!r} is not allowed: use 'constant' or 'cosine'")
    torch.manual_seed(integer("seed", seed, 0))
    index = {w: i for i, w in enumerate(data.vocab)}
    ctx = torch.tensor([[index[w] for w in c] for c in data.contexts], dtype=torch.long)
    P = torch.as_tensor(data.P.T)
    pi = torch.as_tensor(data.pi)
    model.to(torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=lr / 100) if schedule == "cosine"
             else None)
    hist = {"epoch": [], "loss": []}
    from tqdm.auto import tqdm

    for epoch in tqdm(range(1, epochs + 1), disable=not progress, desc="LM", leave=False):
        loss = -(pi * (P * torch.log_softmax(model(ctx), dim=1)).sum(1)).sum()
        if not math.isfinite(float(loss.detach())):
            raise TrainingDiverged(f"training diverged at epoch {epoch}: lower the learning rate (lr={lr:g})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        hist["epoch"].append(epoch)
        hist["loss"].append(float(loss.detach()))
    return hist


@torch.no_grad()
def lm_last_layer(model: ContextMLP, data) -> tuple[np.ndarray, np.ndarray]:
    """(W, H): word embeddings (V×d) and context embeddings as columns (d×m)."""
    index = {w: i for i, w in enumerate(data.vocab)}
    ctx = torch.tensor([[index[w] for w in c] for c in data.contexts], dtype=torch.long)
    return model.classifier.weight.numpy().copy(), model.feats(ctx).numpy().T.copy()
