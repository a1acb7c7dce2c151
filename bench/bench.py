"""Speed, measured in one run on this machine: cold start, embedding throughput, training time, peak RSS.

    python bench/bench.py            # ~6-8 min on 2 cores; prints one table

Every row is its own subprocess, timed from fork to exit, with the peak RSS of that process
(GNU time). Inputs are made from FSDD (../shared/data/fsdd) in a temporary folder: a 1 s clip
at 16 kHz and one at FSDD's native 8 kHz (needs resampling), 100 x 1 s clips, one 60 s clip,
and a training tree of 10 digits x 20 clips. The caches (YAMNet .tflite, embeddings) live in
that folder too, so the first train.py run starts from nothing, as on a new machine; the
model main.py classifies with is the one that run wrote. Embedding throughput excludes
decoding (clips are decoded before the clock starts) and is the best of --repeats passes, except
the end-to-end rows, which time `dataset.embed_files` as train.py calls it (decoding, resampling,
levelling, time-shifted views). × real time = audio seconds / wall seconds. Other jobs on the
machine make absolute numbers noisy: compare rows.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from params import CLIP, PROJECT_DIR, SAMPLE_RATE  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_FSDD = Path(os.environ.get("AUDIO2MQTT_FSDD", PROJECT_DIR.parent / "shared" / "data" / "fsdd"))
TRAIN_CLASSES = 10           # FSDD digits 0..9
TRAIN_CLIPS_PER_CLASS = 20
FSDD_SAMPLE_RATE = 8000      # Hz, FSDD's own rate
LONG_CLIP_SECONDS = 60
TIME_COMMAND = "/usr/bin/time"  # GNU time: peak RSS of one command
THROUGHPUT_ROUNDS = 2        # each embedding worker runs this often, interleaved; the best round counts


def level_text() -> str:
    return "levels as recorded" if CLIP.level_dbfs is None else f"{CLIP.level_dbfs:g} dBFS"


def run_measured(command: list[str], env: dict | None = None) -> dict:
    """Run a command to completion: wall seconds, peak RSS (MB), exit code, stdout, stderr."""
    # The peak RSS comes from /usr/bin/time: a child's own ru_maxrss also counts the copy of this
    # (bigger) process it was forked from, before exec.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        timer = [TIME_COMMAND, "-f", "%M", "-o", rss_file.name] if Path(TIME_COMMAND).is_file() else []
        start = time.perf_counter()
        code = subprocess.run(timer + command, stdout=out, stderr=err, cwd=PROJECT_DIR, env=env).returncode
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        rss_kb = rss_file.read().strip().splitlines()[-1:] if timer else []
        result = {"seconds": seconds, "rss_mb": int(rss_kb[0]) / 1024 if rss_kb and rss_kb[0].isdigit() else "",
                  "code": code, "stdout": out.read().decode(errors="replace"),
                  "stderr": err.read().decode(errors="replace")}
    if result["code"] != 0:
        tail = "\n".join(result["stderr"].strip().splitlines()[-5:])
        raise SystemExit(f"error: {' '.join(command)} exited with {result['code']}:\n{tail}")
    return result


def best_of(command: list[str], repeats: int, env: dict | None = None) -> dict:
    """The fastest of `repeats` runs (the others were slowed by something else on the machine)."""
    return min((run_measured(command, env) for _ in range(repeats)), key=lambda r: r["seconds"])


def make_inputs(fsdd: Path, folder: Path, clips: int) -> dict:
    """Write the benchmark's audio into `folder`; returns their paths."""
    import soundfile

    from audio_util import load_audio_16k_mono

    files = sorted(fsdd.glob("*.wav"))
    if len(files) < TRAIN_CLASSES * TRAIN_CLIPS_PER_CLASS:
        raise SystemExit(f"error: FSDD not found at {fsdd}: pass --fsdd or set AUDIO2MQTT_FSDD")
    rng = np.random.default_rng(0)
    speech = np.concatenate([load_audio_16k_mono(path) for path in rng.choice(files, 150, replace=False)])
    paths = {"clip_16k": folder / "clip_1s_16k.wav", "clip_8k": folder / "clip_1s_8k.wav",
             "clips": folder / "clips", "long": folder / "long_60s.wav", "train": folder / "train"}
    soundfile.write(str(paths["clip_16k"]), speech[:SAMPLE_RATE], SAMPLE_RATE, subtype="PCM_16")
    soundfile.write(str(paths["clip_8k"]), speech[:SAMPLE_RATE:SAMPLE_RATE // FSDD_SAMPLE_RATE],
                    FSDD_SAMPLE_RATE, subtype="PCM_16")
    paths["clips"].mkdir()
    for i in range(clips):
        start = (i * SAMPLE_RATE) % (len(speech) - SAMPLE_RATE)
        soundfile.write(str(paths["clips"] / f"clip{i:03d}.wav"), speech[start:start + SAMPLE_RATE], SAMPLE_RATE,
                        subtype="PCM_16")
    soundfile.write(str(paths["long"]), np.resize(speech, LONG_CLIP_SECONDS * SAMPLE_RATE), SAMPLE_RATE,
                    subtype="PCM_16")
    for digit in range(TRAIN_CLASSES):
        class_dir = paths["train"] / str(digit)
        class_dir.mkdir(parents=True)
        for path in sorted(fsdd.glob(f"{digit}_*.wav"))[:TRAIN_CLIPS_PER_CLASS]:
            (class_dir / path.name).symlink_to(path)
    return paths


# --- Workers: each runs in its own subprocess, prints one JSON line ---------------------------

def embed_worker(backend: str, threads: int, clips_dir: Path, long_clip: Path, repeats: int,
                 tflite_cache: Path, files_dir: Path | None) -> dict:
    """Embedding throughput of one backend: tf, lite-run or lite-many."""
    from audio_util import load_audio_16k_mono
    from yamnet_classifier import load_yamnet, resolve_yamnet_handle

    start = time.perf_counter()
    handle = resolve_yamnet_handle(None)
    if backend == "tf":
        yamnet = load_yamnet(handle)
    else:
        from tflite_backend import lite_yamnet_for
        yamnet = lite_yamnet_for(handle, tflite_cache, build=False, num_threads=threads)
    loaded = time.perf_counter() - start
    clips = [load_audio_16k_mono(path) for path in sorted(clips_dir.glob("*.wav"))]
    long = load_audio_16k_mono(long_clip)

    def embed(waveforms):
        if backend == "lite-many":
            return yamnet.embed_many(waveforms)
        return [yamnet.run(waveform)[1] for waveform in waveforms]

    embed(clips[:2])  # warm up: first calls allocate and plan

    def best_seconds(waveforms):
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            embed(waveforms)
            times.append(time.perf_counter() - tick)
        return min(times)

    clips_audio = sum(len(c) for c in clips) / SAMPLE_RATE
    result = {"load_s": loaded, "clips_x_rt": clips_audio / best_seconds(clips),
              "long_x_rt": len(long) / SAMPLE_RATE / best_seconds([long])}
    if files_dir is not None:  # end to end, as train.py: decode, resample, level, views, embed
        import soundfile

        from dataset import embed_files

        files = sorted(files_dir.rglob("*.wav"))
        audio = sum(soundfile.info(str(path)).duration for path in files)
        load_audio_16k_mono(files[0])  # resampy's import and JIT (~0.7 s) once, outside the clock
        tick = time.perf_counter()
        embedded = embed_files(files, yamnet, None, progress=False, views=CLIP.views, level_dbfs=CLIP.level_dbfs)
        result["files_x_rt"] = audio / (time.perf_counter() - tick)
        result["files"] = embedded.computed
    return result


def worker_main(args) -> int:
    result = embed_worker(args.worker, args.threads, args.clips_dir, args.long_clip, args.repeats,
                          args.tflite_cache, args.files_dir)
    print(json.dumps(result))
    return 0


# --- The table ------------------------------------------------------------------------------------

def python(*arguments) -> list[str]:
    return [sys.executable, *map(str, arguments)]


def worker(args, paths: dict, tflite_cache: Path, name: str, threads: int | None = None,
           end_to_end: bool = True) -> dict:
    """Run one embedding worker in its own process: its JSON result, wall seconds and peak RSS.
    end_to_end: also time dataset.embed_files over the training tree."""
    command = python(Path(__file__), "--worker", name, "--tflite-cache", tflite_cache,
                     "--clips-dir", paths["clips"], "--long-clip", paths["long"], "--repeats", args.repeats,
                     "--threads", threads or args.threads)
    if end_to_end:
        command += ["--files-dir", paths["train"]]
    run = run_measured(command)
    return {**json.loads(run["stdout"].strip().splitlines()[-1]), "seconds": run["seconds"], "rss_mb": run["rss_mb"]}


def measure_training(folder: Path, paths: dict, env: dict) -> tuple[list[tuple], Path]:
    """train.py rows, each run a fresh process; returns them and the model folder of the first run.

    Run order matters: the first run finds no YAMNet .tflite in the cache and builds it (what a
    new user waits for once); the later from-scratch runs get an empty embedding cache but a warm
    .tflite cache; the from-cache runs reuse the first run's embeddings."""
    size = f"{TRAIN_CLASSES}x{TRAIN_CLIPS_PER_CLASS} clips"
    runs = (  # (label, embedding cache: the "shared" one the first run fills, or a "fresh" empty one, flags, note)
        ("from scratch, first run", "shared", [], "empty embedding cache; yamnet.tflite cache cold: built in this run"),
        ("from scratch", "fresh", [], "empty embedding cache; yamnet.tflite cache warm"),
        ("from scratch, --no-tflite", "fresh", ["--no-tflite"], "empty embedding cache; yamnet.tflite cache warm"),
        ("from cache", "shared", [], "all embeddings cached; writes classifier.tflite"),
        ("from cache, --no-tflite", "shared", ["--no-tflite"], "all embeddings cached; no TFLite export"),
    )
    rows = []
    for number, (label, cache, flags, note) in enumerate(runs):
        cache_dir = folder / ("embedding_cache" if cache == "shared" else f"embedding_cache_{number}")
        train = python("train.py", paths["train"], folder / f"model_{number}", "--cache-dir", cache_dir, "--quiet",
                       *flags)
        run = run_measured(train, env)
        rows.append((f"train.py {size}, {label}", run["seconds"], "", run["rss_mb"],
                     f"{note}; views {CLIP.views}, {level_text()}"))
    return rows, folder / "model_0"


def measure(args, folder: Path) -> list[tuple]:
    """All rows of the table: (what, seconds, × real time or '', peak RSS MB, note)."""
    rows = []
    print(f"making inputs in {folder} ...", file=sys.stderr)
    paths = make_inputs(args.fsdd, folder, args.clips)
    # train.py and main.py keep the YAMNet .tflite under $XDG_CACHE_HOME: fresh, inside `folder`.
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "xdg_cache")}
    tflite_cache = folder / "xdg_cache" / "audio2mqtt" / "tflite"

    print("training: from scratch, then from the embedding cache ...", file=sys.stderr)
    train_rows, model_dir = measure_training(folder, paths, env)
    rows += train_rows

    print("cold starts ...", file=sys.stderr)
    for clip_name, clip_label in (("clip_16k", "1 s clip, 16 kHz"), ("clip_8k", "1 s clip, 8 kHz")):
        clip = paths[clip_name]
        seed = best_of(python(BENCH_DIR / "seed_baseline.py", clip, "--models", model_dir), args.repeats, env)
        fast = best_of(python("main.py", clip, "--custom", "--models", model_dir), args.repeats, env)
        rows.append((f"cold start, seed pipeline, {clip_label}", seed["seconds"], "", seed["rss_mb"],
                     "bench/seed_baseline.py: TF import + hub.load + Keras load + predict"))
        rows.append((f"cold start, main.py clip.wav --custom, {clip_label}", fast["seconds"], "", fast["rss_mb"],
                     f"classifier.tflite, no TensorFlow; {seed['seconds'] / fast['seconds']:.1f}x faster than "
                     f"the seed; {CLIP.views} views"))
    clip = paths["clip_16k"]
    base = best_of(python("main.py", clip), args.repeats, env)
    rows.append(("cold start, main.py clip.wav (AudioSet classes), 1 s clip, 16 kHz", base["seconds"], "",
                 base["rss_mb"], "cached yamnet.tflite, no TensorFlow"))
    forced = best_of(python("main.py", clip, "--custom", "--models", model_dir, "--backend", "tf"), args.repeats, env)
    rows.append(("cold start, main.py clip.wav --custom --backend tf, 1 s clip, 16 kHz", forced["seconds"], "",
                 forced["rss_mb"], "TF import + hub.load + Keras load"))

    print("embedding throughput ...", file=sys.stderr)
    backends = (  # (worker, label, threads, time embed_files too)
        ("tf", "TF Yamnet.run loop", None, True), ("lite-run", "LiteYamnet.run loop", None, False),
        ("lite-many", "LiteYamnet.embed_many", None, True), ("lite-many", "LiteYamnet.embed_many", 1, True))
    best = {}
    for _round in range(THROUGHPUT_ROUNDS):  # interleaved, so a busy spell hits every backend alike
        for backend in backends:
            name, _label, threads, end_to_end = backend
            result = worker(args, paths, tflite_cache, name, threads, end_to_end)
            for key in ("clips_x_rt", "long_x_rt", "files_x_rt"):
                if key in result:
                    best.setdefault(backend, {})[key] = max(best.get(backend, {}).get(key, 0), result[key])
            best[backend].update(load_s=result["load_s"], rss_mb=result["rss_mb"], files=result.get("files"))
    for backend, result in best.items():
        name, label, threads, end_to_end = backend
        note = f"{threads or args.threads} thread(s)" if name != "tf" else "TF's own thread pools"
        rows.append((f"embed {args.clips} x 1 s clips: {label}", args.clips / result["clips_x_rt"],
                     result["clips_x_rt"], result["rss_mb"], f"{note}; model load {result['load_s']:.2f} s"))
        rows.append((f"embed one {LONG_CLIP_SECONDS} s clip: {label}", LONG_CLIP_SECONDS / result["long_x_rt"],
                     result["long_x_rt"], "", note))
    for backend, result in best.items():
        name, label, threads, end_to_end = backend
        if not end_to_end:
            continue
        note = f"{threads or args.threads} thread(s)" if name != "tf" else "TF's own thread pools"
        how = "embed_many over each clip's views" if name != "tf" else "Yamnet.run per view"
        rows.append((f"dataset.embed_files, {result['files']} FSDD files (8 kHz) as train.py: "
                     f"{'TF Yamnet' if name == 'tf' else 'LiteYamnet'}", "", result["files_x_rt"], "",
                     f"{note}; decode + resample + {level_text()} + {CLIP.views} views, {how}; "
                     f"× real time of the files' own audio"))
    return rows


def format_table(rows: list[tuple]) -> str:
    """A Markdown table, ready for docs/performance.md#speed."""
    lines = ["| measurement | seconds | × real time | peak RSS MB | note |", "|---|---:|---:|---:|---|"]
    for what, seconds, realtime, rss, note in rows:
        realtime = f"{realtime:.0f}×" if realtime != "" else ""
        rss = f"{rss:.0f}" if rss != "" else ""
        seconds = f"{seconds:.2f}" if seconds != "" else ""
        lines.append(f"| {what} | {seconds} | {realtime} | {rss} | {note} |")
    return "\n".join(lines)


def machine_line() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").is_file() else "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark cold start, embedding throughput, training and memory.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--fsdd", type=Path, default=DEFAULT_FSDD, help="FSDD recordings folder")
    parser.add_argument("--clips", type=int, default=100, help="how many 1 s clips to embed")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the fastest is kept")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="TFLite interpreter threads")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="work in DIR and keep it (default: a temporary folder, removed)")
    parser.add_argument("--worker", choices=("tf", "lite-run", "lite-many"), default=None,
                        help="internal: run one measurement in this process and print JSON")
    parser.add_argument("--tflite-cache", type=Path, help="internal, with --worker: YAMNet .tflite cache folder")
    parser.add_argument("--clips-dir", type=Path, help="internal, with --worker: folder of 1 s clips")
    parser.add_argument("--long-clip", type=Path, help="internal, with --worker: the 60 s clip")
    parser.add_argument("--files-dir", type=Path, help="internal, with --worker: files to embed as train.py does")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--clips, --repeats and --threads must be at least 1")
    if args.worker:
        return worker_main(args)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="audio2mqtt_bench_"))
    if args.keep:
        if args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep} must be a new or empty folder")
        args.keep.mkdir(parents=True, exist_ok=True)
    try:
        rows = measure(args, folder.resolve())
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine_line()}; "
          f"load average {os.getloadavg()[0]:.1f} at the end (other jobs share the machine).")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
