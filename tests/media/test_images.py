"""The image path's pure part (:func:`broker.media.images.prepare`): what is kept of a good
picture, and a typed refusal for every bad file (wrong type by content, huge dimensions,
decompression bombs, SVG with script, corrupt or truncated data)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from broker.media.errors import BadImage, ImageTooLarge, UnsupportedImage
from broker.media.images import ImageRules, prepare, sniff
from tests.media import files


def test_a_phone_photo_is_turned_upright_scaled_and_stripped_of_everything() -> None:
    original = files.phone_photo()
    assert 2_500_000 < len(original) < 3_500_000  # "a 3 MB phone photo"
    with Image.open(io.BytesIO(original)) as raw:
        assert raw.getexif().get_ifd(files.GPS_IFD)  # the original says where it was taken
    made = prepare(original)
    assert (made.media_type, made.width, made.height) == ("image/jpeg", 1200, 1600)  # upright
    assert len(made.data) < len(original) / 4
    with Image.open(io.BytesIO(made.data)) as kept:
        assert kept.format == "JPEG"
        assert dict(kept.getexif()) == {}
        assert "exif" not in kept.info and "icc_profile" not in kept.info
        assert b"PhoneMaker" not in made.data and b"Exif" not in made.data


def test_transparency_stays_png_and_other_formats_become_jpeg() -> None:
    made = prepare(files.png(3000, 200, "RGBA", pnginfo=_text_chunk("Author", "Ana Ruiz")))
    assert (made.media_type, made.width, made.height) == ("image/png", 1600, 107)
    assert b"Ana Ruiz" not in made.data
    assert prepare(files.webp()).media_type == "image/jpeg"
    assert prepare(files.png(10, 10, "L")).media_type == "image/jpeg"
    small = prepare(files.phone_photo(200, 100, orientation=1))
    assert (small.width, small.height) == (200, 100)  # never scaled up


def _text_chunk(key: str, value: str) -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (files.SVG_WITH_SCRIPT, "svg"),
        (b"  \n" + files.SVG_WITH_SCRIPT[22:], "svg"),
        (files.HTML, "html"),
        (files.GIF, "gif"),
        (files.HEIC, "heic"),
        (files.AVIF, "avif"),
        (files.PDF, "pdf"),
        (files.EXE, "unknown"),
        (b"", "empty"),
        (b"BM" + b"\0" * 60, "bmp"),
    ],
)
def test_anything_but_jpeg_png_webp_is_refused_by_its_bytes(data: bytes, kind: str) -> None:
    assert sniff(data) == kind
    with pytest.raises(UnsupportedImage) as refused:
        prepare(data)
    assert refused.value.code == "unsupported_image"
    assert refused.value.detail == {"format": kind}


def test_a_picture_is_known_by_its_bytes_not_its_name() -> None:
    assert sniff(files.png()) == "png"
    assert sniff(files.webp()) == "webp"
    assert sniff(files.phone_photo(64, 48)) == "jpeg"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        # 10 gigapixels in a few KB: Pillow's guard refuses it as it opens the header
        (files.png_claiming(100_000, 100_000), "decompression_bomb"),
        (files.jpeg_claiming(65_000, 65_000), "decompression_bomb"),
        (files.png_claiming(6000, 6000, rows=10), "dimensions"),  # 36 MP: over PNG's cap
        (files.png_claiming(9000, 9000, rows=10), "dimensions"),  # 81 MP, below Pillow's
        (files.jpeg_claiming(9000, 9000), "dimensions"),  # 81 MP: over JPEG's cap
        (files.jpeg_claiming(30_000, 10), "dimensions"),  # one edge too long
        (files.truncated_jpeg(), "unreadable"),
        (files.corrupt_png(), "unreadable"),
    ],
)
def test_huge_bombs_and_broken_pictures_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage) as refused:
        prepare(data)
    assert refused.value.code == "bad_image"
    assert refused.value.detail["reason"] == reason


def test_pillows_own_bomb_guard_is_still_there_behind_ours() -> None:
    lax = ImageRules(max_decoded_pixels=10**12, max_input_edge=10**6)
    with pytest.raises(BadImage) as refused:
        prepare(files.png_claiming(20_000, 20_000), lax)  # 400 MP > 2x Pillow's limit
    assert refused.value.detail["reason"] == "decompression_bomb"


def test_too_many_bytes_and_polyglots() -> None:
    with pytest.raises(ImageTooLarge) as refused:
        prepare(b"\xff\xd8\xff" + b"\0" * 2048, ImageRules(max_bytes=1024))
    assert refused.value.detail == {"max_bytes": 1024}
    made = prepare(files.script_after_jpeg())  # the pixels are kept, the payload is not
    assert b"<script>" not in made.data
