"""Listen live (sound card, file or stdin), detect your sounds, AudioSet classes or exact registered
sounds (fingerprints), tell MQTT.

    python listen.py --device USB --custom                          # your model in models/
    python listen.py --file clip.wav --classes "Smoke detector, smoke alarm"
    python listen.py --device USB --fingerprints models/fingerprints.sqlite --custom   # both methods
    ffmpeg -i rtsp://cam/stream -f s16le -ac 1 -ar 16000 - | python listen.py --stdin --custom \\
        --mqtt-host homeassistant.local --ha-discovery
    python listen.py --config audio2mqtt.toml                       # all settings in a file (listen_config.py)
    python listen.py feedback EVENT_ID --evidence evidence/         # that event was a false alarm

Events go to stdout as JSON lines, always; with --mqtt-host also to MQTT (see mqtt_publisher.py).
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from audio_source import (
    PCM_FORMATS,
    SourceError,
    list_input_devices,
    open_command,
    open_device_waiting,
    open_file,
    open_pcm,
)
from audio_util import AudioError, quiet_broken_pipe, to_stderr
from class_map import ClassMapError, find_class_indices, load_yamnet_class_names, read_class_names
from detection import (
    DetectionError,
    EventDetector,
    LevelMeter,
    StreamFramer,
    can_fire,
    parse_class_list,
    parse_min_frames,
    parse_thresholds,
)
from evidence import EvidenceRecorder, find_clip, move_to_training
from fingerprint_listener import FingerprintListener, load_index
from fingerprint_params import MATCH, FingerprintError
from listen_config import (
    ConfigError,
    ListenConfig,
    check,
    exact_sound_mistake,
    load_config_file,
    merge,
    readable_by_others,
    to_toml,
)
from live import Stop, YamnetListener, raise_stop, run
from backend import load_yamnet_and_model
from model_folder import ModelError, check_model_dir, read_model_json
from mqtt_publisher import MqttError, MqttPublisher, MqttSettings, Topics, default_device_name, read_credentials, slug
from params import (
    BACKENDS,
    CLASS_NAMES_FILENAME,
    DEFAULT_MODELS_DIR,
    DEFAULT_TRAINING_DIR,
    EVIDENCE,
    HEALTH,
    LISTEN,
    MQTT_CONFIG_FILE,
    MQTT_PASSWORD_ENV_VAR,
    MQTT_USERNAME_ENV_VAR,
    SAMPLE_RATE,
    YAMNET,
    YAMNET_OPTION_HELP,
)
from yamnet_classifier import YamnetError, resolve_yamnet_handle

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the empty ones ('default: None')."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False, []) else super()._get_help_string(action)


def given_path(text: str) -> Path:
    """argparse type of a path flag: an empty one is refused (Path("") would be ".", the folder it runs in)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: name a file or folder")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Detect sounds in live audio and publish them as JSON lines on stdout and, optionally, to MQTT.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", type=given_path, metavar="TOML",
                        help="settings file (docs/listening.md#a-config-file); flags given beside it win")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective settings (the file, then the flags) as TOML and exit; credentials masked")
    source = parser.add_argument_group("audio source (choose one, here or in [input] of --config)").add_mutually_exclusive_group()
    source.add_argument("--device", metavar="NAME|INDEX", help="sound card input: index or part of its name")
    source.add_argument("--file", type=given_path, help="an audio file played as a stream")
    source.add_argument("--stdin", action="store_true", default=None, help="raw PCM on stdin (e.g. from ffmpeg -f s16le - or arecord -t raw)")
    source.add_argument("--command", metavar='"PROGRAM ARGS"',
                        help="a program that prints raw PCM (as --stdin takes it), started by listen.py and restarted "
                             "with back-off when it exits or stalls, e.g. \"ffmpeg -loglevel error -i rtsp://camera/stream "
                             "-f s16le -ac 1 -ar 16000 -\"")
    source.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    source_opts = parser.add_argument_group("source options")
    source_opts.add_argument("--realtime", action="store_true", default=None, help="with --file: play at real-time speed instead of as fast as possible")
    source_opts.add_argument("--rate", type=int, default=None,
                             help=f"with --stdin or --command: sample rate in Hz (default {SAMPLE_RATE})")
    source_opts.add_argument("--channels", type=int, default=None,
                             help="with --stdin or --command: interleaved channels, averaged to mono (default 1)")
    source_opts.add_argument("--format", choices=sorted(PCM_FORMATS), default=None,
                             help="with --stdin or --command: sample format, as ffmpeg's -f (default s16le)")
    source_opts.add_argument("--stall-seconds", type=float, default=None,
                             help=f"with --command or --device: restart it (reopen it) after this long without audio "
                                  f"(default {LISTEN.stall_seconds:g})")

    group = parser.add_argument_group("what to detect (--custom or --classes, and/or --fingerprints)")
    what = group.add_mutually_exclusive_group()
    what.add_argument("--custom", action="store_true", default=None, help="your trained model (see --models)")
    what.add_argument("--classes", metavar="NAMES",
                      help='AudioSet classes, comma-separated, e.g. "Bicycle bell,Smoke detector, smoke alarm"')
    group.add_argument("--fingerprints", type=given_path, metavar="DB", default=None,
                       help="exact sounds registered with fingerprint.py add (e.g. models/fingerprints.sqlite)")
    detect = parser.add_argument_group("detection")
    detect.add_argument("--models", type=given_path, default=None,
                        help=f"folder of the trained model, with --custom (default: {DEFAULT_MODELS_DIR})")
    detect.add_argument("--threshold", action="append", dest="threshold_specs", metavar="[LABEL=]SCORE",
                        help=f"score that counts as present: SCORE for all labels, LABEL=SCORE for one (repeatable; "
                             f"beats model.json 'thresholds'; default {LISTEN.threshold})")
    detect.add_argument("--min-frames", type=int, default=None,
                        help=f"windows at/above threshold to start an event, and below to end it (beats model.json "
                             f"'min_frames'; default {LISTEN.min_frames})")
    detect.add_argument("--cooldown", type=float, default=None,
                        help=f"seconds after an event ends before the same label may start again (default {LISTEN.cooldown_seconds:g})")
    detect.add_argument("--hop", type=float, default=None,
                        help=f"seconds between windows (each {YAMNET.patch_window_seconds} s); smaller reacts sooner, "
                             f"costs more CPU (default {YAMNET.patch_hop_seconds})")
    detect.add_argument("--min-votes", type=int, default=None,
                        help=f"with --fingerprints: agreeing landmarks a match needs (default {MATCH.min_votes})")
    detect.add_argument("--dense", action="store_true", default=None,
                        help="with --fingerprints: match dense landmarks too (more found under loud music and of "
                             "noisy sounds; half the speed; docs/exact-sounds.md)")
    detect.add_argument("--yamnet", metavar="HANDLE", default=None, help=YAMNET_OPTION_HELP)
    detect.add_argument("--backend", choices=BACKENDS, default=None,
                        help="auto (the default): TFLite when its models exist (~100 MB of memory instead of ~900), else TensorFlow")

    evidence = parser.add_argument_group("evidence clips (the audio of each event, FLAC)")
    evidence.add_argument("--evidence", type=given_path, metavar="DIR", dest="evidence_dir",
                          help=f"save each event's audio ({EVIDENCE.before_seconds:g} s before to "
                               f"{EVIDENCE.after_seconds:g} s after) in DIR; events carry its file name")
    evidence.add_argument("--evidence-max-mb", type=float, default=None,
                          help=f"the folder's size limit: the oldest clips go beyond it (default {EVIDENCE.max_megabytes:g})")
    evidence.add_argument("--evidence-max-days", type=float, default=None,
                          help=f"clips older than this are deleted (default {EVIDENCE.max_days:g})")
    evidence.add_argument("--training", type=given_path, metavar="DIR", dest="training_dir",
                          help=f"training folder: a \"Not a <sound>\" press moves that sound's last clip to "
                               f"DIR/{EVIDENCE.false_alarm_folder}/ (default {DEFAULT_TRAINING_DIR})")

    health = parser.add_argument_group("health")
    health.add_argument("--min-level-dbfs", type=float, default=None, metavar="DBFS",
                        help=f"energy gate: windows quieter than this skip YAMNet (saves CPU in a quiet room; "
                             f"e.g. {HEALTH.suggested_min_level_dbfs:g}); default: off")
    health.add_argument("--level-seconds", type=float, default=None,
                        help=f"with --mqtt-host: publish the level heard (dBFS) every this many seconds of audio "
                             f"(default {HEALTH.level_seconds:g})")

    mqtt = parser.add_argument_group(
        "MQTT", f"credentials: ${MQTT_USERNAME_ENV_VAR} and ${MQTT_PASSWORD_ENV_VAR}, "
                f"or [mqtt] username/password in --config or --mqtt-config")
    mqtt.add_argument("--mqtt-host", help="broker host name or address; without it events only go to stdout")
    mqtt.add_argument("--mqtt-port", type=int, default=None,
                      help=f"broker port (default {LISTEN.mqtt_port}, {LISTEN.mqtt_tls_port} with --tls)")
    mqtt.add_argument("--mqtt-config", type=given_path, default=None,
                      help=f"TOML file with [mqtt] username and password (default: {MQTT_CONFIG_FILE} if it exists)")
    mqtt.add_argument("--tls", action="store_true", default=None, help="connect with TLS")
    mqtt.add_argument("--cafile", type=given_path, default=None, help="with --tls: CA certificate of the broker (default: system CAs)")
    mqtt.add_argument("--device-name", default=None, help="name of this listener in topics and Home Assistant (default: host name)")
    mqtt.add_argument("--topic-prefix", default=None, help=f"topic prefix (default: {LISTEN.topic_root}/<device name>)")
    mqtt.add_argument("--ha-discovery", action="store_true", default=None,
                      help="publish Home Assistant discovery configs: one binary sensor per label")
    mqtt.add_argument("--ha-prefix", default=None, help=f"Home Assistant discovery prefix (default {LISTEN.ha_discovery_prefix})")
    mqtt.add_argument("--queue-size", type=int, default=None,
                      help=f"messages kept while the broker is away; oldest dropped beyond (default {LISTEN.queue_size})")
    return parser


def labels_before_tensorflow(cfg: ListenConfig) -> tuple[list[str], dict]:
    """The labels to detect and the model's model.json (its operating point: "thresholds",
    "min_frames"), found without loading TensorFlow, so a typo costs milliseconds. AudioSet names
    need YAMNet's class map: [] when it is a URL."""
    if not cfg.custom and not cfg.classes:
        return [], {}
    if cfg.custom:
        check_model_dir(cfg.models)
        try:
            labels = read_class_names(cfg.models / CLASS_NAMES_FILENAME)
        except ClassMapError as e:
            raise ModelError(str(e)) from e
        return labels, read_model_json(cfg.models)
    class_map = Path(resolve_yamnet_handle(cfg.yamnet)) / "assets" / "yamnet_class_map.csv"
    if not class_map.is_file():
        return [], {}
    return parse_class_list(cfg.classes, load_yamnet_class_names(class_map)), {}


def describe_operating_points(model_meta: dict) -> list[str]:
    """What the model's stored operating points promise (train.py with background recordings)."""
    lines = []
    for label, point in (model_meta.get("operating_points") or {}).items():
        try:
            lines.append(f"{label}: score >= {point['threshold']:.6g} in {point['min_frames']} window(s) in a row "
                         f"(model's operating point: ~{point['expected_false_per_hour']:.2g} false alarms/h, "
                         f"~{point['expected_recall']:.0%} of sounds found on held-out background)")
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited model.json: the thresholds themselves were checked already
    return lines


def make_scorer(cfg: ListenConfig, labels: list[str]):
    """Load YAMNet (and the custom head); return (labels, window (n,) -> scores (len(labels),))."""
    yamnet, model = load_yamnet_and_model(cfg.yamnet, cfg.models if cfg.custom else None, cfg.backend)
    if model is not None:
        return model.class_names, lambda window: model.window_probabilities(window, yamnet)
    labels = labels or parse_class_list(cfg.classes, yamnet.class_names)
    indices = find_class_indices(yamnet.class_names, labels)
    return labels, lambda window: yamnet.run(window)[0][0, indices]


def open_source(cfg: ListenConfig):
    if cfg.file:
        return open_file(cfg.file, realtime=cfg.realtime)
    if cfg.stdin:
        return open_pcm(sys.stdin.buffer, cfg.rate or SAMPLE_RATE, cfg.channels or 1, cfg.format or "s16le")
    if cfg.command:
        return open_command(shlex.split(cfg.command), cfg.rate or SAMPLE_RATE, cfg.channels or 1, cfg.format or "s16le",
                            cfg.stall_seconds)
    return open_device_waiting(cfg.device, cfg.stall_seconds)


def warn_if_readable_by_others(path) -> None:
    if readable_by_others(path):
        print(f"warning: {path} holds an MQTT password and other users can read it: chmod 600 {path}",
              file=sys.stderr)


def with_credentials(cfg: ListenConfig, environ=os.environ) -> ListenConfig:
    """The config with its MQTT username and password: the environment's, else those in --config's
    [mqtt], else those of --mqtt-config (or ~/.config/audio2mqtt/mqtt.toml)."""
    if cfg.mqtt_username is None and cfg.mqtt_password is None:
        username, password = read_credentials(cfg.mqtt_config, environ)
        if password is not None and MQTT_PASSWORD_ENV_VAR not in environ:
            warn_if_readable_by_others(cfg.mqtt_config or MQTT_CONFIG_FILE)
    else:
        username = environ.get(MQTT_USERNAME_ENV_VAR, cfg.mqtt_username)
        password = environ.get(MQTT_PASSWORD_ENV_VAR, cfg.mqtt_password)
        if password is not None and username is None:
            raise MqttError(f"an MQTT password without a username: add username to [mqtt] or set {MQTT_USERNAME_ENV_VAR}")
    return dataclasses.replace(cfg, mqtt_username=username, mqtt_password=password)


def make_publisher(cfg: ListenConfig, labels: list[str], on_feedback=None,
                   trained: list[str] | None = None) -> MqttPublisher:
    """The publisher for `labels`; credentials as with_credentials put them in `cfg`; `on_feedback(label)`
    for the "Not a <label>" presses of the `trained` labels (YAMNet's: training can unlearn a false alarm
    of those, not a fingerprint's)."""
    settings = MqttSettings(host=cfg.mqtt_host, port=cfg.mqtt_port or (LISTEN.mqtt_tls_port if cfg.tls else LISTEN.mqtt_port),
                            username=cfg.mqtt_username, password=cfg.mqtt_password, tls=cfg.tls, cafile=cfg.cafile)
    device_name = cfg.device_name or default_device_name()
    topics = Topics(prefix=(cfg.topic_prefix or f"{LISTEN.topic_root}/{device_name}").rstrip("/"),
                    node=slug(device_name), discovery_prefix=cfg.ha_prefix or LISTEN.ha_discovery_prefix)
    labels = list(dict.fromkeys(labels))  # a label both methods detect is one sensor
    by_slug = {}
    for label in labels:
        by_slug.setdefault(slug(label), []).append(label)
    for topic_name, clash in by_slug.items():
        if len(clash) > 1:
            raise MqttError(f"labels {' and '.join(repr(c) for c in clash)} share one topic name ({topic_name}): "
                            f"rename one (a class folder or a fingerprint label)")
    return MqttPublisher(settings, topics, labels, device_name, ha_discovery=cfg.ha_discovery,
                         queue_size=cfg.queue_size or LISTEN.queue_size, on_feedback=on_feedback,
                         feedback_labels=trained)


def threshold_specs(cfg: ListenConfig, labels: list[str]) -> list[str]:
    """--threshold specs (as parse_thresholds reads them) from the general threshold and the sounds' own,
    for the YAMNet `labels`."""
    specs = [] if cfg.threshold is None else [str(cfg.threshold)]
    return specs + [f"{label}={sound.threshold}" for label, sound in cfg.sounds.items()
                    if sound.threshold is not None and _known(label, labels)]


def sound_values(cfg: ListenConfig, name: str, labels: list[str]) -> dict:
    """{label: value} of one per-sound setting (min_frames, cooldown) for the sounds among `labels`."""
    found = {}
    for label, sound in cfg.sounds.items():
        value = getattr(sound, name)
        if value is not None and _known(label, labels):
            found[labels[find_class_indices(labels, [label])[0]]] = value
    return found


def _known(label: str, labels: list[str]) -> bool:
    try:
        find_class_indices(labels, [label])
    except ClassMapError:
        return False
    return True


def sounds_to_name(labels: list[str]) -> list[str]:
    """The labels a user can set anything for, once each: a model's background class never fires."""
    return [label for label in dict.fromkeys(labels) if can_fire(label)]


def check_sounds(cfg: ListenConfig, yamnet_labels: list[str], exact_labels: list[str]) -> None:
    """A [sounds.X] must name a sound this listener detects; threshold and min_frames are YAMNet's."""
    for label, sound in cfg.sounds.items():
        if _known(label, yamnet_labels):
            continue
        if label in exact_labels:
            if mistake := exact_sound_mistake(label, sound):
                raise DetectionError(mistake)
            continue
        raise DetectionError(f"--threshold or [sounds]: {label!r} is not a sound this listener detects "
                             f"(its sounds: {', '.join(sounds_to_name(yamnet_labels + exact_labels))})")


def trainable(clip_name: str) -> bool:
    """Whether an evidence clip (or event id) is a false alarm training can unlearn: a YAMNet event's,
    not a fingerprint match's (see evidence.clip_id: <time>-<label>-<method>-<n>)."""
    return f"-{FingerprintListener.METHOD}-" not in clip_name


def run_listener(cfg: ListenConfig, opened: list) -> int:
    """Set up the listeners and the publisher from a checked config, then run until the stream ends.
    The publisher goes into `opened` as soon as it exists, so main() closes it whatever happens."""
    publisher = None
    use_yamnet = bool(cfg.custom or cfg.classes)
    labels, model_meta = labels_before_tensorflow(cfg)
    if labels:  # fail fast on a bad --threshold or operating point
        parse_thresholds(threshold_specs(cfg, labels), labels, model_meta.get("thresholds"))
        parse_min_frames(cfg.min_frames, labels, model_meta.get("min_frames"))
    listeners, exact_labels = [], []
    if cfg.fingerprints is not None:  # before TensorFlow too: a bad database costs milliseconds
        rules = dataclasses.replace(MATCH, min_votes=MATCH.min_votes if cfg.min_votes is None else cfg.min_votes,
                                    dense=cfg.dense)
        # a match is already confirmed across the sound's segments: --min-frames counts YAMNet windows
        fingerprints = FingerprintListener(load_index(cfg.fingerprints, rules), cooldown_s=cfg.cooldown, rules=rules)
        exact_labels = fingerprints.labels
        for label, sound in cfg.sounds.items():  # the listener's own setting beats the sound's meta.json
            if sound.cooldown is not None and label in fingerprints.cooldowns:
                fingerprints.cooldowns[label] = sound.cooldown
        listeners.append(fingerprints)
    if labels or not use_yamnet:
        check_sounds(cfg, labels, exact_labels)
    recorder, feedback = None, None
    if cfg.evidence_dir is not None:
        try:
            recorder = EvidenceRecorder(cfg.evidence_dir, cfg.evidence_max_mb, cfg.evidence_max_days, log=to_stderr)
        except OSError as e:
            raise AudioError(f"cannot use evidence folder {cfg.evidence_dir}: {e.strerror}") from e
        training = cfg.training_dir or DEFAULT_TRAINING_DIR

        def move(clip: Path) -> None:
            if not trainable(clip.name):
                return  # said at the press
            try:
                message = describe_move(clip, move_to_training(clip, training))
            except OSError as e:
                message = f"cannot move {clip} into {training}: {e.strerror}"
            print(f"feedback: {message}", file=sys.stderr, flush=True)

        def feedback(label: str) -> None:  # "Not a <label>" pressed (MQTT's thread): its last event was a false alarm
            clip_id, clip = recorder.claim_last(label)
            if clip_id is None:
                message = f"no {label} event to learn from (none since the listener started, or moved already)"
            elif not trainable(clip_id):
                message = f"the last {label} event was a fingerprint match, which training cannot unlearn: its clip stays"
            elif clip is None:
                message = f"the clip of {clip_id} moves once it is written (a second after its end)"
            else:
                return move(clip)
            print(f"feedback: {message}", file=sys.stderr, flush=True)

        recorder.on_claimed = move

    source = open_source(cfg)
    if cfg.mqtt_host and (labels or not use_yamnet):
        firing = [label for label in labels if can_fire(label)]
        publisher = make_publisher(cfg, firing + exact_labels, feedback, firing)
        opened.append(publisher)
        publisher.start()
    if use_yamnet:
        labels, score = make_scorer(cfg, labels)
        check_sounds(cfg, labels, exact_labels)
        thresholds = parse_thresholds(threshold_specs(cfg, labels), labels, model_meta.get("thresholds"))
        min_frames = parse_min_frames(cfg.min_frames, labels, model_meta.get("min_frames"))
        min_frames.update(sound_values(cfg, "min_frames", labels))  # a sound's own beats the general one
        detector = EventDetector(labels, thresholds, LISTEN.min_frames, cfg.cooldown, label_min_frames=min_frames,
                                 label_cooldowns=sound_values(cfg, "cooldown", labels))
        if cfg.mqtt_host and publisher is None:  # AudioSet names from a TF Hub URL: known only now
            publisher = make_publisher(cfg, detector.firing_labels + exact_labels, feedback, detector.firing_labels)
            opened.append(publisher)
            publisher.start()
        framer = StreamFramer(hop_samples=round(cfg.hop * SAMPLE_RATE))
        listeners.insert(0, YamnetListener(score, detector, framer, cfg.min_level_dbfs))
    # a label may be both a trained class and a fingerprinted sound: one sensor, ON while either hears it
    firing = list(dict.fromkeys(label for listener in listeners for label in listener.labels))

    def emit(event: dict) -> None:
        if recorder:
            recorder.on_event(event)
        event["time"] = datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")
        event["source"] = source.name
        print(json.dumps(event), flush=True)
        if publisher:
            publisher.publish_event(event)

    def check() -> None:
        if publisher and publisher.fatal:
            raise MqttError(publisher.fatal)

    where = f"; MQTT {publisher.where} under {publisher.topics.prefix}/" if publisher else ""
    print(f"listening to {source.name} for {', '.join(firing)}{where}", file=sys.stderr, flush=True)
    if use_yamnet:
        for line in describe_operating_points(model_meta):
            print(line, file=sys.stderr, flush=True)
        overridden = cfg.threshold is not None or cfg.min_frames is not None or any(
            sound.threshold is not None or sound.min_frames is not None for sound in cfg.sounds.values())
        if model_meta.get("operating_points") and overridden:
            print("(--threshold/--min-frames given: they replace the operating point where they apply)",
                  file=sys.stderr, flush=True)
    meter = LevelMeter(round(cfg.level_seconds * SAMPLE_RATE)) if publisher else None

    def on_audio(chunk) -> None:
        if recorder:
            recorder.push(chunk)
        for level in meter.push(chunk) if meter else ():
            publisher.publish_level(level)

    try:
        run(source, listeners, emit, check, on_audio)
    finally:
        if recorder:
            recorder.finish()
        for listener in listeners:
            if getattr(listener, "min_level_dbfs", None) is not None:
                print(f"energy gate: {listener.skipped} of {listener.windows} window(s) below "
                      f"{listener.min_level_dbfs:g} dBFS skipped YAMNet", file=sys.stderr, flush=True)
    return 0


def describe_move(clip: Path, target: Path) -> str:
    training = target.parents[len(Path(EVIDENCE.false_alarm_folder).parts)]
    return (f"moved {clip.name} to {target.parent}/: a false alarm to learn from; "
            f"run python train.py {training} <model folder> again")


def feedback_main(argv) -> int:
    """`listen.py feedback EVENT_ID`: the event was a false alarm; move its evidence clip into training."""
    parser = argparse.ArgumentParser(prog="listen.py feedback",
                                     description="Mark an event as a false alarm: its evidence clip moves to "
                                                 f"<training>/{EVIDENCE.false_alarm_folder}/, for train.py to learn.")
    parser.add_argument("event_id", help="the event's id (or its evidence file name), from its JSON")
    parser.add_argument("--config", type=given_path, metavar="TOML", help="take the evidence and training folders from it")
    parser.add_argument("--evidence", type=given_path, metavar="DIR", help="the evidence folder (default: [evidence] dir)")
    parser.add_argument("--training", type=given_path, metavar="DIR",
                        help=f"the training folder (default: [evidence] training, else {DEFAULT_TRAINING_DIR})")
    args = parser.parse_args(argv)
    try:
        values = load_config_file(args.config)[0] if args.config else {}
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    evidence_dir = args.evidence or values.get("evidence_dir")
    if evidence_dir is None:
        parser.error("which evidence folder? --evidence DIR, or --config with [evidence] dir")
    clip = find_clip(evidence_dir, args.event_id)
    if clip is None:
        print(f"error: no evidence clip for {args.event_id!r} in {evidence_dir} (moved already, or older than the "
              f"folder keeps clips)", file=sys.stderr)
        return 1
    if not trainable(clip.name):
        print(f"error: {args.event_id} was a fingerprint match, which training cannot unlearn: raise --min-votes, or "
              f"see what it matched with python fingerprint.py match {clip}", file=sys.stderr)
        return 1
    training = args.training or values.get("training_dir") or DEFAULT_TRAINING_DIR
    try:
        target = move_to_training(clip, training)
    except OSError as e:
        print(f"error: cannot move {clip} into {training}: {e.strerror}", file=sys.stderr)
        return 1
    print(describe_move(clip, target))
    return 0


def read_config(args, parser) -> ListenConfig:
    """The effective, checked config: --config's file, then the flags given. ConfigError for a bad file
    or value; settings that clash are parser errors, like clashing flags."""
    flags = {name: value for name, value in vars(args).items() if name not in ("config", "print_config", "list_devices")}
    file_values, file_sounds = load_config_file(args.config) if args.config else ({}, {})
    if "mqtt_password" in file_values:
        warn_if_readable_by_others(args.config)
    cfg = merge(file_values, file_sounds, flags)
    try:
        check(cfg)
    except ConfigError as e:
        if args.config:  # the file may hold the clash: one line naming it, as for its other mistakes
            raise ConfigError(f"{e} (with {args.config})") from e
        parser.error(str(e))
    return dataclasses.replace(cfg, models=cfg.models or DEFAULT_MODELS_DIR) if cfg.custom else cfg


@quiet_broken_pipe
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["feedback"]:
        return feedback_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        print("\n".join(list_input_devices()) or "no input devices found")
        return 0
    try:
        cfg = read_config(args, parser)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.print_config:
        try:
            cfg = with_credentials(cfg) if cfg.mqtt_host else cfg
        except MqttError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(to_toml(cfg), end="")
        return 0
    opened = []  # the MQTT publisher, once made
    code = 1
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, raise_stop) if in_main_thread else None
    try:
        code = run_listener(with_credentials(cfg) if cfg.mqtt_host else cfg, opened)
    except (AudioError, ClassMapError, DetectionError, FingerprintError, ModelError, MqttError, SourceError,
            YamnetError) as e:
        print(f"error: {e}", file=sys.stderr)
    except (KeyboardInterrupt, Stop):  # during start-up: nothing to end
        code = 0
    finally:  # a reader of our events (a pipe) that went away: quiet_broken_pipe, after this
        if in_main_thread:  # first: a second SIGTERM during the flush below just terminates
            signal.signal(signal.SIGTERM, previous_sigterm)
        # a file or pipe has an end: what it heard and MQTT did not get is a failed run, not a warning
        lost = [publisher.close(warn=not (cfg.finite and code == 0)) + publisher.dropped for publisher in opened]
    if cfg.finite and code == 0 and sum(lost):
        print(f"error: {sum(lost)} MQTT message(s) not delivered: broker {opened[0].where} unreachable at the end "
              f"of the stream (the events are on stdout)", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
