import numpy as np
import pytest
import torch

from nclab.losses import LogitAdjustedCE, cross_entropy, make_loss

Z = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.1, 2.0], [-1.0, 4.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([0, 2, 1, 1])
SIZES = [30, 10, 2]


def _manual(z, y, omega, Delta, iota, delta):
    """Direct per-example loop of −ω_y log softmax(δ_y Δ⊙z + ι)_y."""
    total = 0.0
    for zi, yi in zip(z.numpy(), y.numpy(), strict=True):
        a = delta[yi] * Delta * zi + iota
        total += -omega[yi] * (a[yi] - np.log(np.exp(a).sum()))
    return total / len(y)


@pytest.mark.parametrize("kind", ["ce", "wce", "la", "cdt", "ldt", "vs"])
def test_family_matches_direct_formula(kind):
    loss = make_loss(kind, SIZES, gamma=0.7, tau=1.3)
    p = loss.arrays(3)
    assert float(loss(Z, Y)) == pytest.approx(_manual(Z, Y, **p), rel=1e-12)


def test_reduces_to_ce_at_defaults():
    assert float(LogitAdjustedCE()(Z, Y)) == pytest.approx(float(cross_entropy(Z, Y)))
    for kind in ("cdt", "ldt", "vs"):  # γ = 0: Δ = δ = 1
        assert float(make_loss(kind, SIZES, gamma=0.0, tau=0.0)(Z, Y)) == pytest.approx(float(cross_entropy(Z, Y)))
    assert float(make_loss("la", SIZES, tau=0.0)(Z, Y)) == pytest.approx(float(cross_entropy(Z, Y)))


def test_step_parameterization_ratio_is_R_to_gamma():
    loss = make_loss("cdt", [50, 50, 5, 5], gamma=0.5)
    assert loss.Delta[0] / loss.Delta[-1] == pytest.approx(10**0.5)
    assert loss.Delta.mean() == pytest.approx(1.0)


def test_gradients_flow_and_work_on_a_torch_model():
    model = torch.nn.Linear(4, 3, bias=False).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    out = make_loss("vs", SIZES, gamma=1.0)(model(x), torch.tensor([0, 1, 2, 0, 1]))
    out.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="delta="):
        LogitAdjustedCE(delta=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="Delta="):
        LogitAdjustedCE(Delta=np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="different lengths"):
        LogitAdjustedCE(Delta=np.ones(3), iota=np.zeros(2))
    with pytest.raises(ValueError, match="k=3 classes but the logits have k=2"):
        make_loss("cdt", SIZES, gamma=1.0)(Z[:, :2], torch.tensor([0, 1, 1, 0]))
    with pytest.raises(ValueError, match="kind='focal'"):
        make_loss("focal", SIZES)
    with pytest.raises(ValueError, match="gamma=nan"):
        make_loss("cdt", SIZES, gamma=float("nan"))
