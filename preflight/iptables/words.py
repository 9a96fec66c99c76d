"""The words of one rule line as a shell would split them, and its target and comments, with
iptables-save's quotes and escapes undone."""

from __future__ import annotations

import re

# One shell word: bare characters, "double-quoted" (backslash escapes), 'single-quoted', \x.
# A quote that never closes takes the rest of the line (group 2) and is reported.
_TOKEN = re.compile(r"""\s*(?:((?:[^\s"'\\]+|"(?:[^"\\]|\\.)*"|'[^']*'|\\.?)+)|(\S.*))""", re.S)
_UNQUOTE = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'|\\(.)""", re.S)
_VERBOSE_COUNTERS = re.compile(r" -c \d+ \d+(?= |$)")


def _unquote(word: str) -> str:
    if '"' not in word and "'" not in word and "\\" not in word:
        return word
    if word[0] == '"' and word.count('"') == 2 and word[-1] == '"' and "\\" not in word:
        return word[1:-1]

    def piece(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return re.sub(r"\\(.)", r"\1", m.group(1))
        if m.group(2) is not None:
            return m.group(2)
        return m.group(3)

    return _UNQUOTE.sub(piece, word)


def split_words(spec: str) -> tuple[list[str], bool]:
    """A rule's words, quotes kept, and whether every quote closed."""
    if '"' not in spec and "'" not in spec and "\\" not in spec:
        return spec.split(), True
    words: list[str] = []
    ok = True
    for word, rest in _TOKEN.findall(spec):
        if word:
            words.append(word)
        elif rest:
            words.append(rest)
            ok = False
    return words, ok


def without_verbose_counters(line: str) -> str:
    """The line without the "-c PACKETS BYTES" of `iptables -S -v`, which iptables prints just
    before the target (at the end of a rule without one, or of a "-P" line)."""
    for m in _VERBOSE_COUNTERS.finditer(line):
        if split_words(line[: m.start()])[1]:  # not inside a quoted string
            return line[: m.start()] + line[m.end() :]
    return line


def _plain_scan(words: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """The target and comments of a rule made of bare words (no quotes)."""
    target: str | None = None
    for jump in ("-j", "-g", "--jump", "--goto"):
        if jump in words:
            at = words.index(jump)
            if at + 1 < len(words):
                target = words[at + 1]
            break
    if "--comment" not in words:
        return target, ()
    return target, tuple(words[i + 1] for i in range(len(words) - 1) if words[i] == "--comment")


def _quoted_scan(rest: str) -> tuple[str | None, tuple[str, ...]] | None:
    """The common case: double quotes only, each quoted string a whole word (as iptables-save
    prints comments). None when the line is not that simple."""
    parts = rest.split('"')
    last = len(parts) - 1
    if last % 2:
        return None  # unbalanced
    comments: list[str] = []
    for i in range(1, last, 2):
        before, after = parts[i - 1], parts[i + 1]
        if not (before[-1:].isspace() or (i == 1 and not before)):
            return None
        if not (after[:1].isspace() or (i + 1 == last and not after)):
            return None
        if "--comment" in before:
            word = before.rstrip()
            if word == "--comment" or (word[-10:-9].isspace() and word.endswith("--comment")):
                comments.append(parts[i])
    # Quoted strings become one placeholder word each: they can hold no jump or option.
    words = " \x00 ".join(parts[0::2]).split()
    target: str | None = None
    for jump in ("-j", "-g", "--jump", "--goto"):
        if jump in words:
            at = words.index(jump)
            if at + 1 < len(words):
                target = words[at + 1]
            break
    if rest.count("--comment") > len(comments):  # some comment is a bare word
        _, bare = _plain_scan(words)
        comments.extend(c for c in bare if c != "\x00")
    return target, tuple(comments)


def target_and_comments(rest: str) -> tuple[str | None, tuple[str, ...], bool]:
    """The target and comments of a rule, from the words after its chain name, and whether
    every quote in them closed."""
    if '"' not in rest and "'" not in rest and "\\" not in rest:
        return (*_plain_scan(rest.split()), True)
    if "'" not in rest and "\\" not in rest:
        simple = _quoted_scan(rest)
        if simple is not None:
            return (*simple, True)
    words, ok = split_words(rest)
    target: str | None = None
    comments: list[str] = []
    for i in range(len(words) - 1):
        word = words[i]
        if word == "--comment":
            comments.append(_unquote(words[i + 1]))
        elif target is None and word in ("-j", "-g", "--jump", "--goto"):
            target = _unquote(words[i + 1])
    return target, tuple(comments), ok
