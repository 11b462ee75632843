"""The Hub push plan for a real, loadable Hugging Face dataset folder (the Hub itself is unreachable here)."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import DRUM_BASS, PIANO

from processing import audio_io
from processing.publish.publish import PublishError
from processing.publish.publish_hub import MB, plan_hub_push, push_to_hub, validate_hf_folder

CARD = """---
license: cc-by-4.0
task_categories:
- text-to-audio
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
  - split: validation
    path: data/validation-*.parquet
---
# tiny music set

Two-second chunks for tests.
"""


@pytest.fixture(scope="session")
def hf_template(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    """A valid HF folder: Parquet shards with embedded audio + a README.md whose YAML lists the splits."""
    import datasets

    root = tmp_path_factory.mktemp("hf") / "hf"
    wavs = tmp_path_factory.mktemp("wavs")
    rows: dict[str, list] = {"train": [], "validation": []}
    for i, (clip, split) in enumerate([(DRUM_BASS, "train"), (PIANO, "train"), (DRUM_BASS, "validation")]):
        audio = audio_io.decode(shared_audio / clip)
        start = (i + 1) * audio.sample_rate
        path = audio_io.write(wavs / f"chunk{i}.wav", replace(audio, samples=audio.samples[:1, start : start + 2 * audio.sample_rate]), "PCM_16")
        rows[split].append({"audio": {"bytes": path.read_bytes(), "path": path.name}, "description": f"chunk {i} of {clip}"})
    features = datasets.Features({"audio": datasets.Audio(), "description": datasets.Value("string")})
    for split, items in rows.items():
        table = datasets.Dataset.from_list(items, features=features)
        shards = 2 if split == "train" else 1
        for s in range(shards):
            table.shard(shards, s, contiguous=True).to_parquet(str(root / "data" / f"{split}-{s:05d}-of-{shards:05d}.parquet"))
    (root / "README.md").write_text(CARD)
    (root / "plots").mkdir()
    (root / "plots" / "bpm.png").write_bytes(b"\x89PNG fake plot")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.lock").write_text("hidden")
    return root


@pytest.fixture
def hf_folder(hf_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "hf"
    shutil.copytree(hf_template, target)
    return target


def test_folder_loads_with_datasets_and_the_plan_lists_every_file(hf_folder, tmp_path):
    import datasets

    loaded = datasets.load_dataset(str(hf_folder), cache_dir=str(tmp_path / "hf-cache"))
    assert loaded["train"].num_rows == 2 and loaded["validation"].num_rows == 1
    row = loaded["validation"][0]
    assert row["description"].startswith("chunk 2") and len(row["audio"]["array"]) == 2 * row["audio"]["sampling_rate"]

    plan = push_to_hub(hf_folder, "someone/tiny-music", "v1", dry_run=True)
    expected = sorted(p.relative_to(hf_folder).as_posix() for p in hf_folder.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert sorted(op.path_in_repo for op in plan.files) == expected and len(expected) == 5
    assert {op.path_in_repo: op.size for op in plan.files} == {p: (hf_folder / p).stat().st_size for p in expected}
    assert plan.files[-1].path_in_repo == "README.md"  # the card lands last, after the shards it names
    assert plan.dry_run and not plan.pushed and plan.private and plan.version == "v1"
    text = plan.describe()
    assert "datasets/someone/tiny-music (private), tag v1: 5 files" in text
    assert f"add data/train-00000-of-00002.parquet  {(hf_folder / 'data/train-00000-of-00002.parquet').stat().st_size} bytes" in text

    ops = [op for commit in plan.commits for op in commit.to_operations()]
    from huggingface_hub import CommitOperationAdd

    assert all(isinstance(op, CommitOperationAdd) for op in ops)
    assert [op.path_in_repo for op in ops] == [op.path_in_repo for op in plan.files]
    assert Path(ops[0].path_or_fileobj).read_bytes() == (hf_folder / ops[0].path_in_repo).read_bytes()


def test_commits_are_bounded_by_files_and_bytes(hf_folder):
    sizes = {p.name: p.stat().st_size for p in (hf_folder / "data").glob("*.parquet")}
    by_files = plan_hub_push(hf_folder, "someone/tiny-music", "v1", max_commit_files=2)
    assert all(len(c.operations) <= 2 for c in by_files.commits[:-1])
    assert [len(c.operations) for c in by_files.commits] == [2, 2, 1]  # 4 nested files in 2s, then the card
    assert by_files.commits[-1].message == "v1: dataset card and metadata (3/3)"

    limit = max(sizes.values()) + 1
    by_bytes = plan_hub_push(hf_folder, "someone/tiny-music", "v1", max_commit_bytes=limit)
    assert all(c.bytes <= limit for c in by_bytes.commits)
    assert len(by_bytes.commits) >= 3 and sum(len(c.operations) for c in by_bytes.commits) == 5
    one_commit_each = plan_hub_push(hf_folder, "someone/tiny-music", "v1", max_commit_bytes=1)
    assert [len(c.operations) for c in one_commit_each.commits[:-1]] == [1, 1, 1, 1]
    assert plan_hub_push(hf_folder, "someone/tiny-music", "v1", max_commit_bytes=100 * MB).commits[0].message == "v1: data (1/2)"


def test_invalid_folders_and_names_are_refused(hf_folder, tmp_path):
    (hf_folder / "data" / "validation-00000-of-00001.parquet").unlink()
    with pytest.raises(PublishError, match=r"data_files pattern 'data/validation-\*\.parquet' matches no file"):
        validate_hf_folder(hf_folder)
    (hf_folder / "README.md").unlink()
    with pytest.raises(PublishError, match=r"README\.md: missing"):
        push_to_hub(hf_folder, "someone/tiny-music", "v1", dry_run=True)
    with pytest.raises(PublishError, match="does not exist"):
        push_to_hub(tmp_path / "nope", "someone/tiny-music", "v1", dry_run=True)
    bad_yaml = tmp_path / "bad"
    bad_yaml.mkdir()
    (bad_yaml / "README.md").write_text("---\nconfigs: [\n---\n")
    with pytest.raises(PublishError, match="does not parse"):
        validate_hf_folder(bad_yaml)


def test_bad_repo_ids_versions_and_missing_token(hf_folder, monkeypatch, tmp_path):
    with pytest.raises(PublishError, match="user-or-org/dataset-name"):
        push_to_hub(hf_folder, "no-owner", "v1", dry_run=True)
    with pytest.raises(PublishError, match="version 'a b'"):
        push_to_hub(hf_folder, "someone/tiny-music", "a b", dry_run=True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    with pytest.raises(PublishError, match="datasets/someone/tiny-music: no Hugging Face token"):
        push_to_hub(hf_folder, "someone/tiny-music", "v1")


def test_an_unreachable_hub_is_a_clear_error(hf_folder, monkeypatch):
    import socket

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(PublishError, match="datasets/someone/tiny-music: push failed"):
        push_to_hub(hf_folder, "someone/tiny-music", "v1", token="hf_not_a_real_token")
