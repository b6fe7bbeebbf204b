"""report.md and a single self-contained report.html (plots embedded as data URIs)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from ..data import atomic_write_text


@dataclass
class Report:
    title: str
    intro: str = ""
    reading: list[str] = field(default_factory=list)  # plain-language sentences
    tables: list[tuple[str, list[str], list[list[object]]]] = field(default_factory=list)
    images: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, caption: str, header: list[str], rows: list[list[object]]) -> None:
        self.tables.append((caption, header, rows))

    def image(self, caption: str, path: Path) -> None:
        self.images.append((caption, Path(path)))

    def markdown(self, out_dir: Path) -> str:
        lines = [f"# {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        if self.reading:
            lines += ["## Reading", "", " ".join(self.reading), ""]
        for caption, header, rows in self.tables:
            lines += [f"## {caption}", "", markdown_table(header, rows), ""]
        for caption, path in self.images:
            rel = path.relative_to(out_dir) if path.is_relative_to(out_dir) else path
            lines += [f"![{caption}]({rel})", ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def html(self) -> str:
        esc = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{esc(self.title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:right}th{background:#f3f3f3}img{max-width:100%}.reading{background:#f6f8fa;"
            "padding:.8em 1em;border-left:4px solid #4a7}</style></head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        if self.intro:
            parts.append(f"<p>{esc(self.intro)}</p>")
        if self.reading:
            parts.append(f"<p class='reading'>{esc(' '.join(self.reading))}</p>")
        for caption, header, rows in self.tables:
            parts.append(
                f"<h2>{esc(caption)}</h2><table><tr>"
                + "".join(f"<th>{esc(h)}</th>" for h in header)
                + "</tr>"
            )
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        for caption, path in self.images:
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(
                f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        if self.notes:
            parts.append(
                "<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>"
            )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        out_dir = Path(out_dir)
        md, page = out_dir / "report.md", out_dir / "report.html"
        atomic_write_text(md, self.markdown(out_dir))
        atomic_write_text(page, self.html())
        return md, page


def fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
