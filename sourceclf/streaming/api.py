"""`classify_file`: classify a catalog file chunk by chunk into another file."""

import json
import os
import sys
import warnings
from pathlib import Path

from .. import classification
from ..columns import map_columns
from ..conformal.set_columns import set_columns
from ..cutouts import FLAG_OFF_FRAME
from ..inputs import read_frames
from ..device import check_compile, check_precision
from ..exceptions import InvalidInputError, OffFrameWarning, ShiftAlarmWarning
from ..models.registry import load_model
from ..progress import progress_bar, quiet_progress
from ..tableio import (check_input_path, check_output_path, check_writable_columns,
                       split_extension, table_format, warn_csv_meta, write_errors, write_table)
from ..utils._files import atomic_path
from ..utils._signals import interrupt_on_signals
from ..utils._validation import check_confidence_levels
from .fits_writer import FitsSink, flag_width
from .sinks import STREAMED_OUTPUT_FORMATS, NotStreamable, ParquetSink, TextSink
from .sources import FitsSource, all_rows, open_source, set_units
from .summary import StreamSummary
from .threads import ThreadChooser

__all__ = ["DEFAULT_CHUNK_SIZE", "classify_file"]

#: Rows per chunk when none is given: about 50-150 MB of working memory for
#: SDSS-like catalogs of a few dozen columns.
DEFAULT_CHUNK_SIZE = 131_072


def classify_file(input, output, *, chunk_size=None, model="auto", confidence=0.9,
                  overwrite=False, progress=None, threads="auto", truth_column=None,
                  precision="fp32", compile=False, columns=None, units=None,
                  **classify_kwargs):
    """Classify a catalog file chunk by chunk and write the result to another file.

    Peak memory depends on ``chunk_size``, not on the size of the catalog,
    when the input is FITS (binary table, uncompressed) or Parquet and the
    output is FITS, Parquet, ECSV or CSV.  Other formats are read (and, for
    outputs, written) whole.  The result is the same as
    ``classify(Table.read(input), ...)`` written with ``Table.write``: same
    rows, values, masks, units, descriptions and meta (see Notes for the
    exceptions).

    Parameters
    ----------
    input : str or path-like
        Catalog file; the format follows from the extension (``.fits``,
        ``.parquet``, ``.ecsv``, ``.csv``, ``.vot``, ``.hdf5``...).
    output : str or path-like
        File to write, format from its extension.  Written to a temporary
        file first and published when complete (without ``overwrite``, with
        an exclusive link: an output that another process created meanwhile
        is kept).  SIGTERM and SIGHUP interrupt the run as Ctrl-C does
        (`~sourceclf.exceptions.Interrupted`), removing the temporary file.
    chunk_size : int, optional
        Rows per chunk (default `DEFAULT_CHUNK_SIZE`).
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        As for `sourceclf.classify`; ``'auto'`` chooses from the first chunk's
        columns and the same model classifies every chunk.
    confidence : float, sequence of float or None
        Confidence level(s) of the prediction sets.
    overwrite : bool
        Replace an existing ``output``.
    progress : bool, optional
        Show a tqdm progress bar over rows (default: when standard error is a
        terminal).
    threads : int or 'auto'
        torch's number of CPU threads during the run (restored afterwards).
        ``'auto'`` times the model on a sample of rows with torch's current
        setting and with a single thread, uses the faster and times again
        every 16 chunks (one thread is often several times faster on a machine
        shared with other jobs); the results do not depend on it.
    truth_column : str, optional
        A column of true classes (name and labels matched in any case): the
        summary then gives the accuracy overall and per true class and the
        coverage of each prediction-set level, over the classified labelled
        rows whose true class the model predicts; the others are counted
        apart (`StreamSummary.accuracy`, `StreamSummary.truth_lines`,
        `StreamSummary.unknown_labels`).
    precision : {'fp32', 'bf16', 'auto'}
        Floating-point format of the forward pass of torch models, as for
        `sourceclf.classify`: ``'fp32'`` (default), ``'bf16'`` (autocast to
        bfloat16) or ``'auto'`` (bf16 on a CUDA GPU that supports it, else
        fp32).  The thread-choice probes run in the same format.
    compile : bool
        Run the torch model through `torch.compile`, compiled once for the
        whole file (see `sourceclf.classify`).
    columns : dict, optional
        The catalog's own names for sourceclf's inputs (``{'u': 'umag'}``),
        as for `sourceclf.classify`; the output keeps the catalog's names.
    units : dict, optional
        Units to give the catalog's columns as they are read, replacing the
        file's own: ``{'flux_r': 'nmgy'}`` for a CSV file of fluxes, which
        holds no units (`~sourceclf.streaming.sources.set_units`).  The
        output keeps them.
    **classify_kwargs
        Passed on to `sourceclf.classify` (``score``, ``by``, ``device``,
        ``batch_size``, ``images``, ``cutouts``, ``mc_samples``,
        ``random_state``).  ``cutouts`` must be an array-like with one cutout
        per row, or a dict ``{band: stamps}`` of such arrays (sliced with the
        chunks), else the catalog is classified in memory.

    Returns
    -------
    summary : `StreamSummary`
        Row counts, predicted classes, set sizes and the output meta.

    Raises
    ------
    InvalidInputError
        For unreadable or truncated inputs, an existing output without
        ``overwrite``, an output path equal to the input, unknown formats, an
        output directory that cannot be written to, a missing writer package,
        a failed write (a full disk).

    Warns
    -----
    SourceclfWarning
        With ``images``, when no source of the catalog lies on the frames
        (every row flagged ``off_frame``: frames of another field).

    Notes
    -----
    * In FITS output, string columns must have widths fixed before the first
      row is written: ``pred_class`` and ``pred_set`` are as wide as the model's
      classes allow, and ``pred_flag`` as wide as the model's longest possible
      flag, capped at `PRED_FLAG_MAX_WIDTH` characters (longer flags end with
      ``'...'``).  Their values are otherwise those of the in-memory result.
    * When a FITS input goes to a Parquet output, the input is scanned once
      beforehand for NaN and empty strings, so that the columns astropy would
      mask are stored as masked columns in every chunk.
    * Monte Carlo passes (``mc_samples``) and randomised conformity scores draw
      their random numbers per chunk: results are reproducible for a given
      ``chunk_size`` but differ from the in-memory ones.
    * On the CPU, photometric models give bit-identical probabilities whatever
      the chunking (batches are padded to whole blocks of rows), in fp32
      without ``compile`` at least: compiled kernels may differ in the last
      bit between the batch shapes they were compiled for.

    Examples
    --------
    >>> from sourceclf import classify_file
    >>> from sourceclf.demo import demo_catalog
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> demo_catalog(200).write(d / "cat.fits")
    >>> s = classify_file(d / "cat.fits", d / "out.fits", chunk_size=64, progress=False)
    >>> s.n_rows
    200
    """
    input_path = check_input_path(input)
    output = Path(output)
    in_fmt = table_format(input_path)
    out_fmt = table_format(output)
    if output.resolve() == input_path.resolve() or (
            output.exists() and os.path.samefile(output, input_path)):
        raise InvalidInputError("output path equals the input path; choose another output")
    check_output_path(output, overwrite, out_fmt)
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be positive, got {chunk_size}")
    levels = check_confidence_levels(confidence)
    check_precision(precision)
    check_compile(compile)

    classify_kwargs.update(precision=precision, compile=compile, columns=columns)
    if classify_kwargs.get("images") is not None:  # read once, not once per chunk
        classify_kwargs["images"] = read_frames(classify_kwargs["images"])
    chooser = ThreadChooser(threads, classify_kwargs.get("device", "auto"), precision, compile)
    cutouts = classify_kwargs.pop("cutouts", None)
    with interrupt_on_signals(), classification.frame_measurement_cache():
        summary = _classify_file(input_path, output, in_fmt, out_fmt, chooser, cutouts,
                                 model=model, confidence=confidence, levels=levels,
                                 overwrite=overwrite, chunk_size=chunk_size,
                                 progress=progress, truth_column=truth_column, units=units,
                                 classify_kwargs=classify_kwargs)
    if classify_kwargs.get("images") is not None:
        _warn_if_off_frames(summary, input_path)
    return summary


def _warn_if_off_frames(summary, input_path):
    """Warn when no source of the catalog lies on the frames (frames of another field): a
    catalog-wide test, which no chunk's `classify` call can make."""
    if summary.n_rows and summary.unclassified_counts.get(FLAG_OFF_FRAME) == summary.n_rows:
        warnings.warn(f"none of the {summary.n_rows} sources of {input_path} lies on the "
                      "frames of all five bands given: are they all frames of the catalog's "
                      "field? (every row is flagged off_frame)", OffFrameWarning, stacklevel=3)


def _classify_file(input_path, output, in_fmt, out_fmt, chooser, cutouts, *, model,
                   confidence, levels, overwrite, chunk_size, progress, truth_column, units,
                   classify_kwargs):
    """The body of `classify_file`, once its arguments are checked."""
    source = open_source(input_path, in_fmt)
    try:  # the columns the output cannot store: before the first row is classified
        set_units(source, units)
        check_writable_columns(source.template(), out_fmt, output)
    except InvalidInputError:
        source.close()
        raise
    summary = StreamSummary(truth_column)
    summary.path = output
    try:
        if out_fmt in STREAMED_OUTPUT_FORMATS and _sliceable(cutouts, source.n_rows):
            model, written = _classify_chunks(
                source, output, out_fmt, summary, model=model, confidence=confidence,
                levels=levels, cutouts=cutouts, chunk_size=chunk_size, chooser=chooser,
                overwrite=overwrite, progress=progress, classify_kwargs=classify_kwargs)
            if written:
                return summary
        # In memory: an output format that cannot be streamed, cutouts that cannot be
        # sliced, or a first chunk that its sink cannot write.
        with warnings.catch_warnings():  # classify_file says it of the file, once
            warnings.simplefilter("ignore", OffFrameWarning)
            result = classification.classify(all_rows(source), cutouts, model=model,
                                             confidence=confidence, progress=progress,
                                             **classify_kwargs)
        summary.add(result)
        write_table(result, output, format=out_fmt, overwrite=overwrite)
        return summary
    finally:
        chooser.restore()
        source.close()


def _sliceable(cutouts, n_rows):
    """Whether ``cutouts`` is absent, an array-like with one cutout per row, or a dict
    ``{band: stamps}`` with one stamp per row in each band."""
    if isinstance(cutouts, dict):
        return all(_sliceable(stamps, n_rows) for stamps in cutouts.values())
    return cutouts is None or (hasattr(cutouts, "__len__") and hasattr(cutouts, "__getitem__")
                               and not isinstance(cutouts, (str, bytes, os.PathLike))
                               and len(cutouts) == n_rows)


def _cutout_rows(cutouts, start, stop):
    """The cutouts of rows ``start:stop`` (None without cutouts)."""
    if isinstance(cutouts, dict):
        return {band: stamps[start:stop] for band, stamps in cutouts.items()}
    return None if cutouts is None else cutouts[start:stop]


def _classify_chunks(source, output, fmt, summary, *, model, confidence, levels, cutouts,
                     chunk_size, chooser, overwrite, progress, classify_kwargs):
    """Classify ``source`` chunk by chunk into ``output``, adding each chunk to ``summary``.

    Returns
    -------
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        The classifier, once loaded (``model`` when no chunk was read).
    written : bool
        False when the first chunk cannot be written chunk by chunk; nothing
        is written then.
    """
    with_images = cutouts is not None or classify_kwargs.get("images") is not None
    clf = model
    sink = None
    try:
        with atomic_path(output, suffix=split_extension(output)[1], overwrite=overwrite) as tmp:
            try:
                # One bar for the run; the bars of the steps inside a chunk (forward
                # passes, thread probes...) are hidden.
                with progress_bar(total=source.n_rows, enabled=progress, unit="row",
                                  unit_scale=True, desc=_bar_label(source, output),
                                  file=sys.stderr) as bar, quiet_progress():
                    start = 0
                    reason = None
                    first_meta = None
                    for chunk in source.chunks(chunk_size):
                        sub_cutouts = _cutout_rows(cutouts, start, start + len(chunk))
                        if sink is None:
                            if isinstance(model, str) and model == "auto":
                                # As classify chooses: with MargNet's columns measured on
                                # the frames where the catalog lacks them.
                                table = classification.frame_columns(
                                    map_columns(chunk, classify_kwargs["columns"]),
                                    classify_kwargs.get("images"), sub_cutouts,
                                    classify_kwargs.get("psf"))[0]
                                choice = classification.explain_model_choice(
                                    table, with_images=with_images,
                                    precision=classify_kwargs.get("precision", "fp32"),
                                    compile=classify_kwargs.get("compile", False))
                                model, reason = choice.name, choice.reason
                            clf = load_model(model)
                            with write_errors(output, fmt):
                                sink = _make_sink(tmp, fmt, source, clf, levels, chunk_size)
                        chooser.before(clf, map_columns(chunk, classify_kwargs["columns"]))
                        with warnings.catch_warnings():
                            # One chunk's sets are no catalog's: the shift alarm is
                            # raised once, over every row, at the end; so is the
                            # warning that no row lies on the frames.
                            warnings.simplefilter("ignore", ShiftAlarmWarning)
                            warnings.simplefilter("ignore", OffFrameWarning)
                            result = classification.classify(
                                chunk, sub_cutouts, model=clf, confidence=confidence,
                                progress=False, **classify_kwargs)
                        del chunk
                        if reason is not None:
                            result.meta["CLFAUTO"] = reason
                        if first_meta is None:
                            first_meta = dict(result.meta)
                            if fmt == "ascii.csv":
                                warn_csv_meta(result, output)
                        with write_errors(output, fmt, passthrough=(NotStreamable,)):
                            _write_chunk(sink, _with_meta(result, first_meta),
                                         first=not start)
                        summary.add(result)
                        summary.chunk_size = chunk_size
                        start += len(result)
                        bar.update(len(result))
                        del result
                alarm = summary.shift_alarm()
                if summary.shift_bins:  # the whole catalog's rows per bin, not a chunk's
                    summary.meta["CLFSHREF"] = json.dumps(summary.shift_bins, sort_keys=True)
                if summary.flag_shift_bins:
                    summary.meta["CLFSHFLG"] = json.dumps(summary.flag_shift_bins,
                                                          sort_keys=True)
                summary.meta.pop("CLFSHIFT", None)
                if alarm:
                    summary.meta["CLFSHIFT"] = alarm
                with write_errors(output, fmt):
                    sink.close(meta=summary.meta)
                if alarm:
                    warnings.warn(alarm, ShiftAlarmWarning, stacklevel=4)
            except BaseException:
                if sink is not None:
                    sink.abort()
                raise
    except NotStreamable:
        return clf, False
    return clf, True


def _bar_label(source, output):
    """What the progress bar says: the input file's name, or the output's."""
    return f"classify {Path(getattr(source, 'path', None) or output).name}"


def _with_meta(table, meta):
    """``table`` (its data not copied) with ``meta``: every chunk is written with the first's.

    Counts in ``meta`` (``CLFNOOD``) differ from chunk to chunk; the sinks
    write those of the whole catalog when they close.
    """
    if table.meta == meta:
        return table
    view = table.copy(copy_data=False)
    view.meta = meta
    return view


def _write_chunk(sink, result, *, first):
    try:
        sink.write(result)
    except NotStreamable:
        if not first:
            raise RuntimeError("a later chunk could not be streamed") from None
        raise


def _make_sink(path, fmt, source, clf, levels, chunk_size):
    if fmt == "fits":
        return FitsSink(path, source.n_rows, _fits_string_widths(source, clf, levels))
    if fmt == "parquet":
        maybe = ()
        if isinstance(source, FitsSource):
            # astropy masks the NaN floats and empty strings of FITS tables, so a
            # column is masked in some chunks only: find those masked anywhere.
            maybe = source.masked_columns(chunk_size)
        return ParquetSink(path, maybe)
    return TextSink(path, fmt)


def _fits_string_widths(source, clf, levels):
    """Character widths of the string columns of the FITS output."""
    widths = source.string_widths()
    classes = list(clf.classes)
    widths["pred_class"] = max(len(c) for c in classes)
    set_width = max(1, len("|".join(classes)))
    for set_name, _ in set_columns(levels):
        widths[set_name] = set_width
    widths["pred_flag"] = flag_width(clf, len(levels))
    return widths
