"""labelemb.load(run).predict_proba reads an image batch in the layout training reads an .npz
file's ``x`` in ((N, H, W) or (N, H, W, C), each row one image), as a list of those images and as
the run's own (N, C, H, W); a layout that fits neither is one line naming the shape given, the
run's and the fix."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.predict_helpers import train_digits_run, train_npz_run

import labelemb
from labelemb.predict import PredictError
from labelemb.predict.inputs import image_items

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
    # One (H, W) or (H, W, 1) image is still one input.
    one, one_channel = predictor.predict_proba(pixels[0]), predictor.predict_proba(pixels[0][..., None])
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
