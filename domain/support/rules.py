"""Checks and derivations of domain.support that need no stream: validating input, and what a
case's recorded facts mean."""

from __future__ import annotations

from datetime import date

from domain.common import (
    require,
    require_text,
)
from domain.policy import RISK_LABELS, RISK_LEVELS


def check_level(level: str) -> str:
    require(level in RISK_LEVELS, f"风险等级「{level}」无效（应为 {'、'.join(RISK_LABELS[k] for k in RISK_LEVELS)}）")
    return level


def rank(level: str) -> int:
    return RISK_LEVELS.index(level)


def check_category(category: str) -> str:
    text = require_text(category, "档案类别")
    require(len(text) <= 20, "档案类别过长（不超过20字）")
    return text


def check_plan(goals: list[str], measures: list[dict[str, str]]) -> tuple[list[str], list[dict[str, str]]]:
    goals = [g.strip() for g in goals or [] if g and g.strip()]
    require(bool(goals), "帮扶方案至少需要一个目标")
    clean: list[dict[str, str]] = []
    for m in measures or []:
        text = require_text(m.get("text"), "帮扶措施")
        clean.append({"text": text, "by": require_text(m.get("by"), f"措施「{text}」的负责人")})
    require(bool(clean), "帮扶方案至少需要一项措施")
    return goals, clean


def referral_feedback_overdue(status: str, feedback_due: date | None, today: date) -> bool:
    """Whether a referral's feedback (回执) is overdue on `today`: sent or accepted, and past
    the day it was due (the policy's `referral_feedback_days` after the referral)."""
    return status in ("sent", "accepted") and feedback_due is not None and today > feedback_due
