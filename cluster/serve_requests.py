"""What a Serve request may carry, checked before anything reaches the engine (docs/design.md, "Bad input and faults").

Every refusal is an `ApiError`: an HTTP status plus an OpenAI-style body `{"error": {"message", "type"}}`
naming what was wrong, so the official `openai` client raises a readable `BadRequestError`. The limits come
from `ServeConfig`: body bytes (413), declared pixels of an image or frame (413), video duration (413),
frames sampled from a video (400).

Media arrive only as bytes: base64 in JSON, a multipart upload, or an `image_url` that is a `data:` URL.
A request can never make the server open a path on its own disk: `file://` URLs and bare paths are refused
before anything is opened, and http(s) URLs are fetched only when `allow_remote_urls` is set (streamed,
size-capped, no redirects).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from cluster.batches import media_request
from cluster.config import QThinkConfig
from rewards import Preset
from rollout.images import load_image
from rollout.media import MediaError, MediaFailure
from rollout.records import RolloutRequest
from rollout.video import VideoClip, load_video


class ApiError(Exception):
    """A request the server refuses; `type` follows OpenAI's error types where one fits."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.status}}


# ---- body -------------------------------------------------------------------------------------------

async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `max_bytes`: up front from Content-Length, or while
    streaming when the client sends none (chunked) or lies about it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(f"request body of {declared} bytes exceeds max_body_bytes={max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(f"request body exceeds max_body_bytes={max_bytes}")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> dict:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, f"malformed JSON body: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the JSON body must be an object, got {type(value).__name__}")
    return value


def validated(model: type[BaseModel], value: dict):
    """A pydantic model from a JSON object; the 400 names the first offending field."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']}") from None


def decode_base64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, f"{field}: not valid base64 ({error})") from None


def _too_large(message: str) -> ApiError:
    return ApiError(413, message, "request_too_large")


# ---- /v1/score --------------------------------------------------------------------------------------

class ScoreJSON(BaseModel):
    """The JSON form of a score request; unknown fields are refused so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = None  # base64 bytes of an image file
    video: str | None = None  # base64 bytes of a video file
    samples: int = Field(1, ge=1)
    return_reasoning: bool = False
    num_frames: int | None = Field(None, ge=1)


@dataclass(frozen=True)
class ScoreInput:
    media_type: str  # image | video
    data: bytes
    samples: int
    return_reasoning: bool
    num_frames: int | None


async def score_input(request: Request, body: bytes, max_samples: int) -> ScoreInput:
    """A score request from JSON (`{"image": b64}` / `{"video": b64}`) or a multipart upload (a file field
    named `image` or `video`, options as form fields)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields, files = await _multipart(request, body)
        options = validated(ScoreJSON, {**fields, **{name: "" for name in files}})  # checks names and types
        files = {name: data for name, data in files.items() if name in ("image", "video")}
    else:
        options = validated(ScoreJSON, parse_json(body))
        files = {name: decode_base64(value, name) for name in ("image", "video")
                 if (value := getattr(options, name)) is not None}
    if len(files) != 1:
        raise ApiError(400, "give exactly one of `image` or `video`")
    if options.samples > max_samples:
        raise ApiError(400, f"samples={options.samples} exceeds max_samples={max_samples}")
    ((media_type, data),) = files.items()
    return ScoreInput(media_type, data, options.samples, options.return_reasoning, options.num_frames)


async def _multipart(request: Request, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    async def replay():
        yield body

    try:
        form = await MultiPartParser(request.headers, replay(), max_files=2, max_fields=8).parse()
    except MultiPartException as error:
        raise ApiError(400, f"malformed multipart body: {error.message}") from None
    fields, files = {}, {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            files[name] = await value.read()
        else:
            fields[name] = value
    return fields, files


def upload_request(item: ScoreInput, preset: Preset, cfg: QThinkConfig, request_id: str) -> RolloutRequest:
    """Decode an upload within the limits; the request itself is built as training and evaluation build
    theirs (`cluster.batches.media_request`: the preset's question, the prompt style, the video view)."""
    if item.media_type == "image":
        media = decode_image(item.data, cfg)
    else:
        media = decode_video(item.data, cfg, item.num_frames or cfg.data.num_frames)
    return media_request(request_id, item.media_type, media, preset, cfg)


# ---- media ------------------------------------------------------------------------------------------

def decode_image(data: bytes, cfg: QThinkConfig):
    """RGB at the model's training resolution (`data.max_pixels`); the upload's declared size is capped by
    `serve.max_pixels` before a pixel is decoded."""
    try:
        return load_image(data, max_pixels=cfg.data.max_pixels, max_source_pixels=cfg.serve.max_pixels)
    except MediaError as error:
        raise _media_refusal(error, "image") from None


def decode_video(data: bytes, cfg: QThinkConfig, num_frames: int) -> VideoClip:
    limits = cfg.serve
    if num_frames > limits.max_frames:
        raise ApiError(400, f"num_frames={num_frames} exceeds max_frames={limits.max_frames}")
    try:
        clip = load_video(data, num_frames=num_frames, max_frames=limits.max_frames,
                          max_pixels=cfg.data.max_pixels, max_source_pixels=limits.max_pixels)
    except MediaError as error:
        raise _media_refusal(error, "video") from None
    # Checked after decoding: only the sampled frames were decoded, and the body cap bounds the file.
    if clip.metadata["duration"] > limits.max_duration_s:
        raise _too_large(f"video lasts {clip.metadata['duration']:.1f} s, over max_duration_s={limits.max_duration_s}")
    return clip


def _media_refusal(error: MediaError, what: str) -> ApiError:
    if error.reason is MediaFailure.TOO_LARGE:
        return _too_large(f"{what} too large: {error.detail} (serve.max_pixels)")
    detail = f" ({error.detail})" if error.detail else ""
    return ApiError(400, f"{what} unusable: {error.reason.value}{detail}")


# ---- /v1/chat/completions ---------------------------------------------------------------------------

class ImageURL(BaseModel):
    url: str


class ContentPart(BaseModel):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


class ChatRequest(BaseModel):
    """The OpenAI chat subset served; other OpenAI fields a client sends by default are ignored."""

    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stream: bool = False


def chat_messages(chat: ChatRequest) -> tuple[list[dict], list[str]]:
    """Messages in the content-list form Qwen's chat template renders, and the image URLs in prompt order."""
    messages, urls = [], []
    for message in chat.messages:
        parts = message.content
        if isinstance(parts, str):
            parts = [ContentPart(type="text", text=parts)]
        content = []
        for part in parts:
            if part.type == "text":
                content.append({"type": "text", "text": part.text or ""})
            elif part.image_url is None:
                raise ApiError(400, "an image_url part needs an `image_url` object with a `url`")
            else:
                content.append({"type": "image"})
                urls.append(part.image_url.url)
        messages.append({"role": message.role, "content": content})
    return messages, urls


async def image_url_bytes(url: str, cfg: QThinkConfig) -> bytes:
    """The bytes behind an `image_url`: a base64 `data:` URL, or (only when allowed) an http(s) fetch.
    Anything else — `file://`, a bare path, another scheme — is refused without touching the disk."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        header, comma, payload = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ApiError(400, "image_url: a data URL must be base64: data:image/png;base64,...")
        return decode_base64(payload, "image_url")
    if scheme in ("http", "https"):
        if not cfg.serve.allow_remote_urls:
            raise ApiError(400, "image_url: remote URLs are disabled on this server (serve.allow_remote_urls); "
                                "send the image as a data: URL")
        return await _fetch(url, cfg.serve.max_body_bytes, cfg.serve.request_timeout_s)
    raise ApiError(400, "image_url: only data: URLs" + (" and http(s) URLs" if cfg.serve.allow_remote_urls else "")
                   + " are accepted; file paths and file:// URLs are never opened")


async def _fetch(url: str, max_bytes: int, timeout_s: float) -> bytes:
    import httpx

    chunks, size = [], 0
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ApiError(400, f"image_url: {url} answered HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(f"image_url: {url} is over max_body_bytes={max_bytes}")
                    chunks.append(chunk)
    except httpx.HTTPError as error:
        raise ApiError(400, f"image_url: could not fetch {url}: {error}") from None
    return b"".join(chunks)
