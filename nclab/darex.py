"""Delta-parameter pruning (Deng et al., ICLR 2025): DARE, DAREx-q, importance pruning, AdamR, sparse storage.

A fine-tuned model is stored as θ_pre + Δ. DARE(Δ; p) = (m ⊙ Δ)/(1−p) with m_ij ~ Bernoulli(1−p);
DAREx-q uses 1/q instead. For one neuron, δh_i = Σ_j (m_ij/q − 1) Δ_ij x_j has
E = ((1−p)/q − 1) Σ_j Δ_ij x_j and Var = p(1−p)/q² Σ_j Δ_ij² x_j².
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from nclab._checks import array, integer, real
from nclab._threads import configure_threads

__all__ = [
    "extract_delta", "apply_delta", "dare", "magnitude_prune", "activation_prune", "output_change_stats",
    "output_change_mc", "q_star", "select_q", "output_change", "layer_inputs", "per_layer_q", "q_e",
    "per_layer_q_e", "recommend", "AdamR", "to_sparse", "from_sparse", "storage_bytes", "local_encoder"
]

configure_threads()  # once per process: torch threads = the CPUs available (nclab._threads)

StateDict = dict[str, torch.Tensor]


def _state(model_or_state) -> StateDict:
    if isinstance(model_or_state, nn.Module):
        return {k: v.detach() for k, v in model_or_state.state_dict().items()}
    if isinstance(model_or_state, dict):
        return model_or_state
    raise ValueError(f"expected a torch.nn.Module or a state dict, got {type(model_or_state).__name__}")


def extract_delta(pre, ft, skip: Callable[[str], bool] | None = None) -> StateDict:
    """Δ = θ_ft − θ_pre for every floating tensor (names for which ``skip(name)`` is true are left out).
    Raises ValueError naming the first tensor whose name or shape differs."""
    a, b = _state(pre), _state(ft)
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        raise ValueError(f"the models have different parameters: {diff[:5]} (architectures differ)")
    out = {}
    for name, t in a.items():
        if t.shape != b[name].shape:
            raise ValueError(f"parameter {name!r} has shape {tuple(t.shape)} in the pre-trained model but "
                             f"{tuple(b[name].shape)} in the fine-tuned one")
        if t.is_floating_point() and not (skip and skip(name)):
            out[name] = b[name] - t
    return out


def apply_delta(pre, delta: StateDict) -> StateDict:
    """θ_pre + Δ as a new state dict (tensors not in Δ are copied from θ_pre)."""
    base = _state(pre)
    return {k: (v + delta[k].to(v.dtype) if k in delta else v.clone()) for k, v in base.items()}


def _p(p: float) -> float:
    return real("p", p, 0.0, 1.0, hi_open=True)


def _q(q, p: float, name: str = "q") -> float:
    """The rescaling q ∈ (0, 1] (survivors are multiplied by 1/q ≥ 1); None → DARE's 1 − p."""
    return 1 - p if q is None else real(name, q, 0.0, 1.0, lo_open=True)


def _delta_x(Delta, x, x_ndim: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """Δ (out×in) and input(s) x with matching widths, finite."""
    D, x = array("Delta", Delta, ndim=2), array("x", x, ndim=x_ndim)
    if x.shape[-1] != D.shape[1]:
        raise ValueError(f"x has width {x.shape[-1]} but Delta has {D.shape[1]} input columns (Delta is out×in)")
    return D, x


def dare(delta: StateDict, p: float, q: float | dict | None = None, seed: int = 0) -> StateDict:
    """Drop each entry with probability p and rescale survivors by 1/q (q = 1−p: DARE; a float or a
    per-tensor dict: DAREx-q). One vectorized pass per tensor with a seeded generator."""
    p = _p(p)
    gen = torch.Generator().manual_seed(integer("seed", seed, 0))
    out = {}
    for name, d in delta.items():
        qn = _q(q[name] if isinstance(q, dict) else q, p, f"q[{name}]" if isinstance(q, dict) else "q")
        r = torch.rand(d.shape, generator=gen, dtype=d.dtype)  # the only allocation: reused in place
        out[name] = r.ge_(p).mul_(d).mul_(1.0 / qn)
    return out


def _topk_mask(score: torch.Tensor, keep_frac: float) -> torch.Tensor:
    n_keep = int(round(keep_frac * score.numel()))
    mask = torch.zeros(score.numel(), dtype=torch.bool)
    if n_keep > 0:
        mask[torch.topk(score.flatten(), n_keep).indices] = True
    return mask.view(score.shape)


def magnitude_prune(delta: StateDict, p: float, scale: float = 1.0) -> StateDict:
    """Keep exactly round((1−p)·size) entries of largest |Δ| in each tensor, times ``scale``."""
    p, scale = _p(p), real("scale", scale, 0.0, lo_open=True)
    return {n: d * _topk_mask(d.abs(), 1 - p).to(d.dtype) * scale for n, d in delta.items()}


def activation_prune(delta: StateDict, p: float, input_norms: dict[str, torch.Tensor], scale: float = 1.0) -> StateDict:
    """Activation-aware (WANDA-style): score |Δ_ij|·‖X_j‖ with ‖X_j‖ the norm of input feature j over a
    calibration batch; keep exactly round((1−p)·size) per tensor. Tensors without norms fall back to magnitude."""
    p, scale = _p(p), real("scale", scale, 0.0, lo_open=True)
    out = {}
    for n, d in delta.items():
        if n in input_norms and d.ndim == 2:
            xn = input_norms[n].to(d.dtype)
            if xn.shape != (d.shape[1],):
                raise ValueError(f"input_norms[{n!r}] has shape {tuple(xn.shape)}, expected ({d.shape[1]},)")
            score = d.abs() * xn[None, :]
        else:
            score = d.abs()
        out[n] = d * _topk_mask(score, 1 - p).to(d.dtype) * scale
    return out


# ---------------------------------------------------------------- theory
def output_change_stats(Delta, x, p: float, q: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron mean and variance of δh = ((m/q − 1) ⊙ Δ) x for Δ (out×in), x (in,)."""
    p = _p(p)
    q = _q(q, p)
    D, x = _delta_x(Delta, x)
    return ((1 - p) / q - 1) * (D @ x), p * (1 - p) / q**2 * ((D**2) @ (x**2))


def output_change_mc(Delta, x, p: float, q: float | None = None, draws: int = 2000, seed: int = 0):
    """Monte-Carlo mean and variance of the same δh over ``draws`` masks."""
    p = _p(p)
    q = _q(q, p)
    D, x = _delta_x(Delta, x)
    rng = np.random.default_rng(integer("seed", seed, 0))
    draws = integer("draws", draws, 2)
    dh = np.empty((draws, D.shape[0]))
    for s in range(0, draws, 1024):  # masks in blocks of draws: the same stream as one call, ≈ 2.5 MB at a time
        masks = rng.random((min(1024, draws - s),) + D.shape) >= p
        dh[s:s + masks.shape[0]] = ((masks / q - 1) * D) @ x
    return dh.mean(0), dh.var(0, ddof=1)


def q_star(Delta, x, p: float) -> float:
    """argmin_q Σ_i E[δh_i²] = (1−p) + p·B/A with A = Σ_i (Σ_j Δ_ij x_j)², B = Σ_ij Δ_ij² x_j²
    (x: one input (in,) or a batch (b×in), summed over the batch)."""
    p = _p(p)
    D, X = _delta_x(Delta, x, None)
    X = np.atleast_2d(X)
    A, B = float(np.sum((X @ D.T) ** 2)), float(np.sum((X**2) @ (D.T**2)))
    if A == 0:
        return float("inf")
    return (1 - p) + p * B / A


# ---------------------------------------------------------------- q selection
def select_q(score: Callable[[float], float], grid, maximize: bool = True) -> tuple[float, dict]:
    """Best q on a grid for a score function (labeled: validation accuracy, maximize; unlabeled: output
    change, minimize). Returns (q, {q: score})."""
    grid = [real("q", q, 0.0, lo_open=True) for q in grid]
    if not grid:
        raise ValueError("the q grid is empty")
    scores = {q: float(score(q)) for q in grid}
    best = (max if maximize else min)(scores, key=scores.get)
    return best, scores


def output_change(model: nn.Module, state: StateDict, reference: torch.Tensor, batch: torch.Tensor,
                  metric: str = "kl") -> float:
    """Change of the last layer's output on one unlabeled batch (the unlabeled q objective): "kl" =
    mean KL(softmax(reference) ‖ softmax(output)) for classifier logits, "abs" = mean |output − reference|
    (the paper's choice for encoder hidden states)."""
    with torch.no_grad():
        out = torch.func.functional_call(model, state, (batch,))
    if metric == "abs":
        return float((out - reference).abs().mean())
    if metric == "kl":
        return float(nn.functional.kl_div(torch.log_softmax(out, 1), torch.log_softmax(reference, 1),
                                          log_target=True, reduction="batchmean"))
    raise ValueError(f"metric={metric!r} is not allowed: use 'kl' or 'abs'")


def layer_inputs(model: nn.Module, state: StateDict, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs seen by every nn.Linear of ``model`` (with parameters ``state``) on ``batch``, keyed by the
    weight's name — one forward pass, reused for per-layer q and activation-aware scores."""
    captured, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, key=f"{name}.weight": captured.__setitem__(key, inp[0].detach())))
    try:
        with torch.no_grad():
            torch.func.functional_call(model, state, (batch,))
    finally:
        for h in hooks:
            h.remove()
    return captured


def per_layer_q(delta: StateDict, inputs: dict[str, torch.Tensor], p: float) -> dict[str, float]:
    """Our per-layer q (not the paper's q_e, see ``per_layer_q_e``): the MSE-minimizing ``q_star`` of each
    2-D delta with its captured inputs (others: 1−p)."""
    return {n: (q_star(d.numpy(), inputs[n].numpy(), p) if n in inputs and d.ndim == 2 else 1 - _p(p))
            for n, d in delta.items()}


def q_e(delta: torch.Tensor, x, p: float, eta: float = 0.45, gamma: float = 0.95, step: float = 0.001) -> float:
    """The paper's analytical per-layer q ("q_e", official DAREx code): for each output neuron i with
    c_j = Δ_ij x_j (x: the calibration batch's mean input), the q ∈ [1−p, 0.999] (grid ``step``) minimizing
    | η(1 − (1−p)/q) Σ_j c_j + η² φ(p) Σ_j c_j² / (4q²) + log(2/(1−γ)) |, φ(p) = (1−2p)/log((1−p)/p);
    the layer's q is the mean over neurons."""
    p = _p(p)
    if not 0.5 < p < 1:
        raise ValueError(f"p={p} is out of range for q_e: allowed (0.5, 1) (φ(p) needs p ≠ 1/2)")
    eta, gamma = real("eta", eta, 0.0, lo_open=True), real("gamma", gamma, 0.0, 1.0, lo_open=True, hi_open=True)
    step = real("step", step, 1e-6, 0.1)  # a grid over [1−p, 0.999]: at least a few points, at most 10⁶
    D = np.asarray(delta, dtype=float)
    xm = np.atleast_2d(np.asarray(x, dtype=float)).mean(0)
    if D.ndim != 2 or xm.shape != (D.shape[1],):
        raise ValueError(f"delta (out×in) and x (…×in) do not match: {D.shape} vs {np.shape(x)}")
    c = D * xm[None, :]
    s1, s2 = c.sum(1), (c**2).sum(1)
    phi = (1 - 2 * p) / math.log((1 - p) / p)
    grid = np.arange(1 - p, 0.999 + step / 2, step)
    g = grid[:, None]
    const = math.log(2 / (1 - gamma))
    obj = np.abs(eta * (1 - (1 - p) / g) * s1[None, :] + eta**2 * phi * s2[None, :] / (4 * g**2) + const)
    return float(grid[obj.argmin(0)].mean())


def per_layer_q_e(delta: StateDict, inputs: dict[str, torch.Tensor], p: float, eta: float = 0.45,
                  gamma: float = 0.95) -> dict[str, float]:
    """The paper's per-layer q_e (``q_e``) for every 2-D delta with captured inputs (others: 1−p)."""
    return {n: (q_e(d.numpy(), inputs[n].numpy(), p, eta, gamma) if n in inputs and d.ndim == 2 else 1 - _p(p))
            for n, d in delta.items()}


def recommend(p: float, delta_scale: str, labels: bool, can_refinetune: bool) -> str:
    """Our reading of the paper's decision flowchart (reconstructed): which delta-pruning method to use."""
    p = _p(p)
    if delta_scale not in ("small", "large"):
        raise ValueError(f"delta_scale={delta_scale!r} is not allowed: use 'small' or 'large'")
    if delta_scale == "large":
        return ("Large deltas: random dropping has too much variance — use importance-based pruning "
                "(activation-aware if you have a calibration batch, else magnitude)"
                + ("; or re-fine-tune with AdamR (DAREx-L2) to shrink the deltas first." if can_refinetune else "."))
    if p <= 0.9:
        return "Moderate pruning rate with small deltas: plain DARE (q = 1 − p) is fine."
    advice = ("DAREx-q with q tuned on labeled validation data" if labels
              else "DAREx-q with the unlabeled q (minimize the last layer's output change on one batch)")
    return (f"Extreme pruning rate p = {p:g}: DARE's rescaling 1/(1−p) explodes the variance — use {advice}"
            + ("; AdamR fine-tuning (DAREx-L2) makes DARE safer still." if can_refinetune else "."))


# ---------------------------------------------------------------- AdamR
class AdamR(torch.optim.Adam):
    """Adam with decoupled regularization of Δ = θ − θ_pre: before each Adam step
    θ ← θ − lr·λ·s·(θ − θ_pre) ("l2") or θ ← θ − lr·λ·s·sign(θ − θ_pre) ("l1"), with s = 1 (``stable=False``)
    or, as in the official DAREx code, s = 1/√(mean over all parameters of Adam's bias-corrected v̂)
    (``stable=True``; no decay before the first step, when v̂ does not exist yet). λ = 0 is exactly Adam."""

    def __init__(self, params, pre_params, lr: float = 1e-3, reg: float = 0.0, mode: str = "l2",
                 stable: bool = False, **kwargs):
        params = list(params)
        pre = [t.detach().clone() for t in pre_params]
        if len(pre) != len(params) or any(a.shape != b.shape for a, b in zip(params, pre, strict=True)):
            raise ValueError("pre_params must match params one to one (same count and shapes)")
        if mode not in ("l2", "l1"):
            raise ValueError(f"mode={mode!r} is not allowed: use 'l2' or 'l1'")
        super().__init__(params, lr=lr, **kwargs)
        self.reg = real("reg", reg, 0.0)
        self.mode = mode
        self.stable = bool(stable)
        self._pre = dict(zip(params, pre, strict=True))

    def _scale(self) -> float:
        """1/√mean(v̂) over all parameters with Adam state (0 before the first step)."""
        total, count = 0.0, 0
        for group in self.param_groups:
            beta2 = group["betas"][1]
            for prm in group["params"]:
                st = self.state.get(prm, {})
                if "exp_avg_sq" in st:
                    step = float(st["step"])
                    total += float(st["exp_avg_sq"].sum()) / (1 - beta2**step)
                    count += st["exp_avg_sq"].numel()
        if count == 0 or total == 0:
            return 0.0
        return 1.0 / math.sqrt(total / count)

    @torch.no_grad()
    def step(self, closure=None):
        if self.reg > 0:
            scale = self._scale() if self.stable else 1.0
            for group in self.param_groups:
                for prm in group["params"]:
                    d = prm - self._pre[prm]
                    prm.sub_(group["lr"] * self.reg * scale * (d if self.mode == "l2" else d.sign()))
        return super().step(closure)


# ---------------------------------------------------------------- storage
def to_sparse(delta: StateDict, dtype: torch.dtype | None = None) -> dict:
    """Compressed pruned delta: per tensor the flat int32 indices of non-zeros, their values (in ``dtype``,
    default the tensor's own: then the round trip is exact) and the shape."""
    return {n: {"index": torch.nonzero(d.flatten()).flatten().to(torch.int32),
                "value": d.flatten()[d.flatten() != 0].to(dtype or d.dtype), "shape": tuple(d.shape),
                "dtype": d.dtype} for n, d in delta.items()}


def from_sparse(sparse: dict) -> StateDict:
    """Exact inverse of ``to_sparse`` (for values stored in the original dtype)."""
    out = {}
    for n, s in sparse.items():
        flat = torch.zeros(math.prod(s["shape"]), dtype=s["dtype"])
        flat[s["index"].long()] = s["value"].to(s["dtype"])
        out[n] = flat.view(s["shape"])
    return out


def storage_bytes(obj) -> int:
    """Bytes of a state dict or of a ``to_sparse`` result (tensor payloads only)."""
    total = 0
    for v in obj.values():
        if isinstance(v, dict):
            total += v["index"].numel() * v["index"].element_size() + v["value"].numel() * v["value"].element_size()
        else:
            total += v.numel() * v.element_size()
    return total


# ---------------------------------------------------------------- optional real encoder
def local_encoder(path: str | None = None):
    """A locally available Hugging Face encoder (``path`` or $NCLAB_ENCODER_PATH), loaded with
    ``local_files_only=True``; returns (model, None) or (None, reason) — never downloads."""
    path = path or os.environ.get("NCLAB_ENCODER_PATH")
    if not path:
        return None, "no local encoder configured: set NCLAB_ENCODER_PATH to a folder with a saved model"
    try:
        from transformers import AutoModel
    except ImportError:
        return None, "the optional package 'transformers' is not installed"
    if not os.path.isdir(path):
        return None, f"NCLAB_ENCODER_PATH={path!r} is not a folder"
    if not os.path.isfile(os.path.join(path, "config.json")):
        return None, f"the folder {path!r} holds no saved model (no config.json)"
    try:
        return AutoModel.from_pretrained(path, local_files_only=True), None
    except (OSError, ValueError, KeyError) as err:
        return None, f"the model in {path!r} could not be loaded: {str(err).splitlines()[0]}"
