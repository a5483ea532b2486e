"""The customer's tracking page: a signed link in every customer message (`links`), a light
branded page under ``/t/`` showing one order (`page`), and a lookup by AWB and the last four
digits of the phone for customers without the link.

The page only reads the store: it never changes a record.
"""

from __future__ import annotations

from gateway.tracking_page.links import Expired, LinkSigner, Tampered, TrackingLink

__all__ = ["Expired", "LinkSigner", "Tampered", "TrackingLink"]
