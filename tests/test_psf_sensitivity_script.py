"""docs/scripts/psf_sensitivity.py: the image models given a scaled PSF."""

import argparse

import pytest


def test_scaled_psf_scales_every_band_and_nothing_else(doc_script):
    from sourceclf.psf import PSFMeasurement

    script = doc_script("psf_sensitivity")
    psf = {b: PSFMeasurement(fwhm=1.0 + k / 10, fwhm_std=0.02, beta=3.5, ellipticity=0.05,
                             n_stars=20, sky_sigma=0.03, stars=None)
           for k, b in enumerate("ugriz")}
    wider = script.scaled_psf(psf, 1.1)
    assert [wider[b].fwhm for b in "ugriz"] == pytest.approx([1.1, 1.21, 1.32, 1.43, 1.54])
    assert all(wider[b]._replace(fwhm=psf[b].fwhm) == psf[b] for b in "ugriz")
    assert script._parse_scales("0.9,1,1.1") == (0.9, 1.0, 1.1)
    for bad in ("", "0,1", "a"):
        with pytest.raises(argparse.ArgumentTypeError, match="--scales takes positive"):
            script._parse_scales(bad)


def test_the_kernel_is_one_of_degrade_frames(doc_script, capsys):
    script = doc_script("psf_sensitivity")
    with pytest.raises(SystemExit):
        script.main(["004510-4-0030", "--seeing", "1.9", "--kernel", "box"])
    assert "invalid choice: 'box'" in capsys.readouterr().err
    for bad in ("-1", "wide", "1.6,1.9"):
        with pytest.raises(SystemExit):
            script.main(["004510-4-0030", "--seeing", bad])
        assert "--seeing takes one positive FWHM in arcsec" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["004510-4-0030", "--kernel", "moffat"])
    assert "give --seeing too" in capsys.readouterr().err
