"""Each band's frame registered on the r frame by the stars they share.

`sourceclf.classify` cuts each source's stamp, and measures its columns, at
its RA/Dec through each band's own WCS.  SDSS calibrates the astrometry of
each band's frame on its own, and a band's WCS can miss the r frame's by
a pixel (on the crowded low-latitude field 005405-6-0099 the i frame's
stars sit 0.84, -0.62 pixels from where its WCS puts the r frame's; on the
four other shared fields every band is within 0.25 pixels).  A source then
sits off-centre in that band alone, and a point source looks like a source
whose light shifts with colour, like a galaxy: with twice 005405's offsets
(up to 2.1 pixels), the bands cost the image models up to a sixth of the
point sources of a sharp field (``docs/scripts/registration_check.py``).
The image models were trained with each band's source placed up to
`REGISTRATION_TOLERANCE` pixels from the stamp centre, independently, so
smaller offsets are within what they know.

`band_offsets` measures each band's offset on the r frame's PSF stars
(those `sourceclf.field_psf.band_psf` fitted: bright, isolated, and found
on any field the r frame's PSF can be measured on): each projected through
both WCSs onto the band's frame and centred there, the median of the
differences; `register_frames` shifts the WCS of each band whose
offset exceeds `REGISTRATION_TOLERANCE` (a copy: the frames given are left
as they are), and `describe_registration` says what it found and did, for
the output's ``meta['CLFREG']``.
"""

import warnings
import weakref
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from .exceptions import InvalidInputError
from .field_psf import band_psf, remembered
from .psf import PSFMeasurement

__all__ = ["REFERENCE_BAND", "REGISTRATION_TOLERANCE", "MATCH_RADIUS", "MIN_MATCHED",
           "BandOffset", "band_offsets", "register_frames", "describe_registration"]

#: The band the others are registered on.
REFERENCE_BAND = "r"

#: Pixels: a band is registered when its offset from the r frame is larger.  The
#: image models' training stamps place each band's source up to 0.5 pixel from the
#: stamp centre along each axis, independently (`sourceclf.simulate.render_stamps`).
REGISTRATION_TOLERANCE = 0.5

#: Pixels: a r frame's star projected on a band's frame is centred on the brightest
#: pixel within this distance (then fitted about the first median offset).
MATCH_RADIUS = 5.0

#: Fewest stars centred to measure a band's offset.
MIN_MATCHED = 5

# The registered WCSs made here, and the offset each was shifted by.
_APPLIED = weakref.WeakKeyDictionary()


class BandOffset(NamedTuple):
    """Where a band's frame puts the r frame's stars, against where they are.

    Attributes
    ----------
    dx, dy : float
        The stars' position on the band's frame minus the position its WCS
        gives them (pixels; NaN when not measured).
    n_stars : int
        Stars centred (0: not measured).
    applied : bool
        Whether `register_frames` shifted the band's WCS by it.
    """

    dx: float
    dy: float
    n_stars: int
    applied: bool = False

    @property
    def size(self):
        """Length of the offset, pixels."""
        return float(np.hypot(self.dx, self.dy))


def _reference_stars(frames, reference, psf):
    """The PSF stars fitted on the reference frame (a table with ``x``, ``y``), or None."""
    given = psf.get(reference) if isinstance(psf, dict) else None
    if isinstance(given, PSFMeasurement) and given.stars is not None and not given.stars_from:
        return given.stars
    if psf is not None:  # a PSF given as FWHMs: nothing is measured on the frames
        return None
    try:
        return band_psf(frames[reference], reference).stars
    except InvalidInputError:
        return None


def _centred(data, x, y, margin, limit, **centring):
    """Each star's centre on ``data`` minus ``(x, y)``, by photutils' ``centroid_sources``
    (its keywords ``centring``); NaN within ``margin`` pixels of the frame's edge, where
    the fit fails, or beyond ``limit`` pixels."""
    from photutils.centroids import centroid_sources

    out = np.full((len(x), 2), np.nan)
    ny, nx = data.shape
    inside = (x >= margin) & (x < nx - margin) & (y >= margin) & (y < ny - margin)
    if inside.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # photutils: a fit that fails is NaN
            cx, cy = centroid_sources(data, x[inside], y[inside], **centring)
        out[inside] = np.c_[cx - x[inside], cy - y[inside]]
    out[~(np.hypot(out[:, 0], out[:, 1]) <= limit)] = np.nan
    return out


def _centroid_offsets(data, x, y, radius):
    """Each star's centroid on ``data`` minus ``(x, y)``: a quadratic fitted to the 5 x 5
    pixels about the brightest within ``radius`` (photutils' ``centroid_quadratic``)."""
    from photutils.centroids import centroid_quadratic
    from photutils.utils import circular_footprint

    return _centred(data, x, y, int(np.ceil(radius)), radius,
                    footprint=circular_footprint(radius), centroid_func=centroid_quadratic,
                    fit_boxsize=5)


def _fitted_offsets(data, x, y):
    """Each star's centre fitted by a 2-D Gaussian (photutils' ``centroid_2dg``) on the
    9 x 9 pixels about ``(x, y)``, minus ``(x, y)``; NaN beyond a pixel."""
    from photutils.centroids import centroid_2dg

    return _centred(data, x, y, 5, 1.0, box_size=9, centroid_func=centroid_2dg)


def band_offsets(frames, psf=None, *, reference=REFERENCE_BAND):
    """Each band's offset from the reference frame, measured on its PSF stars.

    The reference frame's PSF stars are projected through both WCSs onto each
    band's frame and centred there (photutils' ``centroid_sources`` with
    ``centroid_quadratic`` about the brightest pixel within `MATCH_RADIUS`;
    then, about the median offset of those, a 2-D Gaussian fitted to each,
    ``centroid_2dg``); the median of the fitted centres' offsets is the band's.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` of one field (`sourceclf.inputs.read_frames`).
    psf : float or dict, optional
        `classify`'s ``psf=``.  None: the reference frame's PSF stars are
        measured (`sourceclf.field_psf.band_psf`, once while a
        `sourceclf.field_psf.psf_memo` is open).  ``{band: PSFMeasurement}``
        measured on the frames: the reference's stars are taken from it when
        they are its frame's own.  FWHMs: nothing is measured, and no band's
        offset either.
    reference : str
        The band the others are measured against.

    Returns
    -------
    offsets : dict of `BandOffset`
        For every band of ``frames``; the reference's is 0.  A band with fewer
        than `MIN_MATCHED` stars centred (or a reference whose stars cannot
        be measured) has NaN offsets and ``n_stars`` 0.  Measured once for
        the same frames while a `sourceclf.field_psf.psf_memo` is open.
    """
    if reference not in frames:
        return _band_offsets(frames, psf, reference)
    # measured once per field while a psf_memo is open: the WCSs (held in the key) too
    tag = ("registration", reference) + tuple(
        (band, id(frame[0]), frame[1]) for band, frame in sorted(frames.items()))
    return dict(remembered(frames[reference][0], tag,
                           lambda: _band_offsets(frames, psf, reference)))


def _band_offsets(frames, psf, reference):
    """`band_offsets`, measured."""
    stars = _reference_stars(frames, reference, psf) if reference in frames else None
    offsets = {}
    for band, (data, wcs) in frames.items():
        if band == reference or stars is None or not len(stars):
            offsets[band] = (BandOffset(0.0, 0.0, 0 if stars is None else len(stars))
                             if band == reference else BandOffset(np.nan, np.nan, 0))
            continue
        ra, dec = frames[reference][1].celestial.pixel_to_world_values(
            np.asarray(stars["x"], float), np.asarray(stars["y"], float))
        px, py = wcs.celestial.world_to_pixel_values(ra, dec)
        data = np.asarray(data)
        found = _centroid_offsets(data, px, py, MATCH_RADIUS)
        ok = np.isfinite(found).all(axis=1)
        if ok.sum() >= MIN_MATCHED:  # again, fitted, about the first estimate
            first = np.median(found[ok], axis=0)
            found = _fitted_offsets(data, px + first[0], py + first[1]) + first
            ok = np.isfinite(found).all(axis=1)
        offsets[band] = (BandOffset(*np.median(found[ok], axis=0).tolist(), int(ok.sum()))
                         if ok.sum() >= MIN_MATCHED else BandOffset(np.nan, np.nan, 0))
    return offsets


def register_frames(frames, psf=None, *, reference=REFERENCE_BAND,
                    tolerance=REGISTRATION_TOLERANCE):
    """The frames with each band's WCS shifted onto the reference frame's stars.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` of one field.
    psf : dict, optional
        As `band_offsets` takes it.
    reference : str
        The band the others are registered on.
    tolerance : float
        Pixels: a band whose offset is at most this keeps its WCS.

    Returns
    -------
    frames : dict
        ``{band: (data, wcs)}``: the same data arrays; a band registered gets
        a copy of its WCS whose reference pixel is moved by its offset.
        Frames that this function registered already are returned as they are
        (their offsets are in `describe_registration`).
    """
    if any(wcs in _APPLIED for _, wcs in frames.values()):
        return dict(frames)
    out = dict(frames)
    for band, offset in band_offsets(frames, psf, reference=reference).items():
        if not offset.n_stars or band == reference or not offset.size > tolerance:
            continue
        data, wcs = frames[band]
        moved = wcs.deepcopy()
        moved.wcs.crpix = moved.wcs.crpix + np.array([offset.dx, offset.dy])
        moved.wcs.set()
        _APPLIED[moved] = offset._replace(applied=True)
        out[band] = (data, moved)
    return out


def describe_registration(frames):
    """What `register_frames` did to these frames, in one line, or None if nothing.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` as `register_frames` returned them (frames
        not read yet, paths for instance, were not registered).

    Returns
    -------
    text : str or None
        e.g. ``'i registered on r: shifted by +0.92 -0.70 pixels (24 stars)'``.
    """
    if not isinstance(frames, Mapping):  # None, or frames classify did not read
        return None
    parts = [f"{band} by {off.dx:+.2f} {off.dy:+.2f} pixels ({off.n_stars} stars)"
             for band, frame in frames.items()
             if isinstance(frame, tuple) and len(frame) == 2
             and (off := _APPLIED.get(frame[1])) is not None]
    if not parts:
        return None
    return f"registered on {REFERENCE_BAND} (sourceclf.registration): " + ", ".join(parts)
