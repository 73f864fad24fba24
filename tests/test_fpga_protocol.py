"""Host-link protocol: CRC, frames, decoder, event words, error texts."""

from __future__ import annotations

import pytest

from esl_hw.fpga import protocol as P


def test_crc8_is_crc8_atm() -> None:
    assert P.crc8(b"123456789") == 0xF4  # CRC-8 (poly 0x07) check value
    assert P.crc8(b"") == 0


def test_frame_round_trip_and_layout() -> None:
    frame = P.encode_frame(P.Command.LOAD_EVENTS, b"\x01\x02\x03\x04")
    assert frame[:5] == bytes([P.SYNC, P.VERSION, P.Command.LOAD_EVENTS, 4, 0])
    assert frame[-1] == P.crc8(frame[1:-1])
    (decoded,) = P.FrameDecoder().feed(frame)
    assert decoded == P.Frame(P.VERSION, P.Command.LOAD_EVENTS, b"\x01\x02\x03\x04")


def test_decoder_skips_garbage_and_handles_split_input() -> None:
    decoder = P.FrameDecoder()
    stream = b"\x00\x13" + P.encode_frame(P.Command.INFO) + P.encode_frame(P.Command.STATUS, b"\x07")
    frames = []
    for index in range(len(stream)):
        frames += decoder.feed(stream[index : index + 1])
    assert [frame.command for frame in frames] == [P.Command.INFO, P.Command.STATUS]


def test_decoder_refuses_a_bad_crc() -> None:
    frame = bytearray(P.encode_frame(P.Command.INFO))
    frame[-1] ^= 1
    with pytest.raises(P.ProtocolError, match="bad CRC"):
        P.FrameDecoder().feed(bytes(frame))


def test_encode_refuses_oversized_payload_and_bad_command() -> None:
    with pytest.raises(P.ProtocolError, match="exceeds the maximum 1024"):
        P.encode_frame(P.Command.LOAD_EVENTS, bytes(1026))
    with pytest.raises(P.ProtocolError, match="must be a byte, got 256"):
        P.encode_frame(256)


def test_event_words() -> None:
    words = P.event_words([[0, 5], [], [32767]])
    assert words == [0, 5, P.EOS_FLAG, P.EOS_FLAG, 32767, P.EOS_FLAG]
    assert P.pack_words([1, 0x8000]) == b"\x01\x00\x00\x80"
    with pytest.raises(P.ProtocolError, match="input index 32768 outside"):
        P.event_words([[32768]])


def test_error_text() -> None:
    text = P.error_text(bytes([P.Error.OVERFLOW, P.Command.LOAD_EVENTS, 3, 0]))
    assert text == "device error OVERFLOW on LOAD_EVENTS (event buffer has room for 3 words)"
    assert "code 99" in P.error_text(bytes([99, 0x55]))
