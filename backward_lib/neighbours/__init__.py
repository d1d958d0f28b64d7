"""The models of the two neighbouring results: the two-timescale model (``two_timescale``) and
AGNES, the accelerated method behind benign nonconvexity (``agnes``)."""
