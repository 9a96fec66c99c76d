"""A scan pod's log as the kubelet serves it: the bytes the container wrote, cut to limitBytes
exactly, whatever is not UTF-8 in them."""

from __future__ import annotations

from aksim.fleetfile import RULE_KINDS, USER_RULE_KINDS
from aksim.iptables.user_rules import ODD_COMMENT
from aksim.kube.pods import _trim_log


def test_the_log_keeps_a_byte_that_is_no_utf8_and_limit_bytes_cuts_bytes_exactly() -> None:
    text = f'-A INPUT -m comment --comment "{ODD_COMMENT}" -j DROP\n'

    whole = _trim_log(text, {}, 0.0)
    cut = _trim_log(text, {"limitBytes": "44"}, 0.0)

    assert b'"held by ops \xff\x01 ticket 4711"' in whole
    assert cut == whole[:44]
    assert cut.endswith(b"\xff")  # cut inside what is no text: still exactly 44 bytes


def test_the_edge_kinds_are_never_drawn_by_the_generator() -> None:
    assert "odd-comment" in RULE_KINDS
    assert "blocklist" in RULE_KINDS
    assert not {"odd-comment", "blocklist"} & set(USER_RULE_KINDS)
