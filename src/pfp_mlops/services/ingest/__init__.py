"""`pfp ingest`: a dataset export (Roboflow, Ultralytics YAML, COCO, CVAT, bare folders) → `data/`, checked.

    detect.py       which format, and its reader
    read_yolo.py    dataset YAML (Ultralytics / Roboflow / CVAT YOLO) and images/ + labels/ folders
    read_coco.py    COCO JSON with an explicit category map
    read_cvat.py    CVAT for images 1.1 XML
    checks.py       image bytes, groups and leaks, duplicates
    report.py       the validation report and its digest
    writer.py       temporary folder → links/copies, labels, CSV, classes.yaml, report → one rename into place
    service.py      run_ingest: the order of all of the above

The source is only ever read. Nothing is written to the output until every check has passed.
"""

from pfp_mlops.services.ingest.service import IngestFailed, run_ingest

__all__ = ["IngestFailed", "run_ingest"]
