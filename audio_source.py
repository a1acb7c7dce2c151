"""Live audio sources for listen.py: a sound card (sounddevice/PortAudio), a file played as a
stream, raw PCM on stdin, or raw PCM from a command listen.py runs (and restarts). Each yields
float32 mono 16 kHz chunks of about 0.1 s.

sounddevice is imported only for a device, so files and pipes work without PortAudio.
"""

import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from audio_util import load_audio_16k_mono, sanitize, to_mono, to_stderr
from params import LISTEN, SAMPLE_RATE

# Raw PCM formats on stdin, named as ffmpeg's -f: numpy dtype and the value of full scale.
PCM_FORMATS = {"s16le": ("<i2", 2.0 ** 15), "s32le": ("<i4", 2.0 ** 31), "f32le": ("<f4", 1.0)}

PORTAUDIO_HINT = ("install PortAudio: sudo apt install libportaudio2 (Debian, Ubuntu, Raspberry Pi OS) "
                  "or brew install portaudio (macOS)")


class SourceError(Exception):
    """An audio source that cannot be opened or read; the message is one actionable line."""


@dataclass
class Source:
    """A named stream of 16 kHz mono float32 chunks; `name` goes into every event as `source`."""

    name: str
    chunks: Iterator[np.ndarray]


class StreamResampler:
    """Polyphase resampling of a stream fed in chunks of any size, continuous across chunk boundaries.

    The output equals scipy.signal.resample_poly(whole stream, up, down): the same Kaiser-windowed
    FIR, the same delay, zeros before the start and after `flush`.
    """

    def __init__(self, sr_in: int, sr_out: int = SAMPLE_RATE):
        from scipy.signal import firwin

        g = math.gcd(sr_in, sr_out)
        self.up, self.down = sr_out // g, sr_in // g
        if self.up == self.down:
            return  # same rate: chunks pass through
        max_rate = max(self.up, self.down)
        self.delay = 10 * max_rate  # resample_poly's half filter length, in upsampled samples
        h = firwin(2 * self.delay + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self.taps = -(-len(h) // self.up)  # taps per polyphase branch
        padded = np.zeros(self.taps * self.up)
        padded[:len(h)] = h
        self.branches = padded.reshape(self.taps, self.up).T  # branches[p, t] = h[p + t * up]
        self._buffer = np.zeros(self.taps)  # input from _buffer_start on; zeros before the stream
        self._buffer_start = -self.taps
        self.samples_in = 0
        self.samples_out = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed input samples (n,); return every output sample they complete."""
        if self.up == self.down:
            return np.asarray(samples, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, samples])
        self.samples_in += len(samples)
        # Output n needs input up to (n * down + delay) // up.
        return self._compute((self.up * self.samples_in - 1 - self.delay) // self.down + 1)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining outputs, computed with zeros after the last input."""
        if self.up == self.down:
            return np.zeros(0, dtype=np.float32)
        total = -(-self.samples_in * self.up // self.down)
        self._buffer = np.concatenate([self._buffer, np.zeros(self.taps + self.delay // self.up + 1)])
        return self._compute(total)

    def _compute(self, end: int) -> np.ndarray:
        n = np.arange(self.samples_out, max(end, self.samples_out))
        upsampled = n * self.down + self.delay
        phase, newest = upsampled % self.up, upsampled // self.up
        index = (newest - self._buffer_start)[:, None] - np.arange(self.taps)[None, :]
        out = np.einsum("nt,nt->n", self.branches[phase], self._buffer[index])
        self.samples_out = max(end, self.samples_out)
        keep_from = (self.samples_out * self.down + self.delay) // self.up - (self.taps - 1)
        drop = max(0, keep_from - self._buffer_start)
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return out.astype(np.float32)


def decode_pcm(data: bytes, fmt: str, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM bytes (whole frames) -> mono float32 in [-1, 1], shape (frames,)."""
    dtype, full_scale = PCM_FORMATS[fmt]
    frames = np.frombuffer(data, dtype=dtype).reshape(-1, channels)
    return to_mono(frames.astype(np.float32) / np.float32(full_scale))


def open_pcm(stream, rate: int, channels: int, fmt: str, name: str = "stdin",
             chunk_seconds: float = LISTEN.chunk_seconds) -> Source:
    """Raw PCM from a binary stream (ffmpeg -f s16le -, arecord -t raw) at any rate and channel count."""
    frame_bytes = channels * np.dtype(PCM_FORMATS[fmt][0]).itemsize
    chunk_bytes = frame_bytes * max(1, round(rate * chunk_seconds))
    read = stream.read1 if hasattr(stream, "read1") else stream.read  # read1: hand over what has arrived, don't wait for a full chunk

    def chunks():
        resampler = StreamResampler(rate)
        pending = b""
        while data := read(chunk_bytes):
            data = pending + data
            whole = len(data) - len(data) % frame_bytes
            pending = data[whole:]
            yield sanitize(resampler.process(decode_pcm(data[:whole], fmt, channels)))
        yield sanitize(resampler.flush())
        if pending:
            print(f"warning: {name} ended inside a frame: {len(pending)} trailing byte(s) ignored", file=sys.stderr)

    return Source(name, chunks())


def backoff_delays(first: float = LISTEN.restart_min_seconds, most: float = LISTEN.restart_max_seconds):
    """Waits before each retry: first, doubling up to most."""
    delay = first
    while True:
        yield delay
        delay = min(2 * delay, most)


def keep_trying(attempt, delays, on_failure=lambda error, delay: None):
    """attempt() until it returns instead of raising SourceError, sleeping the next of `delays` between
    tries (on_failure(error, delay) is told first): a source that went away is waited for."""
    while True:
        try:
            return attempt()
        except SourceError as e:
            delay = next(delays)
            on_failure(e, delay)
            time.sleep(delay)


def open_command(argv: list[str], rate: int, channels: int, fmt: str, stall_s: float = LISTEN.stall_seconds,
                 chunk_seconds: float = LISTEN.chunk_seconds, log=to_stderr,
                 restart_s: tuple[float, float] = (LISTEN.restart_min_seconds, LISTEN.restart_max_seconds)) -> Source:
    """Raw PCM from a command's stdout (e.g. ffmpeg -i rtsp://... -f s16le -ac 1 -ar 16000 -), started here
    and restarted with back-off when it exits or stalls (no audio for `stall_s`), as a camera stream
    drops now and then. A command that cannot start at all is a SourceError; the stream never ends."""
    if not argv or shutil.which(argv[0]) is None:  # before any model loads: a typo costs nothing
        raise SourceError(f"--command: {argv[0] if argv else 'nothing'!r} not found: give the program's name or "
                          f"path and its arguments, e.g. \"ffmpeg -i rtsp://camera -f s16le -ac 1 -ar 16000 -\"")
    frame_bytes = channels * np.dtype(PCM_FORMATS[fmt][0]).itemsize
    chunk_bytes = frame_bytes * max(1, round(rate * chunk_seconds))

    def start() -> subprocess.Popen:
        try:  # its own process group, so ending it ends what it started too (sh -c "ffmpeg ... | sox ...")
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise SourceError(f"cannot start --command {argv[0]!r}: {e.strerror}") from e

    def end(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is gone already
            pass
        process.wait()

    def pump(process: subprocess.Popen, blocks: queue.Queue) -> None:  # its own thread: a read may block forever
        while data := process.stdout.read1(chunk_bytes):
            blocks.put(data)
        blocks.put(None)

    def chunks():
        process = start()  # the first start's failure is the user's to fix: an error, not a retry
        delays = backoff_delays(*restart_s)
        try:
            while True:
                started, blocks = time.monotonic(), queue.Queue()
                threading.Thread(target=pump, args=(process, blocks), daemon=True).start()
                resampler, pending = StreamResampler(rate), b""
                while True:
                    try:
                        data = blocks.get(timeout=stall_s)
                    except queue.Empty:
                        why = f"gave no audio for {stall_s:g} s"
                        break
                    if data is None:
                        process.wait()
                        why = f"exited with code {process.returncode}"
                        break
                    data = pending + data
                    whole = len(data) - len(data) % frame_bytes
                    pending = data[whole:]
                    yield sanitize(resampler.process(decode_pcm(data[:whole], fmt, channels)))
                yield sanitize(resampler.flush())
                end(process)
                if time.monotonic() - started > restart_s[1]:
                    delays = backoff_delays(*restart_s)  # it ran a good while: start the back-off afresh
                delay = next(delays)
                log(f"warning: --command {why}; restarting it in {delay:g} s")
                time.sleep(delay)
                process = keep_trying(start, delays, lambda e, wait: log(f"warning: {e}; trying again in {wait:g} s"))
        finally:
            end(process)  # Ctrl+C, SIGTERM or an error downstream: the command goes with us

    return Source(f"command:{Path(argv[0]).name}", chunks())


def open_file(path, realtime: bool = False, chunk_seconds: float = LISTEN.chunk_seconds) -> Source:
    """A file read as a stream: as fast as possible, or paced like a live source with `realtime`."""
    waveform = load_audio_16k_mono(path)  # AudioError for a missing or unreadable file
    step = max(1, round(SAMPLE_RATE * chunk_seconds))

    def chunks():
        started = time.monotonic()
        for start in range(0, len(waveform), step):
            chunk = waveform[start:start + step]
            if realtime:  # a live source hands over a block once its last sample has been heard
                time.sleep(max(0.0, started + (start + len(chunk)) / SAMPLE_RATE - time.monotonic()))
            yield chunk

    return Source(str(path), chunks())


def import_sounddevice():
    """sounddevice, or a SourceError saying how to install what is missing."""
    try:
        import sounddevice
    except ImportError as e:
        raise SourceError("sounddevice is not installed: pip install sounddevice") from e
    except OSError as e:  # sounddevice raises OSError when libportaudio is missing
        raise SourceError(f"PortAudio not found ({e}): {PORTAUDIO_HINT}") from e
    return sounddevice


def list_input_devices() -> list[str]:
    """One line per input device: 'index: name (channels, default rate)', the default marked with '*'."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default_input = sd.default.device[0]
    except sd.PortAudioError as e:
        raise SourceError(f"cannot list audio devices: {e}") from e
    return [
        f"{'*' if i == default_input else ' '} {i}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:.0f} Hz)"
        for i, d in enumerate(devices) if d["max_input_channels"] > 0
    ]


def open_device_waiting(spec: str | None, stall_s: float = LISTEN.stall_seconds, chunk_seconds: float = LISTEN.chunk_seconds,
                        log=to_stderr, restart_s: tuple[float, float] = (LISTEN.restart_min_seconds, LISTEN.restart_max_seconds)
                        ) -> Source:
    """open_device, and when the device goes away later (unplugged, a driver reset), wait for it with
    back-off and go on listening: a service must not end because a USB microphone was replugged.
    A device missing at start is still a SourceError (a typo should not wait forever)."""
    first = open_device(spec, chunk_seconds, stall_s, log)

    def reopen() -> Source:
        _refresh_portaudio()
        return open_device(spec, chunk_seconds, stall_s, log)

    def chunks():
        source = first
        while True:
            try:
                yield from source.chunks
                problem = "its stream ended"
            except SourceError as e:
                problem = str(e)
            log(f"{problem}: waiting for the input device to come back")
            delays = backoff_delays(*restart_s)
            time.sleep(next(delays))
            source = keep_trying(reopen, delays)
            log(f"input device {source.name} is back; listening again")

    return Source(first.name, chunks())


def _refresh_portaudio() -> None:
    """PortAudio lists devices once, at initialisation: re-initialise it to see a replugged one."""
    sd = import_sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except (AttributeError, sd.PortAudioError):
        pass  # an older sounddevice: the next open tries with what PortAudio knows


def open_device(spec: str | None, chunk_seconds: float = LISTEN.chunk_seconds,
                stall_s: float | None = None, log=to_stderr) -> Source:
    """A sound card input by index or (part of its) name; None is the system default. With `stall_s`,
    no audio for that long is a SourceError (a microphone that went away without PortAudio noticing).

    Records at 16 kHz mono when the device allows it, else at its own rate, converted on the fly.
    """
    sd = import_sounddevice()
    device = int(spec) if spec is not None and spec.strip().isdigit() else spec
    try:
        info = sd.query_devices(device, kind="input")
    except (ValueError, sd.PortAudioError) as e:
        which = "no default input device" if spec is None else f"no input device {spec!r}"
        raise SourceError(f"{which} ({e}); see python listen.py --list-devices") from e
    candidates = [(SAMPLE_RATE, 1), (int(info["default_samplerate"]), 1),
                  (int(info["default_samplerate"]), min(2, info["max_input_channels"]))]
    for rate, channels in candidates:
        try:
            sd.check_input_settings(device=device, samplerate=rate, channels=channels, dtype="float32")
            break
        except (ValueError, sd.PortAudioError):
            continue
    else:
        raise SourceError(f"input device {info['name']!r} accepts neither 16000 Hz nor {info['default_samplerate']:.0f} Hz "
                          f"float32 recording; try another --device")

    blocks = queue.Queue()
    overflowed = []

    def callback(indata, frames, time_info, status):  # PortAudio's thread: copy and hand over, nothing more
        if status.input_overflow:
            overflowed.append(frames)
        blocks.put(indata.copy())

    try:
        stream = sd.InputStream(device=device, samplerate=rate, channels=channels, dtype="float32",
                                blocksize=max(1, round(rate * chunk_seconds)), callback=callback)
        stream.start()
    except sd.PortAudioError as e:
        raise SourceError(f"cannot open input device {info['name']!r}: {e}") from e

    def chunks():
        resampler = StreamResampler(rate)
        warned, last_block = False, time.monotonic()
        try:
            while True:
                try:
                    block = blocks.get(timeout=1.0)
                    last_block = time.monotonic()
                except queue.Empty:
                    if not stream.active:
                        raise SourceError(f"input device {info['name']!r} stopped delivering audio")
                    if stall_s is not None and time.monotonic() - last_block > stall_s:
                        # said now: closing a stalled stream can wait for the driver
                        log(f"warning: input device {info['name']!r} gave no audio for {stall_s:g} s")
                        raise SourceError(f"input device {info['name']!r} gave no audio for {stall_s:g} s")
                    continue
                if overflowed and not warned:
                    log("warning: audio input overflowed (the computer fell behind); some sound was lost")
                    warned = True
                yield sanitize(resampler.process(to_mono(block)))
        finally:
            # abort, not stop: stop waits for pending buffers, and can hang while PortAudio's ALSA thread is
            # blocked in a read (seen once in CI: SIGTERM, then no exit within 60 s); what is dropped was not
            # going to be heard anyway
            stream.abort()
            stream.close()

    return Source(f"device:{info['name']}", chunks())


def record(spec: str | None, seconds: float, log=to_stderr) -> tuple[np.ndarray, str]:
    """Up to `seconds` of 16 kHz mono from a sound card input (Ctrl+C stops early): (waveform, source name)."""
    source = open_device(spec)
    needed, pieces, got = round(seconds * SAMPLE_RATE), [], 0
    log(f"recording {seconds:g} s from {source.name} (Ctrl+C stops early)")
    try:
        for chunk in source.chunks:
            pieces.append(chunk)
            got += len(chunk)
            if got >= needed:
                break
    except KeyboardInterrupt:
        log("stopped early")
    finally:
        source.chunks.close()  # stops and closes the stream
    waveform = np.concatenate(pieces)[:needed] if pieces else np.zeros(0, dtype=np.float32)
    return waveform, source.name
