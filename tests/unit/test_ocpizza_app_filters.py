from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from ansible.errors import AnsibleFilterError
from ocpizza_app import FilterModule, database_url

NASTY = "p@ss:w/rd#%?&"


def decode(url: str) -> dict[str, object]:
    """Decode a URL the way the application does (dj-database-url: urlsplit + unquote)."""
    parts = urlsplit(url)
    return {
        "scheme": parts.scheme,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "host": parts.hostname,
        "port": parts.port,
        "name": unquote(parts.path[1:]),
    }


def test_plain_url():
    url = database_url("10.0.0.5", user="oc_pizza", password="secret", name="oc_pizza")
    assert url == "mysql://oc_pizza:secret@10.0.0.5:3306/oc_pizza"


def test_special_characters_in_password_round_trip():
    url = database_url("db.internal", user="oc_pizza", password=NASTY, name="oc_pizza", port=3307)
    assert url == "mysql://oc_pizza:p%40ss%3Aw%2Frd%23%25%3F%26@db.internal:3307/oc_pizza"
    assert decode(url) == {
        "scheme": "mysql", "user": "oc_pizza", "password": NASTY,
        "host": "db.internal", "port": 3307, "name": "oc_pizza",
    }  # fmt: skip


@pytest.mark.parametrize(
    "password", [NASTY, "a b+c", "é€ü/", "%2F", "@@::", "[]{}'\"\\", "x" * 200]
)
def test_any_password_survives_decoding(password):
    url = database_url("db", user="u@x:y", password=password, name="oc_pizza")
    decoded = decode(url)
    assert decoded["password"] == password
    assert decoded["user"] == "u@x:y"
    assert decoded["host"] == "db"


def test_ipv6_host_is_bracketed():
    url = database_url("fd00::5", user="u", password="p", name="d")
    assert url == "mysql://u:p@[fd00::5]:3306/d"
    assert decode(url)["host"] == "fd00::5"


def test_port_as_string_and_scheme():
    assert database_url("h", user="u", password="p", name="d", port="3306", scheme="mysql2") == (
        "mysql2://u:p@h:3306/d"
    )


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"host": ""}, "host"),
        ({"host": None}, "host"),
        ({"host": "db/evil"}, "host"),
        ({"host": "user@db"}, "host"),
        ({"host": "db:3306"}, "host"),
        ({"user": ""}, "user"),
        ({"user": None}, "user"),
        ({"user": "a\nb"}, "user"),
        ({"password": ""}, "password"),
        ({"password": None}, "password"),
        ({"password": 1234}, "password"),
        ({"name": ""}, "name"),
        ({"name": "oc-pizza"}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "33o6"}, "port"),
        ({"port": True}, "port"),
        ({"port": "3306.5"}, "port"),
        ({"scheme": "my sql"}, "scheme"),
    ],
)
def test_bad_inputs_are_refused_naming_the_option(kwargs, option):
    args = {"host": "db", "user": "u", "password": "pw", "name": "oc_pizza", **kwargs}
    host = args.pop("host")
    with pytest.raises(AnsibleFilterError, match=rf"ocpizza_database_url: {option} "):
        database_url(host, **args)


@pytest.mark.parametrize("password", ["sup3r-s3cret\n", 12345678])
def test_errors_never_show_the_password(password):
    with pytest.raises(AnsibleFilterError) as error:
        database_url("db", user="u", password=password, name="d")
    assert str(password).strip() not in str(error.value)


def test_registered_name():
    assert FilterModule().filters()["ocpizza_database_url"] is database_url
