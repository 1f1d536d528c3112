"""Image decoding for every supported encoding and THE preprocessing function."""
import numpy as np
import pytest

from crl_ros.robot import camera


@pytest.fixture
def rgb():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding,make", [
    ("rgb8", lambda im: im),
    ("bgr8", lambda im: im[:, :, ::-1]),
    ("rgba8", lambda im: np.concatenate([im, np.full(im.shape[:2] + (1,), 7, np.uint8)], 2)),
    ("bgra8", lambda im: np.concatenate([im[:, :, ::-1], np.full(im.shape[:2] + (1,), 7, np.uint8)], 2)),
])
def test_color_encodings_decode_to_rgb(rgb, encoding, make):
    data = np.ascontiguousarray(make(rgb))
    out = camera.decode_raw(data.tobytes(), 5, 6, data.shape[1] * data.shape[2], encoding)
    np.testing.assert_array_equal(out, rgb)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)


def test_mono8_replicates_the_channel(rgb):
    gray = rgb[:, :, 0]
    out = camera.decode_raw(gray.tobytes(), 5, 6, 5, "mono8")
    assert out.shape == (6, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_row_padding_in_step_is_skipped(rgb):
    padded = np.zeros((6, 5 * 3 + 4), np.uint8)
    padded[:, :15] = rgb.reshape(6, 15)
    padded[:, 15:] = 99
    out = camera.decode_raw(padded.tobytes(), 5, 6, 19, "rgb8")
    np.testing.assert_array_equal(out, rgb)


def test_bad_encoding_and_sizes_are_clear_errors(rgb):
    with pytest.raises(ValueError, match="yuv422"):
        camera.decode_raw(rgb.tobytes(), 5, 6, 15, "yuv422")
    with pytest.raises(ValueError, match="bgr8.*bytes"):
        camera.decode_raw(rgb.tobytes()[:-1], 5, 6, 15, "bgr8")
    with pytest.raises(ValueError, match="rgba8.*step"):
        camera.decode_raw(rgb.tobytes(), 5, 6, 15, "rgba8")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode(fmt):
    img = np.zeros((32, 40, 3), np.uint8)
    img[:, :20] = (250, 20, 20)
    img[:, 20:] = (20, 20, 250)
    out = camera.decode_compressed(camera.encode_compressed(img, fmt), fmt)
    assert out.shape == img.shape
    err = np.abs(out.astype(int) - img)
    if fmt == "png":
        assert err.max() == 0
    else:  # lossy: chroma blurs across the colour edge, flat areas stay close
        assert err[:, :12].max() <= 12 and err[:, 28:].max() <= 12


def test_garbage_compressed_data_names_the_format():
    with pytest.raises(ValueError, match="jpeg"):
        camera.decode_compressed(b"not a jpeg at all", "jpeg")


def test_integer_factor_resize_is_the_exact_block_average():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = camera.preprocess_image(img, (80, 0, 560, 480), (48, 48))
    expected = img[:, 80:560].reshape(48, 10, 48, 10, 3).astype(np.float64).mean(axis=(1, 3))
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    assert np.abs(out - expected).max() <= 0.5 + 1e-9


def test_non_integer_shrink_is_an_area_average():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    out = camera.preprocess_image(img, None, (48, 48)).astype(np.float64)
    # Area averaging preserves the mean; each output pixel is a convex mix of inputs.
    assert abs(out.mean() - img.mean()) < 0.6
    # Reference: explicit area weights on a 1-D ramp along x.
    ramp = np.tile(np.arange(130, dtype=np.uint8)[None, :, None], (48, 1, 3))
    r = camera.preprocess_image(ramp, None, (48, 48))[0, :, 0].astype(float)
    scale = 130 / 48
    centres = (np.arange(48) + 0.5) * scale - 0.5
    assert np.abs(r - centres).max() <= 0.51


def test_constant_images_stay_constant_and_upscaling_is_bilinear():
    flat = np.full((30, 40, 3), 77, np.uint8)
    for size in [(48, 48), (7, 9), (30, 40), (100, 61)]:
        out = camera.preprocess_image(flat, None, size)
        assert out.shape == size + (3,) and (out == 77).all()
    two = np.array([[[0, 0, 0], [200, 200, 200]]], np.uint8)  # 1x2
    up = camera.preprocess_image(two, None, (1, 4))[0, :, 0]
    np.testing.assert_array_equal(up, [0, 50, 150, 200])


def test_crop_selects_the_region_and_bad_crops_fail():
    img = np.zeros((10, 20, 3), np.uint8)
    img[2:6, 4:8] = 255
    np.testing.assert_array_equal(camera.preprocess_image(img, (4, 2, 8, 6), (4, 4)), np.full((4, 4, 3), 255))
    with pytest.raises(ValueError, match="does not fit"):
        camera.preprocess_image(img, (0, 0, 21, 10), (4, 4))
    with pytest.raises(ValueError, match="RGB uint8"):
        camera.preprocess_image(img.astype(np.float32), None, (4, 4))


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("crop,size", [((80, 0, 560, 480), (48, 48)), (None, (48, 48)), ((0, 0, 50, 40), (64, 80))])
def test_decoded_views_preprocess_exactly_like_rgb(encoding, crop, size):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb[:, :, 1] = rgb[:, :, 2] = rgb[:, :, 0]
    layout = {"bgr8": rgb[:, :, ::-1], "rgba8": np.dstack([rgb, rgb[:, :, :1]]),
              "bgra8": np.dstack([rgb[:, :, ::-1], rgb[:, :, :1]]), "mono8": rgb[:, :, :1]}[encoding]
    data = np.ascontiguousarray(layout)
    decoded = camera.decode_raw(data.tobytes(), 640, 480, 640 * data.shape[2], encoding)
    out = camera.preprocess_image(decoded, crop, size)
    np.testing.assert_array_equal(out, camera.preprocess_image(rgb, crop, size))
    assert out.flags.writeable and out.flags.c_contiguous
