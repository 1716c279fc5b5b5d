"""The PSF of each band of a field, as `sourceclf.classify` measures it.

Each frame's PSF is measured on its own stars (`sourceclf.psf.measure_psf`),
once per frame while a `psf_memo` is open (`frame_psf`, `band_psf`): a
catalog classified chunk after chunk, or several calls on the same frames,
measure it once.

`~sourceclf.psf.measure_psf` needs at least five isolated point sources above
S/N 50 on the frame.  A shallow band (SDSS's u) of a sparse high-latitude
field, or any band of a crowded field whose worse seeing merges its stars
with their neighbours, can hold fewer: on the shared fields, the u frame of
002583-2-0136 blurred to 2.2" keeps two.  Without its PSF a band's rows
could only be flagged ``psf_unknown``, and MargNet's columns could not be
measured at all.

The stars are the same stars in every band, though.  `field_band_psf` then
fits the band's frame at the positions of the PSF stars that the field's
other bands found on their own frames (`borrowed_band_psf`, carried through
each band's WCS: SDSS's bands are not aligned), keeping those above S/N
`BORROWED_SNR_MIN` in the band and on the point-source locus of their fits
(`sourceclf.psf.psf_from_fits`), as survey pipelines choose PSF stars once
and model the PSF in each band.  The floor is PSFEx's default for its PSF
stars (``SAMPLE_MINSN`` = 20, Bertin 2011): the positions are known, so a
star need not be bright enough to be found and judged isolated on this
frame, only to be fitted.  The measurement says where its stars came from
(`~sourceclf.psf.PSFMeasurement.stars_from`).
"""

import contextlib
import hashlib
import threading

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError, PSFMeasurementError
from .psf import aperture_snr, fit_psf_stars, measure_psf, psf_from_fits, sky_subtracted
from .utils._wcs import pixel_scale as wcs_pixel_scale

__all__ = ["field_psfs", "field_band_psf", "borrowed_band_psf", "measure_psf_at",
           "BORROWED_SNR_MIN", "describe_field_psf",
           "band_psf", "frame_psf", "psf_memo", "remembered", "remembered_content"]

#: Smallest S/N (in `sourceclf.psf.aperture_snr`'s aperture) of a star whose
#: position another band gave, for it to be fitted: PSFEx's default
#: ``SAMPLE_MINSN``.
BORROWED_SNR_MIN = 20.0

#: Positions closer than this (pixels), found by several bands, are one star.
_SAME_STAR = 2.0


#: The measurements `frame_psf` keeps while a `psf_memo` is open in this thread
#: (``kept`` is None when none is).
_MEMO = threading.local()


@contextlib.contextmanager
def psf_memo():
    """Measure each frame's PSF once while open, in this thread (`frame_psf`).

    `sourceclf.classification.frame_measurement_cache` opens it, so that the
    PSF of frames classified chunk after chunk, or by several calls of
    `sourceclf.classify`, is measured on the first only.  The frames must
    stay as they are while it is open; the measurements are forgotten when it
    closes.  A memo opened inside another shares the outer one's
    measurements (so that the command line's ``--inject-check`` measures the
    frames `sourceclf.streaming.classify_file` measured): only the outermost
    forgets them.
    """
    if getattr(_MEMO, "kept", None) is not None:
        yield
        return
    _MEMO.kept = {}
    try:
        yield
    finally:
        _MEMO.kept = None


def frame_psf(data, *, pixel_scale=SDSS_PIXEL_SCALE, label="image"):
    """`sourceclf.psf.measure_psf` of a frame, once per frame while a `psf_memo` is open.

    Parameters
    ----------
    data : `numpy.ndarray`
        The frame (the same array object each time: it is known by its
        identity, and held while the memo is open so that identity stays its
        own).
    pixel_scale : float
        Arcsec per pixel.
    label : str
        Name of the frame in error messages.

    Returns
    -------
    psf : `PSFMeasurement`
        The one measured first for this frame while the memo is open.

    Raises
    ------
    InvalidInputError
        As `sourceclf.psf.measure_psf` (a failure is not kept: it is tried again).
    """
    return remembered(data, ("own", float(pixel_scale)),
                      lambda: measure_psf(data, pixel_scale=pixel_scale, label=label))


def remembered(data, tag, compute):
    """``compute()``, once per frame and ``tag`` while a `psf_memo` is open.

    Parameters
    ----------
    data : `numpy.ndarray`
        The frame, known by its identity (and held while the memo is open).
    tag : tuple
        What of the frame is computed (hashable).
    compute : callable
        Computes it; an exception it raises is not kept.

    Returns
    -------
    value
        The one computed first for this frame and tag while the memo is
        open; without a memo, computed each call.
    """
    kept = getattr(_MEMO, "kept", None)
    if kept is None:
        return compute()
    key = (id(data),) + tuple(tag)
    if key not in kept or kept[key][0] is not data:
        kept[key] = (data, compute())
    return kept[key][1]


def remembered_content(arrays, tag, compute):
    """``compute()``, once per content of ``arrays`` and ``tag`` while a `psf_memo` is open.

    What `remembered` does for a frame, for arrays that are made afresh from
    the same input by each step of a call (the stamps `sourceclf.cutouts.make_cutouts`
    cuts for MargNet's columns and again for the model's inputs): they are
    known by a digest of their bytes, not by their identity.

    Parameters
    ----------
    arrays : sequence of array-like
        What is computed on; their dtype, shape and bytes make the key
        (``tag`` and ``compute`` as in `remembered`, and so is the value
        returned).
    """
    kept = getattr(_MEMO, "kept", None)
    if kept is None:
        return compute()
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.view(np.uint8).reshape(-1) if array.size else b"")
    key = ("content", digest.hexdigest()) + tuple(tag)
    if key not in kept:
        kept[key] = (None, compute())
    return kept[key][1]


def band_psf(frame, band):
    """`frame_psf` of a band's frame at its WCS's pixel scale: its own stars only.

    `sourceclf.classify` measures a band with `field_band_psf`, which calls
    this first and turns to the other bands' stars when it fails.

    Parameters
    ----------
    frame : tuple
        ``(data, wcs)`` (`sourceclf.frames.read_frame`).
    band : str
        Its band, named in error messages ("the frame of band 'r'").

    Returns
    -------
    psf : `PSFMeasurement`
        Kept for the frame while a `psf_memo` is open.

    Raises
    ------
    InvalidInputError
        Where `sourceclf.psf.measure_psf` cannot measure it (too few isolated stars...).
    """
    data, wcs = frame
    return frame_psf(data, pixel_scale=wcs_pixel_scale(wcs), label=f"the frame of band '{band}'")


def measure_psf_at(image, x, y, *, pixel_scale=SDSS_PIXEL_SCALE, fwhm_guess=1.0,
                   snr_min=BORROWED_SNR_MIN, min_stars=5, max_stars=40, edge=15,
                   label="image"):
    """Measure the PSF of a frame on point sources at known positions.

    `sourceclf.psf.measure_psf` without its search: the ``max_stars``
    brightest of the positions above ``snr_min`` are fitted with a Moffat,
    and fitted again with the width of their point-source locus when it is
    far from ``fwhm_guess`` (`sourceclf.psf.fit_psf_stars`, as
    `~sourceclf.psf.measure_psf` fits the stars it finds); the PSF is the
    median of the fits on the locus (`sourceclf.psf.psf_from_fits`).

    Parameters
    ----------
    image : array-like
        Sky-subtracted 2-D frame.
    x, y : array-like
        Pixel positions of point sources (isolated ones: the PSF stars of
        another band of the field).
    pixel_scale : float
        Arcsec per pixel.
    fwhm_guess : float
        Rough FWHM (arcsec), setting the aperture and the fitted stamp.
    snr_min : float
        Smallest aperture S/N of a fitted star.
    min_stars, max_stars : int
        Fewest stars accepted; most fitted (the brightest).
    edge : int
        Border (pixels) left out.
    label : str
        Name of the image in error messages.

    Returns
    -------
    psf : `~sourceclf.psf.PSFMeasurement`

    Raises
    ------
    InvalidInputError
        If the image is not a 2-D numeric image, has no sky noise, or fewer
        than ``min_stars`` of the positions give a fit on the locus.
    """
    data, sigma = sky_subtracted(image, label)
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()

    def candidates(fwhm):
        snr, inside = aperture_snr(data, sigma, x, y, fwhm, edge=edge)
        bright = np.flatnonzero(inside & (snr > snr_min))
        bright = bright[np.argsort(-snr[bright], kind="stable")]
        return x[bright], y[bright], snr[bright]

    fits = fit_psf_stars(data, candidates, fwhm_guess / pixel_scale, max_stars=max_stars,
                         min_stars=min_stars)
    return psf_from_fits(fits, sigma, pixel_scale=pixel_scale, min_stars=min_stars,
                         label=label, fitted=f"of the {len(x)} given point sources with "
                                             f"S/N > {snr_min:g} fitted")


def field_psfs(frames, bands=BANDS):
    """`field_band_psf` of each band of a field, within one `psf_memo`.

    A band measured on the others' stars measures them first: within the
    memo each band's own stars are fitted once, whichever asks first.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` of the field.
    bands : iterable of str
        The bands measured.

    Returns
    -------
    psf : dict
        ``{band: PSFMeasurement}``.

    Raises
    ------
    InvalidInputError
        As `field_band_psf`, for the first band that cannot be measured.
    """
    with psf_memo():
        return {band: field_band_psf(frames, band) for band in bands}


def describe_field_psf(frames, bands=BANDS):
    """One line saying the PSF `field_band_psf` measures on each band of a field.

    `sourceclf.classify` keeps it as ``meta['CLFFPSF']`` when it measured the
    frames' PSF itself, and ``sourceclf-classify`` prints it: each band's
    FWHM, the bands measured on the other bands' PSF stars, and those that
    could not be measured.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` of the field.
    bands : iterable of str
        The bands described (those missing from ``frames`` are left out).

    Returns
    -------
    line : str
        E.g. ``'PSF FWHM measured on the frames: u 2.31" g 2.05" r 1.90" i
        1.84" z 1.92"; u on the PSF stars of band(s) g, r, i, z (too few of
        its own)'``.
    """
    widths, borrowed, failed = [], [], []
    with psf_memo():
        for band in (b for b in bands if b in frames):
            try:
                psf = field_band_psf(frames, band)
            except InvalidInputError:
                failed.append(band)
                continue
            widths.append(f'{band} {psf.fwhm:.2f}"')
            if psf.stars_from:
                borrowed.append(f"{band} on the PSF stars of band(s) "
                                f"{', '.join(psf.stars_from)} (too few of its own)")
    line = "PSF FWHM measured on the frames: " + (" ".join(widths) or "none")
    if borrowed:
        line += "; " + "; ".join(borrowed)
    if failed:
        line += f"; not measured: {', '.join(failed)} (their rows are flagged psf_unknown)"
    return line


def field_band_psf(frames, band):
    """The PSF of one band of a field: on the frame's own stars, else on the other bands'.

    `sourceclf.psf.band_psf` of ``frames[band]``; where it finds too few
    stars, `borrowed_band_psf`: on that frame at the positions of the PSF
    stars of the other bands whose own measurement succeeds.  Measured once per
    field and band while a `sourceclf.psf.psf_memo` is open.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` of the field (`sourceclf.inputs.read_frames`);
        the bands other than ``band`` may be missing.
    band : str
        The band measured.

    Returns
    -------
    psf : `~sourceclf.psf.PSFMeasurement`
        Its ``stars_from`` names the bands whose stars were used, when not
        the frame's own.

    Raises
    ------
    PSFMeasurementError
        When neither the frame's own stars nor the others' are enough: one
        line saying both.
    InvalidInputError
        When the frame cannot be measured at all (not an image, no sky noise).
    """
    data = frames[band][0]
    others = tuple(id(frames[b][0]) for b in BANDS if b != band and b in frames)
    return remembered(data, ("field", others), lambda: _field_band_psf(frames, band))


def _field_band_psf(frames, band):
    try:
        return band_psf(frames[band], band)
    except InvalidInputError as exc:
        own = exc
    try:
        return borrowed_band_psf(frames, band)
    except InvalidInputError as exc:
        if not isinstance(own, PSFMeasurementError):  # not a frame to measure (no sky noise)
            raise own from None
        raise PSFMeasurementError(own.label, f"{own.reason}; {getattr(exc, 'reason', exc)}"
                                  ) from None


def borrowed_band_psf(frames, band):
    """The PSF of one band of a field, measured on the PSF stars of its other bands.

    `measure_psf_at` on ``frames[band]`` at the positions of the stars
    `sourceclf.psf.band_psf` kept on each other band's frame (those whose
    own measurement succeeds), carried through the frames' WCSs.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` of the field.
    band : str
        The band measured.

    Returns
    -------
    psf : `~sourceclf.psf.PSFMeasurement`
        With ``stars_from`` naming the bands that gave the stars.

    Raises
    ------
    InvalidInputError
        If no other band's PSF can be measured, or too few of their stars
        can be fitted on this band's frame.
    """
    label = f"the frame of band '{band}'"
    donors = {}
    for other in BANDS:
        if other != band and other in frames:
            try:
                donors[other] = band_psf(frames[other], other)
            except InvalidInputError:
                continue
    if not donors:
        raise PSFMeasurementError(label, "no other band's PSF stars to fit on it")
    data, wcs = frames[band]
    x, y = _star_positions(frames, donors, wcs)
    guess = float(np.median([psf.fwhm for psf in donors.values()]))
    try:
        psf = measure_psf_at(data, x, y, pixel_scale=wcs_pixel_scale(wcs), fwhm_guess=guess,
                             label=label)
    except InvalidInputError as exc:
        raise PSFMeasurementError(label, f"on the PSF stars of band(s) {', '.join(donors)}, "
                                         f"{getattr(exc, 'reason', exc)}") from None
    return psf._replace(stars_from=tuple(donors))


def _star_positions(frames, donors, wcs):
    """The donors' PSF stars on the frame of ``wcs`` (pixels), each star once."""
    from scipy.spatial import cKDTree

    xs, ys = [], []
    for other, psf in donors.items():
        ra, dec = frames[other][1].pixel_to_world_values(np.asarray(psf.stars["x"], float),
                                                         np.asarray(psf.stars["y"], float))
        x, y = wcs.world_to_pixel_values(ra, dec)
        xs.append(np.asarray(x, float))
        ys.append(np.asarray(y, float))
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) < 2:
        return x, y
    first = np.ones(len(x), dtype=bool)
    for i, j in sorted(cKDTree(np.c_[x, y]).query_pairs(_SAME_STAR)):
        if first[i]:
            first[j] = False
    return x[first], y[first]
