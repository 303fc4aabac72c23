"""Classes of the synthetic YouTube-VIS dataset (ids, names, visualisation colours).

A module of its own, with no imports: registering the ``synthetic_ytvis_*`` splits needs the class
list, and importing the generator for it would import ``maskprop_d2.data.synthetic`` before
``python -m maskprop_d2.data.synthetic`` runs it (a runpy warning).
"""

SYNTHETIC_CATEGORIES = [
    {"id": 1, "name": "disc", "supercategory": "shape"},  # round, radial gradient
    {"id": 2, "name": "square", "supercategory": "shape"},  # rotated square, stripes
    {"id": 3, "name": "triangle", "supercategory": "shape"},  # equilateral, dots
    {"id": 4, "name": "ellipse", "supercategory": "shape"},  # 1 : 0.6 ellipse, checkerboard
    {"id": 5, "name": "star", "supercategory": "shape"},  # 5-point star, concentric rings
]
# Visualisation colours (RGB) per category, in SYNTHETIC_CATEGORIES order. Rendering does not use
# them: instance colours are random.
SYNTHETIC_COLORS = [
    [230, 25, 75],
    [0, 130, 200],
    [60, 180, 75],
    [245, 130, 48],
    [145, 30, 180],
]
