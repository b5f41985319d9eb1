"""Model loading: the normal from_pretrained path, and one clear error for every wrong model."""

from __future__ import annotations

import shutil

import pytest

from groundreport.errors import UserError
from groundreport.models.flava import FlavaAdapter


def test_local_folder_loads_through_from_pretrained(tiny_model_dir):
    a = FlavaAdapter.load(str(tiny_model_dir), device="cpu")
    d = a.describe()
    assert d["class"] == "FlavaForPreTraining" and d["has_itm"] and d["grid"] == [4, 4]
    assert d["revision"].startswith("sha256:")


def test_unknown_hub_name_offline_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UserError, match="could not be loaded"):
        FlavaAdapter.load("nobody/no-such-flava-model", device="cpu", offline=True)


def test_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        FlavaAdapter.load(str(tmp_path), device="cpu")


def test_non_flava_model_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                         vocab_size=30)).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="'bert' model"):
        FlavaAdapter.load(str(tmp_path), device="cpu")


def _with_image_size(src, dst, size):
    import json

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "processor_config.json").read_text())
    cfg["image_processor"]["size"] = size
    (dst / "processor_config.json").write_text(json.dumps(cfg))
    return dst


def test_cropping_processor_loads_and_its_grid_covers_the_crop(tiny_model_dir, tmp_path):
    # short side to 40, centre 32 x 32: of a 100 x 50 image (resized to 80 x 40) the grid sees
    # x in [24, 56) and y in [4, 36) of the resized image, i.e. [30, 70) x [5, 45) of the original
    a = FlavaAdapter.load(str(_with_image_size(tiny_model_dir, tmp_path / "m", {"shortest_edge": 40})), device="cpu")
    assert a.region((100, 50)) == (30.0, 5.0, 70.0, 45.0)


def test_processor_we_cannot_place_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="places maps for processors"):
        FlavaAdapter.load(str(_with_image_size(tiny_model_dir, tmp_path / "m", {"longest_edge": 40})), device="cpu")


def test_fp16_on_cpu_is_refused(tiny_model_dir):
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        FlavaAdapter.load(str(tiny_model_dir), device="cpu", dtype="fp16")
