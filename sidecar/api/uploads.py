"""Reading an image from a request: multipart (field ``file``) or the raw body."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile

from sidecar.api.guard import BodyTooLarge
from sidecar.errors import ImageInvalid, InvalidInput


async def read_image(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=10)
        except BodyTooLarge:
            raise
        except Exception as exc:  # python-multipart's errors carry no common base
            raise InvalidInput(f"the multipart body cannot be read: {exc}") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("send the photo in a form field named 'file'", field="file")
        data = await upload.read()
        await form.close()
    else:
        data = await request.body()
    if not data:
        raise ImageInvalid("the image is empty", reason="empty")
    return data
