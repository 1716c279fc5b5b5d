"""MargNet's catalog columns measured on stamps given without their frames.

A catalog of positions with cutouts lacks the columns the models reading
MargNet's 24 features take.  Where the stamps' PSF is known (``psf=``, or
SDSS's ``psffwhm_<b>`` per row), `columns_from_stamps` measures them on the
stamps as `sourceclf.photometry.measure_columns` does on frames, through a
Moffat of that FWHM and of the index measured on the stamps' own point
sources (`sourceclf.stamp_psf`), so that ``model="auto"`` can choose
``margnet-sgq`` for them as for frames.
"""

import warnings

import numpy as np

from .bands import BANDS
from .cutouts import make_cutouts
from .exceptions import MissingColumnsError, SourceclfWarning
from .inputs import catalog_psf_fwhm, psf_by_band
from .photometry import ASSUMED_BETA, measure_stamp_columns
from .psf import PSFMeasurement
from .sky import stamp_sky
from .stamp_psf import band_moffat_indices, read_stamp_rows
from .utils._warnings import user_stacklevel

__all__ = ["columns_from_stamps", "KNOWN_PSF_SHARE"]

#: Without ``psf=``, the stamps are measured through the table's ``psffwhm_<b>``
#: only where at least this share of the rows has all five (positive): the
#: others cannot be measured, and the image-only model, which classifies them
#: all (flagged ``psf_unknown`` where their PSF is unknown), does better.
KNOWN_PSF_SHARE = 0.5


def columns_from_stamps(source, cutouts, psf=None, *, quiet=False):
    """MargNet's catalog columns measured on stamps given without their frames.

    What `sourceclf.classify` does with stamps whose PSF is known when the
    table lacks MargNet's columns (`sourceclf.classification.frame_columns`):
    `sourceclf.photometry.measure_stamp_columns` on the stamps, each standing
    for its frame, the sky noise from their borders
    (`sourceclf.sky.stamp_sky`).  The sky noise and the Moffat indices are
    read on the stamps `sourceclf.cutouts.make_cutouts` leaves unflagged
    (not padded at a frame's edge, no pixel set to 0), or on all when every
    stamp is flagged; every row's columns are measured, on the pixels its
    stamp holds (those beyond a frame's edge and those set to 0 weigh
    nothing), but for a row whose stamp's centre holds none.

    The PSF is a Moffat of ``psf``'s FWHM, else each row's own from the
    table's ``psffwhm_<b>`` (`sourceclf.inputs.catalog_psf_fwhm`: a row
    without a positive one in every band is not measured), and of the
    Moffat index measured on the point sources of the stamps of each FWHM,
    or of all (`sourceclf.stamp_psf.stamps_moffat_index`), or
    `sourceclf.photometry.ASSUMED_BETA` where too few are found
    ("assumed").  The result's ``meta['CLFPSF']`` says which.

    Parameters
    ----------
    source : `~astropy.table.Table`
        The catalog, under sourceclf's column names, one row per stamp.
    cutouts : optional
        The stamps, in any form `sourceclf.cutouts.make_cutouts` takes.
    psf : float or dict, optional
        FWHM (arcsec) of every band, or ``{band: FWHM}``; without it the
        table's ``psffwhm_<b>`` (`sourceclf.inputs.catalog_psf_fwhm`).
    quiet : bool
        No warning when the columns cannot be measured.

    Returns
    -------
    table : `~astropy.table.Table`
        A copy of ``source`` with the columns, or ``source`` itself when they
        cannot be measured (no sky noise in the stamps' borders, or fewer
        than `KNOWN_PSF_SHARE` of the rows with a FWHM in every band): then
        after one `~sourceclf.exceptions.SourceclfWarning` unless ``quiet``.

    Raises
    ------
    MissingColumnsError
        Without ``psf`` if the table lacks a band's ``psffwhm_<b>``.
    """
    given = {}
    if psf is not None:
        given = psf_by_band(psf, keep_measurements=True)
        fwhm = {band: getattr(v, "fwhm", v) for band, v in given.items()}
        origin = "psf="
    else:
        catalog = catalog_psf_fwhm(source)
        if catalog is None:
            raise MissingColumnsError("the stamps' PSF is unknown: give psf= (FWHM in arcsec) "
                                      "or psffwhm_<b> columns for all five bands")
        fwhm = {band: np.where(values > 0, values, np.nan) for band, values in catalog.items()}
        origin = "each row's psffwhm_<b> x sourceclf.psf.CATALOG_PSF_SCALE"
        known = np.all([np.isfinite(fwhm[b]) for b in BANDS], axis=0)
        if len(source) and known.mean() < KNOWN_PSF_SHARE:
            return _not_measured(source, quiet, f"{int((~known).sum())} of {len(source)} rows "
                                 "lack a positive psffwhm_<b> in some band; give psf=")
    # Every pixel finite: make_cutouts sets non-finite ones to 0 and flags the row.  The
    # sky and the Moffat indices, shared by all rows, are read on the unflagged stamps
    # only (as model_inputs' sky check does); every row's columns are measured.
    cut = make_cutouts(cutouts, table=source)
    stamps, clean = cut.data, np.asarray(cut.flags).astype(str) == ""
    judged = read_stamp_rows(clean)
    sky = {band: sigma for band, (_, sigma) in stamp_sky(stamps, judged).items()}
    flat = [band for band in BANDS if not sky[band] > 0]
    if flat:
        return _not_measured(source, quiet, "no sky noise in the borders of band(s) "
                             + ", ".join(flat))
    # A PSFMeasurement given as psf= brings its band's Moffat index; the others are
    # measured on the stamps' point sources.
    known = {band: float(v.beta) for band, v in given.items() if isinstance(v, PSFMeasurement)}
    if len(known) < len(BANDS):
        beta, seen = band_moffat_indices(stamps, fwhm, rows=judged)
    else:
        beta, seen = {}, {}
    for band, value in known.items():
        beta[band] = np.full(len(source), value)
        seen[band] = np.full(len(source), "given")
    shapes = [f"{band} " + _shape_summary(beta[band], seen[band]) for band in BANDS]
    measured = measure_stamp_columns(source, stamps, fwhm, sky, beta=beta)
    measured.meta["CLFPSF"] = (f"PSF of the stamps' columns: FWHM from {origin}; Moffat index "
                               f"{'; '.join(shapes)}")
    return measured


def _not_measured(source, quiet, why):
    """``source`` as it is, after a warning saying ``why`` unless ``quiet``."""
    if not quiet:
        warnings.warn(f"MargNet's catalog columns not measured on the stamps ({why}); only "
                      "models reading the images alone can be used", SourceclfWarning,
                      stacklevel=user_stacklevel())
    return source


def _shape_summary(beta, seen):
    """A band's Moffat indices for ``meta['CLFPSF']``: their range and where they came from
    (`sourceclf.stamp_psf.stamps_moffat_index`)."""
    parts = []
    for kind, what in (("given", "given as psf="),
                       ("own", "measured on the stamps' point sources of their FWHM"),
                       ("all", "measured on all the stamps' point sources"),
                       ("borrowed", "measured on the stamps of the other bands' point "
                                    "sources")):
        values = beta[seen == kind]
        if len(values):
            low, high = np.min(values), np.max(values)
            span = f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}-{high:.1f}"
            parts.append(f"{span} {what} ({len(values)} rows)")
    rest = int(np.sum(seen == ""))
    if rest:
        parts.append(f"{ASSUMED_BETA:.1f} assumed, too few point sources ({rest} rows)")
    return ", ".join(parts)
