"""Crowding: how many other sources share a source's stamp.

The image models learn from simulated stamps in which a source has at most
two neighbours (`sourceclf.recipes.image_training_set.add_realism`).  Real
stamps in crowded fields, the Galactic plane or a cluster, hold many more,
and a model judges such a source by light that is not its own: on field
005405-6-0099 (Galactic latitude -1 degree) the median bright source has four
neighbours in its 32 x 32 stamp, on field 004510-4-0030 (latitude 78
degrees) none.

`count_neighbours` counts, in one band of each stamp, the local maxima of the
stamp smoothed by a small Gaussian that rise above ``threshold`` times the
smoothed sky noise (a sigma-clipped standard deviation of the stamp itself)
and lie more than ``min_separation`` pixels from the centre.  An image model's
card holds the largest count of 99% of its training stamps
(``domain['neighbours']['limit']``, `neighbour_limit`); rows with more are
flagged ``crowded`` in ``pred_flag`` (`crowding_flags`).  The rows are still
classified: the flag says that the model has not learnt such stamps.

Blurring merges neighbours into smooth light: on field 005405-6-0099 the
share of bright sources whose stamps exceed the limit falls from 86% at its
own seeing to 34% at 2.2", while the models fail more.  When full frames are
given, the field itself is also judged: `source_coverage`, the share of the
r frame's pixels inside detected sources, holds under blur (it grows, if
anything, as light spreads), and a frame covered beyond `CROWDED_COVERAGE`
flags all its rows ``crowded``.

Per source, the profile fits that measure MargNet's columns on frames
(`sourceclf.photometry.measure_columns`) fit each neighbour with the source
and give its *blendedness* (`sourceclf.neighbour_fits.blendedness`): the
share of the light at the source that the neighbours put there.  A fitted
neighbour is a PSF, so its real wings, and the light of an extended
neighbour beyond its PSF, stay in the source's fits; the more light the
neighbours bring, the more such a remainder weighs.  `blending_flags` flags
``blended`` the rows whose blendedness in any of `BLEND_BANDS` reaches
`BLENDED_LIMIT`: the row keeps its class, the flag says that its
measurement holds a neighbour's light.

What the neighbour fits cannot model stays in the source's stamp: sources
too faint to be found, the neighbours' wings and shapes.  The fits keep it
per band as ``unmodelled_<b>``
(`sourceclf.unmodelled_light.unmodelled_light`: the light left 1-3 FWHM
around the source over the source's own light there), and
`confusion_flags` flags ``confused`` the rows whose r band's reaches
`CONFUSED_LIMIT`: there the fits cannot tell the source's wings from
light that is not its own.
"""

import warnings

import numpy as np

from .bands import BANDS
from .exceptions import InvalidInputError
from .photometry import detect_segments

__all__ = ["FLAG_CROWDED", "FLAG_BLENDED", "BLEND_BANDS", "BLENDED_LIMIT", "blending_flags",
           "FLAG_CONFUSED", "CONFUSION_BAND", "CONFUSED_LIMIT", "confusion_flags",
           "measurement_flags",
           "NEIGHBOUR_BAND", "NEIGHBOUR_THRESHOLD", "NEIGHBOUR_QUANTILE",
           "count_neighbours", "neighbour_limit", "crowding_flags", "CROWDED_COVERAGE",
           "source_coverage"]

#: ``pred_flag`` of rows whose stamps hold more neighbours than the model's
#: training stamps (see the module documentation).
FLAG_CROWDED = "crowded"

#: Band whose plane of the stamps the neighbours are counted in.
NEIGHBOUR_BAND = "r"

#: Height (in units of the smoothed sky noise) a local maximum must reach to
#: count as a neighbour.
NEIGHBOUR_THRESHOLD = 5.0

#: Share of the training stamps whose neighbour count the limit covers.
NEIGHBOUR_QUANTILE = 0.99

#: Share of a frame's pixels inside detected sources (`source_coverage`) above
#: which every row cut from it is flagged ``crowded``.  Set on the five shared
#: SDSS fields, at their own seeing and blurred to 1.6-2.2": the three at high
#: Galactic latitude, like the training fields, cover 0.6-2.1%, the two
#: crowded ones (Stripe 82 and the Galactic plane) 27-46%; 10% lies a factor
#: of about five from both (``python docs/scripts/check_fields.py`` prints
#: each field's coverage).  No other field has checked it.
CROWDED_COVERAGE = 0.10

#: ``pred_flag`` of rows whose measured columns hold a neighbour's light
#: (`blending_flags`).
FLAG_BLENDED = "blended"

#: Bands whose ``blendedness_<b>`` `blending_flags` judges (u and z are too
#: noisy at the survey's limit to tell a neighbour from the noise).
BLEND_BANDS = ("g", "r", "i")

#: Blendedness (in any of `BLEND_BANDS`) from which a row is flagged
#: ``blended``: neighbours bring a tenth of the light at the source.  Chosen on
#: known stars and galaxies drawn into the two crowded shared fields
#: (``docs/scripts/check_fields.py --inject --seed`` 14, 1 and 2): at the
#: fields' own seeing ``margnet-sgq`` scored 0.90-0.99 (balanced accuracy) on
#: the rows below it, 0.68-0.78 on those above; confirmed on ``--seed 3``.
#: See docs/images.rst.
BLENDED_LIMIT = 0.1

#: ``pred_flag`` of rows around which the fits leave light as bright as the
#: source's own (`confusion_flags`).
FLAG_CONFUSED = "confused"

#: Band whose ``unmodelled_<b>`` `confusion_flags` judges: SDSS's band for
#: telling stars from galaxies, the deepest of the five (in g and i a source
#: faint in that band has little light of its own to set against).
CONFUSION_BAND = "r"

#: ``unmodelled_r`` from which a row is flagged ``confused``: the light the
#: fits leave 1-3 FWHM around the source, less the sky's noise, as bright as
#: the source's own profile there.  Set by that meaning, not fitted to a
#: score; docs/images.rst gives what it flags on the shared fields
#: (``docs/scripts/check_fields.py --inject``).
CONFUSED_LIMIT = 1.0

_CHUNK = 4096


def count_neighbours(stamps, *, band=NEIGHBOUR_BAND, threshold=NEIGHBOUR_THRESHOLD,
                     min_separation=4.0, smoothing=1.0, box=5):
    """Count the other sources in each stamp.

    Parameters
    ----------
    stamps : array-like
        Stamps of shape ``(n, 5, size, size)`` in the order u g r i z (as
        `sourceclf.make_cutouts` returns them), or one band, ``(n, size,
        size)``.
    band : str
        Band counted in, for 5-band stamps.
    threshold : float
        Height of a neighbour's peak above the stamp's sky, in units of the
        smoothed stamp's sky noise.
    min_separation : float
        Peaks this close to the stamp's centre (pixels) are the source itself.
    smoothing : float
        Standard deviation (pixels) of the Gaussian the stamp is smoothed with.
    box : int
        Side (pixels) of the square a peak must be the maximum of.

    Returns
    -------
    counts : `numpy.ndarray` of int
        Number of neighbours per stamp; 0 for a stamp without finite pixels.

    Raises
    ------
    InvalidInputError
        If the stamps are neither 3-D nor 4-D with five bands, or ``band`` is
        not one of u g r i z.

    Examples
    --------
    >>> import numpy as np
    >>> from sourceclf.crowding import count_neighbours
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:32, :32]
    >>> stamps = rng.normal(0.0, 1.0, (2, 32, 32))
    >>> for x, y in [(15.5, 15.5), (5, 6), (26, 24), (8, 27)]:   # a source, 3 neighbours
    ...     stamps[1] += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.5)
    >>> stamps[0] += 200 * np.exp(-((xx - 15.5) ** 2 + (yy - 15.5) ** 2) / 4.5)
    >>> count_neighbours(stamps).tolist()
    [0, 3]
    """
    from astropy.stats import sigma_clipped_stats
    from scipy import ndimage

    data = np.asarray(stamps)
    if data.ndim == 4:
        if data.shape[1] != len(BANDS):
            raise InvalidInputError(f"stamps of shape {data.shape}: expected (n, 5, size, size)")
        if band not in BANDS:
            raise InvalidInputError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
        data = data[:, BANDS.index(band)]
    elif data.ndim != 3:
        raise InvalidInputError(f"stamps of shape {data.shape}: expected (n, 5, size, size) "
                                "or (n, size, size)")
    n, ny, nx = data.shape
    yy, xx = np.mgrid[:ny, :nx]
    far = np.hypot(xx - (nx - 1) / 2.0, yy - (ny - 1) / 2.0) > min_separation
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        part = np.asarray(data[start:start + _CHUNK], dtype=np.float32)
        finite = np.isfinite(part)
        smooth = ndimage.gaussian_filter(np.where(finite, part, 0.0), (0, smoothing, smoothing))
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore")  # blank stamps have no sky to clip
            _, median, std = sigma_clipped_stats(smooth, mask=~finite, axis=(1, 2), sigma=3.0,
                                                 maxiters=5)
        median = np.nan_to_num(np.ma.filled(median, np.nan))[:, None, None]
        std = np.nan_to_num(np.ma.filled(std, np.nan))[:, None, None]
        smooth -= median
        peak = ((smooth == ndimage.maximum_filter(smooth, size=(1, box, box)))
                & (smooth > threshold * std) & (std > 0) & finite)
        counts[start:start + len(part)] = (peak & far).sum(axis=(1, 2))
    return counts


def neighbour_limit(counts, quantile=NEIGHBOUR_QUANTILE):
    """The smallest count that at least a share of the training stamps do not exceed.

    Parameters
    ----------
    counts : array-like of int
        `count_neighbours` of the training stamps.
    quantile : float
        Share of the stamps covered.

    Returns
    -------
    limit : int
    """
    counts = np.asarray(counts)
    if counts.size == 0:
        raise InvalidInputError("no training stamps to take a neighbour limit from")
    return int(np.quantile(counts, quantile, method="inverted_cdf"))


def crowding_flags(stamps, limit, **options):
    """Which stamps hold more neighbours than ``limit``.

    Parameters
    ----------
    stamps : array-like
        As for `count_neighbours`.
    limit : int
        The model's ``domain['neighbours']['limit']``.
    **options
        Keyword arguments of `count_neighbours`.

    Returns
    -------
    crowded : `numpy.ndarray` of bool
    """
    return count_neighbours(stamps, **options) > int(limit)


def source_coverage(data, fwhm, sky_sigma):
    """Share of a frame's pixels inside detected sources.

    Sources are detected as `sourceclf.photometry.detect_segments` detects
    them: the frame smoothed by a Gaussian of the PSF's FWHM, pixels above
    twice the sky noise in groups of 8 or more.

    Parameters
    ----------
    data : array-like
        Sky-subtracted 2-D frame.
    fwhm : float
        FWHM of its PSF, pixels.
    sky_sigma : float
        Its sky noise per pixel.

    Returns
    -------
    coverage : float
        Between 0 and 1 (NaN for a frame without finite pixels).
    """
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        return float("nan")
    _, segm = detect_segments(np.where(finite, data, 0.0), fwhm, sky_sigma)
    if segm is None:
        return 0.0
    return float((segm.data[finite] > 0).mean())


def blending_flags(table, limit=BLENDED_LIMIT, bands=BLEND_BANDS):
    """Each row's largest blendedness and whether it reaches ``limit``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``blendedness_<b>`` for each of ``bands``
        (`sourceclf.photometry.measure_columns`).
    limit : float
        `BLENDED_LIMIT`.
    bands : sequence of str
        `BLEND_BANDS`.

    Returns
    -------
    blendedness : `numpy.ndarray` or None
        Largest ``blendedness_<b>`` over ``bands`` (NaN where none is
        known); None when the table lacks a band's column.
    blended : `numpy.ndarray` of bool or None
        ``blendedness >= limit``.
    """
    names = [f"blendedness_{b}" for b in bands]
    if not all(name in table.colnames for name in names):
        return None, None
    values = np.column_stack([np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan)
                              for name in names])
    worst = np.fmax.reduce(values, axis=1)  # NaN only where every band is
    return worst, worst >= limit


def confusion_flags(table, limit=CONFUSED_LIMIT, band=CONFUSION_BAND):
    """Each row's unmodelled light in ``band`` and whether it reaches ``limit``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``unmodelled_<band>`` (`sourceclf.photometry.measure_columns`).
    limit : float
        `CONFUSED_LIMIT`.
    band : str
        `CONFUSION_BAND`.

    Returns
    -------
    unmodelled : `numpy.ndarray` or None
        ``unmodelled_<band>`` (NaN where not measured); None without the column.
    confused : `numpy.ndarray` of bool or None
        ``unmodelled >= limit``.
    """
    name = f"unmodelled_{band}"
    if name not in table.colnames:
        return None, None
    values = np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan)
    return values, values >= limit


def measurement_flags(table):
    """The flags per row that the fits of MargNet's columns on frames raise.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With the columns `sourceclf.photometry.measure_columns` adds.

    Returns
    -------
    list of tuple
        ``(flag, column, values, raised, description)`` for `FLAG_BLENDED`
        (`blending_flags`, kept as ``blendedness``) and `FLAG_CONFUSED`
        (`confusion_flags`, kept as ``unmodelled_light``), each where the
        table has its columns.
    """
    found = ((FLAG_BLENDED, "blendedness", blending_flags(table),
              "largest share of the light at the source that its neighbours put there, "
              "in g r i (sourceclf.crowding.blending_flags)"),
             (FLAG_CONFUSED, "unmodelled_light", confusion_flags(table),
              "light the fits leave 1-3 FWHM around the source in r, over its own there "
              "(sourceclf.crowding.confusion_flags)"))
    return [(flag, column, values, raised, description)
            for flag, column, (values, raised), description in found if values is not None]
