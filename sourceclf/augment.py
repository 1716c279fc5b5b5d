"""Random geometric augmentation of 5-band cutouts for training image models.

MargNet and MargFormer were trained with random rotations (up to 180 degrees),
flips and shifts of up to 10% of the stamp size (Chaini et al. 2023).  A
source's class does not depend on the orientation or the exact centring of its
stamp, so these transformations multiply the training set for free.

Everything happens on torch tensors, on the tensors' own device, in one
`torch.nn.functional.grid_sample` call per batch, and every random number comes
from the `torch.Generator` passed in, so that training is reproducible.
"""

import math

import torch
from torch.nn import functional as F

__all__ = ["random_augment", "affine_matrices"]


def affine_matrices(n, generator, *, max_angle=180.0, max_shift=0.1, flip=True,
                    exact_fraction=0.75):
    """Random affine transformations in `torch.nn.functional.affine_grid` form.

    Parameters
    ----------
    n : int
        Number of matrices.
    generator : `torch.Generator`
        Source of randomness (a CPU generator).
    max_angle : float
        Arbitrary rotations are uniform in ``[-max_angle, max_angle]`` degrees.
    max_shift : float
        Shifts are uniform up to this fraction of the stamp size in x and y.
    flip : bool
        Mirror half of the stamps.
    exact_fraction : float
        Fraction of the stamps transformed without interpolation: rotations by
        multiples of 90 degrees and shifts by whole pixels (given the stamp
        size, see `random_augment`).  The others get an arbitrary angle and a
        sub-pixel shift, whose bilinear interpolation smooths the pixel noise a
        little; keeping some stamps exact keeps the network used to the noise
        of real, uninterpolated cutouts.

    Returns
    -------
    theta : `torch.Tensor`
        float32, shape (n, 2, 3), mapping output to input coordinates in the
        normalised [-1, 1] frame of ``affine_grid``.
    shift : `torch.Tensor`
        float32, shape (n, 2): the shifts as fractions of the stamp size.
    exact : `torch.Tensor`
        bool, shape (n,): which stamps got an exact transformation.
    """
    u = torch.rand(n, 5, generator=generator)
    exact = u[:, 0] < exact_fraction
    quarter = torch.floor(u[:, 1] * 4) * (math.pi / 2)
    free = (2 * u[:, 2] - 1) * math.radians(max_angle)
    angle = torch.where(exact, quarter, free)
    shift = (2 * u[:, 3:5] - 1) * max_shift
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip \
        else torch.ones(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Rounding a cosine of a multiple of 90 degrees makes exact rotations exact.
    cos = torch.where(exact, cos.round(), cos)
    sin = torch.where(exact, sin.round(), sin)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * mirror
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * mirror
    theta[:, 1, 1] = cos
    return theta, shift, exact


def random_augment(images, generator, *, max_angle=180.0, max_shift=0.1, flip=True,
                   exact_fraction=0.75):
    """Randomly rotate, flip and shift a batch of cutouts.

    Each stamp gets its own transformation: a rotation (either by a multiple of
    90 degrees, exactly, or by an arbitrary angle up to ``max_angle``), a
    mirror flip with probability 1/2, and a shift of up to ``max_shift`` of the
    stamp size along each axis.  Pixels brought in from outside the stamp are
    reflected from inside it, so that the borders keep sky noise rather than
    zeros.  Fluxes are interpolated bilinearly; exact transformations copy
    pixels.

    Parameters
    ----------
    images : `torch.Tensor`
        Float tensor of shape (n, channels, height, width), any device.
    generator : `torch.Generator`
        CPU generator all random numbers are drawn from.
    max_angle : float
        Largest arbitrary rotation, degrees (180 as published).
    max_shift : float
        Largest shift as a fraction of the stamp size (0.1 as published).
    flip : bool
        Whether to mirror half of the stamps.
    exact_fraction : float
        Fraction of stamps transformed without interpolation (see
        `affine_matrices`).

    Returns
    -------
    augmented : `torch.Tensor`
        Same shape, dtype and device as ``images``.

    Examples
    --------
    >>> import torch
    >>> from sourceclf.augment import random_augment
    >>> gen = torch.Generator().manual_seed(0)
    >>> random_augment(torch.randn(4, 5, 32, 32), gen).shape
    torch.Size([4, 5, 32, 32])
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, channels, height, width), "
                         f"got {tuple(images.shape)}")
    n, _, height, width = images.shape
    if n == 0:
        return images
    theta, shift, exact = affine_matrices(n, generator, max_angle=max_angle,
                                          max_shift=max_shift, flip=flip,
                                          exact_fraction=exact_fraction)
    # Shifts in pixels, rounded to whole pixels for exact transformations; in the
    # normalised frame one pixel is 2 / size.
    pixels = shift * torch.tensor([width, height], dtype=torch.float32)
    pixels = torch.where(exact[:, None], pixels.round(), pixels)
    theta[:, 0, 2] = 2 * pixels[:, 0] / width
    theta[:, 1, 2] = 2 * pixels[:, 1] / height
    dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    theta = theta.to(device=images.device, dtype=dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.to(dtype), grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)
    return out.to(images.dtype)
