"""papillon/bundle.py: export bundles written atomically, read back exactly, and refused when damaged in any way."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from papillon import bundle
from papillon.bundle import BundleError, Record

CAMPAIGNS = {"declaration": {"slug": "declaration", "title": "D\u00e9claration \u738b"}}


def records(n: int = 3) -> list[Record]:
    return [
        Record(
            id=f"{i:032x}",
            campaign="declaration",
            form="sign",
            received_on="2026-03-0" + str(i + 1),
            sealed_by="server" if i % 2 else "browser",
            envelope=json.dumps({"version": 1, "recipients": [{"key_id": "ab" * 8, "sealed": "QUJD" * (i + 1)}]}),
        )
        for i in range(n)
    ]


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "export.papillon"
    count = bundle.write(
        path, records(), created_on="2026-03-04", key_ids=["ff" * 8, "ab" * 8, "ab" * 8], campaigns=CAMPAIGNS
    )
    assert count == 3
    return path


def rewrite_with_checksum(path, lines: list[bytes]) -> None:
    """Write lines with a correct checksum trailer, to reach the checks behind the checksum."""
    body = b"".join(line + b"\n" for line in lines)
    trailer = json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(body + trailer)


def test_write_then_read_gives_back_every_record(written):
    read = bundle.read(written)
    assert read.records == records()
    assert read.created_on == "2026-03-04"
    assert read.key_ids == ["ab" * 8, "ff" * 8]
    assert read.campaigns == CAMPAIGNS


AB_KEY = bundle.Key("ab" * 8, "butterfly-2026", " ".join(["ABAB"] * 4 + ["0818", "6D35", "8BD7", "1C2E"]))
FF_KEY = bundle.Key("ff" * 8, "bo's key \u738b", " ".join(["FFFF"] * 4 + ["0000"] * 4))


def test_the_keys_names_and_fingerprints_round_trip_in_key_id_order(tmp_path):
    path = tmp_path / "keys.papillon"
    bundle.write(
        path,
        records(),
        created_on="2026-03-04",
        key_ids=["ff" * 8, "ab" * 8],
        campaigns=CAMPAIGNS,
        keys=[FF_KEY, AB_KEY],
    )
    header = json.loads(path.read_bytes().split(b"\n")[0])
    assert header["keys"] == [
        {"fingerprint": AB_KEY.fingerprint, "key_id": "ab" * 8, "name": "butterfly-2026"},
        {"fingerprint": FF_KEY.fingerprint, "key_id": "ff" * 8, "name": "bo's key \u738b"},
    ]
    read = bundle.read(path)
    assert read.keys == [AB_KEY, FF_KEY]
    assert bundle.known_keys([bundle.verify(path)]) == {"ab" * 8: AB_KEY, "ff" * 8: FF_KEY}


def test_a_bundle_without_keys_still_reads_and_knows_no_key_by_name(written):
    """As an older Papillon wrote it: key ids only."""
    assert "keys" not in json.loads(written.read_bytes().split(b"\n")[0])
    assert bundle.read(written).keys == []
    assert bundle.known_keys([bundle.verify(written)]) == {}


def test_the_server_writes_no_keys_the_laptop_would_refuse(tmp_path):
    path = tmp_path / "x.papillon"
    with pytest.raises(BundleError, match="each key in key_ids"):
        bundle.write(path, records(), created_on="2026-03-04", key_ids=["ab" * 8], campaigns={}, keys=[FF_KEY])
    assert not path.exists()


def test_a_key_name_is_made_fit_for_a_bundle():
    assert bundle.key_name("ana\x1b[2J") == "ana\ufffd[2J"
    assert bundle.key_name("x" * 500) == "x" * bundle.KEY_NAME_MAX
    assert bundle.key_name("") == "unnamed"


def test_header_counts_the_records(written):
    header = json.loads(written.read_bytes().split(b"\n")[0])
    assert header["format"] == bundle.FORMAT
    assert header["version"] == bundle.VERSION
    assert header["count"] == 3


def test_an_empty_bundle_round_trips(tmp_path):
    path = tmp_path / "empty.papillon"
    assert bundle.write(path, [], created_on="2026-03-04", key_ids=[], campaigns={}) == 0
    assert bundle.read(path).records == []


def test_a_truncated_bundle_is_refused(written):
    data = written.read_bytes()
    for cut in (1, 10, len(data) // 2, len(data) - 5):
        written.write_bytes(data[:cut])
        with pytest.raises(BundleError):
            bundle.read(written)


def test_a_bundle_cut_at_the_end_of_a_line_is_refused(written):
    data = written.read_bytes()
    ends = [i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")]
    assert len(ends) == 4
    for cut in ends:
        written.write_bytes(data[:cut])
        with pytest.raises(BundleError):
            bundle.read(written)


def test_a_bundle_missing_its_checksum_line_is_refused(written):
    lines = written.read_bytes().split(b"\n")
    written.write_bytes(b"\n".join(lines[:-2]) + b"\n")
    with pytest.raises(BundleError, match="checksum"):
        bundle.read(written)


def test_a_flipped_byte_is_refused(written):
    data = bytearray(written.read_bytes())
    for position in (5, len(data) // 2):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        written.write_bytes(bytes(damaged))
        with pytest.raises(BundleError, match="checksum mismatch"):
            bundle.read(written)


def test_a_removed_record_line_is_refused(written):
    lines = written.read_bytes().split(b"\n")
    del lines[2]
    written.write_bytes(b"\n".join(lines))
    with pytest.raises(BundleError, match="checksum mismatch"):
        bundle.read(written)


def test_a_removed_record_with_a_recomputed_checksum_is_refused_by_the_count(written):
    lines = written.read_bytes().split(b"\n")[:-2]
    del lines[2]
    rewrite_with_checksum(written, lines)
    with pytest.raises(BundleError, match="counts 3 records, found 2"):
        bundle.read(written)


def test_a_wrong_format_is_refused(written):
    lines = written.read_bytes().split(b"\n")[:-2]
    header = json.loads(lines[0])
    header["format"] = "something-else"
    rewrite_with_checksum(written, [json.dumps(header).encode(), *lines[1:]])
    with pytest.raises(BundleError, match="not a Papillon export bundle"):
        bundle.read(written)


def test_a_wrong_version_is_refused(written):
    lines = written.read_bytes().split(b"\n")[:-2]
    header = json.loads(lines[0])
    header["version"] = 2
    rewrite_with_checksum(written, [json.dumps(header).encode(), *lines[1:]])
    with pytest.raises(BundleError, match="version 2 is not supported"):
        bundle.read(written)


def test_a_malformed_record_line_is_refused(written):
    lines = written.read_bytes().split(b"\n")[:-2]
    record = json.loads(lines[1])
    record["ip_address"] = "203.0.113.9"
    rewrite_with_checksum(written, [lines[0], json.dumps(record).encode(), *lines[2:]])
    with pytest.raises(BundleError, match="malformed"):
        bundle.read(written)


def test_a_line_that_is_not_json_is_refused(written):
    lines = written.read_bytes().split(b"\n")[:-2]
    rewrite_with_checksum(written, [lines[0], b"not json", *lines[2:]])
    with pytest.raises(BundleError, match="not valid JSON"):
        bundle.read(written)


def test_a_missing_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "nowhere.papillon"
    with pytest.raises(BundleError, match="cannot be read") as err:
        bundle.read(path)
    assert str(path) in str(err.value)


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.papillon"
    path.write_bytes(b"")
    with pytest.raises(BundleError, match="incomplete"):
        bundle.read(path)


def test_write_leaves_no_temporary_file_behind(written):
    assert [p.name for p in written.parent.iterdir()] == [written.name]


def test_a_failed_write_leaves_neither_a_temporary_file_nor_a_bundle(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    path = tmp_path / "export.papillon"
    with pytest.raises(OSError, match="No space left"):
        bundle.write(path, records(), created_on="2026-03-04", key_ids=[], campaigns={})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_an_existing_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "export.papillon"
    path.write_bytes(b"previous bundle")

    def broken_replace(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="Input/output error"):
        bundle.write(path, records(), created_on="2026-03-04", key_ids=[], campaigns={})
    assert path.read_bytes() == b"previous bundle"
    assert [p.name for p in tmp_path.iterdir()] == ["export.papillon"]


# --- a bundle rewritten by a hostile server: the checksum is valid, the contents are not ----------------------


def hostile(tmp_path, header: dict | None = None, row: dict | None = None):
    """A bundle with a valid checksum whose header or first record was changed after the fact."""
    lines = [
        {
            "format": "papillon-bundle",
            "version": 1,
            "created_on": "2026-03-04",
            "count": 1,
            "key_ids": ["ab" * 8],
            "campaigns": CAMPAIGNS,
            **(header or {}),
        },
        {**records(1)[0].to_dict(), **(row or {})},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    path = tmp_path / "hostile.bundle"
    path.write_bytes(body + json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n")
    return path


@pytest.mark.parametrize(
    "header",
    [
        {"created_on": {"a": 1}},
        {"created_on": "=NOW()"},
        {"count": "1"},
        {"count": True},
        {"key_ids": 5},
        {"key_ids": ["=cmd|' /C calc'!A0"]},
        {"campaigns": []},
        {"campaigns": {"declaration": "not a table"}},
        {"campaigns": {"../x": {}}},
        {"keys": {}},
        {"keys": [AB_KEY.to_dict(), AB_KEY.to_dict()]},
        {"keys": [FF_KEY.to_dict()]},
        {"keys": []},
        {"keys": [{**AB_KEY.to_dict(), "public_key": "QUJD"}]},
        {"keys": [{"key_id": "ab" * 8, "name": "butterfly-2026"}]},
        {"keys": [{**AB_KEY.to_dict(), "key_id": ["ab"]}]},
        {"keys": [{**AB_KEY.to_dict(), "fingerprint": "=HYPERLINK(1)"}]},
        {"keys": [{**AB_KEY.to_dict(), "fingerprint": AB_KEY.fingerprint.lower()}]},
        {"keys": [{**AB_KEY.to_dict(), "fingerprint": FF_KEY.fingerprint}]},
        {"keys": [{**AB_KEY.to_dict(), "name": "ana\x1b[2J"}]},
        {"keys": [{**AB_KEY.to_dict(), "name": ""}]},
        {"keys": [{**AB_KEY.to_dict(), "name": "x" * 101}]},
        {"keys": [{**AB_KEY.to_dict(), "name": 7}]},
    ],
)
def test_a_header_of_the_wrong_shape_is_refused_in_one_line(tmp_path, header: dict) -> None:
    with pytest.raises(BundleError, match="header") as err:
        bundle.read(hostile(tmp_path, header=header))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "row",
    [
        {"id": '=HYPERLINK("http://evil.example","open")'},
        {"id": "1" * 31},
        {"campaign": "../../outside"},
        {"form": "sign/../../x"},
        {"campaign": "Declaration"},
        {"received_on": "+1+cmd"},
        {"received_on": 20260304},
        {"sealed_by": "@SUM(1)"},
        {"envelope": {"version": 1}},
    ],
)
def test_a_record_of_the_wrong_shape_is_refused_naming_its_line(tmp_path, row: dict) -> None:
    with pytest.raises(BundleError, match="line 2") as err:
        bundle.read(hostile(tmp_path, row=row))
    assert "\n" not in str(err.value)
