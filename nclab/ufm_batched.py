"""B independent UFM runs as one array program (numpy on the CPU, torch on other devices).

Each run b minimizes its own loss_b(W_b H_b) + λ_b/2 (‖W_b‖² + ‖H_b‖²) by full-batch GD with step lr_b;
W is stacked B×k×d and H B×d×n_max (shorter runs are padded with zero-weight, zero-initialized
columns, which stay zero), and one step is two batched matmuls plus the analytic CE-family gradient
of ``nclab.ufm_kernels``; default metrics come from one ``metrics.SummaryBatch``. Each run's numbers equal
``train_ufm`` with the same settings (up to rounding).
"""

from __future__ import annotations

import numpy as np
import torch

from nclab._checks import integer, real
from nclab._progress import close as close_bar
from nclab._progress import progress as progress_bar
from nclab.labels import labels_from_sizes, sizes_of
from nclab.metrics import SummaryBatch
from nclab.ufm import TrainingDiverged, UFMResult, _init, _soft_targets, log_schedule, resolve_device
from nclab.ufm_kernels import ChunkedBatch, batched_loss_and_grad, family, soft_family

_RUN_KEYS = {"y", "class_sizes", "soft_labels", "weights", "loss", "lam", "lr", "seed", "init_scale",
             "reference", "W0", "H0", "metrics"}


def train_ufm_batched(runs, *, d: int, loss="ce", lam: float = 0.0, lr: float = 0.5, steps: int = 1000,
                      seed: int = 0, init_scale: float = 0.1, record: int = 50, device: str = "auto",
                      progress: bool = True, tol: float | None = None, metrics=None) -> list[UFMResult]:
    """Train B runs at once; ``runs`` is a list of dicts, each giving its labels (``y``, ``class_sizes`` or
    ``soft_labels`` + ``weights``) and optionally its own loss (a CE-family loss), lam, lr, seed, init_scale,
    reference, W0, H0, metrics — missing keys take the keyword values. All runs share k (classes) and d.
    Returns one ``UFMResult`` per run, as ``train_ufm`` would (full batch; ``tol`` stops each run separately)."""
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
            mfn = c["metrics"] or None
        gen = torch.Generator().manual_seed(integer("seed", c["seed"], 0))
        scale = real("init_scale", c["init_scale"], 0.0, lo_open=True)
        W0 = _init(c["W0"], (k, d), scale, gen, "W0")
        H0 = _init(c["H0"], (d, n), scale, gen, "H0")
        specs.append(dict(k=k, n=n, y=y, fam=fam, metric=mfn, ref=c["reference"], W=W0, H=H0,
                          lam=real("lam", c["lam"], 0.0),
                          lr=real("lr", c["lr"], 0.0, lo_open=True)))
    ks = {s["k"] for s in specs}
    if len(ks) > 1:
        raise ValueError(f"runs have different class counts k={sorted(ks)}: batched runs must share k")
    # runs with the default metric share one batched summary (reference Grams computed once per run)
    rows = np.cumsum([s["metric"] is None for s in specs]) - 1
    rows = np.where([s["metric"] is None for s in specs], rows, -1)
    chosen = [s for s in specs if s["metric"] is None]
    sb = SummaryBatch([s["y"] for s in chosen], specs[0]["k"], [s["ref"] for s in chosen]) if chosen else None
    return _run(specs, d, steps, record, dev, progress, tol, (rows, sb))


def _stack(specs, d):
    B, k, nmax = len(specs), specs[0]["k"], max(s["n"] for s in specs)
    W, H = np.zeros((B, k, d)), np.zeros((B, d, nmax))
    T, w = np.zeros((B, k, nmax)), np.zeros((B, nmax))
    C = np.ones((B, k, nmax)) if any(s["fam"].C is not None for s in specs) else None
    iota = np.zeros((B, k)) if any(s["fam"].iota is not None for s in specs) else None
    for b, s in enumerate(specs):
        f, n = s["fam"], s["n"]
        W[b], H[b, :, :n], T[b, :, :n] = s["W"].numpy(), s["H"].numpy(), f.T
        w[b, :n] = f.omega / n if f.mean else f.omega
        if f.C is not None:
            C[b, :, :n] = f.C
        if f.iota is not None:
            iota[b] = f.iota
    lam = np.array([s["lam"] for s in specs])[:, None, None]
    lr = np.array([s["lr"] for s in specs])[:, None, None]
    return W, H, T, w, C, iota, lam, lr


class _TorchBatch:
    """``NumpyBatch``'s interface on a torch device (GPU): same math through ``batched_loss_and_grad``."""

    def __init__(self, dev, *arrays):
        W, H, T, w, C, iota, lam, rate = (None if a is None else torch.as_tensor(a).to(dev) for a in arrays)
        self.W, self.H, self.T, self.w, self.C, self.iota, self.lam, self.rate = W, H, T, w, C, iota, lam, rate
        self.lam_flat = lam.reshape(-1)
        self.ridge = bool((self.lam_flat > 0).any())

    def _value(self):
        value, G = batched_loss_and_grad(self.W, self.H, self.T, self.w, self.C, self.iota)
        if self.ridge:
            value = value + self.lam_flat / 2 * (self.W.square().sum((1, 2)) + self.H.square().sum((1, 2)))
        return value, G

    def objective(self):
        return self._value()[0].cpu().numpy()

    def grads(self):
        value, G = self._value()
        self.gW = torch.bmm(G, self.H.transpose(1, 2))
        self.gH = torch.bmm(self.W.transpose(1, 2), G)
        if self.ridge:
            self.gW += self.lam * self.W
            self.gH += self.lam * self.H
        return value.cpu().numpy()

    def grad_norms(self):
        return torch.sqrt(self.gW.square().sum((1, 2)) + self.gH.square().sum((1, 2))).cpu().numpy()

    def freeze(self, runs):
        self.rate[list(runs)] = 0.0

    def step(self):
        self.W = self.W - self.rate * self.gW
        self.H = self.H - self.rate * self.gH

    def arrays(self):
        return self.W.cpu().numpy(), self.H.cpu().numpy()


def _run(specs, d, steps, record, dev, progress, tol, summaries) -> list[UFMResult]:
    arrays = _stack(specs, d)
    be = ChunkedBatch(*arrays) if dev.type == "cpu" else _TorchBatch(dev, *arrays)
    B = len(specs)
    histories = [{"step": [], "objective": []} for _ in specs]
    active = np.ones(B, dtype=bool)
    done = np.zeros(B, dtype=np.int64)
    converged, gnorms = [False] * B, [float("nan")] * B
    batch_rows, sb = summaries

    outer = np.geterr()

    def snapshot(step: int, which) -> None:
        with np.errstate(**outer):  # metrics (the user's too) see the caller's floating-point settings
            _snapshot(step, which)

    def _snapshot(step: int, which) -> None:
        values = be.objective()
        Wn, Hn = be.arrays()
        which = list(which)
        rows = [b for b in which if batch_rows[b] >= 0]
        batched = dict(zip(rows, sb(Wn[rows], Hn[rows, :, :sb.Y.shape[2]], batch_rows[rows]), strict=True)) \
            if rows else {}
        for b in which:
            h = histories[b]
            h["step"].append(step)
            h["objective"].append(float(values[b]))
            out = batched[b] if b in batched else specs[b]["metric"](Wn[b].copy(), Hn[b, :, :specs[b]["n"]].copy())
            for key, val in out.items():
                h.setdefault(key, []).append(val)

    first = be.objective()
    if not np.isfinite(first).all():
        raise ValueError("the initial objective is not finite: check W0/H0 and init_scale")
    limit = 1e6 * np.maximum(first, 1.0)
    snapshot(0, range(B))
    schedule = set(log_schedule(steps, record, name="record").tolist())
    bar = progress_bar(steps, progress)
    interrupted, pending = False, 0
    try:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the loss checks overflow itself
            for step in range(1, steps + 1):
                value = be.grads()
                if not (np.abs(value) <= limit).all():
                    bad = ~np.isfinite(value) | (value > limit)
                    if bad.any():
                        b = int(np.flatnonzero(bad)[0])
                        r = specs[b]["lr"]
                        raise TrainingDiverged(f"UFM run {b} diverged at step {step} (objective={float(value[b]):.3g}) "
                                               f"with lr={r:g}: lower the learning rate (try lr={r / 10:g})")
                if tol is not None:
                    gn = be.grad_norms()
                    newly = np.flatnonzero(active & (gn < tol)).tolist()
                    for b in newly:
                        converged[b], gnorms[b] = True, float(gn[b])
                        active[b] = False
                    if newly:
                        be.freeze(newly)
                        snapshot(step - 1, newly)
                    for b in np.flatnonzero(active).tolist():
                        gnorms[b] = float(gn[b])
                    if not active.any():
                        break
                be.step()
                done += active
                pending += 1
                if step in schedule:
                    snapshot(step, np.flatnonzero(active).tolist())
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
        close_bar(bar, interrupted)
    Wn, Hn = be.arrays()
    return [UFMResult(Wn[b].copy(), Hn[b, :, :s["n"]].copy(), s["y"], histories[b], int(done[b]), interrupted,
                      converged[b], gnorms[b]) for b, s in enumerate(specs)]
