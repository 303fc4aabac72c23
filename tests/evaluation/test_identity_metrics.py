"""Identity metrics (HOTA, DetA, AssA, IDF1, IDSW) through TrackEval: hand-checked cases, and
agreement with TrackEval run directly on files in its own format (random cases)."""

import json
import math
import os

import numpy as np
import pytest

from maskprop_d2.evaluation.__main__ import main as cli_main
from maskprop_d2.evaluation.identity import (
    best_category_entries,
    identity_metrics,
    trackeval_youtube_vis,
)
from maskprop_d2.evaluation.results_io import encode_mask

H, W, L = 32, 48, 4


def box(y0, x0, bh=8, bw=8, h=H, w=W):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0 : y0 + bh, x0 : x0 + bw] = 1
    return m


A = box(2, 2)  # two disjoint objects
B = box(20, 30)


def gt_of(tracks, num_cats=1, length=L):
    """tracks: list of (category_id, per-frame masks or None)."""
    return {
        "videos": [{"id": 1, "height": H, "width": W, "length": length}],
        "categories": [{"id": c + 1, "name": "c{}".format(c + 1)} for c in range(num_cats)],
        "annotations": [
            {"id": i + 1, "video_id": 1, "category_id": c, "iscrowd": 0,
             "segmentations": [None if m is None else encode_mask(m) for m in masks]}
            for i, (c, masks) in enumerate(tracks)
        ],
    }  # fmt: skip


def res_of(tracks):
    return [
        {"video_id": 1, "category_id": c, "score": s,
         "segmentations": [None if m is None else encode_mask(m) for m in masks]}
        for c, s, masks in tracks
    ]  # fmt: skip


def approx(d, **expected):
    for k, v in expected.items():
        assert d[k] == pytest.approx(v, abs=1e-12), (k, d[k], v)


# --------------------------------------------------------------------------- hand-checked
# One GT object over 4 frames, predicted with exact masks (similarity 1 at every alpha).
# HOTA = sqrt(DetA * AssA); DetA = TP / (TP + FN + FP); AssA = mean over TPs of
# TPA / (TPA + FNA + FPA); IDF1 = 2 IDTP / (2 IDTP + IDFN + IDFP); IDSW from CLEAR.


def test_perfect_prediction():
    gt = gt_of([(1, [A] * L)])
    got = identity_metrics(gt, res_of([(1, 0.9, [A] * L)]))
    approx(got, HOTA=1.0, DetA=1.0, AssA=1.0, IDF1=1.0)
    assert got["IDSW"] == 0


def test_one_object_split_into_two_tracks_halfway():
    # track 1 covers frames 0-1, track 2 frames 2-3. DetA = 4/4 = 1. Every TP: TPA = 2,
    # FNA = 2 (the GT's other two frames), FPA = 0 -> AssA = 2/4 = 0.5; HOTA = sqrt(0.5).
    # IDF1: the GT's ID matches one track on 2 frames: IDTP = 2, IDFN = 2, IDFP = 2 -> 4/8.
    # CLEAR: the GT changes track at frame 2 -> IDSW = 1.
    gt = gt_of([(1, [A] * L)])
    res = res_of([(1, 0.9, [A, A, None, None]), (1, 0.8, [None, None, A, A])])
    got = identity_metrics(gt, res)
    approx(got, HOTA=math.sqrt(0.5), DetA=1.0, AssA=0.5, IDF1=0.5)
    assert got["IDSW"] == 1


def test_two_objects_swap_ids_halfway():
    # track P: A in frames 0-1, B in frames 2-3; track Q the other way round. DetA = 8/8 = 1.
    # Every TP (e.g. A-P at frames 0, 1): TPA = 2, FNA = 4 - 2, FPA = 4 - 2 -> AssA = 1/3,
    # HOTA = sqrt(1/3). IDF1: A-P and B-Q (or A-Q, B-P) matched on 2 frames each: IDTP = 4,
    # IDFN = 4, IDFP = 4 -> 8/16 = 0.5. CLEAR: both GTs switch at frame 2 -> IDSW = 2.
    gt = gt_of([(1, [A] * L), (1, [B] * L)])
    res = res_of([(1, 0.9, [A, A, B, B]), (1, 0.8, [B, B, A, A])])
    got = identity_metrics(gt, res)
    approx(got, HOTA=math.sqrt(1 / 3), DetA=1.0, AssA=1 / 3, IDF1=0.5)
    assert got["IDSW"] == 2


def test_class_average_counts_an_empty_category_as_zero():
    # TrackEval's class-averaged row averages over all GT categories: category 2 has neither GT
    # nor predictions and contributes 0.
    gt = gt_of([(1, [A] * L)], num_cats=2)
    got = identity_metrics(gt, res_of([(1, 0.9, [A] * L)]))
    approx(got, HOTA=0.5, DetA=0.5, AssA=0.5, IDF1=0.5)
    assert got["IDSW"] == 0


def test_wrong_class_and_no_results():
    gt = gt_of([(1, [A] * L)], num_cats=2)
    got = identity_metrics(gt, res_of([(2, 0.9, [A] * L)]))
    approx(got, HOTA=0.0, DetA=0.0, AssA=0.0, IDF1=0.0)
    approx(identity_metrics(gt, []), HOTA=0.0, IDF1=0.0)


def test_a_track_repeated_under_other_categories_counts_once():
    # Each object is also reported under the other category at a lower score (what
    # CATEGORIES_PER_INSTANCE 2 writes). Scored by best category they are the two tracks alone;
    # entry by entry each copy is a false-positive track of the other category: in each
    # category TP 4, FP 4 -> DetA 0.5, AssA 1, HOTA sqrt(0.5); IDF1 = 8 / (8 + 4) = 2/3.
    gt = gt_of([(1, [A] * L), (2, [B] * L)], num_cats=2)
    single = res_of([(1, 0.9, [A] * L), (2, 0.8, [B] * L)])
    hedged = single + res_of([(2, 0.3, [A] * L), (1, 0.2, [B] * L)])
    assert identity_metrics(gt, hedged) == identity_metrics(gt, single)
    approx(identity_metrics(gt, hedged), HOTA=1.0, DetA=1.0, AssA=1.0, IDF1=1.0)
    every = identity_metrics(gt, hedged, best_category=False)
    approx(every, HOTA=math.sqrt(0.5), DetA=0.5, AssA=1.0, IDF1=2 / 3)


def test_best_category_keeps_the_highest_score_and_only_exact_copies():
    gt = gt_of([(1, [A] * L)], num_cats=2)
    # the copy under the wrong category scores higher: that one is kept, category 1 gets nothing
    wrong_first = res_of([(1, 0.4, [A] * L), (2, 0.6, [A] * L)])
    approx(identity_metrics(gt, wrong_first), HOTA=0.0, DetA=0.0)
    # masks that differ on one frame are two tracks: the second is a false positive of class 1
    near = res_of([(1, 0.9, [A] * L), (1, 0.5, [A, A, A, None])])
    assert best_category_entries(near) == near
    approx(identity_metrics(gt, near), DetA=0.5 * 4 / 7)
    # the same masks in another video are another track
    two = [dict(r, video_id=v) for r in res_of([(1, 0.9, [A] * L)]) for v in (1, 2)]
    assert best_category_entries(two) == two


def test_invalid_input_is_a_clear_error():
    gt = gt_of([(1, [A] * L)])
    with pytest.raises(ValueError, match=r"results\[0\] \(video_id=1\): 3 segmentations"):
        identity_metrics(gt, res_of([(1, 0.9, [A] * 3)]))
    gt["annotations"].append(dict(gt["annotations"][0]))
    with pytest.raises(ValueError, match="duplicate annotation id 1"):
        identity_metrics(gt, [])


# --------------------------------------------------------------------------- vs TrackEval
def _uncompressed(m):
    flat = m.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.r_[0, change, flat.size]).tolist()
    return ([0] + counts) if flat[0] else counts


def random_case(seed):
    """A random GT (mixed compressed / uncompressed RLE, polygons, crowd, absent frames, several
    videos of different sizes and lengths, no ``file_names``/``areas``) and results."""
    rng = np.random.default_rng(seed)
    videos, anns, results = [], [], []
    for vid in range(1, 4):
        h, w = int(rng.integers(12, 30)), int(rng.integers(12, 40))
        n = int(rng.integers(2, 7))
        videos.append({"id": vid, "height": h, "width": w, "length": n})
        objs = []
        for _ in range(int(rng.integers(1, 4))):
            y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
            vel = rng.integers(-2, 3, 2)
            masks = []
            for t in range(n):
                if rng.random() < 0.2:
                    masks.append(None)
                    continue
                yy = int(np.clip(y + vel[0] * t, 0, h - 4))
                xx = int(np.clip(x + vel[1] * t, 0, w - 4))
                masks.append(box(yy, xx, 4, 4, h, w))
            if all(m is None for m in masks):
                continue
            cat = int(rng.integers(1, 4))
            kind = rng.integers(3)
            segs = []
            for m in masks:
                if m is None:
                    segs.append(None)
                elif kind == 0:
                    segs.append(encode_mask(m))
                elif kind == 1:
                    segs.append({"size": [h, w], "counts": _uncompressed(m)})
                else:  # a polygon around the box (pycocotools rasterises it)
                    ys, xs = np.nonzero(m)
                    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                    segs.append([[float(x0), float(y0), float(x1), float(y0), float(x1),
                                  float(y1), float(x0), float(y1)]])  # fmt: skip
            anns.append({"id": 10 * vid + len(anns), "video_id": vid, "category_id": cat,
                         "iscrowd": int(rng.random() < 0.1), "segmentations": segs})  # fmt: skip
            objs.append((cat, masks))
        for cat, masks in objs:  # predictions: noisy copies, switches, false positives
            for _ in range(int(rng.integers(0, 3))):
                pm = []
                for m in masks:
                    if m is None or rng.random() < 0.2:
                        pm.append(None)
                    else:
                        pm.append(np.roll(m, int(rng.integers(-1, 2)), axis=int(rng.integers(2))))
                if rng.random() < 0.3 and len(objs) > 1:  # continue on another object
                    other = objs[int(rng.integers(len(objs)))][1]
                    cut = int(rng.integers(n))
                    pm = pm[:cut] + list(other[cut:])
                if all(m is None for m in pm):
                    continue
                c = cat if rng.random() < 0.8 else int(rng.integers(1, 4))
                seg = [None if m is None else encode_mask(m) for m in pm]
                if rng.random() < 0.2:  # uncompressed results are accepted too
                    seg = [None if m is None else {"size": [h, w], "counts": _uncompressed(m)}
                           for m in pm]  # fmt: skip
                results.append({"video_id": vid, "category_id": c,
                                "score": float(rng.random()), "segmentations": seg})  # fmt: skip
    cats = [{"id": c, "name": "class{}".format(c)} for c in (1, 2, 3)]
    return {"videos": videos, "categories": cats, "annotations": anns}, results


def trackeval_direct(tmp_path, gt, results):
    """TrackEval on files written here in its own format (uncompressed GT RLE, file_names,
    height/width/areas on the annotations, compressed results), independently of identity.py."""
    import pycocotools.mask as mask_util

    vids = {v["id"]: v for v in gt["videos"]}
    tgt = {"videos": [dict(v, file_names=["vid{}/{}.jpg".format(v["id"], t)
                                          for t in range(v["length"])]) for v in gt["videos"]],
           "categories": gt["categories"], "annotations": []}  # fmt: skip
    for a in gt["annotations"]:
        v = vids[a["video_id"]]
        h, w = v["height"], v["width"]
        segs, areas = [], []
        for s in a["segmentations"]:
            if s is None:
                segs.append(None)
                areas.append(None)
                continue
            if isinstance(s, list):
                s = mask_util.merge(mask_util.frPyObjects(s, h, w))
            elif isinstance(s["counts"], list):
                s = mask_util.frPyObjects(s, h, w)
            m = mask_util.decode(s)
            segs.append({"size": [h, w], "counts": _uncompressed(m)})
            areas.append(int(m.sum()))
        tgt["annotations"].append(dict(a, segmentations=segs, areas=areas, height=h, width=w))
    tres = []
    for r in results:
        v = vids[r["video_id"]]
        segs = []
        for s in r["segmentations"]:
            if s is not None and isinstance(s["counts"], list):
                s = mask_util.frPyObjects(s, v["height"], v["width"])
                s = {"size": s["size"], "counts": s["counts"].decode()}
            segs.append(s)
        tres.append(dict(r, segmentations=segs))
    gdir = tmp_path / "gt" / "youtube_vis_direct"
    tdir = tmp_path / "tr" / "youtube_vis_direct" / "t" / "data"
    gdir.mkdir(parents=True)
    tdir.mkdir(parents=True)
    (gdir / "g.json").write_text(json.dumps(tgt))
    (tdir / "r.json").write_text(json.dumps(tres))
    return trackeval_youtube_vis(str(tmp_path / "gt"), str(tmp_path / "tr"), "direct", "t")


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_equal_trackeval_run_directly(tmp_path, seed):
    gt, results = random_case(seed)
    expected = trackeval_direct(tmp_path, gt, results)
    got = identity_metrics(gt, results, best_category=False)
    assert got == expected  # exactly: the same computation on the same masks


def test_cli_identity_json(tmp_path, capsys):
    gt = gt_of([(1, [A] * L), (1, [B] * L)])
    res = res_of([(1, 0.9, [A, A, B, B]), (1, 0.8, [B, B, A, A])])
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    out = tmp_path / "stats.json"
    rc = cli_main([str(tmp_path / "gt.json"), str(tmp_path / "res.json"), "--identity",
                   "--json", str(out)])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "HOTA" in printed and "IDSW" in printed
    stats = json.loads(out.read_text())
    assert stats["HOTA"] == pytest.approx(math.sqrt(1 / 3), abs=1e-12)
    assert stats["IDF1"] == pytest.approx(0.5) and stats["IDSW"] == 2
    assert "AP" in stats and "AR100" in stats
    assert sorted(os.listdir(tmp_path)) == ["gt.json", "res.json", "stats.json"]


def test_cli_identity_all_entries(tmp_path, capsys):
    gt = gt_of([(1, [A] * L), (2, [B] * L)], num_cats=2)
    res = res_of([(1, 0.9, [A] * L), (2, 0.8, [B] * L), (2, 0.3, [A] * L), (1, 0.2, [B] * L)])
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    stats = {}
    for flag in ([], ["--identity-all-entries"]):
        out = tmp_path / "stats{}.json".format(len(flag))
        rc = cli_main([str(tmp_path / "gt.json"), str(tmp_path / "res.json"), "--identity",
                       "--json", str(out)] + flag)  # fmt: skip
        assert rc == 0
        stats[len(flag)] = json.loads(out.read_text())
    capsys.readouterr()
    assert stats[0]["HOTA"] == pytest.approx(1.0) and stats[0]["DetA"] == pytest.approx(1.0)
    assert stats[1]["DetA"] == pytest.approx(0.5) and stats[1]["HOTA"] == pytest.approx(0.5**0.5)
    assert stats[0]["AP"] == stats[1]["AP"]  # AP scores every entry either way
