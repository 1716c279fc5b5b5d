"""Score the shipped image models on real SDSS fields at their own and worse seeing.

For every field under ``--data`` (default ``../shared/data``) whose five
corrected frames are there, found by SDSS's file names
``frame-<band>-<run>-<camcol>-<field>.fits[.bz2]`` in any folder below it (the
shared data's ``sdss_frame_<field>`` folders, or frames as SDSS's archive
serves them, so that fields the project does not hold are checked the same
way; a field with a band missing, or whose frames cannot be read or measured,
is named and skipped, and then ``--record`` records nothing):

1. measure the PSF of each band as `sourceclf.classify` does
   (`sourceclf.field_psf.field_band_psf`);
2. build the truth of the bright sources (r < 20.5) on the native r frame
   (`sourceclf.recipes.extent_truth.frame_truth`) and keep its clean rows;
3. at the native seeing and blurred to an r-band FWHM of 1.6", 1.9" and 2.2"
   (`sourceclf.simulate.degrade_frames`, other bands in proportion; with
   ``--kernel``, which way the PSF widens: nearly Gaussian by default, or
   with the atmosphere's or the native PSF's shape), classify
   the clean sources with each shipped image model through
   ``sourceclf.classify(table, images=frames)``, which measures the PSF of
   the frames itself, as in a user's run (with ``--inject``, the PSF is
   measured on the field's frames without the injected sources and given
   as ``psf=``: the injected sources never set it).  The models reading
   MargNet's 24 columns get them measured on the same frames as their
   training columns were measured (`sourceclf.photometry.measure_columns`, as
   `sourceclf.classify` does for a catalog of positions: each source fitted
   with PSF-convolved de Vaucouleurs profiles, together with PSFs at its
   neighbours (`sourceclf.neighbour_fits`); no extinction
   correction; ``psffwhm`` from the measured PSF);
4. print, per field (with its Galactic latitude), seeing and model: the
   fraction of point-like sources called STAR or QSO, of extended ones
   called GALAXY, their mean (balanced accuracy), the fractions of rows
   flagged ``seeing_out_of_range`` and ``crowded`` (more neighbours in the
   stamp than the model's training stamps: `sourceclf.crowding`) and the
   balanced accuracy of the rows not flagged ``crowded`` (with the r frame's
   ``frame_coverage``, `sourceclf.crowding.source_coverage`), the share flagged
   ``blended`` (`sourceclf.crowding.blending_flags`) and the
   balanced accuracy of the rest, and of the rows the
   truth decides (``ambiguous`` not set: the extent at least two widths of the
   point-source locus from the cut), and how the 90% prediction sets hold
   the truth (`set_scores`) and whether the shift alarm rang; with ``--record``,
   write them into each model directory's card (``metrics['real_fields']``);
5. on the blurred frames, next to the models, ``sdss-cut``: the truth's own
   measurement made again on the blurred r frame at each source's position
   (`sourceclf.recipes.extent_truth.forced_extent`) and cut at 0.145, as SDSS
   would classify the blurred field.  It tells how much of the native
   truth the blurred frame's morphology still shows (``--record`` keeps its
   rows in ``docs/reports/real_fields_sdss_cut.json``).

Run from the repository root (about ten minutes per model on two CPU cores)::

    python docs/scripts/check_fields.py [--data ../shared/data] [--models A,B] [FIELD ...]
"""

import argparse
import json
import re
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

import sourceclf
from sourceclf.models import load_model
from sourceclf.bands import BANDS
from sourceclf.conformal import set_membership
from sourceclf.cutouts import make_cutouts
from sourceclf.frames import read_frame
from sourceclf.evaluation import balanced_hit_rate
from sourceclf.exceptions import InvalidInputError, SourceclfError
from sourceclf.crowding import FLAG_BLENDED, FLAG_CONFUSED, FLAG_CROWDED, count_neighbours
from sourceclf.field_psf import field_band_psf, field_psfs, psf_memo
from sourceclf.psf import FLAG_SEEING_OUT_OF_RANGE
from sourceclf.registration import register_frames
from sourceclf.photometry import measure_columns
from sourceclf.recipes.extent_truth import EXTENT_POINT, forced_extent, frame_truth
from sourceclf.recipes.injection import (INJECTION, empirical_psfs, field_blends, inject_sources,
                                         injected_truth, injection_catalog, place_sources,
                                         star_extent_offset)
from sourceclf.models.registry import crowded_fields
from sourceclf.simulate import degrade_frames
from sourceclf.simulate.degrade import KERNELS

SEEINGS = (None, 1.6, 1.9, 2.2)

#: ``--neighbours``: `sourceclf.classify`'s ``subtract_neighbours`` for each choice.
NEIGHBOURS = {"auto": "auto", "subtract": True, "keep": False}

#: SDSS's name of a corrected frame: band, then the field (run-camcol-field).
FRAME_FILE = re.compile(r"^frame-([ugriz])-(\d{6}-\d-\d{4})\.fits(\.bz2|\.gz|\.fz)?$")
MODELS = ("margnet-cnn-sgq", "margnet-sgq", "margformer-sgq", "bayesian-margnet-sgq",
          "bayesian-margformer-sgq")

#: The shared data's folder, beside the project (``--data``'s default).
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def add_diagnosis_options(parser, models):
    """``--data`` and ``--models`` as the diagnosis scripts beside this one take them
    (``field_by_distance.py``, ``psf_sensitivity.py``, ``truth_bands.py``): a folder of
    fields' frames, and comma-separated model names or directories (default ``models``)."""
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="folder holding the fields' frames (as check_fields.py)")
    parser.add_argument("--models", type=lambda text: text.split(","), default=list(models),
                        help="comma-separated model names or directories (default "
                             f"{','.join(models)})")


#: Not a model: SDSS's cut (``m_psf - m_aperture > 0.145``) measured again on
#: each blurred frame (`sdss_cut`), the morphology those frames still show.
SDSS_CUT = "sdss-cut"

#: Where ``--record`` keeps `SDSS_CUT`'s rows (it has no card).
SDSS_CUT_RECORD = Path(__file__).resolve().parents[1] / "reports" / "real_fields_sdss_cut.json"

#: The same for ``--inject``.
INJECTED_SDSS_CUT_RECORD = SDSS_CUT_RECORD.with_name("injected_fields_sdss_cut.json")


def sdss_cut(rows, keep, frame, seen):
    """SDSS's cut on a frame, as a result table `score` reads.

    Each kept source's extent is measured again on the frame
    (`sourceclf.recipes.extent_truth.forced_extent`, the truth's own
    measurement, forced at its positions and zeroed on ``rows``' ``psf_star``
    rows): above `EXTENT_POINT` it is called GALAXY, else STAR; a source the
    frame cannot measure (at the edge) gets no class and counts as a miss.
    ``pred_flag`` is empty: the cut has no trained range and no neighbour limit.
    """
    extent = forced_extent(*frame, seen, rows)[np.asarray(keep)]
    pred = np.ma.masked_array(np.where(extent > EXTENT_POINT, "GALAXY", "STAR"),
                              mask=~np.isfinite(extent))
    return Table({"pred_class": pred, "pred_flag": np.full(len(extent), "")})


#: r-magnitude bins (aperture-corrected, the truth's ``r_mag``) of the scores by magnitude.
R_MAG_BINS = ((None, 19.0), (19.0, 20.0), (20.0, 20.5))


def _share(hit, rows):
    """The share of ``rows`` that ``hit``; NaN, without a warning, when there are none (a
    field without a bright extended source, say)."""
    return float(hit[rows].mean()) if rows.any() else float("nan")


def score(truth, result, decided=None, r_mag=None):
    """Scores of one run: point-like called STAR/QSO, extended called GALAXY, their mean.

    Also the fractions of rows flagged ``seeing_out_of_range``, ``crowded``,
    ``blended`` and ``confused``, the balanced accuracy of the rows not flagged
    ``crowded``, of those flagged ``blended`` or ``confused`` and not, and that of the
    ``decided`` rows (the truth's extent at least two locus widths from the
    cut; None when a class has none); with ``r_mag``, ``by_r_mag``: the
    counts of each class and of its right calls in each of `R_MAG_BINS`, so
    that fields can be pooled.
    """
    pred = np.asarray(result["pred_class"].filled("")).astype(str)
    flags = np.asarray(result["pred_flag"]).astype(str)
    crowded = np.char.find(flags, FLAG_CROWDED) >= 0
    blended = np.char.find(flags, FLAG_BLENDED) >= 0
    confused = np.char.find(flags, FLAG_CONFUSED) >= 0
    point, extended = truth == "point", truth == "extended"
    hit = np.where(point, np.isin(pred, ["STAR", "QSO"]), pred == "GALAXY")
    p, e = _share(hit, point), _share(hit, extended)
    calm = balanced_hit_rate(hit, point & ~crowded, extended & ~crowded)
    alone = balanced_hit_rate(hit, point & ~blended, extended & ~blended)
    together = balanced_hit_rate(hit, point & blended, extended & blended)
    clear = balanced_hit_rate(hit, point & ~confused, extended & ~confused)
    unclear = balanced_hit_rate(hit, point & confused, extended & confused)
    decided = np.ones(len(truth), bool) if decided is None else np.asarray(decided)
    sure = balanced_hit_rate(hit, point & decided, extended & decided)
    flagged = np.char.find(flags, FLAG_SEEING_OUT_OF_RANGE) >= 0
    covered = set_covered(result, point) if "pred_set_size" in result.colnames else None
    sets = {} if covered is None else set_scores(result, point, extended, blended, confused,
                                                 covered=covered)
    return {"point_as_star_or_qso": round(p, 3), "extended_as_galaxy": round(e, 3),
            "balanced": round((p + e) / 2, 3),
            "seeing_out_of_range": round(float(flagged.mean()), 3),
            "crowded": round(float(crowded.mean()), 3),
            "balanced_not_crowded": None if np.isnan(calm) else round(float(calm), 3),
            "n_point_not_crowded": int((point & ~crowded).sum()),
            "n_extended_not_crowded": int((extended & ~crowded).sum()),
            "blended": round(float(blended.mean()), 3),
            "balanced_not_blended": None if np.isnan(alone) else round(float(alone), 3),
            "n_point_not_blended": int((point & ~blended).sum()),
            "n_extended_not_blended": int((extended & ~blended).sum()),
            "balanced_blended": None if np.isnan(together) else round(float(together), 3),
            "confused": round(float(confused.mean()), 3),
            "balanced_not_confused": None if np.isnan(clear) else round(float(clear), 3),
            "balanced_confused": None if np.isnan(unclear) else round(float(unclear), 3),
            "balanced_decided": None if np.isnan(sure) else round(float(sure), 3),
            "n_point_decided": int((point & decided).sum()),
            "n_extended_decided": int((extended & decided).sum()), **sets,
            **({} if r_mag is None else {"by_r_mag": _by_r_mag(
                hit, point, extended, r_mag, covered=covered, confused=confused)})}


#: The confidence level of the prediction sets scored (`set_scores`), classify's default.
SET_LEVEL = 0.9


def set_scores(result, point, extended, blended, confused, covered=None):
    """How the `SET_LEVEL` prediction sets of a run hold the truth.

    A point-like source's set covers it when it holds STAR or QSO, an extended
    one's when it holds GALAXY (the truth knows no more).  Also the share of
    empty sets, the mean set size, the balanced coverage of the rows not
    flagged ``blended``, the balanced coverage and mean set size of the rows
    flagged ``confused`` (``confused``: each row's flag) and the balanced
    coverage of the rest, and whether `sourceclf.classify` raised its shift
    alarm (``meta['CLFSHIFT']``: the sets depart from the calibration rows')
    and for whose rows (`alarm_rows`).  ``covered``: `set_covered`, when the
    caller has it already.
    """
    covered = set_covered(result, point) if covered is None else covered
    size = np.asarray(np.ma.filled(result["pred_set_size"], 0), dtype=float)
    cover_point, cover_extended = _share(covered, point), _share(covered, extended)
    alone = balanced_hit_rate(covered, point & ~blended, extended & ~blended)
    confused = np.asarray(confused, bool)
    unclear = balanced_hit_rate(covered, point & confused, extended & confused)
    clear = balanced_hit_rate(covered, point & ~confused, extended & ~confused)
    return {"set_coverage_point": round(cover_point, 3),
            "set_coverage_extended": round(cover_extended, 3),
            "set_coverage_balanced": round((cover_point + cover_extended) / 2, 3),
            "set_coverage_not_blended": None if np.isnan(alone) else round(float(alone), 3),
            "set_coverage_confused": None if np.isnan(unclear) else round(float(unclear), 3),
            "set_coverage_not_confused": None if np.isnan(clear) else round(float(clear), 3),
            "set_mean_size_confused": round(float(size[confused].mean()), 3)
            if confused.any() else None,
            "set_empty": round(float((size == 0).mean()), 3),
            "set_mean_size": round(float(size.mean()), 3),
            "shift_alarm": "CLFSHIFT" in result.meta,
            "shift_alarm_rows": alarm_rows(result.meta.get("CLFSHIFT"))}


def alarm_rows(message):
    """Whose sets rang the shift alarm: the flag its message names (their sets came from
    the model's table of such rows), ``'other'`` (the rest, compared with the model's
    calibration rows), or None without an alarm (`sourceclf.conformal.shift_message`)."""
    if message is None:
        return None
    found = re.search(r"on this catalog's rows flagged '([^']+)'", str(message))
    return found.group(1) if found else "other"


def set_covered(result, point):
    """Whether each row's `SET_LEVEL` set holds its truth: STAR or QSO for a point-like
    source, GALAXY for an extended one."""
    member = set_membership(result, ["STAR", "GALAXY", "QSO"])
    return np.where(point, member[:, 0] | member[:, 2], member[:, 1])


def _by_r_mag(hit, point, extended, r_mag, covered=None, confused=None):
    """Counts per `R_MAG_BINS` bin: each class's rows and right calls; with ``covered``
    (`set_covered`) and ``confused`` (each row's flag), also the rows whose set holds the
    truth, and of the rows flagged ``confused`` each class's rows and those covered."""
    r_mag = np.asarray(r_mag, dtype=float)
    out = []
    for low, high in R_MAG_BINS:
        rows = (r_mag < high) & (True if low is None else r_mag >= low)
        counts = {"r_mag": [low, high], "n_point": int((point & rows).sum()),
                  "point_hits": int((hit & point & rows).sum()),
                  "n_extended": int((extended & rows).sum()),
                  "extended_hits": int((hit & extended & rows).sum())}
        if covered is not None:
            flagged = rows & np.asarray(confused, bool)
            counts |= {"point_covered": int((covered & point & rows).sum()),
                       "extended_covered": int((covered & extended & rows).sum()),
                       "n_point_confused": int((point & flagged).sum()),
                       "n_extended_confused": int((extended & flagged).sum()),
                       "point_confused_covered": int((covered & point & flagged).sum()),
                       "extended_confused_covered": int((covered & extended & flagged).sum())}
        out.append(counts)
    return out


#: Monte Carlo draws of the Bayesian models' runs (`doubt`).
MC_SAMPLES = 30


def doubt(clf, table, frames, seen, labels, result, neighbours="auto"):
    """A Bayesian model's mean mutual information, over all rows and its right and wrong ones.

    ``seen``: the PSF given as ``psf=`` (None: measured by `sourceclf.classify`);
    ``neighbours``: its ``subtract_neighbours``.

    ``result`` is the model's posterior-mean run, which is what is scored;
    the mutual information comes from a second run with `MC_SAMPLES` draws.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = sourceclf.classify(table, images=frames, model=clf, psf=seen, confidence=None,
                                   mc_samples=MC_SAMPLES, random_state=0, device="cpu",
                                   progress=False, subtract_neighbours=neighbours)
    info = np.asarray(drawn["pred_mutual_info"], float)
    pred = np.asarray(result["pred_class"].filled("")).astype(str)
    right = np.where(labels == "point", np.isin(pred, ["STAR", "QSO"]), pred == "GALAXY")
    return {"mean_mutual_info": round(float(info.mean()), 5),
            "mean_mutual_info_right": round(float(info[right].mean()), 5),
            "mean_mutual_info_wrong": (round(float(info[~right].mean()), 5)
                                       if (~right).any() else None)}


def neighbour_shares(truth, frames):
    """How many neighbours the r stamps of all the truth's sources hold, as a sentence.

    The same count (`sourceclf.crowding.count_neighbours`) as the image models'
    cards give for their training stamps (``domain['neighbours']``).
    """
    sources = Table({"ra": np.asarray(truth["ra"]), "dec": np.asarray(truth["dec"])})
    counts = count_neighbours(make_cutouts(table=sources, images=frames).data)
    shares = np.bincount(np.minimum(counts, 3), minlength=4) / max(len(counts), 1)
    return (f"neighbours in the r stamps of its {len(counts)} sources: "
            + ", ".join(f"{k}{'+' if k == 3 else ''} {v:.1%}" for k, v in enumerate(shares))
            + f" (mean {counts.mean():.2f})")


def find_fields(data, names=(), log=print):
    """``{field: {band: path}}`` of the fields whose five frames lie under ``data``.

    Frames are found by SDSS's file names (`FRAME_FILE`) in any folder below
    ``data``; ``names`` (``run-camcol-field``) keeps only those fields.  A
    field with a band missing, and a named field not found, are logged.
    """
    found = {}
    for path in sorted(Path(data).rglob("frame-*")):
        match = FRAME_FILE.match(path.name)
        if match and path.is_file():
            found.setdefault(match.group(2), {}).setdefault(match.group(1), path)
    fields = {}
    for name, paths in sorted(found.items()):
        if names and name not in names:
            continue
        missing = [b for b in BANDS if b not in paths]
        if missing:
            log(f"{name}: skipped, no frame of band {', '.join(missing)} under {data}")
        else:
            fields[name] = paths
    for name in names:
        if name not in found:
            log(f"{name}: no frame of this field under {data}")
    return fields


def each_field(fields, run, log=print):
    """``run((name, paths))`` for each of ``fields`` (`find_fields`); a field whose frames
    cannot be read or measured (`~sourceclf.exceptions.InvalidInputError`: a corrupt file,
    a band too bare of stars for its PSF) is named in ``log`` with why, and skipped, so
    that one bad field does not stop a check of many.  Returns ``{name: why}`` of those
    skipped."""
    skipped = {}
    for field in fields.items():
        try:
            run(field)
        except InvalidInputError as exc:
            log(f"{field[0]}: skipped, {exc}")
            skipped[field[0]] = str(exc)
    return skipped


def no_fields_message(data):
    """The one-line error of a check whose ``data`` folder holds no field (`find_fields`)."""
    return (f"no field with its five frames (frame-<band>-<run>-<camcol>-<field>"
            f".fits[.bz2]) under {data}")


def nothing_recorded(skipped):
    """The closing line of a ``--record`` run that `each_field` skipped fields in."""
    return f"nothing recorded: {len(skipped)} field(s) skipped ({', '.join(skipped)})"


def skipped_note(skipped, fields):
    """The line closing a check's output when `each_field` skipped fields ("" if none)."""
    return (f"{len(skipped)} of {len(fields)} fields skipped ({', '.join(skipped)}): "
            "why is above" if skipped else "")


def read_field(field):
    """A field's name, its frames ``{band: (data, wcs)}`` and each band's PSF.

    ``field``: ``(name, {band: path})`` (`find_fields`), or a folder holding
    one field's five frames.
    """
    if not isinstance(field, tuple):
        fields = find_fields(field)
        if len(fields) != 1:
            raise InvalidInputError(f"{field} holds the five frames of {len(fields)} fields, "
                                    "expected one")
        field = next(iter(fields.items()))
    name, paths = field
    native = {b: read_frame(paths[b]) for b in BANDS}
    return name, native, field_psfs(native)


def classify_positions(sources, frames, psf, models, with_columns=None):
    """Each model's classes of a catalog of positions on ``frames``, as `sourceclf.classify`
    gives them to a user: MargNet's columns measured on the frames
    (`sourceclf.photometry.measure_columns`; ``with_columns``, if already measured) for
    the models that read them, the frames' PSF ``psf`` (``{band: PSFMeasurement}``, as
    `sourceclf.field_psf.field_psfs` measures it: FWHM and Moffat index) given as
    ``psf=``; warnings silenced.  Returns ``{model: result}``."""
    reads_columns = any(clf.feature_set == "margnet24" for clf in models.values())
    if reads_columns and with_columns is None:
        with_columns = measure_columns(sources, frames, psf)[0]
    results = {}
    for model, clf in models.items():
        table = with_columns if clf.feature_set == "margnet24" else sources
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[model] = sourceclf.classify(table, images=frames, model=clf, psf=psf,
                                                device="cpu", progress=False)
    return results


def score_text(row):
    """``'0.95 (point 0.93, extended 0.97)'``: a `score` row's balanced accuracy and shares."""
    return (f"{row['balanced']:.2f} (point {row['point_as_star_or_qso']:.2f}, "
            f"extended {row['extended_as_galaxy']:.2f})")


def blur_seed(seeing):
    """The seed of the noise of frames blurred to ``seeing``, as every check blurs them:
    100 times the seeing's place in `SEEINGS` (1 elsewhere)."""
    return 100 * (SEEINGS.index(seeing) if seeing in SEEINGS else 1)


def blurred(frames, psf, seeing, kernel="gaussian"):
    """``frames`` at an r-band FWHM of ``seeing`` (None: as they are), as every check blurs
    them (`blur_seed`; ``kernel``: `sourceclf.simulate.degrade_frames`')."""
    if seeing is None:
        return frames
    return degrade_frames(frames, seeing, psf=psf, kernel=kernel,
                          random_state=blur_seed(seeing))[0]


def blurred_with_psf(native, psf, seeing, name, kernel="gaussian", log=print):
    """``(frames, psf)``: a field's frames at an r-band FWHM of ``seeing`` as every check
    blurs them (`blur_seed`, ``kernel``) and each band's PSF measured again on them
    (`seen_psf`); ``native`` and ``psf`` themselves when ``seeing`` is None."""
    if seeing is None:
        return native, psf
    frames, targets = degrade_frames(native, seeing, psf=psf, kernel=kernel,
                                     random_state=blur_seed(seeing))
    return frames, seen_psf(frames, psf, seeing, targets, name, log)


def seen_psf(plain, psf, seeing, targets, name, log=print):
    """Each band's PSF of frames blurred to ``seeing``, measured on ``plain`` as
    `sourceclf.classify` measures it (`sourceclf.field_psf.field_band_psf`: on the band's
    own stars, else on the other bands', said in ``log``); where even that fails, the
    native PSF ``psf`` at the band's target FWHM (``targets``,
    `sourceclf.simulate.degrade_frames`'), said in ``log``: `sourceclf.classify` would
    flag such a band's rows ``psf_unknown``."""
    seen = {}
    with psf_memo():
        for b in BANDS:
            try:
                seen[b] = field_band_psf(plain, b)
            except InvalidInputError as exc:
                log(f"{name} {seeing}\": {exc}; using the target {targets[b]:.2f}\"")
                seen[b] = psf[b]._replace(fwhm=targets[b])
                continue
            if seen[b].stars_from:
                log(f"{name} {seeing}\": band {b} measured on the PSF stars of band(s) "
                    f"{', '.join(seen[b].stars_from)}: {seen[b].fwhm:.2f}\"")
    return seen


def float_list(option, rule, example, valid):
    """An argparse type: comma-separated numbers that ``valid(values)`` accepts, else a
    one-line error ("``option`` takes ``rule``, e.g. ``example``")."""
    def parse(text):
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not values or not valid(values):
            raise argparse.ArgumentTypeError(f"{option} takes {rule}, e.g. {example}; "
                                             f"got '{text}'")
        return values
    return parse


def galactic_latitude(frame):
    """Galactic latitude (degrees) of a frame's centre."""
    data, wcs = frame
    ny, nx = np.shape(data)
    return float(wcs.pixel_to_world(nx / 2.0, ny / 2.0).galactic.b.deg)


def injected_sources(native, psf, truth, injection, name, log, seed=INJECTION["seed"]):
    """The field's frames with `injection`'s sources drawn in, and their truth.

    Returns the frames, the sources' positions, their truth (``'point'`` or
    ``'extended'``, from their noiseless images), whether a source of the
    field brighter than a tenth of theirs blends with them, their r
    magnitudes, and the rows `sdss_cut` measures (the injected sources, then
    the field's PSF stars that zero the extent, as in the truth).
    """
    catalog = Table(injection, copy=True)
    catalog["ra"], catalog["dec"] = place_sources(native, len(catalog), random_state=seed)
    psfs = empirical_psfs(native, psf)  # the field's own PSF, wings included
    labels = injected_truth(native, catalog, psfs, psf)[1]
    blended = field_blends(*native["r"], psf["r"], catalog)
    sources = Table({"ra": catalog["ra"], "dec": catalog["dec"]})
    stars = truth[truth["psf_star"]]
    cut_rows = vstack([Table({"ra": catalog["ra"], "dec": catalog["dec"],
                              "psf_star": np.zeros(len(catalog), bool)}),
                       Table({c: np.asarray(stars[c]) for c in ("ra", "dec", "psf_star")})])
    frames = inject_sources(native, catalog, psfs, random_state=1, psf=psf)
    log(f"{name}: injected {len(catalog)} sources of r {np.min(catalog['r_mag']):.1f}-"
        f"{np.max(catalog['r_mag']):.1f} ({int((labels == 'point').sum())} point-like, "
        f"{int((labels == 'extended').sum())} extended on their noiseless images), "
        f"{int(blended.sum())} on a source of the field brighter than a tenth of theirs; "
        "injected stars alone minus the field's PSF stars, m_psf - m_aperture: "
        f"{star_extent_offset(native['r'], frames['r'], catalog, psf['r']):+.3f} mag")
    return frames, sources, labels, blended, np.asarray(catalog["r_mag"], float), cut_rows


def check_field(field, log, models, results=None, injection=None, columns_alone=False,
                seed=INJECTION["seed"], kernel="gaussian", neighbours="auto"):
    """Print the scores of one field (`read_field`'s ``field``; and append them to
    ``results``).

    ``models`` maps each model's name (or directory) to the model, loaded
    once.  With ``injection`` (`sourceclf.recipes.injection.injection_catalog`),
    the models are scored on those sources drawn into the field's frames
    instead of on the field's own sources; the ``decided`` scores are then
    those of the sources not blended with a brighter neighbour of the field.
    With ``columns_alone`` too, the catalog models' columns are measured on the
    injected sources alone (the frames minus the same frames without them,
    plus Gaussian noise of the frames' sky noise), while the stamps still show
    the field: what the models would do if the measurement saw through the
    neighbours.  ``seed`` places the injected sources (`place_sources`).
    ``kernel`` is how the frames are blurred (`sourceclf.simulate.degrade_frames`):
    ``"gaussian"`` (a nearly Gaussian PSF), ``"kolmogorov"`` (the atmosphere's: a worse
    night) or ``"moffat"`` (the native PSF's shape, wings and all, wider).
    ``neighbours`` is `sourceclf.classify`'s ``subtract_neighbours``.
    """
    t0 = time.time()
    name, native, psf = read_field(field)
    truth = frame_truth(*native["r"], psf["r"])
    latitude = galactic_latitude(native["r"])
    if injection is None:
        clean = truth[truth["clean"]]
        labels = np.asarray(clean["truth"]).astype(str)
        decided = ~np.asarray(clean["ambiguous"])
        r_mag = np.asarray(clean["r_mag"])
        sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
        cut_rows, keep, observed = truth, np.asarray(truth["clean"]), native
        log(f"{name} (Galactic latitude {latitude:.1f} deg): PSF FWHM "
            + " ".join(f"{b} {psf[b].fwhm:.2f}" for b in BANDS)
            + f"; truth: {len(truth)} sources r < 20.5 ({int(np.sum(truth['no_peak']))} "
            f"without a peak of their own), {len(clean)} clean: "
            f"{int((labels == 'point').sum())} point-like, {int((labels == 'extended').sum())} "
            f"extended; decided (extent two locus widths from the cut): "
            f"{int((decided & (labels == 'point')).sum())} point-like, "
            f"{int((decided & (labels == 'extended')).sum())} extended")
        log(f"{name}: " + neighbour_shares(truth, native))
    else:
        observed, sources, labels, blended, r_mag, cut_rows = injected_sources(
            native, psf, truth, injection, name, log, seed)
        decided = ~blended
        keep = np.arange(len(cut_rows)) < len(sources)
    for seeing in SEEINGS:
        # Each frame's PSF measured once per seeing: by `seen_psf` and by classify alike.
        with psf_memo():
            if seeing is None:
                frames, seen, plain = observed, psf, native
            else:
                frames, targets = degrade_frames(observed, seeing, psf=psf, kernel=kernel,
                                                 random_state=blur_seed(seeing))
                # The PSF is measured on the field's own stars, never on injected ones.
                plain = frames if injection is None else blurred(native, psf, seeing, kernel)
                seen = seen_psf(plain, psf, seeing, targets, name, log)
            given = None if injection is None else seen
            if any(clf is not None for clf in models.values()):
                on = frames
                if columns_alone:  # the injected sources alone, blurred, with the sky's noise
                    noise = np.random.default_rng(7)
                    # registered on the field's stars, which the sources alone lack
                    wcs = {b: frame[1] for b, frame in register_frames(frames, seen).items()}
                    on = {b: (frames[b][0] - plain[b][0]
                              + noise.normal(0.0, seen[b].sky_sigma, np.shape(frames[b][0])),
                              wcs[b]) for b in BANDS}
                with_columns = measure_columns(sources, on, seen)[0]
            for model, clf in models.items():
                if clf is None:  # SDSS_CUT: at the native seeing it is the truth itself
                    if seeing is None and injection is None:
                        continue
                    result = sdss_cut(cut_rows, keep, frames["r"], seen["r"])
                else:
                    table = with_columns if clf.feature_set == "margnet24" else sources
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        # On the field's own sources classify measures the PSF itself.
                        result = sourceclf.classify(table, images=frames, model=clf,
                                                    psf=given, confidence=SET_LEVEL,
                                                    device="cpu", progress=False,
                                                    subtract_neighbours=neighbours)
                row = score(labels, result, decided, r_mag)
                if "frame_coverage" in result.colnames:  # its crowding (sourceclf.crowding)
                    row["frame_coverage"] = round(
                        float(np.ma.median(result["frame_coverage"])), 4)
                if getattr(clf, "is_bayesian", False):
                    row.update(doubt(clf, table, frames, given, labels, result, neighbours))
                log(f"| {name} | {seen['r'].fwhm:.2f} | {model} "
                    f"| {row['point_as_star_or_qso']:.2f} "
                    f"| {row['extended_as_galaxy']:.2f} | {row['balanced']:.2f} "
                    f"| {row['seeing_out_of_range']:.2f} | {row['crowded']:.2f} "
                    f"| {row['balanced_not_crowded']} | {row['balanced_decided']} "
                    f"| blended {row['blended']:.2f} ({row['balanced_blended']}), "
                    f"not blended {row['balanced_not_blended']} "
                    f"| confused {row['confused']:.2f} ({row['balanced_confused']}), "
                    f"not confused {row['balanced_not_confused']} "
                    f"| coverage {row.get('frame_coverage', float('nan')):.3f} "
                    + (f"| {SET_LEVEL:.0%} sets cover {row['set_coverage_point']:.2f} point, "
                       f"{row['set_coverage_extended']:.2f} extended, "
                       f"confused {row['set_coverage_confused']} (size "
                       f"{row['set_mean_size_confused']}), not {row['set_coverage_not_confused']}, "
                       f"empty {row['set_empty']:.2f}, "
                       f"size {row['set_mean_size']:.2f}, alarm {row['shift_alarm']} "
                       f"({row.get('shift_alarm_rows')}) "
                       if "set_empty" in row else "")
                    + f"[{time.time() - t0:.0f} s]")
                if results is not None:
                    results.append((name, seeing, model, row["balanced"], {
                        "field": name, "galactic_latitude": round(latitude, 1),
                        "target_r_fwhm": seeing, "r_fwhm": round(float(seen["r"].fwhm), 2),
                        **row,
                        "n_point": int((labels == "point").sum()),
                        "n_extended": int((labels == "extended").sum())}))


def main(argv=None):
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="*", help="fields (default: all in --data)")
    parser.add_argument("--data", default=SHARED_DATA,
                        type=Path, help="folder holding the fields' frames, in any folders "
                                        "below it (frame-<band>-<run>-<camcol>-<field>.fits.bz2)")
    parser.add_argument("--models", type=lambda text: text.split(","),
                        default=list(MODELS) + [SDSS_CUT],
                        help="comma-separated model names or directories, or sdss-cut "
                             "(default: the shipped image models and sdss-cut)")
    parser.add_argument("--inject", action="store_true",
                        help="score the models on known stars and galaxies drawn into the "
                             "fields' frames (sourceclf.recipes.injection) instead of on the "
                             "fields' own sources")
    parser.add_argument("--columns-alone", action="store_true",
                        help="with --inject: measure the catalog models' columns on the injected "
                             "sources alone (the frames minus the field, plus the sky's noise), "
                             "a diagnosis; never recorded")
    parser.add_argument("--seed", type=int, default=INJECTION["seed"],
                        help="with --inject: the seed placing the sources on the frames "
                             f"(default {INJECTION['seed']}, the one recorded; others are "
                             "never recorded)")
    parser.add_argument("--kernel", choices=KERNELS, default="gaussian",
                        help="how the frames are blurred (sourceclf.simulate.degrade_frames): "
                             "gaussian (the default; a nearly Gaussian PSF), kolmogorov (the "
                             "atmosphere's: a night of worse seeing) or moffat (the native "
                             "PSF's shape, wings and all, wider); the last two recorded apart "
                             "(metrics['real_fields_kolmogorov'], ...)")
    parser.add_argument("--without-flag-calibration", action="store_true",
                        help="give the rows flagged confused the model's own prediction sets, "
                             "not those of its calibration table of such rows "
                             "(flag_calibrations): the sets as they were before it, a "
                             "diagnosis; never recorded")
    parser.add_argument("--neighbours", choices=tuple(NEIGHBOURS), default="auto",
                        help="classify's subtract_neighbours: auto (the default, recorded: "
                             "the image-only CNN sees each stamp less its neighbours' fitted "
                             "light, the models reading MargNet's columns the stamps as cut), "
                             "subtract (every image model less its neighbours) or keep (every "
                             "one as cut); the last two a diagnosis, never recorded")
    parser.add_argument("--record", action="store_true",
                        help="write the scores into each model directory's card.json "
                             "(metrics['real_fields'], with --inject metrics['injected_fields'])")
    parser.add_argument("--from-cards", action="store_true",
                        help="measure nothing: print the table from the scores recorded in "
                             "the models' cards")
    args = parser.parse_args(argv)
    if args.columns_alone and (args.record or not args.inject):
        parser.error("--columns-alone is a diagnosis of --inject, never recorded")
    if args.seed != INJECTION["seed"] and (args.record or not args.inject):
        parser.error("--seed places the sources of --inject; only the default is recorded")
    if args.neighbours != "auto" and args.record:
        parser.error("--neighbours subtract|keep is a diagnosis, never recorded")
    if args.without_flag_calibration and args.record:
        parser.error("--without-flag-calibration is a diagnosis, never recorded")
    if args.from_cards:
        try:
            rows = recorded(args.models, args.inject, args.kernel)
        except SourceclfError as exc:  # an unknown model: named in one line
            parser.error(str(exc))
        summary(rows, args.models, args.inject)
        return
    import torch

    torch.set_num_threads(1)
    try:
        models = {model: None if model == SDSS_CUT else load_model(model)  # each read once
                  for model in args.models}
    except SourceclfError as exc:  # an unknown model, or a directory without one
        parser.error(str(exc))
    if args.without_flag_calibration:
        for clf in models.values():
            if clf is not None:
                clf.flag_calibrations = {}
    fields = find_fields(args.data, args.fields, lambda s: print(s, flush=True))
    if not fields:
        parser.error(no_fields_message(args.data))
    print("| field | r FWHM \" | model | point -> STAR/QSO | extended -> GALAXY | balanced "
          "| seeing_out_of_range | crowded | balanced, not crowded | balanced, "
          + ("unblended |" if args.inject else "decided |"), flush=True)
    results = []
    injection = injection_catalog(data_dir=args.data) if args.inject else None

    def run(field):  # a field's rows kept only when all its runs were made
        rows = []
        check_field(field, lambda s: print(s, flush=True), models, rows, injection,
                    args.columns_alone, args.seed, args.kernel, NEIGHBOURS[args.neighbours])
        results.extend(rows)

    skipped = each_field(fields, run, lambda s: print(s, flush=True))
    summary(results, args.models, args.inject)
    if skipped:
        print("\n" + skipped_note(skipped, fields))
    if args.record and skipped:
        parser.exit(1, nothing_recorded(skipped) + "; the cards keep their rows\n")
    if args.record:
        for model in args.models:
            record(model, [row for _, _, m, _, row in results if m == model], args.inject,
                   args.kernel)


def lowest(results, model, key):
    """``(seeing label, row)`` of a model's lowest ``key`` over the fields, per seeing
    (the rows without ``key`` left out; seeings with no row skipped)."""
    for seeing in SEEINGS:
        rows = [row for _, s, m, _, row in results
                if m == model and s == seeing and row.get(key) is not None
                and np.isfinite(row[key])]
        if rows:
            yield ("native" if seeing is None else f"{seeing}\"",
                   min(rows, key=lambda row: row[key]))


def _print_lowest(results, models, key, where):
    """One line per model (not `SDSS_CUT`): its lowest ``key`` per seeing, then ``where(row)``."""
    for model in models:
        cells = [f"{label} {low[key]:.2f} {where(low)}"
                 for label, low in lowest(results, model, key)]
        if cells and model != SDSS_CUT:
            print(f"  {model}: " + ", ".join(cells), flush=True)


def summary(results, models, injected=False):
    """Print the table and each model's lowest balanced accuracy per seeing (+- its error)."""
    print("\n" + rst_table(results, injected))
    print("\nLowest balanced accuracy over the fields (issue 14's target: >= 0.95 up to "
          "1.9\", >= 0.90 at 2.2\"):")
    for model in models:
        cells = [f"{label} {low['balanced']:.2f}+-{balanced_error(low):.2f}"
                 for label, low in lowest(results, model, "balanced")]
        print(f"  {model}: " + ", ".join(cells), flush=True)
    print("\nLowest balanced accuracy of the rows not flagged crowded, over the fields that "
          "have them:")
    _print_lowest(results, models, "balanced_not_crowded", lambda low: f"({low['field']})")
    print("\nLowest balanced accuracy of the rows not flagged blended (blendedness measured "
          "on the frames), and the share flagged there:")
    _print_lowest(results, models, "balanced_not_blended",
                  lambda low: f"({low['field']}, {low['blended']:.0%} flagged)")
    print("\nLowest balanced accuracy of the rows not flagged confused (the fits left light "
          "around them as bright as their own), and the share flagged there:")
    _print_lowest(results, models, "balanced_not_confused",
                  lambda low: f"({low['field']}, {low['confused']:.0%} flagged)")
    sets = set_table(results, models)
    if sets:
        print(f"\nThe {SET_LEVEL:g} prediction sets, per field and seeing: the share of point-like "
              "sources whose set holds STAR or QSO and of extended ones whose set holds GALAXY "
              "(their mean: balanced coverage), the mean set size, the balanced coverage and "
              "mean size of the rows flagged confused, and whether classify raised "
              "its shift alarm; lowest and highest over the fields of each group:")
        print(sets)
        rang = [row.get("shift_alarm_rows", "unrecorded") for name, _, m, _, row in results
                if m != SDSS_CUT and row.get("shift_alarm")]
        print(f"Shift alarms by the rows that rang them: {len(rang)} in all"
              + "".join(f", {rang.count(kind)} {kind}" for kind in sorted(set(rang), key=str))
              + " (other: the rows whose sets come from the model's calibration rows; a flag: "
              "the rows flagged so, against their own table)")
    by_magnitude = magnitude_table(results, models)
    if by_magnitude:
        print("\nBalanced accuracy by r magnitude, fields pooled (point-like/extended rows):")
        print(by_magnitude)
    by_magnitude = set_magnitude_table(results, models)
    if by_magnitude:
        print(f"\nBalanced coverage of the {SET_LEVEL:g} prediction sets by r magnitude, fields "
              "pooled: of all rows / of the rows flagged confused (their point-like/extended "
              "rows):")
        print(by_magnitude)
    cut = {(name, s): row for name, s, m, _, row in results if m == SDSS_CUT}
    if cut:
        print(f"\nBalanced accuracy minus {SDSS_CUT}'s on the same blurred frames "
              "(lowest, median, highest over the fields and seeings):")
    for model in models:
        gains = [row["balanced"] - cut[(name, s)]["balanced"]
                 for name, s, m, _, row in results if m == model and (name, s) in cut]
        if model != SDSS_CUT and gains:
            print(f"  {model}: {min(gains):+.2f}, {np.median(gains):+.2f}, {max(gains):+.2f} "
                  f"({sum(g > 0 for g in gains)} of {len(gains)} above)", flush=True)


def field_groups(results, models, key, crowded=None):
    """``(model, seeing, group label, rows)`` of the rows holding ``key``, per model, seeing and
    group of fields: ``uncrowded``, then ``crowded`` (``crowded``, by default the fields where
    a model's rows are mostly flagged ``crowded``,
    `sourceclf.models.registry.crowded_fields`); groups without such rows left out."""
    if crowded is None:
        crowded = crowded_fields(dict(row, field=name) for name, _, _, _, row in results)
    for model in models:
        for seeing in SEEINGS:
            for group, label in ((False, "uncrowded"), (True, "crowded")):
                rows = [row for name, s, m, _, row in results
                        if m == model and s == seeing and (name in crowded) == group
                        and key in row]
                if rows:
                    yield (Path(model).name, "native" if seeing is None else f'{seeing}"',
                           label, rows)


def simple_table(head, lines):
    """An rst simple table of ``lines`` under ``head``, columns one space apart ("" if none)."""
    if not lines:
        return ""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    rule = " ".join("=" * w for w in widths)
    return "\n".join([rule, " ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), rule]
                     + [" ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
                        for line in lines] + [rule])


def set_table(results, models):
    """The prediction sets' coverage, size and alarms per model and seeing, as an rst table.

    Fields grouped as in `magnitude_table`; each cell gives the lowest and
    highest value over the group's fields (``--`` where none has a value:
    no row flagged ``confused``, or a record made before it was kept), the
    alarms their count.
    """
    head = ["model", "seeing", "fields", "balanced coverage", "point", "extended",
            "mean size", "confused", "their size", "alarms"]
    lines = []
    for model, seeing, label, rows in field_groups(results, models, "set_coverage_balanced"):
        def span(key):
            values = [row[key] for row in rows if row.get(key) is not None]
            return f"{min(values):.2f}-{max(values):.2f}" if values else "--"

        spans = [span(key) for key in ("set_coverage_balanced", "set_coverage_point",
                                       "set_coverage_extended", "set_mean_size",
                                       "set_coverage_confused", "set_mean_size_confused")]
        alarms = f"{sum(row['shift_alarm'] for row in rows)} of {len(rows)}"
        lines.append([model, seeing, label, *spans, alarms])
    return simple_table(head, lines)


def magnitude_table(results, models):
    """Balanced accuracy per r-magnitude bin, pooled over the uncrowded and the crowded fields.

    A field is crowded when a model's rows there are mostly flagged ``crowded``.
    Each cell pools the fields' counts (right calls over rows, per class) and
    gives the balanced accuracy, with the rows of each class in brackets.
    """
    head = ["model", "seeing", "fields"] + [
        f"r < {high}" if low is None else f"r {low}-{high}" for low, high in R_MAG_BINS]
    lines = []
    for model, seeing, label, rows in field_groups(results, models, "by_r_mag"):
        cells = []
        for k in range(len(R_MAG_BINS)):
            n = {c: sum(r["by_r_mag"][k][f"n_{c}"] for r in rows) for c in ("point", "extended")}
            hits = {c: sum(r["by_r_mag"][k][f"{c}_hits"] for r in rows)
                    for c in ("point", "extended")}
            if not all(n.values()):
                cells.append("--")
                continue
            both = (hits["point"] / n["point"] + hits["extended"] / n["extended"]) / 2
            cells.append(f"{both:.2f} ({n['point']}/{n['extended']})")
        lines.append([model, seeing, label] + cells)
    return simple_table(head, lines)


def set_magnitude_table(results, models):
    """The `SET_LEVEL` sets' balanced coverage per r-magnitude bin, pooled as in
    `magnitude_table`: of all rows, and of the rows flagged ``confused`` (their rows of each
    class in brackets; ``--`` where a class has none, or the records hold no set counts)."""
    head = ["model", "seeing", "fields"] + [
        f"r < {high}" if low is None else f"r {low}-{high}" for low, high in R_MAG_BINS]
    lines = []
    for model, seeing, label, rows in field_groups(results, models, "by_r_mag"):
        if not all("point_covered" in b for row in rows for b in row["by_r_mag"]):
            continue
        cells = []
        for k in range(len(R_MAG_BINS)):
            def balanced(n_key, hit_key):
                n = [sum(r["by_r_mag"][k][n_key.format(c)] for r in rows)
                     for c in ("point", "extended")]
                hits = [sum(r["by_r_mag"][k][hit_key.format(c)] for r in rows)
                        for c in ("point", "extended")]
                return (None if not all(n) else (hits[0] / n[0] + hits[1] / n[1]) / 2), n

            every, _ = balanced("n_{}", "{}_covered")
            flagged, n = balanced("n_{}_confused", "{}_confused_covered")
            cells.append(f"{'--' if every is None else f'{every:.2f}'} / "
                         f"{'--' if flagged is None else f'{flagged:.2f}'} ({n[0]}/{n[1]})")
        lines.append([model, seeing, label] + cells)
    return simple_table(head, lines)


def record_key(injected=False, kernel="gaussian"):
    """The card's ``metrics`` key of a check's rows: ``real_fields`` or ``injected_fields``,
    with ``_kolmogorov`` or ``_moffat`` after it for frames blurred with those kernels."""
    return ("injected_fields" if injected else "real_fields") + (
        "" if kernel == "gaussian" else f"_{kernel}")


def sdss_cut_record(injected=False, kernel="gaussian"):
    """The file of `SDSS_CUT`'s rows (`SDSS_CUT_RECORD` or `INJECTED_SDSS_CUT_RECORD`,
    ``_kolmogorov`` or ``_moffat`` before the suffix for those kernels)."""
    where = INJECTED_SDSS_CUT_RECORD if injected else SDSS_CUT_RECORD
    return where if kernel == "gaussian" else where.with_name(f"{where.stem}_{kernel}.json")


def recorded(models, injected=False, kernel="gaussian"):
    """The results recorded in the models' cards by ``--record`` (``--inject``,
    ``--kernel``: by those too)."""
    from sourceclf.models import model_card

    results = []
    cut_record = sdss_cut_record(injected, kernel)
    for model in models:
        if model == SDSS_CUT:
            rows = json.loads(cut_record.read_text())["rows"] if cut_record.exists() else []
        else:
            rows = (model_card(model).metrics
                    .get(record_key(injected, kernel), {}).get("rows", []))
        for row in rows:
            results.append((row["field"], row["target_r_fwhm"], model, row["balanced"], row))
    return results


def rst_table(results, injected=False):
    """The scores as the reStructuredText table docs/images.rst shows."""
    widths = (10, 5, 6, 6, 23, 5, 8, 8, 5, 7, 9, 9 if injected else 7)
    rule = " ".join("=" * w for w in widths)
    header = ("field", "b", "target", "r FWHM", "model", "point", "extended", "balanced",
              "+-", "crowded", "uncrowded", "unblended" if injected else "decided")
    lines = [rule, " ".join(f"{h:<{w}}" for h, w in zip(header, widths)).rstrip(), rule]
    for name, seeing, model, _, row in sorted(results, key=lambda r: (r[0], r[1] or 0, r[2])):
        target = "native" if seeing is None else f'{seeing:.1f}"'
        calm, sure = row["balanced_not_crowded"], row.get("balanced_decided")
        lines.append(f"{name.rsplit('-', 1)[0]:<10} {row['galactic_latitude']:<5.0f} {target:<6} "
                     f"{row['r_fwhm']:.2f}\"  {Path(model).name:<23} "
                     f"{row['point_as_star_or_qso']:<5.2f} {row['extended_as_galaxy']:<8.2f} "
                     f"{row['balanced']:<8.2f} {balanced_error(row):<5.2f} "
                     + ("--" if model == SDSS_CUT else f"{row['crowded']:.2f}").ljust(8)
                     + ("--" if calm is None or model == SDSS_CUT else f"{calm:.2f}").ljust(10)
                     + ("--" if sure is None else f"{sure:.2f}"))
    return "\n".join(lines + [rule])


def balanced_error(row):
    """Binomial standard error of a row's balanced accuracy (its two fractions' counts)."""
    p, e = row["point_as_star_or_qso"], row["extended_as_galaxy"]
    return 0.5 * float(np.sqrt(p * (1 - p) / max(row["n_point"], 1)
                               + e * (1 - e) / max(row["n_extended"], 1)))


def merged_rows(old, new):
    """The recorded rows ``old`` of the fields that ``new`` has none of, and ``new``, ordered
    by field and seeing: a check of some fields replaces their rows only (it replaced the
    whole record, so that ``check_fields.py FIELD --record`` lost every other field's)."""
    fields = {row["field"] for row in new}
    order = {seeing: k for k, seeing in enumerate(SEEINGS)}
    rows = [row for row in old if row["field"] not in fields] + list(new)
    return sorted(rows, key=lambda row: (row["field"],
                                         order.get(row["target_r_fwhm"], len(order))))


def record(model, rows, injected=False, kernel="gaussian"):
    """Put the scores into a model directory's card.

    The real fields' go to ``metrics['real_fields']``, the injected sources'
    (``--inject``) to ``metrics['injected_fields']``; `SDSS_CUT`'s rows go to
    `SDSS_CUT_RECORD` or `INJECTED_SDSS_CUT_RECORD`; the rows of frames blurred
    with the ``kolmogorov`` or ``moffat`` kernel to the same names followed by
    ``_kolmogorov`` or ``_moffat`` (`record_key`, `sdss_cut_record`).  The rows
    of fields not checked this time are kept (`merged_rows`).
    """
    from sourceclf.models import MODEL_DIR, ModelCard

    blur = ("" if kernel == "gaussian" else
            f" (blurred with the '{kernel}' kernel of sourceclf.simulate.degrade_frames: "
            + ("the native PSF's Moffat index, wider)" if kernel == "moffat" else
               "the atmosphere's, a Kolmogorov profile)"))
    if model == SDSS_CUT:
        where = sdss_cut_record(injected, kernel)
        what = ("each injected source (sourceclf.recipes.injection) on each frame, native and "
                "blurred" if injected else "each blurred r frame at the truth's clean sources")
        if where.exists():
            rows = merged_rows(json.loads(where.read_text())["rows"], rows)
        where.write_text(json.dumps({
            "data": ("SDSS's cut (PSF minus aperture magnitude > 0.145) measured again on "
                     f"{what}{blur} (docs/scripts/check_fields.py)"),
            "rows": rows}, indent=1) + "\n")
        print(f"  recorded in {where}", flush=True)
        return
    path = Path(model) if Path(model).is_dir() else MODEL_DIR / model
    card = ModelCard.from_directory(path)
    key = record_key(injected, kernel)
    if injected:
        data = ("stars and galaxies of the simulated training population (another seed) "
                "drawn into the frames of real SDSS fields at random positions "
                "(sourceclf.recipes.injection, 150 per field, r 16-20.5), truth from each "
                "source's noiseless images (PSF minus aperture magnitude of the fluxes "
                "summed over the bands that detect it > 0.145: extended, SDSS's objc_type "
                "rule), at the field's own seeing and blurred to 1.6, 1.9 and 2.2 "
                "arcsec; 'decided' scores are those of the sources not blended with a "
                "source of the field brighter than a tenth of theirs within 4 arcsec "
                "(docs/scripts/check_fields.py --inject)")
    else:
        data = ("bright (r < 20.5) clean sources of real SDSS fields, truth from the "
                "native r frame (PSF minus aperture magnitude > 0.145: extended; sources "
                "without a peak of their own left out), at the field's own seeing and "
                "blurred to 1.6, 1.9 and 2.2 arcsec (docs/scripts/check_fields.py)")
    old_rows = card.metrics.get(key, {}).get("rows", [])
    card.metrics[key] = {"data": data + blur, "rows": merged_rows(old_rows, rows)}
    card.to_json(path / "card.json")
    print(f"  recorded in {path / 'card.json'}", flush=True)


if __name__ == "__main__":
    main()
