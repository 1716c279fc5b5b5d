"""SDSS-like simulated catalogs and 5-band stamps, for training, tests and demos.

Three parts:

* measuring real frames: `measure_sky_sigma` (robust pixel noise),
  `measure_psf` (a 2-D Moffat fit to each star stamp) and
  `measure_frame_properties` (both, per band, for a field's frames and a list
  of its stars).  The defaults of the simulator, `SDSS_BAND_DEFAULTS`, are the
  numbers they give for SDSS field 4510-4-0030 (see below);
* `render_stamps`: one ``(5, size, size)`` stamp in nanomaggies for every row
  of a catalog with MargNet's columns, drawn with GalSim (point sources for
  stars and quasars, de Vaucouleurs or Sersic profiles for galaxies, convolved
  with a Moffat or Kolmogorov PSF of the row's ``psffwhm_<b>``), with sky and
  source noise as measured on the real frames;
* `simulate_catalog`: a catalog of stars, galaxies and quasars with MargNet's
  columns, drawn from simple parametric distributions or resampled from a real
  table.

The measured numbers (field 4510-4-0030, run 4510, camcol 4, field 30; SDSS
DR17 corrected frames; PSF from Moffat fits to the calibObj photometric stars
with PSFFLUX between 20 and 2000 nanomaggies in the band and a peak S/N of at
least 20; sky noise: sigma-clipped MAD-based sigma of the frame's pixels):

====  ========  ======  ========  ======  ======  ==========  ==========  =========
band  PSF FWHM  Moffat  calibObj  psf     stars   sky sigma   sky level   nmgy per
      (arcsec)  beta    PSF_FWHM  scale   fitted  (nmgy/pix)  (nmgy/pix)  electron
====  ========  ======  ========  ======  ======  ==========  ==========  =========
u     1.009     3.68    1.137     0.888   9       0.0443      0.153       0.0128
g     1.007     3.73    1.098     0.917   16      0.0150      0.211       0.00107
r     0.972     3.32    1.070     0.908   22      0.0233      0.478       0.00114
i     0.856     3.03    0.974     0.879   35      0.0353      0.728       0.00171
z     0.924     3.40    0.996     0.928   41      0.179       2.02        0.0158
====  ========  ======  ========  ======  ======  ==========  ==========  =========

(See `SDSS_BAND_DEFAULTS` for the exact values; they are checked against the
real frames by the test suite.)  SDSS's catalog PSF widths (``psffwhm_<b>``,
calibObj ``PSF_FWHM``) are effective widths of a double-Gaussian-plus-wings
model, about 10% larger than the FWHM of the PSF's core; `render_stamps`
multiplies them by ``psf_scale`` so that simulated stars have the core width of
real ones.
"""

import math
import warnings

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError, MissingColumnsError

__all__ = ["SDSS_BAND_DEFAULTS", "EXTINCTION_RATIO", "nanomaggies", "measure_sky_sigma",
           "measure_psf", "measure_frame_properties", "render_stamps", "simulate_catalog"]

#: Per-band properties of SDSS imaging measured on field 4510-4-0030 with
#: `measure_frame_properties` (see the module documentation):
#:
#: ``psf_fwhm``
#:     FWHM (arcsec) of the effective (pixel-convolved) PSF: median of 2-D
#:     Moffat fits to star stamps.
#: ``moffat_beta``
#:     Median Moffat index of the same fits.
#: ``catalog_psf_fwhm``
#:     Median SDSS ``PSF_FWHM`` (calibObj) of the same stars.
#: ``psf_scale``
#:     ``psf_fwhm / catalog_psf_fwhm``: turns an SDSS catalog PSF width
#:     (``psffwhm_<b>``) into the FWHM of the Moffat that looks like it.
#: ``sky_sigma``
#:     Pixel noise of the sky-subtracted frame, nanomaggies per pixel.
#: ``sky_level``
#:     The sky that was subtracted, nanomaggies per pixel.
#: ``nmgy_per_electron``
#:     ``sky_sigma**2 / sky_level``: nanomaggies per detected electron as if
#:     all sky noise were photon noise.  It slightly overstates source photon
#:     noise where read noise and dark current matter (u and z).
SDSS_BAND_DEFAULTS = {
    "u": {"psf_fwhm": 1.009, "moffat_beta": 3.68, "catalog_psf_fwhm": 1.137,
          "psf_scale": 0.888, "sky_sigma": 0.0443, "sky_level": 0.153,
          "nmgy_per_electron": 0.0128},
    "g": {"psf_fwhm": 1.007, "moffat_beta": 3.73, "catalog_psf_fwhm": 1.098,
          "psf_scale": 0.917, "sky_sigma": 0.0150, "sky_level": 0.211,
          "nmgy_per_electron": 0.00107},
    "r": {"psf_fwhm": 0.972, "moffat_beta": 3.32, "catalog_psf_fwhm": 1.070,
          "psf_scale": 0.908, "sky_sigma": 0.0233, "sky_level": 0.478,
          "nmgy_per_electron": 0.00114},
    "i": {"psf_fwhm": 0.856, "moffat_beta": 3.03, "catalog_psf_fwhm": 0.974,
          "psf_scale": 0.879, "sky_sigma": 0.0353, "sky_level": 0.728,
          "nmgy_per_electron": 0.00171},
    "z": {"psf_fwhm": 0.924, "moffat_beta": 3.40, "catalog_psf_fwhm": 0.996,
          "psf_scale": 0.928, "sky_sigma": 0.179, "sky_level": 2.02,
          "nmgy_per_electron": 0.0158},
}

#: Extinction in each band relative to r: A_b / E(B-V) of Schlafly &
#: Finkbeiner (2011) for SDSS, 4.239, 3.303, 2.285, 1.698, 1.263, over r's.
EXTINCTION_RATIO = {"u": 4.239 / 2.285, "g": 3.303 / 2.285, "r": 1.0,
                    "i": 1.698 / 2.285, "z": 1.263 / 2.285}

# de Vaucouleurs radii below this (arcsec) are drawn as point sources.
_POINT_RADIUS = 0.05
_POINT_CLASSES = ("STAR", "QSO")
_PSF_KINDS = ("moffat", "kolmogorov", "gaussian")


def nanomaggies(mag):
    """Flux in nanomaggies of an SDSS (AB) magnitude.

    Parameters
    ----------
    mag : float or array-like
        Magnitudes.

    Returns
    -------
    flux : float or `numpy.ndarray`
        ``10 ** (-0.4 * (mag - 22.5))``.

    Examples
    --------
    >>> from sourceclf.simulate import nanomaggies
    >>> float(nanomaggies(22.5))
    1.0
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - 22.5))


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

def measure_sky_sigma(stamps, *, mask_radius=None):
    """Robust pixel noise of each stamp, away from its centre.

    The pixels within ``mask_radius`` of the stamp centre are ignored; the
    rest are sigma-clipped (3 sigma) and their noise is the MAD-based
    standard deviation, which neighbouring sources barely move.

    Parameters
    ----------
    stamps : array-like, shape (..., H, W)
        One or more stamps (e.g. ``(N, H, W)`` or ``(N, 5, H, W)``), or a
        whole frame.
    mask_radius : float, optional
        Radius in pixels of the central region left out (default: a quarter
        of the stamp side; 0 uses every pixel).

    Returns
    -------
    sigma : float or `numpy.ndarray`
        Shape ``stamps.shape[:-2]``.
    """
    from astropy.stats import sigma_clipped_stats

    data = np.asarray(stamps, dtype=np.float64)
    if data.ndim < 2:
        raise InvalidInputError(f"stamps must be at least 2-D, got shape {data.shape}")
    h, w = data.shape[-2:]
    if mask_radius is None:
        mask_radius = min(h, w) / 4.0
    yy, xx = np.mgrid[:h, :w]
    central = np.hypot(xx - (w - 1) / 2.0, yy - (h - 1) / 2.0) < mask_radius
    mask = np.broadcast_to(central, data.shape) | ~np.isfinite(data)
    axis = (-2, -1) if data.ndim > 2 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked stamps give NaN
        _, _, sigma = sigma_clipped_stats(data, mask=mask, sigma=3.0, maxiters=5,
                                          stdfunc="mad_std", axis=axis)
    return np.ma.filled(np.ma.asarray(sigma, dtype=np.float64), np.nan) if axis else float(sigma)


def _moffat(params, xx, yy, jacobian=False):
    """Circular Moffat plus constant at (xx, yy), or its Jacobian.

    Parameters are (x0, y0, amplitude, log(gamma), log(beta - 1), background),
    so that gamma > 0 and beta > 1 without bounds.
    """
    x0, y0, amp, log_gamma, log_beta1, bkg = params
    gamma2 = math.exp(2 * log_gamma)
    beta = 1.0 + math.exp(log_beta1)
    dx, dy = xx - x0, yy - y0
    u = 1.0 + (dx * dx + dy * dy) / gamma2
    core = u ** (-beta)
    if not jacobian:
        return amp * core + bkg
    common = 2.0 * amp * beta * core / u / gamma2
    return np.column_stack([common * dx, common * dy, core, common * (u - 1.0) * gamma2,
                            -amp * np.log(u) * core * (beta - 1.0), np.ones_like(u)])


def _fit_moffat(stamp):
    """Least-squares circular Moffat + constant; returns a parameter dict or None."""
    from scipy.optimize import least_squares

    h, w = stamp.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    good = np.isfinite(stamp)
    if good.sum() < 10:
        return None
    data = np.where(good, stamp, 0.0)
    bkg0 = float(np.median(data[good]))
    # Start at the brightest pixel near the centre.
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    near = np.hypot(xx - cx, yy - cy) <= min(h, w) / 4.0
    j = np.argmax(np.where(near & good, data, -np.inf))
    y0, x0 = np.unravel_index(j, data.shape)
    amp0 = float(data[y0, x0] - bkg0)
    if not amp0 > 0:
        return None
    beta0 = 3.5
    gamma0 = 2.5 / (2.0 * math.sqrt(2 ** (1 / beta0) - 1))  # FWHM of 2.5 pixels
    start = np.array([x0, y0, amp0, math.log(gamma0), math.log(beta0 - 1), bkg0])
    xg, yg, dg = xx[good], yy[good], data[good]

    def residual(p):
        return _moffat(p, xg, yg) - dg

    def jacobian(p):
        return _moffat(p, xg, yg, jacobian=True)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        try:
            fit = least_squares(residual, start, jac=jacobian, method="lm", x_scale="jac",
                                max_nfev=200)
        except (ValueError, FloatingPointError):  # pragma: no cover - defensive
            return None
    x0, y0, amp, log_gamma, log_beta1, bkg = fit.x
    if not (fit.success and np.all(np.isfinite(fit.x)) and amp > 0
            and -2 < log_gamma < 4 and log_beta1 < 4):
        return None
    gamma, beta = math.exp(log_gamma), 1.0 + math.exp(log_beta1)
    fwhm = 2.0 * gamma * math.sqrt(2 ** (1.0 / beta) - 1.0)
    return {"fwhm": fwhm, "beta": beta, "x_center": x0, "y_center": y0, "peak": amp,
            "background": bkg}


def measure_psf(stamps, *, pixel_scale=SDSS_PIXEL_SCALE):
    """Fit a circular 2-D Moffat profile plus a constant to each stamp.

    The profile is evaluated at pixel centres, so the FWHM is that of the
    effective (pixel-convolved) PSF as sampled.  Use the same function on
    real and simulated stamps to compare them.  The fit is a
    `scipy.optimize.least_squares` Levenberg-Marquardt fit with an analytic
    Jacobian (about a millisecond per 32x32 stamp, much faster than the
    general `astropy.modeling` fitters), started at the brightest pixel
    within a quarter of the stamp side of the centre.

    Parameters
    ----------
    stamps : array-like, shape (N, H, W) or (H, W)
        Single-band stamps with one source near the centre each.
    pixel_scale : float
        Arcsec per pixel, for the FWHM in arcsec.

    Returns
    -------
    fits : `~astropy.table.Table`
        One row per stamp: ``fwhm`` (arcsec), ``beta`` (Moffat index),
        ``x_center``, ``y_center`` (pixels, 0-based), ``peak`` (amplitude above
        the background, stamp units), ``background``, ``peak_snr`` (peak over
        `measure_sky_sigma` of the stamp) and ``success``.  Failed fits have
        NaN values and ``success`` False.
    """
    from astropy.table import Table

    data = np.asarray(stamps, dtype=np.float64)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise InvalidInputError(f"stamps must be (N, H, W) or (H, W), got shape {data.shape}")
    names = ("fwhm", "beta", "x_center", "y_center", "peak", "background")
    out = {name: np.full(len(data), np.nan) for name in names}
    for i, stamp in enumerate(data):
        fit = _fit_moffat(stamp)
        if fit is not None:
            for name in names:
                out[name][i] = fit[name]
    out["fwhm"] *= pixel_scale
    table = Table(out)
    table["fwhm"].unit = "arcsec"
    sigma = measure_sky_sigma(data) if len(data) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["peak_snr"] = table["peak"] / sigma
    table["success"] = np.isfinite(table["fwhm"])
    return table


def _robust_median(values):
    """Median after 3-sigma clipping, its robust scatter, and the count used."""
    from astropy.stats import sigma_clip

    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, 0
    kept = sigma_clip(values, sigma=3.0, maxiters=5, stdfunc="mad_std").compressed()
    scatter = float(np.std(kept)) if kept.size > 1 else np.nan
    return float(np.median(kept)), scatter, int(kept.size)


def _per_band(table, column):
    """A per-band column: 2-D ``column`` (N, 5) or ``column_<b>``; None if absent."""
    from .columns import ColumnFinder

    finder = ColumnFinder(table)
    name = finder.find(column)
    if name is not None:
        values = np.asarray(table[name], dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == len(BANDS):
            return values
    names = [finder.find(f"{column}_{b}") for b in BANDS]
    if all(names):
        return np.column_stack([np.asarray(table[n], dtype=np.float64) for n in names])
    return None


def _sdss_sky_level(frame):
    """Median subtracted sky (nmgy/pixel) of an SDSS frame HDUList, else NaN."""
    try:
        sky = np.asarray(frame[2].data["ALLSKY"], dtype=np.float64)
        calib = np.asarray(frame[1].data, dtype=np.float64)
    except (TypeError, KeyError, IndexError, AttributeError):
        return np.nan
    return float(np.median(sky) * np.median(calib))


def measure_frame_properties(images, stars, *, size=32, flux_column="PSFFLUX",
                             flux_range=(20.0, 2000.0), catalog_fwhm_column="PSF_FWHM",
                             min_peak_snr=20.0, ra_column="ra", dec_column="dec"):
    """Measure sky noise and PSF width per band on real frames.

    Parameters
    ----------
    images : dict
        ``{band: frame}`` for all of ugriz: paths, HDULists, HDUs, NDData or
        ``(data, wcs)`` pairs (see `sourceclf.cutouts.read_frame`).  The
        subtracted sky level is read from SDSS frame files / HDULists (HDUs 1
        and 2) when present.
    stars : `~astropy.table.Table`
        Point sources on the frames with ``ra`` and ``dec`` (case-insensitive),
        e.g. the calibObj photometric stars of the field.
    size : int
        Stamp side in pixels for the PSF fits.
    flux_column : str, optional
        Per-band flux column of ``stars`` (2-D ``(N, 5)`` or
        ``<flux_column>_<b>``) used with ``flux_range`` to pick unsaturated
        stars band by band; ignored when absent.
    flux_range : (float, float)
        Flux range (in ``flux_column``'s units, nanomaggies for SDSS) of the
        stars used in each band.
    catalog_fwhm_column : str, optional
        Per-band catalog PSF width column (2-D or ``<name>_<b>``), reported as
        ``catalog_psf_fwhm`` with the ratio ``psf_scale``; NaN when absent.
    min_peak_snr : float
        Fits whose peak is below this many sky sigmas are not used.
    ra_column, dec_column : str
        Position columns of ``stars``.

    Returns
    -------
    properties : `~astropy.table.Table`
        One row per band: ``band``, ``psf_fwhm`` (arcsec, median of the Moffat
        fits), ``psf_fwhm_std`` (their scatter), ``moffat_beta``, ``n_stars``,
        ``catalog_psf_fwhm``, ``psf_scale``, ``sky_sigma`` (nanomaggies per
        pixel, from the frame's pixels, subsampled to about a million),
        ``sky_level`` and
        ``nmgy_per_electron`` (NaN unless the SDSS sky HDUs are there).
    """
    from astropy.io import fits
    from astropy.table import Table

    from .cutouts import _frame_images, cutouts_from_frames, read_frame

    by_band = _frame_images(images)
    frames, levels = {}, {}
    for band in BANDS:
        frame = by_band[band]
        label = f"frame of band '{band}'"
        if isinstance(frame, (str, bytes)) or hasattr(frame, "__fspath__"):
            try:
                hdul = fits.open(frame, memmap=True)
            except (OSError, ValueError) as exc:
                raise InvalidInputError(f"cannot read {label} ('{frame}') as FITS: "
                                        f"{exc}") from None
            with hdul:
                frames[band] = read_frame(hdul, label=label)
                levels[band] = _sdss_sky_level(hdul)
        else:
            frames[band] = read_frame(frame, label=label)
            levels[band] = _sdss_sky_level(frame) if isinstance(frame, fits.HDUList) else np.nan
    cut = cutouts_from_frames(stars, frames, size, ra_column=ra_column, dec_column=dec_column)
    usable = cut.flags == ""
    fluxes = _per_band(stars, flux_column) if flux_column else None
    catalog = _per_band(stars, catalog_fwhm_column) if catalog_fwhm_column else None

    rows = []
    for k, band in enumerate(BANDS):
        use = usable.copy()
        if fluxes is not None:
            use &= (fluxes[:, k] >= flux_range[0]) & (fluxes[:, k] <= flux_range[1])
        fit = measure_psf(cut.data[use, k])
        ok = np.asarray(fit["success"]) & (np.asarray(fit["peak_snr"]) >= min_peak_snr)
        fwhm, fwhm_std, n_used = _robust_median(np.asarray(fit["fwhm"])[ok])
        beta, _, _ = _robust_median(np.asarray(fit["beta"])[ok])
        cat = np.nan
        if catalog is not None and ok.any():
            cat = float(np.nanmedian(catalog[use, k][ok]))
        # About a million pixels pin the noise down to 0.1%; a regular subsample
        # of the frame is as good as all of it and several times faster.
        frame = frames[band][0]
        step = max(1, int(math.ceil(math.sqrt(frame.size / 1e6))))
        sky_sigma = float(measure_sky_sigma(frame[::step, ::step], mask_radius=0))
        level = levels[band]
        rows.append({"band": band, "psf_fwhm": fwhm, "psf_fwhm_std": fwhm_std,
                     "moffat_beta": beta, "n_stars": n_used, "catalog_psf_fwhm": cat,
                     "psf_scale": fwhm / cat if cat > 0 else np.nan,
                     "sky_sigma": sky_sigma, "sky_level": level,
                     "nmgy_per_electron": sky_sigma ** 2 / level if level > 0 else np.nan})
    table = Table(rows=rows, names=list(rows[0]))
    for name in ("psf_fwhm", "psf_fwhm_std", "catalog_psf_fwhm"):
        table[name].unit = "arcsec"
    return table


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2 ** 31 - 1))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise InvalidInputError(f"random_state must be None, an int or a numpy Generator, "
                                f"got {random_state!r}") from None


def _band_values(value, name, default_key):
    """Per-band numbers from None (defaults), a number, or a {band: number} dict."""
    if value is None:
        return {b: float(SDSS_BAND_DEFAULTS[b][default_key]) for b in BANDS}
    if isinstance(value, dict):
        lower = {str(k).lower(): v for k, v in value.items()}
        missing = [b for b in BANDS if b not in lower]
        if missing:
            raise InvalidInputError(f"{name} lacks band(s) {', '.join(missing)}")
        return {b: float(lower[b]) for b in BANDS}
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number or a {{band: number}} dict, got "
                                f"{value!r}") from None
    return {b: number for b in BANDS}


def _render_columns(table, class_column):
    """Observed magnitudes, deV radii, PSF widths and point-source mask per row."""
    from .columns import ColumnFinder, decode_strings

    finder = ColumnFinder(table)
    n = len(table)
    classes = None
    cls_name = finder.find(class_column) if class_column else None
    if cls_name is not None:
        classes = np.char.upper(decode_strings(table[cls_name]))
    point_class = (np.isin(classes, _POINT_CLASSES) if classes is not None
                   else np.zeros(n, dtype=bool))
    mags, radii, fwhms, ratios, angles, missing = {}, {}, {}, {}, {}, []
    for b in BANDS:
        dered = finder.find(f"dered_{b}")
        ext = finder.find(f"extinction_{b}")
        if dered and ext:
            mags[b] = (finder.values(f"dered_{b}", unit="mag")
                       + finder.values(f"extinction_{b}", unit="mag"))
        elif finder.find(f"modelMag_{b}", b):
            mags[b] = finder.values(f"modelMag_{b}", b, unit="mag")
        elif dered:
            missing.append(f"extinction_{b}")
        else:
            missing += [f"dered_{b}", f"extinction_{b}"]
        if finder.find(f"deVRad_{b}"):
            radii[b] = finder.values(f"deVRad_{b}", unit="arcsec")
        elif not point_class.all():
            missing.append(f"deVRad_{b}")
        if finder.find(f"psffwhm_{b}"):
            fwhms[b] = finder.values(f"psffwhm_{b}", unit="arcsec")
        if finder.find(f"deVAB_{b}"):
            # Axis ratios have no unit; "mag" only makes clean_column take the
            # numbers as they are, sentinels and masks becoming NaN.
            ratios[b] = finder.values(f"deVAB_{b}", unit="mag")
            if finder.find(f"deVPhi_{b}"):
                angles[b] = finder.values(f"deVPhi_{b}", unit="mag")
    if missing:
        raise MissingColumnsError(
            f"render_stamps: table lacks column(s) {', '.join(missing)} (magnitudes may "
            "instead be modelMag_<b> or plain u g r i z; deVRad_<b> is needed unless every "
            "row is a STAR or QSO)")
    return mags, radii, fwhms, ratios, angles, point_class


def _psf_object(kind, fwhm, beta, gsparams):
    import galsim

    if kind == "moffat":
        return galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=gsparams)
    if kind == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm, gsparams=gsparams)
    return galsim.Gaussian(fwhm=fwhm, gsparams=gsparams)


def render_stamps(table, *, size=32, pixel_scale=SDSS_PIXEL_SCALE, random_state=None,
                  noise=True, poisson=True, psf="moffat", psf_scale=None, moffat_beta=None,
                  sky_sigma=None, nmgy_per_electron=None, sersic_n=4.0, max_offset=0.5,
                  class_column="class", progress=None):
    """Render one SDSS-like 5-band stamp per catalog row with GalSim.

    Each row is drawn from its own columns (names matched case-insensitively,
    Quantity columns converted):

    * observed magnitude per band: ``dered_<b> + extinction_<b>``, else
      ``modelMag_<b>``, else ``<b>``; flux in nanomaggies is
      ``10 ** (-0.4 * (mag - 22.5))`` (a missing magnitude draws no source);
    * shape: rows whose class (``class_column``) is STAR or QSO, and rows
      whose ``deVRad_<b>`` is below 0.05 arcsec or missing, are point
      sources; the others are de Vaucouleurs profiles (``sersic_n=4``; other
      values give a Sersic profile) of half-light radius ``deVRad_<b>``
      (capped at the stamp's width), round unless ``deVAB_<b>`` (and
      ``deVPhi_<b>``, degrees) are given.  Without a class column every row
      follows its ``deVRad_<b>``;
    * PSF: a Moffat (or Kolmogorov, or Gaussian) of FWHM ``psf_scale *
      psffwhm_<b>`` (``SDSS_BAND_DEFAULTS[b]['psf_fwhm']`` where the column
      is missing).  It is the effective, pixel-convolved PSF, so profiles are
      sampled at pixel centres (GalSim's ``method='no_pixel'``).

    Sources sit at the stamp centre plus an independent random offset per
    band of up to ``max_offset`` pixels, like stamps cut from SDSS frames
    whose bands are not aligned (with the default 0.5 and an even ``size``,
    the source falls in the same pixel range as in
    `sourceclf.cutouts.cutouts_from_frames` stamps).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog (e.g. from `simulate_catalog`).
    size : int
        Stamp side in pixels.
    pixel_scale : float
        Arcsec per pixel.
    random_state : None, int or `numpy.random.Generator`
        Seed of the offsets and noise; the same seed gives the same stamps.
    noise : bool
        Add noise: Gaussian sky noise of ``sky_sigma`` per band and, with
        ``poisson``, the sources' own photon noise.
    poisson : bool
        Add source photon noise (Gaussian of variance ``flux *
        nmgy_per_electron`` per pixel, see `SDSS_BAND_DEFAULTS`).
    psf : {'moffat', 'kolmogorov', 'gaussian'}
        PSF profile.
    psf_scale : float or dict, optional
        Factor from catalog ``psffwhm_<b>`` to the rendered FWHM (default: the
        per-band ``psf_scale`` of `SDSS_BAND_DEFAULTS`, about 0.9, because
        SDSS's catalog widths are effective widths larger than the core FWHM;
        1.0 renders ``psffwhm_<b>`` as the FWHM).
    moffat_beta : float or dict, optional
        Moffat index (default: per band from `SDSS_BAND_DEFAULTS`).
    sky_sigma : float or dict, optional
        Sky noise in nanomaggies per pixel (default: per band from
        `SDSS_BAND_DEFAULTS`).
    nmgy_per_electron : float or dict, optional
        Flux of one detected electron in nanomaggies, for the photon noise
        (default: per band from `SDSS_BAND_DEFAULTS`).
    sersic_n : float
        Sersic index of galaxies (0.3 to 6.2); 4 is de Vaucouleurs.
    max_offset : float
        Largest random shift of a source from the stamp centre, pixels, per
        axis (0 centres every source).
    class_column : str or None
        Column with STAR / GALAXY / QSO labels (optional).
    progress : bool, optional
        Show a tqdm progress bar over rows (default: when standard error is a
        terminal).

    Returns
    -------
    stamps : `numpy.ndarray`
        float32, shape ``(len(table), 5, size, size)``, nanomaggies per pixel,
        bands in ugriz order.

    Raises
    ------
    MissingColumnsError
        If magnitudes (or, for extended sources, ``deVRad_<b>``) are missing;
        the message lists the columns.
    InvalidInputError
        For bad options.

    Examples
    --------
    >>> from sourceclf.simulate import render_stamps, simulate_catalog
    >>> stamps = render_stamps(simulate_catalog(3, random_state=0), random_state=0)
    >>> stamps.shape, stamps.dtype
    ((3, 5, 32, 32), dtype('float32'))
    """
    import galsim

    from .cutouts import _check_size
    from .progress import progress_bar

    size = _check_size(size)
    if psf not in _PSF_KINDS:
        raise InvalidInputError(f"psf must be one of {', '.join(_PSF_KINDS)}, got {psf!r}")
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise InvalidInputError(f"pixel_scale must be a positive number, got {pixel_scale!r}")
    if not (np.isfinite(max_offset) and max_offset >= 0):
        raise InvalidInputError(f"max_offset must be a number >= 0, got {max_offset!r}")
    scales = _band_values(psf_scale, "psf_scale", "psf_scale")
    betas = _band_values(moffat_beta, "moffat_beta", "moffat_beta")
    sigmas = _band_values(sky_sigma, "sky_sigma", "sky_sigma")
    gains = _band_values(nmgy_per_electron, "nmgy_per_electron", "nmgy_per_electron")
    if not 0.3 <= sersic_n <= 6.2:  # GalSim's range
        raise InvalidInputError(f"sersic_n must be between 0.3 and 6.2, got {sersic_n!r}")
    mags, radii, fwhms, ratios, angles, point_class = _render_columns(table, class_column)
    rng = _rng(random_state)

    n = len(table)
    stamps = np.zeros((n, len(BANDS), size, size), dtype=np.float32)
    offsets = rng.uniform(-max_offset, max_offset, size=(n, len(BANDS), 2))
    max_radius = size * pixel_scale
    gsparams = galsim.GSParams(maximum_fft_size=16384)
    with progress_bar(total=n, enabled=progress, desc="render", unit="src") as bar:
        for i in range(n):
            for k, b in enumerate(BANDS):
                flux = float(nanomaggies(mags[b][i]))
                if not np.isfinite(flux) or flux <= 0:
                    continue
                fwhm = fwhms[b][i] * scales[b] if b in fwhms else np.nan
                if not (np.isfinite(fwhm) and fwhm > 0):
                    fwhm = SDSS_BAND_DEFAULTS[b]["psf_fwhm"]
                obj = _psf_object(psf, fwhm, betas[b], gsparams)
                radius = radii[b][i] if b in radii else np.nan
                if not point_class[i] and np.isfinite(radius) and radius >= _POINT_RADIUS:
                    radius = min(float(radius), max_radius)
                    if sersic_n == 4.0:
                        gal = galsim.DeVaucouleurs(half_light_radius=radius, gsparams=gsparams)
                    else:
                        gal = galsim.Sersic(sersic_n, half_light_radius=radius,
                                            gsparams=gsparams)
                    q = ratios[b][i] if b in ratios else np.nan
                    if np.isfinite(q) and 0.05 <= q < 1.0:
                        phi = angles[b][i] if b in angles else 0.0
                        gal = gal.shear(q=float(q), beta=float(np.nan_to_num(phi))
                                        * galsim.degrees)
                    obj = galsim.Convolve(gal, obj, gsparams=gsparams)
                image = galsim.Image(stamps[i, k], scale=pixel_scale)
                obj.withFlux(flux).drawImage(image=image, method="no_pixel",
                                             offset=tuple(offsets[i, k]))
            bar.update(1)

    if noise:
        for k, b in enumerate(BANDS):
            var = np.full((n, size, size), sigmas[b] ** 2, dtype=np.float32)
            if poisson:
                var += np.clip(stamps[:, k], 0, None) * gains[b]
            stamps[:, k] += np.sqrt(var) * rng.standard_normal(var.shape, dtype=np.float32)
    return stamps


# ---------------------------------------------------------------------------
# Catalogs
# ---------------------------------------------------------------------------

# Stellar locus nodes (u-g, g-r, r-i, i-z): blue horizontal branch / A, F, G, K0,
# K5, M0, M3, M5 (after Covey et al. 2007, AJ 134, 2398, rounded).
_LOCUS = np.array([
    [1.10, -0.20, -0.15, -0.10],
    [1.00, 0.25, 0.08, 0.02],
    [1.35, 0.45, 0.15, 0.05],
    [1.80, 0.65, 0.23, 0.10],
    [2.40, 1.05, 0.40, 0.22],
    [2.55, 1.35, 0.70, 0.38],
    [2.60, 1.45, 1.20, 0.62],
    [2.70, 1.55, 1.90, 0.95],
])
# Where faint high-latitude stars lie along the locus: mostly near the halo
# turn-off (F/G) and among M dwarfs.
_LOCUS_MIX = ((0.45, 1.4, 0.5), (0.20, 3.5, 0.6), (0.35, 5.6, 0.7))  # weight, mean, sd
# Galaxies: (weight, mean colours, sd colours), red and blue populations at z ~ 0.1-0.5.
_GALAXY_MIX = (
    (0.6, (2.0, 1.50, 0.80, 0.45), (0.5, 0.30, 0.20, 0.15)),
    (0.4, (1.0, 0.60, 0.35, 0.20), (0.4, 0.30, 0.20, 0.20)),
)
_QSO_COLOURS = ((0.2, 0.2, 0.15, 0.10), (0.2, 0.2, 0.15, 0.15))  # mean, sd
# Median SDSS catalog PSF width in each band relative to r (faint compact DR16 set).
_SEEING_RATIO = {"u": 1.19, "g": 1.09, "r": 1.0, "i": 0.94, "z": 0.96}
_MARGNET = [f"{kind}_{b}" for b in BANDS for kind in ("dered", "deVRad", "psffwhm",
                                                      "extinction")]


def _colours_to_mags(r, colours):
    """ugriz from r and the four colours (u-g, g-r, r-i, i-z)."""
    ug, gr, ri, iz = colours.T
    g = r + gr
    return {"u": g + ug, "g": g, "r": r, "i": r - ri, "z": r - ri - iz}


def _parametric(cls, n, rng, r_range):
    """dered mags and deV radii (arcsec) for ``n`` sources of one class."""
    r = rng.uniform(*r_range, n)
    if cls == "STAR":
        which = rng.choice(len(_LOCUS_MIX), size=n, p=[m[0] for m in _LOCUS_MIX])
        t = np.clip(rng.normal(np.take([m[1] for m in _LOCUS_MIX], which),
                               np.take([m[2] for m in _LOCUS_MIX], which)),
                    0, len(_LOCUS) - 1)
        nodes = np.arange(len(_LOCUS))
        colours = np.column_stack([np.interp(t, nodes, _LOCUS[:, j]) for j in range(4)])
        colours += rng.normal(0, [0.12, 0.05, 0.05, 0.05], size=(n, 4))
    elif cls == "GALAXY":
        which = rng.choice(len(_GALAXY_MIX), size=n, p=[m[0] for m in _GALAXY_MIX])
        mean = np.array([m[1] for m in _GALAXY_MIX])[which]
        sd = np.array([m[2] for m in _GALAXY_MIX])[which]
        colours = rng.normal(mean, sd)
    else:  # QSO
        colours = rng.normal(*_QSO_COLOURS, size=(n, 4))
    mags = _colours_to_mags(r, colours)
    if cls == "GALAXY":
        # Half-light radii: log-normal around 0.5", fainter galaxies smaller.
        base = np.exp(rng.normal(np.log(0.5) - 0.15 * (r - 20.0), 0.55))
    else:
        # Point sources: SDSS's deV fit gives a tiny radius, often ~0.
        base = np.where(rng.random(n) < 0.4, rng.uniform(0, 0.003, n),
                        np.exp(rng.normal(np.log(0.09), 0.7, n)))
    base = np.clip(base, 0.0, 10.0)
    radii = {b: np.clip(base * np.exp(rng.normal(0, 0.15, n)), 0, 10.0) for b in BANDS}
    return mags, radii


def _resample(table, cls, n, rng):
    """dered mags, deV radii, PSF widths and extinctions resampled from ``table``."""
    from .columns import ColumnFinder, decode_strings

    finder = ColumnFinder(table)
    cls_name = finder.find("class")
    if cls_name is None:
        raise MissingColumnsError("from_table lacks column class")
    labels = np.char.upper(decode_strings(table[cls_name]))
    rows = np.flatnonzero(labels == cls)
    if rows.size == 0:
        return None
    missing = [c for c in _MARGNET if finder.find(c) is None]
    if missing:
        raise MissingColumnsError(f"from_table lacks column(s) {', '.join(missing)}")
    pick = rng.choice(rows, size=n, replace=True)
    out = {}
    for name in _MARGNET:
        unit = "mag" if name.startswith(("dered", "extinction")) else "arcsec"
        out[name] = finder.values(name, unit=unit)[pick]
    return out


def _qso_colours(table, n, rng):
    """Quasar colours resampled from a table with ``class`` and ugriz."""
    from .columns import ColumnFinder, decode_strings

    finder = ColumnFinder(table)
    names = [finder.find(c) for c in ("class",) + BANDS]
    missing = [c for c, got in zip(("class",) + BANDS, names) if got is None]
    if missing:
        raise MissingColumnsError(f"qso_table lacks column(s) {', '.join(missing)}")
    labels = np.char.upper(decode_strings(table[names[0]]))
    mags = np.column_stack([finder.values(b, unit="mag") for b in BANDS])
    good = np.flatnonzero((labels == "QSO") & np.isfinite(mags).all(axis=1))
    if good.size == 0:
        raise InvalidInputError("qso_table has no QSO rows with finite u g r i z")
    pick = rng.choice(good, size=n, replace=True)
    return -np.diff(mags[pick], axis=1)  # u-g, g-r, r-i, i-z


def _as_table(value, name):
    """None, a Table, or a path read as a Table."""
    from astropy.table import Table

    if value is None or isinstance(value, Table):
        return value
    try:
        return Table.read(value)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"cannot read {name} '{value}' as a table: "
                                f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def simulate_catalog(n, *, classes=("GALAXY", "QSO", "STAR"), random_state=None,
                     from_table=None, qso_table=None, r_range=(17.0, 22.5)):
    """A catalog of stars, galaxies and quasars with MargNet's columns.

    Parameters
    ----------
    n : int
        Number of rows, shared as evenly as possible between ``classes``
        (rows are shuffled).
    classes : sequence of str
        Among ``'GALAXY'``, ``'QSO'``, ``'STAR'``.
    random_state : None, int or `numpy.random.Generator`
        Seed; the same seed gives the same catalog.
    from_table : `~astropy.table.Table` or path, optional
        A real catalog with ``class`` and MargNet's 20 per-band columns (e.g.
        ``sdss_dr16_faint_compact_sg.fits``): its rows of each requested class
        are resampled (with replacement) instead of the parametric model.
        Classes it lacks (e.g. QSO) fall back to the parametric model.
    qso_table : `~astropy.table.Table` or path, optional
        A table with ``class`` and ``u g r i z`` (e.g.
        ``sdss_dr14_spectro_ugriz.fits``) whose QSO rows' colours are
        resampled for parametric quasars.
    r_range : (float, float)
        Range of the dereddened r magnitude of parametric sources (uniform).
        Quasars are drawn in the same range, cut at 22.

    Returns
    -------
    table : `~astropy.table.Table`
        ``ra``, ``dec`` (deg), ``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_<b>`` for b in ugriz, observed colours ``u_g g_r r_i i_z``
        (of ``dered + extinction``) and ``class``.

    Notes
    -----
    The parametric model: stars along an SDSS stellar locus (Covey et al.
    2007) with most at the halo turn-off and among M dwarfs; galaxies as red
    and blue populations with log-normal half-light radii around 0.5 arcsec
    (smaller when fainter); quasars as point sources with u-g = 0.2 +- 0.2,
    g-r = 0.2 +- 0.2, r-i = 0.15 +- 0.15, i-z = 0.1 +- 0.15 (or resampled from
    ``qso_table``); PSF widths of one seeing value per row (log-normal around
    1.12 arcsec in r) scaled per band like SDSS's; extinction log-normal around
    0.07 mag in r scaled with `EXTINCTION_RATIO`.  Good enough for tests and
    demonstrations, not for science.

    Examples
    --------
    >>> from sourceclf.simulate import simulate_catalog
    >>> cat = simulate_catalog(6, random_state=1)
    >>> sorted(set(cat["class"].tolist()))
    ['GALAXY', 'QSO', 'STAR']
    """
    from astropy import units as u
    from astropy.table import Table

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInputError(f"n must be a non-negative integer, got {n!r}")
    classes = [str(c).upper() for c in ([classes] if isinstance(classes, str) else classes)]
    unknown = sorted(set(classes) - {"GALAXY", "QSO", "STAR"})
    if not classes or unknown:
        raise InvalidInputError(f"classes must be among GALAXY, QSO, STAR, got "
                                f"{unknown or classes}")
    from_table = _as_table(from_table, "from_table")
    qso_table = _as_table(qso_table, "qso_table")
    rng = _rng(random_state)
    counts = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]

    blocks = []
    for cls, k in zip(classes, counts):
        cols = _resample(from_table, cls, k, rng) if from_table is not None else None
        if cols is None:
            cols = {}
            if cls == "QSO" and qso_table is not None:
                colours = _qso_colours(qso_table, k, rng)
                mags = _colours_to_mags(rng.uniform(r_range[0], min(r_range[1], 22.0), k),
                                        colours)
                _, radii = _parametric("QSO", k, rng, r_range)
            else:
                rr = (r_range[0], min(r_range[1], 22.0)) if cls == "QSO" else r_range
                mags, radii = _parametric(cls, k, rng, rr)
            seeing = np.clip(np.exp(rng.normal(np.log(1.12), 0.13, k)), 0.7, 2.5)
            ext_r = np.clip(np.exp(rng.normal(np.log(0.07), 0.6, k)), 0.005, 1.0)
            for b in BANDS:
                cols[f"psffwhm_{b}"] = seeing * _SEEING_RATIO[b] * np.exp(
                    rng.normal(0, 0.03, k))
                cols[f"extinction_{b}"] = ext_r * EXTINCTION_RATIO[b]
                cols[f"dered_{b}"] = mags[b]  # the model's magnitudes are dereddened
                cols[f"deVRad_{b}"] = radii[b]
        cols["class"] = np.full(k, cls, dtype="U6")
        blocks.append(cols)
    order = rng.permutation(n)

    t = Table()
    ra0, dec0 = 150.0, 2.0
    t["ra"] = (ra0 + rng.uniform(0, 1, n) / np.cos(np.radians(dec0 + 0.5))) * u.deg
    t["dec"] = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(dec0)),
                                                np.sin(np.radians(dec0 + 1)), n))) * u.deg
    for b in BANDS:
        for kind, unit in (("dered", u.mag), ("deVRad", u.arcsec), ("psffwhm", u.arcsec),
                           ("extinction", u.mag)):
            name = f"{kind}_{b}"
            t[name] = np.concatenate([blk[name] for blk in blocks])[order] * unit
    observed = {b: np.asarray(t[f"dered_{b}"]) + np.asarray(t[f"extinction_{b}"])
                for b in BANDS}
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        t[f"{a}_{b}"] = (observed[a] - observed[b]) * u.mag
    t["class"] = np.concatenate([blk["class"] for blk in blocks])[order]
    t.meta["ORIGIN"] = "sourceclf.simulate.simulate_catalog (synthetic)"
    return t
