"""report.py owns the pair id: each component that changes a map or a score changes the id."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from groundreport import report
from groundreport.compute import BuildConfig
from groundreport.records import Caption, Phrase

CAPTION = Caption("a red circle and a blue square", [Phrase("a red circle", ((1.0, 2.0, 30.0, 40.0),), (0, 12))])
BASE = dict(model_id="demo", revision="sha256:abc", image_sha="0" * 64)
CFG = BuildConfig(methods=["gradcam", "relevancy"], target="contrastive", dtype="fp32")


def _id(cfg=CFG, caption=CAPTION, **kw):
    args = dict(BASE, **kw)
    return report.pair_id(args["model_id"], args["revision"], args["image_sha"], caption, cfg.map_settings())


def test_the_same_inputs_give_the_same_id():
    assert _id() == _id(cfg=dataclasses.replace(CFG, methods=["relevancy", "gradcam"]))  # order is no setting
    assert _id() == _id(cfg=dataclasses.replace(CFG, report="elsewhere", seed=7, sample=3))  # not map settings


@pytest.mark.parametrize("change", [
    dict(revision="sha256:abd"),
    dict(model_id="facebook/flava-full"),
    dict(image_sha="1" + "0" * 63),
    dict(caption=Caption("a red circle and a blue star", CAPTION.phrases)),
    dict(caption=Caption(CAPTION.text, [Phrase("a red circle", ((1.0, 2.0, 30.0, 41.0),), (0, 12))])),
    dict(caption=Caption(CAPTION.text, [])),
    dict(cfg=dataclasses.replace(CFG, methods=["gradcam"])),
    dict(cfg=dataclasses.replace(CFG, target="itm")),
    dict(cfg=dataclasses.replace(CFG, dtype="bf16")),
    dict(cfg=dataclasses.replace(CFG, smooth=False)),
], ids=["model-revision", "model-id", "image-bytes", "caption", "phrase-boxes", "phrases", "methods", "target",
        "dtype", "smooth"])
def test_each_key_component_changes_the_id(change):
    assert _id(**change) != _id()


def test_tool_version_and_scoring_rule_change_the_id(monkeypatch):
    before = _id()
    monkeypatch.setattr(report, "__version__", "9.9.9")
    assert _id() != before
    monkeypatch.undo()
    monkeypatch.setattr(report, "SCORING_VERSION", report.SCORING_VERSION + 1)
    assert _id() != before


def test_a_method_version_changes_only_the_ids_of_pairs_that_ran_that_method(monkeypatch):
    from groundreport.explainers import REGISTRY

    with_occlusion = dataclasses.replace(CFG, methods=["gradcam", "occlusion"])
    before, plain = _id(cfg=with_occlusion), _id()
    monkeypatch.setattr(REGISTRY["occlusion"], "version", REGISTRY["occlusion"].version + 1)
    assert _id(cfg=with_occlusion) != before
    assert _id() == plain


def test_manifest_of_another_schema_is_refused(tmp_path: Path):
    from groundreport import atomic
    from groundreport.errors import UserError

    atomic.write_json(tmp_path / "manifest.json", {"schema_version": 1, "pairs": []})
    with pytest.raises(UserError, match="schema_version 1 is not supported"):
        report.load_manifest(tmp_path)
    report.write_manifest(tmp_path, {"pairs": []})
    m = report.load_manifest(tmp_path)
    assert m["schema_version"] == report.SCHEMA_VERSION and m["scoring_version"] == report.SCORING_VERSION
