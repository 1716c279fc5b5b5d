"""The experiment runner, end to end on tiny synthetic catalogs."""

import json

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.demo import demo_catalog
from sourceclf.exceptions import InvalidInputError
from sourceclf.experiments import PUBLISHED, load_experiment_data, main, run_experiment

FAST = dict(seeds=(0, 1), search=False, epochs=2, patience=2, batch_size=64, n_jobs=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One OpenMP/BLAS thread (much faster for tiny data on a busy machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def small():
    return demo_catalog(240, random_state=11)


def sgq_catalog(n=300, seed=4):
    t = demo_catalog(n, random_state=seed)
    labels = np.asarray(t["class"]).astype("U6")
    stars = np.flatnonzero(labels == "STAR")
    labels[stars[: len(stars) // 2]] = "QSO"
    t["class"] = labels
    return t


def test_run_experiment_sg(small, tmp_path):
    result = run_experiment(small, experiment=2, task="sg",
                            models=["dt", "gbdt", "margnet", "margformer", "nonsense"],
                            configs={"margnet": {"hidden": [16, 8]}}, **FAST)
    assert result.models() == ["dt", "gbdt", "margnet"]
    assert len(result.runs) == 6
    assert "cutouts" in result.skipped["margformer"] or \
        "not registered" in result.skipped["margformer"]
    assert "not registered" in result.skipped["nonsense"]
    s = result.settings
    assert (s["n_train"], s["n_validation"], s["n_test"]) == (192, 24, 24)  # 80/10/10
    assert s["feature_set"] == "margnet24"
    summary = result.summary()
    assert list(summary["model"]) == ["dt", "gbdt", "margnet"]
    for row in summary:
        runs = [100 * r["metrics"]["accuracy"] for r in result.runs if r["model"] == row["model"]]
        assert row["accuracy_mean"] == pytest.approx(np.mean(runs))
        assert row["accuracy_std"] == pytest.approx(np.std(runs, ddof=1))
    assert summary["published_accuracy"][0] == PUBLISHED["dt"][(2, "sg")]
    assert result.confusion_matrix("dt").sum() == 2 * 24

    paths = result.write(tmp_path / "report")
    md = paths["markdown"].read_text()
    assert "| Model | Accuracy (%) | Precision (%) | Recall (%) | F1 (%) |" in md
    assert "| Decision tree |" in md and "Published accuracy, Ex2 SG" in md
    assert "margformer" in md  # listed as not run
    rst = paths["rst"].read_text()
    assert rst.startswith(":orphan:") and ".. results-start" in rst
    assert ".. list-table::" in rst
    data = json.loads(paths["json"].read_text())
    assert len(data["runs"]) == 6 and data["task"] == "sg"
    assert paths["confusion"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rst_renders_without_warnings(small):
    docutils_core = pytest.importorskip("docutils.core")
    result = run_experiment(small, experiment=1, task="sg", models=["dt"], seeds=(0,),
                            search=False)
    text = result.to_rst().split(".. results-start", 1)[1]
    docutils_core.publish_doctree(text, settings_overrides={"halt_level": 2,
                                                            "report_level": 2})


def test_search_once_reuses_best_params(small):
    result = run_experiment(small, experiment=2, task="sg", models=["dt"], seeds=(0, 1),
                            search=True, param_grids={"dt": {"max_depth": [2, 4]}}, n_jobs=1)
    first, second = result.runs
    assert first["info"]["search"] and not second["info"]["search"]
    assert second["info"]["params"]["max_depth"] == first["info"]["best_params"]["max_depth"]


def test_sgq_with_ugriz_features():
    t = sgq_catalog()
    result = run_experiment(t, experiment=1, task="sgq", models=["rf"], seeds=(0,),
                            search=False, feature_set="ugriz", n_jobs=1)
    assert result.classes == ("GALAXY", "QSO", "STAR")
    assert result.settings["feature_set"] == "ugriz"
    assert np.asarray(result.runs[0]["metrics"]["confusion_matrix"]).shape == (3, 3)


def test_sg_drops_quasars():
    t = sgq_catalog()
    result = run_experiment(t, experiment=1, task="sg", models=["dt"], seeds=(0,),
                            search=False)
    n_sg = int(np.sum(np.asarray(t["class"]) != "QSO"))
    s = result.settings
    assert s["n_train"] + s["n_validation"] + s["n_test"] == n_sg


def test_experiment_3_tests_on_faint_table(small):
    faint = demo_catalog(50, random_state=12)
    result = run_experiment(small, experiment=3, task="sg", models=["dt"], seeds=(0,),
                            search=False, faint_table=faint)
    assert result.settings["n_test"] == 50
    # Experiment 1's split of the compact table, minus its (unused) 12.5 % test part.
    assert result.settings["n_train"] + result.settings["n_validation"] == 210


def test_rows_with_missing_features_are_dropped(small):
    t = Table(small, copy=True)
    t["dered_r"][:10] = np.nan
    result = run_experiment(t, experiment=2, task="sg", models=["dt"], seeds=(0,),
                            search=False)
    dropped = result.settings["rows_dropped_missing_features"]
    assert sum(dropped.values()) == 10
    s = result.settings
    assert s["n_train"] + s["n_validation"] + s["n_test"] == len(t) - 10


def test_image_model_runs_with_cutouts(small, monkeypatch):
    import torch
    from torch import nn

    from sourceclf.models import architectures

    class TinyImageNet(nn.Module):
        uses_features = True
        uses_images = True

        def __init__(self, n_features, n_classes):
            super().__init__()
            self.conv = nn.Conv2d(5, 4, 3)
            self.head = nn.Linear(4 + n_features, n_classes)

        def forward(self, features, images):
            pooled = self.conv(images).mean(dim=(2, 3))
            return self.head(torch.cat([pooled, features], dim=1))

    monkeypatch.setitem(architectures.ARCHITECTURES, "tiny-image-test", TinyImageNet)
    cutouts = np.random.default_rng(0).normal(size=(len(small), 5, 16, 16)).astype("f4")
    result = run_experiment(small, experiment=2, task="sg", models=["tiny-image-test"],
                            cutouts=cutouts, seeds=(0,), epochs=1, batch_size=64)
    assert result.models() == ["tiny-image-test"] and not result.skipped
    assert result.confusion_matrix("tiny-image-test").sum() == result.settings["n_test"]


def test_cli_end_to_end(small, tmp_path, capsys):
    path = tmp_path / "cat.fits"
    small.write(path)
    out = tmp_path / "out"
    rc = main(["run", "--table", str(path), "--experiment", "2", "--task", "sg",
               "--models", "dt,margnet,margformer", "--seeds", "0,1", "--no-search",
               "--epochs", "2", "--batch-size", "64", "--n-jobs", "1",
               "--config", '{"margnet": {"hidden": [8]}}', "--output", str(out),
               "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| Decision tree |" in printed and "| MargNet ANN |" in printed
    assert {p.name for p in out.iterdir()} == {"results.md", "results.rst", "results.json",
                                               "confusion.png"}
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["command"].startswith("python -m sourceclf.experiments run")
    assert "margformer" in data["skipped"]


def test_cli_errors(small, tmp_path, capsys):
    rc = main(["run", "--table", str(tmp_path / "missing.fits"), "--experiment", "2",
               "--output", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not found" in err and "Traceback" not in err
    path = tmp_path / "cat.ecsv"
    small.write(path)
    rc = main(["run", "--table", str(path), "--experiment", "3", "--task", "sg",
               "--output", str(tmp_path / "o")])
    assert rc == 2
    assert "faint" in capsys.readouterr().err
    rc = main(["run", "--table", str(path), "--experiment", "2", "--config", "[1]",
               "--output", str(tmp_path / "o")])
    assert rc == 2


def test_load_experiment_data_needs_one_source(small):
    with pytest.raises(InvalidInputError, match="either"):
        load_experiment_data()
    with pytest.raises(InvalidInputError, match="experiment 2 does not use"):
        load_experiment_data(table=small, faint_table=small, experiment=2)
