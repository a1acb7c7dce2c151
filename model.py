"""The custom classifier head on YAMNet embeddings, and the model folder that explains itself.

A model folder holds `classifier.keras` (the head), `class_names.txt` (output order) and
`model.json` (class names, YAMNet handle, audio params, training config and scores).
Keras is imported lazily: reading model.json or checking a folder costs nothing.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomic_write import atomic_output, write_text_atomic
from audio_util import first_line
from class_map import ClassMapError, format_class_names, read_class_names
from params import (
    CLASS_NAMES_FILENAME,
    CLASSIFIER_FILENAME,
    EMBEDDING_SIZE,
    MODEL_JSON_FILENAME,
    TRAINING,
)


class ModelError(Exception):
    """A custom model folder that is missing or unreadable; the message says what to do."""


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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass
class CustomModel:
    """A trained head with its class names and metadata."""

    head: object
    class_names: list[str]
    meta: dict

    def frame_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings (patches, 1024) -> probabilities (patches, num_classes), one row per 0.96 s window."""
        return softmax(self._logits(np.asarray(embeddings, dtype=np.float32)))

    def clip_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """embeddings (patches, 1024) -> class probabilities (num_classes,): mean over time, head, softmax."""
        mean_embedding = embeddings.mean(axis=0, keepdims=True).astype(np.float32)
        return softmax(self._logits(mean_embedding))[0]

    def predict_clip(self, embeddings: np.ndarray) -> int:
        """Index of the most likely class for one clip, as main.py --custom answers."""
        return int(np.argmax(self.clip_probabilities(embeddings)))

    def _logits(self, x: np.ndarray) -> np.ndarray:
        import keras

        return keras.ops.convert_to_numpy(self.head(x, training=False))


def save_custom_model(out_dir, head, class_names: list[str], meta: dict) -> None:
    """Write the three model files, each to a temporary name then renamed; model.json last,
    so a folder whose model.json is new has all its parts new."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / CLASSIFIER_FILENAME) as tmp:
        head.save(tmp)
    write_text_atomic(out_dir / CLASS_NAMES_FILENAME, format_class_names(class_names))
    write_text_atomic(out_dir / MODEL_JSON_FILENAME, json.dumps(meta, indent=2) + "\n")


def read_model_json(models_dir) -> dict:
    """The metadata of a model folder; {} when it has none (a model from an older version)."""
    path = Path(models_dir) / MODEL_JSON_FILENAME
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path} is not valid JSON ({e}); retrain with python train.py") from e
    if not isinstance(meta, dict):
        raise ModelError(f"{path} must hold a JSON object {{...}}; retrain with python train.py")
    return meta


def check_model_dir(models_dir) -> None:
    """Fail fast, before any TensorFlow import, when a model folder is incomplete."""
    models_dir = Path(models_dir)
    missing = [name for name in (CLASSIFIER_FILENAME, CLASS_NAMES_FILENAME) if not (models_dir / name).is_file()]
    if missing:
        raise ModelError(
            f"no trained model in {models_dir} (missing {', '.join(missing)}): "
            f"train one with: python train.py training/ {models_dir}"
        )


def load_custom_model(models_dir) -> CustomModel:
    """Load the head, class names and metadata written by `save_custom_model`."""
    models_dir = Path(models_dir)
    check_model_dir(models_dir)
    try:
        class_names = read_class_names(models_dir / CLASS_NAMES_FILENAME)
    except ClassMapError as e:
        raise ModelError(str(e)) from e
    meta = read_model_json(models_dir)
    if meta.get("class_names", class_names) != class_names:  # parts of two different trainings
        raise ModelError(f"{models_dir}: {CLASS_NAMES_FILENAME} and {MODEL_JSON_FILENAME} list different classes "
                         f"(an interrupted training?); retrain with python train.py")
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
    return CustomModel(head=head, class_names=class_names, meta=meta)
