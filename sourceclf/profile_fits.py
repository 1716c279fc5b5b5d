"""De Vaucouleurs profiles seen through a Moffat PSF, and stamps fitted with them.

The fits behind MargNet's catalog columns (`sourceclf.photometry`), as SDSS
fits its catalog:

1. `profile_templates`: centred, unit-flux de Vaucouleurs profiles of
   half-light radii `PROFILE_RADII` (0: the PSF itself) convolved with the
   band's Moffat PSF, drawn by GalSim and kept between calls
   (`TEMPLATE_CACHE_BYTES`), so that the chunks of a catalog fitted through
   one PSF draw them once;
2. `centre_stamps`: each stamp shifted so that its source sits at the
   centre (the best of `SUBPIXEL_SHIFTS` for a PSF matched filter, then a
   Fourier shift);
3. `fit_profiles`: the least-squares flux of every template and the best
   one per stamp, for a stamp that holds its source alone (`fit_band`
   centres and fits simulated or deblended stamps); `fit_with_neighbours`
   fits each template together with a PSF at every neighbour and a constant
   sky (`sourceclf.neighbour_fits`), for stamps cut from crowded frames.
"""

import numpy as np

from .bands import SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError
from .neighbour_fits import blendedness, without_neighbours
from .psf import moffat_profile
from .utils._cache import array_cache

__all__ = ["PROFILE_RADII", "SUBPIXEL_SHIFTS", "TEMPLATE_CACHE_BYTES", "profile_templates",
           "centre_stamps", "fit_profiles", "fit_with_neighbours", "fit_band"]


#: de Vaucouleurs half-light radii (arcsec) of the profile fits; 0 is a point source.
PROFILE_RADII = (0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.75, 1.0, 1.35, 1.8, 2.4, 3.2, 4.3)

#: Sub-pixel offsets tried per axis when centring a source (pixels).
SUBPIXEL_SHIFTS = (-0.5, -0.25, 0.0, 0.25, 0.5)


def profile_templates(fwhm, beta, *, size=32, radii=PROFILE_RADII,
                      pixel_scale=SDSS_PIXEL_SCALE):
    """Centred, unit-flux de Vaucouleurs profiles seen through a Moffat PSF.

    Parameters
    ----------
    fwhm : float
        FWHM of the PSF, arcsec.
    beta : float
        Its Moffat index.
    size : int
        Stamp side, pixels.
    radii : sequence of float
        Half-light radii, arcsec (0: the PSF alone).
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    templates : `numpy.ndarray`, shape ``(len(radii), size * size)``
        Each profile as drawn on the stamp (the light beyond it is lost, so
        a fitted flux is the source's total).  Drawn once per PSF, size,
        radii and scale: the profiles last drawn (up to `TEMPLATE_CACHE_BYTES`)
        are kept, so the chunks of a catalog, or the models of one check,
        fitted through the same PSF do not draw them again.
    """
    return _drawn_templates(float(fwhm), float(beta), int(size),
                            tuple(float(r) for r in radii), float(pixel_scale)).copy()


#: Bytes of `profile_templates` kept between calls (585 PSFs' templates on
#: 32-pixel stamps, 36 on 128-pixel ones).
TEMPLATE_CACHE_BYTES = 64 * 2 ** 20


@array_cache(TEMPLATE_CACHE_BYTES)
def _drawn_templates(fwhm, beta, size, radii, pixel_scale):
    """`profile_templates`, read-only and kept (`sourceclf.utils._cache.array_cache`)."""
    try:
        import galsim
    except ImportError:
        raise InvalidInputError("the profile fits need GalSim: "
                                "pip install 'sourceclf[images]'") from None

    gsparams = galsim.GSParams(maximum_fft_size=16384)
    psf = galsim.Moffat(beta=beta, fwhm=fwhm, gsparams=gsparams)
    out = np.empty((len(radii), size * size))
    for k, radius in enumerate(radii):
        obj = psf if radius <= 0 else galsim.Convolve(
            galsim.DeVaucouleurs(half_light_radius=radius, gsparams=gsparams), psf,
            gsparams=gsparams)
        image = obj.drawImage(nx=size, ny=size, scale=pixel_scale, method="no_pixel")
        out[k] = image.array.ravel()
    return out


def centre_stamps(images, fwhm_pix, beta):
    """Stamps of one band shifted so that their source sits at the stamp centre.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Background-subtracted stamps of one band.
    fwhm_pix, beta : float
        Their Moffat PSF: FWHM in pixels and index.

    Returns
    -------
    centred : `numpy.ndarray`, shape (n, size, size)
        Each stamp Fourier-shifted by the sub-pixel offset (`SUBPIXEL_SHIFTS`)
        at which a PSF matched filter gives it the highest signal.
    """
    from scipy.ndimage import fourier_shift

    images = np.asarray(images, dtype=np.float64)
    n, size, _ = images.shape
    yy, xx = np.mgrid[:size, :size].astype(float) - (size - 1) / 2.0
    shifts = [(dx, dy) for dy in SUBPIXEL_SHIFTS for dx in SUBPIXEL_SHIFTS]
    psf = np.stack([moffat_profile(xx - dx, yy - dy, fwhm_pix, beta).ravel()
                    for dx, dy in shifts])
    best = np.argmax(images.reshape(n, -1) @ psf.T / np.sqrt((psf * psf).sum(axis=1)), axis=1)
    centred = np.empty_like(images)
    for i in range(n):
        dx, dy = shifts[best[i]]
        if dx == 0 and dy == 0:
            centred[i] = images[i]
        else:
            centred[i] = np.fft.ifft2(fourier_shift(np.fft.fft2(images[i]), (-dy, -dx))).real
    return centred


def fit_profiles(images, templates):
    """Least-squares flux of every template, and the best template, per stamp.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Centred stamps (`centre_stamps`).
    templates : array-like, shape (k, size * size)
        `profile_templates`.

    Returns
    -------
    flux : `numpy.ndarray`, shape (n, k)
        Fitted flux of each template.
    best : `numpy.ndarray` of int, shape (n,)
        The template of least squares among those of positive flux (0, the
        point source, for a stamp without any).
    """
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    templates = np.asarray(templates, dtype=np.float64)
    dots = flat @ templates.T
    norms = (templates * templates).sum(axis=1)
    # Residual sum of squares = |I|^2 - dots^2 / norms: the best fit has the largest
    # dots^2 / norms among the templates of positive flux.
    gain = np.where(dots > 0, dots ** 2 / norms, -np.inf)
    best = np.where(np.isfinite(gain).any(axis=1), np.argmax(gain, axis=1), 0)
    return dots / norms, best


def fit_with_neighbours(images, templates, fwhm_pix, beta, sky_sigma):
    """`fit_profiles` of stamps that keep their neighbours, each fitted with them.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Centred stamps (`centre_stamps`), with their neighbours.
    templates : array-like, shape (k, size * size)
        `profile_templates`; the first is the point source.
    fwhm_pix, beta : float
        The band's Moffat PSF: FWHM in pixels and index.
    sky_sigma : float
        Sky noise per pixel.

    Returns
    -------
    flux : `numpy.ndarray`, shape (n, k)
        Fitted flux of each template, fitted together with a constant sky
        and a PSF at each neighbour (`sourceclf.neighbour_fits`).
    best : `numpy.ndarray` of int, shape (n,)
        As `fit_profiles` chooses it.
    n_neighbours : `numpy.ndarray` of int, shape (n,)
        The neighbours fitted.
    blendedness : `numpy.ndarray`, shape (n,)
        The share of the PSF-weighted light at the source that the
        neighbours' fits put there (`sourceclf.neighbour_fits.blendedness`).
    """
    images = np.asarray(images, dtype=np.float64)
    n = len(images)
    flux = np.empty((n, len(templates)))
    best = np.zeros(n, dtype=int)
    count = np.zeros(n, dtype=int)
    blend = np.zeros(n)
    point = np.asarray(templates[0], dtype=np.float64)
    projected = without_neighbours(images, templates, fwhm_pix, beta, sky_sigma)
    for i, (image, shapes, neighbours) in enumerate(projected):
        (flux[i],), (best[i],) = fit_profiles(image[None], shapes)
        count[i] = len(neighbours)
        blend[i] = blendedness(images[i], point, neighbours, flux[i, 0])
    return flux, best, count, blend


def fit_band(images, fwhm, beta):
    """Centre (`centre_stamps`) and fit (`fit_profiles`) deblended stamps of one band.

    Each stamp holds its source alone (`~sourceclf.photometry.deblend_frame`'s pixels, or a
    simulated source without neighbours), as the training columns of the
    shipped models were measured; `~sourceclf.photometry.measure_columns` fits stamps that keep
    their neighbours with `fit_with_neighbours` instead.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Background-subtracted stamps.
    fwhm, beta : float
        The PSF: Moffat FWHM (arcsec) and index.

    Returns
    -------
    flux : `numpy.ndarray`, shape (n, len(PROFILE_RADII))
    best : `numpy.ndarray` of int, shape (n,)
    """
    images = np.asarray(images, dtype=np.float64)
    templates = profile_templates(fwhm, beta, size=images.shape[-1])
    return fit_profiles(centre_stamps(images, fwhm / SDSS_PIXEL_SCALE, beta), templates)
