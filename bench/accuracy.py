"""Accuracy you can trust: leave-one-speaker-out on FSDD, seed recipe vs candidate improvements.

    python bench/accuracy.py --cache-dir /work/bench_cache          # the full table (~40 min on 2 cores)
    python bench/accuracy.py --quick --cache-dir /work/bench_cache  # seed vs DEFAULT, 20 clips/class (~2 min)

FSDD (../shared/data/fsdd, 10 digits x 6 speakers x 50 takes): each fold trains on 5 speakers and
tests on all 500 clips of the 6th; the table gives mean ± std of the 6 fold accuracies. Regimes:
"all clips" trains on every clip of the 5 speakers; "20/class" on 20 clips per digit drawn
reproducibly (seeded by seed, fold and digit) from those 5 speakers; "imbal 5..50" on 5, 10, ...,
50 clips for digits 0..9 (the test set stays balanced, so accuracy there is mean recall).

Every recipe keeps the head: Dense(512, relu) -> Dense(10) logits, Adam 1e-3, batch 32. A recipe is
a training choice (clip level, which embeddings are training frames, class weights, hold-out and
early stopping, epochs) plus an inference choice (time-shifted views of the test clip; pooling the
mean embedding, as main.py --custom does, or the mean of frame probabilities). Recipes that differ
only at inference share one trained head per fold.

YAMNet embeddings of every waveform variant (level-scaled, time-shifted views, augmented copies)
are computed once for all 3000 clips and cached on disk under --cache-dir, keyed by YAMNet's
identity, the variant, the seed and the clips' content hashes. "embed s" is what computing a
recipe's variants cost the first time (YAMNet, 2 shared cores); "train+test s" is head training
plus inference over all folds and regimes. "easy %" trains the recipe on generated tones, sweeps,
noise and FSDD speech (20 each) and tests on 30 new clips of each: no recipe may lose what is easy.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import augment  # noqa: E402
from atomic_write import atomic_output  # noqa: E402
from params import EMBEDDING_SIZE, PROJECT_DIR, SAMPLE_RATE, TRAINING  # noqa: E402

DEFAULT_FSDD = Path(os.environ.get("AUDIO2MQTT_FSDD", PROJECT_DIR.parent / "shared" / "data" / "fsdd"))
DEFAULT_CACHE = Path(os.environ.get("AUDIO2MQTT_BENCH_CACHE", Path.home() / ".cache" / "audio2mqtt" / "bench"))

# Augmentation families, each with random time shift; `rounds` copies per clip are embedded.
AUG_KINDS = {
    "shift": dict(gain_db=None, snr_db=None),
    "gn": dict(gain_db=(-12.0, 6.0), snr_db=(5.0, 30.0), noise_probability=0.8),
    "noise": dict(gain_db=None, snr_db=(5.0, 30.0), noise_probability=0.8),
    "pitch": dict(gain_db=None, snr_db=None, semitones=(-3.0, 3.0)),
    "speed": dict(gain_db=None, snr_db=None, speed=(0.85, 1.15)),
    "gnspeed": dict(gain_db=(-12.0, 6.0), snr_db=(5.0, 30.0), noise_probability=0.8, speed=(0.85, 1.15)),
}


HOLDOUT = 0.2  # the seed's train.py held 20 % of each class's files out and trained on the rest


@dataclass(frozen=True)
class Recipe:
    """How one head is trained and how it classifies a test clip."""

    name: str
    train_views: int = 1            # time-shifted views of each training clip (1 = the clip as is)
    aug: tuple = ()                 # ((kind, rounds), ...) augmented copies added to the training frames
    class_weights: bool = False     # weight frames by n / (classes * n_class)
    holdout: float = HOLDOUT        # fraction of training files held out (the seed's 0.2)
    early_stopping: bool = False    # stop on the held-out files' loss, keep the best weights
    patience: int = 8
    epochs: int = TRAINING.epochs
    step_budget: int | None = None  # fewer epochs when a big (multi-view, augmented) set needs them:
                                    # epochs = clamp(ceil(step_budget / batches per epoch), 10, epochs)
    batch_size: int = TRAINING.batch_size
    test_views: int = 1             # time-shifted views of each test clip
    pooling: str = "embedding"      # "embedding": head(mean embedding); "probs": mean of frame softmax
    level: float | None = None      # scale every clip (train and test) to this RMS in dBFS first


SEED = Recipe("seed (train.py: 80% of files, 50 epochs)")
LEVEL = -20.0   # dBFS RMS every clip is scaled to before YAMNet
BUDGET = 8000   # batches: a cheaper schedule for the candidate rows (epochs = clamp(8000 / batches, 10, 50));
                # it costs accuracy with all clips (26 instead of 50 epochs), so DEFAULT trains 50 epochs
NORM_VIEWS4 = dict(holdout=0.0, level=LEVEL, train_views=4, test_views=4)
BASE = Recipe("level -20 dBFS + 4 views, <=8000 batches", step_budget=BUDGET, **NORM_VIEWS4)
# train.py's default (params.CLIP; the final model is refit on all files, so no hold-out here)
DEFAULT = Recipe("DEFAULT: level -20 dBFS + 8 views, 50 ep", holdout=0.0, level=LEVEL, train_views=8, test_views=8)
AUGMENT = Recipe("--augment: BASE + pitch x4", aug=(("pitch", 4),), step_budget=BUDGET, **NORM_VIEWS4)
RECIPES = [
    SEED,
    Recipe("seed, all files (no hold-out)", holdout=0.0),
    Recipe("  + pool mean of frame probs", holdout=0.0, pooling="probs"),
    Recipe("4 time-shifted views, <=8000 batches", holdout=0.0, train_views=4, test_views=4, step_budget=BUDGET),
    Recipe("level -20 dBFS (train+test)", holdout=0.0, level=LEVEL),
    BASE,
    Recipe("  + pool mean of frame probs", pooling="probs", step_budget=BUDGET, **NORM_VIEWS4),
    Recipe("BASE + noise 5-30 dB SNR x4", aug=(("noise", 4),), step_budget=BUDGET, **NORM_VIEWS4),
    AUGMENT,
    Recipe("BASE + class weights", class_weights=True, step_budget=BUDGET, **NORM_VIEWS4),
    Recipe("BASE + early stop (20% files held out)", **{**NORM_VIEWS4, "holdout": HOLDOUT},
           step_budget=BUDGET, early_stopping=True),
    Recipe("level -20 dBFS + 4 views, 50 ep", **NORM_VIEWS4),
    Recipe("level -20 dBFS + 4 views + noise 5-30 dB SNR x4, 50 ep", aug=(("noise", 4),), **NORM_VIEWS4),
    DEFAULT,
]


# --- data ----------------------------------------------------------------------------------------

def fsdd_files(fsdd_dir: Path) -> list[tuple[Path, int, str]]:
    """[(path, digit, speaker)] from `{digit}_{speaker}_{n}.wav`, sorted by name."""
    out = []
    for path in sorted(fsdd_dir.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) == 3 and parts[0].isdigit():
            out.append((path, int(parts[0]), parts[1]))
    return out


def pick_per_class(items, per_class, seed: int, fold: int) -> list:
    """Items of each label drawn reproducibly per (seed, fold, label) from sorted lists.

    `per_class` is one count for every label, or a {label: count} dict (an imbalanced set).
    """
    by_label = {}
    for item in items:
        by_label.setdefault(item[1], []).append(item)
    picked = []
    for label in sorted(by_label):
        count = per_class[label] if isinstance(per_class, dict) else per_class
        rng = np.random.default_rng([seed, fold, label])
        pool = sorted(by_label[label], key=lambda it: str(it[0]))
        picked += [pool[i] for i in sorted(rng.permutation(len(pool))[:count])]
    return picked


IMBALANCED = {digit: 5 * (digit + 1) for digit in range(10)}  # 5, 10, ..., 50 training clips per digit


def regime_name(per_class) -> str:
    if not per_class:
        return "all clips"
    if isinstance(per_class, dict):
        return f"imbal {min(per_class.values())}..{max(per_class.values())}"
    return f"{per_class}/class"


def holdout_split(items, fraction: float, seed: int):
    """Stratified split by file, as dataset.split_by_file does: (train, val) lists of (path, label)."""
    from dataset import split_by_file

    by_class = {}
    for path, label in items:
        by_class.setdefault(label, []).append(path)
    by_class = {label: by_class[label] for label in sorted(by_class)}
    train, val = split_by_file(by_class, fraction, seed)
    labels = list(by_class)
    return [(p, labels[i]) for p, i in train], [(p, labels[i]) for p, i in val]


# --- embeddings of waveform variants, cached ----------------------------------------------------------

class VariantStore:
    """Embeddings of every clip under a waveform variant ("views4", "gn:2", ...), computed once.

    One .npz per (YAMNet identity, variant, seed, clip contents): frames of all clips stacked,
    plus per-clip frame counts and the seconds it took to compute.
    """

    def __init__(self, cache_dir: Path, yamnet, keys: list[str], loader, seed: int):
        self.folder = Path(cache_dir) / "variants" / "".join(c if c.isalnum() else "_" for c in yamnet.identity)
        self.yamnet, self.keys, self.loader, self.seed = yamnet, keys, loader, seed
        self.contents = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
        self.memory: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}

    def waveforms(self, variant: str, index: int, waveform: np.ndarray) -> list[np.ndarray]:
        """The waveforms YAMNet sees for one clip under `variant`.

        "plain": the clip; "views4": `augment.time_shifted_views`; "gn:2": round 2 of the "gn"
        augmentation family; a prefix "n20|" first scales the clip to an RMS of -20 dBFS.
        """
        if "|" in variant:
            prefix, variant = variant.split("|")
            waveform = augment.normalize_rms(waveform, -float(prefix[1:]))
        if variant == "plain":
            return [waveform]
        if variant.startswith("views"):
            return augment.time_shifted_views(waveform, int(variant[5:]))
        kind, round_ = variant.split(":")
        rng = np.random.default_rng([self.seed, int(round_), zlib.crc32(kind.encode()), zlib.crc32(self.keys[index].encode())])
        return [augment.random_augment(waveform, rng, **AUG_KINDS[kind])]

    def get(self, variant: str, log=print) -> dict:
        """{clip key: (frames, 1024) float32} for every clip."""
        if variant in self.memory:
            return self.memory[variant]
        safe = variant.replace(":", "_").replace("|", "_")
        path = self.folder / f"{safe}_s{self.seed}_{self.contents}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                frames, counts, seconds = data["frames"], data["counts"], float(data["seconds"])
        else:
            log(f"  embedding {len(self.keys)} clips as {variant!r} ...", flush=True)
            start, parts, counts = time.perf_counter(), [], []
            for index, key in enumerate(self.keys):
                per_clip = [self.yamnet.run(w)[1] for w in self.waveforms(variant, index, self.loader(key))]
                parts.append(np.concatenate(per_clip))
                counts.append(len(parts[-1]))
            frames, counts = np.concatenate(parts).astype(np.float32), np.array(counts)
            seconds = time.perf_counter() - start
            with atomic_output(path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, frames=frames, counts=counts, seconds=np.float64(seconds))
        splits = np.split(frames, np.cumsum(counts)[:-1])
        self.memory[variant] = dict(zip(self.keys, splits))
        self.seconds[variant] = seconds
        return self.memory[variant]


def recipe_variants(recipe: Recipe) -> tuple[str, list[str], str]:
    """(train view variant, augmentation variants, test variant) names for the VariantStore."""
    prefix = "" if recipe.level is None else f"n{-recipe.level:g}|"
    views = lambda k: prefix + ("plain" if k == 1 else f"views{k}")  # noqa: E731
    aug = [f"{prefix}{kind}:{r}" for kind, rounds in recipe.aug for r in range(rounds)]
    return views(recipe.train_views), aug, views(recipe.test_views)


# --- training and scoring ----------------------------------------------------------------------------

def stack(items, *tables) -> tuple[np.ndarray, np.ndarray]:
    """Frames of every (key, label) item from every table: x (frames, 1024), y (frames,)."""
    xs, ys = [], []
    for table in tables:
        for key, label in items:
            xs.append(table[key])
            ys.append(np.full(len(table[key]), label, np.int64))
    if not xs:
        return np.zeros((0, EMBEDDING_SIZE), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def balanced_class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """n / (classes * n_c) per class present (sklearn's "balanced"), as Keras's class_weight."""
    counts = np.bincount(y, minlength=num_classes)
    return {c: float(len(y) / (num_classes * counts[c])) for c in range(num_classes) if counts[c]}


def train_head(recipe: Recipe, train_items, num_classes: int, store: VariantStore, seed: int):
    """Train Dense(512) -> Dense(n) as `recipe` says; returns (head, epochs run)."""
    import keras

    from model import build_classifier_head

    train_variant, aug_variants, _ = recipe_variants(recipe)
    val_items = []
    if recipe.holdout > 0:
        train_items, val_items = holdout_split(train_items, recipe.holdout, seed)
    x, y = stack(train_items, store.get(train_variant), *[store.get(v) for v in aug_variants])
    x_val, y_val = stack(val_items, store.get(train_variant))
    epochs = recipe.epochs
    if recipe.step_budget:
        batches = -(-len(x) // recipe.batch_size)
        epochs = int(np.clip(-(-recipe.step_budget // batches), min(10, recipe.epochs), recipe.epochs))
    keras.utils.set_random_seed(seed)
    head = build_classifier_head(num_classes)
    callbacks = []
    if recipe.early_stopping and len(x_val):
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience,
                                                       restore_best_weights=True))
    history = head.fit(
        x, y, epochs=epochs, batch_size=recipe.batch_size, verbose=0,
        validation_data=(x_val, y_val) if len(x_val) else None,
        class_weight=balanced_class_weights(y, num_classes) if recipe.class_weights else None,
        callbacks=callbacks,
    )
    return head, len(history.history["loss"])


def predict(head, recipe: Recipe, test_items, store: VariantStore, num_classes: int) -> np.ndarray:
    """Predicted label per test item, classifying each clip as a whole."""
    from model import CustomModel

    model = CustomModel(head=head, class_names=[str(i) for i in range(num_classes)], meta={})
    table = store.get(recipe_variants(recipe)[2])
    keys = [key for key, _ in test_items]
    if recipe.pooling == "embedding":
        means = np.stack([table[k].mean(axis=0) for k in keys]).astype(np.float32)
        return np.argmax(np.asarray(head(means, training=False)), axis=1)
    frames = np.concatenate([table[k] for k in keys])
    probabilities = model.frame_probabilities(frames)
    bounds = np.cumsum([0] + [len(table[k]) for k in keys])
    return np.array([np.argmax(probabilities[a:b].mean(axis=0)) for a, b in zip(bounds[:-1], bounds[1:])])


@dataclass
class Outcome:
    accuracies: list = field(default_factory=list)
    seconds: float = 0.0
    epochs: list = field(default_factory=list)

    def summary(self) -> str:
        if not self.accuracies:
            return "-"
        a = 100 * np.array(self.accuracies)
        return f"{a.mean():5.1f} ± {a.std():4.1f}"


_HEADS = {}  # (training part of a recipe, regime, fold) -> (head, epochs, seconds): recipes that differ
            # only in how they classify test clips share one trained head


def training_key(recipe: Recipe) -> tuple:
    return tuple((k, v) for k, v in recipe.__dict__.items() if k not in ("name", "test_views", "pooling"))


def run_folds(recipe: Recipe, items, speakers, per_class, store, seed: int, log) -> Outcome:
    """Leave-one-speaker-out over `speakers`; items are (key, label, speaker)."""
    outcome = Outcome()
    for fold, speaker in enumerate(speakers):
        train = [(k, label) for k, label, s in items if s != speaker]
        if per_class:
            train = pick_per_class(train, per_class, seed, fold)
        test = [(k, label) for k, label, s in items if s == speaker]
        key = (training_key(recipe), regime_name(per_class), fold, id(store))
        if key not in _HEADS:
            start = time.perf_counter()
            head, epochs = train_head(recipe, train, 10, store, seed)
            _HEADS[key] = (head, epochs, time.perf_counter() - start)
        head, epochs, train_seconds = _HEADS[key]
        start = time.perf_counter()
        predicted = predict(head, recipe, test, store, 10)
        outcome.seconds += train_seconds + time.perf_counter() - start
        accuracy = float(np.mean(predicted == np.array([label for _, label in test])))
        outcome.accuracies.append(accuracy)
        outcome.epochs.append(epochs)
        log(f"    {recipe.name} | {regime_name(per_class)} | test {speaker}: {accuracy:.1%} ({epochs} epochs)", flush=True)
    return outcome


# --- easy sounds -------------------------------------------------------------------------------------

def easy_sounds(fsdd: list, seed: int) -> tuple[dict, list, list]:
    """Generated 'tone', 'sweep', 'noise' clips and FSDD 'speech' (train speakers != test speaker).

    Returns ({key: waveform}, train [(key, label)], test [(key, label)]); 20 train and 30 test per
    class, 0.3-2.5 s long, random levels.
    """
    rng = np.random.default_rng([seed, 777])
    waves, train, test = {}, [], []
    speech_train = [p for p, _d, s in fsdd if s != "theo"]
    speech_test = [p for p, _d, s in fsdd if s == "theo"]

    def make(label: int, i: int) -> np.ndarray:
        seconds = rng.uniform(0.3, 2.5)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        level = 10 ** (rng.uniform(-30, -6) / 20)
        if label == 0:
            w = np.sin(2 * np.pi * rng.uniform(200, 4000) * t)
        elif label == 1:
            f0, f1 = rng.uniform(200, 1000), rng.uniform(2000, 6000)
            w = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))
        else:
            w = augment.colored_noise(len(t), augment.NOISE_COLORS[i % 3], rng)
        return (level * w / max(1e-9, np.max(np.abs(w)))).astype(np.float32)

    from audio_util import load_audio_16k_mono

    for label in range(4):
        for i in range(50):
            key = f"easy:{label}:{i}"
            if label == 3:
                pool = speech_train if i < 20 else speech_test
                waves[key] = load_audio_16k_mono(pool[int(rng.integers(len(pool)))])
            else:
                waves[key] = make(label, i)
            (train if i < 20 else test).append((key, label))
    return waves, train, test


def run_easy(recipe: Recipe, store, train, test, seed: int) -> float:
    head, _ = train_head(recipe, train, 4, store, seed)
    predicted = predict(head, recipe, test, store, 4)
    return float(np.mean(predicted == np.array([label for _, label in test])))


# --- CLI -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="FSDD leave-one-speaker-out accuracy: seed recipe vs candidate improvements, one table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD, help="FSDD recordings folder")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where embeddings of clips and their variants are cached (keep it outside the repo)")
    parser.add_argument("--quick", action="store_true",
                        help="seed vs default candidate only, 20 clips/class only, plus easy sounds")
    parser.add_argument("--recipes", default=None,
                        help="comma-separated indices into the recipe list (see --list) instead of all")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--per-class", type=int, default=20, help="clips per class in the small-data regime")
    parser.add_argument("--seed", type=int, default=0, help="seed for subsets, augmentation and weights")
    parser.add_argument("--no-imbalanced", action="store_true",
                        help="skip the imbalanced regime (5, 10, ..., 50 training clips for digits 0..9)")
    parser.add_argument("--no-easy", action="store_true", help="skip the easy-sounds check")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--yamnet", metavar="HANDLE", default=None, help="YAMNet handle (default: bundled)")
    return parser


def all_recipes() -> list[Recipe]:
    return list(RECIPES)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    recipes = all_recipes()
    if args.list:
        for i, recipe in enumerate(recipes):
            print(f"{i:2d}  {recipe}")
        return 0
    if args.per_class < 1:
        parser.error("--per-class must be at least 1")
    if args.recipes and args.quick:
        parser.error("--recipes and --quick clash: --quick picks its own recipes")
    if args.recipes:
        try:
            recipes = [recipes[int(i)] for i in args.recipes.split(",")]
        except (ValueError, IndexError):
            parser.error(f"--recipes takes indices 0..{len(recipes) - 1} (see --list)")
    if args.quick:
        recipes = [SEED, DEFAULT]
    fsdd = fsdd_files(args.fsdd)
    if len(fsdd) < 100:
        print(f"error: FSDD not found at {args.fsdd} (need {{digit}}_{{speaker}}_{{n}}.wav files); pass --fsdd",
              file=sys.stderr)
        return 1

    from audio_util import load_audio_16k_mono
    from yamnet_classifier import YamnetError, load_yamnet, resolve_yamnet_handle

    try:
        yamnet = load_yamnet(resolve_yamnet_handle(args.yamnet))
    except YamnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from dataset import file_digest

    log = lambda *a, **k: print(*a, **k, file=sys.stderr)  # noqa: E731
    keys = [f"{path.name}:{file_digest(path)[:16]}" for path, _, _ in fsdd]
    by_key = {key: path for key, (path, _, _) in zip(keys, fsdd)}
    waveforms = {}

    def loader(key):
        if key not in waveforms:
            waveforms[key] = load_audio_16k_mono(by_key[key])
        return waveforms[key]

    store = VariantStore(args.cache_dir, yamnet, keys, loader, args.seed)
    items = [(key, digit, speaker) for key, (_, digit, speaker) in zip(keys, fsdd)]
    speakers = sorted({speaker for _, _, speaker in fsdd})
    regimes = [args.per_class] if args.quick else [0, args.per_class] + ([] if args.no_imbalanced else [IMBALANCED])

    easy = None
    if not args.no_easy:
        easy_waves, easy_train, easy_test = easy_sounds(fsdd, args.seed)
        easy_keys = [f"{k}:{hashlib.sha256(w.tobytes()).hexdigest()[:16]}" for k, w in easy_waves.items()]
        rename = dict(zip(easy_waves, easy_keys))
        easy_store = VariantStore(args.cache_dir, yamnet, easy_keys, lambda k: easy_waves[k.rsplit(":", 1)[0]], args.seed)
        easy = (easy_store, [(rename[k], label) for k, label in easy_train], [(rename[k], label) for k, label in easy_test])

    rows, start_all = [], time.perf_counter()
    for recipe in recipes:
        log(f"{recipe.name}", flush=True)
        train_variant, aug_variants, test_variant = recipe_variants(recipe)
        variants = sorted({train_variant, test_variant, *aug_variants})
        for variant in variants:
            store.get(variant, log)
        embed_seconds = sum(store.seconds[v] for v in variants)
        outcomes = [run_folds(recipe, items, speakers, per_class, store, args.seed, log) for per_class in regimes]
        easy_accuracy = None
        if easy:
            for variant in variants:
                easy[0].get(variant, log)
            easy_accuracy = run_easy(recipe, easy[0], easy[1], easy[2], args.seed)
        rows.append((recipe, outcomes, embed_seconds, easy_accuracy))

    print(f"FSDD leave-one-speaker-out ({len(speakers)} folds, {len(fsdd)} clips), accuracy % mean ± std over folds;"
          f" seed {args.seed}")
    header = f"{'recipe':44s} | " + " | ".join(f"{regime_name(r):>13s}" for r in regimes)
    header += " | train+test s | embed s | easy %"
    print(header)
    print("-" * len(header))
    for recipe, outcomes, embed_seconds, easy_accuracy in rows:
        line = f"{recipe.name[:44]:44s} | " + " | ".join(f"{o.summary():>13s}" for o in outcomes)
        line += f" | {sum(o.seconds for o in outcomes):12.0f} | {embed_seconds:7.0f} | "
        line += f"{100 * easy_accuracy:6.1f}" if easy_accuracy is not None else "     -"
        print(line)
    print(f"total wall time {time.perf_counter() - start_all:.0f} s")
    if args.json:
        report = [{"recipe": r.name, "config": {k: v for k, v in r.__dict__.items() if k != "name"},
                   "regimes": {regime_name(pc): {"fold_accuracies": o.accuracies, "epochs": o.epochs,
                                                                       "seconds": o.seconds}
                               for pc, o in zip(regimes, outcomes)},
                   "embed_seconds": e, "easy_accuracy": ea} for r, outcomes, e, ea in rows]
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=1, default=list) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
