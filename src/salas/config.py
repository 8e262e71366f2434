"""Settings: embedded defaults, then a TOML file, then ``SALAS__SECTION__KEY``
environment variables, then command-line flags (each wins over the one before).

An unknown key is a warning that names it; a value of the wrong type is a
``ConfigError`` that names the key.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DOORS = ("line", "irc", "http", "cs168")
DEFAULT_LISTEN = ("line:6900", "irc:6667", "http:8080")
ENV_PREFIX = "SALAS__"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Listen:
    door: str
    host: str | None
    port: int

    def __str__(self) -> str:
        host = self.host or "*"
        return f"{self.door}:{'[' + host + ']' if ':' in host else host}:{self.port}"


def parse_listen(spec: str) -> Listen:
    """``PROTO:[HOST:]PORT``; an IPv6 host goes in brackets: ``irc:[::1]:6667``."""
    door, sep, rest = spec.partition(":")
    if not sep or door not in DOORS:
        raise ConfigError(
            f"--listen {spec!r}: expected PROTO:[HOST:]PORT with PROTO one of {', '.join(DOORS)}"
        )
    host: str | None = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0 or rest[close + 1 : close + 2] != ":":
            raise ConfigError(f"--listen {spec!r}: an IPv6 host is written [HOST]:PORT")
        host, port_text = rest[1:close], rest[close + 2 :]
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    else:
        port_text = rest
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--listen {spec!r}: the port must be a number from 0 to 65535")
    return Listen(door, host or None, int(port_text))


@dataclass(slots=True)
class ServerSettings:
    name: str = "salas.local"
    description: str = "salas chat"
    network: str = "salas"
    listen: list[str] = field(default_factory=lambda: list(DEFAULT_LISTEN))
    data_dir: str = ""
    lobby: str = "lobby"


@dataclass(slots=True)
class LimitsSettings:
    flood_exempt: list[str] = field(default_factory=list)
    sendq_bytes: int = 1_048_576
    flood_rate: float = 4.0
    flood_burst: int = 12
    flood_queue: int = 40
    register_timeout: float = 60.0
    max_rooms: int = 10_000
    empty_room_ttl: float = 3600.0


@dataclass(slots=True)
class IrcSettings:
    #: Message of the day, one list item per line; empty sends ERR_NOMOTD (422).
    motd: list[str] = field(default_factory=list)
    #: Seconds of silence before the server sends PING.
    ping_interval: float = 120.0
    #: Seconds to wait for any reply to that PING before disconnecting.
    ping_timeout: float = 60.0


@dataclass(slots=True)
class HttpSettings:
    #: Seconds of silence on a WebSocket before the server sends a ping.
    ping_interval: float = 30.0
    #: Seconds to wait for anything after that ping before disconnecting.
    ping_timeout: float = 30.0


@dataclass(slots=True)
class LogSettings:
    level: str = "info"
    console: bool = True
    file: bool = True
    file_max_bytes: int = 10 * 1024 * 1024
    file_backups: int = 5
    messages: bool = True
    private_messages: bool = False


@dataclass(slots=True)
class StoreSettings:
    #: "" (SQLite in the data dir), "sqlite:///PATH", "memory:" (nothing kept),
    #: or "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE" (needs salas[postgres]).
    url: str = ""
    #: Wait for the disk at every commit: survives a power cut, not only a crash.
    fsync: bool = False


@dataclass(slots=True)
class HistorySettings:
    #: Messages shown to someone joining a room (0: none).
    on_join: int = 20
    #: Most messages one request (/history, CHATHISTORY) returns.
    max_request: int = 1000
    #: Forget messages older than this many days (0: keep them).
    retention_days: float = 0.0
    #: Keep at most this many messages per room (0: no cap).
    retention_messages: int = 0


@dataclass(slots=True)
class DirectSettings:
    #: Calls and file transfers straight between two people (the server only
    #: introduces them). Off: offers and call signalling are refused.
    enabled: bool = True
    #: Seconds an unanswered offer or call lasts.
    offer_ttl: float = 120.0
    #: ICE servers handed to browsers for calls, e.g. ["stun:stun.example.org:3478"].
    stun: list[str] = field(default_factory=list)
    #: TURN relays, e.g. ["turn:turn.example.org:3478"], with one shared login.
    turn: list[str] = field(default_factory=list)
    turn_username: str = ""
    turn_credential: str = ""


@dataclass(slots=True)
class BusSettings:
    #: "" (this node alone), or "redis://HOST[:PORT][/DB]" (needs salas[redis]):
    #: every node with the same bus (and the same PostgreSQL store) is one chat.
    url: str = ""
    #: This node's name in logs and in ``salas admin`` (default: HOST:PID).
    node: str = ""
    #: Seconds between this node's heartbeats.
    heartbeat: float = 1.0
    #: A node unheard for this many seconds is gone: its users are shown leaving.
    node_timeout: float = 5.0
    #: Operations a node keeps waiting while the bus is away; past it, new ones are refused.
    max_waiting: int = 100_000


@dataclass(slots=True)
class Operator:
    name: str
    password: str


@dataclass(slots=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    irc: IrcSettings = field(default_factory=IrcSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    direct: DirectSettings = field(default_factory=DirectSettings)
    bus: BusSettings = field(default_factory=BusSettings)
    operators: list[Operator] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def listens(self) -> list[Listen]:
        return [parse_listen(s) for s in self.server.listen]

    def flood_exempt(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.limits.flood_exempt]

    def data_path(self) -> Path:
        if self.server.data_dir:
            return Path(self.server.data_dir).expanduser()
        return default_data_dir()


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/salas`` (``~/.local/share/salas``).

    One fixed place, so the server and ``salas admin`` find each other.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "salas"


_SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "limits": LimitsSettings,
    "irc": IrcSettings,
    "http": HttpSettings,
    "log": LogSettings,
    "store": StoreSettings,
    "history": HistorySettings,
    "direct": DirectSettings,
    "bus": BusSettings,
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the default it replaces."""
    if isinstance(value, EnvValue):
        value = value.raw if isinstance(default, str) else value.parsed()
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{key}: must not be negative, got {value}")
            return value
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{key}: must not be negative, got {value}")
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if isinstance(default, list):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    raise ConfigError(f"{key}: unsupported value {value!r}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class EnvValue:
    """A value from the environment: read as TOML where the setting wants a
    number, list or boolean, kept as the raw text where it wants a string."""

    raw: str

    def parsed(self) -> Any:
        try:
            return tomllib.loads(f"v = {self.raw}")["v"]
        except tomllib.TOMLDecodeError:
            return self.raw


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2:
            continue
        out.setdefault(parts[0], {})[parts[1]] = EnvValue(raw)
    return out


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from err
    for section, values in _env_overrides(os.environ if env is None else env).items():
        target = data.setdefault(section, {})
        if isinstance(target, dict):
            target.update(values)
    return from_dict(data)


def from_dict(data: Mapping[str, Any]) -> Config:
    cfg = Config()
    for section, value in data.items():
        if section == "operators":
            cfg.operators = _operators(value)
            continue
        cls = _SECTIONS.get(section)
        if cls is None:
            cfg.warnings.append(f"unknown section [{section}] ignored")
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}] must be a table")
        target = getattr(cfg, section)
        known = {f.name for f in fields(cls)}
        for key, v in value.items():
            if key not in known:
                cfg.warnings.append(f"unknown key {section}.{key} ignored")
                continue
            setattr(target, key, _coerce(f"{section}.{key}", v, getattr(target, key)))
    _validate(cfg)
    return cfg


def _operators(value: Any) -> list[Operator]:
    if not isinstance(value, list):
        raise ConfigError("[[operators]] must be an array of tables")
    ops = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"operators[{i}] must be a table")
        name, password = item.get("name"), item.get("password")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"operators[{i}].name: expected a non-empty string")
        if not isinstance(password, str) or not password:
            raise ConfigError(f"operators[{i}].password: expected a non-empty string")
        ops.append(Operator(name, password))
    return ops


def _validate(cfg: Config) -> None:
    for spec in cfg.server.listen:
        parse_listen(spec)
    for net in cfg.limits.flood_exempt:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as err:
            raise ConfigError(f"limits.flood_exempt: {net!r} is not an address or CIDR") from err
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"log.level: expected debug, info, warning or error, got {cfg.log.level!r}"
        )
    if cfg.limits.flood_rate <= 0:
        raise ConfigError("limits.flood_rate: must be above 0")
    if cfg.limits.flood_burst < 1:
        raise ConfigError("limits.flood_burst: must be at least 1")
    if cfg.limits.sendq_bytes < 4096:
        raise ConfigError("limits.sendq_bytes: must be at least 4096")
    if cfg.irc.ping_interval < 1 or cfg.irc.ping_timeout < 1:
        raise ConfigError("irc.ping_interval and irc.ping_timeout: must be at least 1 second")
    if cfg.http.ping_interval < 1 or cfg.http.ping_timeout < 1:
        raise ConfigError("http.ping_interval and http.ping_timeout: must be at least 1 second")
    if not cfg.server.lobby:
        raise ConfigError("server.lobby: must not be empty")
    store_path(cfg)  # a url this build can't open is refused now, not at start
    if cfg.history.max_request < 1:
        raise ConfigError("history.max_request: must be at least 1")
    if cfg.direct.offer_ttl < 1:
        raise ConfigError("direct.offer_ttl: must be at least 1 second")
    for url in cfg.direct.stun + cfg.direct.turn:
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise ConfigError(f"direct.stun/turn: {url!r} is not a stun: or turn: URL")
    bus = cfg.bus
    if bus.url and not bus.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f'bus.url: expected "" or redis://HOST[:PORT][/DB], got {bus.url!r}')
    if bus.heartbeat <= 0:
        raise ConfigError("bus.heartbeat: must be above 0")
    if bus.node_timeout < 2 * bus.heartbeat:
        raise ConfigError("bus.node_timeout: must be at least twice bus.heartbeat")
    if bus.max_waiting < 1:
        raise ConfigError("bus.max_waiting: must be at least 1")


#: URL schemes of a PostgreSQL store (libpq and asyncpg take both).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def postgres_url(cfg: Config) -> str | None:
    """The PostgreSQL URL the ``[store] url`` names, or None for another store."""
    url = cfg.store.url
    return url if url.startswith(POSTGRES_SCHEMES) else None


def store_path(cfg: Config) -> Path | None:
    """The SQLite file the ``[store] url`` names (None for ``memory:`` and PostgreSQL)."""
    url = cfg.store.url
    if url == "memory:":
        return None
    if not url:
        return cfg.data_path() / "salas.db"
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if rest.startswith("/") and len(rest) > 1:
            return Path(rest)
    if url.startswith(POSTGRES_SCHEMES) and len(url) > url.index("//") + 2:
        return None
    raise ConfigError(
        'store.url: expected "" (SQLite in the data dir), sqlite:///PATH, memory:'
        f" or postgresql://USER@HOST/DATABASE, got {url!r}"
    )


def store_label(cfg: Config) -> str:
    """The store as the log shows it: a file, "memory only", or a URL without its password."""
    url = postgres_url(cfg)
    if url is not None:
        return hide_password(url)
    return str(store_path(cfg) or "memory only")


def hide_password(url: str) -> str:
    """``postgresql://ana:secret@host/db`` → ``postgresql://ana:***@host/db``."""
    scheme, sep, rest = url.partition("://")
    who, at, where = rest.rpartition("@")
    if not at or ":" not in who:
        return url
    return f"{scheme}{sep}{who.split(':', 1)[0]}:***@{where}"
