"""Task text (markdown) and marked solution (code) of every exercise, keyed by the checked function's name.

Solutions sit between nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers; the student build
(``nclab.teach``) replaces them with a stub that raises ``NotImplementedError``.
"""

from __future__ import annotations

TASKS = {
    "sel_matrix": (
        "The simplex-encoded label matrix",
        r"Write `sel_matrix(y, k)` returning $\hat Z = P Y$ ($k\times n$): $Y$ is the one-hot label matrix "
        r"($Y_{y_i, i} = 1$) and $P = I_k - \tfrac1k \mathbf 1\mathbf 1^\top$ centres every column.",
        "import numpy as np\n\n\ndef sel_matrix(y, k):\n    ### BEGIN SOLUTION\n"
        "    Y = np.zeros((k, len(y)))\n    Y[y, np.arange(len(y))] = 1.0\n"
        "    P = np.eye(k) - np.ones((k, k)) / k\n    return P @ Y\n    ### END SOLUTION"),
    "sq_norm_ratio": (
        "Majority/minority norm ratio from a Gram",
        r"Write `sq_norm_ratio(G, majority)`: from a classifier Gram $G = WW^\top$ ($k\times k$) and a boolean "
        r"mask of the majority classes, return the mean squared norm of the majority classifiers divided by the "
        r"mean squared norm of the minority ones.",
        "import numpy as np\n\n\ndef sq_norm_ratio(G, majority):\n    ### BEGIN SOLUTION\n"
        "    d = np.diag(G)\n    return d[majority].mean() / d[~majority].mean()\n    ### END SOLUTION"),
    "seli_classifier_gram": (
        "SELI's classifier Gram",
        r"Write `seli_classifier_gram(sizes)` returning $WW^\top = (PNP)^{1/2}$ for class sizes $n_c$, "
        r"$N = \mathrm{diag}(n_c)$ — a *matrix* square root (hint: `np.linalg.eigh`).",
        "import numpy as np\n\n\ndef seli_classifier_gram(sizes):\n    ### BEGIN SOLUTION\n"
        "    k = len(sizes)\n    P = np.eye(k) - np.ones((k, k)) / k\n"
        "    vals, vecs = np.linalg.eigh(P @ np.diag(np.asarray(sizes, float)) @ P)\n"
        "    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T\n    ### END SOLUTION"),
    "cdt_delta": (
        "The CDT factors for step imbalance",
        r"Write `cdt_delta(k, R, k_min, gamma)` returning the $k$ per-class factors $\delta_c$ with "
        r"$\delta_{maj}/\delta_{min} = R^\gamma$: the $k-k_{min}$ majority classes first (factor $R^\gamma$), "
        r"then the $k_{min}$ minority classes (factor 1).",
        "import numpy as np\n\n\ndef cdt_delta(k, R, k_min, gamma):\n    ### BEGIN SOLUTION\n"
        "    return np.array([R**gamma] * (k - k_min) + [1.0] * k_min)\n    ### END SOLUTION"),
    "la_loss": (
        "The logit-adjusted loss",
        r"Write `la_loss(logits, y, sizes, tau)` (torch, logits $n\times k$): the mean over examples of "
        r"$-\log \mathrm{softmax}(z_i + \tau\log\pi)_{y_i}$ with class priors $\pi_c = n_c/n$.",
        "import torch\n\n\ndef la_loss(logits, y, sizes, tau):\n    ### BEGIN SOLUTION\n"
        "    pi = torch.as_tensor(sizes, dtype=logits.dtype) / sum(sizes)\n"
        "    return torch.nn.functional.cross_entropy(logits + tau * torch.log(pi), y)\n    ### END SOLUTION"),
    "scl_loss": (
        "The SCL loss of a batch",
        r"Write `scl_loss(features, y, tau)` (torch, unit rows $h_i$, $n\times d$): "
        r"$\sum_{i: P(i)\neq\emptyset}\big[\log\sum_{\ell\neq i} e^{h_i^\top h_\ell/\tau} - "
        r"\frac{1}{|P(i)|}\sum_{j\in P(i)} h_i^\top h_j/\tau\big]$ with $P(i) = \{j\neq i: y_j = y_i\}$.",
        "import torch\n\n\ndef scl_loss(features, y, tau):\n    ### BEGIN SOLUTION\n"
        "    n = features.shape[0]\n    S = features @ features.T / tau\n"
        "    eye = torch.eye(n, dtype=torch.bool)\n    pos = (y[:, None] == y[None, :]) & ~eye\n"
        "    lse = torch.logsumexp(S.masked_fill(eye, float('-inf')), dim=1)\n    npos = pos.sum(1)\n"
        "    pos_mean = (S * pos).sum(1) / npos.clamp(min=1)\n"
        "    return ((lse - pos_mean) * (npos > 0)).sum()\n    ### END SOLUTION"),
    "of_distance": (
        "Distance to the orthogonal frame",
        r"Write `of_distance(H, y)` ($H$: $d\times n$ features, labels $y$): the distance "
        r"$\|G/\|G\|_F - I_k/\|I_k\|_F\|_F$ between the Gram $G = M^\top M$ of the *uncentered* class means "
        r"$M$ ($d\times k$) and the orthogonal frame $I_k$.",
        "import numpy as np\n\n\ndef of_distance(H, y):\n    ### BEGIN SOLUTION\n"
        "    k = y.max() + 1\n    M = np.stack([H[:, y == c].mean(1) for c in range(k)], axis=1)\n"
        "    G = M.T @ M\n    return np.linalg.norm(G / np.linalg.norm(G) - np.eye(k) / np.sqrt(k))\n"
        "    ### END SOLUTION"),
    "scl_optimal_value": (
        "The optimal SCL value",
        r"Write `scl_optimal_value(sizes, tau)`: the full-batch SCL at the orthogonal frame, "
        r"$L^* = \sum_{c:\,n_c\ge 2} n_c \log\big((n_c-1) + (n-n_c)e^{-1/\tau}\big)$.",
        "import numpy as np\n\n\ndef scl_optimal_value(sizes, tau):\n    ### BEGIN SOLUTION\n"
        "    s = np.asarray(sizes, float)\n    n = s.sum()\n    s = s[s >= 2]\n"
        "    return float(np.sum(s * np.log((s - 1) + (n - s) * np.exp(-1 / tau))))\n    ### END SOLUTION"),
    "prototype_gram": (
        "A prototype Gram",
        r"Write `prototype_gram(V)`: the rows of $V$ ($k\times d$) are prototype directions; return the "
        r"$k\times k$ Gram of the *unit-normalized* prototypes.",
        "import numpy as np\n\n\ndef prototype_gram(V):\n    ### BEGIN SOLUTION\n"
        "    W = V / np.linalg.norm(V, axis=1, keepdims=True)\n    return W @ W.T\n    ### END SOLUTION"),
    "etf_prototypes": (
        "Simplex-ETF prototypes",
        r"Write `etf_prototypes(k, d)` returning $k$ unit rows in $\mathbb R^d$ ($d\ge k$) whose pairwise "
        r"cosines are all $-1/(k-1)$ (any rotation is accepted: the check compares Grams).",
        "import numpy as np\n\n\ndef etf_prototypes(k, d):\n    ### BEGIN SOLUTION\n"
        "    W = np.zeros((k, d))\n    W[:, :k] = np.eye(k) - 1 / k\n"
        "    return W / np.linalg.norm(W, axis=1, keepdims=True)\n    ### END SOLUTION"),
    "fixed_classifier_ce": (
        "The many-prototype limit",
        r"Write `fixed_classifier_ce(features, y, prototypes, tau)` (torch features $n\times d$, numpy "
        r"prototypes $k\times d$): $\sum_i \mathrm{CE}(W h_i/\tau;\, y_i)$, CE with the prototypes as a fixed "
        r"classifier (a sum over the samples).",
        "import torch\n\n\ndef fixed_classifier_ce(features, y, prototypes, tau):\n    ### BEGIN SOLUTION\n"
        "    W = torch.as_tensor(prototypes, dtype=features.dtype)\n"
        "    return torch.nn.functional.cross_entropy(features @ W.T / tau, y, reduction='sum')\n"
        "    ### END SOLUTION"),
    "in_support_logits": (
        "The in-support logits",
        r"Write `in_support_logits(P)` ($P$: $V\times m$, column $j$ the next-token distribution $p_j$ of "
        r"context $j$, support $S_j = \{z: p_j(z) > 0\}$): column $j$ is $\log p_j - \mathrm{mean}_{S_j}\log p_j$ "
        r"on $S_j$ and $0$ off it.",
        "import numpy as np\n\n\ndef in_support_logits(P):\n    ### BEGIN SOLUTION\n    S = P > 0\n"
        "    logp = np.where(S, np.log(np.where(S, P, 1.0)), 0.0)\n    mean = logp.sum(0) / S.sum(0)\n"
        "    return np.where(S, logp - mean, 0.0)\n    ### END SOLUTION"),
    "entropy_lower_bound": (
        "The entropy lower bound",
        r"Write `entropy_lower_bound(P, pi)`: $\sum_j \pi_j H(p_j)$ with $H(p) = -\sum_z p(z)\log p(z)$ "
        r"(natural log, $0\log 0 = 0$) — the infimum of the NTP cross-entropy.",
        "import numpy as np\n\n\ndef entropy_lower_bound(P, pi):\n    ### BEGIN SOLUTION\n"
        "    plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)\n"
        "    return float(pi @ -plogp.sum(0))\n    ### END SOLUTION"),
    "ntp_loss": (
        "The NTP cross-entropy",
        r"Write `ntp_loss(L, P, pi)` (logits $L$: $V\times m$, one column per context): "
        r"$\sum_j \pi_j \sum_z p_j(z)\,(-\log\mathrm{softmax}(\ell_j)_z)$.",
        "import numpy as np\n\n\ndef ntp_loss(L, P, pi):\n    ### BEGIN SOLUTION\n"
        "    Z = L - L.max(0, keepdims=True)\n    logsm = Z - np.log(np.exp(Z).sum(0, keepdims=True))\n"
        "    return float(pi @ -(P * logsm).sum(0))\n    ### END SOLUTION"),
    "dare_rescale": (
        "DARE's rescaled delta",
        r"Write `dare_rescale(delta, keep, p)`: DARE drops each delta entry with probability $p$; given the "
        r"boolean mask `keep` of survivors, return the pruned delta with survivors rescaled by $1/(1-p)$.",
        "import numpy as np\n\n\ndef dare_rescale(delta, keep, p):\n    ### BEGIN SOLUTION\n"
        "    return np.where(keep, delta / (1 - p), 0.0)\n    ### END SOLUTION"),
    "darex_q": (
        "DAREx-q's analytical rescaling",
        r"Write `darex_q(Delta, X, p)` ($\Delta$: out×in, inputs $X$: b×in): the $q$ minimizing the expected "
        r"squared output change, $q^* = (1-p) + p\,B/A$ with $A = \sum_{b,i}(\sum_j \Delta_{ij}x_{bj})^2$ and "
        r"$B = \sum_{b,i,j}\Delta_{ij}^2 x_{bj}^2$.",
        "import numpy as np\n\n\ndef darex_q(Delta, X, p):\n    ### BEGIN SOLUTION\n"
        "    A = np.sum((X @ Delta.T) ** 2)\n    B = np.sum((X**2) @ (Delta.T**2))\n"
        "    return (1 - p) + p * B / A\n    ### END SOLUTION"),
    "jsd": (
        "The Jensen–Shannon divergence",
        r"Write `jsd(p, q)` for rows of distributions ($L\times V$): "
        r"$\tfrac12\mathrm{KL}(p\|m) + \tfrac12\mathrm{KL}(q\|m)$, $m = (p+q)/2$, in bits (base-2 logs, "
        r"$0\log 0 = 0$), one value per row.",
        "import numpy as np\n\n\ndef jsd(p, q):\n    ### BEGIN SOLUTION\n    m = (p + q) / 2\n\n"
        "    def kl(a, b):\n        safe = np.where(a > 0, a, 1.0)\n"
        "        return np.where(a > 0, a * np.log2(safe / np.where(a > 0, b, 1.0)), 0.0).sum(-1)\n\n"
        "    return 0.5 * kl(p, m) + 0.5 * kl(q, m)\n    ### END SOLUTION"),
    "mcl_from_probs": (
        "The MCL of a position",
        r"Write `mcl_from_probs(P, lengths, target, delta)`: row $i$ of $P$ is the next-token distribution "
        r"given the last `lengths[i]` tokens (increasing; the last row is the full context). Return the smallest "
        r"length whose top-1 token is `target` with top-1 − top-2 $\ge \delta$, or `None` unless the full "
        r"context itself qualifies.",
        "import numpy as np\n\n\ndef mcl_from_probs(P, lengths, target, delta):\n    ### BEGIN SOLUTION\n"
        "    top2 = np.sort(P, axis=1)[:, -2:]\n"
        "    ok = (P.argmax(1) == target) & (top2[:, 1] - top2[:, 0] >= delta)\n    if not ok[-1]:\n"
        "        return None\n    return lengths[int(np.argmax(ok))]\n    ### END SOLUTION"),
}
