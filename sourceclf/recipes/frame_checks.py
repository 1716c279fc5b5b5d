"""Checks of an image model on real SDSS frames.

The image models learn from simulated stamps; these checks run a model on
the real frames of sourceclf's data.  On field 4510-4-0030: its calibObj
photometric stars (`real_frame_catalog`, `frame_star_check`) and its clearly
extended bright sources found with photutils (`frame_extended_sources`,
`frame_galaxy_check`).  On any field: `frame_truth`, point-like or extended
for every bright source of a frame, measured the way SDSS separates them
(``psfMag - cmodelMag > 0.145``) with a PSF flux and an aperture flux
(`psf_aperture_fluxes`); ``docs/scripts/check_fields.py`` scores the image
models against it on every shared field at several seeings, next to the same
measurement made again on the blurred frames (`forced_extent`).
"""

import functools
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.convolution import convolve
from astropy.coordinates import SkyCoord
from astropy.stats import sigma_clip, sigma_clipped_stats
from astropy.table import Table

from ..bands import BANDS
from ..classification import classify
from ..frames import read_frame
from ..exceptions import InvalidInputError
from ..features import get_feature_set
from ..photometry import detect_segments, luptitude
from ..psf import moffat_profile
from ..utils._wcs import pixel_scale
from .data import default_data_dir

__all__ = ["devrad_from_fluxes", "real_frame_catalog",
           "frame_star_check", "frame_extended_sources", "frame_galaxy_check",
           "EXTENT_POINT", "PEAK_RADIUS", "AMBIGUITY_SIGMA", "PLANE_MIN_STARS", "locus_width",
           "psf_aperture_fluxes", "extent_zero", "frame_truth", "forced_extent"]

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


#: SDSS's star/galaxy cut: a source is extended when its PSF magnitude is
#: fainter than its model magnitude by more than this.
EXTENT_POINT = 0.145

#: `frame_truth` calls a source ``ambiguous`` when its extent lies within this
#: many locus widths (the spread of point sources' extent at its magnitude) of
#: `EXTENT_POINT`.
AMBIGUITY_SIGMA = 2.0

#: Fewest PSF stars (of finite extent) `extent_zero` fits a plane to; else their median.
PLANE_MIN_STARS = 12

#: A source of `frame_truth` whose centre lies farther than this (pixels) from
#: every local maximum of the PSF-smoothed frame has no peak of its own.
PEAK_RADIUS = 1.5


def psf_aperture_fluxes(data, x, y, fwhm, beta, *, segments=None, labels=None,
                        aperture=3.0, background=(4.0, 6.0)):
    """PSF and aperture fluxes of sources on a frame, with a local background.

    The PSF flux is the matched-filter flux ``sum(P I) / sum(P P)`` with the
    frame's Moffat PSF ``P`` (what SDSS's ``psfFlux`` is for an isolated
    source); the aperture flux sums a circle of radius ``aperture`` FWHM
    (standing in for the model flux).  Both subtract the median of the
    source-free pixels of an annulus of ``background`` FWHM (SDSS's sky
    subtraction leaves large positive regions near bright stars and in
    clusters).  Pixels of other segments are left out of the PSF flux and
    replaced by the PSF model in the aperture.

    Parameters
    ----------
    data : `numpy.ndarray`
        Sky-subtracted 2-D frame.
    x, y : array-like
        Source positions (pixels).
    fwhm, beta : float
        The frame's Moffat PSF: FWHM in pixels and index.
    segments : `numpy.ndarray` of int, optional
        Segmentation image (0: sky), e.g. photutils' ``SegmentationImage.data``.
    labels : array-like of int, optional
        Each source's own segment label.
    aperture : float
        Aperture radius, FWHM.
    background : tuple of float
        Inner and outer radius of the background annulus, FWHM.

    Returns
    -------
    fluxes : dict of `numpy.ndarray`
        ``psf``, ``aperture``, ``peak`` (brightest pixel within 2 pixels),
        ``masked`` (fraction of the aperture in other segments) and
        ``background``; NaN for sources too near the edge.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    half = int(np.ceil(background[1] * fwhm)) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    ny, nx = data.shape
    out = {k: np.full(len(x), np.nan) for k in ("psf", "aperture", "peak", "masked",
                                                "background")}
    for i in range(len(x)):
        ix, iy = int(round(x[i])), int(round(y[i]))
        if ix - half < 0 or iy - half < 0 or ix + half >= nx or iy + half >= ny:
            continue
        window = (slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1))
        stamp = np.asarray(data[window], dtype=float)
        own = np.ones(stamp.shape, bool)
        sky = np.ones(stamp.shape, bool)
        if segments is not None:
            seg = segments[window]
            own = (seg == 0) | (seg == labels[i])
            sky = seg == 0
        dx, dy = xx - (x[i] - ix), yy - (y[i] - iy)
        r = np.hypot(dx, dy)
        annulus = (r > background[0] * fwhm) & (r <= background[1] * fwhm)
        pool = stamp[annulus & sky] if (annulus & sky).sum() >= 20 else stamp[annulus]
        out["background"][i] = np.median(pool)
        stamp = stamp - out["background"][i]
        p = moffat_profile(dx, dy, fwhm, beta)
        out["psf"][i] = (p * stamp * own).sum() / (p * p * own).sum()
        inside = r <= aperture * fwhm
        out["aperture"][i] = np.where(own, stamp, out["psf"][i] * p)[inside].sum()
        out["peak"][i] = stamp[r <= 2].max()
        out["masked"][i] = 1.0 - own[inside].mean()
    return out


def psf_aperture_extent(data, x, y, fwhm, beta, *, sky_sigma=None):
    """``m_psf - m_aperture`` of sources on a frame (`psf_aperture_fluxes`), not zeroed.

    With ``sky_sigma``, each source is measured on its own segment of the
    frame's `~sourceclf.photometry.detect_segments` (the other segments left
    out, as `frame_truth` and `forced_extent` measure); without, on every
    pixel (a source alone on its image).

    Parameters
    ----------
    data : array-like
        Sky-subtracted 2-D frame.
    x, y : array-like
        Source positions (pixels).
    fwhm, beta : float
        The frame's Moffat PSF: FWHM in pixels and index.
    sky_sigma : float, optional
        The frame's sky noise per pixel, to find the segments with.

    Returns
    -------
    extent : `numpy.ndarray`
        Magnitudes; NaN near the edge.
    """
    data = np.asarray(data, dtype=np.float32)
    x, y = np.asarray(x, float), np.asarray(y, float)
    segments = labels = None
    if sky_sigma is not None:
        _, segm = detect_segments(data, fwhm, sky_sigma)
        if segm is not None:
            segments = segm.data
            labels = np.zeros(len(x), dtype=int)
            inside = (np.round(x) >= 0) & (np.round(x) < data.shape[1]) \
                & (np.round(y) >= 0) & (np.round(y) < data.shape[0])
            labels[inside] = segments[np.round(y[inside]).astype(int),
                                      np.round(x[inside]).astype(int)]
    f = psf_aperture_fluxes(data, x, y, fwhm, beta, segments=segments, labels=labels)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(f["psf"] / f["aperture"])


def extent_zero(extent, x, y, stars):
    """The extent of a point source at each position of the frame, from its PSF stars.

    One Moffat PSF stands for a frame whose real PSF drifts across it, so a
    point source's ``m_psf - m_aperture`` drifts too (0.13 mag over
    003184-2-0169, near SDSS's cut); SDSS's PSF magnitudes follow the PSF.
    A plane in (x, y) is fitted to the PSF stars' extents
    (`~astropy.modeling.polynomial.Polynomial2D` of degree 1, 3-sigma
    outliers clipped over three passes); below `PLANE_MIN_STARS` stars,
    their median is the zero everywhere.

    Parameters
    ----------
    extent : array-like
        ``m_psf - m_aperture`` of the sources, not zeroed (NaN allowed).
    x, y : array-like
        Their positions (pixels).
    stars : array-like of bool
        The rows that are the frame's PSF stars.

    Returns
    -------
    zero : `numpy.ndarray`
        A point source's extent at each row (NaN without a finite star).

    Raises
    ------
    InvalidInputError
        If the four differ in length.
    """
    from astropy.modeling import fitting, models

    extent, x, y = (np.asarray(a, float) for a in (extent, x, y))
    stars = np.asarray(stars, bool)
    if not extent.shape == x.shape == y.shape == stars.shape:
        raise InvalidInputError(f"extent_zero: {extent.size} extents, {x.size} x, {y.size} y "
                                f"and {stars.size} star flags; expected as many of each")
    use = stars & np.isfinite(extent) & np.isfinite(x) & np.isfinite(y)
    if use.sum() < PLANE_MIN_STARS:
        level = np.nanmedian(extent[use]) if use.any() else np.nan
        return np.full(extent.shape, level)
    fitter = fitting.FittingWithOutlierRemoval(fitting.LinearLSQFitter(), sigma_clip,
                                               niter=3, sigma=3.0)
    plane, _ = fitter(models.Polynomial2D(degree=1), x[use], y[use], extent[use])
    return plane(x, y)


def locus_width(extent, r_mag, *, bin_width=0.5, min_rows=5):
    """The spread of point sources' extent, as a function of magnitude.

    Point sources scatter about an extent of 0 and galaxies lie above it, so
    the sources below 0 are point sources' lower half: 1.4826 times the
    median of their distances from 0, per magnitude bin, is the width (the
    standard deviation of a Gaussian locus, robust to outliers) of the
    point-source locus there.  Bins with fewer than
    ``min_rows`` such sources take the width of all of them; between bin
    centres the width is interpolated.

    Parameters
    ----------
    extent, r_mag : array-like
        Extents (``m_psf - m_aperture``, zero for point sources) and
        magnitudes of the sources; NaN rows are left out.
    bin_width : float
        Magnitudes.
    min_rows : int
        Fewest negative extents a bin's width is measured from.

    Returns
    -------
    width : `numpy.ndarray`
        The locus width at each source's magnitude (NaN where its magnitude
        is NaN, or when no extent is negative).

    Raises
    ------
    InvalidInputError
        If ``extent`` and ``r_mag`` differ in shape.
    """
    extent, r_mag = np.asarray(extent, float), np.asarray(r_mag, float)
    if extent.shape != r_mag.shape:
        raise InvalidInputError(f"locus_width: {extent.shape[0] if extent.ndim else 1} extents "
                                f"but {r_mag.shape[0] if r_mag.ndim else 1} magnitudes")
    below = np.isfinite(extent) & np.isfinite(r_mag) & (extent < 0)
    if not below.any():
        return np.full(extent.shape, np.nan)
    overall = 1.4826 * np.median(-extent[below])
    edges = np.arange(np.floor(np.nanmin(r_mag[below])),
                      np.nanmax(r_mag[below]) + bin_width, bin_width)
    centres, widths = [], []
    for low in edges:
        part = below & (r_mag >= low) & (r_mag < low + bin_width)
        centres.append(low + bin_width / 2)
        widths.append(1.4826 * np.median(-extent[part]) if part.sum() >= min_rows
                      else overall)
    return np.interp(r_mag, centres, widths)


def frame_truth(data, wcs, psf, *, mag_limit=20.5, edge=20, blend_radius=4.0,
                zero_point=22.5):
    """Point-like or extended, for every bright source of a native r frame.

    Sources are found with photutils (`~photutils.segmentation.detect_sources`,
    2 sigma, 8 pixels, on the frame smoothed by the PSF) and centred on
    their own peak (`~photutils.centroids.centroid_quadratic`).  For each,
    ``extent = m_psf - m_aperture`` (`psf_aperture_fluxes`) minus a plane
    fitted over the frame to the PSF stars' (`extent_zero`: the PSF drifts
    across a frame), so that point sources scatter about 0 everywhere: a
    source is ``'extended'`` above `EXTENT_POINT` (SDSS's cut), else
    ``'point'``.  Flagged, and not ``clean``: ``blended`` (a neighbour
    brighter than a tenth of the source within ``blend_radius`` arcsec, a
    second peak in its segment, or a segment centroid off its peak by more
    than half a pixel), ``no_peak`` (no local maximum of the PSF-smoothed
    frame within `PEAK_RADIUS` pixels of the centre: diffuse or merged light,
    or a peak too far off to re-centre on, which has no centre to measure a
    PSF flux at), ``saturated`` (a point source of its flux would peak
    above 1.25 times the brightest PSF star: SDSS interpolates over
    saturated cores, so they cannot be measured) and ``high_background``
    (local background above 3 sky sigma).

    A separate column, ``ambiguous``, marks the clean sources whose extent
    lies within `AMBIGUITY_SIGMA` times ``extent_error`` of the cut, where
    ``extent_error`` is the width of the point-source locus at the source's
    magnitude (`locus_width`, measured on the field's own clean sources): the
    truth's own noise can put them on either side.  They stay ``clean``; a
    check may score the other, ``decided``, rows apart.

    Build the truth on the native frame and keep it for blurred copies:
    blurring makes small galaxies point-like, which is what a classifier
    must see through.

    Parameters
    ----------
    data : array-like
        Sky-subtracted r-band frame (nanomaggies).
    wcs : `~astropy.wcs.WCS`
        Its WCS.
    psf : `~sourceclf.psf.PSFMeasurement`
        Its PSF (`sourceclf.psf.measure_psf`).
    mag_limit : float
        Faintest aperture-corrected magnitude kept.
    edge : int
        Border left out (pixels).
    blend_radius : float
        Arcsec.
    zero_point : float
        Magnitude of a unit flux (22.5 for nanomaggies).

    Returns
    -------
    truth : `~astropy.table.Table`
        ``ra``, ``dec``, ``x``, ``y``, ``r_mag`` (aperture-corrected),
        ``extent``, ``extent_error``, ``truth``, ``psf_star``, ``blended``,
        ``no_peak``, ``saturated``, ``high_background``, ``clean``,
        ``ambiguous``; ``meta['POINT_EXTENT_RANGE']``: a point source's extent
        (`extent_zero`) lowest and highest over the rows, the PSF's drift.
    """
    from photutils.centroids import centroid_quadratic
    from photutils.detection import find_peaks
    from photutils.segmentation import SourceCatalog
    from scipy.ndimage import maximum_filter
    from scipy.spatial import cKDTree

    data = np.asarray(data, dtype=np.float32)
    scale = pixel_scale(wcs)
    fwhm = psf.fwhm / scale
    smooth, segm = detect_segments(data, fwhm, psf.sky_sigma)
    cat = SourceCatalog(data, segm, convolved_data=smooth)
    x, y = np.asarray(cat.x_centroid, float), np.asarray(cat.y_centroid, float)
    labels, seg_flux = np.asarray(cat.labels), np.asarray(cat.segment_flux, float)
    ny, nx = data.shape
    bright = seg_flux > 10 ** (-0.4 * (mag_limit + 0.7 - zero_point))
    pre = np.isfinite(x) & np.isfinite(y) & (x > edge) & (x < nx - edge - 1) \
        & (y > edge) & (y < ny - edge - 1) & bright
    dist, nearest = cKDTree(np.c_[x, y]).query(np.c_[psf.stars["x"], psf.stars["y"]])
    stars = np.unique(nearest[dist < 2.0])
    pre[stars] = True
    idx = np.flatnonzero(pre)
    # centre on the peak: a merged neighbour pulls a segment's centroid
    xc, yc = x[idx].copy(), y[idx].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, (ix, iy) in enumerate(zip(np.round(xc).astype(int), np.round(yc).astype(int))):
            cut = data[iy - 6:iy + 7, ix - 6:ix + 7].astype(float)
            py, px = np.unravel_index(np.argmax(cut[4:9, 4:9]), (5, 5))
            cx, cy = centroid_quadratic(cut, xpeak=4 + px, ypeak=4 + py, fit_boxsize=5)
            if np.isfinite(cx) and np.isfinite(cy) and np.hypot(cx - 6 + ix - xc[k],
                                                                cy - 6 + iy - yc[k]) < 2.5:
                xc[k], yc[k] = cx - 6 + ix, cy - 6 + iy
    off_peak = np.hypot(xc - x[idx], yc - y[idx]) > 0.5
    peak_y, peak_x = np.nonzero(maximum_filter(smooth, size=3) == smooth)
    to_peak, _ = cKDTree(np.c_[peak_x, peak_y]).query(np.c_[xc, yc])
    no_peak = to_peak > PEAK_RADIUS
    f = psf_aperture_fluxes(data, xc, yc, fwhm, psf.beta, segments=segm.data,
                            labels=labels[idx])
    star_rows = np.isin(idx, stars)
    with np.errstate(divide="ignore", invalid="ignore"):
        extent = -2.5 * np.log10(f["psf"] / f["aperture"])
        zero = extent_zero(extent, xc, yc, star_rows)
        extent -= zero
        # the aperture flux corrected to a point source's total, as the PSF stars show it
        total = f["aperture"] * 10 ** (-0.4 * zero)
        r_mag = zero_point - 2.5 * np.log10(total)
    peak_fraction = np.nanmedian(f["peak"][star_rows] / f["psf"][star_rows])
    saturation = 1.25 * np.nanmax(f["peak"][star_rows])
    saturated = (f["peak"] > saturation) | (total * peak_fraction > saturation)
    peaks = find_peaks(smooth, 10.0 * psf.sky_sigma, box_size=max(3, int(round(1.5 * fwhm)) | 1))
    n_peaks = {}
    if peaks is not None:
        plab = segm.data[np.asarray(peaks["y_peak"]), np.asarray(peaks["x_peak"])]
        pval = np.asarray(peaks["peak_value"], float)
        for lab in np.unique(plab[plab > 0]):
            v = pval[plab == lab]
            n_peaks[lab] = int((v >= 0.1 * v.max()).sum())
    tree = cKDTree(np.c_[x, y])
    blended = off_peak | np.array([n_peaks.get(lab, 1) > 1 for lab in labels[idx]])
    for k, i in enumerate(idx):
        near = [j for j in tree.query_ball_point([x[i], y[i]], blend_radius / scale) if j != i]
        blended[k] |= bool(near) and bool((seg_flux[near] > 0.1 * seg_flux[i]).any())
    blended |= f["masked"] > 0.15
    keep = np.isfinite(r_mag) & (r_mag < mag_limit)
    ra, dec = wcs.celestial.pixel_to_world_values(xc[keep], yc[keep])
    truth = Table({"ra": ra * u.deg, "dec": dec * u.deg, "x": xc[keep], "y": yc[keep],
                   "r_mag": r_mag[keep] * u.mag, "extent": extent[keep] * u.mag})
    truth["truth"] = np.where(extent[keep] > EXTENT_POINT, "extended", "point")
    truth["psf_star"] = star_rows[keep]
    truth["blended"] = blended[keep]
    truth["no_peak"] = no_peak[keep]
    truth["saturated"] = saturated[keep]
    truth["high_background"] = np.abs(f["background"][keep]) > 3.0 * psf.sky_sigma
    truth["clean"] = ~(truth["blended"] | truth["no_peak"] | truth["saturated"]
                       | truth["high_background"])
    clean = np.asarray(truth["clean"])
    width = np.full(len(truth), np.nan)
    width[clean] = locus_width(extent[keep][clean], r_mag[keep][clean])
    truth["extent_error"] = width * u.mag
    with np.errstate(invalid="ignore"):
        truth["ambiguous"] = clean & (np.abs(extent[keep] - EXTENT_POINT)
                                      < AMBIGUITY_SIGMA * width)
    drift = zero[keep]
    low, high = truth.meta["POINT_EXTENT_RANGE"] = float(np.nanmin(drift)), float(np.nanmax(drift))
    truth.meta["ORIGIN"] = ("sourceclf.recipes.frame_checks.frame_truth: PSF vs aperture flux, "
                            f"PSF FWHM {psf.fwhm:.3f}\" beta {psf.beta:.2f}; a point source's "
                            f"extent {low:+.3f} to {high:+.3f} mag over the frame (extent_zero)")
    return truth


def forced_extent(data, wcs, psf, truth):
    """The extent of `frame_truth`'s sources measured again on another frame of the field.

    The same measurement as `frame_truth` (`psf_aperture_fluxes`, each
    source's own segment of the frame's `~sourceclf.photometry.detect_segments`, zeroed on the
    truth's ``psf_star`` rows by `extent_zero`), forced at the truth's positions: SDSS's cut
    applied to, for instance, the frame blurred to a worse seeing
    (`sourceclf.simulate.degrade_frames`) says how much of the truth the
    morphology of that frame still shows.

    Parameters
    ----------
    data : array-like
        Sky-subtracted r-band frame of the same field (nanomaggies).
    wcs : `~astropy.wcs.WCS`
        Its WCS.
    psf : `~sourceclf.psf.PSFMeasurement`
        Its PSF.
    truth : `~astropy.table.Table`
        `frame_truth` of the field (``ra``, ``dec``, ``psf_star``), or rows of it.

    Returns
    -------
    extent : `numpy.ndarray`
        ``m_psf - m_aperture`` on this frame, minus the plane fitted to the
        ``psf_star`` rows' (`extent_zero`; NaN near the edge).

    Raises
    ------
    InvalidInputError
        If ``truth`` lacks a column, or has no ``psf_star`` row to zero the
        extent on.
    """

    missing = [c for c in ("ra", "dec", "psf_star") if c not in truth.colnames]
    if missing:
        raise InvalidInputError(f"forced_extent: truth lacks column(s) {', '.join(missing)}")
    stars = np.asarray(truth["psf_star"], bool)
    if not stars.any():
        raise InvalidInputError("forced_extent: truth has no psf_star row to zero the extent on")
    x, y = wcs.celestial.world_to_pixel_values(np.asarray(truth["ra"], float),
                                               np.asarray(truth["dec"], float))
    extent = psf_aperture_extent(data, x, y, psf.fwhm / pixel_scale(wcs), psf.beta,
                                 sky_sigma=psf.sky_sigma)
    return extent - extent_zero(extent, x, y, stars)
