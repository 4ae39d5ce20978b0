"""Break-glass (紧急查阅): what counts as a stated reason, and the review of each use.

A supervisor reads a named record only with a stated reason (domain.access.decide). A
reason is there to be checked later by someone else (the school's principal, another
supervisor: the review below), so it has to say something: `....`, `1234` or `看看看看`
are no reason at all. What a reason must be is one pure rule here, used wherever a
break-glass reason or a supervisor's stated audit reason is checked.

Each use is then reviewed, once, by someone other than the person who used it: marked
justified (合理) or not (不合理), with a comment (required for 不合理: what was wrong).
Who may review is the gate's (domain.access, AUDIT_REVIEW); what a review must hold is here.
"""

from __future__ import annotations

import unicodedata

from domain.common import Conflict, InvalidInput

# The fewest meaningful characters of a reason, and the fewest different ones. Six Chinese
# characters is the shortest phrase that names both what is checked and why (核查家长投诉,
# 上级交办复查); fewer is a word (核查, 看看), not a reason anyone can review. Three
# different characters refuse a run of one or two characters typed to get past the count
# (哈嘿哈嘿哈嘿) without refusing any real phrase.
REASON_MIN_CHARS = 6
REASON_MIN_DISTINCT = 3
# What the person is told (the numbers above, in words; a test keeps them together).
REASON_RULE = "请写明调阅原因（如：核查家长投诉、上级交办的复查），不少于6个字"
# A reason the rule takes, for asking whether a read would need one (Gate.needs_reason).
SAMPLE_REASON = "核查家长投诉的处理经过"


def _is_letter(ch: str) -> bool:
    """A CJK ideograph or a Latin letter: what carries meaning in a reason. Digits,
    punctuation, spaces and symbols do not."""
    code = ord(ch)
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F:
        return True
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def meaningful_chars(text: str | None) -> list[str]:
    """The characters of a reason that count, in order: CJK ideographs and Latin letters
    (full-width ones read as their ordinary forms, case ignored), a run of one repeated
    character counted once (啊啊啊啊 is one, not four)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text or ""):
        if not _is_letter(ch):
            continue
        ch = ch.lower()
        if out and out[-1] == ch:
            continue
        out.append(ch)
    return out


def is_meaningful_reason(text: str | None) -> bool:
    """Whether a stated reason says enough to be reviewed (REASON_MIN_CHARS meaningful
    characters, REASON_MIN_DISTINCT of them different)."""
    chars = meaningful_chars(text)
    return len(chars) >= REASON_MIN_CHARS and len(set(chars)) >= REASON_MIN_DISTINCT


def require_meaningful_reason(text: str | None) -> str:
    """The reason, trimmed; InvalidInput (REASON_RULE, saying what is expected) if it is
    no reason at all."""
    if not is_meaningful_reason(text):
        raise InvalidInput(REASON_RULE)
    return (text or "").strip()


# -- the review of a use ------------------------------------------------------------------------
JUSTIFIED = "justified"
UNJUSTIFIED = "unjustified"
VERDICTS = {JUSTIFIED: "合理", UNJUSTIFIED: "不合理"}
PENDING = "pending"
REVIEW_STATES = {PENDING: "待复核", **VERDICTS}
COMMENT_MAX = 2000


class AlreadyReviewed(Conflict):
    """A use is reviewed once: a second review (or one that lost a race to another) is
    refused, never written over the first."""

    code = "already_reviewed"
    message = "这次紧急查阅已有人复核，不能再次复核或更改结论"


def check_review(verdict: str, comment: str | None) -> tuple[str, str]:
    """A review's verdict and comment as they will be kept (trimmed); InvalidInput with
    what is wrong: an unknown verdict, 不合理 without saying why, a comment too long."""
    verdict = (verdict or "").strip()
    text = (comment or "").strip()
    if verdict not in VERDICTS:
        raise InvalidInput("请选择复核结论：合理或不合理")
    if verdict == UNJUSTIFIED and not text:
        raise InvalidInput("认定不合理时请写明原因")
    if len(text) > COMMENT_MAX:
        raise InvalidInput("复核意见不能超过2000个字")
    return verdict, text
