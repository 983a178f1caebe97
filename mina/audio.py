"""WAV chunk validation and level measurement, with the standard library only.

`read_wav` checks an uploaded chunk and returns its parameters and PCM frames;
`rms_dbfs` measures the level of those frames. Both are pure functions.

The level is the RMS of all samples (every channel together) relative to the RMS of a
full-scale square wave, in dB: a full-scale square wave reads 0.0 dBFS, a full-scale sine
about -3.01 dBFS. Digital silence, and anything quieter than `SILENCE_DBFS`, reads
`SILENCE_DBFS` rather than ``-inf``, so the value always fits in JSON and compares
sensibly.
"""

from __future__ import annotations

import io
import math
import operator
import sys
import wave
from array import array
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_BYTES",
    "SILENCE_DBFS",
    "SUPPORTED_WIDTHS",
    "InvalidAudio",
    "Wav",
    "read_wav",
    "rms_dbfs",
]

#: The largest chunk accepted, in bytes (10 MiB: about a minute of 48 kHz stereo 16-bit).
MAX_BYTES: Final = 10 * 1024 * 1024

#: The level reported for silence, and the floor of every level, in dBFS.
SILENCE_DBFS: Final = -120.0

#: Sample widths in bytes: 8-bit unsigned, 16-bit and 32-bit signed PCM.
SUPPORTED_WIDTHS: Final = (1, 2, 4)

# WAV stores little-endian samples; array typecodes with the right item size.
_TYPECODES: Final = {
    1: "B",
    2: "h",
    4: next(code for code in ("i", "l") if array(code).itemsize == 4),
}
_FULL_SCALE: Final = {1: 128, 2: 32768, 4: 2147483648}
_UNSIGNED_OFFSET: Final = {1: 128, 2: 0, 4: 0}


class InvalidAudio(ValueError):
    """The upload is not a WAV chunk Mina can use; the message says why."""


@dataclass(frozen=True, slots=True)
class Wav:
    """A validated WAV chunk: its parameters and interleaved PCM frames."""

    channels: int
    sample_rate: int
    sample_width: int
    frame_count: int
    frames: bytes

    @property
    def duration_ms(self) -> int:
        """The duration in milliseconds, rounded to the nearest."""
        return round(self.frame_count * 1000 / self.sample_rate)


def read_wav(data: bytes, *, max_bytes: int = MAX_BYTES) -> Wav:
    """Validate *data* as a PCM WAV file and return its parameters and frames.

    :raises InvalidAudio: when *data* is empty, larger than *max_bytes*, not a WAV file,
        not PCM, of an unsupported sample width, without frames, or truncated.
    """
    if not data:
        raise InvalidAudio("the body is empty; expected a WAV file")
    if len(data) > max_bytes:
        raise InvalidAudio(f"the chunk is {len(data)} bytes; the limit is {max_bytes} bytes")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudio("not a WAV file: the RIFF/WAVE header is missing")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            sample_rate = reader.getframerate()
            sample_width = reader.getsampwidth()
            frame_count = reader.getnframes()
            frames = reader.readframes(frame_count)
    except (wave.Error, EOFError) as exc:
        # wave says "unknown format: 3" for float samples: name the fix instead.
        raise InvalidAudio(f"unreadable WAV ({exc}); expected uncompressed PCM") from None
    if sample_width not in SUPPORTED_WIDTHS:
        raise InvalidAudio(
            f"unsupported sample width: {8 * sample_width}-bit; expected 8-, 16- or 32-bit PCM"
        )
    if channels < 1 or sample_rate < 1:
        raise InvalidAudio(f"invalid WAV header: {channels} channels at {sample_rate} Hz")
    if frame_count == 0:
        raise InvalidAudio("the WAV file has no audio frames")
    expected = frame_count * channels * sample_width
    if len(frames) != expected:
        raise InvalidAudio(
            f"the WAV file is truncated: the header announces {expected} bytes of audio, "
            f"the file holds {len(frames)}"
        )
    return Wav(channels, sample_rate, sample_width, frame_count, frames)


def rms_dbfs(frames: bytes, sample_width: int) -> float:
    """The RMS level of little-endian PCM *frames* in dBFS, at least `SILENCE_DBFS`.

    :raises InvalidAudio: on an unsupported *sample_width*, or *frames* that are not a
        whole number of samples.
    """
    if sample_width not in SUPPORTED_WIDTHS:
        raise InvalidAudio(f"unsupported sample width: {8 * sample_width}-bit")
    if len(frames) % sample_width:
        raise InvalidAudio(f"{len(frames)} bytes is not a whole number of samples")
    samples = array(_TYPECODES[sample_width], frames)
    if sample_width > 1 and sys.byteorder == "big":
        samples.byteswap()
    count = len(samples)
    if count == 0:
        return SILENCE_DBFS
    # Exact integer arithmetic; 8-bit samples are unsigned around 128:
    # sum((x - c)^2) = sum(x^2) - 2c*sum(x) + n*c^2.
    offset = _UNSIGNED_OFFSET[sample_width]
    squares = sum(map(operator.mul, samples, samples))
    if offset:
        squares += count * offset * offset - 2 * offset * sum(samples)
    if squares == 0:
        return SILENCE_DBFS
    rms = math.sqrt(squares / count) / _FULL_SCALE[sample_width]
    return max(20.0 * math.log10(rms), SILENCE_DBFS)
