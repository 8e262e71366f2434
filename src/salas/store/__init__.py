"""Where history, accounts and lasting rooms are kept: ``memory`` (nothing
outlives the process) and ``sqlite`` (the default, a file in the data dir)."""
