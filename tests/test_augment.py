"""augment.py: pure numpy/scipy, so these run in milliseconds without TensorFlow."""

import sys

import numpy as np
import pytest

from conftest import tone

import augment
from params import SAMPLE_RATE, YAMNET

WINDOW, HOP = YAMNET.patch_window_samples, YAMNET.patch_hop_samples


def dominant_hz(waveform: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def test_short_clip_views_spread_over_one_patch():
    clip = tone(440, 0.4)  # 6400 samples, shorter than one 15360-sample patch
    views = augment.time_shifted_views(clip, 4)
    offsets = augment.shift_offsets(len(clip), 4)
    assert offsets[0] == 0 and offsets[-1] == WINDOW - len(clip)
    assert len(set(offsets)) == 4
    assert np.array_equal(views[0], clip)  # view 0 is what YAMNet sees anyway
    for view, offset in zip(views, offsets):
        assert len(view) <= WINDOW  # every view still fits one patch: one embedding each
        assert not view[:offset].any()
        assert np.array_equal(view[offset:], clip)


def test_long_clip_views_move_the_patch_grid_within_one_hop_until_it_has_enough_patches():
    assert augment.shift_offsets(WINDOW, 4) == [0, HOP // 4, HOP // 2, 3 * HOP // 4]  # one patch: 4 copies
    assert augment.shift_offsets(WINDOW + HOP, 8) == [0, HOP // 4, HOP // 2, 3 * HOP // 4]  # 2 patches x 4 copies
    assert augment.shift_offsets(WINDOW + 2 * HOP, 8) == [0, HOP // 3, round(2 * HOP / 3)]  # 3 patches x 3
    assert augment.shift_offsets(3 * WINDOW, 8) == [0, HOP // 2]  # 5 patches x 2
    assert augment.shift_offsets(5 * WINDOW, 8) == [0]  # 9 patches: the clip as is
    assert augment.shift_offsets(100, 1) == [0]
    with pytest.raises(ValueError):
        augment.shift_offsets(100, 0)


def test_random_time_shift_is_seeded_and_stays_in_range():
    clip = tone(440, 0.5)
    a = augment.random_time_shift(clip, np.random.default_rng(1))
    b = augment.random_time_shift(clip, np.random.default_rng(1))
    assert np.array_equal(a, b)
    lengths = {len(augment.random_time_shift(clip, np.random.default_rng(s))) for s in range(50)}
    assert len(lengths) > 10 and max(lengths) <= WINDOW and min(lengths) >= len(clip)


def test_gain_in_db_and_clipping():
    clip = tone(440, 0.1, amplitude=0.1)
    louder = augment.apply_gain(clip, 6.0)
    assert augment.rms(louder) / augment.rms(clip) == pytest.approx(10 ** (6 / 20), rel=1e-4)
    assert np.abs(augment.apply_gain(clip, 40.0)).max() <= 1.0


def test_normalize_rms_sets_the_level_and_keeps_silence():
    quiet = tone(440, 0.5, amplitude=0.001)
    assert 20 * np.log10(augment.rms(augment.normalize_rms(quiet, -20.0))) == pytest.approx(-20.0, abs=0.01)
    assert 20 * np.log10(augment.rms(augment.normalize_rms(quiet, -35.0))) == pytest.approx(-35.0, abs=0.01)
    assert not augment.normalize_rms(np.zeros(100, np.float32)).any()
    capped = augment.normalize_rms(quiet, -20.0, max_gain_db=10.0)
    assert augment.rms(capped) / augment.rms(quiet) == pytest.approx(10 ** (10 / 20), rel=1e-4)


@pytest.mark.parametrize("color,low_to_high", [("white", (0.5, 2)), ("pink", (15, 60)), ("brown", (400, 2000))])
def test_colored_noise_has_unit_rms_and_the_right_slope(color, low_to_high):
    noise = augment.colored_noise(SAMPLE_RATE * 2, color, np.random.default_rng(0))
    assert noise.dtype == np.float32 and noise.shape == (SAMPLE_RATE * 2,)
    assert augment.rms(noise) == pytest.approx(1.0, rel=1e-3)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    ratio = power[(freqs > 100) & (freqs < 200)].mean() / power[(freqs > 3000) & (freqs < 6000)].mean()
    # power ~ 1/f^a: between the two bands (~30x apart in frequency) white ~1, pink ~30, brown ~900
    assert low_to_high[0] < ratio < low_to_high[1]
    with pytest.raises(ValueError):
        augment.colored_noise(10, "purple", np.random.default_rng(0))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_mix_at_snr_hits_the_requested_snr(snr_db):
    clip = tone(440, 0.5, amplitude=0.2)
    noise = augment.colored_noise(3000, "white", np.random.default_rng(0))  # shorter: tiled
    mixed = augment.mix_at_snr(clip, noise, snr_db, np.random.default_rng(1))
    added = mixed - clip
    assert len(mixed) == len(clip)
    assert 20 * np.log10(augment.rms(clip) / augment.rms(added)) == pytest.approx(snr_db, abs=0.05)


def test_mix_at_snr_leaves_silence_alone():
    silence = np.zeros(1000, np.float32)
    out = augment.mix_at_snr(silence, np.ones(10, np.float32), 10.0, np.random.default_rng(0))
    assert not out.any()


def test_change_speed_moves_pitch_and_length_together():
    clip = tone(1000, 0.5)
    faster = augment.change_speed(clip, 1.25)
    assert len(faster) == pytest.approx(len(clip) / 1.25, abs=2)
    assert dominant_hz(faster) == pytest.approx(1250, abs=10)


def test_time_stretch_keeps_pitch():
    clip = tone(1000, 0.5)
    slower = augment.time_stretch(clip, 0.8)
    assert len(slower) == round(len(clip) / 0.8)
    assert dominant_hz(slower) == pytest.approx(1000, abs=10)


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_pitch_shift_keeps_length(semitones):
    clip = tone(800, 0.5)
    shifted = augment.pitch_shift(clip, semitones)
    assert len(shifted) == pytest.approx(len(clip), abs=3)
    assert dominant_hz(shifted) == pytest.approx(800 * 2 ** (semitones / 12), rel=0.01)


def test_random_augment_is_reproducible_and_fills_a_patch_with_noise():
    clip = tone(440, 0.3, amplitude=0.3)
    a = augment.random_augment(clip, np.random.default_rng(5), noise_probability=1.0, speed=(0.9, 1.1))
    b = augment.random_augment(clip, np.random.default_rng(5), noise_probability=1.0, speed=(0.9, 1.1))
    c = augment.random_augment(clip, np.random.default_rng(6), noise_probability=1.0, speed=(0.9, 1.1))
    assert np.array_equal(a, b) and not np.array_equal(a[: len(c)], c[: len(a)])
    assert len(a) == WINDOW and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    assert np.abs(a[-100:]).max() > 0  # background noise reaches the end of the patch


def test_augment_stays_tensorflow_free():
    assert "augment" in sys.modules
    import subprocess

    code = "import sys, augment; sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    from conftest import PROJECT_DIR

    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR).returncode == 0
