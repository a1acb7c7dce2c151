"""A virtual ALSA microphone that PortAudio lists and records from, on a machine without a sound card.

ALSA's `file` plugin (built into libasound2) on a `null` slave replaces what it captures with
bytes read from its `infile`. The infile here is a FIFO we hold open for writing, so:

- each open of the device (PortAudio probes it several times) finds a writer and never blocks;
- the recorder gets exactly the bytes we `play`, and then waits, like a microphone in a quiet room
  (a regular file would be followed by stale buffer contents, at CPU speed, once it ends);
- everything is played before recording starts, and fits in the pipe's buffer (F_SETPIPE_SZ):
  each read must find a whole period there, since the plugin fills a short read's remainder
  with stale data.

The null slave has no clock, so recording runs as fast as the reader; chunks reach listen.py at
once, as with --file. The samples must be in the recorder's format: listen.py opens a device as
float32 16 kHz mono when it can, and `null` accepts anything, so `play` writes f32le at 16 kHz.

ALSA reads the definition from $XDG_CONFIG_HOME/alsa/asoundrc (see /usr/share/alsa/alsa.conf):
pass `env` to a subprocess, because PortAudio lists devices once per process, at initialisation.
A recorder blocks in the FIFO read until `close` (EOF), so a stream can only stop after it.
"""

import fcntl
import os
from pathlib import Path

import numpy as np

PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size: 16 s of f32 16 kHz mono


class AlsaMicrophone:
    """An ALSA capture device `name` that hears what `play` writes; `env` makes a subprocess see it."""

    def __init__(self, workdir: Path, name: str = "audio2mqtt_test_mic"):
        self.name = name
        workdir = Path(workdir)
        (workdir / "xdg" / "alsa").mkdir(parents=True, exist_ok=True)
        self.fifo = workdir / f"{name}.fifo"
        os.mkfifo(self.fifo)
        (workdir / "xdg" / "alsa" / "asoundrc").write_text(
            f'pcm.{name} {{\n'
            f'    type file\n'
            f'    slave.pcm "null"\n'
            f'    file "/dev/null"\n'      # what it captured would be written here
            f'    infile "{self.fifo}"\n'
            f'    format "raw"\n'
            f'}}\n')
        self.env = dict(os.environ, XDG_CONFIG_HOME=str(workdir / "xdg"))
        self._fd = os.open(self.fifo, os.O_RDWR)  # a writer from the start: opens by ALSA never block
        self.capacity = fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def play(self, waveform: np.ndarray) -> None:
        """Queue 16 kHz mono float samples for the recorder, before it starts; all must fit in the pipe."""
        data = np.asarray(waveform, dtype="<f4").tobytes()
        if len(data) > self.capacity:
            raise ValueError(f"{len(data)} bytes do not fit in the {self.capacity}-byte pipe: play less")
        os.write(self._fd, data)

    def reconnect(self) -> None:
        """After `close`: the microphone is there again (a replugged USB microphone), silent until `play`."""
        if self._fd is None:
            self._fd = os.open(self.fifo, os.O_RDWR)

    def close(self) -> None:
        """End of input: a recorder blocked in a read returns, so its stream can stop."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
