"""The fusion model's sources: one module each, one token (or a few) each.

Item sources turn item indices into tokens the item tower fuses:

* :class:`~.ids.IdSource` — the learned ID embedding (behaviour of warm items);
* :class:`~.vectors.VectorSource` — a frozen modality vector (text through MiniLM, image and
  audio through CNNs aligned to behaviour), projected;
* :class:`~.attributes.AttributeSource` — categorical, multi-valued and numeric columns;
* :class:`~.kg.KGSource` — a TransE entity vector of the item's node in the knowledge graph.

User sources give the tokens in front of a user's history:

* :class:`~.profile.ProfileSource` — the user's profile fields;
* :class:`~.social.SocialSource` — the friends' items;
* :class:`~.side.SideSource` — other behaviours (tagging), plus a per-user score boost;
* :class:`~.event_weights.EventWeights` — a bucket embedding per history event with a weight.

Every source is built from the training Dataset (``build``), returns None when its data or its
switch is absent, keeps its learned weights in the network and its own non-learned state in
``state()`` / ``from_state()`` (safetensors arrays and JSON metadata).
"""

from fusionrec.models.fusion.sources.base import ItemSource, UserSource

__all__ = ["ItemSource", "UserSource"]
