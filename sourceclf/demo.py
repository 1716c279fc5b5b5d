"""A realistic synthetic catalog for demonstrations, benchmarks and tests.

`demo_catalog` samples SDSS-like faint compact sources (GALAXY and STAR) from a
per-class Gaussian mixture over MargNet's photometric columns.  The mixture's
parameters (``sourceclf/data/feature_model.json``) were fitted to public SDSS
DR16 spectroscopic objects by ``python -m sourceclf.train_recipes feature-model``;
only those summary statistics ship with the package, not the data.

`demo_frames` renders such a catalog with GalSim into five small SDSS-like
frames with a WCS each (the bands slightly misaligned, as SDSS's are), so that
cutting stamps from frames can be shown and tested without real images.
"""

import filecmp
import json
import tempfile
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from .bands import BANDS, EXTINCTION_RATIO, SDSS_PIXEL_SCALE
from .columns import ColumnFinder, decode_strings
from .exceptions import InvalidInputError
from .simulate import SDSS_BAND_DEFAULTS, render_stamps
from .tableio import check_output_path, split_extension, write_table
from .utils._validation import check_random_state

__all__ = ["FEATURE_MODEL_PATH", "DEMO_R_RANGE", "DEMO_MAX_SIZE_RATIO", "demo_catalog",
           "write_demo_catalog", "demo_frames", "fit_feature_model"]

# GalSim is optional (the "sim" extra): skip this doctest without it.
__doctest_requires__ = {"demo_frames": ["galsim"]}

#: JSON file of the per-class Gaussian mixtures used by `demo_catalog`.
FEATURE_MODEL_PATH = Path(__file__).parent / "data" / "feature_model.json"

_DIMS = ([f"dered_{b}" for b in BANDS] + [f"log_deVRad_{b}" for b in BANDS]
         + [f"psffwhm_{b}" for b in BANDS] + ["log_extinction_r"])


def _design(table):
    cols = []
    for name in _DIMS:
        if name.startswith("log_"):
            cols.append(np.log10(np.maximum(np.asarray(table[name[4:]], float), 1e-4)))
        else:
            cols.append(np.asarray(table[name], float))
    return np.column_stack(cols)


def fit_feature_model(table, *, n_components=6, label_column="class", random_state=0):
    """Fit per-class Gaussian mixtures to a catalog with MargNet's columns.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Catalog with ``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_r`` and a class column.
    n_components : int
        Mixture components per class.
    label_column : str
        Class column.
    random_state : int
        Seed.

    Returns
    -------
    model : dict
        JSON-able mixture parameters per class, and class fractions.
    """
    from sklearn.mixture import GaussianMixture

    labels = decode_strings(table[label_column])
    x = _design(table)
    out = {"dims": _DIMS, "classes": {}}
    for c in sorted(set(labels.tolist())):
        sel = labels == c
        gm = GaussianMixture(n_components, covariance_type="full",
                             random_state=random_state).fit(x[sel])
        out["classes"][c] = {"fraction": float(sel.mean()), "weights": gm.weights_.tolist(),
                             "means": gm.means_.tolist(), "covariances": gm.covariances_.tolist()}
    return out


#: What the demo's rows are, like the data the feature model was fitted to:
#: dereddened r magnitude range and the largest mean deVRad / psffwhm.
DEMO_R_RANGE = (20.0, 23.0)
DEMO_MAX_SIZE_RATIO = 0.5


def _faint_compact_rows(model, name, k, rng):
    """``k`` draws of class ``name`` from the feature model, kept faint and compact.

    The mixture's tails reach bright and extended sources the faint compact
    data it was fitted to does not hold; such draws are replaced.
    """
    comp = model["classes"][name]
    dims = model["dims"]
    r = dims.index("dered_r")
    radii = [dims.index(f"log_deVRad_{b}") for b in BANDS]
    widths = [dims.index(f"psffwhm_{b}") for b in BANDS]
    kept = np.empty((0, len(dims)))
    while len(kept) < k:
        m = 2 * (k - len(kept)) + 16
        which = rng.choice(len(comp["weights"]), size=m, p=np.asarray(comp["weights"]))
        x = np.empty((m, len(dims)))
        for j in range(len(comp["weights"])):
            sel = which == j
            x[sel] = rng.multivariate_normal(comp["means"][j], comp["covariances"][j],
                                             size=int(sel.sum()))
        ratio = np.mean(10 ** x[:, radii] / np.clip(x[:, widths], 0.5, 4.0), axis=1)
        ok = ((x[:, r] >= DEMO_R_RANGE[0]) & (x[:, r] <= DEMO_R_RANGE[1])
              & (ratio < DEMO_MAX_SIZE_RATIO))
        kept = np.vstack([kept, x[ok]])
    return kept[:k]


def demo_catalog(n=1000, *, random_state=0, classes=None):
    """A synthetic SDSS-like catalog of faint compact galaxies and stars.

    Rows are drawn from a Gaussian-mixture model of the faint compact SDSS
    DR16 objects (``sourceclf/data/feature_model.json``), keeping draws with
    dereddened r in `DEMO_R_RANGE` and mean deVRad / psffwhm below
    `DEMO_MAX_SIZE_RATIO`, as in those data.

    Parameters
    ----------
    n : int
        Number of rows.
    random_state : int
        Seed; the same seed gives the same catalog.
    classes : sequence of str, optional
        Classes to draw (default all in the feature model, in their fractions).

    Returns
    -------
    table : `~astropy.table.Table`
        ``objid``, ``ra``, ``dec``, MargNet's 24 columns, observed model
        magnitudes ``u g r i z``, and the true ``class``.

    Examples
    --------
    >>> from sourceclf.demo import demo_catalog
    >>> cat = demo_catalog(5, random_state=1)
    >>> len(cat), "dered_r" in cat.colnames
    (5, True)
    """
    with open(FEATURE_MODEL_PATH, encoding="utf-8") as fh:
        model = json.load(fh)
    rng = np.random.default_rng(random_state)
    names = list(classes or model["classes"])
    frac = np.array([model["classes"][c]["fraction"] for c in names])
    counts = rng.multinomial(n, frac / frac.sum())
    blocks, labels = [], []
    for c, k in zip(names, counts):
        blocks.append(_faint_compact_rows(model, c, k, rng))
        labels += [c] * k
    x = np.vstack(blocks) if blocks else np.empty((0, len(model["dims"])))
    order = rng.permutation(len(x))
    x, labels = x[order], np.array(labels, dtype="U6")[order]

    t = Table()
    t["objid"] = np.arange(1, n + 1, dtype=np.int64) + 1237600000000000000
    t["ra"] = rng.uniform(150.0, 151.0, n) * u.deg
    t["dec"] = rng.uniform(2.0, 3.0, n) * u.deg
    dims = {d: x[:, i] for i, d in enumerate(model["dims"])}
    ext_r = 10 ** dims["log_extinction_r"]
    for b in BANDS:
        t[f"dered_{b}"] = dims[f"dered_{b}"] * u.mag
        t[f"deVRad_{b}"] = np.clip(10 ** dims[f"log_deVRad_{b}"], 0, 30) * u.arcsec
        t[f"psffwhm_{b}"] = np.clip(dims[f"psffwhm_{b}"], 0.5, 4.0) * u.arcsec
        t[f"extinction_{b}"] = ext_r * EXTINCTION_RATIO[b] * u.mag
    for b in BANDS:
        t[b] = t[f"dered_{b}"] + t[f"extinction_{b}"]
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        t[f"{a}_{b}"] = t[a] - t[b]
    t["class"] = labels
    t.meta["ORIGIN"] = "sourceclf.demo.demo_catalog (synthetic)"
    t.meta["SEED"] = int(random_state)
    return t


def write_demo_catalog(path, n=1000, *, random_state=0, overwrite=False):
    """Write `demo_catalog` to a file, never replacing another file without ``overwrite``.

    Parameters
    ----------
    path : str or path-like
        The catalog file to write (format from the extension).
    n : int
        Number of rows.
    random_state : int
        Seed of `demo_catalog`.
    overwrite : bool
        Replace an existing file.  Without it, an existing file is kept: it
        is used as it is if it holds exactly this demo catalog (a second
        demo run), else an error says so.

    Returns
    -------
    table : `~astropy.table.Table`
        The demo catalog.
    written : bool
        False when an identical file was already there.

    Raises
    ------
    InvalidInputError
        If ``path`` exists, is not this demo catalog and ``overwrite`` is false.
    """
    path = Path(path)
    table = demo_catalog(n, random_state=random_state)
    if path.exists() and not overwrite:
        check_output_path(path, overwrite=True)  # a directory, an unwritable place...
        with tempfile.TemporaryDirectory() as scratch:
            fresh = Path(scratch) / f"demo{split_extension(path)[1]}"
            write_table(table, fresh)
            if filecmp.cmp(fresh, path, shallow=False):
                return table, False
        raise InvalidInputError(f"'{path}' exists and is not the demo catalog; pass "
                                "--overwrite (overwrite=True) to replace it, or give --demo "
                                "another file name")
    write_table(table, path, overwrite=overwrite)
    return table, True


# Sky position of the centre of the `demo_frames` frames (inside demo_catalog's area).
_FRAME_CENTRE = (150.5, 2.5)
# Misalignment of each band's frame, pixels (x, y), before a random jitter of up
# to half a pixel: like SDSS, whose five frames of a field are not registered.
_BAND_SHIFTS = {"u": (-2.0, 1.5), "g": (1.0, -2.5), "r": (0.0, 0.0), "i": (2.5, 1.0),
                "z": (-1.5, -2.0)}
# Rows inside the frames keep this far (pixels) from every frame edge in every
# band: complete 32-pixel stamps whatever the band shifts.
_MARGIN = 24
# Side (pixels, odd) of the stamp each source is rendered into before it is
# added to the frames.
_RENDER_SIZE = 99
# Reference-frame x of the row placed at the x = 0 edge, and how far past the
# frame's other side the off-frame row lies (pixels).
_EDGE_X = 4.0
_OFF_FRAME_BY = 40.0


def _require_galsim():
    try:
        import galsim  # noqa: F401
    except ImportError:
        raise ImportError("demo_frames needs GalSim: pip install 'sourceclf[sim]'") from None


def _frame_wcs(size, shift=(0.0, 0.0)):
    """Gnomonic (TAN) WCS of a size x size frame of SDSS pixels, north up."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = list(_FRAME_CENTRE)
    # FITS pixels are 1-based: the reference pixel is the frame centre, moved by shift.
    wcs.wcs.crpix = [(size + 1) / 2.0 + shift[0], (size + 1) / 2.0 + shift[1]]
    scale = SDSS_PIXEL_SCALE / 3600.0
    wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    wcs.wcs.radesys = "ICRS"
    return wcs


def _add_stamp(frame, stamp, x, y):
    """Add an odd-sized ``stamp`` to ``frame`` with its centre at pixel (x, y), 0-based.

    The stamp is moved by the sub-pixel remainder with a Fourier shift
    (band-limited interpolation), then added where it overlaps the frame.
    """
    from astropy.nddata.utils import NoOverlapError, overlap_slices
    from scipy.ndimage import fourier_shift

    ix, iy = int(np.round(x)), int(np.round(y))
    moved = np.fft.irfft2(fourier_shift(np.fft.rfft2(stamp), (y - iy, x - ix),
                                        n=stamp.shape[1]), s=stamp.shape)
    try:
        large, small = overlap_slices(frame.shape, moved.shape, (iy, ix),
                                      mode="partial")
    except NoOverlapError:  # entirely off the frame
        return
    frame[large] += moved[small]


def demo_frames(catalog=None, *, n=30, size=256, random_state=0, noise=True, flagged=True):
    """Five small synthetic SDSS-like frames with a WCS, and their catalog.

    Every row of the catalog is drawn with GalSim
    (`sourceclf.simulate.render_stamps`, from its own magnitudes, radius, PSF
    width and class) at its own RA and Dec into a frame per band u, g, r, i,
    z of ``size x size`` pixels of 0.396 arcsec, in nanomaggies, with the
    sky noise of SDSS (`sourceclf.simulate.SDSS_BAND_DEFAULTS`); each
    source is rendered into a 99-pixel stamp, moved to its sub-pixel position
    by Fourier interpolation and added to the frame.  As in SDSS,
    the five frames are not aligned: each band's WCS is shifted by up to
    three pixels (about an arcsecond), so stamps must be cut with each band's
    own WCS, as `sourceclf.cutouts.make_cutouts` does.

    Parameters
    ----------
    catalog : `~astropy.table.Table`, optional
        Sources with MargNet's columns (see
        `sourceclf.simulate.render_stamps` for those it reads).  Default:
        ``demo_catalog(n, random_state=random_state)``.  It is copied, not
        modified.
    n : int
        Number of rows when ``catalog`` is not given.
    size : int
        Side of the frames in pixels (at least 64).
    random_state : None, int or `numpy.random.Generator`
        Seed; the same seed gives the same catalog and frames.
    noise : bool
        Add sky noise and the sources' photon noise (False gives noiseless
        frames).
    flagged : bool
        Place the last two rows (when there are at least three) where the
        stamp flags show, see below.

    Returns
    -------
    catalog : `~astropy.table.Table`
        The catalog with ``ra`` and ``dec`` (degrees; existing position
        columns of any capitalisation are replaced).  Rows are spread over a
        jittered grid at least 20 pixels from every edge of every frame, so
        their 32-pixel stamps are complete, except with ``flagged`` (and at
        least three rows): the last-but-one row is within about 7 pixels of
        the x = 0 edge in every band (its 32-pixel stamps reach past it: flag
        ``'edge'``) and the last row is 40 pixels beyond the frames' other
        side (flag ``'off_frame'``).  Sources may overlap when there are many
        rows for the frame size.
    frames : dict
        ``{band: astropy.io.fits.PrimaryHDU}`` for u, g, r, i, z: float32
        images in nanomaggies (``BUNIT``) with a celestial TAN WCS in their
        headers, each band's WCS offset from the others.  ``hdu.writeto(path)``
        makes a frame file.

    Raises
    ------
    ImportError
        If GalSim is not installed.
    InvalidInputError
        For a bad ``n`` or ``size``.
    MissingColumnsError
        If ``catalog`` lacks the columns `~sourceclf.simulate.render_stamps`
        needs.

    Examples
    --------
    >>> from sourceclf.demo import demo_frames
    >>> from sourceclf.cutouts import make_cutouts
    >>> catalog, frames = demo_frames(n=10, random_state=0)
    >>> frames["r"].data.shape, frames["r"].header["CTYPE1"]
    ((256, 256), 'RA---TAN')
    >>> result = make_cutouts(table=catalog, images=frames)
    >>> result.data.shape
    (10, 5, 32, 32)
    >>> result.flags.tolist()[-3:]
    ['', 'edge', 'off_frame']
    """
    from astropy.io import fits

    _require_galsim()
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 64:
        raise InvalidInputError(f"size must be an integer of at least 64, got {size!r}")
    size = int(size)
    if catalog is None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InvalidInputError(f"n must be a non-negative integer, got {n!r}")
        catalog = demo_catalog(int(n), random_state=random_state)
    else:
        catalog = catalog.copy()
    rng = check_random_state(random_state)
    n = len(catalog)

    # Positions in the pixels of the unshifted reference frame.
    n_special = 2 if flagged and n >= 3 else 0
    n_inside = n - n_special
    x = np.empty(n)
    y = np.empty(n)
    if n_inside:
        k = int(np.ceil(np.sqrt(n_inside)))
        step = (size - 2.0 * _MARGIN) / k
        cells = rng.permutation(k * k)[:n_inside]
        jitter = rng.uniform(-step / 4.0, step / 4.0, size=(n_inside, 2))
        x[:n_inside] = _MARGIN + (cells % k + 0.5) * step + jitter[:, 0]
        y[:n_inside] = _MARGIN + (cells // k + 0.5) * step + jitter[:, 1]
    if n_special:
        mid = rng.uniform(0.35, 0.65, size=2) * (size - 1)
        x[n - 2:] = _EDGE_X, size - 1 + _OFF_FRAME_BY
        y[n - 2:] = mid
    reference = _frame_wcs(size)
    ra, dec = reference.wcs_pix2world(x, y, 0)

    finder = ColumnFinder(catalog)
    catalog[finder.find("ra") or "ra"] = ra * u.deg
    catalog[finder.find("dec") or "dec"] = dec * u.deg

    shifts = {b: np.add(_BAND_SHIFTS[b], rng.uniform(-0.5, 0.5, 2)) for b in BANDS}
    stamps = render_stamps(catalog, size=_RENDER_SIZE, random_state=rng, noise=False,
                           max_offset=0.0, progress=False).astype(np.float64)
    frames = {}
    for k, band in enumerate(BANDS):
        wcs = _frame_wcs(size, shifts[band])
        bx, by = wcs.wcs_world2pix(ra, dec, 0)
        image = np.zeros((size, size))
        for i in range(n):
            _add_stamp(image, stamps[i, k], bx[i], by[i])
        if noise:
            props = SDSS_BAND_DEFAULTS[band]
            var = props["sky_sigma"] ** 2 + np.clip(image, 0, None) * props["nmgy_per_electron"]
            image += np.sqrt(var) * rng.standard_normal(image.shape)
        header = wcs.to_header()
        header["BUNIT"] = "nanomaggy"
        header["FILTER"] = (band, "SDSS band")
        header["ORIGIN"] = "sourceclf.demo.demo_frames (synthetic)"
        frames[band] = fits.PrimaryHDU(image.astype(np.float32), header=header)
    return catalog, frames
