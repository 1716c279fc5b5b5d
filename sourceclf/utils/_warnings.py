"""Warnings that point at the user's code, however deep in sourceclf they are raised."""

import os
import sys

__all__ = ["user_stacklevel"]

#: sourceclf's own folder: frames of files below it are the package's.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_stacklevel():
    """The ``stacklevel`` at which `warnings.warn`, called by the caller of this, names
    the first frame outside sourceclf (as Python 3.12's ``skip_file_prefixes``): the
    user's call, whichever path inside the package led there."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
