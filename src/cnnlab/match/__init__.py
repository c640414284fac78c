"""Template matching on CNN features: ``cnnlab match``.

``Matcher(MatchConfig(method=...)).match(template, search, box)`` finds a template in a search
image with ZNCC on colour pixels or on features of chosen backbone layers, QATM's soft mutual
nearest neighbour, or divisive input modulation (DIM), over a template pyramid, with top-k boxes
and non-maximum suppression. ``cnnlab.match.api`` has the file-level functions behind the CLI
(``match_files``, ``run_benchmark`` over a folder in the BBS layout).
"""
