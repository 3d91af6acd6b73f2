"""Draw the three architectures side by side (run by ``.. plot::`` at build time)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

COLORS = {
    "input": "#d9d9d9",
    "shared": "#9ecae1",
    "expert": "#9ecae1",
    "gate": "#fdd0a2",
    "mix": "#ffffff",
    "tower": "#a1d99b",
    "output": "#ffffff",
}


def box(ax, x, y, width, height, text, kind):
    """A rounded box centred on (x, y)."""
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2), width, height,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=COLORS[kind], edgecolor="black", linewidth=1,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def arrow(ax, start, end, style="-|>", color="black"):
    ax.annotate(
        "", xy=end, xytext=start,
        arrowprops={"arrowstyle": style, "color": color, "linewidth": 0.9,
                    "shrinkA": 0, "shrinkB": 0},
    )


def towers(ax, xs, y_from):
    """Two towers and their outputs above the points (x, y_from)."""
    for x, name in zip(xs, ("A", "B")):
        arrow(ax, (x, y_from), (x, 3.55))
        box(ax, x, 3.9, 1.1, 0.6, f"tower {name}", "tower")
        arrow(ax, (x, 4.2), (x, 4.6))
        box(ax, x, 4.85, 1.1, 0.45, f"task {name}\nlogits", "output")


def embedding(ax):
    box(ax, 2.0, 0.3, 3.4, 0.5, "embeddings (categorical + continuous)", "input")


def shared_bottom(ax):
    embedding(ax)
    arrow(ax, (2.0, 0.55), (2.0, 1.25))
    box(ax, 2.0, 1.75, 2.6, 0.9, "shared MLP\n(expert_layer_sizes)", "shared")
    arrow(ax, (1.3, 2.2), (1.0, 3.25))
    arrow(ax, (2.7, 2.2), (3.0, 3.25))
    towers(ax, (1.0, 3.0), 3.25)
    ax.set_title('"shared_bottom"', fontsize=10)


def experts_and_gates(ax, n_gates):
    embedding(ax)
    expert_x = (0.6, 1.4, 2.2)
    for i, x in enumerate(expert_x):
        arrow(ax, (x, 0.55), (x, 1.1))
        box(ax, x, 1.5, 0.7, 0.8, f"expert\n{i}", "expert")
    gate_x = (3.0,) if n_gates == 1 else (2.95, 3.65)
    for g, x in enumerate(gate_x):
        arrow(ax, (x if n_gates > 1 else 3.0, 0.55), (x, 1.2))
        label = "gate" if n_gates == 1 else f"gate\n{'AB'[g]}"
        box(ax, x, 1.5, 0.6 if n_gates > 1 else 0.8, 0.6, label, "gate")
    mixes = (2.0,) if n_gates == 1 else (1.0, 3.0)
    for g, mx in enumerate(mixes):
        box(ax, mx, 2.65, 0.9 if n_gates > 1 else 1.6, 0.45,
            "weighted sum" if n_gates == 1 else f"sum {'AB'[g]}", "mix")
        for x in expert_x:
            arrow(ax, (x, 1.9), (mx, 2.42), color="#3182bd")
        arrow(ax, (gate_x[g], 1.8), (mx + 0.2, 2.42), style="-|>", color="#e6550d")
    if n_gates == 1:
        arrow(ax, (1.6, 2.88), (1.0, 3.25))
        arrow(ax, (2.4, 2.88), (3.0, 3.25))
    else:
        for mx in mixes:
            arrow(ax, (mx, 2.88), (mx, 3.25))
    towers(ax, (1.0, 3.0), 3.25)


def moe(ax):
    experts_and_gates(ax, n_gates=1)
    ax.set_title('"moe": one gate for all tasks', fontsize=10)


def mmoe(ax):
    experts_and_gates(ax, n_gates=2)
    ax.set_title('"mmoe": one gate per task', fontsize=10)


figure, axes = plt.subplots(1, 3, figsize=(12, 4.6))
for ax, draw in zip(axes, (shared_bottom, moe, mmoe)):
    draw(ax)
    ax.set_xlim(-0.1, 4.1)
    ax.set_ylim(0.0, 5.2)
    ax.set_aspect("equal")
    ax.axis("off")
