"""The light a source's profile fits leave around it, against the source's own light there.

On a crowded frame the neighbour fits (`sourceclf.neighbour_fits`) model each
neighbour bright enough to be found as a PSF; what they cannot model stays
in the source's stamp: sources too faint to be found, the neighbours' wings
beyond the Moffat PSF and their shapes.  The profile fits decide between a
point source and a galaxy by the light 1-3 FWHM from the source, where a
faint galaxy's wings lie; where unmodelled light there is as bright as the
source's own, they cannot tell the two apart.

`unmodelled_light` measures it per stamp, after the source's best profile
has been fitted with its neighbours and the sky
(`sourceclf.profile_fits.fit_with_neighbours`): the residual of that fit,
smoothed by a Gaussian of the PSF's width, less its mean in each one-pixel
ring about the source (what is left of the source's own light is round, the
light of others is not), read over `UNMODELLED_ANNULUS` FWHM from the source
and at least a FWHM from each fitted neighbour; its mean square, less what
the sky noise alone gives after the same smoothing (with `NOISE_MARGIN` for
its scatter), as a root mean square over the mean of the source's own
fitted profile there, smoothed the same way.
About 0 for a source alone in the sky's noise, 1 where light that no fitted
source accounts for is as bright, around the source, as the source itself.

`sourceclf.photometry.measure_columns` keeps it per band as
``unmodelled_<b>``, and `sourceclf.crowding.confusion_flags` flags the rows
where the r band's reaches `sourceclf.crowding.CONFUSED_LIMIT`.
"""

import numpy as np

__all__ = ["UNMODELLED_ANNULUS", "UNMODELLED_MIN_PIXELS", "NOISE_MARGIN", "smoothed_noise",
           "annulus_residual", "unmodelled_light"]

#: The annulus read, in PSF FWHM from the source: where a faint galaxy's wings lie.
UNMODELLED_ANNULUS = (1.0, 3.0)

#: Fewest pixels of the annulus (measured, away from the neighbours) that give a figure.
UNMODELLED_MIN_PIXELS = 10

#: Standard deviations of the smoothed sky noise's mean square over the annulus
#: (its scatter between stamps: the annulus holds few independent patches of the
#: smoothing's size) that the noise is taken to give: a faint source alone in
#: the noise then leaves no unmodelled light in 98% of stamps.
NOISE_MARGIN = 2.0


def smoothed_noise(sky_sigma, fwhm_pix):
    """The sky's white noise per pixel after smoothing by a Gaussian of the PSF's width.

    Parameters
    ----------
    sky_sigma : float
        The sky's noise per pixel.
    fwhm_pix : float
        FWHM of the band's PSF, pixels (the Gaussian's FWHM).

    Returns
    -------
    float
        ``sky_sigma / (2 sqrt(pi) sigma)``, sigma the Gaussian's.
    """
    from astropy.stats import gaussian_fwhm_to_sigma

    return sky_sigma / (2.0 * np.sqrt(np.pi) * fwhm_pix * gaussian_fwhm_to_sigma)


def annulus_residual(residual, fwhm_pix, source=(0.0, 0.0), neighbours=(), present=None):
    """A stamp's residual around its source, smoothed and less each ring's mean.

    Parameters
    ----------
    residual : array-like, shape (size * size,) or (size, size)
        The stamp less its fit (0 on missing pixels).
    fwhm_pix : float
        FWHM of the band's PSF, pixels: the smoothing's width and the unit of
        `UNMODELLED_ANNULUS`.
    source : tuple of float
        x, y of the source from the stamp's centre, pixels.
    neighbours : array-like, shape (m, size * size)
        The fitted neighbours' PSFs: the pixels within a FWHM of where each
        peaks are not read.
    present : array-like of bool, shape like ``residual``, optional
        The pixels that hold a measurement (default all).

    Returns
    -------
    values : `numpy.ndarray` or None
        The residual smoothed by a Gaussian of the PSF's width, over the
        pixels read (`UNMODELLED_ANNULUS` FWHM from the source, measured,
        away from the neighbours), less its mean in each one-pixel ring about
        the source (what is left of the source's own light is round, the
        light of others is not); None where fewer than
        `UNMODELLED_MIN_PIXELS` pixels are read.
    read : `numpy.ndarray` of bool, shape (size, size)
        The pixels read.
    """
    from astropy.stats import gaussian_fwhm_to_sigma
    from scipy.ndimage import gaussian_filter

    residual = np.asarray(residual, dtype=np.float64)
    size = int(round(np.sqrt(residual.size)))
    residual = residual.reshape(size, size)
    present = (np.ones((size, size), dtype=bool) if present is None
               else np.asarray(present, dtype=bool).reshape(size, size))
    yy, xx = np.mgrid[:size, :size].astype(float)
    centre = (size - 1) / 2.0
    reach = np.hypot(xx - centre - source[0], yy - centre - source[1]) / fwhm_pix
    read = (reach >= UNMODELLED_ANNULUS[0]) & (reach < UNMODELLED_ANNULUS[1]) & present
    for psf in np.reshape(neighbours, (-1, size * size)):
        py, px = np.unravel_index(np.argmax(psf), (size, size))
        read &= np.hypot(xx - px, yy - py) >= fwhm_pix
    if read.sum() < UNMODELLED_MIN_PIXELS:
        return None, read
    smooth = gaussian_filter(np.where(present, residual, 0.0),
                             fwhm_pix * gaussian_fwhm_to_sigma)[read]
    ring = np.rint(reach[read] * fwhm_pix).astype(int)
    mean = np.bincount(ring, smooth) / np.maximum(np.bincount(ring), 1)
    return smooth - mean[ring], read


def unmodelled_light(residual, own, fwhm_pix, sky_sigma, source=(0.0, 0.0), neighbours=(),
                     present=None):
    """The light a stamp's fits leave around its source, over the source's own light there.

    Parameters
    ----------
    residual : array-like, shape (size * size,) or (size, size)
        The stamp less its fit: the source's best profile, a PSF at each
        neighbour and a constant sky (0 on missing pixels).
    own : array-like, shape like ``residual``
        The source's fitted profile alone (its flux times its template).
    fwhm_pix : float
        FWHM of the band's PSF, pixels.
    sky_sigma : float
        The sky's noise per pixel.
    source : tuple of float
        x, y of the source from the stamp's centre, pixels.
    neighbours : array-like, shape (m, size * size)
        The fitted neighbours' PSFs (each is read where it peaks).
    present : array-like of bool, shape like ``residual``, optional
        The pixels that hold a measurement (default all).

    Returns
    -------
    float
        The root of the mean square of `annulus_residual` less the smoothed
        sky noise's (`smoothed_noise`, with `NOISE_MARGIN`), over the mean of
        the smoothed own profile over the same pixels; NaN where fewer than
        `UNMODELLED_MIN_PIXELS` pixels are read or the source's own light
        there is not positive.
    """
    from astropy.stats import gaussian_fwhm_to_sigma
    from scipy.ndimage import gaussian_filter

    values, read = annulus_residual(residual, fwhm_pix, source, neighbours, present)
    if values is None:
        return np.nan
    own = np.asarray(own, dtype=np.float64).reshape(read.shape)
    present = (np.ones(read.shape, dtype=bool) if present is None
               else np.asarray(present, dtype=bool).reshape(read.shape))
    smoothing = fwhm_pix * gaussian_fwhm_to_sigma
    wing = float(np.mean(gaussian_filter(np.where(present, own, 0.0), smoothing)[read]))
    if not wing > 0:
        return np.nan
    noise = smoothed_noise(sky_sigma, fwhm_pix)
    # what the sky's noise gives, and twice the scatter of its mean square over the
    # annulus's independent patches (the smoothing's effective area 4 pi sigma^2 each)
    patches = read.sum() / (4.0 * np.pi * smoothing ** 2)
    floor = noise * noise * (1.0 + NOISE_MARGIN * np.sqrt(2.0 / patches))
    return float(np.sqrt(max(np.mean(values ** 2) - floor, 0.0)) / wing)
