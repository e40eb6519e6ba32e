"""The README's walkthrough in a real browser: the Dagster asset graph, a materialisation launched from the UI,
and the refresh's MLflow run. Screenshots land in test-artifacts/screenshots/ (kept by CI)."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from playwright.sync_api import expect

LOCATION = "ed_pipeline.definitions"
# One asset of each layer (as its graph node names it) and the checks on it.
LAYERS = {
    "raw": ("raw/housing", ["extract_readable"]),
    "validated": ("validated/housing", ["reconciled", "expectations"]),
    "pseudonymised": ("pseudonymised/housing", ["no_identifiers"]),
    "linked": ("linked/person_link", ["ids_stable"]),
    "features": ("features/child_features", ["accepted_values_child_features_sex__M__F__U"]),
    "model": ("model/school_readiness_model", ["promotion_gate"]),
    "outputs": ("outputs/community_risk", ["no_identifiers_anywhere"]),
}
PARTITION = "2016-06"
RUN_TIMEOUT = 300
# Pages of a busy 2-core machine take longer than Playwright's default 5 s to show what they will show.
expect.set_options(timeout=30_000)


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query, "variables": variables or {}})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


# Every partitioned asset of one source: selected in the lineage view with Dagster's selection syntax.
HOUSING_ASSETS = [["raw", "housing"], ["validated", "housing"], ["quarantine", "housing"], ["pseudonymised", "housing"]]
HOUSING_SELECTION = 'key:"*/housing"'
RUNS_QUERY = """query ($partition: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId status assetSelection { path } } }
  }
}"""


MATERIALISATIONS_QUERY = """query ($path: [String!]!, $partition: String!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(partitions: [$partition], limit: 1) { runId partition } }
  }
}"""


def ui_runs(base: str) -> list[dict]:
    return graphql(base, RUNS_QUERY, {"partition": PARTITION})["runsOrError"]["results"]


def test_dagster_asset_graph_shows_every_layer_with_its_checks(ui_servers, page, shoot):
    base = ui_servers["dagster"]
    page.goto(f"{base}/asset-groups")
    for group in LAYERS:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    page.wait_for_timeout(1500)
    shoot("dagster-lineage")

    page.goto(f"{base}/locations/{LOCATION}/asset-groups/raw")
    expect(page.get_by_text("housing", exact=True).first).to_be_visible()
    page.wait_for_timeout(1500)
    shoot("dagster-group-raw")

    for group, (asset, checks) in LAYERS.items():
        page.goto(f"{base}/assets/{asset}")
        definition = page.get_by_text("Definition", exact=True).locator("xpath=ancestor::*[.//text()='Group'][1]")
        expect(definition.get_by_text(group, exact=True).first).to_be_visible()  # Definition: Group <group>
        page.goto(f"{base}/assets/{asset}?view=checks")
        expect(page.get_by_text(asset.split("/")[-1], exact=True).first).to_be_visible()
        for check in checks:
            expect(page.get_by_text(check, exact=True).first).to_be_attached()
        if group == "validated":
            page.wait_for_timeout(1000)
            shoot("dagster-checks-validated-housing")


def test_dagster_materialises_a_partition_of_every_housing_asset_from_the_ui(ui_servers, page, shoot):
    """Lineage, filtered to housing's assets (raw, validated, quarantine, pseudonymised): Materialize all -> one
    month -> Launch 1 run; the run succeeds and every one of the four has that month from that run."""
    base = ui_servers["dagster"]
    assert not ui_runs(base)
    page.goto(f"{base}/asset-groups")
    page.locator(".CodeMirror").first.click()  # "Search and filter assets" (Dagster's selection syntax)
    page.keyboard.type(HOUSING_SELECTION)
    page.keyboard.press("Enter")
    expect(page.get_by_text("pseudonymised", exact=True).first).to_be_visible()
    expect(page.get_by_text("outputs", exact=True)).to_have_count(0)
    page.get_by_role("button", name=re.compile("Materialize all")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"materialize {len(HOUSING_ASSETS)} assets")).to_be_visible()
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    partitions = dialog.get_by_placeholder(re.compile("^ex: "))
    partitions.fill(PARTITION)
    partitions.press("Enter")
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    shoot("dagster-materialize-partition")
    launch.click()

    deadline = time.monotonic() + 60
    while not (runs := ui_runs(base)):
        assert time.monotonic() < deadline, "no run was launched from the UI"
        time.sleep(1)
    [run] = runs
    assert sorted(a["path"] for a in run["assetSelection"]) == sorted(HOUSING_ASSETS)

    page.goto(f"{base}/runs/{run['runId']}")
    deadline = time.monotonic() + RUN_TIMEOUT
    while (status := ui_runs(base)[0]["status"]) not in {"SUCCESS", "FAILURE", "CANCELED"}:
        assert time.monotonic() < deadline, f"run {run['runId']} still {status} after {RUN_TIMEOUT}s"
        time.sleep(2)
    assert status == "SUCCESS"
    for path in HOUSING_ASSETS:
        [materialised] = graphql(base, MATERIALISATIONS_QUERY, {"path": path, "partition": PARTITION})[
            "assetOrError"]["assetMaterializations"]
        assert materialised == {"runId": run["runId"], "partition": PARTITION}, path
    page.reload()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(PARTITION).first).to_be_visible()
    expect(page.get_by_text(f"{len(HOUSING_ASSETS)} assets", exact=True).first).to_be_visible()
    expect(page.get_by_text("RUN_SUCCESS", exact=True).first).to_be_visible()  # the run's log has loaded
    page.wait_for_timeout(1500)
    shoot("dagster-run-succeeded")


def test_mlflow_shows_the_refresh_run_with_metrics_and_plots(ui_servers, page, shoot):
    page.goto(ui_servers["mlflow"])
    page.get_by_text("Model training", exact=True).first.click()
    page.get_by_role("link", name="school-readiness").first.click()
    run_link = page.get_by_role("link", name=re.compile(r"^refresh-"))
    expect(run_link).to_have_count(1)
    shoot("mlflow-experiment")
    run_link.click()

    expect(page.get_by_text("test_roc_auc", exact=True).first).to_be_visible()
    expect(page.get_by_text("baseline_test_roc_auc", exact=True).first).to_be_visible()
    shoot("mlflow-run-metrics")

    page.get_by_role("tab", name="Artifacts").or_(page.get_by_role("link", name="Artifacts")).first.click()
    page.get_by_text("evaluation", exact=True).first.click()
    page.get_by_text("roc.png", exact=True).first.click()
    expect(page.get_by_text("evaluation/roc.png").first).to_be_visible()
    # The plot itself: an image loaded at full size (the page's icons are small).
    page.wait_for_function("() => [...document.images].some(img => img.complete && img.naturalWidth >= 300)")
    page.wait_for_timeout(1000)
    shoot("mlflow-run-roc")
