"""The listener's windows as training and judging material: recordings embedded window by window as
listen.py hears them, clips spliced into background, background windows as negatives, and the
operating point per class (threshold, windows in a row) with its counted false-alarm promise,
chosen on what the cross-validation folds held out (training.py).

TF-free: YAMNet comes in as an object with `run` (and `embed_many`), models as objects with
`frame_probabilities`, so the pure parts test in milliseconds. Why: a head trained on isolated clips
misses the same sound inside a stream and fires on the stream's other sounds; the listener's windows
are what it must learn, and its false alarms per hour are what users judge it by (bench/real.py
measures each step on real recordings).
"""

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

import augment
from detection import StreamFramer, count_events
from params import CLIP, SAMPLE_RATE, STREAM, YAMNET, StreamTrainingDefaults

WINDOW_BATCH = 256  # windows embedded per YAMNet call (bounds memory: 256 log-mel patches)
MEMORY_CACHE_SECONDS = 20.0  # recordings longer than this (not spliced excerpts) stay embedded in memory


# --- the listener's windows, embedded ----------------------------------------------------------------

def listener_windows(waveform: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The windows listen.py scores for a recording, as (first sample, window) (StreamFramer, 0.48 s hop,
    the last one flush's, which may start off the hop grid)."""
    framer = StreamFramer()
    return framer.push(waveform) + framer.flush()


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
        windows = [window for _start, window in listener_windows(waveform)]
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


def coverage_labels(onset: int, length: int, starts, window: int = YAMNET.patch_window_samples) -> np.ndarray:
    """How much of each window (samples start .. start+window, one per start) a sound (samples onset ..
    onset+length) covers: the share of the sound inside it, or for a sound longer than a window the
    share of the window it fills (a window in the middle of a 10 s jingle is all jingle)."""
    starts = np.asarray(starts)
    inside = np.clip(np.minimum(starts + window, onset + length) - np.maximum(starts, onset), 0, None)
    return inside / max(min(length, window), 1)


@dataclass
class Excerpt:
    """A clip spliced into background, embedded as the listener would see it."""

    embeddings: np.ndarray  # (windows, 1024)
    audible: np.ndarray     # (windows,) bool
    coverage: np.ndarray    # (windows,) how much of each window the clip covers (coverage_labels)
    class_index: int


def make_excerpts(clips: list[tuple[np.ndarray, int]], backgrounds: list[np.ndarray], embed: WindowEmbedder,
                  rng: np.random.Generator, copies: int, snr_db=STREAM.splice_snr_db) -> list[Excerpt]:
    """Each (waveform, class index) spliced `copies` times into random background recordings."""
    excerpts = []
    for waveform, class_index in clips:
        for _ in range(copies):
            mixed, onset = splice(waveform, backgrounds[int(rng.integers(len(backgrounds)))], rng, snr_db)
            embeddings, audible = embed(mixed)
            starts = [start for start, _window in listener_windows(mixed)]
            excerpts.append(Excerpt(embeddings, audible, coverage_labels(onset, len(waveform), starts), class_index))
    return excerpts


def excerpt_frames(excerpts: list[Excerpt], background_index: int,
                   rules: StreamTrainingDefaults = STREAM) -> tuple[np.ndarray, np.ndarray]:
    """Training windows of spliced clips: covered >= rules.positive_coverage by the clip (coverage_labels)
    -> its class, none of it -> background, partial windows dropped (neither answer is right for them),
    silent ones dropped."""
    xs, ys = [np.zeros((0, YAMNET.embedding_size), np.float32)], [np.zeros(0, np.int64)]
    for e in excerpts:
        positive = e.coverage >= rules.positive_coverage
        keep = (positive | (e.coverage == 0)) & e.audible
        xs.append(e.embeddings[keep])
        ys.append(np.where(positive[keep], e.class_index, background_index))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


# --- background windows, class weights, the listener's scores ----------------------------------------

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


@dataclass
class Calibration:
    """Held-out scores pooled over the cross-validation folds."""

    background: list = field(default_factory=list)  # [(fold, seconds, scores (windows, classes))] per held-out stream
    excerpts: list = field(default_factory=list)    # [(scores (windows, classes), coverage, class)]

    def add_background(self, fold: int, seconds: float, scores: np.ndarray) -> None:
        self.background.append((fold, seconds, scores))

    @property
    def background_seconds(self) -> float:
        return sum(seconds for _fold, seconds, _scores in self.background)

    def folds(self) -> list[int]:
        return sorted({fold for fold, _seconds, _scores in self.background})


def window_scores(model, embeddings: np.ndarray, audible: np.ndarray, background_index: int) -> np.ndarray:
    """The listener's scores of windows: silent windows score as its silence gate makes them."""
    from model import silent_probabilities

    scores = model.frame_probabilities(embeddings) if len(embeddings) else np.zeros((0, background_index + 1))
    scores = np.array(scores, np.float64)
    scores[~audible] = silent_probabilities(model.class_names)
    return scores


# --- operating points ------------------------------------------------------------------------------------

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


def threshold_grid(rules: StreamTrainingDefaults = STREAM) -> np.ndarray:
    """Thresholds rules.min_threshold .. max_threshold, evenly spaced in logit (softmax scores crowd near 1)."""
    z = np.linspace(logit(rules.min_threshold), logit(rules.max_threshold), rules.threshold_steps)
    return 1 / (1 + np.exp(-z))


def poisson_interval(events: int, hours: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a rate per hour from `events` seen in `hours`."""
    from scipy.stats import chi2

    tail = (1 - level) / 2
    low = chi2.ppf(tail, 2 * events) / 2 if events else 0.0
    high = chi2.ppf(1 - tail, 2 * (events + 1)) / 2
    return float(low / hours), float(high / hours)


def expected_false_alarms(counts: np.ndarray) -> np.ndarray:
    """What a count of false alarms seen on held-out background promises: one more than seen. Held-out
    background is short, and the threshold is chosen where it happened to be quiet: "0 in 20 minutes"
    is no promise of "0 per hour", and nothing beyond the audio heard is promised."""
    return np.asarray(counts, np.float64) + 1.0


def recall_at(excerpts: list, class_index: int, min_frames: int, grid: np.ndarray) -> tuple[np.ndarray, int]:
    """Share of the class's held-out spliced clips found at each threshold (an event would start on a
    window holding part of the clip: it and the next min_frames - 1 windows at or above the threshold),
    and how many spliced clips that is out of."""
    peaks = []
    for scores, coverage, label in excerpts:
        if label != class_index:
            continue
        held = running_min(scores[:, class_index], min_frames)
        held[max(0, len(held) - min_frames + 1):] = -np.inf  # too few windows left to start an event
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
    expected_false_per_hour: float   # (false alarms seen + 1) per hour of held-out background
    observed_false_alarms: int
    background_hours: float
    held_out_clips: int
    meets: bool
    false_per_hour_range: tuple = (0.0, 0.0)  # 95 % interval of the rate from the count seen
    fold_false_per_hour: tuple = ()           # what each fold's held-out background gave

    def as_dict(self) -> dict:
        return {"threshold": round(self.threshold, 6), "min_frames": self.min_frames,
                "expected_recall": round(self.expected_recall, 4),
                "expected_false_per_hour": round(self.expected_false_per_hour, 3),
                "false_per_hour_range": [round(v, 3) for v in self.false_per_hour_range],
                "fold_false_per_hour": [round(v, 3) for v in self.fold_false_per_hour],
                "observed_false_alarms": self.observed_false_alarms,
                "background_hours": round(self.background_hours, 4), "held_out_clips": self.held_out_clips,
                "meets_budget": self.meets}


def event_counts(calibration: Calibration, class_index: int, min_frames: int, grid: np.ndarray,
                 fold: int | None = None) -> np.ndarray:
    """Events the listener would raise on held-out background (all of it, or one fold's) at each threshold."""
    return np.array([sum(count_events(scores[:, class_index], t, min_frames)
                         for f, _seconds, scores in calibration.background if fold is None or f == fold)
                     for t in grid])


def quietest_from(counts: np.ndarray, finds: np.ndarray) -> int:
    """The lowest threshold index from which every higher one raises no more events than the fewest
    any threshold that still finds something raises; if a higher threshold raises more (a run of
    windows can split in two as the threshold rises), the lowest index that raises the fewest."""
    fewest = counts[finds].min() if finds.any() else counts.min()
    steady = np.flatnonzero(np.logical_and.accumulate((counts <= fewest)[::-1])[::-1])
    if len(steady):
        return int(steady[0])
    return int(np.flatnonzero((counts == fewest) & (finds if finds.any() else True))[0])


def choose_operating_point(calibration: Calibration, class_names: list[str], class_index: int,
                           max_false_per_hour: float, rules: StreamTrainingDefaults = STREAM) -> OperatingPoint:
    """The (threshold, windows) with the most held-out recall whose expected false alarms per hour of
    held-out background (`expected_false_alarms`) stay within the budget (ties: fewer windows, i.e.
    sooner). If none does, the most sensitive point among those raising the fewest false alarms
    that still find something (meets=False): with half an hour of background, no count can show
    fewer than 2 per hour."""
    grid = threshold_grid(rules)
    hours = max(calibration.background_seconds / 3600, 1e-9)
    candidates = []  # (meets, key, point)
    for min_frames in range(1, rules.max_min_frames + 1):
        counts = event_counts(calibration, class_index, min_frames, grid)
        rates = expected_false_alarms(counts) / hours
        recall, spliced = recall_at(calibration.excerpts, class_index, min_frames, grid)
        within = rates <= max_false_per_hour
        # the lowest threshold from which every higher one is within budget too
        ok = np.flatnonzero(np.logical_and.accumulate(within[::-1])[::-1])
        if len(ok) and recall[ok[0]] > 0:
            i, meets = int(ok[0]), True
        else:
            i, meets = quietest_from(counts, recall > 0), False
        folds = []
        for fold in calibration.folds():
            seconds = sum(s for f, s, _scores in calibration.background if f == fold)
            folds.append(event_counts(calibration, class_index, min_frames, grid[i:i + 1], fold)[0] / (seconds / 3600))
        point = OperatingPoint(class_names[class_index], float(grid[i]), min_frames, float(recall[i]), float(rates[i]),
                               int(counts[i]), hours, spliced // rules.held_out_copies, meets,
                               poisson_interval(int(counts[i]), hours), tuple(folds))
        candidates.append((meets, (recall[i], -min_frames) if meets else (recall[i] > 0, -rates[i], recall[i], -min_frames),
                           point))
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def choose_operating_points(calibration: Calibration, class_names: list[str], background_index: int,
                            max_false_per_hour: float, rules: StreamTrainingDefaults = STREAM) -> list[OperatingPoint]:
    return [choose_operating_point(calibration, class_names, i, max_false_per_hour, rules)
            for i in range(len(class_names)) if i != background_index]


def round_up(rate: float) -> str:
    """A rate rounded up to two significant digits, for a suggestion the user can paste."""
    digits = 1 - math.floor(math.log10(rate)) if rate > 0 else 0
    return f"{math.ceil(rate * 10 ** digits) / 10 ** digits:g}"


def format_operating_point(point: OperatingPoint, max_false_per_hour: float) -> str:
    """Two lines for train.py's output (what it finds, what it costs), and a warning when the budget
    cannot be met."""
    low, high = point.false_per_hour_range
    folds = ", ".join(f"{rate:.2g}" for rate in point.fold_false_per_hour)
    line = (f"  {point.label}: threshold {point.threshold:.6g}, {point.min_frames} window(s) in a row\n"
            f"    finds {point.expected_recall:.0%} of {point.held_out_clips} held-out clips spliced into held-out "
            f"background; false alarms: {point.observed_false_alarms} in {point.background_hours * 60:.0f} min of "
            f"held-out background, expect {low:.2g}-{high:.2g} per hour (folds: {folds} per hour)")
    if not point.meets:
        line += (f"\nwarning: {point.label} cannot promise {max_false_per_hour:g} false alarm(s) per hour on this "
                 f"background: the point above is the most sensitive one with the fewest false alarms seen "
                 f"({point.observed_false_alarms} in {point.background_hours * 60:.0f} min, so about "
                 f"{point.expected_false_per_hour:.2g}/h); more background recordings (an hour or more, other days "
                 f"and sources) let it promise lower rates, or pass --max-false-per-hour "
                 f"{round_up(point.expected_false_per_hour)}")
    return line
