"""The CUDA Philox4x32-10 and normal mapping against the CPU ones (and Random123's answers);
the device twins of the fastmath polynomials against the CPU polynomials."""

from __future__ import annotations

import numpy as np
import pytest

from tessera.kernels import cuda_device, fastmath, fastmath_gpu, rng, rng_gpu
from tests.test_rng import KAT

SIMULATED = cuda_device.simulated()


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answer_vectors(counter, key, expected):
    out = rng_gpu.philox4x32_blocks(np.array([counter], np.uint32), np.array(key, np.uint32))
    assert out.dtype == np.uint32 and out.shape == (1, 4)
    assert tuple(int(v) for v in out[0]) == expected


def test_raw_stream_equals_the_cpu_stream():
    gen = np.random.default_rng(11)
    n = 1000 if SIMULATED else 1_000_000
    counters = gen.integers(0, 2**32, size=(n, 4), dtype=np.uint64).astype(np.uint32)
    counters[:4] = [[0xFFFFFFFF] * 4, [0xFFFFFFFF, 0, 0, 0], [0, 0xFFFFFFFF, 1, 0], [0] * 4]
    for key in ((0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (0xA4093822, 0x299F31D0)):
        k = np.array(key, np.uint32)
        np.testing.assert_array_equal(
            rng_gpu.philox4x32_blocks(counters, k), rng.philox4x32_blocks(counters, k)
        )


def test_bad_shapes_are_rejected_like_the_cpu():
    with pytest.raises(ValueError, match="counters must have shape"):
        rng_gpu.philox4x32_blocks(np.zeros((2, 3), np.uint32), np.zeros(2, np.uint32))
    with pytest.raises(ValueError, match="32-bit"):
        rng_gpu.philox4x32_blocks(np.array([[2**32, 0, 0, 0]]), np.zeros(2, np.uint32))


@pytest.mark.parametrize("steps", [1, 4, 9])
def test_normals_equal_the_cpu_normals(steps):
    """The kernel's normals: bit for bit under the simulator (same polynomials, exact fma);
    on a device within a few ulp (NVVM fuses some multiply-adds)."""
    samples = np.concatenate([np.arange(40), [2**32 - 1, 2**32, 2**40 + 3, 2**63 + 5]])
    samples = samples.astype(np.uint64)
    gpu = rng_gpu.sample_normals(2024, samples, steps)
    cpu = rng.sample_normals(2024, samples, steps)
    assert gpu.shape == cpu.shape == (samples.size, steps)
    if SIMULATED:
        np.testing.assert_array_equal(gpu, cpu)
    else:
        np.testing.assert_allclose(gpu, cpu, rtol=1e-13, atol=1e-14)


def _points() -> dict[str, np.ndarray]:
    gen = np.random.default_rng(3)
    n = 2000 if SIMULATED else 1_000_000
    return {
        "exp": np.concatenate(
            [gen.uniform(-745.5, 710.0, n), gen.uniform(-2, 6, n), [0.0, -0.0, 709.7, -745.1]]
        ),
        "log": np.concatenate(
            [
                np.exp(gen.uniform(-700, 700, n)),
                gen.uniform(0, 1, n) + 2.0**-40,
                [1.0, 2.0, 0.7071067811865475, 0.7071067811865476, 2.2250738585072014e-308],
            ]
        ),
        "sincos_2pi": np.concatenate([gen.uniform(0, 1, n), [0.0, 0.125, 0.25, 0.5, 0.75, 1.0]]),
    }


@pytest.mark.parametrize("name", ["exp", "log", "sincos_2pi"])
def test_polynomials_equal_the_cpu_polynomials(name):
    x = _points()[name]
    got = fastmath_gpu.apply(name, x)
    if name == "exp":
        want = (fastmath.exp_array(x), np.zeros_like(x))
    elif name == "log":
        want = (fastmath.log_array(x), np.zeros_like(x))
    else:
        want = fastmath.sincos_2pi_array(x)
    for g, w in zip(got, want):
        if SIMULATED:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=5e-16, atol=2e-16)
