"""``mina users``: list, tokens, token (a lost token replaced), revoke."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from mina import cli, db


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MINA_DATABASE, pointing at a file that does not exist yet."""
    path = tmp_path / "mina.sqlite3"
    monkeypatch.setenv("MINA_DATABASE", str(path))
    return path


def mina(*args: str) -> Result:
    """Run ``mina ARGS`` in process."""
    return CliRunner().invoke(cli.main, list(args))


def owner(database: Path, token: str) -> str | None:
    """The username *token* authenticates, or None."""
    with closing(db.connect(database)) as conn:
        user = db.user_for_token(conn, token)
    return None if user is None else user.username


def test_list_shows_users_their_tokens_and_last_use(database: Path) -> None:
    with freeze_time("2026-11-29 10:00:00"):
        ada = mina("users", "create", "ada", "--email", "ada@example.org").stdout.strip()
    with freeze_time("2026-11-29 11:30:00"):
        mina("users", "create", "grace")
        mina("users", "token", "grace")
    with freeze_time("2026-11-30 08:15:00"):
        assert "ada" == owner(database, ada)

    result = mina("users", "list")

    assert (0, "") == (result.exit_code, result.stderr)
    assert [
        "ID  USERNAME  EMAIL            CREATED           TOKENS  LAST USED",
        "1   ada       ada@example.org  2026-11-29 10:00  1       2026-11-30 08:15",
        "2   grace     -                2026-11-29 11:30  2       never",
    ] == result.stdout.splitlines()


def test_a_lost_token_is_replaced_and_the_old_one_revoked(database: Path) -> None:
    lost = mina("users", "create", "ada").stdout.strip()

    result = mina("users", "token", "ada", "--revoke-others")

    assert 0 == result.exit_code, result.output
    new = result.stdout.strip()
    assert [new] == result.stdout.splitlines()
    assert new.startswith(db.TOKEN_PREFIX)
    assert (
        "Issued token 2 for 'ada'. Revoked 1 other. The token above is shown only once:"
        " store it now. Clients send it as 'Authorization: Bearer <token>'.\n"
    ) == result.stderr
    assert ("ada", None) == (owner(database, new), owner(database, lost))


def test_last_use_outlives_the_token_that_was_used(database: Path) -> None:
    with freeze_time("2026-11-29 10:00:00"):
        lost = mina("users", "create", "ada").stdout.strip()
    with freeze_time("2026-11-30 08:15:00"):
        assert "ada" == owner(database, lost)
    with freeze_time("2026-12-01 09:00:00"):
        assert 0 == mina("users", "token", "ada", "--revoke-others").exit_code

    assert [
        "ID  USERNAME  EMAIL  CREATED           TOKENS  LAST USED",
        "1   ada       -      2026-11-29 10:00  1       2026-11-30 08:15",
    ] == mina("users", "list").stdout.splitlines()
    assert "never" == mina("users", "tokens", "ada").stdout.splitlines()[1].split()[-1]


def test_a_database_from_before_keeps_its_last_use(database: Path) -> None:
    # A database written before users' last use was kept: only the token knew it.
    with freeze_time("2026-11-29 10:00:00"):
        mina("users", "create", "ada")
    with closing(db.connect(database)) as conn:
        conn.execute("DROP TABLE user_activity")
        conn.execute("UPDATE api_tokens SET last_used_at = '2026-11-30T08:15:00.000+00:00'")
        conn.commit()

    db.initialize(database)

    assert "2026-11-30 08:15" == " ".join(mina("users", "list").stdout.splitlines()[1].split()[-2:])


def test_token_keeps_the_others_unless_asked(database: Path) -> None:
    first = mina("users", "create", "ada").stdout.strip()
    second = mina("users", "token", "ada")
    assert second.stderr.startswith("Issued token 2 for 'ada'. The token above")
    assert ("ada", "ada") == (owner(database, first), owner(database, second.stdout.strip()))


def test_revoke_all_or_one_token(database: Path) -> None:
    with freeze_time("2026-11-29 10:00:00"):
        first = mina("users", "create", "ada").stdout.strip()
        second = mina("users", "token", "ada").stdout.strip()
        third = mina("users", "token", "ada").stdout.strip()
    assert [
        "TOKEN ID  CREATED           LAST USED",
        "1         2026-11-29 10:00  never",
        "2         2026-11-29 10:00  never",
        "3         2026-11-29 10:00  never",
    ] == mina("users", "tokens", "ada").stdout.splitlines()

    result = mina("users", "revoke", "ada", "--token-id", "2")
    assert (0, "Revoked 1 token of 'ada'.\n") == (result.exit_code, result.stdout)
    assert ["ada", None, "ada"] == [owner(database, t) for t in (first, second, third)]

    result = mina("users", "revoke", "ada")
    assert (0, "Revoked 2 tokens of 'ada'.\n") == (result.exit_code, result.stdout)
    assert [None, None, None] == [owner(database, t) for t in (first, second, third)]
    assert "'ada' has no tokens; issue one with: mina users token ada\n" == (
        mina("users", "tokens", "ada").stdout
    )


def test_unknown_users_and_tokens_are_one_line_errors(database: Path) -> None:
    mina("users", "create", "ada")
    for args, message in [
        (("users", "token", "bob"), "Error: no user named 'bob'\n"),
        (("users", "revoke", "bob"), "Error: no user named 'bob'\n"),
        (("users", "tokens", "bob"), "Error: no user named 'bob'\n"),
        (("users", "revoke", "ada", "--token-id", "9"), "Error: 'ada' has no token with id 9\n"),
    ]:
        result = mina(*args)
        assert (1, "", message) == (result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("command", ["token", "revoke", "tokens"])
def test_usernames_are_validated_as_on_create(database: Path, command: str) -> None:
    result = mina("users", command, "two words")
    assert 2 == result.exit_code
    assert "Invalid value for 'USERNAME'" in result.stderr


def test_the_same_database_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINA_DATABASE")  # the default: in the instance folder
    for name in ("checkout", "elsewhere"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    mina("users", "create", "ada")

    monkeypatch.chdir(tmp_path / "elsewhere")
    result = mina("users", "list")

    assert (0, "") == (result.exit_code, result.stderr)
    assert ["1", "ada"] == result.stdout.splitlines()[1].split()[:2]
    assert [] == list((tmp_path / "elsewhere").iterdir())


def test_data_of_an_older_mina_in_var_is_pointed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINA_DATABASE")
    monkeypatch.delenv("MINA_SENTRY_OUTBOX")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    db.initialize(tmp_path / "var" / "mina.sqlite3")
    instance = tmp_path / "instance"

    result = mina("users", "list")

    assert 0 == result.exit_code
    assert [
        f"mina: {tmp_path}/var/mina.sqlite3 hold(s) data of an older Mina, which now keeps"
        f" its data in {instance}: move it there (mkdir -p {instance} && mv"
        f" {tmp_path}/var/mina.sqlite3 {instance}/) or keep using it"
        f" (MINA_INSTANCE_PATH={tmp_path}/var)",
        "No users yet; create one with: mina users create NAME",
    ] == result.stderr.splitlines()
