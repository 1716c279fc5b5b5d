"""Property tests: malformed catalogs through `sourceclf.classify`.

Hypothesis builds tables with the columns the photometric feature sets read
(``ugriz``: u g r i z; ``margnet24``: dered, deVRad, psffwhm, extinction and
colours), in random dtypes and units, with NaN, infinities, SDSS sentinels,
placeholders, absurd values and masks, columns missing or doubled in another
case, extra columns, 0 to a few dozen rows.  The property: `classify` returns
every row in order, input columns untouched, each row classified (finite
probabilities summing to 1) or flagged in ``pred_flag``, or it refuses the
input with one `~sourceclf.exceptions.SourceclfError` line.  Nothing else.

The helpers here (tiny saved models, the outcome checks, the table strategy)
serve the other ``test_properties_*.py`` files too.  Example counts follow the
Hypothesis profile of tests/conftest.py (``HYPOTHESIS_PROFILE=nightly``: ten
times more).
"""

import warnings

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sourceclf import classify
from sourceclf.bands import BANDS, COLOURS
from sourceclf.exceptions import SourceclfError
from sourceclf.models import ModelCard, PhotometricMLP, TorchClassifier, load_model

#: Examples of the profile in use (100 in "ci", 1000 in "nightly"); tests scale it.
EXAMPLES = settings.default.max_examples

MARGNET_COLUMNS = tuple(f"{kind}_{b}" for b in BANDS
                        for kind in ("dered", "deVRad", "psffwhm", "extinction")) + COLOURS
UGRIZ_COLUMNS = BANDS

#: Plausible range of each kind of column (the prefix before ``_<band>``).
_TYPICAL = {"dered": (14.0, 24.0), "deVRad": (0.0, 10.0), "psffwhm": (0.8, 2.5),
            "extinction": (0.0, 0.5), "colour": (-1.0, 3.0), "mag": (14.0, 24.0)}

#: Values real catalogs hold in place of a measurement, and absurd ones.
BAD_VALUES = (np.nan, np.inf, -np.inf, -9999.0, -999.0, -99.99, 99.0, 99.99, 999.0, 1e30,
              -1e30, 3.4e38, -3.4e38, 1e300, -1.0, 0.0, 5e-324)

#: Units a column may carry: none, the right ones, convertible ones, and junk.
UNITS = (None, "mag", "ABmag", "mag(AB)", "arcsec", "deg", "pix", "nanomaggy", "junk",
         "erg / s", "")

#: Dtypes a numeric column may be stored in, and the non-numeric ones.
DTYPES = ("float64", "float32", "int64", "int32", "int16", "uint8", "bool", "bytes", "str",
          "object")


def _kind(name):
    if name in COLOURS:
        return "colour"
    if name in BANDS:
        return "mag"
    return name.rsplit("_", 1)[0]


# Tiny saved models -----------------------------------------------------------------

def calibration_table(classes, n=40, random_state=0):
    """A calibration split for conformal sets: probabilities and labels."""
    rng = np.random.default_rng(random_state)
    proba = rng.dirichlet(np.ones(len(classes)), size=n)
    table = Table({f"prob_{c.lower()}": proba[:, k] for k, c in enumerate(classes)})
    table["label"] = rng.choice(classes, n)
    return table


def save_tiny_photometric(directory, feature_set, classes):
    """Save an untrained 1-layer MLP on a feature set, with calibration; return its path."""
    torch.manual_seed(0)
    n_features = 24 if feature_set == "margnet24" else 5
    cfg = {"n_features": n_features, "n_classes": len(classes), "hidden": [8], "act": "relu",
           "dropout": 0.0}
    card = ModelCard(name=f"tiny-{feature_set}", architecture="mlp", config=cfg,
                     feature_set=feature_set, classes=list(classes))
    return TorchClassifier(PhotometricMLP(**cfg), card, calibration_table(classes)).save(
        directory)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Loaded tiny photometric models by feature set (``'ugriz'``, ``'margnet24'``)."""
    root = tmp_path_factory.mktemp("tiny-photometric")
    return {"ugriz": load_model(save_tiny_photometric(root / "ugriz", "ugriz",
                                                      ["GALAXY", "QSO", "STAR"])),
            "margnet24": load_model(save_tiny_photometric(root / "margnet24", "margnet24",
                                                          ["GALAXY", "STAR"]))}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread (and leave the other core to others)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Outcome checks ----------------------------------------------------------------------

def assert_one_line(exc):
    """A refusal: a sourceclf error whose message is one non-empty line."""
    assert isinstance(exc, SourceclfError), repr(exc)
    text = str(exc)
    assert text.strip() and "\n" not in text, f"not one line: {text!r}"


def _values(column):
    data = column.value if isinstance(column, u.Quantity) else np.ma.getdata(column)
    return np.asarray(data)


def assert_same_column(got, expected, name):
    """Same dtype, shape, unit, mask and values (NaN equal to NaN)."""
    a, b = _values(got), _values(expected)
    assert a.dtype == b.dtype and a.shape == b.shape, f"column {name!r} changed type or shape"
    assert str(getattr(got, "unit", None)) == str(getattr(expected, "unit", None)), name
    assert np.array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(expected)), name
    if a.dtype.kind in "fc":
        assert np.array_equal(a, b, equal_nan=True), f"column {name!r} changed values"
    elif a.dtype.kind == "O":
        assert [repr(x) for x in a.ravel()] == [repr(x) for x in b.ravel()], name
    else:
        assert np.array_equal(a, b), f"column {name!r} changed values"


def assert_same_table(got, expected):
    """``got`` holds ``expected``'s columns, in order, unchanged."""
    assert len(got) == len(expected), f"{len(got)} rows, expected {len(expected)}"
    assert list(got.colnames[:len(expected.colnames)]) == list(expected.colnames)
    for name in expected.colnames:
        assert_same_column(got[name], expected[name], name)


def assert_classified(out, classes):
    """Each row classified (finite probabilities summing to 1) or flagged; sets consistent."""
    n = len(out)
    assert "pred_flag" in out.colnames and "pred_class" in out.colnames
    unclassified = np.ma.getmaskarray(out["pred_class"])
    predicted = np.asarray(np.ma.getdata(out["pred_class"])).astype(str)
    flags = np.asarray(out["pred_flag"]).astype(str)
    proba = np.column_stack([np.ma.getdata(out[f"prob_{c.lower()}"]).astype(float)
                             for c in classes]) if n else np.empty((0, len(classes)))
    for c in classes:
        assert np.array_equal(np.ma.getmaskarray(out[f"prob_{c.lower()}"]), unclassified)
    for i in range(n):
        if unclassified[i]:
            assert flags[i], f"row {i} is neither classified nor flagged"
            continue
        p = proba[i]
        assert np.isfinite(p).all() and (p >= 0).all(), f"row {i}: probabilities {p}"
        assert abs(p.sum() - 1) < 1e-4, f"row {i}: probabilities sum to {p.sum()}"
        assert predicted[i] in classes and predicted[i] == classes[int(np.argmax(p))], i
    for name in out.colnames:
        if name.startswith("pred_set") and not name.startswith("pred_set_size"):
            size = out[name.replace("pred_set", "pred_set_size", 1)]
            for i in np.flatnonzero(~unclassified):
                members = [m for m in str(out[name][i]).split("|") if m]
                assert set(members) <= set(classes), f"row {i}: set {out[name][i]!r}"
                assert int(size[i]) == len(members), f"row {i}: set size {size[i]}"


def classify_or_refuse(table, model, **kwargs):
    """Run `classify`; check the property; return the output or None (refused)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are not the property; errors are
        before = table.copy(copy_data=True)
        try:
            out = classify(table, model=model, **kwargs)
        except SourceclfError as exc:
            assert_one_line(exc)
            assert_same_table(table, before)  # the input is never modified
            event(f"refused: {type(exc).__name__}: {str(exc)[:40]}")
            return None
    assert_same_table(table, before)
    assert_same_table(out, before)
    event("classified" if len(out) else "classified an empty table")
    assert_classified(out, list(model.classes) if hasattr(model, "classes")
                      else list(load_model(out.meta["CLFMODEL"]).classes))
    return out


# The table strategy --------------------------------------------------------------------

def _as_dtype(values, dtype, draw):
    """``values`` (float64) stored as ``dtype``, the way catalogs get it wrong."""
    if dtype in ("float64", "float32"):
        with np.errstate(over="ignore"):
            return values.astype(dtype)
    if dtype == "bool":
        return values > 17
    if dtype in ("int64", "int32", "int16", "uint8"):
        info = np.iinfo(dtype)
        clean = np.where(np.isfinite(values), values, -9999.0)
        low, high = max(info.min, -2**31), min(info.max, 2**31 - 1)
        return np.clip(np.round(clean), low, high).astype(dtype)
    text = [draw(st.sampled_from([repr(float(v)), f"{v:.3f}", "", "nan", "N/A", " 17.5 ",
                                  "--", "\u00ff\u00e9"])) for v in values]
    if dtype == "bytes":
        return np.array([t.encode("utf-8") for t in text], dtype=bytes)
    if dtype == "str":
        return np.array(text, dtype=str)
    mixed = [draw(st.sampled_from([float(v), t, None, t.encode(), int(np.nan_to_num(v))]))
             for v, t in zip(values, text)]
    out = np.empty(len(mixed), dtype=object)
    out[:] = mixed
    return out


#: The units a clean column of each kind may carry.
_GOOD_UNITS = {"dered": (None, "mag"), "mag": (None, "mag"), "colour": (None, "mag"),
               "extinction": (None, "mag"), "deVRad": (None, "arcsec"),
               "psffwhm": (None, "arcsec")}


@st.composite
def column_data(draw, kind, n, dirty):
    """One column: values, dtype, unit and mask; odd ones only when ``dirty``.

    A clean column holds plausible float values in a right unit; a dirty one
    may hold any of `BAD_VALUES` in some cells, any of `DTYPES` and `UNITS`,
    and masked entries.
    """
    low, high = _TYPICAL[kind]
    values = draw(hnp.arrays(np.float64, n, elements=st.floats(low, high)))
    if not dirty:
        dtype = draw(st.sampled_from(("float64", "float32")))
        return _as_dtype(values, dtype, draw), draw(st.sampled_from(_GOOD_UNITS[kind])), None
    for row, value in draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)),
                                              st.sampled_from(BAD_VALUES)),
                                    max_size=n)):
        values[row] = value
    dtype = draw(st.sampled_from(DTYPES[:2] * 4 + DTYPES))
    unit = draw(st.sampled_from(_GOOD_UNITS[kind] * 3 + UNITS))
    data = _as_dtype(values, dtype, draw)
    masked = draw(st.sampled_from(("no", "no", "some", "all")))
    if masked == "no":
        return data, unit, None
    mask = (np.ones(n, bool) if masked == "all"
            else draw(hnp.arrays(bool, n, elements=st.booleans())))
    return data, unit, mask


#: Names a catalog may also have: ids, positions, labels, foreign and doubled spellings.
EXTRA_NAMES = ("objid", "ra", "dec", "class", "U", "DERED_R", "modelMag_g", "psfMag_r",
               "umag", "notes", "flux", "Dered_u", "PSFFWHM_I", "r", "z")


@st.composite
def catalogs(draw, feature_set, max_rows=12):
    """A catalog for ``feature_set`` with malformed columns (see the module docstring).

    Most columns are clean; up to four are dirty (`column_data`), up to three
    required ones are missing, names may change case or order, and extra
    columns (some spelling a required one another way) may follow.
    """
    n = draw(st.integers(0, max_rows))
    required = MARGNET_COLUMNS if feature_set == "margnet24" else UGRIZ_COLUMNS
    dropped = set(draw(st.sets(st.sampled_from(required), max_size=3))
                  if draw(st.integers(0, 4)) == 0 else ())
    names = [c for c in required if c not in dropped]
    if draw(st.booleans()):
        names = names[::-1] if draw(st.booleans()) else sorted(names, key=str.lower)
    case = draw(st.sampled_from(("as is",) * 4 + ("upper", "lower")))
    extras = draw(st.lists(st.sampled_from(EXTRA_NAMES), max_size=3, unique=True))
    names += [x for x in extras if x.lower() not in {c.lower() for c in names}]
    dirty = draw(st.sets(st.sampled_from(names), max_size=4)) if names else set()
    table_class = draw(st.sampled_from((Table, Table, Table, QTable)))
    columns = {"rowid": (np.arange(n), None, None)}
    for name in names:
        known = {c.lower(): c for c in required}.get(name.lower())
        kind = _kind(known) if known else draw(st.sampled_from(sorted(_TYPICAL)))
        label = {"upper": name.upper(), "lower": name.lower()}.get(case, name)
        if label not in columns:
            columns[label] = draw(column_data(kind, n, name in dirty))
    if draw(st.integers(0, 9)) == 0:  # a 2-D column: one array per row
        columns["spectrum"] = (np.zeros((n, 3)), None, None)
    table = table_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # units astropy cannot parse become UnrecognizedUnit
        for label, (data, unit, mask) in columns.items():
            if mask is not None:
                table[label] = MaskedColumn(data, mask=mask, unit=unit or None)
                continue
            try:
                table[label] = u.Quantity(data, unit) if (
                    table_class is QTable and unit and data.dtype.kind in "fiu") else data
            except (TypeError, ValueError):
                table[label] = data
            if unit and table_class is Table:
                table[label].unit = unit
    return table


# Properties ----------------------------------------------------------------------------

_OPTIONS = st.fixed_dictionaries({
    "confidence": st.sampled_from([0.9, None, [0.68, 0.95], 0.5]),
    "batch_size": st.sampled_from([None, None, 1, 3]),
})


@settings(max_examples=2 * EXAMPLES)
@given(table=catalogs("ugriz"), options=_OPTIONS)
def test_ugriz_catalogs(tiny_models, table, options):
    classify_or_refuse(table, tiny_models["ugriz"], **options)


@settings(max_examples=EXAMPLES)
@given(table=catalogs("margnet24"), options=_OPTIONS)
def test_margnet24_catalogs(tiny_models, table, options):
    classify_or_refuse(table, tiny_models["margnet24"], **options)


@pytest.fixture(scope="module")
def shipped():
    """The shipped photometric models the property runs through (domains, blends, trees)."""
    return {name: load_model(name) for name in ("margnet-photometry-sg", "blend-photometry-sg",
                                                "ugriz-sgq", "bayesian-margnet-photometry-sg")}


@settings(max_examples=EXAMPLES)
@given(name=st.sampled_from(["margnet-photometry-sg", "blend-photometry-sg", "ugriz-sgq",
                             "bayesian-margnet-photometry-sg"]), data=st.data(),
       options=_OPTIONS)
def test_shipped_models_on_malformed_catalogs(shipped, name, data, options):
    model = shipped[name]
    table = data.draw(catalogs(model.feature_set, max_rows=8), label="table")
    if name.startswith("bayesian"):
        options["mc_samples"] = data.draw(st.sampled_from([None, 2]), label="mc_samples")
    classify_or_refuse(table, model, **options)


@settings(max_examples=max(EXAMPLES // 10, 5))
@given(table=st.one_of(catalogs("ugriz", max_rows=5), catalogs("margnet24", max_rows=5)))
def test_auto_model_on_malformed_catalogs(table):
    classify_or_refuse(table, "auto", confidence=0.9)


@settings(max_examples=EXAMPLES // 2)
@given(table=catalogs("ugriz", max_rows=6))
def test_pandas_catalogs(tiny_models, table):
    pd = pytest.importorskip("pandas")
    try:
        frame = table.to_pandas()
    except (TypeError, ValueError):
        return  # a table pandas cannot hold (2-D columns): not a DataFrame a user has
    before = frame.copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = classify(frame, model=tiny_models["ugriz"], confidence=0.9)
    except SourceclfError as exc:
        assert_one_line(exc)
        return
    finally:
        pd.testing.assert_frame_equal(frame, before)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(frame.index)
    pd.testing.assert_frame_equal(out[list(frame.columns)], frame, check_dtype=False)
