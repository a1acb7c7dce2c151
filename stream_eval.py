"""Detection measured on streams: labelled recordings in, recall / false alarms per hour / latency out.

TF-free at import. The pieces, in the order evaluate.py --stream would use them:

    references = read_audacity_labels("recording.txt")           # [(start_s, end_s, label)]
    run = score_stream(waveform, scorer, labels, thresholds)     # per-window scores + events, as listen.py
    report = stream_report(run, references, labels, thresholds)  # counts, DCASE F1/ER, PSDS: plain data
    print(format_stream_report(report))
    plot_stream("stream.png", run.times_s, run.scores, labels, references, thresholds, run.events)

Underneath: pair_events (start/end dicts -> Detection), match_events / pool_counts (our counts),
dcase_event_metrics (sed_eval), psds_score (sed_scores_eval), detect_events (scores already computed).

How a detection is matched (`match_events`), with collar c (COLLAR_S, 0.5 s: YAMNet's 0.96 s window
places a sound only to about one hop):
- a reference (start, end, label) is *found* when a detection of its label has its onset in
  [start - c, end + c]; each detection finds at most one reference (earliest first);
- a detection that finds nothing and whose span [onset, offset] misses every [start - c, end + c]
  of its label is a *false alarm*; one that finds nothing but overlaps a collared reference (a second
  detection of one sound, or one that started too early) is a *duplicate* (counted, not a false alarm);
- false alarms per hour divide by the time *outside* that label's collared references;
- latency is when the listener could have announced the event (`emitted_s`: end of the window that
  completed the start) minus the reference's start; without `emitted_s`, the detection's onset.

The DCASE numbers come from sed_eval (event-based F1 and error rate, onset-only by default, with
t_collar DCASE_T_COLLAR_S) and sed_scores_eval (PSDS from the raw per-window scores, threshold-free).
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from params import LISTEN, LISTEN_WINDOW_SAMPLES, SAMPLE_RATE, YAMNET

COLLAR_S = 0.5            # seconds either side of a reference within which a detection onset counts
DCASE_T_COLLAR_S = 0.5    # sed_eval's onset collar; DCASE uses 0.2 s, but our onsets are window centres (±0.48 s)
# PSDS scenario (sed_scores_eval): DCASE "scenario 2"-like tolerances suit 0.96 s windows; false
# positive rate per hour up to PSDS_MAX_EFPR.
PSDS_DTC, PSDS_GTC, PSDS_MAX_EFPR = 0.1, 0.1, 100.0


class LabelsError(Exception):
    """A labels file that cannot be read; the message names the file and line."""


# --- Audacity labels ---------------------------------------------------------------------------------

def read_audacity_labels(path) -> list[tuple[float, float, str]]:
    """Audacity label-track export -> [(start_s, end_s, label)] in file order.

    Lines are `start<TAB>end<TAB>label` (label may be empty; start == end is a point label).
    Also accepted: the extended format's frequency lines (`\\<TAB>low_hz<TAB>high_hz`, ignored),
    Audacity 1.2's `start<TAB>label` point labels, blank lines, and CRLF endings.
    A malformed line raises LabelsError naming the file and line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise LabelsError(f"{path}: no such labels file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise LabelsError(f"{path}: cannot read labels ({e})") from e
    labels = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if fields[0].strip() == "\\":  # frequency range of the label above
            continue
        where = f"{path}, line {number}"
        start = _seconds(fields[0], where, "start")
        if len(fields) == 1:
            raise LabelsError(f"{where}: expected start<TAB>end<TAB>label, got {line.strip()!r}")
        end = _number(fields[1])
        if end is None and len(fields) > 2:  # start<TAB>???<TAB>label: a broken end time, not Audacity 1.2
            raise LabelsError(f"{where}: end time {fields[1].strip()!r} is not a number of seconds >= 0")
        if end is None:  # Audacity 1.2: start<TAB>label, a point label
            end, text_label = start, fields[1]
        else:
            end = _seconds(fields[1], where, "end")
            text_label = "\t".join(fields[2:])
        if end < start:
            raise LabelsError(f"{where}: end {end:g} s is before start {start:g} s")
        labels.append((start, end, text_label.strip()))
    return labels


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _seconds(text: str, where: str, what: str) -> float:
    value = _number(text)
    if value is None or value < 0:
        raise LabelsError(f"{where}: {what} time {text.strip()!r} is not a number of seconds >= 0")
    return value


# --- detections --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Detection:
    """One event from start to end: onset/offset are the centres of its first and last window
    at or above threshold (as listen.py reports them); emitted_s is when the start was announced."""

    label: str
    onset_s: float
    offset_s: float
    score: float = 1.0
    emitted_s: float | None = None


def pair_events(events: list[dict]) -> list[Detection]:
    """EventDetector's start/end dicts (in emission order) -> one Detection per start.
    A start without an end (a stream cut short) ends at its own onset."""
    open_starts, detections = {}, []
    for event in events:
        label = event["label"]
        if event["event"] == "start":
            open_starts[label] = event
        elif event["event"] == "end" and label in open_starts:
            start = open_starts.pop(label)
            detections.append(Detection(label, start["offset_s"], event["offset_s"], event["score"],
                                        start.get("emitted_s")))
    for start in open_starts.values():
        detections.append(Detection(start["label"], start["offset_s"], start["offset_s"], start["score"],
                                    start.get("emitted_s")))
    return sorted(detections, key=lambda d: (d.onset_s, d.label))


# --- our own counts: recall, false alarms per hour, latency ----------------------------------------------

@dataclass
class ClassCounts:
    """Counts for one class over one or more streams; add two with `+` to pool streams."""

    references: int = 0
    found: int = 0
    detections: int = 0
    false_alarms: int = 0
    duplicates: int = 0
    background_s: float = 0.0                       # audio outside this class's collared references
    latencies_s: list = field(default_factory=list)  # one per found reference

    def __add__(self, other: "ClassCounts") -> "ClassCounts":
        return ClassCounts(self.references + other.references, self.found + other.found,
                           self.detections + other.detections, self.false_alarms + other.false_alarms,
                           self.duplicates + other.duplicates, self.background_s + other.background_s,
                           self.latencies_s + other.latencies_s)

    @property
    def recall(self) -> float | None:
        return self.found / self.references if self.references else None

    @property
    def false_per_hour(self) -> float | None:
        return 3600.0 * self.false_alarms / self.background_s if self.background_s > 0 else None

    @property
    def median_latency_s(self) -> float | None:
        return float(np.median(self.latencies_s)) if self.latencies_s else None

    def as_dict(self) -> dict:
        return {"references": self.references, "found": self.found, "recall": self.recall,
                "detections": self.detections, "false_alarms": self.false_alarms, "duplicates": self.duplicates,
                "background_hours": self.background_s / 3600.0, "false_per_hour": self.false_per_hour,
                "median_latency_s": self.median_latency_s}


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def match_events(references, detections: list[Detection], duration_s: float, labels,
                 collar_s: float = COLLAR_S) -> dict[str, ClassCounts]:
    """{label: ClassCounts} for one stream of `duration_s` seconds (see the module docstring).

    references: [(start_s, end_s, label)]; labels: the classes to count (others are ignored).
    """
    counts = {}
    for label in labels:
        refs = sorted((a, b) for a, b, name in references if name == label)
        dets = sorted((d for d in detections if d.label == label), key=lambda d: d.onset_s)
        spans = [(max(0.0, a - collar_s), min(duration_s, b + collar_s)) for a, b in refs]
        c = ClassCounts(references=len(refs), detections=len(dets),
                        background_s=max(0.0, duration_s - _union_length(spans)))
        used = set()
        for (a, b), (lo, hi) in zip(refs, spans):
            for i, d in enumerate(dets):
                if i not in used and a - collar_s <= d.onset_s <= b + collar_s:
                    used.add(i)
                    c.found += 1
                    c.latencies_s.append((d.emitted_s if d.emitted_s is not None else d.onset_s) - a)
                    break
        for i, d in enumerate(dets):
            if i in used:
                continue
            if any(d.onset_s <= hi and d.offset_s >= lo for lo, hi in spans):
                c.duplicates += 1
            else:
                c.false_alarms += 1
        counts[label] = c
    return counts


def pool_counts(per_stream: list[dict[str, ClassCounts]]) -> dict[str, ClassCounts]:
    """Sum per-class counts over streams: recall and rates of the pooled audio."""
    pooled = {}
    for counts in per_stream:
        for label, c in counts.items():
            pooled[label] = pooled.get(label, ClassCounts()) + c
    return pooled


# --- DCASE metrics, by the libraries ------------------------------------------------------------------------

def dcase_event_metrics(streams, labels, t_collar: float = DCASE_T_COLLAR_S, evaluate_offset: bool = False,
                        percentage_of_length: float = 0.5) -> dict:
    """sed_eval event-based metrics pooled over streams [(references, detections, duration_s)]:
    {"overall": {f1, precision, recall, error_rate}, "per_class": {label: {...}}}; None where undefined."""
    import sed_eval

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(labels), t_collar=t_collar, evaluate_onset=True,
        evaluate_offset=evaluate_offset, percentage_of_length=percentage_of_length)
    for number, (references, detections, _duration_s) in enumerate(streams):  # event-based: no length needed
        name = f"stream{number}"
        ref = [{"filename": name, "event_label": label, "onset": a, "offset": max(b, a + 1e-3)}
               for a, b, label in references if label in labels]
        est = [{"filename": name, "event_label": d.label, "onset": d.onset_s, "offset": max(d.offset_s, d.onset_s + 1e-3)}
               for d in detections if d.label in labels]
        metrics.evaluate(ref, est)

    def clean(value):  # undefined (no reference events: 0/0, or sed_eval's huge error rates) -> None
        value = float(value)
        return value if math.isfinite(value) and abs(value) < 1e6 else None

    with warnings.catch_warnings():  # sed_eval averages empty per-class lists ("Mean of empty slice")
        warnings.simplefilter("ignore", RuntimeWarning)
        results = metrics.results()
    overall = results["overall"]
    out = {"overall": {"f1": clean(overall["f_measure"]["f_measure"]),
                       "precision": clean(overall["f_measure"]["precision"]),
                       "recall": clean(overall["f_measure"]["recall"]),
                       "error_rate": clean(overall["error_rate"]["error_rate"])},
           "per_class": {}, "t_collar": t_collar, "evaluate_offset": evaluate_offset}
    for label, r in results["class_wise"].items():
        out["per_class"][label] = {"f1": clean(r["f_measure"]["f_measure"]), "precision": clean(r["f_measure"]["precision"]),
                                   "recall": clean(r["f_measure"]["recall"]), "error_rate": clean(r["error_rate"]["error_rate"])}
    return out


def window_timestamps(window_starts_s: np.ndarray, hop_s: float = YAMNET.patch_hop_seconds,
                      window_s: float = YAMNET.patch_window_seconds) -> np.ndarray:
    """(n,) window starts -> (n + 1,) boundaries of non-overlapping score frames: each window's score
    is given to the hop-long stretch around its centre."""
    centres = np.asarray(window_starts_s, np.float64) + window_s / 2
    return np.concatenate([centres - hop_s / 2, centres[-1:] + hop_s / 2]).clip(min=0.0)


def psds_score(streams, labels, dtc: float = PSDS_DTC, gtc: float = PSDS_GTC, max_efpr: float = PSDS_MAX_EFPR) -> dict:
    """Threshold-independent PSDS (sed_scores_eval, intersection-based) from raw per-window scores,
    pooled over streams [(window_starts_s (n,), scores (n, len(labels)), references, duration_s)].
    Returns {"psds": float, "per_class": {label: float}, dtc, gtc, max_efpr}."""
    from sed_scores_eval import intersection_based
    from sed_scores_eval.base_modules.scores import create_score_dataframe

    labels = list(labels)
    scores, truth, durations = {}, {}, {}
    for number, (starts, values, references, duration_s) in enumerate(streams):
        name = f"stream{number}"
        stamps = window_timestamps(starts)
        stamps[-1] = max(stamps[-1], stamps[-2] + 1e-3)
        scores[name] = create_score_dataframe(np.asarray(values, np.float64), stamps, labels)
        truth[name] = [(a, max(b, a + 1e-3), label) for a, b, label in references if label in labels]
        durations[name] = max(duration_s, float(stamps[-1]))
    value, per_class, *_ = intersection_based.psds(
        scores=scores, ground_truth=truth, audio_durations=durations, dtc_threshold=dtc, gtc_threshold=gtc,
        cttc_threshold=None, alpha_ct=0.0, alpha_st=0.0, unit_of_time="hour", max_efpr=max_efpr)
    return {"psds": float(value), "per_class": {k: float(v) for k, v in per_class.items()},
            "dtc": dtc, "gtc": gtc, "max_efpr": max_efpr}


# --- running the detector over a waveform ----------------------------------------------------------

@dataclass
class StreamRun:
    """What one pass of the detector over a stream produced."""

    times_s: np.ndarray      # (windows,) start of each window, seconds
    scores: np.ndarray       # (windows, labels) scores, one row per window
    events: list             # EventDetector start/end dicts, each with emitted_s
    duration_s: float


class _RecordingDetector:
    """Wraps an EventDetector for live.run: keeps every window's scores and stamps each event with
    the time its window ended (when a live listener would have announced it)."""

    def __init__(self, detector, window_s: float):
        self.detector, self.window_s = detector, window_s
        self.starts, self.rows = [], []

    def update(self, window_start_s, scores):
        self.starts.append(window_start_s)
        self.rows.append(np.asarray(scores, np.float32))
        return [dict(e, emitted_s=round(window_start_s + self.window_s, 3)) for e in self.detector.update(window_start_s, scores)]

    def finish(self):
        end = self.starts[-1] + self.window_s if self.starts else 0.0
        return [dict(e, emitted_s=round(end, 3)) for e in self.detector.finish()]


def event_detector(labels: list[str], thresholds: dict[str, float], min_frames: int | dict, cooldown_s: float):
    """listen.py's EventDetector; `min_frames` one number or {label: windows} (a model's operating point)."""
    from detection import EventDetector

    if isinstance(min_frames, dict):
        return EventDetector(labels, thresholds, LISTEN.min_frames, cooldown_s, label_min_frames=min_frames)
    return EventDetector(labels, thresholds, min_frames, cooldown_s)


def score_stream(waveform: np.ndarray, scorer, labels: list[str], thresholds: dict[str, float],
                 min_frames: int | dict = LISTEN.min_frames, cooldown_s: float = LISTEN.cooldown_seconds,
                 hop_samples: int = YAMNET.patch_hop_samples) -> StreamRun:
    """Run a 16 kHz waveform through listen.py's own loop (live.run with a YamnetListener:
    StreamFramer -> scorer -> EventDetector), in LISTEN.chunk_seconds chunks as a file source would. `scorer(windows (k, 15600)) -> (k, labels)`."""
    from audio_source import Source
    from detection import StreamFramer
    from live import YamnetListener, run

    waveform = np.asarray(waveform, np.float32)
    step = max(1, round(SAMPLE_RATE * LISTEN.chunk_seconds))
    source = Source("waveform", (waveform[i:i + step] for i in range(0, len(waveform), step)))
    detector = _RecordingDetector(event_detector(labels, thresholds, min_frames, cooldown_s),
                                  LISTEN_WINDOW_SAMPLES / SAMPLE_RATE)
    events = []
    listener = YamnetListener(lambda window: np.asarray(scorer(window[None]))[0], detector,
                              StreamFramer(hop_samples=hop_samples))
    run(source, [listener], events.append)
    scores = np.stack(detector.rows) if detector.rows else np.zeros((0, len(labels)), np.float32)
    return StreamRun(np.array(detector.starts), scores, events, len(waveform) / SAMPLE_RATE)


def detect_events(times_s: np.ndarray, scores: np.ndarray, labels: list[str], thresholds: dict[str, float],
                  min_frames: int | dict = LISTEN.min_frames, cooldown_s: float = LISTEN.cooldown_seconds) -> list[dict]:
    """EventDetector over scores already computed (e.g. from one YAMNet run over a whole stream):
    the same events score_stream gives for the same per-window scores, each with emitted_s."""
    detector = _RecordingDetector(event_detector(labels, thresholds, min_frames, cooldown_s),
                                  LISTEN_WINDOW_SAMPLES / SAMPLE_RATE)
    events = []
    for start, row in zip(times_s, scores):
        events += detector.update(float(start), row)
    return events + detector.finish()


# --- report ------------------------------------------------------------------------------------------

def stream_report(run: StreamRun, references, labels: list[str], thresholds: dict[str, float],
                  collar_s: float = COLLAR_S, dcase: bool = True, psds: bool = True) -> dict:
    """Everything evaluate.py --stream prints, as plain data (JSON-ready): per firing class our counts
    plus sed_eval's F1 / error rate, overall DCASE and PSDS, the events, reference labels that are
    not classes of the model (their spans still count as background for every class), and `explain`:
    sentences saying why recall, DCASE F1 and PSDS disagree where they do."""
    from detection import can_fire

    firing = [label for label in labels if can_fire(label)]
    detections = pair_events(run.events)
    counts = match_events(references, detections, run.duration_s, firing, collar_s)
    report = {"duration_s": run.duration_s, "windows": len(run.times_s), "collar_s": collar_s,
              "thresholds": {label: thresholds[label] for label in firing},
              "per_class": {label: c.as_dict() for label, c in counts.items()},
              "unknown_labels": sorted({name for _, _, name in references if name not in labels}),
              "events": [d.__dict__ for d in detections]}
    if dcase:
        metrics = dcase_event_metrics([(references, detections, run.duration_s)], firing)
        report["dcase"] = metrics["overall"]
        for label in firing:
            report["per_class"][label]["dcase"] = metrics["per_class"][label]
    labelled = [label for label in firing if any(name == label for _, _, name in references)]
    if psds and len(run.times_s) and labelled:  # PSDS needs reference events of every class it scores
        columns = [labels.index(label) for label in labelled]
        report["psds"] = psds_score([(run.times_s, run.scores[:, columns], references, run.duration_s)], labelled)
        report["psds"]["classes"] = labelled
    report["explain"] = explain(report, references, detections, firing, collar_s)
    return report


def explain(report: dict, references, detections: list[Detection], labels: list[str], collar_s: float) -> list[str]:
    """Why the three figures can disagree, with this stream's numbers: recall counts a sound found when an
    event starts anywhere from `collar_s` before it to `collar_s` after its end; DCASE F1 only when the event
    starts within DCASE_T_COLLAR_S of the labelled start, and counts a second event in one sound against
    precision; PSDS judges the raw scores at every threshold, not the operating point."""
    lines = []
    for label in labels:
        counts = report["per_class"][label]
        refs = sorted((a, b) for a, b, name in references if name == label)
        dets = sorted((d for d in detections if d.label == label), key=lambda d: d.onset_s)
        late = []
        for a, b in refs:
            onsets = [d.onset_s for d in dets if a - collar_s <= d.onset_s <= b + collar_s]
            if onsets and abs(onsets[0] - a) > DCASE_T_COLLAR_S:
                late.append(onsets[0] - a)
        if late:
            lines.append(f"{label}: {len(late)} of the {counts['found']} sounds found started their event more than "
                         f"{DCASE_T_COLLAR_S:g} s from the labelled start (median {np.median(late):+.2f} s): recall "
                         f"counts them, DCASE F1 does not (it scores when an event starts, and a long sound's event "
                         f"can start well inside it)")
        if counts["duplicates"]:
            lines.append(f"{label}: {counts['duplicates']} extra event(s) inside labelled sounds: not false alarms, "
                         f"but DCASE counts them against precision")
    if "psds" in report:
        lines.append(f"PSDS ({report['psds']['psds']:.2f}) sweeps every threshold over the raw window scores: it says "
                     f"how well the scores separate your sounds from the rest, not how the threshold and windows in "
                     f"use do (recall and false alarms above are those)")
    return lines


def format_stream_report(report: dict) -> str:
    """stream_report as text: one line per class (references, found, recall, false alarms and their
    rate per hour of background, median latency, DCASE F1), then DCASE overall and PSDS."""
    per_class = report["per_class"]
    width = max([5] + [len(label) for label in per_class])
    lines = [f"{report['duration_s'] / 60:.1f} min of audio, {report['windows']} windows, collar ±{report['collar_s']:g} s",
             f"{'class':{width}s}  refs  found  recall  false  false/h  background h  latency  DCASE F1"]
    for label, c in per_class.items():
        f1 = (c.get("dcase") or {}).get("f1")
        lines.append(
            f"{label:{width}s}  {c['references']:4d}  {c['found']:5d}  {_fmt(c['recall'], '{:6.1%}')}  {c['false_alarms']:5d}  "
            f"{_fmt(c['false_per_hour'], '{:7.1f}')}  {c['background_hours']:12.3f}  {_fmt(c['median_latency_s'], '{:5.2f} s')}  "
            f"{_fmt(f1, '{:8.1%}')}")
    if "dcase" in report:
        d = report["dcase"]
        lines.append(f"DCASE event-based (sed_eval, onset ±{DCASE_T_COLLAR_S:g} s): F1 {_fmt(d['f1'], '{:.1%}')}, "
                     f"error rate {_fmt(d['error_rate'], '{:.2f}')}")
    if "psds" in report:
        p = report["psds"]
        lines.append(f"PSDS (sed_scores_eval, dtc {p['dtc']:g}, gtc {p['gtc']:g}, up to {p['max_efpr']:g} false/h): {p['psds']:.3f}")
    if report.get("unknown_labels"):
        lines.append(f"labels that are not classes of the model (counted as background): {', '.join(map(repr, report['unknown_labels']))}")
    lines += [f"note: {line}" for line in report.get("explain", [])]
    windows = report.get("min_frames")
    lines.append("events start at: " + ", ".join(
        f"{label} >= {threshold:.6g}" + (f" in {windows[label]} window(s)" if isinstance(windows, dict) else "")
        for label, threshold in report["thresholds"].items()))
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    width = len(spec.format(0.0))
    return "-".rjust(width) if value is None else spec.format(value)


def plot_stream(path, times_s, scores, labels, references, thresholds: dict[str, float], events: list[dict],
                window_s: float = YAMNET.patch_window_seconds, title: str | None = None,
                min_frames: dict | None = None) -> None:
    """PNG of one stream: per firing class, the score at each window centre, labelled spans shaded,
    the threshold dashed, detected events as bars with start markers (false alarms in red), windows at
    or above the threshold that started nothing (fewer in a row than `min_frames` asks) as hollow
    circles, and found / false-alarm counts and the rule in each panel's title. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from atomic_write import atomic_output
    from detection import can_fire, event_spans

    shown = [i for i, label in enumerate(labels) if can_fire(label)] or list(range(len(labels)))
    min_frames = min_frames or {}
    centres = np.asarray(times_s, np.float64) + window_s / 2
    scores = np.asarray(scores, np.float64).reshape(len(centres), len(labels))
    end = max([float(centres[-1]) + window_s / 2 if len(centres) else 1.0] + [b for _, b, _ in references])
    detections = pair_events(events)
    counts = match_events(references, detections, end, [labels[i] for i in shown])
    fig, axes = plt.subplots(len(shown), 1, figsize=(min(24.0, max(10.0, end / 6)), 1.2 + 2.2 * len(shown)),
                             sharex=True, squeeze=False, layout="constrained")
    try:
        for ax, i in zip(axes[:, 0], shown):
            label = labels[i]
            others = [(a, b, name) for a, b, name in references if name and name != label]
            for a, b, name in references:
                if name == label:
                    ax.axvspan(a, max(b, a + 0.05), color="tab:green", alpha=0.3, lw=0)
            for a, b, name in others:
                ax.axvspan(a, max(b, a + 0.05), color="0.8", alpha=0.6, lw=0)
                if len(others) <= 40:  # names of many short spans would run into one grey bar
                    ax.text((a + b) / 2, 0.97, name, ha="center", va="top", fontsize=7, color="0.35", clip_on=True)
            ax.plot(centres, scores[:, i], color="tab:blue", lw=1.2, marker="." if len(centres) < 300 else None, ms=3)
            threshold, windows = thresholds.get(label, LISTEN.threshold), min_frames.get(label, LISTEN.min_frames)
            ax.axhline(threshold, color="tab:red", ls="--", lw=1)
            in_events = np.zeros(len(centres), bool)
            for a, b in event_spans(scores[:, i], threshold, windows):
                in_events[a:b + 1] = True
            idle = (scores[:, i] >= threshold) & ~in_events
            ax.plot(centres[idle], scores[idle, i], ls="none", marker="o", mfc="none", mec="tab:purple", ms=6)
            spans = [(a - COLLAR_S, b + COLLAR_S) for a, b, name in references if name == label]
            for d in detections:
                if d.label == label:
                    false = not any(d.onset_s <= hi and d.offset_s >= lo for lo, hi in spans)
                    colour = "tab:red" if false else "tab:orange"
                    ax.hlines(1.08, d.onset_s, max(d.offset_s, d.onset_s + 0.1), color=colour, lw=5)
                    ax.plot([d.onset_s], [1.08], marker="v", color=colour, ms=7)
            c = counts[label]
            ax.set_title(f"{label}: {c.found} of {c.references} labelled found, {c.false_alarms} false alarm(s); an "
                         f"event starts after {windows} window(s) in a row at or above {threshold:.4g}", loc="left",
                         fontsize=9)
            ax.set_ylim(-0.02, 1.15)
            ax.set_ylabel("score")
            ax.grid(axis="x", alpha=0.3)
        axes[-1, 0].set_xlim(0, end)
        axes[-1, 0].set_xlabel("time (s)")
        handles = [plt.Rectangle((0, 0), 1, 1, color="tab:green", alpha=0.3), plt.Rectangle((0, 0), 1, 1, color="0.8"),
                   plt.Line2D([], [], color="tab:blue"), plt.Line2D([], [], color="tab:red", ls="--"),
                   plt.Line2D([], [], color="tab:orange", lw=5, marker="v"), plt.Line2D([], [], color="tab:red", lw=5, marker="v"),
                   plt.Line2D([], [], ls="none", marker="o", mfc="none", mec="tab:purple")]
        fig.legend(handles, ["labelled (this class)", "labelled (other)", "score per window", "threshold",
                             "detected event (▼ start)", "false alarm", "above the threshold, too few in a row"],
                   loc="outside lower center", ncol=7, fontsize=8, frameon=False)
        if title:
            fig.suptitle(title, fontsize=10)
        with atomic_output(Path(path)) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
