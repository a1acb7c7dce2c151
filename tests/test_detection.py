"""detection: stream framing, class lists, thresholds and the event state machine. TF-free, milliseconds."""

import numpy as np
import pytest

from class_map import ClassMapError
from detection import (DetectionError, EventDetector, SensorStates, StreamFramer, count_events, event_spans,
                       parse_class_list, parse_thresholds)
from params import LISTEN, LISTEN_WINDOW_SAMPLES, YAMNET

HOP = YAMNET.patch_hop_samples
HOP_S = YAMNET.patch_hop_seconds
HALF_WINDOW_S = YAMNET.patch_window_seconds / 2
AUDIOSET_SAMPLE = ["Speech", "Bicycle bell", "Smoke detector, smoke alarm", "Beep, bleep", "Alarm", "Fire alarm"]


def frame_in_chunks(stream: np.ndarray, chunk_sizes) -> list[tuple[int, np.ndarray]]:
    framer, windows, i = StreamFramer(), [], 0
    for size in chunk_sizes:
        windows += framer.push(stream[i:i + size])
        i += size
    assert i >= len(stream)
    return windows + framer.flush()


@pytest.mark.parametrize("chunking", ["one-piece", "tiny", "random"])
def test_windows_are_stream_slices_every_hop_whatever_the_chunking(chunking):
    stream = np.random.default_rng(0).standard_normal(5 * 16000).astype(np.float32)
    sizes = {"one-piece": [len(stream)], "tiny": [37] * (len(stream) // 37 + 1),
             "random": list(np.random.default_rng(1).integers(1, 9000, 100))}[chunking]
    windows = frame_in_chunks(stream, sizes)
    # every hop, and the last window is the stream's end (not padded with silence)
    assert [start for start, _ in windows] == [k * HOP for k in range(len(windows) - 1)] + [len(stream) - LISTEN_WINDOW_SAMPLES]
    for start, window in windows:
        assert window.shape == (LISTEN_WINDOW_SAMPLES,)
        np.testing.assert_array_equal(window, stream[start:start + LISTEN_WINDOW_SAMPLES])


def test_a_stream_shorter_than_one_window_is_zero_padded_like_a_clip():
    clip = np.ones(5000, dtype=np.float32)
    [(start, window)] = frame_in_chunks(clip, [len(clip)])
    assert start == 0 and window[:5000].all() and not window[5000:].any()


# Patches YAMNet itself returns for a waveform of n samples (measured with the bundled model):
# the tail windows of `flush` must match, so a streamed file scores like a whole-file run.
@pytest.mark.parametrize("n,patches", [(100, 1), (15360, 1), (15600, 1), (15601, 2), (23280, 2), (23281, 3),
                                       (30720, 3), (31000, 4), (38401, 4), (38641, 5)])
def test_window_count_matches_yamnet(n, patches):
    assert len(frame_in_chunks(np.ones(n, dtype=np.float32), [n])) == patches


def test_empty_stream_has_no_windows():
    assert StreamFramer().flush() == []


def test_class_list_keeps_names_with_commas_whole():
    text = "bicycle bell,Smoke detector,smoke alarm , Beep, bleep,Speech,speech"
    assert parse_class_list(text, AUDIOSET_SAMPLE) == ["Bicycle bell", "Smoke detector, smoke alarm", "Beep, bleep", "Speech"]


def test_class_list_unknown_name_has_a_hint():
    with pytest.raises(ClassMapError, match="unknown class name 'Smoke'; did you mean: Smoke detector, smoke alarm"):
        parse_class_list("Speech,Smoke", AUDIOSET_SAMPLE)
    with pytest.raises(ClassMapError, match="no class names"):
        parse_class_list(" , ", AUDIOSET_SAMPLE)


def test_thresholds_most_specific_wins():
    labels = ["glass_break", "doorbell", "background"]
    assert parse_thresholds([], labels) == {label: LISTEN.threshold for label in labels}
    model = {"doorbell": 0.7, "Glass_Break": 0.65}
    got = parse_thresholds(["0.3", "glass_break=0.9"], labels, model)
    assert got == {"glass_break": 0.9, "doorbell": 0.7, "background": 0.3}


@pytest.mark.parametrize("spec,message", [
    ("1.5", "must be a number from 0 to 1"),
    ("doorbell=loud", "must be a number from 0 to 1"),
    ("door=0.5", r"unknown class name 'door'; did you mean: doorbell.*labels: doorbell, background"),
])
def test_bad_threshold_is_one_clear_line(spec, message):
    with pytest.raises(DetectionError, match=message):
        parse_thresholds([spec], ["doorbell", "background"])


def run_detector(scores_by_window, labels=("bell",), threshold=0.5, **kwargs):
    detector = EventDetector(list(labels), {label: threshold for label in labels}, **kwargs)
    events = []
    for k, scores in enumerate(scores_by_window):
        events += detector.update(k * HOP_S, np.atleast_1d(scores))
    return events, events + detector.finish()


def centre(k: int) -> float:
    return round(k * HOP_S + HALF_WINDOW_S, 3)


def test_event_starts_and_ends_at_window_centres_with_peak_score():
    events, _ = run_detector([0.1, 0.6, 0.9, 0.7, 0.2, 0.1])
    assert events == [
        {"event": "start", "label": "bell", "score": 0.6, "offset_s": centre(1)},
        {"event": "end", "label": "bell", "score": 0.9, "offset_s": centre(3), "duration_s": round(2 * HOP_S, 3)},
    ]


def test_min_frames_is_hysteresis_both_ways():
    blip_and_dip = [0.9, 0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1]
    events, _ = run_detector(blip_and_dip, min_frames=2)
    assert [(e["event"], e["offset_s"]) for e in events] == [("start", centre(3)), ("end", centre(8))]
    events, _ = run_detector(blip_and_dip, min_frames=1)
    assert [e["event"] for e in events] == ["start", "end"] * 3


def test_cooldown_keeps_a_label_quiet_after_its_end():
    scores = [0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1]
    events, _ = run_detector(scores, cooldown_s=3 * HOP_S)
    assert [(e["event"], e["offset_s"]) for e in events] == [("start", centre(0)), ("end", centre(0)),
                                                             ("start", centre(7)), ("end", centre(7))]
    events, _ = run_detector(scores, cooldown_s=0)
    assert len(events) == 6


def test_threshold_is_inclusive_and_per_label():
    detector = EventDetector(["a", "b"], {"a": 0.5, "b": 0.8})
    assert [e["label"] for e in detector.update(0.0, [0.5, 0.79])] == ["a"]


def test_background_never_fires_and_others_are_independent():
    windows = [[0.99, 0.0, 0.9], [0.99, 0.8, 0.9], [0.99, 0.8, 0.1], [0.99, 0.1, 0.1]]
    events, _ = run_detector(windows, labels=("background", "bell", "alarm"))
    assert [(e["event"], e["label"]) for e in events] == [("start", "alarm"), ("start", "bell"),
                                                          ("end", "alarm"), ("end", "bell")]
    assert EventDetector(["background", "bell"], {"background": 0.5, "bell": 0.5}).firing_labels == ["bell"]


def test_finish_ends_what_is_still_on():
    events, all_events = run_detector([0.1, 0.9, 0.9])
    assert [e["event"] for e in events] == ["start"]
    assert all_events[-1] == {"event": "end", "label": "bell", "score": 0.9, "offset_s": centre(2),
                              "duration_s": round(HOP_S, 3)}


def test_a_label_can_have_its_own_cooldown_and_times_can_be_taken_as_given():
    """As fingerprint_listener.FingerprintListener uses it: one cooldown from meta.json, times not window starts."""
    detector = EventDetector(["jingle", "bell"], {"jingle": 0.5, "bell": 0.5}, cooldown_s=0.0, window_s=0.0,
                             label_cooldowns={"jingle": 5.0})
    events = []
    for t, scores in enumerate([[1, 1], [0, 0], [1, 1], [0, 0], [0, 0], [0, 0], [0, 0], [1, 1], [0, 0]]):
        events += [(e["event"], e["label"], e["offset_s"]) for e in detector.update(float(t), scores)]
    assert events == [("start", "jingle", 0.0), ("start", "bell", 0.0), ("end", "jingle", 0.0), ("end", "bell", 0.0),
                      ("start", "bell", 2.0), ("end", "bell", 2.0), ("start", "jingle", 7.0), ("start", "bell", 7.0),
                      ("end", "jingle", 7.0), ("end", "bell", 7.0)]


def detector_starts(scores: np.ndarray, threshold: float, min_frames: int) -> int:
    detector = EventDetector(["sound"], {"sound": threshold}, min_frames)
    return sum(e["event"] == "start" for i, s in enumerate(scores) for e in detector.update(i * 0.48, [s]))


def test_count_events_is_what_the_listener_would_start():
    scores = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], float)
    assert count_events(scores, 0.5, 1) == 3
    assert count_events(scores, 0.5, 2) == 2  # the lone window at 5 starts nothing
    assert count_events(scores, 0.5, 4) == 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.random(int(rng.integers(1, 60))) ** 3
        for min_frames in (1, 2, 3):
            for threshold in (0.1, 0.5, 0.9):
                assert count_events(scores, threshold, min_frames) == detector_starts(scores, threshold, min_frames)


def test_event_spans_are_the_listeners_events():
    import stream_eval

    rng = np.random.default_rng(1)
    window = YAMNET.patch_window_seconds
    for _ in range(50):
        scores = rng.random(int(rng.integers(1, 60))) ** 3
        times = np.arange(len(scores)) * YAMNET.patch_hop_seconds
        for min_frames in (1, 2, 3):
            for threshold in (0.1, 0.5, 0.9):
                events = stream_eval.detect_events(times, scores[:, None], ["sound"], {"sound": threshold},
                                                   {"sound": min_frames})
                expected = [t for d in stream_eval.pair_events(events) for t in (d.onset_s, d.offset_s)]
                spans = event_spans(scores, threshold, min_frames)
                assert [times[i] + window / 2 for span in spans for i in span] == pytest.approx(expected)


def test_sensor_state_is_on_while_any_method_hears_the_label():
    states = SensorStates(["bell", "glass"])
    seen = [states.update({"event": kind, "label": label, "method": method}) for kind, label, method in [
        ("start", "bell", "yamnet"), ("start", "bell", "fingerprint"), ("end", "bell", "yamnet"),
        ("start", "glass", "yamnet"), ("end", "bell", "fingerprint"), ("end", "glass", "yamnet")]]
    assert seen == ["ON", None, None, "ON", "OFF", "OFF"]
    assert states.state("bell") == "OFF" and states.state("nothing") == "OFF"
