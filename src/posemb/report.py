"""report.md and a single self-contained report.html (plots embedded as data URIs).

The one report builder: ``posemb eval``, ``sweep``, ``demo`` and ``analyze`` all write
theirs with :class:`Report`. A report is a title, an introduction, a plain-language
reading, then blocks in order: tables (wide ones scroll sideways in the page), label/value
pairs, images, text (paragraphs, or a preformatted block for terminal output), interactive
blocks (HTML and a script, for report.html only), and notes at the end.

report.html works offline and fetches nothing: images are data URIs, and the page's
Content-Security-Policy (:func:`content_policy`) allows images from data URIs, inline
styles and the page's own scripts by their hash, nothing else (no request, font, frame or
form leaves the file).
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_write_text
from .positional.checks import is_int

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    ".scroll{overflow-x:auto;margin:1em 0}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}"
    "th{background:#f3f3f3}img{max-width:100%}"
    ".reading{background:#f6f8fa;padding:.8em 1em;border-left:4px solid #4a7}"
    "pre{background:#f6f8fa;padding:.8em 1em;overflow-x:auto;white-space:pre-wrap}"
    "details{margin:1em 0}summary{cursor:pointer;font-weight:600}"
    ".pairs td,.pairs th{text-align:left;white-space:normal}"
)


@dataclass
class Report:
    title: str
    intro: str = ""
    reading: list[str] = field(default_factory=list)  # plain-language sentences
    blocks: list[tuple] = field(default_factory=list)  # (kind, caption, ...) in page order
    notes: list[str] = field(default_factory=list)

    def table(self, caption: str, header: list[str], rows: list[list[object]]) -> None:
        self.blocks.append(("table", caption, header, rows))

    def pairs(self, caption: str, rows: list[tuple[str, str]]) -> None:
        """A two-column table of labels and values (no header row)."""
        self.blocks.append(("pairs", caption, rows))

    def image(self, caption: str, path: Path) -> None:
        self.blocks.append(("image", caption, Path(path)))

    def text(self, caption: str, body: str, *, pre: bool = False, folded: bool = False) -> None:
        """Paragraphs (blank-line separated), or ``pre``: text shown as it is (terminal
        output, a generated sample). ``folded``: collapsed in the HTML page. An empty
        ``caption`` adds no heading: the text continues the block above."""
        self.blocks.append(("pre" if pre else "text", caption, body, folded))

    def interactive(
        self, caption: str, body: str, script: str, markdown: str = "", at: int | None = None
    ) -> None:
        """A block report.html brings to life with ``script``: ``body`` is HTML built by
        posemb, inserted as it is (escape any outside text in it), readable without the
        script; ``script`` is JavaScript run once at the end of the page (blocks sharing one
        script text include it once) and allowed by the page's Content-Security-Policy by its
        hash. report.md shows ``markdown`` in its place. ``at``: the block's index (default:
        after the others)."""
        if "</script" in script.lower():
            raise ValueError("an inline script cannot hold '</script'")
        block = ("interactive", caption, body, script, markdown)
        self.blocks.insert(len(self.blocks) if at is None else at, block)

    @property
    def scripts(self) -> list[str]:
        """The interactive blocks' scripts, each once, in page order."""
        return list(dict.fromkeys(b[3] for b in self.blocks if b[0] == "interactive"))

    @property
    def images(self) -> list[tuple[str, Path]]:
        return [(b[1], b[2]) for b in self.blocks if b[0] == "image"]

    def markdown(self, out_dir: Path) -> str:
        lines = [f"# {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        if self.reading:
            lines += ["## Reading", "", " ".join(self.reading), ""]
        for kind, caption, *rest in self.blocks:
            if caption:  # an empty caption continues the section above
                lines += [f"## {caption}", ""]
            if kind == "table":
                lines += [markdown_table(*rest), ""]
            elif kind == "pairs":
                lines += ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rest[0]), ""]
            elif kind == "image":
                path = rest[0]
                rel = path.relative_to(out_dir) if path.is_relative_to(out_dir) else path
                lines += [f"![{caption}]({rel})", ""]
            elif kind == "pre":
                lines += ["```", rest[0].rstrip("\n"), "```", ""]
            elif kind == "interactive":
                lines += [rest[2], ""] if rest[2] else []
            else:
                lines += [rest[0], ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def html(self) -> str:
        esc = html.escape
        scripts = self.scripts
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f'<meta http-equiv="Content-Security-Policy" content="{content_policy(scripts)}">',
            f"<title>{esc(self.title)}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        if self.intro:
            parts.append(f"<p>{esc(self.intro)}</p>")
        if self.reading:
            parts.append(f"<p class='reading'>{esc(' '.join(self.reading))}</p>")
        for kind, caption, *rest in self.blocks:
            parts.append(_html_block(kind, caption, rest))
        if self.notes:
            parts.append(
                "<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>"
            )
        parts += [f"<script>{script}</script>" for script in scripts]
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        out_dir = Path(out_dir)
        md, page = out_dir / "report.md", out_dir / "report.html"
        atomic_write_text(md, self.markdown(out_dir))
        atomic_write_text(page, self.html())
        return md, page


def _html_block(kind: str, caption: str, rest: list) -> str:
    esc = html.escape
    if kind == "table":
        header, rows = rest
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        return (
            f"<h2>{esc(caption)}</h2><div class='scroll'><table><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in header)
            + f"</tr>{body}</table></div>"
        )
    if kind == "pairs":
        body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rest[0])
        return f"<h2>{esc(caption)}</h2><table class='pairs'>{body}</table>"
    if kind == "image":
        data = base64.b64encode(rest[0].read_bytes()).decode()
        return (
            f"<h2>{esc(caption)}</h2><figure><img alt='{esc(caption)}' "
            f"src='data:image/png;base64,{data}'></figure>"
        )
    if kind == "interactive":
        return (f"<h2>{esc(caption)}</h2>" if caption else "") + rest[0]
    body, folded = rest
    if kind == "pre":
        inner = f"<pre>{esc(body.rstrip())}</pre>"
    else:
        inner = "".join(f"<p>{esc(p)}</p>" for p in body.split("\n\n") if p.strip())
    if folded:
        return f"<details><summary>{esc(caption)}</summary>{inner}</details>"
    return (f"<h2>{esc(caption)}</h2>" if caption else "") + inner


_NONE = "'none'"  # a CSP source list that allows nothing


def content_policy(scripts: list[str]) -> str:
    """The Content-Security-Policy of report.html: nothing from the network; images from data
    URIs, inline styles, and only ``scripts`` (inline, each allowed by its SHA-256)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src {hashes or _NONE}; base-uri 'none'; form-action 'none'"
    )


def fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    if is_int(v):
        return f"{v:,}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
