"""The sky of a frame, against the sky the image models were trained on.

The image models read stamps in the units of SDSS's corrected frames:
nanomaggies, with a sky noise of about 0.02-0.04 nanomaggies per pixel in r.
Frames in other units (raw counts, janskys) give the networks pixels they
never saw, and the image-only ``margnet-cnn-sgq`` is then wrong without any
other sign: on the three uncrowded shared fields it calls 0.50-0.52
(balanced) of the bright sources right in counts or in janskys, against
0.93-0.98 in nanomaggies (``python docs/scripts/conditions_check.py
units``; docs: images, "Frames that are not SDSS corrected frames").  A
constant sky left in no longer moves them (each stamp's own border sky is
subtracted before the networks read it: ``conditions_check.py
sky-level``), but a real unsubtracted sky is rarely constant, so such
frames are still flagged.  `sky_flags` compares each band's sky
(`frame_sky`) with a model's trained range (its card's
``domain['sky_sigma']``):

* ``sky_out_of_range``: the sky noise lies more than `SKY_NOISE_FACTOR` times
  above the trained range or `SKY_DEPTH_FACTOR` times below it (frames in
  other units, or noisier or far deeper than SDSS's; up to twice the shared
  fields' own noise, at most 1.85 times the trained maximum in any band, the
  models hold: ``conditions_check.py sky-noise``);
* ``sky_not_subtracted``: the sky's median lies more than `SKY_LEVEL_LIMIT`
  sky sigmas from zero (on the shared fields it lies within 1.5).

Stamps given directly (no frames) are judged the same way, on the sky of
their borders (`stamp_sky`): the median over the stamps of each stamp's
sigma-clipped border median and noise.  Stamps cut from frames of different
skies are also judged one by one (`stamp_sky_rows`, `sky_row_flags`): when
at least `STAMP_MIXTURE_SHARE` of them are unlike the trained sky while the
median is not, those rows are flagged; when fewer are, only the stamps whose
noise lies beyond `STAMP_FAR_FACTOR` or `STAMP_FAR_DEPTH_FACTOR` (stamps in
other units: `odd_stamp_flags`).
"""

import numpy as np

from .bands import BANDS
from .exceptions import InvalidInputError
from .psf import sky_level

__all__ = ["FLAG_SKY_NOT_SUBTRACTED", "FLAG_SKY_OUT_OF_RANGE", "SKY_DEPTH_FACTOR",
           "SKY_LEVEL_LIMIT", "SKY_NOISE_FACTOR", "STAMP_BORDER", "STAMP_MIXTURE_SHARE",
           "STAMP_FAR_DEPTH_FACTOR", "STAMP_FAR_FACTOR", "STAMP_SKY_ROWS", "frame_sky",
           "odd_stamp_flags", "sky_flags", "sky_message", "sky_row_flags", "sky_rows_message",
           "stamp_sky", "stamp_sky_rows"]

#: Flag of rows on a frame whose sky noise lies far outside the model's trained range.
FLAG_SKY_OUT_OF_RANGE = "sky_out_of_range"

#: Flag of rows on a frame whose sky was not subtracted.
FLAG_SKY_NOT_SUBTRACTED = "sky_not_subtracted"

#: How many times above the trained range of sky noise a frame's noise must
#: lie, in any band, to be flagged ``sky_out_of_range``.  On real frames
#: whose noise was raised to at most 1.85 times the trained maximum (the
#: noisiest band of three uncrowded fields at twice their own noise) the models
#: held; at 2.3-2.8 times (three times their own) ``margnet-cnn-sgq`` lost
#: 0.01-0.07 (docs: images, "Sky noise").  So the flag starts between the
#: two; frames in raw counts are 120-150 times it.
SKY_NOISE_FACTOR = 2.0

#: How many times below the trained range of sky noise a frame's noise must
#: lie to be flagged ``sky_out_of_range``.  A frame ten times less noisy shows
#: a source as a trained frame shows one 2.5 magnitudes brighter, which the
#: training stamps hold from r = 14; frames in janskys are 10^5 times below.
SKY_DEPTH_FACTOR = 10.0

#: Largest distance of a sky-subtracted frame's sky median from zero, in sky
#: sigmas (the shared fields: 0.1-1.5; ``conditions_check.py sky-level``).
SKY_LEVEL_LIMIT = 5.0

#: Width in pixels of the border of a stamp whose pixels `stamp_sky` reads as
#: sky (348 of a 32-pixel stamp's 1,024; a source's light reaches it only for
#: bright or large galaxies, which the median over stamps outvotes).
STAMP_BORDER = 3

#: Share of the stamps of one call whose own border sky (`stamp_sky_rows`) is
#: unlike the trained one, while that of the stamps together (`stamp_sky`) is
#: not, from which those rows are flagged: stamps cut from frames of different
#: skies.  On the stamps of the shared fields' bright sources 0-3.4% are
#: (bright sources' light in their borders); with 30% of a call's stamps cut
#: from a field at three times its noise, all of those are
#: (``docs/scripts/stamp_sky_rows.py``).
STAMP_MIXTURE_SHARE = 0.1

#: How many times above the trained range of sky noise one stamp's own border
#: noise must lie, in any band, to be flagged ``sky_out_of_range`` even when
#: fewer than `STAMP_MIXTURE_SHARE` of a call's stamps are odd: a stamp in
#: other units (raw counts lie 120-150 times above).  Of the stamps of the
#: shared fields' bright sources, the one farthest above lies 17.8 times
#: above (a saturated star of r = 12.8 whose wings fill its border), so
#: saturated stars brighter than about r = 11.7 can be flagged too
#: (``docs/scripts/stamp_sky_rows.py`` prints the largest per field).
STAMP_FAR_FACTOR = 50.0

#: How many times below the trained range of sky noise one stamp's own
#: border noise must lie to be flagged whatever the share (janskys lie 10^5
#: times below; the shared fields' stamps at least 0.89 times the bottom).
STAMP_FAR_DEPTH_FACTOR = 100.0

#: Most stamps `stamp_sky` reads (evenly spaced over the rows): the median of
#: a few thousand stamps' skies is as good as that of all of them.
STAMP_SKY_ROWS = 2000


def frame_sky(frames):
    """Each band's sky median and noise per pixel, each frame measured once.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` (`sourceclf.inputs.read_frames`).

    Returns
    -------
    sky : dict
        ``{band: (median, sigma)}`` (`sourceclf.psf.sky_level`); NaN for a
        frame whose sky cannot be measured (too few finite pixels, no noise).
    """
    measured, sky = {}, {}
    for band in BANDS:
        data = frames[band][0]
        if id(data) not in measured:
            try:
                measured[id(data)] = sky_level(np.asarray(data))
            except InvalidInputError:
                measured[id(data)] = (float("nan"), float("nan"))
        sky[band] = measured[id(data)]
    return sky


def stamp_sky(stamps, rows=None, *, border=STAMP_BORDER, max_rows=STAMP_SKY_ROWS):
    """Each band's sky median and noise per pixel, from the borders of stamps.

    For stamps given without their frames: each stamp's border pixels (within
    ``border`` pixels of its edge) give a sigma-clipped median and MAD-based
    noise per band, and the medians of these over the stamps are the sky's.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Shape ``(N, 5, H, W)``, ugriz (`sourceclf.cutouts.make_cutouts`).
    rows : array-like of int, optional
        The stamps to read (say, those that are neither padded nor holding
        NaN); default all.
    border : int
        `STAMP_BORDER`.
    max_rows : int
        `STAMP_SKY_ROWS`: at most this many of ``rows``, evenly spaced.

    Returns
    -------
    sky : dict
        ``{band: (median, sigma)}`` as `frame_sky` gives it; NaN where there
        are no stamps or their borders have no noise (constant stamps).

    Examples
    --------
    >>> import numpy as np
    >>> from sourceclf.sky import stamp_sky
    >>> stamps = np.random.default_rng(1).normal(0.0, 0.03, (50, 5, 32, 32))
    >>> median, sigma = stamp_sky(stamps)["r"]
    >>> abs(median) < 0.005, round(sigma, 2)
    (True, 0.03)
    """
    stamps = np.asarray(stamps)
    rows = np.arange(len(stamps)) if rows is None else np.asarray(rows, dtype=int)
    if rows.size > max_rows:
        rows = rows[np.linspace(0, rows.size - 1, max_rows).astype(int)]
    nan = (float("nan"), float("nan"))
    if stamps.ndim != 4 or not rows.size or min(stamps.shape[2:]) <= 2 * border:
        return {band: nan for band in BANDS}
    sky = {}
    for band in BANDS:
        medians, sigmas = _clipped_sky(stamps, rows, band, border)
        good = np.isfinite(medians) & np.isfinite(sigmas)
        sigma = float(np.median(sigmas[good])) if good.any() else float("nan")
        sky[band] = ((float(np.median(medians[good])), sigma) if sigma > 0 else nan)
    return sky


def stamp_sky_rows(stamps, rows=None, *, border=STAMP_BORDER, clip=False):
    """Each stamp's own sky median and noise per pixel, band by band, from its border.

    The border pixels (within ``border`` pixels of the stamp's edge) of each
    stamp give a median and a noise from their interquartile range, without
    `stamp_sky`'s sigma clipping (half the time of a median and a MAD, for
    every row of a catalog); `sky_row_flags` measures the rows it would flag
    again with the clipping, which neighbours in the border call for
    (``clip=True`` measures every row so).

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Shape ``(N, 5, H, W)``, ugriz.
    rows : array-like of int, optional
        The stamps to read; the others get NaN.  Default all.
    border : int
        `STAMP_BORDER`.
    clip : bool
        Sigma-clipped median and MAD, as `stamp_sky` measures (slower).

    Returns
    -------
    sky : dict
        ``{band: (medians, sigmas)}``, arrays of length N (NaN where not
        read or without noise).
    """
    stamps = np.asarray(stamps)
    n = len(stamps)
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=int)
    nan = np.full(n, np.nan)
    if stamps.ndim != 4 or not rows.size or min(stamps.shape[2:]) <= 2 * border:
        return {band: (nan.copy(), nan.copy()) for band in BANDS}
    if clip:
        sky = {band: (nan.copy(), nan.copy()) for band in BANDS}
        for band, (medians, sigmas) in sky.items():
            medians[rows], sigmas[rows] = _clipped_sky(stamps, rows, band, border)
        return sky
    ring = _border_ring(stamps.shape[2:], border)
    sky = {}
    for k, band in enumerate(BANDS):
        low, median, high = np.percentile(stamps[rows, k][:, ring], [25, 50, 75], axis=1)
        sigma = (high - low) / 1.349  # a Gaussian's sigma from its interquartile range
        medians, sigmas = nan.copy(), nan.copy()
        with np.errstate(invalid="ignore"):
            medians[rows] = median
            sigmas[rows] = np.where(sigma > 0, sigma, np.nan)
        sky[band] = (medians, sigmas)
    return sky


def _border_ring(shape, border):
    ring = np.ones(shape, dtype=bool)
    ring[border:-border, border:-border] = False
    return ring


def _clipped_sky(stamps, rows, band, border):
    """Sigma-clipped border median and noise of some stamps in one band (`stamp_sky`'s)."""
    from astropy.stats import sigma_clipped_stats

    ring = _border_ring(stamps.shape[2:], border)
    pixels = np.asarray(stamps[rows, BANDS.index(band)][:, ring], dtype=np.float64)
    with np.errstate(all="ignore"):
        _, medians, sigmas = sigma_clipped_stats(pixels, axis=1, sigma=3.0, maxiters=5,
                                                 stdfunc="mad_std")
    sigmas = np.ma.filled(sigmas, np.nan)
    return np.ma.filled(medians, np.nan), np.where(sigmas > 0, sigmas, np.nan)


def _odd_sky(median, sigma, sky_range, factor, depth_factor, level_limit):
    """Whether a sky (scalars or arrays) is out of the trained range of noise, and whether
    it was not subtracted: the judgement of `sky_flags` and `sky_row_flags`."""
    low, high = sky_range
    with np.errstate(invalid="ignore"):
        return ((sigma > high * factor) | (sigma < low / depth_factor),
                np.abs(median) > level_limit * sigma)


def sky_row_flags(stamps, rows, sky_range, *, factor=SKY_NOISE_FACTOR,
                  depth_factor=SKY_DEPTH_FACTOR, level_limit=SKY_LEVEL_LIMIT,
                  border=STAMP_BORDER, clip=True):
    """The stamps whose own border sky is unlike the trained one, as `sky_flags` judges
    a frame's.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Shape ``(N, 5, H, W)``, ugriz.
    rows : array-like of int or None
        The stamps to judge (`stamp_sky_rows`); the others are never flagged.
    sky_range : dict
        ``{band: (low, high)}``, as for `sky_flags`.
    factor, depth_factor, level_limit : float
        As for `sky_flags`.
    border : int
        `STAMP_BORDER`.
    clip : bool
        Measure the rows that `stamp_sky_rows`'s quick measurement would flag
        again with `stamp_sky`'s sigma clipping, and flag only those that
        still are (False: judge the quick measurement, which a neighbour's
        light in the border moves).

    Returns
    -------
    flags : dict
        ``{FLAG_SKY_OUT_OF_RANGE: rows, FLAG_SKY_NOT_SUBTRACTED: rows}``,
        boolean arrays (a row whose sky could not be measured is in neither).
    """
    stamps = np.asarray(stamps)
    return _judged_rows(stamps, _RowSky(stamps, rows, border), sky_range,
                        (factor, depth_factor, level_limit), clip=clip)


class _RowSky:
    """The border sky of some stamps, measured quickly once (`stamp_sky_rows`) and with
    clipping where asked, each row and band once: `odd_stamp_flags` judges its candidates
    twice, at two sets of limits."""

    def __init__(self, stamps, rows, border):
        self.stamps, self.border = stamps, border
        self.quick = stamp_sky_rows(stamps, rows, border=border)
        n = len(stamps)
        self.clipped = {band: (np.full(n, np.nan), np.full(n, np.nan)) for band in BANDS}
        self.measured = {band: np.zeros(n, dtype=bool) for band in BANDS}

    def clipped_sky(self, rows, band):
        """`_clipped_sky` of ``rows`` in ``band``, measuring only those not measured yet."""
        medians, sigmas = self.clipped[band]
        new = rows[~self.measured[band][rows]]
        if new.size:
            medians[new], sigmas[new] = _clipped_sky(self.stamps, new, band, self.border)
            self.measured[band][new] = True
        return medians[rows], sigmas[rows]


def _judged_rows(stamps, sky, sky_range, limits, *, clip, rows=None):
    """`sky_row_flags`' judgement of a `_RowSky` (of ``rows`` only, when given)."""
    n = len(stamps)
    out, not_subtracted = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    judged = np.ones(n, dtype=bool) if rows is None else np.isin(np.arange(n), rows)
    for band in BANDS:
        odd_noise, odd_level = _odd_sky(*sky.quick[band], sky_range[band], *limits)
        odd_noise &= judged
        odd_level &= judged
        again = np.flatnonzero(odd_noise | odd_level)
        if clip and again.size:  # measured again, neighbours' light clipped
            odd_noise[again], odd_level[again] = _odd_sky(
                *sky.clipped_sky(again, band), sky_range[band], *limits)
        out |= odd_noise
        not_subtracted |= odd_level
    return {FLAG_SKY_OUT_OF_RANGE: out, FLAG_SKY_NOT_SUBTRACTED: not_subtracted}


def sky_flags(sky, sky_range, *, factor=SKY_NOISE_FACTOR, depth_factor=SKY_DEPTH_FACTOR,
              level_limit=SKY_LEVEL_LIMIT):
    """The bands whose frame's sky is unlike the trained one.

    Parameters
    ----------
    sky : dict
        ``{band: (median, sigma)}`` (`frame_sky`).
    sky_range : dict
        ``{band: (low, high)}``: the sky noise per pixel a model was trained
        on (nanomaggies; its card's ``domain['sky_sigma']``).
    factor : float
        `SKY_NOISE_FACTOR`.
    depth_factor : float
        `SKY_DEPTH_FACTOR`.
    level_limit : float
        `SKY_LEVEL_LIMIT`.

    Returns
    -------
    flags : dict
        ``{FLAG_SKY_OUT_OF_RANGE: [bands], FLAG_SKY_NOT_SUBTRACTED: [bands]}``
        (a frame whose sky could not be measured is in neither).
    """
    out, not_subtracted = [], []
    for band in BANDS:
        odd_noise, odd_level = _odd_sky(*sky[band], sky_range[band], factor, depth_factor,
                                        level_limit)
        if odd_noise:
            out.append(band)
        if odd_level:
            not_subtracted.append(band)
    return {FLAG_SKY_OUT_OF_RANGE: out, FLAG_SKY_NOT_SUBTRACTED: not_subtracted}


def sky_message(sky, sky_range, flags, what="frames"):
    """One warning's text for the bands of `sky_flags`; '' when none is flagged.

    ``what`` names what was measured: ``'frames'`` (`frame_sky`) or
    ``'stamps'`` (`stamp_sky`, the sky of their borders).

    The text is the same for every chunk of a catalog on the same frames (it
    names no row count), so that a caller printing each text once says it once.
    """
    parts = []
    out = flags[FLAG_SKY_OUT_OF_RANGE]
    if out:
        parts.append("sky noise per pixel " + ", ".join(
            f"{b} {sky[b][1]:.3g} (trained {sky_range[b][0]:.3g}-{sky_range[b][1]:.3g})"
            for b in out))
    bare = flags[FLAG_SKY_NOT_SUBTRACTED]
    if bare:
        parts.append("sky median " + ", ".join(
            f"{b} {sky[b][0]:.3g} ({abs(sky[b][0]) / sky[b][1]:.0f} sigma)" for b in bare))
    if not parts:
        return ""
    named = _named(flags)
    if what == "stamps":
        subject, rows = "the stamps (their borders' sky) do not look like", "the stamps' rows are"
    else:
        subject, rows = "the frames do not look like", "the rows on them are"
    return (f"{subject} SDSS corrected frames (nanomaggies, sky-subtracted), "
            f"which the image models read: {'; '.join(parts)}; {rows} flagged "
            f"{named}, and their classes may be wrong (docs: images, 'Flags')")


def odd_stamp_flags(stamps, rows, sky_range):
    """The stamps to flag for their own border sky, and the warning that says so.

    When at least `STAMP_MIXTURE_SHARE` of ``rows`` are unlike the trained
    sky (`sky_row_flags`), all of those: stamps cut from frames of different
    skies.  When fewer are (a bright source's light in a border is enough on
    a single field), only those whose noise lies more than
    `STAMP_FAR_FACTOR` times above the trained range or
    `STAMP_FAR_DEPTH_FACTOR` times below it: a stamp in other units.  A
    minority with the sky left in, or only a few times noisier, is not told
    from bright sources' light and goes unflagged.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Shape ``(N, 5, H, W)``, ugriz.
    rows : array-like of int
        The stamps to judge (not empty).
    sky_range : dict
        ``{band: (low, high)}``, as for `sky_flags`.

    Returns
    -------
    flags : dict
        ``{FLAG_SKY_OUT_OF_RANGE: rows, FLAG_SKY_NOT_SUBTRACTED: rows}``,
        boolean arrays over all ``N`` stamps.
    message : str
        One warning's text (`sky_rows_message`); '' when no row is flagged.
    """
    rows = np.asarray(rows, dtype=int)
    stamps = np.asarray(stamps)
    sky = _RowSky(stamps, rows, STAMP_BORDER)  # measured once for both judgements
    found = _judged_rows(stamps, sky, sky_range,
                         (SKY_NOISE_FACTOR, SKY_DEPTH_FACTOR, SKY_LEVEL_LIMIT), clip=True)
    odd = found[FLAG_SKY_OUT_OF_RANGE] | found[FLAG_SKY_NOT_SUBTRACTED]
    if odd[rows].mean() >= STAMP_MIXTURE_SHARE:
        return found, sky_rows_message(found)
    far = {flag: np.zeros(len(stamps), dtype=bool) for flag in found}
    if odd.any():
        far = _judged_rows(stamps, sky, sky_range,
                           (STAMP_FAR_FACTOR, STAMP_FAR_DEPTH_FACTOR, np.inf), clip=True,
                           rows=np.flatnonzero(odd))
    return far, sky_rows_message(far, mixture=False)


def sky_rows_message(flags, mixture=True):
    """One warning's text for the rows of `sky_row_flags`; '' when none is flagged.

    ``mixture``: the rows are many (`STAMP_MIXTURE_SHARE`) rather than far
    from any SDSS sky (`odd_stamp_flags`).  Like `sky_message`, the same
    text for every chunk of a catalog (no row count), so that it is said once.
    """
    named = _named(flags)
    if not named:
        return ""
    if not mixture:
        return ("some stamps have a border sky noise more than "
                f"{STAMP_FAR_FACTOR:g} times above, or {STAMP_FAR_DEPTH_FACTOR:g} times below, "
                "that of the SDSS corrected frames (nanomaggies) which the image models read: "
                f"stamps in other units? those stamps' rows are flagged {named}, and their "
                "classes may be wrong (docs: images, 'Flags')")
    return (f"at least {STAMP_MIXTURE_SHARE:.0%} of the stamps have a border sky unlike "
            "SDSS corrected frames' (nanomaggies, sky-subtracted), which the image models "
            "read, though the stamps together do not: stamps cut from frames of different "
            f"skies? those stamps' rows are flagged {named}, and their classes may be wrong "
            "(docs: images, 'Flags')")


def _named(flags):
    """The flags that flag something (bands or rows), quoted, for a warning."""
    return " and ".join(f"'{f}'" for f in (FLAG_SKY_OUT_OF_RANGE, FLAG_SKY_NOT_SUBTRACTED)
                        if np.any(flags[f]))
