"""Digests: scheduled summaries for the shop's staff, sent once per period.

A digest (``digests:`` in the configuration) summarises a window of events (by status, by
courier, stuck parcels, returns and problems with their reasons, dead deliveries by sink, and
what changed against the window before) and goes to its sinks as ordinary deliveries, which the
dispatcher sends, retries, dead-letters and replays like any other. The modules:

- `schedule`: when a digest is due (a pure decision);
- `summary`: the window's counts, read from the store, and how they changed;
- `render`: the summary as a mail (text and an HTML table), Slack blocks, and webhook JSON;
- `message`: the stored form of one digest, as the sinks recognise it;
- `runner`: composes a digest into deliveries, claims its period once across replicas, and
  wakes for the next due digest in the background.

This package imports nothing itself, so that the sinks can read `message` without the rest.
"""
