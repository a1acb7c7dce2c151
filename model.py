"""The custom classifier head on YAMNet embeddings, and the model folder that explains itself.

A model folder holds `classifier.keras` (the head), `class_names.txt` (output order),
`model.json` (class names, YAMNet handle, audio params, clip settings, "unknown" thresholds,
training config and scores) and `prototypes.npz` (training clips' mean embeddings, for "unknown").
Keras is imported lazily: reading model.json or checking a folder costs nothing.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomic_write import atomic_output, write_text_atomic
from audio_util import first_line
from class_map import ClassMapError, format_class_names, read_class_names
from model_folder import ModelError, check_model_dir, read_model_json
from params import (
    BACKGROUND_CLASS,
    CLASS_NAMES_FILENAME,
    CLASSIFIER_FILENAME,
    CLIP,
    EMBEDDING_SIZE,
    MODEL_JSON_FILENAME,
    PIPELINE_TFLITE_FILENAME,
    PROTOTYPES_FILENAME,
    TRAINING,
    UNKNOWN,
    UNKNOWN_LABEL,
)
from tflite_backend import load_model_pipeline, sidecar_path


def build_classifier_head(num_classes: int, hidden_units: int = TRAINING.hidden_units,
                          learning_rate: float = TRAINING.learning_rate):
    """Input(1024) -> Dense(512, relu) -> Dense(num_classes) logits, compiled with Adam."""
    from yamnet_classifier import import_tensorflow

    import_tensorflow()
    import keras

    head = keras.Sequential(
        [
            keras.Input(shape=(EMBEDDING_SIZE,), dtype="float32", name="embedding"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name="audio2mqtt_head",
    )
    head.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return head


def fit_head(x: np.ndarray, y: np.ndarray, num_classes: int, epochs: int, batch_size: int, seed: int,
             class_weight: dict | None = None, validation=None, on_epoch=None):
    """A fresh head trained on frames x (n, 1024) with labels y (n,); returns (head, Keras history).
    `on_epoch(epoch, logs)` is called after each epoch (Keras's own progress bars flood logs)."""
    from yamnet_classifier import import_tensorflow

    import_tensorflow()  # first, so its start-up chatter is silenced
    import keras

    keras.utils.set_random_seed(seed)
    head = build_classifier_head(num_classes)
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=on_epoch)] if on_epoch else []
    history = head.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation,
                       class_weight=class_weight, callbacks=callbacks, verbose=0)
    return head, history


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), so dot products are cosine similarities."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def clip_settings(meta: dict) -> tuple[int, float | None]:
    """(views, level_dbfs) a model was trained with, from model.json's "clip"; (1, None) if absent
    (models from before clip settings existed were trained on plain clips)."""
    clip = meta.get("clip") or {}
    views = clip.get("views", 1)
    level = clip.get("level_dbfs")
    if not isinstance(views, int) or views < 1 or not (level is None or isinstance(level, (int, float))):
        raise ModelError(f"model.json has an invalid \"clip\" entry {clip!r}; retrain with python train.py")
    return views, level


def is_audible(window: np.ndarray) -> bool:
    """Whether a live window is louder than CLIP.silence_dbfs, the listener's silence gate (levelled
    models only: levelled training clips never showed the head silence)."""
    import augment

    return augment.rms(window) >= 10 ** (CLIP.silence_dbfs / 20)


def silent_probabilities(class_names: list[str]) -> np.ndarray:
    """What a gated (silent) window scores: all background, or all zeros without a background class."""
    silent = np.zeros(len(class_names), np.float32)
    if BACKGROUND_CLASS in class_names:
        silent[class_names.index(BACKGROUND_CLASS)] = 1.0
    return silent


@dataclass
class CustomModel:
    """A trained head with its class names, metadata and (optionally) the prototypes for "unknown"."""

    head: object
    class_names: list[str]
    meta: dict
    prototypes: np.ndarray | None = None         # (clips, 1024) unit mean embeddings of training clips
    prototype_labels: np.ndarray | None = None   # (clips,) class index of each

    def embed_clip(self, waveform: np.ndarray, yamnet) -> np.ndarray:
        """The clip's embeddings (patches, 1024) made the way this model's training clips were."""
        from dataset import clip_embeddings

        return clip_embeddings(waveform, yamnet, *clip_settings(self.meta))

    def window_probabilities(self, window: np.ndarray, yamnet) -> np.ndarray:
        """Class probabilities (num_classes,) of one live window (one patch of audio), levelled as the
        training clips were but boosted at most CLIP.window_max_gain_db. A window quieter than
        CLIP.silence_dbfs is all background (or all zeros without a background class)."""
        _views, level_dbfs = clip_settings(self.meta)
        if level_dbfs is not None:
            import augment

            if not is_audible(window):  # silence: none of your sounds
                return silent_probabilities(self.class_names)
            window = augment.normalize_rms(window, level_dbfs, max_gain_db=CLIP.window_max_gain_db)
        return self.frame_probabilities(yamnet.run(window)[1][:1])[0]

    def frame_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings (patches, 1024) -> probabilities (patches, num_classes), one row per 0.96 s window."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if hasattr(self.head, "frame_probabilities"):  # the TFLite head (tflite_backend.LiteHead): no TensorFlow
            return self.head.frame_probabilities(embeddings)
        return softmax(self._logits(embeddings))

    def clip_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings (patches, 1024) -> class probabilities (num_classes,): mean over time, head, softmax."""
        return self.frame_probabilities(embeddings.mean(axis=0, keepdims=True))[0]

    def predict_clip(self, embeddings: np.ndarray) -> int:
        """Index of the most likely class for one clip (the best guess, known or not)."""
        return int(np.argmax(self.clip_probabilities(embeddings)))

    def similarity(self, embeddings: np.ndarray, class_index: int) -> float | None:
        """Cosine similarity of the clip's mean embedding to the closest training clip of that class;
        None for a model without prototypes."""
        if self.prototypes is None:
            return None
        own = self.prototypes[self.prototype_labels == class_index]
        if not len(own):
            return None
        return float((own @ unit_rows(embeddings.mean(axis=0))).max())

    def classify(self, embeddings: np.ndarray, top_k: int = 1) -> dict:
        """One clip -> {'label', 'confidence', 'top', 'best_guess', 'similarity'}; 'label' is
        "unknown" when the best guess is below its class's thresholds in model.json."""
        probabilities = self.clip_probabilities(embeddings)
        order = np.argsort(probabilities)[::-1]
        best = int(order[0])
        similarity = self.similarity(embeddings, best)
        best_guess, confidence = self.class_names[best], float(probabilities[best])
        return {
            "label": best_guess if self.is_known(best_guess, confidence, similarity) else UNKNOWN_LABEL,
            "confidence": round(confidence, 6),
            "top": [{"label": self.class_names[i], "score": round(float(probabilities[i]), 6)} for i in order[:top_k]],
            "best_guess": best_guess,
            "similarity": None if similarity is None else round(similarity, 6),
        }

    def is_known(self, label: str, probability: float, similarity: float | None) -> bool:
        """Whether a best guess clears its class's thresholds (models without thresholds: always)."""
        thresholds = self.meta.get("unknown") or {}
        if probability < (thresholds.get("probability") or {}).get(label, 0.0):
            return False
        min_similarity = (thresholds.get("similarity") or {}).get(label)
        return min_similarity is None or similarity is None or similarity >= min_similarity

    def _logits(self, x: np.ndarray) -> np.ndarray:
        import keras

        return keras.ops.convert_to_numpy(self.head(x, training=False))


def nearest_same_class_similarities(mean_embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each clip, cosine similarity to the closest OTHER clip of its class (nan if it is alone):
    how alike a new take of a class looks to what the model was trained on."""
    units = unit_rows(mean_embeddings)
    out = np.full(len(units), np.nan, dtype=np.float32)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        similarities = units[members] @ units[members].T
        np.fill_diagonal(similarities, -np.inf)
        out[members] = similarities.max(axis=1)
    return out


def choose_unknown_thresholds(class_names: list[str], probabilities: dict[str, list[float]],
                              similarities: dict[str, list[float]]) -> dict:
    """Per-class thresholds for "unknown", keeping all but UNKNOWN.quantile of held-out clips:
    probabilities[name]: the model's probability for held-out clips of that class it got right;
    similarities[name]: their similarity to the class's other clips. Classes without held-out
    clips get no threshold (they are never called unknown on that ground)."""
    floor = 1.0 / len(class_names)
    chosen = {"probability": {}, "similarity": {}}
    for name in class_names:
        scores = [p for p in probabilities.get(name, []) if np.isfinite(p)]
        if scores:
            chosen["probability"][name] = round(float(np.clip(np.quantile(scores, UNKNOWN.quantile), floor,
                                                              UNKNOWN.max_probability)), 4)
        scores = [s for s in similarities.get(name, []) if np.isfinite(s)]
        if scores:
            chosen["similarity"][name] = round(float(np.quantile(scores, UNKNOWN.quantile) - UNKNOWN.similarity_margin), 4)
    return chosen


def pick_prototypes(mean_embeddings: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit mean embeddings of at most UNKNOWN.max_prototypes training clips per class (a seeded draw)."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > UNKNOWN.max_prototypes:
            members = np.sort(rng.choice(members, UNKNOWN.max_prototypes, replace=False))
        keep.append(members)
    keep = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return unit_rows(mean_embeddings[keep]), labels[keep].astype(np.int32)


def save_custom_model(out_dir, head, class_names: list[str], meta: dict, prototypes=None,
                      export_tflite=None) -> None:
    """Write the model files, each to a temporary name then renamed; model.json last, so a folder
    whose model.json is new has all its parts new. `prototypes`: (unit embeddings, labels) or None;
    `export_tflite(out_dir)` writes the TFLite pipeline (before model.json, for the same reason)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / CLASSIFIER_FILENAME) as tmp:
        head.save(tmp)
    write_text_atomic(out_dir / CLASS_NAMES_FILENAME, format_class_names(class_names))
    if prototypes is not None:
        with atomic_output(out_dir / PROTOTYPES_FILENAME) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, embeddings=prototypes[0].astype(np.float32), labels=prototypes[1],
                         class_names=np.array(class_names))
    else:
        (out_dir / PROTOTYPES_FILENAME).unlink(missing_ok=True)
    if export_tflite is not None:
        export_tflite(out_dir)
    else:  # an old one would describe an older training
        (out_dir / PIPELINE_TFLITE_FILENAME).unlink(missing_ok=True)
        sidecar_path(out_dir / PIPELINE_TFLITE_FILENAME).unlink(missing_ok=True)
    write_text_atomic(out_dir / MODEL_JSON_FILENAME, json.dumps(meta, indent=2) + "\n")


def load_custom_model(models_dir, backend: str = "tf") -> CustomModel:
    """Load the head, class names and metadata written by `save_custom_model`.

    backend "tf": the Keras head; "tflite": the head of classifier.tflite (no TensorFlow);
    "auto": TFLite when the folder has a classifier.tflite, else Keras."""
    models_dir = Path(models_dir)
    check_model_dir(models_dir)
    try:
        class_names = read_class_names(models_dir / CLASS_NAMES_FILENAME)
    except ClassMapError as e:
        raise ModelError(str(e)) from e
    meta = read_model_json(models_dir)
    clip_settings(meta)
    check_unknown_thresholds(meta, models_dir)
    if meta.get("class_names", class_names) != class_names:  # parts of two different trainings
        raise ModelError(f"{models_dir}: {CLASS_NAMES_FILENAME} and {MODEL_JSON_FILENAME} list different classes "
                         f"(an interrupted training?); retrain with python train.py")
    prototypes, prototype_labels = load_prototypes(models_dir, class_names)
    if backend == "tflite" or backend == "auto" and (models_dir / PIPELINE_TFLITE_FILENAME).is_file():
        try:
            return CustomModel(head=load_model_pipeline(models_dir, meta=meta), class_names=class_names, meta=meta,
                               prototypes=prototypes, prototype_labels=prototype_labels)
        except ImportError as e:  # ai-edge-litert missing: Keras can still answer, unless TFLite was asked for
            if backend == "tflite":
                raise ModelError(f"the TFLite backend needs ai-edge-litert ({first_line(e)}): "
                                 f"pip install -r requirements.txt") from e
    from yamnet_classifier import import_tensorflow

    import_tensorflow()
    import keras

    path = models_dir / CLASSIFIER_FILENAME
    try:
        head = keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors...: one line for the user
        raise ModelError(f"cannot load {path}: {first_line(e)}; retrain with python train.py") from e
    outputs = head.output_shape[-1]
    if outputs != len(class_names):
        raise ModelError(
            f"{path} has {outputs} outputs but {models_dir / CLASS_NAMES_FILENAME} lists "
            f"{len(class_names)} classes; retrain with python train.py"
        )
    return CustomModel(head=head, class_names=class_names, meta=meta, prototypes=prototypes,
                       prototype_labels=prototype_labels)


def check_unknown_thresholds(meta: dict, models_dir: Path) -> None:
    """model.json's "unknown" must map class names to numbers (users may edit it by hand)."""
    unknown = meta.get("unknown") or {}
    path = models_dir / MODEL_JSON_FILENAME
    if not isinstance(unknown, dict):
        raise ModelError(f"{path}: \"unknown\" must be an object {{\"probability\": ..., \"similarity\": ...}}")
    for kind in ("probability", "similarity"):
        table = unknown.get(kind)
        if table is None:
            continue
        if not isinstance(table, dict) or not all(isinstance(v, (int, float)) for v in table.values()):
            raise ModelError(f"{path}: \"unknown\": {{\"{kind}\": ...}} must map class names "
                             f"to numbers, like {{\"doorbell\": 0.5}}")


def load_prototypes(models_dir: Path, class_names: list[str]):
    """(unit embeddings, labels) from prototypes.npz, or (None, None) for a model without one."""
    path = models_dir / PROTOTYPES_FILENAME
    if not path.is_file():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as data:
            embeddings, labels, names = data["embeddings"], data["labels"], list(data["class_names"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ModelError(f"cannot read {path}: {first_line(e)}; retrain with python train.py") from e
    if names != class_names or embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_SIZE or len(labels) != len(embeddings):
        raise ModelError(f"{path} does not belong to the model beside it (an interrupted training?); "
                         f"retrain with python train.py")
    return embeddings.astype(np.float32), labels
