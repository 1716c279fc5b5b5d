"""Tests of sourceclf.demo.demo_frames: synthetic frames with a WCS per band."""

import sys

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.bands import BANDS
from sourceclf.cutouts import make_cutouts
from sourceclf.demo import demo_catalog, demo_frames
from sourceclf.exceptions import InvalidInputError

pytest.importorskip("galsim")

N = 30
STAMP = 32


@pytest.fixture(scope="module")
def noisy():
    return demo_frames(n=N, random_state=0)


@pytest.fixture(scope="module")
def clean():
    return demo_frames(n=N, random_state=0, noise=False)


def _band_pixels(frames, catalog):
    """0-based pixel positions of the catalog's rows in every band's own WCS."""
    ra = catalog["ra"].quantity.to_value(u.deg)
    dec = catalog["dec"].quantity.to_value(u.deg)
    return {b: WCS(frames[b].header).wcs_world2pix(ra, dec, 0) for b in BANDS}


def _centroid(stamp, half=5):
    """Centroid (x, y) of the central (2 half) x (2 half) pixels, in stamp pixels."""
    from photutils.centroids import centroid_2dg

    c = stamp.shape[0] // 2
    cx, cy = centroid_2dg(stamp[c - half:c + half, c - half:c + half])
    return cx + c - half, cy + c - half


def test_shapes_and_headers(noisy):
    catalog, frames = noisy
    assert len(catalog) == N
    assert catalog["ra"].unit == u.deg and catalog["dec"].unit == u.deg
    assert list(frames) == list(BANDS)
    for band, hdu in frames.items():
        assert isinstance(hdu, fits.PrimaryHDU)
        assert hdu.data.shape == (256, 256) and hdu.data.dtype == np.float32
        assert np.isfinite(hdu.data).all()
        wcs = WCS(hdu.header)
        assert wcs.has_celestial and list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
        assert np.allclose(np.abs(wcs.proj_plane_pixel_scales()[0].to_value(u.arcsec)), 0.396)
        assert hdu.header["BUNIT"] == "nanomaggy" and hdu.header["FILTER"] == band
    small, small_frames = demo_frames(n=5, size=64, random_state=1)
    assert len(small) == 5 and small_frames["u"].data.shape == (64, 64)


def test_catalog_is_demo_catalog_with_positions(noisy):
    catalog, _ = noisy
    base = demo_catalog(N, random_state=0)
    for name in base.colnames:
        if name not in ("ra", "dec"):
            assert np.array_equal(np.asarray(catalog[name]), np.asarray(base[name])), name


def test_deterministic(noisy, clean):
    catalog, frames = noisy
    again, again_frames = demo_frames(n=N, random_state=0)
    assert all(np.array_equal(np.asarray(catalog[c]), np.asarray(again[c]))
               for c in catalog.colnames)
    for b in BANDS:
        assert np.array_equal(frames[b].data, again_frames[b].data)
        assert frames[b].header == again_frames[b].header
    # Noise changes the pixels only: same positions and WCSs without it.
    clean_catalog, clean_frames = clean
    assert np.array_equal(np.asarray(clean_catalog["ra"]), np.asarray(catalog["ra"]))
    assert all(clean_frames[b].header == frames[b].header for b in BANDS)
    other, other_frames = demo_frames(n=N, random_state=1)
    assert not np.array_equal(np.asarray(other["ra"]), np.asarray(catalog["ra"]))
    assert not np.array_equal(other_frames["r"].data, frames["r"].data)


def test_given_catalog_is_copied():
    given = demo_catalog(12, random_state=5)
    given.rename_column("ra", "RA")
    given.rename_column("dec", "Dec")
    before = np.array(given["RA"])
    catalog, frames = demo_frames(given, n=99, random_state=2)
    assert len(catalog) == 12
    assert "ra" not in catalog.colnames and "RA" in catalog.colnames  # replaced in place
    assert np.array_equal(np.asarray(given["RA"]), before)  # the input is not touched
    flags = make_cutouts(table=catalog, images=frames).flags.tolist()
    assert flags[-2:] == ["edge", "off_frame"]


def test_bands_are_misaligned(clean):
    catalog, frames = clean
    pix = _band_pixels(frames, catalog)
    shifts = np.array([[np.median(pix[b][0] - pix["r"][0]), np.median(pix[b][1] - pix["r"][1])]
                       for b in BANDS])
    assert np.abs(shifts).max() > 2.0  # several pixels between some bands
    assert np.abs(shifts).max() < 4.0


def test_centred_in_every_band_noiseless(clean):
    """Each band's stamp has the source where Cutout2D with that band's WCS puts it."""
    pytest.importorskip("photutils")
    catalog, frames = clean
    result = make_cutouts(table=catalog, images=frames)
    pix = _band_pixels(frames, catalog)
    inside = np.flatnonzero(result.flags == "")
    assert inside.size == N - 2
    for k, b in enumerate(BANDS):
        x, y = pix[b]
        # Cutout2D's first pixel is ceil(position - size / 2).
        ex, ey = x - np.ceil(x - STAMP / 2), y - np.ceil(y - STAMP / 2)
        for i in inside:
            cx, cy = _centroid(result.data[i, k])
            assert abs(cx - ex[i]) < 0.1 and abs(cy - ey[i]) < 0.1, (b, i)
            assert np.hypot(cx - (STAMP - 1) / 2, cy - (STAMP - 1) / 2) < 1.0, (b, i)


def test_one_wcs_for_all_bands_misses(clean):
    """Cutting every band with the r frame's WCS puts sources off the stamp centre."""
    pytest.importorskip("photutils")
    catalog, frames = clean
    r_wcs = WCS(frames["r"].header)
    wrong = make_cutouts(table=catalog, images={b: (frames[b].data, r_wcs) for b in BANDS})
    offsets = np.array([[np.hypot(*np.subtract(_centroid(wrong.data[i, k]), (STAMP - 1) / 2))
                         for k in range(len(BANDS))] for i in range(N - 2)])
    assert (np.median(offsets, axis=0) > 1.5).sum() >= 3


def test_centred_in_every_band_with_noise(noisy, clean):
    """Sources of peak S/N >= 5 are within a pixel of the stamp centre."""
    pytest.importorskip("photutils")
    from sourceclf.simulate import SDSS_BAND_DEFAULTS

    catalog, frames = noisy
    result = make_cutouts(table=catalog, images=frames)
    peaks = make_cutouts(table=clean[0], images=clean[1]).data.max(axis=(2, 3))
    for k, b in enumerate(BANDS):
        bright = np.flatnonzero((peaks[:, k] / SDSS_BAND_DEFAULTS[b]["sky_sigma"] >= 5)
                                & (result.flags == ""))
        assert bright.size >= 1, b
        for i in bright:
            cx, cy = _centroid(result.data[i, k])
            assert np.hypot(cx - (STAMP - 1) / 2, cy - (STAMP - 1) / 2) < 1.0, (b, i)


def test_flags(noisy):
    catalog, frames = noisy
    result = make_cutouts(table=catalog, images=frames)
    assert result.data.shape == (N, 5, STAMP, STAMP)
    assert result.flags.tolist() == [""] * (N - 2) + ["edge", "off_frame"]
    assert not result.data[-1].any()
    # The edge row's stamps hit the x = 0 edge in every band (zero-filled columns).
    assert all(not result.data[-2, k][:, 0].any() for k in range(len(BANDS)))
    plain, plain_frames = demo_frames(n=8, random_state=0, flagged=False)
    assert set(make_cutouts(table=plain, images=plain_frames).flags.tolist()) == {""}
    two, two_frames = demo_frames(n=2, random_state=0)
    assert make_cutouts(table=two, images=two_frames).flags.tolist() == ["", ""]


def test_paths_give_the_same_stamps(noisy, tmp_path):
    catalog, frames = noisy
    paths = {}
    for b, hdu in frames.items():
        paths[b] = tmp_path / f"frame-{b}.fits"
        hdu.writeto(paths[b])
    in_memory = make_cutouts(table=catalog, images=frames)
    from_files = make_cutouts(table=catalog, images={b: str(p) for b, p in paths.items()})
    assert np.array_equal(in_memory.data, from_files.data)
    assert in_memory.flags.tolist() == from_files.flags.tolist()
    catalog_path = tmp_path / "catalog.fits"
    catalog.write(catalog_path)
    again = make_cutouts(table=Table.read(catalog_path), images=paths)
    assert np.array_equal(in_memory.data, again.data)


def test_flux_and_noise(clean, noisy):
    from sourceclf.simulate import SDSS_BAND_DEFAULTS, measure_sky_sigma, nanomaggies

    # Point sources keep all their flux; galaxies nearly all (wings past 20").
    for classes, rel in ((["STAR"], 0.01), (["GALAXY"], 0.07)):
        given = demo_catalog(16, random_state=3, classes=classes)
        catalog, frames = demo_frames(given, random_state=3, noise=False, flagged=False)
        for b in BANDS:
            expected = nanomaggies(np.asarray(catalog[b])).sum()
            assert frames[b].data.sum() == pytest.approx(expected, rel=rel), (classes, b)
    for b in BANDS:
        sigma = measure_sky_sigma(noisy[1][b].data - clean[1][b].data, mask_radius=0)
        assert sigma == pytest.approx(SDSS_BAND_DEFAULTS[b]["sky_sigma"], rel=0.1), b


def test_bad_options(monkeypatch):
    with pytest.raises(InvalidInputError, match="size"):
        demo_frames(n=3, size=32)
    with pytest.raises(InvalidInputError, match="n must"):
        demo_frames(n=-1)
    monkeypatch.setitem(sys.modules, "galsim", None)
    with pytest.raises(ImportError, match="sourceclf\\[sim\\]"):
        demo_frames(n=3)
