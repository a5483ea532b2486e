"""The operator's dashboard under ``/ui``: server-rendered pages over the admin API's data.

`ui_router()` gives the routes and the `Console` state that `gateway.app` registers.
"""

from gateway.ui.pages import Console, ui_router

__all__ = ["Console", "ui_router"]
