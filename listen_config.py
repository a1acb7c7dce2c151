"""listen.py's settings as one frozen ListenConfig: read from a TOML file (`--config`), flags over it,
checked once, and written back as TOML (`--print-config`). Pure standard library: no TensorFlow, no MQTT.

A flag and its key have the same name, in a table: `--mqtt-host` is `host` in [mqtt], `--min-frames`
is `min_frames` in [detect]; per-sound settings live in [sounds."<label>"].
"""

import dataclasses
import json
import re
import shlex
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from audio_source import PCM_FORMATS
from params import BACKENDS, EVIDENCE, HEALTH, LISTEN, YAMNET

MASK = "***"  # what --print-config shows instead of a credential


class ConfigError(Exception):
    """A config file or a combination of settings the user got wrong; one actionable line."""


@dataclass(frozen=True)
class SoundSettings:
    """One sound's own settings ([sounds."<label>"]); None falls back to the general ones."""

    threshold: float | None = None
    min_frames: int | None = None
    cooldown: float | None = None


@dataclass(frozen=True)
class ListenConfig:
    """Everything listen.py needs to run; None means "not given: use the default"."""

    # [input]: one source
    device: str | None = None
    file: Path | None = None
    stdin: bool = False
    command: str | None = None         # a program printing raw PCM, run (and restarted) by listen.py
    stall_seconds: float = LISTEN.stall_seconds
    realtime: bool = False
    rate: int | None = None
    channels: int | None = None
    format: str | None = None
    # [detect]
    custom: bool = False
    classes: str | None = None
    fingerprints: Path | None = None
    models: Path | None = None
    threshold: float | None = None
    min_frames: int | None = None
    cooldown: float = LISTEN.cooldown_seconds
    hop: float = YAMNET.patch_hop_seconds
    min_votes: int | None = None
    dense: bool = False                  # fingerprints: dense landmarks too (fingerprint.py match --dense)
    yamnet: str | None = None
    backend: str = "auto"
    sounds: dict = field(default_factory=dict)  # label -> SoundSettings
    # [mqtt]
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_config: Path | None = None
    tls: bool = False
    cafile: Path | None = None
    device_name: str | None = None
    topic_prefix: str | None = None
    ha_discovery: bool = False
    ha_prefix: str | None = None
    queue_size: int | None = None
    # [evidence]: the audio of each event as FLAC
    evidence_dir: Path | None = None
    evidence_max_mb: float = EVIDENCE.max_megabytes
    evidence_max_days: float = EVIDENCE.max_days
    training_dir: Path | None = None  # where "Not a <sound>" moves a clip (under background/false_alarms/)
    # [health]
    min_level_dbfs: float | None = None  # the energy gate; None: every window goes to YAMNet
    level_seconds: float = HEALTH.level_seconds

    @property
    def finite(self) -> bool:
        """A file or a pipe ends; a device does not."""
        return bool(self.file or self.stdin)


# (table, key in the file, ListenConfig field); the value's type is the field's. Sounds are their own tables.
KEYS = (
    ("input", "device", "device"), ("input", "file", "file"), ("input", "stdin", "stdin"),
    ("input", "command", "command"), ("input", "stall_seconds", "stall_seconds"),
    ("input", "realtime", "realtime"), ("input", "rate", "rate"), ("input", "channels", "channels"),
    ("input", "format", "format"),
    ("detect", "custom", "custom"), ("detect", "classes", "classes"),
    ("detect", "fingerprints", "fingerprints"), ("detect", "models", "models"),
    ("detect", "threshold", "threshold"), ("detect", "min_frames", "min_frames"),
    ("detect", "cooldown", "cooldown"), ("detect", "hop", "hop"),
    ("detect", "min_votes", "min_votes"), ("detect", "dense", "dense"), ("detect", "yamnet", "yamnet"),
    ("detect", "backend", "backend"),
    ("mqtt", "host", "mqtt_host"), ("mqtt", "port", "mqtt_port"),
    ("mqtt", "username", "mqtt_username"), ("mqtt", "password", "mqtt_password"),
    ("mqtt", "credentials_file", "mqtt_config"), ("mqtt", "tls", "tls"), ("mqtt", "cafile", "cafile"),
    ("mqtt", "device_name", "device_name"), ("mqtt", "topic_prefix", "topic_prefix"),
    ("mqtt", "ha_discovery", "ha_discovery"), ("mqtt", "ha_prefix", "ha_prefix"),
    ("mqtt", "queue_size", "queue_size"),
    ("evidence", "dir", "evidence_dir"), ("evidence", "max_mb", "evidence_max_mb"),
    ("evidence", "max_days", "evidence_max_days"), ("evidence", "training", "training_dir"),
    ("health", "min_level_dbfs", "min_level_dbfs"), ("health", "level_seconds", "level_seconds"),
)


def exact_sound_mistake(label: str, sound: SoundSettings) -> str | None:
    """What is wrong with a [sounds.X] of an exact sound (fingerprints), which takes a cooldown only; None if nothing."""
    for key in ("threshold", "min_frames"):
        if getattr(sound, key) is not None:
            return (f"{key} in [sounds.{label}] applies to YAMNet's sounds (--custom or --classes): "
                    f"an exact sound takes only cooldown")
    return None


def readable_by_others(path) -> bool:
    """Whether users other than the owner may read `path` (a file holding a password should be chmod 600)."""
    try:
        return bool(Path(path).expanduser().stat().st_mode & 0o044)
    except OSError:
        return False


def field_kinds() -> dict[str, type]:
    """The type each ListenConfig field holds (`Path | None` -> Path), which its key in the file must have."""
    return {name: next((arg for arg in typing.get_args(hint) if arg is not type(None)), hint)
            for name, hint in typing.get_type_hints(ListenConfig).items()}


SOUND_KEYS = {"threshold": float, "min_frames": int, "cooldown": float}
TABLES = ("input", "detect", "sounds", "mqtt", "evidence", "health")
SOURCES = ("device", "file", "stdin", "command")
SOURCE_OPTIONS = ("realtime", "rate", "channels", "format", "stall_seconds")  # each for some sources only
# Settings that only mean something with an MQTT host.
MQTT_ONLY = ("mqtt_port", "mqtt_config", "tls", "cafile", "topic_prefix", "device_name", "ha_discovery",
             "ha_prefix", "queue_size")
FLAG = {"mqtt_host": "--mqtt-host", "mqtt_port": "--mqtt-port", "mqtt_config": "--mqtt-config", "evidence_dir": "--evidence",
        "training_dir": "--training"}


def flag(name: str) -> str:
    """The command-line spelling of a ListenConfig field, for messages."""
    return FLAG.get(name, "--" + name.replace("_", "-"))


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """The 1-based line where `key` is set inside [table] (or the table's header when key is None);
    tomllib gives values, not positions, so the file is scanned for them."""
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[+\s*([^\]]+?)\s*\]+", line)
        if header:
            current = ".".join(part.strip().strip("\"'") for part in re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)",
                                                                              header.group(1)))
            if key is None and current == table:
                return number
            continue
        if key is not None and current == table and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return None


def _where(path: Path, text: str, table: str, key: str | None) -> str:
    line = _line_of(text, table, key)
    return f"{path} line {line}" if line else str(path)


def _typed(value, kind, what: str):
    """A TOML value checked against the type its key needs (an int is fine where a float is)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path:
        if value == "":  # Path("") would be ".", the folder it runs in
            raise ConfigError(f"{what} is an empty path: name a file or folder, or leave the key out")
        kind = str
    if kind is str and what.endswith("'classes'") and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if not isinstance(value, kind) or kind is int and isinstance(value, bool):
        raise ConfigError(f"{what} must be {'true or false' if kind is bool else 'a ' + kind.__name__}, got {value!r}")
    return value


def load_config_file(path) -> tuple[dict, dict]:
    """({ListenConfig field: value}, {label: SoundSettings}) from a TOML file. Relative paths in it are
    relative to the file's folder (a service's working directory is not yours). ConfigError names the
    file and line of an unknown key or a value of the wrong type."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {e.start}): save it as UTF-8") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML ({e})") from e
    kinds = field_kinds()
    known = {(table, key): (name, kinds[name]) for table, key, name in KEYS}
    values, sounds = {}, {}
    for table, content in data.items():
        if table not in TABLES or not isinstance(content, dict):
            where = _where(path, text, table, None) if isinstance(content, dict) else _where(path, text, "", table)
            raise ConfigError(f"{where}: unknown "
                              f"{'table' if isinstance(content, dict) else 'key'} {table!r} "
                              f"(tables: {', '.join(f'[{t}]' for t in TABLES)})")
        for key, value in content.items():
            where = _where(path, text, table, key if table != "sounds" or not isinstance(value, dict) else None)
            if table == "sounds":
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: [sounds] holds one table per sound, e.g. [sounds.doorbell] "
                                      f"threshold = 0.8; got {key} = {value!r}")
                sounds[key] = _sound(path, text, key, value)
                continue
            if (table, key) not in known:
                keys = ", ".join(k for t, k in known if t == table)
                raise ConfigError(f"{where}: unknown key {key!r} in [{table}] (known: {keys})")
            name, kind = known[table, key]
            value = _typed(value, kind, f"{where}: {key!r}")
            _check_range(key, value, where)
            if kind is Path:
                value = (path.parent / Path(value).expanduser()).resolve() if value else None
            values[name] = value
    return values, sounds


def _sound(path: Path, text: str, label: str, table: dict) -> SoundSettings:
    settings = {}
    for key, value in table.items():
        where = _where(path, text, f"sounds.{label}", key)
        if key not in SOUND_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} in [sounds.{label}] (known: {', '.join(SOUND_KEYS)})")
        settings[key] = _typed(value, SOUND_KEYS[key], f"{where}: {key!r}")
        _check_range(key, settings[key], where)
    return SoundSettings(**settings)


def _check_range(key: str, value, where: str) -> None:
    """The per-sound keys' limits, checked with the line they are on."""
    if key == "threshold" and not 0 <= value <= 1:
        raise ConfigError(f"{where}: threshold must be a number from 0 to 1, got {value!r}")
    if key == "min_frames" and value < 1:
        raise ConfigError(f"{where}: min_frames must be at least 1, got {value!r}")
    if key == "cooldown" and value < 0:
        raise ConfigError(f"{where}: cooldown cannot be negative, got {value!r}")


def merge(file_values: dict, file_sounds: dict, flags: dict) -> ListenConfig:
    """The file's values, then the flags given (None = not given) over them. A source flag replaces the
    file's source and its options (SOURCE_OPTIONS), --custom or --classes the file's choice between them; `--threshold LABEL=x` specs
    are a sound's own threshold."""
    values = dict(file_values)
    sounds = dict(file_sounds)
    if any(flags.get(name) for name in SOURCES):  # the file's source goes, and the options only it took
        for name in SOURCES + SOURCE_OPTIONS:
            values.pop(name, None)
    if flags.get("mqtt_config"):  # the credentials file named by the flag beats the file's [mqtt] ones
        values.pop("mqtt_username", None)
        values.pop("mqtt_password", None)
    if flags.get("custom") or flags.get("classes"):
        values.pop("custom", None)
        values.pop("classes", None)
        if flags.get("classes"):
            values.pop("models", None)  # the file's trained model goes with its custom = true
    for spec in flags.get("threshold_specs") or []:
        label, sep, value = spec.rpartition("=")
        number = _number(value, f"--threshold {spec!r}")
        if sep:
            sounds[label] = dataclasses.replace(sounds.get(label, SoundSettings()), threshold=number)
        else:
            values["threshold"] = number
    names = {f.name for f in dataclasses.fields(ListenConfig)}
    values.update({name: value for name, value in flags.items() if name in names and value is not None})
    return ListenConfig(**values, sounds=sounds)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise ConfigError(f"{what} must be a number from 0 to 1")
    return value


def check(cfg: ListenConfig) -> None:
    """ConfigError for settings that make no sense together, before anything is loaded."""
    given_sources = [name for name in SOURCES if getattr(cfg, name)]
    if len(given_sources) != 1:
        raise ConfigError("choose one audio source: --device, --file, --stdin or --command (or one of them in [input])"
                          if not given_sources else
                          f"{' and '.join(flag(n) for n in given_sources)} are two audio sources: choose one")
    if cfg.custom and cfg.classes:
        raise ConfigError("--custom and --classes: choose one (either may go with --fingerprints)")
    if not cfg.custom and not cfg.classes and cfg.fingerprints is None:
        raise ConfigError('choose what to detect: --custom (your model), --classes "AudioSet names" and/or '
                          '--fingerprints DB (exact sounds)')
    if cfg.fingerprints is None and cfg.min_votes is not None:
        raise ConfigError("--min-votes only applies with --fingerprints")
    if cfg.fingerprints is None and cfg.dense:
        raise ConfigError("--dense only applies with --fingerprints")
    if cfg.min_votes is not None and cfg.min_votes < 1:
        raise ConfigError("--min-votes must be at least 1")
    if not cfg.custom and not cfg.classes:  # fingerprints alone: no YAMNet
        for label, sound in cfg.sounds.items():
            if mistake := exact_sound_mistake(label, sound):
                raise ConfigError(mistake)
        yamnet_only = (("--threshold", cfg.threshold is not None), ("--min-frames", cfg.min_frames is not None),
                       ("--yamnet", cfg.yamnet), ("--hop", cfg.hop != YAMNET.patch_hop_seconds),
                       ("--backend", cfg.backend != "auto"), ("--min-level-dbfs", cfg.min_level_dbfs is not None))
        for name, given in yamnet_only:
            if given:
                raise ConfigError(f"{name} applies to --custom or --classes, not to --fingerprints alone")
    if cfg.models is not None and not cfg.custom:
        raise ConfigError("--models only applies with --custom")
    if cfg.realtime and not cfg.file:
        raise ConfigError("--realtime only applies with --file")
    for name in ("rate", "channels", "format"):
        if getattr(cfg, name) is not None and not (cfg.stdin or cfg.command):
            raise ConfigError(f"--{name} only applies with --stdin or --command")
    if cfg.stall_seconds != LISTEN.stall_seconds and not (cfg.command or cfg.device):
        raise ConfigError("--stall-seconds only applies with --command or --device")
    if cfg.stall_seconds <= 0:
        raise ConfigError("--stall-seconds must be more than 0")
    if cfg.format is not None and cfg.format not in PCM_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(sorted(PCM_FORMATS))}, got {cfg.format!r}")
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    if cfg.rate is not None and cfg.rate <= 0 or cfg.channels is not None and cfg.channels < 1:
        raise ConfigError("--rate and --channels must be positive")
    # thresholds are checked where they are read: parse_thresholds, load_config_file
    if cfg.min_frames is not None and cfg.min_frames < 1:
        raise ConfigError("--min-frames must be at least 1")
    if cfg.cooldown < 0:
        raise ConfigError("--cooldown cannot be negative")
    if cfg.training_dir is not None and cfg.evidence_dir is None:
        raise ConfigError("--training only applies with --evidence (feedback moves evidence clips into it)")
    if cfg.command:
        try:
            shlex.split(cfg.command)
        except ValueError as e:
            raise ConfigError(f"--command {cfg.command!r}: {e} (quote it as a shell would)") from e
    if cfg.level_seconds < HEALTH.min_level_seconds:
        raise ConfigError(f"--level-seconds must be at least {HEALTH.min_level_seconds:g}")
    if cfg.evidence_max_mb <= 0 or cfg.evidence_max_days <= 0:
        raise ConfigError("--evidence-max-mb and --evidence-max-days must be more than 0")
    if not 0 < cfg.hop <= YAMNET.patch_window_seconds:
        raise ConfigError(f"--hop must be more than 0 and at most {YAMNET.patch_window_seconds} seconds")
    if cfg.mqtt_host is None:
        given = [name for name in MQTT_ONLY if getattr(cfg, name) not in (None, False)]
        if given:
            raise ConfigError(f"{flag(given[0])} only applies with --mqtt-host")
        return
    if cfg.cafile is not None and not cfg.tls:
        raise ConfigError("--cafile only applies with --tls")
    if cfg.queue_size is not None and cfg.queue_size < 1:
        raise ConfigError("--queue-size must be at least 1")
    prefix = cfg.topic_prefix
    if prefix is not None and (not prefix.strip("/") or any(c in prefix for c in "+#")):
        raise ConfigError("--topic-prefix must be a non-empty topic without + or #")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def to_toml(cfg: ListenConfig) -> str:
    """The config as a TOML file that --config reads back; credentials shown as MASK, unset keys left out."""
    lines = []
    for table in TABLES:
        if table == "sounds":
            for label, sound in sorted(cfg.sounds.items()):
                given = {k: v for k, v in dataclasses.asdict(sound).items() if v is not None}
                if given:
                    lines += ["", f"[sounds.{json.dumps(label)}]"] + [f"{k} = {_toml_value(v)}" for k, v in given.items()]
            continue
        body = []
        for t, key, name in KEYS:
            value = getattr(cfg, name)
            if t != table or value is None:
                continue
            if name in ("mqtt_username", "mqtt_password"):
                value = MASK
            body.append(f"{key} = {_toml_value(value)}")
        if body:
            lines += ["", f"[{table}]"] + body
    return "\n".join(lines).lstrip("\n") + "\n"
