"""A catalog whose sources lie off the frames given: one warning, from classify or per file."""

import warnings

import numpy as np
import pytest
from astropy.table import Table, vstack

from sourceclf import classify
from sourceclf.exceptions import OffFrameWarning
from sourceclf.streaming import classify_file

pytest.importorskip("galsim")

PSF = 1.2  # the demo frames' seeing is given: they hold too few stars to measure it


@pytest.fixture(scope="module")
def frames_and_positions():
    from sourceclf.demo import demo_frames

    catalog, frames = demo_frames(n=6, random_state=0)
    return catalog["ra", "dec"], frames


def _elsewhere(positions):
    moved = positions.copy()
    moved["dec"] += 1.0  # a degree away: off frames a few arcmin wide
    return moved


def _off_frame_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, OffFrameWarning)]


def test_classify_warns_when_no_source_lies_on_the_frames(frames_and_positions):
    positions, frames = frames_and_positions
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = classify(_elsewhere(positions), images=frames, psf=PSF)
    assert set(out["pred_flag"]) == {"off_frame"} and out["pred_class"].mask.all()
    assert _off_frame_warnings(record) == [
        "none of the 6 sources lies on the frames of all five bands given: are they frames of "
        "the catalog's field? (every row is flagged off_frame)"]


def test_frames_of_two_fields_are_named_by_band(frames_and_positions):
    """i and z of another field: the sources lie on u g r only, and the warning says so."""
    from sourceclf.demo import demo_frames

    positions, frames = frames_and_positions
    _, elsewhere = demo_frames(n=6, random_state=0)
    for band in ("i", "z"):
        header = elsewhere[band].header
        header["CRVAL2"] = header["CRVAL2"] + 1.0  # a degree north
    mixed = {**frames, "i": elsewhere["i"], "z": elsewhere["z"]}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = classify(positions, images=mixed, psf=PSF)
    assert set(out["pred_flag"]) == {"off_frame"}
    (message,) = _off_frame_warnings(record)
    assert "they lie on the frames of u g r but not on those of i z: are all the frames of " \
        "one field?" in message


def test_classify_is_silent_when_some_source_lies_on_the_frames(frames_and_positions):
    positions, frames = frames_and_positions
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = classify(positions, images=frames, psf=PSF)
    assert not np.all(out["pred_flag"] == "off_frame")
    assert _off_frame_warnings(record) == []


@pytest.mark.parametrize("fmt", ["fits", "vot"])  # written by chunks; in memory
def test_a_file_warns_once_and_only_when_all_its_chunks_are_off(frames_and_positions, tmp_path,
                                                                fmt):
    positions, frames = frames_and_positions
    # The second chunk lies wholly off the frames, the first does not: no warning.
    half_off = vstack([positions, _elsewhere(positions)])
    half_off.write(tmp_path / "half_off.fits")
    all_off = _elsewhere(vstack([positions, positions]))
    all_off.write(tmp_path / "all_off.fits")
    for name, expected in (("half_off", 0), ("all_off", 1)):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            classify_file(tmp_path / f"{name}.fits", tmp_path / f"{name}_out.{fmt}",
                          chunk_size=6, images=frames, psf=PSF, progress=False)
        found = _off_frame_warnings(record)
        assert len(found) == expected, (name, found)
        out = Table.read(tmp_path / f"{name}_out.{fmt}")
        assert (np.sum(out["pred_flag"] == "off_frame") == 12) == bool(expected)
    assert found[0].startswith(f"none of the 12 sources of {tmp_path / 'all_off.fits'} lies")


def test_a_streamed_run_measures_each_frame_and_chunk_once(frames_and_positions, tmp_path,
                                                           monkeypatch):
    """classify_file measured the first chunk's columns twice (to choose the model, then to
    classify) and every frame's PSF once per chunk."""
    from sourceclf import classification, field_psf
    from sourceclf.psf import PSFMeasurement

    positions, frames = frames_and_positions
    calls = {"psf": 0, "columns": 0}
    measure_columns = classification.measure_columns

    def fake_psf(data, **kwargs):  # the demo frames hold too few stars to measure
        calls["psf"] += 1
        return PSFMeasurement(1.2, 0.0, 3.5, 0.0, 10, 0.023, None)

    def counted_columns(*args, **kwargs):
        calls["columns"] += 1
        return measure_columns(*args, **kwargs)

    monkeypatch.setattr(field_psf, "measure_psf", fake_psf)
    monkeypatch.setattr(classification, "measure_columns", counted_columns)
    moved = positions.copy()
    moved["dec"] += 1 / 3600  # other rows in the second chunk
    vstack([positions, moved]).write(tmp_path / "twice.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fake PSF's sky is not the frames'
        classify_file(tmp_path / "twice.fits", tmp_path / "out.fits", chunk_size=6,
                      images=frames, progress=False)
        assert calls == {"psf": 5, "columns": 2}  # two chunks
        calls.update(psf=0, columns=0)
        classify(positions, images=frames, psf=PSF)  # nothing kept outside a run
        classify(positions, images=frames, psf=PSF)
        assert calls == {"psf": 0, "columns": 2}


def test_the_measurement_cache_tells_rows_apart_and_stays_in_its_thread(
        frames_and_positions, monkeypatch):
    import threading

    from sourceclf import classification

    positions, frames = frames_and_positions
    calls = []
    measure_columns = classification.measure_columns

    def counted_columns(*args, **kwargs):
        calls.append(threading.get_ident())
        return measure_columns(*args, **kwargs)

    monkeypatch.setattr(classification, "measure_columns", counted_columns)
    reddened = positions.copy()
    reddened["ebv"] = 0.3  # the same positions, corrected by another extinction
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with classification.frame_measurement_cache():
            classify(positions, images=frames, psf=PSF)
            classify(positions, images=frames, psf=PSF)
            assert len(calls) == 1
            classify(reddened, images=frames, psf=PSF)
            assert len(calls) == 2
            other = threading.Thread(target=classify, args=(positions,),
                                     kwargs={"images": frames, "psf": PSF})
            other.start()
            other.join()
            assert len(calls) == 3 and calls[-1] != calls[0]  # measured there again
