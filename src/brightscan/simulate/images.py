"""63x63 science, reference and difference stamps, rendered in batches of epochs.

Model (all in DN, ZTF pixel scale 1.01"/px):

* The static scene (Sersic galaxies, point-like stars) is rendered once per band on a padded
  96x96 grid and kept in Fourier space; each epoch convolves it with that epoch's PSF by one
  multiplication (a double Gaussian: 85% core with the epoch's seeing, 15% wing 2.2x wider).
* science = sky + scene * PSF + transient PSF + noise (sky noise from the visit's depth, photon
  noise of the sources);
* reference = sky + scene * PSF_ref + low noise (a deep co-add; fixed per source and band);
* difference = transient PSF + science noise + reference noise + a subtraction residual, the
  scene convolved with the difference of the epoch PSF and a slightly mis-estimated one (the
  dipoles and rings real subtractions leave on galaxy cores and bright stars).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gamma as gamma_fn

from brightscan.simulate.observing import PIXEL_SCALE, ZP
from brightscan.simulate.scene import GALAXY, Scene

PAD = 96  # side of the padded rendering grid (FFT-friendly, galaxies spill past the stamp)
CORE, WING, WING_SCALE = 0.85, 0.15, 2.2  # double-Gaussian PSF
GAIN = 6.2  # e-/DN


def _sersic(xx: np.ndarray, yy: np.ndarray, n: float, r_eff: float, q: float, angle: float) -> np.ndarray:
    """Unit-flux Sersic profile at pixel offsets (xx, yy); r_eff in pixels."""
    b = 2 * n - 1 / 3 + 0.009876 / n
    c, s = np.cos(angle), np.sin(angle)
    u = xx * c + yy * s
    v = (-xx * s + yy * c) / q
    r = np.maximum(np.hypot(u, v), 0.35)
    total = 2 * np.pi * q * r_eff**2 * n * np.exp(b) * b ** (-2 * n) * gamma_fn(2 * n)
    return np.exp(-b * ((r / r_eff) ** (1 / n) - 1)) / total


def render_scene(scene: Scene, fid: int) -> np.ndarray:
    """The scene in band ``fid`` before PSF convolution (PAD x PAD, DN at the nominal zero point)."""
    img = np.zeros((PAD, PAD))
    centre = PAD // 2
    yy, xx = np.mgrid[0:PAD, 0:PAD].astype(float) - centre
    flux = 10 ** (0.4 * (ZP[fid] - scene.mag(fid)))
    px, py = scene.x / PIXEL_SCALE, scene.y / PIXEL_SCALE
    for i in range(len(flux)):
        if scene.kind[i] == GALAXY:
            if flux[i] > 0.5:
                img += flux[i] * _sersic(xx - px[i], yy - py[i], scene.sersic_n[i],
                                         max(scene.r_eff[i] / PIXEL_SCALE, 0.3), scene.axis_ratio[i], scene.angle[i])
            continue
        x0, y0 = px[i] + centre, py[i] + centre
        ix, iy = int(np.floor(x0)), int(np.floor(y0))
        fx, fy = x0 - ix, y0 - iy
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= ix + dx < PAD and 0 <= iy + dy < PAD:
                img[iy + dy, ix + dx] += flux[i] * w
    return img


def _otf(sigma: np.ndarray) -> np.ndarray:
    """Optical transfer functions of the double-Gaussian PSF, shape (n, PAD, PAD//2+1)."""
    ky = np.fft.fftfreq(PAD)[:, None]
    kx = np.fft.rfftfreq(PAD)[None, :]
    k2 = (kx**2 + ky**2)[None]
    s2 = (np.asarray(sigma, dtype=float) ** 2)[:, None, None]
    return CORE * np.exp(-2 * np.pi**2 * s2 * k2) + WING * np.exp(-2 * np.pi**2 * s2 * WING_SCALE**2 * k2)


def point_sources(sigma: np.ndarray, dx: np.ndarray, dy: np.ndarray, size: int) -> np.ndarray:
    """Unit-flux PSFs centred at (size//2 + dx, size//2 + dy) pixels, shape (n, size, size)."""
    grid = np.arange(size, dtype=float) - size // 2
    out = np.zeros((len(sigma), size, size))
    for weight, scale in ((CORE, 1.0), (WING, WING_SCALE)):
        s = (sigma * scale)[:, None]
        gx = np.exp(-0.5 * ((grid[None] - dx[:, None]) / s) ** 2) / (np.sqrt(2 * np.pi) * s)
        gy = np.exp(-0.5 * ((grid[None] - dy[:, None]) / s) ** 2) / (np.sqrt(2 * np.pi) * s)
        out += weight * gy[:, :, None] * gx[:, None, :]
    return out


@dataclass
class StampMaker:
    """Per-source state: the scene in Fourier space and the fixed reference images per band."""

    scene_hat: dict[int, np.ndarray]  # rfft2 of the rendered scene per band
    reference: dict[int, np.ndarray]  # sky-subtracted reference stamps per band
    size: int  # stamp side

    @classmethod
    def build(cls, scene: Scene, rng: np.random.Generator, size: int) -> StampMaker:
        """Render the scene per band and draw the fixed reference stamps."""
        hats, refs = {}, {}
        ref_sigma = rng.uniform(1.6, 2.1) / 2.355 / PIXEL_SCALE
        for fid in (1, 2):
            hats[fid] = np.fft.rfft2(render_scene(scene, fid))
            ref = np.fft.irfft2(hats[fid] * _otf(np.array([ref_sigma]))[0], s=(PAD, PAD))
            refs[fid] = _crop(ref[None], size)[0] + rng.normal(0, rng.uniform(1.0, 2.5), (size, size))
        return cls(hats, refs, size)

    def render(
        self, rng: np.random.Generator, *, fid: np.ndarray, seeing: np.ndarray, zp: np.ndarray, sky: np.ndarray,
        noise: np.ndarray, flux: np.ndarray, dx: np.ndarray, dy: np.ndarray, mismatch: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Science, reference and difference stamps of ``n`` epochs, each (n, size, size) float32.

        ``seeing`` is the FWHM in arcsec, ``noise`` the sky noise per pixel (DN), ``flux`` the
        transient's flux (DN) at pixel offset (dx, dy), ``mismatch`` the relative PSF-width error
        of the subtraction.
        """
        n, size = len(fid), self.size
        sigma = seeing / 2.355 / PIXEL_SCALE
        scale = 10 ** (0.4 * (zp - np.where(fid == 1, ZP[1], ZP[2])))
        hat = np.stack([self.scene_hat[f] for f in fid]) * scale[:, None, None]
        otf = _otf(sigma)
        both = np.fft.irfft2(np.concatenate([hat * otf, hat * (otf - _otf(sigma * (1 + mismatch)))]), s=(PAD, PAD))
        scene_img, residual = _crop(both[:n], size), _crop(both[n:], size)
        point = flux[:, None, None] * point_sources(sigma, dx, dy, size)
        signal = scene_img + point
        shot = np.sqrt(noise[:, None, None] ** 2 + np.maximum(signal, 0) / GAIN)
        sci_noise = rng.standard_normal((n, size, size)) * shot
        science = sky[:, None, None] + signal + sci_noise
        reference = np.stack([self.reference[f] for f in fid]) * scale[:, None, None] + sky[:, None, None]
        ref_noise = rng.standard_normal((n, size, size)) * (0.35 * noise[:, None, None])
        difference = point + residual + sci_noise + ref_noise
        return science.astype(np.float32), reference.astype(np.float32), difference.astype(np.float32)


def _crop(images: np.ndarray, size: int) -> np.ndarray:
    start = PAD // 2 - size // 2
    return images[:, start:start + size, start:start + size]


def add_cosmic_ray(science: np.ndarray, difference: np.ndarray, flux: float, rng: np.random.Generator) -> None:
    """Put a sharp 1-3 pixel hit at the centre of one epoch's science and difference stamps."""
    c = science.shape[0] // 2
    pixels = [(c, c)] + [(c + int(rng.integers(-1, 2)), c + int(rng.integers(-1, 2))) for _ in range(int(rng.integers(0, 3)))]
    weights = rng.dirichlet(np.ones(len(pixels)))
    for (y, x), w in zip(pixels, weights):
        science[y, x] += flux * w
        difference[y, x] += flux * w
