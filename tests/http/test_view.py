"""The live run view in a real headless Chromium (Debian's ``chromium``, driven by
Playwright's Python API; Playwright downloads no browser of its own).

Each test serves a fresh data directory with ``graphstore serve`` (the ``server``
fixture), opens ``/#tenant=acme&key=...`` in the browser, sends call events over HTTP
and waits (bounded, never by sleeping) for the page to show what they did: the runs
list, the call tree changing live over Server-Sent Events, errors, the as-of slider
and the filters. A screenshot of each page is kept in the test's temp dir.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    APIResponse,
    Browser,
    Locator,
    Page,
    Route,
    expect,
    sync_playwright,
)

from tests.http.conftest import TENANT, Server, call, responded

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT = 20_000
"""Milliseconds any one expectation may wait for the page (an upper bound, not a pace)."""

T0 = 1_700_000_000_000  # ms since the epoch: 2023-11-14, before the since-filter below
T1 = 1_800_000_000_000  # 2027-01-15, after it


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module; a test without chromium skips, or in CI fails."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        message = (
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(bootstrap/setup.sh does) to run the browser tests of the live run view"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class View:
    """A page of the live view and what went wrong in it (uncaught errors)."""

    def __init__(self, page: Page, server: Server) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, run: str | None = None) -> None:
        fragment = f"tenant={TENANT}&key={self.server.key}" + (f"&run={run}" if run else "")
        self.page.goto(f"{self.server.url}/#{fragment}")
        # both feeds (the runs' and the run's) are connected: what is sent now is seen live
        expect(self.by("link")).to_have_text("live", timeout=WAIT)
        # a mark that a reload would wipe out
        self.page.evaluate("window.__sameDocument = true")

    def by(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    def call(self, request_id: str) -> Locator:
        return self.by(f"call-{request_id}")

    def run(self, run_id: str) -> Locator:
        return self.by(f"run-{run_id}")

    def slide(self, index: int) -> None:
        """Move the as-of slider to ``index`` as a user dragging it would."""
        self.by("as-of-slider").evaluate(
            "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
            str(index),
        )

    def not_reloaded(self) -> None:
        assert self.page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert self.errors == [], f"uncaught errors in the page: {self.errors}"

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=path, full_page=True)
        assert path.is_file() and path.stat().st_size > 0, f"no screenshot at {path}"


@pytest.fixture
def view(browser: Browser, server: Server) -> Iterator[View]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="UTC")
    try:
        yield View(context.new_page(), server)
    finally:
        context.close()


def ingest(server: Server, *events: dict[str, Any]) -> None:
    """One batch of call events over HTTP; it must be accepted."""
    response = httpx.post(
        f"{server.url}/v1/tenants/{TENANT}/calls",
        json=list(events),
        headers=server.headers(),
        timeout=30,
    )
    assert response.status_code == 200, response.text


def error(
    request_id: str, at: int, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"requestId": request_id, "code": code, "message": message}
    if details is not None:
        payload["details"] = details
    return {"type": "call.error", "at": at, "payload": payload}


def completed(request_id: str, at: int) -> dict[str, Any]:
    return {"type": "call.completed", "at": at, "payload": {"requestId": request_id}}


# --- the tree, live ------------------------------------------------------------------------


def test_the_call_tree_changes_on_screen_as_events_arrive(
    view: View, server: Server, tmp_path: Path
) -> None:
    view.open(run="run-1")  # opened before the run exists: it appears when it starts
    expect(view.by("runs").locator("tr")).to_have_count(0, timeout=WAIT)

    ingest(server, call("run-1", T0, "flows.nightly"))
    expect(view.run("run-1")).to_have_attribute("data-status", "running", timeout=WAIT)
    expect(view.call("run-1")).to_have_attribute("data-status", "pending", timeout=WAIT)
    expect(view.by("run-title")).to_contain_text("run-1", timeout=WAIT)

    # a new child appears, under its parent
    ingest(server, call("q-1", T0 + 5, "db.query", parentRequestId="run-1"))
    expect(view.call("run-1").get_by_test_id("call-q-1")).to_have_attribute(
        "data-status", "pending", timeout=WAIT
    )
    expect(view.call("q-1")).to_contain_text("db.query", timeout=WAIT)

    # the pending call becomes completed
    ingest(server, responded("q-1", T0 + 9))
    expect(view.call("q-1")).to_have_attribute("data-status", "completed", timeout=WAIT)

    # a child whose parent arrives later: shown, nested, once the parent is recorded
    ingest(server, call("leaf", T0 + 12, "mail.send", parentRequestId="step-2"))
    ingest(server, call("step-2", T0 + 10, "flows.step", parentRequestId="run-1"))
    expect(view.call("step-2").get_by_test_id("call-leaf")).to_have_attribute(
        "data-status", "pending", timeout=WAIT
    )
    # siblings in request order: q-1 (T0+5) before step-2 (T0+10)
    expect(view.by("tree").locator("[data-testid^='call-']")).to_have_count(4, timeout=WAIT)
    order = (
        view.by("tree")
        .locator("[data-testid^='call-']")
        .evaluate_all("items => items.map(item => item.dataset.testid)")
    )
    assert order == ["call-run-1", "call-q-1", "call-step-2", "call-leaf"]

    # a failing call shows its error: code, message and details
    details = {"smtpStatus": 554, "relay": "mx.example"}
    ingest(server, error("leaf", T0 + 20, "EXECUTION_ERROR", "smtp refused the message", details))
    expect(view.call("leaf")).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(view.by("error-leaf")).to_contain_text("EXECUTION_ERROR", timeout=WAIT)
    expect(view.by("error-leaf")).to_contain_text("smtp refused the message", timeout=WAIT)
    expect(view.by("details-leaf")).to_contain_text('"smtpStatus": 554', timeout=WAIT)
    expect(view.by("run-summary")).to_contain_text("1 failed", timeout=WAIT)

    # the run ends: the runs list and the tree say so
    ingest(server, completed("step-2", T0 + 25), responded("run-1", T0 + 30))
    expect(view.run("run-1")).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(view.call("run-1")).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(view.call("step-2")).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(view.by("error-leaf")).to_be_visible(timeout=WAIT)

    view.not_reloaded()
    view.screenshot(tmp_path / "view.png")


def test_a_run_opened_from_the_list_follows_it_live(
    view: View, server: Server, tmp_path: Path
) -> None:
    ingest(server, call("run-a", T0, "flows.a"))
    view.open()
    view.run("run-a").click()
    expect(view.call("run-a")).to_have_attribute("data-status", "pending", timeout=WAIT)
    expect(view.run("run-a")).to_have_class("selected", timeout=WAIT)

    ingest(server, call("a-1", T0 + 1, "ns.op", parentRequestId="run-a"))
    expect(view.call("run-a").get_by_test_id("call-a-1")).to_be_visible(timeout=WAIT)
    ingest(server, responded("a-1", T0 + 2))
    expect(view.call("a-1")).to_have_attribute("data-status", "completed", timeout=WAIT)
    # a run is running while any of its calls is, then it has its root's outcome
    expect(view.run("run-a")).to_have_attribute("data-status", "running", timeout=WAIT)
    ingest(server, error("run-a", T0 + 3, "TIMEOUT", "deadline passed"))
    expect(view.run("run-a")).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(view.by("error-run-a")).to_contain_text("TIMEOUT", timeout=WAIT)
    expect(view.by("error-run-a")).to_contain_text("deadline passed", timeout=WAIT)

    view.not_reloaded()
    view.screenshot(tmp_path / "view.png")


# --- the run as of an offset ---------------------------------------------------------------


def test_the_as_of_slider_shows_earlier_states_and_live_comes_back(
    view: View, server: Server, tmp_path: Path
) -> None:
    for event in (
        call("run-h", T0, "flows.h"),
        call("h-1", T0 + 1, "ns.first", parentRequestId="run-h"),
        responded("h-1", T0 + 2),
        call("h-2", T0 + 3, "ns.second", parentRequestId="run-h"),
        error("h-2", T0 + 4, "EXECUTION_ERROR", "it broke"),
    ):
        ingest(server, event)  # one batch each: one history entry each
    offsets = [
        e["offset"] for e in server.op("graphstore.runs.history", {"runId": "run-h"})["entries"]
    ]
    assert len(offsets) == 5

    view.open(run="run-h")
    slider = view.by("as-of-slider")
    expect(view.call("h-2")).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(slider).to_have_attribute("max", "4", timeout=WAIT)
    expect(view.by("as-of-label")).to_have_text("live", timeout=WAIT)

    # once h-1 was requested: two calls, h-1 still pending, no h-2
    view.slide(1)
    expect(view.by("as-of-label")).to_contain_text(str(offsets[1]), timeout=WAIT)
    expect(view.call("h-1")).to_have_attribute("data-status", "pending", timeout=WAIT)
    expect(view.call("h-2")).to_have_count(0, timeout=WAIT)
    expect(view.call("run-h")).to_have_attribute("data-status", "pending", timeout=WAIT)

    # once h-2 was requested: h-1 completed, h-2 pending, no error yet
    view.slide(3)
    expect(view.by("as-of-label")).to_contain_text(str(offsets[3]), timeout=WAIT)
    expect(view.call("h-2")).to_have_attribute("data-status", "pending", timeout=WAIT)
    expect(view.call("h-1")).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(view.by("error-h-2")).to_have_count(0, timeout=WAIT)

    # the very start: the root alone
    view.slide(0)
    expect(view.by("as-of-label")).to_contain_text(str(offsets[0]), timeout=WAIT)
    expect(view.by("tree").locator("[data-testid^='call-']")).to_have_count(1, timeout=WAIT)

    # what happens meanwhile extends the slider but leaves the past on screen
    ingest(server, call("h-3", T0 + 5, "ns.third", parentRequestId="run-h"))
    expect(slider).to_have_attribute("max", "5", timeout=WAIT)
    expect(view.call("h-3")).to_have_count(0)
    expect(view.by("as-of-label")).to_contain_text(str(offsets[0]))
    view.screenshot(tmp_path / "as-of.png")

    # live: the current state again, and following it
    view.by("live").click()
    expect(view.by("as-of-label")).to_have_text("live", timeout=WAIT)
    expect(view.call("h-3")).to_have_attribute("data-status", "pending", timeout=WAIT)
    expect(view.call("h-2")).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(view.by("error-h-2")).to_contain_text("it broke", timeout=WAIT)
    expect(slider).to_have_value("5", timeout=WAIT)
    ingest(server, responded("h-3", T0 + 6))
    expect(view.call("h-3")).to_have_attribute("data-status", "completed", timeout=WAIT)

    view.not_reloaded()
    view.screenshot(tmp_path / "view.png")


# --- filters -------------------------------------------------------------------------------


def test_the_filters_show_only_the_runs_asked_for(
    view: View, server: Server, tmp_path: Path
) -> None:
    ingest(server, call("ok", T0, "flows.ok"), responded("ok", T0 + 1))
    ingest(server, call("bad", T0 + 10, "flows.bad"), error("bad", T0 + 11, "TIMEOUT", "late"))
    ingest(server, call("open", T1, "flows.open"))
    view.open()
    rows = view.by("runs").locator("tr")
    expect(rows).to_have_count(3, timeout=WAIT)
    expect(view.run("ok")).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(view.run("bad")).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(view.run("open")).to_have_attribute("data-status", "running", timeout=WAIT)

    status = view.by("status-filter")
    for wanted, run_id in (("failed", "bad"), ("completed", "ok"), ("running", "open")):
        status.select_option(wanted)
        expect(rows).to_have_count(1, timeout=WAIT)
        expect(view.run(run_id)).to_have_attribute("data-status", wanted, timeout=WAIT)

    # a filtered list stays filtered when runs change live
    status.select_option("failed")
    expect(rows).to_have_count(1, timeout=WAIT)
    ingest(server, call("bad-2", T1 + 1, "flows.bad"), error("bad-2", T1 + 2, "TIMEOUT", "x"))
    ingest(server, call("fine", T1 + 3, "flows.ok"), responded("fine", T1 + 4))
    expect(view.run("bad-2")).to_have_attribute("data-status", "failed", timeout=WAIT)
    expect(rows).to_have_count(2, timeout=WAIT)
    expect(view.run("fine")).to_have_count(0)

    status.select_option("")
    expect(rows).to_have_count(5, timeout=WAIT)

    # since: only runs started at or after it (the page runs in UTC)
    view.by("since-filter").fill("2025-01-01T00:00")
    expect(rows).to_have_count(3, timeout=WAIT)
    expect(view.run("ok")).to_have_count(0)
    expect(view.run("open")).to_be_visible(timeout=WAIT)

    view.not_reloaded()
    view.screenshot(tmp_path / "view.png")


def test_as_of_before_the_root_was_recorded_shows_no_run_yet(
    view: View, server: Server, tmp_path: Path
) -> None:
    # the child is recorded first, waiting for its parent; the root comes after it
    ingest(server, call("c-1", T0 + 1, "ns.child", parentRequestId="run-c"))
    ingest(server, call("run-c", T0, "flows.c"))
    view.open(run="run-c")
    expect(view.call("run-c").get_by_test_id("call-c-1")).to_be_visible(timeout=WAIT)
    expect(view.by("as-of-slider")).to_have_attribute("max", "1", timeout=WAIT)

    view.slide(0)  # only the child then: not yet a call of run-c
    expect(view.by("run-summary")).to_contain_text("not a run yet", timeout=WAIT)
    expect(view.by("tree").locator("[data-testid^='call-']")).to_have_count(0, timeout=WAIT)

    view.slide(1)
    expect(view.call("run-c").get_by_test_id("call-c-1")).to_be_visible(timeout=WAIT)
    expect(view.by("as-of-label")).to_contain_text("2/2", timeout=WAIT)
    view.not_reloaded()


def test_what_commits_before_the_stream_begins_is_shown(
    view: View, server: Server, tmp_path: Path
) -> None:
    """The run's stream starts "from now on": an event committed between the page's first
    read of the run and the stream's start must still reach the screen."""
    ingest(server, call("run-g", T0, "flows.g"))
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)  # the run's stream waits until released below

    view.page.route("**/changes?run=*", hold)
    with view.page.expect_request("**/changes?run=*", timeout=WAIT):
        view.page.goto(f"{server.url}/#tenant={TENANT}&key={server.key}&run=run-g")
    expect(view.call("run-g")).to_have_attribute("data-status", "pending", timeout=WAIT)
    expect(view.by("link")).not_to_have_text("live")
    assert len(held) == 1, held

    ingest(server, call("g-1", T0 + 1, "ns.gap", parentRequestId="run-g"))  # in the gap
    held[0].continue_()
    expect(view.by("link")).to_have_text("live", timeout=WAIT)
    expect(view.call("run-g").get_by_test_id("call-g-1")).to_be_visible(timeout=WAIT)
    assert view.errors == []


def test_a_late_answer_to_an_older_read_does_not_overwrite_a_newer_one(
    view: View, server: Server, tmp_path: Path
) -> None:
    ingest(server, call("run-s", T0, "flows.s"))
    view.open(run="run-s")
    expect(view.call("run-s")).to_have_attribute("data-status", "pending", timeout=WAIT)

    held: list[tuple[Route, APIResponse]] = []
    passed: list[str] = []
    holding: list[Route] = []

    def hold_first(route: Route) -> None:
        # `holding` is set before the fetch: Playwright may call this handler for the next
        # request while `route.fetch()` waits, and that one must pass, not be held too.
        if holding:
            passed.append(route.request.url)
            route.continue_()
            return
        holding.append(route)
        # the server answers now (s-1 pending); the page gets that answer only later,
        # after s-1 completed and a newer read showed it
        held.append((route, route.fetch()))
        ingest(server, responded("s-1", T0 + 2))

    view.page.route("**/ops/graphstore.runs.show", hold_first)
    ingest(server, call("s-1", T0 + 1, "ns.slow", parentRequestId="run-s"))
    expect(view.call("s-1")).to_have_attribute("data-status", "completed", timeout=WAIT)
    assert len(held) == 1 and passed, (held, passed)
    assert '"pending"' in held[0][1].text()

    route, stale = held[0]
    with view.page.expect_event("requestfinished", timeout=WAIT):
        route.fulfill(response=stale)
    # let the page take the late answer in (tasks queued after the body arrived)
    view.page.evaluate("() => new Promise(r => setTimeout(() => requestAnimationFrame(r), 50))")
    expect(view.call("s-1")).to_have_attribute("data-status", "completed", timeout=1_000)
    view.not_reloaded()


# --- reconnection --------------------------------------------------------------------------


def test_the_view_reconnects_when_the_server_comes_back(
    view: View, server: Server, tmp_path: Path
) -> None:
    ingest(server, call("run-r", T0, "flows.r"))
    view.open(run="run-r")
    expect(view.call("run-r")).to_have_attribute("data-status", "pending", timeout=WAIT)

    server.stop(signal.SIGKILL)  # both streams are cut mid-way
    expect(view.by("link")).not_to_have_text("live", timeout=WAIT)
    server.start()  # the same port and data
    expect(view.by("link")).to_have_text("live", timeout=WAIT)

    ingest(server, call("r-1", T0 + 1, "ns.after", parentRequestId="run-r"))
    expect(view.call("run-r").get_by_test_id("call-r-1")).to_be_visible(timeout=WAIT)
    ingest(server, responded("r-1", T0 + 2), responded("run-r", T0 + 3))
    expect(view.call("run-r")).to_have_attribute("data-status", "completed", timeout=WAIT)
    expect(view.run("run-r")).to_have_attribute("data-status", "completed", timeout=WAIT)
    view.not_reloaded()
    view.screenshot(tmp_path / "view.png")
