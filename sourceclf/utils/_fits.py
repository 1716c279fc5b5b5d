"""Reading FITS data with one-line errors (shared by the modules that read files)."""

from ..exceptions import InvalidInputError

__all__ = ["hdu_data"]


def hdu_data(hdu, label):
    """An HDU's data, with a one-line error for a file cut short or corrupt."""
    try:
        return hdu.data
    except InvalidInputError:
        raise
    except (OSError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the data of {label} (a truncated or corrupt "
                                f"file?): {str(exc).splitlines()[0]}") from None
