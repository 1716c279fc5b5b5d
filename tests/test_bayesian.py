"""Variational layers, Monte Carlo predictions and the shipped Bayesian MargNet."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sourceclf import classify
from sourceclf.exceptions import InvalidInputError
from sourceclf.models import ModelCard, load_model
from sourceclf.models.bayesian import (BayesianClassifier, BayesianMargNetANN, VariationalLinear,
                                       elbo_loss, kl_divergence, mc_summary, sampled_weights)

NAME = "bayesian-margnet-photometry-sg"


def _tiny(rho_init=-1.0, seed=0):
    torch.manual_seed(seed)
    module = BayesianMargNetANN(24, 2, hidden=(16, 8), rho_init=rho_init, dropout=0.0)
    card = ModelCard(name="tiny-bayes", architecture="bayesian-margnet-ann",
                     config={"n_features": 24, "n_classes": 2, "hidden": [16, 8],
                             "rho_init": rho_init, "dropout": 0.0},
                     feature_set="margnet24", classes=["GALAXY", "STAR"])
    return BayesianClassifier(module, card)


def test_kl_matches_torch_distributions():
    torch.manual_seed(1)
    layer = VariationalLinear(5, 3, prior_scale=0.7)
    with torch.no_grad():
        layer.weight_rho.uniform_(-3, 0)
        layer.bias_rho.uniform_(-3, 0)
        layer.prior_mu.fill_(0.2)
    q_w = torch.distributions.Normal(layer.weight_mu, layer.weight_sigma)
    q_b = torch.distributions.Normal(layer.bias_mu, layer.bias_sigma)
    prior = torch.distributions.Normal(layer.prior_mu, layer.prior_log_scale.exp())
    expected = (torch.distributions.kl_divergence(q_w, prior).sum()
                + torch.distributions.kl_divergence(q_b, prior).sum())
    assert torch.allclose(layer.kl(), expected, rtol=1e-5)
    module = torch.nn.Sequential(layer, torch.nn.ReLU(), VariationalLinear(3, 2))
    assert torch.allclose(kl_divergence(module), layer.kl() + module[2].kl())
    assert float(kl_divergence(torch.nn.Linear(2, 2))) == 0.0
    assert torch.allclose(layer.weight_sigma, F.softplus(layer.weight_rho))


def test_modes_of_the_layer():
    torch.manual_seed(2)
    layer = VariationalLinear(4, 3, rho_init=-1.0)
    x = torch.randn(6, 4)
    layer.eval()
    assert torch.equal(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))
    layer.train()
    draws = torch.stack([layer(x) for _ in range(4000)]).detach()
    var = F.linear(x * x, layer.weight_sigma ** 2, layer.bias_sigma ** 2).detach()
    assert torch.allclose(draws.mean(0), F.linear(x, layer.weight_mu, layer.bias_mu),
                          atol=0.06)
    assert torch.allclose(draws.var(0), var, rtol=0.12)
    layer.eval()
    gen = torch.Generator().manual_seed(0)
    with sampled_weights(layer, 5, gen):
        assert layer(x).shape == (5, 6, 3)
    assert layer(x).shape == (6, 3)


def test_elbo_loss_weights_kl_by_training_size():
    torch.manual_seed(3)
    module = BayesianMargNetANN(24, 2, hidden=(8,))
    logits, targets = torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1])
    expected = F.cross_entropy(logits, targets) + kl_divergence(module) / 1000
    assert torch.allclose(elbo_loss()(module, logits, targets, 1000), expected)
    fixed = F.cross_entropy(logits, targets) + 1e-3 * kl_divergence(module)
    assert torch.allclose(elbo_loss(1e-3)(module, logits, targets, 10), fixed)


def test_mc_summary_by_hand():
    probs = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.7, 0.3], [0.5, 0.5]]])
    mean, cols = mc_summary(probs, ["GALAXY", "STAR"])
    assert np.allclose(mean, [[0.8, 0.2], [0.5, 0.5]])
    assert np.allclose(cols["prob_galaxy_std"], [0.1, 0.0])

    def h(p):
        return -np.sum(p * np.log(p), axis=-1)

    assert np.allclose(cols["pred_entropy"], h(mean))
    assert np.allclose(cols["pred_mutual_info"],
                       [h(np.array([0.8, 0.2])) - (h(np.array([0.9, 0.1]))
                                                   + h(np.array([0.7, 0.3]))) / 2, 0.0])


def test_mc_predictions_are_reproducible_and_batch_independent():
    clf = _tiny()
    x = np.random.default_rng(0).normal(size=(300, 24)).astype(np.float32)
    a, ea = clf.predict_proba_mc(x, n_samples=25, random_state=4, batch_size=7)
    b, eb = clf.predict_proba_mc(x, n_samples=25, random_state=4, batch_size=1000)
    c, _ = clf.predict_proba_mc(x, n_samples=25, random_state=5)
    assert np.allclose(a, b, atol=1e-6, rtol=0)
    for k in ea:
        assert np.allclose(ea[k], eb[k], atol=1e-6, rtol=0)
    assert not np.allclose(a, c, atol=1e-4)
    assert sorted(ea) == ["pred_entropy", "pred_mutual_info", "prob_galaxy_std",
                          "prob_star_std"]
    assert np.allclose(a.sum(1), 1)
    assert (ea["pred_mutual_info"] >= 0).all()
    assert (ea["pred_mutual_info"] <= ea["pred_entropy"] + 1e-12).all()
    assert (ea["pred_entropy"] <= np.log(2) + 1e-12).all()
    assert ea["prob_galaxy_std"].max() > 1e-3  # rho=-1: the weights really vary
    # independent of torch's global random state
    torch.manual_seed(123)
    d, _ = clf.predict_proba_mc(x, n_samples=25, random_state=4)
    assert np.allclose(a, d, atol=1e-6, rtol=0)
    with pytest.raises(InvalidInputError, match="n_samples"):
        clf.predict_proba_mc(x, n_samples=0)
    empty, cols = clf.predict_proba_mc(x[:0], n_samples=3)
    assert empty.shape == (0, 2) and cols["pred_entropy"].shape == (0,)


def test_posterior_mean_without_mc_and_save_load(tmp_path):
    clf = _tiny()
    x = np.random.default_rng(1).normal(size=(50, 24)).astype(np.float32)
    module = clf.module
    with torch.no_grad():
        hidden = module.net[:-1](module.standardize(torch.as_tensor(x)))
        head = module.net[-1]
        expected = torch.softmax(F.linear(hidden, head.weight_mu, head.bias_mu), 1).numpy()
    assert np.allclose(clf.predict_proba(x), expected, atol=1e-6)
    clf.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert isinstance(back, BayesianClassifier) and back.card.kind == "torch-bayesian"
    a, _ = clf.predict_proba_mc(x, n_samples=10, random_state=0)
    b, _ = back.predict_proba_mc(x, n_samples=10, random_state=0)
    assert np.array_equal(a, b)


def test_training_with_the_elbo_moves_the_posterior():
    from sourceclf.training import fit_module

    clf = _tiny(rho_init=-5.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 24)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(np.int64)
    head = clf.module.net[-1]
    sigma0 = head.weight_sigma.detach().clone()
    history = fit_module(clf.module, x[:300], y[:300], x[300:], y[300:], epochs=8,
                         batch_size=64, lr=1e-2, loss_fn=elbo_loss(), device="cpu")
    assert np.isfinite(history["train_loss"]).all()
    assert not torch.allclose(head.weight_sigma, sigma0)
    assert history["val_accuracy"][history["best_epoch"]] > 0.8


def test_classify_with_mc_samples(demo):
    out = classify(demo, model=NAME, mc_samples=20, random_state=1)
    again = classify(demo, model=NAME, mc_samples=20, random_state=1, batch_size=5)
    other = classify(demo, model=NAME, mc_samples=20, random_state=2)
    for col in ("prob_galaxy_std", "prob_star_std", "pred_entropy", "pred_mutual_info"):
        assert col in out.colnames
        assert np.allclose(out[col], again[col], atol=1e-6)
    assert out.meta["CLFMC"] == 20
    assert not np.array_equal(np.asarray(out["prob_star"]), np.asarray(other["prob_star"]))
    assert "pred_set" in out.colnames
    plain = classify(demo, model=NAME, confidence=None)
    clf = load_model(NAME)
    from sourceclf.features import get_feature_set

    x = get_feature_set("margnet24").compute(demo).values
    assert np.allclose(plain["prob_star"], clf.predict_proba(x)[:, 1], atol=1e-6)
    diff = np.abs(np.asarray(plain["prob_star"]) - np.asarray(out["prob_star"]))
    assert diff.mean() < 0.01 and diff.max() < 0.2  # MC mean near the posterior mean
    with pytest.raises(InvalidInputError, match="not Bayesian"):
        classify(demo, model="margnet-photometry-sg", mc_samples=5)


def test_shipped_bayesian_heldout(shared_data):
    from sourceclf.features import get_feature_set
    from sourceclf.models import model_card
    from sourceclf.train_recipes import read_recipe_table, recipe_split

    card = model_card(NAME)
    assert card.auto_priority < model_card("margnet-photometry-sg").auto_priority
    table = read_recipe_table(NAME, shared_data)
    test = table[recipe_split(table)["test"]]
    out = classify(test, model=NAME, confidence=None)
    accuracy = np.mean(np.asarray(out["pred_class"]) == np.asarray(test["class"]))
    assert accuracy == pytest.approx(card.metrics["test"]["accuracy"], abs=2e-4)
    twin = model_card("margnet-photometry-sg").metrics["test"]["accuracy"]
    assert accuracy > twin - 0.005  # as good as its non-Bayesian twin
    # The fitted posterior is wide enough for the Monte Carlo spread to mean something.
    _, extra = load_model(NAME).predict_proba_mc(
        get_feature_set("margnet24").compute(test).values, n_samples=30, random_state=0)
    assert np.percentile(extra["prob_star_std"], 90) > 0.01
    assert extra["pred_mutual_info"].mean() > 1e-3


def test_train_bayesian_architecture_gives_bayesian_classifier():
    import sourceclf
    from sourceclf.demo import demo_catalog
    from sourceclf.models.bayesian import BayesianClassifier

    table = demo_catalog(300, random_state=9)
    model = sourceclf.train(table, model="bayesian-mlp", feature_set="ugriz",
                            config={"hidden": [16]}, epochs=5, device="cpu", random_state=0)
    assert isinstance(model, BayesianClassifier)
    assert model.card.kind == "torch-bayesian"
    out = sourceclf.classify(table[:10], model=model, mc_samples=5, confidence=None)
    assert "pred_mutual_info" in out.colnames
