"""Table in, table out: `classify` adds class predictions to a catalog."""

import contextlib
import threading
import warnings

import numpy as np
from astropy.table import MaskedColumn, Table

from . import __version__
from . import conformal
from .bands import BANDS
from .columns import map_columns
from .conformal.shift import check_set_shift
from .crowding import measurement_flags
from .cutouts import FLAG_OFF_FRAME, make_cutouts, sources_on_frames
from .exceptions import InvalidInputError, OffFrameWarning, SourceclfError, SourceclfWarning
from .features import get_feature_set
from .inputs import catalog_psf_fwhm, model_inputs, psf_by_band, read_frames
from .registration import describe_registration, register_frames
from .model_choice import choose_model, explain_model_choice
from .models.registry import load_model
from .frames import sky_positions
from .photometry import catalog_extinction, measure_columns
from .field_psf import describe_field_psf, psf_memo
from .psf import PSFMeasurement
from .stamp_columns import columns_from_stamps
from .stamp_neighbours import subtracts_neighbours
from .utils._validation import check_confidence_levels, check_positive_int
from .utils._warnings import user_stacklevel

__all__ = ["classify", "frame_columns", "frame_measurement_cache", "choose_model",
           "SourceclfWarning", "OUTPUT_META_KEYS", "FLAG_OUT_OF_DOMAIN", "FLAG_NONFINITE_OUTPUT",
           "MAX_MC_SAMPLES", "check_mc_samples"]

#: Keys written into the output table's ``meta`` (8 characters or fewer, so that
#: they survive a round trip through a FITS header).
OUTPUT_META_KEYS = {
    "CLFMODEL": "name of the model that made the predictions",
    "CLFMVER": "version of that model",
    "CLFPKG": "sourceclf version",
    "CLFCONF": "confidence level(s) of the prediction sets",
    "CLFSCORE": "conformity score of the prediction sets",
    "CLFGROUP": "column and bins of group-conditional (Mondrian) calibration",
    "CLFMC": "number of Monte Carlo passes of a Bayesian model",
    "CLFPREC": "floating-point format of a torch model's forward pass ('fp32' or 'bf16')",
    "CLFCOMP": "whether the forward pass ran through torch.compile (compile=True only)",
    "CLFAUTO": "why model='auto' chose the model (domain coverage, accuracy, classes)",
    "CLFNOOD": "number of classified rows outside the model's training domain",
    "CLFSHREF": "set-size rates of the model's calibration rows per r bin, and the "
                "catalog's rows in each, by level (JSON)",
    "CLFSHFLG": "set-size rates of the calibration tables of flagged rows (flag_calibrations) "
                "per r bin, and the catalog's rows so flagged in each, by flag and level (JSON)",
    "CLFSHIFT": "the shift alarm: how the catalog's prediction sets depart from them",
    "CLFCOLS": "MargNet's catalog columns were measured on the images (not in the table)",
    "CLFPSF": "the PSF those columns were measured through, for stamps given directly",
    "CLFFPSF": "the PSF measured on the frames: FWHM per band, and whose stars",
    "CLFNBSUB": "whether an image model saw the stamps less their neighbours' fitted light",
    "CLFREG": "the bands whose frame was registered on the r frame's stars, and by what",
}

#: The catalog columns `classify` measures on frames when the table lacks them.
FRAME_FEATURE_SET = "margnet24"

#: ``pred_flag`` reason of a classified row whose inputs lie outside the
#: model's applicability domain (its probabilities are kept, but doubtful).
FLAG_OUT_OF_DOMAIN = "out_of_domain"

#: ``pred_flag`` reason of a row the model gave non-finite probabilities
#: (NaN or infinite network outputs): the row is left unclassified.
FLAG_NONFINITE_OUTPUT = "nonfinite_output"

#: Largest ``mc_samples``: the Monte Carlo error of a mean probability is then
#: at most 0.5 / sqrt(1000) = 0.016, and a batch's sampled outputs take
#: ``mc_samples`` times the memory of one pass (gigabytes beyond this).
MAX_MC_SAMPLES = 1000


def check_mc_samples(mc_samples):
    """``mc_samples`` as an int from 1 to `MAX_MC_SAMPLES`, or None.

    Raises
    ------
    InvalidInputError
        For anything else (zero, negative, not an integer, too many).
    """
    n = check_positive_int(mc_samples, "mc_samples", allow_none=True)
    if n is not None and n > MAX_MC_SAMPLES:
        raise InvalidInputError(f"mc_samples must be at most {MAX_MC_SAMPLES}, got {n} "
                                "(the Monte Carlo error is then below 0.02 in probability)")
    return n


def _as_table(table):
    """The catalog as a Table, and the pandas DataFrame it came from (or None)."""
    if isinstance(table, Table):
        return table, None
    if type(table).__name__ == "DataFrame" and hasattr(table, "to_numpy"):
        return Table.from_pandas(table), table
    raise InvalidInputError(
        f"classify takes an astropy Table or a pandas DataFrame, got {type(table).__name__}; "
        "read a file with Table.read(path) or wrap arrays with Table(...)")


#: The measurements `frame_columns` keeps while a `frame_measurement_cache` is open in
#: this thread (``measured`` is None when none is).
_OPEN = threading.local()


@contextlib.contextmanager
def frame_measurement_cache():
    """Measure each frame's PSF, and each set of rows' columns, once while open.

    `sourceclf.streaming.classify_file` opens it for a run: the frames are
    read once and stay as they were, so that the PSF of each is measured on
    the first chunk only, and the first chunk's columns, measured to choose
    the model, are not measured again to classify it (on the frames, or on
    the stamps given directly: the same array, which must not change while
    it is open).  The PSF is kept by
    `sourceclf.field_psf.psf_memo`, which it opens: also the PSF `classify` measures
    for an image model's inputs when the catalog has its columns.  The
    measurements are forgotten when it closes.
    """
    outer = getattr(_OPEN, "measured", None)
    _OPEN.measured = {}
    try:
        with psf_memo():
            yield
    finally:
        _OPEN.measured = outer


def _last_measurement(kind, key, anchors, measure):
    """``measure()``, through `frame_measurement_cache` when it is open.

    While it is open, the result of the last call of this ``kind`` is given
    again when that call had the same ``key()`` and the same ``anchors`` (the
    frames' or stamps' arrays, compared by identity and held with it); only
    the last call's is held, and let go before another is measured.
    """
    kept = getattr(_OPEN, "measured", None)
    if kept is None:
        return measure()
    key = key()
    held = kept.pop(kind, None)
    if held is None or held[0] != key or len(held[1]) != len(anchors) \
            or any(a is not b for a, b in zip(held[1], anchors)):
        held = (key, anchors, measure())
    kept[kind] = held
    return held[2]


def _measure_stamps(source, cutouts, psf, quiet):
    """`columns_from_stamps` on the stamps read once, and the stamps as read (a
    `~sourceclf.cutouts.CutoutResult`), through `frame_measurement_cache` when it is open."""
    def key():  # the same rows' PSF and extinction
        fwhm = catalog_psf_fwhm(source) if psf is None else None
        extinction = catalog_extinction(source)
        return (len(source), tuple(source.colnames),
                None if fwhm is None else tuple(fwhm[b].tobytes() for b in BANDS),
                None if extinction is None else np.asarray(extinction).tobytes(),
                repr(psf if not isinstance(psf, dict) else sorted(psf.items())))

    def measure():
        # Read (a file) and checked once: make_cutouts keeps a CutoutResult's flags, and
        # takes its clean float32 array as it is, without a copy.
        result = make_cutouts(cutouts, table=source)
        return columns_from_stamps(source, result, psf, quiet=quiet), source, result

    measured, given, result = _last_measurement("stamps", key, (cutouts,), measure)
    return (source if measured is given else measured), result


def _measure_columns(source, frames, psf):
    """`measure_columns`, through `frame_measurement_cache` when it is open."""
    def key():  # the same rows, extinction (the columns are corrected by it) and PSF
        ra, dec = sky_positions(source)
        extinction = catalog_extinction(source)
        return (ra.tobytes(), dec.tobytes(), tuple(source.colnames),
                None if extinction is None else np.asarray(extinction).tobytes(),
                tuple((b, ("measured", id(v)) if isinstance(v, PSFMeasurement) else float(v))
                      for b, v in sorted((psf or {}).items())))

    return _last_measurement("columns", key, tuple(frames[b][0] for b in BANDS),
                             lambda: measure_columns(source, frames, psf))


def frame_columns(source, images, cutouts=None, psf=None, *, quiet=False, stamps=True):
    """The table with MargNet's columns measured on the frames, where it lacks them.

    What `classify` does before choosing or running a model that reads
    MargNet's catalog columns next to the stamps.  Stamps given directly
    (``cutouts``) are measured in the same way when their PSF is given
    (``psf``, or the table's ``psffwhm_<b>``): each stamp stands for its frame
    (`sourceclf.photometry.measure_stamp_columns`, the sky noise from the
    stamps' borders, `sourceclf.sky.stamp_sky`).

    Parameters
    ----------
    source : `~astropy.table.Table`
        The catalog, under sourceclf's column names.
    images : dict or None
        Full frames by band, as `classify` takes them.
    cutouts : optional
        Stamps given directly (any form `sourceclf.cutouts.make_cutouts`
        takes): measured when their PSF is known (``psf``, or the table's
        ``psffwhm_<b>``) and ``stamps`` is True.
    psf : float or dict, optional
        `classify`'s ``psf``: with it, its FWHMs stand for the frames' PSF
        (`sourceclf.photometry.measure_columns`), or the stamps'; without
        it the stamps' is each row's ``psffwhm_<b>``
        (`sourceclf.inputs.catalog_psf_fwhm`), where the table has them.
    quiet : bool
        No warning when the columns cannot be measured (for a model reading
        the images alone, which flags the rows whose PSF is unknown itself).
    stamps : bool
        Whether stamps given directly are measured (False for a model reading
        the images alone: nothing of the columns would be used).

    Returns
    -------
    table : `~astropy.table.Table`
        ``source`` itself when nothing is measured (no frames, stamps given,
        the columns already there, or a frame whose PSF cannot be measured:
        then after one `SourceclfWarning`), else a copy with the columns.
    images : dict
        The frames read once (``images`` as given when nothing is measured).
    psf : float, dict or None
        The PSF FWHM to use: ``psf``, else the measured ones.
    measured : bool
    """
    return _frame_columns(source, images, cutouts, psf, quiet=quiet, stamps=stamps)[:4]


def _frame_columns(source, images, cutouts, psf, *, quiet=False, stamps=True):
    """`frame_columns`'s four results, then the stamps: ``cutouts`` as a
    `~sourceclf.cutouts.CutoutResult` when they were read to be measured
    (else as given), so that `classify` hands the model the stamps read once."""
    if images is None and cutouts is None:
        return source, images, psf, False, cutouts
    if not get_feature_set(FRAME_FEATURE_SET).missing_columns(source):
        return source, images, psf, False, cutouts
    if cutouts is not None:
        if images is not None or not stamps or (
                psf is None and catalog_psf_fwhm(source) is None):
            return source, images, psf, False, cutouts
        measured, cutouts = _measure_stamps(source, cutouts, psf, quiet)
        return measured, images, psf, measured is not source, cutouts
    frames = read_frames(images)  # measure_columns registers them for the columns
    try:
        measured, seen = _measure_columns(source, frames,
                                          None if psf is None
                                          else psf_by_band(psf, keep_measurements=True))
    except InvalidInputError as exc:
        if quiet:
            return source, frames, psf, False, cutouts
        warnings.warn(f"MargNet's catalog columns not measured on the frames ({exc}); "
                      "only models reading the images alone can be used",
                      SourceclfWarning, stacklevel=user_stacklevel())
        return source, frames, psf, False, cutouts
    return measured, frames, psf if psf is not None else seen, True, cutouts


def _with_fit_flag_columns(source, measured):
    """``source`` with the ``blendedness_<b>`` and ``unmodelled_<b>`` columns of
    ``measured`` (`frame_columns`), which the flags of `measurement_flags` read."""
    names = [f"{kind}_{b}" for kind in ("blendedness", "unmodelled") for b in BANDS
             if f"{kind}_{b}" in measured.colnames]
    if measured is source or not names:
        return source
    out = Table(source, copy=False)  # a new table of the same columns: source is untouched
    for name in names:
        out[name] = measured[name]
    return out


def _as_frame(out, frame, untouched=()):
    """The classified table as a DataFrame with the input's index; meta in ``attrs``.

    The input's columns named in ``untouched`` (those classify did not
    replace) are the frame's own Series, so that their values and dtypes come
    back exactly as given (``None`` in an object column stays ``None``, where
    the round trip through a masked Table would give NaN).
    """
    result = out.to_pandas()
    result.index = frame.index
    for name in untouched:
        if name in frame.columns and name in result.columns:
            result[name] = frame[name]
    result.attrs.update(out.meta)
    return result


def _off_frame_message(table, images, n):
    """Why no row lies on the frames: on none of them, or not on some bands' frames."""
    try:
        counts = sources_on_frames(table, images)
    except SourceclfError:  # positions unreadable: the rows' own flags say why
        counts = {}
    some = [b for b in BANDS if counts.get(b)]
    if some:
        missed = [b for b in BANDS if not counts.get(b)]
        where = (f"they lie on the frames of {' '.join(some)} but not on those of "
                 f"{' '.join(missed)}: are all the frames of one field?" if missed else
                 "each is off the frame of at least one band: are the frames of one field?")
    else:
        where = "are they frames of the catalog's field?"
    return (f"none of the {n} sources lies on the frames of all five bands given: {where} "
            "(every row is flagged off_frame)")


def classify(table, cutouts=None, *, images=None, psf=None, model="auto", confidence=0.9,
             score=None, by=None, mc_samples=None, random_state=0, device="auto",
             batch_size=None, progress=None, precision="fp32", compile=False, columns=None,
             subtract_neighbours="auto"):
    """Classify every source of a catalog as STAR, GALAXY or QSO.

    Parameters
    ----------
    table : `~astropy.table.Table` or `pandas.DataFrame`
        The catalog, with SDSS-style photometric columns (see
        `sourceclf.features`); ``ra`` and ``dec`` when ``images`` are frames.
    cutouts : array-like, list, dict or path, optional
        5-band cutouts, one per row, in any form `sourceclf.cutouts.make_cutouts`
        accepts.  Only image models use them.  Given with their PSF (``psf``,
        or else the table's ``psffwhm_<b>`` for all five bands, each row's
        own), and when the table lacks MargNet's catalog columns and the
        model reads them, the columns are measured on the stamps as on frames
        (`sourceclf.photometry.measure_stamp_columns`, in nanomaggies at
        SDSS's pixel scale, through a Moffat of that FWHM and the index
        measured on the stamps' point sources, `sourceclf.stamp_psf`;
        ``meta['CLFCOLS']`` and ``meta['CLFPSF']``), so that ``'auto'`` can
        choose ``margnet-sgq``; without a PSF it chooses ``margnet-cnn-sgq``.
    images : dict, optional
        Full frames by band (``{'u': path_or_hdu, ...}``), cut at each row's
        ``ra``/``dec`` with each band's WCS.  When the table lacks any of
        MargNet's catalog columns and the model reads them (``'auto'`` or a
        ``margnet24`` image model), all of them are measured on the frames
        (`sourceclf.photometry.measure_columns`; ``meta['CLFCOLS']``) and
        used internally; the output keeps the table's own columns.  A model
        reading the images alone takes only their blendedness and unmodelled
        light, for the ``blended`` and ``confused`` flags (which makes its
        run on frames 1.4 times as long on a high-latitude field, 2.3 times
        on a crowded one: ``benchmarks/bench_frames.py``).
    psf : float or dict, optional
        PSF FWHM (arcsec) of stamps given directly as ``cutouts``: one value
        for every band, or one per band (``{'u': 1.5, ...}``; a band's value
        may be its `~sourceclf.psf.PSFMeasurement`, whose Moffat index is
        then read instead of measured: by the image-only CNN, and by the
        fits that measure MargNet's columns on the frames or stamps).
        Without it the table's ``psffwhm_<b>`` columns are used; frames
        given as ``images`` have their PSF measured from their own stars.
        Given without images, it is ignored, with a `SourceclfWarning`.
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        A shipped model's name (see `sourceclf.models.list_models`), a model
        directory, a classifier object, or ``'auto'``: among the shipped
        models the table's columns (and images) allow, the one whose training
        domain holds most rows, then the most accurate on held-out data (see
        `sourceclf.model_choice`); ``meta['CLFAUTO']`` says why.
    confidence : float, sequence of float or None
        Confidence level(s) of the conformal prediction sets; None adds no
        sets.  With several levels the set columns are named with the level
        (``pred_set_90``, ``pred_set_size_90``, ...).
    score : str, optional
        Conformity score: ``'lac'``, ``'aps'``, ``'raps'`` or ``'top_k'``.
        Defaults to the one the model was calibrated with.
    by : str, optional
        Use group-conditional (Mondrian) calibration in bins of this column
        (e.g. ``'dered_r'``) when the model's calibration data holds it.
    mc_samples : int, optional
        For Bayesian models: number of stochastic forward passes averaged,
        from 1 to `MAX_MC_SAMPLES` (1000).
    random_state : int
        Seed of the Monte Carlo passes and of randomised scores.
    device : str
        ``'auto'`` (CUDA when available), ``'cpu'``, ``'cuda'``...
    batch_size : int, optional
        Rows per forward pass.  On the CPU in fp32 without ``compile``,
        photometric networks, their Bayesian variants (Monte Carlo included)
        and classical models give every row the same probabilities bit for
        bit whatever the batch size and number of threads; image networks may
        differ between batch sizes by up to a few 1e-7, and so may every
        network on a GPU or with ``compile=True`` (more in bf16).
    progress : bool, optional
        Show a progress bar (default: when standard error is a terminal).
    precision : {'fp32', 'bf16', 'auto'}
        Floating-point format of the forward pass of torch models.
        ``'fp32'`` (default): float32 throughout.  ``'bf16'``: the forward
        pass runs under ``torch.autocast(device_type, dtype=torch.bfloat16)``
        and its outputs are cast back to float32 before the softmax; bfloat16
        keeps about 3 significant digits, so probabilities move by about
        4e-4 on average and by up to a few 1e-2, and a row near the decision
        boundary may change class.  ``'auto'``: bf16 on a CUDA GPU that supports it natively
        (compute capability 8.0 or more), else fp32 (so exactly fp32 on the
        CPU).  The format used is recorded in ``meta['CLFPREC']``.
        scikit-learn models accept ``'fp32'`` and ``'auto'`` only.
    compile : bool
        Run the torch model through `torch.compile` (compiled once per model
        object and device, on the first batch: seconds to a minute).  If
        compiling fails (no C compiler, an unsupported platform...) the model
        runs eagerly after one `SourceclfWarning`.  ``meta['CLFCOMP']``
        records whether the compiled model ran.  Worth it on GPUs for large
        catalogs and image models, rarely on the CPU.  Not for scikit-learn
        models.
    columns : dict, optional
        The catalog's own names for sourceclf's inputs, input name -> column
        name, e.g. ``{'u': 'umag', 'dered_r': 'cModelMag_r'}`` (see
        `sourceclf.columns.map_columns`).  The output keeps the catalog's
        names.
    subtract_neighbours : bool or 'auto'
        Whether an image model sees each stamp less the light of its
        neighbours, each fitted as a PSF (`sourceclf.stamp_neighbours`;
        ``meta['CLFNBSUB']`` says which): ``'auto'`` for the models that read
        the stamps and their PSF alone (``margnet-cnn-sgq``), not for those
        that also read MargNet's catalog columns, whose measurement fits the
        neighbours already (`sourceclf.stamp_neighbours.subtracts_neighbours`).

    Returns
    -------
    classified : `~astropy.table.Table` or `pandas.DataFrame`
        A copy of ``table`` (rows, columns, units, masks and meta kept; an
        earlier classification's ``pred_*`` and ``prob_*`` columns and
        ``CLF*`` meta keys removed, with a `SourceclfWarning` naming those
        this run does not write again) with new columns ``pred_class``,
        ``prob_<class>`` (one per class, lower case), ``pred_flag`` (empty
        when fine, else why the row was not classified or is doubtful:
        ``out_of_domain`` marks classified rows outside the model's training
        domain (for the image models, which have no fitted domain: a
        magnitude, given or measured on the frames, outside the card's
        ``domain['magnitudes']``; `sourceclf.models.domain.outside_magnitudes`),
        whose probabilities are kept but may be
        wrong; ``meta['CLFNOOD']`` counts them; ``seeing_out_of_range`` and
        ``psf_unknown`` mark image rows seen through a PSF the model was not
        trained on or could not measure, ``psf_elongated`` image rows seen
        through a PSF more elongated than the models were checked on
        (`sourceclf.elongation`; ``psf_ellipticity_<b>`` keeps its ``1 -
        b/a``, ``meta['CLFFPSF']`` the PSF measured on the frames and
        ``meta['CLFREG']`` the bands registered on the r frame,
        `sourceclf.registration`),
        ``saturated`` image rows bright
        enough for a saturated core, ``crowded`` image rows whose stamps hold
        more other sources than the model's training stamps (the count is
        kept in ``n_neighbours``), or cut from a frame crowded beyond
        `sourceclf.crowding.CROWDED_COVERAGE` (kept in ``frame_coverage``),
        ``blended`` rows of an image model that hold a tenth or more of their
        light from neighbours, as measured on the frames (kept in
        ``blendedness``: `sourceclf.crowding.blending_flags`), ``confused``
        rows around which the fits leave light as bright as their own (kept in
        ``unmodelled_light``: `sourceclf.crowding.confusion_flags`),
        ``sky_out_of_range`` and ``sky_not_subtracted`` image rows on frames
        or stamps whose sky is unlike SDSS corrected frames' (`sourceclf.sky`),
        ``pixel_scale_mismatch`` image rows on frames whose pixels are not
        SDSS's; ``empty_set:<L>[,<L>...]`` marks rows whose prediction set is empty
        at those levels: no class is probable enough, and ``pred_class`` is a weak guess),
        and with ``confidence`` set, ``pred_set`` (classes joined by ``|``) and
        ``pred_set_size``.  Rows that cannot be classified are masked: missing
        inputs (``missing:<features>``), stamps off the frame (``off_frame``),
        with absurd pixels (``bad_pixels``) or with a band of no data
        (``no_data``; see `sourceclf.cutouts`), and
        rows the model gave non-finite probabilities (``nonfinite_output``).

        A DataFrame in gives a DataFrame out (same index; masked values
        become missing values; ``meta`` goes into ``DataFrame.attrs``).

    Examples
    --------
    >>> from sourceclf import classify
    >>> from sourceclf.demo import demo_catalog
    >>> result = classify(demo_catalog(n=20))
    >>> result.meta["CLFMODEL"]
    'blend-photometry-sg'
    >>> sorted(set(result["pred_class"].compressed()) - {"GALAXY", "STAR"})
    []
    """
    table, frame = _as_table(table)
    mc_samples = check_mc_samples(mc_samples)
    subtracts_neighbours(None, subtract_neighbours)  # a bad option: one line, before any work
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
    source = map_columns(table, columns)  # the catalog under sourceclf's names (a view)
    catalog = source  # before any column is measured
    levels = check_confidence_levels(confidence)
    with_images = cutouts is not None or images is not None
    psf_given = psf is not None
    choice, measured = None, False
    # Each frame's PSF measured once for the call: for MargNet's columns (the model's
    # choice, the blended flag) and for the model's inputs (FWHM and Moffat index).
    with psf_memo():
        if isinstance(model, str) and model == "auto":
            source, images, psf, measured, cutouts = _frame_columns(source, images, cutouts, psf)
            choice = explain_model_choice(source, with_images=with_images, precision=precision,
                                          compile=compile)
            model = choice.name
        found = source  # the catalog with any column measured on the frames (for the alarm)
        clf = load_model(model)
        if choice is None and clf.uses_images:
            # Measured on the frames: a model reading MargNet's columns takes them all, any
            # other image model the blendedness and unmodelled light alone (for the flags).
            reads_columns = clf.feature_set == FRAME_FEATURE_SET
            found, images, psf, measured, cutouts = _frame_columns(
                source, images, cutouts, psf, quiet=not reads_columns, stamps=reads_columns)
            source = found if reads_columns else _with_fit_flag_columns(source, found)
        clf.check_speed_options(precision, compile)
        n = len(table)

        if images is not None and cutouts is None and clf.uses_images:
            images = register_frames(read_frames(images), psf)  # once, for inputs, PSF line
        inputs = model_inputs(source, feature_set=clf.feature_set, uses_images=clf.uses_images,
                              cutouts=cutouts, images=images, psf=psf,
                              psf_range=clf.card.domain.get("psf_fwhm"),
                              neighbour_limit=clf.card.domain.get("neighbours", {}).get("limit"),
                              sky_range=clf.card.domain.get("sky_sigma"),
                              psf_beta_range=clf.card.domain.get("psf_beta"),
                              model_name=clf.name, subtract_neighbours=subtract_neighbours)
        frames_psf = (describe_field_psf(images) if cutouts is None and not psf_given
                      and (clf.uses_images or measured) else None)
    if with_images and not clf.uses_images:
        warnings.warn(f"model '{clf.name}' does not use images; the cutouts are ignored",
                      SourceclfWarning, stacklevel=2)
    elif psf_given and not with_images:
        warnings.warn(f"psf= applies to images, and none were given: it is ignored "
                      f"(model '{clf.name}' reads the catalog's columns)",
                      SourceclfWarning, stacklevel=2)
    valid, flags, rows = inputs.valid.copy(), inputs.flags, inputs.rows
    off = np.array([FLAG_OFF_FRAME in str(f).split(";") for f in flags], dtype=bool)
    if measured:  # columns measured on the frames are missing where the stamps are off them
        flags[off] = FLAG_OFF_FRAME
    if images is not None and n and off.all():
        warnings.warn(_off_frame_message(source, images, n), OffFrameWarning, stacklevel=2)
    measured_flags = (measurement_flags(source)  # blended, confused
                      if clf.uses_images or clf.feature_set == FRAME_FEATURE_SET else [])
    for flag, _, _, raised, _ in measured_flags:
        for i in np.flatnonzero(valid & raised):
            flags[i] = ";".join(x for x in (flags[i], flag) if x)
    # A model without a fitted domain judges the rows by their magnitudes in the catalog
    # (the rows are copied only for such a model, and only when some are left out).
    catalog_rows = None
    if clf.domain is None:
        catalog_rows = found if rows.size == n else found[rows]
    outside = clf.outside_domain(None if inputs.features is None else inputs.features[rows],
                                 catalog=catalog_rows)
    if outside is not None:
        for i in rows[outside]:
            flags[i] = ";".join(x for x in (flags[i], FLAG_OUT_OF_DOMAIN) if x)
    kwargs = dict(device=device, batch_size=batch_size, progress=progress,
                  precision=precision, compile=compile)
    sub_features = None if inputs.features is None else inputs.features[rows]
    sub_stamps = None if inputs.stamps is None else inputs.stamps[rows]
    extra_columns = {}
    if mc_samples:
        proba, extra_columns = clf.predict_proba_mc(sub_features, sub_stamps,
                                                    n_samples=mc_samples,
                                                    random_state=random_state, **kwargs)
    else:
        proba = clf.predict_proba(sub_features, sub_stamps, **kwargs)
    finite = np.isfinite(proba).all(axis=1)
    if not finite.all():  # the model failed on these rows: leave them unclassified
        for i in rows[~finite]:
            flags[i] = ";".join(x for x in (flags[i], FLAG_NONFINITE_OUTPUT) if x)
        valid[rows[~finite]] = False
        rows, proba = rows[finite], proba[finite]
        extra_columns = {name: values[finite] for name, values in extra_columns.items()}

    out = table.copy(copy_data=True)
    earlier = _drop_earlier_classification(out)
    given = {name: out[name] for name in out.colnames}  # to tell replaced columns
    classes = np.array(clf.classes)
    pred = np.full(n, "", dtype=f"<U{max(len(c) for c in classes)}")
    if rows.size:
        pred[rows] = classes[np.argmax(proba, axis=1)]
    _put(out, "pred_class", MaskedColumn(pred, mask=~valid,
                                         description="predicted class"))
    for k, c in enumerate(classes):
        col = np.zeros(n, dtype=np.float32)
        col[rows] = proba[:, k]
        _put(out, f"prob_{c.lower()}", MaskedColumn(
            col, mask=~valid, description=f"probability of class {c}"))
    for name, values in extra_columns.items():
        col = np.zeros(n, dtype=np.float32)
        col[rows] = values
        _put(out, name, MaskedColumn(col, mask=~valid))
    for name, values in inputs.columns.items():
        _put(out, name, values)
    for _, column, values, _, description in measured_flags:
        _put(out, column, MaskedColumn(values.astype(np.float32), mask=~np.isfinite(values),
                                       description=description))

    if levels:
        set_flags = conformal.add_prediction_sets(out, clf, proba, rows, levels, score=score,
                                                  by=by, random_state=random_state,
                                                  group_table=source, row_flags=flags)
        if set_flags is not None:
            new = set_flags != ""
            old = flags[new]
            flags[new] = np.where(old == "", set_flags[new], old + ";" + set_flags[new])
        if clf.calibration is not None:
            check_set_shift(out, clf, rows, levels, score=score, by=by, source=found,
                            row_flags=flags)
    _put(out, "pred_flag", np.asarray(flags, dtype=str) if n else np.array([], dtype="<U1"))
    out["pred_flag"].description = "why a row was not classified or is doubtful ('' if fine)"

    out.meta["CLFMODEL"] = clf.name
    out.meta["CLFMVER"] = clf.card.version
    out.meta["CLFPKG"] = __version__
    if choice is not None:
        out.meta["CLFAUTO"] = choice.reason
    if measured and clf.feature_set == FRAME_FEATURE_SET:
        dereddened = catalog_extinction(catalog) is not None
        out.meta["CLFCOLS"] = (("MargNet's columns measured on the stamps (sourceclf.photometry"
                                ".measure_stamp_columns; their PSF in CLFPSF); "
                                if cutouts is not None
                                else "MargNet's columns measured on the frames "
                                "(sourceclf.photometry.measure_columns); ")
                               + ("extinction from the table" if dereddened else
                                  "no extinction correction (the table has neither "
                                  "extinction_<b> nor ebv)"))
        if cutouts is not None and "CLFPSF" in found.meta:
            out.meta["CLFPSF"] = found.meta["CLFPSF"]
    if frames_psf is not None:
        out.meta["CLFFPSF"] = frames_psf
    if cutouts is None and (registered := describe_registration(images)):
        out.meta["CLFREG"] = registered
    if clf.uses_images:
        out.meta["CLFNBSUB"] = subtracts_neighbours(clf.feature_set, subtract_neighbours)
    if outside is not None:
        out.meta["CLFNOOD"] = int(outside.sum())
    if mc_samples:
        out.meta["CLFMC"] = mc_samples
    used_precision = clf.resolve_precision(precision, device)
    if used_precision is not None:  # torch models
        out.meta["CLFPREC"] = used_precision
        if compile:
            out.meta["CLFCOMP"] = clf.is_compiled(device)
    gone = [name for name in earlier if name not in out.colnames]
    if any(conformal.parse_set_column(name) for name in out.colnames):
        # Sets at other levels: replaced by this run's sets, as asked.
        gone = [name for name in gone if not conformal.parse_set_column(name)]
    if gone:
        warnings.warn(f"the table held an earlier classification; its columns "
                      f"{', '.join(gone)} are not written by this one and were removed",
                      SourceclfWarning, stacklevel=2)
    if frame is None:
        return out
    return _as_frame(out, frame, [n for n, c in given.items() if n in out.colnames and out[n] is c])


def _drop_earlier_classification(table):
    """Remove an earlier classification's results from ``table`` (in place).

    A table that holds ``pred_class`` or ``meta['CLFMODEL']`` was classified
    before: its ``pred_*`` and ``prob_*`` columns and its ``CLF*`` meta keys
    go, so that none outlives the new run (a 3-class model's ``prob_qso``
    beside a 2-class model's results, sets of another level).  Columns
    measured on images (``psf_fwhm_<b>``, ``n_neighbours``...) stay: they
    describe the data, not a model's answer.

    Returns
    -------
    names : list of str
        The columns removed.
    """
    if "pred_class" not in table.colnames and "CLFMODEL" not in table.meta:
        return []
    names = [c for c in table.colnames if c.startswith(("pred_", "prob_"))]
    table.remove_columns(names)
    for key in [k for k in table.meta if str(k).upper().startswith("CLF")]:
        del table.meta[key]
    return names


def _put(table, name, column):
    """Add a column, replacing one of the same name (a re-classified table)."""
    if name in table.colnames:
        table.remove_column(name)
    table[name] = column
