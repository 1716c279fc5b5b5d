"""Classification of Dask DataFrames and LSDB catalogs (sourceclf.dask)."""

import numpy as np
import pytest
from astropy.table import Table

from sourceclf import classify

dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small random MLP on MargNet's features, with calibration data, on disk."""
    import torch

    from sourceclf.demo import demo_catalog
    from sourceclf.features import get_feature_set
    from sourceclf.models.base import TorchClassifier
    from sourceclf.models.card import ModelCard
    from sourceclf.models.margnet import PhotometricMLP
    from sourceclf.training import calibration_table

    torch.manual_seed(1)
    cat = demo_catalog(200, random_state=7)
    x = get_feature_set("margnet24").compute(cat).values
    config = {"n_features": 24, "n_classes": 2, "hidden": [8], "act": "relu",
              "dropout": 0.0, "standardize": True}
    module = PhotometricMLP(**config)
    module.standardize.fit(x)
    module.eval()
    card = ModelCard(name="tiny-dask-mlp", architecture="mlp", config=config,
                     feature_set="margnet24", classes=["GALAXY", "STAR"])
    clf = TorchClassifier(module, card)
    clf.calibration = calibration_table(clf, cat, x, (np.asarray(cat["class"]) == "STAR") * 1)
    return clf.save(tmp_path_factory.mktemp("model") / "tiny-dask-mlp")


@pytest.fixture(scope="module")
def frame():
    from sourceclf.demo import demo_catalog

    cat = demo_catalog(90, random_state=11)
    cat["dered_r"][[0, 29, 30, 89]] = np.nan
    cat["psffwhm_g"][45] = -9999.0
    cat.remove_column("class")
    df = cat.to_pandas()
    df.index = df.index * 10  # a non-default index survives
    return df


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def assert_matches_in_memory(result, df, model, **kwargs):
    """Each new column equals classify's, with masked values as missing values."""
    expected = classify(Table.from_pandas(df, index=False), model=model, progress=False,
                        **kwargs)
    result = result.loc[df.index]
    assert list(result.columns[: len(df.columns)]) == list(df.columns)
    new = [c for c in expected.colnames if c not in df.columns]
    assert list(result.columns[len(df.columns):]) == new
    for name in new:
        exp = expected[name]
        mask = np.ma.getmaskarray(exp)
        got = result[name]
        np.testing.assert_array_equal(got.isna().to_numpy(), mask, err_msg=name)
        values = np.ma.getdata(exp)[~mask]
        if values.dtype.kind in "US":
            assert str(got.dtype) == "string", name
            np.testing.assert_array_equal(got[~mask].to_numpy(dtype=str), values, err_msg=name)
        elif values.dtype.kind == "f":
            assert got.dtype == np.float32, name
            np.testing.assert_array_equal(got.to_numpy()[~mask], values, err_msg=name)
        else:
            assert str(got.dtype) == "Int16", name
            np.testing.assert_array_equal(got[~mask].to_numpy(dtype=int), values, err_msg=name)
    return expected


def test_classify_dask_threads_and_options(frame, model):
    import dask

    from sourceclf.dask import classify_dask

    ddf = dd.from_pandas(frame, npartitions=3)
    with dask.config.set(scheduler="threads"):
        result = classify_dask(ddf, model=model, confidence=[0.8, 0.95]).compute()
    assert_matches_in_memory(result, frame, model, confidence=[0.8, 0.95])
    result = classify_dask(ddf, model=model, confidence=None).compute(scheduler="sync")
    assert "pred_set" not in result.columns
    assert_matches_in_memory(result, frame, model, confidence=None)
    # 'auto' picks the model from the frame's columns, once, as classify does.
    result = classify_dask(ddf, confidence=None).compute(scheduler="sync")
    expected = assert_matches_in_memory(result, frame, "auto", confidence=None)
    assert result.attrs["CLFMODEL"] == expected.meta["CLFMODEL"]


def test_classify_dask_rejects_images(frame, model):
    from sourceclf.dask import classify_dask
    from sourceclf.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="cutouts"):
        classify_dask(dd.from_pandas(frame, npartitions=2), model=model,
                      cutouts=np.zeros((90, 5, 4, 4)))


# nested-pandas (under lsdb.from_dataframe) calls NestedFrame.drop(inplace=...).
@pytest.mark.filterwarnings("ignore:The inplace keyword in NestedFrame:"
                            "pandas.errors.Pandas4Warning")
def test_classify_lsdb_catalog(frame, model):
    lsdb = pytest.importorskip("lsdb")
    from sourceclf.dask import classify_dask

    catalog = lsdb.from_dataframe(frame.reset_index(drop=True), ra_column="ra",
                                  dec_column="dec", catalog_name="demo")
    out = classify_dask(catalog, model=model)
    assert type(out).__name__ == "Catalog"
    result = out.compute()
    assert len(result) == len(frame)
    result = result.set_index("objid")
    base = frame.set_index("objid")
    result = result.loc[base.index]
    base.index = result.index = np.arange(len(base))
    assert_matches_in_memory(result[list(base.columns) + [
        c for c in result.columns if c not in base.columns]], base, model)


# Last: once created, the module's Client is the default scheduler of later tests.
def test_classify_dask_on_local_cluster(client, frame, model):
    from sourceclf.dask import classify_dask

    ddf = dd.from_pandas(frame, npartitions=4)
    out = classify_dask(ddf, model=str(model), confidence=0.9)
    assert out.npartitions == 4
    assert list(out.columns) == list(frame.columns) + [
        "pred_class", "prob_galaxy", "prob_star", "pred_set", "pred_set_size", "pred_flag"]
    assert out.dtypes["prob_star"] == np.float32
    result = client.compute(out).result()
    expected = assert_matches_in_memory(result, frame, model, confidence=0.9)
    assert result["pred_class"].isna().sum() == 5
    assert result.attrs["CLFMODEL"] == expected.meta["CLFMODEL"] == "tiny-dask-mlp"
    # Each worker process loaded the model once and kept it.
    counts = client.run(lambda: len(__import__("sourceclf.dask").dask._MODELS))
    assert set(counts.values()) <= {0, 1}
    torch_threads = client.run(lambda: __import__("torch").get_num_threads())
    assert all(n == 1 for n, k in zip(torch_threads.values(), counts.values()) if k)
