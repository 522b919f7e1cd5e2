"""B independent UFM runs as one tensor program (torch, any device).

Each run b minimizes its own loss_b(W_b H_b) + λ_b/2 (‖W_b‖² + ‖H_b‖²) by full-batch GD with step lr_b;
W is stacked B×k×d and H B×d×n_max (shorter runs are padded with zero-weight, zero-initialized
columns, which stay zero), and one step is two batched matmuls plus the analytic CE-family gradient
of ``nclab.ufm_kernels``. Each run's numbers equal ``train_ufm`` with the same settings (up to rounding).
"""

from __future__ import annotations

import numpy as np
import torch

from nclab._checks import integer, real
from nclab.labels import labels_from_sizes, sizes_of
from nclab.ufm import TrainingDiverged, UFMResult, _init, _progress, _soft_targets, log_schedule, resolve_device
from nclab.ufm_kernels import batched_loss_and_grad, family, soft_family

_RUN_KEYS = {"y", "class_sizes", "soft_labels", "weights", "loss", "lam", "lr", "seed", "init_scale",
             "reference", "W0", "H0", "metrics"}


def train_ufm_batched(runs, *, d: int, loss="ce", lam: float = 0.0, lr: float = 0.5, steps: int = 1000,
                      seed: int = 0, init_scale: float = 0.1, record: int = 50, device: str = "auto",
                      progress: bool = True, tol: float | None = None, metrics=None) -> list[UFMResult]:
    """Train B runs at once; ``runs`` is a list of dicts, each giving its labels (``y``, ``class_sizes`` or
    ``soft_labels`` + ``weights``) and optionally its own loss (a CE-family loss), lam, lr, seed, init_scale,
    reference, W0, H0, metrics — missing keys take the keyword values. All runs share k (classes) and d.
    Returns one ``UFMResult`` per run, as ``train_ufm`` would (full batch; ``tol`` stops each run separately)."""
    from nclab.metrics import summary

    if isinstance(runs, dict) or not hasattr(runs, "__len__") or len(runs) == 0:
        raise ValueError("runs must be a non-empty list of dicts (one per run)")
    d = integer("d", d, 1)
    steps = integer("steps", steps, 1)
    if tol is not None:
        tol = real("tol", tol, 0.0, lo_open=True)
    dev = resolve_device(device)
    specs = []
    for i, cfg in enumerate(runs):
        if not isinstance(cfg, dict) or set(cfg) - _RUN_KEYS:
            bad = sorted(set(cfg) - _RUN_KEYS) if isinstance(cfg, dict) else cfg
            raise ValueError(f"runs[{i}]: unknown keys {bad}; allowed {sorted(_RUN_KEYS)}")
        c = {"loss": loss, "lam": lam, "lr": lr, "seed": seed, "init_scale": init_scale, "metrics": metrics,
             "reference": None, "W0": None, "H0": None, **cfg}
        if c.get("soft_labels") is not None:
            if c.get("y") is not None or c.get("class_sizes") is not None:
                raise ValueError(f"runs[{i}]: give either soft_labels or hard labels, not both")
            Pt, wt = _soft_targets(c["soft_labels"], c.get("weights"))
            k, n = Pt.shape
            y = np.arange(n)
            fam = soft_family(Pt.numpy(), wt.numpy())
            mfn = c["metrics"] or (lambda W_, H_: {})
        else:
            if (c.get("y") is None) == (c.get("class_sizes") is None):
                raise ValueError(f"runs[{i}]: give exactly one of y (labels) or class_sizes")
            y = labels_from_sizes(c["class_sizes"]) if c.get("y") is None else np.asarray(c["y"])
            k, n = sizes_of(y).size, y.size
            integer("d", d, k - 1)
            fam = family(c["loss"], y, k)
            if fam is None:
                raise ValueError(f"runs[{i}]: loss={c['loss']!r} is not a CE-family loss; batched mode takes "
                                 "'ce', losses.cross_entropy or a LogitAdjustedCE (use train_ufm for others)")
            mfn = c["metrics"] or (lambda W_, H_, y=y, ref=c["reference"]: summary(W_, H_, y, ref))
        gen = torch.Generator().manual_seed(integer("seed", c["seed"], 0))
        scale = real("init_scale", c["init_scale"], 0.0, lo_open=True)
        W0 = _init(c["W0"], (k, d), scale, gen, "W0")
        H0 = _init(c["H0"], (d, n), scale, gen, "H0")
        specs.append(dict(k=k, n=n, y=y, fam=fam, metric=mfn, W=W0, H=H0, lam=real("lam", c["lam"], 0.0),
                          lr=real("lr", c["lr"], 0.0, lo_open=True)))
    ks = {s["k"] for s in specs}
    if len(ks) > 1:
        raise ValueError(f"runs have different class counts k={sorted(ks)}: batched runs must share k")
    return _run(specs, d, steps, record, dev, progress, tol)


def _stack(specs, d, dev):
    B, k, nmax = len(specs), specs[0]["k"], max(s["n"] for s in specs)
    z = dict(dtype=torch.float64)
    W, H = torch.zeros(B, k, d, **z), torch.zeros(B, d, nmax, **z)
    T, w = torch.zeros(B, k, nmax, **z), torch.zeros(B, nmax, **z)
    anyC = any(s["fam"].C is not None for s in specs)
    anyI = any(s["fam"].iota is not None for s in specs)
    C = torch.ones(B, k, nmax, **z) if anyC else None
    iota = torch.zeros(B, k, **z) if anyI else None
    for b, s in enumerate(specs):
        f, n = s["fam"], s["n"]
        W[b], H[b, :, :n], T[b, :, :n] = s["W"], s["H"], torch.as_tensor(f.T)
        w[b, :n] = torch.as_tensor(f.omega / n if f.mean else f.omega)
        if f.C is not None:
            C[b, :, :n] = torch.as_tensor(f.C)
        if f.iota is not None:
            iota[b] = torch.as_tensor(f.iota)
    lam = torch.tensor([s["lam"] for s in specs], **z)[:, None, None]
    lr = torch.tensor([s["lr"] for s in specs], **z)[:, None, None]
    return [None if t is None else t.to(dev) for t in (W, H, T, w, C, iota, lam, lr)]


def _run(specs, d, steps, record, dev, progress, tol) -> list[UFMResult]:
    W, H, T, w, C, iota, lam, lr = _stack(specs, d, dev)
    B = len(specs)
    lam_flat = lam.reshape(B)
    ridge = bool((lam_flat > 0).any())

    def objective(W, H):
        value, G = batched_loss_and_grad(W, H, T, w, C, iota)
        if ridge:
            value = value + lam_flat / 2 * (W.square().sum((1, 2)) + H.square().sum((1, 2)))
        return value, G

    histories = [{"step": [], "objective": []} for _ in specs]
    active = torch.ones(B, dtype=torch.bool)
    done = torch.zeros(B, dtype=torch.long)
    converged, gnorms = [False] * B, [float("nan")] * B

    def snapshot(step: int, which) -> None:
        values = objective(W, H)[0].cpu().numpy()
        Wn, Hn = W.cpu().numpy(), H.cpu().numpy()
        for b in which:
            h = histories[b]
            h["step"].append(step)
            h["objective"].append(float(values[b]))
            for key, val in specs[b]["metric"](Wn[b].copy(), Hn[b, :, :specs[b]["n"]].copy()).items():
                h.setdefault(key, []).append(val)

    first = objective(W, H)[0]
    if not bool(torch.isfinite(first).all()):
        raise ValueError("the initial objective is not finite: check W0/H0 and init_scale")
    limit = 1e6 * torch.clamp(first, min=1.0)
    snapshot(0, range(B))
    schedule = set(log_schedule(steps, record, name="record").tolist())
    bar = _progress(steps, progress)
    interrupted, pending, live = False, 0, torch.ones(B, 1, 1, dtype=torch.float64, device=dev)
    try:
        for step in range(1, steps + 1):
            value, G = objective(W, H)
            gW = torch.bmm(G, H.transpose(1, 2))
            gH = torch.bmm(W.transpose(1, 2), G)
            if ridge:
                gW += lam * W
                gH += lam * H
            bad = ~torch.isfinite(value) | (value > limit)
            if bool(bad.any()):
                b = int(torch.nonzero(bad)[0])
                r = specs[b]["lr"]
                raise TrainingDiverged(f"UFM run {b} diverged at step {step} (objective={float(value[b]):.3g}) "
                                       f"with lr={r:g}: lower the learning rate (try lr={r / 10:g})")
            if tol is not None:
                gn = torch.sqrt(gW.square().sum((1, 2)) + gH.square().sum((1, 2))).cpu()
                newly = torch.nonzero(active & (gn < tol)).flatten().tolist()
                for b in newly:
                    converged[b], gnorms[b] = True, float(gn[b])
                    active[b] = False
                    live[b] = 0.0
                if newly:
                    snapshot(step - 1, newly)
                for b in torch.nonzero(active).flatten().tolist():
                    gnorms[b] = float(gn[b])
                if not bool(active.any()):
                    break
            W = W - (lr * live) * gW
            H = H - (lr * live) * gH
            done += active
            pending += 1
            if step in schedule:
                snapshot(step, torch.nonzero(active).flatten().tolist())
            if pending >= 1000 or step in schedule:
                bar.update(pending)
                pending = 0
    except KeyboardInterrupt:
        interrupted = True
        late = [b for b in range(B) if active[b] and int(done[b]) not in histories[b]["step"]]
        if late:
            snapshot(int(done.max()), late)
    finally:
        bar.update(pending)
        bar.close()
    Wn, Hn = W.cpu().numpy(), H.cpu().numpy()
    return [UFMResult(Wn[b].copy(), Hn[b, :, :s["n"]].copy(), s["y"], histories[b], int(done[b]), interrupted,
                      converged[b], gnorms[b]) for b, s in enumerate(specs)]

