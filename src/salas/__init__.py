"""salas: one chat server, many doors."""

__version__ = "0.1.0"
