"""tools/prop_stage_ablation.py: valid arms, and it reads prop_head_accuracy's table rows."""

from tests.helpers import load_script, tiny_cfg

abl = load_script("prop_stage_ablation", "tools", "prop_stage_ablation.py")


def test_every_arm_is_a_valid_override_of_the_stage_config():
    from detectron2.modeling import build_model

    for name, opts in abl.ARMS.items():
        cfg = tiny_cfg()
        cfg.merge_from_file(abl.bc.REPO + "/" + abl.STAGE_CONFIG)
        cfg.merge_from_list(opts)
        cfg.MODEL.WEIGHTS = ""
        model = build_model(cfg)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all(n.startswith("roi_heads.mask_prop_head.") for n in trainable), name
    slugs = [abl.slug(n) for n in abl.ARMS]
    assert len(set(slugs)) == len(slugs) and all(s and s[-1] != "_" for s in slugs)


def test_reads_the_head_and_flow_rows_of_the_accuracy_table():
    head = ("| MaskProp head (crops 24×24) | 0.705 | 0.740 | 0.756 / 0.706 / 0.644 "
            "| 0.799 / 0.741 / 0.670 |")
    flow = ("| OpenCV DIS flow warp (image resolution) | 0.742 | 0.768 | 0.8 / 0.7 / 0.6 "
            "| 0.9 / 0.8 / 0.7 |")
    m = abl.HEAD_ROW.match(head)
    assert [c.strip() for c in m.group(1).split("|")][-1] == "0.799 / 0.741 / 0.670"
    assert abl.FLOW_ROW.match(flow) and not abl.HEAD_ROW.match(flow)


def test_reads_the_first_table_of_a_two_table_report():
    report = [
        "| setting | soft IoU | hard IoU | soft IoU at δ = ±1 | hard IoU at δ = ±1 |",
        "| OpenCV DIS flow warp (image resolution) | 0.742 | 0.768 | 0.8 | 0.9 |",
        "| MaskProp head (crops 24×24) | 0.705 | 0.740 | 0.756 | 0.799 |",
        "| setting | centroid error | area ratio |",
        "| OpenCV DIS flow warp (image resolution) | 0.34 | 0.97 1.00 1.02 |",
        "| MaskProp head (crops 24×24) | 0.47 | 0.99 1.04 1.12 |",
    ]
    head, flow = abl.read_rows(report)
    assert head == ["0.705", "0.740", "0.756", "0.799"]
    assert flow == ["0.742", "0.768", "0.8", "0.9"]
    assert abl.read_rows(report[:1]) == (None, None)
