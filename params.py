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
    stft_window_seconds: float = 0.025  # log-mel frames: 25 ms windows ...
    stft_hop_seconds: float = 0.010     # ... every 10 ms

    @property
    def patch_window_samples(self) -> int:
        return round(self.sample_rate * self.patch_window_seconds)  # 15360

    @property
    def patch_hop_samples(self) -> int:
        return round(self.sample_rate * self.patch_hop_seconds)  # 7680

    @property
    def patch_input_samples(self) -> int:
        """Samples one patch is computed from: the last STFT window reads 15 ms past the last hop."""
        return self.patch_window_samples + round(self.sample_rate * (self.stft_window_seconds - self.stft_hop_seconds))  # 15600


YAMNET = YamnetParams()
SAMPLE_RATE = YAMNET.sample_rate
EMBEDDING_SIZE = YAMNET.embedding_size

# Where YAMNet comes from: --yamnet beats the environment variable beats the bundled copy.
YAMNET_ENV_VAR = "AUDIO2MQTT_YAMNET"
BUNDLED_YAMNET_DIR = PROJECT_DIR / "models" / "yamnet"
TFHUB_YAMNET_URL = "https://tfhub.dev/google/yamnet/1"
YAMNET_OPTION_HELP = f"YAMNet SavedModel folder or TF Hub URL (default: ${YAMNET_ENV_VAR} or models/yamnet)"  # --yamnet
# --backend of main.py, evaluate.py and listen.py (chosen in backend.py): TFLite where its files exist, or either.
BACKENDS = ("auto", "tf", "tflite")

DEFAULT_MODELS_DIR = PROJECT_DIR / "models"

# Files of a trained custom model (written by train.py, read by main.py).
CLASSIFIER_FILENAME = "classifier.keras"
CLASS_NAMES_FILENAME = "class_names.txt"
MODEL_JSON_FILENAME = "model.json"
PIPELINE_TFLITE_FILENAME = "classifier.tflite"  # YAMNet + head as one TFLite model (tflite_backend.py)
PROTOTYPES_FILENAME = "prototypes.npz"  # mean embedding of each training clip: "unknown" compares against them
CONFUSION_PNG = "confusion.png"
TRAINING_CURVE_PNG = "training_curve.png"

# The class name that stands for "none of my sounds"; suggested when a user has one class.
BACKGROUND_CLASS = "background"


@dataclass(frozen=True)
class TrainingDefaults:
    """Defaults of train.py, as in the seed recipe."""

    epochs: int = 50
    batch_size: int = 32
    hidden_units: int = 512     # Dense(512, relu) head
    seed: int = 0
    folds: int = 5              # cross-validation folds: every clip judged once, by a model that never saw it
    balance: bool = True        # class weights n / (classes * n_c): neither side drowns the other
    learning_rate: float = 1e-3  # Adam's default
    augment_semitones: tuple = (-3.0, 3.0)  # train.py --augment N: pitch shifts of each copy, uniform in this range


TRAINING = TrainingDefaults()


@dataclass(frozen=True)
class ClipDefaults:
    """How a clip becomes embeddings, the same in train.py, evaluate.py and main.py --custom
    (views measured in bench/accuracy.py and bench/real.py)."""

    views: int = 8                # time-shifted copies of a clip, for about this many embeddings (augment.shift_offsets)
    level_dbfs: float | None = None   # off: on real recordings levelling every clip to one RMS lost to the
                                      # seed's plain clips (bench/real.py); --level-dbfs turns it on
    suggested_level_dbfs: float = -20.0  # the level --level-dbfs was measured at
    window_max_gain_db: float = 30.0  # live windows are levelled too, but boosted at most this much, so
                                      # near-silence is not blown up into loud noise the model never heard
    silence_dbfs: float = -70.0       # a live window quieter than this (digital silence, dither) never fires:
                                      # levelled training clips never showed the head silence


CLIP = ClipDefaults()


@dataclass(frozen=True)
class UnknownDefaults:
    """How train.py picks the per-class thresholds below which main.py --custom answers "unknown"."""

    quantile: float = 0.05           # thresholds keep all but this share of held-out clips of a class
    max_probability: float = 0.6     # a probability threshold never above this (small, confident validation sets)
    similarity_margin: float = 0.05  # similarity thresholds sit this far below the held-out clips' (new takes vary more)
    max_prototypes: int = 200        # training clips kept per class to compare new clips with


UNKNOWN = UnknownDefaults()


@dataclass(frozen=True)
class StreamTrainingDefaults:
    """How train.py turns background recordings into training windows and an operating point (each
    default measured against the seed's recipe in bench/real.py)."""

    splice_copies: int = 3                 # each clip spliced this many times into background ...
    splice_snr_db: tuple = (5.0, 30.0)     # ... at a signal-to-background ratio uniform in this range ...
    splice_excerpt_seconds: tuple = (2.5, 4.0)  # ... into an excerpt this long (at least the clip + 1 s)
    positive_coverage: float = 0.5         # a window holding >= this share of a clip is that class; one
                                           # holding none of it is background; windows in between are dropped
    max_background_windows: int = 12000    # background windows per training run (a random subset beyond)
    hard_negative_score: float = 0.1       # background windows a first model scores above this for a sound ...
    hard_negative_copies: int = 4          # ... are added this many more times for a second model
    hard_negatives: bool = True            # train.py mines them (--no-hard-negatives)
    recording_seconds: float = 30.0        # a background file this long is a recording (listener windows), not a clip
    min_background_minutes: float = 10.0   # less background than this chooses no operating point: too short to count on
    many_frames: int = 3000                # from this many training frames (~25 min of background) on ...
    epochs: int = 30                       # ... fewer passes ...
    batch_size: int = 128                  # ... of larger batches suffice
    segment_seconds: float = 30.0          # background recordings are dealt to folds in pieces this long
    held_out_copies: int = 2               # held-out clips spliced this often into held-out background ...
    held_out_snr_db: tuple = (-5.0, 20.0)  # ... at a ratio uniform in this range: real sounds are often under
                                           # the music or the TV, and recall is judged there too
    max_false_per_hour: float = 1.0        # train.py --max-false-per-hour
    min_threshold: float = 0.5             # operating points are searched from here ...
    max_threshold: float = 0.99999         # ... to here, evenly in logit
    threshold_steps: int = 120
    max_min_frames: int = 4                # windows to start/end an event: 1 .. this
    false_alarm_copies: int = 4            # a clip fed back as "Not a <sound>" (background/false_alarms/) trains
                                           # this many times more than another background clip: a hard negative


STREAM = StreamTrainingDefaults()
UNKNOWN_LABEL = "unknown"

# What the scripts treat as audio when they walk a folder (anything libsndfile reads).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf", ".w64", ".rf64"}
)


# --- Live listening: listen.py, detection.py, audio_source.py, mqtt_publisher.py -------------------
# Windows of YAMNet.patch_input_samples (15600) score the same as the patches of one YAMNet run over
# the whole stream; with 15360 the last frames of each window would see zeros.
LISTEN_WINDOW_SAMPLES = YAMNET.patch_input_samples


@dataclass(frozen=True)
class ListenDefaults:
    """Defaults of listen.py. Latency from a sound's onset to its MQTT message is about one hop to
    one window plus `chunk_seconds` plus inference: min_frames=1 keeps it under 1.5 s."""

    threshold: float = 0.5            # score a window must reach (softmax with --custom, sigmoid with --classes)
    min_frames: int = 1               # windows at/above (below) threshold to start (end) an event; each adds 0.48 s
    cooldown_seconds: float = 0.0     # after an event ends, the same label may not start again for this long
    chunk_seconds: float = 0.1        # audio block read from a device, file or stdin: adds up to this to latency
    queue_size: int = 1000            # MQTT messages kept while the broker is away; the oldest are dropped beyond
    reconnect_min_seconds: float = 1.0   # paho's reconnect backoff doubles from here ...
    reconnect_max_seconds: float = 30.0  # ... up to here
    connect_timeout_seconds: float = 5.0  # wait for the broker's first answer, then listen anyway
    shutdown_flush_seconds: float = 5.0   # at exit, time allowed to deliver what is still queued
    keepalive_seconds: int = 30
    stall_seconds: float = 10.0           # --command: no audio for this long is a stall: the command is restarted
    restart_min_seconds: float = 1.0      # --command and a lost microphone: retried after this, doubling ...
    restart_max_seconds: float = 60.0     # ... up to this; a run longer than this starts again from the minimum
    mqtt_port: int = 1883
    mqtt_tls_port: int = 8883
    topic_root: str = "audio2mqtt"        # topics are <topic_root>/<device name>/...
    ha_discovery_prefix: str = "homeassistant"  # Home Assistant's default discovery prefix


LISTEN = ListenDefaults()

# MQTT credentials never go on the command line (they would show in `ps` and shell history).
MQTT_USERNAME_ENV_VAR = "AUDIO2MQTT_MQTT_USERNAME"
MQTT_PASSWORD_ENV_VAR = "AUDIO2MQTT_MQTT_PASSWORD"
MQTT_CONFIG_FILE = "~/.config/audio2mqtt/mqtt.toml"  # [mqtt] username = "..." password = "..."


@dataclass(frozen=True)
class EvidenceDefaults:
    """Evidence clips: the audio of each event, kept as FLAC so a false alarm can be heard and fed back."""

    before_seconds: float = 2.0     # audio kept before an event's start ...
    after_seconds: float = 1.0      # ... and after its end
    buffer_seconds: float = 60.0    # recent audio held in memory (1 s = 64 kB); a longer event keeps its last part
    max_megabytes: float = 500.0    # the folder's limit: the oldest clips go first beyond it ...
    max_days: float = 30.0          # ... and every clip older than this
    prune_every_seconds: float = 3600.0  # of audio heard: the age limit holds in quiet weeks too, not only when a clip is written
    false_alarm_folder: str = "background/false_alarms"  # under the training folder: what "Not a <sound>" feeds


EVIDENCE = EvidenceDefaults()
DEFAULT_TRAINING_DIR = PROJECT_DIR / "training"


@dataclass(frozen=True)
class HealthDefaults:
    """What a listener says about itself: the level it hears, and the energy gate that saves CPU."""

    level_seconds: float = 5.0           # one level (dBFS of the audio heard) per this much audio, on <prefix>/level
    min_level_seconds: float = 0.1       # (at least one chunk of audio)
    suggested_min_level_dbfs: float = -60.0  # a quiet room's hiss; windows below --min-level-dbfs skip YAMNet
    floor_dbfs: float = -120.0           # the level shown for digital silence (a number, not -inf)


HEALTH = HealthDefaults()
