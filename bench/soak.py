"""Soak benchmark (issue 20's targets): a listener left running through broker and input failures.

    python bench/soak.py            # 2 h of audio at 20x real time (~7 min) plus the energy-gate row
    python bench/soak.py --quick    # 20 min of audio (~1.5 min)

Background: real music (../shared/data/music), FSDD speech and generated household noise, with
--sounds exact sounds (generated jingles, registered with fingerprint.py) spliced in. The audio goes to
`listen.py --command` through a feeder program at --speed times real time; the feeder is killed every
15 min of audio (listen.py restarts it, and it resumes where it was) and the Mosquitto broker every 10
min. Counted: every event on the listener's stdout delivered over MQTT (once or more, in order), the
listener alive to the end, its RSS growth per hour of audio, the evidence folder within its limit.
The energy-gate row: CPU of `listen.py --file` on a quiet room (YAMNet) with and without
--min-level-dbfs. Prints one table; run by hand (it needs ../shared and mosquitto).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
sys.path[:0] = [str(PROJECT_DIR), str(PROJECT_DIR / "tests")]

from audio_files import FSDD_DIR, MUSIC_DIR, write_wav  # noqa: E402
from audio_util import load_audio_16k_mono  # noqa: E402
from mosquitto_broker import Broker, Subscriber  # noqa: E402
from params import SAMPLE_RATE  # noqa: E402
from synth_sounds import jingle, mix_at_snr  # noqa: E402

BROKER_EVERY_S = 600.0    # the broker is killed and restarted every 10 min of audio ...
INPUT_EVERY_S = 900.0     # ... and the input command every 15 min
EVIDENCE_MAX_MB = 2.0     # small, so the limit is reached and kept
SOUND_SNR_DB = 3.0
RSS_TARGET_MB_PER_H = 5.0
GATE_DBFS = -50.0

FEEDER = r'''
import os, sys, time
import numpy as np
pcm, state, speed = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = np.load(pcm, mmap_mode="r")
at = int(open(state).read() or 0) if os.path.exists(state) else 0
step = 1600  # 0.1 s
started = time.monotonic()
sent = 0
while at < len(data):
    sys.stdout.buffer.write(np.asarray(data[at:at + step]).tobytes())
    sys.stdout.buffer.flush()
    at += step
    sent += step
    with open(state + ".tmp", "w") as f:
        f.write(str(at))
    os.replace(state + ".tmp", state)
    time.sleep(max(0.0, started + sent / 16000 / speed - time.monotonic()))
open(state + ".done", "w").close()
time.sleep(3600)  # the end of the audio: stay, as a quiet input would, until the bench stops the listener
'''


def background(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Real music and speech with generated household noise, in turns, at everyday levels."""
    music = [load_audio_16k_mono(p) for p in sorted(MUSIC_DIR.glob("*.ogg"))]
    speech = [load_audio_16k_mono(p) for p in sorted(FSDD_DIR.glob("*_theo_*.wav"))[:300]]
    pieces, total = [], 0
    while total < seconds * SAMPLE_RATE:
        kind = rng.integers(3)
        if kind == 0:
            piece = music[rng.integers(len(music))]
        elif kind == 1:
            piece = np.concatenate([speech[i] for i in rng.integers(len(speech), size=20)])
        else:  # a fridge's hum and a room's hiss, 20-60 s
            n = int(rng.uniform(20, 60) * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            piece = 0.02 * np.sin(2 * np.pi * 50 * t) + 0.01 * rng.standard_normal(n)
        piece = np.asarray(piece, np.float32)
        rms = np.sqrt(np.mean(piece ** 2)) or 1.0
        pieces.append(piece * (10 ** (rng.uniform(-30, -20) / 20) / rms))
        total += len(piece)
    return np.concatenate(pieces)[:round(seconds * SAMPLE_RATE)].astype(np.float32)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        return [int(p) for task in Path(f"/proc/{pid}/task").iterdir()
                for p in (task / "children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(hours: float, speed: float, sounds: int, workdir: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    seconds = hours * 3600
    jingles = [jingle(rng, notes=9) for _ in range(4)]
    for k, sound in enumerate(jingles):
        write_wav(workdir / "sounds" / f"jingle{k}" / "take.wav", sound)
    subprocess.run([sys.executable, str(PROJECT_DIR / "fingerprint.py"), "add", str(workdir / "sounds"),
                    "--db", str(workdir / "fp.sqlite")], check=True, capture_output=True)
    stream = background(seconds, rng)
    onsets = np.sort(rng.uniform(5, seconds - 10, sounds))
    onsets = onsets[np.concatenate([[True], np.diff(onsets) > 8])]  # apart, so none hides another
    truth = []
    for k, onset in enumerate(onsets):
        stream = mix_at_snr(stream, jingles[k % 4], round(onset * SAMPLE_RATE), SOUND_SNR_DB)
        truth.append((float(onset), f"jingle{k % 4}"))
    pcm = workdir / "stream.npy"
    np.save(pcm, np.round(np.clip(stream, -1, 1) * 32767).astype("<i2"))
    del stream
    (workdir / "feeder.py").write_text(FEEDER)
    state = workdir / "position"

    broker = Broker(workdir / "broker", persistent=True).start()
    subscriber = Subscriber(broker.port, ["audio2mqtt/soak/event"], client_id="soak-subscriber")
    command = f"{sys.executable} {workdir / 'feeder.py'} {pcm} {state} {speed}"
    listener = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "listen.py"), "--command", command, "--fingerprints", str(workdir / "fp.sqlite"),
         "--stall-seconds", "5", "--evidence", str(workdir / "evidence"), "--evidence-max-mb", str(EVIDENCE_MAX_MB),
         "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--device-name", "soak"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
    lines, errors = [], []
    readers = [threading.Thread(target=lambda s=s, into=into: into.extend(iter(s.readline, "")), daemon=True)
               for s, into in ((listener.stdout, lines), (listener.stderr, errors))]
    for reader in readers:
        reader.start()
    rss, evidence_peak, next_broker, next_input, exited_early = [], 0.0, BROKER_EVERY_S, INPUT_EVERY_S, None
    broker_kills = input_kills = 0
    try:
        while not (workdir / "position.done").exists():
            time.sleep(0.5)
            if listener.poll() is not None:
                exited_early = listener.returncode
                break
            heard_s = int(state.read_text() or 0) / SAMPLE_RATE if state.exists() else 0.0
            if (mb := rss_mb(listener.pid)) is not None:
                rss.append((heard_s, mb))
            evidence_peak = max(evidence_peak, sum(p.stat().st_size for p in (workdir / "evidence").glob("*")) / 1e6
                                if (workdir / "evidence").is_dir() else 0.0)
            if heard_s >= next_broker:
                broker.process.kill()  # SIGKILL: no goodbye; persistence keeps the subscriber's session
                broker.process.wait()
                time.sleep(2.0 / speed * 20)  # away for ~2 s of wall time
                broker.start()
                broker_kills += 1
                next_broker += BROKER_EVERY_S
            if heard_s >= next_input:
                for pid in children(listener.pid):
                    os.kill(pid, signal.SIGKILL)
                input_kills += 1
                next_input += INPUT_EVERY_S
        time.sleep(8)  # the last events and their delivery
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=60)
    finally:
        listener.kill()
        listener.wait()
        for reader in readers:
            reader.join(timeout=10)
    emitted = [json.loads(line) for line in lines if line.startswith("{")]
    got = subscriber.wait_for(lambda m: False, timeout=5)
    subscriber.close()
    broker.stop()
    delivered = []
    for _topic, payload, _retained in got:  # QoS 1: a repeat is allowed; count each once
        event = json.loads(payload)
        if not delivered or delivered[-1] != event:
            if event not in delivered:
                delivered.append(event)
    starts = [e for e in emitted if e["event"] == "start"]
    found = sum(any(e["label"] == label and abs(e["offset_s"] - onset) <= 1.0 for e in starts) for onset, label in truth)
    false_starts = sum(not any(e["label"] == label and abs(e["offset_s"] - onset) <= 1.0 for onset, label in truth)
                       for e in starts for label in [e["label"]])
    warm = [(h, mb) for h, mb in rss if h >= 0.1 * seconds]
    slope = float(np.polyfit([h / 3600 for h, _ in warm], [mb for _, mb in warm], 1)[0]) if len(warm) > 10 else float("nan")
    return {"hours": hours, "sounds": len(truth), "found": found, "false_starts": false_starts,
            "emitted": len(emitted), "delivered_in_order": delivered == emitted, "delivered": len(delivered),
            "exit": exited_early, "sigterm_exit": listener.returncode, "broker_kills": broker_kills,
            "input_kills": input_kills, "restarts_logged": sum("--command" in e and "restarting" in e for e in errors),
            "rss_start_mb": warm[0][1] if warm else float("nan"), "rss_end_mb": warm[-1][1] if warm else float("nan"),
            "rss_mb_per_hour": slope, "evidence_peak_mb": evidence_peak}


def gate_row(workdir: Path, minutes: float, seed: int) -> dict:
    """CPU after start-up of listen.py --file on a quiet room, YAMNet classes, with and without the gate."""
    rng = np.random.default_rng(seed)
    quiet = (10 ** (-58 / 20) * rng.standard_normal(round(minutes * 60 * SAMPLE_RATE))).astype(np.float32)
    robin = load_audio_16k_mono(MUSIC_DIR / "456440__inspectorj__bird-whistling-robin-single-13.ogg")
    for at_s in np.linspace(20, minutes * 60 - 20, 4):
        at = round(at_s * SAMPLE_RATE)
        quiet[at:at + len(robin)] += 0.3 * robin / np.abs(robin).max()
    room, one = workdir / "quiet_room.wav", workdir / "one_second.wav"
    write_wav(room, quiet)
    write_wav(one, quiet[:SAMPLE_RATE])

    def cpu(path: Path, gate: list[str]) -> tuple[float, int]:
        before = os.times()
        out = subprocess.run([sys.executable, str(PROJECT_DIR / "listen.py"), "--file", str(path), "--classes", "Bird",
                              *gate], capture_output=True, text=True, cwd=PROJECT_DIR)
        after = os.times()
        return after.children_user + after.children_system - before.children_user - before.children_system, \
            out.stdout.count('"start"')

    startup = min(cpu(one, [])[0] for _ in range(2))
    plain, plain_events = cpu(room, [])
    gated, gated_events = cpu(room, ["--min-level-dbfs", str(GATE_DBFS)])
    return {"minutes": minutes, "cpu_plain_s": plain - startup, "cpu_gated_s": gated - startup,
            "events_plain": plain_events, "events_gated": gated_events}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Soak a listener: broker and input killed, RSS, delivery, the energy gate.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="hours of audio")
    parser.add_argument("--speed", type=float, default=20.0, help="times real time")
    parser.add_argument("--sounds", type=int, default=40, help="exact sounds spliced in")
    parser.add_argument("--quick", action="store_true", help="20 min of audio, 10 sounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.hours, args.sounds = 1 / 3, 10
    if not MUSIC_DIR.is_dir() or not FSDD_DIR.is_dir():
        print(f"error: needs ../shared beside the clone ({MUSIC_DIR}, {FSDD_DIR})", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        started = time.monotonic()
        s = soak(args.hours, args.speed, args.sounds, Path(tmp), args.seed)
        g = gate_row(Path(tmp), 10 if not args.quick else 3, args.seed)
        wall = time.monotonic() - started
    rows = [
        ("events delivered over MQTT, in order", "all", f"{s['delivered']}/{s['emitted']}, in order: {s['delivered_in_order']}",
         s["delivered_in_order"] and s["delivered"] == s["emitted"]),
        ("listener alive to the end", "never exits", "yes" if s["exit"] is None else f"exited {s['exit']}",
         s["exit"] is None),
        ("  broker kills / input kills / restarts logged", "", f"{s['broker_kills']} / {s['input_kills']} / "
         f"{s['restarts_logged']}", None),
        ("  sounds found / false starts", "", f"{s['found']}/{s['sounds']} / {s['false_starts']}", None),
        ("RSS growth per hour of audio", f"<= {RSS_TARGET_MB_PER_H:g} MB", f"{s['rss_mb_per_hour']:.2f} MB "
         f"({s['rss_start_mb']:.0f} -> {s['rss_end_mb']:.0f} MB)", s["rss_mb_per_hour"] <= RSS_TARGET_MB_PER_H),
        ("evidence folder", f"<= {EVIDENCE_MAX_MB:g} MB", f"peak {s['evidence_peak_mb']:.2f} MB",
         s["evidence_peak_mb"] <= EVIDENCE_MAX_MB),
        (f"CPU on {g['minutes']:g} min of a quiet room, gate {GATE_DBFS:g} dBFS", "<= half",
         f"{g['cpu_gated_s']:.2f} s vs {g['cpu_plain_s']:.2f} s (events {g['events_gated']} vs {g['events_plain']})",
         g["cpu_gated_s"] <= 0.5 * g["cpu_plain_s"]),
    ]
    print(f"soak: {s['hours']:g} h of audio at {args.speed:g}x, seed {args.seed}, {wall / 60:.1f} min wall")
    print("| what | target | measured | ok |\n|---|---|---|---|")
    for what, target, measured, ok in rows:
        print(f"| {what} | {target} | {measured} | {'' if ok is None else 'yes' if ok else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
