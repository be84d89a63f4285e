"""The restore's subject reader parses the relay's headers as nats-py does, faster: the
method it overrides is the one nats-py calls (else the speed-up would be silently lost,
docs/backup.md "Figures"), and both give the same dict for the relay's headers."""

from __future__ import annotations

from nats.aio.client import Client

from graphstore.nats._subject import _ReaderClient

RAW = (
    b"Nats-Msg-Id: acme:1234\r\nGraphstore-Offset: 1234\r\nGraphstore-Previous: 1200\r\n"
    b"Nats-Expected-Last-Sequence: 99\r\nNats-Expected-Last-Subject-Sequence: 98\r\n"
    b"Graphstore-Note:  caf\xc3\xa9 \r\n\r\n"
)


def test_the_reader_parses_the_relay_s_headers_as_nats_py_does() -> None:
    assert "_parse_header_lines" in vars(Client)  # nats-py still calls this method
    assert _ReaderClient._parse_header_lines(RAW) == Client._parse_header_lines(RAW)
    assert _ReaderClient._parse_header_lines(RAW)["Graphstore-Offset"] == "1234"


def test_the_reader_reads_the_stream_sequence_as_nats_py_does() -> None:
    from nats.aio.msg import Msg  # noqa: PLC0415

    from graphstore.nats._subject import _stream_sequence  # noqa: PLC0415

    for reply in (
        "$JS.ACK.GRAPHSTORE_EVENTS.abc.1.4711.12.1765000000000000000.3",
        "$JS.ACK._.hash.GRAPHSTORE_EVENTS.abc.1.4711.12.1765000000000000000.3.token",
        "$JS.ACK.domain.hash.GRAPHSTORE_EVENTS.abc.1.4711.12.1765000000000000000.3",
    ):
        msg = Msg(None, subject="x", reply=reply)  # type: ignore[arg-type]
        assert _stream_sequence(msg) == msg.metadata.sequence.stream == 4711
