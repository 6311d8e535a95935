"""Rendering of arm worlds to ``rgb_array`` frames (numpy HxWx3 uint8) with pillow.

Drawn: the workspace rim, goal region (green), via point (blue), pour point (purple), wipe
region and its wiped cells (tan / light), obstacle (grey), disk (orange), distractors (dull
disks), links (dark lines), joints (circles) and the end-effector (red when the magnet is on).
"""

from __future__ import annotations

import numpy as np

from autoworld.envs.arm.engine import ArmEngine, ArmState
from autoworld.envs.arm.scene import wipe_cells

VIEW = 1.1  # the frame's half-width, in reaches of the arm (at least 1 m: the standard arms)


def render_rgb(engine: ArmEngine, index: int = 0, size: int = 256,
               state: ArmState | None = None) -> np.ndarray:
    """Frame ``(size, size, 3)`` uint8 of env ``index`` (of ``state``, default the current)."""
    from PIL import Image, ImageDraw

    s = engine.state if state is None else state
    i = int(index)
    task = engine.worlds[int(engine.world_ids[i])].task
    reach = float(engine.p["links"][i].sum())
    px = size / (2 * VIEW * max(1.0, reach))  # a longer arm is drawn smaller, never clipped

    def xy(p) -> tuple[float, float]:
        return (size / 2 + float(p[0]) * px, size / 2 - float(p[1]) * px)

    def disk(draw, centre, r, fill, outline=None) -> None:
        cx, cy = xy(centre)
        rr = max(float(r) * px, 1.5)
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=fill, outline=outline)

    img = Image.new("RGB", (size, size), (236, 232, 222))
    d = ImageDraw.Draw(img)
    disk(d, (0.0, 0.0), reach, (226, 221, 208), (200, 194, 180))
    p = engine.p
    for k in range(int(s.n_distract[i])):
        disk(d, s.distract[i, k].tolist(), 0.035, (190, 180, 160))
    if task == "wipe":
        cells = wipe_cells(s.goal[i:i + 1], s.half[i:i + 1])[0]
        h = float(s.half[i]) / 3
        for k in range(9):
            cx, cy = xy(cells[k].tolist())
            col = (246, 240, 214) if bool(s.cover[i, k]) else (196, 160, 110)
            d.rectangle((cx - h * px, cy - h * px, cx + h * px, cy + h * px), fill=col,
                        outline=(150, 120, 80))
    else:
        disk(d, s.goal[i].tolist(), p["goal_r"][i], (150, 210, 150), (60, 140, 60))
    if task == "via_point":
        col = (120, 200, 240) if bool(s.via_done[i]) else (80, 140, 220)
        disk(d, s.aux[i].tolist(), p["via_r"][i], col, (40, 80, 160))
    if task == "dwell_slow":
        disk(d, s.aux[i].tolist(), p["dwell_r"][i], (200, 160, 230), (120, 70, 160))
    if task == "reach_around":
        disk(d, s.aux[i].tolist(), s.aux_r[i], (128, 128, 128), (80, 80, 80))
    if task in ("push", "pick_place"):
        disk(d, s.disk[i].tolist(), p["disk_r"][i], (240, 150, 50), (170, 90, 20))
    pts = s.pts[i, : int(engine.joint_mask[i].sum()) + 1]
    line = [xy(q.tolist()) for q in pts]
    d.line(line, fill=(60, 64, 80), width=max(2, size // 64))
    for q in pts[:-1]:
        disk(d, q.tolist(), 0.018, (90, 96, 120), (40, 40, 50))
    ee_col = (220, 40, 40) if bool(s.magnet[i]) else (240, 240, 240)
    disk(d, pts[-1].tolist(), 0.02, ee_col, (30, 30, 30))
    return np.asarray(img, dtype=np.uint8)
