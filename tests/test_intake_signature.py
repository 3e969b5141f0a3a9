"""Issue 32, part 5: the intake API's signature covers the request, not just its body (v2 over
`v2:{timestamp}:{METHOD}:{path}:{Idempotency-Key}:{body}`), v1 is refused, and a signature is
accepted once across replicas (the `intake_replay` table). Through real HTTP: signed POSTs and
GETs to the bot's WSGI app; the signer here is written from the README's words, not the bot's."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.webhooks import signing
from tests.test_intake import INTAKE, SECRET, ask, recorded

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
TIMESTAMP, SIGNATURE = "X-Sfox-Bot-Timestamp", "X-Sfox-Bot-Signature"
REQUESTS = "/api/v1/requests"
SCHEME = "v2:{timestamp}:{method}:{path}:{idempotency key}:{body}"


def v2(method: str, target: str, key: str = "", body: bytes = b"", at: float | None = None) -> dict[str, str]:
    """The two headers, as the README says to compute them."""
    ts = str(int(time.time() if at is None else at))
    base = f"v2:{ts}:{method}:{target}:{key}:".encode() + body
    return {TIMESTAMP: ts, SIGNATURE: "v2=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()}


def send_post(bot: Any, body: bytes, key: str, headers: dict[str, str]) -> httpx.Response:
    sent = {"Content-Type": "application/json", "Idempotency-Key": key, **headers}
    return httpx.post(bot.url + REQUESTS, content=body, headers=sent, timeout=30)


def send_get(bot: Any, target: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(bot.url + target, headers=headers, timeout=10)


@pytest.fixture
def intake_bot(make_bot: Any, fake_sfox: Any) -> Any:
    fake_sfox.add_user("acct_intake_1")
    fake_sfox.add_user("acct_intake_2")
    return make_bot(**INTAKE)


def opened(bot: Any, user: str = "acct_intake_1") -> int:
    body = json.dumps(ask(user)).encode()
    key = f"k-{user}"
    response = send_post(bot, body, key, v2("POST", REQUESTS, key, body))
    assert response.status_code == 202, response.text
    return int(response.json()["request_id"])


def test_a_v1_signature_is_refused_with_a_401_naming_the_v2_scheme(intake_bot):
    bot = intake_bot
    body = json.dumps(ask()).encode()
    old = send_post(bot, body, "k-v1", signing.signed_headers(SECRET, body))
    assert old.status_code == 401
    assert "v2" in old.json()["error"] and SCHEME in old.json()["error"]
    assert send_get(bot, REQUESTS + "/1", signing.signed_headers(SECRET, b"")).status_code == 401
    assert recorded(bot) == (0, 0, 0)


def test_a_captured_post_replayed_with_another_key_or_body_is_refused(intake_bot):
    bot = intake_bot
    body = json.dumps(ask()).encode()
    headers = v2("POST", REQUESTS, "k-1", body)
    assert send_post(bot, body, "k-1", headers).status_code == 202
    again = send_post(bot, body, "k-2", headers)  # the captured headers, a new key
    assert again.status_code == 401 and "does not match" in again.json()["error"]
    other = json.dumps(ask("acct_intake_2")).encode()
    assert send_post(bot, other, "k-1", headers).status_code == 401  # another body, the same key
    assert recorded(bot) == (1, 1, 1)


def test_the_same_signed_request_twice_is_already_used_and_a_new_signature_gets_the_first_answer(intake_bot):
    bot = intake_bot
    body = json.dumps(ask()).encode()
    headers = v2("POST", REQUESTS, "k-1", body, at=time.time() - 1)
    first = send_post(bot, body, "k-1", headers)
    assert first.status_code == 202
    replay = send_post(bot, body, "k-1", headers)
    assert replay.status_code == 401 and "already used" in replay.json()["error"]
    fresh = send_post(bot, body, "k-1", v2("POST", REQUESTS, "k-1", body))  # signed again: idempotent
    assert fresh.status_code == 202 and fresh.json() == first.json()
    assert recorded(bot) == (1, 1, 1)


def test_a_get_s_signature_reads_its_own_path_and_query_once(intake_bot):
    bot = intake_bot
    first, second = opened(bot, "acct_intake_1"), opened(bot, "acct_intake_2")
    mine = f"{REQUESTS}/{first}"
    headers = v2("GET", mine)
    stolen = send_get(bot, f"{REQUESTS}/{second}", headers)  # the same headers, another id
    assert stolen.status_code == 401 and "does not match" in stolen.json()["error"]
    shown = send_get(bot, mine, headers)
    assert shown.status_code == 200 and shown.json()["id"] == first
    assert "already used" in send_get(bot, mine, headers).json()["error"]
    with_query = v2("GET", mine + "?view=full")
    assert send_get(bot, mine + "?view=other", with_query).status_code == 401  # the query is signed
    assert send_get(bot, mine, with_query).status_code == 401
    assert send_get(bot, mine + "?view=full", with_query).status_code == 200
    as_post = v2("POST", mine)  # the method is signed too
    assert send_get(bot, mine, as_post).status_code == 401


def test_the_key_is_signed_for_a_post_and_empty_for_a_get(intake_bot):
    bot = intake_bot
    body = json.dumps(ask()).encode()
    unsigned_key = send_post(bot, body, "k-1", v2("POST", REQUESTS, "", body))
    assert unsigned_key.status_code == 401
    request_id = opened(bot)
    target = f"{REQUESTS}/{request_id}"
    with_key = httpx.get(bot.url + target, headers={**v2("GET", target), "Idempotency-Key": "x"}, timeout=10)
    assert with_key.status_code == 200  # a GET's key is empty in the base string, whatever is sent


def _replicas(make_bot: Any, fake_sfox: Any) -> tuple[Any, Any]:
    fake_sfox.add_user("acct_intake_1")
    return make_bot(**INTAKE), make_bot(**INTAKE)


def test_a_signature_used_on_one_replica_is_refused_by_another(make_bot, fake_sfox):
    one, two = _replicas(make_bot, fake_sfox)  # one database, on both engines (database_url)
    body = json.dumps(ask()).encode()
    headers = v2("POST", REQUESTS, "k-1", body)
    assert send_post(one, body, "k-1", headers).status_code == 202
    replay = send_post(two, body, "k-1", headers)
    assert replay.status_code == 401 and "already used" in replay.json()["error"]


def test_twenty_copies_sent_at_once_to_two_replicas_are_taken_once(make_bot, fake_sfox):
    one, two = _replicas(make_bot, fake_sfox)  # one database, on both engines (database_url)
    request_id = opened(one)
    target = f"{REQUESTS}/{request_id}"
    headers = v2("GET", target)
    start = threading.Barrier(20)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def send(bot: Any) -> None:
        start.wait()
        response = send_get(bot, target, headers)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=send, args=(one if n % 2 else two,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [200] + [401] * 19
    assert all("already used" in r.json()["error"] for r in answers if r.status_code == 401)


def test_spent_signatures_are_pruned_after_their_window(intake_bot):
    bot = intake_bot
    seen = bot.runtime.intake.seen
    now = time.time()
    assert seen.first_use("v2=" + "a" * 64, int(now), now=now)
    assert not seen.first_use("v2=" + "a" * 64, int(now), now=now)
    assert seen.first_use("v2=" + "b" * 64, int(now) + 200, now=now)

    def rows() -> int:
        with bot.store.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM intake_replay").scalar_one()

    assert rows() == 2
    later = now + signing.MAX_SKEW_SECONDS + seen.margin + 1
    assert seen.prune(now=later) == 1 and rows() == 1  # the one signed 200 s later is still owed
    assert seen.prune(now=later + 200) == 1 and rows() == 0


def _readme_intake() -> str:
    start = README.index("## Intake API\n")
    return README[start : README.index("\n## ", start + 1)]


def test_the_readme_s_python_example_is_accepted(intake_bot):
    bot = intake_bot
    bot.sfox.add_user("client_8841")
    (snippet,) = re.findall(r"```python\n(.*?)```", _readme_intake(), re.S)
    namespace: dict[str, Any] = {"BOT": bot.url, "SECRET": SECRET}
    exec(snippet, namespace)  # noqa: S102 - the README's own code, run as an integrator would
    assert namespace["opened"].status_code == 202, namespace["opened"].text
    assert (
        namespace["shown"].status_code == 200 and namespace["shown"].json()["sfox_user_id"] == "client_8841"
    )


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("curl") is None, reason="no openssl/curl")
def test_the_readme_s_curl_and_openssl_example_is_accepted(intake_bot, tmp_path):
    bot = intake_bot
    (snippet,) = re.findall(r"```sh\n(.*?)```", _readme_intake(), re.S)
    request_id = opened(bot, "acct_intake_2")  # the example reads request 42: here, this one
    (tmp_path / "body.json").write_text(json.dumps(ask()))
    script = snippet.replace("id=42", f"id={request_id}")
    if shutil.which("uuidgen") is None:  # not on every machine: the same thing in Python
        script = "uuidgen() { python3 -c 'import uuid; print(uuid.uuid4())'; }\n" + script
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "BOT": bot.url, "SFOX_INTAKE_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers, decoder, at = [], json.JSONDecoder(), 0
    while at < len(done.stdout.rstrip()):  # curl -s prints the two answers back to back
        answer, at = decoder.raw_decode(done.stdout, at)
        answers.append(answer)
    assert answers[0]["status"] == "pending", done.stdout
    assert answers[-1]["id"] == request_id, done.stdout


def test_a_signature_that_cannot_be_recorded_is_503_and_changes_nothing(intake_bot, monkeypatch):
    from sqlalchemy.exc import OperationalError

    bot = intake_bot
    spent = bot.runtime.intake.seen.spent

    def down(*_: Any) -> bool:
        raise OperationalError("INSERT INTO intake_replay", {}, Exception("database is locked"))

    monkeypatch.setattr(spent, "spend", down)
    body = json.dumps(ask()).encode()
    answer = send_post(bot, body, "k-1", v2("POST", REQUESTS, "k-1", body))
    assert answer.status_code == 503 and "sign it again" in answer.json()["error"]
    assert recorded(bot) == (0, 0, 0)
    monkeypatch.undo()
    assert (
        send_post(bot, body, "k-1", v2("POST", REQUESTS, "k-1", body, at=time.time() - 1)).status_code == 202
    )
