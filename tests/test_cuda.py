"""The CUDA paths give the CPU's answers: shipped image models, training, streaming.

Skipped without a CUDA GPU (the CI machine has none); ``benchmarks/gpu_checks.sh``
runs them on a GPU machine.  On the GPU, convolutions and matrix products may use
TF32, so probabilities agree to a few 1e-3, not bit for bit.
"""

import numpy as np
import pytest
import torch
from conftest import blob_stamps

from sourceclf.conformal import probability_classes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

IMAGE_MODELS = ("margnet-cnn-sgq", "margnet-sgq", "margformer-sgq", "bayesian-margnet-sgq",
                "bayesian-margformer-sgq")
#: Largest difference of a probability between the GPU (fp32, TF32 allowed) and the CPU.
PROB_TOLERANCE = 0.02


def _stamps(n, seed=0):
    """Five-band stamps in nanomaggies (sky noise 0.03): point sources of 1.3" seeing
    (sigma 2.3 px at 0.396"/px, label 1) and extended ones (sigma 4 px), r about 17-20."""
    return blob_stamps(n, seed, sigmas=(4.0, 1.3 / 0.396 / 2.355), log_flux=(1.0, 2.2),
                       noise=0.03, jitter=0.5)


def _probs(out):
    return np.column_stack([np.asarray(out[f"prob_{c.lower()}"], dtype=float)
                            for c in probability_classes(out)])


@pytest.mark.parametrize("name", IMAGE_MODELS)
# Toy stamps are unlike the calibration stamps: the set-shift alarm may sound, on both devices.
@pytest.mark.filterwarnings("ignore::sourceclf.exceptions.ShiftAlarmWarning")
def test_shipped_image_models_give_the_cpus_answers_on_the_gpu(name):
    from sourceclf import classify
    from sourceclf.demo import demo_catalog
    from sourceclf.models import model_names

    if name not in model_names():
        pytest.skip(f"{name} is not installed")
    stamps, _ = _stamps(64)
    table = demo_catalog(64, random_state=1)
    kwargs = dict(cutouts=stamps, model=name, psf=1.3, confidence=0.9, progress=False)
    if name.startswith("bayesian"):
        kwargs["mc_samples"] = 8
    cpu = classify(table, device="cpu", **kwargs)
    gpu = classify(table, device="cuda", **kwargs)
    assert np.abs(_probs(cpu) - _probs(gpu)).max() < PROB_TOLERANCE
    same = np.asarray(cpu["pred_class"]) == np.asarray(gpu["pred_class"])
    assert same.mean() >= 0.95
    assert np.array_equal(np.asarray(cpu["pred_flag"]), np.asarray(gpu["pred_flag"]))
    assert gpu.meta["CLFMODEL"] == name


@pytest.mark.parametrize("name,config", [
    ("margnet-cnn", {"width": 0.0625, "dense": (16,)}),
    ("margformer", {"dim": 16, "depth": 1, "heads": 2, "token_layers": 1,
                    "feature_hidden": (16,)}),
])
def test_image_training_on_the_gpu(name, config):
    """Training (augmentation included) runs on the GPU; the model it gives
    classifies on either device with the same answers."""
    import sourceclf
    from sourceclf.demo import demo_catalog

    stamps, labels = _stamps(200, seed=2)
    table = demo_catalog(200, random_state=2)
    table["class"] = np.where(labels == 1, "STAR", "GALAXY")
    clf = sourceclf.train(table, stamps, model=name, config=config, epochs=4, batch_size=32,
                          lr=3e-3, patience=4, device="cuda", random_state=0, progress=False)
    assert clf.card.metrics["validation"]["accuracy"] >= 0.8
    cpu = sourceclf.classify(table[:40], stamps[:40], model=clf, psf=1.3, confidence=None,
                             device="cpu", progress=False)
    gpu = sourceclf.classify(table[:40], stamps[:40], model=clf, psf=1.3, confidence=None,
                             device="cuda", progress=False)
    assert np.abs(_probs(cpu) - _probs(gpu)).max() < PROB_TOLERANCE


def test_photometric_training_on_the_gpu():
    """The same recipe learns as well on the GPU as on the CPU."""
    import sourceclf
    from sourceclf.demo import demo_catalog

    table = demo_catalog(600, random_state=4)
    options = dict(model="margnet-ann", config={"hidden": (32, 16)}, epochs=60, patience=60,
                   random_state=0, progress=False)
    on_cpu = sourceclf.train(table, device="cpu", **options)
    on_gpu = sourceclf.train(table, device="cuda", **options)
    accuracy = [m.card.metrics["validation"]["accuracy"] for m in (on_cpu, on_gpu)]
    assert accuracy[1] >= accuracy[0] - 0.05 and accuracy[1] > 0.5  # three classes
    out = sourceclf.classify(table[:100], model=on_gpu, device="cuda", progress=False)
    assert "pred_set" in out.colnames


def test_classify_file_streams_on_the_gpu(tmp_path):
    """Chunks on the GPU: the file's answers are those of classify on the CPU."""
    from astropy.table import Table

    from sourceclf import classify, classify_file
    from sourceclf.demo import write_demo_catalog

    path = tmp_path / "cat.fits"
    write_demo_catalog(path, 3000, random_state=5)
    classify_file(path, tmp_path / "out.fits", chunk_size=1000, device="cuda", progress=False)
    gpu = Table.read(tmp_path / "out.fits")
    cpu = classify(Table.read(path), device="cpu", progress=False)
    ok = ~np.ma.getmaskarray(cpu["pred_class"])
    assert np.abs(_probs(cpu)[ok] - _probs(gpu)[ok]).max() < PROB_TOLERANCE
    cls_gpu = np.char.strip(np.asarray(gpu["pred_class"][ok]).astype(str))
    assert (np.asarray(cpu["pred_class"][ok]).astype(str) == cls_gpu).mean() >= 0.99
