"""mina.audio: WAV validation and RMS level, against WAV files written by the stdlib."""

from __future__ import annotations

import io
import math
import struct
import wave

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mina.audio import SILENCE_DBFS, InvalidAudio, read_wav, rms_dbfs

from .support import make_wav

_LIMITS = {1: (0, 255), 2: (-32768, 32767), 4: (-(2**31), 2**31 - 1)}


def reference_dbfs(samples: list[int], width: int) -> float:
    """The level computed the slow, obvious way."""
    centre = 128 if width == 1 else 0
    full_scale = 128 if width == 1 else 2 ** (8 * width - 1)
    mean_square = sum((s - centre) ** 2 for s in samples) / len(samples)
    if mean_square == 0:
        return SILENCE_DBFS
    return max(20 * math.log10(math.sqrt(mean_square) / full_scale), SILENCE_DBFS)


@st.composite
def wav_parameters(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    width = draw(st.sampled_from([1, 2, 4]))
    channels = draw(st.integers(1, 4))
    rate = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]))
    frames = draw(st.integers(1, 300))
    low, high = _LIMITS[width]
    samples = draw(st.lists(st.integers(low, high), min_size=frames * channels,
                            max_size=frames * channels))  # fmt: skip
    return width, channels, rate, samples


@given(wav_parameters())
def test_read_wav_returns_the_written_parameters(params: tuple[int, int, int, list[int]]) -> None:
    width, channels, rate, samples = params
    wav = read_wav(make_wav(samples, width=width, channels=channels, rate=rate))
    frames = len(samples) // channels
    expected = (channels, rate, width, frames, round(frames * 1000 / rate))
    assert expected == (
        wav.channels,
        wav.sample_rate,
        wav.sample_width,
        wav.frame_count,
        wav.duration_ms,
    )


@given(wav_parameters())
def test_rms_matches_the_reference(params: tuple[int, int, int, list[int]]) -> None:
    width, channels, rate, samples = params
    wav = read_wav(make_wav(samples, width=width, channels=channels, rate=rate))
    assert reference_dbfs(samples, width) == pytest.approx(rms_dbfs(wav.frames, width), abs=1e-9)


@pytest.mark.parametrize(("width", "value"), [(1, 0), (1, 255), (2, -32768), (4, -(2**31))])
def test_full_scale_square_wave_is_about_0_dbfs(width: int, value: int) -> None:
    wav = read_wav(make_wav([value] * 100, width=width))
    # 8-bit 255 is one step short of full scale: 20*log10(127/128)
    expected = 20 * math.log10(127 / 128) if value == 255 else 0.0
    assert expected == pytest.approx(rms_dbfs(wav.frames, width))


def test_full_scale_sine_is_minus_3_dbfs() -> None:
    samples = [round(32767 * math.sin(2 * math.pi * i / 64)) for i in range(6400)]
    wav = read_wav(make_wav(samples))
    assert -3.01 == pytest.approx(rms_dbfs(wav.frames, 2), abs=0.01)


@pytest.mark.parametrize(("width", "silence"), [(1, 128), (2, 0), (4, 0)])
def test_silence_reads_the_floor(width: int, silence: int) -> None:
    wav = read_wav(make_wav([silence] * 480, width=width))
    assert SILENCE_DBFS == rms_dbfs(wav.frames, width)


def test_levels_below_the_floor_read_the_floor() -> None:
    # One least-significant bit in a 32-bit signal is about -187 dBFS.
    assert SILENCE_DBFS == rms_dbfs(struct.pack("<4i", 1, 0, 0, 0), 4)


def test_duration_is_rounded_to_the_millisecond() -> None:
    wav = read_wav(make_wav([0] * 24, rate=16000))  # 1.5 ms
    assert 2 == wav.duration_ms


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the body is empty"),
        (b"ID3\x04 this is an mp3", "not a WAV file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "unreadable WAV"),
        (make_wav([]), "no audio frames"),
        (make_wav([1, 2, 3])[:-2], "truncated"),
    ],
)
def test_invalid_uploads_are_rejected_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(InvalidAudio, match=message):
        read_wav(data)


def test_too_large_is_rejected() -> None:
    data = make_wav([0] * 1000)
    with pytest.raises(InvalidAudio, match=f"the chunk is {len(data)} bytes; the limit is 100"):
        read_wav(data, max_bytes=100)


def test_24_bit_is_unsupported() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(3)
        writer.setframerate(8000)
        writer.writeframes(b"\x00" * 30)
    with pytest.raises(InvalidAudio, match="unsupported sample width: 24-bit"):
        read_wav(buffer.getvalue())


def test_float_wav_is_rejected_as_not_pcm() -> None:
    data = bytearray(make_wav([0] * 10, width=4))
    data[20:22] = struct.pack("<H", 3)  # WAVE_FORMAT_IEEE_FLOAT
    with pytest.raises(InvalidAudio, match="expected uncompressed PCM"):
        read_wav(bytes(data))


def test_rms_rejects_partial_samples() -> None:
    with pytest.raises(InvalidAudio, match="not a whole number of samples"):
        rms_dbfs(b"\x00\x00\x00", 2)
