"""Graph side sources: the social graph (user-user) and the knowledge graph (item-entity)."""
