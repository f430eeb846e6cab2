"""The console end to end in a real browser: headless Chromium, driven by Selenium, against
``veilbox serve`` on 127.0.0.1.

The story of the issue, in order: a developer tries SQL on mock data and submits a job;
it may not open the review page, and a form posted without its CSRF token is refused; two
reviewers (the data is level 3) read the check report and approve; the developer downloads
the release and it verifies against the platform's key; an auditor verifies the whole log
and downloads an inclusion proof that ``veilbox ledger verify-proof`` accepts offline; the
authority's pages render. Every view is saved as a screenshot under
``build/console-screenshots/`` for a person to look at.

The tests need Debian's ``chromium`` and ``chromium-driver`` (``make sysdeps`` installs
them); without them they are skipped, unless ``VEILBOX_REQUIRE_BROWSER=1`` (CI), when that
is a failure. Nothing is downloaded: Selenium is pointed at both programs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ledger import PublicKey
from outbound_review import verify_release
from tests.gateway.api.conftest import GOVERNANCE_COLUMNS, World, running_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parents[3] / "build" / "console-screenshots"
VEILBOX = str(Path(sys.executable).with_name("veilbox"))
QUERY = "SELECT gender, COUNT(*) AS n\nFROM residents\nGROUP BY gender"
WAIT_S = 60


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = (
        f"{' and '.join(missing)} not installed: 'make sysdeps' installs Debian chromium and chromium-driver"
    )
    if os.environ.get("VEILBOX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"VEILBOX_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason, allow_module_level=True)


_require_browser()

from selenium import webdriver  # noqa: E402 - only once the browser is known to be there
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@dataclass
class Story:
    """The served platform, the browser, and what earlier steps left for later ones."""

    url: str
    world: World
    driver: WebDriver
    downloads: Path
    applied: str
    job: str = ""
    seen: dict[str, Any] = field(default_factory=dict)

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def sign_in(self, role: str) -> None:
        self.open("/console/signin")
        self.driver.find_element(By.ID, "token").send_keys(self.world.tokens[role])
        self.driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
        self.wait(lambda d: "/signin" not in d.current_url)

    def sign_out(self) -> None:
        self.driver.find_element(By.CSS_SELECTOR, "form[action='/console/signout'] button").click()
        self.wait(lambda d: "why=signed_out" in d.current_url)

    def wait(self, until: Callable[[WebDriver], Any], seconds: float = WAIT_S) -> Any:
        # Pages that reload themselves (a job's status) can swap an element out mid-read.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(self.driver, seconds, poll_frequency=0.1, ignored_exceptions=ignored).until(
            until
        )

    def text(self, css: str) -> str:
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)

    def shot(self, name: str) -> None:
        """Save the whole page as ``name``.png."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, max(800, min(int(height), 6000)))
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))
        self.driver.set_window_size(1280, 900)

    def downloaded(self, name: str) -> Path:
        """The file ``name`` once the browser has finished saving it."""
        path = self.downloads / name
        self.wait(lambda d: path.exists() and not list(self.downloads.glob("*.crdownload")))
        return path

    def job_status(self) -> str:
        return str(self.driver.find_element(By.ID, "job-status").get_attribute("data-status"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``veilbox serve`` started on a free port; :func:`_until_up` waits for it."""
    port = _free_port()
    server = subprocess.Popen(
        [VEILBOX, "serve", "--workdir", str(workdir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def _until_up(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        with contextlib.suppress(httpx2.TransportError):  # not listening yet
            if httpx2.get(f"{url}/v1/keys").status_code == 200:
                return
        assert server.poll() is None and time.monotonic() < deadline, "veilbox serve did not start"
        time.sleep(0.1)


def _chromium(downloads: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "profile.default_content_setting_values.automatic_downloads": 1,
        },
    )
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    allow = {"behavior": "allow", "downloadPath": str(downloads)}
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", allow)
    return driver


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("browser")
    with running_world(root, start_runner=False, level=3) as world:
        applied = world.post(
            "/v1/scenarios",
            {
                "authorization_id": world.authorizations["governance"]["id"],
                "name": "教育结构",
                "purpose": "education by district for school planning",
                "datasets": GOVERNANCE_COLUMNS,
                "output_forms": ["aggregate"],
                "privacy_unit": "residents.resident_id",
                "requested_epsilon": 2.0,
            },
            "operator",
        )
    SHOTS.mkdir(parents=True, exist_ok=True)
    downloads = root / "downloads"
    downloads.mkdir()
    server, url = _serve(world.workdir)
    driver = None
    http = httpx2.Client(base_url=url)
    try:
        driver = _chromium(downloads)  # while the server starts
        _until_up(server, url)
        world.client = http  # type: ignore[assignment] - the API calls now go to the served platform
        yield Story(url, world, driver, downloads, applied["id"])
    finally:
        http.close()
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_developer_tries_sql_on_mock_data_then_submits_it(story: Story) -> None:
    story.sign_in("developer")
    story.shot("01-developer-home")
    story.open("/console/catalog/residents")
    assert "resident_id" in story.text("table.data")
    story.shot("02-catalog-dataset")
    story.open("/console/playground")
    sql = story.driver.find_element(By.ID, "sql")
    sql.clear()
    sql.send_keys(QUERY)
    story.driver.find_element(By.CSS_SELECTOR, "form.card button.primary").click()
    story.wait(lambda d: d.find_elements(By.ID, "verdict-badge"))
    assert "MOCK" in story.text("#verdict-section") and "badge-pass" in story.driver.page_source
    story.shot("03-playground-mock-result")
    story.open("/console/jobs")
    sql = story.driver.find_element(By.ID, "job-sql")
    sql.clear()
    sql.send_keys(QUERY)
    story.driver.find_element(By.NAME, "dp").click()  # under differential privacy: it spends budget
    story.driver.find_element(By.CSS_SELECTOR, "details form button.primary").click()
    story.wait(lambda d: re.search(r"/console/jobs/job_\w+$", d.current_url))
    story.job = story.driver.current_url.rsplit("/", 1)[1]
    story.wait(lambda d: story.job_status() == "pending_review")  # the page reloads itself meanwhile
    story.shot("04-job-pending-review")


def test_a_developer_cannot_open_the_review_page(story: Story) -> None:
    story.open(f"/console/reviews/{story.job}")
    assert "403" in story.text("h1") and story.text("code.rule") == "G-ROLE"
    story.shot("05-developer-review-page-403")


def test_a_form_posted_without_its_csrf_token_is_refused(story: Story) -> None:
    before = len(story.world.get("/v1/jobs", "developer"))
    story.open("/console/jobs")
    story.driver.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = "/console/jobs";
        for (const [name, value] of [["scenario_id", arguments[0]], ["sql", arguments[1]]]) {
          const input = document.createElement("input");
          input.type = "hidden"; input.name = name; input.value = value;
          form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
        """,
        story.world.scenarios["governance"]["id"],
        QUERY,
    )
    story.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "section.refusal"))
    assert story.text("code.rule") == "C-CSRF" and "403" in story.text("h1")
    assert len(story.world.get("/v1/jobs", "developer")) == before
    story.shot("06-csrf-refused")
    story.open("/console/")
    story.sign_out()


def test_two_reviewers_read_the_check_report_and_approve(story: Story) -> None:
    for number, reviewer in enumerate(("reviewer", "reviewer2"), start=1):
        story.sign_in(reviewer)
        story.open("/console/reviews")
        story.shot(f"0{6 + number}-review-queue-{reviewer}")
        rows = story.driver.find_elements(By.CSS_SELECTOR, "[data-row-link]")
        assert story.job in [r.text for r in rows]
        body = story.driver.find_element(By.TAG_NAME, "body")
        for _ in range([r.text for r in rows].index(story.job) + 1):
            body.send_keys("j")  # the queue's keyboard shortcut
        assert story.driver.switch_to.active_element.text == story.job
        story.driver.switch_to.active_element.send_keys(Keys.ENTER)
        story.wait(lambda d: d.current_url.endswith(f"/console/reviews/{story.job}"))
        report = story.text("table.report")
        assert "SDC-MIN-CELL" in report and "SDC-DP" in report and "SDC-DIFFERENCING" in report
        assert "epsilon" in story.text("section[aria-labelledby=dp]")
        assert f"{number - 1} / 2" in story.text(".approvals")
        story.driver.find_element(By.ID, "reason").send_keys(f"每个单元 ≥ 10，用途相符（{reviewer}）")
        story.driver.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
        story.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "p.flash"))
        assert f"{number} / 2" in story.text(".approvals")
        story.shot(f"{8 + number:02d}-review-approved-by-{reviewer}")
        story.sign_out()
    assert story.world.get(f"/v1/jobs/{story.job}", "developer")["status"] in ("approved", "released")


def test_the_developer_downloads_the_release_and_it_verifies(story: Story) -> None:
    story.sign_in("developer")
    story.open(f"/console/jobs/{story.job}")
    story.wait(lambda d: story.job_status() == "released")
    story.shot("11-job-released")
    release = story.downloads / "release"
    release.mkdir()
    for link in story.driver.find_elements(By.CSS_SELECTOR, "a[data-file]"):
        name = str(link.get_attribute("data-file"))
        link.click()
        shutil.copy(story.downloaded(f"{story.job}-{name}"), release / name)
    assert (release / "result.csv").read_text().startswith('"gender","n"')
    key = PublicKey.from_vkey(story.world.get("/v1/keys", "developer")["release"])
    verify_release(release, key)
    story.sign_out()


def test_an_auditor_verifies_the_log_and_proves_an_entry_offline(story: Story) -> None:
    story.sign_in("auditor")
    story.open("/console/audit/ledger?action=release.downloaded")
    story.shot("12-ledger-explorer-filtered")
    first = story.driver.find_element(By.CSS_SELECTOR, "[data-row-link]")
    index = first.text
    first.click()
    story.wait(lambda d: d.current_url.endswith(f"/console/audit/ledger/{index}"))
    assert "release.downloaded" in story.text("#canonical")
    story.shot("13-ledger-entry")
    story.driver.find_element(By.ID, "inclusion-download").click()
    proof = story.downloaded(f"inclusion-{index}.json")
    story.driver.find_element(By.CSS_SELECTOR, "a[href='/console/audit/public-key']").click()
    key = story.downloaded("ledger.vkey")
    checked = subprocess.run(
        [VEILBOX, "ledger", "verify-proof", str(proof), "--public-key", str(key)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and checked.stdout.startswith(f"ok: entry {index} "), checked
    story.open("/console/audit/verify")
    story.driver.find_element(By.ID, "verify-start").click()
    story.wait(lambda d: d.find_elements(By.ID, "verify-result"))
    assert "badge-pass" in str(story.driver.find_element(By.ID, "verify-result").get_attribute("class"))
    assert story.text("#verify-summary").startswith("ok: ")
    story.shot("14-ledger-verified")
    story.open("/console/audit/checkpoint")
    story.shot("15-checkpoints-and-proofs")
    story.open("/console/audit/activity")
    assert len(story.driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3
    story.shot("16-activity-charts")
    story.sign_out()


def test_the_authority_pages_in_both_languages(story: Story) -> None:
    story.sign_in("authority")
    pages = {
        "datasets": "datasets",
        "authorizations": "authorizations",
        "scenarios": "scenarios",
        "policy-editor": f"scenarios/{story.applied}",
        "budgets": "budgets",
    }
    for number, (name, path) in enumerate(pages.items(), start=17):
        story.open(f"/console/authority/{path}")
        assert story.driver.find_elements(By.TAG_NAME, "h1")
        story.shot(f"{number}-authority-{name}")
    assert story.driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.chart-bar")  # the DP job's spend
    story.driver.find_element(By.CSS_SELECTOR, "a[hreflang=en]").click()
    story.wait(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    story.open(f"/console/authority/scenarios/{story.applied}")
    assert "Policy editor" in story.text("form.editor h2")
    story.shot("22-authority-policy-editor-english")
    story.sign_out()


def test_the_authority_reaches_a_page_through_its_grouped_navigation_by_keyboard(story: Story) -> None:
    story.sign_in("authority")
    story.open("/console/")
    sections = story.driver.find_elements(By.CSS_SELECTOR, "header nav details")
    summaries = [s.find_element(By.TAG_NAME, "summary") for s in sections]
    incidents = story.driver.find_element(By.CSS_SELECTOR, "header nav a[href='/console/incidents']")
    assert len(sections) == 4 and not incidents.is_displayed()  # closed until asked for
    summaries[0].send_keys(Keys.ENTER)
    assert sections[0].get_attribute("open") is not None
    summaries[2].send_keys(Keys.ENTER)  # opening one section closes the other
    assert sections[2].get_attribute("open") is not None and sections[0].get_attribute("open") is None
    assert incidents.is_displayed()
    oversight = summaries[2].text
    story.shot("25-authority-navigation-open")
    for _ in range(2):
        story.driver.switch_to.active_element.send_keys(Keys.TAB)
    assert story.driver.switch_to.active_element.get_attribute("href").endswith("/console/incidents")
    story.driver.switch_to.active_element.send_keys(Keys.ENTER)
    story.wait(lambda d: d.current_url.endswith("/console/incidents"))
    current = story.driver.find_element(By.CSS_SELECTOR, "header nav a[aria-current=page]")
    assert current.get_attribute("href").endswith("/console/incidents")
    marked = story.driver.find_element(By.CSS_SELECTOR, "header nav summary[aria-current=true]")
    assert marked.text == oversight
    story.sign_out()


def test_anyone_reads_the_published_disclosure_signed_out(story: Story) -> None:
    story.sign_in("authority")
    story.open("/console/authority/disclosures")
    story.driver.find_element(By.CSS_SELECTOR, "form.card button.primary").click()
    story.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "p.flash"))
    story.sign_out()
    story.open("/console/public/disclosure")
    digest = story.text("code.digest")
    assert len(digest) == 64 and story.driver.find_elements(By.CSS_SELECTOR, "a[href='/console/signin']")
    story.shot("23-public-disclosure")
    story.open("/console/public/products")
    assert story.driver.find_elements(By.TAG_NAME, "h1")
    story.shot("24-public-products")
