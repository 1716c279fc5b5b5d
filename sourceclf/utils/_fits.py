"""Reading FITS data with one-line errors (shared by the modules that read files)."""

import bz2
import gzip
import io
import threading
import warnings
import zlib

from ..exceptions import InvalidInputError

__all__ = ["hdu_data", "open_fits", "WARNINGS_LOCK"]

#: Held while sourceclf's readers change the warning filters (`warnings.catch_warnings`
#: changes them for every thread): frames read in threads would otherwise catch each
#: other's warnings, one thread's held warnings taking in a warning another thread
#: means to ignore, and giving it again.
WARNINGS_LOCK = threading.RLock()

#: The leading bytes of the compressed FITS files astropy.io.fits reads, and how to
#: decompress each.
_COMPRESSIONS = {b"BZh": ("bzip2", bz2.open), b"\x1f\x8b": ("gzip", gzip.open)}


def open_fits(path, label):
    """The `~astropy.io.fits.HDUList` of the FITS file ``path``, or a one-line error.

    A bzip2- or gzip-compressed file (SDSS's frames are ``.fits.bz2``) is
    decompressed into memory in one pass, then opened: astropy.io.fits reads
    it through a stream that decompresses again from the start whenever it
    seeks back, as it does to read a header after the data: reading an SDSS
    frame's image took twice as long that way, and its image, calibration
    and sky HDUs nearly four times (``benchmarks/bench_read_frames.py``).
    Any other file is opened as astropy.io.fits opens it (memory-mapped
    unless scaled).  For images of a bounded size (frames): a compressed
    file is held in memory twice while it is read, as bytes and as arrays.

    Parameters
    ----------
    path : str or path-like
        An existing file.
    label : str
        How to name it in errors, e.g. ``"frame 'frame-r.fits.bz2'"``.

    Raises
    ------
    InvalidInputError
        If the file cannot be read, its compression is corrupt or cut short,
        or it is not FITS.
    """
    source = _source(path, label)  # decompressed first: in threads, reads overlap
    # astropy warns (over several lines) about a corrupt header before it fails: the
    # warnings are held back, dropped when the file cannot be read (the one-line
    # error says why), and given again when it can.
    with WARNINGS_LOCK, warnings.catch_warnings(record=True) as held:
        warnings.simplefilter("always")
        hdul = _fits_open(source, label)
    for caught in held:
        warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
    return hdul


def _source(path, label):
    """What `_fits_open` opens: a compressed file's bytes, decompressed, or the path."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(3)
        kind, opener = next(((kind, opener) for magic, (kind, opener) in _COMPRESSIONS.items()
                             if head.startswith(magic)), (None, None))
        if kind is None:
            return path
        try:
            with opener(path) as handle:
                return io.BytesIO(handle.read())
        except (EOFError, OSError, zlib.error) as exc:
            raise InvalidInputError(f"cannot read {label}: its {kind} compression is "
                                    f"corrupt or cut short ({exc})") from None
    except OSError as exc:  # the file itself (InvalidInputError is no OSError)
        raise InvalidInputError(f"cannot read {label} as FITS: {exc}") from None


def _fits_open(source, label):
    """`open_fits` of `_source`'s output, its warnings not held back."""
    from astropy.io import fits

    try:
        return fits.open(source)  # a path: memory-mapped unless scaled (BSCALE/BZERO)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {label} as FITS: {exc}") from None


def hdu_data(hdu, label):
    """An HDU's data, with a one-line error for a file cut short or corrupt."""
    try:
        return hdu.data
    except InvalidInputError:
        raise
    except (OSError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the data of {label} (a truncated or corrupt "
                                f"file?): {str(exc).splitlines()[0]}") from None
