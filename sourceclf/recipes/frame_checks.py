"""Checks of an image model on real SDSS frames.

The image models learn from simulated stamps; these checks run a model on
the real frames of sourceclf's data.  On field 4510-4-0030: its calibObj
photometric stars (`real_frame_catalog`, `frame_star_check`) and its clearly
extended bright sources found with photutils (`frame_extended_sources`,
`frame_galaxy_check`).  The truth of every shared field, point-like or
extended for each bright source, is `sourceclf.recipes.extent_truth`.
"""

import functools
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.convolution import convolve
from astropy.coordinates import SkyCoord
from astropy.stats import sigma_clipped_stats
from astropy.table import Table

from ..bands import BANDS
from ..classification import classify
from ..frames import read_frame
from ..features import get_feature_set
from ..photometry import luptitude
from .data import default_data_dir

__all__ = ["devrad_from_fluxes", "real_frame_catalog",
           "frame_star_check", "frame_extended_sources", "frame_galaxy_check"]

# Directory of the SDSS field's frames and calibObj stars in the data directory.
_FRAME = "sdss_frame_004510-4-0030"


@functools.lru_cache(maxsize=1)
def _psf_flux_fractions(beta=3.0):
    """R / FWHM grid and the PSF-fitted flux fraction of a PSF-convolved deV profile."""
    import galsim

    fwhm = 8.0  # pixels: the ratio depends on R / FWHM only
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)

    def draw(obj):
        return obj.drawImage(nx=128, ny=128, scale=1.0, method="no_pixel").array

    p = draw(psf)
    grid = np.linspace(0.0, 3.0, 61)
    fractions = [1.0] + [
        float((draw(galsim.Convolve(galsim.DeVaucouleurs(half_light_radius=x * fwhm), psf))
               * p).sum() / (p * p).sum()) for x in grid[1:]]
    return grid, np.array(fractions)


def devrad_from_fluxes(psf_flux, model_flux, psffwhm):
    """de Vaucouleurs radii (arcsec) from the ratio of PSF to model flux.

    PSF photometry of an extended source misses light: for a de Vaucouleurs
    profile of half-light radius R seen through a Moffat PSF (index 3) of
    FWHM w, the PSF flux is a known fraction of the total that falls from 1 at
    R = 0 to 0.2 at R = 3w.  Inverting it turns a catalog's PSF and model
    fluxes (SDSS's ``psfFlux``/``modelFlux``, the basis of its own star/galaxy
    separation) into a radius for catalogs that lack ``deVRad``; ratios of 1
    or more give 0.  Bands without positive fluxes get the median of the
    row's other bands, rows without any 0.

    Parameters
    ----------
    psf_flux, model_flux : array-like, shape (n, 5)
        Fluxes per band, any one unit.
    psffwhm : array-like, shape (n, 5)
        PSF FWHM per band, arcsec.

    Returns
    -------
    devrad : `numpy.ndarray`, shape (n, 5)
    """
    grid, fractions = _psf_flux_fractions()
    psf_flux = np.asarray(psf_flux, float)
    model_flux = np.asarray(model_flux, float)
    ok = (psf_flux > 0) & (model_flux > 0)
    ratio = np.where(ok, psf_flux / np.where(ok, model_flux, 1.0), np.nan)
    radius = np.interp(-np.clip(ratio, fractions[-1], 1.0), -fractions, grid)
    radius = np.where(ok, radius * np.asarray(psffwhm, float), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without a usable band
        row = np.nanmedian(radius, axis=1)
    row = np.where(np.isfinite(row), row, 0.0)
    return np.where(np.isfinite(radius), radius, row[:, None])


def real_frame_catalog(data_dir=None, frames=None):
    """The calibObj stars of SDSS field 4510-4-0030 as a catalog with MargNet's columns.

    ``ra``, ``dec``; ``dered_<b>`` from the model fluxes as SDSS asinh
    magnitudes minus ``extinction_<b>``; ``psffwhm_<b>`` (calibObj
    ``PSF_FWHM``); ``deVRad_<b>`` from the PSF-to-model flux ratios with
    `devrad_from_fluxes` (calibObj has no deVRad); colours ``u_g`` ...; and
    ``class`` STAR (they are photometric stars, OBJC_TYPE 6).

    Parameters
    ----------
    data_dir : path-like, optional
        Directory holding ``sdss_frame_004510-4-0030/``.
    frames : dict, optional
        The frames already read, ``{band: (data, wcs)}``.

    Returns
    -------
    catalog : `~astropy.table.Table` or None
        None when the frame data are absent.
    frames : dict
        ``{band: (data, wcs)}``, the frames read once (pass them to
        ``classify(catalog, images=frames)``).
    """
    frame_dir = Path(data_dir or default_data_dir()) / _FRAME
    path = frame_dir / "calibobj_stars_004510-4-0030.fits"
    if not path.is_file():
        return None, None
    if frames is None:
        frames = {b: read_frame(frame_dir / f"frame-{b}-004510-4-0030.fits.bz2")
                  for b in BANDS}
    stars = Table.read(path)
    cat = Table()
    cat["objid"] = np.asarray(stars["ID"])
    cat["ra"] = np.asarray(stars["RA"], float) * u.deg
    cat["dec"] = np.asarray(stars["DEC"], float) * u.deg
    flux = np.asarray(stars["MODELFLUX"], float)
    ext = np.asarray(stars["EXTINCTION"], float)
    fwhm = np.asarray(stars["PSF_FWHM"], float)
    devrad = devrad_from_fluxes(stars["PSFFLUX"], flux, fwhm)
    observed = {}
    for k, b in enumerate(BANDS):
        observed[b] = luptitude(flux[:, k], b)
        cat[f"dered_{b}"] = (observed[b] - ext[:, k]) * u.mag
        cat[f"deVRad_{b}"] = devrad[:, k] * u.arcsec
        cat[f"psffwhm_{b}"] = fwhm[:, k] * u.arcsec
        cat[f"extinction_{b}"] = ext[:, k] * u.mag
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        cat[f"{a}_{b}"] = (observed[a] - observed[b]) * u.mag
    cat["class"] = np.full(len(cat), "STAR")
    cat.meta["ORIGIN"] = ("sourceclf.image_recipes.real_frame_catalog: calibObj stars of "
                          "SDSS 4510-4-0030; deVRad from the PSF/model flux ratios")
    return cat, frames


def frame_star_check(clf, data_dir=None, frames=None):
    """Fraction of the real calibObj stars of field 4510-4-0030 called STAR or QSO.

    Models that read features get those of `real_frame_catalog` (with its
    estimated ``deVRad``).

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The model to check.
    data_dir : path-like, optional
        Directory holding ``sdss_frame_004510-4-0030/``.
    frames : dict, optional
        The frames already read, ``{band: (data, wcs)}`` (as `real_frame_catalog`
        returns them), so that several checks read them once.

    Returns
    -------
    result : dict or None
        ``n``, ``point_fraction`` and the counts per predicted class; None
        when the frame data are absent.
    """
    cat, frames = real_frame_catalog(data_dir, frames)
    if cat is None:
        return None
    out = classify(cat, images=frames, model=clf, confidence=None)
    pred = np.asarray(out["pred_class"].filled("")).astype(str)
    counts = {c: int(np.sum(pred == c)) for c in clf.classes}
    return {"data": f"{_FRAME}: the 161 calibObj photometric stars (OBJC_TYPE 6) on the "
                    "real frames" + ("" if clf.feature_set is None else
                                     "; features from calibObj, deVRad from its PSF/model "
                                     "flux ratios (image_recipes.real_frame_catalog)"),
            "n": len(cat), "point_fraction": round(float(np.isin(pred, ["STAR", "QSO"]).mean()), 4),
            "predicted": counts}


def frame_extended_sources(data_dir=None, frames=None, *, max_r=19.5, min_width=1.8,
                           max_peak=50.0):
    """Clearly extended bright sources of SDSS field 4510-4-0030, found with photutils.

    Sources are detected on the r frame (`photutils.segmentation.detect_sources`
    on the sky-subtracted frame smoothed by a 3-pixel Gaussian, 3 sigma, 10
    pixels) and measured with `~photutils.segmentation.SourceCatalog`.  Kept
    are those brighter than ``max_r`` (segment flux), whose FWHM exceeds
    ``min_width`` times the median FWHM of the calibObj stars, with no calibObj
    star within 3 arcsec and a peak under ``max_peak`` nanomaggies (which
    drops saturated stars, whose bleed trails and spikes widen them).  These
    are the galaxies anyone would point at in the frame; the frame has no
    spectroscopic labels.

    Returns
    -------
    sources : `~astropy.table.Table` or None
        ``ra``, ``dec``, ``x``, ``y`` (pixels of the r frame), ``r_segment``
        and ``fwhm_pix``; None when the frame data are absent.
    """
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel

    stars, frames = real_frame_catalog(data_dir, frames)
    if stars is None:
        return None
    data, wcs = frames["r"]
    _, median, std = sigma_clipped_stats(data, sigma=3.0)
    image = data - median
    smooth = convolve(image, make_2dgaussian_kernel(3.0, size=5))
    segments = detect_sources(smooth, 3.0 * std, n_pixels=10)
    found = SourceCatalog(image, segments, convolved_data=smooth, wcs=wcs)
    fwhm = np.asarray(found.fwhm.value)
    flux = np.asarray(found.segment_flux, dtype=float)
    r_seg = 22.5 - 2.5 * np.log10(np.clip(flux, 1e-3, None))
    _, sep, _ = found.sky_centroid.match_to_catalog_sky(SkyCoord(stars["ra"], stars["dec"]))
    is_star = sep < 3 * u.arcsec
    psf = np.median(fwhm[is_star])
    keep = (~is_star & (r_seg < max_r) & (fwhm > min_width * psf)
            & (np.asarray(found.max_value) < max_peak))
    coords = found.sky_centroid[keep]
    out = Table()
    out["ra"] = coords.ra.to(u.deg)
    out["dec"] = coords.dec.to(u.deg)
    out["x"] = np.asarray(found.x_centroid)[keep]
    out["y"] = np.asarray(found.y_centroid)[keep]
    out["r_segment"] = r_seg[keep] * u.mag
    out["fwhm_pix"] = fwhm[keep]
    out.meta["ORIGIN"] = ("sourceclf.image_recipes.frame_extended_sources: photutils on the "
                          f"r frame of {_FRAME}; stellar FWHM {psf:.2f} pix")
    return out


def frame_galaxy_check(clf, data_dir=None, frames=None):
    """Fraction of the clearly extended bright sources of the real frame called GALAXY.

    Only for models reading the images alone (no feature set, or the PSF
    of the images, ``psf_fwhm``): the sources of `frame_extended_sources`
    have positions but no SDSS photometry.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The model to check.
    data_dir : path-like, optional
        Directory holding ``sdss_frame_004510-4-0030/``.
    frames : dict, optional
        The frames already read, ``{band: (data, wcs)}`` (as `real_frame_catalog`
        returns them), so that several checks read them once.

    Returns
    -------
    result : dict or None
        ``n``, ``galaxy_fraction`` and the counts per predicted class; None
        when the frame data are absent or the model needs features.
    """
    if clf.feature_set is not None and not get_feature_set(clf.feature_set).reads_image_psf:
        return None
    _, frames = real_frame_catalog(data_dir, frames)
    if frames is None:
        return None
    sources = frame_extended_sources(data_dir, frames)
    out = classify(sources, images=frames, model=clf, confidence=None)
    pred = np.asarray(out["pred_class"].filled("")).astype(str)
    return {"data": f"{_FRAME}: clearly extended bright sources found with photutils "
                    "(image_recipes.frame_extended_sources)",
            "n": len(sources), "galaxy_fraction": round(float(np.mean(pred == "GALAXY")), 4),
            "predicted": {c: int(np.sum(pred == c)) for c in clf.classes}}
