"""What an HTML page would ask a server for, read from its text: shared by the report's tests."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class Links(HTMLParser):
    """Every src, href and srcset value of the page's tags."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for key, value in attrs if key in ("src", "href", "srcset", "xlink:href") and value]


def remote(html: str) -> list[str]:
    """What would make a request beyond the page: tag URLs that are not fragments or data URIs, CSS imports and
    url()s that leave it."""
    parser = Links()
    parser.feed(html)
    tags = [u for u in parser.urls if not u.startswith(("#", "data:"))]
    css = re.findall(r"@import|url\(\s*['\"]?(?:https?:)?//", "".join(re.findall(r"<style>(.*?)</style>", html, re.S)))
    return tags + css
