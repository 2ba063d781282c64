"""labelemb.load(run).predict_proba reads an image batch in the layout training reads an .npz
file's ``x`` in ((N, H, W) or (N, H, W, C), each row one image), as a list of those images, as the
run's own (N, C, H, W) and as flat rows (N, H * W), scikit-learn's layout, in Python and in an
.npz alike (issue 99); a layout that fits none, or reads two ways (a 2-D array: one image, or rows
of another width?), is one line naming the shape given, the readings and the fix; image arrays of
another size are resized with one warning a call."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.predict_helpers import predict, read_output, refused, train_digits_run, train_npz_run
from sklearn.datasets import load_digits

import labelemb
from labelemb.predict import PredictError
from labelemb.predict.inputs import image_batch, image_items

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def digits_run(small_config):
    return train_digits_run(small_config)


def test_a_batch_of_grey_images_predicts_as_the_run_reads_them(digits_run, digits):
    run, _ = digits_run
    predictor = labelemb.load(run)
    pixels = (digits.test.inputs[:2, 0].numpy() * 255).round().astype(np.uint8)  # (2, 8, 8)
    want = predictor.predict_proba(torch.from_numpy(pixels[:, None]))  # (2, 1, 8, 8), as the run reads
    assert want.shape == (2, 10)
    for given in (pixels, pixels / 255.0, pixels[..., None], list(pixels), torch.from_numpy(pixels)):
        assert np.array_equal(predictor.predict_proba(given), want)
    # The run's own float test rows in that layout: the same classes (8-bit pixels differ by < 1/510).
    rows = digits.test.inputs[:2, 0].numpy()
    assert np.array_equal(predictor.predict_proba(rows).argmax(1), want.argmax(1))
    # One image: (1, H, W), as a batch of one, or (H, W, 1).
    one, one_channel = predictor.predict_proba(pixels[0][None]), predictor.predict_proba(pixels[0][..., None])
    assert one.shape == (1, 10) and np.array_equal(one, one_channel)
    assert one[0] == pytest.approx(want[0], rel=1e-5)  # a batch of one sums in another order


def test_a_layout_that_fits_no_reading_names_the_shapes_and_the_fix(digits_run, digits):
    predictor = labelemb.load(digits_run[0])
    three = np.repeat(digits.test.inputs[:2].numpy(), 3, axis=1)  # channels first, 3 of them
    with pytest.raises(PredictError) as raised:
        predictor.predict_proba(three)
    message = str(raised.value)
    assert "\n" not in message and "images of shape (2, 3, 8, 8)" in message
    assert "(N, 1, 8, 8)" in message and "(N, H, W)" in message and "x.transpose(0, 2, 3, 1)" in message
    with pytest.raises(PredictError, match=r"shape \(2, 1, 16, 16\): this run reads a batch \(N, 1, 8, 8\)"):
        predictor.predict_proba(np.zeros((2, 1, 16, 16), np.uint8))
    # Channels last, another size: resized as training resizes an .npz file's images.
    assert predictor.predict_proba(np.zeros((2, 16, 16, 1), np.uint8)).shape == (2, 10)


def test_one_channels_first_colour_image_is_not_read_as_grey_ones():
    colour = SimpleNamespace(frozen=False, input_shape=(3, 8, 8), origin="run")
    ambiguous = r"one channels-first image or 3 grey ones: .*x.transpose\(1, 2, 0\)"
    with pytest.raises(PredictError, match=ambiguous):
        image_items(np.zeros((3, 8, 8), np.uint8), colour)
    with pytest.raises(PredictError, match=r"shape \(3, 20, 20\) reads as one channels-first image"):
        image_items(np.zeros((3, 20, 20), np.uint8), colour)
    assert len(image_items(np.zeros((5, 8, 8), np.uint8), colour)) == 5
    assert len(image_items(np.zeros((8, 8, 3), np.uint8), colour)) == 1


def test_an_npz_runs_own_test_array_gives_its_recorded_error(tmp_path):
    config, summary, arrays = train_npz_run(tmp_path, seed=4)
    predictor = labelemb.load(config.run_dir())
    x, y = arrays["x_test"], arrays["y_test"]
    predicted = predictor.predict_proba(x).argmax(1)
    assert 100.0 * float(np.mean(predicted != y)) == pytest.approx(summary["selected_test_error"])
    assert np.array_equal(predictor.predict_proba(x / 255.0), predictor.predict_proba(x[..., None]))


def test_flat_rows_of_the_runs_width_are_a_batch(digits_run):
    """scikit-learn's digits.data (5, 64) is 5 inputs, as its digits.images (5, 8, 8) are (it was
    read as one 5 x 64 image, resized: one row of probabilities)."""
    predictor, bunch = labelemb.load(digits_run[0]), load_digits()
    want = predictor.predict_proba(bunch.images[:5] / 16)
    assert want.shape == (5, 10)
    rows = bunch.data[:5] / 16  # (5, 64)
    for given in (rows, torch.from_numpy(rows), list(rows), bunch.images[:5, ..., None] / 16):
        assert np.array_equal(predictor.predict_proba(given), want)


def test_a_2d_array_of_another_width_names_both_readings_and_one_image_is_said_so(digits_run, digits):
    predictor = labelemb.load(digits_run[0])
    for rows, values in ((5, 8), (8, 8)):  # (8, 8): the run's own image size, or 8 rows of 8 values
        with pytest.raises(PredictError) as raised:
            predictor.predict_proba(np.zeros((rows, values)))
        message = str(raised.value)
        assert "\n" not in message
        assert f"reads as one {rows} x {values} image or as {rows} flat rows of {values} values" in message
        assert f"img[None] (shape (1, {rows}, {values}))" in message and "(N, 64)" in message
    image = digits.test.inputs[0, 0].numpy()  # (8, 8)
    one = predictor.predict_proba(image[None])
    assert one.shape == (1, 10) and np.array_equal(one, predictor.predict_proba([image]))


def test_flat_colour_rows_are_refused_as_either_channel_order_and_grey_rows_read():
    colour = SimpleNamespace(frozen=False, input_shape=(3, 8, 8), origin="run")
    orders = r"x.reshape\(-1, 8, 8, 3\) or x.reshape\(-1, 3, 8, 8\)"
    both = r"shape \(2, 192\) reads as 8 x 8 images of 3 channels, flattened channels last or channels first"
    with pytest.raises(PredictError, match=both + ".*" + orders):
        image_items(np.zeros((2, 192), np.uint8), colour)
    with pytest.raises(PredictError, match=r"^input 1: a flat row of 192 values reads as .*" + orders):
        image_batch([np.zeros(192, np.uint8)], colour)
    narrow = r"^input 1: a flat row of 10 values, but this run's images are 8 x 8 \(64 values a row\)"
    with pytest.raises(PredictError, match=narrow):
        image_batch([np.zeros(10, np.uint8)], colour)
    grey = np.arange(128).reshape(2, 64).astype(np.uint8)  # grey rows, converted to colour as training does
    assert torch.equal(image_batch(grey, colour), image_batch(grey.reshape(2, 8, 8), colour))


def test_image_arrays_of_another_size_are_resized_with_one_warning_a_call(digits_run, caplog):
    predictor = labelemb.load(digits_run[0])
    predictor.batch_size = 2  # three parts: still one warning
    with caplog.at_level(logging.WARNING, logger="labelemb"):
        assert predictor.predict_proba(np.zeros((5, 28, 28), np.uint8)).shape == (5, 10)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == predictor.notes and len(lines) == 1
    assert lines[0].startswith("warning: 5 of 5 input image(s) were arrays of 28 x 28, not the run's 8 x 8, ")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labelemb"):
        predictor.predict_proba(np.zeros((3, 8, 8), np.uint8))  # the run's size: nothing resized
        assert predictor.notes == [] and caplog.records == []
        mixed = [np.zeros((28, 28), np.uint8), np.zeros((16, 16, 1), np.uint8), np.zeros((8, 8), np.uint8)]
        assert predictor.predict_proba(mixed).shape == (3, 10)
    assert [record.getMessage() for record in caplog.records] == predictor.notes
    assert "2 of 3 input image(s) were arrays of 28 x 28 (1), 16 x 16 (1), not" in predictor.notes[0]


def test_the_command_reads_an_npz_of_flat_rows_as_the_python_call_and_warns_of_resizing(
    digits_run, tmp_path, capsys
):
    run, bunch = digits_run[0], load_digits()
    paths = {name: tmp_path / f"{name}.npz" for name in ("rows", "images", "narrow", "large")}
    np.savez(paths["rows"], x=(bunch.data[:20] / 16).astype(np.float32), y=bunch.target[:20])
    np.savez(paths["images"], x=(bunch.images[:20] / 16).astype(np.float32), y=bunch.target[:20])
    for name in ("rows", "images"):
        assert predict(run, "--input", paths[name], "--output", tmp_path / f"{name}.csv") == 0
        assert "warning:" not in capsys.readouterr().err
    assert read_output(tmp_path / "rows.csv") == read_output(tmp_path / "images.csv")
    assert len(read_output(tmp_path / "rows.csv")) == 20
    np.savez(paths["narrow"], x=np.zeros((5, 8), np.uint8))
    err = refused(capsys, run, "--input", paths["narrow"], "--output", tmp_path / "narrow.csv")
    assert f"{paths['narrow']} [x], row 1: a flat row of 8 values, but this run's images are 8 x 8" in err
    large = bunch.images[:4].repeat(3, axis=1).repeat(3, axis=2) / 16  # digits at 24 x 24: no range warning
    np.savez(paths["large"], x=large.astype(np.float32))
    assert predict(run, "--input", paths["large"], "--output", tmp_path / "large.csv") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "4 of 4 input image(s) were arrays of 24 x 24, not the run's 8 x 8" in warnings[0]
