"""Tests of sourceclf.cutouts: every input form, WCS cutting, flags and errors."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NDData
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.bands import BANDS
from sourceclf.cutouts import (FLAG_BAD_PIXELS, FLAG_EDGE, FLAG_NAN_PIXELS, FLAG_OFF_FRAME,
                               MAX_PIXEL_VALUE, CutoutResult, cutouts_from_frames,
                               make_cutouts)
from sourceclf.exceptions import InvalidInputError, MissingColumnsError, SourceclfWarning
from sourceclf.frames import read_frame
from conftest import SHARED_DATA

SHARED = SHARED_DATA  # $SOURCECLF_DATA or ../shared/data (see conftest.py)
FIELD = SHARED / "sdss_frame_004510-4-0030"
SIZE = 32
SHAPE = (180, 260)  # (ny, nx) of the synthetic frames


# ---------------------------------------------------------------------------
# A synthetic field: five frames with different (misaligned) TAN WCSs
# ---------------------------------------------------------------------------

def _wcs(k):
    """A TAN WCS for band k, shifted and slightly rotated like SDSS bands."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [SHAPE[1] / 2 + 3.3 * k, SHAPE[0] / 2 - 2.1 * k]
    scale = 0.396 / 3600
    theta = np.radians(0.3 * k)
    w.wcs.cd = scale * np.array([[-np.cos(theta), np.sin(theta)],
                                 [np.sin(theta), np.cos(theta)]])
    return w


def _sky(w, x, y):
    ra, dec = w.wcs_pix2world(x, y, 0)
    return float(ra), float(dec)


@pytest.fixture(scope="module")
def field():
    """Synthetic frames (dict band -> (data, wcs)) and a table of sources.

    Rows 0-11 are inside every frame, row 12 is near the left edge, row 13
    near the top-right corner, row 14 off every frame, row 15 has no position,
    row 16 is on the r frame but off the u frame (the bands are shifted).
    """
    rng = np.random.default_rng(42)
    wcss = {b: _wcs(k) for k, b in enumerate(BANDS)}
    ref = wcss["r"]
    # A 4 x 3 grid, 50-60 pixels apart (no neighbour inside a stamp), jittered.
    gx, gy = np.meshgrid([40.0, 100.0, 160.0, 220.0], [40.0, 90.0, 140.0])
    xs = gx.ravel() + rng.uniform(-3, 3, 12)
    ys = gy.ravel() + rng.uniform(-3, 3, 12)
    positions = [_sky(ref, x, y) for x, y in zip(xs, ys)]
    positions.append(_sky(ref, 12.2, 90.0))
    positions.append(_sky(ref, SHAPE[1] - 12.7, SHAPE[0] - 9.1))
    positions.append(_sky(ref, SHAPE[1] + 500.0, 40.0))
    positions.append((np.nan, np.nan))
    positions.append(_sky(ref, 3.0, 60.0))
    table = Table(rows=positions, names=["ra", "dec"])
    table["id"] = np.arange(len(table))
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    frames = {}
    for k, band in enumerate(BANDS):
        data = rng.normal(0, 0.05, SHAPE).astype(np.float32)
        x, y = wcss[band].wcs_world2pix(table["ra"], table["dec"], 0)
        for i in range(len(table)):
            if np.isfinite(x[i]):
                data += ((k + 1) * (i + 1) * np.exp(-((xx - x[i]) ** 2 + (yy - y[i]) ** 2)
                                                    / (2 * 1.1 ** 2))).astype(np.float32)
        frames[band] = (data, wcss[band])
    return frames, table


@pytest.fixture(scope="module")
def cut(field):
    frames, table = field
    return make_cutouts(table=table, images=frames)


def test_frames_match_cutout2d(field, cut):
    frames, table = field
    assert cut.data.shape == (len(table), 5, SIZE, SIZE)
    assert cut.data.dtype == np.float32
    for i in range(14):  # every source with a position on the frames
        for k, band in enumerate(BANDS):
            data, wcs = frames[band]
            ref = Cutout2D(data, SkyCoord(table["ra"][i], table["dec"][i], unit="deg"), SIZE,
                           wcs=wcs, mode="partial", fill_value=0)
            np.testing.assert_array_equal(cut.data[i, k], ref.data)


def test_each_band_uses_its_own_wcs(field, cut):
    """The source is at the centre of every band's stamp, though frames differ."""
    frames, table = field
    for i in range(12):
        for k in range(5):
            stamp = cut.data[i, k]
            y, x = np.unravel_index(np.argmax(stamp), stamp.shape)
            assert abs(x - 15.5) <= 1 and abs(y - 15.5) <= 1
    # The frames really are misaligned: one WCS for all would miss by pixels.
    xu, yu = frames["u"][1].wcs_world2pix(table["ra"][:12], table["dec"][:12], 0)
    xz, yz = frames["z"][1].wcs_world2pix(table["ra"][:12], table["dec"][:12], 0)
    assert np.all(np.hypot(xu - xz, yu - yz) > 10)


def test_flags_and_padding(field, cut):
    frames, table = field
    assert cut.flags.tolist() == [""] * 12 + [FLAG_EDGE, FLAG_EDGE] + [FLAG_OFF_FRAME] * 3
    x_r, _ = frames["r"][1].wcs_world2pix(table["ra"][16], table["dec"][16], 0)
    x_u, _ = frames["u"][1].wcs_world2pix(table["ra"][16], table["dec"][16], 0)
    assert 0 < x_r and x_u < -0.5
    # Near the left edge: the columns left of the frame are zero-padded.
    data, wcs = frames["r"]
    x, _ = wcs.wcs_world2pix(table["ra"][12], table["dec"][12], 0)
    first = int(np.ceil(x - SIZE / 2))
    assert first < 0
    assert np.all(cut.data[12, 2][:, :-first] == 0)
    assert np.all(cut.data[12, 2][:, -first:] != 0)
    # Off the frame, or without a position: all zero, never dropped.
    assert np.all(cut.data[14:] == 0)
    # Row order follows the table, also when it is shuffled.
    order = np.random.default_rng(0).permutation(len(table))
    again = make_cutouts(table=table[order], images=frames)
    np.testing.assert_array_equal(again.data, cut.data[order])
    np.testing.assert_array_equal(again.flags, cut.flags[order])


def test_every_input_form_gives_the_same_stamps(field, cut, tmp_path):
    frames, table = field
    stamps = cut.data[:14]
    sub = table[:14]

    def same(result):
        assert isinstance(result, CutoutResult)
        assert result.data.dtype == np.float32
        np.testing.assert_array_equal(result.data, stamps)
        assert result.flags.tolist() == [""] * 14

    same(make_cutouts(stamps.copy(), table=sub))
    same(make_cutouts(np.moveaxis(stamps, 1, 3).copy(), table=sub))
    same(make_cutouts(np.moveaxis(stamps, 1, 3), layout="channels_last"))
    same(make_cutouts(stamps.astype(">f8")))
    same(make_cutouts([s for s in stamps]))  # a list of (5, H, W) arrays
    # Channels in another band order.
    order = "gizur"
    shuffled = stamps[:, [BANDS.index(b) for b in order]]
    same(make_cutouts(shuffled, band_order=order))
    same(make_cutouts(np.moveaxis(shuffled, 1, 3), band_order=list(order.upper())))

    # Lists of Cutout2D objects, cut independently with astropy.
    cutouts2d = []
    for row in sub:
        pos = SkyCoord(row["ra"], row["dec"], unit="deg")
        cutouts2d.append([Cutout2D(frames[b][0], pos, SIZE, wcs=frames[b][1], mode="partial",
                                   fill_value=0) for b in BANDS])
    same(make_cutouts(cutouts2d, table=sub))
    same(make_cutouts([[c[BANDS.index(b)] for b in order] for c in cutouts2d],
                      band_order=order))
    same(make_cutouts([dict(zip(BANDS, c)) for c in cutouts2d]))
    same(make_cutouts([{b.upper(): c.data for b, c in zip(BANDS, cs)} for cs in cutouts2d]))
    same(make_cutouts([[NDData(c.data) for c in cs] for cs in cutouts2d]))
    # One array of stamps per band, as a cutout service returns them band by band
    same(make_cutouts({b: stamps[:, k] for k, b in enumerate(BANDS)}, table=sub))
    same(make_cutouts({b.upper(): [c[k] for c in cutouts2d] for k, b in enumerate(BANDS)}))

    # FITS files and HDULists, both layouts; a .npy file.
    first = tmp_path / "cutouts_first.fits"
    fits.PrimaryHDU(stamps).writeto(first)
    last = tmp_path / "cutouts_last.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.moveaxis(stamps, 1, 3))]).writeto(last)
    same(make_cutouts(first, table=sub))
    same(make_cutouts(str(last)))
    with fits.open(last) as hdul:
        same(make_cutouts(hdul))
        same(make_cutouts(hdul[1]))
    np.save(tmp_path / "cutouts.npy", stamps)
    same(make_cutouts(tmp_path / "cutouts.npy"))

    # A result of an earlier call, and the frames entry point.
    same(make_cutouts(make_cutouts(stamps)))
    again = cutouts_from_frames(sub, frames)
    np.testing.assert_array_equal(again.data, stamps)
    np.testing.assert_array_equal(again.flags, cut.flags[:14])
    merged = make_cutouts(again)  # flags of an earlier result are kept
    np.testing.assert_array_equal(merged.flags, cut.flags[:14])


def test_ready_array_is_not_copied_and_input_never_changed():
    stamps = np.ones((4, 5, SIZE, SIZE), dtype=np.float32)
    assert make_cutouts(stamps).data is stamps
    with_nan = stamps.copy()
    with_nan[2, 3, 5, 5] = np.nan
    with_nan[3, 0, 0, 0] = np.inf
    result = make_cutouts(with_nan)
    assert result.data is not with_nan
    assert np.isnan(with_nan[2, 3, 5, 5])
    assert result.flags.tolist() == ["", "", FLAG_NAN_PIXELS, FLAG_NAN_PIXELS]
    assert result.data[2, 3, 5, 5] == 0 and result.data[3, 0, 0, 0] == 0
    assert np.all(np.isfinite(result.data))


def test_nan_pixels_in_frames(field):
    frames, table = field
    data, wcs = frames["g"]
    holed = data.copy()
    x, y = wcs.wcs_world2pix(table["ra"][12], table["dec"][12], 0)  # the edge source
    holed[int(y) - 2:int(y) + 2, 0:3] = np.nan
    images = dict(frames, g=(holed, wcs))
    result = make_cutouts(table=table, images=images)
    assert result.flags[12] == f"{FLAG_EDGE};{FLAG_NAN_PIXELS}"
    assert result.flags[0] == ""
    assert np.all(np.isfinite(result.data))


def test_absurd_finite_pixels_are_flagged_and_zeroed():
    # float32 values near its maximum (1e37, -3e38) made the image networks return NaN.
    stamps = np.ones((5, 5, SIZE, SIZE), dtype=np.float32)
    stamps[1, 2, 10, 10] = 1e37
    stamps[2] = -3e38
    stamps[3, 0, 0, 0] = np.nan
    stamps[3, 4, 1, 1] = 2 * MAX_PIXEL_VALUE
    stamps[4, 1, 3, 3] = MAX_PIXEL_VALUE  # the largest value taken as data
    result = make_cutouts(stamps)
    assert result.data is not stamps and stamps[1, 2, 10, 10] == np.float32(1e37)
    assert result.flags.tolist() == ["", FLAG_BAD_PIXELS, FLAG_BAD_PIXELS,
                                     f"{FLAG_NAN_PIXELS};{FLAG_BAD_PIXELS}", ""]
    assert np.abs(result.data).max() == np.float32(MAX_PIXEL_VALUE)
    assert result.data[1, 2, 10, 10] == 0 and np.all(result.data[2] == 0)
    # Channels-last input goes through the converting path: the same flags.
    last = make_cutouts(np.moveaxis(stamps, 1, 3))
    np.testing.assert_array_equal(last.flags, result.flags)


def test_absurd_pixels_in_frames(field):
    frames, table = field
    data, wcs = frames["r"]
    corrupt = data.copy()
    x, y = wcs.wcs_world2pix(table["ra"][0], table["dec"][0], 0)
    corrupt[int(round(float(y))), int(round(float(x)))] = 1e37
    result = make_cutouts(table=table, images=dict(frames, r=(corrupt, wcs)))
    assert result.flags[0] == FLAG_BAD_PIXELS
    assert np.abs(result.data).max() <= MAX_PIXEL_VALUE


def test_positions_units_and_names(field, cut):
    frames, table = field
    t = Table({"RA": (table["ra"][:14] * u.deg).to(u.hourangle),
               "Dec": (table["dec"][:14] * u.deg).to(u.arcsec)})
    result = make_cutouts(table=t, images={b.upper(): f for b, f in frames.items()})
    np.testing.assert_array_equal(result.data, cut.data[:14])
    t2 = Table({"alpha": table["ra"][:14], "delta": table["dec"][:14]})
    result = make_cutouts(table=t2, images=frames, ra_column="ALPHA", dec_column="delta")
    np.testing.assert_array_equal(result.data, cut.data[:14])
    masked = Table(table[:3], masked=True)
    masked["ra"].mask[1] = True
    assert make_cutouts(table=masked, images=frames).flags.tolist() == ["", FLAG_OFF_FRAME, ""]


def test_read_frame_forms(field, tmp_path):
    frames, _ = field
    data, wcs = frames["i"]
    path = tmp_path / "cutouts_frame.fits"
    fits.PrimaryHDU(data, header=wcs.to_header()).writeto(path)
    for form in (path, str(path), fits.open(path), fits.PrimaryHDU(data, wcs.to_header()),
                 (data, wcs), (data, wcs.to_header()), NDData(data, wcs=wcs)):
        got, got_wcs = read_frame(form)
        assert got.dtype == np.float32 and got.shape == SHAPE
        np.testing.assert_array_equal(got, data)
        np.testing.assert_allclose(got_wcs.wcs_world2pix([[150.01, 2.01]], 0),
                                   wcs.wcs_world2pix([[150.01, 2.01]], 0))
        if isinstance(form, fits.HDUList):
            form.close()
    with pytest.raises(InvalidInputError, match=r"is an NDData without a WCS .* "
                                                r"NDData\(data, wcs=WCS\(header\)\)"):
        read_frame(NDData(data), label="frame of band 'i'")


def _one_line(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("array, kwargs, words", [
    (np.zeros((3, 5, 32)), {}, ["4 dimensions", "(3, 5, 32)"]),
    (np.zeros((3, 4, 32, 32)), {}, ["no axis of 5 bands", "(3, 4, 32, 32)"]),
    (np.zeros((3, 5, 32, 5)), {}, ["layout='channels_first'", "(3, 5, 32, 5)"]),
    (np.zeros((3, 5, 31, 31)), {}, ["31x31", "32x32", "(3, 5, 31, 31)"]),
    (np.zeros((3, 32, 32, 5)), {"size": 24}, ["32x32", "24x24"]),
    (np.zeros((3, 4, 32, 5)), {"layout": "channels_first"}, ["4 bands", "axis 1"]),
    (np.zeros((3, 5, 32, 32)), {"layout": "nchw"}, ["layout"]),
    (np.zeros((3, 5, 32, 32)), {"band_order": "ugri"}, ["band_order", "'ugri'"]),
    (np.zeros((3, 5, 32, 32)), {"band_order": "ugrig"}, ["band_order"]),
    (np.zeros((3, 5, 32, 32)), {"table": Table({"ra": [1.0, 2.0]})}, ["3 cutouts", "2 rows"]),
    (np.array([["a"] * 5]), {}, ["numeric"]),
    ([[np.zeros((32, 32))] * 4], {}, ["cutout 0", "4 bands"]),
    ([{"u": np.zeros((32, 32)), "g": np.zeros((32, 32))}], {}, ["cutout 0", "r, i, z"]),
    ([{b: np.zeros((32, 32)) for b in "ugriy"}], {}, ["unknown band", "'y'"]),
    ([[np.zeros((32, 32))] * 4 + [np.zeros((30, 32))]], {}, ["band 'z'", "(30, 32)"]),
    (np.zeros((3, 5, 64, 64)), {}, ["64x64", "cut the central 32x32", "images="]),
    ({b: np.zeros((3, 32, 32)) for b in "ugriy"}, {}, ["unknown band", "'y'"]),
    ({b: np.zeros((3, 32, 32)) for b in "ugr"}, {}, ["lacks band(s) i, z"]),
    # 'R' and 'r' both read as r: the second silently replaced the first
    ({**{b: np.zeros((3, 32, 32)) for b in "ugriz"}, "R": np.ones((3, 32, 32))}, {},
     ["cutouts names band 'r' twice"]),
    ([{**{b: np.zeros((32, 32)) for b in "ugriz"}, " Z": np.zeros((32, 32))}], {},
     ["cutout 0 names band 'z' twice"]),
    ({**{b: np.zeros((3, 32, 32)) for b in "ugri"}, "z": np.zeros((2, 32, 32))}, {},
     ["different number of stamps per band", "z 2"]),
    ({**{b: np.zeros((3, 32, 32)) for b in "ugri"}, "z": np.zeros((3, 30, 30))}, {},
     ["band 'z'", "30x30", "32x32"]),
    ({**{b: np.zeros((3, 32, 32)) for b in "ugri"}, "z": np.zeros((3, 1, 32, 32))}, {},
     ["band 'z'", "(N, H, W)"]),
    ({**{b: np.zeros((3, 32, 32)) for b in "ugri"}, "z": "z.fits"}, {},
     ["band 'z'", "not a numeric array"]),
    ("no_such_cutouts_file.fits", {}, ["does not exist", "no_such_cutouts_file.fits"]),
    (None, {}, ["no cutouts"]),
])
def test_input_errors(array, kwargs, words):
    with pytest.raises(InvalidInputError) as excinfo:
        make_cutouts(array, **kwargs)
    _one_line(excinfo, *words)


def test_file_errors(tmp_path):
    path = tmp_path / "cutouts_2d.fits"
    fits.PrimaryHDU(np.zeros((32, 32), dtype=np.float32)).writeto(path)
    with pytest.raises(InvalidInputError) as excinfo:
        make_cutouts(path)
    _one_line(excinfo, "no 4-D image HDU", str(path))
    junk = tmp_path / "cutouts_junk.fits"
    junk.write_text("not a FITS file")
    with pytest.raises(InvalidInputError) as excinfo:
        make_cutouts(junk)
    _one_line(excinfo, "cannot read", str(junk))


def test_frame_errors(field):
    frames, table = field
    data, wcs = frames["r"]
    cases = [
        ({b: f for b, f in frames.items() if b not in "uz"}, ["lacks band(s) u, z"]),
        (dict(frames, y=frames["r"]), ["unknown band", "'y'"]),
        (dict(frames, r=fits.PrimaryHDU(data)), ["band 'r'", "no celestial WCS"]),
        (dict(frames, g=(data.copy(), None)), ["band 'g'", "no WCS"]),
        (dict(frames, i=fits.PrimaryHDU(np.zeros((2,) + SHAPE, np.float32),
                                        wcs.to_header())), ["band 'i'", "2-D", "(2, 180, 260)"]),
        (dict(frames, z="no_such_frame.fits"), ["band 'z'", "does not exist"]),
        (dict(frames, u=42), ["band 'u'", "int"]),
        (["u", "g"], ["dict"]),
    ]
    for images, words in cases:
        with pytest.raises(InvalidInputError) as excinfo:
            make_cutouts(table=table, images=images)
        _one_line(excinfo, *words)
    with pytest.raises(InvalidInputError) as excinfo:
        make_cutouts(table=None, images=frames)
    _one_line(excinfo, "table")
    with pytest.raises(InvalidInputError) as excinfo:
        make_cutouts(np.zeros((16, 5, 32, 32)), table=table, images=frames)
    _one_line(excinfo, "not both")
    with pytest.raises(MissingColumnsError) as excinfo:
        make_cutouts(table=Table({"ra": [1.0]}), images=frames)
    _one_line(excinfo, "dec")


def test_empty_table(field):
    frames, table = field
    result = make_cutouts(table=table[:0], images=frames)
    assert result.data.shape == (0, 5, SIZE, SIZE) and result.flags.shape == (0,)
    assert make_cutouts([]).data.shape == (0, 5, SIZE, SIZE)


def test_many_sources_fast(field):
    """Thousands of sources are cut with vectorised indexing, not one by one."""
    import time

    frames, table = field
    rng = np.random.default_rng(1)
    ra, dec = frames["r"][1].wcs_pix2world(rng.uniform(-20, SHAPE[1] + 20, 3000),
                                           rng.uniform(-20, SHAPE[0] + 20, 3000), 0)
    start = time.perf_counter()
    result = make_cutouts(table=Table({"ra": ra, "dec": dec}), images=frames)
    elapsed = time.perf_counter() - start
    assert result.data.shape == (3000, 5, SIZE, SIZE)
    assert set(result.flags.tolist()) == {"", FLAG_EDGE, FLAG_OFF_FRAME}
    assert elapsed < 10  # about 0.2 s on an idle 2-core machine


# ---------------------------------------------------------------------------
# The real SDSS frames of field 4510-4-0030
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sdss():
    """The five real frames as (data, wcs), read once, and the calibObj stars."""
    if not FIELD.is_dir():
        pytest.skip("../shared/data/sdss_frame_004510-4-0030 is absent")

    def load(band):
        return read_frame(FIELD / f"frame-{band}-004510-4-0030.fits.bz2")

    with ThreadPoolExecutor(max_workers=len(BANDS)) as pool:  # bz2 releases the GIL
        frames = dict(zip(BANDS, pool.map(load, BANDS)))
    stars = Table.read(FIELD / "calibobj_stars_004510-4-0030.fits")
    return frames, stars


def _centroid(stamp, box=11):
    """centroid_2dg within a box around the stamp centre (neighbours stay out)."""
    from photutils.centroids import centroid_2dg

    lo = (SIZE - box) // 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = centroid_2dg(stamp[lo:lo + box, lo:lo + box])
    if caught:  # the fit did not converge: count it as a miss
        return np.nan, np.nan
    return x + lo, y + lo


def test_real_frames_centroids(sdss):
    """Bright unsaturated calibObj stars land at the stamp centre in every band.

    Stars: PSFFLUX between 20 and 2000 nanomaggies in the band (r ~ 14.2-19.2;
    SDSS saturates near r = 14).  Centroids: photutils ``centroid_2dg`` in the
    central 11x11 pixels.  A stamp's centre is pixel 15.5 (0-based) and its
    source, by Cutout2D's rounding, falls within half a pixel of it per axis.
    """
    pytest.importorskip("photutils")
    frames, stars = sdss
    result = make_cutouts(table=stars, images=frames)  # RA / DEC upper case
    assert result.data.shape == (len(stars), 5, SIZE, SIZE)
    assert set(result.flags.tolist()) <= {"", FLAG_EDGE}
    flux = np.asarray(stars["PSFFLUX"])
    for k, band in enumerate(BANDS):
        rows = np.flatnonzero((flux[:, k] >= 20) & (flux[:, k] <= 2000)
                              & (result.flags == ""))
        assert rows.size >= 10
        xy = frames[band][1].wcs_world2pix(stars["RA"][rows], stars["DEC"][rows], 0)
        expected = np.column_stack([c - np.ceil(c - SIZE / 2) for c in xy])
        found = np.array([_centroid(result.data[i, k]) for i in rows])
        dist = np.hypot(*(found - 15.5).T)
        offset = np.hypot(*(found - expected).T)
        if band in "ugr":
            assert np.all(dist < 1.0), (band, dist.max())
        else:  # a few i and z stars have close neighbours
            assert np.mean(dist < 1.0) >= 0.9, (band, np.sort(dist))
        assert np.nanmedian(offset) < 0.2, (band, np.nanmedian(offset))


def test_read_frames_reads_each_frame_once(field, tmp_path, monkeypatch):
    import sourceclf.inputs as inputs
    from sourceclf.inputs import read_frames

    frames, _ = field
    path = tmp_path / "r.fits"
    fits.PrimaryHDU(frames["r"][0], header=frames["r"][1].to_header()).writeto(path)
    calls = []
    original = inputs.read_frame
    monkeypatch.setattr(inputs, "read_frame",
                        lambda frame, **kw: calls.append(frame) or original(frame, **kw))
    # Each file is read once; frames already read are not copied.
    read = read_frames({"u": frames["u"], "G": frames["g"], "r": str(path), "i": frames["i"],
                        "z": frames["z"]})
    assert list(read) == list(BANDS) and calls.count(str(path)) == 1
    np.testing.assert_array_equal(read["r"][0], frames["r"][0])
    assert read["g"][0] is frames["g"][0]
    with pytest.raises(InvalidInputError, match="frame of band 'z': file .* does not exist"):
        read_frames({**frames, "z": str(tmp_path / "missing.fits")})


def _frame_file(path, band, data, wcs, **header):
    hdu = fits.PrimaryHDU(data, header=wcs.to_header())
    if band is not None:
        hdu.header["FILTER"] = band
    for key, value in header.items():
        hdu.header[key] = value
    hdu.writeto(path)
    return path


def test_a_frame_of_another_band_is_refused(field, tmp_path):
    """SDSS frames name their band in FILTER: a swapped or repeated file is an error."""
    from sourceclf.inputs import read_frames

    frames, table = field
    paths = {b: _frame_file(tmp_path / f"frame-{b}.fits", b, *frames[b]) for b in BANDS}
    assert read_frames(paths)["r"][0].shape == frames["r"][0].shape
    swapped = {**paths, "r": paths["u"], "u": paths["r"]}
    with pytest.raises(InvalidInputError) as excinfo:
        read_frames(swapped)
    _one_line(excinfo, "frame of band 'u'", str(paths["r"]), "FILTER = 'r'",
              "it is the r frame, given for band u")
    with pytest.raises(InvalidInputError) as excinfo:  # one file for two bands
        read_frames({**paths, "i": paths["r"]})
    _one_line(excinfo, "images gives the same frame for bands r and i (its FILTER says 'r')")
    with pytest.raises(InvalidInputError, match=r"same frame for bands g and z \(its FILTER "
                                                r"says 'z'\)"):
        make_cutouts(table=table, images={**paths, "g": paths["z"]})
    with fits.open(paths["z"]) as hdul:  # an HDU given directly
        with pytest.raises(InvalidInputError, match="FILTER = 'z'"):
            read_frames({**frames, "g": hdul[0]})
    # FILTER as other software writes SDSS's bands
    sdss = _frame_file(tmp_path / "sdss.fits", "SDSS r", *frames["r"])
    with pytest.raises(InvalidInputError, match="it is the r frame, given for band g"):
        read_frames({**paths, "g": sdss})
    assert len(read_frames({**paths, "r": sdss})) == 5
    # frames without FILTER are taken as given; a FILTER that is not SDSS's is said
    plain = _frame_file(tmp_path / "plain.fits", None, *frames["g"])
    other = _frame_file(tmp_path / "other.fits", "F606W", *frames["i"])
    with pytest.warns(SourceclfWarning) as record:
        assert len(read_frames({**paths, "g": plain, "i": other})) == 5
    assert len(record) == 1
    assert "FILTER = 'F606W' in its header, not an SDSS band" in str(record[0].message)
    assert "it is read as the i frame" in str(record[0].message)


@pytest.mark.parametrize("value, band", [
    ("r", "r"), ("R", "r"), (" g ", "g"), ("r'", "r"), ("SDSS r", "r"), ("sdss_i", "i"),
    ("SDSS-z", "z"), ("u_sdss", "u"), ("g-band", "g"), ("SDSS.r'", "r"),
    ("F606W", None), ("HSC-R", None), ("V", None), ("rg", None), ("r2", None),
    ("Ks", None), ("", None)])
def test_filter_band_reads_the_ways_sdss_bands_are_named(value, band):
    from sourceclf.frames import filter_band

    assert filter_band(value) == band


def test_scaled_and_truncated_frames(field, tmp_path):
    frames, _ = field
    data, wcs = frames["r"]
    scaled = tmp_path / "scaled.fits"  # integers with BSCALE/BZERO: not memory-mappable
    hdu = fits.PrimaryHDU(np.round(data / 0.001).astype(np.int32), header=wcs.to_header())
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.001, 0.0
    hdu.writeto(scaled)
    read, _ = read_frame(scaled)
    np.testing.assert_allclose(read, data, atol=0.001)
    whole = _frame_file(tmp_path / "whole.fits", "r", data, wcs)
    cut_short = tmp_path / "cut_short.fits"
    cut_short.write_bytes(whole.read_bytes()[:2880 * 3])  # an interrupted download
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy says "File may have been truncated"
        with pytest.raises(InvalidInputError) as excinfo:
            read_frame(cut_short, label="frame of band 'r'")
    _one_line(excinfo, "frame of band 'r'", str(cut_short), "truncated or corrupt")


def test_a_corrupt_header_gives_the_one_line_error_alone(tmp_path):
    """astropy printed a VerifyWarning over three lines before the one-line error (and,
    with warnings as errors, raised it instead)."""
    corrupt = tmp_path / "corrupt.fits"
    corrupt.write_bytes(b"SIMPLE  = T" + bytes(100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning let through fails the test
        with pytest.raises(InvalidInputError) as excinfo:
            read_frame(corrupt, label="frame of band 'r'")
    _one_line(excinfo, "frame of band 'r'", str(corrupt), "as FITS")


def test_warnings_of_a_frame_that_can_be_read_are_given_again(field, tmp_path, monkeypatch):
    frames, _ = field
    path = _frame_file(tmp_path / "r.fits", "r", *frames["r"])
    opened = fits.open

    def open_with_a_warning(*args, **kwargs):
        warnings.warn("a header keyword astropy did not like", fits.verify.VerifyWarning)
        return opened(*args, **kwargs)

    monkeypatch.setattr(fits, "open", open_with_a_warning)
    with pytest.warns(fits.verify.VerifyWarning, match="did not like"):
        data, _ = read_frame(path)
    np.testing.assert_array_equal(data, frames["r"][0])


def test_frames_read_in_threads_do_not_change_each_others_warning_filters(
        field, tmp_path, monkeypatch):
    """A frame's WCS is built with astropy's FITSFixedWarning ignored (SDSS headers use
    RADECSYS), and a file is opened with its warnings held back; both change the warning
    filters, which every thread shares, so interleaved they caught and gave again each
    other's warnings (seen once in CI, reading five frames in threads).  They now take
    turns: a file is not opened while another thread builds a WCS."""
    import threading
    import time

    import astropy.wcs

    frames, _ = field
    path = _frame_file(tmp_path / "r.fits", "r", *frames["r"])
    building = threading.Event()
    times = {}
    real_wcs, real_open = astropy.wcs.WCS, fits.open

    class SlowWCS(real_wcs):
        def __init__(self, *args, **kwargs):
            if not building.is_set():
                building.set()
                time.sleep(0.3)  # the other thread tries to open its file meanwhile
                times["built"] = time.monotonic()
            super().__init__(*args, **kwargs)

    def timed_open(*args, **kwargs):
        times.setdefault("opened", time.monotonic())
        return real_open(*args, **kwargs)

    monkeypatch.setattr(astropy.wcs, "WCS", SlowWCS)
    monkeypatch.setattr(fits, "open", timed_open)
    header = fits.Header(frames["r"][1].to_header())

    def open_while_building():
        building.wait(5)
        return read_frame(path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        built = pool.submit(read_frame, (frames["r"][0], header))
        opened = pool.submit(open_while_building)
        built.result(), opened.result()
    assert times["opened"] >= times["built"]


def test_compressed_frames_and_cutouts_are_read_whole(field, tmp_path):
    """bzip2 and gzip frames (SDSS's are .fits.bz2) are decompressed once and read as the
    plain file, and so are compressed stamps files (through astropy); a compressed frame cut
    short is a one-line error naming it and its compression."""
    import bz2
    import gzip

    frames, _ = field
    data, wcs = frames["r"]
    whole = _frame_file(tmp_path / "whole.fits", "r", data, wcs)
    stamps = np.arange(2 * 5 * 32 * 32, dtype=np.float32).reshape(2, 5, 32, 32)
    fits.PrimaryHDU(stamps).writeto(tmp_path / "stamps.fits")
    plain, plain_wcs = read_frame(whole)
    for suffix, compress in ((".bz2", bz2.compress), (".gz", gzip.compress)):
        packed = tmp_path / f"frame.fits{suffix}"
        packed.write_bytes(compress(whole.read_bytes()))
        read, read_wcs = read_frame(packed)
        np.testing.assert_array_equal(read, plain)
        assert read_wcs.to_header_string() == plain_wcs.to_header_string()
        packed_stamps = tmp_path / f"stamps.fits{suffix}"
        packed_stamps.write_bytes(compress((tmp_path / "stamps.fits").read_bytes()))
        np.testing.assert_array_equal(make_cutouts(packed_stamps).data, stamps)
        cut_short = tmp_path / f"cut_short.fits{suffix}"
        cut_short.write_bytes(packed.read_bytes()[:5000])
        with pytest.raises(InvalidInputError) as excinfo:
            read_frame(cut_short, label="frame of band 'r'")
        _one_line(excinfo, "frame of band 'r'", str(cut_short),
                  f"its {'bzip2' if suffix == '.bz2' else 'gzip'} compression is corrupt or "
                  "cut short")


@pytest.mark.parametrize("unit", ["DEG", "degrees", "deg", "hourangle"])
def test_positions_in_units_older_catalogs_write(unit):
    from sourceclf.frames import sky_positions

    table = Table({"ra": [10.0, 20.0], "dec": [1.0, 2.0]})
    table["ra"].unit = unit  # a FITS TUNIT astropy may not parse
    ra, _ = sky_positions(table)
    np.testing.assert_allclose(ra, [150.0, 300.0] if unit == "hourangle" else [10.0, 20.0])


def test_positions_in_a_unit_that_is_no_angle():
    from sourceclf.frames import sky_positions

    table = Table({"ra": [10.0], "dec": [1.0]})
    table["dec"].unit = "foo"
    with pytest.raises(InvalidInputError) as excinfo:
        sky_positions(table)
    _one_line(excinfo, "column 'dec' has unit 'foo'", "not an angle")


def test_one_frame_for_two_bands_is_refused(field, tmp_path):
    """The CLI refused one file for two bands; the library took one object for two (a frame
    without FILTER in its header, or a pair), and classified from four bands' light."""
    frames, table = field
    data, wcs = frames["u"]
    fits.PrimaryHDU(data, header=wcs.to_header()).writeto(tmp_path / "u.fits")
    for same in (frames["u"], (data, frames["g"][1]), str(tmp_path / "u.fits")):
        given = {**frames, "u": same if isinstance(same, str) else frames["u"], "g": same}
        if isinstance(same, str):
            given["u"] = tmp_path / "u.fits"  # a Path and a str of one file
        with pytest.raises(InvalidInputError) as excinfo:
            make_cutouts(table=table, images=given)
        _one_line(excinfo, "images gives the same frame for bands u and g")


def test_positions_under_other_catalogs_names_get_the_mapping_to_pass():
    """RAJ2000/DEJ2000 (VizieR's names) got only the list of the table's columns."""
    from sourceclf.frames import sky_positions

    table = Table({"RAJ2000": [10.0], "DEJ2000": [1.0], "r": [18.0]})
    with pytest.raises(MissingColumnsError) as excinfo:
        sky_positions(table)
    _one_line(excinfo, "lacks column(s) ra, dec", "--column ra=RAJ2000 --column dec=DEJ2000")
    table = Table({"x": [10.0], "DEJ2000": [1.0]})  # only dec has a known other name
    with pytest.raises(MissingColumnsError) as excinfo:
        sky_positions(table)
    _one_line(excinfo, "--column dec=DEJ2000", "have: x, DEJ2000")


def test_a_skycoord_column_gives_the_positions(field):
    """A QTable's SkyCoord column (in any frame) instead of ra and dec columns."""
    from astropy.table import QTable

    from sourceclf.frames import sky_positions
    from sourceclf.tableio import check_writable_columns

    frames, table = field
    inside = table[:12]
    ra, dec = sky_positions(inside)
    sky = QTable({"coord": SkyCoord(ra * u.deg, dec * u.deg).galactic, "id": inside["id"]})
    got_ra, got_dec = sky_positions(sky)
    np.testing.assert_allclose(got_ra, ra, atol=1e-9)
    np.testing.assert_allclose(got_dec, dec, atol=1e-9)
    from_coords = make_cutouts(table=sky, images=frames)
    from_columns = make_cutouts(table=inside, images=frames)
    np.testing.assert_array_equal(from_coords.data, from_columns.data)
    np.testing.assert_array_equal(from_coords.flags, from_columns.flags)
    check_writable_columns(sky, "fits", "out.fits")  # written as astropy writes mixins


@pytest.mark.parametrize("fill", [0.0, np.nan])
def test_a_blank_frame_is_refused(field, fill):
    """A band's frame of zeros or NaN (a failed download, a mask) gave confident classes."""
    frames, table = field
    data, wcs = frames["r"]
    with pytest.raises(InvalidInputError) as excinfo:
        make_cutouts(table=table, images={**frames, "r": (np.full_like(data, fill), wcs)})
    _one_line(excinfo, "frame of band 'r' holds no data", "zero or not finite")


def test_sexagesimal_positions_are_named():
    from sourceclf.frames import sky_positions

    table = Table({"ra": ["10:00:00.0", "10:00:01.0"], "dec": ["+02:00:00", "+02:00:10"]})
    with pytest.raises(InvalidInputError) as excinfo:
        sky_positions(table)
    _one_line(excinfo, "column 'ra' holds text ('10:00:00.0'), not degrees", "SkyCoord")


def test_the_image_with_a_sky_wcs_is_read_from_a_file_of_several(field, tmp_path):
    """A thumbnail without WCS first, the science image in an extension."""
    frames, _ = field
    data, wcs = frames["r"]
    path = tmp_path / "with_thumbnail.fits"
    fits.HDUList([fits.PrimaryHDU(np.ones((16, 16), np.float32)),
                  fits.ImageHDU(data, header=wcs.to_header(), name="SCI")]).writeto(path)
    read, read_wcs = read_frame(path)
    assert read.shape == data.shape and read_wcs.has_celestial
