"""MargNet's catalog columns measured on stamps, by profile fits as SDSS measures them.

The image recipes' catalog models (``margnet-sgq``, ``margformer-sgq`` and
their Bayesian variants) read MargNet's 24 columns next to the stamp.  Copied
from the catalog the stamps were rendered from, those columns would be
exact: a galaxy's de Vaucouleurs radius and a source's colours known without
noise at r = 23 and through a 2.5" PSF.  A network trained on them learns to
trust them where no real catalog could (simulation version 9 with such
columns: 0.95-0.99 held-out accuracy beyond r = 21.5, where the stamps
alone give 0.63-0.66, and 0.97 at 2.2-2.5" seeing), and then fails when real columns are
measured at bad seeing.

`measure_stamp_columns` measures them instead on each source's stamp,
deblended from its neighbours but with its noise, with the profile fits
`sourceclf.photometry` makes on real frames (`~sourceclf.profile_fits.fit_band`,
`~sourceclf.photometry.columns_from_fits`): ``deVRad_<b>`` is the radius of
the band's best PSF-convolved de Vaucouleurs profile, the model magnitude of
every band the flux of the r band's best profile fitted in that band.  Sky
and photon noise, saturation and the seeing reach the columns as they reach
a real catalog's.

`deblend_stamps` gives the other measurement the shipped models learnt from:
each stamp, with its neighbours and halo, deblended by `sourceclf.photometry`'s
segment deblender (`~sourceclf.photometry.deblend_frame`,
`~sourceclf.photometry.source_stamps`), as
`~sourceclf.photometry.measure_columns` deblended a frame before it fitted
each source's neighbours with it (`sourceclf.neighbour_fits`).  That
deblender splits pixels between peaks and cannot remove a neighbour's light
from the source's own pixels, which the ideally deblended stamps never show.
The recipes keep it, so that they reproduce the shipped models; a
``margnet-sgq`` trained with the neighbour fits on that half instead scored
no better on real frames (``docs/images.rst``, "Crowded frames").
"""

import numpy as np
from astropy.table import Table, vstack

from ..bands import BANDS, SDSS_PIXEL_SCALE
from ..exceptions import InvalidInputError, MissingColumnsError
from ..photometry import columns_from_fits, deblend_frame, source_stamps
from ..photometry import measure_stamp_columns as fit_with_neighbours_on_stamps
from ..profile_fits import PROFILE_RADII, fit_band

__all__ = ["measure_stamp_columns", "deblend_stamps", "measure_with_neighbours"]


def _check(table, stamps, needed, name):
    missing = [c for c in needed if c not in table.colnames]
    if missing:
        raise MissingColumnsError(f"{name}: table lacks column(s) " + ", ".join(missing))
    stamps = np.asarray(stamps)
    if stamps.ndim != 4 or stamps.shape[:2] != (len(table), len(BANDS)):
        raise InvalidInputError(f"{name}: stamps of shape {stamps.shape} do "
                                f"not match a table of {len(table)} rows and 5 bands")
    return stamps


def deblend_stamps(table, stamps):
    """Each simulated stamp deblended from its neighbours by the segment deblender.

    Every band of every stamp goes through `~sourceclf.photometry.deblend_frame`
    (detection on the PSF-smoothed stamp, pixels split between its peaks) and
    `~sourceclf.photometry.source_stamps` (the stamp's sky median removed, the
    other sources' pixels set to 0), the source being at the stamp's centre,
    with the field's PSF FWHM and sky noise.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rendered catalog, with ``psf_fwhm_<b>`` (arcsec) and
        ``sky_sigma_<b>`` (nanomaggies per pixel).
    stamps : `numpy.ndarray`
        Its stamps with their neighbours and noise, shape
        ``(len(table), 5, size, size)``.

    Returns
    -------
    deblended : `numpy.ndarray`
        float64, the shape of ``stamps``: what `measure_stamp_columns` then
        measures as `~sourceclf.photometry.measure_columns` measures a frame.

    Raises
    ------
    MissingColumnsError
        If the table lacks a column this needs.
    InvalidInputError
        If the stamps do not match the table.
    """
    needed = [f"{c}_{b}" for b in BANDS for c in ("psf_fwhm", "sky_sigma")]
    stamps = _check(table, stamps, needed, "deblend_stamps")
    centre = np.array([(stamps.shape[-1] - 1) / 2])
    out = np.empty(stamps.shape)
    for k, b in enumerate(BANDS):
        fwhm = np.asarray(table[f"psf_fwhm_{b}"], float) / SDSS_PIXEL_SCALE
        sky = np.asarray(table[f"sky_sigma_{b}"], float)
        for i in range(len(table)):
            image = stamps[i, k].astype(float)
            parts, labels = deblend_frame(image, fwhm[i], sky[i], centre, centre)
            out[i, k] = source_stamps(image, centre, centre, parts, labels,
                                      size=stamps.shape[-1])[0]
    return out


def measure_stamp_columns(table, stamps):
    """MargNet's 24 columns measured on simulated stamps, by profile fits.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rendered catalog (`~sourceclf.recipes.image_training_set.render_varied_psf`
        adds what this needs): ``field``, ``psf_fwhm_<b>`` (arcsec),
        ``psf_beta_<b>``, ``psffwhm_<b>``, ``extinction_<b>``, ``dered_<b>``
        and ``deVRad_<b>``.
    stamps : `numpy.ndarray`
        Its stamps, shape ``(len(table), 5, size, size)``, nanomaggies: each
        source deblended from its neighbours (exactly, or by `deblend_stamps`),
        with its noise.

    Returns
    -------
    measured : `~astropy.table.Table`
        A copy of ``table`` whose ``dered_<b>``, ``deVRad_<b>``, colours and
        ``psf_flux_<b>`` are measured (`columns_from_fits`), with the rendered
        values kept as ``rendered_dered_<b>`` and ``rendered_deVRad_<b>``.

    Raises
    ------
    MissingColumnsError
        If the table lacks a column this needs.
    InvalidInputError
        If the stamps do not match the table.
    """
    needed = ["field"] + [f"{c}_{b}" for b in BANDS for c in
                          ("psf_fwhm", "psf_beta", "psffwhm", "extinction", "dered", "deVRad")]
    stamps = _check(table, stamps, needed, "measure_stamp_columns")
    n = len(table)
    field = np.asarray(table["field"])
    fluxes = np.zeros((n, len(BANDS), len(PROFILE_RADII)))
    best = np.zeros((n, len(BANDS)), dtype=int)
    for f in np.unique(field):
        rows = np.flatnonzero(field == f)
        for k, b in enumerate(BANDS):
            fluxes[rows, k], best[rows, k] = fit_band(
                stamps[rows, k], float(table[f"psf_fwhm_{b}"][rows[0]]),
                float(table[f"psf_beta_{b}"][rows[0]]))
    out = Table(table, copy=True)
    for b in BANDS:
        out[f"rendered_dered_{b}"] = table[f"dered_{b}"]
        out[f"rendered_deVRad_{b}"] = table[f"deVRad_{b}"]

    def stack(name):
        return np.column_stack([np.asarray(table[f"{name}_{b}"], float) for b in BANDS])

    return columns_from_fits(out, fluxes, best, stack("psffwhm"), stack("extinction"))


def measure_with_neighbours(table, stamps):
    """MargNet's columns and ``unmodelled_<b>`` measured on simulated stamps as on a frame.

    Each source is fitted with all its neighbours
    (`sourceclf.photometry.measure_stamp_columns`, as ``classify`` measures the
    sources of a frame), one simulated field at a time, with that field's PSF
    and sky noise.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rendered catalog, as `~sourceclf.recipes.image_training_set.simulated_training_set`
        returns it: ``field``, ``psf_fwhm_<b>``, ``psf_beta_<b>``, ``sky_sigma_<b>``.
    stamps : `numpy.ndarray`
        Its stamps as rendered, neighbours and all, shape ``(len(table), 5, size, size)``.

    Returns
    -------
    measured : `~astropy.table.Table`
        A copy of ``table`` with the measured columns, rows in ``table``'s order.

    Raises
    ------
    MissingColumnsError
        If the table lacks a column this needs.
    InvalidInputError
        If the stamps do not match the table.
    """
    needed = ["field"] + [f"{c}_{b}" for b in BANDS
                          for c in ("psf_fwhm", "psf_beta", "sky_sigma")]
    stamps = _check(table, stamps, needed, "measure_with_neighbours")
    if not len(table):
        raise InvalidInputError("measure_with_neighbours: the table has no rows")
    field = np.asarray(table["field"])
    parts, order = [], []
    for f in np.unique(field):
        rows = np.flatnonzero(field == f)
        first = rows[0]
        parts.append(fit_with_neighbours_on_stamps(
            table[rows], stamps[rows],
            {b: float(table[f"psf_fwhm_{b}"][first]) for b in BANDS},
            {b: float(table[f"sky_sigma_{b}"][first]) for b in BANDS},
            beta={b: float(table[f"psf_beta_{b}"][first]) for b in BANDS}))
        order.append(rows)
    out = vstack(parts, metadata_conflicts="silent")
    return out[np.argsort(np.concatenate(order))]
