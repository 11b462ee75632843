"""Fine-tune MusicGen (transformers) on a Music Mixer build.

data.py: a build folder or a published version -> (description, audio) examples, loaded with `datasets`
the way fine-tuning code does (the loading script on datasets 3.x, the script-free ``hf/`` folder);
models.py: MusicGen + its processor, pretrained from the Hugging Face cache or a small random one
(EnCodec at 32 kHz, T5 text encoder, a tokenizer trained on the descriptions);
train.py: audio -> EnCodec codes -> delayed (text, codes) batches, the training loop, the checkpoint
and its loss curve. ``scripts/finetune_musicgen.py`` is the command line.

torch, transformers, tokenizers and datasets are imported inside the functions that need them, so
importing this package is cheap and a missing optional dependency gets a clear message.
"""
from __future__ import annotations


class FinetuneError(RuntimeError):
    """Fine-tuning cannot start or go on; the message names what is missing and how to get it."""


def require_transformers():
    """transformers, or a FinetuneError saying how to install it (the `musicgen` extra)."""
    try:
        import transformers
    except ImportError as exc:
        raise FinetuneError("fine-tuning MusicGen needs transformers: pip install -e '.[musicgen]' "
                            "(or pip install 'transformers>=4.40')") from exc
    return transformers
