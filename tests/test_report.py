"""The report builder's page asks for nothing outside itself: a Content-Security-Policy that
allows data-URI images, inline styles and the page's own scripts by hash; interactive blocks
include their script once and say in report.md where they are. (The pages in a real
browser: tests/browser.)"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from posemb.report import Report, content_policy


def policy(page: str) -> str:
    found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert found, "the page has a Content-Security-Policy"
    return found[1]


def test_a_page_without_scripts_allows_none():
    page = Report("t", intro="x").html()
    csp = policy(page)
    assert "default-src 'none'" in csp and "img-src data:" in csp
    assert "script-src 'none'" in csp and "<script" not in page


def test_interactive_blocks_share_their_script_allowed_by_its_hash(tmp_path):
    script = "document.body.dataset.ok = 'yes';"
    report = Report("t")
    report.text("First", "a paragraph")
    report.interactive("Two", "<p id='b'>b</p>", script, markdown="B is in report.html.")
    report.interactive("One", "<p id='a'>a</p>", script, at=0)
    assert [b[1] for b in report.blocks] == ["One", "First", "Two"]
    md, page = report.write(tmp_path)
    text = page.read_text()
    assert text.count(f"<script>{script}</script>") == 1
    assert text.index("<script>") > text.index("id='b'")  # after the blocks it brings to life
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy(text)
    assert policy(text) == content_policy([script])
    assert "B is in report.html." in md.read_text() and "<p id=" not in md.read_text()


def test_a_script_that_would_end_its_own_element_is_refused():
    with pytest.raises(ValueError, match="</script"):
        Report("t").interactive("x", "", "var s = '</SCRIPT>';")
