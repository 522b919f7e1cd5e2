import numpy as np
import pytest
import torch

from nclab.frames import simplex_etf
from nclab.labels import labels_from_sizes
from nclab.losses import supcon
from nclab.metrics import class_mean_gram, gram_distance
from nclab.prototypes import ProtoSupCon, ce_limit_embeddings, fixed_classifier_ce, prototype_set, realize_gram
from nclab.ufm import train_sphere_ufm

Y = torch.as_tensor(labels_from_sizes([5, 5, 2, 2]))
H = torch.nn.functional.normalize(torch.randn(14, 6, generator=torch.Generator().manual_seed(0),
                                              dtype=torch.float64), dim=1)


@pytest.mark.parametrize("anchors", [False, True])
@pytest.mark.parametrize("nw", [1, 3])
def test_equals_supcon_on_concatenated_batch(anchors, nw):
    W = prototype_set("etf", 4, 6)
    Xall = torch.cat([H, torch.as_tensor(W).repeat(nw, 1)])
    yall = torch.cat([Y, torch.arange(4).repeat(nw)])
    mask = torch.cat([torch.ones(14, dtype=torch.bool), torch.full((4 * nw,), anchors)])
    assert float(ProtoSupCon(W, nw, 0.7, anchors)(H, Y)) == pytest.approx(float(supcon(Xall, yall, 0.7, anchors=mask)),
                                                                          rel=1e-12)


def test_nw_zero_is_plain_supcon_and_limit_is_fixed_classifier_ce():
    W = prototype_set("of", 4, 6)
    assert float(ProtoSupCon(W, 0, 1.0)(H, Y)) == pytest.approx(float(supcon(H, Y, 1.0)))
    ce = float(fixed_classifier_ce(H, Y, W, 1.0))
    err = [abs(float(ProtoSupCon(W, nw, 1.0)(H, Y)) - 14 * np.log(nw) - ce) for nw in (100, 1000, 10000)]
    assert err[0] > err[1] > err[2] and err[2] < 1e-2
    assert err[1] * 1000 == pytest.approx(err[2] * 10000, rel=0.1)  # O(1/n_w)


def test_prototype_sets_and_realize_gram():
    W = prototype_set("etf", 5, 7)
    np.testing.assert_allclose(W @ W.T, simplex_etf(5), atol=1e-12)
    np.testing.assert_allclose(prototype_set("of", 3) @ prototype_set("of", 3).T, np.eye(3), atol=1e-12)
    G = np.array([[1, .5, 0], [.5, 1, 0], [0, 0, 1]])
    Wg = prototype_set("gram", 3, 4, gram=G)
    np.testing.assert_allclose(Wg @ Wg.T, G, atol=1e-12)
    with pytest.raises(ValueError, match="not positive semidefinite"):
        realize_gram([[1, 2], [2, 1]])
    with pytest.raises(ValueError, match="unit diagonal"):
        realize_gram([[2, 0], [0, 1]])
    with pytest.raises(ValueError, match="symmetric"):
        realize_gram([[1, 0.3], [0.1, 1]])
    with pytest.raises(ValueError, match="d=2"):
        realize_gram(np.eye(3), d=2)
    with pytest.raises(ValueError, match="kind='icosahedron'"):
        prototype_set("icosahedron", 4)


def test_ce_limit_of_prototypes_is_centred_frame_and_relu_keeps_of():
    W = prototype_set("of", 4, 6)
    Hc = ce_limit_embeddings(W, 1.0)
    assert gram_distance(Hc @ Hc.T, simplex_etf(4)) < 1e-8
    np.testing.assert_allclose(np.sum(Hc * W, axis=1), np.sqrt(0.75), atol=1e-8)
    Hr = ce_limit_embeddings(W, 1.0, nonneg=True)
    assert gram_distance(Hr @ Hr.T, np.eye(4)) < 1e-8
    assert gram_distance(Hr @ Hr.T, simplex_etf(4)) > 0.5  # with ReLU the centred-frame check fails


def test_of_prototypes_without_relu_stay_off_of_and_relu_breaks_it():
    # the notebook's of_prototypes_without_relu_not_of (d(class means, OF) > 0.4 at n_w = 256) on the trained UFM;
    # the broken input — non-negative embeddings — gives the OF, so the same comparison fails
    y = labels_from_sizes([16, 16, 4, 4])
    W = prototype_set("of", 4, 8)
    d = {relu: gram_distance(class_mean_gram(train_sphere_ufm(y, d=8, loss=ProtoSupCon(W, 256, 1.0), nonneg=relu,
                                                             epochs=300, progress=False).H, y), np.eye(4))
         for relu in (False, True)}
    assert d[False] > 0.4 and d[False] == pytest.approx(gram_distance(simplex_etf(4), np.eye(4)), abs=0.03)
    assert d[True] < 0.05


def test_many_etf_prototypes_give_etf_under_imbalance():
    y = labels_from_sizes([16, 16, 4, 4])
    W = prototype_set("etf", 4, 8)
    far = class_mean_gram(train_sphere_ufm(y, d=8, loss=ProtoSupCon(W, 0, 1.0), epochs=300, progress=False).H, y)
    near = class_mean_gram(train_sphere_ufm(y, d=8, loss=ProtoSupCon(W, 256, 1.0), epochs=300, progress=False).H, y)
    assert gram_distance(near, simplex_etf(4)) < 0.03 < 0.3 < gram_distance(far, simplex_etf(4))


def test_bad_inputs():
    W = prototype_set("etf", 4, 6)
    with pytest.raises(ValueError, match="n_w=-1"):
        ProtoSupCon(W, -1)
    with pytest.raises(ValueError, match="tau=0"):
        ProtoSupCon(W, 2, 0.0)
    with pytest.raises(ValueError, match="unit-norm"):
        ProtoSupCon(2 * W, 2)
    with pytest.raises(ValueError, match="d=6 but features have d=3"):
        ProtoSupCon(W, 2)(H[:, :3], Y)
