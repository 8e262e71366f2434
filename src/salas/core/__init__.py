"""The chat core: names, rooms and rules, with no I/O and no clock of its own."""
