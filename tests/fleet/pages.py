"""Reading the fleet's pages in tests."""

from __future__ import annotations

import re


def listed(response) -> list[str]:
    """The cluster names in the list, top to bottom."""
    assert response.status_code == 200
    return re.findall(r'<a href="/clusters/\d+/">([^<]+)</a>', response.content.decode())
