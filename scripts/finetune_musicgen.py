#!/usr/bin/env python3
"""Fine-tune MusicGen (transformers) on a Music Mixer build; write a checkpoint and its loss curve.

    python scripts/finetune_musicgen.py build --out ckpt                        # facebook/musicgen-small
    python scripts/finetune_musicgen.py build --out ckpt --model facebook/musicgen-medium --steps 2000
    python scripts/finetune_musicgen.py s3://bucket/datasets/music_mixer/latest --out ckpt   # pulled first
    python scripts/finetune_musicgen.py build --out ckpt --tiny --steps 60      # small random model (CPU check)
    python scripts/finetune_musicgen.py build --out ckpt --weighted             # sample chunks by their weight

Pretrained weights come from a local folder or the Hugging Face cache; a Hub id that is not there is
downloaded into the cache once (HF_ENDPOINT), as transformers does, unless --offline or HF_HUB_OFFLINE=1
(`hf download facebook/musicgen-small` on a machine with internet, then copy the cache). The
checkpoint folder gets the model and processor (`save_pretrained`: load them with
`MusicgenForConditionalGeneration.from_pretrained` / `AutoProcessor.from_pretrained`),
training.json (settings and the loss of every step) and loss.png.
Needs transformers: pip install -e '.[musicgen]'.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from builders.finetune import FinetuneError  # noqa: E402

TINY_LR, PRETRAINED_LR = 3e-3, 1e-5


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a build folder, or s3://bucket/prefix/<name>/<version or latest> (pulled first)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", default="facebook/musicgen-small",
                       help="a MusicGen Hub id (from the Hugging Face cache, else downloaded into it) or a "
                            "checkpoint folder (default facebook/musicgen-small)")
    which.add_argument("--tiny", action="store_true", help="a small randomly initialised MusicGen (no weights needed)")
    p.add_argument("--steps", type=int, default=500, help="optimizer steps (default 500)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, help=f"learning rate (default {PRETRAINED_LR:g}; {TINY_LR:g} with --tiny)")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--segment-seconds", type=float, default=30.0, help="random crop per example (default 30)")
    p.add_argument("--text-dropout", type=float, default=0.1,
                   help="probability of training without the description (classifier-free guidance; default 0.1)")
    p.add_argument("--train-text-encoder", action="store_true",
                   help="also train the T5 text encoder (frozen by default, as in audiocraft; always trained with --tiny)")
    p.add_argument("--weighted", action="store_true",
                   help="draw training chunks in proportion to their sampling weight (the build's `weight` column: "
                        "curate.weighting balanced evens out genres; default: uniform)")
    p.add_argument("--split", default="train")
    p.add_argument("--validation-split", default="validation", help="'' for none")
    p.add_argument("--eval-every", type=int, default=50, help="steps between validation losses (default 50)")
    p.add_argument("--loader", choices=["auto", "script", "folder"], default="auto",
                   help="script: music_mixer_dataset.py (datasets 3.x); folder: BUILD/hf; auto: script when it can run")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint for s3:// sources (MinIO, R2, ...)")
    p.add_argument("--pull-dest", type=Path, help="where an s3:// version is pulled (default: the pull cache)")
    p.add_argument("--datasets-cache", type=Path, help="datasets cache folder (default: datasets' own)")
    p.add_argument("--offline", action="store_true",
                   help="never download pretrained weights (as HF_HUB_OFFLINE=1): they must be in the cache or a folder")
    p.add_argument("--hf-cache", type=Path, help="Hugging Face hub cache holding the pretrained weights (default: HF_HOME's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        from builders.finetune import job as jobs, require_transformers, train

        require_transformers()
        cfg = train.TrainConfig(
            steps=args.steps, batch_size=args.batch_size, warmup_steps=args.warmup_steps,
            lr=args.lr if args.lr is not None else (TINY_LR if args.tiny else PRETRAINED_LR),
            segment_s=args.segment_seconds, text_dropout=args.text_dropout,
            train_text_encoder=args.train_text_encoder or args.tiny, seed=args.seed, device=args.device,
            bf16=args.bf16, log_every=args.eval_every, weighted=args.weighted)
        job = jobs.FinetuneJob(
            source=args.source, out=args.out, model=args.model, tiny=args.tiny, split=args.split,
            validation_split=args.validation_split or None, loader=args.loader, endpoint_url=args.endpoint_url,
            pull_dest=args.pull_dest, cache_dir=args.datasets_cache, hf_cache_dir=args.hf_cache, offline=args.offline,
            train=cfg,
            progress=not args.no_progress)
        done = jobs.run(job)
    except FinetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    losses = done.result.losses
    print(f"Fine-tuned {'a tiny random MusicGen' if args.tiny else args.model} on {done.train_examples} chunks "
          f"of {done.build} in {done.seconds:.1f} s ({len(losses)} steps, {done.result.seconds:.1f} s training)")
    print(f"  loss: first step {losses[0]:.3f}, last step {losses[-1]:.3f}")
    if done.result.val_losses:
        (s0, v0), (s1, v1) = done.result.val_losses[0], done.result.val_losses[-1]
        print(f"  validation loss ({done.validation_examples} chunks): step {s0} {v0:.3f}, step {s1} {v1:.3f}")
    print(f"Checkpoint written to {done.checkpoint} (loss curve: {done.checkpoint / 'loss.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
