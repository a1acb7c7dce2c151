"""A trained model folder's files, read without TensorFlow or Keras: model.json and the check that
a folder holds a model at all, and the one error a broken folder gives (pure helpers layer).
"""

import json
from pathlib import Path

from params import CLASS_NAMES_FILENAME, CLASSIFIER_FILENAME, MODEL_JSON_FILENAME


class ModelError(Exception):
    """A custom model folder that is missing or unreadable; the message says what to do."""


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
