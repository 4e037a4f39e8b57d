"""bundles/sigstore-stack.yaml carries the six upstream sigstore charts (the TSA's included) at
the versions of the charts we read (../shared/upstream/sigstore-helm-charts) and every image
their values run, so `bundle create` (which renders the pulled charts) cannot find one missing on
the day."""

from __future__ import annotations

import pytest
import yaml

from offline.oci.imageref import parse_image_ref
from provisioner.bundle.spec import load_spec
from provisioner.create.chart_images import ChartImage, compare_images
from provisioner.stack.site import DEFAULT_TUF_SERVER_IMAGE
from tests.chart_values import values_image_keys
from tests.conftest import REPO, SHARED

UPSTREAM = SHARED / "upstream" / "sigstore-helm-charts"
STACK = REPO / "bundles" / "sigstore-stack.yaml"
COMPONENTS = ("trillian", "rekor", "fulcio", "ctlog", "tsa", "tuf", "policy-controller")
# Values keys of features the stack leaves off (see the spec's header).
DISABLED = ("mysql.gcp.", "backfillredis.", "init.")


def _chart_yaml(name: str) -> dict[str, object]:
    chart = yaml.safe_load((UPSTREAM / name / "Chart.yaml").read_text())
    assert isinstance(chart, dict)
    return chart


def test_the_stack_spec_pins_the_seven_charts_at_the_upstream_versions() -> None:
    spec = load_spec(STACK)
    assert [c.name for c in spec.charts] == list(COMPONENTS)
    for chart in spec.charts:
        assert chart.version == str(_chart_yaml(chart.name)["version"]), chart.name
        assert chart.repo == "https://sigstore.github.io/helm-charts"


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_image_the_chart_runs_is_in_the_stack_spec(component: str) -> None:
    spec = load_spec(STACK)
    values = yaml.safe_load((UPSTREAM / component / "values.yaml").read_text())
    app_version = str(_chart_yaml(component)["appVersion"])
    used = [
        ChartImage(image, f"values/{key}", key, f"{component}")
        for key, image in values_image_keys(values, app_version=app_version)
        if not key.startswith(DISABLED)
    ]
    assert used, f"no images found in {component}'s values"
    assert compare_images(used, [i.reference for i in spec.images]) == []


def _upstream_images() -> list[str]:
    return [
        image
        for component in COMPONENTS
        for key, image in values_image_keys(
            yaml.safe_load((UPSTREAM / component / "values.yaml").read_text())
        )
        if not key.startswith(DISABLED)
    ]


def test_every_image_in_the_stack_spec_is_pinned_by_digest_unless_upstream_pins_none() -> None:
    tag_only = {image for image in _upstream_images() if parse_image_ref(image).digest is None}
    assert tag_only == {"cgr.dev/chainguard/kubectl:latest-dev"}  # a new one needs a look
    for image in load_spec(STACK).images:
        assert image.ref.digest is not None or image.reference in tag_only, image.reference


def test_the_stack_spec_carries_the_static_server_the_install_runs_for_tuf() -> None:
    wanted = [ChartImage(DEFAULT_TUF_SERVER_IMAGE, "site/tuf.serverImage", "serverImage", "tuf")]
    assert compare_images(wanted, [i.reference for i in load_spec(STACK).images]) == []


def test_the_stack_spec_lists_nothing_the_charts_or_the_install_do_not_use() -> None:
    used = {parse_image_ref(image).digest or image for image in _upstream_images()}
    for image in load_spec(STACK).images:
        if (image.ref.digest or image.reference) not in used:
            assert image.ref.name == parse_image_ref(DEFAULT_TUF_SERVER_IMAGE).name, image.reference
