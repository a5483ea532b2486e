"""Message templates: the Jinja2 sandbox and its filters (`sandbox`), rendering a message's
parts for a sink (`rendering`), and the sample events templates are checked with
(`samples`). Checking the templates of a configuration is `gateway.check`'s."""

from __future__ import annotations

from gateway.templating.rendering import (
    Templates,
    decode_parts,
    encode_parts,
    message_language,
    order_page,
)
from gateway.templating.samples import (
    minimal_events,
    sample_contact,
    sample_estimate,
    sample_events,
)
from gateway.templating.sandbox import STATUS_LABELS, clean_error, rupiah, sandbox

__all__ = [
    "STATUS_LABELS",
    "Templates",
    "clean_error",
    "decode_parts",
    "encode_parts",
    "message_language",
    "minimal_events",
    "order_page",
    "rupiah",
    "sample_contact",
    "sample_estimate",
    "sample_events",
    "sandbox",
]
