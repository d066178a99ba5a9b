"""Import the crops made by scripts/detect_lfw.py into facever's CropCache (same pipeline).

Usage: python scripts/seed_crop_cache.py lfw_mtcnn.npz LFW_ROOT CACHE_DIR
"""
import sys
from pathlib import Path

import numpy as np

from facever.training.datasets import CropCache, file_sha256

src, lfw_root, cache_dir = sys.argv[1:4]
data = np.load(src)
names = data["names"].tolist()
keys = [file_sha256(Path(lfw_root) / "lfw-deepfunneled" / n) for n in names]
cache = CropCache(cache_dir)
cache.add(keys, data["crops"], data["landmarks"], data["detected"])
cache.save()
print(len(cache), "crops cached;", int((~data["detected"]).sum()), "from annotation fallback")
