"""Audio I/O and pure numpy helpers; no TensorFlow here.

`load_audio_16k_mono` is the one loading function: any file libsndfile reads becomes
mono float32 at 16 kHz in [-1, 1]. Everything else is pure maths or folder walking.

CLI:  python audio_util.py convert in/ out/
      python audio_util.py background kitchen.wav training/background/ [--synthetic 20]
"""

import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np

from atomic_write import atomic_output
from params import AUDIO_EXTENSIONS, SAMPLE_RATE, YAMNET


# Trimming a recording (record.py): 10 ms frames quieter than the loudest one by more than
# SILENCE_BELOW_PEAK_DB are silence at either end; TRIM_MARGIN_SECONDS of it is kept around the sound.
TRIM_FRAME_SECONDS = 0.01
SILENCE_BELOW_PEAK_DB = 40.0
TRIM_MARGIN_SECONDS = 0.05
SILENT_RECORDING_DBFS = -60.0  # a recording whose loudest frame is below this heard nothing


class AudioError(Exception):
    """A file that cannot be used as audio; the message is one actionable line."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the empty ones ('default: None')."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False, []) else super()._get_help_string(action)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (or its type name): libraries' errors can be long."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def to_stderr(message: str) -> None:
    """The default `log=` of library code: warnings and progress go to stderr, answers to stdout."""
    print(message, file=sys.stderr, flush=True)


def load_audio_16k_mono(path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read any libsndfile-readable file as mono float32 at `sr` Hz in [-1, 1], shape (n,)."""
    import soundfile  # imported here so pure helpers stay importable without libsndfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        data, file_sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError) as e:
        why = first_line(e)
        if "does not exist" in why:  # libsndfile's word for an MP3 it cannot decode; the file is there
            why = "its contents are not audio of that format"
        raise AudioError(f"{path}: not a readable audio file ({why})") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    waveform = resample(to_mono(data), file_sr, sr)
    del data  # before sanitizing: peak memory is then two copies of the audio, not four
    return sanitize(waveform, copy=False)


def iter_loaded_audio(paths, read_ahead: int = 4):
    """Yield (path, waveform or AudioError) in order, decoding up to `read_ahead` files in a
    background thread so decoding and resampling overlap with the caller's inference."""
    from concurrent.futures import ThreadPoolExecutor

    def load(path):
        try:
            return load_audio_16k_mono(path)
        except AudioError as e:
            return e

    paths = list(paths)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(load, p) for p in paths[:read_ahead]]
        for i, path in enumerate(paths):
            if i + read_ahead < len(paths):
                pending.append(pool.submit(load, paths[i + read_ahead]))
            yield path, pending[i].result()
            pending[i] = None  # drop the waveform once handed over


def detach_closed_stdout() -> None:
    """After a BrokenPipeError (e.g. `| head` quit early): point stdout at /dev/null so the
    interpreter's final flush does not print a second traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def quiet_broken_pipe(main):
    """Wraps a CLI's main(argv): a reader that went away (`| head`) ends it with exit 1, not a traceback."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except BrokenPipeError:
            detach_closed_stdout()
            return 1
    return wrapped


def to_mono(data: np.ndarray) -> np.ndarray:
    """(n, channels) or (n,) -> (n,) float32, averaging channels."""
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with resampy (what YAMNet's own inference uses)."""
    if sr_in == sr_out:
        return waveform.astype(np.float32, copy=False)
    import resampy  # its numba import costs ~1 s; only pay it when a file needs resampling

    return resampy.resample(waveform, sr_in, sr_out, axis=-1).astype(np.float32, copy=False)


def sanitize(waveform: np.ndarray, copy: bool = True) -> np.ndarray:
    """Replace NaN/inf with 0 and clip to [-1, 1]: float files may hold anything. With `copy` False, a
    float32 `waveform` is changed in place (an hour of audio is 230 MB; copies add up)."""
    waveform = np.nan_to_num(waveform.astype(np.float32, copy=copy), copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(waveform, -1.0, 1.0, out=waveform)


def pad_to_length(waveform: np.ndarray, min_samples: int) -> np.ndarray:
    """Zero-pad at the end to at least `min_samples`; longer input is returned unchanged."""
    if len(waveform) >= min_samples:
        return waveform
    return np.pad(waveform, (0, min_samples - len(waveform)))


def rms_dbfs(waveform: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale; -inf for digital silence."""
    if len(waveform) == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def trim_silence(waveform: np.ndarray, sr: int = SAMPLE_RATE, below_peak_db: float = SILENCE_BELOW_PEAK_DB,
                 margin_s: float = TRIM_MARGIN_SECONDS, frame_s: float = TRIM_FRAME_SECONDS) -> tuple[int, int]:
    """(first, end) sample of `waveform` without its leading and trailing silence: frames more than
    `below_peak_db` under the loudest frame, less a margin of `margin_s` kept on each side. (0, 0) if empty."""
    frame = max(1, round(frame_s * sr))
    count = len(waveform) // frame
    if count == 0:
        return 0, len(waveform)
    frames = np.asarray(waveform[:count * frame], dtype=np.float64).reshape(count, frame)
    power = np.mean(frames ** 2, axis=1)
    if power.max() == 0:
        return 0, 0
    loud = np.flatnonzero(power >= power.max() * 10 ** (-below_peak_db / 10))
    margin = round(margin_s * sr)
    return max(0, loud[0] * frame - margin), min(len(waveform), (loud[-1] + 1) * frame + margin)


def is_audio_path(path) -> bool:
    """True for a visible file whose extension libsndfile can read."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in AUDIO_EXTENSIONS


def walk_audio_files(root) -> tuple[list[Path], list[Path]]:
    """Audio files under `root` (sorted) and the visible non-audio files that were passed over.

    Hidden files and folders (names starting with '.') are skipped silently.
    """
    root = Path(root)
    if root.is_file():
        return ([root], []) if is_audio_path(root) else ([], [root])
    audio, other = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            (audio if is_audio_path(path) else other).append(path)
    return audio, other


def audio_inputs(sources) -> tuple[list[Path], list[str]]:
    """The audio files of the files and folders given on a command line, and one message for each
    source that gave none ("x: no such file or folder")."""
    files, problems = [], []
    for source in sources:
        found, _non_audio = walk_audio_files(source)
        if not found:
            problems.append(f"{source}: {'no audio files here' if Path(source).exists() else 'no such file or folder'}")
        files += found
    return files, problems


def write_wav_atomic(path, waveform: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV to a temporary name beside `path`, then rename over it."""
    import soundfile

    with atomic_output(path) as tmp:
        soundfile.write(str(tmp), waveform, sr, subtype="PCM_16", format="WAV")


def _is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def convert_tree(in_path: Path, out_path: Path, single_target: Path | None = None, log=print):
    """Mirror `in_path` as 16 kHz mono 16-bit WAV under `out_path` (or write `single_target`).

    Returns (number converted, [(bad file, reason)], [non-audio files passed over]).
    """
    audio_files, non_audio = walk_audio_files(in_path)
    converted, failed, taken = 0, [], set()
    for source in audio_files:
        relative = Path(source.name) if in_path.is_file() else source.relative_to(in_path)
        target = single_target or out_path / relative.with_suffix(".wav")
        if target in taken:  # song.flac and song.wav in one folder: keep both
            target = out_path / relative.parent / (relative.name + ".wav")
        taken.add(target)
        # Inputs are never written: not the file itself, nor any file in the input folder.
        if target.resolve() == source.resolve() or in_path.is_dir() and _is_inside(target, in_path):
            failed.append((source, "output would overwrite an input"))
            log(f"skipped {source}: its output {target} would overwrite an input", file=sys.stderr)
            continue
        try:
            write_wav_atomic(target, load_audio_16k_mono(source))
        except AudioError as e:
            failed.append((source, str(e)))
            log(f"skipped {e}", file=sys.stderr)
            continue
        except OSError as e:
            failed.append((source, f"cannot write {target}: {e.strerror or e}"))
            log(f"skipped {source}: cannot write {target} ({e.strerror or e})", file=sys.stderr)
            continue
        converted += 1
    return converted, failed, non_audio


def cut_into_clips(waveform: np.ndarray, clip_samples: int) -> list[np.ndarray]:
    """Consecutive clips of `clip_samples`; a last piece shorter than half a clip is dropped."""
    clips = [waveform[i:i + clip_samples] for i in range(0, len(waveform), clip_samples)]
    return [clip for clip in clips if len(clip) * 2 >= clip_samples]


def synthetic_background(count: int, clip_samples: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """`count` clips of white, pink and brown noise and near-silence at varied levels, as (name, clip).

    Levels are drawn from -50..-15 dBFS (noise) and -75..-60 dBFS (near-silence), so the model
    sees quiet rooms as well as hiss and hum-like rumble.
    """
    from augment import NOISE_COLORS, apply_gain, colored_noise, rms

    rng = np.random.default_rng(seed)
    kinds = (*NOISE_COLORS, "silence")
    clips = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        noise = colored_noise(clip_samples, "white" if kind == "silence" else kind, rng)
        low, high = (-75.0, -60.0) if kind == "silence" else (-50.0, -15.0)
        target_dbfs = rng.uniform(low, high)
        clip = apply_gain(noise, target_dbfs - 20.0 * np.log10(max(rms(noise), 1e-12)))
        clips.append((f"synthetic_{kind}_{i:03d}", clip))
    return clips


def _background_command(args, parser) -> int:
    out_dir = Path(args.output)
    if not args.inputs and not args.synthetic:
        parser.error("give ambient recordings to cut, or --synthetic N, or both")
    if args.seconds < YAMNET.patch_window_seconds:
        parser.error(f"--seconds must be at least {YAMNET.patch_window_seconds} (one YAMNet window)")
    for source in args.inputs:
        if Path(source).is_dir() and _is_inside(out_dir, Path(source)):
            parser.error(f"output {out_dir} is inside input {source}; choose a folder outside it")
    clip_samples = round(args.seconds * SAMPLE_RATE)
    written, failed, stems_used = 0, 0, set()
    audio_files, problems = audio_inputs(args.inputs)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    failed += len(problems)
    for path, waveform in iter_loaded_audio(audio_files):
        if isinstance(waveform, AudioError):
            print(f"skipped {waveform}", file=sys.stderr)
            failed += 1
            continue
        stem = path.stem
        while stem in stems_used:  # day1/rec.wav and day2/rec.wav: keep both
            stem += "_"
        stems_used.add(stem)
        for i, clip in enumerate(cut_into_clips(waveform, clip_samples)):
            write_wav_atomic(out_dir / f"{stem}_bg{i:04d}.wav", clip)
            written += 1
    for name, clip in synthetic_background(args.synthetic, clip_samples, args.seed):
        write_wav_atomic(out_dir / f"{name}.wav", clip)
        written += 1
    summary = f"wrote {written} background clip(s) of {args.seconds:g} s to {out_dir}"
    if failed:
        summary += f"; {failed} input(s) failed and were skipped"
    print(summary)
    return 1 if failed else 0


def _convert_command(args, parser) -> int:
    in_path, out_path = Path(args.input), Path(args.output)
    if not in_path.exists():
        parser.error(f"input {in_path} does not exist")
    if in_path.is_dir() and _is_inside(out_path, in_path):
        parser.error(f"output {out_path} is inside input {in_path}; choose a folder outside it (inputs are never written to)")
    # One file may go to a named .wav instead of into a folder.
    single_target = out_path if in_path.is_file() and out_path.suffix.lower() == ".wav" else None
    converted, failed, non_audio = convert_tree(in_path, out_path, single_target)
    summary = f"converted {converted} file(s) to 16 kHz mono WAV in {out_path}"
    if failed:
        summary += f"; {len(failed)} file(s) failed and were skipped"
    if non_audio:
        summary += f"; {len(non_audio)} non-audio file(s) ignored"
    print(summary)
    return 1 if failed or not converted else 0  # nothing converted (e.g. a named file that is not audio) is a failure


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Audio utilities for audio2mqtt.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert",
        help="convert a file or a folder tree to 16 kHz mono 16-bit WAV",
        description="Convert audio to 16 kHz mono 16-bit WAV, mirroring the folder tree. "
        "Inputs are never modified; unreadable files are listed and skipped.",
    )
    convert.add_argument("input", help="an audio file or a folder of audio files")
    convert.add_argument("output", help="output folder (or a .wav name when the input is one file)")
    background = commands.add_parser(
        "background",
        help="make background clips: cut long ambient recordings, and/or generate noise and near-silence",
        description="Fill a background class: cut long recordings of your room (a kitchen, a TV evening, "
        "game music) into clips, and/or generate white/pink/brown noise and near-silence at varied levels. "
        "Example: python audio_util.py background kitchen.wav training/background/ --synthetic 20",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    background.add_argument("inputs", nargs="*", help="ambient recordings (files or folders) to cut into clips")
    background.add_argument("output", help="folder to write the clips to, e.g. training/background/")
    background.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    background.add_argument("--synthetic", type=int, default=0, metavar="N",
                            help="also generate N clips of noise and near-silence")
    background.add_argument("--seed", type=int, default=0, help="seed for the synthetic clips")
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            return _convert_command(args, convert)
        return _background_command(args, background)
    except OSError as e:  # an output folder that cannot be made or written
        print(f"error: cannot write {e.filename or args.output}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
