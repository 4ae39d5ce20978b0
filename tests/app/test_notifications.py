"""Notifications: notices written with the events that raise them, expanded into inbox items
and messages, sent to a real SMTP server (aiosmtpd) and a real HTTP server (the group
bot), at least once, never with a student's name or any free text."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import ADMIN, STUDENTS, Clock, School

from anxin.service import Anxin
from domain.common import InvalidInput, PermissionDenied

NARRATIVE = "课间在走廊被推搡并被抢走文具，事后被威胁不许告诉老师"
PLACE = "教学楼三楼走廊"


def report(app: Anxin, school: School, clock: Clock) -> str:
    """A teacher reports bullying among the school's students."""
    return app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=2),
        place=PLACE,
        forms=["physical", "verbal"],
        narrative=NARRATIVE,
        parties=[(school.student("2026001"), "targeted"), (school.student("2026003"), "bullying")],
    )


class Inbox:
    """What the SMTP server received (aiosmtpd's handler)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.refuse = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.refuse:
            return "451 try again later"
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def to(self, address: str, digests: bool = False) -> list[EmailMessage]:
        """What reached `address` (the daily digests aside, unless asked for)."""
        return [m for rcpt, m in self.messages if address in rcpt and digests == ("每日汇总" in str(m["Subject"]))]


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    handler = Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's start-up check connects to the one given)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("ANXIN_SMTP_URL", f"smtp://127.0.0.1:{port}")
        monkeypatch.setenv("ANXIN_MAIL_FROM", "anxin@school.test")
        monkeypatch.setenv("ANXIN_BASE_URL", "https://anxin.example.cn")
        yield handler
    finally:
        controller.stop()


class Bot:
    """A group bot's webhook: a real HTTP server that keeps what it was posted."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                bot.posts.append((dict(self.headers), json.loads(body)))
                reply = b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def bot() -> Iterator[Bot]:
    b = Bot()
    yield b
    b.server.shutdown()


def _emails(app: Anxin, school: School) -> dict[str, str]:
    """Every staff member of the school gets an address (USERNAME@school.test)."""
    people = {
        "teacher": school.teacher,
        "other_teacher": school.other_teacher,
        "counselor": school.counselor,
        "other_counselor": school.other_counselor,
        "safety": school.safety,
        "principal": school.principal,
    }
    out = {}
    for label, actor in people.items():
        address = f"{label}@school.test"
        app.roster.set_email(ADMIN, actor.staff_id, address)
        out[label] = address
    return out


# What must never leave the system: every student's name, the narrative, the place.
PERSONAL = [name for _, name, _, _ in STUDENTS] + [NARRATIVE[:8], PLACE]


def test_a_new_report_reaches_the_safety_lead_and_principal_by_inbox_email_and_bot(
    app: Anxin, school: School, clock: Clock, smtp: Inbox, bot: Bot
) -> None:
    # given addresses for everyone and the school's group bot
    addresses = _emails(app, school)
    app.notifications.set_group_bot(ADMIN, school.id, bot.url)

    # when a teacher reports bullying and one delivery run goes
    case_id = report(app, school, clock)
    done = app.notifications.deliver()

    # then the safety lead and the principal (not the teacher who reported, not the
    # counselors) each have it in their inbox and got one email; the bot got one post
    assert done.sent == 3 and done.failed == 0
    for who in (school.safety, school.principal):
        items = app.notifications.inbox(who)
        assert [(i["kind"], i["stream_id"], i["read"]) for i in items] == [("case_reported", case_id, False)]
        assert app.notifications.unread_count(who) == 1
    for who in (school.teacher, school.counselor, school.other_counselor):
        assert app.notifications.inbox(who) == []
    assert [len(smtp.to(addresses[k])) for k in ("safety", "principal", "teacher", "counselor")] == [1, 1, 0, 0]
    mail = smtp.to(addresses["principal"])[0]
    body = mail.get_content()
    assert "新的欺凌报告" in mail["Subject"] and "第一中学" in body
    assert f"https://anxin.example.cn/cases/{case_id}" in body
    assert len(bot.posts) == 1 and bot.posts[0][1]["msgtype"] == "text"
    assert f"/cases/{case_id}" in bot.posts[0][1]["text"]["content"]
    # and nothing that left the system names a student or quotes what was written
    every_text = [m["Subject"] + m.get_content() for _, m in smtp.messages]
    every_text += [json.dumps(p, ensure_ascii=False) for _, p in bot.posts]
    for text in every_text:
        for personal in PERSONAL:
            assert personal not in text


def test_a_second_run_sends_nothing_again_and_a_notice_is_decided_once(
    app: Anxin, school: School, clock: Clock, smtp: Inbox
) -> None:
    _emails(app, school)
    report(app, school, clock)
    first = app.notifications.deliver()
    second = app.notifications.deliver()
    assert (first.sent, second.sent, second.expanded) == (2, 0, 0)
    assert len(smtp.messages) == 2
    # the notice's id is its fact's: the same fact written again adds no notice
    rows = app.db.fetch("SELECT COUNT(*) FROM {t}anxin_notices WHERE kind <> 'digest_run'")
    assert rows[0][0] == 1


def test_a_refused_message_is_retried_with_backoff_then_a_dead_letter_with_its_error_only(
    app: Anxin, school: School, clock: Clock, smtp: Inbox
) -> None:
    from anxin.notify import delivery

    _emails(app, school)
    report(app, school, clock)
    smtp.refuse = True
    first = app.notifications.deliver()
    assert (first.sent, first.failed, first.dead) == (0, 2, 0)
    # not again before the backoff has passed
    assert app.notifications.deliver().failed == 0
    for _ in range(delivery.MAX_ATTEMPTS - 1):
        clock.advance(days=1)
        app.notifications.deliver()
    dead = app.notifications.dead_letters(ADMIN)
    assert len(dead) == 2
    assert {d["error"] for d in dead} == {"SMTPDataError 451"}
    assert all(d["attempts"] == delivery.MAX_ATTEMPTS for d in dead)
    # and once the server accepts again, a dead letter is not resent by itself
    smtp.refuse = False
    clock.advance(days=1)
    app.notifications.deliver()
    assert not [m for _, m in smtp.messages if "新的欺凌报告" in m["Subject"]]
    assert len(app.notifications.dead_letters(ADMIN)) == 2


def test_a_deliverer_killed_after_sending_leaves_the_message_to_be_sent_once_more_never_lost(
    app: Anxin, school: School, clock: Clock, smtp: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anxin.notify import delivery

    addresses = _emails(app, school)
    report(app, school, clock)

    # given a deliverer that dies right after the server accepted the first message
    class Killed(BaseException):
        pass

    finish = delivery._finish

    def die(*args: Any, **kwargs: Any) -> None:
        raise Killed()

    monkeypatch.setattr(delivery, "_finish", die)
    with pytest.raises(Killed):
        app.notifications.deliver()
    monkeypatch.setattr(delivery, "_finish", finish)
    assert len(smtp.messages) == 1

    # when another run goes while the lease holds, then after it ran out
    assert app.notifications.deliver().sent == 1  # the other message, never claimed
    clock.advance(minutes=3)
    app.notifications.deliver()

    # then each person has it, the first at most twice, with the same Message-ID
    got = {k: smtp.to(addresses[k]) for k in ("safety", "principal")}
    assert sorted(len(v) for v in got.values()) == [1, 2]
    twice = next(v for v in got.values() if len(v) == 2)
    assert twice[0]["Message-ID"] == twice[1]["Message-ID"]
    clock.advance(minutes=3)
    assert app.notifications.deliver().sent == 0


def test_each_person_chooses_per_kind_but_cannot_turn_a_crisis_off(
    app: Anxin, school: School, clock: Clock, smtp: Inbox
) -> None:
    addresses = _emails(app, school)
    app.notifications.choose(school.principal, {"case_reported": "off"})
    with pytest.raises(InvalidInput):
        app.notifications.choose(school.principal, {"crisis": "off"})
    with pytest.raises(InvalidInput):
        app.notifications.choose(school.principal, {"case_reported": "sometimes"})
    report(app, school, clock)
    app.notifications.deliver()
    # the principal still sees it in the inbox, but got no email
    assert len(app.notifications.inbox(school.principal)) == 1
    assert smtp.to(addresses["principal"]) == [] and len(smtp.to(addresses["safety"])) == 1
    settings = {s["kind"]: s for s in app.notifications.settings(school.principal)}
    assert settings["case_reported"]["mode"] == "off" and settings["crisis"]["can_turn_off"] is False


def test_only_one_self_sees_ones_inbox_and_the_admin_no_content(app: Anxin, school: School, clock: Clock) -> None:
    report(app, school, clock)
    app.notifications.deliver()
    with pytest.raises(PermissionDenied):
        app.notifications.set_group_bot(school.principal, school.id, "https://example.cn/hook")
    with pytest.raises(PermissionDenied):
        app.notifications.dead_letters(school.principal)
    with pytest.raises(InvalidInput):
        app.notifications.set_group_bot(ADMIN, school.id, "ftp://example.cn/hook")
    assert app.notifications.inbox(ADMIN) == []


def test_an_address_is_checked_and_kept_only_encrypted(app: Anxin, school: School, store: Any) -> None:
    with pytest.raises(InvalidInput):
        app.roster.set_email(school.principal, school.principal.staff_id, "principal@school.test\r\nBcc: x@y.z")
    app.roster.set_email(school.principal, school.principal.staff_id, "qian.xiaozhang@school.test")
    assert app.roster.email_of(school.principal, school.principal.staff_id) == "qian.xiaozhang@school.test"
    with pytest.raises(PermissionDenied):
        app.roster.set_email(school.teacher, school.principal.staff_id, "x@school.test")
    if store.kind == "sqlite":
        raw = store.config.sqlite_path.read_bytes()
        for wal in store.config.sqlite_path.parent.glob("*-wal"):
            raw += wal.read_bytes()
        assert b"qian.xiaozhang" not in raw


class HoldsTheSecond(Inbox):
    """Keeps every message; on the second, holds the answer until the test says so (the
    deliverer is killed meanwhile: the message arrived, its sender never heard so)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        answer = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == 2 and not self.release.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return answer


def test_a_deliverer_process_killed_mid_send_loses_nothing_and_repeats_at_most_one(
    store: Any, app: Anxin, school: School, clock: Clock, tmp_path: Any
) -> None:
    # given a report for the safety lead and the principal, and a mail server that holds
    # its answer to the second message
    addresses = _emails(app, school)
    report(app, school, clock)
    handler = HoldsTheSecond()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    key_file = store.data_dir / "master.key"
    key_file.write_text(store.master_key.encode() + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env |= {"ANXIN_SMTP_URL": f"smtp://127.0.0.1:{port}", "ANXIN_NOTIFY_LEASE_SECONDS": "1"}
    args = [sys.executable, "-m", "anxin.cli", "notifications", "deliver"]
    if store.kind == "postgres":
        env |= {
            "ANXIN_DATABASE_URL": store.config.url,
            "ANXIN_DATABASE_SCHEMA": store.schema,
            "ANXIN_MASTER_KEY_FILE": str(key_file),
        }
    else:
        args += ["--data-dir", str(store.data_dir)]
    try:
        # when `anxin notifications deliver` is killed while the second message is held
        first = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert handler.holding.wait(60), first.communicate(timeout=5)
        first.kill()
        first.wait(timeout=10)
        handler.release.set()
        # and run again once its lease has run out
        time.sleep(1.2)
        again = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
    finally:
        controller.stop()

    # then both people have it: one once, the other at most twice (the same Message-ID)
    # (the processes' own clock may find the investigation due too: those messages aside)
    got = {k: [m for m in handler.to(addresses[k]) if "新的欺凌报告" in m["Subject"]] for k in ("safety", "principal")}
    assert sorted(len(v) for v in got.values()) == [1, 2]
    twice = next(v for v in got.values() if len(v) == 2)
    assert twice[0]["Message-ID"] == twice[1]["Message-ID"]
    # and a third run sends nothing
    third = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "已发送 0" in third.stdout, third.stdout


def test_an_investigation_nearing_its_deadline_then_overdue_tells_the_safety_lead_once_each(
    app: Anxin, school: School, clock: Clock, smtp: Inbox
) -> None:
    # given a report whose investigation started at once (due in policy's days from the start)
    # and the first run's notices
    addresses = _emails(app, school)
    case_id = report(app, school, clock)
    app.cases.start_investigation(school.safety, case_id)
    app.notifications.deliver()
    assert len(smtp.to(addresses["safety"])) == 1  # the new report

    def kinds(who: Any) -> list[str]:
        return sorted(i["kind"] for i in app.notifications.inbox(who) if i["stream_id"] == case_id)

    # when the days pass until two days before the deadline, and runs go each day
    due = app.cases.get_case(school.safety, case_id).investigation_due
    while clock.today < due - timedelta(days=2):
        assert "investigation_due" not in kinds(school.safety)
        clock.advance(days=1)
        app.notifications.deliver()
    app.notifications.deliver()

    # then the safety lead is told once that it is due soon
    assert kinds(school.safety) == ["case_reported", "investigation_due"]
    assert len(smtp.to(addresses["safety"])) == 2

    # and once the deadline passes, once more that it is overdue (the principal too)
    while clock.today <= due:
        clock.advance(days=1)
        app.notifications.deliver()
    app.notifications.deliver()
    assert kinds(school.safety) == ["case_reported", "investigation_due", "investigation_overdue"]
    assert "investigation_overdue" in kinds(school.principal)
    assert len(smtp.to(addresses["safety"])) == 3


def test_a_crisis_from_a_screening_reaches_every_counselor_and_the_principal_by_email_at_once(
    app: Anxin, school: School, clock: Clock, smtp: Inbox, bot: Bot
) -> None:
    # given everyone's address, the school's bot, and the principal who set email to
    # digest for everything they could (a crisis cannot be delayed)
    addresses = _emails(app, school)
    app.notifications.set_group_bot(ADMIN, school.id, bot.url)
    app.notifications.choose(school.principal, {"case_reported": "off"})

    # when a counselor records a PHQ-9 screening with item 9 positive, and one run goes
    app.screenings.record_screening(
        school.counselor,
        school.student("2026003"),
        instrument="PHQ-9",
        screened_on=clock.today,
        answers="1,1,1,1,1,1,1,1,1",
    )
    app.notifications.deliver()

    # then every counselor and the principal have it in the inbox and by email, with
    # the crisis page's link, no name and no answer; the class teacher gets no notice
    crisis = [m for _, m in smtp.messages if "心理危机" in m["Subject"]]
    told = ("counselor", "other_counselor", "principal")  # the one who recorded it too: a record of it
    assert sorted(m["To"] for m in crisis) == sorted(addresses[k] for k in told)
    for m in crisis:
        assert "/crisis/" in m.get_content()
        for personal in PERSONAL:
            assert personal not in m["Subject"] + m.get_content()
    assert [i["kind"] for i in app.notifications.inbox(school.principal)] == ["crisis"]
    assert app.notifications.inbox(school.other_teacher) == []
    assert any("心理危机" in p["text"]["content"] for _, p in bot.posts)


def test_a_break_glass_use_tells_the_schools_principal_and_the_other_supervisors_not_the_user(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a second supervisor of the district
    other = app.gate.actor(
        app.roster.add_staff(
            ADMIN, username="sup-2", name="督导乙", school_id=None, roles=["supervisor"], district="default"
        )
    )
    case_id = report(app, school, clock)
    app.notifications.deliver()

    # when the first supervisor reads the case with a stated reason
    app.cases.get_case(school.supervisor, case_id, break_glass="核查家长投诉：了解处理经过")
    app.notifications.deliver()

    # then the principal and the other supervisor are told (the review queue), the user is not
    assert [i["kind"] for i in app.notifications.inbox(other)] == ["break_glass"]
    assert "break_glass" in [i["kind"] for i in app.notifications.inbox(school.principal)]
    assert app.notifications.inbox(school.supervisor) == []
    notice = app.notifications.inbox(other)[0]["notice_id"]
    assert app.notifications.open(other, notice) == "/reviews"


def test_a_daily_digest_lists_each_persons_overdue_items_once_a_day_from_seven(
    app: Anxin, school: School, clock: Clock, smtp: Inbox
) -> None:
    # given a teacher paired with a student whose check-in falls overdue, and the principal
    # who chose to get new reports in the digest
    addresses = _emails(app, school)
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    app.notifications.choose(school.principal, {"case_reported": "digest"})
    report(app, school, clock)
    clock.advance(days=20)  # the check-in (every 14 days) is overdue; 17:00 in Beijing

    # when a delivery run goes, and another the same day
    app.notifications.deliver()
    app.notifications.deliver()

    # then the teacher got one digest naming the overdue check-in by its number, the
    # principal one naming the unread report; no name, no content
    (digest,) = smtp.to(addresses["teacher"], digests=True)
    body = digest.get_content()
    assert "一岗双带谈心谈话" in body and app.record_number(pid) in body
    (principals,) = smtp.to(addresses["principal"], digests=True)
    assert "新的欺凌报告" in principals.get_content()
    # (the report itself was not emailed at once)
    assert not [m for m in smtp.to(addresses["principal"]) if "新的欺凌报告" in str(m["Subject"])]
    for _, m in smtp.messages:
        for personal in PERSONAL:
            assert personal not in str(m["Subject"]) + m.get_content()

    # and not before seven the next morning, then once again
    clock.advance(hours=13)  # 06:00 in Beijing
    app.notifications.deliver()
    assert len(smtp.to(addresses["teacher"], digests=True)) == 1
    clock.advance(hours=2)  # 08:00
    app.notifications.deliver()
    assert len(smtp.to(addresses["teacher"], digests=True)) == 2
    # and a person who turns the digest off gets none
    app.notifications.choose(school.teacher, {"digest": "off"})
    clock.advance(days=1)
    app.notifications.deliver()
    assert len(smtp.to(addresses["teacher"], digests=True)) == 2


def _certificate(tmp_path: Any) -> tuple[Any, Any]:
    """A self-signed certificate for 127.0.0.1 (the test's own CA): cert and key files."""
    import ipaddress
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.mark.parametrize("way", ["starttls", "smtps"])
def test_email_goes_over_tls_with_a_login_when_the_url_says_so(
    app: Anxin, school: School, clock: Clock, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # given a mail server that takes mail only over TLS and only after a login
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert_file, key_file = _certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"anxin", b"s3cret pass")
        logins.append((data.login, data.password))
        return AuthResult(success=ok)

    handler = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": True}
    if way == "smtps":
        # (aiosmtpd counts only STARTTLS as TLS for auth_require_tls: the whole connection is here)
        options |= {"ssl_context": server_tls, "auth_require_tls": False}
        url = f"smtps://anxin:s3cret%20pass@127.0.0.1:{port}"
    else:
        options |= {"tls_context": server_tls, "require_starttls": True}
        url = f"smtp://anxin:s3cret%20pass@127.0.0.1:{port}?starttls=1"
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="127.0.0.1", **options)
    controller.start()
    monkeypatch.setenv("ANXIN_SMTP_URL", url)
    monkeypatch.setenv("ANXIN_SMTP_CA_FILE", str(cert_file))
    try:
        addresses = _emails(app, school)
        report(app, school, clock)
        done = app.notifications.deliver()
    finally:
        controller.stop()
    # then both messages went, after a login with the URL's user and password
    assert (done.sent, done.failed) == (2, 0), done.errors
    assert len(handler.to(addresses["safety"])) == 1 and logins[0] == (b"anxin", b"s3cret pass")

    # and a server whose certificate is not trusted gets nothing (the certificate is checked)
    monkeypatch.delenv("ANXIN_SMTP_CA_FILE")
    controller = Controller(Inbox(), hostname="127.0.0.1", port=port, server_hostname="127.0.0.1", **options)
    controller.start()
    try:
        clock.advance(days=1)
        app.cases.report_bullying(
            school.teacher,
            school_id=school.id,
            channel="teacher",
            occurred_at=clock.now - timedelta(hours=1),
            place=PLACE,
            forms=["verbal"],
            narrative=NARRATIVE,
            parties=[(school.student("2026002"), "targeted")],
        )
        refused = app.notifications.deliver()
    finally:
        controller.stop()
    assert refused.sent == 0 and refused.failed >= 2 and "SSLCertVerificationError" in refused.errors


def test_a_report_whose_investigation_has_not_started_in_time_tells_the_safety_lead_once(
    app: Anxin, school: School, clock: Clock, smtp: Inbox
) -> None:
    # given a report on a Monday (its investigation to start by Tuesday: policy, 1 school day)
    addresses = _emails(app, school)
    case_id = report(app, school, clock)
    app.notifications.deliver()

    def kinds(who: Any) -> list[str]:
        return sorted(i["kind"] for i in app.notifications.inbox(who) if i["stream_id"] == case_id)

    # when Tuesday passes without it starting (no reminder before: the report itself was one)
    clock.advance(days=1)
    app.notifications.deliver()
    assert kinds(school.safety) == ["case_reported"]
    clock.advance(days=1)
    app.notifications.deliver()
    app.notifications.deliver()
    # then the safety lead and the principal are told once that it is late
    assert kinds(school.safety) == ["case_reported", "investigation_overdue"]
    assert "investigation_overdue" in kinds(school.principal)
    assert len(smtp.to(addresses["safety"])) == 2
