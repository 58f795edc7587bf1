"""Reading .env strictly: what a shell user expects parses; everything else names file:line."""

from pathlib import Path

import pytest

from components.envfile import read_env
from components.errors import InputError

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEfakefakefake\nZm9vYmFy\n-----END RSA PRIVATE KEY-----"


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / ".env"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


PARSES = [
    ("plain", "A=1\nB=two\n", {"A": "1", "B": "two"}),
    ("export prefix", "export A=1\n", {"A": "1"}),
    ("single quotes", "A='x y # not a comment'\n", {"A": "x y # not a comment"}),
    ("double quotes", 'A="x \\"y\\""\n', {"A": 'x "y"'}),
    ("comments", "# heading\nA=1 # trailing\n\n# more\nB=2\n", {"A": "1", "B": "2"}),
    ("crlf", "A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("bom", "\ufeffA=1\n", {"A": "1"}),
    ("empty value", "A=\n", {"A": ""}),
    ("no interpolation unquoted", "A=${HOME}\n", {"A": "${HOME}"}),
    ("no interpolation double quoted", 'A="${HOME}/x"\n', {"A": "${HOME}/x"}),
    ("pem multi-line", f'KEY_PEM="{PEM}"\nNEXT=1\n', {"KEY_PEM": PEM, "NEXT": "1"}),
]


@pytest.mark.parametrize(("label", "content", "expected"), PARSES, ids=[case[0] for case in PARSES])
def test_parses_like_a_shell_user_expects(tmp_path, label, content, expected):
    env = read_env(write(tmp_path, content))
    assert {k: e.value for k, e in env.items()} == expected, label


def test_interpolation_stays_off_even_when_the_variable_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("OTHER", "from-the-ci-environment")
    env = read_env(write(tmp_path, 'A=${OTHER}\nB="${OTHER}"\n'))
    assert env["A"].value == "${OTHER}"
    assert env["B"].value == "${OTHER}"


def test_line_numbers_count_blank_lines_and_comments(tmp_path):
    env = read_env(write(tmp_path, "\n# c\n\nA=1\n\n\nB='two\nlines'\nC=3\n"))
    assert {k: e.line for k, e in env.items()} == {"A": 4, "B": 7, "C": 9}


BAD_LINES = [
    ("duplicate key", "A=1\nB=2\nA=3\n", 3, "duplicate key A (first on line 1)"),
    ("unterminated quote", "A=1\n\nB='never closed\nC=3\n", 3, "cannot parse"),
    ("key starts with digit", "A=1\n1BAD=x\n", 2, "invalid key name"),
    ("key with space", "A=1\nBAD KEY=x\n", 2, "cannot parse"),
    ("no equals sign", "A=1\nJUSTAWORD\n", 2, "has no '='"),
    ("not utf-8", b"A=1\nB=caf\xe9\n", 2, "not valid UTF-8"),
]


@pytest.mark.parametrize(("label", "content", "line", "fragment"), BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_bad_lines_name_file_and_line(tmp_path, label, content, line, fragment):
    path = write(tmp_path, content)
    with pytest.raises(InputError) as err:
        read_env(path)
    assert str(err.value).startswith(f"{path}:{line}: "), label
    assert fragment in str(err.value)


def test_errors_never_quote_the_value(tmp_path):
    canary = "canary-value-7f3a9"
    for content in [f"A='{canary}\n", f"{canary}\n", f"9{canary}={canary}\n"]:
        with pytest.raises(InputError) as err:
            read_env(write(tmp_path, content))
        assert canary not in str(err.value)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [(lambda p: p / "absent.env", "no such file"), (lambda p: p, "is a directory")],
    ids=["missing file", "directory"],
)
def test_unreadable_paths(tmp_path, make, fragment):
    with pytest.raises(InputError, match=fragment):
        read_env(make(tmp_path))


# --- stray values (issue 9.10): a line that is a value, not KEY=value ---------------------------------

STRAY_LINES = [
    ("base64 with == padding", "c2VjcmV0LXZhbHVl=="),
    ("base64 with = padding", "c2VjcmV0LXZhbHVlcw="),
    ("export before a base64 blob", "export c2VjcmV0LXZhbHVlcw="),
    ("base32 with padding", "MFRGGZDFMZTWQ2LK=="),
    ("hex digest", "d41d8cd98f00b204e9800998ecf8427e="),
    ("long mixed-case blob", "QWxhZGRpbjpvcGVuIHNlc2FtZQ="),
    ("aws access key id", "AKIAIOSFODNN7EXAMPLE="),
    ("aws access key id with a value", "AKIAIOSFODNN7EXAMPLE=wJalrXUtnFEMI"),
    ("github token", "ghp_" + "a1B2" * 9 + "="),
    ("stripe live key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc="),
]


@pytest.mark.parametrize(("label", "line"), STRAY_LINES, ids=[c[0] for c in STRAY_LINES])
def test_a_line_that_looks_like_a_value_is_an_error_that_does_not_echo_it(tmp_path, label, line):
    path = write(tmp_path, f"LOG_LEVEL=INFO\n\n{line}\nDRY_RUN=true\n")
    with pytest.raises(InputError) as err:
        read_env(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: looks like a pasted value, not KEY=value"), label
    blob = line.removeprefix("export ").split("=")[0]
    assert blob not in message and blob[:8] not in message


REAL_EMPTY_KEYS = [
    ("secret with an empty value", "DATABASE_PASSWORD=", {"DATABASE_PASSWORD": ""}),
    ("api key with an empty value", "MAPS_API_KEY=", {"MAPS_API_KEY": ""}),
    ("lower-case key", "log_level=", {"log_level": ""}),
    ("single word", "TOKEN=", {"TOKEN": ""}),
    ("upper-case with digits", "HTTP2_PORT=", {"HTTP2_PORT": ""}),
    ("short mixed case", "myKey=", {"myKey": ""}),
    ("mixed case with underscores", "Database_Password=", {"Database_Password": ""}),
    ("quoted empty value is deliberate", 'c2VjcmV0LXZhbHVl=""', {"c2VjcmV0LXZhbHVl": ""}),
    ("mixed case with a real value", "myServiceApiUrl=http://x", {"myServiceApiUrl": "http://x"}),
    ("a value of = when quoted", 'SEPARATOR="="', {"SEPARATOR": "="}),
    ("value that is base64", "ENCODED_KEY=c2VjcmV0LXZhbHVl==", {"ENCODED_KEY": "c2VjcmV0LXZhbHVl=="}),
]


@pytest.mark.parametrize(("label", "line", "expected"), REAL_EMPTY_KEYS, ids=[c[0] for c in REAL_EMPTY_KEYS])
def test_real_keys_with_empty_values_still_parse(tmp_path, label, line, expected):
    env = read_env(write(tmp_path, line + "\n"))
    assert {k: e.value for k, e in env.items()} == expected, label
