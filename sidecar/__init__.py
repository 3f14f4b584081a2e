"""kensa's local service: the FastAPI app over the device's SQLite store."""

import os

# OpenCV reads its decode limit once, when it loads, so it is set before anything imports cv2:
# a second bound behind the header check of sidecar.domain.image_size (same 50 MP).
os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = "50000000"

__version__ = "0.1.0"
