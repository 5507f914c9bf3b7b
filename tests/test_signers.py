"""papillon/signers.py and `flask publish`: the public list of signers. Only those who agreed are named, everyone
is counted, nothing else is shown."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from pages import decrypt_args, page_tokens

from papillon import signers


def sign(client: FlaskClient, name: str, organization: str = "", email: str = "", listed: bool = False) -> None:
    data = {**page_tokens(client), "signing_as": "individual", "name": name, "organization": organization}
    data |= {"email": email} if email else {}
    data |= {"list_my_name": "y"} if listed else {}
    assert client.post("/petition/sign", data=data).status_code == 303


def test_only_signers_who_agreed_are_named_on_the_campaign_page_and_everyone_is_counted(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, script, organizer_key_file, tmp_path
) -> None:
    sign(client, "Zqv Named Signer", "Butterfly", email="named@example.org", listed=True)
    sign(client, "Zqv Quiet Signer", "Quiet Collective", email="quiet@example.org")
    sign(client, "Ana Álvarez", listed=True)
    sign(client, "Zqv Named Signer", "Butterfly", email="named@example.org", listed=True)  # signed twice
    bundle_path = tmp_path / "export.bundle"
    assert runner.invoke(args=["export", "--out", str(bundle_path)]).exit_code == 0

    listed = tmp_path / "signers.json"
    out = tmp_path / "answers"
    assert script("decrypt").main([*decrypt_args(bundle_path, organizer_key_file, out), "--publish", str(listed)]) == 0
    doc = json.loads(listed.read_text(encoding="utf-8"))
    assert doc["campaigns"] == {
        "petition": {
            "count": 3,
            "signers": [{"name": "Ana Álvarez"}, {"name": "Zqv Named Signer", "organization": "Butterfly"}],
        }
    }
    assert "quiet" not in listed.read_text().lower()
    assert "@" not in listed.read_text()

    result = runner.invoke(args=["publish", str(listed)])
    assert result.exit_code == 0, result.output
    assert "petition: 3 signature(s), 2 listed by name" in result.output
    page = client.get("/petition/").get_data(as_text=True)
    assert "3 signatures so far" in page
    assert "<li>Ana Álvarez</li>" in page
    assert "<li>Zqv Named Signer, Butterfly</li>" in page
    assert "Quiet" not in page
    assert "example.org" not in page
    assert page.index("Ana Álvarez") < page.index("Zqv Named Signer")  # sorted, not in the order they signed


def test_publishing_again_replaces_the_list_and_names_are_shown_as_text(
    client: FlaskClient, runner: FlaskCliRunner, tmp_path
) -> None:
    path = tmp_path / "signers.json"
    first = {"petition": signers.Listing(count=3, signers=[{"name": "<script>alert(1)</script>"}])}
    path.write_text(signers.dumps(first))
    assert runner.invoke(args=["publish", str(path)]).exit_code == 0
    page = client.get("/petition/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    path.write_text(signers.dumps({"petition": signers.Listing(count=5, signers=[])}))
    assert runner.invoke(args=["publish", str(path)]).exit_code == 0
    page = client.get("/petition/").get_data(as_text=True)
    assert "5 signatures so far" in page
    assert "alert" not in page
    assert "signatures so far" not in client.get("/letter/").get_data(as_text=True)


def test_the_count_speaks_the_page_language(client: FlaskClient, runner: FlaskCliRunner, tmp_path) -> None:
    path = tmp_path / "signers.json"
    path.write_text(signers.dumps({"petition": signers.Listing(count=1, signers=[{"name": "Ada"}])}))
    assert runner.invoke(args=["publish", str(path)]).exit_code == 0
    assert "1 signature so far" in client.get("/en/petition/").get_data(as_text=True)
    assert "지금까지 1명이 서명했습니다" in client.get("/ko/petition/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not json", "not valid JSON"),
        ({"format": "other"}, "not a Papillon signers file"),
        ({"format": signers.FORMAT, "version": 1, "campaigns": {"../x": {"count": 1, "signers": []}}}, "slug"),
        (
            {"format": signers.FORMAT, "version": 1, "campaigns": {"petition": {"count": 0, "signers": [{"n": "A"}]}}},
            "no longer",
        ),
        (
            {
                "format": signers.FORMAT,
                "version": 1,
                "campaigns": {"petition": {"count": 1, "signers": [{"Name!": "A"}]}},
            },
            "answer names",
        ),
        (
            {
                "format": signers.FORMAT,
                "version": 1,
                "campaigns": {"petition": {"count": 1, "signers": [{"n": "x" * 201}]}},
            },
            "1 to 200",
        ),
        (
            {"format": signers.FORMAT, "version": 1, "campaigns": {"petition": {"count": -1, "signers": []}}},
            "whole number",
        ),
    ],
)
def test_a_signers_file_of_another_shape_is_refused_and_nothing_published(
    client: FlaskClient, runner: FlaskCliRunner, tmp_path, doc, message
) -> None:
    path = tmp_path / "signers.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    result = runner.invoke(args=["publish", str(path)])
    assert result.exit_code != 0
    assert message in result.output
    assert "nothing was published" in result.output
    assert "signatures so far" not in client.get("/petition/").get_data(as_text=True)


def test_a_list_for_a_campaign_the_server_does_not_have_is_refused(runner: FlaskCliRunner, tmp_path) -> None:
    path = tmp_path / "signers.json"
    path.write_text(signers.dumps({"elsewhere": signers.Listing(count=1, signers=[])}))
    result = runner.invoke(args=["publish", str(path)])
    assert result.exit_code != 0
    assert "no campaign 'elsewhere'" in result.output


@pytest.mark.parametrize(
    ("campaign", "signer", "refused"),
    [
        ("petition", {"name": "Zqv Leaked", "email": "zqv.leaked@example.org"}, "'email'"),
        ("petition", {"name": "Zqv Leaked", "phone": "+1 555 0100 999"}, "'phone'"),
        ("letter", {"name": "Zqv Leaked"}, "'name'"),  # this campaign's forms publish nothing
    ],
)
def test_a_list_holding_an_answer_its_campaign_does_not_publish_is_refused_and_never_shown(
    client: FlaskClient, runner: FlaskCliRunner, tmp_path, campaign, signer, refused
) -> None:
    path = tmp_path / "signers.json"
    path.write_text(signers.dumps({"petition": signers.Listing(count=1, signers=[{"name": "Ada"}])}))
    assert runner.invoke(args=["publish", str(path)]).exit_code == 0
    path.write_text(signers.dumps({campaign: signers.Listing(count=2, signers=[signer])}))
    result = runner.invoke(args=["publish", str(path)])
    assert result.exit_code != 0
    assert f"{refused} is not an answer" in result.output
    assert "nothing was published" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert all(value not in result.output for value in signer.values())
    for page in (client.get("/petition/").get_data(as_text=True), client.get("/letter/").get_data(as_text=True)):
        assert "Zqv Leaked" not in page
        assert "zqv.leaked" not in page
        assert "0100 999" not in page
    page = client.get("/petition/").get_data(as_text=True)
    assert "<li>Ada</li>" in page
    assert "1 signature so far" in page
