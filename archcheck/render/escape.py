"""Text from a spec (layer and block names, values, file names) made safe for each output, in one place.

A spec is untrusted input that archcheck prints: on a terminal an escape sequence would run (an OSC
sequence can retitle the window or write a hyperlink, even when piped into a log viewer); in a pull
request's markdown a name would render as an image, a link or an @mention; in a spreadsheet a cell
starting with ``=`` is a formula. Each renderer passes such text through the function of its format.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, zero-width and bidirectional formatting characters ("Trojan Source")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _visible(m: re.Match) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: str) -> str:
    """Control and invisible formatting characters shown as ``\\x1b``, ``\\u202e``: seen, never obeyed."""
    return _CONTROL.sub(_visible, str(text))


def terminal_lines(text: str) -> str:
    """As `terminal`, keeping the line breaks of text made of several lines."""
    return "\n".join(map(terminal, str(text).split("\n")))


def rich(text: str) -> str:
    """For rich: as for the terminal, with rich's own ``[style]`` markup escaped."""
    from rich.markup import escape

    return escape(terminal(text))


# what can make markdown do something: links and images ([...]), code (`), HTML and entities (< > &),
# @mentions and #references, table cells (|), escapes (\), bare URLs (://, www.). Emphasis is cosmetic.
_MARKDOWN_SPECIAL = re.compile(r"[\\`\[\]|@#]|(?<=www)\.|:(?=//)", re.I)
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def markdown(text: str) -> str:
    """Literal text in GitHub markdown (a table cell): nothing in it becomes a link, an image, HTML, a
    mention, a reference or a new cell."""
    def line(text: str) -> str:
        text = re.sub("[&<>]", lambda m: _ENTITIES[m.group(0)], terminal(text))
        return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), text)

    return "<br>".join(map(line, str(text).replace("\r", "").split("\n")))


def markdown_code(text: str) -> str:
    """A code span (nothing inside renders: no link, image or mention) that no backtick in ``text`` can
    close; ``|`` escaped for tables."""
    text = terminal(text).replace("\n", " ").replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def csv_cell(text: str) -> str:
    """A CSV text cell a spreadsheet shows as text: one starting with = + - @ or a tab/CR is a formula
    there (OWASP's CSV injection), so it gets a leading apostrophe."""
    text = terminal(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def html(text: str) -> str:
    """Text and attribute values in an HTML page: markup characters as entities, controls shown as for the terminal."""
    import html as _html

    return _html.escape(terminal(text), quote=True)
