"""Streams as training data: clips spliced into background recordings, background windows as
negatives, hard-negative mining, and an operating point per class (threshold, windows) chosen by
cross-fitting to meet a false-alarm budget. Used by train.py when it has background recordings.

TF-free: YAMNet comes in as an object with `run` (and `embed_many`), the head as a `fit(x, y)`
callable returning (model with `frame_probabilities`, history), so the pure parts test in milliseconds.
Why: a head trained on isolated clips misses the same sound inside a stream and fires on the stream's
other sounds; the listener's windows are what it must learn, and its false alarms per hour are what
users judge it by (bench/stream.py measures each step).
"""

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

import augment
from detection import StreamFramer
from params import CLIP, SAMPLE_RATE, STREAM, YAMNET

WINDOW_BATCH = 256  # windows embedded per YAMNet call (bounds memory: 256 log-mel patches)
MEMORY_CACHE_SECONDS = 20.0  # recordings longer than this (not spliced excerpts) stay embedded in memory


# --- the listener's windows, embedded ----------------------------------------------------------------

def listener_windows(waveform: np.ndarray) -> list[np.ndarray]:
    """The windows listen.py scores for a recording (StreamFramer, 0.48 s hop, the last one flush's)."""
    framer = StreamFramer()
    return [window for _start, window in framer.push(waveform) + framer.flush()]


def audible_windows(windows: list[np.ndarray]) -> np.ndarray:
    """Which windows the listener's silence gate lets through (CustomModel.window_probabilities)."""
    from model import is_audible

    return np.array([is_audible(w) for w in windows], dtype=bool)


class WindowEmbedder:
    """YAMNet embeddings of a recording's windows exactly as listen.py makes them: each window levelled
    to `level_dbfs` (boost capped at CLIP.window_max_gain_db) when the model levels clips. Returns
    (embeddings (windows, 1024), audible (windows,)); cached by content in a dataset.EmbeddingCache."""

    def __init__(self, yamnet, level_dbfs: float | None, cache=None):
        self.yamnet, self.level_dbfs, self.cache = yamnet, level_dbfs, cache
        self._recordings = {}  # long recordings are embedded once per run, even with --no-cache

    def __call__(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from dataset import embed_waveforms

        waveform = np.asarray(waveform, np.float32)
        windows = listener_windows(waveform)
        audible = audible_windows(windows) if self.level_dbfs is not None else np.ones(len(windows), bool)
        suffix = "-listener-windows" + ("" if self.level_dbfs is None else
                                        f"-rms{self.level_dbfs:g}dBFS-max{CLIP.window_max_gain_db:g}dB")
        digest = hashlib.sha256(waveform.tobytes()).hexdigest() + suffix
        cached = self._recordings.get(digest)
        if cached is None and self.cache:
            cached = self.cache.get(digest)
        if cached is not None and len(cached) == len(windows):
            return cached, audible
        if self.level_dbfs is not None:
            windows = [augment.normalize_rms(w, self.level_dbfs, max_gain_db=CLIP.window_max_gain_db) for w in windows]
        embeddings = np.concatenate([embed_waveforms(windows[i:i + WINDOW_BATCH], self.yamnet)
                                     for i in range(0, len(windows), WINDOW_BATCH)]).astype(np.float32)
        if len(embeddings) != len(windows):  # one patch per 15600-sample window, as the listener sees it
            raise RuntimeError(f"YAMNet gave {len(embeddings)} patches for {len(windows)} windows")
        if len(waveform) > MEMORY_CACHE_SECONDS * SAMPLE_RATE:
            self._recordings[digest] = embeddings
        if self.cache:
            try:
                self.cache.put(digest, embeddings)
            except OSError:  # a full or read-only cache must not cost the training run
                self.cache = None
        return embeddings, audible


# --- splicing clips into background --------------------------------------------------------------------

def splice(clip: np.ndarray, background: np.ndarray, rng: np.random.Generator,
           snr_db=STREAM.splice_snr_db, excerpt_seconds=STREAM.splice_excerpt_seconds) -> tuple[np.ndarray, int]:
    """The clip added into a random excerpt of a background recording, at a random offset and a random
    ratio of its RMS to the background's under it: (excerpt, onset sample). The mix is scaled down, not
    clipped, if it would exceed full scale."""
    clip = np.asarray(clip, np.float32)
    n = max(int(rng.uniform(*excerpt_seconds) * SAMPLE_RATE), len(clip) + SAMPLE_RATE)
    if len(background) >= n:
        start = int(rng.integers(0, len(background) - n + 1))
        excerpt = np.array(background[start:start + n], np.float32)
    else:  # a short recording: repeated
        excerpt = np.resize(np.asarray(background, np.float32), n)
    onset = int(rng.integers(0, n - len(clip) + 1))
    under, level = augment.rms(excerpt[onset:onset + len(clip)]), augment.rms(clip)
    gain = under * 10 ** (rng.uniform(*snr_db) / 20) / level if under > 1e-5 and level > 0 else 1.0
    excerpt[onset:onset + len(clip)] += gain * clip
    peak = float(np.abs(excerpt).max())
    return (excerpt / peak if peak > 1.0 else excerpt).astype(np.float32), onset


def coverage_labels(onset: int, length: int, num_windows: int, window: int = YAMNET.patch_window_samples,
                    hop: int = YAMNET.patch_hop_samples) -> np.ndarray:
    """Share of a sound (samples onset .. onset+length) inside each window k (samples k*hop .. k*hop+window)."""
    starts = np.arange(num_windows) * hop
    inside = np.clip(np.minimum(starts + window, onset + length) - np.maximum(starts, onset), 0, None)
    return inside / max(length, 1)


@dataclass
class Excerpt:
    """A clip spliced into background, embedded as the listener would see it."""

    embeddings: np.ndarray  # (windows, 1024)
    audible: np.ndarray     # (windows,) bool
    coverage: np.ndarray    # (windows,) share of the clip in each window
    class_index: int


def make_excerpts(clips: list[tuple[np.ndarray, int]], backgrounds: list[np.ndarray], embed: WindowEmbedder,
                  rng: np.random.Generator, copies: int) -> list[Excerpt]:
    """Each (waveform, class index) spliced `copies` times into random background recordings."""
    excerpts = []
    for waveform, class_index in clips:
        for _ in range(copies):
            mixed, onset = splice(waveform, backgrounds[int(rng.integers(len(backgrounds)))], rng)
            embeddings, audible = embed(mixed)
            excerpts.append(Excerpt(embeddings, audible, coverage_labels(onset, len(waveform), len(embeddings)),
                                    class_index))
    return excerpts


def excerpt_frames(excerpts: list[Excerpt], background_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Training windows of spliced clips: >= STREAM.positive_coverage of the clip -> its class, none of
    it -> background, partial windows dropped (neither answer is right for them), silent ones dropped."""
    xs, ys = [np.zeros((0, YAMNET.embedding_size), np.float32)], [np.zeros(0, np.int64)]
    for e in excerpts:
        positive = e.coverage >= STREAM.positive_coverage
        keep = (positive | (e.coverage == 0)) & e.audible
        xs.append(e.embeddings[keep])
        ys.append(np.where(positive[keep], e.class_index, background_index))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


# --- the training data and cross-fitting -----------------------------------------------------------------

@dataclass
class StreamData:
    """Everything stream training needs, in memory. The last class is the background class."""

    class_names: list[str]
    clip_waveforms: list[np.ndarray]
    clip_labels: list[int]
    clip_frames: list[np.ndarray]   # each clip's training frames as clips are embedded (views, level)
    clip_folds: list[int]
    recordings: list[np.ndarray]    # background recordings (or parts of them, one fold each)
    recording_folds: list[int]
    names: list[str] = field(default_factory=list)  # of the clips, for reports

    @property
    def background_index(self) -> int:
        return len(self.class_names) - 1


def split_recordings(recordings: list[np.ndarray], folds: int,
                     segment_seconds: float = STREAM.segment_seconds) -> tuple[list[np.ndarray], list[int]]:
    """Background recordings dealt to folds: whole recordings (longest first to the emptiest fold) when
    that balances the folds within a factor of two, so held-out background is another recording; else
    every recording cut into segments dealt round-robin, so each fold trains on every kind of background
    in it (one kitchen recording whose last third is the dishwasher must not hide the dishwasher)."""
    if len(recordings) >= folds:
        totals, assigned = [0] * folds, [0] * len(recordings)
        for i in sorted(range(len(recordings)), key=lambda i: -len(recordings[i])):
            fold = int(np.argmin(totals))
            assigned[i], totals[fold] = fold, totals[fold] + len(recordings[i])
        if max(totals) <= 2 * min(totals):
            return list(recordings), assigned
    parts, assigned, dealt = [], [], 0
    for recording in recordings:
        recording = np.asarray(recording, np.float32)
        count = max(folds, round(len(recording) / (segment_seconds * SAMPLE_RATE)))
        for part in np.array_split(recording, count):
            parts.append(part)
            assigned.append(dealt % folds)
            dealt += 1
    return parts, assigned


def background_embeddings(recordings: list[np.ndarray], embed: WindowEmbedder) -> np.ndarray:
    """All audible windows of the recordings: (windows, 1024)."""
    chunks = [np.zeros((0, YAMNET.embedding_size), np.float32)]
    for recording in recordings:
        embeddings, audible = embed(recording)
        chunks.append(embeddings[audible])
    return np.concatenate(chunks)


def balanced_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """Keras class weights n / (classes * n_c): a few hundred clip windows count as much as
    tens of thousands of background windows."""
    counts = np.bincount(y, minlength=num_classes)
    present = int((counts > 0).sum())
    return {c: float(len(y) / (present * counts[c])) for c in range(num_classes) if counts[c]}


def train_detector(fit, data: StreamData, clips: list[int], recordings: list[int], embed: WindowEmbedder,
                   rng: np.random.Generator) -> tuple[object, object, dict]:
    """A head from the given clips (indices into data) and background recordings: the clips' own frames,
    the clips spliced into the recordings, the recordings' windows; then again with the background
    windows the first head scores above STREAM.hard_negative_score added STREAM.hard_negative_copies
    times. Returns (model, history of the last fit, counts)."""
    background = data.background_index
    backgrounds = [data.recordings[i] for i in recordings]
    excerpts = make_excerpts([(data.clip_waveforms[i], data.clip_labels[i]) for i in clips], backgrounds, embed, rng,
                             STREAM.splice_copies)
    x_spliced, y_spliced = excerpt_frames(excerpts, background)
    x_clips = [data.clip_frames[i] for i in clips]
    y_clips = [np.full(len(data.clip_frames[i]), data.clip_labels[i]) for i in clips]
    negatives = background_embeddings(backgrounds, embed)
    subset = negatives
    if len(negatives) > STREAM.max_background_windows:
        subset = negatives[np.sort(rng.permutation(len(negatives))[:STREAM.max_background_windows])]
    x = np.concatenate(x_clips + [x_spliced, subset]).astype(np.float32)
    y = np.concatenate(y_clips + [y_spliced, np.full(len(subset), background)]).astype(np.int64)
    model, history = fit(x, y)
    counts = {"clip_frames": int(sum(len(f) for f in x_clips)), "spliced_windows": int(len(x_spliced)),
              "background_windows": int(len(subset)), "hard_negatives": 0}
    if len(negatives):
        scores = model.frame_probabilities(negatives)
        firing = [i for i in range(len(data.class_names)) if i != background]
        hard = negatives[scores[:, firing].max(axis=1) > STREAM.hard_negative_score]
        if len(hard):
            x = np.concatenate([x] + [hard] * STREAM.hard_negative_copies)
            y = np.concatenate([y, np.full(len(hard) * STREAM.hard_negative_copies, background)])
            model, history = fit(x, y)
            counts["hard_negatives"] = int(len(hard))
    return model, history, counts


@dataclass
class Calibration:
    """Held-out scores pooled over the cross-fitting folds."""

    background_scores: list = field(default_factory=list)  # per held-out recording: (windows, classes)
    background_seconds: float = 0.0
    excerpts: list = field(default_factory=list)           # [(scores (windows, classes), coverage, class)]
    clip_probabilities: dict = field(default_factory=dict)  # clip index -> (classes,) as main.py --custom


def window_scores(model, embeddings: np.ndarray, audible: np.ndarray, background_index: int) -> np.ndarray:
    """The listener's scores of windows: silent windows score as its silence gate makes them."""
    from model import silent_probabilities

    scores = model.frame_probabilities(embeddings) if len(embeddings) else np.zeros((0, background_index + 1))
    scores = np.array(scores, np.float64)
    scores[~audible] = silent_probabilities(model.class_names)
    return scores


def cross_fit(fit, data: StreamData, embed: WindowEmbedder, folds: int, seed: int, log=print) -> Calibration:
    """Train on all folds but one, score the held-out clips (as clips, and spliced into held-out
    background) and the held-out background; pooled over every fold."""
    calibration = Calibration()
    background = data.background_index
    for fold in range(folds):
        rng = np.random.default_rng([seed, fold])
        train_clips = [i for i, f in enumerate(data.clip_folds) if f != fold]
        test_clips = [i for i, f in enumerate(data.clip_folds) if f == fold]
        train_recordings = [i for i, f in enumerate(data.recording_folds) if f != fold]
        test_recordings = [i for i, f in enumerate(data.recording_folds) if f == fold]
        if not train_clips or not test_recordings or not train_recordings:
            continue
        model, _history, counts = train_detector(fit, data, train_clips, train_recordings, embed, rng)
        for i in test_clips:
            calibration.clip_probabilities[i] = model.frame_probabilities(data.clip_frames[i].mean(axis=0, keepdims=True))[0]
        held_out = [data.recordings[i] for i in test_recordings]
        for recording in held_out:
            embeddings, audible = embed(recording)
            calibration.background_scores.append(window_scores(model, embeddings, audible, background))
            calibration.background_seconds += len(recording) / SAMPLE_RATE
        for e in make_excerpts([(data.clip_waveforms[i], data.clip_labels[i]) for i in test_clips], held_out, embed,
                               rng, STREAM.held_out_copies):
            calibration.excerpts.append((window_scores(model, e.embeddings, e.audible, background), e.coverage,
                                         e.class_index))
        log(f"calibration fold {fold + 1}/{folds}: trained on {len(train_clips)} clips and "
            f"{sum(len(data.recordings[i]) for i in train_recordings) / SAMPLE_RATE / 60:.1f} min of background "
            f"({counts['hard_negatives']} hard negatives); held out {len(test_clips)} clips and "
            f"{sum(len(r) for r in held_out) / SAMPLE_RATE / 60:.1f} min")
    return calibration


# --- operating points ------------------------------------------------------------------------------------

def count_events(scores: np.ndarray, threshold: float, min_frames: int) -> int:
    """Events EventDetector would start on one label's window scores: `min_frames` windows in a row at or
    above the threshold start one, as many below end it."""
    above = np.asarray(scores) >= threshold
    if not above.any():
        return 0
    edges = np.flatnonzero(np.diff(above.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [len(above)]]))
    events, active = 0, False
    for start, length in zip(starts, lengths):
        if above[start] and not active and length >= min_frames:
            events, active = events + 1, True
        elif not above[start] and active and length >= min_frames:
            active = False
    return events


def running_min(scores: np.ndarray, width: int) -> np.ndarray:
    """min(scores[k:k+width]) for every k (shorter at the end)."""
    scores = np.asarray(scores, np.float64)
    out = scores.copy()
    for shift in range(1, width):
        out[:-shift] = np.minimum(out[:-shift], scores[shift:])
    return out


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def threshold_grid() -> np.ndarray:
    """Thresholds STREAM.min_threshold .. max_threshold, evenly spaced in logit (softmax scores crowd near 1)."""
    z = np.linspace(logit(STREAM.min_threshold), logit(STREAM.max_threshold), STREAM.threshold_steps)
    return 1 / (1 + np.exp(-z))


def estimated_false_alarms(grid: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Expected false alarms at each threshold: the observed count where many events were seen, and
    beyond, an exponential tail in logit(threshold) fitted to the last STREAM.tail_events events (never
    below what was observed, nor below 1 / STREAM.max_extrapolation events). Held-out background is
    short: "0 seen" is no promise of "< 1 per hour", and a tail says little far beyond its data."""
    counts = np.asarray(counts, np.float64)
    z = logit(grid)
    tail = (counts >= 1) & (counts <= STREAM.tail_events)
    slope = STREAM.default_tail_slope
    if tail.sum() >= 3 and len(set(counts[tail])) >= 2:
        fitted = -np.polyfit(z[tail], np.log(counts[tail]), 1)[0]
        if fitted > 0:
            slope = fitted
    seen = np.flatnonzero(counts >= 1)
    if len(seen):  # anchored at the highest threshold with an event, where the count is smallest
        anchor_z, anchor_count = z[seen[-1]], counts[seen[-1]]
    else:  # none at all: as if one had been seen at the lowest threshold
        anchor_z, anchor_count = z[0], 1.0
    if len(seen) and tail.sum() >= 3:  # the fitted line through the tail's centre
        anchor_z, anchor_count = float(np.mean(z[tail])), float(np.exp(np.mean(np.log(counts[tail]))))
    extrapolated = np.maximum(anchor_count * np.exp(-slope * (z - anchor_z)), 1 / STREAM.max_extrapolation)
    return np.where(counts > STREAM.tail_events, counts, np.maximum(counts, extrapolated))


def recall_at(excerpts: list, class_index: int, min_frames: int, grid: np.ndarray) -> tuple[np.ndarray, int]:
    """Share of the class's held-out spliced clips found at each threshold (an event would start on a
    window holding part of the clip), and how many spliced clips that is out of."""
    peaks = []
    for scores, coverage, label in excerpts:
        if label != class_index:
            continue
        held = running_min(scores[:, class_index], min_frames)
        starts = np.flatnonzero(coverage > 0)
        peaks.append(held[starts].max() if len(starts) else 0.0)
    if not peaks:
        return np.zeros(len(grid)), 0
    peaks = np.array(peaks)
    return (peaks[None, :] >= grid[:, None]).mean(axis=1), len(peaks)


@dataclass
class OperatingPoint:
    label: str
    threshold: float
    min_frames: int
    expected_recall: float
    expected_false_per_hour: float
    observed_false_alarms: int
    background_hours: float
    held_out_clips: int
    meets: bool

    def as_dict(self) -> dict:
        return {"threshold": round(self.threshold, 6), "min_frames": self.min_frames,
                "expected_recall": round(self.expected_recall, 4),
                "expected_false_per_hour": round(self.expected_false_per_hour, 3),
                "observed_false_alarms": self.observed_false_alarms,
                "background_hours": round(self.background_hours, 4), "held_out_clips": self.held_out_clips,
                "meets_budget": self.meets}


def choose_operating_point(calibration: Calibration, class_names: list[str], class_index: int,
                           max_false_per_hour: float) -> OperatingPoint:
    """The (threshold, windows) with the most held-out recall whose estimated false alarms per hour of
    held-out background stay within the budget (ties: fewer windows, i.e. sooner). If none does with
    any recall left, the one with the fewest false alarms that still finds something (meets=False)."""
    grid = threshold_grid()
    hours = max(calibration.background_seconds / 3600, 1e-9)
    candidates = []  # (meets, key, point)
    for min_frames in range(1, STREAM.max_min_frames + 1):
        counts = np.array([sum(count_events(s[:, class_index], t, min_frames) for s in calibration.background_scores)
                           for t in grid])
        rates = estimated_false_alarms(grid, counts) / hours
        recall, spliced = recall_at(calibration.excerpts, class_index, min_frames, grid)
        clips = spliced // STREAM.held_out_copies
        within = rates <= max_false_per_hour
        # the lowest threshold from which every higher one is within budget too
        ok = np.flatnonzero(np.logical_and.accumulate(within[::-1])[::-1])
        if len(ok) and recall[ok[0]] > 0:
            i, meets = int(ok[0]), True
        else:  # the fewest false alarms at which something is still found
            finds = np.flatnonzero(recall > 0)
            i, meets = (int(finds[np.argmin(rates[finds])]) if len(finds) else int(np.argmin(rates))), False
        point = OperatingPoint(class_names[class_index], float(grid[i]), min_frames, float(recall[i]),
                               float(rates[i]), int(counts[i]), hours, clips, meets)
        candidates.append((meets, (recall[i], -min_frames) if meets else (recall[i] > 0, -rates[i], recall[i], -min_frames),
                           point))
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def choose_operating_points(calibration: Calibration, class_names: list[str], background_index: int,
                            max_false_per_hour: float) -> list[OperatingPoint]:
    return [choose_operating_point(calibration, class_names, i, max_false_per_hour)
            for i in range(len(class_names)) if i != background_index]


def round_up(rate: float) -> str:
    """A rate rounded up to two significant digits, for a suggestion the user can paste."""
    digits = 1 - math.floor(math.log10(rate)) if rate > 0 else 0
    return f"{math.ceil(rate * 10 ** digits) / 10 ** digits:g}"


def format_operating_point(point: OperatingPoint, max_false_per_hour: float) -> str:
    """One line for train.py's output, and a warning when the budget cannot be met."""
    line = (f"  {point.label}: threshold {point.threshold:.6g}, {point.min_frames} window(s): expected recall "
            f"{point.expected_recall:.0%} of {point.held_out_clips} held-out clips (each spliced into held-out "
            f"background {STREAM.held_out_copies} times), "
            f"~{point.expected_false_per_hour:.2g} false alarms/h "
            f"({point.observed_false_alarms} seen in {point.background_hours * 60:.0f} min of held-out background)")
    if not point.meets:
        line += (f"\nwarning: {point.label} cannot meet {max_false_per_hour:g} false alarm(s) per hour on this "
                 f"background: the best reached is ~{point.expected_false_per_hour:.2g}/h, at "
                 f"{point.expected_recall:.0%} recall; add more clips of {point.label} and more background "
                 f"recordings (longer ones let it promise lower rates), or pass --max-false-per-hour "
                 f"{round_up(point.expected_false_per_hour)}")
    return line
