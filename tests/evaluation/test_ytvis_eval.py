"""YouTube-VIS metrics (``docs/evaluation.md``): the hand-checkable table, area ranges, errors,
the results writer and --check, and a random multi-video case against a brute-force reference
written here."""

import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import pycocotools.mask as mask_util
import pytest

from maskprop_d2.evaluation.__main__ import main as cli_main
from maskprop_d2.evaluation.results_io import (
    check_results,
    encode_mask,
    load_results,
    rle_totals,
    write_results,
)
from maskprop_d2.evaluation.ytvis_eval import STAT_NAMES, evaluate, video_iou
from tests.helpers import REPO_ROOT


def box(h, w, y0, x0, bh, bw):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0 : y0 + bh, x0 : x0 + bw] = 1
    return m


def rle(m):
    return encode_mask(m)


# ---------------------------------------------------------------- the table of docs/evaluation.md
SQ = box(64, 64, 10, 10, 20, 20)  # the 20x20 GT square
GT_SEGS = [rle(SQ), rle(SQ), rle(SQ), None]


def table_gt():
    return {
        "videos": [
            {
                "id": 1,
                "width": 64,
                "height": 64,
                "length": 4,
                "file_names": ["v/{:05d}.jpg".format(i) for i in range(4)],
            }
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {
                "id": 1,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": GT_SEGS,
                "areas": [400, 400, 400, None],
                "bboxes": [[10, 10, 20, 20]] * 3 + [None],
            }
        ],
    }


def det(segs, score=0.9, cat=1, vid=1):
    return {"video_id": vid, "category_id": cat, "score": score, "segmentations": segs}


HALF = box(64, 64, 10, 10, 20, 10)
ELSEWHERE = box(64, 64, 40, 40, 20, 20)
TABLE = [
    # name, detection segs, category, video IoU, AP, AP50, AP75
    ("identical", [rle(SQ), rle(SQ), rle(SQ), None], 1, 1.0, 1.0, 1.0, 1.0),
    ("extra frame 3", [rle(SQ), rle(SQ), rle(SQ), rle(SQ)], 1, 0.75, 0.6, 1.0, 1.0),
    ("half area", [rle(HALF), rle(HALF), rle(HALF), None], 1, 0.5, 0.1, 1.0, 0.0),
    ("misses frame 2", [rle(SQ), rle(SQ), None, None], 1, 2 / 3, 0.4, 1.0, 0.0),
    ("wrong class", [rle(SQ), rle(SQ), rle(SQ), None], 2, None, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize("name,segs,cat,viou,ap,ap50,ap75", TABLE, ids=[r[0] for r in TABLE])
def test_design_table(name, segs, cat, viou, ap, ap50, ap75):
    if viou is not None:
        assert video_iou(segs, GT_SEGS, 64, 64) == pytest.approx(viou, abs=1e-12)
    res = evaluate(table_gt(), [det(segs, cat=cat)])
    s = res.as_dict()
    assert (s["AP"], s["AP50"], s["AP75"]) == pytest.approx((ap, ap50, ap75), abs=1e-12)
    assert res.per_category_ap[1] == pytest.approx(ap, abs=1e-12)
    assert math.isnan(res.per_category_ap[2])  # no GT of category 2


def test_design_table_false_positive_above_true_positive():
    dets = [det([rle(ELSEWHERE)] * 3 + [None], score=0.9), det(GT_SEGS, score=0.5)]
    assert video_iou(dets[0]["segmentations"], GT_SEGS, 64, 64) == 0.0
    assert video_iou(dets[1]["segmentations"], GT_SEGS, 64, 64) == 1.0
    s = evaluate(table_gt(), dets).as_dict()
    assert (s["AP"], s["AP50"], s["AP75"]) == pytest.approx((0.5, 0.5, 0.5), abs=1e-12)
    assert s["AR1"] == 0.0 and s["AR10"] == 1.0 and s["AR100"] == 1.0


def test_perfect_is_exactly_one_and_undefined_is_minus_one():
    s = evaluate(table_gt(), [det(GT_SEGS)]).as_dict()
    # the 20x20 GT (area 400) is small: medium/large have no GT -> -1
    assert s == {
        "AP": 1.0,
        "AP50": 1.0,
        "AP75": 1.0,
        "APs": 1.0,
        "APm": -1.0,
        "APl": -1.0,
        "AR1": 1.0,
        "AR10": 1.0,
        "AR100": 1.0,
        "ARs": 1.0,
        "ARm": -1.0,
        "ARl": -1.0,
    }


def test_empty_results_score_zero():
    res = evaluate(table_gt(), [])
    assert res.as_dict() == {
        "AP": 0.0,
        "AP50": 0.0,
        "AP75": 0.0,
        "APs": 0.0,
        "APm": -1.0,
        "APl": -1.0,
        "AR1": 0.0,
        "AR10": 0.0,
        "AR100": 0.0,
        "ARs": 0.0,
        "ARm": -1.0,
        "ARl": -1.0,
    }
    assert res.per_category_ap[1] == 0.0
    lines = res.summary().splitlines()
    assert len(lines) == 12
    assert (
        lines[0]
        == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000"
    )
    assert (
        lines[4]
        == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000"
    )
    assert (
        lines[6]
        == " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.000"
    )


def test_gt_formats_polygon_and_uncompressed_rle():
    gt = table_gt()
    poly = [[10, 10, 30, 10, 30, 30, 10, 30]]  # about the square, as a polygon
    poly_mask = _decode(poly, 64, 64)  # pycocotools' rasterisation
    unc = {"size": [64, 64], "counts": _uncompressed(SQ)}
    assert (
        mask_util.frPyObjects(unc, 64, 64)["counts"]
        == mask_util.encode(np.asfortranarray(SQ))["counts"]
    )
    gt["annotations"][0]["segmentations"] = [poly, unc, GT_SEGS[2], None]
    gt["annotations"][0].pop("areas")
    segs = [rle(poly_mask), rle(SQ), rle(SQ), None]
    assert evaluate(gt, [det(segs)]).stats[0] == 1.0
    assert video_iou([None, rle(SQ), None, None], [None, unc, None, None], 64, 64) == 1.0
    assert video_iou([rle(poly_mask)], [poly], 64, 64) == 1.0


def _uncompressed(m):
    """Column-major run lengths of a binary mask (the uncompressed RLE of COCO)."""
    flat = np.asarray(m, dtype=np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.r_[0, change, flat.size]
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0] + runs


# ---------------------------------------------------------------- area ranges (300 x 300)
def area_gt(anns, length=2):
    return {
        "videos": [{"id": 7, "width": 300, "height": 300, "length": length}],
        "categories": [{"id": 3, "name": "thing"}],
        "annotations": [
            dict(
                id=i + 1,
                video_id=7,
                category_id=3,
                iscrowd=a.get("iscrowd", 0),
                segmentations=a["segs"],
            )
            for i, a in enumerate(anns)
        ],
    }


def test_area_ranges_official_semantics():
    small = box(300, 300, 0, 0, 100, 100)  # 10000 <= 128^2: small
    medium = box(300, 300, 100, 100, 200, 200)  # 40000: medium
    large = box(300, 300, 0, 0, 260, 260)  # 67600 > 256^2: large
    fp = box(300, 300, 200, 0, 100, 100)  # a small false positive, no overlap >= .5 with any GT
    gt = area_gt([{"segs": [rle(m)] * 2} for m in (small, medium, large)])
    dets = [
        det([rle(fp)] * 2, score=0.9, cat=3, vid=7),
        det([rle(medium)] * 2, score=0.8, cat=3, vid=7),
    ]
    s = evaluate(gt, dets).as_dict()
    # all: FP then TP, 1 of 3 GTs: precision 1/2 up to recall 1/3 (recall points 0..0.33: 34)
    assert s["AP"] == pytest.approx(34 * 0.5 / 101, abs=1e-12)
    assert s["AR100"] == pytest.approx(1 / 3, abs=1e-12) and s["AR1"] == 0.0
    # small: the medium GT is ignored, so is the detection matched to it; the small FP counts
    assert s["APs"] == 0.0 and s["ARs"] == 0.0
    # medium: the unmatched small FP is outside the range -> ignored; the TP alone: AP 1
    assert s["APm"] == 1.0 and s["ARm"] == 1.0
    # large: its GT is missed
    assert s["APl"] == 0.0 and s["ARl"] == 0.0


def test_area_bounds_inclusive_and_mean_over_present_frames():
    b128 = box(300, 300, 0, 0, 128, 128)  # exactly 128^2: small and medium
    s = evaluate(
        area_gt([{"segs": [rle(b128)] * 2}]), [det([rle(b128)] * 2, cat=3, vid=7)]
    ).as_dict()
    assert (s["APs"], s["APm"], s["APl"]) == (1.0, 1.0, -1.0)
    # present only in frame 0 with 170x170 = 28900: medium (absent frames are not averaged in;
    # averaging them in as 0 would give 14450, small)
    b170 = box(300, 300, 0, 0, 170, 170)
    s = evaluate(
        area_gt([{"segs": [rle(b170), None]}]), [det([rle(b170), None], cat=3, vid=7)]
    ).as_dict()
    assert (s["APs"], s["APm"], s["APl"]) == (-1.0, 1.0, -1.0)
    # mean of 200x200 and 100x100 = 25000: medium
    segs = [rle(box(300, 300, 0, 0, 200, 200)), rle(box(300, 300, 0, 0, 100, 100))]
    s = evaluate(area_gt([{"segs": segs}]), [det(segs, cat=3, vid=7)]).as_dict()
    assert (s["APs"], s["APm"], s["APl"]) == (-1.0, 1.0, -1.0)
    # GT area comes from its "areas" field when given (here: says large)
    gt = area_gt([{"segs": segs}])
    gt["annotations"][0]["areas"] = [70000, 70000]
    s = evaluate(gt, [det(segs, cat=3, vid=7)]).as_dict()
    assert (s["APs"], s["APm"], s["APl"]) == (-1.0, -1.0, 1.0)


def test_crowd_absorbs_detections_and_max_dets():
    h = w = 64
    a, c = box(h, w, 0, 0, 20, 20), box(h, w, 30, 30, 30, 30)
    gt = {
        "videos": [{"id": 1, "width": w, "height": h, "length": 2}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": [rle(a)] * 2},
            {"id": 2, "video_id": 1, "category_id": 1, "iscrowd": 1, "segmentations": [rle(c)] * 2},
        ],
    }
    dets = [det([rle(c)] * 2, 0.95), det([rle(c)] * 2, 0.9), det([rle(a)] * 2, 0.5)]
    s = evaluate(gt, dets).as_dict()
    assert s["AP"] == 1.0 and s["AR1"] == 0.0 and s["AR10"] == 1.0  # both crowd dets ignored
    # only a crowd GT: nothing defined
    gt["annotations"] = gt["annotations"][1:]
    assert evaluate(gt, dets).as_dict()["AP"] == -1.0
    # at most 100 detections per (video, category): the true one ranked 101st is dropped
    gt = table_gt()
    dets = [det([rle(ELSEWHERE)] * 3 + [None], score=0.9) for _ in range(100)]
    dets.append(det(GT_SEGS, score=0.9))  # equal score, later: stable sort puts it last
    s = evaluate(gt, dets).as_dict()
    assert s["AR100"] == 0.0
    dets[-1]["score"] = 0.91
    assert evaluate(gt, dets).as_dict()["AR1"] == 1.0


# ---------------------------------------------------------------- errors
def test_errors_are_clear():
    gt = table_gt()
    with pytest.raises(ValueError, match=r"video_id=1.*3 segmentations for a video of 4 frames"):
        evaluate(gt, [det(GT_SEGS[:3])])
    with pytest.raises(ValueError, match=r"unknown video_id 5"):
        evaluate(gt, [det(GT_SEGS, vid=5)])
    with pytest.raises(ValueError, match=r"unknown category_id 9"):
        evaluate(gt, [det(GT_SEGS, cat=9)])
    small = rle(np.zeros((32, 64), np.uint8))
    with pytest.raises(
        ValueError, match=r"video_id=1\) frame 1: mask size 32x64 != video size 64x64"
    ):
        evaluate(gt, [det([GT_SEGS[0], small, None, None])])
    bad = dict(GT_SEGS[0], counts=GT_SEGS[0]["counts"][:-3])
    with pytest.raises(ValueError, match=r"frame 0: RLE covers \d+ pixels"):
        evaluate(gt, [det([bad, None, None, None])])
    with pytest.raises(ValueError, match="malformed"):
        evaluate(gt, [det([dict(GT_SEGS[0], counts="\x01\x02"), None, None, None])])
    no_ann = {k: v for k, v in gt.items() if k != "annotations"}
    with pytest.raises(ValueError, match="no 'annotations'"):
        evaluate(no_ann, [])
    gt["annotations"][0]["segmentations"] = GT_SEGS[:2]
    with pytest.raises(ValueError, match=r"ground truth.*2 segmentations for a video of 4"):
        evaluate(gt, [])


def test_check_results_messages():
    gt = table_gt()
    assert check_results(gt, [det(GT_SEGS)]) == []
    errs = check_results(gt, {"a": 1})
    assert len(errs) == 1 and "list" in errs[0]
    results = [
        det(GT_SEGS),
        det(GT_SEGS[:2], vid=1),
        det(GT_SEGS, vid=3),
        {"video_id": 1},
        det(GT_SEGS, score=float("nan")),
        det([{"size": [64, 64], "counts": [4096]}, None, None, None]),
        det([[[0, 0, 1, 0, 1, 1]], None, None, None]),
    ]
    errs = check_results(gt, results)
    assert errs[0].startswith("results[1] (video_id=1): 2 segmentations for a video of 4 frames")
    assert errs[1] == "results[2] (video_id=3): unknown video_id 3"
    assert errs[2].startswith("results[3]: missing key(s) category_id, score, segmentations")
    assert errs[3].startswith("results[4] (video_id=1): score must be a finite number")
    # uncompressed RLE (results[5]) is accepted, as scoring accepts it
    assert errs[4].startswith("results[6] (video_id=1) frame 0: polygons are not allowed")
    assert len(errs) == 5
    assert len(check_results(gt, results, max_errors=2)) == 2


def test_rle_totals_matches_pycocotools():
    rng = np.random.default_rng(1)
    strings, sizes = [], []
    for i in range(60):
        h, w = rng.integers(1, 50, 2)
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if i % 5 == 0:
            m[:] = i % 2
        strings.append(encode_mask(m)["counts"])
        sizes.append(int(h * w))
    big = box(720, 1280, 100, 200, 500, 700)
    strings.append(encode_mask(big)["counts"])
    sizes.append(720 * 1280)
    ok, total = rle_totals(strings)
    assert ok.all() and total.tolist() == sizes
    ok, total = rle_totals(["", "0", strings[1][:-1] + "a", "é", strings[3] + "\x7f", 5])
    assert ok.tolist() == [True, True, False, False, False, False]
    assert total[:2].tolist() == [0, 0]


# ---------------------------------------------------------------- writer + CLI
def test_writer_round_trip_and_cli(tmp_path, capsys):
    gt = table_gt()
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    results = [det(GT_SEGS, score=0.5), det([rle(ELSEWHERE)] * 3 + [None], score=0.9)]
    json_path, zip_path = write_results(results, str(tmp_path / "inference"))
    assert os.path.basename(json_path) == "results.json"
    with zipfile.ZipFile(zip_path) as z:
        assert z.namelist() == ["results.json"]
        assert json.loads(z.read("results.json")) == results
    assert load_results(zip_path) == results == load_results(json_path)
    assert sorted(os.listdir(tmp_path / "inference")) == ["results.json", "results.zip"]
    # the real command line, once
    proc = subprocess.run(
        [sys.executable, "-m", "maskprop_d2.evaluation", "--check", str(gt_path), zip_path],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    # scoring with --json (in-process)
    out = tmp_path / "stats.json"
    assert cli_main([str(gt_path), json_path, "--json", str(out), "--per-category"]) == 0
    printed = capsys.readouterr().out
    assert len([ln for ln in printed.splitlines() if ln.startswith(" Average")]) == 12
    assert "AP-cat: 0.500" in printed and "AP-dog: nan" in printed
    stats = json.loads(out.read_text())
    assert list(stats) == list(STAT_NAMES)
    assert stats["AP"] == 0.5 and stats["APm"] == -1 and stats["AR1"] == 0.0
    # --check on a broken file: non-zero, messages name the entry and video
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(json.dumps([det(GT_SEGS[:3]), det(GT_SEGS, vid=42)]))
    assert cli_main(["--check", str(gt_path), str(bad_path)]) == 1
    err = capsys.readouterr().err
    assert "results[0] (video_id=1): 3 segmentations for a video of 4 frames" in err
    assert "results[1] (video_id=42): unknown video_id 42" in err
    assert "2 problem(s) found" in err
    # scoring a broken file: non-zero with the error
    assert cli_main([str(gt_path), str(bad_path)]) == 1
    assert "video_id=1" in capsys.readouterr().err


# ---------------------------------------------------------------- brute-force cross-check
def _decode(seg, h, w):
    if seg is None:
        return None
    if isinstance(seg, list):
        return mask_util.decode(mask_util.merge(mask_util.frPyObjects(seg, h, w))).astype(bool)
    if isinstance(seg["counts"], list):
        return mask_util.decode(mask_util.frPyObjects(seg, h, w)).astype(bool)
    return mask_util.decode(seg).astype(bool)


def brute_force(gt, results):
    """The YTVIS/COCO procedure written as plainly as possible (loops everywhere)."""
    vids = {v["id"]: v for v in gt["videos"]}
    cat_ids = sorted(c["id"] for c in gt["categories"])
    # the official grids (np.linspace values; e.g. the 0.57 recall point is 0.5700000000000001)
    thrs = np.linspace(0.5, 0.95, 10).tolist()
    rec_pts = np.linspace(0.0, 1.0, 101).tolist()
    areas = [(0, 1e10), (0, 128**2), (128**2, 256**2), (256**2, 1e10)]

    def masks(segs, v):
        return [_decode(s, v["height"], v["width"]) for s in segs]

    def mean_area(ms):
        vals = [m.sum() for m in ms if m is not None and m.sum() > 0]
        return sum(vals) / len(vals) if vals else 0.0

    def viou(d, g):
        i = u = 0
        for a, b in zip(d, g, strict=True):
            if a is not None and b is not None:
                i += (a & b).sum()
                u += (a | b).sum()
            elif a is not None:
                u += a.sum()
            elif b is not None:
                u += b.sum()
        return i / u if u > 0 else 0.0

    G = {}
    for ann in gt["annotations"]:
        v = vids[ann["video_id"]]
        ms = masks(ann["segmentations"], v)
        G.setdefault((ann["video_id"], ann["category_id"]), []).append(
            (ms, mean_area(ms), bool(ann.get("iscrowd", 0)))
        )
    D = {}
    for r in results:
        ms = masks(r["segmentations"], vids[r["video_id"]])
        D.setdefault((r["video_id"], r["category_id"]), []).append((ms, mean_area(ms), r["score"]))

    # per (cat, area): list over videos of (scores, matched[t][d], ignored[t][d], n regular GT)
    E = {}
    for c in cat_ids:
        for vid in sorted(vids):
            gts = G.get((vid, c), [])
            dts = D.get((vid, c), [])
            if not gts and not dts:
                continue
            order = sorted(range(len(dts)), key=lambda i: -dts[i][2])[:100]  # sorted() is stable
            dts = [dts[i] for i in order]
            for ai, (lo, hi) in enumerate(areas):
                ign = [g[2] or g[1] < lo or g[1] > hi for g in gts]
                gorder = [i for i in range(len(gts)) if not ign[i]] + [
                    i for i in range(len(gts)) if ign[i]
                ]
                matched = [[False] * len(dts) for _ in thrs]
                dig = [[False] * len(dts) for _ in thrs]
                for ti, t in enumerate(thrs):
                    taken = set()
                    for di, d in enumerate(dts):
                        best, best_iou = None, t
                        for gi in gorder:
                            if gi in taken and not gts[gi][2]:
                                continue
                            if best is not None and not ign[best] and ign[gi]:
                                break
                            iou = viou(d[0], gts[gi][0])
                            if iou < best_iou:
                                continue
                            best, best_iou = gi, iou
                        if best is not None:
                            matched[ti][di] = True
                            dig[ti][di] = ign[best]
                            taken.add(best)
                        elif d[1] < lo or d[1] > hi:
                            dig[ti][di] = True
                E.setdefault((c, ai), []).append(
                    ([d[2] for d in dts], matched, dig, sum(not x for x in ign))
                )

    def ap_ar(c, ai, md, tsel):
        ev = E.get((c, ai), [])
        npos = sum(e[3] for e in ev)
        if not ev or npos == 0:
            return None, None
        aps, ars = [], []
        for ti in tsel:
            items = []
            for scores, matched, dig, _ in ev:
                for di in range(min(md, len(scores))):
                    items.append((scores[di], matched[ti][di], dig[ti][di]))
            items = sorted(items, key=lambda x: -x[0])  # stable
            tp = fp = 0
            prec, rec = [], []
            for _, m, ig in items:
                if ig:
                    pass
                elif m:
                    tp += 1
                else:
                    fp += 1
                prec.append(tp / (tp + fp) if tp + fp else 0.0)
                rec.append(tp / npos)
            ars.append(rec[-1] if rec else 0.0)
            total = 0.0
            for r in rec_pts:
                cands = [max(prec[i:]) for i in range(len(rec)) if rec[i] >= r]
                total += cands[0] if cands else 0.0
            aps.append(total / len(rec_pts))
        return aps, ars

    def avg(vals):
        vals = [x for x in vals if x is not None]
        return sum(vals) / len(vals) if vals else -1.0

    def stat(kind, ai, md, tsel):
        out = []
        for c in cat_ids:
            aps, ars = ap_ar(c, ai, md, tsel)
            if aps is not None:
                out.extend(aps if kind == "ap" else ars)
        return avg(out)

    allt = range(10)
    stats = [
        stat("ap", 0, 100, allt),
        stat("ap", 0, 100, [0]),
        stat("ap", 0, 100, [5]),
        stat("ap", 1, 100, allt),
        stat("ap", 2, 100, allt),
        stat("ap", 3, 100, allt),
        stat("ar", 0, 1, allt),
        stat("ar", 0, 10, allt),
        stat("ar", 0, 100, allt),
        stat("ar", 1, 100, allt),
        stat("ar", 2, 100, allt),
        stat("ar", 3, 100, allt),
    ]
    per_cat = {}
    for c in cat_ids:
        aps, _ = ap_ar(c, 0, 100, allt)
        per_cat[c] = sum(aps) / len(aps) if aps is not None else math.nan
    return stats, per_cat


def random_case(seed):
    rng = np.random.default_rng(seed)
    h = w = 280
    videos, anns, results = [], [], []
    cats = [1, 2, 5]
    for vid in range(1, 5):
        length = int(rng.integers(2, 5))
        videos.append({"id": vid * 10, "width": w, "height": h, "length": length})
        for _ in range(int(rng.integers(1, 4))):
            cat = int(rng.choice(cats))
            size = int(rng.choice([60, 100, 150, 200, 270]))
            y, x = (int(v) for v in rng.integers(0, h - size + 1, 2))
            frames = []
            for _ in range(length):
                if rng.random() < 0.2:
                    frames.append(None)
                    continue
                s = max(10, size + int(rng.integers(-20, 21)))
                frames.append(box(h, w, y, x, min(s, h - y), min(s, w - x)))
            if all(m is None for m in frames):
                frames[0] = box(h, w, y, x, size, size)
            fmt = int(rng.integers(0, 3))
            segs = []
            for m in frames:
                if m is None:
                    segs.append(None)
                elif fmt == 0:
                    segs.append(rle(m))
                elif fmt == 1:
                    segs.append({"size": [h, w], "counts": _uncompressed(m)})
                else:
                    ys, xs = np.nonzero(m)
                    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                    segs.append(
                        [
                            [
                                float(x0),
                                float(y0),
                                float(x1),
                                float(y0),
                                float(x1),
                                float(y1),
                                float(x0),
                                float(y1),
                            ]
                        ]
                    )
            anns.append(
                {
                    "id": len(anns) + 1,
                    "video_id": vid * 10,
                    "category_id": cat,
                    "iscrowd": int(rng.random() < 0.15),
                    "segmentations": segs,
                }
            )
            # detections: noisy copies (some with the wrong class), in several copies
            for _ in range(int(rng.integers(0, 4))):
                dsegs = []
                dy, dx = (int(v) for v in rng.integers(-30, 31, 2))
                for m in frames:
                    if m is None or rng.random() < 0.15:
                        dsegs.append(None if rng.random() < 0.7 else rle(box(h, w, 0, 0, 40, 40)))
                    else:
                        dsegs.append(rle(np.roll(np.roll(m, dy, 0), dx, 1)))
                dcat = cat if rng.random() < 0.8 else int(rng.choice(cats))
                score = float(np.round(rng.random(), 1))  # ties on purpose
                results.append(det(dsegs, score, dcat, vid * 10))
        for _ in range(int(rng.integers(0, 4))):  # false positives
            size = int(rng.choice([30, 130, 265]))
            y, x = (int(v) for v in rng.integers(0, h - size + 1, 2))
            dsegs = [
                rle(box(h, w, y, x, size, size)) if rng.random() < 0.8 else None
                for _ in range(length)
            ]
            results.append(
                det(dsegs, float(np.round(rng.random(), 1)), int(rng.choice(cats)), vid * 10)
            )
    # a (video, category) with more than 10 detections: AR10 < AR100 possible
    v0 = videos[0]
    for i in range(12):
        dsegs = [rle(box(h, w, 5 * i, 5 * i, 120, 120))] * v0["length"]
        results.append(det(dsegs, 0.05 + 0.01 * i, 1, v0["id"]))
    anns.append(
        {
            "id": len(anns) + 1,
            "video_id": v0["id"],
            "category_id": 1,
            "iscrowd": 0,
            "segmentations": [rle(box(h, w, 0, 0, 120, 120))] * v0["length"],
        }
    )
    gt = {
        "videos": videos,
        "annotations": anns,
        "categories": [{"id": c, "name": "c{}".format(c)} for c in cats + [9]],
    }
    return gt, results


@pytest.mark.parametrize("seed", [1, 5, 8, 11])
def test_random_case_matches_brute_force(seed):
    gt, results = random_case(seed)
    res = evaluate(gt, results)
    stats, per_cat = brute_force(gt, results)
    assert res.stats.tolist() == pytest.approx(stats, abs=1e-9)
    assert set(res.per_category_ap) == set(per_cat)
    for c, v in per_cat.items():
        if math.isnan(v):
            assert math.isnan(res.per_category_ap[c])
        else:
            assert res.per_category_ap[c] == pytest.approx(v, abs=1e-9)
    # these seeds have crowd GTs, and non-trivial values
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert 0 < stats[0] < 1 and sum(x > -1 for x in stats) >= 10


def test_single_frame_videos_match_pycocotools_cocoeval(capsys):
    """With one-frame videos the video IoU is the mask IoU: COCOeval (segm, YTVIS area ranges)
    is then an independent reference (no crowd GTs: COCO scores crowd IoU differently)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, results = random_case(3)
    for a in gt["annotations"]:
        a["iscrowd"] = 0
    # keep frame 0 only
    for v in gt["videos"]:
        v["length"] = 1
    gt["annotations"] = [
        dict(a, segmentations=a["segmentations"][:1])
        for a in gt["annotations"]
        if a["segmentations"][0] is not None
    ]
    results = [dict(r, segmentations=r["segmentations"][:1]) for r in results]
    results = [r for r in results if r["segmentations"][0] is not None]
    res = evaluate(gt, results)

    images = [{"id": v["id"], "width": v["width"], "height": v["height"]} for v in gt["videos"]]
    anns = []
    for a in gt["annotations"]:
        m = _decode(a["segmentations"][0], 280, 280)
        r = rle(m)
        anns.append(
            {
                "id": a["id"],
                "image_id": a["video_id"],
                "category_id": a["category_id"],
                "iscrowd": 0,
                "segmentation": r,
                "area": float(m.sum()),
                "bbox": mask_util.toBbox(r).tolist(),
            }
        )
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": anns, "categories": gt["categories"]}
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(
        [
            {
                "image_id": r["video_id"],
                "category_id": r["category_id"],
                "score": r["score"],
                "segmentation": r["segmentations"][0],
            }
            for r in results
        ]
    )
    ev = COCOeval(coco_gt, coco_dt, "segm")
    ev.params.areaRng = [[0, 1e10], [0, 128**2], [128**2, 256**2], [256**2, 1e10]]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    capsys.readouterr()
    assert res.stats.tolist() == pytest.approx(ev.stats.tolist(), abs=1e-9)
    assert sum(x > -1 for x in ev.stats) >= 10 and 0 < ev.stats[0] < 1
