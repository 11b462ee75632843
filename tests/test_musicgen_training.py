"""MusicGen really trains on what we build: real clips -> offline build -> `datasets` -> EnCodec codes ->
a small random MusicGen (transformers) whose loss falls; and scripts/finetune_musicgen.py end to end."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import DRUM_BASS, REPO, VIBE_ACE
from builders.finetune import FinetuneError, data, job, models, train
from processing.config import load_config
from processing.pipeline import run_build
from processing.types import SourceSpec
from hub_server import HubServer
from s3_server import aws_env, s3  # noqa: F401  (fixtures: moto's S3 server on 127.0.0.1)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]
SCRIPT = REPO / "scripts" / "finetune_musicgen.py"
EXCERPT_S = 15.0  # of each real clip: keeps the offline separation (the slow part) to ~6 s
Q16 = 1.0 / 32768


@pytest.fixture(scope="module")
def small_build(shared_audio, tmp_path_factory) -> Path:
    """Two real clips (15 s excerpts) through the offline separator: 5 s chunks, one song per split."""
    work = tmp_path_factory.mktemp("mg_build")
    sources = []
    for name, meta in ((DRUM_BASS, {"artist": "admiralbob77", "genre": "hip hop", "licence": "CC-BY-3.0"}),
                       (VIBE_ACE, {"artist": "Kevin MacLeod", "genre": "jazz", "licence": "CC-BY-4.0"})):
        with sf.SoundFile(shared_audio / name) as fh:
            rate = fh.samplerate
            audio = fh.read(int(EXCERPT_S * rate), dtype="float32")
        path = work / "in" / (name.split(".")[0] + ".flac")
        path.parent.mkdir(exist_ok=True)
        sf.write(path, audio, rate)
        sources.append(SourceSpec(str(path), **meta))
    cfg = load_config(None, [f"out_dir={work / 'out'}", f"cache_dir={work / 'cache'}", "separate.model=offline",
                             "chunk.chunk_s=5", "progress=false",
                             "analyse.exclude_flagged=false"])  # the offline separator's residue must not shrink the set
    result = run_build(cfg, sources)
    assert not result.report.failures
    return result.out_dir


def _split_rows(build: Path, split: str) -> dict[str, dict]:
    rows = pq.read_table(build / "chunks.parquet").to_pylist()
    info = json.loads((build / "build_info.json").read_text())
    songs = {s for s, sp in info["song_splits"].items() if sp == split}
    return {r["chunk_id"]: r for r in rows if r["song_id"] in songs and not r["excluded"]}


def test_delay_pattern_shifts_codebook_k_by_k_steps():
    codes = np.array([[1, 2, 3], [4, 5, 6]])
    assert train.delay_pattern(codes, pad_id=9).tolist() == [[1, 9], [2, 4], [3, 5], [9, 6]]
    stereo = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])  # k0L, k0R, k1L, k1R: a left/right pair shares a delay
    assert train.delay_pattern(stereo, 9, audio_channels=2).T.tolist() == [[1, 2, 9], [3, 4, 9], [9, 5, 6], [9, 7, 8]]
    texts, labels = train.make_batch([train.Encoded("a", "x", codes), train.Encoded("b", "y", codes[:, :1])], 3, 9, None)
    assert texts == ["x", "y"] and labels.shape == (2, 4, 2)
    assert labels[1].tolist() == [[1, 9], [9, 4], [9, 9], [9, 9]]  # a shorter item is padded with the ignored id


def test_a_small_musicgen_trains_on_the_built_dataset(small_build, tmp_path):
    t0 = time.perf_counter()
    expected = _split_rows(small_build, "train")
    assert len(expected) == 3  # one 15 s song, three 5 s chunks
    # the ways fine-tuning code loads it: the loading script (datasets 3.x) and the script-free folder
    by_script = data.examples(data.load_split(small_build, "train", "script", tmp_path / "c1"), 32000)
    by_folder = data.examples(data.load_split(small_build, "train", "folder", tmp_path / "c2"), 32000)
    assert sorted(e.chunk_id for e in by_script) == sorted(e.chunk_id for e in by_folder) == sorted(expected)
    folder = {e.chunk_id: e for e in by_folder}
    for ex in by_script:
        row = expected[ex.chunk_id]
        assert ex.text == folder[ex.chunk_id].text == row["description"]
        written, rate = sf.read(small_build / row["audio_path"], dtype="float32")
        assert rate == 32000 and ex.audio.shape == (1, 160000) == folder[ex.chunk_id].audio.shape
        assert np.max(np.abs(ex.audio[0] - written)) <= Q16 and np.max(np.abs(folder[ex.chunk_id].audio[0] - written)) <= Q16

    texts = [e.text for e in by_script]
    tokenizer = models.train_tokenizer(texts)
    ids = tokenizer(texts[0]).input_ids
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == texts[0].lower()

    bundle = models.tiny_musicgen(tokenizer)
    models.fit_codebooks(bundle, [e.audio[0] for e in by_script])
    items = train.encode_audio(bundle, by_script)
    for item in items:  # 5 s at 50 frames/s, 4 codebooks of 128 codes, as musicgen-small's EnCodec in miniature
        assert item.codes.shape == (4, 250) and item.codes.min() >= 0 and item.codes.max() < 128
        assert all(len(np.unique(c)) > 20 for c in item.codes)  # real tokens, not a constant

    cfg = train.TrainConfig(steps=60, batch_size=4, lr=3e-3, segment_s=5.0, train_text_encoder=True)
    result = train.train(bundle, items, cfg, progress=False)
    losses = result.losses
    seconds = time.perf_counter() - t0
    print(f"\nMusicGen training: loss {losses[0]:.3f} at step 1, {losses[-1]:.3f} at step {len(losses)}; "
          f"{result.seconds:.1f} s training, {seconds:.1f} s in all (build not counted)")
    assert len(losses) == 60 and all(math.isfinite(x) for x in losses)
    assert abs(losses[0] - math.log(128)) < 0.5  # a random model starts near uniform over the codes
    assert np.mean(losses[-5:]) < 0.6 * losses[0]  # and learns: the loss falls clearly


@pytest.mark.skipif(
    not os.environ.get("MUSIC_MIXER_DS5_PYTHON"),
    reason="set MUSIC_MIXER_DS5_PYTHON to a python with datasets==5.2.0 + soundfile (no torch) to check datasets 5.x",
)
def test_training_examples_load_the_same_under_datasets_5(small_build, tmp_path):
    """datasets >= 4 runs no loading script and decodes Audio only with torchcodec: the folder + soundfile route."""
    check = ("import json, sys; from pathlib import Path; from builders.finetune import data; b = Path(sys.argv[1]); "
             "ex = data.examples(data.load_split(b, 'train', 'auto', Path(sys.argv[2])), 32000, 1, b); "
             "print('RESULT' + json.dumps([data.pick_loader('auto', b)] + [[e.chunk_id, e.text, e.audio.tolist()] for e in ex]))")
    proc = subprocess.run([os.environ["MUSIC_MIXER_DS5_PYTHON"], "-c", check, str(small_build), str(tmp_path)],
                          capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    loader, *rows = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert loader == "folder"
    expected = _split_rows(small_build, "train")
    assert sorted(r[0] for r in rows) == sorted(expected)
    for chunk_id, text, audio in rows:
        written, _ = sf.read(small_build / expected[chunk_id]["audio_path"], dtype="float32")
        assert text == expected[chunk_id]["description"] and np.max(np.abs(np.asarray(audio)[0] - written)) <= Q16


@pytest.fixture(scope="module")
def tiny_checkpoint(small_build, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # 2 shared cores: no spinning threads
    proc = subprocess.run([sys.executable, str(SCRIPT), str(small_build), "--out", str(out), "--tiny", "--steps", "40",
                           "--segment-seconds", "5", "--eval-every", "20", "--no-progress",
                           "--datasets-cache", str(out.parent / "datasets")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_finetune_script_writes_a_checkpoint_that_loads_and_generates(tiny_checkpoint):
    out, proc = tiny_checkpoint
    assert "loss: first step" in proc.stdout and str(out) in proc.stdout
    record = json.loads((out / "training.json").read_text())
    assert len(record["losses"]) == 40 and record["train_examples"] == 3 and record["validation_examples"] == 3
    assert np.mean(record["losses"][-5:]) < 0.7 * record["losses"][0]
    assert [s for s, _ in record["val_losses"]] == [0, 20, 40]
    assert record["dataset"]["name"] == "music_mixer" and record["model"] == "tiny-random"
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    inputs = processor(text=["A mellow jazz instrumental in E major."], padding=True, truncation=True, return_tensors="pt")
    torch.manual_seed(0)
    audio = model.generate(**inputs, max_new_tokens=10)
    assert audio.shape[:2] == (1, 1) and audio.shape[-1] > 0 and torch.isfinite(audio).all()


def test_pretrained_weights_come_from_the_hf_cache_when_offline(tiny_checkpoint, tmp_path):
    out, _ = tiny_checkpoint
    empty = tmp_path / "empty_cache"
    with pytest.raises(FinetuneError, match=r"facebook/musicgen-small is not in the Hugging Face cache.*hf download"):
        models.load_pretrained("facebook/musicgen-small", cache_dir=empty, offline=True)
    # the same id resolves once the cache holds it (the hub cache layout: refs/main -> snapshots/<commit>)
    repo = tmp_path / "cache" / "models--me--tiny-musicgen"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in out.iterdir():
        if f.name not in ("training.json", "loss.png"):
            (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    bundle = models.load_pretrained("me/tiny-musicgen", cache_dir=tmp_path / "cache")
    assert bundle.sampling_rate == 32000 and bundle.model.decoder.config.num_codebooks == 4


def test_finetune_script_downloads_a_hub_model_once_and_offline_uses_the_cache(tiny_checkpoint, small_build, tmp_path):
    out, _ = tiny_checkpoint
    hub = HubServer().start()
    try:
        hub.add_repo("me/tiny-musicgen", {f.name: f for f in out.iterdir() if f.name not in ("training.json", "loss.png")})
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
        env.pop("HF_HUB_OFFLINE", None)

        def finetune(name: str, *extra: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, str(SCRIPT), str(small_build), "--out", str(tmp_path / name),
                                   "--model", "me/tiny-musicgen", "--steps", "1", "--segment-seconds", "2",
                                   "--validation-split", "", "--no-progress", "--datasets-cache", str(tmp_path / "ds"),
                                   *extra], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)

        first = finetune("a")
        assert first.returncode == 0, first.stderr[-3000:]
        assert f"downloading me/tiny-musicgen from {hub.endpoint}" in first.stderr
        assert hub.requests("/resolve/") >= 2 and hub.requests("model.safetensors") >= 1
        before = hub.requests()
        second = finetune("b", "--offline")
        assert second.returncode == 0, second.stderr[-3000:]
        assert hub.requests() == before and (tmp_path / "b" / "model.safetensors").is_file()
    finally:
        hub.stop()


def test_finetune_script_against_a_dead_endpoint_fails_within_seconds(small_build, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {**os.environ, "HF_ENDPOINT": dead, "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), str(small_build), "--out", str(tmp_path / "ckpt"), "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and time.perf_counter() - t0 < 60  # start-up included; the request itself is one
    assert f"cannot download facebook/musicgen-small: {dead} cannot be reached" in proc.stderr
    assert "--offline" in proc.stderr and "HF_HUB_OFFLINE=1" in proc.stderr and "hf download" in proc.stderr


def test_finetune_script_without_weights_stops_before_any_work(small_build, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(small_build), "--out", str(tmp_path / "ckpt"), "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "facebook/musicgen-small is not in the Hugging Face cache" in proc.stderr
    assert "--tiny" in proc.stderr and not (tmp_path / "ckpt").exists()


def test_finetune_from_a_published_version(small_build, s3, aws_env, tmp_path):  # noqa: F811 (fixtures)
    from processing.config import PublishConfig
    from processing.publish.publish import publish_build

    bucket = s3.new_bucket()
    publish_build(small_build, PublishConfig(s3_uri=f"s3://{bucket}/sets", endpoint_url=s3.endpoint_url), "mm", "v1",
                  progress=False)
    done = job.run(job.FinetuneJob(
        source=f"s3://{bucket}/sets/mm/latest", out=tmp_path / "ckpt", tiny=True, endpoint_url=s3.endpoint_url,
        pull_dest=tmp_path / "pulled", cache_dir=tmp_path / "datasets", progress=False,
        train=train.TrainConfig(steps=3, lr=3e-3, segment_s=2.0, train_text_encoder=True)))
    assert done.build == tmp_path / "pulled" and (done.build / "manifest.json").is_file()
    assert done.train_examples == 3 and len(done.result.losses) == 3
    assert json.loads((tmp_path / "ckpt" / "training.json").read_text())["source"] == f"s3://{bucket}/sets/mm/latest"
