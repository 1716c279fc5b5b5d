"""De Vaucouleurs profiles seen through a Moffat PSF, and stamps fitted with them.

The fits behind MargNet's catalog columns (`sourceclf.photometry`), as SDSS
fits its catalog:

1. `profile_templates`: centred, unit-flux de Vaucouleurs profiles of
   half-light radii `PROFILE_RADII` (0: the PSF itself) convolved with the
   band's Moffat PSF, drawn by GalSim and kept between calls
   (`TEMPLATE_CACHE_BYTES`), so that the chunks of a catalog fitted through
   one PSF draw them once;
2. `subpixel_offsets`: where each stamp's source sits (the best of
   `SUBPIXEL_SHIFTS` per axis for a PSF matched filter), and `templates_at`:
   the templates Fourier-shifted there.  The stamps themselves are not moved
   (`centre_stamps` would move them instead, with the same fits on a stamp
   that holds its source alone): a Fourier shift treats a stamp as periodic,
   and a bright neighbour cut by a frame stamp's edge would wrap round and
   ring across it;
3. `fit_profiles`: the least-squares flux of every template and the best
   one per stamp, for a stamp that holds its source alone (`fit_band`
   fits simulated or deblended stamps so); `fit_with_neighbours`
   fits each template together with a PSF at every neighbour and a constant
   sky (`sourceclf.neighbour_fits`), for stamps cut from crowded frames.
   A bright neighbour's wings pull step 2's matched filter off the source,
   and a point-source template put off the source leaves it residuals that
   fit as an extended profile: the offset is found again on the stamp less
   its neighbours' fitted light, and the stamp fitted again from there
   (at most `SOURCE_PASSES` fits).
"""

import numpy as np

from .bands import SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError
from .neighbour_fits import blendedness, without_neighbours
from .psf import moffat_profile
from .unmodelled_light import unmodelled_light
from .utils._cache import array_cache

__all__ = ["PROFILE_RADII", "SUBPIXEL_SHIFTS", "SOURCE_PASSES", "TEMPLATE_CACHE_BYTES",
           "profile_templates", "subpixel_offsets", "centre_stamps", "templates_at", "fit_profiles",
           "fit_with_neighbours", "fit_band"]


#: de Vaucouleurs half-light radii (arcsec) of the profile fits; 0 is a point source.
PROFILE_RADII = (0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.75, 1.0, 1.35, 1.8, 2.4, 3.2, 4.3)

#: Sub-pixel offsets tried per axis when centring a source (pixels).
SUBPIXEL_SHIFTS = (-0.5, -0.25, 0.0, 0.25, 0.5)

#: Most fits of a stamp with neighbours (`fit_with_neighbours`): after each, the
#: source's offset is found again on the stamp less its neighbours' fitted light.
SOURCE_PASSES = 3


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


def subpixel_offsets(images, fwhm_pix, beta):
    """Where each stamp's source sits, to a quarter pixel, relative to the stamp centre.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Background-subtracted stamps of one band, each source within about
        half a pixel of the centre.
    fwhm_pix, beta : float
        Their Moffat PSF: FWHM in pixels and index.

    Returns
    -------
    offsets : `numpy.ndarray`, shape (n, 2)
        x, y (pixels) of the `SUBPIXEL_SHIFTS` at which a PSF matched filter
        gives each stamp the highest signal.
    """
    images = np.asarray(images, dtype=np.float64)
    n, size, _ = images.shape
    yy, xx = np.mgrid[:size, :size].astype(float) - (size - 1) / 2.0
    shifts = np.array([(dx, dy) for dy in SUBPIXEL_SHIFTS for dx in SUBPIXEL_SHIFTS])
    psf = np.stack([moffat_profile(xx - dx, yy - dy, fwhm_pix, beta).ravel()
                    for dx, dy in shifts])
    best = np.argmax(images.reshape(n, -1) @ psf.T / np.sqrt((psf * psf).sum(axis=1)), axis=1)
    return shifts[best]


def centre_stamps(images, fwhm_pix, beta):
    """Stamps of one band shifted so that their source sits at the stamp centre.

    A Fourier shift treats a stamp as periodic: a bright source cut by one
    edge wraps round to the opposite edge and rings across the stamp.  The
    fits (`fit_band`, `fit_with_neighbours`) therefore leave the stamps as
    they are and move the templates instead (`templates_at`); on a stamp
    without such a source both give the same fit.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Background-subtracted stamps of one band.
    fwhm_pix, beta : float
        Their Moffat PSF: FWHM in pixels and index.

    Returns
    -------
    centred : `numpy.ndarray`, shape (n, size, size)
        Each stamp Fourier-shifted by its `subpixel_offsets`.
    """
    images = np.asarray(images, dtype=np.float64)
    centred = images.copy()
    for dx, dy, rows in _offset_groups(images, fwhm_pix, beta):
        centred[rows] = _fourier_moved(images[rows], -dx, -dy)
    return centred


def templates_at(templates, dx, dy):
    """Profile templates moved to a source at ``(dx, dy)`` pixels from the stamp centre.

    Parameters
    ----------
    templates : array-like, shape (k, size * size)
        Centred templates (`profile_templates`) of square stamps.
    dx, dy : float
        The source's offset (`subpixel_offsets`), pixels.

    Returns
    -------
    `numpy.ndarray`, shape (k, size * size)
        Each template Fourier-shifted by the offset: fitting them to a stamp
        gives the fluxes and best template that fitting the centred ones to
        the stamp moved by ``-(dx, dy)`` (`centre_stamps`) gives, the shift
        being unitary, without moving the stamp's own light.  A centred
        template is faint at the stamp's edges, so its shift does not ring.
    """
    templates = np.asarray(templates, dtype=np.float64)
    k, pixels = templates.shape
    size = int(round(np.sqrt(pixels)))
    return _fourier_moved(templates.reshape(k, size, size), dx, dy).reshape(k, pixels)


def _fourier_moved(images, dx, dy):
    """A stack of images, shape (n, size, size), each Fourier-shifted by ``(dx, dy)``
    pixels (periodic); returned as given for no shift."""
    from scipy.ndimage import fourier_shift

    if dx == 0 and dy == 0:
        return images
    return np.fft.ifft2(fourier_shift(np.fft.fft2(images), (0.0, dy, dx))).real


def _offset_groups(images, fwhm_pix, beta):
    """``(dx, dy, rows)`` of each sub-pixel offset (`subpixel_offsets`) that stamps have."""
    return _groups(subpixel_offsets(images, fwhm_pix, beta))


def _groups(offsets):
    """``(dx, dy, rows)`` of each distinct row of ``offsets``, shape (n, 2)."""
    unique, which = np.unique(offsets, axis=0, return_inverse=True)
    for j, (dx, dy) in enumerate(unique):
        yield float(dx), float(dy), np.flatnonzero(which.ravel() == j)


def fit_profiles(images, templates):
    """Least-squares flux of every template, and the best template, per stamp.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Stamps, each source where the templates are centred (stamps moved by
        `centre_stamps` and `profile_templates`, or stamps as cut and the
        templates moved to their source by `templates_at`).
    templates : array-like, shape (k, size * size)
        The profile templates.

    Returns
    -------
    flux : `numpy.ndarray`, shape (n, k)
        Fitted flux of each template (NaN for a template that is 0 everywhere:
        one that lies wholly on a stamp's missing pixels).
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
    norms = np.where(norms > 0, norms, np.nan)  # a template wholly on missing pixels: NaN
    gain = np.where(dots > 0, dots ** 2 / norms, -np.inf)
    best = np.where(np.isfinite(gain).any(axis=1), np.argmax(gain, axis=1), 0)
    return dots / norms, best


def fit_with_neighbours(images, templates, fwhm_pix, beta, sky_sigma, *,
                        return_unmodelled=False):
    """`fit_profiles` of stamps that keep their neighbours, each fitted with them.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Background-subtracted stamps of one band as cut from a frame, with
        their neighbours, each source within about half a pixel of the
        centre.  They are not moved: the templates are moved to each source
        (`subpixel_offsets`, `templates_at`), so that a bright neighbour cut
        by a stamp's edge stays where it is, as the neighbour fits model it.
        A stamp with neighbours whose offset, found again on the stamp less
        their fitted light, differs is fitted again there, up to
        `SOURCE_PASSES` fits in all.  Non-finite pixels (the part of a stamp
        beyond a frame's edge, `sourceclf.photometry.source_stamps`) hold no
        measurement and weigh nothing in any of the fits.
    templates : array-like, shape (k, size * size)
        `profile_templates`; the first is the point source.
    fwhm_pix, beta : float
        The band's Moffat PSF: FWHM in pixels and index.
    sky_sigma : float
        Sky noise per pixel.
    return_unmodelled : bool
        Also return each source's `~sourceclf.unmodelled_light.unmodelled_light`.

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
    unmodelled : `numpy.ndarray`, shape (n,)
        With ``return_unmodelled``: the light the best profile's fit (with the
        neighbours and the sky) leaves 1-3 FWHM around the source, over the
        source's own light there (`sourceclf.unmodelled_light.unmodelled_light`).
    """
    images = np.asarray(images, dtype=np.float64)
    present = np.isfinite(images)  # the pixels beyond a frame's edge hold none
    images = np.where(present, images, 0.0)
    n = len(images)
    flux = np.empty((n, len(templates)))
    best = np.zeros(n, dtype=int)
    count = np.zeros(n, dtype=int)
    blend = np.zeros(n)
    unmodelled = np.full(n, np.nan)
    cleaned = images.copy()

    def fit(rows, offsets):
        for dx, dy, group in _groups(offsets):
            moved = templates_at(templates, dx, dy)
            projected = without_neighbours(images[rows[group]], moved, fwhm_pix, beta,
                                           sky_sigma, (dx, dy), present[rows[group]])
            for i, (image, shapes, neighbours) in zip(rows[group], projected):
                (flux[i],), (best[i],) = fit_profiles(image[None], shapes)
                count[i] = len(neighbours)
                if return_unmodelled:
                    unmodelled[i] = _unmodelled(image, shapes, moved, flux[i], best[i],
                                                (dx, dy), neighbours, present[i], fwhm_pix,
                                                sky_sigma)
                # neighbours' PSFs are 0 on the missing pixels; the point source is too
                point = moved[0] * present[i].ravel()
                blend[i] = blendedness(images[i], point, neighbours, flux[i, 0], present[i])
                if count[i]:  # the stamp less its neighbours' light, fitted with a point source
                    design = np.column_stack([present[i].ravel(), point, neighbours.T])
                    fitted = np.linalg.lstsq(design, images[i].ravel(), rcond=None)[0][2:]
                    cleaned[i] = images[i] - (neighbours.T @ fitted).reshape(images[i].shape)

    offsets = subpixel_offsets(images, fwhm_pix, beta)
    rows = np.arange(n)
    fit(rows, offsets)
    # a bright neighbour's wings pull the matched filter off the source: where the stamp
    # less its neighbours' fitted light puts the source elsewhere, it is fitted again there
    for _ in range(SOURCE_PASSES - 1):
        rows = rows[count[rows] > 0]
        if not len(rows):
            break
        again = subpixel_offsets(cleaned[rows], fwhm_pix, beta)
        elsewhere = np.any(again != offsets[rows], axis=1)
        if not elsewhere.any():
            break
        rows = rows[elsewhere]
        offsets[rows] = again[elsewhere]
        fit(rows, offsets[rows])
    if return_unmodelled:
        return flux, best, count, blend, unmodelled
    return flux, best, count, blend


def _unmodelled(image, shapes, moved, flux, best, source, neighbours, present, fwhm_pix,
                sky_sigma):
    """`~sourceclf.unmodelled_light.unmodelled_light` of one stamp fitted by
    `fit_with_neighbours`: ``image`` and ``shapes`` with the neighbours and sky projected
    out, ``moved`` the templates at the source, ``flux`` and ``best`` its fit."""
    own = flux[best] if np.isfinite(flux[best]) else 0.0
    residual = image - own * shapes[best]
    return unmodelled_light(residual, own * moved[best], fwhm_pix, sky_sigma, source,
                            neighbours, present)


def fit_band(images, fwhm, beta):
    """Fit (`fit_profiles`) deblended stamps of one band, each at its source's position.

    Each stamp holds its source alone (`~sourceclf.photometry.deblend_frame`'s pixels, or a
    simulated source without neighbours), as the training columns of the
    shipped models were measured; `~sourceclf.photometry.measure_columns` fits stamps that keep
    their neighbours with `fit_with_neighbours` instead.  The templates are
    moved to each source (`subpixel_offsets`, `templates_at`): the fits that
    centring the stamps (`centre_stamps`) gives.

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
    flux = np.empty((len(images), len(templates)))
    best = np.zeros(len(images), dtype=int)
    for dx, dy, rows in _offset_groups(images, fwhm / SDSS_PIXEL_SCALE, beta):
        flux[rows], best[rows] = fit_profiles(images[rows], templates_at(templates, dx, dy))
    return flux, best
