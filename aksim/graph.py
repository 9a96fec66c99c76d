"""aksim's Azure Resource Graph: the small subset of KQL that AKS clients send, run over
ARG-style rows of managed clusters, and the HTTP 400 bodies Resource Graph returns otherwise.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MANAGED_CLUSTERS = "microsoft.containerservice/managedclusters"

INVALID_QUERY_DETAIL = {
    "code": "InvalidQuery",
    "message": "Query is invalid. Please refer to the documentation for the Azure Resource "
    "Graph service and fix the error before retrying.",
}

STRING = "string"
DYNAMIC = "dynamic"

# The columns of Resource Graph's `resources` table (what `resources | getschema` lists).
# Kusto resolves names at parse time, so a misspelt column fails even over zero rows; only
# dynamic columns can be navigated with `.key` or `['key']`.
RESOURCES_SCHEMA: dict[str, str] = {
    "id": STRING,
    "name": STRING,
    "type": STRING,
    "tenantId": STRING,
    "kind": STRING,
    "location": STRING,
    "resourceGroup": STRING,
    "subscriptionId": STRING,
    "managedBy": STRING,
    "sku": DYNAMIC,
    "plan": DYNAMIC,
    "properties": DYNAMIC,
    "tags": DYNAMIC,
    "identity": DYNAMIC,
    "zones": DYNAMIC,
    "extendedLocation": DYNAMIC,
}

# Tabular operators that Resource Graph accepts but aksim does not evaluate. Knowing them
# lets a query that starts with one (ARG's implicit `resources` table) fail on the operator
# rather than on a table name.
UNSUPPORTED_OPERATORS = frozenset(
    {
        "count",
        "distinct",
        "extend",
        "join",
        "mv-expand",
        "mvexpand",
        "parse",
        "project-away",
        "project-keep",
        "project-rename",
        "project-reorder",
        "sample",
        "search",
        "summarize",
        "top",
        "union",
    }
)
SUPPORTED_OPERATORS = frozenset({"where", "filter", "project", "order", "sort", "take", "limit"})

# Scalar functions Kusto knows: aksim evaluates none of them, but a known one is a parser
# failure at its name while any other name is ARG's UnknownFunction.
KNOWN_FUNCTIONS = frozenset(
    {
        "array_length",
        "bag_keys",
        "case",
        "coalesce",
        "count",
        "countof",
        "extract",
        "iff",
        "iif",
        "indexof",
        "isempty",
        "isnotempty",
        "isnotnull",
        "isnull",
        "parse_json",
        "split",
        "strcat",
        "strlen",
        "substring",
        "tobool",
        "todynamic",
        "toint",
        "tolong",
        "tolower",
        "tostring",
        "toupper",
        "trim",
    }
)

EQUALITY_OPERATORS = frozenset({"==", "=~", "!=", "!~"})
MEMBERSHIP_OPERATORS = frozenset({"in", "in~", "!in", "!in~"})

Scalar = str | bool | int


class QueryError(Exception):
    """Carries the ARM error body Resource Graph returns for a bad query (HTTP 400)."""

    status = 400

    def __init__(self, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details if details is not None else [aksim_detail(message)]
        # Fixed when raised, so every rendering of one error names the same support call.
        self.timestamp = _arm_timestamp(datetime.now(UTC))
        self.correlation_id = str(uuid.uuid4())

    def body(self) -> dict:
        support = (
            "Please provide below info when asking for support: "
            f"timestamp = {self.timestamp}, correlationId = {self.correlation_id}."
        )
        details = [dict(INVALID_QUERY_DETAIL), *(dict(d) for d in self.details)]
        return {"error": {"code": "BadRequest", "message": support, "details": details}}


def aksim_detail(message: str) -> dict:
    """A detail for what only aksim refuses: Resource Graph itself has no such error."""
    return {"code": "UnsupportedQuery", "message": message}


def _arm_timestamp(moment: datetime) -> str:
    # ARM prints .NET's seven fractional digits; Python has six.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


# --- Tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "name" | "string" | "number" | "op" | "eof"
    text: str  # the source text, which ARG echoes as a detail's `token`
    value: Scalar | None
    line: int  # 1-based
    column: int  # 0-based, as ARG's characterPositionInLine (ANTLR's charPositionInLine)
    offset: int

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+")
# Longest first, so `==` never lexes as two `=`. `in~`/`!in` are single operators in KQL.
_OPERATORS = (
    "!in~",
    "!in",
    "in~",
    "==",
    "=~",
    "!=",
    "!~",
    "<=",
    ">=",
    "|",
    ",",
    "(",
    ")",
    "[",
    "]",
    ".",
    "=",
    "<",
    ">",
    "-",
    "+",
    "*",
    "/",
    "%",
    ";",
    "~",
    "!",
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def tokens(self) -> list[Token]:
        tokens: list[Token] = []
        while True:
            self._skip_blanks()
            if self.pos >= len(self.text):
                tokens.append(self._token("eof", "<EOF>", None, self.pos))
                return tokens
            tokens.append(self._next())

    def _skip_blanks(self) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\n":
                self.pos += 1
                self.line += 1
                self.line_start = self.pos
            elif char.isspace():
                self.pos += 1
            elif self.text.startswith("//", self.pos):
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def _next(self) -> Token:
        start = self.pos
        char = self.text[start]
        if char in "'\"" or (char == "@" and self.text[start + 1 : start + 2] in ("'", '"')):
            return self._string()
        for op in _OPERATORS:
            if self.text.startswith(op, start) and not _continues_name(self.text, start, op):
                self.pos += len(op)
                return self._token("op", op, None, start)
        if match := _NAME.match(self.text, start):
            self.pos = match.end()
            return self._token("name", match.group(), None, start)
        if match := _NUMBER.match(self.text, start):
            self.pos = match.end()
            return self._token("number", match.group(), int(match.group()), start)
        raise parser_failure(self._token("op", char, None, start), "unexpected character")

    def _string(self) -> Token:
        start = self.pos
        verbatim = self.text[start] == "@"
        quote = self.text[start + 1] if verbatim else self.text[start]
        pos = start + 2 if verbatim else start + 1
        chars: list[str] = []
        while pos < len(self.text) and self.text[pos] != "\n":
            char = self.text[pos]
            if char == quote:
                # A verbatim string writes its quote character twice.
                if verbatim and self.text[pos + 1 : pos + 2] == quote:
                    chars.append(quote)
                    pos += 2
                    continue
                self.pos = pos + 1
                return self._token("string", self.text[start : self.pos], "".join(chars), start)
            if char == "\\" and not verbatim and pos + 1 < len(self.text):
                chars.append(_ESCAPES.get(self.text[pos + 1], self.text[pos + 1]))
                pos += 2
                continue
            chars.append(char)
            pos += 1
        # KQL strings end on their line: what follows the quote is the bad token.
        unterminated = self.text[start:pos]
        raise parser_failure(
            self._token("string", unterminated, None, start), "unterminated string"
        )

    def _token(self, kind: str, text: str, value: Scalar | None, offset: int) -> Token:
        return Token(kind, text, value, self.line, offset - self.line_start, offset)


def _continues_name(text: str, start: int, op: str) -> bool:
    """True when a word-like operator (`in~`, `!in`) is really the start of a longer name."""
    if not op[-1].isalpha():
        return False
    following = text[start + len(op) : start + len(op) + 1]
    return following.isalnum() or following == "_"


def tokenize(text: str) -> list[Token]:
    return _Lexer(text).tokens()


# --- Errors -----------------------------------------------------------------------------


def parser_failure(token: Token, reason: str, expected: str | None = None) -> QueryError:
    detail: dict[str, Any] = {
        "code": "ParserFailure",
        "message": "ParserFailure",
        "line": token.line,
        "characterPositionInLine": token.column,
        "token": token.text,
    }
    if expected is not None:
        detail["expectedToken"] = expected
    where = f"line {token.line}, position {token.column}"
    return QueryError(f"{reason}: {token.text!r} at {where}", [detail])


def semantic_error(token: Token, message: str) -> QueryError:
    """A query that parses but that Kusto refuses: unknown names, mismatched types."""
    detail = {
        "code": "SemanticError",
        "message": message,
        "line": token.line,
        "characterPositionInLine": token.column,
        "token": token.text,
    }
    return QueryError(message, [detail])


def unknown_function(token: Token) -> QueryError:
    if token.text in KNOWN_FUNCTIONS:
        return parser_failure(token, "aksim evaluates no functions")
    message = f"Unknown function: '{token.text}'."
    return QueryError(message, [{"code": "UnknownFunction", "message": message}])


def disallowed_table(token: Token) -> QueryError:
    message = f"Table {token.text} is invalid, unsupported or disallowed."
    return QueryError(message, [{"code": "DisallowedLogicalTableName", "message": message}])


def not_managed_clusters() -> QueryError:
    return QueryError(
        f"aksim serves only {MANAGED_CLUSTERS}: filter on it with "
        f"| where type =~ '{MANAGED_CLUSTERS}'"
    )


# --- The parsed query -------------------------------------------------------------------

Row = dict[str, Any]


@dataclass(frozen=True)
class Path:
    column: str
    keys: tuple[str, ...] = ()

    @property
    def default_name(self) -> str:
        # Kusto names an unaliased `properties.a.b` column `properties_a_b`.
        return "_".join((self.column, *self.keys))

    def resolve(self, row: Row) -> Any:
        value = row.get(self.column)
        for key in self.keys:
            # Dynamic navigation never fails in Kusto: a missing step is null.
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass(frozen=True)
class Comparison:
    path: Path
    operator: str  # one of EQUALITY_OPERATORS or MEMBERSHIP_OPERATORS
    values: tuple[Scalar, ...]

    def matches(self, row: Row) -> bool:
        value = self.path.resolve(row)
        ignore_case = self.operator.endswith("~")
        hit = any(_equal(value, literal, ignore_case) for literal in self.values)
        return hit != self.operator.startswith("!")


def _equal(value: Any, literal: Scalar, ignore_case: bool) -> bool:
    # bool before int: Python's True == 1, Kusto's true is not 1.
    if isinstance(literal, bool):
        return isinstance(value, bool) and value == literal
    if isinstance(literal, int):
        return isinstance(value, int) and not isinstance(value, bool) and value == literal
    if not isinstance(value, str):
        return False
    return value.lower() == literal.lower() if ignore_case else value == literal


@dataclass(frozen=True)
class Where:
    comparisons: tuple[Comparison, ...]  # joined by `and`

    def apply(self, rows: list[Row]) -> list[Row]:
        return [row for row in rows if all(c.matches(row) for c in self.comparisons)]


@dataclass(frozen=True)
class Column:
    name: str
    path: Path


@dataclass(frozen=True)
class Project:
    columns: tuple[Column, ...]

    def apply(self, rows: list[Row]) -> list[Row]:
        return [{c.name: c.path.resolve(row) for c in self.columns} for row in rows]


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool
    nulls_first: bool

    def sort(self, rows: list[Row]) -> list[Row]:
        # Null rank chosen so that, after `reverse`, nulls land where they were asked to.
        null_rank = 0 if self.nulls_first != self.descending else 2

        def key(row: Row) -> tuple[int, Any]:
            value = row.get(self.column)
            return (null_rank, "") if value is None else (1, value)

        return sorted(rows, key=key, reverse=self.descending)


@dataclass(frozen=True)
class Order:
    keys: tuple[SortKey, ...]

    def apply(self, rows: list[Row]) -> list[Row]:
        # Stable sorts from the last key to the first give the multi-key order.
        for key in reversed(self.keys):
            rows = key.sort(rows)
        return rows


@dataclass(frozen=True)
class Take:
    count: int

    def apply(self, rows: list[Row]) -> list[Row]:
        return rows[: self.count]


Stage = Where | Project | Order | Take


@dataclass(frozen=True)
class Query:
    table: str
    stages: tuple[Stage, ...]

    @property
    def limited(self) -> bool:
        """Whether `take`/`limit` cut the result: real ARG then returns no `$skipToken`."""
        return any(isinstance(stage, Take) for stage in self.stages)


# --- Parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        # The columns in scope and their kinds: the table's, then what `project` leaves.
        self.columns = dict(RESOURCES_SCHEMA)
        # A `project type = name` would make a later filter on `type` mean something else.
        self.type_is_original = True
        self.serves_managed_clusters = False
        # Kusto reports syntax before meaning: the first semantic error waits for the end.
        self.semantic_error: QueryError | None = None

    def query(self) -> Query:
        stages: list[Stage] = []
        if self._starts_with_operator():
            # Resource Graph's default table when a query names none.
            stages.append(self._stage())
        else:
            self._table()
        while self._peek().kind != "eof":
            self._expect("|")
            stages.append(self._stage())
        if self.semantic_error is not None:
            raise self.semantic_error
        if not self.serves_managed_clusters:
            raise not_managed_clusters()
        return Query("resources", tuple(stages))

    def _starts_with_operator(self) -> bool:
        word = self._operator_word(self._peek())[0]
        return word in SUPPORTED_OPERATORS or word in UNSUPPORTED_OPERATORS

    def _table(self) -> None:
        token = self._advance()
        if token.kind != "name":
            raise parser_failure(token, "expected a table", expected="resources")
        # ARG matches table names case-insensitively (`Resources` and `resources`).
        if token.text.lower() != "resources":
            raise disallowed_table(token)

    def _stage(self) -> Stage:
        token = self._peek()
        word, length = self._operator_word(token)
        self.index += length
        if word in ("where", "filter"):
            return self._where()
        if word == "project":
            return self._project()
        if word in ("order", "sort"):
            return self._order()
        if word in ("take", "limit"):
            return self._take()
        failed = Token(token.kind, word, None, token.line, token.column, token.offset)
        reason = "aksim understands only where, project, order by, sort by, take and limit"
        raise parser_failure(failed, reason)

    def _operator_word(self, token: Token) -> tuple[str, int]:
        """The operator at `token`, joining hyphenated ones (`project-away`); and its length."""
        if token.kind != "name":
            return token.text, 1
        words, index = [token.text], self.index + 1
        end = token.end
        while self._adjacent(index, end, "-") and self._adjacent(index + 1, end + 1, None):
            words.append(self.tokens[index + 1].text)
            end = self.tokens[index + 1].end
            index += 2
        return "-".join(words), index - self.index

    def _adjacent(self, index: int, offset: int, text: str | None) -> bool:
        token = self.tokens[index]
        kind_ok = token.kind == "name" if text is None else token.text == text
        return kind_ok and token.offset == offset

    # where

    def _where(self) -> Where:
        comparisons = [self._comparison()]
        while self._accept("and"):
            comparisons.append(self._comparison())
        return Where(tuple(comparisons))

    def _comparison(self) -> Comparison:
        path, kind = self._path("where")
        op_token = self._advance()
        operator = op_token.text
        if operator in EQUALITY_OPERATORS:
            values: tuple[Scalar, ...] = (self._literal(),)
        elif operator in MEMBERSHIP_OPERATORS:
            values = self._literal_list()
        else:
            reason = "aksim compares only with ==, =~, !=, !~, in, in~, !in, !in~"
            raise parser_failure(op_token, reason, expected="==")
        self._check_comparable(op_token, kind, values)
        comparison = Comparison(path, operator, values)
        if self.type_is_original and _selects_managed_clusters(comparison):
            self.serves_managed_clusters = True
        return comparison

    def _check_comparable(self, op_token: Token, kind: str, values: tuple[Scalar, ...]) -> None:
        for value in values:
            if isinstance(value, str):
                continue
            if op_token.text.endswith("~"):
                message = f"'{op_token.text}' compares strings only, not {_kusto_type(value)}"
                self._defer(semantic_error(op_token, message))
            if kind == STRING:
                message = (
                    f"Cannot compare values of types string and {_kusto_type(value)}. "
                    "Try adding explicit casts"
                )
                self._defer(semantic_error(op_token, message))

    def _literal(self) -> Scalar:
        token = self._advance()
        if token.kind in ("string", "number") and token.value is not None:
            return token.value
        if token.kind == "name" and token.text in ("true", "false"):
            return token.text == "true"
        raise parser_failure(token, "expected a literal", expected="<literal>")

    def _literal_list(self) -> tuple[Scalar, ...]:
        self._expect("(")
        values = [self._literal()]
        while self._accept(","):
            values.append(self._literal())
        self._expect(")")
        return tuple(values)

    # project

    def _project(self) -> Project:
        columns: list[Column] = []
        kinds: dict[str, str] = {}
        while True:
            name_token = self._peek()
            column, kind = self._projected_column()
            if column.name in kinds:
                message = f"'project' operator: duplicate column name '{column.name}'"
                self._defer(semantic_error(name_token, message))
            columns.append(column)
            kinds[column.name] = kind
            if not self._accept(","):
                break
        self.columns = kinds
        renamed_type = next((c for c in columns if c.name == "type"), None)
        self.type_is_original = renamed_type is not None and renamed_type.path == Path("type")
        return Project(tuple(columns))

    def _projected_column(self) -> tuple[Column, str]:
        if self._peek().kind == "name" and self._peek(1).text == "=":
            alias = self._advance().text
            self._advance()
            path, kind = self._path("project")
            return Column(alias, path), kind
        path, kind = self._path("project")
        return Column(path.default_name, path), kind

    # order by / sort by

    def _order(self) -> Order:
        self._expect("by")
        keys = [self._sort_key()]
        while self._accept(","):
            keys.append(self._sort_key())
        return Order(tuple(keys))

    def _sort_key(self) -> SortKey:
        token = self._peek()
        path, kind = self._path("order")
        if kind == DYNAMIC:
            self._defer(semantic_error(token, "order operator: key can't be of dynamic type"))
        # Kusto's default direction is descending, and nulls go last when descending.
        descending = not self._accept("asc")
        if descending:
            self._accept("desc")
        nulls_first = not descending
        if self._accept("nulls"):
            nulls_first = self._accept("first")
            if not nulls_first:
                self._expect("last")
        return SortKey(path.column, descending, nulls_first)

    # take / limit

    def _take(self) -> Take:
        token = self._advance()
        if token.kind != "number" or not isinstance(token.value, int):
            raise parser_failure(token, "take and limit need a row count", expected="<integer>")
        return Take(token.value)

    # shared pieces

    def _path(self, operator: str) -> tuple[Path, str]:
        """A column, or a path into a dynamic column; returns it with its kind."""
        token = self._advance()
        if token.kind != "name":
            raise parser_failure(token, "expected a column", expected="<identifier>")
        if self._peek().text == "(":
            raise unknown_function(token)
        keys = self._path_keys()
        kind = self.columns.get(token.text)
        if kind is None:
            name = token.text
            message = f"'{operator}' operator: Failed to resolve scalar expression named '{name}'"
            self._defer(semantic_error(token, message))
        elif keys and kind != DYNAMIC:
            message = f"'{operator}' operator: '{token.text}' is a {kind}, which has no properties"
            self._defer(semantic_error(token, message))
        # An unresolved column takes any use, so parsing goes on to find syntax errors.
        return Path(token.text, tuple(keys)), DYNAMIC if keys or kind is None else kind

    def _path_keys(self) -> list[str]:
        keys: list[str] = []
        while True:
            if self._accept("."):
                token = self._advance()
                if token.kind != "name":
                    raise parser_failure(token, "expected a property name", expected="<identifier>")
                keys.append(token.text)
            elif self._accept("["):
                token = self._advance()
                if token.kind != "string" or not isinstance(token.value, str):
                    raise parser_failure(
                        token, "expected a quoted property name", expected="<string>"
                    )
                keys.append(token.value)
                self._expect("]")
            else:
                return keys

    def _defer(self, error: QueryError) -> None:
        if self.semantic_error is None:
            self.semantic_error = error

    def _peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def _advance(self) -> Token:
        token = self._peek()
        if token.kind != "eof":
            self.index += 1
        return token

    def _accept(self, text: str) -> bool:
        # KQL keywords and operators are case-sensitive: `Where` is not `where`.
        token = self._peek()
        if token.kind in ("name", "op") and token.text == text:
            self.index += 1
            return True
        return False

    def _expect(self, text: str) -> Token:
        token = self._peek()
        if not self._accept(text):
            raise parser_failure(token, f"expected {text!r}", expected=text)
        return token


def _selects_managed_clusters(comparison: Comparison) -> bool:
    """Whether a where-clause keeps nothing but managed clusters."""
    return (
        comparison.path == Path("type")
        and comparison.operator in ("==", "=~", "in", "in~")
        and all(isinstance(v, str) and v.lower() == MANAGED_CLUSTERS for v in comparison.values)
    )


def _kusto_type(value: Scalar) -> str:
    return "bool" if isinstance(value, bool) else "long" if isinstance(value, int) else "string"


# --- Entry points -----------------------------------------------------------------------


def parse(text: str) -> Query:
    """Parse a Resource Graph query, or raise QueryError with the body ARG would return."""
    return _Parser(tokenize(text)).query()


def run(query: Query, rows: Iterable[dict], subscriptions: Collection[str]) -> list[dict]:
    """Evaluate `query` over the rows of the subscriptions in the request's scope.

    The result shares the caller's row objects (copying 10,000 rows per page would dominate
    a query's cost): serialise it, do not change it.
    """
    scope = {s.lower() for s in subscriptions}
    result: list[Row] = [r for r in rows if str(r.get("subscriptionId", "")).lower() in scope]
    for stage in query.stages:
        result = stage.apply(result)
    return result
