#!/usr/bin/env python
"""Export a whole mmdetection / mmsegmentation model (configs/det, configs/seg) to ONNX, checked in onnxruntime.

    python export/export_mm.py configs/det/retinanet_cbam_resnet18_fpn_coins.py --checkpoint work_dirs/.../best.pth
    python export/export_mm.py configs/seg/upernet_cbam_resnet18_coins.py --output runs/onnx/upernet.onnx

Detection: a single-stage detector's raw head outputs (cls_score_<level>, bbox_pred_<level>); anchors, decoding and
NMS stay outside. Segmentation: EncoderDecoder logits at the input size. Batch dynamic, size fixed; the data
preprocessor's mean / std and the class names go to the metadata.
"""

import argparse
from pathlib import Path

from visiongates.cli import run_cli


def main() -> int:
    from visiongates.extras import require_mm

    require_mm("export/export_mm.py")
    from visiongates.export.mm import export_mm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("config")
    parser.add_argument("--checkpoint", default=None, help="mmengine checkpoint (default: fresh weights)")
    parser.add_argument("--output", default=None, help="default: runs/onnx/<config name>.onnx")
    parser.add_argument("--img-size", type=int, default=None, help="square input size (default: the config's)")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    output = args.output or Path("runs/onnx") / f"{Path(args.config).stem}.onnx"
    report = export_mm(args.config, output, args.checkpoint, args.img_size, args.opset)
    print(
        f"wrote {report.path} in {report.seconds:.1f} s: {report.info.task}, input "
        f"{'x'.join(map(str, report.info.input_size))}, outputs {', '.join(report.output_names)}"
    )
    ok = report.parity <= args.tolerance
    print(f"onnxruntime vs PyTorch, every output: max abs diff {report.parity:.2e} {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(main)
