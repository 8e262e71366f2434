"""Where history, accounts and lasting rooms are kept: ``memory`` (nothing
outlives the process), ``sqlite`` (the default, a file in the data dir) and
``postgres`` (a PostgreSQL database several nodes can share)."""
