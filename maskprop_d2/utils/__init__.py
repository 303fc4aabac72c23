"""Leaf helpers shared by every layer of the package (nothing here imports the rest of it).

* :mod:`.masks`: mask geometry on tensors (soft and hard IoU, boxes from masks);
* :mod:`.rle`: COCO run-length encoding (encode, decode, checks), numpy and pycocotools only;
* :mod:`.file_io`: publishing files atomically.

The submodules are not imported here, so that a torch-free caller (the evaluation CLI) can use
:mod:`.rle` and :mod:`.file_io` without importing torch.
"""
