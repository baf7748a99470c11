"""TLS settings: the listener and target keys, and the contexts built at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pamwire.config import Config, parse_config
from pamwire.errors import ConfigError
from pamwire.server.tls import server_tls, upstream_tls
from tests.tlsfiles import TlsFiles, make_tls_files


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _config(tmp_path: Path, listener: dict[str, object], **target: object) -> Config:
    raw = {
        "listener": [{"protocol": "postgres", "port": 0, **listener}],
        "target": {
            "app": {
                "protocol": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "database": "app",
                "credential": {"user": "app", "password_env": "X"},
                **target,
            }
        },
    }
    return parse_config(raw, tmp_path / "pamwire.toml")


def _listener(files: TlsFiles, **extra: object) -> dict[str, object]:
    return {
        "tls": "require",
        "tls_cert_file": str(files.cert),
        "tls_key_file": str(files.key),
        **extra,
    }


def test_server_tls_builds_a_context_for_require(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    tls = server_tls(_config(tmp_path, _listener(tls_files)), 0)
    assert tls is not None and tls.required
    assert tls.context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_server_tls_off_is_none(tmp_path: Path) -> None:
    assert server_tls(_config(tmp_path, {}), 0) is None


def test_listener_tls_without_certificate_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"listener\[0\]\.tls_cert_file: required"):
        _config(tmp_path, {"tls": "allow"})


def test_listener_certificate_with_tls_off_is_refused(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    with pytest.raises(ConfigError, match=r"tls_cert_file: not used when tls is 'off'"):
        _config(tmp_path, _listener(tls_files, tls="off"))


def test_listener_tls_unknown_mode_lists_the_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'on' is not one of off, allow, require"):
        _config(tmp_path, {"tls": "on"})


def test_server_tls_missing_certificate_names_key_and_file(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    missing = tmp_path / "nowhere.pem"
    config = _config(tmp_path, _listener(tls_files, tls_cert_file=str(missing)))
    with pytest.raises(ConfigError) as caught:
        server_tls(config, 0)
    message = str(caught.value)
    assert "listener[0].tls_cert_file" in message and str(missing) in message


def test_server_tls_key_that_is_not_pem_is_refused(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    config = _config(tmp_path, _listener(tls_files, tls_key_file=str(tls_files.ca)))
    with pytest.raises(ConfigError, match=r"tls_key_file: no usable PEM private key"):
        server_tls(config, 0)


def test_server_tls_mismatched_key_names_both_files_not_the_key(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    config = _config(
        tmp_path, _listener(tls_files, tls_key_file=str(tls_files.other_key))
    )
    with pytest.raises(ConfigError) as caught:
        server_tls(config, 0)
    message = str(caught.value)
    assert "tls_key_file" in message and "does not match" in message
    assert str(tls_files.other_key) in message and str(tls_files.cert) in message
    key_body = tls_files.other_key.read_text().splitlines()[1]
    assert key_body not in message


def test_server_tls_encrypted_key_is_refused_without_prompting(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(tls_files.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    config = _config(tmp_path, _listener(tls_files, tls_key_file=str(encrypted)))
    with pytest.raises(ConfigError, match="is encrypted"):
        server_tls(config, 0)


def test_upstream_tls_modes(tmp_path: Path, tls_files: TlsFiles) -> None:
    config = _config(tmp_path, {})
    target = config.targets["app"]
    assert not upstream_tls(config, target).wanted
    require = _config(tmp_path, {}, tls="require")
    tls = upstream_tls(require, require.targets["app"])
    assert tls.required and tls.context is not None
    assert tls.context.verify_mode == ssl.CERT_NONE
    full = _config(tmp_path, {}, tls="verify-full", tls_ca_file=str(tls_files.ca))
    tls = upstream_tls(full, full.targets["app"])
    assert tls.context is not None and tls.context.check_hostname
    prefer = _config(tmp_path, {}, tls="prefer")
    assert not upstream_tls(prefer, prefer.targets["app"]).required


def test_upstream_tls_bad_ca_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    config = _config(tmp_path, {}, tls="verify-ca", tls_ca_file=str(bad))
    with pytest.raises(ConfigError, match=r"target\.app\.tls_ca_file: cannot use"):
        upstream_tls(config, config.targets["app"])


def test_target_ca_file_without_verification_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls_ca_file: only used when tls is verify"):
        _config(tmp_path, {}, tls="require", tls_ca_file="ca.pem")
