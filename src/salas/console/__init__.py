"""``salas admin``: the console that talks to a running server over its admin socket."""
