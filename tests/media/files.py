"""Pictures for the image path's tests and benchmark, good and bad, made here (no binary
fixtures): a phone photo with EXIF location, and every kind of file the path must refuse."""

from __future__ import annotations

import io
import random
import struct
import zlib
from functools import lru_cache

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


@lru_cache(maxsize=8)
def phone_photo(width: int = 4032, height: int = 3024, *, quality: int = 95, seed: int = 1,
                orientation: int = 6) -> bytes:
    """A JPEG like a phone camera's: textured (so it weighs what a photo weighs: ~3 MB at
    the defaults), with EXIF maker, orientation and a GPS position."""
    rng = random.Random(seed)
    size = (width // 8, height // 8)
    small = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    picture = Image.blend(base, small.resize((width, height), Image.Resampling.BILINEAR), 0.35)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Phone 15"
    exif[GPS_IFD] = {1: "N", 2: (37.0, 46.0, 30.0), 3: "W", 4: (122.0, 25.0, 10.0)}
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, exif=exif, icc_profile=b"\0" * 128)
    return out.getvalue()


def png(width: int = 64, height: int = 48, mode: str = "RGBA", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (10, 120, 200, 128) if mode == "RGBA" else 90).save(
        out, "PNG", **save
    )
    return out.getvalue()


def webp(width: int = 80, height: int = 60) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (250, 10, 10)).save(out, "WEBP")
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, *, rows: int = 1) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` 8-bit grey pixels; its data is
    ``rows`` zero rows compressed as hard as zlib can (a decompression bomb when the claim
    is believed: 1 GB of pixels in a few hundred kilobytes)."""
    raw = zlib.compress(b"\0" * ((width + 1) * rows), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG with its frame header (SOF0) rewritten to claim another size."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<script>alert(document.cookie)</script><rect width="10" height="10"/></svg>'
)
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
    b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"
EXE = b"MZ\x90\x00" + b"\x00" * 200


def truncated_jpeg() -> bytes:
    data = phone_photo(640, 480, orientation=1)
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(png(32, 32, "RGB"))
    data[40:60] = b"\xff" * 20  # inside the IDAT: bad zlib stream and CRC
    return bytes(data)


def script_after_jpeg() -> bytes:
    """A valid JPEG with an HTML payload appended (a polyglot): the pixels are kept, the
    payload is not."""
    return phone_photo(320, 240, orientation=1) + HTML
