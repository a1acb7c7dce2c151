"""Benchmark live listening: CPU while listening in real time, and sound onset -> MQTT publish latency.

    python bench/listen.py                  # ~1.5 min: three settings, 20 s of audio each
    python bench/listen.py --seconds 60 --settings "" "--min-frames 2"

Runs `listen.py --file STREAM --realtime` against a real Mosquitto broker on 127.0.0.1. The stream is
noise with 1 kHz beeps at known onsets (AudioSet "Beep, bleep"); a paho subscriber notes when each
start event arrives. CPU is read from /proc (Linux) between "listening to ..." and the end of the
stream, so TensorFlow's start-up is not counted. Run it by hand; tests never assert timings.
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "tests")]

from conftest import noise, tone, write_wav  # noqa: E402
from mosquitto_broker import Broker, Subscriber  # noqa: E402
from params import SAMPLE_RATE  # noqa: E402

BEEP_HZ = 1000
BEEP_SECONDS = 1.0
BEEP_EVERY_SECONDS = 4.13  # not a multiple of the 0.48 s hop: onsets fall all over the window grid
NOISE_LEVEL = 0.05
DEFAULT_SETTINGS = ["", "--min-frames 2", "--hop 0.24"]


def beep_stream(seconds: float) -> tuple[np.ndarray, list[float]]:
    """Noise with a beep every BEEP_EVERY_SECONDS; returns (waveform, onsets in seconds)."""
    w = noise(seconds, amplitude=NOISE_LEVEL, seed=1)
    onsets = list(np.arange(1.5, seconds - BEEP_SECONDS - 1.0, BEEP_EVERY_SECONDS))
    for onset in onsets:
        at = round(onset * SAMPLE_RATE)
        w[at:at + round(BEEP_SECONDS * SAMPLE_RATE)] += tone(BEEP_HZ, BEEP_SECONDS)
    return np.clip(w, -1, 1), onsets


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all threads) from /proc; None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(stream: Path, onsets: list[float], broker: Broker, setting: str, yamnet: str | None) -> dict:
    """One real-time run; returns CPU % of one core and the latency of each detected onset."""
    topic = "audio2mqtt/bench/event"
    subscriber = Subscriber(broker.port, [topic])
    argv = [sys.executable, str(PROJECT_DIR / "listen.py"), "--file", str(stream), "--realtime",
            "--classes", "Beep, bleep", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
            "--device-name", "bench", *shlex.split(setting)] + (["--yamnet", yamnet] if yamnet else [])
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
    for line in process.stderr:
        if line.startswith("listening to"):
            break
        if line.startswith("error"):
            raise SystemExit(line.strip())
    started, cpu_start = time.time(), cpu_seconds(process.pid)
    last = (started, cpu_start)
    while process.poll() is None:
        cpu = cpu_seconds(process.pid)
        if cpu is not None:
            last = (time.time(), cpu)
        time.sleep(0.2)
    time.sleep(0.5)  # let the last messages arrive
    subscriber.close()
    starts = [arrived - started for arrived, (_, payload, _) in zip(subscriber.arrival_times, subscriber.messages)
              if '"event": "start"' in payload]
    latencies = []
    for onset in onsets:  # the first start event after each onset (within one beep period)
        after = [t - onset for t in starts if onset <= t < onset + BEEP_EVERY_SECONDS]
        if after:
            latencies.append(min(after))
    return {"cpu": 100 * (last[1] - cpu_start) / max(1e-9, last[0] - started), "latencies": latencies}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test stream")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                        help='listen.py options per run ("" = defaults)')
    parser.add_argument("--yamnet", metavar="HANDLE", default=None, help="YAMNet to use (default: bundled)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/stat").is_file():
        parser.error("needs Linux /proc to read CPU time")

    waveform, onsets = beep_stream(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        stream = write_wav(Path(tmp) / "beeps.wav", waveform)
        broker = Broker(Path(tmp) / "broker").start()
        try:
            print(f"{len(onsets)} beeps in {args.seconds:g} s of noise, played in real time; {os.cpu_count()} CPU(s)\n")
            print(f"| {'listen.py options':<22} | CPU % of one core | onset→publish mean | max    | beeps found |")
            print(f"|{'-' * 24}|------------------:|-------------------:|-------:|------------:|")
            for setting in args.settings:
                result = run_once(stream, onsets, broker, setting, args.yamnet)
                lat = result["latencies"]
                mean = f"{np.mean(lat):.2f} s" if lat else "-"
                worst = f"{np.max(lat):.2f} s" if lat else "-"
                print(f"| {setting or '(defaults)':<22} | {result['cpu']:17.1f} | {mean:>18} | {worst:>6} | "
                      f"{f'{len(lat)} of {len(onsets)}':>11} |", flush=True)
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
