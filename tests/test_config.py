"""Configuration loading: typed keys, errors naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pamwire.config import load_config
from pamwire.errors import ConfigError

GOOD = """\
[[listener]]
protocol = "postgres"
port = 7000

[target.orders]
protocol = "postgres"
host = "127.0.0.1"
port = 5432
database = "orders"
credential.user = "svc"
credential.password_env = "ORDERS_PW"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pamwire.toml"
    path.write_text(text)
    return path


def test_config_loads_targets_and_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.listeners[0].port == 7000
    assert config.listeners[0].host == "127.0.0.1"
    target = config.targets["orders"]
    assert target.database == "orders" and target.connect_timeout == 10.0
    assert config.rules.files == ("pack:baseline",)
    assert config.resolve("audit.db") == tmp_path.resolve() / "audit.db"


def test_config_unknown_key_names_file_key_and_nearest(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GOOD.replace('protocol = "postgres"\nhost', 'protocl = "x"\nhost')
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path.resolve()) in text
    assert "target.orders.protocl" in text and "'protocol'" in text


def test_config_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("port = 5432", 'port = "5432"'))
    with pytest.raises(ConfigError, match=r"target\.orders\.port: must be an integer"):
        load_config(path)


def test_config_bad_protocol_lists_allowed_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        GOOD.replace(
            'protocol = "postgres"\nport = 7000', 'protocol = "http"\nport = 7000'
        ),
    )
    with pytest.raises(
        ConfigError,
        match=r"listener\[0\]\.protocol: 'http' is not one of postgres, mysql",
    ):
        load_config(path)


def test_config_inline_password_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        GOOD.replace(
            'credential.password_env = "ORDERS_PW"', 'credential.password = "x"'
        ),
    )
    with pytest.raises(
        ConfigError, match=r"target\.orders\.credential\.password: unknown key"
    ):
        load_config(path)


def test_config_missing_required_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('database = "orders"\n', ""))
    with pytest.raises(
        ConfigError, match=r"target\.orders\.database: required key is missing"
    ):
        load_config(path)


def test_config_secret_from_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(_write(tmp_path, GOOD))
    target = config.targets["orders"]
    with pytest.raises(ConfigError, match="ORDERS_PW is not set"):
        config.read_secret(target.credential, key="target.orders.credential")
    monkeypatch.setenv("ORDERS_PW", "s3cret")
    assert config.read_secret(target.credential, key="k") == "s3cret"
    (tmp_path / "pw").write_text("from-file\nignored\n")
    config = load_config(
        _write(
            tmp_path,
            GOOD.replace(
                'credential.password_env = "ORDERS_PW"',
                'credential.password_file = "pw"',
            ),
        )
    )
    assert (
        config.read_secret(config.targets["orders"].credential, key="k") == "from-file"
    )


def test_config_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_config_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[[listener]\n"))


def test_config_listener_default_port_depends_on_protocol(tmp_path: Path) -> None:
    text = '[[listener]]\nprotocol = "postgres"\n\n[[listener]]\nprotocol = "mysql"\n'
    config = load_config(_write(tmp_path, text))
    assert [listener.port for listener in config.listeners] == [6432, 3307]


def test_config_alias_lets_two_protocols_share_a_target_name(tmp_path: Path) -> None:
    mysql = GOOD.replace("[target.orders]", "[target.orders-my]").replace(
        'protocol = "postgres"\nhost', 'protocol = "mysql"\nalias = "orders"\nhost'
    )
    text = GOOD + mysql[mysql.index("[target.orders-my]") :]
    config = load_config(_write(tmp_path, text))
    assert config.target_for("postgres", "orders") is config.targets["orders"]
    assert config.target_for("mysql", "orders") is config.targets["orders-my"]
    assert config.target_for("mysql", "orders-my") is None


def test_config_two_targets_reached_by_one_name_is_an_error(tmp_path: Path) -> None:
    twin = GOOD[GOOD.index("[target.orders]") :].replace(
        "[target.orders]", '[target.orders2]\nalias = "orders"'
    )
    with pytest.raises(ConfigError, match=r"would reach both target\.orders"):
        load_config(_write(tmp_path, GOOD + twin))


def test_config_target_deprecate_eof_lists_allowed_values(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.targets["orders"].deprecate_eof == "client"
    bad = GOOD.replace(
        'credential.password_env = "ORDERS_PW"',
        'credential.password_env = "ORDERS_PW"\ndeprecate_eof = "yes"',
    )
    with pytest.raises(
        ConfigError,
        match=r"target\.orders\.deprecate_eof: 'yes' is not one of client, on, off",
    ):
        load_config(_write(tmp_path, bad))


def test_config_redact_literals_unknown_class_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "pamwire.toml"
    path.write_text('[audit]\nredact_literals = ["cards"]\n')
    with pytest.raises(ConfigError, match="unknown literal class 'cards'") as caught:
        load_config(path)
    assert "audit.redact_literals" in str(caught.value)


def test_config_redact_patterns_bad_regex_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "pamwire.toml"
    path.write_text("[audit.redact_patterns]\nbad = '('\n")
    with pytest.raises(ConfigError, match="does not compile") as caught:
        load_config(path)
    assert "audit.redact_patterns" in str(caught.value)
