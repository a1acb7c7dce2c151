"""Detection on streams: recall, false alarms per hour and latency, seed recipe vs candidates, one table.

    python bench/stream.py            # seed vs default, 6 folds: about 30 min on 2 busy cores
    python bench/stream.py --folds 1 --recipes seed   # a quick look; --recipes seed,spliced,level,hard,... for more

Row groups (--recipes): default = what `python train.py training/ models/` does with background
recordings (stream_training.py: clips and their 8 levelled views, clips spliced into the background,
background windows, hard negatives, its own operating point from 3-fold cross-fitting with the
background files held out by speaker), and the same head at 0.5 with 1 and 2 windows; nolevel and
noclips = default without levelling the listener's windows / without the clips' own frames; smooth =
default with label smoothing 0.1, so scores stop saturating at 1.0 (2 folds: PSDS dense/sparse 0.03/0.50
against the default's 0.05/0.55, operating-point recall 2 % against 0 %: not adopted);
dropout = default with dropout 0.2 on the embedding and 0.5 on the hidden layer (2 folds: sparse
PSDS 0.60 against 0.55, but dense 0.04 against 0.05 and separability 32/59/83 % against 25/50/72 %:
not adopted); mean = the default's head with each window's score the mean of it and the 1 or 2
windows before (the issue's "optional score smoothing"; 6 folds: sparse PSDS 0.55 and 0.32 against
0.53, separability 29/59/79 % and 32/63/84 % against 28/52/75 %: not adopted); seed = train.py's clip
recipe (no background recordings) at 0.5 with 1 and 2 windows, and with an operating point; spliced =
takes spliced into background, coverage-labelled windows, background windows as negatives, balanced class weights (1 and 2 windows at 0.5, and an operating point); level = spliced
with every window levelled to -20 dBFS (boost <= 30 dB, as the new params.CLIP default); hard =
spliced plus one round of hard-negative mining. The seed rows at 0.5 and the default, nolevel, noclips,
smooth and mean rows train on all 5 training speakers (the default chooses its operating point by
cross-fitting among them); the other rows train on 4 (rows of one group share that model) and their
"operating point" rows choose (threshold, windows) on the 5th speaker's streams for
<= --max-false-per-hour (1).

Two scenarios, both leave-one-speaker-out on FSDD (../shared/data/fsdd, 6 speakers x 10 digits x 50
takes); the target is one digit (--target, default 7), its class is called "digit_7".
- dense: the held-out speaker's 500 clips (450 other digits = confusers, 50 targets) in random order,
  0.3-1.0 s gaps, on a quiet noise floor (about 9 min per fold);
- sparse: 12 min per fold of generated white/pink/brown noise, mains hum (50/60 Hz and harmonics),
  near-silence and stretches of the held-out speaker's other digits, with the speaker's 50 target
  takes at -30..-20 dBFS on the noise/hum/silence stretches (over 1 h of background in all).
Training material of a fold: the target takes of the 5 other speakers (one class), and "background
recordings" made like the streams from those speakers' other digits and newly generated noise
(targets never in them). Each recipe gets the same material and decides how to use it.

A recipe is a function `recipe(data: TrainingData) -> Detector`: `data.files_by_class` (target
takes), `data.background` (long waveforms), `data.calibration` (streams of a held-out training
speaker with references, for choosing an operating point) and `data.embedder` (cached YAMNet). The
Detector scores YAMNet embeddings of a stream's windows and carries its operating point
(thresholds, min_frames). Streams are embedded once by one YAMNet run per stream (checked against
window-by-window scoring at start-up), so a full run takes minutes; embeddings are cached in
--cache-dir (dataset.EmbeddingCache keyed by waveform content).

Separability (printed under the table): on the dense streams, each utterance's peak score; the share of
the held-out speaker's other digits that peak as high as the threshold finding 50/80/95 % of their
targets. It bounds every operating point of that head: none can separate what scores alike.

Scoring (stream_eval): a target is found if an event starts within 0.5 s of it; a false alarm is an
event of the target class overlapping no target (±0.5 s), per hour of audio outside the targets;
latency is from the sound's start to the end of the window that started the event (when a live
listener would publish it); DCASE F1 is sed_eval's event-based onset F1 (t_collar 0.5 s); PSDS is
sed_scores_eval's threshold-free score on the raw window scores (dtc = gtc = 0.1, up to 100 FA/h).
"""

import argparse
import dataclasses
import functools
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import augment  # noqa: E402
import stream_eval  # noqa: E402
from params import BACKGROUND_CLASS, CLIP, LISTEN, SAMPLE_RATE, STREAM, TRAINING, YAMNET  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import DEFAULT_FSDD, fsdd_files  # noqa: E402

DEFAULT_CACHE = Path("/work/bench_cache_stream")
TARGET_FALSE_PER_HOUR = 1.0       # the operating point's budget (issue 7: --max-false-per-hour default 1)
SPARSE_MINUTES = 12.0             # sparse stream per fold
NOISE_BED_MINUTES = 4.0           # generated background recordings per training speaker
SEED_BACKGROUND_MINUTES = 20.0    # seed recipe: background clips (2 s) it is given at most, like a user's folder
BACKGROUND_CLIP_SECONDS = 2.0     # `audio_util.py background` cuts recordings into clips this long
SPLICE_COPIES = 3                 # spliced recipe: copies of each target take in background
SPLICE_GAIN_DB = (-10.0, 6.0)     # ... with the take's level changed by this much
SPLICE_EXCERPT_SECONDS = (2.5, 4.0)
SPLICE_EPOCHS = 30
SPLICE_BATCH = 128
SPLICE_MAX_NEGATIVES = 12000      # background windows kept per training run (random subset)
THRESHOLD_GRID = np.round(np.concatenate([np.arange(0.10, 0.96, 0.02), [0.96, 0.97, 0.98, 0.99, 0.995, 0.999]]), 3)
MIN_FRAMES_GRID = (1, 2, 3, 4)
LEVEL_DBFS = -20.0                # "level" rows: every window scaled to this RMS before YAMNet ...
WINDOW_MAX_GAIN_DB = 30.0         # ... boosted at most this much (params.CLIP in the new train.py default)
HARD_NEGATIVE_SCORE = 0.1         # background windows the first model scores above this are hard negatives ...
HARD_NEGATIVE_COPIES = 4          # ... added this many more times in the second round


# --- audio material --------------------------------------------------------------------------------------

def level(waveform: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale to an RMS of `dbfs`."""
    return augment.normalize_rms(waveform, dbfs)


def hum(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum of unit-ish RMS: 50 or 60 Hz with 8 harmonics of falling, random amplitude, plus a little noise."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(num_samples) / SAMPLE_RATE
    wave = sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
    wave = wave / max(augment.rms(wave), 1e-9) + 0.05 * augment.colored_noise(num_samples, "pink", rng)
    return wave.astype(np.float32)


def noise_floor(num_samples: int, rng: np.random.Generator, dbfs=(-60.0, -50.0)) -> np.ndarray:
    return level(augment.colored_noise(num_samples, "pink", rng), rng.uniform(*dbfs))


def speech_run(clips: list[np.ndarray], rng: np.random.Generator, gap_s=(0.3, 1.0), lead_s: float = 1.0):
    """Clips one after another with random gaps on a quiet noise floor: (waveform, [(start_s, end_s)])."""
    gaps = rng.uniform(*gap_s, size=len(clips))
    total = int((lead_s + sum(len(c) / SAMPLE_RATE for c in clips) + gaps.sum() + 1.0) * SAMPLE_RATE)
    out = noise_floor(total, rng)
    at, spans = int(lead_s * SAMPLE_RATE), []
    for clip, gap in zip(clips, gaps):
        out[at:at + len(clip)] += clip
        spans.append((at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE))
        at += len(clip) + int(gap * SAMPLE_RATE)
    return np.clip(out, -1, 1).astype(np.float32), spans


def dense_stream(clips: list[tuple[np.ndarray, int]], target: int, label: str, rng):
    """The speaker's takes, shuffled, as one stream; references for every take ('digit_7' or 'other 3')."""
    order = rng.permutation(len(clips))
    wave, spans = speech_run([clips[i][0] for i in order], rng)
    refs = [(a, b, label if clips[i][1] == target else f"other {clips[i][1]}") for i, (a, b) in zip(order, spans)]
    return wave, refs


def noise_bed(seconds: float, rng, speech: list[np.ndarray] | None = None):
    """Stretches of 15-60 s: white/pink/brown noise, hum, near-silence and (given `speech` takes) speech.
    Returns (waveform, [(start_s, end_s, kind)])."""
    kinds = ["white", "pink", "brown", "hum", "silence"] + (["speech"] if speech else [])
    n = int(seconds * SAMPLE_RATE)
    out, parts, at, pending_speech = np.zeros(n, np.float32), [], 0, list(speech or [])
    while at < n:
        kind = kinds[int(rng.integers(len(kinds)))]
        length = min(n - at, int(rng.uniform(15, 60) * SAMPLE_RATE))
        if kind == "speech" and pending_speech:
            take = []
            while pending_speech and sum(len(c) for c in take) < 0.4 * length:
                take.append(pending_speech.pop())
            piece, _ = speech_run(take, rng, gap_s=(0.2, 1.5))
            piece = piece[:length]
        elif kind == "hum":
            piece = level(hum(length, rng), rng.uniform(-45, -20)) + noise_floor(length, rng)
        elif kind == "silence":
            piece = level(augment.colored_noise(length, "white", rng), rng.uniform(-75, -60))
        else:
            if kind == "speech":
                kind = "pink"
            piece = level(augment.colored_noise(length, kind, rng), rng.uniform(-55, -30))
        out[at:at + len(piece)] = piece
        parts.append((at / SAMPLE_RATE, (at + len(piece)) / SAMPLE_RATE, kind))
        at += length
    return np.clip(out, -1, 1).astype(np.float32), parts


def sparse_stream(targets: list[np.ndarray], others: list[np.ndarray], label: str, rng, minutes: float = SPARSE_MINUTES):
    """A noise bed with speech stretches, the targets placed at least 6 s apart on non-speech stretches."""
    wave, parts = noise_bed(minutes * 60, rng, speech=others)
    free = [(a + 1.0, b - 2.0) for a, b, kind in parts if kind != "speech" and b - a > 4.0]
    refs, taken = [], []
    for clip in targets:
        for _ in range(200):
            a, b = free[int(rng.integers(len(free)))]
            t = rng.uniform(a, b)
            if all(abs(t - u) > 6.0 for u in taken):
                break
        else:
            continue
        taken.append(t)
        at = int(t * SAMPLE_RATE)
        piece = level(clip, rng.uniform(-30, -20))
        wave[at:at + len(piece)] += piece[:len(wave) - at]
        refs.append((at / SAMPLE_RATE, (at + len(piece)) / SAMPLE_RATE, label))
    refs += [(a, b, "speech") for a, b, kind in parts if kind == "speech"]
    return np.clip(wave, -1, 1).astype(np.float32), sorted(refs)


# --- YAMNet, cached -----------------------------------------------------------------------------------

class Embedder:
    """YAMNet embeddings of waveforms, cached by content in dataset.EmbeddingCache (and in memory).

    Window k of a waveform starts at k * hop, as StreamFramer's windows do. Plain: one YAMNet run over
    the waveform gives every window. Levelled (`level_dbfs`): each window is scaled as
    CustomModel.window_probabilities does (augment.normalize_rms, boost capped at `max_gain_db`), so
    windows differ from their neighbours' overlap; they are laid out 3 hops apart in one long waveform,
    whose patches 0, 3, 6, ... then see exactly one levelled window each: still one run, not one per window.
    """

    def __init__(self, yamnet, cache_dir: Path):
        from dataset import EmbeddingCache

        self.yamnet = yamnet
        self.cache = EmbeddingCache(cache_dir, yamnet.identity)
        self.memory = {}
        self.seconds = 0.0   # YAMNet time spent (cache misses)
        self.audio_s = 0.0   # audio embedded on misses

    def __call__(self, waveform: np.ndarray, level_dbfs: float | None = None,
                 max_gain_db: float = WINDOW_MAX_GAIN_DB) -> np.ndarray:
        """(n,) -> (windows, 1024)."""
        waveform = np.asarray(waveform, np.float32)
        suffix = "-wave" if level_dbfs is None else f"-windows{level_dbfs:g}dB-max{max_gain_db:g}dB"
        digest = hashlib.sha256(waveform.tobytes()).hexdigest() + suffix
        if digest in self.memory:
            return self.memory[digest]
        embeddings = self.cache.get(digest)
        if embeddings is None:
            start = time.perf_counter()
            embeddings = (self.yamnet.run(waveform)[1] if level_dbfs is None
                          else self._levelled(waveform, level_dbfs, max_gain_db))
            self.seconds += time.perf_counter() - start
            self.audio_s += len(waveform) / SAMPLE_RATE
            self.cache.put(digest, embeddings)
        self.memory[digest] = embeddings
        return embeddings

    def _levelled(self, waveform, level_dbfs, max_gain_db, per_run: int = 400) -> np.ndarray:
        from detection import StreamFramer

        framer = StreamFramer()
        windows = [augment.normalize_rms(w, level_dbfs, max_gain_db=max_gain_db)
                   for _, w in framer.push(waveform) + framer.flush()]
        stride = 3 * YAMNET.patch_hop_samples  # > the 15600 samples of a window: no patch 3k sees two windows
        out = []
        for i in range(0, len(windows), per_run):
            part = windows[i:i + per_run]
            laid = np.zeros(stride * len(part), np.float32)
            for j, w in enumerate(part):
                laid[j * stride:j * stride + len(w)] = w
            out.append(self.yamnet.run(laid)[1][::3][:len(part)])
        return np.concatenate(out)


def window_starts(num_windows: int) -> np.ndarray:
    return np.arange(num_windows) * YAMNET.patch_hop_seconds


def check_long_run(embedder: Embedder, waveform: np.ndarray, level_dbfs: float | None = None) -> tuple[int, int, float]:
    """Embedder's windows vs each StreamFramer window run alone (as listen.py does), plain or levelled:
    (windows of the embedder, windows of the framer, max |difference| of the embeddings)."""
    from detection import StreamFramer

    fast = embedder.yamnet.run(waveform)[1] if level_dbfs is None else embedder._levelled(waveform, level_dbfs, WINDOW_MAX_GAIN_DB)
    framer = StreamFramer()
    windows = [w if level_dbfs is None else augment.normalize_rms(w, level_dbfs, max_gain_db=WINDOW_MAX_GAIN_DB)
               for _, w in framer.push(waveform) + framer.flush()]
    per_window = np.stack([embedder.yamnet.run(w)[1][0] for w in windows])
    # all but the last: the framer's last window is the stream's last 0.975 s, YAMNet's is zero-padded
    n = min(len(fast), len(per_window)) - 1
    return len(fast), len(per_window), float(np.abs(fast[:n] - per_window[:n]).max())


# --- recipes -----------------------------------------------------------------------------------------

@dataclass
class Stream:
    """A stream to score: its waveform, references, length."""

    name: str
    waveform: np.ndarray
    references: list
    duration_s: float


@dataclass
class TrainingData:
    files_by_class: dict          # {class name: [waveform of each take]}
    background: list              # long background waveforms (no targets)
    calibration: list             # [Stream] of a held-out training speaker (targets labelled)
    embedder: Embedder
    seed: int = TRAINING.seed
    groups: dict = field(default_factory=dict)  # {class name: [speaker of each take]}
    max_false_per_hour: float = TARGET_FALSE_PER_HOUR  # the operating points' budget


@dataclass
class Detector:
    """A trained head and its operating point."""

    labels: list
    score: object                 # embeddings (n, 1024) -> scores (n, len(labels))
    thresholds: dict
    min_frames: int
    note: str = ""
    calibration: dict = field(default_factory=dict)
    level_dbfs: float | None = None  # windows levelled to this before YAMNet (None: as they are)
    listener: object = None          # stream_training.WindowEmbedder + model: scores exactly as listen.py does

    def stream_scores(self, stream: Stream, embedder: Embedder) -> np.ndarray:
        """(windows, labels) scores of a stream, its windows embedded the way this detector expects."""
        if self.listener is not None:
            return self.listener(stream.waveform)
        return self.score(embedder(stream.waveform, self.level_dbfs))


def _head_scorer(head, labels):
    from model import CustomModel

    model = CustomModel(head=head, class_names=labels, meta={})
    return model.frame_probabilities


def train_seed(data: TrainingData) -> Detector:
    """train.py's default: classes from folders (the target takes; background = the background
    recordings cut into 2 s clips, at most SEED_BACKGROUND_MINUTES), every 0.96 s patch of every clip a
    training frame, 20 % of files held out, 50 epochs, batch 32; threshold 0.5, one window."""
    from dataset import frames_and_labels, split_by_file
    from train import fit_head

    rng = np.random.default_rng(data.seed)
    clips = [c for w in data.background for c in _cut(w, BACKGROUND_CLIP_SECONDS)]
    keep = int(SEED_BACKGROUND_MINUTES * 60 / BACKGROUND_CLIP_SECONDS)
    clips = [clips[i] for i in sorted(rng.permutation(len(clips))[:keep])]
    labels = list(data.files_by_class) + [BACKGROUND_CLASS]
    embeddings, files_by_class = {}, {}
    for name, waves in [*data.files_by_class.items(), (BACKGROUND_CLASS, clips)]:
        keys = [f"{name}:{i:05d}" for i in range(len(waves))]
        embeddings.update({k: data.embedder(w) for k, w in zip(keys, waves)})
        files_by_class[name] = keys
    train_items, _val = split_by_file(files_by_class, TRAINING.val_split, data.seed)
    x, y = frames_and_labels(train_items, embeddings)
    head, _ = fit_head(SimpleNamespace(seed=data.seed, epochs=TRAINING.epochs, batch_size=TRAINING.batch_size),
                       len(labels), x, y)
    thresholds = {label: LISTEN.threshold for label in labels}
    return Detector(labels, _head_scorer(head, labels), thresholds, LISTEN.min_frames,
                    note=f"{len(x)} frames")


def _cut(waveform: np.ndarray, seconds: float) -> list[np.ndarray]:
    from audio_util import cut_into_clips

    return cut_into_clips(waveform, round(seconds * SAMPLE_RATE))


def coverage_labels(onset: int, length: int, num_windows: int, window: int = YAMNET.patch_window_samples,
                    hop: int = YAMNET.patch_hop_samples) -> np.ndarray:
    """Share of a sound (samples onset..onset+length) inside each window k (samples k*hop .. k*hop+window)."""
    starts = np.arange(num_windows) * hop
    inside = np.clip(np.minimum(starts + window, onset + length) - np.maximum(starts, onset), 0, None)
    return inside / max(length, 1)


def splice(take: np.ndarray, background: list[np.ndarray], rng) -> tuple[np.ndarray, int]:
    """The take added into a random background excerpt at a random offset and gain: (excerpt, onset sample)."""
    bed = background[int(rng.integers(len(background)))]
    n = int(rng.uniform(*SPLICE_EXCERPT_SECONDS) * SAMPLE_RATE)
    n = max(n, len(take) + SAMPLE_RATE)
    start = int(rng.integers(0, len(bed) - n))
    excerpt = bed[start:start + n].copy()
    onset = int(rng.integers(0, n - len(take)))
    excerpt[onset:onset + len(take)] += augment.apply_gain(take, rng.uniform(*SPLICE_GAIN_DB))
    return np.clip(excerpt, -1, 1).astype(np.float32), onset


def spliced_frames(data: TrainingData, rng, copies: int = SPLICE_COPIES, level_dbfs: float | None = None):
    """Training windows: every take spliced `copies` times into background; windows holding >= 50 % of
    the take are its class, windows holding none are background, the rest are dropped; plus the windows
    of the background recordings (a random subset of at most SPLICE_MAX_NEGATIVES). Returns x, y, labels."""
    labels = list(data.files_by_class) + [BACKGROUND_CLASS]
    bg = len(labels) - 1
    xs, ys = [], []
    for index, takes in enumerate(data.files_by_class.values()):
        for take in takes:
            for _ in range(copies):
                excerpt, onset = splice(take, data.background, rng)
                emb = data.embedder(excerpt, level_dbfs)
                cover = coverage_labels(onset, len(take), len(emb))
                keep = (cover >= 0.5) | (cover == 0)
                xs.append(emb[keep])
                ys.append(np.where(cover[keep] >= 0.5, index, bg))
    negatives = np.concatenate([data.embedder(w, level_dbfs) for w in data.background])
    if len(negatives) > SPLICE_MAX_NEGATIVES:
        negatives = negatives[np.sort(rng.permutation(len(negatives))[:SPLICE_MAX_NEGATIVES])]
    xs.append(negatives)
    ys.append(np.full(len(negatives), bg))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64), labels


def fit_weighted(x, y, num_classes: int, seed: int, epochs: int = SPLICE_EPOCHS, batch_size: int = SPLICE_BATCH):
    """The project's head, trained with balanced class weights (n / (classes * n_c))."""
    import keras

    from model import build_classifier_head

    keras.utils.set_random_seed(seed)
    head = build_classifier_head(num_classes)
    counts = np.bincount(y, minlength=num_classes)
    weights = {c: float(len(y) / (num_classes * counts[c])) for c in range(num_classes) if counts[c]}
    head.fit(x, y, epochs=epochs, batch_size=batch_size, class_weight=weights, verbose=0)
    return head


def choose_operating_point(detector: Detector, streams: list[Stream], embedder: Embedder,
                           max_false_per_hour: float = TARGET_FALSE_PER_HOUR):
    """(threshold, min_frames) with the most recall on `streams` at <= max_false_per_hour false alarms
    (ties: the higher threshold); if none meets it, the fewest false alarms. One threshold for every
    label. Returns (threshold, min_frames, {found, false_alarms, hours, meets})."""
    scored = [(s, detector.stream_scores(s, embedder)) for s in streams]
    firing = [label for label in detector.labels if label != BACKGROUND_CLASS]
    best, best_key = None, None
    for min_frames in MIN_FRAMES_GRID:
        for threshold in THRESHOLD_GRID:
            thresholds = {label: float(threshold) for label in detector.labels}
            per_stream = []
            for stream, scores in scored:
                events = stream_eval.detect_events(window_starts(len(scores)), scores, detector.labels, thresholds, min_frames)
                per_stream.append(stream_eval.match_events(stream.references, stream_eval.pair_events(events),
                                                           stream.duration_s, firing))
            pooled = stream_eval.pool_counts(per_stream)
            found = sum(c.found for c in pooled.values())
            false = sum(c.false_alarms for c in pooled.values())
            hours = sum(c.background_s for c in pooled.values()) / 3600 / max(1, len(pooled))
            meets = false <= max_false_per_hour * hours
            key = (meets, found if meets else -false, threshold if meets else found, -min_frames)
            if best_key is None or key > best_key:
                best_key, best = key, (float(threshold), min_frames, {"found": found, "false_alarms": false,
                                                                      "hours": hours, "meets": meets})
    return best


def with_operating_point(recipe):
    """A recipe whose detector's operating point is then chosen on data.calibration."""
    def calibrated(data: TrainingData) -> Detector:
        return calibrate(recipe(data), data.calibration, data.embedder, data.max_false_per_hour)
    return calibrated


def calibrate(detector: Detector, streams: list[Stream], embedder: Embedder,
              max_false_per_hour: float = TARGET_FALSE_PER_HOUR) -> Detector:
    """A copy of `detector` at the operating point chosen on `streams`."""
    threshold, min_frames, info = choose_operating_point(detector, streams, embedder, max_false_per_hour)
    note = (f"{detector.note}; op {threshold:g}/{min_frames}w on calibration: {info['found']} found, "
            f"{info['false_alarms']} FA in {info['hours']:.2f} h" + ("" if info["meets"] else " (budget NOT met)"))
    return Detector(detector.labels, detector.score, {label: threshold for label in detector.labels}, min_frames,
                    note, info, detector.level_dbfs)


def train_spliced(data: TrainingData, hard_negatives: bool = False, level_dbfs: float | None = None) -> Detector:
    """Takes spliced into background, windows labelled by coverage, background windows as negatives,
    balanced class weights; threshold 0.5, two windows (before any operating point). With
    `hard_negatives`, a second round adds every background window (of all the background recordings,
    not only the subset) the first model scores above HARD_NEGATIVE_SCORE, HARD_NEGATIVE_COPIES times.
    With `level_dbfs`, every window (training and scoring) is levelled first (see Embedder)."""
    rng = np.random.default_rng([data.seed, 11])
    x, y, labels = spliced_frames(data, rng, level_dbfs=level_dbfs)
    head = fit_weighted(x, y, len(labels), data.seed)
    note = f"{len(x)} frames ({int((y != len(labels) - 1).sum())} positive)"
    if hard_negatives:
        score = _head_scorer(head, labels)
        negatives = np.concatenate([data.embedder(w, level_dbfs) for w in data.background])
        target_scores = score(negatives)[:, :-1].max(axis=1)
        hard = negatives[target_scores > HARD_NEGATIVE_SCORE]
        x = np.concatenate([x] + [hard] * HARD_NEGATIVE_COPIES)
        y = np.concatenate([y] + [np.full(len(hard), len(labels) - 1)] * HARD_NEGATIVE_COPIES)
        head = fit_weighted(x, y, len(labels), data.seed)
        note += f"; {len(hard)} hard negatives x{HARD_NEGATIVE_COPIES}"
    return Detector(labels, _head_scorer(head, labels), {label: LISTEN.threshold for label in labels}, 2, note=note,
                    level_dbfs=level_dbfs)


def train_spliced_hard(data: TrainingData) -> Detector:
    """train_spliced with one round of hard-negative mining."""
    return train_spliced(data, hard_negatives=True)


def train_spliced_level(data: TrainingData) -> Detector:
    """train_spliced on windows levelled to LEVEL_DBFS (boost capped at WINDOW_MAX_GAIN_DB)."""
    return train_spliced(data, level_dbfs=LEVEL_DBFS)


def variant_fit(args, class_names: list[str], label_smoothing: float = 0.0, dropout: tuple | None = None):
    """stream_fit with the head trained otherwise: label smoothing s (targets 1 - s + s/k and s/k, so
    softmax scores stop saturating at 1.0 and thresholds between 0.5 and 1 keep meaning something) and/or
    dropout (input rate, hidden rate; inactive when scoring: does a head that fits its training voices
    less closely do better on new ones?)."""
    import keras

    import stream_training
    from model import CustomModel, build_classifier_head

    def fit(x, y):
        keras.utils.set_random_seed(args.seed)
        head = build_classifier_head(len(class_names)) if not dropout else keras.Sequential([
            keras.Input(shape=(YAMNET.embedding_size,), name="embedding"), keras.layers.Dropout(dropout[0]),
            keras.layers.Dense(TRAINING.hidden_units, activation="relu", name="hidden"),
            keras.layers.Dropout(dropout[1]), keras.layers.Dense(len(class_names), name="logits")])
        targets = keras.utils.to_categorical(y, len(class_names)) if label_smoothing else y
        loss = (keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
                if label_smoothing else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        head.compile(optimizer=keras.optimizers.Adam(TRAINING.learning_rate), metrics=["accuracy"], loss=loss)
        history = head.fit(x, targets, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                           class_weight=stream_training.balanced_weights(y, len(class_names)))
        return CustomModel(head=head, class_names=class_names, meta={}), history
    return fit


def train_default(data: TrainingData, window_level: bool = True, clip_frames: bool = True,
                  label_smoothing: float = 0.0, dropout: tuple | None = None) -> Detector:
    """train.py's stream training (stream_training.py), as `python train.py training/ models/` runs it with
    the targets in training/digit_7/ and the background recordings in training/background/: clips levelled
    and embedded as 8 views, also spliced into the background; background windows; hard negatives; the
    operating point per class from 3-fold cross-fitting (folds by speaker, as --cv 3 --group-by would)."""
    import stream_training
    from dataset import EmbeddingCache, clip_embeddings
    from params import BACKGROUND_CLASS as BACKGROUND
    from tflite_backend import lite_yamnet_for
    from train import stream_fit

    lite = lite_yamnet_for(data.embedder.yamnet.handle)
    cache = EmbeddingCache(data.embedder.cache.folder, lite.identity)
    class_names = list(data.files_by_class) + [BACKGROUND]
    waveforms, labels, frames, groups = [], [], [], []
    for index, (name, takes) in enumerate(data.files_by_class.items()):
        for take, group in zip(takes, data.groups.get(name) or range(len(takes))):
            digest = hashlib.sha256(take.tobytes()).hexdigest() + f"-views{CLIP.views}-rms{CLIP.level_dbfs:g}dBFS"
            embedded = cache.get(digest)
            if embedded is None:
                embedded = clip_embeddings(take, lite, CLIP.views, CLIP.level_dbfs)
                cache.put(digest, embedded)
            waveforms.append(take)
            labels.append(index)
            frames.append(embedded if clip_frames else embedded[:0])
            groups.append(group)
    order = sorted(set(groups), key=str)
    rng = np.random.default_rng(data.seed)
    fold_of_group = {g: i % STREAM.folds for i, g in enumerate(rng.permutation(order))}
    parts, part_folds = stream_training.split_recordings(data.background, STREAM.folds)
    stream_data = stream_training.StreamData(class_names, waveforms, labels, frames,
                                             [fold_of_group[g] for g in groups], parts, part_folds)
    embed = stream_training.WindowEmbedder(lite, CLIP.level_dbfs if window_level else None, cache)
    fit_args = SimpleNamespace(seed=data.seed, epochs=STREAM.epochs, batch_size=STREAM.batch_size)
    fit = (variant_fit(fit_args, class_names, label_smoothing, dropout) if label_smoothing or dropout
           else stream_fit(fit_args, class_names))

    calibration = stream_training.cross_fit(fit, stream_data, embed, STREAM.folds, data.seed, log=lambda *a: None)
    background = len(class_names) - 1
    points = stream_training.choose_operating_points(calibration, class_names, background, data.max_false_per_hour)
    model, _history, counts = stream_training.train_detector(fit, stream_data, list(range(len(waveforms))),
                                                             list(range(len(parts))), embed,
                                                             np.random.default_rng([data.seed, STREAM.folds]))
    point = points[0]
    note = (f"{counts}; op {point.threshold:.4g}/{point.min_frames}w expected recall {point.expected_recall:.0%} "
            f"at {point.expected_false_per_hour:.2g}/h ({point.observed_false_alarms} seen in "
            f"{point.background_hours:.2f} h)" + ("" if point.meets else " (budget NOT met)"))
    return Detector(class_names, model.frame_probabilities, {p.label: p.threshold for p in points} | {BACKGROUND: 1.0},
                    {p.label: p.min_frames for p in points}, note, point.as_dict(), CLIP.level_dbfs,
                    listener=lambda waveform: stream_training.window_scores(model, *embed(waveform), background))


@dataclass
class Row:
    name: str
    recipe: object                  # train_*(TrainingData) -> Detector
    min_frames: int | None = None   # override the detector's (seed at 1 and 2 windows)
    calibrate: bool = False         # train on 4 speakers, keeping the 5th for the operating point
    operating_point: bool = False   # choose (threshold, min_frames) on the 5th speaker's streams
    threshold: float | None = None  # override the detector's thresholds (the default's head at 0.5)
    smoothing: int = 1              # score = mean of the last N windows' scores (1: none), before detection and PSDS


ROWS = {
    "default": [Row("default: train.py streams + op. point", train_default),
                Row("default's head, 0.5, 1 window", train_default, 1, threshold=0.5),
                Row("default's head, 0.5, 2 windows", train_default, 2, threshold=0.5)],
    "dropout": [Row("default, dropout 0.2 / 0.5", functools.partial(train_default, dropout=(0.2, 0.5)))],
    "mean": [Row("default's head, mean of 2 w, 0.5, 1 w", train_default, 1, threshold=0.5, smoothing=2),
             Row("default's head, mean of 3 w, 0.5, 1 w", train_default, 1, threshold=0.5, smoothing=3)],
    "nolevel": [Row("default, windows not levelled", functools.partial(train_default, window_level=False))],
    "noclips": [Row("default, no clip frames", functools.partial(train_default, clip_frames=False))],
    "smooth": [Row("default, label smoothing 0.1", functools.partial(train_default, label_smoothing=0.1))],
    "seed": [Row("seed (train.py), 0.5, 1 window", train_seed, 1),
             Row("seed (train.py), 0.5, 2 windows", train_seed, 2),
             Row("seed + operating point", train_seed, calibrate=True, operating_point=True)],
    "spliced": [Row("spliced, 0.5, 1 window", train_spliced, 1, calibrate=True),
                Row("spliced, 0.5, 2 windows", train_spliced, calibrate=True),
                Row("spliced + operating point", train_spliced, calibrate=True, operating_point=True)],
    "level": [Row("spliced + levelled windows, 0.5, 1 w", train_spliced_level, 1, calibrate=True),
              Row("spliced + levelled windows, 0.5, 2 w", train_spliced_level, calibrate=True),
              Row("spliced + levelled + op. point", train_spliced_level, calibrate=True, operating_point=True)],
    "hard": [Row("spliced + hard negatives, 0.5, 2 w", train_spliced_hard, calibrate=True),
             Row("spliced + hard neg. + op. point", train_spliced_hard, calibrate=True, operating_point=True)],
}


# --- evaluation --------------------------------------------------------------------------------------------

@dataclass
class Result:
    counts: dict = field(default_factory=dict)       # scenario -> pooled ClassCounts of the target
    dcase: dict = field(default_factory=dict)        # scenario -> sed_eval overall
    psds: dict = field(default_factory=dict)         # scenario -> PSDS
    streams: dict = field(default_factory=dict)      # scenario -> [(refs, detections, duration)]
    psds_streams: dict = field(default_factory=dict)
    on_speech: dict = field(default_factory=dict)    # scenario -> false alarms overlapping non-target speech
    separability: list = field(default_factory=list)  # per fold: share of other digits as high as 50/80/95 % of targets
    train_s: float = 0.0
    run_s: float = 0.0
    notes: list = field(default_factory=list)


def false_alarms_on_speech(references, detections, label: str, collar_s: float = stream_eval.COLLAR_S) -> int:
    """How many of the false alarms (as match_events counts them) overlap a non-target reference
    (another digit, a speech stretch)."""
    targets = [(a - collar_s, b + collar_s) for a, b, name in references if name == label]
    others = [(a, b) for a, b, name in references if name != label]
    false = [d for d in detections if d.label == label
             and not any(d.onset_s <= hi and d.offset_s >= lo for lo, hi in targets)]
    return sum(any(d.onset_s <= b and d.offset_s >= a for a, b in others) for d in false)


def smoothed(scores: np.ndarray, windows: int) -> np.ndarray:
    """Each window's scores replaced by the mean of its own and the previous windows-1 (causal, as a
    listener could publish it)."""
    if windows <= 1:
        return scores
    padded = np.concatenate([np.repeat(scores[:1], windows - 1, axis=0), scores])
    sums = np.cumsum(np.concatenate([np.zeros((1, scores.shape[1])), padded]), axis=0)
    return (sums[windows:] - sums[:-windows]) / windows


SEPARABILITY_RECALLS = (0.5, 0.8, 0.95)


def separability(times: np.ndarray, scores: np.ndarray, references, label: str) -> list[float]:
    """Utterance peaks on a dense stream: for each recall in SEPARABILITY_RECALLS, the share of the
    non-target utterances whose peak score reaches the threshold that finds that share of the targets.
    No threshold or number of windows can do better than this (bar the windows between utterances)."""
    peaks = {True: [], False: []}
    for start, end, name in references:
        over = (times < end) & (times + YAMNET.patch_window_seconds > start)
        peaks[name == label].append(scores[over].max() if over.any() else 0.0)
    targets, others = np.array(peaks[True]), np.array(peaks[False])
    return [float(np.mean(others >= np.quantile(targets, 1 - recall))) for recall in SEPARABILITY_RECALLS]


def evaluate(detector: Detector, row: Row, streams: dict, label: str, result: Result, embedder: Embedder) -> None:
    """Score every test stream (scenario -> [Stream]) and add its counts to `result`."""
    min_frames = row.min_frames or detector.min_frames
    for scenario, items in streams.items():
        for stream in items:
            detector.stream_scores(stream, embedder)  # YAMNet (then cached) is not part of the run time
            start = time.perf_counter()
            scores = smoothed(detector.stream_scores(stream, embedder), row.smoothing)
            times = window_starts(len(scores))
            events = stream_eval.detect_events(times, scores, detector.labels, detector.thresholds, min_frames)
            result.run_s += time.perf_counter() - start
            detections = stream_eval.pair_events(events)
            counts = stream_eval.match_events(stream.references, detections, stream.duration_s, [label])[label]
            result.counts[scenario] = result.counts.get(scenario, stream_eval.ClassCounts()) + counts
            result.on_speech[scenario] = result.on_speech.get(scenario, 0) + false_alarms_on_speech(
                stream.references, detections, label)
            result.streams.setdefault(scenario, []).append((stream.references, detections, stream.duration_s))
            target_scores = scores[:, detector.labels.index(label)]
            result.psds_streams.setdefault(scenario, []).append(
                (times, target_scores[:, None], stream.references, stream.duration_s))
            if scenario == "dense":
                result.separability.append(separability(times, target_scores, stream.references, label))


def finish(result: Result, label: str) -> None:
    for scenario, streams in result.streams.items():
        result.dcase[scenario] = stream_eval.dcase_event_metrics(streams, [label])["overall"]
        result.psds[scenario] = stream_eval.psds_score(result.psds_streams[scenario], [label])["psds"]
    result.streams, result.psds_streams = {}, {}


def _f(value, spec):
    return "-" if value is None else spec.format(value)


def format_table(rows: list[tuple[str, Result]], scenarios: list[str]) -> str:
    """One markdown table: per scenario recall (found/targets), false alarms per hour, the share of
    false alarms on non-target speech, median latency, DCASE F1, PSDS; then train and run seconds."""
    width = max(len(name) for name, _ in rows)
    head, rule = f"| {'recipe':{width}s} |", f"|{'-' * (width + 2)}|"
    for scenario in scenarios:
        head += f" {scenario + ' recall':>{len(scenario) + 14}s} |  FA/h | on speech | latency |   F1 | PSDS |"
        rule += f"{'-' * (len(scenario) + 15)}:|------:|----------:|--------:|-----:|-----:|"
    head += " train s | run s |"
    rule += "--------:|------:|"
    lines = [head, rule]
    for name, r in rows:
        line = f"| {name:{width}s} |"
        for scenario in scenarios:
            c = r.counts.get(scenario, stream_eval.ClassCounts())
            recall = _f(c.recall, "{:.1%}") + f" ({c.found}/{c.references})"
            speech = _f(r.on_speech.get(scenario, 0) / c.false_alarms if c.false_alarms else None, "{:.0%}")
            line += (f" {recall:>{len(scenario) + 14}s} | {_f(c.false_per_hour, '{:.1f}'):>5s} | {speech:>9s} |"
                     f" {_f(c.median_latency_s, '{:.2f} s'):>7s} | {_f(r.dcase.get(scenario, {}).get('f1'), '{:.2f}'):>4s} |"
                     f" {_f(r.psds.get(scenario), '{:.2f}'):>4s} |")
        line += f" {r.train_s:7.0f} | {r.run_s:5.1f} |"
        lines.append(line)
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="FSDD target-digit detection on streams (dense confusers, sparse background): recall, "
                    "false alarms per hour, latency, DCASE F1; seed recipe vs candidates, one table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD, help="FSDD recordings folder")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="embedding cache (outside the repo)")
    parser.add_argument("--target", type=int, default=7, choices=range(10), metavar="DIGIT", help="the digit to detect")
    parser.add_argument("--recipes", default="seed,default",
                        help=f"comma-separated recipe groups: {', '.join(ROWS)}")
    parser.add_argument("--folds", type=int, default=6, help="how many held-out speakers (folds) to run, 1..6")
    parser.add_argument("--seed", type=int, default=0, help="seed for streams, splicing and weights")
    parser.add_argument("--max-false-per-hour", type=float, default=TARGET_FALSE_PER_HOUR,
                        help="the operating points' budget (a larger one checks calibration where events are seen)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="draw the first fold's streams for each recipe to PNGs in this folder")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None, help="YAMNet handle (default: bundled)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.recipes.split(",") if g.strip()]
    unknown = [g for g in groups if g not in ROWS]
    if unknown or not groups:
        parser.error(f"--recipes: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(ROWS)}")
    if not 1 <= args.folds <= 6:
        parser.error("--folds must be 1..6")
    fsdd = fsdd_files(args.fsdd)
    if len(fsdd) < 100:
        print(f"error: FSDD not found at {args.fsdd}; pass --fsdd", file=sys.stderr)
        return 1

    from audio_util import load_audio_16k_mono
    from yamnet_classifier import YamnetError, load_yamnet, resolve_yamnet_handle

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    try:
        yamnet = load_yamnet(resolve_yamnet_handle(args.yamnet))
    except YamnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    embedder = Embedder(yamnet, args.cache_dir)
    start_all = time.perf_counter()
    label = f"digit_{args.target}"
    speakers = sorted({s for _, _, s in fsdd})
    takes = {s: [(load_audio_16k_mono(p), d) for p, d, sp in fsdd if sp == s] for s in speakers}
    log(f"loaded {len(fsdd)} FSDD takes of {len(speakers)} speakers in {time.perf_counter() - start_all:.0f} s")

    # Per speaker, reproducibly: test streams (with targets) and background recordings (without).
    material = {}
    for i, s in enumerate(speakers):
        rng = np.random.default_rng([args.seed, args.target, i])
        targets = [w for w, d in takes[s] if d == args.target]
        others = [w for w, d in takes[s] if d != args.target]
        dense, dense_refs = dense_stream(takes[s], args.target, label, rng)
        sparse, sparse_refs = sparse_stream(targets, others, label, rng)
        speech_bed, _ = speech_run([others[j] for j in rng.permutation(len(others))], rng)
        bed, _ = noise_bed(NOISE_BED_MINUTES * 60, rng)
        material[s] = dict(targets=targets, dense=(dense, dense_refs), sparse=(sparse, sparse_refs),
                           background=[speech_bed, bed])

    for level_dbfs in (None, LEVEL_DBFS):
        n, m, diff = check_long_run(embedder, material[speakers[0]]["dense"][0][:60 * SAMPLE_RATE], level_dbfs)
        log(f"check ({'plain' if level_dbfs is None else 'levelled'} windows): one YAMNet run over 60 s gives {n} "
            f"windows, StreamFramer {m}; max |embedding difference| {diff:.2e}")
        if n != m or diff > 1e-3:
            print(f"error: one-run embeddings differ from window-by-window ones ({n} vs {m} windows, {diff:.2e})",
                  file=sys.stderr)
            return 1

    embed_start = time.perf_counter()
    streams = {s: {scenario: [Stream(f"{s} {scenario}", wave, refs, len(wave) / SAMPLE_RATE)]
                   for scenario, (wave, refs) in (("dense", material[s]["dense"]), ("sparse", material[s]["sparse"]))}
               for s in speakers}
    for s in speakers:
        for (stream,) in streams[s].values():
            embedder(stream.waveform)
    log(f"test streams embedded in {time.perf_counter() - embed_start:.0f} s "
        f"({embedder.audio_s / 60:.0f} min of audio computed, rest cached)")

    rows = [row for g in groups for row in ROWS[g]]
    results = {row.name: Result() for row in rows}
    trained = {}  # (recipe, fold, calibrate) -> (detector, seconds): rows that differ only in min_frames share it
    for fold, held_out in enumerate(speakers[:args.folds]):
        rest = [s for s in speakers if s != held_out]
        calibration_speaker = rest[fold % len(rest)]
        for row in rows:
            train_speakers = [s for s in rest if s != calibration_speaker] if row.calibrate else rest
            key = (row.recipe, fold, row.calibrate)
            if key not in trained:
                data = TrainingData({label: [w for s in train_speakers for w in material[s]["targets"]]},
                                    [w for s in train_speakers for w in material[s]["background"]],
                                    [st for sc in streams[calibration_speaker].values() for st in sc],
                                    embedder, args.seed,
                                    {label: [s for s in train_speakers for _ in material[s]["targets"]]},
                                    args.max_false_per_hour)
                start = time.perf_counter()
                trained[key] = (row.recipe(data), time.perf_counter() - start)
            detector, seconds = trained[key]
            if row.operating_point:
                start = time.perf_counter()
                detector = calibrate(detector, [st for sc in streams[calibration_speaker].values() for st in sc],
                                     embedder, args.max_false_per_hour)
                seconds += time.perf_counter() - start
            result = results[row.name]
            result.train_s += seconds
            if row.threshold is not None:
                detector = dataclasses.replace(detector, thresholds={label: row.threshold for label in detector.labels})
            before = dict(result.counts)
            evaluate(detector, row, streams[held_out], label, result, embedder)
            measured = ", ".join(
                f"{sc} {c.found - before.get(sc, stream_eval.ClassCounts()).found} found, "
                f"{c.false_alarms - before.get(sc, stream_eval.ClassCounts()).false_alarms} false alarms in "
                f"{(c.background_s - before.get(sc, stream_eval.ClassCounts()).background_s) / 3600:.2f} h"
                for sc, c in result.counts.items())
            result.notes.append(f"fold {held_out}: {detector.note}; measured: {measured}")
            c = {sc: result.counts[sc] for sc in result.counts}
            log(f"  {row.name} | test {held_out}: {detector.note} | cumulative " +
                ", ".join(f"{sc} recall {_f(v.recall, '{:.0%}')} FA/h {_f(v.false_per_hour, '{:.0f}')}" for sc, v in c.items()))
            if args.plot and fold == 0:
                for scenario, (stream,) in streams[held_out].items():
                    scores = smoothed(detector.stream_scores(stream, embedder), row.smoothing)
                    times = window_starts(len(scores))
                    events = stream_eval.detect_events(times, scores, detector.labels, detector.thresholds,
                                                      row.min_frames or detector.min_frames)
                    safe = "".join(ch if ch.isalnum() else "_" for ch in row.name)
                    stream_eval.plot_stream(args.plot / f"{safe}_{scenario}.png", times, scores, detector.labels,
                                            stream.references, detector.thresholds, events, title=f"{row.name}: {stream.name}")
    for result in results.values():
        finish(result, label)

    first = results[rows[0].name].counts
    dense_h, sparse_h = first["dense"].background_s / 3600, first["sparse"].background_s / 3600
    print(f"FSDD target digit {args.target} on streams, leave-one-speaker-out ({args.folds} folds); "
          f"dense {dense_h:.2f} h and sparse {sparse_h:.2f} h of background; seed {args.seed}; operating points "
          f"for <= {args.max_false_per_hour:g} false alarm(s) per hour")
    print(format_table([(row.name, results[row.name]) for row in rows], ["dense", "sparse"]))
    print(f"recall (found/targets), FA/h = false alarms per hour of background, latency = median sound start -> "
          f"event publishable, F1 = DCASE event-based onset F1 (sed_eval, 0.5 s collar), PSDS = threshold-free "
          f"(sed_scores_eval). YAMNet: {embedder.seconds:.0f} s for {embedder.audio_s / 60:.0f} min of audio not "
          f"cached; total wall time {time.perf_counter() - start_all:.0f} s")
    print("separability on dense streams (utterance peaks, mean of folds): to find "
          f"{'/'.join(f'{r:.0%}' for r in SEPARABILITY_RECALLS)} of the held-out speaker's targets, this share of "
          "their other digits scores as high (no threshold or number of windows can do better):")
    shown = set()
    for row in rows:
        share = tuple(np.mean(results[row.name].separability, axis=0).round(3)) if results[row.name].separability else ()
        if share and (row.recipe, row.calibrate, row.smoothing) not in shown:
            shown.add((row.recipe, row.calibrate, row.smoothing))
            print(f"  {row.name}: " + " / ".join(f"{v:.0%}" for v in share))
    for row in rows:  # what each operating point promised, fold by fold (calibration: measured <= 2x promised?)
        if row.operating_point or (row.recipe is train_default and row.threshold is None):
            print(f"{row.name}:\n  " + "\n  ".join(results[row.name].notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
