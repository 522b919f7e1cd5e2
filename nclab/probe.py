"""Probe your own network: stream a data loader through any torch model, read the features of a named layer
(forward hook) or a feature function, accumulate their class statistics in float64 (``nc_metrics.ClassStats``:
mergeable, memory independent of the data set), then measure NC1–NC4 and the distances to the papers' geometries
(SELI, the CS-SVM geometry of the training loss, ETF, orthogonal frame, NTP support-group collapse) with
``nclab.nc_metrics``; ``GeometryTracker`` records them during a user's training loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from nclab._checks import integer
from nclab.nc_metrics import ClassStats, NTPStats
from nclab.ufm import resolve_device

# ----------------------------------------------------------------------------- reading features from a model

def _named_module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(names[:60]) + (f", … ({len(names) - 60} more)" if len(names) > 60 else "")
        raise ValueError(f"module {name!r} not found in the model: available modules are {shown}")
    return modules[name]


def _to(obj, device, dtype):
    if torch.is_tensor(obj):
        return obj.to(device, dtype) if obj.is_floating_point() and dtype is not None else obj.to(device)
    if isinstance(obj, dict):
        return {key: _to(v, device, dtype) for key, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to(v, device, dtype) for v in obj)
    return obj


class FeatureReader:
    """Reads features for a batch of inputs: the output of module ``features`` (forward hook), the input of the
    module ``classifier`` when ``features`` is None (forward pre-hook), or ``features(model, inputs)`` when it is
    callable. Inputs go to the model's device and floating dtype; dict inputs are passed as keywords (HF models)."""

    def __init__(self, model: nn.Module, features: str | Callable | None = None, classifier: str | None = None):
        self.model = model
        if features is None and classifier is None:
            raise ValueError("give features (a module name or a callable) or classifier (a module name)")
        if features is not None and not (isinstance(features, str) or callable(features)):
            raise ValueError(f"features={features!r} must be a module name or a callable(model, inputs)")
        self.features = features
        self.module = None
        if isinstance(features, str):
            self.module, self.pre = _named_module(model, features), False
        elif features is None:
            self.module, self.pre = _named_module(model, classifier), True
        self._out = None

    def _hook(self, module, args, output=None):
        self._out = (args[0] if self.pre else output).detach()

    @contextlib.contextmanager
    def attached(self):
        handle = None
        if self.module is not None:
            handle = (self.module.register_forward_pre_hook(self._hook) if self.pre
                      else self.module.register_forward_hook(self._hook))
        try:
            yield self
        finally:
            if handle is not None:
                handle.remove()

    def __call__(self, inputs) -> torch.Tensor:
        p = next(iter(self.model.parameters()), None)
        dev = p.device if p is not None else torch.device("cpu")
        inputs = _to(inputs, dev, p.dtype if p is not None and p.is_floating_point() else None)
        if callable(self.features) and not isinstance(self.features, str):
            out = self.features(self.model, inputs)
        else:
            self._out = None
            self.model(**inputs) if isinstance(inputs, dict) else self.model(inputs)
            if self._out is None:
                raise RuntimeError("the hooked module did not run in the forward pass")
            out = self._out
        if isinstance(out, tuple | list):
            out = out[0]
        return out.reshape(out.shape[0], -1)


def classifier_weights(model: nn.Module | None, classifier) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(W (k×d), b (k,) or None) from a module name (its ``weight`` and ``bias``), a tensor/array W, or None."""
    if classifier is None:
        return None, None
    if isinstance(classifier, str):
        mod = _named_module(model, classifier)
        if not isinstance(getattr(mod, "weight", None), torch.Tensor) or mod.weight.ndim != 2:
            raise ValueError(f"module {classifier!r} has no 2-D weight (k×d): give a linear classifier")
        b = getattr(mod, "bias", None)
        return mod.weight.detach().to(torch.float64), (None if b is None else b.detach().to(torch.float64))
    W = torch.as_tensor(np.asarray(classifier) if not torch.is_tensor(classifier) else classifier)
    if W.ndim != 2:
        raise ValueError(f"classifier must be a module name or a k×d matrix, got shape {tuple(W.shape)}")
    return W.to(torch.float64), None


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was)


def _batches(loader: Iterable, progress: bool, desc: str):
    from tqdm.auto import tqdm

    for batch in tqdm(loader, disable=not progress, desc=desc, leave=False):
        if not isinstance(batch, list | tuple) or len(batch) < 2:
            raise ValueError("the loader must yield (inputs, labels) pairs")
        yield batch[0], batch[1]


# ----------------------------------------------------------------------------- the probe

@dataclass
class ProbeResult:
    """What one probe measured: the accumulator, the classifier (W, b), the metrics and the NCC agreement."""

    stats: ClassStats
    W: torch.Tensor | None
    b: torch.Tensor | None
    metrics: dict = field(default_factory=dict)


def accumulate(model: nn.Module, loader: Iterable, *, k: int | None = None, features=None, classifier=None,
               device="auto", tile: int = 1024, chunk: int = 8192, progress: bool = False) -> ProbeResult:
    """One pass of ``loader`` ((inputs, labels) batches) through ``model`` in eval mode without gradients:
    class statistics of the features on ``device`` ("auto": the model's device). k defaults to the classifier's rows."""
    W, b = classifier_weights(model, classifier)
    if k is None:
        if W is None:
            raise ValueError("k is needed when no classifier is given")
        k = W.shape[0]
    reader = FeatureReader(model, features, classifier if isinstance(classifier, str) else None)
    if device == "auto":
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else resolve_device("auto")
    stats = None
    with _eval_mode(model), reader.attached():
        for inputs, labels in _batches(loader, progress, "probe"):
            x = reader(inputs)
            if stats is None:
                stats = ClassStats(k, x.shape[1], device, tile)
            stats.update(x, labels, chunk)
    if stats is None:
        raise ValueError("the loader yielded no batch")
    return ProbeResult(stats, W, b)


def ncc_agreement(model: nn.Module, loader: Iterable, means: torch.Tensor, W: torch.Tensor, b=None, *,
                  features=None, classifier=None, tile: int = 1024, progress: bool = False) -> float:
    """NC4 (second pass): fraction of examples where the nearest class mean argmin_c ‖h − μ_c‖ equals the
    classifier's decision argmax_c (w_cᵀh + b_c); classes in tiles, so no B×k matrix larger than B×tile."""
    reader = FeatureReader(model, features, classifier if isinstance(classifier, str) else None)
    dev = means.device
    Wd = W.to(dev, torch.float64)
    bd = None if b is None else b.to(dev, torch.float64)
    msq = (means**2).sum(1)
    agree = total = 0
    with _eval_mode(model), reader.attached():
        for inputs, _ in _batches(loader, progress, "NC4"):
            x = reader(inputs).to(dev, torch.float64)
            best_d = torch.full((x.shape[0],), float("inf"), dtype=torch.float64, device=dev)
            best_z = torch.full_like(best_d, -float("inf"))
            arg_d = torch.zeros(x.shape[0], dtype=torch.long, device=dev)
            arg_z = torch.zeros_like(arg_d)
            for s in range(0, means.shape[0], tile):
                dist = msq[s:s + tile][None, :] - 2 * x @ means[s:s + tile].T
                z = x @ Wd[s:s + tile].T + (0 if bd is None else bd[s:s + tile][None, :])
                for best, arg, val, sign in ((best_d, arg_d, dist, -1), (best_z, arg_z, z, 1)):
                    v, i = (val.min(1) if sign < 0 else val.max(1))
                    better = v < best if sign < 0 else v > best
                    best[better], arg[better] = v[better], i[better] + s
            agree += int((arg_d == arg_z).sum())
            total += x.shape[0]
    return agree / total


def probe(model: nn.Module, loader: Iterable, *, classifier=None, features=None, k: int | None = None,
          targets: dict | None = None, nc4: bool = True, device="auto", tile: int = 1024, chunk: int = 8192,
          progress: bool = False) -> ProbeResult:
    """Stream ``loader`` through ``model`` and measure (``nc_metrics.geometry_metrics``) NC1–NC3, the ETF/OF
    distances and the distances to ``targets`` (e.g. ``nc_metrics.targets_for(sizes, loss)``); NC4 (NCC agreement
    with the classifier) takes a second pass over the loader when ``nc4`` and a classifier is given."""
    from nclab.nc_metrics import geometry_metrics

    res = accumulate(model, loader, k=k, features=features, classifier=classifier, device=device, tile=tile,
                     chunk=chunk, progress=progress)
    res.metrics = geometry_metrics(res.stats, res.W, targets=targets, tile=tile)
    if nc4 and res.W is not None:
        agree = ncc_agreement(model, loader, res.stats.means, res.W, res.b, features=features,
                              classifier=classifier, tile=tile, progress=progress)
        res.metrics.update({"nc4_agreement": agree, "nc4": 1.0 - agree})
    return res


def probe_ntp(model: nn.Module, loader: Iterable, *, V: int, features=None, classifier=None, r: int | None = None,
              progress: bool = False) -> dict:
    """Language models: ``loader`` yields (contexts B×L, next tokens B). Groups contexts by their set of observed
    next tokens and returns ``nclab.ntp.subspace_collapse`` of the context embeddings (spread within support groups
    in the top-r subspace, r = rank of the NTP max-margin logits by default; pass r for large V·m), plus m, groups."""
    from nclab.ntp import subspace_collapse

    reader = FeatureReader(model, features, classifier)
    stats = None
    with _eval_mode(model), reader.attached():
        for ctx, nxt in _batches(loader, progress, "NTP probe"):
            x = reader(ctx)
            stats = stats or NTPStats(V, x.shape[1])
            stats.update(ctx, x, nxt)
    if stats is None:
        raise ValueError("the loader yielded no batch")
    data = stats.ntp_data()
    if r is None:
        from nclab.convex import ntp_max_margin

        r = int(np.linalg.matrix_rank(ntp_max_margin(data.S), tol=1e-6))
    groups = data.support_groups()
    out = subspace_collapse(stats.embeddings(), groups, r)
    out.update({"m": data.m, "support_groups": int(groups.max()) + 1, "r": r})
    return out


# ----------------------------------------------------------------------------- live tracking during training

def in_jupyter() -> bool:
    """True inside a Jupyter kernel (where a live FigureWidget can render)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _is_distance(key: str) -> bool:
    return key.startswith("d_")


def readable(key: str) -> str:
    """A metric key as the text names it: "d_W_SELI" → "d(W Wᵀ, SELI)", "d_H_OF" → "d(M Mᵀ, OF)", "nc1" → "NC1"."""
    if not isinstance(key, str):
        raise ValueError(f"key={key!r} must be a metric name (str) such as 'd_W_SELI' or 'nc1'")
    if _is_distance(key) and key.count("_") >= 2:
        _, which, target = key.split("_", 2)
        return f"d({'W Wᵀ' if which == 'W' else 'M Mᵀ'}, {target})"
    return key.upper() if key.startswith("nc") and key[2:].isdigit() else key


class GeometryTracker:
    """Records geometry distances during a user's training loop: call ``tracker.step(model, run="CE")`` once per
    optimizer step; every ``every`` steps it probes ``loader`` (eval mode, no gradients) and appends the metrics
    ``keys`` to ``history[run]`` ({"step": [...], key: [...]}). In Jupyter ``tracker.figure`` is a live plotly
    figure (``plots.as_widget``; display the tracker to show it); elsewhere every record is one ``log`` line."""

    def __init__(self, loader: Iterable, *, classifier=None, features=None, k: int | None = None,
                 targets: dict | None = None, every: int = 10,
                 keys=("nc1", "d_W_SELI", "d_W_CS-SVM", "d_W_ETF"), live: bool | None = None,
                 log: Callable[[str], None] | None = print, device="auto", tile: int = 1024):
        self.loader, self.classifier, self.features, self.k = loader, classifier, features, k
        self.targets, self.keys, self.device, self.tile = targets, list(keys), device, tile
        self.every = integer("every", every, 1)
        self.live = in_jupyter() if live is None else bool(live)
        self.log = log
        self.history: dict[str, dict] = {}
        self.latest: dict[str, dict] = {}
        self._steps: dict[str, int] = {}
        self.figure = None
        if self.live:
            from nclab.plots import as_widget, curves

            fig = curves([], {}, xlabel="training step", ylabel="normalized Gram distance",
                         title="geometry during training")
            if any(not _is_distance(key) for key in self.keys):  # NC1 & co. span other ranges: their own axis
                fig.update_layout(yaxis2=dict(title="NC metric (normalized)", overlaying="y", side="right",
                                              showgrid=False))
            self.figure = as_widget(fig)

    def step(self, model: nn.Module, run: str = "model") -> dict | None:
        """Count one step of ``run``; probe and record at steps 0, every, 2·every, … (returns the metrics then)."""
        t = self._steps.get(run, 0)
        self._steps[run] = t + 1
        return self.record(model, t, run) if t % self.every == 0 else None

    def record(self, model: nn.Module, step: int, run: str = "model") -> dict:
        """Probe now and append the metrics to ``history[run]`` (and the live figure / the log)."""
        res = probe(model, self.loader, classifier=self.classifier, features=self.features, k=self.k,
                    targets=self.targets, nc4=False, device=self.device, tile=self.tile)
        m = res.metrics
        hist = self.history.setdefault(run, {"step": [], **{key: [] for key in self.keys}})
        hist["step"].append(int(step))
        for key in self.keys:
            hist[key].append(float(m.get(key, np.nan)))
        self.latest[run] = m
        if self.figure is not None:
            self._redraw(run)
        elif self.log is not None:
            from nclab.nc_metrics import log_line

            self.log(f"[{run}] " + log_line(step, m, self.keys))
        return m

    def _redraw(self, run: str) -> None:
        hist = self.history[run]
        names = {tr.name: tr for tr in self.figure.data}
        with self.figure.batch_update():
            for key in self.keys:
                name = f"{run}: {readable(key)}"
                if name in names:
                    names[name].x, names[name].y = hist["step"], hist[key]
                else:
                    fig = self.figure if hasattr(self.figure, "add_scatter") else self.figure.figure
                    fig.add_scatter(x=hist["step"], y=hist[key], mode="lines+markers", name=name,
                                    yaxis="y" if _is_distance(key) else "y2",
                                    line=dict(dash="solid" if _is_distance(key) else "dot"))

    def _ipython_display_(self):
        from IPython.display import display

        from nclab.plots import view

        if self.figure is not None:
            display(view(self.figure))
        else:
            print({run: {key: h[key][-1] for key in self.keys} for run, h in self.history.items()})


# ----------------------------------------------------------------------------- a model the user has on disk

def last_linear(model: nn.Module) -> str:
    """Name of the last ``nn.Linear`` in the model: the classifier of torchvision or HF classifiers ("fc", …)."""
    names = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    if not names:
        raise ValueError("the model has no nn.Linear layer: name its classifier explicitly")
    return names[-1]


def local_model(arch: str = "", weights: str = "", hf: str = "") -> tuple[nn.Module | None, str]:
    """Load a model already on this machine — nothing is downloaded: a torchvision architecture ``arch`` with the
    state dict in the file ``weights`` (``torch.load(weights_only=True)``), or a Hugging Face classifier saved in
    the folder ``hf`` (``from_pretrained(local_files_only=True)``). Returns (model in eval mode, "") or
    (None, the reason nothing was loaded)."""
    from pathlib import Path

    if hf:
        if not Path(hf).is_dir():
            return None, f"no Hugging Face model folder at {hf!r}"
        import transformers

        for auto in ("AutoModelForImageClassification", "AutoModelForSequenceClassification"):
            try:
                return getattr(transformers, auto).from_pretrained(hf, local_files_only=True).eval(), ""
            except (ValueError, OSError):
                continue
        return None, f"{hf!r} holds no image or sequence classifier that transformers can load offline"
    if arch:
        if not weights or not Path(weights).is_file():
            return None, f"torchvision arch {arch!r} needs its weights file (got {weights!r})"
        try:
            import torchvision
        except ImportError:
            return None, "torchvision is not installed"
        model = torchvision.models.get_model(arch, weights=None)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model.eval(), ""
    return None, "no local model configured (set NCLAB_PROBE_ARCH + NCLAB_PROBE_WEIGHTS, or NCLAB_PROBE_HF)"
