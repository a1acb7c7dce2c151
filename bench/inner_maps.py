"""Heads on YAMNet's inner feature maps against the embedding head, on real recordings (issue 21), each
at the operating point its own training chooses.

    python bench/inner_maps.py --quick          # leveldone, 2 folds, the layer-10 heads, seed 0
    python bench/inner_maps.py                  # leveldone, 3 folds, every head, seeds 0 and 1
    python bench/inner_maps.py --targets 3 --heads conv-l10f --seeds 0   # all three jingles

The game-stream row of bench/real.py (its material, reused by import): a SuperTux jingle, 20 takes
and 30 min of other SuperTux tracks (effects sprinkled in) to train on, 20 takes at -6..+12 dB in
about 30 min of held-out tracks to find; folds by track. Every head trains on the same training
folder through training.py's own recipe (sound clips in 8 time-shifted views, the clips spliced 3x
into the background recordings, the background's windows as negatives, class weights, hard
negatives, 5 cross-validation folds and a refit on all) and takes the operating point that
stream_training.choose_operating_point picks on the folds' held-out material at 1 false alarm/h:
nothing about the test stream chooses it. Only the features (what each listener window becomes) and
the head differ:

- default: `train.main` with no flags (Dense(512, relu) -> Dense(n) on the 1024-d embedding),
  scored through listen.py's windows as bench/real.py scores it;
- heads on a layer's map (6 time x 4 frequency x 512 channels per 0.96 s patch, layers 9-11), taken
  from the same YAMNet pass as the embedding (one frozen graph cut at the layer and at the
  embedding), trained with label smoothing (LABEL_SMOOTHING) so that their softmax is not the 1.0
  of a logit of 50 on music and the threshold grid can separate windows.

The table: recall and false alarms per hour at each head's own point on the held-out stream, the
recall each head reaches at the default's false alarms per hour on the same fold (the best point of
its curve there, chosen on the test: the issue's "2x the embedding head's recall" target), what the
point promised, training seconds (cross-validation, refit and hard negatives; YAMNet time excluded
for the map heads, included for train.main), CPU seconds per real-time second of listening (TF,
one window every 0.48 s as listen.py scores them; the listener's TFLite YAMNet beside it) and the
float16 feature cache per hour of audio.

Needs what bench/real.py needs (supertux-data, pyroomacoustics).
"""

import argparse
import contextlib
import dataclasses
import hashlib
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real  # noqa: E402  (bench/real.py: material, train.main runs, stream scoring)
import real_data as rd  # noqa: E402
from params import BACKGROUND_CLASS, SAMPLE_RATE, TRAINING, YAMNET  # noqa: E402

DEFAULT_CACHE = Path.home() / ".cache" / "audio2mqtt" / "bench-inner"
LAYER_TENSOR = "StatefulPartitionedCall/StatefulPartitionedCall/yamnet_frames/layer{}/pointwise_conv/relu/Relu:0"
LAYERS = (9, 10, 11)              # after these depthwise-separable blocks YAMNet still has a 6 x 4 map
MAP_SHAPE = (6, 4, 512)           # (time, frequency, channels) per 0.96 s patch for layers 8-12
UNPOOLED_LAYER = 10               # kept whole in the cache; the others only pooled over frequency
PATCH_BATCH = 128                 # patches per network call
LABEL_SMOOTHING = 0.1             # the map heads' calibration: a right answer costs least at 0.95, not 1.0
WINDOWS_PER_HOUR = 3600 / YAMNET.patch_hop_seconds  # 7500 listener windows per hour of audio
COST_WINDOWS = 100                # listener windows timed for the CPU column


# --- features: one YAMNet pass, the embedding and the inner maps ------------------------------------

def inner_graphs(tf, hub_model, layers=LAYERS):
    """YAMNet's frozen graph (tflite_backend.yamnet_graph) cut three ways:
    features: waveform (n,) -> log-mel patches (p, 96, 64);
    network: patches -> (embeddings (p, 1024), map of each layer (p, 6, 4, 512)...);
    whole: waveform -> (embeddings, map of UNPOOLED_LAYER), the one function a listener would run."""
    from tflite_backend import yamnet_graph

    wrapped, tensors = yamnet_graph(tf, hub_model)
    maps = [wrapped.graph.as_graph_element(LAYER_TENSOR.format(layer)) for layer in layers]
    features = wrapped.prune(feeds=[tensors["waveform"]], fetches=[tensors["patches"]])
    network = wrapped.prune(feeds=[tensors["patches"]], fetches=[tensors["embeddings"], *maps])
    whole = wrapped.prune(feeds=[tensors["waveform"]],
                          fetches=[tensors["embeddings"], maps[layers.index(UNPOOLED_LAYER)]])
    return features, network, whole


class InnerYamnet:
    """Per patch: the embedding, layer UNPOOLED_LAYER's map whole, and the other LAYERS' maps averaged
    over frequency; float16, cached on disk by the content of the waveforms asked for together."""

    def __init__(self, handle: str, cache_dir: Path):
        from yamnet_classifier import import_tensorflow, load_yamnet

        self.tf = import_tensorflow()
        self.yamnet = load_yamnet(handle)
        self.handle, self.identity = self.yamnet.handle, self.yamnet.identity
        self.features, self.network, self.whole = inner_graphs(self.tf, self.yamnet._model)
        self.folder = Path(cache_dir) / "".join(c if c.isalnum() else "_" for c in self.identity)
        self.seconds = 0.0  # spent computing (not reading) features

    def patches(self, waveform: np.ndarray) -> np.ndarray:
        from audio_util import pad_to_length

        waveform = pad_to_length(np.asarray(waveform, np.float32), YAMNET.patch_window_samples)  # as Yamnet.run
        return self.features(self.tf.constant(waveform))[0].numpy()

    def compute(self, waveforms: list[np.ndarray], dtype=np.float16) -> dict:
        """{name: (patches of all waveforms, ...)} and "counts" (patches per waveform)."""
        began = time.perf_counter()
        sets = [self.patches(w) for w in waveforms]
        patches = np.concatenate(sets)
        parts = {"embedding": [], **{f"layer{layer}": [] for layer in LAYERS}}
        for start in range(0, len(patches), PATCH_BATCH):
            embeddings, *maps = self.network(self.tf.constant(patches[start:start + PATCH_BATCH]))
            parts["embedding"].append(embeddings.numpy())
            for layer, m in zip(LAYERS, maps):
                m = m.numpy()  # (p, 6, 4, 512): time, frequency, channels
                parts[f"layer{layer}"].append(m if layer == UNPOOLED_LAYER else m.mean(axis=2))
        self.seconds += time.perf_counter() - began
        return {"counts": np.array([len(s) for s in sets]),
                **{name: np.concatenate(chunks).astype(dtype) for name, chunks in parts.items()}}

    def bundles(self, waveforms: list[np.ndarray]) -> list[dict]:
        """`compute` split per waveform, from the cache when these waveforms were asked for before."""
        digest = hashlib.sha256()
        for w in waveforms:
            digest.update(np.asarray(w, np.float32).tobytes())
            digest.update(b"|")
        path = self.folder / digest.hexdigest()[:2] / f"{digest.hexdigest()}.npz"
        bundle = None
        if path.is_file():
            try:
                with np.load(path) as stored:
                    bundle = {k: stored[k] for k in stored.files}
            except (OSError, ValueError, EOFError):
                bundle = None
        if bundle is None:
            bundle = self.compute(waveforms)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".tmp"), "wb") as f:
                np.savez(f, **bundle)
            path.with_suffix(".tmp").rename(path)
        edges = np.cumsum(bundle["counts"])[:-1]
        return [dict(zip([k for k in bundle if k != "counts"], parts))
                for parts in zip(*(np.split(bundle[k], edges) for k in bundle if k != "counts"))]


def frequency_mean(layer: int):
    def view(bundle: dict) -> np.ndarray:
        m = bundle[f"layer{layer}"].astype(np.float32)
        return (m.mean(axis=2) if m.ndim == 4 else m).reshape(len(m), -1)
    return view


# What a listener window becomes for a head: (width of the row, how it is read off the cached bundle).
FEATURES = {
    "embedding": (1024, lambda b: b["embedding"].astype(np.float32)),
    "layer9/freq": (6 * 512, frequency_mean(9)),
    "layer10/freq": (6 * 512, frequency_mean(10)),
    "layer11/freq": (6 * 512, frequency_mean(11)),
    "layer10": (int(np.prod(MAP_SHAPE)), lambda b: b["layer10"].astype(np.float32).reshape(len(b["layer10"]), -1)),
}


class FeatureView:
    """An InnerYamnet that answers as yamnet_classifier.Yamnet does (`run`, `embed_many`, identity), its
    "embeddings" being one FEATURES row per patch: training.py and stream_training.py take it as YAMNet."""

    def __init__(self, inner: InnerYamnet, name: str):
        self.inner, self.name = inner, name
        self.width, self._view = FEATURES[name]
        self.handle, self.identity = inner.handle, f"{inner.identity}-{name}"

    def run(self, waveform: np.ndarray):
        return None, self.embed_many([waveform])[0]

    def embed_many(self, waveforms: list[np.ndarray]) -> list[np.ndarray]:
        return [self._view(b) for b in self.inner.bundles(waveforms)]


@contextlib.contextmanager
def feature_width(width: int):
    """training.py and stream_training.py start their window arrays as (0, YAMNET.embedding_size); a head
    on a map trains on wider rows, so the geometry those two modules read is that width for the run."""
    import stream_training
    import training

    saved = training.YAMNET, stream_training.YAMNET
    training.YAMNET = stream_training.YAMNET = dataclasses.replace(YAMNET, embedding_size=width)
    try:
        yield
    finally:
        training.YAMNET, stream_training.YAMNET = saved


# --- heads ------------------------------------------------------------------------------------------

def conv1d_head(num_classes: int, width: int):
    """(6 x 512) time x channels -> Conv1D(128, 3, relu) -> max over time -> Dense(n) logits."""
    import keras

    return keras.Sequential([keras.Input(shape=(width,)), keras.layers.Reshape((6, width // 6)),
                             keras.layers.Conv1D(128, 3, activation="relu"), keras.layers.GlobalMaxPooling1D(),
                             keras.layers.Dense(num_classes)])


def conv2d_head(num_classes: int, width: int):
    """(6 x 4 x 512) -> Conv2D(128, 3x2, relu) -> max over time and frequency -> Dense(n) logits."""
    import keras

    return keras.Sequential([keras.Input(shape=(width,)), keras.layers.Reshape(MAP_SHAPE),
                             keras.layers.Conv2D(128, (3, 2), activation="relu"), keras.layers.GlobalMaxPooling2D(),
                             keras.layers.Dense(num_classes)])


def dense_head(num_classes: int, width: int):
    """The default head's shape on any row: Dense(512, relu) -> Dense(n) logits."""
    import keras

    return keras.Sequential([keras.Input(shape=(width,)), keras.layers.Dense(TRAINING.hidden_units, activation="relu"),
                             keras.layers.Dense(num_classes)])


@dataclass(frozen=True)
class Head:
    features: str
    build: object
    smoothing: float = LABEL_SMOOTHING


HEADS = {
    "conv-l10f": Head("layer10/freq", conv1d_head),   # the winner, layer 10
    "dense-l10f": Head("layer10/freq", dense_head),
    "conv-l9f": Head("layer9/freq", conv1d_head),
    "conv-l11f": Head("layer11/freq", conv1d_head),
    "conv2d-l10": Head("layer10", conv2d_head),       # unpooled: 4x the cache
    "dense-emb-ls": Head("embedding", dense_head),    # the default's head, smoothed, through this path (control)
}
QUICK_HEADS = ("conv-l10f", "dense-l10f")
DEFAULT_HEADS = ("conv-l10f", "dense-l10f", "conv-l11f", "dense-emb-ls")


@dataclass
class InnerHead:
    """A Keras head on FeatureView rows: the surface stream_training and training.py ask of a model."""

    head: object
    class_names: list

    def frame_probabilities(self, rows: np.ndarray) -> np.ndarray:
        import keras

        from model import softmax

        rows = np.asarray(rows, np.float32)
        logits = [keras.ops.convert_to_numpy(self.head(rows[i:i + 2048], training=False))
                  for i in range(0, len(rows), 2048)]
        return softmax(np.concatenate(logits)) if logits else np.zeros((0, len(self.class_names)))

    def clip_probabilities(self, rows: np.ndarray) -> np.ndarray:
        return self.frame_probabilities(np.asarray(rows).mean(axis=0, keepdims=True))[0]


def head_fitter(head: Head, width: int, config, class_names: list[str]):
    """training.Recipe's `fit`: a fresh head per call, Adam at train.py's rate, the config's epochs and
    batch size, class weights as given, cross-entropy with label smoothing."""
    def fit(x, y, class_weight, _validation):
        import keras

        keras.utils.set_random_seed(config.seed)
        model = head.build(len(class_names), width)
        model.compile(optimizer=keras.optimizers.Adam(TRAINING.learning_rate),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=head.smoothing))
        history = model.fit(x, keras.utils.to_categorical(y, len(class_names)), epochs=config.epochs,
                            batch_size=config.batch_size, class_weight=class_weight, verbose=0)
        return InnerHead(model, class_names), history
    return fit


def train_inner(train_dir: Path, head: Head, inner: InnerYamnet, seed: int, epochs: int | None = None) -> dict:
    """train.py's recipe (training.py: gather, cross-validate, operating point, refit) with this head on
    these features: {model, points, train_s, yamnet_s, counts}."""
    import stream_training as st
    import training
    from dataset import scan_training_folder

    view = FeatureView(inner, head.features)
    began, yamnet_began = time.perf_counter(), inner.seconds
    config = training.TrainingConfig(seed=seed, epochs=epochs)
    files_by_class, _notes = scan_training_folder(train_dir)
    with feature_width(view.width):
        data, _facts = training.gather(train_dir, files_by_class, [], config, view, None, warn=print, progress=False)
        config = training.for_data(config, data)
        recipe = training.Recipe(config, head_fitter(head, view.width, config, data.class_names),
                                 st.WindowEmbedder(view, config.level_dbfs, None))
        cv = training.cross_validate(data, recipe, log=lambda *_: None)
        points = st.choose_operating_points(cv.calibration, data.class_names, data.background_index,
                                            config.max_false_per_hour)
        model, _history, counts = training.fit_model(data, list(range(len(data.clips))), list(range(len(data.streams))),
                                                     recipe, np.random.default_rng([config.seed, config.folds]))
    yamnet_s = inner.seconds - yamnet_began
    return {"model": model, "points": {p.label: p for p in points}, "view": view, "counts": counts,
            "train_s": time.perf_counter() - began - yamnet_s, "yamnet_s": yamnet_s}


# --- judging on the held-out stream ------------------------------------------------------------------

def judged(times, scores, labels, fold: real.Fold, threshold: float, min_frames: int) -> dict:
    """bench/real.py's stream metrics at one operating point, and the head's whole curve."""
    from detection import parse_min_frames, parse_thresholds

    thresholds = parse_thresholds([], labels, {fold.target: threshold})
    frames = parse_min_frames(None, labels, {fold.target: min_frames})
    out = real.stream_metrics(times, scores, labels, fold.target, fold.stream, thresholds, frames, dcase=False)
    out["sweep"] = real.sweep(times, scores, labels, fold.target, fold.stream)
    out["operating_point"] = (threshold, min_frames)
    return out


def run_default(fold: real.Fold, work: Path, cache_dir: Path, scorer, seed: int) -> dict:
    """train.py with its defaults on the fold's training folder, scored as bench/real.py scores it."""
    from model import load_custom_model

    where = work / "models" / fold.target / f"fold{fold.fold}"
    flags = ("--seed", str(seed)) if seed else ()
    seconds, meta = real.train(f"default-s{seed}", flags, fold.train_dir, where / f"default-s{seed}", cache_dir, where)
    model = load_custom_model(where / f"default-s{seed}", backend="tf")
    times, scores = scorer.scores(fold.stream.waveform, model)
    point = meta["operating_points"][fold.target]
    result = judged(times, scores, model.class_names, fold, point["threshold"], point["min_frames"])
    result.update(train_s=seconds, promised=point["expected_false_per_hour"])
    return result


def run_inner(fold: real.Fold, head: Head, inner: InnerYamnet, seed: int, epochs: int | None = None) -> dict:
    import stream_training as st

    trained = train_inner(fold.train_dir, head, inner, seed, epochs)
    model, point = trained["model"], trained["points"][fold.target]
    waveform = fold.stream.waveform
    rows, audible = st.WindowEmbedder(trained["view"], None, None)(waveform)
    times = np.array([start for start, _w in st.listener_windows(waveform)]) / SAMPLE_RATE
    scores = st.window_scores(model, rows, audible, model.class_names.index(BACKGROUND_CLASS))
    result = judged(times, scores, model.class_names, fold, point.threshold, point.min_frames)
    result.update(train_s=trained["train_s"], yamnet_s=trained["yamnet_s"], promised=point.expected_false_per_hour,
                  frames=trained["counts"], max_score=float(scores[:, model.class_names.index(fold.target)].max()))
    return result


# --- FSDD: a seven against a voice's other digits -------------------------------------------------------

FSDD_SEVENS, FSDD_OTHERS = 50, 150   # held-out speaker's takes scored per fold
FSDD_RECALL = 0.8                    # the separability: at the score 80 % of the sevens reach ...


def separability(sevens: np.ndarray, others: np.ndarray, recall: float = FSDD_RECALL) -> float:
    """... the share of other digits scoring as high (lower is better; 1.0: no threshold tells them apart)."""
    threshold = np.quantile(sevens, 1 - recall)
    return float((others >= threshold).mean())


def fsdd_takes(fold: real.Fold, store, rooms, seed: int) -> tuple[list, list]:
    """The held-out speaker's sevens and other digits as takes in the test rooms over the fold's test
    background clips (as bench/real.py makes takes): (sevens, others), waveforms."""
    from audio_util import load_audio_16k_mono

    rng = np.random.default_rng([seed, 400, fold.fold])
    speaker = fold.notes["held_out_speaker"].removeprefix("fsdd-")
    beds = [load_audio_16k_mono(p) for p in sorted((fold.test_dir / BACKGROUND_CLASS).glob("*.wav"))]
    sevens = rd.fsdd_takes(speaker, real.DIGIT)
    others = [p for d in range(10) if d != real.DIGIT for p in rd.fsdd_takes(speaker, d)]
    out = []
    for paths, count in ((sevens, FSDD_SEVENS), (others, FSDD_OTHERS)):
        chosen = [paths[i] for i in rng.permutation(len(paths))[:count]]
        out.append([rd.take(store(p), rooms["test"][int(rng.integers(len(rooms["test"])))],
                            beds[int(rng.integers(len(beds)))], rng.uniform(*real.TAKE_SNR_DB), real.level(rng), rng)
                    for p in chosen])
    return out[0], out[1]


def fsdd_fold(fold: real.Fold, runs: list, inner: InnerYamnet, scorer, work: Path, cache_dir: Path, store, rooms,
              seed: int, epochs: int | None) -> dict:
    """{head: separability} of one held-out speaker: each take scored by its highest window for "seven"."""
    import stream_training as st
    from model import load_custom_model

    sevens, others = fsdd_takes(fold, store, rooms, seed)
    where = work / "models" / "fsdd" / f"fold{fold.fold}"
    _seconds, _meta = real.train("default", (), fold.train_dir, where / "default", cache_dir, where)
    model = load_custom_model(where / "default", backend="tf")
    column = model.class_names.index(fold.target)
    out = {"default-s0": separability(*(np.array([scorer.scores(w, model)[1][:, column].max() for w in takes])
                                        for takes in (sevens, others)))}
    for name, head_seed in runs:
        trained = train_inner(fold.train_dir, HEADS[name], inner, head_seed, epochs)
        model, embed = trained["model"], st.WindowEmbedder(trained["view"], None, None)
        background = model.class_names.index(BACKGROUND_CLASS)

        def best(w):
            rows, audible = embed(w)
            return st.window_scores(model, rows, audible, background)[:, model.class_names.index(fold.target)].max()

        out[f"{name}-s{head_seed}"] = separability(np.array([best(w) for w in sevens]), np.array([best(w) for w in others]))
    return out


# --- costs -------------------------------------------------------------------------------------------

def cpu_per_second(call, windows: list[np.ndarray]) -> float:
    """CPU seconds (all threads) per second of audio listened to, one call per listener window."""
    call(windows[0])  # the first call builds and warms
    began = time.process_time()
    for w in windows:
        call(w)
    return (time.process_time() - began) / (len(windows) * YAMNET.patch_hop_seconds)


def measure_costs(inner: InnerYamnet, waveform: np.ndarray, heads: list[str]) -> dict:
    """The extractor checked against Yamnet.run, and CPU per real-time second of each way of listening."""
    import keras

    from stream_training import listener_windows
    from tflite_backend import lite_yamnet_for

    windows = [w for _s, w in listener_windows(waveform[:int((COST_WINDOWS + 2) * YAMNET.patch_hop_samples)])]
    windows = windows[:COST_WINDOWS]
    reference = inner.yamnet.run(waveform[:10 * SAMPLE_RATE])[1]
    whole_embeddings, whole_map = (t.numpy() for t in inner.whole(inner.tf.constant(waveform[:10 * SAMPLE_RATE])))
    per_window = np.concatenate([inner.yamnet.run(w)[1] for w in windows[:20]])
    batched = inner.compute(windows[:20], np.float32)["embedding"]
    cached = np.concatenate([b["embedding"] for b in inner.bundles(windows[:20])]).astype(np.float32)
    out = {"whole_vs_run": float(np.abs(whole_embeddings - reference).max()), "map_shape": tuple(whole_map.shape[1:]),
           "batched_vs_run": float(np.abs(batched - per_window).max()),
           "float16_vs_run": float(np.abs(cached - per_window).max()),
           "embedding_max": float(np.abs(per_window).max())}
    lite = lite_yamnet_for(inner.handle)
    out["cpu"] = {"YAMNet embedding (TF, Yamnet.run)": cpu_per_second(inner.yamnet.run, windows),
                  "YAMNet embedding + layer-10 map (TF, one pruned graph)":
                      cpu_per_second(lambda w: inner.whole(inner.tf.constant(w)), windows),
                  "YAMNet embedding (TFLite, the listener's default)": cpu_per_second(lite.run, windows)}
    for name in ["default", *heads]:
        spec = HEADS.get(name, Head("embedding", dense_head))
        width = FEATURES[spec.features][0]
        model = InnerHead(spec.build(2, width), ["sound", BACKGROUND_CLASS])
        row = np.zeros((1, width), np.float32)
        out["cpu"][f"head {name}"] = cpu_per_second(lambda _w: model.frame_probabilities(row), windows)
    keras.backend.clear_session()
    return out


def cache_mb_per_hour(features: str) -> float:
    return FEATURES[features][0] * 2 * WINDOWS_PER_HOUR / 1e6  # float16


# --- the table ----------------------------------------------------------------------------------------

def table_lines(results: list[tuple[real.Fold, dict]], names: list[str], costs: dict) -> list[str]:
    """One row per head: pooled over the folds given."""
    import stream_eval

    lines = []
    base = {real.key(f): r.get("default-s0") for f, r in results}
    cpu = costs.get("cpu", {})
    for name in names:
        rows = [(f, r[name]) for f, r in results if name in r]
        if not rows:
            continue
        pooled = stream_eval.pool_counts([{"x": r["counts"]} for _f, r in rows])["x"]
        refs = [r["counts"].references for _f, r in rows]
        at_base = [real.recall_at_false(r["sweep"], base[real.key(f)]["counts"].false_per_hour)
                   for f, r in rows if base.get(real.key(f))]
        at = (f"{sum(a * n for a, n in zip(at_base, refs)) / sum(refs):.0%}" if len(at_base) == len(rows) else "-")
        head = name.rsplit("-s", 1)[0]
        spec = HEADS.get(head)
        features = spec.features if spec else "embedding"
        yamnet_cpu = cpu.get("YAMNet embedding + layer-10 map (TF, one pruned graph)" if spec and features != "embedding"
                             else "YAMNet embedding (TF, Yamnet.run)")
        head_cpu = cpu.get(f"head {head}")
        points = ", ".join(f"{r['operating_point'][0]:.6g}x{r['operating_point'][1]}" for _f, r in rows)
        lines.append(
            f"| {name} | {pooled.found}/{pooled.references} ({pooled.recall:.0%}) | "
            f"{pooled.false_per_hour:.1f} ({pooled.false_alarms} in {pooled.background_s / 3600:.1f} h) | {at} | "
            f"{np.mean([r['promised'] for _f, r in rows]):.2g}/h | {points} | "
            f"{np.mean([r['train_s'] for _f, r in rows]):.0f} s | "
            f"{'-' if yamnet_cpu is None else f'{yamnet_cpu + (head_cpu or 0):.3f}'} | "
            f"{cache_mb_per_hour(features):.0f} |")
    return lines


def print_tables(results: list[tuple[real.Fold, dict]], names: list[str], costs: dict, header: str) -> None:
    columns = ["head (seed)", "found at its own point", "false alarms/h at its own point",
               "recall at the default's false/h (same fold; best point on the test)", "promised false/h",
               "points (threshold x windows) per fold", "train s (CV + refit)", "CPU s per real-time s (TF)",
               "cache MB/h (float16)"]
    print(f"\n{header}\n")
    if costs:
        print(f"extractor: embeddings of the pruned graph vs Yamnet.run: max |diff| {costs['whole_vs_run']:.2g} "
              f"(whole waveform), {costs['batched_vs_run']:.2g} (listener windows, batched), "
              f"{costs['float16_vs_run']:.2g} once cached as float16 (embeddings up to {costs['embedding_max']:.2g}); "
              f"map {costs['map_shape']}")
        print("CPU per real-time second, one window per 0.48 s hop: "
              + "; ".join(f"{k} {v:.3f}" for k, v in costs["cpu"].items()) + "\n")
    targets = list(dict.fromkeys(f.target for f, _r in results))
    for target in targets + (["all"] if len(targets) > 1 else []):
        part = [(f, r) for f, r in results if target in ("all", f.target)]
        print(f"{target} ({len(part)} fold(s)):\n")
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        print("\n".join(table_lines(part, names, costs)) + "\n")


# --- main -------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"one jingle, 2 folds, heads {','.join(QUICK_HEADS)}, seed 0")
    parser.add_argument("--targets", default="1", metavar="N|NAMES",
                        help=f"the first N jingles of bench/real.py's game row, or some by name, comma-separated "
                             f"({', '.join(real.GAME_TARGETS)}; each keeps the material bench/real.py makes for it)")
    parser.add_argument("--folds", type=int, default=3, help="folds by track")
    parser.add_argument("--rows", default="game", help="game (the jingle streams) and/or fsdd (a seven against a "
                                                      "held-out voice's other digits), comma-separated")
    parser.add_argument("--fsdd-folds", type=int, default=2, help="held-out FSDD speakers (up to 6)")
    parser.add_argument("--heads", default=",".join(DEFAULT_HEADS),
                        help=f"heads beside train.py's default, comma-separated, each optionally with its own seeds "
                             f"(conv-l10f:0+1): {', '.join(HEADS)}")
    parser.add_argument("--seeds", default="0,1", help="training seeds (train.py --seed) of heads given without any")
    parser.add_argument("--epochs", type=int, default=None,
                        help="the map heads' epochs (smoke runs only; default: the recipe's, as train.py)")
    parser.add_argument("--default-seeds", default="0", help="training seeds of train.py's default")
    parser.add_argument("--seed", type=int, default=0, help="seed of the material (splits, rooms, takes)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="decoded audio, embeddings and float16 feature bundles (kept between runs)")
    parser.add_argument("--tables", type=Path, metavar="RESULTS_PKL", help="print the table of an earlier run")
    args = parser.parse_args(argv)
    if args.tables:
        with open(args.tables, "rb") as f:
            saved = pickle.load(f)
        print_tables(saved["results"], saved["names"], saved["costs"], f"bench/inner_maps.py: {args.tables}")
        return 0
    try:
        seeds = [int(s) for s in ("0" if args.quick else args.seeds).split(",")]
        default_seeds = [int(s) for s in args.default_seeds.split(",")]
        runs = []  # (head, seed)
        for entry in (QUICK_HEADS if args.quick else [h for h in args.heads.split(",") if h]):
            name, _sep, own = entry.partition(":")
            runs += [(name, seed) for seed in ([int(s) for s in own.split("+")] if own else seeds)]
    except ValueError:
        parser.error("seeds are whole numbers: --seeds 0,1, --default-seeds 0, --heads conv-l10f:0+1")
    heads = list(dict.fromkeys(name for name, _seed in runs))
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        parser.error(f"unknown head(s) {', '.join(unknown)}: choose from {', '.join(HEADS)}")
    if 0 not in default_seeds:
        parser.error("--default-seeds must include 0 (the other heads are compared at its false alarms)")
    names_given = [] if args.targets.isdigit() else args.targets.split(",")
    if set(names_given) - set(real.GAME_TARGETS):
        parser.error(f"--targets names jingles of {', '.join(real.GAME_TARGETS)}")
    if not names_given and not 1 <= int(args.targets) <= len(real.GAME_TARGETS):
        parser.error(f"--targets must be 1..{len(real.GAME_TARGETS)}")
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    rows = args.rows.split(",")
    if not rows or set(rows) - {"game", "fsdd"}:
        parser.error("--rows takes game, fsdd or both")
    if not 1 <= args.fsdd_folds <= 6:
        parser.error("--fsdd-folds must be 1..6")
    if problem := rd.missing_requirements("bench/inner_maps.py"):
        print(problem, file=sys.stderr)
        return 1
    from yamnet_classifier import resolve_yamnet_handle

    folds = 2 if args.quick else args.folds
    order = list(real.GAME_TARGETS)
    chosen = order[:1] if args.quick else names_given or order[:int(args.targets)]
    targets = dict(list(real.GAME_TARGETS.items())[:max(order.index(name) for name in chosen) + 1])
    work = args.cache_dir / time.strftime("run-%Y%m%d-%H%M%S")
    log = lambda text: print(text, flush=True)  # noqa: E731
    began = time.perf_counter()
    store = rd.AudioStore(args.cache_dir)
    rooms = {"train": rd.room_impulse_responses(real.ROOMS, args.seed),
             "test": rd.room_impulse_responses(real.ROOMS, args.seed + 1)}
    material = [f for f in real.game_row_folds(work, store, rooms, targets, folds, args.seed)
                if f.target in chosen] if "game" in rows else []
    log(f"material: {len(material)} fold(s) written to {work} in {time.perf_counter() - began:.0f} s")
    inner = InnerYamnet(resolve_yamnet_handle(None), args.cache_dir / "features")
    scorer = real.StreamScorer(args.cache_dir / "embeddings")
    names = [f"default-s{s}" for s in default_seeds] + [f"{h}-s{s}" for h, s in runs]
    if "fsdd" in rows:
        kind = real.kind_row_folds(work, store, rooms, args.fsdd_folds, args.seed)
        separated = [fsdd_fold(fold, runs, inner, scorer, work, args.cache_dir / "embeddings", store, rooms, args.seed,
                               args.epochs) for fold in kind]
        print(f"\nFSDD, a seven against the held-out speaker's other digits ({len(kind)} speaker(s); {FSDD_SEVENS} sevens, "
              f"{FSDD_OTHERS} other digits each): share of other digits scoring as high as {FSDD_RECALL:.0%} of the "
              f"sevens (lower is better)\n")
        print("| head (seed) | " + " | ".join(f.notes["held_out_speaker"] for f in kind) + " | mean |")
        print("|---|" + "---|" * (len(kind) + 1))
        for name in [n for n in names if all(n in r for r in separated)]:
            print(f"| {name} | " + " | ".join(f"{r[name]:.0%}" for r in separated)
                  + f" | {np.mean([r[name] for r in separated]):.0%} |")
        if not material:
            return 0
    costs = measure_costs(inner, material[0].stream.waveform, heads)
    log(f"extractor: |embeddings - Yamnet.run| <= {costs['whole_vs_run']:.2g} (whole), "
        f"{costs['batched_vs_run']:.2g} (batched windows); map {costs['map_shape']}; CPU per real-time s: "
        + ", ".join(f"{k} {v:.3f}" for k, v in costs["cpu"].items()))
    results = []
    for fold in material:
        by_head = {}
        for name, seed in runs:  # the new code first: a mistake in it shows before train.py's minutes
            by_head[f"{name}-s{seed}"] = run_inner(fold, HEADS[name], inner, seed, args.epochs)
            log(f"  {fold.target} / fold {fold.fold} / {summary(f'{name}-s{seed}', by_head[f'{name}-s{seed}'])}")
        for seed in default_seeds:
            by_head[f"default-s{seed}"] = run_default(fold, work, args.cache_dir / "embeddings", scorer, seed)
            log(f"  {fold.target} / fold {fold.fold} / {summary(f'default-s{seed}', by_head[f'default-s{seed}'])}")
        fold.stream.waveform = fold.stream.waveform[:0]  # the table needs its references only
        results.append((fold, by_head))
        with open(work / "results.pkl", "wb") as f:  # after every fold: an interrupted run still has a table
            pickle.dump({"results": results, "names": names, "costs": costs}, f)
    size = sum(p.stat().st_size for p in (args.cache_dir / "features").rglob("*.npz"))
    print_tables(results, names, costs,
                 f"bench/inner_maps.py, game stream, {', '.join(chosen)}, {folds} folds, material seed {args.seed}, "
                 f"{time.perf_counter() - began:.0f} s ({time.strftime('%Y-%m-%d')}); feature bundles on disk "
                 f"{size / 1e6:.0f} MB; results in {work / 'results.pkl'}")
    return 0


def summary(name: str, result: dict) -> str:
    c = result["counts"]
    return (f"{name}: found {c.found}/{c.references}, {c.false_alarms} false in {c.background_s / 3600:.2f} h "
            f"({c.false_per_hour:.1f}/h; promised {result['promised']:.2g}/h) at "
            f"{result['operating_point'][0]:.4g} x{result['operating_point'][1]}, {result['train_s']:.0f} s"
            + (f" (+{result['yamnet_s']:.0f} s YAMNet)" if "yamnet_s" in result else ""))


if __name__ == "__main__":
    sys.exit(main())
