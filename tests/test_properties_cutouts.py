"""Property tests: malformed cutouts through `sourceclf.classify` with image models.

Tiny, untrained image networks (MargNet's CNN on stamps alone, MargFormer on
stamps and MargNet's 24 features) are saved and loaded as users load models.
Hypothesis gives them stamps of the right and wrong shapes, numbers, layouts
and dtypes, with NaN, infinite, huge finite, all-zero or constant pixels.
The property is that of tests/test_properties_tables.py: every row kept and
classified or flagged, or one `~sourceclf.exceptions.SourceclfError` line.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sourceclf.bands import BANDS
from sourceclf.models import ModelCard, TorchClassifier, build_architecture, load_model
from test_properties_tables import EXAMPLES, calibration_table, catalogs, classify_or_refuse
from test_properties_tables import one_thread  # noqa: F401  (autouse fixture)

SIZE = 32

#: Pixel values that break naive normalisation: non-finite, huge, tiny, negative.
ODD_PIXELS = (np.nan, np.inf, -np.inf, 1e37, -1e37, 3.4e38, 1e19, -1e19, 1e15, 0.0, -1.0,
              1e-38)

#: The seeing the tiny models claim to be trained on (arcsec), for the seeing flags.
PSF_RANGE = {b: [0.9, 1.8] for b in BANDS}


def save_tiny_image_model(directory, architecture):
    """An untrained tiny image network saved with calibration and a seeing domain."""
    torch.manual_seed(0)
    classes = ["GALAXY", "QSO", "STAR"]
    if architecture == "margnet-cnn":
        cfg, feature_set = {"n_classes": 3, "width": 0.0625, "dense": [8]}, None
    else:
        cfg = {"n_classes": 3, "dim": 16, "depth": 1, "heads": 2, "token_layers": 1,
               "feature_hidden": [16]}
        feature_set = "margnet24"
    card = ModelCard(name=f"tiny-{architecture}", architecture=architecture, config=cfg,
                     feature_set=feature_set, uses_images=True, classes=classes,
                     domain={"description": "tiny test model", "psf_fwhm": PSF_RANGE})
    module = build_architecture(architecture, cfg)
    return TorchClassifier(module, card, calibration_table(classes)).save(directory)


@pytest.fixture(scope="module")
def image_models(tmp_path_factory):
    """Loaded tiny image models by architecture."""
    root = tmp_path_factory.mktemp("tiny-image")
    return {name: load_model(save_tiny_image_model(root / name, name))
            for name in ("margnet-cnn", "margformer")}


@st.composite
def stamps(draw, n, odd_pixels=True):
    """Stamps for ``n`` rows: usually (n, 5, 32, 32) float32 sky plus a source.

    Some have the wrong count, shape, layout or dtype, or come as a list;
    with ``odd_pixels`` some stamps get `ODD_PIXELS` in some pixels, in a
    whole band, or everywhere.
    """
    count = draw(st.sampled_from([n] * 6 + [max(n - 1, 0), n + 1]))
    shape = draw(st.sampled_from(
        [(count, 5, SIZE, SIZE)] * 8
        + [(count, SIZE, SIZE, 5), (count, 4, SIZE, SIZE), (count, 5, 16, 16),
           (count, 5, SIZE, SIZE + 1), (count, 5, SIZE), (count, 1, 5, SIZE, SIZE),
           (count, 5, 5, 5)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = rng.normal(0.0, 0.05, size=shape)
    if len(shape) == 4 and shape[1] == 5 and shape[2:] == (SIZE, SIZE):
        yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
        data += 10.0 * np.exp(-0.5 * (xx ** 2 + yy ** 2) / 4.0)
    if odd_pixels and data.size:
        flat = data.reshape(len(data), -1) if len(data) else data
        for _ in range(draw(st.integers(0, 3))):
            row = draw(st.integers(0, len(data) - 1))
            value = draw(st.sampled_from(ODD_PIXELS))
            where = draw(st.sampled_from(["pixel", "band", "stamp"]))
            if where == "stamp":
                flat[row] = value
            elif where == "band":
                data[row, draw(st.integers(0, shape[1] - 1))] = value
            else:
                flat[row, draw(st.integers(0, flat.shape[1] - 1))] = value
    dtypes = ["float32"] * 6 + ["float64", "float16", "int16", "uint8", "bool", ">f4",
                                "complex64"]
    dtype = draw(st.sampled_from(dtypes))
    with np.errstate(invalid="ignore", over="ignore"):
        data = data.astype(dtype)
    form = draw(st.sampled_from(["array"] * 4 + ["list", "dicts", "object"]))
    if form == "list":
        return list(data)
    if form == "dicts" and len(shape) == 4 and shape[1] == 5:
        return [dict(zip(BANDS, stamp)) for stamp in data]
    if form == "object":
        out = np.empty(len(data), dtype=object)
        out[:] = list(data) if len(data) != 1 else [data[0]]
        return out
    return data


_PSF = st.sampled_from([None, 1.2, {b: 1.3 for b in BANDS}, 5.0])


@settings(max_examples=2 * EXAMPLES)
@given(n=st.integers(0, 6), data=st.data(), psf=_PSF,
       confidence=st.sampled_from([0.9, None]))
def test_cnn_on_malformed_cutouts(image_models, n, data, psf, confidence):
    from astropy.table import Table

    table = Table({"rowid": np.arange(n)})
    cutouts = data.draw(stamps(n), label="cutouts")
    classify_or_refuse(table, image_models["margnet-cnn"], cutouts=cutouts, psf=psf,
                       confidence=confidence)


@settings(max_examples=EXAMPLES)
@given(table=catalogs("margnet24", max_rows=5), data=st.data(), psf=_PSF)
def test_margformer_on_malformed_catalogs_and_cutouts(image_models, table, data, psf):
    cutouts = data.draw(stamps(len(table)), label="cutouts")
    classify_or_refuse(table, image_models["margformer"], cutouts=cutouts, psf=psf,
                       confidence=0.9)


@settings(max_examples=EXAMPLES)
@given(n=st.integers(1, 4), value=st.sampled_from(ODD_PIXELS),
       architecture=st.sampled_from(["margnet-cnn", "margformer"]),
       confidence=st.sampled_from([0.9, None]))
def test_one_odd_stamp_spares_the_others(image_models, n, value, architecture, confidence):
    """A stamp full of one odd value: that row flagged or classified, the others classified."""
    from astropy.table import Table

    from sourceclf.demo import demo_catalog

    table = demo_catalog(n, random_state=1) if architecture == "margformer" else \
        Table({"rowid": np.arange(n)})
    rng = np.random.default_rng(0)
    cutouts = rng.normal(0, 0.05, (n, 5, SIZE, SIZE)).astype(np.float32)
    with np.errstate(over="ignore"):
        cutouts[0] = np.float32(value)
    out = classify_or_refuse(table, image_models[architecture], cutouts=cutouts, psf=1.2,
                             confidence=confidence)
    assert out is not None, "one odd stamp refused the whole catalog"
    assert not np.ma.getmaskarray(out["pred_class"])[1:].any()
    assert (np.isfinite(value) and abs(value) <= 1e19) or out["pred_flag"][0]
