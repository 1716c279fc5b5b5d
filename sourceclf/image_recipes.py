"""Recipes that train the shipped image models on simulated SDSS stamps.

Run them with::

    python -m sourceclf.image_recipes all --data-dir ../shared/data

(or one of ``margnet-cnn-sgq``, ``margnet-sgq``, ``margformer-sgq``).  No
labelled SDSS cutouts ship with sourceclf's data, so these models learn from
stamps *simulated* from realistic catalogs (`simulated_sgq_catalog`):

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

The rows are split with `sourceclf.train_recipes.recipe_split` (stratified,
seed 42) into training, validation (early stopping; the ensemble's head),
calibration (conformal sets) and test parts; test metrics in the cards are on
held-out *simulated* stamps.  To train the same architectures on real labelled
cutouts use ``sourceclf.train(table, cutouts, model="margformer")`` (or
``"margnet-ensemble"``, ``"margnet-cnn"``).
"""

import argparse
import functools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .bands import BANDS

__all__ = ["RECIPES", "MAGNITUDE_RANGES", "SIMULATION", "SATURATION",
           "simulated_sgq_catalog", "add_realism", "saturate", "render_varied_psf",
           "simulated_training_set", "luptitude", "devrad_from_fluxes",
           "real_frame_catalog", "frame_star_check", "frame_extended_sources",
           "frame_galaxy_check", "main"]

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

_SG_FILE = "sdss_dr16_faint_compact_sg.fits"
_QSO_FILE = "sdss_dr14_spectro_ugriz.fits"
_FRAME = "sdss_frame_004510-4-0030"


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
        `sourceclf.train_recipes.default_data_dir`).

    Returns
    -------
    table : `~astropy.table.Table`
        MargNet's columns (``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_<b>``, ``u_g`` ... ``i_z``), ``ra``, ``dec``, ``class``
        and ``source`` (``'sdss'`` for resampled rows, ``'parametric'``).
    """
    from astropy.table import Table, vstack

    from .simulate import simulate_catalog
    from .train_recipes import default_data_dir

    data_dir = Path(data_dir or default_data_dir())
    sg = Table.read(data_dir / _SG_FILE)
    qso = Table.read(data_dir / _QSO_FILE)
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
    from .simulate import SDSS_BAND_DEFAULTS

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


#: Pixel level (nanomaggies) where SDSS frames saturate.  g, r and i are
#: bounded by the calibObj stars of field 4510-4-0030: the brightest unsaturated
#: star peaks at 173 (g), 215 (r) and 85 (i) nanomaggies, the faintest clearly
#: saturated one would peak at about 260, 550 and 350.  u and z (never
#: saturated in that field) are about 35,000 counts times the band's
#: nanomaggies per count.
SATURATION = {"u": 342.0, "g": 220.0, "r": 260.0, "i": 180.0, "z": 1300.0}


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
    from scipy.ndimage import binary_dilation

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
    from .simulate import SDSS_BAND_DEFAULTS, render_stamps

    rng = np.random.default_rng(random_state)
    n_groups = SIMULATION["psf_groups"]
    betas = np.linspace(*SIMULATION["moffat_beta"], n_groups)
    factors = np.exp(rng.normal(0.0, SIMULATION["psf_scale_scatter"], n_groups))
    group = rng.integers(0, n_groups, len(table))
    size = SIMULATION["size"]
    stamps = np.zeros((len(table), len(BANDS), size, size), dtype=np.float32)
    for g in range(n_groups):
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
    from astropy.table import Table

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


#: SDSS asinh-magnitude softening per band (Lupton et al. 1999; SDSS DR docs).
_LUPTON_B = {"u": 1.4e-10, "g": 0.9e-10, "r": 1.2e-10, "i": 1.8e-10, "z": 7.4e-10}


def luptitude(flux, band):
    """SDSS asinh magnitude of a flux in nanomaggies (finite for fluxes <= 0 too)."""
    b = _LUPTON_B[band]
    return -2.5 / np.log(10) * (np.arcsinh(np.asarray(flux, float) * 1e-9 / (2 * b)) + np.log(b))


@functools.lru_cache(maxsize=1)
def _psf_flux_fractions(beta=3.0):
    """R / FWHM grid and the PSF-fitted flux fraction of a PSF-convolved deV profile."""
    import galsim

    fwhm = 8.0  # pixels: the ratio depends on R / FWHM only
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)

    def draw(obj):
        return obj.drawImage(nx=128, ny=128, scale=1.0, method="no_pixel").array

    p = draw(psf)
    grid = np.linspace(0.0, 3.0, 61)
    fractions = [1.0] + [
        float((draw(galsim.Convolve(galsim.DeVaucouleurs(half_light_radius=x * fwhm), psf))
               * p).sum() / (p * p).sum()) for x in grid[1:]]
    return grid, np.array(fractions)


def devrad_from_fluxes(psf_flux, model_flux, psffwhm):
    """de Vaucouleurs radii (arcsec) from the ratio of PSF to model flux.

    PSF photometry of an extended source misses light: for a de Vaucouleurs
    profile of half-light radius R seen through a Moffat PSF (index 3) of
    FWHM w, the PSF flux is a known fraction of the total that falls from 1 at
    R = 0 to 0.2 at R = 3w.  Inverting it turns a catalog's PSF and model
    fluxes (SDSS's ``psfFlux``/``modelFlux``, the basis of its own star/galaxy
    separation) into a radius for catalogs that lack ``deVRad``; ratios of 1
    or more give 0.  Bands without positive fluxes get the median of the
    row's other bands, rows without any 0.

    Parameters
    ----------
    psf_flux, model_flux : array-like, shape (n, 5)
        Fluxes per band, any one unit.
    psffwhm : array-like, shape (n, 5)
        PSF FWHM per band, arcsec.

    Returns
    -------
    devrad : `numpy.ndarray`, shape (n, 5)
    """
    grid, fractions = _psf_flux_fractions()
    psf_flux = np.asarray(psf_flux, float)
    model_flux = np.asarray(model_flux, float)
    ok = (psf_flux > 0) & (model_flux > 0)
    ratio = np.where(ok, psf_flux / np.where(ok, model_flux, 1.0), np.nan)
    radius = np.interp(-np.clip(ratio, fractions[-1], 1.0), -fractions, grid)
    radius = np.where(ok, radius * np.asarray(psffwhm, float), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without a usable band
        row = np.nanmedian(radius, axis=1)
    row = np.where(np.isfinite(row), row, 0.0)
    return np.where(np.isfinite(radius), radius, row[:, None])


def real_frame_catalog(data_dir=None, frames=None):
    """The calibObj stars of SDSS field 4510-4-0030 as a catalog with MargNet's columns.

    ``ra``, ``dec``; ``dered_<b>`` from the model fluxes as SDSS asinh
    magnitudes minus ``extinction_<b>``; ``psffwhm_<b>`` (calibObj
    ``PSF_FWHM``); ``deVRad_<b>`` from the PSF-to-model flux ratios with
    `devrad_from_fluxes` (calibObj has no deVRad); colours ``u_g`` ...; and
    ``class`` STAR (they are photometric stars, OBJC_TYPE 6).

    Parameters
    ----------
    data_dir : path-like, optional
        Directory holding ``sdss_frame_004510-4-0030/``.
    frames : dict, optional
        The frames already read, ``{band: (data, wcs)}``.

    Returns
    -------
    catalog : `~astropy.table.Table` or None
        None when the frame data are absent.
    frames : dict
        ``{band: (data, wcs)}``, the frames read once (pass them to
        ``classify(catalog, images=frames)``).
    """
    from astropy import units as u
    from astropy.table import Table

    from .cutouts import read_frame
    from .train_recipes import default_data_dir

    frame_dir = Path(data_dir or default_data_dir()) / _FRAME
    path = frame_dir / "calibobj_stars_004510-4-0030.fits"
    if not path.is_file():
        return None, None
    if frames is None:
        frames = {b: read_frame(frame_dir / f"frame-{b}-004510-4-0030.fits.bz2")
                  for b in BANDS}
    stars = Table.read(path)
    cat = Table()
    cat["objid"] = np.asarray(stars["ID"])
    cat["ra"] = np.asarray(stars["RA"], float) * u.deg
    cat["dec"] = np.asarray(stars["DEC"], float) * u.deg
    flux = np.asarray(stars["MODELFLUX"], float)
    ext = np.asarray(stars["EXTINCTION"], float)
    fwhm = np.asarray(stars["PSF_FWHM"], float)
    devrad = devrad_from_fluxes(stars["PSFFLUX"], flux, fwhm)
    observed = {}
    for k, b in enumerate(BANDS):
        observed[b] = luptitude(flux[:, k], b)
        cat[f"dered_{b}"] = (observed[b] - ext[:, k]) * u.mag
        cat[f"deVRad_{b}"] = devrad[:, k] * u.arcsec
        cat[f"psffwhm_{b}"] = fwhm[:, k] * u.arcsec
        cat[f"extinction_{b}"] = ext[:, k] * u.mag
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        cat[f"{a}_{b}"] = (observed[a] - observed[b]) * u.mag
    cat["class"] = np.full(len(cat), "STAR")
    cat.meta["ORIGIN"] = ("sourceclf.image_recipes.real_frame_catalog: calibObj stars of "
                          "SDSS 4510-4-0030; deVRad from the PSF/model flux ratios")
    return cat, frames


def frame_star_check(clf, data_dir=None, frames=None):
    """Fraction of the real calibObj stars of field 4510-4-0030 called STAR or QSO.

    Models that read features get those of `real_frame_catalog` (with its
    estimated ``deVRad``).

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The model to check.
    data_dir : path-like, optional
        Directory holding ``sdss_frame_004510-4-0030/``.
    frames : dict, optional
        The frames already read, ``{band: (data, wcs)}`` (as `real_frame_catalog`
        returns them), so that several checks read them once.

    Returns
    -------
    result : dict or None
        ``n``, ``point_fraction`` and the counts per predicted class; None
        when the frame data are absent.
    """
    from .classification import classify

    cat, frames = real_frame_catalog(data_dir, frames)
    if cat is None:
        return None
    out = classify(cat, images=frames, model=clf, confidence=None)
    pred = np.asarray(out["pred_class"].filled("")).astype(str)
    counts = {c: int(np.sum(pred == c)) for c in clf.classes}
    return {"data": f"{_FRAME}: the 161 calibObj photometric stars (OBJC_TYPE 6) on the "
                    "real frames" + ("" if clf.feature_set is None else
                                     "; features from calibObj, deVRad from its PSF/model "
                                     "flux ratios (image_recipes.real_frame_catalog)"),
            "n": len(cat), "point_fraction": round(float(np.isin(pred, ["STAR", "QSO"]).mean()), 4),
            "predicted": counts}


def frame_extended_sources(data_dir=None, frames=None, *, max_r=19.5, min_width=1.8,
                           max_peak=50.0):
    """Clearly extended bright sources of SDSS field 4510-4-0030, found with photutils.

    Sources are detected on the r frame (`photutils.segmentation.detect_sources`
    on the sky-subtracted frame smoothed by a 3-pixel Gaussian, 3 sigma, 10
    pixels) and measured with `~photutils.segmentation.SourceCatalog`.  Kept
    are those brighter than ``max_r`` (segment flux), whose FWHM exceeds
    ``min_width`` times the median FWHM of the calibObj stars, with no calibObj
    star within 3 arcsec and a peak under ``max_peak`` nanomaggies (which
    drops saturated stars, whose bleed trails and spikes widen them).  These
    are the galaxies anyone would point at in the frame; the frame has no
    spectroscopic labels.

    Returns
    -------
    sources : `~astropy.table.Table` or None
        ``ra``, ``dec``, ``x``, ``y`` (pixels of the r frame), ``r_segment``
        and ``fwhm_pix``; None when the frame data are absent.
    """
    from astropy import units as u
    from astropy.convolution import convolve
    from astropy.coordinates import SkyCoord
    from astropy.stats import sigma_clipped_stats
    from astropy.table import Table
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel

    stars, frames = real_frame_catalog(data_dir, frames)
    if stars is None:
        return None
    data, wcs = frames["r"]
    _, median, std = sigma_clipped_stats(data, sigma=3.0)
    image = data - median
    smooth = convolve(image, make_2dgaussian_kernel(3.0, size=5))
    segments = detect_sources(smooth, 3.0 * std, n_pixels=10)
    found = SourceCatalog(image, segments, convolved_data=smooth, wcs=wcs)
    fwhm = np.asarray(found.fwhm.value)
    flux = np.asarray(found.segment_flux, dtype=float)
    r_seg = 22.5 - 2.5 * np.log10(np.clip(flux, 1e-3, None))
    _, sep, _ = found.sky_centroid.match_to_catalog_sky(SkyCoord(stars["ra"], stars["dec"]))
    is_star = sep < 3 * u.arcsec
    psf = np.median(fwhm[is_star])
    keep = (~is_star & (r_seg < max_r) & (fwhm > min_width * psf)
            & (np.asarray(found.max_value) < max_peak))
    coords = found.sky_centroid[keep]
    out = Table()
    out["ra"] = coords.ra.to(u.deg)
    out["dec"] = coords.dec.to(u.deg)
    out["x"] = np.asarray(found.x_centroid)[keep]
    out["y"] = np.asarray(found.y_centroid)[keep]
    out["r_segment"] = r_seg[keep] * u.mag
    out["fwhm_pix"] = fwhm[keep]
    out.meta["ORIGIN"] = ("sourceclf.image_recipes.frame_extended_sources: photutils on the "
                          f"r frame of {_FRAME}; stellar FWHM {psf:.2f} pix")
    return out


def frame_galaxy_check(clf, data_dir=None, frames=None):
    """Fraction of the clearly extended bright sources of the real frame called GALAXY.

    Only for image-only models (``clf.feature_set`` None): the sources of
    `frame_extended_sources` have positions but no SDSS photometry.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The model to check.
    data_dir : path-like, optional
        Directory holding ``sdss_frame_004510-4-0030/``.
    frames : dict, optional
        The frames already read, ``{band: (data, wcs)}`` (as `real_frame_catalog`
        returns them), so that several checks read them once.

    Returns
    -------
    result : dict or None
        ``n``, ``galaxy_fraction`` and the counts per predicted class; None
        when the frame data are absent or the model needs features.
    """
    from .classification import classify

    if clf.feature_set is not None:
        return None
    _, frames = real_frame_catalog(data_dir, frames)
    if frames is None:
        return None
    sources = frame_extended_sources(data_dir, frames)
    out = classify(sources, images=frames, model=clf, confidence=None)
    pred = np.asarray(out["pred_class"].filled("")).astype(str)
    return {"data": f"{_FRAME}: clearly extended bright sources found with photutils "
                    "(image_recipes.frame_extended_sources)",
            "n": len(sources), "galaxy_fraction": round(float(np.mean(pred == "GALAXY")), 4),
            "predicted": {c: int(np.sum(pred == c)) for c in clf.classes}}


# Training ------------------------------------------------------------------------

def _inputs(table, stamps, feature_set):
    from .features import get_feature_set
    from .training import labels_from_table

    classes, y = labels_from_table(table, classes=("GALAXY", "QSO", "STAR"))
    x = None if feature_set is None else get_feature_set(feature_set).compute(table).values
    return classes, y, x


def _card(name, module, *, architecture, config, feature_set, classes, description, notes,
          priority, parts, fit_options, seconds, history):
    import torch

    from . import __version__
    from .models.card import ModelCard

    tr, va, ca, te = (parts[k] for k in ("train", "validation", "calibration", "test"))
    return ModelCard(
        name=name, version="1.0", description=description, architecture=architecture,
        config=config, feature_set=feature_set, uses_images=True, classes=list(classes),
        auto_priority=priority, notes=notes,
        training={
            "data": ("SIMULATED stamps (GalSim, sourceclf.image_recipes): rows resampled "
                     f"from {_SG_FILE} (galaxies, stars) and parametric galaxies, quasars "
                     f"with the colours of {_QSO_FILE}, magnitudes shifted to "
                     f"{MAGNITUDE_RANGES}; sky noise and PSF of SDSS field 4510-4-0030"),
            "simulation": dict(SIMULATION),
            "recipe": f"python -m sourceclf.image_recipes {name}",
            "retrain_on_real_cutouts": (
                f"sourceclf.train(table, cutouts, model='{architecture}') with a labelled "
                "table and its 5-band 32x32 cutouts (or images={band: frame})"),
            "split": "sourceclf.train_recipes.recipe_split: stratified 0.6/0.1/0.1/0.2 "
                     "train/validation/calibration/test, seed 42",
            "n_train": int(tr.size), "n_validation": int(va.size),
            "n_calibration": int(ca.size), "n_test": int(te.size),
            **{k: v for k, v in fit_options.items() if k != "augment"},
            "augmentation": "sourceclf.augment.random_augment (rotations, flips, shifts)",
            "epochs_run": len(history["val_loss"]), "best_epoch": history["best_epoch"],
            "train_seconds_cpu": round(seconds["cpu"], 1),
            "train_seconds_wall": round(seconds["wall"], 1),
            "torch_threads": torch.get_num_threads(),
            "sourceclf_version": __version__, "torch_version": torch.__version__,
        },
    )


def _finish(clf, table, stamps, x, y, parts, data_dir):
    from .models.margformer import count_flops
    from .training import calibration_table, classification_metrics

    te, va, ca = parts["test"], parts["validation"], parts["calibration"]

    def sub(a, idx):
        return None if a is None else a[idx]

    card = clf.card
    card.metrics["test"] = classification_metrics(
        y[te], clf.predict_proba(sub(x, te), stamps[te]).argmax(1), clf.classes)
    card.metrics["test_data"] = "held-out 20% of the SIMULATED stamps (not real images)"
    bright = np.asarray(table["dered_r"])[te] < 21.0
    card.metrics["test_r_lt_21"] = classification_metrics(
        y[te][bright], clf.predict_proba(sub(x, te[bright]), stamps[te[bright]]).argmax(1),
        clf.classes)
    card.metrics["validation"] = classification_metrics(
        y[va], clf.predict_proba(sub(x, va), stamps[va]).argmax(1), clf.classes)
    _, frames = real_frame_catalog(data_dir)  # read once for both checks
    real = frame_star_check(clf, data_dir, frames)
    if real is not None:
        card.metrics["real_frame_stars"] = real
    extended = frame_galaxy_check(clf, data_dir, frames)
    if extended is not None:
        card.metrics["real_frame_extended"] = extended
    clf.calibration = calibration_table(clf, table[ca], sub(x, ca), y[ca], stamps[ca])
    card.extra["n_parameters"] = int(sum(p.numel() for p in clf.module.parameters()))
    card.extra["mflop_per_source"] = round(
        count_flops(clf.module, None if x is None else x.shape[1]) / 1e6, 2)
    return clf


def _fit(name, table, stamps, *, architecture, config, feature_set, description, notes,
         priority, data_dir=None, module=None, fit_options=None, stages=None, seed=0):
    import torch

    from .augment import random_augment
    from .models.architectures import build_architecture
    from .models.base import TorchClassifier
    from .train_recipes import recipe_split
    from .training import fit_module

    classes, y, x = _inputs(table, stamps, feature_set)
    parts = recipe_split(table)
    tr, va = parts["train"], parts["validation"]
    torch.manual_seed(seed)
    cfg = {"n_classes": len(classes), **({} if x is None else {"n_features": x.shape[1]}),
           **config}
    if module is None:
        module = build_architecture(architecture, cfg)
    opts = {"epochs": 10, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4,
            "patience": 4, "random_state": seed, "device": "cpu", **(fit_options or {})}
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    if hasattr(module, "fit_stages"):
        history = module.fit_stages(None if x is None else x[tr], y[tr],
                                    None if x is None else x[va], y[va],
                                    images_train=stamps[tr], images_val=stamps[va],
                                    augment=random_augment, **(stages or {}), **opts)
    else:
        if x is not None:
            module.standardize.fit(x[tr])
        module.fit_image_normalisation(stamps[tr])
        # A step-wise decaying learning rate: (epochs, lr) stages, each a fit_module
        # run starting from the previous stage's best weights.
        schedule = opts.pop("lr_schedule", None) or [(opts["epochs"], opts["lr"])]
        history = {"val_loss": [], "best_epoch": 0, "stages": {}}
        for k, (epochs, lr) in enumerate(schedule):
            stage = fit_module(module, None if x is None else x[tr], y[tr],
                               None if x is None else x[va], y[va], images_train=stamps[tr],
                               images_val=stamps[va], augment=random_augment,
                               **{**opts, "epochs": epochs, "lr": lr,
                                  "random_state": opts["random_state"] + k})
            history["best_epoch"] = len(history["val_loss"]) + stage["best_epoch"]
            history["val_loss"] += stage["val_loss"]
        history.pop("stages")
        if len(schedule) > 1:
            opts["lr_schedule"] = [list(st) for st in schedule]
            opts.pop("lr")
            opts.pop("epochs")
    seconds = {"cpu": time.process_time() - t_cpu, "wall": time.perf_counter() - t_wall}
    module.cpu().eval()
    card = _card(name, module, architecture=architecture, config=cfg, feature_set=feature_set,
                 classes=classes, description=description, notes=notes, priority=priority,
                 parts=parts, fit_options=opts, seconds=seconds, history=history)
    if "stages" in history:
        card.training["stages"] = {k: {"epochs_run": len(h["val_loss"]),
                                       "best_epoch": h["best_epoch"]}
                                   for k, h in history["stages"].items()}
    return _finish(TorchClassifier(module, card), table, stamps, x, y, parts, data_dir)


#: The shipped configurations (the architectures' defaults are the published sizes).
CNN_CONFIG = {"width": 0.125, "dense": [256], "batch_norm": True}
ANN_CONFIG = {"standardize": True, "dropout": 0.25}
MARGFORMER_CONFIG = {"dim": 48, "depth": 3, "heads": 4, "token_layers": 1,
                     "feature_hidden": [128], "mlp_ratio": 2.0, "dropout": 0.1}

_SIM_NOTE = ("Trained on SIMULATED stamps, not on real SDSS cutouts: GalSim renderings of "
             "realistic catalog rows with the PSF and sky noise of one SDSS field "
             "(sourceclf.image_recipes). Expect real images (other fields, seeing, "
             "blends, artefacts, saturated stars) to be harder than the simulated test "
             "set. Sources fainter than r ~ 22.5 barely show in the stamps; the training "
             "set extends point sources (to r = 24) fainter than galaxies (to r = 22.5, few "
             "beyond 21.5), so such sources are called STAR or QSO largely by prior, not by "
             "their image: faint real galaxies will often be called STAR. "
             "The PSF's Moffat index varies between 2 and 4 over the training stamps. "
             "Retrain on real labelled cutouts "
             "with sourceclf.train(table, cutouts, model='{arch}').")


def margnet_cnn_sgq(table, stamps, *, data_dir=None):
    """MargNet's CNN, an eighth of the published widths, images only."""
    return _fit(
        "margnet-cnn-sgq", table, stamps, architecture="margnet-cnn", config=CNN_CONFIG,
        feature_set=None, priority=5, data_dir=data_dir,
        fit_options={"lr_schedule": [[7, 2e-3], [3, 5e-4], [2, 1e-4]], "patience": 3},
        description=("MargNet's Inception CNN (Chaini et al. 2023) on 5-band 32x32 stamps "
                     "alone (no photometric features), in a CPU-sized configuration: every "
                     "convolution at 1/8 of the published width and one dense layer of 256 "
                     "instead of 1024 + 1024 (the published 22,272 x 1024 dense layer alone "
                     "has 23M parameters), with batch normalisation after each convolution "
                     "(not in the paper; it lets the small network learn in a few CPU "
                     "epochs); input asinh-scaled by each band's sky noise."),
        notes=(_SIM_NOTE.format(arch="margnet-cnn") + " Images only: use it when the "
               "catalog lacks MargNet's photometric columns."))


def margnet_sgq(table, stamps, *, cnn=None, data_dir=None):
    """MargNet's stacked ensemble: ANN (24 features) + the CNN of margnet-cnn-sgq."""
    import torch

    from .models.architectures import build_architecture

    cfg = {"n_features": 24, "n_classes": 3, "ann": ANN_CONFIG, "cnn": CNN_CONFIG, "head": 10}
    torch.manual_seed(0)
    module = build_architecture("margnet-ensemble", cfg)
    members = ("ann", "cnn")
    if cnn is not None:  # the CNN of margnet-cnn-sgq, trained on the same split
        module.cnn.load_state_dict(cnn.module.state_dict())
        members = ("ann",)
    return _fit(
        "margnet-sgq", table, stamps, architecture="margnet-ensemble",
        config={k: v for k, v in cfg.items() if k not in ("n_features", "n_classes")},
        feature_set="margnet24", priority=30, data_dir=data_dir, module=module,
        fit_options={"epochs": 6, "lr": 2e-3, "patience": 3},
        stages={"train_members": members,
                "stage_options": {"ann": {"epochs": 200, "batch_size": 256, "lr": 1e-3,
                                          "patience": 15, "weight_decay": 0.0},
                                  "head": {"epochs": 300, "batch_size": 256, "lr": 3e-3,
                                           "patience": 20, "weight_decay": 0.0}}},
        description=("MargNet's stacked ensemble (Chaini et al. 2023): the softmax outputs "
                     "of its ANN on the 24 photometric features (published size, input "
                     "standardised) and of its CNN on the 5-band stamps (the CPU-sized "
                     "CNN of margnet-cnn-sgq: 1/8 of the published widths, batch "
                     "normalisation, dense 256 instead of the 23M-parameter 1024 + 1024 "
                     "layers) go through dense "
                     "10 (ReLU) to the classes; the head is trained on the validation "
                     "split, which the members were not trained on."),
        notes=_SIM_NOTE.format(arch="margnet-ensemble"))


def margformer_sgq(table, stamps, *, data_dir=None):
    """MargFormer: the 24 features as a query token attending over 4x4 image patches."""
    return _fit(
        "margformer-sgq", table, stamps, architecture="margformer", config=MARGFORMER_CONFIG,
        feature_set="margnet24", priority=25, data_dir=data_dir,
        fit_options={"epochs": 15, "lr": 1e-3, "patience": 4},
        description=("MargFormer: MargNet's 24 photometric features, standardised, pass "
                     "through an MLP (24 -> 128 -> 48) and become one query token that "
                     "attends with cross-attention (3 layers, 4 heads, width 48) over the "
                     "64 tokens of 4x4 patches of the 5-band 32x32 stamp (linear patch "
                     "embedding, learned positions, one self-attention layer); far smaller "
                     "and cheaper than the published 12-layer model."),
        notes=_SIM_NOTE.format(arch="margformer"))


RECIPES = {"margnet-cnn-sgq": margnet_cnn_sgq, "margnet-sgq": margnet_sgq,
           "margformer-sgq": margformer_sgq}


def _trained_cnn(n, seed, model="margnet-cnn-sgq"):
    """A margnet-cnn-sgq (shipped, or a directory) trained on this simulation, else None."""
    from .exceptions import SourceclfError
    from .models.registry import load_model

    try:
        clf = load_model(model)
    except SourceclfError:
        return None
    sim = clf.card.training.get("simulation", {})
    same = (sim.get("version"), sim.get("n"), sim.get("seed")) == (SIMULATION["version"], n, seed)
    return clf if same else None


def main(argv=None):
    """Command line: ``python -m sourceclf.image_recipes NAME|all [options]``."""
    from .models.registry import MODEL_DIR

    parser = argparse.ArgumentParser(prog="python -m sourceclf.image_recipes",
                                     description="Train sourceclf's shipped image models "
                                                 "on simulated stamps.")
    parser.add_argument("recipe", choices=sorted(RECIPES) + ["all", "simulate"])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory of the SDSS tables (default ../shared/data)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where model directories go (default: the package registry)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache of the rendered stamps (default ~/.cache/sourceclf)")
    parser.add_argument("--n", type=int, default=SIMULATION["n"],
                        help="number of simulated sources")
    parser.add_argument("--cnn", type=Path, default=None,
                        help="margnet-sgq: model directory of a margnet-cnn-sgq trained on "
                             "the same simulation, reused as the ensemble's CNN (default: "
                             "the installed one, when it matches)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table, stamps = simulated_training_set(args.n, data_dir=args.data_dir,
                                           cache_dir=args.cache_dir)
    print(f"simulated {len(table)} sources in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.recipe == "simulate":
        return 0
    names = list(RECIPES) if args.recipe == "all" else [args.recipe]
    out_dir = args.output_dir or MODEL_DIR
    cnn = None
    for name in names:
        kwargs = {"data_dir": args.data_dir}
        if name == "margnet-sgq":
            kwargs["cnn"] = cnn or _trained_cnn(args.n, SIMULATION["seed"],
                                                str(args.cnn or "margnet-cnn-sgq"))
            print("margnet-sgq: " + ("reusing the CNN of " + kwargs["cnn"].name
                                     if kwargs["cnn"] else "training its own CNN"), flush=True)
        clf = RECIPES[name](table, stamps, **kwargs)
        if name == "margnet-cnn-sgq":
            cnn = clf
        path = clf.save(out_dir / name, overwrite=True)
        test = clf.card.metrics["test"]
        real = clf.card.metrics.get("real_frame_stars")
        print(f"{name}: simulated test accuracy {test['accuracy']:.4f} (n={test['n']}), "
              f"macro F1 {test['f1_macro']:.4f}; {clf.card.extra['n_parameters']:,d} "
              f"parameters; trained in {clf.card.training['train_seconds_cpu']:.0f} CPU s "
              f"({clf.card.training['train_seconds_wall']:.0f} s wall)"
              + (f"; real frame stars called point sources: {real['point_fraction']:.3f}"
                 if real else "") + f"; wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
