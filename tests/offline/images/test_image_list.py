"""`--images-from`: a plain list of references, or the Kubernetes manifests a CD job applies."""

from __future__ import annotations

import pytest

from offline.errors import UsageError
from offline.images.image_list import parse_image_list


def test_a_plain_list_keeps_order_and_drops_comments_and_duplicates() -> None:
    text = (
        "# release 4\nregistry.internal:5000/app:1.0\n\nregistry.internal:5000/db@sha256:"
        + ("a" * 64)
        + "  # pinned\nregistry.internal:5000/app:1.0\n"
    )
    assert parse_image_list(text, "images.txt") == [
        "registry.internal:5000/app:1.0",
        "registry.internal:5000/db@sha256:" + "a" * 64,
    ]


def test_images_are_found_in_every_pod_template_of_every_document() -> None:
    text = """
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers: [{name: init, image: reg.local/init:1}]
      containers:
        - {name: app, image: reg.local/app:2}
        - {name: sidecar, image: reg.local/proxy:3}
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: reg.local/job:4}]
---
apiVersion: v1
kind: List
items:
  - kind: Pod
    spec:
      containers: [{name: a, image: reg.local/app:2}]
      ephemeralContainers: [{name: debug, image: reg.local/debug:5}]
"""
    assert parse_image_list(text, "deploy.yaml") == [
        "reg.local/init:1",
        "reg.local/app:2",
        "reg.local/proxy:3",
        "reg.local/job:4",
        "reg.local/debug:5",
    ]


def test_manifests_without_images_are_an_error() -> None:
    with pytest.raises(UsageError, match="no container images found"):
        parse_image_list("apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n", "cm.yaml")


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(UsageError, match="valid YAML at line 3"):
        parse_image_list("kind: Pod\nspec: [unclosed\nother: 1\n", "bad.yaml")
