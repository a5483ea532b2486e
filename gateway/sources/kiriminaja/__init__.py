"""The first source: KiriminAja's push format, decoded and normalised into `Event`s."""

from gateway.sources.kiriminaja.normalise import method_name, normalise, parse_time
from gateway.sources.kiriminaja.push import Push, decode_push
from gateway.sources.kiriminaja.source import KiriminAjaSource

__all__ = ["KiriminAjaSource", "Push", "decode_push", "method_name", "normalise", "parse_time"]
