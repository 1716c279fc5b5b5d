"""Known stars and galaxies drawn into real frames: a truth that holds in crowded fields.

On a crowded field the truth built from the frame itself
(`sourceclf.recipes.extent_truth.frame_truth`) fails where the models are to
be judged: a neighbour inside the aperture makes a star look extended, and
nothing on the frame says which of the two is wrong.  Injection turns the
question around: sources of known morphology are drawn into the real frames
(`inject_sources`) at random positions (`place_sources`), and the models are
scored on them.  Their truth (`injected_truth`) is the same measurement and
cut as `frame_truth`'s (PSF minus aperture magnitude above
`~sourceclf.recipes.extent_truth.EXTENT_POINT`), made on each source's own
noiseless, isolated images, so neither the neighbours nor the noise can touch
it, and applied as SDSS types an object: to its fluxes summed over the bands
that detect it.

What is real: the frame's neighbours, sky, noise and background, and, for
the blurred checks, the blur (the frames are blurred after the sources are
drawn in).  What is simulated: the sources, drawn from the population the
image models learn from (`injection_catalog`: the stars and galaxies of
`~sourceclf.recipes.image_training_set.simulated_sgq_catalog`, with another
seed) through the frame's own PSF (`empirical_psfs`: each band's PSF
stars stacked by photutils' `~photutils.psf.EPSFBuilder`, wings and shape
included).  So injection measures what crowding does to a
model on sources like its training sources; what real galaxies' shapes do is
measured on the uncrowded fields' own truth.
"""

import warnings
from collections.abc import Mapping

import numpy as np
from astropy.table import Table, vstack

from ..bands import BANDS
from ..exceptions import InvalidInputError
from ..photometry import detect_segments
from ..registration import register_frames
from ..simulate import render_stamps
from ..utils._validation import check_random_state
from ..utils._wcs import pixel_scale
from .extent_truth import (EXTENT_POINT, SUMMED_DETECTION, psf_aperture_extent,
                           psf_aperture_fluxes, psf_flux_error, summed_extent)
from .image_training_set import simulated_sgq_catalog

__all__ = ["INJECTION", "injection_catalog", "place_sources", "empirical_psfs",
           "inject_sources", "injected_truth", "field_blends", "star_extent_offset"]

#: Settings of the injection checks (``docs/scripts/check_fields.py --inject``):
#: ``n`` sources per field, a share ``galaxy_fraction`` of them galaxies, of
#: observed r magnitude in ``r_range``, at least ``min_separation`` pixels
#: apart (so that they never blend with each other) and ``edge`` pixels inside
#: every band's frame, each drawn on a stamp of ``size`` pixels.  With 150
#: sources of about 8 pixels' radius above the noise, the injected light
#: covers about 1% of a frame (`sourceclf.crowding.source_coverage`), a
#: small addition even to the emptiest shared fields (0.6-2.1%).  The PSF
#: (`empirical_psfs`) is built on stamps of ``psf_size`` pixels, oversampled
#: ``psf_oversampling`` times: with the 5-40 stars a frame gives, an
#: oversampled effective PSF is poorly constrained between the stars' sub-pixel
#: phases and aliases (on a test frame of 12 stars its sum over every other
#: sub-pixel differed by a quarter between the two phases), while one at the
#: frame's own sampling (2.5-3.5 pixels per FWHM on SDSS frames) keeps the
#: peak and the wing's light (``tests/test_injection.py``).
INJECTION = {"n": 150, "galaxy_fraction": 0.6, "r_range": (16.0, 20.5),
             "min_separation": 30, "edge": 40, "size": 64, "seed": 14,
             "psf_size": 31, "psf_oversampling": 1}


def injection_catalog(n=INJECTION["n"], *, galaxy_fraction=INJECTION["galaxy_fraction"],
                      r_range=INJECTION["r_range"], random_state=INJECTION["seed"],
                      data_dir=None):
    """Stars and galaxies to draw into real frames.

    The STAR and GALAXY rows of
    `~sourceclf.recipes.image_training_set.simulated_sgq_catalog` (its
    resampled SDSS rows and parametric galaxies, at the brightness the image
    models learn from) whose observed r magnitude lies in ``r_range``.

    Parameters
    ----------
    n : int
        Number of rows.
    galaxy_fraction : float
        Share of galaxies (the rest are stars).
    r_range : tuple of float
        Observed r magnitudes (``dered_r + extinction_r``) kept.
    random_state : int
        Seed (the training set's is `~sourceclf.recipes.image_training_set.SIMULATION`'s).
    data_dir : path-like, optional
        Directory of the SDSS tables.

    Returns
    -------
    catalog : `~astropy.table.Table`
        MargNet's columns, ``class`` and ``r_mag`` (observed r), in random order.

    Raises
    ------
    InvalidInputError
        If the options are out of range.
    """
    n = int(n)
    if n < 2 or not 0 < galaxy_fraction < 1 or not r_range[0] < r_range[1]:
        raise InvalidInputError("injection_catalog needs n >= 2, 0 < galaxy_fraction < 1 and "
                                f"r_range low < high, got {n}, {galaxy_fraction}, {r_range}")
    wanted = {"GALAXY": int(round(n * galaxy_fraction))}
    wanted["STAR"] = n - wanted["GALAXY"]
    rng = np.random.default_rng(random_state)
    picked = []
    for cls, count in wanted.items():
        rows = []
        draws = 0
        while sum(len(t) for t in rows) < count:
            draws += 1
            if draws > 20:  # cannot happen with r_range inside 14-22.5
                raise InvalidInputError(f"injection_catalog: too few {cls} rows with r in "
                                        f"{r_range}")
            table = simulated_sgq_catalog(6 * count, random_state=int(rng.integers(2 ** 31)),
                                          data_dir=data_dir)
            r = np.asarray(table["dered_r"], float) + np.asarray(table["extinction_r"], float)
            keep = ((np.asarray(table["class"]).astype(str) == cls)
                    & (r >= r_range[0]) & (r < r_range[1]))
            rows.append(table[keep])
        picked.append(vstack(rows, metadata_conflicts="silent")[:count])
    catalog = vstack(picked, metadata_conflicts="silent")
    catalog = catalog[rng.permutation(len(catalog))]
    catalog["r_mag"] = (np.asarray(catalog["dered_r"], float)
                        + np.asarray(catalog["extinction_r"], float))
    catalog.meta = {"ORIGIN": "sourceclf.recipes.injection.injection_catalog (synthetic)"}
    return catalog


def _pixels(frames, ra, dec):
    """Each band's pixel positions (x, y) of sky positions."""
    return {b: frames[b][1].celestial.world_to_pixel_values(ra, dec) for b in BANDS}


def place_sources(frames, n, *, min_separation=INJECTION["min_separation"],
                  edge=INJECTION["edge"], random_state=INJECTION["seed"]):
    """Random sky positions on a field, apart from each other and inside every band's frame.

    Positions are drawn uniformly over the r frame, so they meet the field's
    crowding as it is; one closer than ``min_separation`` pixels to an earlier
    one, or nearer than ``edge`` pixels to the border of any band's frame, is
    drawn again.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` for ``u g r i z`` (`sourceclf.frames.read_frame`).
    n : int
        Number of positions.
    min_separation : float
        Pixels.
    edge : int
        Pixels.
    random_state : None, int or `numpy.random.Generator`
        Seed.

    Returns
    -------
    ra, dec : `numpy.ndarray`
        Degrees.

    Raises
    ------
    InvalidInputError
        If a band is missing or ``n`` positions do not fit.
    """
    missing = [b for b in BANDS if b not in frames]
    if missing:
        raise InvalidInputError(f"place_sources: frames lack band(s) {', '.join(missing)}")
    rng = check_random_state(random_state)
    ny, nx = np.shape(frames["r"][0])
    chosen = np.empty((0, 2))
    for _ in range(200):
        need = n - len(chosen)
        if need == 0:
            break
        xy = rng.uniform([edge, edge], [nx - 1 - edge, ny - 1 - edge], size=(4 * need, 2))
        ra, dec = frames["r"][1].celestial.pixel_to_world_values(xy[:, 0], xy[:, 1])
        inside = np.ones(len(xy), bool)
        for b, (x, y) in _pixels(frames, ra, dec).items():
            height, width = np.shape(frames[b][0])
            inside &= ((x >= edge) & (x <= width - 1 - edge)
                       & (y >= edge) & (y <= height - 1 - edge))
        for point in xy[inside]:
            if len(chosen) == n:
                break
            if not len(chosen) or np.hypot(*(chosen - point).T).min() >= min_separation:
                chosen = np.vstack([chosen, point])
    if len(chosen) < n:
        raise InvalidInputError(f"place_sources: only {len(chosen)} of {n} positions fit "
                                f"{min_separation} pixels apart and {edge} from the edges")
    ra, dec = frames["r"][1].celestial.pixel_to_world_values(chosen[:, 0], chosen[:, 1])
    return np.asarray(ra, float), np.asarray(dec, float)


def empirical_psfs(frames, psf, *, size=INJECTION["psf_size"],
                   oversampling=INJECTION["psf_oversampling"]):
    """Each band's PSF as its own stars show it, ready to draw sources through.

    The PSF stars that `sourceclf.psf.measure_psf` chose (isolated,
    unsaturated, S/N above 50) are stacked into an effective PSF by
    photutils (`~photutils.psf.extract_stars`, `~photutils.psf.EPSFBuilder`)
    and handed to GalSim as an interpolated image of unit flux.  Unlike a
    Moffat of the measured FWHM and index, it keeps the frame's wings and
    shape: drawn through it, an injected star looks to the truth's
    measurement like the frame's own stars.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` for ``u g r i z``.
    psf : dict
        ``{band: PSFMeasurement}`` measured on those frames (with its ``stars``).
    size : int
        Side of the star stamps, pixels (odd).
    oversampling : int
        Oversampling of the effective PSF.

    Returns
    -------
    psfs : dict
        ``{band: galsim.InterpolatedImage}``, the pixel-convolved PSF (draw
        with ``method='no_pixel'``, as `sourceclf.simulate.render_stamps` does).

    Raises
    ------
    InvalidInputError
        If a band's PSF measurement lists fewer than three stars.
    """
    import galsim
    from astropy.nddata import NDData
    from photutils.psf import EPSFBuilder, extract_stars

    out = {}
    for b in BANDS:
        data, wcs = frames[b]
        stars = getattr(psf[b], "stars", None)
        if stars is None or len(stars) < 3:
            raise InvalidInputError(f"empirical_psfs: band {b}'s PSF measurement lists fewer "
                                    "than three stars (measure it with sourceclf.psf.measure_psf)")
        with warnings.catch_warnings():
            # A star too near the edge for its stamp is left out, as wanted; any
            # other warning (an ePSF that does not converge) is the caller's to see.
            warnings.filterwarnings("ignore", message=".*extended beyond the input image")
            cutouts = extract_stars(NDData(np.asarray(data, dtype=float)),
                                    Table({"x": np.asarray(stars["x"], float),
                                           "y": np.asarray(stars["y"], float)}),
                                    size=(size, size))
            epsf, _ = EPSFBuilder(oversampling=oversampling, smoothing_kernel=None,
                                  maxiters=10, progress_bar=False)(cutouts)
        image = np.asarray(epsf.data, dtype=float)
        out[b] = galsim.InterpolatedImage(
            galsim.Image(image / image.sum(), scale=pixel_scale(wcs) / oversampling), flux=1.0)
    return out


def _render(catalog, psfs, size, scale, offsets, noise, rng):
    """Stamps of the catalog's rows through each band's PSF (a GalSim object)."""
    return render_stamps(catalog, size=size, pixel_scale=scale, psf=psfs, noise=noise,
                         poisson=noise, sky_sigma=0.0, offsets=offsets, random_state=rng,
                         progress=False)


def inject_sources(frames, catalog, psfs, *, size=INJECTION["size"], random_state=0,
                   psf=None):
    """Copies of a field's frames with the catalog's sources drawn in.

    Each source is drawn with GalSim (`sourceclf.simulate.render_stamps`) at
    its ``ra``, ``dec`` in each band where the field's own sources at that
    position lie: through the band's WCS registered on the r frame's stars
    (`sourceclf.registration.register_frames`, as `sourceclf.classify`
    registers the frames before it looks for a source), through the band's
    PSF (`empirical_psfs`), with its own photon noise (the frames' sky and
    noise are already there).  On a field whose bands' WCSs miss the r
    frame's by more than `~sourceclf.registration.REGISTRATION_TOLERANCE`,
    drawing through the WCSs as given would put the sources where the
    field's own are not, and ``classify`` would look for them a pixel away.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` for ``u g r i z``, nanomaggies.
    catalog : `~astropy.table.Table`
        ``ra``, ``dec`` (degrees) and the columns `~sourceclf.simulate.render_stamps`
        reads (magnitudes, ``deVRad_<b>``, ``class``), e.g. `injection_catalog`.
    psfs : dict
        ``{band: galsim.GSObject}``: each band's pixel-convolved PSF
        (`empirical_psfs`).
    size : int
        Stamp side, pixels.
    random_state : None, int or `numpy.random.Generator`
        Seed of the photon noise.
    psf : dict, optional
        ``{band: PSFMeasurement}`` measured on the frames' own stars
        (`sourceclf.field_psf.field_psfs`), whose r stars register the bands;
        measured when not given.

    Returns
    -------
    frames : dict
        ``{band: (data, wcs)}``: new float32 arrays with the input frames' WCSs
        (not the registered ones), the input frames untouched.

    Raises
    ------
    InvalidInputError
        If a band, a column or a PSF is missing, or a source's stamp would
        cross a frame's border.
    """
    missing = [b for b in BANDS if b not in frames or b not in psfs]
    if missing:
        raise InvalidInputError(f"inject_sources: frames or psfs lack band(s) "
                                f"{', '.join(missing)}")
    if "ra" not in catalog.colnames or "dec" not in catalog.colnames:
        raise InvalidInputError("inject_sources: catalog lacks column(s) ra, dec")
    ra, dec = np.asarray(catalog["ra"], float), np.asarray(catalog["dec"], float)
    half = (size - 1) / 2.0
    corners, offsets = {}, np.zeros((len(catalog), len(BANDS), 2))
    registered = register_frames({b: frames[b] for b in BANDS}, psf)
    for k, (b, (x, y)) in enumerate(_pixels(registered, ra, dec).items()):
        corner = np.floor(np.column_stack([x, y]) - half + 0.5).astype(int)
        offsets[:, k] = np.column_stack([x, y]) - corner - half
        height, width = np.shape(frames[b][0])
        off = (corner < 0).any(axis=1) | (corner[:, 0] + size > width) \
            | (corner[:, 1] + size > height)
        if off.any():
            raise InvalidInputError(f"inject_sources: row {int(np.flatnonzero(off)[0])}'s "
                                    f"{size}-pixel stamp crosses the border of band {b}'s frame")
        corners[b] = corner
    stamps = _render(catalog, psfs, size, pixel_scale(frames["r"][1]), offsets, True,
                     check_random_state(random_state))
    out = {}
    for k, b in enumerate(BANDS):
        data = np.array(frames[b][0], dtype=np.float32, copy=True)
        for i, (cx, cy) in enumerate(corners[b]):
            data[cy:cy + size, cx:cx + size] += stamps[i, k]
        out[b] = (data, frames[b][1])
    return out


def injected_truth(frames, catalog, psfs, measured, *, size=INJECTION["size"],
                   detection=SUMMED_DETECTION):
    """Point-like or extended, measured on each source's own noiseless images.

    SDSS's rule for an object as a whole (its ``objc_type``,
    `~sourceclf.recipes.extent_truth.summed_extent`): each band's image of
    each source alone, without noise, through the PSF it is injected with
    (`inject_sources`), is measured as
    `~sourceclf.recipes.extent_truth.frame_truth` measures a frame
    (`~sourceclf.recipes.extent_truth.psf_aperture_fluxes`, with the band's
    measured Moffat PSF), its aperture flux corrected to a point source's
    total by a star drawn the same way; the PSF and total fluxes are summed
    over the bands in which the source would be detected on the frame (PSF
    flux at least ``detection`` times its sky noise there), and ``extent =
    m_psf - m_total`` of the sums is extended above
    `~sourceclf.recipes.extent_truth.EXTENT_POINT`.  Not r alone: the
    population keeps SDSS's per-band de Vaucouleurs radii, and a galaxy
    whose r-band fit collapsed to a point (``deVRad_r`` 0.002" against
    0.5-2.8" in g, i and z, two of the 150 sources of ``check_fields.py
    --inject``) is drawn point-like in r alone, while SDSS calls it extended.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` the sources are drawn into; the r frame's
        pixel scale is used.
    catalog : `~astropy.table.Table`
        As for `inject_sources`.
    psfs : dict
        As for `inject_sources`.
    measured : mapping of `~sourceclf.psf.PSFMeasurement`
        Each band's measured PSF (`sourceclf.field_psf.field_psfs`): its
        FWHM and index measure the band, its ``sky_sigma`` decides whether
        the band detects the source (0: every band does).
    size : int
        Stamp side, pixels.
    detection : float
        PSF-flux signal-to-noise from which a band counts.

    Returns
    -------
    extent : `numpy.ndarray`
        Magnitudes: ``m_psf - m_total`` of the fluxes summed over the bands
        that detect the source (0 for a point source).
    truth : `numpy.ndarray` of str
        ``'point'`` or ``'extended'``.

    Raises
    ------
    InvalidInputError
        If ``measured`` lacks a band.
    """
    missing = [b for b in BANDS if not isinstance(measured, Mapping) or b not in measured]
    if missing:
        raise InvalidInputError("injected_truth: measured needs each band's PSFMeasurement, "
                                f"lacks {', '.join(missing)}")
    reference = Table(catalog[:1], copy=True)
    reference["class"] = ["STAR"]
    both = vstack([Table(catalog, copy=True), reference], metadata_conflicts="silent")
    scale = pixel_scale(frames["r"][1])
    stamps = _render(both, psfs, size, scale,
                     np.zeros((len(both), len(BANDS), 2)), False, 0)
    centre = (size - 1) / 2.0
    x, y = centre + size * np.arange(len(both)), np.full(len(both), centre)
    fluxes = {}
    for k, band in enumerate(BANDS):
        mosaic = np.hstack(list(stamps[:, k]))  # side by side; the windows stay in their stamp
        fwhm, beta = measured[band].fwhm / scale, measured[band].beta
        f = psf_aperture_fluxes(mosaic, x, y, fwhm, beta)
        to_total = f["psf"][-1] / f["aperture"][-1]  # the star's: 1 for a point source
        fluxes[band] = {"psf": f["psf"][:-1], "total": f["aperture"][:-1] * to_total,
                        "psf_error": np.full(len(catalog), psf_flux_error(
                            fwhm, beta, measured[band].sky_sigma))}
    extent = summed_extent(fluxes, detection=detection)
    return extent, np.where(extent > EXTENT_POINT, "extended", "point")


def field_blends(data, wcs, psf, catalog, *, blend_radius=4.0, flux_ratio=0.1):
    """Which injected sources land on a source of the field brighter than a tenth of theirs.

    `~sourceclf.recipes.extent_truth.frame_truth`'s test for a blend, made
    against the frame *before* injection: a source of the field
    (`sourceclf.photometry.detect_segments`) whose flux exceeds
    ``flux_ratio`` times the injected source's, centred within
    ``blend_radius`` arcsec or covering the injected position.  Real
    catalogs' truths leave such sources out (not ``clean``); scoring the
    injected sources with and without them tells what the blends cost.

    Parameters
    ----------
    data : array-like
        The r frame without the injected sources (nanomaggies).
    wcs : `~astropy.wcs.WCS`
        Its WCS.
    psf : `~sourceclf.psf.PSFMeasurement`
        Its PSF.
    catalog : `~astropy.table.Table`
        ``ra``, ``dec`` and ``r_mag`` (observed r) of the injected sources.
    blend_radius : float
        Arcsec.
    flux_ratio : float
        Share of the injected source's flux above which a neighbour blends.

    Returns
    -------
    blended : `numpy.ndarray` of bool
    """
    data = np.asarray(data, dtype=np.float32)
    scale = pixel_scale(wcs)
    _, segm = detect_segments(data, psf.fwhm / scale, psf.sky_sigma)
    x, y = wcs.celestial.world_to_pixel_values(np.asarray(catalog["ra"], float),
                                               np.asarray(catalog["dec"], float))
    if segm is None:
        return np.zeros(len(x), bool)
    labels = segm.data.ravel()
    flux = np.bincount(labels, weights=data.ravel())
    yy, xx = np.indices(data.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(labels, weights=(xx * data).ravel()) / flux
        cy = np.bincount(labels, weights=(yy * data).ravel()) / flux
    own = 10 ** (-0.4 * (np.asarray(catalog["r_mag"], float) - 22.5))
    bright = np.flatnonzero(flux[1:] > 0) + 1
    blended = np.zeros(len(x), bool)
    for i in range(len(x)):
        near = bright[np.hypot(cx[bright] - x[i], cy[bright] - y[i]) * scale < blend_radius]
        under = segm.data[int(round(y[i])), int(round(x[i]))]
        candidates = np.union1d(near, [under] if under else [])
        blended[i] = bool((flux[candidates.astype(int)] > flux_ratio * own[i]).any())
    return blended


def star_extent_offset(before, after, catalog, measured):
    """How much more extended the injected stars look than the frame's own PSF stars.

    The check that the injected PSF is the frame's: the median ``m_psf -
    m_aperture`` of the injected stars, each measured alone (on the r frame
    with the sources minus the frame without them), minus that of the
    frame's PSF stars (``measured.stars``, each on its own segment of the
    frame, as `~sourceclf.recipes.extent_truth.frame_truth` measures them).
    Near 0 when the injected stars have the frame's PSF: the truth's cut
    (`~sourceclf.recipes.extent_truth.EXTENT_POINT`, 0.145) is far larger.

    Parameters
    ----------
    before, after : tuple
        The r frame ``(data, wcs)`` without and with the injected sources.
    catalog : `~astropy.table.Table`
        The injected sources (``ra``, ``dec``, ``class``).
    measured : `~sourceclf.psf.PSFMeasurement`
        The r frame's PSF (`sourceclf.psf.measure_psf`, with its ``stars``).

    Returns
    -------
    offset : float
        Magnitudes; NaN without injected stars or PSF stars.
    """
    data, wcs = before
    data = np.asarray(data, dtype=np.float32)
    fwhm = measured.fwhm / pixel_scale(wcs)
    stars = np.asarray(catalog["class"]).astype(str) == "STAR"
    if measured.stars is None or not len(measured.stars) or not stars.any():
        return float("nan")
    x, y = wcs.celestial.world_to_pixel_values(np.asarray(catalog["ra"], float)[stars],
                                               np.asarray(catalog["dec"], float)[stars])
    alone = psf_aperture_extent(np.asarray(after[0], np.float32) - data, x, y, fwhm,
                                measured.beta)
    own = psf_aperture_extent(data, np.asarray(measured.stars["x"], float),
                              np.asarray(measured.stars["y"], float), fwhm, measured.beta,
                              sky_sigma=measured.sky_sigma)
    return float(np.nanmedian(alone) - np.nanmedian(own))
