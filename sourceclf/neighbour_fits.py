"""Profile fits of a source together with its neighbours, for crowded frames.

On a crowded frame a source's stamp holds other sources, and light of a
neighbour left in the stamp makes a point source look extended to the
profile fits of `sourceclf.photometry`.  Splitting the frame's pixels
between peaks (`sourceclf.photometry.deblend_frame`) cannot remove a
neighbour's wings from the source's own pixels, nor a neighbour too close to
have a peak of its own.  Here each neighbour is instead *modelled*: a PSF at
each peak of the stamp away from the source, fitted by linear least squares
at the same time as the source's profile and a constant sky, as a
crowded-field PSF photometry code (DAOPHOT's ALLSTAR, photutils'
``IterativePSFPhotometry``) fits groups of stars:

1. the stamp smoothed by its PSF: local maxima above `NEIGHBOUR_THRESHOLD`
   sky sigma (the detection threshold of `sourceclf.photometry.detect_segments`)
   farther than `NEIGHBOUR_EXCLUSION` FWHM from the source (its sub-pixel
   position, `sourceclf.profile_fits.subpixel_offsets`, where the templates
   are moved) are neighbours;
2. the source is fitted as a point source with them, and the smoothed
   residual searched again (`RESIDUAL_THRESHOLD`): a neighbour merged with
   the source shows there.  A residual peak is kept only when it exceeds
   twice the residual at its mirror point through the source by a sky
   sigma: what is left of an extended source around its centre is
   symmetric, a neighbour is not;
3. the neighbours' PSFs and the sky are projected out of the stamp and of
   every profile template (`sourceclf.profile_fits.profile_templates`): a
   least-squares fit of a projected template to the projected stamp gives
   the flux and residual of fitting the template together with them, so
   `sourceclf.profile_fits.fit_with_neighbours` fits the projections with
   `sourceclf.profile_fits.fit_profiles`, as it fits a deblended stamp.

Before step 2, and again after it where merged neighbours were added, the
neighbours' positions are refined (`refined_positions`): a bright
neighbour's PSF put a few tenths of a pixel off, at its peak's centroid,
leaves residuals brighter than a faint source's own light (and, in step 2's
residual, a spurious "merged" neighbour beside it that then shares the
source's light), and one beyond the stamp's edge is found on the edge.  A
few Gauss-Newton steps, each a linear least-squares fit of the PSFs and
their derivatives in x and y with the source as a point source and the sky,
move each bright neighbour to where its PSF fits, as DAOPHOT's ALLSTAR
does; the profile fits then fit fluxes only, a linear problem solved by
numpy.  A plateau of equal maxima (a source centred between pixels, a flat
saturated core) is one peak, not two neighbours in one place.

A neighbour is modelled as a point source; the light of an extended
neighbour beyond its PSF stays, as it does in the deblender's pixels.
photutils' ``PSFPhotometry`` is not used: it fits one model to every source
of a group, where here the source takes each of the 14 profile templates in
turn and its neighbours the PSF, 14 fits of the same neighbours that share
one projection.
"""

import numpy as np

from .psf import moffat_gamma, moffat_profile

__all__ = ["NEIGHBOUR_THRESHOLD", "RESIDUAL_THRESHOLD", "NEIGHBOUR_EXCLUSION",
           "POSITION_STEPS", "POSITION_REACH", "EDGE_REACH", "POSITION_SIGNIFICANCE",
           "find_neighbours", "refined_positions", "without_neighbours", "blendedness"]

#: Peaks of the PSF-smoothed stamp above this many sky sigma (per pixel) are
#: neighbours (the detection threshold of `sourceclf.photometry.detect_segments`).
NEIGHBOUR_THRESHOLD = 2.0

#: Peaks of the smoothed residual of the point-source fit above this many sky
#: sigma (and asymmetric about the source) are neighbours merged with it.
RESIDUAL_THRESHOLD = 3.0

#: Peaks closer than this many PSF FWHM (and 2 pixels) to the source are its own.
NEIGHBOUR_EXCLUSION = 0.75

#: Most Gauss-Newton steps that refine the neighbours' positions (`refined_positions`).
POSITION_STEPS = 5

#: Farthest a neighbour moves from its peak, pixels (half a pixel at most per step).
POSITION_REACH = 1.0

#: Farthest a neighbour found on the stamp's edge (beyond it) moves outward, pixels.
EDGE_REACH = 4.0

#: Only neighbours whose fitted PSF peaks above this many sky sigma are moved:
#: a fainter one's position is not measured better than its peak's.
POSITION_SIGNIFICANCE = 5.0


def find_neighbours(smooth, threshold, exclusion, source=(0.0, 0.0)):
    """Local maxima of a smoothed stamp away from its source.

    Parameters
    ----------
    smooth : `numpy.ndarray`, shape (size, size)
        The stamp (or a residual) smoothed by its PSF, the source near its centre.
    threshold : float
        Lowest peak value.
    exclusion : float
        Peaks closer than this to the source (pixels) are left out.
    source : tuple of float
        x, y of the source from the stamp's centre, pixels
        (`sourceclf.profile_fits.subpixel_offsets`).

    Returns
    -------
    positions : `numpy.ndarray`, shape (m, 2)
        x, y of each peak (pixels; the centroid of its 3 x 3 pixels).
    """
    from scipy.ndimage import maximum_filter

    peaks = (maximum_filter(smooth, size=3) == smooth) & (smooth > threshold)
    return _peak_positions(smooth, peaks, exclusion, source)


def _peak_positions(smooth, peaks, exclusion, source):
    """`find_neighbours` of a stamp whose peaks (a boolean image) are known.

    Touching peaks (a plateau of equal maxima, as a source centred between
    pixels or a flat saturated core gives) are one peak, at its first pixel.
    """
    from scipy.ndimage import label

    size = smooth.shape[0]
    centre = (size - 1) / 2.0
    plateaus, count = label(peaks, structure=np.ones((3, 3)))
    py, px = np.nonzero(peaks)
    if count < len(py):  # one pixel of each plateau
        first = np.unique(plateaus[py, px], return_index=True)[1]
        py, px = py[first], px[first]
    far = np.hypot(px - centre - source[0], py - centre - source[1]) >= exclusion
    out = []
    offsets = np.arange(-1, 2)
    for y0, x0 in zip(py[far], px[far]):
        if 0 < x0 < size - 1 and 0 < y0 < size - 1:  # centroid of the 3 x 3 pixels
            w = smooth[y0 - 1:y0 + 2, x0 - 1:x0 + 2].clip(0)
            s = w.sum()
            out.append((x0 + (w.sum(axis=0) @ offsets) / s, y0 + (w.sum(axis=1) @ offsets) / s))
        else:  # on the stamp's edge: a neighbour beyond it, its light rising to the edge
            out.append((float(x0), float(y0)))
    return np.array(out, dtype=float).reshape(-1, 2)


def refined_positions(stamp, point, positions, fwhm_pix, beta, sky_sigma, source=None,
                      exclusion=0.0, present=None):
    """Neighbours' positions refined by Gauss-Newton steps, as DAOPHOT's ALLSTAR does.

    The centroid of a peak's 3 x 3 pixels is off by a few tenths of a pixel
    where another source's light slopes under it, and a neighbour beyond the
    stamp's edge is found on the edge; a bright neighbour's PSF put there
    leaves residuals that the source's profile fits take for its own light.
    Each step fits, by linear least squares, a constant, the source as a
    point source, and each neighbour's PSF and its derivatives in x and y
    (the model linearised in the positions); a neighbour of flux ``f``
    whose derivative columns take ``bx, by`` moves by ``(bx, by) / f``.

    Parameters
    ----------
    stamp : array-like, shape (size, size) or (size * size,)
        The stamp as cut, neighbours included.
    point : `numpy.ndarray`, shape (size * size,)
        The point-source template at the source (the first profile template).
    positions : array-like, shape (m, 2)
        x, y of each neighbour, pixels (`find_neighbours`).
    fwhm_pix, beta : float
        The band's Moffat PSF: FWHM in pixels and index.
    sky_sigma : float
        Sky noise per pixel.
    source : tuple of float, optional
        x, y of the source in the stamp, pixels (from its first pixel).
    exclusion : float
        No neighbour moves closer than this to ``source`` (pixels): the
        light there is the source's own (`NEIGHBOUR_EXCLUSION`), and a
        neighbour moved into it takes the source's light, as its residual
        from a point-source fit invites where the source is extended.
    present : array-like of bool, shape (size, size) or (size * size,), optional
        The stamp's pixels that hold a measurement; the others (beyond a
        frame's edge) weigh nothing in the fits.  Default: all.

    Returns
    -------
    positions : `numpy.ndarray`, shape (m, 2)
        Each neighbour moved at most `POSITION_REACH` pixels (`EDGE_REACH`
        outward for one found on the edge) in at most `POSITION_STEPS`
        steps of at most half a pixel, and kept ``exclusion`` from the
        source; those below `POSITION_SIGNIFICANCE` stay.
    """
    flat = np.asarray(stamp, dtype=np.float64).ravel()
    size = int(round(np.sqrt(flat.size)))
    positions = np.array(positions, dtype=float).reshape(-1, 2)
    m = len(positions)
    if not m:
        return positions
    yy, xx = np.mgrid[:size, :size].astype(float)
    xx, yy = xx.ravel(), yy.ravel()
    weight = None if present is None else np.asarray(present, dtype=np.float64).ravel()
    if weight is not None:
        flat = flat * weight
    gamma2 = moffat_gamma(fwhm_pix, beta) ** 2
    low = positions - np.where(positions <= 0, EDGE_REACH, POSITION_REACH)
    high = positions + np.where(positions >= size - 1, EDGE_REACH, POSITION_REACH)
    keep_out = source is not None and exclusion > 0
    if keep_out:
        source = np.asarray(source, dtype=float)
    for _ in range(POSITION_STEPS):
        dx = xx - positions[:, :1]
        dy = yy - positions[:, 1:]
        psf = moffat_profile(dx, dy, fwhm_pix, beta)
        # d psf / d x0 = 2 beta (x - x0) / gamma^2 * psf / (1 + r^2 / gamma^2)
        slope = 2.0 * beta / gamma2 * psf / (1.0 + (dx ** 2 + dy ** 2) / gamma2)
        design = np.vstack([np.ones_like(flat), point, psf, slope * dx, slope * dy]).T
        if weight is not None:
            design = design * weight[:, None]
        normal = design.T @ design
        coef = np.linalg.lstsq(normal, design.T @ flat, rcond=None)[0]
        flux, bx, by = coef[2:2 + m], coef[2 + m:2 + 2 * m], coef[2 + 2 * m:]
        strong = flux * psf.max(axis=1) > POSITION_SIGNIFICANCE * sky_sigma
        step = np.zeros_like(positions)
        step[strong] = np.column_stack([bx, by])[strong] / flux[strong, None]
        step = np.clip(step, -0.5, 0.5)
        moved = np.clip(positions + step, low, high)
        if keep_out:  # a neighbour moved inside goes back onto the circle, along its line
            away = moved - source
            distance = np.maximum(np.hypot(*away.T), 1e-9)[:, None]
            moved = np.where(distance < exclusion, source + away * exclusion / distance, moved)
        step, positions = moved - positions, moved
        if np.abs(step).max() < 0.01:
            break
    return positions


def _project_out(flat, templates, q):
    """The stamp and the templates less their parts in the span of ``q``'s columns."""
    return flat - q @ (q.T @ flat), templates - (templates @ q) @ q.T


def without_neighbours(images, templates, fwhm_pix, beta, sky_sigma, source=(0.0, 0.0),
                       present=None):
    """Each stamp and the profile templates with its neighbours and sky projected out.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Stamps of one band as cut, with their neighbours (not deblended),
        each source within half a pixel of the centre.
    templates : array-like, shape (k, size * size)
        `sourceclf.profile_fits.profile_templates`, moved to the stamps' source
        (`sourceclf.profile_fits.templates_at`); the first is the point source.
    fwhm_pix, beta : float
        The band's Moffat PSF: FWHM in pixels and index.
    sky_sigma : float
        Sky noise per pixel.
    source : tuple of float
        x, y of the stamps' source from their centre, pixels (where the
        templates are centred): neighbours are looked for away from it, and
        the residual's symmetry is judged about it.
    present : array-like of bool, shape (n, size, size), optional
        The pixels that hold a measurement.  The others (a stamp's part
        beyond a frame's edge) weigh nothing: they are 0 in the stamp, the
        templates, the sky and the neighbours' PSFs yielded, so that every
        least-squares fit of them reads the measured pixels alone.  Default:
        the finite pixels of ``images``.

    Yields
    ------
    image : `numpy.ndarray`, shape (size * size,)
        A stamp less its least-squares fit by a constant and a PSF at each
        of its neighbours.
    templates : `numpy.ndarray`, shape (k, size * size)
        The templates less the same: fitting them to ``image`` by least
        squares (`sourceclf.profile_fits.fit_profiles`) fits each together
        with the neighbours and the sky.
    neighbours : `numpy.ndarray`, shape (m, size * size)
        The PSF of each of the ``m`` neighbours found, unit flux
        (`blendedness` weighs their fitted light).
    """
    from scipy.ndimage import gaussian_filter, maximum_filter

    images = np.asarray(images, dtype=np.float64)
    templates = np.asarray(templates, dtype=np.float64)
    present = np.isfinite(images) if present is None else np.asarray(present, dtype=bool)
    if present.shape != images.shape:
        raise ValueError(f"without_neighbours: present has shape {present.shape}, expected "
                         f"the images' {images.shape}")
    images = np.where(present, images, 0.0)
    n, size, _ = images.shape
    yy, xx = np.mgrid[:size, :size].astype(float)
    centre = (size - 1) / 2.0
    exclusion = max(2.0, NEIGHBOUR_EXCLUSION * fwhm_pix)
    smoothing = fwhm_pix / 2.3548

    def psf_columns(positions, weight):
        if not len(positions):
            return []
        x0, y0 = np.asarray(positions, dtype=float).T
        psfs = moffat_profile(xx.ravel() - x0[:, None], yy.ravel() - y0[:, None], fwhm_pix, beta)
        return list(psfs if weight is None else psfs * weight)

    def refine(flat, positions, weight):
        if not len(positions):
            return positions
        return refined_positions(flat, templates[0], positions, fwhm_pix, beta, sky_sigma,
                                 centre + np.asarray(source), exclusion, weight)

    def basis(columns):
        # a neighbour's PSF that lies wholly on missing pixels is no column
        columns = [c for c in columns if c @ c > 0]
        if not columns:  # a stamp without a measured pixel
            return np.zeros((size * size, 0))
        return np.linalg.qr(np.column_stack(columns))[0]

    smooth = gaussian_filter(images, (0.0, smoothing, smoothing))  # all stamps at once
    peaks = ((maximum_filter(smooth, size=(1, 3, 3)) == smooth)
             & (smooth > NEIGHBOUR_THRESHOLD * sky_sigma))
    for i in range(n):
        flat = images[i].ravel()
        # the pixels that hold no measurement weigh nothing (none: the arithmetic as without)
        weight = None if present[i].all() else present[i].ravel().astype(np.float64)
        shapes = templates if weight is None else templates * weight
        peak_positions = _peak_positions(smooth[i], peaks[i], exclusion, source)
        positions = refine(flat, peak_positions, weight)
        sky = np.ones(size * size) if weight is None else weight
        columns = [sky] + psf_columns(positions, weight)
        q = basis(columns)
        image, (point,) = _project_out(flat, shapes[:1], q)
        norm = point @ point  # 0 only on a stamp without a measured pixel near the source
        residual = image - (point @ image) / (norm if norm > 0 else 1.0) * point  # its fit's
        residual = gaussian_filter(residual.reshape(size, size), smoothing)
        merged = find_neighbours(residual, RESIDUAL_THRESHOLD * sky_sigma, exclusion, source)
        if len(merged):
            mirror = np.clip(np.rint(2 * (centre + np.asarray(source)) - merged), 0,
                             size - 1).astype(int)
            here = np.clip(np.rint(merged), 0, size - 1).astype(int)
            asymmetric = (residual[here[:, 1], here[:, 0]]
                          > 2.0 * np.maximum(residual[mirror[:, 1], mirror[:, 0]], 0.0)
                          + sky_sigma)
            if asymmetric.any():  # all refined again, from their peaks, with the merged ones
                positions = refine(flat, np.vstack([peak_positions, merged[asymmetric]]),
                                   weight)
                columns = [sky] + psf_columns(positions, weight)
                q = basis(columns)
        yield (*_project_out(flat, shapes, q),
               np.array(columns[1:]).reshape(len(positions), size * size))


def blendedness(stamp, point, neighbours, point_flux, present=None):
    """Share of the light at a source that its neighbours' fits put there.

    HSC's and LSST's *blendedness* (Bosch et al. 2018, PASJ 70, S5,
    section 4.9): ``1 - child / parent``, the flux of the source alone over
    that of the source with its neighbours, both weighted by a profile
    centred on the source; here the PSF (``point``), and the fits of
    `without_neighbours` (the source as a point source, each neighbour as a
    PSF, and a constant sky) stand for the source and the neighbours.  0 for
    a source without neighbours, 1 for one whose own point-source flux is
    not positive while its neighbours' light reaches it.

    Parameters
    ----------
    stamp : array-like, shape (size, size)
        The stamp, neighbours included.
    point : `numpy.ndarray`, shape (size * size,)
        The PSF at the stamp's centre (the first profile template).
    neighbours : `numpy.ndarray`, shape (m, size * size)
        `without_neighbours`' neighbour PSFs.
    point_flux : float
        The source's point-source flux fitted with them
        (`sourceclf.profile_fits.fit_with_neighbours`).
    present : array-like of bool, shape (size, size) or (size * size,), optional
        The stamp's pixels that hold a measurement (`without_neighbours`);
        default all.

    Returns
    -------
    float
        Between 0 and 1.
    """
    if not len(neighbours):
        return 0.0
    flat = np.asarray(stamp, dtype=np.float64).ravel() - point_flux * point
    sky = np.ones(flat.size) if present is None else np.asarray(present, float).ravel()
    design = np.column_stack([sky, neighbours.T])
    fluxes = np.linalg.lstsq(design, flat, rcond=None)[0][1:]  # as in the joint fit
    light = max(float(point @ (neighbours.T @ fluxes)), 0.0)
    own = max(float(point_flux), 0.0) * float(point @ point)
    return light / (light + own) if light + own > 0 else 0.0
