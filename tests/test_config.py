"""Settings: defaults, the TOML keys SPEC.md promises, environment overrides, --listen."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from salas.config import (
    DEFAULT_LISTEN,
    DOORS,
    ConfigError,
    Listen,
    Operator,
    default_data_dir,
    from_dict,
    load,
    parse_listen,
    postgres_url,
    store_label,
    store_path,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "salas.toml"
    path.write_text(text)
    return path


# -- defaults ------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = load(None, env={})
    assert cfg.server.name == "salas.local"
    assert cfg.server.description == "salas chat"
    assert cfg.server.network == "salas"
    assert cfg.server.lobby == "lobby"
    assert cfg.server.listen == list(DEFAULT_LISTEN)
    # SPEC: with no --listen, line:6900  irc:6667  http:8080 (cs168 only when asked for).
    assert cfg.listens() == [
        Listen("line", None, 6900),
        Listen("irc", None, 6667),
        Listen("http", None, 8080),
    ]
    assert cfg.http.ping_interval == 30.0
    assert cfg.http.ping_timeout == 30.0
    assert cfg.limits.flood_exempt == []
    assert cfg.limits.sendq_bytes == 1_048_576
    assert cfg.operators == []
    assert cfg.warnings == []
    assert cfg.log.level == "info"


def test_default_data_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "salas"
    assert load(None, env={}).data_path() == tmp_path / "salas"


def test_data_dir_setting_wins(tmp_path: Path) -> None:
    cfg = from_dict({"server": {"data_dir": str(tmp_path / "d")}})
    assert cfg.data_path() == tmp_path / "d"


# -- the file ------------------------------------------------------------------------

SPEC_EXAMPLE = """
[server]
name = "chat.example.org"
description = "our chat"
network = "example"

[limits]
flood_exempt = ["127.0.0.0/8", "::1"]
sendq_bytes = 65536

[[operators]]
name = "operuser"
password = "operpassword"

[[operators]]
name = "root"
password = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
"""


def test_the_keys_spec_promises(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, SPEC_EXAMPLE), env={})
    assert cfg.server.name == "chat.example.org"
    assert cfg.server.description == "our chat"
    assert cfg.server.network == "example"
    assert cfg.limits.flood_exempt == ["127.0.0.0/8", "::1"]
    assert cfg.flood_exempt() == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    assert cfg.limits.sendq_bytes == 65536
    assert cfg.operators == [
        Operator("operuser", "operpassword"),
        Operator("root", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),
    ]
    assert cfg.warnings == []


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load(write(tmp_path, ""), env={}) == load(None, env={})


def test_an_int_for_a_float_key_is_accepted(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "[limits]\nflood_rate = 2\n"), env={})
    assert cfg.limits.flood_rate == 2.0
    assert isinstance(cfg.limits.flood_rate, float)


def test_unknown_key_is_a_warning_naming_it(tmp_path: Path) -> None:
    text = '[server]\nname = "x"\nnmae = "typo"\n[limits]\nsendq = 5\n[extra]\na = 1\n'
    cfg = load(write(tmp_path, text), env={})
    assert cfg.server.name == "x"
    assert len(cfg.warnings) == 3
    assert any("server.nmae" in w for w in cfg.warnings)
    assert any("limits.sendq" in w for w in cfg.warnings)
    assert any("[extra]" in w for w in cfg.warnings)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[limits]\nsendq_bytes = "big"\n', "limits.sendq_bytes"),
        ("[limits]\nsendq_bytes = 1.5\n", "limits.sendq_bytes"),
        ("[limits]\nsendq_bytes = true\n", "limits.sendq_bytes"),
        ("[limits]\nsendq_bytes = -1\n", "limits.sendq_bytes"),
        ("[limits]\nsendq_bytes = 100\n", "limits.sendq_bytes"),
        ('[limits]\nflood_exempt = "127.0.0.0/8"\n', "limits.flood_exempt"),
        ("[limits]\nflood_exempt = [1, 2]\n", "limits.flood_exempt"),
        ('[limits]\nflood_exempt = ["not-a-net"]\n', "limits.flood_exempt"),
        ('[limits]\nflood_rate = "fast"\n', "limits.flood_rate"),
        ("[limits]\nflood_rate = 0\n", "limits.flood_rate"),
        ("[limits]\nflood_burst = 0\n", "limits.flood_burst"),
        ("[server]\nname = 5\n", "server.name"),
        ("[server]\ndescription = []\n", "server.description"),
        ("[server]\nnetwork = false\n", "server.network"),
        ('[server]\nlisten = "line:6900"\n', "server.listen"),
        ('[server]\nlobby = ""\n', "server.lobby"),
        ('[log]\nconsole = "yes"\n', "log.console"),
        ('[log]\nlevel = "loud"\n', "log.level"),
        ('[[operators]]\nname = "x"\n', "operators[0].password"),
        ('[[operators]]\npassword = "x"\n', "operators[0].name"),
        ('[[operators]]\nname = ""\npassword = "x"\n', "operators[0].name"),
        ('operators = "root"\n', "operators"),
        ("server = 5\n", "[server]"),
    ],
)
def test_wrong_type_is_an_error_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load(write(tmp_path, text), env={})


def test_bad_listen_in_the_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ftp:21"):
        load(write(tmp_path, '[server]\nlisten = ["ftp:21"]\n'), env={})


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "nope.toml", env={})


def test_a_broken_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[server\nname = "), env={})


# -- environment ------------------------------------------------------------------------


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nname = "from-file"\n[limits]\nsendq_bytes = 65536\n')
    env = {
        "SALAS__LIMITS__SENDQ_BYTES": "8192",
        "SALAS__SERVER__NAME": "from-env",
        "SALAS__LIMITS__FLOOD_EXEMPT": '["10.0.0.0/8"]',
        "SALAS__LOG__CONSOLE": "false",
        "UNRELATED": "1",
    }
    cfg = load(path, env=env)
    assert cfg.limits.sendq_bytes == 8192
    assert cfg.server.name == "from-env"
    assert cfg.limits.flood_exempt == ["10.0.0.0/8"]
    assert cfg.log.console is False


def test_environment_without_a_file() -> None:
    cfg = load(None, env={"SALAS__LIMITS__SENDQ_BYTES": "4096"})
    assert cfg.limits.sendq_bytes == 4096


def test_environment_names_are_case_insensitive_after_the_prefix() -> None:
    cfg = load(None, env={"SALAS__limits__Sendq_Bytes": "5000"})
    assert cfg.limits.sendq_bytes == 5000


def test_environment_with_a_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"limits\.sendq_bytes"):
        load(None, env={"SALAS__LIMITS__SENDQ_BYTES": "lots"})


def test_environment_unknown_key_is_a_warning() -> None:
    cfg = load(None, env={"SALAS__LIMITS__SENDQ": "1"})
    assert any("limits.sendq" in w for w in cfg.warnings)


def test_environment_names_of_the_wrong_shape_are_ignored() -> None:
    cfg = load(None, env={"SALAS__NAME": "x", "SALAS__A__B__C": "y"})
    assert cfg == load(None, env={})


def test_environment_string_keys_take_any_text() -> None:
    cfg = load(None, env={"SALAS__SERVER__NETWORK": "2600"})
    assert cfg.server.network == "2600"


# -- --listen --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected", "shown"),
    [
        ("line:6900", Listen("line", None, 6900), "line:*:6900"),
        ("line:127.0.0.1:0", Listen("line", "127.0.0.1", 0), "line:127.0.0.1:0"),
        ("cs168:[::1]:55555", Listen("cs168", "::1", 55555), "cs168:[::1]:55555"),
        ("cs168:0.0.0.0:65535", Listen("cs168", "0.0.0.0", 65535), "cs168:0.0.0.0:65535"),
        ("line:localhost:6900", Listen("line", "localhost", 6900), "line:localhost:6900"),
    ],
)
def test_parse_listen(spec: str, expected: Listen, shown: str) -> None:
    assert parse_listen(spec) == expected
    assert str(parse_listen(spec)) == shown


@pytest.mark.parametrize(
    "spec",
    [
        "6900",
        "line",
        "ftp:21",
        "LINE:6900",
        "line:",
        "line:abc",
        "line:-1",
        "line:65536",
        "line:99999",
        "line:127.0.0.1:",
        "line:[::1]",
        "line:[::1]6900",
        "line:[::1:6900",
        "cs168:::1:x",
    ],
)
def test_parse_listen_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="--listen"):
        parse_listen(spec)


@pytest.mark.parametrize("door", DOORS)
def test_every_door_of_the_spec_can_be_opened(door: str) -> None:
    """SPEC: PROTO is one of line, irc, http, cs168; every one of them is built."""
    for spec in (f"{door}:6667", f"{door}:127.0.0.1:6667"):
        assert parse_listen(spec).door == door
    assert set(DOORS) == {"line", "irc", "http", "cs168"}


def test_http_listen_and_settings() -> None:
    assert parse_listen("http:8080") == Listen("http", None, 8080)
    assert parse_listen("http:[::1]:8080") == Listen("http", "::1", 8080)
    cfg = from_dict({"http": {"ping_interval": 5, "ping_timeout": 2.5}})
    assert (cfg.http.ping_interval, cfg.http.ping_timeout) == (5.0, 2.5)
    with pytest.raises(ConfigError, match=r"http\.ping_interval"):
        from_dict({"http": {"ping_interval": 0.5}})
    with pytest.raises(ConfigError, match=r"http\.ping_timeout"):
        from_dict({"http": {"ping_timeout": "soon"}})


def test_parse_listen_superscript_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_listen("line:²")


def test_the_store_is_sqlite_in_the_data_dir_by_default(tmp_path: Path) -> None:
    cfg = from_dict({"server": {"data_dir": str(tmp_path)}})
    assert store_path(cfg) == tmp_path / "salas.db"
    assert (cfg.history.on_join, cfg.history.retention_days, cfg.store.fsync) == (20, 0.0, False)


@pytest.mark.parametrize(
    ("url", "path"),
    [("memory:", None), ("sqlite:///var/lib/chat.db", Path("/var/lib/chat.db"))],
)
def test_store_urls(url: str, path: Path | None) -> None:
    assert store_path(from_dict({"store": {"url": url}})) == path


@pytest.mark.parametrize(
    "url", ["postgresql://salas@db.example/salas", "postgres://salas:pw@127.0.0.1:5433/chat"]
)
def test_a_postgresql_url_names_no_file_and_is_logged_without_its_password(url: str) -> None:
    cfg = from_dict({"store": {"url": url}})
    assert (store_path(cfg), postgres_url(cfg)) == (None, url)
    assert "pw" not in store_label(cfg) and store_label(cfg).startswith(url.split("@")[0][:10])


@pytest.mark.parametrize(
    "url", ["mysql://x", "sqlite://relative.db", "sqlite:///", "mem", "postgresql://"]
)
def test_a_store_url_this_build_cannot_open_is_an_error_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^store\.url: "):
        from_dict({"store": {"url": url}})


def test_history_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"history\.max_request"):
        from_dict({"history": {"max_request": 0}})
    with pytest.raises(ConfigError, match=r"history\.on_join"):
        from_dict({"history": {"on_join": -1}})
