"""The image models: MargNet's CNN and stacked ensemble, MargFormer, augmentation.

Networks run in tiny configurations so the whole file stays fast on a CPU; the
shipped models are checked on real SDSS frames when ../shared/data is there.
"""

import json
import re

import numpy as np
import pytest
import torch

from conftest import blob_stamps
from sourceclf.augment import random_augment
from sourceclf.bands import BANDS
from sourceclf.exceptions import SourceclfWarning
from sourceclf.models import ARCHITECTURES, build_architecture, load_model, model_names
from sourceclf.models.margformer import MargFormer, count_flops
from sourceclf.models.margnet_cnn import AsinhNormalise, MargNetCNN, MargNetStack
from sourceclf.training import fit_stages

TINY = {
    "margnet-cnn": {"width": 0.0625, "dense": (16,)},
    "margnet-ensemble": {"ann": {"hidden": (16, 8)}, "cnn": {"width": 0.0625, "dense": (16,)}},
    "margformer": {"dim": 16, "depth": 1, "heads": 2, "token_layers": 1,
                   "feature_hidden": (16,)},
}
IMAGE_MODELS = ("margformer-sgq", "margnet-sgq", "margnet-cnn-sgq", "bayesian-margnet-sgq",
                "bayesian-margformer-sgq")
FRAME = "sdss_frame_004510-4-0030"


def blobs(n, random_state=0, size=32):
    """Noisy stamps: class 1 a point source (sigma 1.2 px), class 0 extended (3.5 px)."""
    return blob_stamps(n, random_state, size)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread (and do not fight other processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Building blocks ---------------------------------------------------------------------

def test_augment_shapes_exactness_and_seed():
    x = torch.randn(16, 5, 32, 32)
    a = random_augment(x, torch.Generator().manual_seed(1))
    b = random_augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    # Exact transformations (90-degree rotations, flips, whole-pixel shifts) only
    # move pixels: every output value is an input value of the same stamp.
    exact = random_augment(x, torch.Generator().manual_seed(2), exact_fraction=1.0)
    for i in range(len(x)):
        src = torch.sort(x[i].flatten()).values
        out = exact[i].flatten()
        idx = torch.searchsorted(src, out).clamp(max=src.numel() - 1)
        assert torch.allclose(src[idx], out, atol=1e-5)
    # Without shifts, exact transformations keep the central pixel's flux.
    c = random_augment(x, torch.Generator().manual_seed(3), exact_fraction=1.0, max_shift=0)
    assert torch.allclose(c.sum(dim=(2, 3)), x.sum(dim=(2, 3)), atol=1e-3)
    with pytest.raises(ValueError):
        random_augment(torch.zeros(5, 32, 32), torch.Generator())


def test_asinh_normalise_fits_sky_noise():
    rng = np.random.default_rng(0)
    images = rng.normal(scale=[0.04, 0.02, 0.02, 0.04, 0.2], size=(200, 32, 32, 5))
    images = np.moveaxis(images, 3, 1).astype(np.float32)
    norm = AsinhNormalise(5).fit(images)
    assert np.allclose(norm.softening.numpy(), [0.04, 0.02, 0.02, 0.04, 0.2], rtol=0.05)
    out = norm(torch.as_tensor(images))
    assert np.allclose(out.std(dim=(0, 2, 3)).numpy(), 0.79, atol=0.03)  # std of asinh(N(0, 1))
    bad = torch.full((1, 5, 32, 32), float("nan"))
    assert torch.equal(norm(bad), torch.zeros_like(bad))


def test_asinh_normalise_saturates_instead_of_overflowing():
    norm = AsinhNormalise(5)
    norm.softening.fill_(0.01)  # a sky noise in nanomaggies: 1e37 / 0.01 overflows float32
    images = torch.zeros((2, 5, 32, 32))
    images[0, 1, 3, 3] = 1e37
    images[1] = -3e38
    out = norm(images)
    assert torch.isfinite(out).all()
    assert out[0, 1, 3, 3] == torch.asinh(torch.tensor(torch.finfo(torch.float32).max))
    assert torch.equal(out[1], torch.full_like(out[1], -out[0, 1, 3, 3].item()))


def test_asinh_normalise_subtracts_each_stamps_border_sky_band_by_band():
    rng = np.random.default_rng(1)
    images = torch.as_tensor(rng.normal(0.0, 0.03, (4, 5, 32, 32)), dtype=torch.float32)
    images[:, :, 14:18, 14:18] += 5.0  # a source: not in the border
    offsets = torch.as_tensor(rng.normal(0.0, 0.05, (4, 5)), dtype=torch.float32)
    moved = images + offsets[..., None, None]
    plain, with_sky = AsinhNormalise(5), AsinhNormalise(5, sky_border=3)
    for norm in (plain, with_sky):
        norm.softening.fill_(0.03)
    np.testing.assert_allclose(with_sky.border_sky(moved) - with_sky.border_sky(images),
                               offsets, atol=1e-6)
    # The same input to the network whatever each stamp's sky ...
    np.testing.assert_allclose(with_sky(moved), with_sky(images), atol=1e-5)
    # ... which a normaliser without the subtraction does not give (half a sigma or more).
    assert (plain(moved) - plain(images)).abs().amax(dim=(2, 3)).min() > 0.01
    # Missing pixels (NaN, or zero: sourceclf.cutouts fills a stamp past a frame's edge
    # with 0) are not sky and stay as they are, so a stamp at an edge is read the same
    # whatever its sky too; a stamp with no border pixel of its own is left as it is.
    for fill in (float("nan"), 0.0):
        edge, moved_edge = images.clone(), moved.clone()
        edge[0, :, :, :8] = fill
        moved_edge[0, :, :, :8] = fill
        np.testing.assert_allclose(with_sky(moved_edge), with_sky(edge), atol=1e-5)
        np.testing.assert_allclose(with_sky.border_sky(moved_edge)[0], offsets[0]
                                   + with_sky.border_sky(edge)[0], atol=1e-6)
    empty = torch.full((1, 5, 32, 32), float("nan"))
    assert torch.equal(with_sky.border_sky(empty), torch.zeros(1, 5))
    assert torch.equal(plain.border_sky(moved), torch.zeros(4, 5))
    for bad in (-1, 1.5, "3 px", "3", None, True):
        with pytest.raises(ValueError, match="sky_border must be a whole number"):
            AsinhNormalise(5, sky_border=bad)
    assert AsinhNormalise(5, sky_border=3.0).sky_border == 3


def test_asinh_normalise_fits_the_softening_on_stamps_less_their_sky():
    rng = np.random.default_rng(2)
    images = rng.normal(0.0, 0.02, (200, 5, 32, 32)).astype(np.float32)
    images += rng.normal(0.0, 0.1, (200, 5, 1, 1)).astype(np.float32)  # skies 5 sigma apart
    assert np.allclose(AsinhNormalise(5, sky_border=3).fit(images).softening, 0.02, rtol=0.05)
    assert AsinhNormalise(5).fit(images).softening.min() > 0.04  # the skies' scatter too


@pytest.mark.parametrize("arch", ["margnet-cnn", "margformer", "margnet-ensemble"])
def test_image_networks_read_the_same_stamps_whatever_their_sky(arch):
    torch.manual_seed(0)
    config = dict(TINY[arch])
    if arch == "margnet-ensemble":
        config["cnn"] = {**config["cnn"], "sky_border": 3}
    else:
        config["sky_border"] = 3
    module = build_architecture(arch, {"n_features": 24, "n_classes": 3, **config}).eval()
    images, _ = blobs(8)
    images = torch.as_tensor(images)
    features = torch.randn(8, 24)
    moved = images + torch.linspace(-0.1, 0.1, 5)[:, None, None]
    with torch.no_grad():
        np.testing.assert_allclose(module(features, moved), module(features, images),
                                   atol=1e-4)


def test_train_subtracts_the_stamps_sky_by_default_and_keeps_what_config_says():
    from sourceclf.models.margformer import MargFormer
    from sourceclf.models.margnet import MargNetANN
    from sourceclf.models.bayesian import BayesianMargFormer, BayesianMargNetStack
    from sourceclf.training.api import with_sky_border

    assert with_sky_border(MargNetCNN, {"n_classes": 3}) == {"sky_border": 3, "n_classes": 3}
    assert with_sky_border(BayesianMargFormer, {})["sky_border"] == 3  # through **kwargs
    assert with_sky_border(MargFormer, {"sky_border": 0}) == {"sky_border": 0}
    assert with_sky_border(BayesianMargNetStack, {"cnn": {"width": 0.5}}) == {
        "cnn": {"sky_border": 3, "width": 0.5}}
    assert with_sky_border(MargNetStack, {"cnn": {"sky_border": 0}})["cnn"] == {
        "sky_border": 0}
    assert with_sky_border(MargNetANN, {"n_classes": 3}) == {"n_classes": 3}


def test_a_bad_sky_border_is_a_one_line_config_error():
    from sourceclf.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="bad config: sky_border must be a whole"):
        build_architecture("margnet-cnn", {"n_classes": 3, **TINY["margnet-cnn"],
                                           "sky_border": "3 px"})


def test_models_saved_without_sky_border_load_without_it(tmp_path):
    """Models trained before the border sky (cards without ``sky_border``) read stamps
    as they always did."""
    clf = _tiny_cnn_classifier()
    assert "sky_border" not in clf.card.config
    clf.save(tmp_path / "old")
    assert load_model(tmp_path / "old").module.normalise.sky_border == 0


def _tiny_cnn_classifier():
    """A tiny MargNet CNN with a realistic sky softening and a calibration table."""
    from astropy.table import Table

    from sourceclf.models import ModelCard, TorchClassifier

    torch.manual_seed(0)
    cfg = {"n_classes": 2, **TINY["margnet-cnn"]}
    module = MargNetCNN(**cfg)
    module.normalise.softening.fill_(0.01)
    rng = np.random.default_rng(0)
    p_star = rng.uniform(size=50)
    calibration = Table({"prob_galaxy": 1 - p_star, "prob_star": p_star,
                         "label": np.where(p_star > 0.5, "STAR", "GALAXY")})
    card = ModelCard(name="tiny-cnn", architecture="margnet-cnn", config=cfg,
                     feature_set=None, uses_images=True, classes=["GALAXY", "STAR"])
    return TorchClassifier(module, card, calibration)


@pytest.mark.parametrize("confidence", [None, 0.9])
def test_extreme_pixels_leave_their_rows_unclassified(confidence):
    # |pixel| ~1e37 gave NaN probabilities: with sets the call failed, without them
    # the row was silently GALAXY.
    from astropy.table import Table

    import sourceclf

    images, _ = blobs(6)
    images[1, 2, 16, 16] = 1e37
    images[4] = -3e38
    table = Table({"ra": np.arange(6.0), "dec": np.zeros(6)})
    out = sourceclf.classify(table, images, model=_tiny_cnn_classifier(),
                             confidence=confidence, device="cpu", psf=1.2)
    bad = np.isin(np.arange(6), [1, 4])
    assert out["pred_flag"].tolist() == ["bad_pixels" if b else "" for b in bad]
    assert np.array_equal(out["pred_class"].mask, bad)
    assert np.array_equal(out["prob_star"].mask, bad)
    assert np.isfinite(out["prob_star"].compressed()).all()
    if confidence:
        assert np.array_equal(out["pred_set_size"].mask, bad)


def test_published_cnn_shape():
    cnn = MargNetCNN()
    n_params = sum(p.numel() for p in cnn.parameters())
    assert 23e6 < n_params < 27e6  # MODELS.md: ~24M
    assert cnn.classifier[1].in_features == 22272  # 348 x 8 x 8
    assert cnn.features[-1].out_channels == 348


@pytest.mark.parametrize("name", sorted(TINY))
def test_architectures_forward_backward(name):
    cls = ARCHITECTURES.get(name) or build_architecture(name, None, True) or ARCHITECTURES[name]
    torch.manual_seed(0)
    module = build_architecture(name, {"n_classes": 3, **TINY[name]})
    feats = torch.randn(6, 24) if getattr(cls, "uses_features", True) else None
    images = torch.randn(6, 5, 32, 32)
    logits = module(feats, images)
    assert logits.shape == (6, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    module.eval()
    with torch.no_grad():
        a = module(feats, images)
        b = torch.cat([module(None if feats is None else feats[i:i + 1], images[i:i + 1])
                       for i in range(6)])
    assert torch.allclose(a, b, atol=1e-5)  # no batch coupling in eval mode


def test_margformer_cost_and_size():
    mf = MargFormer()  # the shipped configuration
    assert sum(p.numel() for p in mf.parameters()) < 120_000
    assert count_flops(mf) < 6e6
    # The published size (12 layers, feature MLP 24-1024-512-256-64) is ~1.4M.
    big = MargFormer(dim=64, depth=12, heads=8, token_layers=0,
                     feature_hidden=(1024, 512, 256))
    assert 0.9e6 < sum(p.numel() for p in big.parameters()) < 1.6e6


# Training ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def blob_table():
    from sourceclf.demo import demo_catalog

    # Fluxes of 10-100: the faintest extended blobs of blobs()'s 3-100 sit at the
    # noise, where a tiny MargFormer's validation accuracy hung on one row between
    # torch versions (40 of 45 under torch 2.11, 41 under 2.13).
    images, y = blob_stamps(300, 1, log_flux=(1.0, 2.0))
    table = demo_catalog(300, random_state=4)
    table["class"] = np.where(y == 1, "STAR", "GALAXY")
    # Scramble the photometry so that only the images carry the class.
    rng = np.random.default_rng(0)
    for name in table.colnames:
        if name not in ("class", "objid", "ra", "dec"):
            table[name] = np.asarray(table[name])[rng.permutation(len(table))]
    return table, images


@pytest.mark.parametrize("name", ["margnet-cnn", "margformer"])
def test_train_learns_separable_images(blob_table, name, tmp_path):
    import sourceclf

    table, images = blob_table
    clf = sourceclf.train(table, images, model=name, config=TINY[name], epochs=6,
                          batch_size=16, lr=1e-2 if name == "margnet-cnn" else 3e-3,
                          patience=6, device="cpu", random_state=0)
    assert clf.card.uses_images
    assert clf.card.feature_set == (None if name == "margnet-cnn" else "margnet24")
    assert clf.card.metrics["validation"]["accuracy"] >= 0.9
    # Save / load round trip gives the same probabilities.
    clf.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    feats = None
    if clf.feature_set:
        from sourceclf.features import get_feature_set

        feats = get_feature_set(clf.feature_set).compute(table[:20]).values
    assert np.allclose(clf.predict_proba(feats, images[:20]),
                       again.predict_proba(feats, images[:20]), atol=1e-6)
    out = sourceclf.classify(table[:20], images[:20], model=again, confidence=None)
    assert set(out["pred_class"]) <= {"GALAXY", "STAR"}


def test_stacked_ensemble_trains_in_stages(blob_table):
    from sourceclf.features import get_feature_set

    table, images = blob_table
    x = get_feature_set("margnet24").compute(table).values
    y = (np.asarray(table["class"]) == "STAR").astype(int)
    torch.manual_seed(0)
    stack = MargNetStack(n_classes=2, **TINY["margnet-ensemble"])
    tr, va = np.arange(200), np.arange(200, 300)
    history = fit_stages(stack, x[tr], y[tr], x[va], y[va], images_train=images[tr],
                         images_val=images[va], epochs=6, batch_size=16, lr=1e-2,
                         patience=6, augment=random_augment,
                         stage_options={"head": {"epochs": 30, "lr": 1e-2}})
    assert set(history["stages"]) == {"ann", "cnn"}
    assert not any(p.requires_grad for p in stack.cnn.parameters())
    with torch.no_grad():
        pred = stack(torch.as_tensor(x[va]), torch.as_tensor(images[va])).argmax(1).numpy()
    assert np.mean(pred == y[va]) >= 0.85


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_image_models_on_gpu():
    images, y = blobs(64)
    for name in sorted(TINY):
        module = build_architecture(name, {"n_classes": 3, **TINY[name]}).cuda()
        feats = torch.randn(64, 24, device="cuda")
        out = module(feats, torch.as_tensor(images, device="cuda"))
        assert out.device.type == "cuda" and out.shape == (64, 3)
        aug = random_augment(torch.as_tensor(images, device="cuda"),
                             torch.Generator().manual_seed(0))
        assert aug.device.type == "cuda"


# The shipped models ------------------------------------------------------------------

def _shipped():
    missing = [n for n in IMAGE_MODELS if n not in model_names()]
    if missing:
        pytest.skip(f"image models not installed: {missing}")


def test_shipped_image_model_cards():
    _shipped()
    from sourceclf.models import model_card

    cards = {n: model_card(n) for n in IMAGE_MODELS}
    for name, card in cards.items():
        assert card.uses_images
        assert "SIMULATED" in card.training["data"]
        assert "sourceclf.train(table, cutouts" in card.notes
        assert card.metrics["test"]["n"] == card.training["n_test"]
    assert cards["margnet-cnn-sgq"].feature_set == "psf_shape"  # its images' PSF
    assert cards["margformer-sgq"].feature_set == cards["margnet-sgq"].feature_set == "margnet24"
    # MargFormer: >= 10x fewer parameters than the ensemble, accuracy within 1.5 points on
    # the simulated test stamps (0.832 against 0.845 since both subtract each stamp's border
    # sky, 1.3 points, about two standard errors; 0.832 against 0.842 before).  On the real
    # uncrowded fields it scores within 0.03 of it (check_fields.py --from-cards [--inject]).
    mf, ens = cards["margformer-sgq"], cards["margnet-sgq"]
    assert 10 * mf.extra["n_parameters"] <= ens.extra["n_parameters"]
    assert mf.metrics["test"]["accuracy"] >= ens.metrics["test"]["accuracy"] - 0.015
    # The parameter counts in the cards are those of the shipped weights.
    module = load_model("margformer-sgq").module
    assert sum(p.numel() for p in module.parameters()) == mf.extra["n_parameters"]


def test_image_model_cards_record_the_trained_seeing():
    _shipped()
    from sourceclf.models import model_card

    for name in IMAGE_MODELS:
        domain = model_card(name).domain
        assert sorted(domain["psf_fwhm"]) == sorted(BANDS), name
        for band, (low, high) in domain["psf_fwhm"].items():
            assert 0.5 < low < 1.1 and 2.2 < high < 3.0, (name, band)  # 0.75-2.5" in r
        assert domain["magnitudes"]["r"][0] < domain["magnitudes"]["r"][1]
        assert "seeing" in domain["description"]
    # The CNN reads the PSF's Moffat index too, clipped to the central 90% of the trained
    # ones: from about 2.8 (wings of a Moffat 3 core) to 7 (nearly Gaussian).
    beta = model_card("margnet-cnn-sgq").domain["psf_beta"]
    assert sorted(beta) == sorted(BANDS)
    for band, (low, high) in beta.items():
        assert 2.5 < low < 3.2 and 6.0 < high < 8.0, (band, low, high)


def test_auto_picks_image_models():
    _shipped()
    from astropy.table import Table

    from sourceclf.classification import choose_model
    from sourceclf.demo import demo_catalog

    with_features = choose_model(demo_catalog(5), with_images=True)
    assert with_features in ("margnet-sgq", "margformer-sgq")
    positions = Table({"ra": [10.0], "dec": [1.0]})
    assert choose_model(positions, with_images=True) == "margnet-cnn-sgq"
    assert not load_model(choose_model(demo_catalog(5))).uses_images


def test_auto_counts_the_rows_beyond_the_trained_magnitudes_alike():
    """Without a fitted domain, the image models count every row as inside; now those
    beyond their cards' magnitudes are outside, for every image model alike, so that the
    choice stays the same and its reason says how many lie beyond."""
    _shipped()
    from sourceclf.demo import demo_catalog
    from sourceclf.model_choice import explain_model_choice

    table = demo_catalog(40, random_state=1)
    table["dered_r"][:10] = 23.0  # beyond r = 22.5
    choice = explain_model_choice(table, with_images=True)
    plain = explain_model_choice(demo_catalog(40, random_state=1), with_images=True)
    assert choice.name == plain.name
    inside = {name: fraction for name, fraction, _ in choice.candidates}
    beyond = float(np.mean((np.asarray(table["dered_r"]) > 22.5)
                           | (np.asarray(table["dered_r"]) < 14.0)))
    assert len(inside) >= 4
    assert all(f == pytest.approx(1.0 - beyond) for f in inside.values()), inside
    assert f"{1.0 - beyond:.0%} of the rows it can classify inside" in choice.reason


@pytest.fixture(scope="module")
def real_frame(calibobj_field):
    """The calibObj stars of field 4510-4-0030 with features, and the frames read once.

    The tests classify the same frames many times: each frame's PSF is measured
    once for them all, as `sourceclf.streaming.classify_file` measures it once for
    all its chunks (`sourceclf.classification.frame_measurement_cache`).
    """
    _shipped()
    from sourceclf.classification import frame_measurement_cache

    with frame_measurement_cache():
        yield calibobj_field


def test_cnn_calls_real_stars_point_sources(real_frame):
    """margnet-cnn-sgq, given only RA/Dec and the five real frames (done criterion)."""
    from astropy.table import Table

    import sourceclf

    cat, frames = real_frame
    positions = Table({"ra": cat["ra"], "dec": cat["dec"]})
    out = sourceclf.classify(positions, images=frames, confidence=0.9, model="margnet-cnn-sgq")
    # It reads no catalog column: of the columns measured on the frames it takes only
    # the blendedness, for the blended flag.
    assert "CLFCOLS" not in out.meta and "blendedness" in out.colnames
    # The shift alarm compares its sets with calibration rows of the measured magnitudes.
    assert json.loads(out.meta["CLFSHREF"])["0.9"]["matched"] == "r"
    assert len(out) == 161 and not np.ma.getmaskarray(out["pred_class"]).any()
    # The PSF it read, per row: the frames' FWHM and Moffat index (r: 0.99", 3.40).
    from sourceclf.field_psf import band_psf

    for b in BANDS:
        measured = band_psf(frames[b], b)
        np.testing.assert_allclose(out[f"psf_fwhm_{b}"], measured.fwhm, rtol=1e-6)
        np.testing.assert_allclose(out[f"psf_beta_{b}"], measured.beta, rtol=1e-6)
    assert 3.2 < float(out["psf_beta_r"][0]) < 3.6
    point = np.isin(np.asarray(out["pred_class"]), ["STAR", "QSO"])
    # 0.857 since it sees each stamp less its neighbours (0.845 since it subtracts each
    # stamp's border sky, 0.82 before, 0.84 when it read the FWHM alone): 22 of the 23 stars
    # brighter than r = 19, but only three quarters of the 82 fainter than r = 21.5, where
    # the stamp barely shows the source.
    assert point.mean() >= 0.80, f"only {point.sum()} of 161 stars called point sources"
    bright = np.asarray(cat["dered_r"]) < 19
    assert point[bright].mean() >= 0.95


def test_stamps_given_with_their_psf_are_measured_as_frames_are(real_frame, tmp_path, capsys):
    """Cutouts and psf= without MargNet's columns: the columns are measured on the stamps,
    as on the frames they were cut from, and 'auto' chooses margnet-sgq as for frames;
    without psf= nothing is measured and the CNN is chosen."""
    from astropy.table import Table

    import sourceclf
    from sourceclf.cutouts import make_cutouts
    from sourceclf.photometry import measure_columns, measure_stamp_columns
    from sourceclf.field_psf import band_psf
    from sourceclf.sky import stamp_sky

    cat, frames = real_frame
    positions = Table({"ra": cat["ra"][:30], "dec": cat["dec"][:30]})
    stamps = make_cutouts(table=positions, images=frames).data
    psf = {b: band_psf(frame, b) for b, frame in frames.items()}
    on_frames, _ = measure_columns(positions, frames, psf)
    sky = {b: sigma for b, (_, sigma) in stamp_sky(stamps).items()}
    on_stamps = measure_stamp_columns(positions, stamps, psf, sky)
    for column in ("dered_r", "dered_u", "g_r", "deVRad_r", "psffwhm_r", "blendedness_r"):
        np.testing.assert_allclose(on_stamps[column], on_frames[column], atol=2e-3,
                                   err_msg=column)  # 1e-4-6e-4 mag when written
    fwhm = {b: psf[b].fwhm for b in BANDS}
    out = sourceclf.classify(positions, cutouts=stamps, psf=fwhm, confidence=None)
    assert out.meta["CLFMODEL"] == "margnet-sgq" and "stamps" in out.meta["CLFCOLS"]
    # The r band's Moffat index, measured on the stamps: the frame's is 3.40.
    assert re.search(r"r 3\.[2-6] measured on the stamps. point sources of their FWHM "
                     r"\(30 rows\)", out.meta["CLFPSF"])
    assert "dered_r" not in out.colnames  # used internally, as for frames
    point = np.isin(np.asarray(out["pred_class"]), ["STAR", "QSO"])
    assert point.mean() >= 0.9, point.mean()  # calibObj stars: 0.97 when written
    with pytest.warns(Warning, match="psf"):
        blind = sourceclf.classify(positions, cutouts=stamps, confidence=None)
    assert blind.meta["CLFMODEL"] == "margnet-cnn-sgq" and "CLFCOLS" not in blind.meta
    # The command line: --cutouts with --psf.
    from astropy.io import fits

    from sourceclf.cli import main

    positions.write(tmp_path / "cat.fits")
    fits.PrimaryHDU(stamps).writeto(tmp_path / "stamps.fits")
    assert main([str(tmp_path / "cat.fits"), "--cutouts", str(tmp_path / "stamps.fits"),
                 "--psf", "1.2", "-o", str(tmp_path / "out.fits")]) == 0
    said = capsys.readouterr().out
    assert "model: margnet-sgq" in said and "measured on the stamps" in said
    assert "FWHM from psf=; Moffat index u " in said
    # Stamps whose borders hold no noise: one warning, and the CNN.
    with pytest.warns(SourceclfWarning, match="not measured on the stamps"), \
            pytest.warns(SourceclfWarning, match="Moffat index"):  # nor the CNN's index
        flat = sourceclf.classify(positions[:3], cutouts=np.ones((3, 5, 32, 32)), psf=1.2,
                                  confidence=None)
    assert flat.meta["CLFMODEL"] == "margnet-cnn-sgq"


def test_cnn_calls_extended_sources_galaxies(real_frame, shared_data):
    """Clearly extended bright sources of the real frame (photutils) are called GALAXY."""
    from astropy.table import Table

    import sourceclf
    from sourceclf.image_recipes import frame_extended_sources

    _, frames = real_frame
    sources = frame_extended_sources(shared_data, frames)
    assert len(sources) >= 10
    positions = Table({"ra": sources["ra"], "dec": sources["dec"]})
    for model in ("margnet-cnn-sgq", "auto"):
        out = sourceclf.classify(positions, images=frames, model=model)
        galaxy = np.asarray(out["pred_class"]) == "GALAXY"
        assert galaxy.mean() >= 0.9, f"{model}: {galaxy.sum()} of {len(out)} extended sources"
    assert out.meta["CLFMODEL"] == "margnet-sgq" and "CLFCOLS" in out.meta


def test_positions_and_frames_get_the_catalog_model(real_frame):
    """Given only RA/Dec and the frames, 'auto' measures MargNet's columns on the frames
    and uses margnet-sgq, which reads them next to the stamps (done criterion)."""
    from astropy.table import Table

    import sourceclf

    cat, frames = real_frame
    positions = Table({"ra": cat["ra"], "dec": cat["dec"]})
    out = sourceclf.classify(positions, images=frames, confidence=0.9)
    assert out.meta["CLFMODEL"] == "margnet-sgq"
    assert "measure_columns" in out.meta["CLFCOLS"]
    # Each band's PSF as measured on its own stars (004510-4-0030's r: 0.99").
    assert re.match(r'PSF FWHM measured on the frames: u \d\.\d\d" .*r 0\.9\d" ',
                    out.meta["CLFFPSF"]) and "PSF stars of band" not in out.meta["CLFFPSF"]
    assert out.colnames[:2] == ["ra", "dec"] and "dered_r" not in out.colnames
    assert not np.ma.getmaskarray(out["pred_class"]).any()
    point = np.isin(np.asarray(out["pred_class"]), ["STAR", "QSO"])
    # 0.870 since the image models subtract each stamp's border sky (0.857 before; the
    # CNN: 0.845): all stars brighter than r = 20.5, 0.76 of the 82 fainter than 21.5.
    assert point.mean() >= 0.78, f"only {point.sum()} of 161 stars called point sources"
    assert point[np.asarray(cat["dered_r"]) < 19].mean() >= 0.95
    # The same model, told by name, measures the same columns.
    named = sourceclf.classify(positions, images=frames, confidence=None, model="margnet-sgq")
    np.testing.assert_array_equal(named["prob_star"], out["prob_star"])


@pytest.mark.parametrize("name", ["margformer-sgq", "margnet-sgq", "bayesian-margnet-sgq",
                                  "bayesian-margformer-sgq"])
def test_feature_image_models_on_real_frame(real_frame, name):
    import warnings

    import sourceclf
    from sourceclf.cutouts import make_cutouts
    from sourceclf.exceptions import ShiftAlarmWarning
    from sourceclf.field_psf import field_psfs

    cat, frames = real_frame
    with warnings.catch_warnings():
        # Real stars are not the simulated stamps the sets were calibrated on: the shift
        # alarm may rightly fire (margformer-sgq: 21% empty sets against 9%).
        warnings.simplefilter("ignore", ShiftAlarmWarning)
        out = sourceclf.classify(cat, images=frames, model=name, confidence=0.9)
        stamps = make_cutouts(table=cat, images=frames).data
        # with the PSF the frames were seen through: their neighbours are fitted through it
        psf = field_psfs(frames)
        again = sourceclf.classify(cat, stamps, model=name, confidence=0.9, psf=psf)
    assert not np.ma.getmaskarray(out["pred_class"]).any()
    point = np.isin(np.asarray(out["pred_class"]), ["STAR", "QSO"])
    # When shipped: 0.85-0.89 of the 161 stars (bayesian-margformer-sgq the lowest), 0.94-1.00
    # of the 50 brighter than r = 20.5; most misses are the 82 fainter than r = 21.5 (15-20
    # of them), where half the training columns, measured through sourceclf's deblender,
    # taught the models not to take a faint source's radius at face value.
    assert point.mean() >= 0.82, f"{name}: {point.sum()} of 161 stars called point sources"
    bright = np.asarray(cat["dered_r"]) < 20.5
    assert point[bright].mean() >= 0.9, f"{name}: {point[bright].sum()} of {bright.sum()}"
    # The same stamps given as an array, with the same PSF, give the same answer.
    assert np.allclose(out["prob_star"], again["prob_star"], atol=1e-6)
    assert list(out["pred_set"]) == list(again["pred_set"])


def test_sources_beyond_the_trained_magnitudes_are_flagged(real_frame):
    """The image models saw no galaxy fainter than r = 22.5: a fainter source was called
    STAR or QSO by the training set's prior, without a flag (they have no fitted domain).
    Now a magnitude outside the card's ``domain['magnitudes']`` flags the row
    ``out_of_domain``: the catalog's own, or one measured on the frames."""
    from astropy.table import Table

    import sourceclf
    from sourceclf.models import model_card

    cat, frames = real_frame
    bright, faint = model_card("margnet-sgq").domain["magnitudes"]["r"]
    r = np.asarray(cat["dered_r"], dtype=float)
    beyond = (r < bright) | (r > faint)
    assert 0 < beyond.sum() < len(cat)  # the faintest calibObj stars, r > 22.5
    out = sourceclf.classify(cat, images=frames, model="margnet-sgq", confidence=None)
    flagged = np.char.find(np.asarray(out["pred_flag"]).astype(str), "out_of_domain") >= 0
    np.testing.assert_array_equal(flagged, beyond)
    assert out.meta["CLFNOOD"] == beyond.sum()
    assert not np.ma.getmaskarray(out["pred_class"]).any()  # still classified
    # Positions alone: the columns measured on the frames tell how faint each source is,
    # and every image model that read the frames says so, the image-only CNN too.
    positions = Table({"ra": cat["ra"], "dec": cat["dec"]})
    for name in ("margnet-sgq", "margnet-cnn-sgq"):
        measured = sourceclf.classify(positions, images=frames, model=name, confidence=None)
        flags = np.asarray(measured["pred_flag"]).astype(str)
        assert 0 < (np.char.find(flags, "out_of_domain") >= 0).sum() <= beyond.sum() + 5, name


@pytest.mark.parametrize("name", ["bayesian-margnet-sgq", "bayesian-margformer-sgq"])
def test_bayesian_image_models_say_how_sure_they_are(real_frame, name):
    import sourceclf
    from sourceclf.models import model_card
    from sourceclf.recipes.image import MC_SAMPLES

    card = model_card(name)
    assert card.kind == "torch-bayesian"
    drawn = card.metrics[f"test_mc{MC_SAMPLES}"]
    assert drawn["accuracy"] >= card.metrics["test"]["accuracy"] - 0.01
    assert card.training["posterior_scales"]["median_weight_sigma"] > 0
    cat, frames = real_frame
    cat = cat[:40]
    mean = sourceclf.classify(cat, images=frames, model=name, confidence=None, progress=False)
    drawn = sourceclf.classify(cat, images=frames, model=name, confidence=None, mc_samples=20,
                               random_state=1, progress=False)
    again = sourceclf.classify(cat, images=frames, model=name, confidence=None, mc_samples=20,
                               random_state=1, progress=False)
    for column in ("prob_star_std", "pred_entropy", "pred_mutual_info"):
        assert np.all(np.isfinite(drawn[column])) and np.allclose(drawn[column], again[column])
    assert np.asarray(drawn["prob_star_std"]).max() > 0
    agree = np.asarray(drawn["pred_class"]) == np.asarray(mean["pred_class"])
    assert agree.mean() >= 0.9


# PSF-aware networks ----------------------------------------------------------------------

def _blobs_through_psf(n, random_state):
    """Stamps whose class is the size *relative to the PSF*: an image alone cannot tell.

    Point sources have the PSF's width, extended ones 1.8 times it, and the PSF
    varies threefold (sigma 0.9 to 2.7 pixels), so the two classes' sizes
    overlap over most of their range.
    """
    rng = np.random.default_rng(random_state)
    y = rng.integers(0, 2, n)
    psf_sigma = np.exp(rng.uniform(np.log(0.9), np.log(2.7), n))
    sigma = np.where(y == 1, psf_sigma, 1.8 * psf_sigma)
    yy, xx = np.mgrid[:32, :32] - 15.5
    s2 = sigma[:, None, None] ** 2
    profile = np.exp(-0.5 * (xx ** 2 + yy ** 2)[None] / s2) / (2 * np.pi * s2)
    images = 80 * profile[:, None] * np.ones(5)[None, :, None, None]
    images += rng.normal(scale=0.05, size=images.shape)
    fwhm = (psf_sigma * 2.3548 * 0.396)[:, None] * np.ones(5)[None]
    return images.astype(np.float32), fwhm.astype(np.float32), y


def _best_size_only_accuracy(fwhm, y):
    """The best any classifier that sees the stamp but not the PSF can do on these rows.

    A stamp of `_blobs_through_psf` is its source's width and noise, nothing else, so no
    rule on the stamp beats the best rule on the true width; and since the two classes'
    widths are equally likely where they overlap, the best rule on it is a cut.  Returns
    the best cut's accuracy (the PSF's FWHM gives each source's true width).
    """
    width = fwhm[:, 0] * np.where(y == 1, 1.0, 1.8)
    order = np.argsort(width)
    below = np.arange(len(y) + 1)
    points_below = np.concatenate([[0], np.cumsum(y[order] == 1)])
    # A cut after k rows calls those point-like (1) and the rest extended (0).
    right = points_below + (len(y) - below) - (np.sum(y == 1) - points_below)
    return float(right.max() / len(y))


def test_psf_aware_cnn_judges_size_against_the_psf():
    """Given the PSF's width, the CNN tells sizes relative to it; without, no classifier
    of the stamps could (`_best_size_only_accuracy`: 0.84 on these rows)."""
    from sourceclf.training import fit_network

    images, fwhm, y = _blobs_through_psf(600, 0)
    tr, va = np.arange(450), np.arange(450, 600)
    torch.manual_seed(0)
    cnn = MargNetCNN(n_classes=2, width=0.0625, dense=(16,), batch_norm=True,
                     psf_inputs=5, psf_units=8)
    fit_network(cnn, fwhm[tr], y[tr], fwhm[va], y[va], images_train=images[tr],
                images_val=images[va], epochs=8, batch_size=32, lr=5e-3, patience=8,
                device="cpu", random_state=0)
    cnn.eval()
    with torch.no_grad():
        logits = cnn(torch.as_tensor(fwhm[va]), torch.as_tensor(images[va]))
    score = float(np.mean(logits.argmax(1).numpy() == y[va]))
    blind = _best_size_only_accuracy(fwhm[va], y[va])
    assert score >= 0.95, (score, blind)  # 1.0 when written, the blind CNN 0.83
    assert score >= blind + 0.1, (score, blind)


def test_psf_aware_cnn_inputs_and_stack():
    torch.manual_seed(0)
    cnn = MargNetCNN(n_classes=3, width=0.0625, dense=(16,), psf_inputs=5).eval()
    images = torch.randn(4, 5, 32, 32)
    with torch.no_grad():
        sharp = cnn(torch.full((4, 5), 0.9), images)
        blurred = cnn(torch.full((4, 5), 2.0), images)
        unknown = cnn(torch.full((4, 5), float("nan")), images)  # read as the reference
        reference = cnn(torch.full((4, 5), cnn.psf_reference), images)
    assert not torch.allclose(sharp, blurred)
    assert torch.allclose(unknown, reference)
    assert count_flops(cnn, 5) > 0
    # In MargNet's ensemble the CNN reads the psffwhm_<b> columns of the 24 features.
    from sourceclf.bands import MARGNET_FEATURES

    columns = [MARGNET_FEATURES.index(f"psffwhm_{b}") for b in BANDS]
    stack = MargNetStack(n_classes=3, ann={"hidden": (8,)},
                         cnn={"width": 0.0625, "dense": (16,), "psf_inputs": 5},
                         cnn_psf_columns=columns, cnn_psf_scale=[0.9] * 5).eval()
    feats = torch.randn(4, 24)
    feats[:, columns] = 2.0
    with torch.no_grad():
        member = torch.softmax(stack.cnn(torch.full((4, 5), 1.8), images), dim=1)
        assert torch.allclose(stack.member_probabilities(feats, images)[:, 3:], member)
    with pytest.raises(ValueError, match="cnn_psf_columns"):
        MargNetStack(cnn={"width": 0.0625, "dense": (16,), "psf_inputs": 5})


def test_psf_feature_set_comes_from_the_images_psf():
    from astropy.table import Table

    from sourceclf.exceptions import InvalidInputError
    from sourceclf.features import available_feature_sets, get_feature_set
    from sourceclf.inputs import model_inputs

    spec = get_feature_set("psf_fwhm")
    assert spec.reads_image_psf and not get_feature_set("ugriz").reads_image_psf
    table = Table({"id": [1, 2, 3]})
    stamps = np.random.default_rng(0).normal(0.0, 0.03, (3, 5, 32, 32)).astype(np.float32)
    given = model_inputs(table, feature_set="psf_fwhm", uses_images=True, cutouts=stamps,
                         psf={"u": 1.4, "g": 1.3, "r": 1.2, "i": 1.1, "z": 1.15})
    np.testing.assert_allclose(given.features[0], [1.4, 1.3, 1.2, 1.1, 1.15], rtol=1e-6)
    assert given.valid.all()
    # Unknown PSF: read as the middle of the trained range, and flagged.
    psf_range = {b: (0.8, 2.0) for b in BANDS}
    with pytest.warns(Warning, match="psf="):
        unknown = model_inputs(table, feature_set="psf_fwhm", uses_images=True,
                               cutouts=stamps, psf_range=psf_range, model_name="m")
    np.testing.assert_allclose(unknown.features, np.sqrt(1.6), rtol=1e-6)
    assert unknown.valid.all() and all(f == "psf_unknown" for f in unknown.flags)
    # Without a range (training) such rows cannot be used.
    training = model_inputs(table, feature_set="psf_fwhm", uses_images=True, cutouts=stamps)
    assert not training.valid.any() and training.flags[0].startswith("missing:psf_fwhm_u")
    with pytest.raises(InvalidInputError, match="reads no images"):
        model_inputs(table, feature_set="psf_fwhm", uses_images=False, model_name="m")
    assert "psf_fwhm" not in available_feature_sets(
        Table({f"psf_fwhm_{b}": [1.0] for b in BANDS}))


@pytest.fixture(scope="module")
def blurred_field(real_frame):
    """Field 4510-4-0030's clean bright sources (check_fields' truth) and its frames as they
    are and blurred to 1.9", with each band's FWHM (arcsec) in both."""
    from astropy.table import Table

    from sourceclf.field_psf import band_psf
    from sourceclf.recipes.extent_truth import frame_truth
    from sourceclf.simulate import degrade_frames

    _, frames = real_frame
    # The PSF classify measured (the module's frame_measurement_cache keeps it).
    psf = {b: band_psf(frame, b) for b, frame in frames.items()}
    truth = frame_truth(*frames["r"], psf["r"])
    clean = truth[truth["clean"]]
    positions = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    blurred, targets = degrade_frames(frames, 1.9, psf=psf, random_state=1)
    return (positions, np.asarray(clean["truth"]).astype(str), (frames, blurred),
            ({b: psf[b].fwhm for b in BANDS}, targets))


def _balanced(out, labels):
    """Balanced accuracy of point-like sources called STAR/QSO and extended ones GALAXY."""
    pred = np.asarray(out["pred_class"].filled("")).astype(str)
    point = np.isin(pred[labels == "point"], ["STAR", "QSO"]).mean()
    return (point + (pred[labels == "extended"] == "GALAXY").mean()) / 2


def test_cnn_holds_on_a_real_field_blurred_to_bad_seeing(blurred_field):
    """Issue 14's check, small: field 4510-4-0030 as it is and blurred to 1.9"."""
    import sourceclf

    positions, labels, (frames, blurred), _ = blurred_field
    # 1.00 and 0.96 when shipped (0.98 and 0.97 when the CNN read the FWHM alone)
    for seen, floor in ((frames, 0.95), (blurred, 0.93)):
        out = sourceclf.classify(positions, images=seen, model="margnet-cnn-sgq",
                                 confidence=None, progress=False)
        assert _balanced(out, labels) >= floor, out["psf_fwhm_r"][0]


def test_cnn_holds_through_a_psf_with_wings(blurred_field):
    """Field 4510-4-0030 blurred to 2.2" at its own PSF's Moffat index (wings and all):
    the CNN reads the index measured on the frames, so it does not take most stars of a
    PSF with wings for galaxies.  Reading the FWHM alone it called 0.72-0.78 of the
    point-like sources STAR or QSO there (check_fields.py --kernel moffat).  It calls
    0.825 on this draw of the blur's noise (0.85-0.95 on five others, 40 point-like
    sources); before the PSF's locus was found among compact galaxies
    (sourceclf.psf.point_source_locus) classify measured this frame's r FWHM 11% too
    wide, and the CNN called 0.95 of them stars."""
    import sourceclf
    from sourceclf.field_psf import band_psf
    from sourceclf.simulate import degrade_frames

    positions, labels, (frames, _), _ = blurred_field
    psf = {b: band_psf(frame, b) for b, frame in frames.items()}
    winged, _ = degrade_frames(frames, 2.2, psf=psf, random_state=1, kernel="moffat")
    out = sourceclf.classify(positions, images=winged, model="margnet-cnn-sgq",
                             confidence=None, progress=False)
    assert float(out["psf_beta_r"][0]) < 4.0  # the wings kept: a Moffat index near 3
    pred = np.asarray(out["pred_class"].filled("")).astype(str)
    point = np.isin(pred[labels == "point"], ["STAR", "QSO"]).mean()
    assert float(out["psf_fwhm_r"][0]) == pytest.approx(2.2, rel=0.02)  # measured right
    assert point >= 0.8, point  # 0.825 when written
    assert _balanced(out, labels) >= 0.88  # 0.90 when written


def test_stamps_of_two_seeings_are_measured_each_through_its_own_psf(blurred_field):
    """Stamps from a sharp and a blurred frame in one catalog, with SDSS's psffwhm_<b> per
    row and without psf=: each row's columns are measured through its own PSF, and
    'auto' (margnet-sgq) holds on both halves.  One FWHM for all of them (psf=, the
    median) would fit the sharp half through the blurred PSF."""
    from astropy.table import vstack

    import sourceclf
    from sourceclf.cutouts import make_cutouts
    from sourceclf.psf import CATALOG_PSF_SCALE

    positions, labels, (frames, blurred), (sharp, wide) = blurred_field
    half = np.random.default_rng(0).permutation(len(positions)) < len(positions) // 2
    stamps = np.concatenate([make_cutouts(table=positions[rows], images=seen).data
                             for rows, seen in ((half, frames), (~half, blurred))])
    catalog = vstack([positions[half], positions[~half]])
    for b in BANDS:
        catalog[f"psffwhm_{b}"] = np.r_[np.full(half.sum(), sharp[b]),
                                        np.full((~half).sum(), wide[b])] / CATALOG_PSF_SCALE[b]
    truth = np.r_[labels[half], labels[~half]]
    out = sourceclf.classify(catalog, cutouts=stamps, confidence=None, progress=False)
    assert out.meta["CLFMODEL"] == "margnet-sgq" and "psffwhm_<b>" in out.meta["CLFPSF"]
    assert "measured on the stamps" in out.meta["CLFCOLS"]
    first = int(half.sum())
    for rows in (slice(None, first), slice(first, None)):  # 0.98 and 0.98 when written
        assert _balanced(out[rows], truth[rows]) >= 0.93


def test_stack_trains_a_psf_aware_cnn_member_on_the_psf_columns():
    from sourceclf.bands import MARGNET_FEATURES

    rng = np.random.default_rng(0)
    columns = [MARGNET_FEATURES.index(f"psffwhm_{b}") for b in BANDS]
    x = rng.normal(size=(60, 24)).astype(np.float32)
    x[:, columns] = 1.3
    images = rng.normal(size=(60, 5, 32, 32)).astype(np.float32)
    y = rng.integers(0, 2, 60)
    torch.manual_seed(0)
    stack = MargNetStack(n_classes=2, ann={"hidden": (8,)},
                         cnn={"width": 0.0625, "dense": (8,), "psf_inputs": 5},
                         cnn_psf_columns=columns, cnn_psf_scale=[0.9] * 5)
    history = fit_stages(stack, x[:40], y[:40], x[40:], y[40:], images_train=images[:40],
                         images_val=images[40:], epochs=1, batch_size=16, lr=1e-2, patience=2)
    assert set(history["stages"]) == {"ann", "cnn"}
    widths = stack.cnn_psf_widths(torch.as_tensor(x[:3]))
    assert torch.allclose(widths, torch.full((3, 5), 1.3 * 0.9))


def test_command_line_on_positions_and_frame_files(real_frame, shared_data, tmp_path,
                                                   capsys):
    """sourceclf-classify cat.fits --image b=frame... (issue 14's done command) streams the
    catalog and chooses as classify does: the columns measured, margnet-sgq."""
    from astropy.table import Table

    from sourceclf.cli import main

    cat, _ = real_frame
    Table({"ra": cat["ra"][:40], "dec": cat["dec"][:40]}).write(tmp_path / "cat.fits")
    argv = [str(tmp_path / "cat.fits"), "-o", str(tmp_path / "out.fits")]
    for b in "ugriz":
        argv += ["--image", f"{b}={shared_data / FRAME / f'frame-{b}-004510-4-0030.fits.bz2'}"]
    assert main(argv) == 0
    said = capsys.readouterr().out.splitlines()
    assert "MargNet's columns measured on the frames" in said[2], said[:3]
    out = Table.read(tmp_path / "out.fits")
    assert out.meta["CLFMODEL"] == "margnet-sgq" and "CLFCOLS" in out.meta
    assert len(out) == 40 and out.colnames[:2] == ["ra", "dec"]
    # The rows' PSF and neighbour counts reach the FITS output, with their units.
    assert out["psf_fwhm_r"].unit == "arcsec" and np.all(np.asarray(out["psf_fwhm_r"]) > 0.8)
    assert np.asarray(out["n_neighbours"]).dtype.kind == "i"
    assert np.all(np.asarray(out["n_neighbours"]) >= 0)
