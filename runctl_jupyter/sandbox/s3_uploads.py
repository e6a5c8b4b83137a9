"""Open multipart uploads as S3 lists them, where moto does not.

moto answers ListMultipartUploads with one fixed ``Initiated`` (2010-11-10) for every upload and ignores
``max-uploads`` and the markers. Here CreateMultipartUpload stamps each upload with the sandbox clock,
and the listing carries those instants (so ``sandbox clock --advance 2d`` ages an upload as a day's
wait would) and is paginated as S3 paginates it: by key, then by initiation, at most ``max-uploads``
(default 1,000) a page, ``NextKeyMarker`` / ``NextUploadIdMarker`` to go on.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs

from .clock import iso

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_EPOCH = "1970-01-01T00:00:00.000Z"


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


class MultipartUploads:
    def __init__(self, world: Any) -> None:
        self.world = world
        self._lock = threading.Lock()
        self._initiated: dict[str, str] = {}  # upload id → ISO instant (sandbox clock)

    def handle(self, environ: dict[str, Any], forward: Any) -> Any | None:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if "uploads" not in query:
            return None
        method = environ.get("REQUEST_METHOD")
        if method == "POST":
            moment = iso(self.world.clock.now())
            response = forward(environ)
            if response.status_code == 200:
                upload_id = ET.fromstring(response.get_data()).findtext(_q("UploadId"))
                if upload_id:
                    with self._lock:
                        self._initiated[upload_id] = moment
            return response
        if method == "GET":
            response = forward(environ)
            if response.status_code == 200:
                response.set_data(self._listing(response.get_data(), query))
            return response
        return None

    def _listing(self, body: bytes, query: dict[str, list[str]]) -> bytes:
        ET.register_namespace("", NS)
        root = ET.fromstring(body)
        uploads = root.findall(_q("Upload"))
        for up in uploads:
            root.remove(up)
            with self._lock:
                moment = self._initiated.get(up.findtext(_q("UploadId")) or "", _EPOCH)
            node = up.find(_q("Initiated"))
            if node is None:
                node = ET.SubElement(up, _q("Initiated"))
            node.text = moment
        uploads.sort(key=lambda up: (up.findtext(_q("Key")) or "", up.findtext(_q("Initiated")) or "",
                                     up.findtext(_q("UploadId")) or ""))
        key_marker = query.get("key-marker", [""])[0]
        id_marker = query.get("upload-id-marker", [""])[0]
        if key_marker:
            after = [up for up in uploads if (up.findtext(_q("Key")) or "") > key_marker]
            if id_marker:  # the rest of the marker key's uploads, after that one
                same = [up for up in uploads if up.findtext(_q("Key")) == key_marker]
                ids = [up.findtext(_q("UploadId")) for up in same]
                same = same[ids.index(id_marker) + 1:] if id_marker in ids else []
                after = same + after
            uploads = after
        try:
            limit = max(0, min(1000, int(query.get("max-uploads", ["1000"])[0])))
        except ValueError:
            limit = 1000
        page, truncated = uploads[:limit], len(uploads) > limit
        for tag, text in (("MaxUploads", str(limit)), ("IsTruncated", "true" if truncated else "false"),
                          ("KeyMarker", key_marker), ("UploadIdMarker", id_marker)):
            node = root.find(_q(tag))
            if node is None:
                node = ET.SubElement(root, _q(tag))
            node.text = text
        for tag in ("NextKeyMarker", "NextUploadIdMarker"):
            node = root.find(_q(tag))
            if node is not None:
                root.remove(node)
        if truncated and page:
            ET.SubElement(root, _q("NextKeyMarker")).text = page[-1].findtext(_q("Key"))
            ET.SubElement(root, _q("NextUploadIdMarker")).text = page[-1].findtext(_q("UploadId"))
        for up in page:
            root.append(up)
        return ET.tostring(root, xml_declaration=True, encoding="UTF-8")
