"""The real-field truth: point-like or extended, measured on a frame as SDSS measures it.

SDSS separates stars from galaxies by ``psfMag - cmodelMag > 0.145``
(`EXTENT_POINT`).  On a frame, `frame_truth` measures the same difference
for every bright source with a PSF flux and an aperture flux
(`psf_aperture_fluxes`), zeroed on the frame's PSF stars by a plane that
follows the PSF across the frame (`extent_zero`), and judges its own noise
by the width of the point-source locus (`locus_width`).  `forced_extent`
measures it again at the truth's positions on another frame of the field (a
blurred copy, another band); `~sourceclf.recipes.deblended_truth` measures
it with each source's neighbours subtracted.  ``docs/scripts/check_fields.py``
scores the image models against it on every shared field at several
seeings.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.stats import sigma_clip
from astropy.table import Table

from ..exceptions import InvalidInputError
from ..photometry import detect_segments
from ..psf import moffat_profile
from ..utils._wcs import pixel_scale

__all__ = ["EXTENT_POINT", "APERTURE", "BACKGROUND", "PEAK_RADIUS", "AMBIGUITY_SIGMA",
           "PLANE_MIN_STARS", "locus_width",
           "ZERO_STAR_SNR", "SUMMED_DETECTION", "psf_aperture_fluxes", "psf_aperture_extent",
           "extent_zero", "truth_positions", "frame_truth", "forced_extent", "forced_fluxes",
           "psf_flux_error", "summed_extent"]

#: SDSS's star/galaxy cut: a source is extended when its PSF magnitude is
#: fainter than its model magnitude by more than this.
EXTENT_POINT = 0.145

#: Radius of `psf_aperture_fluxes`' aperture, PSF FWHM.
APERTURE = 3.0

#: Inner and outer radius of `psf_aperture_fluxes`' background annulus, PSF FWHM.
BACKGROUND = (4.0, 6.0)

#: `frame_truth` calls a source ``ambiguous`` when its extent lies within this
#: many locus widths (the spread of point sources' extent at its magnitude) of
#: `EXTENT_POINT`.
AMBIGUITY_SIGMA = 2.0

#: Fewest PSF stars (of finite extent) `extent_zero` fits a plane to; else their median.
PLANE_MIN_STARS = 12

#: `forced_extent` zeroes a band on the truth's PSF stars that it measures with at least
#: this PSF-flux signal-to-noise: a star of the r frame may be faint in u.
ZERO_STAR_SNR = 20.0

#: `summed_extent` adds a band's fluxes where its PSF flux is at least this many
#: times its sky noise (SDSS sums the bands in which an object is detected).
SUMMED_DETECTION = 5.0

#: A source of `frame_truth` whose centre lies farther than this (pixels) from
#: every local maximum of the PSF-smoothed frame has no peak of its own.
PEAK_RADIUS = 1.5


def psf_aperture_fluxes(data, x, y, fwhm, beta, *, segments=None, labels=None,
                        aperture=APERTURE, background=BACKGROUND):
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
    f = _segment_fluxes(data, x, y, fwhm, beta, sky_sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(f["psf"] / f["aperture"])


def _segment_fluxes(data, x, y, fwhm, beta, sky_sigma):
    """`psf_aperture_fluxes`, each source on its own segment when ``sky_sigma`` is given
    (`psf_aperture_extent`)."""
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
    return psf_aperture_fluxes(data, x, y, fwhm, beta, segments=segments, labels=labels)


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
    truth.meta["ORIGIN"] = ("sourceclf.recipes.extent_truth.frame_truth: PSF vs aperture flux, "
                            f"PSF FWHM {psf.fwhm:.3f}\" beta {psf.beta:.2f}; a point source's "
                            f"extent {low:+.3f} to {high:+.3f} mag over the frame (extent_zero)")
    return truth


def truth_positions(truth, wcs, *, caller="truth_positions"):
    """Pixel positions of a truth's rows on a frame, and its PSF stars.

    The rows a measurement forced at the truth's positions is zeroed on
    (`extent_zero`) are the truth's ``psf_star`` rows, so there must be one.

    Parameters
    ----------
    truth : `~astropy.table.Table`
        `frame_truth` of the field (``ra``, ``dec``, ``psf_star``), or rows of it.
    wcs : `~astropy.wcs.WCS`
        The WCS of the frame measured.
    caller : str
        The function named in the error.

    Returns
    -------
    x, y : `numpy.ndarray`
        Pixel positions.
    stars : `numpy.ndarray` of bool
        The ``psf_star`` rows.

    Raises
    ------
    InvalidInputError
        If ``truth`` lacks a column, or has no ``psf_star`` row to zero the
        extent on.
    """
    missing = [c for c in ("ra", "dec", "psf_star") if c not in truth.colnames]
    if missing:
        raise InvalidInputError(f"{caller}: truth lacks column(s) {', '.join(missing)}")
    stars = np.asarray(truth["psf_star"], bool)
    if not stars.any():
        raise InvalidInputError(f"{caller}: truth has no psf_star row to zero the extent on")
    x, y = wcs.celestial.world_to_pixel_values(np.asarray(truth["ra"], float),
                                               np.asarray(truth["dec"], float))
    return np.asarray(x, float), np.asarray(y, float), stars


def forced_extent(data, wcs, psf, truth):
    """The extent of `frame_truth`'s sources measured again on another frame of the field.

    The same measurement as `frame_truth` (`psf_aperture_fluxes`, each
    source's own segment of the frame's `~sourceclf.photometry.detect_segments`, zeroed on the
    truth's ``psf_star`` rows by `extent_zero`), forced at the truth's positions: SDSS's cut
    applied to, for instance, the frame blurred to a worse seeing
    (`sourceclf.simulate.degrade_frames`) says how much of the truth the
    morphology of that frame still shows.  On another band's frame, the PSF
    stars this frame measures with a PSF flux below `ZERO_STAR_SNR` times its
    sky noise are left out of the zero (a red star of the r frame is faint in
    u).

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
        ``psf_star`` rows' measured at `ZERO_STAR_SNR` or more (`extent_zero`;
        NaN near the edge).

    Raises
    ------
    InvalidInputError
        If ``truth`` lacks a column, or has no ``psf_star`` row to zero the
        extent on.
    """
    return _forced(data, wcs, psf, truth, "forced_extent")["extent"]


def forced_fluxes(data, wcs, psf, truth):
    """The fluxes behind `forced_extent`, for adding bands together.

    Parameters
    ----------
    data, wcs, psf, truth
        As `forced_extent` takes them; ``data`` in a flux unit shared by the
        bands to be added (nanomaggies for SDSS's frames).

    Returns
    -------
    fluxes : dict of `numpy.ndarray`
        ``psf`` (the PSF flux), ``total`` (the aperture flux corrected to a
        point source's total by `extent_zero`'s plane, so that ``psf /
        total`` is 1 for a point source), ``psf_error`` and ``aperture_error``
        (their sky noise, the median of the background annulus subtracted
        included) and ``extent`` (what `forced_extent` returns); NaN near
        the edge.

    Raises
    ------
    InvalidInputError
        As `forced_extent`.
    """
    return _forced(data, wcs, psf, truth, "forced_fluxes")


def _forced(data, wcs, psf, truth, caller):
    """`forced_fluxes`, naming ``caller`` in its errors."""
    x, y, stars = truth_positions(truth, wcs, caller=caller)
    fwhm = psf.fwhm / pixel_scale(wcs)
    f = _segment_fluxes(data, x, y, fwhm, psf.beta, psf.sky_sigma)
    for name, error in zip(("psf_error", "aperture_error"),
                           _flux_errors(fwhm, psf.beta, psf.sky_sigma)):
        f[name] = np.full(len(x), error)
    with np.errstate(divide="ignore", invalid="ignore"):
        extent = -2.5 * np.log10(f["psf"] / f["aperture"])
        zero = extent_zero(extent, x, y, stars & (f["psf"] >= ZERO_STAR_SNR * f["psf_error"]))
        f["extent"] = extent - zero
        f["total"] = f["aperture"] * 10 ** (-0.4 * zero)
    return f


def psf_flux_error(fwhm, beta, sky_sigma):
    """The sky noise of `psf_aperture_fluxes`' PSF flux of a source.

    Parameters
    ----------
    fwhm, beta : float
        The Moffat PSF the flux is measured with: FWHM in pixels and index.
    sky_sigma : float
        Sky noise per pixel, in the frame's flux unit.

    Returns
    -------
    float
        The PSF flux's standard deviation from the sky, the median of the
        background annulus subtracted included (what `forced_fluxes` gives as
        ``psf_error``).
    """
    return float(_flux_errors(fwhm, beta, sky_sigma)[0])


def _flux_errors(fwhm, beta, sky_sigma):
    """The sky noise of `psf_aperture_fluxes`' PSF and aperture fluxes (its `APERTURE` and
    `BACKGROUND`): the pixels' own, and that of the annulus' median subtracted (pi/2 times
    a mean's variance)."""
    half = int(np.ceil(BACKGROUND[1] * fwhm)) + 1  # psf_aperture_fluxes' window
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    r = np.hypot(xx, yy)
    p = moffat_profile(xx, yy, fwhm, beta)
    area = (r <= APERTURE * fwhm).sum()
    median_var = np.pi / 2 / ((r > BACKGROUND[0] * fwhm) & (r <= BACKGROUND[1] * fwhm)).sum()
    sky2 = sky_sigma ** 2
    return (np.sqrt(sky2 / (p * p).sum() + sky2 * median_var * (p.sum() / (p * p).sum()) ** 2),
            np.sqrt(sky2 * area + sky2 * median_var * area ** 2))


def summed_extent(fluxes, *, detection=SUMMED_DETECTION):
    """SDSS's ``objc_type`` extent: the cut applied to the flux summed over the bands.

    SDSS types each object as a whole by ``psfMag - cmodelMag`` of its
    fluxes summed over the bands in which it is detected, not by one band's.
    Here the bands' `forced_fluxes` are summed over those where the PSF
    flux is at least ``detection`` times its sky noise.

    Parameters
    ----------
    fluxes : dict of dict
        ``{band: forced_fluxes(...)}`` of the same sources, in one flux unit.
    detection : float
        PSF-flux signal-to-noise from which a band counts as detected.

    Returns
    -------
    extent : `numpy.ndarray`
        ``-2.5 log10(sum psf / sum total)`` over the detected bands; 0 for a
        point source, NaN where no band detects the source.

    Examples
    --------
    >>> import numpy as np
    >>> g = {"psf": np.array([10.0, 6.0]), "total": np.array([10.0, 6.6]),
    ...      "psf_error": np.array([1.0, 1.0])}
    >>> r = {"psf": np.array([10.0, 0.5]), "total": np.array([20.0, 5.0]),
    ...      "psf_error": np.array([1.0, 1.0])}
    >>> summed_extent({"g": g, "r": r}).round(3).tolist()   # row 2: r too faint, g alone
    [0.44, 0.103]
    """
    psf_sum, total_sum = 0.0, 0.0
    for f in fluxes.values():
        psf_flux, total = np.asarray(f["psf"], float), np.asarray(f["total"], float)
        with np.errstate(invalid="ignore", divide="ignore"):
            seen = (np.isfinite(psf_flux) & np.isfinite(total)
                    & (psf_flux >= detection * np.asarray(f["psf_error"], float)))
        psf_sum = psf_sum + np.where(seen, psf_flux, 0.0)
        total_sum = total_sum + np.where(seen, total, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total_sum > 0, -2.5 * np.log10(psf_sum / total_sum), np.nan)
