"""evidence: the ring buffer that holds recent audio, across its wrap-around. Pure numpy, milliseconds."""

import numpy as np

from evidence import RingBuffer


def test_ring_buffer_returns_the_stream_samples_it_still_holds():
    stream = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    ring, at = RingBuffer(1000), 0
    for size in np.random.default_rng(1).integers(1, 1500, 40):
        ring.push(stream[at:at + size])
        at = min(at + size, len(stream))
        np.testing.assert_array_equal(ring.get(at - 700, at), stream[max(0, at - 700):at])
        np.testing.assert_array_equal(ring.get(0, at), stream[max(0, at - 1000):at])  # older samples are gone
        if at == len(stream):
            break
    assert len(ring.get(at - 10, at + 50)) == 10  # nothing past what was heard
