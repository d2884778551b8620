"""MLLP framing: whole messages out of any chunking, bounded memory, strict envelopes."""

from __future__ import annotations

import random

import pytest

from worklist.hl7.mllp import END_BLOCK, FramingError, Message, MllpReader, Oversized, frame

MESSAGES = [b"MSH|^~\\&|A", b"MSH|" + b"x" * 3000, b"MSH|b", b"MSH|" + b"y" * 70000]


def feed_in_chunks(reader: MllpReader, stream: bytes, size: int) -> list[Message | Oversized]:
    done: list[Message | Oversized] = []
    for start in range(0, len(stream), size):
        done += reader.feed(stream[start : start + size])
    return done


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000, 65536, 10**6])
def test_messages_come_out_whole_whatever_the_chunks(size: int) -> None:
    stream = b"".join(frame(message) for message in MESSAGES)

    done = feed_in_chunks(MllpReader(max_bytes=100_000), stream, size)

    assert done == [Message(message) for message in MESSAGES]


def test_random_chunking_with_oversized_messages_keeps_the_order() -> None:
    rng = random.Random(7)
    stream = b"".join(frame(message) for message in MESSAGES)
    for _ in range(200):
        reader = MllpReader(max_bytes=5000)
        done: list[Message | Oversized] = []
        position = 0
        while position < len(stream):
            step = rng.randint(1, 9000)
            done += reader.feed(stream[position : position + step])
            position += step
        kinds = [type(item) for item in done]
        assert kinds == [Message, Message, Message, Oversized]
        assert not reader.mid_message


def test_an_oversized_message_is_never_held_whole() -> None:
    limit, chunk = 1 << 20, 65536
    reader = MllpReader(max_bytes=limit)
    header = b"MSH|^~\\&|CRIS|RXA_RIS|||||ORM^O01|BIG|P|2.4\r"
    stream = frame(header + b"NTE|1||" + b"z" * (5 << 20)) + frame(b"MSH|next")
    done: list[Message | Oversized] = []
    most = 0
    for start in range(0, len(stream), chunk):
        done += reader.feed(stream[start : start + chunk])
        most = max(most, reader.buffered)

    assert most <= limit + chunk + 1
    big, following = done
    assert isinstance(big, Oversized)
    assert big.head.startswith(header)
    assert big.size > 5 << 20
    assert following == Message(b"MSH|next")


def test_a_message_exactly_at_the_limit_is_taken() -> None:
    reader = MllpReader(max_bytes=10)

    assert reader.feed(frame(b"0123456789") + frame(b"0123456789A")) == [
        Message(b"0123456789"),
        Oversized(head=b"0123456789A", size=11),
    ]


def test_line_ends_between_messages_are_allowed() -> None:
    reader = MllpReader(max_bytes=100)

    assert reader.feed(b"\r\n" + frame(b"MSH|1") + b"\n" + frame(b"MSH|2") + b"\r") == [
        Message(b"MSH|1"),
        Message(b"MSH|2"),
    ]


@pytest.mark.parametrize("stream", [b"MSH|no start block" + END_BLOCK, frame(b"MSH|1") + b"junk"])
def test_anything_else_outside_a_block_is_a_framing_error(stream: bytes) -> None:
    with pytest.raises(FramingError):
        MllpReader(max_bytes=100).feed(stream)


def test_a_started_message_is_reported_as_unfinished() -> None:
    reader = MllpReader(max_bytes=100)

    reader.feed(b"\x0bMSH|half")

    assert reader.mid_message
