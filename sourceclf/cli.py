"""The ``sourceclf-classify`` command.

A thin layer over `sourceclf.classify_file`: read a catalog chunk by chunk,
classify it, write the result atomically, print a summary.  Errors in the input are reported as one
line on standard error with exit status 2; nothing is left behind.
"""

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path

from . import __version__
from .device import check_precision
from .exceptions import (CrowdedFrameWarning, InvalidInputError, ShiftAlarmWarning,
                         SourceclfError, SourceclfWarning)
from .tableio import split_extension, table_format, update_meta, write_table

__all__ = ["main", "build_parser", "default_output_path", "table_format"]


#: ``--inject-check``'s fewest sources: `sourceclf.injection_check.MIN_SOURCES`, written
#: here so that a bad N is refused before torch and GalSim are loaded (a test keeps the two
#: equal).
INJECT_CHECK_MIN = 10


def default_output_path(input_path):
    """``<input stem>_classified<ext>`` beside the input."""
    stem, ext = split_extension(input_path)
    return Path(input_path).with_name(f"{stem}_classified{ext}")


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    """The argument parser of ``sourceclf-classify``."""
    p = _OneLineParser(
        prog="sourceclf-classify",
        description="Classify the sources of a catalog as STAR, GALAXY or QSO, with "
                    "class probabilities and conformal prediction sets.",
        epilog="Example: sourceclf-classify catalog.fits -o classified.fits --confidence 0.9")
    p.add_argument("input", nargs="?", help="catalog file (FITS, ECSV, VOTable, Parquet, CSV...)")
    p.add_argument("-o", "--output", help="output file (default: <input stem>_classified<ext>)")
    p.add_argument("--model", default="auto",
                   help="model name (see --list-models) or model directory; default: auto")
    p.add_argument("--confidence", type=float, action="append",
                   help="confidence level of the prediction sets, in (0, 1); repeat for "
                        "several levels (default 0.9)")
    p.add_argument("--score", help="conformity score: lac (default; a row whose set is "
                                   "empty is flagged empty_set in pred_flag), aps, "
                                   "raps or top_k")
    p.add_argument("--by", help="column for group-conditional (Mondrian) calibration, "
                                "e.g. dered_r")
    p.add_argument("--cutouts", help="FITS file of 5-band cutouts, one cube per row")
    p.add_argument("--column", action="append", metavar="NAME=COL",
                   help="read input NAME from the catalog's column COL, e.g. --column u=umag "
                        "--column dered_r=cModelMag_r (repeat for each input)")
    p.add_argument("--unit", action="append", metavar="COL=UNIT",
                   help="give the catalog's column COL the unit UNIT as it is read, e.g. "
                        "--unit flux_r=nmgy for a CSV of fluxes (CSV holds no units; "
                        "repeat for each column)")
    p.add_argument("--image", action="append", metavar="BAND=FILE",
                   help="full frame of one band with a WCS (repeat for u g r i z)")
    p.add_argument("--psf", action="append", metavar="FWHM|BAND=FWHM",
                   help="PSF FWHM in arcsec that image models see the stamps through: one "
                        "value for every band, or BAND=FWHM for each of u g r i z; without "
                        "it, frames' PSF is measured on their own stars and --cutouts' "
                        "comes from the catalog's psffwhm_<b> columns")
    p.add_argument("--keep-neighbours", action="store_true",
                   help="give the image-only model the stamps as cut, their neighbours' light "
                        "kept (default: each neighbour fitted as a PSF and subtracted; the "
                        "models reading MargNet's columns always see the stamps as cut)")
    p.add_argument("--inject-check", type=int, metavar="N",
                   help="with --image: draw N known stars and galaxies (150 to 300; 150 per "
                        "copy of the frames) into copies of the frames and say how well the "
                        "model classifies them there; their rows go to "
                        "<output stem>_injection_check.ecsv, the scores into the output's "
                        "meta (CLFINJ* keywords)")
    p.add_argument("--mc-samples", type=int,
                   help="Monte Carlo passes of a Bayesian model, 1 to 1000")
    p.add_argument("--truth", metavar="COL",
                   help="column of true classes (STAR, GALAXY, QSO in any case): print the "
                        "accuracy, overall and per class, and the prediction sets' coverage")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, help="rows per forward pass")
    p.add_argument("--precision", metavar="{fp32,bf16,auto}", default="fp32",
                   help="floating-point format of the forward pass of torch models: fp32 "
                        "(default), bf16 (autocast to bfloat16; probabilities within a few "
                        "1e-2 of fp32) or auto (bf16 on a CUDA GPU that supports it, else "
                        "fp32)")
    p.add_argument("--compile", action="store_true",
                   help="run the torch model through torch.compile (compiled once, on the "
                        "first batch; eager with a warning if compiling fails); pays off on "
                        "GPUs for large catalogs")
    p.add_argument("--threads", default="auto",
                   help="torch CPU threads, or auto: time one chunk with torch's default and "
                        "one with a single thread and keep the faster (default)")
    p.add_argument("--chunk-size", type=int,
                   help="rows read, classified and written at a time (default 131072); "
                        "memory use grows with it, not with the catalog")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--list-models", action="store_true", help="list the shipped models and exit")
    p.add_argument("--show-model", metavar="NAME",
                   help="describe one model (inputs, classes, domain, test metrics) and exit")
    p.add_argument("--demo", action="store_true",
                   help="write a bundled synthetic demo catalog (sourceclf_demo.fits) to the "
                        "current directory, or to INPUT if given, and classify it")
    p.add_argument("--version", action="version", version=f"sourceclf {__version__}")
    return p


def _parse_images(specs):
    if not specs:
        return None
    images = {}
    for spec in specs:
        band, sep, file = spec.partition("=")
        band = band.strip().lower()
        if not sep or band not in "ugriz" or len(band) != 1 or not file:
            raise InvalidInputError("--image takes BAND=FILE with BAND one of u g r i z, "
                                    f"got '{spec}'")
        if band in images:
            raise InvalidInputError(f"--image gives band {band} twice ('{images[band]}' "
                                    f"and '{file}')")
        if not Path(file).is_file():
            raise InvalidInputError(f"image file '{file}' for band {band} does not exist")
        same = next((b for b, f in images.items() if Path(f).resolve() == Path(file).resolve()),
                    None)
        if same is not None:  # one band's frame standing in for another: wrong classes
            raise InvalidInputError(f"--image gives the same file '{file}' for bands {same} and "
                                    f"{band}: each band needs its own frame")
        images[band] = file
    return images


def _parse_psf(specs):
    """``--psf`` options as `sourceclf.classify`'s ``psf=``: a number, or ``{band: number}``."""
    if not specs:
        return None
    if len(specs) == 1 and "=" not in specs[0]:
        return _psf_value(specs[0], "--psf")
    psf = {}
    for spec in specs:
        band, sep, value = spec.partition("=")
        band = band.strip().lower()
        if not sep or band not in "ugriz" or len(band) != 1:
            raise InvalidInputError("--psf takes one FWHM for every band, or BAND=FWHM for "
                                    f"each of u g r i z; got '{spec}'")
        if band in psf:
            raise InvalidInputError(f"--psf gives band {band} twice")
        psf[band] = _psf_value(value, f"--psf {band}")
    missing = [b for b in "ugriz" if b not in psf]
    if missing:
        raise InvalidInputError(f"--psf lacks band(s) {' '.join(missing)}: give BAND=FWHM for "
                                "each of u g r i z, or one FWHM for every band")
    return psf


def _psf_value(text, what):
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(f"{what} takes a FWHM in arcsec, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise InvalidInputError(f"{what} must be a positive FWHM in arcsec, got '{text}'")
    return value


def injection_check_path(output):
    """Where ``--inject-check`` writes its rows: ``<output stem>_injection_check.ecsv``."""
    return Path(output).with_name(f"{split_extension(output)[0]}_injection_check.ecsv")


def _injection_check(args, images, result, output):
    """Run ``--inject-check``: print its scores, write its rows, add them to the output's meta.

    The classification (its summary ``result``) is written by then: a check
    that cannot be made (a band's PSF not measurable, say) is a warning, not
    an error.
    """
    from .injection_check import META_COMMENTS, injection_check

    path = injection_check_path(output)
    model = result.meta.get("CLFMODEL") if args.model == "auto" else args.model
    try:
        check = injection_check(images, model=model, n=args.inject_check,
                                confidence=(args.confidence or [0.9])[0], score=args.score,
                                mc_samples=args.mc_samples, device=args.device,
                                batch_size=args.batch_size, precision=args.precision,
                                subtract_neighbours=False if args.keep_neighbours else "auto")
    except SourceclfError as exc:
        warnings.warn(f"injection check not made: {exc}", SourceclfWarning, stacklevel=2)
        return
    warning = check.warning()
    for line in check.lines():
        if line != warning:  # that goes to stderr
            print(line)
    if check.measured_columns and "CLFCOLS" not in result.meta:
        print("note: the check scores MargNet's columns as measured on the frames; the "
              "catalog's rows were classified from its own columns, which it does not score")
    try:
        write_table(check.sources, path, format="ascii.ecsv", overwrite=True)  # atomically
        print(f"wrote {path}")
    except SourceclfError as exc:  # a full disk: the classification is written, say so
        warnings.warn(f"the injection check's rows are not written: {exc}", SourceclfWarning,
                      stacklevel=2)
    try:
        if update_meta(output, check.meta, comments=META_COMMENTS):
            print(f"added the check's scores to the meta of {output} "
                  f"({', '.join(check.meta)})")
        else:
            print(f"{output} is CSV, which holds no meta: the check's scores are in {path}")
    except SourceclfError as exc:  # the classified file stays as it was
        warnings.warn(f"the injection check's scores are not in {output}'s meta: {exc}",
                      SourceclfWarning, stacklevel=2)
    if not check.reliable:
        warnings.warn(check.warning(), SourceclfWarning, stacklevel=2)


def summary(table):
    """Human-readable lines summarising a classified table."""
    from .streaming import StreamSummary

    return StreamSummary.from_table(table).lines()


def _run(args):
    if args.list_models:
        from .models.registry import list_models

        list_models().pprint_all()
        return 0
    if args.show_model:
        from .models.registry import describe_model

        print(describe_model(args.show_model))
        return 0
    if args.demo:
        from .demo import write_demo_catalog

        demo_path = Path(args.input or "sourceclf_demo.fits")
        cat, written = write_demo_catalog(demo_path, 1000, random_state=0,
                                          overwrite=args.overwrite)
        print(f"{'wrote' if written else 'using the existing'} demo catalog {demo_path} "
              f"({len(cat)} synthetic SDSS-like sources)")
        args.input = str(demo_path)
    if not args.input:
        raise InvalidInputError("no input catalog given (try --demo, or --help)")
    table_format(args.input)  # an unknown extension: say it of the input, not the output
    output = Path(args.output) if args.output else default_output_path(args.input)
    table_format(output)
    if output.resolve() == Path(args.input).resolve():
        raise InvalidInputError("output path equals the input path; choose another -o")
    if output.exists() and not args.overwrite:
        raise InvalidInputError(f"output file '{output}' exists; pass --overwrite to "
                                "replace it")
    images = _parse_images(args.image)
    inputs = {f"--image {b}": f for b, f in (images or {}).items()}
    if args.cutouts:
        inputs["--cutouts"] = args.cutouts
    for what, path in inputs.items():
        if output.resolve() == Path(path).resolve():
            raise InvalidInputError(f"output path equals the {what} file '{path}'; choose "
                                    "another -o")
    psf = _parse_psf(args.psf)
    from .columns import parse_column_options  # astropy.table: not for --help

    columns = parse_column_options(args.column)
    units = parse_column_options(args.unit, option="--unit", form="COLUMN=UNIT",
                                 example="flux_r=nmgy")
    if args.cutouts and not Path(args.cutouts).is_file():
        raise InvalidInputError(f"cutouts file '{args.cutouts}' does not exist")
    if args.inject_check is not None:
        if images is None:
            raise InvalidInputError("--inject-check draws sources into frames: give them "
                                    "with --image")
        if args.inject_check < INJECT_CHECK_MIN:
            raise InvalidInputError(f"--inject-check takes at least {INJECT_CHECK_MIN} "
                                    f"sources, got {args.inject_check}")
        if injection_check_path(output).exists() and not args.overwrite:
            raise InvalidInputError(f"file '{injection_check_path(output)}' exists; pass "
                                    "--overwrite to replace it")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise InvalidInputError(f"--chunk-size must be positive, got {args.chunk_size}")
    threads = args.threads
    if threads != "auto":
        if not threads.isdigit() or int(threads) < 1:
            raise InvalidInputError("--threads takes a positive number or auto, "
                                    f"got '{threads}'")
        threads = int(threads)
    check_precision(args.precision)  # a one-line error before anything is read

    from .classification import check_mc_samples  # astropy, MAPIE, torch: not for --help
    from .inputs import read_frames
    from .field_psf import psf_memo

    check_mc_samples(args.mc_samples)
    if images is not None:  # read once, for the classification and the injection check
        images = read_frames(images)
    with psf_memo():  # and their PSF measured once, for both
        return _classify_and_check(args, output, images, threads, columns, units, psf)


def _classify_and_check(args, output, images, threads, columns, units, psf):
    """Classify the catalog into ``output``; then the injection check, or its hint."""
    from .streaming import classify_file

    result = classify_file(args.input, output, chunk_size=args.chunk_size, model=args.model,
                           confidence=args.confidence or 0.9, overwrite=args.overwrite,
                           progress=False if args.no_progress else None,
                           threads=threads,
                           truth_column=args.truth or ("class" if args.demo else None),
                           cutouts=args.cutouts, images=images, score=args.score, by=args.by,
                           mc_samples=args.mc_samples, device=args.device,
                           batch_size=args.batch_size, precision=args.precision,
                           compile=args.compile, columns=columns, units=units, psf=psf,
                           subtract_neighbours=False if args.keep_neighbours else "auto")
    for line in result.lines():
        print(line)
    print(f"wrote {output}")
    if args.inject_check is not None:
        _injection_check(args, images, result, output)
    elif images is not None:
        _suggest_injection_check(result)
    return 0


def _suggest_injection_check(result):
    """Point to ``--inject-check`` when frames' rows carry flags of conditions unlike training.

    Those are the flags of crowding (``crowded``, ``blended``, ``confused``) and of seeing
    (``seeing_out_of_range``, ``psf_unknown``, ``psf_elongated``), where the image models may
    be wrong more often than their cards say (see docs/images.rst).
    """
    from .crowding import FLAG_BLENDED, FLAG_CONFUSED, FLAG_CROWDED  # after the run
    from .elongation import FLAG_PSF_ELONGATED
    from .psf import FLAG_PSF_UNKNOWN, FLAG_SEEING_OUT_OF_RANGE

    crowding = [f for f in (FLAG_CROWDED, FLAG_BLENDED, FLAG_CONFUSED)
                if result.flag_counts.get(f)]
    seeing = [f for f in (FLAG_SEEING_OUT_OF_RANGE, FLAG_PSF_UNKNOWN, FLAG_PSF_ELONGATED)
              if result.flag_counts.get(f)]
    if not crowding and not seeing:
        return
    section = ("Crowded frames: each source fitted with its neighbours" if crowding
               else "PSF shape: more elongated than the shared fields"
               if seeing == [FLAG_PSF_ELONGATED]
               else "Seeing: the PSF of the frames and the trained range")
    found = ", ".join(f"{result.flag_counts[f]} {f}" for f in crowding + seeing)
    said = any(issubclass(category, CrowdedFrameWarning) for category, _ in _SHOWN)
    why = "" if said else (f" the image models are less reliable there (docs: images, "
                           f"'{section}');")
    print(f"hint: rows flagged {found}:{why} --inject-check 150 measures how "
          f"{result.meta.get('CLFMODEL')} does on known sources drawn into these frames")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Print sourceclf's warnings as one line, each text once a run; others as Python does."""
    if not issubclass(category, SourceclfWarning):
        return _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)
    if issubclass(category, ShiftAlarmWarning):
        return None  # the summary's SHIFT ALARM line says it
    text = " ".join(str(message).split())
    # The same warning from another chunk of the catalog (or of its category, when its
    # values are measured on each chunk: the first chunk's says it).
    key = (category, "" if category.once_a_run else text)
    if key in _SHOWN:
        return None
    _SHOWN.add(key)
    print(f"sourceclf-classify: warning: {text}", file=sys.stderr)
    return None


#: The warnings `_show_warning` printed in this run, as ``(category, text)`` (`main`
#: empties it).
_SHOWN = set()


_PYTHON_SHOWWARNING = warnings.showwarning


def main(argv=None):
    """Entry point of ``sourceclf-classify``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _SHOWN.clear()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status = _run(args)
        sys.stdout.flush()  # a reader that left (`| head`) is met here, not at exit
        return status
    except SourceclfError as exc:
        message = " ".join(str(exc).split())
        print(f"sourceclf-classify: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader left; what was written stays written
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not fail again
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (signum)
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"sourceclf-classify: interrupted ({signal.Signals(signum).name}); no output "
              "written", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
