"""The reference pages, each written from the code it describes when the site is built
(``docs/hooks.py``), so that none can drift from what Kabarin does.

One module per page: `configuration` (the configuration schema), `cli` (the ``kabarin``
argument parser), `admin_api` (the OpenAPI document the app serves), `events` (the `Event`
struct and the webhook sink's envelope). `markdown` holds what they share.
"""
