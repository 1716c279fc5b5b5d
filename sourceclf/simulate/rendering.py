"""SDSS-like 5-band stamps of a catalog's rows, drawn with GalSim."""

import numpy as np

from ..bands import BANDS, SDSS_PIXEL_SCALE
from ..columns import ColumnFinder, decode_strings
from ..exceptions import InvalidInputError, MissingColumnsError
from ..progress import progress_bar
from ..utils._validation import check_positive_int
from ..utils._validation import check_random_state
from .sdss_imaging import SDSS_BAND_DEFAULTS, nanomaggies

__all__ = ["render_stamps"]

# de Vaucouleurs radii below this (arcsec) are drawn as point sources.
_POINT_RADIUS = 0.05
_POINT_CLASSES = ("STAR", "QSO")
_PSF_KINDS = ("moffat", "kolmogorov", "gaussian")


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


def _psf_object(kind, fwhm, beta, gsparams, wing=None):
    import galsim

    if kind == "moffat":
        core = galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=gsparams)
        if not wing or wing[0] <= 0:
            return core
        fraction, scale, wing_beta = wing
        halo = galsim.Moffat(beta=wing_beta, fwhm=scale * fwhm, gsparams=gsparams)
        return galsim.Add([core.withFlux(1.0 - fraction), halo.withFlux(fraction)],
                          gsparams=gsparams)
    if kind == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm, gsparams=gsparams)
    return galsim.Gaussian(fwhm=fwhm, gsparams=gsparams)


def _row_psf(kind, fwhm, band, beta, gsparams, wing, ellipticity, angle):
    """One row's PSF in one band (the band's default FWHM where the row has none)."""
    import galsim

    if not (np.isfinite(fwhm) and fwhm > 0):
        fwhm = SDSS_BAND_DEFAULTS[band]["psf_fwhm"]
    obj = _psf_object(kind, fwhm, beta, gsparams, wing)
    if ellipticity > 0:
        obj = obj.shear(e=float(ellipticity), beta=float(angle) * galsim.degrees)
    return obj


def render_stamps(table, *, size=32, pixel_scale=SDSS_PIXEL_SCALE, random_state=None,
                  noise=True, poisson=True, psf="moffat", psf_scale=None, moffat_beta=None,
                  sky_sigma=None, nmgy_per_electron=None, sersic_n=4.0, max_offset=0.5,
                  psf_ellipticity=0.0, psf_angle=0.0, psf_wing=None, class_column="class",
                  offsets=None, progress=None):
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
    psf : {'moffat', 'kolmogorov', 'gaussian'} or dict
        PSF profile, or the PSF itself per band: ``{band: galsim.GSObject}``
        (for instance an empirical PSF as a ``galsim.InterpolatedImage``),
        drawn as it is (``psf_scale``, ``moffat_beta``, ``psf_ellipticity``
        and ``psf_wing`` then unused).
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
    psf_ellipticity : float
        Distortion ``(1 - q**2) / (1 + q**2)`` of the PSF (GalSim's ``e``; 0:
        round; axis ratio ``q``), the same in every band, like the PSF of one
        field.
    psf_angle : float
        Position angle of the PSF's major axis, degrees.
    psf_wing : tuple, optional
        ``(fraction, scale, beta)``: a share ``fraction`` of the light of a
        Moffat PSF goes into a wide Moffat of ``scale`` times its FWHM and
        index ``beta`` (real SDSS PSFs have such power-law wings: on field
        4510-4-0030 about 10% of the light in a Moffat of index 2.5 and
        three times the core's width).  The FWHM is then that of the core.
    class_column : str or None
        Column with STAR / GALAXY / QSO labels (optional).
    offsets : array-like, optional
        Shape ``(len(table), 5, 2)``: each source's shift from the stamp
        centre in each band, ``(x, y)`` pixels, instead of random ones (for
        instance to place a source at its position in each band's frame;
        ``max_offset`` is then unused).
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

    size = check_positive_int(size, "size")
    given = psf if isinstance(psf, dict) else None
    if given is not None:
        missing = [b for b in BANDS if not isinstance(given.get(b), galsim.GSObject)]
        if missing:
            raise InvalidInputError(f"psf lacks a GalSim object for band(s) {', '.join(missing)}")
    elif psf not in _PSF_KINDS:
        raise InvalidInputError(f"psf must be one of {', '.join(_PSF_KINDS)} or a "
                                f"{{band: galsim.GSObject}} dict, got {psf!r}")
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise InvalidInputError(f"pixel_scale must be a positive number, got {pixel_scale!r}")
    if not (np.isfinite(max_offset) and max_offset >= 0):
        raise InvalidInputError(f"max_offset must be a number >= 0, got {max_offset!r}")
    scales = _band_values(psf_scale, "psf_scale", "psf_scale")
    betas = _band_values(moffat_beta, "moffat_beta", "moffat_beta")
    sigmas = _band_values(sky_sigma, "sky_sigma", "sky_sigma")
    gains = _band_values(nmgy_per_electron, "nmgy_per_electron", "nmgy_per_electron")
    if not (np.isfinite(psf_ellipticity) and 0 <= psf_ellipticity < 1):
        raise InvalidInputError(f"psf_ellipticity must be in [0, 1), got {psf_ellipticity!r}")
    if psf_wing is not None:
        try:
            wing = tuple(float(v) for v in psf_wing)
        except (TypeError, ValueError):
            wing = ()
        if len(wing) != 3 or not (0 <= wing[0] < 1 and wing[1] > 0 and wing[2] > 1):
            raise InvalidInputError("psf_wing must be (fraction in [0, 1), scale > 0, "
                                    f"beta > 1), got {psf_wing!r}")
        psf_wing = wing
    if not 0.3 <= sersic_n <= 6.2:  # GalSim's range
        raise InvalidInputError(f"sersic_n must be between 0.3 and 6.2, got {sersic_n!r}")
    mags, radii, fwhms, ratios, angles, point_class = _render_columns(table, class_column)
    rng = check_random_state(random_state)

    n = len(table)
    stamps = np.zeros((n, len(BANDS), size, size), dtype=np.float32)
    if offsets is None:
        offsets = rng.uniform(-max_offset, max_offset, size=(n, len(BANDS), 2))
    else:
        offsets = np.asarray(offsets, dtype=float)
        if offsets.shape != (n, len(BANDS), 2) or not np.isfinite(offsets).all():
            raise InvalidInputError(f"offsets must be finite numbers of shape ({n}, "
                                    f"{len(BANDS)}, 2), got shape {offsets.shape}")
    max_radius = size * pixel_scale
    gsparams = galsim.GSParams(maximum_fft_size=16384)
    with progress_bar(total=n, enabled=progress, desc="render", unit="src") as bar:
        for i in range(n):
            for k, b in enumerate(BANDS):
                flux = float(nanomaggies(mags[b][i]))
                if not np.isfinite(flux) or flux <= 0:
                    continue
                obj = given[b] if given is not None else _row_psf(
                    psf, fwhms[b][i] * scales[b] if b in fwhms else np.nan, b, betas[b],
                    gsparams, psf_wing, psf_ellipticity, psf_angle)
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
