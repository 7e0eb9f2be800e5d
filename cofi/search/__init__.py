"""The coarse search: regions, and the policy that picks which to train (pure)."""
