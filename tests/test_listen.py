"""listen.py end to end: real YAMNet, a head trained here on FSDD digits vs noise, a real Mosquitto
broker on 127.0.0.1 and a real paho subscriber. Plus the fast parts: sources, PCM, credentials."""

import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

import listen
import train
from audio_source import StreamResampler, decode_pcm, open_pcm
from alsa_microphone import AlsaMicrophone
from audio_util import load_audio_16k_mono
from audio_files import MUSIC_DIR
from conftest import PROJECT_DIR, noise, tone, write_wav
from detection import StreamFramer
from listen_config import ListenConfig
from mosquitto_broker import Broker, Subscriber, free_port, issue_server_cert, make_ca, retained
from mqtt_publisher import MqttError, MqttPublisher, MqttSettings, Topics, read_credentials
from params import LISTEN_WINDOW_SAMPLES, MQTT_PASSWORD_ENV_VAR, MQTT_USERNAME_ENV_VAR, SAMPLE_RATE, YAMNET

HOP_S = YAMNET.patch_hop_seconds
NOISE_LEVEL = 0.05      # background hiss of the test streams
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
TRAINING_CLIPS = 20     # per class
# Onsets sit 0.71 s into a window (0.25 s before it ends), so the first window that hears a burst
# is decided by the sound, not by a coin toss at a window edge.
DIGIT_ONSETS_S = (2.15, 7.91)
STREAM_S = 13.0


# --- fixtures: a trained digit model and a stream with digits at known offsets ----------------------

def trimmed_digit(path: Path) -> np.ndarray:
    """An FSDD recording at 16 kHz, silence trimmed (10 ms frames under 10% of the loudest), peak 0.6."""
    w = load_audio_16k_mono(path)
    frames = w[: len(w) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 0.1 * rms.max())
    w = w[loud[0] * 160:(loud[-1] + 1) * 160]
    return (0.6 * w / np.abs(w).max()).astype(np.float32)


def digit_burst(fsdd_dir: Path, take: int) -> np.ndarray:
    """Four spoken digits back to back (about 1.2-1.5 s), from takes not used in training."""
    return np.concatenate([trimmed_digit(fsdd_dir / f"{d}_{SPEAKERS[(take + d) % 6]}_{40 + take}.wav") for d in (3, 7, 5, 9)])


def digits_in_noise(fsdd_dir: Path, seconds: float, onsets, seed: int = 7) -> tuple[np.ndarray, list]:
    """Noise with digit bursts added at `onsets`; returns (waveform, [(onset, end) seconds])."""
    w = noise(seconds, amplitude=NOISE_LEVEL, seed=seed)
    truth = []
    for k, onset in enumerate(onsets):
        burst = digit_burst(fsdd_dir, k)
        at = round(onset * SAMPLE_RATE)
        w[at:at + len(burst)] += burst
        truth.append((onset, onset + len(burst) / SAMPLE_RATE))
    return np.clip(w, -1, 1), truth


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory, fsdd_dir, yamnet) -> Path:
    """A head trained by train.py on one-window clips: a digit somewhere in noise vs noise alone."""
    root = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    window_s = LISTEN_WINDOW_SAMPLES / SAMPLE_RATE
    for i in range(TRAINING_CLIPS):
        digit = trimmed_digit(fsdd_dir / f"{i % 10}_{SPEAKERS[i % 6]}_{i // 6}.wav")
        clip = noise(window_s, amplitude=NOISE_LEVEL, seed=100 + i)
        at = int(rng.integers(0, max(1, len(clip) - len(digit))))
        clip[at:at + len(digit)] += digit[: len(clip) - at]
        write_wav(root / "training" / "digit" / f"digit_{i}.wav", clip)
        write_wav(root / "training" / "background" / f"noise_{i}.wav",
                  noise(window_s, amplitude=NOISE_LEVEL * (0.5 + i / TRAINING_CLIPS), seed=200 + i))
    code = train.main([str(root / "training"), str(root / "model"), "--epochs", "30", "--cv", "2",
                       "--cache-dir", str(root / "cache"), "--quiet"])
    assert code == 0
    return root / "model"


@pytest.fixture(scope="module")
def digit_stream(tmp_path_factory, fsdd_dir) -> tuple[Path, np.ndarray, list]:
    waveform, truth = digits_in_noise(fsdd_dir, STREAM_S, DIGIT_ONSETS_S)
    path = write_wav(tmp_path_factory.mktemp("stream") / "digits_in_noise.wav", waveform)
    return path, load_audio_16k_mono(path), truth


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.stop()


def read_lines(process: subprocess.Popen, count: int) -> tuple[list[str], threading.Event, threading.Thread]:
    """A subprocess's stdout lines as they come, an event set once `count` are in, and the (daemon)
    thread reading them: join it to have every line once the process has ended."""
    lines, enough = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if len(lines) >= count:
                enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, enough, reader


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_events_match(events: list[dict], truth: list, label: str = "digit") -> None:
    """One start and one end per burst, each within one hop of the truth, in order."""
    assert [(e["event"], e["label"]) for e in events] == [("start", label), ("end", label)] * len(truth), events
    for (start, end), (onset, offset) in zip(zip(events[::2], events[1::2]), truth):
        assert abs(start["offset_s"] - onset) <= HOP_S, (start, onset)
        assert abs(end["offset_s"] - offset) <= HOP_S, (end, offset)
        assert end["duration_s"] == pytest.approx(end["offset_s"] - start["offset_s"], abs=1e-3)


def pcm_bytes(waveform: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1, fmt: str = "f32le") -> bytes:
    """16 kHz mono float -> interleaved PCM at another rate and channel count (channels get equal copies)."""
    g = math.gcd(rate, SAMPLE_RATE)
    w = resample_poly(waveform, rate // g, SAMPLE_RATE // g) if rate != SAMPLE_RATE else waveform
    frames = np.repeat(np.clip(w, -1, 1)[:, None], channels, axis=1)
    if fmt == "s16le":
        return np.round(frames * 32767).astype("<i2").tobytes()
    if fmt == "s32le":
        return np.round(frames * 2147483647).astype("<i4").tobytes()
    return frames.astype("<f4").tobytes()


# --- fast: sources, PCM, resampling, credentials, refusals --------------------------------------------

@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_stream_resampler_is_continuous_across_chunks(rate):
    x = np.random.default_rng(0).standard_normal(rate + 123)
    resampler, pieces, i = StreamResampler(rate), [], 0
    for size in np.random.default_rng(1).integers(1, 2000, 1000):
        pieces.append(resampler.process(x[i:i + size]))
        i += size
        if i >= len(x):
            break
    streamed = np.concatenate(pieces + [resampler.flush()])
    g = math.gcd(rate, SAMPLE_RATE)
    np.testing.assert_allclose(streamed, resample_poly(x, SAMPLE_RATE // g, rate // g), atol=1e-5)


@pytest.mark.parametrize("fmt", ["s16le", "s32le", "f32le"])
def test_pcm_formats_decode_to_mono(fmt):
    stereo = np.array([[0.5, -0.5], [0.25, 0.25], [-1.0, -1.0]])
    raw = pcm_bytes(stereo[:, 0], channels=1, fmt=fmt)  # round trip of one channel
    np.testing.assert_allclose(decode_pcm(raw, fmt, 1), stereo[:, 0], atol=1e-4)
    interleaved = np.round(stereo * 32767).astype("<i2").tobytes()
    np.testing.assert_allclose(decode_pcm(interleaved, "s16le", 2), [0.0, 0.25, -1.0], atol=1e-4)


class Trickle:
    """A pipe that hands out odd-sized pieces, so frames arrive split across reads."""

    def __init__(self, data: bytes, piece: int = 1001):
        self.data, self.piece = data, piece

    def read1(self, n=-1):
        out, self.data = self.data[:min(n, self.piece)], self.data[min(n, self.piece):]
        return out


def test_stdin_pcm_any_rate_and_channels_becomes_16k_mono():
    waveform = tone(440, 1.0)
    source = open_pcm(Trickle(pcm_bytes(waveform, 44100, 2, "s16le")), 44100, 2, "s16le")
    out = np.concatenate(list(source.chunks))
    assert abs(len(out) - len(waveform)) <= 1
    np.testing.assert_allclose(out[2000:14000], waveform[2000:14000], atol=0.01)  # edges: filter transients


def test_credentials_from_env_beat_config_file(tmp_path):
    config = tmp_path / "mqtt.toml"
    config.write_text('[mqtt]\nusername = "file-user"\npassword = "file-pass"\n')
    assert read_credentials(config, {}) == ("file-user", "file-pass")
    env = {MQTT_USERNAME_ENV_VAR: "env-user", MQTT_PASSWORD_ENV_VAR: "env-pass"}
    assert read_credentials(config, env) == ("env-user", "env-pass")
    config.write_text("[mqtt\n")
    with pytest.raises(MqttError, match="not valid TOML"):
        read_credentials(config, {})
    with pytest.raises(MqttError, match="without a username"):
        read_credentials(None, {MQTT_PASSWORD_ENV_VAR: "secret"})


def test_mqtt_config_given_as_a_flag_beats_the_config_files_credentials(tmp_path):
    from listen_config import load_config_file, merge

    config, credentials = tmp_path / "audio2mqtt.toml", tmp_path / "other.toml"
    config.write_text('[detect]\ncustom = true\n[mqtt]\nhost = "h"\nusername = "file-user"\npassword = "file-pass"\n')
    credentials.write_text('[mqtt]\nusername = "flag-user"\npassword = "flag-pass"\n')
    for flags, expected in (({}, ("file-user", "file-pass")), ({"mqtt_config": credentials}, ("flag-user", "flag-pass"))):
        cfg = listen.with_credentials(merge(*load_config_file(config), flags), {})
        assert (cfg.mqtt_username, cfg.mqtt_password) == expected


@pytest.mark.parametrize("argv,message", [
    (["--file", "x.wav"], "choose what to detect: --custom (your model), --classes"),
    (["--file", "x.wav", "--classes", "Speech", "--models", "m"], "--models only applies with --custom"),
    (["--stdin", "--custom", "--realtime"], "--realtime only applies with --file"),
    (["--file", "x.wav", "--custom", "--rate", "48000"], "--rate only applies with --stdin"),
    (["--file", "x.wav", "--custom", "--tls"], "--tls only applies with --mqtt-host"),
    (["--file", "x.wav", "--custom", "--mqtt-host", "h", "--cafile", "ca.pem"], "--cafile only applies with --tls"),
    (["--file", "x.wav", "--stdin", "--custom"], "not allowed with argument"),
    (["--file", "x.wav", "--custom", "--min-frames", "0"], "--min-frames must be at least 1"),
    (["--file", "x.wav", "--custom", "--hop", "1.5"], "--hop must be"),
    (["--file", "x.wav", "--fingerprints", ""], "argument --fingerprints: an empty path"),
], ids=["nothing-to-detect", "models-without-custom", "realtime-without-file", "rate-without-stdin",
        "tls-without-host", "cafile-without-tls", "two-sources", "min-frames", "hop", "empty-path"])
def test_clashing_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        listen.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--classes", "Bicycle bel"], "error: unknown class name 'Bicycle bel'; did you mean: Bicycle bell"),
    (["--custom", "--models", "{tmp}/none"], "error: no trained model in"),
    (["--classes", "Speech", "--threshold", "Speach=0.5"], "error: --threshold or [sounds]: 'Speach' is not a sound this listener detects (its sounds: Speech)"),
    (["--classes", "Speech", "--threshold", "2"], "error: --threshold '2' must be a number from 0 to 1"),
], ids=["unknown-class", "missing-model", "threshold-label", "threshold-value"])
def test_bad_input_is_one_line_before_any_model_load(argv, message, tmp_path, capsys):
    wav = write_wav(tmp_path / "a.wav", tone(440, 1.0))
    argv = ["--file", str(wav)] + [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert listen.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_typo_costs_no_tensorflow_import(tmp_path):
    wav = write_wav(tmp_path / "a.wav", tone(440, 1.0))
    code = (f"import sys, listen; code = listen.main(['--file', {str(wav)!r}, '--classes', 'Bicycle bel']); "
            f"print(code, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["1", "False"], result.stderr
    assert "did you mean: Bicycle bell" in result.stderr


def test_missing_file_and_missing_device_are_one_line(tmp_path, capsys):
    assert listen.main(["--file", str(tmp_path / "nope.wav"), "--classes", "Speech"]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.wav'}: no such file\n"
    assert listen.main(["--device", "no-such-microphone-xyz", "--classes", "Speech"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no input device 'no-such-microphone-xyz'") and "--list-devices" in err


def test_list_devices_runs(capsys):
    assert listen.main(["--list-devices"]) == 0
    assert capsys.readouterr().out.strip()


def test_broker_down_at_start_queue_drops_oldest_then_delivers_in_order(tmp_path):
    broker = Broker(tmp_path / "broker", persistent=True).start()
    port = broker.port
    # Like Home Assistant, the subscriber has a persistent session: it gets what was sent while it reconnected.
    subscriber = Subscriber(port, ["audio2mqtt/q/#"], client_id="test-late-subscriber")
    broker.stop()
    warnings = []
    publisher = MqttPublisher(MqttSettings("127.0.0.1", port), Topics("audio2mqtt/q", "q"), ["bell"], "q",
                              queue_size=4, log=warnings.append, reconnect_seconds=(0.2, 0.5))
    assert publisher.start(timeout=0.5) is False
    for n in range(4):  # 8 messages: events and states; the first 4 are dropped
        publisher.publish_event({"event": "start" if n % 2 == 0 else "end", "label": "bell", "n": n})
    assert publisher.pending == 4 and publisher.dropped == 4
    assert any("unreachable" in w for w in warnings) and any("queue full" in w and "dropped the oldest" in w for w in warnings)
    broker.start()
    try:
        got = subscriber.wait_for(lambda m: sum(t.endswith("/event") for t, _, _ in m) >= 2, timeout=20)
        assert [json.loads(p)["n"] for t, p, _ in got if t.endswith("/event")] == [2, 3]
        assert publisher.close() == 0
        assert retained(port, "audio2mqtt/q/#") == {"audio2mqtt/q/bell/state": "OFF", "audio2mqtt/q/availability": "offline"}
    finally:
        subscriber.close()
        broker.stop()


# --- real YAMNet ----------------------------------------------------------------------------------------

def test_streamed_windows_score_like_one_yamnet_run(yamnet):
    """Windows of 15360 + 240 samples give YAMNet's own patches, so live = offline scores (all but the
    tail windows, which the framer pads with mirrored audio where YAMNet pads with zeros)."""
    stream = noise(4.3, seed=3) + tone(880, 4.3)
    whole_scores, whole_embeddings = yamnet.run(stream)
    framer = StreamFramer()
    windows = [w for i in range(0, len(stream), 1600) for w in framer.push(stream[i:i + 1600])]
    tail = framer.flush()
    assert len(windows) + len(tail) == len(whole_scores) and len(windows) >= len(whole_scores) - 2
    for k, (start, window) in enumerate(windows):
        scores, embeddings = yamnet.run(window)
        np.testing.assert_allclose(scores[0], whole_scores[k], atol=1e-4)
        np.testing.assert_allclose(embeddings[0], whole_embeddings[k], atol=1e-3)


def test_file_stream_events_at_known_offsets_published_with_discovery(digit_model, digit_stream, broker, capsys):
    path, _, truth = digit_stream
    subscriber = Subscriber(broker.port, ["audio2mqtt/#", "homeassistant/#"])
    code = listen.main(["--file", str(path), "--custom", "--models", str(digit_model), "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-name", "Test Pi", "--ha-discovery"])
    out, err = capsys.readouterr()
    assert code == 0, err
    events = json_lines(out)
    assert_events_match(events, truth)
    for event in events:
        assert event["source"] == str(path)
        assert event["time"][:4].isdigit() and "T" in event["time"]

    got = subscriber.wait_for(lambda m: ("audio2mqtt/Test Pi/availability", "offline", False) in m, timeout=10)
    subscriber.close()
    published = [json.loads(p) for t, p, _ in got if t == "audio2mqtt/Test Pi/event"]
    assert published == events
    states = [p for t, p, _ in got if t == "audio2mqtt/Test Pi/digit/state"]
    assert states[-4:] == ["ON", "OFF", "ON", "OFF"]

    kept = retained(broker.port, "#")
    assert kept["audio2mqtt/Test Pi/digit/state"] == "OFF"
    assert kept["audio2mqtt/Test Pi/availability"] == "offline"
    assert not any("background" in topic for topic in kept)  # background never fires, has no sensor
    config = json.loads(kept["homeassistant/binary_sensor/test_pi/digit/config"])
    assert config["device_class"] == "sound" and config["name"] == "digit"
    assert config["state_topic"] == "audio2mqtt/Test Pi/digit/state"
    assert config["availability_topic"] == "audio2mqtt/Test Pi/availability"
    assert (config["payload_on"], config["payload_off"]) == ("ON", "OFF")
    assert config["unique_id"] == "audio2mqtt_test_pi_digit"


def test_health_energy_gate_level_sensor_and_event_entity(digit_model, digit_stream, broker, capsys):
    """The gate skips YAMNet on the hiss between the bursts and the events stay where they were; the level
    sensor says, every 2 s of audio, the dBFS of what was heard; HA's event entity gets one event per start."""
    path, waveform, truth = digit_stream
    subscriber = Subscriber(broker.port, ["audio2mqtt/health/#", "homeassistant/#"])
    code = listen.main(["--file", str(path), "--custom", "--models", str(digit_model), "--min-level-dbfs", "-22",
                        "--level-seconds", "2", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
                        "--device-name", "health", "--ha-discovery"])
    out, err = capsys.readouterr()
    assert code == 0, err
    events = json_lines(out)
    assert_events_match(events, truth)
    skipped, windows = map(int, re.search(r"energy gate: (\d+) of (\d+) window\(s\) below -22 dBFS", err).groups())
    framer = StreamFramer()
    assert windows == len(framer.push(waveform)) + len(framer.flush())
    assert 0.3 * windows < skipped < windows  # the hiss (about -26 dBFS) is skipped, the bursts are not

    got = subscriber.wait_for(lambda m: ("audio2mqtt/health/availability", "offline", False) in m, timeout=10)
    subscriber.close()
    levels = [float(p) for t, p, _ in got if t == "audio2mqtt/health/level"]
    blocks = waveform[:len(waveform) // (2 * SAMPLE_RATE) * 2 * SAMPLE_RATE].reshape(-1, 2 * SAMPLE_RATE)
    expected = 10 * np.log10(np.mean(blocks.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(levels, expected, atol=0.06)
    heard = [json.loads(p) for t, p, _ in got if t == "audio2mqtt/health/heard"]
    assert [h["event_type"] for h in heard] == ["digit", "digit"]
    assert [h["offset_s"] for h in heard] == [e["offset_s"] for e in events if e["event"] == "start"]
    kept = retained(broker.port, "homeassistant/#")
    entity = json.loads(kept["homeassistant/event/health/heard/config"])
    assert entity["event_types"] == ["digit"] and entity["state_topic"] == "audio2mqtt/health/heard"
    sensor = json.loads(kept["homeassistant/sensor/health/level/config"])
    assert sensor["state_topic"] == "audio2mqtt/health/level" and sensor["unit_of_measurement"] == "dBFS"


def test_stdin_at_44k_stereo_gives_the_same_events(digit_model, digit_stream, capsys, monkeypatch):
    path, waveform, truth = digit_stream
    raw = pcm_bytes(waveform, 44100, 2, "s16le")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code = listen.main(["--stdin", "--rate", "44100", "--channels", "2", "--format", "s16le",
                        "--custom", "--models", str(digit_model)])
    out, err = capsys.readouterr()
    assert code == 0, err
    events = json_lines(out)
    assert_events_match(events, truth)
    assert {e["source"] for e in events} == {"stdin"}


def test_audioset_classes_with_commas_and_per_class_threshold(tmp_path, yamnet, capsys):
    stream = noise(9.0, amplitude=NOISE_LEVEL, seed=5)
    beep_at, beep_s = 3.59, 2.0  # 0.71 s into window 6
    at = round(beep_at * SAMPLE_RATE)
    stream[at:at + round(beep_s * SAMPLE_RATE)] += tone(1000, beep_s)
    path = write_wav(tmp_path / "beep.wav", stream)
    code = listen.main(["--file", str(path), "--classes", "Beep, bleep,Smoke detector, smoke alarm",
                        "--threshold", "Smoke detector, smoke alarm=0.9", "--threshold", "0.4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "for Beep, bleep, Smoke detector, smoke alarm" in err
    assert_events_match(json_lines(out), [(beep_at, beep_at + beep_s)], label="Beep, bleep")


def test_broker_restarted_mid_stream_loses_nothing_and_keeps_order(digit_model, fsdd_dir, tmp_path, capsys, monkeypatch):
    onsets = (1.67, 6.95, 12.23)  # 0.71 s into windows 2, 13 and 24
    waveform, truth = digits_in_noise(fsdd_dir, 15.0, onsets, seed=11)
    part_ends = [round(5.0 * SAMPLE_RATE), round(10.0 * SAMPLE_RATE), len(waveform)]
    broker = Broker(tmp_path / "broker", persistent=True).start()
    # A persistent session, like Home Assistant's: the broker keeps our messages while we reconnect.
    subscriber = Subscriber(broker.port, ["audio2mqtt/restart/#"], client_id="test-subscriber")
    read_fd, write_fd = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read_fd, "rb")))
    result = {}
    listener = threading.Thread(target=lambda: result.setdefault("code", listen.main(
        ["--stdin", "--format", "f32le", "--custom", "--models", str(digit_model), "--mqtt-host", "127.0.0.1",
         "--mqtt-port", str(broker.port), "--device-name", "restart"])))
    stdout, stderr = [], []

    def stdout_events():
        captured = capsys.readouterr()
        stderr.append(captured.err)
        stdout.extend(json_lines(captured.out))
        return stdout

    def published(messages):
        return [json.loads(p) for t, p, _ in messages if t == "audio2mqtt/restart/event"]

    def distinct(events):
        # QoS 1 is at-least-once: a message in flight when the broker died can arrive twice
        # (identical, time stamp included); count and compare each once
        unique = []
        for event in events:
            if event not in unique:
                unique.append(event)
        return unique

    try:
        listener.start()
        os.write(write_fd, pcm_bytes(waveform[:part_ends[0]]))
        got = subscriber.wait_for(lambda m: len(published(m)) == 2 and m[-1][1] == "OFF", timeout=60)
        assert [e["event"] for e in published(got)] == ["start", "end"]

        broker.stop()  # the broker goes away between two events ...
        os.write(write_fd, pcm_bytes(waveform[part_ends[0]:part_ends[1]]))
        deadline = time.monotonic() + 30
        while len(stdout_events()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(stdout) == 4  # ... and the second burst is detected while it is away

        broker.start()
        os.write(write_fd, pcm_bytes(waveform[part_ends[1]:]))
        os.close(write_fd)
        write_fd = None
        listener.join(timeout=60)
        assert not listener.is_alive() and result["code"] == 0
        stdout_events()
        got = subscriber.wait_for(lambda m: len(distinct(published(m))) >= 6, timeout=30)
    finally:
        if write_fd is not None:
            os.close(write_fd)
        listener.join(timeout=10)
        subscriber.close()
        broker.stop()
    assert_events_match(stdout, truth)
    assert distinct(published(got)) == stdout  # none lost, same order
    assert "lost MQTT broker" in "".join(stderr)


def test_sigterm_ends_open_events_and_publishes_offline(digit_model, digit_stream, broker, capsys, monkeypatch):
    path, waveform, truth = digit_stream
    in_first_burst = round((truth[0][0] + 0.8) * SAMPLE_RATE)
    read_fd, write_fd = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read_fd, "rb")))
    subscriber = Subscriber(broker.port, ["audio2mqtt/term/#"])

    def feed_then_terminate():
        os.write(write_fd, pcm_bytes(waveform[:in_first_burst]))  # the pipe stays open: a live stream
        subscriber.wait_for(lambda m: ("audio2mqtt/term/digit/state", "ON", False) in m, timeout=60)
        os.kill(os.getpid(), signal.SIGTERM)

    feeder = threading.Thread(target=feed_then_terminate)
    feeder.start()
    try:
        code = listen.main(["--stdin", "--format", "f32le", "--custom", "--models", str(digit_model),
                            "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--device-name", "term"])
    finally:
        feeder.join(timeout=60)
        os.close(write_fd)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [e["event"] for e in json_lines(out)] == ["start", "end"]  # the open event was ended
    kept = retained(broker.port, "audio2mqtt/term/#")
    subscriber.close()
    assert kept == {"audio2mqtt/term/digit/state": "OFF", "audio2mqtt/term/availability": "offline"}


def test_killed_listener_leaves_its_offline_will(broker):
    subscriber = Subscriber(broker.port, ["audio2mqtt/killed/availability"])
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "listen.py"), "--stdin", "--classes", "Speech", "--mqtt-host", "127.0.0.1",
         "--mqtt-port", str(broker.port), "--device-name", "killed"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT_DIR)
    try:
        lines = []
        while not (lines and lines[-1].startswith("listening to stdin")):  # printed once YAMNet is loaded
            lines.append(process.stderr.readline().decode())
            assert lines[-1], "listen.py exited early:\n" + "".join(lines)
        got = subscriber.wait_for(lambda m: len(m) >= 1, timeout=10)
        assert [p for _, p, _ in got] == ["online"]
        process.kill()
        got = subscriber.wait_for(lambda m: len(m) >= 2, timeout=10)
    finally:
        process.kill()
        process.wait()
        subscriber.close()
    assert [p for _, p, _ in got] == ["online", "offline"]
    assert retained(broker.port, "audio2mqtt/killed/availability") == {"audio2mqtt/killed/availability": "offline"}


@pytest.mark.parametrize("credentials", ["wrong-password", "none"])
def test_wrong_password_is_one_clear_line_and_exit_1(credentials, tmp_path, capsys, monkeypatch):
    broker = Broker(tmp_path / "broker", users={"homeassistant": "right"}).start()
    wav = write_wav(tmp_path / "a.wav", tone(440, 1.0))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/audio2mqtt/mqtt.toml of the developer's
    monkeypatch.delenv(MQTT_USERNAME_ENV_VAR, raising=False)
    monkeypatch.delenv(MQTT_PASSWORD_ENV_VAR, raising=False)
    if credentials == "wrong-password":
        monkeypatch.setenv(MQTT_USERNAME_ENV_VAR, "homeassistant")
        monkeypatch.setenv(MQTT_PASSWORD_ENV_VAR, "wrong")
    try:
        code = listen.main(["--file", str(wav), "--classes", "Speech", "--mqtt-host", "127.0.0.1",
                            "--mqtt-port", str(broker.port)])
    finally:
        broker.stop()
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"error: MQTT broker 127.0.0.1:{broker.port} refused the login"), err
    assert MQTT_PASSWORD_ENV_VAR in err


# --- TLS: a throwaway CA, a TLS-only Mosquitto, a TLS subscriber ------------------------------------------

@pytest.fixture
def tls_broker(tmp_path):
    """A broker that speaks only TLS, with a certificate for 127.0.0.1 signed by a CA made here."""
    tls = issue_server_cert(tmp_path / "server", make_ca(tmp_path / "ca"))
    broker = Broker(tmp_path / "broker", tls=tls).start()
    yield broker, tls.cafile
    broker.stop()


def test_tls_with_cafile_delivers_events_to_a_tls_subscriber(digit_model, digit_stream, tls_broker, capsys):
    broker, cafile = tls_broker
    path, _, truth = digit_stream
    subscriber = Subscriber(broker.port, ["audio2mqtt/tls/#"], cafile=cafile)
    try:
        code = listen.main(["--file", str(path), "--custom", "--models", str(digit_model), "--mqtt-host", "127.0.0.1",
                            "--mqtt-port", str(broker.port), "--tls", "--cafile", str(cafile), "--device-name", "tls"])
        out, err = capsys.readouterr()
        got = subscriber.wait_for(lambda m: ("audio2mqtt/tls/availability", "offline", False) in m, timeout=10)
    finally:
        subscriber.close()
    assert code == 0, err
    assert "warning" not in err, err
    events = json_lines(out)
    assert_events_match(events, truth)
    assert [json.loads(p) for t, p, _ in got if t == "audio2mqtt/tls/event"] == events
    assert [p for t, p, _ in got if t == "audio2mqtt/tls/digit/state"][-4:] == ["ON", "OFF", "ON", "OFF"]


TLS_FAILED = "TLS with MQTT broker 127.0.0.1:{port} failed ("


# (case, start of the line, a later part): OpenSSL's own wording of a failed check varies with its version.
@pytest.mark.parametrize("case,start,later", [
    ("CA that did not sign it", TLS_FAILED, "): check --cafile"),
    ("certificate for another host", TLS_FAILED + "IP address mismatch",
     "): give --mqtt-host as a name or address the broker's certificate was issued for"),
    ("missing CA file", "cannot load CA certificate {cafile} (", "): --cafile wants the broker's CA certificate"),
    ("CA file not PEM", "cannot load CA certificate {cafile} (", "): --cafile wants the broker's CA certificate"),
    # The broker hangs up on the ClientHello: a reset, or an EOF inside the handshake, as the timing falls.
    ("broker without TLS", "TLS with MQTT broker 127.0.0.1:{port} failed", "speaks TLS on this port"),
], ids=["wrong-ca", "other-host", "missing-cafile", "cafile-not-pem", "plain-broker"])
def test_tls_failure_is_one_clear_line_and_exit_1(case, start, later, tmp_path, capsys):
    ca = make_ca(tmp_path / "ca")
    cafile = ca[0]
    tls = issue_server_cert(tmp_path / "server", ca, names=("mqtt.example.org",) if "another host" in case else
                            ("127.0.0.1", "localhost"))
    if case == "CA that did not sign it":
        cafile = make_ca(tmp_path / "other-ca", "another test CA")[0]
    elif case == "missing CA file":
        cafile = tmp_path / "no-such-ca.crt"
    elif case == "CA file not PEM":
        cafile = write_wav(tmp_path / "ca.wav", tone(440, 0.1))
    broker = Broker(tmp_path / "broker", tls=None if case == "broker without TLS" else tls).start()
    wav = write_wav(tmp_path / "a.wav", tone(440, 1.0))
    try:
        code = listen.main(["--file", str(wav), "--classes", "Speech", "--mqtt-host", "127.0.0.1",
                            "--mqtt-port", str(broker.port), "--tls", "--cafile", str(cafile)])
    finally:
        broker.stop()
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: " + start.format(port=broker.port, cafile=cafile)), err
    assert later in err, err


def test_plain_mqtt_to_a_tls_port_warns_to_add_tls(tls_broker, tmp_path, capsys):
    broker, _ = tls_broker
    wav = write_wav(tmp_path / "a.wav", tone(440, 1.0))
    code = listen.main(["--file", str(wav), "--classes", "Speech", "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"warning: MQTT broker 127.0.0.1:{broker.port} closed the connection without answering" in err
    assert "add --tls" in err


# --- a sound card: a virtual ALSA microphone through PortAudio (see tests/alsa_microphone.py) ------------

def test_list_devices_shows_an_alsa_microphone(tmp_path):
    microphone = AlsaMicrophone(tmp_path, "audio2mqtt_listed_mic")
    try:
        result = subprocess.run([sys.executable, str(PROJECT_DIR / "listen.py"), "--list-devices"], env=microphone.env,
                                cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    finally:
        microphone.close()
    assert result.returncode == 0, result.stderr
    assert any(": audio2mqtt_listed_mic (" in line and " ch, " in line for line in result.stdout.splitlines()), result.stdout


def test_device_stream_events_at_known_offsets(digit_model, digit_stream, tmp_path):
    """listen.py --device NAME in a subprocess records the stream through PortAudio and ALSA, then is
    stopped with SIGTERM like a service, as a microphone never ends."""
    _, waveform, truth = digit_stream
    microphone = AlsaMicrophone(tmp_path)
    microphone.play(waveform)
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "listen.py"), "--device", microphone.name, "--custom",
             "--models", str(digit_model)],
            env=microphone.env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines, all_events_in, reader = read_lines(process, 2 * len(truth))
    try:
        all_events_in.wait(timeout=120)
        process.send_signal(signal.SIGTERM)
        microphone.close()  # the recorder waits in a read of the FIFO: let it return, so the stream stops
        process.wait(timeout=60)
    finally:
        microphone.close()
        process.kill()
        process.wait()
    reader.join(timeout=10)
    err = stderr_path.read_text()
    assert process.returncode == 0, err
    assert f"listening to device:{microphone.name} for digit" in err
    events = json_lines("".join(lines))
    assert_events_match(events, truth)
    assert {e["source"] for e in events} == {f"device:{microphone.name}"}


def test_a_microphone_that_goes_away_is_waited_for_and_heard_again(jingle_db, tmp_path):
    """The virtual microphone gives no more audio after the jingle, then goes away, as an unplugged one:
    the listener says so, waits for it, reopens it when it is back and hears the jingle played again, in
    one stream; it never exits by itself."""
    db, sound = jingle_db
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound, np.zeros(SAMPLE_RATE, np.float32)])
    microphone = AlsaMicrophone(tmp_path)
    microphone.play(audio)
    process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "listen.py"), "--device", microphone.name,
                                "--fingerprints", str(db), "--stall-seconds", "3"],
                               env=microphone.env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    lines, errors, cond = [], [], threading.Condition()

    def read(stream, into):
        for line in stream:
            with cond:
                into.append(line)
                cond.notify_all()

    readers = [threading.Thread(target=read, args=(process.stdout, lines), daemon=True),
               threading.Thread(target=read, args=(process.stderr, errors), daemon=True)]
    for reader in readers:
        reader.start()

    def wait_for(predicate, timeout=60):
        with cond:
            cond.wait_for(predicate, timeout=timeout)

    try:
        wait_for(lambda: len(lines) >= 2)  # then the microphone gives nothing more, as one unplugged ...
        wait_for(lambda: any("gave no audio for 3 s" in e for e in errors))
        microphone.close()  # ... and is gone: its read returns, the listener closes it and waits for it
        wait_for(lambda: any("waiting for the input device to come back" in e for e in errors))
        microphone.reconnect()  # plugged in again
        # played once the listener has it open: PortAudio's probes while it looks for it may read from the FIFO
        wait_for(lambda: any("is back; listening again" in e for e in errors))
        microphone.play(audio)
        wait_for(lambda: len(lines) >= 4)
        process.send_signal(signal.SIGTERM)
        microphone.close()
        process.wait(timeout=60)
    finally:
        microphone.close()
        process.kill()
        process.wait()
    for reader in readers:
        reader.join(timeout=10)
    err = "".join(errors)
    assert process.returncode == 0, err
    assert f"warning: input device {microphone.name!r} gave no audio for 3 s\n" in err
    assert f"input device {microphone.name!r} gave no audio for 3 s: waiting for the input device to come back" in err
    assert f"input device device:{microphone.name} is back; listening again" in err
    events = json_lines("".join(lines))
    assert [e["event"] for e in events] == ["start", "end"] * 2, err
    assert events[2]["offset_s"] > events[1]["offset_s"]  # one stream, before and after


# --- exact sounds: --fingerprints (no TensorFlow) ----------------------------------------------------------

@pytest.fixture(scope="module")
def jingle_db(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A fingerprint database with one chiptune jingle (and its metadata), registered by fingerprint.py add."""
    import fingerprint
    from synth_sounds import jingle

    root = tmp_path_factory.mktemp("exact")
    sound = jingle(np.random.default_rng(8), notes=9)
    write_wav(root / "sounds" / "mario_dies" / "death.wav", sound)
    (root / "sounds" / "mario_dies" / "meta.json").write_text(json.dumps({"game": "Super Mario", "room": "living room"}))
    assert fingerprint.main(["add", str(root / "sounds"), "--db", str(root / "fp.sqlite")]) == 0
    return root / "fp.sqlite", sound


def test_fingerprints_two_replays_under_music_give_two_events_with_metadata_on_mqtt(jingle_db, broker, tmp_path, capsys):
    from synth_sounds import melody_stream, mix_at_snr

    db, sound = jingle_db
    onsets = (4.0, 14.2)
    stream = melody_stream(np.random.default_rng(21), 24.0)
    for onset in onsets:
        stream = mix_at_snr(stream, sound, round(onset * SAMPLE_RATE), -3.0)
    path = write_wav(tmp_path / "game.wav", 0.9 * stream / np.abs(stream).max())
    subscriber = Subscriber(broker.port, ["audio2mqtt/#", "homeassistant/#"])
    code = listen.main(["--file", str(path), "--fingerprints", str(db), "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-name", "den", "--ha-discovery"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"listening to {path} for mario_dies" in err
    events = json_lines(out)
    assert [(e["event"], e["label"]) for e in events] == [("start", "mario_dies"), ("end", "mario_dies")] * 2
    for start, end, onset in zip(events[::2], events[1::2], onsets):
        assert abs(start["offset_s"] - onset) <= 0.05
        assert 0.0 < start["heard_s"] - start["offset_s"] <= 2.0  # the delay, in stream seconds
        assert end["heard_s"] >= end["offset_s"]
    for event in events:
        assert event["method"] == "fingerprint" and event["reference"] == "mario_dies/death.wav"
        assert event["metadata"] == {"game": "Super Mario", "room": "living room"}
    got = subscriber.wait_for(lambda m: ("audio2mqtt/den/availability", "offline", False) in m, timeout=10)
    subscriber.close()
    assert [json.loads(p) for t, p, _ in got if t == "audio2mqtt/den/event"] == events
    assert [p for t, p, _ in got if t == "audio2mqtt/den/mario_dies/state"][-4:] == ["ON", "OFF", "ON", "OFF"]
    config = json.loads(retained(broker.port, "homeassistant/#")["homeassistant/binary_sensor/den/mario_dies/config"])
    assert config["state_topic"] == "audio2mqtt/den/mario_dies/state"


def test_a_label_both_trained_and_fingerprinted_is_one_sensor_on_while_either_method_hears_it(
        digit_model, digit_stream, fsdd_dir, broker, tmp_path, capsys):
    """The trained class "digit" hears both bursts; the second burst's own recording is also registered
    as the exact sound "digit". Events keep their method; Home Assistant gets one sensor, whose state
    follows the union: ON at the first start, OFF only after the last of the two methods ended."""
    import fingerprint

    path, _, truth = digit_stream
    write_wav(tmp_path / "sounds" / "digit" / "burst.wav", digit_burst(fsdd_dir, 1))  # the stream's second burst
    db = tmp_path / "fp.sqlite"
    assert fingerprint.main(["add", str(tmp_path / "sounds"), "--db", str(db)]) == 0
    capsys.readouterr()
    subscriber = Subscriber(broker.port, ["audio2mqtt/both/#", "homeassistant/#"])
    code = listen.main(["--file", str(path), "--custom", "--models", str(digit_model), "--fingerprints", str(db),
                        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--device-name", "both",
                        "--ha-discovery"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"listening to {path} for digit;" in err  # one label, listed once
    events = json_lines(out)
    assert_events_match([e for e in events if e["method"] == "yamnet"], truth)
    exact = [e for e in events if e["method"] == "fingerprint"]
    assert [(e["event"], e["label"]) for e in exact] == [("start", "digit"), ("end", "digit")]
    assert abs(exact[0]["offset_s"] - truth[1][0]) <= 0.05

    got = subscriber.wait_for(lambda m: ("audio2mqtt/both/availability", "offline", False) in m, timeout=10)
    subscriber.close()
    assert [json.loads(p) for t, p, _ in got if t == "audio2mqtt/both/event"] == events
    on, most_on, states = set(), 0, []
    for topic, payload, _ in got:  # in the order published: each state must match the methods on by then
        if topic == "audio2mqtt/both/event":
            event = json.loads(payload)
            (on.add if event["event"] == "start" else on.discard)(event["method"])
            most_on = max(most_on, len(on))
        elif topic == "audio2mqtt/both/digit/state":
            states.append(payload)
            assert payload == ("ON" if on else "OFF"), (payload, on, got)
    assert most_on == 2  # the two methods did overlap on the second burst
    assert states == ["OFF", "ON", "OFF", "ON", "OFF"]  # OFF at connect, then one ON/OFF per burst
    configs = [t for t in retained(broker.port, "homeassistant/binary_sensor/#") if "/both/" in t]
    assert configs == ["homeassistant/binary_sensor/both/digit/config"]


def test_a_sounds_own_min_frames_and_threshold_in_the_config_file_apply_to_its_yamnet_events(
        digit_model, digit_stream, tmp_path, capsys):
    path, _, truth = digit_stream
    config = tmp_path / "audio2mqtt.toml"
    config.write_text(f'[input]\nfile = "{path}"\n[detect]\ncustom = true\nmodels = "{digit_model}"\n'
                      f'[sounds.digit]\nmin_frames = 50\n')
    assert listen.main(["--config", str(config)]) == 0
    assert json_lines(capsys.readouterr().out) == []  # a burst lasts 3-4 windows, not 50
    config.write_text(config.read_text().replace("min_frames = 50", "threshold = 0.0"))
    assert listen.main(["--config", str(config)]) == 0
    events = json_lines(capsys.readouterr().out)
    assert [e["event"] for e in events] == ["start", "end"]  # at 0 every window is "digit": one event
    assert events[1]["duration_s"] > STREAM_S - 2
    assert listen.main(["--config", str(config), "--threshold", "digit=0.5"]) == 0  # the flag wins
    assert_events_match(json_lines(capsys.readouterr().out), truth)


ROBIN = "456440__inspectorj__bird-whistling-robin-single-13.ogg"  # a real robin's call, 2.7 s


def test_the_not_a_button_moves_a_false_alarm_into_training_and_train_py_learns_it(
        digit_model, fsdd_dir, broker, tmp_path, capsys, monkeypatch):
    """The digit model (digits vs noise) takes a real robin's call for a digit. "Not a digit", pressed in
    Home Assistant after that event, moves its clip into training/background/false_alarms/; train.py again
    on the same folder; on the same recording the robin no longer fires and the digits are still found."""
    training = tmp_path / "training"
    shutil.copytree(digit_model.parent / "training", training)
    robin = load_audio_16k_mono(MUSIC_DIR / ROBIN)
    robin_at, digit_at = 2.15, 10.31
    robin_span = (robin_at, robin_at + len(robin) / SAMPLE_RATE)
    stream = noise(16.0, amplitude=NOISE_LEVEL, seed=7)
    for at_s, sound in ((robin_at, 0.5 * robin / np.abs(robin).max()), (digit_at, digit_burst(fsdd_dir, 0))):
        at = round(at_s * SAMPLE_RATE)
        stream[at:at + len(sound)] += sound
    stream = np.clip(stream, -1, 1)
    path = write_wav(tmp_path / "garden.wav", stream)

    def robin_starts(events):
        return [e for e in events if e["event"] == "start" and robin_span[0] - HOP_S <= e["offset_s"] <= robin_span[1]]

    def digit_starts(events):
        return [e for e in events if e["event"] == "start" and abs(e["offset_s"] - digit_at) <= HOP_S]

    evidence = tmp_path / "evidence"
    read_fd, write_fd = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read_fd, "rb")))
    subscriber = Subscriber(broker.port, ["audio2mqtt/garden/#", "homeassistant/#"])
    result = {}
    listener = threading.Thread(target=lambda: result.setdefault("code", listen.main(
        ["--stdin", "--format", "f32le", "--custom", "--models", str(digit_model), "--evidence", str(evidence),
         "--training", str(training), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
         "--device-name", "garden", "--ha-discovery"])))

    def published(messages):
        return [json.loads(p) for t, p, _ in messages if t == "audio2mqtt/garden/event"]

    try:
        listener.start()
        os.write(write_fd, pcm_bytes(stream[:round(7.5 * SAMPLE_RATE)]))  # the robin, not yet the digits
        got = subscriber.wait_for(lambda m: any(e["event"] == "end" for e in robin_starts(published(m)) and published(m)),
                                  timeout=60)
        false_alarm = robin_starts(published(got))
        assert false_alarm, published(got)  # before the feedback, the robin fires
        clip = evidence / false_alarm[0]["evidence"]
        deadline = time.monotonic() + 30
        while not clip.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        button = json.loads(retained(broker.port, "homeassistant/button/garden/#")[
            "homeassistant/button/garden/digit_not_this/config"])
        assert button["name"] == "Not a digit" and button["payload_press"] == "PRESS"
        subscriber.client.publish(button["command_topic"], "PRESS", qos=1)
        moved = training / "background" / "false_alarms" / clip.name
        while not moved.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert moved.is_file() and not clip.exists()
        os.write(write_fd, pcm_bytes(stream[round(7.5 * SAMPLE_RATE):]))
        os.close(write_fd)
        write_fd = None
        listener.join(timeout=60)
        assert result["code"] == 0
    finally:
        if write_fd is not None:
            os.close(write_fd)
        listener.join(timeout=10)
        subscriber.close()
    out, err = capsys.readouterr()
    assert f"feedback: moved {clip.name} to {moved.parent}/" in err
    assert digit_starts(json_lines(out))

    assert train.main([str(training), str(tmp_path / "model"), "--epochs", "30", "--cv", "2",
                       "--cache-dir", str(digit_model.parent / "cache"), "--quiet"]) == 0
    assert "false-alarm frames" in capsys.readouterr().out
    assert listen.main(["--file", str(path), "--custom", "--models", str(tmp_path / "model")]) == 0
    events = json_lines(capsys.readouterr().out)
    assert robin_starts(events) == [] and digit_starts(events), events


def test_fingerprints_alone_never_import_tensorflow(jingle_db, tmp_path):
    db, sound = jingle_db
    wav = write_wav(tmp_path / "a.wav", np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound]))
    code = (f"import sys, listen; code = listen.main(['--file', {str(wav)!r}, '--fingerprints', {str(db)!r}]); "
            f"print(code, 'tensorflow' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert result.stderr.split()[-2:] == ["0", "False"], result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["start", "end"]


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_undelivered_events_at_the_end_of_a_file_or_pipe_are_exit_1(source, jingle_db, tmp_path, capsys, monkeypatch):
    """No broker on the port: the events still go to stdout, and the run says in one line that MQTT
    never got them (exit 0 would tell a script all was well)."""
    db, sound = jingle_db
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound, np.zeros(SAMPLE_RATE, np.float32)])
    if source == "file":
        given = ["--file", str(write_wav(tmp_path / "a.wav", audio))]
    else:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm_bytes(audio, fmt="s16le"))))
        given = ["--stdin"]
    port = free_port()
    code = listen.main(given + ["--fingerprints", str(db), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert [e["event"] for e in json_lines(out)] == ["start", "end"]
    last = err.strip().splitlines()[-1]
    assert last == (f"error: 4 MQTT message(s) not delivered: broker 127.0.0.1:{port} unreachable at the end of "
                    f"the stream (the events are on stdout)"), err
    assert "Traceback" not in err and "warning: 4 MQTT" not in err


def test_a_restarted_listener_clears_the_on_state_a_killed_one_left(jingle_db, broker, tmp_path):
    """kill -9 while a sound is on leaves its retained ON (nobody said OFF); the next start says OFF for
    every sound it owns before it hears anything."""
    db, sound = jingle_db
    state = "audio2mqtt/crash/mario_dies/state"
    subscriber = Subscriber(broker.port, [state])
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "listen.py"), "--stdin", "--fingerprints", str(db),
         "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--device-name", "crash"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT_DIR)
    try:  # the pipe stays open after the jingle: the sound is still on when the listener dies
        process.stdin.write(pcm_bytes(np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound]), fmt="s16le"))
        process.stdin.flush()
        got = subscriber.wait_for(lambda m: (state, "ON", False) in m, timeout=30)
        assert (state, "ON", False) in got, process.stderr.read1().decode() if process.poll() is not None else got
        process.kill()
    finally:
        process.kill()
        process.wait()
    assert retained(broker.port, state) == {state: "ON"}  # what a crash leaves behind

    silence = write_wav(tmp_path / "silence.wav", np.zeros(2 * SAMPLE_RATE, np.float32))
    assert listen.main(["--file", str(silence), "--fingerprints", str(db), "--mqtt-host", "127.0.0.1",
                        "--mqtt-port", str(broker.port), "--device-name", "crash"]) == 0
    got = subscriber.wait_for(lambda m: m[-1] == (state, "OFF", False), timeout=10)
    subscriber.close()
    assert [p for _, p, _ in got] == ["OFF", "ON", "OFF"]  # each start says OFF first
    assert retained(broker.port, state) == {state: "OFF"}


def two_replays(sound: np.ndarray, path: Path, onsets=(2.0, 9.0), seconds: float = 13.0) -> Path:
    """The jingle twice in quiet noise, written to `path`."""
    stream = noise(seconds, amplitude=0.01, seed=4)
    for onset in onsets:
        at = round(onset * SAMPLE_RATE)
        stream[at:at + len(sound)] += sound
    return write_wav(path, stream)


def test_a_config_file_holds_the_flags_settings_and_flags_given_beside_it_win(jingle_db, tmp_path, capsys):
    """Input, exact sounds, a sound's own cooldown and an MQTT login with credentials, all from the file
    (its relative paths are relative to it); --device-name on the command line beats the file's."""
    db, sound = jingle_db
    broker = Broker(tmp_path / "broker", users={"listener": "s3cret"}).start()
    two_replays(sound, tmp_path / "conf" / "game.wav")
    config = tmp_path / "conf" / "audio2mqtt.toml"
    config.write_text(f"""[input]
file = "game.wav"

[detect]
fingerprints = "{db}"

[sounds.mario_dies]
cooldown = 30.0

[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "listener"
password = "s3cret"
device_name = "from-file"
""")
    subscriber = Subscriber(broker.port, ["audio2mqtt/#"], username="listener", password="s3cret")
    try:
        code = listen.main(["--config", str(config), "--device-name", "from-flag"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"listening to {tmp_path / 'conf' / 'game.wav'} for mario_dies" in err
        events = json_lines(out)
        assert [e["event"] for e in events] == ["start", "end"]  # the replay 7 s later falls in the cooldown
        got = subscriber.wait_for(lambda m: ("audio2mqtt/from-flag/availability", "offline", False) in m, timeout=10)
        assert [json.loads(p) for t, p, _ in got if t == "audio2mqtt/from-flag/event"] == events
        assert not any("from-file" in t for t, _, _ in got)

        assert listen.main(["--config", str(config), "--device-name", "from-flag", "--cooldown", "0"]) == 0
        assert len(json_lines(capsys.readouterr().out)) == 2  # a sound's own setting beats the general flag
    finally:
        subscriber.close()
        broker.stop()
    config.write_text(config.read_text().replace("[sounds.mario_dies]\ncooldown = 30.0\n", ""))
    assert listen.main(["--config", str(config), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(free_port())]) == 1
    assert [e["event"] for e in json_lines(capsys.readouterr().out)] == ["start", "end"] * 2


@pytest.mark.parametrize("text,message", [
    ("[input]\nfile = 'a.wav'\n\n[detect]\ncustom = true\nthresold = 0.5\n",
     "{path} line 6: unknown key 'thresold' in [detect] (known: custom, classes, fingerprints, models, threshold,"),
    ("[input]\nfile = 'a.wav'\n[detcet]\ncustom = true\n", "{path} line 3: unknown table 'detcet' (tables: [input],"),
    ("verbose = true\n", "{path} line 1: unknown key 'verbose'"),
    ("[input]\nfile = 'a.wav'\n[detect]\ncustom = 'yes'\n", "{path} line 4: 'custom' must be true or false, got 'yes'"),
    ('[detect]\ncustom = true\n[sounds."Door bell"]\nthreshold = 0.7\ncooldwn = 5\n',
     "{path} line 5: unknown key 'cooldwn' in [sounds.Door bell] (known: threshold, min_frames, cooldown)"),
    ("[detect]\ncustom = true\n[sounds.bell]\nthreshold = 1.5\n",
     "{path} line 4: threshold must be a number from 0 to 1, got 1.5"),
    ("[detect\n", "config {path} is not valid TOML"),
    ("[input]\nfile = 'a.wav'\n[detect]\nfingerprints = 'fp.sqlite'\n[sounds.door]\nthreshold = 0.9\n",
     "threshold in [sounds.door] applies to YAMNet's sounds (--custom or --classes): an exact sound takes only cooldown"),
    ("[input]\nfile = 'a.wav'\n[detect]\nfingerprints = ''\n",
     "{path} line 4: 'fingerprints' is an empty path: name a file or folder, or leave the key out"),
], ids=["key", "table", "top-level", "type", "sound-key", "sound-threshold", "toml", "exact-sound-threshold",
        "empty-path"])
def test_a_config_file_mistake_is_one_line_naming_the_key_and_its_line(text, message, tmp_path, capsys):
    path = tmp_path / "audio2mqtt.toml"
    path.write_text(text)
    assert listen.main(["--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.format(path=path)) and err.count("\n") == 1, err


def test_print_config_shows_the_effective_settings_reads_back_and_never_prints_credentials(jingle_db, tmp_path,
                                                                                          capsys, monkeypatch):
    db, _ = jingle_db
    config = tmp_path / "audio2mqtt.toml"
    config.write_text(f"""[input]\nstdin = true\nrate = 48000\n[detect]\nfingerprints = "{db}"\n
[sounds.mario_dies]\ncooldown = 10\n[mqtt]\nhost = "broker.lan"\nusername = "me"\npassword = "hunter2"\n""")
    assert listen.main(["--config", str(config), "--print-config", "--cooldown", "2.5", "--ha-discovery"]) == 0
    printed = capsys.readouterr().out
    assert "hunter2" not in printed and 'password = "***"' in printed and 'username = "***"' in printed
    assert "cooldown = 2.5" in printed and "ha_discovery = true" in printed and "rate = 48000" in printed
    assert '[sounds."mario_dies"]\ncooldown = 10.0' in printed
    again = tmp_path / "printed.toml"
    again.write_text(printed)
    assert listen.main(["--config", str(again), "--print-config"]) == 0
    assert capsys.readouterr().out == printed  # what it prints, it reads back as the same settings

    monkeypatch.setenv(MQTT_PASSWORD_ENV_VAR, "from-env")  # credentials from the environment: masked too
    monkeypatch.setenv(MQTT_USERNAME_ENV_VAR, "env-user")
    assert listen.main(["--stdin", "--fingerprints", str(db), "--mqtt-host", "h", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "from-env" not in printed and "env-user" not in printed and 'password = "***"' in printed


def test_a_password_in_a_file_others_can_read_is_warned_about(jingle_db, tmp_path, capsys, monkeypatch):
    db, _ = jingle_db
    monkeypatch.delenv(MQTT_PASSWORD_ENV_VAR, raising=False)
    monkeypatch.delenv(MQTT_USERNAME_ENV_VAR, raising=False)
    config, credentials = tmp_path / "audio2mqtt.toml", tmp_path / "mqtt.toml"
    config.write_text(f'[input]\nstdin = true\n[detect]\nfingerprints = "{db}"\n'
                      '[mqtt]\nhost = "h"\nusername = "me"\npassword = "pw"\n')
    credentials.write_text('[mqtt]\nusername = "me"\npassword = "pw"\n')
    flags_only = ["--stdin", "--fingerprints", str(db), "--mqtt-host", "h", "--mqtt-config", str(credentials)]
    for argv, path in ((["--config", str(config)], config), (flags_only, credentials)):
        path.chmod(0o644)
        assert listen.main(argv + ["--print-config"]) == 0
        assert f"warning: {path} holds an MQTT password and other users can read it: chmod 600 {path}" in \
            capsys.readouterr().err
        path.chmod(0o600)
        assert listen.main(argv + ["--print-config"]) == 0
        assert "warning" not in capsys.readouterr().err


def test_each_event_saves_its_audio_as_flac_named_in_its_json_and_on_mqtt(jingle_db, broker, tmp_path, capsys):
    import soundfile

    db, sound = jingle_db
    stream_path = two_replays(sound, tmp_path / "game.wav")
    stream = load_audio_16k_mono(stream_path)
    evidence = tmp_path / "evidence"
    subscriber = Subscriber(broker.port, ["audio2mqtt/ev/event"])
    code = listen.main(["--file", str(stream_path), "--fingerprints", str(db), "--evidence", str(evidence),
                        "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--device-name", "ev"])
    out, err = capsys.readouterr()
    assert code == 0, err
    events = json_lines(out)
    assert [e["event"] for e in events] == ["start", "end"] * 2
    got = subscriber.wait_for(lambda m: len(m) >= 4, timeout=10)
    subscriber.close()
    assert [json.loads(p) for _, p, _ in got] == events  # MQTT carries the file name too
    assert sorted(p.name for p in evidence.iterdir()) == sorted({e["evidence"] for e in events})  # no temp files left
    for start, end in zip(events[::2], events[1::2]):
        assert start["id"] == end["id"] and start["evidence"] == end["evidence"] == start["id"] + ".flac"
        audio, rate = soundfile.read(str(evidence / start["evidence"]), dtype="float32")
        first = round((start["offset_s"] - 2.0) * SAMPLE_RATE)  # 2 s before the start to 1 s after the end
        expected = stream[first:round((end["offset_s"] + 1.0) * SAMPLE_RATE)]
        assert rate == SAMPLE_RATE and len(audio) == len(expected)
        np.testing.assert_allclose(audio, expected, atol=2 / 32768)  # the stream itself, 16-bit


def test_the_evidence_folder_keeps_within_its_size_and_age_limits(jingle_db, tmp_path, capsys):
    db, sound = jingle_db
    stream_path = two_replays(sound, tmp_path / "game.wav")
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    old = evidence / "20200101-000000-mario_dies-fingerprint-1.flac"
    old.write_bytes(b"an old clip")
    os.utime(old, (time.time() - 8 * 86400,) * 2)
    notes = evidence / "notes.txt"  # not a clip: never touched
    notes.write_text("mine")
    assert listen.main(["--file", str(stream_path), "--fingerprints", str(db), "--evidence", str(evidence),
                        "--evidence-max-days", "7"]) == 0
    capsys.readouterr()
    clips = sorted(evidence.glob("*.flac"))
    assert old not in clips and len(clips) == 2 and notes.read_text() == "mine"
    biggest = max(p.stat().st_size for p in clips)
    for clip in clips:
        clip.unlink()
    limit_mb = 1.5 * biggest / 1e6  # room for one clip, not two
    assert listen.main(["--file", str(stream_path), "--fingerprints", str(db), "--evidence", str(evidence),
                        "--evidence-max-mb", str(limit_mb)]) == 0
    events = json_lines(capsys.readouterr().out)
    assert [p.name for p in evidence.glob("*.flac")] == [events[-1]["evidence"]]  # the newest stays


def test_feedback_moves_an_events_clip_into_training_as_a_false_alarm(digit_model, digit_stream, jingle_db, tmp_path,
                                                                     capsys):
    """A YAMNet event's clip moves; a fingerprint match's stays (training cannot unlearn it), and says so."""
    evidence, training = tmp_path / "evidence", tmp_path / "training"
    assert listen.main(["--file", str(digit_stream[0]), "--custom", "--models", str(digit_model),
                        "--evidence", str(evidence)]) == 0
    first = json_lines(capsys.readouterr().out)[0]
    assert first["method"] == "yamnet"
    assert listen.main(["feedback", first["id"], "--evidence", str(evidence), "--training", str(training)]) == 0
    out = capsys.readouterr().out
    moved = training / "background" / "false_alarms" / first["evidence"]
    assert moved.is_file() and not (evidence / first["evidence"]).exists()
    assert out.startswith(f"moved {first['evidence']} to {moved.parent}/") and f"python train.py {training} " in out
    assert listen.main(["feedback", first["id"], "--evidence", str(evidence), "--training", str(training)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no evidence clip for {first['id']!r} in {evidence}") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        listen.main(["feedback", first["id"]])
    assert exit_info.value.code == 2 and "which evidence folder?" in capsys.readouterr().err

    db, sound = jingle_db
    assert listen.main(["--file", str(two_replays(sound, tmp_path / "game.wav")), "--fingerprints", str(db),
                        "--evidence", str(evidence)]) == 0
    exact = json_lines(capsys.readouterr().out)[0]
    assert listen.main(["feedback", exact["id"], "--evidence", str(evidence), "--training", str(training)]) == 1
    err = capsys.readouterr().err
    assert "was a fingerprint match, which training cannot unlearn" in err and err.count("\n") == 1
    assert (evidence / exact["evidence"]).is_file()


PCM_PROGRAM = """import os, pathlib, sys, time
runs = pathlib.Path(sys.argv[2])
n = len(runs.read_text().split()) if runs.exists() else 0
runs.write_text(runs.read_text() + f"{os.getpid()} " if runs.exists() else f"{os.getpid()} ")
sys.stdout.buffer.write(pathlib.Path(sys.argv[1]).read_bytes())
sys.stdout.buffer.flush()
if n % 2 == 1:  # every second run stalls: its audio stops but it never exits, nor does a helper it started
    import subprocess  # (as `sh -c "ffmpeg ... | sox ..."` leaves ffmpeg when only sh is killed)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.DEVNULL)
    with open(runs.parent / "helpers.txt", "a") as f:
        f.write(f"{helper.pid} ")
    time.sleep(600)
"""


def test_a_command_input_is_restarted_when_it_exits_or_stalls_and_ends_with_the_listener(jingle_db, tmp_path):
    """--command runs a program that prints PCM (ffmpeg in real life): here one that plays the jingle, then
    exits or hangs by turns. listen.py restarts it each time, with back-off, and hears the jingle in every
    run; SIGTERM ends the listener and the program it started."""
    db, sound = jingle_db
    pcm = tmp_path / "jingle.s16le"
    pcm.write_bytes(pcm_bytes(np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound,
                                              np.zeros(SAMPLE_RATE, np.float32)]), fmt="s16le"))
    program, runs = tmp_path / "play.py", tmp_path / "runs.txt"
    program.write_text(PCM_PROGRAM)
    command = f"{sys.executable} {program} {pcm} {runs}"
    process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "listen.py"), "--command", command,
                                "--fingerprints", str(db), "--stall-seconds", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT_DIR, text=True)
    lines, three_runs, reader = read_lines(process, 6)
    try:
        three_runs.wait(timeout=60)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    reader.join(timeout=10)
    assert process.returncode == 0, err
    events = json_lines("".join(lines))
    assert [e["event"] for e in events[:6]] == ["start", "end"] * 3, err
    starts = [e["offset_s"] for e in events if e["event"] == "start"]
    run_s = len(pcm.read_bytes()) / 2 / SAMPLE_RATE
    assert all(later - earlier >= run_s - 0.1 for earlier, later in zip(starts, starts[1:]))  # stream time goes on
    assert "warning: --command exited with code 0; restarting it in 1 s" in err
    assert "warning: --command gave no audio for 1 s; restarting it in 2 s" in err
    helpers = (tmp_path / "helpers.txt").read_text().split()
    for pid in map(int, runs.read_text().split() + helpers):  # none left behind: the hanging ones, their helpers
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.parametrize("argv,message", [
    (["--command", "no-such-program-xyz -f s16le -"], "error: --command: 'no-such-program-xyz' not found"),
    (["--file", "x.wav", "--stall-seconds", "3"], "--stall-seconds only applies with --command or --device"),
])
def test_command_input_mistakes(argv, message, jingle_db, capsys):
    try:
        code = listen.main(argv + ["--fingerprints", str(jingle_db[0])])
    except SystemExit as e:
        code = e.code
    assert code in (1, 2) and message in capsys.readouterr().err


def test_the_exact_sounds_install_works_without_tensorflow_and_yamnet_says_what_to_install(jingle_db, tmp_path):
    """requirements-fingerprints.txt leaves TensorFlow, tensorflow-hub and ai-edge-litert out (as if they
    were not installed here): exact sounds still work, and a YAMNet command is one line naming the install."""
    db, sound = jingle_db
    wav = write_wav(tmp_path / "a.wav", np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound]))
    not_installed = "import sys; sys.modules.update(dict.fromkeys(['tensorflow', 'tensorflow_hub', 'keras', 'ai_edge_litert']))"
    for args, code, events in (
            (["--file", str(wav), "--fingerprints", str(db)], 0, ["start", "end"]),
            (["--file", str(wav), "--classes", "Music"], 1, []),
            (["--file", str(wav), "--classes", "Music", "--backend", "tflite"], 1, [])):
        run = f"{not_installed}; import listen; sys.exit(listen.main({args!r}))"
        result = subprocess.run([sys.executable, "-c", run], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
        assert result.returncode == code, result.stderr
        assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == events
        if code:
            assert "Traceback" not in result.stderr and result.stderr.strip().splitlines()[-1].startswith("error: ")
            assert "pip install -r requirements.txt" in result.stderr, result.stderr
    assert (PROJECT_DIR / "requirements-fingerprints.txt").read_text().count("tensorflow") == 0


def test_min_frames_counts_yamnet_windows_and_leaves_fingerprint_matches_alone(jingle_db, tmp_path, capsys):
    db, sound = jingle_db
    wav = write_wav(tmp_path / "a.wav", np.concatenate([np.zeros(SAMPLE_RATE, np.float32), sound, np.zeros(SAMPLE_RATE, np.float32)]))
    code = listen.main(["--file", str(wav), "--fingerprints", str(db), "--classes", "Speech", "--min-frames", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    exact = [(e["event"], e["label"]) for e in json_lines(out) if e["method"] == "fingerprint"]
    assert exact == [("start", "mario_dies"), ("end", "mario_dies")]


@pytest.mark.parametrize("case,message", [
    ("missing", "error: no fingerprint database at {db}: make one with python fingerprint.py add sounds/"),
    ("not a database", "error: {db}: not a fingerprint database (file is not a database)"),
])
def test_a_bad_fingerprint_database_is_one_line_before_anything_loads(case, message, tmp_path, capsys):
    db = tmp_path / "fp.sqlite"
    if case == "not a database":
        db.write_text("hello")
    wav = write_wav(tmp_path / "a.wav", tone(440, 1.0))
    assert listen.main(["--file", str(wav), "--fingerprints", str(db), "--classes", "Speech"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message.format(db=db)) and err.count("\n") == 1, err


@pytest.mark.parametrize("argv,message", [
    (["--fingerprints", "fp.sqlite", "--threshold", "0.7"], "--threshold applies to --custom or --classes"),
    (["--custom", "--min-votes", "5"], "--min-votes only applies with --fingerprints"),
    (["--fingerprints", "fp.sqlite", "--min-frames", "3"], "--min-frames applies to --custom or --classes"),
])
def test_fingerprint_flag_clashes_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        listen.main(["--file", "x.wav"] + argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_evaluate_stream_scores_a_labelled_recording_as_listen_does(digit_model, digit_stream, tmp_path, capsys):
    import evaluate

    path, _, truth = digit_stream
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{start:.3f}\t{end:.3f}\tdigit\n" for start, end in truth) + "0.5\t0.9\tcough\n")
    out = tmp_path / "report"
    code = evaluate.main(["--stream", str(path), "--labels", str(labels), str(digit_model), "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    digit = report["per_class"]["digit"]
    assert digit["references"] == 2 and digit["found"] == 2 and digit["false_alarms"] == 0
    assert 0 < digit["median_latency_s"] < 1.5
    assert report["unknown_labels"] == ["cough"] and report["dcase"]["f1"] == 1.0
    assert (out / "stream.png").read_bytes()[:4] == b"\x89PNG"

    assert evaluate.main(["--stream", str(path), "--labels", str(labels), str(digit_model)]) == 0
    text = capsys.readouterr().out
    assert "digit" in text and "DCASE" in text and "stream.png" in text
    assert re.search(r"events start at: digit >= 0\.\d+ in 1 window\(s\)", text)  # model.json's threshold

    labels.write_text("1.0\t2.0\tdigit\n3.0\t2.0\tdigit\n")  # ends before it starts
    assert evaluate.main(["--stream", str(path), "--labels", str(labels), str(digit_model)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 2" in err and err.count("\n") == 1


def test_evaluate_stream_with_unlabelled_classes_or_labels_of_another_recording(digit_model, digit_stream, tmp_path, capsys):
    import evaluate

    path, _, _ = digit_stream
    labels = tmp_path / "labels.txt"
    labels.write_text("0.5\t0.9\tcough\n")  # the digits are there but not labelled
    assert evaluate.main(["--stream", str(path), "--labels", str(labels), str(digit_model), "--json",
                          "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["per_class"]["digit"]["references"] == 0 and report["dcase"]["error_rate"] is None
    assert "psds" not in report
    labels.write_text("100.0\t101.0\tdigit\n")
    assert evaluate.main(["--stream", str(path), "--labels", str(labels), str(digit_model)]) == 1
    err = capsys.readouterr().err
    assert "starts after digits_in_noise.wav ends" in err and err.count("\n") == 1


def test_labels_that_share_a_topic_name_are_named_in_one_error():
    cfg = ListenConfig(file=Path("x.wav"), classes="Speech", mqtt_host="127.0.0.1", device_name="den")
    with pytest.raises(MqttError, match=r"labels 'door bell' and 'door-bell' share one topic name \(door_bell\)"):
        listen.make_publisher(cfg, ["door bell", "glass", "door-bell"])


def test_exact_sounds_get_no_not_a_button(jingle_db, broker, tmp_path, capsys):
    """Training cannot unlearn a fingerprint match, so a label only fingerprints detect has no "Not a" button."""
    db, sound = jingle_db
    Subscriber(broker.port, ["homeassistant/#"]).close()  # the broker is up
    assert listen.main(["--file", str(two_replays(sound, tmp_path / "game.wav")), "--fingerprints", str(db),
                        "--evidence", str(tmp_path / "evidence"), "--mqtt-host", "127.0.0.1", "--mqtt-port",
                        str(broker.port), "--device-name", "den", "--ha-discovery"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert "homeassistant/binary_sensor/den/mario_dies/config" in retained(broker.port, "homeassistant/#")
    assert retained(broker.port, "homeassistant/button/#") == {}


def test_config_source_options_go_with_the_source_a_flag_replaces_and_mistakes_are_one_line(jingle_db, tmp_path,
                                                                                           capsys):
    """Reviewed cases: --file beside a config whose source is a --command drops its rate and stall time
    (they were errors with --file); a file that is not UTF-8, an unbalanced quote in --command and a
    level period shorter than a chunk are one line each, never a traceback."""
    db, _ = jingle_db
    config = tmp_path / "audio2mqtt.toml"
    config.write_text(f'[input]\ncommand = "cat x.raw"\nrate = 16000\nstall_seconds = 5\n[detect]\nfingerprints = "{db}"\n')
    assert listen.main(["--config", str(config), "--file", str(tmp_path / "a.wav"), "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "file = " in printed and "command" not in printed and "rate" not in printed and "stall_seconds = 10" in printed
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[input]\ndevice = "Mikro\u00e9"\n'.encode("latin-1"))
    assert listen.main(["--config", str(latin)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: config {latin} is not UTF-8 text") and err.count("\n") == 1
    for argv, message in ((["--command", 'ffmpeg -i "x'], "No closing quotation (quote it as a shell would)"),
                          (["--file", "a.wav", "--level-seconds", "0.00001"], "--level-seconds must be at least")):
        with pytest.raises(SystemExit) as exit_info:
            listen.main(argv + ["--fingerprints", str(db)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_reader_gone_before_print_config_is_no_traceback(tmp_path):
    config = tmp_path / "audio2mqtt.toml"
    config.write_text('[input]\nstdin = true\n[detect]\nclasses = "Speech"\n')
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has already quit: every write fails with EPIPE
    try:
        result = subprocess.run([sys.executable, str(PROJECT_DIR / "listen.py"), "--config", str(config), "--print-config"],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=PROJECT_DIR)
    finally:
        os.close(write_end)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
