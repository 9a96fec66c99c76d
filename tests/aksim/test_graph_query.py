"""aksim's Resource Graph: the KQL subset AKS clients send, and ARG's errors for the rest."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aksim.graph import QueryError, parse, run

SUB_A = "00000000-0000-0000-0000-00000000000a"
SUB_B = "00000000-0000-0000-0000-00000000000b"
SUB_OUT = "00000000-0000-0000-0000-0000000000ff"
TYPE = "microsoft.containerservice/managedclusters"
AKS = f"resources | where type =~ '{TYPE}'"


def cluster(
    sub: str, rg: str, name: str, location: str = "westeurope", **properties: Any
) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
        f"Microsoft.ContainerService/managedClusters/{name}",
        "name": name,
        "type": TYPE,
        "tenantId": "11111111-1111-1111-1111-111111111111",
        "kind": "",
        "location": location,
        "resourceGroup": rg,
        "subscriptionId": sub,
        "managedBy": "",
        "sku": {"name": "Base", "tier": "Free"},
        "plan": None,
        "properties": {"kubernetesVersion": "1.30.4", **properties},
        "tags": {"env": "prod"},
        "identity": {"type": "SystemAssigned"},
        "zones": None,
        "extendedLocation": None,
    }


ROWS = [
    cluster(SUB_A, "rg-one", "bravo", networkProfile={"networkPlugin": "azure"}),
    cluster(
        SUB_A, "rg-two", "alpha", location="eastus", networkProfile={"networkPlugin": "kubenet"}
    ),
    cluster(SUB_B, "rg-one", "charlie", location="EastUS"),
    cluster(SUB_OUT, "rg-one", "delta"),
]


def query(text: str, subscriptions: tuple[str, ...] = (SUB_A, SUB_B)) -> list[dict[str, Any]]:
    return run(parse(text), ROWS, subscriptions)


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


def raised(text: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse(text)
    return caught.value


def failure(text: str) -> dict[str, Any]:
    """The ARM body of the QueryError that `text` must raise, checked for ARG's shape."""
    error = raised(text).body()["error"]
    assert error["code"] == "BadRequest"
    assert re.fullmatch(
        r"Please provide below info when asking for support: timestamp = "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z, correlationId = [0-9a-f-]{36}\.",
        error["message"],
    )
    assert error["details"][0] == {
        "code": "InvalidQuery",
        "message": "Query is invalid. Please refer to the documentation for the Azure Resource "
        "Graph service and fix the error before retrying.",
    }
    assert len(error["details"]) >= 2
    return error["details"][1]


# --- what it answers --------------------------------------------------------------------


def test_it_returns_whole_rows_of_the_subscriptions_in_scope() -> None:
    rows = query(AKS)

    assert names(rows) == ["bravo", "alpha", "charlie"]
    assert rows[0] == ROWS[0]


def test_it_never_returns_rows_outside_the_request_scope() -> None:
    assert names(query(AKS, subscriptions=(SUB_B,))) == ["charlie"]
    assert query(AKS, subscriptions=()) == []


def test_it_matches_subscription_scope_whatever_the_case_of_the_ids() -> None:
    assert names(query(AKS, subscriptions=(SUB_B.upper(),))) == ["charlie"]


def test_it_accepts_the_capitalised_table_and_the_implicit_one() -> None:
    assert names(query(f"Resources | where type =~ '{TYPE.upper()}'")) == [
        "bravo",
        "alpha",
        "charlie",
    ]
    assert names(query(f"where type =~ '{TYPE}' | project name")) == ["bravo", "alpha", "charlie"]


def test_it_compares_type_exactly_with_double_equals_as_arg_stores_it_lowercase() -> None:
    assert len(query(f"resources | where type == '{TYPE}'")) == 3
    assert query("resources | where type == 'Microsoft.ContainerService/managedClusters'") == []


def test_it_accepts_the_type_filter_as_an_in_list() -> None:
    assert len(query(f'resources | where type in~ ("{TYPE.upper()}")')) == 3


def test_it_filters_on_subscription_lists_with_in_and_in_tilde() -> None:
    assert names(query(f"{AKS} | where subscriptionId in ('{SUB_B}', '{SUB_OUT}')")) == ["charlie"]
    assert names(query(f"{AKS} | where subscriptionId in~ ('{SUB_B.upper()}')")) == ["charlie"]
    assert names(query(f"{AKS} | where subscriptionId in ('{SUB_B.upper()}')")) == []
    assert names(query(f"{AKS} | where subscriptionId !in ('{SUB_B}')")) == ["bravo", "alpha"]


def test_it_filters_on_resource_group_location_and_name_ignoring_case() -> None:
    assert names(query(f"{AKS} | where resourceGroup =~ 'RG-ONE'")) == ["bravo", "charlie"]
    assert names(query(f"{AKS} | where location =~ 'eastus'")) == ["alpha", "charlie"]
    assert names(query(f"{AKS} | where name =~ 'Alpha'")) == ["alpha"]
    assert names(query(f"{AKS} | where name == 'Alpha'")) == []
    assert names(query(f"{AKS} | where name != 'alpha'")) == ["bravo", "charlie"]


def test_it_joins_conditions_with_and_inside_one_where() -> None:
    text = f"""
        resources
        | where type =~ '{TYPE}' and resourceGroup =~ "rg-one" and location =~ 'westeurope'
    """
    assert names(query(text)) == ["bravo"]


def test_it_filters_on_paths_into_properties() -> None:
    text = f"{AKS} | where properties.networkProfile.networkPlugin =~ 'AZURE'"
    assert names(query(text)) == ["bravo"]


def test_it_projects_top_level_columns_in_the_order_asked() -> None:
    rows = query(f"{AKS} | project name, resourceGroup, tags, sku")

    assert rows[0] == {
        "name": "bravo",
        "resourceGroup": "rg-one",
        "tags": {"env": "prod"},
        "sku": {"name": "Base", "tier": "Free"},
    }
    assert list(rows[0]) == ["name", "resourceGroup", "tags", "sku"]


def test_it_names_an_unaliased_path_after_all_its_segments() -> None:
    rows = query(
        f"{AKS} | project name, properties.kubernetesVersion, properties['networkProfile']"
    )

    assert rows[0] == {
        "name": "bravo",
        "properties_kubernetesVersion": "1.30.4",
        "properties_networkProfile": {"networkPlugin": "azure"},
    }


def test_it_renames_projected_columns() -> None:
    text = f"{AKS} | project clusterId = id, plugin = properties.networkProfile.networkPlugin"

    assert query(text)[1] == {"clusterId": ROWS[1]["id"], "plugin": "kubenet"}


def test_it_gives_null_for_a_projected_path_missing_from_a_row() -> None:
    text = f"{AKS} | project name, plugin = properties.networkProfile.networkPlugin, tags.owner"

    charlie = query(text)[2]

    assert charlie == {"name": "charlie", "plugin": None, "tags_owner": None}


def test_it_filters_and_orders_on_projected_aliases() -> None:
    text = f"{AKS} | project cluster = name, rg = resourceGroup | where rg =~ 'rg-one' | order by cluster asc"

    assert query(text) == [
        {"cluster": "bravo", "rg": "rg-one"},
        {"cluster": "charlie", "rg": "rg-one"},
    ]


def test_it_orders_ascending_and_descending() -> None:
    assert names(query(f"{AKS} | order by name asc")) == ["alpha", "bravo", "charlie"]
    assert names(query(f"{AKS} | sort by name desc")) == ["charlie", "bravo", "alpha"]


def test_it_orders_descending_when_no_direction_is_given_as_kusto_does() -> None:
    assert names(query(f"{AKS} | order by name")) == ["charlie", "bravo", "alpha"]


def test_it_orders_by_several_keys() -> None:
    text = f"{AKS} | order by resourceGroup asc, name desc"

    assert names(query(text)) == ["charlie", "bravo", "alpha"]


def test_it_puts_nulls_first_ascending_and_last_descending() -> None:
    rows = [*ROWS[:2], {**ROWS[2], "managedBy": None}]

    ascending = run(parse(f"{AKS} | order by managedBy asc, name asc"), rows, (SUB_A, SUB_B))
    descending = run(parse(f"{AKS} | order by managedBy desc, name asc"), rows, (SUB_A, SUB_B))
    explicit = run(
        parse(f"{AKS} | order by managedBy desc nulls first, name asc"), rows, (SUB_A, SUB_B)
    )

    assert names(ascending) == ["charlie", "alpha", "bravo"]
    assert names(descending) == ["alpha", "bravo", "charlie"]
    assert names(explicit) == ["charlie", "alpha", "bravo"]


def test_it_limits_with_take_or_limit_and_says_so() -> None:
    taken = parse(f"{AKS} | order by name asc | take 2")
    limited = parse(f"{AKS} | limit 1")

    assert names(run(taken, ROWS, (SUB_A, SUB_B))) == ["alpha", "bravo"]
    assert names(run(limited, ROWS, (SUB_A, SUB_B))) == ["bravo"]
    assert taken.limited
    assert limited.limited
    assert not parse(AKS).limited


def test_it_ignores_comments_and_line_breaks() -> None:
    text = f"resources // every cluster\n| where type =~ '{TYPE}'\r\n// newest first\n| order by id asc"

    assert len(query(text)) == 3


# --- what it refuses --------------------------------------------------------------------


def test_it_refuses_a_query_without_the_managed_clusters_filter() -> None:
    for text in (
        "resources",
        "resources | project name",
        "resources | where type =~ 'microsoft.compute/virtualmachines'",
        f"resources | where type in~ ('{TYPE}', 'microsoft.compute/virtualmachines')",
        f"resources | where type != '{TYPE}'",
    ):
        detail = failure(text)
        assert detail["code"] == "UnsupportedQuery"
        assert "aksim serves only microsoft.containerservice/managedclusters" in detail["message"]


def test_it_refuses_other_tables_as_arg_refuses_unknown_ones() -> None:
    detail = failure(f"resourcecontainers | where type =~ '{TYPE}'")

    assert detail == {
        "code": "DisallowedLogicalTableName",
        "message": "Table resourcecontainers is invalid, unsupported or disallowed.",
    }


@pytest.mark.parametrize(
    ("text", "token", "position"),
    [
        (f"{AKS} | summarize count() by location", "summarize", 73),
        (f"{AKS} | extend v = properties.kubernetesVersion", "extend", 73),
        (f"{AKS} | join kind=inner (resourcecontainers) on subscriptionId", "join", 73),
        (f"{AKS} | project-away tags", "project-away", 73),
        (f"summarize count() | where type =~ '{TYPE}'", "summarize", 0),
        (f"{AKS} or name =~ 'x'", "or", 71),
        (f"{AKS} | where name contains 'x'", "contains", 84),
        (f"{AKS} | where tolower(name) == 'x'", "tolower", 79),
        (f"{AKS} |", "<EOF>", 72),
        ("where where", "<EOF>", 11),
        (f"{AKS} | where name =~ 'unterminated", "'unterminated", 87),
        (f"{AKS} | take many", "many", 78),
        (f"{AKS} | Where name =~ 'x'", "Where", 73),
        (f"{AKS} | project name,", "<EOF>", 86),
        (f"{AKS} | order name", "name", 79),
        (f"{AKS} $", "$", 71),
    ],
)
def test_it_reports_a_parser_failure_at_the_offending_token(
    text: str, token: str, position: int
) -> None:
    detail = failure(text)

    assert detail["code"] == "ParserFailure"
    assert detail["message"] == "ParserFailure"
    assert detail["line"] == 1
    assert detail["token"] == token
    assert detail["characterPositionInLine"] == position
    assert text[position:].startswith(token) or token == "<EOF>"


def test_it_counts_lines_and_positions_within_the_line() -> None:
    detail = failure(f"resources\n| where type =~ '{TYPE}'\n|   summarize count()")

    assert (detail["line"], detail["characterPositionInLine"], detail["token"]) == (
        3,
        4,
        "summarize",
    )


def test_it_names_what_it_expected_when_it_knows() -> None:
    detail = failure(f"{AKS} | take 1 2")

    assert detail["token"] == "2"
    assert detail["expectedToken"] == "|"


def test_it_reports_an_unknown_function_as_arg_does() -> None:
    detail = failure(f"{AKS} | where cout(name) == 1")

    assert detail == {"code": "UnknownFunction", "message": "Unknown function: 'cout'."}


@pytest.mark.parametrize(
    ("text", "token", "message"),
    [
        (
            f"{AKS} | project nme",
            "nme",
            "'project' operator: Failed to resolve scalar expression named 'nme'",
        ),
        (
            f"{AKS} | project name | order by id asc",
            "id",
            "'order' operator: Failed to resolve scalar expression named 'id'",
        ),
        (
            f"{AKS} | order by properties.kubernetesVersion asc",
            "properties",
            "order operator: key can't be of dynamic type",
        ),
        (
            f"{AKS} | where name == 1",
            "==",
            "Cannot compare values of types string and long. Try adding explicit casts",
        ),
        (
            f"{AKS} | project name, name",
            "name",
            "'project' operator: duplicate column name 'name'",
        ),
    ],
)
def test_it_reports_names_and_types_kusto_cannot_resolve(
    text: str, token: str, message: str
) -> None:
    detail = failure(text)

    assert detail["code"] == "SemanticError"
    assert detail["token"] == token
    assert detail["message"] == message


def test_it_checks_syntax_before_the_managed_clusters_filter() -> None:
    assert failure("resources | summarize count()")["code"] == "ParserFailure"


def test_it_gives_each_error_its_own_correlation_id_but_a_stable_body() -> None:
    first, second = raised("resources |"), raised("resources |")

    assert first.body() == first.body()
    assert first.body()["error"]["message"] != second.body()["error"]["message"]
    assert first.status == 400


def test_it_reports_syntax_errors_before_unresolved_names_as_kusto_does() -> None:
    detail = failure(f"{AKS} | project nme | summarize count()")

    assert (detail["code"], detail["token"]) == ("ParserFailure", "summarize")
