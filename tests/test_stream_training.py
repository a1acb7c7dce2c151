"""stream_training.py's pure parts (no TensorFlow): splicing, window labels, event counting, the
false-alarm tail and the operating point; and the per-label windows the listener reads from model.json."""

import numpy as np
import pytest

import stream_training as st
from detection import DetectionError, EventDetector, parse_min_frames
from params import SAMPLE_RATE, STREAM, YAMNET


def test_running_min():
    assert st.running_min(np.array([3, 1, 4, 1, 5.0]), 2).tolist() == [1, 1, 1, 1, 5]
    assert st.running_min(np.array([3, 1, 4.0]), 1).tolist() == [3, 1, 4]


def test_coverage_labels_share_of_the_sound_in_each_window():
    hop, window = YAMNET.patch_hop_samples, YAMNET.patch_window_samples
    cover = st.coverage_labels(onset=hop, length=hop, starts=np.arange(4) * hop)
    assert cover.tolist() == [1.0, 1.0, 0.0, 0.0]  # windows 0 and 1 hold all of it, window 2 starts after it
    cover = st.coverage_labels(onset=window - 100, length=200, starts=np.arange(3) * hop)
    assert cover.tolist() == [0.5, 1.0, 0.5]  # straddles the end of window 0 and the start of window 2
    cover = st.coverage_labels(onset=hop, length=4 * window, starts=np.arange(8) * hop)  # a jingle longer than a window
    assert cover.tolist() == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # windows inside it are all jingle


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


def test_balanced_weights():
    weights = st.balanced_weights(np.array([0, 1, 1, 1]), 3)
    assert weights == {0: 2.0, 1: pytest.approx(2 / 3)}


def test_quietest_point_when_a_higher_threshold_splits_a_run():
    # events per threshold need not fall as it rises: at the top one run split into two
    counts = np.array([5, 3, 1, 2])
    assert st.quietest_from(counts, np.array([True, True, True, True])) == 2
    assert st.quietest_from(np.array([5, 3, 1, 1]), np.array([True, True, True, True])) == 2
    assert st.quietest_from(counts, np.array([True, True, False, False])) == 1


def test_recall_counts_only_runs_the_listener_could_finish():
    scores = np.array([0.0, 0.0, 0.0, 0.9])  # the sound's one loud window is the stream's last
    excerpts = [(np.stack([scores, 1 - scores], 1), np.array([0, 0, 1, 1.0]), 0)]
    grid = np.array([0.5])
    assert st.recall_at(excerpts, 0, 1, grid)[0].tolist() == [1.0]
    assert st.recall_at(excerpts, 0, 2, grid)[0].tolist() == [0.0]  # two in a row need a window after it
    assert st.count_events(scores, 0.5, 2) == 0


def test_expected_false_alarms_are_one_more_than_seen_and_the_interval_is_exact():
    assert st.expected_false_alarms(np.array([0, 3])).tolist() == [1.0, 4.0]
    low, high = st.poisson_interval(0, 0.5)
    assert low == 0 and high == pytest.approx(3.689 / 0.5, rel=1e-3)  # 0 seen in 30 min: up to 7.4 per hour
    low, high = st.poisson_interval(10, 1.0)
    assert low == pytest.approx(4.795, rel=1e-3) and high == pytest.approx(18.39, rel=1e-3)


def calibration_with(background_peaks: list[float], sound_peaks: list[float], hours: float = 1.0,
                     width: int = 2, folds: int = 1) -> st.Calibration:
    """Held-out scores for one sound class (0) and background (1): background windows low except the given
    peaks (each `width` windows long, dealt to `folds` folds in turn), spliced clips scoring the given peaks
    on their two windows."""
    calibration = st.Calibration()
    for fold in range(folds):
        scores = np.full(2000, 0.01)
        peaks = background_peaks[fold::folds]
        for shift in range(width):
            scores[np.arange(len(peaks)) * 20 + 10 + shift] = peaks
        calibration.add_background(fold, hours * 3600 / folds, np.stack([scores, 1 - scores], axis=1))
    for peak in sound_peaks:
        clip_scores = np.array([0.01, peak, peak, 0.01])
        calibration.excerpts.append((np.stack([clip_scores, 1 - clip_scores], 1), np.array([0, 1, 1, 0.0]), 0))
    return calibration


def test_operating_point_meets_the_budget_above_the_background_peaks():
    calibration = calibration_with(background_peaks=[0.6] * 30 + [0.8] * 8 + [0.9] * 2, sound_peaks=[0.999] * 9 + [0.7],
                                   hours=3.0, folds=3)
    point = st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=1.0)
    assert point.meets and point.label == "sound"
    assert 0.8 < point.threshold < 0.999 and point.expected_recall == pytest.approx(0.9)
    assert point.observed_false_alarms <= 2 and point.expected_false_per_hour <= 1.0  # (2 + 1) / 3 h
    assert point.held_out_clips == 10 // STREAM.held_out_copies and len(point.fold_false_per_hour) == 3
    assert point.false_per_hour_range[0] <= point.expected_false_per_hour <= point.false_per_hour_range[1]
    assert point.min_frames == 1  # two windows remove nothing the threshold does not: only latency
    assert "cannot promise" not in st.format_operating_point(point, 1.0)


def test_operating_point_that_cannot_be_met_says_so():
    # the background fires three windows long at full score; the sound is two windows long: three windows
    # in a row would silence the background but find nothing
    calibration = calibration_with(background_peaks=[1.0] * 60, sound_peaks=[1.0] * 10, width=3)
    point = st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=1.0)
    assert not point.meets and point.expected_false_per_hour > 1.0 and point.expected_recall == 1.0
    text = st.format_operating_point(point, 1.0)
    assert "warning: sound cannot promise 1 false alarm(s) per hour" in text and "--max-false-per-hour" in text


def test_half_an_hour_of_silence_promises_no_less_than_two_per_hour():
    # 30 minutes without a single event: "0 seen" is 2 per hour at best, not 0
    calibration = calibration_with(background_peaks=[0.7] * 3, sound_peaks=[0.99] * 10, hours=0.5)
    point = st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=1.0)
    assert not point.meets and point.observed_false_alarms == 0 and point.expected_false_per_hour == pytest.approx(2.0)
    assert point.threshold < 0.99 and point.expected_recall == 1.0  # the most sensitive point that stays quiet
    assert "pass --max-false-per-hour 2" in st.format_operating_point(point, 1.0)
    assert st.choose_operating_point(calibration, ["sound", "background"], 0, max_false_per_hour=2.0).meets
    assert [st.round_up(r) for r in (3e-05, 0.98, 5.345, 17.2)] == ["3e-05", "0.98", "5.4", "18"]


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
