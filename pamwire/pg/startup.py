"""Settings a client asks for in its StartupMessage, read the way the server reads them.

A StartupMessage can change server settings in two ways: a parameter named after the
setting (``DateStyle=ISO``), or the ``options`` parameter holding command-line
switches (``-c name=value`` or ``--name=value``, separated by spaces, a backslash
escaping the next character). pamwire reads both, so that settings which would
weaken its checks are refused before the session starts.
"""

from __future__ import annotations

from pamwire.errors import ClientProtocolError

# Startup parameters that are not server settings (protocol docs, StartupMessage).
PROTOCOL_PARAMETERS = frozenset({"user", "database", "options", "replication"})

# Settings a person may not choose at startup: they change whose privileges apply,
# or lift read-only protection that a grant relies on.
REFUSED_SETTINGS = frozenset(
    {
        "role",
        "session_authorization",
        "default_transaction_read_only",
        "transaction_read_only",
        "session_replication_role",
    }
)


def split_options(options: str) -> list[str]:
    """Split an `options` value into words: spaces separate, backslash escapes."""
    words: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if escaped:
        raise ClientProtocolError("startup options end with a lone backslash")
    if current:
        words.append("".join(current))
    return words


def option_settings(options: str) -> list[tuple[str, str]]:
    """The (name, value) settings of an `options` value; ClientProtocolError otherwise.

    Only `-c name=value`, `-cname=value` and `--name=value` are accepted: the
    other postgres command-line switches are refused, since pamwire cannot vouch
    for what they do.
    """
    words = split_options(options)
    settings: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c":
            if i + 1 >= len(words):
                raise ClientProtocolError("startup option -c without a setting")
            assignment = words[i + 1]
            i += 2
        elif word.startswith("-c") or word.startswith("--"):
            assignment = word[2:]
            i += 1
        else:
            raise ClientProtocolError(f"unsupported startup option {word!r}")
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise ClientProtocolError(
                f"startup option {assignment!r} is not name=value"
            )
        settings.append((_normalise(name), value))
    return settings


def requested_settings(parameters: dict[str, str]) -> list[tuple[str, str]]:
    """Every server setting a StartupMessage asks for, from parameters and options."""
    settings = [
        (_normalise(name), value)
        for name, value in parameters.items()
        if name not in PROTOCOL_PARAMETERS and not name.startswith("_pq_.")
    ]
    if parameters.get("options"):
        settings.extend(option_settings(parameters["options"]))
    return settings


def refused_settings(settings: list[tuple[str, str]]) -> list[str]:
    """Names of the settings among these that a client may not set at startup.

    Turning a read-only setting on only restricts the session, so it is allowed.
    """
    return sorted(
        {
            name
            for name, value in settings
            if name in REFUSED_SETTINGS
            and not (name.endswith("read_only") and _is_on(value))
        }
    )


def _is_on(value: str) -> bool:
    return value.strip().lower() in ("on", "true", "yes", "1", "t", "y")


def _normalise(name: str) -> str:
    # The server treats setting names case-insensitively and '-' as '_' in options.
    return name.strip().lower().replace("-", "_")


def parse_search_path(value: str, *, user: str) -> tuple[str, ...]:
    """The schemas of a search_path value, in order; `$user` becomes the user name.

    Unquoted names are folded to lower case as the server folds identifiers.
    """
    schemas: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if not name:
            continue
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('""', '"')
        else:
            name = name.lower()
        schemas.append(user if name == "$user" else name)
    return tuple(schemas)


# Startup parameters that are pamwire's own (e.g. pamwire.role) never go upstream.
PAMWIRE_PREFIX = "pamwire."


def for_upstream(parameters: dict[str, str]) -> dict[str, str]:
    """The startup parameters to pass on: pamwire's own ones removed, also from
    `options` (which is rebuilt only when it held one of them)."""
    out = {k: v for k, v in parameters.items() if not k.startswith(PAMWIRE_PREFIX)}
    options = out.get("options")
    if options and PAMWIRE_PREFIX in options:
        kept = [
            (name, value)
            for name, value in option_settings(options)
            if not name.startswith(PAMWIRE_PREFIX)
        ]
        out["options"] = " ".join(f"-c {_escape(n)}={_escape(v)}" for n, v in kept)
    return out


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace(" ", "\\ ")
