"""MusicGen for fine-tuning: pretrained (a folder, the Hugging Face cache, or downloaded as transformers does
unless offline), or small and random.

The random model has the released models' shape in miniature: a T5 text
encoder, a 32 kHz EnCodec at 50 frames/s emitting 4 codebooks, and a
MusicGen decoder whose pad/BOS/start id is the codebook size; its tokenizer
is a Unigram model (T5's kind) trained with `tokenizers` on the dataset's own
descriptions, so nothing is downloaded.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import FinetuneError, require_transformers

PRETRAINED = ("facebook/musicgen-small", "facebook/musicgen-medium", "facebook/musicgen-large")
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # T5's ids 0, 1, 2


@dataclass
class MusicgenBundle:
    model: Any  # transformers MusicgenForConditionalGeneration
    processor: Any  # MusicgenProcessor: tokenizer + EnCodec feature extractor
    name: str  # the model id or folder, or "tiny-random"

    @property
    def sampling_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def audio_channels(self) -> int:
        return int(getattr(self.model.config.decoder, "audio_channels", 1) or 1)


def train_tokenizer(texts: list[str], vocab_size: int = 512):
    """A Unigram tokenizer (lower-cased, T5-style ``</s>`` appended) trained on ``texts``."""
    transformers = require_transformers()
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise FinetuneError("no descriptions to train a tokenizer on (the build's rows have no description)")
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>")
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                                unk_token="<unk>", model_max_length=512)


def tiny_musicgen(tokenizer, *, codebook_size: int = 128, num_codebooks: int = 4, hidden_size: int = 128,
                  layers: int = 2, heads: int = 4, text_hidden_size: int = 32, seed: int = 0,
                  max_seconds: float = 40.0, audio_channels: int = 1) -> MusicgenBundle:
    """A small randomly initialised MusicGen (text encoder, 32 kHz EnCodec, decoder) and its processor.

    ``audio_channels=2`` gives a stereo decoder (left/right codebooks interleaved, as musicgen-stereo-*).
    """
    transformers = require_transformers()
    import torch

    frame_rate, upsampling = 50, [8, 5, 4, 4]  # 32000 / (8*5*4*4) = 50 frames per second, as musicgen-small
    # EnCodec emits n_q = floor(1000 * bandwidth / (frame_rate * log2(codebook_size))) codebooks
    bandwidth = (num_codebooks + 0.5) * frame_rate * math.log2(codebook_size) / 1000
    encodec = transformers.EncodecConfig(
        sampling_rate=32000, audio_channels=1, normalize=False, chunk_length_s=None, hidden_size=32,
        num_filters=4, num_residual_layers=1, upsampling_ratios=upsampling, num_lstm_layers=1,
        codebook_size=codebook_size, target_bandwidths=[round(bandwidth, 4)], use_causal_conv=False)
    text = transformers.T5Config(vocab_size=len(tokenizer), d_model=text_hidden_size, d_kv=8, d_ff=64,
                                 num_layers=2, num_heads=4, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    decoder = transformers.MusicgenDecoderConfig(
        vocab_size=codebook_size, num_codebooks=num_codebooks * audio_channels, audio_channels=audio_channels,
        hidden_size=hidden_size, ffn_dim=4 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=int(max_seconds * frame_rate) + 16,
        pad_token_id=codebook_size, bos_token_id=codebook_size, dropout=0.0)
    config = transformers.MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=encodec.to_dict(),
                                         decoder=decoder.to_dict())
    config.decoder_start_token_id = config.pad_token_id = codebook_size
    config.decoder.decoder_start_token_id = codebook_size  # read by the forward pass when it shifts the labels
    torch.manual_seed(seed)
    model = transformers.MusicgenForConditionalGeneration(config)
    gen = model.generation_config
    gen.decoder_start_token_id = gen.pad_token_id = gen.bos_token_id = codebook_size
    gen.do_sample, gen.guidance_scale, gen.max_length = True, 3.0, int(8 * frame_rate)
    feature_extractor = transformers.EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    processor = transformers.MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    return MusicgenBundle(model, processor, "tiny-random")


def fit_codebooks(bundle: MusicgenBundle, waves: list, seed: int = 0, frames_per_wave: int = 2000) -> None:
    """Set a random EnCodec's codebooks by k-means on its own latents of ``waves`` (mono float arrays).

    transformers initialises EnCodec codebooks to zeros (they come from a
    checkpoint), so a random EnCodec would emit code 0 everywhere. EnCodec's
    training starts its codebooks the same way (audiocraft's ``kmeans_init``):
    k-means of the first batch's latents, stage after stage of the residual.
    """
    import torch
    from sklearn.cluster import KMeans

    encodec = bundle.model.audio_encoder
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        latents = []
        for wave in waves:
            z = encodec.encoder(torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(1, 1, -1))[0].T  # (T, D)
            keep = rng.permutation(z.shape[0])[:frames_per_wave]
            latents.append(z[np.sort(keep)])
        residual = torch.cat(latents).double()
        for layer in encodec.quantizer.layers:
            book = layer.codebook
            k = book.codebook_size
            points = residual.numpy()
            centers = KMeans(n_clusters=min(k, len(np.unique(points, axis=0))), n_init=1, max_iter=50,
                             random_state=seed).fit(points).cluster_centers_
            if len(centers) < k:  # fewer distinct latents than codes: the rest are jittered copies
                extra = centers[rng.integers(0, len(centers), k - len(centers))]
                centers = np.concatenate([centers, extra + rng.normal(0, 1e-3 + points.std(), extra.shape)])
            book.embed.copy_(torch.as_tensor(centers, dtype=book.embed.dtype))
            book.embed_avg.copy_(book.embed)
            book.inited.fill_(1.0)
            residual = residual - book.decode(book.encode(residual.to(book.embed.dtype))).double()


def hf_cache_hint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub is a dependency
        return "~/.cache/huggingface/hub"


def load_pretrained(name: str, cache_dir: Optional[Path] = None, offline: bool = False) -> MusicgenBundle:
    """A MusicGen checkpoint from a local folder, the Hugging Face cache, or the Hub.

    ``name`` is a folder (e.g. one this script saved) or a Hub id such as ``facebook/musicgen-small``:
    taken from the cache when it is there, else downloaded into it by huggingface_hub (``HF_ENDPOINT``),
    as transformers' ``from_pretrained`` does, unless ``offline`` or ``HF_HUB_OFFLINE=1``.
    """
    transformers = require_transformers()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from processing.hub import hub_offline

    folder = Path(name).expanduser()
    offline = hub_offline(offline)
    cache = str(cache_dir) if cache_dir else None
    where = cache_dir or hf_cache_hint()
    if not folder.is_dir():
        try:
            folder = Path(snapshot_download(repo_id=name, local_files_only=True, cache_dir=cache))
        except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
            if offline:
                raise FinetuneError(
                    f"{name} is not in the Hugging Face cache ({where}) and nothing is downloaded offline (--offline or "
                    f"HF_HUB_OFFLINE=1). Get it once on a machine with internet: `hf download {name}` (huggingface_hub's "
                    f"CLI; copy the cache here or set HF_HOME), or pass a folder holding it with --model; --tiny trains "
                    f"a small random model instead"
                ) from exc
            folder = _download_pretrained(name, cache, where)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FinetuneError(f"{folder}: no config.json: not a transformers checkpoint")
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type != "musicgen":
        raise FinetuneError(f"{name} is a {config.model_type!r} model; this script fine-tunes MusicGen text-to-music "
                            f"models ({', '.join(PRETRAINED)}, or a checkpoint of them); for musicgen-melody use "
                            "audiocraft (see the README)")
    model = transformers.MusicgenForConditionalGeneration.from_pretrained(folder, local_files_only=True)
    try:
        processor = transformers.MusicgenProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise FinetuneError(f"{folder}: the checkpoint has no processor (tokenizer + feature extractor) files: {exc}") from exc
    return MusicgenBundle(model, processor, name)


def _download_pretrained(name: str, cache: Optional[str], where) -> Path:
    """The checkpoint's files, fetched into the cache as transformers fetches them (config, safetensors
    weights, processor files; never pickled weights: ``.bin`` files are left out), with a progress bar."""
    from huggingface_hub import snapshot_download

    from processing.hub import error_words, hub_endpoint, unreachable

    endpoint = hub_endpoint()
    offline_routes = (f"Work offline instead: `hf download {name}` on a machine with network, copy the cache "
                      f"({where}) here and pass --offline (or set HF_HUB_OFFLINE=1); or pass a checkpoint folder with "
                      "--model; --tiny trains a small random model")
    why = unreachable(name, "config.json")  # one request: a dead endpoint fails within seconds
    if why:
        raise FinetuneError(f"cannot download {name}: {why}\n{offline_routes}")
    logging.getLogger(__name__).warning("downloading %s from %s into the Hugging Face cache %s", name, endpoint, where)
    try:
        return Path(snapshot_download(repo_id=name, cache_dir=cache, endpoint=endpoint,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds; each ends the same way
        raise FinetuneError(f"cannot download {name} from {endpoint}: {error_words(exc)}\n{offline_routes}") from exc
