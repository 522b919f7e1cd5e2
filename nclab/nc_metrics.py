"""Streaming class statistics (``ClassStats``, ``NTPStats``), neural-collapse metrics and the papers' target
geometries, computed from the statistics in float64 on the statistics' device, with k×k Grams handled in row tiles
so k = 10,000 classes needs O(tile·k + k·d + d²) memory, never k×k.

Notation: n_c, μ_c (uncentered class means, rows of M ∈ R^{k×d}), μ̄ = (1/k) Σ_c μ_c (the unweighted
mean of class means, as in ``nclab.metrics.nc1``), M̃ = M − 1μ̄ᵀ, classifier W ∈ R^{k×d},
Σ_W = S_W / n and Σ_B = M̃ᵀM̃ / k; Gram distances are ‖A/‖A‖_F − B/‖B‖_F‖_F (``metrics.gram_distance``).

The accumulator holds n_c, μ_c and S_W = Σ_c Σ_{i: y_i=c} (x_i − μ_c)(x_i − μ_c)ᵀ (d×d), updated per chunk with
centred sums (Chan et al.): merging (n_a, μ_a, S_a) and (n_b, μ_b, S_b) gives
S = S_a + S_b + Σ_c (n_a,c n_b,c / n_c) δ_c δ_cᵀ with δ_c = μ_b,c − μ_a,c — no Σ x xᵀ − Σ n μ μᵀ cancellation.
"""

from __future__ import annotations

import numpy as np
import torch

from nclab._checks import array, integer
from nclab.frames import Geometry
from nclab.labels import class_sizes
from nclab.ufm import resolve_device

__all__ = [
    "ClassStats", "NTPStats", "nc1", "geometry_metrics", "classifier_metrics", "loss_geometry", "targets_for",
    "log_line"
]

PINV_RTOL = 1e-10  # eigenvalues of Σ_B below this × the largest count as 0 in Σ_B⁺


class ClassStats:
    """Streaming float64 class statistics of features x ∈ R^d with hard labels y ∈ {0..k−1}: counts n (k,),
    class means μ (k×d), within-class scatter S_W (d×d). ``update`` costs O(B d²) per chunk of B rows
    whatever k is; ``a + b`` equals one pass over both parts; class-level work runs in tiles of ``tile``."""

    def __init__(self, k: int, d: int, device="cpu", tile: int = 1024):
        self.k, self.d = integer("k", k, 2), integer("d", d, 1)
        self.tile = integer("tile", tile, 1)
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        opts = {"dtype": torch.float64, "device": self.device}
        self.counts = torch.zeros(self.k, **opts)
        self.means = torch.zeros(self.k, self.d, **opts)
        self.scatter = torch.zeros(self.d, self.d, **opts)

    @property
    def n(self) -> int:
        return int(self.counts.sum().item())

    @property
    def global_mean(self) -> torch.Tensor:
        """Sample-weighted mean of all features Σ_c n_c μ_c / n (d,)."""
        return (self.counts @ self.means) / self.counts.sum()

    def update(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> ClassStats:
        """Add features x (B×…, flattened to B×d) with labels y (B,), ``chunk`` rows at a time."""
        x = torch.as_tensor(x).reshape(len(x), -1)
        y = torch.as_tensor(y).reshape(-1)
        if x.shape[1] != self.d or y.shape[0] != x.shape[0]:
            raise ValueError(f"features must be B×{self.d} with B labels, got {tuple(x.shape)} and {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.k):
            raise ValueError(f"labels must lie in 0..{self.k - 1}, got range [{int(y.min())}, {int(y.max())}]")
        for s in range(0, x.shape[0], integer("chunk", chunk, 1)):
            self._update(x[s:s + chunk].to(self.device, torch.float64), y[s:s + chunk].to(self.device, torch.long))
        return self

    def _update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        u, inv, nb = torch.unique(y, return_inverse=True, return_counts=True)
        nb = nb.to(torch.float64)
        mb = torch.zeros(u.numel(), self.d, dtype=torch.float64, device=self.device).index_add_(0, inv, x)
        mb /= nb[:, None]
        na = self.counts[u]
        n = na + nb
        delta = mb - self.means[u]
        D = torch.cat([x - mb[inv], torch.sqrt(na * nb / n)[:, None] * delta])  # centred rows + merge term
        self.scatter.addmm_(D.T, D)
        self.means[u] += delta * (nb / n)[:, None]
        self.counts[u] = n

    def __add__(self, other: ClassStats) -> ClassStats:
        if not isinstance(other, ClassStats) or (other.k, other.d) != (self.k, self.d):
            raise ValueError("can only add ClassStats with the same k and d")
        out = ClassStats(self.k, self.d, self.device, self.tile)
        ob = other.to(self.device)
        out.scatter = self.scatter + ob.scatter
        for s in range(0, self.k, self.tile):  # class tiles: never a k×d×d or large k×k intermediate
            na, nb = self.counts[s:s + self.tile], ob.counts[s:s + self.tile]
            n = na + nb
            safe = torch.where(n > 0, n, torch.ones_like(n))
            delta = ob.means[s:s + self.tile] - self.means[s:s + self.tile]
            D = torch.sqrt(na * nb / safe)[:, None] * delta
            out.scatter.addmm_(D.T, D)
            out.means[s:s + self.tile] = self.means[s:s + self.tile] + delta * (nb / safe)[:, None]
            out.counts[s:s + self.tile] = n
        return out

    def to(self, device) -> ClassStats:
        """A copy on ``device`` (this object when it is already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        out = ClassStats(self.k, self.d, device, self.tile)
        out.counts, out.means, out.scatter = (t.to(device) for t in (self.counts, self.means, self.scatter))
        return out


class NTPStats:
    """Next-token statistics grouped by context: for each distinct context j (a tuple of token ids) its count,
    its mean embedding h_j (d,) and its next-token counts; ``ntp_data()`` turns them into soft labels p_j,
    frequencies π_j and support groups (contexts with the same support set S_j share a group)."""

    def __init__(self, V: int, d: int):
        self.V, self.d = integer("V", V, 2), integer("d", d, 1)
        self.index: dict[tuple, int] = {}
        self._sums: list[np.ndarray] = []
        self._counts: list[float] = []
        self._next: dict[tuple[int, int], float] = {}

    def update(self, contexts, features, next_tokens) -> NTPStats:
        """contexts (B×L token ids), features (B×d), next tokens (B,)."""
        ctx = torch.as_tensor(contexts).reshape(len(contexts), -1).cpu()
        x = torch.as_tensor(features).reshape(len(ctx), -1).to("cpu", torch.float64).numpy()
        z = torch.as_tensor(next_tokens).reshape(-1).cpu().numpy()
        if x.shape[1] != self.d or z.shape[0] != ctx.shape[0]:
            raise ValueError(f"features must be B×{self.d} with B next tokens, got {x.shape} and {z.shape}")
        if z.size and (z.min() < 0 or z.max() >= self.V):
            raise ValueError(f"next tokens must lie in 0..{self.V - 1}, got range [{z.min()}, {z.max()}]")
        uniq, inv = torch.unique(ctx, dim=0, return_inverse=True)
        ids = np.array([self.index.setdefault(tuple(row), len(self.index)) for row in uniq.tolist()])[inv.numpy()]
        while len(self._sums) < len(self.index):
            self._sums.append(np.zeros(self.d))
            self._counts.append(0.0)
        for j, row, t in zip(ids, x, z, strict=True):
            self._sums[j] += row
            self._counts[j] += 1.0
            self._next[(int(t), int(j))] = self._next.get((int(t), int(j)), 0.0) + 1.0
        return self

    def embeddings(self) -> np.ndarray:
        """Mean context embeddings as columns (d×m)."""
        return (np.stack(self._sums) / np.array(self._counts)[:, None]).T

    def ntp_data(self):
        """``nclab.ntp.NTPData`` with P (V×m) the empirical next-token distributions and π ∝ context counts."""
        from nclab.ntp import NTPData

        m = len(self.index)
        C = np.zeros((self.V, m))
        for (t, j), c in self._next.items():
            C[t, j] = c
        counts = C.sum(0)
        contexts = sorted(self.index, key=self.index.get)
        return NTPData(C / counts, counts / counts.sum(), contexts=contexts)



def nc1(stats) -> float:
    """NC1 = Tr(Σ_W Σ_B⁺)/k = (1/k) Σ_{λ_i > tol} v_iᵀ Σ_W v_i / λ_i over the eigenpairs (λ_i, v_i) of Σ_B."""
    Sw = stats.scatter / stats.counts.sum()
    Mc = stats.means - stats.means.mean(0)
    Sb = torch.zeros_like(Sw)
    for s in range(0, stats.k, stats.tile):
        Sb.addmm_(Mc[s:s + stats.tile].T, Mc[s:s + stats.tile])
    Sb /= stats.k
    lam, V = torch.linalg.eigh((Sb + Sb.T) / 2)
    keep = lam > PINV_RTOL * lam.max().clamp(min=1e-300)
    V, lam = V[:, keep], lam[keep]
    return float((((V.T @ Sw) * V.T).sum(1) / lam).sum() / stats.k)


def _row_stats(norm_rows: torch.Tensor, G: torch.Tensor, s: int, acc: dict) -> None:
    """Accumulate off-diagonal cosines of the rows s.. of a Gram G (tile×k) with row norms ``norm_rows``."""
    C = G / (norm_rows[s:s + G.shape[0], None] * norm_rows[None, :])
    idx = torch.arange(G.shape[0], device=G.device)
    C[idx, idx + s] = 0.0
    k = G.shape[1]
    acc["sum"] += float(C.sum())
    acc["sq"] += float((C**2).sum())
    off = torch.ones_like(C)
    off[idx, idx + s] = 0.0
    acc["abs"] += float(((C + 1.0 / (k - 1)).abs() * off).sum())


def _eq_stats(acc: dict, k: int, norms: torch.Tensor) -> dict:
    m = k * (k - 1)
    mean = acc["sum"] / m
    return {"equinorm": float(norms.std(unbiased=False) / norms.mean()),
            "equiangle": float(np.sqrt(max(acc["sq"] / m - mean**2, 0.0))),
            "maxangle": acc["abs"] / m}


def geometry_metrics(stats, W: torch.Tensor | None = None, targets: dict | None = None,
                     tile: int | None = None) -> dict:
    """From class statistics (and a classifier W, k×d, when given):

    * ``nc1`` = Tr(Σ_W Σ_B⁺)/k;
    * NC2 on H (centred means μ_c − μ̄) and W: ``nc2_equinorm_*`` = std_c ‖v_c‖ / mean_c ‖v_c‖,
      ``nc2_equiangle_*`` = std_{c≠c'} cos(v_c, v_c'), ``nc2_maxangle_*`` = mean_{c≠c'} |cos + 1/(k−1)|,
      ``nc2_etf_*`` = d(Ṽ Ṽᵀ, P) with P = I − 11ᵀ/k (Ṽ = M̃ or W);
    * ``nc3`` = ‖W/‖W‖_F − M̃/‖M̃‖_F‖_F (classifier / centred class-mean alignment);
    * targets on the *uncentered* Grams (nclab convention): ``d_W_ETF`` = d(W Wᵀ, P), ``d_H_ETF`` = d(M Mᵀ, P),
      ``d_H_OF`` = d(M Mᵀ, I_k) (SCL + ReLU), and ``d_W_<name>``, ``d_H_<name>`` = d(W Wᵀ, G.W_gram), d(M Mᵀ, G.H_gram)
      for every ``targets[name]`` (a ``frames.Geometry``, e.g. from ``targets_for``).
    k×k Grams are formed ``tile`` rows at a time (two passes: norms and cosines, then distances)."""
    k, dev = stats.k, stats.counts.device
    tile = stats.tile if tile is None else integer("tile", tile, 1)
    if bool((stats.counts == 0).any()):
        raise ValueError(f"class {int(torch.nonzero(stats.counts == 0)[0])} has no example: every class must occur")
    M = stats.means
    Mc = M - M.mean(0)
    mats = {"Hc": Mc, "H": M}
    if W is not None:
        W = torch.as_tensor(W).to(dev, torch.float64)
        if W.shape != (k, stats.d):
            raise ValueError(f"classifier W has shape {tuple(W.shape)}, expected ({k}, {stats.d}) = (k, d)")
        mats["W"] = W
    refs = {"Hc": {"etf": "P"}, "H": {"ETF": "P", "OF": "I"}, "W": {"ETF": "P"}}
    for name, geom in (targets or {}).items():
        if not isinstance(geom, Geometry) or geom.k != k:
            raise ValueError(f"targets[{name!r}] must be a frames.Geometry with k={k} classes")
        refs["H"][name] = torch.as_tensor(geom.H_gram, dtype=torch.float64, device=dev)
        refs["W"][name] = torch.as_tensor(geom.W_gram, dtype=torch.float64, device=dev)

    def ref_rows(ref, s, e):
        if isinstance(ref, torch.Tensor):
            return ref[s:e]
        rows = torch.zeros(e - s, k, dtype=torch.float64, device=dev)
        rows[torch.arange(e - s), torch.arange(s, e)] = 1.0
        return rows - 1.0 / k if ref == "P" else rows

    norms = {g: torch.linalg.norm(X, dim=1) for g, X in mats.items()}
    sq = {(g, r): 0.0 for g in mats for r in [None, *refs[g]]}
    cos = {g: {"sum": 0.0, "sq": 0.0, "abs": 0.0} for g in ("Hc", "W") if g in mats}
    for s in range(0, k, tile):  # pass 1: Frobenius norms of every Gram and reference, cosine statistics
        e = min(s + tile, k)
        for g, X in mats.items():
            G = X[s:e] @ X.T
            sq[(g, None)] += float((G**2).sum())
            for r, ref in refs[g].items():
                sq[(g, r)] += float((ref_rows(ref, s, e) ** 2).sum())
            if g in cos:
                _row_stats(norms[g], G, s, cos[g])
    fro = {key: np.sqrt(v) for key, v in sq.items()}
    for key, v in fro.items():
        if v == 0:
            raise ValueError(f"the Gram of {key[1] or key[0]} is zero: its direction is undefined")
    diff = {(g, r): 0.0 for g in mats for r in refs[g]}
    for s in range(0, k, tile):  # pass 2: ‖A/‖A‖ − B/‖B‖‖² tile by tile
        e = min(s + tile, k)
        for g, X in mats.items():
            G = (X[s:e] @ X.T) / fro[(g, None)]
            for r, ref in refs[g].items():
                diff[(g, r)] += float(((G - ref_rows(ref, s, e) / fro[(g, r)]) ** 2).sum())
    out = {"n": stats.n, "k": k, "d": stats.d, "nc1": nc1(stats)}
    for g, tag in (("Hc", "H"), ("W", "W")):
        if g in cos:
            out.update({f"nc2_{key}_{tag}": v for key, v in _eq_stats(cos[g], k, norms[g]).items()})
    out["nc2_etf_H"] = float(np.sqrt(diff[("Hc", "etf")]))
    for g in ("H", "W"):
        for r in refs.get(g, {}) if g in mats else {}:
            out[f"d_{g}_{r}"] = float(np.sqrt(diff[(g, r)]))
    if W is not None:
        out["nc2_etf_W"] = out["d_W_ETF"]
        out["nc3"] = float(torch.linalg.norm(W / torch.linalg.norm(W) - Mc / torch.linalg.norm(Mc)))
    return out


def classifier_metrics(W, sizes=None) -> dict:
    """What the classifier alone tells (no data needed), for W (k×d) as numpy: NC2 on its rows (``nc2_equinorm_W``,
    ``nc2_equiangle_W``, ``nc2_maxangle_W`` as in ``geometry_metrics``), ``d_W_ETF`` = d(W Wᵀ, P) and, given class
    sizes, ``d_W_SELI`` = d(W Wᵀ, SELI's W Wᵀ). Dense k×k: meant for k up to a few thousand."""
    from nclab.metrics import gram_distance
    from nclab.seli import seli_geometry

    W = array("W", W.detach().cpu().numpy() if torch.is_tensor(W) else W, ndim=2)
    if W.shape[0] < 2:
        raise ValueError(f"W must be a k×d classifier with k >= 2 rows, got shape {W.shape}")
    k = W.shape[0]
    G = W @ W.T
    nr = np.sqrt(np.diag(G))
    cos = (G / np.outer(nr, nr))[~np.eye(k, dtype=bool)]
    out = {"k": k, "d": W.shape[1], "nc2_equinorm_W": float(nr.std() / nr.mean()),
           "nc2_equiangle_W": float(cos.std()), "nc2_maxangle_W": float(np.abs(cos + 1 / (k - 1)).mean()),
           "d_W_ETF": gram_distance(G, np.eye(k) - 1.0 / k)}
    if sizes is not None:
        sizes = class_sizes(sizes)
        if sizes.size != k:
            raise ValueError(f"sizes has {sizes.size} entries but W has k={k} rows")
        out["d_W_SELI"] = gram_distance(G, seli_geometry(sizes).W_gram)
    return out


def loss_geometry(loss, sizes) -> Geometry:
    """The max-margin (λ → 0) geometry of a ``losses.LogitAdjustedCE`` (Behnia et al. 2023): CS-SVM CDT with
    δ = Δ when the loss has multiplicative logit factors Δ (CDT, VS: ω and ι drop out), CS-SVM LDT with its δ (LDT),
    otherwise SELI (CE, wCE, LA). Solved with ``convex.cs_svm`` (cvxpy; meant for k up to a few dozen)."""
    from nclab.convex import cs_svm
    from nclab.seli import seli_geometry

    sizes = class_sizes(sizes)
    p = loss.arrays(sizes.size)
    has_Delta, has_delta = not np.allclose(p["Delta"], 1.0), not np.allclose(p["delta"], 1.0)
    if has_Delta and has_delta:
        raise ValueError("a loss with both Δ (CDT) and δ (LDT) factors has no CS-SVM closed form here")
    if has_Delta:
        return cs_svm(sizes, p["Delta"], "cdt")
    if has_delta:
        return cs_svm(sizes, p["delta"], "ldt")
    return seli_geometry(sizes)


def targets_for(sizes, loss=None, max_k: int = 2000) -> dict[str, Geometry]:
    """Reference geometries for measured class counts: {"SELI": seli_geometry(sizes)} plus {"CS-SVM": the geometry
    of ``loss``} when a ``LogitAdjustedCE`` is given. Dense k×k references are built only for k ≤ ``max_k``
    (the ETF and orthogonal frame are always measured by ``geometry_metrics`` without storing them)."""
    from nclab.seli import seli_geometry

    sizes = class_sizes(sizes)
    if sizes.size > integer("max_k", max_k, 2):
        raise ValueError(f"k={sizes.size} classes exceeds max_k={max_k}: dense k×k reference geometries would not fit")
    out = {"SELI": seli_geometry(sizes)}
    if loss is not None:
        out["CS-SVM"] = loss_geometry(loss, sizes)
    return out


def log_line(step: int, metrics: dict, keys) -> str:
    """One plain-text line 'step 120 | nc1 0.412 | d_W_SELI 0.081 …' for logs outside Jupyter."""
    return f"step {step} | " + " | ".join(f"{key} {metrics[key]:.4g}" for key in keys if key in metrics)
