"""Break-glass in the domain: what counts as a stated reason (a rule anyone can read:
CJK characters and Latin letters count, a run of one character counts once, punctuation,
digits and spaces not at all), the gate asking for one, and who reviews a use (the
school's principal or another supervisor; never the person who used it, never an
administrator). Pure: no store."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import access
from domain.access import Resource, decide
from domain.break_glass import (
    REASON_MIN_CHARS,
    REASON_MIN_DISTINCT,
    REASON_RULE,
    SAMPLE_REASON,
    VERDICTS,
    check_review,
    is_meaningful_reason,
    meaningful_chars,
    require_meaningful_reason,
)
from domain.common import Actor, InvalidInput, PermissionDenied, Role

SUPERVISOR = Actor("sup-1", frozenset({Role.SUPERVISOR}), district="d1")
OTHER_SUPERVISOR = Actor("sup-2", frozenset({Role.SUPERVISOR}), district="d1")
FAR_SUPERVISOR = Actor("sup-9", frozenset({Role.SUPERVISOR}), district="d9")
PRINCIPAL = Actor("pr-1", frozenset({Role.PRINCIPAL}), school_id="s1", district="d1")
OTHER_PRINCIPAL = Actor("pr-2", frozenset({Role.PRINCIPAL}), school_id="s2", district="d1")
ADMIN = Actor("ad-1", frozenset({Role.ADMINISTRATOR}), district="d1")
ADMIN_PRINCIPAL = Actor("ad-2", frozenset({Role.ADMINISTRATOR, Role.PRINCIPAL}), school_id="s1", district="d1")
SAFETY = Actor("sl-1", frozenset({Role.SAFETY_LEAD}), school_id="s1", district="d1")
CASE = Resource(kind="case", id="c1", school_id="s1", district="d1")
# A use of break-glass as the review rule sees it: the record it opened, who used it.
USE = Resource(kind="case", id="c1", school_id="s1", owner_id=SUPERVISOR.staff_id, district="d1")

NOISE = st.text(alphabet=st.sampled_from(list(" \t\n.,;:!?…。，、；：！？（）()【】-_—·0123456789０１２３＃#@*/")))


@pytest.mark.parametrize(
    "reason",
    ["核查家长投诉", "上级交办的复查", "督导核查家长投诉", "核查高危学生跟进情况", "Parent complaint", "复查 case 123"],
)
def test_a_reason_that_says_what_and_why_is_taken(reason: str) -> None:
    assert is_meaningful_reason(reason)
    assert require_meaningful_reason(f"  {reason}\n") == reason


@pytest.mark.parametrize(
    "reason",
    [
        "",
        "   ",
        "....",
        "1234567890",
        "核查",
        "核查投诉",
        "看看看看看看看看",
        "哈嘿哈嘿哈嘿哈嘿",
        "abab ab",
        "！！！？？？",
        None,
    ],
)
def test_a_reason_that_says_nothing_is_refused_with_what_is_expected(reason: str | None) -> None:
    assert not is_meaningful_reason(reason)
    with pytest.raises(InvalidInput) as refused:
        require_meaningful_reason(reason)
    assert refused.value.text == REASON_RULE
    assert "不少于" in REASON_RULE and "如：" in REASON_RULE


def test_the_message_names_the_minimum_the_rule_applies() -> None:
    assert re.search(rf"不少于{REASON_MIN_CHARS}个字", REASON_RULE)
    # six characters pass, five do not; two different characters never do
    assert is_meaningful_reason("核查家长投诉") and not is_meaningful_reason("核查家长投")
    assert REASON_MIN_DISTINCT == 3 and not is_meaningful_reason("核查核查核查核查")


def test_what_counts_cjk_and_latin_letters_a_run_once_fullwidth_as_ordinary() -> None:
    assert meaningful_chars("核查，家长 投诉！！") == list("核查家长投诉")
    assert meaningful_chars("啊啊啊啊") == ["啊"]
    assert meaningful_chars("ＡＢＣ abc 123") == ["a", "b", "c", "a", "b", "c"]
    assert meaningful_chars("核查……核查") == list("核查核查")  # only adjacent repeats collapse


@given(st.text(alphabet=st.sampled_from(list("核查家长投诉上级交办复abcXYZ")), min_size=0, max_size=12), NOISE, NOISE)
def test_punctuation_digits_and_spaces_around_a_reason_change_nothing(core: str, before: str, after: str) -> None:
    assert is_meaningful_reason(before + core + after) == is_meaningful_reason(core)


@given(st.text(max_size=40))
def test_the_rule_is_exactly_its_counts(text: str) -> None:
    chars = meaningful_chars(text)
    assert is_meaningful_reason(text) == (len(chars) >= REASON_MIN_CHARS and len(set(chars)) >= REASON_MIN_DISTINCT)
    assert all(a != b for a, b in zip(chars, chars[1:], strict=False))  # no run left


@given(st.text(alphabet=st.sampled_from(list("看哈1. ！")), max_size=30))
def test_one_character_repeated_with_noise_is_never_a_reason(text: str) -> None:
    assert not is_meaningful_reason(text)


def test_the_gate_opens_a_named_record_only_with_a_meaningful_reason() -> None:
    for weak in (None, "", "....", "核查投诉", "看看看看看看"):
        d = decide(SUPERVISOR, access.CASE_READ, CASE, weak)
        assert not d.allowed and d.reason == REASON_RULE
    d = decide(SUPERVISOR, access.CASE_READ, CASE, "核查家长投诉")
    assert d.allowed and d.break_glass
    assert decide(SUPERVISOR, access.CASE_READ, CASE, SAMPLE_REASON).break_glass


def test_the_principal_and_other_supervisors_review_a_use_the_user_and_an_admin_never() -> None:
    allowed = {a.staff_id for a in (PRINCIPAL, OTHER_SUPERVISOR) if decide(a, access.AUDIT_REVIEW, USE).allowed}
    assert allowed == {PRINCIPAL.staff_id, OTHER_SUPERVISOR.staff_id}
    for never in (SUPERVISOR, ADMIN, ADMIN_PRINCIPAL, OTHER_PRINCIPAL, FAR_SUPERVISOR, SAFETY):
        assert not decide(never, access.AUDIT_REVIEW, USE).allowed, never
    assert "本人" in decide(SUPERVISOR, access.AUDIT_REVIEW, USE).reason
    assert "管理员" in decide(ADMIN_PRINCIPAL, access.AUDIT_REVIEW, USE).reason
    # a queue (no owner): the school's for its principal, the district's for a supervisor
    school = Resource(kind="school", school_id="s1", district="d1")
    assert decide(PRINCIPAL, access.AUDIT_REVIEW, school).allowed
    assert decide(SUPERVISOR, access.AUDIT_REVIEW, Resource(kind="district", district="d1")).allowed
    assert not decide(SAFETY, access.AUDIT_REVIEW, school).allowed


def test_a_review_needs_a_verdict_and_a_reason_when_not_justified() -> None:
    assert check_review("justified", "  ") == ("justified", "")
    assert check_review("unjustified", " 与投诉无关 ") == ("unjustified", "与投诉无关")
    for verdict, comment in (("", "x"), ("ok", ""), ("unjustified", "  "), ("justified", "字" * 2001)):
        with pytest.raises(InvalidInput):
            check_review(verdict, comment)
    assert set(VERDICTS) == {"justified", "unjustified"}


def test_a_refusal_for_want_of_a_reason_reads_as_the_rule() -> None:
    d = decide(SUPERVISOR, access.FILE_READ, Resource(kind="file", id="f1", school_id="s1", district="d1"), "看")
    assert str(PermissionDenied(reason=d.reason)).endswith(REASON_RULE)
