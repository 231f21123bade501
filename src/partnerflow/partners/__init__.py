"""Partners (affiliates, influencers, creators) and their lifecycle.

Invariants: status moves only along the lifecycle graph in `rules.TRANSITIONS`
(applied -> approved | rejected; approved -> active; active <-> suspended; any -> banned);
every move is audited by the caller.
"""
