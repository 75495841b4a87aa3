"""The fusion Transformer: every item signal fused per item, a causal Transformer per user.

A composition (:mod:`.model`) of small parts, each in its own module:

* **sources** (:mod:`.sources`): the item ID, text, image, audio, attributes and KG tokens of an item;
  the profile, social and side-event tokens of a user; event-weight buckets of history events. Each
  has its own config section (``--set fusion.<source>=false`` removes it) and state.
* **item tower** (:mod:`.item_tower`): cross-modal attention over an item's content tokens, a gate
  over them by item context, and an adaptive mix with the ID embedding
  (``v = (1 - alpha) e + alpha c``): cold and rare items lean on content, warm items on behaviour, and
  with ``alpha = 0`` the model is exactly SASRec.
* **user tower** (:mod:`.user_tower`): SASRec's causal Transformer over the history's item vectors
  with the user tokens in front. Score = user vector . item vector (retrieval is a maximum inner
  product search; new items need no retraining).
* **training** (:mod:`.training`): SASRec's loss over the fused vectors; the item tower runs on the
  step's items (plus a uniform sample), the softmax covers every item, so an epoch costs about a
  SASRec epoch. Optional contrastive pretraining (:mod:`.pretrain`).
* **cold start**: a ridge map from content to the trained vectors for items unseen in training
  (:mod:`fusionrec.models.content_map`); new items and users are added from their rows.
* **behaviour as a set**: ``fusion`` is wrapped by default in the gated item-item prior
  (:mod:`fusionrec.models.prior`; ``--set fusion.prior=false`` drops it).

Examples
--------
>>> from fusionrec.data import synthetic
>>> ds = synthetic.generate(synthetic.SyntheticConfig(n_users=40, n_items=20, media=False))
>>> cfg = FusionConfig(hidden=8, epochs=1, text=TextConfig(encoder="hashed"), kg=KGConfig(enabled=False))
>>> m = Fusion(cfg).fit(ds)
>>> m.score([0]).shape
(1, 20)
"""

from fusionrec.models.fusion.config import (
    AttributesConfig,
    AudioConfig,
    ContentMapConfig,
    EventWeightsConfig,
    FusionConfig,
    IdConfig,
    ImageConfig,
    ItemTowerConfig,
    KGConfig,
    PretrainConfig,
    ProfileConfig,
    SideConfig,
    SocialConfig,
    TextConfig,
    UserTowerConfig,
)
from fusionrec.models.fusion.model import Fusion, FusionNet
from fusionrec.models.fusion.pretrain import behaviour_vectors

__all__ = ["AttributesConfig", "AudioConfig", "ContentMapConfig", "EventWeightsConfig", "Fusion", "FusionConfig",
           "FusionNet", "IdConfig", "ImageConfig", "ItemTowerConfig", "KGConfig", "PretrainConfig", "ProfileConfig",
           "SideConfig", "SocialConfig", "TextConfig", "UserTowerConfig", "behaviour_vectors"]
