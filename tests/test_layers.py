"""Input layers of the photometric networks."""

import numpy as np
import pytest
import torch

from sourceclf.models import PhotometricMLP, PiecewiseLinearEncoding


def test_piecewise_linear_encoding_values():
    x = np.arange(0, 9, dtype=np.float32)[:, None]  # quantile edges 0, 2, 4, 6, 8
    enc = PiecewiseLinearEncoding(1, n_bins=4).fit(x)
    np.testing.assert_allclose(enc.lower.numpy(), [[0, 2, 4, 6]])
    np.testing.assert_allclose(enc.width.numpy(), [[2, 2, 2, 2]])
    out = enc(torch.tensor([[-5.0], [0.0], [3.0], [5.0], [8.0], [100.0]])).numpy()
    np.testing.assert_allclose(out, [[0, 0, 0, 0],          # below the range
                                     [0, 0, 0, 0],
                                     [1, 0.5, 0, 0],        # halfway through bin 2
                                     [1, 1, 0.5, 0],
                                     [1, 1, 1, 1],
                                     [1, 1, 1, 1]])         # above the range


def test_piecewise_linear_encoding_collapsed_bins_are_steps():
    # Most radii of point sources are exactly zero: repeated quantiles.
    x = np.r_[np.zeros(80), np.linspace(0.1, 2, 20)].astype(np.float32)[:, None]
    enc = PiecewiseLinearEncoding(1, n_bins=5).fit(x)
    assert (enc.width.numpy()[0, :3] == 0).all()
    out = enc(torch.tensor([[-0.1], [0.0], [0.05], [2.0]])).numpy()
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out[0, :4], 0)       # below zero: nothing reached
    np.testing.assert_array_equal(out[1, :4], [1, 1, 1, 0])  # zero passes the steps at 0
    np.testing.assert_array_equal(out[3], 1)


def test_piecewise_linear_encoding_features_are_independent():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=500), 100 + 10 * rng.exponential(size=500)])
    enc = PiecewiseLinearEncoding(2, n_bins=8).fit(x)
    out = enc(torch.as_tensor(x, dtype=torch.float32)).numpy()
    assert out.shape == (500, 16)
    # Each feature's encoding sums to 8 times its empirical CDF (to within a bin).
    for j in range(2):
        cdf = (np.argsort(np.argsort(x[:, j])) + 0.5) / len(x)
        assert np.abs(out[:, 8 * j:8 * (j + 1)].sum(1) / 8 - cdf).max() < 1 / 8 + 0.01


def test_mlp_with_encoding_bins():
    net = PhotometricMLP(3, 2, hidden=(8,), encoding_bins=4)
    assert isinstance(net.standardize, PiecewiseLinearEncoding)
    assert net.net[0].in_features == 12
    net.standardize.fit(np.random.default_rng(0).normal(size=(50, 3)))
    assert net(torch.zeros(5, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match="encoding_bins needs standardize=True"):
        PhotometricMLP(3, 2, standardize=False, encoding_bins=4)


def test_encoded_model_round_trip(tmp_path):
    from sourceclf import classify, load_model, train
    from sourceclf.demo import demo_catalog

    table = demo_catalog(300, random_state=3)
    model = train(table, model="mlp", feature_set="margnet24", epochs=3,
                  config={"hidden": [16], "encoding_bins": 6}, random_state=0)
    enc = model.module.standardize
    assert isinstance(enc, PiecewiseLinearEncoding)
    assert not torch.equal(enc.lower[:, 1:], torch.zeros_like(enc.lower[:, 1:]))  # fitted
    path = model.save(tmp_path / "ple")
    again = load_model(path)
    torch.testing.assert_close(again.module.standardize.lower, enc.lower)
    torch.testing.assert_close(again.module.standardize.width, enc.width)
    a = classify(table[:50], model=model, confidence=None)
    b = classify(table[:50], model=str(path), confidence=None)
    np.testing.assert_array_equal(a["prob_star"], b["prob_star"])


def test_fused_encoding_and_first_layer_equal_the_explicit_form():
    rng = np.random.default_rng(2)
    x = np.column_stack([np.r_[np.zeros(150), rng.exponential(size=150)],  # collapsed bins
                         rng.normal(20, 1, size=300), rng.integers(0, 3, size=300)])
    enc = PiecewiseLinearEncoding(3, n_bins=6).fit(x)
    assert (enc.width == 0).any()
    layer = torch.nn.Linear(18, 7)
    probe = torch.as_tensor(np.r_[x, [[-1, 10, -5], [50, 30, 9]]], dtype=torch.float32)
    edges = torch.cat([enc.lower, (enc.lower[:, -1] + enc.width[:, -1])[:, None]], 1)
    probe = torch.cat([probe, edges.T])  # every edge itself, bins on both sides
    torch.testing.assert_close(enc.linear(probe, layer), layer(enc(probe)),
                               rtol=1e-5, atol=1e-5)
    # Gradients reach the layer's weights the same way.
    a = enc.linear(probe, layer).square().sum()
    ga = torch.autograd.grad(a, layer.weight)[0]
    b = layer(enc(probe)).square().sum()
    gb = torch.autograd.grad(b, layer.weight)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-3)  # float32 sums of 300 rows
    # Missing values stay missing.
    nan = enc.linear(torch.tensor([[np.nan, 20.0, 1.0]]), layer)
    assert torch.isnan(nan).all()


def test_encoded_mlp_uses_the_fused_path():
    net = PhotometricMLP(3, 2, hidden=(8,), encoding_bins=4)
    net.standardize.fit(np.random.default_rng(0).normal(size=(50, 3)))
    net.eval()  # no dropout
    x = torch.randn(20, 3)
    torch.testing.assert_close(net(x), net.net(net.standardize(x)), rtol=1e-5, atol=1e-5)


def test_fused_path_saturates_infinities_and_keeps_nan():
    enc = PiecewiseLinearEncoding(2, n_bins=4).fit(np.random.default_rng(3).normal(size=(100, 2)))
    layer = torch.nn.Linear(8, 3)
    x = torch.tensor([[np.inf, -np.inf], [1e30, -1e30], [np.nan, 0.0]], dtype=torch.float32)
    fused, explicit = enc.linear(x, layer), layer(enc(x))
    torch.testing.assert_close(fused[:2], explicit[:2])
    torch.testing.assert_close(fused[0], fused[1])  # infinities encode as the extremes
    assert torch.isnan(fused[2]).all() and torch.isnan(explicit[2]).all()


def test_fused_path_is_exact_for_narrow_bins_far_from_zero():
    # Bins 1e-4 wide around 1e4: the bin's position must be taken relative to its edge.
    x = (1e4 + 1e-2 * np.random.default_rng(4).random(size=(200, 1))).astype(np.float32)
    enc = PiecewiseLinearEncoding(1, n_bins=8).fit(x)
    layer = torch.nn.Linear(8, 4)
    probe = torch.as_tensor(x[:50])
    torch.testing.assert_close(enc.linear(probe, layer), layer(enc(probe)),
                               rtol=1e-5, atol=1e-5)


def test_encoding_input_errors():
    enc = PiecewiseLinearEncoding(2, n_bins=4)
    with pytest.raises(ValueError, match=r"non-finite values in column\(s\) 1 of the training"):
        enc.fit(np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="the layer has 6 inputs, the encoding 2 x 4 = 8"):
        enc.linear(torch.zeros(1, 2), torch.nn.Linear(6, 2))
    with pytest.raises(ValueError, match="encoding_bins and log_columns exclude each other"):
        PhotometricMLP(3, 2, encoding_bins=4, log_columns=[1])


def test_encoding_before_a_variational_output_layer():
    # With no hidden layer the first layer is the variational one: the explicit path.
    from sourceclf.models import BayesianPhotometricMLP

    net = BayesianPhotometricMLP(3, 2, hidden=(), encoding_bins=4).eval()
    net.standardize.fit(np.random.default_rng(0).normal(size=(50, 3)))
    assert net(torch.zeros(5, 3)).shape == (5, 2)


@pytest.mark.parametrize("config, message", [
    ({"hiddne": [4]}, "unexpected keyword argument 'hiddne'"),
    ({"encoding_bins": 4, "log_columns": [1]}, "encoding_bins and log_columns exclude"),
])
def test_bad_architecture_config_is_one_clear_error(config, message):
    from sourceclf import train
    from sourceclf.demo import demo_catalog
    from sourceclf.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match=rf"architecture 'mlp': bad config: .*{message}"):
        train(demo_catalog(60), model="mlp", config=config, epochs=1)
