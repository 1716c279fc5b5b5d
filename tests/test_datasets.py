"""Tests of sourceclf.datasets.

Network access is replaced, the astroquery way, by recorded SkyServer answers
(``SDSS._request`` patched to return a `~astroquery.utils.mocks.MockResponse`).

``data/datasets_sdss_query.csv`` is a SkyServer CSV answer (``#Table1`` first
line) to `margnet_sql`'s columns.  Its rows are six real DR16 objects of
``../shared/data/sdss_dr16_faint_compact_sg.fits``: objid, class and the 24
features are that file's values (7 significant digits, as SkyServer prints
``real`` columns), run / rerun / camcol / field are decoded from the objid.
That file has no positions, so ``ra`` and ``dec`` are placeholders
(150.0 + 0.0123 k, 2.0 + 0.0071 k).  ``data/datasets_sdss_frames.csv`` is the
answer of the positional frame look-up for the first three of those rows.
"""

import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import train_test_split

from sourceclf import datasets
from sourceclf.datasets import (MARGNET_CLASSES, MARGNET_FEATURES, FrameCutouts, LazyStamps,
                                compact_mask, decode_objid, faint_mask, get_cutouts,
                                load_margnet, margnet_sql, query_sdss, split_experiment)
from sourceclf.exceptions import InvalidInputError, MissingColumnsError
from conftest import SHARED_DATA

DATA = Path(__file__).parent / "data"
SHARED = SHARED_DATA  # $SOURCECLF_DATA or ../shared/data (see conftest.py)
FAINT_FITS = SHARED / "sdss_dr16_faint_compact_sg.fits"
QUERY_CSV = DATA / "datasets_sdss_query.csv"
FRAMES_CSV = DATA / "datasets_sdss_frames.csv"


def one_line(excinfo):
    text = str(excinfo.value)
    assert text and "\n" not in text
    return text


# ---------------------------------------------------------------------------
# margnet_sql
# ---------------------------------------------------------------------------

def test_margnet_sql_columns_and_cuts():
    sql = margnet_sql()
    assert sql.startswith("SELECT p.objID AS objid, p.ra, p.dec, p.run, p.rerun, p.camcol, "
                          "p.field, s.class, p.dered_u, p.deVRad_u,")
    assert "FROM PhotoObj AS p" in sql
    assert "JOIN SpecObj AS s ON s.bestObjID = p.objID" in sql
    for name in MARGNET_FEATURES[:20]:
        assert f"p.{name}," in sql
    assert ("(p.dered_u + p.extinction_u) - (p.dered_g + p.extinction_g) AS u_g" in sql)
    assert ("(p.dered_i + p.extinction_i) - (p.dered_z + p.extinction_z) AS i_z" in sql)
    assert "s.class IN ('GALAXY', 'STAR', 'QSO')" in sql
    # compact by default, guarded against division by zero
    assert "p.deVRad_u / NULLIF(p.psffwhm_u, 0)" in sql
    assert "/ 5.0 < 0.5" in sql
    assert "p.psffwhm_z > 0" in sql
    assert "extinction_r > 20" not in sql
    assert "TOP" not in sql
    assert "--" not in sql  # astroquery strips SQL comments line by line


def test_margnet_sql_options():
    sql = margnet_sql(compact=False, faint=True, classes=["star", "galaxy"], top=5,
                      where="s.zWarning = 0")
    assert sql.startswith("SELECT TOP 5 ")
    assert "NULLIF" not in sql
    assert "p.dered_r + p.extinction_r > 20" in sql
    assert "s.class IN ('STAR', 'GALAXY')" in sql
    assert sql.rstrip().endswith("AND (s.zWarning = 0)")


def test_margnet_sql_cone():
    sql = margnet_sql(region=((185.0, 0.0), 2 * u.arcmin))
    assert "JOIN dbo.fGetNearbyObjEq(185.00000000, 0.00000000, 2) AS n ON n.objID = p.objID" \
        in sql
    c = SkyCoord(185 * u.deg, -1 * u.deg)
    sql = margnet_sql(region=(c.galactic, 30 * u.arcsec))
    assert "fGetNearbyObjEq(185.00000000, -1.00000000, 0.5)" in sql
    sql = margnet_sql(region=((10 * u.hourangle, 5 * u.deg), 0.1 * u.deg))
    assert "fGetNearbyObjEq(150.00000000, 5.00000000, 6)" in sql


def _box_numbers(sql):
    return [float(x) for x in re.findall(r"-?\d+\.\d{8}", sql)]


def test_margnet_sql_box():
    sql = margnet_sql(region=((180.0, 0.0), (1 * u.deg, 0.5 * u.deg)))
    assert "p.dec BETWEEN -0.25000000 AND 0.25000000" in sql
    ra0, ra1 = _box_numbers(sql.split("p.ra BETWEEN")[1])[:2]
    half = 0.5 / np.cos(np.radians(0.25))  # widest at the edge nearest the pole
    assert_allclose([ra0, ra1], [180 - half, 180 + half], atol=1e-7)
    # wrapping through RA = 0
    sql = margnet_sql(region=((0.2, 10.0), [1, 1] * u.deg))
    assert re.search(r"\(p\.ra >= 359\.\d+ OR p\.ra <= 0\.7\d+\)", sql)
    # a box around the pole takes every RA
    sql = margnet_sql(region=((0.0, 89.9), (1 * u.deg, 1 * u.deg)))
    assert "p.dec BETWEEN 89.40000000 AND 90.00000000" in sql
    assert "p.ra" not in sql.split("WHERE")[1]


def test_margnet_sql_objids():
    ids = np.array([1237678617437667624, 1237666408438300957], dtype=np.int64)
    sql = margnet_sql(objids=ids)
    assert "p.objID IN (1237678617437667624, 1237666408438300957)" in sql
    sql = margnet_sql(objids=["1237678617437667624"], region=((1, 2), 1 * u.arcmin))
    assert "p.objID IN (1237678617437667624)" in sql and "fGetNearbyObjEq" in sql


@pytest.mark.parametrize("kwargs, match", [
    (dict(objids=[]), "empty"),
    (dict(objids=[1.237678617437668e18]), "float"),
    (dict(objids=[-5]), "not a valid"),
    (dict(objids=["abc"]), "integers"),
    (dict(objids="1237678617437667624"), "list"),
    (dict(top=0), "top"),
    (dict(top=2.5), "top"),
    (dict(classes=["STAR", "WHITE_DWARF"]), "classes"),
    (dict(classes=[]), "classes"),
    (dict(where="1=1 -- hi"), "comment"),
    (dict(where="  "), "where"),
    (dict(region=(185, 0)), "region centre"),
    (dict(region=5), "region must be"),
    (dict(region=((185, 0), 2 * u.arcmin, 1)), "region must be"),
    (dict(region=((185, 0), 2)), "angle Quantity"),
    (dict(region=((185, 0), 2 * u.m)), "angle Quantity"),
    (dict(region=((185, 0), -2 * u.arcmin)), "positive"),
    (dict(region=((185, 95), 2 * u.arcmin)), "not a position"),
    (dict(region=(("a", 0), 2 * u.arcmin)), "number of degrees"),
    (dict(region=(SkyCoord([1, 2], [3, 4], unit="deg"), 2 * u.arcmin)), "one position"),
    (dict(region=((185, 0), (1 * u.deg,))), "region size"),
])
def test_margnet_sql_invalid(kwargs, match):
    with pytest.raises(InvalidInputError, match=match) as excinfo:
        margnet_sql(**kwargs)
    one_line(excinfo)


# ---------------------------------------------------------------------------
# query_sdss, replaying a recorded SkyServer answer
# ---------------------------------------------------------------------------

def _recorded_rows():
    lines = QUERY_CSV.read_text().splitlines()
    assert lines[0] == "#Table1"
    return lines[1], lines[2:]


@pytest.fixture
def patch_request(monkeypatch):
    """Replace SDSS._request by a SkyServer stand-in serving the recorded rows.

    Like the server, it answers only the rows whose objid is in an
    ``objID IN (...)`` list when the SQL has one.  Every request is logged.
    """
    from astroquery.sdss import SDSS
    from astroquery.utils.mocks import MockResponse

    log = []

    def mockreturn(method, url, **kwargs):
        params = kwargs["params"]
        log.append(dict(method=method, url=url, **kwargs))
        sql = params["cmd"]
        if "fGetNearestObjEq" in sql:
            return MockResponse(content=FRAMES_CSV.read_bytes(), url=url)
        header, rows = _recorded_rows()
        match = re.search(r"objID IN \(([\d, ]+)\)", sql)
        if match:
            wanted = set(match.group(1).replace(" ", "").split(","))
            rows = [r for r in rows if r.split(",")[0] in wanted]
        content = "\n".join(["#Table1", header] + rows) + "\n"
        return MockResponse(content=content.encode(), url=url)

    monkeypatch.setattr(SDSS, "_request", mockreturn)
    return log


def test_query_sdss_recorded(patch_request):
    t = query_sdss(objids=[1237678617437667624, 1237666408438300957, 1237665440986169606],
                   data_release=16, cache=False, timeout=30)
    assert len(patch_request) == 1
    req = patch_request[0]
    assert req["method"] == "GET"
    assert req["url"] == "https://skyserver.sdss.org/dr16/en/tools/search/x_results.aspx"
    assert req["cache"] is False and req["timeout"] == 30
    assert req["params"]["format"] == "csv" and req["params"]["searchtool"] == "SQL"
    assert "p.objID IN (1237678617437667624, 1237666408438300957, 1237665440986169606)" \
        in req["params"]["cmd"]
    assert t.colnames == ["objid", "ra", "dec", "run", "rerun", "camcol", "field", "class"] \
        + list(MARGNET_FEATURES)
    assert len(t) == 3
    assert t["objid"].dtype == np.int64
    assert t["class"].dtype.kind == "U"
    assert list(t["class"]) == ["GALAXY", "STAR", "GALAXY"]
    assert t["dered_r"].unit == u.mag and t["psffwhm_g"].unit == u.arcsec
    assert t["ra"].unit == u.deg
    assert t.meta["DR"] == 16 and "fGetNearbyObjEq" not in t.meta["SQL"]
    assert "\n" not in t.meta["SQL"] and "p.objID IN (" in t.meta["SQL"]
    # frame columns agree with the objid's bits
    bits = decode_objid(t["objid"])
    for name in ("run", "rerun", "camcol", "field"):
        assert_array_equal(t[name], bits[name])
    # observed colours are dered + extinction differences (to SkyServer's 7 digits)
    obs = {b: t[f"dered_{b}"] + t[f"extinction_{b}"] for b in "ugriz"}
    for a, b in ("ug", "gr", "ri", "iz"):
        assert_allclose(t[f"{a}_{b}"], obs[a] - obs[b], atol=2e-5)


@pytest.mark.skipif(not FAINT_FITS.exists(), reason="shared SDSS data not present")
def test_query_sdss_values_match_shared_file(patch_request):
    t = query_sdss()
    ref = Table.read(FAINT_FITS)
    index = {int(o): i for i, o in enumerate(ref["objid"])}
    rows = [index[int(o)] for o in t["objid"]]
    assert_array_equal(t["class"], np.char.strip(ref["class"][rows].astype(str)))
    for name in MARGNET_FEATURES:
        assert_allclose(t[name], ref[name][rows], rtol=1e-6, atol=1e-12)


def test_query_sdss_chunks_objids(patch_request):
    header, rows = _recorded_rows()
    ids = [int(r.split(",")[0]) for r in rows]
    t = query_sdss(objids=ids, objids_per_query=4)
    assert len(patch_request) == 2
    assert len(t) == len(ids)
    assert set(t["objid"]) == set(ids)
    assert t.meta["SQL"].count("SELECT") == 2


def test_query_sdss_no_rows(monkeypatch):
    from astroquery.exceptions import NoResultsWarning
    from astroquery.sdss import SDSS
    from astroquery.utils.mocks import MockResponse

    header, _ = _recorded_rows()
    monkeypatch.setattr(SDSS, "_request", lambda method, url, **kw: MockResponse(
        content=f"#Table1\n{header}\n".encode(), url=url))
    with pytest.warns(NoResultsWarning, match="no rows"):
        t = query_sdss(region=((10.0, 10.0), 1 * u.arcsec))
    assert len(t) == 0
    assert t.colnames[:8] == ["objid", "ra", "dec", "run", "rerun", "camcol", "field", "class"]
    assert t["objid"].dtype == np.int64


def test_query_sdss_standardizes_names(monkeypatch):
    """Servers may change the case of column names; query_sdss restores them."""
    from astroquery.sdss import SDSS
    from astroquery.utils.mocks import MockResponse

    header, rows = _recorded_rows()
    header = header.replace("objid", "objID").replace("deVRad_u", "devrad_u") \
        .replace("class", "CLASS")
    rows = [r.replace(",STAR,", ",STAR  ,") for r in rows]
    monkeypatch.setattr(SDSS, "_request", lambda method, url, **kw: MockResponse(
        content="\n".join(["#Table1", header] + rows).encode(), url=url))
    t = query_sdss()
    assert "objid" in t.colnames and "deVRad_u" in t.colnames and "class" in t.colnames
    assert set(t["class"]) == {"GALAXY", "STAR"}


def test_query_sdss_invalid():
    with pytest.raises(InvalidInputError, match="objids_per_query"):
        query_sdss(objids=[1237678617437667624], objids_per_query=0)
    with pytest.raises(InvalidInputError, match="region"):
        query_sdss(region=5)


@pytest.mark.remote_data
def test_query_sdss_remote():
    """A real one-row query: DR17 must give the values of the DR16 file."""
    objid = 1237678617437667624
    t = query_sdss(objids=[objid], compact=False, data_release=17)
    assert len(t) == 1
    assert int(t["objid"][0]) == objid
    assert t["class"][0] == "GALAXY"
    bits = decode_objid(objid)
    assert (t["run"][0], t["camcol"][0], t["field"][0]) == \
        (bits["run"][0], bits["camcol"][0], bits["field"][0])
    assert_allclose(t["dered_r"][0], 19.87757, atol=1e-3)
    assert_allclose(t["psffwhm_r"][0], 1.161098, atol=1e-3)


# ---------------------------------------------------------------------------
# decode_objid
# ---------------------------------------------------------------------------

def test_decode_objid():
    # astroquery's own recorded answer: objid 1237652943176138868 is in
    # run 1739, rerun 301, camcol 3, field 315.
    t = decode_objid([1237652943176138868, 1237653651835781245, 0])
    assert list(t["run"]) == [1739, 1904, 0]
    assert list(t["rerun"]) == [301, 301, 0]
    assert list(t["camcol"]) == [3, 3, 0]
    assert list(t["field"]) == [315, 163, 0]
    assert list(t["valid"]) == [True, True, False]
    with pytest.raises(InvalidInputError, match="integers"):
        decode_objid([1.5])


# ---------------------------------------------------------------------------
# get_cutouts
# ---------------------------------------------------------------------------

PIX = 0.396 / 3600.0


def synthetic_frame(ra0, dec0, sources, band, shape=(150, 200)):
    """A frame (nanomaggies, TAN WCS at 0.396"/px) with a Gaussian per source."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    w.wcs.cdelt = [-PIX, PIX]
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    data = np.zeros(shape, dtype=np.float32)
    for ra, dec in sources:
        x, y = w.world_to_pixel_values(ra, dec)
        data += (1 + "ugriz".index(band)) * np.exp(
            -((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    header = w.to_header()
    header["FILTER"] = band
    return fits.HDUList([fits.PrimaryHDU(data=data, header=header)])


@pytest.fixture
def cutout_table():
    # three rows in frame (7717, 1, 632), two in (4874, 4, 358)
    return Table({
        "objid": np.array([1237678617437667624, 1237666408438300957, 1237678617437667625,
                           1237666408438300958, 1237678617437667626], dtype=np.int64),
        "ra": [150.000, 151.000, 150.002, 151.002, 149.998],
        "dec": [2.000, 3.000, 2.001, 3.001, 1.999],
    })


@pytest.fixture
def patch_get_images(monkeypatch):
    """SDSS.get_images replaced by synthetic frames; calls are logged."""
    from astroquery.sdss import SDSS

    centres = {(7717, 1, 632): (150.0, 2.0), (4874, 4, 358): (151.0, 3.0),
               (4649, 2, 194): (152.0, 4.0)}
    calls = []

    def get_images(*, matches, band, data_release, cache, show_progress, **kwargs):
        assert len(matches) == 1 and show_progress is False
        row = matches[0]
        key = (int(row["run"]), int(row["camcol"]), int(row["field"]))
        calls.append((key, int(row["rerun"]), tuple(band), data_release, cache, kwargs))
        ra0, dec0 = centres[key]
        return [synthetic_frame(ra0, dec0, [], b) for b in band]

    monkeypatch.setattr(SDSS, "get_images", get_images)
    return calls


@pytest.fixture
def fake_make_cutouts(monkeypatch):
    """A stand-in sourceclf.cutouts recording what it is asked to cut."""
    calls = []

    def make_cutouts(cutouts=None, *, table=None, images=None, size=32):
        calls.append(dict(table=table, images=images, size=size))
        n = len(table)
        data = np.empty((n, len(images), size, size), np.float32)
        data[:] = np.asarray(table["objid"] % 1000, np.float32)[:, None, None, None]
        return types.SimpleNamespace(data=data, flags=np.array([""] * n))

    module = types.ModuleType("sourceclf.cutouts")
    module.make_cutouts = make_cutouts
    monkeypatch.setitem(sys.modules, "sourceclf.cutouts", module)
    return calls


def test_get_cutouts_downloads_each_frame_once(cutout_table, patch_get_images,
                                               fake_make_cutouts, monkeypatch):
    from astroquery.sdss import SDSS

    def no_network(*args, **kwargs):
        raise AssertionError("objids give the frames; no query expected")

    monkeypatch.setattr(SDSS, "_request", no_network)
    result = get_cutouts(cutout_table, size=16, data_release=16, cache=False, timeout=7,
                         progress=False)
    assert isinstance(result, FrameCutouts)
    assert sorted(c[0] for c in patch_get_images) == [(4874, 4, 358), (7717, 1, 632)]
    for key, rerun, bands, dr, cache, kwargs in patch_get_images:
        assert rerun == 301 and bands == tuple("ugriz") and dr == 16 and cache is False
        assert kwargs == {"timeout": 7}
    assert len(fake_make_cutouts) == 2
    for call in fake_make_cutouts:
        assert list(call["images"]) == list("ugriz") and call["size"] == 16
        # the images are the frame HDUs, with the WCS of the rows' frame
        hdu = call["images"]["r"]
        assert hdu.header["FILTER"] == "r"
        ra0 = hdu.header["CRVAL1"]
        assert_allclose(call["table"]["ra"], ra0, atol=0.01)
    assert result.data.shape == (5, 5, 16, 16) and result.data.dtype == np.float32
    assert_array_equal(result.data[:, 0, 0, 0], cutout_table["objid"] % 1000)
    assert list(result.flags) == [""] * 5
    assert list(result.frame) == ["007717-1-0632", "004874-4-0358", "007717-1-0632",
                                  "004874-4-0358", "007717-1-0632"]


def test_get_cutouts_frame_columns_win(cutout_table, patch_get_images, fake_make_cutouts):
    t = cutout_table.copy()
    t["RUN"] = [4649] * 5
    t["camcol"] = [2] * 5
    t["Field"] = [194] * 5
    result = get_cutouts(t, bands="gri", progress=False)
    assert [c[0] for c in patch_get_images] == [(4649, 2, 194)]
    assert patch_get_images[0][2] == tuple("ugriz")   # all five frames are fetched
    assert result.data.shape == (5, 3, 32, 32)


def test_get_cutouts_band_subset_of_full_stamps(cutout_table, patch_get_images,
                                                fake_make_cutouts):
    """A make_cutouts that always returns ugriz: the requested bands are picked."""
    def five_bands(cutouts=None, *, table=None, images=None, size=32):
        data = np.zeros((len(table), 5, size, size), np.float32)
        data[:] = np.arange(5, dtype=np.float32)[None, :, None, None]
        return types.SimpleNamespace(data=data, flags=np.array([""] * len(table)))

    sys.modules["sourceclf.cutouts"].make_cutouts = five_bands
    result = get_cutouts(cutout_table, bands="zg", size=8, progress=False)
    assert result.data.shape == (5, 2, 8, 8)
    assert (result.data[:, 0] == 4).all() and (result.data[:, 1] == 1).all()


def test_get_cutouts_missing_frames(cutout_table, fake_make_cutouts, monkeypatch):
    from astroquery.exceptions import RemoteServiceError
    from astroquery.sdss import SDSS

    monkeypatch.setattr(SDSS, "get_images", lambda **kwargs: None)
    with pytest.raises(RemoteServiceError, match="0 frames for run"):
        get_cutouts(cutout_table, progress=False)


def test_get_cutouts_positional_lookup(patch_request, patch_get_images, fake_make_cutouts):
    # no objid, no frame columns: SkyServer finds the nearest object of each row
    t = Table({"RA": [150.0, 150.0123, 150.0246, np.nan], "Dec": [2.0, 2.0071, 2.0142, 0.0]})
    t["RA"].unit = u.deg
    fake_objid = []

    def remember(cutouts=None, *, table=None, images=None, size=32):
        fake_objid.append(len(table))
        return types.SimpleNamespace(data=np.zeros((len(table), 5, size, size), np.float32),
                                     flags=np.array(["edge"] * len(table)))

    sys.modules["sourceclf.cutouts"].make_cutouts = remember
    result = get_cutouts(t, progress=False)
    assert len(patch_request) == 1
    sql = patch_request[0]["params"]["cmd"]
    assert sql.count("fGetNearestObjEq") == 3 and sql.count("UNION ALL") == 2
    assert "fGetNearestObjEq(150.01230000, 2.00710000, 0.0333333)" in sql
    assert sorted(c[0] for c in patch_get_images) == \
        [(4649, 2, 194), (4874, 4, 358), (7717, 1, 632)]
    assert list(result.flags) == ["edge", "edge", "edge", "no_frame"]
    assert np.isnan(result.data[3]).all()
    assert result.frame[3] == ""


def test_get_cutouts_with_make_cutouts(cutout_table, monkeypatch):
    """End to end with the real sourceclf.cutouts: each source lands in the centre."""
    pytest.importorskip("sourceclf.cutouts")
    from astroquery.sdss import SDSS

    centres = {(7717, 1, 632): (150.0, 2.0), (4874, 4, 358): (151.0, 3.0)}
    positions = list(zip(cutout_table["ra"], cutout_table["dec"]))

    def get_images(*, matches, band, **kwargs):
        row = matches[0]
        ra0, dec0 = centres[(int(row["run"]), int(row["camcol"]), int(row["field"]))]
        return [synthetic_frame(ra0, dec0, positions, b) for b in band]

    monkeypatch.setattr(SDSS, "get_images", get_images)
    result = get_cutouts(cutout_table, size=32, progress=False)
    assert result.data.shape == (5, 5, 32, 32)
    for stamp in result.data:
        for k, channel in enumerate(stamp):
            y, x = np.unravel_index(np.nanargmax(channel), channel.shape)
            assert abs(y - 15.5) <= 1 and abs(x - 15.5) <= 1
            assert_allclose(np.nanmax(channel), k + 1, rtol=0.15)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bands="ugrq"), "bands"),
    (dict(bands="gg"), "bands"),
    (dict(bands=""), "bands"),
    (dict(size=0), "size"),
])
def test_get_cutouts_invalid(cutout_table, kwargs, match):
    with pytest.raises(InvalidInputError, match=match) as excinfo:
        get_cutouts(cutout_table, **kwargs)
    one_line(excinfo)


def test_get_cutouts_needs_positions(fake_make_cutouts):
    with pytest.raises(MissingColumnsError, match="'ra' and 'dec'"):
        get_cutouts(Table({"objid": [1237678617437667624]}))
    with pytest.raises(InvalidInputError, match="astropy Table"):
        get_cutouts(np.zeros(3))


# ---------------------------------------------------------------------------
# load_margnet
# ---------------------------------------------------------------------------

def _published_arrays(n=12, seed=0, labels="strings"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 32, 32, 5)).astype(np.float32)
    dnnx = rng.normal(size=(n, 24))
    objlist = 1237650000000000000 + rng.choice(10**6, size=n, replace=False).astype(np.int64)
    classes = np.array(MARGNET_CLASSES)[np.arange(n) % 3]
    if labels == "onehot":
        y = np.eye(3)[np.arange(n) % 3]
    elif labels == "int":
        y = np.arange(n) % 3
    else:
        y = classes
    return X, dnnx, objlist, y, classes


def _write(directory, names, arrays, allow_pickle=False):
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(names, arrays):
        np.save(directory / name, arr, allow_pickle=allow_pickle)


def test_load_margnet_experiment2_memmap(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays()
    d = tmp_path / "Experiment 2" / "dataset"
    _write(d, ["X_v2.npy", "dnnx_v2.npy", "objlist_v2.npy", "y_v2.npy"], [X, dnnx, objlist, y])
    table, cutouts = load_margnet(tmp_path, experiment=2)
    # a channels-first view of the memory-mapped file: nothing read, nothing copied
    assert isinstance(cutouts, np.memmap)
    assert not cutouts.flags.owndata
    assert isinstance(cutouts.base, np.memmap) and cutouts.base.shape == (12, 32, 32, 5)
    assert Path(cutouts.base.filename) == (d / "X_v2.npy").resolve()
    assert cutouts.shape == (12, 5, 32, 32)
    assert not cutouts.flags.writeable
    assert_array_equal(cutouts[3, 2], X[3, :, :, 2])
    assert_array_equal(np.asarray(cutouts), np.moveaxis(X, -1, 1))
    assert table.colnames == ["objid", "class"] + list(MARGNET_FEATURES)
    assert_array_equal(table["objid"], objlist)
    assert_array_equal(table["class"], classes)
    assert_array_equal(np.column_stack([table[c] for c in MARGNET_FEATURES]), dnnx)
    assert table["dered_u"].unit == u.mag and table["deVRad_u"].unit == u.arcsec
    assert table.meta["MNEXPT"] == 2 and table.meta["MNTASK"] == "sgq"
    assert table.meta["MNSPLIT"] == "all" and table.meta["MNCLASS"] == "GALAXY,QSO,STAR"
    assert table.meta["MNIMAGES"].endswith("X_v2.npy")


def test_load_margnet_no_copy_of_large_file(tmp_path):
    """A 64 MB image file comes back without reading it into memory."""
    n = 3200
    X = np.lib.format.open_memmap(tmp_path / "X_v2.npy", mode="w+", dtype=np.float32,
                                  shape=(n, 32, 32, 5))
    X[-1] = 7.0
    X.flush()
    del X
    np.save(tmp_path / "dnnx_v2.npy", np.zeros((n, 24)))
    np.save(tmp_path / "objlist_v2.npy", np.arange(1, n + 1, dtype=np.int64))
    np.save(tmp_path / "y_v2.npy", np.eye(3)[np.arange(n) % 3])
    table, cutouts = load_margnet(tmp_path, experiment=2)
    assert isinstance(cutouts, np.memmap) and cutouts.shape == (n, 5, 32, 32)
    assert np.shares_memory(cutouts, cutouts.base)
    assert (cutouts[-1] == 7.0).all()


def test_load_margnet_mmap_false(tmp_path):
    X, dnnx, objlist, y, _ = _published_arrays()
    _write(tmp_path, ["X_v2.npy", "dnnx_v2.npy", "objlist_v2.npy", "y_v2.npy"],
           [X, dnnx, objlist, y])
    table, cutouts = load_margnet(tmp_path, experiment=2, mmap=False)
    assert not isinstance(cutouts, np.memmap)
    assert_array_equal(cutouts, np.moveaxis(X, -1, 1))


def test_load_margnet_experiment1_csv_features(tmp_path):
    """Experiment 1 publishes features in paperDF.csv, indexed by objid."""
    X, dnnx, objlist, y, classes = _published_arrays(n=9)
    _write(tmp_path, ["paperX.npy", "paperobjlist.npy", "papery.npy"], [X, objlist, y])
    csv = Table()
    order = np.arange(9)[::-1]  # another order, and an extra row
    csv["objid"] = np.concatenate([objlist[order[:9]], [42]])
    csv["class"] = np.concatenate([classes[order[:9]], ["STAR"]])
    extra = np.concatenate([dnnx[order[:9]], np.zeros((1, 24))])
    for j, name in enumerate(MARGNET_FEATURES):
        csv[name] = extra[:, j]
    csv.write(tmp_path / "paperDF.csv", format="ascii.csv")
    table, cutouts = load_margnet(tmp_path, experiment=1)
    assert_array_equal(np.column_stack([table[c] for c in MARGNET_FEATURES]), dnnx)
    assert table.meta["MNFEATS"].endswith("paperDF.csv")
    # without papery.npy, the classes come from the CSV
    (tmp_path / "papery.npy").unlink()
    table, _ = load_margnet(tmp_path, experiment=1)
    assert_array_equal(table["class"], classes)
    assert table.meta["MNLABELS"] == ""


def test_load_margnet_experiment3_onehot(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays(labels="onehot")
    _write(tmp_path, ["X_sgq_exp3.npy", "dnnx_sgq_exp3.npy", "objlist_sgq_exp3.npy",
                      "y_sgq_exp3.npy"], [X, dnnx, objlist, y])
    sg = np.arange(8)
    _write(tmp_path, ["X_sg_exp3.npy", "dnnx_sg_exp3.npy", "objlist_sg_exp3.npy",
                      "y_sg_exp3.npy"], [X[sg], dnnx[sg], objlist[sg], np.eye(2)[sg % 2]])
    table, cutouts = load_margnet(tmp_path, experiment=3)
    assert_array_equal(table["class"], classes)
    table, cutouts = load_margnet(tmp_path, experiment=3, task="sg")
    assert_array_equal(table["class"], np.array(["GALAXY", "STAR"])[sg % 2])
    assert cutouts.shape == (8, 5, 32, 32)
    table, _ = load_margnet(tmp_path, experiment=3, split="test")
    assert len(table) == 12
    with pytest.raises(InvalidInputError, match="experiment=1") as excinfo:
        load_margnet(tmp_path, experiment=3, split="train")
    one_line(excinfo)


@pytest.mark.parametrize("labels", ["int", "onehot"])
def test_load_margnet_class_names(tmp_path, labels):
    X, dnnx, objlist, y, classes = _published_arrays(labels=labels)
    _write(tmp_path, ["X.npy", "dnnx.npy", "objlist.npy", "y.npy"], [X, dnnx, objlist, y])
    table, _ = load_margnet(tmp_path)
    assert_array_equal(table["class"], classes)
    table, _ = load_margnet(tmp_path, class_names=["STAR", "GALAXY", "QSO"])
    assert_array_equal(table["class"],
                       np.array(["STAR", "GALAXY", "QSO"])[np.arange(12) % 3])
    assert table.meta["MNCLASS"] == "STAR,GALAXY,QSO"
    with pytest.raises(InvalidInputError, match="class_names") as excinfo:
        load_margnet(tmp_path, class_names=["GALAXY", "STAR"])
    one_line(excinfo)


def test_load_margnet_bad_onehot(tmp_path):
    X, dnnx, objlist, y, _ = _published_arrays(labels="onehot")
    y[4] = [0.5, 0.5, 0]
    _write(tmp_path, ["X.npy", "dnnx.npy", "objlist.npy", "y.npy"], [X, dnnx, objlist, y])
    with pytest.raises(InvalidInputError, match="row 4 is not one-hot"):
        load_margnet(tmp_path)


def test_load_margnet_object_labels_need_allow_pickle(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays()
    _write(tmp_path, ["X_v2.npy", "dnnx_v2.npy", "objlist_v2.npy"], [X, dnnx, objlist])
    np.save(tmp_path / "y_v2.npy", classes.astype(object), allow_pickle=True)
    with pytest.raises(InvalidInputError, match="allow_pickle=True") as excinfo:
        load_margnet(tmp_path, experiment=2)
    assert "y_v2.npy" in one_line(excinfo)
    table, _ = load_margnet(tmp_path, experiment=2, allow_pickle=True)
    assert_array_equal(table["class"], classes)


def test_load_margnet_sg_drops_qso_lazily(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays(n=15)
    _write(tmp_path, ["X_v2.npy", "dnnx_v2.npy", "objlist_v2.npy", "y_v2.npy"],
           [X, dnnx, objlist, y])
    table, cutouts = load_margnet(tmp_path, experiment=2, task="sg")
    keep = np.flatnonzero(classes != "QSO")
    assert isinstance(cutouts, LazyStamps)
    assert isinstance(cutouts.base, np.memmap)
    assert len(cutouts) == len(table) == len(keep) and cutouts.shape == (10, 5, 32, 32)
    assert cutouts.dtype == np.float32 and cutouts.ndim == 4
    assert_array_equal(table["objid"], objlist[keep])
    full = np.moveaxis(X, -1, 1)
    assert_array_equal(np.asarray(cutouts), full[keep])
    assert_array_equal(cutouts[2], full[keep[2]])
    assert_array_equal(cutouts[-1, 4], full[keep[-1], 4])
    assert_array_equal(cutouts[1:4], full[keep[1:4]])
    assert_array_equal(cutouts[[3, 0]], full[keep[[3, 0]]])
    assert_array_equal(np.stack(list(cutouts)), full[keep])
    assert "LazyStamps" in repr(cutouts)


@pytest.mark.parametrize("task", ["sgq", "sg"])
@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_load_margnet_split(tmp_path, split, task):
    X, dnnx, objlist, y, classes = _published_arrays(n=40)
    _write(tmp_path, ["paperX.npy", "dnnx.npy", "paperobjlist.npy", "papery.npy"],
           [X, dnnx, objlist, y])
    table, cutouts = load_margnet(tmp_path, experiment=1, split=split, task=task)
    # the rows are those of the notebooks: drop QSO for sg, then split
    keep = np.flatnonzero(classes != "QSO") if task == "sg" else np.arange(40)
    train, test = train_test_split(keep, test_size=0.125, random_state=42)
    train, val = train_test_split(train, test_size=0.1428, random_state=42)
    rows = {"train": train, "validation": val, "test": test}[split]
    assert_array_equal(table["objid"], objlist[rows])
    assert_array_equal(np.asarray(cutouts), np.moveaxis(X, -1, 1)[rows])
    assert table.meta["MNSPLIT"] == split


def test_load_margnet_presplit_files(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays()
    _write(tmp_path, ["X_exp1_test.npy", "dnnx_exp1_test.npy", "objlist_exp1_test.npy",
                      "y_exp1_test.npy"], [X, dnnx, objlist, y])
    table, cutouts = load_margnet(tmp_path, experiment=1, split="test")
    assert len(table) == 12 and isinstance(cutouts, np.memmap)
    assert table.meta["MNIMAGES"].endswith("X_exp1_test.npy")


def test_load_margnet_files_override_and_channels_first(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays()
    _write(tmp_path, ["stamps_cf.npy", "features.npy", "ids.npy", "labels.npy"],
           [np.moveaxis(X, -1, 1), dnnx, objlist, y])
    table, cutouts = load_margnet(tmp_path, files={"images": "stamps_*.npy",
                                                   "features": "features.npy",
                                                   "objids": str(tmp_path / "ids.npy"),
                                                   "labels": "label?.npy"})
    assert isinstance(cutouts, np.memmap)
    assert_array_equal(cutouts, np.moveaxis(X, -1, 1))


def test_load_margnet_errors(tmp_path):
    X, dnnx, objlist, y, classes = _published_arrays()
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_margnet(tmp_path / "nowhere")
    with pytest.raises(InvalidInputError, match="no images file") as excinfo:
        load_margnet(tmp_path, experiment=2)
    assert "X_v2.npy, X_exp2.npy" in one_line(excinfo)
    _write(tmp_path, ["X_v2.npy", "dnnx_v2.npy", "y_v2.npy"], [X, dnnx, y])
    with pytest.raises(InvalidInputError, match="no objids file") as excinfo:
        load_margnet(tmp_path, experiment=2)
    assert "objlist_v2.npy" in one_line(excinfo)
    _write(tmp_path, ["X_v2.npy", "dnnx_v2.npy", "objlist_v2.npy", "y_v2.npy"],
           [X, dnnx, objlist[:-1], y])
    with pytest.raises(InvalidInputError, match="disagree") as excinfo:
        load_margnet(tmp_path, experiment=2)
    assert "objlist_v2.npy has 11" in one_line(excinfo)
    np.save(tmp_path / "objlist_v2.npy", objlist)
    np.save(tmp_path / "dnnx_v2.npy", dnnx[:, :20])
    with pytest.raises(InvalidInputError, match=r"dnnx_v2.npy: features must be \(N, 24\)"):
        load_margnet(tmp_path, experiment=2)
    np.save(tmp_path / "dnnx_v2.npy", dnnx)
    np.save(tmp_path / "X_v2.npy", X[..., :3])
    with pytest.raises(InvalidInputError, match=r"X_v2.npy: images must be"):
        load_margnet(tmp_path, experiment=2)
    np.save(tmp_path / "X_v2.npy", X)
    np.save(tmp_path / "X_v2b.npy", X)
    with pytest.raises(InvalidInputError, match="matches 2 files"):
        load_margnet(tmp_path, experiment=2, files={"images": "X_v2*.npy"})
    with pytest.raises(InvalidInputError, match="files keys"):
        load_margnet(tmp_path, experiment=2, files={"weights": "w.npy"})
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(InvalidInputError, match="cannot read junk.npy"):
        load_margnet(tmp_path, experiment=2, files={"images": "junk.npy"})
    for kwargs, match in [(dict(experiment=4), "experiment"), (dict(task="sgqx"), "task"),
                          (dict(split="val"), "split")]:
        with pytest.raises(InvalidInputError, match=match) as excinfo:
            load_margnet(tmp_path, **kwargs)
        one_line(excinfo)


# ---------------------------------------------------------------------------
# compact_mask, faint_mask
# ---------------------------------------------------------------------------

def _feature_table(n=4, **overrides):
    t = Table()
    for b in "ugriz":
        t[f"deVRad_{b}"] = np.full(n, 0.3)
        t[f"psffwhm_{b}"] = np.full(n, 1.2)
        t[f"dered_{b}"] = np.full(n, 20.5)
        t[f"extinction_{b}"] = np.full(n, 0.1)
    for name, values in overrides.items():
        t[name] = values
    return t


def test_compact_mask():
    t = _feature_table(deVRad_r=[0.3, 0.3, 0.3, 0.3], psffwhm_r=[1.2, 0.0, -9999.0, np.nan],
                       deVRad_g=[0.3, 0.3, 0.3, 0.3])
    assert list(compact_mask(t)) == [True, False, False, False]
    # mean of ratios over the five bands against the threshold
    t = _feature_table(n=2, deVRad_u=[0.3, 0.3 + 5 * 1.2 * 0.3])
    assert list(compact_mask(t)) == [True, False]
    assert list(compact_mask(t, threshold=1.0)) == [True, True]
    t.remove_column("psffwhm_z")
    with pytest.raises(MissingColumnsError, match="psffwhm_z"):
        compact_mask(t)


def test_faint_mask():
    t = _feature_table(dered_r=[19.85, 19.95, np.nan, -9999.0])
    assert list(faint_mask(t)) == [False, True, False, False]
    assert list(faint_mask(t, r_limit=19.0)) == [True, True, False, False]
    t2 = Table({"modelMag_r": [19.0, 21.0]})
    assert list(faint_mask(t2)) == [False, True]
    with pytest.raises(MissingColumnsError, match="faint_mask"):
        faint_mask(Table({"g": [20.0]}))


@pytest.mark.skipif(not FAINT_FITS.exists(), reason="shared SDSS data not present")
def test_masks_on_published_faint_set():
    t = Table.read(FAINT_FITS)
    assert compact_mask(t).all()
    assert faint_mask(t).all()


# ---------------------------------------------------------------------------
# split_experiment
# ---------------------------------------------------------------------------

def _labels(n, classes=MARGNET_CLASSES):
    rng = np.random.default_rng(1)
    return Table({"class": np.array(classes)[rng.integers(0, len(classes), n)]})


def test_split_experiment1_matches_sklearn():
    t = _labels(1000)
    parts = split_experiment(t, experiment=1, task="sgq")
    train, test = train_test_split(np.arange(1000), test_size=0.125, random_state=42)
    train, val = train_test_split(train, test_size=0.1428, random_state=42)
    assert_array_equal(parts["train"], train)
    assert_array_equal(parts["validation"], val)
    assert_array_equal(parts["test"], test)
    assert sorted(np.concatenate(list(parts.values()))) == list(range(1000))


def test_split_experiment1_sg_published_sizes():
    """The notebook printed (120007, 24) (19992, 24) (20000, 24) for 159,999 objects."""
    n = 239999
    t = Table({"class": np.array(["GALAXY", "STAR", "QSO"])[np.arange(n) % 3]})
    t["class"][-1] = "QSO"  # 80,000 GALAXY, 79,999 STAR, 80,000 QSO
    parts = split_experiment(t, experiment=1, task="sg")
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [120007, 19992, 20000]
    # the rows are those of np.delete(QSO) then train_test_split on what is left
    kept = np.delete(np.arange(n), np.where(np.asarray(t["class"]) == "QSO")[0])
    train, test = train_test_split(kept, test_size=0.125, random_state=42)
    train, val = train_test_split(train, test_size=0.1428, random_state=42)
    assert_array_equal(parts["test"], test)
    assert_array_equal(parts["validation"], val)
    assert_array_equal(parts["train"], train)
    assert (np.asarray(t["class"])[parts["train"]] != "QSO").all()


def test_split_experiment2():
    t = _labels(500)
    t["class"] = np.char.lower(np.asarray(t["class"]))  # case does not matter
    parts = split_experiment(t, experiment=2, task="sg", random_state=7)
    kept = np.flatnonzero(np.asarray(t["class"]) != "qso")
    train, test = train_test_split(kept, test_size=0.1, random_state=7)
    train, val = train_test_split(train, test_size=0.1111111, random_state=7)
    assert_array_equal(parts["train"], train)
    assert_array_equal(parts["validation"], val)
    assert_array_equal(parts["test"], test)
    n = len(kept)
    assert abs(len(train) / n - 0.8) < 0.01 and abs(len(test) / n - 0.1) < 0.01


def test_split_experiment3():
    compact, faint = _labels(300), _labels(40)
    faint["class"][0] = b"QSO   "
    parts = split_experiment(compact, experiment=3, task="sg", faint_table=faint)
    ex1 = split_experiment(compact, experiment=1, task="sg")
    assert_array_equal(parts["train"], ex1["train"])
    assert_array_equal(parts["validation"], ex1["validation"])
    assert_array_equal(parts["test"], np.arange(1, 40)[np.asarray(faint["class"][1:]) != "QSO"])
    tables = split_experiment(compact, experiment=3, faint_table=faint, as_tables=True)
    assert len(tables["test"]) == 40 and isinstance(tables["train"], Table)


def test_split_experiment_apply_cuts():
    t = _feature_table(n=40)
    t["class"] = np.array(MARGNET_CLASSES)[np.arange(40) % 3]
    t["psffwhm_g"][:8] = 0.1  # not compact
    t["dered_r"][8:10] = 18.0  # bright
    parts = split_experiment(t, experiment=2, apply_cuts=True)
    rows = np.concatenate(list(parts.values()))
    assert sorted(rows) == list(range(10, 40))
    parts = split_experiment(t, experiment=1, apply_cuts=True)
    assert sorted(np.concatenate(list(parts.values()))) == list(range(8, 40))


def test_split_experiment_errors():
    t = _labels(30)
    for kwargs, match in [(dict(experiment=4), "experiment"), (dict(task="qso"), "task"),
                          (dict(experiment=3), "faint_table"),
                          (dict(experiment=1, faint_table=t), "experiment 3"),
                          (dict(experiment=3, faint_table=[1]), "faint_table")]:
        with pytest.raises(InvalidInputError, match=match) as excinfo:
            split_experiment(t, **kwargs)
        one_line(excinfo)
    with pytest.raises(MissingColumnsError, match="label column 'label'"):
        split_experiment(t, task="sg", label_column="label")
    with pytest.raises(InvalidInputError, match="too few"):
        split_experiment(t[:2])
    with pytest.raises(InvalidInputError, match="astropy Table"):
        split_experiment({"class": ["STAR"] * 10})


def test_public_names():
    for name in datasets.__all__:
        assert getattr(datasets, name).__doc__ or name.isupper()
    assert os.path.basename(os.path.dirname(datasets.__file__)) == "datasets"
