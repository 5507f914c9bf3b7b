"""Seal staff's replies to the witnesses who asked to read one, on the offline laptop.

    python scripts/reply.py REPLIES --bundle BUNDLE [--bundle BUNDLE ...] --key KEYFILE --out FILE
        [--passphrase-file FILE]

REPLIES is the reply-template.csv that decrypt.py wrote, with a message written on the rows to
answer (any UTF-8 CSV file whose header names a handle and a message column will do; rows with
no message are skipped), or a folder of <handle>.txt files, each holding one message. The
bundles are the export bundles the handles came from: a witness's reply key is sealed inside
their testimony, so their records are opened again with your key. FILE is a new replies bundle,
each reply in it sealed to its witness's key alone, for the server's
`flask --app wsgi import-replies FILE`. No message is written anywhere in clear, nor printed.
Needs no network and uses only Papillon's format modules.

Exit codes: 0 the replies bundle was written; 2 nothing was written.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Papillon's formats (papillon/, beside this folder) and laptop.py (in it), found the same way whether the script
# runs from the project, from the offline kit, or is loaded by path as the tests do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from laptop import NOTHING_KEPT, ProgressBar, Refusal, exit_code, load_private

from papillon import bundle, envelope, keys, replies

EXIT_OK, EXIT_NOTHING_WRITTEN = 0, NOTHING_KEPT
# A spreadsheet saving "CSV" in a language that writes decimal commas separates cells with semicolons.
DELIMITERS = (",", ";", "\t")
TEXT_SUFFIX = ".txt"


@dataclass(frozen=True)
class Reply:
    """One reply staff wrote: the witness's handle, where it was written (for a refusal to name), the message."""

    handle: str
    where: str
    message: str


@dataclass(frozen=True)
class Wanted:
    """The replies to seal, and how many rows or files had no message."""

    replies: list[Reply]
    skipped: int

    @property
    def handles(self) -> set[str]:
        return {r.handle for r in self.replies}


# A row or file as read: where it is, its handle as typed, its message (line ends made "\n", trimmed).
Written = tuple[str, str, str]


def message_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def header(text: str, path: Path) -> tuple[str, int, int, int]:
    """The delimiter, the number of columns, and where the handle and message columns are."""
    for delimiter in DELIMITERS:
        try:
            first = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True), [])
        except csv.Error:
            continue
        names = [name.strip().lower() for name in first]
        if "handle" in names and "message" in names:
            if names.count("handle") > 1 or names.count("message") > 1:
                raise Refusal(f"{path}: row 1 names the handle or the message column twice; nothing was written")
            return delimiter, len(names), names.index("handle"), names.index("message")
    raise Refusal(
        f"{path}: row 1 must name a handle and a message column, as reply-template.csv does; nothing was written"
    )


def csv_rows(path: Path) -> list[Written]:
    """The rows of a replies file that are not blank, each with its row number as a spreadsheet shows it."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise Refusal(f"cannot read the replies file {path}: {exc.strerror}; nothing was written") from exc
    except UnicodeDecodeError as exc:
        raise Refusal(f"{path} is not UTF-8 text: save it as CSV UTF-8 and run this again") from exc
    delimiter, width, at_handle, at_message = header(text, path)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    found: list[Written] = []
    number = 1
    try:
        next(rows)
        for number, row in enumerate(rows, 2):
            if any(cell.strip() for cell in row[width:]):
                raise Refusal(
                    f"{path}: row {number} has more cells than row 1 has columns (a message with a comma but no "
                    "quotes around it?); nothing was written"
                )
            cells = [*row, *[""] * (width - len(row))]
            if any(cell.strip() for cell in cells):
                found.append((f"{path}: row {number}", cells[at_handle], message_text(cells[at_message])))
    except csv.Error as exc:
        raise Refusal(f"{path}: row {number + 1} is not CSV ({exc}); nothing was written") from exc
    return found


def folder_rows(folder: Path) -> list[Written]:
    """Each ``<handle>.txt`` of a folder (hidden files left aside); anything else there is refused, so that no
    reply saved under another name is left out unseen."""
    found: list[Written] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise Refusal(f"cannot read the replies folder {folder}: {exc.strerror}") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.suffix.lower() != TEXT_SUFFIX or not entry.is_file():
            raise Refusal(f"{entry}: a replies folder holds only <handle>{TEXT_SUFFIX} files; nothing was written")
        try:
            text = entry.read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise Refusal(f"cannot read {entry}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise Refusal(f"{entry} is not UTF-8 text: save it as UTF-8 and run this again") from exc
        found.append((str(entry), entry.stem, message_text(text)))
    return found


def checked(written: Iterable[Written], written_on: str) -> Wanted:
    """The replies to seal, each checked before anything is asked for or written: a handle of the right shape,
    once, and a message that fits. A refusal names the row or file, and never quotes a message."""
    wanted: list[Reply] = []
    seen: dict[str, str] = {}
    skipped = 0
    for where, typed, message in written:
        if not message:
            skipped += 1
            continue
        handle = typed.strip().lower()
        if not handle:
            raise Refusal(
                f"{where}: a message with no handle; write the handle of the witness it answers. Nothing was written."
            )
        if not replies.HANDLE.fullmatch(handle):
            raise Refusal(
                f"{where}: the handle is not a reply handle (r- and 12 digits and letters a to f, as "
                "decrypt.py writes them); nothing was written"
            )
        too_long = len(message) > replies.MESSAGE_MAX
        if too_long or len(replies.plaintext(message, written_on)) > replies.MAX_PADDED:
            raise Refusal(
                f"{where}: the reply to {handle} is too long ({len(message)} characters; at most "
                f"{replies.MESSAGE_MAX}); nothing was written"
            )
        if handle in seen:
            raise Refusal(
                f"{where}: {handle} was already answered in {seen[handle]}; write one reply per witness. "
                "Nothing was written."
            )
        seen[handle] = where
        wanted.append(Reply(handle, where, message))
    return Wanted(wanted, skipped)


def read_replies(path: Path, written_on: str) -> Wanted:
    """The replies of a CSV file or of a folder of text files; refused if there is none to seal."""
    if not path.exists():
        raise Refusal(f"cannot read the replies file {path}: it does not exist")
    wanted = checked(folder_rows(path) if path.is_dir() else csv_rows(path), written_on)
    if not wanted.replies:
        raise Refusal(f"{path} holds no reply to seal ({wanted.skipped} with no message); nothing was written")
    return wanted


def check_out(out: Path) -> None:
    """Refuse before the passphrase is asked for where the replies bundle cannot go: nothing is ever overwritten."""
    if out.exists() or out.is_symlink():
        raise Refusal(f"{out} already exists; choose a new --out file so nothing is overwritten")
    if not out.parent.is_dir():
        raise Refusal(f"the folder {out.parent} does not exist; make it, or choose another --out file")


def verified(paths: Iterable[Path]) -> list[bundle.Survey]:
    """Every bundle read through once and refused, naming the first problem, unless it is as it was written."""
    surveys = []
    for path in paths:
        try:
            surveys.append(bundle.verify(path))
        except bundle.BundleError as exc:
            raise Refusal(f"{exc}. Nothing was written.") from exc
    return surveys


# --- opening the records: who can be answered, and with which key ------------------------------------------------


class Progress(ProgressBar):
    def counted(self, tally: Mapping[str, int]) -> str:
        return f"records read: {tally.get('opened', 0)} opened, {tally.get('answerable', 0)} can be answered"


@dataclass
class Members:
    """What the records held: the reply member of each wanted handle, the handles two records give different
    keys, and counts of what opened."""

    wanted: set[str]
    found: dict[str, replies.Member] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)
    tally: Counter[str] = field(default_factory=Counter)

    def take(self, member: replies.Member) -> None:
        """A record's reply member; only wanted handles are kept, so a record made to clash with a handle no one
        is answering stops nothing."""
        self.tally["answerable"] += 1
        if member.handle not in self.wanted:
            return
        known = self.found.setdefault(member.handle, member)
        if known != member:
            self.conflicts.add(member.handle)

    @property
    def unopened(self) -> int:
        return self.tally["elsewhere"] + self.tally["failed"]


def member_of(record: bundle.Record, private: keys.PrivateKey, tally: Counter[str]) -> replies.Member | None:
    """The reply member of one record, if it opens with this key and holds a well-formed one; counted either way."""
    try:
        sealed = envelope.parse(record.envelope)
        if private.key_id not in sealed.sealed:
            tally["elsewhere"] += 1
            return None
        doc = envelope.open_envelope(sealed, private.key, record.campaign, record.form, key_id=private.key_id)
    except envelope.EnvelopeError:
        tally["failed"] += 1
        return None
    tally["opened"] += 1
    if "reply" not in doc:
        return None
    try:
        return replies.read_member(doc["reply"])
    except replies.ReplyError:
        tally["bad reply"] += 1
        return None


def open_members(surveys: list[bundle.Survey], private: keys.PrivateKey, wanted: set[str]) -> Members:
    """Every record of every bundle opened for its reply member, with a progress bar on a terminal."""
    members = Members(wanted)
    progress = Progress(sum(found.count for found in surveys))
    try:
        for found in surveys:
            for record in bundle.records(found):
                if member := member_of(record, private, members.tally):
                    members.take(member)
                progress.advance(1, members.tally)
    except bundle.BundleError as exc:  # the file changed or went away since it was verified
        raise Refusal(f"{exc}. Nothing was written.") from exc
    finally:
        progress.finish()
    return members


def refuse_unanswerable(members: Members) -> None:
    """Refuse the run, before anything is sealed, if a wanted handle is unknown or names two different keys."""
    if members.conflicts:
        named = ", ".join(sorted(members.conflicts))
        raise Refusal(
            f"records give the reply handle(s) {named} different reply keys, so it is not clear whom a reply would "
            "reach; leave them out of the replies and run this again. Nothing was written."
        )
    missing = sorted(members.wanted - set(members.found))
    if missing:
        unopened = (
            f" {members.unopened} record(s) did not open with this key and may hold them." if members.unopened else ""
        )
        raise Refusal(
            f"no record of the bundle(s) carries the handle(s) {', '.join(missing)}: check them against the Reply "
            f"handle column (a typo?), or give the bundle they came from with --bundle.{unopened} Nothing was written."
        )


# --- the run ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The command line, read: the replies to seal, where their witnesses' keys are, and where they go."""

    replies: Path
    bundles: list[Path]
    key: Path
    passphrase_file: Path | None
    out: Path


@dataclass(frozen=True)
class Outcome:
    """What a run that wrote its replies bundle did, in counts only."""

    out: Path
    sealed: int
    witnesses: int
    skipped: int
    tally: Mapping[str, int]


def run(options: Options, today: str) -> Outcome:
    """Check everything that can be checked first, then unlock the key, open the records, seal and write."""
    check_out(options.out)
    wanted = read_replies(options.replies, today)
    surveys = verified(options.bundles)
    private = load_private(options.key, options.passphrase_file)
    members = open_members(surveys, private, wanted.handles)
    refuse_unanswerable(members)
    sealed = [
        replies.SealedReply(members.found[r.handle].lookup, replies.seal(r.message, today, members.found[r.handle]))
        for r in wanted.replies
    ]
    count = replies.write_bundle(options.out, sealed, created_on=today)
    witnesses = len({r.lookup for r in sealed})
    return Outcome(options.out, count, witnesses, wanted.skipped, dict(members.tally))


def show(outcome: Outcome) -> None:
    tally = outcome.tally
    print(f"Wrote {outcome.out}")
    sealed = f"{outcome.sealed} {'reply' if outcome.sealed == 1 else 'replies'}"
    witnesses = f"{outcome.witnesses} {'witness' if outcome.witnesses == 1 else 'witnesses'}"
    print(f"Sealed {sealed} for {witnesses}: each opens with its witness's reply code alone.")
    if outcome.skipped:
        print(f"Skipped {outcome.skipped} row(s) with no message.")
    unopened = tally.get("elsewhere", 0) + tally.get("failed", 0)
    if unopened:
        print(f"{unopened} record(s) did not open with this key (sealed to other keys, or damaged).")
    if tally.get("bad reply"):
        print(f"{tally['bad reply']} record(s) hold a reply member that does not read, and cannot be answered.")
    print(
        f"Next: copy {outcome.out} to the server and run .venv/bin/flask --app wsgi import-replies {outcome.out.name}"
    )


def command_line() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Seal replies to witnesses offline, into a replies bundle for the server.",
        epilog="Exit codes: 0 the replies bundle was written; 2 nothing was written.",
    )
    parser.add_argument(
        "replies", type=Path, metavar="REPLIES", help="reply-template.csv with messages, or a folder of HANDLE.txt"
    )
    parser.add_argument(
        "--bundle",
        dest="bundles",
        action="append",
        required=True,
        type=Path,
        metavar="BUNDLE",
        help="an export bundle holding the records answered (again for each bundle)",
    )
    parser.add_argument("--key", required=True, type=Path, help="your private key file (NAME.key)")
    parser.add_argument("--passphrase-file", type=Path, help="read the passphrase from the first line of this file")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the replies bundle to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = Options(**vars(command_line().parse_args(argv)))

    def work() -> int:
        show(run(options, datetime.date.today().isoformat()))
        return EXIT_OK

    return exit_code("reply", work, writing="the replies bundle", kept="Nothing was written.")


if __name__ == "__main__":
    sys.exit(main())
