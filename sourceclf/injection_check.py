"""How well a model classifies the sources of *your* frames: known sources drawn into them.

A model's card says how it does on the five SDSS fields sourceclf holds, at
their own seeing and blurred.  Frames from elsewhere can be more crowded,
shallower or differently blurred, and on such frames a model can be wrong
with confident probabilities: its prediction sets, calibrated on simulated
stamps, do not see it (on the crowded shared fields the 90% sets held the
truth for 61-94% of the sources).  `injection_check` measures it on the
frames themselves, as ``docs/scripts/check_fields.py --inject`` does on the
shared fields: known stars and galaxies (`injection_sources`) are drawn into
copies of the frames at random positions (`sourceclf.recipes.injection`:
through each band's own PSF, built from the frame's stars, with their photon
noise; the frame's sky, noise, background and neighbours are real), their
truth is measured on each one's own noiseless images as a frame of 1.2"
seeing shows them (`TRUTH_FWHM`; point-like or extended by SDSS's
PSF-minus-aperture cut on the fluxes summed over the bands that detect it,
as SDSS types an object and ``check_fields.py --inject`` measures its
truth: `sourceclf.recipes.injection.injected_truth`), and
the model classifies them exactly as `sourceclf.classify` classifies the
frames' own sources.  The share of
point-like sources called STAR or QSO, of extended ones called GALAXY, their
mean (the balanced accuracy) and how often the prediction sets hold the truth
are the model's scores *on these frames*.

What it cannot see: real galaxies' shapes (the injected ones are de
Vaucouleurs profiles, or points for stars), sources fainter than r = 20.5
or brighter than 16 (the injected range), and a catalog's own columns: a
model reading MargNet's columns is scored with them measured on the frames
(`sourceclf.photometry.measure_columns`), as `sourceclf.classify` measures
them for a table of positions, not as a survey's pipeline gave them.

On the shared fields, at their own seeing and blurred to 1.6-2.2", the
check gave ``margnet-sgq``, ``margnet-cnn-sgq`` and ``margformer-sgq``
0.95-1.00 on the three uncrowded fields and 0.78-0.96 on the two crowded
ones; it warned on 19 of the 24 runs where the fields' own sources score
below 0.90 and on none of the 36 where they score more
(``python docs/scripts/injection_check_fields.py --from-record``); on the
Bayesian variants, 11 of 16 and none of 24.

From the command line: ``sourceclf-classify cat.fits --image u=... ...
--inject-check 150``.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table, hstack, vstack

from .bands import BANDS
from .classification import check_mc_samples, classify
from .conformal import set_membership
from .crowding import FLAG_CONFUSED
from .device import check_precision
from .inputs import read_frames
from .registration import register_frames
from .evaluation import balanced_hit_rate
from .exceptions import InvalidInputError, SourceclfWarning
from .models.registry import load_model
from .photometry import measure_columns
from .field_psf import field_psfs, psf_memo
from .psf import PSFMeasurement
from .recipes.injection import (INJECTION, empirical_psfs, field_blends, inject_sources,
                                injected_truth, place_sources)
from .utils._validation import check_random_state

__all__ = ["BATCH", "INJECTION_SOURCES_FILE", "META_COMMENTS", "MIN_SOURCES", "RELIABLE_BALANCED",
           "R_MAG_BINS", "TRUTH_FWHM", "InjectionCheck", "injection_check", "injection_sources"]

#: The stars and galaxies drawn in by default (2,000 rows of the image models'
#: simulated population at r 16-20.5; ``docs/scripts/make_injection_sources.py``).
INJECTION_SOURCES_FILE = Path(__file__).resolve().parent / "data" / "injection_sources.fits"

#: Balanced accuracy on the injected sources below which `InjectionCheck`
#: says the model's classes on these frames are not to be trusted as they are:
#: the target of the image models at the worst seeing, 2.2" (on the shared
#: fields the check gives 0.95-1.00 on the uncrowded ones, 0.78-0.96 on the
#: crowded ones).
RELIABLE_BALANCED = 0.90

#: The seeing (r-band FWHM, arcsec; a Moffat of index 3.5) through which each
#: injected source's truth is measured, whatever the frames' seeing: near
#: SDSS's median, inside the 0.9-1.4" of the shared fields, whose native
#: frames ``check_fields.py`` builds its truth on.  A galaxy the frames blur
#: into a point is still extended: the truth is what the source is, not what
#: a bad frame shows.
TRUTH_FWHM = 1.2

#: Sources drawn into one copy of the frames at most: more are drawn into
#: further copies, so that the injected light never covers more than about 1%
#: of a frame (`sourceclf.recipes.injection.INJECTION`) and the frames'
#: crowding stays their own.
BATCH = INJECTION["n"]

#: Fewest sources a check draws in (``sourceclf-classify --inject-check`` says
#: so before it classifies anything).
MIN_SOURCES = 10

#: What each of `InjectionCheck.meta`'s keywords holds (FITS header comments).
META_COMMENTS = {
    "CLFINJN": "injection check: known sources drawn in",
    "CLFINJPT": "injection check: point-like called STAR/QSO",
    "CLFINJEX": "injection check: extended called GALAXY",
    "CLFINJBA": "injection check: balanced accuracy",
    "CLFINJBE": "injection check: its binomial standard error",
    "CLFINJSC": "injection check: prediction sets' coverage",
    "CLFINJCF": "injection check: share flagged confused",
    "CLFINJBC": "injection check: balanced, not confused",
    "CLFINJCS": "injection check: confused rows' sets' coverage",
    "CLFINJOK": f"injection check: balanced >= {RELIABLE_BALANCED}",
}

#: Edges of the observed r-magnitude bins of `InjectionCheck.by_r_mag`.
R_MAG_BINS = (16.0, 18.0, 19.0, 20.0, 20.5)

#: Columns the injected sources are drawn from.
SOURCE_COLUMNS = tuple(f"{kind}_{b}" for b in BANDS for kind in ("dered", "extinction", "deVRad"))


def injection_sources(path=None):
    """The stars and galaxies `injection_check` draws into frames.

    Parameters
    ----------
    path : path-like, optional
        A table of one's own (any format astropy reads) with ``class``
        (STAR or GALAXY), ``dered_<b>``, ``extinction_<b>`` and
        ``deVRad_<b>`` (arcsec) for u g r i z; default: the bundled
        `INJECTION_SOURCES_FILE`.

    Returns
    -------
    sources : `~astropy.table.Table`
        Those columns, ``class`` as str, and ``r_mag`` (observed r).

    Raises
    ------
    InvalidInputError
        If the file cannot be read or lacks a column.
    """
    path = Path(INJECTION_SOURCES_FILE if path is None else path)
    try:
        table = Table.read(path)
    except Exception as exc:  # noqa: BLE001 - any reader's error, said in one line
        raise InvalidInputError(f"cannot read injection sources '{path}': {exc}") from None
    return _check_sources(table, f"injection sources '{path}'")


def _check_sources(table, label):
    missing = [c for c in SOURCE_COLUMNS + ("class",) if c not in table.colnames]
    if missing:
        raise InvalidInputError(f"{label} lack column(s) {', '.join(missing)}")
    out = Table({c: np.asarray(table[c], dtype=float) for c in SOURCE_COLUMNS})
    classes = np.asarray(table["class"])
    if classes.dtype.kind == "S":
        classes = np.char.decode(classes, "ascii")
    out["class"] = np.char.upper(np.char.strip(classes.astype(str)))
    out["r_mag"] = out["dered_r"] + out["extinction_r"]
    counts = {c: int(np.sum(out["class"] == c)) for c in ("STAR", "GALAXY")}
    if min(counts.values()) < 1 or sum(counts.values()) < len(out):
        raise InvalidInputError(f"{label}: class must be STAR or GALAXY on every row, with "
                                f"both present (got {sorted(set(out['class'].tolist()))})")
    return out


@dataclass(frozen=True)
class InjectionCheck:
    """A model's scores on known sources drawn into a set of frames (`injection_check`).

    Attributes
    ----------
    model : str
        The model's name.
    sources : `~astropy.table.Table`
        One row per injected source: ``ra``, ``dec``, ``class`` (as drawn),
        ``r_mag``, ``truth`` (``'point'`` or ``'extended'``, measured on its
        noiseless images by SDSS's summed-flux rule,
        `sourceclf.recipes.injection.injected_truth`),
        ``on_brighter_source`` (it lands on a source of
        the frame brighter than a tenth of it), ``right`` (point-like called
        STAR or QSO, extended called GALAXY), ``set_holds_truth`` (with
        sets: STAR or QSO in a point-like source's set, GALAXY in an
        extended one's), and `sourceclf.classify`'s columns
        (``pred_class``, ``prob_<class>``, ``pred_flag``, sets).
    confidence : float or None
        The sets' level.
    measured_columns : bool
        Whether the model read MargNet's catalog columns, measured on the
        frames for the injected sources (as `sourceclf.classify` measures
        them for a catalog of positions); a catalog that gives its own
        columns is classified from those, which the check does not score.
    """

    model: str
    sources: Table
    confidence: object
    measured_columns: bool = False

    def _kinds(self):
        """The point-like and the extended rows of `sources`, and whether each was right."""
        truth = np.asarray(self.sources["truth"])
        return truth == "point", truth == "extended", np.asarray(self.sources["right"], bool)

    @property
    def point_as_star_or_qso(self):
        """Share of the point-like sources called STAR or QSO (NaN without any)."""
        point, _, right = self._kinds()
        return _share(right, point)

    @property
    def extended_as_galaxy(self):
        """Share of the extended sources called GALAXY (NaN without any)."""
        _, extended, right = self._kinds()
        return _share(right, extended)

    @property
    def balanced(self):
        """The mean of `point_as_star_or_qso` and `extended_as_galaxy`."""
        point, extended, right = self._kinds()
        return balanced_hit_rate(right, point, extended)

    @property
    def balanced_not_on_brighter(self):
        """`balanced` of the sources not on a brighter source of the frame (NaN when a kind
        has none)."""
        point, extended, right = self._kinds()
        near = np.asarray(self.sources["on_brighter_source"], bool)
        return balanced_hit_rate(right, point & ~near, extended & ~near)

    @property
    def confused(self):
        """Whether each source is flagged ``confused`` (`sourceclf.crowding.confusion_flags`:
        the fits left light around it as bright as its own)."""
        flags = np.asarray(self.sources["pred_flag"]).astype(str) \
            if "pred_flag" in self.sources.colnames else np.full(len(self.sources), "")
        return np.array([FLAG_CONFUSED in f.split(";") for f in flags], dtype=bool)

    @property
    def balanced_not_confused(self):
        """`balanced` of the sources not flagged ``confused`` (NaN when a kind has none)."""
        point, extended, right = self._kinds()
        return balanced_hit_rate(right, point & ~self.confused, extended & ~self.confused)

    @property
    def set_coverage(self):
        """Balanced share of the prediction sets (level `confidence`) that hold the truth
        (STAR or QSO for point-like sources, GALAXY for extended ones); None without
        sets."""
        return self._set_coverage_of(np.ones(len(self.sources), dtype=bool))

    def _set_coverage_of(self, rows):
        """Balanced share of ``rows``' sets that hold the truth; None without sets."""
        if "set_holds_truth" not in self.sources.colnames:
            return None
        point, extended, _ = self._kinds()
        held = np.asarray(self.sources["set_holds_truth"], bool)
        return balanced_hit_rate(held, point & rows, extended & rows)

    @property
    def set_coverage_confused(self):
        """`set_coverage` of the sources flagged ``confused`` (their sets are calibrated
        apart: `sourceclf.conformal.add_prediction_sets`); None without sets or without
        such sources, NaN when a kind has none among them."""
        confused = self.confused
        return self._set_coverage_of(confused) if confused.any() else None

    @property
    def set_size_confused(self):
        """Mean size of the prediction sets of the sources flagged ``confused``; None without
        sets or without such sources."""
        if "pred_set_size" not in self.sources.colnames or not self.confused.any():
            return None
        size = np.ma.filled(np.ma.asarray(self.sources["pred_set_size"], dtype=float), 0.0)
        return float(np.mean(size[self.confused]))

    @property
    def reliable(self):
        """Whether the balanced accuracy reaches `RELIABLE_BALANCED`."""
        return bool(self.balanced >= RELIABLE_BALANCED)

    @property
    def balanced_se(self):
        """Binomial standard error of `balanced` (NaN when a kind has no source).

        Half the root of the two shares' binomial variances: how far the
        balanced accuracy of one draw of sources and positions may lie from
        that of many (on two shared fields at two seeings, six draws of 150
        sources scattered by 0.008-0.026, and this gave 0.007-0.029:
        ``docs/scripts/injection_check_fields.py --seeds 6``).  A share of
        0 or 1 counts as half a source from it (``0.5 / n``), so that a
        small check all right is not reported as certain.
        """
        truth = np.asarray(self.sources["truth"])
        n_point, n_extended = np.sum(truth == "point"), np.sum(truth == "extended")
        if not n_point or not n_extended:
            return float("nan")

        def variance(share, n):
            share = min(max(share, 0.5 / n), 1 - 0.5 / n)
            return share * (1 - share) / n

        return float(0.5 * np.sqrt(variance(self.point_as_star_or_qso, n_point)
                                   + variance(self.extended_as_galaxy, n_extended)))

    @property
    def near_threshold(self):
        """Whether `balanced` lies within two `balanced_se` of `RELIABLE_BALANCED`."""
        return bool(abs(self.balanced - RELIABLE_BALANCED) < 2 * self.balanced_se)

    @property
    def meta(self):
        """FITS-style keywords of the scores (``CLFINJ*``, see `META_COMMENTS`), for a table's
        ``meta``: ``CLFINJOK`` is `reliable`; scores that are NaN are left out."""
        meta = {"CLFINJN": len(self.sources), "CLFINJPT": round(self.point_as_star_or_qso, 3),
                "CLFINJEX": round(self.extended_as_galaxy, 3),
                "CLFINJBA": round(self.balanced, 3), "CLFINJBE": round(self.balanced_se, 3)}
        if self.set_coverage is not None:
            meta["CLFINJSC"] = round(self.set_coverage, 3)
        if self.confused.any():
            meta["CLFINJCF"] = round(float(self.confused.mean()), 3)
            meta["CLFINJBC"] = round(self.balanced_not_confused, 3)
            if self.set_coverage_confused is not None:
                meta["CLFINJCS"] = round(self.set_coverage_confused, 3)
        meta["CLFINJOK"] = self.reliable
        # A kind without sources leaves NaN scores, which FITS headers cannot hold.
        return {k: v for k, v in meta.items() if not (isinstance(v, float) and np.isnan(v))}

    def lines(self):
        """What the check found, in a few lines of text."""
        truth = np.asarray(self.sources["truth"])
        n_point, n_extended = int(np.sum(truth == "point")), int(np.sum(truth == "extended"))
        lines = [f"injection check: {len(self.sources)} known sources drawn into the frames "
                 f"({n_point} point-like, {n_extended} extended; r "
                 f"{np.min(self.sources['r_mag']):.1f}-{np.max(self.sources['r_mag']):.1f}), "
                 f"model {self.model}: point-like called STAR/QSO "
                 f"{self.point_as_star_or_qso:.1%}, extended called GALAXY "
                 f"{self.extended_as_galaxy:.1%}, balanced {self.balanced:.1%} "
                 f"(+-{self.balanced_se:.1%})"
                 + ("" if self.set_coverage is None else
                    f"; {self.confidence:.0%} sets hold the truth for {self.set_coverage:.1%}")]
        if self.confused.any():
            rest = self.balanced_not_confused
            held = self.set_coverage_confused
            lines.append(f"{self.confused.mean():.0%} of them flagged confused (the fits left "
                         "light around them as bright as their own); the rest balanced "
                         + ("-" if np.isnan(rest) else f"{rest:.1%}")
                         + ("" if held is None else
                            f"; the flagged ones' {self.confidence:.0%} sets hold the truth for "
                            + ("-" if np.isnan(held) else f"{held:.1%}")
                            + f" with {self.set_size_confused:.1f} classes on average"))
        bins = self.by_r_mag()
        lines.append("balanced by r: " + ", ".join(
            f"{row['r_min']:g}-{row['r_max']:g} "
            + ("-" if np.isnan(row["balanced"]) else f"{row['balanced']:.0%}")
            + f" ({row['n_point']}+{row['n_extended']})" for row in bins))
        if self.near_threshold:
            lines.append(f"the balanced accuracy is within two standard errors of "
                         f"{RELIABLE_BALANCED:.0%}: a check of more sources (say "
                         f"{2 * len(self.sources)}) would tell which side it lies on")
        if not self.reliable:
            lines.append(self.warning())
        return lines

    def by_r_mag(self, bins=R_MAG_BINS):
        """The scores per bin of observed r magnitude.

        Parameters
        ----------
        bins : sequence of float
            Bin edges (each bin holds ``low <= r < high``).

        Returns
        -------
        scores : `~astropy.table.Table`
            ``r_min``, ``r_max``, ``n_point``, ``point_as_star_or_qso``,
            ``n_extended``, ``extended_as_galaxy`` and ``balanced`` per bin
            (NaN where a bin has no source of a kind).
        """
        r_mag = np.asarray(self.sources["r_mag"], dtype=float)
        truth = np.asarray(self.sources["truth"])
        right = np.asarray(self.sources["right"], dtype=bool)
        rows = []
        for low, high in zip(bins[:-1], bins[1:]):
            inside = (r_mag >= low) & (r_mag < high)
            point, extended = inside & (truth == "point"), inside & (truth == "extended")
            rows.append((low, high, int(point.sum()), _share(right, point),
                         int(extended.sum()), _share(right, extended),
                         balanced_hit_rate(right, point, extended)))
        return Table(rows=rows, names=("r_min", "r_max", "n_point", "point_as_star_or_qso",
                                       "n_extended", "extended_as_galaxy", "balanced"))

    def warning(self):
        """The one-line warning of an unreliable check ('' when reliable)."""
        if self.reliable:
            return ""
        return (f"on these frames {self.model} classified only {self.balanced:.0%} (balanced) "
                f"of {len(self.sources)} known sources drawn into them, below "
                f"{RELIABLE_BALANCED:.0%}: its classes and prediction sets here are not "
                "reliable as they are (crowding, seeing or depth unlike its training); "
                "see the pred_flag column, or recalibrate on labelled sources")


def _field_psf(frames):
    """The PSF of each band's frame from its stars, as `sourceclf.classify` measures it.

    `sourceclf.field_psf.field_psfs`: within an outer `sourceclf.field_psf.psf_memo`
    (the command line's), the measurements `classify` made of the same frames.
    """
    try:
        return field_psfs(frames)
    except InvalidInputError as exc:
        raise InvalidInputError(f"injection_check: {exc} (the sources are drawn through the "
                                "PSF of the frame's stars)") from None


def _truth(frames, catalog, psf):
    """Point-like or extended: each source's noiseless images through `TRUTH_FWHM`, the
    bands summed that detect it on the frames (``psf``'s sky noise)."""
    import galsim

    reference = galsim.Moffat(beta=3.5, fwhm=TRUTH_FWHM)
    measured = {b: PSFMeasurement(fwhm=TRUTH_FWHM, fwhm_std=0.0, beta=3.5, ellipticity=0.0,
                                  n_stars=0, sky_sigma=psf[b].sky_sigma, stars=None)
                for b in BANDS}
    return injected_truth(frames, catalog, {b: reference for b in BANDS}, measured)[1]


def _draw(sources, n, galaxy_fraction, rng):
    """``n`` rows of ``sources``, a share ``galaxy_fraction`` of them galaxies."""
    want = {"GALAXY": int(round(n * galaxy_fraction))}
    want["STAR"] = n - want["GALAXY"]
    picked = []
    for cls, count in want.items():
        rows = np.flatnonzero(np.asarray(sources["class"]) == cls)
        if count > rows.size:
            raise InvalidInputError(f"injection_check: n={n} needs {count} {cls} rows, the "
                                    f"injection sources hold {rows.size}")
        picked.append(rng.choice(rows, count, replace=False))
    return sources[rng.permutation(np.concatenate(picked))]


def _check_batch(frames, psf, psfs, catalog, clf, rng, *, confidence, classify_kwargs):
    """One copy of the frames with ``catalog``'s sources drawn in, classified and scored.

    Returns the rows (`InjectionCheck.sources`) and the model (chosen by
    `sourceclf.classify` when ``clf`` is None).
    """
    catalog = Table(catalog, copy=True)
    catalog["ra"], catalog["dec"] = place_sources(frames, len(catalog), random_state=rng)
    truth = _truth(frames, catalog, psf)
    near = field_blends(*frames["r"], psf["r"], catalog)
    injected = inject_sources(frames, catalog, psfs, random_state=rng, psf=psf)
    positions = Table({"ra": catalog["ra"], "dec": catalog["dec"]})
    if clf is None or clf.feature_set == "margnet24":
        # Measured as classify measures the frames' own sources, with the PSF of
        # the frames' own stars (never of the injected ones).
        positions = measure_columns(positions, injected, psf)[0]
    with warnings.catch_warnings():
        # The copies' warnings (crowding, measured columns) are not the user's frames'.
        warnings.simplefilter("ignore", SourceclfWarning)
        result = classify(positions, images=injected, model=clf or "auto",
                          psf={b: psf[b] for b in BANDS}, confidence=confidence,
                          progress=False, **classify_kwargs)
    if clf is None:
        clf = load_model(result.meta["CLFMODEL"])
    pred = np.asarray(result["pred_class"].filled("")).astype(str)
    point = truth == "point"
    table = Table({"ra": catalog["ra"], "dec": catalog["dec"], "class": catalog["class"],
                   "r_mag": catalog["r_mag"], "truth": truth, "on_brighter_source": near,
                   "right": np.where(point, np.isin(pred, ["STAR", "QSO"]), pred == "GALAXY")})
    if confidence is not None and "pred_set_size" in result.colnames:
        member = set_membership(result, ["STAR", "GALAXY", "QSO"])
        table["set_holds_truth"] = np.where(point, member[:, 0] | member[:, 2], member[:, 1])
    own = [c for c in result.colnames if c.startswith(("pred_", "prob_"))]
    return hstack([table, result[own]], metadata_conflicts="silent"), clf


def injection_check(images, *, model="auto", n=INJECTION["n"], sources=None,
                    galaxy_fraction=INJECTION["galaxy_fraction"], confidence=0.9,
                    random_state=0, score=None, mc_samples=None, device="auto",
                    batch_size=None, precision="fp32", subtract_neighbours="auto"):
    """Score a model on known stars and galaxies drawn into copies of the frames.

    See the module's documentation for what is drawn, how the truth is
    measured and what the check cannot see.  The frames given are not
    modified.

    Parameters
    ----------
    images : dict
        ``{band: frame}`` for u g r i z, as `sourceclf.classify` takes them
        (paths, HDUs, ``(data, wcs)`` pairs...).
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        An image model, or ``'auto'``: the one `sourceclf.classify` chooses
        for a table of positions and these frames.
    n : int
        Number of sources drawn in; they stay 30 pixels apart and 40 pixels
        inside every band's frame (`sourceclf.recipes.injection.INJECTION`),
        at most `BATCH` (150) per copy of the frames: 300 are two copies of
        150.  From one seed to another the balanced accuracy scattered by
        0.008-0.026 with 150 sources and 0.002-0.012 with 300 on two shared
        fields (``docs/scripts/injection_check_fields.py --seeds 6``).
    sources : `~astropy.table.Table`, optional
        Stars and galaxies to draw from (columns of `injection_sources`);
        default: the bundled ones.
    galaxy_fraction : float
        Share of galaxies among the ``n``.
    confidence : float or None
        Level of the prediction sets scored (None: no sets).
    random_state : None, int or `numpy.random.Generator`
        Seed of the draw, the positions and the photon noise.
    score, mc_samples, device, batch_size, precision, subtract_neighbours
        As for `sourceclf.classify`, so that the check classifies the
        injected sources as the frames' own were (the conformity score of
        the sets, a Bayesian model's Monte Carlo passes...).

    Returns
    -------
    check : `InjectionCheck`

    Raises
    ------
    InvalidInputError
        If a frame is missing or unreadable, a band's PSF cannot be measured
        from its own stars (the injected sources are drawn through it), the
        model reads no images, or ``n`` sources do not fit on the frames.
    """
    n = int(n)
    if n < MIN_SOURCES or not 0 < galaxy_fraction < 1:
        raise InvalidInputError(f"injection_check needs n >= {MIN_SOURCES} and 0 < "
                                f"galaxy_fraction < 1, got n={n}, "
                                f"galaxy_fraction={galaxy_fraction}")
    if confidence is not None and not (np.ndim(confidence) == 0
                                       and 0 < float(confidence) < 1):
        raise InvalidInputError(f"injection_check: confidence must be one level between 0 and "
                                f"1, or None; got {confidence!r}")
    check_mc_samples(mc_samples)
    check_precision(precision)
    clf = None if isinstance(model, str) and model == "auto" else load_model(model)
    if clf is not None and not clf.uses_images:
        raise InvalidInputError(f"injection_check: model '{clf.name}' reads no images; the "
                                "check draws sources into frames for an image model")
    frames = read_frames(images)
    # Each frame measured once (its PSF, its bands' offsets): by this check, by
    # inject_sources and measure_columns for every copy, and by the command line's
    # classification when it opened the memo first.
    with psf_memo():
        psf = _field_psf(frames)
        frames = register_frames(frames, psf)  # as classify registers them
        population = (injection_sources() if sources is None
                      else _check_sources(sources, "injection_check sources"))
        rng = check_random_state(random_state)
        catalog = _draw(population, n, galaxy_fraction, rng)
        psfs = empirical_psfs(frames, psf)
        classify_kwargs = {"score": score, "mc_samples": mc_samples, "device": device,
                           "batch_size": batch_size, "precision": precision,
                           "subtract_neighbours": subtract_neighbours}
        parts = []
        for start in range(0, n, BATCH):
            part, clf = _check_batch(frames, psf, psfs, catalog[start:start + BATCH], clf,
                                     rng, confidence=confidence,
                                     classify_kwargs=classify_kwargs)
            parts.append(part)
    table = vstack(parts, metadata_conflicts="silent") if len(parts) > 1 else parts[0]
    table.meta = {"CLFMODEL": clf.name}
    check = InjectionCheck(model=clf.name, sources=table, confidence=confidence,
                           measured_columns=clf.feature_set == "margnet24")
    table.meta.update(check.meta)
    return check


def _share(hit, rows):
    return float(hit[rows].mean()) if rows.any() else float("nan")
