"""Unconstrained-features model (UFM) trainer in float64 torch.

Minimizes  loss(Hᵀ Wᵀ, y) + λ/2 (‖W‖²_F + ‖H‖²_F)  over W (k×d) and H (d×n) by gradient descent
(full batch, or mini-batches with the H penalty scaled by n/|B| so each batch is unbiased), and
records ``metrics.summary`` on a log-spaced schedule of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from nclab._checks import integer, real
from nclab._progress import close as close_bar
from nclab._progress import progress as progress_bar
from nclab.frames import Geometry
from nclab.labels import labels_from_sizes, sizes_of
from nclab.losses import get_loss
from nclab.metrics import centered_etf_distance, nc1, of_distance, summary
from nclab.ufm_kernels import Family, batch_order, family, loss_and_grad, soft_family

__all__ = ["TrainingDiverged", "UFMResult", "SphereResult", "resolve_device", "log_schedule", "train_ufm",
           "train_sphere_ufm"]  # not project_sphere: a step of train_sphere_ufm


class TrainingDiverged(RuntimeError):
    """Raised when the objective becomes non-finite or explodes; the message says what to change."""


@dataclass
class UFMResult:
    """Final W (k×d), H (d×n), labels y, and ``history``: a dict of equal-length lists, one entry per
    recorded step ("step", "objective", and every key of ``metrics.summary``)."""

    W: np.ndarray
    H: np.ndarray
    y: np.ndarray
    history: dict = field(default_factory=dict)
    steps_done: int = 0
    interrupted: bool = False
    converged: bool = False
    grad_norm: float = float("nan")

    def final(self) -> dict:
        """The last recorded entry of every history series."""
        return {key: values[-1] for key, values in self.history.items()}


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; any other string is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device: use 'auto', 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not available: this torch has no CUDA device (use 'auto' or 'cpu')")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} is not available on this machine (use 'auto' or 'cpu')")
    return dev


def log_schedule(steps: int, points: int, *, name: str = "points") -> np.ndarray:
    """About ``points`` log-spaced integers from 0 to ``steps`` (both included), unique and sorted; errors name
    ``points`` as ``name`` (the trainers' ``record``)."""
    steps = integer("steps", steps, 1)
    points = integer(name, points, 2)
    grid = np.unique(np.round(np.geomspace(1, steps, points - 1)).astype(int))
    return np.concatenate([[0], grid])


def train_ufm(y=None, *, class_sizes=None, d: int, loss="ce", lam: float = 0.0, lr: float = 0.5,
              steps: int = 1000, batch_size: int | None = None, seed: int = 0, init_scale: float = 0.1,
              record: int = 50, reference: Geometry | None = None, device: str = "auto",
              progress: bool = True, W0=None, H0=None, tol: float | None = None, soft_labels=None,
              weights=None, metrics=None) -> UFMResult:
    """Train the UFM by (mini-batch) gradient descent; give labels ``y`` or ``class_sizes``.

    With ``tol`` (full batch only) training stops once the gradient norm ‖(∇_W, ∇_H)‖_F < tol and the
    result says ``converged``; without it, it runs all ``steps``.

    Soft labels (next-token prediction): ``soft_labels`` P (k×n, columns are distributions) and ``weights``
    π (n, default uniform) replace y; the loss is Σ_i π_i Σ_z P_zi (−log softmax(W h_i)_z) and the
    history records ``metrics(W, H)`` (a dict) instead of the SELI summary.

    ``reference`` is the geometry distances are measured to (default: SELI of the class sizes).
    Ctrl-C / KeyboardInterrupt stops training and returns what was done (``interrupted=True``).
    """
    if soft_labels is not None:
        if y is not None or class_sizes is not None:
            raise ValueError("give either soft_labels or hard labels (y / class_sizes), not both")
        Pt, wt = _soft_targets(soft_labels, weights)
        k, n = Pt.shape
        y = np.arange(n)
        d = integer("d", d, 1)

        def loss_fn(logits, idx):
            return -(wt[idx] * (Pt[:, idx].T * torch.log_softmax(logits, dim=1)).sum(1)).sum()
        metric_fn = metrics or (lambda W_, H_: {})
    else:
        if (y is None) == (class_sizes is None):
            raise ValueError("give exactly one of y (labels) or class_sizes")
        y = labels_from_sizes(class_sizes) if y is None else np.asarray(y)
        sizes = sizes_of(y)
        k, n = sizes.size, y.size
        d = integer("d", d, k - 1)
        loss_fn = get_loss(loss)
        metric_fn = metrics or (lambda W_, H_: summary(W_, H_, y, reference))
    lam = real("lam", lam, 0.0)
    lr = real("lr", lr, 0.0, lo_open=True)
    steps = integer("steps", steps, 1)
    seed = integer("seed", seed, 0)
    init_scale = real("init_scale", init_scale, 0.0, lo_open=True)
    bs = n if batch_size is None else integer("batch_size", batch_size, 1, n)
    if soft_labels is not None and bs < n:
        raise ValueError("soft-label training is full batch: leave batch_size=None")
    if tol is not None:
        tol = real("tol", tol, 0.0, lo_open=True)
        if bs < n:
            raise ValueError(f"tol={tol:g} needs full-batch training (batch_size=None), got batch_size={bs}")
    dev = resolve_device(device)

    gen = torch.Generator().manual_seed(seed)
    W = _init(W0, (k, d), init_scale, gen, "W0")
    H = _init(H0, (d, n), init_scale, gen, "H0")
    fam = None
    if dev.type == "cpu":
        fam = soft_family(Pt.numpy(), wt.numpy()) if soft_labels is not None else family(loss, y, k)
    history: dict[str, list] = {"step": [], "objective": []}
    run = dict(lam=lam, lr=lr, steps=steps, bs=bs, n=n, tol=tol, seed=seed, history=history,
               schedule=set(log_schedule(steps, record, name="record").tolist()), metric_fn=metric_fn)
    if fam is not None:
        return _train_numpy(W.numpy(), H.numpy(), y, fam, progress=progress, **run)
    yt = torch.as_tensor(y, dtype=torch.long, device=dev)
    if soft_labels is not None:
        Pt, wt = Pt.to(dev), wt.to(dev)
    return _train_autograd(W.to(dev), H.to(dev), y, yt, loss_fn, progress=progress, **run)


def _check_objective(value: float, first: float, step: int, lr: float) -> None:
    if not math.isfinite(value) or value > 1e6 * max(first, 1.0):
        raise TrainingDiverged(f"UFM training diverged at step {step} (objective={value:.3g}) with lr={lr:g}: "
                               f"lower the learning rate (try lr={lr / 10:g})")


def _train_numpy(*args, **kwargs) -> UFMResult:
    """Full-batch / mini-batch GD with the analytic CE-family gradient (numpy, CPU)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return _numpy_loop(*args, **kwargs)


def _numpy_loop(W, H, y, fam: Family, *, lam, lr, steps, bs, n, tol, seed, history, schedule, metric_fn,
                progress) -> UFMResult:
    W, H = W.copy(), H.copy()
    T, C, iota = fam.T, fam.C, fam.iota
    w_full = fam.omega / n if fam.mean else fam.omega

    Tw = T * w_full

    def objective_full() -> float:
        value, _ = loss_and_grad(W, H, T, w_full, C, iota, Tw)
        return value + lam / 2 * (np.vdot(W, W) + np.vdot(H, H))

    def snapshot(step: int) -> None:
        history["step"].append(step)
        history["objective"].append(float(objective_full()))
        for key, val in metric_fn(W.copy(), H.copy()).items():
            history.setdefault(key, []).append(val)

    first = objective_full()
    if not math.isfinite(first):
        raise ValueError("the initial objective is not finite: check W0/H0 and init_scale")
    snapshot(0)
    limit = 1e6 * max(first, 1.0)
    perm_gen = torch.Generator().manual_seed(seed + 1)
    order = None
    bar = progress_bar(steps, progress)
    done, interrupted, converged, gnorm, pending = 0, False, False, float("nan"), 0
    try:
        for step in range(1, steps + 1):
            if bs == n:
                value, G = loss_and_grad(W, H, T, w_full, C, iota, Tw)
                gW = G @ H.T
                gH = W.T @ G
                if lam:
                    gW += lam * W
                    gH += lam * H
                    value += lam / 2 * (np.vdot(W, W) + np.vdot(H, H))
            else:
                idx, order = batch_order(step, bs, n, order, perm_gen)
                idx = idx.numpy()
                Hb = H[:, idx]
                w_b = fam.omega[idx] / bs
                value, G = loss_and_grad(W, Hb, T[:, idx], w_b, None if C is None else C[:, idx], iota)
                gW = G @ Hb.T + lam * W
                gH = W.T @ G + lam * (n / bs) * Hb
                value += lam / 2 * np.vdot(W, W) + lam / 2 * (n / bs) * np.vdot(Hb, Hb)
            if not value <= limit:
                _check_objective(value, first, step, lr)
            if tol is not None:
                gnorm = math.sqrt(np.vdot(gW, gW) + np.vdot(gH, gH))
                if gnorm < tol:
                    converged = True
                    snapshot(done)
                    break
            gW *= lr
            W -= gW
            if bs == n:
                gH *= lr
                H -= gH
            else:
                H[:, idx] -= lr * gH
            done = step
            pending += 1
            if step in schedule:
                snapshot(step)
            if pending >= 1000 or step in schedule:
                bar.update(pending)
                pending = 0
    except KeyboardInterrupt:
        interrupted = True
        if done not in history["step"]:
            snapshot(done)
    finally:
        bar.update(pending)
        close_bar(bar, interrupted)
    return UFMResult(W, H, y, history, done, interrupted, converged, gnorm)


def _train_autograd(W, H, y, yt, loss_fn, *, lam, lr, steps, bs, n, tol, seed, history, schedule, metric_fn,
                    progress) -> UFMResult:
    """The same GD through torch autograd + SGD: any loss callable, any device."""
    W, H = W.requires_grad_(True), H.requires_grad_(True)
    opt = torch.optim.SGD([W, H], lr=lr)

    def objective_full() -> float:
        with torch.no_grad():
            return float(loss_fn((W @ H).T, yt) + lam / 2 * (W.square().sum() + H.square().sum()))

    def snapshot(step: int) -> None:
        history["step"].append(step)
        history["objective"].append(objective_full())
        for key, val in metric_fn(W.detach().cpu().numpy(), H.detach().cpu().numpy()).items():
            history.setdefault(key, []).append(val)

    first = objective_full()
    if not math.isfinite(first):
        raise ValueError("the initial objective is not finite: check W0/H0 and init_scale")
    snapshot(0)
    perm_gen = torch.Generator().manual_seed(seed + 1)
    order = None
    bar = progress_bar(steps, progress)
    done, interrupted, converged, gnorm = 0, False, False, float("nan")
    try:
        for step in range(1, steps + 1):
            if bs == n:
                obj = loss_fn((W @ H).T, yt) + lam / 2 * (W.square().sum() + H.square().sum())
            else:
                idx, order = batch_order(step, bs, n, order, perm_gen)
                idx = idx.to(W.device)
                Hb = H[:, idx]
                obj = (loss_fn((W @ Hb).T, yt[idx]) + lam / 2 * W.square().sum()
                       + lam / 2 * (n / bs) * Hb.square().sum())
            opt.zero_grad(set_to_none=True)
            obj.backward()
            _check_objective(float(obj.detach()), first, step, lr)
            if tol is not None:
                gnorm = float(torch.sqrt(W.grad.square().sum() + H.grad.square().sum()))
                if gnorm < tol:
                    converged = True
                    snapshot(done)
                    break
            opt.step()
            done = step
            if step in schedule:
                snapshot(step)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
        if done not in history["step"]:
            snapshot(done)
    finally:
        close_bar(bar, interrupted)
    return UFMResult(W.detach().cpu().numpy(), H.detach().cpu().numpy(), y, history, done, interrupted,
                     converged, gnorm)


def _soft_targets(P, weights) -> tuple[torch.Tensor, torch.Tensor]:
    P = np.asarray(P, dtype=float)
    if P.ndim != 2 or P.shape[0] < 2:
        raise ValueError(f"soft_labels must be a k×n matrix with k >= 2, got shape {P.shape}")
    if np.any(P < 0) or not np.allclose(P.sum(0), 1.0, atol=1e-8):
        raise ValueError("soft_labels columns must be probability distributions (non-negative, summing to 1)")
    n = P.shape[1]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {n} non-negative numbers with a positive sum")
    return torch.as_tensor(P), torch.as_tensor(w)


def _init(value, shape, scale, gen, name) -> torch.Tensor:
    if value is None:
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
    t = torch.as_tensor(np.asarray(value, dtype=float), dtype=torch.float64).clone()
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape}")
    return t


@dataclass
class SphereResult:
    """Unit-norm embeddings H (d×n, columns h_i), labels y, and a history of log-spaced epochs with
    "epoch", "loss" (full-batch loss), "d_OF", "d_ETF_centered", "nc1" and "step" (last accepted step)."""

    H: np.ndarray
    y: np.ndarray
    history: dict = field(default_factory=dict)
    epochs_done: int = 0
    interrupted: bool = False

    def final(self) -> dict:
        return {key: values[-1] for key, values in self.history.items()}


def project_sphere(H: torch.Tensor, nonneg: bool) -> torch.Tensor:
    """Rows onto the unit sphere (∩ the non-negative orthant if ``nonneg``: normalize(max(h, 0)), and
    the basis vector of the largest entry when a row has no positive entry)."""
    if nonneg:
        P = H.clamp(min=0)
        dead = P.sum(1) == 0
        if dead.any():
            fallback = torch.zeros_like(H[dead])
            fallback[torch.arange(int(dead.sum())), H[dead].argmax(1)] = 1.0
            P = P.clone()
            P[dead] = fallback
        H = P
    return H / H.norm(dim=1, keepdim=True).clamp(min=1e-300)


def train_sphere_ufm(y, *, d: int, loss, nonneg: bool = False, batches=None, epochs: int = 100,
                     step0: float = 1.0, seed: int = 0, record: int = 30, progress: bool = True,
                     H0=None) -> SphereResult:
    """UFM with unit-norm (``nonneg``: and non-negative) embeddings, minimized by projected gradient
    with backtracking (accept H⁺ = Π(H − s∇) when L(H⁺) ≤ L(H) + ⟨∇, H⁺−H⟩ + ‖H⁺−H‖²/(2s), else halve s).
    ``loss(features n_B×d, y_B)``; ``batches(epoch) → list of index arrays`` (default: full batch)."""
    y = np.asarray(y)
    sizes = sizes_of(y)
    k, n = sizes.size, y.size
    d = integer("d", d, 1)
    if nonneg and d < k:
        raise ValueError(f"d={d} is too small for non-negative embeddings of k={k} classes: need d >= k")
    epochs = integer("epochs", epochs, 1)
    step0 = real("step0", step0, 0.0, lo_open=True)
    gen = torch.Generator().manual_seed(integer("seed", seed, 0))
    if H0 is None:
        H = torch.randn(n, d, generator=gen, dtype=torch.float64)
    else:
        H = torch.as_tensor(np.asarray(H0, dtype=float).T, dtype=torch.float64).clone()
        if tuple(H.shape) != (n, d):
            raise ValueError(f"H0 has shape {tuple(H.shape[::-1])}, expected ({d}, {n})")
    H = project_sphere(H, nonneg)
    yt = torch.as_tensor(y, dtype=torch.long)
    schedule = batches if batches is not None else (lambda epoch: [np.arange(n)])
    marks = set(log_schedule(epochs, record, name="record").tolist())
    history: dict[str, list] = {}
    step = step0

    def snapshot(epoch: int) -> None:
        with torch.no_grad():
            full = float(loss(H, yt))
        Hn = H.numpy().T
        for key, val in (("epoch", epoch), ("loss", full), ("d_OF", of_distance(Hn, y)),
                         ("d_ETF_centered", centered_etf_distance(Hn, y)), ("nc1", nc1(Hn, y)), ("step", step)):
            history.setdefault(key, []).append(val)

    snapshot(0)
    bar = progress_bar(epochs, progress)
    done, interrupted = 0, False
    try:
        for epoch in range(1, epochs + 1):
            for idx in schedule(epoch):
                idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
                Hb = H[idx_t].clone().requires_grad_(True)
                f0 = loss(Hb, yt[idx_t])
                (g,) = torch.autograd.grad(f0, Hb)
                f0 = float(f0.detach())
                if not math.isfinite(f0):
                    raise TrainingDiverged(f"loss is {f0} at epoch {epoch}: check the temperature (too small?)")
                Hb = Hb.detach()
                s = min(2 * step, 1e6)
                with torch.no_grad():
                    while s > 1e-14:
                        cand = project_sphere(Hb - s * g, nonneg)
                        diff = cand - Hb
                        model = f0 + float((g * diff).sum()) + float(diff.square().sum()) / (2 * s)
                        if float(loss(cand, yt[idx_t])) <= model:
                            H[idx_t] = cand
                            break
                        s /= 2
                step = max(s, 1e-14)
            done = epoch
            if epoch in marks:
                snapshot(epoch)
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
        if done not in history["epoch"]:
            snapshot(done)
    finally:
        close_bar(bar, interrupted)
    return SphereResult(H.numpy().T.copy(), y, history, done, interrupted)
