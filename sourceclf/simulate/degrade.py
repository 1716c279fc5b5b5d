"""Worse seeing for real frames and stamps: blur to a wider PSF, keep the sky noise.

`degrade_seeing` convolves an image (a frame, or an array of stamps) whose PSF
is a Moffat of known FWHM and index to a wider target FWHM and adds white
noise back, so that the sky noise per pixel stays what it was.
`degrade_frames` does it for the five frames of a field, keeping the
band-to-band ratios of their PSFs.

Kernels (``kernel=``).  Three ways to widen a PSF, which differ in the
shape they leave:

* ``"gaussian"`` (the default, as every check blurred before the others
  existed): a Gaussian whose width is solved numerically
  (`gaussian_kernel_sigma`) so that the FWHM of Moffat (native) convolved
  with it is the target.  FWHMs of a Moffat and a Gaussian do not add in
  quadrature: the quadrature kernel overshoots by about 5-6% on SDSS frames
  (1.69" instead of 1.6" from 0.98", beta 3.3), the solved one lands within
  1.5%.  The blurred PSF is more Gaussian than the native one (a re-measured
  Moffat index of 6-20 against 3-4).
* ``"kolmogorov"``: the atmosphere's profile (`kolmogorov_kernel`), its
  width solved the same way.  A long exposure's PSF is the telescope's
  convolved with a Kolmogorov profile, and two Kolmogorov profiles convolve
  to a third, so this is what a night of worse seeing does to the whole
  PSF, core and wings (a re-measured index of about 4-5).
* ``"moffat"``: the kernel that takes the native Moffat to a Moffat of the
  same index at the target FWHM (`moffat_kernel`: the ratio of the two
  profiles' Fourier transforms, drawn by GalSim), so that the blurred PSF
  keeps the native index (3-6 on the shared fields) and its wings widen with its
  core: heavier wings than a worse night gives, the far side of what real
  frames hold.

Checks on all three (``docs/scripts/check_fields.py --kernel``) tell
whether a model's score at bad seeing depends on the PSF's shape.

Noise.  Convolution with a unit-sum kernel lowers white noise and correlates
it; white noise of variance ``sigma_0**2 - sigma_1**2`` (both measured,
MAD-based, sources masked) is added back.  The noise power spectrum is
not restored, nor the sources' own photon noise that blurring smoothed
(negligible for sky-limited SDSS frames except for the brightest stars).
"""

import numpy as np

from ..bands import BANDS, SDSS_PIXEL_SCALE
from ..inputs import read_frames
from ..exceptions import InvalidInputError
from ..field_psf import field_psfs
from ..psf import moffat_gamma
from ..utils._cache import array_cache
from ..utils._wcs import pixel_scale as wcs_pixel_scale
from .measurement import measure_sky_sigma

__all__ = ["KERNELS", "KERNEL_CACHE_BYTES", "gaussian_kernel_sigma", "kolmogorov_kernel",
           "moffat_kernel", "degrade_seeing", "degrade_frames"]

#: The kernels `degrade_seeing` and `degrade_frames` blur with (see the module's text).
KERNELS = ("gaussian", "kolmogorov", "moffat")


def _profile_fwhm(image, oversampling):
    """FWHM of a centred circular profile from its central row (grid units)."""
    row = image[image.shape[0] // 2]
    x = (np.arange(row.size) - (row.size - 1) / 2.0) / oversampling
    half = row.max() / 2.0
    right = x >= 0
    xr, rr = x[right], row[right]
    k = np.flatnonzero(rr < half)[0]
    return 2.0 * float(np.interp(half, [rr[k], rr[k - 1]], [xr[k], xr[k - 1]]))


def gaussian_kernel_sigma(fwhm, beta, target_fwhm, *, oversampling=4):
    """Sigma of the Gaussian that takes a Moffat PSF to a wider FWHM.

    Parameters
    ----------
    fwhm : float
        FWHM of the Moffat PSF (pixels).
    beta : float
        Its Moffat index.
    target_fwhm : float
        Wanted FWHM (pixels), larger than ``fwhm``.
    oversampling : int
        Grid points per pixel of the numerical profile.

    Returns
    -------
    sigma : float
        Kernel sigma in pixels (0 when ``target_fwhm <= fwhm``).
    """
    from scipy.ndimage import gaussian_filter
    from scipy.optimize import brentq

    if target_fwhm <= fwhm:
        return 0.0
    n = (int(8 * target_fwhm) | 1) * oversampling + 1
    c = (n - 1) / 2.0
    yy, xx = (np.mgrid[:n, :n] - c) / oversampling
    gamma = moffat_gamma(fwhm, beta)
    moffat = (1.0 + (xx ** 2 + yy ** 2) / gamma ** 2) ** (-beta)

    def excess(sigma):
        blurred = gaussian_filter(moffat, sigma * oversampling, mode="constant")
        return _profile_fwhm(blurred, oversampling) - target_fwhm

    quadrature = np.sqrt(target_fwhm ** 2 - fwhm ** 2) / 2.3548
    return float(brentq(excess, 1e-3, 2.0 * quadrature + 1.0, xtol=1e-4))


#: Bytes of kernels `moffat_kernel` and `kolmogorov_kernel` keep, so that the bands and
#: seeings of a field's checks (and each blur of a check drawing sources into the frames)
#: draw and solve each kernel once.
KERNEL_CACHE_BYTES = 4 * 2 ** 20


def moffat_kernel(fwhm, beta, target_fwhm, *, size=None):
    """The kernel that widens a Moffat PSF to a Moffat of the same index.

    Parameters
    ----------
    fwhm : float
        FWHM of the Moffat PSF (pixels).
    beta : float
        Its Moffat index (above 1.1, as GalSim's untruncated Moffat needs).
    target_fwhm : float
        Wanted FWHM (pixels), larger than ``fwhm``.
    size : int, optional
        Side of the kernel image (made odd); by default 12 target FWHMs, which
        holds all but 0.2% of it for an index of 2.5 and 0.04% for 3 (the
        image is then scaled to a unit sum).

    Returns
    -------
    kernel : `numpy.ndarray`
        Odd square image of unit sum, centred on its middle pixel: Moffat
        (``target_fwhm``, ``beta``) deconvolved by Moffat (``fwhm``,
        ``beta``), drawn by GalSim without a pixel (the frames' pixels are
        already in both PSFs).  A 1-pixel delta when ``target_fwhm <= fwhm``.
    """
    return _kernel("moffat", fwhm, beta, target_fwhm, size).copy()


def kolmogorov_kernel(fwhm, beta, target_fwhm, *, size=None):
    """The atmosphere's kernel that widens a Moffat PSF to a target FWHM.

    Worse seeing is stronger turbulence: a long exposure's PSF is the
    telescope's convolved with a Kolmogorov profile, and two Kolmogorov
    profiles convolve to a third (their FWHMs add in fifth-thirds powers),
    so a frame of worse seeing is the frame convolved with a Kolmogorov
    kernel.  Its FWHM is solved numerically so that Moffat (``fwhm``,
    ``beta``) convolved with it has ``target_fwhm``.

    Parameters
    ----------
    fwhm : float
        FWHM of the Moffat PSF (pixels).
    beta : float
        Its Moffat index (above 1.1).
    target_fwhm : float
        Wanted FWHM (pixels), larger than ``fwhm``.
    size : int, optional
        Side of the kernel image (made odd); by default 12 target FWHMs, which
        holds all but at most 0.4% of the profile's far wings (the image is
        then scaled to a unit sum).

    Returns
    -------
    kernel : `numpy.ndarray`
        Odd square image of unit sum, centred on its middle pixel, drawn by
        GalSim without a pixel; a 1-pixel delta when ``target_fwhm <= fwhm``.
    """
    return _kernel("kolmogorov", fwhm, beta, target_fwhm, size).copy()


def _kernel(kind, fwhm, beta, target_fwhm, size=None):
    """`moffat_kernel` or `kolmogorov_kernel` (``kind``), read-only and kept
    (`KERNEL_CACHE_BYTES`, `sourceclf.utils._cache.array_cache`)."""
    if not beta > 1.1:
        raise InvalidInputError(f"the '{kind}' kernel needs a Moffat index above 1.1, got "
                                f"{beta!r}")
    n = None if size is None else int(size)
    return _drawn_kernel(kind, float(fwhm), float(beta), float(target_fwhm), n)


@array_cache(KERNEL_CACHE_BYTES)
def _drawn_kernel(kind, fwhm, beta, target_fwhm, size):
    """The kernel image `_kernel` keeps: the profile that widens Moffat (``fwhm``,
    ``beta``) to ``target_fwhm``, drawn on ``size`` (default 12 target FWHMs, made odd)
    pixels and scaled to a unit sum."""
    import galsim

    if target_fwhm <= fwhm:
        return np.ones((1, 1))
    native = galsim.Moffat(beta, fwhm=fwhm)
    if kind == "moffat":
        profile = galsim.Convolve(galsim.Moffat(beta, fwhm=target_fwhm),
                                  galsim.Deconvolve(native))
    else:
        from scipy.optimize import brentq

        grid = int(np.ceil(8 * target_fwhm * 8)) | 1  # 8 target FWHMs at 1/8 pixel

        def excess(width):
            seen = galsim.Convolve(native, galsim.Kolmogorov(fwhm=width))
            return seen.drawImage(nx=grid, ny=grid, scale=0.125,
                                  method="no_pixel").calculateFWHM() - target_fwhm

        profile = galsim.Kolmogorov(fwhm=brentq(excess, 1e-2 * target_fwhm, 2.0 * target_fwhm,
                                                xtol=1e-4 * target_fwhm))
    n = int(size if size is not None else np.ceil(12 * target_fwhm)) | 1
    image = profile.drawImage(nx=n, ny=n, scale=1.0, method="no_pixel").array
    image = image.astype(np.float64)
    return image / image.sum()


def _convolve(data, kernel):
    """``data`` (2-D, or stamps ``(..., H, W)`` each on its own) convolved with a 2-D
    ``kernel``, edges reflected as `scipy.ndimage.gaussian_filter`'s ``mode="reflect"``."""
    from scipy.signal import fftconvolve

    half = kernel.shape[0] // 2
    pad = [(0, 0)] * (data.ndim - 2) + [(half, half), (half, half)]
    padded = np.pad(data, pad, mode="symmetric")
    shaped = kernel.reshape((1,) * (data.ndim - 2) + kernel.shape)
    return fftconvolve(padded, shaped, mode="valid", axes=(-2, -1)).astype(np.float32)


def _sky_sigma(image, sigma_pixels):
    """Sky noise of a 2-D image (MAD-based, sources masked) or of each stamp."""
    from astropy.stats import mad_std, sigma_clipped_stats
    from scipy.ndimage import binary_dilation, gaussian_filter

    if image.ndim > 2:  # stamps: the outer pixels of each, robustly
        return np.asarray(measure_sky_sigma(image), dtype=np.float64)[..., None, None]
    # sources: 4 sigma above the sky on the image smoothed by 1.5 pixels (pure
    # noise almost never gets there, so the mask does not bias the noise low)
    smooth = gaussian_filter(image, 1.5)
    _, median, noise = sigma_clipped_stats(smooth[::2, ::2], sigma=3.0, maxiters=5,
                                           stdfunc="mad_std")
    sources = binary_dilation(smooth - median > 4.0 * noise,
                              iterations=max(2, int(np.ceil(2 * sigma_pixels + 2))))
    return float(mad_std(image[~sources & np.isfinite(image)]))


def _check_kernel(kernel):
    """Raise `InvalidInputError` unless ``kernel`` is one of `KERNELS`."""
    if kernel not in KERNELS:
        raise InvalidInputError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, "
                                f"got {kernel!r}")


def degrade_seeing(image, fwhm, target_fwhm, *, beta=3.5, pixel_scale=SDSS_PIXEL_SCALE,
                   kernel="gaussian", random_state=None):
    """Blur an image to a wider PSF and restore its sky noise.

    Parameters
    ----------
    image : array-like
        A sky-subtracted 2-D frame, or stamps of shape ``(..., H, W)`` (e.g.
        ``(N, H, W)`` of one band: each stamp is blurred on its own, its sky
        noise measured on its outer pixels).
    fwhm : float
        FWHM of the image's PSF, arcsec (e.g. `sourceclf.psf.measure_psf`).
    target_fwhm : float
        Wanted FWHM, arcsec; not smaller than ``fwhm`` (sharpening is not
        possible).  Equal to ``fwhm``: the image is returned as a copy.
    beta : float
        Moffat index of the image's PSF.
    pixel_scale : float
        Arcsec per pixel.
    kernel : {'gaussian', 'kolmogorov', 'moffat'}
        How the PSF widens (see the module's text): a Gaussian kernel (a more
        Gaussian PSF), the atmosphere's (`kolmogorov_kernel`), or
        `moffat_kernel` (the same Moffat index, wider).
    random_state : None, int or `numpy.random.Generator`
        Seed of the added noise.

    Returns
    -------
    blurred : `numpy.ndarray`
        float32, the shape of ``image``.

    Raises
    ------
    InvalidInputError
        If the target is narrower than the PSF, a FWHM is not positive, the
        kernel is not one of `KERNELS`, or the image is not at least 2-D.
    """
    from scipy.ndimage import gaussian_filter

    data = np.array(image, dtype=np.float32)
    if data.ndim < 2:
        raise InvalidInputError(f"image must be 2-D (a frame) or (..., H, W) stamps, got "
                                f"shape {data.shape}")
    for name, value in (("fwhm", fwhm), ("target_fwhm", target_fwhm), ("beta", beta - 1)):
        if not (np.isfinite(value) and value > 0):
            raise InvalidInputError(f"{name} must be positive (beta > 1), got {value!r}")
    if target_fwhm < fwhm * (1 - 1e-6):
        raise InvalidInputError(f"target_fwhm {target_fwhm:g}\" is narrower than the PSF "
                                f"({fwhm:g}\"): blurring cannot sharpen an image")
    _check_kernel(kernel)
    if kernel != "gaussian":
        if target_fwhm <= fwhm:
            return data
        # the width the sources' mask grows by, as the Gaussian kernel's would be
        sigma = np.sqrt(target_fwhm ** 2 - fwhm ** 2) / pixel_scale / 2.3548
        before = _sky_sigma(data, sigma)
        blurred = _convolve(data, _kernel(kernel, fwhm / pixel_scale, beta,
                                          target_fwhm / pixel_scale))
    else:
        sigma = gaussian_kernel_sigma(fwhm / pixel_scale, beta, target_fwhm / pixel_scale)
        if sigma == 0.0:
            return data
        before = _sky_sigma(data, sigma)
        axes = (0,) * (data.ndim - 2) + (sigma, sigma)
        blurred = gaussian_filter(data, axes, mode="reflect")
    after = _sky_sigma(blurred, sigma)
    add = np.sqrt(np.clip(before ** 2 - after ** 2, 0.0, None))
    rng = np.random.default_rng(random_state)
    blurred += (add * rng.standard_normal(blurred.shape)).astype(np.float32)
    return blurred


def degrade_frames(images, target_fwhm, *, reference_band="r", psf=None, kernel="gaussian",
                   random_state=0):
    """The five frames of a field as seen through worse seeing.

    Each band is blurred (`degrade_seeing`) to ``target_fwhm`` times its own
    FWHM over the reference band's, so that the band-to-band ratios of the
    native PSFs are kept; a band already wider than its target is left as it
    is.

    Parameters
    ----------
    images : dict
        ``{band: frame}`` for u, g, r, i, z (anything
        `sourceclf.frames.read_frame` reads).
    target_fwhm : float
        FWHM (arcsec) wanted in the reference band.
    reference_band : str
        The band ``target_fwhm`` is for.
    psf : dict, optional
        ``{band: PSFMeasurement}`` of the frames (measured when not given:
        `sourceclf.field_psf.field_psfs`).
    kernel : {'gaussian', 'kolmogorov', 'moffat'}
        How each band's PSF widens (`degrade_seeing`).
    random_state : int
        Seed; band ``k`` uses ``random_state + k``.

    Returns
    -------
    frames : dict
        ``{band: (data, wcs)}``, blurred float32 images with the original
        WCSs (pass to ``sourceclf.classify(..., images=frames)``).
    targets : dict
        ``{band: FWHM}`` (arcsec) each band was blurred to.
    """

    if reference_band not in BANDS:
        raise InvalidInputError(f"reference_band must be one of {', '.join(BANDS)}, got "
                                f"{reference_band!r}")
    _check_kernel(kernel)
    read = read_frames(images)
    scales = {b: wcs_pixel_scale(w)
              for b, (_, w) in read.items()}
    if psf is None:
        psf = field_psfs(read)
    factor = target_fwhm / psf[reference_band].fwhm
    frames, targets = {}, {}
    for k, band in enumerate(BANDS):
        data, wcs = read[band]
        native = psf[band]
        targets[band] = max(native.fwhm * factor, native.fwhm)
        frames[band] = (degrade_seeing(data, native.fwhm, targets[band], beta=native.beta,
                                       pixel_scale=scales[band], kernel=kernel,
                                       random_state=random_state + k), wcs)
    return frames, targets
