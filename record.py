"""Record a sound from a microphone or loopback device to a 16 kHz mono WAV, silence at both ends trimmed.

CLI:  python record.py sounds/doorbell/ring.wav --seconds 10 [--device USB] [--no-trim]
"""

import argparse
import sys
from pathlib import Path

from audio_source import SourceError, record
from audio_util import (SILENT_RECORDING_DBFS, TRIM_FRAME_SECONDS, HelpFormatter, rms_dbfs, trim_silence,
                        write_wav_atomic)
from params import SAMPLE_RATE



def loudest_frame_dbfs(waveform) -> float:
    """The level of the loudest 10 ms of `waveform` (dBFS; -inf when empty)."""
    frame = round(TRIM_FRAME_SECONDS * SAMPLE_RATE)
    return max((rms_dbfs(waveform[i:i + frame]) for i in range(0, len(waveform), frame)), default=float("-inf"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Record from a sound card input to a 16 kHz mono WAV, trimming leading and trailing silence. "
        "Example: python record.py sounds/doorbell/ring.wav --seconds 10, then python fingerprint.py add sounds/",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("output", help="the .wav file to write")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to record (Ctrl+C stops early)")
    parser.add_argument("--device", metavar="NAME|INDEX", default=None,
                        help="input device: index or part of its name (default: the system's; "
                             "see python listen.py --list-devices)")
    parser.add_argument("--no-trim", action="store_true", help="keep the silence at both ends")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be more than 0")
    if Path(args.output).suffix.lower() != ".wav":
        parser.error("the output must be a .wav file")
    try:
        waveform, name = record(args.device, args.seconds)
    except SourceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    peak_dbfs = loudest_frame_dbfs(waveform)
    if peak_dbfs < SILENT_RECORDING_DBFS:
        print(f"error: {name} gave nothing but silence (loudest 10 ms at {peak_dbfs:.0f} dBFS): check --device "
              f"(python listen.py --list-devices) and the input level; nothing written", file=sys.stderr)
        return 1
    first, end = (0, len(waveform)) if args.no_trim else trim_silence(waveform)
    try:
        write_wav_atomic(args.output, waveform[first:end])
    except OSError as e:  # an output folder that cannot be made or written
        print(f"error: cannot write {e.filename or args.output}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {(end - first) / SAMPLE_RATE:.2f} s of {len(waveform) / SAMPLE_RATE:.2f} s recorded"
          + ("" if args.no_trim else f" (silence trimmed: kept {first / SAMPLE_RATE:.2f}-{end / SAMPLE_RATE:.2f} s)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
