"""Variational layers, Monte Carlo predictions and the shipped Bayesian MargNet."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import blob_stamps
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


def test_mc_samples_in_bf16_and_compiled(demo):
    """Monte Carlo passes run under bf16 autocast and through torch.compile."""
    import warnings

    from sourceclf.classification import SourceclfWarning

    clf = load_model(NAME)
    fp32 = classify(demo, model=clf, mc_samples=8, confidence=None, device="cpu")
    bf16 = classify(demo, model=clf, mc_samples=8, confidence=None, device="cpu",
                    precision="bf16")
    assert bf16.meta["CLFPREC"] == "bf16" and bf16.meta["CLFMC"] == 8
    ok = ~np.ma.getmaskarray(fp32["pred_class"])
    # bf16 keeps about 3 significant digits: same tolerance as test_classify.
    for col in ("prob_star", "prob_star_std", "pred_entropy"):
        assert np.abs(np.ma.getdata(fp32[col])[ok] - np.ma.getdata(bf16[col])[ok]).max() < 0.05
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("ignore", "`torch.jit.script_method` is deprecated",
                                DeprecationWarning)
        warnings.simplefilter("always", SourceclfWarning)
        compiled = classify(demo, model=clf, mc_samples=8, confidence=None, device="cpu",
                            compile=True)
    failed = [w for w in caught if issubclass(w.category, SourceclfWarning)]
    assert compiled.meta["CLFCOMP"] is (not failed)
    for col in ("prob_star", "prob_star_std", "pred_mutual_info"):
        np.testing.assert_allclose(np.ma.getdata(compiled[col]), np.ma.getdata(fp32[col]),
                                   atol=1e-5)
    with pytest.raises(InvalidInputError, match="invalid precision"):
        clf.predict_proba_mc(np.zeros((2, 24)), n_samples=2, precision="half")


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


# Bayesian image models: MargNet's stacked ensemble and MargFormer ---------------------

TINY_IMAGE = {
    "bayesian-margnet-ensemble": {"ann": {"hidden": [16, 8]},
                                  "cnn": {"width": 0.0625, "dense": [16]}, "rho_init": -2.0},
    "bayesian-margformer": {"dim": 16, "depth": 1, "heads": 2, "token_layers": 0,
                            "feature_hidden": [16], "rho_init": -2.0},
}
TWINS = {"bayesian-margnet-ensemble": "margnet-ensemble", "bayesian-margformer": "margformer"}


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blob_catalog():
    from sourceclf.demo import demo_catalog

    images, y = blob_stamps(200, random_state=1, jitter=0.0)
    table = demo_catalog(200, random_state=4)
    table["class"] = np.where(y == 1, "STAR", "GALAXY")
    return table, images


def _seq(head):
    """The `torch.nn.Sequential` of a head (MargFormer's head, or the ensemble's head.net)."""
    return head.net if hasattr(head, "net") else head


def _head_layer(module):
    return _seq(module.head)[-1]


@pytest.mark.parametrize("name", sorted(TINY_IMAGE))
def test_bayesian_image_architectures(name, one_thread):
    from sourceclf.models import BayesianMargFormer, BayesianMargNetStack, build_architecture
    from sourceclf.models.bayesian import variational_layers

    torch.manual_seed(0)
    cfg = {"n_classes": 3, **TINY_IMAGE[name]}
    module = build_architecture(name, cfg)
    assert isinstance(module, {"bayesian-margformer": BayesianMargFormer,
                               "bayesian-margnet-ensemble": BayesianMargNetStack}[name])
    # Only the head's classification layer is variational ...
    assert variational_layers(module) == [_head_layer(module)]
    assert _head_layer(module).out_features == 3
    # ... and the rest is the published network, parameter for parameter.
    twin = build_architecture(TWINS[name], {k: v for k, v in cfg.items() if k != "rho_init"})
    ours = {k: v.shape for k, v in module.state_dict().items()}
    theirs = {k: v.shape for k, v in twin.state_dict().items()}
    last = [k for k in theirs if k not in ours]
    assert sorted(last) == sorted(k for k in theirs if k.startswith("head.")
                                  and k.rsplit(".", 2)[-2] == str(len(_seq(twin.head)) - 1))
    assert all(ours[k] == s for k, s in theirs.items() if k not in last)
    feats, images = torch.randn(6, 24), torch.randn(6, 5, 32, 32)
    module.train()
    logits = module(feats, images)
    assert logits.shape == (6, 3) and torch.isfinite(logits).all()
    (logits.sum() + kl_divergence(module)).backward()
    assert _head_layer(module).weight_rho.grad is not None
    module.eval()
    with torch.no_grad():
        a, b = module(feats, images), module(feats, images)
        with sampled_weights(module, 4, torch.Generator().manual_seed(0)):
            draws = module(feats, images)
    assert torch.equal(a, b)  # posterior mean in evaluation mode
    assert draws.shape == (4, 6, 3) and not torch.allclose(draws[0], draws[1])


def test_bayesian_stack_with_a_psf_aware_cnn(one_thread):
    # The stack reads its CNN member's PSF widths from feature columns, as margnet-sgq does.
    from sourceclf.models import build_architecture

    torch.manual_seed(0)
    cfg = {"n_classes": 3, "ann": {"hidden": [8]}, "head": 4,
           "cnn": {"width": 0.0625, "dense": [8], "psf_inputs": 5},
           "cnn_psf_columns": [2, 6, 10, 14, 18], "cnn_psf_scale": [1.0, 1.0, 2.0, 1.0, 1.0]}
    module = build_architecture("bayesian-margnet-ensemble", cfg).eval()
    twin = build_architecture("margnet-ensemble", cfg)
    assert module.cnn_psf_columns.tolist() == twin.cnn_psf_columns.tolist()
    feats = torch.rand(3, 24) + 1.0
    assert torch.equal(module.cnn_psf_widths(feats)[:, 2], 2.0 * feats[:, 10])
    with torch.no_grad():
        assert module(feats, torch.randn(3, 5, 32, 32)).shape == (3, 3)


@pytest.fixture(scope="module")
def trained(blob_catalog, one_thread):
    """Each Bayesian image model trained by sourceclf.train, with its loss calls recorded."""
    import sourceclf
    from sourceclf.models import bayesian

    table, images = blob_catalog
    models = {}
    for name in sorted(TINY_IMAGE):
        calls = []
        real = bayesian.elbo_loss

        def spy(kl_weight=None, calls=calls, real=real):
            inner = real(kl_weight)

            def loss_fn(module, logits, targets, n_train):
                loss = inner(module, logits, targets, n_train)
                expected = (F.cross_entropy(logits, targets)
                            + kl_divergence(module) / n_train).detach()
                calls.append((module, n_train, float(loss.detach()), float(expected),
                              float(kl_divergence(module).detach())))
                return loss

            return loss_fn

        bayesian.elbo_loss = spy
        try:
            clf = sourceclf.train(table, images, model=name, config=TINY_IMAGE[name],
                                  epochs=3, batch_size=32, patience=3, lr=1e-2,
                                  device="cpu", random_state=0)
        finally:
            bayesian.elbo_loss = real
        models[name] = (clf, calls)
    return models


@pytest.mark.parametrize("name", sorted(TINY_IMAGE))
def test_image_models_train_with_the_elbo(trained, name):
    clf, calls = trained[name]
    assert isinstance(clf, BayesianClassifier) and clf.card.kind == "torch-bayesian"
    assert clf.card.architecture == name and clf.card.uses_images
    assert "KL" in clf.card.training["loss"]
    assert calls
    # Every training step's loss is the hand-computed negative ELBO per row, with a
    # nonzero KL term.
    for _, _, loss, expected, kl in calls:
        assert loss == pytest.approx(expected, rel=1e-5)
        assert kl > 0
    modules = {id(c[0]) for c in calls}
    if name == "bayesian-margnet-ensemble":
        # Only the head minimises the ELBO (the members use cross-entropy), with the KL
        # weighted by one over the rows the head is fitted on (75% of the validation split).
        assert modules == {id(clf.module.head)}
        (n_head,) = {c[1] for c in calls}
        assert 0.6 < n_head / clf.card.training["n_validation"] < 0.9
    else:
        assert modules == {id(clf.module)}
        assert {c[1] for c in calls} == {clf.card.training["n_train"]}
    # The posterior widths were fitted after training (sigma moved from softplus(-2)).
    sigma = _head_layer(clf.module).weight_sigma.detach()
    assert not torch.allclose(sigma, F.softplus(torch.tensor(-2.0)).expand_as(sigma))


@pytest.mark.parametrize("name", sorted(TINY_IMAGE))
def test_image_models_mc_reproducible_and_round_trip(trained, blob_catalog, name, tmp_path):
    from sourceclf.features import get_feature_set

    clf, _ = trained[name]
    table, images = blob_catalog
    x = get_feature_set("margnet24").compute(table[:40]).values
    a, ea = clf.predict_proba_mc(x, images[:40], n_samples=12, random_state=3)
    b, eb = clf.predict_proba_mc(x, images[:40], n_samples=12, random_state=3, batch_size=7)
    c, _ = clf.predict_proba_mc(x, images[:40], n_samples=12, random_state=4)
    # Image networks: the batch size changes the last bits only (some of their CPU
    # kernels depend on a row's place in the batch; see TorchClassifier.predict_proba).
    assert np.allclose(a, b, atol=1e-6, rtol=0)
    for k in ea:
        assert np.allclose(ea[k], eb[k], atol=1e-6, rtol=0)
    assert np.allclose(clf.predict_proba(x, images[:40], batch_size=3),
                       clf.predict_proba(x, images[:40], batch_size=40), atol=1e-6, rtol=0)
    assert not np.allclose(a, c, atol=1e-6)
    assert (ea["prob_star_std"] > 0).all() and ea["prob_star_std"].max() > 1e-3
    assert (ea["pred_mutual_info"] > 0).any()
    clf.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert isinstance(back, BayesianClassifier) and back.card.kind == "torch-bayesian"
    d, ed = back.predict_proba_mc(x, images[:40], n_samples=12, random_state=3)
    assert np.array_equal(a, d)
    for k in ea:
        assert np.array_equal(ea[k], ed[k])
    assert np.array_equal(clf.predict_proba(x, images[:40]), back.predict_proba(x, images[:40]))


@pytest.mark.parametrize("name", sorted(TINY_IMAGE))
def test_classify_image_model_with_mc_samples(trained, blob_catalog, name):
    clf, _ = trained[name]
    table, images = blob_catalog
    out = classify(table[:30], images[:30], model=clf, mc_samples=8, random_state=1)
    again = classify(table[:30], images[:30], model=clf, mc_samples=8, random_state=1,
                     batch_size=4)
    other = classify(table[:30], images[:30], model=clf, mc_samples=8, random_state=2)
    for col in ("prob_galaxy", "prob_star", "prob_galaxy_std", "prob_star_std",
                "pred_entropy", "pred_mutual_info"):
        assert col in out.colnames
        assert np.allclose(out[col], again[col], atol=1e-6)
    assert not np.allclose(out["prob_star"], other["prob_star"], atol=1e-6)
    assert out.meta["CLFMC"] == 8 and "pred_set" in out.colnames
    assert np.allclose(np.asarray(out["prob_galaxy"]) + np.asarray(out["prob_star"]), 1,
                       atol=1e-5)


def test_fit_posterior_scales_on_image_networks(blob_catalog, one_thread, monkeypatch):
    """The widths of an image network fit on cached head inputs as on full passes."""
    from sourceclf.features import get_feature_set
    from sourceclf.models import bayesian, build_architecture

    table, images = blob_catalog
    x = get_feature_set("margnet24").compute(table[:64]).values
    y = (np.asarray(table["class"][:64]) == "STAR").astype(int)
    torch.manual_seed(0)
    module = build_architecture("bayesian-margformer",
                                {"n_classes": 2, **TINY_IMAGE["bayesian-margformer"]})
    module.fit_image_normalisation(images)
    module.standardize.fit(x)
    module.eval()
    twin = build_architecture("bayesian-margformer",
                              {"n_classes": 2, **TINY_IMAGE["bayesian-margformer"]})
    twin.load_state_dict(module.state_dict())
    twin.eval()
    with torch.no_grad():
        before = module(torch.as_tensor(x), torch.as_tensor(images[:64]))
    fast = bayesian.fit_posterior_scales(module, x, y, images=images[:64], epochs=5,
                                         batch_size=16)
    monkeypatch.setattr(bayesian, "_output_layer_inputs", lambda *args: None)
    slow = bayesian.fit_posterior_scales(twin, x, y, images=images[:64], epochs=5,
                                         batch_size=16)
    assert np.allclose(fast, slow, rtol=1e-4)
    assert torch.allclose(module.head[-1].weight_rho, twin.head[-1].weight_rho, atol=1e-5)
    assert not torch.allclose(module.head[-1].weight_rho, torch.tensor(-2.0))
    with torch.no_grad():  # the posterior mean (and so predict_proba) is unchanged
        assert torch.equal(before, module(torch.as_tensor(x), torch.as_tensor(images[:64])))
    assert not module.training
    assert all(p.requires_grad for p in module.parameters())
    with pytest.raises(InvalidInputError, match="features or images"):
        bayesian.fit_posterior_scales(module, None, y)


def test_mc_predictions_are_thread_safe():
    # Four threads classifying with one loaded model, each with its own seed, give
    # what each gives alone: the weight draws belong to the call, not to the module.
    from concurrent.futures import ThreadPoolExecutor

    clf = _tiny()
    x = np.random.default_rng(7).normal(size=(1500, 24)).astype(np.float32)
    seeds = [0, 1, 2, 3] * 3
    alone = {s: clf.predict_proba_mc(x, n_samples=16, random_state=s, batch_size=37)
             for s in set(seeds)}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: clf.predict_proba_mc(
            x, n_samples=16, random_state=s, batch_size=37), seeds))
    for s, (proba, cols) in zip(seeds, together):
        assert np.array_equal(proba, alone[s][0]), f"seed {s}"
        for k in cols:
            assert np.array_equal(cols[k], alone[s][1][k])
    # Posterior-mean predictions in one thread are untouched by draws in another.
    mean = clf.predict_proba(x)
    with ThreadPoolExecutor(2) as pool:
        mc = pool.submit(lambda: [clf.predict_proba_mc(x, n_samples=16, batch_size=37)
                                  for _ in range(3)])
        plain = [pool.submit(clf.predict_proba, x, batch_size=37) for _ in range(3)]
        mc.result()
        assert all(np.array_equal(p.result(), mean) for p in plain)


@pytest.mark.parametrize("threads", [1, 4])
def test_mc_predictions_do_not_depend_on_batch_size(threads, monkeypatch):
    # On the CPU, batches are padded to whole blocks of rows (models.base.pad_rows):
    # every row's Monte Carlo mean and spread are bit-for-bit the same whatever the
    # batch size and torch's thread count.
    clf = _tiny()
    x = np.random.default_rng(8).normal(size=(333, 24)).astype(np.float32)
    ref, ref_cols = clf.predict_proba_mc(x, n_samples=20, random_state=9, batch_size=333)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for bs in (1, 7, 64, 100, 4096):
            proba, cols = clf.predict_proba_mc(x, n_samples=20, random_state=9, batch_size=bs)
            assert np.array_equal(proba, ref), bs
            for k in cols:
                assert np.array_equal(cols[k], ref_cols[k]), (bs, k)
            assert np.array_equal(clf.predict_proba(x, batch_size=bs),
                                  clf.predict_proba(x, batch_size=333))
    finally:
        torch.set_num_threads(old)


def test_recipe_card_entries_of_a_bayesian_model(demo):
    # mc_metrics and posterior_summary, shared by the photometric and image recipes.
    from sourceclf.features import get_feature_set
    from sourceclf.models import load_model
    from sourceclf.recipes.cards import mc_metrics, posterior_summary

    clf = load_model("bayesian-margnet-photometry-sg")
    features = get_feature_set("margnet24").compute(demo).values
    y = np.asarray(demo["class"] == "STAR", dtype=int)  # classes GALAXY, STAR
    rows = np.flatnonzero(np.isfinite(features).all(axis=1))[:40]
    metrics = mc_metrics(clf, y, rows, features, n_samples=8)
    proba, extra = clf.predict_proba_mc(features[rows], n_samples=8, random_state=0)
    assert metrics["n"] == len(rows)
    assert metrics["accuracy"] == pytest.approx(np.mean(proba.argmax(1) == y[rows]), abs=1e-5)
    assert metrics["mean_mutual_info"] == round(float(extra["pred_mutual_info"].mean()), 6)
    summary = posterior_summary(clf.module.net[-1], [0.5, 0.25], epochs=2)
    assert summary["epochs"] == 2 and summary["final_loss"] == 0.25
    assert summary["median_weight_sigma"] > 0 and summary["prior_scale"] > 0
