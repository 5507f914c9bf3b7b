"""papillon/campaigns.py: campaign definitions, the shipped files and their verbatim texts, load errors, the answer
rules and translations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from papillon import campaigns as c
from papillon import languages
from papillon.campaigns import CampaignError, Field, Form

CAMPAIGNS_DIR = Path(__file__).resolve().parent.parent / "app" / "campaigns"
# The organizers' published texts, as the Google Forms pages they replace showed them; CI puts a read-only copy of
# shared/ beside the repository.
SEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"
SEED_FILES = {"declaration": "000_c7611fe1335940d9.txt", "open-letter": "001_36877d7903a85d1f.txt"}
FORM_PAGE = "Sign in to Google to save your progress."
DOCS = Path(__file__).resolve().parent.parent / "docs" / "campaigns.md"
DOCS_SEEDS_SECTION = "## What the seeds say and what Papillon adds"
ASCII_SPACE = re.compile(r"[ \t\r\n]+")

# Verbatim from the organizers' published texts (their typos and non-breaking spaces included).
DECLARATION_PREAMBLE = [
    "We, undersigned, join the Butterfly (Asian and Migrant Sex Workers Support Network) in building a community "
    "of allies who support the rights of migrant sex workers.",
    "Migrant sex workers are harmed daily by criminalization, racial profiling, surveillance, over policing, "
    "stigmatization, and consequential discrimination that compound human rights violations against migrant "
    "communities working in the sex industry.",
    "We recognize sex work as work. Sex workers\u2019 labour and human rights should be protect and respected, "
    "migrant sex workers should be afforded all legal protections.",
    "We are making 8 Call for Justice to promote racial and migrant justice of migrant sex workers and protect "
    "their human and labour rights:",
]
CALLS_FOR_JUSTICE = [
    "(1) Full Decriminalization of Sex Work: Remove all criminal laws specific to sex work and related activities "
    "(including sex workers, clients, and third parties);",
    "(2) Sex Work is Work: Eliminate discrimination against sex workers. Elimination of immigration prohibitions "
    "on migrants who engage in sex work and related industries;",
    "(3) Rights Not Rescue: An end to policing, racial and social profiling and the use of criminal or rescue models;",
    "(4) Sex Work is Not Trafficking: Review existing anti-trafficking policies and programs that conflate sex work "
    "with human trafficking, and revise policies to remove assumptions that sex work is a form of trafficking or "
    "sexual exploitation;",
    "(5) Fight Racism: Create education campaigns to dispel of the racism \u00a0which lead to profiling and "
    "discrimination. Adopt an intersectional equity lens towards all law and policy making addressing inequality "
    "and structural oppression, including racism, xenophobia, whorephobia, sexism, and classism;",
    "(6) No Cops at Workplaces: Stop using anti-trafficking initiatives to justify the intrusion of law enforcement "
    "in places where sex work happens, including indoor sex work businesses;",
    "(7) Status for All: Full and permanent immigration status for all: Immediately ensure full immigration status "
    "for all migrant sex workers in Canada, without exception; and",
    "(8) Access Without Fear: Guarantee access without fear to all municipal, provincial and federal services, "
    "rights and protection to migrant sex workers.",
]
PROVINCES_AND_TERRITORIES = [
    "Alberta",
    "British Columbia",
    "Manitoba",
    "New Brunswick",
    "Newfoundland and Labrador",
    "Northwest Territories",
    "Nova Scotia",
    "Nunavut",
    "Ontario",
    "Prince Edward Island",
    "Quebec",
    "Saskatchewan",
    "Yukon",
]
IDENTITY_TYPES = {c.EMAIL, c.PHONE, c.POSTAL_CODE}


@pytest.fixture(scope="module")
def shipped() -> dict[str, c.Campaign]:
    return c.load_dir(CAMPAIGNS_DIR)


def types(form: Form) -> dict[str, str]:
    return {f.name: f.type for f in form.fields}


def write_campaign(folder: Path, text: str, name: str = "demo") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
slug = "demo"
title = "Demo"
body = "Some text."

[[forms]]
slug = "sign"
title = "Sign"
{fields}
"""
TEXT_FIELD = """
[[forms.fields]]
name = "name"
type = "text"
label = "Name"
"""


# --- the shipped campaigns ---------------------------------------------------------------


def test_both_shipped_campaign_files_load(shipped):
    assert set(shipped) == {"declaration", "open-letter"}
    assert set(shipped["declaration"].forms) == {"sign"}
    assert set(shipped["open-letter"].forms) == {"sign", "testimony"}


def seed(slug: str) -> str:
    path = SEEDS / SEED_FILES[slug]
    if not path.is_file():
        pytest.fail(
            f"{path}: the organizers' seed text is missing, so the campaign's words cannot be checked against it; "
            "the tests expect shared/seeds/ beside the repository",
            pytrace=False,
        )
    return path.read_text(encoding="utf-8")


def verbatim_paragraphs(text: str) -> list[str]:
    """Paragraphs with only their line breaks and spaces evened out; a non-breaking space stays as written."""
    return [ASCII_SPACE.sub(" ", p).strip(" ") for p in re.split(r"\n[ \t\r]*\n", text) if p.strip()]


def seed_body(slug: str) -> list[str]:
    """The seed's body: after its first line (the heading), up to where the form page's own words begin."""
    _heading, _, rest = seed(slug).partition("\n")
    body, found, _ = rest.partition(FORM_PAGE)
    assert found, f"{SEED_FILES[slug]}: the form page's {FORM_PAGE!r} no longer follows the body"
    return verbatim_paragraphs(body)


@pytest.mark.parametrize("slug", SEED_FILES)
def test_every_paragraph_of_the_campaign_text_is_the_organizers_verbatim_and_none_is_left_out(shipped, slug):
    ours, theirs = verbatim_paragraphs(shipped[slug].body), seed_body(slug)
    assert len(theirs) >= 6, "the seed's body was found"
    assert [p for p in ours if p not in theirs] == [], f"{slug}: paragraphs not in the organizers' text"
    assert [p for p in theirs if p not in ours] == [], f"{slug}: paragraphs of the organizers' text left out"
    assert ours == theirs, f"{slug}: the paragraphs are in another order"


@pytest.mark.parametrize("slug", SEED_FILES)
def test_the_campaign_heading_is_the_organizers_verbatim(shipped, slug):
    campaign = shipped[slug]
    heading = seed(slug).partition("\n")[0]
    ours = f"{campaign.title}: {campaign.summary}" if campaign.summary else campaign.title
    assert " ".join(heading.split()) == ours  # the seed lays its heading out with runs of non-breaking spaces


def test_declaration_has_all_eight_calls_for_justice_verbatim_as_paragraphs(shipped):
    paragraphs = shipped["declaration"].paragraphs()
    for call in CALLS_FOR_JUSTICE:
        assert call in paragraphs
    positions = [paragraphs.index(call) for call in CALLS_FOR_JUSTICE]
    assert positions == sorted(positions)


def test_declaration_province_field_lists_all_thirteen_provinces_and_territories(shipped):
    province = next(f for f in shipped["declaration"].forms["sign"].fields if f.name == "province")
    assert province.type == c.SINGLE_CHOICE
    for name in PROVINCES_AND_TERRITORIES:
        assert name in [choice.label for choice in province.choices]
    assert len({choice.label for choice in province.choices} & set(PROVINCES_AND_TERRITORIES)) == 13


def test_declaration_sign_form_has_every_seed_field(shipped):
    assert types(shipped["declaration"].forms["sign"]) == {
        "signing_as": c.SINGLE_CHOICE,
        "name": c.TEXT,
        "position": c.TEXT,
        "organization": c.TEXT,
        "phone": c.PHONE,
        "areas_of_focus": c.MULTIPLE_CHOICE,
        "areas_of_focus_other": c.TEXT,
        "postal_code": c.POSTAL_CODE,
        "province": c.SINGLE_CHOICE,
        "other_country_city": c.TEXT,
        "receive_information": c.SINGLE_CHOICE,
        "list_my_name": c.CONSENT,
    }


def test_open_letter_sign_form_has_every_seed_field(shipped):
    assert types(shipped["open-letter"].forms["sign"]) == {
        "signing_as": c.SINGLE_CHOICE,
        "organization_name": c.TEXT,
        "name": c.TEXT,
        "email": c.EMAIL,
        "postal_code": c.POSTAL_CODE,
        "organization_type": c.SINGLE_CHOICE,
        "organization_type_other": c.TEXT,
        "actions": c.SINGLE_CHOICE,
        "known_harms": c.LONG_TEXT,
        "comment": c.LONG_TEXT,
        "list_my_name": c.CONSENT,
    }


# Where a seed's questions are: between Google's own lines, one question label a line; "Clear selection" after a
# question means it was a single choice.
SEED_QUESTIONS_START = "Sign in to Google to save your progress. Learn more"
SEED_QUESTIONS_END = "Clear form"
SINGLE_CHOICE_MARK = "Clear selection"
# The heading a seed's form shows above its questions, where it has one: the sign form's title.
SEED_FORM_HEADINGS = {"open-letter": "Stop the racist attacks against Asian massage parlours and sex workers"}
# The only changes to the seeds' question labels: plain misspellings, seed text -> shown text. Each is listed, with
# its reason, in docs/campaigns.md.
LABEL_CORRECTIONS: dict[str, dict[str, str]] = {
    "declaration": {"Other country and city (please specific)": "Other country and city (please specify)"},
    "open-letter": {},
}


def seed_question_lines(slug: str) -> list[str]:
    lines = seed(slug).splitlines()
    for line in (SEED_QUESTIONS_START, SEED_QUESTIONS_END):
        assert line in lines, f"{SEED_FILES[slug]}: the form page's {line!r} line is not where the questions are"
    questions = lines[lines.index(SEED_QUESTIONS_START) + 1 : lines.index(SEED_QUESTIONS_END)]
    if slug in SEED_FORM_HEADINGS:
        assert questions[0] == SEED_FORM_HEADINGS[slug], f"{SEED_FILES[slug]}: the form's heading"
        questions = questions[1:]
    return [line for line in questions if line.strip()]


def seed_questions(slug: str) -> list[tuple[str, bool]]:
    """The seed's questions in its order, as (label with the listed corrections, whether it was a single choice)."""
    found: list[tuple[str, bool]] = []
    for line in seed_question_lines(slug):
        if line == SINGLE_CHOICE_MARK:
            assert found, f"{SEED_FILES[slug]}: {SINGLE_CHOICE_MARK!r} before any question"
            found[-1] = (found[-1][0], True)
        else:
            found.append((LABEL_CORRECTIONS[slug].get(line, line), False))
    return found


def docs_seeds_section() -> str:
    text = DOCS.read_text(encoding="utf-8")
    assert DOCS_SEEDS_SECTION in text, f"{DOCS.name} has no section {DOCS_SEEDS_SECTION!r}"
    return text.split(DOCS_SEEDS_SECTION, 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("slug", SEED_FILES)
def test_the_sign_form_asks_every_seed_question_in_the_organizers_words_and_order(shipped, slug):
    questions = [label for label, _single in seed_questions(slug)]
    labels = [f.label for f in shipped[slug].forms["sign"].fields]
    assert len(questions) >= 9, "the seed's questions were found"
    assert [q for q in questions if labels.count(q) != 1] == [], f"{slug}: seed questions not asked exactly once"
    positions = [labels.index(q) for q in questions]
    assert positions == sorted(positions), f"{slug}: the seed's questions are in another order"


@pytest.mark.parametrize("slug", SEED_FILES)
def test_a_seed_question_followed_by_clear_selection_is_a_single_choice(shipped, slug):
    fields = {f.label: f for f in shipped[slug].forms["sign"].fields}
    single = [label for label, was_single in seed_questions(slug) if was_single]
    assert len(single) >= 3, "the seed's single-choice questions were found"
    assert [label for label in single if fields[label].type != c.SINGLE_CHOICE] == []


@pytest.mark.parametrize("slug", SEED_FILES)
def test_each_correction_of_a_seed_label_is_still_needed_and_listed_in_the_docs(slug):
    lines, docs = seed_question_lines(slug), docs_seeds_section().splitlines()
    for wrong, shown in LABEL_CORRECTIONS[slug].items():
        assert wrong in lines, f"{slug}: the seed no longer says {wrong!r}; drop the correction"
        assert [line for line in docs if wrong in line and shown in line], f"{DOCS.name}: {wrong!r} -> {shown!r}"


def test_the_docs_list_every_text_of_the_forms_that_the_seeds_do_not_have(shipped):
    """Choice lists, help texts, titles, buttons, the consent boxes and the testimony form: ours, each listed in
    quotation marks for the organizers to review."""
    listed = " ".join(docs_seeds_section().split())
    for slug, campaign in shipped.items():
        theirs = {label for label, _single in seed_questions(slug)} | {SEED_FORM_HEADINGS.get(slug, "")}
        ours = {
            key: text for key, text in campaign.text_keys().items() if key.startswith("forms.") and text not in theirs
        }
        quoted = {key: "\u201c" + " ".join(text.split()) + "\u201d" for key, text in ours.items()}
        assert [key for key, text in quoted.items() if text not in listed] == [], f"{slug}: not listed in {DOCS.name}"


def test_every_choice_called_other_is_followed_by_a_short_box_to_say_what_it_is(shipped):
    found = 0
    for campaign in shipped.values():
        for form in campaign.forms.values():
            for at, field in enumerate(form.fields):
                if "other" not in field.choice_ids:
                    continue
                after = form.fields[at + 1] if at + 1 < len(form.fields) else None
                where = f"{campaign.slug} {form.slug} {field.name}"
                assert after is not None, f"{where}: nothing follows its other choice"
                assert (after.name, after.type, after.required) == (f"{field.name}_other", c.TEXT, False), where
                assert after.max_length <= 120, where
                found += 1
    assert found >= 2


@pytest.mark.parametrize(
    ("slug", "organization"), [("declaration", "organization"), ("open-letter", "organization_name")]
)
def test_both_sign_forms_ask_before_listing_a_signer_and_list_only_name_and_organization(shipped, slug, organization):
    form = shipped[slug].forms["sign"]
    assert form.publish_consent == "list_my_name"
    assert form.publish == ("name", organization)
    consent = next(f for f in form.fields if f.name == "list_my_name")
    assert consent.type == c.CONSENT
    assert not consent.required
    answers = {"name": "Ada", organization: "Butterfly", "email": "ada@example.org", "phone": "555 0101"}
    assert form.published(answers) is None
    assert form.published({**answers, "list_my_name": True}) == {"name": "Ada", organization: "Butterfly"}
    assert shipped[slug].forms.get("testimony") is None or not shipped[slug].forms["testimony"].publish


def test_open_letter_testimony_form_asks_nothing_that_identifies(shipped):
    form = shipped["open-letter"].forms["testimony"]
    assert form.fields
    assert not {f.type for f in form.fields} & IDENTITY_TYPES
    for f in form.fields:
        assert f.name not in {"name", "email", "phone", "postal_code"}
        assert "name" not in f.name


def test_shipped_campaigns_keep_their_source_for_the_export_bundle(shipped):
    for campaign in shipped.values():
        rebuilt = c.from_dict(campaign.source, "bundle copy")
        assert rebuilt.forms == campaign.forms
        assert rebuilt.body == campaign.body


# --- load errors name the file and the field ---------------------------------------------


def test_bad_toml_is_refused_naming_the_file(tmp_path):
    path = write_campaign(tmp_path, 'slug = "demo"\ntitle = \n')
    with pytest.raises(CampaignError, match="not valid TOML") as err:
        c.load_file(path)
    assert str(path) in str(err.value)


def test_unknown_field_type_is_refused_naming_the_file_and_field(tmp_path):
    path = write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD.replace('"text"', '"signature"')))
    with pytest.raises(CampaignError) as err:
        c.load_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "forms[0].fields[0].type" in message
    assert "signature" in message


def test_duplicate_field_name_is_refused_naming_the_file_and_field(tmp_path):
    path = write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD + TEXT_FIELD))
    with pytest.raises(CampaignError) as err:
        c.load_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "forms[0].fields" in message
    assert "'name' is used twice" in message


def test_choice_field_without_choices_is_refused_naming_the_file_and_field(tmp_path):
    fields = '\n[[forms.fields]]\nname = "pick"\ntype = "single_choice"\nlabel = "Pick"\n'
    path = write_campaign(tmp_path, MINIMAL.format(fields=fields))
    with pytest.raises(CampaignError) as err:
        c.load_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "forms[0].fields[0].choices" in message


def test_slug_not_matching_the_file_name_is_refused(tmp_path):
    path = write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD), name="other")
    with pytest.raises(CampaignError) as err:
        c.load_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "slug" in message
    assert "'other'" in message


def test_empty_campaigns_folder_is_refused_naming_the_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not a campaign")
    with pytest.raises(CampaignError, match="no campaign file") as err:
        c.load_dir(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_unknown_setting_in_a_field_is_refused(tmp_path):
    path = write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD + 'colour = "red"\n'))
    with pytest.raises(CampaignError, match=r"forms\[0\]\.fields\[0\]\.colour: unknown setting") as err:
        c.load_file(path)
    assert str(path) in str(err.value)


def test_missing_label_is_refused_naming_the_field(tmp_path):
    fields = '\n[[forms.fields]]\nname = "name"\ntype = "text"\n'
    path = write_campaign(tmp_path, MINIMAL.format(fields=fields))
    with pytest.raises(CampaignError, match=r"forms\[0\]\.fields\[0\]\.label: missing"):
        c.load_file(path)


def test_a_valid_minimal_campaign_loads_from_a_folder(tmp_path):
    write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD))
    loaded = c.load_dir(tmp_path)
    field = loaded["demo"].forms["sign"].fields[0]
    assert field == Field(name="name", type=c.TEXT, label="Name", max_length=c.DEFAULT_MAX_LENGTH[c.TEXT])


# --- Field.check for every type ----------------------------------------------------------


def options(*ids: str) -> tuple[c.Choice, ...]:
    return tuple(c.Choice(choice_id, f"Label of {choice_id}") for choice_id in ids)


def test_text_field_check_required_length_and_characters():
    field = Field(name="name", type=c.TEXT, label="Name", required=True, max_length=10)
    assert field.check("Ada") is None
    assert field.check("\u738b\u5c0f\u660e") is None
    assert field.check("") == "This field is required."
    assert field.check("x" * 10) is None
    assert "under 10 characters" in field.check("x" * 11)
    assert field.check("a\x00b") is not None
    assert field.check("line\nbreak") is not None
    assert field.check("tab\there") is not None
    assert field.check(["Ada"]) is not None
    assert Field(name="name", type=c.TEXT, label="Name", max_length=10).check("") is None


def test_long_text_field_allows_line_breaks_but_not_control_characters():
    field = Field(name="story", type=c.LONG_TEXT, label="Story", max_length=50)
    assert field.check("first line\nsecond line\r\n\tindented") is None
    assert field.check("bell\x07") is not None
    assert field.check("escape\x1b[31m") is not None
    assert field.check("delete\x7f") is not None
    assert field.check("y" * 51) is not None


def test_email_field_check_pattern():
    field = Field(name="email", type=c.EMAIL, label="Email", max_length=254)
    assert field.check("name@example.org") is None
    assert field.check("") is None
    for bad in ["name", "name@example", "na me@example.org", "@example.org", "a@b@example.org"]:
        assert field.check(bad) == "Please give an email address such as name@example.org.", bad


def test_phone_field_check_pattern():
    field = Field(name="phone", type=c.PHONE, label="Phone", max_length=32)
    for good in ["+1 (514) 555-0100", "514.555.0100", "12345"]:
        assert field.check(good) is None, good
    for bad in ["call me", "1234", "514-555-O100"]:
        assert field.check(bad) is not None, bad


def test_postal_code_field_check_pattern():
    field = Field(name="postal_code", type=c.POSTAL_CODE, label="Postal code", max_length=12)
    for good in ["H2X 1Y4", "h2x1y4", "90210", "SW1A-1AA"]:
        assert field.check(good) is None, good
    for bad in ["H", "H2X/1Y4", "H2X 1Y4 \u00e9"]:
        assert field.check(bad) is not None, bad


def test_single_choice_field_accepts_only_listed_choices():
    field = Field(name="pick", type=c.SINGLE_CHOICE, label="Pick", required=True, choices=options("Yes", "No"))
    assert field.check("Yes") is None
    assert field.check("Maybe") == "Please choose from the list."
    assert field.check("yes") == "Please choose from the list."
    assert field.check("") == "This field is required."
    optional = Field(name="pick", type=c.SINGLE_CHOICE, label="Pick", choices=options("Yes", "No"))
    assert optional.check("") is None


def test_multiple_choice_field_accepts_only_distinct_listed_choices():
    field = Field(name="many", type=c.MULTIPLE_CHOICE, label="Many", choices=options("A", "B", "C"))
    assert field.check([]) is None
    assert field.check(["A", "C"]) is None
    assert field.check(["A", "D"]) == "Please choose from the list."
    assert field.check(["A", "A"]) == "Please choose from the list."
    assert field.check("A") == "Please choose from the list."
    assert field.check([1]) == "Please choose from the list."
    required = Field(name="many", type=c.MULTIPLE_CHOICE, label="Many", required=True, choices=options("A", "B"))
    assert required.check([]) == "Please choose at least one."
    assert required.check(["B"]) is None


def test_consent_field_check_requires_a_boolean_and_a_tick_when_required():
    optional = Field(name="ok", type=c.CONSENT, label="OK")
    assert optional.check(False) is None
    assert optional.check(True) is None
    assert optional.check("yes") is not None
    required = Field(name="ok", type=c.CONSENT, label="OK", required=True)
    assert required.check(True) is None
    assert required.check(False) == "Please tick this box to go on."


def test_empty_answer_matches_the_field_type():
    assert Field(name="a", type=c.TEXT, label="A").empty() == ""
    assert Field(name="a", type=c.MULTIPLE_CHOICE, label="A", choices=options("x")).empty() == []
    assert Field(name="a", type=c.CONSENT, label="A").empty() is False


# --- Form.check --------------------------------------------------------------------------


def test_form_check_reports_unknown_fields():
    form = Form(slug="f", title="F", fields=(Field(name="name", type=c.TEXT, label="Name", max_length=20),))
    problems = form.check({"name": "Ada", "shoe_size": "42", "age": "30"})
    assert problems == {"_form": "Unknown fields: age, shoe_size"}


def test_form_check_treats_missing_answers_as_empty():
    form = Form(
        slug="f",
        title="F",
        fields=(
            Field(name="name", type=c.TEXT, label="Name", required=True, max_length=20),
            Field(name="note", type=c.TEXT, label="Note", max_length=20),
        ),
    )
    assert form.check({}) == {"name": "This field is required."}
    assert form.check({"name": "Ada"}) == {}


def test_shipped_forms_accept_their_own_first_choices(shipped):
    for campaign in shipped.values():
        for form in campaign.forms.values():
            answers = {f.name: f.choice_ids[0] for f in form.fields if f.type == c.SINGLE_CHOICE}
            answers |= {f.name: "Text" for f in form.fields if f.type in {c.TEXT, c.LONG_TEXT}}
            assert form.check(answers) == {}, (campaign.slug, form.slug)


def test_a_campaign_file_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "demo.toml"
    path.write_bytes('slug = "demo"\ntitle = "Déclaration"\n'.encode("latin-1"))
    with pytest.raises(CampaignError, match="not UTF-8") as err:
        c.load_file(path)
    assert str(path) in str(err.value)


# --- translations ------------------------------------------------------------------------

OTHER_LANGUAGES = [tag for tag in languages.NAMES if tag != "en"]
TRANSLATION = """
language = "fr"
reviewed = false
title = "Démo"
[forms.sign.fields.name]
label = "Nom"
"""


@pytest.mark.parametrize("tag", OTHER_LANGUAGES)
def test_every_shipped_campaign_is_translated_into_every_language(shipped, tag):
    for campaign in shipped.values():
        assert tag in campaign.translations, f"{campaign.slug}.{tag}.toml is missing"
        assert campaign.untranslated(tag) == [], campaign.slug
        texts = campaign.translations[tag].texts
        assert texts["title"] != campaign.title, f"{campaign.slug}.{tag}.toml"
        assert texts["body"] != campaign.body, f"{campaign.slug}.{tag}.toml"


# The shipped translation files a fluent speaker has checked, text by text. A file goes in only once that is done,
# in the same change that sets `reviewed = true` and deletes its DRAFT line; every other file stays a draft.
REVIEWED_TRANSLATIONS: frozenset[str] = frozenset()
DRAFT_LINE = re.compile(r"^#.*\bDRAFT\b", re.M)
REVIEWED_LINE = re.compile(r"^reviewed = (true|false)$", re.M)


def translation_files() -> list[Path]:
    return sorted(CAMPAIGNS_DIR.glob("*.*.toml"))


def test_the_reviewed_translations_are_files_we_ship():
    assert {p.name for p in translation_files()} >= REVIEWED_TRANSLATIONS


@pytest.mark.parametrize("path", translation_files(), ids=lambda p: p.name)
def test_a_shipped_translation_no_fluent_speaker_has_checked_says_reviewed_false_and_draft(shipped, path):
    slug, tag, _ = path.name.split(".")
    text = path.read_text(encoding="utf-8")
    [reviewed] = REVIEWED_LINE.findall(text)
    assert (reviewed == "true") is shipped[slug].translations[tag].reviewed
    if path.name in REVIEWED_TRANSLATIONS:
        assert reviewed == "true", f"{path.name} is listed as reviewed but says reviewed = false"
    else:
        assert reviewed == "false", f"{path.name}: not in REVIEWED_TRANSLATIONS, so it must say reviewed = false"
    if reviewed == "true":
        assert not DRAFT_LINE.search(text), f"{path.name}: reviewed = true beside a DRAFT line"
    else:
        assert DRAFT_LINE.search(text.split("language =", 1)[0]), f"{path.name}: a draft says DRAFT at its top"


def test_translations_leave_the_original_words_untouched(shipped):
    """The organizers' English stays as they wrote it, whatever the translation files hold."""
    declaration = shipped["declaration"]
    assert declaration.language == "en"
    for paragraph in [*DECLARATION_PREAMBLE, *CALLS_FOR_JUSTICE]:
        assert any(p.startswith(paragraph) for p in declaration.paragraphs())
    assert declaration.localized("en") is declaration


def test_a_translation_changes_words_and_never_ids_names_or_rules(tmp_path):
    write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD + CHOICE_FIELD))
    (tmp_path / "demo.fr.toml").write_text(TRANSLATION + '[forms.sign.fields.pick.choices]\nyes = "Oui"\n')
    campaign = c.load_dir(tmp_path)["demo"]
    french = campaign.localized("fr")
    assert (french.title, french.language, french.reviewed) == ("Démo", "fr", False)
    assert french.body == campaign.body
    assert french.body_language == "en"
    form, original = french.forms["sign"], campaign.forms["sign"]
    assert [(f.name, f.type, f.required, f.max_length) for f in form.fields] == [
        (f.name, f.type, f.required, f.max_length) for f in original.fields
    ]
    pick = form.fields[1]
    assert [(ch.id, ch.label) for ch in pick.choices] == [("yes", "Oui"), ("no", "No")]
    assert pick.check("yes") is None
    assert pick.check("Oui") == "Please choose from the list."
    assert campaign.localized("ko") is campaign


def test_a_localized_campaign_knows_which_texts_still_show_in_the_originals_words(tmp_path):
    write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD + CHOICE_FIELD))
    (tmp_path / "demo.fr.toml").write_text(TRANSLATION + '[forms.sign.fields.pick.choices]\nyes = "Oui"\n')
    french = c.load_dir(tmp_path)["demo"].localized("fr")
    shown_in = {key: french.text_language(key) for key in french.text_keys()}
    assert shown_in == {
        "title": "fr",
        "body": "en",
        "forms.sign.title": "en",
        "forms.sign.submit": "en",
        "forms.sign.thanks": "en",
        "forms.sign.fields.name.label": "fr",
        "forms.sign.fields.pick.label": "en",
        "forms.sign.fields.pick.choices.yes": "fr",
        "forms.sign.fields.pick.choices.no": "en",
    }


CHOICE_FIELD = """
[[forms.fields]]
name = "pick"
type = "single_choice"
label = "Pick"

[forms.fields.choices]
yes = "Yes"
no = "No"
"""


@pytest.mark.parametrize(
    ("translation", "message"),
    [
        (TRANSLATION + '[forms.sign.fields.nmae]\nlabel = "Nom"\n', "forms.sign.fields.nmae.label: the campaign has"),
        (TRANSLATION + '[forms.other]\ntitle = "Autre"\n', "forms.other.title: the campaign has no such text"),
        (TRANSLATION.replace("reviewed = false", 'reviewed = "no"'), "reviewed: must be true or false"),
        (TRANSLATION.replace("reviewed = false\n", ""), "reviewed: must be true or false"),
        (TRANSLATION.replace('language = "fr"', 'language = "es"'), "does not match the file name"),
        (TRANSLATION.replace('title = "Démo"', 'title = ""'), "title: must be a text"),
        (TRANSLATION.replace('title = "Démo"', "body = 3"), "body: must be a text"),
    ],
)
def test_a_translation_that_does_not_fit_its_campaign_is_refused_by_name(tmp_path, translation, message):
    write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD))
    (tmp_path / "demo.fr.toml").write_text(translation, encoding="utf-8")
    with pytest.raises(CampaignError, match=r"demo\.fr\.toml") as caught:
        c.load_dir(tmp_path)
    assert message in str(caught.value)


@pytest.mark.parametrize(("name", "message"), [("demo.de.toml", "'de' is not one of"), ("demo.en.toml", "itself")])
def test_a_translation_into_a_language_we_do_not_serve_or_the_original_is_refused(tmp_path, name, message):
    write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD))
    (tmp_path / name).write_text(TRANSLATION.replace('language = "fr"\n', ""), encoding="utf-8")
    with pytest.raises(CampaignError, match=message):
        c.load_dir(tmp_path)


def test_a_translation_of_no_campaign_is_refused(tmp_path):
    write_campaign(tmp_path, MINIMAL.format(fields=TEXT_FIELD))
    (tmp_path / "demos.fr.toml").write_text(TRANSLATION, encoding="utf-8")
    with pytest.raises(CampaignError, match=r"there is no demos\.toml"):
        c.load_dir(tmp_path)


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ('[forms.fields.choices]\n"Yes please" = "Yes"\n', "an id must be lower case"),
        ('[forms.fields.choices]\nyes = ""\n', "the label must be a text"),
        ('choices = "yes"\n', "must be a table"),
    ],
)
def test_choice_ids_and_labels_are_checked(tmp_path, choices, message):
    field = '\n[[forms.fields]]\nname = "pick"\ntype = "single_choice"\nlabel = "Pick"\n' + choices
    write_campaign(tmp_path, MINIMAL.format(fields=field))
    with pytest.raises(CampaignError, match=message):
        c.load_dir(tmp_path)


def test_a_list_of_choices_from_before_ids_makes_each_label_its_own_id():
    """Bundles exported before choice ids carry lists; each label is its own id, as it was sealed."""
    data = {
        "slug": "old",
        "title": "Old",
        "body": "B",
        "forms": [
            {
                "slug": "s",
                "title": "S",
                "fields": [
                    {
                        "name": "p",
                        "type": "single_choice",
                        "label": "P",
                        "choices": ["An individual", "An organization"],
                    }
                ],
            }
        ],
    }
    field = c.from_dict(data, "bundle").forms["s"].fields[0]
    assert field.choice_ids == ("An individual", "An organization")
    assert field.check("An individual") is None


def one_form(**settings: object) -> dict[str, object]:
    form = {"slug": "s", "title": "S", "fields": [{"name": "p", "type": "text", "label": "P"}], **settings}
    return {"slug": "t", "title": "T", "body": "B", "forms": [form]}


def test_a_form_offers_replies_only_when_its_settings_say_so():
    assert c.from_dict(one_form(), "t.toml").forms["s"].replies is False
    assert c.from_dict(one_form(replies=True), "t.toml").forms["s"].replies is True
    with pytest.raises(c.CampaignError, match="replies"):
        c.from_dict(one_form(replies="yes"), "t.toml")


def test_the_shipped_testimony_form_offers_replies_and_no_sign_form_does(shipped):
    offering = {
        (slug, form.slug) for slug, campaign in shipped.items() for form in campaign.forms.values() if form.replies
    }
    assert offering == {("open-letter", "testimony")}
