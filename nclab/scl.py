"""SCL + ReLU (Kini et al., ICLR 2024): optimal value of UFM+, batch schedules, batch-binding and a
checker that says whether the orthogonal frame (OF) is the unique minimizer for a given batching.

Condition checked (the tested form of the paper's conditions): with E the pairs (i, ℓ) sharing a batch in
which at least one of them has an in-batch positive, (i) every class's examples are connected by
same-class edges of E and (ii) every pair of classes is joined by an edge of E.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from nclab._checks import array, integer, real
from nclab.labels import class_sizes, sizes_of

__all__ = [
    "optimal_value", "BatchSchedule", "schedule", "Verdict", "check_batches", "class_objective", "meeting_matrix",
    "scl_representations"
]


def optimal_value(sizes, tau: float) -> float:
    """UFM+ optimum of the full-batch SCL (OF geometry): L* = Σ_{c: n_c≥2} n_c log((n_c−1) + (n−n_c)e^{−1/τ})."""
    sizes = class_sizes(sizes).astype(float)
    tau = real("tau", tau, 0.0, lo_open=True)
    n = sizes.sum()
    keep = sizes >= 2
    return float(np.sum(sizes[keep] * np.log((sizes[keep] - 1) + (n - sizes[keep]) * np.exp(-1 / tau))))


@dataclass
class BatchSchedule:
    """epoch ↦ list of index arrays. ``kind`` names the scheme; ``bound`` are the batch-binding examples
    (one per class) appended to every batch, or None."""

    kind: str
    n: int
    make: object = field(repr=False)
    bound: np.ndarray | None = None

    def __call__(self, epoch: int) -> list[np.ndarray]:
        batches = self.make(epoch)
        if self.bound is None:
            return batches
        return [np.union1d(b, self.bound) for b in batches]

    def support(self, epochs: int = 1) -> list[np.ndarray]:
        """Every batch of the first ``epochs`` epochs (what the checker looks at)."""
        return [b for e in range(1, epochs + 1) for b in self(e)]


SCHEMES = ("full", "reshuffle", "partition", "stratified", "never_meet", "custom")


def schedule(kind: str, y, batch_size: int | None = None, seed: int = 0, binding: bool = False,
             batches: list | None = None, never_meet: tuple[int, int] = (0, 1)) -> BatchSchedule:
    """Batch schedules: "full"; "reshuffle" (random permutation each epoch); "partition" (one fixed random
    partition); "stratified" (fixed batches, each with ⌈n_c·|B|/n⌉ of every class, so a small class can
    have one example per batch); "never_meet" (like reshuffle but classes ``never_meet`` never share a
    batch); "custom" (the given ``batches``). ``binding`` appends one fixed example per class to every batch."""
    y = np.asarray(y)
    sizes = sizes_of(y)
    n = y.size
    seed = integer("seed", seed, 0)
    bs = n if batch_size is None else integer("batch_size", batch_size, 2, n)
    rng = np.random.default_rng(seed)

    def chunks(order):
        return [np.sort(order[i:i + bs]) for i in range(0, n, bs)]

    if kind == "full":
        make = lambda e: [np.arange(n)]  # noqa: E731
    elif kind == "reshuffle":
        make = lambda e: chunks(np.random.default_rng([seed, e]).permutation(n))  # noqa: E731
    elif kind == "partition":
        fixed = chunks(rng.permutation(n))
        make = lambda e: fixed  # noqa: E731
    elif kind == "stratified":
        m = int(np.ceil(n / bs))
        parts = [[] for _ in range(m)]
        for c in range(sizes.size):
            idx = rng.permutation(np.flatnonzero(y == c))
            for j, i in enumerate(idx):
                parts[j % m].append(i)
        fixed = [np.sort(np.array(p)) for p in parts if p]
        make = lambda e: fixed  # noqa: E731
    elif kind == "never_meet":
        a, b = never_meet
        for c in (a, b):
            integer("never_meet class", c, 0, sizes.size - 1)
        if a == b:
            raise ValueError(f"never_meet={never_meet} must name two different classes")

        def make(e):  # a's and b's batches each take a random half of the other classes
            r = np.random.default_rng([seed, e])
            rest = r.permutation(np.flatnonzero((y != a) & (y != b)))
            out = []
            for grp in (np.flatnonzero(y == a), np.flatnonzero(y == b)):
                half, rest = rest[: rest.size // 2], rest[rest.size // 2:]
                order = r.permutation(np.concatenate([grp, half]) if grp is not None else half)
                out += [np.sort(order[i:i + bs]) for i in range(0, order.size, bs)]
            if rest.size:
                out[-1] = np.sort(np.concatenate([out[-1], rest]))
            return out
    elif kind == "custom":
        if not batches:
            raise ValueError("kind='custom' needs a non-empty list of batches")
        fixed = [np.asarray(b, dtype=int) for b in batches]
        for j, b in enumerate(fixed):
            if b.size == 0 or b.min() < 0 or b.max() >= n:
                raise ValueError(f"batches[{j}] names examples outside 0..{n - 1} (or is empty)")
        make = lambda e: fixed  # noqa: E731
    else:
        raise ValueError(f"kind={kind!r} is unknown: use one of {', '.join(SCHEMES)}")
    bound = None
    if binding:
        bound = np.array([np.random.default_rng(seed + 7).choice(np.flatnonzero(y == c)) for c in range(sizes.size)])
    return BatchSchedule(kind + (" + binding" if binding else ""), n, make, bound)


@dataclass
class Verdict:
    """Whether the OF is the unique minimizer for these batches, and why not."""

    unique: bool
    reasons: list[str]

    def __str__(self) -> str:
        if self.unique:
            return "OF is the unique minimizer: every class is connected and every class pair meets."
        return "OF is NOT the unique minimizer: " + "; ".join(self.reasons)


def check_batches(batches: list, y) -> Verdict:
    """Build the batch graph E and test (i) same-class connectivity of every class, (ii) every class pair
    joined by an edge. Reasons name the disconnected classes and the pairs that never meet."""
    y = np.asarray(y)
    k, n = sizes_of(y).size, y.size
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    meets = np.zeros((k, k), dtype=bool)
    for j, b in enumerate(batches):
        b = np.asarray(b, dtype=int)
        if b.size and (b.min() < 0 or b.max() >= n):
            raise ValueError(f"batch {j} names examples outside 0..{n - 1}")
        yb = y[b]
        counts = np.bincount(yb, minlength=k)
        has_pos = counts[yb] >= 2
        if not has_pos.any():
            continue
        for c in np.unique(yb[has_pos]):  # anchors of class c are linked to every same-class example
            members = b[yb == c]
            for i in members[1:]:
                parent[find(i)] = find(members[0])
        present = np.unique(yb)
        anchor_classes = np.unique(yb[has_pos])
        for c in anchor_classes:  # an anchor is linked to everything in its batch
            meets[c, present] = meets[present, c] = True
    reasons = []
    for c in range(k):
        roots = {find(i) for i in np.flatnonzero(y == c)}
        if len(roots) > 1:
            reasons.append(f"class {c} is split into {len(roots)} groups that never share a batch as positives")
    for a in range(k):
        for b in range(a + 1, k):
            if not meets[a, b]:
                reasons.append(f"classes {a} and {b} never meet in a batch")
    return Verdict(not reasons, reasons)


def class_objective(G, sizes, tau: float) -> float:
    """Full-batch SCL of collapsed embeddings with class Gram G:
    Σ_{c: n_c≥2} n_c [log((n_c−1)e^{G_cc/τ} + Σ_{c'≠c} n_c' e^{G_cc'/τ}) − G_cc/τ], as a log-sum-exp
    (finite for any τ > 0)."""
    G = array("G", G, ndim=2)
    sizes = class_sizes(sizes).astype(float)
    tau = real("tau", tau, 0.0, lo_open=True)
    if G.shape != (sizes.size, sizes.size):
        raise ValueError(f"G has shape {G.shape}, expected ({sizes.size}, {sizes.size}) for {sizes.size} classes")
    total = 0.0
    for c in range(sizes.size):
        if sizes[c] < 2:
            continue
        w = sizes.copy()
        w[c] -= 1
        total += sizes[c] * (logsumexp(G[c] / tau, b=w) - G[c, c] / tau)  # stable for small τ
    return float(total)


def meeting_matrix(batches: list, y) -> np.ndarray:
    """k×k counts: how many batches contain both classes with at least one of them having a positive."""
    y = np.asarray(y)
    k = sizes_of(y).size
    M = np.zeros((k, k), dtype=int)
    for b in batches:
        yb = y[np.asarray(b, dtype=int)]
        counts = np.bincount(yb, minlength=k)
        present = counts > 0
        anchor = counts >= 2
        M += np.outer(anchor, present) | np.outer(present, anchor)
    return M


def scl_representations(source: str = "digits", *, relu: bool, k: int = 4, R: float = 5, k_min: int = 2,
                        n_min: int = 10, test_per_class: int = 30, tau: float = 1.0, feat_dim: int = 128,
                        epochs: int = 300, lr: float = 1e-2, restarts: int = 2, seed: int = 0,
                        progress: bool = False) -> dict:
    """Train ``ContrastiveMLP`` (± final ReLU) with full-batch SCL on a step-imbalanced split, ``restarts``
    initializations, keep the one with the lowest *training* loss (no test data used to choose). Returns
    train/test OF distances, NCC / linear-probe test accuracy, the full-batch optimum L* and every restart's
    (loss, d_OF, dead units).

    Why ``feat_dim`` is wide: with a final ReLU, SCL pushes every output unit shared by two classes below zero for
    one of them, and a unit negative on a whole class never gets its gradient back. With 32 units about half end dead
    and two small classes can be left sharing one unit (a local minimum above L*, d_OF ≈ 0.61); 128 units leave
    every class a unit of its own."""
    from nclab.data import step_imbalanced
    from nclab.losses import SupCon
    from nclab.metrics import of_distance
    from nclab.nets import ContrastiveMLP, dead_units, embed, probe_accuracies, train_contrastive

    restarts = integer("restarts", restarts, 1)
    Xtr, ytr, Xte, yte = step_imbalanced(source, k=k, R=R, k_min=k_min, n_min=n_min, seed=seed,
                                         test_per_class=test_per_class)
    tried = []
    for r in range(restarts):
        model = ContrastiveMLP(Xtr.shape[1], feat_dim=feat_dim, relu=relu, seed=seed + r)
        hist = train_contrastive(model, Xtr, ytr, loss=SupCon(tau), epochs=epochs, lr=lr, seed=seed + r,
                                 progress=progress)
        tried.append((hist["loss"][-1], model))
    best_loss, best = min(tried, key=lambda t: t[0])
    Htr, Hte = embed(best, Xtr), embed(best, Xte)
    out = {"train_loss": best_loss, "optimum_relu": optimal_value(np.bincount(ytr), tau),
           "d_OF_train": of_distance(Htr, ytr), "d_OF_test": of_distance(Hte, yte),
           "restarts": [(float(loss), float(of_distance(embed(m, Xtr), ytr)), dead_units(m, Xtr))
                        for loss, m in tried]}
    out.update(probe_accuracies(Htr, ytr, Hte, yte))
    return out
