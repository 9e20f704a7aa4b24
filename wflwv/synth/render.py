"""Ray casting the head: the nearest of its ellipsoids at each pixel, a texture looked up by the
head-frame (x, y) of the point hit, normals from the slopes of a smoothed depth map tilted by the
painted relief, wrapped Lambertian light and a specular lobe."""

from dataclasses import dataclass

import cv2
import numpy as np

from wflwv.synth.face import FACE_PARTS, Head
from wflwv.synth.geometry import Camera, Ellipsoid, cast, pixel_boxes
from wflwv.synth.texture import ORIGIN, Look

CREASE = 0.03  # head units: the rounding where face parts meet
RIM = 0.1  # head units of thickness over which a face part's share in the smooth minimum fades in
STEP = 0.06  # head units: the most the shading depth may change from a pixel to the next
STRAND_TEXELS = 40  # texels of the hair-strand texture per radian (across) and per head unit (down)
FACE, SKIN, NECK, HAIR = range(4)  # materials


@dataclass(frozen=True)
class Light:
    azimuth: float = 20.0  # degrees, positive: the light comes from the image's right
    elevation: float = 30.0  # degrees above the camera's axis
    strength: float = 0.75
    ambient: float = 0.35
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def direction(self) -> np.ndarray:
        """Unit camera-frame vector from a surface toward the light."""
        az, el = np.radians([self.azimuth, self.elevation])
        return np.array([np.cos(el) * np.sin(az), -np.sin(el), -np.cos(el) * np.cos(az)])


@dataclass(frozen=True)
class Part:
    """An ellipsoid of the head; with `keep`, only where some half-space normal . X > offset holds."""

    shape: Ellipsoid
    material: int
    keep: tuple[tuple[tuple[float, float, float], float], ...] = ()


def head_parts(head: Head, look: Look) -> list[Part]:
    parts = [Part(head.parts[name], FACE) for name in FACE_PARTS]
    parts += [Part(head.parts[name], SKIN) for name in ("left_ear", "right_ear")]
    parts.append(Part(head.parts["neck"], NECK))
    width = head.parts["cranium"].axes[0]
    hairline = (0.0, -1.0, 1.1), -look.hairline - 1.1  # through the front hairline, sloping down to the back
    if look.hair_style == "short":  # a shell over the cranium, above the hairline and behind the temples
        parts.append(Part(Ellipsoid((0.0, -0.36, 0.08), (width + 0.07, 1.5, 1.22)), HAIR, (hairline, ((0, 0, 1.0), -0.05))))
    elif look.hair_style == "long":  # down to the shoulders beside the face
        parts.append(Part(Ellipsoid((0.0, 0.3, 0.2), (width + 0.18, 2.2, 1.3)), HAIR, (hairline, ((0, 0, 1.0), -0.15))))
    return parts


@dataclass(frozen=True)
class DepthMap:
    """Nearest depth of the head in a window of the image (inf where there is no head)."""

    depth: np.ndarray
    top: int
    left: int

    def at(self, pixels: np.ndarray) -> np.ndarray:
        col = np.round(pixels[:, 0]).astype(int) - self.left
        row = np.round(pixels[:, 1]).astype(int) - self.top
        inside = (row >= 0) & (row < self.depth.shape[0]) & (col >= 0) & (col < self.depth.shape[1])
        out = np.full(len(pixels), np.inf)
        out[inside] = self.depth[row[inside], col[inside]]
        return out


def render_head(
    frame: np.ndarray,
    parts: list[Part],
    surface_maps: tuple[np.ndarray, np.ndarray],
    texels_per_unit: float,
    strands: np.ndarray,
    look: Look,
    camera: Camera,
    light: Light,
) -> DepthMap:
    """Draw the head over `frame` (float32 RGB, in place); returns its depth map.

    `surface_maps` are the face texture's lookup tables (texture.surface_maps), `strands` the hair's
    (rows: head y, cols: angle around the vertical axis, STRAND_TEXELS per unit).
    """
    rows, cols = frame.shape[:2]
    boxes = pixel_boxes([part.shape for part in parts], camera)
    left, top = np.floor(boxes[:, :2].min(axis=0)).astype(int).clip(0, [cols, rows])
    right, bottom = np.ceil(boxes[:, 2:].max(axis=0)).astype(int).clip(0, [cols, rows])
    depths = np.full((len(parts), max(bottom - top, 0), max(right - left, 0)), np.inf, np.float32)
    thickness = np.zeros_like(depths)  # how far the rays run inside each part: zero at its outline
    for index, (part, box) in enumerate(zip(parts, boxes)):
        x0, y0 = max(int(box[0]), left), max(int(box[1]), top)
        x1, y1 = min(int(box[2]) + 2, right), min(int(box[3]) + 2, bottom)
        if x1 > x0 and y1 > y0:
            ray_x, ray_y = camera.rays(np.arange(x0, x1, dtype=np.float32)[None, :], np.arange(y0, y1, dtype=np.float32)[:, None])
            window = (index, slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            depths[window], thickness[window] = _surface_depth(part, camera, ray_x, ray_y)
    depth = depths.min(axis=0, initial=np.inf)
    hit = np.flatnonzero(np.isfinite(depth))
    if hit.size == 0:
        return DepthMap(depth, top, left)

    material = np.array([part.material for part in parts])[depths.reshape(len(parts), -1)[:, hit].argmin(axis=0)]
    hit_rows, hit_cols = np.divmod(hit, right - left)
    ray_x, ray_y = camera.rays((hit_cols + left).astype(np.float32), (hit_rows + top).astype(np.float32))
    x, y, z = camera.to_head(ray_x, ray_y, depth.ravel()[hit])
    texel_x = (x - np.float32(ORIGIN[0])) * np.float32(texels_per_unit)
    texel_y = (y - np.float32(ORIGIN[1])) * np.float32(texels_per_unit)
    albedo = lookup(surface_maps[0], texel_x, texel_y, cv2.BORDER_REPLICATE) * np.float32(1 / 255)
    gloss, slope_x, slope_y = lookup(surface_maps[1], texel_x, texel_y, cv2.BORDER_REPLICATE).T
    _plain_materials(albedo, gloss, material, (x, y, z), strands, look)
    normal = _normals(depths, thickness, [part.material == FACE for part in parts], hit, camera)
    on_face = material == FACE  # the painted relief's head-frame slopes tilt the face's normals
    normal -= camera.rotation[:, :2].astype(np.float32) @ np.stack([slope_x * on_face, slope_y * on_face])
    frame.reshape(-1, 3)[(hit_rows + top) * cols + hit_cols + left] = _shade(albedo, gloss, normal, light)
    return DepthMap(depth, top, left)


def lookup(table: np.ndarray, cols: np.ndarray, rows: np.ndarray, border: int) -> np.ndarray:
    """Bilinear samples (n, channels...) of a table at fractional (col, row) positions."""
    width = 1024  # OpenCV maps are at most 32767 long, so the n positions go in rows of this width
    maps = np.zeros((2, -(-len(cols) // width) * width), np.float32)
    maps[0, : len(cols)], maps[1, : len(cols)] = cols, rows
    samples = cv2.remap(table, maps[0].reshape(-1, width), maps[1].reshape(-1, width), cv2.INTER_LINEAR, borderMode=border)
    return samples.reshape(-1, *table.shape[2:])[: len(cols)]


def _surface_depth(part: Part, camera: Camera, ray_x: np.ndarray, ray_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth of the part's visible surface along the rays, where they enter it or, through a cut,
    where they leave it (inf where they miss), and the length of the rays inside it (0 where they miss)."""
    (near,), (far,) = cast([part.shape], camera, ray_x, ray_y)
    inside = np.subtract(far, near, out=np.zeros_like(near), where=np.isfinite(near))
    if not part.keep:
        return near, inside
    near_kept, far_kept = (_kept(part, camera.to_head(ray_x, ray_y, np.where(np.isfinite(d), d, 0))) for d in (near, far))
    return np.where(near_kept, near, np.where(far_kept, far, np.inf)), inside


def _kept(part: Part, xyz: list[np.ndarray]) -> np.ndarray:
    return np.logical_or.reduce([n[0] * xyz[0] + n[1] * xyz[1] + n[2] * xyz[2] > offset for n, offset in part.keep])


def _normals(depths: np.ndarray, thickness: np.ndarray, face: list[bool], hit: np.ndarray, camera: Camera) -> np.ndarray:
    """Camera-frame normals (3, n) at the hit pixels, from the slopes of a shading depth map, not unit.

    The face parts are joined by a smooth minimum of their depths, which rounds the creases where
    they meet within about CREASE head units; a part's share fades out toward its own outline
    (where its thickness along the ray vanishes) so that the outline leaves no mark. A step in
    depth, at an outline over what is behind it or over the wall put behind the head, is capped
    at STEP a pixel: the normals turn sideways there as on a round surface, but the staircase of
    the outline's pixels does not show.
    """
    shading = depths.min(axis=0)
    face_depths = depths[face]
    overlap = np.argwhere(np.isfinite(face_depths).sum(axis=0) > 1)
    if len(overlap):  # where face parts overlap (elsewhere the smooth minimum is the minimum)
        (top, left), (bottom, right) = overlap.min(axis=0), overlap.max(axis=0) + 1
        window = face_depths[:, top:bottom, left:right]
        fade = np.clip(thickness[face][:, top:bottom, left:right] / RIM, 0, 1)
        nearest = window.min(axis=0)
        with np.errstate(invalid="ignore"):
            shares = (np.exp((nearest - window) / CREASE) * fade).sum(axis=0)
            softened = nearest - CREASE * np.log(np.maximum(shares, 1))
        shading[top:bottom, left:right] = np.where(np.isfinite(nearest), softened, shading[top:bottom, left:right])
    shading = np.where(np.isfinite(shading), shading, shading.ravel()[hit].max() + 1)
    shading = np.minimum(shading, cv2.erode(shading, np.ones((3, 3), np.uint8)) + np.float32(STEP))
    smooth = cv2.GaussianBlur(shading, (0, 0), 0.7)
    slope = [cv2.Sobel(smooth, cv2.CV_32F, dx, 1 - dx, ksize=3).ravel()[hit] * np.float32(camera.scale / 8) for dx in (1, 0)]
    return np.stack([slope[0], slope[1], np.full(hit.size, -1, np.float32)])


def _plain_materials(albedo, gloss, material, xyz, strands, look: Look) -> None:
    """Colours of what the face texture does not cover: ears, neck, hair and the back of the head."""
    x, y, z = xyz
    skin = np.asarray(look.skin, np.float32)
    ears, neck = np.flatnonzero(material == SKIN), np.flatnonzero(material == NECK)
    albedo[ears] = skin * np.float32([1.0, 0.93, 0.92])
    albedo[neck] = skin * (0.55 + 0.4 * np.clip((y[neck] - 1.45) / 0.4, 0, 1))[:, None]  # in the jaw's shadow
    gloss[ears] = gloss[neck] = 0.2
    # the hair, and the face's back half from behind the ears down to the nape
    back = np.flatnonzero((material == HAIR) | ((z > 0.05) & (y < 0.9) & (material == FACE)))
    if back.size:
        x, y, z = x[back], y[back], z[back]
        amount = np.where(material[back] == HAIR, 1.0, np.clip((z - 0.05) / 0.2, 0, 1) * np.clip((0.9 - y) / 0.4, 0, 1))
        if look.hair_style == "buzz":
            amount *= 0.6
        u = ((np.arctan2(x, 0.1 - z) + np.pi) * STRAND_TEXELS).astype(np.float32)
        v = ((y + 3) * STRAND_TEXELS).astype(np.float32)
        strand = lookup(strands, u, v, cv2.BORDER_WRAP)
        colour = np.asarray(look.hair, np.float32) * (0.8 + 0.2 * strand)[:, None]
        albedo[back] += amount[:, None] * (colour - albedo[back])
        gloss[back] += amount * (0.5 - gloss[back])


def _shade(albedo: np.ndarray, gloss: np.ndarray, normal: np.ndarray, light: Light) -> np.ndarray:
    """Lit colours (n, 3) from camera-frame normals (3, n), not necessarily unit."""
    to_light = light.direction()
    half = to_light + [0, 0, -1]
    half /= np.linalg.norm(half)
    inverse_length = 1 / np.sqrt(normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2])
    facing, towards_half = np.column_stack([to_light, half]).T.astype(np.float32) @ normal * inverse_length
    diffuse = np.clip((facing + 0.25) * 0.8, 0, 1)
    specular = np.clip(towards_half, 0, 1) ** 8
    specular = specular * specular * specular  # ** 24
    shaded = albedo * (light.ambient + light.strength * diffuse)[:, None]
    shaded += (0.35 * light.strength * gloss * specular)[:, None]
    return shaded * np.asarray(light.tint, np.float32)
