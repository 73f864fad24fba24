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


def test_decoder_needed_never_reads_past_a_frame() -> None:
    status = P.encode_frame(P.Command.STATUS, b"\x02\x08\x00\x01\x00")
    stream = b"\x00" + status + P.encode_frame(P.Command.INFO)
    decoder, frames, position = P.FrameDecoder(), [], 0
    assert decoder.needed() == P.OVERHEAD and decoder.pending == 0
    while position < len(stream):
        size = decoder.needed()
        chunk = stream[position : position + size]
        position += len(chunk)
        found = decoder.feed(chunk)
        assert len(found) <= 1 and (not found or decoder.pending == 0)
        frames += found
    assert [frame.command for frame in frames] == [P.Command.STATUS, P.Command.INFO]
    decoder.feed(P.encode_frame(P.Command.INFO, b"\x01\x02\x03")[:4])
    assert decoder.pending == 4 and decoder.needed() == 2
    decoder.feed(b"\x00")
    assert decoder.needed() == 4  # the three payload bytes and the CRC


def test_decoder_passes_the_version_on_for_the_receiver_to_check() -> None:
    (frame,) = P.FrameDecoder().feed(P.encode_frame(P.Command.INFO | P.REPLY, version=2))
    assert frame.version == 2  # the device answers BAD_VERSION, the host driver refuses the reply


def test_bad_crc_message_is_short() -> None:
    frame = bytearray(P.encode_frame(P.Command.READ_MEMORY | P.REPLY, bytes(1000)))
    frame[-1] ^= 1
    message = r"^reply with a bad CRC: a50187e803(00)+\.\.\. \(1006 bytes\)$"
    with pytest.raises(P.ProtocolError, match=message):
        P.FrameDecoder().feed(bytes(frame))


def test_command_names() -> None:
    assert P.command_name(P.Command.STATUS) == "STATUS (0x04)"
    assert P.command_name(P.Command.STATUS | P.REPLY) == "STATUS reply (0x84)"
    assert P.command_name(P.ERROR) == "ERROR (0xff)"
    assert P.command_name(0x42) == "0x42" and P.command_name(0xC2) == "0xc2"
