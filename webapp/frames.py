"""Socket.IO frames as the server decodes them: every frame a client sends gets an answer.

python-socketio raised on a frame it could not decode (truncated JSON, nesting deeper than the
parser's recursion limit, an event that is not a list starting with its name, an unknown packet
type): no ack for the client, a traceback in the log. Here such a frame becomes the event
``MALFORMED`` carrying the reason, with the ack id of the frame when its prefix has one, and
``webapp.events`` answers it with an error ack. So does a frame over the app's message limit
(FD_WEBAPP_MAX_REQUEST_BYTES): the transport accepts messages up to ``TRANSPORT_FACTOR`` times
that, so a frame a little too large is answered rather than cut off with the socket; past the
transport's limit the websocket is closed with code 1009 ("Message is too big"), which the
page shows. JSON objects with a repeated key are refused (``strict_json``), naming the key.
"""
from __future__ import annotations

import json
import re

from socketio import packet

MALFORMED = "fd:malformed"  # the event a malformed frame becomes (see webapp.events)
TRANSPORT_FACTOR = 4
# Socket.IO's text frame: type digit, [attachments "-"], [namespace ","], [ack id], [JSON]
_PREFIX = re.compile(r"^(?P<type>\d)(?:\d+-)?(?:(?P<ns>/[^,]*),)?(?P<id>\d{1,15})?")


class DuplicateKey(ValueError):
    pass


def refuse_duplicate_keys(pairs):
    """``object_pairs_hook`` of json.loads: a dict, unless a key repeats (then ValueError naming
    it: with the standard parser the last value would win without a word)."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(f'duplicate key "{str(key)[:40]}" in a JSON object')
        seen[key] = value
    return seen


# One decoder for every frame: json.loads with a hook builds a new decoder (and its scanner) per call.
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=refuse_duplicate_keys)


class strict_json:  # lower case: used as a module (python-socketio calls json.dumps / json.loads)
    """The JSON "module" of the Socket.IO server: the standard one, refusing repeated keys."""

    @staticmethod
    def dumps(*args, **kwargs):
        return json.dumps(*args, **kwargs)

    @staticmethod
    def loads(text, **kwargs):
        if kwargs or not isinstance(text, str):
            return json.loads(text, object_pairs_hook=refuse_duplicate_keys, **kwargs)
        return _STRICT_DECODER.decode(text)


def transport_limit(message_limit: int) -> int:
    return message_limit * TRANSPORT_FACTOR


def describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "the message nests too deeply"
    if isinstance(exc, DuplicateKey):
        return str(exc)
    return f"the message is not valid Socket.IO JSON ({str(exc)[:80]})"


def packet_class(message_limit: int):
    """python-socketio's Packet, decoding as the module docstring says."""

    class Frame(packet.Packet):
        json = strict_json

        def decode(self, encoded_packet):
            if isinstance(encoded_packet, (str, bytes)) and len(encoded_packet) > message_limit:
                return self.malformed(encoded_packet, f"the message is larger than {message_limit} bytes")
            try:
                attachments = super().decode(encoded_packet)
            except (ValueError, TypeError, RecursionError) as exc:
                return self.malformed(encoded_packet, describe(exc))
            if self.packet_type not in range(len(packet.packet_names)):
                return self.malformed(encoded_packet, "unknown packet type")
            if self.packet_type == packet.EVENT and not (isinstance(self.data, list) and self.data
                                                         and isinstance(self.data[0], str)):
                return self.malformed(encoded_packet, "an event is a list starting with its name")
            return attachments

        def malformed(self, encoded, reason: str) -> int:
            """Become the event MALFORMED(reason), keeping the frame's namespace and ack id when
            its prefix has them (a frame of another type than an event cannot be acked)."""
            text = encoded.decode("latin-1") if isinstance(encoded, bytes) else str(encoded)
            match = _PREFIX.match(text[:64])
            is_event = bool(match) and match.group("type") in (str(packet.EVENT), str(packet.BINARY_EVENT))
            self.packet_type = packet.EVENT
            self.namespace = (match.group("ns") if match else None) or None
            self.id = int(match.group("id")) if is_event and match.group("id") else None
            self.data = [MALFORMED, reason]
            self.attachment_count = 0
            return 0

    return Frame
