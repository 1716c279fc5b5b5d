"""Exceptions raised by sourceclf.

Every error that a user can cause with their input derives from
`SourceclfError`, so that the command line interface can report it as one
line and exit with status 2.
"""

import signal

__all__ = ["SourceclfError", "MissingColumnsError", "InvalidInputError", "PSFMeasurementError",
           "UnknownModelError", "ModelIntegrityError", "Interrupted", "SourceclfWarning",
           "ShiftAlarmWarning", "CrowdedFrameWarning", "OffFrameWarning", "FrameSkyWarning",
           "StampSkyWarning"]


class SourceclfError(ValueError):
    """Base class of errors caused by the caller's input."""


class MissingColumnsError(SourceclfError, KeyError):
    """A table lacks the columns a feature set needs.

    ``KeyError`` quotes its message; this class does not.
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class InvalidInputError(SourceclfError):
    """An input (table, array, file, option) has the wrong shape, type or value."""


class PSFMeasurementError(InvalidInputError):
    """A frame's PSF cannot be measured (too few stars, too few fits on the locus).

    Its text is ``"cannot measure the PSF of <label>: <reason>"``.

    Parameters
    ----------
    label : str
        The frame, as error messages name it (``"the frame of band 'u'"``).
    reason : str
        Why, without the frame's name, so that callers can word it into
        their own message.
    """

    def __init__(self, label, reason):
        super().__init__(f"cannot measure the PSF of {label}: {reason}")
        self.label = label
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.label, self.reason)


class UnknownModelError(SourceclfError, KeyError):
    """No model of that name is registered."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class ModelIntegrityError(SourceclfError):
    """A model's weights do not match the checksum in its card."""


class Interrupted(KeyboardInterrupt):
    """A terminating signal (SIGTERM, SIGHUP) received while a file was being written.

    Attributes
    ----------
    signum : int
        The signal number.
    """

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class SourceclfWarning(UserWarning):
    """Warnings issued by sourceclf about its inputs.

    ``sourceclf-classify`` prints each text once a run; a category whose
    ``once_a_run`` is true is printed once a run whatever its text (its values
    are measured on each chunk of the catalog).
    """

    once_a_run = False


class ShiftAlarmWarning(SourceclfWarning):
    """The prediction sets of a catalog are unlike those of the model's calibration data.

    Raised once per `sourceclf.classify` call (once per catalog by
    `sourceclf.streaming.classify_file`); a category of its own so that
    callers can leave it to a catalog-wide test, or silence it, with
    ``warnings.filterwarnings("ignore", category=ShiftAlarmWarning)``.
    """


class CrowdedFrameWarning(SourceclfWarning):
    """The r frame the sources were cut from is crowded: every row on it is flagged.

    Issued by `sourceclf.classify` when the frame's coverage by sources
    exceeds `sourceclf.crowding.CROWDED_COVERAGE`; a category of its own so
    that a caller (the command line's hint, a survey pipeline that already
    knows its field is crowded) can recognise or silence it with
    ``warnings.filterwarnings("ignore", category=CrowdedFrameWarning)``.
    """


class OffFrameWarning(SourceclfWarning):
    """No source of the catalog lies on the frames given (frames of another field?).

    Issued once by `sourceclf.classify` when frames are given and every row
    is flagged ``off_frame``; `sourceclf.streaming.classify_file` issues it
    once per catalog instead of once per chunk (a chunk can lie wholly off
    frames that other chunks fall on), and callers can silence it with
    ``warnings.filterwarnings("ignore", category=OffFrameWarning)``.
    """


class FrameSkyWarning(SourceclfWarning):
    """The frames' sky is unlike that of SDSS corrected frames (other units, sky left in).

    Issued once by `sourceclf.classify` when rows are flagged
    ``sky_out_of_range`` or ``sky_not_subtracted`` (`sourceclf.sky`); a
    category of its own so that callers can recognise or silence it with
    ``warnings.filterwarnings("ignore", category=FrameSkyWarning)``.
    """


class StampSkyWarning(FrameSkyWarning):
    """Stamps given without their frames have a sky unlike SDSS corrected frames'.

    Issued once by `sourceclf.classify` when the sky of the stamps' borders
    (`sourceclf.sky.stamp_sky`) flags their rows ``sky_out_of_range`` or
    ``sky_not_subtracted``.  Its text gives the values measured on the call's
    stamps, so each chunk of a catalog may word it differently;
    ``sourceclf-classify`` prints it once a run (``once_a_run``).
    """

    once_a_run = True
