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
* `render_varied_psf` deals the rows into simulated fields, each with its own
  observing conditions (`sourceclf.simulate.draw_observing_conditions`:
  r-band seeing 0.75-2.5", per-band FWHM ratios, Moffat index, PSF
  ellipticity and sky noise, from the ranges measured on real SDSS fields),
  and draws each row with GalSim (`render_stamps`) through its field's PSF;
  `~sourceclf.recipes.stamp_realism.add_realism` then adds neighbours from
  the same field, bright-star halos and the field's sky noise (scaled per
  stamp);
* MargNet's catalog columns (magnitudes, colours, de Vaucouleurs radii) are
  then measured on each source's stamp, deblended from its neighbours but
  with its noise (`sourceclf.recipes.measured_columns`), so that they are as
  uncertain as a real catalog's at that magnitude and seeing.

`simulated_training_set` puts these steps together and caches the result.
"""

import os
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from ..bands import BANDS, SDSS_PIXEL_SCALE
from ..exceptions import InvalidInputError
from ..psf import GUESS_TOLERANCE, fit_half_size, fit_moffat
from ..simulate import (SDSS_BAND_DEFAULTS, draw_observing_conditions, render_stamps,
                        simulate_catalog)
from .data import DR14_SPECTRO_FILE, FAINT_COMPACT_SG_FILE, default_data_dir
from .measured_columns import deblend_stamps, measure_stamp_columns
from .stamp_realism import add_realism, crowded_rows

__all__ = ["SIMULATION", "SIMULATIONS", "simulation_settings", "MAGNITUDE_RANGES",
           "simulated_sgq_catalog", "rendered_psf_fwhm", "fitted_psf_beta", "psf_columns",
           "trained_psf_range", "render_varied_psf", "simulated_training_set"]

#: Settings of the simulation versions the recipes can render, by number
#: (each model card records its own in ``training['simulation']``).
#: Version 10, a trial whose models are not shipped (``docs/images.rst``,
#: "Crowded frames"), makes a third of the simulated fields crowded
#: (``crowded_share``): each stamp of such a field gets a Poisson number of
#: extra neighbours from its own field, whose mean is drawn per field from
#: ``crowded_means`` (`~sourceclf.recipes.stamp_realism.add_realism`).
#: Many of them are faint or fall off the stamp, and wider PSFs merge them:
#: `sourceclf.crowding.count_neighbours` counts 2.6 per stamp in the crowded
#: fields (3.3 where the r FWHM is below 1.0", 2.9 at 1.0-1.2", 2.0 beyond
#: 1.9") and 0.32 in the others, against
#: 3.4 on 002583-2-0136 (0.82") and 4.5 on 005405-6-0099 (1.14"), the two
#: crowded shared fields.  The range was set from the first crowded trial's
#: counts (``docs/scripts/crowded_training_trial.py``), before any score,
#: aiming at about four.
#: Version 9 draws the observing conditions of ``fields`` simulated fields
#: (`sourceclf.simulate.OBSERVING_CONDITIONS`: r-band seeing 0.75-2.5",
#: per-band FWHM ratios, Moffat core and power-law wing, PSF ellipticity,
#: sky noise per band); version 8 had no wings, version 7 rendered 8 PSF
#: groups around the seeing of one field.
#: ``catalog_columns`` 3 measures MargNet's columns on the stamps
#: (`sourceclf.recipes.measured_columns`; the stamps are version 9's, bit for
#: bit): on a random ``frame_deblended_fraction`` of the rows after
#: sourceclf's own deblender has split each stamp with its neighbours
#: (`~sourceclf.recipes.measured_columns.deblend_stamps`, as on a real frame),
#: on the others after the neighbours' light was removed exactly (as a
#: model-fitting pipeline like SDSS's nearly does); 2 measured them all on the
#: exactly deblended stamps; 1 copied them from the catalog the stamps were
#: rendered from, exact at any magnitude and seeing.
#: Versions 9 and 10 share their sources, fields, seeds and noise: a row's
#: stamp differs only by the crowded fields' extra neighbours.
SIMULATIONS = {
    9: {"version": 9, "catalog_columns": 3, "frame_deblended_fraction": 0.5,
        "n": 36000, "seed": 20240, "size": 32,
        "fields": 400, "neighbour_fraction": 0.4, "min_separation": 4,
        "halo_fraction": 0.2, "noise_scatter": 0.10,
        "conditions": "sourceclf.simulate.OBSERVING_CONDITIONS"},
}
SIMULATIONS[10] = {**SIMULATIONS[9], "version": 10, "crowded_share": 1 / 3,
                   "crowded_means": [4.0, 36.0]}

#: The settings the recipes train on unless told another version
#: (`simulation_settings`): version 9, the shipped image models'.
SIMULATION = SIMULATIONS[9]


def simulation_settings(version=None):
    """The settings of a simulation version.

    Parameters
    ----------
    version : int, optional
        A key of `SIMULATIONS`; default `SIMULATION`'s.

    Returns
    -------
    settings : dict

    Raises
    ------
    InvalidInputError
        If there is no such version.
    """
    if version is None:
        return SIMULATION
    try:
        return SIMULATIONS[int(version)]
    except (KeyError, TypeError, ValueError):
        raise InvalidInputError(f"no simulation version {version!r}; versions are "
                                f"{', '.join(map(str, sorted(SIMULATIONS)))}") from None


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


def _field_psf_options(fields, f):
    """`sourceclf.simulate.render_stamps` options drawing field ``f``'s PSF (rows whose
    ``psffwhm_<b>`` is ``psf_fwhm_<b> / SDSS_BAND_DEFAULTS[b]['psf_scale']``)."""
    # The catalog width psffwhm_<b> describes the whole PSF; its core is rendered.
    return {"moffat_beta": {b: float(fields[f"psf_beta_{b}"][f]) for b in BANDS},
            "psf_scale": {b: float(fields[f"psf_core_fwhm_{b}"][f] / fields[f"psf_fwhm_{b}"][f])
                          * SDSS_BAND_DEFAULTS[b]["psf_scale"] for b in BANDS},
            "psf_wing": tuple(float(fields[f"psf_wing_{k}"][f])
                              for k in ("fraction", "scale", "beta")),
            "psf_ellipticity": float(fields["psf_e"][f]),
            "psf_angle": float(fields["psf_angle"][f])}


def _field_conditions(n, random_state):
    """The fields of `render_varied_psf`: generator, conditions, field of each row."""
    rng = np.random.default_rng(random_state)
    fields = draw_observing_conditions(SIMULATION["fields"], random_state=rng)
    return rng, fields, rng.integers(0, len(fields), n)


def rendered_psf_fwhm(table):
    """FWHM (arcsec) of the PSF each row of a rendered catalog was drawn with, per band.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog `render_varied_psf` has rendered (its ``psf_fwhm_<b>``
        columns: the FWHM of the effective PSF, as `sourceclf.psf.measure_psf`
        measures it on real frames).

    Returns
    -------
    fwhm : dict
        ``{band: array}``, arcsec.
    """
    return {b: np.asarray(table[f"psf_fwhm_{b}"], dtype=np.float64) for b in BANDS}


def fitted_psf_beta(table, *, random_state=None):
    """The Moffat index a frame's stars would give for each row's PSF, per band.

    Each simulated field's PSF (core, wing and ellipticity, as
    `render_varied_psf` drew it) is drawn without noise and fitted with one
    circular Moffat (`sourceclf.psf.fit_moffat`) on the stamp size
    `sourceclf.psf.measure_psf` fits a star of that width with.  So the index
    means what `~sourceclf.psf.measure_psf` gives on real frames: the wing
    lowers it below the core's (the table's ``psf_beta_<b>``).

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog `render_varied_psf` has rendered (its ``field`` and
        ``psf_fwhm_<b>`` columns).
    random_state : int, optional
        The seed `render_varied_psf` was given (default: that of the
        simulation named by ``table.meta['simulation_version']``, plus one,
        as `simulated_training_set` gives it).

    Returns
    -------
    beta : dict
        ``{band: array}``, one index per row.

    Raises
    ------
    InvalidInputError
        If the table's fields are not those the seed draws.
    """
    settings = simulation_settings(table.meta.get("simulation_version"))
    seed = settings["seed"] + 1 if random_state is None else int(random_state)
    _, fields, field = _field_conditions(len(table), seed)
    rows = np.asarray(table["field"], dtype=int)
    drawn = np.asarray(fields["psf_fwhm_r"], dtype=np.float32)[rows]
    if not (np.array_equal(rows, field) and np.allclose(drawn, table["psf_fwhm_r"])):
        raise InvalidInputError("the table's fields are not those of seed "
                                f"{seed}: give render_varied_psf's random_state")
    per_field = {b: np.full(len(fields), np.nan) for b in BANDS}
    for f in np.unique(rows):
        fitted = _fitted_field_beta(fields, f)
        for b in BANDS:
            per_field[b][f] = fitted[b]
    return {b: per_field[b][rows] for b in BANDS}


def psf_columns(table, random_state=None):
    """The PSF an image model reading it trains with, per row: ``psf_fwhm_<b>`` and the
    Moffat index a frame's stars would give, ``psf_beta_<b>`` (`fitted_psf_beta`; not the
    table's own ``psf_beta_<b>``, the drawn core's).

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog `render_varied_psf` has rendered, as `simulated_training_set`
        returns it.
    random_state : int, optional
        The seed `render_varied_psf` was given (`fitted_psf_beta`).

    Returns
    -------
    columns : `~astropy.table.Table`
        The ``psf_shape`` feature set's columns (`sourceclf.features`).
    """
    fitted = fitted_psf_beta(table, random_state=random_state)
    return Table({**{f"psf_fwhm_{b}": table[f"psf_fwhm_{b}"] for b in BANDS},
                  **{f"psf_beta_{b}": fitted[b] for b in BANDS}})


def _fitted_field_beta(fields, f):
    """One field's PSF per band, drawn noiseless and fitted as `measure_psf` fits a star."""
    # wide enough for the fit of its widest band (3.5 FWHMs each side, and a margin)
    widest = max(float(fields[f"psf_fwhm_{b}"][f]) for b in BANDS) / SDSS_PIXEL_SCALE
    size = 2 * max(11, int(np.ceil(4.2 * widest))) + 1
    star = Table({"class": ["STAR"]})
    for b in BANDS:
        star[f"dered_{b}"], star[f"extinction_{b}"] = [16.0], [0.0]
        star[f"psffwhm_{b}"] = [float(fields[f"psf_fwhm_{b}"][f])
                                / SDSS_BAND_DEFAULTS[b]["psf_scale"]]
    image = render_stamps(star, size=size, noise=False, progress=False,
                          offsets=np.zeros((1, len(BANDS), 2)),
                          **_field_psf_options(fields, f))[0]
    out, centre = {}, (size - 1) / 2.0
    for k, b in enumerate(BANDS):
        guess = 1.0 / SDSS_PIXEL_SCALE  # measure_psf's first guess, then the star's own
        for attempt in range(2):
            fit = fit_moffat(image[k], [centre], [centre], half=fit_half_size(guess))
            fwhm = float(fit["fwhm"][0])
            if attempt == 0 and abs(fwhm / guess - 1.0) > GUESS_TOLERANCE:
                guess = fwhm
                continue
            break
        out[b] = float(fit["beta"][0])
    return out


def trained_psf_range(*, percentiles=(2.5, 97.5), n=None):
    """The seeing the shipped image models were trained on, per band.

    Draws the fields of `simulated_training_set` from `SIMULATION` as
    `render_varied_psf` draws them (no rendering) and takes percentiles of
    the rows' PSF FWHMs.  The central 95% is the default: beyond it a model
    has seen too few stamps to have learnt the seeing.

    Parameters
    ----------
    percentiles : tuple of float
        Lower and upper percentile.
    n : int, optional
        Number of simulated rows (default ``SIMULATION['n']``).

    Returns
    -------
    psf_range : dict
        ``{band: [low, high]}``, arcsec rounded to 0.01 (a model card's
        ``domain['psf_fwhm']``).
    """
    _, fields, field = _field_conditions(int(n or SIMULATION["n"]), SIMULATION["seed"] + 1)
    return {b: [round(float(v), 2)
                for v in np.percentile(np.asarray(fields[f"psf_fwhm_{b}"])[field], percentiles)]
            for b in BANDS}


def _render_field(args):
    """Render one field's rows (a process pool's unit of work)."""
    table, seed, options = args
    return render_stamps(table, random_state=seed, noise=False, progress=False, **options)


def render_varied_psf(table, *, random_state=0, progress=None, jobs=1):
    """Noiseless stamps of a catalog, each field of rows seen through its own PSF.

    The rows are dealt into ``SIMULATION['fields']`` simulated fields, whose
    seeing, per-band FWHM ratios, Moffat indices, power-law PSF wings, PSF
    ellipticity and sky noise are drawn by
    `sourceclf.simulate.draw_observing_conditions` from the ranges measured
    on real SDSS fields (r-band FWHM 0.75-2.5").  Each field is rendered by
    `sourceclf.simulate.render_stamps` with its PSF.  The table gets, per
    row, ``field``, ``psf_fwhm_<b>`` (the FWHM of the rendered PSF, core and
    wing together, arcsec), ``psf_beta_<b>``, ``sky_sigma_<b>`` (used by
    `add_realism`) and
    ``psffwhm_<b>`` set to the SDSS catalog width of that PSF
    (``psf_fwhm_<b> / SDSS_BAND_DEFAULTS[b]['psf_scale']``), so that models
    reading MargNet's 24 columns see the PSF the stamps were drawn with.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog (`simulated_sgq_catalog`); columns are added in place.
    random_state : int
        Seed.
    progress : bool, optional
        Show a progress bar over fields.
    jobs : int
        Processes rendering fields in parallel.

    Returns
    -------
    stamps : `numpy.ndarray`
        float32, shape (n, 5, size, size), noiseless.
    """
    from concurrent.futures import ProcessPoolExecutor

    from ..progress import progress_bar

    rng, fields, field = _field_conditions(len(table), random_state)
    table["field"] = field.astype(np.int32)
    for b in BANDS:
        fwhm = np.asarray(fields[f"psf_fwhm_{b}"])[field]
        table[f"psf_fwhm_{b}"] = fwhm.astype(np.float32)
        table[f"psf_fwhm_{b}"].unit = "arcsec"
        table[f"psffwhm_{b}"] = fwhm / SDSS_BAND_DEFAULTS[b]["psf_scale"]
        table[f"psffwhm_{b}"].unit = "arcsec"
        table[f"psf_beta_{b}"] = np.asarray(fields[f"psf_beta_{b}"])[field].astype(np.float32)
        table[f"sky_sigma_{b}"] = np.asarray(fields[f"sky_sigma_{b}"])[field].astype(np.float32)
    size = SIMULATION["size"]
    work, rows_of = [], []
    for f in range(len(fields)):
        rows = np.flatnonzero(field == f)
        seed = int(rng.integers(2 ** 31))
        if rows.size == 0:
            continue
        work.append((table[rows], seed, {"size": size, **_field_psf_options(fields, f)}))
        rows_of.append(rows)
    stamps = np.zeros((len(table), len(BANDS), size, size), dtype=np.float32)
    with progress_bar(total=len(work), enabled=progress, desc="render", unit="field") as bar:
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                for rows, part in zip(rows_of, pool.map(_render_field, work)):
                    stamps[rows] = part
                    bar.update(1)
        else:
            for rows, args in zip(rows_of, work):
                stamps[rows] = _render_field(args)
                bar.update(1)
    return stamps


def simulated_training_set(n=None, *, random_state=None, data_dir=None, cache_dir=None,
                           progress=None, jobs=1, version=None, columns=True):
    """The simulated catalog and stamps the image recipes train on.

    ``version`` picks the simulation (`SIMULATIONS`; default `SIMULATION`,
    the shipped models'); the table's ``meta['simulation_version']`` records
    it.  With ``columns=False`` MargNet's columns are not measured: the
    table is the rendered catalog, enough for the models that read only the
    stamps and their PSF (``margnet-cnn-sgq``).  A version with crowded
    fields also marks their rows (``crowded_field``).

    The result is cached (``cache_dir``, default ``$SOURCECLF_CACHE`` or
    ``~/.cache/sourceclf``), since rendering takes minutes: the rendered
    catalog, the stamps and the deblended stamps (float16), and apart from
    them the measured columns (per ``SIMULATION['catalog_columns']``).

    Returns
    -------
    table : `~astropy.table.Table`
        The catalog (`simulated_sgq_catalog`) with its fields' conditions
        (`render_varied_psf`); MargNet's columns ``dered_<b>``,
        ``deVRad_<b>`` and the colours are *measured* on each source's
        deblended stamp (`sourceclf.recipes.measured_columns`), the rendered
        values kept as ``rendered_dered_<b>`` and ``rendered_deVRad_<b>``;
        with ``SIMULATION['catalog_columns']`` 3, ``frame_deblended`` marks
        the rows deblended by sourceclf's own deblender
        (`~sourceclf.recipes.measured_columns.deblend_stamps`) rather than
        exactly.
    stamps : `numpy.ndarray`
        float32, shape (n, 5, 32, 32), nanomaggies.
    """
    settings = simulation_settings(version)
    n = int(n or settings["n"])
    seed = int(settings["seed"] if random_state is None else random_state)
    cache_dir = Path(cache_dir or os.environ.get("SOURCECLF_CACHE")
                     or Path.home() / ".cache" / "sourceclf")
    stem = cache_dir / f"sim-sgq-v{settings['version']}-n{n}-seed{seed}"
    paths = {"table": stem.with_suffix(".ecsv"), "stamps": stem.with_suffix(".npy"),
             "deblended": stem.parent / (stem.name + "-deblended.npy"),
             "columns": stem.parent / (stem.name + f"-columns{settings['catalog_columns']}"
                                       ".ecsv")}
    deblended = None
    if all(paths[k].is_file() for k in ("table", "stamps", "deblended")):
        table = Table.read(paths["table"], format="ascii.ecsv")
        stamps = np.load(paths["stamps"]).astype(np.float32)
    else:
        table = simulated_sgq_catalog(n, random_state=seed, data_dir=data_dir)
        noiseless = render_varied_psf(table, random_state=seed + 1, progress=progress,
                                      jobs=jobs)
        stamps, deblended = np.empty_like(noiseless), np.empty_like(noiseless)
        add_realism(stamps, noiseless, table, random_state=_realism_seed(seed),
                    noise_scatter=settings["noise_scatter"],
                    neighbour_fraction=settings["neighbour_fraction"],
                    min_separation=settings["min_separation"],
                    halo_fraction=settings["halo_fraction"], deblended=deblended,
                    crowded_share=settings.get("crowded_share", 0.0),
                    crowded_means=settings.get("crowded_means"))
        del noiseless
        cache_dir.mkdir(parents=True, exist_ok=True)
        table.write(paths["table"], format="ascii.ecsv", overwrite=True)
        # float16 halves the cache; its range ends at 65504 (no real pixel comes close);
        # the stamps are used as cached, so that a run that renders and one that reads
        # the cache train on the same numbers.
        stamps, deblended = (np.clip(v, -65000, 65000).astype(np.float16)
                             for v in (stamps, deblended))
        np.save(paths["stamps"], stamps)
        np.save(paths["deblended"], deblended)
        stamps = stamps.astype(np.float32)
    if not columns:
        return _described(table, settings, seed), stamps
    if paths["columns"].is_file():
        measured = Table.read(paths["columns"], format="ascii.ecsv")
    else:  # MargNet's columns measured on the stamps, kept apart from the rendering
        # so that their measurement can change without rendering again
        if deblended is None:
            deblended = np.load(paths["deblended"])
        measured = _measured_columns(table, stamps, deblended.astype(np.float32), seed,
                                     settings)
        measured.write(paths["columns"], format="ascii.ecsv", overwrite=True)
    return _described(measured, settings, seed), stamps


def _realism_seed(seed):
    """The seed `simulated_training_set` gives `add_realism`."""
    return seed + 2


def _described(table, settings, seed):
    """The training table with its simulation version in ``meta`` and, for a version with
    crowded fields, the rows of those fields (``crowded_field``, derived from the seed,
    `crowded_rows`)."""
    table.meta["simulation_version"] = settings["version"]
    if settings.get("crowded_share", 0.0) > 0:
        table["crowded_field"] = crowded_rows(table, random_state=_realism_seed(seed),
                                              share=settings["crowded_share"])
    return table


def _measured_columns(table, stamps, deblended, seed, settings):
    """MargNet's columns per the simulation's ``catalog_columns`` (2 or 3)."""
    if settings["catalog_columns"] == 2:
        return measure_stamp_columns(table, deblended)
    through = (np.random.default_rng(seed + 3).random(len(table))
               < settings["frame_deblended_fraction"])
    deblended = np.array(deblended, copy=True)  # each row's stamp as its columns see it
    deblended[through] = deblend_stamps(table[through], stamps[through])
    measured = measure_stamp_columns(table, deblended)
    measured["frame_deblended"] = through
    return measured
