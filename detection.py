"""Live detection maths, TF-free: stream framing, per-class thresholds and the event state machine.

Detection returns data (event dicts); listen.py prints and publishes them. Times are seconds from
the start of the stream.
"""

import math
import re
from dataclasses import dataclass

import numpy as np

from class_map import ClassMapError, find_class_indices
from params import BACKGROUND_CLASS, HEALTH, LISTEN, LISTEN_WINDOW_SAMPLES, YAMNET


class DetectionError(Exception):
    """A threshold or class list the user got wrong; the message is one actionable line."""


class StreamFramer:
    """Cuts a 16 kHz stream, pushed in chunks of any size, into overlapping windows for YAMNet.

    A window starts every `hop_samples` and holds `window_samples` (the 0.96 s patch plus the STFT's
    15 ms tail), so window k scores like patch k of one YAMNet run over the whole stream.
    """

    def __init__(self, window_samples: int = LISTEN_WINDOW_SAMPLES, hop_samples: int = YAMNET.patch_hop_samples):
        if not 0 < hop_samples <= window_samples:
            raise ValueError(f"hop must be in 1..{window_samples} samples, got {hop_samples}")
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self.total_samples = 0                       # pushed so far
        self._buffer = np.zeros(0, dtype=np.float32)  # samples from _buffer_start on
        self._buffer_start = 0
        self._next_start = 0                          # first sample of the next window

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Append samples; return the windows now complete as [(first sample index, window (window_samples,))]."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        self.total_samples += len(samples)
        windows = []
        while self._next_start + self.window_samples <= self.total_samples:
            windows.append((self._next_start, self._slice(self._next_start)))
            self._next_start += self.hop_samples
        # samples no future window needs (flush may take the last window_samples of the stream)
        drop = max(0, min(self._next_start, self.total_samples - self.window_samples) - self._buffer_start)
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return windows

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """At the end of the stream, the windows that cover its last samples: as many as the tail
        patches YAMNet itself scores for a whole file (one more while a window starts more than
        window - hop samples before the end).

        A stream shorter than one window is zero-padded, as YAMNet pads a short clip. After full
        windows there is at most one more, and it is the stream's last `window_samples` samples
        (starting off the hop grid), not a zero-padded one: silence after the last sound of a
        recording looks to a classifier like that sound stopping, and fired false events at the
        ends of files."""
        tail = self.window_samples - self.hop_samples
        if self._next_start > 0:
            if self._next_start + tail >= self.total_samples:
                return []
            start = self.total_samples - self.window_samples
            self._next_start = self.total_samples
            return [(start, self._slice(start))]
        windows = []
        while self.total_samples and (self._next_start == 0 or self._next_start + tail < self.total_samples):
            window = self._slice(self._next_start)
            windows.append((self._next_start, np.pad(window, (0, self.window_samples - len(window)))))
            self._next_start += self.hop_samples
        return windows

    def _slice(self, start: int) -> np.ndarray:
        i = start - self._buffer_start
        return self._buffer[i:i + self.window_samples]


def _class_key(name: str) -> str:
    """Case- and spacing-insensitive form of a class name ('smoke detector ,Smoke alarm' matches)."""
    return re.sub(r"\s*,\s*", ", ", name.strip().lower())


def parse_class_list(text: str, names: list[str]) -> list[str]:
    """'Bicycle bell,Smoke detector, smoke alarm' -> ['Bicycle bell', 'Smoke detector, smoke alarm'].

    Commas separate names, but AudioSet names may contain commas, so the longest run of pieces
    that is a class name wins. An unknown name raises ClassMapError with a "did you mean" hint.
    """
    by_key = {_class_key(name): name for name in names}
    pieces = text.split(",")
    chosen, i = [], 0
    while i < len(pieces):
        if not pieces[i].strip():
            i += 1
            continue
        for j in range(len(pieces), i, -1):
            name = by_key.get(_class_key(",".join(pieces[i:j])))
            if name is not None:
                if name not in chosen:
                    chosen.append(name)
                i = j
                break
        else:
            find_class_indices(names, [pieces[i]])  # raises with a hint
    if not chosen:
        raise ClassMapError("no class names given: --classes 'Bicycle bell,Smoke detector, smoke alarm'")
    return chosen


def _probability(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise DetectionError(f"{what} {text!r} must be a number from 0 to 1")
    return value


def _label_for(name: str, labels: list[str], what: str) -> str:
    try:
        return labels[find_class_indices(labels, [name])[0]]
    except ClassMapError as e:
        raise DetectionError(f"{what}: {e} (labels: {', '.join(labels)})") from e


def parse_thresholds(specs: list[str], labels: list[str], model_thresholds: dict | None = None,
                     default: float = LISTEN.threshold) -> dict[str, float]:
    """{label: threshold} from --threshold specs ('0.6' for all, 'glass_break=0.8' for one) and a
    model's own `thresholds` from model.json. Most specific wins: a label's --threshold, then
    the model's value for it, then the bare --threshold, then `default`."""
    per_label, model_values = {}, {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if not sep:
            default = _probability(spec, "--threshold")
        else:
            per_label[_label_for(name, labels, f"--threshold {spec!r}")] = _probability(value, f"--threshold {spec!r}:")
    for name, value in (model_thresholds or {}).items():
        model_values[_label_for(name, labels, "model.json thresholds")] = _probability(str(value), f"model.json threshold for {name!r}:")
    return {label: per_label.get(label, model_values.get(label, default)) for label in labels}


def parse_min_frames(given: int | None, labels: list[str], model_min_frames: dict | None = None) -> dict[str, int]:
    """{label: windows to start/end an event}: `given` (--min-frames) for every label, else the model's
    operating point (model.json "min_frames"), else LISTEN.min_frames."""
    if given is not None:
        return {label: given for label in labels}
    values = {}
    for name, value in (model_min_frames or {}).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DetectionError(f"model.json min_frames for {name!r} must be a whole number >= 1, got {value!r}; "
                                 f"retrain with python train.py")
        values[_label_for(name, labels, "model.json min_frames")] = value
    return {label: values.get(label, LISTEN.min_frames) for label in labels}


def can_fire(label: str) -> bool:
    """Every label but `background` (the "none of my sounds" class) can start events."""
    return label.lower() != BACKGROUND_CLASS


@dataclass
class _LabelState:
    active: bool = False
    run: int = 0                  # consecutive windows on the other side of the threshold
    start_s: float = 0.0          # start of the run (idle) or of the event (active)
    last_above_s: float = 0.0     # centre of the last window at/above threshold
    peak: float = 0.0
    quiet_until_s: float = -math.inf  # cooldown: no new start before this


class EventDetector:
    """Per-label hysteresis on window scores: an event starts after `min_frames` windows at or above
    the label's threshold and ends after as many below; `cooldown_s` after an end the label stays quiet.

    An event's start and end offsets are the centres of its first and last window at or above
    threshold: a 0.96 s window sees a sound anywhere in it, so they are good to about one hop.
    Labels named `background` never fire.
    """

    def __init__(self, labels: list[str], thresholds: dict[str, float], min_frames: int = LISTEN.min_frames,
                 cooldown_s: float = LISTEN.cooldown_seconds, window_s: float = YAMNET.patch_window_seconds,
                 label_cooldowns: dict[str, float] | None = None, label_min_frames: dict[str, int] | None = None):
        """`label_cooldowns` and `label_min_frames` override `cooldown_s` and `min_frames` for some labels
        (a model's operating point); `window_s` = 0 takes the times given to `update` as they are (for
        matchers that know when a sound is, not a window that holds it)."""
        self.labels = list(labels)
        self.thresholds = [thresholds[label] for label in self.labels]
        self.min_frames = [(label_min_frames or {}).get(label, min_frames) for label in self.labels]
        if min(self.min_frames, default=1) < 1:
            raise ValueError("min_frames must be at least 1")
        self.cooldowns = [(label_cooldowns or {}).get(label, cooldown_s) for label in self.labels]
        self.window_s = window_s
        self._states = [_LabelState() if can_fire(label) else None for label in self.labels]

    @property
    def firing_labels(self) -> list[str]:
        """The labels that can produce events (all but background)."""
        return [label for label, state in zip(self.labels, self._states) if state is not None]

    def update(self, window_start_s: float, scores) -> list[dict]:
        """Feed one window's scores (one per label, in `labels` order); return the events it completes."""
        centre = window_start_s + self.window_s / 2
        events = []
        for label, threshold, min_frames, state, score in zip(self.labels, self.thresholds, self.min_frames,
                                                              self._states, scores):
            if state is None:
                continue
            score = float(score)
            above = score >= threshold
            if not state.active:
                if not above or centre < state.quiet_until_s - 1e-9:
                    state.run = 0
                    continue
                if state.run == 0:
                    state.start_s, state.peak = centre, score
                state.run += 1
                state.peak = max(state.peak, score)
                state.last_above_s = centre
                if state.run >= min_frames:
                    state.active, state.run = True, 0
                    events.append(_event("start", label, state.peak, state.start_s))
            elif above:
                state.run = 0
                state.peak = max(state.peak, score)
                state.last_above_s = centre
            else:
                state.run += 1
                if state.run >= min_frames:
                    events.append(self._end(label, state))
        return events

    def finish(self) -> list[dict]:
        """End of stream (or shutdown): end every event still on, so each start has its end."""
        return [self._end(label, state) for label, state in zip(self.labels, self._states) if state and state.active]

    def _end(self, label: str, state: _LabelState) -> dict:
        event = _event("end", label, state.peak, state.last_above_s)
        event["duration_s"] = round(state.last_above_s - state.start_s, 3)
        state.active, state.run = False, 0
        state.quiet_until_s = state.last_above_s + self.cooldowns[self.labels.index(label)]
        return event


class LevelMeter:
    """The level of a stream, in dBFS, once per `every_samples` of audio (a live listener's "what does it
    hear" sensor): push chunks, get the levels of the periods they complete."""

    def __init__(self, every_samples: int):
        self.every = every_samples
        self._sum, self._count = 0.0, 0

    def push(self, samples: np.ndarray) -> list[float]:
        levels = []
        samples = np.asarray(samples, dtype=np.float64)
        while len(samples):
            take = samples[:self.every - self._count]
            self._sum += float(np.square(take).sum())
            self._count += len(take)
            samples = samples[len(take):]
            if self._count == self.every:
                mean = self._sum / self._count
                levels.append(round(max(10 * math.log10(mean), HEALTH.floor_dbfs), 1) if mean > 0 else HEALTH.floor_dbfs)
                self._sum, self._count = 0.0, 0
        return levels


class SensorStates:
    """One ON/OFF state per label, whatever method heard it: a label that is both a trained class and a
    fingerprinted sound is ON while either method has an event on, OFF only when neither has.

    `update` takes each event as it is emitted and returns the label's new state when it changed, else
    None, so a publisher sends a state only when Home Assistant's binary sensor should change."""

    def __init__(self, labels=()):
        self._on = {label: set() for label in labels}  # label -> methods with an event on

    def update(self, event: dict) -> str | None:
        methods = self._on.setdefault(event["label"], set())
        was_on = bool(methods)
        if event["event"] == "start":
            methods.add(event.get("method"))
        else:
            methods.discard(event.get("method"))
        return None if bool(methods) == was_on else ("ON" if methods else "OFF")

    def state(self, label: str) -> str:
        return "ON" if self._on.get(label) else "OFF"


def _event(kind: str, label: str, score: float, offset_s: float) -> dict:
    return {"event": kind, "label": label, "score": round(score, 4), "offset_s": round(offset_s, 3)}


def event_spans(scores: np.ndarray, threshold: float, min_frames: int) -> list[tuple[int, int]]:
    """The events EventDetector would raise on one label's window scores, as (first, last) indices of
    their windows at or above the threshold: `min_frames` windows in a row at or above it start one
    (from the first of them), as many below end it; an event still open at the end ends there."""
    above = np.asarray(scores) >= threshold
    if not above.any():
        return []
    edges = np.flatnonzero(np.diff(above.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [len(above)]]))
    spans, first, last = [], None, None
    for start, length in zip(starts, lengths):
        if above[start]:
            if first is None and length >= min_frames:
                first = int(start)
            if first is not None:
                last = int(start + length - 1)
        elif first is not None and length >= min_frames:
            spans.append((first, last))
            first = None
    if first is not None:
        spans.append((first, last))
    return spans


def count_events(scores: np.ndarray, threshold: float, min_frames: int) -> int:
    """How many events EventDetector would start on one label's window scores (see event_spans)."""
    return len(event_spans(scores, threshold, min_frames))
