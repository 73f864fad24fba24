"""The esl-hw UART host-link protocol, version 1: frames, commands, error codes (docs/protocol.md).

Every message in both directions is one frame::

    SYNC 0xA5 | VERSION | COMMAND | LENGTH (2 bytes, little endian) | PAYLOAD (LENGTH bytes) | CRC

``CRC`` is CRC-8 (polynomial x^8+x^2+x+1 = 0x07, initial value 0, no reflection, no final XOR)
over VERSION, COMMAND, LENGTH and PAYLOAD. A reply carries the request's command with bit 7 set;
an error reply is command :data:`ERROR` with payload ``[code, request command]`` (plus two bytes of
event-buffer space for :attr:`Error.OVERFLOW`). This module is the single source of the numbers
used by the gateware (:mod:`esl_hw.fpga.hostlink`) and the host driver (:mod:`esl_hw.fpga.driver`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from esl_hw.errors import EslError

SYNC = 0xA5
VERSION = 1
#: Largest payload a frame may carry.
MAX_PAYLOAD = 1024
#: Bytes of a frame around its payload (sync, version, command, 2 length bytes, CRC).
OVERHEAD = 6
#: Reply command bit.
REPLY = 0x80
#: Command of an error reply.
ERROR = 0xFF
#: End-of-step flag of a 16-bit event word; bits 14..0 are the input index.
EOS_FLAG = 0x8000
MAX_INPUTS = 0x8000


class Command(enum.IntEnum):
    """Request commands (host to device)."""

    INFO = 0x01  # -> version, sizes, widths, event buffer depth, capabilities
    LOAD_EVENTS = 0x02  # payload: 16-bit event words -> free event buffer words
    START = 0x03  # arm one inference -> empty
    STATUS = 0x04  # -> state, free event buffer words, completed inferences
    READ_OUTPUTS = 0x05  # -> prediction (2 bytes), n_out accumulators (acc_bytes each)
    READ_COUNTERS = 0x06  # -> 32-bit counters in counter_names() order
    READ_MEMORY = 0x07  # payload: memory id, address (4), count (2) -> words
    WRITE_MEMORY = 0x08  # payload: memory id, address (4), words -> empty
    REWIRE = 0x09  # payload: layer, prune count (2), LFSR seed (4) -> empty


class Error(enum.IntEnum):
    """Error codes of an error reply."""

    BAD_CRC = 1
    BAD_VERSION = 2
    UNKNOWN_COMMAND = 3
    BAD_LENGTH = 4
    OVERFLOW = 5
    BUSY = 6
    NOT_READY = 7
    UNSUPPORTED = 8
    TIMEOUT = 9
    REFUSED = 10  # REWIRE refused by the core: k above the layer's synapses, unknown layer, seed 0


class State(enum.IntEnum):
    """Inference state reported by STATUS."""

    IDLE = 0
    RUNNING = 1
    DONE = 2


#: Capability bits of INFO.
CAP_MEMORY = 0x01
CAP_REWIRE = 0x02


class ProtocolError(EslError):
    """A frame that cannot be decoded, or an error reply from the device."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def crc8(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC-8 with polynomial 0x07, initial value ``crc``, no reflection, no final XOR."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_frame(command: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    """One frame carrying ``payload`` under ``command``."""
    if not 0 <= command <= 0xFF:
        raise ProtocolError(f"command must be a byte, got {command!r}")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the maximum {MAX_PAYLOAD}")
    body = bytes([version, command]) + len(payload).to_bytes(2, "little") + bytes(payload)
    return bytes([SYNC]) + body + bytes([crc8(body)])


@dataclass(frozen=True)
class Frame:
    """A decoded frame."""

    version: int
    command: int
    payload: bytes

    @property
    def is_error(self) -> bool:
        return self.command == ERROR


class FrameDecoder:
    """Incremental decoder: feed bytes, collect complete frames (bytes before a SYNC are skipped).

    The decoder only frames and checks the CRC; the VERSION byte is passed on in :class:`Frame`
    for the receiver to check (a device answers BAD_VERSION, the host driver refuses the reply).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete (0 when the decoder is between frames)."""
        return len(self._buffer)

    def needed(self) -> int:
        """Bytes still needed to complete the next frame (at least 1).

        Reading exactly this many never reads past the end of the frame being received: a reader
        that does so leaves the next frame, if any, unread (see :meth:`HostDriver.request`).
        """
        start = self._buffer.find(bytes([SYNC]))
        if start < 0:
            return OVERHEAD
        have = len(self._buffer) - start
        if have < 5:
            return OVERHEAD - have
        length = int.from_bytes(self._buffer[start + 3 : start + 5], "little")
        return max(1, OVERHEAD + min(length, MAX_PAYLOAD) - have)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return the frames it completes. A bad CRC raises :class:`ProtocolError`."""
        self._buffer.extend(data)
        frames = []
        while True:
            start = self._buffer.find(bytes([SYNC]))
            if start < 0:
                self._buffer.clear()
                return frames
            del self._buffer[:start]
            if len(self._buffer) < 5:
                return frames
            length = int.from_bytes(self._buffer[3:5], "little")
            if length > MAX_PAYLOAD:
                del self._buffer[:1]
                continue
            if len(self._buffer) < OVERHEAD + length:
                return frames
            frame = bytes(self._buffer[: OVERHEAD + length])
            del self._buffer[: OVERHEAD + length]
            if crc8(frame[1:-1]) != frame[-1]:
                raise ProtocolError(f"reply with a bad CRC: {short_hex(frame)}", int(Error.BAD_CRC))
            frames.append(Frame(frame[1], frame[2], frame[5:-1]))


def short_hex(data: bytes, limit: int = 16) -> str:
    """``data`` in hex, cut after ``limit`` bytes (with the full length) so that a message stays short."""
    if len(data) <= limit:
        return data.hex()
    return f"{data[:limit].hex()}... ({len(data)} bytes)"


def command_name(command: int) -> str:
    """``STATUS (0x04)``, ``STATUS reply (0x84)``, ``ERROR (0xff)`` or ``0x42`` for an unknown code."""
    if command == ERROR:
        return "ERROR (0xff)"
    try:
        name = Command(command & ~REPLY).name
    except ValueError:
        return f"0x{command:02x}"
    return f"{name}{' reply' if command & REPLY else ''} (0x{command:02x})"


def event_words(steps: list[list[int]]) -> list[int]:
    """16-bit event words for one inference: per step the input indices, then an end-of-step word."""
    words = []
    for step in steps:
        for index in step:
            if not 0 <= index < MAX_INPUTS:
                raise ProtocolError(f"input index {index} outside 0..{MAX_INPUTS - 1}")
            words.append(int(index))
        words.append(EOS_FLAG)
    return words


def pack_words(words: list[int]) -> bytes:
    """Event words as little-endian 16-bit payload bytes."""
    return b"".join(int(word).to_bytes(2, "little") for word in words)


def error_text(payload: bytes) -> str:
    """Human-readable form of an error reply's payload."""
    if not payload:
        return "error reply without a code"
    try:
        name = Error(payload[0]).name
    except ValueError:
        name = f"code {payload[0]}"
    text = f"device error {name}"
    if len(payload) > 1:
        try:
            text += f" on {Command(payload[1]).name}"
        except ValueError:
            text += f" on command 0x{payload[1]:02x}"
    if payload[0] == Error.OVERFLOW and len(payload) >= 4:
        text += f" (event buffer has room for {int.from_bytes(payload[2:4], 'little')} words)"
    return text
