"""docs/scripts/psf_shape_check.py, which scores the image models through elongated PSFs."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("psf_shape_check")


def test_a_round_star_is_drawn_out_along_x(script):
    from sourceclf.psf import moffat_profile

    yy, xx = np.mgrid[:61, :61].astype(float)
    star = moffat_profile(xx - 30, yy - 30, 3.0, 3.5).astype(np.float32)
    frames = {"r": (star, "wcs r")}
    out = script.elongated(frames, 2.0)["r"]
    assert out[1] == "wcs r" and out[0].dtype == np.float32
    image = out[0]
    assert image.sum() == pytest.approx(star.sum(), rel=1e-4)  # flux kept
    wide_x = np.sum(image[30] > image.max() / 2)
    wide_y = np.sum(image[:, 30] > image.max() / 2)
    assert wide_x > wide_y  # longer along x than along y
    assert script.elongated(frames, 0.0)["r"][0] is star
    with pytest.raises(ValueError, match="not be negative"):
        script.elongated(frames, -1.0)
