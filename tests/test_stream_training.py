"""stream_training.py's pure parts (no TensorFlow): splicing, window labels, event counting, the
false-alarm tail and the operating point; and the per-label windows the listener reads from model.json."""

import numpy as np
import pytest

import stream_training as st
from detection import DetectionError, EventDetector, parse_min_frames
from params import SAMPLE_RATE, STREAM, YAMNET


def detector_starts(scores: np.ndarray, threshold: float, min_frames: int) -> int:
    detector = EventDetector(["sound"], {"sound": threshold}, min_frames)
    return sum(e["event"] == "start" for i, s in enumerate(scores) for e in detector.update(i * 0.48, [s]))


def test_count_events_is_what_the_listener_would_start():
    scores = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], float)
    assert st.count_events(scores, 0.5, 1) == 3
    assert st.count_events(scores, 0.5, 2) == 2  # the lone window at 5 starts nothing
    assert st.count_events(scores, 0.5, 4) == 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.random(int(rng.integers(1, 60))) ** 3
        for min_frames in (1, 2, 3):
            for threshold in (0.1, 0.5, 0.9):
                assert st.count_events(scores, threshold, min_frames) == detector_starts(scores, threshold, min_frames)


def test_running_min():
    assert st.running_min(np.array([3, 1, 4, 1, 5.0]), 2).tolist() == [1, 1, 1, 1, 5]
    assert st.running_min(np.array([3, 1, 4.0]), 1).tolist() == [3, 1, 4]


def test_coverage_labels_share_of_the_sound_in_each_window():
    hop, window = YAMNET.patch_hop_samples, YAMNET.patch_window_samples
    cover = st.coverage_labels(onset=hop, length=hop, num_windows=4)
    assert cover.tolist() == [1.0, 1.0, 0.0, 0.0]  # windows 0 and 1 hold all of it, window 2 starts after it
    cover = st.coverage_labels(onset=window - 100, length=200, num_windows=3)
    assert cover.tolist() == [0.5, 1.0, 0.5]  # straddles the end of window 0 and the start of window 2


def test_splice_puts_the_clip_at_the_onset_at_the_asked_ratio():
    rng = np.random.default_rng(1)
    background = (0.01 * rng.standard_normal(20 * SAMPLE_RATE)).astype(np.float32)
    clip = (0.5 * np.sin(np.arange(SAMPLE_RATE // 2) * 0.3)).astype(np.float32)
    for snr in (-5.0, 10.0, 25.0):
        mixed, onset = st.splice(clip, background, np.random.default_rng(2), snr_db=(snr, snr))
        assert 0 <= onset <= len(mixed) - len(clip) and len(mixed) >= len(clip) + SAMPLE_RATE
        rest = np.concatenate([mixed[:onset], mixed[onset + len(clip):]])
        added = mixed[onset:onset + len(clip)]
        ratio_db = 20 * np.log10(st.augment.rms(added) / st.augment.rms(rest))
        assert ratio_db == pytest.approx(10 * np.log10(10 ** (snr / 10) + 1), abs=1.0)  # clip + bed over bed
    loud, _ = st.splice(np.ones(1000, np.float32), background, rng, snr_db=(60, 60))
    assert np.abs(loud).max() <= 1.0  # scaled, not clipped
    short, _ = st.splice(clip, background[:100], rng)  # a recording shorter than the excerpt is repeated
    assert len(short) >= len(clip) + SAMPLE_RATE


def test_excerpt_frames_drop_partial_and_silent_windows():
    embeddings = np.arange(5)[:, None] * np.ones((5, YAMNET.embedding_size), np.float32)
    excerpt = st.Excerpt(embeddings, np.array([True, True, True, False, True]), np.array([0, 0.3, 0.9, 1.0, 0]), 0)
    x, y = st.excerpt_frames([excerpt], background_index=1)
    assert x[:, 0].tolist() == [0, 2, 4] and y.tolist() == [1, 0, 1]


def test_split_recordings_whole_files_or_interleaved_segments():
    files = [np.zeros(n, np.float32) for n in (10, 50, 30, 20, 25)]
    parts, folds = st.split_recordings(files, 3)
    assert len(parts) == 5 and sorted(set(folds)) == [0, 1, 2]
    assert folds[1] != folds[2]  # the two longest go to different folds
    parts, folds = st.split_recordings([np.arange(10, dtype=np.float32)], 3)
    assert folds == [0, 1, 2] and np.concatenate(parts).tolist() == list(range(10))
    hour = np.arange(36 * SAMPLE_RATE, dtype=np.float32)  # 36 s in 3 s segments, dealt round-robin
    parts, folds = st.split_recordings([hour], 3, segment_seconds=3.0)
    assert len(parts) == 12 and folds == [0, 1, 2] * 4 and np.concatenate(parts).tolist() == hour.tolist()
    unbalanced = [np.zeros(60 * SAMPLE_RATE, np.float32), np.zeros(SAMPLE_RATE, np.float32), np.zeros(SAMPLE_RATE, np.float32)]
    parts, folds = st.split_recordings(unbalanced, 3, segment_seconds=10.0)
    assert len(parts) == 6 + 3 + 3 and sorted(set(folds)) == [0, 1, 2]  # not one fold with the hour


def test_balanced_weights():
    weights = st.balanced_weights(np.array([0, 1, 1, 1]), 3)
    assert weights == {0: 2.0, 1: pytest.approx(2 / 3)}


def test_estimated_false_alarms_never_below_what_was_seen_and_fall_beyond():
    grid = st.threshold_grid()
    assert grid[0] == pytest.approx(STREAM.min_threshold) and grid[-1] == pytest.approx(STREAM.max_threshold)
    counts = np.maximum(0, np.round(200 * np.exp(-1.5 * st.logit(grid)))).astype(int)
    estimate = st.estimated_false_alarms(grid, counts)
    assert (estimate >= counts).all() and (np.diff(estimate) <= 1e-9).all()
    assert estimate[60] < estimate[30] / 10  # a steep tail falls far ...
    assert estimate[-1] == pytest.approx(1 / STREAM.max_extrapolation)  # ... but "none seen" is not "none expected"
    none_seen = st.estimated_false_alarms(grid, np.zeros(len(grid)))
    assert none_seen[0] == pytest.approx(1.0) and none_seen[-1] < none_seen[0]


def calibration_with(background_peaks: list[float], sound_peaks: list[float], hours: float = 1.0,
                     width: int = 2) -> st.Calibration:
    """Held-out scores for one sound class (0) and background (1): background windows low except the given
    peaks (each `width` windows long), spliced clips scoring the given peaks on their two windows."""
    calibration = st.Calibration(background_seconds=hours * 3600)
    scores = np.full(2000, 0.01)
    for shift in range(width):
        scores[np.arange(len(background_peaks)) * 20 + 10 + shift] = background_peaks
    calibration.background_scores.append(np.stack([scores, 1 - scores], axis=1))
    for peak in sound_peaks:
        clip_scores = np.array([0.01, peak, peak, 0.01])
        calibration.excerpts.append((np.stack([clip_scores, 1 - clip_scores], 1), np.array([0, 1, 1, 0.0]), 0))
    return calibration


def test_operating_point_meets_the_budget_above_the_background_peaks():
    calibration = calibration_with(background_peaks=[0.6] * 30 + [0.8] * 8 + [0.9] * 2, sound_peaks=[0.999] * 9 + [0.7])
    point = st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=1.0)
    assert point.meets and point.label == "sound"
    assert 0.8 < point.threshold < 0.999 and point.expected_recall == pytest.approx(0.9)
    assert point.expected_false_per_hour <= 1.0 and point.held_out_clips == 10 // STREAM.held_out_copies
    assert point.min_frames == 1  # two windows remove nothing the threshold does not: only latency
    assert "cannot meet" not in st.format_operating_point(point, 1.0)


def test_operating_point_that_cannot_be_met_says_so():
    # the background fires three windows long at full score; the sound is two windows long: three windows
    # in a row would silence the background but find nothing
    calibration = calibration_with(background_peaks=[1.0] * 60, sound_peaks=[1.0] * 10, width=3)
    point = st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=1.0)
    assert not point.meets and point.expected_false_per_hour > 1.0 and point.expected_recall == 1.0
    text = st.format_operating_point(point, 1.0)
    assert "warning: sound cannot meet 1 false alarm(s) per hour" in text and "--max-false-per-hour" in text


def test_a_budget_beyond_what_the_background_can_show_is_not_met():
    # 20 minutes without a single event: enough to promise 1 per hour, not 1 per week
    calibration = calibration_with(background_peaks=[], sound_peaks=[0.99] * 10, hours=1 / 3)
    assert st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=1.0).meets
    point = st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=0.01)
    assert not point.meets and point.expected_false_per_hour == pytest.approx(3 / STREAM.max_extrapolation)
    assert "pass --max-false-per-hour 0.3" in st.format_operating_point(point, 0.01)
    assert [st.round_up(r) for r in (3e-05, 0.98, 5.345, 17.2)] == ["3e-05", "0.98", "5.4", "18"]


def test_background_recordings_are_counted_once(tmp_path):
    import argparse

    from conftest import write_wav
    from dataset import DatasetError, scan_training_folder
    from train import background_recordings

    for name in ("a.wav", "b.wav"):
        write_wav(tmp_path / "training" / "background" / name, np.zeros(SAMPLE_RATE, np.float32))
    with pytest.raises(DatasetError, match=r"only background/ in .*add one sub-folder of clips per sound"):
        scan_training_folder(tmp_path / "training")
    write_wav(tmp_path / "training" / "alarm" / "c.wav", np.zeros(SAMPLE_RATE, np.float32))
    files_by_class, _notes = scan_training_folder(tmp_path / "training")
    again = argparse.Namespace(negatives=[tmp_path / "training" / "background", tmp_path / "training" / ".." / "training" / "background"])
    assert len(background_recordings(again, files_by_class)) == 2
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    with pytest.raises(DatasetError, match="no audio in"):  # even though training/background/ has some
        background_recordings(argparse.Namespace(negatives=[tmp_path / "notes"]), files_by_class)


def test_per_label_windows_from_the_model_or_the_command_line():
    labels = ["doorbell", "background"]
    assert parse_min_frames(None, labels, {"doorbell": 3}) == {"doorbell": 3, "background": 1}
    assert parse_min_frames(2, labels, {"doorbell": 3}) == {"doorbell": 2, "background": 2}
    with pytest.raises(DetectionError, match="min_frames"):
        parse_min_frames(None, labels, {"doorbell": 0})
    with pytest.raises(DetectionError):
        parse_min_frames(None, labels, {"doorbel": 2})
    detector = EventDetector(["a", "b"], {"a": 0.5, "b": 0.5}, 1, label_min_frames={"b": 2})
    first = detector.update(0.0, [0.9, 0.9])
    second = detector.update(0.48, [0.9, 0.9])
    assert [e["label"] for e in first] == ["a"] and [e["label"] for e in second] == ["b"]
