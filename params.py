"""The numbers with meaning, named once and imported everywhere else.

The audio values are fixed by how YAMNet was trained (see tensorflow/models
research/audioset/yamnet/params.py); changing them breaks the pretrained model.
"""

from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class YamnetParams:
    """YAMNet's input and output geometry. Fixed by training: do not change."""

    sample_rate: int = 16000           # Hz, mono
    patch_window_seconds: float = 0.96  # one embedding covers 96 log-mel frames
    patch_hop_seconds: float = 0.48     # embeddings overlap by half
    embedding_size: int = 1024          # width of YAMNet's penultimate layer
    num_classes: int = 521              # AudioSet ontology classes

    @property
    def patch_window_samples(self) -> int:
        return round(self.sample_rate * self.patch_window_seconds)  # 15360

    @property
    def patch_hop_samples(self) -> int:
        return round(self.sample_rate * self.patch_hop_seconds)  # 7680


YAMNET = YamnetParams()
SAMPLE_RATE = YAMNET.sample_rate
EMBEDDING_SIZE = YAMNET.embedding_size

# Where YAMNet comes from: --yamnet beats the environment variable beats the bundled copy.
YAMNET_ENV_VAR = "AUDIO2MQTT_YAMNET"
BUNDLED_YAMNET_DIR = PROJECT_DIR / "models" / "yamnet"
TFHUB_YAMNET_URL = "https://tfhub.dev/google/yamnet/1"

DEFAULT_MODELS_DIR = PROJECT_DIR / "models"

# Files of a trained custom model (written by train.py, read by main.py).
CLASSIFIER_FILENAME = "classifier.keras"
CLASS_NAMES_FILENAME = "class_names.txt"
MODEL_JSON_FILENAME = "model.json"

# The class name that stands for "none of my sounds"; suggested when a user has one class.
BACKGROUND_CLASS = "background"


@dataclass(frozen=True)
class TrainingDefaults:
    """Defaults of train.py, as in the seed recipe."""

    epochs: int = 50
    batch_size: int = 32
    hidden_units: int = 512     # Dense(512, relu) head
    val_split: float = 0.2      # fraction of each class's files held out
    seed: int = 0
    learning_rate: float = 1e-3  # Adam's default


TRAINING = TrainingDefaults()

# What the scripts treat as audio when they walk a folder (anything libsndfile reads).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf", ".w64", ".rf64"}
)
