"""What the book measures on the iterates: stability (``stability``), curvature and gradient
noise near a minimum (``curvature``), and Appendix C's Lie brackets, order averages and
approximate backward iterates (``approx``)."""
