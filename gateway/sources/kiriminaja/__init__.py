"""The source: KiriminAja's push format, decoded and normalised into `Event`s."""

from gateway.sources.kiriminaja.normalise import Normalised, method_name, normalise, parse_time
from gateway.sources.kiriminaja.push import Push, decode_push

__all__ = ["Normalised", "Push", "decode_push", "method_name", "normalise", "parse_time"]
