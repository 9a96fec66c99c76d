"""Reading the preflight pages as a person does (a page's sections, an origin's block of rules,
what the Copy buttons copy, the messages shown) and the findings the page tests put on nodes."""

from __future__ import annotations

import html
import re

from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

CALICO_HINT = "Calico: remove it, then reimage the node so its cali- chains are gone."
DOCKER_NAT = "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"
DOCKER_FILTER = '-A DOCKER-USER -m comment --comment "docker: user" -j RETURN'


def docker_on(node: str) -> list[dict]:
    return [
        {"node": node, "table": "filter", "chain": "DOCKER-USER", "rule": DOCKER_FILTER},
        {"node": node, "table": "nat", "chain": "POSTROUTING", "rule": DOCKER_NAT},
    ]


def calico_on(node: str, count: int = 1) -> list[dict]:
    return [
        {
            "node": node,
            "chain": "cali-INPUT",
            "rule": f"-A cali-INPUT -m mark --mark 0x{n:x}/0xffff -j ACCEPT",
            "origin": "Calico",
            "hint": CALICO_HINT,
        }
        for n in range(count)
    ]


def get(client, name: str, **kwargs) -> str:
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 200
    return response.content.decode()


def cluster_page(client, cluster) -> str:
    return get(client, "fleet:cluster", pk=cluster.pk)


def section(page: str, name: str) -> str:
    start = page.index(f'data-section="{name}"')
    return page[start : page.index("</section>", start)]


def origin_block(page: str, origin: str) -> str:
    start = page.index(f'<div class="origin" data-origin="{origin}">')
    end = page.find('<div class="origin"', start + 1)
    return page[start : end if end != -1 else page.index("<caption>Recent scans</caption>")]


def copyable(block: str) -> list[str]:
    """The text each Copy button copies in this part of the page, as the browser reads it."""
    return [
        html.unescape(text)
        for text in re.findall(r"<pre [^>]*><code>(.*?)</code></pre>", block, re.S)
    ]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def queries_of(client, url: str, params: dict | None = None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]
