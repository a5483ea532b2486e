"""Push sources: what turns a body a service POSTed into `Event`s; ``kiriminaja`` is the first."""
