"""Noise, neighbours, bright-star halos, saturation and crowding for rendered stamps.

`sourceclf.recipes.image_training_set` renders its sources noiseless through
each simulated field's PSF; `add_realism` then makes the stamps look like
cut-outs of a real SDSS frame: sky and photon noise, neighbours from the same
field (`add_neighbour`; many of them in crowded fields, `crowd_fields`),
bright-star halos and saturated cores as the photometric pipeline leaves them
(`saturate`).
"""

import copy

import numpy as np
from scipy.ndimage import binary_dilation

from ..bands import BANDS
from ..exceptions import InvalidInputError
from ..simulate import SDSS_BAND_DEFAULTS

__all__ = ["SATURATION", "add_realism", "add_neighbour", "crowd_fields", "crowded_rows",
           "saturate"]

#: Pixel level (nanomaggies) where SDSS frames saturate.  g, r and i are
#: bounded by the calibObj stars of field 4510-4-0030: the brightest unsaturated
#: star peaks at 173 (g), 215 (r) and 85 (i) nanomaggies, the faintest clearly
#: saturated one would peak at about 260, 550 and 350.  u and z (never
#: saturated in that field) are about 35,000 counts times the band's
#: nanomaggies per count.
SATURATION = {"u": 342.0, "g": 220.0, "r": 260.0, "i": 180.0, "z": 1300.0}


def add_realism(stamps, noiseless, table, *, random_state=0, noise_scatter=0.15,
                neighbour_fraction=0.4, min_separation=4, halo_fraction=0.2,
                deblended=None, crowded_share=0.0, crowded_means=None):
    """Noise, neighbours and bright-star halos for noiseless rendered stamps.

    Real stamps are rarely a lone source on flat sky: this adds to each stamp

    * Gaussian sky noise of the row's ``sky_sigma_<b>`` (the simulated
      field's, see `~sourceclf.recipes.image_training_set.render_varied_psf`;
      SDSS field 4510-4-0030's level where the table lacks it) times a
      per-stamp factor (log-normal, scatter ``noise_scatter``), plus the source's photon noise;
    * for ``neighbour_fraction`` of the stamps, a neighbour: another row's
      noiseless stamp (from the same simulated ``field``, so seen through the
      same PSF, where the table has that column) moved by at least
      ``min_separation`` pixels (what falls off the stamp is lost), and for
      a quarter of those a second one;
    * in ``crowded_share`` of the simulated fields, many more: each stamp
      of such a field gets a Poisson number of neighbours from the field,
      whose mean is drawn per field, uniformly within ``crowded_means``
      (a crowded field, as near the Galactic plane);
    * for ``halo_fraction`` of the stamps, the wing of a bright star (r = 11
      to 16) centred 16 to 45 pixels away: a Moffat profile of index 1.5-2.5,
      a smooth gradient across the stamp.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Output array, shape (n, 5, size, size), overwritten.
    noiseless : `numpy.ndarray`
        Noiseless stamps from `sourceclf.simulate.render_stamps` (``noise=False``).
    table : `~astropy.table.Table`
        The rendered catalog (its ``class`` column picks the stars whose
        colours the halos take).
    random_state : int or `numpy.random.Generator`
        Seed (an int, to find the crowded rows again with `crowded_rows`).
    noise_scatter : float
        Log-normal scatter of the sky noise level from stamp to stamp.
    neighbour_fraction : float
        Fraction of stamps with a neighbour.
    min_separation : int
        Smallest offset (pixels, along the larger axis) of a neighbour.
    halo_fraction : float
        Fraction of stamps with a bright star's halo.
    deblended : `numpy.ndarray`, optional
        Also filled, when given (same shape as ``stamps``): each source alone,
        as a deblender leaves it, with the same noise as in ``stamps`` (sky
        and photon noise of the source and its neighbours) and the same
        saturation level, without the neighbours' and halos' light.  MargNet's catalog
        columns are measured on it (`sourceclf.recipes.measured_columns`),
        as SDSS measures them after deblending.  It draws from its own
        random numbers: ``stamps`` are the same with or without it.
    crowded_share : float
        Share of the fields made crowded (0: none, and the stamps are those
        of a call without the argument, bit for bit).  Needs the table's
        ``field`` column.  The crowded fields and their neighbours draw from
        their own random numbers, so every other draw (the other neighbours,
        halos, saturation, noise) is the same as without crowding.
    crowded_means : tuple of float
        Range of a crowded field's mean number of extra neighbours per stamp;
        needed with ``crowded_share`` (simulation version 10's is
        ``SIMULATIONS[10]['crowded_means']`` in
        `sourceclf.recipes.image_training_set`).

    Returns
    -------
    stamps : `numpy.ndarray`
    """
    rng = np.random.default_rng(random_state)
    n, _, size, _ = noiseless.shape
    stamps[...] = noiseless
    has = rng.random(n) < neighbour_fraction
    hosts = np.concatenate([np.flatnonzero(has), np.flatnonzero(has & (rng.random(n) < 0.25))])
    partners = rng.integers(0, n, hosts.size)
    if "field" in table.colnames:  # a neighbour from the host's own field
        field = np.asarray(table["field"])
        order = np.argsort(field, kind="stable")
        start = np.searchsorted(field[order], field[hosts], side="left")
        count = np.searchsorted(field[order], field[hosts], side="right") - start
        partners = order[start + (partners % count)]
    for i, j in zip(hosts, partners):
        add_neighbour(stamps[i], noiseless[j], rng, min_separation)
    if crowded_share > 0:
        if "field" not in table.colnames:
            raise InvalidInputError("add_realism: crowded_share needs the table's 'field' "
                                    "column (render_varied_psf adds it)")
        if crowded_means is None:
            raise InvalidInputError("add_realism: crowded_share needs crowded_means (the range "
                                    "of a crowded field's mean number of extra neighbours)")
        crowd_fields(stamps, noiseless, table["field"], _crowd_generator(rng),
                     crowded_share, tuple(crowded_means), min_separation)

    stars = np.flatnonzero(np.asarray(table["class"]).astype(str) == "STAR")
    halos = np.flatnonzero(rng.random(n) < halo_fraction)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    for i, j in zip(halos, rng.choice(stars, halos.size)):
        colour = noiseless[j].sum(axis=(1, 2))
        colour = np.clip(colour / max(colour[BANDS.index("r")], 1e-12), 0.0, 20.0)
        flux_r = 10 ** (-0.4 * (rng.uniform(11.0, 16.0) - 22.5))
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(16, 45)
        beta, gamma = rng.uniform(1.5, 2.5), 2.0
        r2 = (xx - dist * np.cos(angle)) ** 2 + (yy - dist * np.sin(angle)) ** 2
        profile = (beta - 1) / (np.pi * gamma ** 2) * (1 + r2 / gamma ** 2) ** -beta
        stamps[i] += (flux_r * colour[:, None, None] * profile[None]).astype(np.float32)

    if deblended is not None:  # the same saturation levels, without consuming rng
        deblended[...] = noiseless
        saturate(deblended, copy.deepcopy(rng))
    saturate(stamps, rng)
    level = np.exp(rng.normal(0.0, noise_scatter, n)).astype(np.float32)
    for k, b in enumerate(BANDS):
        props = SDSS_BAND_DEFAULTS[b]
        sky = (np.asarray(table[f"sky_sigma_{b}"], dtype=np.float32)
               if f"sky_sigma_{b}" in table.colnames else np.float32(props["sky_sigma"]))
        var = (sky * level)[:, None, None] ** 2 \
            + np.clip(stamps[:, k], 0, None) * props["nmgy_per_electron"]
        noise = np.sqrt(var) * rng.standard_normal(var.shape, dtype=np.float32)
        stamps[:, k] += noise
        if deblended is not None:
            deblended[:, k] += noise
    return stamps


def _crowd_generator(rng):
    """The random numbers of `add_realism`'s crowded fields: a stream of their own, spawned
    from its generator (which spawning does not advance), so that its other draws are those
    of a call without crowding."""
    return rng.spawn(1)[0]


def crowded_rows(table, *, random_state, share):
    """The rows of the fields ``add_realism(..., table, random_state=random_state,
    crowded_share=share)`` crowds (`crowd_fields`), without rendering anything.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rendered catalog, with its ``field`` column.
    random_state : int
        `add_realism`'s seed
        (`~sourceclf.recipes.image_training_set.simulated_training_set` marks the rows in its
        table's ``crowded_field`` column).
    share : float
        Its ``crowded_share``.

    Returns
    -------
    rows : `numpy.ndarray` of bool
    """
    field = np.asarray(table["field"])
    fields = np.unique(field)
    crowd = _crowd_generator(np.random.default_rng(random_state))
    return np.isin(field, fields[crowd.random(fields.size) < share])


def crowd_fields(stamps, noiseless, field, rng, share, means, min_separation):
    """Crowd a share of the simulated fields: `add_realism`'s crowded fields.

    Each field is crowded with probability ``share``; each stamp of a crowded
    field gets a Poisson number of neighbours (of a mean drawn per field,
    uniformly within ``means``), each another row's noiseless stamp of the same
    field placed by `add_neighbour`.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Stamps (n, 5, size, size), added to in place.
    noiseless : `numpy.ndarray`
        The rows' noiseless stamps, the neighbours' images.
    field : array-like
        Each row's simulated field.
    rng : `numpy.random.Generator`
    share : float
    means : tuple of float
    min_separation : int
        As `add_neighbour`.

    Returns
    -------
    crowded : `numpy.ndarray` of bool
        The rows of the crowded fields.
    """
    field = np.asarray(field)
    fields = np.unique(field)
    chosen = fields[rng.random(fields.size) < share]
    for name, mean in zip(chosen, rng.uniform(*means, chosen.size)):
        rows = np.flatnonzero(field == name)
        for i, k in zip(rows, rng.poisson(mean, rows.size)):
            for j in rng.choice(rows, k):
                add_neighbour(stamps[i], noiseless[j], rng, min_separation)
    return np.isin(field, chosen)


def add_neighbour(stamp, other, rng, min_separation):
    """Add ``other`` (a noiseless 5-band stamp) to ``stamp`` in place, moved by a random
    offset of at least ``min_separation`` pixels along the larger axis (what falls off
    the stamp is lost): `add_realism`'s neighbours."""
    size = stamp.shape[-1]
    while True:
        dx, dy = rng.integers(-size + 4, size - 4, 2)
        if max(abs(dx), abs(dy)) >= min_separation:
            break
    ys, yd = (slice(0, size - dy), slice(dy, size)) if dy >= 0 else \
        (slice(-dy, size), slice(0, size + dy))
    xs, xd = (slice(0, size - dx), slice(dx, size)) if dx >= 0 else \
        (slice(-dx, size), slice(0, size + dx))
    stamp[:, yd, xd] += other[:, ys, xs]


def saturate(stamps, rng, scatter=0.25):
    """Mimic saturated stars the way SDSS frames show them.

    Charge above the saturation level bleeds along the CCD column; the
    photometric pipeline then masks the saturated and bled pixels, grows the
    mask by one to three pixels and replaces the masked pixels by linear
    interpolation along each row from the nearest good pixels.  A bright star
    is left with a hollow, horizontally streaked core (as the r < 15.5 stars of
    field 4510-4-0030 show).  The level is `SATURATION` times a random factor
    (uniform within ``1 +- scatter``) per stamp.  Works in place.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Noiseless stamps, shape (n, 5, size, size), nanomaggies.
    rng : `numpy.random.Generator`
    scatter : float
        Relative scatter of the saturation level between stamps.

    Returns
    -------
    stamps : `numpy.ndarray`
    """
    n, _, size, _ = stamps.shape
    factor = rng.uniform(1 - scatter, 1 + scatter, n)
    cols = np.arange(size)
    for k, b in enumerate(BANDS):
        level = SATURATION[b] * factor
        for i in np.flatnonzero(stamps[:, k].max(axis=(1, 2)) > level):
            image = stamps[i, k]
            mask = image > level[i]
            spill = np.clip(image - level[i], 0, None).sum(axis=0) / level[i]
            for c in np.flatnonzero(mask.any(axis=0)):
                rows = np.flatnonzero(mask[:, c])
                extra = int(np.ceil(spill[c] / 2))
                mask[max(rows[0] - extra, 0):min(rows[-1] + extra + 1, size), c] = True
            mask = binary_dilation(mask, iterations=int(rng.integers(1, 4)))
            for row in np.flatnonzero(mask.any(axis=1)):
                good = ~mask[row]
                if good.any():
                    image[row, ~good] = np.interp(cols[~good], cols[good], image[row, good])
                else:
                    image[row] = 0.0
    return stamps
