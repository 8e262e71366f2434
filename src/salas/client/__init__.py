"""``salas chat`` and ``salas send``: the terminal client and the one-shot sender."""
