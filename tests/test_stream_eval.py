"""stream_eval: Audacity labels, matching detections to references, DCASE metrics, the stream PNG. TF-free."""

import subprocess
import sys

import numpy as np
import pytest

import stream_eval
from conftest import PROJECT_DIR
from params import LISTEN_WINDOW_SAMPLES, SAMPLE_RATE, YAMNET
from stream_eval import ClassCounts, Detection, LabelsError, match_events, pair_events, read_audacity_labels


def write(tmp_path, text, name="labels.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- labels ------------------------------------------------------------------------------------------

def test_audacity_regions_points_and_frequency_lines(tmp_path):
    path = write(tmp_path, "1.500000\t2.250000\tdoorbell\r\n"
                           "3.000000\t3.000000\tpoint label\r\n"
                           "\\\t6928.456055\t6928.456055\r\n"
                           "\n"
                           "4.0\t5.5\n"
                           "7.25\tlegacy 1.2 point\n")
    assert read_audacity_labels(path) == [(1.5, 2.25, "doorbell"), (3.0, 3.0, "point label"), (4.0, 5.5, ""),
                                          (7.25, 7.25, "legacy 1.2 point")]


def test_empty_labels_file_means_no_references(tmp_path):
    assert read_audacity_labels(write(tmp_path, "")) == []
    assert read_audacity_labels(write(tmp_path, "\n  \n", "blank.txt")) == []


@pytest.mark.parametrize("bad_line, line_number, words", [
    ("1.0\t2.0\tok\nabc\t2.0\tbad\n", 2, "start time 'abc'"),
    ("1.0\t2.0\tok\n\n3.0\t2.0\tbackwards\n", 3, "before start"),
    ("1.0\n", 1, "expected start<TAB>end<TAB>label"),
    ("1.0\t2.0\tok\n-1\t2\tneg\n", 2, "start time '-1'"),
    ("0\t1\ta\n1\t2\tb\n2\tnan\tc\n", 3, "end time 'nan'"),  # three fields: a broken end, not Audacity 1.2
    ("30.0\tabc\td1\n", 1, "end time 'abc'"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, line_number, words):
    path = write(tmp_path, bad_line)
    with pytest.raises(LabelsError) as info:
        read_audacity_labels(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{path}, line {line_number}:" in message and words in message


def test_missing_labels_file(tmp_path):
    with pytest.raises(LabelsError, match="no such labels file"):
        read_audacity_labels(tmp_path / "nope.txt")


# --- pairing and matching ---------------------------------------------------------------------------

def test_pair_events_joins_starts_and_ends_per_label():
    events = [{"event": "start", "label": "a", "score": 0.6, "offset_s": 1.0, "emitted_s": 1.5},
              {"event": "start", "label": "b", "score": 0.7, "offset_s": 1.2},
              {"event": "end", "label": "a", "score": 0.9, "offset_s": 2.0, "duration_s": 1.0},
              {"event": "start", "label": "a", "score": 0.8, "offset_s": 5.0}]
    assert pair_events(events) == [Detection("a", 1.0, 2.0, 0.9, 1.5), Detection("b", 1.2, 1.2, 0.7, None),
                                   Detection("a", 5.0, 5.0, 0.8, None)]


def test_match_events_known_answer():
    refs = [(10.0, 10.5, "bell"), (20.0, 21.0, "bell"), (30.0, 30.4, "bell"), (40.0, 41.0, "other")]
    dets = [Detection("bell", 9.6, 10.6, emitted_s=10.4),   # finds ref 1 (onset within 10 - 0.5)
            Detection("bell", 10.9, 11.2),                   # overlaps ref 1's collared span: duplicate
            Detection("bell", 21.4, 21.8, emitted_s=22.0),  # finds ref 2 (onset <= 21 + 0.5)
            Detection("bell", 29.0, 29.2),                   # ends before 30 - 0.5: false alarm, ref 3 missed
            Detection("bell", 40.2, 40.8),                   # on another class's reference: false alarm
            Detection("other", 3.0, 3.5)]                    # 'other' is not counted
    counts = match_events(refs, dets, duration_s=100.0, labels=["bell"])
    c = counts["bell"]
    assert (c.references, c.found, c.detections, c.false_alarms, c.duplicates) == (3, 2, 5, 2, 1)
    assert c.recall == pytest.approx(2 / 3)
    # background = 100 s minus the collared spans [9.5, 11], [19.5, 21.5], [29.5, 30.9] = 100 - 4.9
    assert c.background_s == pytest.approx(95.1)
    assert c.false_per_hour == pytest.approx(2 * 3600 / 95.1)
    assert c.latencies_s == pytest.approx([0.4, 2.0])
    assert c.median_latency_s == pytest.approx(1.2)


def test_each_detection_finds_one_reference_and_spans_clip_to_the_stream():
    refs = [(0.2, 0.4, "x"), (0.6, 0.8, "x")]  # two sounds within one collar
    counts = match_events(refs, [Detection("x", 0.5, 0.9)], duration_s=10.0, labels=["x"])["x"]
    assert (counts.found, counts.false_alarms) == (1, 0)
    assert counts.background_s == pytest.approx(10.0 - 1.3)  # union [0, 1.3], clipped at 0


def test_no_references_no_detections_and_pooling():
    empty = match_events([], [], 3600.0, ["x"])["x"]
    assert empty.recall is None and empty.false_per_hour == 0.0 and empty.median_latency_s is None
    one_fa = match_events([], [Detection("x", 5.0, 6.0)], 1800.0, ["x"])
    pooled = stream_eval.pool_counts([{"x": empty}, one_fa])["x"]
    assert pooled.false_alarms == 1 and pooled.false_per_hour == pytest.approx(1 / 1.5)
    assert (ClassCounts(references=2, found=1) + ClassCounts(references=2, found=2)).recall == 0.75


# --- detection over scores -----------------------------------------------------------------------------

def test_detect_events_hysteresis_and_emission_time():
    hop = YAMNET.patch_hop_seconds
    times = np.arange(10) * hop
    scores = np.array([[0.1], [0.9], [0.2], [0.8], [0.9], [0.9], [0.1], [0.1], [0.1], [0.1]])
    events1 = stream_eval.detect_events(times, scores, ["x"], {"x": 0.5}, min_frames=1)
    assert len(pair_events(events1)) == 2
    events2 = stream_eval.detect_events(times, scores, ["x"], {"x": 0.5}, min_frames=2)
    (det,) = pair_events(events2)
    window_s = LISTEN_WINDOW_SAMPLES / SAMPLE_RATE
    assert det.onset_s == pytest.approx(3 * hop + YAMNET.patch_window_seconds / 2)
    assert det.emitted_s == pytest.approx(4 * hop + window_s, abs=1e-3)  # announced when window 4 was complete


def test_score_stream_runs_listen_loop_with_any_scorer():
    sr = SAMPLE_RATE
    wave = np.zeros(10 * sr, np.float32)
    wave[4 * sr:5 * sr] = 0.5  # a loud second

    def scorer(windows):  # (k, 15600) -> (k, 2): "loud" if the window's RMS is high
        loud = np.sqrt(np.mean(windows ** 2, axis=1)) > 0.2
        return np.stack([loud, ~loud], axis=1).astype(np.float32)

    run = stream_eval.score_stream(wave, scorer, ["loud", "background"], {"loud": 0.5, "background": 0.5})
    assert run.scores.shape == (len(run.times_s), 2) and run.duration_s == 10.0
    (det,) = pair_events(run.events)
    assert det.label == "loud" and 3.5 < det.onset_s < 5.0 and det.emitted_s > det.onset_s
    same = stream_eval.detect_events(run.times_s, run.scores, ["loud", "background"], {"loud": 0.5, "background": 0.5})
    assert pair_events(same) == pair_events(run.events)
    assert all(e["emitted_s"] >= e["offset_s"] for e in run.events)


def test_scoring_a_stream_imports_no_tensorflow():
    """In a fresh process (this session's other tests load TensorFlow): where `import tensorflow` fails."""
    code = ("import numpy as np, stream_eval; "
            "run = stream_eval.score_stream(np.zeros(32000, np.float32), lambda w: np.ones((len(w), 1), np.float32), "
            "['x'], {'x': 0.5}); print(len(run.events))")
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['tensorflow'] = None; " + code],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"  # one start, one end


# --- DCASE metrics --------------------------------------------------------------------------------

def test_dcase_event_metrics_known_answer():
    refs = [(1.0, 1.5, "x"), (5.0, 5.5, "x"), (9.0, 9.5, "x")]
    dets = [Detection("x", 1.3, 1.8), Detection("x", 7.0, 7.4)]  # one hit (within 0.5 s), one insertion
    result = stream_eval.dcase_event_metrics([(refs, dets, 12.0)], ["x"])
    # tp 1, fp 1, fn 2: precision 1/2, recall 1/3, F1 0.4; class-wise ER = (deletions + insertions) / N = 3 / 3
    assert result["overall"]["f1"] == pytest.approx(0.4)
    assert result["overall"]["precision"] == pytest.approx(0.5)
    assert result["overall"]["recall"] == pytest.approx(1 / 3)
    assert result["per_class"]["x"]["error_rate"] == pytest.approx(1.0)


def test_psds_perfect_scores_beat_random():
    hop = YAMNET.patch_hop_seconds
    starts = np.arange(200) * hop
    centres = starts + YAMNET.patch_window_seconds / 2
    refs = [(t, t + 1.0, "x") for t in (10.0, 30.0, 50.0, 70.0)]
    truth = np.array([[float(any(a - 0.3 <= c <= b + 0.3 for a, b, _ in refs))] for c in centres])
    noise = np.random.default_rng(0).random((200, 1))
    good = stream_eval.psds_score([(starts, truth, refs, 200 * hop + 0.5)], ["x"])["psds"]
    bad = stream_eval.psds_score([(starts, noise, refs, 200 * hop + 0.5)], ["x"])["psds"]
    assert good > 0.9 and bad < 0.5


# --- plot ----------------------------------------------------------------------------------------------

def test_plot_stream_writes_png(tmp_path):
    hop = YAMNET.patch_hop_seconds
    times = np.arange(40) * hop
    scores = np.stack([np.clip(np.sin(times / 3), 0, 1), 1 - np.clip(np.sin(times / 3), 0, 1)], axis=1)
    events = stream_eval.detect_events(times, scores, ["bell", "background"], {"bell": 0.6, "background": 0.5})
    path = tmp_path / "out" / "stream.png"
    stream_eval.plot_stream(path, times, scores, ["bell", "background"], [(2.0, 4.0, "bell"), (10.0, 11.0, "dog")],
                            {"bell": 0.6, "background": 0.5}, events, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["stream.png"]  # no temporary left behind


def test_stream_report_is_plain_data(tmp_path):
    import json

    hop = YAMNET.patch_hop_seconds
    times = np.arange(60) * hop
    bell = np.zeros(60)
    bell[[10, 11, 40]] = 0.9  # one hit (window centres ~5.3 s), one false alarm (~19.7 s)
    scores = np.stack([bell, 1 - bell], axis=1)
    labels, thresholds = ["bell", "background"], {"bell": 0.5, "background": 0.5}
    run = stream_eval.StreamRun(times, scores, stream_eval.detect_events(times, scores, labels, thresholds), 29.0)
    report = stream_eval.stream_report(run, [(5.0, 5.6, "bell"), (12.0, 13.0, "dog")], labels, thresholds)
    json.dumps(report)
    bell_report = report["per_class"]["bell"]
    assert list(report["per_class"]) == ["bell"]  # background never fires
    assert (bell_report["found"], bell_report["false_alarms"]) == (1, 1)
    assert report["unknown_labels"] == ["dog"]
    assert report["dcase"]["f1"] == pytest.approx(2 / 3)
    assert 0.0 <= report["psds"]["psds"] <= 1.0
    text = stream_eval.format_stream_report(report)
    assert "bell" in text and "50.0%" not in text and "100.0%" in text and "'dog'" in text
    assert "events start at: bell >= 0.5" in text
    report["min_frames"] = {"bell": 2, "background": 1}  # evaluate.py adds the windows it used
    assert "events start at: bell >= 0.5 in 2 window(s)" in stream_eval.format_stream_report(report)


def test_report_scores_psds_only_for_classes_with_labels():
    """A user labels only the doorbell in a recording; the model also knows the smoke alarm."""
    times = np.arange(40) * YAMNET.patch_hop_seconds
    scores = np.zeros((40, 3), np.float32)
    scores[10:13, 0] = 0.9  # the labelled doorbell
    scores[25:27, 1] = 0.8  # an alarm nobody labelled
    labels = ["doorbell", "smoke_alarm", "background"]
    thresholds = {label: 0.5 for label in labels}
    events = stream_eval.detect_events(times, scores, labels, thresholds, 1)
    run = stream_eval.StreamRun(times, scores, events, 20.0)
    report = stream_eval.stream_report(run, [(4.9, 6.2, "doorbell")], labels, thresholds)
    assert report["psds"]["classes"] == ["doorbell"] and report["psds"]["psds"] > 0
    assert report["per_class"]["doorbell"]["found"] == 1 and report["per_class"]["smoke_alarm"]["false_alarms"] == 1
    assert report["per_class"]["smoke_alarm"]["dcase"]["error_rate"] is None  # undefined without labels


def test_report_says_why_recall_and_dcase_f1_disagree():
    """A 6 s jingle found by an event that starts 3 s into it: recall counts it, DCASE's onset collar does not."""
    times = np.arange(60) * YAMNET.patch_hop_seconds
    jingle = np.zeros(60)
    jingle[[16, 17, 18, 19, 21]] = 0.9  # starts ~8.2 s (the jingle from 5 s), and again at ~10.6 s inside it
    scores = np.stack([jingle, 1 - jingle], axis=1)
    labels, thresholds = ["jingle", "background"], {"jingle": 0.5, "background": 0.5}
    run = stream_eval.StreamRun(times, scores, stream_eval.detect_events(times, scores, labels, thresholds), 29.0)
    report = stream_eval.stream_report(run, [(5.0, 11.0, "jingle")], labels, thresholds)
    jingle_report = report["per_class"]["jingle"]
    assert (jingle_report["recall"], jingle_report["duplicates"], report["dcase"]["f1"]) == (1.0, 1, 0.0)
    late, extra, psds = report["explain"]
    assert late.startswith("jingle: 1 of the 1 sounds found started their event more than 0.5 s") and "+3.16 s" in late
    assert extra.startswith("jingle: 1 extra event(s) inside labelled sounds") and psds.startswith("PSDS")
    assert "note: jingle: 1 of the 1 sounds" in stream_eval.format_stream_report(report)


def test_plot_marks_windows_above_the_threshold_that_started_nothing(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = []
    real_plot = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        if kwargs.get("mfc") == "none":
            drawn.append(list(args[0]))
        return real_plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    times = np.arange(20) * YAMNET.patch_hop_seconds
    bell = np.zeros(20)
    bell[[3, 10, 11]] = 0.9  # one window alone, then two in a row
    scores = np.stack([bell, 1 - bell], axis=1)
    labels, thresholds = ["bell", "background"], {"bell": 0.5, "background": 0.5}
    events = stream_eval.detect_events(times, scores, labels, thresholds, {"bell": 2, "background": 1})
    stream_eval.plot_stream(tmp_path / "stream.png", times, scores, labels, [], thresholds, events,
                            min_frames={"bell": 2, "background": 1})
    centre = YAMNET.patch_window_seconds / 2
    assert drawn[0] == [pytest.approx(times[3] + centre)]  # the lone window is marked; the pair made an event
