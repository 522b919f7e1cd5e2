"""Losses on logits laid out as rows (n×k torch tensors, as in ``torch.nn``), mean-reduced."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_i [log Σ_c exp z_ic − z_{i,y_i}] for logits (n×k) and integer labels y (n,)."""
    if logits.ndim != 2 or y.ndim != 1 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"logits must be n×k and y length n; got {tuple(logits.shape)} and {tuple(y.shape)}")
    return F.cross_entropy(logits, y)


LOSSES = {"ce": cross_entropy}


def get_loss(loss):
    """A loss callable from its name (one of ``LOSSES``) or the callable itself."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is unknown: allowed {sorted(LOSSES)} or a callable(logits, y)")
    return LOSSES[loss]
