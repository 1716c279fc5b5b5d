"""The simulated catalog and stamps the shipped image models learn from.

No labelled SDSS cutouts ship with sourceclf's data, so the image models learn
from stamps *simulated* from realistic catalogs (`simulated_sgq_catalog`):

* galaxies and stars: rows of the real faint compact SDSS DR16 set
  (``sdss_dr16_faint_compact_sg.fits``: MargNet's 24 columns) resampled, and
  for half of the galaxies the parametric model of
  `sourceclf.simulate.simulate_catalog`, whose sizes reach the clearly
  extended galaxies the faint compact set lacks;
* quasars: point sources with the colours of the SDSS DR14 spectroscopic
  quasars (``sdss_dr14_spectro_ugriz.fits``);
* every row is moved to a new brightness (all five magnitudes shifted
  together, colours kept) drawn from `MAGNITUDE_RANGES`, so that the models
  see sources from r = 14 to the noise, like the stars of a real frame;
* `render_varied_psf` draws each row with GalSim (`render_stamps`: Moffat PSF
  of the row's ``psffwhm``, with a Moffat index between 2 and 4); `add_realism`
  then adds neighbours, bright-star halos and sky noise (of SDSS field
  4510-4-0030, scaled per stamp).

`simulated_training_set` puts these steps together and caches the result.
"""

import os
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from scipy.ndimage import binary_dilation

from ..bands import BANDS
from ..simulate import SDSS_BAND_DEFAULTS, render_stamps, simulate_catalog
from .data import DR14_SPECTRO_FILE, FAINT_COMPACT_SG_FILE, default_data_dir

__all__ = ["SIMULATION", "MAGNITUDE_RANGES", "SATURATION", "simulated_sgq_catalog",
           "add_realism", "saturate", "rendered_psf_fwhm", "trained_psf_range",
           "render_varied_psf", "simulated_training_set"]

#: Simulation settings shared by the three recipes (and written into the cards).
SIMULATION = {"version": 7, "n": 30000, "seed": 20240, "size": 32,
              "neighbour_fraction": 0.4, "min_separation": 4, "halo_fraction": 0.2,
              "noise_scatter": 0.15,
              "moffat_beta": (2.0, 4.0), "psf_scale_scatter": 0.08, "psf_groups": 8}

#: Dereddened r magnitude of each class: (low, high, weight) uniform pieces.
#: Point sources reach fainter (r 24) than galaxies (r 22.5), and galaxies
#: thin out above r = 21.5: near the noise the stamps barely tell a compact
#: galaxy from a star, and the shipped models then lean to "point source" (a
#: prior, stated in the cards).
MAGNITUDE_RANGES = {
    "GALAXY": ((14.0, 19.0, 0.35), (19.0, 21.5, 0.5), (21.5, 22.5, 0.15)),
    "STAR": ((11.5, 14.0, 0.06), (14.0, 19.0, 0.26), (19.0, 24.0, 0.68)),
    "QSO": ((15.0, 19.0, 0.25), (19.0, 23.5, 0.75)),
}

#: Pixel level (nanomaggies) where SDSS frames saturate.  g, r and i are
#: bounded by the calibObj stars of field 4510-4-0030: the brightest unsaturated
#: star peaks at 173 (g), 215 (r) and 85 (i) nanomaggies, the faintest clearly
#: saturated one would peak at about 260, 550 and 350.  u and z (never
#: saturated in that field) are about 35,000 counts times the band's
#: nanomaggies per count.
SATURATION = {"u": 342.0, "g": 220.0, "r": 260.0, "i": 180.0, "z": 1300.0}


def _draw_magnitudes(cls, n, rng):
    pieces = MAGNITUDE_RANGES[cls]
    weights = np.array([p[2] for p in pieces])
    which = rng.choice(len(pieces), size=n, p=weights / weights.sum())
    low = np.array([p[0] for p in pieces])[which]
    high = np.array([p[1] for p in pieces])[which]
    return rng.uniform(low, high)


def simulated_sgq_catalog(n, *, random_state=0, data_dir=None):
    """A catalog of galaxies, quasars and stars (a third each) to render stamps from.

    Parameters
    ----------
    n : int
        Number of rows.
    random_state : int
        Seed.
    data_dir : path-like, optional
        Directory of the SDSS tables (default
        `sourceclf.recipes.data.default_data_dir`).

    Returns
    -------
    table : `~astropy.table.Table`
        MargNet's columns (``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_<b>``, ``u_g`` ... ``i_z``), ``ra``, ``dec``, ``class``
        and ``source`` (``'sdss'`` for resampled rows, ``'parametric'``).
    """
    data_dir = Path(data_dir or default_data_dir())
    sg = Table.read(data_dir / FAINT_COMPACT_SG_FILE)
    qso = Table.read(data_dir / DR14_SPECTRO_FILE)
    rng = np.random.default_rng(random_state)
    per_class = [n // 3 + (i < n % 3) for i in range(3)]
    n_gal, n_qso, n_star = per_class
    seeds = rng.integers(0, 2 ** 31, 4)
    parts = [
        (simulate_catalog(n_gal - n_gal // 2, classes=["GALAXY"], from_table=sg,
                          random_state=seeds[0]), "sdss"),
        (simulate_catalog(n_gal // 2, classes=["GALAXY"], r_range=(14.0, 23.0),
                          random_state=seeds[1]), "parametric"),
        (simulate_catalog(n_star, classes=["STAR"], from_table=sg, random_state=seeds[2]),
         "sdss"),
        (simulate_catalog(n_qso, classes=["QSO"], qso_table=qso, r_range=(15.0, 22.0),
                          random_state=seeds[3]), "parametric"),
    ]
    tables = []
    for table, source in parts:
        table["source"] = np.full(len(table), source, dtype="U10")
        tables.append(table)
    table = vstack(tables, metadata_conflicts="silent")
    table = table[rng.permutation(len(table))]
    classes = np.asarray(table["class"]).astype(str)
    r_new = np.empty(len(table))
    for cls in MAGNITUDE_RANGES:
        rows = classes == cls
        r_new[rows] = _draw_magnitudes(cls, int(rows.sum()), rng)
    delta = r_new - np.asarray(table["dered_r"], dtype=np.float64)
    # A galaxy made brighter by -delta magnitudes is, at fixed luminosity,
    # 10**(-0.2 delta) times nearer and so larger on the sky by as much: a
    # faint compact galaxy moved to r = 15 must not stay star-sized.  Galaxies
    # made fainter keep their size (the faint compact rows are already the
    # compact end of the faint population).
    size = np.clip(10 ** (-0.2 * delta), 1.0, 4.0)
    galaxy = classes == "GALAXY"
    for b in BANDS:  # colours unchanged
        unit = table[f"dered_{b}"].unit
        table[f"dered_{b}"] = np.asarray(table[f"dered_{b}"], dtype=np.float64) + delta
        table[f"dered_{b}"].unit = unit
        radius = np.asarray(table[f"deVRad_{b}"], dtype=np.float64)
        table[f"deVRad_{b}"] = np.where(galaxy, radius * size, radius)
        table[f"deVRad_{b}"].unit = "arcsec"
    table.meta = {"ORIGIN": "sourceclf.image_recipes.simulated_sgq_catalog (synthetic)"}
    return table


def add_realism(stamps, noiseless, table, *, random_state=0, noise_scatter=0.15,
                neighbour_fraction=0.4, min_separation=4, halo_fraction=0.2):
    """Noise, neighbours and bright-star halos for noiseless rendered stamps.

    Real stamps are rarely a lone source on flat sky: this adds to each stamp

    * Gaussian sky noise of the SDSS field's level times a per-stamp factor
      (log-normal, scatter ``noise_scatter``), plus the source's photon noise;
    * for ``neighbour_fraction`` of the stamps, a neighbour: another row's
      noiseless stamp moved by at least ``min_separation`` pixels (what falls
      off the stamp is lost), and for a quarter of those a second one;
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
    random_state : int
        Seed.
    noise_scatter : float
        Log-normal scatter of the sky noise level from stamp to stamp.
    neighbour_fraction : float
        Fraction of stamps with a neighbour.
    min_separation : int
        Smallest offset (pixels, along the larger axis) of a neighbour.
    halo_fraction : float
        Fraction of stamps with a bright star's halo.

    Returns
    -------
    stamps : `numpy.ndarray`
    """
    rng = np.random.default_rng(random_state)
    n, _, size, _ = noiseless.shape
    stamps[...] = noiseless
    has = rng.random(n) < neighbour_fraction
    hosts = np.concatenate([np.flatnonzero(has), np.flatnonzero(has & (rng.random(n) < 0.25))])
    for i, j in zip(hosts, rng.integers(0, n, hosts.size)):
        while True:
            dx, dy = rng.integers(-size + 4, size - 4, 2)
            if max(abs(dx), abs(dy)) >= min_separation:
                break
        ys, yd = (slice(0, size - dy), slice(dy, size)) if dy >= 0 else \
            (slice(-dy, size), slice(0, size + dy))
        xs, xd = (slice(0, size - dx), slice(dx, size)) if dx >= 0 else \
            (slice(-dx, size), slice(0, size + dx))
        stamps[i, :, yd, xd] += noiseless[j, :, ys, xs]

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

    saturate(stamps, rng)
    level = np.exp(rng.normal(0.0, noise_scatter, n)).astype(np.float32)
    for k, b in enumerate(BANDS):
        props = SDSS_BAND_DEFAULTS[b]
        var = (props["sky_sigma"] * level[:, None, None]) ** 2 \
            + np.clip(stamps[:, k], 0, None) * props["nmgy_per_electron"]
        stamps[:, k] += np.sqrt(var) * rng.standard_normal(var.shape, dtype=np.float32)
    return stamps


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


def _psf_groups(n, random_state):
    """The PSF groups of `render_varied_psf`: generator, betas, factors, group of each row."""
    rng = np.random.default_rng(random_state)
    n_groups = SIMULATION["psf_groups"]
    betas = np.linspace(*SIMULATION["moffat_beta"], n_groups)
    factors = np.exp(rng.normal(0.0, SIMULATION["psf_scale_scatter"], n_groups))
    return rng, betas, factors, rng.integers(0, n_groups, n)


def rendered_psf_fwhm(table, factors):
    """FWHM (arcsec) of the PSF each row of a catalog is rendered with, per band.

    `sourceclf.simulate.render_stamps` draws a Moffat of FWHM ``psffwhm_<b>``
    times the band's ``psf_scale`` (`SDSS_BAND_DEFAULTS`, which makes it the
    FWHM `sourceclf.psf.measure_psf` measures on real frames) times the
    row's group factor, or the band's default FWHM where ``psffwhm_<b>`` is
    missing.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog (`simulated_sgq_catalog`).
    factors : array-like
        Each row's PSF scale factor (the ``psf_scale`` column
        `render_varied_psf` writes).

    Returns
    -------
    fwhm : dict
        ``{band: array}``, arcsec.
    """
    out = {}
    for b in BANDS:
        catalog = np.asarray(table[f"psffwhm_{b}"], dtype=np.float64)
        fwhm = catalog * SDSS_BAND_DEFAULTS[b]["psf_scale"] * np.asarray(factors, float)
        ok = np.isfinite(fwhm) & (fwhm > 0)
        out[b] = np.where(ok, fwhm, SDSS_BAND_DEFAULTS[b]["psf_fwhm"])
    return out


def trained_psf_range(*, percentiles=(2.5, 97.5), data_dir=None):
    """The seeing the shipped image models were trained on, per band.

    Rebuilds the catalog of `simulated_training_set` from `SIMULATION` (no
    rendering: the PSF groups are drawn as `render_varied_psf` draws them)
    and takes percentiles of the rendered FWHMs (`rendered_psf_fwhm`).  The
    central 95% is the default: beyond it a model has seen too few stamps
    (under 2.5% of them, a few hundred) to have learnt the seeing.

    Parameters
    ----------
    percentiles : tuple of float
        Lower and upper percentile.
    data_dir : path-like, optional
        Directory of the SDSS tables.

    Returns
    -------
    psf_range : dict
        ``{band: [low, high]}``, arcsec rounded to 0.01 (a model card's
        ``domain['psf_fwhm']``).
    """
    seed = SIMULATION["seed"]
    table = simulated_sgq_catalog(SIMULATION["n"], random_state=seed, data_dir=data_dir)
    _, _, factors, group = _psf_groups(len(table), seed + 1)
    fwhm = rendered_psf_fwhm(table, factors[group])
    return {b: [round(float(v), 2) for v in np.percentile(fwhm[b], percentiles)]
            for b in BANDS}


def render_varied_psf(table, *, random_state=0, progress=None):
    """Noiseless stamps of a catalog, with a PSF profile that varies between rows.

    Real PSFs differ from field to field and from any one model: SDSS stars have
    heavier wings than the Moffat profile fitted to their cores.  The rows are
    dealt into ``SIMULATION['psf_groups']`` groups, each rendered by
    `sourceclf.simulate.render_stamps` with its own Moffat index (evenly spaced
    over ``SIMULATION['moffat_beta']``) and its own factor (log-normal, scatter
    ``psf_scale_scatter``) on the catalog-to-FWHM scale, so that a network
    cannot tell stars from compact galaxies by one exact PSF shape.  The
    choices are stored in the table's ``psf_beta`` and ``psf_scale`` columns.

    Returns
    -------
    stamps : `numpy.ndarray`
        float32, shape (n, 5, size, size), noiseless.
    """
    rng, betas, factors, group = _psf_groups(len(table), random_state)
    size = SIMULATION["size"]
    stamps = np.zeros((len(table), len(BANDS), size, size), dtype=np.float32)
    for g in range(len(betas)):
        rows = np.flatnonzero(group == g)
        if rows.size == 0:
            continue
        scale = {b: SDSS_BAND_DEFAULTS[b]["psf_scale"] * factors[g] for b in BANDS}
        stamps[rows] = render_stamps(table[rows], size=size, random_state=rng.integers(2 ** 31),
                                     noise=False, moffat_beta=float(betas[g]), psf_scale=scale,
                                     progress=progress)
    table["psf_beta"] = betas[group].astype(np.float32)
    table["psf_scale"] = factors[group].astype(np.float32)
    return stamps


def simulated_training_set(n=None, *, random_state=None, data_dir=None, cache_dir=None,
                           progress=None):
    """The simulated catalog and stamps the image recipes train on.

    The result is cached (``cache_dir``, default ``$SOURCECLF_CACHE`` or
    ``~/.cache/sourceclf``) as float16 stamps, since rendering takes minutes.

    Returns
    -------
    table : `~astropy.table.Table`
    stamps : `numpy.ndarray`
        float32, shape (n, 5, 32, 32), nanomaggies.
    """
    n = int(n or SIMULATION["n"])
    seed = int(SIMULATION["seed"] if random_state is None else random_state)
    cache_dir = Path(cache_dir or os.environ.get("SOURCECLF_CACHE")
                     or Path.home() / ".cache" / "sourceclf")
    stem = cache_dir / f"sim-sgq-v{SIMULATION['version']}-n{n}-seed{seed}"
    if stem.with_suffix(".npy").is_file() and stem.with_suffix(".ecsv").is_file():
        table = Table.read(stem.with_suffix(".ecsv"), format="ascii.ecsv")
        return table, np.load(stem.with_suffix(".npy")).astype(np.float32)
    table = simulated_sgq_catalog(n, random_state=seed, data_dir=data_dir)
    noiseless = render_varied_psf(table, random_state=seed + 1, progress=progress)
    stamps = np.empty_like(noiseless)
    add_realism(stamps, noiseless, table, random_state=seed + 2,
                noise_scatter=SIMULATION["noise_scatter"],
                neighbour_fraction=SIMULATION["neighbour_fraction"],
                min_separation=SIMULATION["min_separation"],
                halo_fraction=SIMULATION["halo_fraction"])
    del noiseless
    cache_dir.mkdir(parents=True, exist_ok=True)
    table.write(stem.with_suffix(".ecsv"), format="ascii.ecsv", overwrite=True)
    # float16 halves the cache; its range ends at 65504 (no real pixel comes close).
    np.save(stem.with_suffix(".npy"), np.clip(stamps, -65000, 65000).astype(np.float16))
    return table, stamps
