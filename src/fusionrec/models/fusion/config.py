"""The fusion model's settings: optimisation (TrainConfig), the two towers, and one section per source.

Each source has its own section, switched by its name (``--set fusion.text=false``) and set by
dotted keys (``--set fusion.text.encoder=minilm``) or a TOML table (``[text]``); see
:func:`fusionrec.models.base.config_from_dict`. Switching a source off removes its module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from fusionrec.training.trainer import TrainConfig


def _unit(owner: str, **values: float) -> None:
    for name, v in values.items():
        if not 0 <= v < 1:
            raise ValueError(f"{owner}.{name} must be in [0, 1), got {v}")


def _positive(owner: str, **values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"{owner}.{name} must be >= 1, got {v}")


@dataclass(frozen=True)
class UserTowerConfig:
    """The causal Transformer over the user's history (SASRec's network, with a prefix of user tokens)."""

    layers: int = 2
    heads: int = 2
    inner: int = 256  # feed-forward width
    max_len: int = 50  # newest events read per user; also the training window
    dropout: float = 0.2
    attn_dropout: float = 0.2
    targets: int = 3  # each position is trained to predict each of the next `targets` items
    exclude_seen: bool = True  # leave the items seen earlier in the window out of a position's softmax
    label_smoothing: float = 0.0
    # data without timestamps (a set per user): a new random order of each user's items every epoch,
    # and a user vector averaged over `score_orders` random orders at scoring time
    shuffle_unordered: bool = True
    score_orders: int = 4

    def __post_init__(self) -> None:
        _positive("user", layers=self.layers, heads=self.heads, inner=self.inner, max_len=self.max_len,
                  targets=self.targets, score_orders=self.score_orders)
        _unit("user", dropout=self.dropout, attn_dropout=self.attn_dropout, label_smoothing=self.label_smoothing)


@dataclass(frozen=True)
class ItemTowerConfig:
    """Cross-modal attention over an item's content tokens, a gate over them, and the ID/content mix."""

    layers: int = 1  # fusion Transformer blocks over the content tokens (0 = none)
    inner: int = 128
    modality_dropout: float = 0.0  # chance that a content token is hidden at a training step
    # the tower runs, at each training step, on the batch's items plus this many items drawn at random;
    # the softmax still covers every item (the others read their content part from the last time the
    # tower ran on them, refreshed every epoch). Catalogues up to twice this size run whole every step.
    sampled_items: int = 2048
    # "joint": content and IDs trained together from the start; "stacked": the behaviour model first (content
    # off), then content added to it for `content_epochs` more epochs at `content_lr` x lr, kept only if it
    # improves the valid metric (without a valid part: always kept)
    schedule: str = "stacked"
    content_epochs: int = 10
    content_lr: float = 0.3

    def __post_init__(self) -> None:
        if self.layers < 0:
            raise ValueError(f"item.layers must be >= 0, got {self.layers}")
        _positive("item", inner=self.inner, sampled_items=self.sampled_items, content_epochs=self.content_epochs)
        _unit("item", modality_dropout=self.modality_dropout)
        if self.schedule not in ("joint", "stacked"):
            raise ValueError(f"item.schedule must be 'joint' or 'stacked', got {self.schedule!r}")
        if not 0 < self.content_lr <= 10:
            raise ValueError(f"item.content_lr must be in (0, 10], got {self.content_lr}")


@dataclass(frozen=True)
class IdConfig:
    """The item ID embedding (what SASRec has): warm items' behaviour."""

    enabled: bool = True
    dropout: float = 0.0  # share of items treated as unseen (ID hidden) at a training step (DropoutNet)

    def __post_init__(self) -> None:
        _unit("id", dropout=self.dropout)


@dataclass(frozen=True)
class TextConfig:
    enabled: bool = True
    encoder: str = "auto"  # "auto" (MiniLM when installed, else hashed n-grams), "minilm", "hashed" or a model folder


@dataclass(frozen=True)
class ImageConfig:
    enabled: bool = True
    size: int = 32  # side of the square pixels fed to the CNN

    def __post_init__(self) -> None:
        _positive("image", size=self.size)


@dataclass(frozen=True)
class AudioConfig:
    enabled: bool = True


@dataclass(frozen=True)
class AttributesConfig:
    enabled: bool = True  # categorical, multi-valued and numeric item columns, one token


@dataclass(frozen=True)
class KGConfig:
    enabled: bool = True  # a TransE entity token per item (the dataset's KG plus item attribute triples)
    dim: int = 64
    epochs: int = 50

    def __post_init__(self) -> None:
        _positive("kg", dim=self.dim, epochs=self.epochs)


@dataclass(frozen=True)
class ProfileConfig:
    enabled: bool = True  # user categorical / numeric fields, one token in front of the history


@dataclass(frozen=True)
class SocialConfig:
    enabled: bool = True  # the mean vector of the friends' training items, one token


@dataclass(frozen=True)
class SideConfig:
    enabled: bool = True  # other behaviours (e.g. tagging): one token, and a learned per-user boost of those items


@dataclass(frozen=True)
class EventWeightsConfig:
    enabled: bool = True  # events with a weight column (listening counts): a bucket embedding per history token
    buckets: int = 8

    def __post_init__(self) -> None:
        _positive("event_weights", buckets=self.buckets)


@dataclass(frozen=True)
class ContentMapConfig:
    """Items unseen in training: a ridge map from their content to the trained item vectors."""

    enabled: bool = True
    l2: float = 0.0  # 0: chosen on held-out warm items
    tower: bool = False  # also regress on the item tower's content-only output
    bins: int = 16  # piecewise-linear quantile bins of each numeric column (0 = the standardised value only)

    def __post_init__(self) -> None:
        if self.l2 < 0 or self.bins < 0:
            raise ValueError(f"content_map.l2 and content_map.bins must be >= 0, got {self.l2}, {self.bins}")


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised alignment of content with behaviour before next-item training (``fusionrec pretrain``)."""

    epochs: int = 0
    temperature: float = 0.1
    lr: float = 3e-3

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.temperature <= 0 or self.lr <= 0:
            raise ValueError("pretrain.epochs must be >= 0, pretrain.temperature and pretrain.lr > 0")


@dataclass(frozen=True)
class FusionConfig(TrainConfig):
    hidden: int = 64
    user: UserTowerConfig = field(default_factory=UserTowerConfig)
    item: ItemTowerConfig = field(default_factory=ItemTowerConfig)
    id: IdConfig = field(default_factory=IdConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    kg: KGConfig = field(default_factory=KGConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    social: SocialConfig = field(default_factory=SocialConfig)
    side: SideConfig = field(default_factory=SideConfig)
    event_weights: EventWeightsConfig = field(default_factory=EventWeightsConfig)
    content_map: ContentMapConfig = field(default_factory=ContentMapConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    cache_dir: str = ""  # embedding store (default $FUSIONREC_CACHE or ~/.cache/fusionrec)
    # optimisation (TrainConfig's fields), SASRec's defaults
    epochs: int = 40
    batch_size: int = 32  # windows per step
    lr: float = 1e-3
    warmup_steps: int = 100
    patience: int = 0  # the cosine schedule over `epochs` ends training; the best valid epoch is kept

    #: names these settings had before the sections (saved runs, scripts); read with a warning
    renamed_settings: ClassVar[dict[str, str]] = {
        **{k: f"user.{k}" for k in ("layers", "heads", "inner", "max_len", "dropout", "attn_dropout", "targets",
                                    "exclude_seen", "label_smoothing", "shuffle_unordered", "score_orders")},
        "fusion_layers": "item.layers", "fusion_inner": "item.inner", "modality_dropout": "item.modality_dropout",
        "id_dropout": "id.dropout", "text_encoder": "text.encoder", "image_size": "image.size", "kg_dim": "kg.dim",
        "kg_epochs": "kg.epochs", "weight_buckets": "event_weights.buckets", "content_map_l2": "content_map.l2",
        "content_map_tower": "content_map.tower", "pretrain_epochs": "pretrain.epochs",
        "pretrain_temperature": "pretrain.temperature",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("FusionConfig", hidden=self.hidden)
        if self.hidden % self.user.heads:
            raise ValueError(f"FusionConfig.hidden ({self.hidden}) must be divisible by user.heads ({self.user.heads})")

    #: the item-side content sources, in token order
    ITEM_VECTORS: ClassVar[tuple[str, ...]] = ("text", "image", "audio")
