"""dtd/peek.py: reading a pipe without taking from it."""

import os
from pathlib import Path

import pytest

from dtd.peek import Peek, Refused, consume


def test_what_is_peeked_stays_until_consumed() -> None:
    r, w = os.pipe2(os.O_NONBLOCK)
    p = Peek(65536)
    try:
        os.write(w, b"one\ntwo\n")
        assert p.peek(r) == b"one\ntwo\n"
        assert p.peek(r, 4) == b"one\n"  # still there, from its start
        consume(r, 4)
        assert p.peek(r) == b"two\n"
        consume(r, 4)
        with pytest.raises(BlockingIOError):
            p.peek(r)  # empty, a writer left
        os.close(w)
        w = -1
        assert p.peek(r) == b""  # the end
    finally:
        p.close()
        os.close(r)
        if w >= 0:
            os.close(w)


def test_more_than_the_scratch_pipe_holds_comes_in_pieces() -> None:
    r, w = os.pipe2(os.O_NONBLOCK)
    p = Peek(4096)
    try:
        data = bytes(range(256)) * 64  # 16 KiB
        os.write(w, data)
        got = b""
        while len(got) < len(data):
            piece = p.peek(r)
            assert 0 < len(piece) <= p.size
            consume(r, len(piece))
            got += piece
        assert got == data
    finally:
        p.close()
        os.close(r)
        os.close(w)


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    p = Peek(4096)
    try:
        with pytest.raises(Refused):
            p.peek(fd)
        assert os.read(fd, 10) == b"data"
    finally:
        p.close()
        os.close(fd)
