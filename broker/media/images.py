"""One uploaded picture in, one safe picture out (pure: bytes to bytes, no I/O).

:func:`prepare` guarantees, for whatever bytes it is given:

* **Type by content**: only JPEG, PNG and WebP are decoded, recognised by their first
  bytes (:func:`sniff`), never by a file name or a declared content type; anything else
  (SVG and other XML or HTML, HEIC/HEIF, AVIF, GIF, PDF, ...) is refused with
  :class:`~broker.media.errors.UnsupportedImage` naming what it looked like. Pillow is
  told the one format to use, so a file cannot pick another decoder.
* **Bounded work**: the size is checked first (:attr:`ImageRules.max_bytes`), then the
  dimensions from the header, before any pixel is decoded (:attr:`ImageRules.max_pixels`
  for JPEG, which is decoded at 1/2 to 1/8 scale by the JPEG decoder itself, and the
  smaller :attr:`ImageRules.max_decoded_pixels` for PNG and WebP, decoded whole;
  :attr:`ImageRules.max_input_edge` for either side). Pillow's own decompression-bomb
  guard stays on behind these. Only the first frame of an animation is used.
* **Nothing of the original survives**: the picture is turned upright by its EXIF
  orientation, scaled to at most :attr:`ImageRules.max_edge` pixels on its longer side and
  re-encoded from its pixels (JPEG, or PNG when it has transparency). No EXIF (so no
  location), no XMP, no ICC profile, no comments or text chunks are written.
* Every failure is a typed error (:class:`~broker.media.errors.BadImage` for a corrupt,
  truncated or oversized picture), never another exception.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from broker.media.errors import BadImage, ImageTooLarge, UnsupportedImage

ACCEPTED = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}  # sniffed kind -> Pillow format
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})


@dataclass(frozen=True, slots=True)
class ImageRules:
    """What an upload may be and what is made of it."""

    max_bytes: int = 10 * 1024 * 1024  # an upload, as sent
    max_pixels: int = 64_000_000  # JPEG (decoded scaled down): a 48-64 MP phone camera
    max_decoded_pixels: int = 24_000_000  # PNG and WebP, decoded at full size
    max_input_edge: int = 20_000
    max_edge: int = 1600  # the longer side of what is kept
    jpeg_quality: int = 85


@dataclass(frozen=True, slots=True)
class Prepared:
    """The re-encoded picture: its bytes, type and size."""

    data: bytes
    media_type: str  # image/jpeg or image/png
    width: int
    height: int


def sniff(data: bytes) -> str:
    """What ``data`` is by its first bytes: ``jpeg``, ``png``, ``webp`` (accepted) or what
    it looks like otherwise (``svg``, ``xml``, ``html``, ``heic``, ``avif``, ``gif``,
    ``bmp``, ``tiff``, ``pdf``, ``empty``, ``unknown``)."""
    head = data[:64]
    if not head:
        return "empty"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in AVIF_BRANDS:
            return "avif"
        if brand in HEIF_BRANDS:
            return "heic"
        return "unknown"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"%PDF"):
        return "pdf"
    text = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<"):
        if b"<svg" in text:
            return "svg"
        return "html" if b"<html" in text or b"<!doctype html" in text else "xml"
    return "unknown"


def prepare(data: bytes, rules: ImageRules | None = None) -> Prepared:
    """Check, decode, strip, scale and re-encode one uploaded picture (module docstring)."""
    rules = rules or ImageRules()
    if len(data) > rules.max_bytes:
        raise ImageTooLarge(
            f"the picture is larger than {rules.max_bytes // (1024 * 1024)} MB",
            max_bytes=rules.max_bytes,
        )
    kind = sniff(data)
    if kind not in ACCEPTED:
        raise UnsupportedImage(
            "only JPEG, PNG and WebP pictures can be sent", format=kind
        )
    try:
        return _reencode(data, kind, rules)
    except (BadImage, UnsupportedImage):
        raise
    except Image.DecompressionBombError:
        raise BadImage("the picture is too large to open", reason="decompression_bomb") from None
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise BadImage("the picture could not be read", reason="unreadable") from None


def _reencode(data: bytes, kind: str, rules: ImageRules) -> Prepared:
    with Image.open(io.BytesIO(data), formats=[ACCEPTED[kind]]) as opened:
        width, height = opened.size  # from the header: nothing is decoded yet
        cap = rules.max_pixels if kind == "jpeg" else rules.max_decoded_pixels
        if (
            width < 1 or height < 1
            or max(width, height) > rules.max_input_edge
            or width * height > cap
        ):
            raise BadImage(
                f"the picture is {width}x{height} pixels; at most {cap // 1_000_000} "
                "megapixels can be sent",
                reason="dimensions", width=width, height=height, max_pixels=cap,
            )
        if kind == "jpeg":
            # The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding: a 12 MP photo
            # costs a quarter of its pixels, and a 64 MP one no more than a 4 MP one.
            opened.draft("RGB", _fit(width, height, rules.max_edge))
        # Scaled first (in place: the EXIF stays readable), turned upright after, which
        # costs less than turning the full picture.
        opened.thumbnail((rules.max_edge, rules.max_edge), Image.Resampling.LANCZOS)
        picture = ImageOps.exif_transpose(opened)  # reads the EXIF; nothing writes it back
    alpha = picture.mode in ("RGBA", "LA", "PA") or (
        picture.mode == "P" and "transparency" in picture.info
    )
    wanted = "RGBA" if alpha else "RGB"
    if picture.mode != wanted:
        picture = picture.convert(wanted)
    picture.info = {}  # Pillow would otherwise write the original's ICC profile back
    out = io.BytesIO()
    if alpha:
        picture.save(out, "PNG", compress_level=6)
        media_type = "image/png"
    else:
        picture.save(out, "JPEG", quality=rules.jpeg_quality)
        media_type = "image/jpeg"
    return Prepared(out.getvalue(), media_type, picture.width, picture.height)


def _fit(width: int, height: int, edge: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most ``edge``."""
    scale = min(1.0, edge / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))
