"""Every operator action and view, once, for the three fronts: the admin API answers these
structs as JSON, the dashboard renders them, and ``kabarin`` prints them. The fronts only parse
input and format output; nothing here knows HTTP or argparse.

- `sinks`: the sinks with their queue, circuit and switch; switching one back on; the one rule
  for a sink name the configuration does not have (`UnknownSink`).
- `deliveries`: why a pending delivery waits; replaying one, or the dead ones a filter names.
- `pushes`: a push's items a page at a time, with the events they produced or repeated; failed
  pushes back to the intake (and, for the command line, through it with the verdict read back).
- `rejected`: the bodies the push endpoint refused, and replaying one through the push path.
- `contacts`: an order's customer registered or forgotten, a CSV file of them imported.
- `shops`: which shops a view covers, as asked and as the admin token's scope allows.

Each action that makes work wakes the stage that does it (the dispatcher, the intake).
"""

from __future__ import annotations

from gateway.operations.contacts import (
    ContactImport,
    delete_contact,
    import_contacts,
    put_contact,
)
from gateway.operations.deliveries import (
    ROUTE_REPLAY_LIMIT,
    find_deliveries,
    replay_dead,
    replay_delivery,
    with_waiting,
)
from gateway.operations.pushes import (
    BODY_SHOWN,
    PushEvent,
    PushItem,
    PushPage,
    Reprocessed,
    push_page,
    reprocess_failed,
    requeue_failed,
    shown_body,
)
from gateway.operations.rejected import (
    RejectedItem,
    RejectedReplay,
    rejected_item,
    replay_rejected,
)
from gateway.operations.shops import EVERY_SHOP, list_shops, one_shop, visible_shop
from gateway.operations.sinks import (
    SinkStatus,
    enable_sink,
    require_sink,
    sink_filter_matched,
    sink_statuses,
)

__all__ = [
    "BODY_SHOWN",
    "EVERY_SHOP",
    "ROUTE_REPLAY_LIMIT",
    "ContactImport",
    "PushEvent",
    "PushItem",
    "PushPage",
    "RejectedItem",
    "RejectedReplay",
    "Reprocessed",
    "SinkStatus",
    "delete_contact",
    "enable_sink",
    "find_deliveries",
    "import_contacts",
    "list_shops",
    "one_shop",
    "push_page",
    "put_contact",
    "rejected_item",
    "replay_dead",
    "replay_delivery",
    "replay_rejected",
    "reprocess_failed",
    "requeue_failed",
    "require_sink",
    "shown_body",
    "sink_filter_matched",
    "sink_statuses",
    "visible_shop",
    "with_waiting",
]
