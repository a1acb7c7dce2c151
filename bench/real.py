"""Real recordings decide: the seed's recipe beside train.py's default (and any option) on real
recorded audio, split by source, one table.

    python bench/real.py                           # every row, every target, 3 folds (docs/performance.md#real-recordings: time)
    python bench/real.py --quick                   # one target per row, 2 folds
    python bench/real.py --rows game --recipes seed,default,...   # --list shows the recipes

Install the sources first (bench only): `sudo apt install supertux-data frozen-bubble-data pingus-data
sound-theme-freedesktop oxygen-sounds` and `pip install pyroomacoustics`; takes and streams are
described in bench/real_data.py. A recipe is a list of train.py flags: every model here is trained
by `train.main` on a training folder laid out as a user would (`<sound>/` takes, `background/`),
and judged by `evaluate.main` (clips) or by listen.py's windows and event rules (streams).

Rows (test sounds, tracks, rooms and sources are never seen in training):
- clips, one recording: a sound (4 in turn: a game's jingle, two alert sounds, another game's
  jingle) against a background/ of 20 five-second clips of other real sounds; 20 takes to train on,
  20 new takes and 40 background clips of other sources to test on; balanced accuracy (the mean of
  the two classes' recall) as evaluate.py prints it, and what train.py promised beside it;
- clips, a kind of sound: a digit ("seven") said by 5 FSDD speakers against the same kind of
  background, tested on the 6th speaker (6 folds);
- game stream: a SuperTux jingle (3 in turn) among unseen tracks of SuperTux's music with its
  effects: 20 takes and 30 min of the other tracks (long files) to train on; 20 takes in about 30
  min of held-out tracks to find, at SNRs -6..+12 dB; recall, false alarms per hour, median onset
  latency, DCASE event F1 (sed_eval, onset +-0.5 s) and PSDS (sed_scores_eval);
- household stream: an alert sound (3 in turn) among speech, music, noises and other alerts; the same;
- calibration: the false alarms per hour each stream model promised (model.json) beside what it
  raised on the held-out stream, and the promise made from the same background cut into 5 s files.
"""

import argparse
import contextlib
import io
import json
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import real_data as rd  # noqa: E402
from audio_files import write_wav  # noqa: E402
from params import BACKGROUND_CLASS, SAMPLE_RATE, YAMNET  # noqa: E402

DEFAULT_CACHE = Path.home() / ".cache" / "audio2mqtt" / "bench-real"
TAKES = 20                     # clips of the sound to train on, and to test on
BACKGROUND_CLIPS = 20          # 5 s background clips to train on (the "20 each")
TEST_BACKGROUND_CLIPS = 40
CLIP_SECONDS = 5.0
TAKE_SNR_DB = (10.0, 30.0)     # a user's takes: the sound over their room, clearly heard
STREAM_SNR_DB = (-6.0, 12.0)   # sounds to find in a stream: from under the music to well above it
LEVEL_DBFS = (-40.0, -15.0)    # a take's or clip's level: microphones and distances differ
STREAM_LEVEL_DBFS = -25.0
TRAIN_BACKGROUND_MINUTES = 30.0
HOUSEHOLD_RECORDING_MINUTES = 5.0  # training background: the living room recorded in pieces this long
ROOMS = 40                     # impulse responses per side (training and test rooms never shared)
THRESHOLDS = 1 / (1 + np.exp(-np.linspace(-6, 12, 200)))  # the sweep for "false alarms at the seed's recall"

CLIP_TARGETS = {"lifeup": rd.SUPERTUX / "sounds" / "lifeup.wav",
                "phone-incoming-call": rd.FREEDESKTOP / "phone-incoming-call.oga",
                "Oxygen-Im-New-Mail": rd.OXYGEN / "Oxygen-Im-New-Mail.ogg",
                "lose": rd.FROZEN_BUBBLE / "lose.ogg"}
GAME_TARGETS = {"leveldone": rd.SUPERTUX / "music" / "misc" / "leveldone.ogg",
                "tada": rd.SUPERTUX / "sounds" / "tada.ogg",
                "invincible_start": rd.SUPERTUX / "sounds" / "invincible_start.ogg"}
HOUSEHOLD_TARGETS = {"phone-incoming-call": rd.FREEDESKTOP / "phone-incoming-call.oga",
                     "alarm-clock-elapsed": rd.FREEDESKTOP / "alarm-clock-elapsed.oga",
                     "Oxygen-Im-Phone-Ring": rd.OXYGEN / "Oxygen-Im-Phone-Ring.ogg"}
DIGIT = 7

SEED_FLAGS = ("--views", "1", "--no-level", "--no-balance", "--no-refit", "--cv", "5", "--splice-copies", "0",
              "--no-hard-negatives", "--no-operating-point", "--epochs", "50", "--batch-size", "32")
RECIPES = {
    "seed": SEED_FLAGS,        # the seed: plain clips, 80 % of files, 50 epochs; listener at 0.5, 1 window
    "default": (),             # python train.py training/ models/
    # levelling, an option since it lost on real recordings (the previous default)
    "level": ("--level-dbfs", "-20"),
    # the default without one of its parts (each is a train.py flag)
    "views1": ("--views", "1"),
    "nobalance": ("--no-balance",),
    "norefit": ("--no-refit",),
    "nosplice": ("--splice-copies", "0"),
    "nohard": ("--no-hard-negatives",),
    "nopoint": ("--no-operating-point",),
    # the seed with one part of the default
    "seed+point": tuple(f for f in SEED_FLAGS if f != "--no-operating-point"),
    "seed+balance": tuple(f for f in SEED_FLAGS if f != "--no-balance"),
}


# --- material: what a user would have, written as a user would lay it out ---------------------------

@dataclass
class Fold:
    """One target in one fold: a training folder, and either test clips (a folder) or a test stream."""

    row: str
    target: str
    fold: int
    train_dir: Path
    test_dir: Path | None = None
    stream: rd.Stream | None = None
    cut_dir: Path | None = None   # the same training background cut into 5 s files (calibration)
    notes: dict = field(default_factory=dict)


def level(rng) -> float:
    return float(rng.uniform(*LEVEL_DBFS))


def write_takes(folder: Path, sound: np.ndarray, beds: list[np.ndarray], rooms, rng, count: int, prefix: str) -> None:
    for k in range(count):
        clip = rd.take(sound, rooms[int(rng.integers(len(rooms)))], beds[int(rng.integers(len(beds)))],
                       rng.uniform(*TAKE_SNR_DB), level(rng), rng)
        write_wav(folder / f"{prefix}{k:02d}.wav", clip)


def write_background_clips(folder: Path, sources: list, store, rooms, rng, count: int, skip_digit=None) -> None:
    """`count` 5 s clips, each from a source drawn in turn from a shuffled list, named after the source
    (clips of one recording share a name, as audio_util.py background names them)."""
    order = [sources[i] for i in rng.permutation(len(sources))]
    for k in range(count):
        source = order[k % len(order)]
        audio = rd.source_audio(source, store, rng, skip_digit)
        clip = rd.background_clip(audio, rooms[int(rng.integers(len(rooms)))], CLIP_SECONDS, level(rng), rng)
        write_wav(folder / f"{source.group}_bg{k:04d}.wav", clip)


def clip_row_folds(work: Path, store, rooms, targets: dict, folds: int, seed: int) -> list[Fold]:
    """clips, one recording: each target against 5 s clips of every other kind of real sound."""
    out = []
    for t, (name, path) in enumerate(targets.items()):
        pool = [s for s in rd.household_sources(store, exclude=(path.stem,)) if s.path.parent != rd.FSDD_DIR]
        pool += rd.game_tracks(store)
        sound = store(path)
        for fold, test_sources in enumerate(rd.split_groups(pool, folds, seed + t)):
            if fold >= folds:
                break
            rng = np.random.default_rng([seed, t, fold])
            train_sources = [s for s in pool if s not in test_sources]
            base = work / "clips" / name / f"fold{fold}"
            train_beds = [store(s.path) for s in train_sources]
            test_beds = [store(s.path) for s in test_sources]
            write_takes(base / "train" / name, sound, train_beds, rooms["train"], rng, TAKES, "take")
            write_background_clips(base / "train" / BACKGROUND_CLASS, train_sources, store, rooms["train"], rng,
                                   BACKGROUND_CLIPS)
            write_takes(base / "test" / name, sound, test_beds, rooms["test"], rng, TAKES, "take")
            write_background_clips(base / "test" / BACKGROUND_CLASS, test_sources, store, rooms["test"], rng,
                                   TEST_BACKGROUND_CLIPS)
            out.append(Fold("clips: one recording", name, fold, base / "train", test_dir=base / "test"))
    return out


def kind_row_folds(work: Path, store, rooms, folds: int, seed: int) -> list[Fold]:
    """clips, a kind of sound: FSDD's "seven" from 5 speakers, tested on the 6th (and that speaker's
    other digits among the test background)."""
    out = []
    speakers = rd.fsdd_speakers()
    others = [s for s in rd.household_sources(store) if s.path.parent != rd.FSDD_DIR]
    split = rd.split_groups(others, 2, seed)
    name = f"digit_{DIGIT}"
    for fold, held_out in enumerate(speakers[:folds]):
        rng = np.random.default_rng([seed, 100, fold])
        train_speakers = [s for s in speakers if s != held_out]
        train_sources, test_sources = split[fold % 2] + train_speakers, split[1 - fold % 2] + [held_out]
        base = work / "kind" / f"fold{fold}"
        beds = {side: [store(s.path) for s in sources if s.path.parent != rd.FSDD_DIR]
                for side, sources in (("train", train_sources), ("test", test_sources))}
        for side, who, count in (("train", train_speakers, TAKES), ("test", [held_out], TAKES)):
            takes = [p for speaker in who for p in rd.fsdd_takes(speaker.path.name, DIGIT)]
            for k, i in enumerate(rng.permutation(len(takes))[:count]):
                clip = rd.take(store(takes[i]), rooms[side][int(rng.integers(ROOMS))],
                               beds[side][int(rng.integers(len(beds[side])))], rng.uniform(*TAKE_SNR_DB), level(rng), rng)
                write_wav(base / side / name / f"{takes[i].stem}.wav", clip)
        write_background_clips(base / "train" / BACKGROUND_CLASS, train_sources, store, rooms["train"], rng,
                               BACKGROUND_CLIPS, skip_digit=DIGIT)
        write_background_clips(base / "test" / BACKGROUND_CLASS, test_sources, store, rooms["test"], rng,
                               TEST_BACKGROUND_CLIPS, skip_digit=DIGIT)
        out.append(Fold("clips: a kind of sound", name, fold, base / "train", test_dir=base / "test",
                        notes={"held_out_speaker": held_out.group}))
    return out


def loaded(sources, store, rng, skip_digit=None) -> list[np.ndarray]:
    return [rd.source_audio(s, store, rng, skip_digit) for s in sources]


def write_recordings(folder: Path, recordings: list[tuple[str, np.ndarray]], rooms, rng) -> list[np.ndarray]:
    """Long background files, each through its own training room; returns what was written."""
    written = []
    for name, audio in recordings:
        heard = rd.scaled_to(rd.in_room(audio, rooms[int(rng.integers(len(rooms)))])[:len(audio)], level(rng))
        write_wav(folder / f"{name}.wav", heard)
        written.append((name, heard))
    return written


def write_cut(folder: Path, recordings: list[tuple[str, np.ndarray]]) -> None:
    """The same background recordings cut into 5 s files (calibration: the promise must not change)."""
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    for name, audio in recordings:
        for k in range(0, len(audio) - n + 1, n):
            write_wav(folder / f"{name}_bg{k // n:04d}.wav", audio[k:k + n])


def stream_snrs(rng) -> list[float]:
    return list(np.linspace(*STREAM_SNR_DB, TAKES)[rng.permutation(TAKES)])


def game_row_folds(work: Path, store, rooms, targets: dict, folds: int, seed: int) -> list[Fold]:
    """game stream: a jingle among unseen tracks of the same game's music, its effects sprinkled in."""
    out = []
    tracks = rd.game_tracks(store)
    effects = rd.game_effects(exclude=tuple(p.stem for p in GAME_TARGETS.values()))
    track_folds = rd.split_groups(tracks, folds, seed)
    effect_folds = rd.split_groups(effects, folds, seed)
    for t, (name, path) in enumerate(targets.items()):
        sound = store(path)
        for fold in range(folds):
            rng = np.random.default_rng([seed, 200 + t, fold])
            train_tracks = [s for f in range(folds) if f != fold for s in track_folds[f]]
            train_effects = loaded([s for f in range(folds) if f != fold for s in effect_folds[f]], store, rng)
            test_effects = loaded(effect_folds[fold], store, rng)
            base = work / "game" / name / f"fold{fold}"
            chosen, minutes = [], 0.0
            for i in rng.permutation(len(train_tracks)):
                if minutes >= TRAIN_BACKGROUND_MINUTES:
                    break
                chosen.append(train_tracks[i])
                minutes += store.duration(train_tracks[i].path) / 60
            beds = [store(s.path) for s in chosen]
            write_takes(base / "train" / name, sound, beds, rooms["train"], rng, TAKES, "take")
            recordings = [(s.name, rd.sprinkled(store(s.path), train_effects, rng)) for s in chosen]
            written = write_recordings(base / "train" / BACKGROUND_CLASS, recordings, rooms["train"], rng)
            write_cut(base / "cut" / BACKGROUND_CLASS, written)
            bed = rd.sprinkled(rd.joined([store(s.path) for s in track_folds[fold]]), test_effects, rng)
            stream = rd.stream_with(bed, [(sound, name)] * TAKES, rooms["test"][int(rng.integers(ROOMS))],
                                    stream_snrs(rng), STREAM_LEVEL_DBFS, rng)
            out.append(Fold("game stream", name, fold, base / "train", stream=stream, cut_dir=base / "cut",
                            notes={"train_minutes": round(minutes, 1)}))
    return out


def household_beds(sources: list, store, rng, minutes: float | None) -> list[tuple[str, np.ndarray]]:
    """Recordings of a living room: the long sources (speech, music) in a random order, cut into pieces
    of about `minutes` (None: one piece), the short ones (noises, alerts, a word) sprinkled in."""
    long_sources = [s for s in sources if s.kind in ("speech", "music") and
                    (s.path.parent == rd.FSDD_DIR or store.duration(s.path) >= 10)]
    short = loaded([s for s in sources if s not in long_sources], store, rng)
    audio = rd.joined(loaded([long_sources[i] for i in rng.permutation(len(long_sources))], store, rng))
    audio = rd.sprinkled(audio, short, rng, every_s=(5.0, 20.0))
    if minutes is None:
        return [("room", audio)]
    piece = int(minutes * 60 * SAMPLE_RATE)
    return [(f"room{k // piece:02d}", audio[k:k + piece]) for k in range(0, len(audio), piece)
            if len(audio) - k > piece // 4]


def household_row_folds(work: Path, store, rooms, targets: dict, folds: int, seed: int) -> list[Fold]:
    """household stream: an alert sound among speech, music, noises and other alerts."""
    out = []
    for t, (name, path) in enumerate(targets.items()):
        sound = store(path)
        pool = rd.household_sources(store, exclude=tuple(p.stem for p in HOUSEHOLD_TARGETS.values()))
        source_folds = rd.split_groups(pool, folds, seed)
        for fold in range(folds):
            rng = np.random.default_rng([seed, 300 + t, fold])
            train_sources = [s for f in range(folds) if f != fold for s in source_folds[f]]
            base = work / "household" / name / f"fold{fold}"
            recordings = household_beds(train_sources, store, rng, HOUSEHOLD_RECORDING_MINUTES)
            write_takes(base / "train" / name, sound, [a for _, a in recordings], rooms["train"], rng, TAKES, "take")
            written = write_recordings(base / "train" / BACKGROUND_CLASS, recordings, rooms["train"], rng)
            write_cut(base / "cut" / BACKGROUND_CLASS, written)
            bed = rd.joined([a for _, a in household_beds(source_folds[fold], store, rng, None)])
            stream = rd.stream_with(bed, [(sound, name)] * TAKES, rooms["test"][int(rng.integers(ROOMS))],
                                    stream_snrs(rng), STREAM_LEVEL_DBFS, rng)
            out.append(Fold("household stream", name, fold, base / "train", stream=stream, cut_dir=base / "cut",
                            notes={"train_minutes": round(sum(len(a) for _, a in written) / SAMPLE_RATE / 60, 1)}))
    return out


# --- training and judging ------------------------------------------------------------------------------

def train(recipe: str, flags, train_dir: Path, model_dir: Path, cache_dir: Path, log_dir: Path) -> tuple[float, dict]:
    """train.main on a training folder: (seconds, model.json)."""
    import train as train_cli

    out = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = train_cli.main([str(train_dir), str(model_dir), *flags, "--no-tflite", "--quiet",
                               "--cache-dir", str(cache_dir)])
    seconds = time.perf_counter() - began
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"train-{recipe}.log").write_text(out.getvalue())
    if code != 0:
        raise RuntimeError(f"train.py failed on {train_dir} ({recipe}):\n{out.getvalue()[-2000:]}")
    return seconds, json.loads((model_dir / "model.json").read_text())


def judge_clips(test_dir: Path, model_dir: Path, cache_dir: Path) -> dict:
    """evaluate.py test/ models/ --json."""
    import evaluate

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = evaluate.main([str(test_dir), str(model_dir), "--json", "--cache-dir", str(cache_dir)])
    lines = out.getvalue().strip().splitlines()
    if code not in (0, 1) or not lines:
        raise RuntimeError(f"evaluate.py failed on {test_dir} with {model_dir}")
    return json.loads(lines[-1])


def promised_accuracy(meta: dict) -> float | None:
    """What train.py reported for the clips: the balanced accuracy of its cross-validation."""
    report = ((meta.get("training") or {}).get("cross_validation") or {}).get("report")
    return report["balanced_accuracy"] if report else None


class StreamScorer:
    """A stream's windows embedded once per level setting, as listen.py makes them."""

    def __init__(self, cache_dir: Path):
        from dataset import EmbeddingCache
        from tflite_backend import lite_yamnet_for
        from yamnet_classifier import resolve_yamnet_handle

        self.yamnet = lite_yamnet_for(resolve_yamnet_handle(None))
        self.cache = EmbeddingCache(cache_dir, self.yamnet.identity)

    def windows(self, waveform: np.ndarray, level_dbfs):
        from stream_training import WindowEmbedder, listener_windows

        starts = [start for start, _window in listener_windows(waveform)]
        embeddings, audible = WindowEmbedder(self.yamnet, level_dbfs, self.cache)(waveform)
        return np.array(starts) / SAMPLE_RATE, embeddings, audible

    def scores(self, waveform: np.ndarray, model):
        from model import clip_settings
        from stream_training import window_scores

        times, embeddings, audible = self.windows(waveform, clip_settings(model.meta)[1])
        return times, window_scores(model, embeddings, audible, model.class_names.index(BACKGROUND_CLASS))


def stream_metrics(times, scores, labels: list[str], target: str, stream: rd.Stream, thresholds: dict,
                   min_frames: dict, dcase: bool = True) -> dict:
    """Recall, false alarms per hour, median latency, DCASE F1 and PSDS of one class on one stream."""
    import stream_eval

    duration = len(stream.waveform) / SAMPLE_RATE
    events = stream_eval.detect_events(times, scores, labels, thresholds, min_frames)
    detections = stream_eval.pair_events(events)
    counts = stream_eval.match_events(stream.references, detections, duration, [target])[target]
    out = {"counts": counts, "found_snr": found_snrs(stream, detections, target)}
    if dcase:
        out["f1"] = stream_eval.dcase_event_metrics([(stream.references, detections, duration)], [target])["overall"]["f1"]
        column = labels.index(target)
        out["psds"] = stream_eval.psds_score([(times, scores[:, [column]], stream.references, duration)], [target])["psds"]
    return out


def found_snrs(stream: rd.Stream, detections, target: str) -> list[tuple[float, bool]]:
    """(SNR, found) of each reference, for recall by SNR."""
    import stream_eval

    out = []
    for reference, snr in zip(stream.references, stream.snr_db):
        c = stream_eval.match_events([reference], detections, len(stream.waveform) / SAMPLE_RATE, [target])[target]
        out.append((snr, c.found > 0))
    return out


def sweep(times, scores, labels, target, stream, windows_choices=(1, 2, 3, 4)) -> list[tuple[float, float, int]]:
    """(recall, false alarms/h, windows) over thresholds and windows in a row: the head's whole curve."""
    import stream_eval
    from detection import event_spans

    column = scores[:, labels.index(target)]
    centres = np.asarray(times) + YAMNET.patch_window_seconds / 2
    duration = len(stream.waveform) / SAMPLE_RATE
    points = []
    for windows in windows_choices:
        for threshold in THRESHOLDS:
            detections = [stream_eval.Detection(target, centres[a], centres[b])
                          for a, b in event_spans(column, threshold, windows)]
            c = stream_eval.match_events(stream.references, detections, duration, [target])[target]
            points.append((c.recall, c.false_per_hour, windows))
    return points


def false_at_recall(points, recall: float) -> float | None:
    """The fewest false alarms per hour of any point finding at least `recall` (None: none does)."""
    rates = [rate for r, rate, _ in points if r >= recall - 1e-9]
    return min(rates) if rates else None


def recall_at_false(points, rate: float) -> float:
    """The most recall of any point raising at most `rate` false alarms per hour (0: none does)."""
    return max([r for r, false, _ in points if false <= rate + 1e-9], default=0.0)


def promise(meta: dict, target: str) -> dict | None:
    """The false alarms per hour model.json promises for `target` (None: no operating point)."""
    point = (meta.get("operating_points") or {}).get(target)
    if not point:
        return None
    return {"rate": point["expected_false_per_hour"], "range": point.get("false_per_hour_range")}


# --- the runs -----------------------------------------------------------------------------------------

def run_fold(fold: Fold, recipes: dict, work: Path, cache_dir: Path, scorer: StreamScorer | None, log) -> dict:
    """Every recipe trained and judged on one fold: {recipe: measurements}."""
    from detection import parse_min_frames, parse_thresholds
    from model import load_custom_model

    results = {}
    where = work / "models" / fold.row.split(":")[0].split()[0] / fold.target / f"fold{fold.fold}"
    for recipe, flags in recipes.items():
        model_dir = where / recipe
        seconds, meta = train(recipe, flags, fold.train_dir, model_dir, cache_dir, where)
        result = {"train_s": seconds}
        if fold.test_dir is not None:
            report = judge_clips(fold.test_dir, model_dir, cache_dir)
            result.update(balanced=report["balanced_accuracy"], promised=promised_accuracy(meta),
                          recall={k: v["recall"] for k, v in report["per_class"].items()})
        else:
            model = load_custom_model(model_dir, backend="tf")
            labels = model.class_names
            times, scores = scorer.scores(fold.stream.waveform, model)
            thresholds = parse_thresholds([], labels, meta.get("thresholds"))
            min_frames = parse_min_frames(None, labels, meta.get("min_frames"))
            result.update(stream_metrics(times, scores, labels, fold.target, fold.stream, thresholds, min_frames))
            result["sweep"] = sweep(times, scores, labels, fold.target, fold.stream)
            result["promise"] = promise(meta, fold.target)
            result["operating_point"] = (thresholds[fold.target], min_frames[fold.target])
            if fold.cut_dir is not None and recipe == "default":
                cut_train = fold.cut_dir.parent / "cut-train"
                if not cut_train.exists():
                    cut_train.mkdir()
                    (cut_train / fold.target).symlink_to((fold.train_dir / fold.target).resolve())
                    (cut_train / BACKGROUND_CLASS).symlink_to((fold.cut_dir / BACKGROUND_CLASS).resolve())
                _seconds, cut_meta = train(f"{recipe}-cut", flags, cut_train, where / f"{recipe}-cut", cache_dir, where)
                result["cut_promise"] = promise(cut_meta, fold.target)
        results[recipe] = result
        log(f"  {fold.row} / {fold.target} / fold {fold.fold} / {recipe}: {summary(result)}")
    return results


def summary(result: dict) -> str:
    if "balanced" in result:
        promised = result["promised"]
        return (f"balanced accuracy {result['balanced']:.1%} (train.py said "
                f"{'-' if promised is None else f'{promised:.1%}'}), {result['train_s']:.0f} s")
    c = result["counts"]
    p = result.get("promise")
    return (f"found {c.found}/{c.references}, {c.false_alarms} false in {c.background_s / 3600:.2f} h "
            f"({c.false_per_hour:.1f}/h; promised {'-' if not p else format(p['rate'], '.2g') + '/h'}), "
            f"F1 {fmt(result.get('f1'), '{:.2f}')}, PSDS {result['psds']:.2f}, "
            f"point {result['operating_point'][0]:.4g} x{result['operating_point'][1]}, {result['train_s']:.0f} s")


def fmt(value, spec: str) -> str:
    return "-" if value is None else spec.format(value)


# --- the table ------------------------------------------------------------------------------------------

def key(fold: Fold) -> tuple:
    return fold.row, fold.target, fold.fold


def merged(runs: list[dict]) -> dict:
    """Results of several runs ({row: [(fold, {recipe: result})]}) as one: recipes of the same fold side by side."""
    out = {}
    for results in runs:
        for row, folds in results.items():
            table = out.setdefault(row, {})
            for fold, by_recipe in folds:
                table.setdefault(key(fold), (fold, {}))[1].update(by_recipe)
    return {row: list(table.values()) for row, table in out.items()}


def print_tables(results: dict, names: list[str], header: str) -> None:
    def table(columns: list[str], rows: list, lines_of) -> None:
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for _row, folds in rows:  # the recipes every fold of the row ran
            recipes = [n for n in names if all(n in by_recipe for _f, by_recipe in folds)]
            print("\n".join(lines_of(folds[0][0].row, folds, recipes)))
        print()

    print(f"\n{header}\n")
    clip_rows = [(row, r) for row, r in results.items() if row in ("clips", "kind")]
    if clip_rows:
        table(["row", "recipe", "balanced accuracy, held-out takes and sources", "train.py said",
               "train.py s (its cross-validation included)"], clip_rows, clip_lines)
    stream_rows = [(row, r) for row, r in results.items() if row in ("game", "household")]
    if stream_rows:
        table(["row", "recipe", "found (by SNR)", "false alarms/h", "false/h at the seed's recall; recall at the seed's "
               "false/h (best points, chosen on the test)", "median latency", "DCASE F1", "PSDS", "train.py s"],
              stream_rows, stream_lines)
        table(["calibration", "recipe", "promised false/h", "measured on held-out sources", "within 3x",
               "promised by a model trained on the same background cut into 5 s clips"], stream_rows, calibration_lines)


def clip_lines(row: str, results: list[tuple[Fold, dict]], recipes: list[str]) -> list[str]:
    lines = []
    for recipe in recipes:
        values = [r[recipe]["balanced"] for _f, r in results]
        said = [r[recipe]["promised"] for _f, r in results if r[recipe]["promised"] is not None]
        by_target = {}
        for fold, r in results:
            by_target.setdefault(fold.target, []).append(r[recipe]["balanced"])
        worst = min(np.mean(v) for v in by_target.values())
        lines.append(f"| {row} | {recipe} | **{np.mean(values):.1%}** (worst sound {worst:.1%}, folds "
                     f"{min(values):.0%}-{max(values):.0%}) | {fmt(np.mean(said) if said else None, '{:.1%}')} | "
                     f"{np.mean([r[recipe]['train_s'] for _f, r in results]):.0f} s |")
    return lines


def stream_lines(row: str, results: list[tuple[Fold, dict]], recipes: list[str]) -> list[str]:
    import stream_eval

    lines = []
    seed = {key(f): r["seed"]["counts"] for f, r in results} if "seed" in recipes else {}
    for recipe in recipes:
        pooled = stream_eval.pool_counts([{"x": r[recipe]["counts"]} for _f, r in results])["x"]
        low = [found for _f, r in results for snr, found in r[recipe]["found_snr"] if snr < 0]
        high = [found for _f, r in results for snr, found in r[recipe]["found_snr"] if snr >= 0]
        at_seed = ""
        if seed and recipe != "seed":
            hours = [r[recipe]["counts"].background_s / 3600 for _f, r in results]
            rates = [false_at_recall(r[recipe]["sweep"], seed[key(f)].recall) for f, r in results]
            recalls = [recall_at_false(r[recipe]["sweep"], seed[key(f)].false_per_hour) for f, r in results]
            refs = [seed[key(f)].references for f, _r in results]
            found = sum(rc * n for rc, n in zip(recalls, refs)) / sum(refs)
            if all(rate is not None for rate in rates):
                false = f"{sum(rate * h for rate, h in zip(rates, hours)) / sum(hours):.1f}/h"
            else:
                false = f"never ({sum(rate is None for rate in rates)} fold(s))"
            at_seed = f"{false}; {found:.0%}"
        lines.append(
            f"| {row} | {recipe} | {pooled.found}/{pooled.references} ({pooled.recall:.0%}; "
            f"<0 dB {np.mean(low) if low else 0:.0%}, >=0 dB {np.mean(high) if high else 0:.0%}) | "
            f"{pooled.false_per_hour:.1f} ({pooled.false_alarms} in {pooled.background_s / 3600:.1f} h) | {at_seed} | "
            f"{fmt(pooled.median_latency_s, '{:.2f} s')} | "
            f"{np.mean([r[recipe]['f1'] or 0 for _f, r in results]):.2f} | "
            f"{np.mean([r[recipe]['psds'] for _f, r in results]):.2f} | "
            f"{np.mean([r[recipe]['train_s'] for _f, r in results]):.0f} s |")
    return lines


def calibration_lines(row: str, results: list[tuple[Fold, dict]], recipes: list[str]) -> list[str]:
    lines = []
    for recipe in recipes:
        promised = [(r[recipe]["promise"], r[recipe]["counts"], r[recipe].get("cut_promise")) for _f, r in results]
        if not all(p for p, _c, _cut in promised):
            continue
        ratios = [c.false_per_hour / max(p["rate"], 1e-9) for p, c, _cut in promised]
        highs = [p["range"][1] if p.get("range") else p["rate"] for p, _c, _cut in promised]
        within = sum(c.false_per_hour <= 3 * p["rate"] for p, c, _cut in promised)
        cut = [cut["rate"] for _p, _c, cut in promised if cut]
        lines.append(
            f"| {row} | {recipe} | {np.mean([p['rate'] for p, _c, _cut in promised]):.2g}/h "
            f"(folds {min(p['rate'] for p, _c, _cut in promised):.2g}-{max(p['rate'] for p, _c, _cut in promised):.2g}; "
            f"upper {np.mean(highs):.2g}) | "
            f"{np.mean([c.false_per_hour for _p, c, _cut in promised]):.1f}/h | "
            f"{within}/{len(promised)} folds within 3x (worst {max(ratios):.1f}x) | "
            f"{fmt(np.mean(cut) if cut else None, '{:.2g}/h')} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one target per row and 2 folds")
    parser.add_argument("--targets", type=int, default=None, metavar="N",
                        help="only the first N target sounds of each row (default: all; --quick: 1)")
    parser.add_argument("--rows", default="clips,kind,game,household", help="rows to run, comma-separated")
    parser.add_argument("--recipes", default="seed,default", help="recipes to compare (--list shows them)")
    parser.add_argument("--list", action="store_true", help="print the recipes and their train.py flags")
    parser.add_argument("--tables", type=Path, nargs="+", metavar="RESULTS_PKL",
                        help="print the tables of earlier runs (their results.pkl), recipes side by side; runs nothing")
    parser.add_argument("--folds", type=int, default=3, help="folds by source (the digit row: speakers, up to 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits, rooms and takes")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="decoded audio and embeddings (kept between runs)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the training folders and models go (default: a new folder in --cache-dir)")
    args = parser.parse_args(argv)
    if args.list:
        for name, flags in RECIPES.items():
            print(f"{name}: train.py {' '.join(flags) or '(defaults)'}")
        return 0
    if args.tables:
        runs = []
        for path in args.tables:
            with open(path, "rb") as f:
                runs.append(pickle.load(f))
        print_tables(merged(runs), args.recipes.split(","), f"bench/real.py: {', '.join(map(str, args.tables))}")
        return 0
    recipes = {name: RECIPES[name] for name in args.recipes.split(",") if name in RECIPES}
    unknown = [name for name in args.recipes.split(",") if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}: --list shows them")
    if problem := rd.missing_requirements("bench/real.py"):
        print(problem, file=sys.stderr)
        return 1
    folds = 2 if args.quick else args.folds
    work = args.work_dir or args.cache_dir / time.strftime("run-%Y%m%d-%H%M%S")
    rows = args.rows.split(",")
    store = rd.AudioStore(args.cache_dir)
    rooms = {"train": rd.room_impulse_responses(ROOMS, args.seed), "test": rd.room_impulse_responses(ROOMS, args.seed + 1)}

    def first(targets):
        count = args.targets or (1 if args.quick else len(targets))
        return dict(list(targets.items())[:count])

    began = time.perf_counter()
    log = lambda text: print(text, flush=True)  # noqa: E731
    material = {}
    if "clips" in rows:
        material["clips"] = clip_row_folds(work, store, rooms, first(CLIP_TARGETS), folds, args.seed)
    if "kind" in rows:
        material["kind"] = kind_row_folds(work, store, rooms, 2 if args.quick else 6, args.seed)
    if "game" in rows:
        material["game"] = game_row_folds(work, store, rooms, first(GAME_TARGETS), folds, args.seed)
    if "household" in rows:
        material["household"] = household_row_folds(work, store, rooms, first(HOUSEHOLD_TARGETS), folds, args.seed)
    log(f"material written to {work} in {time.perf_counter() - began:.0f} s")
    scorer = StreamScorer(args.cache_dir / "embeddings") if {"game", "household"} & set(rows) else None
    results = {row: [(fold, run_fold(fold, recipes, work, args.cache_dir / "embeddings", scorer, log))
                     for fold in folds_of] for row, folds_of in material.items()}
    for folds_of in results.values():  # what the table needs, without the audio
        for fold, _by_recipe in folds_of:
            if fold.stream is not None:
                fold.stream.waveform = np.zeros(0, np.float32)
    with open(work / "results.pkl", "wb") as f:
        pickle.dump(results, f)
    print_tables(results, list(recipes), f"bench/real.py, seed {args.seed}, {folds} folds, "
                 f"{time.perf_counter() - began:.0f} s ({time.strftime('%Y-%m-%d')}); results in {work / 'results.pkl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
