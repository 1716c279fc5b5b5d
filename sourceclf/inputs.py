"""From a catalog (and its cutouts or frames) to a model's inputs.

`model_inputs` is the one routine that turns a `~astropy.table.Table` into
what a model reads: the feature matrix of its feature set, the 5-band stamps
of an image model, which rows can be classified, and why the others cannot
(the ``pred_flag`` reasons).  `sourceclf.classify`, `sourceclf.calibrate` and
the trainers all go through it.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE, by_band_name
from .columns import ColumnFinder
from .crowding import (CROWDED_COVERAGE, FLAG_CROWDED, NEIGHBOUR_BAND, count_neighbours,
                       source_coverage)
from .cutouts import FLAG_BAD_PIXELS, FLAG_EDGE, FLAG_NO_DATA, FLAG_OFF_FRAME, make_cutouts
from .exceptions import (CrowdedFrameWarning, FrameSkyWarning, InvalidInputError,
                         SourceclfWarning, StampSkyWarning)
from .features import get_feature_set
from .frames import FLAG_PIXEL_SCALE, frames_by_band, pixel_scale_mismatch, read_frame
from .psf import (CATALOG_PSF_SCALE, FLAG_PSF_UNKNOWN, FLAG_SEEING_OUT_OF_RANGE,
                  PSFMeasurement, seeing_flags, sky_level)
from .field_psf import field_band_psf, psf_memo
from .saturation import FLAG_SATURATED, saturation_flags
from .elongation import ELONGATION_LIMIT, FLAG_PSF_ELONGATED, elongation_flags
from .stamp_neighbours import subtract_neighbours, subtracts_neighbours
from .stamp_psf import band_psf_shapes, read_stamp_rows
from .sky import (FLAG_SKY_NOT_SUBTRACTED, FLAG_SKY_OUT_OF_RANGE, SKY_LEVEL_LIMIT,
                  frame_sky, odd_stamp_flags, sky_flags, sky_message, stamp_sky)
from .utils._wcs import pixel_scale

__all__ = ["ModelInputs", "model_inputs", "psf_by_band", "catalog_psf_fwhm", "read_frames"]


@dataclass(frozen=True)
class ModelInputs:
    """A model's inputs for every row of a table.

    Attributes
    ----------
    features : `numpy.ndarray` or None
        float32 array of shape (n_rows, n_features), NaN where a feature is
        missing; None for a model without a feature set.
    stamps : `numpy.ndarray` or None
        float32 array of shape (n_rows, 5, size, size); None for a model
        that does not use images.
    valid : `numpy.ndarray`
        bool array of shape (n_rows,): True where the row can be classified
        (every feature finite, stamp neither off the frame nor holding
        absurd pixels: ``bad_pixels``).
    flags : `numpy.ndarray`
        object array of str of shape (n_rows,): ``''`` when fine, else the
        ``;``-joined reasons (``missing:<features>``, then the cutout flags
        such as ``off_frame``, ``bad_pixels`` or ``edge``).
    columns : dict
        Per-row values measured while making the inputs that the output
        table keeps, name -> array of shape (n_rows,): for image models the
        PSF FWHM of each band, ``psf_fwhm_<b>`` (arcsec, masked where
        unknown), and for a model reading the PSF's shape its Moffat index,
        ``psf_beta_<b>`` (see `model_inputs`).
    """

    features: object
    stamps: object
    valid: np.ndarray
    flags: np.ndarray
    columns: dict = field(default_factory=dict)

    @property
    def rows(self):
        """Indices of the rows that can be classified."""
        return np.flatnonzero(self.valid)


@psf_memo()  # each frame's PSF measured once per call: its FWHM, index and the others' stars
def model_inputs(table, *, feature_set, uses_images, cutouts=None, images=None, psf=None,
                 psf_range=None, neighbour_limit=None, sky_range=None, model_name=None,
                 psf_beta_range=None, subtract_neighbours="auto"):
    """Compute a model's inputs from a table and its cutouts or frames.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.
    feature_set : str or None
        The model's feature set (see `sourceclf.features`); None for a model
        reading images only.
    uses_images : bool
        Whether the model reads 5-band stamps.
    cutouts : array-like, list, or path, optional
        Stamps in any form `sourceclf.cutouts.make_cutouts` accepts.
    images : dict, optional
        Full frames by band, cut at each row's ``ra``/``dec``.
    psf : float or dict, optional
        PSF FWHM (arcsec, the FWHM of the effective PSF as
        `sourceclf.psf.measure_psf` measures it), one value for every band or
        ``{band: value}`` for all five.  Used instead of the table's
        ``psffwhm_<b>`` or of measuring frames.
    psf_range : dict, optional
        Band -> (low, high) PSF FWHM (arcsec) the image model was trained on
        (its card's ``domain['psf_fwhm']``).  When given, rows are flagged
        ``seeing_out_of_range`` or ``psf_unknown`` (see below), and with
        frames whose pixels are not SDSS's 0.396" ``pixel_scale_mismatch``
        (`sourceclf.frames.pixel_scale_mismatch`; one warning).
    neighbour_limit : int, optional
        An image model's largest number of neighbours in a stamp (its card's
        ``domain['neighbours']['limit']``).  When given, rows whose stamps
        hold more (`sourceclf.crowding.count_neighbours`) are flagged
        ``crowded`` and each row's count is returned as
        ``columns['n_neighbours']``; with frames, so are all rows when the r
        frame's `sourceclf.crowding.source_coverage` exceeds
        `sourceclf.crowding.CROWDED_COVERAGE`, returned as
        ``columns['frame_coverage']``.
    sky_range : dict, optional
        Band -> (low, high) sky noise per pixel (nanomaggies) the image model
        was trained on (its card's ``domain['sky_sigma']``).  When given with
        frames, the rows on a frame whose sky is unlike it are flagged
        ``sky_out_of_range`` or ``sky_not_subtracted`` (`sourceclf.sky`).
    model_name : str, optional
        The model's name, for error messages.
    psf_beta_range : dict, optional
        Band -> (low, high) Moffat index of the PSFs a model reading the
        PSF's shape (feature set ``psf_shape``) was trained on (its card's
        ``domain['psf_beta']``).  When given, each row's index is clipped
        into it, and one that could not be measured is read as its middle.
    subtract_neighbours : bool or 'auto'
        Give an image model the classifiable rows' stamps less their neighbours'
        fitted light (`sourceclf.stamp_neighbours.subtracts_neighbours`); the flags
        read them as cut.

    Returns
    -------
    inputs : `ModelInputs`

    Notes
    -----
    The PSF of an image model's rows comes from, in this order: ``psf``;
    for frames, a measurement of each band's frame from its own stars
    (`sourceclf.psf.measure_psf`, once per frame), or, where the frame
    holds too few, on the PSF stars of the field's other bands
    (`sourceclf.field_psf.field_band_psf`); for stamps, the table's
    ``psffwhm_<b>`` columns (SDSS's catalog width, case-insensitive) times
    `sourceclf.psf.CATALOG_PSF_SCALE`.  It is returned per row as
    ``columns['psf_fwhm_<b>']``.  A model reading the PSF's shape also
    gets its Moffat index, ``columns['psf_beta_<b>']``: that of ``psf``
    for a band it gives as a `~sourceclf.psf.PSFMeasurement`, else
    measured on the frames with the FWHM, else on the stamps' own point sources of each
    FWHM (`sourceclf.stamp_psf.stamps_psf_shape`; one
    `SourceclfWarning` when it cannot be, and those rows are read as seen
    through the middle of ``psf_beta_range``).  With ``psf_range``,
    classifiable rows whose FWHM in a band is outside the range by more than
    `sourceclf.psf.SEEING_TOLERANCE` are flagged ``seeing_out_of_range``,
    rows without a PSF ``psf_unknown`` after one `SourceclfWarning` saying
    why, and rows bright enough for a saturated core
    (`sourceclf.saturation.saturation_flags`) ``saturated``, and rows whose PSF
    is more elongated than the models were checked on
    (`sourceclf.elongation.ELONGATION_LIMIT`; known where the PSF was measured:
    given as a `~sourceclf.psf.PSFMeasurement`, on the frames when ``psf`` is
    not given, or on stamps given without frames, through each row's FWHM as
    the Moffat index is, `sourceclf.stamp_psf.stamps_psf_shape`; returned
    as ``columns['psf_ellipticity_<b>']``) ``psf_elongated``; with
    ``neighbour_limit``, rows whose stamps hold more neighbours than the
    model's training stamps ``crowded``.  Flagged rows are still
    classified.

    Raises
    ------
    MissingColumnsError
        If the table cannot supply the feature set.
    InvalidInputError
        If an image model gets neither cutouts nor images, or the number of
        stamps differs from the table's length.

    Warns
    -----
    SourceclfWarning
        When a frame's PSF cannot be measured (rows flagged
        ``psf_unknown``); each at most once a call.
    CrowdedFrameWarning
        When the r frame is crowded (its coverage beyond
        `sourceclf.crowding.CROWDED_COVERAGE`: every row on it flagged
        ``crowded``).
    FrameSkyWarning
        Once, when a frame's sky is unlike the trained one (rows flagged
        ``sky_out_of_range`` or ``sky_not_subtracted``);
        `~sourceclf.exceptions.StampSkyWarning` when the stamps' is.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"u": [19.5, -9999.], "g": [18.2, 18.0], "r": [17.6, 17.5],
    ...            "i": [17.4, 17.3], "z": [17.3, 17.2]})
    >>> inputs = model_inputs(t, feature_set="ugriz", uses_images=False)
    >>> inputs.valid.tolist(), inputs.flags.tolist()
    ([True, False], ['', 'missing:u-g'])
    """
    n = len(table)
    valid = np.ones(n, dtype=bool)
    flags = np.full(n, "", dtype=object)
    features = None
    feature_spec = None if feature_set is None else get_feature_set(feature_set)
    if feature_spec is not None and feature_spec.reads_image_psf and not uses_images:
        raise InvalidInputError(f"feature set '{feature_set}' is the PSF of the images; "
                                f"model '{model_name}' reads no images")
    if feature_spec is not None and not feature_spec.reads_image_psf:
        matrix = feature_spec.compute(table)
        features = matrix.values
        valid &= matrix.valid
        flags[~matrix.valid] = matrix.reasons()[~matrix.valid]

    stamps = None
    if uses_images:
        if cutouts is None and images is None:
            raise InvalidInputError(f"model '{model_name}' needs cutouts or images")
        frames = None if images is None or cutouts is not None else read_frames(images)
        result = make_cutouts(cutouts, table=table, images=frames or images)
        stamps = result.data
        if len(stamps) != n:
            raise InvalidInputError(f"{len(stamps)} cutouts for a table of {n} rows")
        image_flags = np.asarray(result.flags).astype(object)
        on_frame = image_flags != FLAG_OFF_FRAME
        _flag_no_data(stamps, image_flags, on_frame)
        valid &= on_frame & np.array([FLAG_BAD_PIXELS not in f and FLAG_NO_DATA not in f
                                      for f in image_flags.astype(str)], dtype=bool)
        for i in np.flatnonzero(image_flags != ""):
            flags[i] = ";".join(x for x in (flags[i], str(image_flags[i])) if x)
        fwhm, why = _row_psf(table, psf, frames, on_frame)
        columns = {}
        for b in BANDS:
            values = np.asarray(fwhm[b], dtype=np.float32)
            columns[f"psf_fwhm_{b}"] = _output_column(
                values, ~np.isfinite(values),
                f"FWHM of the {b}-band PSF the stamps were seen through", unit="arcsec")
        if psf_range:
            _flag_seeing(flags, valid, fwhm, psf_range, why, model_name)
            for i in np.flatnonzero(valid & saturation_flags(stamps, fwhm)):
                flags[i] = ";".join(x for x in (flags[i], FLAG_SATURATED) if x)
        clean = image_flags == ""
        stamp_shapes = None if frames is not None else _stamp_shapes(stamps, fwhm, psf, clean)
        shape = _row_psf_ellipticity(psf, frames, on_frame, stamp_shapes, fwhm)
        if shape is not None:
            for b in BANDS:
                values = np.asarray(shape[b], dtype=np.float32)
                columns[f"psf_ellipticity_{b}"] = _output_column(
                    values, ~np.isfinite(values),
                    f"1 - b/a of the {b}-band PSF the stamps were seen through")
            if psf_range:
                _flag_elongated(flags, valid, shape, model_name)
        sky = None
        if frames is not None and sky_range:
            sky = frame_sky(frames)
            _flag_sky(flags, valid, sky, sky_range)
        elif cutouts is not None and sky_range:  # stamps without frames: their borders' sky
            judged = np.flatnonzero(valid & clean)
            judged = judged if judged.size else np.flatnonzero(valid)
            if not _flag_sky(flags, valid, stamp_sky(stamps, judged), sky_range, "stamps"):
                _flag_sky_rows(flags, stamps, judged, sky_range)
        if frames is not None and psf_range:
            _flag_pixel_scale(flags, valid, pixel_scale_mismatch(frames))
        if neighbour_limit is not None:
            counts = count_neighbours(stamps)
            columns["n_neighbours"] = _output_column(
                np.asarray(counts, dtype=np.int16), ~on_frame,
                "other sources in the r-band stamp (sourceclf.crowding.count_neighbours)")
            crowded = counts > int(neighbour_limit)
            if frames is not None:
                coverage = _frame_coverage(frames[NEIGHBOUR_BAND], fwhm[NEIGHBOUR_BAND],
                                           None if sky is None else sky[NEIGHBOUR_BAND])
                columns["frame_coverage"] = _output_column(
                    np.full(n, coverage, dtype=np.float32), ~on_frame | ~np.isfinite(coverage),
                    "share of the r frame's pixels inside detected sources "
                    "(sourceclf.crowding.source_coverage)")
                crowded |= coverage > CROWDED_COVERAGE
                if coverage > CROWDED_COVERAGE and on_frame.any():
                    warnings.warn(
                        f"the r frame is crowded: {coverage:.0%} of its pixels lie in detected "
                        f"sources, more than {CROWDED_COVERAGE:.0%} "
                        "(sourceclf.crowding.CROWDED_COVERAGE); every row on it is flagged "
                        f"'{FLAG_CROWDED}': the image models misclassify more sources there "
                        "than their cards say, and their prediction sets hold the true class "
                        "less often than their confidence (docs: images, 'Crowded frames: "
                        "each source fitted with its neighbours')", CrowdedFrameWarning,
                        stacklevel=3)
            for i in np.flatnonzero(valid & crowded):
                flags[i] = ";".join(x for x in (flags[i], FLAG_CROWDED) if x)
        beta = None
        if feature_spec is not None and feature_spec.reads_psf_shape:
            beta = _row_psf_beta(fwhm, frames, on_frame, valid, psf_beta_range,
                                 _given_beta(psf), stamp_shapes)
            for b in BANDS:
                values = np.asarray(beta[b], dtype=np.float32)
                columns[f"psf_beta_{b}"] = _output_column(
                    values, ~np.isfinite(values),
                    f"Moffat index of the {b}-band PSF the stamps were seen through")
        if feature_spec is not None and feature_spec.reads_image_psf:
            features = _psf_features(feature_spec, fwhm, psf_range, valid, flags, beta,
                                     psf_beta_range)
        if subtracts_neighbours(feature_set, subtract_neighbours):
            stamps = _less_neighbours(stamps, fwhm, beta, psf, frames, valid)
        return ModelInputs(features=features, stamps=stamps, valid=valid, flags=flags,
                           columns=columns)
    return ModelInputs(features=features, stamps=stamps, valid=valid, flags=flags)


def _less_neighbours(stamps, fwhm, beta, psf, frames, rows):
    """`subtract_neighbours` of the stamps of ``rows`` (Moffat index and sky noise from a
    measurement where there is one; pixels of exactly 0, beyond a frame's edge, weigh none)."""
    known = _frame_measurements(frames)[0] if frames is not None and psf is None else {}
    known.update(_given_measurements(psf))
    return subtract_neighbours(stamps, fwhm, beta or {b: m.beta for b, m in known.items()},
                               {b: m.sky_sigma for b, m in known.items()}, rows=rows,
                               present="nonzero")[0]


def _flag_no_data(stamps, image_flags, on_frame):
    """Flag ``no_data`` the on-frame stamps with a band of nothing but zeros (a frame's
    zero-filled no-data area, a blank stamp: the networks call such rows STAR with
    confidence), and ``edge`` those a quarter or more of whose pixels in a band are exactly
    zero (reaching into a no-data area, as a stamp past a frame's edge is padded)."""
    if stamps is None or not len(stamps):
        return
    stamps = np.asarray(stamps)  # non-finite pixels were set to 0 and flagged
    share = np.max([(stamps[:, k] == 0).mean(axis=(1, 2)) for k in range(stamps.shape[1])],
                   axis=0)
    for i in np.flatnonzero(on_frame & (share >= 0.25)):
        if FLAG_BAD_PIXELS in str(image_flags[i]):  # zeroed by that check: unclassified
            continue
        reason = FLAG_NO_DATA if share[i] == 1.0 else FLAG_EDGE
        parts = [p for p in str(image_flags[i]).split(";") if p]
        if reason not in parts:
            image_flags[i] = ";".join(parts + [reason])


def _psf_features(feature_spec, fwhm, psf_range, valid, flags, beta=None, beta_range=None):
    """The PSF feature matrix of a PSF-aware image model (updates ``valid``, ``flags``).

    Where a row's PSF is unknown it is read as the middle of the model's
    trained range (the geometric mean of its ends), so that the row is still
    classified; `_flag_seeing` has flagged such rows ``psf_unknown``.  Without
    a trained range (training) such rows cannot be used.  The Moffat indices
    (``beta``, for a model reading the PSF's shape) are clipped into their
    trained range ``beta_range``, whose middle stands for an unknown one.
    """
    from astropy.table import Table

    def known(values, trained):
        values = np.asarray(values, dtype=np.float64)
        return values if not trained else np.where(np.isfinite(values), values,
                                                   float(np.sqrt(np.prod(trained))))

    columns = {f"psf_fwhm_{b}": known(fwhm[b], psf_range and psf_range.get(b)) for b in BANDS}
    if beta is not None:
        for b in BANDS:
            trained = beta_range and beta_range.get(b)
            values = known(beta[b], trained)
            columns[f"psf_beta_{b}"] = np.clip(values, *trained) if trained else values
    matrix = feature_spec.compute(Table(columns))
    bad = valid & ~matrix.valid
    valid &= matrix.valid
    flags[bad] = [";".join(x for x in (f, r) if x)
                  for f, r in zip(flags[bad], matrix.reasons()[bad])]
    return matrix.values


def read_frames(images):
    """Read the frames of a ``{band: frame}`` mapping.

    Parameters
    ----------
    images : dict
        ``{band: frame}`` for u, g, r, i, z (see `sourceclf.frames.frames_by_band`), each frame
        in any form `sourceclf.frames.read_frame` reads.  A frame whose header names
        another band (SDSS's ``FILTER``) is refused, and so is one frame given for two
        bands (`~sourceclf.frames.frames_by_band`).  Frames already read (``(data, wcs)``
        pairs of float32 data) are returned without a copy.

    Returns
    -------
    frames : dict
        ``{band: (data, wcs)}`` with the keys of `~sourceclf.bands.BANDS`.

    Raises
    ------
    InvalidInputError
        As `sourceclf.frames.frames_by_band` and `~sourceclf.frames.read_frame`
        do, naming the band.
    """
    by_band = frames_by_band(images)
    return {band: read_frame(frame, label=f"frame of band '{band}'", bands=[band])
            for band, frame in by_band.items()}


def psf_by_band(psf, *, keep_measurements=False):
    """The ``psf=`` argument as ``{band: FWHM}`` (arcsec) for the five bands.

    Parameters
    ----------
    psf : float, `~astropy.units.Quantity` or dict
        One FWHM for every band, or ``{band: FWHM}`` for all five; a band's
        value may be its `~sourceclf.psf.PSFMeasurement` (its ``fwhm``, in
        arcsec).
    keep_measurements : bool
        Give a band's `~sourceclf.psf.PSFMeasurement` back as it is (its
        FWHM checked), so that a measurement of the columns uses its Moffat
        index too (`sourceclf.photometry.measure_columns`), instead of its
        FWHM alone.

    Returns
    -------
    fwhm : dict of float
        (or of `~sourceclf.psf.PSFMeasurement` for the bands given one, with
        ``keep_measurements``)

    Raises
    ------
    InvalidInputError
        If a value is not a positive angle, or a band is missing or unknown.
    """
    from astropy import units as u

    def value(v, what):
        name = f"psf {what}" if what else "psf"
        try:
            if isinstance(v, PSFMeasurement):
                v = v.fwhm
            x = float(v.to_value(u.arcsec) if isinstance(v, u.Quantity) else v)
        except (TypeError, ValueError, u.UnitConversionError):
            raise InvalidInputError(f"{name} must be a FWHM in arcsec, got {v!r}") from None
        if not (np.isfinite(x) and x > 0):
            raise InvalidInputError(f"{name} must be a positive FWHM in arcsec, got {v!r}")
        return x

    def kept(v, what):
        checked = value(v, what)
        return v if keep_measurements and isinstance(v, PSFMeasurement) else checked

    if not hasattr(psf, "items"):
        return {b: kept(psf, "") for b in BANDS}
    return {b: kept(v, f"of band '{b}'") for b, v in by_band_name(psf, "psf").items()}


def _row_psf(table, psf, frames, on_frame):
    """PSF FWHM per band and row (arcsec, NaN unknown), and why it is unknown ('' if known)."""
    n = len(on_frame)
    if psf is not None:
        return _per_row(psf_by_band(psf), on_frame), ""
    if frames is not None:
        measured, failed = _frame_measurements(frames)
        return (_per_row({b: m.fwhm for b, m in measured.items()}, on_frame),
                f"cannot measure the PSF of the frame(s) of band(s) "
                f"{', '.join(b for b, _ in failed)} ({failed[0][1]})" if failed else "")
    fwhm = catalog_psf_fwhm(table, complete=False)
    if fwhm is None:
        return ({b: np.full(n, np.nan) for b in BANDS},
                "the stamps' PSF is unknown: give psf= (FWHM in arcsec; --psf on the "
                "command line) or psffwhm_<b> columns")
    return fwhm, "some rows lack psffwhm_<b> values"


def _stamp_shapes(stamps, fwhm, psf, clean):
    """The PSF's shape on stamps given without frames, for the bands ``psf=`` gives no
    `PSFMeasurement` for: `sourceclf.stamp_psf.band_psf_shapes` of the stamps of each FWHM
    (those ``clean`` read, as the catalog models' columns read them; measured once a call)."""
    given = _given_measurements(psf)
    rest = [b for b in BANDS if b not in given]
    return band_psf_shapes(stamps, fwhm, rows=read_stamp_rows(clean), bands=rest)


def _row_psf_ellipticity(psf, frames, on_frame, stamp_shapes, fwhm):
    """``1 - b/a`` of the PSF per band and row (NaN where unknown) where a measurement gives
    it: ``psf=``'s `PSFMeasurement`s, else the frames' (None for a FWHM given with frames:
    they are not measured), else the stamps' (``stamp_shapes``; NaN where the FWHM is
    unknown, as for the Moffat index)."""
    measured = {b: m.ellipticity for b, m in _given_measurements(psf).items()}
    if frames is not None:
        if psf is not None:
            return _per_row(measured, on_frame) if measured else None
        # a band not measured: its rows say psf_unknown
        measured = {b: m.ellipticity for b, m in _frame_measurements(frames)[0].items()}
        return _per_row(measured, on_frame)
    return {**_per_row(measured, on_frame),
            **_on_stamps(stamp_shapes, fwhm, on_frame, "ellipticity")}


def _on_stamps(stamp_shapes, fwhm, on_frame, what):
    """``what`` (``'beta'``, ``'ellipticity'``) of each band of ``stamp_shapes`` per row,
    NaN where the row's FWHM is unknown (`sourceclf.stamp_psf.stamps_psf_shape` gives such a
    row the shape of all the stamps, which its unknown FWHM may not share)."""
    return {band: np.where(np.isfinite(np.asarray(fwhm[band], dtype=float)) & on_frame,
                           getattr(shape, what), np.nan)
            for band, shape in stamp_shapes.items()}


def _frame_measurements(frames, bands=BANDS):
    """`sourceclf.field_psf.field_band_psf` of each of ``bands``: ``{band: PSFMeasurement}``
    of those measured, and ``[(band, reason)]`` of those that cannot be."""
    measured, failed = {}, []
    for band in bands:
        try:
            measured[band] = field_band_psf(frames, band)
        except InvalidInputError as exc:
            failed.append((band, getattr(exc, "reason", str(exc))))
    return measured, failed


def _per_row(values, on_frame):
    """``{band: value}`` (bands missing: unknown) as ``{band: array}`` per row, NaN off the
    frames and where unknown."""
    return {b: np.where(on_frame, values.get(b, np.nan), np.nan) for b in BANDS}


def _flag_elongated(flags, valid, shape, model_name):
    """Add ``psf_elongated`` to the classifiable rows whose PSF is more elongated than
    `sourceclf.elongation.ELONGATION_LIMIT` in some band; warn once, naming the bands."""
    rows = valid & elongation_flags(shape)
    if not rows.any():
        return
    bands = [f"{b} {np.nanmax(np.where(rows, shape[b], np.nan)):.2f}" for b in BANDS
             if np.any(rows & (np.asarray(shape[b]) > ELONGATION_LIMIT))]
    # The same text for every chunk of a catalog on the same frames: printed once a run.
    warnings.warn(f"the PSF is elongated (1 - b/a of {', '.join(bands)}, above "
                  f"{ELONGATION_LIMIT:g}: wind shake or tracking?); its rows are flagged "
                  f"'{FLAG_PSF_ELONGATED}' (model '{model_name}' was trained and checked on "
                  "rounder PSFs, and their FWHM is uncertain)", SourceclfWarning, stacklevel=4)
    for i in np.flatnonzero(rows):
        flags[i] = ";".join(x for x in (flags[i], FLAG_PSF_ELONGATED) if x)


def _given_measurements(psf):
    """The bands ``psf=`` gives a `PSFMeasurement` for (one given alone counts for every
    band, as `psf_by_band` reads it): ``{band: PSFMeasurement}``, ``{}`` if none."""
    if psf is None:
        return {}
    return {b: v for b, v in psf_by_band(psf, keep_measurements=True).items()
            if isinstance(v, PSFMeasurement)}


def _given_beta(psf):
    """The Moffat index of each band ``psf=`` gives as a `PSFMeasurement` (``{}`` if none)."""
    return {b: float(v.beta) for b, v in _given_measurements(psf).items()}


def _row_psf_beta(fwhm, frames, on_frame, valid, beta_range, given, stamp_shapes):
    """Moffat index of the PSF per band and row (NaN where unknown): ``given`` (per band),
    else measured on each band's frame with its FWHM, else on the stamps of each FWHM
    (``stamp_shapes``, `_stamp_shapes`).  Warns once when some classifiable row's index
    could not be measured."""
    known = {b: np.isfinite(np.asarray(fwhm[b], dtype=float)) & on_frame for b in BANDS}
    rest = [b for b in BANDS if b not in given]
    if frames is not None:  # a band not measured: its FWHM is unknown too (psf_unknown)
        given = {**given, **{b: m.beta for b, m in _frame_measurements(frames, rest)[0].items()}}
        beta = _per_row(given, on_frame)
    else:
        beta = {**_per_row(given, on_frame), **_on_stamps(stamp_shapes, fwhm, on_frame, "beta")}
    missing = [band for band in BANDS
               if np.any(valid & known[band] & ~np.isfinite(beta[band]))]
    if missing:
        fallback = ("read as the middle of the trained range" if beta_range else
                    "left out")
        warnings.warn(f"the Moffat index of the PSF of band(s) {', '.join(missing)} could not "
                      "be measured for some rows (too few isolated point sources on their "
                      f"frames or stamps); those rows' index is {fallback} (masked "
                      "psf_beta_<b>)", SourceclfWarning, stacklevel=4)
    return beta


def catalog_psf_fwhm(table, *, complete=True):
    """Each row's PSF FWHM per band from the catalog's ``psffwhm_<b>`` columns.

    SDSS's ``psffwhm`` is a catalog width, narrower than the FWHM of the
    Moffat fits sourceclf measures on frames; it is converted by
    `sourceclf.psf.CATALOG_PSF_SCALE`.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog (column names case-insensitive, in arcsec unless they
        carry a unit).
    complete : bool
        Whether all five bands' columns are needed: without one of them the
        result is None.  Otherwise a missing band's FWHMs are NaN, and the
        result is None only when every band's column is missing.

    Returns
    -------
    fwhm : dict or None
        ``{band: FWHM per row}`` (arcsec, NaN where the table has no value).

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({f"psffwhm_{b}": [1.0, 1.5] for b in "ugriz"})
    >>> [round(float(v), 3) for v in catalog_psf_fwhm(t)["r"]]
    [0.908, 1.362]
    """
    finder = ColumnFinder(table)
    present = [finder.find(f"psffwhm_{b}") is not None for b in BANDS]
    if not (all(present) if complete else any(present)):
        return None
    fwhm = {}
    for band in BANDS:
        values = finder.values(f"psffwhm_{band}", unit="arcsec")
        fwhm[band] = (np.full(len(table), np.nan) if values is None
                      else np.asarray(values, dtype=float) * CATALOG_PSF_SCALE[band])
    return fwhm


def _frame_coverage(frame, fwhm, sky=None):
    """`sourceclf.crowding.source_coverage` of a frame seen through ``fwhm`` (arcsec per
    row; NaN where unknown): NaN without a known PSF.  A frame whose sky was not
    subtracted (its median beyond `sourceclf.sky.SKY_LEVEL_LIMIT` sigmas, ``sky``
    from `sourceclf.sky.frame_sky` if known) is measured above that median."""
    data, wcs = frame
    known = np.asarray(fwhm, dtype=float)
    known = known[np.isfinite(known)]
    if not known.size:
        return float("nan")
    scale = pixel_scale(wcs)
    try:
        median, sigma = sky_level(data) if sky is None else sky
        if not np.isfinite(sigma):
            return float("nan")
        if abs(median) > SKY_LEVEL_LIMIT * sigma:
            data = np.asarray(data, dtype=np.float32) - np.float32(median)
        return source_coverage(data, float(np.median(known)) / scale, sigma)
    except InvalidInputError:  # no sky to measure, or no photutils: the coverage is unknown
        return float("nan")


def _flag_pixel_scale(flags, valid, scales):
    """Flag the classifiable rows when frames' pixels are not SDSS's; warn once."""
    rows = np.flatnonzero(valid)
    if not scales or not rows.size:
        return
    found = ", ".join(f"{b} {s:.3g}\"" for b, s in scales.items())
    warnings.warn(f"the frames' pixels are not SDSS's {SDSS_PIXEL_SCALE}\" (the image models "
                  f"read 32-pixel stamps of that scale): band(s) {found} per pixel; the "
                  f"rows on them are flagged '{FLAG_PIXEL_SCALE}', and their classes may be "
                  "wrong (resample the frames to SDSS's pixels)", SourceclfWarning, stacklevel=4)
    for i in rows:
        flags[i] = ";".join(x for x in (flags[i], FLAG_PIXEL_SCALE) if x)


def _flag_sky(flags, valid, sky, sky_range, what="frames"):
    """Flag the classifiable rows on frames (or stamps: ``what``) whose sky is unlike the
    trained one (`sourceclf.sky`); warn once.  Whether any was flagged."""
    found = sky_flags(sky, sky_range)
    rows = np.flatnonzero(valid)
    message = sky_message(sky, sky_range, found, what)
    if not message or not rows.size:
        return False
    warnings.warn(message, StampSkyWarning if what == "stamps" else FrameSkyWarning,
                  stacklevel=4)
    reasons = [flag for flag, bands in found.items() if bands]
    for i in rows:
        flags[i] = ";".join(x for x in (flags[i], *reasons) if x)
    return True


def _flag_sky_rows(flags, stamps, rows, sky_range):
    """Flag the stamps (``rows``) whose own border sky is unlike the trained one, when they
    are many (stamps of frames of different skies) or far from any SDSS sky (stamps in
    other units): `sourceclf.sky.odd_stamp_flags`; warn once."""
    if not rows.size:
        return
    found, message = odd_stamp_flags(stamps, rows, sky_range)
    if not message:
        return
    warnings.warn(message, StampSkyWarning, stacklevel=4)
    odd = found[FLAG_SKY_OUT_OF_RANGE] | found[FLAG_SKY_NOT_SUBTRACTED]
    for i in np.flatnonzero(odd):
        reasons = [flag for flag, rows_flagged in found.items() if rows_flagged[i]]
        flags[i] = ";".join(x for x in (flags[i], *reasons) if x)


def _output_column(values, mask, description, unit=None):
    """A per-row value the output keeps (`ModelInputs.columns`), masked where unknown."""
    from astropy.table import MaskedColumn

    return MaskedColumn(values, mask=mask, unit=unit, description=description)


def _flag_seeing(flags, valid, fwhm, psf_range, why, model_name):
    """Add ``seeing_out_of_range`` / ``psf_unknown`` to the classifiable rows' flags."""
    out, unknown = seeing_flags(fwhm, psf_range)
    unknown &= valid
    out &= valid
    if unknown.any():
        warnings.warn(f"{why}; {int(unknown.sum())} row(s) flagged '{FLAG_PSF_UNKNOWN}' "
                      f"(model '{model_name}' was trained on a range of seeing)",
                      SourceclfWarning, stacklevel=4)
    for reason, rows in ((FLAG_SEEING_OUT_OF_RANGE, out), (FLAG_PSF_UNKNOWN, unknown)):
        for i in np.flatnonzero(rows):
            flags[i] = ";".join(x for x in (flags[i], reason) if x)
